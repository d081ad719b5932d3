//! `updraft sim`: thousands of simulated devices against a server, for integration and load
//! tests (`updraft_agent::sim`). Registers the fleet through the management API unless
//! `--skip-register` (then tokens come from `--tokens`; `--register-only` registers and stops
//! there), runs it until `--duration`, `--until-idle` or Ctrl-C, shows a live one-line summary
//! on stderr every second and prints the final summary as JSON on stdout.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use updraft_agent::sim::{self, Fleet, OutcomeMode, Registration, SimConfig};
use updraft_agent::{HttpSettings, http_client};

use updraft_api::PageOut;
use updraft_api::PropertyValue;
use updraft_api::jobs::{ExecutionListParams, ExecutionOut, JobListParams, JobOut};
use updraft_cli::Conn;

use crate::agent::{parse_pair, positive_secs};
use crate::process::{init_logging, shutdown_signal};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Outcomes {
    /// Exactly round(n × rate) devices fail or stay silent, chosen by index.
    ByIndex,
    /// Each device and deployment draws its outcome from the seed.
    Random,
}

#[derive(Args, Debug)]
#[command(
    after_help = "The server is --server or UPDRAFT_SERVER and the API key that registers the devices --token or \
UPDRAFT_TOKEN, as for every command. Simulated devices carry the property sim=true (and their --prefix as \
sim_prefix), so filters select them: updraft device list -q 'prop.sim == true'.

Examples:
  updraft sim --product thermo-x --devices 10000 --fail-rate 0.05 --poll-interval 10s --until-idle 30s
  updraft sim --product thermo-x --devices 500 --register-only --tokens-out fleet.csv
  updraft sim --skip-register --tokens fleet.csv --until-idle 1m --json > summary.json"
)]
pub struct SimArgs {
    /// The tenant in the device API's paths.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The product the devices are registered as.
    #[arg(long)]
    product: Option<String>,
    /// How many devices to simulate [default: 1000; with --skip-register, every device in --tokens].
    #[arg(long)]
    devices: Option<usize>,
    /// Device id prefix: devices are PREFIX00000, PREFIX00001, …
    #[arg(long, default_value = "sim-")]
    prefix: String,
    /// Installed version at registration, COMPONENT=VERSION (repeatable).
    #[arg(long = "firmware", value_name = "COMPONENT=VERSION", value_parser = parse_pair)]
    firmware: Vec<(String, String)>,
    /// Poll this often instead of the interval the server asks for, e.g. 10s; a bare number is seconds.
    #[arg(long, value_name = "DURATION", value_parser = positive_secs)]
    poll_interval: Option<Duration>,
    /// Randomise each pause between polls by ± this fraction (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    jitter: f64,
    /// Spread the first polls over this long, e.g. 30s [default: the poll interval, else 10s].
    #[arg(long, value_name = "DURATION", value_parser = positive_secs)]
    ramp_up: Option<Duration>,
    /// Fraction of deployments reported as failed (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Fraction of deployments never answered, the device going silent (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// How devices pick their outcome.
    #[arg(long, value_enum, default_value = "by-index")]
    outcomes: Outcomes,
    /// Seed for jitter and random outcomes.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Simulated install time between `downloaded` and the outcome, in milliseconds.
    #[arg(long, default_value_t = 0)]
    install_delay_ms: u64,
    /// Keep downloaded bytes under DIR/<device>/ (default: hash and discard them).
    #[arg(long, value_name = "DIR")]
    keep_bytes: Option<PathBuf>,
    /// The most artifact downloads at once.
    #[arg(long, default_value_t = 64)]
    max_downloads: usize,
    /// The most other requests (polls, feedback) at once.
    #[arg(long, default_value_t = 512)]
    max_requests: usize,
    /// Stop after this long, e.g. 10m; a bare number is seconds.
    #[arg(long, value_name = "DURATION", value_parser = positive_secs)]
    duration: Option<Duration>,
    /// Stop once every device has polled and no deployment has been in progress, started or ended
    /// for this long (e.g. 30s; a bare number is seconds), and no failed execution of a running job
    /// is still to be retried.
    #[arg(long, value_name = "DURATION", value_parser = positive_secs)]
    until_idle: Option<Duration>,
    /// The devices exist already: read their tokens from --tokens.
    #[arg(long, requires = "tokens")]
    skip_register: bool,
    /// A CSV of id,token (as `updraft device import` writes), for --skip-register.
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Write the registered devices' tokens to FILE (id,token) for later --skip-register runs.
    #[arg(long, value_name = "FILE", conflicts_with = "skip_register")]
    tokens_out: Option<PathBuf>,
    /// Overwrite the --tokens-out file if it exists.
    #[arg(long)]
    force: bool,
    /// Register the devices (and write --tokens-out), then exit without running them.
    #[arg(long, requires = "tokens_out", conflicts_with = "skip_register")]
    register_only: bool,
    /// Devices per registration call.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Log format: text or json.
    #[arg(long, env = "UPDRAFT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Run the devices on AWS IoT Jobs over MQTT through this broker (mqtt://host:1883 or
    /// mqtts://host:8883) instead of polling: notifications, status and presence over MQTT,
    /// downloads over the job documents' signed links. The summary gains the push latency.
    #[arg(long, env = "UPDRAFT_MQTT_URL", value_name = "URL")]
    mqtt_url: Option<String>,
    /// The broker's CA certificates, PEM (mqtts; the devices present no client certificate,
    /// so the broker must admit them otherwise).
    #[arg(long, value_name = "FILE", requires = "mqtt_url")]
    mqtt_ca_file: Option<PathBuf>,
    /// The tenant whose thing names are bare device ids (the server's `mqtt.default_tenant`).
    #[arg(long, value_name = "TENANT", default_value = "default")]
    mqtt_default_tenant: String,
}

