//! Root rotation: root version 2 adds a new root key and drops the first
//! (signed by both), version 3 is signed by the new key alone. An agent
//! pinned to version 1 walks 1 → 2 → 3 and installs. A root signed only by
//! the dropped key, or skipping a version, or not signed by the current root,
//! is refused by the server (`trust_root_refused`).

use crate::Repo;
use crate::common;
use crate::common::Backend;
use serde_json::json;
use updraft_trust::SigningKey;

crate::on_both_stores!(an_old_client_follows_the_root_through_rotations);

async fn an_old_client_follows_the_root_through_rotations(b: Backend) {
    let repo = Repo::new(b).await;
    let old = &repo.root_keys[0];
    let new = SigningKey::generate();
    let v2 = repo.next_root(&repo.root, (vec![new.public().clone()], 1), &[old, &new]).await;

    // Signed by the new key only: the current root's keys did not agree.
    let unsigned_by_current = repo.next_root(&repo.root, (vec![new.public().clone()], 1), &[&new]).await;
    let refused = repo.put_root(&unsigned_by_current).await;
    refused.expect(422, Some("trust_root_refused"));
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("current root"), "{:?}", refused.body);
    repo.put_root(&v2).await.expect(200, None);

    // Version 3 signed by the dropped key: refused; by the new one: taken.
    let v3_by_old = repo.next_root(&v2, (vec![new.public().clone()], 1), &[old]).await;
    repo.put_root(&v3_by_old).await.expect(422, Some("trust_root_refused"));
    let v3 = repo.next_root(&v2, (vec![new.public().clone()], 1), &[&new]).await;
    // Skipping a version is refused too.
    let v4 = repo.next_root(&v3, (vec![new.public().clone()], 1), &[&new]).await;
    repo.put_root(&v4).await.expect(422, Some("trust_root_refused"));
    repo.put_root(&v3).await.expect(200, None);
    repo.put_root(b"{\"not\": \"a root\"}").await.expect(422, Some("trust_root_refused"));
    assert_eq!(repo.api.get("/api/v1/products/cam/trust").await.ok()["root"]["version"], 3);

    let fw = repo.upload("2.0.0", 1, b"version two").await;
    repo.job("up", &fw, json!({})).await;
    let agent = repo.run_agent().await;
    let (state, _, details) = repo.outcome("up").await;
    assert_eq!(state, "succeeded", "{details:?}");
    assert_eq!(agent.installed()["host"], "2.0.0");
    let cached: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.state_dir().join("tuf/root.json")).unwrap()).unwrap();
    assert_eq!(cached["signed"]["version"], 3, "the agent now trusts root 3");
}
