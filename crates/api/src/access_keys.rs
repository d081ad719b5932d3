//! Access keys: an id and a secret that sign requests to the compatibility
//! doors that need a signature (docs/compat.md), acting as an API key of the
//! tenant. Admin only.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AccessKeyIn {
    /// The id of the API key of the tenant whose role the access key acts with.
    pub key: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessKeyOut {
    /// The `AccessKeyId` to sign with.
    pub id: String,
    /// The API key it acts as.
    pub key: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The secret (`AccessKeySecret`, AWS's secret access key), present only in the answer that creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
