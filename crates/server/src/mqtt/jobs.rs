//! AWS IoT Jobs' requests, answered through the application's device use
//! cases: the same ones hawkBit's device API calls, so a job behaves the same
//! whichever door its devices use. Each request is answered on its
//! `accepted` or `rejected` topic, `clientToken` echoed.

use serde::de::DeserializeOwned;
use updraft_app::Actor;
use updraft_core::job::{DeviceReport, Execution, ExecutionState, ReportKind, TransitionError};
use updraft_iot_jobs::topic::Request;
use updraft_iot_jobs::{
    DescribeRequest, ErrorCode, ExecutionAccepted, GetPendingAccepted, GetPendingRequest, JobExecutionState, Rejected,
    StartNextRequest, Status, StatusDetails, UpdateAccepted, UpdateRequest,
};

use super::Door;
use super::document::{self, Facts};

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A refusal: its code, message and (for a state or version conflict) the execution's state.
pub(super) struct Refusal(pub ErrorCode, pub String, pub Option<JobExecutionState>);

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal(code, message.into(), None)
    }
}

impl From<updraft_app::Error> for Refusal {
    fn from(e: updraft_app::Error) -> Self {
        tracing::warn!(error = %e, "mqtt request failed");
        Refusal::new(ErrorCode::InternalError, "the request could not be handled; try again")
    }
}

/// The client token of a payload, read even when the rest is not valid.
fn client_token(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    Some(v.get("clientToken")?.as_str()?.chars().take(updraft_iot_jobs::MAX_CLIENT_TOKEN).collect())
}

/// A request document; an empty payload reads as `{}`.
fn read<T: DeserializeOwned + Default>(payload: &[u8]) -> Result<T, Refusal> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| Refusal::new(ErrorCode::InvalidJson, format!("the payload is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Refusal::new(ErrorCode::InvalidRequest, "the payload must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| Refusal::new(ErrorCode::InvalidRequest, e.to_string()))
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// `expectedVersion`: a number or, as the embedded-C jobs library sends it, a numeric string.
fn expected_version(v: Option<&serde_json::Value>) -> Result<Option<i64>, Refusal> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Refusal::new(ErrorCode::InvalidRequest, "expectedVersion must be a whole number")),
        Some(v) => updraft_iot_jobs::whole_number(Some(v), "expectedVersion")
            .map_err(|m| Refusal::new(ErrorCode::InvalidRequest, m)),
    }
}

/// `stepTimeoutInMinutes`, 1 to 10,080.
fn step_timeout(v: Option<&serde_json::Value>) -> Result<Option<u32>, Refusal> {
    let minutes = updraft_iot_jobs::whole_number(v, "stepTimeoutInMinutes")
        .map_err(|m| Refusal::new(ErrorCode::InvalidRequest, m))?;
    if let Some(m) = minutes
        && !updraft_iot_jobs::STEP_TIMEOUT_MINUTES.contains(&m)
    {
        return Err(Refusal::new(ErrorCode::InvalidRequest, "stepTimeoutInMinutes must be 1 to 10080"));
    }
    Ok(minutes.map(|m| m as u32))
}

fn details(v: Option<&serde_json::Value>) -> Result<Option<StatusDetails>, Refusal> {
    updraft_iot_jobs::status_details(v).map_err(|m| Refusal::new(ErrorCode::InvalidRequest, m))
}

