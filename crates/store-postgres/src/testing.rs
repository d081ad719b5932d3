//! Fresh databases for tests, on the PostgreSQL named by `UPDRAFT_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, PgConnection};

/// The prefix of every database a test creates; `.ci/run` drops leftovers.
pub const TEST_DATABASE_PREFIX: &str = "updraft_t_";

/// The prefix of the databases this run creates: `UPDRAFT_TEST_DB_PREFIX` when it is set (and
/// a lowercase name under [`TEST_DATABASE_PREFIX`]): `scripts/test` gives each run its own, so it
/// drops only its own databases and two runs can share a server.
pub fn database_prefix() -> String {
    let given = std::env::var("UPDRAFT_TEST_DB_PREFIX").unwrap_or_default();
    let usable = given.len() <= 32
        && given.starts_with(TEST_DATABASE_PREFIX)
        && given.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if usable { given } else { TEST_DATABASE_PREFIX.to_owned() }
}

pub fn admin_url() -> String {
    std::env::var("UPDRAFT_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database and returns its URL. Panics with what to do when
/// PostgreSQL cannot be reached: tests that need it must never pass silently.
pub async fn create_database() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach PostgreSQL at {admin} ({e}); start it (see README, `scripts/test` does this) \
             or point UPDRAFT_TEST_PG_URL at one"
        )
    });
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("{}{}_{}_{nanos}", database_prefix(), std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}
