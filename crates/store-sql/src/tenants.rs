//! [`TenantStore`] on SQL: tenants and their API keys.

use std::collections::BTreeMap;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::AssertSqlSafe;
use updraft_app::store::{AccessKey, Change, StoreError, StoreResult, TenantStore};
use updraft_core::{ApiKey, KeyChange, KeyRefusal, Session, Tenant, User};

use crate::query::{QueryExt, query};
use crate::{
    AccessKeyRow, Conn, KEY_SELECT, KeyRow, SESSION_SELECT, SealedAccessKeyRow, SessionRow, SqlBackend, SqlStore,
    TenantRow, USER_SELECT, UserRow, conflict_or, db_err, us,
};

#[async_trait]
impl<B: SqlBackend> TenantStore for SqlStore<B> {
    async fn ensure_tenant(&self, t: &Tenant) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let r =
            query::<B>("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                .arg(&t.id)
                .arg(&t.name)
                .arg(us(t.created_at))
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
        let created = B::rows_affected(&r) == 1;
        let changes = if created { vec![Change::TenantCreated { tenant: t.id.clone() }] } else { Vec::new() };
        self.commit_events(tx, &t.id, changes).await?;
        Ok(created)
    }

    async fn create_tenant(&self, t: &Tenant, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .arg(&t.id)
            .arg(&t.name)
            .arg(us(t.created_at))
            .run(&mut *tx)
            .await
            .map_err(conflict_or("tenant", &t.id))?;
        Self::insert_key(&mut tx, key, token_hash).await?;
        let changes = vec![Change::TenantCreated { tenant: t.id.clone() }, Change::KeyCreated { key: key.id.clone() }];
        self.commit_events(tx, &t.id, changes).await
    }

    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let row: Option<TenantRow> = query::<B>("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .arg(id)
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(Tenant::try_from).transpose()
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows: Vec<TenantRow> = query::<B>("SELECT id, name, created_at FROM tenants ORDER BY id")
            .rows(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(Tenant::try_from).collect()
    }

    async fn create_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::insert_key(&mut tx, key, token_hash).await?;
        self.commit_events(tx, &key.tenant, vec![Change::KeyCreated { key: key.id.clone() }]).await
    }

