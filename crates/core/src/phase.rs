//! Phased rollouts: a job's devices split into ordered phases, each reaching
//! a larger share of them, with a gate to pass before the next one opens and
//! an error threshold that pauses the job for a person to look.
//!
//! - Shares are cumulative (phase 2 holds phase 1's devices plus new ones) and
//!   chosen by the job's stable hash ([`share_hash`], the one the gray share
//!   uses): devices are ranked by it, and phase `k` takes the first
//!   `percent × N` (or `devices`) of them. The last phase takes the rest.
//! - A device joining a continuous job later falls into the phase open then.
//! - A gate is every condition it names: `manual` (an operator approved),
//!   `success_percent` (of the phase's finished executions, once
//!   `min_finished` of them finished), `wait_seconds` (a soak time after the
//!   phase completed). A gate naming none opens when the phase completed.
//! - An error threshold pauses the job (held, as an operator's pause) the
//!   first time the phase's failures reach it; resuming goes on.
//!
//! Invariant (the release honours it, the property test in the store's
//! conformance suite checks it): an execution of phase `k` is never released
//! before the gates of phases `0 … k-1` opened.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::FieldError;
use crate::job::ExecutionState;
use crate::rollout::share_hash;

/// The most phases a job may have.
pub const MAX_PHASES: usize = 20;
/// The longest soak time (30 days).
pub const MAX_WAIT_SECONDS: u64 = 30 * 24 * 3600;

/// One phase of a job, as the operator gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Phase {
    pub name: Option<String>,
    /// The share of the job's devices reached once this phase opens, earlier
    /// phases' included, in percent (above 0, at most 100).
    pub percent: Option<f64>,
    /// The same share as a number of devices.
    pub devices: Option<u64>,
    /// What must hold before the next phase opens.
    pub gate: Gate,
    /// Pause the job when this phase's failures reach this share.
    pub error_threshold: Option<ErrorThreshold>,
}

/// The conditions a phase must meet before the next one opens (all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gate {
    /// An operator approves (`POST /api/v1/jobs/{id}/phases/next`).
    pub manual: bool,
    /// At least this share of the phase's finished executions succeeded.
    pub success_percent: Option<f64>,
    /// At least this many of the phase's executions finished (all of them
    /// when it has fewer); 1 by default when `success_percent` is set.
    pub min_finished: Option<u64>,
    /// The phase completed (every execution finished, no retry due) this long ago.
    pub wait_seconds: Option<u64>,
}

impl Gate {
    fn is_empty(&self) -> bool {
        !self.manual && self.success_percent.is_none() && self.min_finished.is_none() && self.wait_seconds.is_none()
    }
}

/// Pause the job when, among at least `min_finished` finished executions of
/// the phase, failures (failed, timed out, rejected) reach `percent`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorThreshold {
    pub percent: f64,
    #[serde(default = "one")]
    pub min_finished: u64,
}

fn one() -> u64 {
    1
}

/// Where a phased job is: kept with the job, changed by the scheduler and by
/// an operator's approval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseState {
    /// The open phase: its executions and every earlier phase's may be released.
    pub current: u32,
    /// When phases `1 … current` opened (phase 0 opens with the job).
    pub opened_at: Vec<Timestamp>,
    /// An operator approved the open phase's gate.
    pub approved: bool,
    /// When the open phase was last seen complete (for a soak time).
    pub completed_at: Option<Timestamp>,
    /// Phases whose error threshold paused the job already (it pauses once per phase).
    pub error_paused: Vec<u32>,
}

/// The executions of one phase, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    pub total: u64,
    pub succeeded: u64,
    /// Failed, timed out or rejected.
    pub failed: u64,
    /// Skipped or canceled: finished without a verdict.
    pub dropped: u64,
    /// Not finished yet (queued, awaiting consent, in progress).
    pub unfinished: u64,
    /// Failed or timed out with a retry still to come.
    pub retry_pending: u64,
}

impl PhaseCounts {
    /// Counts `n` executions in `state` at `attempt`, of a job retrying `retries` times.
    pub fn add(&mut self, state: ExecutionState, attempt: u32, retries: u32, n: u64) {
        use ExecutionState as S;
        self.total += n;
        match state {
            S::Succeeded => self.succeeded += n,
            S::Failed | S::TimedOut => {
                self.failed += n;
                if attempt <= retries {
                    self.retry_pending += n;
                }
            }
            S::Rejected => self.failed += n,
            S::Skipped | S::Canceled => self.dropped += n,
            _ => self.unfinished += n,
        }
    }

