//! A small in-test DDI server: one deployment (action 7) with one artifact for every device,
//! `Range` support, an optional connection cut on the first download, a cancel mode, and the
//! management API's bulk import. It records what devices send so tests can assert on it.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use sha2::{Digest, Sha256};
use updraft_ddi as ddi;

pub const ACTION: &str = "7";
pub const FILENAME: &str = "fw.bin";
pub const NEW_VERSION: &str = "2.0.0";

/// Everything the mock saw.
#[derive(Default)]
pub struct Log {
    pub feedback: Vec<(String, String, ddi::ActionFeedback)>,
    pub cancel_feedback: Vec<(String, String, ddi::ActionFeedback)>,
    pub config: Vec<(String, BTreeMap<String, String>)>,
    /// The `Range` header of every artifact request, in order.
    pub ranges: Vec<Option<String>>,
    pub imports: Vec<usize>,
    pub unauthorized: usize,
    /// Devices whose action is over (closed, or cancellation accepted).
    pub finished: std::collections::HashSet<String>,
}

pub struct MockState {
    pub base: String,
    /// The bytes served.
    pub served: Vec<u8>,
    /// The size and hash the deployment announces.
    pub size: u64,
    pub sha256: String,
    /// Cut the connection after this many bytes, once.
    pub cut_after: Mutex<Option<usize>>,
    /// Serve `cancelAction` instead of `deploymentBase`.
    pub cancel: AtomicBool,
    pub log: Mutex<Log>,
}

pub struct Mock {
    pub base: String,
    pub state: Arc<MockState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deterministic, incompressible-looking test bytes.
pub fn artifact_bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub struct MockOptions {
    pub artifact: Vec<u8>,
    /// Serve different bytes than announced (same size, one byte flipped).
    pub corrupt: bool,
    pub cut_after: Option<usize>,
    pub cancel: bool,
}

impl MockOptions {
    pub fn new(artifact: Vec<u8>) -> Self {
        MockOptions { artifact, corrupt: false, cut_after: None, cancel: false }
    }
}

pub async fn start(options: MockOptions) -> Mock {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut served = options.artifact.clone();
    if options.corrupt
        && let Some(b) = served.get_mut(0)
    {
        *b ^= 0xff;
    }
    let state = Arc::new(MockState {
        base: base.clone(),
        served,
        size: options.artifact.len() as u64,
        sha256: sha256_hex(&options.artifact),
        cut_after: Mutex::new(options.cut_after),
        cancel: AtomicBool::new(options.cancel),
        log: Mutex::new(Log::default()),
    });
    const DEV: &str = "/{tenant}/controller/v1/{device}";
    let app = Router::new()
        .route(DEV, get(root))
        .route(&format!("{DEV}/deploymentBase/{{action}}"), get(deployment))
        .route(&format!("{DEV}/deploymentBase/{{action}}/feedback"), post(feedback))
        .route(&format!("{DEV}/cancelAction/{{action}}"), get(cancel))
        .route(&format!("{DEV}/cancelAction/{{action}}/feedback"), post(cancel_feedback))
        .route(&format!("{DEV}/configData"), put(config_data))
        .route(&format!("{DEV}/softwaremodules/{{module}}/artifacts/{{file}}"), get(artifact))
        .route("/api/v1/devices/import", post(import))
        .with_state(state.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Mock { base, state, task }
}

impl Mock {
    pub fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.state.log.lock().unwrap()
    }

    /// `(execution, finished)` of every deployment feedback from `device`, in order.
    pub fn statuses(&self, device: &str) -> Vec<(ddi::Execution, ddi::Finished)> {
        self.log()
            .feedback
            .iter()
            .filter(|(d, _, _)| d == device)
            .map(|(_, _, f)| (f.status.execution, f.status.result.finished))
            .collect()
    }

    pub fn details(&self, device: &str) -> Vec<String> {
        self.log()
            .feedback
            .iter()
            .filter(|(d, _, _)| d == device)
            .flat_map(|(_, _, f)| f.status.details.clone())
            .collect()
    }
}

fn authorized(state: &MockState, headers: &HeaderMap, scheme: &str) -> bool {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(scheme) && v.len() > scheme.len());
    if !ok {
        state.log.lock().unwrap().unauthorized += 1;
    }
    ok
}

fn device_auth(state: &MockState, headers: &HeaderMap) -> bool {
    let v = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let scheme = if v.starts_with("GatewayToken ") { "GatewayToken " } else { "TargetToken " };
    authorized(state, headers, scheme)
}

