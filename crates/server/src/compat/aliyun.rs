//! The Aliyun-style RPC OTA API (seed 003) under `/compat/aliyun/`:
//! `CreateOTAStaticUpgradeJob`, `QueryOTAJob` and `CancelOTATaskByJob`, their
//! parameters in the query string (GET or POST) or form-encoded in a POST's
//! body, signed as that platform's SDKs sign (signature version 1.0:
//! HMAC-SHA1 with an access key updraft issues, `POST /api/v1/access-keys`).
//! Answers are `{Code, Data, ErrorMessage, RequestId, Success}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{KeyInit, Mac};
use jiff::Timestamp;
use serde_json::{Value, json};
use updraft_api::jobs::{JobIn, RetryIn};
use updraft_core::job::{JobCommand, JobState};

use crate::auth::Caller;
use crate::error::{ErrorCode, HttpStatus, Kind};
use crate::state::AppState;

/// How far a request's `Timestamp` may be from the server's clock, as the platform allows.
const TIMESTAMP_WINDOW_SECS: i64 = 15 * 60;
/// The common parameters every action takes.
const COMMON: &[&str] = &[
    "Action",
    "Format",
    "Version",
    "RegionId",
    "Timestamp",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "AccessKeyId",
    "Signature",
    // Sent by that platform's SDKs on every call: empty for HMAC-SHA1.
    "SignatureType",
    "ResourceOwnerAccount",
    // The platform's instance: a tenant here is one instance, so any value names it.
    "IotInstanceId",
];
const CREATE: &[&str] = &[
    "FirmwareID",
    "FirmwareId",
    "ProductKey",
    "TargetSelection",
    "RetryInterval",
    "RetryCount",
    "TimeoutInMinutes",
    "GrayPercent",
    "NeedPush",
    "NeedConfirm",
    "GroupID",
    "GroupId",
    "DownloadProtocol",
];
/// `CancelOTATaskByJob`'s choice of tasks by state; the job's cancel ends every
/// task not yet finished, as with all of them chosen.
const CANCEL: &[&str] = &[
    "JobId",
    "CancelQueuedTask",
    "CancelNotifiedTask",
    "CancelInProgressTask",
    "CancelScheduledTask",
    "CancelUnconfirmedTask",
];
const RETRY_INTERVALS: &[u32] = &[0, 10, 30, 60, 1440];
const RETRY_COUNTS: &[u32] = &[1, 2, 5];

