//! The jobs engine's scheduler: one tick walks every live job and applies the
//! core's rules in a fixed order. Each step is its own transaction in the
//! store, so a crash between steps leaves every execution in a state the next
//! tick continues from (a tick is idempotent: running it twice at the same
//! `now` changes nothing the second time).
//!
//! Order per job: schedule (start, pause, resume, end) → timeouts → abort →
//! phases (error threshold, gate) → retries → continuous re-evaluation → releases within the pace → completion.
//!
//! Replicas sharing a PostgreSQL database share the jobs through a lease per
//! job row (`Store::lease_job`): a replica ticks only the jobs it holds, and
//! takes over a job whose holder has not renewed it for [`LEASE`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::store::StoreResult;
use jiff::{SignedDuration, Timestamp};
use updraft_core::job::{ExecutionState, Job, JobState};
use updraft_core::rollout::{PaceStats, Recurrence, abort_reason, release_budget};

use crate::App;
use crate::targeting;

/// What one tick did, summed over jobs (for tests, logs and metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub jobs: u64,
    pub released: u64,
    pub timed_out: u64,
    pub retried: u64,
    pub added: u64,
    pub moved: u64,
}

/// When each continuous job was last fully re-evaluated (per replica: a
/// missed or repeated evaluation only costs time, never correctness, since
/// adding executions is idempotent).
#[derive(Default)]
pub struct Reevaluations {
    last: Mutex<HashMap<(String, String), Timestamp>>,
}

impl Reevaluations {
    /// Forgets jobs that are no longer live.
    fn keep_only<'a>(&self, live: impl Iterator<Item = (&'a str, &'a str)>) {
        let live: std::collections::HashSet<(&str, &str)> = live.collect();
        self.last.lock().expect("not poisoned").retain(|(t, j), _| live.contains(&(t.as_str(), j.as_str())));
    }

    fn due(&self, tenant: &str, job: &str, now: Timestamp, every: SignedDuration) -> bool {
        let mut last = self.last.lock().expect("not poisoned");
        let key = (tenant.to_owned(), job.to_owned());
        match last.get(&key) {
            Some(t) if now.duration_since(*t) < every => false,
            _ => {
                last.insert(key, now);
                true
            }
        }
    }
}

/// How long a replica holds a job once it ticked it: another replica takes
/// the job over when this one stops ticking for this long.
const LEASE: SignedDuration = SignedDuration::from_secs(10);

/// One round over every live job as of `now`, for the jobs this replica
/// holds (or can take) the lease of.
pub async fn tick(state: &App, now: Timestamp) -> StoreResult<TickReport> {
    let mut report = TickReport::default();
    let live = state.store.live_jobs().await?;
    state.reevaluations.keep_only(live.iter().map(|(t, j)| (t.as_str(), j.id.as_str())));
    for (tenant, job) in live {
        if !state.store.lease_job(&tenant, &job.id, &state.replica, now + LEASE, now).await? {
            continue;
        }
        report.jobs += 1;
        if let Err(e) = step_job(state, &tenant, job, now, &mut report).await {
            tracing::warn!(tenant = %tenant, error = %e, "scheduler step failed");
        }
    }
    Ok(report)
}

async fn step_job(state: &App, tenant: &str, mut job: Job, now: Timestamp, report: &mut TickReport) -> StoreResult<()> {
    let store = state.store.as_ref();
    // The schedule.
    if let Some(next) = job.on_tick(now) {
        if let Some(moved) = store.move_job(tenant, &job.id, job.state, next, false, now).await? {
            tracing::info!(job = %job.id, from = job.state.as_str(), to = next.as_str(), "job moved by its schedule");
            report.moved += 1;
            job = moved;
        } else {
            return Ok(());
        }
    }
    if job.state.is_finished() {
        return Ok(());
    }
    // Timeouts apply while paused too: the device was given the work.
    // The job's timeout, and the step timers devices started (AWS IoT Jobs' `stepTimeoutInMinutes`).
    let released_before = job.spec.timeout_seconds.map(|secs| now - SignedDuration::from_secs(i64::from(secs)));
    let timed_out = store.time_out_executions(tenant, &job.id, released_before, now).await?;
    report.timed_out += timed_out.len() as u64;
    // Abort.
    if !job.spec.pace.abort.is_empty() {
        let counts: BTreeMap<ExecutionState, u64> =
            store.execution_counts(tenant, &job.id).await?.into_iter().collect();
        if let Some(rule) = abort_reason(&job.spec.pace.abort, &counts) {
            if store.move_job(tenant, &job.id, job.state, JobState::Aborted, false, now).await?.is_some() {
                tracing::warn!(job = %job.id, failure = ?rule.failure, threshold = rule.threshold_percent, "job aborted");
                report.moved += 1;
            }
            return Ok(());
        }
    }
    if job.state != JobState::Running {
        return Ok(());
    }
    if job.spec.phases.len() > 1 {
        job = crate::phases::step(state, tenant, job, now).await?;
        if job.state != JobState::Running {
            report.moved += 1;
            return Ok(());
        }
    }
    let retried = store.retry_executions(tenant, &job.id, &job.spec.retry, now).await?;
    report.retried += retried.len() as u64;
    if job.spec.recurrence == Recurrence::Continuous {
        let every = SignedDuration::from_secs(state.config.continuous_reevaluation_secs.max(1) as i64);
        if state.reevaluations.due(tenant, &job.id, now, every) {
            report.added += targeting::reevaluate(state, tenant, &job, now).await?;
        }
    }
    if job.spec.push {
        // The pace is read and spent in the release's own transaction, as the job stands then.
        let budget = |j: &Job, stats: &PaceStats| {
            if j.state == JobState::Running && j.spec.push { release_budget(&j.spec.pace, stats) } else { 0 }
        };
        let started = std::time::Instant::now();
        let released =
            store.release_executions(tenant, &job.id, None, &budget, &|| now.max(state.now())).await?.devices();
        if !released.is_empty() {
            tracing::debug!(job = %job.id, released = released.len(), elapsed_ms = started.elapsed().as_millis() as u64, "executions released");
        }
        report.released += released.len() as u64;
    }
    if store.complete_job_if_done(tenant, &job.id, now).await? {
        tracing::info!(job = %job.id, "job completed");
        report.moved += 1;
    }
    Ok(())
}
