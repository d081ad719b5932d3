//! `updraft agent`: runs one device against a server's DDI API with `updraft_agent::Agent`:
//! poll, download (resuming, optionally rate-limited), verify, install with a command or a copy,
//! report. Its state lives in `--state-dir`, so the command can be killed at any point and
//! started again.
//! Logs go to stderr; nothing is printed to stdout.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::{init_logging, shutdown_signal};
use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use updraft_agent::{Agent, AgentConfig, Auth, Installer};
use updraft_cli::{Conn, base_url};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("install").required(true).args(["install_cmd", "install_to"])))]
#[command(after_help = "The server is --server or UPDRAFT_SERVER, as for every command (UPDRAFT_DDI_SERVER, read \
before, still counts when neither is set). The device's token is --device-token or UPDRAFT_DEVICE_TOKEN; \
`--token upd_d_…` on the command line works too.

Example:
  updraft agent --server 10.0.0.5:8080 --controller-id dev-0001 --device-token upd_d_… \\
    --state-dir /var/lib/updraft-agent --install-cmd \"/usr/local/bin/install-firmware {file}\" --firmware host=1.0.0")]
pub struct AgentArgs {
    /// The tenant in the device API's paths.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The device's id (hawkBit's controller id).
    #[arg(long)]
    controller_id: String,
    /// The device's own token (`upd_d_…`), sent as `Authorization: TargetToken <token>`.
    #[arg(long, env = "UPDRAFT_DEVICE_TOKEN", hide_env_values = true, conflicts_with = "gateway_token")]
    device_token: Option<String>,
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
    /// Poll this often instead of the interval the server asks for, e.g. 30s or 5m; a bare number
    /// is seconds (fractions allowed).
    #[arg(long, value_name = "DURATION", value_parser = positive_secs)]
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
    /// Kill an install command that runs longer than this, e.g. 30m; a bare number is seconds.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = positive_secs)]
    install_timeout: Duration,
    /// Log format: text or json.
    #[arg(long, env = "UPDRAFT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Trust only the CA certificates in this PEM file for an https server (the fleet's own CA).
    #[arg(long, env = "UPDRAFT_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Present this PEM client certificate (its CN the controller id) to an https server; with
    /// --client-key-file and no token, the certificate alone authenticates the device.
    #[arg(long, env = "UPDRAFT_CLIENT_CERT_FILE", value_name = "FILE", requires = "client_key_file")]
    client_cert_file: Option<PathBuf>,
    /// The PEM private key of --client-cert-file.
    #[arg(long, env = "UPDRAFT_CLIENT_KEY_FILE", value_name = "FILE", requires = "client_cert_file")]
    client_key_file: Option<PathBuf>,
    /// The product's pinned TUF root (`root.json` of `updraft trust init`): every file is then
    /// verified through the product's TUF repository before it is installed, and refused (with
    /// a failure code, keeping the installed version) unless its signed metadata allows it.
    #[arg(long, value_name = "FILE", requires = "product")]
    trust_root: Option<std::path::PathBuf>,
    /// The device's product (its key): the TUF repository it verifies against.
    #[arg(long)]
    product: Option<String>,
    /// The TUF repository's base URL [default: <server>/tuf/<tenant>/<product>].
    #[arg(long, value_name = "URL", requires = "trust_root")]
    trust_url: Option<String>,
    /// Also keep an MQTT connection to the server's broker (mqtt://host:1883 or
    /// mqtts://host:8883): the device announces itself (its last will says when it is gone) and
    /// polls the moment the server pushes a job, not at its next poll.
    #[arg(long, env = "UPDRAFT_MQTT_URL", value_name = "URL")]
    mqtt_url: Option<String>,
    /// The broker's CA certificates, PEM (mqtts).
    #[arg(long, value_name = "FILE", requires = "mqtt_url")]
    mqtt_ca_file: Option<PathBuf>,
    /// The device's MQTT client certificate, PEM (`POST /api/v1/devices/{id}/mqtt-certificate`).
    #[arg(long, value_name = "FILE", requires_all = ["mqtt_url", "mqtt_key_file"])]
    mqtt_cert_file: Option<PathBuf>,
    /// The private key of --mqtt-cert-file, PEM.
    #[arg(long, value_name = "FILE", requires = "mqtt_cert_file")]
    mqtt_key_file: Option<PathBuf>,
    /// The tenant whose thing names are bare device ids on the broker (the server's `mqtt.default_tenant`).
    #[arg(long, value_name = "TENANT", default_value = "default")]
    mqtt_default_tenant: String,
}

