//! API keys: issuing tokens, and the extractor that authenticates a caller.
//!
//! A token is shown once, when it is issued; the store keeps only its SHA-256
//! (`updraft_app::access` checks it). Look-ups go by that hash, so checking a
//! key is one indexed read.

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use updraft_app::Actor;
use updraft_core::Access;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub use updraft_app::actor::{new_id, new_token, token_hash, token_prefix};

/// The bearer token of a request, if it carries one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Management operations that read although they are POSTs (their input is too
/// large for a query string): a viewer may call them.
pub const READS_BY_POST: &[&str] = &["/api/v1/devices/search", "/api/v1/filters/estimate", "/api/v1/filters/preview"];

/// The authenticated caller of a management call: an API key's actor.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
}

impl Caller {
    pub fn tenant(&self) -> &str {
        self.actor.tenant()
    }

    /// Fails with 403 unless the caller's role grants `access`.
    pub fn require(&self, access: Access) -> ApiResult<()> {
        Ok(self.actor.require(access)?)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let reads = matches!(parts.method, Method::GET | Method::HEAD) || READS_BY_POST.contains(&parts.uri.path());
        Caller::bearer(parts, state, reads).await
    }
}

impl Caller {
    /// Authenticates the request's bearer API key and admits it (see [`Caller::admit`]):
    /// `reads` says whether the call only reads, for front doors whose method does not say.
    pub async fn bearer(parts: &Parts, state: &AppState, reads: bool) -> Result<Caller, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(|| ApiError::of(ErrorCode::Unauthorized))?;
        let peer = crate::state::peer(parts);
        if let Err(retry_after) = state.auth_blocked(peer) {
            return Err(too_many_failures(retry_after));
        }
        let actor = match state.app.authenticate_key(token).await {
            Ok(actor) => actor,
            Err(e) => {
                if e.code == ErrorCode::Unauthorized {
                    state.auth_failed(peer);
                }
                return Err(e.into());
            }
        };
        Caller::admit(state, actor, reads)
    }

    /// Admits an authenticated key's actor (however the front door
    /// authenticated it: a bearer token, a signature with an access key): its
    /// rate limit, and a viewer refused anything but a read (`reads`), before
    /// the body is read, so a viewer learns nothing from a write's validation.
    pub fn admit(state: &AppState, actor: Actor, reads: bool) -> Result<Caller, ApiError> {
        let Some(key) = actor.key() else { return Err(ApiError::of(ErrorCode::Unauthorized)) };
        if let Err(retry_after) = state.rate_limiter.check(&key.id) {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("this key made too many calls; retry in {retry_after} s"),
            )
            .with_retry_after(retry_after));
        }
        if key.role == updraft_core::Role::Viewer && !reads {
            return Err(ApiError::new(ErrorCode::Forbidden, "a `viewer` key may not change anything"));
        }
        actor.act();
        Ok(Caller { actor })
    }
}

/// The answer to an address that failed to authenticate too often.
pub fn too_many_failures(retry_after: u64) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        format!("too many failed authentications from this address; retry in {retry_after} s"),
    )
    .with_retry_after(retry_after)
}
