//! Devices as they run in the field, against a real server on SQLite and on PostgreSQL:
//! - `updraft agent` as a process, killed with `kill -9` mid-download (on a rate-limited link)
//!   and mid-install, which still ends on the new image, with the restarts in the execution's
//!   history, and then updates from that image to the next;
//! - `updraft sim` registering a fleet of 300 and running a job over it with exact failure and
//!   silence rates, every execution accounted for alike by the simulator and the server.
//!
//! Every process a test starts runs in its own process group and is killed with its children
//! when the test ends, passed or failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use updraft::testing::{ADMIN_TOKEN, Backend, TestServer};
use updraft_agent::sim::{Fate, OutcomeMode, Outcomes};

/// Runs each listed test body (an `async fn(Backend)`) on SQLite and on PostgreSQL. The runtime
/// has worker threads of its own so the in-process server keeps serving while a test waits.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}

on_both_stores!(agent_killed_mid_download_and_mid_install_still_updates_twice, simulated_fleet_is_accounted_for);

/// How long any one thing may take before a test gives up.
const PATIENCE: Duration = Duration::from_secs(40);
/// The longest any process a test starts may live.
const LIFETIME: Duration = Duration::from_secs(120);

struct Server {
    server: TestServer,
    http: reqwest::Client,
}

impl Server {
    async fn start(backend: Backend) -> Self {
        Server { server: TestServer::start(backend).await, http: reqwest::Client::new() }
    }

    fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method, self.server.url(path)).bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn create(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(Method::POST, path, Some(body)).await;
        assert_eq!(status, 201, "POST {path}: {answer}");
        answer
    }

    /// Uploads a one-file image for the `host` component and returns its id.
    async fn upload(&self, product: &str, version: &str, bytes: &[u8]) -> String {
        let form = reqwest::multipart::Form::new()
            .text("product", product.to_owned())
            .text("version", version.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(format!("{product}-{version}.bin")),
            );
        let r = self
            .http
            .post(self.server.url("/api/v1/firmware"))
            .bearer_auth(ADMIN_TOKEN)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.expect("JSON");
        body["id"].as_str().expect("an id").to_owned()
    }
}

