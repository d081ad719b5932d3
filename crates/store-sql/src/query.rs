//! How the shared SQL calls sqlx without knowing which database it runs on.
//!
//! sqlx checks, for each query, that the database binds each value and
//! decodes each row (`Encode`, `Type`, `FromRow`) and that the connection
//! runs queries (`Executor`). Code generic over the database would have to
//! repeat those bounds on every function that queries: Rust assumes the
//! bounds of a trait's associated types wherever the trait is used, but not
//! its other where-clauses. So the bounds are turned around into traits of
//! the database — [`Binds<T>`], [`Reads<R>`] and [`Runs`], implemented for
//! every sqlx database that meets sqlx's bounds — and
//! [`crate::SqlBackend::Db`] names, once, the ones the store
//! needs.
//!
//! Generic code starts a query with [`query::<B>`](query) and calls sqlx
//! through the extension methods here, which ask only for those traits:
//! [`arg`](QueryExt::arg) for `bind`, [`run`](QueryExt::run) for `execute`,
//! [`rows`](QueryExt::rows), [`row`](QueryExt::row) and
//! [`optional_row`](QueryExt::optional_row) for `query_as` with `fetch_all`,
//! `fetch_one` and `fetch_optional`, the `scalar` ones likewise for
//! `query_scalar`, and [`push_arg`](BuilderExt::push_arg) for a query
//! builder's `push_bind`. Each does what the sqlx call it stands for does.

use std::future::Future;

use sqlx::query::Query;
use sqlx::query_builder::Separated;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, QueryBuilder, SqlSafeStr, Type};

use crate::SqlBackend;

/// A query on backend `B`'s database (`sqlx::query`).
pub fn query<'q, B: SqlBackend>(sql: impl SqlSafeStr) -> Query<'q, B::Db, <B::Db as Database>::Arguments> {
    sqlx::query(sql)
}

/// Where a query runs: on the pool, or on one connection (a transaction's).
pub enum On<'c, DB: Database> {
    Pool(&'c Pool<DB>),
    Conn(&'c mut DB::Connection),
}

impl<'c, DB: Database> From<&'c Pool<DB>> for On<'c, DB> {
    fn from(pool: &'c Pool<DB>) -> Self {
        On::Pool(pool)
    }
}

impl<'c, DB: Database> From<&'c mut DB::Connection> for On<'c, DB> {
    fn from(conn: &'c mut DB::Connection) -> Self {
        On::Conn(conn)
    }
}

/// A database whose pool and connections run queries.
pub trait Runs: Database {
    fn execute<'q, 'c>(
        query: Query<'q, Self, Self::Arguments>,
        on: On<'c, Self>,
    ) -> impl Future<Output = sqlx::Result<Self::QueryResult>> + Send;
    fn fetch_all<'q, 'c>(
        query: Query<'q, Self, Self::Arguments>,
        on: On<'c, Self>,
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Row>>> + Send;
    fn fetch_one<'q, 'c>(
        query: Query<'q, Self, Self::Arguments>,
        on: On<'c, Self>,
    ) -> impl Future<Output = sqlx::Result<Self::Row>> + Send;
    fn fetch_optional<'q, 'c>(
        query: Query<'q, Self, Self::Arguments>,
        on: On<'c, Self>,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Row>>> + Send;
}

impl<DB: Database> Runs for DB
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    async fn execute<'q, 'c>(query: Query<'q, DB, DB::Arguments>, on: On<'c, DB>) -> sqlx::Result<DB::QueryResult> {
        match on {
            On::Pool(pool) => query.execute(pool).await,
            On::Conn(conn) => query.execute(conn).await,
        }
    }

    async fn fetch_all<'q, 'c>(query: Query<'q, DB, DB::Arguments>, on: On<'c, DB>) -> sqlx::Result<Vec<DB::Row>> {
        match on {
            On::Pool(pool) => query.fetch_all(pool).await,
            On::Conn(conn) => query.fetch_all(conn).await,
        }
    }

    async fn fetch_one<'q, 'c>(query: Query<'q, DB, DB::Arguments>, on: On<'c, DB>) -> sqlx::Result<DB::Row> {
        match on {
            On::Pool(pool) => query.fetch_one(pool).await,
            On::Conn(conn) => query.fetch_one(conn).await,
        }
    }

    async fn fetch_optional<'q, 'c>(
        query: Query<'q, DB, DB::Arguments>,
        on: On<'c, DB>,
    ) -> sqlx::Result<Option<DB::Row>> {
        match on {
            On::Pool(pool) => query.fetch_optional(pool).await,
            On::Conn(conn) => query.fetch_optional(conn).await,
        }
    }
}

/// A database that binds a `T` as a query argument.
pub trait Binds<T>: Database {
    fn bind<'q>(query: Query<'q, Self, Self::Arguments>, value: T) -> Query<'q, Self, Self::Arguments>;
    fn push_bind(builder: &mut QueryBuilder<Self>, value: T);
    fn push_bind_separated(list: &mut Separated<'_, Self, &'static str>, value: T);
}

