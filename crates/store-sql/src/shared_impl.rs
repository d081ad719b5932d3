//! The implementation of [`updraft_store::Store`] that both SQL backends
//! share, as a macro over the sqlx database type. The SQL here is written in
//! the dialect SQLite and PostgreSQL have in common (`$n` placeholders,
//! `ON CONFLICT`, `NULLS LAST`, `RETURNING`); what differs is passed in:
//!
//! - `$store`: the backend's store type, with a `pool` field and a
//!   `begin_write()` method that opens a write transaction its way;
//! - `$db`: the sqlx database type (`Sqlite`, `Postgres`);
//! - `like`: the case-insensitive LIKE operator (` LIKE ` or ` ILIKE `);
//! - `lock`: what locks rows read for update (` FOR UPDATE`, or nothing where
//!   the write transaction already excludes other writers);
//! - `name`: the backend's name;
//! - `dialect`: the [`crate::Dialect`] device filters are compiled to
//!   (JSON access, string collation; see [`crate::filter_sql`]);
//! - `visible`: the condition that keeps event reads gap-free (see
//!   `updraft_store::events`), appended after `AND`.
//!
//! Every method that changes state appends its events (`append_events`) in
//! its transaction and hands them to the feed once committed (`commit_events`);
//! the backend's `notify_events` tells other processes, where it can.
//!
//! Backend-specific operations (leases, `SKIP LOCKED`) live in the backend
//! crates, outside this macro.

