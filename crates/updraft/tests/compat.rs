//! The seeds' own front doors (docs/compat.md) over real HTTP: each seed's
//! sample request sent verbatim creates the native job it describes (read back
//! through `GET /api/v1/jobs/{id}`), a device then gets it, and every error
//! the seed lists is answered in the platform's shape.

mod common;

use common::{Api, Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(enos_sample_creates_the_job_a_device_gets, enos_errors_in_its_shape);

/// Seed 001's sample request, as the seed prints it.
const ENOS_SAMPLE_URL: &str =
    "/compat/enos/connect-service/v2.1/ota-jobs?action=create&orgId=yourOrgId&firmwareId=yourFirmwareId";
const ENOS_SAMPLE_BODY: &str = r#"{
    "name":{
        "defaultValue":"ota-job-test",
        "i18nValue":{

        }
    },
    "type":"upgrade",
    "upgradePolicy":"snapshot",
    "upgradeScope":{
        "type":"partial",
        "versionNumbers":[
            "1.0"
        ],
        "deviceKeys":[
            "deviceKey1",
            "deviceKey2"
        ]
    },
    "startSchedule":0,
    "endSchedule":86399,
    "enableUpgradeRequest":true
}"#;

/// A server with tenant `yourOrgId` (the seeds' sample names), product
/// `thermo` (free-form versions), firmware `yourFirmwareId` (host 2.0) and
/// devices `deviceKey1`–`deviceKey3` on host 1.0: the API as that tenant's
/// admin, and the devices' tokens.
async fn org(b: Backend) -> (Api, Vec<String>) {
    let mut api = Api::on(TestServer::start(b).await);
    let created = api.post("/api/v1/tenants", json!({"name": "yourOrgId"})).await;
    api.token = created.expect(201, None)["token"].as_str().unwrap().to_owned();
    api.post("/api/v1/products", json!({"key": "thermo", "version_scheme": "free"})).await.expect(201, None);
    upload(&api, "yourFirmwareId", "2.0", false).await;
    let mut tokens = Vec::new();
    for d in ["deviceKey1", "deviceKey2", "deviceKey3"] {
        let r = api.post("/api/v1/devices", json!({"id": d, "product": "thermo", "firmware": {"host": "1.0"}})).await;
        tokens.push(r.expect(201, None)["token"].as_str().unwrap().to_owned());
    }
    (api, tokens)
}

async fn upload(api: &Api, id: &str, version: &str, needs_verification: bool) {
    let form = reqwest::multipart::Form::new()
        .text("id", id.to_owned())
        .text("product", "thermo")
        .text("version", version.to_owned())
        .text("needs_verification", needs_verification.to_string())
        .text("files", json!([{"name": "app.bin", "component": "host", "version": version}]).to_string())
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 1024]).file_name("app.bin"));
    api.multipart("/api/v1/firmware", form).await.expect(201, None);
}

/// The deployment a device is offered on its next poll, if any.
async fn offered(api: &Api, tenant: &str, device: &str, token: &str) -> Option<String> {
    let url = api.server.url(&format!("/{tenant}/controller/v1/{device}"));
    let r = api.http.get(url).header("authorization", format!("TargetToken {token}")).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    v["_links"]["deploymentBase"]["href"].as_str().map(str::to_owned)
}

async fn enos(api: &Api, query: &str, body: &str) -> common::Answer {
    api.raw(
        Method::POST,
        &format!("/compat/enos/connect-service/v2.1/ota-jobs?{query}"),
        "application/json",
        body.to_owned(),
    )
    .await
}

#[track_caller]
fn enos_error(a: &common::Answer, status: u16, code: u64, msg: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.body["code"], code, "{}", a.body);
    assert!(a.body["msg"].as_str().unwrap().contains(msg), "{}", a.body);
    assert!(a.body["requestId"].as_str().is_some_and(|r| !r.is_empty()), "{}", a.body);
    assert_eq!(a.body["data"], Value::Null);
}

