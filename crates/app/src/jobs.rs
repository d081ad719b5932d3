//! Jobs: create, command, reschedule, estimate and report on them, and the
//! executions they hold (lists, consent). The scheduler carries them out.

use std::collections::{BTreeMap, HashMap};

use crate::store::ExecutionScope;
use jiff::Timestamp;
use updraft_core::job::{
    EventSource, Execution, ExecutionEvent, ExecutionState, Job, JobCommand, JobKind, JobState, on_consent,
};
use updraft_core::rollout::{JobSpec, MAX_VERIFY_DEVICES, Recurrence, current_rate};
use updraft_core::schedule::Schedule;
use updraft_core::waiting::{WaitContext, Waiting, why_waiting};
use updraft_core::{Access, Device, FieldError, Page, PageRequest, validate};

use crate::actor::new_id;
use crate::error::{Error, ErrorCode, Result};
use crate::{Actor, App, targeting};

/// A job as an operator asks for it, read off the wire.
#[derive(Debug, Clone)]
pub struct JobDraft {
    /// Generated when absent.
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: JobKind,
    pub firmware: String,
    pub spec: JobSpec,
    pub consent_required: bool,
    /// Start at once (default) or wait for a start command.
    pub start: bool,
    /// What reading the request already found wrong, reported with the rest.
    pub problems: Vec<FieldError>,
}

/// A job with its executions counted and its progress figured.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub job: Job,
    pub counts: BTreeMap<ExecutionState, u64>,
    pub progress: JobProgress,
    /// The open phase of a phased job.
    pub phase: Option<crate::phases::PhaseProgress>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobProgress {
    pub total: u64,
    /// Succeeded, failed, timed out, rejected, canceled or skipped.
    pub finished: u64,
    /// Succeeded among those that ended with a verdict, in percent.
    pub success_rate: Option<f64>,
    pub failure_rate: Option<f64>,
    pub in_progress: u64,
    /// Executions released in the last minute.
    pub current_rate_per_minute: u64,
    /// The rate the pace allows now (`None`: unlimited).
    pub allowed_rate_per_minute: Option<u64>,
    /// When the executions not yet finished should be, at the current rate.
    pub eta: Option<Timestamp>,
}

/// How many devices a job would select if it started now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Devices that would get an execution (queued or awaiting consent).
    pub count: u64,
    /// Devices already on the target version (counted as skipped).
    pub skipped: u64,
}

