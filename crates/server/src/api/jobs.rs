//! Jobs: deliver one firmware image to devices, and follow each device's
//! execution. This is the job resource in its first form (one image to a
//! list of named devices, running once created); the jobs engine extends
//! this same endpoint and record.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::job::{EventSource, Execution, ExecutionEvent, ExecutionState, Job, JobKind, JobState, on_consent};
use updraft_core::{Access, Version, validate};
use updraft_store::{ExecutionScope, sortable};
use utoipa::ToSchema;

use super::{ListParams, PageOut, non_empty};
use crate::auth::{Caller, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// The most devices a job may name.
pub const MAX_JOB_DEVICES: usize = 100_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobIn {
    /// `[A-Za-z0-9_-]{1,128}`; generated when absent.
    pub id: Option<String>,
    pub name: Option<String>,
    /// At most 2028 characters.
    pub description: Option<String>,
    /// The firmware image to deliver.
    pub firmware: String,
    /// The devices to deliver it to (of the image's product).
    pub devices: Vec<String>,
    /// The end user must approve (through the API or the device) before a device gets it.
    #[serde(default)]
    pub consent_required: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobOut {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = String)]
    pub kind: JobKind,
    pub firmware: String,
    pub product: String,
    #[schema(value_type = String)]
    pub state: JobState,
    pub consent_required: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// Executions per state (only on a single job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<String, u64>>,
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
            consent_required: j.consent_required,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            counts,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionOut {
    /// The device API's action id.
    pub action_id: i64,
    pub job: String,
    pub device: String,
    pub firmware: String,
    #[schema(value_type = String)]
    pub state: ExecutionState,
    pub attempt: u32,
    pub cancel_requested: bool,
    #[schema(value_type = Option<Object>)]
    pub progress: Option<updraft_core::job::Progress>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The full history, oldest first (on a device's executions).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub history: Option<Vec<ExecutionEvent>>,
}

impl ExecutionOut {
    fn new(e: Execution, history: Option<Vec<ExecutionEvent>>) -> Self {
        ExecutionOut {
            action_id: e.action_id,
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

#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = JobIn,
    responses((status = 201, body = JobOut), (status = 409, description = "the id is taken")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<JobIn>,
) -> ApiResult<(StatusCode, Json<JobOut>)> {
    caller.require(Access::WriteFleet)?;
    let mut errors = Vec::new();
    let id = input.id.unwrap_or_else(|| new_id("job_"));
    validate::key("id", &id, &mut errors);
    let name = non_empty(input.name);
    if let Some(n) = &name {
        validate::text("name", n, 256, &mut errors);
    }
    let description = non_empty(input.description);
    if let Some(d) = &description {
        validate::long_text("description", d, validate::MAX_DESCRIPTION, &mut errors);
    }
    if input.devices.is_empty() {
        errors.push(updraft_core::FieldError::new("devices", "name at least one device"));
    }
    if input.devices.len() > MAX_JOB_DEVICES {
        errors.push(updraft_core::FieldError::new("devices", format!("at most {MAX_JOB_DEVICES} devices")));
    }
    let mut devices = input.devices.clone();
    devices.sort();
    devices.dedup();
    if devices.len() != input.devices.len() {
        errors.push(updraft_core::FieldError::new("devices", "a device is named twice"));
    }
    let Some(firmware) = state.store.get_firmware(caller.tenant(), &input.firmware).await? else {
        errors.push(updraft_core::FieldError::new("firmware", format!("firmware `{}` not found", input.firmware)));
        return Err(ApiError::invalid(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    // Devices of another product are never targeted; devices already on the image's versions are skipped.
    let found: std::collections::HashMap<String, updraft_core::Device> =
        state.store.get_devices(caller.tenant(), &devices).await?.into_iter().map(|d| (d.id.clone(), d)).collect();
    let mut targets = Vec::with_capacity(devices.len());
    for id in &devices {
        let Some(d) = found.get(id) else {
            errors.push(updraft_core::FieldError::new(format!("devices.{id}"), format!("device `{id}` not found")));
            continue;
        };
        if d.product != firmware.product {
            errors.push(updraft_core::FieldError::new(
                format!("devices.{id}"),
                format!("device `{id}` is a `{}`, the image is for `{}`", d.product, firmware.product),
            ));
            continue;
        }
        let up_to_date = firmware
            .files
            .iter()
            .all(|f| d.firmware.get(&f.component).is_some_and(|v| Version::new(v) == Version::new(&f.version)));
        let initial = if up_to_date {
            ExecutionState::Skipped
        } else if input.consent_required {
            ExecutionState::AwaitingConsent
        } else {
            ExecutionState::Queued
        };
        targets.push((id.clone(), initial));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let now = state.now();
    let all_skipped = targets.iter().all(|(_, s)| *s == ExecutionState::Skipped);
    let job = Job {
        id,
        name,
        description,
        kind: JobKind::Upgrade,
        firmware: firmware.id.clone(),
        product: firmware.product.clone(),
        state: if all_skipped { JobState::Completed } else { JobState::Running },
        consent_required: input.consent_required,
        created_at: now,
        started_at: Some(now),
        finished_at: if all_skipped { Some(now) } else { None },
    };
    state.store.create_job(caller.tenant(), &job, &targets, now).await?;
    state.poll_cache.forget_tenant(caller.tenant());
    tracing::info!(job = %job.id, firmware = %job.firmware, devices = targets.len(), "job created");
    let counts = counts(&state, caller.tenant(), &job.id).await?;
    Ok((StatusCode::CREATED, Json(JobOut::new(job, Some(counts)))))
}

async fn counts(state: &AppState, tenant: &str, job: &str) -> ApiResult<BTreeMap<String, u64>> {
    Ok(state.store.execution_counts(tenant, job).await?.into_iter().map(|(s, n)| (s.as_str().to_owned(), n)).collect())
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(ListParams), responses((status = 200, body = PageOut<JobOut>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<PageOut<JobOut>>> {
    caller.require(Access::Read)?;
    let req = params.page(sortable::JOBS)?;
    let page = state.store.list_jobs(caller.tenant(), &req).await?;
    Ok(Json(PageOut::from_page(page, &req, |j| JobOut::new(j, None))))
}

async fn load(state: &AppState, tenant: &str, id: &str) -> ApiResult<Job> {
    state.store.get_job(tenant, id).await?.ok_or_else(|| ApiError::not_found("job", id))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", responses((status = 200, body = JobOut)))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<JobOut>> {
    caller.require(Access::Read)?;
    let job = load(&state, caller.tenant(), &id).await?;
    let counts = counts(&state, caller.tenant(), &id).await?;
    Ok(Json(JobOut::new(job, Some(counts))))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    responses((status = 200, body = JobOut), (status = 409, description = "the job has ended")))]
pub async fn cancel(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<JobOut>> {
    caller.require(Access::WriteFleet)?;
    let job = state.store.cancel_job(caller.tenant(), &id, state.now()).await?;
    state.poll_cache.forget_tenant(caller.tenant());
    tracing::info!(job = %id, "job canceled");
    let counts = counts(&state, caller.tenant(), &id).await?;
    Ok(Json(JobOut::new(job, Some(counts))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExecutionListParams {
    pub limit: Option<u32>,
    pub offset: Option<u64>,
    /// `action_id` (default), `device`, `state`, `updated_at`; `-` for descending.
    pub sort: Option<String>,
    /// Text in the device id.
    pub search: Option<String>,
    /// Only executions in this state.
    pub state: Option<String>,
}

impl ExecutionListParams {
    fn split(self) -> ApiResult<(updraft_core::PageRequest, Option<ExecutionState>)> {
        let state = match self.state.as_deref() {
            None => None,
            Some(s) => Some(ExecutionState::parse(s).ok_or_else(|| {
                let all: Vec<_> = ExecutionState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::field("state", format!("unknown state `{s}`; states: {}", all.join(", ")))
            })?),
        };
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
    Path(id): Path<String>,
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
    Path(device): Path<String>,
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
    pub decision: String,
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/executions/{job}/consent", tag = "jobs", request_body = ConsentIn,
    responses((status = 200, body = ExecutionOut), (status = 409, description = "the execution is not awaiting consent")))]
pub async fn consent(
    State(state): State<AppState>,
    caller: Caller,
    Path((device, job)): Path<(String, String)>,
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
