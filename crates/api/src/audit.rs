//! The audit log (admin role): who changed what, and when.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Which entries to read, newest first.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct AuditListParams {
    /// Only this actor: `key:<id>`, `user:<id>`, `system:<worker>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only this subject: the id of what changed (a job, a device, a key…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Only this kind (`job.changed`), or every kind under a prefix ending in `.` (`key.`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// From this instant on (RFC 3339).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Before this instant (RFC 3339).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[cfg_attr(feature = "openapi", param(maximum = 9223372036854775807_u64))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntryOut {
    /// The event's place in the stream.
    pub seq: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// Who: `key:<id>`, `user:<id>`, `system:<worker>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What kind of change: `job.created`, `key.changed`, `user.signed_in`…
    pub kind: String,
    /// The id of what changed.
    pub subject: String,
    /// The change as recorded, with its kind in `type`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub change: serde_json::Value,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPageOut {
    pub items: Vec<AuditEntryOut>,
    pub limit: u32,
    pub offset: u64,
}
