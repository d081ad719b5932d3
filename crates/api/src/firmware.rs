//! Firmware images. An upload is `multipart/form-data` (text fields and file
//! parts, described in the server's `FirmwareUpload` schema), so only its
//! `files` field has a type here.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::Firmware;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FirmwareFileOut {
    pub name: String,
    /// The device component this file installs.
    pub component: String,
    pub version: String,
    pub size: u64,
    pub sha256: String,
    /// SHA-512 (empty for files uploaded before updraft kept it).
    #[serde(default)]
    pub sha512: String,
    pub sha1: String,
    pub md5: String,
    /// Where to download it (management API).
    pub download: String,
    /// Its signature, when it is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_signing: Option<crate::code_signing::CodeSigningOut>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FirmwareOut {
    pub id: String,
    pub product: String,
    pub version: String,
    pub name: Option<String>,
    pub release_notes: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub needs_verification: bool,
    pub verified: bool,
    /// Anti-rollback: devices never install a lower security version than they run.
    #[serde(default)]
    pub security_version: u64,
    /// Total size of all files, in bytes.
    pub size: u64,
    pub files: Vec<FirmwareFileOut>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl From<Firmware> for FirmwareOut {
    fn from(f: Firmware) -> Self {
        let size = f.total_size();
        let files = f
            .files
            .into_iter()
            .map(|x| FirmwareFileOut {
                download: format!("/api/v1/firmware/{}/files/{}", f.id, x.name),
                name: x.name,
                component: x.component,
                version: x.version,
                size: x.size,
                sha256: x.sha256,
                sha512: x.sha512,
                sha1: x.sha1,
                md5: x.md5,
                code_signing: x.code_signing.map(|c| (*c).into()),
            })
            .collect();
        FirmwareOut {
            id: f.id,
            product: f.product,
            version: f.version,
            name: f.name,
            release_notes: f.release_notes,
            metadata: f.metadata,
            needs_verification: f.needs_verification,
            verified: f.verified,
            security_version: f.security_version,
            size,
            files,
            created_at: f.created_at,
        }
    }
}

/// How one uploaded file is described in the upload's `files` field (a JSON array of these).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// The file part's file name.
    pub name: String,
    /// The device component it installs (default `host` for a single file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Its version (default the image's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Seed 002's `codeSigning`: the file's signature, verified before the upload is accepted.
    #[serde(rename = "codeSigning", alias = "code_signing", skip_serializing_if = "Option::is_none")]
    pub code_signing: Option<crate::code_signing::CodeSigningIn>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct FirmwareListParams {
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[cfg_attr(feature = "openapi", param(maximum = 9223372036854775807_u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// `created_at` (default), `version`, `product` or `id`; `-` prefix for descending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    #[cfg_attr(feature = "openapi", param(max_length = 256))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Only this product's images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}
