//! Products (OEM models, ProductKeys).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{Product, VersionScheme};

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductIn {
    /// `[A-Za-z0-9_-]{1,128}`, unique in the tenant.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,128}$"))]
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `semver` (default) or `free` (any string, compared for equality only).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::version_scheme_or_null))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_scheme: Option<VersionScheme>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::version_scheme_or_null))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_scheme: Option<VersionScheme>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductOut {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::version_scheme))]
    pub version_scheme: VersionScheme,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl From<Product> for ProductOut {
    fn from(p: Product) -> Self {
        ProductOut {
            key: p.key,
            name: p.name,
            description: p.description,
            version_scheme: p.version_scheme,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}
