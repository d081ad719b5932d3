//! [`DeviceStore`] on SQL: devices, groups, device filters and gateway tokens.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, QueryBuilder};
use updraft_app::store::{
    Change, DeviceChange, DeviceIdentity, DeviceScope, DeviceStore, DeviceSummaryRow, DeviceVersions, GatewayToken,
    GroupToken, IdempotentRequest, MembershipChange, PollSeed, SavedFilter, StoreError, StoreResult,
};
use updraft_core::filter::Filter;
use updraft_core::{ApiKey, Device, FieldError, Group, NewDevice, Page, PageRequest};

use crate::query::{BuilderExt, QueryExt, query};
use crate::{
    Conn, DEVICE_LIST, DEVICE_SELECT, DeviceRow, DeviceVersionsRow, GROUP_LIST, GROUP_MEMBER_FILTER, GROUP_SELECT,
    GatewayRow, GroupRow, GroupTokenRow, IdentityRow, KEY_SELECT, KeyRow, OFFERED_STATES, PollSeedRow,
    SAVED_FILTER_LIST, SAVED_FILTER_SELECT, SavedFilterRow, SqlBackend, SqlStore, conflict_or, db_err, filter_sql,
    is_unique_violation, ts, us,
};

/// How long a deleted device stays in `device_deletions`, in microseconds: a day.
const DELETIONS_KEPT_US: i64 = 86_400_000_000;

#[async_trait]
impl<B: SqlBackend> DeviceStore for SqlStore<B> {
    async fn create_devices(&self, tenant: &str, devices: &[NewDevice], now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::insert_devices(&mut tx, tenant, devices, now).await?;
        let ids = devices.iter().map(|d| d.id.clone()).collect();
        self.commit_events(tx, tenant, vec![Change::DevicesCreated { devices: ids }]).await?;
        self.wrote("devices", devices.len() as u64);
        Ok(())
    }

