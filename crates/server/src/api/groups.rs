//! Static groups of devices and their members.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{Access, Group, validate};
use updraft_store::{DeviceScope, sortable};
use utoipa::ToSchema;

use super::devices::DeviceOut;
use super::{ListParams, PageOut, non_empty};
use crate::auth::{Caller, new_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, double_option};
use crate::state::AppState;

/// The most device ids one membership change may name.
pub const MAX_MEMBER_CHANGE: usize = 100_000;

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

fn check(g: &Group) -> ApiResult<()> {
    let mut errors = vec![];
    validate::key("id", &g.id, &mut errors);
    validate::text("name", &g.name, 256, &mut errors);
    if let Some(d) = &g.description {
        validate::description("description", d, validate::MAX_DESCRIPTION, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::invalid(errors)) }
}

#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = GroupIn,
    responses((status = 201, body = GroupOut), (status = 404, description = "`not_found`: the product does not exist"),
        (status = 409, description = "the id is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<GroupIn>,
) -> ApiResult<(StatusCode, Json<GroupOut>)> {
    caller.require(Access::WriteFleet)?;
    let now = state.now();
    let group = Group {
        id: input.id.unwrap_or_else(|| new_id("grp_")),
        name: input.name.trim().to_owned(),
        description: non_empty(input.description),
        product: non_empty(input.product),
        member_count: 0,
        created_at: now,
        updated_at: now,
    };
    check(&group)?;
    state.store.create_group(caller.tenant(), &group).await?;
    Ok((StatusCode::CREATED, Json(group.into())))
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", params(ListParams), responses((status = 200, body = PageOut<GroupOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<PageOut<GroupOut>>> {
    caller.require(Access::Read)?;
    let req = params.page(sortable::GROUPS)?;
    let page = state.store.list_groups(caller.tenant(), &req).await?;
    Ok(Json(PageOut::from_page(page, &req, Into::into)))
}

async fn load(state: &AppState, tenant: &str, id: &str) -> ApiResult<Group> {
    state.store.get_group(tenant, id).await?.ok_or_else(|| ApiError::not_found("group", id))
}

#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups", responses((status = 200, body = GroupOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<GroupOut>> {
    caller.require(Access::Read)?;
    Ok(Json(load(&state, caller.tenant(), &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "groups", request_body = GroupPatch, responses((status = 200, body = GroupOut)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<GroupPatch>,
) -> ApiResult<Json<GroupOut>> {
    caller.require(Access::WriteFleet)?;
    let mut g = load(&state, caller.tenant(), &id).await?;
    if let Some(n) = patch.name {
        g.name = n.trim().to_owned();
    }
    if let Some(d) = patch.description {
        g.description = non_empty(d);
    }
    g.updated_at = state.now();
    check(&g)?;
    state.store.update_group(caller.tenant(), &g).await?;
    Ok(Json(g.into()))
}

#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "groups", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Access::WriteFleet)?;
    state.store.delete_group(caller.tenant(), &id).await?;
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
    caller.require(Access::WriteFleet)?;
    if input.add.len() + input.remove.len() > MAX_MEMBER_CHANGE {
        return Err(ApiError::field("add", format!("at most {MAX_MEMBER_CHANGE} device ids per call")));
    }
    let change = state.store.change_members(caller.tenant(), &id, &input.add, &input.remove, state.now()).await?;
    let group = load(&state, caller.tenant(), &id).await?;
    Ok(Json(MembersOut { added: change.added, removed: change.removed, member_count: group.member_count }))
}

#[utoipa::path(get, path = "/api/v1/groups/{id}/members", tag = "groups", params(ListParams),
    responses((status = 200, body = PageOut<DeviceOut>)))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<PageOut<DeviceOut>>> {
    caller.require(Access::Read)?;
    load(&state, caller.tenant(), &id).await?;
    let req = params.page(sortable::DEVICES)?;
    let scope = DeviceScope { product: None, group: Some(id) };
    let page = state.store.list_devices(caller.tenant(), &scope, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, Into::into)))
}
