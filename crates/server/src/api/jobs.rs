//! Jobs: deliver one firmware image to the devices a job selects, at the
//! pace and in the windows it says, and follow each device's execution. The
//! scheduler (`updraft_app::scheduler`) carries jobs out; these handlers create,
//! command and show them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_app::sortable;
use updraft_core::FieldError;
use updraft_core::job::{Execution, ExecutionEvent, ExecutionState, Job, JobCommand, JobKind, JobState};
use updraft_core::rollout::{
    AbortRule, DEFAULT_MAX_CONCURRENCY, Handling, JobSpec, Pace, Ramp, Recurrence, Retry, Targeting,
};
use updraft_core::schedule::{DailyWindow, Schedule};
use utoipa::ToSchema;

use super::{ListParams, PageOut, non_empty};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use updraft_app::jobs::{JobDraft, JobReport};

/// The most devices a job may name.
pub const MAX_JOB_DEVICES: usize = 100_000;

/// A job as created: identity, what, which devices, how, how fast, when.
/// Every field but `firmware` and a scope (`all`, `devices`, `groups`,
/// `filter`, `filter_id` or `include`) is optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobIn {
    /// `[A-Za-z0-9_-]{1,128}`; generated when absent.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub id: Option<String>,
    pub name: Option<String>,
    /// The name in other languages, by language tag.
    #[serde(default)]
    pub translations: BTreeMap<String, String>,
    /// At most 2028 characters.
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Passed through to devices and integrations as given.
    #[serde(default)]
    #[schema(schema_with = super::schemas::additional_params)]
    pub additional_params: BTreeMap<String, serde_json::Value>,
    /// `upgrade` (default) or `verify` (named devices only, at most 50).
    #[schema(schema_with = super::schemas::job_kind_or_null)]
    pub kind: Option<JobKind>,
    /// The firmware image to deliver (one image of one or more components).
    pub firmware: String,
    /// Every device of the image's product.
    #[serde(default)]
    pub all: bool,
    /// Named devices (of the image's product).
    #[serde(default)]
    pub devices: Vec<String>,
    /// Devices in these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// An inline filter: the text form, or the JSON form.
    #[serde(default, deserialize_with = "super::filters::present")]
    #[schema(schema_with = super::schemas::filter_in)]
    pub filter: Option<serde_json::Value>,
    /// A saved filter; a continuous job follows its edits.
    pub filter_id: Option<String>,
    /// 1–100: only this share of the scope, chosen by a stable hash of job id and device id.
    #[schema(minimum = 1, maximum = 100)]
    pub gray_percent: Option<u8>,
    /// Upgrade only devices now on one of these versions (default: any).
    #[serde(default)]
    pub source_versions: Vec<String>,
    /// Devices to add although they are not in the scope.
    #[serde(default)]
    pub include: Vec<String>,
    /// Devices never to target.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `snapshot` (default) or `continuous`.
    #[schema(schema_with = super::schemas::recurrence_or_null)]
    pub recurrence: Option<Recurrence>,
    /// Offer the job to devices on their next contact (default true).
    pub push: Option<bool>,
    /// Devices may ask for the job themselves (default false).
    #[serde(default)]
    pub allow_device_request: bool,
    /// The end user must approve (through the API or the device) before a device gets it.
    #[serde(default)]
    pub consent_required: bool,
    /// Executions in progress at once (default 300).
    #[schema(minimum = 1)]
    pub max_concurrency: Option<u32>,
    /// Executions started per minute at most.
    #[schema(minimum = 1)]
    pub max_per_minute: Option<u32>,
    #[schema(schema_with = super::schemas::ramp)]
    pub ramp: Option<Ramp>,
    #[serde(default)]
    #[schema(schema_with = super::schemas::abort_rules)]
    pub abort: Vec<AbortRule>,
    #[schema(schema_with = super::schemas::schedule_in)]
    pub schedule: Option<ScheduleIn>,
    #[schema(schema_with = super::schemas::retry)]
    pub retry: Option<RetryIn>,
    /// 60–172800; absent or `null`: no limit.
    #[schema(schema_with = super::schemas::timeout_seconds)]
    pub timeout_seconds: Option<u32>,
    /// Start now (default true); `false` creates it to start later.
    pub start: Option<bool>,
    /// `forced` (default), `soft` or `download_only`: what devices are told to do (hawkBit's action type).
    #[schema(schema_with = super::schemas::handling_or_null)]
    pub handling: Option<Handling>,
    /// When devices may install (they download at any time): `{"timezone", "days", "window": {"from", "to"}}`.
    #[schema(schema_with = super::schemas::schedule_in)]
    pub maintenance_window: Option<ScheduleIn>,
}

