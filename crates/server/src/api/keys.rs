//! API keys of the caller's tenant (admin role).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{Access, ApiKey, FieldError, KeyChange, Role};
use utoipa::ToSchema;

use crate::auth::{Caller, new_id, new_token, token_hash, token_prefix};
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

pub fn parse_role(role: &str) -> ApiResult<Role> {
    Role::parse(role).ok_or_else(|| {
        ApiError::field("role", format!("unknown role `{role}`; roles: admin, operator, viewer, consent"))
    })
}

/// A new key record and its token, for `tenant`.
pub fn issue(tenant: &str, role: Role, name: Option<String>, now: Timestamp) -> (ApiKey, String) {
    let token = new_token("upd_k_");
    let key = ApiKey {
        id: new_id("key_"),
        tenant: tenant.to_owned(),
        role,
        name,
        server_admin: false,
        created_at: now,
        expires_at: None,
        token_prefix: Some(token_prefix(&token)),
    };
    (key, token)
}

/// Checks a requested key and issues it for `tenant` (its token shown this once).
pub async fn create_for(
    state: &AppState,
    tenant: &str,
    input: KeyIn,
) -> ApiResult<(StatusCode, [(header::HeaderName, &'static str); 1], Json<KeyOut>)> {
    let now = state.now();
    let mut errors: Vec<FieldError> = vec![];
    let role = Role::parse(&input.role);
    if role.is_none() {
        errors.push(FieldError::new(
            "role",
            format!("unknown role `{}`; roles: admin, operator, viewer, consent", input.role),
        ));
    }
    let name = super::non_empty(input.name);
    if let Some(n) = &name {
        updraft_core::validate::text("name", n, 128, &mut errors);
    }
    if input.expires_at.is_some_and(|at| at <= now) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    let Some(role) = role.filter(|_| errors.is_empty()) else { return Err(ApiError::invalid(errors)) };
    let (mut key, token) = issue(tenant, role, name, now);
    key.expires_at = input.expires_at;
    state.store.create_key(&key, &token_hash(&token)).await?;
    tracing::info!(key = %key.id, role = role.as_str(), tenant = %key.tenant, "api key created");
    Ok((StatusCode::CREATED, NO_STORE, Json(KeyOut::new(key, Some(token)))))
}

/// For answers that carry a secret: no cache may keep them.
pub const NO_STORE: [(header::HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = KeyIn,
    responses((status = 201, body = KeyOut, description = "the key, with its token shown this once")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<KeyIn>,
) -> ApiResult<(StatusCode, [(header::HeaderName, &'static str); 1], Json<KeyOut>)> {
    caller.require(Access::ManageKeys)?;
    create_for(&state, caller.tenant(), input).await
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = super::ItemsOut<KeyOut>, description = "the tenant's keys, each with its token's prefix only")))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<KeyOut>>> {
    caller.require(Access::ManageKeys)?;
    let keys: Vec<KeyOut> =
        state.store.list_keys(caller.tenant()).await?.into_iter().map(|k| KeyOut::new(k, None)).collect();
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
    caller.require(Access::ManageKeys)?;
    let mut errors: Vec<FieldError> = vec![];
    let role = match patch.role.as_deref().map(|r| (r, Role::parse(r))) {
        Some((r, None)) => {
            errors
                .push(FieldError::new("role", format!("unknown role `{r}`; roles: admin, operator, viewer, consent")));
            None
        }
        Some((_, role)) => role,
        None => None,
    };
    let name = patch.name.map(super::non_empty);
    if let Some(Some(n)) = &name {
        updraft_core::validate::text("name", n, 128, &mut errors);
    }
    if patch.expires_at.flatten().is_some_and(|at| at <= state.now()) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let change = KeyChange::Update { role, name, expires_at: patch.expires_at };
    let key = state.store.change_key(caller.tenant(), &id, &change).await??;
    let key = key.ok_or_else(|| ApiError::not_found("key", &id))?;
    tracing::info!(key = %id, role = key.role.as_str(), tenant = caller.tenant(), "api key changed");
    Ok(Json(KeyOut::new(key, None)))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys",
    responses((status = 204),
        (status = 409, description = "`server_admin_key` or `last_admin_key`: the change would lock the tenant or the server out")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Access::ManageKeys)?;
    state.store.change_key(caller.tenant(), &id, &KeyChange::Delete).await??;
    tracing::info!(key = %id, tenant = caller.tenant(), "api key deleted");
    Ok(StatusCode::NO_CONTENT)
}
