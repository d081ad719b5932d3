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
use updraft_agent::sim::{self, Fleet, OutcomeMode, Registration, SimConfig};
use updraft_agent::{HttpSettings, http_client};

use crate::agent::{parse_pair, parse_secs};
use crate::process::{init_logging, shutdown_signal};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Outcomes {
    /// Exactly round(n × rate) devices fail or stay silent, chosen by index.
    ByIndex,
    /// Each device and deployment draws its outcome from the seed.
    Random,
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// The server's base URL (management and device API).
    #[arg(long, env = "UPDRAFT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A management API key that may register devices.
    #[arg(long, env = "UPDRAFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The tenant in the device API's paths.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The product the devices are registered as.
    #[arg(long)]
    product: Option<String>,
    /// How many devices [default: 1000; with --skip-register, every device in --tokens].
    #[arg(long)]
    devices: Option<usize>,
    /// Device id prefix.
    #[arg(long, default_value = "sim-")]
    prefix: String,
    /// Installed version at registration, COMPONENT=VERSION (repeatable).
    #[arg(long = "firmware", value_name = "COMPONENT=VERSION", value_parser = parse_pair)]
    firmware: Vec<(String, String)>,
    /// Poll every SECS seconds instead of the interval the server asks for.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    poll_interval: Option<Duration>,
    /// Randomise each pause between polls by ± this fraction (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    jitter: f64,
    /// Spread the first polls over SECS seconds [default: the poll interval, else 10].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    ramp_up: Option<Duration>,
    /// Fraction of deployments reported as failed.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Fraction of deployments never answered (the device goes silent).
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
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
    /// Stop once every device has polled and no deployment has been in progress, started or ended
    /// for SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
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
    /// Register the devices (and write --tokens-out), then exit without running them.
    #[arg(long, requires = "tokens_out", conflicts_with = "skip_register")]
    register_only: bool,
    /// Devices per registration call.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Log format: text or json.
    #[arg(long, env = "UPDRAFT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format, "warn,updraft_agent=info");
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
        let Some(token) = args.token else {
            bail!("registering devices needs an API key: set --token or UPDRAFT_TOKEN")
        };
        let Some(product) = args.product else { bail!("registering devices needs --product") };
        let mut registration = Registration::new(args.server.clone(), token, product);
        registration.firmware = firmware.clone();
        registration.batch = args.batch.max(1);
        let http = http_client(&HttpSettings::default())?;
        let ids = sim::device_ids(&args.prefix, args.devices.unwrap_or(1000));
        let devices = sim::register_devices(&http, &registration, &ids).await?;
        if let Some(out) = &args.tokens_out {
            let mut csv = String::from("id,token\n");
            for d in &devices {
                csv.push_str(&format!("{},{}\n", d.id, d.token));
            }
            std::fs::write(out, csv).with_context(|| format!("writing {}", out.display()))?;
        }
        if args.register_only {
            eprintln!("{} devices registered", devices.len());
            return Ok(());
        }
        devices
    };
    if devices.is_empty() {
        bail!("no devices to simulate");
    }

    let mut config = SimConfig::new(args.server);
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
    config.until_idle = args.until_idle;
    config.firmware = firmware;

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
    let summary = fleet.run(shutdown_signal()).await;
    live.abort();
    bar.finish_and_clear();
    let summary = summary?;
    eprintln!("{}", summary.one_line());
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
