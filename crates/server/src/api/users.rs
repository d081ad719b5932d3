//! Operators' accounts of the caller's tenant (admin role): what the
//! dashboard signs in with.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::users::{PasswordIn, UserIn, UserOut};
use updraft_app::users::NewUser;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserIn,
    responses((status = 201, body = UserOut), (status = 409, description = "the name is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<UserIn>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    let new = NewUser { name: input.name, role: input.role, password: input.password, tenant: input.tenant };
    Ok((StatusCode::CREATED, Json(state.add_user(&caller.actor, new).await?.into())))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = super::ItemsOut<UserOut>, description = "the tenant's users, by name")))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<UserOut>>> {
    let users = state.list_users(&caller.actor).await?.into_iter().map(UserOut::from).collect();
    Ok(Json(super::ItemsOut::new(users)))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    responses((status = 204, description = "deleted; its sessions ended")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_user(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/users/{id}/password", tag = "users", request_body = PasswordIn,
    responses((status = 204, description = "replaced; the user's sessions ended")))]
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<PasswordIn>,
) -> ApiResult<StatusCode> {
    state.set_user_password(&caller.actor, &id, &input.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