    /// Executions that ended with a verdict (succeeded or failed).
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// Every execution finished and none will be retried.
    pub fn complete(&self) -> bool {
        self.unfinished == 0 && self.retry_pending == 0
    }

    /// Succeeded among the finished, in percent; `None` before any finished.
    pub fn success_percent(&self) -> Option<f64> {
        let f = self.finished();
        (f > 0).then(|| self.succeeded as f64 * 100.0 / f as f64)
    }
}

/// A condition of a gate not met yet: why the next phase waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GateWait {
    /// An operator's approval.
    Approval,
    /// More finished executions: `have` of `need`.
    Finished { have: u64, need: u64 },
    /// A higher success rate: `have` (percent; `None` before any finished) of `need`.
    SuccessRate { have: Option<f64>, need: f64 },
    /// The phase to complete: `unfinished` executions are not finished (or will be retried).
    Completion { unfinished: u64 },
    /// The soak time after completion, until `until`.
    Soak { until: Timestamp },
}

impl GateWait {
    /// A stable name for the condition.
    pub fn reason(&self) -> &'static str {
        match self {
            GateWait::Approval => "approval",
            GateWait::Finished { .. } => "finished",
            GateWait::SuccessRate { .. } => "success_rate",
            GateWait::Completion { .. } => "completion",
            GateWait::Soak { .. } => "soak",
        }
    }

    /// A sentence for a person.
    pub fn describe(&self) -> String {
        match self {
            GateWait::Approval => "an operator's approval (POST /api/v1/jobs/{id}/phases/next)".into(),
            GateWait::Finished { have, need } => format!("{have} of {need} executions finished"),
            GateWait::SuccessRate { have: Some(h), need } => format!("{h:.1} % succeeded, {need} % needed"),
            GateWait::SuccessRate { have: None, need } => format!("none finished yet, {need} % must succeed"),
            GateWait::Completion { unfinished } => format!("{unfinished} executions of the phase to finish"),
            GateWait::Soak { until } => format!("the soak time, until {until}"),
        }
    }
}

/// Checks a job's phases; field names are the API's (`phases.1.percent`).
pub fn validate(phases: &[Phase], errors: &mut Vec<FieldError>) {
    if phases.len() > MAX_PHASES {
        errors.push(FieldError::new("phases", format!("at most {MAX_PHASES} phases")));
        return;
    }
    let last = phases.len().saturating_sub(1);
    let mut prev_percent: Option<f64> = None;
    let mut prev_devices: Option<u64> = None;
    for (i, p) in phases.iter().enumerate() {
        let f = |name: &str| format!("phases.{i}.{name}");
        if let Some(n) = &p.name {
            crate::validate::text(&f("name"), n, 64, errors);
        }
        match (p.percent, p.devices) {
            (Some(_), Some(_)) => errors.push(FieldError::new(f("percent"), "give percent or devices, not both")),
            (None, None) if i != last => errors
                .push(FieldError::new(f("percent"), "say how much of the job this phase reaches: percent or devices")),
            (Some(pc), None) => {
                if !(pc > 0.0 && pc <= 100.0) {
                    errors.push(FieldError::new(f("percent"), "must be above 0 and at most 100"));
                } else if prev_percent.is_some_and(|q| pc <= q) {
                    errors.push(FieldError::new(
                        f("percent"),
                        "shares are cumulative: each phase reaches more than the one before",
                    ));
                } else if i == last && pc < 100.0 {
                    errors.push(FieldError::new(f("percent"), "the last phase takes the rest: 100 or nothing"));
                }
                prev_percent = Some(pc);
            }
            (None, Some(d)) => {
                if i == last {
                    errors.push(FieldError::new(f("devices"), "the last phase takes the rest: give it no share"));
                } else if d == 0 {
                    errors.push(FieldError::new(f("devices"), "must be at least 1"));
                } else if prev_devices.is_some_and(|q| d <= q) {
                    errors.push(FieldError::new(
                        f("devices"),
                        "shares are cumulative: each phase reaches more than the one before",
                    ));
                }
                prev_devices = Some(d);
            }
            (None, None) => {}
        }
        let g = &p.gate;
        if i == last && !g.is_empty() {
            errors.push(FieldError::new(f("gate"), "the last phase has no next phase to open"));
        }
        if let Some(s) = g.success_percent
            && !(s > 0.0 && s <= 100.0)
        {
            errors.push(FieldError::new(f("gate.success_percent"), "must be above 0 and at most 100"));
        }
        if g.min_finished == Some(0) {
            errors.push(FieldError::new(f("gate.min_finished"), "must be at least 1"));
        }
        if let Some(w) = g.wait_seconds
            && w > MAX_WAIT_SECONDS
        {
            errors.push(FieldError::new(f("gate.wait_seconds"), format!("at most {MAX_WAIT_SECONDS} (30 days)")));
        }
        if let Some(t) = &p.error_threshold {
            if !(t.percent > 0.0 && t.percent <= 100.0) {
                errors.push(FieldError::new(f("error_threshold.percent"), "must be above 0 and at most 100"));
            }
            if t.min_finished == 0 {
                errors.push(FieldError::new(f("error_threshold.min_finished"), "must be at least 1"));
            }
        }
    }
}

