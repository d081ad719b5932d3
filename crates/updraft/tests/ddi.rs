//! The device API (hawkBit DDI) over real HTTP, on SQLite and on PostgreSQL:
//! a third-party client (the `hawkbit` crate) runs the whole flow, and every
//! bad request gets hawkBit's status code and changes nothing.

mod common;

use common::{Api, Backend, TestServer, WriteProbe};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_stores!(
    hawkbit_client_runs_the_whole_flow,
    authentication_and_isolation,
    feedback_rules,
    artifact_downloads_and_ranges,
    unreadable_artifacts_answer_503_before_any_byte,
    cancel_and_confirmation,
    gateway_tokens_and_presence,
    poll_etag_changes_when_work_appears,
    a_restarted_server_fills_its_poll_cache_from_the_store,
);

struct Fleet {
    api: Api,
    firmware: String,
    image: Vec<u8>,
    tokens: Vec<String>,
}

impl Fleet {
    fn ddi(&self, tenant: &str, device: &str) -> String {
        self.api.server.url(&format!("/{tenant}/controller/v1/{device}"))
    }

    async fn device_call(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, bytes::Bytes) {
        let mut r = self.api.http.request(method, url).header("authorization", format!("TargetToken {token}"));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status(), r.headers().clone(), r.bytes().await.unwrap())
    }

    /// The download link of device `i`'s artifact (through its poll and deployment).
    async fn artifact_url(&self, i: usize) -> String {
        let poll = self.poll(i).await;
        let href = poll["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
        let (_, _, body) = self.device_call(Method::GET, &href, &self.tokens[i], None).await;
        let d: Value = serde_json::from_slice(&body).unwrap();
        d["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"].as_str().unwrap().to_owned()
    }

    async fn poll(&self, i: usize) -> Value {
        let (s, _, b) =
            self.device_call(Method::GET, &self.ddi("default", &format!("dev-{i}")), &self.tokens[i], None).await;
        assert_eq!(s, 200);
        serde_json::from_slice(&b).unwrap()
    }
}

