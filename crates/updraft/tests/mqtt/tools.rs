//! `updraft agent` and `updraft sim` over MQTT: the agent is woken by the
//! server's push (it would not poll again for an hour) and announces itself;
//! the simulator's devices do whole jobs over AWS IoT Jobs and measure the push.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, ADMIN_TOKEN};
use crate::{Broker, Pki, device, firmware, server, server_on, wait_execution, wait_status};

fn updraft(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_updraft"));
    for (k, _) in std::env::vars() {
        if k.starts_with("UPDRAFT_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn the_agent_is_woken_by_a_push() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let api = server(common::Backend::Sqlite, &pki, &broker).await;
    let fw = firmware(&api).await;
    let cred = device(&api, "cam5").await;
    let token =
        api.post("/api/v1/devices/cam5/token", json!({})).await.expect(200, None)["token"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, key: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, cred[key].as_str().unwrap()).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (cert, key) = (write("cam5.pem", "certificate_pem"), write("cam5.key", "private_key_pem"));
    let out = dir.path().join("installed");
    std::fs::create_dir(&out).unwrap();
    let state = dir.path().join("state");
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let mut agent = updraft(&[
        "agent",
        "--server",
        &api.server.url(""),
        "--controller-id",
        "cam5",
        "--device-token",
        &token,
        "--state-dir",
        state.to_str().unwrap(),
        "--install-to",
        out.to_str().unwrap(),
        "--poll-interval",
        "1h",
        "--mqtt-url",
        &url,
        "--mqtt-ca-file",
        pki.broker_ca.to_str().unwrap(),
        "--mqtt-cert-file",
        &cert,
        "--mqtt-key-file",
        &key,
    ])
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_status(&api, "cam5", "online").await;

    // Two jobs, one after the other: the second comes while the agent sleeps for its hour.
    api.post("/api/v1/jobs", json!({"id": "wake-1", "firmware": fw, "devices": ["cam5"]})).await.expect(201, None);
    wait_execution(&api, "wake-1", "cam5", "succeeded").await;
    let fw3 = common::fleet::upload(&api, "cam", "3.0.0", false).await;
    api.post("/api/v1/jobs", json!({"id": "wake-2", "firmware": fw3, "devices": ["cam5"]})).await.expect(201, None);
    wait_execution(&api, "wake-2", "cam5", "succeeded").await;
    assert!(std::fs::read_dir(&out).unwrap().count() > 0, "the agent installed");

    // Stopped, it says goodbye.
    let pid = agent.id().unwrap() as i32;
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), rustix::process::Signal::TERM).unwrap();
    tokio::time::timeout(Duration::from_secs(10), agent.wait()).await.expect("the agent stops").unwrap();
    wait_status(&api, "cam5", "offline").await;
}

#[tokio::test]
async fn the_simulator_runs_devices_over_mqtt() {
    const FLEET: usize = 40;
    let pki = Pki::new();
    let broker = Broker::start_open(&pki);
    let api = server_on(common::Backend::Sqlite, &pki, &broker, false).await;
    let fw = firmware(&api).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("fleet.csv");
    let base = api.server.url("");
    let register = updraft(&[
        "sim",
        "--server",
        &base,
        "--token",
        ADMIN_TOKEN,
        "--register-only",
        "--devices",
        &FLEET.to_string(),
        "--product",
        "cam",
        "--prefix",
        "mq-",
        "--tokens-out",
        tokens.to_str().unwrap(),
    ])
    .output()
    .await
    .unwrap();
    assert!(register.status.success(), "{}", String::from_utf8_lossy(&register.stderr));
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let sim = updraft(&[
        "sim",
        "--server",
        &base,
        "--token",
        ADMIN_TOKEN,
        "--skip-register",
        "--tokens",
        tokens.to_str().unwrap(),
        "--mqtt-url",
        &url,
        "--ramp-up",
        "0.1",
        "--fail-rate",
        "0.25",
        "--until-idle",
        "2",
        "--duration",
        "60",
        "--json",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Every device online (announced), then the job.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = api.get("/api/v1/devices?q=status%20%3D%3D%20%22online%22&limit=1").await;
        if page.body["total"] == FLEET {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not every simulated device came online: {}", page.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = (0..FLEET).map(|i| format!("mq-{i:05}")).collect();
    api.post("/api/v1/jobs", json!({"id": "sim-1", "firmware": fw, "devices": ids})).await.expect(201, None);
    let out =
        tokio::time::timeout(Duration::from_secs(90), sim.wait_with_output()).await.expect("the sim ends").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["succeeded"], 30, "{summary}");
    assert_eq!(summary["failed"], 10, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["pushes"], FLEET, "{summary}");
    assert!(summary["push_latency_p99_us"].as_u64().is_some(), "{summary}");
    let job = api.get("/api/v1/jobs/sim-1").await.ok().clone();
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["counts"]["succeeded"], 30, "{job}");
    assert_eq!(job["counts"]["failed"], 10, "{job}");
}
