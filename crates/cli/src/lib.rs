//! The `updraft` client commands: every management call, over HTTP, with
//! human tables by default and `--json` for scripts.

mod client;
mod output;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

pub use client::Client;
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
    #[arg(long)]
    pub kind: Option<String>,
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
    fn body(self) -> anyhow::Result<serde_json::Value> {
        let mut body = match &self.spec {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text).with_context(|| format!("{} is not a JSON object", path.display()))?
            }
            None => json!({}),
        };
        let set = |body: &mut serde_json::Value, key: &str, v: serde_json::Value| {
            if !v.is_null() && v != json!(false) && v != json!([]) {
                body[key] = v;
            }
        };
        let devices = ids(self.devices, self.from)?;
        set(&mut body, "firmware", json!(self.firmware));
        set(&mut body, "devices", json!(devices));
        set(&mut body, "all", json!(self.all));
        set(&mut body, "groups", json!(self.groups));
        set(&mut body, "filter", json!(self.filter));
        set(&mut body, "filter_id", json!(self.filter_id));
        set(&mut body, "gray_percent", json!(self.gray_percent));
        set(&mut body, "source_versions", json!(self.source_versions));
        set(&mut body, "include", json!(self.include));
        set(&mut body, "exclude", json!(self.exclude));
        if self.continuous {
            body["recurrence"] = json!("continuous");
        }
        if self.no_push {
            body["push"] = json!(false);
            body["allow_device_request"] = json!(true);
        }
        set(&mut body, "allow_device_request", json!(self.allow_device_request));
        set(&mut body, "consent_required", json!(self.consent_required));
        set(&mut body, "max_concurrency", json!(self.max_concurrency));
        set(&mut body, "max_per_minute", json!(self.max_per_minute));
        if self.retries.is_some() || self.retry_interval.is_some() {
            body["retry"] =
                json!({"count": self.retries.unwrap_or(0), "interval_minutes": self.retry_interval.unwrap_or(0)});
        }
        set(&mut body, "timeout_seconds", json!(self.timeout));
        set(&mut body, "kind", json!(self.kind));
        if self.no_start {
            body["start"] = json!(false);
        }
        set(&mut body, "id", json!(self.id));
        set(&mut body, "name", json!(self.name));
        set(&mut body, "description", json!(self.description));
        Ok(body)
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
    fn body(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        let mut body = serde_json::Map::new();
        match (&self.query, &self.json_file, &self.id) {
            (Some(q), _, _) => {
                body.insert("query".into(), q.clone().into());
            }
            (_, Some(f), _) => {
                let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
                body.insert("filter".into(), serde_json::from_str(&text).context("the file is not JSON")?);
            }
            (_, _, Some(id)) => {
                body.insert("filter_id".into(), id.clone().into());
            }
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
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("limit", self.limit.to_string()), ("offset", self.offset.to_string())];
        if let Some(s) = &self.sort {
            q.push(("sort", s.clone()));
        }
        if let Some(s) = &self.search {
            q.push(("search", s.clone()));
        }
        q
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
        #[arg(long)]
        version_scheme: Option<String>,
    },
    Update {
        key: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        version_scheme: Option<String>,
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
        expires_at: Option<String>,
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

fn typed(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .unwrap_or_else(|| Value::String(v.to_owned())),
    }
}