/// Answers one request of `thing`.
pub async fn handle(door: &Door, thing: &str, request: &Request, payload: &[u8]) -> Outgoing {
    let token = client_token(payload);
    let timestamp = door.state.now().as_second();
    let answer = async {
        if payload.len() > super::MAX_PAYLOAD {
            return Err(Refusal::new(ErrorCode::InvalidRequest, "the payload is too large"));
        }
        let Some(actor) = door.device(thing).await? else {
            return Err(Refusal::new(ErrorCode::ResourceNotFound, format!("thing {thing} not found")));
        };
        // The device API's budget per device, shared by both doors.
        if door.state.ddi_device_limit.enabled()
            && let Actor::Device { tenant, device } = &actor
            && door.state.ddi_device_limit.check(&format!("{tenant}/{device}")).is_err()
        {
            return Err(Refusal::new(
                ErrorCode::RequestThrottled,
                "too many requests from this thing; try again later",
            ));
        }
        door.state.app.device_seen(&actor);
        match request {
            Request::GetPending => get_pending(door, &actor, payload, timestamp).await,
            Request::StartNext => start_next(door, &actor, thing, payload, timestamp).await,
            Request::Describe(job) => describe(door, &actor, thing, job, payload, timestamp).await,
            Request::Update(job) => update(door, &actor, job, payload, timestamp).await,
        }
    };
    match answer.await {
        Ok(mut body) => {
            if let Some(obj) = body.as_object_mut() {
                match &token {
                    Some(t) => obj.insert("clientToken".into(), t.clone().into()),
                    None => obj.remove("clientToken"),
                };
            }
            metrics::counter!(super::MQTT_REQUESTS, "outcome" => "accepted").increment(1);
            Outgoing { topic: request.accepted(thing), payload: json(&body) }
        }
        Err(Refusal(code, message, execution_state)) => {
            metrics::counter!(super::MQTT_REQUESTS, "outcome" => code.as_str()).increment(1);
            tracing::debug!(%thing, code = code.as_str(), %message, "mqtt request rejected");
            let rejected = Rejected { code, message, client_token: token, timestamp, execution_state };
            Outgoing { topic: request.rejected(thing), payload: json(&rejected) }
        }
    }
}

/// The device's current execution, as it sees it: an operator's cancellation
/// is final for an AWS IoT Jobs device (it stops when told `CANCELED`), so a
/// cancellation waiting for the device is closed now that the device asks.
async fn current(door: &Door, actor: &Actor) -> Result<Option<Execution>, Refusal> {
    let actions = door.state.app.device_actions(actor).await?;
    match actions.active {
        Some(e) if e.cancel_requested => {
            acknowledge_cancel(door, actor, &e).await?;
            Ok(None)
        }
        Some(e) if e.state == ExecutionState::Queued => Ok(None),
        other => Ok(other),
    }
}

/// Closes an operator's cancellation the device has been told of (its job is `CANCELED` for it).
pub(super) async fn acknowledge_cancel(door: &Door, actor: &Actor, e: &Execution) -> Result<(), Refusal> {
    let report = DeviceReport {
        kind: ReportKind::Closed { success: true },
        label: "CANCELED".into(),
        progress: None,
        code: None,
        details: vec!["told over MQTT that the job was canceled".into()],
    };
    let _ = door.state.app.report_cancel(actor, e, &report).await?;
    Ok(())
}

async fn facts(door: &Door, actor: &Actor, e: &Execution) -> Result<Facts, Refusal> {
    Ok(Facts::of(&door.state.app.device_history(actor, e).await?))
}

async fn get_pending(door: &Door, actor: &Actor, payload: &[u8], timestamp: i64) -> Result<serde_json::Value, Refusal> {
    let _: GetPendingRequest = read(payload)?;
    let mut answer =
        GetPendingAccepted { in_progress_jobs: vec![], queued_jobs: vec![], timestamp, client_token: None };
    if let Some(e) = current(door, actor).await? {
        let f = facts(door, actor, &e).await?;
        match document::status(&e) {
            Some(Status::InProgress) => answer.in_progress_jobs.push(document::summary(&e, &f)),
            Some(Status::Queued) => answer.queued_jobs.push(document::summary(&e, &f)),
            _ => {}
        }
    }
    Ok(serde_json::to_value(answer).unwrap_or_default())
}

/// A device report carrying `statusDetails`.
fn report(kind: ReportKind, label: &str, details: Option<&StatusDetails>) -> DeviceReport {
    DeviceReport {
        kind,
        label: label.into(),
        progress: None,
        code: None,
        details: details.map(document::details_of).unwrap_or_default(),
    }
}