/// How many of `n` ranked devices each phase reaches (cumulative, never
/// decreasing; the last phase reaches all `n`).
pub fn reach(phases: &[Phase], n: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(phases.len());
    let mut prev = 0u64;
    for (i, p) in phases.iter().enumerate() {
        let r = if i + 1 == phases.len() {
            n
        } else {
            match (p.percent, p.devices) {
                (Some(pc), _) => ((pc / 100.0 * n as f64).ceil() as u64).min(n),
                (None, Some(d)) => d.min(n),
                (None, None) => n,
            }
        };
        prev = prev.max(r);
        out.push(prev);
    }
    out
}

/// The phase of each of `devices` (a job's initial selection): ranked by the
/// job's stable hash, the first `reach[0]` in phase 0, and so on.
pub fn assign(job: &str, phases: &[Phase], devices: &[&str]) -> Vec<u32> {
    let mut out = vec![0u32; devices.len()];
    if phases.len() < 2 {
        return out;
    }
    let reach = reach(phases, devices.len() as u64);
    let mut order: Vec<(u64, &str, usize)> =
        devices.iter().enumerate().map(|(i, d)| (share_hash(job, d), *d, i)).collect();
    order.sort_unstable();
    let mut k = 0usize;
    for (rank, (_, _, i)) in order.into_iter().enumerate() {
        while k + 1 < reach.len() && rank as u64 >= reach[k] {
            k += 1;
        }
        out[i] = k as u32;
    }
    out
}

/// What the open phase's gate still waits for at `now` (nothing: it is open).
pub fn gate_waits(phase: &Phase, counts: &PhaseCounts, state: &PhaseState, now: Timestamp) -> Vec<GateWait> {
    let g = &phase.gate;
    let mut out = Vec::new();
    if g.manual && !state.approved {
        out.push(GateWait::Approval);
    }
    let eligible = counts.total - counts.dropped;
    if g.success_percent.is_some() || g.min_finished.is_some() {
        let need = g.min_finished.unwrap_or(1).min(eligible);
        if counts.finished() < need {
            out.push(GateWait::Finished { have: counts.finished(), need });
        }
    }
    if let Some(need) = g.success_percent
        && eligible > 0
    {
        let have = counts.success_percent();
        if have.is_none_or(|h| h < need) {
            out.push(GateWait::SuccessRate { have, need });
        }
    }
    if g.wait_seconds.is_some() || g.is_empty() {
        match state.completed_at {
            None => out.push(GateWait::Completion { unfinished: counts.unfinished + counts.retry_pending }),
            Some(at) => {
                let until = at + SignedDuration::from_secs(g.wait_seconds.unwrap_or(0) as i64);
                if now < until {
                    out.push(GateWait::Soak { until });
                }
            }
        }
    }
    out
}

/// Whether the phase's failures reached its error threshold.
pub fn errors_exceeded(phase: &Phase, counts: &PhaseCounts) -> bool {
    phase.error_threshold.is_some_and(|t| {
        let finished = counts.finished();
        finished >= t.min_finished.max(1) && counts.failed as f64 * 100.0 >= t.percent * finished as f64
    })
}

/// What a tick does to a running phased job, given the open phase's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseStep {
    /// The job's phase state after the tick.
    pub state: PhaseState,
    /// The open phase's error threshold was reached: pause the job.
    pub pause: bool,
    /// The phase that opened, if one did.
    pub opened: Option<u32>,
}

