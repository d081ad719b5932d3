//! Tenants and their API keys.

use async_trait::async_trait;
use updraft_core::{ApiKey, KeyChange, KeyRefusal, Tenant};

use crate::store::StoreResult;

/// Tenants and their API keys. The look-up by token hash and the server
/// administrator's key work across tenants: a token names its tenant.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates the tenant unless a tenant with its id exists; returns whether it was created.
    async fn ensure_tenant(&self, tenant: &Tenant) -> StoreResult<bool>;
    /// Creates a tenant and its first key together. `Conflict` when the id is taken.
    async fn create_tenant(&self, tenant: &Tenant, first_key: &ApiKey, token_hash: &str) -> StoreResult<()>;
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;

    async fn create_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()>;
    /// The key whose token hashes to `token_hash`, in any tenant.
    async fn key_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_keys(&self, tenant: &str) -> StoreResult<Vec<ApiKey>>;
    /// Deletes or updates a key as `change` allows, checked against the
    /// tenant's other admin keys in the same transaction (concurrent changes
    /// cannot both remove the last admin key). The key as changed; `None`: deleted.
    async fn change_key(
        &self,
        tenant: &str,
        id: &str,
        change: &KeyChange,
    ) -> StoreResult<Result<Option<ApiKey>, KeyRefusal>>;
    /// Whether a server administrator key exists.
    async fn has_server_admin_key(&self) -> StoreResult<bool>;
    /// Replaces every server administrator key by this one (a bootstrap token set at start).
    async fn replace_server_admin_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()>;
}
