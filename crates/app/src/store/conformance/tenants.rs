//! [`TenantStore`](crate::store::TenantStore): tenants and API keys, and tenancy across every store.

use updraft_core::{ApiKey, KeyChange, KeyRefusal, PageRequest, Role, SortOrder, Tenant};

use super::{device, firmware, page, product, t, tenant};
use crate::store::{AccessKey, DeviceScope, Store, StoreError};

fn key(id: &str, tenant: &str, role: Role) -> ApiKey {
    ApiKey {
        id: id.into(),
        tenant: tenant.into(),
        role,
        name: None,
        server_admin: false,
        created_at: t(1),
        expires_at: None,
        token_prefix: None,
    }
}

pub async fn tenants_and_keys(store: &dyn Store) {
    let acme = Tenant { id: "acme".into(), name: "Acme".into(), created_at: t(0) };
    assert!(store.ensure_tenant(&acme).await.unwrap());
    assert!(!store.ensure_tenant(&acme).await.unwrap(), "ensure_tenant is idempotent");
    assert_eq!(store.get_tenant("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(store.get_tenant("nope").await.unwrap(), None);

    let first = key("k1", "globex", Role::Admin);
    let globex = Tenant { id: "globex".into(), name: "Globex".into(), created_at: t(0) };
    store.create_tenant(&globex, &first, "h1").await.unwrap();
    let again = store.create_tenant(&globex, &key("k2", "globex", Role::Admin), "h2").await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })), "{again:?}");
    assert_eq!(store.key_by_token_hash("h2").await.unwrap(), None, "a failed create_tenant writes no key");
    assert_eq!(store.list_tenants().await.unwrap().len(), 2);

    assert_eq!(store.key_by_token_hash("h1").await.unwrap(), Some(first.clone()));
    store.create_key(&key("k3", "acme", Role::Viewer), "h3").await.unwrap();
    assert!(matches!(store.create_key(&key("k3", "acme", Role::Viewer), "h4").await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.list_keys("acme").await.unwrap().iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k3"]);
    let deleted = store.change_key("globex", "k3", &KeyChange::Delete).await;
    assert!(matches!(deleted, Err(StoreError::NotFound { .. })), "keys are per tenant");
    store.change_key("acme", "k3", &KeyChange::Delete).await.unwrap().unwrap();
    assert_eq!(store.key_by_token_hash("h3").await.unwrap(), None);

    assert!(!store.has_server_admin_key().await.unwrap());
    let admin = ApiKey { server_admin: true, ..key("boot1", "acme", Role::Admin) };
    store.replace_server_admin_key(&admin, "boot-h1").await.unwrap();
    assert!(store.has_server_admin_key().await.unwrap());
    let admin2 = ApiKey { server_admin: true, ..key("boot2", "acme", Role::Admin) };
    store.replace_server_admin_key(&admin2, "boot-h2").await.unwrap();
    assert_eq!(store.key_by_token_hash("boot-h1").await.unwrap(), None, "the old bootstrap key is gone");
    assert_eq!(store.key_by_token_hash("boot-h2").await.unwrap(), Some(admin2.clone()));
    store.replace_server_admin_key(&admin2, "boot-h2").await.unwrap();
    assert_eq!(store.key_by_token_hash("boot-h2").await.unwrap(), Some(admin2), "replacing with the same key works");
}

pub async fn tenants_never_see_each_other(store: &dyn Store) {
    for t in ["acme", "globex"] {
        tenant(store, t).await;
        store.create_product(t, &product("thermo")).await.unwrap();
    }
    store.create_firmware("acme", &firmware("fw1", "thermo", "1.0.0")).await.unwrap();
    store.create_devices("acme", &[device("d1", "thermo")], t(5)).await.unwrap();
    store
        .create_devices("globex", &[device("d1", "thermo")], t(5))
        .await
        .expect("the same device id may exist in two tenants");
    assert_eq!(store.get_firmware("globex", "fw1").await.unwrap(), None);
    let all = PageRequest::all();
    assert_eq!(store.list_firmware("globex", None, &page("id", SortOrder::Asc, 10, 0, None)).await.unwrap().total, 0);
    assert_eq!(
        store
            .list_devices("globex", &DeviceScope::default(), &PageRequest { sort: "id".into(), ..all })
            .await
            .unwrap()
            .total,
        1
    );
    assert!(matches!(store.delete_firmware("globex", "fw1").await, Err(StoreError::NotFound { .. })));
    store.delete_device("globex", "d1", t(50)).await.unwrap();
    assert!(store.get_device("acme", "d1").await.unwrap().is_some(), "deleting in one tenant leaves the other");
}

pub async fn key_changes_keep_a_lasting_admin(store: &dyn Store) {
    tenant(store, "acme").await;
    let expiring =
        ApiKey { expires_at: Some(t(100)), token_prefix: Some("upd_k_ab12".into()), ..key("k2", "acme", Role::Admin) };
    store.create_key(&key("k1", "acme", Role::Admin), "h1").await.unwrap();
    store.create_key(&expiring, "h2").await.unwrap();
    assert_eq!(store.key_by_token_hash("h2").await.unwrap(), Some(expiring.clone()), "expiry and prefix are kept");
    let downgrade = KeyChange::Update { role: Some(Role::Viewer), name: None, expires_at: None };
    // k2 expires, so k1 is the only lasting admin: it can be neither deleted nor downgraded.
    assert_eq!(store.change_key("acme", "k1", &KeyChange::Delete).await.unwrap(), Err(KeyRefusal::LastAdmin));
    assert_eq!(store.change_key("acme", "k1", &downgrade).await.unwrap(), Err(KeyRefusal::LastAdmin));
    let lasting = KeyChange::Update { role: None, name: Some(Some("ops".into())), expires_at: Some(None) };
    let k2 = store.change_key("acme", "k2", &lasting).await.unwrap().unwrap().unwrap();
    assert_eq!((k2.expires_at, k2.name.as_deref()), (None, Some("ops")));
    assert_eq!(store.key_by_token_hash("h2").await.unwrap(), Some(k2));
    // Now either may go, but not both, even at once.
    let (a, b) =
        both(store.change_key("acme", "k1", &KeyChange::Delete), store.change_key("acme", "k2", &downgrade)).await;
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&Err(KeyRefusal::LastAdmin)));
    let boot = ApiKey { server_admin: true, ..key("boot", "acme", Role::Admin) };
    store.replace_server_admin_key(&boot, "boot-h").await.unwrap();
    assert_eq!(store.change_key("acme", "boot", &KeyChange::Delete).await.unwrap(), Err(KeyRefusal::ServerAdmin));
    assert!(store.key_by_token_hash("boot-h").await.unwrap().is_some());
}

