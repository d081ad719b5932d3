//! Health, metrics and the OpenAPI document: no API key needed.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// Liveness and readiness: 200 when the store answers.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let health = state.health().await;
    if health.ok {
        (StatusCode::OK, Json(json!({"status": "ok", "store": health.store})))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "store": health.store})))
    }
}

/// Liveness: a constant answer that touches nothing (also the ceiling the poll benchmark compares to).
pub async fn livez() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#)
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}
