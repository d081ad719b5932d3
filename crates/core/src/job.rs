//! Jobs and their executions: the per-device part of a job, its states, and
//! the pure rules that move an execution when its device reports, confirms,
//! or acknowledges a cancellation.
//!
//! Invariants the rules keep:
//! - a terminal execution never changes again (a report after the end is refused);
//! - every change produces exactly one history event;
//! - `succeeded` is reached only from a device's `closed` report with success (or none).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The life of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Created,
    Scheduled,
    Running,
    Paused,
    Completed,
    Canceled,
    Aborted,
}

/// What a job does to its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    #[default]
    Upgrade,
    Verify,
}

macro_rules! str_enum {
    ($t:ident { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub const ALL: &[$t] = &[$($t::$v),*];
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($t::$v),)* _ => None }
            }
        }
    };
}

str_enum!(JobState { Created => "created", Scheduled => "scheduled", Running => "running", Paused => "paused",
    Completed => "completed", Canceled => "canceled", Aborted => "aborted" });
str_enum!(JobKind { Upgrade => "upgrade", Verify => "verify" });

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Canceled | JobState::Aborted)
    }
}

/// The life of one device's part of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionState {
    Queued,
    AwaitingConsent,
    Notified,
    Downloading,
    Downloaded,
    Installing,
    Succeeded,
    Failed,
    TimedOut,
    Rejected,
    Canceled,
    Skipped,
}

str_enum!(ExecutionState { Queued => "queued", AwaitingConsent => "awaiting_consent", Notified => "notified",
    Downloading => "downloading", Downloaded => "downloaded", Installing => "installing", Succeeded => "succeeded",
    Failed => "failed", TimedOut => "timed_out", Rejected => "rejected", Canceled => "canceled", Skipped => "skipped" });

impl ExecutionState {
    /// States an execution never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimedOut | Self::Rejected | Self::Canceled | Self::Skipped
        )
    }

    /// The states of executions that are not finished, in the order they are lived.
    pub const ACTIVE: &[ExecutionState] =
        &[Self::Queued, Self::AwaitingConsent, Self::Notified, Self::Downloading, Self::Downloaded, Self::Installing];

    /// Notified through installing: the device is working on it.
    pub fn is_in_progress(self) -> bool {
        matches!(self, Self::Notified | Self::Downloading | Self::Downloaded | Self::Installing)
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: JobKind,
    pub firmware: String,
    pub product: String,
    pub state: JobState,
    /// The end user must approve before a device gets the update.
    pub consent_required: bool,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Targeting, recurrence, delivery, pace, schedule, retry, timeout and the bookkeeping fields.
    pub spec: crate::rollout::JobSpec,
    /// Paused by an operator: the schedule does not resume it, only `resume` does.
    pub held: bool,
    /// Where a phased job is (its spec's `phases`); unused without phases.
    pub phase: crate::phase::PhaseState,
}

/// What an operator does to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobCommand {
    Start,
    Pause,
    Resume,
    Cancel,
}

impl Job {
    /// The state the schedule puts a started, unheld job in at `now`.
    pub fn scheduled_state(&self, now: Timestamp) -> JobState {
        use crate::schedule::Phase;
        match self.spec.schedule.as_ref().map(|s| s.phase(now)) {
            None | Some(Phase::Open) => JobState::Running,
            Some(Phase::Before) => JobState::Scheduled,
            Some(Phase::Closed) => JobState::Paused,
            Some(Phase::Ended) => JobState::Completed,
        }
    }

    /// The job's state and hold after an operator's command, or why it does not apply.
    pub fn on_command(&self, cmd: JobCommand, now: Timestamp) -> Result<(JobState, bool), TransitionError> {
        if self.state.is_finished() {
            return Err(TransitionError::Finished);
        }
        match cmd {
            JobCommand::Start if self.state == JobState::Created => Ok((self.scheduled_state(now), false)),
            JobCommand::Pause if self.state != JobState::Created && !self.held => Ok((JobState::Paused, true)),
            JobCommand::Resume if self.held => Ok((self.scheduled_state(now), false)),
            JobCommand::Cancel => Ok((JobState::Canceled, false)),
            _ => Err(TransitionError::NotApplicable),
        }
    }

