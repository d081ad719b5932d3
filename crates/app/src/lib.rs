//! updraft's application layer: the use cases every front door calls (the
//! management API, the device API, and the ones to come), the jobs engine's
//! workers, and the followers of the event stream.
//!
//! A use case takes an [`Actor`] (who calls; authorization is decided here,
//! once), works over the store, the blob store and a clock, and returns
//! domain values or an [`Error`] with a stable code, which each front door
//! maps onto its own wire. Nothing here knows HTTP.

pub mod access;
pub mod actor;
pub mod audit;
pub mod code_signing;
pub mod devices;
pub mod error;
pub mod executions;
pub mod followers;
pub mod idempotency;
pub mod jobs;
pub mod metrics;
pub mod overview;
pub mod phases;
pub mod presence;
pub mod push;
pub mod scheduler;
pub mod store;
pub mod targeting;
pub mod workers;

pub mod access_keys;
pub mod filters;
pub mod firmware;
pub mod fleet_index;
pub mod gateway_tokens;
pub mod group_tokens;
pub mod groups;
pub mod keys;
pub mod products;
pub mod signing_profiles;
pub mod system;
pub mod tenants;
mod text;
pub mod trust;
pub mod users;

use std::sync::Arc;

use crate::store::Store;
use jiff::Timestamp;
use updraft_blob::BlobStore;

/// The store's types front doors name: scopes of lists, sortable fields,
/// what a device is offered, the events listeners see, saved filters and
/// gateway tokens.
pub use crate::store::{
    AccessKey, Change, DeviceActions, DeviceIdentity, DeviceScope, Event, ExecutionScope, GatewayToken, GroupToken,
    PollSeed, SavedFilter, sortable,
};
pub use actor::Actor;
pub use error::{Error, ErrorCode, Kind, Result};

/// Where use cases and workers read the time from; tests substitute their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    /// Now, to the microsecond (what the stores keep).
    fn now(&self) -> Timestamp {
        Timestamp::from_microsecond(Timestamp::now().as_microsecond()).expect("now is in range")
    }
}

/// What the application layer is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often devices should poll, in seconds.
    pub poll_interval_secs: u64,
    /// A device not seen for this long is offline, in seconds.
    pub offline_after_secs: u64,
    /// How often the presence worker writes sightings, in milliseconds.
    pub presence_flush_ms: u64,
    /// How often the scheduler moves jobs, in milliseconds.
    pub scheduler_tick_ms: u64,
    /// How often a running continuous job is fully re-evaluated, in seconds.
    pub continuous_reevaluation_secs: u64,
    /// How long events are kept, in hours.
    pub event_retention_hours: u64,
    /// How often a durable follower looks at the stream without being woken, in seconds.
    pub follower_poll_secs: u64,
    /// The product a device registering itself through a gateway gets.
    pub ddi_default_product: Option<String>,
    /// How long an `Idempotency-Key` is kept, in seconds.
    pub idempotency_ttl_secs: u64,
    /// How long a dashboard session lasts, in hours (1 to 720).
    pub session_hours: u64,
    /// How long the audit log keeps an entry, in days.
    pub audit_retention_days: u64,
    /// How long TUF metadata signed online is valid.
    pub trust_lifetimes: trust::Lifetimes,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            poll_interval_secs: 300,
            offline_after_secs: 900,
            presence_flush_ms: 10_000,
            scheduler_tick_ms: 1000,
            continuous_reevaluation_secs: 3600,
            event_retention_hours: 168,
            follower_poll_secs: 30,
            ddi_default_product: None,
            idempotency_ttl_secs: 86_400,
            session_hours: 12,
            audit_retention_days: 365,
            trust_lifetimes: trust::Lifetimes::default(),
        }
    }
}

