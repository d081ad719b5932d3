//! The device API: Eclipse hawkBit's Direct Device Integration (DDI) API under
//! `/{tenant}/controller/v1/{controllerId}`, with hawkBit's JSON shapes,
//! status codes and error bodies, so existing update clients work unchanged.
//!
//! Invariants:
//! - a device only ever sees and changes its own executions (another's → 404);
//! - a poll reads (identity, open actions) and never writes: sightings go to
//!   the presence batch;
//! - a report about a finished execution is refused with 410 and changes nothing;
//! - artifact downloads, ranged or not, never write to the database.

pub mod cache;
pub mod files;
pub mod requests;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use updraft_core::job::{
    DeviceReport, EventSource, Execution, ExecutionState, Job, Progress, ReportKind, TransitionError,
};
use updraft_core::rollout::Directive;
use updraft_core::{Firmware, attributes};
use updraft_ddi as ddi;

use crate::auth::token_hash;
use crate::extract::{DdiPath, DdiQuery};
use crate::metrics::{
    ARTIFACT_BYTES, DDI_FEEDBACK, DDI_POLLS, DDI_RATE_LIMITED, POLL_CACHE_FILL_SECONDS, POLL_CACHE_FILLED,
};
use crate::state::AppState;
use cache::Idle;
use updraft_app::Actor;
use updraft_app::executions::{Action, Module};

const BASE: &str = "/{tenant}/controller/v1/{controller_id}";
/// Most detail messages kept from one report, and most characters of each.
const MAX_DETAILS: usize = 50;
const MAX_DETAIL_CHARS: usize = 2048;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(BASE, get(poll))
        .route(&format!("{BASE}/deploymentBase/{{action}}"), get(deployment))
        .route(&format!("{BASE}/deploymentBase/{{action}}/feedback"), post(deployment_feedback))
        .route(&format!("{BASE}/cancelAction/{{action}}"), get(cancel))
        .route(&format!("{BASE}/cancelAction/{{action}}/feedback"), post(cancel_feedback))
        .route(&format!("{BASE}/installedBase/{{action}}"), get(installed))
        .route(&format!("{BASE}/configData"), put(config_data))
        .route(&format!("{BASE}/confirmationBase"), get(confirmation_base))
        .route(&format!("{BASE}/confirmationBase/{{action}}"), get(confirmation))
        .route(&format!("{BASE}/confirmationBase/{{action}}/feedback"), post(confirmation_feedback))
        .route(&format!("{BASE}/updraft/jobs"), get(requests::list))
        .route(&format!("{BASE}/updraft/jobs/{{job}}"), post(requests::request))
        .route(&format!("{BASE}/softwaremodules/{{module}}/artifacts"), get(artifacts))
        .route(&format!("{BASE}/softwaremodules/{{module}}/artifacts/{{file}}"), get(artifact))
}

/// A device API error: hawkBit's status codes and error body; 401 has no body.
#[derive(Debug)]
pub enum DdiError {
    Unauthorized,
    /// Too many failed authentications or requests from the address, or
    /// requests from the device: 429 with `Retry-After` (seconds).
    TooManyRequests(u64),
    NotFound(String),
    Gone(String),
    BadRequest(String),
    NotAllowed(String),
    Conflict(String),
    UnsupportedMediaType,
    Unavailable,
    /// A request body over the limit (413).
    TooLarge,
    /// No such route under the device API's prefix (404).
    NoRoute,
    /// The route does not take this method (405).
    MethodNotAllowed,
}

/// Whether `path` is under the device API (`/{tenant}/controller/v1/…`).
pub fn is_device_path(path: &str) -> bool {
    let mut segments = path.split('/').skip(1);
    segments.next().is_some_and(|t| !t.is_empty())
        && segments.next() == Some("controller")
        && segments.next() == Some("v1")
}

impl From<updraft_app::Error> for DdiError {
    fn from(e: updraft_app::Error) -> Self {
        use updraft_app::Kind;
        match e.code.kind() {
            Kind::NotFound => DdiError::NotFound(e.message),
            Kind::BadRequest | Kind::Unprocessable => DdiError::BadRequest(e.message),
            Kind::Unauthenticated | Kind::Forbidden => DdiError::Unauthorized,
            Kind::Conflict => DdiError::Conflict(e.message),
            Kind::TooLarge => DdiError::TooLarge,
            Kind::UnsupportedFormat => DdiError::UnsupportedMediaType,
            Kind::NotSupported => DdiError::MethodNotAllowed,
            Kind::RateLimited | Kind::Internal | Kind::Unavailable => DdiError::Unavailable,
        }
    }
}

impl IntoResponse for DdiError {
    fn into_response(self) -> Response {
        let (status, class, code, message) = match self {
            DdiError::Unauthorized => return StatusCode::UNAUTHORIZED.into_response(),
            DdiError::TooManyRequests(retry_after) => {
                let mut r = StatusCode::TOO_MANY_REQUESTS.into_response();
                r.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
                return r;
            }
            DdiError::NotFound(m) => {
                (StatusCode::NOT_FOUND, "EntityNotFoundException", "hawkbit.server.error.repo.entityNotFound", m)
            }
            DdiError::Gone(m) => {
                (StatusCode::GONE, "EntityAlreadyExistsException", "hawkbit.server.error.action.closed", m)
            }
            DdiError::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                "MessageNotReadableException",
                "hawkbit.server.error.rest.body.notReadable",
                m,
            ),
            DdiError::NotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "CancelActionNotAllowedException",
                "hawkbit.server.error.action.notCancelable",
                m,
            ),
            DdiError::Conflict(m) => (StatusCode::CONFLICT, "ConflictException", "hawkbit.server.error.action.busy", m),
            DdiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "HttpMediaTypeNotSupportedException",
                "hawkbit.server.error.rest.contentType.notSupported",
                "expected Content-Type: application/json".into(),
            ),
            DdiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "hawkbit.server.error.unavailable",
                "retry later".into(),
            ),
            DdiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "FileSizeQuotaExceededException",
                "hawkbit.server.error.quota.fileSizeExceeded",
                "the request body is larger than allowed".into(),
            ),
            DdiError::NoRoute => (
                StatusCode::NOT_FOUND,
                "EntityNotFoundException",
                "hawkbit.server.error.repo.entityNotFound",
                "no such resource in the device API".into(),
            ),
            DdiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "OperationNotSupportedException",
                "hawkbit.server.error.operation.notSupported",
                "this resource does not take this method".into(),
            ),
        };
        let body = ddi::ErrorBody {
            exception_class: format!("org.eclipse.hawkbit.{class}"),
            error_code: code.into(),
            message,
        };
        (status, Json(body)).into_response()
    }
}