impl App {
    /// Creates a job and, unless asked not to, starts it: its devices are
    /// selected now (a snapshot) and the scheduler releases them at its pace.
    pub async fn create_job(&self, actor: &Actor, draft: JobDraft) -> Result<JobReport> {
        actor.require(Access::WriteFleet)?;
        let started = std::time::Instant::now();
        let tenant = actor.tenant();
        let store = self.store.as_ref();
        let mut errors = Vec::new();
        let id = draft.id.unwrap_or_else(|| new_id("job_"));
        validate::key("id", &id, &mut errors);
        if let Some(n) = &draft.name {
            validate::text("name", n, 256, &mut errors);
        }
        if let Some(d) = &draft.description {
            validate::description("description", d, validate::MAX_DESCRIPTION, &mut errors);
        }
        errors.extend(draft.problems);
        // References to what does not exist answer `not_found`, once the request is otherwise valid.
        let mut missing = Vec::new();
        let spec = draft.spec;
        if let Some(fid) = &spec.target.filter_id
            && store.get_saved_filter(tenant, fid).await?.is_none()
        {
            missing.push(FieldError::new("filter_id", format!("saved filter `{fid}` not found")));
        }
        spec.validate(&mut errors);
        let t = &spec.target;
        let kind = draft.kind;
        if kind == JobKind::Verify {
            if t.all || !t.groups.is_empty() || t.filter.is_some() || t.filter_id.is_some() || t.gray_percent.is_some()
            {
                errors.push(FieldError::new("kind", "a verify job names its devices: use `devices` only"));
            }
            if t.devices.is_empty() || t.devices.len() > MAX_VERIFY_DEVICES {
                errors
                    .push(FieldError::new("devices", format!("a verify job names 1 to {MAX_VERIFY_DEVICES} devices")));
            }
            if spec.recurrence == Recurrence::Continuous {
                errors.push(FieldError::new("recurrence", "a verify job is a snapshot"));
            }
        }
        for g in &t.groups {
            if store.get_group(tenant, g).await?.is_none() {
                missing.push(FieldError::new(format!("groups.{g}"), format!("group `{g}` not found")));
            }
        }
        let firmware = self.resolve_firmware(tenant, &draft.firmware).await?;
        if firmware.is_none() {
            missing.push(FieldError::new("firmware", format!("firmware `{}` not found", draft.firmware)));
        }
        let product = firmware.as_ref().map(|f| f.product.as_str());
        self.check_named(tenant, "devices", &t.devices, product, &mut errors, &mut missing).await?;
        self.check_named(tenant, "include", &t.include, product, &mut errors, &mut missing).await?;
        if !errors.is_empty() {
            return Err(Error::invalid(errors));
        }
        let Some(firmware) = firmware.filter(|_| missing.is_empty()) else {
            return Err(Error::missing(missing));
        };
        if kind == JobKind::Upgrade && firmware.needs_verification && !firmware.verified {
            return Err(Error::new(
                ErrorCode::FirmwareNotVerified,
                format!("firmware `{}` needs verification: run a verify job on it that succeeds first", firmware.id),
            ));
        }
        let now = self.now();
        let mut job = Job {
            id,
            name: draft.name,
            description: draft.description,
            kind,
            firmware: firmware.id.clone(),
            product: firmware.product.clone(),
            state: JobState::Created,
            consent_required: draft.consent_required,
            created_at: now,
            started_at: None,
            finished_at: None,
            spec,
            held: false,
            phase: Default::default(),
        };
        let targets = if draft.start {
            job.state = job.scheduled_state(now);
            if job.state == JobState::Running {
                job.started_at = Some(now);
            }
            if job.state.is_finished() {
                job.finished_at = Some(now);
            }
            targeting::initial(&job, targeting::resolve(self, tenant, &job, now).await?)
        } else {
            vec![]
        };
        let resolved = started.elapsed();
        store.create_job(tenant, &job, &targets, now).await?;
        store.complete_job_if_done(tenant, &job.id, now).await?;
        let written = started.elapsed();
        let report = self.report(tenant, &job.id).await;
        tracing::info!(
            job = %job.id,
            firmware = %job.firmware,
            devices = targets.len(),
            resolve_ms = resolved.as_millis() as u64,
            write_ms = (written - resolved).as_millis() as u64,
            report_ms = (started.elapsed() - written).as_millis() as u64,
            "job created"
        );
        report
    }

