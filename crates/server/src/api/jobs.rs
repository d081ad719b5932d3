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
use updraft_core::job::{
    EventSource, Execution, ExecutionEvent, ExecutionState, Job, JobCommand, JobKind, JobState, on_consent,
};
use updraft_core::rollout::{
    AbortRule, DEFAULT_MAX_CONCURRENCY, Handling, JobSpec, MAX_VERIFY_DEVICES, Pace, Ramp, Recurrence, Retry,
    Targeting, current_rate,
};
use updraft_core::schedule::{DailyWindow, Schedule};
use updraft_core::{Access, FieldError, validate};
use updraft_store::{ExecutionScope, sortable};
use utoipa::ToSchema;

use super::{ListParams, PageOut, non_empty};
use crate::auth::{Caller, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use updraft_app::targeting;

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

/// Checks that each named device exists (else it is `missing`) and is of `product`
/// (when the product is known).
async fn check_named(
    state: &AppState,
    tenant: &str,
    field: &str,
    ids: &[String],
    product: Option<&str>,
    errors: &mut Vec<FieldError>,
    missing: &mut Vec<FieldError>,
) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found: std::collections::HashMap<String, updraft_core::Device> =
        state.store.get_devices(tenant, ids).await?.into_iter().map(|d| (d.id.clone(), d)).collect();
    for id in ids {
        match found.get(id) {
            None => missing.push(FieldError::new(format!("{field}.{id}"), format!("device `{id}` not found"))),
            Some(d) if product.is_some_and(|product| d.product != product) => errors.push(FieldError::new(
                format!("{field}.{id}"),
                format!("device `{id}` is a `{}`, the image is for `{}`", d.product, product.unwrap_or_default()),
            )),
            _ => {}
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = JobIn,
    responses((status = 201, body = JobOut), (status = 409, description = "the id is taken, or the firmware needs verification")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<JobIn>,
) -> ApiResult<(StatusCode, Json<JobOut>)> {
    caller.require(Access::WriteFleet)?;
    let tenant = caller.tenant();
    let mut errors = Vec::new();
    let id = input.id.unwrap_or_else(|| new_id("job_"));
    validate::key("id", &id, &mut errors);
    let name = non_empty(input.name);
    if let Some(n) = &name {
        validate::text("name", n, 256, &mut errors);
    }
    let description = non_empty(input.description);
    if let Some(d) = &description {
        validate::description("description", d, validate::MAX_DESCRIPTION, &mut errors);
    }
    for (field, list) in [
        ("devices", &input.devices),
        ("groups", &input.groups),
        ("include", &input.include),
        ("exclude", &input.exclude),
        ("source_versions", &input.source_versions),
    ] {
        dedup(field, list, &mut errors);
    }
    let filter = match input.filter {
        None => None,
        Some(serde_json::Value::String(text)) => Some(super::filters::parse_query("filter", &text)?),
        Some(json) => Some(super::filters::parse_json("filter", json)?),
    };
    // References to what does not exist answer 404, once the request is otherwise valid.
    let mut missing = Vec::new();
    if let Some(fid) = &input.filter_id
        && state.store.get_saved_filter(tenant, fid).await?.is_none()
    {
        missing.push(FieldError::new("filter_id", format!("saved filter `{fid}` not found")));
    }
    let kind = input.kind.unwrap_or_default();
    let schedule = input.schedule.and_then(|s| s.into_schedule(&mut errors));
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
        retry: input.retry.map(|r| Retry::given(r.count, r.interval_minutes, &mut errors)).unwrap_or_default(),
        timeout_seconds: input.timeout_seconds,
        translations: input.translations,
        metadata: input.metadata,
        additional_params: input.additional_params,
        handling: input.handling.unwrap_or_default(),
        maintenance_window: input.maintenance_window.and_then(|w| w.into_maintenance_window(&mut errors)),
    };
    spec.validate(&mut errors);
    let t = &spec.target;
    if kind == JobKind::Verify {
        if t.all || !t.groups.is_empty() || t.filter.is_some() || t.filter_id.is_some() || t.gray_percent.is_some() {
            errors.push(FieldError::new("kind", "a verify job names its devices: use `devices` only"));
        }
        if t.devices.is_empty() || t.devices.len() > MAX_VERIFY_DEVICES {
            errors.push(FieldError::new("devices", format!("a verify job names 1 to {MAX_VERIFY_DEVICES} devices")));
        }
        if spec.recurrence == Recurrence::Continuous {
            errors.push(FieldError::new("recurrence", "a verify job is a snapshot"));
        }
    }
    for g in &t.groups {
        if state.store.get_group(tenant, g).await?.is_none() {
            missing.push(FieldError::new(format!("groups.{g}"), format!("group `{g}` not found")));
        }
    }
    let firmware = state.store.get_firmware(tenant, &input.firmware).await?;
    if firmware.is_none() {
        missing.push(FieldError::new("firmware", format!("firmware `{}` not found", input.firmware)));
    }
    let product = firmware.as_ref().map(|f| f.product.as_str());
    check_named(&state, tenant, "devices", &t.devices, product, &mut errors, &mut missing).await?;
    check_named(&state, tenant, "include", &t.include, product, &mut errors, &mut missing).await?;
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let Some(firmware) = firmware.filter(|_| missing.is_empty()) else {
        return Err(ApiError::missing(missing));
    };
    if kind == JobKind::Upgrade && firmware.needs_verification && !firmware.verified {
        return Err(ApiError::new(
            ErrorCode::FirmwareNotVerified,
            format!("firmware `{}` needs verification: run a verify job on it that succeeds first", firmware.id),
        ));
    }
    let now = state.now();
    let mut job = Job {
        id,
        name,
        description,
        kind,
        firmware: firmware.id.clone(),
        product: firmware.product.clone(),
        state: JobState::Created,
        consent_required: input.consent_required,
        created_at: now,
        started_at: None,
        finished_at: None,
        spec,
        held: false,
    };
    let start = input.start.unwrap_or(true);
    let targets = if start {
        job.state = job.scheduled_state(now);
        if job.state == JobState::Running {
            job.started_at = Some(now);
        }
        if job.state.is_finished() {
            job.finished_at = Some(now);
        }
        targeting::resolve(&state, tenant, &job, now).await?
    } else {
        vec![]
    };
    state.store.create_job(tenant, &job, &targets, now).await?;
    state.store.complete_job_if_done(tenant, &job.id, now).await?;
    tracing::info!(job = %job.id, firmware = %job.firmware, devices = targets.len(), "job created");
    let job = load(&state, tenant, &job.id).await?;
    Ok((StatusCode::CREATED, Json(described(&state, tenant, job).await?)))
}

/// A job with its counts and progress figures.
async fn described(state: &AppState, tenant: &str, job: Job) -> ApiResult<JobOut> {
    let now = state.now();
    let by_state: BTreeMap<ExecutionState, u64> =
        state.store.execution_counts(tenant, &job.id).await?.into_iter().collect();
    let stats = state.store.pace_stats(tenant, &job.id, now).await?;
    let n = |s: ExecutionState| by_state.get(&s).copied().unwrap_or(0);
    let total: u64 = by_state.values().sum();
    let finished: u64 = by_state.iter().filter(|(s, _)| s.is_terminal()).map(|(_, c)| c).sum();
    let judged = n(ExecutionState::Succeeded)
        + n(ExecutionState::Failed)
        + n(ExecutionState::TimedOut)
        + n(ExecutionState::Rejected);
    let rate = |x: u64| (judged > 0).then(|| (x as f64) * 100.0 / judged as f64);
    let remaining = total - finished;
    let eta = (stats.released_last_minute > 0 && remaining > 0 && job.state == JobState::Running).then(|| {
        let minutes = remaining as f64 / stats.released_last_minute as f64;
        now + jiff::SignedDuration::from_secs_f64(minutes * 60.0)
    });
    let progress = ProgressOut {
        total,
        finished,
        success_rate: rate(n(ExecutionState::Succeeded)),
        failure_rate: rate(n(ExecutionState::Failed) + n(ExecutionState::TimedOut) + n(ExecutionState::Rejected)),
        in_progress: stats.in_progress,
        current_rate_per_minute: stats.released_last_minute,
        allowed_rate_per_minute: current_rate(&job.spec.pace, &stats),
        eta,
    };
    let counts = by_state.into_iter().map(|(s, c)| (s.as_str().to_owned(), c)).collect();
    let mut out = JobOut::new(job, Some(counts));
    out.progress = Some(progress);
    Ok(out)
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
    caller.require(Access::Read)?;
    let filter = state_param(params.state.as_deref(), JobState::parse, JobState::ALL.iter().map(|s| s.as_str()))?;
    let req = ListParams { limit: params.limit, offset: params.offset, sort: params.sort, search: params.search }
        .page(sortable::JOBS)?;
    let page = state.store.list_jobs(caller.tenant(), filter, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, |j| JobOut::new(j, None))))
}

