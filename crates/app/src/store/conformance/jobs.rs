//! [`JobStore`](crate::store::JobStore): jobs, executions, and the engine's steps on one job.

use jiff::Timestamp;
use updraft_core::job::{
    EventSource, ExecutionState, Job, JobCommand, JobKind, JobState, ReportKind, Target, TransitionError, on_consent,
    on_deployment_fetched, on_device_report,
};
use updraft_core::{PageRequest, SortOrder};

use super::{fleet, job, missing_fields, page, release, report, t, tenant, tg};
use crate::store::{ExecutionScope, Store, StoreError};

/// Cancels a job as the API's `cancel` command does: the job's rule, then a
/// move from the state it was read in. `None` when it had ended.
async fn cancel(store: &dyn Store, tenant: &str, id: &str, now: Timestamp) -> Option<Job> {
    let job = store.get_job(tenant, id).await.unwrap()?;
    let (to, held) = job.on_command(JobCommand::Cancel, now).ok()?;
    store.move_job(tenant, id, job.state, to, held, now).await.unwrap()
}

pub async fn jobs_and_executions(store: &dyn Store) {
    fleet(store, 3).await;
    let targets =
        vec![("d0", ExecutionState::Queued), ("d1", ExecutionState::AwaitingConsent), ("d2", ExecutionState::Skipped)];
    store.create_job("acme", &job("j1", "fw2"), &tg(&targets), t(20)).await.unwrap();
    assert!(matches!(store.create_job("acme", &job("j1", "fw2"), &[], t(21)).await, Err(StoreError::Conflict { .. })));
    // A device deleted since it was read refuses the job.
    store.create_devices("acme", &[super::device("ghost", "thermo")], t(20)).await.unwrap();
    store.delete_device("acme", "ghost", t(50)).await.unwrap();
    let again = store
        .create_job(
            "acme",
            &job("j2", "fw2"),
            &tg(&[("d0", ExecutionState::Queued), ("ghost", ExecutionState::Queued)]),
            t(21),
        )
        .await;
    assert_eq!(missing_fields(again.unwrap_err()), ["devices.ghost"], "a deleted device refuses the job");
    assert_eq!(store.get_job("acme", "j2").await.unwrap(), None, "nothing of a refused job is written");
    assert_eq!(store.get_job("acme", "j1").await.unwrap(), Some(job("j1", "fw2")));
    let counts = store.execution_counts("acme", "j1").await.unwrap();
    assert_eq!(
        counts,
        [(ExecutionState::Queued, 1), (ExecutionState::AwaitingConsent, 1), (ExecutionState::Skipped, 1)]
    );
    let listed = store
        .list_executions(
            "acme",
            &ExecutionScope { job: Some("j1".into()), ..Default::default() },
            &page("device", SortOrder::Asc, 10, 0, None),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.iter().map(|e| e.device.as_str()).collect::<Vec<_>>(), ["d0", "d1", "d2"]);
    let skipped = &listed.items[2];
    assert_eq!((skipped.state, skipped.finished_at), (ExecutionState::Skipped, Some(t(20))));
    assert_eq!(store.device_actions("acme", "d0").await.unwrap().active, None, "a queued execution is not offered");
    assert_eq!(release(store, "j1", 10, t(21)).await, ["d0"]);
    let actions = store.device_actions("acme", "d0").await.unwrap();
    let active = actions.active.clone().unwrap();
    assert_eq!((active.state, active.attempt, actions.installed), (ExecutionState::Notified, 1, None));
    let consent = store.device_actions("acme", "d1").await.unwrap().active.unwrap();
    assert_eq!(consent.state, ExecutionState::AwaitingConsent, "awaiting consent is offered for confirmation");
    assert_eq!(store.device_actions("acme", "d2").await.unwrap().active, None, "a skipped execution is not offered");
    assert_eq!(store.get_execution("acme", active.action_id).await.unwrap(), Some(active.clone()));
    assert_eq!(store.get_execution("globex", active.action_id).await.unwrap(), None, "executions are per tenant");
    let history = store.execution_history("acme", active.action_id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].report.as_str(), history[0].state), ("created", ExecutionState::Queued));
    assert_eq!((history[1].report.as_str(), history[1].state), ("released", ExecutionState::Notified));
    // The same, read for many devices at once.
    let devices: Vec<String> = ["d2", "d1", "ghost", "d0"].map(String::from).into();
    let offered = store.offered_executions("acme", &devices).await.unwrap();
    assert_eq!(offered, [active.clone(), consent.clone()], "each offered execution once, by device");
    assert!(store.offered_executions("globex", &devices).await.unwrap().is_empty(), "per tenant");
    let histories = store.execution_histories("acme", &[active.action_id, consent.action_id, 999]).await.unwrap();
    assert_eq!(histories.len(), 2);
    assert_eq!(histories[&active.action_id], history);
    assert_eq!(histories[&consent.action_id], store.execution_history("acme", consent.action_id).await.unwrap());
    assert!(store.execution_histories("globex", &[active.action_id]).await.unwrap().is_empty(), "per tenant");
    let jobs = store.list_jobs("acme", None, &page("created_at", SortOrder::Desc, 10, 0, None)).await.unwrap();
    assert_eq!(jobs.total, 1);
    let in_use = store.delete_firmware("acme", "fw2").await;
    assert!(matches!(in_use, Err(StoreError::InUse { .. })), "{in_use:?}");
}

