//! A fleet simulator: one process acting as thousands of devices against a server, for
//! integration and load tests.
//!
//! [`register_devices`] registers the fleet through the management API in batches
//! (`POST /api/v1/devices/import`, NDJSON); [`Fleet::run`] then runs one lightweight task per
//! device over one shared HTTP client. Each device polls with jitter (the server's interval or
//! an override), and when a deployment appears it reports `proceeding`, streams the artifacts
//! through SHA-256 (discarding the bytes, or writing them under `keep_dir`), reports
//! `downloaded`, waits `install_delay`, then reports `closed`+`success` (and its new versions
//! in configData), `closed`+`failure`, or nothing at all, as [`Outcomes`] decides. Cancellations
//! are accepted with `closed`+`success`.
//!
//! **Invariants:** memory per device is a few hundred bytes plus one artifact chunk while
//! downloading; concurrent downloads are bounded by `max_downloads` and other requests by
//! `max_requests`; with [`OutcomeMode::ByIndex`] exactly `round(n × fail_rate)` devices fail and
//! `round(n × timeout_rate)` stay silent; a deployment counts once in `deployments_seen` however
//! often it is retried, and once in exactly one of `succeeded`, `failed`, `silent` when it ends
//! (or in `errors` if the server closed it first); the run always ends by `duration`,
//! `until_idle` (never before every device has polled once) or `shutdown` and returns the
//! counters as a [`SimSummary`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use updraft_api::PropertyValue;
use updraft_api::devices::{DeviceIn, ImportOut};
use updraft_ddi::{Confirmation, ConfirmationFeedback, DeploymentBase, Execution, Finished};

mod mqtt;

use crate::agent::safe_name;
use crate::client::{read_limited, status_error};
use crate::{Auth, DdiClient, Error, HttpSettings, action_id_from_href, feedback, firmware_key, http_client};

/// Used before the server has said how often to poll.
const DEFAULT_POLL: Duration = Duration::from_secs(10);

/// One simulated device: its position in the fleet (which decides its fate with
/// [`OutcomeMode::ByIndex`]), id and DDI token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDevice {
    pub index: usize,
    pub id: String,
    pub token: String,
}

/// `count` device ids: `{prefix}00000`, `{prefix}00001`, … (at least five digits).
pub fn device_ids(prefix: &str, count: usize) -> Vec<String> {
    let width = count.saturating_sub(1).to_string().len().max(5);
    (0..count).map(|i| format!("{prefix}{i:0width$}")).collect()
}

/// How to register a fleet through the management API.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The server's base URL.
    pub server: String,
    /// A management API key allowed to register devices.
    pub api_token: String,
    pub product: String,
    /// Installed versions per component, the same for every device.
    pub firmware: BTreeMap<String, String>,
    /// Properties, the same for every device (the simulator marks its devices so filters find them).
    pub properties: BTreeMap<String, PropertyValue>,
    /// Devices per import call.
    pub batch: usize,
    /// The timeout of one import call.
    pub timeout: Duration,
}

impl Registration {
    pub fn new(server: impl Into<String>, api_token: impl Into<String>, product: impl Into<String>) -> Self {
        Registration {
            server: server.into(),
            api_token: api_token.into(),
            product: product.into(),
            firmware: BTreeMap::new(),
            properties: BTreeMap::new(),
            batch: 5000,
            timeout: Duration::from_secs(300),
        }
    }
}

