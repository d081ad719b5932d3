//! The jobs engine over real HTTP and the real device API, on SQLite and on
//! PostgreSQL, with a clock the test moves and the scheduler stepped one tick
//! at a time. Each test fails if the field it covers is ignored.

mod common;

use common::Backend;
use common::fleet::{fleet, ids, upload};
use reqwest::Method;
use serde_json::json;

on_both_stores!(
    targeting_selects_exactly_the_scope,
    pace_limits_concurrency_rate_and_ramp,
    abort_ends_a_failing_job,
    schedule_windows_pause_and_resume_by_themselves,
    retries_and_timeouts,
    delivery_consent_and_commands,
    verify_jobs_gate_unverified_firmware,
    continuous_jobs_add_devices_that_start_matching,
    identity_validation_and_listing,
    several_components_are_delivered_together,
);

async fn targeting_selects_exactly_the_scope(b: Backend) {
    let f = fleet(b, |_| {}).await;
    for i in 0..8 {
        f.device(&format!("t-{i}"), "thermo", "1.0.0", json!({})).await;
    }
    f.device("t-8", "thermo", "2.0.0", json!({})).await;
    f.device("t-9", "thermo", "1.5.0", json!({"properties": {"region": "eu"}})).await;
    f.device("l-0", "lamp", "1.0.0", json!({})).await;
    f.api.post("/api/v1/groups", json!({"id": "g1", "name": "G1"})).await.expect(201, None);
    f.api.post("/api/v1/groups/g1/members", json!({"add": ["t-5", "t-6", "l-0"]})).await.ok();

    let all = f.job(json!({"id": "all", "all": true})).await;
    assert_eq!(all["all"], true, "shown back");
    let s = f.states("all").await;
    assert_eq!(ids(&s), ["t-0", "t-1", "t-2", "t-3", "t-4", "t-5", "t-6", "t-7", "t-8", "t-9"], "never the lamp");
    assert_eq!(s["t-8"], "skipped", "already on the target version");
    assert_eq!(s.values().filter(|v| *v == "queued").count(), 9);

    f.job(json!({"id": "named", "devices": ["t-0", "t-1"]})).await;
    assert_eq!(ids(&f.states("named").await), ["t-0", "t-1"]);
    f.job(json!({"id": "grouped", "groups": ["g1"]})).await;
    assert_eq!(ids(&f.states("grouped").await), ["t-5", "t-6"], "group members of the product only");
    f.job(json!({"id": "filtered", "filter": "prop.region == \"eu\""})).await;
    assert_eq!(ids(&f.states("filtered").await), ["t-9"]);
    let json_filter = json!({"properties": [{"name": "region", "op": "==", "value": "eu"}]});
    let by_json = f.job(json!({"id": "json-filter", "filter": json_filter})).await;
    assert_eq!(by_json["filter"], "prop.region == \"eu\"", "shown back in the text form");
    assert_eq!(ids(&f.states("json-filter").await), ["t-9"], "the JSON form works as the text form");
    let bad = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "filter": "prop.x === 1"})).await;
    bad.expect(400, Some("invalid_filter"));
    let saved = f.api.post("/api/v1/filters", json!({"name": "low", "query": "fw.host < \"1.2.0\""})).await;
    let saved_id = saved.expect(201, None)["id"].as_str().unwrap().to_owned();
    f.job(json!({"id": "saved", "filter_id": saved_id})).await;
    assert_eq!(f.states("saved").await.len(), 8, "t-0 … t-7");

    f.job(json!({"id": "from", "all": true, "source_versions": ["1.5.0"]})).await;
    let from = f.states("from").await;
    assert_eq!(ids(&from), ["t-9"], "only from the listed versions");

    f.job(json!({"id": "in-out", "devices": ["t-0", "t-1"], "include": ["t-7"], "exclude": ["t-1"]})).await;
    assert_eq!(ids(&f.states("in-out").await), ["t-0", "t-7"]);
    let bad = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "devices": ["t-0"], "include": ["l-0"]})).await;
    assert_eq!(bad.expect(400, Some("validation_failed"))["error"]["details"][0]["field"], "include.l-0");

    f.job(json!({"id": "gray", "all": true, "gray_percent": 50})).await;
    let chosen: Vec<String> = (0..10)
        .map(|i| format!("t-{i}"))
        .filter(|d| updraft_core::rollout::in_gray_share("gray", d, Some(50)))
        .collect();
    let gray = f.states("gray").await;
    assert_eq!(gray.keys().cloned().collect::<Vec<_>>(), chosen, "a stable hash of job and device");
    assert!(gray.len() < 10, "a share, not everything");

    // Estimate before starting.
    f.job(json!({"id": "later", "all": true, "exclude": ["t-0"], "start": false})).await;
    assert_eq!(f.job_state("later").await, "created");
    assert!(f.states("later").await.is_empty(), "nothing before it starts");
    let est = f.api.get("/api/v1/jobs/later/targets/estimate").await;
    assert_eq!((est.ok()["count"].as_u64(), est.ok()["skipped"].as_u64()), (Some(8), Some(1)));
    f.api.post("/api/v1/jobs/later/start", json!({})).await.ok();
    assert_eq!(f.states("later").await.len(), 9);
    f.api.post("/api/v1/jobs/later/start", json!({})).await.expect(409, Some("job_state"));
}

