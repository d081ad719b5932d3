//! Phased jobs: the scheduler's step over a job's phases (the core's
//! `phase::on_tick`, kept with the job by compare-and-set), an operator's
//! approval of the open phase's gate, and what the job's progress shows of
//! its phases.

use jiff::Timestamp;
use updraft_core::Access;
use updraft_core::job::Job;
use updraft_core::phase::{self, GateWait, PhaseCounts, PhaseState};

use crate::error::{Error, ErrorCode, Result};
use crate::jobs::JobReport;
use crate::store::StoreResult;
use crate::{Actor, App};

/// The open phase of a phased job, as its progress shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseProgress {
    /// The open phase (0 for the first).
    pub index: u32,
    pub name: Option<String>,
    /// How many phases the job has.
    pub of: u32,
    /// The open phase's executions, counted.
    pub counts: PhaseCounts,
    /// What its gate still waits for before the next phase opens (empty: it
    /// opens at the scheduler's next round; none at all in the last phase).
    pub waiting_for: Vec<GateWait>,
}

/// Counts one phase's executions.
pub(crate) async fn counts(app: &App, tenant: &str, job: &Job, phase: u32) -> StoreResult<PhaseCounts> {
    let mut c = PhaseCounts::default();
    for (state, attempt, n) in app.store.phase_counts(tenant, &job.id, phase).await? {
        c.add(state, attempt, job.spec.retry.count, n);
    }
    Ok(c)
}

/// The open phase and what its gate waits for (`None` without phases).
pub(crate) async fn progress(app: &App, tenant: &str, job: &Job, now: Timestamp) -> StoreResult<Option<PhaseProgress>> {
    let phases = &job.spec.phases;
    if phases.len() < 2 {
        return Ok(None);
    }
    let k = job.phase.current;
    let Some(phase) = phases.get(k as usize) else { return Ok(None) };
    let counts = counts(app, tenant, job, k).await?;
    let last = k as usize + 1 == phases.len();
    let waiting_for = if last { Vec::new() } else { phase::gate_waits(phase, &counts, &job.phase, now) };
    Ok(Some(PhaseProgress { index: k, name: phase.name.clone(), of: phases.len() as u32, counts, waiting_for }))
}

/// The scheduler's step over a running phased job: pauses it when the open
/// phase's errors reached their threshold, notes its completion, opens the
/// next phase when the gate passed. Answers the job as it stands after.
pub(crate) async fn step(app: &App, tenant: &str, mut job: Job, now: Timestamp) -> StoreResult<Job> {
    let k = job.phase.current;
    let counts = counts(app, tenant, &job, k).await?;
    let Some(step) = phase::on_tick(&job.spec.phases, &job.phase, &counts, now) else { return Ok(job) };
    if app.store.set_job_phase(tenant, &job.id, &job.phase, &step.state, step.pause).await? {
        if step.pause {
            tracing::warn!(job = %job.id, phase = k, failed = counts.failed, finished = counts.finished(), "job paused: the phase's error threshold was reached");
            job.state = updraft_core::job::JobState::Paused;
            job.held = true;
        }
        if let Some(opened) = step.opened {
            tracing::info!(job = %job.id, phase = opened, "phase opened");
        }
        job.phase = step.state;
    }
    Ok(job)
}

impl App {
    /// An operator approves the open phase's gate (`force`: opens the next
    /// phase now, whatever else the gate waits for). The next phase opens at
    /// once when nothing else holds it.
    pub async fn next_phase(&self, actor: &Actor, id: &str, force: bool) -> Result<JobReport> {
        actor.require(Access::WriteFleet)?;
        let tenant = actor.tenant();
        let now = self.now();
        for _ in 0..5 {
            let job = self.load_job(tenant, id).await?;
            if job.state.is_finished() {
                return Err(Error::new(ErrorCode::JobState, format!("job `{id}` is {}", job.state.as_str())));
            }
            let phases = &job.spec.phases;
            let k = job.phase.current as usize;
            if phases.len() < 2 {
                return Err(Error::new(ErrorCode::NoNextPhase, format!("job `{id}` has no phases")));
            }
            if k + 1 >= phases.len() {
                return Err(Error::new(ErrorCode::NoNextPhase, format!("job `{id}` is in its last phase")));
            }
            let mut next = PhaseState { approved: true, ..job.phase.clone() };
            let counts = counts(self, tenant, &job, k as u32).await?;
            if force || phase::gate_waits(&phases[k], &counts, &next, now).is_empty() {
                next = phase::open_next(&next, now);
            }
            if self.store.set_job_phase(tenant, id, &job.phase, &next, false).await? {
                tracing::info!(job = %id, phase = next.current, force, "phase gate approved");
                return self.report(tenant, id).await;
            }
        }
        Err(Error::new(ErrorCode::JobState, format!("job `{id}` kept changing; try again")))
    }
}
