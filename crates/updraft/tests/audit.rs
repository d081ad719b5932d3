//! The audit log over the management API, on SQLite and on PostgreSQL: it
//! keeps who changed what (keys, users, the scheduler on jobs), not what
//! devices report; reads are an administrator's, one tenant's, filtered and
//! paged; nothing writes or deletes it.

mod common;

use common::{Api, Backend, device_with_work};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(the_audit_log_says_who_changed_what);

fn kinds(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

async fn the_audit_log_says_who_changed_what(b: Backend) {
    let api = Api::start(b).await;
    let (_, device_token) = device_with_work(&api).await;
    let operator = api.key("operator").await;
    api.as_key(&operator).post("/api/v1/jobs/rollout/pause", json!({})).await.ok();
    // A device's report is not a management change.
    let base = format!("{}/default/controller/v1/dev-0", api.server.url(""));
    let http = reqwest::Client::new();
    let poll: Value = http
        .get(&base)
        .header("authorization", format!("TargetToken {device_token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(poll["config"].is_object(), "{poll}");

    let page = api.get("/api/v1/audit").await.ok().clone();
    let all = kinds(&page);
    for kind in ["product.created", "firmware.created", "devices.created", "job.created", "job.changed", "key.created"]
    {
        assert!(all.contains(&kind.to_owned()), "{kind} in {all:?}");
    }
    for e in page["items"].as_array().unwrap() {
        let actor = e["actor"].as_str().unwrap_or("");
        assert!(actor.starts_with("key:") || e["kind"] == "job.changed", "only keys' changes, and jobs' moves: {e}");
    }
    let newest = &page["items"][0];
    assert_eq!(newest["kind"], "job.changed", "newest first: {page}");
    assert_eq!(newest["subject"], "rollout");
    assert!(newest["actor"].as_str().unwrap().starts_with("key:key_"), "the operator's key: {newest}");
    assert_eq!(newest["change"]["job"], "rollout");
    assert_eq!(newest["change"]["state"], json!({"from": "running", "to": "paused"}), "before and after: {newest}");

    let actor = newest["actor"].as_str().unwrap().to_owned();
    let by_actor = api.get(&format!("/api/v1/audit?actor={actor}")).await.ok().clone();
    assert_eq!(kinds(&by_actor), ["job.changed"]);
    let keys = api.get("/api/v1/audit?kind=key.").await.ok().clone();
    assert_eq!(kinds(&keys), ["key.created"]);
    let one = api.get("/api/v1/audit?limit=1&offset=1").await.ok().clone();
    assert_eq!(
        (one["items"].as_array().unwrap().len(), one["limit"].as_u64(), one["offset"].as_u64()),
        (1, Some(1), Some(1))
    );
    let future = api.get("/api/v1/audit?since=2100-01-01T00:00:00Z").await.ok().clone();
    assert!(future["items"].as_array().unwrap().is_empty());
    api.get("/api/v1/audit?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z")
        .await
        .expect(400, Some("validation_failed"));
    api.get("/api/v1/audit?limit=0").await.expect(400, Some("validation_failed"));
    api.get("/api/v1/audit?colour=blue").await.expect(400, None);

    // An administrator's to read; another tenant's log is its own.
    api.as_key(&operator).get("/api/v1/audit").await.expect(403, Some("forbidden"));
    let globex = api.post("/api/v1/tenants", json!({"name": "globex"})).await.ok().clone();
    let globex_key = globex["token"].as_str().unwrap().to_owned();
    let theirs = api.as_key(&globex_key).get("/api/v1/audit").await.ok().clone();
    assert!(
        theirs["items"].as_array().unwrap().iter().all(|e| e["subject"] != "rollout"),
        "no other tenant's entries: {theirs}"
    );
    // Nothing writes or deletes it.
    for method in [Method::POST, Method::DELETE, Method::PUT, Method::PATCH] {
        let r = api.call(method.clone(), "/api/v1/audit", Some(json!({}))).await;
        assert_eq!(r.status.as_u16(), 405, "{method}");
    }
    assert_eq!(api.get("/api/v1/audit").await.ok()["items"], page["items"], "unchanged");

    // A key's change keeps what it was and what it became.
    let id = api.get("/api/v1/keys").await.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "operator")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.patch(&format!("/api/v1/keys/{id}"), json!({"role": "viewer"})).await.expect(200, None);
    let changed = api.get("/api/v1/audit?kind=key.changed").await.ok()["items"][0].clone();
    assert_eq!(
        (changed["change"]["before"]["role"].as_str(), changed["change"]["after"]["role"].as_str()),
        (Some("operator"), Some("viewer")),
        "{changed}"
    );
}