async fn pace_limits_concurrency_rate_and_ramp(b: Backend) {
    let f = fleet(b, |_| {}).await;
    let named = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i:02}")).collect::<Vec<_>>();
    let (conc, rate, ramp) = (named("c", 5), named("r", 5), named("p", 12));
    for d in conc.iter().chain(&rate).chain(&ramp) {
        f.device(d, "thermo", "1.0.0", json!({})).await;
    }
    let j = f.job(json!({"id": "conc", "devices": conc, "max_concurrency": 3})).await;
    assert_eq!(j["max_concurrency"], 3);
    assert_eq!(f.tick().await.released, 3);
    assert_eq!(f.tick().await.released, 0, "never more than 3 in progress");
    assert_eq!(f.report("conc", "c-00", "closed", "success").await, 200);
    assert_eq!(f.tick().await.released, 1, "a slot freed, one more");
    assert_eq!(f.count("conc", "notified").await, 3);
    f.api.post("/api/v1/jobs/conc/cancel", json!({})).await.ok();

    let j = f.job(json!({"id": "rate", "devices": rate, "max_per_minute": 2})).await;
    assert_eq!(j["max_per_minute"], 2);
    assert_eq!(f.tick().await.released, 1, "2 per minute is one every 30 s, not 2 at once");
    f.advance(29);
    assert_eq!(f.tick().await.released, 0);
    f.advance(1);
    assert_eq!(f.tick().await.released, 1, "30 s later");
    f.advance(10);
    assert_eq!(f.tick().await.released, 0, "2 per minute");
    f.advance(21);
    assert_eq!(f.tick().await.released, 1, "a minute after the first");
    let got = f.api.get("/api/v1/jobs/rate").await;
    assert_eq!(got.ok()["progress"]["current_rate_per_minute"], 2);
    assert!(got.ok()["progress"]["eta"].is_string(), "an ETA while it runs: {}", got.body);
    f.api.post("/api/v1/jobs/rate/cancel", json!({})).await.ok();

    let j = f
        .job(json!({"id": "ramp", "devices": ramp, "max_per_minute": 8,
                    "ramp": {"base_per_minute": 1, "increment_factor": 2.0, "every": 1}}))
        .await;
    assert_eq!(j["ramp"]["base_per_minute"], 1);
    let mut released_at = Vec::new();
    for second in 0..180 {
        for _ in 0..f.tick().await.released {
            released_at.push(second);
        }
        f.advance(1);
    }
    // The rate is base × factor^⌊notified / every⌋, spread over the minute: 1 a minute (0
    // notified), 2 (1: one 30 s later), 4 (2: 15 s), 8 (3 and more: 2^3 is the cap, every 7.5 s).
    assert_eq!(released_at, [0, 30, 45, 52, 60, 67, 75, 82, 90, 97, 105, 112]);
}