async fn fleet(b: Backend, devices: usize, consent: bool) -> Fleet {
    let server = TestServer::start_with(b, |s| s.poll_interval_secs = 60).await;
    let api = Api::on(server);
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let image: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .text("name", "Spring")
        .part("file", reqwest::multipart::Part::bytes(image.clone()).file_name("app.bin"));
    let fw = api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for i in 0..devices {
        let d = api
            .post(
                "/api/v1/devices",
                json!({"id": format!("dev-{i}"), "product": "thermo", "firmware": {"host": "1.0.0"}}),
            )
            .await;
        tokens.push(d.expect(201, None)["token"].as_str().unwrap().to_owned());
    }
    let ids: Vec<String> = (0..devices).map(|i| format!("dev-{i}")).collect();
    api.post("/api/v1/jobs", json!({"id": "rollout", "firmware": fw, "devices": ids, "consent_required": consent}))
        .await
        .expect(201, None);
    // The scheduler releases the queued executions to their devices.
    api.server.tick_scheduler().await;
    Fleet { api, firmware: fw, image, tokens }
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

async fn hawkbit_client_runs_the_whole_flow(b: Backend) {
    use hawkbit::ddi::{Client, ClientAuthorization, Execution, Finished};
    let f = fleet(b, 1, false).await;
    let url = format!("http://{}/", f.api.server.addr);
    let client =
        Client::new(&url, "DEFAULT", "dev-0", ClientAuthorization::TargetToken(f.tokens[0].clone()), None, None, None)
            .unwrap();

    let reply = client.poll().await.unwrap();
    assert_eq!(reply.polling_sleep().unwrap(), std::time::Duration::from_secs(60));
    let config = reply.config_data_request().expect("a new device is asked for its attributes");
    #[derive(serde::Serialize)]
    struct Attributes {
        #[serde(rename = "hwRevision")]
        hw: String,
        #[serde(rename = "fw.host")]
        host: String,
        region: String,
    }
    let attrs = Attributes { hw: "rev-c".into(), host: "1.0.0".into(), region: "eu".into() };
    config.upload(Execution::Closed, Finished::Success, None, attrs, vec![]).await.unwrap();
    let d = f.api.get("/api/v1/devices/dev-0").await;
    assert_eq!(
        (d.ok()["hardware_version"].as_str(), d.ok()["properties"]["region"].as_str()),
        (Some("rev-c"), Some("eu"))
    );

    let update = client.poll().await.unwrap().update().expect("the job's deployment is offered");
    let update = update.fetch().await.unwrap();
    let chunks: Vec<_> = update.chunks().collect();
    assert_eq!(chunks.len(), 1);
    assert_eq!((chunks[0].part(), chunks[0].version(), chunks[0].name()), ("host", "2.0.0", "Spring"));
    let artifacts: Vec<_> = chunks[0].artifacts().collect();
    assert_eq!((artifacts[0].filename(), artifacts[0].size() as usize), ("app.bin", f.image.len()));
    update.send_feedback(Execution::Proceeding, Finished::None, vec!["downloading"]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let downloaded = update.download(dir.path()).await.unwrap();
    downloaded[0].check_sha256().await.expect("the artifact's sha256 matches");
    assert_eq!(sha256(&std::fs::read(downloaded[0].file()).unwrap()), sha256(&f.image));
    update.send_feedback(Execution::Closed, Finished::Success, vec!["installed"]).await.unwrap();

    let reply = client.poll().await.unwrap();
    assert!(reply.update().is_none(), "nothing more to do");
    assert!(reply.config_data_request().is_some(), "after an update the server asks for attributes again");
    let device = f.api.get("/api/v1/devices/dev-0").await;
    assert_eq!(device.ok()["firmware"]["host"], "2.0.0", "the device shows the new version");
    let job = f.api.get("/api/v1/jobs/rollout").await;
    assert_eq!((job.ok()["state"].as_str(), job.ok()["counts"]["succeeded"].as_u64()), (Some("completed"), Some(1)));
    let execs = f.api.get("/api/v1/devices/dev-0/executions").await;
    let history: Vec<&str> =
        execs.ok()["items"][0]["history"].as_array().unwrap().iter().map(|h| h["report"].as_str().unwrap()).collect();
    assert_eq!(history, ["created", "released", "proceeding", "closed/success"]);
    assert_eq!(execs.ok()["items"][0]["history"][3]["details"][0], "installed");
}

async fn authentication_and_isolation(b: Backend) {
    let f = fleet(b, 2, false).await;
    let url = f.ddi("default", "dev-0");
    let r = f.api.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.bytes().await.unwrap().is_empty(), "401 has an empty body");
    for auth in [
        "TargetToken nope",
        "Bearer x",
        &format!("TargetToken {}", f.tokens[1]),
        &format!("targettoken {}", f.tokens[0]),
    ] {
        let r = f.api.http.get(&url).header("authorization", auth).send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth}");
    }
    let (s, _, _) = f.device_call(Method::GET, &f.ddi("DeFaUlT", "dev-0"), &f.tokens[0], None).await;
    assert_eq!(s, 200, "tenants match case-insensitively");
    let (s, _, _) = f.device_call(Method::GET, &f.ddi("other", "dev-0"), &f.tokens[0], None).await;
    assert_eq!(s, 401, "a token is only good in its tenant");
    // A management key is not a device token, and a device token is not a management key.
    let r = f
        .api
        .http
        .get(&url)
        .header("authorization", format!("TargetToken {}", common::ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = f.api.as_key(&f.tokens[0]).get("/api/v1/devices").await;
    r.expect(401, Some("unauthorized"));

    // Another device's action is not found.
    let poll = f.poll(1).await;
    let href = poll["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
    let action = href.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let (s, _, body) = f
        .device_call(Method::GET, &format!("{}/deploymentBase/{action}", f.ddi("default", "dev-0")), &f.tokens[0], None)
        .await;
    assert_eq!(s, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorCode"], "hawkbit.server.error.repo.entityNotFound");
    let fb = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let (s, _, _) = f
        .device_call(
            Method::POST,
            &format!("{}/deploymentBase/{action}/feedback", f.ddi("default", "dev-0")),
            &f.tokens[0],
            Some(fb),
        )
        .await;
    assert_eq!(s, 404);
    let e = f.api.get("/api/v1/devices/dev-1/executions").await;
    assert_eq!(e.ok()["items"][0]["state"], "notified", "nothing changed");
    let (s, _, _) = f
        .device_call(
            Method::GET,
            &format!("{}/deploymentBase/notanumber", f.ddi("default", "dev-1")),
            &f.tokens[1],
            None,
        )
        .await;
    assert_eq!(s, 404);
}

async fn feedback_rules(b: Backend) {
    let f = fleet(b, 1, false).await;
    let poll = f.poll(0).await;
    assert!(
        poll["_links"]["configData"]["href"].as_str().unwrap().ends_with("/default/controller/v1/dev-0/configData")
    );
    assert!(poll["_links"].get("installedBase").is_none());
    let href = poll["_links"]["deploymentBase"]["href"].as_str().unwrap();
    assert!(
        href.starts_with(&format!("http://{}/default/controller/v1/dev-0/deploymentBase/", f.api.server.addr))
            && href.contains("?c="),
        "{href}"
    );
    let (s, _, body) = f.device_call(Method::GET, &format!("{href}&actionHistory=-1"), &f.tokens[0], None).await;
    assert_eq!(s, 200);
    let d: Value = serde_json::from_slice(&body).unwrap();
    assert!(d["id"].is_string(), "the action id is a string");
    assert_eq!(
        (d["deployment"]["download"].as_str(), d["deployment"]["update"].as_str()),
        (Some("forced"), Some("forced"))
    );
    let art = &d["deployment"]["chunks"][0]["artifacts"][0];
    assert_eq!(art["size"], f.image.len() as u64);
    assert_eq!(art["hashes"]["sha256"], sha256(&f.image));
    assert!(art["hashes"]["sha1"].is_string() && art["hashes"]["md5"].is_string());
    assert!(art["_links"]["download-http"]["href"].as_str().unwrap().ends_with("/artifacts/app.bin"));
    assert!(art["_links"]["md5sum-http"]["href"].as_str().unwrap().ends_with("/artifacts/app.bin.MD5SUM"));
    assert_eq!(d["actionHistory"]["status"], "RUNNING");
    assert_eq!(d["actionHistory"]["messages"].as_array().unwrap().len(), 2, "created and released");
    let action = d["id"].as_str().unwrap().to_owned();
    let feedback = format!("{}/deploymentBase/{action}/feedback", f.ddi("default", "dev-0"));

    // Malformed and incomplete feedback: 400, nothing changes.
    let r = f
        .api
        .http
        .post(&feedback)
        .header("authorization", format!("TargetToken {}", f.tokens[0]))
        .header("content-type", "application/json")
        .body("{\"status\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["errorCode"].as_str().unwrap().starts_with("hawkbit.server.error"));
    for bad in [
        json!({"status": {"execution": "closed"}}),
        json!({"status": {"execution": "exploded", "result": {"finished": "none"}}}),
        json!({}),
    ] {
        let (s, _, _) = f.device_call(Method::POST, &feedback, &f.tokens[0], Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}");
    }
    let r = f
        .api
        .http
        .post(&feedback)
        .header("authorization", format!("TargetToken {}", f.tokens[0]))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(execution_state(&f, "dev-0").await, "notified", "bad feedback changed nothing");

    // Old clients' fields (numeric id, time) are ignored; progress is kept.
    let swupdate = json!({"id": 7, "time": "20260101T101010", "status": {"execution": "proceeding", "result": {"finished": "none", "progress": {"cnt": 2, "of": 5}}, "details": ["step 2"]}});
    assert_eq!(f.device_call(Method::POST, &feedback, &f.tokens[0], Some(swupdate)).await.0, 200);
    let e = f.api.get("/api/v1/devices/dev-0/executions").await;
    assert_eq!(
        (e.ok()["items"][0]["state"].as_str(), e.ok()["items"][0]["progress"]["cnt"].as_u64()),
        (Some("downloading"), Some(2))
    );
    let downloaded = json!({"status": {"execution": "downloaded", "result": {"finished": "none"}}});
    assert_eq!(f.device_call(Method::POST, &feedback, &f.tokens[0], Some(downloaded)).await.0, 200);
    let failed = json!({"timestamp": 1, "status": {"execution": "closed", "result": {"finished": "failure"}, "code": 17, "details": ["bad signature"]}});
    assert_eq!(f.device_call(Method::POST, &feedback, &f.tokens[0], Some(failed)).await.0, 200);
    assert_eq!(execution_state(&f, "dev-0").await, "failed");
    // Feedback after the end: 410, and nothing changes.
    let late = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let (s, _, body) = f.device_call(Method::POST, &feedback, &f.tokens[0], Some(late)).await;
    assert_eq!(s, 410, "{}", String::from_utf8_lossy(&body));
    assert_eq!(execution_state(&f, "dev-0").await, "failed");
    let device = f.api.get("/api/v1/devices/dev-0").await;
    assert_eq!(device.ok()["firmware"]["host"], "1.0.0", "a failure installs nothing");
    let e = f.api.get("/api/v1/devices/dev-0/executions").await;
    let last = e.ok()["items"][0]["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["report"].as_str(), last["code"].as_i64(), last["details"][0].as_str()),
        (Some("closed/failure"), Some(17), Some("bad signature"))
    );

    // configData validation.
    let config = format!("{}/configData", f.ddi("default", "dev-0"));
    let (s, _, _) = f.device_call(Method::PUT, &config, &f.tokens[0], Some(json!({"data": {}}))).await;
    assert_eq!(s, 400);
    let (s, _, _) =
        f.device_call(Method::PUT, &config, &f.tokens[0], Some(json!({"data": {"k": "x".repeat(200)}}))).await;
    assert_eq!(s, 400);
    let (s, _, _) = f
        .device_call(
            Method::PUT,
            &config,
            &f.tokens[0],
            Some(json!({"status": {}, "mode": "merge", "data": {"fw.host": "1.0.1", "serial": "S1"}})),
        )
        .await;
    assert_eq!(s, 200);
    let d = f.api.get("/api/v1/devices/dev-0").await;
    assert_eq!(
        (d.ok()["firmware"]["host"].as_str(), d.ok()["properties"]["serial"].as_str()),
        (Some("1.0.1"), Some("S1"))
    );
    assert!(f.poll(0).await["_links"].get("configData").is_none(), "attributes received: no more request");
    // ETag on the poll.
    let (s, h, _) = f.device_call(Method::GET, &f.ddi("default", "dev-0"), &f.tokens[0], None).await;
    assert_eq!(s, 200);
    let etag = h["etag"].to_str().unwrap().to_owned();
    let r = f
        .api
        .http
        .get(f.ddi("default", "dev-0"))
        .header("authorization", format!("TargetToken {}", f.tokens[0]))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
}

async fn artifact_downloads_and_ranges(b: Backend) {
    let f = fleet(b, 2, false).await;
    let url = f.artifact_url(0).await;
    let len = f.image.len();
    let get = |range: Option<&'static str>, extra: Option<(&'static str, String)>| {
        let mut r = f.api.http.get(&url).header("authorization", format!("TargetToken {}", f.tokens[0]));
        if let Some(range) = range {
            r = r.header("range", range);
        }
        if let Some((k, v)) = extra {
            r = r.header(k, v);
        }
        r.send()
    };
    let full = get(None, None).await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.headers()["content-length"], len.to_string().as_str());
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    assert!(full.headers().contains_key("last-modified"));
    assert_eq!(sha256(&full.bytes().await.unwrap()), sha256(&f.image));

    let part = get(Some("bytes=100-199"), None).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 100-199/{len}").as_str());
    assert_eq!(part.bytes().await.unwrap().as_ref(), &f.image[100..200]);
    let resume = get(Some("bytes=1000000-"), None).await.unwrap();
    assert_eq!(resume.status(), 206);
    assert_eq!(resume.bytes().await.unwrap().as_ref(), &f.image[1_000_000..]);
    let suffix = get(Some("bytes=-10"), None).await.unwrap();
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), &f.image[len - 10..]);
    let multi = get(Some("bytes=0-9,20-29"), None).await.unwrap();
    assert_eq!(multi.status(), 206);
    let ct = multi.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let declared: usize = multi.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let body = multi.bytes().await.unwrap();
    assert_eq!(body.len(), declared);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(&format!("Content-Range: bytes 0-9/{len}"))
            && text.contains(&format!("Content-Range: bytes 20-29/{len}"))
    );
    for bad in ["bytes=5000000-", "bytes=9-1", "bytes=5000000-,-0"] {
        let r = get(Some(bad), None).await.unwrap();
        assert_eq!(r.status(), 416, "{bad}");
        assert_eq!(r.headers()["content-range"], format!("bytes */{len}").as_str());
    }
    let if_range_ok = get(Some("bytes=0-0"), Some(("if-range", etag.clone()))).await.unwrap();
    assert_eq!(if_range_ok.status(), 206);
    let if_range_stale = get(Some("bytes=0-0"), Some(("if-range", "\"other\"".into()))).await.unwrap();
    assert_eq!(if_range_stale.status(), 200, "a stale If-Range gets the whole file");
    let head =
        f.api.http.head(&url).header("authorization", format!("TargetToken {}", f.tokens[0])).send().await.unwrap();
    assert_eq!(
        (head.status().as_u16(), head.headers()["content-length"].to_str().unwrap()),
        (200, len.to_string().as_str())
    );
    let md5 = f
        .api
        .http
        .get(format!("{url}.MD5SUM"))
        .header("authorization", format!("TargetToken {}", f.tokens[0]))
        .send()
        .await
        .unwrap();
    let md5 = md5.text().await.unwrap();
    assert!(md5.ends_with("  app.bin") && md5.len() == 32 + 2 + 7, "{md5}");

    // Downloads write nothing: the execution is as the deployment fetch left it.
    let e = f.api.get("/api/v1/devices/dev-0/executions").await;
    assert_eq!(e.ok()["items"][0]["history"].as_array().unwrap().len(), 2);
    // The other device's token cannot use this device's URL; a module the device has no job for is 404.
    let r = f.api.http.get(&url).header("authorization", format!("TargetToken {}", f.tokens[1])).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let other = url.replace(&f.firmware, "fw_nope");
    let r =
        f.api.http.get(&other).header("authorization", format!("TargetToken {}", f.tokens[0])).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let list = f
        .api
        .http
        .get(url.rsplit_once('/').unwrap().0)
        .header("authorization", format!("TargetToken {}", f.tokens[0]))
        .send()
        .await
        .unwrap();
    let list: Value = list.json().await.unwrap();
    assert_eq!(list[0]["filename"], "app.bin");
}

