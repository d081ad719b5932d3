//! The store conformance suite on SQLite: each case in its own database file.

use updraft_store_sqlite::SqliteStore;

async fn fresh() -> SqliteStore {
    let dir = tempfile::tempdir().unwrap().keep();
    updraft_store_sqlite::open(&dir.join("updraft.db")).await.unwrap()
}

updraft_app::store_conformance_suite!(fresh());
