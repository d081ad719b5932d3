//! The storage boundary: one trait, implemented by `updraft-store-sqlite` and
//! `updraft-store-postgres`, and one conformance suite both must pass.
//!
//! Invariants every implementation keeps:
//! - every method that takes a tenant is scoped to it: it never reads or writes
//!   another tenant's rows. The methods without one work across tenants on
//!   purpose, and say so: tenant, key and token look-ups (a token names its
//!   tenant), and the engine's work (`record_presence`'s offline sweep,
//!   `live_jobs`, `release_leases`);
//! - every method is atomic: it either does all of its writes or none;
//! - errors are reported as [`StoreError`] variants, never as panics.

pub mod conformance;
mod error;
pub mod events;

use async_trait::async_trait;
use jiff::Timestamp;
use updraft_core::filter::Filter;
use updraft_core::job::{Execution, ExecutionEvent, ExecutionState, Job, JobState, Transition, TransitionError};
use updraft_core::rollout::{JobSpec, PaceStats, Retry};
use updraft_core::{
    ApiKey, Device, Firmware, Group, KeyChange, KeyRefusal, NewDevice, Page, PageRequest, Product, Tenant,
};

pub use error::{StoreError, StoreResult};
pub use events::{Change, Event, EventCursor, EventFeed};

/// Sortable fields per resource; the first is the default.
pub mod sortable {
    pub const PRODUCTS: &[&str] = &["key", "name", "created_at", "updated_at"];
    pub const FIRMWARE: &[&str] = &["created_at", "version", "product", "id"];
    pub const DEVICES: &[&str] = &["id", "product", "created_at", "updated_at", "last_seen_at", "activated_at"];
    pub const GROUPS: &[&str] = &["id", "name", "created_at", "updated_at"];
    pub const JOBS: &[&str] = &["created_at", "id", "name", "state", "started_at", "finished_at"];
    pub const EXECUTIONS: &[&str] = &["action_id", "device", "state", "updated_at"];
    pub const SAVED_FILTERS: &[&str] = &["name", "id", "created_at", "updated_at"];
}

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

/// A device seen by the device API since the last presence flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub tenant: String,
    pub device: String,
    /// The first and the last poll since the previous flush.
    pub first: Timestamp,
    pub last: Timestamp,
    /// Polls since the previous flush.
    pub polls: u32,
}

impl Sighting {
    /// One poll at `at`.
    pub fn once(tenant: &str, device: &str, at: Timestamp) -> Self {
        Sighting { tenant: tenant.to_owned(), device: device.to_owned(), first: at, last: at, polls: 1 }
    }
}

/// A gateway token: lets one system speak the device API for any device of its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayToken {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
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

/// What the device API offers a device: its open execution (the oldest),
/// and the last one that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceActions {
    pub active: Option<Execution>,
    pub installed: Option<Execution>,
}

/// Which executions a list covers.
#[derive(Debug, Clone, Default)]
pub struct ExecutionScope {
    pub job: Option<String>,
    pub device: Option<String>,
    pub state: Option<ExecutionState>,
}

/// A change to a device record; `Err` refuses it and nothing is written.
pub type DeviceChange<'a> = &'a (dyn Fn(&mut Device) -> Result<(), Vec<updraft_core::FieldError>> + Send + Sync);

/// The rule that decides an execution's change, given its current record.
/// `Ok(None)` leaves it as it is.
pub type ExecutionRule<'a> = &'a (dyn Fn(&Execution) -> Result<Option<Transition>, TransitionError> + Send + Sync);

/// How many executions a release may set off, decided inside its transaction
/// from the job as stored and its pace statistics.
pub type ReleaseBudget<'a> = &'a (dyn Fn(&Job, &PaceStats) -> u64 + Send + Sync);

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Released {
    /// What the budget allowed.
    pub allowed: u64,
    /// The executions released, oldest first.
    pub executions: Vec<Execution>,
}

impl Released {
    /// The devices released, oldest first.
    pub fn devices(&self) -> Vec<String> {
        self.executions.iter().map(|e| e.device.clone()).collect()
    }
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

