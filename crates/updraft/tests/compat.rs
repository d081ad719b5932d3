//! The seeds' own front doors (docs/compat.md) over real HTTP: each seed's
//! sample request sent verbatim creates the native job it describes (read back
//! through `GET /api/v1/jobs/{id}`), a device then gets it, and every error
//! the seed lists is answered in the platform's shape.

mod common;

use common::{Api, Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(
    enos_sample_creates_the_job_a_device_gets,
    enos_errors_in_its_shape,
    aliyun_sample_creates_the_job_a_device_gets,
    aliyun_every_target_selection,
    aliyun_errors_and_signatures_in_its_shape,
    iotaap_group_ota_uploads_and_starts_the_job,
    iotaap_errors_in_its_shape,
    aws_create_ota_update_signed_with_sigv4,
    aws_errors_in_its_shape,
);

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
    org_on(TestServer::start(b).await).await
}

async fn org_on(server: TestServer) -> (Api, Vec<String>) {
    let mut api = Api::on(server);
    let created = api.post("/api/v1/tenants", json!({"name": "yourOrgId"})).await;
    api.token = created.expect(201, None)["token"].as_str().unwrap().to_owned();
    api.post("/api/v1/products", json!({"key": "thermo", "version_scheme": "free"})).await.expect(201, None);
    upload(&api, "yourFirmwareId", "thermo", "2.0", false).await;
    let mut tokens = Vec::new();
    for d in ["deviceKey1", "deviceKey2", "deviceKey3"] {
        let r = api.post("/api/v1/devices", json!({"id": d, "product": "thermo", "firmware": {"host": "1.0"}})).await;
        tokens.push(r.expect(201, None)["token"].as_str().unwrap().to_owned());
    }
    (api, tokens)
}

async fn upload(api: &Api, id: &str, product: &str, version: &str, needs_verification: bool) {
    let form = reqwest::multipart::Form::new()
        .text("id", id.to_owned())
        .text("product", product.to_owned())
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

    upload(&api, "unverified", "thermo", "3.0", true).await;
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
    let path = format!("/compat/enos/connect-service/v2.1/ota-jobs?action=get&orgId=yourOrgId&jobId={id}");
    let r = api.as_key(&viewer).call(Method::POST, &path, None).await;
    assert_eq!(r.ok()["data"]["status"], "canceled", "by POST too, as EnOS's SDK sends it");
}

/// Seed 003's sample request as the seed prints it, but for its masked values
/// (`****`, filled in) and its signature (made again with an access key updraft issued).
const ALIYUN_SAMPLE: &str = "Action=CreateOTAStaticUpgradeJob&SignatureNonce=9e6189124f5a4716ad2de849467b****\
    &AccessKeyId=xMr9wgwXQLhv5AUa65o0****&SignatureMethod=HMAC-SHA1&Timestamp=2024-11-19T09%3A47%3A43Z\
    &FirmwareId=167&ProductKey=k1nhvyl****&TargetSelection=ALL&RetryCount=1&RetryInterval=60\
    &TimeoutInMinutes=1440&SrcVersion.1=1.0&Signature=WJN0Ee8%2BX6pogcD3loLHIqQNEN0%3D";
const ALIYUN_PRODUCT: &str = "k1nhvyl0000";

/// The tenant of [`org`] on a clock at the sample's `Timestamp`, with product
/// `k1nhvyl0000` (firmware `167`, 2.0; devices `d-1` on 1.0 and `d-2` on 0.9),
/// group `g1` holding `d-1`, and an access key of an admin key: its id and secret.
struct Aliyun {
    api: Api,
    tokens: Vec<String>,
    id: String,
    secret: String,
}

async fn aliyun(b: Backend) -> Aliyun {
    let (server, clock) = TestServer::start_clocked(b, |_| {}).await;
    clock.set("2024-11-19T09:50:00Z".parse().unwrap());
    let (api, _) = org_on(server).await;
    api.post("/api/v1/products", json!({"key": ALIYUN_PRODUCT, "version_scheme": "free"})).await.expect(201, None);
    upload(&api, "167", ALIYUN_PRODUCT, "2.0", false).await;
    let mut tokens = Vec::new();
    for (d, v) in [("d-1", "1.0"), ("d-2", "0.9")] {
        let r = api.post("/api/v1/devices", json!({"id": d, "product": ALIYUN_PRODUCT, "firmware": {"host": v}})).await;
        tokens.push(r.expect(201, None)["token"].as_str().unwrap().to_owned());
    }
    api.post("/api/v1/groups", json!({"id": "g1", "name": "G1"})).await.expect(201, None);
    api.post("/api/v1/groups/g1/members", json!({"add": ["d-1"]})).await.ok();
    let (id, secret) = access_key(&api, "admin").await;
    Aliyun { api, tokens, id, secret }
}

/// An access key bound to a new API key of `role`.
async fn access_key(api: &Api, role: &str) -> (String, String) {
    let made = api.post("/api/v1/keys", json!({"role": role})).await;
    let key = made.expect(201, None)["id"].as_str().unwrap().to_owned();
    let made = api.post("/api/v1/access-keys", json!({"key": key})).await;
    let body = made.expect(201, None);
    assert_eq!(body["key"], key.as_str());
    (body["id"].as_str().unwrap().to_owned(), body["secret"].as_str().unwrap().to_owned())
}

/// The query (or form) with `AccessKeyId` set to `id` and signed with `secret` for `method`.
fn signed(query: &str, method: &str, id: &str, secret: &str) -> String {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| match k.as_str() {
            "AccessKeyId" => (k, id.to_owned()),
            // A call of the tests' own takes a new nonce each time it is sent.
            "SignatureNonce" if v.starts_with("n-") => (k, fresh_nonce()),
            _ => (k, v),
        })
        .collect();
    if !params.iter().any(|(k, _)| k == "AccessKeyId") {
        params.push(("AccessKeyId".into(), id.to_owned()));
    }
    let signature = updraft_server::compat::aliyun::signature(method, &params, secret);
    params.push(("Signature".into(), signature));
    form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

