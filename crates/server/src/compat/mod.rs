//! The seeds' own front doors (ADR 0012): other platforms' OTA calls, answered
//! on the same use cases as the management API, each in its platform's shape.
//! A door reads its platform's wire (types and parsing stay here), maps the
//! request onto one use case of `updraft_app` (most onto
//! [`crate::api::jobs::draft`] and `App::create_job`, as the dashboard's wizard
//! does), and renders the result and the app's errors as its platform does.

pub mod aliyun;
pub mod aws;
pub mod enos;
pub mod iotaap;
pub mod sigv4;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{any, get};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/compat/enos/connect-service/v2.1/ota-jobs", any(enos::ota_jobs))
        .route("/compat/aws/otaUpdates", any(aws::ota_updates))
        .route("/compat/aws/otaUpdates/{id}", any(aws::ota_updates))
        .route("/compat/aliyun", any(aliyun::rpc))
        .route("/compat/aliyun/", any(aliyun::rpc))
        .route(
            "/compat/iotaap/v1/ota/group",
            get(iotaap::list)
                .post(iotaap::deploy)
                .layer(axum::extract::DefaultBodyLimit::max(iotaap::MAX_FIRMWARE_BYTES + (1 << 20))),
        )
}

/// The request's id, as the request-id layer set it (answered in the body by
/// the platforms that carry one there).
pub fn request_id(headers: &HeaderMap) -> String {
    headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Percent-encoding as the platforms sign (Aliyun's RPC signature, AWS Signature Version 4):
/// RFC 3986, only `A–Z a–z 0–9 - _ . ~` left as they are.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Compares two signatures without stopping at the first difference.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signature nonces seen in the last window, per access key, so a signed request is taken once
/// (Aliyun's `SignatureNonce`). Per replica: a request replayed to another replica within the
/// window is not caught (docs/security.md).
#[derive(Default)]
pub struct Nonces(std::sync::Mutex<std::collections::HashMap<String, i64>>);

impl Nonces {
    /// How long a nonce is remembered: the window a signed request's timestamp is taken in, both ways.
    pub const WINDOW_SECS: i64 = 30 * 60;

    /// Records `nonce` of `key` at `now` (seconds); false when it was seen within the window.
    pub fn first_use(&self, key: &str, nonce: &str, now: i64) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > 100_000 {
            seen.retain(|_, at| now - *at < Self::WINDOW_SECS);
        }
        let entry = format!("{key}\n{nonce}");
        match seen.get(&entry) {
            Some(at) if now - *at < Self::WINDOW_SECS => false,
            _ => {
                seen.insert(entry, now);
                true
            }
        }
    }
}

/// Why a request signed with an access key was refused before any use case.
#[derive(Debug)]
pub enum SignedRefusal {
    /// The address failed to authenticate too often: the answer to give.
    Blocked(crate::error::ApiError),
    /// No such access key, or its API key expired: why.
    UnknownKey(String),
    /// The signature is not the request's.
    BadSignature,
    /// The store failed, or the secret did not open.
    Failed(updraft_app::Error),
}

/// The actor of a request signed with the access key `access_key`: `sign`
/// computes the request's signature with the key's secret, compared in constant
/// time with `given`. Failures count against the address, as a wrong API key's do.
pub async fn signed_by(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    access_key: &str,
    given: &str,
    sign: impl FnOnce(&str) -> String,
) -> Result<updraft_app::Actor, SignedRefusal> {
    if let Err(retry_after) = state.auth_blocked(peer) {
        return Err(SignedRefusal::Blocked(crate::auth::too_many_failures(retry_after)));
    }
    let (actor, secret) = match state.app.access_key_secret(access_key).await {
        Ok(found) => found,
        Err(e) if e.code == crate::error::ErrorCode::Unauthorized => {
            state.auth_failed(peer);
            return Err(SignedRefusal::UnknownKey(e.message));
        }
        Err(e) => return Err(SignedRefusal::Failed(e)),
    };
    if !same(&sign(&secret), given) {
        state.auth_failed(peer);
        return Err(SignedRefusal::BadSignature);
    }
    Ok(actor)
}
