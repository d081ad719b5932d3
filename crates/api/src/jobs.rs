//! Jobs: what creates one, how one is shown with its progress, its
//! executions, consent.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::FieldError;
use updraft_core::job::{Execution, ExecutionEvent, ExecutionState, Job, JobKind, JobState};
use updraft_core::phase::{GateWait, Phase, PhaseCounts, PhaseState};
use updraft_core::rollout::{AbortRule, Handling, JobSpec, Ramp, Recurrence, Retry};
use updraft_core::schedule::{DailyWindow, Schedule};
use updraft_core::waiting::Waiting;

/// A job as created: identity, what, which devices, how, how fast, when.
/// Every field but `firmware` and a scope (`all`, `devices`, `groups`,
/// `filter`, `filter_id` or `include`) is optional.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobIn {
    /// `[A-Za-z0-9_-]{1,128}`; generated when absent.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,128}$"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The name in other languages, by language tag.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: BTreeMap<String, String>,
    /// At most 2028 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Passed through to devices and integrations as given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::additional_params))]
    pub additional_params: BTreeMap<String, serde_json::Value>,
    /// `upgrade` (default) or `verify` (named devices only, at most 50).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::job_kind_or_null))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// The firmware image to deliver (one image of one or more components): its id, or `PRODUCT@VERSION`.
    pub firmware: String,
    /// Every device of the image's product.
    #[serde(default, skip_serializing_if = "is_false")]
    pub all: bool,
    /// Named devices (of the image's product).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Devices in these groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// An inline filter: the text form, or the JSON form.
    #[serde(default, deserialize_with = "crate::present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::filter_in))]
    pub filter: Option<serde_json::Value>,
    /// A saved filter; a continuous job follows its edits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<String>,
    /// 1–100: only this share of the scope, chosen by a stable hash of job id and device id.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gray_percent: Option<u8>,
    /// Upgrade only devices now on one of these versions (default: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_versions: Vec<String>,
    /// Devices to add although they are not in the scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Devices never to target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Also install on devices running a newer version than the image (they
    /// are skipped otherwise).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_downgrade: bool,
    /// `snapshot` (default) or `continuous`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::recurrence_or_null))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// Offer the job to devices on their next contact (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<bool>,
    /// Devices may ask for the job themselves (default false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_device_request: bool,
    /// The end user must approve (through the API or the device) before a device gets it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub consent_required: bool,
    /// Executions in progress at once (default 300).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Executions started per minute at most.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_minute: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::ramp))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::abort_rules))]
    pub abort: Vec<AbortRule>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::schedule_in))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleIn>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::retry))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryIn>,
    /// 60–172800; absent or `null`: no limit.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::timeout_seconds))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Start now (default true); `false` creates it to start later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<bool>,
    /// `forced` (default), `soft` or `download_only`: what devices are told to do (hawkBit's action type).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::handling_or_null))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handling: Option<Handling>,
    /// When devices may install (they download at any time): `{"timezone", "days", "window": {"from", "to"}}`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::schedule_in))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<ScheduleIn>,
    /// Phases, in order: each reaches a larger share of the devices, with a gate before the next one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::phases))]
    pub phases: Vec<Phase>,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// Retries: `count` (1–10) and `interval_minutes` (default 0: at once); an interval without a count is refused.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_minutes: Option<u32>,
}

/// A schedule: the core's form, or seed 001's seconds of day (`startSchedule`, `endSchedule`)
/// (its schema is `ScheduleIn` in `schemas.rs`).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleIn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<serde_json::Value>,
    #[serde(default, rename = "startSchedule", skip_serializing_if = "Option::is_none")]
    pub start_schedule: Option<u32>,
    #[serde(default, rename = "endSchedule", skip_serializing_if = "Option::is_none")]
    pub end_schedule: Option<u32>,
}