pub(crate) type DdiResult<T> = Result<T, DdiError>;

/// The authenticated device a call is about.
#[derive(Debug, Clone)]
pub struct DdiDevice {
    pub tenant: String,
    pub id: String,
    /// `{public URL}/{tenant}/controller/v1/{controllerId}` (see [`public_base`]).
    pub base_url: String,
    /// Artifacts carry hawkBit's `download` and `md5sum` links besides the
    /// `-http` ones: the server speaks TLS and links are `https` (ADR 0009).
    pub https_links: bool,
    /// The device, as the application's use cases know their callers.
    pub actor: Actor,
}

impl FromRequestParts<AppState> for DdiDevice {
    type Rejection = DdiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, DdiError> {
        let (path_tenant, controller) = match path_ids(parts.uri.path()) {
            Some(ids) => ids,
            None => {
                let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
                    .await
                    .map_err(|_| DdiError::NotFound("bad path".into()))?;
                match (params.get("tenant"), params.get("controller_id")) {
                    (Some(t), Some(c)) => (t.clone(), c.clone()),
                    _ => return Err(DdiError::NotFound("bad path".into())),
                }
            }
        };
        let controller = &controller;
        let tenant = path_tenant.to_ascii_lowercase();
        let peer = crate::state::peer(parts);
        if let Some(ip) = peer
            && state.ddi_address_limit.enabled()
            && let Err(retry_after) = state.ddi_address_limit.check(&ip.to_string())
        {
            metrics::counter!(DDI_RATE_LIMITED, "limit" => "address").increment(1);
            return Err(DdiError::TooManyRequests(retry_after));
        }
        let auth = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let certified = certificate_names(state, parts, controller);
        if auth.is_none() && certified.is_none() {
            // A signed download link (what MQTT devices are given) needs no credentials.
            if let Some(dev) = signed_download(state, parts, &path_tenant, controller).await? {
                return Ok(dev);
            }
            return Err(DdiError::Unauthorized);
        }
        if let Err(retry_after) = state.auth_blocked(peer) {
            return Err(DdiError::TooManyRequests(retry_after));
        }
        let known = match auth {
            Some(auth) => authenticate(state, parts, auth, &tenant, controller).await,
            None => authenticate_certified(state, certified == Some(true), &tenant, controller).await,
        };
        if matches!(known, Err(DdiError::Unauthorized)) {
            state.auth_failed(peer);
        }
        let (device_tenant, device_id) = known?;
        // Per device, once authenticated (nobody else can spend a device's budget); downloads
        // are not counted: a client resuming or streaming with ranges makes many.
        if state.ddi_device_limit.enabled()
            && !is_download(parts)
            && let Err(retry_after) = state.ddi_device_limit.check(&format!("{device_tenant}/{device_id}"))
        {
            metrics::counter!(DDI_RATE_LIMITED, "limit" => "device").increment(1);
            tracing::debug!(tenant = %device_tenant, device = %device_id, "device over its request rate");
            return Err(DdiError::TooManyRequests(retry_after));
        }
        let actor = Actor::Device { tenant: device_tenant.clone(), device: device_id.clone() };
        actor.act();
        let base_url = format!("{}/{path_tenant}/controller/v1/{controller}", public_base(state, parts));
        Ok(DdiDevice {
            actor,
            https_links: state.settings.tls() && base_url.starts_with("https://"),
            base_url,
            tenant: device_tenant,
            id: device_id,
        })
    }
}

/// The most `X-Ssl-Issuer-Hash-{n}` headers read from one request.
const MAX_ISSUER_HASHES: usize = 16;

/// Whether a client certificate names this device: `None` when the request
/// carries none; `Some(true)` when the certificate the connection presented
/// (verified against `tls_client_ca_file`), or the one a trusted proxy
/// describes, has `controller` as its subject CN; `Some(false)` otherwise.
fn certificate_names(state: &AppState, parts: &Parts, controller: &str) -> Option<bool> {
    let native =
        parts.extensions.get::<crate::conn::PeerCertificate>().map(|c| c.common_name.as_deref() == Some(controller));
    let proxied = proxied_common_name(state, parts).map(|cn| cn == Some(controller));
    match (native, proxied) {
        (None, None) => None,
        (Some(true), _) | (_, Some(true)) => Some(true),
        _ => Some(false),
    }
}

/// hawkBit's certificate authentication behind a reverse proxy: the CN in
/// `X-Ssl-Client-Cn`, vouched for when one of `X-Ssl-Issuer-Hash-1`, `-2`, …
/// (read until one is missing) is a trusted issuer hash. `None` when
/// `ddi_proxy_issuer_hashes` is empty or there is no CN header; `Some(None)`
/// when no issuer is trusted.
fn proxied_common_name<'a>(state: &AppState, parts: &'a Parts) -> Option<Option<&'a str>> {
    let trusted = &state.settings.ddi_proxy_issuer_hashes;
    if trusted.is_empty() {
        return None;
    }
    let cn = parts.headers.get("x-ssl-client-cn")?.to_str().ok();
    let vouched = (1..=MAX_ISSUER_HASHES)
        .map_while(|n| parts.headers.get(format!("x-ssl-issuer-hash-{n}").as_str()))
        .any(|hash| hash.to_str().is_ok_and(|hash| trusted.iter().any(|t| t.eq_ignore_ascii_case(hash.trim()))));
    Some(cn.filter(|_| vouched))
}

