//! The device API as hawkBit has it, through the real server on both stores:
//! lenient feedback, deployment handling and maintenance windows, deployment
//! metadata, plug-and-play registration, what a device may report on, action
//! ids, presence and ranges.

mod common;

use std::sync::Arc;

use common::{Api, Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft::testing::ManualClock;

on_both_stores!(
    feedback_with_empty_or_foreign_progress_completes_the_deployment,
    deployments_carry_hawkbit_handling_and_the_maintenance_window,
    job_additional_params_reach_devices_as_deployment_metadata,
    a_gateway_poll_registers_an_unknown_device_that_then_works_like_any_other,
    a_device_cannot_report_on_an_execution_not_offered_to_it,
    a_device_marked_online_that_never_polls_goes_offline,
    first_contact_activates_and_the_device_initializes_until_its_next_poll,
    ranges_follow_rfc_9110,
    action_ids_count_per_tenant_below_2_31_and_a_retry_gets_a_new_one,
    the_agent_downloads_now_and_installs_in_the_maintenance_window,
    devices_poll_sooner_as_their_maintenance_window_nears,
);

/// A clocked server with product `thermo`, one image (`host` 2.0.0) and devices `dev-0…`.
struct Bench {
    api: Api,
    clock: Arc<ManualClock>,
    firmware: String,
    tokens: Vec<String>,
}

impl Bench {
    async fn new(b: Backend, devices: usize) -> Bench {
        Self::with_settings(b, devices, |_| {}).await
    }

    async fn with_settings(b: Backend, devices: usize, configure: impl FnOnce(&mut updraft_server::Settings)) -> Bench {
        let (server, clock) = TestServer::start_clocked(b, configure).await;
        let api = Api::on(server);
        api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
        let form = reqwest::multipart::Form::new()
            .text("product", "thermo")
            .text("version", "2.0.0")
            .part("file", reqwest::multipart::Part::bytes(vec![7u8; 4096]).file_name("app.bin"));
        let firmware =
            api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
        let mut bench = Bench { api, clock, firmware, tokens: vec![] };
        for i in 0..devices {
            bench.add_device(&format!("dev-{i}")).await;
        }
        bench
    }

    async fn add_device(&mut self, id: &str) -> String {
        let d = self.api.post("/api/v1/devices", json!({"id": id, "product": "thermo", "firmware": {"host": "1.0.0"}}));
        let token = d.await.expect(201, None)["token"].as_str().unwrap().to_owned();
        self.tokens.push(token.clone());
        token
    }

    /// Creates and starts a job for `devices` with extra fields, and ticks the scheduler.
    async fn job(&self, id: &str, devices: &[&str], extra: Value) -> Value {
        let mut body = json!({"id": id, "firmware": self.firmware});
        if !devices.is_empty() {
            body["devices"] = json!(devices);
        }
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let job = self.api.post("/api/v1/jobs", body).await.expect(201, None).clone();
        self.api.server.tick_scheduler().await;
        job
    }

    fn url(&self, device: &str, rest: &str) -> String {
        self.api.server.url(&format!("/default/controller/v1/{device}{rest}"))
    }

    async fn call(&self, method: Method, url: &str, auth: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.api.http.request(method, url).header("authorization", auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let bytes = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Device `i` (`dev-i`) calls with its token.
    async fn device(&self, i: usize, method: Method, rest: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = self.url(&format!("dev-{i}"), rest);
        self.call(method, &url, &format!("TargetToken {}", self.tokens[i]), body).await
    }

    async fn poll(&self, i: usize) -> Value {
        let (s, body) = self.device(i, Method::GET, "", None).await;
        assert_eq!(s, 200, "{body}");
        body
    }

    /// The deployment the poll links to, fetched.
    async fn deployment(&self, i: usize) -> Value {
        let poll = self.poll(i).await;
        let href = poll["_links"]["deploymentBase"]["href"].as_str().unwrap_or_else(|| panic!("no deployment: {poll}"));
        let (s, body) = self.call(Method::GET, href, &format!("TargetToken {}", self.tokens[i]), None).await;
        assert_eq!(s, 200, "{body}");
        body
    }

    async fn feedback(&self, i: usize, action: &str, body: Value) -> StatusCode {
        self.device(i, Method::POST, &format!("/deploymentBase/{action}/feedback"), Some(body)).await.0
    }

    async fn executions(&self, device: &str) -> Value {
        self.api.get(&format!("/api/v1/devices/{device}/executions")).await.ok()["items"].clone()
    }
}

async fn feedback_with_empty_or_foreign_progress_completes_the_deployment(b: Backend) {
    let bench = Bench::new(b, 1).await;
    bench.job("j", &["dev-0"], json!({})).await;
    let d = bench.deployment(0).await;
    let action = d["id"].as_str().unwrap();
    for progress in [json!({}), json!({"percentage": 40}), json!({"cnt": 3}), json!({"of": 9}), Value::Null] {
        let body = json!({"status": {"execution": "proceeding", "result": {"finished": "none", "progress": progress}}});
        assert_eq!(bench.feedback(0, action, body).await, 200, "progress {progress} is accepted");
    }
    // Java's Jackson reads integers from floats and numeric strings, strings from numbers.
    let loose = json!({"timestamp": "1780000000000", "status": {"execution": "downloaded", "code": 200.0,
        "result": {"finished": "none", "progress": {"cnt": "4", "of": 4}}, "details": [12, null, "ok"]}});
    assert_eq!(bench.feedback(0, action, loose).await, 200);
    let done =
        json!({"status": {"execution": "closed", "result": {"finished": "success", "progress": {"percentage": 100}}}});
    assert_eq!(bench.feedback(0, action, done).await, 200);
    let e = bench.executions("dev-0").await;
    assert_eq!(e[0]["state"], "succeeded", "{e}");
    assert_eq!(e[0]["progress"]["cnt"], 4, "the last progress that said how far is kept");
    let details = e[0]["history"].as_array().unwrap().iter().find(|h| h["report"] == "downloaded").unwrap();
    assert_eq!(details["details"], json!(["12", "ok"]));
    // What hawkBit requires stays required.
    for bad in [
        json!({"status": {"execution": "closed", "result": {}}}),
        json!({"status": {"result": {"finished": "success"}}}),
        json!({"status": {"execution": "closed", "result": {"finished": "success"}, "code": "x"}}),
        json!({"status": {"execution": "closed", "result": {"finished": "success", "progress": {"cnt": [1]}}}}),
    ] {
        assert_eq!(bench.feedback(0, action, bad.clone()).await, 400, "{bad}");
    }
}

fn deployment_fields(d: &Value) -> (String, String, Option<String>) {
    let dep = &d["deployment"];
    (
        dep["download"].as_str().unwrap().to_owned(),
        dep["update"].as_str().unwrap().to_owned(),
        dep["maintenanceWindow"].as_str().map(str::to_owned),
    )
}

fn owned(s: &str) -> String {
    s.to_owned()
}

async fn deployments_carry_hawkbit_handling_and_the_maintenance_window(b: Backend) {
    let bench = Bench::new(b, 4).await;
    // The server's clock stands at 12:00 UTC; the window is 22:00–06:00 UTC.
    let window = json!({"timezone": "UTC", "window": {"from": "22:00", "to": "06:00"}});
    bench
        .api
        .post(
            "/api/v1/jobs",
            json!({"firmware": bench.firmware, "devices": ["dev-0"], "maintenance_window": {"timezone": "UTC"}}),
        )
        .await
        .expect(400, Some("validation_failed"));
    bench.api.post("/api/v1/jobs", json!({"firmware": bench.firmware, "devices": ["dev-0"], "handling": "download_only", "maintenance_window": window}))
        .await
        .expect(400, Some("validation_failed"));
    bench
        .api
        .post("/api/v1/jobs", json!({"firmware": bench.firmware, "devices": ["dev-0"], "handling": "sometimes"}))
        .await
        .expect(400, None);
    let soft = bench.job("soft", &["dev-0"], json!({"handling": "soft"})).await;
    assert_eq!(soft["handling"], "soft", "the job shows its handling back");
    bench.job("forced", &["dev-1"], json!({})).await;
    bench.job("download", &["dev-2"], json!({"handling": "download_only"})).await;
    let windowed = bench.job("window", &["dev-3"], json!({"maintenance_window": window})).await;
    assert_eq!(windowed["maintenance_window"]["window"]["from"], "22:00");

    assert_eq!(deployment_fields(&bench.deployment(0).await), (owned("attempt"), owned("attempt"), None));
    assert_eq!(deployment_fields(&bench.deployment(1).await), (owned("forced"), owned("forced"), None));
    let download_only = bench.deployment(2).await;
    assert_eq!(deployment_fields(&download_only), (owned("forced"), owned("skip"), None));

    // Outside the window: download now, install later.
    let closed = bench.poll(3).await["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
    assert_eq!(
        deployment_fields(&bench.deployment(3).await),
        (owned("forced"), owned("skip"), Some(owned("unavailable")))
    );
    bench.clock.set("2026-06-01T23:00:00Z".parse().unwrap());
    let open = bench.poll(3).await["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
    assert_ne!(open, closed, "the link changes when the window opens, so clients fetch it again");
    assert_eq!(
        deployment_fields(&bench.deployment(3).await),
        (owned("forced"), owned("forced"), Some(owned("available")))
    );
    bench.clock.set("2026-06-02T06:00:00Z".parse().unwrap());
    let closed_again = bench.poll(3).await["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
    assert_eq!(closed_again, closed, "closed again: the link of a closed window");
    assert_eq!(deployment_fields(&bench.deployment(3).await).1, "skip");

    // A download-only execution ends when the device has downloaded; nothing is installed.
    let action = download_only["id"].as_str().unwrap();
    let downloaded = json!({"status": {"execution": "downloaded", "result": {"finished": "success"}}});
    assert_eq!(bench.feedback(2, action, downloaded).await, 200);
    assert_eq!(bench.executions("dev-2").await[0]["state"], "succeeded");
    let device = bench.api.get("/api/v1/devices/dev-2").await;
    assert_eq!(device.ok()["firmware"]["host"], "1.0.0", "downloaded, not installed");
    assert_eq!(bench.api.get("/api/v1/jobs/download").await.ok()["state"], "completed");
}

async fn job_additional_params_reach_devices_as_deployment_metadata(b: Backend) {
    let bench = Bench::new(b, 2).await;
    let params = json!({"channel": "beta", "reboot": true, "retries": 3, "extra": {"a": [1, 2]}, "none": null});
    bench.job("meta", &["dev-0"], json!({"additional_params": params})).await;
    bench.job("plain", &["dev-1"], json!({})).await;
    let d = bench.deployment(0).await;
    let metadata = &d["deployment"]["chunks"][0]["metadata"];
    assert_eq!(
        metadata,
        &json!([
            {"key": "channel", "value": "beta"},
            {"key": "extra", "value": "{\"a\":[1,2]}"},
            {"key": "none", "value": "null"},
            {"key": "reboot", "value": "true"},
            {"key": "retries", "value": "3"},
        ]),
        "strings as they are, other values as JSON text"
    );
    let plain = bench.deployment(1).await;
    assert!(plain["deployment"]["chunks"][0].get("metadata").is_none(), "no metadata key without params: {plain}");
}

async fn a_gateway_poll_registers_an_unknown_device_that_then_works_like_any_other(b: Backend) {
    let bench = Bench::with_settings(b, 0, |s| s.ddi_default_product = Some("thermo".into())).await;
    bench.job("everyone", &[], json!({"all": true, "recurrence": "continuous"})).await;
    let gw = bench.api.post("/api/v1/gateway-tokens", json!({"name": "edge"})).await;
    let auth = format!("GatewayToken {}", gw.expect(201, None)["token"].as_str().unwrap());
    // Only the poll registers: another call for an unknown device is 404 and registers nothing.
    let (s, _) = bench.call(Method::GET, &bench.url("newbie", "/confirmationBase/1"), &auth, None).await;
    assert_eq!(s, 404);
    bench.api.get("/api/v1/devices/newbie").await.expect(404, None);
    let (s, body) = bench.call(Method::GET, &bench.url("newbie", ""), &auth, None).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["_links"]["configData"].is_object(), "a new device is asked for its attributes: {body}");
    let device = bench.api.get("/api/v1/devices/newbie").await;
    assert_eq!(device.ok()["product"], "thermo");
    // The continuous job saw the registration: the device gets the deployment.
    bench.api.server.tick_scheduler().await;
    let (_, body) = bench.call(Method::GET, &bench.url("newbie", ""), &auth, None).await;
    let href = body["_links"]["deploymentBase"]["href"].as_str().unwrap_or_else(|| panic!("no deployment: {body}"));
    let (s, d) = bench.call(Method::GET, href, &auth, None).await;
    assert_eq!((s.as_u16(), d["deployment"]["chunks"][0]["version"].as_str()), (200, Some("2.0.0")));
    let (s, body) = bench.call(Method::GET, &bench.url("confirmer", "/confirmationBase"), &auth, None).await;
    assert_eq!((s.as_u16(), &body["autoConfirm"]["active"]), (200, &json!(false)), "hawkBit registers here too");
    bench.api.get("/api/v1/devices/confirmer").await.expect(200, None);
    let (s, _) = bench.call(Method::GET, &bench.url("bad id!", ""), &auth, None).await;
    assert_eq!(s, 404, "an id that is not a valid device id is not registered");
}

async fn a_device_cannot_report_on_an_execution_not_offered_to_it(b: Backend) {
    let bench = Bench::new(b, 2).await;
    bench.job("one-at-a-time", &["dev-0", "dev-1"], json!({"max_concurrency": 1})).await;
    let items = bench.api.get("/api/v1/jobs/one-at-a-time/executions?state=queued").await.ok()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    let device = items[0]["device"].as_str().unwrap().to_owned();
    let i: usize = device.trim_start_matches("dev-").parse().unwrap();
    let action = items[0]["action_id"].to_string();
    assert!(bench.poll(i).await["_links"].get("deploymentBase").is_none(), "not offered");
    let done = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let (s, body) = bench.device(i, Method::POST, &format!("/deploymentBase/{action}/feedback"), Some(done)).await;
    assert_eq!(s, 404, "hawkBit answers an action the device cannot see with 404");
    assert_eq!(body["errorCode"], "hawkbit.server.error.repo.entityNotFound");
    assert_eq!(bench.executions(&device).await[0]["state"], "queued", "nothing changed");
    let d = bench.api.get(&format!("/api/v1/devices/{device}")).await;
    assert_eq!(d.ok()["firmware"]["host"], "1.0.0", "no version the device never downloaded");
    let (s, _) = bench.device(i, Method::GET, &format!("/deploymentBase/{action}"), None).await;
    assert_eq!(s, 404);
}

async fn a_device_marked_online_that_never_polls_goes_offline(b: Backend) {
    let bench = Bench::new(b, 0).await;
    bench
        .api
        .post("/api/v1/devices", json!({"id": "marked", "product": "thermo", "connection_status": "online"}))
        .await
        .expect(201, None);
    let state = &bench.api.server.state;
    let presence = updraft_app::workers::Worker::Presence;
    presence.tick(state, bench.clock.advance(jiff::SignedDuration::from_secs(60))).await.unwrap();
    assert_eq!(bench.api.get("/api/v1/devices/marked").await.ok()["connection_status"], "online");
    let silent = jiff::SignedDuration::from_secs(state.settings.offline_after_secs as i64);
    presence.tick(state, bench.clock.advance(silent)).await.unwrap();
    assert_eq!(bench.api.get("/api/v1/devices/marked").await.ok()["connection_status"], "offline");
}

async fn first_contact_activates_and_the_device_initializes_until_its_next_poll(b: Backend) {
    let bench = Bench::new(b, 1).await;
    let state = &bench.api.server.state;
    let presence = updraft_app::workers::Worker::Presence;
    let before = bench.api.get("/api/v1/devices/dev-0").await.ok().clone();
    assert!(before["activated_at"].is_null(), "{before}");
    let first = bench.clock.advance(jiff::SignedDuration::from_secs(10));
    bench.poll(0).await;
    let unchanged = bench.api.get("/api/v1/devices/dev-0").await.ok().clone();
    assert_eq!(unchanged, before, "a poll writes nothing by itself");
    presence.tick(state, first).await.unwrap();
    let d = bench.api.get("/api/v1/devices/dev-0").await.ok().clone();
    assert_eq!(d["connection_status"], "initializing");
    assert_eq!(d["activated_at"].as_str().map(|t| t.parse::<jiff::Timestamp>().unwrap()), Some(first));
    // Seed 000's filters: connection status and time since activation.
    let initializing = json!({"filter": {"status": {"connection_status": "initializing"}}});
    assert_eq!(bench.api.post("/api/v1/filters/estimate", initializing.clone()).await.ok()["count"], 1);
    let old_enough = json!({"filter": {"status": {"time_since_activation": "2D"}}});
    assert_eq!(bench.api.post("/api/v1/filters/estimate", old_enough.clone()).await.ok()["count"], 0);
    // The next poll completes the first poll cycle: online; activation stays.
    let second = bench.clock.advance(jiff::SignedDuration::from_secs(60));
    bench.poll(0).await;
    presence.tick(state, second).await.unwrap();
    let d = bench.api.get("/api/v1/devices/dev-0").await.ok().clone();
    assert_eq!(d["connection_status"], "online");
    assert_eq!(d["activated_at"].as_str().map(|t| t.parse::<jiff::Timestamp>().unwrap()), Some(first));
    assert_eq!(bench.api.post("/api/v1/filters/estimate", initializing).await.ok()["count"], 0);
    bench.clock.advance(jiff::SignedDuration::from_hours(49));
    assert_eq!(bench.api.post("/api/v1/filters/estimate", old_enough).await.ok()["count"], 1);
}

async fn ranges_follow_rfc_9110(b: Backend) {
    let bench = Bench::new(b, 1).await;
    bench.job("j", &["dev-0"], json!({})).await;
    let d = bench.deployment(0).await;
    let url = d["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"].as_str().unwrap();
    let len = 4096;
    let get = |method: Method, headers: Vec<(&'static str, String)>| {
        let mut r =
            bench.api.http.request(method, url).header("authorization", format!("TargetToken {}", bench.tokens[0]));
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let range = |v: &str| vec![("range", v.to_owned())];
    let r = get(Method::GET, range("lines=1-2")).await.unwrap();
    assert_eq!((r.status().as_u16(), r.bytes().await.unwrap().len()), (200, len), "an unknown unit is ignored");
    let r = get(Method::GET, range("bytes=10-19,9000-9999,-0")).await.unwrap();
    assert_eq!(r.status(), 206, "the satisfiable range is served");
    assert_eq!(r.headers()["content-range"], format!("bytes 10-19/{len}").as_str());
    assert_eq!(r.bytes().await.unwrap().len(), 10);
    let r = get(Method::GET, range("bytes=9000-9999,-0")).await.unwrap();
    assert_eq!(r.status(), 416, "none satisfiable");
    assert_eq!(r.headers()["content-range"], format!("bytes */{len}").as_str());
    let r = get(Method::GET, range("bytes=0-9,5-20")).await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-range"].to_str().unwrap()), (206, "bytes 0-20/4096"));
    let r = get(Method::HEAD, range("bytes=0-9")).await.unwrap();
    assert_eq!(r.status(), 200, "range handling is defined for GET only");
    let full = get(Method::GET, vec![]).await.unwrap();
    let (etag, modified) = (
        full.headers()["etag"].to_str().unwrap().to_owned(),
        full.headers()["last-modified"].to_str().unwrap().to_owned(),
    );
    let r = get(Method::GET, vec![("range", "bytes=0-0".into()), ("if-range", modified)]).await.unwrap();
    assert_eq!(r.status(), 206, "If-Range with the Last-Modified date");
    let r = get(Method::GET, vec![("range", "bytes=0-0".into()), ("if-range", format!("W/{etag}"))]).await.unwrap();
    assert_eq!(r.status(), 200, "a weak tag never matches If-Range");
}

async fn action_ids_count_per_tenant_below_2_31_and_a_retry_gets_a_new_one(b: Backend) {
    let bench = Bench::new(b, 2).await;
    bench.job("first", &["dev-1"], json!({})).await;
    bench.job("retried", &["dev-0"], json!({"retry": {"count": 1, "interval_minutes": 1}})).await;
    assert_eq!(bench.deployment(1).await["id"], "1", "a tenant counts its actions from 1");
    let d = bench.deployment(0).await;
    assert_eq!(d["id"], "2");
    let (s, _) = bench.device(0, Method::GET, "/deploymentBase/1", None).await;
    assert_eq!(s, 404, "another device's action");
    let failed = json!({"status": {"execution": "closed", "result": {"finished": "failure"}}});
    assert_eq!(bench.feedback(0, "2", failed).await, 200);
    bench.clock.advance(jiff::SignedDuration::from_secs(61));
    bench.api.server.tick_scheduler().await;
    let retried = bench.deployment(0).await;
    assert_eq!(retried["id"], "3", "a retry is a new action for the device");
    let done = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    assert_eq!(bench.feedback(0, "2", done.clone()).await, 410, "the earlier attempt's id is gone");
    assert_eq!(bench.feedback(0, "4", done.clone()).await, 404);
    assert_eq!(bench.feedback(0, "3", done).await, 200);
    let e = bench.executions("dev-0").await;
    assert_eq!(
        (e[0]["state"].as_str(), e[0]["attempt"].as_u64(), e[0]["action_id"].as_i64()),
        (Some("succeeded"), Some(2), Some(3))
    );
}

async fn the_agent_downloads_now_and_installs_in_the_maintenance_window(b: Backend) {
    use updraft_agent::{Agent, AgentConfig, Auth, Installer, Phase};
    let bench = Bench::new(b, 2).await;
    let window = json!({"timezone": "UTC", "window": {"from": "22:00", "to": "06:00"}});
    bench.job("window", &["dev-0"], json!({"maintenance_window": window})).await;
    bench.job("download", &["dev-1"], json!({"handling": "download_only"})).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = |i: usize| {
        let state = dir.path().join(format!("dev-{i}"));
        let mut c = AgentConfig::new(
            format!("http://{}", bench.api.server.addr),
            "default",
            format!("dev-{i}"),
            Auth::TargetToken(bench.tokens[i].clone()),
            &state,
            Installer::CopyTo(state.join("installed.bin")),
        );
        c.firmware.insert("host".into(), "1.0.0".into());
        c.poll_interval = Some(std::time::Duration::from_millis(10));
        c
    };
    let mut windowed = Agent::new(agent(0)).await.unwrap();
    windowed.run_once().await.unwrap();
    assert!(
        matches!(windowed.state().work.as_ref().map(|w| &w.phase), Some(Phase::AwaitingWindow)),
        "downloaded, waiting for the window: {:?}",
        windowed.state()
    );
    assert_eq!(bench.executions("dev-0").await[0]["state"], "downloaded");
    bench.clock.set("2026-06-01T23:00:00Z".parse().unwrap());
    windowed.run_once().await.unwrap();
    assert_eq!(bench.executions("dev-0").await[0]["state"], "succeeded");
    assert_eq!(bench.api.get("/api/v1/devices/dev-0").await.ok()["firmware"]["host"], "2.0.0");

    let mut download_only = Agent::new(agent(1)).await.unwrap();
    download_only.run_once().await.unwrap();
    assert_eq!(bench.executions("dev-1").await[0]["state"], "succeeded");
    assert_eq!(bench.api.get("/api/v1/devices/dev-1").await.ok()["firmware"]["host"], "1.0.0", "downloaded only");
}

async fn devices_poll_sooner_as_their_maintenance_window_nears(b: Backend) {
    let bench = Bench::new(b, 2).await;
    let window = json!({"timezone": "UTC", "window": {"from": "22:00", "to": "06:00"}});
    bench.job("window", &["dev-0"], json!({"maintenance_window": window})).await;
    bench.job("plain", &["dev-1"], json!({})).await;
    let bench = &bench;
    let sleep =
        |i: usize| async move { bench.poll(i).await["config"]["polling"]["sleep"].as_str().unwrap().to_owned() };
    assert_eq!(sleep(0).await, "00:05:00", "10 hours before the window: the usual interval");
    bench.clock.set("2026-06-01T21:57:00Z".parse().unwrap());
    assert_eq!(sleep(0).await, "00:01:00", "a third of the time left, to poll about three times before it opens");
    assert_eq!(sleep(1).await, "00:05:00", "no window: the usual interval");
    bench.clock.set("2026-06-01T21:59:50Z".parse().unwrap());
    assert_eq!(sleep(0).await, "00:00:30", "never under 30 s");
    bench.clock.set("2026-06-01T22:00:00Z".parse().unwrap());
    assert_eq!(sleep(0).await, "00:05:00", "inside the window");
}
