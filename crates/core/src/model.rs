//! The domain's records. Every record belongs to one tenant; the store
//! keeps that scoping, so the records themselves do not repeat it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::VersionScheme;

/// The name of the tenant that exists from the first start.
pub const DEFAULT_TENANT: &str = "default";

/// An organisation: the unit of isolation. Its `id` is its name in lower case,
/// which is how the device API matches tenants (case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in its tenant, keys included.
    Admin,
    /// The fleet and jobs: products, firmware, devices, groups, jobs.
    Operator,
    /// Read only.
    Viewer,
    /// Only record an end user's consent to an execution (what a mobile app holds).
    Consent,
}

/// The kinds of access a call needs; roles grant a set of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    WriteFleet,
    ManageKeys,
    GiveConsent,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::Consent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Consent => "consent",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn allows(self, access: Access) -> bool {
        match self {
            Role::Admin => true,
            Role::Operator => matches!(access, Access::Read | Access::WriteFleet | Access::GiveConsent),
            Role::Viewer => matches!(access, Access::Read),
            Role::Consent => matches!(access, Access::GiveConsent),
        }
    }
}

/// An operator's account, to sign in to the dashboard by name and password:
/// a role in a tenant, as an API key has. Names are unique across tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
}

/// A signed-in user's session (the store knows it by its token's hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub created_at: Timestamp,
    /// It stops working at this instant.
    pub expires_at: Timestamp,
}

/// An API key as stored: never the token itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub tenant: String,
    pub role: Role,
    pub name: Option<String>,
    /// The server administrator's key (the bootstrap key): may create tenants.
    pub server_admin: bool,
    pub created_at: Timestamp,
    /// When set, the key stops working at this instant.
    pub expires_at: Option<Timestamp>,
    /// The token's first characters, to recognise it by (never enough to use it).
    pub token_prefix: Option<String>,
}

impl ApiKey {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// An admin key that never expires: what keeps a tenant manageable.
    pub fn is_lasting_admin(&self) -> bool {
        self.role == Role::Admin && self.expires_at.is_none()
    }
}

/// A change to an API key made through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    Delete,
    /// Fields to set; `None` leaves a field as it is (`Some(None)` clears it).
    Update {
        role: Option<Role>,
        name: Option<Option<String>>,
        expires_at: Option<Option<Timestamp>>,
    },
}

/// Why a key may not be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// The server administrator's key is replaced only by setting a bootstrap token.
    ServerAdmin,
    /// The tenant would be left without an admin key that never expires.
    LastAdmin,
}

impl KeyChange {
    /// Checks the change against the rules that keep every tenant manageable,
    /// given how many other admin keys of the tenant never expire, and returns
    /// the key as changed (`None`: deleted).
    pub fn apply(&self, key: &ApiKey, other_lasting_admins: u64) -> Result<Option<ApiKey>, KeyRefusal> {
        let changed = match self {
            KeyChange::Delete => None,
            KeyChange::Update { role, name, expires_at } => Some(ApiKey {
                role: role.unwrap_or(key.role),
                name: name.clone().unwrap_or_else(|| key.name.clone()),
                expires_at: expires_at.unwrap_or(key.expires_at),
                ..key.clone()
            }),
        };
        let stays_lasting_admin = changed.as_ref().is_some_and(ApiKey::is_lasting_admin);
        if key.server_admin && !stays_lasting_admin {
            return Err(KeyRefusal::ServerAdmin);
        }
        if key.is_lasting_admin() && !stays_lasting_admin && other_lasting_admins == 0 {
            return Err(KeyRefusal::LastAdmin);
        }
        Ok(changed)
    }
}

/// A product (OEM model, ProductKey): the kind of device firmware is built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub version_scheme: VersionScheme,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One file of a firmware image: a component delivered with its own version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareFile {
    /// The file name, unique within the image.
    pub name: String,
    /// The device component this file installs (`host`, `module`, …).
    pub component: String,
    pub version: String,
    pub size: u64,
    pub sha256: String,
    /// Empty for files stored before updraft kept it (computed again when needed).
    #[serde(default)]
    pub sha512: String,
    pub sha1: String,
    pub md5: String,
    /// Where the blob store keeps the file's bytes.
    pub blob: String,
    /// The file's verified signature, when it is signed (boxed: most files are not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_signing: Option<Box<crate::CodeSigning>>,
}

/// A firmware image: one or more files for one product, under one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware {
    pub id: String,
    pub product: String,
    pub version: String,
    pub name: Option<String>,
    pub release_notes: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// An upgrade job may use this image only once a verify job succeeded.
    pub needs_verification: bool,
    pub verified: bool,
    /// Anti-rollback: a device never installs an image of a lower security
    /// version than the one it runs (the TUF targets carry it).
    pub security_version: u64,
    pub files: Vec<FirmwareFile>,
    pub created_at: Timestamp,
}

