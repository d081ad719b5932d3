//! Static groups of devices and their members.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_app::groups::{GroupChange, NewGroup};
use updraft_app::sortable;
use updraft_core::Group;
use utoipa::ToSchema;

use super::devices::DeviceOut;
use super::{ListParams, PageOut};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, double_option};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupIn {
    /// `[A-Za-z0-9_-]{1,128}`; generated when absent.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    /// When set, only devices of this product may join.
    pub product: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub product: Option<String>,
    pub member_count: u64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<Group> for GroupOut {
    fn from(g: Group) -> Self {
        GroupOut {
            id: g.id,
            name: g.name,
            description: g.description,
            product: g.product,
            member_count: g.member_count,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersIn {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembersOut {
    pub added: u64,
    pub removed: u64,
    pub member_count: u64,
}

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
