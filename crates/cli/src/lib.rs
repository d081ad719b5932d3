//! The `updraft` client commands: every management call, over HTTP, with
//! human tables by default and `--json` for scripts.

mod client;
mod output;

use std::path::PathBuf;

use std::collections::BTreeMap;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use updraft_api::devices::{DeviceIn, DeviceListParams, DevicePatch, ImportOut};
use updraft_api::filters::{FilterSpecIn, PreviewIn, SavedFilterIn};
use updraft_api::firmware::{FileSpec, FirmwareListParams, FirmwareOut};
use updraft_api::gateway_tokens::{GatewayTokenIn, GatewayTokenOut};
use updraft_api::groups::{GroupIn, MembersIn, MembersOut};
use updraft_api::jobs::{ExecutionListParams, JobIn, JobListParams, JobOut, RetryIn, ScheduleIn};
use updraft_api::keys::{KeyIn, KeyOut};
use updraft_api::products::{ProductIn, ProductPatch};
use updraft_api::tenants::{TenantCreated, TenantIn};
use updraft_api::{ListParams, filters::EstimateOut as FilterEstimateOut};
use updraft_core::PropertyValue;
use updraft_core::job::JobKind;

pub use client::Client;
use client::read;
use output::{Table, print_json};

/// Where the server is and who is calling.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The server's base URL.
    #[arg(long, env = "UPDRAFT_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// An API key.
    #[arg(long, env = "UPDRAFT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Products (device models).
    Product {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: ProductCmd,
    },
    /// Firmware images: upload, list, show, download, delete.
    Firmware {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: FirmwareCmd,
    },
    /// Devices: add, import, list, show, update, delete, token.
    Device {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: DeviceCmd,
    },
    /// Static device groups and their members.
    Group {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: GroupCmd,
    },
    /// Tenants (server administrator only).
    Tenant {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: TenantCmd,
    },
    /// API keys of your tenant (admin only).
    Key {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Jobs: deliver firmware to devices and follow each execution.
    Job {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: JobCmd,
    },
    /// Device filters: estimate, preview, and saved filters (see docs/filters.md).
    Filter {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: FilterCmd,
    },
    /// Gateway tokens for the device API (admin only).
    GatewayToken {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: GatewayCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Create a job: which devices, how, how fast and when (see `updraft job create --help`).
    Create(Box<JobCreate>),
    List {
        /// Only jobs in this state (created, scheduled, running, paused, completed, canceled, aborted).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// A job with its counts, rates and ETA.
    Show {
        id: String,
    },
    /// How many devices a created job would select if started now.
    Estimate {
        id: String,
    },
    Start {
        id: String,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Cancel {
        id: String,
    },
    /// Replaces a job's schedule with the JSON in FILE (`-` for stdin; `null` removes it).
    Schedule {
        id: String,
        file: PathBuf,
    },
    /// Follows a job live until it ends (Ctrl-C to stop watching).
    Watch {
        id: String,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 2)]
        every: u64,
    },
    /// A job's executions, optionally in one state.
    Executions {
        id: String,
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One device's executions across jobs, with their histories.
    Device {
        id: String,
    },
}

/// `updraft job create`: flags for the common fields; `--spec FILE` for any
/// field of `POST /api/v1/jobs` (ramp, abort, schedule, translations, …),
/// which flags override.
#[derive(Args, Debug)]
pub struct JobCreate {
    #[arg(long)]
    pub firmware: String,
    /// Device ids (or one per line with --from FILE).
    pub devices: Vec<String>,
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Every device of the image's product.
    #[arg(long)]
    pub all: bool,
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// An inline filter in the text form.
    #[arg(long)]
    pub filter: Option<String>,
    /// A saved filter's id.
    #[arg(long)]
    pub filter_id: Option<String>,
    #[arg(long)]
    pub gray_percent: Option<u8>,
    #[arg(long = "source-version")]
    pub source_versions: Vec<String>,
    #[arg(long)]
    pub include: Vec<String>,
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Add devices that start matching while the job runs.
    #[arg(long)]
    pub continuous: bool,
    /// Do not push; devices must ask (implies --allow-device-request).
    #[arg(long)]
    pub no_push: bool,
    #[arg(long)]
    pub allow_device_request: bool,
    /// The end user must approve before a device gets it.
    #[arg(long)]
    pub consent_required: bool,
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    #[arg(long)]
    pub max_per_minute: Option<u32>,
    #[arg(long)]
    pub retries: Option<u32>,
    /// Minutes between retries.
    #[arg(long)]
    pub retry_interval: Option<u32>,
    /// Seconds an execution in progress may take.
    #[arg(long)]
    pub timeout: Option<u32>,
    /// `upgrade` (default) or `verify`.
    #[arg(long, value_parser = wire_enum::<JobKind>)]
    pub kind: Option<JobKind>,
    /// Create it without starting it (`updraft job start ID` later).
    #[arg(long)]
    pub no_start: bool,
    /// A JSON file with more fields of the job.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

impl JobCreate {
    /// The request: `--spec FILE` read as a job's fields, the flags given over it.
    fn body(self) -> anyhow::Result<JobIn> {
        let mut spec = match &self.spec {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let value: Value =
                    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
                anyhow::ensure!(value.is_object(), "{} is not a JSON object", path.display());
                value
            }
            None => json!({}),
        };
        spec["firmware"] = json!(self.firmware);
        let source = self.spec.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let mut job: JobIn =
            serde_json::from_value(spec).with_context(|| format!("{source} does not describe a job"))?;
        let devices = ids(self.devices, self.from)?;
        let given = |list: Vec<String>, from_spec: &mut Vec<String>| {
            if !list.is_empty() {
                *from_spec = list;
            }
        };
        given(devices, &mut job.devices);
        given(self.groups, &mut job.groups);
        given(self.source_versions, &mut job.source_versions);
        given(self.include, &mut job.include);
        given(self.exclude, &mut job.exclude);
        job.all |= self.all;
        if let Some(f) = self.filter {
            job.filter = Some(Value::String(f));
        }
        job.filter_id = self.filter_id.or(job.filter_id);
        job.gray_percent = self.gray_percent.or(job.gray_percent);
        if self.continuous {
            job.recurrence = Some(updraft_core::rollout::Recurrence::Continuous);
        }
        if self.no_push {
            job.push = Some(false);
            job.allow_device_request = true;
        }
        job.allow_device_request |= self.allow_device_request;
        job.consent_required |= self.consent_required;
        job.max_concurrency = self.max_concurrency.or(job.max_concurrency);
        job.max_per_minute = self.max_per_minute.or(job.max_per_minute);
        if self.retries.is_some() || self.retry_interval.is_some() {
            job.retry = Some(RetryIn {
                count: Some(self.retries.unwrap_or(0)),
                interval_minutes: Some(self.retry_interval.unwrap_or(0)),
            });
        }
        job.timeout_seconds = self.timeout.or(job.timeout_seconds);
        job.kind = self.kind.or(job.kind);
        if self.no_start {
            job.start = Some(false);
        }
        job.id = self.id.or(job.id);
        job.name = self.name.or(job.name);
        job.description = self.description.or(job.description);
        Ok(job)
    }
}

/// A filter given on the command line: its text, a JSON file, or a saved filter's id.
#[derive(Args, Debug, Clone)]
pub struct FilterArg {
    /// The filter's text form, e.g. 'product == "thermo-x" and fw.host < "2.0.0"'.
    pub query: Option<String>,
    /// A file with the filter's JSON form.
    #[arg(long, conflicts_with = "query")]
    pub json_file: Option<PathBuf>,
    /// A saved filter's id.
    #[arg(long, conflicts_with_all = ["query", "json_file"])]
    pub id: Option<String>,
}

impl FilterArg {
    fn body(&self) -> anyhow::Result<FilterSpecIn> {
        let mut body = FilterSpecIn::default();
        match (&self.query, &self.json_file, &self.id) {
            (Some(q), _, _) => body.query = Some(q.clone()),
            (_, Some(f), _) => {
                let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
                body.filter = Some(serde_json::from_str(&text).context("the file is not JSON")?);
            }
            (_, _, Some(id)) => body.filter_id = Some(id.clone()),
            _ => anyhow::bail!("give a filter: its text, --json-file FILE or --id SAVED_FILTER"),
        }
        Ok(body)
    }
}

#[derive(Subcommand, Debug)]
pub enum FilterCmd {
    /// How many devices a filter matches.
    Estimate(FilterArg),
    /// The first devices a filter matches.
    Preview {
        #[command(flatten)]
        filter: FilterArg,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Save a filter under a name.
    Create {
        #[command(flatten)]
        filter: FilterArg,
        #[arg(long)]
        name: String,
        #[arg(long = "filter-id")]
        filter_id: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    List(Paging),
    /// A saved filter, in both forms.
    Show {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GatewayCmd {
    List,
    /// Create a gateway token; prints it once.
    Create {
        #[arg(long)]
        name: Option<String>,
    },
    Delete {
        id: String,
    },
}

/// Paging options shared by lists.
#[derive(Args, Debug, Clone)]
pub struct Paging {
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Sort field; prefix `-` for descending.
    #[arg(long, allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Case-insensitive text search.
    #[arg(long)]
    pub search: Option<String>,
}

impl Paging {
    fn query(&self) -> ListParams {
        ListParams {
            limit: Some(self.limit),
            offset: Some(self.offset),
            sort: self.sort.clone(),
            search: self.search.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ProductCmd {
    List(Paging),
    Show {
        key: String,
    },
    Create {
        key: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// `semver` (default) or `free`.
        #[arg(long, value_parser = wire_enum::<updraft_core::VersionScheme>)]
        version_scheme: Option<updraft_core::VersionScheme>,
    },
    Update {
        key: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_parser = wire_enum::<updraft_core::VersionScheme>)]
        version_scheme: Option<updraft_core::VersionScheme>,
    },
    Delete {
        key: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum FirmwareCmd {
    /// Upload one image made of one or more files (components).
    Upload {
        /// The files; each becomes a component (one file: component `host`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        product: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        release_notes: Option<String>,
        /// Metadata as key=value (repeatable).
        #[arg(long = "meta", value_parser = parse_kv)]
        metadata: Vec<(String, String)>,
        /// Upgrade jobs may use the image only after a verify job succeeded.
        #[arg(long)]
        needs_verification: bool,
        /// Component of a file as FILE_NAME=COMPONENT (repeatable).
        #[arg(long = "component", value_parser = parse_kv)]
        components: Vec<(String, String)>,
    },
    List {
        #[command(flatten)]
        paging: Paging,
        #[arg(long)]
        product: Option<String>,
    },
    Show {
        id: String,
    },
    /// Download a file of an image and check its SHA-256.
    Download {
        id: String,
        /// Which file (default: the image's only or first file).
        #[arg(long)]
        file: Option<String>,
        /// Where to write it (default: the file's name in the current directory).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Register one device; prints its token once.
    Add {
        id: String,
        #[arg(long)]
        product: String,
        /// Installed firmware as component=version (repeatable).
        #[arg(long = "firmware", value_parser = parse_kv)]
        firmware: Vec<(String, String)>,
        #[arg(long)]
        hardware_version: Option<String>,
        #[arg(long)]
        module_model: Option<String>,
        #[arg(long)]
        module_version: Option<String>,
        #[arg(long)]
        template_id: Option<String>,
        /// Property as name=value; numbers and true/false are typed (repeatable).
        #[arg(long = "prop", value_parser = parse_kv)]
        properties: Vec<(String, String)>,
        /// Metadata as key=value (repeatable).
        #[arg(long = "meta", value_parser = parse_kv)]
        metadata: Vec<(String, String)>,
    },
    /// Register many devices from an NDJSON (`.ndjson`, `.jsonl`) or CSV (`.csv`) file, all or nothing.
    Import {
        file: PathBuf,
        /// Where to write the issued tokens as CSV (id,token) [default: <file>.tokens.csv].
        #[arg(long)]
        tokens_out: Option<PathBuf>,
        /// The import's Idempotency-Key [default: a new random one]: a retry
        /// with the same key and file answers as the first import did.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Issue a new token for a device (its old token stops working); prints it once.
    Token {
        id: String,
    },
    List {
        #[command(flatten)]
        paging: Paging,
        #[arg(long)]
        product: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// Only devices matching this filter (text form, see docs/filters.md).
        #[arg(long, short = 'q')]
        query: Option<String>,
    },
    Show {
        id: String,
    },
    /// Change attributes; maps given here replace the device's.
    Update {
        id: String,
        #[arg(long = "firmware", value_parser = parse_kv)]
        firmware: Vec<(String, String)>,
        #[arg(long)]
        hardware_version: Option<String>,
        #[arg(long = "prop", value_parser = parse_kv)]
        properties: Vec<(String, String)>,
        #[arg(long = "meta", value_parser = parse_kv)]
        metadata: Vec<(String, String)>,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    List(Paging),
    Show {
        id: String,
    },
    Create {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        product: Option<String>,
    },
    Delete {
        id: String,
    },
    /// Add devices (ids as arguments, or one per line with --from FILE).
    Add {
        id: String,
        devices: Vec<String>,
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Remove devices (ids as arguments, or one per line with --from FILE).
    Remove {
        id: String,
        devices: Vec<String>,
        #[arg(long)]
        from: Option<PathBuf>,
    },
    Members {
        id: String,
        #[command(flatten)]
        paging: Paging,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    List,
    /// Create a tenant; prints its first admin key once.
    Create {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    List,
    /// Create a key; prints its token once.
    Create {
        /// admin, operator, viewer or consent.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// When the key stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z) [default: never].
        #[arg(long)]
        expires_at: Option<jiff::Timestamp>,
        /// Issue the key in this tenant (the server administrator's key only).
        #[arg(long)]
        tenant: Option<String>,
    },
    Delete {
        id: String,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("expected key=value, got `{s}`"))
}

/// A value of one of the API's string enums (`semver`, `verify`, …), read as the server reads it.
fn wire_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    T::deserialize(serde_json::Value::from(s)).map_err(|e| e.to_string())
}

/// A property's value: `true`/`false` and finite numbers are typed, anything else is text.
fn typed(v: &str) -> PropertyValue {
    match v {
        "true" => PropertyValue::Bool(true),
        "false" => PropertyValue::Bool(false),
        _ => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(PropertyValue::Number)
            .unwrap_or_else(|| PropertyValue::String(v.to_owned())),
    }
}

fn map(kv: &[(String, String)]) -> BTreeMap<String, String> {
    kv.iter().cloned().collect()
}

fn ids(args: Vec<String>, from: Option<PathBuf>) -> anyhow::Result<Vec<String>> {
    let mut ids = args;
    if let Some(path) = from {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        ids.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned));
    }
    Ok(ids)
}

pub async fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Product { conn, cmd } => product(Client::new(&conn)?, conn.json, cmd).await,
        ClientCommand::Firmware { conn, cmd } => firmware(Client::new(&conn)?, conn.json, cmd).await,
        ClientCommand::Device { conn, cmd } => device(Client::new(&conn)?, conn.json, cmd).await,
        ClientCommand::Group { conn, cmd } => group(Client::new(&conn)?, conn.json, cmd).await,
        ClientCommand::Tenant { conn, cmd } => tenant(Client::new(&conn)?, conn.json, cmd).await,
        ClientCommand::Key { conn, cmd } => key(Client::new(&conn)?, conn.json, cmd).await,
        ClientCommand::Job { conn, cmd } => job(Client::new(&conn)?, conn.json, cmd).await,
        ClientCommand::GatewayToken { conn, cmd } => gateway(Client::new(&conn)?, conn.json, cmd).await,
        ClientCommand::Filter { conn, cmd } => filter(Client::new(&conn)?, conn.json, cmd).await,
    }
}

const PRODUCT_COLUMNS: &[(&str, &str)] =
    &[("KEY", "key"), ("NAME", "name"), ("VERSIONS", "version_scheme"), ("CREATED", "created_at")];
const FIRMWARE_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("PRODUCT", "product"),
    ("VERSION", "version"),
    ("SIZE", "size"),
    ("FILES", "files"),
    ("CREATED", "created_at"),
];
const DEVICE_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("PRODUCT", "product"),
    ("FIRMWARE", "firmware"),
    ("STATUS", "connection_status"),
    ("LAST SEEN", "last_seen_at"),
];
const GROUP_COLUMNS: &[(&str, &str)] =
    &[("ID", "id"), ("NAME", "name"), ("PRODUCT", "product"), ("MEMBERS", "member_count")];
const KEY_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("ROLE", "role"),
    ("NAME", "name"),
    ("PREFIX", "token_prefix"),
    ("CREATED", "created_at"),
    ("EXPIRES", "expires_at"),
];

fn show(json: bool, v: &Value, columns: &[(&str, &str)]) {
    if json { print_json(v) } else { Table::new(columns).one(v) }
}

fn show_list(json: bool, v: &Value, columns: &[(&str, &str)]) {
    if json { print_json(v) } else { Table::new(columns).page(v) }
}

async fn product(c: Client, json: bool, cmd: ProductCmd) -> anyhow::Result<()> {
    match cmd {
        ProductCmd::List(p) => show_list(json, &c.get("/api/v1/products", &p.query()).await?, PRODUCT_COLUMNS),
        ProductCmd::Show { key } => show(json, &c.get(&format!("/api/v1/products/{key}"), &()).await?, PRODUCT_COLUMNS),
        ProductCmd::Create { key, name, description, version_scheme } => {
            let body = ProductIn { key, name, description, version_scheme };
            show(json, &c.send("POST", "/api/v1/products", &body).await?, PRODUCT_COLUMNS)
        }
        ProductCmd::Update { key, name, description, version_scheme } => {
            let body = ProductPatch { name, description: description.map(Some), version_scheme };
            show(json, &c.send("PATCH", &format!("/api/v1/products/{key}"), &body).await?, PRODUCT_COLUMNS)
        }
        ProductCmd::Delete { key } => {
            c.delete(&format!("/api/v1/products/{key}")).await?;
            eprintln!("product {key} deleted");
        }
    }
    Ok(())
}

async fn firmware(c: Client, json: bool, cmd: FirmwareCmd) -> anyhow::Result<()> {
    match cmd {
        FirmwareCmd::Upload {
            files,
            product,
            version,
            id,
            name,
            release_notes,
            metadata,
            needs_verification,
            components,
        } => {
            let mut fields = vec![("product", product), ("version", version)];
            for (k, v) in [("id", id), ("name", name), ("release_notes", release_notes)] {
                if let Some(v) = v {
                    fields.push((k, v));
                }
            }
            if !metadata.is_empty() {
                fields.push(("metadata", serde_json::to_string(&map(&metadata))?));
            }
            if needs_verification {
                fields.push(("needs_verification", "true".into()));
            }
            if !components.is_empty() {
                let specs: Vec<FileSpec> = components
                    .into_iter()
                    .map(|(name, component)| FileSpec { name, component: Some(component), version: None })
                    .collect();
                fields.push(("files", serde_json::to_string(&specs)?));
            }
            let fw = c.upload_firmware(&fields, &files).await?;
            show(json, &fw, FIRMWARE_COLUMNS);
        }
        FirmwareCmd::List { paging, product } => {
            let p = paging.query();
            let q = FirmwareListParams { limit: p.limit, offset: p.offset, sort: p.sort, search: p.search, product };
            show_list(json, &c.get("/api/v1/firmware", &q).await?, FIRMWARE_COLUMNS)
        }
        FirmwareCmd::Show { id } => {
            let fw = c.get(&format!("/api/v1/firmware/{id}"), &()).await?;
            if json {
                print_json(&fw)
            } else {
                Table::new(FIRMWARE_COLUMNS).one(&fw);
                println!();
                Table::new(&[
                    ("FILE", "name"),
                    ("COMPONENT", "component"),
                    ("VERSION", "version"),
                    ("SIZE", "size"),
                    ("SHA256", "sha256"),
                ])
                .rows(fw["files"].as_array().map(Vec::as_slice).unwrap_or_default());
            }
        }
        FirmwareCmd::Download { id, file, output } => {
            let fw: FirmwareOut = read(&c.get(&format!("/api/v1/firmware/{id}"), &()).await?)?;
            let chosen = match &file {
                Some(name) => fw
                    .files
                    .iter()
                    .find(|f| &f.name == name)
                    .with_context(|| format!("image {id} has no file `{name}`"))?,
                None => fw.files.first().context("the image has no files")?,
            };
            let name = &chosen.name;
            let dest = output.unwrap_or_else(|| PathBuf::from(name));
            let sha256 = c.download(&format!("/api/v1/firmware/{id}/files/{name}"), &dest).await?;
            anyhow::ensure!(
                chosen.sha256 == sha256,
                "SHA-256 mismatch: the server says {}, the download is {sha256}",
                chosen.sha256
            );
            if json {
                print_json(&json!({"file": dest, "sha256": sha256}));
            } else {
                println!("{}  {}", sha256, dest.display());
            }
        }
        FirmwareCmd::Delete { id } => {
            c.delete(&format!("/api/v1/firmware/{id}")).await?;
            eprintln!("firmware {id} deleted");
        }
    }
    Ok(())
}

async fn device(c: Client, json: bool, cmd: DeviceCmd) -> anyhow::Result<()> {
    match cmd {
        DeviceCmd::Add {
            id,
            product,
            firmware,
            hardware_version,
            module_model,
            module_version,
            template_id,
            properties,
            metadata,
        } => {
            let body = DeviceIn {
                id,
                product,
                firmware: map(&firmware),
                hardware_version,
                module_model,
                module_version,
                template_id,
                properties: properties.iter().map(|(k, v)| (k.clone(), typed(v))).collect(),
                metadata: map(&metadata),
                ..DeviceIn::default()
            };
            let d = c.send("POST", "/api/v1/devices", &body).await?;
            if json {
                print_json(&d);
            } else {
                Table::new(DEVICE_COLUMNS).one(&d);
                println!("\ntoken (shown once): {}", d["token"].as_str().unwrap_or(""));
            }
        }
        DeviceCmd::Token { id } => {
            let out = c.send("POST", &format!("/api/v1/devices/{id}/token"), &json!({})).await?;
            if json {
                print_json(&out);
            } else {
                println!("new token for {id} (shown once): {}", out["token"].as_str().unwrap_or(""));
            }
        }
        DeviceCmd::Import { file, tokens_out, idempotency_key } => {
            let content_type = match file.extension().and_then(|e| e.to_str()) {
                Some("csv") => "text/csv",
                _ => "application/x-ndjson",
            };
            let body = tokio::fs::read(&file).await.with_context(|| format!("reading {}", file.display()))?;
            let key = idempotency_key.unwrap_or_else(|| {
                let mut b = [0u8; 16];
                getrandom::fill(&mut b).expect("the operating system's random source works");
                format!("updraft-cli-{}", hex::encode(b))
            });
            let out: ImportOut = read(&c.post_bytes_once("/api/v1/devices/import", content_type, body, &key).await?)?;
            let dest = tokens_out.unwrap_or_else(|| {
                let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("devices");
                PathBuf::from(format!("{stem}.tokens.csv"))
            });
            let mut csv = String::from("id,token\n");
            for d in &out.devices {
                csv.push_str(&format!("{},{}\n", d.id, d.token));
            }
            std::fs::write(&dest, csv).with_context(|| format!("writing tokens to {}", dest.display()))?;
            if json {
                print_json(&json!({"created": out.created, "tokens": dest}));
            } else {
                println!("{} devices imported; their tokens are in {}", out.created, dest.display());
            }
        }
        DeviceCmd::List { paging, product, group, query } => {
            let p = paging.query();
            let q = DeviceListParams {
                limit: p.limit,
                offset: p.offset,
                sort: p.sort,
                search: p.search,
                product,
                group,
                q: query,
            };
            show_list(json, &c.get("/api/v1/devices", &q).await?, DEVICE_COLUMNS)
        }
        DeviceCmd::Show { id } => {
            let d = c.get(&format!("/api/v1/devices/{id}"), &()).await?;
            if json { print_json(&d) } else { output::fields(&d) }
        }
        DeviceCmd::Update { id, firmware, hardware_version, properties, metadata } => {
            let body = DevicePatch {
                firmware: (!firmware.is_empty()).then(|| map(&firmware)),
                hardware_version: hardware_version.map(Some),
                properties: (!properties.is_empty())
                    .then(|| properties.iter().map(|(k, v)| (k.clone(), typed(v))).collect()),
                metadata: (!metadata.is_empty()).then(|| map(&metadata)),
                ..DevicePatch::default()
            };
            let d = c.send("PATCH", &format!("/api/v1/devices/{id}"), &body).await?;
            if json { print_json(&d) } else { output::fields(&d) }
        }
        DeviceCmd::Delete { id } => {
            c.delete(&format!("/api/v1/devices/{id}")).await?;
            eprintln!("device {id} deleted");
        }
    }
    Ok(())
}

async fn group(c: Client, json: bool, cmd: GroupCmd) -> anyhow::Result<()> {
    match cmd {
        GroupCmd::List(p) => show_list(json, &c.get("/api/v1/groups", &p.query()).await?, GROUP_COLUMNS),
        GroupCmd::Show { id } => show(json, &c.get(&format!("/api/v1/groups/{id}"), &()).await?, GROUP_COLUMNS),
        GroupCmd::Create { id, name, description, product } => {
            let body = GroupIn { name: name.unwrap_or_else(|| id.clone()), id: Some(id), description, product };
            show(json, &c.send("POST", "/api/v1/groups", &body).await?, GROUP_COLUMNS)
        }
        GroupCmd::Delete { id } => {
            c.delete(&format!("/api/v1/groups/{id}")).await?;
            eprintln!("group {id} deleted");
        }
        GroupCmd::Add { id, devices, from } => {
            let body = MembersIn { add: ids(devices, from)?, remove: vec![] };
            let out = c.send("POST", &format!("/api/v1/groups/{id}/members"), &body).await?;
            if json {
                print_json(&out)
            } else {
                let out: MembersOut = read(&out)?;
                println!("{} added; the group has {} members", out.added, out.member_count)
            }
        }
        GroupCmd::Remove { id, devices, from } => {
            let body = MembersIn { add: vec![], remove: ids(devices, from)? };
            let out = c.send("POST", &format!("/api/v1/groups/{id}/members"), &body).await?;
            if json {
                print_json(&out)
            } else {
                let out: MembersOut = read(&out)?;
                println!("{} removed; the group has {} members", out.removed, out.member_count)
            }
        }
        GroupCmd::Members { id, paging } => {
            show_list(json, &c.get(&format!("/api/v1/groups/{id}/members"), &paging.query()).await?, DEVICE_COLUMNS)
        }
    }
    Ok(())
}

async fn tenant(c: Client, json: bool, cmd: TenantCmd) -> anyhow::Result<()> {
    match cmd {
        TenantCmd::List => show_list(
            json,
            &c.get("/api/v1/tenants", &()).await?,
            &[("ID", "id"), ("NAME", "name"), ("CREATED", "created_at")],
        ),
        TenantCmd::Create { name } => {
            let out = c.send("POST", "/api/v1/tenants", &TenantIn { name }).await?;
            if json {
                print_json(&out)
            } else {
                let out: TenantCreated = read(&out)?;
                println!("tenant {} created\nits first admin key (shown once): {}", out.tenant.id, out.token);
            }
        }
    }
    Ok(())
}

async fn key(c: Client, json: bool, cmd: KeyCmd) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::List => show_list(json, &c.get("/api/v1/keys", &()).await?, KEY_COLUMNS),
        KeyCmd::Create { role, name, expires_at, tenant } => {
            let path = match tenant {
                Some(t) => format!("/api/v1/tenants/{t}/keys"),
                None => "/api/v1/keys".to_owned(),
            };
            let out = c.send("POST", &path, &KeyIn { role, name, expires_at }).await?;
            if json {
                print_json(&out)
            } else {
                let key: KeyOut = read(&out)?;
                println!(
                    "key {} ({}) created\ntoken (shown once): {}",
                    key.id,
                    key.role.as_str(),
                    key.token.unwrap_or_default()
                )
            }
        }
        KeyCmd::Delete { id } => {
            c.delete(&format!("/api/v1/keys/{id}")).await?;
            eprintln!("key {id} deleted");
        }
    }
    Ok(())
}

const JOB_COLUMNS: &[(&str, &str)] =
    &[("ID", "id"), ("STATE", "state"), ("FIRMWARE", "firmware"), ("PRODUCT", "product"), ("CREATED", "created_at")];
const EXECUTION_COLUMNS: &[(&str, &str)] = &[
    ("ACTION", "action_id"),
    ("DEVICE", "device"),
    ("STATE", "state"),
    ("ATTEMPT", "attempt"),
    ("UPDATED", "updated_at"),
];

async fn job(c: Client, json: bool, cmd: JobCmd) -> anyhow::Result<()> {
    let show = |j: &serde_json::Value| if json { print_json(j) } else { output::fields(j) };
    match cmd {
        JobCmd::Create(create) => {
            let j = c.send("POST", "/api/v1/jobs", &create.body()?).await?;
            if json { print_json(&j) } else { Table::new(JOB_COLUMNS).one(&j) }
        }
        JobCmd::List { state, paging } => {
            let p = paging.query();
            let q = JobListParams { limit: p.limit, offset: p.offset, sort: p.sort, search: p.search, state };
            show_list(json, &c.get("/api/v1/jobs", &q).await?, JOB_COLUMNS)
        }
        JobCmd::Show { id } => show(&c.get(&format!("/api/v1/jobs/{id}"), &()).await?),
        JobCmd::Estimate { id } => show(&c.get(&format!("/api/v1/jobs/{id}/targets/estimate"), &()).await?),
        JobCmd::Start { id } => show(&c.send("POST", &format!("/api/v1/jobs/{id}/start"), &json!({})).await?),
        JobCmd::Pause { id } => show(&c.send("POST", &format!("/api/v1/jobs/{id}/pause"), &json!({})).await?),
        JobCmd::Resume { id } => show(&c.send("POST", &format!("/api/v1/jobs/{id}/resume"), &json!({})).await?),
        JobCmd::Cancel { id } => show(&c.send("POST", &format!("/api/v1/jobs/{id}/cancel"), &json!({})).await?),
        JobCmd::Schedule { id, file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let schedule: Option<ScheduleIn> =
                serde_json::from_str(&text).context("the schedule is not a schedule's JSON (or `null`)")?;
            show(&c.send("PUT", &format!("/api/v1/jobs/{id}/schedule"), &schedule).await?)
        }
        JobCmd::Watch { id, every } => watch(&c, &id, every, json).await?,
        JobCmd::Executions { id, state, paging } => {
            let p = paging.query();
            let q = ExecutionListParams { limit: p.limit, offset: p.offset, sort: p.sort, search: p.search, state };
            show_list(json, &c.get(&format!("/api/v1/jobs/{id}/executions"), &q).await?, EXECUTION_COLUMNS)
        }
        JobCmd::Device { id } => {
            let page = c.get(&format!("/api/v1/devices/{id}/executions"), &()).await?;
            if json {
                print_json(&page)
            } else {
                for e in page["items"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    Table::new(&[("JOB", "job"), ("ACTION", "action_id"), ("STATE", "state"), ("ATTEMPT", "attempt")])
                        .one(e);
                    Table::new(&[
                        ("AT", "at"),
                        ("STATE", "state"),
                        ("SOURCE", "source"),
                        ("REPORT", "report"),
                        ("DETAILS", "details"),
                    ])
                    .rows(e["history"].as_array().map(Vec::as_slice).unwrap_or_default());
                    println!();
                }
            }
        }
    }
    Ok(())
}

/// Redraws a job's progress until it ends: a bar of finished executions, the
/// counts per state, the current rate and the ETA. With `--json`, one JSON
/// line per refresh.
async fn watch(c: &Client, id: &str, every: u64, json: bool) -> anyhow::Result<()> {
    let bar = if json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(0) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    loop {
        let answer = c.get(&format!("/api/v1/jobs/{id}"), &()).await?;
        let j: JobOut = read(&answer)?;
        let state = j.state.as_str();
        if json {
            println!("{}", serde_json::to_string(&answer)?);
        } else if let Some(p) = &j.progress {
            bar.set_length(p.total);
            bar.set_position(p.finished);
            bar.set_prefix(format!("{id} {state}"));
            let counts: Vec<String> = j.counts.iter().flatten().map(|(k, v)| format!("{k} {v}")).collect();
            let eta = p.eta.map(|e| format!(", eta {e}")).unwrap_or_default();
            bar.set_message(format!("{} | {}/min{eta}", counts.join(", "), p.current_rate_per_minute));
        }
        if matches!(state, "completed" | "canceled" | "aborted") {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(every.max(1))).await;
    }
}

async fn gateway(c: Client, json: bool, cmd: GatewayCmd) -> anyhow::Result<()> {
    match cmd {
        GatewayCmd::List => show_list(
            json,
            &c.get("/api/v1/gateway-tokens", &()).await?,
            &[("ID", "id"), ("NAME", "name"), ("CREATED", "created_at")],
        ),
        GatewayCmd::Create { name } => {
            let out = c.send("POST", "/api/v1/gateway-tokens", &GatewayTokenIn { name }).await?;
            if json {
                print_json(&out)
            } else {
                let t: GatewayTokenOut = read(&out)?;
                println!("gateway token {} created\ntoken (shown once): {}", t.id, t.token.unwrap_or_default())
            }
        }
        GatewayCmd::Delete { id } => {
            c.delete(&format!("/api/v1/gateway-tokens/{id}")).await?;
            eprintln!("gateway token {id} deleted");
        }
    }
    Ok(())
}

const FILTER_COLUMNS: &[(&str, &str)] =
    &[("ID", "id"), ("NAME", "name"), ("QUERY", "query"), ("UPDATED", "updated_at")];

async fn filter(c: Client, json: bool, cmd: FilterCmd) -> anyhow::Result<()> {
    match cmd {
        FilterCmd::Estimate(f) => {
            let out = c.send("POST", "/api/v1/filters/estimate", &f.body()?).await?;
            if json { print_json(&out) } else { println!("{} devices match", read::<FilterEstimateOut>(&out)?.count) }
        }
        FilterCmd::Preview { filter, limit } => {
            let FilterSpecIn { query, filter, filter_id } = filter.body()?;
            let body = PreviewIn { query, filter, filter_id, limit: Some(limit) };
            let out = c.send("POST", "/api/v1/filters/preview", &body).await?;
            if json {
                print_json(&out)
            } else {
                Table::new(DEVICE_COLUMNS).rows(out["items"].as_array().map(Vec::as_slice).unwrap_or_default())
            }
        }
        FilterCmd::Create { filter, name, filter_id, description } => {
            let FilterSpecIn { query, filter, filter_id: saved } = filter.body()?;
            if saved.is_some() {
                anyhow::bail!("a saved filter is created from a text or a JSON form, not from another saved filter");
            }
            let body = SavedFilterIn { id: filter_id, name, description, query, filter };
            show(json, &c.send("POST", "/api/v1/filters", &body).await?, FILTER_COLUMNS)
        }
        FilterCmd::List(p) => show_list(json, &c.get("/api/v1/filters", &p.query()).await?, FILTER_COLUMNS),
        FilterCmd::Show { id } => {
            let f = c.get(&format!("/api/v1/filters/{id}"), &()).await?;
            if json { print_json(&f) } else { output::fields(&f) }
        }
        FilterCmd::Delete { id } => {
            c.delete(&format!("/api/v1/filters/{id}")).await?;
            eprintln!("filter {id} deleted");
        }
    }
    Ok(())
}
