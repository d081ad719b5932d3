//! What every handler shares.

use std::sync::Arc;

use jiff::Timestamp;
use metrics_exporter_prometheus::PrometheusHandle;
use updraft_blob::BlobStore;
use updraft_core::job::{Execution, TransitionError};
use updraft_store::{ExecutionRule, Store, StoreResult};

use crate::Settings;

/// Where handlers and workers read the time from; tests substitute their own.
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

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub metrics: PrometheusHandle,
    pub presence: Arc<crate::presence::Presence>,
    pub poll_cache: Arc<crate::ddi::cache::PollCache>,
    pub rate_limiter: Arc<crate::ratelimit::RateLimiter>,
    pub reevaluations: Arc<crate::scheduler::Reevaluations>,
    /// How far this replica's event followers are.
    pub followers: Arc<crate::followers::Progress>,
    /// This process's name in scheduler leases (random per start).
    pub replica: Arc<str>,
}

impl AppState {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Changes an execution as `rule` decides (see `Store::change_execution`).
    pub async fn change_execution(
        &self,
        tenant: &str,
        execution: &Execution,
        rule: ExecutionRule<'_>,
        now: Timestamp,
    ) -> StoreResult<Result<Execution, TransitionError>> {
        self.store.change_execution(tenant, execution.action_id, rule, now).await
    }
}
