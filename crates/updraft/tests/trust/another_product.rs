//! An image of another product, validly signed in its own repository, is
//! refused by a device of this product (`tuf.wrong_product`, 4004): here an
//! attacker points the device at the other product's repository and root.

use crate::Repo;
use crate::common;
use crate::common::Backend;
use serde_json::json;
use updraft_agent::Agent;

crate::on_both_stores!(an_image_of_another_product_is_refused);

async fn an_image_of_another_product_is_refused(b: Backend) {
    let repo = Repo::new(b).await;
    // Product `door`'s repository, with the same file name and version as a `cam` image would have.
    repo.api.post("/api/v1/products", json!({"key": "door"})).await.expect(201, None);
    repo.upload_to("door", "2.0.0", 5, b"door firmware").await;
    let status = repo.api.post("/api/v1/products/door/trust/keys", json!({})).await.ok().clone();
    let key = updraft_trust::SigningKey::generate();
    let plan = updraft_trust::metadata::RootPlan {
        version: 1,
        expires: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30),
        root: (vec![key.public().clone()], 1),
        targets: (crate::online(&status, "targets", true), 1),
        snapshot: (crate::online(&status, "snapshot", true), 1),
        timestamp: (crate::online(&status, "timestamp", true), 1),
    };
    let door_root = updraft_trust::metadata::to_bytes(
        &updraft_trust::metadata::sign(updraft_trust::metadata::root(&plan).unwrap(), &[&key]).await.unwrap(),
    );
    repo.api
        .raw(reqwest::Method::PUT, "/api/v1/products/door/trust/root", "application/json", door_root.clone())
        .await
        .expect(200, None);

    // The cam device gets a cam job whose file is byte for byte the door image.
    let fw = repo.upload("2.0.0", 5, b"door firmware").await;
    repo.job("up", &fw, json!({})).await;
    let mut config = repo.agent_config(&door_root);
    let trust = config.trust.as_mut().unwrap();
    trust.metadata_url = trust.metadata_url.replace("/cam/", "/door/");
    trust.targets_url = trust.targets_url.replace("/cam/", "/door/");
    let mut agent = Agent::new(config).await.unwrap();
    agent.run_once().await.unwrap();
    let (state, code, details) = repo.outcome("up").await;
    assert_eq!((state.as_str(), code), ("failed", Some(4004)), "{details:?}");
    assert!(details[0].contains("product `door`"), "{details:?}");
    assert_eq!(agent.installed()["host"], "1.0.0");
}