    /// Checks that each named device exists (else it is `missing`) and is of
    /// `product` (when the product is known).
    async fn check_named(
        &self,
        tenant: &str,
        field: &str,
        ids: &[String],
        product: Option<&str>,
        errors: &mut Vec<FieldError>,
        missing: &mut Vec<FieldError>,
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let found: HashMap<String, Device> =
            self.store.get_devices(tenant, ids).await?.into_iter().map(|d| (d.id.clone(), d)).collect();
        for id in ids {
            match found.get(id) {
                None => missing.push(FieldError::new(format!("{field}.{id}"), format!("device `{id}` not found"))),
                Some(d) if product.is_some_and(|product| d.product != product) => errors.push(FieldError::new(
                    format!("{field}.{id}"),
                    format!("device `{id}` is a `{}`, the image is for `{}`", d.product, product.unwrap_or_default()),
                )),
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) async fn load_job(&self, tenant: &str, id: &str) -> Result<Job> {
        self.store.get_job(tenant, id).await?.ok_or_else(|| Error::not_found("job", id))
    }

    /// A job with its counts and progress figures.
    pub(crate) async fn report(&self, tenant: &str, id: &str) -> Result<JobReport> {
        let job = self.load_job(tenant, id).await?;
        let now = self.now();
        let counts: BTreeMap<ExecutionState, u64> =
            self.store.execution_counts(tenant, &job.id).await?.into_iter().collect();
        let stats = self.store.pace_stats(tenant, &job.id, now).await?;
        let n = |s: ExecutionState| counts.get(&s).copied().unwrap_or(0);
        let total: u64 = counts.values().sum();
        let finished: u64 = counts.iter().filter(|(s, _)| s.is_terminal()).map(|(_, c)| c).sum();
        let judged = n(ExecutionState::Succeeded)
            + n(ExecutionState::Failed)
            + n(ExecutionState::TimedOut)
            + n(ExecutionState::Rejected);
        let rate = |x: u64| (judged > 0).then(|| (x as f64) * 100.0 / judged as f64);
        let remaining = total - finished;
        let eta = (stats.released_last_minute > 0 && remaining > 0 && job.state == JobState::Running).then(|| {
            let minutes = remaining as f64 / stats.released_last_minute as f64;
            now + jiff::SignedDuration::from_secs_f64(minutes * 60.0)
        });
        let progress = JobProgress {
            total,
            finished,
            success_rate: rate(n(ExecutionState::Succeeded)),
            failure_rate: rate(n(ExecutionState::Failed) + n(ExecutionState::TimedOut) + n(ExecutionState::Rejected)),
            in_progress: stats.in_progress,
            current_rate_per_minute: stats.released_last_minute,
            allowed_rate_per_minute: current_rate(&job.spec.pace, &stats),
            eta,
        };
        let phase = crate::phases::progress(self, tenant, &job, now).await?;
        Ok(JobReport { job, counts, progress, phase })
    }

    /// A job, its counts and its progress.
    pub async fn job_report(&self, actor: &Actor, id: &str) -> Result<JobReport> {
        actor.require(Access::Read)?;
        self.report(actor.tenant(), id).await
    }

    /// The tenant's jobs, optionally only those in `state`.
    pub async fn list_jobs(&self, actor: &Actor, state: Option<JobState>, page: &PageRequest) -> Result<Page<Job>> {
        actor.require(Access::Read)?;
        Ok(self.store.list_jobs(actor.tenant(), state, page).await?)
    }

    /// The executions of each of `jobs` counted by state (for a list of jobs).
    pub async fn jobs_counts(
        &self,
        actor: &Actor,
        jobs: &[String],
    ) -> Result<HashMap<String, BTreeMap<ExecutionState, u64>>> {
        actor.require(Access::Read)?;
        let mut out = HashMap::with_capacity(jobs.len());
        for id in jobs {
            let counts = self.store.execution_counts(actor.tenant(), id).await?;
            out.insert(id.clone(), counts.into_iter().collect());
        }
        Ok(out)
    }

    /// Applies an operator's command (start, pause, resume, cancel) to a job.
    pub async fn command_job(&self, actor: &Actor, id: &str, cmd: JobCommand) -> Result<JobReport> {
        actor.require(Access::WriteFleet)?;
        let tenant = actor.tenant();
        let store = self.store.as_ref();
        let now = self.now();
        for _ in 0..5 {
            let job = self.load_job(tenant, id).await?;
            let (to, held) = job.on_command(cmd, now).map_err(|_| {
                Error::new(
                    ErrorCode::JobState,
                    format!("job `{id}` is {}: it cannot be {cmd:?}d", job.state.as_str()).to_lowercase(),
                )
            })?;
            if cmd == JobCommand::Start {
                let targets = targeting::initial(&job, targeting::resolve(self, tenant, &job, now).await?);
                store.add_executions(tenant, &job, &targets, now).await?;
            }
            if let Some(moved) = store.move_job(tenant, id, job.state, to, held, now).await? {
                if cmd == JobCommand::Start {
                    store.complete_job_if_done(tenant, id, now).await?;
                }
                tracing::info!(job = %id, command = ?cmd, state = moved.state.as_str(), "job command");
                return self.report(tenant, id).await;
            }
        }
        Err(Error::new(ErrorCode::JobState, format!("job `{id}` kept changing; try again")))
    }

    /// Cancels a job by force: as `cancel`, and the executions devices are
    /// working on end at once (`canceled`) instead of waiting for the devices
    /// to confirm, so devices that will never answer free their slot and a
    /// later job can start on them. On a job already finished, ends what it
    /// still waits for.
    pub async fn force_cancel_job(&self, actor: &Actor, id: &str) -> Result<JobReport> {
        actor.require(Access::WriteFleet)?;
        let tenant = actor.tenant();
        let job = self.load_job(tenant, id).await?;
        if !job.state.is_finished() {
            self.command_job(actor, id, JobCommand::Cancel).await?;
        }
        let ended = self.store.force_cancel_executions(tenant, id, self.now()).await?;
        tracing::info!(job = %id, ended = ended.len(), "job canceled by force");
        self.report(tenant, id).await
    }

    /// Runs a completed or aborted job again for the devices that failed or
    /// timed out, each as a new attempt; the others stay as they are.
    pub async fn retry_failed(&self, actor: &Actor, id: &str) -> Result<JobReport> {
        actor.require(Access::WriteFleet)?;
        let tenant = actor.tenant();
        let now = self.now();
        for _ in 0..5 {
            let job = self.load_job(tenant, id).await?;
            let to = job.on_retry_failed(now).map_err(|e| {
                let why = match e {
                    updraft_core::job::TransitionError::Finished => "its schedule has ended".to_owned(),
                    _ => format!("it is {}: only a completed or aborted job retries its failures", job.state.as_str()),
                };
                Error::new(ErrorCode::JobState, format!("job `{id}` cannot be retried: {why}"))
            })?;
            let counts: BTreeMap<ExecutionState, u64> =
                self.store.execution_counts(tenant, id).await?.into_iter().collect();
            if [ExecutionState::Failed, ExecutionState::TimedOut].iter().all(|s| counts.get(s).is_none_or(|n| *n == 0))
            {
                return Err(Error::new(
                    ErrorCode::JobState,
                    format!("job `{id}` has no failed or timed-out executions to retry"),
                ));
            }
            if let Some(devices) = self.store.retry_failed(tenant, id, job.state, to, now).await? {
                tracing::info!(job = %id, retried = devices.len(), "failed executions retried");
                self.store.complete_job_if_done(tenant, id, now).await?;
                return self.report(tenant, id).await;
            }
        }
        Err(Error::new(ErrorCode::JobState, format!("job `{id}` kept changing; try again")))
    }

    /// Replaces a job's schedule (`None` removes it); `problems` are what
    /// reading the new schedule found wrong.
    pub async fn set_job_schedule(
        &self,
        actor: &Actor,
        id: &str,
        schedule: Option<Schedule>,
        problems: Vec<FieldError>,
    ) -> Result<JobReport> {
        actor.require(Access::WriteFleet)?;
        let tenant = actor.tenant();
        let mut job = self.load_job(tenant, id).await?;
        if job.state.is_finished() {
            return Err(Error::new(ErrorCode::JobState, format!("job `{id}` is {}", job.state.as_str())));
        }
        let mut errors = problems;
        job.spec.schedule = schedule;
        job.spec.validate(&mut errors);
        if !errors.is_empty() {
            return Err(Error::invalid(errors));
        }
        self.store.update_job_spec(tenant, id, &job.spec).await?;
        tracing::info!(job = %id, "job schedule changed");
        self.report(tenant, id).await
    }

    /// How many devices a job would select if it started now.
    pub async fn estimate_job(&self, actor: &Actor, id: &str) -> Result<Estimate> {
        actor.require(Access::Read)?;
        let job = self.load_job(actor.tenant(), id).await?;
        let targets = targeting::resolve(self, actor.tenant(), &job, self.now()).await?;
        let skipped = targets.iter().filter(|(_, s)| *s == ExecutionState::Skipped).count() as u64;
        Ok(Estimate { count: targets.len() as u64 - skipped, skipped })
    }

    /// A job's executions, optionally only those in `state`, each with why it
    /// waits when it does.
    pub async fn job_executions(
        &self,
        actor: &Actor,
        id: &str,
        state: Option<ExecutionState>,
        page: &PageRequest,
    ) -> Result<Page<(Execution, Option<Waiting>)>> {
        actor.require(Access::Read)?;
        let tenant = actor.tenant();
        let job = self.load_job(tenant, id).await?;
        let scope = ExecutionScope { job: Some(id.to_owned()), device: None, state };
        let page = self.store.list_executions(tenant, &scope, page).await?;
        let items = self.with_waiting(tenant, &job, page.items).await?;
        Ok(Page { items, total: page.total })
    }

    /// Says why each of a job's executions waits (see `updraft_core::waiting`).
    async fn with_waiting(
        &self,
        tenant: &str,
        job: &Job,
        executions: Vec<Execution>,
    ) -> Result<Vec<(Execution, Option<Waiting>)>> {
        let queued: Vec<String> =
            executions.iter().filter(|e| e.state == ExecutionState::Queued).map(|e| e.device.clone()).collect();
        if queued.is_empty() && !executions.iter().any(|e| e.state == ExecutionState::AwaitingConsent) {
            return Ok(executions.into_iter().map(|e| (e, None)).collect());
        }
        let now = self.now();
        let stats = self.store.pace_stats(tenant, &job.id, now).await?;
        let gate = match crate::phases::progress(self, tenant, job, now).await? {
            Some(p) => p.waiting_for,
            None => Vec::new(),
        };
        let busy: HashMap<String, (String, i64)> = self
            .store
            .busy_elsewhere(tenant, &job.id, &queued)
            .await?
            .into_iter()
            .map(|e| (e.device, (e.job, e.action)))
            .collect();
        let ctx = WaitContext { job, stats: &stats, gate: &gate, now };
        Ok(executions
            .into_iter()
            .map(|e| {
                let b = busy.get(&e.device).map(|(j, a)| (j.as_str(), *a));
                let w = why_waiting(&e, b, &ctx);
                (e, w)
            })
            .collect())
    }

    /// A device's executions across jobs, each with its full history.
    pub async fn device_executions(
        &self,
        actor: &Actor,
        device: &str,
        state: Option<ExecutionState>,
        page: &PageRequest,
    ) -> Result<Page<(Execution, Vec<ExecutionEvent>, Option<Waiting>)>> {
        actor.require(Access::Read)?;
        let tenant = actor.tenant();
        if self.store.get_device(tenant, device).await?.is_none() {
            return Err(Error::not_found("device", device));
        }
        let scope = ExecutionScope { job: None, device: Some(device.to_owned()), state };
        let page = self.store.list_executions(tenant, &scope, page).await?;
        let mut items = Vec::with_capacity(page.items.len());
        for e in page.items {
            let history = self.store.execution_history(tenant, e.action_id).await?;
            let waiting = match e.state {
                ExecutionState::Queued | ExecutionState::AwaitingConsent => {
                    match self.store.get_job(tenant, &e.job).await? {
                        Some(job) => self.with_waiting(tenant, &job, vec![e.clone()]).await?.pop().and_then(|(_, w)| w),
                        None => None,
                    }
                }
                _ => None,
            };
            items.push((e, history, waiting));
        }
        Ok(Page { items, total: page.total })
    }

    /// An operator's consent (or refusal) for a device's execution of a job.
    pub async fn give_consent(&self, actor: &Actor, device: &str, job: &str, approve: bool) -> Result<Execution> {
        actor.require(Access::GiveConsent)?;
        let tenant = actor.tenant();
        let scope = ExecutionScope { job: Some(job.to_owned()), device: Some(device.to_owned()), state: None };
        let all = PageRequest { sort: "action_id".into(), ..PageRequest::all() };
        let page = self.store.list_executions(tenant, &scope, &all).await?;
        let e =
            page.items.into_iter().next().ok_or_else(|| Error::not_found("execution", &format!("{job}/{device}")))?;
        let now = self.now();
        let changed = self
            .store
            .change_execution(
                tenant,
                e.action_id,
                &|x| on_consent(x, approve, EventSource::Operator, now).map(Some),
                now,
            )
            .await?;
        changed.map_err(|_| {
            Error::new(ErrorCode::InUse, format!("the execution is {}, not awaiting consent", e.state.as_str()))
        })
    }
}

/// A job's executions over time, cumulative: seconds since the job started,
/// and how many had been released, had succeeded and had failed by then.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub points: Vec<TimelinePoint>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimelinePoint {
    pub seconds: f64,
    pub released: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// The most buckets a timeline is drawn with.
const TIMELINE_BUCKETS: i64 = 60;

impl App {
    /// The job's executions over time since it started (for its chart).
    pub async fn job_timeline(&self, actor: &Actor, id: &str) -> Result<Timeline> {
        actor.require(Access::Read)?;
        let job = self.load_job(actor.tenant(), id).await?;
        let Some(start) = job.started_at else { return Ok(Timeline::default()) };
        let end = job.finished_at.unwrap_or_else(|| self.now()).max(start);
        let span = end.duration_since(start).as_micros().max(1) as i64;
        let width = (span / TIMELINE_BUCKETS).max(1_000_000);
        let bucket = jiff::SignedDuration::from_micros(width);
        let rows = self.store.execution_timeline(actor.tenant(), id, start, bucket).await?;
        let last = (span / width).min(TIMELINE_BUCKETS * 2);
        let mut per = vec![TimelinePoint::default(); last as usize + 1];
        for r in rows {
            let Some(p) = per.get_mut(r.bucket.clamp(0, last) as usize) else { continue };
            match r.state {
                None => p.released += r.count,
                Some(ExecutionState::Succeeded) => p.succeeded += r.count,
                Some(ExecutionState::Failed | ExecutionState::TimedOut | ExecutionState::Rejected) => {
                    p.failed += r.count
                }
                Some(_) => {}
            }
        }
        let mut total = TimelinePoint::default();
        let points = per
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                total.released += p.released;
                total.succeeded += p.succeeded;
                total.failed += p.failed;
                TimelinePoint { seconds: ((i as i64 + 1) * width) as f64 / 1e6, ..total }
            })
            .collect();
        Ok(Timeline { points })
    }
}
