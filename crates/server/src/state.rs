//! What every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use updraft_app::App;

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
