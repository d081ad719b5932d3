//! What the two SQL backends share: [`SqlStore`], the traits of
//! `updraft_app::store` written once in the SQL SQLite and PostgreSQL have in
//! common, over a [`SqlBackend`] that says where the two differ (see ADR 4);
//! the row types (decoded the same way from both), their conversion into
//! domain records, the SELECT lists, and small SQL helpers.
//!
//! One module per store trait — `tenants`, `catalog`, `devices`, `jobs`,
//! `engine`, `events`, `signing` — and `store` for what they share. [`query`] is how
//! that code calls sqlx while generic over the database. Each backend crate
//! keeps its connection setup, migrations and what only its dialect does.

mod backend;
mod catalog;
mod devices;
mod engine;
mod events;
pub mod filter_sql;
mod jobs;
pub mod query;
mod rows;
mod signing;
mod store;
mod tenants;
mod trust;

use jiff::Timestamp;
use updraft_app::store::StoreError;
use updraft_core::{PageRequest, SortOrder};

pub use backend::{Conn, NewExecution, NewExecutions, SqlBackend};
pub use filter_sql::{Arg, Dialect, Piece, SqlCondition};
pub use jobs::insert_executions_by_values;
pub use rows::*;
pub use store::SqlStore;

pub fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A timestamp as stored: microseconds since the Unix epoch.
pub fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern that matches a substring.
pub fn like_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

pub fn order(o: SortOrder) -> &'static str {
    match o {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    }
}

/// The column to sort by: the requested field when the resource allows it
/// (column names are the field names), else the resource's default.
pub fn sort_column<'a>(page: &'a PageRequest, allowed: &[&'a str]) -> &'a str {
    if allowed.contains(&page.sort.as_str()) { &page.sort } else { allowed[0] }
}

/// Maps a unique violation to `Conflict`, anything else to `Backend`.
pub fn conflict_or(what: &'static str, id: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| if is_unique_violation(&e) { StoreError::conflict(what, id) } else { db_err(e) }
}
