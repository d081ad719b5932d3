//! updraft's extension to the device API: a device asks for a job itself.
//! Jobs with `allow_device_request` (and those not pushed at all) keep a
//! device's execution queued until the device asks for it here; the ask
//! releases it at once if the job is running and its pace allows (a free slot
//! under `max_concurrency`, and the rate's share of this second not spent:
//! `updraft_core::rollout::release_budget`, as for the scheduler's releases).
//!
//! - `GET  {base}/updraft/jobs` — the jobs this device may ask for;
//! - `POST {base}/updraft/jobs/{job}` — ask: answers the `deploymentBase`
//!   link to follow, as a poll would; 409 when the device is busy with
//!   another execution, 503 when the job's pace allows none now (retry later).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use updraft_core::PageRequest;
use updraft_core::job::{ExecutionState, Job, JobState};
use updraft_core::rollout::{PaceStats, release_budget};
use updraft_store::ExecutionScope;

use super::{DdiDevice, DdiError, DdiResult, etag_param};
use crate::extract::DdiPath;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct RequestableJob {
    pub job: String,
    pub name: Option<String>,
    pub firmware: String,
    /// The device API's action id the job has for this device.
    pub action: i64,
}

async fn requestable_jobs(
    state: &AppState,
    dev: &DdiDevice,
) -> DdiResult<Vec<(RequestableJob, updraft_core::job::Execution)>> {
    let scope = ExecutionScope { job: None, device: Some(dev.id.clone()), state: Some(ExecutionState::Queued) };
    let page = state
        .store
        .list_executions(&dev.tenant, &scope, &PageRequest { sort: "action_id".into(), ..PageRequest::all() })
        .await?;
    let mut out = Vec::new();
    for e in page.items {
        let Some(job) = state.store.get_job(&dev.tenant, &e.job).await? else { continue };
        if job.spec.allow_device_request && job.state == JobState::Running {
            out.push((
                RequestableJob { job: job.id, name: job.name, firmware: job.firmware, action: e.public_id() },
                e,
            ));
        }
    }
    Ok(out)
}

/// `GET {base}/updraft/jobs`.
pub async fn list(State(state): State<AppState>, dev: DdiDevice) -> DdiResult<Json<Vec<RequestableJob>>> {
    Ok(Json(requestable_jobs(&state, &dev).await?.into_iter().map(|(j, _)| j).collect()))
}

/// `POST {base}/updraft/jobs/{job}`.
pub async fn request(
    State(state): State<AppState>,
    dev: DdiDevice,
    DdiPath(params): DdiPath<std::collections::HashMap<String, String>>,
) -> DdiResult<Json<serde_json::Value>> {
    let wanted = params.get("job").cloned().unwrap_or_default();
    let Some((_, e)) = requestable_jobs(&state, &dev).await?.into_iter().find(|(j, _)| j.job == wanted) else {
        return Err(DdiError::NotFound(format!("no job {wanted} this device may ask for")));
    };
    let now = state.now();
    // The pace and the device's other executions are checked in the release's own
    // transaction, so concurrent asks (and the scheduler) cannot both pass.
    let budget = |j: &Job, stats: &PaceStats| {
        if j.state == JobState::Running && j.spec.allow_device_request {
            release_budget(&j.spec.pace, stats)
        } else {
            0
        }
    };
    let released = state.store.release_executions(&dev.tenant, &e.job, Some(&dev.id), &budget, now).await?;
    let Some(released) = released.executions.into_iter().next() else {
        if state.store.device_actions(&dev.tenant, &dev.id).await?.active.is_some_and(|a| a.state.is_in_progress()) {
            return Err(DdiError::Conflict("the device is working on another action".into()));
        }
        if released.allowed == 0 {
            return Err(DdiError::Unavailable);
        }
        return Err(DdiError::NotFound(format!("action {} is no longer queued", e.public_id())));
    };
    tracing::info!(job = %e.job, device = %dev.id, "device asked for its job");
    let job = state.store.get_job(&dev.tenant, &e.job).await?.ok_or_else(|| DdiError::NotFound(e.job.clone()))?;
    let href = format!(
        "{}/deploymentBase/{}?c={}",
        dev.base_url,
        released.public_id(),
        etag_param(&released, job.spec.delivery(now).window_open)
    );
    Ok(Json(serde_json::json!({"id": released.public_id().to_string(), "_links": {"deploymentBase": {"href": href}}})))
}
