//! Jobs: deliver one firmware image to the devices a job selects, at the
//! pace and in the windows it says, and follow each device's execution. The
//! scheduler (`updraft_app::scheduler`) carries jobs out; these handlers create,
//! command and show them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use updraft_api::jobs::{
    ConsentIn, EstimateOut, ExecutionListParams, ExecutionOut, ForceIn, ForceParams, GateWaitOut, JobIn, JobListParams,
    JobOut, PhaseOut, ProgressOut, ScheduleIn, WaitingOut,
};
use updraft_app::sortable;
use updraft_core::FieldError;
use updraft_core::job::{ExecutionState, JobCommand, JobState};
use updraft_core::rollout::{DEFAULT_MAX_CONCURRENCY, JobSpec, Pace, Retry, Targeting};

use super::{ListParams, PageOut, non_empty};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::state::AppState;
use updraft_app::jobs::{JobDraft, JobReport};

/// The most devices a job may name.
pub const MAX_JOB_DEVICES: usize = 100_000;

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
    let report = state.app.create_job(&caller.actor, draft(input)?).await?;
    Ok((StatusCode::CREATED, Json(described(report))))
}

/// Reads a job as the wire gives it into the application's draft (the
/// dashboard's wizard builds the same [`JobIn`]).
pub fn draft(input: JobIn) -> ApiResult<JobDraft> {
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
            allow_downgrade: input.allow_downgrade,
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
        phases: input.phases,
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
    Ok(draft)
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
        phase: report.phase.map(|p| PhaseOut {
            index: p.index,
            name: p.name,
            of: p.of,
            counts: p.counts.into(),
            waiting_for: p.waiting_for.iter().map(GateWaitOut::from).collect(),
            state: report.job.phase.clone(),
        }),
    };
    let counts = report.counts.into_iter().map(|(s, c)| (s.as_str().to_owned(), c)).collect();
    let mut out = JobOut::new(report.job, Some(counts));
    out.progress = Some(progress);
    out
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

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(ForceParams),
    request_body(content = Option<ForceIn>, description = "optional: `{\"force\": true}` as `?force=true`"),
    responses((status = 200, body = JobOut), (status = 409, description = "the job has ended (a forced cancel ends what a finished job still waits for)")))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ForceParams>,
    OptionalJson(body): OptionalJson<ForceIn>,
) -> ApiResult<Json<JobOut>> {
    if params.force.unwrap_or(false) || body.force {
        return Ok(Json(described(state.app.force_cancel_job(&caller.actor, &id).await?)));
    }
    command(&state, &caller, &id, JobCommand::Cancel).await
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/phases/next", tag = "jobs",
    request_body(content = Option<ForceIn>, description = "optional: `{\"force\": true}` opens the next phase whatever the gate waits for"),
    responses((status = 200, body = JobOut), (status = 409, description = "the job has ended, has no phases, or is in its last phase")))]
pub async fn next_phase(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ForceIn>,
) -> ApiResult<Json<JobOut>> {
    Ok(Json(described(state.app.next_phase(&caller.actor, &id, body.force).await?)))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry-failed", tag = "jobs",
    responses((status = 200, body = JobOut), (status = 409, description = "the job is not completed or aborted, or nothing failed")))]
pub async fn retry_failed(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobOut>> {
    Ok(Json(described(state.app.retry_failed(&caller.actor, &id).await?)))
}

#[utoipa::path(put, path = "/api/v1/jobs/{id}/schedule", tag = "jobs",
    request_body(content = inline(updraft_api::schemas::ScheduleBody), description = "the new schedule; `null` removes it"),
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

/// An executions list's page and state.
fn split(p: ExecutionListParams) -> ApiResult<(updraft_core::PageRequest, Option<ExecutionState>)> {
    let state = state_param(p.state.as_deref(), ExecutionState::parse, ExecutionState::ALL.iter().map(|s| s.as_str()))?;
    let req =
        ListParams { limit: p.limit, offset: p.offset, sort: p.sort, search: p.search }.page(sortable::EXECUTIONS)?;
    Ok((req, state))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/executions", tag = "jobs", params(ExecutionListParams),
    responses((status = 200, body = PageOut<ExecutionOut>)))]
pub async fn executions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExecutionListParams>,
) -> ApiResult<Json<PageOut<ExecutionOut>>> {
    let (req, filter) = split(params)?;
    let page = state.app.job_executions(&caller.actor, &id, filter, &req).await?;
    Ok(Json(PageOut::from_page(page, &req, |(e, waiting)| {
        let mut out = ExecutionOut::new(e, None);
        out.waiting = waiting.as_ref().map(WaitingOut::from);
        out
    })))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/executions", tag = "jobs", params(ExecutionListParams),
    responses((status = 200, body = PageOut<ExecutionOut>, description = "the device's executions across jobs, each with its full history")))]
pub async fn device_executions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(device): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExecutionListParams>,
) -> ApiResult<Json<PageOut<ExecutionOut>>> {
    let (req, filter) = split(params)?;
    let page = state.app.device_executions(&caller.actor, &device, filter, &req).await?;
    let items = page
        .items
        .into_iter()
        .map(|(e, history, waiting)| {
            let mut out = ExecutionOut::new(e, Some(history));
            out.waiting = waiting.as_ref().map(WaitingOut::from);
            out
        })
        .collect();
    Ok(Json(PageOut { items, total: page.total, limit: req.limit, offset: req.offset }))
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