    /// The state a finished job takes to retry its failed executions (`retry
    /// failed`): only a completed or aborted job, into what its schedule says
    /// (not a schedule that has ended).
    pub fn on_retry_failed(&self, now: Timestamp) -> Result<JobState, TransitionError> {
        if !matches!(self.state, JobState::Completed | JobState::Aborted) {
            return Err(TransitionError::NotApplicable);
        }
        match self.scheduled_state(now) {
            s if s.is_finished() => Err(TransitionError::Finished),
            s => Ok(s),
        }
    }

    /// The last phase whose executions may be released (every one without phases).
    pub fn open_phase(&self) -> u32 {
        if self.spec.phases.len() > 1 { self.phase.current } else { u32::MAX }
    }

    /// Where the schedule moves a job at a tick: `None` when it stays.
    pub fn on_tick(&self, now: Timestamp) -> Option<JobState> {
        if self.state.is_finished() || self.state == JobState::Created || self.held {
            return None;
        }
        let next = self.scheduled_state(now);
        (next != self.state).then_some(next)
    }
}

/// A device a job gets an execution for: its first state and its phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub device: String,
    pub state: ExecutionState,
    pub phase: u32,
}

/// Download or install progress as a device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub cnt: u64,
    pub of: Option<u64>,
}

/// One device's part of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// The execution's key: unique across the server, never shown to devices.
    pub action_id: i64,
    /// The device API's action id of the current attempt: the next number of
    /// the tenant's counter, taken again for each attempt (so update clients,
    /// which remember the actions they finished, take a retry as new work),
    /// always from 1 to 2^31 − 1 (SWUpdate reads it as a 32-bit integer).
    pub action: i64,
    pub job: String,
    pub device: String,
    pub firmware: String,
    pub state: ExecutionState,
    pub attempt: u32,
    /// The operator asked to cancel an execution the device is working on.
    pub cancel_requested: bool,
    /// The job's phase it belongs to (0 without phases).
    pub phase: u32,
    pub progress: Option<Progress>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// The largest action id a device is given; a tenant's counter wraps back to 1 after it.
pub const MAX_ACTION: i64 = i32::MAX as i64;

/// The action id after `last` on a tenant's counter: never 0, never above [`MAX_ACTION`].
pub fn next_action(last: i64) -> i64 {
    if (0..MAX_ACTION).contains(&last) { last + 1 } else { 1 }
}

impl Execution {
    /// The action id devices and the API see (see [`Execution::action`]).
    pub fn public_id(&self) -> i64 {
        self.action
    }
}

/// Who caused a history event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Device,
    Server,
    Operator,
}

str_enum!(EventSource { Device => "device", Server => "server", Operator => "operator" });

/// One entry of an execution's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionEvent {
    pub at: Timestamp,
    /// The execution's state after the event.
    pub state: ExecutionState,
    pub source: EventSource,
    /// What was reported, in the device API's words (`proceeding`, `closed/success`, …) or the server's.
    pub report: String,
    pub code: Option<i32>,
    pub progress: Option<Progress>,
    pub details: Vec<String>,
}

/// What a device says about its work, independent of the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Working on it (`proceeding`, `scheduled`, `resumed`).
    Proceeding,
    /// Downloading.
    Download,
    /// Download complete.
    Downloaded,
    /// Done: with success, failure, or no verdict (counts as success, as in hawkBit).
    Closed { success: bool },
    /// The device canceled it.
    Canceled,
    /// The device refuses it.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    pub kind: ReportKind,
    /// The wire words, kept in the history (`proceeding`, `closed/failure`).
    pub label: String,
    pub progress: Option<Progress>,
    pub code: Option<i32>,
    pub details: Vec<String>,
}

/// Why a change cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the execution is finished")]
    Finished,
    #[error("the execution is not in a state that allows this")]
    NotApplicable,
}

/// A change to apply to an execution, with its history event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: ExecutionState,
    pub cancel_requested: bool,
    pub progress: Option<Progress>,
    pub event: ExecutionEvent,
    /// The device installed the image (its versions become the image's): a
    /// success other than a download-only job's `downloaded`.
    pub installs: bool,
}

