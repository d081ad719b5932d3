//! Device filters: estimating and previewing what a filter matches, and saved
//! filters. A filter is given in its text form (`query`), its JSON form
//! (`filter`) or as a saved filter's id (`filter_id`); saved filters answer
//! both forms. The language is documented in `docs/filters.md`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::devices::DeviceOut;

/// Which filter: exactly one of `query`, `filter` and `filter_id`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FilterSpecIn {
    /// The text form: `product == "thermo-x" and fw.host < "2.0.0"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The JSON form.
    #[serde(default, deserialize_with = "crate::present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::filter_json_in))]
    pub filter: Option<Value>,
    /// A saved filter's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<String>,
}

/// A preview: the filter, and how many devices to show (default 50, at most 1000).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, deserialize_with = "crate::present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::filter_json_in))]
    pub filter: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = FilterEstimateOut))]
pub struct EstimateOut {
    /// How many devices the filter matches now.
    pub count: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewOut {
    /// The first matching devices, by id.
    pub items: Vec<DeviceOut>,
    pub limit: u32,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SavedFilterIn {
    /// `[A-Za-z0-9_-]{1,128}`; generated when absent.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,128}$"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The text form (give this or `filter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The JSON form (give this or `query`).
    #[serde(default, deserialize_with = "crate::present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::filter_json_in))]
    pub filter: Option<Value>,
}

/// Changes to a saved filter: absent fields stay; `query` or `filter` replaces the filter.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SavedFilterPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, deserialize_with = "crate::present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::filter_json_in))]
    pub filter: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SavedFilterOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The canonical text form.
    pub query: String,
    /// The canonical JSON form.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::filter_json_out))]
    pub filter: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    /// The API key that last wrote it.
    pub updated_by: Option<String>,
}
