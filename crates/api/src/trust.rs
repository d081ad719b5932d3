//! TUF repositories (`/api/v1/products/{key}/trust`): the online keys'
//! public halves and the newest version of each role's metadata.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An online signing key of the repository (its private half never leaves the server).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustKeyOut {
    /// The TUF key id.
    pub key_id: String,
    /// `targets`, `snapshot` or `timestamp`.
    pub role: String,
    /// The TUF key object, as a root lists it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub public_key: serde_json::Value,
    /// Whether the current root lists it (a rotated key signs once a new root lists it).
    pub in_root: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// The newest version of one role's metadata.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustRoleOut {
    pub version: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires: Timestamp,
}

/// A product's TUF repository.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustOut {
    pub product: String,
    /// Where TUF clients read the metadata (`…/metadata/`: `1.root.json`, `timestamp.json`, …).
    pub metadata_url: String,
    /// Where TUF clients read the targets (the firmware files).
    pub targets_url: String,
    pub keys: Vec<TrustKeyOut>,
    pub root: Option<TrustRoleOut>,
    pub targets: Option<TrustRoleOut>,
    pub snapshot: Option<TrustRoleOut>,
    pub timestamp: Option<TrustRoleOut>,
}

/// Signed TUF root metadata (TUF specification §4.3), as `updraft trust init` and `sign-root`
/// upload it. Only its shape is described here: the server reads it with a TUF implementation
/// and refuses it (`trust_root_refused`) unless it is signed as TUF requires.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedRootIn {
    pub signed: RootIn,
    pub signatures: Vec<SignatureIn>,
}

/// The signed part of a root.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RootIn {
    /// `root`.
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    /// Must be true: updraft serves consistent snapshots.
    pub consistent_snapshot: bool,
    pub version: u64,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub expires: String,
    /// The public keys, by key id.
    pub keys: std::collections::BTreeMap<String, TufKeyIn>,
    /// `root`, `targets`, `snapshot`, `timestamp`: their key ids and threshold.
    pub roles: std::collections::BTreeMap<String, RoleKeysIn>,
}

/// A public key as TUF lists it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TufKeyIn {
    /// `ed25519`, `ecdsa` or `rsa`.
    pub keytype: String,
    pub scheme: String,
    /// `{"public": "…"}`.
    pub keyval: std::collections::BTreeMap<String, String>,
}

/// A role's key ids and threshold.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleKeysIn {
    pub keyids: Vec<String>,
    pub threshold: u64,
}

/// A signature over the canonical JSON of `signed`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignatureIn {
    pub keyid: String,
    /// Hex.
    pub sig: String,
}