impl Transition {
    fn to(e: &Execution, state: ExecutionState, event: ExecutionEvent) -> Self {
        let installs = state == ExecutionState::Succeeded;
        Transition { state, cancel_requested: e.cancel_requested, progress: e.progress, event, installs }
    }
}

fn device_event(now: Timestamp, state: ExecutionState, r: &DeviceReport) -> ExecutionEvent {
    ExecutionEvent {
        at: now,
        state,
        source: EventSource::Device,
        report: r.label.clone(),
        code: r.code,
        progress: r.progress,
        details: r.details.clone(),
    }
}

pub fn server_event(
    now: Timestamp,
    state: ExecutionState,
    source: EventSource,
    report: &str,
    detail: &str,
) -> ExecutionEvent {
    ExecutionEvent {
        at: now,
        state,
        source,
        report: report.to_owned(),
        code: None,
        progress: None,
        details: if detail.is_empty() { vec![] } else { vec![detail.to_owned()] },
    }
}

/// The device fetched its deployment: a queued execution is now notified.
/// Returns `None` when nothing changes (already notified or further).
/// The scheduler releases a queued execution to its device (within the job's pace).
pub fn on_release(e: &Execution, now: Timestamp) -> Result<Transition, TransitionError> {
    match e.state {
        ExecutionState::Queued => Ok(Transition::to(
            e,
            ExecutionState::Notified,
            server_event(now, ExecutionState::Notified, EventSource::Server, "released", "offered to the device"),
        )),
        s if s.is_terminal() => Err(TransitionError::Finished),
        _ => Err(TransitionError::NotApplicable),
    }
}

/// An execution in progress passed the job's timeout.
pub fn on_timeout(e: &Execution, now: Timestamp) -> Option<Transition> {
    e.state.is_in_progress().then(|| {
        let mut t = Transition::to(
            e,
            ExecutionState::TimedOut,
            server_event(
                now,
                ExecutionState::TimedOut,
                EventSource::Server,
                "timed_out",
                "no result within the timeout",
            ),
        );
        t.cancel_requested = false;
        t
    })
}

/// A failed or timed-out execution is tried again: back to `queued`, next attempt.
pub fn on_retry(e: &Execution, now: Timestamp) -> Option<Transition> {
    matches!(e.state, ExecutionState::Failed | ExecutionState::TimedOut).then(|| {
        let mut t = Transition::to(
            e,
            ExecutionState::Queued,
            server_event(
                now,
                ExecutionState::Queued,
                EventSource::Server,
                "retry",
                &format!("attempt {}", e.attempt + 1),
            ),
        );
        t.progress = None;
        t
    })
}

/// An operator ended the execution by force (a force-cancel): whatever it was
/// doing, it is canceled now and the device is no longer waited for.
pub fn on_force_cancel(e: &Execution, now: Timestamp) -> Option<Transition> {
    (!e.state.is_terminal()).then(|| {
        let mut t = Transition::to(
            e,
            ExecutionState::Canceled,
            server_event(
                now,
                ExecutionState::Canceled,
                EventSource::Operator,
                "force_canceled",
                "canceled by force: the device is no longer waited for",
            ),
        );
        t.progress = None;
        t
    })
}

/// The device fetched its deployment: nothing changes (the release notified it).
pub fn on_deployment_fetched(e: &Execution, _now: Timestamp) -> Result<Option<Transition>, TransitionError> {
    match e.state {
        s if s.is_in_progress() => Ok(None),
        s if s.is_terminal() => Err(TransitionError::Finished),
        _ => Err(TransitionError::NotApplicable),
    }
}

