//! Group tokens (seed 004's `token`): a narrow credential for one group, acting
//! as an API key of the tenant (its role and expiry) on that group only. The
//! token is shown once; the store keeps its SHA-256.

use updraft_core::{Access, FieldError, validate};

use crate::actor::{new_id, new_token, token_hash};
use crate::error::{Error, ErrorCode, Result};
use crate::store::GroupToken;
use crate::{Actor, App};

impl App {
    /// A new token for the tenant's group `group`, acting as its API key `key`, and
    /// the token (shown this once).
    pub async fn create_group_token(&self, actor: &Actor, group: &str, key: &str) -> Result<(GroupToken, String)> {
        actor.require(Access::ManageKeys)?;
        let mut errors: Vec<FieldError> = Vec::new();
        validate::key("group", group, &mut errors);
        validate::key("key", key, &mut errors);
        if !errors.is_empty() {
            return Err(Error::invalid(errors));
        }
        let t = GroupToken {
            id: new_id("gt_"),
            tenant: actor.tenant().to_owned(),
            group: group.to_owned(),
            key: key.to_owned(),
            created_at: self.now(),
        };
        let token = new_token("upd_gt_");
        self.store.create_group_token(&t, &token_hash(&token)).await?;
        tracing::info!(group_token = %t.id, group = %t.group, key = %t.key, tenant = %t.tenant, "group token created");
        Ok((t, token))
    }

    pub async fn list_group_tokens(&self, actor: &Actor) -> Result<Vec<GroupToken>> {
        actor.require(Access::ManageKeys)?;
        Ok(self.store.list_group_tokens(actor.tenant()).await?)
    }

    pub async fn delete_group_token(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::ManageKeys)?;
        Ok(self.store.delete_group_token(actor.tenant(), id).await?)
    }

    /// The group a token is for and the API key it acts as (unless it expired);
    /// `unauthorized` for an unknown token.
    pub async fn authenticate_group_token(&self, token: &str) -> Result<(GroupToken, Actor)> {
        match self.store.group_token(&token_hash(token)).await? {
            Some((_, key)) if key.is_expired(self.now()) => {
                Err(Error::new(ErrorCode::Unauthorized, "the group token's API key has expired"))
            }
            Some((t, key)) => Ok((t, Actor::Key(key))),
            None => Err(Error::new(ErrorCode::Unauthorized, "the group token is not valid")),
        }
    }
}