/// Retries: `count` (1–10) and `interval_minutes` (default 0: at once); an interval without a count is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryIn {
    pub count: Option<u32>,
    pub interval_minutes: Option<u32>,
}

/// A schedule: the core's form, or seed 001's seconds of day (`startSchedule`, `endSchedule`)
/// (its schema is `ScheduleIn` in `schemas.rs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleIn {
    #[serde(default)]
    pub start: Option<Timestamp>,
    #[serde(default)]
    pub end: Option<Timestamp>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub days: Option<serde_json::Value>,
    #[serde(default)]
    pub window: Option<serde_json::Value>,
    #[serde(default, rename = "startSchedule")]
    pub start_schedule: Option<u32>,
    #[serde(default, rename = "endSchedule")]
    pub end_schedule: Option<u32>,
}

impl ScheduleIn {
    fn into_schedule(self, errors: &mut Vec<FieldError>) -> Option<Schedule> {
        let mut json = serde_json::json!({
            "start": self.start, "end": self.end,
            "timezone": self.timezone.unwrap_or_else(|| "UTC".into()),
        });
        if let Some(d) = self.days {
            json["days"] = d;
        }
        match (self.window, self.start_schedule, self.end_schedule) {
            (Some(w), None, None) => json["window"] = w,
            (None, Some(a), Some(b)) => match DailyWindow::from_seconds(a, b) {
                Some(w) => json["window"] = serde_json::to_value(w).expect("a window serializes"),
                None => errors.push(FieldError::new("schedule.startSchedule", "seconds of the day: 0 to 86399")),
            },
            (None, None, None) => {}
            _ => errors.push(FieldError::new(
                "schedule.window",
                "give a window, or both startSchedule and endSchedule (seconds of the day)",
            )),
        }
        match serde_json::from_value::<Schedule>(json) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(FieldError::new("schedule", e.to_string()));
                None
            }
        }
    }

    /// The same shape as a maintenance window, its errors named after that field.
    fn into_maintenance_window(self, errors: &mut Vec<FieldError>) -> Option<Schedule> {
        let mut own = Vec::new();
        let window = self.into_schedule(&mut own);
        errors.extend(own.into_iter().map(|mut e| {
            e.field = e.field.replacen("schedule", "maintenance_window", 1);
            e
        }));
        window
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobOut {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(schema_with = super::schemas::job_kind)]
    pub kind: JobKind,
    pub firmware: String,
    pub product: String,
    #[schema(schema_with = super::schemas::job_state)]
    pub state: JobState,
    /// Paused by an operator (the schedule does not resume it).
    pub held: bool,
    pub consent_required: bool,
    /// Targeting, recurrence, delivery, pace, schedule, retry, timeout and bookkeeping, as given.
    #[serde(flatten)]
    pub spec: JobSpecOut,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// Executions per state (only on a single job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<String, u64>>,
    /// Progress figures (only on a single job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressOut>,
}

/// The spec in the request's flat shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobSpecOut {
    all: bool,
    devices: Vec<String>,
    groups: Vec<String>,
    filter: Option<String>,
    filter_id: Option<String>,
    gray_percent: Option<u8>,
    source_versions: Vec<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    #[schema(schema_with = super::schemas::recurrence)]
    recurrence: Recurrence,
    push: bool,
    allow_device_request: bool,
    max_concurrency: u32,
    max_per_minute: Option<u32>,
    #[schema(schema_with = super::schemas::ramp)]
    ramp: Option<Ramp>,
    #[schema(schema_with = super::schemas::abort_rules)]
    abort: Vec<AbortRule>,
    #[schema(schema_with = super::schemas::schedule)]
    schedule: Option<Schedule>,
    #[schema(schema_with = super::schemas::retry_out)]
    retry: Retry,
    timeout_seconds: Option<u32>,
    translations: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
    #[schema(schema_with = super::schemas::additional_params)]
    additional_params: BTreeMap<String, serde_json::Value>,
    #[schema(schema_with = super::schemas::handling)]
    handling: Handling,
    #[schema(schema_with = super::schemas::schedule)]
    maintenance_window: Option<Schedule>,
}