impl ScheduleIn {
    /// The schedule it describes; what is wrong is added to `errors`.
    pub fn into_schedule(self, errors: &mut Vec<FieldError>) -> Option<Schedule> {
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
    pub fn into_maintenance_window(self, errors: &mut Vec<FieldError>) -> Option<Schedule> {
        let mut own = Vec::new();
        let window = self.into_schedule(&mut own);
        errors.extend(own.into_iter().map(|mut e| {
            e.field = e.field.replacen("schedule", "maintenance_window", 1);
            e
        }));
        window
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobOut {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::job_kind))]
    pub kind: JobKind,
    pub firmware: String,
    pub product: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::job_state))]
    pub state: JobState,
    /// Paused by an operator (the schedule does not resume it).
    pub held: bool,
    pub consent_required: bool,
    /// Targeting, recurrence, delivery, pace, schedule, retry, timeout and bookkeeping, as given.
    #[serde(flatten)]
    pub spec: JobSpecOut,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// Executions per state (only on a single job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<String, u64>>,
    /// Progress figures (only on a single job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressOut>,
}

/// The spec in the request's flat shape.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSpecOut {
    pub all: bool,
    pub devices: Vec<String>,
    pub groups: Vec<String>,
    pub filter: Option<String>,
    pub filter_id: Option<String>,
    pub gray_percent: Option<u8>,
    pub source_versions: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    #[serde(default)]
    pub allow_downgrade: bool,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::recurrence))]
    pub recurrence: Recurrence,
    pub push: bool,
    pub allow_device_request: bool,
    pub max_concurrency: u32,
    pub max_per_minute: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::ramp))]
    pub ramp: Option<Ramp>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::abort_rules))]
    pub abort: Vec<AbortRule>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::schedule))]
    pub schedule: Option<Schedule>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::retry_out))]
    pub retry: Retry,
    pub timeout_seconds: Option<u32>,
    pub translations: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::additional_params))]
    pub additional_params: BTreeMap<String, serde_json::Value>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::handling))]
    pub handling: Handling,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::schedule))]
    pub maintenance_window: Option<Schedule>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::phases))]
    pub phases: Vec<Phase>,
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
            allow_downgrade: t.allow_downgrade,
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
            phases: s.phases,
        }
    }
}

/// How far a job is.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub eta: Option<Timestamp>,
    /// The open phase of a phased job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PhaseOut>,
}

/// The open phase of a phased job and what its gate waits for.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhaseOut {
    /// The open phase: 0 for the first.
    pub index: u32,
    pub name: Option<String>,
    /// How many phases the job has.
    pub of: u32,
    pub counts: PhaseCountsOut,
    /// What the gate still needs before the next phase opens (empty in the last phase, or when it opens next round).
    pub waiting_for: Vec<GateWaitOut>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::phase_state))]
    pub state: PhaseState,
}

/// The open phase's executions, counted.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhaseCountsOut {
    pub total: u64,
    pub succeeded: u64,
    /// Failed, timed out or rejected.
    pub failed: u64,
    /// Skipped or canceled.
    pub dropped: u64,
    /// Queued, awaiting consent or in progress.
    pub unfinished: u64,
    /// Failed or timed out with a retry to come.
    pub retry_pending: u64,
}

impl From<PhaseCounts> for PhaseCountsOut {
    fn from(c: PhaseCounts) -> Self {
        PhaseCountsOut {
            total: c.total,
            succeeded: c.succeeded,
            failed: c.failed,
            dropped: c.dropped,
            unfinished: c.unfinished,
            retry_pending: c.retry_pending,
        }
    }
}

/// A condition of a phase's gate not met yet.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateWaitOut {
    /// `approval`, `finished`, `success_rate`, `completion` or `soak`.
    pub reason: String,
    pub message: String,
    /// What there is now (finished executions; success rate in percent; unfinished executions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub have: Option<f64>,
    /// What the gate needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<f64>,
    /// When the soak time ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub until: Option<Timestamp>,
}

impl From<&GateWait> for GateWaitOut {
    fn from(w: &GateWait) -> Self {
        let (have, need, until) = match *w {
            GateWait::Approval => (None, None, None),
            GateWait::Finished { have, need } => (Some(have as f64), Some(need as f64), None),
            GateWait::SuccessRate { have, need } => (have, Some(need), None),
            GateWait::Completion { unfinished } => (Some(unfinished as f64), Some(0.0), None),
            GateWait::Soak { until } => (None, None, Some(until)),
        };
        GateWaitOut { reason: w.reason().to_owned(), message: w.describe(), have, need, until }
    }
}

