//! The fleet simulator against the in-test DDI server: registration in batches, then every
//! device downloads, verifies and reports, with exact failure and silence counts; cancellations;
//! an idle stop that never comes before every device has polled; and a deployment the server
//! closes before the device is done, counted as an error.

mod common;

use std::time::Duration;

use common::{MockOptions, artifact_bytes};
use updraft_agent::sim::{self, Fleet, OutcomeMode, Registration, SimConfig, SimDevice};
use updraft_ddi::Finished;

fn sim_config(server: &str) -> SimConfig {
    let mut c = SimConfig::new(server);
    c.poll_interval = Some(Duration::from_millis(100));
    c.ramp_up = Duration::from_millis(200);
    c.jitter = 0.2;
    c.until_idle = Some(Duration::from_millis(500));
    c.duration = Some(Duration::from_secs(60));
    c.max_downloads = 16;
    c.max_requests = 64;
    c.firmware.insert("host".into(), "1.0.0".into());
    c
}

#[tokio::test]
async fn a_fleet_of_200_completes_with_counts_that_add_up() -> anyhow::Result<()> {
    let bytes = artifact_bytes(20_000);
    let mock = common::start(MockOptions::new(bytes.clone())).await;

    let http = updraft_agent::http_client(&updraft_agent::HttpSettings::default())?;
    let mut registration = Registration::new(mock.base.clone(), "api-key", "gateway");
    registration.firmware.insert("host".into(), "1.0.0".into());
    registration.batch = 64;
    let ids = sim::device_ids("sim-", 200);
    let devices = sim::register_devices(&http, &registration, &ids).await?;
    assert_eq!(mock.log().imports, [64, 64, 64, 8]);
    assert_eq!(devices[5], SimDevice { index: 5, id: "sim-00005".into(), token: "tok-sim-00005".into() });

    let mut config = sim_config(&mock.base);
    config.fail_rate = 0.1;
    config.timeout_rate = 0.05;
    config.outcomes = OutcomeMode::ByIndex;
    config.install_delay = Duration::from_millis(20);
    let fleet = Fleet::new(config, devices)?;
    let live = fleet.counters();
    let summary = fleet.run(std::future::pending()).await?;

    let mut after = live.snapshot();
    after.elapsed_ms = summary.elapsed_ms;
    assert_eq!(summary, after, "the live counters end where the summary says");
    assert_eq!(summary.devices, 200);
    assert_eq!(summary.errors, 0, "{:?}", summary.last_error);
    assert_eq!(summary.deployments_seen, 200);
    assert_eq!(summary.downloads, 200);
    assert_eq!(summary.bytes, 200 * bytes.len() as u64);
    assert_eq!((summary.succeeded, summary.failed, summary.silent), (170, 20, 10));
    assert_eq!((summary.in_progress, summary.hash_mismatches), (0, 0));
    assert!(summary.polls >= 200);

    let log = mock.log();
    let outcomes = common::outcomes(&log);
    assert_eq!(outcomes.values().filter(|f| **f == Finished::Success).count(), 170);
    assert_eq!(outcomes.values().filter(|f| **f == Finished::Failure).count(), 20);
    assert_eq!(log.unauthorized, 0);
    // Every success is followed by the new version in configData.
    let updated = log.config.iter().filter(|(_, d)| d.get("fw.host").map(String::as_str) == Some("2.0.0")).count();
    assert_eq!(updated, 170);
    Ok(())
}

#[tokio::test]
async fn corrupted_artifacts_fail_every_device() -> anyhow::Result<()> {
    let mut options = MockOptions::new(artifact_bytes(5_000));
    options.corrupt = true;
    let mock = common::start(options).await;
    let devices: Vec<SimDevice> =
        (0..20).map(|i| SimDevice { index: i, id: format!("bad-{i}"), token: format!("t{i}") }).collect();
    let mut config = sim_config(&mock.base);
    let kept = tempfile::tempdir()?;
    config.keep_dir = Some(kept.path().to_owned());
    let summary = Fleet::new(config, devices)?.run(std::future::pending()).await?;
    assert_eq!((summary.failed, summary.hash_mismatches, summary.succeeded), (20, 20, 0));
    let outcomes = common::outcomes(&mock.log());
    assert_eq!(outcomes.len(), 20);
    assert!(outcomes.values().all(|f| *f == Finished::Failure));
    assert_eq!(std::fs::read_dir(kept.path())?.count(), 20, "one directory of kept bytes per device");
    Ok(())
}

#[tokio::test]
async fn cancellations_are_accepted_and_the_run_stops_at_its_duration() -> anyhow::Result<()> {
    let mut options = MockOptions::new(artifact_bytes(100));
    options.cancel = true;
    let mock = common::start(options).await;
    let devices: Vec<SimDevice> =
        (0..30).map(|i| SimDevice { index: i, id: format!("c-{i}"), token: format!("t{i}") }).collect();
    let mut config = sim_config(&mock.base);
    config.until_idle = None;
    config.duration = Some(Duration::from_millis(800));
    let started = std::time::Instant::now();
    let summary = Fleet::new(config, devices)?.run(std::future::pending()).await?;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((summary.canceled, summary.deployments_seen, summary.errors), (30, 0, 0));
    assert_eq!(mock.log().cancel_feedback.len(), 30);
    Ok(())
}

#[tokio::test]
async fn until_idle_waits_for_every_device_to_poll_once() -> anyhow::Result<()> {
    let mock = common::start(MockOptions::new(artifact_bytes(1_000))).await;
    let devices: Vec<SimDevice> =
        (0..5).map(|i| SimDevice { index: i, id: format!("late-{i}"), token: format!("t{i}") }).collect();
    let mut config = sim_config(&mock.base);
    // First polls spread over two seconds, far longer than the idle limit.
    config.ramp_up = Duration::from_secs(2);
    config.poll_interval = Some(Duration::from_secs(5));
    config.until_idle = Some(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let summary = Fleet::new(config, devices)?.run(std::future::pending()).await?;
    assert_eq!((summary.deployments_seen, summary.succeeded, summary.errors), (5, 5, 0), "{summary:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    Ok(())
}

#[tokio::test]
async fn a_deployment_the_server_closes_first_counts_as_an_error() -> anyhow::Result<()> {
    let mut options = MockOptions::new(artifact_bytes(50_000));
    options.cut_after = Some(10_000);
    let mock = common::start(options).await;
    let device = SimDevice { index: 0, id: "gone-0".into(), token: "t0".into() };
    let mut config = sim_config(&mock.base);
    config.poll_interval = Some(Duration::from_millis(600));
    config.ramp_up = Duration::ZERO;
    config.until_idle = Some(Duration::from_millis(300));
    let fleet = Fleet::new(config, vec![device])?;
    let live = fleet.counters();
    let run = tokio::spawn(fleet.run(std::future::pending()));
    // The download breaks; before the device polls again, the server closes the action.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while live.snapshot().errors == 0 {
        assert!(std::time::Instant::now() < deadline, "the download never broke");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mock.log().finished.insert("gone-0".into());
    let summary = run.await??;
    assert_eq!((summary.deployments_seen, summary.succeeded, summary.failed, summary.silent), (1, 0, 0, 0));
    assert_eq!((summary.errors, summary.in_progress), (2, 0), "{summary:?}");
    assert!(summary.last_error.as_deref().is_some_and(|e| e.contains("closed action 7")), "{summary:?}");
    Ok(())
}
