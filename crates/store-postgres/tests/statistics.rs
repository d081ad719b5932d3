//! PostgreSQL plans by its statistics of each table: the store refreshes them
//! itself after bulk writes, so an import of many devices (or a job over
//! them) is not planned as if the tables were empty, even where autovacuum is
//! off or has not caught up.

use jiff::Timestamp;
use updraft_app::store::{CatalogStore, DeviceStore, TenantStore};
use updraft_core::{DeviceAttributes, NewDevice, Product, Tenant, VersionScheme};
use updraft_store_postgres::{PostgresStore, testing};

async fn analyzed(store: &PostgresStore, table: &str) -> bool {
    let (count,): (i64,) =
        sqlx::query_as("SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = $1")
            .bind(table)
            .fetch_one(store.pool())
            .await
            .unwrap();
    count > 0
}

#[tokio::test]
async fn bulk_imports_refresh_the_planner_statistics() {
    let store = updraft_store_postgres::connect(&testing::create_database().await).await.unwrap();
    let now = Timestamp::UNIX_EPOCH;
    store.ensure_tenant(&Tenant { id: "acme".into(), name: "acme".into(), created_at: now }).await.unwrap();
    let product = Product {
        key: "thermo".into(),
        name: "Thermo".into(),
        description: None,
        version_scheme: VersionScheme::Semver,
        created_at: now,
        updated_at: now,
    };
    store.create_product("acme", &product).await.unwrap();
    let batch = |from: usize, n: usize| -> Vec<NewDevice> {
        (from..from + n)
            .map(|i| NewDevice {
                id: format!("d{i:06}"),
                product: "thermo".into(),
                attributes: DeviceAttributes::default(),
                token_hash: format!("hash-{i}"),
            })
            .collect()
    };
    store.create_devices("acme", &batch(0, 500), now).await.unwrap();
    assert!(!analyzed(&store, "devices").await, "a small write leaves the statistics to the database");
    store.create_devices("acme", &batch(500, 500), now).await.unwrap();
    // The refresh runs after the write has answered: wait for it, bounded.
    let mut refreshed = false;
    for _ in 0..200 {
        if analyzed(&store, "devices").await {
            refreshed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refreshed, "1,000 devices written: the statistics are refreshed within 10 s");
}
