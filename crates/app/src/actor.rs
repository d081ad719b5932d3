//! Who calls a use case, and what they may do: decided here, once, for every
//! front door.

use sha2::{Digest, Sha256};
use updraft_core::{Access, ApiKey, Role, User};

use crate::error::{Error, ErrorCode, Result};

/// The caller of a use case.
#[derive(Debug, Clone)]
pub enum Actor {
    /// An operator or a script, with an API key of a tenant.
    Key(ApiKey),
    /// A device, speaking for itself with its own token.
    Device { tenant: String, device: String },
    /// A gateway, speaking for the devices of its tenant.
    Gateway { tenant: String },
    /// An operator signed in to the dashboard, with the role of their account.
    User(User),
    /// The server itself (a worker, a follower).
    System(&'static str),
}

impl Actor {
    /// Names this actor as the one acting in the current task's slot (see
    /// `store::acting`): what the task writes from now on is recorded as its doing.
    pub fn act(&self) {
        crate::store::set_actor(self.name());
    }

    /// The tenant the actor acts in; the system acts across tenants.
    pub fn tenant(&self) -> &str {
        match self {
            Actor::Key(key) => &key.tenant,
            Actor::User(user) => &user.tenant,
            Actor::Device { tenant, .. } | Actor::Gateway { tenant } => tenant,
            Actor::System(_) => "",
        }
    }

    /// The API key's id, or who else acted, as events and logs name it.
    pub fn name(&self) -> String {
        match self {
            Actor::Key(key) => format!("key:{}", key.id),
            Actor::User(user) => format!("user:{}", user.id),
            Actor::Device { device, .. } => format!("device:{device}"),
            Actor::Gateway { .. } => "gateway".into(),
            Actor::System(name) => format!("system:{name}"),
        }
    }

    /// The API key acting, if a key acts.
    pub fn key(&self) -> Option<&ApiKey> {
        match self {
            Actor::Key(key) => Some(key),
            _ => None,
        }
    }

    /// Fails with `forbidden` unless the actor may have `access`.
    pub fn require(&self, access: Access) -> Result<()> {
        let role = match self {
            Actor::Key(key) => key.role,
            Actor::User(user) => user.role,
            Actor::System(_) => return Ok(()),
            Actor::Device { .. } | Actor::Gateway { .. } => {
                return Err(Error::new(ErrorCode::Forbidden, "a device may not use the management API"));
            }
        };
        match self {
            _ if role.allows(access) => Ok(()),
            _ => {
                let what = match access {
                    Access::Read => "read this",
                    Access::WriteFleet => "change the fleet",
                    Access::ManageKeys => "manage API keys",
                    Access::GiveConsent => "give consent",
                };
                let who = if matches!(self, Actor::User(_)) { "user" } else { "key" };
                Err(Error::new(ErrorCode::Forbidden, format!("a `{}` {who} may not {what}", role.as_str())))
            }
        }
    }

    /// Fails with `forbidden` unless the actor is the server administrator.
    pub fn require_server_admin(&self) -> Result<()> {
        match self {
            Actor::Key(key) if key.server_admin => Ok(()),
            Actor::System(_) => Ok(()),
            _ => Err(Error::new(ErrorCode::Forbidden, "only the server administrator's key may manage tenants")),
        }
    }

    /// The role of the acting key (the system acts as an admin).
    pub fn role(&self) -> Role {
        match self {
            Actor::Key(key) => key.role,
            Actor::User(user) => user.role,
            _ => Role::Admin,
        }
    }
}

/// A new random secret with a readable prefix (`upd_k_` for API keys, `upd_d_` for devices).
pub fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    format!("{prefix}{}", hex::encode(b))
}

/// A new short random id with a prefix (`key_…`, `fw_…`).
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    format!("{prefix}{}", hex::encode(b))
}

/// The first characters of a token, shown in key listings to recognise it by:
/// `upd_k_` and four hex digits (16 bits of 256), or the first four of a chosen token.
pub fn token_prefix(token: &str) -> String {
    let shown = if token.starts_with("upd_k_") { 10 } else { 4 };
    token.chars().take(shown).collect()
}

/// What the store keeps of a token: its SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