async fn enos_sample_creates_the_job_a_device_gets(b: Backend) {
    let (api, tokens) = org(b).await;
    let created = api.raw(Method::POST, ENOS_SAMPLE_URL, "application/json", ENOS_SAMPLE_BODY).await;
    let body = created.ok();
    assert_eq!((body["code"].as_u64(), body["msg"].as_str()), (Some(0), Some("OK")), "{body}");
    assert_eq!(body["requestId"], created.headers["x-request-id"].to_str().unwrap());
    let id = body["data"]["jobId"].as_str().unwrap().to_owned();

    let job = api.get(&format!("/api/v1/jobs/{id}")).await;
    let job = job.ok();
    assert_eq!(job["name"], "ota-job-test");
    assert_eq!(job["translations"], json!({}));
    assert_eq!(job["kind"], "upgrade");
    assert_eq!(job["firmware"], "yourFirmwareId");
    assert_eq!(job["product"], "thermo");
    assert_eq!(job["all"], false);
    assert_eq!(job["devices"], json!(["deviceKey1", "deviceKey2"]));
    assert_eq!(job["source_versions"], json!(["1.0"]));
    assert_eq!(job["recurrence"], "snapshot");
    assert_eq!(job["push"], true);
    assert_eq!(job["allow_device_request"], true, "enableUpgradeRequest");
    assert_eq!(job["timeout_seconds"], 7200, "upgradeTimeout's default");
    assert_eq!(job["max_concurrency"], 300, "maximumConcurrency's default");
    assert_eq!(job["retry"], json!({"count": 0, "interval_minutes": 0}), "no retry by default");
    assert_eq!(job["schedule"]["window"], json!({"from": "00:00", "to": "00:00"}), "0–86399: the whole day");
    assert_eq!(job["schedule"]["timezone"], "UTC");
    assert_eq!(job["state"], "created", "an EnOS job waits for action=start");

    let start = enos(&api, &format!("action=start&orgId=yourOrgId&jobId={id}"), "").await;
    assert_eq!(start.ok()["code"], 0, "{}", start.body);
    assert_eq!(api.get(&format!("/api/v1/jobs/{id}")).await.ok()["state"], "running");
    api.server.tick_scheduler().await;
    assert!(offered(&api, "yourorgid", "deviceKey1", &tokens[0]).await.is_some(), "a named device gets it");
    assert!(offered(&api, "yourorgid", "deviceKey2", &tokens[1]).await.is_some());
    assert!(offered(&api, "yourorgid", "deviceKey3", &tokens[2]).await.is_none(), "not named");

    let got = enos(&api, &format!("action=get&orgId=yourOrgId&jobId={id}"), "").await;
    let data = &got.ok()["data"];
    assert_eq!(data["jobId"], id.as_str());
    assert_eq!(data["name"], json!({"defaultValue": "ota-job-test", "i18nValue": {}}));
    assert_eq!(data["type"], "upgrade");
    assert_eq!(data["firmwareId"], "yourFirmwareId");
    assert_eq!(
        data["upgradeScope"],
        json!({"type": "partial", "versionNumbers": ["1.0"], "deviceKeys": ["deviceKey1", "deviceKey2"]})
    );
    assert_eq!(data["upgradePolicy"], "snapshot");
    assert_eq!(data["enableUpgradeRequest"], true);
    assert_eq!(data["upgradeTimeout"], 7200);
    assert_eq!(data["maximumConcurrency"], 300);
    assert_eq!(data["schedulePolicy"]["startSchedule"], 0);
    assert_eq!(data["schedulePolicy"]["endSchedule"], 86399, "read back as it was given");
    assert_eq!(data["status"], "running");
    assert_eq!(data["statistics"]["notified"], 2);

    let stop = enos(&api, &format!("action=stop&orgId=yourOrgId&jobId={id}"), "").await;
    assert_eq!(stop.ok()["code"], 0);
    assert_eq!(api.get(&format!("/api/v1/jobs/{id}")).await.ok()["state"], "canceled");

    // Every field of the body, to a total scope with its own policies.
    let full = json!({
        "name": {"defaultValue": "all of them", "i18nValue": {"zh_CN": "全部", "en_US": "all of them"}},
        "type": "upgrade",
        "upgradeScope": {"type": "total"},
        "upgradePolicy": "incremental",
        "enableUpgradeRequest": false,
        "upgradeTimeout": 300,
        "retryPolicy": {"retryTimes": 2, "retryInterval": 10},
        "schedulePolicy": {"startTime": 1_893_456_000_000_i64, "endTime": 1_893_542_400_000_i64,
            "startSchedule": 3600, "endSchedule": 7199, "timezone": "Asia/Shanghai"},
        "maximumConcurrency": 5
    });
    let created = enos(&api, "action=create&orgId=yourorgid&firmwareId=yourFirmwareId", &full.to_string()).await;
    let id = created.ok()["data"]["jobId"].as_str().unwrap().to_owned();
    let job = api.get(&format!("/api/v1/jobs/{id}")).await;
    let job = job.ok();
    assert_eq!(job["name"], "all of them");
    assert_eq!(job["translations"], json!({"zh_CN": "全部", "en_US": "all of them"}));
    assert_eq!((job["all"].as_bool(), job["devices"].clone()), (Some(true), json!([])));
    assert_eq!(job["recurrence"], "continuous", "incremental");
    assert_eq!(job["allow_device_request"], false);
    assert_eq!(job["timeout_seconds"], 300);
    assert_eq!(job["retry"], json!({"count": 2, "interval_minutes": 10}));
    assert_eq!(job["max_concurrency"], 5);
    let s = &job["schedule"];
    assert_eq!((s["start"].as_str(), s["end"].as_str()), (Some("2030-01-01T00:00:00Z"), Some("2030-01-02T00:00:00Z")));
    assert_eq!(
        (s["timezone"].as_str(), s["window"].clone()),
        (Some("Asia/Shanghai"), json!({"from": "01:00", "to": "02:00"}))
    );

    // A verification task on named devices.
    let verify = json!({"type": "verify", "upgradeScope": {"type": "partial", "deviceKeys": ["deviceKey3"]}, "upgradeTimeout": 600});
    let created = enos(&api, "action=create&orgId=yourOrgId&firmwareId=yourFirmwareId", &verify.to_string()).await;
    let id = created.ok()["data"]["jobId"].as_str().unwrap().to_owned();
    let job = api.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!((job.ok()["kind"].as_str(), job.ok()["devices"].clone()), (Some("verify"), json!(["deviceKey3"])));
    assert_eq!(job.ok()["timeout_seconds"], 600);
}