/// A device authenticated by a client certificate (`named`: it names this
/// controller id): the device must exist in the path's tenant.
async fn authenticate_certified(
    state: &AppState,
    named: bool,
    tenant: &str,
    controller: &str,
) -> Result<(String, String), DdiError> {
    if !named {
        return Err(DdiError::Unauthorized);
    }
    if !state.poll_cache.known(tenant, controller) {
        let epoch = state.poll_cache.epoch();
        let device = Actor::Device { tenant: tenant.to_owned(), device: controller.to_owned() };
        // A certificate names a device, not a tenant: one the tenant does not have is refused.
        state.app.device_identity(&device).await?.ok_or(DdiError::Unauthorized)?;
        state.poll_cache.remember_known(epoch, tenant, controller);
    }
    Ok((tenant.to_owned(), controller.to_owned()))
}

/// A download through a signed link (`?expires=…&signature=…`, see
/// `App::download_signature`): the device it names, when the signature is
/// genuine and unexpired and the device exists; `None` when the request is
/// not one.
async fn signed_download(
    state: &AppState,
    parts: &Parts,
    path_tenant: &str,
    controller: &str,
) -> Result<Option<DdiDevice>, DdiError> {
    if !is_download(parts) || parts.method != axum::http::Method::GET && parts.method != axum::http::Method::HEAD {
        return Ok(None);
    }
    let Some(query) = parts.uri.query() else { return Ok(None) };
    let (mut expires, mut signature) = (None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "expires" => expires = v.parse::<i64>().ok(),
            "signature" => signature = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some(expires), Some(signature)) = (expires, signature) else { return Ok(None) };
    let segments: Vec<&str> = parts.uri.path().split('/').collect();
    let tenant = path_tenant.to_ascii_lowercase();
    let genuine =
        state.app.check_download_signature(&tenant, controller, segments[6], segments[8], expires, &signature);
    if !genuine {
        state.auth_failed(crate::state::peer(parts));
        return Err(DdiError::Unauthorized);
    }
    let actor = Actor::Device { tenant: tenant.clone(), device: controller.to_owned() };
    if !state.poll_cache.known(&tenant, controller) {
        let epoch = state.poll_cache.epoch();
        state.app.device_identity(&actor).await?.ok_or(DdiError::Unauthorized)?;
        state.poll_cache.remember_known(epoch, &tenant, controller);
    }
    actor.act();
    let base_url = format!("{}/{path_tenant}/controller/v1/{controller}", public_base(state, parts));
    Ok(Some(DdiDevice {
        actor,
        https_links: state.settings.tls() && base_url.starts_with("https://"),
        base_url,
        tenant,
        id: controller.to_owned(),
    }))
}

/// `GET …/softwaremodules/{module}/artifacts/{file}`: an artifact download.
fn is_download(parts: &Parts) -> bool {
    let segments: Vec<&str> = parts.uri.path().split('/').collect();
    segments.len() == 9 && segments[5] == "softwaremodules" && segments[7] == "artifacts"
}

/// Who a device request's credentials name (a device's own token, or a
/// gateway's for any device of its tenant): the tenant and the device.
/// The device (tenant, id) a device token belongs to, through the poll cache.
pub(crate) async fn device_of_token(state: &AppState, token: &str) -> updraft_app::Result<Option<(String, String)>> {
    let hash = token_hash(token.trim());
    if let Some(known) = state.poll_cache.device_for_token(&hash) {
        return Ok(Some(known));
    }
    let epoch = state.poll_cache.epoch();
    let found = state.app.device_for_token(token.trim()).await?;
    if let Some((t, d)) = &found {
        state.poll_cache.remember_token(epoch, &hash, t, d);
    }
    Ok(found)
}

/// Devices read from the store per page while the poll cache fills.
const FILL_PAGE: u32 = 5000;