fn fresh_nonce() -> String {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("n-{}", NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Common parameters of a call made now (the test's clock), as the SDKs send them (a new nonce
/// each time it is signed).
fn common(action: &str) -> String {
    let nonce = fresh_nonce();
    format!(
        "Action={action}&Format=JSON&Version=2018-01-20&RegionId=cn-shanghai&Timestamp=2024-11-19T09%3A50%3A00Z\
         &SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce={nonce}"
    )
}

impl Aliyun {
    async fn get(&self, query: &str) -> common::Answer {
        let q = signed(query, "GET", &self.id, &self.secret);
        self.api.as_key("").get(&format!("/compat/aliyun/?{q}")).await
    }

    /// A POST with the parameters form-encoded in the body.
    async fn post_form(&self, query: &str) -> common::Answer {
        let q = signed(query, "POST", &self.id, &self.secret);
        let r = self
            .api
            .http
            .post(self.api.server.url("/compat/aliyun/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(q)
            .send()
            .await
            .unwrap();
        common::answer(r).await
    }

    async fn create(&self, extra: &str) -> String {
        let q = format!("{}&FirmwareID=167&ProductKey={ALIYUN_PRODUCT}&{extra}", common("CreateOTAStaticUpgradeJob"));
        let r = self.get(&q).await;
        assert_eq!(r.body["Success"], true, "{}", r.body);
        r.body["Data"]["JobId"].as_str().unwrap().to_owned()
    }

    async fn job(&self, id: &str) -> Value {
        self.api.get(&format!("/api/v1/jobs/{id}")).await.ok().clone()
    }
}

#[track_caller]
fn rpc_error(a: &common::Answer, status: u16, code: &str, message: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.body["Code"], code, "{}", a.body);
    assert_eq!(a.body["Success"], false, "{}", a.body);
    assert!(a.body["ErrorMessage"].as_str().unwrap().contains(message), "{}", a.body);
    assert!(a.body["RequestId"].as_str().is_some_and(|r| !r.is_empty()), "{}", a.body);
}

async fn aliyun_sample_creates_the_job_a_device_gets(b: Backend) {
    let a = aliyun(b).await;
    let sample = ALIYUN_SAMPLE.replace("k1nhvyl****", ALIYUN_PRODUCT);
    let created = a.get(&sample).await;
    let body = created.ok();
    assert_eq!((body["Success"].as_bool(), body["Code"].as_str()), (Some(true), Some("")), "{body}");
    assert_eq!(body["RequestId"], created.headers["x-request-id"].to_str().unwrap());
    assert_eq!(body["Data"]["UtcCreate"], "2024-11-19T09:50:00.000Z");
    let id = body["Data"]["JobId"].as_str().unwrap().to_owned();

    let job = a.job(&id).await;
    assert_eq!(job["firmware"], "167");
    assert_eq!(job["product"], ALIYUN_PRODUCT);
    assert_eq!(job["kind"], "upgrade");
    assert_eq!(job["all"], true, "TargetSelection=ALL");
    assert_eq!(job["source_versions"], json!(["1.0"]), "SrcVersion.1");
    assert_eq!(job["retry"], json!({"count": 1, "interval_minutes": 60}));
    assert_eq!(job["timeout_seconds"], 86_400, "TimeoutInMinutes=1440");
    assert_eq!(
        (job["push"].as_bool(), job["allow_device_request"].as_bool()),
        (Some(true), Some(false)),
        "NeedPush's default"
    );
    assert_eq!(job["consent_required"], false, "NeedConfirm's default");
    assert_eq!(
        (job["gray_percent"].clone(), job["groups"].clone(), job["devices"].clone()),
        (Value::Null, json!([]), json!([]))
    );
    assert_eq!(job["state"], "running", "a static upgrade batch starts at once");
    a.api.server.tick_scheduler().await;
    assert!(offered(&a.api, "yourorgid", "d-1", &a.tokens[0]).await.is_some(), "on 1.0: it gets it");
    assert!(offered(&a.api, "yourorgid", "d-2", &a.tokens[1]).await.is_none(), "on 0.9: not a source version");

    let q = a.post_form(&format!("{}&JobId={id}", common("QueryOTAJob"))).await;
    let data = &q.ok()["Data"];
    assert_eq!(data["JobId"], id.as_str());
    assert_eq!(data["JobStatus"], "IN_PROGRESS");
    assert_eq!(data["TargetSelection"], "ALL");
    assert_eq!((data["FirmwareId"].as_str(), data["ProductKey"].as_str()), (Some("167"), Some(ALIYUN_PRODUCT)));
    assert_eq!(data["SrcVersions"], json!(["1.0"]));
    assert_eq!((data["RetryInterval"].as_u64(), data["RetryCount"].as_u64()), (Some(60), Some(1)));
    assert_eq!(data["TimeoutInMinutes"], 1440);

    let replayed = a.get(&sample).await;
    rpc_error(&replayed, 400, "SignatureNonceUsed", "used already");

    let canceled = a.get(&format!("{}&JobId={id}", common("CancelOTATaskByJob"))).await;
    assert_eq!(canceled.ok()["Success"], true);
    assert_eq!(a.job(&id).await["state"], "canceled");
    assert!(offered(&a.api, "yourorgid", "d-1", &a.tokens[0]).await.is_none(), "canceled: nothing offered");
}

async fn aliyun_every_target_selection(b: Backend) {
    let a = aliyun(b).await;
    let id = a.create("TargetSelection=Specific&TargetDeviceName.1=d-2&TargetDeviceName.2=d-1&NeedPush=False&NeedConfirm=True&DownloadProtocol=Https").await;
    let job = a.job(&id).await;
    assert_eq!(job["devices"], json!(["d-2", "d-1"]));
    assert_eq!(
        (job["all"].as_bool(), job["push"].as_bool(), job["allow_device_request"].as_bool()),
        (Some(false), Some(false), Some(true)),
        "NeedPush=False: devices ask"
    );
    assert_eq!(job["consent_required"], true, "NeedConfirm=True");
    assert_eq!(job["timeout_seconds"], Value::Null, "no TimeoutInMinutes: no limit");
    assert_eq!(job["retry"], json!({"count": 0, "interval_minutes": 0}), "no RetryInterval: no retry");
    a.api.post(&format!("/api/v1/jobs/{id}/cancel"), json!({})).await.ok();

    let id = a.create("TargetSelection=gray&GrayPercent=33").await;
    let job = a.job(&id).await;
    assert_eq!((job["all"].as_bool(), job["gray_percent"].as_u64()), (Some(true), Some(33)));
    // A third of two devices may be none, and the job then complete already.
    a.api.post(&format!("/api/v1/jobs/{id}/cancel"), json!({})).await;

    let id = a.create("TargetSelection=GROUP&GroupID=g1&RetryInterval=0&RetryCount=5&TimeoutInMinutes=1").await;
    let job = a.job(&id).await;
    assert_eq!((job["all"].as_bool(), job["groups"].clone()), (Some(false), json!(["g1"])));
    assert_eq!(job["retry"], json!({"count": 5, "interval_minutes": 0}));
    assert_eq!(job["timeout_seconds"], 60);
    a.api.server.tick_scheduler().await;
    assert!(offered(&a.api, "yourorgid", "d-1", &a.tokens[0]).await.is_some(), "the group's member gets it");
    let q = a.get(&format!("{}&JobId={id}", common("QueryOTAJob"))).await;
    assert_eq!(
        (q.ok()["Data"]["TargetSelection"].as_str(), q.ok()["Data"]["GroupId"].as_str()),
        (Some("GROUP"), Some("g1"))
    );
}

async fn aliyun_errors_and_signatures_in_its_shape(b: Backend) {
    let a = aliyun(b).await;
    let create = format!("{}&FirmwareID=167&ProductKey={ALIYUN_PRODUCT}", common("CreateOTAStaticUpgradeJob"));

    // Signatures.
    let q = signed(&format!("{create}&TargetSelection=All"), "GET", &a.id, "not-the-secret");
    let r = a.api.as_key("").get(&format!("/compat/aliyun/?{q}")).await;
    rpc_error(&r, 400, "SignatureDoesNotMatch", "signature");
    let q = signed(&format!("{create}&TargetSelection=All"), "GET", &a.id, &a.secret)
        .replace("FirmwareID=167", "FirmwareID=168");
    let r = a.api.as_key("").get(&format!("/compat/aliyun/?{q}")).await;
    rpc_error(&r, 400, "SignatureDoesNotMatch", "signature");
    let q = signed(&format!("{create}&TargetSelection=All"), "POST", &a.id, &a.secret);
    let r = a.api.as_key("").get(&format!("/compat/aliyun/?{q}")).await;
    rpc_error(&r, 400, "SignatureDoesNotMatch", "signature");
    let q = signed(&format!("{create}&TargetSelection=All"), "GET", "UPDAKNOSUCHKEY", &a.secret);
    let r = a.api.as_key("").get(&format!("/compat/aliyun/?{q}")).await;
    rpc_error(&r, 404, "InvalidAccessKeyId.NotFound", "not valid");
    let late = create.replace("2024-11-19T09%3A50%3A00Z", "2024-11-19T10%3A06%3A00Z");
    let r = a.get(&format!("{late}&TargetSelection=All")).await;
    rpc_error(&r, 400, "InvalidTimeStamp.Expired", "15 minutes");
    let r = a.get(&format!("{}&TargetSelection=All", create.replace("HMAC-SHA1", "HMAC-SHA256"))).await;
    rpc_error(&r, 400, "IncompleteSignature", "HMAC-SHA1");
    assert!(a.api.get("/api/v1/jobs").await.ok()["items"].as_array().unwrap().is_empty(), "nothing was created");

    // The seed's allowed values.
    for (extra, message) in [
        ("TargetSelection=All&RetryInterval=15&RetryCount=1", "RetryInterval: 15"),
        ("TargetSelection=All&RetryInterval=10", "RetryCount is mandatory"),
        ("TargetSelection=All&RetryInterval=10&RetryCount=3", "RetryCount: 3"),
        ("TargetSelection=All&TimeoutInMinutes=0", "TimeoutInMinutes: 0"),
        ("TargetSelection=All&TimeoutInMinutes=1441", "TimeoutInMinutes: 1441"),
        ("TargetSelection=Gray", "GrayPercent is mandatory"),
        ("TargetSelection=Gray&GrayPercent=101", "GrayPercent"),
        ("TargetSelection=Group", "GroupID is mandatory"),
        ("TargetSelection=Specific", "TargetDeviceName.N is mandatory"),
        ("TargetSelection=Some", "TargetSelection: `Some`"),
        ("TargetSelection=All&GroupID=g1", "GroupID goes with"),
        ("TargetSelection=All&NeedPush=maybe", "NeedPush"),
        ("TargetSelection=All&DownloadProtocol=ftp", "DownloadProtocol"),
        ("TargetSelection=All&Colour=red", "unknown parameters: Colour"),
        ("TargetSelection=All&FirmwareId=166", "FirmwareID and FirmwareId"),
    ] {
        let r = a.get(&format!("{create}&{extra}")).await;
        rpc_error(&r, 400, "iot.system.IllegalRequest", message);
    }
    let r = a
        .get(&format!("{}&ProductKey={ALIYUN_PRODUCT}&TargetSelection=All", common("CreateOTAStaticUpgradeJob")))
        .await;
    rpc_error(&r, 400, "iot.system.IllegalRequest", "FirmwareID is mandatory");
    let r = a
        .get(&format!(
            "{}&FirmwareId=999&ProductKey={ALIYUN_PRODUCT}&TargetSelection=All",
            common("CreateOTAStaticUpgradeJob")
        ))
        .await;
    rpc_error(&r, 404, "iot.ota.FirmwareNotExist", "999");
    let r = a
        .get(&format!("{}&FirmwareId=167&ProductKey=thermo&TargetSelection=All", common("CreateOTAStaticUpgradeJob")))
        .await;
    rpc_error(&r, 400, "iot.ota.FirmwareProductMismatch", "thermo");
    let r = a.get(&format!("{create}&TargetSelection=Group&GroupID=nope")).await;
    rpc_error(&r, 404, "iot.group.NotExistedGroup", "nope");
    let r = a.get(&format!("{create}&TargetSelection=Specific&TargetDeviceName.1=ghost")).await;
    rpc_error(&r, 404, "iot.device.NotExistedDevice", "ghost");
    let r = a.get(&format!("{}&JobId=nope", common("QueryOTAJob"))).await;
    rpc_error(&r, 404, "iot.ota.JobNotExist", "nope");
    let r = a.get(&common("DeleteEverything")).await;
    rpc_error(&r, 400, "InvalidAction.NotFound", "DeleteEverything");

    // The access key acts with its API key's role.
    let (viewer, secret) = access_key(&a.api, "viewer").await;
    let q = signed(&format!("{create}&TargetSelection=All"), "GET", &viewer, &secret);
    let r = a.api.as_key("").get(&format!("/compat/aliyun/?{q}")).await;
    rpc_error(&r, 403, "Forbidden.RAM", "viewer");
    let id = a.create("TargetSelection=All").await;
    let q = signed(&format!("{}&JobId={id}", common("QueryOTAJob")), "GET", &viewer, &secret);
    let r = a.api.as_key("").get(&format!("/compat/aliyun/?{q}")).await;
    assert_eq!(r.ok()["Data"]["JobStatus"], "IN_PROGRESS", "a viewer reads");
    let r = a.get(&format!("{}&JobId={id}", common("CancelOTATaskByJob"))).await;
    assert_eq!(r.ok()["Success"], true);
    let r = a.get(&format!("{}&JobId={id}", common("CancelOTATaskByJob"))).await;
    rpc_error(&r, 409, "iot.ota.JobStatusNotSupport", "");

    // Deleting the access key ends it.
    a.api.delete(&format!("/api/v1/access-keys/{}", a.id)).await.expect(204, None);
    let r = a.get(&format!("{}&JobId={id}", common("QueryOTAJob"))).await;
    rpc_error(&r, 404, "InvalidAccessKeyId.NotFound", "");
    let listed = a.api.get("/api/v1/access-keys").await;
    let listed = listed.ok()["items"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("secret").is_none(), "the secret is shown once: {listed:?}");
}

/// Seed 004's sample group id.
const IOTAAP_GROUP: &str = "5e1dce30005aff52dbf0f3fd";

/// [`org`] with the seed's group (product `thermo`, `deviceKey1`–`deviceKey3`,
/// `deviceKey3` already on 2.3.6), group `other`, and a group token of an admin
/// key for the seed's group.
async fn iotaap(b: Backend) -> (Api, Vec<String>, String) {
    let (api, tokens) = org(b).await;
    api.post("/api/v1/devices", json!({"id": "deviceKey4", "product": "thermo", "firmware": {"host": "2.3.6"}}))
        .await
        .expect(201, None);
    for g in [IOTAAP_GROUP, "other"] {
        api.post("/api/v1/groups", json!({"id": g, "name": g, "product": "thermo"})).await.expect(201, None);
    }
    let members = json!({"add": ["deviceKey1", "deviceKey2", "deviceKey4"]});
    api.post(&format!("/api/v1/groups/{IOTAAP_GROUP}/members"), members).await.ok();
    api.post("/api/v1/groups/other/members", json!({"add": ["deviceKey3"]})).await.ok();
    let token = group_token(&api, IOTAAP_GROUP, "admin").await;
    (api, tokens, token)
}

async fn group_token(api: &Api, group: &str, role: &str) -> String {
    let key =
        api.post("/api/v1/keys", json!({"role": role})).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    let made = api.post("/api/v1/group-tokens", json!({"group": group, "key": key})).await;
    made.expect(201, None)["token"].as_str().unwrap().to_owned()
}

/// The seed's form: `firmware` (a file), `group`, `token`, `version`, without the fields `skip` names.
async fn deploy(api: &Api, fields: &[(&str, &str)], skip: &[&str]) -> common::Answer {
    let mut form = reqwest::multipart::Form::new();
    if !skip.contains(&"firmware") {
        form = form.part("firmware", reqwest::multipart::Part::bytes(vec![9u8; 2048]).file_name("firmware.bin"));
    }
    for (k, v) in fields {
        if !skip.contains(k) {
            form = form.text(k.to_string(), v.to_string());
        }
    }
    let r = api.http.post(api.server.url("/compat/iotaap/v1/ota/group")).multipart(form).send().await.unwrap();
    common::answer(r).await
}

#[track_caller]
fn iotaap_error(a: &common::Answer, status: u16, message: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.body["message"], message, "{}", a.body);
}

async fn iotaap_group_ota_uploads_and_starts_the_job(b: Backend) {
    let (api, tokens, token) = iotaap(b).await;
    let sample = [("group", IOTAAP_GROUP), ("token", token.as_str()), ("version", "2.3.6")];
    let r = deploy(&api, &sample, &[]).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    assert_eq!(r.body, json!({"message": "Firmware successfully deployed"}));

    let jobs = api.get("/api/v1/jobs").await;
    let job = jobs.ok()["items"][0].clone();
    let id = job["id"].as_str().unwrap().to_owned();
    let job = api.get(&format!("/api/v1/jobs/{id}")).await.ok().clone();
    assert_eq!(job["groups"], json!([IOTAAP_GROUP]));
    assert_eq!((job["all"].as_bool(), job["devices"].clone()), (Some(false), json!([])));
    assert_eq!(job["product"], "thermo", "the group's product");
    assert_eq!(job["allow_downgrade"], true, "every device on another version");
    assert_eq!(job["state"], "running", "deployed at once");
    let fw = api.get(&format!("/api/v1/firmware/{}", job["firmware"].as_str().unwrap())).await;
    let fw = fw.ok();
    assert_eq!((fw["version"].as_str(), fw["product"].as_str()), (Some("2.3.6"), Some("thermo")));
    assert_eq!(fw["files"][0]["name"], "firmware.bin");
    assert_eq!(fw["files"][0]["size"], 2048);
    let states: std::collections::BTreeMap<String, String> =
        api.get(&format!("/api/v1/jobs/{id}/executions")).await.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["device"].as_str().unwrap().to_owned(), e["state"].as_str().unwrap().to_owned()))
            .collect();
    assert_eq!(states["deviceKey4"], "skipped", "already on 2.3.6: {states:?}");
    assert_eq!(states.len(), 3, "the group's members only: {states:?}");
    api.server.tick_scheduler().await;
    assert!(offered(&api, "yourorgid", "deviceKey1", &tokens[0]).await.is_some());
    assert!(offered(&api, "yourorgid", "deviceKey3", &tokens[2]).await.is_none(), "not in the group");

    // The list: the last OTA of each group.
    let other = group_token(&api, "other", "operator").await;
    let r = deploy(&api, &[("group", "other"), ("token", &other), ("version", "2.4.0")], &[]).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    let r = deploy(&api, &[("group", IOTAAP_GROUP), ("token", &token), ("version", "2.3.7")], &[]).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    let list = api.get("/compat/iotaap/v1/ota/group?draw=warp&offset=0&limit=10&order_dir=asc").await;
    let list = list.ok();
    assert_eq!((list["recordsTotal"].as_u64(), list["recordsFiltered"].as_u64()), (Some(2), Some(2)), "{list}");
    assert_eq!(list["draw"], "warp", "echoed");
    let otas = list["otas"].as_array().unwrap();
    assert_eq!(
        otas.iter().map(|o| o["version"].as_str().unwrap()).collect::<Vec<_>>(),
        ["2.4.0", "2.3.7"],
        "oldest first, the last per group"
    );
    assert_eq!(otas[1]["group"], IOTAAP_GROUP);
    assert_eq!(otas[1]["owner"], "yourorgid");
    assert!(otas[1]["path"].as_str().unwrap().ends_with("/firmware.bin"));
    assert_eq!(otas[1]["__v"], 0);
    let list = api.get("/compat/iotaap/v1/ota/group?search_value=2.3&draw=1").await;
    assert_eq!((list.ok()["recordsTotal"].as_u64(), list.ok()["recordsFiltered"].as_u64()), (Some(2), Some(1)));
    let list = api.get("/compat/iotaap/v1/ota/group?offset=1&limit=1&order_dir=desc").await;
    assert_eq!(list.ok()["otas"].as_array().unwrap().len(), 1);
    assert_eq!(list.ok()["otas"][0]["version"], "2.4.0", "newest first, the second");
}

async fn iotaap_errors_in_its_shape(b: Backend) {
    let (api, _, token) = iotaap(b).await;
    let sample = [("group", IOTAAP_GROUP), ("token", token.as_str()), ("version", "2.3.6")];
    for field in ["firmware", "group", "token", "version"] {
        let r = deploy(&api, &sample, &[field]).await;
        iotaap_error(&r, 400, &format!("{field} is a mandatory field"));
    }
    let mut form = reqwest::multipart::Form::new().text("firmware", "not a file");
    for (k, v) in sample {
        form = form.text(k, v.to_owned());
    }
    let r = api.http.post(api.server.url("/compat/iotaap/v1/ota/group")).multipart(form).send().await.unwrap();
    iotaap_error(&common::answer(r).await, 400, "No file uploaded");
    let r = deploy(&api, &[("group", "not a group!"), ("token", &token), ("version", "2.3.6")], &[]).await;
    iotaap_error(&r, 400, "Group ID is not valid");
    let r = deploy(&api, &[("group", IOTAAP_GROUP), ("token", &token), ("version", "two")], &[]).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("semantic version"));
    let r = deploy(&api, &[("group", IOTAAP_GROUP), ("token", "upd_gt_nope"), ("version", "2.3.6")], &[]).await;
    iotaap_error(&r, 404, "No such group");
    let r = deploy(&api, &[("group", "other"), ("token", &token), ("version", "2.3.6")], &[]).await;
    iotaap_error(&r, 404, "No such group");
    let viewer = group_token(&api, IOTAAP_GROUP, "viewer").await;
    let r = deploy(&api, &[("group", IOTAAP_GROUP), ("token", &viewer), ("version", "2.3.6")], &[]).await;
    iotaap_error(&r, 403, "a `viewer` key may not change anything");
    assert!(api.get("/api/v1/jobs").await.ok()["items"].as_array().unwrap().is_empty(), "nothing was deployed");
    assert!(
        api.get("/api/v1/firmware?search=2.3.6").await.ok()["items"].as_array().unwrap().is_empty(),
        "nothing was uploaded"
    );

    let r = api.as_key("").get("/compat/iotaap/v1/ota/group").await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| m.contains("API key")), "{}", r.body);
    let r = api.get("/compat/iotaap/v1/ota/group?order_dir=sideways").await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    let r = api.get("/compat/iotaap/v1/ota/group?colour=red").await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);

    // Blob storage broken (its staging directory gone): 500 with IoTaaP's message and the error.
    std::fs::remove_dir_all(api.server.data_dir().join("firmware").join("tmp")).unwrap();
    let r = deploy(&api, &sample, &[]).await;
    iotaap_error(&r, 500, "Error when uploading firmware file");
    assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", r.body);
    assert!(api.get("/api/v1/jobs").await.ok()["items"].as_array().unwrap().is_empty(), "nothing was deployed");

    // A deleted group: its tokens went with it.
    api.delete(&format!("/api/v1/groups/{IOTAAP_GROUP}")).await.ok();
    let r = deploy(&api, &sample, &[]).await;
    iotaap_error(&r, 404, "No such group");
}

