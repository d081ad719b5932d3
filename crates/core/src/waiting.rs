//! Why an execution is not released yet: the first thing holding it back, in
//! the order the jobs engine looks at them (the job's state and schedule, its
//! phase gate, delivery on request, the device busy elsewhere, the pace).

use jiff::Timestamp;

use crate::job::{Execution, ExecutionState, Job, JobState};
use crate::phase::GateWait;
use crate::rollout::{PaceStats, current_rate, release_budget};

/// What holds a queued (or consent-awaiting) execution back.
#[derive(Debug, Clone, PartialEq)]
pub enum Waiting {
    /// The end user has not consented yet.
    Consent,
    /// The job was created without starting it.
    NotStarted,
    /// The job's schedule has not opened (or is between windows); it changes at `next`.
    Schedule { next: Option<Timestamp> },
    /// The job is paused (by an operator, or by a phase's error threshold).
    Paused,
    /// The execution is in phase `phase`; phase `open` is open, and its gate waits for `gate`.
    Phase { phase: u32, open: u32, gate: Vec<GateWait> },
    /// The job is not pushed: the device gets it when it asks.
    DeviceRequest,
    /// The device works on another job's execution.
    DeviceBusy { job: String, action_id: i64 },
    /// The job's concurrency is used up: `in_progress` of `max`.
    Concurrency { in_progress: u64, max: u32 },
    /// The job's rate is used up for now: `per_minute`.
    Rate { per_minute: u64 },
    /// Nothing holds it: the scheduler's next round releases it.
    NextRound,
}

/// What the engine knows of the job at `now`, to say why its executions wait.
#[derive(Debug, Clone)]
pub struct WaitContext<'a> {
    pub job: &'a Job,
    pub stats: &'a PaceStats,
    /// What the open phase's gate waits for (empty without phases).
    pub gate: &'a [GateWait],
    pub now: Timestamp,
}

impl Waiting {
    /// A stable name for the reason, for APIs and filters.
    pub fn reason(&self) -> &'static str {
        match self {
            Waiting::Consent => "consent",
            Waiting::NotStarted => "not_started",
            Waiting::Schedule { .. } => "schedule",
            Waiting::Paused => "paused",
            Waiting::Phase { .. } => "phase_gate",
            Waiting::DeviceRequest => "device_request",
            Waiting::DeviceBusy { .. } => "device_busy",
            Waiting::Concurrency { .. } => "concurrency",
            Waiting::Rate { .. } => "rate",
            Waiting::NextRound => "next_round",
        }
    }

    /// A sentence for a person.
    pub fn describe(&self) -> String {
        match self {
            Waiting::Consent => "awaiting the end user's consent".into(),
            Waiting::NotStarted => "the job has not been started".into(),
            Waiting::Schedule { next: Some(at) } => format!("outside the job's schedule; it opens at {at}"),
            Waiting::Schedule { next: None } => "outside the job's schedule".into(),
            Waiting::Paused => "the job is paused".into(),
            Waiting::Phase { phase, open, gate } => {
                let waits: Vec<String> = gate.iter().map(GateWait::describe).collect();
                let on = if waits.is_empty() { "the next scheduler round".to_owned() } else { waits.join("; ") };
                format!("in phase {phase}; phase {open} is open and its gate waits for {on}")
            }
            Waiting::DeviceRequest => "the job is not pushed: the device gets it when it asks".into(),
            Waiting::DeviceBusy { job, action_id } => {
                format!("the device is busy with job `{job}` (execution {action_id})")
            }
            Waiting::Concurrency { in_progress, max } => {
                format!("the job's concurrency is used: {in_progress} of {max} in progress")
            }
            Waiting::Rate { per_minute } => format!("the job's rate of {per_minute} a minute is used for now"),
            Waiting::NextRound => "nothing: the scheduler's next round releases it".into(),
        }
    }
}

