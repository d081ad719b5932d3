//! What every handler shares.

use std::sync::Arc;

use jiff::Timestamp;
use metrics_exporter_prometheus::PrometheusHandle;
use updraft_app::App;
use updraft_core::job::{Execution, TransitionError};
use updraft_store::{ExecutionRule, StoreResult};

use crate::Settings;

/// What every handler shares: the application, and what only HTTP needs.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub settings: Arc<Settings>,
    pub metrics: PrometheusHandle,
    pub poll_cache: Arc<crate::ddi::cache::PollCache>,
    pub rate_limiter: Arc<crate::ratelimit::RateLimiter>,
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

impl AppState {
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
