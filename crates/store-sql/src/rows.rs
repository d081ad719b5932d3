//! Rows as SQLite returns them, and their conversion into domain records.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sqlx::types::Json;
use updraft_app::store::{
    AccessKey, DeviceIdentity, DeviceVersions, GatewayToken, GroupToken, PollSeed, SavedFilter, StoreError, sortable,
};
use updraft_core::filter::{Filter, FilterJson};
use updraft_core::job::{EventSource, Execution, ExecutionEvent, ExecutionState, Job, JobKind, JobState, Progress};
use updraft_core::{
    ApiKey, ConnectionStatus, Device, Firmware, FirmwareFile, Group, Product, PropertyValue, Role, Session, Tenant,
    User, VersionScheme,
};

pub const KEY_SELECT: &str =
    "SELECT id, tenant, role, name, server_admin, created_at, expires_at, token_prefix FROM api_keys";
pub const PRODUCT_SELECT: &str = "SELECT key, name, description, version_scheme, created_at, updated_at FROM products";
pub const FIRMWARE_SELECT: &str = "SELECT id, product, version, name, release_notes, metadata, needs_verification, \
     verified, security_version, files, created_at FROM firmware";
pub const DEVICE_SELECT: &str = "SELECT tenant, id, product, firmware, hardware_version, module_model, module_version, \
     template_id, properties, metadata, activated_at, last_seen_at, connection_status, created_at, updated_at FROM devices";
pub const GROUP_SELECT: &str = "SELECT id, name, description, product, created_at, updated_at, \
     (SELECT COUNT(*) FROM group_members m WHERE m.tenant = g.tenant AND m.group_id = g.id) AS member_count \
     FROM device_groups g";
/// A device-list condition: the device is a member of the group bound at `{}`.
pub const GROUP_MEMBER_FILTER: &str = "EXISTS (SELECT 1 FROM group_members m WHERE m.tenant = devices.tenant \
     AND m.device_id = devices.id AND m.group_id = {})";

pub const SAVED_FILTER_SELECT: &str =
    "SELECT id, name, description, filter, created_at, updated_at, updated_by FROM saved_filters";

/// How one resource is listed: its queries, searched columns, sortable fields and tie-breaker.
pub struct ListSpec {
    pub select: &'static str,
    pub count: &'static str,
    pub search: &'static [&'static str],
    pub sortable: &'static [&'static str],
    pub tiebreak: &'static str,
}

pub const PRODUCT_LIST: ListSpec = ListSpec {
    select: PRODUCT_SELECT,
    count: "SELECT COUNT(*) FROM products",
    search: &["key", "name", "description"],
    sortable: sortable::PRODUCTS,
    tiebreak: "key",
};
pub const FIRMWARE_LIST: ListSpec = ListSpec {
    select: FIRMWARE_SELECT,
    count: "SELECT COUNT(*) FROM firmware",
    search: &["id", "name", "version", "product", "release_notes"],
    sortable: sortable::FIRMWARE,
    tiebreak: "id",
};
pub const DEVICE_LIST: ListSpec = ListSpec {
    select: DEVICE_SELECT,
    count: "SELECT COUNT(*) FROM devices",
    search: &["id", "hardware_version", "module_model", "template_id"],
    sortable: sortable::DEVICES,
    tiebreak: "id",
};
pub const SAVED_FILTER_LIST: ListSpec = ListSpec {
    select: SAVED_FILTER_SELECT,
    count: "SELECT COUNT(*) FROM saved_filters",
    search: &["id", "name", "description"],
    sortable: sortable::SAVED_FILTERS,
    tiebreak: "id",
};
pub const GROUP_LIST: ListSpec = ListSpec {
    select: GROUP_SELECT,
    count: "SELECT COUNT(*) FROM device_groups g",
    search: &["id", "name", "description"],
    sortable: sortable::GROUPS,
    tiebreak: "id",
};

pub fn ts(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Backend(format!("bad timestamp {us}: {e}")))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("unexpected {what} `{value}` in the database"))
}

