//! Targets metadata changed in the database (to vouch for a changed file)
//! is no longer signed by the targets key: the agent refuses
//! (`tuf.bad_metadata`, 4001) and keeps its version.

use crate::common;
use crate::common::Backend;
use crate::{Repo, sha256};
use serde_json::json;

crate::on_both_stores!(changed_targets_metadata_is_refused);

async fn changed_targets_metadata_is_refused(b: Backend) {
    let repo = Repo::new(b).await;
    let fw = repo.upload("2.0.0", 1, b"version two").await;
    let targets = repo
        .sql_text("SELECT body FROM trust_metadata WHERE role = 'targets' ORDER BY version DESC LIMIT 1", &[])
        .await;
    assert!(targets.contains(&sha256(b"version two")));
    // Vouch for other bytes without the targets key: the signature no longer holds.
    let forged = targets.replace(&sha256(b"version two"), &sha256(b"something else"));
    repo.sql(
        "UPDATE trust_metadata SET body = $1 WHERE role = 'targets' AND version = (SELECT MAX(version) FROM trust_metadata WHERE role = 'targets')",
        &[&forged],
    )
    .await;
    repo.job("up", &fw, json!({})).await;
    let agent = repo.run_agent().await;
    let (state, code, details) = repo.outcome("up").await;
    assert_eq!((state.as_str(), code), ("failed", Some(4001)), "{details:?}");
    assert_eq!(agent.installed()["host"], "1.0.0");
    assert_eq!(repo.installed().await, None);
}
