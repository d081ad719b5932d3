//! [`SigningStore`](crate::store::SigningStore): trust anchors and signing profiles.

use updraft_core::{SignatureAlgorithm, SigningProfile, TrustAnchor};

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

fn profile(name: &str) -> SigningProfile {
    SigningProfile {
        name: name.into(),
        platform: Some("freertos".into()),
        signature_algorithm: SignatureAlgorithm::RsaPss,
        certificate_chain: "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n".into(),
        trust_anchor: "ta1".into(),
        created_at: t(6),
    }
}

pub async fn signing_profiles_keep_their_sealed_keys(store: &dyn Store) {
    tenant(store, "acme").await;
    tenant(store, "globex").await;
    let before = store.events_after(EventCursor::default(), 1000).await.unwrap().len();

    store.create_signing_profile("acme", &profile("ota"), "v1:sealed-a").await.unwrap();
    store.create_signing_profile("acme", &profile("boot"), "v1:sealed-b").await.unwrap();
    let taken = store.create_signing_profile("acme", &profile("ota"), "v1:other").await;
    assert!(matches!(taken, Err(StoreError::Conflict { .. })), "{taken:?}");
    store.create_signing_profile("globex", &profile("ota"), "v1:sealed-g").await.unwrap();

    let names: Vec<String> = store.list_signing_profiles("acme").await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["boot", "ota"], "by name");
    assert_eq!(store.signing_profile("acme", "ota").await.unwrap(), Some((profile("ota"), "v1:sealed-a".into())));
    assert_eq!(store.signing_profile("globex", "ota").await.unwrap().unwrap().1, "v1:sealed-g", "per tenant");
    assert_eq!(store.signing_profile("globex", "boot").await.unwrap(), None);

    let missing = store.delete_signing_profile("globex", "boot").await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })), "{missing:?}");
    store.delete_signing_profile("acme", "ota").await.unwrap();
    assert_eq!(store.signing_profile("acme", "ota").await.unwrap(), None);
    assert!(store.signing_profile("globex", "ota").await.unwrap().is_some());

    let kinds: Vec<String> = store.events_after(EventCursor::default(), 1000).await.unwrap()[before..]
        .iter()
        .map(|e| format!("{} {} {}", e.tenant, e.change.kind(), e.change.subject()))
        .collect();
    assert_eq!(
        kinds,
        [
            "acme signing_profile.created ota",
            "acme signing_profile.created boot",
            "globex signing_profile.created ota",
            "acme signing_profile.deleted ota"
        ]
    );
}
