//! The device API as hawkBit has it, through the real server on both stores:
//! lenient feedback, deployment handling and maintenance windows, deployment
//! metadata, plug-and-play registration, what a device may report on, action
//! ids, presence and ranges.

mod common;

use std::sync::Arc;

use common::{Api, Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::testing::ManualClock;

on_both_stores!(feedback_with_empty_or_foreign_progress_completes_the_deployment,);

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
        let mut body = json!({"id": id, "firmware": self.firmware, "devices": devices});
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
