//! A fleet for the jobs engine's tests: a server with a manual clock, two
//! products, a firmware image, devices with their tokens, and what a test
//! asks of jobs and devices over the management and device APIs.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};
use updraft::testing::ManualClock;

use super::{Api, Backend, TestServer};

pub struct Fleet {
    pub api: Api,
    pub clock: Arc<ManualClock>,
    pub tokens: std::sync::Mutex<BTreeMap<String, String>>,
    pub firmware: String,
}

impl Fleet {
    pub async fn tick(&self) -> updraft_app::scheduler::TickReport {
        self.api.server.tick_scheduler().await
    }

    pub fn advance(&self, secs: i64) -> Timestamp {
        self.clock.advance(SignedDuration::from_secs(secs))
    }

    pub fn set(&self, at: &str) {
        self.clock.set(at.parse().unwrap());
    }

    pub async fn device(&self, id: &str, product: &str, host: &str, extra: Value) {
        let mut body = json!({"id": id, "product": product, "firmware": {"host": host}});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let d = self.api.post("/api/v1/devices", body).await;
        let token = d.expect(201, None)["token"].as_str().unwrap().to_owned();
        self.tokens.lock().unwrap().insert(id.to_owned(), token);
    }

    pub fn token(&self, device: &str) -> String {
        self.tokens.lock().unwrap()[device].clone()
    }

    pub async fn job(&self, body: Value) -> Value {
        let mut body = body;
        body["firmware"] = json!(self.firmware);
        self.api.post("/api/v1/jobs", body).await.expect(201, None).clone()
    }

    pub async fn executions(&self, job: &str) -> BTreeMap<String, (String, u64, i64)> {
        let page = self.api.get(&format!("/api/v1/jobs/{job}/executions?limit=1000")).await;
        page.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["device"].as_str().unwrap().to_owned(),
                    (
                        e["state"].as_str().unwrap().to_owned(),
                        e["attempt"].as_u64().unwrap(),
                        e["action_id"].as_i64().unwrap(),
                    ),
                )
            })
            .collect()
    }

    pub async fn states(&self, job: &str) -> BTreeMap<String, String> {
        self.executions(job).await.into_iter().map(|(d, (s, _, _))| (d, s)).collect()
    }

    pub async fn count(&self, job: &str, state: &str) -> usize {
        self.states(job).await.values().filter(|s| *s == state).count()
    }

    pub async fn job_state(&self, job: &str) -> String {
        self.api.get(&format!("/api/v1/jobs/{job}")).await.ok()["state"].as_str().unwrap().to_owned()
    }

    /// The device reports on its action through the device API.
    pub async fn report(&self, job: &str, device: &str, execution: &str, finished: &str) -> u16 {
        let action = self.executions(job).await[device].2;
        let url = self.api.server.url(&format!("/default/controller/v1/{device}/deploymentBase/{action}/feedback"));
        let body = json!({"status": {"execution": execution, "result": {"finished": finished}}});
        let r = self
            .api
            .http
            .request(Method::POST, url)
            .header("authorization", format!("TargetToken {}", self.token(device)))
            .json(&body)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// The device asks for a job itself (updraft's extension of the device API).
    pub async fn ask(&self, device: &str, method: &str, job: &str) -> (u16, Value) {
        let url = self.api.server.url(&format!("/default/controller/v1/{device}/updraft/jobs{job}"));
        let r = self
            .api
            .http
            .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
            .header("authorization", format!("TargetToken {}", self.token(device)))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// What the device sees on its next poll: the deployment link's action id, if any.
    pub async fn offered(&self, device: &str) -> Option<String> {
        let url = self.api.server.url(&format!("/default/controller/v1/{device}"));
        let r = self
            .api
            .http
            .get(url)
            .header("authorization", format!("TargetToken {}", self.token(device)))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["_links"]["deploymentBase"]["href"].as_str().map(str::to_owned)
    }
}

/// A server with a manual clock, product `thermo` (firmware host 2.0.0) and `lamp`.
pub async fn fleet(b: Backend, configure: impl FnOnce(&mut updraft_server::Settings)) -> Fleet {
    let (server, clock) = TestServer::start_clocked(b, configure).await;
    let api = Api::on(server);
    for p in ["thermo", "lamp"] {
        api.post("/api/v1/products", json!({"key": p})).await.expect(201, None);
    }
    let firmware = upload(&api, "thermo", "2.0.0", false).await;
    Fleet { api, clock, tokens: Default::default(), firmware }
}

pub async fn upload(api: &Api, product: &str, version: &str, needs_verification: bool) -> String {
    let form = reqwest::multipart::Form::new()
        .text("product", product.to_owned())
        .text("version", version.to_owned())
        .text("needs_verification", needs_verification.to_string())
        .text("files", json!([{"name": "app.bin", "component": "host", "version": version}]).to_string())
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 1024]).file_name("app.bin"));
    api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned()
}

pub fn ids(m: &BTreeMap<String, String>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}