async fn root(
    State(s): State<Arc<MockState>>,
    Path((tenant, device)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !device_auth(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let finished = s.log.lock().unwrap().finished.contains(&device);
    let me = format!("{}/{tenant}/controller/v1/{device}", s.base);
    let mut links = ddi::ControllerLinks::default();
    if !finished {
        if s.cancel.load(Ordering::Relaxed) {
            links.cancel_action = Some(ddi::Link::new(format!("{me}/cancelAction/{ACTION}")));
        } else {
            links.deployment_base = Some(ddi::Link::new(format!("{me}/deploymentBase/{ACTION}?c=12345")));
        }
    }
    axum::Json(ddi::ControllerBase {
        config: ddi::Config { polling: ddi::Polling { sleep: "00:00:01".into() } },
        links,
    })
    .into_response()
}

async fn deployment(
    State(s): State<Arc<MockState>>,
    Path((tenant, device, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !device_auth(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if action != ACTION {
        return StatusCode::NOT_FOUND.into_response();
    }
    let href = format!("{}/{tenant}/controller/v1/{device}/softwaremodules/3/artifacts/{FILENAME}", s.base);
    axum::Json(ddi::DeploymentBase {
        id: ACTION.into(),
        deployment: ddi::Deployment {
            download: ddi::HandlingType::Forced,
            update: ddi::HandlingType::Forced,
            maintenance_window: None,
            chunks: vec![ddi::Chunk {
                part: "host".into(),
                version: NEW_VERSION.into(),
                name: "host".into(),
                artifacts: vec![ddi::Artifact {
                    filename: FILENAME.into(),
                    hashes: ddi::Hashes { sha1: "x".into(), md5: "y".into(), sha256: s.sha256.clone() },
                    size: s.size,
                    links: ddi::ArtifactLinks {
                        download: None,
                        download_http: Some(ddi::Link::new(href)),
                        md5sum: None,
                        md5sum_http: None,
                    },
                }],
                metadata: None,
            }],
        },
        action_history: None,
    })
    .into_response()
}

async fn feedback(
    State(s): State<Arc<MockState>>,
    Path((_tenant, device, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(fb): axum::Json<ddi::ActionFeedback>,
) -> StatusCode {
    if !device_auth(&s, &headers) {
        return StatusCode::UNAUTHORIZED;
    }
    let mut log = s.log.lock().unwrap();
    if log.finished.contains(&device) {
        return StatusCode::GONE;
    }
    if fb.status.execution == ddi::Execution::Closed {
        log.finished.insert(device.clone());
    }
    log.feedback.push((device, action, fb));
    StatusCode::OK
}

async fn cancel(
    State(s): State<Arc<MockState>>,
    Path((_tenant, _device, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !device_auth(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(ddi::Cancel { id: action.clone(), cancel_action: ddi::CancelAction { stop_id: action } }).into_response()
}

async fn cancel_feedback(
    State(s): State<Arc<MockState>>,
    Path((_tenant, device, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(fb): axum::Json<ddi::ActionFeedback>,
) -> StatusCode {
    if !device_auth(&s, &headers) {
        return StatusCode::UNAUTHORIZED;
    }
    let mut log = s.log.lock().unwrap();
    if fb.status.execution == ddi::Execution::Closed && fb.status.result.finished == ddi::Finished::Success {
        log.finished.insert(device.clone());
    }
    log.cancel_feedback.push((device, action, fb));
    StatusCode::OK
}

async fn config_data(
    State(s): State<Arc<MockState>>,
    Path((_tenant, device)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<ddi::ConfigData>,
) -> StatusCode {
    if !device_auth(&s, &headers) {
        return StatusCode::UNAUTHORIZED;
    }
    s.log.lock().unwrap().config.push((device, body.data));
    StatusCode::OK
}

async fn artifact(
    State(s): State<Arc<MockState>>,
    Path((_tenant, _device, _module, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !device_auth(&s, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if file != FILENAME {
        return StatusCode::NOT_FOUND.into_response();
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    s.log.lock().unwrap().ranges.push(range.clone());
    let len = s.served.len();
    let start = match &range {
        None => 0,
        Some(r) => match r.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse().ok()) {
            Some(n) if n < len => n,
            _ => {
                return Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .body(Body::empty())
                    .unwrap();
            }
        },
    };
    let rest = Bytes::copy_from_slice(&s.served[start..]);
    let cut = s.cut_after.lock().unwrap().take();
    let body = match cut {
        // Send the first bytes, give them time to arrive, then break the connection.
        Some(n) => {
            let first = rest.slice(..n.min(rest.len()));
            let stream = futures_util::stream::unfold(0u8, move |step| {
                let first = first.clone();
                async move {
                    match step {
                        0 => Some((Ok::<Bytes, std::io::Error>(first), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((Err(std::io::Error::other("connection cut by the test")), 2))
                        }
                        _ => None,
                    }
                }
            });
            Body::from_stream(stream)
        }
        None => Body::from(rest.clone()),
    };
    let mut response = Response::builder()
        .header(header::CONTENT_LENGTH, rest.len())
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    response = if start > 0 {
        response
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{}/{len}", len - 1))
    } else {
        response.status(StatusCode::OK)
    };
    response.body(body).unwrap()
}

async fn import(State(s): State<Arc<MockState>>, headers: HeaderMap, body: String) -> Response {
    if !authorized(&s, &headers, "Bearer ") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some("application/x-ndjson") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let mut devices = Vec::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        };
        let (Some(id), Some(_product)) = (v["id"].as_str(), v["product"].as_str()) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        devices.push(serde_json::json!({"id": id, "token": format!("tok-{id}")}));
    }
    s.log.lock().unwrap().imports.push(devices.len());
    // Answer in reverse order: clients must match tokens by id, not by position.
    devices.reverse();
    (StatusCode::CREATED, axum::Json(serde_json::json!({"created": devices.len(), "devices": devices}))).into_response()
}

/// `HashMap` of device → closed outcome (`success`/`failure`) from the recorded feedback.
pub fn outcomes(log: &Log) -> HashMap<String, ddi::Finished> {
    log.feedback
        .iter()
        .filter(|(_, _, f)| f.status.execution == ddi::Execution::Closed)
        .map(|(d, _, f)| (d.clone(), f.status.result.finished))
        .collect()
}