    async fn create_devices_once(
        &self,
        tenant: &str,
        devices: &[NewDevice],
        now: Timestamp,
        request: &IdempotentRequest,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>("DELETE FROM idempotent_requests WHERE tenant = $1 AND expires_at <= $2")
            .arg(tenant)
            .arg(us(now))
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        query::<B>(
            "INSERT INTO idempotent_requests (tenant, api_key, key, fingerprint, answer, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .arg(tenant)
        .arg(&request.api_key)
        .arg(&request.key)
        .arg(&request.fingerprint)
        .arg(&request.answer)
        .arg(us(request.created_at))
        .arg(us(request.expires_at))
        .run(&mut *tx)
        .await
        .map_err(conflict_or("idempotency key", &request.key))?;
        Self::insert_devices(&mut tx, tenant, devices, now).await?;
        let ids = devices.iter().map(|d| d.id.clone()).collect();
        self.commit_events(tx, tenant, vec![Change::DevicesCreated { devices: ids }]).await?;
        self.wrote("devices", devices.len() as u64);
        Ok(())
    }

    async fn idempotent_request(
        &self,
        tenant: &str,
        api_key: &str,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<Option<IdempotentRequest>> {
        let row: Option<(String, String, String, String, i64, i64)> = query::<B>(
            "SELECT api_key, key, fingerprint, answer, created_at, expires_at FROM idempotent_requests
             WHERE tenant = $1 AND api_key = $2 AND key = $3 AND expires_at > $4",
        )
        .arg(tenant)
        .arg(api_key)
        .arg(key)
        .arg(us(now))
        .optional_row(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|(api_key, key, fingerprint, answer, created_at, expires_at)| {
            Ok(IdempotentRequest {
                api_key,
                key,
                fingerprint,
                answer,
                created_at: ts(created_at)?,
                expires_at: ts(expires_at)?,
            })
        })
        .transpose()
    }

    async fn get_device(&self, tenant: &str, id: &str) -> StoreResult<Option<Device>> {
        self.get_one::<DeviceRow, _>(DEVICE_SELECT, "id", tenant, id).await
    }

    async fn get_devices(&self, tenant: &str, ids: &[String]) -> StoreResult<Vec<Device>> {
        let mut devices = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut q = QueryBuilder::<B::Db>::new(DEVICE_SELECT);
            q.push(" WHERE tenant = ").push_arg(tenant).push(" AND id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_arg(id);
            }
            q.push(")");
            let rows: Vec<DeviceRow> = q.build().rows(&self.pool).await.map_err(db_err)?;
            for r in rows {
                devices.push(Device::try_from(r)?);
            }
        }
        Ok(devices)
    }

    async fn devices_after(&self, tenant: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Device>> {
        let mut q = QueryBuilder::<B::Db>::new(DEVICE_SELECT);
        q.push(" WHERE tenant = ").push_arg(tenant);
        if let Some(after) = after {
            q.push(" AND id > ").push_arg(after.to_owned());
        }
        q.push(" ORDER BY id LIMIT ").push_arg(i64::from(limit));
        let rows: Vec<DeviceRow> = q.build().rows(&self.pool).await.map_err(db_err)?;
        rows.into_iter().map(Device::try_from).collect()
    }

    async fn list_devices(&self, tenant: &str, scope: &DeviceScope, page: &PageRequest) -> StoreResult<Page<Device>> {
        let filters = scope_filters(tenant, scope);
        self.list::<DeviceRow, Device>(&DEVICE_LIST, &filters, page).await
    }

    async fn modify_device(
        &self,
        tenant: &str,
        id: &str,
        change: DeviceChange<'_>,
        reported: bool,
        now: Timestamp,
    ) -> StoreResult<Result<Device, Vec<FieldError>>> {
        let mut tx = self.begin_write().await?;
        let mut d: Device = Self::lock_one::<DeviceRow, _>(&mut tx, DEVICE_SELECT, "device", tenant, id).await?;
        if let Err(errors) = change(&mut d) {
            return Ok(Err(errors));
        }
        d.updated_at = now;
        query::<B>(
            "UPDATE devices SET firmware = $3, hardware_version = $4, module_model = $5, module_version = $6,
                 template_id = $7, properties = $8, metadata = $9, activated_at = $10, connection_status = $11,
                 updated_at = $12, attributes_requested = CASE WHEN $13 THEN FALSE ELSE attributes_requested END,
                 firmware_keys = $14, hardware_version_key = $15, module_version_key = $16
             WHERE tenant = $1 AND id = $2",
        )
        .arg(tenant)
        .arg(&d.id)
        .arg(Json(&d.firmware))
        .arg(&d.hardware_version)
        .arg(&d.module_model)
        .arg(&d.module_version)
        .arg(&d.template_id)
        .arg(Json(&d.properties))
        .arg(Json(&d.metadata))
        .arg(d.activated_at.map(us))
        .arg(d.connection_status.as_str())
        .arg(us(now))
        .arg(reported)
        .arg(Json(filter_sql::firmware_keys(&d.firmware)))
        .arg(filter_sql::version_key(d.hardware_version.as_deref()))
        .arg(filter_sql::version_key(d.module_version.as_deref()))
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit_events(tx, tenant, vec![Change::DeviceUpdated { device: d.id.clone() }]).await?;
        Ok(Ok(d))
    }

    async fn delete_device(&self, tenant: &str, id: &str, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // No foreign key ties executions to their device (writing one per device of a
        // big job would lock every device): the device's executions go first, with
        // their histories and action numbers, while no execution can be added for it.
        B::lock_fleet(&mut tx, tenant, true).await?;
        let executions: Vec<(i64,)> =
            query::<B>("DELETE FROM executions WHERE tenant = $1 AND device = $2 RETURNING action_id")
                .arg(tenant)
                .arg(id)
                .rows(&mut *tx)
                .await
                .map_err(db_err)?;
        for chunk in executions.chunks(500) {
            for delete in [
                "DELETE FROM execution_events WHERE action_id IN (",
                "DELETE FROM execution_actions WHERE action_id IN (",
            ] {
                let mut q = QueryBuilder::<B::Db>::new(delete);
                let mut sep = q.separated(", ");
                for (action_id,) in chunk {
                    sep.push_arg(*action_id);
                }
                q.push(")");
                q.build().run(&mut *tx).await.map_err(db_err)?;
            }
        }
        Self::delete_in(&mut tx, "devices", "device", tenant, id).await?;
        // Noted for the jobs whose scope was read before (see `SqlBackend::insert_executions`),
        // for as long as any of them may take to be written.
        let at = us(now);
        query::<B>(
            "INSERT INTO device_deletions (tenant, id, deleted_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, id) DO UPDATE SET deleted_at = excluded.deleted_at",
        )
        .arg(tenant)
        .arg(id)
        .arg(at)
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        query::<B>("DELETE FROM device_deletions WHERE tenant = $1 AND deleted_at < $2")
            .arg(tenant)
            .arg(at.saturating_sub(DELETIONS_KEPT_US))
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        self.commit_events(tx, tenant, vec![Change::DeviceDeleted { device: id.to_owned() }]).await
    }

    async fn set_device_token(&self, tenant: &str, id: &str, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>("UPDATE devices SET token_hash = $3 WHERE tenant = $1 AND id = $2")
            .arg(tenant)
            .arg(id)
            .arg(token_hash)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("device", id));
        }
        self.commit_events(tx, tenant, vec![Change::DeviceTokenChanged { device: id.to_owned() }]).await
    }

