//! Code signing: the trust anchors and signing profiles of each tenant.

use async_trait::async_trait;
use updraft_core::{SigningProfile, TrustAnchor};

use crate::store::StoreResult;

/// The CA certificates each tenant's code-signing chains must end in, and
/// the keys updraft signs with (sealed: the store never sees them in clear).
#[async_trait]
pub trait SigningStore: Send + Sync {
    /// Adds an anchor; `Conflict` when its id, or the same certificate
    /// (fingerprint), is already the tenant's.
    async fn create_trust_anchor(&self, tenant: &str, anchor: &TrustAnchor) -> StoreResult<()>;
    /// The tenant's anchors, oldest first.
    async fn list_trust_anchors(&self, tenant: &str) -> StoreResult<Vec<TrustAnchor>>;
    /// `NotFound` when the tenant has no such anchor.
    async fn delete_trust_anchor(&self, tenant: &str, id: &str) -> StoreResult<()>;

    /// Adds a signing profile with its sealed private key; `Conflict` when the name is taken.
    async fn create_signing_profile(&self, tenant: &str, profile: &SigningProfile, sealed_key: &str)
    -> StoreResult<()>;
    /// The tenant's signing profiles, by name (without their keys).
    async fn list_signing_profiles(&self, tenant: &str) -> StoreResult<Vec<SigningProfile>>;
    /// A signing profile and its sealed private key.
    async fn signing_profile(&self, tenant: &str, name: &str) -> StoreResult<Option<(SigningProfile, String)>>;
    /// `NotFound` when the tenant has no such profile.
    async fn delete_signing_profile(&self, tenant: &str, name: &str) -> StoreResult<()>;
}
