//! Devices written before version sort keys were kept get them when the store opens.

use jiff::Timestamp;
use sqlx::Connection;
use updraft_app::store::{CatalogStore, DeviceStore, Store, TenantStore};
use updraft_core::filter::Filter;
use updraft_core::{DeviceAttributes, NewDevice, Product, Tenant, VersionScheme};

#[tokio::test]
async fn version_keys_are_filled_in_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("updraft.db");
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let store = updraft_store_sqlite::open(&path).await.unwrap();
    store.ensure_tenant(&Tenant { id: "acme".into(), name: "Acme".into(), created_at: now }).await.unwrap();
    let product = Product {
        key: "thermo".into(),
        name: "Thermo".into(),
        description: None,
        version_scheme: VersionScheme::Semver,
        created_at: now,
        updated_at: now,
    };
    store.create_product("acme", &product).await.unwrap();
    let mut attributes = DeviceAttributes::default();
    attributes.firmware.insert("host".into(), "1.10.0".into());
    attributes.hardware_version = Some("v2.0.0".into());
    let d = NewDevice { id: "d1".into(), product: "thermo".into(), attributes, token_hash: "h1".into() };
    store.create_devices("acme", &[d], now).await.unwrap();
    store.close().await;

    // As a row written before migration 0004 would be.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display())).await.unwrap();
    sqlx::query("UPDATE devices SET firmware_keys = NULL, hardware_version_key = NULL")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let store = updraft_store_sqlite::open(&path).await.unwrap();
    let filter = Filter::parse("fw.host > \"1.9.0\" and hw == \"2.0.0\"").unwrap();
    assert_eq!(store.count_devices_matching("acme", &filter, now).await.unwrap(), 1);
    store.close().await;
}
