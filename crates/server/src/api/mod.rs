//! The management API under `/api/v1`, one module per resource.
//!
//! Handlers convert wire types (`updraft_api`'s `*In`/`*Out` structs, with the
//! JSON field names of the API) to a use case's input explicitly, call one use
//! case of `updraft_app` with the caller's actor (which checks the role and
//! validates), and convert its answer back.

pub mod access_keys;
pub mod audit;
pub mod devices;
pub mod filters;
pub mod firmware;
pub mod gateway_tokens;
pub mod group_tokens;
pub mod groups;
pub mod jobs;
pub mod keys;
pub mod products;
pub mod signing_profiles;
pub mod system;
pub mod tenants;
pub mod trust;
pub mod trust_anchors;
pub mod users;

use axum::Router;
use axum::routing::{get, post, put};
pub use updraft_api::{ItemsOut, ListParams, PageOut};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/livez", get(system::livez))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/api/docs", get(crate::openapi::docs::page))
        .route("/api/docs/swagger-ui-bundle.js", get(crate::openapi::docs::bundle))
        .route("/api/docs/swagger-ui.css", get(crate::openapi::docs::css))
        .route("/api/v1/tenants", get(tenants::list).post(tenants::create))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{id}", axum::routing::delete(keys::delete).patch(keys::update))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/users/{id}", axum::routing::delete(users::delete))
        .route("/api/v1/users/{id}/password", put(users::set_password))
        .route("/api/v1/tenants/{id}/keys", post(tenants::create_key))
        .route("/api/v1/devices/{id}/token", post(devices::reissue_token))
        .route("/api/v1/devices/{id}/mqtt-certificate", post(devices::mqtt_certificate))
        .route("/api/v1/products", get(products::list).post(products::create))
        .route("/api/v1/products/{key}", get(products::get).patch(products::update).delete(products::delete))
        .route("/api/v1/products/{key}/trust", get(trust::status))
        .route("/api/v1/products/{key}/trust/keys", post(trust::prepare_keys))
        .route("/api/v1/products/{key}/trust/keys/{role}/rotate", post(trust::rotate))
        .route("/api/v1/products/{key}/trust/root", get(trust::root).put(trust::set_root))
        .route("/api/v1/firmware", get(firmware::list).post(firmware::upload).layer(firmware::body_limit()))
        .route("/api/v1/firmware/{id}", get(firmware::get).delete(firmware::delete))
        .route("/api/v1/firmware/{id}/files/{name}", get(firmware::download))
        .route("/api/v1/devices", get(devices::list).post(devices::create))
        .route("/api/v1/devices/import", post(devices::import).layer(devices::import_body_limit()))
        .route("/api/v1/devices/search", post(devices::search))
        .route("/api/v1/devices/{id}", get(devices::get).patch(devices::update).delete(devices::delete))
        .route("/api/v1/filters", get(filters::list).post(filters::create))
        .route("/api/v1/filters/estimate", post(filters::estimate))
        .route("/api/v1/filters/preview", post(filters::preview))
        .route("/api/v1/filters/{id}", get(filters::get).patch(filters::update).delete(filters::delete))
        .route("/api/v1/groups", get(groups::list).post(groups::create))
        .route("/api/v1/groups/{id}", get(groups::get).patch(groups::update).delete(groups::delete))
        .route("/api/v1/groups/{id}/members", get(groups::members).post(groups::change_members))
        .route("/api/v1/group-tokens", get(group_tokens::list).post(group_tokens::create))
        .route("/api/v1/group-tokens/{id}", axum::routing::delete(group_tokens::delete))
        .route("/api/v1/access-keys", get(access_keys::list).post(access_keys::create))
        .route("/api/v1/access-keys/{id}", axum::routing::delete(access_keys::delete))
        .route("/api/v1/gateway-tokens", get(gateway_tokens::list).post(gateway_tokens::create))
        .route("/api/v1/gateway-tokens/{id}", axum::routing::delete(gateway_tokens::delete))
        .route("/api/v1/trust-anchors", get(trust_anchors::list).post(trust_anchors::create))
        .route("/api/v1/trust-anchors/{id}", get(trust_anchors::get).delete(trust_anchors::delete))
        .route("/api/v1/signing-profiles", get(signing_profiles::list).post(signing_profiles::create))
        .route("/api/v1/signing-profiles/{id}", get(signing_profiles::get).delete(signing_profiles::delete))
        .route("/api/v1/jobs", get(jobs::list).post(jobs::create))
        .route("/api/v1/jobs/{id}", get(jobs::get))
        .route("/api/v1/jobs/{id}/start", post(jobs::start))
        .route("/api/v1/jobs/{id}/pause", post(jobs::pause))
        .route("/api/v1/jobs/{id}/resume", post(jobs::resume))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/jobs/{id}/phases/next", post(jobs::next_phase))
        .route("/api/v1/jobs/{id}/retry-failed", post(jobs::retry_failed))
        .route("/api/v1/jobs/{id}/schedule", put(jobs::set_schedule))
        .route("/api/v1/jobs/{id}/targets/estimate", get(jobs::estimate))
        .route("/api/v1/jobs/{id}/executions", get(jobs::executions))
        .route("/api/v1/devices/{id}/executions", get(jobs::device_executions))
        .route("/api/v1/devices/{id}/executions/{job}/consent", post(jobs::consent))
        .merge(crate::ddi::routes())
        .merge(crate::compat::routes())
        .merge(crate::tuf::routes())
        .fallback(crate::extract::route_not_found)
        .method_not_allowed_fallback(crate::extract::method_not_allowed)
}

/// Trims an optional text and treats an empty one as absent.
pub fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}