pub async fn execution_changes_are_atomic_and_complete_jobs(store: &dyn Store) {
    fleet(store, 2).await;
    let targets = vec![("d0", ExecutionState::Queued), ("d1", ExecutionState::AwaitingConsent)];
    store.create_job("acme", &job("j1", "fw2"), &tg(&targets), t(20)).await.unwrap();
    assert_eq!(release(store, "j1", 10, t(30)).await, ["d0"]);
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    let d1 = store
        .list_executions(
            "acme",
            &ExecutionScope { device: Some("d1".into()), ..Default::default() },
            &page("action_id", SortOrder::Asc, 10, 0, None),
        )
        .await
        .unwrap()
        .items[0]
        .clone();

    assert_eq!(d0.state, ExecutionState::Notified);
    let same = store
        .change_execution("acme", d0.action_id, &|e| on_deployment_fetched(e, t(31)), t(31))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.updated_at, t(30), "no change, no write");
    let r = report(ReportKind::Proceeding, "proceeding");
    let e = store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &r, t(32)).map(Some), t(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.state, ExecutionState::Downloading);
    let refused = store
        .change_execution("acme", d1.action_id, &|e| on_device_report(e, &r, t(33)).map(Some), t(33))
        .await
        .unwrap();
    assert_eq!(refused, Err(TransitionError::NotApplicable), "awaiting consent, the device cannot report");
    let done = report(ReportKind::Closed { success: true }, "closed/success");
    let e = store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &done, t(40)).map(Some), t(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.state, e.finished_at), (ExecutionState::Succeeded, Some(t(40))));
    let late = store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &r, t(41)).map(Some), t(41))
        .await
        .unwrap();
    assert_eq!(late, Err(TransitionError::Finished));
    let dev = store.get_device("acme", "d0").await.unwrap().unwrap();
    assert_eq!(dev.firmware["host"], "2.0.0", "a success installs the image's versions");
    assert!(store.device_identity("acme", "d0").await.unwrap().unwrap().attributes_requested);
    let actions = store.device_actions("acme", "d0").await.unwrap();
    assert_eq!((actions.active, actions.installed.map(|e| e.action_id)), (None, Some(d0.action_id)));
    // The same, read in bulk for a poll cache.
    let seeds: Vec<_> = store.poll_seeds(None, 100).await.unwrap().into_iter().filter(|s| s.tenant == "acme").collect();
    let view: Vec<_> = seeds.iter().map(|s| (s.id.as_str(), s.installed, s.offered)).collect();
    assert_eq!(view, [("d0", Some(d0.action_id), false), ("d1", None, true)]);
    let by_token = store.device_identity_by_token_hash(&seeds[1].token_hash).await.unwrap().unwrap();
    assert_eq!((by_token.id.as_str(), by_token.attributes_requested), ("d1", seeds[1].attributes_requested));
    let next = store.poll_seeds(Some(("acme", "d0")), 1).await.unwrap();
    assert_eq!(next, &seeds[1..], "pages follow (tenant, id)");
    let history = store.execution_history("acme", d0.action_id).await.unwrap();
    assert_eq!(
        history.iter().map(|h| h.report.as_str()).collect::<Vec<_>>(),
        ["created", "released", "proceeding", "closed/success"]
    );
    assert_eq!(history[3].details, ["closed/success detail"]);
    assert_eq!(history[3].code, Some(200));
    assert_eq!(history[3].source, EventSource::Device);
    assert_eq!(store.get_job("acme", "j1").await.unwrap().unwrap().state, JobState::Running, "d1 is still open");

    let denied = store
        .change_execution(
            "acme",
            d1.action_id,
            &|e| on_consent(e, false, EventSource::Operator, t(50)).map(Some),
            t(50),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(denied.state, ExecutionState::Rejected);
    let j = store.get_job("acme", "j1").await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.finished_at),
        (JobState::Completed, Some(t(50))),
        "the last execution to finish completes the job"
    );
    assert!(matches!(
        store.change_execution("acme", 999_999, &|_| Ok(None), t(51)).await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete_firmware("acme", "fw2").await.unwrap();
}

pub async fn canceling_a_job(store: &dyn Store) {
    fleet(store, 2).await;
    store
        .create_job(
            "acme",
            &job("j1", "fw2"),
            &tg(&[("d0", ExecutionState::Queued), ("d1", ExecutionState::Queued)]),
            t(20),
        )
        .await
        .unwrap();
    assert_eq!(release(store, "j1", 1, t(21)).await, ["d0"], "oldest first, at most 1");
    let job = cancel(store, "acme", "j1", t(30)).await.unwrap();
    assert_eq!((job.state, job.finished_at), (JobState::Canceled, Some(t(30))));
    let d1 = store.device_actions("acme", "d1").await.unwrap();
    assert_eq!(d1.active, None, "a queued execution ends at once");
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    assert_eq!((d0.state, d0.cancel_requested), (ExecutionState::Notified, true), "a started one is asked to stop");
    let again = store.move_job("acme", "j1", JobState::Running, JobState::Canceled, false, t(31)).await;
    assert_eq!(again.unwrap(), None, "a move from a state the job has left changes nothing");
    let unknown = store.move_job("acme", "nope", JobState::Running, JobState::Canceled, false, t(31)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound { .. })), "{unknown:?}");
    let counts = store.execution_counts("acme", "j1").await.unwrap();
    assert_eq!(counts, [(ExecutionState::Notified, 1), (ExecutionState::Canceled, 1)]);
}