async fn load(state: &AppState, tenant: &str, id: &str) -> ApiResult<Job> {
    state.store.get_job(tenant, id).await?.ok_or_else(|| ApiError::not_found("job", id))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", responses((status = 200, body = JobOut)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobOut>> {
    caller.require(Access::Read)?;
    let job = load(&state, caller.tenant(), &id).await?;
    Ok(Json(described(&state, caller.tenant(), job).await?))
}

/// Applies an operator's command to a job.
async fn command(state: &AppState, caller: &Caller, id: &str, cmd: JobCommand) -> ApiResult<Json<JobOut>> {
    caller.require(Access::WriteFleet)?;
    let tenant = caller.tenant();
    let now = state.now();
    for _ in 0..5 {
        let job = load(state, tenant, id).await?;
        let (to, held) = job.on_command(cmd, now).map_err(|_| {
            ApiError::new(
                ErrorCode::JobState,
                format!("job `{id}` is {}: it cannot be {cmd:?}d", job.state.as_str()).to_lowercase(),
            )
        })?;
        if cmd == JobCommand::Start {
            let targets = targeting::resolve(state, tenant, &job, now).await?;
            state.store.add_executions(tenant, &job, &targets, now).await?;
        }
        if let Some(moved) = state.store.move_job(tenant, id, job.state, to, held, now).await? {
            if cmd == JobCommand::Start {
                state.store.complete_job_if_done(tenant, id, now).await?;
            }
            tracing::info!(job = %id, command = ?cmd, state = moved.state.as_str(), "job command");
            let job = load(state, tenant, id).await?;
            return Ok(Json(described(state, tenant, job).await?));
        }
    }
    Err(ApiError::new(ErrorCode::JobState, format!("job `{id}` kept changing; try again")))
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
    caller.require(Access::WriteFleet)?;
    let tenant = caller.tenant();
    let mut job = load(&state, tenant, &id).await?;
    if job.state.is_finished() {
        return Err(ApiError::new(ErrorCode::JobState, format!("job `{id}` is {}", job.state.as_str())));
    }
    let mut errors = Vec::new();
    job.spec.schedule = input.and_then(|s| s.into_schedule(&mut errors));
    job.spec.validate(&mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    state.store.update_job_spec(tenant, &id, &job.spec).await?;
    tracing::info!(job = %id, "job schedule changed");
    let job = load(&state, tenant, &id).await?;
    Ok(Json(described(&state, tenant, job).await?))
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
    caller.require(Access::Read)?;
    let job = load(&state, caller.tenant(), &id).await?;
    let targets = targeting::resolve(&state, caller.tenant(), &job, state.now()).await?;
    let skipped = targets.iter().filter(|(_, s)| *s == ExecutionState::Skipped).count() as u64;
    Ok(Json(EstimateOut { count: targets.len() as u64 - skipped, skipped }))
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
    caller.require(Access::Read)?;
    load(&state, caller.tenant(), &id).await?;
    let (req, filter) = params.split()?;
    let scope = ExecutionScope { job: Some(id), device: None, state: filter };
    let page = state.store.list_executions(caller.tenant(), &scope, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, |e| ExecutionOut::new(e, None))))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/executions", tag = "jobs", params(ExecutionListParams),
    responses((status = 200, body = PageOut<ExecutionOut>, description = "the device's executions across jobs, each with its full history")))]
