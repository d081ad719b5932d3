//! What the two SQL backends share: the row types (decoded the same way from
//! SQLite and PostgreSQL), their conversion into domain records, the SELECT
//! lists they decode, and small SQL helpers. The backends themselves keep
//! their own connection handling, transactions and dialect differences.

pub mod filter_sql;
mod rows;

use jiff::Timestamp;
use updraft_core::{PageRequest, SortOrder};
use updraft_store::StoreError;

pub use filter_sql::{Arg, Dialect, Piece, SqlCondition};
pub use rows::*;

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

mod shared_impl;

/// What the `impl_sql_store!` expansion needs, reachable from the backend crates.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
}
pub use serde_json;