async fn abort_ends_a_failing_job(b: Backend) {
    let f = fleet(b, |_| {}).await;
    for i in 0..6 {
        f.device(&format!("d-{i}"), "thermo", "1.0.0", json!({})).await;
    }
    f.job(json!({"id": "ab", "all": true, "max_concurrency": 3,
                 "abort": [{"failure": "failed", "min_executed": 2, "threshold_percent": 50}]}))
        .await;
    f.tick().await;
    assert_eq!(f.report("ab", "d-0", "closed", "failure").await, 200);
    f.tick().await;
    assert_eq!(f.job_state("ab").await, "running", "below the minimum of 2");
    assert_eq!(f.report("ab", "d-1", "closed", "failure").await, 200);
    f.tick().await;
    assert_eq!(f.job_state("ab").await, "aborted");
    let s = f.states("ab").await;
    assert_eq!(s.values().filter(|v| *v == "queued").count(), 0, "queued executions are canceled");
    let in_flight = f.api.get("/api/v1/devices/d-2/executions").await;
    assert_eq!(in_flight.ok()["items"][0]["cancel_requested"], true, "in-flight ones are sent cancelAction");
}

async fn schedule_windows_pause_and_resume_by_themselves(b: Backend) {
    let f = fleet(b, |_| {}).await;
    for i in 0..3 {
        f.device(&format!("d-{i}"), "thermo", "1.0.0", json!({})).await;
    }
    f.set("2026-06-01T12:00:00Z"); // a Monday
    let j = f
        .job(json!({"id": "night", "all": true, "max_per_minute": 1,
                    "schedule": {"timezone": "Europe/Berlin", "days": ["mon", "tue"], "window": {"from": "22:00", "to": "06:00"}}}))
        .await;
    assert_eq!(j["state"], "paused", "outside its window");
    assert_eq!(j["schedule"]["window"]["from"], "22:00");
    assert_eq!(f.tick().await.released, 0);
    f.set("2026-06-01T20:30:00Z"); // 22:30 in Berlin
    let t = f.tick().await;
    assert_eq!((t.moved, t.released), (1, 1), "the window opened: running");
    assert_eq!(f.job_state("night").await, "running");
    f.set("2026-06-02T04:30:00Z"); // 06:30 in Berlin
    f.tick().await;
    assert_eq!(f.job_state("night").await, "paused", "the window closed");
    f.set("2026-06-03T21:00:00Z"); // Wednesday 23:00: not an active day
    f.tick().await;
    assert_eq!(f.job_state("night").await, "paused");
    f.set("2026-06-02T20:30:00Z"); // Tuesday 22:30
    f.tick().await;
    assert_eq!(f.job_state("night").await, "running");

    // An operator's pause holds through windows until resumed.
    f.api.post("/api/v1/jobs/night/pause", json!({})).await.ok();
    f.advance(120);
    f.tick().await;
    assert_eq!(f.job_state("night").await, "paused");
    let resumed = f.api.post("/api/v1/jobs/night/resume", json!({})).await;
    assert_eq!(resumed.ok()["state"], "running");

    // A schedule changed after creation: an end in the past completes it.
    let changed =
        f.api.call(Method::PUT, "/api/v1/jobs/night/schedule", Some(json!({"end": "2026-06-02T20:31:00Z"}))).await;
    assert_eq!(changed.ok()["schedule"]["end"], "2026-06-02T20:31:00Z");
    f.tick().await;
    assert_eq!(f.job_state("night").await, "completed");

    // A start in the future: scheduled until then; seed 001's seconds of day map onto the window.
    let j = f
        .job(json!({"id": "seed", "devices": ["d-0"],
                    "schedule": {"start": "2026-06-10T00:00:00Z", "startSchedule": 3600, "endSchedule": 7200}}))
        .await;
    assert_eq!((j["state"].as_str(), j["schedule"]["window"]["to"].as_str()), (Some("scheduled"), Some("02:00")));
    f.set("2026-06-10T01:30:00Z");
    f.tick().await;
    assert_eq!(f.job_state("seed").await, "running");
    let bad = f
        .api
        .post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, "schedule": {"timezone": "Mars/Base"}}))
        .await;
    bad.expect(400, Some("validation_failed"));
}

