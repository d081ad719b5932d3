//! The `updraft` binary as a user runs it: `updraft serve` as a process, and
//! the client subcommands against a real server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use updraft::testing::{ADMIN_TOKEN, Backend, TestServer};

fn updraft(server: &TestServer, token: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(args)
        .env("UPDRAFT_SERVER", format!("http://{}", server.addr))
        .env("UPDRAFT_TOKEN", token)
        .current_dir(cwd)
        .output()
        .expect("run updraft")
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn client_commands_end_to_end() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let run = |args: &[&str]| updraft(&server, ADMIN_TOKEN, args, cwd);

    let table = ok(run(&["product", "create", "thermo", "--name", "Thermostat X"]));
    assert!(table.starts_with("KEY") && table.contains("Thermostat X"), "{table}");
    let addr = server.addr.to_string();
    let listed = json(run(&["--json", "product", "--server", &addr, "list"]));
    assert_eq!(listed["total"], 1, "global options anywhere; a server without a scheme is http");
    // TLS is set up (ring): an https URL gets as far as a handshake the plain server cannot answer.
    let tls = run(&["product", "list", "--server", &format!("https://{addr}")]);
    let err = String::from_utf8_lossy(&tls.stderr);
    assert!(!tls.status.success() && err.contains("cannot reach the server") && !err.contains("panicked"), "{err}");
    let completions = ok(run(&["completions", "bash"]));
    assert!(completions.contains("updraft") && completions.contains("firmware"), "bash completions");

    let image: Vec<u8> = (0..5_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(cwd.join("fw-1.1.0.bin"), &image).unwrap();
    let fw = json(run(&[
        "firmware",
        "upload",
        "fw-1.1.0.bin",
        "--product",
        "thermo",
        "--version",
        "1.1.0",
        "--meta",
        "campaign=x",
        "--json",
    ]));
    let id = fw["id"].as_str().unwrap().to_owned();
    assert_eq!(fw["files"][0]["sha256"], sha256_file(&cwd.join("fw-1.1.0.bin")));
    assert_eq!(fw["metadata"]["campaign"], "x");
    let listed = ok(run(&["firmware", "list"]));
    assert!(listed.contains(&id) && listed.contains("1.1.0"), "{listed}");
    let line = ok(run(&["firmware", "download", &id, "-o", "back.bin"]));
    assert!(line.starts_with(&sha256_file(&cwd.join("fw-1.1.0.bin"))), "{line}");
    assert_eq!(std::fs::read(cwd.join("back.bin")).unwrap(), image);
    let refused = run(&["firmware", "download", "thermo@1.1.0", "-o", "back.bin"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("back.bin exists already"), "{refused:?}");
    ok(run(&["firmware", "download", &id, "-o", "back.bin", "--force"]));

    let added = ok(run(&[
        "device",
        "add",
        "dev-1",
        "--product",
        "thermo",
        "--firmware",
        "host=1.0.0",
        "--prop",
        "region=eu",
        "--prop",
        "temp=21.5",
    ]));
    assert!(added.contains("token (shown once): upd_d_"), "{added}");
    let device_token = added.rsplit("token (shown once): ").next().unwrap().trim().to_owned();
    let shown = json(run(&["device", "show", "dev-1", "--json"]));
    assert_eq!(shown["properties"]["temp"], 21.5);

    let csv: String = std::iter::once("id,product,firmware.host,prop.region\n".to_owned())
        .chain((0..500).map(|i| format!("sim-{i:04},thermo,1.0.0,{}\n", if i % 2 == 0 { "eu" } else { "us" })))
        .collect();
    std::fs::write(cwd.join("fleet.csv"), csv).unwrap();
    let imported = ok(run(&["device", "import", "fleet.csv"]));
    assert!(imported.contains("500 devices imported"), "{imported}");
    let tokens = std::fs::read_to_string(cwd.join("fleet.csv.tokens.csv")).unwrap();
    assert_eq!(tokens.lines().count(), 501);
    assert!(tokens.lines().nth(1).unwrap().starts_with("sim-0000,upd_d_"));
    let again = run(&["device", "import", "fleet.csv"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("fleet.csv.tokens.csv exists already") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(cwd.join("fleet.csv.tokens.csv")).unwrap(), tokens, "never overwritten");
    let again = run(&["device", "import", "fleet.csv", "--tokens-out", "again.csv"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("import_rejected") && err.contains("line 2"), "{err}");
    assert!(!err.contains("upd_d_"), "no token in an error: {err}");

    let page = json(run(&["device", "list", "--limit", "10", "--offset", "495", "--sort", "-id", "--json"]));
    assert_eq!(page["total"], 501);
    assert_eq!(page["items"].as_array().unwrap().len(), 6);

    ok(run(&["group", "create", "eu", "--product", "thermo"]));
    let ids: String = (0..500).step_by(2).map(|i| format!("sim-{i:04}\n")).collect();
    std::fs::write(cwd.join("eu.txt"), ids).unwrap();
    let added = ok(run(&["group", "add", "eu", "--from", "eu.txt"]));
    assert!(added.contains("250 added"), "{added}");
    ok(run(&["group", "create", "all", "--product", "thermo"]));
    let added = ok(run(&["group", "add", "all", "--from", "fleet.csv.tokens.csv"]));
    assert!(added.contains("500 added"), "the tokens file the CLI wrote names the devices: {added}");
    let members = json(run(&["group", "members", "eu", "--limit", "5", "--json"]));
    assert_eq!(members["total"], 250);

    let viewer = json(run(&["key", "create", "--role", "viewer", "--json"]));
    let viewer = viewer["token"].as_str().unwrap();
    let denied = updraft(&server, viewer, &["product", "create", "other"], cwd);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("forbidden"));
    ok(updraft(&server, viewer, &["product", "list"], cwd));

    // Consent keeps the executions where they are while the scheduler ticks (every second here).
    let job = json(run(&[
        "job",
        "create",
        "--firmware",
        &id,
        "--id",
        "first",
        "dev-1",
        "sim-0000",
        "--consent-required",
        "--max-per-minute",
        "10",
        "--retries",
        "2",
        "--retry-interval",
        "5",
        "--no-start",
        "--json",
    ]));
    assert_eq!((job["state"].as_str(), job["max_per_minute"].as_u64()), (Some("created"), Some(10)));
    assert_eq!(job["retry"]["count"], 2);
    let estimate = json(run(&["job", "estimate", "first", "--json"]));
    assert_eq!(estimate["count"], 2);
    let started = json(run(&["job", "start", "first", "--json"]));
    assert_eq!((started["state"].as_str(), started["counts"]["awaiting_consent"].as_u64()), (Some("running"), Some(2)));
    let shown = ok(run(&["job", "executions", "first", "--state", "awaiting_consent"]));
    assert!(shown.contains("dev-1") && shown.contains("sim-0000"), "{shown}");
    let history = ok(run(&["job", "device", "dev-1"]));
    assert!(history.contains("created") && history.contains("first"), "{history}");
    assert_eq!(json(run(&["job", "pause", "first", "--json"]))["held"], true);
    assert_eq!(json(run(&["job", "resume", "first", "--json"]))["state"], "running");
    let running = json(run(&["job", "list", "--state", "running", "--json"]));
    assert_eq!(running["items"][0]["id"], "first");
    let shown = ok(run(&["job", "show", "first"]));
    assert!(shown.contains("2 targeted") && shown.contains("eta        unknown"), "{shown}");
    let canceled = json(run(&["job", "cancel", "first", "--json"]));
    assert_eq!(canceled["state"], "canceled");
    let watched = ok(run(&["job", "watch", "first", "--json"]));
    assert!(watched.lines().count() == 1 && watched.contains("\"canceled\""), "watch ends with the job: {watched}");
    for (args, expected) in [(["job", "next-phase", "first"], "canceled"), (["job", "retry-failed", "first"], "")] {
        let refused = run(&args);
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && err.contains("(409)") && err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.matches("error").count(), 1, "said once: {err}");
    }
    let watched = ok(run(&["job", "watch", "first"]));
    assert!(watched.lines().count() == 1 && watched.contains("first canceled"), "one plain line: {watched}");
    assert!(!watched.contains('\x1b'), "no escape codes off a terminal: {watched:?}");
    let summary = ok(run(&["job", "show", "first"]));
    assert!(summary.contains("state      canceled") && summary.contains("eta        -"), "{summary}");
    let gw = ok(run(&["gateway-token", "create", "--name", "edge"]));
    assert!(gw.contains("token (shown once): upd_g_"), "{gw}");

    let eu = ok(run(&["filter", "estimate", r#"prop.region == "eu""#]));
    assert!(eu.contains("251 devices match"), "250 imported and dev-1: {eu}");
    let listed = json(run(&["device", "list", "-q", r#"prop.region == "us" and fw.host < "2.0.0""#, "--json"]));
    assert_eq!(listed["total"], 250);
    ok(run(&["filter", "create", r#"prop.region == "eu""#, "--name", "Europe", "--filter-id", "europe"]));
    let preview = json(run(&["filter", "preview", "--id", "europe", "--limit", "3", "--json"]));
    assert_eq!(preview["items"].as_array().unwrap().len(), 3);
    let bad = run(&["filter", "estimate", "prop.region = = 1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid_filter"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // The agent finds the server in UPDRAFT_SERVER like every command, and takes `--token` given
    // on its command line as the device's token (UPDRAFT_TOKEN holds an API key here).
    let agent = run(&["agent", "--controller-id", "dev-1", "--token", &device_token, "--install-to", "out", "--once"]);
    assert!(agent.status.success(), "{}", String::from_utf8_lossy(&agent.stderr));
    let seen = json(run(&["device", "show", "dev-1", "--json"]));
    assert_eq!(seen["firmware"]["host"], "1.0.0", "{seen}");
    let no_token = run(&["agent", "--controller-id", "dev-1", "--install-to", "out", "--once"]);
    let err = String::from_utf8_lossy(&no_token.stderr);
    assert!(
        !no_token.status.success() && err.contains("--device-token"),
        "an API key is never a device's token: {err}"
    );

    let created = ok(run(&["tenant", "create", "globex"]));
    let other =
        created.lines().find_map(|l| l.split(": ").nth(1).filter(|t| t.starts_with("upd_k_"))).unwrap().to_owned();
    let theirs = json(updraft(&server, &other, &["device", "list", "--json"], cwd));
    assert_eq!(theirs["total"], 0, "another tenant sees nothing");
}

#[test]
fn serve_starts_on_defaults_prints_the_admin_key_once_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("UPDRAFT_BOOTSTRAP_TOKEN")
            .env_remove("UPDRAFT_DATABASE_URL")
            .current_dir(dir.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start updraft serve")
    };
    let wait_listening = |child: &mut std::process::Child| -> Vec<String> {
        // If the server never says it listens, kill it so the read below ends and the test fails.
        let pid = child.id();
        let watchdog = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(60));
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        });
        drop(watchdog);
        let mut lines = Vec::new();
        let mut reader = BufReader::new(child.stderr.take().unwrap()).lines();
        for line in reader.by_ref() {
            let line = line.unwrap();
            let done = line.contains("updraft listening");
            lines.push(line);
            if done {
                break;
            }
        }
        // Keep reading the server's log so that it never writes into a closed pipe.
        std::thread::spawn(move || reader.for_each(drop));
        assert!(lines.last().is_some_and(|l| l.contains("updraft listening")), "the server did not start: {lines:?}");
        lines
    };

    let mut first = start();
    let lines = wait_listening(&mut first);
    let token = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("upd_k_"))
        .map(|t| format!("upd_k_{t}"))
        .expect("the key is printed");
    assert!(dir.path().join("updraft-data/updraft.db").exists(), "embedded defaults: SQLite under ./updraft-data");
    let base = format!("http://127.0.0.1:{port}");
    let banner = lines.join("\n");
    assert!(banner.contains(&format!("listens on {base}")), "{banner}");
    let data_dir = dir.path().canonicalize().unwrap().join("updraft-data");
    assert!(banner.contains(&format!("data directory: {}", data_dir.display())), "{banner}");
    assert!(banner.contains(&format!("export UPDRAFT_SERVER={base} UPDRAFT_TOKEN={token}")), "{banner}");
    let client = reqwest::blocking::Client::new();
    assert_eq!(client.get(format!("{base}/healthz")).send().unwrap().status(), 200);
    let r = client
        .post(format!("{base}/api/v1/products"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"key": "thermo"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    Command::new("kill").args(["-TERM", &first.id().to_string()]).status().unwrap();
    let status = first.wait().unwrap();
    assert!(status.success(), "SIGTERM stops the server cleanly: {status:?}");

    let mut second = start();
    let lines = wait_listening(&mut second);
    assert!(!lines.iter().any(|l| l.contains("upd_k_")), "the key is printed only on the first start: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("updraft admin reset-key --data-dir")), "how to recover a key: {lines:?}");
    let r = client.get(format!("{base}/api/v1/products/thermo")).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 200, "the product written before the restart is there and the key still works");

    // A lost key is replaced through the data directory, the server running.
    let reset = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["admin", "reset-key", "--data-dir", "updraft-data"])
        .env_remove("UPDRAFT_DATABASE_URL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let new_token = String::from_utf8(reset.stdout).unwrap().trim().to_owned();
    assert!(new_token.starts_with("upd_k_") && new_token != token, "{new_token}");
    let r = client.get(format!("{base}/api/v1/products/thermo")).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 401, "the old key stops working at once");
    let r = client.get(format!("{base}/api/v1/tenants")).bearer_auth(&new_token).send().unwrap();
    assert_eq!(r.status(), 200, "the new key is the server administrator's");
    Command::new("kill").args(["-INT", &second.id().to_string()]).status().unwrap();
    assert!(second.wait().unwrap().success());
}

/// A proxy to `target` that loses the answer of the first request it carries:
/// the server does the work, the client sees its connection cut.
async fn answer_losing_proxy(target: std::net::SocketAddr) -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = listener.accept().await {
            let Ok(mut server) = tokio::net::TcpStream::connect(target).await else { continue };
            if std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let (mut client_read, client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
                    let mut answer = [0u8; 1];
                    let _ = server_read.read(&mut answer).await;
                    drop(client_write);
                    drop(server_read);
                });
            } else {
                tokio::spawn(async move { tokio::io::copy_bidirectional(&mut client, &mut server).await });
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_whose_answer_is_lost_is_retried_and_its_tokens_work() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let run = |args: &[&str]| updraft(&server, ADMIN_TOKEN, args, cwd);
    ok(run(&["product", "create", "thermo"]));
    std::fs::write(cwd.join("fleet.csv"), "id,product\nd1,thermo\nd2,thermo\n").unwrap();

    let proxy = answer_losing_proxy(server.addr).await;
    let out = Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["device", "import", "fleet.csv"])
        .env("UPDRAFT_SERVER", format!("http://{proxy}"))
        .env("UPDRAFT_TOKEN", ADMIN_TOKEN)
        .current_dir(cwd)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(ok(out).contains("2 devices imported"));
    assert!(stderr.contains("retrying once with the same Idempotency-Key"), "{stderr}");
    let tokens = std::fs::read_to_string(cwd.join("fleet.csv.tokens.csv")).unwrap();
    let http = reqwest::Client::new();
    let poll = |device: String, token: String| {
        let url = server.url(&format!("/default/controller/v1/{device}"));
        let r = http.get(url).header("authorization", format!("TargetToken {token}")).send();
        async move { r.await.unwrap().status().as_u16() }
    };
    for line in tokens.lines().skip(1) {
        let (device, token) = line.split_once(',').unwrap();
        assert_eq!(poll(device.into(), token.into()).await, 200, "{line}");
    }

    // A device whose token was lost gets a new one; the old one stops working.
    let (_, old) = tokens.lines().nth(1).unwrap().split_once(',').unwrap();
    let new = ok(run(&["device", "token", "d1"]));
    let new = new.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(new.starts_with("upd_d_"), "{new}");
    assert_eq!(poll("d1".into(), old.into()).await, 401);
    assert_eq!(poll("d1".into(), new).await, 200);

    // Keys may expire; listings show a prefix, never the token.
    let key = json(run(&["key", "create", "--role", "viewer", "--expires-at", "2999-01-01T00:00:00Z", "--json"]));
    assert!(key["expires_at"].as_str().unwrap().starts_with("2999-01-01"));
    let listed = ok(run(&["key", "list"]));
    assert!(listed.contains("PREFIX") && listed.contains(&key["token"].as_str().unwrap()[..10]), "{listed}");
    assert!(!listed.contains(key["token"].as_str().unwrap()), "{listed}");
}

/// `sim --until-idle` does not stop while a failed execution of its devices is to be retried:
/// the retry comes after the job's interval (here on the server's manual clock), however long
/// the fleet was idle. Its devices carry `sim=true`; registering them twice says what to do.
#[tokio::test(flavor = "multi_thread")]
async fn sim_until_idle_waits_for_retries_to_come() {
    let (server, clock) = TestServer::start_clocked(Backend::Sqlite, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let run = |args: &[&str]| updraft(&server, ADMIN_TOKEN, args, cwd);
    ok(run(&["product", "create", "meter"]));
    std::fs::write(cwd.join("fw.bin"), b"meter firmware").unwrap();
    ok(run(&["firmware", "upload", "fw.bin", "--product", "meter", "--version", "2.0.0"]));
    let register = ["sim", "--register-only", "--devices", "1", "--product", "meter", "--firmware", "host=1.0.0"];
    ok(run(&[&register[..], &["--tokens-out", "fleet.csv"]].concat()));
    let marked = json(run(&["device", "list", "-q", "prop.sim == true", "--json"]));
    assert_eq!(marked["total"], 1, "simulated devices carry sim=true");
    let again = run(&[&register[..], &["--tokens-out", "again.csv"]].concat());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("import_rejected"), "{err}");
    assert!(err.contains("--skip-register") && err.contains("--prefix") && !err.contains("upd_d_"), "{err}");

    let job = ["job", "create", "--firmware", "meter@2.0.0", "sim-00000", "--retries", "1", "--retry-interval", "1m"];
    ok(run(&[&job[..], &["--id", "flaky"]].concat()));
    server.tick_scheduler().await;
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["sim", "--skip-register", "--tokens", "fleet.csv", "--fail-rate", "1", "--poll-interval", "0.1"])
        .args(["--until-idle", "0.3", "--duration", "120", "--json"])
        .env("UPDRAFT_SERVER", format!("http://{}", server.addr))
        .env("UPDRAFT_TOKEN", ADMIN_TOKEN)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let execution = || async {
        let page = json(updraft(&server, ADMIN_TOKEN, &["job", "executions", "flaky", "--json"], cwd));
        (page["items"][0]["state"].as_str().unwrap_or("").to_owned(), page["items"][0]["attempt"].as_u64())
    };
    while execution().await.0 != "failed" {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Idle for several times --until-idle, the retry still to come.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(sim.try_wait().unwrap().is_none(), "the simulator waits for the retry");

    clock.advance(jiff::SignedDuration::from_secs(61));
    server.tick_scheduler().await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), sim.wait()).await.expect("it stops").unwrap();
    assert!(status.success());
    assert_eq!(execution().await, ("failed".to_owned(), Some(2)), "the retry ran, and failed again: no more to come");
}
