//! The seeds' own front doors (ADR 0012): other platforms' OTA calls, answered
//! on the same use cases as the management API, each in its platform's shape.
//! A door reads its platform's wire (types and parsing stay here), maps the
//! request onto one use case of `updraft_app` (most onto
//! [`crate::api::jobs::draft`] and `App::create_job`, as the dashboard's wizard
//! does), and renders the result and the app's errors as its platform does.

pub mod aliyun;
pub mod enos;
pub mod iotaap;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{any, get};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/compat/enos/connect-service/v2.1/ota-jobs", any(enos::ota_jobs))
        .route("/compat/aliyun", any(aliyun::rpc))
        .route("/compat/aliyun/", any(aliyun::rpc))
        .route(
            "/compat/iotaap/v1/ota/group",
            get(iotaap::list)
                .post(iotaap::deploy)
                .layer(axum::extract::DefaultBodyLimit::max(iotaap::MAX_FIRMWARE_BYTES + (1 << 20))),
        )
}

/// The request's id, as the request-id layer set it (answered in the body by
/// the platforms that carry one there).
pub fn request_id(headers: &HeaderMap) -> String {
    headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}
