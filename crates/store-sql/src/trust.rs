//! TUF repositories: online keys and signed metadata versions.

use async_trait::async_trait;
use jiff::Timestamp;
use updraft_app::store::{Change, StoreError, StoreResult, TrustKey, TrustMetadata, TrustRole, TrustStore};

use crate::query::{QueryExt, query};
use crate::{SqlBackend, SqlStore, db_err, ts, us};

fn role(s: &str) -> StoreResult<TrustRole> {
    TrustRole::parse(s).ok_or_else(|| StoreError::Backend(format!("unknown trust role `{s}` stored")))
}

fn version(v: i64) -> u64 {
    v.max(0) as u64
}

#[async_trait]
impl<B: SqlBackend> TrustStore for SqlStore<B> {
    async fn trust_keys(&self, tenant: &str, product: &str) -> StoreResult<Vec<TrustKey>> {
        let rows: Vec<(String, String, String, String, i64)> = query::<B>(
            "SELECT key_id, role, public_key, sealed, created_at FROM trust_keys
             WHERE tenant = $1 AND product = $2 ORDER BY created_at, key_id",
        )
        .arg(tenant)
        .arg(product)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(key_id, r, public_key, sealed, at)| {
                Ok(TrustKey { key_id, role: role(&r)?, public_key, sealed, created_at: ts(at)? })
            })
            .collect()
    }

    async fn add_trust_keys(&self, tenant: &str, product: &str, keys: &[TrustKey]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::product_exists(&mut tx, tenant, product, "product").await?;
        for k in keys {
            query::<B>(
                "INSERT INTO trust_keys (tenant, product, key_id, role, public_key, sealed, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .arg(tenant)
            .arg(product)
            .arg(&k.key_id)
            .arg(k.role.as_str())
            .arg(&k.public_key)
            .arg(&k.sealed)
            .arg(us(k.created_at))
            .run(&mut *tx)
            .await
            .map_err(crate::conflict_or("trust key", &k.key_id))?;
        }
        let ids = keys.iter().map(|k| format!("{}:{}", k.role.as_str(), k.key_id)).collect();
        self.commit_events(tx, tenant, vec![Change::TrustKeysCreated { product: product.to_owned(), keys: ids }]).await
    }

    async fn retire_trust_keys(&self, tenant: &str, product: &str, key_ids: &[String]) -> StoreResult<()> {
        if key_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for id in key_ids {
            query::<B>("DELETE FROM trust_keys WHERE tenant = $1 AND product = $2 AND key_id = $3")
                .arg(tenant)
                .arg(product)
                .arg(id)
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let change = Change::TrustKeysRetired { product: product.to_owned(), keys: key_ids.to_vec() };
        self.commit_events(tx, tenant, vec![change]).await
    }

    async fn trust_metadata(
        &self,
        tenant: &str,
        product: &str,
        r: TrustRole,
        v: Option<u64>,
    ) -> StoreResult<Option<TrustMetadata>> {
        let sql = if v.is_some() {
            "SELECT role, version, body, expires_at FROM trust_metadata
             WHERE tenant = $1 AND product = $2 AND role = $3 AND version = $4"
        } else {
            "SELECT role, version, body, expires_at FROM trust_metadata
             WHERE tenant = $1 AND product = $2 AND role = $3 ORDER BY version DESC LIMIT 1"
        };
        let mut q = query::<B>(sql).arg(tenant).arg(product).arg(r.as_str());
        if let Some(v) = v {
            q = q.arg(v.min(i64::MAX as u64) as i64);
        }
        let row: Option<(String, i64, String, i64)> = q.optional_row(&self.pool).await.map_err(db_err)?;
        row.map(|(r, v, body, expires)| {
            Ok(TrustMetadata { role: role(&r)?, version: version(v), body, expires_at: ts(expires)? })
        })
        .transpose()
    }

    async fn publish_trust(
        &self,
        tenant: &str,
        product: &str,
        expected_timestamp: u64,
        items: &[TrustMetadata],
        keep: u64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        // Lock the product's row so that concurrent publishers queue (SQLite: the write lock).
        let lock = format!("SELECT key FROM products WHERE tenant = $1 AND key = $2{}", B::LOCK);
        let found: Option<(String,)> = query::<B>(sqlx::AssertSqlSafe(lock))
            .arg(tenant)
            .arg(product)
            .optional_row(&mut *tx)
            .await
            .map_err(db_err)?;
        if found.is_none() {
            return Err(StoreError::not_found("product", product));
        }
        let current: i64 = query::<B>(
            "SELECT COALESCE(MAX(version), 0) FROM trust_metadata WHERE tenant = $1 AND product = $2 AND role = 'timestamp'",
        )
        .arg(tenant)
        .arg(product)
        .scalar(&mut *tx)
        .await
        .map_err(db_err)?;
        if version(current) != expected_timestamp {
            return Ok(false);
        }
        let now = us(Timestamp::now());
        for m in items {
            query::<B>(
                "INSERT INTO trust_metadata (tenant, product, role, version, body, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .arg(tenant)
            .arg(product)
            .arg(m.role.as_str())
            .arg(m.version.min(i64::MAX as u64) as i64)
            .arg(&m.body)
            .arg(us(m.expires_at))
            .arg(now)
            .run(&mut *tx)
            .await
            .map_err(crate::conflict_or("trust metadata version", product))?;
        }
        let mut versions = [0u64; 4];
        for (i, r) in TrustRole::ALL.into_iter().enumerate() {
            let newest: i64 = query::<B>(
                "SELECT COALESCE(MAX(version), 0) FROM trust_metadata WHERE tenant = $1 AND product = $2 AND role = $3",
            )
            .arg(tenant)
            .arg(product)
            .arg(r.as_str())
            .scalar(&mut *tx)
            .await
            .map_err(db_err)?;
            versions[i] = version(newest);
            if r != TrustRole::Root && newest > keep as i64 {
                query::<B>(
                    "DELETE FROM trust_metadata WHERE tenant = $1 AND product = $2 AND role = $3 AND version <= $4",
                )
                .arg(tenant)
                .arg(product)
                .arg(r.as_str())
                .arg(newest - keep as i64)
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        let change = Change::TrustPublished {
            product: product.to_owned(),
            root: versions[0],
            targets: versions[1],
            snapshot: versions[2],
            timestamp: versions[3],
        };
        self.commit_events(tx, tenant, vec![change]).await?;
        Ok(true)
    }

    async fn trust_repositories(&self, tenant: Option<&str>) -> StoreResult<Vec<(String, String)>> {
        let q = match tenant {
            Some(t) => query::<B>(
                "SELECT DISTINCT tenant, product FROM trust_metadata WHERE role = 'timestamp' AND tenant = $1
                 ORDER BY tenant, product",
            )
            .arg(t),
            None => query::<B>(
                "SELECT DISTINCT tenant, product FROM trust_metadata WHERE role = 'timestamp' ORDER BY tenant, product",
            ),
        };
        q.rows(&self.pool).await.map_err(db_err)
    }

    async fn trust_expiring(&self, r: TrustRole, before: Timestamp) -> StoreResult<Vec<(String, String)>> {
        query::<B>(
            "SELECT m.tenant, m.product FROM trust_metadata m
             WHERE m.role = $1 AND m.expires_at < $2 AND m.version = (
                 SELECT MAX(n.version) FROM trust_metadata n
                 WHERE n.tenant = m.tenant AND n.product = m.product AND n.role = m.role)
             ORDER BY m.tenant, m.product",
        )
        .arg(r.as_str())
        .arg(us(before))
        .rows(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn firmware_by_version(
        &self,
        tenant: &str,
        product: &str,
        version: &str,
    ) -> StoreResult<Option<updraft_core::Firmware>> {
        let sql = format!("{} WHERE tenant = $1 AND product = $2 AND version = $3", crate::FIRMWARE_SELECT);
        let row: Option<crate::FirmwareRow> = query::<B>(sqlx::AssertSqlSafe(sql))
            .arg(tenant)
            .arg(product)
            .arg(version)
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(updraft_core::Firmware::try_from).transpose()
    }

    async fn max_security_version(&self, tenant: &str, product: &str) -> StoreResult<u64> {
        let v: i64 =
            query::<B>("SELECT COALESCE(MAX(security_version), 0) FROM firmware WHERE tenant = $1 AND product = $2")
                .arg(tenant)
                .arg(product)
                .scalar(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(version(v))
    }
}
