//! Jobs: the list (state, progress, rates; search, state filter, paging; start,
//! pause, resume, cancel), a job's page (live: see `live`), its commands, and
//! the schedule dialog of an existing job.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use updraft_app::jobs::JobReport;
use updraft_app::sortable;
use updraft_core::job::{ExecutionState, Job, JobCommand, JobState};
use updraft_core::rollout::abort_reason;
use updraft_core::schedule::Schedule;

use super::session::{Ctx, Signed};
use super::view::{FlashQuery, ListQuery, Pager, count, enc, percent, when, when_opt};
use super::{UiError, UiResult, charts, render};
use crate::state::AppState;

/// A row of the jobs list.
pub struct JobRow {
    pub job: Job,
    pub bar: String,
    pub success: String,
    pub failure: String,
    pub done: String,
    /// The commands the job takes now: (command path, button text).
    pub commands: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "ui/jobs.html")]
struct JobsPage {
    ctx: Ctx,
    rows: Vec<JobRow>,
    pager: Pager,
    q: String,
    state: String,
    states: Vec<&'static str>,
    back: String,
}

/// What a job's counts say in the list: succeeded, failed (failed, timed out,
/// rejected), in progress, and the rates over those finished with a verdict.
fn summary(counts: &BTreeMap<ExecutionState, u64>) -> (u64, u64, u64, u64) {
    use ExecutionState::*;
    let n = |s: &[ExecutionState]| s.iter().map(|s| counts.get(s).copied().unwrap_or(0)).sum::<u64>();
    let succeeded = n(&[Succeeded]);
    let failed = n(&[Failed, TimedOut, Rejected]);
    let running = n(&[Notified, Downloading, Downloaded, Installing]);
    let total = counts.values().sum();
    (succeeded, failed, running, total)
}

fn rate(part: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| part as f64 * 100.0 / of as f64)
}

/// The commands a job in its state takes, as buttons.
pub fn commands(job: &Job, now: jiff::Timestamp) -> Vec<(&'static str, &'static str)> {
    [
        (JobCommand::Start, "start", "Start"),
        (JobCommand::Pause, "pause", "Pause"),
        (JobCommand::Resume, "resume", "Resume"),
        (JobCommand::Cancel, "cancel", "Cancel"),
    ]
    .into_iter()
    .filter(|(c, _, _)| job.on_command(*c, now).is_ok())
    .map(|(_, path, label)| (path, label))
    .collect()
}

pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
    Query(flash): Query<FlashQuery>,
) -> UiResult<Response> {
    let filter = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| updraft_app::Error::field("state", "unknown state"))?),
    };
    let req = q.request(sortable::JOBS, "-created_at")?;
    let mut jobs = state.app.list_jobs(&signed.actor, filter, &req).await?.items;
    let pager =
        Pager::cut(&mut jobs, &q, "/ui/jobs", &[("q", q.search()), ("state", q.state.clone().unwrap_or_default())]);
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut counts = state.app.jobs_counts(&signed.actor, &ids).await?;
    let now = state.app.now();
    let can_write = signed.can(updraft_core::Access::WriteFleet);
    let rows = jobs
        .into_iter()
        .map(|job| {
            let c = counts.remove(&job.id).unwrap_or_default();
            let (succeeded, failed, running, total) = summary(&c);
            JobRow {
                bar: charts::progress(succeeded, failed, running, total),
                success: percent(rate(succeeded, succeeded + failed)),
                failure: percent(rate(failed, succeeded + failed)),
                done: format!("{} of {}", count(succeeded + failed), count(total)),
                commands: if can_write { commands(&job, now) } else { vec![] },
                job,
            }
        })
        .collect();
    let back =
        format!("/ui/jobs?q={}&state={}&page={}", enc(&q.search()), enc(q.state.as_deref().unwrap_or("")), q.page());
    let page = JobsPage {
        ctx: signed.ctx("jobs").flash(&flash),
        rows,
        pager,
        q: q.search(),
        state: q.state.clone().unwrap_or_default(),
        states: JobState::ALL.iter().map(|s| s.as_str()).collect(),
        back,
    };
    Ok(render(&page))
}

