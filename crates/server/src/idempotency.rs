//! `Idempotency-Key` (Stripe's header, and the IETF httpapi draft's): a client
//! that lost an answer retries with the same key and gets the same answer.
//!
//! - A key is scoped to the tenant and the API key that used it, and kept for
//!   `idempotency_ttl_secs` (24 h by default) after the request succeeded.
//! - The same key with the same request (method, path, content type and body:
//!   its SHA-256) replays the first answer, marked `Idempotent-Replayed: true`;
//!   the same key with another request is refused with 422
//!   `idempotency_key_reused`. A request that failed is not kept: its retry
//!   runs again.
//! - The kept answer holds no secret. Device tokens issued by an idempotent
//!   import are not random but derived: HMAC-SHA-256, keyed by a hash of the
//!   caller's API token (which the server never stores), over the idempotency
//!   key, the time of the first request and the device id. A retry made with
//!   the same API token derives the same tokens; a copy of the database cannot.
//!   The trade-off: whoever holds that API token can re-derive the tokens of
//!   its idempotent imports while the key is kept — no more than the token can
//!   do anyway (`POST /api/v1/devices/{id}/token` reissues any device's token).

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{ApiError, ApiResult, ErrorCode};
pub use updraft_app::idempotency::{device_token, fingerprint};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: (HeaderName, HeaderValue) =
    (HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"));

/// The request's `Idempotency-Key`: 1 to 255 printable ASCII characters, bare
/// (Stripe) or as a quoted structured-field string (the IETF draft).
pub fn key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "`Idempotency-Key` must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// The refusal of a key used for another request.
pub fn reused() -> ApiError {
    ApiError::of(ErrorCode::IdempotencyKeyReused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bare_or_quoted_printable_ascii() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
            key(&h)
        };
        assert_eq!(with("abc-123").unwrap().as_deref(), Some("abc-123"));
        assert_eq!(with("\"8e03978e-40d5\"").unwrap().as_deref(), Some("8e03978e-40d5"));
        assert!(with("").is_err() && with("\"\"").is_err() && with(&"x".repeat(256)).is_err());
        assert_eq!(key(&HeaderMap::new()).unwrap(), None);
    }
}
