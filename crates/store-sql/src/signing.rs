//! [`SigningStore`] on SQL: trust anchors.

use async_trait::async_trait;
use updraft_app::store::{Change, SigningStore, StoreError, StoreResult};
use updraft_core::TrustAnchor;

use crate::query::{QueryExt, query};
use crate::{SqlBackend, SqlStore, TrustAnchorRow, conflict_or, db_err, us};

#[async_trait]
impl<B: SqlBackend> SigningStore for SqlStore<B> {
    async fn create_trust_anchor(&self, tenant: &str, a: &TrustAnchor) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>(
            "INSERT INTO trust_anchors (tenant, id, name, certificate, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .arg(tenant)
        .arg(&a.id)
        .arg(&a.name)
        .arg(&a.certificate)
        .arg(&a.fingerprint)
        .arg(us(a.created_at))
        .run(&mut *tx)
        .await
        .map_err(conflict_or("trust anchor", &a.fingerprint))?;
        self.commit_events(tx, tenant, vec![Change::TrustAnchorCreated { anchor: a.id.clone() }]).await
    }

    async fn list_trust_anchors(&self, tenant: &str) -> StoreResult<Vec<TrustAnchor>> {
        let rows: Vec<TrustAnchorRow> = query::<B>(
            "SELECT id, name, certificate, fingerprint, created_at FROM trust_anchors \
             WHERE tenant = $1 ORDER BY created_at, id",
        )
        .arg(tenant)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(TrustAnchor::try_from).collect()
    }

    async fn delete_trust_anchor(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>("DELETE FROM trust_anchors WHERE tenant = $1 AND id = $2")
            .arg(tenant)
            .arg(id)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("trust anchor", id));
        }
        self.commit_events(tx, tenant, vec![Change::TrustAnchorDeleted { anchor: id.to_owned() }]).await
    }
}
