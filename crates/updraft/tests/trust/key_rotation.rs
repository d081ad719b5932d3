//! Rotating an online key: the server makes a new timestamp key, the operator
//! signs root version 2 listing it (offline), the old key is destroyed. An
//! agent pinned to root 1 follows to root 2 and accepts what the new key
//! signs; metadata signed by the revoked key (an attacker who stole it) is
//! refused (`tuf.bad_metadata`, 4001).

use crate::common;
use crate::common::Backend;
use crate::{KEK, Repo};
use serde_json::json;
use updraft_trust::metadata;

crate::on_both_stores!(a_rotated_key_is_accepted_and_the_revoked_one_refused);

async fn a_rotated_key_is_accepted_and_the_revoked_one_refused(b: Backend) {
    let repo = Repo::new(b).await;
    let before = repo.api.get("/api/v1/products/cam/trust").await.ok().clone();
    let old_id = before["keys"].as_array().unwrap().iter().find(|k| k["role"] == "timestamp").unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The attacker's copy of the old timestamp key (they broke into the database and the configuration).
    let sealed = repo.sql_text("SELECT sealed FROM trust_keys WHERE key_id = $1", &[&old_id]).await;
    let kek = updraft_trust::seal::parse_kek(KEK).unwrap();
    let sealer = updraft_trust::Sealer::new(&kek, &[]).unwrap();
    let stolen =
        updraft_trust::SigningKey::from_pkcs8(&sealer.open(&format!("tuf:default:cam:{old_id}"), &sealed).unwrap())
            .unwrap();
    assert_eq!(stolen.id(), old_id);

    // A viewer may read the repository but not rotate.
    let viewer = repo.api.key("viewer").await;
    repo.api
        .as_key(&viewer)
        .post("/api/v1/products/cam/trust/keys/timestamp/rotate", json!({}))
        .await
        .expect(403, Some("forbidden"));
    repo.api
        .post("/api/v1/products/cam/trust/keys/root/rotate", json!({}))
        .await
        .expect(400, Some("validation_failed"));
    let rotated = repo.api.post("/api/v1/products/cam/trust/keys/timestamp/rotate", json!({})).await.ok().clone();
    let pending: Vec<_> = rotated["keys"].as_array().unwrap().iter().filter(|k| k["in_root"] == false).collect();
    assert_eq!(pending.len(), 1, "{rotated}");
    let new_id = pending[0]["key_id"].as_str().unwrap().to_owned();

    let signers: Vec<_> = repo.root_keys.iter().collect();
    let keys = (repo.root_keys.iter().map(|k| k.public().clone()).collect(), 1);
    let v2 = repo.next_root(&repo.root, keys, &signers).await;
    let status = repo.put_root(&v2).await.ok().clone();
    assert_eq!(status["root"]["version"], 2);
    let ids: Vec<&str> = status["keys"].as_array().unwrap().iter().map(|k| k["key_id"].as_str().unwrap()).collect();
    assert!(ids.contains(&new_id.as_str()) && !ids.contains(&old_id.as_str()), "the old key is destroyed: {ids:?}");
    let timestamp = repo.api.get("/api/v1/products/cam/trust").await.ok()["timestamp"]["version"].as_u64().unwrap();
    let served = repo
        .sql_text("SELECT body FROM trust_metadata WHERE role = 'timestamp' ORDER BY version DESC LIMIT 1", &[])
        .await;
    assert!(served.contains(&new_id) && !served.contains(&old_id), "re-signed with the new key");

    // Pinned to root 1, the agent follows to root 2 and installs.
    let fw = repo.upload("2.0.0", 1, b"version two").await;
    repo.job("up", &fw, json!({})).await;
    let agent = repo.run_agent().await;
    assert_eq!(repo.outcome("up").await.0, "succeeded");
    assert_eq!(agent.installed()["host"], "2.0.0");

    // The stolen key signs a newer timestamp, served as the newest: refused, it is no longer
    // the timestamp role's.
    let fw3 = repo.upload("3.0.0", 1, b"version three").await;
    let status = repo.api.get("/api/v1/products/cam/trust").await.ok().clone();
    let (snapshot_version, current) =
        (status["snapshot"]["version"].as_u64().unwrap(), status["timestamp"]["version"].as_u64().unwrap());
    assert!(current > timestamp);
    let snapshot = repo
        .sql_text("SELECT body FROM trust_metadata WHERE role = 'snapshot' ORDER BY version DESC LIMIT 1", &[])
        .await;
    let forged = metadata::timestamp(
        snapshot.as_bytes(),
        snapshot_version,
        current + 1,
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
        &[&stolen],
    )
    .await
    .unwrap();
    repo.sql(
        "INSERT INTO trust_metadata (tenant, product, role, version, body, expires_at, created_at)
         VALUES ('default', 'cam', 'timestamp', CAST($2 AS BIGINT), $1, 0, 0)",
        &[std::str::from_utf8(&forged).unwrap(), &(current + 1).to_string()],
    )
    .await;
    repo.job("after", &fw3, json!({})).await;
    let agent = repo.run_agent().await;
    let (state, code, details) = repo.outcome("after").await;
    assert_eq!((state.as_str(), code), ("failed", Some(4001)), "{details:?}");
    assert_eq!(agent.installed()["host"], "2.0.0");
}