/// Fills the poll cache from the store when the server starts, page by page,
/// so that each device's first poll after a restart is answered from memory
/// like every later one. A page read while something changed is read again
/// (its answers may predate the change); polls meanwhile read the store.
pub(crate) async fn fill_poll_cache(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let started = std::time::Instant::now();
    let system = Actor::System("poll-cache");
    let (mut after, mut filled, mut retries) = (None::<(String, String)>, 0usize, 0u32);
    loop {
        if *stop.borrow() {
            return;
        }
        let epoch = state.poll_cache.epoch();
        let page = tokio::select! {
            page = state.app.poll_seeds(&system, after.as_ref().map(|(t, d)| (t.as_str(), d.as_str())), FILL_PAGE) => page,
            _ = stop.changed() => return,
        };
        let seeds = match page {
            Ok(seeds) => seeds,
            Err(e) => {
                tracing::warn!(error = %e, filled, "poll cache not filled: the store failed");
                return;
            }
        };
        let Some(last) = seeds.last() else { break };
        match state.poll_cache.warm(epoch, &seeds) {
            // Stale: read the page again, a few times, then leave it to the polls.
            None if retries < 3 => {
                retries += 1;
                continue;
            }
            None => {}
            Some(taken) => {
                filled += taken;
                metrics::gauge!(POLL_CACHE_FILLED).set(filled as f64);
                if taken < seeds.len() {
                    tracing::info!(filled, "poll cache full");
                    break;
                }
            }
        }
        retries = 0;
        after = Some((last.tenant.clone(), last.id.clone()));
        if seeds.len() < FILL_PAGE as usize {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    metrics::gauge!(POLL_CACHE_FILL_SECONDS).set(seconds);
    tracing::info!(devices = filled, seconds, "poll cache filled");
}

/// The tenant a gateway token belongs to, through the poll cache.
pub(crate) async fn tenant_of_gateway_token(state: &AppState, token: &str) -> updraft_app::Result<Option<String>> {
    let hash = token_hash(token.trim());
    if let Some(known) = state.poll_cache.gateway_tenant(&hash) {
        return Ok(Some(known));
    }
    let found = state.app.gateway_for_token(token.trim()).await?;
    if let Some(t) = &found {
        state.poll_cache.remember_gateway(&hash, t);
    }
    Ok(found)
}

async fn authenticate(
    state: &AppState,
    parts: &Parts,
    auth: &str,
    tenant: &str,
    controller: &String,
) -> Result<(String, String), DdiError> {
    let found = if let Some(token) = auth.strip_prefix("TargetToken ") {
        let (t, d) = device_of_token(state, token).await?.ok_or(DdiError::Unauthorized)?;
        if t != tenant || &d != controller {
            return Err(DdiError::Unauthorized);
        }
        (t, d)
    } else if let Some(token) = auth.strip_prefix("GatewayToken ") {
        let gateway_tenant = tenant_of_gateway_token(state, token).await?.ok_or(DdiError::Unauthorized)?;
        if gateway_tenant != tenant {
            return Err(DdiError::Unauthorized);
        }
        if !state.poll_cache.known(tenant, controller) {
            let epoch = state.poll_cache.epoch();
            let device = Actor::Device { tenant: tenant.to_owned(), device: controller.clone() };
            match state.app.device_identity(&device).await? {
                Some(_) => {}
                None if is_poll(parts) => {
                    register_on_poll(state, tenant, controller).await?;
                }
                None => {
                    return Err(DdiError::NotFound(format!("target {controller} not found; register it first")));
                }
            }
            state.poll_cache.remember_known(epoch, tenant, controller);
        }
        (tenant.to_owned(), controller.clone())
    } else {
        return Err(DdiError::Unauthorized);
    };
    Ok(found)
}

/// `GET /{tenant}/controller/v1/{controllerId}` (the poll) or `GET …/confirmationBase`:
/// where hawkBit registers unknown devices.
fn is_poll(parts: &Parts) -> bool {
    let segments: Vec<&str> = parts.uri.path().trim_end_matches('/').split('/').collect();
    parts.method == axum::http::Method::GET
        && (segments.len() == 5 || (segments.len() == 6 && segments[5] == "confirmationBase"))
}

/// Plug-and-play, as hawkBit's `findOrRegisterTargetIfItDoesNotExist`: a
/// gateway speaking for an unknown device registers it, with the configured
/// default product, through the API's registration path (so continuous jobs
/// see it). Without a product to give it, the device stays unknown (404).
async fn register_on_poll(state: &AppState, tenant: &str, controller: &str) -> DdiResult<()> {
    let unknown = || DdiError::NotFound(format!("target {controller} not found; register it first"));
    Actor::Gateway { tenant: tenant.to_owned() }.act();
    if !state.app.register_self(tenant, controller).await? {
        return Err(unknown());
    }
    let device = Actor::Device { tenant: tenant.to_owned(), device: controller.to_owned() };
    state.app.device_identity(&device).await?.ok_or_else(unknown).map(|_| ())
}

/// The tenant and controller id of a device API path, when they need no
/// percent-decoding (the common case, read without the router's map).
fn path_ids(path: &str) -> Option<(String, String)> {
    let mut segments = path.split('/').skip(1);
    let tenant = segments.next()?;
    if segments.next()? != "controller" || segments.next()? != "v1" {
        return None;
    }
    let controller = segments.next()?;
    if tenant.contains('%') || controller.contains('%') || tenant.is_empty() || controller.is_empty() {
        return None;
    }
    Some((tenant.to_owned(), controller.to_owned()))
}

/// Where links point: the configured public URL, or else the address this
/// request's connection reached; never a header the client chose (`Host`,
/// `X-Forwarded-Host`), which would let anyone on the path send a device's
/// downloads elsewhere.
pub(crate) fn public_base(state: &AppState, parts: &Parts) -> String {
    match (&state.settings.public_url, parts.extensions.get::<crate::conn::LocalAddr>()) {
        (Some(url), _) => url.clone(),
        (None, Some(crate::conn::LocalAddr(addr))) => format!("{}://{addr}", scheme(state)),
        (None, None) => format!("{}://{}", scheme(state), state.settings.listen),
    }
}

/// The scheme of the listener's own links.
fn scheme(state: &AppState) -> &'static str {
    if state.settings.tls() { "https" } else { "http" }
}

/// A JSON body read as hawkBit does: unknown fields ignored, a wrong content type 415.
fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> DdiResult<T> {
    if !crate::extract::is_json(headers) {
        return Err(DdiError::UnsupportedMediaType);
    }
    let value = crate::extract::from_json(body).map_err(|e| {
        DdiError::BadRequest(format!("the body cannot be read: {}", e.describe(crate::extract::Part::Body)))
    })?;
    match crate::extract::nul_in_json(body) {
        Some(at) => Err(<DdiError as crate::extract::Rejection>::nul(&at)),
        None => Ok(value),
    }
}

/// The device's own execution with action id `id` (see `Execution::action`),
/// or 404; 410 when `id` names an earlier attempt.
async fn own_execution(state: &AppState, dev: &DdiDevice, id: &str) -> DdiResult<Execution> {
    let not_found = || DdiError::NotFound(format!("action {id} not found for target {}", dev.id));
    let action = id.parse::<i64>().ok().filter(|a| *a > 0).ok_or_else(not_found)?;
    match state.app.device_action(&dev.actor, action).await? {
        Action::Current(e) => Ok(e),
        Action::Retried { now } => {
            Err(DdiError::Gone(format!("action {id} is closed: it was retried as action {now}")))
        }
        Action::Unknown => Err(not_found()),
    }
}

/// The `c` parameter: changes when what the link leads to changes, including
/// when the job's maintenance window opens or closes (`window_open`), as
/// hawkBit's does, so that clients fetch the deployment again.
pub(crate) fn etag_param(e: &Execution, window_open: Option<bool>) -> i32 {
    let mut h: i64 = e.public_id().wrapping_mul(31);
    h = h.wrapping_add(if e.cancel_requested { 7 } else { 0 });
    h = h.wrapping_mul(31).wrapping_add(e.state as i64);
    h = h.wrapping_mul(31).wrapping_add(match window_open {
        None => 1237,
        Some(false) => 1231,
        Some(true) => 1249,
    });
    (h ^ (h >> 32)) as i32
}

/// The job an execution belongs to.
async fn job_of(state: &AppState, dev: &DdiDevice, e: &Execution) -> DdiResult<Job> {
    state.app.device_job(&dev.actor, e).await?.ok_or_else(|| DdiError::NotFound(format!("job {} not found", e.job)))
}

/// `GET /{tenant}/controller/v1/{controllerId}`: what the device should do next.
async fn poll(State(state): State<AppState>, dev: DdiDevice, headers: HeaderMap) -> DdiResult<Response> {
    state.app.device_seen(&dev.actor);
    metrics::counter!(DDI_POLLS).increment(1);
    if let Some(idle) = state.poll_cache.idle(&dev.tenant, &dev.id) {
        let mut links = ddi::ControllerLinks::default();
        idle_links(&dev, idle, &mut links);
        return Ok(controller_base(&headers, state.settings.poll_interval_secs, links));
    }
    let epoch = state.poll_cache.epoch();
    let identity = state.app.device_identity(&dev.actor).await?.ok_or(DdiError::Unauthorized)?;
    let actions = state.app.device_actions(&dev.actor).await?;
    let mut links = ddi::ControllerLinks::default();
    let mut sleep = state.settings.poll_interval_secs;
    if let Some(a) = &actions.active {
        let id = a.public_id();
        if a.cancel_requested {
            links.cancel_action = Some(ddi::Link::new(format!("{}/cancelAction/{id}", dev.base_url)));
        } else if a.state == ExecutionState::AwaitingConsent {
            links.confirmation_base =
                Some(ddi::Link::new(format!("{}/confirmationBase/{id}?c={}", dev.base_url, etag_param(a, None))));
        } else {
            let (job, now) = (job_of(&state, &dev, a).await?, state.now());
            sleep = job.spec.poll_secs(now, sleep);
            let window_open = job.spec.delivery(now).window_open;
            links.deployment_base =
                Some(ddi::Link::new(format!("{}/deploymentBase/{id}?c={}", dev.base_url, etag_param(a, window_open))));
        }
    }
    let idle = Idle {
        attributes_requested: identity.attributes_requested,
        installed: actions.installed.map(|i| i.public_id()),
    };
    idle_links(&dev, idle, &mut links);
    if actions.active.is_none() {
        state.poll_cache.remember_idle(epoch, &dev.tenant, &dev.id, idle);
    }
    Ok(controller_base(&headers, sleep, links))
}

/// The links every poll answer has, busy or idle: `installedBase` and `configData`.
fn idle_links(dev: &DdiDevice, idle: Idle, links: &mut ddi::ControllerLinks) {
    if let Some(action) = idle.installed {
        links.installed_base = Some(ddi::Link::new(format!("{}/installedBase/{action}", dev.base_url)));
    }
    if idle.attributes_requested {
        links.config_data = Some(ddi::Link::new(format!("{}/configData", dev.base_url)));
    }
}

/// A poll's answer, with its ETag (304 when the device already has it).
fn controller_base(request: &HeaderMap, sleep: u64, links: ddi::ControllerLinks) -> Response {
    let polling = ddi::Polling { sleep: ddi::format_sleep(sleep) };
    let body = ddi::ControllerBase { config: ddi::Config { polling }, links };
    let body = Bytes::from(serde_json::to_vec(&body).expect("DDI types serialize"));
    let etag = etag_of(&body);
    etagged(request, body, &etag)
}

fn etag_of(body: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(body))).expect("hex is a valid header value")
}

