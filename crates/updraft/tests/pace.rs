//! A job's pace through the real server, on SQLite and on PostgreSQL: the
//! scheduler ticked every second by a manual clock, releases sampled per
//! second, ticks repeated at the same instant, and devices asking for a job
//! all at once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Api, Backend, TestServer};
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};
use updraft::testing::ManualClock;

on_both_stores!(
    a_rate_is_spread_over_every_second_of_every_minute,
    a_repeated_tick_releases_nothing_more,
    concurrent_device_requests_keep_the_pace_and_one_execution_per_device,
    an_empty_null_or_array_filter_is_refused,
    a_timeout_may_be_absent_for_no_limit_or_as_short_as_a_minute,
    a_retry_interval_without_a_count_is_an_error,
    seed_schedules_keep_their_seconds,
    names_and_descriptions_refuse_control_bidi_and_zero_width_characters,
    a_reference_to_what_does_not_exist_answers_not_found,
);

struct Fleet {
    api: Api,
    clock: Arc<ManualClock>,
    firmware: String,
    tokens: BTreeMap<String, String>,
}

/// A server with a manual clock, product `thermo` with firmware 2.0.0, and
/// `n` devices `d-000` … on 1.0.0.
async fn fleet(b: Backend, n: usize) -> Fleet {
    let (server, clock) = TestServer::start_clocked(b, |_| {}).await;
    let api = Api::on(server);
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .text("files", json!([{"name": "app.bin", "component": "host", "version": "2.0.0"}]).to_string())
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 64]).file_name("app.bin"));
    let firmware = api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    let ndjson: String = (0..n)
        .map(|i| {
            json!({"id": format!("d-{i:03}"), "product": "thermo", "firmware": {"host": "1.0.0"}}).to_string() + "\n"
        })
        .collect();
    let imported = api.raw(Method::POST, "/api/v1/devices/import", "application/x-ndjson", ndjson).await;
    let tokens = imported.expect(201, None)["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), d["token"].as_str().unwrap().to_owned()))
        .collect();
    Fleet { api, clock, firmware, tokens }
}

impl Fleet {
    async fn job(&self, mut body: Value) {
        body["firmware"] = json!(self.firmware);
        self.api.post("/api/v1/jobs", body).await.expect(201, None);
    }

    async fn tick(&self) -> u64 {
        self.api.server.tick_scheduler().await.released
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs));
    }

    /// Ticks once a second for `secs` seconds, each tick twice (the second must
    /// release nothing); answers the releases of each second.
    async fn run(&self, secs: usize) -> Vec<u64> {
        let mut per_second = Vec::with_capacity(secs);
        for s in 0..secs {
            per_second.push(self.tick().await);
            assert_eq!(self.tick().await, 0, "a tick repeated at second {s} released more");
            self.advance(1);
        }
        per_second
    }

    /// The device asks for `job` itself: the status.
    async fn ask(&self, device: &str, job: &str) -> u16 {
        let url = self.api.server.url(&format!("/default/controller/v1/{device}/updraft/jobs/{job}"));
        let r = self
            .api
            .http
            .post(url)
            .header("authorization", format!("TargetToken {}", self.tokens[device]))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    async fn in_progress(&self, path: &str) -> usize {
        let page = self.api.get(path).await;
        let items = page.ok()["items"].as_array().unwrap().clone();
        items
            .iter()
            .filter(|e| matches!(e["state"].as_str(), Some("notified" | "downloading" | "downloaded" | "installing")))
            .count()
    }
}

/// Checks a job's per-second releases against its rate `r`: never more than
/// a second's share (`⌈r/60⌉`) at once, never more than `r` in any 60 s, and
/// about `r` a minute overall.
#[track_caller]
fn assert_spread(r: u64, per_second: &[u64], expected_total: u64) {
    let share = r.div_ceil(60);
    for (s, n) in per_second.iter().enumerate() {
        assert!(*n <= share, "{n} released at second {s}, more than {share}: {per_second:?}");
    }
    for (s, w) in per_second.windows(60).enumerate() {
        let n: u64 = w.iter().sum();
        assert!(n <= r, "{n} released in the minute from second {s}, more than {r}");
    }
    let total: u64 = per_second.iter().sum();
    assert!(
        total.abs_diff(expected_total) <= share,
        "{total} released, expected about {expected_total}: {per_second:?}"
    );
}

