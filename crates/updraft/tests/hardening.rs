//! Hardening, over real HTTP on SQLite and on PostgreSQL: input PostgreSQL
//! cannot store, links no header can redirect, security headers, private
//! files, API key lock-outs and expiry, idempotent imports and token reissue,
//! device API rate limits.

mod common;

use common::{ADMIN_TOKEN, Api, Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(
    text_postgresql_cannot_store_is_refused_with_400_everywhere,
    download_links_ignore_forged_host_headers,
    management_answers_carry_security_headers_and_no_cors_by_default,
    data_directory_and_database_are_private_to_the_server_user,
    tenant_admins_can_never_lock_out_the_server_or_their_tenant,
    key_listing_shows_only_a_prefix_and_expired_keys_answer_401,
    a_retried_import_gets_the_first_answer_and_tokens_that_work,
    a_reissued_device_token_replaces_the_old_one_at_once,
    an_address_that_fails_to_authenticate_too_often_is_refused_for_a_while,
    a_device_polling_too_fast_gets_429_and_others_do_not,
    device_api_limits_per_address_are_off_by_default_and_separate_from_keys,
);

async fn device_get(api: &Api, token: &str, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut r = api.http.get(url).header("authorization", format!("TargetToken {token}"));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn text_postgresql_cannot_store_is_refused_with_400_everywhere(b: Backend) {
    let api = Api::start(b).await;
    let token = common::device_with_work(&api).await.1;

    // JSON bodies: the field is named, at any depth.
    let r = api.post("/api/v1/products", json!({"key": "p2", "name": "a\u{0}b"})).await;
    assert_eq!(r.expect(400, Some("validation_failed"))["error"]["details"][0]["field"], "name");
    let r =
        api.post("/api/v1/devices", json!({"id": "d2", "product": "thermo", "properties": {"site": "x\u{0}"}})).await;
    assert_eq!(r.expect(400, Some("validation_failed"))["error"]["details"][0]["field"], "properties.site");
    let r = api.post("/api/v1/devices", json!({"id": "d2", "product": "thermo", "metadata": {"k\u{0}": "v"}})).await;
    r.expect(400, Some("validation_failed"));
    api.patch("/api/v1/products/thermo", json!({"description": "\u{0}"})).await.expect(400, Some("validation_failed"));
    api.post("/api/v1/devices/search", json!({"query": "hardware_version == \"\u{0}\""}))
        .await
        .expect(400, Some("validation_failed"));
    // Query strings and path ids.
    let r = api.get("/api/v1/devices?search=%00").await;
    assert!(r.expect(400, Some("bad_request"))["error"]["message"].as_str().unwrap().contains("search"));
    api.get("/api/v1/products?search=a%00").await.expect(400, Some("bad_request"));
    api.get("/api/v1/devices/dev%000").await.expect(400, Some("bad_request"));
    api.delete("/api/v1/products/thermo%00").await.expect(400, Some("bad_request"));
    // Imports: a raw NUL in CSV, an escaped one in NDJSON (named by line and field): 400, nothing imported.
    api.raw(Method::POST, "/api/v1/devices/import", "text/csv", "id,product\nd3\0,thermo\n")
        .await
        .expect(400, Some("bad_request"));
    let r = api
        .raw(
            Method::POST,
            "/api/v1/devices/import",
            "application/x-ndjson",
            "{\"id\": \"d4\", \"product\": \"thermo\", \"hardware_version\": \"\\u0000\"}\n",
        )
        .await;
    let details = &r.expect(400, Some("bad_request"))["error"]["details"][0];
    assert_eq!((details["line"].as_u64(), details["field"].as_str()), (Some(1), Some("hardware_version")));
    // Multipart text fields.
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "3.0.0")
        .text("name", "bad\u{0}name")
        .part("file", reqwest::multipart::Part::bytes(vec![1u8; 10]).file_name("a.bin"));
    api.multipart("/api/v1/firmware", form).await.expect(400, Some("validation_failed"));

    // The device API: bodies, paths and query strings.
    let base = api.server.url("/default/controller/v1/dev-0");
    let r = api
        .http
        .put(format!("{base}/configData"))
        .header("authorization", format!("TargetToken {token}"))
        .json(&json!({"mode": "merge", "data": {"site": "x\u{0}"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = device_get(&api, &token, &format!("{base}/deploymentBase/1%00"), &[]).await;
    assert_eq!(status, 400);
    let (status, _) = device_get(&api, &token, &format!("{base}?c=%00"), &[]).await;
    assert_eq!(status, 400);

    // Nothing was written, and the store still answers.
    let products = api.get("/api/v1/products").await;
    assert_eq!(products.ok()["total"], 1);
    assert_eq!(api.get("/api/v1/devices").await.ok()["total"], 1);
    let device = api.get("/api/v1/devices/dev-0").await;
    assert_eq!(device.ok()["properties"], json!({}));
}

async fn download_links_ignore_forged_host_headers(b: Backend) {
    let api = Api::start(b).await;
    let token = common::device_with_work(&api).await.1;
    let base = api.server.url("/default/controller/v1/dev-0");
    let own = format!("http://{}/default/controller/v1/dev-0", api.server.addr);
    let forged: &[(&str, &str)] =
        &[("host", "evil.example"), ("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "https")];

    let (_, poll) = device_get(&api, &token, &base, forged).await;
    let deployment = poll["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
    assert!(deployment.starts_with(&format!("{own}/deploymentBase/")), "{deployment}");
    let (_, answer) = device_get(&api, &token, &deployment.replace(&own, &base), forged).await;
    let links = answer["deployment"]["chunks"][0]["artifacts"][0]["_links"].to_string();
    assert!(links.contains(&format!("{own}/softwaremodules/")) && !links.contains("evil"), "{links}");

    // A configured public URL is the base of every link, whatever the headers say.
    let api =
        Api::on(TestServer::start_with(b, |s| s.public_url = Some("https://updates.example.com/ota/".into())).await);
    let token = common::device_with_work(&api).await.1;
    let (_, poll) = device_get(&api, &token, &api.server.url("/default/controller/v1/dev-0"), forged).await;
    let href = poll["_links"]["deploymentBase"]["href"].as_str().unwrap();
    assert!(href.starts_with("https://updates.example.com/ota/default/controller/v1/dev-0/deploymentBase/"), "{href}");
    // An unusable public URL stops the server at start.
    let bad = Settings { public_url: Some("updates.example.com".into()), ..Settings::default() };
    assert!(updraft::backends::build(bad, std::sync::Arc::new(updraft_app::SystemClock)).await.is_err());
}

use updraft_server::{Clock, Settings};

async fn management_answers_carry_security_headers_and_no_cors_by_default(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let token_answers = [
        api.post("/api/v1/keys", json!({"role": "viewer"})).await,
        api.post("/api/v1/devices", json!({"id": "d1", "product": "thermo"})).await,
        api.raw(Method::POST, "/api/v1/devices/import", "text/csv", "id,product\nd2,thermo\n").await,
        api.post("/api/v1/gateway-tokens", json!({"name": "gw"})).await,
        api.post("/api/v1/tenants", json!({"name": "acme"})).await,
    ];
    for answer in &token_answers {
        answer.ok();
        assert_eq!(answer.headers["cache-control"], "no-store", "{}", answer.body);
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    }
    // No CORS unless configured: a browser on another origin gets no permission.
    let preflight = |api: &Api, origin: &'static str| {
        api.http
            .request(Method::OPTIONS, api.server.url("/api/v1/devices"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = preflight(&api, "https://console.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = api.http.get(api.server.url("/api/v1/devices")).header("origin", "https://console.example");
    let r = r.bearer_auth(&api.token).send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let server = TestServer::start_with(b, |s| s.cors_allowed_origins = vec!["https://console.example".into()]).await;
    let api = Api::on(server);
    let r = preflight(&api, "https://console.example").await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://console.example");
    let r = preflight(&api, "https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

async fn data_directory_and_database_are_private_to_the_server_user(b: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start_with(b, |s| s.data_dir = s.data_dir.join("var/updraft")).await;
    let api = Api::on(server);
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "1.0.0")
        .part("file", reqwest::multipart::Part::bytes(vec![1u8; 100]).file_name("a.bin"));
    api.multipart("/api/v1/firmware", form).await.expect(201, None);
    let data = api.server.data_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(data.parent().unwrap()), 0o700, "the directories created for it");
    let firmware = common::stored_files(&data);
    assert!(!firmware.is_empty());
    for path in firmware {
        assert_eq!(mode(&path) & 0o077, 0, "{}", path.display());
        let mut dir = path.parent().unwrap();
        while dir != data {
            assert_eq!(mode(dir), 0o700, "{}", dir.display());
            dir = dir.parent().unwrap();
        }
    }
    if b == Backend::Sqlite {
        for name in ["updraft.db", "updraft.db-wal", "updraft.db-shm"] {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
    }
}

async fn tenant_admins_can_never_lock_out_the_server_or_their_tenant(b: Backend) {
    let api = Api::start(b).await;
    let later = "2999-01-01T00:00:00Z";
    // A tenant admin of the server administrator's own tenant cannot remove or weaken its key.
    let default_admin = api.key("admin").await;
    let admin = api.as_key(&default_admin);
    admin.delete("/api/v1/keys/bootstrap").await.expect(409, Some("server_admin_key"));
    admin.patch("/api/v1/keys/bootstrap", json!({"role": "viewer"})).await.expect(409, Some("server_admin_key"));
    admin.patch("/api/v1/keys/bootstrap", json!({"expires_at": later})).await.expect(409, Some("server_admin_key"));
    assert_eq!(api.get("/api/v1/keys").await.ok()["total"], 2, "the server administrator's key still works");

    // A tenant keeps its last admin key that never expires.
    let acme = api.post("/api/v1/tenants", json!({"name": "acme"})).await;
    let first = acme.expect(201, None)["key"]["id"].as_str().unwrap().to_owned();
    let acme_admin = acme.body["token"].as_str().unwrap().to_owned();
    let acme = api.as_key(&acme_admin);
    let first_key = format!("/api/v1/keys/{first}");
    acme.delete(&first_key).await.expect(409, Some("last_admin_key"));
    acme.patch(&first_key, json!({"role": "operator"})).await.expect(409, Some("last_admin_key"));
    acme.patch(&first_key, json!({"expires_at": later})).await.expect(409, Some("last_admin_key"));
    // An expiring admin key does not count; a lasting one does.
    let expiring = acme.post("/api/v1/keys", json!({"role": "admin", "expires_at": later})).await;
    expiring.expect(201, None);
    acme.delete(&first_key).await.expect(409, Some("last_admin_key"));
    let second = acme.post("/api/v1/keys", json!({"role": "admin"})).await;
    let second_token = second.expect(201, None)["token"].as_str().unwrap().to_owned();
    let second = format!("/api/v1/keys/{}", second.body["id"].as_str().unwrap());
    acme.patch(&first_key, json!({"role": "viewer", "name": "read only"})).await.expect(200, None);
    acme.get("/api/v1/keys").await.expect(403, Some("forbidden"));
    let acme = api.as_key(&second_token);
    acme.delete(&second).await.expect(409, Some("last_admin_key"));
    acme.patch(&second, json!({"role": "operator"})).await.expect(409, Some("last_admin_key"));
    let viewer = acme.post("/api/v1/keys", json!({"role": "viewer"})).await;
    acme.delete(&format!("/api/v1/keys/{}", viewer.expect(201, None)["id"].as_str().unwrap())).await.expect(204, None);

    // The server administrator issues keys for any tenant; no one else may.
    let issued = api.post("/api/v1/tenants/acme/keys", json!({"role": "admin", "name": "recovery"})).await;
    assert_eq!(issued.expect(201, None)["tenant"], "acme");
    assert_eq!(issued.headers["cache-control"], "no-store");
    let recovery = api.as_key(issued.body["token"].as_str().unwrap());
    assert!(
        recovery.get("/api/v1/keys").await.ok()["items"].as_array().unwrap().iter().any(|k| k["name"] == "recovery")
    );
    acme.post("/api/v1/tenants/acme/keys", json!({"role": "admin"})).await.expect(403, Some("forbidden"));
    admin.post("/api/v1/tenants/acme/keys", json!({"role": "admin"})).await.expect(403, Some("forbidden"));
    api.post("/api/v1/tenants/nope/keys", json!({"role": "admin"})).await.expect(404, Some("not_found"));
    api.post("/api/v1/tenants/acme/keys", json!({"role": "root"})).await.expect(400, Some("validation_failed"));
}

async fn key_listing_shows_only_a_prefix_and_expired_keys_answer_401(b: Backend) {
    let (server, clock) = TestServer::start_clocked(b, |_| {}).await;
    let api = Api::on(server);
    let in_an_hour = (clock.now() + jiff::SignedDuration::from_hours(1)).to_string();
    let created = api.post("/api/v1/keys", json!({"role": "viewer", "expires_at": in_an_hour})).await;
    let token = created.expect(201, None)["token"].as_str().unwrap().to_owned();
    let listed = api.get("/api/v1/keys").await;
    for key in listed.ok()["items"].as_array().unwrap() {
        assert!(key.get("token").is_none(), "{key}");
        let prefix = key["token_prefix"].as_str().unwrap();
        assert!(prefix.len() <= 10 && prefix.len() >= 4, "{key}");
        if key["id"] == created.body["id"] {
            assert!(token.starts_with(prefix) && prefix.len() == 10, "{key}");
            assert_eq!(key["expires_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().to_string(), in_an_hour);
        } else {
            assert!(ADMIN_TOKEN.starts_with(prefix), "{key}");
        }
    }
    let viewer = api.as_key(&token);
    viewer.get("/api/v1/products").await.expect(200, None);
    clock.advance(jiff::SignedDuration::from_mins(61));
    viewer.get("/api/v1/products").await.expect(401, Some("unauthorized"));
    let past = (clock.now() - jiff::SignedDuration::from_secs(1)).to_string();
    let r = api.post("/api/v1/keys", json!({"role": "viewer", "expires_at": past})).await;
    assert_eq!(r.expect(400, Some("validation_failed"))["error"]["details"][0]["field"], "expires_at");
}

async fn import_with_key(api: &Api, token: &str, key: Option<&str>, csv: &str) -> common::Answer {
    let mut r = api
        .http
        .post(api.server.url("/api/v1/devices/import"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned());
    if let Some(key) = key {
        r = r.header("idempotency-key", key);
    }
    common::answer(r.send().await.unwrap()).await
}

async fn poll_status(api: &Api, device: &str, token: &str) -> u16 {
    let url = api.server.url(&format!("/default/controller/v1/{device}"));
    let r = api.http.get(url).header("authorization", format!("TargetToken {token}")).send().await.unwrap();
    r.status().as_u16()
}

async fn a_retried_import_gets_the_first_answer_and_tokens_that_work(b: Backend) {
    let (server, clock) = TestServer::start_clocked(b, |_| {}).await;
    let api = Api::on(server);
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let operator = api.key("operator").await;
    let csv = "id,product\nd1,thermo\nd2,thermo\n";

    let first = import_with_key(&api, &operator, Some("import-0001"), csv).await;
    first.expect(201, None);
    assert!(first.headers.get("idempotent-replayed").is_none());
    // The client lost that answer: its retry gets the same one, tokens included, and nothing more is created.
    let retry = import_with_key(&api, &operator, Some("\"import-0001\""), csv).await;
    assert_eq!((retry.status.as_u16(), &retry.body), (201, &first.body));
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.headers["cache-control"], "no-store");
    assert_eq!(api.get("/api/v1/devices").await.ok()["total"], 2);
    for d in retry.body["devices"].as_array().unwrap() {
        assert_eq!(poll_status(&api, d["id"].as_str().unwrap(), d["token"].as_str().unwrap()).await, 200);
    }
    // Retries that arrive together get the one answer too.
    let (a, c) = tokio::join!(
        import_with_key(&api, &operator, Some("import-0002"), "id,product\nd3,thermo\n"),
        import_with_key(&api, &operator, Some("import-0002"), "id,product\nd3,thermo\n"),
    );
    assert_eq!((a.status.as_u16(), c.status.as_u16(), &a.body), (201, 201, &c.body));
    // Another request under the same key is refused; another API key's keys are its own.
    let other = import_with_key(&api, &operator, Some("import-0001"), "id,product\nd9,thermo\n").await;
    other.expect(422, Some("idempotency_key_reused"));
    let admin = import_with_key(&api, ADMIN_TOKEN, Some("import-0001"), csv).await;
    admin.expect(422, Some("import_rejected"));
    import_with_key(&api, &operator, Some(&"x".repeat(256)), csv).await.expect(400, Some("bad_request"));
    // Keys are kept for a day: after that the same key runs the import again.
    clock.advance(jiff::SignedDuration::from_hours(25));
    import_with_key(&api, &operator, Some("import-0001"), csv).await.expect(422, Some("import_rejected"));
    assert_eq!(api.get("/api/v1/devices").await.ok()["total"], 3);
}

async fn a_reissued_device_token_replaces_the_old_one_at_once(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let d = api.post("/api/v1/devices", json!({"id": "d1", "product": "thermo"})).await;
    let old = d.expect(201, None)["token"].as_str().unwrap().to_owned();
    // Polls put the old token in the poll cache.
    assert_eq!(poll_status(&api, "d1", &old).await, 200);
    assert_eq!(poll_status(&api, "d1", &old).await, 200);
    let r = api.post("/api/v1/devices/d1/token", json!({})).await;
    let new = r.expect(200, None)["token"].as_str().unwrap().to_owned();
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_ne!(new, old);
    assert_eq!(poll_status(&api, "d1", &old).await, 401, "the old token stops working at once");
    assert_eq!(poll_status(&api, "d1", &new).await, 200);
    api.post("/api/v1/devices/nope/token", json!({})).await.expect(404, Some("not_found"));
    let viewer = api.key("viewer").await;
    api.as_key(&viewer).post("/api/v1/devices/d1/token", json!({})).await.expect(403, Some("forbidden"));
}

/// Failed authentications are counted per source address across the
/// management API, the device API and the dashboard's sign-in; past the
/// budget the address gets 429 with `Retry-After`, even with a good key,
/// while other addresses go on.
async fn an_address_that_fails_to_authenticate_too_often_is_refused_for_a_while(b: Backend) {
    let server = TestServer::start_with(b, |s| {
        s.auth_failures_per_minute = 1;
        s.auth_failures_burst = 3;
    })
    .await;
    let api = Api::on(server);
    api.get("/api/v1/products").await.expect(200, None);
    api.as_key("").get("/api/v1/products").await.expect(401, Some("unauthorized"));
    api.as_key("").get("/api/v1/products").await.expect(401, Some("unauthorized"));
    api.get("/api/v1/products").await.expect(200, None);
    for _ in 0..2 {
        api.as_key("upd_k_wrong").get("/api/v1/products").await.expect(401, Some("unauthorized"));
    }
    let device = format!("{}/default/controller/v1/dev-0", api.server.url(""));
    let bad_device = api.http.get(&device).header("authorization", "TargetToken upd_d_wrong").send().await.unwrap();
    assert_eq!(bad_device.status(), 401, "the third failure");
    let refused = api.get("/api/v1/products").await;
    refused.expect(429, Some("rate_limited"));
    let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let device_refused = api.http.get(&device).header("authorization", "TargetToken upd_d_wrong").send().await.unwrap();
    assert_eq!(device_refused.status(), 429);
    assert!(device_refused.headers().contains_key("retry-after"));

    // Another address is not held up.
    let elsewhere =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let ok = elsewhere
        .get(api.server.url("/api/v1/products"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // The burst is a security event of the server: in the administrator's audit log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page: serde_json::Value = elsewhere
            .get(api.server.url("/api/v1/audit?kind=security."))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(e) = page["items"].as_array().and_then(|i| i.first()) {
            assert_eq!((e["kind"].as_str(), e["subject"].as_str()), (Some("security.auth_blocked"), Some("127.0.0.1")));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the blocked address is in the audit log: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Two devices with work (`dev-0`, `dev-1`): their tokens and the firmware id.
async fn two_devices(api: &Api) -> (Vec<String>, String) {
    let (fw, token) = common::device_with_work(api).await;
    let other = api.post("/api/v1/devices", json!({"id": "dev-1", "product": "thermo"})).await;
    (vec![token, other.expect(201, None)["token"].as_str().unwrap().to_owned()], fw)
}

async fn a_device_polling_too_fast_gets_429_and_others_do_not(b: Backend) {
    let server = TestServer::start_with(b, |s| {
        s.ddi_rate_limit_per_minute = 6;
        s.ddi_rate_limit_burst = 3;
        // The management API's own budget is tiny too: the two never share one.
        s.api_rate_limit_per_sec = 1;
        s.api_rate_limit_burst = 100;
    })
    .await;
    let api = Api::on(server);
    let (tokens, fw) = two_devices(&api).await;
    let url = |i: usize| api.server.url(&format!("/default/controller/v1/dev-{i}"));
    for _ in 0..3 {
        assert_eq!(device_get(&api, &tokens[0], &url(0), &[]).await.0, 200);
    }
    let r = api.http.get(url(0)).header("authorization", format!("TargetToken {}", tokens[0])).send().await.unwrap();
    assert_eq!(r.status(), 429, "over its budget");
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "one request refills in 10 s: {wait}");
    // Downloads are not counted: a client resuming with ranges makes many.
    let artifact = format!("{}/softwaremodules/{fw}/artifacts/app.bin", url(0));
    for _ in 0..5 {
        let (status, _) = device_get(&api, &tokens[0], &artifact, &[("range", "bytes=0-9")]).await;
        assert_eq!(status, 206);
    }
    assert_eq!(device_get(&api, &tokens[1], &url(1), &[]).await.0, 200, "another device is not held up");
    api.get("/api/v1/devices").await.expect(200, None);
    // A device's budget is its own: nobody else spends it with its id in the path.
    let stranger = api.http.get(url(1)).header("authorization", "TargetToken upd_d_wrong").send().await.unwrap();
    assert_eq!(stranger.status(), 401);
    assert_eq!(device_get(&api, &tokens[1], &url(1), &[]).await.0, 200);
    let metrics = api.http.get(api.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("updraft_ddi_rate_limited_total{limit=\"device\"}"), "{metrics}");
}

async fn device_api_limits_per_address_are_off_by_default_and_separate_from_keys(b: Backend) {
    // The defaults never hold up a fleet polling every 5 s through one address (the simulator's case).
    let defaults = updraft_server::Settings::default();
    assert_eq!(defaults.ddi_address_rate_limit_per_minute, 0, "off");
    assert!(defaults.ddi_rate_limit_per_minute >= 12 && defaults.ddi_rate_limit_burst >= 12);

    let server = TestServer::start_with(b, |s| {
        s.ddi_address_rate_limit_per_minute = 6;
        s.ddi_address_rate_limit_burst = 2;
    })
    .await;
    let api = Api::on(server);
    let (tokens, _) = two_devices(&api).await;
    let url = |i: usize| api.server.url(&format!("/default/controller/v1/dev-{i}"));
    assert_eq!(device_get(&api, &tokens[0], &url(0), &[]).await.0, 200);
    assert_eq!(device_get(&api, &tokens[1], &url(1), &[]).await.0, 200);
    let r = api.http.get(url(1)).header("authorization", format!("TargetToken {}", tokens[1])).send().await.unwrap();
    assert_eq!(r.status(), 429, "the address is over its budget, whichever device");
    assert!(r.headers().contains_key("retry-after"));
    for _ in 0..5 {
        api.get("/api/v1/devices").await.expect(200, None);
    }
    let elsewhere =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let r = elsewhere.get(url(0)).header("authorization", format!("TargetToken {}", tokens[0])).send().await.unwrap();
    assert_eq!(r.status(), 200, "another address is not held up");
}
