//! The `updraft` client commands: every management call, over HTTP, with
//! human tables by default and `--json` for scripts.

mod client;
pub mod duration;
pub mod files;
mod output;
pub mod phase;

use std::path::PathBuf;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use updraft_api::devices::{DeviceIn, DeviceListParams, DevicePatch, ImportOut};
use updraft_api::filters::{FilterSpecIn, PreviewIn, SavedFilterIn};
use updraft_api::firmware::{FileSpec, FirmwareListParams, FirmwareOut};
use updraft_api::gateway_tokens::{GatewayTokenIn, GatewayTokenOut};
use updraft_api::groups::{GroupIn, MembersIn, MembersOut};
use updraft_api::jobs::{ExecutionListParams, ForceIn, JobIn, JobListParams, JobOut, RetryIn, ScheduleIn};
use updraft_api::keys::{KeyIn, KeyOut};
use updraft_api::products::{ProductIn, ProductPatch};
use updraft_api::tenants::{TenantCreated, TenantIn};
use updraft_api::users::{PasswordIn, UserIn};
use updraft_api::{ListParams, filters::EstimateOut as FilterEstimateOut};
use updraft_core::PropertyValue;
use updraft_core::job::JobKind;

pub use client::Client;
use client::read;
use output::{Table, print_json};

/// Where the server is, who is calling, and how to answer: accepted anywhere on the line.
#[derive(Args, Debug, Clone, Default)]
pub struct Conn {
    /// The server's URL, e.g. http://127.0.0.1:8080 (`http://` is assumed when no scheme is given)
    /// [default: http://127.0.0.1:8080].
    #[arg(long, env = "UPDRAFT_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// A management API key (`upd_k_…`); the agent takes a device token here too.
    #[arg(long, env = "UPDRAFT_TOKEN", hide_env_values = true, global = true, value_name = "KEY")]
    pub token: Option<String>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// Say more on stderr: each request with its answer's status and time (client commands), debug
    /// logs (serve, agent, sim).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl Conn {
    /// The server's base URL: as given, with `http://` when it has no scheme, without a trailing `/`.
    pub fn base_url(&self) -> String {
        base_url(self.server.as_deref().unwrap_or(DEFAULT_SERVER))
    }
}

/// Where the server is when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// A server's base URL as a user may give it (`127.0.0.1:8080`, `https://updraft.example/`).
pub fn base_url(given: &str) -> String {
    let given = given.trim().trim_end_matches('/');
    if given.contains("://") { given.to_owned() } else { format!("http://{given}") }
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Products (device models): create, list, show, update, delete.
    #[command(subcommand, after_help = "Example:\n  updraft product create thermo-x --name \"Thermostat X\"")]
    Product(ProductCmd),
    /// Firmware images: upload, list, show, download, delete.
    #[command(
        subcommand,
        after_help = "Examples:\n  updraft firmware upload fw-2.0.0.bin --product thermo-x --version 2.0.0\n  \
                      updraft firmware download thermo-x@2.0.0 -o back.bin\n\nA firmware is named by its id or as PRODUCT@VERSION."
    )]
    Firmware(FirmwareCmd),
    /// Devices: add, import, list, show, update, delete, token.
    #[command(
        subcommand,
        after_help = "Examples:\n  updraft device add dev-0001 --product thermo-x --firmware host=1.0.0 --prop region=eu\n  \
                      updraft device import fleet.csv\n  updraft device list -q 'prop.region == \"eu\"'"
    )]
    Device(DeviceCmd),
    /// Static device groups and their members.
    #[command(
        subcommand,
        after_help = "Examples:\n  updraft group create eu --product thermo-x\n  updraft group add eu --from fleet.csv.tokens.csv"
    )]
    Group(GroupCmd),
    /// Tenants (server administrator only).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// API keys of your tenant (admin only).
    #[command(subcommand, after_help = "Example:\n  updraft key create --role viewer --name dashboard")]
    Key(KeyCmd),
    /// Operators' accounts of your tenant, to sign in to the dashboard (admin only).
    #[command(
        subcommand,
        after_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | updraft user add ann --role operator"
    )]
    User(UserCmd),
    /// Jobs: deliver firmware to devices and follow each execution.
    #[command(
        subcommand,
        after_help = "Examples:\n  updraft job create --firmware thermo-x@2.0.0 dev-0001 dev-0002\n  \
                      updraft job create --firmware thermo-x@2.0.0 --all --gray-percent 10 --max-per-minute 600 \
                      --retries 2 --retry-interval 10m --timeout 2h --no-start\n  updraft job watch JOB_ID"
    )]
    Job(JobCmd),
    /// Device filters: estimate, preview, and saved filters (see docs/filters.md).
    #[command(
        subcommand,
        after_help = "Examples:\n  updraft filter estimate 'prop.region == \"eu\" and activated > 30d ago'\n  \
                      updraft filter create 'prop.region == \"eu\"' --name Europe --filter-id europe"
    )]
    Filter(FilterCmd),
    /// Gateway tokens for the device API (admin only).
    #[command(subcommand)]
    GatewayToken(GatewayCmd),
}