impl From<JobSpec> for JobSpecOut {
    fn from(s: JobSpec) -> Self {
        let t = s.target;
        JobSpecOut {
            all: t.all,
            devices: t.devices,
            groups: t.groups,
            filter: t.filter,
            filter_id: t.filter_id,
            gray_percent: t.gray_percent,
            source_versions: t.source_versions,
            include: t.include,
            exclude: t.exclude,
            recurrence: s.recurrence,
            push: s.push,
            allow_device_request: s.allow_device_request,
            max_concurrency: s.pace.max_concurrency,
            max_per_minute: s.pace.max_per_minute,
            ramp: s.pace.ramp,
            abort: s.pace.abort,
            schedule: s.schedule,
            retry: s.retry,
            timeout_seconds: s.timeout_seconds,
            translations: s.translations,
            metadata: s.metadata,
            additional_params: s.additional_params,
            handling: s.handling,
            maintenance_window: s.maintenance_window,
        }
    }
}

/// How far a job is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressOut {
    pub total: u64,
    /// Succeeded, failed, timed out, rejected, canceled or skipped.
    pub finished: u64,
    /// Succeeded among those that ended with a verdict (not skipped or canceled), in percent.
    pub success_rate: Option<f64>,
    pub failure_rate: Option<f64>,
    pub in_progress: u64,
    /// Executions released in the last minute.
    pub current_rate_per_minute: u64,
    /// The rate the pace allows now (`null`: unlimited).
    pub allowed_rate_per_minute: Option<u64>,
    /// When the executions not yet finished should be, at the current rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub eta: Option<Timestamp>,
}