/// Deterministic bytes that differ per `seed`.
fn image(len: usize, seed: u32) -> Vec<u8> {
    let mut x = 0x9E37_79B9u32 ^ seed.wrapping_mul(0x85EB_CA6B);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// `updraft` as a child process in a process group of its own. `kill -9` goes to the whole group,
/// as a power cut would take the device's installer down with its agent; dropped, the guard kills
/// what is left of the group and reaps the child, so no test leaves a process behind. The group
/// escapes the test runner's own clean-up, so coreutils' `timeout` (the group's leader) bounds
/// its life even if the test process itself is killed and nothing is dropped.
struct Proc {
    child: Child,
    name: &'static str,
    stdout: PathBuf,
    stderr: PathBuf,
    reaped: Option<ExitStatus>,
}

impl Proc {
    fn spawn(name: &'static str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        use std::os::unix::process::CommandExt;
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let stdout = dir.join(format!("{name}-{n}.out"));
        let stderr = dir.join(format!("{name}-{n}.err"));
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", &LIFETIME.as_secs().to_string(), env!("CARGO_BIN_EXE_updraft")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .process_group(0);
        for (k, _) in std::env::vars() {
            if k.starts_with("UPDRAFT_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("UPDRAFT_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start updraft under timeout");
        Proc { child, name, stdout, stderr, reaped: None }
    }

    /// Whether it still runs; an exit is remembered.
    fn running(&mut self) -> bool {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().expect("try_wait");
        }
        self.reaped.is_none()
    }

    /// `kill -9` to the process and everything it started, then reaps it.
    fn kill9(&mut self) {
        if self.reaped.is_some() {
            return;
        }
        // The group is signalled while its leader is not yet reaped, so its id cannot have been reused.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        self.reaped = Some(self.child.wait().expect("wait"));
    }

    /// SIGTERM (which `timeout` passes on), then waits for the process to stop on its own.
    async fn terminate(&mut self) -> ExitStatus {
        if self.running() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        }
        self.wait().await
    }

    async fn wait(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.running() {
            if tokio::time::Instant::now() > deadline {
                self.kill9();
                panic!("{} did not stop in time\n{}", self.name, self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.reaped.expect("reaped")
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!("--- {} stderr ---\n{}--- {} stdout ---\n{}", self.name, self.stderr(), self.name, self.stdout())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `check` every 20 ms until it gives a value. Fails after [`PATIENCE`], or as soon as
/// `process` has exited, with the process's logs.
async fn eventually<T>(what: &str, process: &mut Proc, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(process.running(), "{} exited while waiting for {what}\n{}", process.name, process.logs());
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}\n{}", process.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// `updraft agent`

/// An installer as the agent runs it: it notes each start in `installer-runs`, blocks while a
/// `hold` file exists (a slow flash the test kills the device in), then installs idempotently:
/// the image into `slot.img`, its version into `version`.
const INSTALLER: &str = r#"#!/bin/sh
set -eu
dir=$(dirname "$0")
echo "$UPDRAFT_VERSION" >> "$dir/installer-runs"
i=0
while [ -e "$dir/hold" ]; do
  i=$((i + 1))
  # Never outlive a broken test by more than a minute.
  [ "$i" -lt 1200 ] || exit 9
  sleep 0.05
done
cp "$UPDRAFT_FILE" "$dir/slot.tmp"
mv "$dir/slot.tmp" "$dir/slot.img"
echo "$UPDRAFT_VERSION" > "$dir/version"
"#;

struct Device<'a> {
    server: &'a Server,
    /// Holds the installer and what it writes.
    dir: PathBuf,
    state: PathBuf,
    logs: PathBuf,
    token: String,
}

impl Device<'_> {
    fn start_agent(&self, extra: &[&str]) -> Proc {
        let state = self.state.to_str().unwrap();
        let install = format!("sh '{}'", self.dir.join("install.sh").display());
        let base = self.server.base();
        let mut args = vec![
            "agent",
            "--server",
            &base,
            "--controller-id",
            "dev-1",
            "--state-dir",
            state,
            "--install-cmd",
            &install,
            "--firmware",
            "host=1.0.0",
            "--poll-interval",
            "0.05",
        ];
        args.extend_from_slice(extra);
        Proc::spawn("agent", &self.logs, &args, &[("UPDRAFT_DEVICE_TOKEN", &self.token)])
    }

    /// The agent's state file, once there is one.
    fn state(&self) -> Option<Value> {
        let text = std::fs::read(self.state.join(updraft_agent::STATE_FILE)).ok()?;
        Some(serde_json::from_slice(&text).expect("the state file is always whole JSON"))
    }

    /// The phase of the agent's work as its state file says, `None` without work.
    fn phase(&self) -> Option<String> {
        self.state()?["work"]["phase"].as_str().map(str::to_owned)
    }

    /// Every file under the agent's downloads, with its length.
    fn downloads(&self) -> Vec<(PathBuf, u64)> {
        fn walk(p: &Path, out: &mut Vec<(PathBuf, u64)>) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(m) = e.metadata() {
                    out.push((path, m.len()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.state.join("downloads"), &mut out);
        out
    }

    fn installer_runs(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("installer-runs")).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    /// The execution of `job` on the device, with its history.
    async fn execution(&self, job: &str) -> Value {
        let page = self.server.get("/api/v1/devices/dev-1/executions").await;
        let items = page["items"].as_array().expect("items");
        items.iter().find(|e| e["job"] == job).cloned().unwrap_or_else(|| panic!("no execution of {job}: {page}"))
    }

    /// Waits until `job` has ended; returns it.
    async fn finished(&self, job: &str, agent: &mut Proc) -> Value {
        let path = format!("/api/v1/jobs/{job}");
        eventually(&format!("job {job} to end"), agent, async || {
            let j = self.server.get(&path).await;
            (j["state"] != "running").then_some(j)
        })
        .await
    }
}

/// `(report, state)` of each event the device sent, and the details of each, in order.
fn device_events(execution: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let history = execution["history"].as_array().expect("a history");
    let device: Vec<&Value> = history.iter().filter(|e| e["source"] == "device").collect();
    let reports = device
        .iter()
        .map(|e| (e["report"].as_str().unwrap().to_owned(), e["state"].as_str().unwrap().to_owned()))
        .collect();
    let details = device
        .iter()
        .map(|e| e["details"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect::<Vec<_>>().join("; "))
        .collect();
    (reports, details)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

async fn agent_killed_mid_download_and_mid_install_still_updates_twice(b: Backend) {
    let server = Server::start(b).await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    server.create("/api/v1/products", json!({"key": "thermo"})).await;
    let first = image(3 << 20, 1);
    let first_id = server.upload("thermo", "1.1.0", &first).await;
    let registered = server
        .create("/api/v1/devices", json!({"id": "dev-1", "product": "thermo", "firmware": {"host": "1.0.0"}}))
        .await;
    let device = Device {
        server: &server,
        dir: dir.path().to_owned(),
        state: dir.path().join("state"),
        logs,
        token: registered["token"].as_str().unwrap().to_owned(),
    };
    std::fs::write(dir.path().join("install.sh"), INSTALLER).unwrap();
    std::fs::write(dir.path().join("hold"), b"").unwrap();
    server.create("/api/v1/jobs", json!({"id": "to-v110", "firmware": first_id, "devices": ["dev-1"]})).await;

    // First life, on a slow link: killed once part of the image is on disk.
    let mut agent = device.start_agent(&["--download-rate-limit", "256K"]);
    let (part, _) = eventually("part of the image on disk", &mut agent, async || {
        let phase = device.phase();
        assert!(phase.as_deref() != Some("installing"), "the download was not held back by the rate limit");
        device.downloads().into_iter().find(|(p, len)| p.extension().is_some_and(|e| e == "part") && *len >= 64 << 10)
    })
    .await;
    agent.kill9();
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < first.len() as u64 / 2, "kept {kept} bytes: the rate limit holds the download back");
    assert_eq!(device.phase().as_deref(), Some("downloading"));

    // Second life, without a limit: the download resumes where the file ends, the install
    // starts and hangs, and the device dies again.
    let mut agent = device.start_agent(&[]);
    eventually("the installer to start", &mut agent, async || {
        (device.phase().as_deref() == Some("installing") && device.installer_runs().len() == 1).then_some(())
    })
    .await;
    agent.kill9();
    let log = agent.stderr();
    assert!(log.contains("resuming download") && log.contains(&format!("from={kept}")), "{log}");
    assert!(!dir.path().join("version").exists(), "the killed install never finished");
    let downloaded: Vec<_> = device.downloads();
    assert!(
        downloaded.len() == 1
            && downloaded[0].1 == first.len() as u64
            && downloaded[0].0.extension().is_none_or(|e| e != "part"),
        "the whole image is kept for the next life: {downloaded:?}"
    );

    // Third life: the installer runs again and completes.
    std::fs::remove_file(dir.path().join("hold")).unwrap();
    let mut agent = device.start_agent(&[]);
    let job = device.finished("to-v110", &mut agent).await;
    assert_eq!((&job["state"], &job["counts"]), (&json!("completed"), &json!({"succeeded": 1})), "{job}");
    let d = server.get("/api/v1/devices/dev-1").await;
    assert_eq!(d["firmware"]["host"], "1.1.0", "{d}");
    assert_eq!(std::fs::read(dir.path().join("slot.img")).unwrap(), first);
    assert_eq!(std::fs::read_to_string(dir.path().join("version")).unwrap().trim(), "1.1.0");

    let execution = device.execution("to-v110").await;
    assert_eq!(execution["state"], "succeeded");
    let reports: Vec<&str> =
        execution["history"].as_array().unwrap().iter().map(|e| e["report"].as_str().unwrap()).collect();
    assert_eq!(reports[..2], ["created", "released"], "{execution}");
    let (events, details) = device_events(&execution);
    assert_eq!(
        events,
        pairs(&[
            ("proceeding", "downloading"),
            ("proceeding", "downloading"),
            ("downloaded", "downloaded"),
            ("proceeding", "installing"),
            ("closed/success", "succeeded"),
        ]),
        "{execution:#}"
    );
    assert!(details[0].contains("deployment received: host 1.1.0"), "{details:?}");
    assert!(details[1].contains("restarted during download"), "{details:?}");
    assert!(details[3].contains("restarted during install"), "{details:?}");
    assert!(details[4].contains("installed host 1.1.0"), "{details:?}");

    // From that image to the next, with the same agent still running.
    let second = image(3 << 20, 2);
    let second_id = server.upload("thermo", "1.2.0", &second).await;
    server.create("/api/v1/jobs", json!({"id": "to-v120", "firmware": second_id, "devices": ["dev-1"]})).await;
    let job = device.finished("to-v120", &mut agent).await;
    assert_eq!((&job["state"], &job["counts"]), (&json!("completed"), &json!({"succeeded": 1})), "{job}");
    let d = server.get("/api/v1/devices/dev-1").await;
    assert_eq!(d["firmware"]["host"], "1.2.0", "{d}");
    let (events, details) = device_events(&device.execution("to-v120").await);
    assert_eq!(
        events,
        pairs(&[("proceeding", "downloading"), ("downloaded", "downloaded"), ("closed/success", "succeeded")])
    );
    assert!(details.iter().all(|d| !d.contains("restarted")), "{details:?}");
    assert_eq!(std::fs::read(dir.path().join("slot.img")).unwrap(), second);
    assert_eq!(device.installer_runs(), ["1.1.0", "1.1.0", "1.2.0"], "one install run per life that reached it");

    // The agent forgets the finished work and its files once the outcome is delivered.
    eventually("the agent to put the work away", &mut agent, async || {
        let state = device.state()?;
        (state["installed"] == json!({"host": "1.2.0"}) && state["work"].is_null() && device.downloads().is_empty())
            .then_some(())
    })
    .await;
    let status = agent.terminate().await;
    assert!(status.success(), "SIGTERM stops the agent cleanly: {status:?}\n{}", agent.logs());
}

// ---------------------------------------------------------------------------------------------
// `updraft sim`

const FLEET: usize = 300;
const FAIL_RATE: f64 = 0.05;
const SILENT_RATE: f64 = 0.02;

async fn simulated_fleet_is_accounted_for(b: Backend) {
    let server = Server::start(b).await;
    let dir = tempfile::tempdir().unwrap();
    let base = server.base();
    let env = [("UPDRAFT_SERVER", base.as_str()), ("UPDRAFT_TOKEN", ADMIN_TOKEN)];
    server.create("/api/v1/products", json!({"key": "meter"})).await;
    let bytes = image(48 << 10, 3);
    let firmware = server.upload("meter", "2.0.0", &bytes).await;

    let tokens = dir.path().join("tokens.csv");
    let tokens_arg = tokens.to_str().unwrap();
    let mut register = Proc::spawn(
        "sim-register",
        dir.path(),
        &[
            "sim",
            "--register-only",
            "--devices",
            &FLEET.to_string(),
            "--product",
            "meter",
            "--firmware",
            "host=1.0.0",
            "--tokens-out",
            tokens_arg,
        ],
        &env,
    );
    let status = register.wait().await;
    assert!(status.success(), "{}", register.logs());
    let ids: Vec<String> = std::fs::read_to_string(&tokens)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), FLEET);
    assert_eq!(server.get("/api/v1/devices?limit=1").await["total"], FLEET);
    server.create("/api/v1/jobs", json!({"id": "fleet", "firmware": firmware, "devices": ids})).await;
    // The fleet ends once idle for a second: start it when the scheduler has released every
    // execution, so a slow first tick on a loaded machine cannot end the run before work appears.
    let released = async {
        while server.get("/api/v1/jobs/fleet").await["counts"]["notified"] != FLEET {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), released).await.expect("the job is released");

    let mut fleet = Proc::spawn(
        "sim",
        dir.path(),
        &[
            "sim",
            "--skip-register",
            "--tokens",
            tokens_arg,
            "--firmware",
            "host=1.0.0",
            "--poll-interval",
            "0.25",
            "--fail-rate",
            &FAIL_RATE.to_string(),
            "--timeout-rate",
            &SILENT_RATE.to_string(),
            "--outcomes",
            "by-index",
            "--seed",
            "7",
            "--until-idle",
            "1",
            "--duration",
            "35",
            "--json",
        ],
        &env,
    );
    let status = fleet.wait().await;
    assert!(status.success(), "{}", fleet.logs());
    let summary: Value = serde_json::from_str(&fleet.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));

    // What the simulator decided, device by device: exact counts, by index.
    let outcomes = Outcomes::new(OutcomeMode::ByIndex, FAIL_RATE, SILENT_RATE, FLEET, 7).unwrap();
    let fate = |i: usize| outcomes.fate(i, "");
    let with = |f: Fate| -> Vec<&str> { (0..FLEET).filter(|&i| fate(i) == f).map(|i| ids[i].as_str()).collect() };
    let (failing, silent, succeeding) = (with(Fate::Fail), with(Fate::Silent), with(Fate::Succeed));
    assert_eq!((failing.len(), silent.len(), succeeding.len()), (15, 6, 279));

    let n = |k: &str| summary[k].as_u64().unwrap_or_else(|| panic!("{k} in {summary}"));
    assert_eq!(n("errors"), 0, "{summary}");
    assert_eq!(
        [n("devices"), n("deployments_seen"), n("succeeded"), n("failed"), n("silent"), n("in_progress")],
        [300, 300, 279, 15, 6, 0],
        "{summary}"
    );
    assert_eq!(
        (n("downloads"), n("bytes"), n("hash_mismatches"), n("canceled")),
        (300, 300 * bytes.len() as u64, 0, 0)
    );

    // The server counts the same: the silent devices' executions are still in progress.
    let job = server.get("/api/v1/jobs/fleet").await;
    assert_eq!(job["counts"], json!({"succeeded": n("succeeded"), "failed": n("failed"), "downloaded": n("silent")}));
    assert_eq!(job["state"], "running", "silent devices keep the job open");
    for (state, expected) in [("failed", &failing), ("downloaded", &silent), ("succeeded", &succeeding)] {
        let page = server.get(&format!("/api/v1/jobs/fleet/executions?state={state}&limit=1000&sort=device")).await;
        let devices: Vec<&str> =
            page["items"].as_array().unwrap().iter().map(|e| e["device"].as_str().unwrap()).collect();
        assert_eq!(&devices, expected, "{state} executions");
    }
    let page = server.get("/api/v1/devices?limit=1000&sort=id").await;
    for d in page["items"].as_array().unwrap() {
        let id = d["id"].as_str().unwrap();
        let expected = if succeeding.contains(&id) { "2.0.0" } else { "1.0.0" };
        assert_eq!(d["firmware"]["host"], expected, "{d}");
    }
}
