//! updraft's store on PostgreSQL: for fleets that outgrow one machine, and
//! for several server replicas sharing one database. The `Store` methods are
//! shared with SQLite (`updraft_store_sql::impl_sql_store!`).

pub mod testing;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use updraft_store::{StoreError, StoreResult};
use updraft_store_sql::db_err;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://…`) and runs migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(db_err)?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| StoreError::Backend(e.to_string()))?;
        let store = Self { pool };
        store.backfill_version_keys().await?;
        Ok(store)
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'_, Postgres>> {
        self.pool.begin().await.map_err(db_err)
    }
}

updraft_store_sql::impl_sql_store!(
    PostgresStore,
    Postgres,
    like = " ILIKE ",
    lock = " FOR UPDATE",
    name = "postgres",
    dialect = updraft_store_sql::Dialect::Postgres
);