/// Moves a change's refusal onto AWS's codes, with the execution's state.
async fn refused(door: &Door, actor: &Actor, e: &Execution, err: TransitionError) -> Refusal {
    let state = match (document::status(e), facts(door, actor, e).await) {
        (Some(s), Ok(f)) => Some(document::state(s, &f)),
        _ => None,
    };
    let message = match err {
        TransitionError::Finished => format!("job execution {} is in a terminal state", e.job),
        TransitionError::NotApplicable => format!("job execution {} does not allow this update now", e.job),
    };
    Refusal(ErrorCode::InvalidStateTransition, message, state)
}

/// Starts `e` (IN_PROGRESS): a consent-awaiting execution is consented to
/// first (an AWS IoT Jobs device starts a job only when it, or its user, decided to).
async fn start(
    door: &Door,
    actor: &Actor,
    e: Execution,
    details: Option<&StatusDetails>,
) -> Result<Execution, Refusal> {
    let app = &door.state.app;
    let mut e = e;
    if e.state == ExecutionState::AwaitingConsent {
        e = match app.device_consent(actor, &e, true).await? {
            Ok(e) => e,
            Err(err) => return Err(refused(door, actor, &e, err).await),
        };
    }
    match app.report_deployment(actor, &e, &report(ReportKind::Proceeding, "IN_PROGRESS", details)).await? {
        Ok(e) => Ok(e),
        Err(err) => Err(refused(door, actor, &e, err).await),
    }
}

async fn start_next(
    door: &Door,
    actor: &Actor,
    thing: &str,
    payload: &[u8],
    timestamp: i64,
) -> Result<serde_json::Value, Refusal> {
    let req: StartNextRequest = read(payload)?;
    let details = details(req.status_details.as_ref())?;
    let timer = step_timeout(req.step_timeout_in_minutes.as_ref())?;
    let Some(mut e) = current(door, actor).await? else {
        return Ok(serde_json::to_value(ExecutionAccepted { execution: None, timestamp, client_token: None })
            .unwrap_or_default());
    };
    // Already in progress: returned as it is (its statusDetails are not changed).
    if document::status(&e) == Some(Status::Queued) {
        e = start(door, actor, e, details.as_ref()).await?;
        if let Some(minutes) = timer {
            door.state.app.start_step_timer(actor, &e, minutes).await?;
        }
    }
    let execution = door.execution(actor, thing, &e, true).await?;
    Ok(serde_json::to_value(ExecutionAccepted { execution, timestamp, client_token: None }).unwrap_or_default())
}

/// The device's execution of `job` (`$next`: its current one).
async fn execution_of(door: &Door, actor: &Actor, job: &str) -> Result<Option<Execution>, Refusal> {
    if job == "$next" {
        return current(door, actor).await;
    }
    let e = door.state.app.device_execution_of_job(actor, job).await?;
    match e {
        Some(e) if e.cancel_requested => {
            acknowledge_cancel(door, actor, &e).await?;
            Ok(door.state.app.device_execution_of_job(actor, job).await?)
        }
        // Not released to the device yet: not its to see.
        Some(e) if e.state == ExecutionState::Queued => Ok(None),
        other => Ok(other),
    }
}

async fn describe(
    door: &Door,
    actor: &Actor,
    thing: &str,
    job: &str,
    payload: &[u8],
    timestamp: i64,
) -> Result<serde_json::Value, Refusal> {
    let req: DescribeRequest = read(payload)?;
    let number = updraft_iot_jobs::whole_number(req.execution_number.as_ref(), "executionNumber")
        .map_err(|m| Refusal::new(ErrorCode::InvalidRequest, m))?;
    let e = execution_of(door, actor, job).await?;
    let e = match e {
        Some(e) if number.is_none_or(|n| n == i64::from(e.attempt.max(1))) => e,
        _ if job == "$next" => {
            return Ok(serde_json::to_value(ExecutionAccepted { execution: None, timestamp, client_token: None })
                .unwrap_or_default());
        }
        _ => return Err(Refusal::new(ErrorCode::ResourceNotFound, format!("job execution {job} not found"))),
    };
    let execution = door.execution(actor, thing, &e, req.include_job_document.unwrap_or(true)).await?;
    Ok(serde_json::to_value(ExecutionAccepted { execution, timestamp, client_token: None }).unwrap_or_default())
}

