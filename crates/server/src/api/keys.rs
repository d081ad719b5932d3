//! API keys of the caller's tenant (admin role).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use updraft_api::keys::{KeyIn, KeyOut, KeyPatch};
use updraft_app::keys::{IssuedKey, KeyUpdate, NewKey};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// For answers that carry a secret: no cache may keep them.
pub const NO_STORE: [(header::HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

/// What a key's creation answers: the key, with its token shown this once.
pub type Created = (StatusCode, [(header::HeaderName, &'static str); 1], Json<KeyOut>);

/// A key to issue, as read off the wire.
pub fn new_key(k: KeyIn) -> NewKey {
    NewKey { role: k.role, name: k.name, expires_at: k.expires_at }
}

/// The answer to a key's creation.
pub fn created(issued: IssuedKey) -> Created {
    (StatusCode::CREATED, NO_STORE, Json(KeyOut::new(issued.key, Some(issued.token))))
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = KeyIn,
    responses((status = 201, body = KeyOut, description = "the key, with its token shown this once")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<KeyIn>,
) -> ApiResult<Created> {
    Ok(created(state.create_key(&caller.actor, new_key(input)).await?))
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = super::ItemsOut<KeyOut>, description = "the tenant's keys, each with its token's prefix only")))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<KeyOut>>> {
    let keys: Vec<KeyOut> = state.list_keys(&caller.actor).await?.into_iter().map(|k| KeyOut::new(k, None)).collect();
    Ok(Json(super::ItemsOut::new(keys)))
}

#[utoipa::path(patch, path = "/api/v1/keys/{id}", tag = "keys", request_body = KeyPatch,
    responses((status = 200, body = KeyOut),
        (status = 409, description = "`server_admin_key` or `last_admin_key`: the change would lock the tenant or the server out")))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<KeyPatch>,
) -> ApiResult<Json<KeyOut>> {
    let update = KeyUpdate { role: patch.role, name: patch.name, expires_at: patch.expires_at };
    Ok(Json(KeyOut::new(state.update_key(&caller.actor, &id, update).await?, None)))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys",
    responses((status = 204),
        (status = 409, description = "`server_admin_key` or `last_admin_key`: the change would lock the tenant or the server out")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_key(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
