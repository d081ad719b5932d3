//! updraft's store on SQLite: the embedded default.
//!
//! One database file in WAL mode. SQLite allows one writer at a time; write
//! transactions start with `BEGIN IMMEDIATE`, so writers queue on the busy
//! timeout instead of failing when two try to upgrade a read lock at once.
//! The store itself is shared with PostgreSQL ([`SqlStore`] over
//! [`SqliteBackend`]).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use updraft_app::store::{StoreError, StoreResult};
use updraft_store_sql::{Dialect, NewExecutions, SqlBackend, SqlStore, db_err, insert_executions_by_values};

/// updraft's store on SQLite.
pub type SqliteStore = SqlStore<SqliteBackend>;

/// Opens (creating if needed) the database at `path` and runs migrations.
pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
    let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
    connect(options).await
}

/// Opens a database from a `sqlite:` URL.
pub async fn open_url(url: &str) -> StoreResult<SqliteStore> {
    let options = SqliteConnectOptions::from_str(url).map_err(db_err)?.create_if_missing(true);
    connect(options).await
}

async fn connect(options: SqliteConnectOptions) -> StoreResult<SqliteStore> {
    create_private_file(options.get_filename())
        .map_err(|e| StoreError::Backend(format!("creating the database file: {e}")))?;
    let options = options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(db_err)?;
    sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| StoreError::Backend(e.to_string()))?;
    SqlStore::open(pool, Default::default(), SqliteBackend).await
}

/// SQLite's side of [`SqlStore`].
pub struct SqliteBackend;

impl SqlBackend for SqliteBackend {
    type Db = Sqlite;

    const NAME: &'static str = "sqlite";
    const LIKE: &'static str = " LIKE ";
    /// Nothing: a write transaction already excludes every other writer.
    const LOCK: &'static str = "";
    const DIALECT: Dialect = Dialect::Sqlite;
    /// No: SQLite plans without statistics well enough (and `ANALYZE` would fix its plans).
    const ANALYZES: bool = false;
    /// Everything: SQLite serialises writers, so events are visible in sequence order.
    const EVENTS_VISIBLE: &'static str = "1 = 1";

    async fn begin_write(pool: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
        pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
    }

    /// Nothing to do: a write transaction already excludes every other writer.
    async fn lock_devices(_: &mut SqliteConnection, _tenant: &str, _devices: &[String]) -> StoreResult<()> {
        Ok(())
    }

    /// Nothing to do: a write transaction already excludes every other writer.
    async fn lock_fleet(_: &mut SqliteConnection, _tenant: &str, _exclusive: bool) -> StoreResult<()> {
        Ok(())
    }

    /// Statements of up to 1,000 rows (SQLite has no arrays to bind).
    async fn insert_executions(conn: &mut SqliteConnection, new: &NewExecutions<'_>) -> StoreResult<u64> {
        insert_executions_by_values::<Self>(conn, new).await
    }

    /// Nothing to do: one process owns the database file, and its feed hands
    /// committed events to its followers.
    async fn notify_events(&self, _: &mut SqliteConnection) -> StoreResult<()> {
        Ok(())
    }

    /// Nothing to stop: no other process announces events here.
    fn close(&self) {}

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Creates the database file readable by this user only (0600 on Unix) before
/// SQLite opens it; SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let name = path.to_string_lossy();
    if name.is_empty() || name == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
