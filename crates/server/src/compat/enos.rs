//! EnOS's OTA job API (seed 001) under `/compat/enos/connect-service/v2.1/ota-jobs`:
//! `action=create` (a job that waits for `action=start`, as EnOS's does),
//! `action=get`, `action=start` and `action=stop`, with `orgId` naming the
//! caller's tenant. The caller authenticates with an API key (`Authorization:
//! Bearer`), as on the management API. Answers are `{code, msg, requestId,
//! data}`; errors carry the seed's codes (24404, 24610, 24611, 24612) and
//! EnOS's start/stop codes (24615, 24616), the rest `99xxx` by kind (see
//! docs/compat.md).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use updraft_api::jobs::{JobIn, RetryIn, ScheduleIn};
use updraft_app::jobs::JobReport;
use updraft_core::job::{Job, JobCommand, JobKind};
use updraft_core::rollout::{DEFAULT_MAX_CONCURRENCY, MAX_VERIFY_DEVICES, Recurrence};

use crate::auth::Caller;
use crate::error::{ErrorCode, HttpStatus, Kind};
use crate::extract::{InputError, Part, Rejection};
use crate::state::AppState;

/// `upgradeTimeout`'s bounds and default, in seconds.
const MIN_TIMEOUT: i64 = 300;
const MAX_TIMEOUT: i64 = 172_800;
const DEFAULT_TIMEOUT: u32 = 7_200;

/// The query of every action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtaJobParams {
    pub action: Option<String>,
    pub org_id: Option<String>,
    pub firmware_id: Option<String>,
    pub job_id: Option<String>,
}

/// `action=create`'s body (seed 001: an upgrade or a verification task).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtaJobIn {
    pub name: Option<StringI18n>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub upgrade_scope: Option<UpgradeScope>,
    pub upgrade_policy: Option<String>,
    pub enable_upgrade_request: Option<bool>,
    pub upgrade_timeout: Option<i64>,
    pub retry_policy: Option<RetryPolicy>,
    pub schedule_policy: Option<SchedulePolicy>,
    /// The seed's sample gives the daily window at the top level too.
    pub start_schedule: Option<i64>,
    pub end_schedule: Option<i64>,
    pub maximum_concurrency: Option<i64>,
}

/// EnOS's internationalized name.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StringI18n {
    pub default_value: Option<String>,
    #[serde(default)]
    pub i18n_value: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpgradeScope {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub version_numbers: Vec<String>,
    #[serde(default)]
    pub device_keys: Vec<String>,
}

/// Retries of failed tasks: how many, and minutes between them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryPolicy {
    pub retry_times: Option<i64>,
    pub retry_interval: Option<i64>,
}

/// When the job runs: start and end (epoch milliseconds), and a daily window
/// in seconds of the day (`startSchedule` included, `endSchedule` the last second), in `timezone`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SchedulePolicy {
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub start_schedule: Option<i64>,
    pub end_schedule: Option<i64>,
    pub timezone: Option<String>,
}

/// An error in EnOS's shape: its code and message, with the HTTP status of its kind.
#[derive(Debug)]
pub struct EnosError {
    pub status: StatusCode,
    pub code: u32,
    pub msg: String,
    pub retry_after: Option<u64>,
}

impl EnosError {
    fn new(status: StatusCode, code: u32, msg: impl Into<String>) -> Self {
        EnosError { status, code, msg: msg.into(), retry_after: None }
    }

    fn invalid(msg: impl Into<String>) -> Self {
        EnosError::new(StatusCode::BAD_REQUEST, 99400, msg)
    }

    fn job_not_found() -> Self {
        EnosError::new(StatusCode::NOT_FOUND, 24404, "Job not found")
    }

    /// The app's error, by its kind (the codes the seed names are picked by the caller first).
    fn from_app(e: updraft_app::Error) -> Self {
        let code = match e.code.kind() {
            Kind::BadRequest | Kind::Unprocessable => 99400,
            Kind::Unauthenticated => 99401,
            Kind::Forbidden => 99403,
            Kind::NotFound => 99404,
            Kind::NotSupported => 99405,
            Kind::Conflict => 99409,
            Kind::TooLarge => 99413,
            Kind::UnsupportedFormat => 99415,
            Kind::RateLimited => 99429,
            Kind::Internal => 99500,
            Kind::Unavailable => 99503,
        };
        EnosError { status: e.code.status(), code, msg: e.message, retry_after: e.retry_after }
    }

    fn answer(self, request_id: &str) -> Response {
        let body = json!({"code": self.code, "msg": self.msg, "requestId": request_id, "data": null});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        response
    }
}

impl IntoResponse for EnosError {
    fn into_response(self) -> Response {
        self.answer("")
    }
}