/// A JSON answer with its ETag; 304 when the client already has it.
fn etagged(request: &HeaderMap, body: Bytes, etag: &HeaderValue) -> Response {
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().as_bytes() == etag.as_bytes()));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag.clone())]).into_response();
    }
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/hal+json;charset=UTF-8"));
    r.headers_mut().insert(header::ETAG, etag.clone());
    r
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

#[derive(Debug, Deserialize, Default)]
struct DeploymentParams {
    #[serde(rename = "actionHistory")]
    action_history: Option<i64>,
}

/// hawkBit's name for an execution's state, shown in `actionHistory.status`.
fn hawkbit_status(e: &Execution) -> &'static str {
    use ExecutionState::*;
    match e.state {
        _ if e.cancel_requested => "CANCELING",
        Queued | Notified => "RUNNING",
        AwaitingConsent => "WAIT_FOR_CONFIRMATION",
        Downloading => "DOWNLOAD",
        Downloaded => "DOWNLOADED",
        Installing => "RUNNING",
        Succeeded | Skipped => "FINISHED",
        Failed | TimedOut => "ERROR",
        Rejected => "WARNING",
        Canceled => "CANCELED",
    }
}

async fn history(
    state: &AppState,
    dev: &DdiDevice,
    e: &Execution,
    n: Option<i64>,
) -> DdiResult<Option<ddi::ActionHistory>> {
    let Some(n) = n.filter(|n| *n != 0) else {
        return Ok(None);
    };
    let limit = if n < 0 { 100 } else { n.min(100) as usize };
    let events = state.app.device_history(&dev.actor, e).await?;
    let messages = events
        .iter()
        .rev()
        .take(limit)
        .map(|ev| {
            let who = if ev.source == EventSource::Device { "" } else { "Update Server: " };
            let details = if ev.details.is_empty() { String::new() } else { format!(": {}", ev.details.join("; ")) };
            format!("{who}{} ({}){details}", ev.report, ev.state.as_str())
        })
        .collect();
    Ok(Some(ddi::ActionHistory { status: hawkbit_status(e).into(), messages }))
}

/// A job's `additional_params` as deployment metadata: strings as they are,
/// other values as JSON text.
fn metadata_of(job: &Job) -> Option<Vec<ddi::KeyValue>> {
    let params = &job.spec.additional_params;
    (!params.is_empty()).then(|| {
        params
            .iter()
            .map(|(k, v)| ddi::KeyValue {
                key: k.clone(),
                value: match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            })
            .collect()
    })
}

