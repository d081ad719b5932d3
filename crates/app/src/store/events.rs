//! The event stream: every state change a store method commits appends, in
//! the same transaction, one or more [`Event`]s to the `events` table (the
//! outbox). Followers read it in order after a cursor; in-process they are
//! also handed each committed batch at once through the store's [`EventFeed`].
//!
//! Order: events are read in the order they became visible, so a follower
//! that has read up to a cursor has seen every event committed before it.
//! On SQLite writers are serialised, so the sequence number is that order.
//! On PostgreSQL sequence numbers are taken before commit and transactions
//! commit out of order; events are therefore ordered by the writing
//! transaction's id, then by sequence, and read only up to the oldest
//! transaction of the database still in progress (see `updraft-store-postgres`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use jiff::Timestamp;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::store::StoreResult;

/// What changed. The payload names the subject and what followers need to
/// act without reading it again where that is cheap (device ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Change {
    #[serde(rename = "tenant.created")]
    TenantCreated { tenant: String },
    #[serde(rename = "key.created")]
    KeyCreated { key: String },
    #[serde(rename = "key.changed")]
    KeyChanged {
        key: String,
        deleted: bool,
        /// The key's role, name and expiry before and after (none after a deletion).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<BTreeMap<String, String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<BTreeMap<String, String>>,
    },
    #[serde(rename = "user.created")]
    UserCreated { user: String },
    /// A user's password was replaced (its sessions ended) or the user was deleted.
    #[serde(rename = "user.changed")]
    UserChanged { user: String, deleted: bool },
    #[serde(rename = "user.signed_in")]
    SignedIn { user: String },
    #[serde(rename = "user.signed_out")]
    SignedOut { user: String },
    #[serde(rename = "product.created")]
    ProductCreated { product: String },
    #[serde(rename = "product.updated")]
    ProductUpdated { product: String },
    #[serde(rename = "product.deleted")]
    ProductDeleted { product: String },
    #[serde(rename = "firmware.created")]
    FirmwareCreated { firmware: String },
    #[serde(rename = "firmware.deleted")]
    FirmwareDeleted { firmware: String },
    #[serde(rename = "trust_anchor.created")]
    TrustAnchorCreated { anchor: String },
    #[serde(rename = "trust_anchor.deleted")]
    TrustAnchorDeleted { anchor: String },
    #[serde(rename = "signing_profile.created")]
    SigningProfileCreated { profile: String },
    #[serde(rename = "signing_profile.deleted")]
    SigningProfileDeleted { profile: String },
    /// Devices registered (one request, any number).
    #[serde(rename = "devices.created")]
    DevicesCreated { devices: Vec<String> },
    /// A device's record changed: properties, metadata, reported attributes.
    #[serde(rename = "device.updated")]
    DeviceUpdated { device: String },
    #[serde(rename = "device.deleted")]
    DeviceDeleted { device: String },
    /// A device's token was replaced: the old one no longer authenticates.
    #[serde(rename = "device.token_changed")]
    DeviceTokenChanged { device: String },
    #[serde(rename = "group.created")]
    GroupCreated { group: String },
    #[serde(rename = "group.updated")]
    GroupUpdated { group: String },
    #[serde(rename = "group.deleted")]
    GroupDeleted { group: String },
    #[serde(rename = "group.members_changed")]
    MembersChanged { group: String, added: Vec<String>, removed: Vec<String> },
    #[serde(rename = "access_key.created")]
    AccessKeyCreated { access_key: String },
    #[serde(rename = "access_key.deleted")]
    AccessKeyDeleted { access_key: String },
    #[serde(rename = "group_token.created")]
    GroupTokenCreated { token: String },
    #[serde(rename = "group_token.deleted")]
    GroupTokenDeleted { token: String },
    #[serde(rename = "gateway_token.created")]
    GatewayTokenCreated { token: String },
    #[serde(rename = "gateway_token.deleted")]
    GatewayTokenDeleted { token: String },
    #[serde(rename = "filter.created")]
    FilterCreated { filter: String },
    #[serde(rename = "filter.updated")]
    FilterUpdated { filter: String },
    #[serde(rename = "filter.deleted")]
    FilterDeleted { filter: String },
    #[serde(rename = "job.created")]
    JobCreated { job: String },
    /// A job's state or specification changed.
    #[serde(rename = "job.changed")]
    JobChanged {
        job: String,
        /// The job's state before and after, when it moved (a command, a schedule, an abort).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<StateChange>,
    },
    /// Executions of a job changed state (released, reported, timed out,
    /// retried, canceled) or were added: the devices they belong to.
    #[serde(rename = "executions.changed")]
    ExecutionsChanged { job: String, devices: Vec<String> },
    /// Online signing keys of a product's TUF repository were made (by role and key id).
    #[serde(rename = "trust.keys_created")]
    TrustKeysCreated { product: String, keys: Vec<String> },
    /// Online keys a new root no longer lists were destroyed.
    #[serde(rename = "trust.keys_retired")]
    TrustKeysRetired { product: String, keys: Vec<String> },
    /// A product's TUF metadata was published: the versions of its roles now.
    #[serde(rename = "trust.published")]
    TrustPublished { product: String, root: u64, targets: u64, snapshot: u64, timestamp: u64 },
    /// An address failed to authenticate more often than allowed and is refused for a while
    /// (recorded in the server administrator's tenant).
    #[serde(rename = "security.auth_blocked")]
    AuthBlocked { address: String },
    /// A device's user consented to, or refused, a job (the execution's own change is
    /// `executions.changed`; this is its record for the audit log).
    #[serde(rename = "consent.decided")]
    ConsentDecided { job: String, device: String, approved: bool },
}