    async fn device_identity_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<DeviceIdentity>> {
        let row: Option<IdentityRow> =
            query::<B>("SELECT tenant, id, attributes_requested FROM devices WHERE token_hash = $1")
                .arg(token_hash)
                .optional_row(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(row.map(Into::into))
    }

    async fn device_identity(&self, tenant: &str, id: &str) -> StoreResult<Option<DeviceIdentity>> {
        let row: Option<IdentityRow> =
            query::<B>("SELECT tenant, id, attributes_requested FROM devices WHERE tenant = $1 AND id = $2")
                .arg(tenant)
                .arg(id)
                .optional_row(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(row.map(Into::into))
    }

    async fn poll_seeds(&self, after: Option<(&str, &str)>, limit: u32) -> StoreResult<Vec<PollSeed>> {
        // No device has an empty tenant and id: ('', '') comes before them all. Both
        // look-ups are per device through `executions_device` (an `EXISTS` may be
        // planned as a hash of every offered execution, built again for each page).
        let (tenant, id) = after.unwrap_or(("", ""));
        let sql = format!(
            "SELECT d.tenant, d.id, d.token_hash, d.attributes_requested, \
               (SELECT max(e.action_id) FROM executions e \
                 WHERE e.tenant = d.tenant AND e.device = d.id AND e.state = 'succeeded') AS installed, \
               (SELECT max(e.action_id) FROM executions e \
                 WHERE e.tenant = d.tenant AND e.device = d.id AND e.state IN {OFFERED_STATES}) IS NOT NULL AS offered \
             FROM devices d WHERE (d.tenant, d.id) > ($1, $2) ORDER BY d.tenant, d.id LIMIT $3"
        );
        let rows: Vec<PollSeedRow> = query::<B>(AssertSqlSafe(sql))
            .arg(tenant)
            .arg(id)
            .arg(i64::from(limit))
            .rows(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn create_group(&self, tenant: &str, g: &Group) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if let Some(p) = &g.product {
            Self::product_exists(&mut tx, tenant, p, "product").await?;
        }
        query::<B>(
            "INSERT INTO device_groups (tenant, id, name, description, product, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .arg(tenant)
        .arg(&g.id)
        .arg(&g.name)
        .arg(&g.description)
        .arg(&g.product)
        .arg(us(g.created_at))
        .arg(us(g.updated_at))
        .run(&mut *tx)
        .await
        .map_err(conflict_or("group", &g.id))?;
        self.commit_events(tx, tenant, vec![Change::GroupCreated { group: g.id.clone() }]).await
    }

    async fn get_group(&self, tenant: &str, id: &str) -> StoreResult<Option<Group>> {
        self.get_one::<GroupRow, _>(GROUP_SELECT, "id", tenant, id).await
    }

    async fn list_groups(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Group>> {
        self.list::<GroupRow, Group>(&GROUP_LIST, &[("tenant = {}", tenant.to_owned())], page).await
    }

    async fn update_group(&self, tenant: &str, g: &Group) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>(
            "UPDATE device_groups SET name = $3, description = $4, updated_at = $5 WHERE tenant = $1 AND id = $2",
        )
        .arg(tenant)
        .arg(&g.id)
        .arg(&g.name)
        .arg(&g.description)
        .arg(us(g.updated_at))
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("group", &g.id));
        }
        self.commit_events(tx, tenant, vec![Change::GroupUpdated { group: g.id.clone() }]).await
    }

    async fn delete_group(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>("DELETE FROM device_groups WHERE tenant = $1 AND id = $2")
            .arg(tenant)
            .arg(id)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("group", id));
        }
        self.commit_events(tx, tenant, vec![Change::GroupDeleted { group: id.to_owned() }]).await
    }

