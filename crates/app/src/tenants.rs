//! Tenants (organisations): the server administrator's to create and see.

use updraft_core::{Role, Tenant, validate};

use crate::actor::token_hash;
use crate::error::{Error, Result};
use crate::keys::{IssuedKey, issue};
use crate::{Actor, App};

impl App {
    /// A new tenant, named `name` (its id is the name in lower case), and its
    /// first admin key.
    pub async fn create_tenant(&self, actor: &Actor, name: &str) -> Result<(Tenant, IssuedKey)> {
        actor.require_server_admin()?;
        let mut errors = vec![];
        validate::tenant_name("name", name, &mut errors);
        if !errors.is_empty() {
            return Err(Error::invalid(errors));
        }
        let now = self.now();
        let tenant = Tenant { id: name.to_ascii_lowercase(), name: name.to_owned(), created_at: now };
        let first = issue(&tenant.id, Role::Admin, Some("first admin key".into()), now);
        self.store.create_tenant(&tenant, &first.key, &token_hash(&first.token)).await?;
        tracing::info!(tenant = %tenant.id, "tenant created");
        Ok((tenant, first))
    }

    pub async fn list_tenants(&self, actor: &Actor) -> Result<Vec<Tenant>> {
        actor.require_server_admin()?;
        Ok(self.store.list_tenants().await?)
    }

    /// A tenant by its id or name (matched case-insensitively).
    pub async fn get_tenant(&self, actor: &Actor, id: &str) -> Result<Tenant> {
        actor.require_server_admin()?;
        self.store.get_tenant(&id.to_ascii_lowercase()).await?.ok_or_else(|| Error::not_found("tenant", id))
    }
}