/// The firmware's components as DDI chunks, with artifact links for this device.
/// A signed file's chunk also carries its signature: as metadata
/// (`signature.*`, after the job's) and as the artifact `<file>.sig`.
fn chunks(dev: &DdiDevice, fw: &Firmware, metadata: Option<Vec<ddi::KeyValue>>) -> Vec<ddi::Chunk> {
    fw.files
        .iter()
        .map(|f| {
            let href = format!("{}/softwaremodules/{}/artifacts/{}", dev.base_url, fw.id, f.name);
            let mut artifacts = vec![artifact_of(f, &href, dev.https_links)];
            let mut metadata = metadata.clone();
            if let Some(signing) = &f.code_signing {
                artifacts.extend(signature_artifact(dev, fw, f));
                metadata.get_or_insert_with(Vec::new).extend(signature_metadata(signing));
            }
            ddi::Chunk {
                part: f.component.clone(),
                version: f.version.clone(),
                name: fw.name.clone().unwrap_or_else(|| f.name.clone()),
                artifacts,
                metadata,
            }
        })
        .collect()
}

/// A signed file's signature as chunk metadata.
fn signature_metadata(s: &updraft_core::CodeSigning) -> Vec<ddi::KeyValue> {
    let kv = |key: &str, value: &str| ddi::KeyValue { key: key.to_owned(), value: value.to_owned() };
    let mut out = vec![
        kv("signature.algorithm", s.signature_algorithm.as_str()),
        kv("signature.hash", &s.hash_algorithm),
        kv("signature.certificate", &s.certificate_chain),
        kv("signature.value", &s.signature),
    ];
    if let Some(name) = &s.certificate_name {
        out.push(kv("signature.certificate_name", name));
    }
    out
}

/// The raw bytes of a signed file's signature, served as `<file>.sig`.
fn signature_bytes(f: &updraft_core::FirmwareFile) -> Option<Vec<u8>> {
    use base64::Engine;
    let s = f.code_signing.as_ref()?;
    base64::engine::general_purpose::STANDARD.decode(&s.signature).ok()
}

/// A signed file's `<file>.sig` artifact, with its hashes and links.
fn signature_artifact(dev: &DdiDevice, fw: &Firmware, f: &updraft_core::FirmwareFile) -> Option<ddi::Artifact> {
    use sha1::Digest as _;
    let bytes = signature_bytes(f)?;
    let name = format!("{}.sig", f.name);
    let href = format!("{}/softwaremodules/{}/artifacts/{}", dev.base_url, fw.id, name);
    Some(ddi::Artifact {
        filename: name,
        hashes: ddi::Hashes {
            sha1: hex::encode(sha1::Sha1::digest(&bytes)),
            md5: hex::encode(md5::Md5::digest(&bytes)),
            sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        },
        size: bytes.len() as u64,
        links: links(&href, dev.https_links),
    })
}

/// An artifact's links. Over TLS, `download` and `md5sum` are the `https`
/// links clients prefer, and `download-http`/`md5sum-http` the same links again
/// for clients that read only those (there is no plain listener to point them
/// at; see ADR 0009).
fn links(href: &str, https: bool) -> ddi::ArtifactLinks {
    let md5sum = format!("{href}.MD5SUM");
    ddi::ArtifactLinks {
        download: https.then(|| ddi::Link::new(href)),
        download_http: Some(ddi::Link::new(href)),
        md5sum: https.then(|| ddi::Link::new(md5sum.clone())),
        md5sum_http: Some(ddi::Link::new(md5sum)),
    }
}

/// An artifact's hashes and links.
fn artifact_of(f: &updraft_core::FirmwareFile, href: &str, https: bool) -> ddi::Artifact {
    ddi::Artifact {
        filename: f.name.clone(),
        hashes: ddi::Hashes { sha1: f.sha1.clone(), md5: f.md5.clone(), sha256: f.sha256.clone() },
        size: f.size,
        links: links(href, https),
    }
}

async fn deployment_of(state: &AppState, dev: &DdiDevice, e: &Execution) -> DdiResult<ddi::Deployment> {
    let fw = state
        .app
        .device_firmware(&dev.actor, e)
        .await?
        .ok_or_else(|| DdiError::NotFound(format!("firmware {} not found", e.firmware)))?;
    let job = job_of(state, dev, e).await?;
    let delivery = job.spec.delivery(state.now());
    let directive = |d: Directive| match d {
        Directive::Skip => ddi::HandlingType::Skip,
        Directive::Attempt => ddi::HandlingType::Attempt,
        Directive::Forced => ddi::HandlingType::Forced,
    };
    Ok(ddi::Deployment {
        download: directive(delivery.download),
        update: directive(delivery.update),
        maintenance_window: delivery
            .window_open
            .map(|open| if open { ddi::MaintenanceWindow::Available } else { ddi::MaintenanceWindow::Unavailable }),
        chunks: chunks(dev, &fw, metadata_of(&job)),
    })
}

/// What an action delivers, and its history when `?actionHistory=` asks for it.
async fn deployment_with_history(
    state: &AppState,
    dev: &DdiDevice,
    e: &Execution,
    history_len: Option<i64>,
) -> DdiResult<(ddi::Deployment, Option<ddi::ActionHistory>)> {
    Ok((deployment_of(state, dev, e).await?, history(state, dev, e, history_len).await?))
}

/// `GET deploymentBase/{id}`: what to install (a released execution's).
async fn deployment(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
    DdiQuery(q): DdiQuery<DeploymentParams>,
) -> DdiResult<Json<ddi::DeploymentBase>> {
    let e = own_execution(&state, &dev, &params["action"]).await?;
    // Queued: not released to the device yet (the job's pace decides when).
    if e.cancel_requested
        || matches!(
            e.state,
            ExecutionState::Queued
                | ExecutionState::AwaitingConsent
                | ExecutionState::Canceled
                | ExecutionState::Skipped
        )
    {
        return Err(DdiError::NotFound(format!("action {} is not a deployment to do", e.public_id())));
    }
    let (deployment, action_history) = deployment_with_history(&state, &dev, &e, q.action_history).await?;
    Ok(Json(ddi::DeploymentBase { id: e.public_id().to_string(), deployment, action_history }))
}