/// [`org`] on a clock, group `g-aws` holding `deviceKey3`, and an access key of an admin key.
async fn aws(b: Backend) -> (Api, Vec<String>, String, String, std::sync::Arc<updraft::testing::ManualClock>) {
    aws_with(b, |_| {}).await
}

async fn aws_with(
    b: Backend,
    configure: impl FnOnce(&mut updraft_server::Settings),
) -> (Api, Vec<String>, String, String, std::sync::Arc<updraft::testing::ManualClock>) {
    let (server, clock) = TestServer::start_clocked(b, configure).await;
    let (api, tokens) = org_on(server).await;
    api.post("/api/v1/groups", json!({"id": "g-aws", "name": "G"})).await.expect(201, None);
    api.post("/api/v1/groups/g-aws/members", json!({"add": ["deviceKey3"]})).await.ok();
    let (id, secret) = access_key(&api, "admin").await;
    (api, tokens, id, secret, clock)
}

/// The test clock's instant (2026-06-01 12:00 UTC) as `X-Amz-Date`.
const AMZ_DATE: &str = "20260601T120000Z";

/// Sends a request signed as AWS's SDKs sign it (service `iot`, region `eu-west-1`).
async fn aws_call(
    api: &Api,
    method: Method,
    path_and_query: &str,
    body: &str,
    id: &str,
    secret: &str,
) -> common::Answer {
    aws_tampered(api, method, path_and_query, body, body, id, secret).await
}