/// An error in the platform's shape: its code, message and HTTP status.
#[derive(Debug)]
pub struct RpcError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl RpcError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        RpcError { status, code: code.to_owned(), message: message.into(), retry_after: None }
    }

    fn illegal(message: impl Into<String>) -> Self {
        RpcError::new(StatusCode::BAD_REQUEST, "iot.system.IllegalRequest", message)
    }

    fn signature(message: impl Into<String>) -> Self {
        RpcError::new(StatusCode::BAD_REQUEST, "SignatureDoesNotMatch", message)
    }

    /// The app's error by its kind; `not_found` by what it names.
    fn from_app(e: updraft_app::Error) -> Self {
        let named = |field: &str| {
            e.details
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|f| f["field"].as_str().is_some_and(|n| n.starts_with(field))))
        };
        let code = match e.code.kind() {
            Kind::BadRequest | Kind::Unprocessable => "iot.system.IllegalRequest",
            Kind::Unauthenticated => "InvalidAccessKeyId.NotFound",
            Kind::Forbidden => "Forbidden.RAM",
            Kind::NotFound if named("firmware") => "iot.ota.FirmwareNotExist",
            Kind::NotFound if named("groups") => "iot.group.NotExistedGroup",
            Kind::NotFound if named("devices") => "iot.device.NotExistedDevice",
            Kind::NotFound => "iot.common.NotFound",
            Kind::NotSupported | Kind::UnsupportedFormat => "UnsupportedOperation",
            Kind::Conflict if e.code == ErrorCode::FirmwareNotVerified => "iot.ota.FirmwareNotVerified",
            Kind::Conflict if e.code == ErrorCode::JobState => "iot.ota.JobStatusNotSupport",
            Kind::Conflict => "iot.common.Conflict",
            Kind::TooLarge => "iot.system.IllegalRequest",
            Kind::RateLimited => "Throttling.User",
            Kind::Internal => "iot.system.SystemException",
            Kind::Unavailable => "ServiceUnavailable",
        };
        RpcError { status: e.code.status(), code: code.to_owned(), message: e.message, retry_after: e.retry_after }
    }

    fn answer(self, request_id: &str) -> Response {
        let body = json!({
            "Code": self.code, "Data": null, "ErrorMessage": self.message, "RequestId": request_id, "Success": false,
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        response
    }
}

impl From<crate::error::ApiError> for RpcError {
    fn from(e: crate::error::ApiError) -> Self {
        RpcError::from_app(e.0)
    }
}

pub use super::percent_encode;

/// `Method&%2F&encode(canonicalized query)`: the parameters but `Signature`,
/// sorted by name, each `encode(name)=encode(value)`, joined by `&`.
pub fn string_to_sign(method: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(String, String)> =
        params.iter().filter(|(k, _)| k != "Signature").map(|(k, v)| (percent_encode(k), percent_encode(v))).collect();
    sorted.sort();
    let canonical: Vec<String> = sorted.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{method}&{}&{}", percent_encode("/"), percent_encode(&canonical.join("&")))
}

/// The signature: base64 of HMAC-SHA1 of the string to sign, keyed `secret&`.
pub fn signature(method: &str, params: &[(String, String)], secret: &str) -> String {
    let mut mac =
        hmac::Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign(method, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

use super::SignedRefusal;

/// Every action, by its `Action` parameter.
pub async fn rpc(State(state): State<AppState>, req: Request) -> Response {
    let request_id = super::request_id(req.headers());
    match act(&state, req).await {
        Ok(data) => Json(json!({
            "Code": "", "Data": data, "ErrorMessage": "", "RequestId": request_id, "Success": true,
        }))
        .into_response(),
        Err(e) => e.answer(&request_id),
    }
}

/// The request's parameters: its query string's, then a form body's.
async fn parameters(state: &AppState, req: Request) -> Result<(Method, Vec<(String, String)>), RpcError> {
    let method = req.method().clone();
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if method == Method::POST && form {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| RpcError::illegal("the body could not be read"))?;
        params.extend(form_urlencoded::parse(&bytes).into_owned());
    }
    Ok((method, params))
}

use axum::extract::FromRequest;

/// Authenticates the signed request: the access key's API key, once the
/// signature, its method and version, and the timestamp check.
async fn authenticate(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    method: &Method,
    p: &BTreeMap<&str, &str>,
    params: &[(String, String)],
    reads: bool,
) -> Result<Caller, RpcError> {
    let missing = |name: &str| {
        RpcError::new(StatusCode::BAD_REQUEST, "MissingParameter", format!("{name} is mandatory for this action"))
    };
    let id = *p.get("AccessKeyId").ok_or_else(|| missing("AccessKeyId"))?;
    let given = *p.get("Signature").ok_or_else(|| missing("Signature"))?;
    match p.get("SignatureMethod") {
        Some(&"HMAC-SHA1") => {}
        _ => {
            return Err(RpcError::new(
                StatusCode::BAD_REQUEST,
                "IncompleteSignature",
                "SignatureMethod must be HMAC-SHA1",
            ));
        }
    }
    if p.get("SignatureVersion").is_some_and(|v| *v != "1.0") {
        return Err(RpcError::new(StatusCode::BAD_REQUEST, "IncompleteSignature", "SignatureVersion must be 1.0"));
    }
    let stamp = *p.get("Timestamp").ok_or_else(|| missing("Timestamp"))?;
    let at: Timestamp = stamp.parse().map_err(|_| {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Format",
            "Timestamp must be ISO 8601 in UTC: yyyy-MM-ddTHH:mm:ssZ",
        )
    })?;
    if (state.app.now().as_second() - at.as_second()).abs() > TIMESTAMP_WINDOW_SECS {
        return Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            "Timestamp is more than 15 minutes away from the server's time",
        ));
    }
    let actor = super::signed_by(state, peer, id, given, |secret| signature(method.as_str(), params, secret))
        .await
        .map_err(|refused| match refused {
            SignedRefusal::Blocked(e) => e.into(),
            SignedRefusal::UnknownKey(why) => RpcError::new(StatusCode::NOT_FOUND, "InvalidAccessKeyId.NotFound", why),
            SignedRefusal::BadSignature => RpcError::signature(
                "the request signature does not conform to the platform's signature standard: compare the string to sign",
            ),
            SignedRefusal::Failed(e) => RpcError::from_app(e),
        })?;
    if let Some(nonce) = p.get("SignatureNonce")
        && !state.nonces.first_use(id, nonce, state.app.now().as_second())
    {
        return Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "the SignatureNonce was used already",
        ));
    }
    Ok(Caller::admit(state, actor, reads)?)
}