impl JobOut {
    fn new(j: Job, counts: Option<BTreeMap<String, u64>>) -> Self {
        JobOut {
            id: j.id,
            name: j.name,
            description: j.description,
            kind: j.kind,
            firmware: j.firmware,
            product: j.product,
            state: j.state,
            held: j.held,
            consent_required: j.consent_required,
            spec: j.spec.into(),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            counts,
            progress: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionOut {
    /// The device API's action id: unique in the tenant, below 2^31, new with each retry (see `attempt`).
    pub action_id: i64,
    pub job: String,
    pub device: String,
    pub firmware: String,
    #[schema(schema_with = super::schemas::execution_state)]
    pub state: ExecutionState,
    pub attempt: u32,
    pub cancel_requested: bool,
    #[schema(schema_with = super::schemas::progress)]
    pub progress: Option<updraft_core::job::Progress>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The full history, oldest first (on a device's executions).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schemas::history)]
    pub history: Option<Vec<ExecutionEvent>>,
}

impl ExecutionOut {
    fn new(e: Execution, history: Option<Vec<ExecutionEvent>>) -> Self {
        ExecutionOut {
            action_id: e.public_id(),
            job: e.job,
            device: e.device,
            firmware: e.firmware,
            state: e.state,
            attempt: e.attempt,
            cancel_requested: e.cancel_requested,
            progress: e.progress,
            created_at: e.created_at,
            updated_at: e.updated_at,
            finished_at: e.finished_at,
            history,
        }
    }
}

fn dedup(field: &str, list: &[String], errors: &mut Vec<FieldError>) {
    let mut sorted = list.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != list.len() {
        errors.push(FieldError::new(field, "a value is named twice"));
    }
    if list.len() > MAX_JOB_DEVICES {
        errors.push(FieldError::new(field, format!("at most {MAX_JOB_DEVICES}")));
    }
}

#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = JobIn,
    responses((status = 201, body = JobOut), (status = 409, description = "the id is taken, or the firmware needs verification")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<JobIn>,
) -> ApiResult<(StatusCode, Json<JobOut>)> {
    let mut problems = Vec::new();
    for (field, list) in [
        ("devices", &input.devices),
        ("groups", &input.groups),
        ("include", &input.include),
        ("exclude", &input.exclude),
        ("source_versions", &input.source_versions),
    ] {
        dedup(field, list, &mut problems);
    }
    let filter = match input.filter {
        None => None,
        Some(serde_json::Value::String(text)) => Some(super::filters::parse_query("filter", &text)?),
        Some(json) => Some(super::filters::parse_json("filter", json)?),
    };
    let schedule = input.schedule.and_then(|s| s.into_schedule(&mut problems));
    let spec = JobSpec {
        target: Targeting {
            all: input.all,
            devices: input.devices,
            groups: input.groups,
            filter: filter.map(|f| f.to_text()),
            filter_id: input.filter_id,
            gray_percent: input.gray_percent,
            source_versions: input.source_versions,
            include: input.include,
            exclude: input.exclude,
        },
        recurrence: input.recurrence.unwrap_or_default(),
        push: input.push.unwrap_or(true),
        allow_device_request: input.allow_device_request,
        pace: Pace {
            max_concurrency: input.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY),
            max_per_minute: input.max_per_minute,
            ramp: input.ramp,
            abort: input.abort,
        },
        schedule,
        retry: input.retry.map(|r| Retry::given(r.count, r.interval_minutes, &mut problems)).unwrap_or_default(),
        timeout_seconds: input.timeout_seconds,
        translations: input.translations,
        metadata: input.metadata,
        additional_params: input.additional_params,
        handling: input.handling.unwrap_or_default(),
        maintenance_window: input.maintenance_window.and_then(|w| w.into_maintenance_window(&mut problems)),
        phases: Vec::new(),
    };
    let draft = JobDraft {
        id: input.id,
        name: non_empty(input.name),
        description: non_empty(input.description),
        kind: input.kind.unwrap_or_default(),
        firmware: input.firmware,
        spec,
        consent_required: input.consent_required,
        start: input.start.unwrap_or(true),
        problems,
    };
    let report = state.app.create_job(&caller.actor, draft).await?;
    Ok((StatusCode::CREATED, Json(described(report))))
}

/// A job with its counts and progress figures, on the wire.
fn described(report: JobReport) -> JobOut {
    let p = report.progress;
    let progress = ProgressOut {
        total: p.total,
        finished: p.finished,
        success_rate: p.success_rate,
        failure_rate: p.failure_rate,
        in_progress: p.in_progress,
        current_rate_per_minute: p.current_rate_per_minute,
        allowed_rate_per_minute: p.allowed_rate_per_minute,
        eta: p.eta,
    };
    let counts = report.counts.into_iter().map(|(s, c)| (s.as_str().to_owned(), c)).collect();
    let mut out = JobOut::new(report.job, Some(counts));
    out.progress = Some(progress);
    out
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobListParams {
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    #[param(maximum = 9223372036854775807_u64)]
    pub offset: Option<u64>,
    /// `created_at` (default), `id`, `name`, `state`, `started_at`, `finished_at`; `-` for descending.
    pub sort: Option<String>,
    /// Text in the id, name, description or firmware.
    #[param(max_length = 256)]
    pub search: Option<String>,
    /// Only jobs in this state.
    pub state: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobListParams), responses((status = 200, body = PageOut<JobOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<JobListParams>,
) -> ApiResult<Json<PageOut<JobOut>>> {
    let filter = state_param(params.state.as_deref(), JobState::parse, JobState::ALL.iter().map(|s| s.as_str()))?;
    let req = ListParams { limit: params.limit, offset: params.offset, sort: params.sort, search: params.search }
        .page(sortable::JOBS)?;
    let page = state.app.list_jobs(&caller.actor, filter, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, |j| JobOut::new(j, None))))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", responses((status = 200, body = JobOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobOut>> {
    Ok(Json(described(state.app.job_report(&caller.actor, &id).await?)))
}

/// Applies an operator's command to a job.
async fn command(state: &AppState, caller: &Caller, id: &str, cmd: JobCommand) -> ApiResult<Json<JobOut>> {
    Ok(Json(described(state.app.command_job(&caller.actor, id, cmd).await?)))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/start", tag = "jobs",
    responses((status = 200, body = JobOut), (status = 409, description = "the job was started already")))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobOut>> {
    command(&state, &caller, &id, JobCommand::Start).await
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/pause", tag = "jobs",
    responses((status = 200, body = JobOut), (status = 409, description = "the job is not running")))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobOut>> {
    command(&state, &caller, &id, JobCommand::Pause).await
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/resume", tag = "jobs",
    responses((status = 200, body = JobOut), (status = 409, description = "the job is not paused by an operator")))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobOut>> {
    command(&state, &caller, &id, JobCommand::Resume).await
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    responses((status = 200, body = JobOut), (status = 409, description = "the job has ended")))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobOut>> {
    command(&state, &caller, &id, JobCommand::Cancel).await
}

#[utoipa::path(put, path = "/api/v1/jobs/{id}/schedule", tag = "jobs",
    request_body(content = inline(super::schemas::ScheduleBody), description = "the new schedule; `null` removes it"),
    responses((status = 200, body = JobOut), (status = 409, description = "the job has ended")))]
pub async fn set_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<Option<ScheduleIn>>,
) -> ApiResult<Json<JobOut>> {
    let mut problems = Vec::new();
    let schedule = input.and_then(|s| s.into_schedule(&mut problems));
    Ok(Json(described(state.app.set_job_schedule(&caller.actor, &id, schedule, problems).await?)))
}

