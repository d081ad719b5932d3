//! Which devices a job is for: the scope resolved in the store (all devices
//! of the product, named devices, groups, a filter), narrowed and completed by
//! the core's [`select`] (gray share, source versions, include, exclude, up to
//! date). Used when a job starts (snapshot), by the periodic re-evaluation of
//! continuous jobs, and, following the event stream, when devices change.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{Change, DeviceScope, DeviceVersions, Event, StoreResult};
use jiff::Timestamp;
use updraft_core::Device;
use updraft_core::filter::{Field, Filter, Subject};
use updraft_core::job::{ExecutionState, Job, JobState, Target};
use updraft_core::rollout::{Candidate, Recurrence, select};

use crate::App;

/// The filter a job follows: its saved filter as it is now (so edits reach
/// running continuous jobs), else its inline filter. `None` when it has none
/// (or its saved filter was deleted: then it matches nothing more).
pub async fn job_filter(state: &App, tenant: &str, job: &Job) -> StoreResult<Option<Filter>> {
    let t = &job.spec.target;
    let text = match &t.filter_id {
        Some(id) => state.store.get_saved_filter(tenant, id).await?.map(|f| f.filter.to_text()),
        None => t.filter.clone(),
    };
    Ok(text.and_then(|t| Filter::parse(&t).ok()))
}

/// The (component, version) pairs the job installs.
pub async fn job_targets(state: &App, tenant: &str, job: &Job) -> StoreResult<Vec<(String, String)>> {
    Ok(state
        .store
        .get_firmware(tenant, &job.firmware)
        .await?
        .map(|f| f.files.into_iter().map(|f| (f.component, f.version)).collect())
        .unwrap_or_default())
}

async fn all_pages(
    state: &App,
    tenant: &str,
    scope: &DeviceScope,
    filter: Option<&Filter>,
    now: Timestamp,
    out: &mut BTreeMap<String, DeviceVersions>,
) -> StoreResult<()> {
    const PAGE: u32 = 5000;
    let mut after: Option<String> = None;
    loop {
        let got = state.store.scan_devices(tenant, scope, filter.map(|f| (f, now)), after.as_deref(), PAGE).await?;
        let n = got.len();
        after = got.last().map(|d| d.id.clone());
        for d in got {
            out.insert(d.id.clone(), d);
        }
        if n < PAGE as usize {
            return Ok(());
        }
    }
}

/// Every device the job selects now, with its initial execution state.
pub async fn resolve(
    state: &App,
    tenant: &str,
    job: &Job,
    now: Timestamp,
) -> StoreResult<Vec<(String, ExecutionState)>> {
    let t = &job.spec.target;
    let product = DeviceScope { product: Some(job.product.clone()), group: None };
    let mut scope: BTreeMap<String, DeviceVersions> = BTreeMap::new();
    if t.all {
        all_pages(state, tenant, &product, None, now, &mut scope).await?;
    }
    if !t.devices.is_empty() {
        for d in state.store.get_devices(tenant, &t.devices).await? {
            scope.insert(d.id.clone(), d.into());
        }
    }
    for g in &t.groups {
        let s = DeviceScope { product: Some(job.product.clone()), group: Some(g.clone()) };
        all_pages(state, tenant, &s, None, now, &mut scope).await?;
    }
    if let Some(f) = job_filter(state, tenant, job).await? {
        all_pages(state, tenant, &product, Some(&f), now, &mut scope).await?;
    }
    let mut extra = Vec::new();
    if !t.include.is_empty() {
        extra = state.store.get_devices(tenant, &t.include).await?;
    }
    let targets = job_targets(state, tenant, job).await?;
    let mut out = Vec::with_capacity(scope.len());
    for (id, d) in &scope {
        if d.product != job.product {
            continue;
        }
        let candidate = Candidate { id, firmware: &d.firmware };
        if let Some(s) = select(&job.spec, &job.id, job.consent_required, candidate, true, &targets) {
            out.push((id.clone(), s));
        }
    }
    for d in extra {
        if d.product != job.product || scope.contains_key(&d.id) {
            continue;
        }
        if let Some(s) = select(&job.spec, &job.id, job.consent_required, (&d).into(), false, &targets) {
            out.push((d.id.clone(), s));
        }
    }
    Ok(out)
}

