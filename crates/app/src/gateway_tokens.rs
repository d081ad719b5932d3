//! Gateway tokens: one secret that lets a gateway speak the device API for
//! any device of the tenant. Managed by admin keys.

use crate::store::GatewayToken;
use updraft_core::{Access, validate};

use crate::actor::{new_id, new_token, token_hash};
use crate::error::{Error, Result};
use crate::text::non_empty;
use crate::{Actor, App};

impl App {
    /// A new gateway token of the actor's tenant, and its secret (shown this once).
    pub async fn create_gateway_token(&self, actor: &Actor, name: Option<String>) -> Result<(GatewayToken, String)> {
        actor.require(Access::ManageKeys)?;
        let name = non_empty(name);
        if let Some(n) = &name {
            let mut errors = vec![];
            validate::text("name", n, 128, &mut errors);
            if !errors.is_empty() {
                return Err(Error::invalid(errors));
            }
        }
        let t = GatewayToken { id: new_id("gw_"), tenant: actor.tenant().to_owned(), name, created_at: self.now() };
        let token = new_token("upd_g_");
        self.store.create_gateway_token(&t, &token_hash(&token)).await?;
        tracing::info!(gateway_token = %t.id, tenant = %t.tenant, "gateway token created");
        Ok((t, token))
    }

    pub async fn list_gateway_tokens(&self, actor: &Actor) -> Result<Vec<GatewayToken>> {
        actor.require(Access::ManageKeys)?;
        Ok(self.store.list_gateway_tokens(actor.tenant()).await?)
    }

    pub async fn delete_gateway_token(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::ManageKeys)?;
        Ok(self.store.delete_gateway_token(actor.tenant(), id).await?)
    }
}