impl Rejection for EnosError {
    fn unreadable(part: Part, error: InputError) -> Self {
        EnosError::invalid(error.describe(part))
    }
    fn too_large() -> Self {
        EnosError::from_app(updraft_app::Error::of(ErrorCode::PayloadTooLarge))
    }
    fn unsupported_media_type(expected: &str) -> Self {
        EnosError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, 99415, format!("expected `Content-Type: {expected}`"))
    }
    fn nul(field: &str) -> Self {
        EnosError::invalid(format!("`{field}` must not contain NUL characters"))
    }
}

impl From<crate::error::ApiError> for EnosError {
    fn from(e: crate::error::ApiError) -> Self {
        EnosError::from_app(e.0)
    }
}

/// Every action of `/connect-service/v2.1/ota-jobs`, by its `action` parameter.
pub async fn ota_jobs(State(state): State<AppState>, req: Request) -> Response {
    let request_id = super::request_id(req.headers());
    match act(&state, req).await {
        Ok(data) => Json(json!({"code": 0, "msg": "OK", "requestId": request_id, "data": data})).into_response(),
        Err(e) => e.answer(&request_id),
    }
}

async fn act(state: &AppState, req: Request) -> Result<Value, EnosError> {
    let (parts, body) = req.into_parts();
    let params: OtaJobParams = crate::extract::from_query(parts.uri.query().unwrap_or(""))
        .map_err(|e| EnosError::unreadable(Part::Query, e))?;
    // `get` reads, by whichever method it comes.
    let caller = Caller::bearer(&parts, state, params.action.as_deref() == Some("get")).await?;
    let org = params.org_id.as_deref().ok_or_else(|| EnosError::invalid("orgId is required"))?;
    if !org.eq_ignore_ascii_case(caller.tenant()) {
        return Err(EnosError::new(
            StatusCode::FORBIDDEN,
            99403,
            format!("orgId `{org}` is not the organization of this key"),
        ));
    }
    let job_id = || params.job_id.as_deref().ok_or_else(|| EnosError::invalid("jobId is required"));
    match params.action.as_deref() {
        Some("create") => {
            let firmware = params.firmware_id.as_deref().ok_or_else(|| EnosError::invalid("firmwareId is required"))?;
            let req = Request::from_parts(parts, body);
            let bytes = crate::extract::body_bytes::<EnosError, _>(req, state).await?;
            let input: OtaJobIn =
                crate::extract::from_json(&bytes).map_err(|e| EnosError::unreadable(Part::Body, e))?;
            let draft = crate::api::jobs::draft(job_in(firmware, input)?)?;
            let report = state.app.create_job(&caller.actor, draft).await.map_err(created_error)?;
            tracing::info!(job = %report.job.id, door = "enos", "job created through a compatibility door");
            Ok(json!({"jobId": report.job.id}))
        }
        Some("get") => {
            let report = state.app.job_report(&caller.actor, job_id()?).await.map_err(job_error)?;
            Ok(job_out(&report))
        }
        Some("start") => {
            let id = job_id()?;
            state.app.command_job(&caller.actor, id, JobCommand::Start).await.map_err(|e| match e.code {
                ErrorCode::JobState => EnosError::new(StatusCode::CONFLICT, 24615, "Job has started"),
                _ => job_error(e),
            })?;
            Ok(Value::Null)
        }
        Some("stop") => {
            let id = job_id()?;
            state.app.command_job(&caller.actor, id, JobCommand::Cancel).await.map_err(|e| match e.code {
                ErrorCode::JobState => EnosError::new(StatusCode::CONFLICT, 24616, "Job has stopped"),
                _ => job_error(e),
            })?;
            Ok(Value::Null)
        }
        Some(other) => Err(EnosError::invalid(format!("action `{other}` is not one of create, get, start, stop"))),
        None => Err(EnosError::invalid("action is required: create, get, start or stop")),
    }
}

/// A job's errors: an unknown job is EnOS's 24404.
fn job_error(e: updraft_app::Error) -> EnosError {
    match e.code {
        ErrorCode::NotFound => EnosError::job_not_found(),
        _ => EnosError::from_app(e),
    }
}

/// Creation's errors: the seed's codes for an unknown firmware and an unverified one.
fn created_error(e: updraft_app::Error) -> EnosError {
    let names_firmware =
        e.details.as_ref().and_then(Value::as_array).is_some_and(|d| d.iter().any(|f| f["field"] == "firmware"));
    match e.code {
        ErrorCode::NotFound if names_firmware => EnosError::new(StatusCode::NOT_FOUND, 24404, "Firmware not found"),
        ErrorCode::FirmwareNotVerified => EnosError::new(
            StatusCode::CONFLICT,
            24610,
            "Not allowed to create job as firmware is not verified while enable verification is switched on",
        ),
        _ => EnosError::from_app(e),
    }
}

