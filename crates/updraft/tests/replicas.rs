//! Three `updraft serve` processes on one PostgreSQL database behind a
//! round-robin load balancer, a 5,000-device job done by `updraft sim`, and
//! one replica killed with SIGKILL in the middle (the one holding the job's
//! lease): the job ends with exact counts, no execution released twice, and
//! the concurrency limit never exceeded, all read from the stored execution
//! histories.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use updraft_app::store::{ExecutionScope, Store};
use updraft_core::job::ExecutionState;

const TOKEN: &str = "upd_k_replicas_test_0123456789abcdef";
const DEVICES: usize = 5_000;
const CONCURRENCY: usize = 500;

struct Replica {
    child: Child,
    port: u16,
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `updraft serve` on `database`, with its own data directory; waits until it answers.
async fn start_replica(database: &str, kek: &str, config: &Path, dir: &Path) -> Replica {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", database])
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(config)
        .env("UPDRAFT_BOOTSTRAP_TOKEN", TOKEN)
        .env("UPDRAFT_KEY_ENCRYPTION_KEY", kek)
        .env("UPDRAFT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting updraft serve");
    // The banner names the replica (what its leases are held as).
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let id = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix("replica: ") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("updraft serve ended before naming its replica");
    })
    .await
    .expect("the banner within a minute");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Replica { child, port, id };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("replica on port {port} did not answer");
}