/// The application: what every use case, worker and follower works with.
#[derive(Clone)]
pub struct App {
    /// Only use cases reach the store: front doors call them.
    pub(crate) store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub presence: Arc<presence::Presence>,
    pub reevaluations: Arc<scheduler::Reevaluations>,
    /// How far this replica's event followers are.
    pub followers: Arc<followers::Progress>,
    /// Who sees every event (see [`App::on_events`]).
    pub listeners: Arc<followers::Listeners>,
    /// This process's name in leases (random per start).
    pub replica: Arc<str>,
    /// The fleet overview's figures, per tenant.
    pub overviews: Arc<overview::OverviewCache>,
    /// Each tenant's devices as filters read them, for estimates (see [`fleet_index`]).
    pub(crate) fleet_index: Arc<fleet_index::FleetIndex>,
    /// TUF signing and the sealing of secrets kept in the store (provided by `updraft-trust`).
    pub(crate) crypto: Arc<dyn trust::TrustCrypto>,
    /// Front doors that push work to devices (see [`push`]).
    pub(crate) pushes: Arc<push::Pushes>,
    /// Which jobs just changed, for live pages (see [`App::watch_jobs`]).
    job_changes: tokio::sync::broadcast::Sender<Arc<JobTouched>>,
}

/// A job, or its executions, changed (from this replica or another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTouched {
    pub tenant: String,
    pub job: String,
}

impl App {
    /// An application over its store, blobs and clock, signing and sealing with `crypto`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        config: Config,
        clock: Arc<dyn Clock>,
        crypto: Arc<dyn trust::TrustCrypto>,
    ) -> Self {
        let store_backend = store.backend();
        let app = App {
            store,
            blobs,
            config: Arc::new(config),
            clock,
            presence: Default::default(),
            reevaluations: Default::default(),
            followers: Default::default(),
            listeners: Default::default(),
            replica: actor::new_id("replica_").into(),
            overviews: Default::default(),
            // Only a store this process alone writes is followed completely by its own events.
            fleet_index: Arc::new(fleet_index::FleetIndex::new(store_backend == "sqlite")),
            crypto,
            pushes: Default::default(),
            job_changes: tokio::sync::broadcast::channel(1024).0,
        };
        let index = app.fleet_index.clone();
        app.on_events(move |events| index.mark(events));
        let changes = app.job_changes.clone();
        app.on_events(move |events| {
            if changes.receiver_count() == 0 {
                return;
            }
            for e in events {
                if let Change::JobCreated { job }
                | Change::JobChanged { job, .. }
                | Change::ExecutionsChanged { job, .. } = &e.change
                {
                    let _ = changes.send(Arc::new(JobTouched { tenant: e.tenant.clone(), job: job.clone() }));
                }
            }
        });
        app
    }

    /// Tells of every job that changes from now on (a live page's feed; a
    /// receiver that lags is told so and should look again).
    pub fn watch_jobs(&self) -> tokio::sync::broadcast::Receiver<Arc<JobTouched>> {
        self.job_changes.subscribe()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs `listener` on every batch of events: this replica's before the
    /// writing call returns, other replicas' as soon as they are announced.
    /// Keep it cheap: it runs on the writer's task.
    pub fn on_events(&self, listener: impl Fn(&[crate::store::Event]) + Send + Sync + 'static) {
        let listener: followers::Listener = Arc::new(listener);
        let local = listener.clone();
        self.store.feed().on_commit(move |events| local(events));
        self.listeners.add(listener);
    }

    /// Starts the workers and the followers; send `true` on the returned
    /// channel to stop them, then await the handles.
    pub fn spawn_background(&self) -> (tokio::sync::watch::Sender<bool>, Vec<tokio::task::JoinHandle<()>>) {
        let (stop, mut tasks) = workers::spawn(self.clone());
        tasks.extend(followers::spawn(self, &stop.subscribe()));
        (stop, tasks)
    }

    /// The last event this replica committed (see [`App::settle`]).
    pub fn published(&self) -> i64 {
        self.store.feed().published()
    }

    /// Waits until this replica's followers have acted on what it committed
    /// (see [`followers::Progress::settle`]).
    pub async fn settle(&self) {
        self.followers.settle(self).await;
    }

    /// Hands this replica's jobs over at once (after a crash they wait for
    /// their leases to expire) and closes the store.
    pub async fn shut_down(&self) {
        if let Err(e) = self.store.release_leases(&self.replica).await {
            tracing::warn!(error = %e, "releasing scheduler leases failed");
        }
        self.store.close().await;
    }

    /// Which store backend holds the data (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Runs one scheduler tick as of now (tests step the engine with it).
    pub async fn tick_scheduler(&self) -> Result<scheduler::TickReport> {
        Ok(scheduler::tick(self, self.now()).await?)
    }
}
