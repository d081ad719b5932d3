//! updraft's store on PostgreSQL: for fleets that outgrow one machine, and
//! for several server replicas sharing one database. The store itself is
//! shared with SQLite ([`SqlStore`] over [`PostgresBackend`]).

pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPoolOptions, PgQueryResult};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use updraft_app::store::{EventFeed, StoreError, StoreResult};
use updraft_store_sql::{Dialect, NewExecutions, SqlBackend, SqlStore, db_err};

/// updraft's store on PostgreSQL.
pub type PostgresStore = SqlStore<PostgresBackend>;

/// The channel committed events are announced on.
const EVENTS_CHANNEL: &str = "updraft_events";

/// Connects to the database at `url` (`postgres://…`) and runs migrations.
pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // JIT compiling costs 20-40 ms on a scan of a million devices and saves
                // less (filter estimates, scope scans); the server's queries are short.
                // A PostgreSQL-compatible database without the setting keeps its default.
                if let Err(e) = sqlx::Executor::execute(&mut *conn, "SET jit = off").await {
                    tracing::debug!(error = %e, "jit setting not taken");
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(db_err)?;
    sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| StoreError::Backend(e.to_string()))?;
    let feed = Arc::<EventFeed>::default();
    let origin = format!("{}-{}", std::process::id(), random_suffix());
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await.map_err(db_err)?;
    listener.listen(EVENTS_CHANNEL).await.map_err(db_err)?;
    let listener = tokio::spawn(listen(listener, feed.clone(), origin.clone()));
    SqlStore::open(pool, feed, PostgresBackend { origin, listener }).await
}

fn random_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// Wakes this process's followers when another process commits events.
/// A lost connection may have lost notifications: reconnecting wakes
/// them too, and they read the stream from where they are.
async fn listen(mut listener: sqlx::postgres::PgListener, feed: Arc<EventFeed>, origin: String) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) if n.payload() == origin => {}
            Ok(Some(_)) => feed.remote_committed(),
            Ok(None) => {
                tracing::warn!("event notifications: connection lost, reconnecting");
                feed.remote_committed();
            }
            Err(e) => {
                tracing::warn!(error = %e, "event notifications failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                feed.remote_committed();
            }
        }
    }
}

