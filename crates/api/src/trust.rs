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