/// The stored files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

/// A replica whose blob storage lacks an image (or holds it cut short) says so
/// with 503 in the API's error shape before any byte, never with a truncated
/// body a device would keep retrying; each failure is logged and counted.
async fn unreadable_artifacts_answer_503_before_any_byte(b: Backend) {
    let f = fleet(b, 1, false).await;
    let url = f.artifact_url(0).await;
    let blobs = files_under(&f.api.server.data_dir().join("firmware"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let get = |range: Option<&'static str>| {
        let mut r = f.api.http.get(&url).header("authorization", format!("TargetToken {}", f.tokens[0]));
        if let Some(range) = range {
            r = r.header("range", range);
        }
        r.send()
    };
    let api_download = format!("/api/v1/firmware/{}/files/app.bin", f.firmware);
    // Cut short, then gone.
    std::fs::write(&blobs[0], &f.image[..1000]).unwrap();
    for round in ["cut short", "missing"] {
        for range in [None, Some("bytes=0-9"), Some("bytes=500-1999999"), Some("bytes=0-1,10-19")] {
            let r = get(range).await.unwrap();
            assert_eq!(r.status(), 503, "{round} {range:?}");
            assert!(r.headers().get("content-range").is_none());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["errorCode"], "hawkbit.server.error.unavailable", "{round}: {body}");
        }
        f.api.get(&api_download).await.expect(503, Some("blob_unavailable"));
        std::fs::remove_file(&blobs[0]).ok();
    }
    let metrics = f.api.http.get(f.api.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("updraft_blob_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no blob failure counter in {metrics}"));
    assert!(failures >= 10.0, "{failures}");
    // Back in place, it downloads whole again.
    std::fs::write(&blobs[0], &f.image).unwrap();
    let full = get(None).await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(sha256(&full.bytes().await.unwrap()), sha256(&f.image));
}