/// PostgreSQL's side of [`SqlStore`]: what it runs besides the pool.
pub struct PostgresBackend {
    /// This process's name in event notifications (its own are not news to it).
    origin: String,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl SqlBackend for PostgresBackend {
    type Db = Postgres;

    const NAME: &'static str = "postgres";
    const LIKE: &'static str = " ILIKE ";
    const LOCK: &'static str = " FOR UPDATE";
    const DIALECT: Dialect = Dialect::Postgres;
    const ANALYZES: bool = true;
    /// Sequence numbers are taken before commit and transactions commit out
    /// of order: events are visible once every transaction of this database
    /// with a smaller id has ended. The horizon is the oldest transaction
    /// still running in the snapshot (`xip`), leaving out those
    /// pg_stat_activity shows running in other databases, or refreshing
    /// statistics (autovacuum's workers, and the store's own `ANALYZE` run as a
    /// statement of its own: none of them appends events); one that ended since
    /// the snapshot counts as ours, which only delays a read. Without running
    /// transactions, `xmax`.
    const EVENTS_VISIBLE: &'static str = "tx < (SELECT COALESCE(MIN(x::text::bigint), pg_snapshot_xmax(pg_current_snapshot())::text::bigint) \
               FROM pg_snapshot_xip(pg_current_snapshot()) AS x WHERE NOT EXISTS ( \
                   SELECT 1 FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL \
                   AND (a.datname IS DISTINCT FROM current_database() OR a.backend_type = 'autovacuum worker' \
                        OR (a.state = 'active' AND a.query LIKE 'ANALYZE %')) \
                   AND a.backend_xid::text::bigint = x::text::bigint % 4294967296))";

    async fn begin_write(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
        pool.begin().await.map_err(db_err)
    }

    /// Makes releases to the same devices wait for each other until the
    /// transaction ends (so that a device never gets two executions in
    /// progress): a transaction-scoped advisory lock per device, taken in one
    /// order so that releases never wait on each other in a circle. Devices
    /// share `DEVICE_LOCK_SLOTS` locks (a shared slot only makes two releases
    /// wait), which bounds the locks one release holds.
    async fn lock_devices(tx: &mut PgConnection, tenant: &str, devices: &[String]) -> StoreResult<()> {
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

    /// A transaction-scoped advisory lock per tenant: shared by the writers of
    /// executions, exclusive for a device's deletion.
    async fn lock_fleet(tx: &mut PgConnection, tenant: &str, exclusive: bool) -> StoreResult<()> {
        let sql = if exclusive {
            "SELECT pg_advisory_xact_lock($1, $2)"
        } else {
            "SELECT pg_advisory_xact_lock_shared($1, $2)"
        };
        sqlx::query(sql)
            .bind(FLEET_LOCK_SPACE)
            .bind(fnv1a(&[tenant]) as i32)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// One statement per 10,000 rows, bound as arrays: the executions and
    /// their first events, written from the rows the insert returns. No
    /// foreign key checks a row (each check would lock its device, a probe
    /// into a million devices' pages): a device deleted since it was read is
    /// among the few of `device_deletions`, and `lock_fleet` keeps a deletion
    /// from slipping in meanwhile.
    async fn insert_executions(tx: &mut PgConnection, new: &NewExecutions<'_>) -> StoreResult<u64> {
        let mut added = 0;
        for chunk in new.rows.chunks(10_000) {
            let devices: Vec<&str> = chunk.iter().map(|e| e.device).collect();
            let states: Vec<&str> = chunk.iter().map(|e| e.state.as_str()).collect();
            let finished: Vec<bool> = chunk.iter().map(|e| e.state.is_terminal()).collect();
            let phases: Vec<i64> = chunk.iter().map(|e| e.phase).collect();
            let actions: Vec<i64> = chunk.iter().map(|e| e.action).collect();
            let n: i64 = sqlx::query_scalar(
                "WITH v AS (
                     SELECT * FROM unnest($5::text[], $6::text[], $7::bool[], $8::int8[], $9::int8[])
                         AS v (device, state, finished, phase, action)),
                 new AS (
                     INSERT INTO executions (tenant, job, device, firmware, state, attempt, cancel_requested,
                         created_at, updated_at, finished_at, phase, action)
                     SELECT $1, $2, v.device, $3, v.state, 1, FALSE, $4, $4, CASE WHEN v.finished THEN $4 END,
                         v.phase, v.action
                     FROM v WHERE NOT EXISTS (
                         SELECT 1 FROM device_deletions x WHERE x.tenant = $1 AND x.id = v.device
                         AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.tenant = $1 AND d.id = v.device))
                     ON CONFLICT (tenant, job, device) DO NOTHING
                     RETURNING action_id, state),
                 first AS (
                     INSERT INTO execution_events (action_id, seq, at, state, source, report, details)
                     SELECT action_id, 1, $4, state, 'server', 'created', '[]'::jsonb FROM new)
                 SELECT COUNT(*) FROM new",
            )
            .bind(new.tenant)
            .bind(new.job)
            .bind(new.firmware)
            .bind(new.now)
            .bind(&devices)
            .bind(&states)
            .bind(&finished)
            .bind(&phases)
            .bind(&actions)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            added += n.max(0) as u64;
        }
        Ok(added)
    }

    /// Tells the other processes on this database, at commit, that events were appended.
    async fn notify_events(&self, conn: &mut PgConnection) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EVENTS_CHANNEL)
            .bind(&self.origin)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Stops listening for other processes' events (the listener holds a
    /// pooled connection, which closing the pool waits for).
    fn close(&self) {
        self.listener.abort();
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// The advisory lock space of device releases (`pg_advisory_xact_lock(space, slot)`).
const DEVICE_LOCK_SPACE: i32 = 0x7570_6466;
/// The advisory lock space of a tenant's fleet (`pg_advisory_xact_lock(space, hash)`).
const FLEET_LOCK_SPACE: i32 = 0x7570_6466 + 1;
/// How many advisory locks the devices share.
const DEVICE_LOCK_SLOTS: u32 = 4096;

/// A device's advisory lock slot: FNV-1a of tenant and device, the same in every replica.
fn device_lock_slot(tenant: &str, device: &str) -> i32 {
    (fnv1a(&[tenant, device]) % DEVICE_LOCK_SLOTS) as i32
}

/// FNV-1a of `parts` with a zero byte between each two: the same in every replica.
fn fnv1a(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, part) in parts.iter().enumerate() {
        let separator = if i == 0 { None } else { Some(0) };
        for b in separator.into_iter().chain(part.bytes()) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    h
}
