//! The management API over real HTTP, on SQLite and on PostgreSQL.

mod common;

use common::{Api, Backend, TestServer, stored_files};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(
    system_routes_and_request_ids,
    keys_and_roles,
    tenants_are_isolated,
    products,
    bad_requests_are_answered_and_write_nothing,
    firmware_upload_download_and_delete,
    firmware_uploads_that_fail_leave_nothing,
    devices,
    bulk_import_ndjson_and_csv,
    groups,
    data_survives_a_restart,
    rate_limited_keys_get_429,
);

async fn rate_limited_keys_get_429(b: Backend) {
    let server = TestServer::start_with(b, |s| {
        s.api_rate_limit_per_sec = 1;
        s.api_rate_limit_burst = 5;
    })
    .await;
    let api = Api::on(server);
    for _ in 0..5 {
        api.get("/api/v1/products").await.expect(200, None);
    }
    let r = api.get("/api/v1/products").await;
    r.expect(429, Some("rate_limited"));
    assert!(r.headers.contains_key("retry-after"));
    api.as_key("").get("/livez").await.expect(200, None);
}

async fn system_routes_and_request_ids(b: Backend) {
    let api = Api::start(b).await;
    let h = api.as_key("").get("/healthz").await;
    assert_eq!(h.expect(200, None)["status"], "ok");
    assert!(h.headers.contains_key("x-request-id"));
    let doc = api.as_key("").get("/api/v1/openapi.json").await;
    let doc = doc.expect(200, None);
    assert!(doc["paths"]["/api/v1/firmware"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/devices/import"]["post"].is_object());
    let codes: Vec<&str> =
        doc["x-error-codes"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"validation_failed") && codes.contains(&"import_rejected"));
    api.get("/api/v1/products").await.ok();
    let metrics = reqwest::get(api.server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("updraft_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/api/v1/products\""));
    let missing = api.get("/api/v1/nothing-here").await;
    missing.expect(404, Some("route_not_found"));
    assert!(missing.headers.contains_key("x-request-id"));
    api.call(Method::PUT, "/api/v1/products", None).await.expect(405, Some("method_not_allowed"));
}

async fn keys_and_roles(b: Backend) {
    let api = Api::start(b).await;
    api.as_key("").get("/api/v1/products").await.expect(401, Some("unauthorized"));
    api.as_key("upd_k_wrong").get("/api/v1/products").await.expect(401, Some("unauthorized"));
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);

    let viewer = api.key("viewer").await;
    let v = api.as_key(&viewer);
    assert_eq!(v.get("/api/v1/products").await.expect(200, None)["total"], 1);
    v.post("/api/v1/products", json!({"key": "other"})).await.expect(403, Some("forbidden"));
    v.patch("/api/v1/products/thermo", json!({"name": "changed"})).await.expect(403, Some("forbidden"));
    v.delete("/api/v1/products/thermo").await.expect(403, Some("forbidden"));
    v.post("/api/v1/devices", json!({"id": "d1", "product": "thermo"})).await.expect(403, Some("forbidden"));
    v.post("/api/v1/keys", json!({"role": "admin"})).await.expect(403, Some("forbidden"));
    assert_eq!(api.get("/api/v1/products").await.ok()["total"], 1, "the viewer changed nothing");
    assert_eq!(api.get("/api/v1/products/thermo").await.ok()["name"], "thermo");

    let operator = api.key("operator").await;
    let o = api.as_key(&operator);
    o.post("/api/v1/products", json!({"key": "plug"})).await.expect(201, None);
    o.get("/api/v1/keys").await.expect(403, Some("forbidden"));
    o.post("/api/v1/tenants", json!({"name": "x"})).await.expect(403, Some("forbidden"));

    let consent = api.key("consent").await;
    api.as_key(&consent).get("/api/v1/products").await.expect(403, Some("forbidden"));

    api.post("/api/v1/keys", json!({"role": "superuser"})).await.expect(400, Some("validation_failed"));
    let keys = api.get("/api/v1/keys").await;
    let keys = keys.ok();
    assert_eq!(keys["total"], 4, "bootstrap, viewer, operator, consent: {keys}");
    assert!(keys["items"].as_array().unwrap().iter().all(|k| k.get("token").is_none()), "tokens are never listed");
    let viewer_id = keys["items"].as_array().unwrap().iter().find(|k| k["role"] == "viewer").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.delete(&format!("/api/v1/keys/{viewer_id}")).await.expect(204, None);
    v.get("/api/v1/products").await.expect(401, Some("unauthorized"));
}

