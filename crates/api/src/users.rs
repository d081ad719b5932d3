//! Operators' accounts, to sign in to the dashboard (admin role).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{Role, User};

/// A user to create. The password is never shown back.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    /// What the user signs in with: 1 to 64 letters, digits and `. _ @ + -`, unique on the server.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._@+-]{1,64}$"))]
    pub name: String,
    /// `admin`, `operator`, `viewer` or `consent`, as an API key's.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::role))]
    pub role: String,
    /// 12 to 256 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 12, max_length = 256, format = Password))]
    pub password: String,
    /// Another tenant (the server administrator's to give); the caller's by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// A new password; the user's sessions end.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordIn {
    #[cfg_attr(feature = "openapi", schema(min_length = 12, max_length = 256, format = Password))]
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserOut {
    pub id: String,
    pub tenant: String,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::role))]
    pub role: Role,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        UserOut { id: u.id, tenant: u.tenant, name: u.name, role: u.role, created_at: u.created_at }
    }
}
