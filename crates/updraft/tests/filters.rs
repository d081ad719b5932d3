//! Device filters over real HTTP, on SQLite and on PostgreSQL: the device list's
//! `q`, search, estimate, preview, saved filters, and the errors for bad filters.

mod common;

use common::{Api, Backend};
use serde_json::{Value, json};

on_both_stores!(
    bad_filters_are_400_with_where_and_why,
    estimate_preview_and_search,
    saved_filters_crud,
    estimates_follow_every_change,
    installed_updates_are_estimated_at_once
);

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A small fleet: three thermo-x and two lamps.
async fn fleet(api: &Api) {
    for p in ["thermo-x", "lamp"] {
        api.post("/api/v1/products", json!({"key": p})).await.expect(201, None);
    }
    let devices = [
        json!({"id": "dsn-1", "product": "thermo-x", "firmware": {"host": "1.9.0"}, "connection_status": "online",
               "properties": {"region": "eu", "temp": 21.5}, "metadata": {"campaign": "spring"},
               "activated_at": "2026-01-02T00:00:00Z"}),
        json!({"id": "dsn-2", "product": "thermo-x", "firmware": {"host": "1.10.0"}, "connection_status": "offline",
               "properties": {"region": "us", "temp": 18}, "activated_at": "2026-03-01T00:00:00Z"}),
        json!({"id": "dsn-3", "product": "thermo-x", "firmware": {"host": "build-7"}, "connection_status": "online",
               "properties": {"region": "eu"}}),
        json!({"id": "dsn-4", "product": "lamp", "firmware": {"host": "2.0.0"}, "connection_status": "online",
               "hardware_version": "rev-b"}),
        json!({"id": "dsn-5", "product": "lamp", "connection_status": "initializing",
               "properties": {"note": "update pending"}}),
    ];
    for d in devices {
        api.post("/api/v1/devices", d).await.expect(201, None);
    }
    api.post("/api/v1/groups", json!({"id": "beta", "name": "Beta"})).await.expect(201, None);
    api.post("/api/v1/groups/beta/members", json!({"add": ["dsn-1", "dsn-4"]})).await.expect(200, None);
}

