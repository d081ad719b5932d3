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
use updraft_app::executions::Asked;

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
    let jobs = state.app.requestable_jobs(&dev.actor).await?;
    Ok(jobs
        .into_iter()
        .map(|(job, e)| {
            (RequestableJob { job: job.id, name: job.name, firmware: job.firmware, action: e.public_id() }, e)
        })
        .collect())
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
    let (released, job) = match state.app.ask_for_job(&dev.actor, &e).await? {
        Asked::Released { execution, job } => (execution, job),
        Asked::Busy => return Err(DdiError::Conflict("the device is working on another action".into())),
        Asked::NoRoom => return Err(DdiError::Unavailable),
        Asked::Gone => return Err(DdiError::NotFound(format!("action {} is no longer queued", e.public_id()))),
    };
    let now = state.now();
    let href = format!(
        "{}/deploymentBase/{}?c={}",
        dev.base_url,
        released.public_id(),
        etag_param(&released, job.spec.delivery(now).window_open)
    );
    Ok(Json(serde_json::json!({"id": released.public_id().to_string(), "_links": {"deploymentBase": {"href": href}}})))
}
