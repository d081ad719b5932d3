//! Devices, their groups, device filters, and the tokens devices and
//! gateways speak the device API with.

use async_trait::async_trait;
use jiff::Timestamp;
use updraft_core::filter::Filter;
use updraft_core::{ApiKey, Device, FieldError, Group, NewDevice, Page, PageRequest};

use crate::store::StoreResult;

/// A device filter saved under a name, to target jobs and to reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFilter {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Stored in its canonical JSON form.
    pub filter: Filter,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The API key that last wrote it.
    pub updated_by: Option<String>,
}

/// A gateway token: lets one system speak the device API for any device of its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayToken {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

/// A group token (seed 004's `token`): a narrow credential for one group,
/// acting as an API key of the tenant (its role and expiry) on that group only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupToken {
    pub id: String,
    pub tenant: String,
    pub group: String,
    /// The API key it acts as.
    pub key: String,
    pub created_at: Timestamp,
}

/// Who a device is, as the device API needs it on every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    pub tenant: String,
    pub id: String,
    /// The server wants the device to send its attributes (`configData`).
    pub attributes_requested: bool,
}

/// What a device's poll answer is made of when it has nothing to do, read in bulk
/// ([`DeviceStore::poll_seeds`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSeed {
    pub tenant: String,
    pub id: String,
    /// The hash of the device's token.
    pub token_hash: String,
    pub attributes_requested: bool,
    /// The action id of its latest succeeded execution (`installedBase`).
    pub installed: Option<i64>,
    /// Whether an execution is offered to it (queued, in progress, awaiting
    /// consent, or being cancelled): its poll is then not an idle one.
    pub offered: bool,
}

/// A device as a job's selection reads it ([`DeviceStore::scan_devices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceVersions {
    pub id: String,
    pub product: String,
    /// Its components' versions.
    pub firmware: std::collections::BTreeMap<String, String>,
}

impl From<Device> for DeviceVersions {
    fn from(d: Device) -> Self {
        DeviceVersions { id: d.id, product: d.product, firmware: d.firmware }
    }
}

/// A change to a device record; `Err` refuses it and nothing is written.
pub type DeviceChange<'a> = &'a (dyn Fn(&mut Device) -> Result<(), Vec<FieldError>> + Send + Sync);

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