pub async fn run(args: SimArgs, conn: &Conn) -> anyhow::Result<()> {
    init_logging(&args.log_format, if conn.verbose > 0 { "debug" } else { "warn,updraft_agent=info" });
    let server = conn.base_url();
    let firmware: std::collections::BTreeMap<String, String> = args.firmware.into_iter().collect();
    let devices = if args.skip_register {
        let path = args.tokens.context("--skip-register needs --tokens FILE")?;
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut devices = sim::parse_tokens_csv(&text)?;
        if let Some(n) = args.devices {
            devices.truncate(n);
        }
        devices
    } else {
        let Some(token) = conn.token.clone() else {
            bail!("registering devices needs an API key: set --token or UPDRAFT_TOKEN")
        };
        let Some(product) = args.product else { bail!("registering devices needs --product") };
        if let Some(out) = &args.tokens_out {
            updraft_cli::files::check_writable(out, args.force)?;
        }
        let mut registration = Registration::new(server.clone(), token, product);
        registration.firmware = firmware.clone();
        registration.properties = [
            ("sim".to_owned(), PropertyValue::Bool(true)),
            ("sim_prefix".to_owned(), PropertyValue::String(args.prefix.clone())),
        ]
        .into();
        registration.batch = args.batch.max(1);
        let http = http_client(&HttpSettings::default())?;
        let ids = sim::device_ids(&args.prefix, args.devices.unwrap_or(1000));
        let devices = sim::register_devices(&http, &registration, &ids).await.map_err(registration_error)?;
        if let Some(out) = &args.tokens_out {
            updraft_cli::files::write_tokens(
                out,
                args.force,
                devices.iter().map(|d| (d.id.as_str(), d.token.as_str())),
            )?;
        }
        if args.register_only {
            if conn.json {
                let tokens = args.tokens_out.as_ref().map(|p| p.display().to_string());
                println!("{}", serde_json::json!({"registered": devices.len(), "tokens": tokens}));
            } else {
                println!("{} devices registered", devices.len());
            }
            return Ok(());
        }
        devices
    };
    if devices.is_empty() {
        bail!("no devices to simulate");
    }

    let mut config = SimConfig::new(server);
    config.tenant = args.tenant;
    config.poll_interval = args.poll_interval;
    config.ramp_up = args.ramp_up.or(args.poll_interval).unwrap_or(Duration::from_secs(10));
    config.jitter = args.jitter;
    config.fail_rate = args.fail_rate;
    config.timeout_rate = args.timeout_rate;
    config.outcomes = match args.outcomes {
        Outcomes::ByIndex => OutcomeMode::ByIndex,
        Outcomes::Random => OutcomeMode::Random,
    };
    config.seed = args.seed;
    config.install_delay = Duration::from_millis(args.install_delay_ms);
    config.keep_dir = args.keep_bytes;
    config.max_downloads = args.max_downloads;
    config.max_requests = args.max_requests;
    config.duration = args.duration;
    config.firmware = firmware;
    config.mqtt = args.mqtt_url.map(|url| {
        let mut m = updraft_agent::mqtt::MqttSettings::new(url);
        m.ca_file = args.mqtt_ca_file;
        m
    });
    config.mqtt_default_tenant = args.mqtt_default_tenant;

    let ids: HashSet<String> = devices.iter().map(|d| d.id.clone()).collect();
    let fleet = Fleet::new(config, devices)?;
    let counters = fleet.counters();
    let interactive = std::io::stderr().is_terminal();
    let bar = ProgressBar::new_spinner();
    if interactive {
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    }
    let live = {
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let line = counters.snapshot().one_line();
                if interactive {
                    bar.set_message(line);
                    bar.tick();
                } else {
                    eprintln!("{line}");
                }
            }
        })
    };
    let stop = {
        let counters = fleet.counters();
        let retries = conn.token.is_some().then(|| updraft_cli::Client::new(conn)).transpose()?;
        async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = until_idle(args.until_idle, counters, retries, ids) => {}
            }
        }
    };
    let summary = fleet.run(stop).await;
    live.abort();
    bar.finish_and_clear();
    let summary = summary?;
    if conn.json {
        eprintln!("{}", summary.one_line());
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary.one_line());
    }
    Ok(())
}

