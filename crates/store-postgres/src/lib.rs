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

    /// Makes releases to the same devices wait for each other until the
    /// transaction ends (so that a device never gets two executions in
    /// progress): a transaction-scoped advisory lock per device, taken in one
    /// order so that releases never wait on each other in a circle. Devices
    /// share [`DEVICE_LOCK_SLOTS`] locks (a shared slot only makes two releases
    /// wait), which bounds the locks one release holds.
    async fn lock_devices(tx: &mut sqlx::PgConnection, tenant: &str, devices: &[String]) -> StoreResult<()> {
        if devices.is_empty() {
            return Ok(());
        }
        let mut slots: Vec<i32> = devices.iter().map(|d| device_lock_slot(tenant, d)).collect();
        slots.sort_unstable();
        slots.dedup();
        sqlx::query(
            "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) WITH ORDINALITY AS u(k, i) ORDER BY i",
        )
        .bind(DEVICE_LOCK_SPACE)
        .bind(&slots)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// The advisory lock space of device releases (`pg_advisory_xact_lock(space, slot)`).
const DEVICE_LOCK_SPACE: i32 = 0x7570_6466;
/// How many advisory locks the devices share.
const DEVICE_LOCK_SLOTS: u32 = 4096;

/// A device's advisory lock slot: FNV-1a of tenant and device, the same in every replica.
fn device_lock_slot(tenant: &str, device: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in tenant.bytes().chain([0]).chain(device.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h % DEVICE_LOCK_SLOTS) as i32
}

updraft_store_sql::impl_sql_store!(
    PostgresStore,
    Postgres,
    like = " ILIKE ",
    lock = " FOR UPDATE",
    name = "postgres",
    dialect = updraft_store_sql::Dialect::Postgres
);