    async fn create_access_key(&self, a: &AccessKey, sealed_secret: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>(
            "INSERT INTO access_keys (id, tenant, key_id, secret, created_at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM api_keys WHERE tenant = $2 AND id = $3)",
        )
        .arg(&a.id)
        .arg(&a.tenant)
        .arg(&a.key)
        .arg(sealed_secret)
        .arg(us(a.created_at))
        .run(&mut *tx)
        .await
        .map_err(conflict_or("access key", &a.id))?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("key", &a.key));
        }
        self.commit_events(tx, &a.tenant, vec![Change::AccessKeyCreated { access_key: a.id.clone() }]).await
    }

    async fn access_key(&self, id: &str) -> StoreResult<Option<(AccessKey, ApiKey, String)>> {
        let row: Option<SealedAccessKeyRow> =
            query::<B>("SELECT id, tenant, key_id, secret, created_at FROM access_keys WHERE id = $1")
                .arg(id)
                .optional_row(&self.pool)
                .await
                .map_err(db_err)?;
        let Some(SealedAccessKeyRow { key: row, secret }) = row else { return Ok(None) };
        let access = AccessKey::try_from(row)?;
        let key: Option<KeyRow> = query::<B>(AssertSqlSafe(format!("{KEY_SELECT} WHERE tenant = $1 AND id = $2")))
            .arg(&access.tenant)
            .arg(&access.key)
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(key) = key else { return Ok(None) };
        Ok(Some((access, ApiKey::try_from(key)?, secret)))
    }

    async fn list_access_keys(&self, tenant: &str) -> StoreResult<Vec<AccessKey>> {
        let rows: Vec<AccessKeyRow> = query::<B>(
            "SELECT id, tenant, key_id, created_at FROM access_keys WHERE tenant = $1 ORDER BY created_at, id",
        )
        .arg(tenant)
        .rows(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(AccessKey::try_from).collect()
    }

    async fn delete_access_key(&self, tenant: &str, id: &str) -> StoreResult<()> {
        self.delete_row("access_keys", "access key", tenant, id, Change::AccessKeyDeleted { access_key: id.to_owned() })
            .await
    }

    async fn key_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row: Option<KeyRow> = query::<B>(AssertSqlSafe(format!("{KEY_SELECT} WHERE token_hash = $1")))
            .arg(token_hash)
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn list_keys(&self, tenant: &str) -> StoreResult<Vec<ApiKey>> {
        let rows: Vec<KeyRow> =
            query::<B>(AssertSqlSafe(format!("{KEY_SELECT} WHERE tenant = $1 ORDER BY created_at, id")))
                .arg(tenant)
                .rows(&self.pool)
                .await
                .map_err(db_err)?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    async fn change_key(
        &self,
        tenant: &str,
        id: &str,
        change: &KeyChange,
    ) -> StoreResult<Result<Option<ApiKey>, KeyRefusal>> {
        let mut tx = self.begin_write().await?;
        // Lock the tenant's admin keys: two concurrent changes cannot both take the last one.
        let admins: Vec<KeyRow> = query::<B>(AssertSqlSafe(format!(
            "{KEY_SELECT} WHERE tenant = $1 AND role = 'admin' ORDER BY id{}",
            B::LOCK
        )))
        .arg(tenant)
        .rows(&mut *tx)
        .await
        .map_err(db_err)?;
        let key: ApiKey = Self::lock_one::<KeyRow, _>(&mut tx, KEY_SELECT, "key", tenant, id).await?;
        let mut others = 0;
        for row in admins {
            let admin = ApiKey::try_from(row)?;
            if admin.id != key.id && admin.is_lasting_admin() {
                others += 1;
            }
        }
        let changed = match change.apply(&key, others) {
            Ok(changed) => changed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        match &changed {
            None => query::<B>("DELETE FROM api_keys WHERE tenant = $1 AND id = $2").arg(tenant).arg(id),
            Some(k) => {
                query::<B>("UPDATE api_keys SET role = $3, name = $4, expires_at = $5 WHERE tenant = $1 AND id = $2")
                    .arg(tenant)
                    .arg(id)
                    .arg(k.role.as_str())
                    .arg(k.name.clone())
                    .arg(k.expires_at.map(us))
            }
        }
        .run(&mut *tx)
        .await
        .map_err(db_err)?;
        let state = |k: &ApiKey| {
            BTreeMap::from([
                ("role".to_owned(), k.role.as_str().to_owned()),
                ("name".to_owned(), k.name.clone().unwrap_or_default()),
                ("expires_at".to_owned(), k.expires_at.map(|t| t.to_string()).unwrap_or_default()),
            ])
        };
        let change = Change::KeyChanged {
            key: id.to_owned(),
            deleted: changed.is_none(),
            before: Some(state(&key)),
            after: changed.as_ref().map(state),
        };
        self.commit_events(tx, tenant, vec![change]).await?;
        Ok(Ok(changed))
    }

    async fn has_server_admin_key(&self) -> StoreResult<bool> {
        let n: i64 =
            query::<B>("SELECT COUNT(*) FROM api_keys WHERE server_admin").scalar(&self.pool).await.map_err(db_err)?;
        Ok(n > 0)
    }

    async fn replace_server_admin_key(&self, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>("DELETE FROM api_keys WHERE server_admin OR token_hash = $1")
            .arg(token_hash)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        Self::insert_key(&mut tx, key, token_hash).await?;
        self.commit_events(tx, &key.tenant, vec![Change::KeyCreated { key: key.id.clone() }]).await
    }

    async fn create_user(&self, user: &User, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>(
            "INSERT INTO users (id, tenant, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .arg(&user.id)
        .arg(&user.tenant)
        .arg(&user.name)
        .arg(user.role.as_str())
        .arg(password_hash)
        .arg(us(user.created_at))
        .run(&mut *tx)
        .await
        .map_err(conflict_or("user", &user.name))?;
        self.commit_events(tx, &user.tenant, vec![Change::UserCreated { user: user.id.clone() }]).await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<(User, String)>> {
        let row: Option<UserRow> = query::<B>(AssertSqlSafe(format!("{USER_SELECT} WHERE name = $1")))
            .arg(name)
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            let hash = r.password_hash.clone();
            User::try_from(r).map(|u| (u, hash))
        })
        .transpose()
    }

    async fn list_users(&self, tenant: &str) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = query::<B>(AssertSqlSafe(format!("{USER_SELECT} WHERE tenant = $1 ORDER BY name")))
            .arg(tenant)
            .rows(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn delete_user(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>("DELETE FROM sessions WHERE user_id = $1 AND user_id IN (SELECT id FROM users WHERE tenant = $2)")
            .arg(id)
            .arg(tenant)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        Self::delete_in(&mut tx, "users", "user", tenant, id).await?;
        self.commit_events(tx, tenant, vec![Change::UserChanged { user: id.to_owned(), deleted: true }]).await
    }

    async fn set_user_password(&self, tenant: &str, id: &str, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let r = query::<B>("UPDATE users SET password_hash = $3 WHERE tenant = $1 AND id = $2")
            .arg(tenant)
            .arg(id)
            .arg(password_hash)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found("user", id));
        }
        query::<B>("DELETE FROM sessions WHERE user_id = $1").arg(id).run(&mut *tx).await.map_err(db_err)?;
        self.commit_events(tx, tenant, vec![Change::UserChanged { user: id.to_owned(), deleted: false }]).await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user: &User,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        query::<B>("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .arg(token_hash)
            .arg(&user.id)
            .arg(us(created_at))
            .arg(us(expires_at))
            .run(&mut *tx)
            .await
            .map_err(conflict_or("session", "(its token)"))?;
        self.commit_events(tx, &user.tenant, vec![Change::SignedIn { user: user.id.clone() }]).await
    }

    async fn session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Session>> {
        let row: Option<SessionRow> =
            query::<B>(AssertSqlSafe(format!("{SESSION_SELECT} WHERE s.token_hash = $1 AND s.expires_at > $2")))
                .arg(token_hash)
                .arg(us(now))
                .optional_row(&self.pool)
                .await
                .map_err(db_err)?;
        row.map(Session::try_from).transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let row: Option<SessionRow> = query::<B>(AssertSqlSafe(format!("{SESSION_SELECT} WHERE s.token_hash = $1")))
            .arg(token_hash)
            .optional_row(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(session) = row.map(Session::try_from).transpose()? else { return Ok(()) };
        query::<B>("DELETE FROM sessions WHERE token_hash = $1").arg(token_hash).run(&mut *tx).await.map_err(db_err)?;
        let user = session.user;
        self.commit_events(tx, &user.tenant, vec![Change::SignedOut { user: user.id }]).await
    }

    async fn prune_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        let r = query::<B>("DELETE FROM sessions WHERE expires_at <= $1")
            .arg(us(now))
            .run(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(B::rows_affected(&r))
    }
}

impl<B: SqlBackend> SqlStore<B> {
    pub(crate) async fn insert_key(tx: &mut Conn<B>, key: &ApiKey, token_hash: &str) -> StoreResult<()> {
        query::<B>(
        "INSERT INTO api_keys (id, tenant, role, name, server_admin, token_hash, created_at, expires_at, token_prefix)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .arg(&key.id)
    .arg(&key.tenant)
    .arg(key.role.as_str())
    .arg(&key.name)
    .arg(key.server_admin)
    .arg(token_hash)
    .arg(us(key.created_at))
    .arg(key.expires_at.map(us))
    .arg(&key.token_prefix)
    .run(&mut *tx)
    .await
    .map_err(conflict_or("key", &key.id))?;
        Ok(())
    }
}
