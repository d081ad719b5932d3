//! [`SqlStore`] and what its aggregates share: listing and reading rows,
//! locking a row for update, and committing a change with its events.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Pool, QueryBuilder, Transaction};
use updraft_app::store::{Change, Event, EventCursor, EventFeed, Store, StoreError, StoreResult};
use updraft_core::{Page, PageRequest};

use crate::query::{BuilderExt, QueryExt, Reads, query};
use crate::{
    Arg, Conn, ListSpec, Piece, SqlBackend, SqlCondition, VersionsRow, db_err, filter_sql, like_pattern, order,
    sort_column, us,
};

/// The store on a SQL database: every trait of `updraft_app::store`, written once
/// in the SQL SQLite and PostgreSQL share (`$n` placeholders, `ON CONFLICT`,
/// `NULLS LAST`, `RETURNING`), over the [`SqlBackend`] `B` that says where
/// they differ. Each aggregate's implementation is in its module.
pub struct SqlStore<B: SqlBackend> {
    pub(crate) pool: Pool<B::Db>,
    pub(crate) feed: Arc<EventFeed>,
    pub(crate) backend: B,
    /// Rows this store inserted in bulk, by table: all of them, and as many as
    /// when it last refreshed the table's statistics.
    written: std::sync::Mutex<std::collections::HashMap<&'static str, (u64, u64)>>,
}

/// Fewer rows than this written in bulk never refresh a table's statistics. A
/// table planned from empty statistics is planned badly once it holds a few
/// thousand rows (a job of 5,000 devices found each device's executions by
/// scanning the tenant's until autovacuum caught up); an `ANALYZE` samples at
/// most 30,000 rows, so refreshing early costs little.
const ANALYZE_AFTER_ROWS: u64 = 1_000;

impl<B: SqlBackend> SqlStore<B> {
    /// The store on `pool`, migrated, which hands the events it commits to
    /// `feed`. Fills in what rows written by older versions lack first.
    pub async fn open(pool: Pool<B::Db>, feed: Arc<EventFeed>, backend: B) -> StoreResult<Self> {
        let store = SqlStore { pool, feed, backend, written: Default::default() };
        store.backfill_version_keys().await?;
        Ok(store)
    }