async fn enos_errors_in_its_shape(b: Backend) {
    let (api, _) = org(b).await;
    let create = "action=create&orgId=yourOrgId&firmwareId=yourFirmwareId";
    let r = enos(&api, "action=create&orgId=yourOrgId&firmwareId=nope", ENOS_SAMPLE_BODY).await;
    enos_error(&r, 404, 24404, "Firmware not found");

    upload(&api, "unverified", "3.0", true).await;
    let r = enos(&api, "action=create&orgId=yourOrgId&firmwareId=unverified", ENOS_SAMPLE_BODY).await;
    enos_error(
        &r,
        409,
        24610,
        "Not allowed to create job as firmware is not verified while enable verification is switched on",
    );

    let total = json!({"type": "verify", "upgradeScope": {"type": "total"}});
    let r = enos(&api, create, &total.to_string()).await;
    enos_error(&r, 400, 24611, "upgradeScope type total is not allowed for verification task");

    let keys: Vec<String> = (0..51).map(|i| format!("d{i}")).collect();
    let many = json!({"type": "verify", "upgradeScope": {"type": "partial", "deviceKeys": keys}});
    let r = enos(&api, create, &many.to_string()).await;
    enos_error(&r, 400, 24612, "Exceeded max verification deviceKeys, max[50]");

    let r = enos(&api, "action=create&orgId=globex&firmwareId=yourFirmwareId", ENOS_SAMPLE_BODY).await;
    enos_error(&r, 403, 99403, "orgId `globex`");

    let bad = json!({"type": "upgrade", "upgradeScope": {"type": "some"}, "upgradeTimeout": 299, "retryPolicy": {"retryTimes": -1}});
    let r = enos(&api, create, &bad.to_string()).await;
    enos_error(&r, 400, 99400, "upgradeTimeout: 299");
    for part in
        ["upgradeScope.type", "upgradePolicy is required", "enableUpgradeRequest is required", "retryPolicy.retryTimes"]
    {
        assert!(r.body["msg"].as_str().unwrap().contains(part), "every broken rule: {part} in {}", r.body);
    }
    let r = enos(&api, create, r#"{"type": "upgrade", "colour": "red"}"#).await;
    enos_error(&r, 400, 99400, "colour");
    let r = enos(&api, create, "{").await;
    enos_error(&r, 400, 99400, "not valid JSON");
    let unknown_device = ENOS_SAMPLE_BODY.replace("deviceKey2", "deviceKey9");
    let r = enos(&api, create, &unknown_device).await;
    enos_error(&r, 404, 99404, "deviceKey9");

    let r = enos(&api, "action=get&orgId=yourOrgId&jobId=nope", "").await;
    enos_error(&r, 404, 24404, "Job not found");
    let r = enos(&api, "action=explode&orgId=yourOrgId", "").await;
    enos_error(&r, 400, 99400, "action `explode`");

    let created = enos(&api, create, ENOS_SAMPLE_BODY).await;
    let id = created.ok()["data"]["jobId"].as_str().unwrap().to_owned();
    enos(&api, &format!("action=start&orgId=yourOrgId&jobId={id}"), "").await.ok();
    let r = enos(&api, &format!("action=start&orgId=yourOrgId&jobId={id}"), "").await;
    enos_error(&r, 409, 24615, "Job has started");
    enos(&api, &format!("action=stop&orgId=yourOrgId&jobId={id}"), "").await.ok();
    let r = enos(&api, &format!("action=stop&orgId=yourOrgId&jobId={id}"), "").await;
    enos_error(&r, 409, 24616, "Job has stopped");

    let anonymous = api.as_key("").call(Method::POST, ENOS_SAMPLE_URL, Some(json!({}))).await;
    enos_error(&anonymous, 401, 99401, "API key");
    let viewer = api.key("viewer").await;
    let r = api.as_key(&viewer).call(Method::POST, ENOS_SAMPLE_URL, Some(json!({}))).await;
    enos_error(&r, 403, 99403, "viewer");
    let r = api
        .as_key(&viewer)
        .get(&format!("/compat/enos/connect-service/v2.1/ota-jobs?action=get&orgId=yourOrgId&jobId={id}"))
        .await;
    assert_eq!(r.ok()["data"]["status"], "canceled", "a viewer reads");
}