/// The phase rules at a tick of a running job: the error threshold first
/// (pausing the job once per phase), then completion (kept for the soak
/// time), then the gate. `None` when nothing changes. At most one phase opens
/// per tick: the next one's counts are read on the next tick.
pub fn on_tick(phases: &[Phase], state: &PhaseState, counts: &PhaseCounts, now: Timestamp) -> Option<PhaseStep> {
    let k = state.current as usize;
    let phase = phases.get(k)?;
    let mut s = state.clone();
    if errors_exceeded(phase, counts) && !s.error_paused.contains(&state.current) {
        s.error_paused.push(state.current);
        return Some(PhaseStep { state: s, pause: true, opened: None });
    }
    s.completed_at = match (counts.complete(), s.completed_at) {
        (true, None) => Some(now),
        (true, at) => at,
        (false, _) => None,
    };
    let mut opened = None;
    if k + 1 < phases.len() && gate_waits(phase, counts, &s, now).is_empty() {
        s = open_next(&s, now);
        opened = Some(s.current);
    }
    (s != *state).then_some(PhaseStep { state: s, pause: false, opened })
}

/// The state once the next phase opened at `now`.
pub fn open_next(state: &PhaseState, now: Timestamp) -> PhaseState {
    let mut s = state.clone();
    s.current += 1;
    s.opened_at.push(now);
    s.approved = false;
    s.completed_at = None;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn pct(p: f64, gate: Gate) -> Phase {
        Phase { percent: Some(p), gate, ..Phase::default() }
    }

    fn last() -> Phase {
        Phase::default()
    }

    fn counts(succeeded: u64, failed: u64, unfinished: u64) -> PhaseCounts {
        PhaseCounts { total: succeeded + failed + unfinished, succeeded, failed, unfinished, ..Default::default() }
    }

    #[test]
    fn shares_are_cumulative_and_stable() {
        let phases = vec![pct(10.0, Gate::default()), pct(50.0, Gate::default()), last()];
        let ids: Vec<String> = (0..1000).map(|i| format!("d{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let a = assign("job", &phases, &refs);
        assert_eq!(a.iter().filter(|&&p| p == 0).count(), 100);
        assert_eq!(a.iter().filter(|&&p| p <= 1).count(), 500);
        assert_eq!(a.len(), 1000);
        // The same devices, in another order, land in the same phases.
        let mut rev = refs.clone();
        rev.reverse();
        let b = assign("job", &phases, &rev);
        for (i, d) in rev.iter().enumerate() {
            assert_eq!(b[i], a[refs.iter().position(|x| x == d).unwrap()]);
        }
        // Phase 0 of 10 % lies within phase 0 of a 20 % first phase: same ranking.
        let wider = vec![pct(20.0, Gate::default()), last()];
        let w = assign("job", &wider, &refs);
        assert!(a.iter().zip(&w).all(|(x, y)| *x != 0 || *y == 0));
    }

    #[test]
    fn device_counts_and_small_fleets() {
        let phases = vec![
            Phase { devices: Some(2), ..Phase::default() },
            Phase { devices: Some(5), ..Phase::default() },
            last(),
        ];
        assert_eq!(reach(&phases, 3), vec![2, 3, 3]);
        assert_eq!(reach(&phases, 100), vec![2, 5, 100]);
        let a = assign("j", &phases, &["a", "b", "c"]);
        assert_eq!(a.iter().filter(|&&p| p == 0).count(), 2);
        assert_eq!(a.iter().filter(|&&p| p == 1).count(), 1);
        assert_eq!(reach(&[pct(1.0, Gate::default()), last()], 10), vec![1, 10]);
    }

    #[test]
    fn validation_names_every_problem() {
        let mut errors = Vec::new();
        let phases = vec![
            pct(50.0, Gate { success_percent: Some(150.0), min_finished: Some(0), ..Gate::default() }),
            pct(40.0, Gate::default()),
            Phase { percent: Some(90.0), gate: Gate { manual: true, ..Gate::default() }, ..Phase::default() },
        ];
        validate(&phases, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "phases.0.gate.success_percent",
                "phases.0.gate.min_finished",
                "phases.1.percent",
                "phases.2.percent",
                "phases.2.gate"
            ]
        );
        let mut ok = Vec::new();
        validate(&[Phase { devices: Some(10), ..Phase::default() }, pct(100.0, Gate::default())], &mut ok);
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn a_manual_gate_waits_for_approval() {
        let phases = vec![pct(10.0, Gate { manual: true, ..Gate::default() }), last()];
        let s = PhaseState::default();
        assert_eq!(on_tick(&phases, &s, &counts(5, 0, 0), t(0)).unwrap().opened, None);
        let approved = PhaseState { approved: true, ..s };
        let step = on_tick(&phases, &approved, &counts(0, 0, 5), t(1)).unwrap();
        assert_eq!(step.opened, Some(1));
        assert_eq!(step.state.opened_at, vec![t(1)]);
        assert!(!step.state.approved);
    }

    #[test]
    fn success_gate_needs_its_minimum_and_its_rate() {
        let gate = Gate { success_percent: Some(90.0), min_finished: Some(10), ..Gate::default() };
        let phases = [pct(10.0, gate), last()];
        let s = PhaseState::default();
        let w = gate_waits(&phases[0], &counts(9, 0, 11), &s, t(0));
        assert_eq!(w, vec![GateWait::Finished { have: 9, need: 10 }]);
        let w = gate_waits(&phases[0], &counts(8, 2, 10), &s, t(0));
        assert_eq!(w, vec![GateWait::SuccessRate { have: Some(80.0), need: 90.0 }]);
        assert!(gate_waits(&phases[0], &counts(9, 1, 10), &s, t(0)).is_empty());
        // A phase smaller than the minimum needs all of it.
        assert!(gate_waits(&phases[0], &counts(3, 0, 0), &s, t(0)).is_empty());
        // An empty phase passes.
        assert!(gate_waits(&phases[0], &PhaseCounts::default(), &s, t(0)).is_empty());
    }

    #[test]
    fn wait_gate_soaks_after_completion() {
        let phases = vec![pct(10.0, Gate { wait_seconds: Some(3600), ..Gate::default() }), last()];
        let s = PhaseState::default();
        let step = on_tick(&phases, &s, &counts(3, 1, 1), t(0));
        assert!(step.is_none(), "nothing changes while the phase runs");
        let step = on_tick(&phases, &s, &counts(4, 1, 0), t(10)).unwrap();
        assert_eq!(step.state.completed_at, Some(t(10)));
        assert_eq!(step.opened, None);
        assert_eq!(
            gate_waits(&phases[0], &counts(4, 1, 0), &step.state, t(100)),
            vec![GateWait::Soak { until: t(3610) }]
        );
        assert!(on_tick(&phases, &step.state, &counts(4, 1, 0), t(3609)).is_none());
        assert_eq!(on_tick(&phases, &step.state, &counts(4, 1, 0), t(3610)).unwrap().opened, Some(1));
        // A retry still to come keeps the phase from completing.
        let retrying = PhaseCounts { retry_pending: 1, ..counts(4, 1, 0) };
        assert!(on_tick(&phases, &s, &retrying, t(10)).is_none());
    }

    #[test]
    fn an_empty_gate_opens_on_completion_and_combinations_need_all() {
        let phases = vec![pct(10.0, Gate::default()), last()];
        assert_eq!(on_tick(&phases, &PhaseState::default(), &counts(2, 0, 0), t(0)).unwrap().opened, Some(1));
        let both = Gate { manual: true, success_percent: Some(50.0), ..Gate::default() };
        let phases = [pct(10.0, both), last()];
        let approved = PhaseState { approved: true, ..PhaseState::default() };
        assert_eq!(
            gate_waits(&phases[0], &counts(0, 1, 0), &approved, t(0)),
            vec![GateWait::SuccessRate { have: Some(0.0), need: 50.0 }]
        );
    }

    #[test]
    fn the_error_threshold_pauses_once_per_phase() {
        let phases = vec![
            Phase {
                percent: Some(10.0),
                gate: Gate { manual: true, ..Gate::default() },
                error_threshold: Some(ErrorThreshold { percent: 20.0, min_finished: 5 }),
                ..Phase::default()
            },
            last(),
        ];
        let s = PhaseState::default();
        assert!(on_tick(&phases, &s, &counts(2, 2, 5), t(0)).is_none(), "under the minimum");
        let step = on_tick(&phases, &s, &counts(3, 2, 5), t(0)).unwrap();
        assert!(step.pause);
        assert_eq!(step.state.error_paused, vec![0]);
        assert!(on_tick(&phases, &step.state, &counts(3, 3, 5), t(1)).is_none(), "once");
    }
}