/// As [`aws_call`], signing `body` but sending `sent`.
async fn aws_tampered(
    api: &Api,
    method: Method,
    path_and_query: &str,
    body: &str,
    sent: &str,
    id: &str,
    secret: &str,
) -> common::Answer {
    use updraft_server::compat::sigv4;
    let url = reqwest::Url::parse(&api.server.url(path_and_query)).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let payload = sigv4::sha256_hex(body.as_bytes());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("host", host.parse().unwrap());
    headers.insert("x-amz-date", AMZ_DATE.parse().unwrap());
    headers.insert("x-amz-content-sha256", payload.parse().unwrap());
    let signed: Vec<String> = ["host", "x-amz-content-sha256", "x-amz-date"].map(str::to_owned).to_vec();
    let credential = sigv4::Credential {
        access_key: id.to_owned(),
        date: AMZ_DATE[..8].to_owned(),
        region: "eu-west-1".into(),
        service: "iot".into(),
        signed_headers: signed.clone(),
        signature: String::new(),
        amz_date: AMZ_DATE.into(),
        expires: None,
    };
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let canonical = sigv4::canonical_request(method.as_str(), url.path(), &query, &headers, &signed, &payload);
    let signature = sigv4::signature(secret, &credential, &canonical);
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={id}/{}/eu-west-1/iot/aws4_request, SignedHeaders={}, Signature={signature}",
        &AMZ_DATE[..8],
        signed.join(";")
    );
    let r = api
        .http
        .request(method, url)
        .header("x-amz-date", AMZ_DATE)
        .header("x-amz-content-sha256", payload)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(sent.to_owned())
        .send()
        .await
        .unwrap();
    common::answer(r).await
}

