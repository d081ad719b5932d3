//! Every error, wherever it comes from (a body limit, a content type, a query
//! string, a path, a missing route, a wrong method, a body of the wrong
//! shape), is answered in the error format of its API: the management API's
//! envelope, or hawkBit's error body on the device API. Messages name the
//! field, never a Rust type. On SQLite and on PostgreSQL.

mod common;

use common::{Api, Backend};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(
    body_limit_answers_the_error_envelope,
    unknown_route_answers_the_error_envelope,
    wrong_method_answers_the_error_envelope,
    management_bad_query_answers_the_error_envelope,
    bad_path_answers_the_error_envelope,
    wrong_content_type_answers_the_error_envelope,
    json_errors_name_fields_not_rust_types,
    device_api_bad_query_answers_hawkbit_error_body,
    device_api_body_limit_answers_hawkbit_error_body,
    device_api_unknown_route_and_method_answer_hawkbit_error_body,
    api_docs_page_is_served_from_the_binary,
);

/// A raw answer: status, content type and body text.
async fn raw(api: &Api, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String, String) {
    let mut r = api.http.request(method, api.server.url(path)).body(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, ct, r.text().await.expect("body"))
}

/// Asserts the management API's envelope with `code`; returns the error object.
#[track_caller]
fn envelope(status: u16, expected: u16, ct: &str, body: &str, code: &str) -> Value {
    assert_eq!(status, expected, "{body}");
    assert!(ct.starts_with("application/json"), "content type `{ct}`: {body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["error"]["code"], code, "{body}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    v["error"].clone()
}

/// Asserts hawkBit's error body (`exceptionClass`, `errorCode`, `message`).
#[track_caller]
fn hawkbit(status: u16, expected: u16, ct: &str, body: &str) -> Value {
    assert_eq!(status, expected, "{body}");
    assert!(ct.starts_with("application/json"), "content type `{ct}`: {body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(v["exceptionClass"].as_str().is_some_and(|c| c.starts_with("org.eclipse.hawkbit.")), "{body}");
    assert!(v["errorCode"].as_str().is_some_and(|c| c.starts_with("hawkbit.server.error.")), "{body}");
    assert!(v["message"].is_string(), "{body}");
    v
}

fn no_rust_types(message: &str) {
    for word in ["struct ", "u32", "u64", "u8", "i64", "JobIn", "ProductIn", "Option<", "sequence", "map,"] {
        assert!(!message.contains(word), "`{word}` in `{message}`");
    }
}

const AUTH: (&str, &str) = ("authorization", "Bearer upd_k_test_admin_token_0123456789");
const JSON: (&str, &str) = ("content-type", "application/json");

/// A product and a device; returns the device's token.
async fn device(api: &Api) -> String {
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let d = api.post("/api/v1/devices", json!({"id": "dev-1", "product": "thermo"})).await;
    d.expect(201, None)["token"].as_str().unwrap().to_owned()
}

async fn body_limit_answers_the_error_envelope(b: Backend) {
    let api = Api::start(b).await;
    let big = format!("{{\"key\": \"{}\"}}", "x".repeat(3 << 20));
    let (s, ct, body) = raw(&api, Method::POST, "/api/v1/products", &[AUTH, JSON], big.into_bytes()).await;
    envelope(s, 413, &ct, &body, "payload_too_large");
}

async fn unknown_route_answers_the_error_envelope(b: Backend) {
    let api = Api::start(b).await;
    let (s, ct, body) = raw(&api, Method::GET, "/api/v1/nothing-here", &[AUTH], vec![]).await;
    envelope(s, 404, &ct, &body, "route_not_found");
    let (s, ct, body) = raw(&api, Method::GET, "/no/such/thing", &[], vec![]).await;
    envelope(s, 404, &ct, &body, "route_not_found");
}

async fn wrong_method_answers_the_error_envelope(b: Backend) {
    let api = Api::start(b).await;
    let (s, ct, body) = raw(&api, Method::PUT, "/api/v1/products", &[AUTH, JSON], b"{}".to_vec()).await;
    envelope(s, 405, &ct, &body, "method_not_allowed");
}

async fn management_bad_query_answers_the_error_envelope(b: Backend) {
    let api = Api::start(b).await;
    let (s, ct, body) = raw(&api, Method::GET, "/api/v1/products?limit=abc", &[AUTH], vec![]).await;
    let e = envelope(s, 400, &ct, &body, "bad_request");
    assert_eq!(e["details"][0]["field"], "limit", "{body}");
    assert!(e["message"].as_str().unwrap().starts_with("limit: "), "{body}");
    no_rust_types(e["message"].as_str().unwrap());
    let (s, ct, body) = raw(&api, Method::GET, "/api/v1/jobs?colour=red", &[AUTH], vec![]).await;
    let e = envelope(s, 400, &ct, &body, "bad_request");
    assert!(e["message"].as_str().unwrap().contains("unknown parameter `colour`"), "{body}");
    let (s, ct, body) = raw(&api, Method::GET, "/api/v1/firmware?offset=-1", &[AUTH], vec![]).await;
    let e = envelope(s, 400, &ct, &body, "bad_request");
    assert_eq!(e["details"][0]["field"], "offset", "{body}");
}

async fn bad_path_answers_the_error_envelope(b: Backend) {
    let api = Api::start(b).await;
    let (s, ct, body) = raw(&api, Method::GET, "/api/v1/products/%FF%FE", &[AUTH], vec![]).await;
    envelope(s, 400, &ct, &body, "bad_request");
}

async fn wrong_content_type_answers_the_error_envelope(b: Backend) {
    let api = Api::start(b).await;
    let (s, ct, body) =
        raw(&api, Method::POST, "/api/v1/products", &[AUTH, ("content-type", "text/plain")], b"{}".to_vec()).await;
    envelope(s, 415, &ct, &body, "unsupported_media_type");
    let (s, ct, body) = raw(&api, Method::POST, "/api/v1/products", &[AUTH], b"{\"key\": \"a\"}".to_vec()).await;
    envelope(s, 415, &ct, &body, "unsupported_media_type");
}

async fn json_errors_name_fields_not_rust_types(b: Backend) {
    let api = Api::start(b).await;
    let cases = [
        (json!({"firmware": "fw", "all": true, "max_per_minute": "fast"}), "max_per_minute"),
        (
            json!({"firmware": "fw", "all": true, "ramp": {"base_per_minute": "x", "increment_factor": 2, "every": 1}}),
            "ramp.base_per_minute",
        ),
        (
            json!({"firmware": "fw", "all": true, "abort": [{"failure": "any", "min_executed": -1, "threshold_percent": 5}]}),
            "abort[0].min_executed",
        ),
        (json!({"firmware": "fw", "devices": "dev-1"}), "devices"),
        (json!({"firmware": "fw", "all": true, "colour": "red"}), "colour"),
        (json!([]), ""),
        (json!(["fw"]), ""),
    ];
    for (body, field) in cases {
        let r = api.post("/api/v1/jobs", body.clone()).await;
        let e = r.expect(400, Some("invalid_json"));
        let message = e["error"]["message"].as_str().unwrap();
        no_rust_types(message);
        assert_eq!(e["error"]["details"][0]["field"], field, "{body}: {e}");
        if !field.is_empty() {
            assert!(message.starts_with(&format!("{field}: ")), "{body}: {message}");
        }
    }
    let r = api.post("/api/v1/jobs", json!([])).await;
    assert_eq!(r.body["error"]["message"], "the body: invalid type: array, expected an object");
    let (s, ct, body) = raw(&api, Method::POST, "/api/v1/jobs", &[AUTH, JSON], b"{\"firmware\": ".to_vec()).await;
    let e = envelope(s, 400, &ct, &body, "invalid_json");
    assert!(e["message"].as_str().unwrap().contains("not valid JSON"), "{body}");
}

async fn device_api_bad_query_answers_hawkbit_error_body(b: Backend) {
    let api = Api::start(b).await;
    let token = device(&api).await;
    let auth = format!("TargetToken {token}");
    let path = "/default/controller/v1/dev-1/deploymentBase/17?actionHistory=abc";
    let (s, ct, body) = raw(&api, Method::GET, path, &[("authorization", &auth)], vec![]).await;
    let v = hawkbit(s, 400, &ct, &body);
    assert!(v["message"].as_str().unwrap().contains("actionHistory"), "{body}");
    no_rust_types(v["message"].as_str().unwrap());
}

async fn device_api_body_limit_answers_hawkbit_error_body(b: Backend) {
    let api = Api::start(b).await;
    let token = device(&api).await;
    let auth = format!("TargetToken {token}");
    let big = format!("{{\"status\": {{\"execution\": \"proceeding\", \"details\": [\"{}\"]}}}}", "x".repeat(3 << 20));
    let path = "/default/controller/v1/dev-1/deploymentBase/17/feedback";
    let (s, ct, body) = raw(&api, Method::POST, path, &[("authorization", &auth), JSON], big.into_bytes()).await;
    hawkbit(s, 413, &ct, &body);
}

async fn device_api_unknown_route_and_method_answer_hawkbit_error_body(b: Backend) {
    let api = Api::start(b).await;
    let token = device(&api).await;
    let auth = format!("TargetToken {token}");
    let (s, ct, body) =
        raw(&api, Method::GET, "/default/controller/v1/dev-1/no-such-thing", &[("authorization", &auth)], vec![]).await;
    hawkbit(s, 404, &ct, &body);
    let (s, ct, body) =
        raw(&api, Method::DELETE, "/default/controller/v1/dev-1", &[("authorization", &auth)], vec![]).await;
    hawkbit(s, 405, &ct, &body);
    // A device that polls as hawkBit clients do still gets its answer.
    let (s, _, body) =
        raw(&api, Method::GET, "/default/controller/v1/dev-1", &[("authorization", &auth)], vec![]).await;
    assert_eq!(s, 200, "{body}");
}

async fn api_docs_page_is_served_from_the_binary(b: Backend) {
    let api = Api::start(b).await;
    let (s, ct, page) = raw(&api, Method::GET, "/api/docs", &[], vec![]).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(page.contains("/api/v1/openapi.json") && page.contains("/api/docs/swagger-ui-bundle.js"), "{page}");
    assert!(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere: {page}");
    let (s, ct, js) = raw(&api, Method::GET, "/api/docs/swagger-ui-bundle.js", &[], vec![]).await;
    assert!(s == 200 && ct.starts_with("text/javascript") && js.contains("SwaggerUIBundle"), "{s} {ct}");
    let (s, ct, css) = raw(&api, Method::GET, "/api/docs/swagger-ui.css", &[], vec![]).await;
    assert!(s == 200 && ct.starts_with("text/css") && css.contains(".swagger-ui"), "{s} {ct}");
}