/// Reads the body into the management API's job, checking what EnOS checks
/// (every broken rule together, as 99400, unless one of the seed's own codes applies).
pub fn job_in(firmware: &str, input: OtaJobIn) -> Result<JobIn, EnosError> {
    let mut problems: Vec<String> = Vec::new();
    let kind = match input.kind.as_deref() {
        Some("upgrade") => JobKind::Upgrade,
        Some("verify") => JobKind::Verify,
        Some(other) => {
            problems.push(format!("type: `{other}` is not upgrade or verify"));
            JobKind::Upgrade
        }
        None => {
            problems.push("type is required: upgrade or verify".into());
            JobKind::Upgrade
        }
    };
    let scope = input.upgrade_scope.unwrap_or_else(|| {
        problems.push("upgradeScope is required".into());
        UpgradeScope::default()
    });
    let total = match scope.kind.as_deref() {
        Some("total") => true,
        Some("partial") => false,
        Some(other) => {
            problems.push(format!("upgradeScope.type: `{other}` is not partial or total"));
            false
        }
        None => {
            problems.push("upgradeScope.type is required: partial or total".into());
            false
        }
    };
    if kind == JobKind::Verify {
        if total {
            return Err(
                EnosError::invalid("upgradeScope type total is not allowed for verification task").with_code(24611)
            );
        }
        if scope.device_keys.len() > MAX_VERIFY_DEVICES {
            return Err(EnosError::invalid(format!("Exceeded max verification deviceKeys, max[{MAX_VERIFY_DEVICES}]"))
                .with_code(24612));
        }
        if scope.device_keys.is_empty() {
            problems.push("upgradeScope.deviceKeys: a verification task names its devices".into());
        }
    } else if scope.kind.as_deref() == Some("partial")
        && scope.device_keys.is_empty()
        && scope.version_numbers.is_empty()
    {
        problems.push("upgradeScope: a partial scope names deviceKeys or versionNumbers".into());
    }
    if total && !scope.device_keys.is_empty() {
        problems.push("upgradeScope.deviceKeys: a total scope names no devices".into());
    }
    let recurrence = match (kind, input.upgrade_policy.as_deref()) {
        (_, Some("snapshot")) => Recurrence::Snapshot,
        (_, Some("incremental")) => Recurrence::Continuous,
        (_, Some(other)) => {
            problems.push(format!("upgradePolicy: `{other}` is not snapshot or incremental"));
            Recurrence::Snapshot
        }
        (JobKind::Verify, None) => Recurrence::Snapshot,
        (JobKind::Upgrade, None) => {
            problems.push("upgradePolicy is required: snapshot or incremental".into());
            Recurrence::Snapshot
        }
    };
    if kind == JobKind::Upgrade && input.enable_upgrade_request.is_none() {
        problems.push("enableUpgradeRequest is required".into());
    }
    let timeout = match input.upgrade_timeout {
        None => DEFAULT_TIMEOUT,
        Some(t @ MIN_TIMEOUT..=MAX_TIMEOUT) => t as u32,
        Some(t) => {
            problems.push(format!("upgradeTimeout: {t} is not from {MIN_TIMEOUT} to {MAX_TIMEOUT} seconds"));
            DEFAULT_TIMEOUT
        }
    };
    let max_concurrency = match input.maximum_concurrency {
        None => DEFAULT_MAX_CONCURRENCY,
        Some(n) if n >= 1 && n <= i64::from(u32::MAX) => n as u32,
        Some(n) => {
            problems.push(format!("maximumConcurrency: {n} must be at least 1"));
            DEFAULT_MAX_CONCURRENCY
        }
    };
    let retry = input.retry_policy.map(|r| RetryIn {
        count: non_negative("retryPolicy.retryTimes", r.retry_times, &mut problems),
        interval_minutes: non_negative("retryPolicy.retryInterval", r.retry_interval, &mut problems),
    });
    let schedule = schedule(input.schedule_policy, input.start_schedule, input.end_schedule, &mut problems);
    let name = input.name.unwrap_or_default();
    if !problems.is_empty() {
        return Err(EnosError::invalid(problems.join("; ")));
    }
    Ok(JobIn {
        name: name.default_value,
        translations: name.i18n_value,
        kind: Some(kind),
        firmware: firmware.to_owned(),
        all: total || scope.device_keys.is_empty(),
        devices: scope.device_keys,
        source_versions: scope.version_numbers,
        recurrence: Some(recurrence),
        push: Some(true),
        allow_device_request: input.enable_upgrade_request.unwrap_or(false),
        max_concurrency: Some(max_concurrency),
        schedule,
        retry,
        timeout_seconds: Some(timeout),
        start: Some(false),
        ..JobIn::default()
    })
}