/// A device reports on its deployment.
pub fn on_device_report(e: &Execution, r: &DeviceReport, now: Timestamp) -> Result<Transition, TransitionError> {
    use ExecutionState::*;
    if e.state.is_terminal() {
        return Err(TransitionError::Finished);
    }
    // Only what was offered to the device (released) can be reported on: a
    // queued execution is not the device's yet, one awaiting consent is confirmed instead.
    if matches!(e.state, Queued | AwaitingConsent) {
        return Err(TransitionError::NotApplicable);
    }
    let state = match r.kind {
        ReportKind::Closed { success: true } => Succeeded,
        ReportKind::Closed { success: false } => Failed,
        ReportKind::Canceled => Canceled,
        ReportKind::Rejected => Rejected,
        ReportKind::Download => Downloading,
        ReportKind::Downloaded => Downloaded,
        // Working on it: downloading until the download is reported done, installing after.
        ReportKind::Proceeding => match e.state {
            Queued | Notified | Downloading => Downloading,
            _ => Installing,
        },
    };
    let mut t = Transition::to(e, state, device_event(now, state, r));
    if r.progress.is_some() {
        t.progress = r.progress;
    }
    Ok(t)
}

/// A device reports on a deployment of a job with this handling: as
/// hawkBit does, `downloaded` ends a download-only execution, successful and
/// installing nothing; everything else is [`on_device_report`].
pub fn on_device_report_handled(
    e: &Execution,
    r: &DeviceReport,
    handling: crate::rollout::Handling,
    now: Timestamp,
) -> Result<Transition, TransitionError> {
    let mut t = on_device_report(e, r, now)?;
    if handling == crate::rollout::Handling::DownloadOnly && r.kind == ReportKind::Downloaded {
        t.state = ExecutionState::Succeeded;
        t.event.state = ExecutionState::Succeeded;
        t.installs = false;
    }
    Ok(t)
}

/// A device answers an operator's cancellation: `closed` with success (or no
/// verdict) accepts it; a failure or a rejection refuses it and the work goes on.
pub fn on_cancel_report(e: &Execution, r: &DeviceReport, now: Timestamp) -> Result<Transition, TransitionError> {
    if e.state.is_terminal() {
        return Err(TransitionError::Finished);
    }
    if !e.cancel_requested {
        return Err(TransitionError::NotApplicable);
    }
    Ok(match r.kind {
        ReportKind::Closed { success: true } => {
            Transition::to(e, ExecutionState::Canceled, device_event(now, ExecutionState::Canceled, r))
        }
        ReportKind::Closed { success: false } | ReportKind::Rejected => {
            let mut t = Transition::to(e, e.state, device_event(now, e.state, r));
            t.cancel_requested = false;
            t
        }
        _ => Transition::to(e, e.state, device_event(now, e.state, r)),
    })
}

/// The end user (or the device) approves or denies an execution awaiting consent.
pub fn on_consent(
    e: &Execution,
    approve: bool,
    source: EventSource,
    now: Timestamp,
) -> Result<Transition, TransitionError> {
    if e.state.is_terminal() {
        return Err(TransitionError::Finished);
    }
    if e.state != ExecutionState::AwaitingConsent {
        return Err(TransitionError::NotApplicable);
    }
    let (state, report) = if approve {
        (ExecutionState::Queued, "consent/approved")
    } else {
        (ExecutionState::Rejected, "consent/denied")
    };
    Ok(Transition::to(e, state, server_event(now, state, source, report, "")))
}