async fn a_rate_is_spread_over_every_second_of_every_minute(b: Backend) {
    let f = fleet(b, 200).await;
    f.job(json!({"id": "sixty", "all": true, "max_per_minute": 60, "max_concurrency": 1000})).await;
    // From its start: about one a second, not 60 at once.
    let first = f.run(150).await;
    assert_eq!(&first[..5], [1, 1, 1, 1, 1], "{first:?}");
    assert_spread(60, &first, 150);

    // After a pause of more than a minute: again one a second, not a minute's worth at once.
    f.api.post("/api/v1/jobs/sixty/pause", json!({})).await.ok();
    f.advance(90);
    f.tick().await;
    f.api.post("/api/v1/jobs/sixty/resume", json!({})).await.ok();
    let after = f.run(50).await;
    assert_spread(60, &after, 50);
    assert_eq!(first.iter().sum::<u64>() + after.iter().sum::<u64>(), 200, "all 200 released");
    f.api.post("/api/v1/jobs/sixty/cancel", json!({})).await.ok();

    // A rate that is not a whole number a second, and one below one a second.
    let f = fleet(b, 200).await;
    f.job(json!({"id": "ninety", "all": true, "max_per_minute": 90, "max_concurrency": 1000})).await;
    let per_second = f.run(130).await;
    assert_spread(90, &per_second, 195);
    let f = fleet(b, 20).await;
    f.job(json!({"id": "six", "all": true, "max_per_minute": 6, "max_concurrency": 1000})).await;
    let per_second = f.run(185).await;
    assert_spread(6, &per_second, 19);
}

async fn a_repeated_tick_releases_nothing_more(b: Backend) {
    let f = fleet(b, 300).await;
    let named = |from: usize, to: usize| (from..to).map(|i| format!("d-{i:03}")).collect::<Vec<_>>();
    // A ramp fed by the executions released so far, with and without a cap, and a plain rate.
    f.job(json!({"id": "ramp", "devices": named(0, 150), "max_per_minute": 600, "max_concurrency": 1000,
                 "ramp": {"base_per_minute": 60, "increment_factor": 2.0, "every": 2}}))
        .await;
    f.job(json!({"id": "uncapped", "devices": named(150, 200), "max_concurrency": 30,
                 "ramp": {"base_per_minute": 60, "increment_factor": 3.0, "every": 1}}))
        .await;
    f.job(json!({"id": "rate", "devices": named(200, 300), "max_per_minute": 120, "max_concurrency": 1000})).await;
    // `run` repeats every tick and checks that the repeat releases nothing.
    let per_second = f.run(40).await;
    assert!(per_second.iter().sum::<u64>() >= 100, "the jobs ran: {per_second:?}");
}

async fn concurrent_device_requests_keep_the_pace_and_one_execution_per_device(b: Backend) {
    let f = fleet(b, 12).await;
    let devices: Vec<String> = (0..10).map(|i| format!("d-{i:03}")).collect();
    f.job(json!({"id": "asked", "devices": devices, "push": false, "allow_device_request": true,
                 "max_concurrency": 1}))
        .await;
    let asks = devices.iter().map(|d| f.ask(d, "asked"));
    let answers = futures_util::future::join_all(asks).await;
    assert_eq!(answers.iter().filter(|s| **s == 200).count(), 1, "max_concurrency 1, ten at once: {answers:?}");
    assert!(answers.iter().all(|s| matches!(s, 200 | 503)), "{answers:?}");
    assert_eq!(f.in_progress("/api/v1/jobs/asked/executions").await, 1);

    // One device, several jobs it may ask for, asked for all at once: it gets one.
    let jobs: Vec<String> = (0..6).map(|j| format!("own-{j}")).collect();
    for j in &jobs {
        f.job(json!({"id": j, "devices": ["d-011"], "push": false, "allow_device_request": true})).await;
    }
    let asks = jobs.iter().map(|j| f.ask("d-011", j));
    let answers = futures_util::future::join_all(asks).await;
    assert_eq!(answers.iter().filter(|s| **s == 200).count(), 1, "one execution at a time: {answers:?}");
    assert!(answers.iter().all(|s| matches!(s, 200 | 409)), "{answers:?}");
    assert_eq!(f.in_progress("/api/v1/devices/d-011/executions").await, 1);
}