/// The scheduler's store operations on one job: releases that skip busy
/// devices, timeouts, retries, idempotent additions, compare-and-set job
/// moves, and completion that waits for due retries (its leases are
/// [`super::engine::leases_share_the_live_jobs_between_replicas`]).
pub async fn jobs_engine(store: &dyn Store) {
    use updraft_core::rollout::{Recurrence, Retry};
    fleet(store, 3).await;
    let mut j1 = job("j1", "fw2");
    j1.spec.retry = Retry { count: 1, interval_minutes: 5 };
    let targets = vec![("d0", ExecutionState::Queued), ("d1", ExecutionState::Queued)];
    store.create_job("acme", &j1, &tg(&targets), t(20)).await.unwrap();
    assert_eq!(store.get_job("acme", "j1").await.unwrap().unwrap().spec, j1.spec, "the spec is kept as given");
    // A second job for d0: it waits while d0 works on j1.
    let mut j2 = job("j2", "fw2");
    j2.spec.recurrence = Recurrence::Continuous;
    store.create_job("acme", &j2, &tg(&[("d0", ExecutionState::Queued)]), t(20)).await.unwrap();
    assert_eq!(release(store, "j1", 10, t(30)).await, ["d0", "d1"]);
    assert_eq!(release(store, "j2", 10, t(30)).await, Vec::<String>::new(), "d0 is busy");
    let stats = store.pace_stats("acme", "j1", t(60)).await.unwrap();
    assert_eq!((stats.in_progress, stats.released_last_minute, stats.released_total), (2, 2, 2));
    assert_eq!(stats.released_by_second[30], 2, "by age in seconds");
    let at_release = store.pace_stats("acme", "j1", t(30)).await.unwrap();
    assert_eq!(
        (at_release.released_by_second[0], at_release.released_total),
        (2, 0),
        "this instant's releases count in its second, not in the ramp's total"
    );
    assert_eq!(store.pace_stats("acme", "j1", t(95)).await.unwrap().released_last_minute, 0, "a minute later");
    // The job's timeline: releases (and finishes) by bucket from a start.
    let timeline = store.execution_timeline("acme", "j1", t(20), jiff::SignedDuration::from_secs(4)).await.unwrap();
    assert_eq!(
        timeline,
        [crate::store::TimelineRow { bucket: 2, state: None, count: 2 }],
        "released at 30: (30 - 20) / 4"
    );
    assert!(
        store.execution_timeline("acme", "j1", t(31), jiff::SignedDuration::from_secs(4)).await.unwrap().is_empty()
    );
    // Additions are idempotent.
    let added = store
        .add_executions("acme", &j2, &tg(&[("d0", ExecutionState::Queued), ("d2", ExecutionState::Queued)]), t(31))
        .await
        .unwrap();
    assert_eq!(added, 1, "d0 is in j2 already");
    let mut have = store.job_has_devices("acme", "j2", &["d0".into(), "d1".into(), "d2".into()]).await.unwrap();
    have.sort();
    assert_eq!(have, ["d0", "d2"]);
    // d1 fails, d0 times out.
    let d1 = store.device_actions("acme", "d1").await.unwrap().active.unwrap();
    let failed = report(ReportKind::Closed { success: false }, "closed/failure");
    store
        .change_execution("acme", d1.action_id, &|e| on_device_report(e, &failed, t(40)).map(Some), t(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.time_out_executions("acme", "j1", Some(t(30)), t(100)).await.unwrap(),
        Vec::<String>::new(),
        "not before"
    );
    assert_eq!(store.time_out_executions("acme", "j1", Some(t(31)), t(100)).await.unwrap(), ["d0"]);
    assert!(!store.complete_job_if_done("acme", "j1", t(101)).await.unwrap(), "retries are due");
    assert_eq!(
        store.retry_executions("acme", "j1", &j1.spec.retry, t(200)).await.unwrap(),
        Vec::<String>::new(),
        "not yet"
    );
    let retried = store.retry_executions("acme", "j1", &j1.spec.retry, t(40 + 300)).await.unwrap();
    assert_eq!(retried, ["d1"], "d1 failed at 40 s: due at 340 s; d0 timed out at 100 s: due at 400 s");
    let again = store.retry_executions("acme", "j1", &j1.spec.retry, t(400)).await.unwrap();
    assert_eq!(again, ["d0"]);
    let d1 = store.get_execution("acme", d1.action_id).await.unwrap().unwrap();
    assert_eq!((d1.state, d1.attempt, d1.finished_at), (ExecutionState::Queued, 2, None));
    let history = store.execution_history("acme", d1.action_id).await.unwrap();
    assert_eq!(
        history.iter().map(|h| h.report.as_str()).collect::<Vec<_>>(),
        ["created", "released", "closed/failure", "retry"],
        "every attempt stays in the history"
    );
    // j2 can release d0 now that it is queued again in j1? No: queued is not busy, so yes.
    assert_eq!(release(store, "j2", 10, t(401)).await, ["d0", "d2"]);
    assert_eq!(release(store, "j1", 10, t(402)).await, ["d1"], "d0 is busy with j2 now");
    // Moves are compare-and-set.
    assert!(store.move_job("acme", "j1", JobState::Paused, JobState::Running, false, t(403)).await.unwrap().is_none());
    let paused =
        store.move_job("acme", "j1", JobState::Running, JobState::Paused, true, t(403)).await.unwrap().unwrap();
    assert_eq!((paused.state, paused.held), (JobState::Paused, true));
    let aborted =
        store.move_job("acme", "j1", JobState::Paused, JobState::Aborted, false, t(404)).await.unwrap().unwrap();
    assert_eq!((aborted.state, aborted.finished_at), (JobState::Aborted, Some(t(404))));
    let counts: std::collections::BTreeMap<_, _> =
        store.execution_counts("acme", "j1").await.unwrap().into_iter().collect();
    assert_eq!(counts.get(&ExecutionState::Queued), None, "an aborted job's queued executions end");
    // A continuous job never completes by itself.
    let d2 = store.device_actions("acme", "d2").await.unwrap().active.unwrap();
    let ok = report(ReportKind::Closed { success: true }, "closed/success");
    store
        .change_execution("acme", d2.action_id, &|e| on_device_report(e, &ok, t(410)).map(Some), t(410))
        .await
        .unwrap()
        .unwrap();
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &ok, t(411)).map(Some), t(411))
        .await
        .unwrap()
        .unwrap();
    assert!(!store.complete_job_if_done("acme", "j2", t(412)).await.unwrap());
    assert_eq!(store.get_job("acme", "j2").await.unwrap().unwrap().state, JobState::Running);
    let listed = store
        .list_jobs("acme", Some(JobState::Aborted), &page("created_at", SortOrder::Asc, 10, 0, None))
        .await
        .unwrap();
    assert_eq!(listed.items.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["j1"]);
}

