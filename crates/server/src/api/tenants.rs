//! Tenants (organisations): created by the server administrator only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::keys::{KeyIn, KeyOut};
use updraft_api::tenants::{TenantCreated, TenantIn, TenantOut};

use super::keys::{Created, created, new_key};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

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

#[utoipa::path(post, path = "/api/v1/tenants/{id}/keys", tag = "tenants", request_body = KeyIn,
    responses((status = 201, body = KeyOut, description = "a key of the tenant, with its token shown this once"),
        (status = 403, description = "only the server administrator's key may issue keys for a tenant"),
        (status = 404, description = "no such tenant")))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<KeyIn>,
) -> ApiResult<Created> {
    Ok(created(state.create_tenant_key(&caller.actor, &id, new_key(input)).await?))
}
