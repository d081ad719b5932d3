//! [`SigningStore`] on SQL: trust anchors and signing profiles.

use async_trait::async_trait;
use updraft_app::store::{Change, SigningStore, StoreError, StoreResult};
use updraft_core::{SigningProfile, TrustAnchor};

use crate::query::{QueryExt, query};
use crate::{SigningProfileRow, SqlBackend, SqlStore, TrustAnchorRow, conflict_or, db_err, us};

macro_rules! profile_select {
    ($where:literal) => {
        concat!(
            "SELECT name, platform, signature_algorithm, certificate_chain, trust_anchor, sealed_key, created_at ",
            "FROM signing_profiles ",
            $where
        )
    };
}

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
        self.delete_row(
            "trust_anchors",
            "trust anchor",
            tenant,
            id,
            Change::TrustAnchorDeleted { anchor: id.to_owned() },
        )
        .await
    }

    async fn create_signing_profile(&self, tenant: &str, p: &SigningProfile, sealed_key: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>(
            "INSERT INTO signing_profiles (tenant, name, platform, signature_algorithm, certificate_chain, \
             trust_anchor, sealed_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .arg(tenant)
        .arg(&p.name)
        .arg(&p.platform)
        .arg(p.signature_algorithm.as_str())
        .arg(&p.certificate_chain)
        .arg(&p.trust_anchor)
        .arg(sealed_key)
        .arg(us(p.created_at))
        .run(&mut *tx)
        .await
        .map_err(conflict_or("signing profile", &p.name))?;
        self.commit_events(tx, tenant, vec![Change::SigningProfileCreated { profile: p.name.clone() }]).await
    }

    async fn list_signing_profiles(&self, tenant: &str) -> StoreResult<Vec<SigningProfile>> {
        let rows: Vec<SigningProfileRow> = query::<B>(profile_select!("WHERE tenant = $1 ORDER BY name"))
            .arg(tenant)
            .rows(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(|r| r.into_profile().map(|(p, _)| p)).collect()
    }

    async fn signing_profile(&self, tenant: &str, name: &str) -> StoreResult<Option<(SigningProfile, String)>> {
        let row: Option<SigningProfileRow> = query::<B>(profile_select!("WHERE tenant = $1 AND name = $2"))
            .arg(tenant)
            .arg(name)
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(SigningProfileRow::into_profile).transpose()
    }

    async fn delete_signing_profile(&self, tenant: &str, name: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>("DELETE FROM signing_profiles WHERE tenant = $1 AND name = $2")
            .arg(tenant)
            .arg(name)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("signing profile", name));
        }
        self.commit_events(tx, tenant, vec![Change::SigningProfileDeleted { profile: name.to_owned() }]).await
    }
}