async fn act(state: &AppState, req: Request) -> Result<Value, RpcError> {
    let peer = req.extensions().get::<crate::conn::PeerAddr>().map(|p| p.0.ip());
    let (method, params) = parameters(state, req).await?;
    let mut p: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in &params {
        if p.insert(k.as_str(), v.as_str()).is_some() {
            return Err(RpcError::illegal(format!("{k} is given twice")));
        }
    }
    let action = p.get("Action").copied().unwrap_or("");
    let allowed: &[&str] = match action {
        "CreateOTAStaticUpgradeJob" => CREATE,
        "QueryOTAJob" => &["JobId"],
        "CancelOTATaskByJob" => CANCEL,
        "" => return Err(RpcError::new(StatusCode::BAD_REQUEST, "MissingParameter", "Action is mandatory")),
        other => {
            return Err(RpcError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction.NotFound",
                format!("{other} is not one of CreateOTAStaticUpgradeJob, QueryOTAJob, CancelOTATaskByJob"),
            ));
        }
    };
    let caller = authenticate(state, peer, &method, &p, &params, action == "QueryOTAJob").await?;
    let unknown: Vec<&str> = p
        .keys()
        .copied()
        .filter(|k| {
            !COMMON.contains(k)
                && !allowed.contains(k)
                && !(action == "CreateOTAStaticUpgradeJob"
                    && (indexed(k, "SrcVersion") || indexed(k, "TargetDeviceName")))
        })
        .collect();
    if !unknown.is_empty() {
        return Err(RpcError::illegal(format!("unknown parameters: {}", unknown.join(", "))));
    }
    if p.get("Format").is_some_and(|f| !f.eq_ignore_ascii_case("json")) {
        return Err(RpcError::illegal("Format: only JSON is answered"));
    }
    match action {
        "CreateOTAStaticUpgradeJob" => create(state, &caller, &p).await,
        "QueryOTAJob" => {
            let id = *p.get("JobId").ok_or_else(|| RpcError::illegal("JobId is mandatory"))?;
            let report = state.app.job_report(&caller.actor, id).await.map_err(job_error)?;
            Ok(job_out(&report))
        }
        _ => {
            let id = *p.get("JobId").ok_or_else(|| RpcError::illegal("JobId is mandatory"))?;
            state.app.command_job(&caller.actor, id, JobCommand::Cancel).await.map_err(job_error)?;
            Ok(Value::Null)
        }
    }
}

fn job_error(e: updraft_app::Error) -> RpcError {
    match e.code {
        ErrorCode::NotFound => RpcError::new(StatusCode::NOT_FOUND, "iot.ota.JobNotExist", e.message),
        _ => RpcError::from_app(e),
    }
}

/// Whether `k` is `name.N` with N a positive integer.
fn indexed(k: &str, name: &str) -> bool {
    k.strip_prefix(name).and_then(|r| r.strip_prefix('.')).is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1))
}

/// The values of `name.1`, `name.2`, … in the order of N.
fn repeated(p: &BTreeMap<&str, &str>, name: &str) -> Vec<String> {
    let mut found: Vec<(u32, String)> = p
        .iter()
        .filter(|(k, _)| indexed(k, name))
        .map(|(k, v)| (k[name.len() + 1..].parse().unwrap_or(0), (*v).to_owned()))
        .collect();
    found.sort();
    found.into_iter().map(|(_, v)| v).collect()
}

fn boolean(p: &BTreeMap<&str, &str>, name: &str, problems: &mut Vec<String>) -> Option<bool> {
    let v = p.get(name)?;
    match v.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            problems.push(format!("{name}: `{v}` is not true or false"));
            None
        }
    }
}

fn integer(p: &BTreeMap<&str, &str>, name: &str, problems: &mut Vec<String>) -> Option<u32> {
    let v = p.get(name)?;
    match v.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            problems.push(format!("{name}: `{v}` is not an integer"));
            None
        }
    }
}

