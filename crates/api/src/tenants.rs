//! Tenants (organisations): created by the server administrator only.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::Tenant;

use crate::keys::KeyOut;

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// `[A-Za-z0-9_-]{1,64}`; matched case-insensitively.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantOut {
    pub id: String,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl From<Tenant> for TenantOut {
    fn from(t: Tenant) -> Self {
        TenantOut { id: t.id, name: t.name, created_at: t.created_at }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantCreated {
    pub tenant: TenantOut,
    /// The tenant's first admin key.
    pub key: KeyOut,
    /// The same key's token, shown this once.
    pub token: String,
}
