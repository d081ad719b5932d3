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
        let admin = server_admin_key;
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

    /// Issues a new server administrator key in place of the old one (lost, or leaked), which
    /// stops working at once; returns its token, to be shown once. Only someone who can open
    /// the server's store directly gets here (`updraft admin reset-key`), so the actor is the
    /// system's.
    pub async fn reset_server_admin_key(&self, actor: &Actor) -> Result<String> {
        actor.require_server_admin()?;
        self.bootstrap(None).await?;
        let token = new_token("upd_k_");
        let key = server_admin_key(self.now(), &token);
        self.store.replace_server_admin_key(&key, &token_hash(&token)).await?;
        tracing::warn!(key = %key.id, "server administrator key reset");
        Ok(token)
    }
}

/// The server administrator's key (one per server, in the `default` tenant) for `token`.
fn server_admin_key(now: Timestamp, token: &str) -> ApiKey {
    ApiKey {
        id: "bootstrap".into(),
        tenant: DEFAULT_TENANT.into(),
        role: Role::Admin,
        name: Some("server administrator".into()),
        server_admin: true,
        created_at: now,
        expires_at: None,
        token_prefix: Some(token_prefix(token)),
    }
}