/// Job ids, positional.
#[derive(Args, Debug, Clone)]
pub struct JobId {
    /// The job's id.
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Create a job: which devices, how, how fast and when.
    #[command(after_long_help = JOB_CREATE_EXAMPLES)]
    Create(Box<JobCreate>),
    /// List jobs, newest first.
    List {
        /// Only jobs in this state (created, scheduled, running, paused, completed, canceled, aborted).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// A job's summary: state, counts, rate and ETA (--json: every field).
    Show(JobId),
    /// How many devices a created job would select if started now.
    Estimate(JobId),
    /// Start a created job.
    Start(JobId),
    /// Pause a running job (the schedule does not resume it).
    Pause(JobId),
    /// Resume a job paused with `pause`.
    Resume(JobId),
    /// Cancel a job: devices are asked to stop.
    Cancel {
        /// The job's id.
        id: String,
        /// End at once the executions devices are working on (devices offline or gone never
        /// answer a cancel, and hold their slot until they do).
        #[arg(long)]
        force: bool,
    },
    /// Open a phased job's next phase: approves a manual gate.
    NextPhase {
        /// The job's id.
        id: String,
        /// Open it whatever else the gate still waits for.
        #[arg(long)]
        force: bool,
    },
    /// Queue again, as a new attempt, the executions of a finished job that failed or timed out.
    RetryFailed(JobId),
    /// Replace a job's schedule with the JSON in FILE (`-` for stdin; `null` removes it).
    Schedule {
        /// The job's id.
        id: String,
        /// A file with the schedule's JSON (see docs/jobs.md), or `-` for stdin.
        file: PathBuf,
    },
    /// Follow a job live until it ends (Ctrl-C stops watching, not the job).
    Watch {
        /// The job's id.
        id: String,
        /// Time between refreshes, e.g. 2s or 1m; a bare number is seconds.
        #[arg(long, default_value = "2s", value_parser = duration::secs)]
        every: Duration,
    },
    /// A job's executions, optionally in one state.
    Executions {
        /// The job's id.
        id: String,
        /// Only executions in this state (queued, awaiting_consent, notified, running, succeeded, failed, …).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One device's executions across jobs, each with its history.
    Device {
        /// The device's id.
        id: String,
    },
}

const JOB_CREATE_EXAMPLES: &str = "Examples:
  # deliver an image to two devices, at once
  updraft job create --firmware thermo-x@2.0.0 dev-0001 dev-0002
  # a paced rollout to 10 % of the product's devices, created to start later
  updraft job create --firmware thermo-x@2.0.0 --all --gray-percent 10 --max-per-minute 600 \\
    --retries 2 --retry-interval 10m --timeout 2h --no-start
  # every field of POST /api/v1/jobs (ramp, abort rules, schedule, …) from a file; flags override it
  updraft job create --firmware thermo-x@2.0.0 --spec job.json

Durations take a unit: 90s, 10m, 2h, 1d (or combined: 1h30m).";

/// `updraft job create`: flags for the common fields; `--spec FILE` for any
/// field of `POST /api/v1/jobs` (ramp, abort, schedule, translations, …),
/// which flags override.
#[derive(Args, Debug)]
pub struct JobCreate {
    /// The firmware to deliver: its id or PRODUCT@VERSION.
    #[arg(long)]
    pub firmware: String,
    /// Device ids to update (or one per line with --from FILE).
    pub devices: Vec<String>,
    /// A file of device ids: one per line, or the CSV of tokens `device import` writes (its id column).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Every device of the image's product.
    #[arg(long)]
    pub all: bool,
    /// Devices in this group (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Devices an inline filter matches, in its text form (see docs/filters.md).
    #[arg(long)]
    pub filter: Option<String>,
    /// Devices a saved filter matches; a continuous job follows the filter's edits.
    #[arg(long)]
    pub filter_id: Option<String>,
    /// Only this share of the selected devices, in percent (1–100), chosen by a stable hash.
    #[arg(long, value_name = "PERCENT")]
    pub gray_percent: Option<u8>,
    /// Only devices now on this version (repeatable) [default: any].
    #[arg(long = "source-version", value_name = "VERSION")]
    pub source_versions: Vec<String>,
    /// A device to add although the scope does not select it (repeatable).
    #[arg(long, value_name = "DEVICE")]
    pub include: Vec<String>,
    /// A device never to update (repeatable).
    #[arg(long, value_name = "DEVICE")]
    pub exclude: Vec<String>,
    /// Also install on devices running a newer version (they are skipped otherwise).
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Add devices that start matching while the job runs.
    #[arg(long)]
    pub continuous: bool,
    /// Do not push; devices must ask (implies --allow-device-request).
    #[arg(long)]
    pub no_push: bool,
    /// Devices may ask for the job themselves.
    #[arg(long)]
    pub allow_device_request: bool,
    /// The end user must approve before a device gets it.
    #[arg(long)]
    pub consent_required: bool,
    /// Executions in progress at once, at most [default: 300].
    #[arg(long, value_name = "COUNT")]
    pub max_concurrency: Option<u32>,
    /// Executions started per minute, at most [default: no limit].
    #[arg(long, value_name = "COUNT")]
    pub max_per_minute: Option<u32>,
    /// Further attempts for a failed or timed-out execution (1–10).
    #[arg(long, value_name = "COUNT")]
    pub retries: Option<u32>,
    /// Time between retries in whole minutes, e.g. 10m or 1h; a bare number is minutes [default: 0, at once].
    #[arg(long, value_name = "DURATION", value_parser = duration::minutes)]
    pub retry_interval: Option<Duration>,
    /// How long an execution in progress may take before it times out, 1m to 2d, e.g. 2h;
    /// a bare number is seconds [default: no limit].
    #[arg(long, value_name = "DURATION", value_parser = duration::secs)]
    pub timeout: Option<Duration>,
    /// `upgrade` (default) or `verify` (named devices only: proves an image before upgrades may use it).
    #[arg(long, value_parser = wire_enum::<JobKind>)]
    pub kind: Option<JobKind>,
    /// Create it without starting it (`updraft job start ID` later).
    #[arg(long)]
    pub no_start: bool,
    /// A phase, repeated in order: SHARE[,OPTION…] where SHARE is 5% (cumulative), 20 (devices)
    /// or rest (the last), and options are manual, success=PERCENT, min=COUNT, wait=DURATION,
    /// errors=PERCENT (pause the job), errors-min=COUNT, name=NAME. E.g. --phase 20,manual
    /// --phase 10%,success=95,min=50,wait=1h --phase rest.
    #[arg(long = "phase", value_name = "SPEC", value_parser = phase::parse)]
    pub phases: Vec<updraft_core::phase::Phase>,
    /// A JSON file with more fields of the job (any field of POST /api/v1/jobs; see docs/jobs.md).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// The job's id, `[A-Za-z0-9_-]{1,128}` [default: generated].
    #[arg(long)]
    pub id: Option<String>,
    /// A name for people.
    #[arg(long)]
    pub name: Option<String>,
    /// A description for people (at most 2028 characters).
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
        if !self.phases.is_empty() {
            job.phases = self.phases;
        }
        job.all |= self.all;
        job.allow_downgrade |= self.allow_downgrade;
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
            let interval = self.retry_interval.map(duration::whole_minutes).transpose()?;
            job.retry =
                Some(RetryIn { count: Some(self.retries.unwrap_or(0)), interval_minutes: Some(interval.unwrap_or(0)) });
        }
        if let Some(t) = self.timeout {
            job.timeout_seconds = Some(u32::try_from(t.as_secs()).context("--timeout is too long")?);
        }
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
    /// The filter's text form, e.g. 'product == "thermo-x" and fw.host < "2.0.0"' (see docs/filters.md).
    pub query: Option<String>,
    /// A file with the filter's JSON form.
    #[arg(long, conflicts_with = "query", value_name = "FILE")]
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
    /// The first devices a filter matches, by id.
    Preview {
        #[command(flatten)]
        filter: FilterArg,
        /// How many devices to show (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Save a filter under a name.
    Create {
        #[command(flatten)]
        filter: FilterArg,
        /// A name for people.
        #[arg(long)]
        name: String,
        /// The saved filter's id, `[A-Za-z0-9_-]{1,128}` [default: generated].
        #[arg(long = "filter-id")]
        filter_id: Option<String>,
        /// A description for people.
        #[arg(long)]
        description: Option<String>,
    },
    /// List saved filters.
    List(Paging),
    /// A saved filter, in both forms.
    Show {
        /// The saved filter's id.
        id: String,
    },
    /// Delete a saved filter.
    Delete {
        /// The saved filter's id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GatewayCmd {
    /// List gateway tokens (never their secrets).
    List,
    /// Create a gateway token; prints it once.
    Create {
        /// A label to recognise the token by.
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a gateway token: gateways using it are refused at once.
    Delete {
        /// The gateway token's id.
        id: String,
    },
}

/// Paging options shared by lists.
#[derive(Args, Debug, Clone)]
pub struct Paging {
    /// Items per page (1–1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Items to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Field to sort by; prefix `-` for descending (e.g. -created_at).
    #[arg(long, allow_hyphen_values = true, value_name = "FIELD")]
    pub sort: Option<String>,
    /// Case-insensitive text searched in names and ids.
    #[arg(long, value_name = "TEXT")]
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
    /// List products.
    List(Paging),
    /// One product.
    Show {
        /// The product's key.
        key: String,
    },
    /// Create a product.
    Create {
        /// The product's key, `[A-Za-z0-9_-]{1,128}`, unique in the tenant.
        key: String,
        /// A name for people [default: the key].
        #[arg(long)]
        name: Option<String>,
        /// A description for people.
        #[arg(long)]
        description: Option<String>,
        /// How versions compare: `semver` (default) or `free` (any text, compared for equality only).
        #[arg(long, value_parser = wire_enum::<updraft_core::VersionScheme>)]
        version_scheme: Option<updraft_core::VersionScheme>,
    },
    /// Change a product's name, description or version scheme.
    Update {
        /// The product's key.
        key: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
        /// `semver` or `free`.
        #[arg(long, value_parser = wire_enum::<updraft_core::VersionScheme>)]
        version_scheme: Option<updraft_core::VersionScheme>,
    },
    /// Delete a product no device, firmware or group uses.
    Delete {
        /// The product's key.
        key: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum FirmwareCmd {
    /// Upload one image made of one or more files (components), streamed with a progress bar.
    #[command(
        after_help = "Example:\n  updraft firmware upload fw-2.0.0.bin --product thermo-x --version 2.0.0 --meta channel=beta"
    )]
    Upload {
        /// The files; each becomes a component (one file: component `host`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The product the image is for.
        #[arg(long)]
        product: String,
        /// The image's version (semver unless the product's scheme is free).
        #[arg(long)]
        version: String,
        /// The image's id, `[A-Za-z0-9_-]{1,128}` [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        /// Release notes (at most 64 KiB of text).
        #[arg(long)]
        release_notes: Option<String>,
        /// Metadata as KEY=VALUE (repeatable).
        #[arg(long = "meta", value_parser = parse_kv, value_name = "KEY=VALUE")]
        metadata: Vec<(String, String)>,
        /// Upgrade jobs may use the image only after a verify job succeeded.
        #[arg(long)]
        needs_verification: bool,
        /// Anti-rollback: devices never install a lower security version than they run
        /// [default: the product's highest].
        #[arg(long)]
        security_version: Option<u32>,
        /// Component of a file as FILE_NAME=COMPONENT (repeatable).
        #[arg(long = "component", value_parser = parse_kv, value_name = "FILE_NAME=COMPONENT")]
        components: Vec<(String, String)>,
    },
    /// List images, newest first.
    List {
        #[command(flatten)]
        paging: Paging,
        /// Only this product's images.
        #[arg(long)]
        product: Option<String>,
    },
    /// One image with its files.
    Show {
        /// The image's id, or PRODUCT@VERSION.
        id: String,
    },
    /// Download a file of an image and check its SHA-256.
    Download {
        /// The image's id, or PRODUCT@VERSION.
        id: String,
        /// Which file (default: the image's only or first file).
        #[arg(long)]
        file: Option<String>,
        /// Where to write it (default: the file's name in the current directory).
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Delete an image and its files (refused while a running job uses it).
    Delete {
        /// The image's id, or PRODUCT@VERSION.
        id: String,
    },
}

const IMPORT_HELP: &str = "The file is NDJSON (.ndjson, .jsonl: one device object per line, the fields of \
POST /api/v1/devices) or CSV (.csv: a header line, then one device per line). The import is all or nothing.

CSV columns (id and product are required; empty cells are left out):
  id, product, hardware_version, module_model, module_version, template_id,
  activated_at (RFC 3339), connection_status (online, offline, initializing),
  firmware.<component> (installed version), prop.<name> (text), prop.<name>:number,
  prop.<name>:bool (true or false), meta.<key> (text)

  id,product,firmware.host,prop.region,prop.floor:number,meta.site
  dev-0001,thermo-x,1.0.0,eu,3,berlin-2
  dev-0002,thermo-x,1.0.0,us,1,

NDJSON fields: id, product, firmware {component: version}, hardware_version, module_model,
module_version, template_id, properties {name: text, number or boolean}, metadata {key: text},
activated_at, connection_status

  {\"id\": \"dev-0001\", \"product\": \"thermo-x\", \"firmware\": {\"host\": \"1.0.0\"}, \"properties\": {\"region\": \"eu\", \"floor\": 3}}
  {\"id\": \"dev-0002\", \"product\": \"thermo-x\", \"metadata\": {\"site\": \"berlin-2\"}}

The devices' tokens are written to a CSV (id,token) named after the whole input file name,
next to it: fleet.csv -> fleet.csv.tokens.csv. An existing file is never overwritten (--force).";

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Register one device; prints its token once.
    Add {
        /// The device's id (DSN, device key): `[A-Za-z0-9_.:-]{1,128}`.
        id: String,
        /// The product it is.
        #[arg(long)]
        product: String,
        /// Installed firmware as COMPONENT=VERSION (repeatable).
        #[arg(long = "firmware", value_parser = parse_kv, value_name = "COMPONENT=VERSION")]
        firmware: Vec<(String, String)>,
        /// Its hardware version.
        #[arg(long)]
        hardware_version: Option<String>,
        /// Its module's model.
        #[arg(long)]
        module_model: Option<String>,
        /// Its module's version.
        #[arg(long)]
        module_version: Option<String>,
        /// Its template id.
        #[arg(long)]
        template_id: Option<String>,
        /// A property as NAME=VALUE; numbers and true/false are typed (repeatable).
        #[arg(long = "prop", value_parser = parse_kv, value_name = "NAME=VALUE")]
        properties: Vec<(String, String)>,
        /// Metadata as KEY=VALUE (repeatable).
        #[arg(long = "meta", value_parser = parse_kv, value_name = "KEY=VALUE")]
        metadata: Vec<(String, String)>,
    },
    /// Register many devices from an NDJSON or CSV file, all or nothing.
    #[command(after_long_help = IMPORT_HELP, after_help = IMPORT_HELP)]
    Import {
        /// The file: `.csv` is CSV, anything else NDJSON.
        file: PathBuf,
        /// Where to write the issued tokens as CSV (id,token) [default: FILE.tokens.csv, next to FILE].
        #[arg(long, value_name = "PATH")]
        tokens_out: Option<PathBuf>,
        /// Overwrite the tokens file if it exists.
        #[arg(long)]
        force: bool,
        /// The import's Idempotency-Key [default: a new random one]: a retry
        /// with the same key and file answers as the first import did.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Issue a new token for a device (its old token stops working); prints it once.
    Token {
        /// The device's id.
        id: String,
    },
    /// List devices.
    List {
        #[command(flatten)]
        paging: Paging,
        /// Only devices of this product.
        #[arg(long)]
        product: Option<String>,
        /// Only members of this group.
        #[arg(long)]
        group: Option<String>,
        /// Only devices matching this filter (text form, see docs/filters.md).
        #[arg(long, short = 'q', value_name = "FILTER")]
        query: Option<String>,
    },
    /// Every field of one device.
    Show {
        /// The device's id.
        id: String,
    },
    /// Change attributes; maps given here replace the device's.
    Update {
        /// The device's id.
        id: String,
        /// Installed firmware as COMPONENT=VERSION (repeatable; replaces the whole map).
        #[arg(long = "firmware", value_parser = parse_kv, value_name = "COMPONENT=VERSION")]
        firmware: Vec<(String, String)>,
        /// A new hardware version.
        #[arg(long)]
        hardware_version: Option<String>,
        /// A property as NAME=VALUE (repeatable; replaces all properties).
        #[arg(long = "prop", value_parser = parse_kv, value_name = "NAME=VALUE")]
        properties: Vec<(String, String)>,
        /// Metadata as KEY=VALUE (repeatable; replaces all metadata).
        #[arg(long = "meta", value_parser = parse_kv, value_name = "KEY=VALUE")]
        metadata: Vec<(String, String)>,
    },
    /// Delete a device.
    Delete {
        /// The device's id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// List groups.
    List(Paging),
    /// One group.
    Show {
        /// The group's id.
        id: String,
    },
    /// Create a group.
    Create {
        /// The group's id, `[A-Za-z0-9_-]{1,128}`.
        id: String,
        /// A name for people [default: the id].
        #[arg(long)]
        name: Option<String>,
        /// A description for people.
        #[arg(long)]
        description: Option<String>,
        /// Only devices of this product may join.
        #[arg(long)]
        product: Option<String>,
    },
    /// Delete a group (its devices stay).
    Delete {
        /// The group's id.
        id: String,
    },
    /// Add devices (ids as arguments, or from a file with --from), all or nothing.
    Add {
        /// The group's id.
        id: String,
        /// Device ids.
        devices: Vec<String>,
        /// A file of device ids: one per line, or the CSV of tokens `device import` writes (its id column).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// Remove devices (ids as arguments, or from a file with --from).
    Remove {
        /// The group's id.
        id: String,
        /// Device ids.
        devices: Vec<String>,
        /// A file of device ids: one per line, or the CSV of tokens `device import` writes (its id column).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// List a group's members.
    Members {
        /// The group's id.
        id: String,
        #[command(flatten)]
        paging: Paging,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// List tenants.
    List,
    /// Create a tenant; prints its first admin key once.
    Create {
        /// The tenant's name, `[A-Za-z0-9_-]{1,64}`.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// List your tenant's keys (their prefixes, never the secrets).
    List,
    /// Create a key; prints its token once.
    Create {
        /// What the key may do: admin, operator, viewer or consent.
        #[arg(long)]
        role: String,
        /// A label to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        /// When the key stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z) [default: never].
        #[arg(long, value_name = "TIME")]
        expires_at: Option<jiff::Timestamp>,
        /// Issue the key in this tenant (the server administrator's key only).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a key: it stops working at once.
    Delete {
        /// The key's id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// List your tenant's users.
    List,
    /// Create a user; the password is read from the first line of standard input.
    Add {
        /// What the user signs in with: 1 to 64 letters, digits and . _ @ + -.
        name: String,
        /// What the user may do: admin, operator, viewer or consent.
        #[arg(long)]
        role: String,
        /// Create the user in this tenant (the server administrator's key only).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Replace a user's password (read from standard input); the user's sessions end.
    Password {
        /// The user's id.
        id: String,
    },
    /// Delete a user: its sessions end at once.
    Delete {
        /// The user's id.
        id: String,
    },
}

/// The first line of standard input, without its line ending: a password is never an argument
/// (it would show in the process list and the shell's history).
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "give the password on standard input, e.g. printf '%s\\n' \"$PASSWORD\" | updraft user …"
    );
    Ok(password)
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("expected key=value, got `{s}`"))
}

/// A path segment as given (an id, `PRODUCT@VERSION`, a file name), percent-encoded where it
/// must be so that `/`, `?`, `#` or `%` in it stay part of it.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@:+!$&'()*,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
        ids.extend(files::read_ids(&path)?);
    }
    Ok(ids)
}

/// Runs one client command against the server `conn` names.
pub async fn run(cmd: ClientCommand, conn: &Conn) -> anyhow::Result<()> {
    let c = Client::new(conn)?;
    let json = conn.json;
    match cmd {
        ClientCommand::Product(cmd) => product(c, json, cmd).await,
        ClientCommand::Firmware(cmd) => firmware(c, json, cmd).await,
        ClientCommand::Device(cmd) => device(c, json, cmd).await,
        ClientCommand::Group(cmd) => group(c, json, cmd).await,
        ClientCommand::Tenant(cmd) => tenant(c, json, cmd).await,
        ClientCommand::Key(cmd) => key(c, json, cmd).await,
        ClientCommand::User(cmd) => user(c, json, cmd).await,
        ClientCommand::Job(cmd) => job(c, json, cmd).await,
        ClientCommand::GatewayToken(cmd) => gateway(c, json, cmd).await,
        ClientCommand::Filter(cmd) => filter(c, json, cmd).await,
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
            security_version,
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
            if let Some(v) = security_version {
                fields.push(("security_version", v.to_string()));
            }
            if !components.is_empty() {
                let specs: Vec<FileSpec> = components
                    .into_iter()
                    .map(|(name, component)| FileSpec {
                        name,
                        component: Some(component),
                        version: None,
                        code_signing: None,
                    })
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
            let fw = c.get(&format!("/api/v1/firmware/{}", segment(&id)), &()).await?;
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
        FirmwareCmd::Download { id, file, output, force } => {
            let fw: FirmwareOut = read(&c.get(&format!("/api/v1/firmware/{}", segment(&id)), &()).await?)?;
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
            files::check_writable(&dest, force)?;
            let sha256 = c.download(&format!("/api/v1/firmware/{}/files/{}", fw.id, segment(name)), &dest).await?;
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
            c.delete(&format!("/api/v1/firmware/{}", segment(&id))).await?;
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
        DeviceCmd::Import { file, tokens_out, force, idempotency_key } => {
            let dest = tokens_out.unwrap_or_else(|| files::tokens_path(&file));
            files::check_writable(&dest, force)?;
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
            files::write_tokens(&dest, force, out.devices.iter().map(|d| (d.id.as_str(), d.token.as_str())))?;
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

async fn user(c: Client, json: bool, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::List => show_list(json, &c.get("/api/v1/users", &()).await?, USER_COLUMNS),
        UserCmd::Add { name, role, tenant } => {
            let password = password_from_stdin()?;
            let out = c.send("POST", "/api/v1/users", &UserIn { name, role, password, tenant }).await?;
            show(json, &out, USER_COLUMNS)
        }
        UserCmd::Password { id } => {
            let password = password_from_stdin()?;
            c.send("PUT", &format!("/api/v1/users/{id}/password"), &PasswordIn { password }).await?;
            eprintln!("password of user {id} replaced; its sessions ended");
        }
        UserCmd::Delete { id } => {
            c.delete(&format!("/api/v1/users/{id}")).await?;
            eprintln!("user {id} deleted");
        }
    }
    Ok(())
}

const USER_COLUMNS: &[(&str, &str)] =
    &[("ID", "id"), ("NAME", "name"), ("ROLE", "role"), ("TENANT", "tenant"), ("CREATED", "created_at")];

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
    ("PHASE", "phase"),
    ("UPDATED", "updated_at"),
    ("WAITING FOR", "waiting"),
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
        JobCmd::Show(JobId { id }) => {
            let answer = c.get(&format!("/api/v1/jobs/{id}"), &()).await?;
            if json { print_json(&answer) } else { print!("{}", job_summary(&answer, jiff::Timestamp::now())?) }
        }
        JobCmd::Estimate(JobId { id }) => show(&c.get(&format!("/api/v1/jobs/{id}/targets/estimate"), &()).await?),
        JobCmd::Start(JobId { id }) => show(&c.send("POST", &format!("/api/v1/jobs/{id}/start"), &json!({})).await?),
        JobCmd::Pause(JobId { id }) => show(&c.send("POST", &format!("/api/v1/jobs/{id}/pause"), &json!({})).await?),
        JobCmd::Resume(JobId { id }) => show(&c.send("POST", &format!("/api/v1/jobs/{id}/resume"), &json!({})).await?),
        JobCmd::Cancel { id, force } => {
            show(&c.send("POST", &format!("/api/v1/jobs/{id}/cancel"), &ForceIn { force }).await?)
        }
        JobCmd::NextPhase { id, force } => {
            show(&c.send("POST", &format!("/api/v1/jobs/{id}/phases/next"), &ForceIn { force }).await?)
        }
        JobCmd::RetryFailed(JobId { id }) => {
            show(&c.send("POST", &format!("/api/v1/jobs/{id}/retry-failed"), &json!({})).await?)
        }
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
            let mut page = c.get(&format!("/api/v1/jobs/{id}/executions"), &q).await?;
            if !json {
                // People read why an execution waits as its sentence.
                for e in page["items"].as_array_mut().map(Vec::as_mut_slice).unwrap_or_default() {
                    e["waiting"] = e["waiting"]["message"].clone();
                }
            }
            show_list(json, &page, EXECUTION_COLUMNS)
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

/// Follows a job until it ends. On a terminal, a bar of finished executions with the counts per
/// state, the rate and the ETA, redrawn in place; otherwise (a pipe, a log) one plain line each
/// time that changes; with `--json`, the job's JSON, one line per refresh.
async fn watch(c: &Client, id: &str, every: Duration, json: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let terminal = !json && std::io::stdout().is_terminal();
    let bar = if terminal {
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stdout())
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut last_line = String::new();
    loop {
        let answer = c.get(&format!("/api/v1/jobs/{id}"), &()).await?;
        let j: JobOut = read(&answer)?;
        let state = j.state.as_str();
        let now = jiff::Timestamp::now();
        if json {
            println!("{}", serde_json::to_string(&answer)?);
        } else if let Some(p) = &j.progress {
            let counts: Vec<String> = j.counts.iter().flatten().map(|(k, v)| format!("{k} {v}")).collect();
            let eta = format!("eta {}", eta(&j, now));
            let rate = format!("{}/min", p.current_rate_per_minute);
            let phase = phase(&j).map(|p| format!(" | phase {p}")).unwrap_or_default();
            if terminal {
                bar.set_length(p.total);
                bar.set_position(p.finished);
                bar.set_prefix(format!("{id} {state}"));
                bar.set_message(format!("{}{phase} | {rate} | {eta}", counts.join(", ")));
            } else {
                let line = format!(
                    "{id} {state}{phase} | {}/{} finished | {} | {rate} | {eta}",
                    p.finished,
                    p.total,
                    counts.join(", ")
                );
                if line != last_line {
                    println!("{} {line}", now.strftime("%H:%M:%S"));
                    last_line = line;
                }
            }
        }
        if matches!(state, "completed" | "canceled" | "aborted") {
            bar.finish();
            return Ok(());
        }
        tokio::time::sleep(every.max(Duration::from_millis(100))).await;
    }
}

/// The open phase of a phased job, for people: `2/3 canary: 40 of 50 succeeded;
/// waiting for …`. `None` for a job without phases.
fn phase(j: &JobOut) -> Option<String> {
    let p = j.progress.as_ref()?.phase.as_ref()?;
    let name = p.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
    let approved = if p.state.approved { " (approved)" } else { "" };
    let mut text =
        format!("{}/{}{name}{approved}: {} of {} succeeded", p.index + 1, p.of, p.counts.succeeded, p.counts.total);
    if !p.waiting_for.is_empty() {
        let waits: Vec<&str> = p.waiting_for.iter().map(|w| w.message.as_str()).collect();
        text.push_str(&format!("; waiting for {}", waits.join("; ")));
    }
    Some(text)
}

/// When the job should be done: relative to `now`, "unknown" before any device reported, "-"
/// once it ended.
fn eta(j: &JobOut, now: jiff::Timestamp) -> String {
    if j.finished_at.is_some() {
        return "-".into();
    }
    match j.progress.as_ref().and_then(|p| p.eta) {
        Some(at) => relative(at, now),
        None => "unknown".into(),
    }
}

/// `in 12 min`, `in 2 h 5 min`, `in 40 s`, `any moment now`.
fn relative(at: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let secs = at.as_second() - now.as_second();
    match secs {
        ..=0 => "any moment now".into(),
        1..60 => format!("in {secs} s"),
        60..3_600 => format!("in {} min", (secs + 30) / 60),
        3_600..86_400 => format!("in {} h {} min", secs / 3_600, secs % 3_600 / 60),
        _ => format!("in {} d {} h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// `job show` for people: what, its state, how far, how fast, when it should be done.
fn job_summary(answer: &Value, now: jiff::Timestamp) -> anyhow::Result<String> {
    let j: JobOut = read(answer)?;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<10} {v}\n"));
    let name = j.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
    line("job", format!("{}{name}", j.id));
    let held = if j.held { ", held by an operator" } else { "" };
    line("state", format!("{}{held}", j.state.as_str()));
    line("firmware", format!("{} (product {}), {}", j.firmware, j.product, j.kind.as_str()));
    if let Some(p) = phase(&j) {
        line("phase", p);
    }
    if let Some(p) = &j.progress {
        let pct = |n: u64| (n * 100).checked_div(p.total).unwrap_or(0);
        line(
            "devices",
            format!(
                "{} targeted, {} finished ({} %), {} in progress",
                p.total,
                p.finished,
                pct(p.finished),
                p.in_progress
            ),
        );
        let counts: Vec<String> =
            j.counts.iter().flatten().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        if !counts.is_empty() {
            line("counts", counts.join(", "));
        }
        if let Some(rate) = p.success_rate {
            line("success", format!("{rate:.1} %"));
        }
        let allowed = p.allowed_rate_per_minute.map_or("no limit".to_owned(), |a| format!("at most {a}/min"));
        line("rate", format!("{}/min ({allowed})", p.current_rate_per_minute));
        line("eta", eta(&j, now));
    }
    if let Some(at) = j.started_at {
        line("started", at.to_string());
    }
    if let Some(at) = j.finished_at {
        line("finished", at.to_string());
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(progress: Value, finished_at: Value) -> Value {
        json!({
            "id": "first", "name": null, "description": null, "kind": "upgrade", "firmware": "fw-1",
            "product": "thermo", "state": "running", "held": false, "consent_required": false,
            "all": false, "devices": ["d1", "d2"], "groups": [], "filter": null, "filter_id": null,
            "gray_percent": null, "source_versions": [], "include": [], "exclude": [],
            "recurrence": "snapshot", "push": true, "allow_device_request": false, "max_concurrency": 300,
            "max_per_minute": 10, "ramp": null, "abort": [], "schedule": null,
            "retry": {"count": 0, "interval_minutes": 0}, "timeout_seconds": null, "translations": {},
            "metadata": {}, "additional_params": {}, "handling": "forced", "maintenance_window": null, "phases": [],
            "created_at": "2026-12-02T10:00:00Z", "started_at": "2026-12-02T10:00:00Z",
            "finished_at": finished_at, "counts": {"queued": 1, "succeeded": 1, "failed": 0},
            "progress": progress,
        })
    }

    #[test]
    fn job_show_summarises_for_people() {
        let now: jiff::Timestamp = "2026-12-02T10:10:00Z".parse().unwrap();
        let progress = json!({"total": 2, "finished": 1, "success_rate": 100.0, "failure_rate": 0.0,
            "in_progress": 0, "current_rate_per_minute": 3, "allowed_rate_per_minute": 10,
            "eta": "2026-12-02T10:22:00Z"});
        let text = job_summary(&job(progress.clone(), Value::Null), now).unwrap();
        assert!(text.contains("state      running\n"), "{text}");
        assert!(text.contains("2 targeted, 1 finished (50 %)"), "{text}");
        assert!(text.contains("counts     queued 1, succeeded 1\n"), "zero counts left out: {text}");
        assert!(text.contains("rate       3/min (at most 10/min)"), "{text}");
        assert!(text.contains("eta        in 12 min\n"), "{text}");
        assert!(!text.contains("phase"), "{text}");

        let mut before = progress.clone();
        before["eta"] = Value::Null;
        before["phase"] = json!({"index": 0, "name": "canary", "of": 3,
            "state": {"current": 0, "opened_at": [], "approved": false, "completed_at": null, "error_paused": []},
            "counts": {"total": 2, "succeeded": 1, "failed": 0, "dropped": 0, "unfinished": 1, "retry_pending": 0},
            "waiting_for": [{"reason": "approval", "message": "an operator's approval"}]});
        let text = job_summary(&job(before, Value::Null), now).unwrap();
        assert!(text.contains("eta        unknown\n"), "{text}");
        assert!(
            text.contains("phase      1/3 canary: 1 of 2 succeeded; waiting for an operator's approval\n"),
            "{text}"
        );
        let text = job_summary(&job(progress, json!("2026-12-02T10:05:00Z")), now).unwrap();
        assert!(text.contains("eta        -\n"), "{text}");
    }

    #[test]
    fn relative_times() {
        let now: jiff::Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let at = |s: i64| jiff::Timestamp::from_second(now.as_second() + s).unwrap();
        assert_eq!(relative(at(-5), now), "any moment now");
        assert_eq!(relative(at(40), now), "in 40 s");
        assert_eq!(relative(at(12 * 60), now), "in 12 min");
        assert_eq!(relative(at(2 * 3600 + 5 * 60), now), "in 2 h 5 min");
        assert_eq!(relative(at(3 * 86_400 + 3600), now), "in 3 d 1 h");
    }

    #[test]
    fn path_segments_keep_product_at_version_and_escape_the_rest() {
        assert_eq!(segment("thermo@2.0.0+build.1"), "thermo@2.0.0+build.1");
        assert_eq!(segment("thermo@v 1/2?"), "thermo@v%201%2F2%3F");
    }
}
