//! Rows as SQLite returns them, and their conversion into domain records.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sqlx::types::Json;
use updraft_core::{
    ApiKey, ConnectionStatus, Device, Firmware, FirmwareFile, Group, Product, PropertyValue, Role, Tenant,
    VersionScheme,
};
use updraft_store::{StoreError, sortable};

pub const KEY_SELECT: &str = "SELECT id, tenant, role, name, server_admin, created_at FROM api_keys";
pub const PRODUCT_SELECT: &str = "SELECT key, name, description, version_scheme, created_at, updated_at FROM products";
pub const FIRMWARE_SELECT: &str = "SELECT id, product, version, name, release_notes, metadata, needs_verification, \
     verified, files, created_at FROM firmware";
pub const DEVICE_SELECT: &str = "SELECT tenant, id, product, firmware, hardware_version, module_model, module_version, \
     template_id, properties, metadata, activated_at, last_seen_at, connection_status, created_at, updated_at FROM devices";
pub const GROUP_SELECT: &str = "SELECT id, name, description, product, created_at, updated_at, \
     (SELECT COUNT(*) FROM group_members m WHERE m.tenant = g.tenant AND m.group_id = g.id) AS member_count \
     FROM device_groups g";
/// A device-list condition: the device is a member of the group bound at `{}`.
pub const GROUP_MEMBER_FILTER: &str = "EXISTS (SELECT 1 FROM group_members m WHERE m.tenant = devices.tenant \
     AND m.device_id = devices.id AND m.group_id = {})";

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