/// Implements `Store` for `$store`; see the module documentation.
#[macro_export]
macro_rules! impl_sql_store {
    ($store:ident, $db:ident, like = $like:literal, lock = $lock:literal, name = $name:literal, dialect = $dialect:expr, visible = $visible:literal) => {
const _: () = {
use jiff::Timestamp;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, QueryBuilder};
use updraft_core::job::{Execution, ExecutionEvent, ExecutionState, Job, JobState, Transition, TransitionError};
use updraft_core::{ApiKey, Device, FieldError, Firmware, Group, KeyChange, KeyRefusal, NewDevice, Page, PageRequest, Product, Tenant};
use updraft_core::filter::Filter;
use updraft_store::{
    Change, DeviceActions, DeviceChange, DeviceIdentity, DeviceScope, Event, EventCursor, EventFeed, ExecutionRule, ExecutionScope, GatewayToken,
    IdempotentRequest, MembershipChange, SavedFilter, Sighting, Store, StoreError, StoreResult,
};
use $crate::*;

fn push_condition(q: &mut QueryBuilder<sqlx::$db>, c: &SqlCondition) {
    for p in &c.pieces {
        match p {
            Piece::Sql(s) => {
                q.push(s.as_str());
            }
            Piece::Arg(Arg::Text(v)) => {
                q.push_bind(v.clone());
            }
            Piece::Arg(Arg::Int(v)) => {
                q.push_bind(*v);
            }
            Piece::Arg(Arg::Real(v)) => {
                q.push_bind(*v);
            }
        }
    }
}

/// Appends `changes` of `tenant` to the event stream inside the caller's transaction.
async fn append_events(
    conn: &mut <sqlx::$db as sqlx::Database>::Connection,
    tenant: &str,
    changes: Vec<Change>,
) -> StoreResult<Vec<Event>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let at = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut events = Vec::with_capacity(changes.len());
    for change in changes {
        let (seq, tx): (i64, i64) = sqlx::query_as(
            "INSERT INTO events (tenant, at, kind, subject, payload) VALUES ($1, $2, $3, $4, $5) RETURNING seq, tx",
        )
        .bind(tenant)
        .bind(us(at))
        .bind(change.kind())
        .bind(change.subject())
        .bind(Json(&change))
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
        events.push(Event { cursor: EventCursor { tx, seq }, tenant: tenant.to_owned(), at, change });
    }
    Ok(events)
}

impl $store {
    /// Appends `changes`, commits `tx`, and hands the events to the feed.
    async fn commit_events(&self, mut tx: sqlx::Transaction<'_, sqlx::$db>, tenant: &str, changes: Vec<Change>) -> StoreResult<()> {
        let events = append_events(&mut tx, tenant, changes).await?;
        self.commit_appended(tx, events).await
    }

    /// Commits `tx`, whose `events` are appended, and hands them to the feed.
    async fn commit_appended(&self, mut tx: sqlx::Transaction<'_, sqlx::$db>, events: Vec<Event>) -> StoreResult<()> {
        if !events.is_empty() {
            self.notify_events(&mut tx).await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.feed.committed(events);
        Ok(())
    }

    /// One record of `tenant` by its key column, decoded from `select`'s row.
    async fn get_one<R, T>(&self, select: &str, key_column: &str, tenant: &str, key: &str) -> StoreResult<Option<T>>
    where
        R: for<'r> sqlx::FromRow<'r, <sqlx::$db as sqlx::Database>::Row> + Send + Unpin,
        T: TryFrom<R, Error = StoreError>,
    {
        let row: Option<R> = sqlx::query_as(AssertSqlSafe(format!("{select} WHERE tenant = $1 AND {key_column} = $2")))
            .bind(tenant)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(T::try_from).transpose()
    }

    /// Fills in the version sort keys of devices written before they were kept
    /// (migration 0004), a batch at a time; a no-op once done.
    pub async fn backfill_version_keys(&self) -> StoreResult<()> {
        loop {
            let rows: Vec<(String, String, Json<std::collections::BTreeMap<String, String>>, Option<String>, Option<String>)> =
                sqlx::query_as(
                    "SELECT tenant, id, firmware, hardware_version, module_version FROM devices \
                     WHERE firmware_keys IS NULL LIMIT 500",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = self.begin_write().await?;
            for (tenant, id, firmware, hw, mv) in rows {
                sqlx::query(
                    "UPDATE devices SET firmware_keys = $3, hardware_version_key = $4, module_version_key = $5 \
                     WHERE tenant = $1 AND id = $2",
                )
                .bind(&tenant)
                .bind(&id)
                .bind(Json(filter_sql::firmware_keys(&firmware.0)))
                .bind(filter_sql::version_key(hw.as_deref()))
                .bind(filter_sql::version_key(mv.as_deref()))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
        }
    }

    async fn list<R, T>(&self, spec: &ListSpec, filters: &[(&str, String)], page: &PageRequest) -> StoreResult<Page<T>>
    where
        R: for<'r> sqlx::FromRow<'r, <sqlx::$db as sqlx::Database>::Row> + Send + Unpin,
        T: TryFrom<R, Error = StoreError>,
    {
        self.list_where(spec, filters, None, page).await
    }

    /// Lists with the equality `filters` and, when given, one more condition.
    async fn list_where<R, T>(
        &self,
        spec: &ListSpec,
        filters: &[(&str, String)],
        condition: Option<&SqlCondition>,
        page: &PageRequest,
    ) -> StoreResult<Page<T>>
    where
        R: for<'r> sqlx::FromRow<'r, <sqlx::$db as sqlx::Database>::Row> + Send + Unpin,
        T: TryFrom<R, Error = StoreError>,
    {
        let mut total = 0;
        let mut items = Vec::new();
        let passes: &[u8] = if page.count_total { &[0, 1] } else { &[1] };
        for &pass in passes {
            let mut q = QueryBuilder::<sqlx::$db>::new(if pass == 0 { spec.count } else { spec.select });
            q.push(" WHERE 1 = 1");
            for (clause, value) in filters {
                let (before, after) = clause.split_once("{}").unwrap_or((clause, ""));
                q.push(" AND ").push(before).push_bind(value.clone()).push(after);
            }
            if let Some(c) = condition {
                q.push(" AND ");
                push_condition(&mut q, c);
            }
            if let Some(search) = &page.search {
                let pattern = like_pattern(search);
                q.push(" AND (");
                for (i, c) in spec.search.iter().enumerate() {
                    if i > 0 {
                        q.push(" OR ");
                    }
                    q.push(*c).push($like).push_bind(pattern.clone()).push(" ESCAPE '\\'");
                }
                q.push(")");
            }
            if pass == 0 {
                let n: i64 = q.build_query_scalar().fetch_one(&self.pool).await.map_err(db_err)?;
                total = n as u64;
                if total == 0 || page.offset >= total {
                    break;
                }
            } else {
                let col = sort_column(page, spec.sortable);
                q.push(format_args!(" ORDER BY {col} {o} NULLS LAST, {tiebreak} {o}", tiebreak = spec.tiebreak, o = order(page.order)));
                q.push(" LIMIT ").push_bind(page.limit as i64).push(" OFFSET ").push_bind(page.offset as i64);
                let rows: Vec<R> = q.build_query_as().fetch_all(&self.pool).await.map_err(db_err)?;
                items = rows.into_iter().map(T::try_from).collect::<StoreResult<Vec<T>>>()?;
                if !page.count_total {
                    total = page.offset + items.len() as u64;
                }
            }
        }
        Ok(Page { items, total })
    }
}


#[$crate::__private::async_trait]
impl Store for $store {
    fn backend(&self) -> &'static str {
        $name
    }

    async fn close(&self) {
        self.stop_listening();
        self.pool.close().await;
    }

    async fn ensure_tenant(&self, t: &Tenant) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(&t.id)
            .bind(&t.name)
            .bind(us(t.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let created = r.rows_affected() == 1;
        let changes = if created { vec![Change::TenantCreated { tenant: t.id.clone() }] } else { Vec::new() };
        self.commit_events(tx, &t.id, changes).await?;
        Ok(created)
    }

    async fn create_tenant(&self, t: &Tenant, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(us(t.created_at))
            .execute(&mut *tx)
            .await
            .map_err(conflict_or("tenant", &t.id))?;
        insert_key(&mut tx, key, token_hash).await?;
        let changes = vec![Change::TenantCreated { tenant: t.id.clone() }, Change::KeyCreated { key: key.id.clone() }];
        self.commit_events(tx, &t.id, changes).await
    }

    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let row: Option<TenantRow> = sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(Tenant::try_from).transpose()
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows: Vec<TenantRow> = sqlx::query_as("SELECT id, name, created_at FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(Tenant::try_from).collect()
    }

    async fn create_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_key(&mut tx, key, token_hash).await?;
        self.commit_events(tx, &key.tenant, vec![Change::KeyCreated { key: key.id.clone() }]).await
    }

    async fn key_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!("{KEY_SELECT} WHERE token_hash = $1")))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn list_keys(&self, tenant: &str) -> StoreResult<Vec<ApiKey>> {
        let rows: Vec<KeyRow> = sqlx::query_as(AssertSqlSafe(format!("{KEY_SELECT} WHERE tenant = $1 ORDER BY created_at, id")))
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    async fn change_key(
        &self,
        tenant: &str,
        id: &str,
        change: &KeyChange,
    ) -> StoreResult<Result<Option<ApiKey>, KeyRefusal>> {
        let mut tx = self.begin_write().await?;
        // Lock the tenant's admin keys: two concurrent changes cannot both take the last one.
        let admins: Vec<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{KEY_SELECT} WHERE tenant = $1 AND role = 'admin' ORDER BY id{}",
            $lock
        )))
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let key: ApiKey = lock_one::<KeyRow, _>(&mut tx, KEY_SELECT, "key", tenant, id).await?;
        let mut others = 0;
        for row in admins {
            let admin = ApiKey::try_from(row)?;
            if admin.id != key.id && admin.is_lasting_admin() {
                others += 1;
            }
        }
        let changed = match change.apply(&key, others) {
            Ok(changed) => changed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        match &changed {
            None => sqlx::query("DELETE FROM api_keys WHERE tenant = $1 AND id = $2").bind(tenant).bind(id),
            Some(k) => sqlx::query("UPDATE api_keys SET role = $3, name = $4, expires_at = $5 WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .bind(k.role.as_str())
                .bind(k.name.clone())
                .bind(k.expires_at.map(us)),
        }
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit_events(tx, tenant, vec![Change::KeyChanged { key: id.to_owned(), deleted: changed.is_none() }]).await?;
        Ok(Ok(changed))
    }

    async fn has_server_admin_key(&self) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE server_admin")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn replace_server_admin_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM api_keys WHERE server_admin OR token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_key(&mut tx, key, token_hash).await?;
        self.commit_events(tx, &key.tenant, vec![Change::KeyCreated { key: key.id.clone() }]).await
    }

    async fn create_product(&self, tenant: &str, p: &Product) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO products (tenant, key, name, description, version_scheme, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(&p.key)
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.version_scheme.as_str())
        .bind(us(p.created_at))
        .bind(us(p.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_or("product", &p.key))?;
        self.commit_events(tx, tenant, vec![Change::ProductCreated { product: p.key.clone() }]).await
    }

    async fn get_product(&self, tenant: &str, key: &str) -> StoreResult<Option<Product>> {
        self.get_one::<ProductRow, _>(PRODUCT_SELECT, "key", tenant, key).await
    }

    async fn list_products(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Product>> {
        self.list::<ProductRow, Product>(&PRODUCT_LIST, &[("tenant = {}", tenant.to_owned())], page)
        .await
    }

    async fn update_product(&self, tenant: &str, p: &Product) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE products SET name = $3, description = $4, version_scheme = $5, updated_at = $6
             WHERE tenant = $1 AND key = $2",
        )
        .bind(tenant)
        .bind(&p.key)
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.version_scheme.as_str())
        .bind(us(p.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("product", &p.key));
        }
        self.commit_events(tx, tenant, vec![Change::ProductUpdated { product: p.key.clone() }]).await
    }

    async fn delete_product(&self, tenant: &str, key: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for (table, by) in [("devices", "devices"), ("firmware", "firmware"), ("device_groups", "groups")] {
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table} WHERE tenant = $1 AND product = $2")))
                .bind(tenant)
                .bind(key)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            if n > 0 {
                return Err(StoreError::InUse { what: "product", id: key.to_owned(), by: format!("{n} {by}") });
            }
        }
        let r = sqlx::query("DELETE FROM products WHERE tenant = $1 AND key = $2")
            .bind(tenant)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("product", key));
        }
        self.commit_events(tx, tenant, vec![Change::ProductDeleted { product: key.to_owned() }]).await
    }

    async fn create_firmware(&self, tenant: &str, f: &Firmware) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        product_exists(&mut tx, tenant, &f.product, "product").await?;
        sqlx::query(
            "INSERT INTO firmware (tenant, id, product, version, name, release_notes, metadata,
                 needs_verification, verified, files, total_size, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(tenant)
        .bind(&f.id)
        .bind(&f.product)
        .bind(&f.version)
        .bind(&f.name)
        .bind(&f.release_notes)
        .bind(Json(&f.metadata))
        .bind(f.needs_verification)
        .bind(f.verified)
        .bind(Json(&f.files))
        .bind(f.total_size() as i64)
        .bind(us(f.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                let msg = e.to_string();
                if msg.contains("version") {
                    StoreError::conflict("firmware version", format!("{}@{}", f.product, f.version))
                } else {
                    StoreError::conflict("firmware", &f.id)
                }
            } else {
                db_err(e)
            }
        })?;
        self.commit_events(tx, tenant, vec![Change::FirmwareCreated { firmware: f.id.clone() }]).await
    }

    async fn get_firmware(&self, tenant: &str, id: &str) -> StoreResult<Option<Firmware>> {
        self.get_one::<FirmwareRow, _>(FIRMWARE_SELECT, "id", tenant, id).await
    }

    async fn list_firmware(&self, tenant: &str, product: Option<&str>, page: &PageRequest) -> StoreResult<Page<Firmware>> {
        let mut filters = vec![("tenant = {}", tenant.to_owned())];
        if let Some(p) = product {
            filters.push(("product = {}", p.to_owned()));
        }
        self.list::<FirmwareRow, Firmware>(&FIRMWARE_LIST, &filters, page)
        .await
    }

    async fn delete_firmware(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let running: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM executions WHERE tenant = $1 AND firmware = $2 AND state IN {ACTIVE_STATES}"
        )))
        .bind(tenant)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if running > 0 {
            return Err(StoreError::InUse {
                what: "firmware",
                id: id.to_owned(),
                by: format!("{running} unfinished executions of running jobs"),
            });
        }
        let r = sqlx::query("DELETE FROM firmware WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("firmware", id));
        }
        self.commit_events(tx, tenant, vec![Change::FirmwareDeleted { firmware: id.to_owned() }]).await
    }

    async fn create_devices(&self, tenant: &str, devices: &[NewDevice], now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_devices(&mut tx, tenant, devices, now).await?;
        let devices = devices.iter().map(|d| d.id.clone()).collect();
        self.commit_events(tx, tenant, vec![Change::DevicesCreated { devices }]).await
    }

    async fn create_devices_once(
        &self,
        tenant: &str,
        devices: &[NewDevice],
        now: Timestamp,
        request: &IdempotentRequest,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM idempotent_requests WHERE tenant = $1 AND expires_at <= $2")
            .bind(tenant)
            .bind(us(now))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO idempotent_requests (tenant, api_key, key, fingerprint, answer, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(&request.api_key)
        .bind(&request.key)
        .bind(&request.fingerprint)
        .bind(&request.answer)
        .bind(us(request.created_at))
        .bind(us(request.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_or("idempotency key", &request.key))?;
        insert_devices(&mut tx, tenant, devices, now).await?;
        let devices = devices.iter().map(|d| d.id.clone()).collect();
        self.commit_events(tx, tenant, vec![Change::DevicesCreated { devices }]).await
    }

    async fn idempotent_request(
        &self,
        tenant: &str,
        api_key: &str,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<Option<IdempotentRequest>> {
        let row: Option<(String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT api_key, key, fingerprint, answer, created_at, expires_at FROM idempotent_requests
             WHERE tenant = $1 AND api_key = $2 AND key = $3 AND expires_at > $4",
        )
        .bind(tenant)
        .bind(api_key)
        .bind(key)
        .bind(us(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|(api_key, key, fingerprint, answer, created_at, expires_at)| {
            Ok(IdempotentRequest { api_key, key, fingerprint, answer, created_at: ts(created_at)?, expires_at: ts(expires_at)? })
        })
        .transpose()
    }

    async fn set_device_token(&self, tenant: &str, id: &str, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE devices SET token_hash = $3 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("device", id));
        }
        self.commit_events(tx, tenant, vec![Change::DeviceTokenChanged { device: id.to_owned() }]).await
    }

    async fn get_device(&self, tenant: &str, id: &str) -> StoreResult<Option<Device>> {
        self.get_one::<DeviceRow, _>(DEVICE_SELECT, "id", tenant, id).await
    }

    async fn get_devices(&self, tenant: &str, ids: &[String]) -> StoreResult<Vec<Device>> {
        let mut devices = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut q = QueryBuilder::<sqlx::$db>::new(DEVICE_SELECT);
            q.push(" WHERE tenant = ").push_bind(tenant).push(" AND id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(id);
            }
            q.push(")");
            let rows: Vec<DeviceRow> = q.build_query_as().fetch_all(&self.pool).await.map_err(db_err)?;
            for r in rows {
                devices.push(Device::try_from(r)?);
            }
        }
        Ok(devices)
    }

    async fn list_devices(&self, tenant: &str, scope: &DeviceScope, page: &PageRequest) -> StoreResult<Page<Device>> {
        let mut filters = vec![("tenant = {}", tenant.to_owned())];
        if let Some(p) = &scope.product {
            filters.push(("product = {}", p.clone()));
        }
        if let Some(g) = &scope.group {
            filters.push((GROUP_MEMBER_FILTER, g.clone()));
        }
        self.list::<DeviceRow, Device>(&DEVICE_LIST, &filters, page)
        .await
    }

    async fn delete_device(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM devices WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("device", id));
        }
        self.commit_events(tx, tenant, vec![Change::DeviceDeleted { device: id.to_owned() }]).await
    }

    async fn create_group(&self, tenant: &str, g: &Group) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if let Some(p) = &g.product {
            product_exists(&mut tx, tenant, p, "product").await?;
        }
        sqlx::query(
            "INSERT INTO device_groups (tenant, id, name, description, product, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(&g.id)
        .bind(&g.name)
        .bind(&g.description)
        .bind(&g.product)
        .bind(us(g.created_at))
        .bind(us(g.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_or("group", &g.id))?;
        self.commit_events(tx, tenant, vec![Change::GroupCreated { group: g.id.clone() }]).await
    }

    async fn get_group(&self, tenant: &str, id: &str) -> StoreResult<Option<Group>> {
        self.get_one::<GroupRow, _>(GROUP_SELECT, "id", tenant, id).await
    }

    async fn list_groups(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Group>> {
        self.list::<GroupRow, Group>(&GROUP_LIST, &[("tenant = {}", tenant.to_owned())], page)
        .await
    }

    async fn update_group(&self, tenant: &str, g: &Group) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE device_groups SET name = $3, description = $4, updated_at = $5 WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(&g.id)
        .bind(&g.name)
        .bind(&g.description)
        .bind(us(g.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("group", &g.id));
        }
        self.commit_events(tx, tenant, vec![Change::GroupUpdated { group: g.id.clone() }]).await
    }

    async fn delete_group(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM device_groups WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
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
            sqlx::query_scalar("SELECT product FROM device_groups WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(group)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(group_product) = product else {
            return Err(StoreError::not_found("group", group));
        };
        let mut errors = Vec::new();
        let mut missing = Vec::new();
        let mut found = std::collections::HashMap::new();
        for chunk in add.chunks(500) {
            let mut q = QueryBuilder::<sqlx::$db>::new("SELECT id, product FROM devices WHERE tenant = ");
            q.push_bind(tenant).push(" AND id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(id);
            }
            q.push(")");
            let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *tx).await.map_err(db_err)?;
            found.extend(rows);
        }
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
            let mut q = QueryBuilder::<sqlx::$db>::new("INSERT INTO group_members (tenant, group_id, device_id, added_at) ");
            q.push_values(chunk, |mut b, id| {
                b.push_bind(tenant).push_bind(group).push_bind(id).push_bind(us(now));
            });
            q.push(" ON CONFLICT DO NOTHING");
            change.added += q.build().execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        }
        for chunk in remove.chunks(500) {
            let mut q = QueryBuilder::<sqlx::$db>::new("DELETE FROM group_members WHERE tenant = ");
            q.push_bind(tenant).push(" AND group_id = ").push_bind(group).push(" AND device_id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(id);
            }
            q.push(")");
            change.removed += q.build().execute(&mut *tx).await.map_err(db_err)?.rows_affected();
        }
        if change.added + change.removed > 0 {
            sqlx::query("UPDATE device_groups SET updated_at = $3 WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(group)
                .bind(us(now))
                .execute(&mut *tx)
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
    async fn create_gateway_token(&self, t: &GatewayToken, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO gateway_tokens (id, tenant, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&t.id)
            .bind(&t.tenant)
            .bind(&t.name)
            .bind(token_hash)
            .bind(us(t.created_at))
            .execute(&mut *tx)
            .await
            .map_err(conflict_or("gateway token", &t.id))?;
        self.commit_events(tx, &t.tenant, vec![Change::GatewayTokenCreated { token: t.id.clone() }]).await
    }

    async fn list_gateway_tokens(&self, tenant: &str) -> StoreResult<Vec<GatewayToken>> {
        let rows: Vec<GatewayRow> =
            sqlx::query_as("SELECT id, tenant, name, created_at FROM gateway_tokens WHERE tenant = $1 ORDER BY created_at, id")
                .bind(tenant)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows.into_iter().map(GatewayToken::try_from).collect()
    }

    async fn delete_gateway_token(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM gateway_tokens WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("gateway token", id));
        }
        self.commit_events(tx, tenant, vec![Change::GatewayTokenDeleted { token: id.to_owned() }]).await
    }

    async fn gateway_tenant(&self, token_hash: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT tenant FROM gateway_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn device_identity_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<DeviceIdentity>> {
        let row: Option<IdentityRow> =
            sqlx::query_as("SELECT tenant, id, attributes_requested FROM devices WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(row.map(Into::into))
    }

    async fn device_identity(&self, tenant: &str, id: &str) -> StoreResult<Option<DeviceIdentity>> {
        let row: Option<IdentityRow> =
            sqlx::query_as("SELECT tenant, id, attributes_requested FROM devices WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(row.map(Into::into))
    }

    async fn device_actions(&self, tenant: &str, device: &str) -> StoreResult<DeviceActions> {
        let sql = format!(
            "SELECT * FROM ({EXECUTION_SELECT} WHERE tenant = $1 AND device = $2 AND state IN {OFFERED_STATES} \
             ORDER BY action_id LIMIT 1) a \
             UNION ALL SELECT * FROM ({EXECUTION_SELECT} WHERE tenant = $1 AND device = $2 AND state = 'succeeded' \
             ORDER BY action_id DESC LIMIT 1) b"
        );
        let rows: Vec<ExecutionRow> =
            sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(device).fetch_all(&self.pool).await.map_err(db_err)?;
        let mut actions = DeviceActions::default();
        for r in rows {
            let e = Execution::try_from(r)?;
            if e.state == updraft_core::job::ExecutionState::Succeeded {
                actions.installed = Some(e);
            } else {
                actions.active = Some(e);
            }
        }
        Ok(actions)
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
        let mut d: Device = lock_one::<DeviceRow, _>(&mut tx, DEVICE_SELECT, "device", tenant, id).await?;
        if let Err(errors) = change(&mut d) {
            return Ok(Err(errors));
        }
        d.updated_at = now;
        sqlx::query(
            "UPDATE devices SET firmware = $3, hardware_version = $4, module_model = $5, module_version = $6,
                 template_id = $7, properties = $8, metadata = $9, activated_at = $10, connection_status = $11,
                 updated_at = $12, attributes_requested = CASE WHEN $13 THEN FALSE ELSE attributes_requested END,
                 firmware_keys = $14, hardware_version_key = $15, module_version_key = $16
             WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(&d.id)
        .bind(Json(&d.firmware))
        .bind(&d.hardware_version)
        .bind(&d.module_model)
        .bind(&d.module_version)
        .bind(&d.template_id)
        .bind(Json(&d.properties))
        .bind(Json(&d.metadata))
        .bind(d.activated_at.map(us))
        .bind(d.connection_status.as_str())
        .bind(us(now))
        .bind(reported)
        .bind(Json(filter_sql::firmware_keys(&d.firmware)))
        .bind(filter_sql::version_key(d.hardware_version.as_deref()))
        .bind(filter_sql::version_key(d.module_version.as_deref()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit_events(tx, tenant, vec![Change::DeviceUpdated { device: d.id.clone() }]).await?;
        Ok(Ok(d))
    }

    async fn record_presence(&self, seen: &[Sighting], offline_before: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for chunk in seen.chunks(1000) {
            let mut q = QueryBuilder::<sqlx::$db>::new("WITH v (tenant, id, first_at, t, polls) AS (");
            q.push_values(chunk, |mut b, s| {
                b.push_bind(&s.tenant).push_bind(&s.device).push_bind(us(s.first)).push_bind(us(s.last));
                b.push_bind(i64::from(s.polls));
            });
            // SET sees the row as it was: a device never seen before is initializing
            // until it polls again (a second poll in the same batch counts).
            q.push(
                ") UPDATE devices SET last_seen_at = v.t, \
                 activated_at = COALESCE(devices.activated_at, v.first_at), \
                 connection_status = CASE WHEN devices.last_seen_at IS NULL AND v.polls < 2 \
                 THEN 'initializing' ELSE 'online' END FROM v \
                 WHERE devices.tenant = v.tenant AND devices.id = v.id \
                 AND (devices.last_seen_at IS NULL OR devices.last_seen_at < v.t)",
            );
            q.build().execute(&mut *tx).await.map_err(db_err)?;
        }
        sqlx::query(
            "UPDATE devices SET connection_status = 'offline' WHERE connection_status IN ('online', 'initializing') \
             AND (last_seen_at < $1 OR (last_seen_at IS NULL AND updated_at < $1))",
        )
        .bind(us(offline_before))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn create_job(&self, tenant: &str, job: &Job, targets: &[(String, ExecutionState)], now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let mut missing = Vec::new();
        for chunk in targets.chunks(500) {
            let mut q = QueryBuilder::<sqlx::$db>::new("SELECT id FROM devices d WHERE d.tenant = ");
            q.push_bind(tenant).push(" AND d.id IN (");
            let mut sep = q.separated(", ");
            for (id, _) in chunk {
                sep.push_bind(id);
            }
            q.push(")");
            let rows: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await.map_err(db_err)?;
            let found: std::collections::HashSet<String> = rows.into_iter().collect();
            for (id, _) in chunk {
                if !found.contains(id) {
                    missing.push(FieldError::new(format!("devices.{id}"), format!("device `{id}` not found")));
                }
            }
        }
        StoreError::refuse(Vec::new(), missing)?;
        let spec = serde_json::to_string(&job.spec).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query(
            "INSERT INTO jobs (tenant, id, name, description, kind, firmware, product, state, consent_required,
                 created_at, started_at, finished_at, spec, held)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(tenant)
        .bind(&job.id)
        .bind(&job.name)
        .bind(&job.description)
        .bind(job.kind.as_str())
        .bind(&job.firmware)
        .bind(&job.product)
        .bind(job.state.as_str())
        .bind(job.consent_required)
        .bind(us(job.created_at))
        .bind(job.started_at.map(us))
        .bind(job.finished_at.map(us))
        .bind(spec)
        .bind(job.held)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or("job", &job.id))?;
        insert_executions(&mut tx, tenant, job, targets, now).await?;
        let mut changes = vec![Change::JobCreated { job: job.id.clone() }];
        if !targets.is_empty() {
            changes.push(Change::ExecutionsChanged { job: job.id.clone(), devices: targets.iter().map(|(d, _)| d.clone()).collect() });
        }
        self.commit_events(tx, tenant, changes).await
    }

    async fn live_jobs(&self) -> StoreResult<Vec<(String, Job)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            tenant: String,
            #[sqlx(flatten)]
            job: JobRow,
        }
        let sql = JOB_SELECT.replace("SELECT ", "SELECT tenant, ");
        let rows: Vec<Row> = sqlx::query_as(AssertSqlSafe(format!(
            "{sql} WHERE state IN ('scheduled', 'running', 'paused') ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(|r| Ok((r.tenant, Job::try_from(r.job)?))).collect()
    }

    async fn move_job(
        &self,
        tenant: &str,
        id: &str,
        from: JobState,
        to: JobState,
        held: bool,
        now: Timestamp,
    ) -> StoreResult<Option<Job>> {
        let mut tx = self.begin_write().await?;
        let mut job: Job = lock_one::<JobRow, _>(&mut tx, JOB_SELECT, "job", tenant, id).await?;
        if job.state != from {
            return Ok(None);
        }
        job.state = to;
        job.held = held;
        if to == JobState::Running && job.started_at.is_none() {
            job.started_at = Some(now);
        }
        if to.is_finished() {
            job.finished_at = Some(now);
            job.held = false;
        }
        sqlx::query("UPDATE jobs SET state = $3, held = $4, started_at = $5, finished_at = $6 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .bind(to.as_str())
            .bind(held)
            .bind(job.started_at.map(us))
            .bind(job.finished_at.map(us))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if to.is_finished() {
            end_executions(&mut tx, tenant, id, now).await?;
        }
        self.commit_events(tx, tenant, vec![Change::JobChanged { job: id.to_owned() }]).await?;
        Ok(Some(job))
    }

    async fn lease_job(&self, tenant: &str, id: &str, owner: &str, until: Timestamp, now: Timestamp) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE jobs SET lease_owner = $3, lease_until = $4
             WHERE tenant = $1 AND id = $2 AND (lease_owner IS NULL OR lease_owner = $3 OR lease_until < $5)",
        )
        .bind(tenant)
        .bind(id)
        .bind(owner)
        .bind(us(until))
        .bind(us(now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let n = sqlx::query("UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(n)
    }

    async fn update_job_spec(&self, tenant: &str, id: &str, spec: &updraft_core::rollout::JobSpec) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let spec = serde_json::to_string(spec).map_err(|e| StoreError::Backend(e.to_string()))?;
        let n = sqlx::query("UPDATE jobs SET spec = $3 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .bind(spec)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::not_found("job", id));
        }
        self.commit_events(tx, tenant, vec![Change::JobChanged { job: id.to_owned() }]).await
    }

    async fn pace_stats(&self, tenant: &str, job: &str, now: Timestamp) -> StoreResult<updraft_core::rollout::PaceStats> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        pace_stats_in(&mut conn, tenant, job, now).await
    }

    async fn release_executions(
        &self,
        tenant: &str,
        job: &str,
        device: Option<&str>,
        budget: updraft_store::ReleaseBudget<'_>,
        now: Timestamp,
    ) -> StoreResult<updraft_store::Released> {
        let mut tx = self.begin_write().await?;
        // Releases of one job queue on its row: each sees the others' in its pace.
        let j: Job = lock_one::<JobRow, _>(&mut tx, JOB_SELECT, "job", tenant, job).await?;
        let stats = pace_stats_in(&mut tx, tenant, job, now).await?;
        let allowed = budget(&j, &stats);
        if allowed == 0 {
            return Ok(updraft_store::Released { allowed, executions: vec![] });
        }
        let rows: Vec<ExecutionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE tenant = $1 AND job = $2 AND state = 'queued' AND ($4 IS NULL OR device = $4)
             AND NOT EXISTS (
                 SELECT 1 FROM executions o WHERE o.tenant = executions.tenant AND o.device = executions.device
                 AND o.state IN {IN_PROGRESS_STATES})
             ORDER BY action_id LIMIT $3{}",
            $lock
        )))
        .bind(tenant)
        .bind(job)
        .bind(allowed.min(i64::MAX as u64) as i64)
        .bind(device)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let candidates = rows.into_iter().map(Execution::try_from).collect::<StoreResult<Vec<_>>>()?;
        let devices: Vec<String> = candidates.iter().map(|e| e.device.clone()).collect();
        // Releases of other jobs to the same devices queue here; once in, look again
        // at what they committed.
        $store::lock_devices(&mut tx, tenant, &devices).await?;
        let busy = busy_devices(&mut tx, tenant, &devices).await?;
        let mut executions = Vec::with_capacity(candidates.len());
        for mut e in candidates {
            if busy.contains(&e.device) {
                continue;
            }
            let Ok(t) = updraft_core::job::on_release(&e, now) else { continue };
            apply_transition(&mut tx, tenant, &mut e, t, now).await?;
            executions.push(e);
        }
        let released: Vec<String> = executions.iter().map(|e| e.device.clone()).collect();
        let changes = if released.is_empty() {
            Vec::new()
        } else {
            vec![Change::ExecutionsChanged { job: job.to_owned(), devices: released.clone() }]
        };
        self.commit_events(tx, tenant, changes).await?;
        Ok(updraft_store::Released { allowed, executions })
    }

    async fn time_out_executions(
        &self,
        tenant: &str,
        job: &str,
        released_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<ExecutionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE tenant = $1 AND job = $2
             AND state IN ('notified', 'downloading', 'downloaded', 'installing') AND released_at < $3
             ORDER BY action_id{}",
            $lock
        )))
        .bind(tenant)
        .bind(job)
        .bind(us(released_before))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut e = Execution::try_from(row)?;
            if let Some(t) = updraft_core::job::on_timeout(&e, now) {
                apply_transition(&mut tx, tenant, &mut e, t, now).await?;
                out.push(e.device);
            }
        }
        let changes = if out.is_empty() {
            Vec::new()
        } else {
            vec![Change::ExecutionsChanged { job: job.to_owned(), devices: out.clone() }]
        };
        self.commit_events(tx, tenant, changes).await?;
        Ok(out)
    }

    async fn retry_executions(
        &self,
        tenant: &str,
        job: &str,
        retry: &updraft_core::rollout::Retry,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        if retry.count == 0 {
            return Ok(vec![]);
        }
        let due_before = us(now) - i64::from(retry.interval_minutes) * 60_000_000;
        let mut tx = self.begin_write().await?;
        let rows: Vec<ExecutionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{EXECUTION_SELECT} WHERE tenant = $1 AND job = $2 AND state IN ('failed', 'timed_out')
             AND attempt <= $3 AND finished_at <= $4 ORDER BY action_id{}",
            $lock
        )))
        .bind(tenant)
        .bind(job)
        .bind(i64::from(retry.count))
        .bind(due_before)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut e = Execution::try_from(row)?;
            if !updraft_core::rollout::retry_due(retry, e.attempt, e.finished_at.unwrap_or(now), now) {
                continue;
            }
            if let Some(t) = updraft_core::job::on_retry(&e, now) {
                apply_transition(&mut tx, tenant, &mut e, t, now).await?;
                sqlx::query(
                    "UPDATE executions SET attempt = attempt + 1, finished_at = NULL,
                         cancel_requested = FALSE WHERE action_id = $1",
                )
                .bind(e.action_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                allocate_actions(&mut tx, tenant, &[(e.action_id, e.attempt + 1)]).await?;
                out.push(e.device);
            }
        }
        let changes = if out.is_empty() {
            Vec::new()
        } else {
            vec![Change::ExecutionsChanged { job: job.to_owned(), devices: out.clone() }]
        };
        self.commit_events(tx, tenant, changes).await?;
        Ok(out)
    }

    async fn add_executions(
        &self,
        tenant: &str,
        job: &Job,
        targets: &[(String, ExecutionState)],
        now: Timestamp,
    ) -> StoreResult<u64> {
        if targets.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let n = insert_executions(&mut tx, tenant, job, targets, now).await?;
        let changes = if n == 0 {
            Vec::new()
        } else {
            vec![Change::ExecutionsChanged { job: job.id.clone(), devices: targets.iter().map(|(d, _)| d.clone()).collect() }]
        };
        self.commit_events(tx, tenant, changes).await?;
        Ok(n)
    }

    async fn job_has_devices(&self, tenant: &str, job: &str, devices: &[String]) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        for chunk in devices.chunks(500) {
            let mut q = QueryBuilder::<sqlx::$db>::new("SELECT device FROM executions WHERE tenant = ");
            q.push_bind(tenant).push(" AND job = ").push_bind(job).push(" AND device IN (");
            let mut sep = q.separated(", ");
            for d in chunk {
                sep.push_bind(d);
            }
            q.push(")");
            let rows: Vec<String> = q.build_query_scalar().fetch_all(&self.pool).await.map_err(db_err)?;
            out.extend(rows);
        }
        Ok(out)
    }

    async fn complete_job_if_done(&self, tenant: &str, id: &str, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = complete_if_done(&mut tx, tenant, id, now).await?;
        let changes = if done { vec![Change::JobChanged { job: id.to_owned() }] } else { Vec::new() };
        self.commit_events(tx, tenant, changes).await?;
        Ok(done)
    }

    async fn get_job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>> {
        self.get_one::<JobRow, _>(JOB_SELECT, "id", tenant, id).await
    }

    async fn list_jobs(&self, tenant: &str, state: Option<JobState>, page: &PageRequest) -> StoreResult<Page<Job>> {
        let mut filters = vec![("tenant = {}", tenant.to_owned())];
        if let Some(s) = state {
            filters.push(("state = {}", s.as_str().to_owned()));
        }
        self.list::<JobRow, Job>(&JOB_LIST, &filters, page).await
    }

    async fn execution_counts(&self, tenant: &str, job: &str) -> StoreResult<Vec<(ExecutionState, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM executions WHERE tenant = $1 AND job = $2 GROUP BY state")
                .bind(tenant)
                .bind(job)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        let mut counts = Vec::with_capacity(rows.len());
        for (state, n) in rows {
            let state = ExecutionState::parse(&state).ok_or_else(|| StoreError::Backend(format!("bad state {state}")))?;
            counts.push((state, n as u64));
        }
        counts.sort();
        Ok(counts)
    }

    async fn list_executions(&self, tenant: &str, scope: &ExecutionScope, page: &PageRequest) -> StoreResult<Page<Execution>> {
        let mut filters = vec![("tenant = {}", tenant.to_owned())];
        if let Some(j) = &scope.job {
            filters.push(("job = {}", j.clone()));
        }
        if let Some(d) = &scope.device {
            filters.push(("device = {}", d.clone()));
        }
        if let Some(s) = scope.state {
            filters.push(("state = {}", s.as_str().to_owned()));
        }
        self.list::<ExecutionRow, Execution>(&EXECUTION_LIST, &filters, page).await
    }

    async fn get_execution(&self, tenant: &str, action_id: i64) -> StoreResult<Option<Execution>> {
        let row: Option<ExecutionRow> =
            sqlx::query_as(AssertSqlSafe(format!("{EXECUTION_SELECT} WHERE tenant = $1 AND action_id = $2")))
                .bind(tenant)
                .bind(action_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.map(Execution::try_from).transpose()
    }

    async fn execution_by_action(
        &self,
        tenant: &str,
        device: &str,
        action: i64,
    ) -> StoreResult<Option<(Execution, u32)>> {
        let found: Option<(i64, i64)> =
            sqlx::query_as("SELECT action_id, attempt FROM execution_actions WHERE tenant = $1 AND action = $2")
                .bind(tenant)
                .bind(action)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        let Some((row, attempt)) = found else { return Ok(None) };
        let execution = self.get_execution(tenant, row).await?;
        Ok(execution.filter(|e| e.device == device).map(|e| (e, attempt as u32)))
    }

    async fn execution_history(&self, tenant: &str, action_id: i64) -> StoreResult<Vec<ExecutionEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{EVENT_SELECT} WHERE action_id = $2 AND EXISTS (SELECT 1 FROM executions e WHERE e.tenant = $1 \
             AND e.action_id = execution_events.action_id) ORDER BY seq"
        )))
        .bind(tenant)
        .bind(action_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(ExecutionEvent::try_from).collect()
    }

    async fn change_execution(
        &self,
        tenant: &str,
        action_id: i64,
        rule: ExecutionRule<'_>,
        now: Timestamp,
    ) -> StoreResult<Result<Execution, TransitionError>> {
        let mut tx = self.begin_write().await?;
        let row: Option<ExecutionRow> =
            sqlx::query_as(AssertSqlSafe(format!("{EXECUTION_SELECT} WHERE tenant = $1 AND action_id = $2{}", $lock)))
                .bind(tenant)
                .bind(action_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(row) = row else {
            return Err(StoreError::not_found("execution", action_id.to_string()));
        };
        let mut execution = Execution::try_from(row)?;
        let transition = match rule(&execution) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(Ok(execution)),
            Err(e) => return Ok(Err(e)),
        };
        apply_transition(&mut tx, tenant, &mut execution, transition, now).await?;
        let change = Change::ExecutionsChanged { job: execution.job.clone(), devices: vec![execution.device.clone()] };
        self.commit_events(tx, tenant, vec![change]).await?;
        Ok(Ok(execution))
    }

    async fn count_devices_matching(&self, tenant: &str, filter: &Filter, now: Timestamp) -> StoreResult<u64> {
        let mut q = QueryBuilder::<sqlx::$db>::new("SELECT COUNT(*) FROM devices WHERE tenant = ");
        q.push_bind(tenant.to_owned()).push(" AND ");
        push_condition(&mut q, &filter_sql::compile($dialect, filter, now));
        let n: i64 = q.build_query_scalar().fetch_one(&self.pool).await.map_err(db_err)?;
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
        let mut filters = vec![("tenant = {}", tenant.to_owned())];
        if let Some(p) = &scope.product {
            filters.push(("product = {}", p.clone()));
        }
        if let Some(g) = &scope.group {
            filters.push((GROUP_MEMBER_FILTER, g.clone()));
        }
        let condition = filter_sql::compile($dialect, filter, now);
        self.list_where::<DeviceRow, Device>(&DEVICE_LIST, &filters, Some(&condition), page).await
    }

    async fn device_groups(&self, tenant: &str, device: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT group_id FROM group_members WHERE tenant = $1 AND device_id = $2 ORDER BY group_id")
            .bind(tenant)
            .bind(device)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn create_saved_filter(&self, tenant: &str, f: &SavedFilter) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO saved_filters (tenant, id, name, description, filter, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant)
        .bind(&f.id)
        .bind(&f.name)
        .bind(&f.description)
        .bind(Json(f.filter.to_json()))
        .bind(us(f.created_at))
        .bind(us(f.updated_at))
        .bind(&f.updated_by)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or("filter", &f.id))?;
        self.commit_events(tx, tenant, vec![Change::FilterCreated { filter: f.id.clone() }]).await
    }

    async fn get_saved_filter(&self, tenant: &str, id: &str) -> StoreResult<Option<SavedFilter>> {
        let row: Option<SavedFilterRow> =
            sqlx::query_as(AssertSqlSafe(format!("{SAVED_FILTER_SELECT} WHERE tenant = $1 AND id = $2")))
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.map(SavedFilter::try_from).transpose()
    }

    async fn list_saved_filters(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<SavedFilter>> {
        self.list::<SavedFilterRow, SavedFilter>(&SAVED_FILTER_LIST, &[("tenant = {}", tenant.to_owned())], page).await
    }

    async fn update_saved_filter(&self, tenant: &str, f: &SavedFilter) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE saved_filters SET name = $3, description = $4, filter = $5, updated_at = $6, updated_by = $7
             WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(&f.id)
        .bind(&f.name)
        .bind(&f.description)
        .bind(Json(f.filter.to_json()))
        .bind(us(f.updated_at))
        .bind(&f.updated_by)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("filter", &f.id));
        }
        self.commit_events(tx, tenant, vec![Change::FilterUpdated { filter: f.id.clone() }]).await
    }

    async fn delete_saved_filter(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM saved_filters WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("filter", id));
        }
        self.commit_events(tx, tenant, vec![Change::FilterDeleted { filter: id.to_owned() }]).await
    }

    fn feed(&self) -> &EventFeed {
        &self.feed
    }

    async fn events_after(&self, after: EventCursor, limit: u32) -> StoreResult<Vec<Event>> {
        let rows: Vec<(i64, i64, String, i64, Json<Change>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT seq, tx, tenant, at, payload FROM events WHERE (tx, seq) > ($1, $2) AND {} ORDER BY tx, seq LIMIT $3",
            $visible
        )))
        .bind(after.tx)
        .bind(after.seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(seq, tx, tenant, at, change)| Ok(Event { cursor: EventCursor { tx, seq }, tenant, at: ts(at)?, change: change.0 }))
            .collect()
    }

    async fn events_waiting(&self, after: EventCursor) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE (tx, seq) > ($1, $2) LIMIT 1) AS e")
            .bind(after.tx)
            .bind(after.seq)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn event_tail(&self) -> StoreResult<EventCursor> {
        let row: Option<(i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT tx, seq FROM events WHERE {} ORDER BY tx DESC, seq DESC LIMIT 1",
            $visible
        )))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|(tx, seq)| EventCursor { tx, seq }).unwrap_or_default())
    }

    async fn claim_follower(&self, follower: &str, owner: &str, until: Timestamp, now: Timestamp) -> StoreResult<Option<EventCursor>> {
        for _ in 0..2 {
            let claimed: Option<(i64, i64)> = sqlx::query_as(
                "UPDATE event_followers SET owner = $2, lease_until = $3
                 WHERE name = $1 AND (owner IS NULL OR owner = $2 OR lease_until IS NULL OR lease_until < $4)
                 RETURNING tx, seq",
            )
            .bind(follower)
            .bind(owner)
            .bind(us(until))
            .bind(us(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            if let Some((tx, seq)) = claimed {
                return Ok(Some(EventCursor { tx, seq }));
            }
            let known: Option<i64> = sqlx::query_scalar("SELECT seq FROM event_followers WHERE name = $1")
                .bind(follower)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            if known.is_some() {
                return Ok(None);
            }
            let tail = self.event_tail().await?;
            sqlx::query("INSERT INTO event_followers (name, tx, seq) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(follower)
                .bind(tail.tx)
                .bind(tail.seq)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        }
        Ok(None)
    }

    async fn advance_follower(&self, follower: &str, owner: &str, to: EventCursor) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE event_followers SET tx = $3, seq = $4 WHERE name = $1 AND owner = $2 AND (tx, seq) <= ($3, $4)")
            .bind(follower)
            .bind(owner)
            .bind(to.tx)
            .bind(to.seq)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_followers(&self, owner: &str) -> StoreResult<()> {
        sqlx::query("UPDATE event_followers SET owner = NULL, lease_until = NULL WHERE owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM events WHERE at < $1").bind(us(before)).execute(&self.pool).await.map_err(db_err)?;
        Ok(r.rows_affected())
    }
}

/// Registers all the devices or none, inside the caller's transaction (see `Store::create_devices`).
async fn insert_devices(
    tx: &mut <sqlx::$db as sqlx::Database>::Connection,
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
        if !product_known(tx, tenant, p).await? {
            missing_products.insert(p);
        }
    }
    for chunk in devices.chunks(500) {
        let mut q = QueryBuilder::<sqlx::$db>::new("SELECT id FROM devices WHERE tenant = ");
        q.push_bind(tenant).push(" AND id IN (");
        let mut sep = q.separated(", ");
        for d in chunk {
            sep.push_bind(&d.id);
        }
        q.push(")");
        let taken: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await.map_err(db_err)?;
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
        let mut q = QueryBuilder::<sqlx::$db>::new(
            "INSERT INTO devices (tenant, id, product, firmware, hardware_version, module_model, module_version,
             template_id, properties, metadata, activated_at, last_seen_at, connection_status, token_hash,
             created_at, updated_at, firmware_keys, hardware_version_key, module_version_key) ",
        );
        q.push_values(chunk, |mut b, d| {
            let a = &d.attributes;
            b.push_bind(tenant)
                .push_bind(&d.id)
                .push_bind(&d.product)
                .push_bind(Json(&a.firmware))
                .push_bind(&a.hardware_version)
                .push_bind(&a.module_model)
                .push_bind(&a.module_version)
                .push_bind(&a.template_id)
                .push_bind(Json(&a.properties))
                .push_bind(Json(&a.metadata))
                .push_bind(a.activated_at.map(us))
                .push_bind(None::<i64>)
                .push_bind(a.connection_status.unwrap_or_default().as_str())
                .push_bind(&d.token_hash)
                .push_bind(us(now))
                .push_bind(us(now))
                .push_bind(Json(filter_sql::firmware_keys(&a.firmware)))
                .push_bind(filter_sql::version_key(a.hardware_version.as_deref()))
                .push_bind(filter_sql::version_key(a.module_version.as_deref()));
        });
        q.build().execute(&mut *tx).await.map_err(|e| {
            if is_unique_violation(&e) { StoreError::conflict("device", "(one of the batch)") } else { db_err(e) }
        })?;
    }
    Ok(())
}

