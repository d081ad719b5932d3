//! Tenants, their API keys, and their users with their sessions.

use async_trait::async_trait;
use jiff::Timestamp;
use updraft_core::{ApiKey, KeyChange, KeyRefusal, Session, Tenant, User};

use crate::store::StoreResult;

/// An access key (seeds 002 and 003: requests signed with an HMAC): an id and
/// a secret bound to an API key, whose tenant and role (and expiry) it acts
/// with. The secret is sealed under the key-encryption key before it reaches
/// the store (the signature needs it back: it cannot be hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The `AccessKeyId` clients send: unique across tenants.
    pub id: String,
    pub tenant: String,
    /// The API key it acts as.
    pub key: String,
    pub created_at: Timestamp,
}

/// Tenants, their API keys and their users. The look-ups by token hash, by
/// user name and by session, and the server administrator's key, work
/// across tenants: a token, a user name or a session names its tenant.
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

    // --- access keys ----------------------------------------------------------------------

    /// Creates an access key bound to the API key `access.key` of its tenant, with its
    /// sealed secret; `NotFound` when the tenant has no such API key, `Conflict` when the
    /// id is taken. Deleting the API key deletes its access keys.
    async fn create_access_key(&self, access: &AccessKey, sealed_secret: &str) -> StoreResult<()>;
    /// An access key by its id (across tenants: the id names its tenant), the API key it
    /// acts as (as it is now) and its sealed secret.
    async fn access_key(&self, id: &str) -> StoreResult<Option<(AccessKey, ApiKey, String)>>;
    /// The tenant's access keys, oldest first.
    async fn list_access_keys(&self, tenant: &str) -> StoreResult<Vec<AccessKey>>;
    /// Deletes an access key; `NotFound` when the tenant has none of this id.
    async fn delete_access_key(&self, tenant: &str, id: &str) -> StoreResult<()>;

    // --- users and their sessions --------------------------------------------------------

    /// Creates a user account; `Conflict` when its name is taken (in any tenant:
    /// one signs in by name alone) or its id is.
    async fn create_user(&self, user: &User, password_hash: &str) -> StoreResult<()>;
    /// A user and its password hash, by name (across tenants: signing in names no tenant).
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<(User, String)>>;
    /// The tenant's users, by name.
    async fn list_users(&self, tenant: &str) -> StoreResult<Vec<User>>;
    /// Deletes a user and ends its sessions; `NotFound` when there is none.
    async fn delete_user(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// Replaces a user's password hash and ends its sessions; `NotFound` when there is none.
    async fn set_user_password(&self, tenant: &str, id: &str, password_hash: &str) -> StoreResult<()>;
    /// Starts a session of `user`, known by its token's hash.
    async fn create_session(
        &self,
        token_hash: &str,
        user: &User,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// The session a token's hash names, with its user as it is now, unless it expired by `now`.
    async fn session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Session>>;
    /// Ends a session (signing out); nothing when there is none.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Forgets the sessions that expired before `now`; answers how many.
    async fn prune_sessions(&self, now: Timestamp) -> StoreResult<u64>;
}
