//! What background work does across tenants and replicas.

use async_trait::async_trait;
use jiff::Timestamp;
use updraft_core::job::Job;

use crate::store::StoreResult;

/// A device seen by a device door since the last presence flush (or gone: `left`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub tenant: String,
    pub device: String,
    /// The first and the last poll since the previous flush.
    pub first: Timestamp,
    pub last: Timestamp,
    /// Polls since the previous flush.
    pub polls: u32,
    /// The device left at `last` (its MQTT connection closed): it is offline now.
    pub left: bool,
}

impl Sighting {
    /// One poll at `at`.
    pub fn once(tenant: &str, device: &str, at: Timestamp) -> Self {
        Sighting { tenant: tenant.to_owned(), device: device.to_owned(), first: at, last: at, polls: 1, left: false }
    }
}

/// The background workers' bookkeeping, across tenants on purpose: which
/// jobs the scheduler looks after and which replica holds each (replicas on
/// one database share the scheduler's work through these leases), and which
/// devices are online.
#[async_trait]
pub trait EngineStore: Send + Sync {
    /// Jobs the scheduler looks after, across tenants: `scheduled`, `running` and `paused`.
    async fn live_jobs(&self) -> StoreResult<Vec<(String, Job)>>;
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
    /// Records that devices were seen: last-seen time; `activated_at` at the
    /// first contact when it is not set; `initializing` from the first contact
    /// until the device polls again, `online` after; `offline` when the last
    /// thing noted was the device leaving. A sighting older than the stored
    /// one changes nothing.
    async fn record_sightings(&self, seen: &[Sighting]) -> StoreResult<()>;
    /// Marks `online` and `initializing` devices not seen since `before` as
    /// offline (one never seen counts from its record's last update), in every
    /// tenant; returns how many. Reads only the devices that went silent.
    async fn mark_silent_offline(&self, before: Timestamp) -> StoreResult<u64>;
}
