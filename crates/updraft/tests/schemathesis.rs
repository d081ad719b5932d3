//! schemathesis over the whole OpenAPI document, on SQLite and on PostgreSQL:
//! every operation, positive and negative data, and the server must answer
//! no 5xx, no status the document does not list, and nothing that breaks the
//! documented schemas, content types or headers.
//!
//! schemathesis (4.x, from PyPI) is found through `UPDRAFT_SCHEMATHESIS`, in
//! the build directory's `schemathesis-venv` (where `scripts/test` installs
//! it), or on `PATH`. When it is nowhere this test fails: it never skips.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Api, Backend, TestServer};
use serde_json::json;

on_both_stores!(schemathesis_finds_no_problem_in_the_management_api);

/// Test cases per operation and phase: the whole run stays within a few minutes on 2 cores.
const MAX_EXAMPLES: &str = "25";

fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("UPDRAFT_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    for dir in exe.ancestors() {
        let candidate = dir.join("schemathesis-venv/bin/schemathesis");
        if candidate.exists() {
            return candidate;
        }
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("schemathesis"))
        .find(|p| p.exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "schemathesis is not installed: run scripts/test (it installs it into the build directory), \
             or `pip install 'schemathesis>=4,<5'`, or set UPDRAFT_SCHEMATHESIS to its path"
        )
    })
}

/// A little of everything, so path parameters can name things that exist.
async fn seed(api: &Api) {
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let form = reqwest::multipart::Form::new()
        .text("id", "fw-1")
        .text("product", "thermo")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(b"firmware".to_vec()).file_name("fw.bin"));
    api.multipart("/api/v1/firmware", form).await.expect(201, None);
    api.post(
        "/api/v1/devices",
        json!({"id": "dev-1", "product": "thermo", "firmware": {"host": "1.0.0"}, "properties": {"region": "eu", "floor": 2}}),
    )
    .await
    .expect(201, None);
    api.post("/api/v1/groups", json!({"id": "grp-1", "name": "Europe", "product": "thermo"})).await.expect(201, None);
    api.post("/api/v1/groups/grp-1/members", json!({"add": ["dev-1"]})).await.expect(200, None);
    api.post("/api/v1/filters", json!({"id": "flt-1", "name": "EU", "query": "prop.region == \"eu\""}))
        .await
        .expect(201, None);
    api.post(
        "/api/v1/jobs",
        json!({"id": "job-1", "firmware": "fw-1", "devices": ["dev-1"], "consent_required": true,
               "max_per_minute": 10, "ramp": {"base_per_minute": 2, "increment_factor": 2.0, "every": 5},
               "abort": [{"failure": "any", "min_executed": 10, "threshold_percent": 50.0}],
               "retry": {"count": 1, "interval_minutes": 5},
               "schedule": {"timezone": "Europe/Berlin", "days": ["mon", "tue"], "window": {"from": "22:00", "to": "06:00"}}}),
    )
    .await
    .expect(201, None);
    api.post("/api/v1/jobs", json!({"id": "job-2", "firmware": "fw-1", "all": true, "start": false}))
        .await
        .expect(201, None);
}

async fn schemathesis_finds_no_problem_in_the_management_api(b: Backend) {
    let st = schemathesis();
    let server = TestServer::start_with(b, |s| s.api_rate_limit_per_sec = 0).await;
    let api = Api::on(server);
    seed(&api).await;
    let work = tempfile::tempdir().expect("a temporary directory");
    let config = work.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        r#"
[dictionaries.ids]
values = ["thermo", "fw-1", "fw.bin", "dev-1", "grp-1", "flt-1", "job-1", "job-2"]

[parameters]
"path.id" = { dictionary = "ids", probability = 0.5 }
"path.key" = { dictionary = "ids", probability = 0.5 }
"path.job" = { dictionary = "ids", probability = 0.5 }
"path.name" = { dictionary = "ids", probability = 0.5 }
"#,
    )
    .expect("write the configuration");
    let schema = api.server.url("/api/v1/openapi.json");
    let args: Vec<String> = vec![
        "--config-file".into(),
        config.display().to_string(),
        "run".into(),
        schema,
        "--header".into(),
        format!("Authorization: Bearer {}", api.token),
        "--checks".into(),
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,\
         response_headers_conformance"
            .into(),
        "--max-examples".into(),
        MAX_EXAMPLES.into(),
        "--seed".into(),
        "10".into(),
        "--workers".into(),
        "2".into(),
        "--request-timeout".into(),
        "10".into(),
        "--no-color".into(),
        "--report-dir".into(),
        std::env::var("UPDRAFT_SCHEMATHESIS_REPORT_DIR")
            .unwrap_or_else(|_| work.path().join("report").display().to_string()),
        "--report".into(),
        "har".into(),
    ];
    let dir = work.path().to_path_buf();
    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis_hooks.py");
    let status = tokio::task::spawn_blocking(move || {
        Command::new(&st).args(&args).env("SCHEMATHESIS_HOOKS", hooks).current_dir(&dir).status()
    })
    .await
    .expect("the schemathesis task")
    .unwrap_or_else(|e| panic!("schemathesis could not be started: {e}"));
    assert!(status.success(), "schemathesis found problems (see its report above); exit status {status}");
}