#[track_caller]
fn aws_error(a: &common::Answer, status: u16, kind: &str, message: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.headers["x-amzn-errortype"], kind, "{}", a.body);
    assert!(a.headers.contains_key("x-amzn-requestid"));
    assert!(a.body["message"].as_str().unwrap().contains(message), "{}", a.body);
}

/// CreateOTAUpdate's request with every field of seed 002's syntax.
fn ota_update_body() -> Value {
    json!({
        "additionalParameters": {"campaign": "spring"},
        "awsJobExecutionsRolloutConfig": {"maximumPerMinute": 10},
        "description": "the spring update",
        "files": [{
            "attributes": {"signer": "ops"},
            "fileLocation": {"s3Location": {"bucket": "updraft", "key": "yourFirmwareId/app.bin", "version": "1"}},
            "fileName": "app.bin",
            "fileVersion": "2.0"
        }],
        "roleArn": "arn:aws:iam::123456789012:role/ota-role",
        "targets": ["arn:aws:iot:eu-west-1:123456789012:thing/deviceKey1", "arn:aws:iot:eu-west-1:123456789012:thinggroup/g-aws"],
        "targetSelection": "SNAPSHOT"
    })
}

async fn aws_create_ota_update_signed_with_sigv4(b: Backend) {
    let (api, tokens, id, secret, clock) = aws(b).await;
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-1", &ota_update_body().to_string(), &id, &secret)
        .await;
    assert_eq!(
        r.ok(),
        &json!({
            "otaUpdateId": "ota-1",
            "otaUpdateArn": "arn:aws:iot:eu-west-1:yourorgid:otaupdate/ota-1",
            "awsIotJobId": "ota-1",
            "awsIotJobArn": "arn:aws:iot:eu-west-1:yourorgid:job/ota-1",
            "otaUpdateStatus": "CREATE_COMPLETE"
        })
    );
    let job = api.get("/api/v1/jobs/ota-1").await.ok().clone();
    assert_eq!(job["firmware"], "yourFirmwareId");
    assert_eq!(job["description"], "the spring update");
    assert_eq!((job["devices"].clone(), job["groups"].clone()), (json!(["deviceKey1"]), json!(["g-aws"])));
    assert_eq!(job["recurrence"], "snapshot");
    assert_eq!(job["max_per_minute"], 10);
    assert_eq!(job["additional_params"], json!({"campaign": "spring"}));
    assert_eq!(job["metadata"]["aws.roleArn"], "arn:aws:iam::123456789012:role/ota-role", "recorded");
    assert_eq!(job["metadata"]["app.bin.signer"], "ops", "the file's attributes");
    assert_eq!(job["metadata"]["app.bin.fileVersion"], "2.0");
    assert_eq!(job["state"], "running");
    // Ten a minute: one every six seconds.
    api.server.tick_scheduler().await;
    clock.advance(jiff::SignedDuration::from_secs(6));
    api.server.tick_scheduler().await;
    assert!(offered(&api, "yourorgid", "deviceKey1", &tokens[0]).await.is_some(), "a target thing gets it");
    assert!(offered(&api, "yourorgid", "deviceKey3", &tokens[2]).await.is_some(), "so does the group's member");
    assert!(offered(&api, "yourorgid", "deviceKey2", &tokens[1]).await.is_none(), "not a target");

    let got = aws_call(&api, Method::GET, "/compat/aws/otaUpdates/ota-1", "", &id, &secret).await;
    let info = &got.ok()["otaUpdateInfo"];
    assert_eq!(info["otaUpdateId"], "ota-1");
    assert_eq!(info["targetSelection"], "SNAPSHOT");
    assert_eq!(info["awsJobExecutionsRolloutConfig"], json!({"maximumPerMinute": 10}));
    assert_eq!(info["targets"][1], "arn:aws:iot:eu-west-1:yourorgid:thinggroup/g-aws");
    assert_eq!(info["additionalParameters"], json!({"campaign": "spring"}));

    let mut continuous = ota_update_body();
    continuous["targetSelection"] = json!("CONTINUOUS");
    continuous["targets"] = json!(["deviceKey2"]);
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-2", &continuous.to_string(), &id, &secret).await;
    r.ok();
    assert_eq!(api.get("/api/v1/jobs/ota-2").await.ok()["recurrence"], "continuous");
    let list = aws_call(&api, Method::GET, "/compat/aws/otaUpdates?maxResults=1", "", &id, &secret).await;
    let list = list.ok();
    assert_eq!(list["otaUpdates"][0]["otaUpdateId"], "ota-2", "newest first");
    let next = list["nextToken"].as_str().unwrap();
    let list =
        aws_call(&api, Method::GET, &format!("/compat/aws/otaUpdates?maxResults=1&nextToken={next}"), "", &id, &secret)
            .await;
    assert_eq!(list.ok()["otaUpdates"][0]["otaUpdateId"], "ota-1");
    assert!(list.ok().get("nextToken").is_none());

    let deleted = aws_call(&api, Method::DELETE, "/compat/aws/otaUpdates/ota-2", "", &id, &secret).await;
    assert_eq!(deleted.ok(), &json!({}));
    assert_eq!(api.get("/api/v1/jobs/ota-2").await.ok()["state"], "canceled");
}