/// `k=v` with a non-empty key.
pub(crate) fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

pub(crate) use updraft_cli::duration::positive_secs;

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

/// Runs the agent. Its device token is `--device-token`, or the global `--token` when that was
/// given on the command line (an API key in UPDRAFT_TOKEN is never taken for a device's token).
pub async fn run(args: AgentArgs, conn: &Conn, token_on_command_line: bool) -> anyhow::Result<()> {
    init_logging(&args.log_format, if conn.verbose > 0 { "debug" } else { "info" });
    let given_token = conn.token.clone().filter(|_| token_on_command_line);
    let auth = match (args.device_token.or(given_token), args.gateway_token) {
        (Some(t), None) => Auth::TargetToken(t),
        (None, Some(g)) => Auth::GatewayToken(g),
        (Some(_), Some(_)) => bail!("give the device's token or a gateway token, not both"),
        (None, None) if args.client_cert_file.is_some() => Auth::ClientCertificate,
        (None, None) => {
            bail!("set --device-token (or UPDRAFT_DEVICE_TOKEN), --gateway-token or --client-cert-file")
        }
    };
    let server = match (&conn.server, std::env::var("UPDRAFT_DDI_SERVER")) {
        (Some(s), _) => base_url(s),
        (None, Ok(s)) => base_url(&s),
        (None, Err(_)) => conn.base_url(),
    };
    let installer = match (args.install_cmd, args.install_to) {
        (Some(cmd), _) => Installer::Command(cmd),
        (None, Some(path)) => Installer::CopyTo(path),
        (None, None) => bail!("set --install-cmd or --install-to"),
    };
    let trust = match (&args.trust_root, &args.product) {
        (Some(root), Some(product)) => {
            let root = tokio::fs::read(root).await.with_context(|| format!("reading {}", root.display()))?;
            let base = args
                .trust_url
                .clone()
                .unwrap_or_else(|| format!("{server}/tuf/{}/{product}", args.tenant))
                .trim_end_matches('/')
                .to_owned();
            Some(updraft_agent::tuf::TrustConfig {
                root,
                product: product.clone(),
                metadata_url: format!("{base}/metadata/"),
                targets_url: format!("{base}/targets/"),
            })
        }
        _ => None,
    };
    let mqtt = args.mqtt_url.map(|url| {
        let mut m = updraft_agent::mqtt::MqttSettings::new(url);
        m.ca_file = args.mqtt_ca_file;
        m.client_cert_file = args.mqtt_cert_file;
        m.client_key_file = args.mqtt_key_file;
        (m, updraft_agent::mqtt::thing_name(&args.mqtt_default_tenant, &args.tenant, &args.controller_id))
    });
    let mut config = AgentConfig::new(server, args.tenant, args.controller_id, auth, args.state_dir, installer);
    config.trust = trust;
    config.firmware = args.firmware.into_iter().collect();
    config.attributes = args.attributes.into_iter().collect();
    config.poll_interval = args.poll_interval;
    config.install_timeout = args.install_timeout;
    config.download_rate_limit = args.download_rate_limit;
    config.http.ca_file = args.ca_file;
    config.http.client_cert_file = args.client_cert_file;
    config.http.client_key_file = args.client_key_file;
    let mut agent = Agent::new(config).await?;
    if args.once {
        agent.run_once().await?;
        return Ok(());
    }
    let wake = match &mqtt {
        Some((settings, thing)) => {
            let (link, wake) = updraft_agent::mqtt::wake_on_notify(settings, thing)?;
            tracing::info!(thing = %link.thing, url = %settings.url, "mqtt link open");
            Some((link, wake))
        }
        None => None,
    };
    let (link, wake) = match wake {
        Some((link, wake)) => (Some(link), Some(wake)),
        None => (None, None),
    };
    agent.run_woken(shutdown_signal(), wake).await?;
    if let Some(link) = link {
        link.leave().await;
    }
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
