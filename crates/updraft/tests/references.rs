//! References to what does not exist, across the API, on SQLite and on
//! PostgreSQL: a product, a group or a device named by a request that is
//! otherwise valid answers 404 `not_found`, `details` naming each reference.

mod common;

use common::{Answer, Api, Backend};
use reqwest::Method;
use serde_json::json;

on_both_stores!(references_to_what_does_not_exist_answer_not_found_everywhere,);

/// The fields named by a 404 `not_found`.
fn not_found(r: &Answer) -> Vec<String> {
    let body = r.expect(404, Some("not_found"));
    body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap().to_owned()).collect()
}

fn upload(product: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("product", product.to_owned())
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 64]).file_name("app.bin"))
}

async fn references_to_what_does_not_exist_answer_not_found_everywhere(b: Backend) {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    api.post("/api/v1/products", json!({"key": "lamp"})).await.expect(201, None);
    api.post("/api/v1/devices", json!({"id": "d1", "product": "thermo"})).await.expect(201, None);
    api.post("/api/v1/devices", json!({"id": "l1", "product": "lamp"})).await.expect(201, None);

    // A product.
    let device = api.post("/api/v1/devices", json!({"id": "d2", "product": "ghost"})).await;
    assert_eq!(not_found(&device), ["product"], "a device of an unknown product");
    let firmware = api.multipart("/api/v1/firmware", upload("ghost")).await;
    assert_eq!(not_found(&firmware), ["product"], "firmware of an unknown product");
    let group = api.post("/api/v1/groups", json!({"id": "g", "name": "G", "product": "ghost"})).await;
    assert_eq!(not_found(&group), ["product"], "a group of an unknown product");

    // Devices added to a group.
    api.post("/api/v1/groups", json!({"id": "lab", "name": "Lab", "product": "thermo"})).await.expect(201, None);
    let members = api.post("/api/v1/groups/lab/members", json!({"add": ["d1", "ghost", "phantom"]})).await;
    assert_eq!(not_found(&members), ["add.1", "add.2"], "each unknown device is named");
    assert_eq!(api.get("/api/v1/groups/lab").await.ok()["member_count"], 0, "a refused change writes nothing");
    let group = api.post("/api/v1/groups/nope/members", json!({"add": ["d1"]})).await;
    group.expect(404, Some("not_found"));

    // A request that is invalid besides is refused as invalid.
    let invalid = api.post("/api/v1/devices", json!({"id": "bad id!", "product": "ghost"})).await;
    invalid.expect(400, Some("validation_failed"));
    let other_product = api.post("/api/v1/groups/lab/members", json!({"add": ["l1", "ghost"]})).await;
    other_product.expect(400, Some("validation_failed"));
    let taken = api.post("/api/v1/devices", json!({"id": "d1", "product": "ghost"})).await;
    taken.expect(409, Some("conflict"));

    // An import mixes problems: an unknown product stays one of its lines' problems.
    let ndjson = [json!({"id": "d3", "product": "thermo"}), json!({"id": "d4", "product": "ghost"})]
        .map(|d| d.to_string() + "\n")
        .concat();
    let import = api.raw(Method::POST, "/api/v1/devices/import", "application/x-ndjson", ndjson).await;
    let details = import.expect(422, Some("import_rejected"))["error"]["details"].clone();
    assert_eq!((details[0]["line"].clone(), details[0]["field"].clone()), (json!(2), json!("product")), "{details}");
    api.get("/api/v1/devices/d3").await.expect(404, Some("not_found"));
}