/// How many devices a job would select if it started now.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JobEstimateOut)]
pub struct EstimateOut {
    /// Devices that would get an execution (queued or awaiting consent).
    pub count: u64,
    /// Devices already on the target version (counted as skipped).
    pub skipped: u64,
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/targets/estimate", tag = "jobs",
    responses((status = 200, body = EstimateOut)))]
pub async fn estimate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EstimateOut>> {
    let estimate = state.app.estimate_job(&caller.actor, &id).await?;
    Ok(Json(EstimateOut { count: estimate.count, skipped: estimate.skipped }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExecutionListParams {
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    #[param(maximum = 9223372036854775807_u64)]
    pub offset: Option<u64>,
    /// `action_id` (default), `device`, `state`, `updated_at`; `-` for descending.
    pub sort: Option<String>,
    /// Text in the device id.
    #[param(max_length = 256)]
    pub search: Option<String>,
    /// Only executions in this state.
    pub state: Option<String>,
}

/// The `state` query parameter of a list: `None` when absent, 400 naming the states when unknown.
fn state_param<'a, T>(
    given: Option<&str>,
    parse: fn(&str) -> Option<T>,
    names: impl Iterator<Item = &'a str>,
) -> ApiResult<Option<T>> {
    let Some(s) = given else { return Ok(None) };
    parse(s).map(Some).ok_or_else(|| {
        let all: Vec<&str> = names.collect();
        ApiError::field("state", format!("unknown state `{s}`; states: {}", all.join(", ")))
    })
}

impl ExecutionListParams {
    fn split(self) -> ApiResult<(updraft_core::PageRequest, Option<ExecutionState>)> {
        let state =
            state_param(self.state.as_deref(), ExecutionState::parse, ExecutionState::ALL.iter().map(|s| s.as_str()))?;
        let req = ListParams { limit: self.limit, offset: self.offset, sort: self.sort, search: self.search }
            .page(sortable::EXECUTIONS)?;
        Ok((req, state))
    }
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/executions", tag = "jobs", params(ExecutionListParams),
    responses((status = 200, body = PageOut<ExecutionOut>)))]
pub async fn executions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExecutionListParams>,
) -> ApiResult<Json<PageOut<ExecutionOut>>> {
    let (req, filter) = params.split()?;
    let page = state.app.job_executions(&caller.actor, &id, filter, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, |(e, _waiting)| ExecutionOut::new(e, None))))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/executions", tag = "jobs", params(ExecutionListParams),
    responses((status = 200, body = PageOut<ExecutionOut>, description = "the device's executions across jobs, each with its full history")))]
pub async fn device_executions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(device): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExecutionListParams>,
) -> ApiResult<Json<PageOut<ExecutionOut>>> {
    let (req, filter) = params.split()?;
    let page = state.app.device_executions(&caller.actor, &device, filter, &req).await?;
    let items = page.items.into_iter().map(|(e, history)| ExecutionOut::new(e, Some(history))).collect();
    Ok(Json(PageOut { items, total: page.total, limit: req.limit, offset: req.offset }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    /// `approve` or `deny`.
    #[schema(schema_with = super::schemas::decision)]
    pub decision: String,
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/executions/{job}/consent", tag = "jobs", request_body = ConsentIn,
    responses((status = 200, body = ExecutionOut), (status = 409, description = "the execution is not awaiting consent")))]
pub async fn consent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((device, job)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<ConsentIn>,
) -> ApiResult<Json<ExecutionOut>> {
    let approve = match input.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => return Err(ApiError::field("decision", format!("`{other}` is neither approve nor deny"))),
    };
    let changed = state.app.give_consent(&caller.actor, &device, &job, approve).await?;
    Ok(Json(ExecutionOut::new(changed, None)))
}
