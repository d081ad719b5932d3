//! [`SigningStore`](crate::store::SigningStore): trust anchors.

use updraft_core::TrustAnchor;

use super::{t, tenant};
use crate::store::{EventCursor, Store, StoreError};

fn anchor(id: &str, fingerprint: &str) -> TrustAnchor {
    TrustAnchor {
        id: id.into(),
        name: Some(format!("CA {id}")),
        certificate: format!("-----BEGIN CERTIFICATE-----\n{id}\n-----END CERTIFICATE-----\n"),
        fingerprint: fingerprint.into(),
        created_at: t(5),
    }
}

pub async fn trust_anchors_per_tenant(store: &dyn Store) {
    tenant(store, "acme").await;
    tenant(store, "globex").await;
    let before = store.events_after(EventCursor::default(), 1000).await.unwrap().len();

    store.create_trust_anchor("acme", &anchor("ta1", "f1")).await.unwrap();
    store.create_trust_anchor("acme", &anchor("ta2", "f2")).await.unwrap();
    let same_certificate = store.create_trust_anchor("acme", &anchor("ta3", "f1")).await;
    assert!(matches!(same_certificate, Err(StoreError::Conflict { .. })), "{same_certificate:?}");
    let same_id = store.create_trust_anchor("acme", &anchor("ta1", "f9")).await;
    assert!(matches!(same_id, Err(StoreError::Conflict { .. })), "{same_id:?}");
    store.create_trust_anchor("globex", &anchor("ta1", "f1")).await.unwrap();

    let acme = store.list_trust_anchors("acme").await.unwrap();
    assert_eq!(acme, vec![anchor("ta1", "f1"), anchor("ta2", "f2")]);
    assert_eq!(store.list_trust_anchors("globex").await.unwrap(), vec![anchor("ta1", "f1")]);
    assert_eq!(store.list_trust_anchors("nobody").await.unwrap(), vec![]);

    let missing = store.delete_trust_anchor("globex", "ta2").await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })), "anchors are per tenant: {missing:?}");
    store.delete_trust_anchor("acme", "ta1").await.unwrap();
    assert_eq!(store.list_trust_anchors("acme").await.unwrap(), vec![anchor("ta2", "f2")]);
    assert_eq!(store.list_trust_anchors("globex").await.unwrap().len(), 1, "the other tenant's anchor stays");

    let kinds: Vec<String> = store.events_after(EventCursor::default(), 1000).await.unwrap()[before..]
        .iter()
        .map(|e| format!("{} {} {}", e.tenant, e.change.kind(), e.change.subject()))
        .collect();
    assert_eq!(
        kinds,
        [
            "acme trust_anchor.created ta1",
            "acme trust_anchor.created ta2",
            "globex trust_anchor.created ta1",
            "acme trust_anchor.deleted ta1"
        ],
        "every change appends its event, a refused one none"
    );
}
