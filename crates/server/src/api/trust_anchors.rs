//! Code signing's trust anchors: the CA certificates a tenant's code-signing
//! chains must end in. Admin keys change them; every key may read them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::code_signing::{TrustAnchorIn, TrustAnchorOut};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[utoipa::path(post, path = "/api/v1/trust-anchors", tag = "code signing", request_body = TrustAnchorIn,
    responses((status = 201, body = TrustAnchorOut), (status = 409, description = "the certificate is already an anchor of the tenant")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<TrustAnchorIn>,
) -> ApiResult<(StatusCode, Json<TrustAnchorOut>)> {
    let anchor = state.add_trust_anchor(&caller.actor, input.name, &input.certificate).await?;
    Ok((StatusCode::CREATED, Json(anchor.into())))
}

#[utoipa::path(get, path = "/api/v1/trust-anchors", tag = "code signing",
    responses((status = 200, body = super::ItemsOut<TrustAnchorOut>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<super::ItemsOut<TrustAnchorOut>>> {
    let items: Vec<TrustAnchorOut> =
        state.list_trust_anchors(&caller.actor).await?.into_iter().map(Into::into).collect();
    Ok(Json(super::ItemsOut::new(items)))
}

#[utoipa::path(get, path = "/api/v1/trust-anchors/{id}", tag = "code signing",
    responses((status = 200, body = TrustAnchorOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TrustAnchorOut>> {
    Ok(Json(state.get_trust_anchor(&caller.actor, &id).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/trust-anchors/{id}", tag = "code signing", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_trust_anchor(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
