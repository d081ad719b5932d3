//! TUF repositories per tenant and product: their online keys (sealed) and
//! every version of their signed metadata, as served.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreResult;

/// The four top-level TUF roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrustRole {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl TrustRole {
    pub const ALL: [TrustRole; 4] = [TrustRole::Root, TrustRole::Targets, TrustRole::Snapshot, TrustRole::Timestamp];
    /// The roles updraft holds keys for.
    pub const ONLINE: [TrustRole; 3] = [TrustRole::Targets, TrustRole::Snapshot, TrustRole::Timestamp];

    pub fn as_str(self) -> &'static str {
        match self {
            TrustRole::Root => "root",
            TrustRole::Targets => "targets",
            TrustRole::Snapshot => "snapshot",
            TrustRole::Timestamp => "timestamp",
        }
    }

    pub fn parse(s: &str) -> Option<TrustRole> {
        TrustRole::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An online role's key: public half in TUF's JSON form, private half sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustKey {
    pub key_id: String,
    pub role: TrustRole,
    /// The TUF key object (JSON).
    pub public_key: String,
    /// The PKCS#8 private key, sealed under the key-encryption key.
    pub sealed: String,
    pub created_at: Timestamp,
}

/// One version of one role's signed metadata, as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustMetadata {
    pub role: TrustRole,
    pub version: u64,
    pub body: String,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait TrustStore: Send + Sync {
    /// The product's online keys, oldest first.
    async fn trust_keys(&self, tenant: &str, product: &str) -> StoreResult<Vec<TrustKey>>;
    /// Adds online keys; `Missing` (`product`) for an unknown product.
    async fn add_trust_keys(&self, tenant: &str, product: &str, keys: &[TrustKey]) -> StoreResult<()>;
    /// Destroys online keys (a new root no longer lists them).
    async fn retire_trust_keys(&self, tenant: &str, product: &str, key_ids: &[String]) -> StoreResult<()>;
    /// One version of a role's metadata; the newest when `version` is `None`.
    async fn trust_metadata(
        &self,
        tenant: &str,
        product: &str,
        role: TrustRole,
        version: Option<u64>,
    ) -> StoreResult<Option<TrustMetadata>>;
    /// Publishes new metadata versions at once, if the newest timestamp
    /// version is still `expected_timestamp` (0: none yet); `Ok(false)` when
    /// another writer published first. Keeps the last `keep` versions of
    /// targets, snapshot and timestamp (every root).
    async fn publish_trust(
        &self,
        tenant: &str,
        product: &str,
        expected_timestamp: u64,
        items: &[TrustMetadata],
        keep: u64,
    ) -> StoreResult<bool>;
    /// The products with a published repository: `(tenant, product)`, of one tenant when given.
    async fn trust_repositories(&self, tenant: Option<&str>) -> StoreResult<Vec<(String, String)>>;
    /// Repositories whose newest metadata of `role` expires before `before`.
    async fn trust_expiring(&self, role: TrustRole, before: Timestamp) -> StoreResult<Vec<(String, String)>>;
    /// The image of `product` with `version`.
    async fn firmware_by_version(
        &self,
        tenant: &str,
        product: &str,
        version: &str,
    ) -> StoreResult<Option<updraft_core::Firmware>>;
    /// The highest security version of the product's images (0 when none).
    async fn max_security_version(&self, tenant: &str, product: &str) -> StoreResult<u64>;
}
