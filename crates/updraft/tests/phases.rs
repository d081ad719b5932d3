//! Phased rollouts, force-cancel, retrying a finished job's failures, and why
//! executions wait: over real HTTP and the device API, on SQLite and on
//! PostgreSQL, with a clock the test moves and the scheduler stepped by hand.

mod common;

use common::Backend;
use common::fleet::{Fleet, fleet};
use serde_json::{Value, json};

on_both_stores!(
    a_manual_gate_waits_for_an_operator,
    a_success_gate_needs_its_minimum_and_its_rate,
    a_wait_gate_soaks_after_the_phase_completes,
    an_error_threshold_pauses_the_job,
    a_continuous_jobs_late_joiners_fall_into_the_open_phase,
    force_cancel_frees_a_device_that_never_answers,
    retry_failed_runs_only_the_failures_again,
    phases_are_validated,
    consent_is_asked_once_the_phase_opens,
);

/// The CLI creates a phased rollout with `--phase` and says why executions wait.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_creates_a_phased_rollout_and_says_why_devices_wait() {
    let f = fleet(Backend::Sqlite, |_| {}).await;
    devices(&f, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args(args)
            .env("UPDRAFT_SERVER", format!("http://{}", f.api.server.addr))
            .env("UPDRAFT_TOKEN", common::ADMIN_TOKEN)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let created = run(&[
        "job",
        "create",
        "--json",
        "--id",
        "p",
        "--firmware",
        "thermo@2.0.0",
        "--all",
        "--phase",
        "1,manual,name=canary",
        "--phase",
        "50%,success=90,min=1,wait=10m,errors=20",
        "--phase",
        "rest",
    ]);
    let job: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(
        job["phases"][0],
        json!({"name": "canary", "percent": null, "devices": 1,
        "gate": {"manual": true, "success_percent": null, "min_finished": null, "wait_seconds": null},
        "error_threshold": null})
    );
    assert_eq!(job["phases"][1]["gate"]["wait_seconds"], 600);
    assert_eq!(job["phases"][1]["error_threshold"]["percent"], 20.0);
    f.tick().await;
    let listed = run(&["job", "executions", "p"]);
    assert!(listed.contains("WAITING FOR") && listed.contains("PHASE"), "{listed}");
    assert!(listed.contains("its gate waits for an operator's approval"), "{listed}");
}

async fn devices(f: &Fleet, n: usize) {
    for i in 0..n {
        f.device(&format!("d-{i}"), "thermo", "1.0.0", json!({})).await;
    }
}