/// A state before and after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub from: String,
    pub to: String,
}

impl Change {
    /// A job's change that is not a move of its state.
    pub fn job_changed(job: &str) -> Change {
        Change::JobChanged { job: job.to_owned(), state: None }
    }

    /// The event's kind, as stored (`device.updated`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Change::TenantCreated { .. } => "tenant.created",
            Change::KeyCreated { .. } => "key.created",
            Change::KeyChanged { .. } => "key.changed",
            Change::UserCreated { .. } => "user.created",
            Change::UserChanged { .. } => "user.changed",
            Change::SignedIn { .. } => "user.signed_in",
            Change::SignedOut { .. } => "user.signed_out",
            Change::ProductCreated { .. } => "product.created",
            Change::ProductUpdated { .. } => "product.updated",
            Change::ProductDeleted { .. } => "product.deleted",
            Change::FirmwareCreated { .. } => "firmware.created",
            Change::FirmwareDeleted { .. } => "firmware.deleted",
            Change::TrustAnchorCreated { .. } => "trust_anchor.created",
            Change::TrustAnchorDeleted { .. } => "trust_anchor.deleted",
            Change::SigningProfileCreated { .. } => "signing_profile.created",
            Change::SigningProfileDeleted { .. } => "signing_profile.deleted",
            Change::DevicesCreated { .. } => "devices.created",
            Change::DeviceUpdated { .. } => "device.updated",
            Change::DeviceDeleted { .. } => "device.deleted",
            Change::DeviceTokenChanged { .. } => "device.token_changed",
            Change::GroupCreated { .. } => "group.created",
            Change::GroupUpdated { .. } => "group.updated",
            Change::GroupDeleted { .. } => "group.deleted",
            Change::MembersChanged { .. } => "group.members_changed",
            Change::AccessKeyCreated { .. } => "access_key.created",
            Change::AccessKeyDeleted { .. } => "access_key.deleted",
            Change::GroupTokenCreated { .. } => "group_token.created",
            Change::GroupTokenDeleted { .. } => "group_token.deleted",
            Change::GatewayTokenCreated { .. } => "gateway_token.created",
            Change::GatewayTokenDeleted { .. } => "gateway_token.deleted",
            Change::FilterCreated { .. } => "filter.created",
            Change::FilterUpdated { .. } => "filter.updated",
            Change::FilterDeleted { .. } => "filter.deleted",
            Change::JobCreated { .. } => "job.created",
            Change::JobChanged { .. } => "job.changed",
            Change::ExecutionsChanged { .. } => "executions.changed",
            Change::TrustKeysCreated { .. } => "trust.keys_created",
            Change::TrustKeysRetired { .. } => "trust.keys_retired",
            Change::TrustPublished { .. } => "trust.published",
            Change::AuthBlocked { .. } => "security.auth_blocked",
            Change::ConsentDecided { .. } => "consent.decided",
        }
    }

    /// The id of what changed (for a batch, the first device or the job).
    pub fn subject(&self) -> &str {
        match self {
            Change::TenantCreated { tenant } => tenant,
            Change::KeyCreated { key } | Change::KeyChanged { key, .. } => key,
            Change::UserCreated { user }
            | Change::UserChanged { user, .. }
            | Change::SignedIn { user }
            | Change::SignedOut { user } => user,
            Change::ProductCreated { product }
            | Change::ProductUpdated { product }
            | Change::ProductDeleted { product } => product,
            Change::FirmwareCreated { firmware } | Change::FirmwareDeleted { firmware } => firmware,
            Change::TrustAnchorCreated { anchor } | Change::TrustAnchorDeleted { anchor } => anchor,
            Change::SigningProfileCreated { profile } | Change::SigningProfileDeleted { profile } => profile,
            Change::DevicesCreated { devices } => devices.first().map(String::as_str).unwrap_or(""),
            Change::DeviceUpdated { device }
            | Change::DeviceDeleted { device }
            | Change::DeviceTokenChanged { device } => device,
            Change::GroupCreated { group }
            | Change::GroupUpdated { group }
            | Change::GroupDeleted { group }
            | Change::MembersChanged { group, .. } => group,
            Change::GatewayTokenCreated { token } | Change::GatewayTokenDeleted { token } => token,
            Change::GroupTokenCreated { token } | Change::GroupTokenDeleted { token } => token,
            Change::AccessKeyCreated { access_key } | Change::AccessKeyDeleted { access_key } => access_key,
            Change::FilterCreated { filter } | Change::FilterUpdated { filter } | Change::FilterDeleted { filter } => {
                filter
            }
            Change::JobCreated { job } | Change::JobChanged { job, .. } | Change::ExecutionsChanged { job, .. } => job,
            Change::TrustKeysCreated { product, .. }
            | Change::TrustKeysRetired { product, .. }
            | Change::TrustPublished { product, .. } => product,
            Change::AuthBlocked { address } => address,
            Change::ConsentDecided { job, .. } => job,
        }
    }
}

