//! What devices do: identify themselves, find their work, report progress,
//! accept a cancellation, give consent, report their attributes, ask for a
//! job, fetch what they install. Every front door that speaks for devices
//! (hawkBit's device API today) calls these; each device only ever sees and
//! changes its own executions.

use crate::store::{DeviceActions, DeviceIdentity, ExecutionRule, ExecutionScope};
use updraft_core::attributes;
use updraft_core::job::{
    DeviceReport, EventSource, Execution, ExecutionEvent, ExecutionState, Job, JobState, TransitionError,
    on_cancel_report, on_consent, on_device_report_handled,
};
use updraft_core::rollout::{PaceStats, release_budget};
use updraft_core::{Device, FieldError, Firmware, PageRequest};

use crate::actor::token_hash;
use crate::error::{Error, ErrorCode, Result};
use crate::{Actor, App};

/// Where an action id a device names leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The device's execution, as it is now.
    Current(Execution),
    /// An earlier attempt of an execution since retried under another id.
    Retried { now: i64 },
    /// Nothing of this device's (or not offered to it yet).
    Unknown,
}

/// Whether a device may download a firmware image.
#[derive(Debug, Clone)]
pub enum Module {
    Assigned(Firmware),
    NotAssigned,
    Missing,
}

/// What a device's ask for a job did.
#[derive(Debug, Clone)]
pub enum Asked {
    /// Released to the device: follow its deployment.
    Released { execution: Execution, job: Box<Job> },
    /// The device is working on another execution.
    Busy,
    /// The job's pace allows none now.
    NoRoom,
    /// The execution is no longer queued.
    Gone,
}

/// The device an actor speaks for.
fn device_of(actor: &Actor) -> Result<(&str, &str)> {
    match actor {
        Actor::Device { tenant, device } => Ok((tenant, device)),
        _ => Err(Error::new(ErrorCode::Forbidden, "only a device reports on its executions")),
    }
}

/// The server itself, or a gateway of `tenant`: who reads many devices' executions at once.
fn speaks_for_devices_of(actor: &Actor, tenant: &str) -> Result<()> {
    match actor {
        Actor::System(_) => Ok(()),
        Actor::Gateway { tenant: own } if own == tenant => Ok(()),
        _ => Err(Error::new(ErrorCode::Forbidden, "only the server or a gateway reads many devices' executions")),
    }
}

impl App {
    /// The device a device token belongs to: (tenant, device).
    pub async fn device_for_token(&self, token: &str) -> Result<Option<(String, String)>> {
        let identity = self.store.device_identity_by_token_hash(&token_hash(token)).await?;
        Ok(identity.map(|i| (i.tenant, i.id)))
    }

