//! Code signing: the trust anchors of each tenant.

use async_trait::async_trait;
use updraft_core::TrustAnchor;

use crate::store::StoreResult;

/// The CA certificates each tenant's code-signing chains must end in.
#[async_trait]
pub trait SigningStore: Send + Sync {
    /// Adds an anchor; `Conflict` when its id, or the same certificate
    /// (fingerprint), is already the tenant's.
    async fn create_trust_anchor(&self, tenant: &str, anchor: &TrustAnchor) -> StoreResult<()>;
    /// The tenant's anchors, oldest first.
    async fn list_trust_anchors(&self, tenant: &str) -> StoreResult<Vec<TrustAnchor>>;
    /// `NotFound` when the tenant has no such anchor.
    async fn delete_trust_anchor(&self, tenant: &str, id: &str) -> StoreResult<()>;
}