/// Where a follower is in the stream: it has read every event up to here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventCursor {
    /// The writing transaction (PostgreSQL's `pg_current_xact_id`; 0 on SQLite).
    pub tx: i64,
    pub seq: i64,
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Where this event is in the stream.
    pub cursor: EventCursor,
    pub tenant: String,
    /// When the store recorded it.
    pub at: Timestamp,
    /// Who did it (`key:<id>`, `device:<id>`, `gateway`, `system:<worker>`), as
    /// [`acting`] and [`set_actor`] said for the task that wrote it.
    pub actor: Option<String>,
    pub change: Change,
}

tokio::task_local! {
    static ACTOR: std::sync::Mutex<Option<String>>;
}

/// Runs `f` with a slot for who acts: the events it writes are recorded as
/// done by `initial`, or by what [`set_actor`] puts in the slot (a front
/// door, once it authenticated its caller). Writes outside any slot record no actor.
pub async fn acting<F: std::future::Future>(initial: Option<String>, f: F) -> F::Output {
    ACTOR.scope(std::sync::Mutex::new(initial), f).await
}

/// Names who acts in the current [`acting`] slot (nothing outside one).
pub fn set_actor(name: String) {
    let _ = ACTOR.try_with(|a| *a.lock().unwrap_or_else(|p| p.into_inner()) = Some(name));
}