fn device_report(status: &ddi::Status) -> DeviceReport {
    let (kind, label) = match (status.execution, status.result.finished) {
        (ddi::Execution::Closed, ddi::Finished::Failure) => (ReportKind::Closed { success: false }, "closed/failure"),
        (ddi::Execution::Closed, ddi::Finished::Success) => (ReportKind::Closed { success: true }, "closed/success"),
        (ddi::Execution::Closed, ddi::Finished::None) => (ReportKind::Closed { success: true }, "closed"),
        (ddi::Execution::Canceled, _) => (ReportKind::Canceled, "canceled"),
        (ddi::Execution::Rejected, _) => (ReportKind::Rejected, "rejected"),
        (ddi::Execution::Download, _) => (ReportKind::Download, "download"),
        (ddi::Execution::Downloaded, _) => (ReportKind::Downloaded, "downloaded"),
        (ddi::Execution::Proceeding, _) => (ReportKind::Proceeding, "proceeding"),
        (ddi::Execution::Scheduled, _) => (ReportKind::Proceeding, "scheduled"),
        (ddi::Execution::Resumed, _) => (ReportKind::Proceeding, "resumed"),
    };
    let details =
        status
            .details
            .iter()
            .take(MAX_DETAILS)
            .map(|d| {
                if d.chars().count() > MAX_DETAIL_CHARS {
                    d.chars().take(MAX_DETAIL_CHARS).collect()
                } else {
                    d.clone()
                }
            })
            .collect();
    DeviceReport {
        kind,
        label: label.into(),
        // hawkBit ignores progress; it is kept when it says how far (`cnt`, not negative).
        progress: status.result.progress.and_then(|p| {
            let cnt = u64::try_from(p.cnt?).ok()?;
            Some(Progress { cnt, of: p.of.and_then(|of| u64::try_from(of).ok()) })
        }),
        code: status.code,
        details,
    }
}

fn refused(e: TransitionError, action: i64) -> DdiError {
    match e {
        TransitionError::Finished => DdiError::Gone(format!("action {action} is closed")),
        TransitionError::NotApplicable => DdiError::NotFound(format!("action {action} is not awaiting this feedback")),
    }
}