impl Firmware {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Whether a device is reachable now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    Online,
    #[default]
    Offline,
    Initializing,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Online => "online",
            ConnectionStatus::Offline => "offline",
            ConnectionStatus::Initializing => "initializing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Online, Self::Offline, Self::Initializing].into_iter().find(|c| c.as_str() == s)
    }
}

/// A typed device property value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Bool(bool),
    Number(f64),
    String(String),
}

impl Eq for PropertyValue {}

/// A device (DSN, device key, thing, controller) and what it reported of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub product: String,
    /// Installed firmware version per component (`host` → `1.2.0`).
    pub firmware: BTreeMap<String, String>,
    pub hardware_version: Option<String>,
    /// The connectivity module's model and firmware version.
    pub module_model: Option<String>,
    pub module_version: Option<String>,
    pub template_id: Option<String>,
    pub properties: BTreeMap<String, PropertyValue>,
    pub metadata: BTreeMap<String, String>,
    pub activated_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    pub connection_status: ConnectionStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The attributes of a device that its owner sets (everything but identity and times).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceAttributes {
    pub firmware: BTreeMap<String, String>,
    pub hardware_version: Option<String>,
    pub module_model: Option<String>,
    pub module_version: Option<String>,
    pub template_id: Option<String>,
    pub properties: BTreeMap<String, PropertyValue>,
    pub metadata: BTreeMap<String, String>,
    pub activated_at: Option<Timestamp>,
    pub connection_status: Option<ConnectionStatus>,
}

/// A device to register, with the SHA-256 of the token issued for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub id: String,
    pub product: String,
    pub attributes: DeviceAttributes,
    pub token_hash: String,
}

impl NewDevice {
    /// The device record as it is first stored.
    pub fn into_device(self, now: Timestamp) -> Device {
        let a = self.attributes;
        Device {
            id: self.id,
            product: self.product,
            firmware: a.firmware,
            hardware_version: a.hardware_version,
            module_model: a.module_model,
            module_version: a.module_version,
            template_id: a.template_id,
            properties: a.properties,
            metadata: a.metadata,
            activated_at: a.activated_at,
            last_seen_at: None,
            connection_status: a.connection_status.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// A static group of devices, of one product or across products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// When set, only devices of this product may be members.
    pub product: Option<String>,
    pub member_count: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(Role::Admin.allows(Access::ManageKeys));
        assert!(!Role::Operator.allows(Access::ManageKeys));
        assert!(Role::Operator.allows(Access::WriteFleet));
        assert!(!Role::Viewer.allows(Access::WriteFleet));
        assert!(Role::Viewer.allows(Access::Read));
        assert!(!Role::Consent.allows(Access::Read));
        assert!(Role::Consent.allows(Access::GiveConsent));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn property_values_are_typed_in_json() {
        let v: BTreeMap<String, PropertyValue> = serde_json::from_str(r#"{"a": true, "b": 2.5, "c": "eu"}"#).unwrap();
        assert_eq!(v["a"], PropertyValue::Bool(true));
        assert_eq!(v["b"], PropertyValue::Number(2.5));
        assert_eq!(v["c"], PropertyValue::String("eu".into()));
    }
}

#[cfg(test)]
mod key_rules {
    use super::*;

    fn key(role: Role, server_admin: bool) -> ApiKey {
        ApiKey {
            id: "k".into(),
            tenant: "t".into(),
            role,
            name: None,
            server_admin,
            created_at: Timestamp::UNIX_EPOCH,
            expires_at: None,
            token_prefix: None,
        }
    }

    #[test]
    fn a_tenant_keeps_a_lasting_admin_key_and_the_server_administrator_keeps_its_key() {
        let downgrade = KeyChange::Update { role: Some(Role::Viewer), name: None, expires_at: None };
        let expire = KeyChange::Update { role: None, name: None, expires_at: Some(Some(Timestamp::UNIX_EPOCH)) };
        let rename = KeyChange::Update { role: None, name: Some(Some("n".into())), expires_at: None };
        let admin = key(Role::Admin, false);
        for change in [&KeyChange::Delete, &downgrade, &expire] {
            assert_eq!(change.apply(&admin, 0), Err(KeyRefusal::LastAdmin));
            assert!(change.apply(&admin, 1).is_ok());
            assert_eq!(change.apply(&key(Role::Admin, true), 5), Err(KeyRefusal::ServerAdmin));
            assert!(change.apply(&key(Role::Operator, false), 0).is_ok());
        }
        assert_eq!(rename.apply(&key(Role::Admin, true), 0).unwrap().unwrap().name.as_deref(), Some("n"));
        assert_eq!(KeyChange::Delete.apply(&key(Role::Viewer, false), 0), Ok(None));
    }
}
