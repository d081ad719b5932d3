//! Tenants (organisations): created by the server administrator only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{Role, Tenant};
use utoipa::ToSchema;

use super::keys::{KeyOut, issue};
use crate::auth::{Caller, token_hash};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// `[A-Za-z0-9_-]{1,64}`; matched case-insensitively.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<Tenant> for TenantOut {
    fn from(t: Tenant) -> Self {
        TenantOut { id: t.id, name: t.name, created_at: t.created_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantCreated {
    pub tenant: TenantOut,
    /// The tenant's first admin key.
    pub key: KeyOut,
    /// The same key's token, shown this once.
    pub token: String,
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = TenantIn,
    responses((status = 201, body = TenantCreated), (status = 409, description = "the name is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<TenantIn>,
) -> ApiResult<(StatusCode, Json<TenantCreated>)> {
    caller.require_server_admin()?;
    let mut errors = vec![];
    updraft_core::validate::tenant_name("name", &input.name, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let now = state.now();
    let tenant = Tenant { id: input.name.to_ascii_lowercase(), name: input.name, created_at: now };
    let (key, token) = issue(&tenant.id, Role::Admin, Some("first admin key".into()), now);
    state.store.create_tenant(&tenant, &key, &token_hash(&token)).await?;
    tracing::info!(tenant = %tenant.id, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated { tenant: tenant.into(), key: KeyOut::new(key, Some(token.clone())), token }),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", responses((status = 200, body = super::ItemsOut<TenantOut>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<TenantOut>>> {
    caller.require_server_admin()?;
    let items: Vec<TenantOut> = state.store.list_tenants().await?.into_iter().map(Into::into).collect();
    Ok(Json(super::ItemsOut::new(items)))
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/keys", tag = "tenants", request_body = super::keys::KeyIn,
    responses((status = 201, body = KeyOut, description = "a key of the tenant, with its token shown this once"),
        (status = 403, description = "only the server administrator's key may issue keys for a tenant"),
        (status = 404, description = "no such tenant")))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<super::keys::KeyIn>,
) -> ApiResult<(StatusCode, [(axum::http::HeaderName, &'static str); 1], Json<KeyOut>)> {
    caller.require_server_admin()?;
    let tenant =
        state.store.get_tenant(&id.to_ascii_lowercase()).await?.ok_or_else(|| ApiError::not_found("tenant", &id))?;
    super::keys::create_for(&state, &tenant.id, input).await
}