async fn retries_and_timeouts(b: Backend) {
    let f = fleet(b, |_| {}).await;
    for i in 0..2 {
        f.device(&format!("d-{i}"), "thermo", "1.0.0", json!({})).await;
    }
    let j = f
        .job(json!({"id": "r", "all": true, "retry": {"count": 1, "interval_minutes": 5}, "timeout_seconds": 300}))
        .await;
    assert_eq!((j["retry"]["count"].as_u64(), j["timeout_seconds"].as_u64()), (Some(1), Some(300)));
    f.tick().await;
    let first_action = f.executions("r").await["d-0"].2;
    assert_eq!(f.report("r", "d-0", "closed", "failure").await, 200);
    f.advance(240);
    f.tick().await;
    assert_eq!(f.states("r").await["d-1"], "notified", "still within its timeout");
    assert_eq!(f.states("r").await["d-0"], "failed", "not retried before the interval");
    f.advance(61);
    let t = f.tick().await;
    assert_eq!((t.timed_out, t.retried), (1, 1), "d-1 timed out; d-0 retried after 5 minutes");
    let e = f.executions("r").await;
    assert_eq!((e["d-0"].0.as_str(), e["d-0"].1), ("notified", 2), "released again, attempt 2");
    assert_ne!(e["d-0"].2, first_action, "a retry is a new action to the device (clients skip actions they finished)");
    assert!(f.offered("d-0").await.unwrap().contains(&format!("/deploymentBase/{}?", e["d-0"].2)));
    let stale = f
        .api
        .http
        .post(f.api.server.url(&format!("/default/controller/v1/d-0/deploymentBase/{first_action}/feedback")))
        .header("authorization", format!("TargetToken {}", f.token("d-0")))
        .json(&json!({"status": {"execution": "closed", "result": {"finished": "success"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 410, "the first attempt's action is closed");
    assert_eq!(e["d-1"].0, "timed_out");
    assert_eq!(f.report("r", "d-0", "closed", "failure").await, 200);
    f.advance(301);
    f.tick().await;
    let e = f.executions("r").await;
    assert_eq!((e["d-0"].0.as_str(), e["d-0"].1), ("failed", 2), "retries exhausted");
    assert_eq!((e["d-1"].0.as_str(), e["d-1"].1), ("notified", 2), "the timed-out one is retried");
    let history = f.api.get("/api/v1/devices/d-0/executions").await;
    let reports: Vec<&str> =
        history.ok()["items"][0]["history"].as_array().unwrap().iter().map(|h| h["report"].as_str().unwrap()).collect();
    assert_eq!(reports, ["created", "released", "closed/failure", "retry", "released", "closed/failure"]);
    assert_eq!(f.report("r", "d-1", "closed", "success").await, 200);
    f.tick().await;
    assert_eq!(f.job_state("r").await, "completed");
    for (field, value) in
        [("timeout_seconds", json!(59)), ("timeout_seconds", json!(172_801)), ("retry", json!({"count": 11}))]
    {
        let bad = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, field: value})).await;
        bad.expect(400, Some("validation_failed"));
    }
}

async fn delivery_consent_and_commands(b: Backend) {
    let f = fleet(b, |_| {}).await;
    for i in 0..2 {
        f.device(&format!("d-{i}"), "thermo", "1.0.0", json!({})).await;
    }
    let neither = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, "push": false})).await;
    assert_eq!(neither.expect(400, Some("validation_failed"))["error"]["details"][0]["field"], "push");
    let j = f.job(json!({"id": "asked", "devices": ["d-1"], "push": false, "allow_device_request": true})).await;
    assert_eq!((j["push"].as_bool(), j["allow_device_request"].as_bool()), (Some(false), Some(true)));
    assert_eq!(f.tick().await.released, 0, "not pushed");
    assert_eq!(f.offered("d-1").await, None);
    assert_eq!(f.ask("d-0", "GET", "").await.1, json!([]), "d-0 is not in the job");
    let (status, listed) = f.ask("d-1", "GET", "").await;
    assert_eq!((status, listed[0]["job"].as_str()), (200, Some("asked")));
    let (status, answer) = f.ask("d-1", "POST", "/asked").await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["_links"]["deploymentBase"]["href"].as_str().unwrap().contains("/deploymentBase/"));
    assert!(f.offered("d-1").await.is_some(), "asked: offered");
    assert_eq!(f.states("asked").await["d-1"], "notified");
    assert_eq!(f.ask("d-1", "POST", "/asked").await.0, 404, "asked already");
    f.api.post("/api/v1/jobs/asked/cancel", json!({})).await.ok();

    f.device("d-3", "thermo", "1.0.0", json!({})).await;
    let j = f.job(json!({"id": "consent", "devices": ["d-0", "d-3"], "consent_required": true})).await;
    assert_eq!(j["counts"]["awaiting_consent"], 2);
    assert_eq!(f.tick().await.released, 0, "nothing before consent");
    let app = f.api.key("consent").await;
    let approve =
        f.api.as_key(&app).post("/api/v1/devices/d-0/executions/consent/consent", json!({"decision": "approve"})).await;
    assert_eq!(approve.ok()["state"], "queued");
    let deny =
        f.api.as_key(&app).post("/api/v1/devices/d-3/executions/consent/consent", json!({"decision": "deny"})).await;
    assert_eq!(deny.ok()["state"], "rejected");
    f.api.as_key(&app).post("/api/v1/jobs/consent/pause", json!({})).await.expect(403, Some("forbidden"));
    assert_eq!(f.tick().await.released, 1);
    assert!(f.offered("d-0").await.is_some(), "approved, released: offered");

    // Commands: pause stops releases, resume restarts them, cancel ends it.
    f.device("d-2", "thermo", "1.0.0", json!({})).await;
    f.job(json!({"id": "cmd", "devices": ["d-2"]})).await;
    let paused = f.api.post("/api/v1/jobs/cmd/pause", json!({})).await;
    assert_eq!((paused.ok()["state"].as_str(), paused.ok()["held"].as_bool()), (Some("paused"), Some(true)));
    assert_eq!(f.tick().await.released, 0);
    f.api.post("/api/v1/jobs/cmd/pause", json!({})).await.expect(409, Some("job_state"));
    f.api.post("/api/v1/jobs/cmd/resume", json!({})).await.ok();
    assert_eq!(f.tick().await.released, 1);
    f.api.post("/api/v1/jobs/cmd/cancel", json!({})).await.ok();
    assert_eq!(f.job_state("cmd").await, "canceled");
    f.api.post("/api/v1/jobs/cmd/resume", json!({})).await.expect(409, Some("job_state"));
}