async fn aws_errors_in_its_shape(b: Backend) {
    let (api, _, id, secret, _) = aws(b).await;
    let body = ota_update_body().to_string();
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-1", &body, &id, "wrong-secret").await;
    aws_error(&r, 401, "UnauthorizedException", "signature");
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-1", &body, "UPDAKNOSUCHKEY", &secret).await;
    aws_error(&r, 401, "UnauthorizedException", "security token");
    let r = api.as_key("").post("/compat/aws/otaUpdates/ota-1", ota_update_body()).await;
    aws_error(&r, 401, "UnauthorizedException", "Signature Version 4");
    let unknown = aws_call(&api, Method::GET, "/compat/aws/otaUpdates/x", "", &id, &secret).await;
    aws_error(&unknown, 404, "ResourceNotFoundException", "x");
    // The body changed after signing.
    let other = body.replace("the spring update", "the autumn update");
    let r = aws_tampered(&api, Method::POST, "/compat/aws/otaUpdates/ota-1", &body, &other, &id, &secret).await;
    aws_error(&r, 400, "InvalidRequestException", "x-amz-content-sha256");

    r#for_each_invalid(&api, &id, &secret).await;

    aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-1", &body, &id, &secret).await.ok();
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-1", &body, &id, &secret).await;
    aws_error(&r, 409, "ResourceAlreadyExistsException", "ota-1");
    let big = "x".repeat(3 << 20);
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-big", &big, &id, &secret).await;
    aws_error(&r, 410, "LimitExceededException", "larger");
    let (viewer, viewer_secret) = access_key(&api, "viewer").await;
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-3", &body, &viewer, &viewer_secret).await;
    aws_error(&r, 401, "UnauthorizedException", "viewer");
    let r = aws_call(&api, Method::GET, "/compat/aws/otaUpdates/ota-1", "", &viewer, &viewer_secret).await;
    assert_eq!(r.ok()["otaUpdateInfo"]["otaUpdateId"], "ota-1", "a viewer reads");
}

