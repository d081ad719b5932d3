//! Group tokens: a narrow credential for one group (seed 004's `token`, the
//! IoTaaP door's), acting as an API key of the tenant on that group only. Admin only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::group_tokens::{GroupTokenIn, GroupTokenOut};
use updraft_app::GroupToken;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

fn out(t: GroupToken, token: Option<String>) -> GroupTokenOut {
    GroupTokenOut { id: t.id, group: t.group, key: t.key, created_at: t.created_at, token }
}

#[utoipa::path(post, path = "/api/v1/group-tokens", tag = "keys", request_body = GroupTokenIn,
    responses((status = 201, body = GroupTokenOut, description = "the token, shown this once")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<GroupTokenIn>,
) -> ApiResult<(StatusCode, Json<GroupTokenOut>)> {
    let (t, token) = state.app.create_group_token(&caller.actor, &input.group, &input.key).await?;
    Ok((StatusCode::CREATED, Json(out(t, Some(token)))))
}

#[utoipa::path(get, path = "/api/v1/group-tokens", tag = "keys", responses((status = 200, body = super::ItemsOut<GroupTokenOut>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<GroupTokenOut>>> {
    let items: Vec<GroupTokenOut> =
        state.app.list_group_tokens(&caller.actor).await?.into_iter().map(|t| out(t, None)).collect();
    Ok(Json(super::ItemsOut::new(items)))
}

#[utoipa::path(delete, path = "/api/v1/group-tokens/{id}", tag = "keys", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_group_token(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