async fn verify_jobs_gate_unverified_firmware(b: Backend) {
    let f = fleet(b, |_| {}).await;
    for i in 0..3 {
        f.device(&format!("d-{i}"), "thermo", "1.0.0", json!({})).await;
    }
    let fw = upload(&f.api, "thermo", "3.0.0", true).await;
    let refused = f.api.post("/api/v1/jobs", json!({"firmware": fw, "all": true})).await;
    refused.expect(409, Some("firmware_not_verified"));
    let wide = f.api.post("/api/v1/jobs", json!({"firmware": fw, "kind": "verify", "all": true})).await;
    wide.expect(400, Some("validation_failed"));
    let many: Vec<String> = (0..51).map(|i| format!("x-{i}")).collect();
    let too_many = f.api.post("/api/v1/jobs", json!({"firmware": fw, "kind": "verify", "devices": many})).await;
    too_many.expect(400, Some("validation_failed"));
    let v = f
        .api
        .post("/api/v1/jobs", json!({"id": "v", "firmware": fw, "kind": "verify", "devices": ["d-0", "d-1"]}))
        .await;
    assert_eq!(v.expect(201, None)["kind"], "verify");
    f.tick().await;
    for d in ["d-0", "d-1"] {
        assert_eq!(f.report("v", d, "closed", "success").await, 200);
    }
    assert_eq!(f.job_state("v").await, "completed");
    assert_eq!(f.api.get(&format!("/api/v1/firmware/{fw}")).await.ok()["verified"], true);
    f.api.post("/api/v1/jobs", json!({"firmware": fw, "all": true})).await.expect(201, None);
}

