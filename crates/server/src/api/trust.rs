//! A product's TUF repository: its online keys, its root (signed offline and
//! uploaded here), key rotation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use updraft_api::trust::{TrustKeyOut, TrustOut, TrustRoleOut};
use updraft_app::trust::{RoleVersion, TrustStatus};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiPath;
use crate::state::AppState;

fn role(v: Option<RoleVersion>) -> Option<TrustRoleOut> {
    v.map(|v| TrustRoleOut { version: v.version, expires: v.expires })
}

fn out(state: &AppState, parts: &Parts, s: TrustStatus) -> TrustOut {
    let base = crate::ddi::public_base(state, parts);
    TrustOut {
        metadata_url: format!("{base}{}", s.metadata_path),
        targets_url: format!("{base}{}", s.targets_path),
        product: s.product,
        keys: s
            .keys
            .into_iter()
            .map(|k| TrustKeyOut {
                key_id: k.key_id,
                role: k.role.into(),
                public_key: k.public_key,
                in_root: k.in_root,
                created_at: k.created_at,
            })
            .collect(),
        root: role(s.root),
        targets: role(s.targets),
        snapshot: role(s.snapshot),
        timestamp: role(s.timestamp),
    }
}

#[utoipa::path(get, path = "/api/v1/products/{key}/trust", tag = "trust",
    responses((status = 200, body = TrustOut)))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    parts: Parts,
) -> ApiResult<Json<TrustOut>> {
    let s = state.trust_status(&caller.actor, &key).await?;
    Ok(Json(out(&state, &parts, s)))
}

#[utoipa::path(post, path = "/api/v1/products/{key}/trust/keys", tag = "trust",
    responses((status = 200, body = TrustOut, description = "the online keys, made when the product had none")))]
pub async fn prepare_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    parts: Parts,
) -> ApiResult<Json<TrustOut>> {
    let s = state.trust_prepare_keys(&caller.actor, &key).await?;
    Ok(Json(out(&state, &parts, s)))
}

#[utoipa::path(post, path = "/api/v1/products/{key}/trust/keys/{role}/rotate", tag = "trust",
    params(("key" = String, Path), ("role" = String, Path, description = "targets, snapshot or timestamp")),
    responses((status = 200, body = TrustOut, description = "a new key for the role; it signs once a root lists it")))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((key, role)): ApiPath<(String, String)>,
    parts: Parts,
) -> ApiResult<Json<TrustOut>> {
    let s = state.trust_rotate_key(&caller.actor, &key, &role).await?;
    Ok(Json(out(&state, &parts, s)))
}

#[utoipa::path(get, path = "/api/v1/products/{key}/trust/root", tag = "trust",
    responses((status = 200, description = "the newest root metadata, as served to TUF clients", content_type = "application/json", body = Object),
        (status = 409, description = "`trust_not_initialized`")))]
pub async fn root(State(state): State<AppState>, caller: Caller, ApiPath(key): ApiPath<String>) -> ApiResult<Response> {
    let body = state.trust_root(&caller.actor, &key).await?;
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

#[utoipa::path(put, path = "/api/v1/products/{key}/trust/root", tag = "trust",
    request_body(content = updraft_api::trust::SignedRootIn, content_type = "application/json", description = "signed TUF root metadata: version 1 signed by its own root keys, or the next version signed by the current root's keys and its own"),
    responses((status = 200, body = TrustOut), (status = 422, description = "`trust_root_refused`: not signed as TUF requires, or naming online keys updraft does not hold")))]
pub async fn set_root(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    parts: Parts,
    body: Bytes,
) -> ApiResult<Json<TrustOut>> {
    let s = state.trust_set_root(&caller.actor, &key, &body).await?;
    Ok(Json(out(&state, &parts, s)))
}
