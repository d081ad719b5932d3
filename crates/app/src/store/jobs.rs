//! Jobs, their executions, and what the jobs engine does to one job.

use async_trait::async_trait;
use jiff::Timestamp;
use updraft_core::job::{
    Execution, ExecutionEvent, ExecutionState, Job, JobState, Target, Transition, TransitionError,
};
use updraft_core::phase::PhaseState;
use updraft_core::rollout::{JobSpec, PaceStats, Retry};
use updraft_core::{Page, PageRequest};

use crate::store::StoreResult;

/// What the device API offers a device: its open execution (the oldest),
/// and the last one that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceActions {
    pub active: Option<Execution>,
    pub installed: Option<Execution>,
}

/// Which executions a list covers.
#[derive(Debug, Clone, Default)]
pub struct ExecutionScope {
    pub job: Option<String>,
    pub device: Option<String>,
    pub state: Option<ExecutionState>,
}

/// The rule that decides an execution's change, given its current record.
/// `Ok(None)` leaves it as it is.
pub type ExecutionRule<'a> = &'a (dyn Fn(&Execution) -> Result<Option<Transition>, TransitionError> + Send + Sync);

/// How many executions a release may set off, decided inside its transaction
/// from the job as stored and its pace statistics.
pub type ReleaseBudget<'a> = &'a (dyn Fn(&Job, &PaceStats) -> u64 + Send + Sync);

/// The clock a release reads: once for its pace statistics, and again, once
/// they are counted, for the time its executions are released at (so that
/// their histories never show more in progress than the pace allowed: an
/// execution that ended after the count ends after the release too).
pub type ReleaseClock<'a> = &'a (dyn Fn() -> Timestamp + Send + Sync);

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Released {
    /// What the budget allowed.
    pub allowed: u64,
    /// The executions released, oldest first.
    pub executions: Vec<Execution>,
}

impl Released {
    /// The devices released, oldest first.
    pub fn devices(&self) -> Vec<String> {
        self.executions.iter().map(|e| e.device.clone()).collect()
    }
}

