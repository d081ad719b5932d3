//! The TUF repositories, as any TUF client reads them (python-tuf, go-tuf,
//! tough, updraft's agent):
//!
//! - `GET /tuf/{tenant}/{product}/metadata/{N}.root.json`, `root.json`,
//!   `timestamp.json`, `{N}.snapshot.json`, `{N}.targets.json` (and the
//!   unversioned names of the newest);
//! - `GET /tuf/{tenant}/{product}/targets/{path}`: a firmware file, named as
//!   python-tuf asks for it with consistent snapshots (`{version}/{sha256}.{file}`),
//!   as tough does (`{sha256}.{version}/{file}`), or plainly (`{version}/{file}`);
//!   with HTTP ranges.
//!
//! A repository is readable with a device's token (`Authorization:
//! TargetToken …`, as the device API), a gateway token, or an API key of
//! the tenant: signed metadata needs no secrecy, but firmware may.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use updraft_app::trust::{TrustFile, TrustServed};
use updraft_app::{Actor, ErrorCode};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Peer};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tuf/{tenant}/{product}/metadata/{file}", get(metadata))
        .route("/tuf/{tenant}/{product}/targets/{*path}", get(target))
}

/// Who reads: a device, a gateway or an API key of `tenant`.
async fn reader(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    tenant: &str,
) -> ApiResult<Actor> {
    let unauthorized = || {
        ApiError::new(
            ErrorCode::Unauthorized,
            "a device token (`TargetToken`), gateway token (`GatewayToken`) or API key (`Bearer`) of the tenant is required",
        )
    };
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    if auth.is_empty() {
        return Err(unauthorized());
    }
    if let Err(retry_after) = state.auth_blocked(peer) {
        return Err(crate::auth::too_many_failures(retry_after));
    }
    let (scheme, token) = auth.split_once(' ').map(|(s, t)| (s, t.trim())).unwrap_or((auth, ""));
    let actor = match scheme {
        // Through the device API's poll cache: a device refreshing its repository reads no token from the store.
        "TargetToken" => crate::ddi::device_of_token(state, token)
            .await?
            .filter(|(t, _)| t == tenant)
            .map(|(tenant, device)| Actor::Device { tenant, device }),
        "GatewayToken" => crate::ddi::tenant_of_gateway_token(state, token)
            .await?
            .filter(|t| t == tenant)
            .map(|tenant| Actor::Gateway { tenant }),
        s if s.eq_ignore_ascii_case("bearer") => match state.app.authenticate_key(token).await {
            Ok(actor) if actor.tenant() == tenant => Some(actor),
            Ok(_) => None,
            Err(e) if e.code == ErrorCode::Unauthorized => None,
            Err(e) => return Err(e.into()),
        },
        _ => None,
    };
    match actor {
        Some(a) => {
            a.act();
            Ok(a)
        }
        None => {
            state.auth_failed(peer);
            Err(unauthorized())
        }
    }
}

async fn metadata(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path((tenant, product, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let actor = reader(&state, &headers, peer, &tenant).await?;
    let Some(wanted) = TrustFile::metadata(&file) else {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no metadata file `{file}`")));
    };
    match state.app.trust_file(&actor, &product, &wanted).await? {
        TrustServed::Metadata(body) => {
            let mut response = body.into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            // Versioned files never change; the newest ones do at any moment.
            let cache = if matches!(wanted, TrustFile::Metadata(_, Some(_))) { "max-age=86400" } else { "no-cache" };
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            Ok(response)
        }
        TrustServed::Target(_) => Err(ApiError::of(ErrorCode::NotFound)),
    }
}

async fn target(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path((tenant, product, path)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let actor = reader(&state, &headers, peer, &tenant).await?;
    match state.app.trust_file(&actor, &product, &TrustFile::target(&path)).await? {
        TrustServed::Target(f) => {
            let file = crate::ddi::files::FileToSend {
                blob: f.blob.clone(),
                len: f.size,
                name: f.name.clone(),
                etag: f.sha256.clone(),
                modified: jiff::Timestamp::UNIX_EPOCH,
            };
            crate::ddi::files::respond(&state.blobs, file, &method, &headers, crate::metrics::ARTIFACT_BYTES)
                .await
                .map_err(|e| ApiError(updraft_app::Error::blob_unreadable(e)))
        }
        TrustServed::Metadata(_) => Err(ApiError::of(ErrorCode::NotFound)),
    }
}