async fn continuous_jobs_add_devices_that_start_matching(b: Backend) {
    let f = fleet(b, |s| s.continuous_reevaluation_secs = 3600).await;
    f.device("d-0", "thermo", "1.0.0", json!({"properties": {"region": "eu"}})).await;
    let saved = f.api.post("/api/v1/filters", json!({"name": "eu", "query": "prop.region == \"eu\""})).await;
    let filter_id = saved.expect(201, None)["id"].as_str().unwrap().to_owned();
    f.job(json!({"id": "cont", "recurrence": "continuous", "filter_id": filter_id})).await;
    f.api.post("/api/v1/groups", json!({"id": "g", "name": "G"})).await.expect(201, None);
    f.job(json!({"id": "grp", "recurrence": "continuous", "groups": ["g"]})).await;
    assert_eq!(ids(&f.states("cont").await), ["d-0"]);

    // Registered while it runs: added at once.
    f.device("d-1", "thermo", "1.0.0", json!({"properties": {"region": "eu"}})).await;
    f.device("d-2", "thermo", "1.0.0", json!({"properties": {"region": "us"}})).await;
    assert_eq!(ids(&f.states("cont").await), ["d-0", "d-1"]);
    // A changed property: added at once.
    f.api.patch("/api/v1/devices/d-2", json!({"properties": {"region": "eu"}})).await.ok();
    assert_eq!(ids(&f.states("cont").await), ["d-0", "d-1", "d-2"]);
    // A group join.
    f.api.post("/api/v1/groups/g/members", json!({"add": ["d-1"]})).await.ok();
    assert_eq!(ids(&f.states("grp").await), ["d-1"]);
    // Never twice: changing again adds nothing.
    f.api.patch("/api/v1/devices/d-2", json!({"metadata": {"x": "y"}})).await.ok();
    assert_eq!(f.states("cont").await.len(), 3);
    // Editing the saved filter reaches the running job through the periodic re-evaluation.
    f.device("d-3", "thermo", "1.0.0", json!({"properties": {"region": "apac"}})).await;
    f.api
        .patch(&format!("/api/v1/filters/{filter_id}"), json!({"query": "prop.region in [\"eu\", \"apac\"]"}))
        .await
        .ok();
    f.tick().await; // the first tick evaluates
    assert_eq!(f.states("cont").await.len(), 4, "the edited filter now matches d-3");
    f.device("d-4", "lamp", "1.0.0", json!({"properties": {"region": "eu"}})).await;
    assert_eq!(f.states("cont").await.len(), 4, "never another product");
    f.tick().await;
    assert_eq!(f.job_state("cont").await, "running", "a continuous job does not complete by itself");
}

