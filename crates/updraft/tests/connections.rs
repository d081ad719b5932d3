//! `updraft serve` as a process limited to 1,024 open files: idle and
//! slow-header connections can never lock devices out.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use updraft::testing::ADMIN_TOKEN;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_slow_connections_never_lock_devices_out() {
    // This process holds the 2,000 client sockets; the server may have 1,024 files.
    assert!(updraft_server::conn::raise_open_file_limit().is_none_or(|n| n >= 4_000), "the test needs 4,000 files");
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let header_timeout = Duration::from_secs(2);
    let _server = Server(
        Command::new("sh")
            .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_updraft"), "serve"])
            .args(["--listen", &addr, "--data-dir"])
            .arg(dir.path())
            .args(["--header-read-timeout-secs", "2", "--bootstrap-token", ADMIN_TOKEN])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start updraft serve"),
    );
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let url = |path: &str| format!("http://{addr}{path}");
    let started = Instant::now();
    while http.get(url("/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = |path: &str, body: Value| http.post(url(path)).bearer_auth(ADMIN_TOKEN).json(&body).send();
    assert!(api("/api/v1/products", json!({"key": "thermo"})).await.unwrap().status().is_success());
    let device: Value =
        api("/api/v1/devices", json!({"id": "dev-0", "product": "thermo"})).await.unwrap().json().await.unwrap();
    let token = device["token"].as_str().unwrap().to_owned();
    let poll =
        || http.get(url("/default/controller/v1/dev-0")).header("authorization", format!("TargetToken {token}")).send();
    assert_eq!(poll().await.unwrap().status(), 200);

    // 2,000 connections that send nothing, and 20 that send their headers a byte a second.
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr)).await {
            idle.push(s);
        }
    }
    assert!(idle.len() > 1_024, "only {} idle connections opened", idle.len());
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let opened = Instant::now();
                let Ok(s) = TcpStream::connect(&addr).await else { return None };
                let (mut reader, mut writer) = s.into_split();
                let trickle = async move {
                    for byte in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: yes\r\n\r\n" {
                        if writer.write_all(&[*byte]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    std::future::pending::<()>().await;
                };
                let mut buf = [0u8; 64];
                tokio::select! {
                    read = reader.read(&mut buf) => matches!(read, Ok(0) | Err(_)).then(|| opened.elapsed()),
                    () = trickle => None,
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Devices still get answers, within the header timeout.
    for _ in 0..5 {
        let asked = Instant::now();
        let answer = tokio::time::timeout(header_timeout, poll()).await;
        assert_eq!(answer.expect("a poll answers within the header timeout").unwrap().status(), 200);
        assert!(asked.elapsed() < header_timeout, "the poll took {:?}", asked.elapsed());
    }
    // The slow-header connections are closed once their headers take longer than the timeout.
    for s in slow {
        let closed_after = s.await.unwrap().expect("a slow-header connection is closed, not served");
        // Closed at the timeout, give or take the scheduling of a loaded 2-core machine:
        // never served, never left open for long.
        assert!(closed_after < header_timeout * 2, "closed after {closed_after:?}");
    }
    drop(idle);
    assert_eq!(poll().await.unwrap().status(), 200);
}