    /// What the polls of up to `limit` devices of every tenant after `after`
    /// need (see [`DeviceStore::poll_seeds`](crate::store::DeviceStore::poll_seeds)):
    /// the server's own read, to fill a poll cache at start.
    pub async fn poll_seeds(
        &self,
        actor: &Actor,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<crate::store::PollSeed>> {
        if !matches!(actor, Actor::System(_)) {
            return Err(Error::new(ErrorCode::Forbidden, "only the server reads every device's poll state"));
        }
        Ok(self.store.poll_seeds(after, limit).await?)
    }

    /// The tenant a gateway token speaks for.
    pub async fn gateway_for_token(&self, token: &str) -> Result<Option<String>> {
        Ok(self.store.gateway_tenant(&token_hash(token)).await?)
    }

    /// Who the device is, as the device API needs it.
    pub async fn device_identity(&self, actor: &Actor) -> Result<Option<DeviceIdentity>> {
        let (tenant, device) = device_of(actor)?;
        Ok(self.store.device_identity(tenant, device).await?)
    }

    /// Notes a poll (written later, in a batch, by the presence worker).
    pub fn device_seen(&self, actor: &Actor) {
        if let Ok((tenant, device)) = device_of(actor) {
            self.presence.seen(tenant, device, self.now());
        }
    }

    /// Notes that the device connected (MQTT): online at the presence worker's next
    /// flush. A connection is a whole first contact, so a new device is not left
    /// `initializing` until a second sighting.
    pub fn device_connected(&self, actor: &Actor) {
        if let Ok((tenant, device)) = device_of(actor) {
            let now = self.now();
            self.presence.seen(tenant, device, now);
            self.presence.seen(tenant, device, now);
        }
    }

    /// Notes that the device left (its MQTT connection closed): offline at the
    /// presence worker's next flush.
    pub fn device_left(&self, actor: &Actor) {
        if let Ok((tenant, device)) = device_of(actor) {
            self.presence.left(tenant, device, self.now());
        }
    }

    /// The device's execution of job `job`, if the job has one for it.
    pub async fn device_execution_of_job(&self, actor: &Actor, job: &str) -> Result<Option<Execution>> {
        let (tenant, device) = device_of(actor)?;
        let scope = ExecutionScope { job: Some(job.to_owned()), device: Some(device.to_owned()), state: None };
        let page = self.store.list_executions(tenant, &scope, &PageRequest::all()).await?;
        Ok(page.items.into_iter().next())
    }

    /// A link to one of the device's files that needs no credentials until
    /// `expires` (seconds since the epoch): the signature for
    /// `?expires=…&signature=…` (hex HMAC-SHA256 under a key every replica shares).
    pub fn download_signature(&self, tenant: &str, device: &str, firmware: &str, file: &str, expires: i64) -> String {
        let message = format!("{tenant}\n{device}\n{firmware}\n{file}\n{expires}");
        hex::encode(self.crypto.mac("download link", message.as_bytes()))
    }

    /// Whether a signed download link is genuine and has not expired.
    pub fn check_download_signature(
        &self,
        tenant: &str,
        device: &str,
        firmware: &str,
        file: &str,
        expires: i64,
        signature: &str,
    ) -> bool {
        if expires < self.now().as_second() {
            return false;
        }
        let expected = self.download_signature(tenant, device, firmware, file, expires);
        aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            signature.trim().to_ascii_lowercase().as_bytes(),
        )
        .is_ok()
    }

    /// The device's open execution and the last one it installed.
    pub async fn device_actions(&self, actor: &Actor) -> Result<DeviceActions> {
        let (tenant, device) = device_of(actor)?;
        let mut actions = self.store.device_actions(tenant, device).await?;
        if let Some(e) = &actions.active
            && !self.consent_offered(tenant, e).await?
        {
            actions.active = None;
        }
        Ok(actions)
    }

    /// What each of `devices` of `tenant` is offered now (its
    /// [`DeviceActions::active`]), read at once for a door that pushes work to
    /// thousands of devices: the server's own (a follower's) or a gateway's.
    pub async fn offered_executions(&self, actor: &Actor, tenant: &str, devices: &[String]) -> Result<Vec<Execution>> {
        speaks_for_devices_of(actor, tenant)?;
        let mut offered = Vec::new();
        let mut jobs: std::collections::HashMap<String, Option<Job>> = Default::default();
        for e in self.store.offered_executions(tenant, devices).await? {
            // As `consent_offered`, reading each job once.
            if e.state == ExecutionState::AwaitingConsent && e.phase > 0 {
                let job = match jobs.get(&e.job) {
                    Some(job) => job,
                    None => jobs.entry(e.job.clone()).or_insert(self.store.get_job(tenant, &e.job).await?),
                };
                if !job.as_ref().is_some_and(|job| updraft_core::waiting::consent_offered(&e, job)) {
                    continue;
                }
            }
            offered.push(e);
        }
        Ok(offered)
    }