async fn tenants_are_isolated(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    api.post("/api/v1/devices", json!({"id": "dev-1", "product": "thermo"})).await.expect(201, None);
    api.post("/api/v1/groups", json!({"id": "lab", "name": "Lab"})).await.expect(201, None);
    let fw = upload(&api, "thermo", "1.0.0", &[("app.bin", b"firmware bytes".to_vec())]).await;
    let fw_id = fw["id"].as_str().unwrap();

    let created = api.post("/api/v1/tenants", json!({"name": "Globex"})).await;
    let created = created.expect(201, None);
    assert_eq!(created["tenant"]["id"], "globex");
    let other = created["token"].as_str().unwrap().to_owned();
    api.post("/api/v1/tenants", json!({"name": "GLOBEX"})).await.expect(409, Some("conflict"));
    api.post("/api/v1/tenants", json!({"name": "bad name"})).await.expect(400, Some("validation_failed"));
    assert_eq!(api.get("/api/v1/tenants").await.ok()["total"], 2);

    let g = api.as_key(&other);
    g.get("/api/v1/tenants").await.expect(403, Some("forbidden"));
    for path in ["/api/v1/products", "/api/v1/devices", "/api/v1/groups", "/api/v1/firmware"] {
        assert_eq!(g.get(path).await.expect(200, None)["total"], 0, "{path}");
    }
    g.get("/api/v1/products/thermo").await.expect(404, Some("not_found"));
    g.get("/api/v1/devices/dev-1").await.expect(404, Some("not_found"));
    g.get(&format!("/api/v1/firmware/{fw_id}")).await.expect(404, Some("not_found"));
    g.get(&format!("/api/v1/firmware/{fw_id}/files/app.bin")).await.expect(404, Some("not_found"));
    g.delete("/api/v1/devices/dev-1").await.expect(404, Some("not_found"));
    g.patch("/api/v1/groups/lab", json!({"name": "mine"})).await.expect(404, Some("not_found"));
    g.post("/api/v1/groups/lab/members", json!({"add": ["dev-1"]})).await.expect(404, Some("not_found"));
    // The same ids are free in the other tenant, and stay separate.
    g.post("/api/v1/products", json!({"key": "thermo", "name": "Globex thermo"})).await.expect(201, None);
    g.post("/api/v1/devices", json!({"id": "dev-1", "product": "thermo"})).await.expect(201, None);
    assert_eq!(api.get("/api/v1/products/thermo").await.ok()["name"], "thermo");
    g.delete("/api/v1/devices/dev-1").await.expect(204, None);
    api.get("/api/v1/devices/dev-1").await.expect(200, None);
}