fn map(kv: &[(String, String)]) -> Value {
    Value::Object(kv.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
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
        ProductCmd::Show { key } => show(json, &c.get(&format!("/api/v1/products/{key}"), &[]).await?, PRODUCT_COLUMNS),
        ProductCmd::Create { key, name, description, version_scheme } => {
            let body = json!({"key": key, "name": name, "description": description, "version_scheme": version_scheme});
            show(json, &c.send("POST", "/api/v1/products", &body).await?, PRODUCT_COLUMNS)
        }
        ProductCmd::Update { key, name, description, version_scheme } => {
            let mut body = serde_json::Map::new();
            if let Some(v) = name {
                body.insert("name".into(), v.into());
            }
            if let Some(v) = description {
                body.insert("description".into(), v.into());
            }
            if let Some(v) = version_scheme {
                body.insert("version_scheme".into(), v.into());
            }
            show(
                json,
                &c.send("PATCH", &format!("/api/v1/products/{key}"), &Value::Object(body)).await?,
                PRODUCT_COLUMNS,
            )
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
                fields.push(("metadata", map(&metadata).to_string()));
            }
            if needs_verification {
                fields.push(("needs_verification", "true".into()));
            }
            if !components.is_empty() {
                let specs: Vec<Value> = components.iter().map(|(n, c)| json!({"name": n, "component": c})).collect();
                fields.push(("files", Value::Array(specs).to_string()));
            }
            let fw = c.upload_firmware(&fields, &files).await?;
            show(json, &fw, FIRMWARE_COLUMNS);
        }
        FirmwareCmd::List { paging, product } => {
            let mut q = paging.query();
            if let Some(p) = product {
                q.push(("product", p));
            }
            show_list(json, &c.get("/api/v1/firmware", &q).await?, FIRMWARE_COLUMNS)
        }
        FirmwareCmd::Show { id } => {
            let fw = c.get(&format!("/api/v1/firmware/{id}"), &[]).await?;
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
            let fw = c.get(&format!("/api/v1/firmware/{id}"), &[]).await?;
            let files = fw["files"].as_array().cloned().unwrap_or_default();
            let chosen = match &file {
                Some(name) => files
                    .iter()
                    .find(|f| f["name"] == name.as_str())
                    .with_context(|| format!("image {id} has no file `{name}`"))?,
                None => files.first().context("the image has no files")?,
            };
            let name = chosen["name"].as_str().unwrap_or("firmware.bin");
            let dest = output.unwrap_or_else(|| PathBuf::from(name));
            let sha256 = c.download(&format!("/api/v1/firmware/{id}/files/{name}"), &dest).await?;
            anyhow::ensure!(
                chosen["sha256"].as_str() == Some(sha256.as_str()),
                "SHA-256 mismatch: the server says {}, the download is {sha256}",
                chosen["sha256"]
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
            let props: serde_json::Map<String, Value> = properties.iter().map(|(k, v)| (k.clone(), typed(v))).collect();
            let body = json!({
                "id": id, "product": product, "firmware": map(&firmware), "hardware_version": hardware_version,
                "module_model": module_model, "module_version": module_version, "template_id": template_id,
                "properties": props, "metadata": map(&metadata),
            });
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
            let out = c.post_bytes_once("/api/v1/devices/import", content_type, body, &key).await?;
            let dest = tokens_out.unwrap_or_else(|| {
                let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("devices");
                PathBuf::from(format!("{stem}.tokens.csv"))
            });
            let mut csv = String::from("id,token\n");
            for d in out["devices"].as_array().map(Vec::as_slice).unwrap_or_default() {
                csv.push_str(&format!("{},{}\n", d["id"].as_str().unwrap_or(""), d["token"].as_str().unwrap_or("")));
            }
            std::fs::write(&dest, csv).with_context(|| format!("writing tokens to {}", dest.display()))?;
            if json {
                print_json(&json!({"created": out["created"], "tokens": dest}));
            } else {
                println!("{} devices imported; their tokens are in {}", out["created"], dest.display());
            }
        }
        DeviceCmd::List { paging, product, group, query } => {
            let mut q = paging.query();
            if let Some(f) = query {
                q.push(("q", f));
            }
            if let Some(p) = product {
                q.push(("product", p));
            }
            if let Some(g) = group {
                q.push(("group", g));
            }
            show_list(json, &c.get("/api/v1/devices", &q).await?, DEVICE_COLUMNS)
        }
        DeviceCmd::Show { id } => {
            let d = c.get(&format!("/api/v1/devices/{id}"), &[]).await?;
            if json { print_json(&d) } else { output::fields(&d) }
        }
        DeviceCmd::Update { id, firmware, hardware_version, properties, metadata } => {
            let mut body = serde_json::Map::new();
            if !firmware.is_empty() {
                body.insert("firmware".into(), map(&firmware));
            }
            if let Some(h) = hardware_version {
                body.insert("hardware_version".into(), h.into());
            }
            if !properties.is_empty() {
                body.insert(
                    "properties".into(),
                    Value::Object(properties.iter().map(|(k, v)| (k.clone(), typed(v))).collect()),
                );
            }
            if !metadata.is_empty() {
                body.insert("metadata".into(), map(&metadata));
            }
            let d = c.send("PATCH", &format!("/api/v1/devices/{id}"), &Value::Object(body)).await?;
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
        GroupCmd::Show { id } => show(json, &c.get(&format!("/api/v1/groups/{id}"), &[]).await?, GROUP_COLUMNS),
        GroupCmd::Create { id, name, description, product } => {
            let body = json!({"id": id, "name": name.unwrap_or_else(|| id.clone()), "description": description, "product": product});
            show(json, &c.send("POST", "/api/v1/groups", &body).await?, GROUP_COLUMNS)
        }
        GroupCmd::Delete { id } => {
            c.delete(&format!("/api/v1/groups/{id}")).await?;
            eprintln!("group {id} deleted");
        }
        GroupCmd::Add { id, devices, from } => {
            let body = json!({"add": ids(devices, from)?});
            let out = c.send("POST", &format!("/api/v1/groups/{id}/members"), &body).await?;
            if json {
                print_json(&out)
            } else {
                println!("{} added; the group has {} members", out["added"], out["member_count"])
            }
        }
        GroupCmd::Remove { id, devices, from } => {
            let body = json!({"remove": ids(devices, from)?});
            let out = c.send("POST", &format!("/api/v1/groups/{id}/members"), &body).await?;
            if json {
                print_json(&out)
            } else {
                println!("{} removed; the group has {} members", out["removed"], out["member_count"])
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
            &c.get("/api/v1/tenants", &[]).await?,
            &[("ID", "id"), ("NAME", "name"), ("CREATED", "created_at")],
        ),
        TenantCmd::Create { name } => {
            let out = c.send("POST", "/api/v1/tenants", &json!({"name": name})).await?;
            if json {
                print_json(&out)
            } else {
                println!(
                    "tenant {} created\nits first admin key (shown once): {}",
                    out["tenant"]["id"].as_str().unwrap_or(""),
                    out["token"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

async fn key(c: Client, json: bool, cmd: KeyCmd) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::List => show_list(json, &c.get("/api/v1/keys", &[]).await?, KEY_COLUMNS),
        KeyCmd::Create { role, name, expires_at, tenant } => {
            let path = match tenant {
                Some(t) => format!("/api/v1/tenants/{t}/keys"),
                None => "/api/v1/keys".to_owned(),
            };
            let out = c.send("POST", &path, &json!({"role": role, "name": name, "expires_at": expires_at})).await?;
            if json {
                print_json(&out)
            } else {
                println!(
                    "key {} ({}) created\ntoken (shown once): {}",
                    out["id"].as_str().unwrap_or(""),
                    out["role"].as_str().unwrap_or(""),
                    out["token"].as_str().unwrap_or("")
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
            let mut q = paging.query();
            if let Some(s) = state {
                q.push(("state", s));
            }
            show_list(json, &c.get("/api/v1/jobs", &q).await?, JOB_COLUMNS)
        }
        JobCmd::Show { id } => show(&c.get(&format!("/api/v1/jobs/{id}"), &[]).await?),
        JobCmd::Estimate { id } => show(&c.get(&format!("/api/v1/jobs/{id}/targets/estimate"), &[]).await?),
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
            let schedule: serde_json::Value = serde_json::from_str(&text).context("the schedule is not JSON")?;
            show(&c.send("PUT", &format!("/api/v1/jobs/{id}/schedule"), &schedule).await?)
        }
        JobCmd::Watch { id, every } => watch(&c, &id, every, json).await?,
        JobCmd::Executions { id, state, paging } => {
            let mut q = paging.query();
            if let Some(s) = state {
                q.push(("state", s));
            }
            show_list(json, &c.get(&format!("/api/v1/jobs/{id}/executions"), &q).await?, EXECUTION_COLUMNS)
        }
        JobCmd::Device { id } => {
            let page = c.get(&format!("/api/v1/devices/{id}/executions"), &[]).await?;
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
        let j = c.get(&format!("/api/v1/jobs/{id}"), &[]).await?;
        let state = j["state"].as_str().unwrap_or("?").to_owned();
        if json {
            println!("{}", serde_json::to_string(&j)?);
        } else {
            let p = &j["progress"];
            bar.set_length(p["total"].as_u64().unwrap_or(0));
            bar.set_position(p["finished"].as_u64().unwrap_or(0));
            bar.set_prefix(format!("{id} {state}"));
            let counts: Vec<String> = j["counts"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
                .unwrap_or_default();
            let eta = p["eta"].as_str().map(|e| format!(", eta {e}")).unwrap_or_default();
            bar.set_message(format!(
                "{} | {}/min{eta}",
                counts.join(", "),
                p["current_rate_per_minute"].as_u64().unwrap_or(0)
            ));
        }
        if matches!(state.as_str(), "completed" | "canceled" | "aborted") {
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
            &c.get("/api/v1/gateway-tokens", &[]).await?,
            &[("ID", "id"), ("NAME", "name"), ("CREATED", "created_at")],
        ),
        GatewayCmd::Create { name } => {
            let out = c.send("POST", "/api/v1/gateway-tokens", &json!({"name": name})).await?;
            if json {
                print_json(&out)
            } else {
                println!(
                    "gateway token {} created\ntoken (shown once): {}",
                    out["id"].as_str().unwrap_or(""),
                    out["token"].as_str().unwrap_or("")
                )
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
            let out = c.send("POST", "/api/v1/filters/estimate", &Value::Object(f.body()?)).await?;
            if json { print_json(&out) } else { println!("{} devices match", out["count"]) }
        }
        FilterCmd::Preview { filter, limit } => {
            let mut body = filter.body()?;
            body.insert("limit".into(), limit.into());
            let out = c.send("POST", "/api/v1/filters/preview", &Value::Object(body)).await?;
            if json {
                print_json(&out)
            } else {
                Table::new(DEVICE_COLUMNS).rows(out["items"].as_array().map(Vec::as_slice).unwrap_or_default())
            }
        }
        FilterCmd::Create { filter, name, filter_id, description } => {
            let mut body = filter.body()?;
            if body.contains_key("filter_id") {
                anyhow::bail!("a saved filter is created from a text or a JSON form, not from another saved filter");
            }
            body.insert("name".into(), name.into());
            if let Some(id) = filter_id {
                body.insert("id".into(), id.into());
            }
            if let Some(d) = description {
                body.insert("description".into(), d.into());
            }
            show(json, &c.send("POST", "/api/v1/filters", &Value::Object(body)).await?, FILTER_COLUMNS)
        }
        FilterCmd::List(p) => show_list(json, &c.get("/api/v1/filters", &p.query()).await?, FILTER_COLUMNS),
        FilterCmd::Show { id } => {
            let f = c.get(&format!("/api/v1/filters/{id}"), &[]).await?;
            if json { print_json(&f) } else { output::fields(&f) }
        }
        FilterCmd::Delete { id } => {
            c.delete(&format!("/api/v1/filters/{id}")).await?;
            eprintln!("filter {id} deleted");
        }
    }
    Ok(())
}
