//! `updraft serve`: settings from defaults, a TOML file, `UPDRAFT_*`
//! variables and flags (later ones win), logging, signals, then `launch`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use updraft_server::{LogFormat, Settings};

/// Where a server keeps its data: what `serve` and `admin` open.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// A TOML file with settings (keys as the flags, with `_`: listen, data_dir, database_url, …).
    #[arg(long, env = "UPDRAFT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database and firmware files [default: ./updraft-data].
    #[arg(long, env = "UPDRAFT_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// `postgres://user@host/db` for PostgreSQL (or `sqlite:path`); default: SQLite in the data directory.
    #[arg(long, env = "UPDRAFT_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
}

impl DataArgs {
    /// The settings: built-in defaults, then the TOML file, then these flags.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                Settings::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => Settings::default(),
        };
        if let Some(v) = &self.data_dir {
            s.data_dir = v.clone();
        }
        if let Some(v) = &self.database_url {
            s.database_url = Some(v.clone());
        }
        Ok(s)
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "UPDRAFT_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// The largest firmware upload accepted, in bytes [default: 4 GiB].
    #[arg(long, env = "UPDRAFT_MAX_UPLOAD_BYTES")]
    max_upload_bytes: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "UPDRAFT_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Make this token the server administrator's API key (otherwise one is generated on first start).
    #[arg(long, env = "UPDRAFT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    bootstrap_token: Option<String>,
    /// Plug-and-play: the product of a device that polls with a gateway token under an unknown id.
    #[arg(long, env = "UPDRAFT_DDI_DEFAULT_PRODUCT")]
    ddi_default_product: Option<String>,
    /// The URL devices reach this server at, the base of every download link
    /// [default: the address the device connected to; never the Host header].
    #[arg(long, env = "UPDRAFT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Seconds a connection may take to send a request's headers [default: 10].
    #[arg(long, env = "UPDRAFT_HEADER_READ_TIMEOUT_SECS")]
    header_read_timeout_secs: Option<u64>,
    /// Seconds a connection may stay idle between requests [default: 60].
    #[arg(long, env = "UPDRAFT_KEEP_ALIVE_TIMEOUT_SECS")]
    keep_alive_timeout_secs: Option<u64>,
    /// Seconds the server waits for each piece of a request body [default: 60].
    #[arg(long, env = "UPDRAFT_REQUEST_BODY_TIMEOUT_SECS")]
    request_body_timeout_secs: Option<u64>,
    /// Most connections open at once [default: the open file limit less an eighth].
    #[arg(long, env = "UPDRAFT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Origins allowed to call the management API from a browser, comma-separated [default: none].
    #[arg(long, env = "UPDRAFT_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    cors_allowed_origins: Option<Vec<String>>,
    /// Serve HTTPS with this PEM certificate chain (reloaded when it changes) [default: plain HTTP].
    #[arg(long, env = "UPDRAFT_TLS_CERT_FILE", value_name = "FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The PEM private key of --tls-cert-file.
    #[arg(long, env = "UPDRAFT_TLS_KEY_FILE", value_name = "FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) of devices' client certificates: a device whose certificate's CN is
    /// its controller id needs no token [default: none].
    #[arg(long, env = "UPDRAFT_TLS_CLIENT_CA_FILE", value_name = "FILE")]
    tls_client_ca_file: Option<PathBuf>,
    /// The key-encryption key (64 hex digits) sealing TUF online keys [default: read from
    /// `<data_dir>/key-encryption.key`, made on first start].
    #[arg(long, env = "UPDRAFT_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    key_encryption_key: Option<String>,
    /// The MQTT broker of the MQTT door (AWS IoT Jobs' device API; docs/mqtt.md):
    /// mqtt://host:1883 or mqtts://host:8883 [default: none, no MQTT door].
    #[arg(long, env = "UPDRAFT_MQTT_URL", value_name = "URL")]
    mqtt_url: Option<String>,
}