/// A job's first selection as executions: each device in the phase its rank
/// by the job's stable hash gives it (see `updraft_core::phase`).
pub fn initial(job: &Job, selected: Vec<(String, ExecutionState)>) -> Vec<Target> {
    let ids: Vec<&str> = selected.iter().map(|(d, _)| d.as_str()).collect();
    let phases = updraft_core::phase::assign(&job.id, &job.spec.phases, &ids);
    selected.into_iter().zip(phases).map(|((device, state), phase)| Target { device, state, phase }).collect()
}

/// Devices joining a started job (a continuous job's late joiners): in the phase open now.
pub fn joining(job: &Job, selected: Vec<(String, ExecutionState)>) -> Vec<Target> {
    let phase = job.phase.current;
    selected.into_iter().map(|(device, state)| Target { device, state, phase }).collect()
}

/// Adds to a continuous job the devices that match it now and it lacks.
pub async fn reevaluate(state: &App, tenant: &str, job: &Job, now: Timestamp) -> StoreResult<u64> {
    let targets = joining(job, resolve(state, tenant, job, now).await?);
    let added = state.store.add_executions(tenant, job, &targets, now).await?;
    if added > 0 {
        tracing::info!(job = %job.id, added, "continuous job re-evaluated");
    }
    Ok(added)
}

/// The continuous-jobs follower: checks the devices events say were
/// registered, changed or added to a group against their tenant's live
/// continuous jobs, and adds an execution where one starts to match. Adding
/// is idempotent, so an event handled twice adds nothing the second time.
pub async fn devices_changed(state: &App, events: &[Event]) -> StoreResult<()> {
    let mut by_tenant: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in events {
        let devices: &mut BTreeSet<&str> = by_tenant.entry(e.tenant.as_str()).or_default();
        match &e.change {
            Change::DevicesCreated { devices: ids } | Change::MembersChanged { added: ids, .. } => {
                devices.extend(ids.iter().map(String::as_str))
            }
            Change::DeviceUpdated { device } => {
                devices.insert(device);
            }
            _ => {}
        }
    }
    for (tenant, ids) in by_tenant {
        if ids.is_empty() {
            continue;
        }
        let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        let devices = state.store.get_devices(tenant, &ids).await?;
        check_changed(state, tenant, &devices).await?;
    }
    Ok(())
}

async fn check_changed(state: &App, tenant: &str, devices: &[Device]) -> StoreResult<()> {
    let now = state.now();
    let jobs: Vec<Job> = state
        .store
        .live_jobs()
        .await?
        .into_iter()
        .filter(|(t, j)| t == tenant && j.spec.recurrence == Recurrence::Continuous && j.state != JobState::Created)
        .map(|(_, j)| j)
        .collect();
    if jobs.is_empty() {
        return Ok(());
    }
    for job in jobs {
        let candidates: Vec<&Device> = devices.iter().filter(|d| d.product == job.product).collect();
        if candidates.is_empty() {
            continue;
        }
        let filter = job_filter(state, tenant, &job).await?;
        let compiled = filter.as_ref().map(|f| f.compile());
        let targets = job_targets(state, tenant, &job).await?;
        let t = &job.spec.target;
        // Group memberships cost a query per device: read them only when the job looks at groups.
        let needs_groups = !t.groups.is_empty()
            || filter.as_ref().is_some_and(|f| f.conditions().iter().any(|c| matches!(c.field(), Field::Group)));
        let ids: Vec<String> = candidates.iter().map(|d| d.id.clone()).collect();
        let have: std::collections::HashSet<String> =
            state.store.job_has_devices(tenant, &job.id, &ids).await?.into_iter().collect();
        let mut add = Vec::new();
        for d in candidates {
            if have.contains(&d.id) {
                continue;
            }
            let groups = if needs_groups { state.store.device_groups(tenant, &d.id).await? } else { Vec::new() };
            let in_scope = t.all
                || t.devices.contains(&d.id)
                || t.groups.iter().any(|g| groups.contains(g))
                || compiled.as_ref().is_some_and(|c| c.matches(&Subject::new(d, &groups, now)));
            if let Some(s) = select(&job.spec, &job.id, job.consent_required, d.into(), in_scope, &targets) {
                add.push((d.id.clone(), s));
            }
        }
        if !add.is_empty() {
            let n = state.store.add_executions(tenant, &job, &joining(&job, add), now).await?;
            tracing::info!(job = %job.id, added = n, "continuous job: changed devices added");
        }
    }
    Ok(())
}
