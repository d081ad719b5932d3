//! API keys: issuing tokens, and the extractor that authenticates a caller.
//!
//! A token is shown once, when it is issued; the store keeps only its SHA-256.
//! Look-ups go by that hash, so checking a key is one indexed read.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use updraft_core::{Access, ApiKey, Role};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// A new random secret with a readable prefix (`upd_k_` for API keys, `upd_d_` for devices).
pub fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    format!("{prefix}{}", hex::encode(b))
}

/// A new short random id with a prefix (`key_…`, `fw_…`).
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    format!("{prefix}{}", hex::encode(b))
}

/// The first characters of a token, shown in key listings to recognise it by:
/// `upd_k_` and four hex digits (16 bits of 256), or the first four of a chosen token.
pub fn token_prefix(token: &str) -> String {
    let shown = if token.starts_with("upd_k_") { 10 } else { 4 };
    token.chars().take(shown).collect()
}

/// The bearer token of a request, if it carries one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The authenticated caller of a management call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKey,
}

impl Caller {
    pub fn tenant(&self) -> &str {
        &self.key.tenant
    }

    /// Fails with 403 unless the caller's role grants `access`.
    pub fn require(&self, access: Access) -> ApiResult<()> {
        if self.key.role.allows(access) {
            Ok(())
        } else {
            let what = match access {
                Access::Read => "read this",
                Access::WriteFleet => "change the fleet",
                Access::ManageKeys => "manage API keys",
                Access::GiveConsent => "give consent",
            };
            Err(ApiError::new(ErrorCode::Forbidden, format!("a `{}` key may not {what}", self.key.role.as_str())))
        }
    }

    pub fn require_server_admin(&self) -> ApiResult<()> {
        if self.key.server_admin {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, "only the server administrator's key may manage tenants"))
        }
    }

    pub fn role(&self) -> Role {
        self.key.role
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(|| ApiError::of(ErrorCode::Unauthorized))?;
        let key = match state.store.key_by_token_hash(&token_hash(token)).await? {
            Some(key) if key.is_expired(state.now()) => {
                return Err(ApiError::new(ErrorCode::Unauthorized, "the API key has expired"));
            }
            Some(key) => key,
            None => return Err(ApiError::new(ErrorCode::Unauthorized, "the API key is not valid")),
        };
        if let Err(retry_after) = state.rate_limiter.check(&key.id) {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("this key made too many calls; retry in {retry_after} s"),
            )
            .with_retry_after(retry_after));
        }
        Ok(Caller { key })
    }
}
