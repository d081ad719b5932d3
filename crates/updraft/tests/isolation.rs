//! Tenants and roles, checked on every operation of the management API as the
//! OpenAPI document lists it (a new endpoint is covered without editing this
//! test), on SQLite and on PostgreSQL:
//! - another tenant's administrator, naming this tenant's resources, is
//!   answered 404 on every operation with a path parameter, and changes nothing;
//! - a viewer key is answered 403 on every operation that writes.
//!
//! "Changes nothing" is read from this tenant's audit log, which records every
//! change made with a key.

mod common;

use common::{Api, Backend, device_with_work};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(other_tenants_see_nothing_and_viewers_write_nothing);

/// Operations that read although they are POSTs (a body too large for a query string).
const READS_BY_POST: &[&str] = &["/api/v1/devices/search", "/api/v1/filters/estimate", "/api/v1/filters/preview"];

/// The operations of the document: (method, path template).
fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let m = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            out.push((m, path.clone()));
        }
    }
    assert!(out.len() > 50, "the document lists the operations: {}", out.len());
    out
}

/// The path with this tenant's resources in its parameters.
fn concrete(template: &str, ids: &Value) -> String {
    let mut path = template.to_owned();
    let resource = template.trim_start_matches("/api/v1/").split('/').next().unwrap().to_owned();
    for (param, value) in [
        ("{key}", ids["product"].as_str().unwrap()),
        ("{name}", ids["file"].as_str().unwrap()),
        ("{job}", ids["job"].as_str().unwrap()),
        ("{role}", "timestamp"),
    ] {
        path = path.replace(param, value);
    }
    if let Some(v) = ids[&resource].as_str() {
        path = path.replace("{id}", v);
    }
    assert!(!path.contains('{'), "a parameter this test has no resource for: {template}");
    path
}

/// A body the operation takes (an empty object where it takes one with nothing required).
fn body(template: &str) -> Value {
    match template {
        t if t.ends_with("/consent") => json!({"decision": "approve"}),
        t if t.ends_with("/password") => json!({"password": "another good password"}),
        t if t.ends_with("/keys") => json!({"role": "viewer"}),
        t if t.ends_with("/access-keys") => json!({"key": "k"}),
        t if t.ends_with("/group-tokens") => json!({"group": "lab", "key": "k"}),
        _ => json!({}),
    }
}

async fn audit_len(api: &Api) -> usize {
    api.get("/api/v1/audit?limit=1000").await.ok()["items"].as_array().unwrap().len()
}

async fn other_tenants_see_nothing_and_viewers_write_nothing(b: Backend) {
    let api = Api::start(b).await;
    let (fw, _) = device_with_work(&api).await;
    let file = api.get(&format!("/api/v1/firmware/{fw}")).await.ok()["files"][0]["name"].as_str().unwrap().to_owned();
    api.post("/api/v1/groups", json!({"id": "lab", "name": "Lab"})).await.expect(201, None);
    let filter = api.post("/api/v1/filters", json!({"name": "All", "query": "all"})).await.ok()["id"].clone();
    let gateway = api.post("/api/v1/gateway-tokens", json!({"name": "gw"})).await.ok()["id"].clone();
    let key = api.post("/api/v1/keys", json!({"role": "operator"})).await.ok()["id"].clone();
    let access_key = api.post("/api/v1/access-keys", json!({"key": key})).await.ok()["id"].clone();
    let group_token = api.post("/api/v1/group-tokens", json!({"group": "lab", "key": key})).await.ok()["id"].clone();
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_owned()]).unwrap();
    let anchor = api.post("/api/v1/trust-anchors", json!({"certificate": ca.cert.pem()})).await.ok()["id"].clone();
    let profile =
        json!({"name": "ota", "private_key": ca.signing_key.serialize_pem(), "certificate_chain": ca.cert.pem()});
    api.post("/api/v1/signing-profiles", profile).await.expect(201, None);
    let user = api
        .post("/api/v1/users", json!({"name": "ann", "role": "operator", "password": "correct horse battery"}))
        .await
        .ok()["id"]
        .clone();
    let ids = json!({
        "product": "thermo", "file": file, "job": "rollout", "firmware": fw, "devices": "dev-0", "jobs": "rollout",
        "groups": "lab", "filters": filter, "gateway-tokens": gateway, "keys": key, "access-keys": access_key,
        "group-tokens": group_token, "users": user, "tenants": "default",
        "trust-anchors": anchor, "signing-profiles": "ota",
    });
    let doc = api.as_key("").get("/api/v1/openapi.json").await.ok().clone();
    let ops = operations(&doc);

    // Another tenant's administrator.
    let globex =
        api.post("/api/v1/tenants", json!({"name": "globex"})).await.ok()["token"].as_str().unwrap().to_owned();
    let before = audit_len(&api).await;
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (method, template) in &ops {
        if !template.contains('{') {
            continue;
        }
        let path = concrete(template, &ids);
        let r = api.as_key(&globex).call(method.clone(), &path, Some(body(template))).await;
        let expected = if template.starts_with("/api/v1/tenants/") { 403 } else { 404 };
        if r.status.as_u16() != expected {
            wrong.push(format!("{method} {path} as another tenant: {} {}", r.status, r.body));
        }
        checked += 1;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked > 30, "{checked} operations with a path parameter");
    assert_eq!(audit_len(&api).await, before, "another tenant changed nothing here");

    // A viewer.
    let viewer = api.key("viewer").await;
    let before = audit_len(&api).await;
    for (method, template) in &ops {
        if *method == Method::GET || READS_BY_POST.contains(&template.as_str()) {
            continue;
        }
        let path = concrete(template, &ids);
        let r = api.as_key(&viewer).call(method.clone(), &path, Some(json!({}))).await;
        assert_eq!(r.status.as_u16(), 403, "{method} {path} as a viewer: {}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden", "{method} {path}");
    }
    for read in READS_BY_POST {
        let r = api.as_key(&viewer).post(read, json!({"query": "all"})).await;
        assert_eq!(r.status.as_u16(), 200, "a viewer may read by POST {read}: {}", r.body);
    }
    assert_eq!(audit_len(&api).await, before, "a viewer changed nothing");
}
