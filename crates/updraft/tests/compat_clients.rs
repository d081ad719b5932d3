//! The AWS and Aliyun doors driven by those platforms' own SDKs (boto3, and
//! aliyun-python-sdk-iot over aliyun-python-sdk-core), with only the endpoint
//! changed: what a migrating team's scripts do (scripts/compat_clients.py).
//! The SDKs sign with the real clock, so the server runs on it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Api, Backend, TestServer};
use serde_json::{Value, json};

on_both_stores!(the_platforms_own_sdks_create_and_follow_jobs);

/// The Python with boto3 and Aliyun's SDK: `UPDRAFT_COMPAT_PYTHON`, or the venv
/// scripts/test installs into the build directory.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("UPDRAFT_COMPAT_PYTHON") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors().map(|dir| dir.join("compat-venv/bin/python")).find(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "the platforms' SDKs are not installed: run scripts/test (it installs them into the build \
                 directory), or pip install boto3 aliyun-python-sdk-iot and set UPDRAFT_COMPAT_PYTHON to that python"
        )
    })
}

async fn upload(api: &Api, product: &str, version: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .text("product", product.to_owned())
        .text("version", version.to_owned())
        .text("files", json!([{"name": "app.bin", "component": "host", "version": version}]).to_string())
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 1024]).file_name("app.bin"));
    let made = api.multipart("/api/v1/firmware", form).await.expect(201, None).clone();
    made["id"].as_str().unwrap().to_owned()
}

async fn the_platforms_own_sdks_create_and_follow_jobs(b: Backend) {
    let api = Api::on(TestServer::start(b).await);
    for product in ["thermo", "a1ProductKey"] {
        api.post("/api/v1/products", json!({"key": product})).await.expect(201, None);
    }
    api.post("/api/v1/devices", json!({"id": "lab-1", "product": "thermo", "firmware": {"host": "1.0.0"}}))
        .await
        .expect(201, None);
    api.post("/api/v1/devices", json!({"id": "d-1", "product": "a1ProductKey", "firmware": {"host": "1.0.0"}}))
        .await
        .expect(201, None);
    let aws_firmware = upload(&api, "thermo", "2.0.0").await;
    let aliyun_firmware = upload(&api, "a1ProductKey", "2.0.0").await;
    let key = api.post("/api/v1/keys", json!({"role": "admin"})).await.expect(201, None).clone()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let access = api.post("/api/v1/access-keys", json!({"key": key})).await.expect(201, None).clone();
    let (id, secret) = (access["id"].as_str().unwrap(), access["secret"].as_str().unwrap());

    let base = api.server.url("").trim_end_matches('/').to_owned();
    let args = [base, id.to_owned(), secret.to_owned(), aws_firmware.clone(), aliyun_firmware.clone()];
    // Off the runtime's thread: the server answers the script on this runtime.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/compat_clients.py"))
            .args(args)
            .args(["lab-1", "a1ProductKey"])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "the SDKs' script failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");

    // AWS: CreateOTAUpdate, GetOTAUpdate, ListOTAUpdates, and errors as the SDK parses them.
    assert_eq!(
        seen["aws_created"],
        json!({"otaUpdateId": "spring", "awsIotJobId": "spring", "otaUpdateStatus": "CREATE_COMPLETE"})
    );
    assert_eq!(seen["aws_get"], json!({"otaUpdateId": "spring", "targetSelection": "SNAPSHOT"}));
    assert_eq!(seen["aws_list"], json!(["spring"]));
    assert_eq!(seen["aws_wrong_secret"], json!(["UnauthorizedException", 401]));
    assert_eq!(seen["aws_missing"], json!(["ResourceNotFoundException", 404]));
    assert_eq!(seen["aws_again"], json!(["ResourceAlreadyExistsException", 409]));
    let job = api.get("/api/v1/jobs/spring").await.expect(200, None).clone();
    assert_eq!(job["firmware"], aws_firmware.as_str());
    assert_eq!(job["devices"], json!(["lab-1"]));
    assert_eq!(job["description"], "spring release");

    // Aliyun: CreateOTAStaticUpgradeJob, QueryOTAJob, CancelOTATaskByJob; a wrong secret refused.
    assert_eq!(seen["aliyun_created"]["Success"], true);
    let job_id = seen["aliyun_created"]["JobId"].as_str().unwrap().to_owned();
    assert_eq!(seen["aliyun_query"], json!({"Success": true, "JobId": job_id}));
    assert_eq!(seen["aliyun_wrong_secret"], json!(["SignatureDoesNotMatch", 400]));
    assert_eq!(seen["aliyun_cancel"], true);
    let job = api.get(&format!("/api/v1/jobs/{job_id}")).await.expect(200, None).clone();
    assert_eq!(job["firmware"], aliyun_firmware.as_str());
    assert_eq!(job["all"], true);
    assert_eq!(job["source_versions"], json!(["1.0.0"]));
    assert_eq!(job["retry"], json!({"count": 2, "interval_minutes": 10}));
    assert_eq!(job["timeout_seconds"], 3600);
    assert_eq!(job["state"], "canceled");
}