/// An operator cancels: executions the device has not started end at once;
/// those in progress are asked to stop (the device acknowledges through the device API).
pub fn on_cancel_requested(e: &Execution, now: Timestamp) -> Option<Transition> {
    match e.state {
        s if s.is_terminal() => None,
        ExecutionState::Queued | ExecutionState::AwaitingConsent => Some(Transition::to(
            e,
            ExecutionState::Canceled,
            server_event(now, ExecutionState::Canceled, EventSource::Operator, "canceled", "the job was canceled"),
        )),
        _ if e.cancel_requested => None,
        s => {
            let mut t = Transition::to(
                e,
                s,
                server_event(
                    now,
                    s,
                    EventSource::Operator,
                    "cancel_requested",
                    "the job was canceled; waiting for the device",
                ),
            );
            t.cancel_requested = true;
            Some(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(state: ExecutionState) -> Execution {
        let t = Timestamp::UNIX_EPOCH;
        Execution {
            action_id: 1,
            action: 1,
            job: "j".into(),
            device: "d".into(),
            firmware: "f".into(),
            state,
            attempt: 1,
            cancel_requested: false,
            phase: 0,
            progress: None,
            created_at: t,
            updated_at: t,
            finished_at: None,
        }
    }

    fn report(kind: ReportKind) -> DeviceReport {
        DeviceReport { kind, label: "x".into(), progress: None, code: None, details: vec![] }
    }

    #[test]
    fn device_reports_move_executions() {
        use ExecutionState::*;
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(on_device_report(&exec(Notified), &report(ReportKind::Proceeding), now).unwrap().state, Downloading);
        assert_eq!(
            on_device_report(&exec(Downloaded), &report(ReportKind::Proceeding), now).unwrap().state,
            Installing
        );
        assert_eq!(
            on_device_report(&exec(Installing), &report(ReportKind::Closed { success: true }), now).unwrap().state,
            Succeeded
        );
        assert_eq!(
            on_device_report(&exec(Downloading), &report(ReportKind::Closed { success: false }), now).unwrap().state,
            Failed
        );
        assert_eq!(on_device_report(&exec(Notified), &report(ReportKind::Rejected), now).unwrap().state, Rejected);
        assert_eq!(
            on_device_report(&exec(Queued), &report(ReportKind::Closed { success: true }), now),
            Err(TransitionError::NotApplicable),
            "a queued execution was never offered to the device"
        );
        for terminal in [Succeeded, Failed, TimedOut, Rejected, Canceled, Skipped] {
            assert_eq!(
                on_device_report(&exec(terminal), &report(ReportKind::Proceeding), now),
                Err(TransitionError::Finished)
            );
        }
        assert_eq!(
            on_device_report(&exec(AwaitingConsent), &report(ReportKind::Proceeding), now),
            Err(TransitionError::NotApplicable)
        );
    }

    #[test]
    fn a_download_only_execution_ends_downloaded_without_installing() {
        use crate::rollout::Handling;
        use ExecutionState::*;
        let now = Timestamp::UNIX_EPOCH;
        let t =
            on_device_report_handled(&exec(Downloading), &report(ReportKind::Downloaded), Handling::DownloadOnly, now)
                .unwrap();
        assert_eq!((t.state, t.installs), (ExecutionState::Succeeded, false));
        let t =
            on_device_report_handled(&exec(Downloading), &report(ReportKind::Downloaded), Handling::Soft, now).unwrap();
        assert_eq!(t.state, ExecutionState::Downloaded);
        let closed = report(ReportKind::Closed { success: true });
        let t = on_device_report_handled(&exec(Downloaded), &closed, Handling::DownloadOnly, now).unwrap();
        assert_eq!((t.state, t.installs), (ExecutionState::Succeeded, true), "a device that installs anyway installed");
    }

    #[test]
    fn action_ids_stay_below_2_31() {
        assert_eq!(next_action(0), 1);
        assert_eq!(next_action(41), 42);
        assert_eq!(next_action(MAX_ACTION - 1), MAX_ACTION);
        assert_eq!(next_action(MAX_ACTION), 1, "the counter wraps");
        assert_eq!(next_action(5_000_000_000), 1, "a counter past the bound (ids of old executions) wraps too");
        assert!(MAX_ACTION <= i64::from(i32::MAX));
    }

    #[test]
    fn cancellation() {
        use ExecutionState::*;
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(on_cancel_requested(&exec(Queued), now).unwrap().state, Canceled);
        let t = on_cancel_requested(&exec(Installing), now).unwrap();
        assert_eq!((t.state, t.cancel_requested), (Installing, true));
        let mut asked = exec(Installing);
        asked.cancel_requested = true;
        assert!(on_cancel_requested(&asked, now).is_none(), "asking twice changes nothing");
        assert_eq!(
            on_cancel_report(&asked, &report(ReportKind::Closed { success: true }), now).unwrap().state,
            Canceled
        );
        let refused = on_cancel_report(&asked, &report(ReportKind::Rejected), now).unwrap();
        assert_eq!((refused.state, refused.cancel_requested), (Installing, false));
        assert_eq!(
            on_cancel_report(&exec(Installing), &report(ReportKind::Closed { success: true }), now),
            Err(TransitionError::NotApplicable)
        );
    }

    #[test]
    fn consent() {
        use ExecutionState::*;
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(on_consent(&exec(AwaitingConsent), true, EventSource::Device, now).unwrap().state, Queued);
        assert_eq!(on_consent(&exec(AwaitingConsent), false, EventSource::Operator, now).unwrap().state, Rejected);
        assert_eq!(on_consent(&exec(Queued), true, EventSource::Device, now), Err(TransitionError::NotApplicable));
        assert_eq!(on_deployment_fetched(&exec(Queued), now), Err(TransitionError::NotApplicable), "not released");
        assert_eq!(on_deployment_fetched(&exec(Installing), now).unwrap(), None);
    }

    #[test]
    fn release_timeout_and_retry() {
        use ExecutionState::*;
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(on_release(&exec(Queued), now).unwrap().state, Notified);
        assert_eq!(on_release(&exec(AwaitingConsent), now), Err(TransitionError::NotApplicable));
        assert_eq!(on_release(&exec(Failed), now), Err(TransitionError::Finished));
        for s in [Notified, Downloading, Downloaded, Installing] {
            assert_eq!(on_timeout(&exec(s), now).unwrap().state, TimedOut);
        }
        assert_eq!(on_timeout(&exec(Queued), now), None, "only executions in progress time out");
        assert_eq!(on_retry(&exec(Failed), now).unwrap().state, Queued);
        assert_eq!(on_retry(&exec(TimedOut), now).unwrap().event.report, "retry");
        assert_eq!(on_retry(&exec(Rejected), now), None, "a rejection is never retried");
    }

    fn job_with(schedule: Option<&str>) -> Job {
        let spec = crate::rollout::JobSpec {
            schedule: schedule.map(|s| serde_json::from_str(s).unwrap()),
            ..Default::default()
        };
        Job {
            id: "j".into(),
            name: None,
            description: None,
            kind: JobKind::Upgrade,
            firmware: "f".into(),
            product: "p".into(),
            state: JobState::Created,
            consent_required: false,
            created_at: Timestamp::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            spec,
            held: false,
            phase: Default::default(),
        }
    }

    #[test]
    fn job_commands_and_schedule() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let mut j = job_with(Some(r#"{"timezone": "UTC", "window": {"from": "22:00", "to": "06:00"}}"#));
        assert_eq!(j.on_command(JobCommand::Start, at("2026-06-01T12:00:00Z")), Ok((JobState::Paused, false)));
        assert_eq!(j.on_command(JobCommand::Start, at("2026-06-01T23:00:00Z")), Ok((JobState::Running, false)));
        assert_eq!(j.on_tick(at("2026-06-01T23:00:00Z")), None, "created jobs wait for start");
        j.state = JobState::Running;
        assert_eq!(j.on_tick(at("2026-06-02T07:00:00Z")), Some(JobState::Paused), "the window closes");
        assert_eq!(j.on_command(JobCommand::Resume, at("2026-06-02T07:00:00Z")), Err(TransitionError::NotApplicable));
        assert_eq!(j.on_command(JobCommand::Pause, at("2026-06-02T07:00:00Z")), Ok((JobState::Paused, true)));
        j.state = JobState::Paused;
        j.held = true;
        assert_eq!(j.on_tick(at("2026-06-02T23:00:00Z")), None, "an operator's pause holds through windows");
        assert_eq!(j.on_command(JobCommand::Resume, at("2026-06-02T23:00:00Z")), Ok((JobState::Running, false)));
        assert_eq!(j.on_command(JobCommand::Cancel, at("2026-06-02T23:00:00Z")), Ok((JobState::Canceled, false)));
        j.state = JobState::Canceled;
        assert_eq!(j.on_command(JobCommand::Resume, at("2026-06-02T23:00:00Z")), Err(TransitionError::Finished));
        let ends = job_with(Some(r#"{"end": "2026-06-03T00:00:00Z"}"#));
        let running = Job { state: JobState::Running, ..ends };
        assert_eq!(running.on_tick(at("2026-06-03T00:00:00Z")), Some(JobState::Completed), "past the end");
    }

    #[test]
    fn names_round_trip() {
        for s in ExecutionState::ALL {
            assert_eq!(ExecutionState::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(*s));
        }
    }
}