    /// Notes `rows` inserted into `table` by a committed bulk write, and refreshes
    /// the table's planner statistics (where the backend does, [`SqlBackend::ANALYZES`])
    /// when the rows written since the last refresh reach as many as before it (and
    /// at least [`ANALYZE_AFTER_ROWS`]): a few times over an import of millions. The
    /// refresh runs in the background; a failed one changes nothing the caller wrote.
    pub(crate) fn wrote(&self, table: &'static str, rows: u64) {
        if !B::ANALYZES || rows == 0 {
            return;
        }
        let due = {
            let mut written = self.written.lock().expect("not poisoned");
            let (all, at_last) = written.entry(table).or_default();
            *all += rows;
            let due = *all - *at_last >= ANALYZE_AFTER_ROWS.max(*at_last);
            if due {
                *at_last = *all;
            }
            due
        };
        if due {
            // After the answer, not before: ANALYZE of a large table takes
            // hundreds of milliseconds, and the writer's request does not need it.
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let sql = format!("ANALYZE {table}");
                if let Err(e) = query::<B>(AssertSqlSafe(sql)).run(&pool).await {
                    tracing::warn!(table, error = %e, "refreshing a table's statistics failed");
                }
            });
        }
    }

    /// Deletes the tenant's row `id` of `table` with `change` in the same transaction;
    /// no such row is `what` not found.
    pub(crate) async fn delete_row(
        &self,
        table: &'static str,
        what: &'static str,
        tenant: &str,
        id: &str,
        change: Change,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::delete_in(&mut tx, table, what, tenant, id).await?;
        self.commit_events(tx, tenant, vec![change]).await
    }

    /// Deletes the tenant's row `id` of `table` in `tx` (a writer that does more
    /// in the same transaction); no such row is `what` not found.
    pub(crate) async fn delete_in(
        tx: &mut Conn<B>,
        table: &'static str,
        what: &'static str,
        tenant: &str,
        id: &str,
    ) -> StoreResult<()> {
        let r = query::<B>(AssertSqlSafe(format!("DELETE FROM {table} WHERE tenant = $1 AND id = $2")))
            .arg(tenant)
            .arg(id)
            .run(&mut *tx)
            .await
            .map_err(db_err)?;
        if B::rows_affected(&r) == 0 {
            return Err(StoreError::not_found(what, id));
        }
        Ok(())
    }

    /// The backend's connection pool.
    pub fn pool(&self) -> &Pool<B::Db> {
        &self.pool
    }

    /// Fills in the version sort keys of devices written before they were kept
    /// (migration 0004), a batch at a time; a no-op once done.
    pub async fn backfill_version_keys(&self) -> StoreResult<()> {
        loop {
            let rows: Vec<VersionsRow> = query::<B>(
                "SELECT tenant, id, firmware, hardware_version, module_version FROM devices \
                 WHERE firmware_keys IS NULL LIMIT 500",
            )
            .rows(&self.pool)
            .await
            .map_err(db_err)?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = self.begin_write().await?;
            for VersionsRow { tenant, id, firmware, hardware_version: hw, module_version: mv } in rows {
                query::<B>(
                    "UPDATE devices SET firmware_keys = $3, hardware_version_key = $4, module_version_key = $5 \
                     WHERE tenant = $1 AND id = $2",
                )
                .arg(&tenant)
                .arg(&id)
                .arg(Json(filter_sql::firmware_keys(&firmware.0)))
                .arg(filter_sql::version_key(hw.as_deref()))
                .arg(filter_sql::version_key(mv.as_deref()))
                .run(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
        }
    }

    /// Opens a write transaction the backend's way (`BEGIN IMMEDIATE` on SQLite).
    pub(crate) async fn begin_write(&self) -> StoreResult<Transaction<'static, B::Db>> {
        B::begin_write(&self.pool).await
    }

    /// Appends `changes`, commits `tx`, and hands the events to the feed.
    pub(crate) async fn commit_events(
        &self,
        mut tx: Transaction<'static, B::Db>,
        tenant: &str,
        changes: Vec<Change>,
    ) -> StoreResult<()> {
        let events = Self::append_events(&mut tx, tenant, changes).await?;
        self.commit_appended(tx, events).await
    }

    /// Commits `tx`, whose `events` are appended, and hands them to the feed.
    pub(crate) async fn commit_appended(
        &self,
        mut tx: Transaction<'static, B::Db>,
        events: Vec<Event>,
    ) -> StoreResult<()> {
        if !events.is_empty() {
            self.backend.notify_events(&mut tx).await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.feed.committed(events);
        Ok(())
    }

    /// Appends `changes` of `tenant` to the event stream inside the caller's transaction.
    pub(crate) async fn append_events(
        conn: &mut Conn<B>,
        tenant: &str,
        changes: Vec<Change>,
    ) -> StoreResult<Vec<Event>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let at = Timestamp::from_microsecond(Timestamp::now().as_microsecond())
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let actor = updraft_app::store::current_actor();
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            let (seq, tx): (i64, i64) = query::<B>(
                "INSERT INTO events (tenant, at, kind, subject, payload, actor) VALUES ($1, $2, $3, $4, $5, $6)
                 RETURNING seq, tx",
            )
            .arg(tenant)
            .arg(us(at))
            .arg(change.kind())
            .arg(change.subject())
            .arg(Json(&change))
            .arg(actor.clone())
            .row(&mut *conn)
            .await
            .map_err(db_err)?;
            events.push(Event {
                cursor: EventCursor { tx, seq },
                tenant: tenant.to_owned(),
                at,
                actor: actor.clone(),
                change,
            });
        }
        Ok(events)
    }

    /// One record of `tenant` by its key column, decoded from `select`'s row.
    pub(crate) async fn get_one<R, T>(
        &self,
        select: &str,
        key_column: &str,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<T>>
    where
        B::Db: Reads<R>,
        T: TryFrom<R, Error = StoreError>,
    {
        let row: Option<R> = query::<B>(AssertSqlSafe(format!("{select} WHERE tenant = $1 AND {key_column} = $2")))
            .arg(tenant)
            .arg(key)
            .optional_row(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(T::try_from).transpose()
    }

    /// Reads the row of `select` with key `id` in the transaction, locked against
    /// concurrent writers until it ends (`FOR UPDATE` on PostgreSQL; SQLite's write
    /// transaction locks the database); `NotFound` names it as `what`.
    pub(crate) async fn lock_one<R, T>(
        tx: &mut Conn<B>,
        select: &str,
        what: &'static str,
        tenant: &str,
        id: &str,
    ) -> StoreResult<T>
    where
        B::Db: Reads<R>,
        T: TryFrom<R, Error = StoreError>,
    {
        let row: Option<R> = query::<B>(AssertSqlSafe(format!("{select} WHERE tenant = $1 AND id = $2{}", B::LOCK)))
            .arg(tenant)
            .arg(id)
            .optional_row(&mut *tx)
            .await
            .map_err(db_err)?;
        row.map(T::try_from).transpose()?.ok_or_else(|| StoreError::not_found(what, id))
    }

    pub(crate) async fn list<R, T>(
        &self,
        spec: &ListSpec,
        filters: &[(&str, String)],
        page: &PageRequest,
    ) -> StoreResult<Page<T>>
    where
        B::Db: Reads<R>,
        T: TryFrom<R, Error = StoreError>,
    {
        self.list_where(spec, filters, None, page).await
    }

    /// Lists with the equality `filters` and, when given, one more condition.
    pub(crate) async fn list_where<R, T>(
        &self,
        spec: &ListSpec,
        filters: &[(&str, String)],
        condition: Option<&SqlCondition>,
        page: &PageRequest,
    ) -> StoreResult<Page<T>>
    where
        B::Db: Reads<R>,
        T: TryFrom<R, Error = StoreError>,
    {
        let mut total = 0;
        let mut items = Vec::new();
        let passes: &[u8] = if page.count_total { &[0, 1] } else { &[1] };
        for &pass in passes {
            let mut q = QueryBuilder::<B::Db>::new(if pass == 0 { spec.count } else { spec.select });
            q.push(" WHERE 1 = 1");
            Self::push_filters(&mut q, filters);
            if let Some(c) = condition {
                q.push(" AND ");
                Self::push_condition(&mut q, c);
            }
            if let Some(search) = &page.search {
                let pattern = like_pattern(search);
                q.push(" AND (");
                for (i, c) in spec.search.iter().enumerate() {
                    if i > 0 {
                        q.push(" OR ");
                    }
                    q.push(*c).push(B::LIKE).push_arg(pattern.clone()).push(" ESCAPE '\\'");
                }
                q.push(")");
            }
            if pass == 0 {
                let n: i64 = q.build().scalar(&self.pool).await.map_err(db_err)?;
                total = n as u64;
                if total == 0 || page.offset >= total {
                    break;
                }
            } else {
                let col = sort_column(page, spec.sortable);
                q.push(format_args!(
                    " ORDER BY {col} {o} NULLS LAST, {tiebreak} {o}",
                    tiebreak = spec.tiebreak,
                    o = order(page.order)
                ));
                q.push(" LIMIT ").push_arg(page.limit as i64).push(" OFFSET ").push_arg(page.offset as i64);
                let rows: Vec<R> = q.build().rows(&self.pool).await.map_err(db_err)?;
                items = rows.into_iter().map(T::try_from).collect::<StoreResult<Vec<T>>>()?;
                if !page.count_total {
                    total = page.offset + items.len() as u64;
                }
            }
        }
        Ok(Page { items, total })
    }

    /// Appends ` AND <clause>` for each equality filter, its value bound where the clause has `{}`.
    pub(crate) fn push_filters(q: &mut QueryBuilder<B::Db>, filters: &[(&str, String)]) {
        for (clause, value) in filters {
            let (before, after) = clause.split_once("{}").unwrap_or((clause, ""));
            q.push(" AND ").push(before).push_arg(value.clone()).push(after);
        }
    }

    /// Appends a compiled condition and its bound values.
    pub(crate) fn push_condition(q: &mut QueryBuilder<B::Db>, c: &SqlCondition) {
        for p in &c.pieces {
            match p {
                Piece::Sql(s) => {
                    q.push(s.as_str());
                }
                Piece::Arg(Arg::Text(v)) => {
                    q.push_arg(v.clone());
                }
                Piece::Arg(Arg::Int(v)) => {
                    q.push_arg(*v);
                }
                Piece::Arg(Arg::Real(v)) => {
                    q.push_arg(*v);
                }
            }
        }
    }
}

#[async_trait]
impl<B: SqlBackend> Store for SqlStore<B> {
    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn close(&self) {
        self.backend.close();
        self.pool.close().await;
    }
}