/// A command's outcome as the next page's message.
fn flash_of(command: &str) -> &'static str {
    match command {
        "start" => "started",
        "pause" => "paused",
        "resume" => "resumed",
        "cancel" => "canceled",
        "force-cancel" => "force_canceled",
        "next-phase" => "next_phase",
        "retry-failed" => "retried",
        _ => "",
    }
}

/// Start, pause, resume, cancel, force-cancel, approve the next phase, retry the failed.
pub async fn command(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, command)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> UiResult<Response> {
    let fields = signed.form(&headers, &body)?;
    let app = &state.app;
    let actor = &signed.actor;
    match command.as_str() {
        "start" => app.command_job(actor, &id, JobCommand::Start).await?,
        "pause" => app.command_job(actor, &id, JobCommand::Pause).await?,
        "resume" => app.command_job(actor, &id, JobCommand::Resume).await?,
        "cancel" => app.command_job(actor, &id, JobCommand::Cancel).await?,
        "force-cancel" => app.force_cancel_job(actor, &id).await?,
        "next-phase" => app.next_phase(actor, &id, fields.checked("force")).await?,
        "retry-failed" => app.retry_failed(actor, &id).await?,
        _ => return Err(UiError(updraft_app::Error::not_found("page", &command))),
    };
    let back = fields
        .get("back")
        .filter(|b| b.starts_with("/ui/") && !b.starts_with("//"))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("/ui/jobs/{}", enc(&id)));
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}flash={}", flash_of(&command))).into_response())
}

#[derive(Template)]
#[template(path = "ui/job.html")]
struct JobPage {
    ctx: Ctx,
    job: Job,
    live: String,
    commands: Vec<(&'static str, &'static str)>,
    can_force_cancel: bool,
    can_retry: bool,
    schedule: String,
    target: Vec<(&'static str, String)>,
}

/// A job's page: what it is, and its live part (counts, rates, chart, phase,
/// executions), which the page's script keeps current.
pub async fn page(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<LiveQuery>,
    Query(flash): Query<FlashQuery>,
) -> UiResult<Response> {
    let report = state.app.job_report(&signed.actor, &id).await?;
    let live = live_html(&state, &signed, &report, &q).await?;
    let job = report.job;
    let can_write = signed.can(updraft_core::Access::WriteFleet);
    let now = state.app.now();
    let page = JobPage {
        ctx: signed.ctx("jobs").flash(&flash),
        commands: if can_write { commands(&job, now) } else { vec![] },
        can_force_cancel: can_write && job.state != JobState::Canceled,
        can_retry: can_write && matches!(job.state, JobState::Completed | JobState::Aborted),
        schedule: job.spec.schedule.as_ref().map(describe_schedule).unwrap_or_else(|| "None".into()),
        target: describe_target(&job),
        live,
        job,
    };
    Ok(render(&page))
}

/// How a schedule reads on a page.
pub fn describe_schedule(s: &Schedule) -> String {
    let days = if s.days.is_empty() {
        "every day".to_owned()
    } else {
        s.days.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(", ")
    };
    let window = match &s.window {
        None => "all day".to_owned(),
        Some(w) => format!("{} to {}", w.from, w.to),
    };
    format!("recurring, {} to {}, {days}, {window} ({})", when_opt(&s.start), when_opt(&s.end), s.timezone)
}

fn describe_target(job: &Job) -> Vec<(&'static str, String)> {
    let t = &job.spec.target;
    let mut out = vec![("Firmware", job.firmware.clone()), ("Product", job.product.clone())];
    out.push(("Recurrence", format!("{:?}", job.spec.recurrence).to_lowercase()));
    out.push(("Delivery", if job.consent_required { "user consent".into() } else { "system push".into() }));
    if t.all {
        out.push(("Devices", "all of the product's".into()));
    }
    if let Some(f) = &t.filter {
        out.push(("Filter", f.clone()));
    }
    if let Some(f) = &t.filter_id {
        out.push(("Saved filter", f.clone()));
    }
    if !t.groups.is_empty() {
        out.push(("Groups", t.groups.join(", ")));
    }
    if !t.devices.is_empty() {
        out.push(("Devices named", format!("{}", t.devices.len())));
    }
    if !t.source_versions.is_empty() {
        out.push(("Upgrade from", t.source_versions.join(", ")));
    }
    if let Some(g) = t.gray_percent {
        out.push(("Gray percentage", format!("{g} %")));
    }
    out.push(("Retries", job.spec.retry.count.to_string()));
    out.push(("Concurrency", job.spec.pace.max_concurrency.to_string()));
    if let Some(r) = job.spec.pace.max_per_minute {
        out.push(("Rate", format!("{r} per minute")));
    }
    out
}

/// Which page of executions the live part shows, and in which state.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct LiveQuery {
    #[serde(default)]
    pub exec_page: Option<u64>,
    #[serde(default)]
    pub exec_state: Option<String>,
}