/// Reads `CreateOTAStaticUpgradeJob`'s parameters into the management API's job.
pub fn job_in(p: &BTreeMap<&str, &str>) -> Result<(JobIn, String), RpcError> {
    let mut problems = Vec::new();
    let firmware = match (p.get("FirmwareID"), p.get("FirmwareId")) {
        (Some(a), Some(b)) if a != b => {
            problems.push("FirmwareID and FirmwareId name different firmware".to_owned());
            String::new()
        }
        (Some(f), _) | (None, Some(f)) => (*f).to_owned(),
        (None, None) => {
            problems.push("FirmwareID is mandatory".to_owned());
            String::new()
        }
    };
    let product = p.get("ProductKey").map(|s| (*s).to_owned()).unwrap_or_else(|| {
        problems.push("ProductKey is mandatory".to_owned());
        String::new()
    });
    let selection = p.get("TargetSelection").map(|s| s.to_ascii_lowercase());
    let devices = repeated(p, "TargetDeviceName");
    let gray = p.get("GrayPercent");
    // The seed's table spells it `GroupID`, the platform's SDKs `GroupId`.
    let group = match (p.get("GroupID"), p.get("GroupId")) {
        (Some(a), Some(b)) if a != b => {
            problems.push("GroupID and GroupId name different groups".to_owned());
            None
        }
        (Some(g), _) | (None, Some(g)) => Some(g),
        (None, None) => None,
    };
    let mut job = JobIn { firmware, source_versions: repeated(p, "SrcVersion"), start: Some(true), ..JobIn::default() };
    match selection.as_deref() {
        Some("all") => job.all = true,
        Some("specific") => {
            if devices.is_empty() {
                problems.push("TargetDeviceName.N is mandatory with TargetSelection Specific".into());
            }
            job.devices = devices.clone();
        }
        Some("gray") => {
            job.all = true;
            match gray.map(|g| g.parse::<u8>()) {
                None => problems.push("GrayPercent is mandatory with TargetSelection Gray".into()),
                Some(Ok(g @ 1..=100)) => job.gray_percent = Some(g),
                Some(_) => {
                    problems.push(format!("GrayPercent: `{}` is not an integer from 1 to 100", gray.unwrap_or(&"")))
                }
            }
        }
        Some("group") => match group {
            None => problems.push("GroupID is mandatory with TargetSelection Group".into()),
            Some(g) => job.groups = vec![(*g).to_owned()],
        },
        Some(_) => problems.push(format!(
            "TargetSelection: `{}` is not All, Specific, Gray or Group",
            p.get("TargetSelection").unwrap_or(&"")
        )),
        None => problems.push("TargetSelection is mandatory".into()),
    }
    if selection.as_deref() != Some("specific") && !devices.is_empty() {
        problems.push("TargetDeviceName.N goes with TargetSelection Specific only".into());
    }
    if selection.as_deref() != Some("gray") && gray.is_some() {
        problems.push("GrayPercent goes with TargetSelection Gray only".into());
    }
    if selection.as_deref() != Some("group") && group.is_some() {
        problems.push("GroupID goes with TargetSelection Group only".into());
    }
    let interval = integer(p, "RetryInterval", &mut problems);
    let count = integer(p, "RetryCount", &mut problems);
    if let Some(i) = interval
        && !RETRY_INTERVALS.contains(&i)
    {
        problems.push(format!("RetryInterval: {i} is not one of 0, 10, 30, 60, 1440"));
    }
    if let Some(c) = count
        && !RETRY_COUNTS.contains(&c)
    {
        problems.push(format!("RetryCount: {c} is not one of 1, 2, 5"));
    }
    match (interval, count) {
        (Some(_), None) if !p.contains_key("RetryCount") => {
            problems.push("RetryCount is mandatory with RetryInterval".into())
        }
        (None, Some(_)) if !p.contains_key("RetryInterval") => {
            problems.push("RetryCount goes with RetryInterval".into())
        }
        (Some(i), Some(c)) => job.retry = Some(RetryIn { count: Some(c), interval_minutes: Some(i) }),
        _ => {}
    }
    match integer(p, "TimeoutInMinutes", &mut problems) {
        Some(m @ 1..=1440) => job.timeout_seconds = Some(m * 60),
        Some(m) => problems.push(format!("TimeoutInMinutes: {m} is not from 1 to 1440")),
        None => {}
    }
    let push = boolean(p, "NeedPush", &mut problems).unwrap_or(true);
    job.push = Some(push);
    // Without a push, the device asks for its task.
    job.allow_device_request = !push;
    job.consent_required = boolean(p, "NeedConfirm", &mut problems).unwrap_or(false);
    if let Some(d) = p.get("DownloadProtocol")
        && !d.eq_ignore_ascii_case("https")
    {
        problems.push(format!("DownloadProtocol: `{d}` is not HTTPS"));
    }
    if !problems.is_empty() {
        return Err(RpcError::illegal(problems.join("; ")));
    }
    Ok((job, product))
}

