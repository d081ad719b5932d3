//! `updraft agent`: runs one device against a server's DDI API with `updraft_agent::Agent`:
//! poll, download (resuming, optionally rate-limited), verify, install with a command or a copy,
//! report. Its state lives in `--state-dir`, so the command can be killed at any point and
//! started again.
//! Logs go to stderr; nothing is printed to stdout.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::{init_logging, shutdown_signal};
use anyhow::bail;
use clap::{ArgGroup, Args};
use updraft_agent::{Agent, AgentConfig, Auth, Installer};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("auth").required(true).args(["token", "gateway_token"])))]
#[command(group(ArgGroup::new("install").required(true).args(["install_cmd", "install_to"])))]
pub struct AgentArgs {
    /// The server's base URL.
    #[arg(long, env = "UPDRAFT_DDI_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The tenant in the device API's paths.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The device's id (hawkBit's controller id).
    #[arg(long)]
    controller_id: String,
    /// The device's own token, sent as `Authorization: TargetToken <token>`.
    #[arg(long, env = "UPDRAFT_DEVICE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The tenant's gateway token, sent as `Authorization: GatewayToken <token>`.
    #[arg(long, env = "UPDRAFT_GATEWAY_TOKEN", hide_env_values = true)]
    gateway_token: Option<String>,
    /// Where the agent keeps its state file and downloads.
    #[arg(long, default_value = "updraft-agent-state")]
    state_dir: PathBuf,
    /// Install by running this command, e.g. "sh -c 'flash {file}'"; `{file}` becomes the
    /// verified artifact's path; exit status 0 means installed. Must be safe to run twice.
    #[arg(long, value_name = "COMMAND")]
    install_cmd: Option<String>,
    /// Install by copying the artifact to PATH (into PATH when it is a directory).
    #[arg(long, value_name = "PATH")]
    install_to: Option<PathBuf>,
    /// Poll every SECS seconds instead of the interval the server asks for.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    poll_interval: Option<Duration>,
    /// Do what the server has for this device now, then exit.
    #[arg(long)]
    once: bool,
    /// An installed version, COMPONENT=VERSION (repeatable); used until the agent has installed
    /// that component itself.
    #[arg(long = "firmware", value_name = "COMPONENT=VERSION", value_parser = parse_pair)]
    firmware: Vec<(String, String)>,
    /// Another configData attribute, KEY=VALUE (repeatable), e.g. hardware_version=rev-b.
    #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = parse_pair)]
    attributes: Vec<(String, String)>,
    /// Download artifacts at most this fast, in bytes per second; K, M and G multiply by 1024
    /// (e.g. 262144 or 256K). For devices on metered or shared links.
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = parse_rate)]
    download_rate_limit: Option<u64>,
    /// Kill an install command that runs longer than SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "3600", value_parser = parse_secs)]
    install_timeout: Duration,
    /// Log format: text or json.
    #[arg(long, env = "UPDRAFT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// `k=v` with a non-empty key.
pub(crate) fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Seconds, fractions allowed (`0.5`), more than zero.
pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("expected a positive number of seconds, got {s:?}")),
    }
}

/// A positive byte rate: digits with an optional K, M or G (powers of 1024).
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, ' '),
    };
    let multiplier: u64 = match unit {
        ' ' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => return Err(format!("expected bytes per second like 262144 or 256K, got {s:?}")),
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(multiplier)) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive number of bytes per second like 262144 or 256K, got {s:?}")),
    }
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format, "info");
    let auth = match (args.token, args.gateway_token) {
        (Some(t), _) => Auth::TargetToken(t),
        (None, Some(g)) => Auth::GatewayToken(g),
        (None, None) => bail!("set --token (or UPDRAFT_DEVICE_TOKEN) or --gateway-token"),
    };
    let installer = match (args.install_cmd, args.install_to) {
        (Some(cmd), _) => Installer::Command(cmd),
        (None, Some(path)) => Installer::CopyTo(path),
        (None, None) => bail!("set --install-cmd or --install-to"),
    };
    let mut config = AgentConfig::new(args.server, args.tenant, args.controller_id, auth, args.state_dir, installer);
    config.firmware = args.firmware.into_iter().collect();
    config.attributes = args.attributes.into_iter().collect();
    config.poll_interval = args.poll_interval;
    config.install_timeout = args.install_timeout;
    config.download_rate_limit = args.download_rate_limit;
    let mut agent = Agent::new(config).await?;
    if args.once {
        agent.run_once().await?;
        return Ok(());
    }
    agent.run(shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_binary_units() {
        assert_eq!(parse_rate("262144"), Ok(262_144));
        assert_eq!(parse_rate("256K"), Ok(262_144));
        assert_eq!(parse_rate("2m"), Ok(2 << 20));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        for bad in ["0", "0K", "", "K", "1.5M", "-1", "12X", "99999999999999999999G"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }
}
