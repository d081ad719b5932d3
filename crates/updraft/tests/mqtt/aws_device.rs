//! A device that speaks only AWS IoT Jobs' MQTT API gets a job, downloads it
//! over the link in its job document, reports IN_PROGRESS and SUCCEEDED (or
//! REJECTED), and the job shows what it reported; bad requests are rejected
//! with AWS's error codes.

use serde_json::json;
use sha2::Digest;

use crate::common;
use crate::{Broker, Device, Pki, device, execution_state, firmware, image, server, wait_execution};
use common::Backend;

async fn succeeds_and_rejects(backend: Backend) {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let api = server(backend, &pki, &broker).await;
    let fw = firmware(&api).await;
    let cam1 = device(&api, "cam1").await;
    assert_eq!(cam1["thing_name"], "cam1");
    assert!(cam1["ca_certificate_pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    let mut d = Device::connect(&pki, &broker, &cam1).await;

    // Nothing pending yet: get answers empty lists, start-next no execution.
    let (outcome, body) = d.request("get", json!({"clientToken": "t-1"})).await;
    assert_eq!(outcome, "accepted", "{body}");
    assert_eq!(body["clientToken"], "t-1");
    assert_eq!(body["inProgressJobs"], json!([]));
    assert_eq!(body["queuedJobs"], json!([]));
    assert!(body["timestamp"].as_i64().unwrap() < 10_000_000_000, "seconds since the epoch");

    api.post("/api/v1/jobs", json!({"id": "ota-1", "firmware": fw, "devices": ["cam1"]})).await.expect(201, None);
    api.server.tick_scheduler().await;

    // Released: notify lists it, then notify-next carries the execution with its AWS OTA job
    // document. (Adding the queued execution changed nothing the device sees: empty ones may
    // come first.)
    let mut notify = d.next("/jobs/notify").await;
    while notify["jobs"] == json!({}) {
        notify = d.next("/jobs/notify").await;
    }
    assert_eq!(notify["jobs"]["QUEUED"][0]["jobId"], "ota-1", "{notify}");
    let next = d.next("/jobs/notify-next").await;
    let execution = &next["execution"];
    assert_eq!(execution["jobId"], "ota-1", "{next}");
    assert_eq!(execution["status"], "QUEUED");
    assert_eq!(execution["executionNumber"], 1);
    let file = &execution["jobDocument"]["afr_ota"]["files"][0];
    assert_eq!(file["filepath"], "cam.bin");
    assert_eq!(file["filesize"], 3000);
    assert_eq!(file["auth_scheme"], "aws.s3.presigned");

    // The link needs no credentials; a tampered one is refused.
    let url = file["update_data_url"].as_str().unwrap().to_owned();
    let bytes = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), image().as_slice());
    assert_eq!(file["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    let ranged = reqwest::Client::new().get(&url).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &image()[10..20]);
    let forged = url.replace("signature=", "signature=0");
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 401);

    // start-next starts it; the version moves with each update.
    let (outcome, started) =
        d.request("start-next", json!({"clientToken": "t-2", "statusDetails": {"step": "download"}})).await;
    assert_eq!(outcome, "accepted", "{started}");
    assert_eq!(started["execution"]["status"], "IN_PROGRESS");
    assert_eq!(started["execution"]["statusDetails"]["step"], "download");
    assert_eq!(started["execution"]["thingName"], "cam1");
    let version = started["execution"]["versionNumber"].as_i64().unwrap();
    assert_eq!(execution_state(&api, "ota-1", "cam1").await, "downloading");

    // AWS's error codes.
    let (outcome, e) = d.request("ota-1/update", json!({"status": "QUEUED", "clientToken": "t-3"})).await;
    assert_eq!(
        (outcome.as_str(), &e["code"], &e["clientToken"]),
        ("rejected", &json!("InvalidRequest"), &json!("t-3"))
    );
    let (outcome, e) =
        d.request("ota-1/update", json!({"status": "IN_PROGRESS", "expectedVersion": version + 5})).await;
    assert_eq!((outcome.as_str(), &e["code"]), ("rejected", &json!("VersionMismatch")), "{e}");
    assert_eq!(e["executionState"]["status"], "IN_PROGRESS");
    let (outcome, e) = d.request("nope/update", json!({"status": "IN_PROGRESS"})).await;
    assert_eq!((outcome.as_str(), &e["code"]), ("rejected", &json!("ResourceNotFound")));
    let topic = format!("$aws/things/{}/jobs/ota-1/update", d.thing);
    d.client.publish(topic, rumqttc::QoS::AtLeastOnce, false, "{not json").await.unwrap();
    assert_eq!(d.next("/jobs/ota-1/update/rejected").await["code"], "InvalidJson");
    let (_, e) = d.request("ota-1/update", json!({"status": "IN_PROGRESS", "statusDetails": {"n": 1}})).await;
    assert_eq!(e["code"], "InvalidRequest");

    // IN_PROGRESS with the version it has (a numeric string, as the embedded-C library sends it).
    let (outcome, body) = d
        .request(
            "ota-1/update",
            json!({"status": "IN_PROGRESS", "expectedVersion": version.to_string(), "statusDetails": {"receive": "3/3"},
                   "includeJobExecutionState": true}),
        )
        .await;
    assert_eq!(outcome, "accepted", "{body}");
    assert_eq!(body["executionState"]["status"], "IN_PROGRESS");
    assert_eq!(body["executionState"]["statusDetails"]["receive"], "3/3");
    assert!(body["executionState"]["versionNumber"].as_i64().unwrap() > version);

    // $next/get describes it with the statusDetails it keeps.
    let (_, next) = d.request("$next/get", json!({"includeJobDocument": false})).await;
    assert_eq!(next["execution"]["statusDetails"]["receive"], "3/3", "{next}");
    assert!(next["execution"].get("jobDocument").is_none());

    let (outcome, body) = d
        .request("ota-1/update", json!({"status": "SUCCEEDED", "statusDetails": {"reason": "accepted  v2.0.0"}}))
        .await;
    assert_eq!(outcome, "accepted", "{body}");
    wait_execution(&api, "ota-1", "cam1", "succeeded").await;
    let job = api.get("/api/v1/jobs/ota-1").await.ok().clone();
    assert_eq!(job["state"], "completed", "{job}");
    let dev = api.get("/api/v1/devices/cam1").await.ok().clone();
    assert!(dev["firmware"].to_string().contains("2.0.0"), "the device runs what it installed: {dev}");
    // Nothing pending any more: notify-next without an execution.
    let mut empty = d.next("/jobs/notify-next").await;
    while empty.get("execution").is_some() {
        empty = d.next("/jobs/notify-next").await;
    }
    // A terminal execution is final.
    let (outcome, e) = d.request("ota-1/update", json!({"status": "IN_PROGRESS"})).await;
    assert_eq!((outcome.as_str(), &e["code"]), ("rejected", &json!("InvalidStateTransition")), "{e}");
    assert_eq!(e["executionState"]["status"], "SUCCEEDED");

    // REJECTED: the device refuses a job.
    let fw3 = common::fleet::upload(&api, "cam", "3.0.0", false).await;
    api.post("/api/v1/jobs", json!({"id": "ota-2", "firmware": fw3, "devices": ["cam1"]})).await.expect(201, None);
    api.server.tick_scheduler().await;
    let mut next = d.next("/jobs/notify-next").await;
    while next["execution"]["jobId"] != "ota-2" {
        next = d.next("/jobs/notify-next").await;
    }
    let (outcome, body) =
        d.request("ota-2/update", json!({"status": "REJECTED", "statusDetails": {"reason": "user said no"}})).await;
    assert_eq!(outcome, "accepted", "{body}");
    wait_execution(&api, "ota-2", "cam1", "rejected").await;
}

/// `stepTimeoutInMinutes` starts a step timer: the execution times out when it runs out, unless
/// the device starts it again with its next IN_PROGRESS.
async fn step_timers_time_out(backend: Backend) {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let (api, clock) = crate::server_clocked(backend, &pki, &broker).await;
    let fw = firmware(&api).await;
    let cam = device(&api, "cam7").await;
    let mut d = Device::connect(&pki, &broker, &cam).await;
    api.post("/api/v1/jobs", json!({"id": "step-1", "firmware": fw, "devices": ["cam7"]})).await.expect(201, None);
    api.server.tick_scheduler().await;
    let (_, e) = d.request("start-next", json!({"stepTimeoutInMinutes": 0})).await;
    assert_eq!(e["code"], "InvalidRequest", "{e}");
    let (_, e) = d.request("start-next", json!({"stepTimeoutInMinutes": "1"})).await;
    assert_eq!(e["code"], "InvalidRequest", "{e}");
    let (outcome, started) = d.request("start-next", json!({"stepTimeoutInMinutes": 1})).await;
    assert_eq!((outcome.as_str(), &started["execution"]["status"]), ("accepted", &json!("IN_PROGRESS")), "{started}");

    clock.advance(jiff::SignedDuration::from_secs(30));
    api.server.tick_scheduler().await;
    assert_eq!(execution_state(&api, "step-1", "cam7").await, "downloading");
    // Started again for two minutes: the first deadline no longer counts.
    let (outcome, _) = d.request("step-1/update", json!({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 2})).await;
    assert_eq!(outcome, "accepted");
    clock.advance(jiff::SignedDuration::from_secs(90));
    api.server.tick_scheduler().await;
    assert_eq!(execution_state(&api, "step-1", "cam7").await, "downloading");
    clock.advance(jiff::SignedDuration::from_secs(31));
    api.server.tick_scheduler().await;
    assert_eq!(execution_state(&api, "step-1", "cam7").await, "timed_out");
    let (outcome, e) = d.request("step-1/update", json!({"status": "SUCCEEDED"})).await;
    assert_eq!((outcome.as_str(), &e["code"]), ("rejected", &json!("InvalidStateTransition")), "{e}");
    assert_eq!(e["executionState"]["status"], "TIMED_OUT");
}

crate::on_both_stores!(succeeds_and_rejects, step_timers_time_out);