async fn an_empty_null_or_array_filter_is_refused(b: Backend) {
    let f = fleet(b, 3).await;
    let refused = |r: &common::Answer, what: &str| {
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "invalid_filter", "{what}: {}", r.body);
    };
    let empty_texts = [json!(""), json!("  ")];
    let empty_jsons = [json!({}), json!(null), json!([]), json!([[], []]), json!({"exclude": []})];
    for filter in empty_texts.iter().chain(&empty_jsons) {
        let r = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "filter": filter})).await;
        refused(&r, &format!("a job with filter {filter}"));
        let r =
            f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "devices": ["d-000"], "filter": filter})).await;
        refused(&r, &format!("a job with devices and filter {filter}"));
    }
    for text in ["", " \n "] {
        for path in ["/api/v1/filters/estimate", "/api/v1/filters/preview"] {
            refused(&f.api.post(path, json!({"query": text})).await, &format!("{path} {text:?}"));
        }
        refused(&f.api.post("/api/v1/filters", json!({"name": "n", "query": text})).await, "a saved filter");
        refused(&f.api.get(&format!("/api/v1/devices?q={}", text.trim())).await, "a device search");
    }
    f.api.post("/api/v1/filters", json!({"id": "low", "name": "low", "query": "fw.host < \"2.0.0\""})).await.ok();
    for filter in &empty_jsons {
        for path in ["/api/v1/filters/estimate", "/api/v1/filters/preview"] {
            refused(&f.api.post(path, json!({"filter": filter})).await, &format!("{path} {filter}"));
        }
        refused(&f.api.post("/api/v1/filters", json!({"name": "n", "filter": filter})).await, "a saved filter");
        refused(&f.api.patch("/api/v1/filters/low", json!({"filter": filter})).await, "a saved filter's edit");
    }
    assert!(f.api.get("/api/v1/jobs").await.ok()["items"].as_array().unwrap().is_empty(), "no job was created");
    // Every device, in so many words.
    let all = f.api.post("/api/v1/filters/estimate", json!({"query": "all"})).await;
    assert_eq!(all.ok()["count"], 3);
}

async fn a_timeout_may_be_absent_for_no_limit_or_as_short_as_a_minute(b: Backend) {
    let f = fleet(b, 2).await;
    let state = |job: &'static str| {
        let api = &f.api;
        async move {
            let page = api.get(&format!("/api/v1/jobs/{job}/executions")).await;
            page.ok()["items"][0]["state"].as_str().unwrap().to_owned()
        }
    };
    let unlimited =
        f.api.post("/api/v1/jobs", json!({"id": "unlimited", "firmware": f.firmware, "devices": ["d-000"]})).await;
    assert_eq!(unlimited.expect(201, None)["timeout_seconds"], Value::Null, "absent: no limit");
    let minute = f
        .api
        .post(
            "/api/v1/jobs",
            json!({"id": "minute", "firmware": f.firmware, "devices": ["d-001"], "timeout_seconds": 60}),
        )
        .await;
    assert_eq!(minute.expect(201, None)["timeout_seconds"], 60);
    f.tick().await;
    f.advance(59);
    f.tick().await;
    assert_eq!(state("minute").await, "notified");
    f.advance(2);
    f.tick().await;
    assert_eq!(state("minute").await, "timed_out", "more than a minute after its release");
    f.advance(30 * 86_400);
    f.tick().await;
    assert_eq!(state("unlimited").await, "notified", "no limit: still in progress after 30 days");
    for bad in [json!(0), json!(59), json!(172_801)] {
        let r = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, "timeout_seconds": bad})).await;
        assert_eq!(r.expect(400, Some("validation_failed"))["error"]["details"][0]["field"], "timeout_seconds");
    }
}

async fn a_retry_interval_without_a_count_is_an_error(b: Backend) {
    let f = fleet(b, 1).await;
    for retry in [json!({"interval_minutes": 10}), json!({"count": 0, "interval_minutes": 10})] {
        let r = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, "retry": retry})).await;
        assert_eq!(r.expect(400, Some("validation_failed"))["error"]["details"][0]["field"], "retry.count", "{retry}");
    }
    let ok = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, "retry": {"count": 2}})).await;
    assert_eq!(ok.expect(201, None)["retry"], json!({"count": 2, "interval_minutes": 0}));
}