async fn update(
    door: &Door,
    actor: &Actor,
    job: &str,
    payload: &[u8],
    timestamp: i64,
) -> Result<serde_json::Value, Refusal> {
    let req: UpdateRequest = read(payload)?;
    let status = match req.status.as_ref().and_then(|s| s.as_str()) {
        Some("IN_PROGRESS") => Status::InProgress,
        Some("SUCCEEDED") => Status::Succeeded,
        Some("FAILED") => Status::Failed,
        Some("REJECTED") => Status::Rejected,
        Some(other) => {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!("status {other} cannot be set by a device: IN_PROGRESS, SUCCEEDED, FAILED or REJECTED"),
            ));
        }
        None => return Err(Refusal::new(ErrorCode::InvalidRequest, "status is required")),
    };
    let details = details(req.status_details.as_ref())?;
    let expected = expected_version(req.expected_version.as_ref())?;
    let number = updraft_iot_jobs::whole_number(req.execution_number.as_ref(), "executionNumber")
        .map_err(|m| Refusal::new(ErrorCode::InvalidRequest, m))?;
    let timer = step_timeout(req.step_timeout_in_minutes.as_ref())?;
    let Some(e) = execution_of(door, actor, job).await? else {
        return Err(Refusal::new(ErrorCode::ResourceNotFound, format!("job execution {job} not found")));
    };
    if number.is_some_and(|n| n != i64::from(e.attempt.max(1))) {
        return Err(Refusal::new(
            ErrorCode::ResourceNotFound,
            format!("job execution {job} has no such execution number"),
        ));
    }
    let before = facts(door, actor, &e).await?;
    let shown = document::status(&e).unwrap_or(Status::Queued);
    if let Some(v) = expected
        && v != before.version
    {
        return Err(Refusal(
            ErrorCode::VersionMismatch,
            format!("expected version {v}, the execution is at version {}", before.version),
            Some(document::state(shown, &before)),
        ));
    }
    if shown.is_terminal() {
        return Err(Refusal(
            ErrorCode::InvalidStateTransition,
            format!("job execution {job} is {shown}: a terminal status is final"),
            Some(document::state(shown, &before)),
        ));
    }
    let app = &door.state.app;
    let changed = match status {
        Status::InProgress if e.state == ExecutionState::AwaitingConsent || e.state == ExecutionState::Notified => {
            start(door, actor, e, details.as_ref()).await?
        }
        _ => {
            let result = if status == Status::Rejected && e.state == ExecutionState::AwaitingConsent {
                app.device_consent(actor, &e, false).await?
            } else {
                let (kind, label) = match status {
                    Status::InProgress => (ReportKind::Proceeding, "IN_PROGRESS"),
                    Status::Succeeded => (ReportKind::Closed { success: true }, "SUCCEEDED"),
                    Status::Failed => (ReportKind::Closed { success: false }, "FAILED"),
                    _ => (ReportKind::Rejected, "REJECTED"),
                };
                app.report_deployment(actor, &e, &report(kind, label, details.as_ref())).await?
            };
            match result {
                Ok(e) => e,
                Err(err) => return Err(refused(door, actor, &e, err).await),
            }
        }
    };
    // A step timer started (or started again) with IN_PROGRESS.
    if let Some(minutes) = timer
        && status == Status::InProgress
    {
        door.state.app.start_step_timer(actor, &changed, minutes).await?;
    }
    let mut answer = UpdateAccepted { execution_state: None, job_document: None, timestamp, client_token: None };
    if req.include_job_execution_state == Some(true) {
        let f = facts(door, actor, &changed).await?;
        answer.execution_state = document::status(&changed).map(|s| document::state(s, &f));
    }
    if req.include_job_document == Some(true) {
        answer.job_document = door.document(actor, &changed).await?;
    }
    Ok(serde_json::to_value(answer).unwrap_or_default())
}