    // --- products ---------------------------------------------------------------

    async fn create_product(&self, tenant: &str, product: &Product) -> StoreResult<()>;
    async fn get_product(&self, tenant: &str, key: &str) -> StoreResult<Option<Product>>;
    async fn list_products(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<Product>>;
    async fn update_product(&self, tenant: &str, product: &Product) -> StoreResult<()>;
    /// `InUse` while devices, firmware or groups refer to the product.
    async fn delete_product(&self, tenant: &str, key: &str) -> StoreResult<()>;

    // --- firmware -----------------------------------------------------------------

    /// `Conflict` when the id, or the product's version, is taken; `Missing` (`product`) for an unknown product.
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

    /// Registers all the devices or none. The problems name each device by its
    /// index in `devices`: `Invalid` when an id is taken or repeated (listing
    /// those, then each device whose product is unknown); `Missing` when the
    /// only problem is unknown products (see [`StoreError::refuse`]).
    async fn create_devices(&self, tenant: &str, devices: &[NewDevice], now: Timestamp) -> StoreResult<()>;
    async fn get_device(&self, tenant: &str, id: &str) -> StoreResult<Option<Device>>;
    /// The devices among `ids` that exist, in any order (unknown ids are left out).
    async fn get_devices(&self, tenant: &str, ids: &[String]) -> StoreResult<Vec<Device>>;
    async fn list_devices(&self, tenant: &str, scope: &DeviceScope, page: &PageRequest) -> StoreResult<Page<Device>>;
    async fn delete_device(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// Replaces a device's token (its old token stops working). `NotFound` for an unknown device.
    async fn set_device_token(&self, tenant: &str, id: &str, token_hash: &str) -> StoreResult<()>;
    /// [`Store::create_devices`], keeping `request` (to answer its retries) in
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
    /// device when that is the only problem (see [`StoreError::refuse`]).
    /// Adding a member twice and removing a non-member are no-ops.
    async fn change_members(
        &self,
        tenant: &str,
        group: &str,
        add: &[String],
        remove: &[String],
        now: Timestamp,
    ) -> StoreResult<MembershipChange>;

    // --- gateway tokens -------------------------------------------------------------

    async fn create_gateway_token(&self, token: &GatewayToken, token_hash: &str) -> StoreResult<()>;
    async fn list_gateway_tokens(&self, tenant: &str) -> StoreResult<Vec<GatewayToken>>;
    async fn delete_gateway_token(&self, tenant: &str, id: &str) -> StoreResult<()>;
    /// The tenant of the gateway token that hashes to `token_hash`.
    async fn gateway_tenant(&self, token_hash: &str) -> StoreResult<Option<String>>;

    // --- the device API -----------------------------------------------------------------

    async fn device_identity_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<DeviceIdentity>>;
    async fn device_identity(&self, tenant: &str, id: &str) -> StoreResult<Option<DeviceIdentity>>;
    async fn device_actions(&self, tenant: &str, device: &str) -> StoreResult<DeviceActions>;
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
    ) -> StoreResult<Result<Device, Vec<updraft_core::FieldError>>>;
    /// Records that devices were seen: last-seen time; `activated_at` at the
    /// first contact when it is not set; `initializing` from the first contact
    /// until the device polls again, `online` after. Then marks `online` and
    /// `initializing` devices not seen since `offline_before` as offline (one
    /// never seen counts from its record's last update).
    async fn record_presence(&self, seen: &[Sighting], offline_before: Timestamp) -> StoreResult<()>;

    // --- jobs and executions -------------------------------------------------------------

    /// Creates a job and one execution per target, in the target's initial state.
    /// `Conflict` when the id is taken; `Missing` names each target that does not
    /// exist (a device busy with another job's execution is fine: its execution
    /// waits, queued, until the other one ends).
    async fn create_job(
        &self,
        tenant: &str,
        job: &Job,
        targets: &[(String, ExecutionState)],
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn get_job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>>;
    async fn list_jobs(&self, tenant: &str, state: Option<JobState>, page: &PageRequest) -> StoreResult<Page<Job>>;
    /// How many executions of the job are in each state (states with none are left out).
    async fn execution_counts(&self, tenant: &str, job: &str) -> StoreResult<Vec<(ExecutionState, u64)>>;
    async fn list_executions(
        &self,
        tenant: &str,
        scope: &ExecutionScope,
        page: &PageRequest,
    ) -> StoreResult<Page<Execution>>;
    async fn get_execution(&self, tenant: &str, action_id: i64) -> StoreResult<Option<Execution>>;
    /// The execution of `device` that an action id names (see `Execution::action`),
    /// and the attempt that id was given to (an earlier one when it was retried since).
    async fn execution_by_action(
        &self,
        tenant: &str,
        device: &str,
        action: i64,
    ) -> StoreResult<Option<(Execution, u32)>>;
    /// The execution's history, oldest first.
    async fn execution_history(&self, tenant: &str, action_id: i64) -> StoreResult<Vec<ExecutionEvent>>;
    /// Changes one execution as `rule` decides, atomically with reading it: the
    /// new state, its history event, and what follows from it (a success sets
    /// the device's installed versions; the last execution to finish completes
    /// its job). `Ok(Err(_))` when the rule refuses the change.
    async fn change_execution(
        &self,
        tenant: &str,
        action_id: i64,
        rule: ExecutionRule<'_>,
        now: Timestamp,
    ) -> StoreResult<Result<Execution, TransitionError>>;

    // --- the jobs engine ---------------------------------------------------------------

    /// Jobs the scheduler looks after, across tenants: `scheduled`, `running` and `paused`.
    async fn live_jobs(&self) -> StoreResult<Vec<(String, Job)>>;
    /// Moves a job from `from` to `to` (and sets its hold) if it is still in
    /// `from`: `Ok(None)` when it was not (someone else moved it first). The
    /// first move to `running` sets `started_at`; a finished state sets
    /// `finished_at`, and finished state also ends the job's unstarted executions
    /// and asks its started ones to stop.
    async fn move_job(
        &self,
        tenant: &str,
        id: &str,
        from: JobState,
        to: JobState,
        held: bool,
        now: Timestamp,
    ) -> StoreResult<Option<Job>>;
    /// Takes or renews the lease on a job for `owner` until `until`: `true`
    /// when `owner` holds it now (nobody held it, it had expired, or `owner`
    /// held it already). Several replicas share the scheduler's work this way.
    async fn lease_job(
        &self,
        tenant: &str,
        id: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives up every lease `owner` holds (a replica shutting down), so that
    /// another replica, or this one restarted, takes its jobs at once.
    async fn release_leases(&self, owner: &str) -> StoreResult<u64>;
    /// Replaces a job's specification (its schedule, say).
    async fn update_job_spec(&self, tenant: &str, id: &str, spec: &JobSpec) -> StoreResult<()>;
    /// What pacing needs to know of a job's executions at `now`.
    async fn pace_stats(&self, tenant: &str, job: &str, now: Timestamp) -> StoreResult<PaceStats>;
    /// Releases queued executions of the job to their devices (`notified`),
    /// oldest first, all in one write transaction: it reads the job (locked
    /// against other releases of it) and its [`PaceStats`] at `now`, asks
    /// `budget` how many it may release, and releases up to that many, skipping
    /// devices working on another execution (a device never has two in
    /// progress, however many releases run at once). `device` limits it to
    /// that device's execution (a device asking for the job).
    /// `NotFound` when the job does not exist.
    async fn release_executions(
        &self,
        tenant: &str,
        job: &str,
        device: Option<&str>,
        budget: ReleaseBudget<'_>,
        now: Timestamp,
    ) -> StoreResult<Released>;
    /// Ends as `timed_out` the job's executions in progress released before `released_before`.
    async fn time_out_executions(
        &self,
        tenant: &str,
        job: &str,
        released_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<String>>;
    /// Queues again the failed and timed-out executions whose retry is due.
    async fn retry_executions(
        &self,
        tenant: &str,
        job: &str,
        retry: &Retry,
        now: Timestamp,
    ) -> StoreResult<Vec<String>>;
    /// Adds executions to a job for devices it does not have yet (others are
    /// left as they are); answers how many were added.
    async fn add_executions(
        &self,
        tenant: &str,
        job: &Job,
        targets: &[(String, ExecutionState)],
        now: Timestamp,
    ) -> StoreResult<u64>;
    /// Whether the job has an execution for each of `devices`: those it has.
    async fn job_has_devices(&self, tenant: &str, job: &str, devices: &[String]) -> StoreResult<Vec<String>>;
    /// Completes a running or paused snapshot job with nothing left to do (no
    /// unfinished execution, no retry due); marks a verify job's firmware
    /// verified when every execution succeeded. Answers whether it completed.
    async fn complete_job_if_done(&self, tenant: &str, id: &str, now: Timestamp) -> StoreResult<bool>;

    // --- device filters ----------------------------------------------------------------

    /// How many of the tenant's devices `filter` matches at `now`; the same
    /// answer as [`Filter::matches`] on each device.
    async fn count_devices_matching(&self, tenant: &str, filter: &Filter, now: Timestamp) -> StoreResult<u64>;
    /// The tenant's devices in `scope` that `filter` matches at `now`, a page at
    /// a time (`scope` and `page.search` narrow them as in [`Store::list_devices`]).
    async fn list_devices_matching(
        &self,
        tenant: &str,
        scope: &DeviceScope,
        filter: &Filter,
        now: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>>;
    /// The ids of the groups `device` is a member of, sorted (for evaluating a
    /// filter in memory with [`Filter::matches`]).
    async fn device_groups(&self, tenant: &str, device: &str) -> StoreResult<Vec<String>>;

    /// `Conflict` when the id is taken.
    async fn create_saved_filter(&self, tenant: &str, filter: &SavedFilter) -> StoreResult<()>;
    async fn get_saved_filter(&self, tenant: &str, id: &str) -> StoreResult<Option<SavedFilter>>;
    async fn list_saved_filters(&self, tenant: &str, page: &PageRequest) -> StoreResult<Page<SavedFilter>>;
    /// Writes the name, description, filter, `updated_at` and `updated_by`.
    async fn update_saved_filter(&self, tenant: &str, filter: &SavedFilter) -> StoreResult<()>;
    async fn delete_saved_filter(&self, tenant: &str, id: &str) -> StoreResult<()>;

    // The event stream (see [`events`]); across tenants on purpose: followers
    // serve every tenant.

    /// Where this store hands the events it commits to followers in this process.
    fn feed(&self) -> &EventFeed;
    /// Up to `limit` events after `after`, in stream order, as far as they are
    /// visible without gaps (an event committed later never sorts before one
    /// already returned).
    async fn events_after(&self, after: EventCursor, limit: u32) -> StoreResult<Vec<Event>>;
    /// Whether events after `after` were committed that [`Store::events_after`]
    /// does not return yet (an older transaction is still running): read again shortly.
    async fn events_waiting(&self, after: EventCursor) -> StoreResult<bool>;
    /// The cursor of the last visible event: a follower starting now starts here.
    async fn event_tail(&self) -> StoreResult<EventCursor>;
    /// Takes or renews `follower`'s lease for `owner` until `until` and returns
    /// where it is; `None` while another owner's lease runs. A follower never
    /// seen before starts at the tail.
    async fn claim_follower(
        &self,
        follower: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Option<EventCursor>>;
    /// Moves `follower`'s cursor forward to `to` if `owner` still holds it.
    async fn advance_follower(&self, follower: &str, owner: &str, to: EventCursor) -> StoreResult<bool>;
    /// Lets go of `owner`'s follower leases (a replica stopping).
    async fn release_followers(&self, owner: &str) -> StoreResult<()>;
    /// Deletes the events recorded before `before`; returns how many.
    async fn prune_events(&self, before: Timestamp) -> StoreResult<u64>;
}