async fn products(b: Backend) {
    let api = Api::start(b).await;
    let p = api.post("/api/v1/products", json!({"key": "thermo", "name": "Thermostat", "description": "d"})).await;
    let p = p.expect(201, None);
    assert_eq!((p["key"].as_str(), p["version_scheme"].as_str()), (Some("thermo"), Some("semver")));
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(409, Some("conflict"));
    api.post("/api/v1/products", json!({"key": "legacy", "version_scheme": "free"})).await.expect(201, None);
    let u = api.patch("/api/v1/products/thermo", json!({"name": "Thermostat X", "description": null})).await;
    let u = u.ok();
    assert_eq!((u["name"].as_str(), &u["description"]), (Some("Thermostat X"), &Value::Null));
    let list = api.get("/api/v1/products?sort=-key&limit=1").await;
    let list = list.ok();
    assert_eq!(
        (list["total"].as_u64(), list["items"][0]["key"].as_str(), list["limit"].as_u64()),
        (Some(2), Some("thermo"), Some(1))
    );
    assert_eq!(api.get("/api/v1/products?search=LEG").await.ok()["items"][0]["key"], "legacy");
    api.get("/api/v1/products?sort=password").await.expect(400, Some("validation_failed"));
    api.get("/api/v1/products?limit=0").await.expect(400, Some("validation_failed"));
    api.get("/api/v1/products?limit=abc").await.expect(400, Some("bad_request"));
    api.post("/api/v1/devices", json!({"id": "d", "product": "thermo"})).await.expect(201, None);
    api.delete("/api/v1/products/thermo").await.expect(409, Some("in_use"));
    api.delete("/api/v1/devices/d").await.expect(204, None);
    api.delete("/api/v1/products/thermo").await.expect(204, None);
    api.get("/api/v1/products/thermo").await.expect(404, Some("not_found"));
}

async fn bad_requests_are_answered_and_write_nothing(b: Backend) {
    let api = Api::start(b).await;
    let r = api.raw(Method::POST, "/api/v1/products", "application/json", "{\"key\": ").await;
    r.expect(400, Some("invalid_json"));
    api.raw(Method::POST, "/api/v1/products", "text/plain", "{\"key\": \"x\"}")
        .await
        .expect(415, Some("unsupported_media_type"));
    api.post("/api/v1/products", json!({"key": "x", "colour": "red"})).await.expect(400, Some("invalid_json"));
    api.post("/api/v1/products", json!({"key": 5})).await.expect(400, Some("invalid_json"));
    let bad = api.post("/api/v1/products", json!({"key": "has space", "name": "\u{7}"})).await;
    let bad = bad.expect(400, Some("validation_failed"));
    assert_eq!(bad["error"]["details"].as_array().unwrap().len(), 2, "every problem is listed: {bad}");
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let long = "x".repeat(3000);
    api.post("/api/v1/products", json!({"key": "p2", "description": long}))
        .await
        .expect(400, Some("validation_failed"));
    api.post("/api/v1/devices", json!({"id": "d1", "product": "ghost"})).await.expect(404, Some("not_found"));
    api.post("/api/v1/devices", json!({"id": "d1", "product": "thermo", "properties": {"bad name": 1}}))
        .await
        .expect(400, Some("validation_failed"));
    api.post("/api/v1/devices", json!({"id": "d1", "product": "thermo", "properties": {"p": [1, 2]}}))
        .await
        .expect(400, Some("invalid_json"));
    api.post("/api/v1/devices", json!({"id": "d1", "product": "thermo", "connection_status": "asleep"}))
        .await
        .expect(400, Some("invalid_json"));
    api.post("/api/v1/groups", json!({"id": "g", "name": "G", "product": "ghost"}))
        .await
        .expect(404, Some("not_found"));
    assert_eq!(api.get("/api/v1/products").await.ok()["total"], 1);
    assert_eq!(api.get("/api/v1/devices").await.ok()["total"], 0);
    assert_eq!(api.get("/api/v1/groups").await.ok()["total"], 0);
    let big = "y".repeat(3 << 20);
    api.raw(Method::POST, "/api/v1/products", "application/json", format!("{{\"key\": \"{big}\"}}"))
        .await
        .expect(413, Some("payload_too_large"));
}

