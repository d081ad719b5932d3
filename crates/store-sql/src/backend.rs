//! How one SQL backend differs from the other.

use std::collections::BTreeMap;
use std::future::Future;

use sqlx::types::Json;
use sqlx::{Database, Pool, Transaction};
use updraft_app::store::{Change, StoreResult};
use updraft_core::FirmwareFile;
use updraft_core::PropertyValue;
use updraft_core::filter::FilterJson;
use updraft_core::job::ExecutionState;

use crate::Dialect;
use crate::query::{Binds, Reads, Runs};
use crate::rows::*;

/// New executions of one job, at their first attempt (see [`SqlBackend::insert_executions`]).
#[derive(Debug)]
pub struct NewExecutions<'a> {
    pub tenant: &'a str,
    pub job: &'a str,
    pub firmware: &'a str,
    /// When they are created, in microseconds since the Unix epoch.
    pub now: i64,
    pub rows: Vec<NewExecution<'a>>,
}

/// One of [`NewExecutions`].
#[derive(Debug)]
pub struct NewExecution<'a> {
    pub device: &'a str,
    /// Its first state (a terminal one finishes it as it is created).
    pub state: ExecutionState,
    pub phase: i64,
    /// The action number its device knows it by.
    pub action: i64,
}

/// A connection of backend `B`'s database, as a transaction or the pool hands it out.
pub type Conn<B> = <<B as SqlBackend>::Db as Database>::Connection;

/// What [`SqlStore`](crate::SqlStore) needs to know of a database besides
/// the SQL SQLite and PostgreSQL share: its sqlx database type, the few
/// fragments where the dialects differ, how it opens a write transaction and
/// makes releases to the same devices wait for each other, and how it tells
/// other processes that events were committed. Each backend crate implements
/// it for its own type, next to its connection setup and migrations.
pub trait SqlBackend: Send + Sync + Sized + 'static {
    /// sqlx's database type. The bounds list every value the shared SQL binds
    /// and every row shape it reads (see [`crate::query`]): the compiler checks
    /// them once, here, for each backend. A query that binds or reads another
    /// type adds it here.
    type Db: Runs
        // Bound values.
        + for<'a> Binds<&'a str>
        + for<'a> Binds<&'a String>
        + Binds<String>
        + Binds<i64>
        + Binds<f64>
        + Binds<bool>
        + Binds<Option<i64>>
        + Binds<Option<String>>
        + for<'a> Binds<&'a Option<String>>
        + for<'a> Binds<Json<&'a BTreeMap<String, String>>>
        + Binds<Json<BTreeMap<String, String>>>
        + for<'a> Binds<Json<&'a BTreeMap<String, PropertyValue>>>
        + for<'a> Binds<Json<&'a Vec<FirmwareFile>>>
        + for<'a> Binds<Json<&'a Vec<String>>>
        + Binds<Json<Vec<String>>>
        + Binds<Json<FilterJson>>
        + for<'a> Binds<Json<&'a Change>>
        // Rows read.
        + Reads<TenantRow>
        + Reads<KeyRow>
        + Reads<UserRow>
        + Reads<SessionRow>
        + Reads<ProductRow>
        + Reads<FirmwareRow>
        + Reads<DeviceRow>
        + Reads<IdentityRow>
        + Reads<PollSeedRow>
        + Reads<DeviceVersionsRow>
        + Reads<GroupRow>
        + Reads<GatewayRow>
        + Reads<AccessKeyRow>
        + Reads<GroupTokenRow>
        + Reads<SealedAccessKeyRow>
        + Reads<TrustAnchorRow>
        + Reads<SigningProfileRow>
        + Reads<SavedFilterRow>
        + Reads<JobRow>
        + Reads<TenantJobRow>
        + Reads<VersionsRow>
        + Reads<ExecutionRow>
        + Reads<EventRow>
        // Single columns.
        + Reads<(i64,)>
        + Reads<(String,)>
        + Reads<(Option<String>,)>
        + Reads<(i32,)>
        + Reads<(Json<Vec<FirmwareFile>>,)>
        + Reads<(Json<BTreeMap<String, String>>,)>
        // Tuples.
        + Reads<(i64, i64)>
        + Reads<(i64, String)>
        + Reads<(String, i64)>
        + Reads<(String, i64, i64)>
        + Reads<(String, String)>
        + Reads<(String, String, String, i64)>
        + Reads<(i64, String, i64)>
        + Reads<(i64, i64, String)>
        + Reads<(Option<i64>, Option<i64>, Option<i64>, Option<i64>)>
        + Reads<(String, String, String, String, i64, i64)>
        + Reads<(String, String, String, String, i64)>
        + Reads<(String, i64, String, i64)>
        + Reads<(i64, i64, String, i64, Option<String>, Json<Change>)>;

    /// The backend's name, for logs and metrics.
    const NAME: &'static str;
    /// The case-insensitive `LIKE` operator, with a space on each side.
    const LIKE: &'static str;
    /// What locks the rows a SELECT reads until the transaction ends
    /// (` FOR UPDATE`), appended to it; empty where a write transaction
    /// already excludes every other writer.
    const LOCK: &'static str;
    /// The dialect device filters compile to (see [`crate::filter_sql`]).
    const DIALECT: Dialect;
    /// The condition, on the `events` table, that keeps reads of the event
    /// stream gap-free (see `updraft_app::store::events`).
    const EVENTS_VISIBLE: &'static str;
    /// Whether the store refreshes the planner's statistics of a table itself
    /// once bulk writes have grown it (see `SqlStore::wrote`): the planner must
    /// know a table's size to pick its indexes, and the database's own refresh
    /// (autovacuum) may be off, or lag behind an import.
    const ANALYZES: bool;

    /// Opens a write transaction.
    fn begin_write(pool: &Pool<Self::Db>) -> impl Future<Output = StoreResult<Transaction<'static, Self::Db>>> + Send;

    /// Makes releases to the same devices wait for each other until the
    /// transaction ends, so that a device never gets two executions in progress.
    fn lock_devices(
        conn: &mut Conn<Self>,
        tenant: &str,
        devices: &[String],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Makes what changes a tenant's set of devices (a deletion, `exclusive`)
    /// and what writes executions for its devices (shared) wait for each other
    /// until the transaction ends, so that a device deleted while a job starts
    /// leaves no execution behind where nothing else ties them (see
    /// [`SqlBackend::insert_executions`]).
    fn lock_fleet(conn: &mut Conn<Self>, tenant: &str, exclusive: bool)
    -> impl Future<Output = StoreResult<()>> + Send;

    /// Writes `new`'s executions, each with its first history event, but for
    /// devices the job already has or that were deleted since they were read
    /// (its caller holds a shared [`SqlBackend::lock_fleet`]); answers how
    /// many it wrote. The devices are ones read from the store: one that never
    /// existed may be written (SQLite's foreign keys leave it out).
    fn insert_executions(
        conn: &mut Conn<Self>,
        new: &NewExecutions<'_>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Tells the other processes on this database, at commit, that events were appended.
    fn notify_events(&self, conn: &mut Conn<Self>) -> impl Future<Output = StoreResult<()>> + Send;

    /// Stops what the backend runs besides the pool, before the pool closes.
    fn close(&self);

    /// How many rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;
}