pub async fn device_executions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(device): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExecutionListParams>,
) -> ApiResult<Json<PageOut<ExecutionOut>>> {
    caller.require(Access::Read)?;
    if state.store.get_device(caller.tenant(), &device).await?.is_none() {
        return Err(ApiError::not_found("device", &device));
    }
    let (req, filter) = params.split()?;
    let scope = ExecutionScope { job: None, device: Some(device), state: filter };
    let page = state.store.list_executions(caller.tenant(), &scope, &req).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for e in page.items {
        let history = state.store.execution_history(caller.tenant(), e.action_id).await?;
        items.push(ExecutionOut::new(e, Some(history)));
    }
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
    caller.require(Access::GiveConsent)?;
    let approve = match input.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => return Err(ApiError::field("decision", format!("`{other}` is neither approve nor deny"))),
    };
    let scope = ExecutionScope { job: Some(job.clone()), device: Some(device.clone()), state: None };
    let page = state
        .store
        .list_executions(
            caller.tenant(),
            &scope,
            &updraft_core::PageRequest { sort: "action_id".into(), ..updraft_core::PageRequest::all() },
        )
        .await?;
    let e =
        page.items.into_iter().next().ok_or_else(|| ApiError::not_found("execution", &format!("{job}/{device}")))?;
    let now = state.now();
    let changed = state
        .change_execution(caller.tenant(), &e, &|x| on_consent(x, approve, EventSource::Operator, now).map(Some), now)
        .await?;
    let changed = changed.map_err(|_| {
        ApiError::new(ErrorCode::InUse, format!("the execution is {}, not awaiting consent", e.state.as_str()))
    })?;
    Ok(Json(ExecutionOut::new(changed, None)))
}
