//! The storage boundary: one trait, implemented by `updraft-store-sqlite` and
//! `updraft-store-postgres`, and one conformance suite both must pass.
//!
//! Invariants every implementation keeps:
//! - every method is scoped to one tenant (except tenant and key look-ups);
//!   no call ever reads or writes another tenant's rows;
//! - every method is atomic: it either does all of its writes or none;
//! - errors are reported as [`StoreError`] variants, never as panics.

pub mod conformance;
mod error;

use async_trait::async_trait;
use jiff::Timestamp;
use updraft_core::{ApiKey, Device, Firmware, Group, NewDevice, Page, PageRequest, Product, Tenant};

pub use error::{StoreError, StoreResult};

/// Sortable fields per resource; the first is the default.
pub mod sortable {
    pub const PRODUCTS: &[&str] = &["key", "name", "created_at", "updated_at"];
    pub const FIRMWARE: &[&str] = &["created_at", "version", "product", "id"];
    pub const DEVICES: &[&str] = &["id", "product", "created_at", "updated_at", "last_seen_at", "activated_at"];
    pub const GROUPS: &[&str] = &["id", "name", "created_at", "updated_at"];
}

/// Which devices a device list covers, besides paging and search.
#[derive(Debug, Clone, Default)]
pub struct DeviceScope {
    pub product: Option<String>,
    pub group: Option<String>,
}

/// What a change of group membership did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MembershipChange {
    pub added: u64,
    pub removed: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name, for logs and metrics: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Flushes what the backend buffers and releases its connections.
    async fn close(&self);

    // --- tenants and API keys -------------------------------------------------

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
    async fn delete_key(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// Whether a server administrator key exists.
    async fn has_server_admin_key(&self) -> StoreResult<bool>;
    /// Replaces every server administrator key by this one (a bootstrap token set at start).
    async fn replace_server_admin_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()>;

    // --- products ---------------------------------------------------------------

    async fn create_product(&self, tenant: &str, product: &Product) -> StoreResult<()>;
    async fn get_product(&self, tenant: &str, key: &str) -> StoreResult<Option<Product>>;
    async fn list_products(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Product>>;
    async fn update_product(&self, tenant: &str, product: &Product) -> StoreResult<()>;
    /// `InUse` while devices, firmware or groups refer to the product.
    async fn delete_product(&self, tenant: &str, key: &str) -> StoreResult<()>;

    // --- firmware -----------------------------------------------------------------

    /// `Conflict` when the id, or the product's version, is taken; `Invalid` for an unknown product.
    async fn create_firmware(&self, tenant: &str, firmware: &Firmware) -> StoreResult<()>;
    async fn get_firmware(&self, tenant: &str, id: &str) -> StoreResult<Option<Firmware>>;
    async fn list_firmware(
        &self,
        tenant: &str,
        product: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Firmware>>;
    async fn delete_firmware(&self, tenant: &str, id: &str) -> StoreResult<()>;

    // --- devices --------------------------------------------------------------------

    /// Registers all the devices or none. `Invalid` lists every device (by index
    /// in `devices`) whose id is taken or repeated, or whose product is unknown.
    async fn create_devices(&self, tenant: &str, devices: &[NewDevice], now: Timestamp) -> StoreResult<()>;
    async fn get_device(&self, tenant: &str, id: &str) -> StoreResult<Option<Device>>;
    async fn list_devices(&self, tenant: &str, scope: &DeviceScope, page: &PageRequest) -> StoreResult<Page<Device>>;
    /// Writes the device's owner-set attributes (not its id, product or times of creation).
    async fn update_device(&self, tenant: &str, device: &Device) -> StoreResult<()>;
    async fn delete_device(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// The device (and its tenant) whose token hashes to `token_hash`.
    async fn device_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<(String, Device)>>;

    // --- groups -----------------------------------------------------------------------

    async fn create_group(&self, tenant: &str, group: &Group) -> StoreResult<()>;
    async fn get_group(&self, tenant: &str, id: &str) -> StoreResult<Option<Group>>;
    async fn list_groups(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Group>>;
    async fn update_group(&self, tenant: &str, group: &Group) -> StoreResult<()>;
    async fn delete_group(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// Adds and removes members at once, all or nothing. `Invalid` names each
    /// unknown device and each device of another product than the group's.
    /// Adding a member twice and removing a non-member are no-ops.
    async fn change_members(
        &self,
        tenant: &str,
        group: &str,
        add: &[String],
        remove: &[String],
        now: Timestamp,
    ) -> StoreResult<MembershipChange>;
}