fn ids(body: &Value) -> Vec<&str> {
    body["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect()
}

/// Asserts a 400 `invalid_filter` whose first problem is of `kind` at `column` (text) or `path` (JSON).
#[track_caller]
fn assert_problem(body: &Value, kind: &str, column: Option<usize>, path: Option<&str>, message_has: &str) {
    assert_eq!(body["error"]["code"], "invalid_filter", "{body}");
    let p = &body["error"]["details"][0];
    assert_eq!(p["kind"], kind, "{body}");
    assert!(p["message"].as_str().unwrap().contains(message_has), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(message_has), "{body}");
    if let Some(c) = column {
        assert_eq!(p["column"], c, "{body}");
        assert_eq!(p["line"], 1, "{body}");
        assert_eq!(p["offset"], c - 1, "{body}");
    }
    if let Some(path) = path {
        assert_eq!(p["path"], path, "{body}");
    }
}

async fn bad_filters_are_400_with_where_and_why(b: Backend) {
    let api = Api::start(b).await;
    fleet(&api).await;
    let eleven: Vec<String> = (0..=10).map(|i| format!("prop.p{i} == {i}")).collect();
    let eleven = eleven.join(" and ");
    let eleventh = eleven.find("prop.p10").unwrap() + 1;
    let cases: Vec<(String, &str, usize, &str)> = vec![
        ("product == \"x\" and colour == \"red\"".into(), "unknown_field", 20, "unknown field `colour`"),
        ("product < \"x\"".into(), "wrong_operator", 9, "does not apply to `product`"),
        ("fw.host < \"build-7\"".into(), "wrong_operator", 9, "compares semantic versions"),
        (eleven, "limit", eleventh, "too many property conditions"),
        ("prop.region == \"eu".into(), "unterminated_string", 16, "never closed"),
        ("activated <= 5Q ago".into(), "invalid_literal", 14, "unknown duration unit `Q`"),
        ("product == \"x\" status == online".into(), "syntax", 16, "unexpected `status`"),
    ];
    for (text, kind, column, message) in &cases {
        // The device list's `q`, the search, the estimate and the preview all say the same.
        let r = api.get(&format!("/api/v1/devices?q={}", enc(text))).await;
        r.expect(400, Some("invalid_filter"));
        assert_problem(&r.body, kind, Some(*column), None, message);
        assert_eq!(r.body["error"]["details"][0]["field"], "q");
        for path in ["/api/v1/filters/estimate", "/api/v1/filters/preview", "/api/v1/devices/search"] {
            let r = api.post(path, json!({"query": text})).await;
            r.expect(400, Some("invalid_filter"));
            assert_problem(&r.body, kind, Some(*column), None, message);
            assert_eq!(r.body["error"]["details"][0]["field"], "query");
        }
        let r = api.post("/api/v1/filters", json!({"name": "bad", "query": text})).await;
        assert_problem(&r.expect(400, Some("invalid_filter")).clone(), kind, Some(*column), None, message);
    }
    let r = api.post("/api/v1/filters/estimate", json!({"query": "product == \"x\" and colour == \"red\""})).await;
    let p = &r.body["error"]["details"][0];
    assert!(p["expected"].as_str().unwrap().contains("prop.<name>"), "{p}");
    assert_eq!(p["found"], "`colour`");

    // The JSON form reports every problem, each with its path.
    let props: Vec<Value> = (0..=10).map(|i| json!({"name": format!("p{i}"), "value": i})).collect();
    let r = api.post("/api/v1/filters/estimate", json!({"filter": {"properties": props}})).await;
    r.expect(400, Some("invalid_filter"));
    assert_problem(&r.body, "limit", None, Some("properties[10]"), "too many property conditions");
    assert_eq!(r.body["error"]["details"][0]["field"], "filter.properties[10]");
    let r = api.post("/api/v1/filters/preview", json!({"filter": {"status": {"time_since_activation": "5Q"}}})).await;
    r.expect(400, Some("invalid_filter"));
    assert_problem(&r.body, "invalid_literal", None, Some("status.time_since_activation"), "unknown duration unit `Q`");
    let r = api
        .post(
            "/api/v1/filters/estimate",
            json!({"filter": {"product": {"op": "<", "value": "x"}, "versions": {"hardware_version": 5},
                              "colour": "red", "properties": [{"name": "a", "value": 1}, {"nme": "b"}]}}),
        )
        .await;
    r.expect(400, Some("invalid_filter"));
    let mut fields: Vec<&str> =
        r.body["error"]["details"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["filter.colour", "filter.product.op", "filter.properties[1]", "filter.versions.hardware_version"],
        "every problem of the JSON form is reported, structural and semantic: {}",
        r.body
    );
    assert!(r.body["error"]["message"].as_str().unwrap().contains("and 3 more problems"), "{}", r.body);
    let r = api.post("/api/v1/filters/estimate", json!({"filter": {"colour": "red"}})).await;
    assert_problem(&r.expect(400, Some("invalid_filter")).clone(), "structure", None, Some("colour"), "colour");

    // Not a filter at all.
    api.post("/api/v1/filters/estimate", json!({})).await.expect(400, Some("validation_failed"));
    api.post("/api/v1/filters/estimate", json!({"query": "all", "filter": {}}))
        .await
        .expect(400, Some("validation_failed"));
    api.post("/api/v1/filters/estimate", json!({"filter_id": "nope"})).await.expect(404, Some("not_found"));
    api.post("/api/v1/filters/preview", json!({"query": "all", "limit": 1001}))
        .await
        .expect(400, Some("validation_failed"));
    api.post("/api/v1/filters/estimate", json!({"query": "all", "extra": 1})).await.expect(400, Some("invalid_json"));
}

async fn estimate_preview_and_search(b: Backend) {
    let api = Api::start(b).await;
    fleet(&api).await;
    let estimate = |q: &'static str| {
        let api = &api;
        async move { api.post("/api/v1/filters/estimate", json!({"query": q})).await.ok()["count"].as_u64().unwrap() }
    };
    assert_eq!(estimate("all").await, 5);
    assert_eq!(estimate("product == \"thermo-x\" and fw.host < \"2.0.0\" and status == online").await, 1);
    assert_eq!(estimate("fw.host < \"2.0.0\"").await, 2, "semver order; build-7 is never ordered");
    assert_eq!(estimate("fw.host >= \"1.9.0\"").await, 3);
    assert_eq!(estimate("prop.region == \"eu\" and prop.temp > 20 and meta.campaign == \"spring\"").await, 1);
    assert_eq!(estimate("not prop.region exists").await, 2);
    assert_eq!(estimate("group == \"beta\" or status == initializing").await, 3);
    assert_eq!(estimate("activated > 2026-02-01 or prop.note contains \"pending\"").await, 2);
    assert_eq!(estimate("activated > 100000d ago").await, 2);
    assert_eq!(estimate("all exclude [\"dsn-1\"]").await, 4);
    let json_form = json!({"filter": {"product": "thermo-x", "status": {"connection_status": "online"},
        "properties": [{"name": "region", "op": "==", "value": "eu"}]}});
    assert_eq!(api.post("/api/v1/filters/estimate", json_form.clone()).await.ok()["count"], 2);

    let p = api.post("/api/v1/filters/preview", json!({"query": "product == \"thermo-x\""})).await;
    let p = p.ok();
    assert_eq!((ids(p), p["limit"].clone()), (vec!["dsn-1", "dsn-2", "dsn-3"], json!(50)));
    assert!(p.get("total").is_none(), "a preview does not count; estimate does");
    assert_eq!(
        p["items"][0]["properties"],
        json!({"region": "eu", "temp": 21.5}),
        "devices come with their attributes"
    );
    assert_eq!(p["items"][0]["firmware"]["host"], "1.9.0");
    let p = api.post("/api/v1/filters/preview", json!({"query": "all", "limit": 2})).await;
    assert_eq!(ids(p.ok()), ["dsn-1", "dsn-2"]);
    let p = api.post("/api/v1/filters/preview", json_form).await;
    assert_eq!(ids(p.ok()), ["dsn-1", "dsn-3"]);

    // The device list: `q` with paging, sorting, search, product and group.
    let q = |s: &str| format!("/api/v1/devices?q={}", enc(s));
    let r = api.get(&q("status == online")).await;
    assert_eq!((ids(r.ok()), r.body["total"].clone()), (vec!["dsn-1", "dsn-3", "dsn-4"], json!(3)));
    let r = api.get(&format!("{}&sort=-id&limit=1&offset=1", q("status == online"))).await;
    assert_eq!((ids(r.ok()), r.body["total"].clone()), (vec!["dsn-3"], json!(3)));
    let r = api.get(&format!("{}&product=lamp", q("status == online"))).await;
    assert_eq!(ids(r.ok()), ["dsn-4"]);
    let r = api.get(&format!("{}&group=beta", q("fw.host exists"))).await;
    assert_eq!(ids(r.ok()), ["dsn-1", "dsn-4"]);
    let r = api.get(&format!("{}&search=DSN-2", q("product == \"thermo-x\""))).await;
    assert_eq!(ids(r.ok()), ["dsn-2"]);
    assert_eq!(api.get("/api/v1/devices").await.ok()["total"], 5, "no `q`, no filter");

    // Search with a body, in either form or by saved filter.
    let r = api
        .post("/api/v1/devices/search?sort=-id", json!({"query": "hw == \"rev-b\" or product == \"thermo-x\""}))
        .await;
    assert_eq!(ids(r.ok()), ["dsn-4", "dsn-3", "dsn-2", "dsn-1"]);
    let r = api.post("/api/v1/devices/search", json!({"filter": {"group": "beta"}})).await;
    assert_eq!(ids(r.ok()), ["dsn-1", "dsn-4"]);
    api.post("/api/v1/filters", json!({"id": "eu", "name": "EU", "query": "prop.region == \"eu\""}))
        .await
        .expect(201, None);
    let r = api.post("/api/v1/devices/search", json!({"filter_id": "eu"})).await;
    assert_eq!(ids(r.ok()), ["dsn-1", "dsn-3"]);
    assert_eq!(api.post("/api/v1/filters/estimate", json!({"filter_id": "eu"})).await.ok()["count"], 2);
    let r = api.post("/api/v1/filters/preview", json!({"filter_id": "eu", "limit": 1})).await;
    assert_eq!(ids(r.ok()), ["dsn-1"]);

    // Readers may estimate and preview.
    let viewer = api.key("viewer").await;
    let v = api.as_key(&viewer);
    assert_eq!(v.post("/api/v1/filters/estimate", json!({"query": "all"})).await.ok()["count"], 5);
    v.post("/api/v1/filters", json!({"name": "x", "query": "all"})).await.expect(403, Some("forbidden"));
}