pub async fn upload(api: &Api, product: &str, version: &str, files: &[(&str, Vec<u8>)]) -> Value {
    let mut form =
        reqwest::multipart::Form::new().text("product", product.to_owned()).text("version", version.to_owned());
    for (name, bytes) in files {
        form = form.part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()));
    }
    api.multipart("/api/v1/firmware", form).await.expect(201, None).clone()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn firmware_upload_download_and_delete(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let host: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let module = b"module image".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.1.0")
        .text("id", "fw-2-1-0")
        .text("name", "Spring release")
        .text("release_notes", "Fixes the thing.\nAnd another.")
        .text("metadata", r#"{"campaign": "spring"}"#)
        .text("needs_verification", "true")
        .text("files", r#"[{"name": "module.bin", "component": "wifi", "version": "7.2.0"}]"#)
        .part("file", reqwest::multipart::Part::bytes(host.clone()).file_name("host.bin"))
        .part("file", reqwest::multipart::Part::bytes(module.clone()).file_name("module.bin"));
    let fw = api.multipart("/api/v1/firmware", form).await;
    let fw = fw.expect(201, None).clone();
    assert_eq!(fw["id"], "fw-2-1-0");
    assert_eq!(fw["size"], host.len() as u64 + module.len() as u64);
    assert_eq!((fw["needs_verification"].as_bool(), fw["verified"].as_bool()), (Some(true), Some(false)));
    assert_eq!(fw["metadata"]["campaign"], "spring");
    let files = fw["files"].as_array().unwrap();
    assert_eq!(files[0]["name"], "host.bin");
    assert_eq!(files[0]["component"], "host");
    assert_eq!(files[0]["version"], "2.1.0");
    assert_eq!(files[0]["sha256"], sha256(&host));
    assert_eq!(files[0]["size"], host.len() as u64);
    assert_eq!(files[0]["md5"].as_str().unwrap().len(), 32);
    assert_eq!(files[0]["sha1"].as_str().unwrap().len(), 40);
    assert_eq!((files[1]["component"].as_str(), files[1]["version"].as_str()), (Some("wifi"), Some("7.2.0")));

    let r = api
        .http
        .get(api.server.url("/api/v1/firmware/fw-2-1-0/files/host.bin"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], host.len().to_string().as_str());
    assert_eq!(r.headers()["etag"], format!("\"{}\"", sha256(&host)).as_str());
    assert_eq!(sha256(&r.bytes().await.unwrap()), sha256(&host));
    api.get("/api/v1/firmware/fw-2-1-0/files/nope.bin").await.expect(404, Some("not_found"));

    upload(&api, "thermo", "2.0.0", &[("a.bin", b"a".to_vec())]).await;
    upload(&api, "thermo", "10.0.0", &[("a.bin", b"b".to_vec())]).await;
    let list = api.get("/api/v1/firmware?product=thermo&sort=-created_at&limit=2").await;
    let list = list.ok();
    assert_eq!(list["total"], 3);
    assert_eq!(list["items"][0]["version"], "10.0.0");
    assert_eq!(api.get("/api/v1/firmware?search=spring").await.ok()["total"], 1);
    assert_eq!(api.get("/api/v1/firmware?product=other").await.ok()["total"], 0);
    api.get("/api/v1/firmware?bogus=1").await.expect(400, Some("bad_request"));

    // PRODUCT@VERSION names an image wherever an id is taken: paths and a job's `firmware`.
    let by_name = api.get("/api/v1/firmware/thermo@10.0.0").await.ok().clone();
    assert_eq!(by_name["version"], "10.0.0");
    let r = api.http.get(api.server.url("/api/v1/firmware/thermo@2.1.0/files/host.bin")).bearer_auth(&api.token);
    assert_eq!(sha256(&r.send().await.unwrap().bytes().await.unwrap()), sha256(&host));
    api.get("/api/v1/firmware/thermo@1.0").await.expect(404, Some("not_found"));
    api.get("/api/v1/firmware/other@10.0.0").await.expect(404, Some("not_found"));
    api.post("/api/v1/devices", json!({"id": "d-1", "product": "thermo"})).await.expect(201, None);
    let job = api.post("/api/v1/jobs", json!({"firmware": "thermo@10.0.0", "devices": ["d-1"], "start": false})).await;
    assert_eq!(job.expect(201, None)["firmware"], by_name["id"], "the job holds the image's id");
    api.post("/api/v1/jobs", json!({"firmware": "thermo@9.9.9", "devices": ["d-1"]}))
        .await
        .expect(404, Some("not_found"));
    api.delete("/api/v1/firmware/thermo@2.0.0").await.expect(204, None);
    api.get("/api/v1/firmware/thermo@2.0.0").await.expect(404, Some("not_found"));

    let before = stored_files(&api.server.data_dir()).len();
    api.delete("/api/v1/firmware/fw-2-1-0").await.expect(204, None);
    api.get("/api/v1/firmware/fw-2-1-0").await.expect(404, Some("not_found"));
    assert_eq!(stored_files(&api.server.data_dir()).len(), before - 2, "deleting an image deletes its files");
    api.delete("/api/v1/firmware/fw-2-1-0").await.expect(404, Some("not_found"));
}

async fn firmware_uploads_that_fail_leave_nothing(b: Backend) {
    let server = TestServer::start_with(b, |s| s.max_upload_bytes = 1 << 20).await;
    let api = Api::on(server);
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    upload(&api, "thermo", "1.0.0", &[("fw.bin", b"original".to_vec())]).await;
    let files_before = stored_files(&api.server.data_dir());
    let count = || async { api.get("/api/v1/firmware").await.ok()["total"].as_u64().unwrap() };

    let part = |bytes: Vec<u8>, name: &str| reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
    let cases: Vec<(reqwest::multipart::Form, u16, &str)> = vec![
        // too large, streamed past the limit
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("version", "2.0.0")
                .part("file", part(vec![0; 2 << 20], "big.bin")),
            413,
            "payload_too_large",
        ),
        // the same version again
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("version", "1.0.0")
                .part("file", part(b"x".to_vec(), "fw.bin")),
            409,
            "conflict",
        ),
        // an unknown product
        (
            reqwest::multipart::Form::new()
                .text("product", "ghost")
                .text("version", "2.0.0")
                .part("file", part(b"x".to_vec(), "fw.bin")),
            404,
            "not_found",
        ),
        // not a semantic version
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("version", "two")
                .part("file", part(b"x".to_vec(), "fw.bin")),
            400,
            "validation_failed",
        ),
        // no file
        (reqwest::multipart::Form::new().text("product", "thermo").text("version", "2.0.0"), 400, "validation_failed"),
        // a file name that could escape
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("version", "2.0.0")
                .part("file", part(b"x".to_vec(), "../evil")),
            400,
            "validation_failed",
        ),
        // two files for one component
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("version", "2.0.0")
                .text("files", r#"[{"name":"a.bin","component":"host"},{"name":"b.bin","component":"host"}]"#)
                .part("file", part(b"a".to_vec(), "a.bin"))
                .part("file", part(b"b".to_vec(), "b.bin")),
            400,
            "validation_failed",
        ),
        // bad metadata
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("version", "2.0.0")
                .text("metadata", "[1]")
                .part("file", part(b"x".to_vec(), "fw.bin")),
            400,
            "validation_failed",
        ),
        // an unknown field
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("colour", "red")
                .part("file", part(b"x".to_vec(), "fw.bin")),
            400,
            "validation_failed",
        ),
        // the same id again
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("version", "3.0.0")
                .text("id", "dup")
                .part("file", part(b"x".to_vec(), "fw.bin")),
            201,
            "",
        ),
        (
            reqwest::multipart::Form::new()
                .text("product", "thermo")
                .text("version", "3.0.1")
                .text("id", "dup")
                .part("file", part(b"y".to_vec(), "fw.bin")),
            409,
            "conflict",
        ),
    ];
    for (form, status, code) in cases {
        let r = api.multipart("/api/v1/firmware", form).await;
        r.expect(status, if code.is_empty() { None } else { Some(code) });
    }
    api.raw(Method::POST, "/api/v1/firmware", "application/json", "{}")
        .await
        .expect(415, Some("unsupported_media_type"));
    assert_eq!(count().await, 2, "only the two good uploads exist");
    let after = stored_files(&api.server.data_dir());
    assert_eq!(after.len(), files_before.len() + 1, "rejected uploads left no file: {after:?}");
    let dup = api.get("/api/v1/firmware/dup/files/fw.bin").await;
    assert_eq!(dup.status, 200);
    let r =
        api.http.get(api.server.url("/api/v1/firmware/dup/files/fw.bin")).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"x", "a conflicting upload did not overwrite the original's file");
}

