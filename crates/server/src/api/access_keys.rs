//! Access keys: an id and a secret that sign requests to the compatibility
//! doors that need a signature (docs/compat.md), acting as an API key of the
//! tenant. Admin only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::access_keys::{AccessKeyIn, AccessKeyOut};
use updraft_app::AccessKey;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

fn out(a: AccessKey, secret: Option<String>) -> AccessKeyOut {
    AccessKeyOut { id: a.id, key: a.key, created_at: a.created_at, secret }
}

#[utoipa::path(post, path = "/api/v1/access-keys", tag = "keys", request_body = AccessKeyIn,
    responses((status = 201, body = AccessKeyOut, description = "the secret, shown this once")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<AccessKeyIn>,
) -> ApiResult<(StatusCode, Json<AccessKeyOut>)> {
    let (a, secret) = state.app.create_access_key(&caller.actor, &input.key).await?;
    Ok((StatusCode::CREATED, Json(out(a, Some(secret)))))
}

#[utoipa::path(get, path = "/api/v1/access-keys", tag = "keys", responses((status = 200, body = super::ItemsOut<AccessKeyOut>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<AccessKeyOut>>> {
    let items: Vec<AccessKeyOut> =
        state.app.list_access_keys(&caller.actor).await?.into_iter().map(|a| out(a, None)).collect();
    Ok(Json(super::ItemsOut::new(items)))
}

#[utoipa::path(delete, path = "/api/v1/access-keys/{id}", tag = "keys", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.app.delete_access_key(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
