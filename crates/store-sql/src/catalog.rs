//! [`CatalogStore`] on SQL: products and their firmware.

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use updraft_app::store::{CatalogStore, Change, StoreError, StoreResult};
use updraft_core::{FieldError, Firmware, Page, PageRequest, Product};

use crate::query::{QueryExt, query};
use crate::{
    ACTIVE_STATES, Conn, FIRMWARE_LIST, FIRMWARE_SELECT, FirmwareRow, PRODUCT_LIST, PRODUCT_SELECT, ProductRow,
    SqlBackend, SqlStore, conflict_or, db_err, is_unique_violation, us,
};

#[async_trait]
impl<B: SqlBackend> CatalogStore for SqlStore<B> {
    async fn create_product(&self, tenant: &str, p: &Product) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>(
            "INSERT INTO products (tenant, key, name, description, version_scheme, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .arg(tenant)
        .arg(&p.key)
        .arg(&p.name)
        .arg(&p.description)
        .arg(p.version_scheme.as_str())
        .arg(us(p.created_at))
        .arg(us(p.updated_at))
        .run(&mut *tx)
        .await
        .map_err(conflict_or("product", &p.key))?;
        self.commit_events(tx, tenant, vec![Change::ProductCreated { product: p.key.clone() }]).await
    }

    async fn get_product(&self, tenant: &str, key: &str) -> StoreResult<Option<Product>> {
        self.get_one::<ProductRow, _>(PRODUCT_SELECT, "key", tenant, key).await
    }

    async fn list_products(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Product>> {
        self.list::<ProductRow, Product>(&PRODUCT_LIST, &[("tenant = {}", tenant.to_owned())], page).await
    }

    async fn update_product(&self, tenant: &str, p: &Product) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>(
            "UPDATE products SET name = $3, description = $4, version_scheme = $5, updated_at = $6
             WHERE tenant = $1 AND key = $2",
        )
        .arg(tenant)
        .arg(&p.key)
        .arg(&p.name)
        .arg(&p.description)
        .arg(p.version_scheme.as_str())
        .arg(us(p.updated_at))
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("product", &p.key));
        }
        self.commit_events(tx, tenant, vec![Change::ProductUpdated { product: p.key.clone() }]).await
    }

    async fn delete_product(&self, tenant: &str, key: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for (table, by) in [("devices", "devices"), ("firmware", "firmware"), ("device_groups", "groups")] {
            let n: i64 =
                query::<B>(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table} WHERE tenant = $1 AND product = $2")))
                    .arg(tenant)
                    .arg(key)
                    .scalar(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if n > 0 {
                return Err(StoreError::InUse { what: "product", id: key.to_owned(), by: format!("{n} {by}") });
            }
        }
        let r = query::<B>("DELETE FROM products WHERE tenant = $1 AND key = $2")
            .arg(tenant)
            .arg(key)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("product", key));
        }
        self.commit_events(tx, tenant, vec![Change::ProductDeleted { product: key.to_owned() }]).await
    }

    async fn create_firmware(&self, tenant: &str, f: &Firmware) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::product_exists(&mut tx, tenant, &f.product, "product").await?;
        query::<B>(
            "INSERT INTO firmware (tenant, id, product, version, name, release_notes, metadata,
                 needs_verification, verified, files, total_size, created_at, security_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .arg(tenant)
        .arg(&f.id)
        .arg(&f.product)
        .arg(&f.version)
        .arg(&f.name)
        .arg(&f.release_notes)
        .arg(Json(&f.metadata))
        .arg(f.needs_verification)
        .arg(f.verified)
        .arg(Json(&f.files))
        .arg(f.total_size() as i64)
        .arg(us(f.created_at))
        .arg(f.security_version.min(i64::MAX as u64) as i64)
        .run(&mut *tx)
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

    async fn list_firmware(
        &self,
        tenant: &str,
        product: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Firmware>> {
        let mut filters = vec![("tenant = {}", tenant.to_owned())];
        if let Some(p) = product {
            filters.push(("product = {}", p.to_owned()));
        }
        self.list::<FirmwareRow, Firmware>(&FIRMWARE_LIST, &filters, page).await
    }

    async fn delete_firmware(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let running: i64 = query::<B>(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM executions WHERE tenant = $1 AND state IN {ACTIVE_STATES}
             AND job IN (SELECT id FROM jobs WHERE tenant = $1 AND firmware = $2)"
        )))
        .arg(tenant)
        .arg(id)
        .scalar(&mut *tx)
        .await
        .map_err(db_err)?;
        if running > 0 {
            return Err(StoreError::InUse {
                what: "firmware",
                id: id.to_owned(),
                by: format!("{running} unfinished executions of running jobs"),
            });
        }
        Self::delete_in(&mut tx, "firmware", "firmware", tenant, id).await?;
        self.commit_events(tx, tenant, vec![Change::FirmwareDeleted { firmware: id.to_owned() }]).await
    }
}

impl<B: SqlBackend> SqlStore<B> {
    pub(crate) async fn product_known(tx: &mut Conn<B>, tenant: &str, key: &str) -> StoreResult<bool> {
        let n: i64 = query::<B>("SELECT COUNT(*) FROM products WHERE tenant = $1 AND key = $2")
            .arg(tenant)
            .arg(key)
            .scalar(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    /// `Missing` (`field`) when the tenant has no product `key`.
    pub(crate) async fn product_exists(tx: &mut Conn<B>, tenant: &str, key: &str, field: &str) -> StoreResult<()> {
        if Self::product_known(tx, tenant, key).await? {
            Ok(())
        } else {
            Err(StoreError::Missing(vec![FieldError::new(field, format!("product `{key}` not found"))]))
        }
    }
}