/// The job's executions, by device: (state, phase, waiting reason).
async fn executions(f: &Fleet, job: &str) -> Vec<(String, String, u64, String)> {
    let page = f.api.get(&format!("/api/v1/jobs/{job}/executions?limit=1000&sort=device")).await;
    page.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["device"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
                e["phase"].as_u64().unwrap(),
                e["waiting"]["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn in_state(f: &Fleet, job: &str, state: &str) -> Vec<String> {
    executions(f, job).await.into_iter().filter(|e| e.1 == state).map(|e| e.0).collect()
}

async fn phase(f: &Fleet, job: &str) -> Value {
    f.api.get(&format!("/api/v1/jobs/{job}")).await.ok()["progress"]["phase"].clone()
}

fn reasons(phase: &Value) -> Vec<&str> {
    phase["waiting_for"].as_array().unwrap().iter().map(|w| w["reason"].as_str().unwrap()).collect()
}

async fn finish(f: &Fleet, job: &str, devices: &[String], result: &str) {
    for d in devices {
        assert_eq!(f.report(job, d, "closed", result).await, 200, "{d} reports");
    }
}

async fn a_manual_gate_waits_for_an_operator(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 6).await;
    let j = f
        .job(json!({"id": "m", "all": true, "phases": [
            {"name": "canary", "devices": 2, "gate": {"manual": true}},
            {"name": "everyone"}
        ]}))
        .await;
    assert_eq!(j["phases"][0]["gate"]["manual"], true, "shown back");
    let p = &j["progress"]["phase"];
    assert_eq!((p["index"].as_u64(), p["name"].as_str(), p["of"].as_u64()), (Some(0), Some("canary"), Some(2)));
    f.tick().await;
    let canary = in_state(&f, "m", "notified").await;
    assert_eq!(canary.len(), 2, "only the first phase is released");
    let all = executions(&f, "m").await;
    for (d, state, phase, waiting) in &all {
        if canary.contains(d) {
            assert_eq!((phase, waiting.as_str()), (&0, ""), "{d}");
        } else {
            assert_eq!((state.as_str(), phase, waiting.as_str()), ("queued", &1, "phase_gate"), "{d}");
        }
    }
    finish(&f, "m", &canary, "success").await;
    f.tick().await;
    let p = phase(&f, "m").await;
    assert_eq!((p["index"].as_u64(), reasons(&p)), (Some(0), vec!["approval"]), "the gate waits: {p}");
    assert_eq!(p["counts"]["succeeded"], 2);
    assert_eq!(in_state(&f, "m", "queued").await.len(), 4);

    let approved = f.api.post("/api/v1/jobs/m/phases/next", json!({})).await.ok().clone();
    assert_eq!(approved["progress"]["phase"]["index"], 1, "approval opens the next phase: {approved}");
    assert_eq!(approved["progress"]["phase"]["name"], "everyone");
    f.tick().await;
    assert_eq!(in_state(&f, "m", "notified").await.len(), 4, "the second phase is released");
    f.api.post("/api/v1/jobs/m/phases/next", json!({})).await.expect(409, Some("no_next_phase"));
    f.job(json!({"id": "flat", "all": true})).await;
    f.api.post("/api/v1/jobs/flat/phases/next", json!({})).await.expect(409, Some("no_next_phase"));
    f.api.post("/api/v1/jobs/ghost/phases/next", json!({})).await.expect(404, Some("not_found"));
}

async fn a_success_gate_needs_its_minimum_and_its_rate(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 10).await;
    f.job(json!({"id": "s", "all": true, "phases": [
        {"percent": 50, "gate": {"success_percent": 60, "min_finished": 3}},
        {}
    ]}))
    .await;
    f.tick().await;
    let first = in_state(&f, "s", "notified").await;
    assert_eq!(first.len(), 5, "half of ten");
    finish(&f, "s", &first[..1], "success").await;
    finish(&f, "s", &first[1..3], "failure").await;
    f.tick().await;
    let p = phase(&f, "s").await;
    assert_eq!(reasons(&p), vec!["success_rate"], "3 finished, 1 of 3 succeeded: {p}");
    assert_eq!(p["waiting_for"][0]["need"], 60.0);
    finish(&f, "s", &first[3..4], "success").await;
    f.tick().await;
    assert_eq!(phase(&f, "s").await["index"], 0, "2 of 4 is 50 %");
    finish(&f, "s", &first[4..5], "success").await;
    f.tick().await;
    assert_eq!(phase(&f, "s").await["index"], 1, "3 of 5 is 60 %: the gate opened");
    f.tick().await;
    assert_eq!(in_state(&f, "s", "notified").await.len(), 5, "the rest is released");

    // The minimum: one success is 100 %, but 3 must finish.
    f.job(json!({"id": "min", "all": true, "phases": [
        {"devices": 4, "gate": {"success_percent": 50, "min_finished": 3}},
        {}
    ]}))
    .await;
    let p = phase(&f, "min").await;
    assert_eq!(reasons(&p), vec!["finished", "success_rate"], "{p}");
    assert_eq!((p["waiting_for"][0]["have"].as_f64(), p["waiting_for"][0]["need"].as_f64()), (Some(0.0), Some(3.0)));
}

async fn a_wait_gate_soaks_after_the_phase_completes(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 3).await;
    f.job(json!({"id": "w", "all": true, "phases": [{"devices": 1, "gate": {"wait_seconds": 600}}, {}]})).await;
    f.tick().await;
    let first = in_state(&f, "w", "notified").await;
    assert_eq!(first.len(), 1);
    assert_eq!(reasons(&phase(&f, "w").await), vec!["completion"]);
    finish(&f, "w", &first, "success").await;
    f.tick().await;
    let p = phase(&f, "w").await;
    assert_eq!(reasons(&p), vec!["soak"], "{p}");
    assert!(p["waiting_for"][0]["until"].is_string());
    f.advance(599);
    f.tick().await;
    assert_eq!(phase(&f, "w").await["index"], 0, "the soak time is not over");
    f.advance(1);
    f.tick().await;
    assert_eq!(phase(&f, "w").await["index"], 1);
    f.tick().await;
    assert_eq!(in_state(&f, "w", "notified").await.len(), 2);
}