impl EnosError {
    fn with_code(mut self, code: u32) -> Self {
        self.code = code;
        self
    }
}

fn non_negative(field: &str, value: Option<i64>, problems: &mut Vec<String>) -> Option<u32> {
    match value {
        None => None,
        Some(v) => match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                problems.push(format!("{field}: {v} is not a non-negative integer"));
                None
            }
        },
    }
}

/// The schedule policy as the management API's schedule; none (EnOS's default:
/// at once, every day from 00:00:00 to 23:59:59) when nothing is given.
fn schedule(
    policy: Option<SchedulePolicy>,
    start_schedule: Option<i64>,
    end_schedule: Option<i64>,
    problems: &mut Vec<String>,
) -> Option<ScheduleIn> {
    let policy = policy.unwrap_or_default();
    let from = policy.start_schedule.or(start_schedule);
    let to = policy.end_schedule.or(end_schedule);
    let mut second = |field: &str, v: Option<i64>| match v {
        None => None,
        Some(s @ 0..=86_399) => Some(s as u32),
        Some(s) => {
            problems.push(format!("{field}: {s} is not a second of the day (0 to 86399)"));
            None
        }
    };
    let (from, to) = (second("startSchedule", from), second("endSchedule", to));
    let mut instant = |field: &str, v: Option<i64>| match v {
        None => None,
        Some(ms) => match jiff::Timestamp::from_millisecond(ms) {
            Ok(t) => Some(t),
            Err(_) => {
                problems.push(format!("schedulePolicy.{field}: {ms} is not an instant in epoch milliseconds"));
                None
            }
        },
    };
    let (start, end) = (instant("startTime", policy.start_time), instant("endTime", policy.end_time));
    // EnOS's `endSchedule` is the window's last second; the schedule's `to` is excluded.
    let (from, to) = match (from, to) {
        (None, None) => (None, None),
        (Some(a), Some(b)) => (Some(a), Some((b + 1) % 86_400)),
        _ => {
            problems.push("startSchedule and endSchedule go together".into());
            (None, None)
        }
    };
    if start.is_none() && end.is_none() && from.is_none() && policy.timezone.is_none() {
        return None;
    }
    Some(ScheduleIn {
        start,
        end,
        timezone: policy.timezone,
        start_schedule: from,
        end_schedule: to,
        ..ScheduleIn::default()
    })
}

/// A job as `action=get` shows it, in the create body's terms.
fn job_out(report: &JobReport) -> Value {
    let job: &Job = &report.job;
    let spec = &job.spec;
    let kind = match job.kind {
        JobKind::Upgrade => "upgrade",
        JobKind::Verify => "verify",
    };
    let window = spec.schedule.as_ref().and_then(|s| s.window);
    let seconds =
        |t: jiff::civil::Time| i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second());
    let schedule = spec.schedule.as_ref().map(|s| {
        json!({
            "startTime": s.start.map(|t| t.as_millisecond()),
            "endTime": s.end.map(|t| t.as_millisecond()),
            "startSchedule": window.map(|w| seconds(w.from)),
            "endSchedule": window.map(|w| (seconds(w.to) + 86_399) % 86_400),
            "timezone": s.timezone,
        })
    });
    json!({
        "jobId": job.id,
        "name": {"defaultValue": job.name, "i18nValue": spec.translations},
        "type": kind,
        "firmwareId": job.firmware,
        "upgradeScope": {
            "type": if spec.target.devices.is_empty() && spec.target.source_versions.is_empty() { "total" } else { "partial" },
            "versionNumbers": spec.target.source_versions,
            "deviceKeys": spec.target.devices,
        },
        "upgradePolicy": match spec.recurrence { Recurrence::Snapshot => "snapshot", Recurrence::Continuous => "incremental" },
        "enableUpgradeRequest": spec.allow_device_request,
        "upgradeTimeout": spec.timeout_seconds,
        "retryPolicy": {"retryTimes": spec.retry.count, "retryInterval": spec.retry.interval_minutes},
        "schedulePolicy": schedule,
        "maximumConcurrency": spec.pace.max_concurrency,
        "status": job.state.as_str(),
        "createTime": job.created_at.as_millisecond(),
        "startTime": job.started_at.map(|t| t.as_millisecond()),
        "finishTime": job.finished_at.map(|t| t.as_millisecond()),
        "statistics": report.counts.iter().map(|(s, n)| (s.as_str().to_owned(), *n)).collect::<BTreeMap<_, _>>(),
    })
}