#[derive(sqlx::FromRow)]
pub struct TenantRow {
    id: String,
    name: String,
    created_at: i64,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(r: TenantRow) -> Result<Self, StoreError> {
        Ok(Tenant { id: r.id, name: r.name, created_at: ts(r.created_at)? })
    }
}

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    id: String,
    tenant: String,
    role: String,
    name: Option<String>,
    server_admin: bool,
    created_at: i64,
    expires_at: Option<i64>,
    token_prefix: Option<String>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            role: Role::parse(&r.role).ok_or_else(|| corrupt("role", &r.role))?,
            id: r.id,
            tenant: r.tenant,
            name: r.name,
            server_admin: r.server_admin,
            created_at: ts(r.created_at)?,
            expires_at: r.expires_at.map(ts).transpose()?,
            token_prefix: r.token_prefix,
        })
    }
}

pub const USER_SELECT: &str = "SELECT id, tenant, name, role, created_at, password_hash FROM users";
pub const SESSION_SELECT: &str = "SELECT u.id, u.tenant, u.name, u.role, u.created_at, s.created_at AS session_created_at, \
     s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id";

#[derive(sqlx::FromRow)]
pub struct UserRow {
    id: String,
    tenant: String,
    name: String,
    role: String,
    created_at: i64,
    pub password_hash: String,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            role: Role::parse(&r.role).ok_or_else(|| corrupt("role", &r.role))?,
            id: r.id,
            tenant: r.tenant,
            name: r.name,
            created_at: ts(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SessionRow {
    id: String,
    tenant: String,
    name: String,
    role: String,
    created_at: i64,
    session_created_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(Session {
            user: User {
                role: Role::parse(&r.role).ok_or_else(|| corrupt("role", &r.role))?,
                id: r.id,
                tenant: r.tenant,
                name: r.name,
                created_at: ts(r.created_at)?,
            },
            created_at: ts(r.session_created_at)?,
            expires_at: ts(r.expires_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct ProductRow {
    key: String,
    name: String,
    description: Option<String>,
    version_scheme: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;
    fn try_from(r: ProductRow) -> Result<Self, StoreError> {
        Ok(Product {
            version_scheme: VersionScheme::parse(&r.version_scheme)
                .ok_or_else(|| corrupt("version scheme", &r.version_scheme))?,
            key: r.key,
            name: r.name,
            description: r.description,
            created_at: ts(r.created_at)?,
            updated_at: ts(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct FirmwareRow {
    id: String,
    product: String,
    version: String,
    name: Option<String>,
    release_notes: Option<String>,
    metadata: Json<BTreeMap<String, String>>,
    needs_verification: bool,
    verified: bool,
    security_version: i64,
    files: Json<Vec<FirmwareFile>>,
    created_at: i64,
}

impl TryFrom<FirmwareRow> for Firmware {
    type Error = StoreError;
    fn try_from(r: FirmwareRow) -> Result<Self, StoreError> {
        Ok(Firmware {
            id: r.id,
            product: r.product,
            version: r.version,
            name: r.name,
            release_notes: r.release_notes,
            metadata: r.metadata.0,
            needs_verification: r.needs_verification,
            verified: r.verified,
            security_version: r.security_version.max(0) as u64,
            files: r.files.0,
            created_at: ts(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct DeviceRow {
    pub tenant: String,
    id: String,
    product: String,
    firmware: Json<BTreeMap<String, String>>,
    hardware_version: Option<String>,
    module_model: Option<String>,
    module_version: Option<String>,
    template_id: Option<String>,
    properties: Json<BTreeMap<String, PropertyValue>>,
    metadata: Json<BTreeMap<String, String>>,
    activated_at: Option<i64>,
    last_seen_at: Option<i64>,
    connection_status: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<DeviceRow> for Device {
    type Error = StoreError;
    fn try_from(r: DeviceRow) -> Result<Self, StoreError> {
        Ok(Device {
            connection_status: ConnectionStatus::parse(&r.connection_status)
                .ok_or_else(|| corrupt("connection status", &r.connection_status))?,
            id: r.id,
            product: r.product,
            firmware: r.firmware.0,
            hardware_version: r.hardware_version,
            module_model: r.module_model,
            module_version: r.module_version,
            template_id: r.template_id,
            properties: r.properties.0,
            metadata: r.metadata.0,
            activated_at: r.activated_at.map(ts).transpose()?,
            last_seen_at: r.last_seen_at.map(ts).transpose()?,
            created_at: ts(r.created_at)?,
            updated_at: ts(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct GroupRow {
    id: String,
    name: String,
    description: Option<String>,
    product: Option<String>,
    created_at: i64,
    updated_at: i64,
    member_count: i64,
}

impl TryFrom<GroupRow> for Group {
    type Error = StoreError;
    fn try_from(r: GroupRow) -> Result<Self, StoreError> {
        Ok(Group {
            id: r.id,
            name: r.name,
            description: r.description,
            product: r.product,
            member_count: r.member_count as u64,
            created_at: ts(r.created_at)?,
            updated_at: ts(r.updated_at)?,
        })
    }
}

pub const JOB_SELECT: &str = "SELECT id, name, description, kind, firmware, product, state, consent_required, \
     created_at, started_at, finished_at, spec, held, phase_state FROM jobs";
pub const EXECUTION_SELECT: &str = "SELECT action_id, action, job, device, firmware, state, attempt, cancel_requested, \
     progress_cnt, progress_of, created_at, updated_at, finished_at, phase FROM executions";
pub const EVENT_SELECT: &str =
    "SELECT at, state, source, report, code, progress_cnt, progress_of, details FROM execution_events";
/// [`EVENT_SELECT`] with the event's execution.
pub const EVENT_WITH_ACTION_SELECT: &str =
    "SELECT at, state, source, report, code, progress_cnt, progress_of, details, action_id FROM execution_events";
/// The states of unfinished executions, as an SQL list.
pub const ACTIVE_STATES: &str = "('queued', 'awaiting_consent', 'notified', 'downloading', 'downloaded', 'installing')";
/// States of an execution the device is working on (`ExecutionState::is_in_progress`).
pub const IN_PROGRESS_STATES: &str = "('notified', 'downloading', 'downloaded', 'installing')";
/// The states of executions a device is offered: waiting for its consent, or released to it.
pub const OFFERED_STATES: &str = "('awaiting_consent', 'notified', 'downloading', 'downloaded', 'installing')";

pub const JOB_LIST: ListSpec = ListSpec {
    select: JOB_SELECT,
    count: "SELECT COUNT(*) FROM jobs",
    search: &["id", "name", "description", "firmware"],
    sortable: sortable::JOBS,
    tiebreak: "id",
};
pub const EXECUTION_LIST: ListSpec = ListSpec {
    select: EXECUTION_SELECT,
    count: "SELECT COUNT(*) FROM executions",
    search: &["device"],
    sortable: sortable::EXECUTIONS,
    tiebreak: "action_id",
};

fn parse<T>(what: &str, s: &str, f: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    f(s).ok_or_else(|| corrupt(what, s))
}

fn progress(cnt: Option<i64>, of: Option<i64>) -> Option<Progress> {
    cnt.map(|c| Progress { cnt: c as u64, of: of.map(|o| o as u64) })
}

#[derive(sqlx::FromRow)]
pub struct JobRow {
    id: String,
    name: Option<String>,
    description: Option<String>,
    kind: String,
    firmware: String,
    product: String,
    state: String,
    consent_required: bool,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    spec: String,
    held: bool,
    phase_state: Option<String>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        let spec = serde_json::from_str(&r.spec)
            .map_err(|e| StoreError::Backend(format!("unexpected spec of job `{}` in the database: {e}", r.id)))?;
        let phase = match &r.phase_state {
            Some(p) => serde_json::from_str(p).map_err(|e| {
                StoreError::Backend(format!("unexpected phase state of job `{}` in the database: {e}", r.id))
            })?,
            None => Default::default(),
        };
        Ok(Job {
            kind: parse("job kind", &r.kind, JobKind::parse)?,
            state: parse("job state", &r.state, JobState::parse)?,
            id: r.id,
            name: r.name,
            description: r.description,
            firmware: r.firmware,
            product: r.product,
            consent_required: r.consent_required,
            created_at: ts(r.created_at)?,
            started_at: r.started_at.map(ts).transpose()?,
            finished_at: r.finished_at.map(ts).transpose()?,
            spec,
            held: r.held,
            phase,
        })
    }
}

/// A device's versions, as the backfill of their sort keys reads them.
#[derive(sqlx::FromRow)]
pub struct VersionsRow {
    pub tenant: String,
    pub id: String,
    pub firmware: Json<BTreeMap<String, String>>,
    pub hardware_version: Option<String>,
    pub module_version: Option<String>,
}

/// A job with its tenant, for the jobs that span tenants (`live_jobs`).
#[derive(sqlx::FromRow)]
pub struct TenantJobRow {
    pub tenant: String,
    #[sqlx(flatten)]
    pub job: JobRow,
}

#[derive(sqlx::FromRow)]
pub struct ExecutionRow {
    action_id: i64,
    action: Option<i64>,
    job: String,
    device: String,
    firmware: String,
    state: String,
    attempt: i64,
    cancel_requested: bool,
    progress_cnt: Option<i64>,
    progress_of: Option<i64>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    phase: i64,
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = StoreError;
    fn try_from(r: ExecutionRow) -> Result<Self, StoreError> {
        Ok(Execution {
            state: parse("execution state", &r.state, ExecutionState::parse)?,
            action_id: r.action_id,
            action: r.action.unwrap_or_default(),
            job: r.job,
            device: r.device,
            firmware: r.firmware,
            attempt: r.attempt as u32,
            cancel_requested: r.cancel_requested,
            phase: r.phase as u32,
            progress: progress(r.progress_cnt, r.progress_of),
            created_at: ts(r.created_at)?,
            updated_at: ts(r.updated_at)?,
            finished_at: r.finished_at.map(ts).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct EventRow {
    at: i64,
    state: String,
    source: String,
    report: String,
    code: Option<i64>,
    progress_cnt: Option<i64>,
    progress_of: Option<i64>,
    details: Json<Vec<String>>,
    /// The execution's, where a read selects it.
    #[sqlx(default)]
    pub action_id: i64,
}

impl TryFrom<EventRow> for ExecutionEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(ExecutionEvent {
            at: ts(r.at)?,
            state: parse("execution state", &r.state, ExecutionState::parse)?,
            source: parse("event source", &r.source, EventSource::parse)?,
            report: r.report,
            code: r.code.map(|c| c as i32),
            progress: progress(r.progress_cnt, r.progress_of),
            details: r.details.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct AccessKeyRow {
    id: String,
    tenant: String,
    key_id: String,
    created_at: i64,
}

/// An access key with its sealed secret.
#[derive(sqlx::FromRow)]
pub struct SealedAccessKeyRow {
    #[sqlx(flatten)]
    pub key: AccessKeyRow,
    pub secret: String,
}

impl TryFrom<AccessKeyRow> for AccessKey {
    type Error = StoreError;
    fn try_from(r: AccessKeyRow) -> Result<Self, StoreError> {
        Ok(AccessKey { id: r.id, tenant: r.tenant, key: r.key_id, created_at: ts(r.created_at)? })
    }
}

#[derive(sqlx::FromRow)]
pub struct GroupTokenRow {
    id: String,
    tenant: String,
    group_id: String,
    key_id: String,
    created_at: i64,
}

impl TryFrom<GroupTokenRow> for GroupToken {
    type Error = StoreError;
    fn try_from(r: GroupTokenRow) -> Result<Self, StoreError> {
        Ok(GroupToken { id: r.id, tenant: r.tenant, group: r.group_id, key: r.key_id, created_at: ts(r.created_at)? })
    }
}

#[derive(sqlx::FromRow)]
pub struct GatewayRow {
    id: String,
    tenant: String,
    name: Option<String>,
    created_at: i64,
}

impl TryFrom<GatewayRow> for GatewayToken {
    type Error = StoreError;
    fn try_from(r: GatewayRow) -> Result<Self, StoreError> {
        Ok(GatewayToken { id: r.id, tenant: r.tenant, name: r.name, created_at: ts(r.created_at)? })
    }
}

#[derive(sqlx::FromRow)]
pub struct TrustAnchorRow {
    id: String,
    name: Option<String>,
    certificate: String,
    fingerprint: String,
    created_at: i64,
}

impl TryFrom<TrustAnchorRow> for updraft_core::TrustAnchor {
    type Error = StoreError;
    fn try_from(r: TrustAnchorRow) -> Result<Self, StoreError> {
        Ok(updraft_core::TrustAnchor {
            id: r.id,
            name: r.name,
            certificate: r.certificate,
            fingerprint: r.fingerprint,
            created_at: ts(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SigningProfileRow {
    name: String,
    platform: Option<String>,
    signature_algorithm: String,
    certificate_chain: String,
    trust_anchor: String,
    sealed_key: String,
    created_at: i64,
}

impl SigningProfileRow {
    /// The profile and its sealed key.
    pub fn into_profile(self) -> Result<(updraft_core::SigningProfile, String), StoreError> {
        let signature_algorithm =
            updraft_core::SignatureAlgorithm::parse(&self.signature_algorithm).ok_or_else(|| {
                StoreError::Backend(format!("unknown signature algorithm `{}`", self.signature_algorithm))
            })?;
        let profile = updraft_core::SigningProfile {
            name: self.name,
            platform: self.platform,
            signature_algorithm,
            certificate_chain: self.certificate_chain,
            trust_anchor: self.trust_anchor,
            created_at: ts(self.created_at)?,
        };
        Ok((profile, self.sealed_key))
    }
}

#[derive(sqlx::FromRow)]
pub struct IdentityRow {
    tenant: String,
    id: String,
    attributes_requested: bool,
}

impl From<IdentityRow> for DeviceIdentity {
    fn from(r: IdentityRow) -> Self {
        DeviceIdentity { tenant: r.tenant, id: r.id, attributes_requested: r.attributes_requested }
    }
}

#[derive(sqlx::FromRow)]
pub struct DeviceVersionsRow {
    id: String,
    product: String,
    firmware: Json<BTreeMap<String, String>>,
}

impl From<DeviceVersionsRow> for DeviceVersions {
    fn from(r: DeviceVersionsRow) -> Self {
        DeviceVersions { id: r.id, product: r.product, firmware: r.firmware.0 }
    }
}

#[derive(sqlx::FromRow)]
pub struct PollSeedRow {
    tenant: String,
    id: String,
    token_hash: String,
    attributes_requested: bool,
    installed: Option<i64>,
    offered: bool,
}

impl From<PollSeedRow> for PollSeed {
    fn from(r: PollSeedRow) -> Self {
        PollSeed {
            tenant: r.tenant,
            id: r.id,
            token_hash: r.token_hash,
            attributes_requested: r.attributes_requested,
            installed: r.installed,
            offered: r.offered,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct SavedFilterRow {
    id: String,
    name: String,
    description: Option<String>,
    filter: Json<FilterJson>,
    created_at: i64,
    updated_at: i64,
    updated_by: Option<String>,
}

impl TryFrom<SavedFilterRow> for SavedFilter {
    type Error = StoreError;
    fn try_from(r: SavedFilterRow) -> Result<Self, StoreError> {
        let filter = Filter::from_json(&r.filter.0).map_err(|e| {
            let problems: Vec<String> = e.iter().map(ToString::to_string).collect();
            StoreError::Backend(format!("saved filter `{}` no longer reads: {}", r.id, problems.join("; ")))
        })?;
        Ok(SavedFilter {
            id: r.id,
            name: r.name,
            description: r.description,
            filter,
            created_at: ts(r.created_at)?,
            updated_at: ts(r.updated_at)?,
            updated_by: r.updated_by,
        })
    }
}
