//! The server's settings: built-in defaults, then a TOML file, then
//! `UPDRAFT_*` environment variables and flags (the binary layers them).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the SQLite database and firmware files live.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL, `sqlite:…` for another SQLite file; default: `<data_dir>/updraft.db`.
    pub database_url: Option<String>,
    /// The largest firmware upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// The largest bulk device import body accepted, in bytes.
    pub max_import_bytes: usize,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// How often devices should poll the device API, in seconds (`config.polling.sleep`).
    pub poll_interval_secs: u64,
    /// A device not seen for this long is offline, in seconds.
    pub offline_after_secs: u64,
    /// How often the presence worker writes device sightings, in milliseconds.
    pub presence_flush_ms: u64,
    /// The longest a device's idle poll answer and token are served from
    /// memory, in milliseconds. Unset (the default): until something changes
    /// (the poll cache follows the event stream, every replica's changes included).
    pub poll_cache_ttl_ms: Option<u64>,
    /// The most devices whose tokens and idle poll answers are held in memory
    /// (a few hundred bytes each); filled from the store when the server
    /// starts. Past it the cache starts again empty.
    pub poll_cache_devices: usize,
    /// How long events are kept in the event stream, in hours: a follower
    /// stopped for longer misses what was pruned.
    pub event_retention_hours: u64,
    /// How often a durable follower looks at the event stream without being
    /// woken, in seconds (to take over from a replica that stopped).
    pub follower_poll_secs: u64,
    /// Management API calls allowed per API key per second on average (0: no limit).
    pub api_rate_limit_per_sec: u32,
    /// How many calls a key may make at once above its average.
    pub api_rate_limit_burst: u32,
    /// Failed authentications allowed per source address per minute on average (0: no limit).
    pub auth_failures_per_minute: u32,
    /// How many failed authentications an address may make at once before it is refused.
    pub auth_failures_burst: u32,
    /// Device API requests allowed per device per minute on average (0: no
    /// limit); artifact downloads are not counted. Separate from the API keys' budgets.
    pub ddi_rate_limit_per_minute: u32,
    /// How many device API requests a device may make at once above its average.
    pub ddi_rate_limit_burst: u32,
    /// Device API requests allowed per source address per minute on average
    /// (0, the default: no limit; a NAT or a gateway puts many devices behind one address).
    pub ddi_address_rate_limit_per_minute: u32,
    /// How many device API requests an address may make at once above its average.
    pub ddi_address_rate_limit_burst: u32,
    /// How often the scheduler moves jobs (releases, timeouts, retries, schedules), in milliseconds.
    pub scheduler_tick_ms: u64,
    /// How often a running continuous job is fully re-evaluated against the
    /// fleet, in seconds (device changes are checked at once besides).
    pub continuous_reevaluation_secs: u64,
    /// When set, this token becomes the server administrator's key (admin of the `default` tenant).
    pub bootstrap_token: Option<String>,
    /// Plug-and-play: the product (its key) of a device that polls the device API
    /// with a gateway token under an unknown controller id, registered on that
    /// poll. Unset, or not a product of the tenant: such a poll answers 404.
    pub ddi_default_product: Option<String>,
    /// The URL devices reach this server at (`https://updates.example.com`,
    /// optionally with a path prefix): the base of every link the server
    /// hands out. Unset: the address the device's connection reached (the
    /// listener's own address), never a `Host` or `X-Forwarded-Host` header.
    pub public_url: Option<String>,
    /// How long a connection may take to send a request's headers, in seconds
    /// (from its accept for the first request): a connection that sends
    /// nothing is closed after this long.
    pub header_read_timeout_secs: u64,
    /// How long a connection may stay idle between requests, in seconds.
    pub keep_alive_timeout_secs: u64,
    /// How long the server waits for each piece of a request body, in seconds.
    pub request_body_timeout_secs: u64,
    /// Most connections open at once; past it the idlest one is closed. Default:
    /// the open file limit (raised to the hard limit at start) less an eighth.
    pub max_connections: Option<usize>,
    /// Origins allowed to call the management API from a browser (CORS).
    /// Empty (the default): no CORS headers, so browsers refuse other origins.
    pub cors_allowed_origins: Vec<String>,
    /// How long an `Idempotency-Key` is kept to answer retries, in seconds.
    pub idempotency_ttl_secs: u64,
    /// How long a dashboard session lasts, in hours (1 to 720).
    pub session_hours: u64,
    /// Mark the dashboard's cookies `Secure` (sent over HTTPS only). They are
    /// also when `public_url` is `https://…` or a proxy says `X-Forwarded-Proto: https`.
    pub ui_secure_cookies: bool,
    /// How long the audit log keeps an entry, in days.
    pub audit_retention_days: u64,
    /// The server's certificate chain, PEM (its own certificate first). With
    /// `tls_key_file`, the listener speaks HTTPS only and device links are `https`.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file`, PEM (PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// How often the certificate and key files are checked for changes, in
    /// milliseconds: new handshakes get the new pair once it loads.
    pub tls_reload_ms: u64,
    /// How long a TLS handshake may take, from the accept, in seconds.
    pub tls_handshake_timeout_secs: u64,
    /// CA certificates, PEM, that devices' client certificates may chain to: a
    /// device presenting one whose subject CN is its controller id is
    /// authenticated without a token. Devices without a certificate still connect.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Behind a reverse proxy that checks client certificates, as hawkBit:
    /// the issuer hashes to trust in `X-Ssl-Issuer-Hash-1`, `-2`, … with the
    /// device's CN in `X-Ssl-Client-Cn`. Empty (the default): those headers are
    /// ignored. Only safe when the proxy removes them from clients' requests.
    pub ddi_proxy_issuer_hashes: Vec<String>,
    /// The key-encryption key (64 hex digits) that seals the TUF online keys
    /// in the database. Every replica needs the same one. Unset: read from
    /// `key_encryption_key_file`.
    pub key_encryption_key: Option<String>,
    /// Where the key-encryption key is read from when `key_encryption_key` is
    /// unset. Unset: `<data_dir>/key-encryption.key`, made (mode 0600) on first start.
    pub key_encryption_key_file: Option<PathBuf>,
    /// Earlier key-encryption keys, still opened (to rotate the key: put the
    /// old one here and a new one in `key_encryption_key`).
    pub key_encryption_keys_previous: Vec<String>,
    /// How long targets metadata signed online is valid, in days (re-signed half way).
    pub tuf_targets_expiry_days: u64,
    /// How long snapshot metadata is valid, in days.
    pub tuf_snapshot_expiry_days: u64,
    /// How long timestamp metadata is valid, in hours (re-signed half way by the `trust` worker).
    pub tuf_timestamp_expiry_hours: u64,
    /// The MQTT door (AWS IoT Jobs' device API through a broker): off unless `mqtt.url` is set.
    pub mqtt: MqttSettings,
    /// Where firmware bytes live: local files (the default) or an S3-compatible bucket.
    pub blobs: BlobSettings,
}

