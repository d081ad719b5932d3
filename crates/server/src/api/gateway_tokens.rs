//! Gateway tokens: one secret that lets a gateway speak the device API for
//! any device of the tenant (`Authorization: GatewayToken <token>`). Admin only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::gateway_tokens::{GatewayTokenIn, GatewayTokenOut};
use updraft_app::GatewayToken;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

fn out(t: GatewayToken, token: Option<String>) -> GatewayTokenOut {
    GatewayTokenOut { id: t.id, name: t.name, created_at: t.created_at, token }
}

#[utoipa::path(post, path = "/api/v1/gateway-tokens", tag = "keys", request_body = GatewayTokenIn,
    responses((status = 201, body = GatewayTokenOut, description = "the token, shown this once")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<GatewayTokenIn>,
) -> ApiResult<(StatusCode, Json<GatewayTokenOut>)> {
    let (t, token) = state.create_gateway_token(&caller.actor, input.name).await?;
    Ok((StatusCode::CREATED, Json(out(t, Some(token)))))
}

#[utoipa::path(get, path = "/api/v1/gateway-tokens", tag = "keys", responses((status = 200, body = super::ItemsOut<GatewayTokenOut>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<GatewayTokenOut>>> {
    let items: Vec<GatewayTokenOut> =
        state.list_gateway_tokens(&caller.actor).await?.into_iter().map(|t| out(t, None)).collect();
    Ok(Json(super::ItemsOut::new(items)))
}

#[utoipa::path(delete, path = "/api/v1/gateway-tokens/{id}", tag = "keys", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_gateway_token(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
