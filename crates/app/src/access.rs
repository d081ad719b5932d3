//! Who may call: API keys authenticate here, and the server's administrator
//! key is put in place at start.

use jiff::Timestamp;
use updraft_core::{ApiKey, DEFAULT_TENANT, Role, Tenant};

use crate::actor::{new_token, token_hash, token_prefix};
use crate::error::{Error, ErrorCode, Result};
use crate::{Actor, App};

impl App {
    /// The key a bearer token names, if it is valid and not expired.
    pub async fn authenticate_key(&self, token: &str) -> Result<Actor> {
        match self.store.key_by_token_hash(&token_hash(token)).await? {
            Some(key) if key.is_expired(self.now()) => {
                Err(Error::new(ErrorCode::Unauthorized, "the API key has expired"))
            }
            Some(key) => Ok(Actor::Key(key)),
            None => Err(Error::new(ErrorCode::Unauthorized, "the API key is not valid")),
        }
    }

    /// Makes sure the `default` tenant and a server administrator key exist:
    /// `token` becomes the administrator's key when given. Returns the
    /// administrator token when one was generated now (to be shown once).
    pub async fn bootstrap(&self, token: Option<&str>) -> Result<Option<String>> {
        let now = self.now();
        let store = self.store.as_ref();
        store
            .ensure_tenant(&Tenant { id: DEFAULT_TENANT.into(), name: DEFAULT_TENANT.into(), created_at: now })
            .await?;
        let admin = |now: Timestamp, token: &str| ApiKey {
            id: "bootstrap".into(),
            tenant: DEFAULT_TENANT.into(),
            role: Role::Admin,
            name: Some("server administrator".into()),
            server_admin: true,
            created_at: now,
            expires_at: None,
            token_prefix: Some(token_prefix(token)),
        };
        if let Some(token) = token {
            if token.len() < 16 {
                return Err(Error::field("bootstrap_token", "the bootstrap token must be at least 16 characters"));
            }
            store.replace_server_admin_key(&admin(now, token), &token_hash(token)).await?;
            return Ok(None);
        }
        if store.has_server_admin_key().await? {
            return Ok(None);
        }
        let token = new_token("upd_k_");
        store.replace_server_admin_key(&admin(now, &token), &token_hash(&token)).await?;
        Ok(Some(token))
    }
}
