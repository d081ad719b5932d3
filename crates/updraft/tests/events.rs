//! The event stream end to end: replicas on one PostgreSQL database see each
//! other's changes at once, a durable follower catches up after a restart,
//! and idle polls read nothing from the store.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Api, Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

on_both_stores!(
    a_follower_catches_up_on_what_it_missed_while_stopped,
    idle_polls_read_nothing_from_the_store,
    events_name_who_acted,
);

/// A product, a firmware image for it, and a running continuous job for every
/// device whose `region` property is `eu`.
async fn continuous_job(api: &Api) {
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 100]).file_name("app.bin"));
    let fw = api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    let job = json!({"id": "eu", "firmware": fw, "recurrence": "continuous", "filter": "prop.region == \"eu\""});
    api.post("/api/v1/jobs", job).await.expect(201, None);
}

async fn device_poll(http: &reqwest::Client, server: &TestServer, device: &str, auth: &str) -> (u16, Value) {
    let r = http
        .request(Method::GET, server.url(&format!("/default/controller/v1/{device}")))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls until `done` holds, for at most `limit`; returns how long it took.
async fn within(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_database_see_each_others_changes_at_once() {
    let a = TestServer::start_with(Backend::Postgres, |s| s.scheduler_tick_ms = 100).await;
    let b = TestServer::start_settings(a.settings.clone()).await;
    let (a, b) = (Api::on(a), Api::on(b));
    continuous_job(&a).await;
    let http = reqwest::Client::new();

    // Registered through B, outside the job: A answers its polls from memory.
    let d = b.post("/api/v1/devices", json!({"id": "d-1", "product": "thermo", "properties": {"region": "us"}})).await;
    let auth = format!("TargetToken {}", d.expect(201, None)["token"].as_str().unwrap());
    let (status, idle) = device_poll(&http, &a.server, "d-1", &auth).await;
    assert_eq!(status, 200, "{idle}");
    assert!(idle["_links"].get("deploymentBase").is_none(), "{idle}");

    // Changed through B: B's continuous-jobs follower adds it, a scheduler
    // releases it, and A's poll cache forgets its idle answer.
    b.patch("/api/v1/devices/d-1", json!({"properties": {"region": "eu"}})).await.ok();
    let offered = within(Duration::from_secs(1), async || {
        device_poll(&http, &a.server, "d-1", &auth).await.1["_links"].get("deploymentBase").is_some()
    })
    .await;
    assert!(offered.is_some(), "replica A offered the job within 1 s of the change through replica B");

    // A token reissued through A stops working on B at once.
    let (status, _) = device_poll(&http, &b.server, "d-1", &auth).await;
    assert_eq!(status, 200);
    a.post("/api/v1/devices/d-1/token", json!({})).await.expect(200, None);
    let refused =
        within(Duration::from_secs(1), async || device_poll(&http, &b.server, "d-1", &auth).await.0 == 401).await;
    assert!(refused.is_some(), "replica B forgot the old token within 1 s");

    // A gateway token deleted through B no longer speaks for devices on A.
    let gw = a.post("/api/v1/gateway-tokens", json!({"name": "edge"})).await;
    let (gw_id, gw_token) = {
        let v = gw.expect(201, None);
        (v["id"].as_str().unwrap().to_owned(), format!("GatewayToken {}", v["token"].as_str().unwrap()))
    };
    assert_eq!(device_poll(&http, &a.server, "d-1", &gw_token).await.0, 200);
    b.delete(&format!("/api/v1/gateway-tokens/{gw_id}")).await.expect(204, None);
    let refused =
        within(Duration::from_secs(1), async || device_poll(&http, &a.server, "d-1", &gw_token).await.0 == 401).await;
    assert!(refused.is_some(), "replica A forgot the deleted gateway token within 1 s");
}

async fn a_follower_catches_up_on_what_it_missed_while_stopped(b: Backend) {
    let api = Api::on(TestServer::start(b).await);
    continuous_job(&api).await;
    let settings = api.server.settings.clone();
    let dir = api.server.stop().await;

    // While no server runs, a device that matches is registered straight in the store.
    let store = updraft::backends::open_store(&settings).await.unwrap();
    let mut attributes = updraft_core::DeviceAttributes::default();
    attributes.properties.insert("region".into(), updraft_core::PropertyValue::String("eu".into()));
    let device = updraft_core::NewDevice {
        id: "offline-reg".into(),
        product: "thermo".into(),
        attributes,
        token_hash: "not-a-token".into(),
    };
    store.create_devices("default", &[device], jiff::Timestamp::now()).await.unwrap();
    store.close().await;

    // The next server's follower reads on from where the last one stopped.
    let api = Api::on(TestServer::start_settings(settings).await);
    let added = within(Duration::from_secs(10), async || {
        let page = api.get("/api/v1/jobs/eu/executions").await;
        page.ok()["items"].as_array().unwrap().iter().any(|e| e["device"] == "offline-reg")
    })
    .await;
    assert!(added.is_some(), "the continuous job got the device registered while no follower ran");
    drop(dir);
}

/// Counts the SQL statements sqlx runs in this test process.
struct Statements(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Statements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn idle_polls_read_nothing_from_the_store(b: Backend) {
    use tracing_subscriber::layer::SubscriberExt;
    let statements = Arc::new(AtomicU64::new(0));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Statements(statements.clone())))
        .expect("the only subscriber of this test process");

    let (server, _clock) = TestServer::start_clocked(b, |_| {}).await;
    let api = Api::on(server);
    continuous_job(&api).await;
    let gw = api.post("/api/v1/gateway-tokens", json!({"name": "edge"})).await;
    let gateway = format!("GatewayToken {}", gw.expect(201, None)["token"].as_str().unwrap());
    let mut fleet = Vec::new();
    for id in (0..100).map(|i| format!("d-{i:03}")) {
        let d = api.post("/api/v1/devices", json!({"id": id, "product": "thermo"})).await;
        fleet.push((id, format!("TargetToken {}", d.expect(201, None)["token"].as_str().unwrap())));
    }
    let http = reqwest::Client::new();
    // Each device polled once, with its token and through the gateway.
    for (id, token) in &fleet {
        assert_eq!(device_poll(&http, &api.server, id, token).await.0, 200);
        assert_eq!(device_poll(&http, &api.server, id, &gateway).await.0, 200);
    }
    // Steady state: the followers have moved their cursors past the writes above.
    let mut last = statements.load(Ordering::SeqCst);
    let quiet = within(Duration::from_secs(15), async || {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = statements.load(Ordering::SeqCst);
        std::mem::replace(&mut last, now) == now
    })
    .await;
    assert!(quiet.is_some(), "the server went quiet");

    let before = statements.load(Ordering::SeqCst);
    let fleet = Arc::new(fleet);
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (fleet, http, gateway) = (fleet.clone(), http.clone(), gateway.clone());
        let url = api.server.url("");
        tasks.push(tokio::spawn(async move {
            for round in 0..25 {
                for (id, token) in fleet.iter() {
                    let auth = if (round + worker) % 2 == 0 { token } else { &gateway };
                    let r = http
                        .get(format!("{url}/default/controller/v1/{id}"))
                        .header("authorization", auth)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    let body: Value = r.json().await.unwrap();
                    assert!(body["_links"].get("deploymentBase").is_none(), "idle: {body}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let read = statements.load(Ordering::SeqCst) - before;
    assert_eq!(read, 0, "10,000 idle polls of 100 devices ran {read} SQL statements");
    assert!(before > 0, "the counter counts: setting the fleet up ran statements");
}

/// Every event names who acted: the API key of a management call, the device
/// of a device API call, the follower that added a device to a continuous job.
async fn events_name_who_acted(b: Backend) {
    let api = Api::on(TestServer::start(b).await);
    continuous_job(&api).await;
    let key = api.get("/api/v1/keys").await.ok()["items"][0]["id"].as_str().unwrap().to_owned();
    let d =
        api.post("/api/v1/devices", json!({"id": "d-1", "product": "thermo", "properties": {"region": "eu"}})).await;
    let token = d.expect(201, None)["token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let url = api.server.url("/default/controller/v1/d-1/configData");
    let r = http
        .put(url)
        .header("authorization", format!("TargetToken {token}"))
        .json(&json!({"mode": "merge", "data": {"hw": "v2"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let settings = api.server.settings.clone();
    let dir = api.server.stop().await;
    let store = updraft::backends::open_store(&settings).await.unwrap();
    let events = store.events_after(Default::default(), 1000).await.unwrap();
    store.close().await;
    let by = |kind: &str| -> Vec<Option<String>> {
        events.iter().filter(|e| e.change.kind() == kind).map(|e| e.actor.clone()).collect()
    };
    let me = Some(format!("key:{key}"));
    assert_eq!(by("job.created"), std::slice::from_ref(&me));
    assert_eq!(by("devices.created"), [me]);
    assert_eq!(by("device.updated"), [Some("device:d-1".to_owned())], "the device reported its attributes");
    let executions = by("executions.changed");
    assert_eq!(executions[0].as_deref(), Some("system:continuous_jobs"), "the follower added it");
    assert!(executions[1..].iter().all(|a| a.as_deref() == Some("system:scheduler")), "{executions:?}");
    drop(dir);
}