/// `POST deploymentBase/{id}/feedback`.
async fn deployment_feedback(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> DdiResult<StatusCode> {
    let e = own_execution(&state, &dev, &params["action"]).await?;
    let feedback: ddi::ActionFeedback = read_json(&headers, &body)?;
    let report = device_report(&feedback.status);
    let changed = state.app.report_deployment(&dev.actor, &e, &report).await?;
    let changed = changed.map_err(|err| refused(err, e.public_id()))?;
    metrics::counter!(DDI_FEEDBACK, "report" => report.label.clone()).increment(1);
    tracing::debug!(tenant = %dev.tenant, device = %dev.id, action = e.public_id(), report = %report.label, state = changed.state.as_str(), "device feedback");
    Ok(StatusCode::OK)
}

/// `GET cancelAction/{id}`.
async fn cancel(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
) -> DdiResult<Json<ddi::Cancel>> {
    let e = own_execution(&state, &dev, &params["action"]).await?;
    if !(e.cancel_requested || e.state == ExecutionState::Canceled) {
        return Err(DdiError::NotFound(format!("action {} is not being canceled", e.public_id())));
    }
    let id = e.public_id().to_string();
    Ok(Json(ddi::Cancel { id: id.clone(), cancel_action: ddi::CancelAction { stop_id: id } }))
}

/// `POST cancelAction/{id}/feedback`: `closed` accepts the cancellation.
async fn cancel_feedback(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> DdiResult<StatusCode> {
    let e = own_execution(&state, &dev, &params["action"]).await?;
    let feedback: ddi::ActionFeedback = read_json(&headers, &body)?;
    let report = device_report(&feedback.status);
    match state.app.report_cancel(&dev.actor, &e, &report).await? {
        Ok(_) => Ok(StatusCode::OK),
        Err(TransitionError::Finished) => Err(DdiError::Gone(format!("action {} is closed", e.public_id()))),
        Err(TransitionError::NotApplicable) => {
            Err(DdiError::NotAllowed(format!("action {} is not being canceled", e.public_id())))
        }
    }
}

/// `GET installedBase/{id}`: what the device installed last.
async fn installed(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
    DdiQuery(q): DdiQuery<DeploymentParams>,
) -> DdiResult<Json<ddi::DeploymentBase>> {
    let e = own_execution(&state, &dev, &params["action"]).await?;
    if e.state != ExecutionState::Succeeded {
        return Err(DdiError::NotFound(format!("action {} is not installed", e.public_id())));
    }
    let (deployment, action_history) = deployment_with_history(&state, &dev, &e, q.action_history).await?;
    Ok(Json(ddi::DeploymentBase { id: e.public_id().to_string(), deployment, action_history }))
}

/// `PUT configData`: the device's attributes update its record.
async fn config_data(
    State(state): State<AppState>,
    dev: DdiDevice,
    headers: HeaderMap,
    body: Bytes,
) -> DdiResult<StatusCode> {
    let data: ddi::ConfigData = read_json(&headers, &body)?;
    let mode = match data.mode.unwrap_or(ddi::ConfigMode::Merge) {
        ddi::ConfigMode::Merge => attributes::Mode::Merge,
        ddi::ConfigMode::Replace => attributes::Mode::Replace,
        ddi::ConfigMode::Remove => attributes::Mode::Remove,
    };
    state
        .app
        .report_attributes(&dev.actor, mode, &data.data)
        .await?
        .map_err(|errors| DdiError::BadRequest(updraft_core::Error::Invalid(errors).to_string()))?;
    Ok(StatusCode::OK)
}

/// `GET confirmationBase`: auto-confirmation is off; links to an action awaiting consent.
async fn confirmation_base(State(state): State<AppState>, dev: DdiDevice) -> DdiResult<Json<ddi::ConfirmationBase>> {
    let actions = state.app.device_actions(&dev.actor).await?;
    let mut links = std::collections::BTreeMap::new();
    if let Some(a) = actions.active.filter(|a| a.state == ExecutionState::AwaitingConsent) {
        links.insert(
            "confirmationBase".to_owned(),
            ddi::Link::new(format!("{}/confirmationBase/{}?c={}", dev.base_url, a.public_id(), etag_param(&a, None))),
        );
    }
    Ok(Json(ddi::ConfirmationBase { auto_confirm: ddi::AutoConfirm { active: false }, links }))
}

/// `GET confirmationBase/{id}`: the deployment the device is asked to confirm.
async fn confirmation(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
    DdiQuery(q): DdiQuery<DeploymentParams>,
) -> DdiResult<Json<ddi::ConfirmationBaseAction>> {
    let e = own_execution(&state, &dev, &params["action"]).await?;
    if e.state != ExecutionState::AwaitingConsent {
        return Err(DdiError::NotFound(format!("action {} is not awaiting confirmation", e.public_id())));
    }
    let (confirmation, action_history) = deployment_with_history(&state, &dev, &e, q.action_history).await?;
    Ok(Json(ddi::ConfirmationBaseAction { id: e.public_id().to_string(), confirmation, action_history }))
}

/// `POST confirmationBase/{id}/feedback`: `confirmed` releases the deployment, `denied` rejects it.
async fn confirmation_feedback(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> DdiResult<StatusCode> {
    let e = own_execution(&state, &dev, &params["action"]).await?;
    let feedback: ddi::ConfirmationFeedback = read_json(&headers, &body)?;
    let approve = feedback.confirmation == ddi::Confirmation::Confirmed;
    state.app.device_consent(&dev.actor, &e, approve).await?.map_err(|err| refused(err, e.public_id()))?;
    Ok(StatusCode::OK)
}

/// The firmware image behind a software module id, if this device may download it:
/// the image of its open execution or of the last one it installed.
async fn module_for_device(state: &AppState, dev: &DdiDevice, module: &str) -> DdiResult<Firmware> {
    match state.app.device_module(&dev.actor, module).await? {
        Module::Assigned(fw) => Ok(fw),
        Module::NotAssigned => {
            Err(DdiError::NotFound(format!("software module {module} is not assigned to target {}", dev.id)))
        }
        Module::Missing => Err(DdiError::NotFound(format!("software module {module} not found"))),
    }
}

/// `GET softwaremodules/{id}/artifacts`.
async fn artifacts(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
) -> DdiResult<Json<Vec<ddi::Artifact>>> {
    let fw = module_for_device(&state, &dev, &params["module"]).await?;
    let list = fw
        .files
        .iter()
        .flat_map(|f| {
            let href = format!("{}/softwaremodules/{}/artifacts/{}", dev.base_url, fw.id, f.name);
            std::iter::once(artifact_of(f, &href, dev.https_links)).chain(signature_artifact(&dev, &fw, f))
        })
        .collect();
    Ok(Json(list))
}

/// `GET softwaremodules/{id}/artifacts/{file}` (and `{file}.MD5SUM`), with ranges.
async fn artifact(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<HashMap<String, String>>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> DdiResult<Response> {
    let fw = module_for_device(&state, &dev, &params["module"]).await?;
    let name = &params["file"];
    if let Some(f) = fw.files.iter().find(|f| &f.name == name) {
        if let Some(expected) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
            && expected.trim().trim_matches('"') != f.sha1
            && expected.trim() != "*"
        {
            return Ok(StatusCode::PRECONDITION_FAILED.into_response());
        }
        let presign = &state.settings.blobs;
        if presign.presigned_downloads
            && method == axum::http::Method::GET
            && let Some(url) = state
                .blobs
                .presigned_url(&f.blob, std::time::Duration::from_secs(presign.presigned_ttl_secs.max(1)))
                .await
        {
            // The bucket carries the bytes (Range and validators are its own).
            metrics::counter!(crate::metrics::ARTIFACT_REDIRECTS).increment(1);
            return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response());
        }
        let file = files::FileToSend {
            blob: f.blob.clone(),
            len: f.size,
            name: f.name.clone(),
            etag: f.sha1.clone(),
            modified: fw.created_at,
        };
        // The artifact is recorded: bytes this replica cannot read are its fault, not the device's
        // (503 before any byte of the body, so the device retries later instead of keeping a cut-off file).
        return files::respond(&state.blobs, file, &method, &headers, ARTIFACT_BYTES)
            .await
            .map_err(|e| DdiError::from(updraft_app::Error::blob_unreadable(e)));
    }
    let signature_of = |name: &str| {
        let f = name.strip_suffix(".sig").and_then(|base| fw.files.iter().find(|f| f.name == base))?;
        signature_bytes(f)
    };
    if let Some(bytes) = signature_of(name) {
        use sha1::Digest as _;
        let etag = hex::encode(sha1::Sha1::digest(&bytes));
        return Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment;filename=\"{name}\"")),
                (header::ETAG, format!("\"{etag}\"")),
            ],
            bytes,
        )
            .into_response());
    }
    if let Some(bytes) = name.strip_suffix(".MD5SUM").and_then(signature_of) {
        use md5::Digest as _;
        let base = name.trim_end_matches(".MD5SUM");
        let body = format!("{}  {base}", hex::encode(md5::Md5::digest(&bytes)));
        return Ok((
            [
                (header::CONTENT_TYPE, "text/plain".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment;filename=\"{base}.MD5SUM\"")),
            ],
            body,
        )
            .into_response());
    }
    if let Some(f) = name.strip_suffix(".MD5SUM").and_then(|base| fw.files.iter().find(|f| f.name == base)) {
        let body = format!("{}  {}", f.md5, f.name);
        return Ok((
            [
                (header::CONTENT_TYPE, "text/plain".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment;filename=\"{}.MD5SUM\"", f.name)),
            ],
            body,
        )
            .into_response());
    }
    Err(DdiError::NotFound(format!("artifact {name} not found")))
}