async fn insert_key(tx: &mut <sqlx::$db as sqlx::Database>::Connection, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, tenant, role, name, server_admin, token_hash, created_at, expires_at, token_prefix)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&key.id)
    .bind(&key.tenant)
    .bind(key.role.as_str())
    .bind(&key.name)
    .bind(key.server_admin)
    .bind(token_hash)
    .bind(us(key.created_at))
    .bind(key.expires_at.map(us))
    .bind(&key.token_prefix)
    .execute(&mut *tx)
    .await
    .map_err(conflict_or("key", &key.id))?;
    Ok(())
}

async fn product_known(tx: &mut <sqlx::$db as sqlx::Database>::Connection, tenant: &str, key: &str) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products WHERE tenant = $1 AND key = $2")
        .bind(tenant)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    Ok(n > 0)
}

/// `Missing` (`field`) when the tenant has no product `key`.
async fn product_exists(tx: &mut <sqlx::$db as sqlx::Database>::Connection, tenant: &str, key: &str, field: &str) -> StoreResult<()> {
    if product_known(tx, tenant, key).await? {
        Ok(())
    } else {
        Err(StoreError::Missing(vec![FieldError::new(field, format!("product `{key}` not found"))]))
    }
}

/// See [`Store::pace_stats`]; in a transaction, or on a connection of the pool.
async fn pace_stats_in(
    conn: &mut <sqlx::$db as sqlx::Database>::Connection,
    tenant: &str,
    job: &str,
    now: Timestamp,
) -> StoreResult<updraft_core::rollout::PaceStats> {
    let minute_ago = us(now) - 60_000_000;
    let (in_progress, last_minute, released, succeeded): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) =
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT
                 SUM(CASE WHEN state IN {IN_PROGRESS_STATES} THEN 1 ELSE 0 END),
                 SUM(CASE WHEN released_at > $3 THEN 1 ELSE 0 END),
                 SUM(CASE WHEN released_at < $4 THEN 1 ELSE 0 END),
                 SUM(CASE WHEN state = 'succeeded' AND finished_at < $4 THEN 1 ELSE 0 END)
             FROM executions WHERE tenant = $1 AND job = $2"
        )))
        .bind(tenant)
        .bind(job)
        .bind(minute_ago)
        .bind(us(now))
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    // Releases of the last minute by age in seconds, counting every attempt: an execution
    // released in the window has its latest release in it, and its history keeps the earlier ones.
    let mut by_second = vec![0u64; 60];
    if last_minute.unwrap_or(0) > 0 {
        let ages: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT ($4 - ev.at) / 1000000, COUNT(*) FROM execution_events ev
             WHERE ev.report = 'released' AND ev.at > $3
             AND ev.action_id IN (SELECT action_id FROM executions WHERE tenant = $1 AND job = $2 AND released_at > $3)
             GROUP BY 1",
        )
        .bind(tenant)
        .bind(job)
        .bind(minute_ago)
        .bind(us(now))
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        for (age, n) in ages {
            // A release stamped after `now` (another replica's clock) counts as this second's.
            by_second[age.clamp(0, 59) as usize] += n.max(0) as u64;
        }
    }
    let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    Ok(updraft_core::rollout::PaceStats {
        in_progress: n(in_progress),
        released_last_minute: by_second.iter().sum(),
        released_by_second: by_second,
        released_total: n(released),
        succeeded_total: n(succeeded),
    })
}