/// A TCP load balancer: each connection goes to the next replica that accepts it.
async fn balance(backends: Vec<u16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { return };
            let (backends, next) = (backends.clone(), next.clone());
            tokio::spawn(async move {
                for _ in 0..backends.len() {
                    let port = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn api(http: &reqwest::Client, method: reqwest::Method, url: String, body: Option<Value>) -> Value {
    let mut r = http.request(method, &url).bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_job_loses_nothing() {
    let database = updraft_store_postgres::testing::create_database().await;
    // Firmware in one bucket: every replica serves every image.
    let s3 = common::s3::S3Server::start().await;
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("updraft.toml");
    let settings = "presence_flush_ms = 1000\nscheduler_tick_ms = 250\nfollower_poll_secs = 2\n\
                    api_rate_limit_per_sec = 0\nddi_rate_limit_per_minute = 1000000\n";
    std::fs::write(&config, format!("{settings}{}", s3.blobs_toml("fleet"))).unwrap();
    let kek = "42".repeat(32);
    let mut replicas = Vec::new();
    for i in 0..3 {
        let dir = work.path().join(format!("replica-{i}"));
        replicas.push(start_replica(&database, &kek, &config, &dir).await);
    }
    let lb = balance(replicas.iter().map(|r| r.port).collect()).await;
    let url = format!("http://127.0.0.1:{lb}");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| api(&http, reqwest::Method::POST, format!("{url}{path}"), Some(body));
    post("/api/v1/products", json!({"key": "meter"})).await;
    let form = reqwest::multipart::Form::new()
        .text("product", "meter")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(vec![3u8; 4096]).file_name("app.bin"));
    let fw = http.post(format!("{url}/api/v1/firmware")).bearer_auth(TOKEN).multipart(form).send().await.unwrap();
    assert_eq!(fw.status(), 201);
    let fw = fw.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    let sim = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_updraft"));
        c.arg("sim").args(args).env("UPDRAFT_SERVER", &url).env("UPDRAFT_TOKEN", TOKEN).current_dir(work.path());
        c.stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
        c
    };
    let devices = DEVICES.to_string();
    let register = ["--register-only", "--devices", &devices, "--product", "meter", "--prefix", "m-"];
    let registered = sim(&[&register[..], &["--firmware", "host=1.0.0", "--tokens-out", "fleet.csv"]].concat())
        .output()
        .await
        .unwrap();
    assert!(registered.status.success(), "registering the fleet failed");
    let mut fleet = sim(&[
        "--skip-register",
        "--tokens",
        "fleet.csv",
        // Idle polls are most of the load (debug builds, two cores): not too often.
        "--poll-interval",
        "10",
        "--ramp-up",
        "10",
        // Longer than a lease takes to run out (10 s) after the kill.
        "--until-idle",
        "30",
        "--duration",
        "600",
        "--json",
    ])
    .spawn()
    .unwrap();

    let ids: Vec<String> = (0..DEVICES).map(|i| format!("m-{i:05}")).collect();
    let job = json!({"id": "spring", "firmware": fw, "devices": ids, "max_concurrency": CONCURRENCY});
    post("/api/v1/jobs", job).await;
    let counts = || async {
        let job = api(&http, reqwest::Method::GET, format!("{url}/api/v1/jobs/spring"), None).await;
        let n = |s: &str| job["counts"][s].as_u64().unwrap_or(0);
        (job["state"].as_str().unwrap_or("").to_owned(), n("succeeded"), n("failed"))
    };

    // A third of the way: kill -9 the replica holding the job's lease.
    let started = Instant::now();
    while counts().await.1 < (DEVICES / 3) as u64 {
        assert!(started.elapsed() < Duration::from_secs(300), "the job stalled before the kill: {:?}", counts().await);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let store: Arc<dyn Store> = Arc::new(updraft_store_postgres::connect(&database).await.unwrap());
    let holder = store_lease_owner(&database).await;
    let victim = replicas
        .iter()
        .position(|r| Some(&r.id) == holder.as_ref())
        .unwrap_or_else(|| panic!("the job's lease is held by one of the replicas, not {holder:?}"));
    eprintln!("{:?} killing {} (it holds the job's lease)", started.elapsed(), replicas[victim].id);
    let pid = replicas[victim].child.id().unwrap();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().await.unwrap().success());
    replicas[victim].child.wait().await.unwrap();

    // The survivors take the lease over and finish the job.
    let finished = loop {
        let c = counts().await;
        if c.0 == "completed" {
            break c;
        }
        assert!(started.elapsed() < Duration::from_secs(480), "the job did not complete after the kill: {c:?}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    };
    assert_eq!((finished.1, finished.2), (DEVICES as u64, 0), "every device succeeded, none failed");
    let out = tokio::time::timeout(Duration::from_secs(120), fleet.wait()).await.expect("the simulator ends").unwrap();
    assert!(out.success());

    // From the stored histories: one execution per device, each released once and ended
    // once, and never more than CONCURRENCY released and not yet ended at any moment.
    let mut executions = Vec::new();
    let mut offset = 0;
    loop {
        let page = updraft_core::PageRequest {
            limit: 1000,
            offset,
            sort: "action_id".into(),
            order: updraft_core::SortOrder::Asc,
            search: None,
            count_total: false,
        };
        let scope = ExecutionScope { job: Some("spring".into()), ..Default::default() };
        let got = store.list_executions("default", &scope, &page).await.unwrap();
        offset += got.items.len() as u64;
        let done = got.items.len() < 1000;
        executions.extend(got.items);
        if done {
            break;
        }
    }
    assert_eq!(executions.len(), DEVICES);
    let mut per_device: HashMap<&str, usize> = HashMap::new();
    for e in &executions {
        *per_device.entry(e.device.as_str()).or_default() += 1;
        assert_eq!((e.state, e.attempt), (ExecutionState::Succeeded, 1), "{}", e.device);
    }
    assert_eq!(per_device.len(), DEVICES, "one execution per device");
    let ids: Vec<i64> = executions.iter().map(|e| e.action_id).collect();
    let histories = store.execution_histories("default", &ids).await.unwrap();
    let mut moments = Vec::new();
    for e in &executions {
        let h = &histories[&e.action_id];
        let released: Vec<_> = h.iter().filter(|ev| ev.report == "released").collect();
        assert_eq!(released.len(), 1, "{} released {} times: {h:?}", e.device, released.len());
        let ended: Vec<_> = h.iter().filter(|ev| ev.state.is_terminal()).collect();
        assert_eq!(ended.len(), 1, "{} ended {} times: {h:?}", e.device, ended.len());
        // Ends sort before releases at the same instant.
        moments.push((released[0].at, 1i64));
        moments.push((ended[0].at, -1i64));
    }
    moments.sort_by_key(|&(at, delta)| (at, delta));
    let (mut open, mut most) = (0i64, 0i64);
    for (_, delta) in moments {
        open += delta;
        most = most.max(open);
    }
    assert!(most <= CONCURRENCY as i64, "{most} executions in progress at once, over the limit of {CONCURRENCY}");
    assert!(most > 0);
}

/// Which replica holds the job's scheduler lease now.
async fn store_lease_owner(database: &str) -> Option<String> {
    let out = Command::new("psql")
        .args(["-At", "-d", database, "-c", "SELECT lease_owner FROM jobs WHERE id = 'spring'"])
        .output()
        .await
        .ok()?;
    let owner = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!owner.is_empty()).then_some(owner)
}