/// Registers `ids` in batches (each batch all or nothing on the server) and returns every
/// device with the token the server issued, in the order of `ids`.
pub async fn register_devices(
    http: &reqwest::Client,
    registration: &Registration,
    ids: &[String],
) -> Result<Vec<SimDevice>, Error> {
    let url = format!("{}/api/v1/devices/import", registration.server.trim_end_matches('/'));
    let mut devices = Vec::with_capacity(ids.len());
    for batch in ids.chunks(registration.batch.max(1)) {
        let mut body = Vec::with_capacity(batch.len() * 80);
        for id in batch {
            let line = DeviceIn {
                id: id.clone(),
                product: registration.product.clone(),
                firmware: registration.firmware.clone(),
                properties: registration.properties.clone(),
                ..DeviceIn::default()
            };
            serde_json::to_writer(&mut body, &line).map_err(|e| Error::Config(e.to_string()))?;
            body.push(b'\n');
        }
        let r = http
            .post(&url)
            .header(AUTHORIZATION, format!("Bearer {}", registration.api_token))
            .header(CONTENT_TYPE, "application/x-ndjson")
            .timeout(registration.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| Error::transport(&url, &e))?;
        if !r.status().is_success() {
            return Err(status_error(r, &url).await);
        }
        let answer: ImportOut = serde_json::from_slice(&read_limited(r, &url, 256 << 20).await?)
            .map_err(|e| Error::Protocol { url: url.clone(), message: format!("unexpected import answer: {e}") })?;
        let mut tokens: HashMap<String, String> = answer.devices.into_iter().map(|d| (d.id, d.token)).collect();
        for id in batch {
            let token = tokens.remove(id).ok_or_else(|| Error::Protocol {
                url: url.clone(),
                message: format!("the import answer has no token for {id}"),
            })?;
            devices.push(SimDevice { index: devices.len(), id: id.clone(), token });
        }
        tracing::info!(registered = devices.len(), of = ids.len(), "devices registered");
    }
    Ok(devices)
}

/// Reads `id,token` lines (the CSV `updraft device import` writes; a header line is skipped).
pub fn parse_tokens_csv(text: &str) -> Result<Vec<SimDevice>, Error> {
    let mut devices = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.eq_ignore_ascii_case("id,token")) {
            continue;
        }
        let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
        match line.split_once(',') {
            Some((id, token)) if !unquote(id).is_empty() && !unquote(token).is_empty() => {
                devices.push(SimDevice { index: devices.len(), id: unquote(id), token: unquote(token) })
            }
            _ => return Err(Error::Config(format!("tokens file line {}: expected id,token", n + 1))),
        }
    }
    Ok(devices)
}

/// How devices decide the outcome of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeMode {
    /// By the device's index: exactly `round(n × rate)` devices fail (or stay silent), spread
    /// evenly over the fleet, and a device behaves the same for every deployment.
    ByIndex,
    /// Independently per device and deployment, from the seed: rates hold on average.
    Random,
}

/// What a device does once it has downloaded a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    Succeed,
    Fail,
    /// Never reports the outcome (a device that died or went offline mid-update).
    Silent,
}

/// Decides each device's [`Fate`].
#[derive(Debug, Clone)]
pub struct Outcomes {
    mode: OutcomeMode,
    fail_rate: f64,
    timeout_rate: f64,
    seed: u64,
    devices: u64,
    fail_count: u64,
    silent_count: u64,
    stride: u64,
}

impl Outcomes {
    pub fn new(mode: OutcomeMode, fail_rate: f64, timeout_rate: f64, devices: usize, seed: u64) -> Result<Self, Error> {
        let valid = |r: f64| (0.0..=1.0).contains(&r);
        if !valid(fail_rate) || !valid(timeout_rate) || fail_rate + timeout_rate > 1.0 + 1e-9 {
            return Err(Error::Config("fail and timeout rates must lie in 0..=1 and add up to at most 1".into()));
        }
        let n = devices.max(1) as u64;
        let fail_count = ((n as f64 * fail_rate).round() as u64).min(n);
        let silent_count = ((n as f64 * timeout_rate).round() as u64).min(n - fail_count);
        // A stride coprime with n permutes the indexes, spreading failures over the fleet.
        let mut stride = ((n as f64 * 0.618_033_988_7) as u64).max(1);
        while gcd(stride, n) != 1 {
            stride -= 1;
        }
        Ok(Outcomes { mode, fail_rate, timeout_rate, seed, devices: n, fail_count, silent_count, stride })
    }