async fn devices(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let d = api
        .post(
            "/api/v1/devices",
            json!({
                "id": "DSN-0001", "product": "thermo", "firmware": {"host": "1.0.0", "wifi": "7.1"},
                "hardware_version": "rev-b", "module_model": "esp32", "module_version": "4.2", "template_id": "tpl-9",
                "properties": {"region": "eu", "temp": 21.5, "beta": true}, "metadata": {"owner": "acme"},
                "activated_at": "2026-01-02T03:04:05Z", "connection_status": "online"
            }),
        )
        .await;
    let d = d.expect(201, None).clone();
    assert!(d["token"].as_str().unwrap().starts_with("upd_d_"));
    assert_eq!(d["properties"], json!({"region": "eu", "temp": 21.5, "beta": true}));
    let got = api.get("/api/v1/devices/DSN-0001").await;
    let got = got.ok();
    assert!(got.get("token").is_none(), "the token is shown only once");
    assert_eq!(got["firmware"]["wifi"], "7.1");
    assert_eq!(got["activated_at"], "2026-01-02T03:04:05Z");
    assert_eq!(got["connection_status"], "online");
    assert_eq!((got["module_model"].as_str(), got["template_id"].as_str()), (Some("esp32"), Some("tpl-9")));
    api.post("/api/v1/devices", json!({"id": "DSN-0001", "product": "thermo"})).await.expect(409, Some("conflict"));

    let u = api
        .patch(
            "/api/v1/devices/DSN-0001",
            json!({"firmware": {"host": "1.1.0"}, "template_id": null, "properties": {"region": "us"}}),
        )
        .await;
    let u = u.ok();
    assert_eq!(
        (u["firmware"].clone(), u["template_id"].clone(), u["properties"].clone()),
        (json!({"host": "1.1.0"}), Value::Null, json!({"region": "us"}))
    );
    assert_eq!(u["hardware_version"], "rev-b", "absent fields stay");
    api.patch("/api/v1/devices/DSN-0001", json!({"properties": {"x y": 1}}))
        .await
        .expect(400, Some("validation_failed"));
    assert_eq!(api.get("/api/v1/devices/DSN-0001").await.ok()["properties"], json!({"region": "us"}));
    api.patch("/api/v1/devices/nope", json!({})).await.expect(404, Some("not_found"));

    for i in 0..25 {
        api.post("/api/v1/devices", json!({"id": format!("B-{i:03}"), "product": "thermo", "hardware_version": if i % 2 == 0 { "rev-a" } else { "rev-c" }})).await.expect(201, None);
    }
    let page = api.get("/api/v1/devices?limit=10&offset=20&sort=id").await;
    let page = page.ok();
    assert_eq!(page["total"], 26);
    assert_eq!(
        page["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["B-020", "B-021", "B-022", "B-023", "B-024", "DSN-0001"]
    );
    assert_eq!(api.get("/api/v1/devices?search=rev-a").await.ok()["total"], 13);
    assert_eq!(api.get("/api/v1/devices?sort=-id&limit=1").await.ok()["items"][0]["id"], "DSN-0001");
    assert_eq!(api.get("/api/v1/devices?product=other").await.ok()["total"], 0);
    api.delete("/api/v1/devices/B-000").await.expect(204, None);
    api.get("/api/v1/devices/B-000").await.expect(404, Some("not_found"));
}

async fn bulk_import_ndjson_and_csv(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let ndjson: String = (0..3000)
        .map(|i| json!({"id": format!("N-{i:05}"), "product": "thermo", "firmware": {"host": "1.0.0"}, "properties": {"n": i}}).to_string() + "\n")
        .collect();
    let r = api.raw(Method::POST, "/api/v1/devices/import", "application/x-ndjson", ndjson).await;
    let r = r.expect(201, None);
    assert_eq!(r["created"], 3000);
    let tokens = r["devices"].as_array().unwrap();
    assert_eq!(tokens.len(), 3000);
    assert_eq!(tokens[7]["id"], "N-00007");
    assert!(tokens[7]["token"].as_str().unwrap().starts_with("upd_d_"));
    assert_eq!(api.get("/api/v1/devices/N-02999").await.ok()["properties"]["n"], 2999.0);

    let csv = "id,product,hardware_version,firmware.host,prop.region,prop.temp:number,prop.beta:bool,meta.owner,activated_at,connection_status\n\
               C-1,thermo,rev-a,1.0.0,eu,21.5,true,acme,2026-01-01T00:00:00Z,online\n\
               C-2,thermo,,2.0.0,us,,false,,,\n";
    let r = api.raw(Method::POST, "/api/v1/devices/import", "text/csv; charset=utf-8", csv).await;
    assert_eq!(r.expect(201, None)["created"], 2);
    let c1 = api.get("/api/v1/devices/C-1").await;
    let c1 = c1.ok();
    assert_eq!(c1["properties"], json!({"region": "eu", "temp": 21.5, "beta": true}));
    assert_eq!((c1["metadata"]["owner"].as_str(), c1["connection_status"].as_str()), (Some("acme"), Some("online")));
    assert_eq!(api.get("/api/v1/devices/C-2").await.ok()["hardware_version"], Value::Null);

    // A batch with problems on several lines is rejected whole, and each line is named.
    let bad = [
        json!({"id": "X-1", "product": "thermo"}).to_string(),
        json!({"id": "N-00001", "product": "thermo"}).to_string(),
        "{not json".to_owned(),
        json!({"id": "X-2", "product": "ghost"}).to_string(),
        json!({"id": "X-1", "product": "thermo"}).to_string(),
        json!({"id": "bad id", "product": "thermo"}).to_string(),
    ]
    .join("\n");
    let r = api.raw(Method::POST, "/api/v1/devices/import", "application/x-ndjson", bad.clone()).await;
    let details = r.expect(422, Some("import_rejected"))["error"]["details"].as_array().unwrap().clone();
    let lines: Vec<u64> = details.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 6], "syntax and validation problems come first: {details:?}");
    let fixable =
        bad.lines().enumerate().filter(|(i, _)| *i != 2 && *i != 5).map(|(_, l)| l).collect::<Vec<_>>().join("\n");
    let r = api.raw(Method::POST, "/api/v1/devices/import", "application/x-ndjson", fixable).await;
    let details = r.expect(422, Some("import_rejected"))["error"]["details"].as_array().unwrap().clone();
    let lines: Vec<u64> = details.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 4], "an existing id, an unknown product, a repeated id: {details:?}");
    api.get("/api/v1/devices/X-1").await.expect(404, Some("not_found"));
    assert_eq!(api.get("/api/v1/devices").await.ok()["total"], 3002, "nothing of a rejected batch was written");

    let r = api.raw(Method::POST, "/api/v1/devices/import", "text/csv", "id,product,colour\nA,thermo,red\n").await;
    r.expect(400, Some("validation_failed"));
    let r =
        api.raw(Method::POST, "/api/v1/devices/import", "text/csv", "id,product,prop.t:number\nA,thermo,warm\n").await;
    assert_eq!(r.expect(422, Some("import_rejected"))["error"]["details"][0]["line"], 2);
    api.raw(Method::POST, "/api/v1/devices/import", "application/xml", "<x/>")
        .await
        .expect(415, Some("unsupported_media_type"));
    api.raw(Method::POST, "/api/v1/devices/import", "application/x-ndjson", "\n\n")
        .await
        .expect(400, Some("bad_request"));
}