async fn r#for_each_invalid(api: &Api, id: &str, secret: &str) {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"files": []}), "files: from 1 to 50"),
        (json!({"description": "two\nlines"}), "description"),
        (json!({"roleArn": "arn:aws:iam::1:role/x"}), "roleArn"),
        (json!({"targetSelection": "SOMETIMES"}), "targetSelection"),
        (json!({"awsJobExecutionsRolloutConfig": {"maximumPerMinute": 1001}}), "maximumPerMinute"),
        (json!({"targets": ["arn:aws:iot:eu-west-1:1:policy/p"]}), "targets"),
        (json!({"protocols": ["HTTP"]}), "protocols"),
    ];
    for (change, message) in cases {
        let mut body = ota_update_body();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = aws_call(api, Method::POST, "/compat/aws/otaUpdates/bad", &body.to_string(), id, secret).await;
        aws_error(&r, 400, "InvalidRequestException", message);
    }
    let mut body = ota_update_body();
    body["files"][0]["fileLocation"]["s3Location"]["bucket"] = json!("someone-elses");
    let r = aws_call(api, Method::POST, "/compat/aws/otaUpdates/bad", &body.to_string(), id, secret).await;
    aws_error(&r, 400, "InvalidRequestException", "bucket");
    body["files"][0]["fileLocation"]["s3Location"] = json!({"bucket": "updraft", "key": "nope/app.bin"});
    let r = aws_call(api, Method::POST, "/compat/aws/otaUpdates/bad", &body.to_string(), id, secret).await;
    aws_error(&r, 404, "ResourceNotFoundException", "nope");
}

/// A presigned GET (`X-Amz-*` in the query), as `aws iot` clients presign.
#[tokio::test]
async fn aws_presigned_urls_are_verified() {
    use updraft_server::compat::sigv4;
    let (api, _, id, secret, _) = aws(Backend::Sqlite).await;
    let body = ota_update_body().to_string();
    aws_call(&api, Method::POST, "/compat/aws/otaUpdates/ota-1", &body, &id, &secret).await.ok();
    let presign = |expires: &str, secret: &str| {
        let url = reqwest::Url::parse(&api.server.url("/compat/aws/otaUpdates/ota-1")).unwrap();
        let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let mut query: Vec<(String, String)> = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
            ("X-Amz-Credential", format!("{id}/{}/us-east-1/iot/aws4_request", &AMZ_DATE[..8])),
            ("X-Amz-Date", AMZ_DATE.to_owned()),
            ("X-Amz-Expires", expires.to_owned()),
            ("X-Amz-SignedHeaders", "host".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("host", host.parse().unwrap());
        let credential = sigv4::Credential {
            access_key: id.clone(),
            date: AMZ_DATE[..8].to_owned(),
            region: "us-east-1".into(),
            service: "iot".into(),
            signed_headers: vec!["host".into()],
            signature: String::new(),
            amz_date: AMZ_DATE.into(),
            expires: None,
        };
        let canonical = sigv4::canonical_request(
            "GET",
            url.path(),
            &query,
            &headers,
            &["host".to_owned()],
            sigv4::UNSIGNED_PAYLOAD,
        );
        query.push(("X-Amz-Signature".into(), sigv4::signature(secret, &credential, &canonical)));
        let q = form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        format!("/compat/aws/otaUpdates/ota-1?{q}")
    };
    let r = api.as_key("").get(&presign("300", &secret)).await;
    assert_eq!(r.ok()["otaUpdateInfo"]["otaUpdateId"], "ota-1");
    let r = api.as_key("").get(&presign("300", "wrong")).await;
    aws_error(&r, 401, "UnauthorizedException", "signature");
    let r = api.as_key("").get(&presign("0", &secret)).await;
    aws_error(&r, 401, "UnauthorizedException", "X-Amz-Expires");
}

/// An access key's calls count against its API key's rate limit: AWS's `ThrottlingException`.
#[tokio::test]
async fn aws_throttles_as_aws_does() {
    let (api, _, id, secret, _) = aws_with(Backend::Sqlite, |s| {
        s.api_rate_limit_per_sec = 1;
        s.api_rate_limit_burst = 30;
    })
    .await;
    let mut last = None;
    for _ in 0..40 {
        let r = aws_call(&api, Method::GET, "/compat/aws/otaUpdates", "", &id, &secret).await;
        if r.status.as_u16() == 429 {
            last = Some(r);
            break;
        }
    }
    let r = last.expect("the burst runs out");
    aws_error(&r, 429, "ThrottlingException", "too many calls");
    assert!(r.headers.contains_key("retry-after"));
}

/// A file's `codeSigning` is the signature its upload carried: a signing profile's, or the same
/// `customCodeSigning`; another one, or none on the file, is refused.
#[tokio::test]
async fn aws_code_signing_is_the_uploads() {
    let (api, _, id, secret, _) = aws(Backend::Sqlite).await;
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()]).unwrap();
    api.post("/api/v1/trust-anchors", json!({"certificate": ca.cert.pem()})).await.expect(201, None);
    let profile =
        json!({"name": "ota", "private_key": ca.signing_key.serialize_pem(), "certificate_chain": ca.cert.pem()});
    api.post("/api/v1/signing-profiles", profile).await.expect(201, None);
    let signing = json!({"startSigningJobParameter": {"signingProfileName": "ota"}});
    let form = reqwest::multipart::Form::new()
        .text("id", "signedFw")
        .text("product", "thermo")
        .text("version", "3.0")
        .text(
            "files",
            json!([{"name": "app.bin", "component": "host", "version": "3.0", "codeSigning": signing}]).to_string(),
        )
        .part("file", reqwest::multipart::Part::bytes(vec![5u8; 512]).file_name("app.bin"));
    let fw = api.multipart("/api/v1/firmware", form).await;
    let recorded = fw.expect(201, None)["files"][0]["code_signing"].clone();

    let with = |signing: Value, ota: &str| {
        let mut body = ota_update_body();
        body["files"][0]["fileLocation"]["s3Location"]["key"] = json!("signedFw/app.bin");
        body["files"][0]["fileVersion"] = json!("3.0");
        body["files"][0]["codeSigning"] = signing;
        (format!("/compat/aws/otaUpdates/{ota}"), body.to_string())
    };
    let (path, body) = with(json!({"startSigningJobParameter": {"signingProfileName": "ota"}}), "by-profile");
    aws_call(&api, Method::POST, &path, &body, &id, &secret).await.ok();
    let custom = json!({"customCodeSigning": {
        "certificateChain": {"certificateName": "signer", "inlineDocument": recorded["certificate_chain"]},
        "hashAlgorithm": "SHA256",
        "signature": {"inlineDocument": recorded["signature"]},
        "signatureAlgorithm": "ECDSA",
    }});
    let (path, body) = with(custom.clone(), "by-signature");
    aws_call(&api, Method::POST, &path, &body, &id, &secret).await.ok();
    assert_eq!(api.get("/api/v1/jobs/by-signature").await.ok()["firmware"], "signedFw");

    let mut forged = custom;
    forged["customCodeSigning"]["signature"]["inlineDocument"] = json!("AAAA");
    let (path, body) = with(forged, "forged");
    let r = aws_call(&api, Method::POST, &path, &body, &id, &secret).await;
    aws_error(&r, 400, "InvalidRequestException", "another signature");
    let (path, body) = with(json!({"startSigningJobParameter": {"signingProfileName": "other"}}), "other");
    let r = aws_call(&api, Method::POST, &path, &body, &id, &secret).await;
    aws_error(&r, 400, "InvalidRequestException", "another signature");
    let mut unsigned = ota_update_body();
    unsigned["files"][0]["codeSigning"] = json!({"startSigningJobParameter": {"signingProfileName": "ota"}});
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/unsigned", &unsigned.to_string(), &id, &secret).await;
    aws_error(&r, 400, "InvalidRequestException", "or none");
    let (path, body) = with(json!({"awsSignerJobId": "job-1"}), "signer");
    let r = aws_call(&api, Method::POST, &path, &body, &id, &secret).await;
    aws_error(&r, 400, "InvalidRequestException", "AWS Signer");
}

