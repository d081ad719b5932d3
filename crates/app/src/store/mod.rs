//! The storage boundary: what updraft keeps, as one trait per aggregate,
//! implemented by `updraft-store-sqlite` and `updraft-store-postgres` (both
//! through `updraft-store-sql`), and one conformance suite both must pass.
//!
//! - [`TenantStore`]: tenants and their API keys.
//! - [`CatalogStore`]: products and their firmware.
//! - [`DeviceStore`]: devices (registration, idempotent imports, tokens, the
//!   identity the device API reads, changes to their records), groups and
//!   their members, device filters and saved filters, gateway tokens.
//! - [`JobStore`]: jobs, their executions and each execution's history, and
//!   what the jobs engine does to one job (moves, releases within the pace,
//!   timeouts, retries, additions, completion).
//! - [`EngineStore`]: what background work does across tenants and replicas:
//!   the live jobs and their leases, presence and the offline sweep.
//! - [`SigningStore`]: code signing's trust anchors.
//! - [`EventStore`]: the event stream and its durable followers (see [`events`]).
//! - [`Store`]: all of these, with the backend's name and `close`; what the
//!   server holds, as `Arc<dyn Store>`. A caller imports the traits whose
//!   methods it calls (`use updraft_app::store::{DeviceStore, JobStore}`).
//!
//! Invariants every implementation keeps:
//! - every method that takes a tenant is scoped to it: it never reads or writes
//!   another tenant's rows. The methods without one work across tenants on
//!   purpose, and say so: tenant, key and token look-ups (a token names its
//!   tenant), the engine's work ([`EngineStore`]: the offline sweep,
//!   `live_jobs`, `release_leases`), and the event stream;
//! - every method is atomic: it either does all of its writes or none, and a
//!   method that changes state appends its events in the same transaction;
//! - errors are reported as [`StoreError`] variants, never as panics.

mod catalog;
#[cfg(feature = "conformance")]
pub mod conformance;
mod devices;
mod engine;
mod error;
pub mod events;
mod jobs;
mod signing;
mod tenants;
mod trust;

use async_trait::async_trait;

pub use catalog::CatalogStore;
pub use devices::{
    DeviceChange, DeviceIdentity, DeviceScope, DeviceStore, DeviceSummaryRow, DeviceVersions, GatewayToken, GroupToken,
    IdempotentRequest, MembershipChange, PollSeed, SavedFilter,
};
pub use engine::{EngineStore, Sighting};
pub use error::{StoreError, StoreResult};
pub use events::{
    AuditQuery, Change, Event, EventCursor, EventFeed, EventStore, StateChange, acting, current_actor, set_actor,
};
pub use jobs::{
    DeviceActions, ExecutionRule, ExecutionScope, JobStore, ReleaseBudget, ReleaseClock, Released, TimelineRow,
};
pub use signing::SigningStore;
pub use tenants::{AccessKey, TenantStore};
pub use trust::{TrustKey, TrustMetadata, TrustRole, TrustStore};

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

/// Everything updraft keeps: every aggregate's store, with the backend's
/// name and its shutdown.
#[async_trait]
pub trait Store:
    TenantStore + CatalogStore + DeviceStore + JobStore + EngineStore + EventStore + TrustStore + SigningStore + 'static
{
    /// The backend's name, for logs and metrics: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Flushes what the backend buffers and releases its connections.
    async fn close(&self);
}