async fn groups(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    api.post("/api/v1/products", json!({"key": "plug"})).await.expect(201, None);
    let ndjson: String =
        (0..40).map(|i| json!({"id": format!("T{i:02}"), "product": "thermo"}).to_string() + "\n").collect();
    api.raw(Method::POST, "/api/v1/devices/import", "application/x-ndjson", ndjson).await.expect(201, None);
    api.post("/api/v1/devices", json!({"id": "P1", "product": "plug"})).await.expect(201, None);

    let g = api
        .post("/api/v1/groups", json!({"id": "lab", "name": "Lab", "product": "thermo", "description": "bench"}))
        .await;
    assert_eq!(g.expect(201, None)["member_count"], 0);
    api.post("/api/v1/groups", json!({"id": "lab", "name": "again"})).await.expect(409, Some("conflict"));
    let generated = api.post("/api/v1/groups", json!({"name": "Anything"})).await;
    let generated_id = generated.expect(201, None)["id"].as_str().unwrap().to_owned();

    let add: Vec<String> = (0..30).map(|i| format!("T{i:02}")).collect();
    let r = api.post("/api/v1/groups/lab/members", json!({"add": add})).await;
    assert_eq!((r.ok()["added"].as_u64(), r.ok()["member_count"].as_u64()), (Some(30), Some(30)));
    let r = api.post("/api/v1/groups/lab/members", json!({"add": ["T35", "P1", "ghost"], "remove": ["T00"]})).await;
    let details = r.expect(400, Some("validation_failed"))["error"]["details"].as_array().unwrap().clone();
    assert_eq!(details.len(), 2, "{details:?}");
    assert_eq!(api.get("/api/v1/groups/lab").await.ok()["member_count"], 30, "a rejected change changes nothing");
    let r = api.post("/api/v1/groups/lab/members", json!({"remove": ["T00", "T01", "T39"]})).await;
    assert_eq!((r.ok()["removed"].as_u64(), r.ok()["member_count"].as_u64()), (Some(2), Some(28)));
    api.post(&format!("/api/v1/groups/{generated_id}/members"), json!({"add": ["P1", "T05"]})).await.ok();

    let m = api.get("/api/v1/groups/lab/members?limit=5&offset=25&sort=id").await;
    let m = m.ok();
    assert_eq!(m["total"], 28);
    assert_eq!(
        m["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["T27", "T28", "T29"]
    );
    assert_eq!(api.get("/api/v1/devices?group=lab&search=T1").await.ok()["total"], 10);
    api.get("/api/v1/groups/nope/members").await.expect(404, Some("not_found"));

    let l = api.get("/api/v1/groups?sort=name").await;
    assert_eq!(
        l.ok()["items"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["Anything", "Lab"]
    );
    assert_eq!(
        api.patch("/api/v1/groups/lab", json!({"name": "Laboratory", "description": null})).await.ok()["name"],
        "Laboratory"
    );
    api.delete("/api/v1/devices/T05").await.expect(204, None);
    assert_eq!(api.get(&format!("/api/v1/groups/{generated_id}")).await.ok()["member_count"], 1);
    api.delete("/api/v1/groups/lab").await.expect(204, None);
    api.get("/api/v1/groups/lab").await.expect(404, Some("not_found"));
    api.get("/api/v1/devices/T10").await.expect(200, None);
}

async fn data_survives_a_restart(b: Backend) {
    let server = TestServer::start(b).await;
    let settings = server.settings.clone();
    let api = Api::on(server);
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let fw = upload(&api, "thermo", "1.0.0", &[("fw.bin", b"persisted".to_vec())]).await;
    let dir = api.server.stop().await;
    let api = Api::on(TestServer::start_settings(settings).await);
    api.get("/api/v1/products/thermo").await.expect(200, None);
    let id = fw["id"].as_str().unwrap();
    let r = api
        .http
        .get(api.server.url(&format!("/api/v1/firmware/{id}/files/fw.bin")))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"persisted");
    drop(dir);
}