    /// The histories of executions of `tenant`'s devices, by action id, read
    /// at once (as [`App::offered_executions`]).
    pub async fn execution_histories(
        &self,
        actor: &Actor,
        tenant: &str,
        action_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Vec<ExecutionEvent>>> {
        speaks_for_devices_of(actor, tenant)?;
        Ok(self.store.execution_histories(tenant, action_ids).await?)
    }

    /// Whether the device is asked for its consent to `e` now (see
    /// `updraft_core::waiting::consent_offered`); reads the job only for a
    /// consent-awaiting execution of a later phase.
    async fn consent_offered(&self, tenant: &str, e: &Execution) -> Result<bool> {
        if e.state != ExecutionState::AwaitingConsent || e.phase == 0 {
            return Ok(true);
        }
        Ok(match self.store.get_job(tenant, &e.job).await? {
            Some(job) => updraft_core::waiting::consent_offered(e, &job),
            None => false,
        })
    }

    /// The device's execution behind action id `action`.
    pub async fn device_action(&self, actor: &Actor, action: i64) -> Result<Action> {
        let (tenant, device) = device_of(actor)?;
        Ok(match self.store.execution_by_action(tenant, device, action).await? {
            // Queued: not offered to the device yet (the pace releases it), so not its to see.
            Some((e, attempt)) if e.attempt == attempt && e.state == ExecutionState::Queued => Action::Unknown,
            Some((e, attempt)) if e.attempt == attempt && !self.consent_offered(tenant, &e).await? => Action::Unknown,
            Some((e, attempt)) if e.attempt == attempt => Action::Current(e),
            Some((e, attempt)) if attempt < e.attempt => Action::Retried { now: e.public_id() },
            _ => Action::Unknown,
        })
    }

    /// The job of one of the device's executions.
    pub async fn device_job(&self, actor: &Actor, e: &Execution) -> Result<Option<Job>> {
        let (tenant, _) = device_of(actor)?;
        Ok(self.store.get_job(tenant, &e.job).await?)
    }

    /// The firmware of one of the device's executions.
    pub async fn device_firmware(&self, actor: &Actor, e: &Execution) -> Result<Option<Firmware>> {
        let (tenant, _) = device_of(actor)?;
        Ok(self.store.get_firmware(tenant, &e.firmware).await?)
    }

    /// An execution's history, oldest first.
    pub async fn device_history(&self, actor: &Actor, e: &Execution) -> Result<Vec<ExecutionEvent>> {
        let (tenant, _) = device_of(actor)?;
        Ok(self.store.execution_history(tenant, e.action_id).await?)
    }

    async fn change_own(
        &self,
        actor: &Actor,
        e: &Execution,
        rule: ExecutionRule<'_>,
    ) -> Result<Result<Execution, TransitionError>> {
        let (tenant, device) = device_of(actor)?;
        if e.device != device {
            return Err(Error::not_found("execution", &e.public_id().to_string()));
        }
        Ok(self.store.change_execution(tenant, e.action_id, rule, self.now()).await?)
    }

    /// A device's report on its deployment, as its job's handling reads it.
    pub async fn report_deployment(
        &self,
        actor: &Actor,
        e: &Execution,
        report: &DeviceReport,
    ) -> Result<Result<Execution, TransitionError>> {
        let handling = self.device_job(actor, e).await?.ok_or_else(|| Error::not_found("job", &e.job))?.spec.handling;
        let now = self.now();
        self.change_own(actor, e, &|x| on_device_report_handled(x, report, handling, now).map(Some)).await
    }

    /// Starts the step timer of one of the device's executions (AWS IoT Jobs'
    /// `stepTimeoutInMinutes`): it times out `minutes` from now unless the timer is
    /// started again first (the scheduler's next tick after the deadline ends it).
    pub async fn start_step_timer(&self, actor: &Actor, e: &Execution, minutes: u32) -> Result<()> {
        let (tenant, device) = device_of(actor)?;
        if e.device != device {
            return Err(Error::not_found("execution", &e.public_id().to_string()));
        }
        let deadline = self.now() + jiff::SignedDuration::from_mins(i64::from(minutes));
        self.store.set_step_deadline(tenant, e.action_id, deadline).await?;
        Ok(())
    }

    /// A device's report on a cancellation asked of it.
    pub async fn report_cancel(
        &self,
        actor: &Actor,
        e: &Execution,
        report: &DeviceReport,
    ) -> Result<Result<Execution, TransitionError>> {
        let now = self.now();
        self.change_own(actor, e, &|x| on_cancel_report(x, report, now).map(Some)).await
    }

    /// A device's (its user's) consent to, or refusal of, an execution.
    pub async fn device_consent(
        &self,
        actor: &Actor,
        e: &Execution,
        approve: bool,
    ) -> Result<Result<Execution, TransitionError>> {
        let now = self.now();
        let changed =
            self.change_own(actor, e, &|x| on_consent(x, approve, EventSource::Device, now).map(Some)).await?;
        if let Ok(x) = &changed {
            let change = crate::store::Change::ConsentDecided {
                job: x.job.clone(),
                device: x.device.clone(),
                approved: approve,
            };
            if let Err(err) = self.store.note_event(actor.tenant(), change).await {
                tracing::warn!(job = %x.job, device = %x.device, error = %err, "the consent decision was not noted for the audit log");
            }
        }
        Ok(changed)
    }

    /// The attributes a device reports about itself update its record.
    pub async fn report_attributes(
        &self,
        actor: &Actor,
        mode: attributes::Mode,
        data: &std::collections::BTreeMap<String, String>,
    ) -> Result<Result<Device, Vec<FieldError>>> {
        let (tenant, device) = device_of(actor)?;
        if let Err(errors) = attributes::validate(data) {
            return Ok(Err(errors));
        }
        let apply = |d: &mut Device| {
            attributes::apply(d, mode, data);
            Ok(())
        };
        Ok(self.store.modify_device(tenant, device, &apply, true, self.now()).await?)
    }

    /// The jobs the device may ask for, with its queued execution of each.
    pub async fn requestable_jobs(&self, actor: &Actor) -> Result<Vec<(Job, Execution)>> {
        let (tenant, device) = device_of(actor)?;
        let scope = ExecutionScope { job: None, device: Some(device.to_owned()), state: Some(ExecutionState::Queued) };
        let all = PageRequest { sort: "action_id".into(), ..PageRequest::all() };
        let page = self.store.list_executions(tenant, &scope, &all).await?;
        let mut out = Vec::new();
        for e in page.items {
            let Some(job) = self.store.get_job(tenant, &e.job).await? else { continue };
            if job.spec.allow_device_request && job.state == JobState::Running && e.phase <= job.open_phase() {
                out.push((job, e));
            }
        }
        Ok(out)
    }

    /// The device asks for its queued execution `e`: released at once if the
    /// job runs, its phase is open and its pace allows. The pace and the device's other
    /// executions are checked in the release's own transaction, so concurrent
    /// asks (and the scheduler) cannot both pass.
    pub async fn ask_for_job(&self, actor: &Actor, e: &Execution) -> Result<Asked> {
        let (tenant, device) = device_of(actor)?;
        // A later phase than the open one has no room yet, as a full pace.
        let budget = |j: &Job, stats: &PaceStats| {
            if j.state == JobState::Running && j.spec.allow_device_request && e.phase <= j.open_phase() {
                release_budget(&j.spec.pace, stats)
            } else {
                0
            }
        };
        let released = self.store.release_executions(tenant, &e.job, Some(device), &budget, &|| self.now()).await?;
        let Some(execution) = released.executions.into_iter().next() else {
            if self.store.device_actions(tenant, device).await?.active.is_some_and(|a| a.state.is_in_progress()) {
                return Ok(Asked::Busy);
            }
            return Ok(if released.allowed == 0 { Asked::NoRoom } else { Asked::Gone });
        };
        tracing::info!(job = %e.job, device = %device, "device asked for its job");
        let job = self.store.get_job(tenant, &e.job).await?.ok_or_else(|| Error::not_found("job", &e.job))?;
        Ok(Asked::Released { execution, job: Box::new(job) })
    }

    /// The firmware image behind a software module id, if this device may
    /// download it: the image of its open execution or of the last one it installed.
    pub async fn device_module(&self, actor: &Actor, module: &str) -> Result<Module> {
        let (tenant, _) = device_of(actor)?;
        let actions = self.device_actions(actor).await?;
        let allowed = actions.active.iter().chain(actions.installed.iter()).any(|e| e.firmware == module);
        if !allowed {
            return Ok(Module::NotAssigned);
        }
        Ok(match self.store.get_firmware(tenant, module).await? {
            Some(fw) => Module::Assigned(fw),
            None => Module::Missing,
        })
    }
}
