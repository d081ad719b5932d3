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
    /// Failed authentications per source address.
    pub auth_failures: Arc<crate::ratelimit::RateLimiter>,
    /// Device API requests per device (`{tenant}/{controller id}`).
    pub ddi_device_limit: Arc<crate::ratelimit::RateLimiter>,
    /// Device API requests per source address.
    pub ddi_address_limit: Arc<crate::ratelimit::RateLimiter>,
    /// Signature nonces the signed compatibility doors have seen lately (per replica).
    pub nonces: Arc<crate::compat::Nonces>,
    /// The CA that issues MQTT devices' client certificates (with the MQTT door on).
    pub device_ca: Option<Arc<crate::mqtt::certs::DeviceCa>>,
}

impl AppState {
    /// Refuses (with the seconds to wait) an address that failed to authenticate too often.
    pub fn auth_blocked(&self, peer: Option<std::net::IpAddr>) -> Result<(), u64> {
        match peer {
            Some(ip) => self.auth_failures.peek(&ip.to_string()),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication against its source address; the one
    /// that uses up the address's budget is recorded in the audit log.
    pub fn auth_failed(&self, peer: Option<std::net::IpAddr>) {
        if let Some(ip) = peer
            && self.auth_failures.check(&ip.to_string()).is_ok()
            && self.auth_failures.peek(&ip.to_string()).is_err()
        {
            tracing::warn!(address = %ip, "failed authentications over the limit: refusing the address for a while");
            let app = self.app.clone();
            tokio::spawn(async move {
                if let Err(e) = app.note_auth_blocked(&ip.to_string()).await {
                    tracing::warn!(error = %e, "the blocked address was not recorded in the audit log");
                }
            });
        }
        metrics::counter!(crate::metrics::AUTH_FAILURES).increment(1);
    }
}

/// The source address of a request, as the listener accepted it.
pub fn peer(parts: &axum::http::request::Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<crate::conn::PeerAddr>().map(|p| p.0.ip())
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

/// The source address of a request, as an extractor.
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(peer(parts)))
    }
}
