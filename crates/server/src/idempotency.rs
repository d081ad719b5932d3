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
use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult, ErrorCode};

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

/// What a retry must repeat to be answered from the kept request.
pub fn fingerprint(method: &str, path: &str, content_type: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), content_type.as_bytes()] {
        h.update(part);
        h.update([0]);
    }
    h.update(body);
    hex::encode(h.finalize())
}

/// The refusal of a key used for another request.
pub fn reused() -> ApiError {
    ApiError::of(ErrorCode::IdempotencyKeyReused)
}

/// The token of device `device` in the idempotent request `key` first made at
/// `at` with API token `api_token` (see the module documentation).
pub fn device_token(api_token: &str, key: &str, at: Timestamp, device: &str) -> String {
    let secret = Sha256::new().chain_update(b"updraft idempotent device tokens\0").chain_update(api_token).finalize();
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key length");
    mac.update(key.as_bytes());
    mac.update(&[0]);
    mac.update(at.as_microsecond().to_string().as_bytes());
    mac.update(&[0]);
    mac.update(device.as_bytes());
    format!("upd_d_{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_depend_on_every_input() {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        let t = device_token("api", "k", at, "d1");
        assert!(t.starts_with("upd_d_") && t.len() == 6 + 64);
        assert_eq!(t, device_token("api", "k", at, "d1"));
        for other in [
            device_token("api2", "k", at, "d1"),
            device_token("api", "k2", at, "d1"),
            device_token("api", "k", at + jiff::SignedDuration::from_micros(1), "d1"),
            device_token("api", "k", at, "d2"),
        ] {
            assert_ne!(t, other);
        }
    }

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