/// Runs two futures at once (the store crate has no async runtime of its own).
async fn both<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    use std::task::Poll;
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    (ra.expect("polled to the end"), rb.expect("polled to the end"))
}

/// Users sign in by a name unique across tenants; a session names its user
/// until it expires, is ended, or the user's password changes or the user goes.
pub async fn users_and_sessions(store: &dyn Store) {
    use updraft_core::User;
    tenant(store, "acme").await;
    tenant(store, "globex").await;
    let ann =
        User { id: "u1".into(), tenant: "acme".into(), name: "ann".into(), role: Role::Operator, created_at: t(1) };
    store.create_user(&ann, "hash-1").await.unwrap();
    let taken = User { id: "u2".into(), tenant: "globex".into(), ..ann.clone() };
    assert!(
        matches!(store.create_user(&taken, "h").await, Err(StoreError::Conflict { .. })),
        "names are unique across tenants"
    );
    let bob =
        User { id: "u3".into(), tenant: "globex".into(), name: "bob".into(), role: Role::Viewer, created_at: t(2) };
    store.create_user(&bob, "hash-3").await.unwrap();
    assert_eq!(store.user_by_name("ann").await.unwrap(), Some((ann.clone(), "hash-1".to_owned())));
    assert_eq!(store.user_by_name("nobody").await.unwrap(), None);
    assert_eq!(store.list_users("acme").await.unwrap(), std::slice::from_ref(&ann));
    assert_eq!(store.list_users("globex").await.unwrap(), std::slice::from_ref(&bob));

    store.create_session("s1", &ann, t(10), t(100)).await.unwrap();
    store.create_session("s2", &ann, t(10), t(20)).await.unwrap();
    let s = store.session("s1", t(50)).await.unwrap().unwrap();
    assert_eq!((s.user, s.created_at, s.expires_at), (ann.clone(), t(10), t(100)));
    assert_eq!(store.session("s2", t(20)).await.unwrap(), None, "expired at its instant");
    assert_eq!(store.session("nope", t(10)).await.unwrap(), None);
    assert_eq!(store.prune_sessions(t(30)).await.unwrap(), 1);
    store.delete_session("s1").await.unwrap();
    store.delete_session("s1").await.unwrap();
    assert_eq!(store.session("s1", t(50)).await.unwrap(), None, "signed out");

    store.create_session("s3", &ann, t(60), t(200)).await.unwrap();
    let wrong = store.set_user_password("globex", "u1", "hash-x").await;
    assert!(matches!(wrong, Err(StoreError::NotFound { .. })), "users are per tenant");
    store.set_user_password("acme", "u1", "hash-2").await.unwrap();
    assert_eq!(store.session("s3", t(61)).await.unwrap(), None, "a new password ends the sessions");
    assert_eq!(store.user_by_name("ann").await.unwrap().unwrap().1, "hash-2");

    store.create_session("s4", &bob, t(60), t(200)).await.unwrap();
    assert!(matches!(store.delete_user("acme", "u3").await, Err(StoreError::NotFound { .. })));
    store.delete_user("globex", "u3").await.unwrap();
    assert_eq!(store.session("s4", t(61)).await.unwrap(), None, "a deleted user's sessions end");
    assert_eq!(store.user_by_name("bob").await.unwrap(), None);
}