/// Why `e` waits, or `None` when it does not (it is released or finished).
/// `busy` is the other job's execution the device works on, if any.
pub fn why_waiting(e: &Execution, busy: Option<(&str, i64)>, ctx: &WaitContext<'_>) -> Option<Waiting> {
    let job = ctx.job;
    let open = job.open_phase();
    let phase_gate = || Waiting::Phase { phase: e.phase, open, gate: ctx.gate.to_vec() };
    match e.state {
        // The device is asked for consent once its phase opened (see `consent_offered`).
        ExecutionState::AwaitingConsent if job.state.is_finished() => return None,
        ExecutionState::AwaitingConsent if e.phase > open => return Some(phase_gate()),
        ExecutionState::AwaitingConsent => return Some(Waiting::Consent),
        ExecutionState::Queued => {}
        _ => return None,
    }
    match job.state {
        JobState::Created => return Some(Waiting::NotStarted),
        JobState::Scheduled => {
            return Some(Waiting::Schedule { next: job.spec.schedule.as_ref().and_then(|s| s.next_change(ctx.now)) });
        }
        JobState::Paused if job.held => return Some(Waiting::Paused),
        JobState::Paused => {
            return Some(Waiting::Schedule { next: job.spec.schedule.as_ref().and_then(|s| s.next_change(ctx.now)) });
        }
        s if s.is_finished() => return None,
        _ => {}
    }
    if e.phase > open {
        return Some(phase_gate());
    }
    if !job.spec.push {
        return Some(Waiting::DeviceRequest);
    }
    if let Some((job, action_id)) = busy {
        return Some(Waiting::DeviceBusy { job: job.to_owned(), action_id });
    }
    let pace = &job.spec.pace;
    if release_budget(pace, ctx.stats) == 0 {
        if ctx.stats.in_progress >= u64::from(pace.max_concurrency) {
            return Some(Waiting::Concurrency { in_progress: ctx.stats.in_progress, max: pace.max_concurrency });
        }
        return Some(Waiting::Rate { per_minute: current_rate(pace, ctx.stats).unwrap_or(0) });
    }
    Some(Waiting::NextRound)
}

/// Whether a device is asked for its consent to `e` now: not before the
/// execution's phase opened (the end user would be asked about an update
/// that may be days away, or never come).
pub fn consent_offered(e: &Execution, job: &Job) -> bool {
    e.state != ExecutionState::AwaitingConsent || e.phase <= job.open_phase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobKind, next_action};
    use crate::phase::{Gate, Phase};

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn job() -> Job {
        Job {
            id: "j".into(),
            name: None,
            description: None,
            kind: JobKind::Upgrade,
            firmware: "fw".into(),
            product: "p".into(),
            state: JobState::Running,
            consent_required: false,
            created_at: t(0),
            started_at: Some(t(0)),
            finished_at: None,
            spec: Default::default(),
            held: false,
            phase: Default::default(),
        }
    }

    fn queued(phase: u32) -> Execution {
        Execution {
            action_id: 1,
            action: next_action(0),
            job: "j".into(),
            device: "d".into(),
            firmware: "fw".into(),
            state: ExecutionState::Queued,
            attempt: 1,
            cancel_requested: false,
            phase,
            progress: None,
            created_at: t(0),
            updated_at: t(0),
            finished_at: None,
        }
    }

    #[test]
    fn reasons_in_the_engine_order() {
        let stats = PaceStats::default();
        let mut j = job();
        j.spec.phases = vec![
            Phase { percent: Some(10.0), gate: Gate { manual: true, ..Gate::default() }, ..Phase::default() },
            Phase::default(),
        ];
        let gate = [GateWait::Approval];
        let ctx = WaitContext { job: &j, stats: &stats, gate: &gate, now: t(1) };
        assert_eq!(
            why_waiting(&queued(1), None, &ctx),
            Some(Waiting::Phase { phase: 1, open: 0, gate: vec![GateWait::Approval] })
        );
        assert_eq!(
            why_waiting(&queued(0), Some(("other", 7)), &ctx),
            Some(Waiting::DeviceBusy { job: "other".into(), action_id: 7 })
        );
        assert_eq!(why_waiting(&queued(0), None, &ctx), Some(Waiting::NextRound));
        let full = PaceStats { in_progress: 300, ..PaceStats::default() };
        let ctx = WaitContext { job: &j, stats: &full, gate: &gate, now: t(1) };
        assert_eq!(why_waiting(&queued(0), None, &ctx), Some(Waiting::Concurrency { in_progress: 300, max: 300 }));
        j.held = true;
        j.state = JobState::Paused;
        let ctx = WaitContext { job: &j, stats: &stats, gate: &gate, now: t(1) };
        assert_eq!(why_waiting(&queued(1), None, &ctx), Some(Waiting::Paused));
        let mut consent = queued(0);
        consent.state = ExecutionState::AwaitingConsent;
        assert_eq!(why_waiting(&consent, None, &ctx), Some(Waiting::Consent));
        assert!(consent_offered(&consent, &j));
        consent.phase = 1;
        assert!(matches!(why_waiting(&consent, None, &ctx), Some(Waiting::Phase { phase: 1, .. })));
        assert!(!consent_offered(&consent, &j), "not asked before its phase opens");
        let mut running = queued(0);
        running.state = ExecutionState::Downloading;
        assert_eq!(why_waiting(&running, None, &ctx), None);
    }

    #[test]
    fn the_rate_holds_when_concurrency_does_not() {
        let mut j = job();
        j.spec.pace.max_per_minute = Some(60);
        let stats = PaceStats { released_last_minute: 1, released_by_second: vec![1], ..PaceStats::default() };
        let ctx = WaitContext { job: &j, stats: &stats, gate: &[], now: t(1) };
        assert_eq!(why_waiting(&queued(0), None, &ctx), Some(Waiting::Rate { per_minute: 60 }));
    }
}