/// Who acts in the current [`acting`] slot, if anyone was named.
pub fn current_actor() -> Option<String> {
    ACTOR.try_with(|a| a.lock().unwrap_or_else(|p| p.into_inner()).clone()).ok().flatten()
}

type Hook = Box<dyn Fn(&[Event]) + Send + Sync>;

/// How a store hands committed events to followers in its own process, at
/// once, and wakes them when another process (a replica) committed some.
pub struct EventFeed {
    hooks: RwLock<Vec<Hook>>,
    local: broadcast::Sender<Arc<[Event]>>,
    remote: watch::Sender<u64>,
    published: AtomicI64,
}

impl Default for EventFeed {
    fn default() -> Self {
        EventFeed {
            hooks: Default::default(),
            local: broadcast::channel(4096).0,
            remote: watch::channel(0).0,
            published: AtomicI64::new(0),
        }
    }
}

impl std::fmt::Debug for EventFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFeed").field("published", &self.published()).finish_non_exhaustive()
    }
}

impl EventFeed {
    /// Called by the store after a transaction that appended `events`
    /// committed: runs the hooks, then hands the batch to the local followers.
    pub fn committed(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        for hook in self.hooks.read().expect("feed lock").iter() {
            hook(&events);
        }
        let last = events.iter().map(|e| e.cursor.seq).max().unwrap_or(0);
        self.published.fetch_max(last, Ordering::SeqCst);
        let _ = self.local.send(events.into());
    }

    /// Called by the store when another process committed events.
    pub fn remote_committed(&self) {
        self.remote.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs `hook` on every batch committed by this process, synchronously,
    /// before the writing call returns (keep it cheap: no I/O).
    pub fn on_commit(&self, hook: impl Fn(&[Event]) + Send + Sync + 'static) {
        self.hooks.write().expect("feed lock").push(Box::new(hook));
    }

    /// The batches this process commits from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Event]>> {
        self.local.subscribe()
    }

    /// Changes whenever another process commits events.
    pub fn remote(&self) -> watch::Receiver<u64> {
        self.remote.subscribe()
    }

    /// The highest sequence number this process has committed.
    pub fn published(&self) -> i64 {
        self.published.load(Ordering::SeqCst)
    }
}

/// The event stream and its durable followers; across tenants on purpose:
/// followers serve every tenant.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Where this store hands the events it commits to followers in this process.
    fn feed(&self) -> &EventFeed;
    /// Up to `limit` events after `after`, in stream order, as far as they are
    /// visible without gaps (an event committed later never sorts before one
    /// already returned).
    async fn events_after(&self, after: EventCursor, limit: u32) -> StoreResult<Vec<Event>>;
    /// Whether events after `after` were committed that [`EventStore::events_after`]
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

    /// Appends a change that is no row's (a security event) to the stream.
    async fn note_event(&self, tenant: &str, change: Change) -> StoreResult<()>;
    /// Records `events` in the audit log, each once (by its `seq`).
    async fn record_audit(&self, events: &[Event]) -> StoreResult<()>;
    /// The tenant's audit log, newest first, narrowed by `query`.
    async fn list_audit(&self, tenant: &str, query: &AuditQuery) -> StoreResult<Vec<Event>>;
    /// Deletes the audit entries recorded before `before`; returns how many.
    async fn prune_audit(&self, before: Timestamp) -> StoreResult<u64>;
}

/// Which audit entries to read: all conditions hold; a page of `limit` after skipping `offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Exactly this actor (`key:<id>`, `user:<id>`, `system:<worker>`…).
    pub actor: Option<String>,
    /// Exactly this subject (a job's, device's, key's id…).
    pub subject: Option<String>,
    /// Exactly this kind (`job.changed`…), or every kind under a prefix ending in `.` (`key.`).
    pub kind: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: u32,
    pub offset: u64,
}
