//! Tenants (organisations): created by the server administrator only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::Tenant;
use utoipa::ToSchema;

use super::keys::{Created, KeyIn, KeyOut, created};
use crate::auth::Caller;
use crate::error::ApiResult;
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
    let (tenant, first) = state.create_tenant(&caller.actor, &input.name).await?;
    let token = first.token;
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated { tenant: tenant.into(), key: KeyOut::new(first.key, Some(token.clone())), token }),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", responses((status = 200, body = super::ItemsOut<TenantOut>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<TenantOut>>> {
    let items: Vec<TenantOut> = state.list_tenants(&caller.actor).await?.into_iter().map(Into::into).collect();
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
    ApiJson(input): ApiJson<KeyIn>,
) -> ApiResult<Created> {
    Ok(created(state.create_tenant_key(&caller.actor, &id, input.into()).await?))
}