/// Why an execution is not released yet.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingOut {
    /// `consent`, `not_started`, `schedule`, `paused`, `phase_gate`, `device_request`,
    /// `device_busy`, `concurrency`, `rate` or `next_round`.
    pub reason: String,
    pub message: String,
    /// When the schedule changes next (`schedule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next: Option<Timestamp>,
    /// The execution's phase and the open one (`phase_gate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_phase: Option<u32>,
    /// What the open phase's gate waits for (`phase_gate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gate: Vec<GateWaitOut>,
    /// The job and action id the device works on (`device_busy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<i64>,
    /// In progress and allowed (`concurrency`); the rate a minute (`rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
}

impl From<&Waiting> for WaitingOut {
    fn from(w: &Waiting) -> Self {
        let mut out = WaitingOut {
            reason: w.reason().to_owned(),
            message: w.describe(),
            next: None,
            phase: None,
            open_phase: None,
            gate: Vec::new(),
            job: None,
            action_id: None,
            in_progress: None,
            max_concurrency: None,
            per_minute: None,
        };
        match w {
            Waiting::Schedule { next } => out.next = *next,
            Waiting::Phase { phase, open, gate } => {
                out.phase = Some(*phase);
                out.open_phase = Some(*open);
                out.gate = gate.iter().map(GateWaitOut::from).collect();
            }
            Waiting::DeviceBusy { job, action_id } => {
                out.job = Some(job.clone());
                out.action_id = Some(*action_id);
            }
            Waiting::Concurrency { in_progress, max } => {
                out.in_progress = Some(*in_progress);
                out.max_concurrency = Some(*max);
            }
            Waiting::Rate { per_minute } => out.per_minute = Some(*per_minute),
            Waiting::Consent | Waiting::NotStarted | Waiting::Paused | Waiting::DeviceRequest | Waiting::NextRound => {}
        }
        out
    }
}

/// `{"force": true}`: a cancel that ends executions devices are working on
/// at once; an approval that opens the next phase whatever the gate waits for.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ForceIn {
    #[serde(default)]
    pub force: bool,
}

/// `?force=true`, as hawkBit's force-quit takes it.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct ForceParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

impl JobOut {
    /// A job on the wire, with its counts per state when given; no progress figures.
    pub fn new(j: Job, counts: Option<BTreeMap<String, u64>>) -> Self {
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionOut {
    /// The device API's action id: unique in the tenant, below 2^31, new with each retry (see `attempt`).
    pub action_id: i64,
    pub job: String,
    pub device: String,
    pub firmware: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::execution_state))]
    pub state: ExecutionState,
    pub attempt: u32,
    pub cancel_requested: bool,
    /// The job's phase it belongs to (0 without phases).
    #[serde(default)]
    pub phase: u32,
    /// Why it is not released yet, while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<WaitingOut>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::progress))]
    pub progress: Option<updraft_core::job::Progress>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// The full history, oldest first (on a device's executions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::history))]
    pub history: Option<Vec<ExecutionEvent>>,
}

impl ExecutionOut {
    /// An execution on the wire, with its history when given.
    pub fn new(e: Execution, history: Option<Vec<ExecutionEvent>>) -> Self {
        ExecutionOut {
            action_id: e.public_id(),
            job: e.job,
            device: e.device,
            firmware: e.firmware,
            state: e.state,
            attempt: e.attempt,
            cancel_requested: e.cancel_requested,
            phase: e.phase,
            waiting: None,
            progress: e.progress,
            created_at: e.created_at,
            updated_at: e.updated_at,
            finished_at: e.finished_at,
            history,
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct JobListParams {
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[cfg_attr(feature = "openapi", param(maximum = 9223372036854775807_u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// `created_at` (default), `id`, `name`, `state`, `started_at`, `finished_at`; `-` for descending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Text in the id, name, description or firmware.
    #[cfg_attr(feature = "openapi", param(max_length = 256))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Only jobs in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// How many devices a job would select if it started now.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = JobEstimateOut))]
pub struct EstimateOut {
    /// Devices that would get an execution (queued or awaiting consent).
    pub count: u64,
    /// Devices already on the target version (counted as skipped).
    pub skipped: u64,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct ExecutionListParams {
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[cfg_attr(feature = "openapi", param(maximum = 9223372036854775807_u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// `action_id` (default), `device`, `state`, `updated_at`; `-` for descending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// Text in the device id.
    #[cfg_attr(feature = "openapi", param(max_length = 256))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Only executions in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    /// `approve` or `deny`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::decision))]
    pub decision: String,
}