/// Jobs and their executions: creating and reading them, an execution's
/// history, the changes devices report, and each step of the jobs engine on
/// one job (moves between states, releases within the pace, timeouts,
/// retries, added targets, completion). Every write that changes an
/// execution goes through the rules of `updraft_core::job` in its
/// transaction.
/// One bucket of [`JobStore::execution_timeline`]: releases, or finishes in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    pub bucket: i64,
    /// `None` for releases; the final state for finishes.
    pub state: Option<ExecutionState>,
    pub count: u64,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    // --- jobs and executions -------------------------------------------------------------

    /// Creates a job and one execution per target, in the target's initial state.
    /// Targets are devices read from the store: `Missing` names each one deleted
    /// since (a store may check every target; one that never existed is the
    /// caller's mistake). `Conflict` when the id is taken. A device busy with
    /// another job's execution is fine: its execution waits, queued, until the
    /// other one ends.
    async fn create_job(&self, tenant: &str, job: &Job, targets: &[Target], now: Timestamp) -> StoreResult<()>;
    async fn get_job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>>;
    async fn list_jobs(&self, tenant: &str, state: Option<JobState>, page: &PageRequest) -> StoreResult<Page<Job>>;
    /// The job's executions over time, in buckets of `bucket` from `from`: how
    /// many were released in each, and how many finished in each by final
    /// state (only buckets with some are returned).
    async fn execution_timeline(
        &self,
        tenant: &str,
        job: &str,
        from: Timestamp,
        bucket: jiff::SignedDuration,
    ) -> StoreResult<Vec<TimelineRow>>;
    /// How many executions of the job are in each state (states with none are left out).
    async fn execution_counts(&self, tenant: &str, job: &str) -> StoreResult<Vec<(ExecutionState, u64)>>;
    async fn list_executions(
        &self,
        tenant: &str,
        scope: &ExecutionScope,
        page: &PageRequest,
    ) -> StoreResult<Page<Execution>>;
    async fn get_execution(&self, tenant: &str, action_id: i64) -> StoreResult<Option<Execution>>;
    /// The execution of `device` that an action id names (see `Execution::action`),
    /// and the attempt that id was given to (an earlier one when it was retried since).
    async fn execution_by_action(
        &self,
        tenant: &str,
        device: &str,
        action: i64,
    ) -> StoreResult<Option<(Execution, u32)>>;
    /// The execution's history, oldest first.
    async fn execution_history(&self, tenant: &str, action_id: i64) -> StoreResult<Vec<ExecutionEvent>>;
    /// What the device API offers `device` (see [`DeviceActions`]).
    async fn device_actions(&self, tenant: &str, device: &str) -> StoreResult<DeviceActions>;
    /// [`DeviceActions::active`] of each of `devices` that has one, at once
    /// (a push to thousands of devices).
    async fn offered_executions(&self, tenant: &str, devices: &[String]) -> StoreResult<Vec<Execution>>;
    /// The histories of these executions of `tenant`, each oldest first, by
    /// action id (an execution of another tenant, or none, is absent).
    async fn execution_histories(
        &self,
        tenant: &str,
        action_ids: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, Vec<ExecutionEvent>>>;
    /// Changes one execution as `rule` decides, atomically with reading it: the
    /// new state, its history event, and what follows from it (a success sets
    /// the device's installed versions; the last execution to finish completes
    /// its job). `Ok(Err(_))` when the rule refuses the change.
    async fn change_execution(
        &self,
        tenant: &str,
        action_id: i64,
        rule: ExecutionRule<'_>,
        now: Timestamp,
    ) -> StoreResult<Result<Execution, TransitionError>>;

    // --- the jobs engine, one job at a time ----------------------------------------------

    /// Moves a job from `from` to `to` (and sets its hold) if it is still in
    /// `from`: `Ok(None)` when it was not (someone else moved it first). The
    /// first move to `running` sets `started_at`; a finished state sets
    /// `finished_at`, and finished state also ends the job's unstarted executions
    /// and asks its started ones to stop.
    async fn move_job(
        &self,
        tenant: &str,
        id: &str,
        from: JobState,
        to: JobState,
        held: bool,
        now: Timestamp,
    ) -> StoreResult<Option<Job>>;
    /// Replaces a job's specification (its schedule, say).
    async fn update_job_spec(&self, tenant: &str, id: &str, spec: &JobSpec) -> StoreResult<()>;
    /// What pacing needs to know of a job's executions at `now`.
    async fn pace_stats(&self, tenant: &str, job: &str, now: Timestamp) -> StoreResult<PaceStats>;
    /// Releases queued executions of the job to their devices (`notified`),
    /// oldest first, all in one write transaction: it reads the job (locked
    /// against other releases of it) and its [`PaceStats`] at `clock()`, asks
    /// `budget` how many it may release, and releases up to that many, skipping
    /// devices working on another execution (a device never has two in
    /// progress, however many releases run at once). `device` limits it to
    /// that device's execution (a device asking for the job).
    /// `NotFound` when the job does not exist.
    async fn release_executions(
        &self,
        tenant: &str,
        job: &str,
        device: Option<&str>,
        budget: ReleaseBudget<'_>,
        clock: ReleaseClock<'_>,
    ) -> StoreResult<Released>;
    /// Ends as `timed_out` the job's executions in progress released before `released_before`
    /// (the job's timeout, if it has one), and those whose step deadline (see
    /// [`JobStore::set_step_deadline`]) is before `now`.
    async fn time_out_executions(
        &self,
        tenant: &str,
        job: &str,
        released_before: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<Vec<String>>;
    /// Starts the step timer of execution `action_id` (AWS IoT Jobs' `stepTimeoutInMinutes`):
    /// it times out at `deadline` unless the timer is started again; releasing it again
    /// clears it. `false` when there is no such execution.
    async fn set_step_deadline(&self, tenant: &str, action_id: i64, deadline: Timestamp) -> StoreResult<bool>;
    /// Queues again the failed and timed-out executions whose retry is due.
    async fn retry_executions(
        &self,
        tenant: &str,
        job: &str,
        retry: &Retry,
        now: Timestamp,
    ) -> StoreResult<Vec<String>>;
    /// Adds executions to a job for devices it does not have yet (others, and
    /// devices deleted since they were read, are left as they are); answers how
    /// many were added.
    async fn add_executions(&self, tenant: &str, job: &Job, targets: &[Target], now: Timestamp) -> StoreResult<u64>;
    /// Whether the job has an execution for each of `devices`: those it has.
    async fn job_has_devices(&self, tenant: &str, job: &str, devices: &[String]) -> StoreResult<Vec<String>>;
    /// How many of the job's executions of `phase` are in each (state, attempt).
    async fn phase_counts(&self, tenant: &str, job: &str, phase: u32) -> StoreResult<Vec<(ExecutionState, u32, u64)>>;
    /// Replaces the job's phase state if it is still `expected` (`Ok(false)`
    /// otherwise); with `pause`, a running job is paused too (held, as an
    /// operator's pause), in the same transaction.
    async fn set_job_phase(
        &self,
        tenant: &str,
        id: &str,
        expected: &PhaseState,
        new: &PhaseState,
        pause: bool,
    ) -> StoreResult<bool>;
    /// Ends every unfinished execution of the job as canceled (a
    /// force-cancel), those the devices are working on included; answers their devices.
    async fn force_cancel_executions(&self, tenant: &str, job: &str, now: Timestamp) -> StoreResult<Vec<String>>;
    /// Moves a finished job from `from` back to `to` and queues its failed and
    /// timed-out executions again, each as a new attempt, in one transaction.
    /// `Ok(None)` when the job was not in `from`; else the devices queued.
    async fn retry_failed(
        &self,
        tenant: &str,
        id: &str,
        from: JobState,
        to: JobState,
        now: Timestamp,
    ) -> StoreResult<Option<Vec<String>>>;
    /// The executions in progress on `devices` for jobs other than `job`.
    async fn busy_elsewhere(&self, tenant: &str, job: &str, devices: &[String]) -> StoreResult<Vec<Execution>>;
    /// Completes a running or paused snapshot job with nothing left to do (no
    /// unfinished execution, no retry due); marks a verify job's firmware
    /// verified when every execution succeeded. Answers whether it completed.
    async fn complete_job_if_done(&self, tenant: &str, id: &str, now: Timestamp) -> StoreResult<bool>;
}