/// Those of `devices` with an execution in progress.
async fn busy_devices(
    tx: &mut <sqlx::$db as sqlx::Database>::Connection,
    tenant: &str,
    devices: &[String],
) -> StoreResult<std::collections::HashSet<String>> {
    let mut busy = std::collections::HashSet::new();
    for chunk in devices.chunks(1000) {
        let mut q = QueryBuilder::<sqlx::$db>::new("SELECT DISTINCT device FROM executions WHERE tenant = ");
        q.push_bind(tenant.to_owned());
        q.push(format!(" AND state IN {IN_PROGRESS_STATES} AND device IN ("));
        let mut list = q.separated(", ");
        for d in chunk {
            list.push_bind(d.clone());
        }
        q.push(")");
        let found: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await.map_err(db_err)?;
        busy.extend(found);
    }
    Ok(busy)
}

/// Writes a transition: the execution's new state, its history event, and
/// what follows (installed versions on success, the job's completion).
/// Reads the row of `select` with key `id` in the transaction, locked against
/// concurrent writers until it ends (`FOR UPDATE` on PostgreSQL; SQLite's write
/// transaction locks the database); `NotFound` names it as `what`.
async fn lock_one<R, T>(
    tx: &mut <sqlx::$db as sqlx::Database>::Connection,
    select: &str,
    what: &'static str,
    tenant: &str,
    id: &str,
) -> StoreResult<T>
where
    R: for<'r> sqlx::FromRow<'r, <sqlx::$db as sqlx::Database>::Row> + Send + Unpin,
    T: TryFrom<R, Error = StoreError>,
{
    let row: Option<R> = sqlx::query_as(AssertSqlSafe(format!("{select} WHERE tenant = $1 AND id = $2{}", $lock)))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
    row.map(T::try_from).transpose()?.ok_or_else(|| StoreError::not_found(what, id))
}