impl ServeArgs {
    fn settings(self) -> anyhow::Result<Settings> {
        let mut s = self.data.settings()?;
        if let Some(v) = self.listen {
            s.listen = v;
        }
        if let Some(v) = self.max_upload_bytes {
            s.max_upload_bytes = v;
        }
        if let Some(v) = self.log_format {
            s.log_format = if v == "json" { LogFormat::Json } else { LogFormat::Text };
        }
        if let Some(v) = self.bootstrap_token {
            s.bootstrap_token = Some(v);
        }
        if let Some(v) = self.ddi_default_product {
            s.ddi_default_product = Some(v);
        }
        if let Some(v) = self.public_url {
            s.public_url = Some(v);
        }
        if let Some(v) = self.header_read_timeout_secs {
            s.header_read_timeout_secs = v;
        }
        if let Some(v) = self.keep_alive_timeout_secs {
            s.keep_alive_timeout_secs = v;
        }
        if let Some(v) = self.request_body_timeout_secs {
            s.request_body_timeout_secs = v;
        }
        if let Some(v) = self.max_connections {
            s.max_connections = Some(v);
        }
        if let Some(v) = self.cors_allowed_origins {
            s.cors_allowed_origins = v;
        }
        if let Some(v) = self.tls_cert_file {
            s.tls_cert_file = Some(v);
        }
        if let Some(v) = self.tls_key_file {
            s.tls_key_file = Some(v);
        }
        if let Some(v) = self.tls_client_ca_file {
            s.tls_client_ca_file = Some(v);
        }
        if let Some(v) = self.key_encryption_key {
            s.key_encryption_key = Some(v);
        }
        if let Some(v) = self.mqtt_url {
            s.mqtt.url = Some(v);
        }
        Ok(s)
    }
}

pub async fn run(args: ServeArgs, verbose: u8) -> anyhow::Result<()> {
    let settings = updraft_server::checked(args.settings()?)?;
    let format = if settings.log_format == LogFormat::Json { "json" } else { "text" };
    crate::process::init_logging(format, if verbose > 0 { "debug,sqlx=warn" } else { "info,sqlx=warn" });
    // Connections are files: allow as many as the system lets this process have.
    let files = updraft_server::conn::raise_open_file_limit();
    tracing::info!(open_file_limit = ?files, "open file limit");
    let listener =
        tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let app = updraft::backends::open(&settings, std::sync::Arc::new(updraft_app::SystemClock)).await?;
    let generated = app.bootstrap(settings.bootstrap_token.as_deref()).await?;
    eprintln!("{}", banner(&settings, listener.local_addr()?, &app.replica, generated.as_deref()));
    let state = updraft_server::build(settings, app).await?;
    updraft_server::serve(state, listener, crate::process::shutdown_signal()).await
}

/// What a person starting the server needs: where it listens, where its data is, how the CLI
/// reaches it, and the administrator's key on the first start (or how to recover a lost one).
fn banner(settings: &Settings, addr: SocketAddr, replica: &str, generated_key: Option<&str>) -> String {
    let mut local = addr;
    if local.ip().is_unspecified() {
        local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("{}://{local}", if settings.tls() { "https" } else { "http" });
    let data_dir = std::path::absolute(&settings.data_dir).unwrap_or_else(|_| settings.data_dir.clone());
    let database = match settings.database_url.as_deref() {
        Some(url) => format!("database: {}", redacted(url)),
        None => format!("database: SQLite in {}", data_dir.join("updraft.db").display()),
    };
    let mut text = format!(
        "\n  updraft listens on {url} (API documentation: {url}/api/docs)\n  \
         data directory: {}\n  {database}\n  replica: {replica} (what its leases are held as)\n",
        data_dir.display()
    );
    match generated_key {
        Some(key) => text.push_str(&format!(
            "\n  This first start generated the server administrator's API key. It is shown only this once:\n\n      \
             {key}\n\n  For the CLI:\n\n      export UPDRAFT_SERVER={url} UPDRAFT_TOKEN={key}\n"
        )),
        None => text.push_str(&format!(
            "\n  For the CLI: export UPDRAFT_SERVER={url} UPDRAFT_TOKEN=<an API key>\n  \
             Lost the server administrator's key? `updraft admin reset-key{}` issues a new one\n  \
             (the old one stops working).\n",
            admin_location(settings, &data_dir)
        )),
    }
    text
}

/// The flags `updraft admin` needs to open the same data as this server.
fn admin_location(settings: &Settings, data_dir: &std::path::Path) -> String {
    match settings.database_url.as_deref() {
        Some(url) => format!(" --database-url '{}' --data-dir '{}'", redacted(url), data_dir.display()),
        None => format!(" --data-dir '{}'", data_dir.display()),
    }
}

/// A database URL without its password.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
