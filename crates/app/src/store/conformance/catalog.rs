//! [`CatalogStore`](crate::store::CatalogStore): products and firmware.

use updraft_core::{Product, SortOrder, VersionScheme};

use super::{device, firmware, missing_fields, page, product, t, tenant};
use crate::store::{Store, StoreError};

pub async fn products_crud_and_conflicts(store: &dyn Store) {
    tenant(store, "acme").await;
    let mut p = product("thermo");
    p.description = Some("A thermostat".into());
    store.create_product("acme", &p).await.unwrap();
    assert!(matches!(store.create_product("acme", &p).await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.get_product("acme", "thermo").await.unwrap(), Some(p.clone()));
    p.name = "Thermostat X".into();
    p.version_scheme = VersionScheme::Free;
    p.updated_at = t(100);
    store.update_product("acme", &p).await.unwrap();
    assert_eq!(store.get_product("acme", "thermo").await.unwrap(), Some(p.clone()));
    assert!(matches!(store.update_product("acme", &product("ghost")).await, Err(StoreError::NotFound { .. })));
    store.delete_product("acme", "thermo").await.unwrap();
    assert_eq!(store.get_product("acme", "thermo").await.unwrap(), None);
    assert!(matches!(store.delete_product("acme", "thermo").await, Err(StoreError::NotFound { .. })));
}

pub async fn product_listing_pages_sorts_and_searches(store: &dyn Store) {
    tenant(store, "acme").await;
    for (i, k) in ["delta", "alpha", "charlie", "bravo", "echo_1", "echo%2"].iter().enumerate() {
        let mut p = product(k);
        p.created_at = t(i as i64);
        store.create_product("acme", &p).await.unwrap();
    }
    let keys = |p: updraft_core::Page<Product>| p.items.into_iter().map(|p| p.key).collect::<Vec<_>>();
    let all = store.list_products("acme", &page("key", SortOrder::Asc, 50, 0, None)).await.unwrap();
    assert_eq!(all.total, 6);
    assert_eq!(keys(all), ["alpha", "bravo", "charlie", "delta", "echo%2", "echo_1"]);
    let second = store.list_products("acme", &page("key", SortOrder::Desc, 2, 2, None)).await.unwrap();
    assert_eq!((second.total, keys(second)), (6, vec!["delta".into(), "charlie".into()]));
    let newest = store.list_products("acme", &page("created_at", SortOrder::Desc, 1, 0, None)).await.unwrap();
    assert_eq!(keys(newest), ["echo%2"]);
    let beyond = store.list_products("acme", &page("key", SortOrder::Asc, 10, 100, None)).await.unwrap();
    assert_eq!((beyond.total, beyond.items.len()), (6, 0));
    let found = store.list_products("acme", &page("key", SortOrder::Asc, 10, 0, Some("ECHO"))).await.unwrap();
    assert_eq!(keys(found), ["echo%2", "echo_1"], "search is case-insensitive");
    let literal = store.list_products("acme", &page("key", SortOrder::Asc, 10, 0, Some("o%"))).await.unwrap();
    assert_eq!(keys(literal), ["echo%2"], "% in a search is a literal");
    let literal = store.list_products("acme", &page("key", SortOrder::Asc, 10, 0, Some("o_"))).await.unwrap();
    assert_eq!(keys(literal), ["echo_1"], "_ in a search is a literal");
}

pub async fn firmware_crud_and_version_conflict(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    let fw = firmware("fw1", "thermo", "1.0.0");
    store.create_firmware("acme", &fw).await.unwrap();
    assert_eq!(store.get_firmware("acme", "fw1").await.unwrap(), Some(fw.clone()), "64-bit sizes round-trip");
    let same_version = store.create_firmware("acme", &firmware("fw2", "thermo", "1.0.0")).await;
    assert!(matches!(same_version, Err(StoreError::Conflict { .. })), "{same_version:?}");
    let same_id = store.create_firmware("acme", &firmware("fw1", "thermo", "1.1.0")).await;
    assert!(matches!(same_id, Err(StoreError::Conflict { .. })), "{same_id:?}");
    let no_product = store.create_firmware("acme", &firmware("fw3", "ghost", "1.0.0")).await;
    assert_eq!(missing_fields(no_product.unwrap_err()), ["product"], "an unknown product is a missing reference");
    store.create_firmware("acme", &firmware("fw4", "thermo", "1.1.0")).await.unwrap();
    store.create_product("acme", &product("other")).await.unwrap();
    store.create_firmware("acme", &firmware("fw5", "other", "1.0.0")).await.unwrap();
    let list =
        store.list_firmware("acme", Some("thermo"), &page("created_at", SortOrder::Asc, 10, 0, None)).await.unwrap();
    assert_eq!(list.total, 2);
    let list = store.list_firmware("acme", None, &page("id", SortOrder::Desc, 10, 0, Some("1.1"))).await.unwrap();
    assert_eq!(list.items.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["fw4"]);
    store.delete_firmware("acme", "fw1").await.unwrap();
    assert_eq!(store.get_firmware("acme", "fw1").await.unwrap(), None);
    assert!(matches!(store.delete_firmware("acme", "fw1").await, Err(StoreError::NotFound { .. })));
}

pub async fn product_in_use_cannot_be_deleted(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    store.create_devices("acme", &[device("d1", "thermo")], t(5)).await.unwrap();
    let err = store.delete_product("acme", "thermo").await.unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    store.delete_device("acme", "d1", t(50)).await.unwrap();
    store.create_firmware("acme", &firmware("fw1", "thermo", "1.0.0")).await.unwrap();
    assert!(matches!(store.delete_product("acme", "thermo").await, Err(StoreError::InUse { .. })));
    store.delete_firmware("acme", "fw1").await.unwrap();
    store.delete_product("acme", "thermo").await.unwrap();
}
