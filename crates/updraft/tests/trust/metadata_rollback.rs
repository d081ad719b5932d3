//! Rollback: once the agent trusted a timestamp version, an older one (a
//! properly signed but stale repository, replayed to hide an update) is
//! refused (`tuf.rollback`, 4007).

use crate::Repo;
use crate::common;
use crate::common::Backend;
use serde_json::json;

crate::on_both_stores!(older_metadata_than_the_device_trusted_is_refused);

async fn older_metadata_than_the_device_trusted_is_refused(b: Backend) {
    let repo = Repo::new(b).await;
    let stale = repo
        .sql_text("SELECT body FROM trust_metadata WHERE role = 'timestamp' ORDER BY version DESC LIMIT 1", &[])
        .await;
    let fw = repo.upload("2.0.0", 1, b"version two").await;
    repo.job("up", &fw, json!({})).await;
    let agent = repo.run_agent().await;
    assert_eq!(repo.outcome("up").await.0, "succeeded");
    assert_eq!(agent.installed()["host"], "2.0.0");

    let fw3 = repo.upload("3.0.0", 1, b"version three").await;
    // The server now serves the stale timestamp as its newest.
    repo.sql(
        "UPDATE trust_metadata SET body = $1 WHERE role = 'timestamp' AND version = (SELECT MAX(version) FROM trust_metadata WHERE role = 'timestamp')",
        &[&stale],
    )
    .await;
    repo.job("next", &fw3, json!({})).await;
    let agent = repo.run_agent().await;
    let (state, code, details) = repo.outcome("next").await;
    assert_eq!((state.as_str(), code), ("failed", Some(4007)), "{details:?}");
    assert_eq!(agent.installed()["host"], "2.0.0");
}