/// Completes once the fleet has been idle for `limit` and, when the simulator can ask the
/// management API (it has a key), no failed execution of its devices in a running job is still
/// to be retried: a retry comes back after the job's retry interval, however long the fleet
/// was idle. Never completes without a limit.
async fn until_idle(
    limit: Option<Duration>,
    counters: std::sync::Arc<sim::SimCounters>,
    api: Option<updraft_cli::Client>,
    fleet: HashSet<String>,
) {
    let Some(limit) = limit else { return std::future::pending().await };
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if counters.idle_for().is_none_or(|idle| idle < limit) {
            continue;
        }
        match &api {
            None => return,
            Some(api) => match retries_to_come(api, &fleet).await {
                Ok(false) => return,
                Ok(true) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot ask the server for retries to come; stopping as idle");
                    return;
                }
            },
        }
    }
}

/// Whether a running job holds a failed or timed-out execution of one of `fleet`'s devices with
/// an attempt left.
async fn retries_to_come(api: &updraft_cli::Client, fleet: &HashSet<String>) -> anyhow::Result<bool> {
    let running = JobListParams { state: Some("running".into()), limit: Some(1000), ..Default::default() };
    let jobs: PageOut<JobOut> = serde_json::from_value(api.get("/api/v1/jobs", &running).await?)?;
    for job in jobs.items.iter().filter(|j| j.spec.retry.count > 0) {
        for state in ["failed", "timed_out"] {
            let q = ExecutionListParams { state: Some(state.into()), limit: Some(1000), ..Default::default() };
            let page: PageOut<ExecutionOut> =
                serde_json::from_value(api.get(&format!("/api/v1/jobs/{}/executions", job.id), &q).await?)?;
            if page.items.iter().any(|e| e.attempt <= job.spec.retry.count && fleet.contains(&e.device)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A failed registration, said once with the server's reason, and what to do when the devices
/// exist already (a second run with the same prefix).
fn registration_error(e: updraft_agent::Error) -> anyhow::Error {
    let updraft_agent::Error::Status { status, body, .. } = &e else { return e.into() };
    let Ok(answer) = serde_json::from_str::<updraft_api::ErrorOut>(body) else { return e.into() };
    let mut text =
        format!("registering the devices failed: {} ({status}): {}", answer.error.code, answer.error.message);
    let exists = answer
        .error
        .details
        .iter()
        .flat_map(|d| d.as_array().into_iter().flatten())
        .any(|d| d["message"].as_str().is_some_and(|m| m.contains("exists") || m.contains("taken")));
    if *status == 409 || exists {
        text.push_str(
            "\n  hint: devices with these ids are registered already: run them with --skip-register --tokens FILE \
             (the file --tokens-out wrote), or register new ones under another --prefix",
        );
    }
    anyhow::anyhow!(text)
}