/// A fault of the server's (an access key's sealed secret that no longer opens): AWS's
/// `InternalFailureException`, 500.
#[tokio::test]
async fn aws_internal_failure_as_aws_names_it() {
    use sqlx::Connection;
    let (api, _, id, secret, _) = aws(Backend::Sqlite).await;
    let url = format!("sqlite://{}", api.server.data_dir().join("updraft.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE access_keys SET secret = 'not sealed' WHERE id = $1").bind(&id).execute(&mut db).await.unwrap();
    let r = aws_call(&api, Method::GET, "/compat/aws/otaUpdates", "", &id, &secret).await;
    aws_error(&r, 500, "InternalFailureException", "internal error");
}

/// A store that cannot answer (its jobs table gone, as a database cut off would
/// leave it): AWS's 503 `ServiceUnavailableException` for the AWS door, IoTaaP's
/// 500 with its message and the error for the group OTA list.
#[tokio::test]
async fn a_store_that_cannot_answer_in_each_platforms_shape() {
    use sqlx::Connection;
    let (api, _, id, secret, _) = aws(Backend::Sqlite).await;
    let url = format!("sqlite://{}", api.server.data_dir().join("updraft.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE jobs RENAME TO jobs_away").execute(&mut db).await.unwrap();
    let body = ota_update_body().to_string();
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/spring", &body, &id, &secret).await;
    aws_error(&r, 503, "ServiceUnavailableException", "a backing service is unavailable; retry later");
    let r = api.get("/compat/iotaap/v1/ota/group").await;
    iotaap_error(&r, 500, "Error when getting group OTA's.");
    assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", r.body);
    sqlx::query("ALTER TABLE jobs_away RENAME TO jobs").execute(&mut db).await.unwrap();
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/spring", &body, &id, &secret).await;
    assert_eq!(r.status.as_u16(), 200, "the store back, the same call succeeds: {}", r.body);
}

/// CreateOTAUpdate's files named by S3 location in a bucket updraft may read
/// (`blobs.readable_buckets`, on the same service and credentials): the objects are
/// read into a new image of the targets' product and the update deploys it. A bucket
/// not listed is refused, and a missing object is AWS's 404 with nothing kept.
#[tokio::test]
async fn aws_files_read_from_a_readable_bucket() {
    use sha2::Digest;
    let s3 = common::s3::S3Server::start().await;
    let http = reqwest::Client::new();
    let made = http.put(format!("{}/fleet-images", s3.url)).send().await.unwrap();
    assert!(made.status().is_success(), "{}", made.status());
    let image: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let put = http.put(format!("{}/fleet-images/releases/app-2.1.bin", s3.url)).body(image.clone()).send().await;
    assert!(put.unwrap().status().is_success());
    let endpoint = s3.url.clone();
    let (api, tokens, id, secret, clock) = aws_with(Backend::Sqlite, move |s| {
        s.blobs.endpoint = Some(endpoint);
        s.blobs.region = Some("us-east-1".into());
        s.blobs.access_key_id = Some("test".into());
        s.blobs.secret_access_key = Some("test".into());
        s.blobs.readable_buckets = vec!["fleet-images".into()];
    })
    .await;
    let body = |bucket: &str, key: &str| {
        json!({
            "files": [{
                "fileName": "app.bin",
                "fileVersion": "2.1",
                "attributes": {"signer": "ops"},
                "fileLocation": {"s3Location": {"bucket": bucket, "key": key}}
            }],
            "roleArn": "arn:aws:iam::123456789012:role/ota-role",
            "targets": ["arn:aws:iot:eu-west-1:123456789012:thing/deviceKey1"]
        })
        .to_string()
    };
    let images_before = api.get("/api/v1/firmware").await.ok()["total"].clone();

    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/imported", &body("elsewhere", "a.bin"), &id, &secret)
        .await;
    aws_error(&r, 400, "InvalidRequestException", "readable_buckets");
    let missing = body("fleet-images", "releases/none.bin");
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/imported", &missing, &id, &secret).await;
    aws_error(&r, 404, "ResourceNotFoundException", "s3://fleet-images/releases/none.bin does not exist");
    assert_eq!(api.get("/api/v1/firmware").await.ok()["total"], images_before, "nothing kept");

    let good = body("fleet-images", "releases/app-2.1.bin");
    let r = aws_call(&api, Method::POST, "/compat/aws/otaUpdates/imported", &good, &id, &secret).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let job = api.get("/api/v1/jobs/imported").await.ok().clone();
    assert_eq!(job["devices"], json!(["deviceKey1"]));
    let firmware = api.get(&format!("/api/v1/firmware/{}", job["firmware"].as_str().unwrap())).await.ok().clone();
    assert_eq!(firmware["product"], "thermo");
    assert_eq!(firmware["version"], "2.1");
    assert_eq!(firmware["metadata"]["app.bin.s3Location"], "s3://fleet-images/releases/app-2.1.bin");
    assert_eq!(firmware["files"][0]["name"], "app.bin");
    assert_eq!(firmware["files"][0]["size"], 300_000);
    assert_eq!(firmware["files"][0]["sha256"], hex::encode(sha2::Sha256::digest(&image)));
    api.server.tick_scheduler().await;
    clock.advance(jiff::SignedDuration::from_secs(6));
    api.server.tick_scheduler().await;
    assert!(offered(&api, "yourorgid", "deviceKey1", &tokens[0]).await.is_some(), "the device gets the update");
}
