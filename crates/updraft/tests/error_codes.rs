//! The errors no other test provokes, each through the real server on SQLite
//! and on PostgreSQL: a backing service that fails answers in each API's own
//! error format, and a download whose precondition fails answers 412.

mod common;

use common::{Api, Backend};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(
    a_store_outage_answers_503_unavailable_in_each_apis_error_format,
    a_failing_blob_store_answers_500_internal_and_keeps_nothing,
    an_artifact_download_whose_if_match_fails_answers_412,
);

async fn a_store_outage_answers_503_unavailable_in_each_apis_error_format(b: Backend) {
    let api = Api::start(b).await;
    let (_, token) = common::device_with_work(&api).await;
    api.server.state.app.shut_down().await;

    let r = api.get("/api/v1/products").await;
    r.expect(503, Some("unavailable"));
    let r = api
        .http
        .get(api.server.url("/default/controller/v1/dev-0"))
        .header("authorization", format!("TargetToken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["exceptionClass"], "org.eclipse.hawkbit.ServiceUnavailableException", "{body}");
    assert!(body["errorCode"].as_str().is_some_and(|c| !c.is_empty()), "{body}");
}

async fn a_failing_blob_store_answers_500_internal_and_keeps_nothing(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    // Staging becomes a file, so no upload can be staged.
    let staging = api.server.data_dir().join("firmware").join("tmp");
    std::fs::remove_dir_all(&staging).unwrap();
    std::fs::write(&staging, b"not a directory").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 1000]).file_name("app.bin"));
    let r = api.multipart("/api/v1/firmware", form).await;
    r.expect(500, Some("internal"));
    assert_eq!(api.get("/api/v1/firmware").await.ok()["total"], 0, "a failed upload leaves no firmware");
}

async fn an_artifact_download_whose_if_match_fails_answers_412(b: Backend) {
    let api = Api::start(b).await;
    let (fw, token) = common::device_with_work(&api).await;
    let sha1 = api.get(&format!("/api/v1/firmware/{fw}")).await.ok()["files"][0]["sha1"].as_str().unwrap().to_owned();
    let base = api.server.url("/default/controller/v1/dev-0");
    let get = |url: String| api.http.request(Method::GET, url).header("authorization", format!("TargetToken {token}"));
    let poll: Value = get(base).send().await.unwrap().json().await.unwrap();
    let href = poll["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
    let deployment: Value = get(href).send().await.unwrap().json().await.unwrap();
    let download =
        deployment["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"].as_str().unwrap();

    let r = get(download.to_owned()).header("if-match", "\"0000\"").send().await.unwrap();
    assert_eq!(r.status(), 412, "another file's validator: the precondition fails");
    let r = get(download.to_owned()).header("if-match", format!("\"{sha1}\"")).send().await.unwrap();
    assert_eq!(r.status(), 200, "its own validator matches");
    assert_eq!(r.bytes().await.unwrap().len(), 1000);
}