async fn an_error_threshold_pauses_the_job(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 8).await;
    f.job(json!({"id": "e", "all": true, "phases": [
        {"devices": 4, "gate": {"manual": true}, "error_threshold": {"percent": 50, "min_finished": 2}},
        {}
    ]}))
    .await;
    f.tick().await;
    let first = in_state(&f, "e", "notified").await;
    finish(&f, "e", &first[..1], "failure").await;
    f.tick().await;
    assert_eq!(f.job_state("e").await, "running", "one finished is under the minimum");
    finish(&f, "e", &first[1..2], "failure").await;
    f.tick().await;
    let job = f.api.get("/api/v1/jobs/e").await.ok().clone();
    assert_eq!((job["state"].as_str(), job["held"].as_bool()), (Some("paused"), Some(true)), "paused, not aborted");
    assert_eq!(job["progress"]["phase"]["state"]["error_paused"], json!([0]));
    let waiting: Vec<String> = executions(&f, "e").await.into_iter().filter(|e| e.1 == "queued").map(|e| e.3).collect();
    assert!(waiting.iter().all(|w| w == "paused"), "{waiting:?}");
    // A person looked: resuming goes on, and the threshold does not pause it again.
    f.api.post("/api/v1/jobs/e/resume", json!({})).await.ok();
    finish(&f, "e", &first[2..3], "failure").await;
    f.tick().await;
    assert_eq!(f.job_state("e").await, "running");
}

async fn a_continuous_jobs_late_joiners_fall_into_the_open_phase(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 2).await;
    f.job(json!({"id": "c", "all": true, "recurrence": "continuous", "phases": [
        {"devices": 1, "gate": {"manual": true}},
        {}
    ]}))
    .await;
    let phases: Vec<u64> = executions(&f, "c").await.iter().map(|e| e.2).collect();
    assert_eq!(phases.iter().filter(|p| **p == 0).count(), 1, "{phases:?}");
    f.device("late-0", "thermo", "1.0.0", json!({})).await;
    let late = executions(&f, "c").await.into_iter().find(|e| e.0 == "late-0").unwrap();
    assert_eq!(late.2, 0, "joins the open phase, not the one its hash would give");
    f.tick().await;
    assert!(in_state(&f, "c", "notified").await.contains(&"late-0".to_owned()), "released with phase 0");
    f.api.post("/api/v1/jobs/c/phases/next", json!({})).await.ok();
    f.device("late-1", "thermo", "1.0.0", json!({})).await;
    let late = executions(&f, "c").await.into_iter().find(|e| e.0 == "late-1").unwrap();
    assert_eq!(late.2, 1, "joins phase 1 once it is open");
}

async fn force_cancel_frees_a_device_that_never_answers(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 1).await;
    f.job(json!({"id": "first", "devices": ["d-0"]})).await;
    f.tick().await;
    assert_eq!(in_state(&f, "first", "notified").await, ["d-0"], "the device was told, and went offline");
    f.job(json!({"id": "second", "devices": ["d-0"]})).await;
    f.tick().await;
    let e = executions(&f, "second").await;
    assert_eq!((e[0].1.as_str(), e[0].3.as_str()), ("queued", "device_busy"));
    let listed = f.api.get("/api/v1/jobs/second/executions").await.ok().clone();
    let waiting = &listed["items"][0]["waiting"];
    assert_eq!(waiting["job"], "first", "names the job it waits for: {waiting}");
    assert!(waiting["message"].as_str().unwrap().contains("first"));
    let mine = f.api.get("/api/v1/devices/d-0/executions").await.ok().clone();
    let second = mine["items"].as_array().unwrap().iter().find(|e| e["job"] == "second").unwrap();
    assert_eq!(second["waiting"]["reason"], "device_busy", "a device's executions say why they wait too");

    // A plain cancel asks the device, which never answers: the slot stays taken.
    f.api.post("/api/v1/jobs/first/cancel", json!({})).await.ok();
    f.tick().await;
    assert_eq!(in_state(&f, "second", "queued").await, ["d-0"]);
    // By force: ended now, and the next job starts.
    let forced = f.api.post("/api/v1/jobs/first/cancel?force=true", json!({})).await.ok().clone();
    assert_eq!(forced["state"], "canceled");
    assert_eq!(in_state(&f, "first", "canceled").await, ["d-0"]);
    f.tick().await;
    assert_eq!(in_state(&f, "second", "notified").await, ["d-0"]);
    assert!(f.offered("d-0").await.is_some(), "the device is offered the second job on its next poll");
    // The body form is read too.
    f.job(json!({"id": "third", "devices": ["d-0"]})).await;
    f.api.post("/api/v1/jobs/third/cancel", json!({"force": true})).await.ok();
    assert_eq!(f.job_state("third").await, "canceled");
}

