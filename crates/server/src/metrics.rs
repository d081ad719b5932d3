//! Every Prometheus metric this crate records, declared in one place.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// HTTP requests handled, by method, route and status.
pub const HTTP_REQUESTS: &str = "updraft_http_requests_total";
/// HTTP request latency in seconds, by method and route.
pub const HTTP_DURATION: &str = "updraft_http_request_duration_seconds";
/// API errors answered, by error code.
pub const API_ERRORS: &str = "updraft_api_errors_total";
/// Firmware bytes received by uploads.
pub const UPLOAD_BYTES: &str = "updraft_firmware_upload_bytes_total";

/// Device API polls answered.
pub const DDI_POLLS: &str = "updraft_ddi_polls_total";
/// Devices whose token and idle poll answer were read into the poll cache at start, so far.
pub const POLL_CACHE_FILLED: &str = "updraft_poll_cache_filled_devices";
/// How long filling the poll cache at start took, in seconds (set once it is done).
pub const POLL_CACHE_FILL_SECONDS: &str = "updraft_poll_cache_fill_seconds";
/// Device feedback reports accepted, by report.
pub const DDI_FEEDBACK: &str = "updraft_ddi_feedback_total";
/// Artifact downloads redirected to a presigned URL of the bucket.
pub const ARTIFACT_REDIRECTS: &str = "updraft_artifact_redirects_total";
/// Artifact bytes sent to devices.
pub const ARTIFACT_BYTES: &str = "updraft_artifact_bytes_total";
/// Failed authentications (wrong API key, device or gateway token, or password).
pub const AUTH_FAILURES: &str = "updraft_auth_failures_total";
/// Device API requests refused for going over a rate limit, by limit (`device`, `address`).
pub const DDI_RATE_LIMITED: &str = "updraft_ddi_rate_limited_total";
/// Reloads of the TLS certificate after its files changed, by result (`loaded`, `kept_previous`).
pub const TLS_RELOADS: &str = "updraft_tls_certificate_reloads_total";

/// AWS IoT Jobs requests over MQTT answered, by outcome (`accepted` or the `rejected` code).
pub const MQTT_REQUESTS: &str = "updraft_mqtt_requests_total";
/// Notifications published to devices over MQTT (`notify`, `notify-next`).
pub const MQTT_NOTIFICATIONS: &str = "updraft_mqtt_notifications_total";
/// Connections to the MQTT broker, by outcome (`connected`, `failed`).
pub const MQTT_CONNECTIONS: &str = "updraft_mqtt_connections_total";
/// Devices' MQTT lifecycle events, by event (`connected`, `disconnected`).
pub const MQTT_PRESENCE: &str = "updraft_mqtt_presence_events_total";

/// Installs the process-wide recorder once and returns its handle.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(HTTP_DURATION.into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
                )
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (tests start many servers in one process).
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Records each request's count and latency, labelled by route template, not raw path.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route).record(start.elapsed().as_secs_f64());
    response
}
