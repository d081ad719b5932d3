//! Access keys: an id and a secret for the front doors whose platforms sign
//! requests with an HMAC (the Aliyun-style RPC, AWS Signature Version 4),
//! bound to an API key of the tenant: a request they sign acts as that key
//! (its role, its expiry). The secret is shown once; it is sealed under the
//! key-encryption key in the store, because verifying a signature needs it.

use updraft_core::Access;

use crate::actor::new_token;
use crate::error::{Error, ErrorCode, Result};
use crate::store::AccessKey;
use crate::{Actor, App};

/// What the secret is sealed for: a sealed secret copied onto another row does not open.
fn context(a: &AccessKey) -> String {
    format!("access-key:{}:{}", a.tenant, a.id)
}

impl App {
    /// A new access key acting as the tenant's API key `key`, and its secret (shown this once).
    pub async fn create_access_key(&self, actor: &Actor, key: &str) -> Result<(AccessKey, String)> {
        actor.require(Access::ManageKeys)?;
        // An id of 24 upper-case hex digits, as AccessKeyIds look; a secret of 40 characters.
        let id = format!("UPDAK{}", new_token("")[..19].to_ascii_uppercase());
        let access = AccessKey { id, tenant: actor.tenant().to_owned(), key: key.to_owned(), created_at: self.now() };
        let secret = new_token("")[..40].to_owned();
        let sealed = self.crypto.seal(&context(&access), secret.as_bytes());
        self.store.create_access_key(&access, &sealed).await?;
        tracing::info!(access_key = %access.id, key = %access.key, tenant = %access.tenant, "access key created");
        Ok((access, secret))
    }

    pub async fn list_access_keys(&self, actor: &Actor) -> Result<Vec<AccessKey>> {
        actor.require(Access::ManageKeys)?;
        Ok(self.store.list_access_keys(actor.tenant()).await?)
    }

    pub async fn delete_access_key(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::ManageKeys)?;
        Ok(self.store.delete_access_key(actor.tenant(), id).await?)
    }

    /// The API key an access key acts as (unless it expired), and the access key's secret,
    /// for a front door to check a request's signature with. `unauthorized` for an unknown id.
    pub async fn access_key_secret(&self, id: &str) -> Result<(Actor, String)> {
        let Some((access, key, sealed)) = self.store.access_key(id).await? else {
            return Err(Error::new(ErrorCode::Unauthorized, "the access key is not valid"));
        };
        if key.is_expired(self.now()) {
            return Err(Error::new(ErrorCode::Unauthorized, "the access key's API key has expired"));
        }
        let secret = self.crypto.open(&context(&access), &sealed).map_err(|e| {
            Error::internal(
                "opening an access key's secret (is the key-encryption key the one it was sealed under?)",
                e,
            )
        })?;
        let secret = String::from_utf8(secret).map_err(|e| Error::internal("an access key's secret", e))?;
        Ok((Actor::Key(key), secret))
    }
}
