//! Fresh databases for tests, on the PostgreSQL named by `UPDRAFT_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, PgConnection};

/// The prefix of every database a test creates; `.ci/run` drops leftovers.
pub const TEST_DATABASE_PREFIX: &str = "updraft_t_";

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
    let name = format!("{TEST_DATABASE_PREFIX}{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}