async fn retry_failed_runs_only_the_failures_again(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 3).await;
    f.job(json!({"id": "r", "all": true})).await;
    f.tick().await;
    f.api.post("/api/v1/jobs/r/retry-failed", json!({})).await.expect(409, Some("job_state"));
    let all = in_state(&f, "r", "notified").await;
    finish(&f, "r", &all[..1], "failure").await;
    finish(&f, "r", &all[1..], "success").await;
    f.tick().await;
    assert_eq!(f.job_state("r").await, "completed");
    let retried = f.api.post("/api/v1/jobs/r/retry-failed", json!({})).await.ok().clone();
    assert_eq!(retried["state"], "running");
    let e = executions(&f, "r").await;
    let queued: Vec<&str> = e.iter().filter(|e| e.1 == "queued").map(|e| e.0.as_str()).collect();
    assert_eq!(queued, [all[0].as_str()], "only the failure runs again");
    assert_eq!(f.executions("r").await[&all[0]].1, 2, "as a new attempt");
    f.tick().await;
    finish(&f, "r", &all[..1], "success").await;
    f.tick().await;
    assert_eq!(f.job_state("r").await, "completed");
    f.api.post("/api/v1/jobs/r/retry-failed", json!({})).await.expect(409, Some("job_state"));
}

async fn phases_are_validated(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 1).await;
    let bad = f
        .api
        .post(
            "/api/v1/jobs",
            json!({"firmware": f.firmware, "all": true, "phases": [
                {"percent": 50},
                {"percent": 40, "devices": 3, "gate": {"success_percent": 0}},
                {"percent": 30},
                {"percent": 80, "gate": {"manual": true}}
            ]}),
        )
        .await;
    let body = bad.expect(400, Some("validation_failed")).clone();
    let fields: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        ["phases.1.percent", "phases.1.gate.success_percent", "phases.2.percent", "phases.3.percent", "phases.3.gate"]
    );
    let wrong_type = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, "phases": {}})).await;
    wrong_type.expect(400, None);
}

/// What the device's poll links to (`deploymentBase`, `confirmationBase`, …).
async fn links(f: &Fleet, device: &str) -> Vec<String> {
    let url = f.api.server.url(&format!("/default/controller/v1/{device}"));
    let r =
        f.api.http.get(url).header("authorization", format!("TargetToken {}", f.token(device))).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    v["_links"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

async fn consent_is_asked_once_the_phase_opens(b: Backend) {
    let f = fleet(b, |_| {}).await;
    devices(&f, 2).await;
    f.job(json!({"id": "k", "all": true, "consent_required": true, "phases": [
        {"devices": 1, "gate": {"manual": true}},
        {}
    ]}))
    .await;
    let e = executions(&f, "k").await;
    let first = e.iter().find(|e| e.2 == 0).unwrap().0.clone();
    let second = e.iter().find(|e| e.2 == 1).unwrap().0.clone();
    assert_eq!(e.iter().find(|e| e.0 == first).unwrap().3, "consent");
    assert_eq!(e.iter().find(|e| e.0 == second).unwrap().3, "phase_gate", "{e:?}");
    assert!(links(&f, &first).await.contains(&"confirmationBase".to_owned()));
    assert!(!links(&f, &second).await.contains(&"confirmationBase".to_owned()), "not asked before its phase");
    f.api.post("/api/v1/jobs/k/phases/next", json!({})).await.ok();
    assert!(links(&f, &second).await.contains(&"confirmationBase".to_owned()), "asked once it opened");
}