pub async fn access_keys_act_as_their_api_key(store: &dyn Store) {
    tenant(store, "acme").await;
    tenant(store, "globex").await;
    let operator = key("k-op", "acme", Role::Operator);
    store.create_key(&operator, "h-op").await.unwrap();
    store.create_key(&key("k-gx", "globex", Role::Admin), "h-gx").await.unwrap();
    let access = AccessKey { id: "AK1".into(), tenant: "acme".into(), key: "k-op".into(), created_at: t(5) };
    store.create_access_key(&access, "sealed-1").await.unwrap();
    let got = store.access_key("AK1").await.unwrap();
    assert_eq!(got, Some((access.clone(), operator.clone(), "sealed-1".into())), "the secret comes back as stored");
    assert_eq!(store.access_key("nope").await.unwrap(), None);

    let again = store.create_access_key(&access, "sealed-2").await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })), "{again:?}");
    let foreign = AccessKey { id: "AK2".into(), tenant: "acme".into(), key: "k-gx".into(), created_at: t(6) };
    let r = store.create_access_key(&foreign, "s").await;
    assert!(matches!(r, Err(StoreError::NotFound { .. })), "only an API key of its own tenant: {r:?}");
    assert_eq!(store.access_key("AK2").await.unwrap(), None, "nothing written");

    store.create_access_key(&AccessKey { id: "AK3".into(), ..access.clone() }, "sealed-3").await.unwrap();
    let listed: Vec<String> = store.list_access_keys("acme").await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(listed, ["AK1", "AK3"]);
    assert!(store.list_access_keys("globex").await.unwrap().is_empty(), "tenants never see each other's");
    let r = store.delete_access_key("globex", "AK1").await;
    assert!(matches!(r, Err(StoreError::NotFound { .. })), "{r:?}");

    // The bound key's changes show through; its deletion takes its access keys with it.
    let viewer = KeyChange::Update { role: Some(Role::Viewer), name: None, expires_at: None };
    store.change_key("acme", "k-op", &viewer).await.unwrap().unwrap();
    assert_eq!(store.access_key("AK1").await.unwrap().unwrap().1.role, Role::Viewer);
    store.delete_access_key("acme", "AK3").await.unwrap();
    assert_eq!(store.access_key("AK3").await.unwrap(), None);
    store.change_key("acme", "k-op", &KeyChange::Delete).await.unwrap().unwrap();
    assert_eq!(store.access_key("AK1").await.unwrap(), None, "gone with its API key");
    assert!(store.list_access_keys("acme").await.unwrap().is_empty());
}
