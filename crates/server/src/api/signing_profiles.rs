//! Signing profiles: keys updraft signs uploads with (seed 002's
//! `signingProfileName`). Admin keys import and delete them; every key may
//! read them, never their private keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::code_signing::{SigningProfileIn, SigningProfileOut};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[utoipa::path(post, path = "/api/v1/signing-profiles", tag = "code signing", request_body = SigningProfileIn,
    responses((status = 201, body = SigningProfileOut), (status = 409, description = "the name is taken"),
        (status = 422, description = "`code_signing_untrusted_chain`: the chain does not lead to a trust anchor of the tenant")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<SigningProfileIn>,
) -> ApiResult<(StatusCode, Json<SigningProfileOut>)> {
    let profile = state
        .import_signing_profile(
            &caller.actor,
            &input.name,
            &input.private_key,
            &input.certificate_chain,
            input.platform,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(profile.into())))
}

#[utoipa::path(get, path = "/api/v1/signing-profiles", tag = "code signing",
    responses((status = 200, body = super::ItemsOut<SigningProfileOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<super::ItemsOut<SigningProfileOut>>> {
    let items: Vec<SigningProfileOut> =
        state.list_signing_profiles(&caller.actor).await?.into_iter().map(Into::into).collect();
    Ok(Json(super::ItemsOut::new(items)))
}

/// `{id}` is the profile's name.
#[utoipa::path(get, path = "/api/v1/signing-profiles/{id}", tag = "code signing",
    responses((status = 200, body = SigningProfileOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SigningProfileOut>> {
    Ok(Json(state.get_signing_profile(&caller.actor, &id).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/signing-profiles/{id}", tag = "code signing", responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.delete_signing_profile(&caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