/// `[blobs]`: where firmware bytes live (see README, "Firmware in S3").
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BlobSettings {
    /// `s3://{bucket}[/{prefix}]` for an S3-compatible bucket. Unset: files
    /// under `<data_dir>/firmware`.
    pub url: Option<String>,
    /// The S3 service's URL (MinIO, Ceph, R2, …: `http://127.0.0.1:9000`).
    /// Unset: AWS's, or `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Unset: `AWS_REGION` (or `us-east-1`).
    pub region: Option<String>,
    /// The bucket's credentials. Unset: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the environment.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Devices' artifact downloads are redirected (307) to a presigned URL
    /// of the bucket, which carries the bytes (put a CDN in front with `endpoint`);
    /// off: updraft streams them, with the same Range and validators.
    pub presigned_downloads: bool,
    /// How long a presigned download link works, in seconds.
    pub presigned_ttl_secs: u64,
    /// Buckets of the same service (and credentials) an AWS `CreateOTAUpdate` may name
    /// its files in (`s3Location`): updraft reads the objects into a new image. Any
    /// tenant that may upload may import from them; empty (the default): none.
    pub readable_buckets: Vec<String>,
}

impl BlobSettings {
    /// The S3 service these settings name (the bucket of `url`, if any, aside).
    pub fn s3_config(&self) -> updraft_blob::S3Config {
        updraft_blob::S3Config {
            url: self.url.clone().unwrap_or_default(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }
}

impl Default for BlobSettings {
    fn default() -> Self {
        BlobSettings {
            url: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            presigned_downloads: false,
            presigned_ttl_secs: 3600,
            readable_buckets: Vec::new(),
        }
    }
}

/// `[mqtt]`: devices that keep an MQTT connection (see `docs/mqtt.md`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// The broker: `mqtt://host:1883` or `mqtts://host:8883`. Unset: no MQTT door.
    pub url: Option<String>,
    /// The broker URL devices are told to use (in issued credentials). Unset: `url`.
    pub device_url: Option<String>,
    /// updraft's MQTT client id (a replica's id is appended). Default `updraft`.
    pub client_id: String,
    /// A user name and password for updraft's own connection, when the broker wants them.
    pub username: Option<String>,
    pub password: Option<String>,
    /// CA certificates, PEM, the broker's certificate is checked against (`mqtts`).
    pub ca_file: Option<PathBuf>,
    /// updraft's own client certificate and key, PEM. Unset with `mqtts`: one the
    /// device CA issues for `$updraft-server`.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// The CA devices' MQTT certificates are issued by. Unset:
    /// `<data_dir>/mqtt-device-ca.pem` and `.key`, made on first start.
    pub device_ca_cert_file: Option<PathBuf>,
    pub device_ca_key_file: Option<PathBuf>,
    /// With several replicas: the shared-subscription group (`$share/{group}/…`) through
    /// which one replica answers each request. Unset (the default): every replica
    /// subscribes plainly. Mosquitto 2.0's shared subscriptions do not match `$aws/…`
    /// topics; EMQX, HiveMQ and VerneMQ's do (docs/mqtt.md).
    pub shared_group: Option<String>,
    /// The tenant whose devices' thing names are their bare ids
    /// (`$aws/things/{device}/…`); other tenants' are `{tenant}@{device}`.
    pub default_tenant: String,
    /// How long the download links in job documents work, in seconds.
    pub link_ttl_secs: u64,
    /// The MQTT keep-alive of updraft's connection, in seconds.
    pub keep_alive_secs: u64,
    /// How long a device's connection counts as a sighting: connected devices are
    /// noted seen this often, in seconds.
    pub presence_refresh_secs: u64,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            url: None,
            device_url: None,
            client_id: "updraft".into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            shared_group: None,
            device_ca_cert_file: None,
            device_ca_key_file: None,
            default_tenant: "default".into(),
            link_ttl_secs: 7 * 86_400,
            keep_alive_secs: 30,
            presence_refresh_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            data_dir: PathBuf::from("updraft-data"),
            database_url: None,
            max_upload_bytes: 4 << 30,
            max_import_bytes: 64 << 20,
            log_format: LogFormat::Text,
            poll_interval_secs: 300,
            offline_after_secs: 900,
            presence_flush_ms: 10_000,
            poll_cache_ttl_ms: None,
            poll_cache_devices: 2_000_000,
            event_retention_hours: 168,
            follower_poll_secs: 30,
            api_rate_limit_per_sec: 200,
            api_rate_limit_burst: 2000,
            auth_failures_per_minute: 10,
            auth_failures_burst: 30,
            ddi_rate_limit_per_minute: 60,
            ddi_rate_limit_burst: 120,
            ddi_address_rate_limit_per_minute: 0,
            ddi_address_rate_limit_burst: 1000,
            scheduler_tick_ms: 1000,
            continuous_reevaluation_secs: 3600,
            bootstrap_token: None,
            ddi_default_product: None,
            public_url: None,
            header_read_timeout_secs: 10,
            keep_alive_timeout_secs: 60,
            request_body_timeout_secs: 60,
            max_connections: None,
            cors_allowed_origins: Vec::new(),
            idempotency_ttl_secs: 86_400,
            session_hours: 12,
            ui_secure_cookies: false,
            audit_retention_days: 365,
            tls_cert_file: None,
            tls_key_file: None,
            tls_reload_ms: 5000,
            tls_handshake_timeout_secs: 10,
            tls_client_ca_file: None,
            ddi_proxy_issuer_hashes: Vec::new(),
            key_encryption_key: None,
            key_encryption_key_file: None,
            key_encryption_keys_previous: Vec::new(),
            tuf_targets_expiry_days: 90,
            tuf_snapshot_expiry_days: 7,
            tuf_timestamp_expiry_hours: 24,
            mqtt: MqttSettings::default(),
            blobs: BlobSettings::default(),
        }
    }
}