pub struct ExecRow {
    pub device: String,
    pub state: &'static str,
    pub attempt: u32,
    pub phase: u32,
    pub progress: String,
    pub updated: String,
    pub waiting: String,
}

#[derive(Template)]
#[template(path = "ui/job_live.html")]
pub struct JobLive {
    pub job_id: String,
    pub state: &'static str,
    pub counts: Vec<(&'static str, String)>,
    pub total: String,
    pub current_rate: String,
    pub allowed_rate: String,
    pub eta: String,
    pub success: String,
    pub failure: String,
    pub chart: String,
    pub phase: Option<PhaseView>,
    pub approve: bool,
    pub csrf: String,
    pub aborted: Option<String>,
    pub executions: Vec<ExecRow>,
    pub exec_prev: Option<String>,
    pub exec_next: Option<String>,
    pub exec_state: String,
    pub states: Vec<&'static str>,
}

pub struct PhaseView {
    pub title: String,
    pub succeeded: String,
    pub waiting_for: Vec<String>,
}

/// The live part of a job's page, as HTML.
pub async fn live_html(state: &AppState, signed: &Signed, report: &JobReport, q: &LiveQuery) -> UiResult<String> {
    let app = &state.app;
    let job = &report.job;
    let timeline = app.job_timeline(&signed.actor, &job.id).await?;
    let points = |f: fn(&updraft_app::jobs::TimelinePoint) -> u64| -> Vec<(f64, u64)> {
        std::iter::once((0.0, 0)).chain(timeline.points.iter().map(|p| (p.seconds, f(p)))).collect()
    };
    let chart = charts::lines(
        "Executions over time: released, succeeded and failed",
        &[
            ("released", "#0a4fb5", points(|p| p.released)),
            ("succeeded", "#1a7f37", points(|p| p.succeeded)),
            ("failed", "#cf222e", points(|p| p.failed)),
        ],
    );
    let exec_state = q.exec_state.clone().filter(|s| !s.is_empty());
    let filter = match exec_state.as_deref() {
        None => None,
        Some(s) => {
            Some(ExecutionState::parse(s).ok_or_else(|| updraft_app::Error::field("exec_state", "unknown state"))?)
        }
    };
    let lq = ListQuery { page: q.exec_page, ..Default::default() };
    let req = lq.request(sortable::EXECUTIONS, "-updated_at")?;
    let mut items = app.job_executions(&signed.actor, &job.id, filter, &req).await?.items;
    let base = format!("/ui/jobs/{}", enc(&job.id));
    let more = items.len() > super::view::PAGE_ROWS as usize;
    items.truncate(super::view::PAGE_ROWS as usize);
    let page = lq.page();
    let link = |p: u64| format!("{base}?exec_page={p}&exec_state={}", enc(exec_state.as_deref().unwrap_or("")));
    let executions = items
        .into_iter()
        .map(|(e, waiting)| ExecRow {
            device: e.device,
            state: e.state.as_str(),
            attempt: e.attempt,
            phase: e.phase + 1,
            progress: e
                .progress
                .map(|p| match p.of {
                    Some(of) => format!("{} of {}", p.cnt, of),
                    None => p.cnt.to_string(),
                })
                .unwrap_or_default(),
            updated: when(&e.updated_at),
            waiting: waiting.map(|w| w.describe()).unwrap_or_default(),
        })
        .collect();
    let p = &report.progress;
    let phase = report.phase.as_ref().map(|ph| PhaseView {
        title: format!(
            "Phase {} of {}{}",
            ph.index + 1,
            ph.of,
            ph.name.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
        ),
        succeeded: format!("{} of {} succeeded", count(ph.counts.succeeded), count(ph.counts.total)),
        waiting_for: ph.waiting_for.iter().map(|w| w.describe()).collect(),
    });
    let approve = signed.can(updraft_core::Access::WriteFleet)
        && report.phase.as_ref().is_some_and(|ph| ph.index + 1 < ph.of)
        && !job.state.is_finished();
    let aborted = (job.state == JobState::Aborted).then(|| match abort_reason(&job.spec.pace.abort, &report.counts) {
        Some(rule) => format!(
            "Aborted: {:?} executions reached {} % of those finished (at least {} finished).",
            rule.failure, rule.threshold_percent, rule.min_executed
        ),
        None => "Aborted.".to_owned(),
    });
    let live = JobLive {
        job_id: job.id.clone(),
        state: job.state.as_str(),
        counts: ExecutionState::ALL
            .iter()
            .map(|s| (s.as_str(), count(report.counts.get(s).copied().unwrap_or(0))))
            .collect(),
        total: count(p.total),
        current_rate: format!("{} per minute", count(p.current_rate_per_minute)),
        allowed_rate: p
            .allowed_rate_per_minute
            .map(|r| format!("{} per minute", count(r)))
            .unwrap_or_else(|| "unlimited".into()),
        eta: match (&p.eta, job.state.is_finished()) {
            (_, true) => "finished".into(),
            (Some(t), _) => when(t),
            (None, _) => "—".into(),
        },
        success: percent(p.success_rate),
        failure: percent(p.failure_rate),
        chart,
        phase,
        approve,
        csrf: signed.csrf.clone(),
        aborted,
        executions,
        exec_prev: (page > 1).then(|| link(page - 1)),
        exec_next: more.then(|| link(page + 1)),
        exec_state: exec_state.unwrap_or_default(),
        states: ExecutionState::ALL.iter().map(|s| s.as_str()).collect(),
    };
    live.render().map_err(|e| UiError(updraft_app::Error::internal("live part", e)))
}

#[derive(Template)]
#[template(path = "ui/schedule.html")]
struct SchedulePage {
    ctx: Ctx,
    job: Job,
    s: super::wizard::ScheduleForm,
    errors: super::wizard::Errors,
}

/// The "Set a schedule" dialog of an existing job (the schedule icon on the jobs list).
pub async fn schedule_page(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> UiResult<Response> {
    let job = state.app.job_report(&signed.actor, &id).await?.job;
    let s = super::wizard::ScheduleForm::of(job.spec.schedule.as_ref());
    Ok(render(&SchedulePage { ctx: signed.ctx("jobs"), job, s, errors: Default::default() }))
}

pub async fn set_schedule(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> UiResult<Response> {
    let fields = signed.form(&headers, &body)?;
    let s = super::wizard::ScheduleForm::read(&fields);
    let mut problems = Vec::new();
    let schedule = s.to_wire().and_then(|w| w.into_schedule(&mut problems));
    let result = state.app.set_job_schedule(&signed.actor, &id, schedule.clone(), problems).await;
    match result {
        Ok(_) => {
            let flash = if schedule.is_some() { "scheduled" } else { "schedule_cleared" };
            Ok(Redirect::to(&format!("/ui/jobs/{}?flash={flash}", enc(&id))).into_response())
        }
        Err(e) if e.code == updraft_app::error::ErrorCode::ValidationFailed => {
            let job = state.app.job_report(&signed.actor, &id).await?.job;
            let errors = super::wizard::Errors::from_error(&e);
            let mut r = render(&SchedulePage { ctx: signed.ctx("jobs"), job, s, errors });
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