async fn cancel_and_confirmation(b: Backend) {
    let f = fleet(b, 3, true).await;
    // Awaiting consent: the device is asked to confirm, not to deploy.
    let poll = f.poll(0).await;
    assert!(poll["_links"].get("deploymentBase").is_none());
    let confirm = poll["_links"]["confirmationBase"]["href"].as_str().unwrap().to_owned();
    let (s, _, body) = f.device_call(Method::GET, &confirm, &f.tokens[0], None).await;
    assert_eq!(s, 200);
    let c: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(c["confirmation"]["chunks"][0]["part"], "host");
    let action = c["id"].as_str().unwrap().to_owned();
    let (s, _, _) = f
        .device_call(Method::GET, &format!("{}/deploymentBase/{action}", f.ddi("default", "dev-0")), &f.tokens[0], None)
        .await;
    assert_eq!(s, 404, "no deployment before consent");
    let base = f
        .device_call(Method::GET, &format!("{}/confirmationBase", f.ddi("default", "dev-0")), &f.tokens[0], None)
        .await;
    let base: Value = serde_json::from_slice(&base.2).unwrap();
    assert_eq!(base["autoConfirm"]["active"], false);
    let fb = format!("{}/confirmationBase/{action}/feedback", f.ddi("default", "dev-0"));
    assert_eq!(
        f.device_call(Method::POST, &fb, &f.tokens[0], Some(json!({"confirmation": "confirmed", "code": 0}))).await.0,
        200
    );
    f.api.server.tick_scheduler().await;
    assert!(
        f.poll(0).await["_links"]["deploymentBase"].is_object(),
        "confirmed and released: the deployment is offered"
    );
    assert_eq!(
        f.device_call(Method::POST, &fb, &f.tokens[0], Some(json!({"confirmation": "denied"}))).await.0,
        404,
        "no longer awaiting"
    );
    // The device's user decided: the audit log keeps it (what devices report otherwise is not in it).
    let audit = f.api.get("/api/v1/audit?kind=consent.decided").await.ok().clone();
    let decided = &audit["items"][0];
    assert_eq!(
        (decided["actor"].as_str(), decided["subject"].as_str()),
        (Some("device:dev-0"), Some("rollout")),
        "{audit}"
    );
    assert_eq!(decided["change"]["approved"], true);

    // Consent through the management API: a key with only the consent role can do it, and nothing else.
    let consent_key = f.api.key("consent").await;
    let app = f.api.as_key(&consent_key);
    app.post("/api/v1/devices/dev-1/executions/rollout/consent", json!({"decision": "deny"})).await.expect(200, None);
    app.post("/api/v1/devices/dev-1/executions/rollout/consent", json!({"decision": "approve"}))
        .await
        .expect(409, Some("in_use"));
    app.post("/api/v1/devices/dev-2/executions/rollout/consent", json!({"decision": "maybe"}))
        .await
        .expect(400, Some("validation_failed"));
    app.get("/api/v1/devices").await.expect(403, Some("forbidden"));
    assert_eq!(f.api.get("/api/v1/devices/dev-1/executions").await.ok()["items"][0]["state"], "rejected");

    // Cancel: dev-0 is working on it (asked to stop), dev-2 still awaits consent (ends at once).
    let (_, _, body) = f
        .device_call(
            Method::GET,
            f.poll(0).await["_links"]["deploymentBase"]["href"].as_str().unwrap(),
            &f.tokens[0],
            None,
        )
        .await;
    let _: Value = serde_json::from_slice(&body).unwrap();
    let job = f.api.post("/api/v1/jobs/rollout/cancel", json!({})).await;
    assert_eq!(job.ok()["state"], "canceled");
    f.api.post("/api/v1/jobs/rollout/cancel", json!({})).await.expect(409, Some("job_state"));
    assert_eq!(f.api.get("/api/v1/devices/dev-2/executions").await.ok()["items"][0]["state"], "canceled");
    let poll = f.poll(0).await;
    let cancel = poll["_links"]["cancelAction"]["href"].as_str().expect("the device is asked to cancel").to_owned();
    assert!(poll["_links"].get("deploymentBase").is_none());
    let (s, _, body) = f.device_call(Method::GET, &cancel, &f.tokens[0], None).await;
    assert_eq!(s, 200);
    let c: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(c["cancelAction"]["stopId"], action);
    let fb = format!("{}/cancelAction/{action}/feedback", f.ddi("default", "dev-0"));
    assert_eq!(
        f.device_call(
            Method::POST,
            &fb,
            &f.tokens[0],
            Some(json!({"status": {"execution": "proceeding", "result": {"finished": "none"}}}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        f.device_call(
            Method::POST,
            &fb,
            &f.tokens[0],
            Some(json!({"status": {"execution": "closed", "result": {"finished": "success"}}}))
        )
        .await
        .0,
        200
    );
    assert_eq!(f.api.get("/api/v1/devices/dev-0/executions").await.ok()["items"][0]["state"], "canceled");
    assert_eq!(
        f.device_call(
            Method::POST,
            &fb,
            &f.tokens[0],
            Some(json!({"status": {"execution": "closed", "result": {"finished": "success"}}}))
        )
        .await
        .0,
        410
    );
    let poll = f.poll(0).await;
    assert!(poll["_links"].get("cancelAction").is_none() && poll["_links"].get("deploymentBase").is_none());
}

async fn gateway_tokens_and_presence(b: Backend) {
    let f = fleet(b, 2, false).await;
    let gw = f.api.post("/api/v1/gateway-tokens", json!({"name": "edge-1"})).await;
    let token = gw.expect(201, None)["token"].as_str().unwrap().to_owned();
    let operator = f.api.key("operator").await;
    f.api.as_key(&operator).post("/api/v1/gateway-tokens", json!({})).await.expect(403, Some("forbidden"));
    for dev in ["dev-0", "dev-1"] {
        let r = f
            .api
            .http
            .get(f.ddi("default", dev))
            .header("authorization", format!("GatewayToken {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a gateway speaks for any device of its tenant");
    }
    let r = f
        .api
        .http
        .get(f.ddi("default", "ghost"))
        .header("authorization", format!("GatewayToken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let created = f.api.post("/api/v1/tenants", json!({"name": "globex"})).await;
    let globex = created.expect(201, None)["token"].as_str().unwrap().to_owned();
    let other_gw = f.api.as_key(&globex).post("/api/v1/gateway-tokens", json!({})).await;
    let other_gw = other_gw.expect(201, None)["token"].as_str().unwrap().to_owned();
    let r = f
        .api
        .http
        .get(f.ddi("default", "dev-0"))
        .header("authorization", format!("GatewayToken {other_gw}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "another tenant's gateway sees nothing here");
    let id = f.api.get("/api/v1/gateway-tokens").await.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    f.api.delete(&format!("/api/v1/gateway-tokens/{id}")).await.expect(204, None);
    let r = f
        .api
        .http
        .get(f.ddi("default", "dev-0"))
        .header("authorization", format!("GatewayToken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Polls are noted in memory; the presence worker writes them.
    let before = f.api.get("/api/v1/devices/dev-1").await.ok().clone();
    assert_eq!(before["connection_status"], "offline");
    let mut probe = WriteProbe::open(&f.api.server).await;
    let written = probe.marker().await;
    for _ in 0..3 {
        f.poll(1).await;
    }
    assert_eq!(probe.marker().await, written, "a poll writes nothing to the database");
    let still = f.api.get("/api/v1/devices/dev-1").await.ok().clone();
    assert_eq!(still, before, "a poll changes nothing of the device by itself");
    let state = &f.api.server.state;
    let now = jiff::Timestamp::now();
    updraft_app::workers::Worker::Presence.tick(state, now).await.unwrap();
    assert_ne!(probe.marker().await, written, "the presence worker writes the sightings (the probe sees writes)");
    let after = f.api.get("/api/v1/devices/dev-1").await.ok().clone();
    assert_eq!(after["connection_status"], "online");
    assert!(after["last_seen_at"].is_string());
    let later = now + jiff::SignedDuration::from_secs(state.settings.offline_after_secs as i64 + 1);
    updraft_app::workers::Worker::Presence.tick(state, later).await.unwrap();
    assert_eq!(
        f.api.get("/api/v1/devices/dev-1").await.ok()["connection_status"],
        "offline",
        "silent devices go offline"
    );
}

async fn execution_state(f: &Fleet, device: &str) -> String {
    let r = f.api.get(&format!("/api/v1/devices/{device}/executions")).await;
    r.ok()["items"][0]["state"].as_str().unwrap().to_owned()
}

async fn poll_etag_changes_when_work_appears(b: Backend) {
    let f = fleet(b, 2, false).await;
    // dev-1 finishes the fleet's job, so it has nothing to do.
    f.api.post("/api/v1/jobs/rollout/cancel", json!({})).await.ok();
    let idle = f.api.post("/api/v1/devices", json!({"id": "idle", "product": "thermo"})).await;
    let token = idle.expect(201, None)["token"].as_str().unwrap().to_owned();
    let url = f.ddi("default", "idle");
    let (s, h, body) = f.device_call(Method::GET, &url, &token, None).await;
    assert_eq!(s, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["_links"].get("deploymentBase").is_none(), "{body}");
    let etag = h["etag"].to_str().unwrap().to_owned();
    let conditional = || {
        f.api
            .http
            .get(&url)
            .header("authorization", format!("TargetToken {token}"))
            .header("if-none-match", &etag)
            .send()
    };
    assert_eq!(conditional().await.unwrap().status(), 304, "nothing changed: not modified");

    f.api
        .post("/api/v1/jobs", json!({"id": "second", "firmware": f.firmware, "devices": ["idle"]}))
        .await
        .expect(201, None);
    f.api.server.tick_scheduler().await;
    let r = conditional().await.unwrap();
    assert_eq!(r.status(), 200, "work appeared: the old ETag no longer matches");
    let new_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let body: Value = r.json().await.unwrap();
    assert!(body["_links"]["deploymentBase"]["href"].is_string(), "{body}");
}

/// A gauge of the server's `/metrics`, when set.
async fn gauge(api: &Api, name: &str) -> Option<f64> {
    let text = api.http.get(api.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// What a poll answers: status and body.
async fn poll_as(f: &Fleet, device: &str, token: &str) -> (StatusCode, Value) {
    let (s, _, b) = f.device_call(Method::GET, &f.ddi("default", device), token, None).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn a_restarted_server_fills_its_poll_cache_from_the_store(b: Backend) {
    let mut f = fleet(b, 3, false).await;
    // dev-0 installs the job's image; dev-1 keeps it offered; dev-2's token is replaced;
    // `idle` was never in a job.
    let href = f.poll(0).await["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
    let action = href.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let fb = json!({"status": {"execution": "closed", "result": {"finished": "success"}}});
    let feedback = format!("{}/deploymentBase/{action}/feedback", f.ddi("default", "dev-0"));
    let (s, _, _) = f.device_call(Method::POST, &feedback, &f.tokens[0], Some(fb)).await;
    assert_eq!(s, 200);
    let old_token = f.tokens[2].clone();
    let new_token =
        f.api.post("/api/v1/devices/dev-2/token", json!({})).await.ok()["token"].as_str().unwrap().to_owned();
    let idle = f.api.post("/api/v1/devices", json!({"id": "idle", "product": "thermo"})).await;
    let idle_token = idle.expect(201, None)["token"].as_str().unwrap().to_owned();
    let before = [
        poll_as(&f, "dev-0", &f.tokens[0]).await,
        poll_as(&f, "dev-1", &f.tokens[1]).await,
        poll_as(&f, "idle", &idle_token).await,
    ];
    assert!(
        before[0].1["_links"]["installedBase"]["href"].as_str().unwrap().ends_with(&format!("/installedBase/{action}"))
    );
    assert!(before[0].1["_links"]["configData"].is_object(), "an install asks for attributes: {}", before[0].1);
    assert!(before[1].1["_links"]["deploymentBase"].is_object());

    let settings = f.api.server.settings.clone();
    let old_base = f.api.server.url("");
    let dir = f.api.server.stop().await;
    f.api = Api::on(TestServer::start_settings(settings).await);
    for _ in 0..500 {
        if gauge(&f.api, "updraft_poll_cache_filled_devices").await == Some(4.0)
            && gauge(&f.api, "updraft_poll_cache_fill_seconds").await.is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(gauge(&f.api, "updraft_poll_cache_filled_devices").await, Some(4.0), "every device read at start");
    // The polls answer as before the restart, from the filled cache or (dev-1, offered work) the store.
    let after = [
        poll_as(&f, "dev-0", &f.tokens[0]).await,
        poll_as(&f, "dev-1", &f.tokens[1]).await,
        poll_as(&f, "idle", &idle_token).await,
    ];
    for ((device, before), after) in ["dev-0", "dev-1", "idle"].iter().zip(&before).zip(&after) {
        // The same links, on the new server's address.
        let before = (before.0, before.1.to_string().replace(&old_base, &f.api.server.url("")));
        assert_eq!(before, (after.0, after.1.to_string()), "{device}'s answer after the restart");
    }
    assert_eq!(poll_as(&f, "dev-2", &old_token).await.0, 401, "a replaced token stays refused");
    assert_eq!(poll_as(&f, "dev-2", &new_token).await.0, 200);
    // What changes after the fill reaches the polls at once.
    f.api
        .post("/api/v1/jobs", json!({"id": "second", "firmware": f.firmware, "devices": ["idle"]}))
        .await
        .expect(201, None);
    f.api.server.tick_scheduler().await;
    assert!(poll_as(&f, "idle", &idle_token).await.1["_links"]["deploymentBase"].is_object(), "new work is seen");
    drop(dir);
}