impl Settings {
    /// What the application layer takes of these settings.
    pub fn app_config(&self) -> updraft_app::Config {
        updraft_app::Config {
            poll_interval_secs: self.poll_interval_secs,
            offline_after_secs: self.offline_after_secs,
            presence_flush_ms: self.presence_flush_ms,
            scheduler_tick_ms: self.scheduler_tick_ms,
            continuous_reevaluation_secs: self.continuous_reevaluation_secs,
            event_retention_hours: self.event_retention_hours,
            follower_poll_secs: self.follower_poll_secs,
            ddi_default_product: self.ddi_default_product.clone(),
            idempotency_ttl_secs: self.idempotency_ttl_secs,
            session_hours: self.session_hours,
            audit_retention_days: self.audit_retention_days,
            trust_lifetimes: updraft_app::trust::Lifetimes {
                targets: jiff::SignedDuration::from_hours(24 * self.tuf_targets_expiry_days.clamp(1, 3650) as i64),
                snapshot: jiff::SignedDuration::from_hours(24 * self.tuf_snapshot_expiry_days.clamp(1, 3650) as i64),
                timestamp: jiff::SignedDuration::from_hours(self.tuf_timestamp_expiry_hours.clamp(1, 24 * 3650) as i64),
            },
        }
    }

    /// Reads settings from a TOML file; absent keys keep their defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Whether the listener speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert_file.is_some() && self.tls_key_file.is_some()
    }

    /// `public_url` without its trailing `/`, checked: an absolute `http` or
    /// `https` URL with a host and no query or fragment.
    pub fn public_base(&self) -> Result<Option<String>, String> {
        let Some(url) = &self.public_url else { return Ok(None) };
        let trimmed = url.trim_end_matches('/');
        let parsed: axum::http::Uri = trimmed.parse().map_err(|e| format!("public_url `{url}`: {e}"))?;
        let scheme_ok = matches!(parsed.scheme_str(), Some("http" | "https"));
        if !scheme_ok || parsed.host().is_none_or(str::is_empty) || parsed.query().is_some() || trimmed.contains('#') {
            return Err(format!("public_url `{url}` must be an http:// or https:// URL with a host and no query"));
        }
        Ok(Some(trimmed.to_owned()))
    }
}
