//! updraft's HTTP front door: the management REST API and hawkBit's device
//! API over the application layer (`updraft-app`). It knows no store: the
//! binary opens the backends, builds the `App`, and hands it to [`build`],
//! then [`serve`]s it on the listener it bound (the integration tests do the
//! same on port 0).

pub mod api;
pub mod auth;
pub mod compat;
pub mod conn;
pub mod ddi;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod mqtt;
pub mod openapi;
pub mod ratelimit;
pub mod settings;
pub mod state;
pub mod tls;
pub mod tuf;
pub mod ui;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use settings::{LogFormat, Settings};
pub use state::AppState;
pub use updraft_app::{Clock, SystemClock};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids: random per process, then a counter.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{n:08x}", self.prefix).parse().ok().map(RequestId::new)
    }
}

/// The whole HTTP application for a state.
pub fn router(state: AppState) -> Router {
    let ids = RequestIds { prefix: auth::new_id("").into(), next: Default::default() };
    let body_timeout = std::time::Duration::from_secs(state.settings.request_body_timeout_secs.max(1));
    let cors = cors(&state.settings.cors_allowed_origins);
    api::routes()
        .merge(ui::routes())
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(acting))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_timeout))
        .layer(axum::middleware::from_fn_with_state(state.clone(), settle))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(tower::util::option_layer(cors))
        .layer(axum::middleware::from_fn(extract::refuse_nul_in_uri))
        .layer(axum::middleware::from_fn(extract::errors_in_envelope))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, ids))
}

/// Every request runs with a slot for who acts, which its extractor fills once
/// it authenticated the caller: the events the request writes name them.
async fn acting(req: Request<axum::body::Body>, next: axum::middleware::Next) -> axum::response::Response {
    updraft_app::store::acting(None, next.run(req)).await
}

/// Read your writes: a request that changed something is answered once this
/// replica's event followers have acted on it (a device registered is in the
/// continuous jobs it matches when its registration is answered).
async fn settle(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let before = state.app.published();
    let response = next.run(req).await;
    if !reads && state.app.published() != before {
        state.app.settle().await;
    }
    response
}

/// What every answer carries: `X-Content-Type-Options: nosniff`, and on the
/// management API `Cache-Control: no-store` unless the handler set its own
/// (answers carry tokens and fleet data no cache should keep).
async fn security_headers(req: Request<axum::body::Body>, next: axum::middleware::Next) -> axum::response::Response {
    let management = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if management && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// CORS for the configured origins; none configured, no CORS headers at all.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                idempotency::IDEMPOTENCY_KEY,
            ])
            .expose_headers([header::ETAG, header::RETRY_AFTER, header::LOCATION, REQUEST_ID, idempotency::REPLAYED.0])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The settings, checked, with `public_url` normalised: what [`build`] takes
/// (the binary checks them before it opens any backend).
pub fn checked(mut settings: Settings) -> anyhow::Result<Settings> {
    settings.public_url = settings.public_base().map_err(anyhow::Error::msg)?;
    for origin in &settings.cors_allowed_origins {
        anyhow::ensure!(
            origin.parse::<HeaderValue>().is_ok(),
            "cors_allowed_origins: `{origin}` is not a valid origin"
        );
    }
    anyhow::ensure!(
        settings.tls_cert_file.is_some() == settings.tls_key_file.is_some(),
        "tls_cert_file and tls_key_file go together: set both or neither"
    );
    anyhow::ensure!(
        settings.tls_client_ca_file.is_none() || settings.tls(),
        "tls_client_ca_file needs tls_cert_file and tls_key_file"
    );
    // The certificate, its key and the client CA load now, before anything else starts.
    tls::from_settings(&settings)?;
    for hash in &mut settings.ddi_proxy_issuer_hashes {
        *hash = hash.trim().to_ascii_lowercase();
        anyhow::ensure!(!hash.is_empty(), "ddi_proxy_issuer_hashes: an empty hash");
    }
    Ok(settings)
}