/// Gives each new attempt `(execution, attempt)` the next action id of its
/// tenant's counter (wrapping after `MAX_ACTION`: see `next_action`), on the
/// execution and in the map of every attempt's id.
async fn allocate_actions(
    tx: &mut <sqlx::$db as sqlx::Database>::Connection,
    tenant: &str,
    attempts: &[(i64, u32)],
) -> StoreResult<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut last: i64 =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT last_action FROM tenants WHERE id = $1{}", $lock)))
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
    let given: Vec<(i64, i64, u32)> = attempts
        .iter()
        .map(|(row, attempt)| {
            last = updraft_core::job::next_action(last);
            (*row, last, *attempt)
        })
        .collect();
    sqlx::query("UPDATE tenants SET last_action = $2 WHERE id = $1")
        .bind(tenant)
        .bind(last)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    for chunk in given.chunks(1000) {
        let mut q = QueryBuilder::<sqlx::$db>::new("WITH v (action_id, action) AS (");
        q.push_values(chunk, |mut b, (row, n, _)| {
            b.push_bind(*row).push_bind(*n);
        });
        q.push(") UPDATE executions SET action = v.action FROM v WHERE executions.action_id = v.action_id");
        q.build().execute(&mut *tx).await.map_err(db_err)?;
        let mut q = QueryBuilder::<sqlx::$db>::new("INSERT INTO execution_actions (tenant, action, action_id, attempt) ");
        q.push_values(chunk, |mut b, (row, n, attempt)| {
            b.push_bind(tenant).push_bind(*n).push_bind(*row).push_bind(i64::from(*attempt));
        });
        // A wrapped counter reuses a number: it now names the new attempt.
        q.push(
            " ON CONFLICT (tenant, action) DO UPDATE SET action_id = excluded.action_id, \
             attempt = excluded.attempt",
        );
        q.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    Ok(())
}