async fn create(state: &AppState, caller: &Caller, p: &BTreeMap<&str, &str>) -> Result<Value, RpcError> {
    let (job, product) = job_in(p)?;
    let firmware = state.app.get_firmware(&caller.actor, &job.firmware).await.map_err(|e| match e.code {
        ErrorCode::NotFound => RpcError::new(StatusCode::NOT_FOUND, "iot.ota.FirmwareNotExist", e.message),
        _ => RpcError::from_app(e),
    })?;
    if firmware.product != product {
        return Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            "iot.ota.FirmwareProductMismatch",
            format!("firmware `{}` is of product `{}`, not `{product}`", firmware.id, firmware.product),
        ));
    }
    let draft = crate::api::jobs::draft(job)?;
    let report = state.app.create_job(&caller.actor, draft).await.map_err(RpcError::from_app)?;
    tracing::info!(job = %report.job.id, door = "aliyun", "job created through a compatibility door");
    Ok(json!({"JobId": report.job.id, "UtcCreate": utc(report.job.created_at)}))
}

/// `2024-11-11T11:21:54.607Z`: milliseconds, UTC.
fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A job as `QueryOTAJob` shows it, in the create call's terms.
fn job_out(report: &updraft_app::jobs::JobReport) -> Value {
    let job = &report.job;
    let t = &job.spec.target;
    let selection = if !t.devices.is_empty() {
        "SPECIFIC"
    } else if !t.groups.is_empty() {
        "GROUP"
    } else if t.gray_percent.is_some() {
        "GRAY"
    } else {
        "ALL"
    };
    let status = match job.state {
        JobState::Created | JobState::Scheduled => "PLANNED",
        JobState::Running | JobState::Paused => "IN_PROGRESS",
        JobState::Completed | JobState::Aborted => "COMPLETED",
        JobState::Canceled => "CANCELED",
    };
    let retry = job.spec.retry;
    json!({
        "JobId": job.id,
        "JobType": "UPGRADE_FIRMWARE",
        "JobStatus": status,
        "SelectionType": "STATIC",
        "TargetSelection": selection,
        "FirmwareId": job.firmware,
        "ProductKey": job.product,
        "SrcVersions": t.source_versions,
        "GrayPercent": t.gray_percent.map(|g| g.to_string()),
        "GroupId": t.groups.first(),
        "TargetDeviceNames": t.devices,
        "RetryInterval": (retry.count > 0).then_some(retry.interval_minutes),
        "RetryCount": (retry.count > 0).then_some(retry.count),
        "TimeoutInMinutes": job.spec.timeout_seconds.map(|s| s / 60),
        "NeedPush": job.spec.push,
        "NeedConfirm": job.consent_required,
        "UtcCreate": utc(job.created_at),
        "UtcStartTime": job.started_at.map(utc),
        "UtcEndTime": job.finished_at.map(utc),
        "Statistics": report.counts.iter().map(|(s, n)| (s.as_str().to_owned(), *n)).collect::<BTreeMap<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    }

    /// The platform's published example of signature version 1.0 (its ECS
    /// `DescribeRegions` call with access key `testid` and secret `testsecret`).
    #[test]
    fn signs_as_the_published_example() {
        let p = params(
            "Timestamp=2016-02-23T12:46:24Z&Format=XML&AccessKeyId=testid&Action=DescribeRegions\
             &SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             &Version=2014-05-26&SignatureVersion=1.0",
        );
        assert_eq!(
            string_to_sign("GET", &p),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1\
             %26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0\
             %26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(signature("GET", &p, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    }

    #[test]
    fn encodes_as_rfc_3986_with_tilde_unescaped() {
        assert_eq!(percent_encode("a b*c~d+e/é"), "a%20b%2Ac~d%2Be%2F%C3%A9");
    }

    #[test]
    fn reads_repeated_parameters_in_order() {
        let p = BTreeMap::from([
            ("SrcVersion.10", "c"),
            ("SrcVersion.2", "b"),
            ("SrcVersion.1", "a"),
            ("SrcVersion.x", "no"),
        ]);
        assert_eq!(repeated(&p, "SrcVersion"), ["a", "b", "c"]);
    }
}
