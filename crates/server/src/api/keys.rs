//! API keys of the caller's tenant (admin role).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{Access, ApiKey, FieldError, Role};
use utoipa::ToSchema;

use crate::auth::{Caller, new_id, new_token, token_hash};
use crate::error::{ApiError, ApiResult};
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
            token,
        }
    }
}

pub fn parse_role(role: &str) -> ApiResult<Role> {
    Role::parse(role).ok_or_else(|| {
        ApiError::field("role", format!("unknown role `{role}`; roles: admin, operator, viewer, consent"))
    })
}

/// A new key record and its token, for `tenant`.
pub fn issue(tenant: &str, role: Role, name: Option<String>, now: Timestamp) -> (ApiKey, String) {
    let key =
        ApiKey { id: new_id("key_"), tenant: tenant.to_owned(), role, name, server_admin: false, created_at: now };
    (key, new_token("upd_k_"))
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = KeyIn,
    responses((status = 201, body = KeyOut, description = "the key, with its token shown this once")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<KeyIn>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    caller.require(Access::ManageKeys)?;
    let role = parse_role(&input.role)?;
    let name = super::non_empty(input.name);
    if let Some(n) = &name {
        let mut errors: Vec<FieldError> = vec![];
        updraft_core::validate::text("name", n, 128, &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
    }
    let (key, token) = issue(caller.tenant(), role, name, state.now());
    state.store.create_key(&key, &token_hash(&token)).await?;
    tracing::info!(key = %key.id, role = role.as_str(), tenant = %key.tenant, "api key created");
    Ok((StatusCode::CREATED, Json(KeyOut::new(key, Some(token)))))
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", responses((status = 200, body = super::ItemsOut<KeyOut>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<KeyOut>>> {
    caller.require(Access::ManageKeys)?;
    let keys: Vec<KeyOut> =
        state.store.list_keys(caller.tenant()).await?.into_iter().map(|k| KeyOut::new(k, None)).collect();
    Ok(Json(super::ItemsOut::new(keys)))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Access::ManageKeys)?;
    state.store.delete_key(caller.tenant(), &id).await?;
    tracing::info!(key = %id, tenant = caller.tenant(), "api key deleted");
    Ok(StatusCode::NO_CONTENT)
}