    async fn change_members(
        &self,
        tenant: &str,
        group: &str,
        add: &[String],
        remove: &[String],
        now: Timestamp,
    ) -> StoreResult<MembershipChange> {
        let mut tx = self.begin_write().await?;
        let product: Option<Option<String>> =
            query::<B>("SELECT product FROM device_groups WHERE tenant = $1 AND id = $2")
                .arg(tenant)
                .arg(group)
                .optional_scalar(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(group_product) = product else {
            return Err(StoreError::not_found("group", group));
        };
        let mut errors = Vec::new();
        let mut missing = Vec::new();
        let found = Self::device_products(&mut tx, tenant, add).await?;
        for (i, id) in add.iter().enumerate() {
            match (found.get(id), &group_product) {
                (None, _) => missing.push(FieldError::new(format!("add.{i}"), format!("device `{id}` not found"))),
                (Some(p), Some(gp)) if p != gp => errors.push(FieldError::new(
                    format!("add.{i}"),
                    format!("device `{id}` is of product `{p}`, the group only holds `{gp}`"),
                )),
                _ => {}
            }
        }
        StoreError::refuse(errors, missing)?;
        let mut change = MembershipChange::default();
        for chunk in add.chunks(1000) {
            let mut q =
                QueryBuilder::<B::Db>::new("INSERT INTO group_members (tenant, group_id, device_id, added_at) ");
            q.push_values(chunk, |mut b, id| {
                b.push_arg(tenant).push_arg(group).push_arg(id).push_arg(us(now));
            });
            q.push(" ON CONFLICT DO NOTHING");
            change.added += B::rows_affected(&q.build().run(&mut *tx).await.map_err(db_err)?);
        }
        for chunk in remove.chunks(500) {
            let mut q = QueryBuilder::<B::Db>::new("DELETE FROM group_members WHERE tenant = ");
            q.push_arg(tenant).push(" AND group_id = ").push_arg(group).push(" AND device_id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_arg(id);
            }
            q.push(")");
            change.removed += B::rows_affected(&q.build().run(&mut *tx).await.map_err(db_err)?);
        }
        if change.added + change.removed > 0 {
            query::<B>("UPDATE device_groups SET updated_at = $3 WHERE tenant = $1 AND id = $2")
                .arg(tenant)
                .arg(group)
                .arg(us(now))
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let changes = if change.added + change.removed > 0 {
            vec![Change::MembersChanged { group: group.to_owned(), added: add.to_vec(), removed: remove.to_vec() }]
        } else {
            Vec::new()
        };
        self.commit_events(tx, tenant, changes).await?;
        Ok(change)
    }

    async fn device_groups(&self, tenant: &str, device: &str) -> StoreResult<Vec<String>> {
        query::<B>("SELECT group_id FROM group_members WHERE tenant = $1 AND device_id = $2 ORDER BY group_id")
            .arg(tenant)
            .arg(device)
            .scalars(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn device_summary(&self, tenant: &str) -> StoreResult<Vec<DeviceSummaryRow>> {
        let rows: Vec<(String, String, String, i64)> = query::<B>(
            "SELECT product, CAST(firmware AS TEXT), connection_status, COUNT(*) FROM devices WHERE tenant = $1 GROUP BY 1, 2, 3",
        )
        .arg(tenant)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(product, firmware, connection_status, n)| DeviceSummaryRow {
                product,
                firmware,
                connection_status,
                count: n.max(0) as u64,
            })
            .collect())
    }

    async fn count_devices_matching(&self, tenant: &str, filter: &Filter, now: Timestamp) -> StoreResult<u64> {
        let mut q = QueryBuilder::<B::Db>::new("SELECT COUNT(*) FROM devices WHERE tenant = ");
        q.push_arg(tenant.to_owned()).push(" AND ");
        Self::push_condition(&mut q, &filter_sql::compile(B::DIALECT, filter, now));
        let n: i64 = q.build().scalar(&self.pool).await.map_err(db_err)?;
        Ok(n as u64)
    }

    async fn list_devices_matching(
        &self,
        tenant: &str,
        scope: &DeviceScope,
        filter: &Filter,
        now: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>> {
        let filters = scope_filters(tenant, scope);
        let condition = filter_sql::compile(B::DIALECT, filter, now);
        self.list_where::<DeviceRow, Device>(&DEVICE_LIST, &filters, Some(&condition), page).await
    }

    async fn scan_devices(
        &self,
        tenant: &str,
        scope: &DeviceScope,
        filter: Option<(&Filter, Timestamp)>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeviceVersions>> {
        let mut q = QueryBuilder::<B::Db>::new("SELECT id, product, firmware FROM devices WHERE 1 = 1");
        Self::push_filters(&mut q, &scope_filters(tenant, scope));
        if let Some((f, now)) = filter {
            q.push(" AND ");
            Self::push_condition(&mut q, &filter_sql::compile(B::DIALECT, f, now));
        }
        if let Some(after) = after {
            q.push(" AND id > ").push_arg(after.to_owned());
        }
        q.push(" ORDER BY id LIMIT ").push_arg(i64::from(limit));
        let rows: Vec<DeviceVersionsRow> = q.build().rows(&self.pool).await.map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn create_saved_filter(&self, tenant: &str, f: &SavedFilter) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>(
            "INSERT INTO saved_filters (tenant, id, name, description, filter, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .arg(tenant)
        .arg(&f.id)
        .arg(&f.name)
        .arg(&f.description)
        .arg(Json(f.filter.to_json()))
        .arg(us(f.created_at))
        .arg(us(f.updated_at))
        .arg(&f.updated_by)
        .run(&mut *tx)
        .await
        .map_err(conflict_or("filter", &f.id))?;
        self.commit_events(tx, tenant, vec![Change::FilterCreated { filter: f.id.clone() }]).await
    }

    async fn get_saved_filter(&self, tenant: &str, id: &str) -> StoreResult<Option<SavedFilter>> {
        let row: Option<SavedFilterRow> =
            query::<B>(AssertSqlSafe(format!("{SAVED_FILTER_SELECT} WHERE tenant = $1 AND id = $2")))
                .arg(tenant)
                .arg(id)
                .optional_row(&self.pool)
                .await
                .map_err(db_err)?;
        row.map(SavedFilter::try_from).transpose()
    }

    async fn list_saved_filters(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<SavedFilter>> {
        self.list::<SavedFilterRow, SavedFilter>(&SAVED_FILTER_LIST, &[("tenant = {}", tenant.to_owned())], page).await
    }

    async fn update_saved_filter(&self, tenant: &str, f: &SavedFilter) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>(
            "UPDATE saved_filters SET name = $3, description = $4, filter = $5, updated_at = $6, updated_by = $7
             WHERE tenant = $1 AND id = $2",
        )
        .arg(tenant)
        .arg(&f.id)
        .arg(&f.name)
        .arg(&f.description)
        .arg(Json(f.filter.to_json()))
        .arg(us(f.updated_at))
        .arg(&f.updated_by)
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("filter", &f.id));
        }
        self.commit_events(tx, tenant, vec![Change::FilterUpdated { filter: f.id.clone() }]).await
    }

    async fn delete_saved_filter(&self, tenant: &str, id: &str) -> StoreResult<()> {
        self.delete_row("saved_filters", "filter", tenant, id, Change::FilterDeleted { filter: id.to_owned() }).await
    }

    async fn create_group_token(&self, t: &GroupToken, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>(
            "INSERT INTO group_tokens (id, tenant, group_id, key_id, token_hash, created_at) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE EXISTS (SELECT 1 FROM device_groups WHERE tenant = $2 AND id = $3) \
             AND EXISTS (SELECT 1 FROM api_keys WHERE tenant = $2 AND id = $4)",
        )
        .arg(&t.id)
        .arg(&t.tenant)
        .arg(&t.group)
        .arg(&t.key)
        .arg(token_hash)
        .arg(us(t.created_at))
        .run(&mut *tx)
        .await
        .map_err(conflict_or("group token", &t.id))?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::Missing(vec![FieldError::new(
                "group",
                format!("group `{}` or key `{}` not found", t.group, t.key),
            )]));
        }
        self.commit_events(tx, &t.tenant, vec![Change::GroupTokenCreated { token: t.id.clone() }]).await
    }

    async fn group_token(&self, token_hash: &str) -> StoreResult<Option<(GroupToken, ApiKey)>> {
        let row: Option<GroupTokenRow> =
            query::<B>("SELECT id, tenant, group_id, key_id, created_at FROM group_tokens WHERE token_hash = $1")
                .arg(token_hash)
                .optional_row(&self.pool)
                .await
                .map_err(db_err)?;
        let Some(token) = row.map(GroupToken::try_from).transpose()? else { return Ok(None) };
        let key: Option<KeyRow> = query::<B>(AssertSqlSafe(format!("{KEY_SELECT} WHERE tenant = $1 AND id = $2")))
            .arg(&token.tenant)
            .arg(&token.key)
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(key) = key else { return Ok(None) };
        Ok(Some((token, ApiKey::try_from(key)?)))
    }

    async fn list_group_tokens(&self, tenant: &str) -> StoreResult<Vec<GroupToken>> {
        let rows: Vec<GroupTokenRow> = query::<B>(
            "SELECT id, tenant, group_id, key_id, created_at FROM group_tokens WHERE tenant = $1 \
             ORDER BY created_at, id",
        )
        .arg(tenant)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(GroupToken::try_from).collect()
    }

    async fn delete_group_token(&self, tenant: &str, id: &str) -> StoreResult<()> {
        self.delete_row("group_tokens", "group token", tenant, id, Change::GroupTokenDeleted { token: id.to_owned() })
            .await
    }

    async fn create_gateway_token(&self, t: &GatewayToken, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>("INSERT INTO gateway_tokens (id, tenant, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .arg(&t.id)
            .arg(&t.tenant)
            .arg(&t.name)
            .arg(token_hash)
            .arg(us(t.created_at))
            .run(&mut *tx)
            .await
            .map_err(conflict_or("gateway token", &t.id))?;
        self.commit_events(tx, &t.tenant, vec![Change::GatewayTokenCreated { token: t.id.clone() }]).await
    }

    async fn list_gateway_tokens(&self, tenant: &str) -> StoreResult<Vec<GatewayToken>> {
        let rows: Vec<GatewayRow> = query::<B>(
            "SELECT id, tenant, name, created_at FROM gateway_tokens WHERE tenant = $1 ORDER BY created_at, id",
        )
        .arg(tenant)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(GatewayToken::try_from).collect()
    }

    async fn delete_gateway_token(&self, tenant: &str, id: &str) -> StoreResult<()> {
        self.delete_row(
            "gateway_tokens",
            "gateway token",
            tenant,
            id,
            Change::GatewayTokenDeleted { token: id.to_owned() },
        )
        .await
    }

    async fn gateway_tenant(&self, token_hash: &str) -> StoreResult<Option<String>> {
        query::<B>("SELECT tenant FROM gateway_tokens WHERE token_hash = $1")
            .arg(token_hash)
            .optional_scalar(&self.pool)
            .await
            .map_err(db_err)
    }
}

impl<B: SqlBackend> SqlStore<B> {
    /// The product of each of `ids` that is a device of the tenant, read in `conn`.
    pub(crate) async fn device_products(
        conn: &mut Conn<B>,
        tenant: &str,
        ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, String>> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let mut q = QueryBuilder::<B::Db>::new("SELECT id, product FROM devices WHERE tenant = ");
            q.push_arg(tenant).push(" AND id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_arg(id);
            }
            q.push(")");
            let rows: Vec<(String, String)> = q.build().rows(&mut *conn).await.map_err(db_err)?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Registers all the devices or none, inside the caller's transaction (see `Store::create_devices`).
    pub(crate) async fn insert_devices(
        tx: &mut Conn<B>,
        tenant: &str,
        devices: &[NewDevice],
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut errors = Vec::new();
        let mut seen = std::collections::HashMap::with_capacity(devices.len());
        for (i, d) in devices.iter().enumerate() {
            if let Some(first) = seen.insert(d.id.as_str(), i) {
                errors.push(FieldError::new(format!("{i}.id"), format!("`{}` is repeated (first at {first})", d.id)));
            }
        }
        let mut products: Vec<&str> = devices.iter().map(|d| d.product.as_str()).collect();
        products.sort_unstable();
        products.dedup();
        let mut missing_products = std::collections::HashSet::new();
        for p in products {
            if !Self::product_known(tx, tenant, p).await? {
                missing_products.insert(p);
            }
        }
        for chunk in devices.chunks(500) {
            let mut q = QueryBuilder::<B::Db>::new("SELECT id FROM devices WHERE tenant = ");
            q.push_arg(tenant).push(" AND id IN (");
            let mut sep = q.separated(", ");
            for d in chunk {
                sep.push_arg(&d.id);
            }
            q.push(")");
            let taken: Vec<String> = q.build().scalars(&mut *tx).await.map_err(db_err)?;
            let taken: std::collections::HashSet<String> = taken.into_iter().collect();
            for d in chunk {
                if taken.contains(&d.id) {
                    let i = seen[d.id.as_str()];
                    errors.push(FieldError::new(format!("{i}.id"), format!("device `{}` already exists", d.id)));
                }
            }
        }
        let missing: Vec<FieldError> = (devices.iter().enumerate())
            .filter(|(_, d)| missing_products.contains(d.product.as_str()))
            .map(|(i, d)| FieldError::new(format!("{i}.product"), format!("product `{}` not found", d.product)))
            .collect();
        errors.sort_by_key(|e| e.field.split('.').next().and_then(|n| n.parse::<usize>().ok()));
        StoreError::refuse(errors, missing)?;
        for chunk in devices.chunks(1000) {
            let mut q = QueryBuilder::<B::Db>::new(
                "INSERT INTO devices (tenant, id, product, firmware, hardware_version, module_model, module_version,
             template_id, properties, metadata, activated_at, last_seen_at, connection_status, token_hash,
             created_at, updated_at, firmware_keys, hardware_version_key, module_version_key) ",
            );
            q.push_values(chunk, |mut b, d| {
                let a = &d.attributes;
                b.push_arg(tenant)
                    .push_arg(&d.id)
                    .push_arg(&d.product)
                    .push_arg(Json(&a.firmware))
                    .push_arg(&a.hardware_version)
                    .push_arg(&a.module_model)
                    .push_arg(&a.module_version)
                    .push_arg(&a.template_id)
                    .push_arg(Json(&a.properties))
                    .push_arg(Json(&a.metadata))
                    .push_arg(a.activated_at.map(us))
                    .push_arg(None::<i64>)
                    .push_arg(a.connection_status.unwrap_or_default().as_str())
                    .push_arg(&d.token_hash)
                    .push_arg(us(now))
                    .push_arg(us(now))
                    .push_arg(Json(filter_sql::firmware_keys(&a.firmware)))
                    .push_arg(filter_sql::version_key(a.hardware_version.as_deref()))
                    .push_arg(filter_sql::version_key(a.module_version.as_deref()));
            });
            q.build().run(&mut *tx).await.map_err(|e| {
                if is_unique_violation(&e) { StoreError::conflict("device", "(one of the batch)") } else { db_err(e) }
            })?;
        }
        Ok(())
    }
}

/// The equality filters (a clause with one `{}` for its value) that keep a
/// listing to `tenant`'s devices in `scope`.
fn scope_filters(tenant: &str, scope: &DeviceScope) -> Vec<(&'static str, String)> {
    let mut filters = vec![("tenant = {}", tenant.to_owned())];
    if let Some(p) = &scope.product {
        filters.push(("product = {}", p.clone()));
    }
    if let Some(g) = &scope.group {
        filters.push((GROUP_MEMBER_FILTER, g.clone()));
    }
    filters
}
