//! Static groups of devices and their members.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::devices::DeviceOut;
use updraft_api::groups::{GroupIn, GroupOut, GroupPatch, MembersIn, MembersOut};
use updraft_app::groups::{GroupChange, NewGroup};
use updraft_app::sortable;

use super::{ListParams, PageOut};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = GroupIn,
    responses((status = 201, body = GroupOut), (status = 404, description = "`not_found`: the product does not exist"),
        (status = 409, description = "the id is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<GroupIn>,
) -> ApiResult<(StatusCode, Json<GroupOut>)> {
    let input = NewGroup { id: input.id, name: input.name, description: input.description, product: input.product };
    let group = state.create_group(&caller.actor, input).await?;
    Ok((StatusCode::CREATED, Json(group.into())))
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", params(ListParams), responses((status = 200, body = PageOut<GroupOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<PageOut<GroupOut>>> {
    let req = params.page(sortable::GROUPS)?;
    let page = state.list_groups(&caller.actor, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, Into::into)))
}

#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups", responses((status = 200, body = GroupOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<GroupOut>> {
    Ok(Json(state.get_group(&caller.actor, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "groups", request_body = GroupPatch, responses((status = 200, body = GroupOut)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<GroupPatch>,
) -> ApiResult<Json<GroupOut>> {
    let change = GroupChange { name: patch.name, description: patch.description };
    Ok(Json(state.update_group(&caller.actor, &id, change).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "groups", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_group(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/groups/{id}/members", tag = "groups", request_body = MembersIn,
    responses((status = 200, body = MembersOut), (status = 400, description = "devices of another product than the group's; nothing changed"),
        (status = 404, description = "`not_found`: the group, or devices to add, do not exist (`details` names each); nothing changed")))]
pub async fn change_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<MembersIn>,
) -> ApiResult<Json<MembersOut>> {
    let changed = state.change_group_members(&caller.actor, &id, &input.add, &input.remove).await?;
    Ok(Json(MembersOut { added: changed.added, removed: changed.removed, member_count: changed.member_count }))
}

#[utoipa::path(get, path = "/api/v1/groups/{id}/members", tag = "groups", params(ListParams),
    responses((status = 200, body = PageOut<DeviceOut>)))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<PageOut<DeviceOut>>> {
    let req = params.page(sortable::DEVICES)?;
    let page = state.group_members(&caller.actor, &id, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, Into::into)))
}
