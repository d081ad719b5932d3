//! API keys of the caller's tenant (admin role).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{ApiKey, Role};

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// `admin`, `operator`, `viewer` or `consent`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::role))]
    pub role: String,
    /// A label to recognise the key by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the key stops working (RFC 3339, in the future); absent: never.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// Changes to a key: only the fields given change (`null` clears `name` or `expires_at`).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Option<Timestamp>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyOut {
    pub id: String,
    pub tenant: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::role))]
    pub role: Role,
    pub name: Option<String>,
    pub server_admin: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When the key stops working; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// The token's first characters (`upd_k_1a2b`), to recognise it by; never the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_prefix: Option<String>,
    /// The secret, present only in the answer that creates the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl KeyOut {
    /// A key on the wire, with its token when it was just issued.
    pub fn new(k: ApiKey, token: Option<String>) -> Self {
        KeyOut {
            id: k.id,
            tenant: k.tenant,
            role: k.role,
            name: k.name,
            server_admin: k.server_admin,
            created_at: k.created_at,
            expires_at: k.expires_at,
            token_prefix: k.token_prefix,
            token,
        }
    }
}