/// Checks the settings, bootstraps the administrator key, and returns the
/// state every handler shares, over `app` (whose store and blob storage the
/// binary chose).
pub async fn build(settings: Settings, app: updraft_app::App) -> anyhow::Result<AppState> {
    let settings = checked(settings)?;
    if let Some(token) = app.bootstrap(settings.bootstrap_token.as_deref()).await? {
        eprintln!(
            "\n  updraft generated the server administrator's API key. It is shown only this once:\n\n      {token}\n\n  \
             Use it as `Authorization: Bearer <key>` (or UPDRAFT_TOKEN for the CLI).\n"
        );
    }
    let poll_cache = Arc::new(ddi::cache::PollCache::new(
        settings.poll_cache_ttl_ms.map(std::time::Duration::from_millis),
        settings.poll_cache_devices,
    ));
    let forget = poll_cache.clone();
    app.on_events(move |events| forget.apply(events));
    let settings_rate = (settings.api_rate_limit_per_sec, settings.api_rate_limit_burst);
    let failures = (settings.auth_failures_per_minute, settings.auth_failures_burst);
    let ddi_device_limit =
        ratelimit::RateLimiter::per_minute(settings.ddi_rate_limit_per_minute, settings.ddi_rate_limit_burst);
    let ddi_address_limit = ratelimit::RateLimiter::per_minute(
        settings.ddi_address_rate_limit_per_minute,
        settings.ddi_address_rate_limit_burst,
    );
    let device_ca = if settings.mqtt.url.is_some() {
        let (cert, key) = mqtt::certs::default_files(&settings.data_dir);
        let cert = settings.mqtt.device_ca_cert_file.clone().unwrap_or(cert);
        let key = settings.mqtt.device_ca_key_file.clone().unwrap_or(key);
        Some(Arc::new(mqtt::certs::DeviceCa::load_or_create(&cert, &key)?))
    } else {
        None
    };
    Ok(AppState {
        device_ca,
        app,
        settings: Arc::new(settings),
        metrics: metrics::recorder(),
        rate_limiter: Arc::new(ratelimit::RateLimiter::new(settings_rate.0, settings_rate.1)),
        auth_failures: Arc::new(ratelimit::RateLimiter::per_minute(failures.0, failures.1)),
        ddi_device_limit: Arc::new(ddi_device_limit),
        ddi_address_limit: Arc::new(ddi_address_limit),
        nonces: Arc::new(compat::Nonces::default()),
        poll_cache,
    })
}

/// Serves `state` on `listener` with its background workers until `shutdown`
/// completes; then finishes the requests in flight, runs each worker's last
/// tick (no sighting is lost) and closes the store.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let settings = &state.settings;
    let tls = tls::from_settings(settings)?;
    let (stop_workers, workers) = state.app.spawn_background();
    let reloading = tls.clone().map(|tls| tokio::spawn(tls::watch(tls, stop_workers.subscribe())));
    let mqtt = mqtt::spawn(state.clone(), addr, stop_workers.subscribe())?;
    let filling = tokio::spawn(ddi::fill_poll_cache(state.clone(), stop_workers.subscribe()));
    tracing::info!(%addr, backend = state.app.backend(), tls = tls.is_some(), "updraft listening");
    let limits = conn::Limits {
        header_read_timeout: std::time::Duration::from_secs(settings.header_read_timeout_secs.max(1)),
        tls_handshake_timeout: std::time::Duration::from_secs(settings.tls_handshake_timeout_secs.max(1)),
        keep_alive_timeout: std::time::Duration::from_secs(settings.keep_alive_timeout_secs.max(1)),
        max_connections: settings
            .max_connections
            .unwrap_or_else(|| conn::default_max_connections(conn::open_file_limit()))
            .clamp(1, u32::MAX as usize >> 4),
    };
    tracing::info!(max_connections = limits.max_connections, "connection limits");
    conn::serve(listener, router(state.clone()), limits, tls.map(|tls| tls.config), shutdown).await;
    tracing::info!("updraft stopping");
    let _ = stop_workers.send(true);
    if let Some(reloading) = reloading {
        let _ = reloading.await;
    }
    if let Some(mqtt) = mqtt {
        let _ = mqtt.await;
    }
    let _ = filling.await;
    for w in workers {
        let _ = w.await;
    }
    state.app.shut_down().await;
    Ok(())
}