async fn saved_filters_crud(b: Backend) {
    let api = Api::start(b).await;
    fleet(&api).await;
    // Written as text, answered in both forms, canonical.
    let r = api
        .post(
            "/api/v1/filters",
            json!({"id": "old-eu", "name": " Old EU ", "description": "to update",
                   "query": "prop.region == \"eu\" and fw.host < \"2.0.0\" and (status == online and product == \"thermo-x\")"}),
        )
        .await;
    let f = r.expect(201, None).clone();
    assert_eq!(f["name"], "Old EU");
    assert_eq!(
        f["query"],
        "product == \"thermo-x\" and status == online and fw.host < \"2.0.0\" and prop.region == \"eu\""
    );
    assert_eq!(
        f["filter"],
        json!({"product": "thermo-x", "status": {"connection_status": "online"},
               "versions": {"firmware": [{"component": "host", "op": "<", "value": "2.0.0"}]},
               "properties": [{"name": "region", "op": "==", "value": "eu"}]})
    );
    assert!(f["updated_by"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(f["created_at"], f["updated_at"]);
    // Written as JSON, the same filter reads back the same.
    let r = api.post("/api/v1/filters", json!({"name": "Same", "filter": f["filter"].clone()})).await;
    let same = r.expect(201, None).clone();
    assert_eq!(same["query"], f["query"]);
    assert!(same["id"].as_str().unwrap().starts_with("flt_"));

    api.post("/api/v1/filters", json!({"id": "old-eu", "name": "again", "query": "all"}))
        .await
        .expect(409, Some("conflict"));
    api.post("/api/v1/filters", json!({"id": "estimate", "name": "x", "query": "all"}))
        .await
        .expect(400, Some("validation_failed"));
    api.post("/api/v1/filters", json!({"name": "no filter"})).await.expect(400, Some("validation_failed"));
    api.post("/api/v1/filters", json!({"name": "", "query": "all"})).await.expect(400, Some("validation_failed"));

    let got = api.get("/api/v1/filters/old-eu").await;
    assert_eq!(got.ok(), &f);
    let list = api.get("/api/v1/filters?sort=name").await;
    let list = list.ok();
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["id"], "old-eu");
    assert_eq!(api.get("/api/v1/filters?search=same").await.ok()["total"], 1);

    let operator = api.key("operator").await;
    let o = api.as_key(&operator);
    let u = o
        .patch(
            "/api/v1/filters/old-eu",
            json!({"description": null, "filter": {"group": "beta", "exclude": ["dsn-4"]}}),
        )
        .await;
    let u = u.ok().clone();
    assert_eq!((u["name"].clone(), u["description"].clone()), (json!("Old EU"), Value::Null));
    assert_eq!(u["query"], "group == \"beta\" exclude [\"dsn-4\"]");
    assert_ne!(u["updated_by"], f["updated_by"], "the operator's key wrote it last");
    assert_eq!(api.post("/api/v1/filters/estimate", json!({"filter_id": "old-eu"})).await.ok()["count"], 1);
    let r = o.patch("/api/v1/filters/old-eu", json!({"query": "prop.region =="})).await;
    r.expect(400, Some("invalid_filter"));
    assert_eq!(api.get("/api/v1/filters/old-eu").await.ok()["query"], u["query"], "nothing written");
    o.patch("/api/v1/filters/nope", json!({"name": "x"})).await.expect(404, Some("not_found"));

    let viewer = api.key("viewer").await;
    api.as_key(&viewer).delete("/api/v1/filters/old-eu").await.expect(403, Some("forbidden"));
    api.delete("/api/v1/filters/old-eu").await.expect(204, None);
    api.get("/api/v1/filters/old-eu").await.expect(404, Some("not_found"));
    api.delete("/api/v1/filters/old-eu").await.expect(404, Some("not_found"));

    let doc = api.as_key("").get("/api/v1/openapi.json").await;
    let doc = doc.ok();
    for path in [
        "/api/v1/filters",
        "/api/v1/filters/{id}",
        "/api/v1/filters/estimate",
        "/api/v1/filters/preview",
        "/api/v1/devices/search",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["x-error-codes"].as_array().unwrap().iter().any(|c| c["code"] == "invalid_filter"));
}

/// Estimates answered so far by `by` (`index` or `store`), from `/metrics`.
async fn estimates_by(api: &Api, by: &str) -> u64 {
    let text = api.http.get(api.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let name = format!("updraft_filter_estimates_total{{by=\"{by}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&name)?.trim().parse().ok()).unwrap_or(0)
}

/// The estimate of `query` and the number of devices the search finds, which
/// the database counts.
async fn estimate_and_search(api: &Api, query: &str) -> (u64, u64) {
    let e = api.post("/api/v1/filters/estimate", json!({"query": query})).await.ok()["count"].as_u64().unwrap();
    let s = api.post("/api/v1/devices/search?limit=1", json!({"query": query})).await.ok()["total"].as_u64().unwrap();
    (e, s)
}

/// On SQLite estimates are counted by the fleet index in memory; whatever
/// counts, an estimate agrees with the database right after every kind of
/// change (registration, import, property and metadata changes, deletion, an
/// installed update: `installed_updates_are_estimated_at_once`), and filters
/// on what the index does not hold (status, groups) are counted by the store.
async fn estimates_follow_every_change(b: Backend) {
    let api = Api::start(b).await;
    fleet(&api).await;
    let queries = [
        "all",
        r#"prop.region == "eu""#,
        r#"prop.region == "eu" and prop.temp > 20 and meta.campaign == "spring""#,
        r#"prop.temp >= 18 or meta.campaign exists"#,
        r#"not prop.region == "eu""#,
        r#"prop.region != "eu""#,
        r#"fw.host < "2.0.0" and product == "thermo-x""#,
        r#"fw.host == "3.0.0""#,
        r#"hardware_version exists or prop.note contains "pending""#,
        r#"activated < "2026-02-01" or id in ["dsn-5", "dsn-9", "bulk-007"]"#,
        r#"prop.colour == "red""#,
        r#"status == online and prop.region == "eu""#,
        r#"group == "beta""#,
    ];
    let check = |stage: &'static str| {
        let api = &api;
        async move {
            for q in queries {
                let (e, s) = estimate_and_search(api, q).await;
                assert_eq!(e, s, "{stage}: `{q}`");
            }
            let body = json!({"filter": {"properties": [{"name": "region", "op": "==", "value": "eu"}],
                                         "include": ["dsn-4", "bulk-001"], "exclude": ["dsn-1"]}});
            let e = api.post("/api/v1/filters/estimate", body.clone()).await.ok()["count"].clone();
            let s = api.post("/api/v1/devices/search?limit=1", body).await.ok()["total"].clone();
            assert_eq!(e, s, "{stage}: include and exclude");
        }
    };
    // The index is built in the background on the first estimate; until then the store counts.
    let mut built = false;
    for _ in 0..200 {
        check("registered").await;
        if estimates_by(&api, "index").await > 0 {
            built = true;
            break;
        }
        if b == Backend::Postgres {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(built, b == Backend::Sqlite, "the index counts on SQLite only");

    let bulk: Vec<String> = (0..40)
        .map(|i| {
            json!({"id": format!("bulk-{i:03}"), "product": if i % 2 == 0 { "thermo-x" } else { "lamp" },
                   "firmware": {"host": if i % 3 == 0 { "1.2.0" } else { "3.0.0" }},
                   "properties": {"region": if i % 4 == 0 { "eu" } else { "apac" }, "temp": i as f64 / 2.0},
                   "metadata": {"campaign": "bulk"}})
            .to_string()
        })
        .collect();
    let r = api.raw(reqwest::Method::POST, "/api/v1/devices/import", "application/x-ndjson", bulk.join("\n")).await;
    assert!(r.status.is_success(), "{}", r.body);
    check("imported").await;

    api.patch(
        "/api/v1/devices/dsn-2",
        json!({"properties": {"region": "eu", "temp": 30}, "metadata": {"campaign": "spring"}}),
    )
    .await
    .expect(200, None);
    api.patch("/api/v1/devices/bulk-000", json!({"properties": {"colour": "red"}})).await.expect(200, None);
    check("changed").await;

    api.delete("/api/v1/devices/dsn-1").await.expect(204, None);
    api.delete("/api/v1/devices/bulk-004").await.expect(204, None);
    check("deleted").await;
    api.post("/api/v1/devices", json!({"id": "dsn-1", "product": "lamp", "properties": {"region": "latam"}}))
        .await
        .expect(201, None);
    check("registered again").await;
    if b == Backend::Sqlite {
        assert!(estimates_by(&api, "store").await > 0, "status and group filters are counted by the store");
    }
}

/// A device's firmware written by its successful update is what the next
/// estimate counts (the success is a change of the device's record too).
async fn installed_updates_are_estimated_at_once(b: Backend) {
    let f = common::fleet::fleet(b, |_| {}).await;
    f.device("t-1", "thermo", "1.0.0", json!({"properties": {"region": "eu"}})).await;
    f.device("t-2", "thermo", "1.0.0", json!({})).await;
    let q = r#"fw.host == "2.0.0" and prop.region == "eu""#;
    for _ in 0..200 {
        assert_eq!(estimate_and_search(&f.api, q).await, (0, 0));
        if b == Backend::Postgres || estimates_by(&f.api, "index").await > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    f.job(json!({"id": "up", "all": true})).await;
    f.tick().await;
    assert_eq!(f.report("up", "t-1", "closed", "success").await, 200);
    assert_eq!(f.states("up").await["t-1"], "succeeded");
    assert_eq!(estimate_and_search(&f.api, q).await, (1, 1), "the installed version is counted");
    if b == Backend::Sqlite {
        assert!(estimates_by(&f.api, "index").await > 0, "the index counted");
    }
}
