//! Downgrades: a job whose image is older than what a device runs skips the
//! device unless the job sets `allow_downgrade`; and even then the agent
//! never installs an image of a lower security version than it runs
//! (`tuf.downgrade`, 4005).

use crate::Repo;
use crate::common;
use crate::common::Backend;
use serde_json::json;

crate::on_both_stores!(downgrades_are_skipped_and_lower_security_versions_refused);

async fn downgrades_are_skipped_and_lower_security_versions_refused(b: Backend) {
    let repo = Repo::new(b).await;
    let old = repo.upload("0.9.0", 0, b"version zero nine").await;
    let new = repo.upload("2.0.0", 3, b"version two").await;
    repo.job("up", &new, json!({})).await;
    let agent = repo.run_agent().await;
    assert_eq!(repo.outcome("up").await.0, "succeeded");
    assert_eq!((agent.installed()["host"].as_str(), agent.state().security_version), ("2.0.0", 3));

    // The server does not offer an older image to a device running a newer one.
    repo.job("back", &old, json!({})).await;
    let job = repo.api.get("/api/v1/jobs/back").await.ok().clone();
    assert_eq!(job["counts"]["skipped"], 1, "{job}");
    assert_eq!(job["allow_downgrade"], false, "{job}");

    // Allowed by the job, it is offered; the agent refuses its lower security version.
    repo.job("back-anyway", &old, json!({"allow_downgrade": true})).await;
    let agent = repo.run_agent().await;
    let (state, code, details) = repo.outcome("back-anyway").await;
    assert_eq!((state.as_str(), code), ("failed", Some(4005)), "{details:?}");
    assert!(details[0].contains("security version 0, lower than the installed 3"), "{details:?}");
    assert_eq!(agent.installed()["host"], "2.0.0");
    assert_eq!(repo.device_version().await, "2.0.0");
}