/// A request made with an `Idempotency-Key`, kept to answer its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    /// The id of the API key that made it (keys are scoped per tenant and API key).
    pub api_key: String,
    /// The client's `Idempotency-Key`.
    pub key: String,
    /// A digest of what was asked: a retry must ask the same.
    pub fingerprint: String,
    /// What to answer a retry with; never a secret (see the server's import).
    pub answer: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Devices and what belongs to them: their registration (once per
/// `Idempotency-Key` on imports), tokens and the identity the device API
/// reads, changes to their records, groups and membership, device filters
/// and saved filters, and gateway tokens. The look-ups by token hash work
/// across tenants: a token names its tenant.
/// Devices of one product, firmware and connection status (see [`DeviceStore::device_summary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummaryRow {
    pub product: String,
    /// The installed firmware as stored: a JSON object of component → version.
    pub firmware: String,
    pub connection_status: String,
    pub count: u64,
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    // --- devices --------------------------------------------------------------------

    /// Registers all the devices or none. The problems name each device by its
    /// index in `devices`: `Invalid` when an id is taken or repeated (listing
    /// those, then each device whose product is unknown); `Missing` when the
    /// only problem is unknown products (see [`StoreError::refuse`](crate::store::StoreError::refuse)).
    async fn create_devices(&self, tenant: &str, devices: &[NewDevice], now: Timestamp) -> StoreResult<()>;
    /// [`DeviceStore::create_devices`], keeping `request` (to answer its retries) in
    /// the same transaction; expired requests of the tenant are dropped.
    /// `Conflict` when the request's key is already kept.
    async fn create_devices_once(
        &self,
        tenant: &str,
        devices: &[NewDevice],
        now: Timestamp,
        request: &IdempotentRequest,
    ) -> StoreResult<()>;
    /// The request kept for this API key and idempotency key, unless expired at `now`.
    async fn idempotent_request(
        &self,
        tenant: &str,
        api_key: &str,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<Option<IdempotentRequest>>;
    async fn get_device(&self, tenant: &str, id: &str) -> StoreResult<Option<Device>>;
    /// The devices among `ids` that exist, in any order (unknown ids are left out).
    async fn get_devices(&self, tenant: &str, ids: &[String]) -> StoreResult<Vec<Device>>;
    /// The tenant's devices whose ids come after `after`, in id order, at most
    /// `limit`: every record read in pages (an in-memory index's build).
    async fn devices_after(&self, tenant: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Device>>;
    async fn list_devices(&self, tenant: &str, scope: &DeviceScope, page: &PageRequest) -> StoreResult<Page<Device>>;
    /// Changes a device's record as `change` decides, atomically with reading
    /// it (no concurrent change is lost). `reported`: the change is what the
    /// device said of itself, which answers the server's request for attributes.
    async fn modify_device(
        &self,
        tenant: &str,
        id: &str,
        change: DeviceChange<'_>,
        reported: bool,
        now: Timestamp,
    ) -> StoreResult<Result<Device, Vec<FieldError>>>;
    /// Deletes a device with its executions and their histories, at `now`.
    async fn delete_device(&self, tenant: &str, id: &str, now: Timestamp) -> StoreResult<()>;

    // --- device tokens and identity ------------------------------------------------------

    /// Replaces a device's token (its old token stops working). `NotFound` for an unknown device.
    async fn set_device_token(&self, tenant: &str, id: &str, token_hash: &str) -> StoreResult<()>;
    /// The device whose token hashes to `token_hash`, in any tenant.
    async fn device_identity_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<DeviceIdentity>>;
    async fn device_identity(&self, tenant: &str, id: &str) -> StoreResult<Option<DeviceIdentity>>;
    /// What a device poll needs to know of up to `limit` devices of every tenant,
    /// in (tenant, id) order after `after`: read in pages to fill a replica's
    /// poll cache at start, so that no device's first poll reads the database.
    async fn poll_seeds(&self, after: Option<(&str, &str)>, limit: u32) -> StoreResult<Vec<PollSeed>>;

    // --- groups -----------------------------------------------------------------------

    /// `Conflict` when the id is taken; `Missing` (`product`) for an unknown product.
    async fn create_group(&self, tenant: &str, group: &Group) -> StoreResult<()>;
    async fn get_group(&self, tenant: &str, id: &str) -> StoreResult<Option<Group>>;
    async fn list_groups(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Group>>;
    async fn update_group(&self, tenant: &str, group: &Group) -> StoreResult<()>;
    async fn delete_group(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// Adds and removes members at once, all or nothing. `NotFound` for an
    /// unknown group. `Invalid` names each device of another product than the
    /// group's (and then each unknown device); `Missing` names each unknown
    /// device when that is the only problem (see [`StoreError::refuse`](crate::store::StoreError::refuse)).
    /// Adding a member twice and removing a non-member are no-ops.
    async fn change_members(
        &self,
        tenant: &str,
        group: &str,
        add: &[String],
        remove: &[String],
        now: Timestamp,
    ) -> StoreResult<MembershipChange>;
    /// The ids of the groups `device` is a member of, sorted (for evaluating a
    /// filter in memory with [`Filter::matches`]).
    async fn device_groups(&self, tenant: &str, device: &str) -> StoreResult<Vec<String>>;

    // --- device filters -----------------------------------------------------------------

    /// The tenant's devices counted by product, installed firmware (its JSON
    /// text, as stored) and connection status: the fleet overview's figures.
    async fn device_summary(&self, tenant: &str) -> StoreResult<Vec<DeviceSummaryRow>>;

    /// How many of the tenant's devices `filter` matches at `now`; the same
    /// answer as [`Filter::matches`] on each device.
    async fn count_devices_matching(&self, tenant: &str, filter: &Filter, now: Timestamp) -> StoreResult<u64>;
    /// The tenant's devices in `scope` that `filter` matches at `now`, a page at
    /// a time (`scope` and `page.search` narrow them as in [`DeviceStore::list_devices`]).
    async fn list_devices_matching(
        &self,
        tenant: &str,
        scope: &DeviceScope,
        filter: &Filter,
        now: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>>;

    /// The tenant's devices in `scope` (and that `filter` matches at the given
    /// time, when one is given) whose ids come after `after`, in id order, at most
    /// `limit`: a whole scope read in pages (a job's targets) without counting or
    /// skipping rows.
    async fn scan_devices(
        &self,
        tenant: &str,
        scope: &DeviceScope,
        filter: Option<(&Filter, Timestamp)>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeviceVersions>>;

    /// `Conflict` when the id is taken.
    async fn create_saved_filter(&self, tenant: &str, filter: &SavedFilter) -> StoreResult<()>;
    async fn get_saved_filter(&self, tenant: &str, id: &str) -> StoreResult<Option<SavedFilter>>;
    async fn list_saved_filters(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<SavedFilter>>;
    /// Writes the name, description, filter, `updated_at` and `updated_by`.
    async fn update_saved_filter(&self, tenant: &str, filter: &SavedFilter) -> StoreResult<()>;
    async fn delete_saved_filter(&self, tenant: &str, id: &str) -> StoreResult<()>;

    // --- group tokens -----------------------------------------------------------------

    /// Creates a group token for the tenant's group `token.group`, acting as its API key
    /// `token.key`; `NotFound` when either does not exist. Deleting the group or the API
    /// key deletes its tokens.
    async fn create_group_token(&self, token: &GroupToken, token_hash: &str) -> StoreResult<()>;
    /// The group token that hashes to `token_hash` (across tenants: it names its tenant) and
    /// the API key it acts as, as it is now.
    async fn group_token(&self, token_hash: &str) -> StoreResult<Option<(GroupToken, ApiKey)>>;
    /// The tenant's group tokens, oldest first.
    async fn list_group_tokens(&self, tenant: &str) -> StoreResult<Vec<GroupToken>>;
    async fn delete_group_token(&self, tenant: &str, id: &str) -> StoreResult<()>;

    // --- gateway tokens -------------------------------------------------------------

    async fn create_gateway_token(&self, token: &GatewayToken, token_hash: &str) -> StoreResult<()>;
    async fn list_gateway_tokens(&self, tenant: &str) -> StoreResult<Vec<GatewayToken>>;
    async fn delete_gateway_token(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// The tenant of the gateway token that hashes to `token_hash`.
    async fn gateway_tenant(&self, token_hash: &str) -> StoreResult<Option<String>>;
}