async fn seed_schedules_keep_their_seconds(b: Backend) {
    let f = fleet(b, 1).await;
    f.clock.set("2026-11-27T23:59:58Z".parse().unwrap());
    let j = f
        .api
        .post(
            "/api/v1/jobs",
            json!({"id": "late", "firmware": f.firmware, "all": true,
                                      "schedule": {"startSchedule": 3_661, "endSchedule": 86_399}}),
        )
        .await;
    let j = j.expect(201, None);
    assert_eq!(j["schedule"]["window"], json!({"from": "01:01:01", "to": "23:59:59"}), "86,399 is 23:59:59");
    assert_eq!(j["state"], "running", "23:59:58 is inside the window");
    f.advance(1);
    f.tick().await;
    let got = f.api.get("/api/v1/jobs/late").await;
    assert_eq!(got.ok()["state"], "paused", "23:59:59 is not");
    assert_eq!(got.ok()["schedule"]["window"]["to"], "23:59:59", "kept as stored");
    let native = f
        .api
        .post(
            "/api/v1/jobs",
            json!({"firmware": f.firmware, "all": true,
                                      "schedule": {"window": {"from": "22:00:30", "to": "06:00"}}}),
        )
        .await;
    assert_eq!(native.expect(201, None)["schedule"]["window"], json!({"from": "22:00:30", "to": "06:00"}));
}

async fn names_and_descriptions_refuse_control_bidi_and_zero_width_characters(b: Backend) {
    let f = fleet(b, 1).await;
    let field = |r: &common::Answer| r.expect(400, Some("validation_failed"))["error"]["details"][0]["field"].clone();
    for bad in ["evil\u{202E}gpj.exe", "pay\u{200B}pal", "a\u{2066}b", "\u{FEFF}x", "bell\u{7}"] {
        let job = |extra: Value| {
            let mut body = json!({"firmware": f.firmware, "all": true});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            f.api.post("/api/v1/jobs", body)
        };
        assert_eq!(field(&job(json!({"name": bad})).await), "name", "{bad:?}");
        assert_eq!(field(&job(json!({"description": bad})).await), "description", "{bad:?}");
        assert_eq!(field(&job(json!({"translations": {"de": bad}})).await), "translations.de", "{bad:?}");
        let r = f.api.post("/api/v1/products", json!({"key": "p", "name": bad})).await;
        assert_eq!(field(&r), "name", "a product's name {bad:?}");
        let r = f.api.post("/api/v1/products", json!({"key": "p", "description": bad})).await;
        assert_eq!(field(&r), "description", "a product's description {bad:?}");
        let r = f.api.post("/api/v1/groups", json!({"id": "g", "name": bad})).await;
        assert_eq!(field(&r), "name", "a group's name {bad:?}");
        let r = f.api.post("/api/v1/filters", json!({"name": bad, "query": "all"})).await;
        assert_eq!(field(&r), "name", "a filter's name {bad:?}");
        let r = f.api.post("/api/v1/keys", json!({"role": "viewer", "name": bad})).await;
        assert_eq!(field(&r), "name", "a key's name {bad:?}");
    }
    let r = f.api.post("/api/v1/jobs", json!({"firmware": f.firmware, "all": true, "description": "two\nlines"})).await;
    assert_eq!(field(&r), "description", "seed 002: no control characters, line breaks included");
    let ok = f
        .api
        .post(
            "/api/v1/jobs",
            json!({"firmware": f.firmware, "all": true, "name": "Frühling 🌱", "description": "日本語の説明"}),
        )
        .await;
    ok.expect(201, None);
}

async fn a_reference_to_what_does_not_exist_answers_not_found(b: Backend) {
    let f = fleet(b, 1).await;
    let not_found = |r: &common::Answer| {
        let body = r.expect(404, Some("not_found"));
        body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let job = |body: Value| f.api.post("/api/v1/jobs", body);
    assert_eq!(not_found(&job(json!({"firmware": "fw_nope", "all": true})).await), ["firmware"]);
    assert_eq!(not_found(&job(json!({"firmware": f.firmware, "groups": ["ghosts"]})).await), ["groups.ghosts"]);
    assert_eq!(
        not_found(&job(json!({"firmware": f.firmware, "devices": ["d-000", "ghost"]})).await),
        ["devices.ghost"]
    );
    assert_eq!(
        not_found(&job(json!({"firmware": f.firmware, "all": true, "include": ["ghost"]})).await),
        ["include.ghost"]
    );
    assert_eq!(not_found(&job(json!({"firmware": f.firmware, "filter_id": "nope"})).await), ["filter_id"]);
    let all = not_found(&job(json!({"firmware": "fw_nope", "groups": ["g"], "devices": ["ghost"]})).await);
    assert_eq!(all, ["groups.g", "firmware", "devices.ghost"], "every missing reference is named");
    // A request that is invalid besides is refused as invalid first.
    let r = job(json!({"firmware": "fw_nope", "all": true, "max_concurrency": 0})).await;
    r.expect(400, Some("validation_failed"));
}
