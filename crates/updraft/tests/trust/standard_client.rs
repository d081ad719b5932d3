//! A standard TUF client, python-tuf (not updraft's code), refreshes a
//! repository made by `updraft trust init` from its pinned root and
//! downloads a verified firmware file; after `updraft trust rotate` and
//! `updraft trust sign-root`, the same pinned root still gets it through
//! root version 2. The commands are the ones docs/trust.md shows.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{self, Api, Backend};
use serde_json::json;

crate::on_both_stores!(python_tuf_verifies_a_firmware_file_from_the_pinned_root);

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("UPDRAFT_TUF_PYTHON") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .map(|d| d.join("tuf-venv/bin/python"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("python-tuf is not installed: run scripts/test (it installs it into the build directory), or set UPDRAFT_TUF_PYTHON to a Python with `tuf` 7"))
}

/// Runs a command off the test's runtime (the server runs on it); its output.
async fn run(mut command: Command) -> String {
    let what = format!("{command:?}");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what}: {text}");
    text
}

async fn updraft(api: &Api, args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_updraft"));
    c.args(args).env("UPDRAFT_SERVER", api.server.url("")).env("UPDRAFT_TOKEN", common::ADMIN_TOKEN);
    run(c).await
}

async fn client(api: &Api, root: &Path, target: &str, out: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tuf_client.py");
    let base = api.server.url("/tuf/default/cam");
    let mut c = Command::new(python());
    c.arg(script)
        .args([&format!("{base}/metadata/"), &format!("{base}/targets/")])
        .arg(root)
        .arg(target)
        .arg(out)
        .env("UPDRAFT_TUF_AUTH", format!("Bearer {}", common::ADMIN_TOKEN));
    run(c).await
}

async fn python_tuf_verifies_a_firmware_file_from_the_pinned_root(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "cam"})).await.expect(201, None);
    let image: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("product", "cam")
        .text("version", "1.2.0")
        .text("security_version", "4")
        .part("file", reqwest::multipart::Part::bytes(image.clone()).file_name("cam.bin"));
    api.multipart("/api/v1/firmware", form).await.expect(201, None);

    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("cam-root");
    let init = updraft(&api, &["trust", "init", "--product", "cam", "--dir", keys.to_str().unwrap()]).await;
    assert!(init.contains("root version 1 uploaded"), "{init}");
    let pem: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect();
    assert_eq!(pem.len(), 1, "one root key, kept by the operator");
    let pinned = keys.join("root.json");

    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let said = client(&api, &pinned, "1.2.0/cam.bin", &out).await;
    assert!(said.contains("verified 1.2.0/cam.bin: 200000 bytes") && said.contains("'security_version': 4"), "{said}");
    let got: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(std::fs::read(&got[0]).unwrap(), image);

    // Rotate the timestamp key, sign root 2 offline, and the old pinned root still leads to the file.
    updraft(&api, &["trust", "rotate", "--product", "cam", "--role", "timestamp"]).await;
    let signed = updraft(&api, &["trust", "sign-root", "--product", "cam", "--key", pem[0].to_str().unwrap()]).await;
    assert!(signed.contains("root version 2 uploaded"), "{signed}");
    let status = updraft(&api, &["trust", "status", "--product", "cam"]).await;
    assert!(status.contains("root 2") && !status.contains("not yet in a root"), "{status}");
    let out2 = dir.path().join("out2");
    std::fs::create_dir_all(&out2).unwrap();
    let said = client(&api, &pinned, "1.2.0/cam.bin", &out2).await;
    assert!(said.contains("verified 1.2.0/cam.bin"), "{said}");
}