/// Inserts executions for `targets` (devices the job already has are left as
/// they are), each with its first history event; answers how many were added.
async fn insert_executions(
    tx: &mut <sqlx::$db as sqlx::Database>::Connection,
    tenant: &str,
    job: &Job,
    targets: &[(String, ExecutionState)],
    now: Timestamp,
) -> StoreResult<u64> {
    let mut added = 0;
    for chunk in targets.chunks(1000) {
        let mut q = QueryBuilder::<sqlx::$db>::new(
            "INSERT INTO executions (tenant, job, device, firmware, state, attempt, cancel_requested,
             created_at, updated_at, finished_at) ",
        );
        q.push_values(chunk, |mut b, (device, state)| {
            b.push_bind(tenant)
                .push_bind(&job.id)
                .push_bind(device)
                .push_bind(&job.firmware)
                .push_bind(state.as_str())
                .push_bind(1i64)
                .push_bind(false)
                .push_bind(us(now))
                .push_bind(us(now))
                .push_bind(if state.is_terminal() { Some(us(now)) } else { None });
        });
        q.push(" ON CONFLICT (tenant, job, device) DO NOTHING RETURNING action_id, state");
        let created: Vec<(i64, String)> = q.build_query_as().fetch_all(&mut *tx).await.map_err(db_err)?;
        if created.is_empty() {
            continue;
        }
        let first: Vec<(i64, u32)> = created.iter().map(|(row, _)| (*row, 1)).collect();
        allocate_actions(&mut *tx, tenant, &first).await?;
        added += created.len() as u64;
        let mut q = QueryBuilder::<sqlx::$db>::new(
            "INSERT INTO execution_events (action_id, seq, at, state, source, report, details) ",
        );
        q.push_values(&created, |mut b, (action_id, state)| {
            b.push_bind(*action_id)
                .push_bind(1i64)
                .push_bind(us(now))
                .push_bind(state.as_str())
                .push_bind("server")
                .push_bind("created")
                .push_bind(Json(Vec::<String>::new()));
        });
        q.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    Ok(added)
}

