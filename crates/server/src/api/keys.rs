//! API keys of the caller's tenant (admin role).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_app::keys::{IssuedKey, KeyUpdate, NewKey};
use updraft_core::{ApiKey, Role};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// `admin`, `operator`, `viewer` or `consent`.
    #[schema(schema_with = super::schemas::role)]
    pub role: String,
    /// A label to recognise the key by.
    pub name: Option<String>,
    /// When the key stops working (RFC 3339, in the future); absent: never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

/// Changes to a key: only the fields given change (`null` clears `name` or `expires_at`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    pub role: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<Timestamp>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub id: String,
    pub tenant: String,
    #[schema(schema_with = super::schemas::role)]
    pub role: Role,
    pub name: Option<String>,
    pub server_admin: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the key stops working; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// The token's first characters (`upd_k_1a2b`), to recognise it by; never the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_prefix: Option<String>,
    /// The secret, present only in the answer that creates the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl KeyOut {
    pub fn new(k: ApiKey, token: Option<String>) -> Self {
        KeyOut {
            id: k.id,
            tenant: k.tenant,
            role: k.role,
            name: k.name,
            server_admin: k.server_admin,
            created_at: k.created_at,
            expires_at: k.expires_at,
            token_prefix: k.token_prefix,
            token,
        }
    }
}

/// For answers that carry a secret: no cache may keep them.
pub const NO_STORE: [(header::HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

/// What a key's creation answers: the key, with its token shown this once.
pub type Created = (StatusCode, [(header::HeaderName, &'static str); 1], Json<KeyOut>);

impl From<KeyIn> for NewKey {
    fn from(k: KeyIn) -> Self {
        NewKey { role: k.role, name: k.name, expires_at: k.expires_at }
    }
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
    Ok(created(state.create_key(&caller.actor, input.into()).await?))
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
