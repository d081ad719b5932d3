//! Presence and push: a device that comes online gets its job at once, its
//! record shows it online and offline, and a broker that goes away stops no
//! job: devices on HTTP finish, what was pushed meanwhile arrives when the
//! broker is back.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common;
use crate::{Broker, Device, Pki, device, firmware, server, wait_execution, wait_status};
use common::Backend;

async fn online_devices_get_their_job_at_once(backend: Backend) {
    let pki = Pki::new();
    let mut broker = Broker::start(&pki);
    let api = server(backend, &pki, &broker).await;
    let fw = firmware(&api).await;
    let cam = device(&api, "cam2").await;
    let http = api.post("/api/v1/devices", json!({"id": "web2", "product": "cam"})).await.expect(201, None).clone();
    let token = http["token"].as_str().unwrap().to_owned();

    // Released while the device is offline.
    api.post("/api/v1/jobs", json!({"id": "push-1", "firmware": fw, "devices": ["cam2", "web2"]}))
        .await
        .expect(201, None);
    api.server.tick_scheduler().await;

    // It connects and announces itself: its job comes without asking.
    let mut d = Device::connect(&pki, &broker, &cam).await;
    // updraft may still be connecting to the broker: announce until it is heard.
    let mut waited = None;
    for _ in 0..20 {
        let at = Instant::now();
        d.announce().await;
        let got = tokio::time::timeout(Duration::from_secs(1), d.next("/jobs/notify-next")).await;
        if let Ok(next) = got {
            assert_eq!(next["execution"]["jobId"], "push-1", "{next}");
            waited = Some(at.elapsed());
            break;
        }
    }
    let waited = waited.expect("the pushed job arrived");
    assert!(waited < Duration::from_secs(1), "pushed in {waited:?}");
    let online = wait_status(&api, "cam2", "online").await;
    assert!(online["last_seen_at"].is_string(), "{online}");

    // The device starts; the broker dies mid-job.
    let (outcome, _) = d.request("push-1/update", json!({"status": "IN_PROGRESS"})).await;
    assert_eq!(outcome, "accepted");
    d.vanish();
    broker.stop();

    // The job goes on over HTTP: the other device polls, downloads and reports.
    let ddi = |path: &str| format!("{}/default/controller/v1/web2{path}", api.server.url(""));
    let http = reqwest::Client::new();
    let poll: serde_json::Value = http
        .get(ddi(""))
        .header("authorization", format!("TargetToken {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let href = poll["_links"]["deploymentBase"]["href"].as_str().expect("work offered over HTTP").to_owned();
    let action = href.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let feedback = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let r = http
        .post(ddi(&format!("/deploymentBase/{action}/feedback")))
        .header("authorization", format!("TargetToken {token}"))
        .json(&feedback)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_execution(&api, "push-1", "web2", "succeeded").await;

    // A second job for the device is created while the broker is down (queued: the device is busy).
    let fw3 = common::fleet::upload(&api, "cam", "3.0.0", false).await;
    api.post("/api/v1/jobs", json!({"id": "push-2", "firmware": fw3, "devices": ["cam2"]})).await.expect(201, None);

    // The broker comes back; the device reconnects and finishes its job.
    broker.restart();
    let mut d = Device::connect(&pki, &broker, &cam).await;
    d.announce().await;
    let (_, next) = d.request("$next/get", json!({})).await;
    assert_eq!(next["execution"]["jobId"], "push-1", "{next}");
    assert_eq!(next["execution"]["status"], "IN_PROGRESS");
    let (outcome, _) = d.request("push-1/update", json!({"status": "SUCCEEDED"})).await;
    assert_eq!(outcome, "accepted");
    wait_execution(&api, "push-1", "cam2", "succeeded").await;
    let job = api.get("/api/v1/jobs/push-1").await.ok().clone();
    assert_eq!(job["state"], "completed", "{job}");
    // Done with the first, the device is pushed the second.
    let mut next = d.next("/jobs/notify-next").await;
    while next["execution"]["jobId"] != "push-2" {
        next = d.next("/jobs/notify-next").await;
    }

    // Gone without a word: its last will says it is offline.
    d.vanish();
    let offline = wait_status(&api, "cam2", "offline").await;
    assert!(offline["last_seen_at"].is_string());
}

/// An operator's cancel reaches a connected device at once: its `notify-next` no longer names
/// the job, and the execution is closed as canceled once the device was told.
async fn a_cancel_is_pushed(backend: Backend) {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let api = server(backend, &pki, &broker).await;
    let fw = firmware(&api).await;
    let cam = device(&api, "cam8").await;
    let mut d = Device::connect(&pki, &broker, &cam).await;
    api.post("/api/v1/jobs", json!({"id": "gone-1", "firmware": fw, "devices": ["cam8"]})).await.expect(201, None);
    // Announced until heard (updraft may still be connecting), then its job is pushed.
    let mut next = serde_json::Value::Null;
    for _ in 0..20 {
        d.announce().await;
        if let Ok(n) = tokio::time::timeout(Duration::from_secs(1), d.next("/jobs/notify-next")).await
            && n["execution"]["jobId"] == "gone-1"
        {
            next = n;
            break;
        }
    }
    assert_eq!(next["execution"]["status"], "QUEUED", "{next}");
    api.post("/api/v1/jobs/gone-1/cancel", json!({})).await.ok();
    // (Announcing more than once may have pushed the job again before the cancel.)
    let mut told = d.next("/jobs/notify-next").await;
    while told["execution"]["jobId"] == "gone-1" && told["execution"]["status"] == "QUEUED" {
        told = d.next("/jobs/notify-next").await;
    }
    assert!(told.get("execution").is_none(), "nothing is next once the job is canceled: {told}");
    wait_execution(&api, "gone-1", "cam8", "canceled").await;
    let (outcome, e) = d.request("gone-1/update", json!({"status": "IN_PROGRESS"})).await;
    assert_eq!((outcome.as_str(), &e["code"]), ("rejected", &json!("InvalidStateTransition")), "{e}");
    assert_eq!(e["executionState"]["status"], "CANCELED");
}

crate::on_both_stores!(online_devices_get_their_job_at_once, a_cancel_is_pushed);
