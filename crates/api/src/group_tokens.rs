//! Group tokens: a narrow credential for one group (seed 004's `token`, the
//! IoTaaP door's), acting as an API key of the tenant on that group only. Admin only.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupTokenIn {
    /// The group it is for.
    pub group: String,
    /// The id of the API key of the tenant whose role it acts with.
    pub key: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupTokenOut {
    pub id: String,
    pub group: String,
    pub key: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The token, present only in the answer that creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}
