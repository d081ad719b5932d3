//! The device agent against the in-test DDI server: the happy path, a corrupted artifact, a
//! broken download resumed with `Range` after a restart, a rate-limited download, a restart
//! during install, a failing installer and a cancellation.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{FILENAME, Mock, MockOptions, NEW_VERSION, artifact_bytes};
use updraft_agent::{Agent, AgentConfig, AgentState, Auth, Error, Installer, Phase};
use updraft_ddi::{Execution as E, Finished as F};

const DEVICE: &str = "dev-1";

fn config(mock: &Mock, state_dir: &Path, installer: Installer) -> AgentConfig {
    let mut c = AgentConfig::new(
        mock.base.clone(),
        "default",
        DEVICE,
        Auth::TargetToken("secret".into()),
        state_dir,
        installer,
    );
    c.firmware.insert("host".into(), "1.0.0".into());
    c.attributes.insert("hardware_version".into(), "rev-b".into());
    c.poll_interval = Some(Duration::from_millis(10));
    c.retry_backoff = Duration::from_millis(10);
    c.http.request_timeout = Duration::from_secs(10);
    c.http.read_timeout = Duration::from_secs(10);
    c
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        if e.path().is_dir() {
            out.extend(files_in(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn installs_a_verified_artifact_and_reports_each_phase() -> anyhow::Result<()> {
    let bytes = artifact_bytes(300_000);
    let mock = common::start(MockOptions::new(bytes.clone())).await;
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("installed.img");
    let mut agent = Agent::new(config(&mock, &dir.path().join("state"), Installer::CopyTo(target.clone()))).await?;
    agent.run_once().await?;

    assert_eq!(std::fs::read(&target)?, bytes);
    assert_eq!(mock.statuses(DEVICE), [(E::Proceeding, F::None), (E::Downloaded, F::None), (E::Closed, F::Success)]);
    assert_eq!(mock.log().ranges, [None], "one plain download");
    {
        let log = mock.log();
        let (first, last) = (&log.config.first().unwrap().1, &log.config.last().unwrap().1);
        assert_eq!(first.get("fw.host").map(String::as_str), Some("1.0.0"), "versions at first start");
        assert_eq!(last.get("fw.host").map(String::as_str), Some(NEW_VERSION), "versions after the install");
        assert_eq!(last.get("hardware_version").map(String::as_str), Some("rev-b"));
        assert_eq!(log.unauthorized, 0);
    }
    assert_eq!(agent.installed().get("host").map(String::as_str), Some(NEW_VERSION));
    let saved = AgentState::load(agent.state_path())?.unwrap();
    assert_eq!((saved.work, saved.installed.get("host").cloned()), (None, Some(NEW_VERSION.to_owned())));
    assert!(files_in(&dir.path().join("state/downloads")).is_empty(), "downloads are cleaned up");

    // Nothing left to do: another round sends nothing.
    let before = mock.log().feedback.len();
    agent.run_once().await?;
    assert_eq!(mock.log().feedback.len(), before);
    Ok(())
}

#[tokio::test]
async fn a_corrupted_artifact_is_never_installed_and_fails_the_action() -> anyhow::Result<()> {
    let mut options = MockOptions::new(artifact_bytes(10_000));
    options.corrupt = true;
    let mock = common::start(options).await;
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("installed.img");
    let marker = dir.path().join("installer-ran");
    let cmd = format!("sh -c 'touch {}; cp {{file}} {}'", marker.display(), target.display());
    let mut agent = Agent::new(config(&mock, &dir.path().join("state"), Installer::Command(cmd))).await?;
    agent.run_once().await?;

    assert!(!marker.exists() && !target.exists(), "the installer never ran");
    assert_eq!(mock.statuses(DEVICE), [(E::Proceeding, F::None), (E::Closed, F::Failure)]);
    let details = mock.details(DEVICE).join(" | ");
    assert!(details.contains("sha256 mismatch") && details.contains(FILENAME), "{details}");
    assert!(files_in(&dir.path().join("state/downloads")).is_empty(), "the bad file was deleted");
    assert_eq!(agent.installed().get("host").map(String::as_str), Some("1.0.0"));
    Ok(())
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_range_after_a_restart() -> anyhow::Result<()> {
    let bytes = artifact_bytes(200_000);
    let mut options = MockOptions::new(bytes.clone());
    options.cut_after = Some(80_000);
    let mock = common::start(options).await;
    let dir = tempfile::tempdir()?;
    let state_dir = dir.path().join("state");
    let target = dir.path().join("installed.img");

    // First life: the connection breaks and no retry is allowed, as if the agent died there.
    let mut first = config(&mock, &state_dir, Installer::CopyTo(target.clone()));
    first.download_retries = 0;
    let mut agent = Agent::new(first).await?;
    let err = agent.run_once().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    drop(agent);
    let saved = AgentState::load(&state_dir.join(updraft_agent::STATE_FILE))?.unwrap();
    assert_eq!(saved.work.as_ref().map(|w| w.phase.clone()), Some(Phase::Downloading));
    let partial: Vec<String> = files_in(&state_dir.join("downloads"));
    assert_eq!(partial.len(), 1, "{partial:?}");
    assert!(partial[0].ends_with(".part"));
    let have = std::fs::metadata(&partial[0])?.len();
    assert!(have > 0 && have <= 80_000, "kept {have} bytes");

    // Second life: resumes where the file ends.
    let mut agent = Agent::new(config(&mock, &state_dir, Installer::CopyTo(target.clone()))).await?;
    agent.run_once().await?;
    assert_eq!(std::fs::read(&target)?, bytes);
    assert_eq!(mock.log().ranges, [None, Some(format!("bytes={have}-"))]);
    assert_eq!(
        mock.statuses(DEVICE),
        [(E::Proceeding, F::None), (E::Proceeding, F::None), (E::Downloaded, F::None), (E::Closed, F::Success)]
    );
    assert!(mock.details(DEVICE).iter().any(|d| d.contains("restarted during download")));
    Ok(())
}

#[tokio::test]
async fn a_rate_limited_download_takes_as_long_as_its_limit() -> anyhow::Result<()> {
    let bytes = artifact_bytes(400_000);
    let mock = common::start(MockOptions::new(bytes.clone())).await;
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("installed.img");
    let mut limited = config(&mock, &dir.path().join("state"), Installer::CopyTo(target.clone()));
    limited.download_rate_limit = Some(800_000);
    let mut agent = Agent::new(limited).await?;
    let started = std::time::Instant::now();
    agent.run_once().await?;
    let took = started.elapsed();
    // 400 kB at 800 kB/s from an empty bucket: half a second, whatever the server's pace.
    assert!(took >= Duration::from_millis(450), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(std::fs::read(&target)?, bytes);
    assert_eq!(mock.statuses(DEVICE).last(), Some(&(E::Closed, F::Success)));

    let mut zero = config(&mock, &dir.path().join("other"), Installer::CopyTo(target));
    zero.download_rate_limit = Some(0);
    assert!(matches!(Agent::new(zero).await.err(), Some(Error::Config(_))));
    Ok(())
}

#[tokio::test]
async fn a_broken_download_is_resumed_within_the_same_cycle() -> anyhow::Result<()> {
    let bytes = artifact_bytes(120_000);
    let mut options = MockOptions::new(bytes.clone());
    options.cut_after = Some(50_000);
    let mock = common::start(options).await;
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("installed.img");
    let mut agent = Agent::new(config(&mock, &dir.path().join("state"), Installer::CopyTo(target.clone()))).await?;
    agent.run_once().await?;
    assert_eq!(std::fs::read(&target)?, bytes);
    let ranges = mock.log().ranges.clone();
    assert_eq!(ranges.len(), 2);
    assert!(ranges[1].as_deref().is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"), "{ranges:?}");
    assert_eq!(mock.statuses(DEVICE).last(), Some(&(E::Closed, F::Success)));
    Ok(())
}

#[tokio::test]
async fn a_restart_during_install_runs_the_installer_again_and_reports() -> anyhow::Result<()> {
    let bytes = artifact_bytes(50_000);
    let mock = common::start(MockOptions::new(bytes.clone())).await;
    let dir = tempfile::tempdir()?;
    let state_dir = dir.path().join("state");
    let state_file = state_dir.join(updraft_agent::STATE_FILE);

    // First life: an installer that hangs; the agent is killed while it runs.
    let mut agent = Agent::new(config(&mock, &state_dir, Installer::Command("sleep 30".into()))).await?;
    let task = tokio::spawn(async move { agent.run_once().await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let installing =
            AgentState::load(&state_file)?.and_then(|s| s.work).is_some_and(|w| w.phase == Phase::Installing);
        if installing {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the agent never reached the installing phase");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    // Second life: a working installer.
    let target = dir.path().join("installed.img");
    let mut agent = Agent::new(config(&mock, &state_dir, Installer::CopyTo(target.clone()))).await?;
    agent.run_once().await?;
    assert_eq!(std::fs::read(&target)?, bytes);
    assert_eq!(
        mock.statuses(DEVICE),
        [(E::Proceeding, F::None), (E::Downloaded, F::None), (E::Proceeding, F::None), (E::Closed, F::Success)]
    );
    assert!(mock.details(DEVICE).iter().any(|d| d.contains("restarted during install")));
    assert_eq!(mock.log().ranges.len(), 1, "the verified download was kept, not fetched again");
    assert_eq!(agent.installed().get("host").map(String::as_str), Some(NEW_VERSION));
    let last = mock.log().config.last().unwrap().1.clone();
    assert_eq!(last.get("fw.host").map(String::as_str), Some(NEW_VERSION));
    Ok(())
}

#[tokio::test]
async fn a_failing_installer_fails_the_action_and_keeps_the_old_version() -> anyhow::Result<()> {
    let mock = common::start(MockOptions::new(artifact_bytes(1_000))).await;
    let dir = tempfile::tempdir()?;
    let installer = Installer::Command("sh -c 'test -s {file} && exit 4'".into());
    let mut agent = Agent::new(config(&mock, &dir.path().join("state"), installer)).await?;
    agent.run_once().await?;
    assert_eq!(mock.statuses(DEVICE).last(), Some(&(E::Closed, F::Failure)));
    assert!(mock.details(DEVICE).iter().any(|d| d.contains("status 4")));
    assert_eq!(agent.installed().get("host").map(String::as_str), Some("1.0.0"));
    Ok(())
}

#[tokio::test]
async fn a_cancellation_is_accepted() -> anyhow::Result<()> {
    let mut options = MockOptions::new(artifact_bytes(1_000));
    options.cancel = true;
    let mock = common::start(options).await;
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("installed.img");
    let mut agent = Agent::new(config(&mock, &dir.path().join("state"), Installer::CopyTo(target.clone()))).await?;
    agent.run_once().await?;
    let log = mock.log();
    let acks: Vec<_> = log
        .cancel_feedback
        .iter()
        .map(|(_, a, f)| (a.as_str(), f.status.execution, f.status.result.finished))
        .collect();
    assert_eq!(acks, [("7", E::Closed, F::Success)]);
    assert!(log.feedback.is_empty() && log.ranges.is_empty());
    assert!(!target.exists());
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_hang() -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let server = format!("http://{}", listener.local_addr()?);
    drop(listener);
    let dir = tempfile::tempdir()?;
    let c = AgentConfig::new(
        server,
        "default",
        DEVICE,
        Auth::GatewayToken("g".into()),
        dir.path(),
        Installer::CopyTo(dir.path().join("x")),
    );
    let mut agent = Agent::new(c).await?;
    let err = agent.run_once().await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    Ok(())
}