async fn identity_validation_and_listing(b: Backend) {
    let f = fleet(b, |_| {}).await;
    f.device("d-0", "thermo", "1.0.0", json!({})).await;
    let j = f
        .job(json!({"id": "Spring_2026-a", "name": "Spring", "translations": {"de": "Frühling"},
                    "description": "the spring release", "metadata": {"ticket": "OPS-1"},
                    "additional_params": {"reboot": true}, "devices": ["d-0"]}))
        .await;
    assert_eq!(j["translations"]["de"], "Frühling");
    assert_eq!(j["metadata"]["ticket"], "OPS-1");
    assert_eq!(j["additional_params"]["reboot"], true);
    assert_eq!(j["recurrence"], "snapshot");
    assert_eq!(
        (j["push"].as_bool(), j["max_concurrency"].as_u64(), j["timeout_seconds"].as_u64()),
        (Some(true), Some(300), None)
    );
    assert!(j["created_at"].is_string() && j["started_at"].is_string());
    let dup =
        f.api.post("/api/v1/jobs", json!({"id": "Spring_2026-a", "firmware": f.firmware, "devices": ["d-0"]})).await;
    dup.expect(409, Some("conflict"));
    for body in [
        json!({"id": "bad id!", "devices": ["d-0"]}),
        json!({"description": "x".repeat(2029), "devices": ["d-0"]}),
        json!({"devices": ["d-0"], "gray_percent": 0}),
        json!({"devices": ["d-0"], "max_concurrency": 0}),
        json!({}),
        json!({"devices": ["d-0"], "abort": [{"failure": "failed", "min_executed": 1, "threshold_percent": 0}]}),
    ] {
        let mut body = body;
        body["firmware"] = json!(f.firmware);
        f.api.post("/api/v1/jobs", body).await.expect(400, Some("validation_failed"));
    }
    f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, "surprise": 1})).await.expect(400, None);
    let generated = f.job(json!({"devices": ["d-0"], "start": false})).await;
    assert!(generated["id"].as_str().unwrap().starts_with("job_"));
    let created = f.api.get("/api/v1/jobs?state=created").await;
    assert_eq!(created.ok()["items"].as_array().unwrap().len(), 1);
    let searched = f.api.get("/api/v1/jobs?search=spring").await;
    assert_eq!(searched.ok()["items"][0]["id"], "Spring_2026-a");
    f.api.get("/api/v1/jobs?state=sleeping").await.expect(400, None);
    let one = f.api.get("/api/v1/jobs/Spring_2026-a").await;
    assert_eq!(one.ok()["counts"]["queued"], 1);
    assert_eq!(one.ok()["progress"]["total"], 1);
}

async fn several_components_are_delivered_together(b: Backend) {
    let f = fleet(b, |_| {}).await;
    f.device("both-old", "thermo", "1.0.0", json!({})).await;
    f.device("host-new", "thermo", "2.1.0", json!({})).await;
    f.api.patch("/api/v1/devices/host-new", json!({"firmware": {"host": "2.1.0", "modem": "1.0.0"}})).await.ok();
    f.device("up-to-date", "thermo", "2.1.0", json!({})).await;
    f.api.patch("/api/v1/devices/up-to-date", json!({"firmware": {"host": "2.1.0", "modem": "5.0.0"}})).await.ok();
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.1.0")
        .text(
            "files",
            json!([{"name": "host.bin", "component": "host", "version": "2.1.0"},
                   {"name": "modem.bin", "component": "modem", "version": "5.0.0"}])
            .to_string(),
        )
        .part("file", reqwest::multipart::Part::bytes(vec![1u8; 512]).file_name("host.bin"))
        .part("file", reqwest::multipart::Part::bytes(vec![2u8; 256]).file_name("modem.bin"));
    let fw = f.api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    f.api.post("/api/v1/jobs", json!({"id": "multi", "firmware": fw, "all": true})).await.expect(201, None);
    let s = f.states("multi").await;
    assert_eq!(s["both-old"], "queued");
    assert_eq!(s["host-new"], "queued", "one component behind is enough to need the job");
    assert_eq!(s["up-to-date"], "skipped", "skipped only when every component is on its version");
    f.tick().await;
    assert_eq!(f.report("multi", "both-old", "closed", "success").await, 200);
    let d = f.api.get("/api/v1/devices/both-old").await;
    assert_eq!(
        (d.ok()["firmware"]["host"].as_str(), d.ok()["firmware"]["modem"].as_str()),
        (Some("2.1.0"), Some("5.0.0"))
    );
}