/// Ends a job's unstarted executions and asks its started ones to stop.
async fn end_executions(
    tx: &mut <sqlx::$db as sqlx::Database>::Connection,
    tenant: &str,
    job: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let rows: Vec<ExecutionRow> = sqlx::query_as(AssertSqlSafe(format!(
        "{EXECUTION_SELECT} WHERE tenant = $1 AND job = $2 AND state IN {ACTIVE_STATES} ORDER BY action_id{}",
        $lock
    )))
    .bind(tenant)
    .bind(job)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    for row in rows {
        let mut e = Execution::try_from(row)?;
        if let Some(t) = updraft_core::job::on_cancel_requested(&e, now) {
            apply_transition(&mut *tx, tenant, &mut e, t, now).await?;
        }
    }
    Ok(())
}

/// See [`Store::complete_job_if_done`].
async fn complete_if_done(
    tx: &mut <sqlx::$db as sqlx::Database>::Connection,
    tenant: &str,
    job: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let row: Option<JobRow> =
        sqlx::query_as(AssertSqlSafe(format!("{JOB_SELECT} WHERE tenant = $1 AND id = $2")))
            .bind(tenant)
            .bind(job)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
    let Some(row) = row else { return Ok(false) };
    let j = Job::try_from(row)?;
    if !matches!(j.state, JobState::Running | JobState::Paused)
        || j.spec.recurrence == updraft_core::rollout::Recurrence::Continuous
    {
        return Ok(false);
    }
    // Runs on every execution that finishes: look for one unfinished execution through the
    // (tenant, job, state) index and stop there, rather than counting the whole job.
    let open: Option<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT 1 FROM executions WHERE tenant = $1 AND job = $2
             AND state IN ('queued', 'awaiting_consent', 'notified', 'downloading', 'downloaded', 'installing',
                           'failed', 'timed_out')
             AND (state NOT IN ('failed', 'timed_out') OR attempt <= $3)
         LIMIT 1"
    )))
    .bind(tenant)
    .bind(job)
    .bind(i64::from(j.spec.retry.count))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err)?;
    if open.is_some() {
        return Ok(false);
    }
    sqlx::query("UPDATE jobs SET state = 'completed', held = FALSE, finished_at = $3 WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(job)
        .bind(us(now))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    if j.kind == updraft_core::job::JobKind::Verify {
        let other: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM executions WHERE tenant = $1 AND job = $2 AND state <> 'succeeded' LIMIT 1",
        )
        .bind(tenant)
        .bind(job)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if other.is_some() {
            return Ok(true);
        }
        sqlx::query("UPDATE firmware SET verified = TRUE WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(&j.firmware)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    Ok(true)
}

async fn apply_transition(
    tx: &mut <sqlx::$db as sqlx::Database>::Connection,
    tenant: &str,
    e: &mut Execution,
    t: Transition,
    now: Timestamp,
) -> StoreResult<()> {
    if e.state == ExecutionState::Queued && t.state == ExecutionState::Notified {
        // Released to the device: pace and timeouts count from now.
        sqlx::query("UPDATE executions SET released_at = $2 WHERE action_id = $1")
            .bind(e.action_id)
            .bind(us(now))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    let finished = t.state.is_terminal() && !e.state.is_terminal();
    e.state = t.state;
    e.cancel_requested = t.cancel_requested;
    e.progress = t.progress;
    e.updated_at = now;
    if finished {
        e.finished_at = Some(now);
    }
    sqlx::query(
        "UPDATE executions SET state = $2, cancel_requested = $3, progress_cnt = $4, progress_of = $5,
             updated_at = $6, finished_at = $7 WHERE action_id = $1",
    )
    .bind(e.action_id)
    .bind(e.state.as_str())
    .bind(e.cancel_requested)
    .bind(e.progress.map(|p| p.cnt as i64))
    .bind(e.progress.and_then(|p| p.of).map(|o| o as i64))
    .bind(us(now))
    .bind(e.finished_at.map(us))
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    let ev = &t.event;
    sqlx::query(
        "INSERT INTO execution_events (action_id, seq, at, state, source, report, code, progress_cnt, progress_of, details)
         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM execution_events WHERE action_id = $1), $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.action_id)
    .bind(us(ev.at))
    .bind(ev.state.as_str())
    .bind(ev.source.as_str())
    .bind(&ev.report)
    .bind(ev.code.map(i64::from))
    .bind(ev.progress.map(|p| p.cnt as i64))
    .bind(ev.progress.and_then(|p| p.of).map(|o| o as i64))
    .bind(Json(&ev.details))
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    if !finished {
        return Ok(());
    }
    if e.state == ExecutionState::Succeeded && !t.installs {
        // A download-only success: nothing installed; the device is asked for its attributes.
        sqlx::query("UPDATE devices SET attributes_requested = TRUE WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(&e.device)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    if e.state == ExecutionState::Succeeded && t.installs {
        let files: Option<Json<Vec<updraft_core::FirmwareFile>>> =
            sqlx::query_scalar("SELECT files FROM firmware WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(&e.firmware)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let installed: Option<Json<std::collections::BTreeMap<String, String>>> =
            sqlx::query_scalar("SELECT firmware FROM devices WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(&e.device)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if let (Some(files), Some(Json(mut installed))) = (files, installed) {
            for f in files.0 {
                installed.insert(f.component, f.version);
            }
            sqlx::query(
                "UPDATE devices SET firmware = $3, attributes_requested = TRUE, updated_at = $4, firmware_keys = $5
                 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(&e.device)
            .bind(Json(&installed))
            .bind(us(now))
            .bind(Json(filter_sql::firmware_keys(&installed)))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
    }
    complete_if_done(&mut *tx, tenant, &e.job, now).await?;
    Ok(())
}

};
    };
}