/// Releases check the pace and the device's other executions inside their own
/// transaction: many at once (devices asking, the scheduler) never release
/// more than the pace allows, nor two executions to one device.
pub async fn concurrent_releases_keep_the_pace_and_one_execution_per_device(store: &dyn Store) {
    use updraft_core::rollout::{Pace, release_budget};
    const N: usize = 12;
    fleet(store, N + 1).await;
    let mut one_at_a_time = job("j1", "fw2");
    one_at_a_time.spec.pace = Pace { max_concurrency: 1, ..Pace::default() };
    let targets: Vec<(String, ExecutionState)> = (0..N).map(|i| (format!("d{i}"), ExecutionState::Queued)).collect();
    store.create_job("acme", &one_at_a_time, &tg(&targets), t(20)).await.unwrap();
    let paced = |j: &Job, stats: &updraft_core::rollout::PaceStats| release_budget(&j.spec.pace, stats);
    let devices: Vec<String> = (0..N).map(|i| format!("d{i}")).collect();
    let asks = devices.iter().map(|d| store.release_executions("acme", "j1", Some(d), &paced, &|| t(30)));
    let released: Vec<String> =
        futures_util::future::join_all(asks).await.into_iter().flat_map(|r| r.unwrap().devices()).collect();
    assert_eq!(released.len(), 1, "max_concurrency 1, asked by {N} devices at once: {released:?}");
    let counts = store.execution_counts("acme", "j1").await.unwrap();
    assert_eq!(counts, [(ExecutionState::Queued, N as u64 - 1), (ExecutionState::Notified, 1)]);

    // One device, N jobs released to it at once: it works on one.
    for i in 0..N {
        let j = job(&format!("k{i}"), "fw2");
        store.create_job("acme", &j, &tg(&[("d12", ExecutionState::Queued)]), t(40)).await.unwrap();
    }
    let free = |_: &Job, _: &updraft_core::rollout::PaceStats| 10;
    let ids: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    let asks = ids.iter().map(|j| store.release_executions("acme", j, Some("d12"), &free, &|| t(50)));
    let released: Vec<String> =
        futures_util::future::join_all(asks).await.into_iter().flat_map(|r| r.unwrap().devices()).collect();
    assert_eq!(released, ["d12"], "asked for {N} jobs at once, a device works on one");
    let all = store
        .list_executions(
            "acme",
            &ExecutionScope { device: Some("d12".into()), ..Default::default() },
            &PageRequest::all(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(all.iter().filter(|e| e.state.is_in_progress()).count(), 1, "{all:#?}");
    // A device limits the release to its own execution; an unknown job is not found.
    assert_eq!(store.release_executions("acme", "j1", Some("d12"), &free, &|| t(60)).await.unwrap().executions, []);
    assert!(matches!(
        store.release_executions("acme", "nope", None, &free, &|| t(60)).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A verify job whose executions all succeed marks its firmware verified.
pub async fn verify_jobs_mark_firmware(store: &dyn Store) {
    fleet(store, 1).await;
    let mut j = job("v1", "fw2");
    j.kind = JobKind::Verify;
    store.create_job("acme", &j, &tg(&[("d0", ExecutionState::Queued)]), t(20)).await.unwrap();
    release(store, "v1", 1, t(21)).await;
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    assert!(!store.get_firmware("acme", "fw2").await.unwrap().unwrap().verified);
    let ok = report(ReportKind::Closed { success: true }, "closed/success");
    store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &ok, t(22)).map(Some), t(22))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.get_job("acme", "v1").await.unwrap().unwrap().state, JobState::Completed);
    assert!(store.get_firmware("acme", "fw2").await.unwrap().unwrap().verified);
}

/// A success whose transition installs nothing (a download-only job's
/// `downloaded`) leaves the device's versions as they were.
pub async fn a_success_that_installs_nothing_keeps_the_versions(store: &dyn Store) {
    use updraft_core::job::on_device_report_handled;
    use updraft_core::rollout::Handling;
    fleet(store, 1).await;
    store.create_job("acme", &job("dl", "fw2"), &tg(&[("d0", ExecutionState::Queued)]), t(20)).await.unwrap();
    release(store, "dl", 1, t(21)).await;
    let e = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    let downloaded = report(ReportKind::Downloaded, "downloaded");
    let rule = |x: &updraft_core::job::Execution| {
        on_device_report_handled(x, &downloaded, Handling::DownloadOnly, t(22)).map(Some)
    };
    let done = store.change_execution("acme", e.action_id, &rule, t(22)).await.unwrap().unwrap();
    assert_eq!(done.state, ExecutionState::Succeeded);
    let d0 = store.get_device("acme", "d0").await.unwrap().unwrap();
    assert_eq!(d0.firmware.get("host").map(String::as_str), Some("1.0.0"), "nothing was installed");
    assert!(store.device_identity("acme", "d0").await.unwrap().unwrap().attributes_requested);
    assert_eq!(store.get_job("acme", "dl").await.unwrap().unwrap().state, JobState::Completed);
}

/// Action ids come from the tenant's counter: 1, 2, … for its executions
/// and for each new attempt of one; an earlier attempt's id still names the
/// execution, with the attempt it was given to; another device's id names nothing.
pub async fn action_ids_count_per_tenant_and_per_attempt(store: &dyn Store) {
    use updraft_core::rollout::Retry;
    fleet(store, 2).await;
    let both = [("d0", ExecutionState::Queued), ("d1", ExecutionState::Queued)];
    store.create_job("acme", &job("j1", "fw2"), &tg(&both), t(20)).await.unwrap();
    store.create_job("acme", &job("j2", "fw2"), &tg(&both[..1]), t(20)).await.unwrap();
    let action =
        |device: &'static str, n: i64| async move { store.execution_by_action("acme", device, n).await.unwrap() };
    let (first, n) = match action("d0", 1).await {
        Some(found) => (found, 1),
        None => (action("d0", 2).await.expect("d0's first action is 1 or 2"), 2),
    };
    let (first, attempt) = first;
    assert_eq!((first.job.as_str(), first.action, first.public_id(), attempt), ("j1", n, n, 1));
    assert_eq!(action("d1", 3 - n).await.map(|(e, _)| e.job), Some("j1".to_owned()), "d1 has the other number");
    assert!(action("d1", n).await.is_none(), "another device's action names nothing");
    assert_eq!(action("d0", 3).await.map(|(e, _)| (e.job, e.action)), Some(("j2".to_owned(), 3)));
    assert!(action("d0", 4).await.is_none());
    release(store, "j1", 2, t(21)).await;
    let failed = report(ReportKind::Closed { success: false }, "closed/failure");
    let rule = |e: &updraft_core::job::Execution| on_device_report(e, &failed, t(22)).map(Some);
    store.change_execution("acme", first.action_id, &rule, t(22)).await.unwrap().unwrap();
    let retry = Retry { count: 1, interval_minutes: 0 };
    assert_eq!(store.retry_executions("acme", "j1", &retry, t(23)).await.unwrap(), ["d0"]);
    let (retried, attempt) = action("d0", 4).await.expect("the retry took the next number");
    assert_eq!((retried.action_id, retried.attempt, retried.action, attempt), (first.action_id, 2, 4, 2));
    let (old, attempt) = action("d0", n).await.expect("the first attempt's id still names it");
    assert_eq!((old.action_id, old.attempt, attempt), (first.action_id, 2, 1));
    tenant(store, "globex").await;
    assert!(store.execution_by_action("globex", "d0", 1).await.unwrap().is_none(), "tenants never see each other");
}

/// A deleted device takes its executions with it: their histories, their
/// action numbers, their place in the job's counts; a job's later additions
/// leave it out, and a job that names it is refused.
pub async fn deleting_a_device_deletes_its_executions(store: &dyn Store) {
    fleet(store, 3).await;
    let all = [("d0", ExecutionState::Queued), ("d1", ExecutionState::Queued), ("d2", ExecutionState::Queued)];
    store.create_job("acme", &job("j1", "fw2"), &tg(&all), t(20)).await.unwrap();
    assert_eq!(release(store, "j1", 1, t(21)).await, ["d0"]);
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    store.delete_device("acme", "d0", t(50)).await.unwrap();
    assert_eq!(store.get_execution("acme", d0.action_id).await.unwrap(), None);
    assert!(store.execution_history("acme", d0.action_id).await.unwrap().is_empty());
    assert!(store.execution_by_action("acme", "d0", d0.action).await.unwrap().is_none());
    assert_eq!(store.execution_counts("acme", "j1").await.unwrap(), [(ExecutionState::Queued, 2)]);
    let scope = ExecutionScope { job: Some("j1".into()), ..Default::default() };
    let listed = store.list_executions("acme", &scope, &page("device", SortOrder::Asc, 10, 0, None)).await.unwrap();
    assert_eq!(listed.items.iter().map(|e| e.device.as_str()).collect::<Vec<_>>(), ["d1", "d2"]);
    // A continuous job's additions skip a device deleted since it was selected.
    store.delete_device("acme", "d2", t(50)).await.unwrap();
    let mut j2 = job("j2", "fw2");
    j2.spec.recurrence = updraft_core::rollout::Recurrence::Continuous;
    store.create_job("acme", &j2, &[], t(22)).await.unwrap();
    let later = [("d1", ExecutionState::Queued), ("d2", ExecutionState::Queued)];
    assert_eq!(store.add_executions("acme", &j2, &tg(&later), t(23)).await.unwrap(), 1);
    assert_eq!(store.add_executions("acme", &j2, &tg(&later), t(24)).await.unwrap(), 0, "d1 has one already");
    let refused = store.create_job("acme", &job("j3", "fw2"), &tg(&later), t(25)).await;
    assert_eq!(missing_fields(refused.unwrap_err()), ["devices.d2"]);
    assert_eq!(store.get_job("acme", "j3").await.unwrap(), None);
    // A deletion racing a job's start: whichever commits first, no execution outlives its device.
    for i in 0..10 {
        let id = format!("r{i}");
        store.create_devices("acme", &[super::device(&id, "thermo")], t(26)).await.unwrap();
        let racing = job(&format!("race{i}"), "fw2");
        let targets = tg(&[(id.as_str(), ExecutionState::Queued), ("d1", ExecutionState::Queued)]);
        let (started, deleted) =
            tokio::join!(store.create_job("acme", &racing, &targets, t(26)), store.delete_device("acme", &id, t(50)));
        deleted.unwrap();
        match started {
            Ok(()) => {
                let scope = ExecutionScope { job: Some(racing.id.clone()), ..Default::default() };
                let listed =
                    store.list_executions("acme", &scope, &page("device", SortOrder::Asc, 10, 0, None)).await.unwrap();
                let devices: Vec<&str> = listed.items.iter().map(|e| e.device.as_str()).collect();
                assert_eq!(devices, ["d1"], "the deleted device's execution went with it");
            }
            Err(e) => assert_eq!(missing_fields(e), [format!("devices.{id}")]),
        }
    }
    // Deleting a device without executions, or one that is not there.
    store.create_devices("acme", &[super::device("d9", "thermo")], t(26)).await.unwrap();
    store.delete_device("acme", "d9", t(50)).await.unwrap();
    assert!(matches!(store.delete_device("acme", "d9", t(50)).await, Err(StoreError::NotFound { .. })));
}

/// The jobs engine's invariants under random interleavings of job creation,
/// scheduler releases (within each job's pace), device reports, timeouts,
/// retries, pauses and cancellations: no job ever has more executions in
/// progress than its `max_concurrency`, nor releases more than its
/// `max_per_minute` in any minute; no device ever works on two executions at
/// once; an excluded device never gets an execution; an execution of a
/// phase is never released before that phase opened.
pub async fn jobs_engine_invariants(store: &dyn Store) {
    engine_invariants(store).await;
}

async fn engine_invariants(store: &dyn Store) {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use updraft_core::NewDevice;
    use updraft_core::rollout::{Pace, PaceStats, Retry, release_budget, select};

    use super::{device, firmware, product};
    use crate::store::DeviceScope;

    const DEVICES: usize = 8;
    const CASES: usize = 48;

    #[derive(Debug, Clone)]
    enum Op {
        Create { targets: Vec<bool>, exclude: Vec<bool>, concurrency: u32, rate: Option<u32>, phased: Option<u64> },
        OpenPhase(usize),
        Tick(usize),
        Report { device: usize, success: bool },
        Advance(i64),
        TimeOut(usize),
        Retry(usize),
        Cancel(usize),
    }
    let op = prop_oneof![
        1 => (
            proptest::collection::vec(any::<bool>(), DEVICES),
            proptest::collection::vec(proptest::bool::weighted(0.2), DEVICES),
            1u32..4,
            proptest::option::of(1u32..4),
            proptest::option::weighted(0.5, 1u64..4),
        )
            .prop_map(|(targets, exclude, concurrency, rate, phased)| Op::Create {
                targets,
                exclude,
                concurrency,
                rate,
                phased
            }),
        1 => (0usize..4).prop_map(Op::OpenPhase),
        6 => (0usize..4).prop_map(Op::Tick),
        5 => (0usize..DEVICES, proptest::bool::weighted(0.5)).prop_map(|(device, success)| Op::Report { device, success }),
        2 => (1i64..90).prop_map(Op::Advance),
        1 => (0usize..4).prop_map(Op::TimeOut),
        3 => (0usize..4).prop_map(Op::Retry),
        1 => (0usize..8).prop_map(Op::Cancel),
    ];
    let ops = proptest::collection::vec(op, 20..80);
    let mut runner = TestRunner::deterministic();
    let mut releases_checked = 0;
    let mut re_releases = 0;
    let mut later_phase_releases = 0;
    let to_install = [("host".to_owned(), "9.0.0".to_owned())];
    for case in 0..CASES {
        let tenant_id = format!("inv{case}");
        tenant(store, &tenant_id).await;
        store.create_product(&tenant_id, &product("thermo")).await.unwrap();
        let devices: Vec<NewDevice> = (0..DEVICES).map(|i| device(&format!("d{i}"), "thermo")).collect();
        store.create_devices(&tenant_id, &devices, t(1)).await.unwrap();
        store.create_firmware(&tenant_id, &firmware("fw", "thermo", "9.0.0")).await.unwrap();
        let stored = store.list_devices(&tenant_id, &DeviceScope::default(), &PageRequest::all()).await.unwrap().items;
        let mut now = 100i64;
        let mut jobs: Vec<(Job, Vec<i64>)> = Vec::new(); // each job with its release times
        for op in ops.new_tree(&mut runner).unwrap().current() {
            match op {
                Op::Create { targets, exclude, concurrency, rate, phased } => {
                    let mut j = job(&format!("j{}", jobs.len()), "fw");
                    j.spec.pace = Pace { max_concurrency: concurrency, max_per_minute: rate, ..Pace::default() };
                    j.spec.retry = Retry { count: 1, interval_minutes: 0 };
                    j.spec.target.devices = (0..DEVICES).filter(|i| targets[*i]).map(|i| format!("d{i}")).collect();
                    j.spec.target.exclude = (0..DEVICES).filter(|i| exclude[*i]).map(|i| format!("d{i}")).collect();
                    let picked: Vec<(String, ExecutionState)> = stored
                        .iter()
                        .filter(|d| j.spec.target.devices.contains(&d.id))
                        .filter_map(|d| {
                            select(&j.spec, &j.id, false, d.into(), true, &to_install).map(|s| (d.id.clone(), s))
                        })
                        .collect();
                    let mut targets = tg(&picked);
                    if let Some(first) = phased {
                        use updraft_core::phase::{Gate, Phase};
                        let gate = Gate { manual: true, ..Gate::default() };
                        j.spec.phases =
                            vec![Phase { devices: Some(first), gate, ..Phase::default() }, Phase::default()];
                        let ids: Vec<&str> = picked.iter().map(|(d, _)| d.as_str()).collect();
                        for (t, p) in targets.iter_mut().zip(updraft_core::phase::assign(&j.id, &j.spec.phases, &ids)) {
                            t.phase = p;
                        }
                    }
                    store.create_job(&tenant_id, &j, &targets, t(now)).await.unwrap();
                    jobs.push((j, vec![]));
                }
                Op::OpenPhase(i) => {
                    let Some((j, _)) = jobs.get(i) else { continue };
                    let stored = store.get_job(&tenant_id, &j.id).await.unwrap().unwrap();
                    if (stored.phase.current as usize) + 1 < stored.spec.phases.len() {
                        let next = updraft_core::phase::open_next(&stored.phase, t(now));
                        assert!(store.set_job_phase(&tenant_id, &j.id, &stored.phase, &next, false).await.unwrap());
                        let stale = store.set_job_phase(&tenant_id, &j.id, &stored.phase, &next, false).await.unwrap();
                        assert!(!stale, "a phase state changed since it was read is not replaced");
                    }
                }
                Op::Tick(i) => {
                    let Some((j, released)) = jobs.get_mut(i) else { continue };
                    let open = store.get_job(&tenant_id, &j.id).await.unwrap().unwrap().open_phase();
                    let budget = |j: &Job, stats: &PaceStats| {
                        if j.state == JobState::Running { release_budget(&j.spec.pace, stats) } else { 0 }
                    };
                    let got =
                        store.release_executions(&tenant_id, &j.id, None, &budget, &|| t(now)).await.unwrap().devices();
                    let again = store.release_executions(&tenant_id, &j.id, None, &budget, &|| t(now)).await.unwrap();
                    assert_eq!(again.executions, [], "a tick repeated at the same instant releases nothing more");
                    for d in &got {
                        let e = store
                            .list_executions(
                                &tenant_id,
                                &ExecutionScope { job: Some(j.id.clone()), device: Some(d.clone()), state: None },
                                &PageRequest::all(),
                            )
                            .await
                            .unwrap()
                            .items;
                        if e.first().is_some_and(|e| e.attempt > 1) {
                            re_releases += 1;
                        }
                        let phase = e.first().map_or(0, |e| e.phase);
                        assert!(phase <= open, "{d} of phase {phase} released while phase {open} is open");
                        if phase > 0 {
                            later_phase_releases += 1;
                        }
                    }
                    released.extend(std::iter::repeat_n(now, got.len()));
                }
                Op::Report { device, success } => {
                    let d = format!("d{device}");
                    if let Some(e) = store.device_actions(&tenant_id, &d).await.unwrap().active {
                        let r = report(
                            ReportKind::Closed { success },
                            if success { "closed/success" } else { "closed/failure" },
                        );
                        let _ = store
                            .change_execution(
                                &tenant_id,
                                e.action_id,
                                &|x| on_device_report(x, &r, t(now)).map(Some),
                                t(now),
                            )
                            .await
                            .unwrap();
                    }
                }
                Op::Advance(secs) => now += secs,
                Op::TimeOut(i) => {
                    if let Some((j, _)) = jobs.get(i) {
                        store.time_out_executions(&tenant_id, &j.id, Some(t(now - 60)), t(now)).await.unwrap();
                    }
                }
                Op::Retry(i) => {
                    if let Some((j, _)) = jobs.get(i) {
                        store.retry_executions(&tenant_id, &j.id, &j.spec.retry, t(now)).await.unwrap();
                    }
                }
                Op::Cancel(i) => {
                    if let Some((j, _)) = jobs.get(i) {
                        cancel(store, &tenant_id, &j.id, t(now)).await;
                    }
                }
            }
            // The invariants, after every step.
            let all =
                store.list_executions(&tenant_id, &ExecutionScope::default(), &PageRequest::all()).await.unwrap().items;
            for d in &stored {
                let working = all.iter().filter(|e| e.device == d.id && e.state.is_in_progress()).count();
                assert!(working <= 1, "device {} works on {working} executions at once: {all:#?}", d.id);
            }
            for (j, released) in &jobs {
                let mine: Vec<&updraft_core::job::Execution> = all.iter().filter(|e| e.job == j.id).collect();
                let in_progress = mine.iter().filter(|e| e.state.is_in_progress()).count();
                assert!(
                    in_progress as u32 <= j.spec.pace.max_concurrency,
                    "job {} has {in_progress} in progress",
                    j.id
                );
                for e in &mine {
                    assert!(
                        !j.spec.target.exclude.contains(&e.device),
                        "excluded device {} got an execution",
                        e.device
                    );
                }
                if let Some(rate) = j.spec.pace.max_per_minute {
                    for start in released {
                        let window = released.iter().filter(|r| **r >= *start && **r < start + 60).count();
                        assert!(
                            window as u32 <= rate,
                            "job {} released {window} in a minute (max {rate}): {released:?} at {now}",
                            j.id
                        );
                        let second = released.iter().filter(|r| **r == *start).count();
                        assert!(second as u32 <= rate.div_ceil(60), "job {} released {second} at once", j.id);
                        releases_checked += 1;
                    }
                }
            }
        }
    }
    assert!(releases_checked > 20, "the sequences exercised rate limits only {releases_checked} times");
    assert!(re_releases >= 5, "the sequences released retried executions only {re_releases} times");
    assert!(later_phase_releases >= 5, "the sequences released later phases only {later_phase_releases} times");
}

/// Phases hold executions back until they open; the phase state is replaced
/// only as it was read, and can pause the job with it; a force-cancel ends
/// executions devices are working on; `retry_failed` runs a finished job's
/// failures again as new attempts; `busy_elsewhere` names what else a device works on.
pub async fn phases_force_cancel_and_retry_failed(store: &dyn Store) {
    use updraft_core::phase::{Gate, Phase, PhaseState, open_next};
    fleet(store, 4).await;
    let mut j = job("j1", "fw2");
    j.spec.phases = vec![
        Phase { devices: Some(1), gate: Gate { manual: true, ..Gate::default() }, ..Phase::default() },
        Phase::default(),
    ];
    let targets: Vec<Target> = ["d0", "d1", "d2"]
        .iter()
        .enumerate()
        .map(|(i, d)| Target { device: (*d).into(), state: ExecutionState::Queued, phase: u32::from(i > 0) })
        .collect();
    store.create_job("acme", &j, &targets, t(20)).await.unwrap();
    assert_eq!(release(store, "j1", 10, t(21)).await, ["d0"], "only phase 0 is open");
    let counts = store.phase_counts("acme", "j1", 1).await.unwrap();
    assert_eq!(counts, [(ExecutionState::Queued, 1, 2)]);
    assert_eq!(store.phase_counts("acme", "j1", 0).await.unwrap(), [(ExecutionState::Notified, 1, 1)]);

    // Compare-and-set, with a pause.
    let opened = open_next(&PhaseState::default(), t(22));
    let stale = PhaseState { approved: true, ..PhaseState::default() };
    assert!(!store.set_job_phase("acme", "j1", &stale, &opened, false).await.unwrap());
    let paused = PhaseState { error_paused: vec![0], ..PhaseState::default() };
    assert!(store.set_job_phase("acme", "j1", &PhaseState::default(), &paused, true).await.unwrap());
    let stored = store.get_job("acme", "j1").await.unwrap().unwrap();
    assert_eq!((stored.state, stored.held, &stored.phase), (JobState::Paused, true, &paused));
    store.move_job("acme", "j1", JobState::Paused, JobState::Running, false, t(22)).await.unwrap().unwrap();
    assert!(store.set_job_phase("acme", "j1", &paused, &opened, false).await.unwrap());
    assert_eq!(store.get_job("acme", "j1").await.unwrap().unwrap().open_phase(), 1);
    let mut second = release(store, "j1", 10, t(23)).await;
    second.sort();
    assert_eq!(second, ["d1", "d2"]);

    // d0 is busy with j1 when j2 looks.
    store.create_job("acme", &job("j2", "fw2"), &tg(&[("d0", ExecutionState::Queued)]), t(24)).await.unwrap();
    let busy = store.busy_elsewhere("acme", "j2", &["d0".into(), "d3".into()]).await.unwrap();
    assert_eq!(busy.iter().map(|e| (e.job.as_str(), e.device.as_str())).collect::<Vec<_>>(), [("j1", "d0")]);
    assert_eq!(release(store, "j2", 10, t(24)).await, Vec::<String>::new(), "d0 works on j1");

    // d1 fails, d2 succeeds; then j1 is force-canceled: d0, which never answers, is freed.
    let d1 = store.device_actions("acme", "d1").await.unwrap().active.unwrap();
    let fail = report(ReportKind::Closed { success: false }, "closed/failure");
    store
        .change_execution("acme", d1.action_id, &|x| on_device_report(x, &fail, t(25)).map(Some), t(25))
        .await
        .unwrap()
        .unwrap();
    let d2 = store.device_actions("acme", "d2").await.unwrap().active.unwrap();
    let ok = report(ReportKind::Closed { success: true }, "closed/success");
    store
        .change_execution("acme", d2.action_id, &|x| on_device_report(x, &ok, t(25)).map(Some), t(25))
        .await
        .unwrap()
        .unwrap();
    cancel(store, "acme", "j1", t(26)).await.unwrap();
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    assert_eq!((d0.job.as_str(), d0.cancel_requested), ("j1", true), "a plain cancel waits for the device");
    assert_eq!(store.force_cancel_executions("acme", "j1", t(27)).await.unwrap(), ["d0"]);
    assert_eq!(store.force_cancel_executions("acme", "j1", t(27)).await.unwrap(), Vec::<String>::new());
    let history = store.execution_history("acme", d0.action_id).await.unwrap();
    assert_eq!(
        history.last().map(|e| (e.state, e.report.as_str())),
        Some((ExecutionState::Canceled, "force_canceled"))
    );
    assert_eq!(release(store, "j2", 10, t(28)).await, ["d0"], "the freed device starts its next job");

    // Retry the failures of a finished job.
    assert_eq!(store.retry_failed("acme", "j1", JobState::Completed, JobState::Running, t(29)).await.unwrap(), None);
    assert_eq!(
        store.retry_failed("acme", "j1", JobState::Canceled, JobState::Running, t(29)).await.unwrap(),
        Some(vec!["d1".to_owned()])
    );
    let j1 = store.get_job("acme", "j1").await.unwrap().unwrap();
    assert_eq!((j1.state, j1.finished_at), (JobState::Running, None));
    let retried = store
        .list_executions(
            "acme",
            &ExecutionScope { job: Some("j1".into()), device: Some("d1".into()), state: None },
            &PageRequest::all(),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!((retried.state, retried.attempt, retried.phase), (ExecutionState::Queued, 2, 1));
    assert_ne!(retried.action, d1.action, "a new attempt, a new action id");
}

/// A device's step timer (AWS IoT Jobs' `stepTimeoutInMinutes`) times its execution out once it
/// passes, without a job timeout, and starting it again moves its deadline.
pub async fn step_timers_time_executions_out(store: &dyn Store) {
    fleet(store, 2).await;
    store
        .create_job(
            "acme",
            &job("j1", "fw2"),
            &tg(&[("d0", ExecutionState::Queued), ("d1", ExecutionState::Queued)]),
            t(10),
        )
        .await
        .unwrap();
    assert_eq!(release(store, "j1", 10, t(20)).await, ["d0", "d1"]);
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    assert!(store.set_step_deadline("acme", d0.action_id, t(80)).await.unwrap());
    assert!(!store.set_step_deadline("acme", 999_999, t(80)).await.unwrap(), "no such execution");
    assert!(!store.set_step_deadline("other", d0.action_id, t(80)).await.unwrap(), "another tenant's");
    assert_eq!(store.time_out_executions("acme", "j1", None, t(80)).await.unwrap(), Vec::<String>::new(), "not yet");
    // Started again: the new deadline counts.
    assert!(store.set_step_deadline("acme", d0.action_id, t(140)).await.unwrap());
    assert_eq!(store.time_out_executions("acme", "j1", None, t(100)).await.unwrap(), Vec::<String>::new());
    assert_eq!(store.time_out_executions("acme", "j1", None, t(141)).await.unwrap(), ["d0"], "d1 has no timer");
    let d0 = store.get_execution("acme", d0.action_id).await.unwrap().unwrap();
    assert_eq!(d0.state, ExecutionState::TimedOut);
}