impl<DB: Database, T> Binds<T> for DB
where
    T: for<'t> Encode<'t, DB> + Type<DB>,
{
    fn bind<'q>(query: Query<'q, DB, DB::Arguments>, value: T) -> Query<'q, DB, DB::Arguments> {
        query.bind(value)
    }

    fn push_bind(builder: &mut QueryBuilder<DB>, value: T) {
        builder.push_bind(value);
    }

    fn push_bind_separated(list: &mut Separated<'_, DB, &'static str>, value: T) {
        list.push_bind(value);
    }
}

/// A database whose rows decode into an `R`: a row struct, a tuple, or
/// `(T,)` for a single column.
pub trait Reads<R>: Database {
    fn read(row: &Self::Row) -> sqlx::Result<R>;
}

impl<DB: Database, R> Reads<R> for DB
where
    R: for<'r> FromRow<'r, DB::Row>,
{
    fn read(row: &DB::Row) -> sqlx::Result<R> {
        R::from_row(row)
    }
}

/// sqlx's query calls, for a database known by its traits (see the module documentation).
pub trait QueryExt<DB: Database>: Sized {
    /// Binds the next argument (`bind`).
    fn arg<T>(self, value: T) -> Self
    where
        DB: Binds<T>;

    /// Runs the statement (`execute`).
    fn run<'c>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<DB::QueryResult>> + Send
    where
        DB: Runs;

    /// Every row, decoded (`query_as` and `fetch_all`).
    fn rows<'c, R>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<Vec<R>>> + Send
    where
        DB: Runs + Reads<R>;

    /// The one row, decoded; `RowNotFound` when there is none (`query_as` and `fetch_one`).
    fn row<'c, R>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<R>> + Send
    where
        DB: Runs + Reads<R>;

    /// The first row, if any, decoded (`query_as` and `fetch_optional`).
    fn optional_row<'c, R>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<Option<R>>> + Send
    where
        DB: Runs + Reads<R>;

    /// The first column of every row (`query_scalar` and `fetch_all`).
    fn scalars<'c, T>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<Vec<T>>> + Send
    where
        DB: Runs + Reads<(T,)>;

    /// The first column of the one row (`query_scalar` and `fetch_one`).
    fn scalar<'c, T>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<T>> + Send
    where
        DB: Runs + Reads<(T,)>;

    /// The first column of the first row, if any (`query_scalar` and `fetch_optional`).
    fn optional_scalar<'c, T>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<Option<T>>> + Send
    where
        DB: Runs + Reads<(T,)>;
}

impl<DB: Database> QueryExt<DB> for Query<'_, DB, DB::Arguments> {
    fn arg<T>(self, value: T) -> Self
    where
        DB: Binds<T>,
    {
        DB::bind(self, value)
    }

    fn run<'c>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<DB::QueryResult>> + Send
    where
        DB: Runs,
    {
        DB::execute(self, on.into())
    }

    fn rows<'c, R>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<Vec<R>>> + Send
    where
        DB: Runs + Reads<R>,
    {
        let fetched = DB::fetch_all(self, on.into());
        async move { fetched.await?.iter().map(<DB as Reads<R>>::read).collect() }
    }

    fn row<'c, R>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<R>> + Send
    where
        DB: Runs + Reads<R>,
    {
        let fetched = DB::fetch_one(self, on.into());
        async move { <DB as Reads<R>>::read(&fetched.await?) }
    }

    fn optional_row<'c, R>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<Option<R>>> + Send
    where
        DB: Runs + Reads<R>,
    {
        let fetched = DB::fetch_optional(self, on.into());
        async move { fetched.await?.as_ref().map(<DB as Reads<R>>::read).transpose() }
    }

    fn scalars<'c, T>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<Vec<T>>> + Send
    where
        DB: Runs + Reads<(T,)>,
    {
        let fetched = DB::fetch_all(self, on.into());
        async move { fetched.await?.iter().map(|row| <DB as Reads<(T,)>>::read(row).map(|(v,)| v)).collect() }
    }

    fn scalar<'c, T>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<T>> + Send
    where
        DB: Runs + Reads<(T,)>,
    {
        let fetched = DB::fetch_one(self, on.into());
        async move { <DB as Reads<(T,)>>::read(&fetched.await?).map(|(v,)| v) }
    }

    fn optional_scalar<'c, T>(self, on: impl Into<On<'c, DB>>) -> impl Future<Output = sqlx::Result<Option<T>>> + Send
    where
        DB: Runs + Reads<(T,)>,
    {
        let fetched = DB::fetch_optional(self, on.into());
        async move { fetched.await?.as_ref().map(|row| <DB as Reads<(T,)>>::read(row).map(|(v,)| v)).transpose() }
    }
}

/// A query builder's `push_bind`, for a database known by its traits.
pub trait BuilderExt<DB: Database> {
    /// Pushes a placeholder and binds `value` to it (`push_bind`).
    fn push_arg<T>(&mut self, value: T) -> &mut Self
    where
        DB: Binds<T>;
}

impl<DB: Database> BuilderExt<DB> for QueryBuilder<DB> {
    fn push_arg<T>(&mut self, value: T) -> &mut Self
    where
        DB: Binds<T>,
    {
        DB::push_bind(self, value);
        self
    }
}

impl<DB: Database> BuilderExt<DB> for Separated<'_, DB, &'static str> {
    fn push_arg<T>(&mut self, value: T) -> &mut Self
    where
        DB: Binds<T>,
    {
        DB::push_bind_separated(self, value);
        self
    }
}
