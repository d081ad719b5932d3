//! API keys: issued per tenant with a role, changed or deleted only as long
//! as the tenant and the server stay manageable (see [`KeyChange::apply`]).

use jiff::Timestamp;
use updraft_core::{Access, ApiKey, FieldError, KeyChange, Role, validate};

use crate::actor::{new_id, new_token, token_hash, token_prefix};
use crate::error::{Error, Result};
use crate::text::non_empty;
use crate::{Actor, App};

/// A key to issue.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// `admin`, `operator`, `viewer` or `consent`.
    pub role: String,
    pub name: Option<String>,
    /// When the key stops working (in the future); absent: never.
    pub expires_at: Option<Timestamp>,
}

/// Changes to a key: absent fields stay (`Some(None)` clears the name or the expiry).
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    /// `admin`, `operator`, `viewer` or `consent`.
    pub role: Option<String>,
    pub name: Option<Option<String>>,
    pub expires_at: Option<Option<Timestamp>>,
}

/// A key just issued, with its token: the only time the token is known.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub token: String,
}

fn unknown_role(role: &str) -> FieldError {
    FieldError::new("role", format!("unknown role `{role}`; roles: admin, operator, viewer, consent"))
}

/// A new key record and its token, for `tenant`.
pub(crate) fn issue(tenant: &str, role: Role, name: Option<String>, now: Timestamp) -> IssuedKey {
    let token = new_token("upd_k_");
    let key = ApiKey {
        id: new_id("key_"),
        tenant: tenant.to_owned(),
        role,
        name,
        server_admin: false,
        created_at: now,
        expires_at: None,
        token_prefix: Some(token_prefix(&token)),
    };
    IssuedKey { key, token }
}

impl App {
    /// Issues a key of the actor's tenant.
    pub async fn create_key(&self, actor: &Actor, input: NewKey) -> Result<IssuedKey> {
        actor.require(Access::ManageKeys)?;
        self.issue_key(actor.tenant(), input).await
    }

    /// Issues a key of any tenant: the server administrator's to give.
    pub async fn create_tenant_key(&self, actor: &Actor, tenant: &str, input: NewKey) -> Result<IssuedKey> {
        actor.require_server_admin()?;
        let tenant = self.get_tenant(actor, tenant).await?;
        self.issue_key(&tenant.id, input).await
    }

    /// Checks a requested key and issues it for `tenant`.
    async fn issue_key(&self, tenant: &str, input: NewKey) -> Result<IssuedKey> {
        let now = self.now();
        let mut errors: Vec<FieldError> = vec![];
        let role = Role::parse(&input.role);
        if role.is_none() {
            errors.push(unknown_role(&input.role));
        }
        let name = non_empty(input.name);
        if let Some(n) = &name {
            validate::text("name", n, 128, &mut errors);
        }
        if input.expires_at.is_some_and(|at| at <= now) {
            errors.push(FieldError::new("expires_at", "must be in the future"));
        }
        let Some(role) = role.filter(|_| errors.is_empty()) else { return Err(Error::invalid(errors)) };
        let mut issued = issue(tenant, role, name, now);
        issued.key.expires_at = input.expires_at;
        self.store.create_key(&issued.key, &token_hash(&issued.token)).await?;
        tracing::info!(key = %issued.key.id, role = role.as_str(), tenant = %issued.key.tenant, "api key created");
        Ok(issued)
    }

    /// The actor's tenant's keys (never their tokens).
    pub async fn list_keys(&self, actor: &Actor) -> Result<Vec<ApiKey>> {
        actor.require(Access::ManageKeys)?;
        Ok(self.store.list_keys(actor.tenant()).await?)
    }

    /// Changes a key of the actor's tenant; refused (`server_admin_key`,
    /// `last_admin_key`) when it would lock the server or the tenant out.
    pub async fn update_key(&self, actor: &Actor, id: &str, update: KeyUpdate) -> Result<ApiKey> {
        actor.require(Access::ManageKeys)?;
        let mut errors: Vec<FieldError> = vec![];
        let role = match update.role.as_deref().map(|r| (r, Role::parse(r))) {
            Some((r, None)) => {
                errors.push(unknown_role(r));
                None
            }
            Some((_, role)) => role,
            None => None,
        };
        let name = update.name.map(non_empty);
        if let Some(Some(n)) = &name {
            validate::text("name", n, 128, &mut errors);
        }
        if update.expires_at.flatten().is_some_and(|at| at <= self.now()) {
            errors.push(FieldError::new("expires_at", "must be in the future"));
        }
        if !errors.is_empty() {
            return Err(Error::invalid(errors));
        }
        let change = KeyChange::Update { role, name, expires_at: update.expires_at };
        let key = self.store.change_key(actor.tenant(), id, &change).await??;
        let key = key.ok_or_else(|| Error::not_found("key", id))?;
        tracing::info!(key = %id, role = key.role.as_str(), tenant = actor.tenant(), "api key changed");
        Ok(key)
    }

    /// Deletes a key of the actor's tenant, under the same rules as [`App::update_key`].
    pub async fn delete_key(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::ManageKeys)?;
        self.store.change_key(actor.tenant(), id, &KeyChange::Delete).await??;
        tracing::info!(key = %id, tenant = actor.tenant(), "api key deleted");
        Ok(())
    }
}
