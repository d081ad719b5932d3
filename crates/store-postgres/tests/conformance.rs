//! The store conformance suite on PostgreSQL: each case in its own database.

use updraft_store_postgres::{PostgresStore, testing};

async fn fresh() -> PostgresStore {
    updraft_store_postgres::connect(&testing::create_database().await).await.unwrap()
}

updraft_app::store_conformance_suite!(fresh());
