//! [`TrustStore`](crate::store::TrustStore): TUF online keys and metadata versions.

use super::{firmware, product, t, tenant};
use crate::store::{Change, Store, StoreError, TrustKey, TrustMetadata, TrustRole};

fn key(id: &str, role: TrustRole) -> TrustKey {
    TrustKey {
        key_id: id.into(),
        role,
        public_key: format!("{{\"id\":\"{id}\"}}"),
        sealed: format!("v1:00000000:{id}"),
        created_at: t(10),
    }
}

fn meta(role: TrustRole, version: u64, expires: i64) -> TrustMetadata {
    TrustMetadata { role, version, body: format!("{{\"{}\":{version}}}", role.as_str()), expires_at: t(expires) }
}

pub async fn trust_keys_and_metadata_versions(store: &dyn Store) {
    tenant(store, "acme").await;
    tenant(store, "other").await;
    store.create_product("acme", &product("cam")).await.unwrap();
    store.create_product("other", &product("cam")).await.unwrap();
    assert!(matches!(
        store.add_trust_keys("acme", "ghost", &[key("k0", TrustRole::Targets)]).await,
        Err(StoreError::Missing(_))
    ));
    let keys = [key("k1", TrustRole::Targets), key("k2", TrustRole::Snapshot), key("k3", TrustRole::Timestamp)];
    store.add_trust_keys("acme", "cam", &keys).await.unwrap();
    assert_eq!(store.trust_keys("acme", "cam").await.unwrap(), keys.to_vec());
    assert!(store.trust_keys("other", "cam").await.unwrap().is_empty(), "tenants never see each other's keys");
    assert!(matches!(
        store.add_trust_keys("acme", "cam", &[key("k1", TrustRole::Targets)]).await,
        Err(StoreError::Conflict { .. })
    ));

    assert_eq!(store.trust_metadata("acme", "cam", TrustRole::Root, None).await.unwrap(), None);
    assert!(store.trust_repositories(None).await.unwrap().is_empty());
    let first = [
        meta(TrustRole::Root, 1, 1000),
        meta(TrustRole::Targets, 1, 900),
        meta(TrustRole::Snapshot, 1, 500),
        meta(TrustRole::Timestamp, 1, 100),
    ];
    assert!(store.publish_trust("acme", "cam", 0, &first, 20).await.unwrap());
    assert_eq!(store.trust_repositories(None).await.unwrap(), vec![("acme".to_owned(), "cam".to_owned())]);
    assert_eq!(store.trust_repositories(Some("other")).await.unwrap(), vec![]);
    assert_eq!(store.trust_metadata("acme", "cam", TrustRole::Timestamp, None).await.unwrap(), Some(first[3].clone()));
    assert_eq!(store.trust_metadata("other", "cam", TrustRole::Timestamp, None).await.unwrap(), None);

    // The next timestamp: the newest is served, an older version by its number.
    assert!(store.publish_trust("acme", "cam", 1, &[meta(TrustRole::Timestamp, 2, 200)], 20).await.unwrap());
    assert_eq!(store.trust_metadata("acme", "cam", TrustRole::Timestamp, None).await.unwrap().unwrap().version, 2);
    assert_eq!(store.trust_metadata("acme", "cam", TrustRole::Root, Some(1)).await.unwrap(), Some(first[0].clone()));
    assert_eq!(store.trust_metadata("acme", "cam", TrustRole::Root, Some(2)).await.unwrap(), None);

    // What expires before a time, by role (only the newest version counts).
    let due = |role, at| async move { store.trust_expiring(role, t(at)).await.unwrap() };
    assert_eq!(due(TrustRole::Timestamp, 150).await, vec![]);
    assert_eq!(due(TrustRole::Timestamp, 250).await, vec![("acme".to_owned(), "cam".to_owned())]);
    assert_eq!(due(TrustRole::Snapshot, 499).await, vec![]);

    // Retiring keys destroys them; events name every change.
    store.retire_trust_keys("acme", "cam", &["k3".to_owned()]).await.unwrap();
    assert_eq!(store.trust_keys("acme", "cam").await.unwrap().len(), 2);
    let events = store.events_after(Default::default(), 1000).await.unwrap();
    let kinds: Vec<&str> = events.iter().filter(|e| e.tenant == "acme").map(|e| e.change.kind()).collect();
    assert!(kinds.contains(&"trust.keys_created") && kinds.contains(&"trust.keys_retired"), "{kinds:?}");
    assert!(events.iter().any(|e| matches!(&e.change,
        Change::TrustPublished { product, root: 1, targets: 1, snapshot: 1, timestamp: 2 } if product == "cam")));

    // Security versions and firmware by version.
    assert_eq!(store.max_security_version("acme", "cam").await.unwrap(), 0);
    store.create_firmware("acme", &firmware("f1", "cam", "1.0.0")).await.unwrap();
    assert_eq!(store.max_security_version("acme", "cam").await.unwrap(), 2);
    assert_eq!(store.max_security_version("other", "cam").await.unwrap(), 0);
    let found = store.firmware_by_version("acme", "cam", "1.0.0").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.security_version, found.files[0].sha512.len()), ("f1", 2, 128));
    assert_eq!(store.firmware_by_version("other", "cam", "1.0.0").await.unwrap(), None);

    // A product's repository goes with it.
    store.delete_firmware("acme", "f1").await.unwrap();
    store.delete_product("acme", "cam").await.unwrap();
    assert!(store.trust_keys("acme", "cam").await.unwrap().is_empty());
    assert_eq!(store.trust_metadata("acme", "cam", TrustRole::Root, None).await.unwrap(), None);
}

pub async fn publishing_is_compare_and_set(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("cam")).await.unwrap();
    assert!(store.publish_trust("acme", "cam", 0, &[meta(TrustRole::Timestamp, 1, 100)], 3).await.unwrap());
    // A writer that read timestamp 0 lost the race: nothing of its batch is kept.
    let stale = [meta(TrustRole::Snapshot, 7, 100), meta(TrustRole::Timestamp, 2, 100)];
    assert!(!store.publish_trust("acme", "cam", 0, &stale, 3).await.unwrap());
    assert_eq!(store.trust_metadata("acme", "cam", TrustRole::Snapshot, None).await.unwrap(), None);
    // Old versions beyond `keep` are dropped.
    for v in 2..=6 {
        assert!(store.publish_trust("acme", "cam", v - 1, &[meta(TrustRole::Timestamp, v, 100)], 3).await.unwrap());
    }
    assert_eq!(store.trust_metadata("acme", "cam", TrustRole::Timestamp, Some(3)).await.unwrap(), None);
    assert!(store.trust_metadata("acme", "cam", TrustRole::Timestamp, Some(4)).await.unwrap().is_some());
    assert!(matches!(
        store.publish_trust("acme", "ghost", 0, &[meta(TrustRole::Timestamp, 1, 100)], 3).await,
        Err(StoreError::NotFound { .. })
    ));
}