    /// The fate of device `index` for action `action_id`.
    pub fn fate(&self, index: usize, action_id: &str) -> Fate {
        match self.mode {
            OutcomeMode::ByIndex => {
                let i = index as u64 % self.devices;
                let position = ((i as u128 * self.stride as u128) % self.devices as u128) as u64;
                if position < self.fail_count {
                    Fate::Fail
                } else if position < self.fail_count + self.silent_count {
                    Fate::Silent
                } else {
                    Fate::Succeed
                }
            }
            OutcomeMode::Random => {
                let mut rng =
                    SplitMix64(self.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fnv1a(action_id));
                let x = rng.unit();
                if x < self.fail_rate {
                    Fate::Fail
                } else if x < self.fail_rate + self.timeout_rate {
                    Fate::Silent
                } else {
                    Fate::Succeed
                }
            }
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// A small, fast, seedable generator (SplitMix64): jitter and random outcomes need no more.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How the fleet behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The server's base URL.
    pub server: String,
    pub tenant: String,
    /// Poll this often instead of the server's `config.polling.sleep`.
    pub poll_interval: Option<Duration>,
    /// Each device's first poll falls at a random point in this span, so the fleet does not
    /// poll all at once.
    pub ramp_up: Duration,
    /// Each pause between polls is the interval times a random factor in `1 ± jitter` (0..=1).
    pub jitter: f64,
    pub fail_rate: f64,
    pub timeout_rate: f64,
    pub outcomes: OutcomeMode,
    /// Seeds jitter and [`OutcomeMode::Random`].
    pub seed: u64,
    /// The simulated install time between `downloaded` and the outcome.
    pub install_delay: Duration,
    /// Keep the downloaded bytes under `<dir>/<device>/`; `None` discards them after hashing.
    pub keep_dir: Option<PathBuf>,
    /// The most artifact downloads at once across the fleet.
    pub max_downloads: usize,
    /// The most other requests (polls, feedback, configData) at once across the fleet.
    pub max_requests: usize,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop when every device has polled at least once, no deployment is in progress and
    /// nothing started or ended for this long (counted from the last device's first poll at
    /// the earliest, so a long ramp-up never ends the run before every device has looked).
    pub until_idle: Option<Duration>,
    /// Installed versions reported in configData until a device installs something.
    pub firmware: BTreeMap<String, String>,
    pub http: HttpSettings,
    /// Talk AWS IoT Jobs over MQTT instead of polling hawkBit's API: notifications, status
    /// and presence through this broker, downloads over the signed links of the job document.
    pub mqtt: Option<crate::mqtt::MqttSettings>,
    /// The tenant whose thing names are bare device ids (the server's `mqtt.default_tenant`).
    pub mqtt_default_tenant: String,
}

impl SimConfig {
    /// Defaults: tenant `default`, the server's interval, 10 s ramp-up, ±10 % jitter, no
    /// failures, outcomes by index, no install delay, bytes discarded, 64 downloads and 512
    /// requests at once, no time limit.
    pub fn new(server: impl Into<String>) -> Self {
        SimConfig {
            server: server.into(),
            tenant: "default".into(),
            poll_interval: None,
            ramp_up: Duration::from_secs(10),
            jitter: 0.1,
            fail_rate: 0.0,
            timeout_rate: 0.0,
            outcomes: OutcomeMode::ByIndex,
            seed: 0x5EED,
            install_delay: Duration::ZERO,
            keep_dir: None,
            max_downloads: 64,
            max_requests: 512,
            duration: None,
            until_idle: None,
            firmware: BTreeMap::new(),
            http: HttpSettings::default(),
            mqtt: None,
            mqtt_default_tenant: "default".into(),
        }
    }
}

/// Running counters, shared by every device task; read them while the fleet runs.
#[derive(Debug, Default)]
pub struct SimCounters {
    devices: u64,
    started: OnceLock<Instant>,
    pub polls: AtomicU64,
    pub deployments_seen: AtomicU64,
    /// Artifacts fully downloaded.
    pub downloads: AtomicU64,
    /// Artifact bytes received.
    pub bytes: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub silent: AtomicU64,
    pub canceled: AtomicU64,
    pub errors: AtomicU64,
    pub hash_mismatches: AtomicU64,
    in_progress: AtomicI64,
    /// Devices whose first poll has been answered (or has failed).
    first_polls: AtomicU64,
    /// Milliseconds since the start at which a deployment last started or ended, or the last
    /// device polled for the first time.
    last_activity_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Microseconds from a release to its `notify-next` (MQTT devices).
    push_latencies_us: Mutex<Vec<u64>>,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSummary {
    pub devices: u64,
    pub elapsed_ms: u64,
    pub polls: u64,
    pub deployments_seen: u64,
    pub downloads: u64,
    pub bytes: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub silent: u64,
    pub canceled: u64,
    pub errors: u64,
    pub hash_mismatches: u64,
    /// Deployments started and not yet ended.
    pub in_progress: u64,
    pub last_error: Option<String>,
    /// MQTT devices: jobs pushed to them (`notify-next` naming a queued execution).
    #[serde(default)]
    pub pushes: u64,
    /// MQTT devices: from a release to the device receiving its `notify-next`, median and
    /// 99th percentile, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_latency_p50_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_latency_p99_us: Option<u64>,
}

impl SimSummary {
    /// A one-line human summary.
    pub fn one_line(&self) -> String {
        let pushes = match (self.push_latency_p50_us, self.push_latency_p99_us) {
            (Some(p50), Some(p99)) => {
                format!("  pushed {} (p50 {:.1} ms, p99 {:.1} ms)", self.pushes, p50 as f64 / 1e3, p99 as f64 / 1e3)
            }
            _ => String::new(),
        };
        let line = format!(
            "{:>6.1}s  polls {}  deployments {}  in progress {}  downloads {} ({:.1} MiB)  ok {}  failed {}  silent {}  canceled {}  errors {}",
            self.elapsed_ms as f64 / 1000.0,
            self.polls,
            self.deployments_seen,
            self.in_progress,
            self.downloads,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.succeeded,
            self.failed,
            self.silent,
            self.canceled,
            self.errors
        );
        line + &pushes
    }
}

impl SimCounters {
    fn new(devices: usize) -> Self {
        SimCounters { devices: devices as u64, ..Default::default() }
    }

    fn elapsed(&self) -> Duration {
        self.started.get().map(|s| s.elapsed()).unwrap_or_default()
    }

    pub fn snapshot(&self) -> SimSummary {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimSummary {
            devices: self.devices,
            elapsed_ms: self.elapsed().as_millis() as u64,
            polls: get(&self.polls),
            deployments_seen: get(&self.deployments_seen),
            downloads: get(&self.downloads),
            bytes: get(&self.bytes),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            silent: get(&self.silent),
            canceled: get(&self.canceled),
            errors: get(&self.errors),
            hash_mismatches: get(&self.hash_mismatches),
            in_progress: self.in_progress.load(Ordering::Relaxed).max(0) as u64,
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            pushes: self.push_latencies_us.lock().map(|l| l.len() as u64).unwrap_or(0),
            push_latency_p50_us: self.push_percentile(0.50),
            push_latency_p99_us: self.push_percentile(0.99),
        }
    }

    /// A percentile of the push latencies seen so far.
    fn push_percentile(&self, p: f64) -> Option<u64> {
        let mut all = self.push_latencies_us.lock().ok()?.clone();
        if all.is_empty() {
            return None;
        }
        all.sort_unstable();
        let at = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        Some(all[at])
    }

    fn pushed(&self, latency_us: u64) {
        if let Ok(mut l) = self.push_latencies_us.lock() {
            l.push(latency_us);
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn touch(&self) {
        self.last_activity_ms.store(self.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn begin(&self) {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        Self::add(&self.deployments_seen, 1);
        self.touch();
    }

    fn end(&self) {
        self.in_progress.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    fn first_poll(&self) {
        Self::add(&self.first_polls, 1);
        self.touch();
    }

    fn error(&self, device: &str, e: &Error) {
        self.note_error(device, e.to_string());
    }

    /// A deployment the server ended before the device reported its outcome: it counts in `errors`.
    fn closed_first(&self, device: &str, action: &str) {
        self.note_error(device, format!("the server closed action {action} before the device reported its outcome"));
    }

    fn note_error(&self, device: &str, message: String) {
        Self::add(&self.errors, 1);
        tracing::debug!(device = %device, error = %message, "simulated device error");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(format!("{device}: {message}"));
        }
    }

    /// How long nothing has happened: no deployment in progress, started or ended; `None`
    /// while one is in progress or a device has not polled yet.
    pub fn idle_for(&self) -> Option<Duration> {
        // A device that has not polled yet may still find work.
        if self.in_progress.load(Ordering::Relaxed) > 0 || self.first_polls.load(Ordering::Relaxed) < self.devices {
            return None;
        }
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        Some(self.elapsed().saturating_sub(last))
    }
}

/// The simulated fleet.
pub struct Fleet {
    config: SimConfig,
    devices: Vec<SimDevice>,
    counters: Arc<SimCounters>,
    outcomes: Outcomes,
    http: reqwest::Client,
}

struct Shared {
    config: SimConfig,
    counters: Arc<SimCounters>,
    outcomes: Outcomes,
    requests: Semaphore,
    downloads: Semaphore,
}

impl Fleet {
    pub fn new(config: SimConfig, devices: Vec<SimDevice>) -> Result<Fleet, Error> {
        if !(0.0..=1.0).contains(&config.jitter) {
            return Err(Error::Config("jitter must lie in 0..=1".into()));
        }
        if config.max_downloads == 0 || config.max_requests == 0 {
            return Err(Error::Config("max downloads and max requests must be at least 1".into()));
        }
        let outcomes =
            Outcomes::new(config.outcomes, config.fail_rate, config.timeout_rate, devices.len(), config.seed)?;
        let mut http_settings = config.http.clone();
        http_settings.max_idle_per_host =
            http_settings.max_idle_per_host.max(config.max_requests + config.max_downloads);
        let http = http_client(&http_settings)?;
        // Fail now, not in ten thousand tasks, if the URL is unusable.
        DdiClient::new(http.clone(), &config.server, &config.tenant, "probe", &Auth::TargetToken("probe".into()))?;
        let counters = Arc::new(SimCounters::new(devices.len()));
        Ok(Fleet { config, devices, counters, outcomes, http })
    }

    /// The live counters, for progress displays.
    pub fn counters(&self) -> Arc<SimCounters> {
        self.counters.clone()
    }

    /// Runs every device until `duration`, `until_idle` or `shutdown`, whichever comes first.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<SimSummary, Error> {
        let Fleet { config, devices, counters, outcomes, http } = self;
        let _ = counters.started.set(Instant::now());
        let shared = Arc::new(Shared {
            requests: Semaphore::new(config.max_requests),
            downloads: Semaphore::new(config.max_downloads),
            config,
            counters: counters.clone(),
            outcomes,
        });
        let mut tasks = JoinSet::new();
        match shared.config.mqtt.clone() {
            Some(settings) => {
                for device in devices {
                    let thing =
                        crate::mqtt::thing_name(&shared.config.mqtt_default_tenant, &shared.config.tenant, &device.id);
                    tasks.spawn(mqtt::run_device(shared.clone(), device, http.clone(), settings.clone(), thing));
                }
            }
            None => {
                for device in devices {
                    let auth = Auth::TargetToken(device.token.clone());
                    let client =
                        DdiClient::new(http.clone(), &shared.config.server, &shared.config.tenant, &device.id, &auth)?
                            .with_request_timeout(shared.config.http.request_timeout);
                    tasks.spawn(run_device(shared.clone(), device, client));
                }
            }
        }
        tracing::info!(devices = tasks.len(), "fleet started");
        tokio::pin!(shutdown);
        let tick = Duration::from_millis(20);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(tick) => {}
            }
            if shared.config.duration.is_some_and(|d| counters.elapsed() >= d) {
                break;
            }
            if let Some(limit) = shared.config.until_idle
                && counters.idle_for().is_some_and(|idle| idle >= limit)
            {
                break;
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let summary = counters.snapshot();
        tracing::info!(
            elapsed_ms = summary.elapsed_ms,
            deployments = summary.deployments_seen,
            succeeded = summary.succeeded,
            failed = summary.failed,
            silent = summary.silent,
            errors = summary.errors,
            "fleet stopped"
        );
        Ok(summary)
    }
}

/// The deployment a simulated device is working on.
struct Current {
    action_id: String,
    fate: Fate,
    downloaded: bool,
    /// Why the download failed verification; the outcome is then a failure.
    failure: Option<String>,
    done: bool,
    /// `(part, version)` of each chunk: what the device runs after a success.
    versions: Vec<(String, String)>,
}

struct SimulatedDevice {
    shared: Arc<Shared>,
    device: SimDevice,
    client: DdiClient,
    rng: SplitMix64,
    server_sleep: Option<Duration>,
    installed: Option<BTreeMap<String, String>>,
    current: Option<Current>,
    polled: bool,
}

async fn run_device(shared: Arc<Shared>, device: SimDevice, client: DdiClient) {
    let seed = shared.config.seed ^ (device.index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut d = SimulatedDevice {
        shared,
        device,
        client,
        rng: SplitMix64(seed),
        server_sleep: None,
        installed: None,
        current: None,
        polled: false,
    };
    let first = d.shared.config.ramp_up.mul_f64(d.rng.unit());
    tokio::time::sleep(first).await;
    loop {
        d.tick().await;
        let base = d.shared.config.poll_interval.or(d.server_sleep).unwrap_or(DEFAULT_POLL);
        let factor = 1.0 + d.shared.config.jitter * (2.0 * d.rng.unit() - 1.0);
        tokio::time::sleep(base.mul_f64(factor.max(0.0))).await;
    }
}

impl SimulatedDevice {
    fn counters(&self) -> &SimCounters {
        &self.shared.counters
    }

    fn error(&self, e: &Error) {
        self.shared.counters.error(&self.device.id, e);
    }

    /// Runs an API call under the fleet's request limit.
    async fn limited<T>(&self, call: impl Future<Output = T>) -> T {
        let _permit = self.shared.requests.acquire().await;
        call.await
    }

    async fn tick(&mut self) {
        SimCounters::add(&self.counters().polls, 1);
        let polled = self.limited(self.client.poll()).await;
        if !std::mem::replace(&mut self.polled, true) {
            self.counters().first_poll();
        }
        let root = match polled {
            Ok(r) => r,
            Err(e) => return self.error(&e),
        };
        self.server_sleep = updraft_ddi::parse_sleep(&root.config.polling.sleep).map(Duration::from_secs);
        if root.links.config_data.is_some() {
            self.send_config().await;
        }
        if let Some(link) = root.links.cancel_action {
            self.cancel(&link.href).await;
        } else if let Some(link) = root.links.confirmation_base {
            self.confirm(&link.href).await;
        } else if let Some(link) = root.links.deployment_base {
            self.deployment(&link.href).await;
        } else if let Some(current) = self.current.take()
            && !current.done
        {
            // The server ended the action (timed out, canceled and closed) while we retried.
            self.counters().closed_first(&self.device.id, &current.action_id);
            self.counters().end();
        }
    }

    async fn send_config(&mut self) {
        let versions = self.installed.as_ref().unwrap_or(&self.shared.config.firmware);
        let data: BTreeMap<String, String> = versions.iter().map(|(c, v)| (firmware_key(c), v.clone())).collect();
        if data.is_empty() {
            return;
        }
        if let Err(e) = self.limited(self.client.put_config_data(data)).await {
            self.error(&e);
        }
    }

    async fn cancel(&mut self, href: &str) {
        let cancel = match self.limited(self.client.cancel(href)).await {
            Ok(c) => c,
            Err(e) => return self.error(&e),
        };
        let stop_id = cancel.cancel_action.stop_id;
        let fb = feedback(Execution::Closed, Finished::Success, vec!["cancellation accepted".into()]);
        match self.limited(self.client.cancel_feedback(&stop_id, &fb)).await {
            Ok(()) => SimCounters::add(&self.counters().canceled, 1),
            Err(e) if e.is_gone() || e.status() == Some(405) => {}
            Err(e) => return self.error(&e),
        }
        if let Some(current) = self.current.take_if(|c| c.action_id == stop_id || c.action_id == cancel.id)
            && !current.done
        {
            self.counters().end();
        }
    }

    async fn confirm(&mut self, href: &str) {
        let action = match self.limited(self.client.confirmation(href)).await {
            Ok(a) => a,
            Err(e) => return self.error(&e),
        };
        let fb = ConfirmationFeedback { confirmation: Confirmation::Confirmed, code: None, details: Vec::new() };
        if let Err(e) = self.limited(self.client.confirmation_feedback(&action.id, &fb)).await {
            self.error(&e);
        }
    }

    async fn deployment(&mut self, href: &str) {
        let href_id = action_id_from_href(href);
        let known = self.current.as_ref().filter(|c| href_id.as_deref() == Some(c.action_id.as_str()));
        // Once downloaded, the deployment is not needed again: only the outcome is left to send.
        if !known.is_some_and(|c| c.downloaded || c.done) {
            let deployment = match self.limited(self.client.deployment(href)).await {
                Ok(d) => d,
                Err(e) => return self.error(&e),
            };
            if self.current.as_ref().is_none_or(|c| c.action_id != deployment.id) {
                self.begin(&deployment).await;
            }
            if self.current.as_ref().is_some_and(|c| !c.downloaded && !c.done) {
                let failure = match self.download(&deployment).await {
                    Ok(f) => f,
                    Err(e) => return self.error(&e),
                };
                if failure.is_none() {
                    let fb =
                        feedback(Execution::Downloaded, Finished::None, vec!["simulated device: downloaded".into()]);
                    if let Err(e) = self.limited(self.client.deployment_feedback(&deployment.id, &fb)).await {
                        self.error(&e);
                    }
                }
                if let Some(c) = &mut self.current {
                    c.downloaded = true;
                    c.failure = failure;
                }
                tokio::time::sleep(self.shared.config.install_delay).await;
            }
        }
        if self.current.as_ref().is_some_and(|c| !c.done) {
            self.finish().await;
        }
    }

    /// A new action: counted once, its fate decided, `proceeding` reported.
    async fn begin(&mut self, deployment: &DeploymentBase) {
        if self.current.take().is_some_and(|c| !c.done) {
            self.counters().end();
        }
        self.counters().begin();
        let fate = self.shared.outcomes.fate(self.device.index, &deployment.id);
        let versions = deployment.deployment.chunks.iter().map(|c| (c.part.clone(), c.version.clone())).collect();
        self.current = Some(Current {
            action_id: deployment.id.clone(),
            fate,
            downloaded: false,
            failure: None,
            done: false,
            versions,
        });
        let fb = feedback(Execution::Proceeding, Finished::None, vec!["simulated device: downloading".into()]);
        if let Err(e) = self.limited(self.client.deployment_feedback(&deployment.id, &fb)).await {
            self.error(&e);
        }
    }

    /// Reports the outcome the device's fate (or a failed verification) calls for.
    async fn finish(&mut self) {
        let Some(current) = &self.current else { return };
        let action = current.action_id.clone();
        let (finished, details) = match (&current.failure, current.fate) {
            (Some(why), _) => (Finished::Failure, vec![why.clone()]),
            (None, Fate::Silent) => {
                SimCounters::add(&self.counters().silent, 1);
                self.done();
                return;
            }
            (None, Fate::Fail) => (Finished::Failure, vec!["simulated install failure".to_owned()]),
            (None, Fate::Succeed) => (Finished::Success, vec!["simulated install succeeded".to_owned()]),
        };
        let fb = feedback(Execution::Closed, finished, details);
        match self.limited(self.client.deployment_feedback(&action, &fb)).await {
            Ok(()) if finished == Finished::Success => {
                SimCounters::add(&self.counters().succeeded, 1);
                self.done();
                self.record_install().await;
            }
            Ok(()) => {
                SimCounters::add(&self.counters().failed, 1);
                self.done();
            }
            Err(e) if e.is_gone() => {
                self.error(&e);
                self.done();
            }
            // Kept: the next poll reports again.
            Err(e) => self.error(&e),
        }
    }

    fn done(&mut self) {
        if let Some(c) = &mut self.current
            && !c.done
        {
            c.done = true;
            self.shared.counters.end();
        }
    }

    /// After a success the device runs the deployed versions and says so in configData.
    async fn record_install(&mut self) {
        let Some(current) = &self.current else { return };
        let versions = current.versions.clone();
        let installed = self.installed.get_or_insert_with(|| self.shared.config.firmware.clone());
        installed.extend(versions);
        self.send_config().await;
    }

    /// Streams every artifact through SHA-256. `Ok(Some(why))` when one fails verification.
    async fn download(&self, deployment: &DeploymentBase) -> Result<Option<String>, Error> {
        for (ci, chunk) in deployment.deployment.chunks.iter().enumerate() {
            for (ai, artifact) in chunk.artifacts.iter().enumerate() {
                let Some(href) = artifact.links.download_http.as_ref().or(artifact.links.download.as_ref()) else {
                    return Ok(Some(format!("artifact {}: no download link", artifact.filename)));
                };
                let mut sink = match &self.shared.config.keep_dir {
                    Some(dir) => {
                        let dir = dir.join(safe_name(&self.device.id));
                        tokio::fs::create_dir_all(&dir)
                            .await
                            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                        let path = dir.join(format!(
                            "{}-{ci}-{ai}-{}",
                            safe_name(&deployment.id),
                            safe_name(&artifact.filename)
                        ));
                        let file = tokio::fs::File::create(&path)
                            .await
                            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                        Some(tokio::io::BufWriter::new(file))
                    }
                    None => None,
                };
                let _permit = self.shared.downloads.acquire().await;
                let mut body = self.client.artifact(&href.href, 0).await?;
                let mut hash = Sha256::new();
                let mut received = 0u64;
                while let Some(bytes) = body.chunk().await? {
                    received += bytes.len() as u64;
                    SimCounters::add(&self.counters().bytes, bytes.len() as u64);
                    if received > artifact.size {
                        return Ok(Some(format!("artifact {}: more bytes than announced", artifact.filename)));
                    }
                    hash.update(&bytes);
                    if let Some(out) = &mut sink {
                        out.write_all(&bytes).await.map_err(|e| Error::io("writing a kept artifact", e))?;
                    }
                }
                if let Some(out) = &mut sink {
                    out.flush().await.map_err(|e| Error::io("writing a kept artifact", e))?;
                }
                SimCounters::add(&self.counters().downloads, 1);
                if received != artifact.size {
                    return Ok(Some(format!(
                        "artifact {}: size mismatch: expected {}, got {received}",
                        artifact.filename, artifact.size
                    )));
                }
                let actual = hex::encode(hash.finalize());
                if !actual.eq_ignore_ascii_case(artifact.hashes.sha256.trim()) {
                    SimCounters::add(&self.counters().hash_mismatches, 1);
                    return Ok(Some(format!(
                        "artifact {}: sha256 mismatch: expected {}, got {actual}",
                        artifact.filename, artifact.hashes.sha256
                    )));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_by_index_are_exact_and_spread() {
        for n in [1usize, 7, 200, 10_000] {
            let o = Outcomes::new(OutcomeMode::ByIndex, 0.05, 0.1, n, 1).unwrap();
            let fates: Vec<Fate> = (0..n).map(|i| o.fate(i, "1")).collect();
            let count = |f| fates.iter().filter(|&&x| x == f).count();
            let fail = (n as f64 * 0.05).round() as usize;
            let silent = (n as f64 * 0.1).round() as usize;
            assert_eq!((count(Fate::Fail), count(Fate::Silent)), (fail, silent), "n = {n}");
        }
        let o = Outcomes::new(OutcomeMode::ByIndex, 0.1, 0.0, 200, 1).unwrap();
        let first_half = (0..100).filter(|&i| o.fate(i, "1") == Fate::Fail).count();
        assert!((5..=15).contains(&first_half), "failures are spread over the fleet: {first_half}");
        assert!(Outcomes::new(OutcomeMode::ByIndex, 0.7, 0.4, 10, 1).is_err());
    }

    #[test]
    fn random_outcomes_follow_the_rates() {
        let o = Outcomes::new(OutcomeMode::Random, 0.2, 0.1, 10_000, 42).unwrap();
        let fails = (0..10_000).filter(|&i| o.fate(i, "7") == Fate::Fail).count();
        assert!((1_800..2_200).contains(&fails), "{fails}");
    }

    #[test]
    fn ids_and_tokens() {
        assert_eq!(device_ids("sim-", 3), ["sim-00000", "sim-00001", "sim-00002"]);
        assert_eq!(device_ids("d", 200_000)[199_999], "d199999");
        let devices = parse_tokens_csv("id,token\na,t1\n\"b\",\"t2\"\n\n").unwrap();
        assert_eq!(devices[1], SimDevice { index: 1, id: "b".into(), token: "t2".into() });
        assert!(parse_tokens_csv("id,token\nonly-id\n").is_err());
    }
}
