//! The conformance suite: the behaviour every [`Store`] implementation must
//! have. Each backend crate runs it, unchanged, through
//! [`store_conformance_suite!`](crate::store_conformance_suite).
//!
//! Every case gets a fresh, empty store and creates its own tenants.

use std::collections::BTreeMap;

use jiff::Timestamp;
use updraft_core::{
    ApiKey, ConnectionStatus, Device, DeviceAttributes, Firmware, FirmwareFile, Group, KeyChange, KeyRefusal,
    NewDevice, PageRequest, Product, PropertyValue, Role, SortOrder, Tenant, VersionScheme,
};

use updraft_core::job::{
    DeviceReport, EventSource, ExecutionState, Job, JobCommand, JobKind, JobState, ReportKind, TransitionError,
    on_consent, on_deployment_fetched, on_device_report,
};

use crate::{
    DeviceScope, ExecutionScope, GatewayToken, IdempotentRequest, SavedFilter, Sighting, Store, StoreError, sortable,
};
use updraft_core::filter::Filter;

mod events;
pub use events::*;

/// Generates one `#[tokio::test]` per conformance case. `$make` is an async
/// expression that yields a fresh store (`impl Store`).
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@cases $make;
            tenants_and_keys, products_crud_and_conflicts, product_listing_pages_sorts_and_searches,
            firmware_crud_and_version_conflict, devices_bulk_create_is_all_or_nothing,
            device_update_list_and_delete, groups_and_membership, tenants_never_see_each_other,
            product_in_use_cannot_be_deleted, jobs_and_executions, execution_changes_are_atomic_and_complete_jobs,
            canceling_a_job, jobs_engine, verify_jobs_mark_firmware, gateway_tokens_and_presence, filters_on_a_known_fleet,
            filters_agree_with_the_core, saved_filters_crud, jobs_engine_invariants,
            first_contact_activates_and_initializes, online_devices_never_seen_go_offline,
            a_success_that_installs_nothing_keeps_the_versions,
            key_changes_keep_a_lasting_admin, device_tokens_are_replaced, idempotent_imports_are_kept_with_their_devices, action_ids_count_per_tenant_and_per_attempt,
            concurrent_releases_keep_the_pace_and_one_execution_per_device,
            events_are_written_with_their_change_and_rolled_back_with_it, followers_keep_their_place_under_a_lease);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::conformance::$case(&store).await;
                $crate::Store::close(&store).await;
            }
        )*
    };
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

async fn tenant(store: &dyn Store, id: &str) {
    store.ensure_tenant(&Tenant { id: id.into(), name: id.into(), created_at: t(0) }).await.unwrap();
}

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

fn product(key: &str) -> Product {
    Product {
        key: key.into(),
        name: format!("Product {key}"),
        description: None,
        version_scheme: VersionScheme::Semver,
        created_at: t(2),
        updated_at: t(2),
    }
}

fn firmware(id: &str, product: &str, version: &str) -> Firmware {
    Firmware {
        id: id.into(),
        product: product.into(),
        version: version.into(),
        name: Some(format!("fw {version}")),
        release_notes: Some("fixes".into()),
        metadata: BTreeMap::from([("campaign".into(), "c1".into())]),
        needs_verification: true,
        verified: false,
        files: vec![FirmwareFile {
            name: "app.bin".into(),
            component: "host".into(),
            version: version.into(),
            size: 1 << 33,
            sha256: "a".repeat(64),
            sha1: "b".repeat(40),
            md5: "c".repeat(32),
            blob: format!("acme/{id}/app.bin"),
        }],
        created_at: t(3),
    }
}

fn device(id: &str, product: &str) -> NewDevice {
    let mut attributes = DeviceAttributes::default();
    attributes.firmware.insert("host".into(), "1.0.0".into());
    attributes.properties.insert("region".into(), PropertyValue::String("eu".into()));
    attributes.properties.insert("temp".into(), PropertyValue::Number(21.5));
    attributes.properties.insert("beta".into(), PropertyValue::Bool(true));
    attributes.metadata.insert("owner".into(), "acme".into());
    attributes.hardware_version = Some("rev-b".into());
    attributes.activated_at = Some(t(10));
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    NewDevice { id: id.into(), product: product.into(), attributes, token_hash: format!("hash-{id}-{n}") }
}

fn page(sort: &str, order: SortOrder, limit: u32, offset: u64, search: Option<&str>) -> PageRequest {
    PageRequest { limit, offset, sort: sort.into(), order, search: search.map(Into::into), count_total: true }
}

fn invalid_fields(e: StoreError) -> Vec<String> {
    match e {
        StoreError::Invalid(updraft_core::Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Writes `d` over the stored device with its id as the server does: the
/// last contact through `record_presence`, the rest of the record through
/// `modify_device` (which stamps `updated_at` with `now`). The device as written.
async fn put_device(store: &dyn Store, tenant: &str, d: &Device, now: Timestamp) -> Device {
    if let Some(seen) = d.last_seen_at {
        let sighting = Sighting { tenant: tenant.into(), device: d.id.clone(), first: seen, last: seen, polls: 2 };
        store.record_presence(&[sighting], Timestamp::MIN).await.unwrap();
    }
    let wanted = d.clone();
    let change = move |stored: &mut Device| {
        *stored = wanted.clone();
        Ok(())
    };
    store.modify_device(tenant, &d.id, &change, false, now).await.unwrap().unwrap()
}

/// The references to rows that do not exist, of a `Missing` error.
fn missing_fields(e: StoreError) -> Vec<String> {
    match e {
        StoreError::Missing(references) => references.into_iter().map(|e| e.field).collect(),
        other => panic!("expected Missing, got {other:?}"),
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

pub async fn devices_bulk_create_is_all_or_nothing(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    store.create_devices("acme", &[device("d0", "thermo")], t(5)).await.unwrap();
    let batch = vec![device("d1", "thermo"), device("d0", "thermo"), device("d2", "ghost"), device("d1", "thermo")];
    let err = store.create_devices("acme", &batch, t(6)).await.unwrap_err();
    assert_eq!(invalid_fields(err), ["1.id", "3.id", "2.product"], "taken ids, then unknown products");
    let unknown = store.create_devices("acme", &[device("d5", "thermo"), device("d6", "ghost")], t(6)).await;
    assert_eq!(missing_fields(unknown.unwrap_err()), ["1.product"], "only unknown products: a missing reference");
    assert_eq!(store.get_device("acme", "d5").await.unwrap(), None, "nothing of a refused batch is written");
    assert_eq!(store.get_device("acme", "d1").await.unwrap(), None, "nothing of a rejected batch is written");

    let many: Vec<NewDevice> = (0..2500).map(|i| device(&format!("dev-{i:05}"), "thermo")).collect();
    store.create_devices("acme", &many, t(7)).await.unwrap();
    let all =
        store.list_devices("acme", &DeviceScope::default(), &page("id", SortOrder::Asc, 10, 0, None)).await.unwrap();
    assert_eq!(all.total, 2501);
    let d = store.get_device("acme", "dev-00042").await.unwrap().unwrap();
    let ids: Vec<String> = ["dev-00007", "ghost", "dev-02499", "d0"].iter().map(|s| s.to_string()).collect();
    let mut found: Vec<String> = store.get_devices("acme", &ids).await.unwrap().into_iter().map(|d| d.id).collect();
    found.sort();
    assert_eq!(found, ["d0", "dev-00007", "dev-02499"], "unknown ids are left out");
    let first: Vec<String> = (0..1200).map(|i| format!("dev-{i:05}")).collect();
    assert_eq!(store.get_devices("acme", &first).await.unwrap().len(), 1200, "more ids than one query takes");
    assert!(store.get_devices("globex", &ids).await.unwrap().is_empty(), "per tenant");
    assert_eq!(d.properties["temp"], PropertyValue::Number(21.5));
    assert_eq!(d.properties["beta"], PropertyValue::Bool(true));
    assert_eq!(d.firmware["host"], "1.0.0");
    assert_eq!(d.metadata["owner"], "acme");
    assert_eq!(d.activated_at, Some(t(10)));
    assert_eq!(d.connection_status, ConnectionStatus::Offline);
    assert_eq!((d.created_at, d.last_seen_at), (t(7), None));
    let by_token = store.device_identity_by_token_hash(&many[42].token_hash).await.unwrap().unwrap();
    assert_eq!((by_token.tenant.as_str(), by_token.id.as_str()), ("acme", "dev-00042"));
}

pub async fn device_update_list_and_delete(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    store.create_product("acme", &product("plug")).await.unwrap();
    let batch = vec![device("b", "thermo"), device("a", "plug"), device("c", "thermo")];
    store.create_devices("acme", &batch, t(5)).await.unwrap();
    let mut d = store.get_device("acme", "b").await.unwrap().unwrap();
    d.firmware.insert("host".into(), "2.0.0".into());
    d.properties.insert("region".into(), PropertyValue::String("us".into()));
    d.metadata.clear();
    d.module_model = Some("esp32".into());
    d.last_seen_at = Some(t(50));
    d.connection_status = ConnectionStatus::Online;
    d.updated_at = t(50);
    assert_eq!(put_device(store, "acme", &d, t(50)).await, d);
    assert_eq!(store.get_device("acme", "b").await.unwrap(), Some(d.clone()));

    let scope = DeviceScope { product: Some("thermo".into()), group: None };
    let list = store.list_devices("acme", &scope, &page("id", SortOrder::Desc, 10, 0, None)).await.unwrap();
    assert_eq!(list.items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["c", "b"]);
    let sorted = store
        .list_devices("acme", &DeviceScope::default(), &page(sortable::DEVICES[4], SortOrder::Desc, 1, 0, None))
        .await
        .unwrap();
    assert_eq!(sorted.items[0].id, "b", "sort by last_seen_at");
    store.delete_device("acme", "b").await.unwrap();
    assert!(matches!(store.delete_device("acme", "b").await, Err(StoreError::NotFound { .. })));
    let gone = store.modify_device("acme", "b", &|_| Ok(()), false, t(51)).await;
    assert!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");
}

pub async fn groups_and_membership(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    store.create_product("acme", &product("plug")).await.unwrap();
    let devices: Vec<NewDevice> = (0..30).map(|i| device(&format!("t{i:02}"), "thermo")).collect();
    store.create_devices("acme", &devices, t(5)).await.unwrap();
    store.create_devices("acme", &[device("p0", "plug")], t(5)).await.unwrap();
    let g = Group {
        id: "lab".into(),
        name: "Lab".into(),
        description: None,
        product: Some("thermo".into()),
        member_count: 0,
        created_at: t(6),
        updated_at: t(6),
    };
    store.create_group("acme", &g).await.unwrap();
    assert!(matches!(store.create_group("acme", &g).await, Err(StoreError::Conflict { .. })));
    let bad_product = Group { id: "x".into(), product: Some("ghost".into()), ..g.clone() };
    assert_eq!(missing_fields(store.create_group("acme", &bad_product).await.unwrap_err()), ["product"]);

    let add: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    let change = store.change_members("acme", "lab", &add, &[], t(7)).await.unwrap();
    assert_eq!((change.added, change.removed), (20, 0));
    let change = store.change_members("acme", "lab", &add[..5], &add[15..], t(8)).await.unwrap();
    assert_eq!((change.added, change.removed), (0, 5), "re-adding is a no-op");
    let bad = store.change_members("acme", "lab", &["t25".into(), "ghost".into(), "p0".into()], &[], t(9)).await;
    assert_eq!(invalid_fields(bad.unwrap_err()), ["add.2", "add.1"], "another product's device, then unknown ones");
    let unknown = store.change_members("acme", "lab", &["t25".into(), "ghost".into()], &[], t(9)).await;
    assert_eq!(missing_fields(unknown.unwrap_err()), ["add.1"], "only unknown devices: a missing reference");
    assert_eq!(
        store.get_group("acme", "lab").await.unwrap().unwrap().member_count,
        15,
        "a rejected change writes nothing"
    );
    assert!(matches!(store.change_members("acme", "nope", &[], &[], t(9)).await, Err(StoreError::NotFound { .. })));

    let scope = DeviceScope { product: None, group: Some("lab".into()) };
    let members = store.list_devices("acme", &scope, &page("id", SortOrder::Asc, 10, 10, None)).await.unwrap();
    assert_eq!(members.total, 15);
    assert_eq!(members.items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["t10", "t11", "t12", "t13", "t14"]);

    let open = Group { id: "any".into(), name: "Anything".into(), product: None, ..g.clone() };
    store.create_group("acme", &open).await.unwrap();
    store.change_members("acme", "any", &["p0".into(), "t00".into()], &[], t(9)).await.unwrap();
    let groups = store.list_groups("acme", &page("name", SortOrder::Asc, 10, 0, None)).await.unwrap();
    assert_eq!(
        groups.items.iter().map(|g| (g.id.as_str(), g.member_count)).collect::<Vec<_>>(),
        [("any", 2), ("lab", 15)]
    );

    let mut renamed = store.get_group("acme", "lab").await.unwrap().unwrap();
    renamed.name = "Laboratory".into();
    renamed.updated_at = t(20);
    store.update_group("acme", &renamed).await.unwrap();
    assert_eq!(store.get_group("acme", "lab").await.unwrap(), Some(renamed));
    store.delete_device("acme", "t00").await.unwrap();
    assert_eq!(store.get_group("acme", "any").await.unwrap().unwrap().member_count, 1, "deleted devices leave groups");
    store.delete_group("acme", "lab").await.unwrap();
    assert_eq!(store.get_group("acme", "lab").await.unwrap(), None);
    assert!(matches!(store.delete_group("acme", "lab").await, Err(StoreError::NotFound { .. })));
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
    store.delete_device("globex", "d1").await.unwrap();
    assert!(store.get_device("acme", "d1").await.unwrap().is_some(), "deleting in one tenant leaves the other");
}

pub async fn product_in_use_cannot_be_deleted(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    store.create_devices("acme", &[device("d1", "thermo")], t(5)).await.unwrap();
    let err = store.delete_product("acme", "thermo").await.unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    store.delete_device("acme", "d1").await.unwrap();
    store.create_firmware("acme", &firmware("fw1", "thermo", "1.0.0")).await.unwrap();
    assert!(matches!(store.delete_product("acme", "thermo").await, Err(StoreError::InUse { .. })));
    store.delete_firmware("acme", "fw1").await.unwrap();
    store.delete_product("acme", "thermo").await.unwrap();
}

fn job(id: &str, firmware: &str) -> Job {
    Job {
        id: id.into(),
        name: Some(format!("job {id}")),
        description: None,
        kind: JobKind::Upgrade,
        firmware: firmware.into(),
        product: "thermo".into(),
        state: JobState::Running,
        consent_required: false,
        created_at: t(20),
        started_at: Some(t(20)),
        finished_at: None,
        spec: Default::default(),
        held: false,
    }
}

fn report(kind: ReportKind, label: &str) -> DeviceReport {
    DeviceReport {
        kind,
        label: label.into(),
        progress: None,
        code: Some(200),
        details: vec![format!("{label} detail")],
    }
}

async fn fleet(store: &dyn Store, n: usize) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    let devices: Vec<NewDevice> = (0..n).map(|i| device(&format!("d{i}"), "thermo")).collect();
    store.create_devices("acme", &devices, t(5)).await.unwrap();
    let mut fw = firmware("fw2", "thermo", "2.0.0");
    fw.files[0].component = "host".into();
    store.create_firmware("acme", &fw).await.unwrap();
}

/// Cancels a job as the API's `cancel` command does: the job's rule, then a
/// move from the state it was read in. `None` when it had ended.
async fn cancel(store: &dyn Store, tenant: &str, id: &str, now: Timestamp) -> Option<Job> {
    let job = store.get_job(tenant, id).await.unwrap()?;
    let (to, held) = job.on_command(JobCommand::Cancel, now).ok()?;
    store.move_job(tenant, id, job.state, to, held, now).await.unwrap()
}

/// Releases up to `max` of job `job`'s queued executions (of tenant `acme`): the devices released.
async fn release(store: &dyn Store, job: &str, max: u64, now: Timestamp) -> Vec<String> {
    store.release_executions("acme", job, None, &|_, _| max, now).await.unwrap().devices()
}

pub async fn jobs_and_executions(store: &dyn Store) {
    fleet(store, 3).await;
    let targets = vec![
        ("d0".to_owned(), ExecutionState::Queued),
        ("d1".to_owned(), ExecutionState::AwaitingConsent),
        ("d2".to_owned(), ExecutionState::Skipped),
    ];
    store.create_job("acme", &job("j1", "fw2"), &targets, t(20)).await.unwrap();
    assert!(matches!(store.create_job("acme", &job("j1", "fw2"), &[], t(21)).await, Err(StoreError::Conflict { .. })));
    let again = store
        .create_job(
            "acme",
            &job("j2", "fw2"),
            &[("d0".into(), ExecutionState::Queued), ("ghost".into(), ExecutionState::Queued)],
            t(21),
        )
        .await;
    assert_eq!(missing_fields(again.unwrap_err()), ["devices.ghost"], "an unknown device refuses the job");
    assert_eq!(store.get_job("acme", "j2").await.unwrap(), None, "nothing of a refused job is written");
    assert_eq!(store.get_job("acme", "j1").await.unwrap(), Some(job("j1", "fw2")));
    let counts = store.execution_counts("acme", "j1").await.unwrap();
    assert_eq!(
        counts,
        [(ExecutionState::Queued, 1), (ExecutionState::AwaitingConsent, 1), (ExecutionState::Skipped, 1)]
    );
    let listed = store
        .list_executions(
            "acme",
            &ExecutionScope { job: Some("j1".into()), ..Default::default() },
            &page("device", SortOrder::Asc, 10, 0, None),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.iter().map(|e| e.device.as_str()).collect::<Vec<_>>(), ["d0", "d1", "d2"]);
    let skipped = &listed.items[2];
    assert_eq!((skipped.state, skipped.finished_at), (ExecutionState::Skipped, Some(t(20))));
    assert_eq!(store.device_actions("acme", "d0").await.unwrap().active, None, "a queued execution is not offered");
    assert_eq!(release(store, "j1", 10, t(21)).await, ["d0"]);
    let actions = store.device_actions("acme", "d0").await.unwrap();
    let active = actions.active.clone().unwrap();
    assert_eq!((active.state, active.attempt, actions.installed), (ExecutionState::Notified, 1, None));
    let consent = store.device_actions("acme", "d1").await.unwrap().active.unwrap();
    assert_eq!(consent.state, ExecutionState::AwaitingConsent, "awaiting consent is offered for confirmation");
    assert_eq!(store.device_actions("acme", "d2").await.unwrap().active, None, "a skipped execution is not offered");
    assert_eq!(store.get_execution("acme", active.action_id).await.unwrap(), Some(active.clone()));
    assert_eq!(store.get_execution("globex", active.action_id).await.unwrap(), None, "executions are per tenant");
    let history = store.execution_history("acme", active.action_id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].report.as_str(), history[0].state), ("created", ExecutionState::Queued));
    assert_eq!((history[1].report.as_str(), history[1].state), ("released", ExecutionState::Notified));
    let jobs = store.list_jobs("acme", None, &page("created_at", SortOrder::Desc, 10, 0, None)).await.unwrap();
    assert_eq!(jobs.total, 1);
    let in_use = store.delete_firmware("acme", "fw2").await;
    assert!(matches!(in_use, Err(StoreError::InUse { .. })), "{in_use:?}");
}

pub async fn execution_changes_are_atomic_and_complete_jobs(store: &dyn Store) {
    fleet(store, 2).await;
    let targets = vec![("d0".to_owned(), ExecutionState::Queued), ("d1".to_owned(), ExecutionState::AwaitingConsent)];
    store.create_job("acme", &job("j1", "fw2"), &targets, t(20)).await.unwrap();
    assert_eq!(release(store, "j1", 10, t(30)).await, ["d0"]);
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    let d1 = store
        .list_executions(
            "acme",
            &ExecutionScope { device: Some("d1".into()), ..Default::default() },
            &page("action_id", SortOrder::Asc, 10, 0, None),
        )
        .await
        .unwrap()
        .items[0]
        .clone();

    assert_eq!(d0.state, ExecutionState::Notified);
    let same = store
        .change_execution("acme", d0.action_id, &|e| on_deployment_fetched(e, t(31)), t(31))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same.updated_at, t(30), "no change, no write");
    let r = report(ReportKind::Proceeding, "proceeding");
    let e = store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &r, t(32)).map(Some), t(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.state, ExecutionState::Downloading);
    let refused = store
        .change_execution("acme", d1.action_id, &|e| on_device_report(e, &r, t(33)).map(Some), t(33))
        .await
        .unwrap();
    assert_eq!(refused, Err(TransitionError::NotApplicable), "awaiting consent, the device cannot report");
    let done = report(ReportKind::Closed { success: true }, "closed/success");
    let e = store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &done, t(40)).map(Some), t(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.state, e.finished_at), (ExecutionState::Succeeded, Some(t(40))));
    let late = store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &r, t(41)).map(Some), t(41))
        .await
        .unwrap();
    assert_eq!(late, Err(TransitionError::Finished));
    let dev = store.get_device("acme", "d0").await.unwrap().unwrap();
    assert_eq!(dev.firmware["host"], "2.0.0", "a success installs the image's versions");
    assert!(store.device_identity("acme", "d0").await.unwrap().unwrap().attributes_requested);
    let actions = store.device_actions("acme", "d0").await.unwrap();
    assert_eq!((actions.active, actions.installed.map(|e| e.action_id)), (None, Some(d0.action_id)));
    let history = store.execution_history("acme", d0.action_id).await.unwrap();
    assert_eq!(
        history.iter().map(|h| h.report.as_str()).collect::<Vec<_>>(),
        ["created", "released", "proceeding", "closed/success"]
    );
    assert_eq!(history[3].details, ["closed/success detail"]);
    assert_eq!(history[3].code, Some(200));
    assert_eq!(history[3].source, EventSource::Device);
    assert_eq!(store.get_job("acme", "j1").await.unwrap().unwrap().state, JobState::Running, "d1 is still open");

    let denied = store
        .change_execution(
            "acme",
            d1.action_id,
            &|e| on_consent(e, false, EventSource::Operator, t(50)).map(Some),
            t(50),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(denied.state, ExecutionState::Rejected);
    let j = store.get_job("acme", "j1").await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.finished_at),
        (JobState::Completed, Some(t(50))),
        "the last execution to finish completes the job"
    );
    assert!(matches!(
        store.change_execution("acme", 999_999, &|_| Ok(None), t(51)).await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete_firmware("acme", "fw2").await.unwrap();
}

pub async fn canceling_a_job(store: &dyn Store) {
    fleet(store, 2).await;
    store
        .create_job(
            "acme",
            &job("j1", "fw2"),
            &[("d0".into(), ExecutionState::Queued), ("d1".into(), ExecutionState::Queued)],
            t(20),
        )
        .await
        .unwrap();
    assert_eq!(release(store, "j1", 1, t(21)).await, ["d0"], "oldest first, at most 1");
    let job = cancel(store, "acme", "j1", t(30)).await.unwrap();
    assert_eq!((job.state, job.finished_at), (JobState::Canceled, Some(t(30))));
    let d1 = store.device_actions("acme", "d1").await.unwrap();
    assert_eq!(d1.active, None, "a queued execution ends at once");
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    assert_eq!((d0.state, d0.cancel_requested), (ExecutionState::Notified, true), "a started one is asked to stop");
    let again = store.move_job("acme", "j1", JobState::Running, JobState::Canceled, false, t(31)).await;
    assert_eq!(again.unwrap(), None, "a move from a state the job has left changes nothing");
    let unknown = store.move_job("acme", "nope", JobState::Running, JobState::Canceled, false, t(31)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound { .. })), "{unknown:?}");
    let counts = store.execution_counts("acme", "j1").await.unwrap();
    assert_eq!(counts, [(ExecutionState::Notified, 1), (ExecutionState::Canceled, 1)]);
}

/// The scheduler's store operations: releases that skip busy devices,
/// timeouts, retries, idempotent additions, compare-and-set job moves, and
/// completion that waits for due retries.
pub async fn jobs_engine(store: &dyn Store) {
    use updraft_core::rollout::{Recurrence, Retry};
    fleet(store, 3).await;
    let mut j1 = job("j1", "fw2");
    j1.spec.retry = Retry { count: 1, interval_minutes: 5 };
    let targets = vec![("d0".to_owned(), ExecutionState::Queued), ("d1".to_owned(), ExecutionState::Queued)];
    store.create_job("acme", &j1, &targets, t(20)).await.unwrap();
    assert_eq!(store.get_job("acme", "j1").await.unwrap().unwrap().spec, j1.spec, "the spec is kept as given");
    // A second job for d0: it waits while d0 works on j1.
    let mut j2 = job("j2", "fw2");
    j2.spec.recurrence = Recurrence::Continuous;
    store.create_job("acme", &j2, &[("d0".to_owned(), ExecutionState::Queued)], t(20)).await.unwrap();
    assert_eq!(release(store, "j1", 10, t(30)).await, ["d0", "d1"]);
    assert_eq!(release(store, "j2", 10, t(30)).await, Vec::<String>::new(), "d0 is busy");
    let stats = store.pace_stats("acme", "j1", t(60)).await.unwrap();
    assert_eq!((stats.in_progress, stats.released_last_minute, stats.released_total), (2, 2, 2));
    assert_eq!(stats.released_by_second[30], 2, "by age in seconds");
    let at_release = store.pace_stats("acme", "j1", t(30)).await.unwrap();
    assert_eq!(
        (at_release.released_by_second[0], at_release.released_total),
        (2, 0),
        "this instant's releases count in its second, not in the ramp's total"
    );
    assert_eq!(store.pace_stats("acme", "j1", t(95)).await.unwrap().released_last_minute, 0, "a minute later");
    // Additions are idempotent.
    let added = store
        .add_executions(
            "acme",
            &j2,
            &[("d0".into(), ExecutionState::Queued), ("d2".into(), ExecutionState::Queued)],
            t(31),
        )
        .await
        .unwrap();
    assert_eq!(added, 1, "d0 is in j2 already");
    let mut have = store.job_has_devices("acme", "j2", &["d0".into(), "d1".into(), "d2".into()]).await.unwrap();
    have.sort();
    assert_eq!(have, ["d0", "d2"]);
    // d1 fails, d0 times out.
    let d1 = store.device_actions("acme", "d1").await.unwrap().active.unwrap();
    let failed = report(ReportKind::Closed { success: false }, "closed/failure");
    store
        .change_execution("acme", d1.action_id, &|e| on_device_report(e, &failed, t(40)).map(Some), t(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.time_out_executions("acme", "j1", t(30), t(100)).await.unwrap(),
        Vec::<String>::new(),
        "not before"
    );
    assert_eq!(store.time_out_executions("acme", "j1", t(31), t(100)).await.unwrap(), ["d0"]);
    assert!(!store.complete_job_if_done("acme", "j1", t(101)).await.unwrap(), "retries are due");
    assert_eq!(
        store.retry_executions("acme", "j1", &j1.spec.retry, t(200)).await.unwrap(),
        Vec::<String>::new(),
        "not yet"
    );
    let retried = store.retry_executions("acme", "j1", &j1.spec.retry, t(40 + 300)).await.unwrap();
    assert_eq!(retried, ["d1"], "d1 failed at 40 s: due at 340 s; d0 timed out at 100 s: due at 400 s");
    let again = store.retry_executions("acme", "j1", &j1.spec.retry, t(400)).await.unwrap();
    assert_eq!(again, ["d0"]);
    let d1 = store.get_execution("acme", d1.action_id).await.unwrap().unwrap();
    assert_eq!((d1.state, d1.attempt, d1.finished_at), (ExecutionState::Queued, 2, None));
    let history = store.execution_history("acme", d1.action_id).await.unwrap();
    assert_eq!(
        history.iter().map(|h| h.report.as_str()).collect::<Vec<_>>(),
        ["created", "released", "closed/failure", "retry"],
        "every attempt stays in the history"
    );
    // j2 can release d0 now that it is queued again in j1? No: queued is not busy, so yes.
    assert_eq!(release(store, "j2", 10, t(401)).await, ["d0", "d2"]);
    assert_eq!(release(store, "j1", 10, t(402)).await, ["d1"], "d0 is busy with j2 now");
    // Moves are compare-and-set.
    assert!(store.move_job("acme", "j1", JobState::Paused, JobState::Running, false, t(403)).await.unwrap().is_none());
    let paused =
        store.move_job("acme", "j1", JobState::Running, JobState::Paused, true, t(403)).await.unwrap().unwrap();
    assert_eq!((paused.state, paused.held), (JobState::Paused, true));
    // Leases: one replica at a time, until it expires.
    assert!(store.lease_job("acme", "j1", "replica-a", t(433), t(403)).await.unwrap());
    assert!(!store.lease_job("acme", "j1", "replica-b", t(433), t(404)).await.unwrap(), "held by a");
    assert!(store.lease_job("acme", "j1", "replica-a", t(440), t(405)).await.unwrap(), "a renews");
    assert!(store.lease_job("acme", "j1", "replica-b", t(470), t(441)).await.unwrap(), "expired: b takes it");
    assert!(!store.lease_job("acme", "j1", "replica-a", t(470), t(442)).await.unwrap());
    assert_eq!(store.release_leases("replica-b").await.unwrap(), 1, "b shuts down");
    assert!(store.lease_job("acme", "j1", "replica-a", t(470), t(443)).await.unwrap(), "a takes it at once");
    let live: Vec<String> = store.live_jobs().await.unwrap().into_iter().map(|(_, j)| j.id).collect();
    assert_eq!(live, ["j1", "j2"]);
    let aborted =
        store.move_job("acme", "j1", JobState::Paused, JobState::Aborted, false, t(404)).await.unwrap().unwrap();
    assert_eq!((aborted.state, aborted.finished_at), (JobState::Aborted, Some(t(404))));
    let counts: std::collections::BTreeMap<_, _> =
        store.execution_counts("acme", "j1").await.unwrap().into_iter().collect();
    assert_eq!(counts.get(&ExecutionState::Queued), None, "an aborted job's queued executions end");
    // A continuous job never completes by itself.
    let d2 = store.device_actions("acme", "d2").await.unwrap().active.unwrap();
    let ok = report(ReportKind::Closed { success: true }, "closed/success");
    store
        .change_execution("acme", d2.action_id, &|e| on_device_report(e, &ok, t(410)).map(Some), t(410))
        .await
        .unwrap()
        .unwrap();
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &ok, t(411)).map(Some), t(411))
        .await
        .unwrap()
        .unwrap();
    assert!(!store.complete_job_if_done("acme", "j2", t(412)).await.unwrap());
    assert_eq!(store.get_job("acme", "j2").await.unwrap().unwrap().state, JobState::Running);
    let listed = store
        .list_jobs("acme", Some(JobState::Aborted), &page("created_at", SortOrder::Asc, 10, 0, None))
        .await
        .unwrap();
    assert_eq!(listed.items.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["j1"]);
}

/// Releases check the pace and the device's other executions inside their own
/// transaction: many at once (devices asking, the scheduler) never release
/// more than the pace allows, nor two executions to one device.
pub async fn concurrent_releases_keep_the_pace_and_one_execution_per_device(store: &dyn Store) {
    use updraft_core::rollout::{Pace, release_budget};
    const N: usize = 12;
    fleet(store, N + 1).await;
    let mut one_at_a_time = job("j1", "fw2");
    one_at_a_time.spec.pace = Pace { max_concurrency: 1, ..Pace::default() };
    let targets: Vec<(String, ExecutionState)> = (0..N).map(|i| (format!("d{i}"), ExecutionState::Queued)).collect();
    store.create_job("acme", &one_at_a_time, &targets, t(20)).await.unwrap();
    let paced = |j: &Job, stats: &updraft_core::rollout::PaceStats| release_budget(&j.spec.pace, stats);
    let devices: Vec<String> = (0..N).map(|i| format!("d{i}")).collect();
    let asks = devices.iter().map(|d| store.release_executions("acme", "j1", Some(d), &paced, t(30)));
    let released: Vec<String> =
        futures_util::future::join_all(asks).await.into_iter().flat_map(|r| r.unwrap().devices()).collect();
    assert_eq!(released.len(), 1, "max_concurrency 1, asked by {N} devices at once: {released:?}");
    let counts = store.execution_counts("acme", "j1").await.unwrap();
    assert_eq!(counts, [(ExecutionState::Queued, N as u64 - 1), (ExecutionState::Notified, 1)]);

    // One device, N jobs released to it at once: it works on one.
    for i in 0..N {
        let j = job(&format!("k{i}"), "fw2");
        store.create_job("acme", &j, &[("d12".to_owned(), ExecutionState::Queued)], t(40)).await.unwrap();
    }
    let free = |_: &Job, _: &updraft_core::rollout::PaceStats| 10;
    let ids: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    let asks = ids.iter().map(|j| store.release_executions("acme", j, Some("d12"), &free, t(50)));
    let released: Vec<String> =
        futures_util::future::join_all(asks).await.into_iter().flat_map(|r| r.unwrap().devices()).collect();
    assert_eq!(released, ["d12"], "asked for {N} jobs at once, a device works on one");
    let all = store
        .list_executions(
            "acme",
            &ExecutionScope { device: Some("d12".into()), ..Default::default() },
            &PageRequest::all(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(all.iter().filter(|e| e.state.is_in_progress()).count(), 1, "{all:#?}");
    // A device limits the release to its own execution; an unknown job is not found.
    assert_eq!(store.release_executions("acme", "j1", Some("d12"), &free, t(60)).await.unwrap().executions, []);
    assert!(matches!(
        store.release_executions("acme", "nope", None, &free, t(60)).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A verify job whose executions all succeed marks its firmware verified.
pub async fn verify_jobs_mark_firmware(store: &dyn Store) {
    fleet(store, 1).await;
    let mut j = job("v1", "fw2");
    j.kind = JobKind::Verify;
    store.create_job("acme", &j, &[("d0".to_owned(), ExecutionState::Queued)], t(20)).await.unwrap();
    release(store, "v1", 1, t(21)).await;
    let d0 = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    assert!(!store.get_firmware("acme", "fw2").await.unwrap().unwrap().verified);
    let ok = report(ReportKind::Closed { success: true }, "closed/success");
    store
        .change_execution("acme", d0.action_id, &|e| on_device_report(e, &ok, t(22)).map(Some), t(22))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.get_job("acme", "v1").await.unwrap().unwrap().state, JobState::Completed);
    assert!(store.get_firmware("acme", "fw2").await.unwrap().unwrap().verified);
}

pub async fn gateway_tokens_and_presence(store: &dyn Store) {
    fleet(store, 2).await;
    let gw = GatewayToken { id: "gw1".into(), tenant: "acme".into(), name: Some("edge".into()), created_at: t(1) };
    store.create_gateway_token(&gw, "gw-hash").await.unwrap();
    assert!(matches!(store.create_gateway_token(&gw, "other").await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.gateway_tenant("gw-hash").await.unwrap().as_deref(), Some("acme"));
    assert_eq!(store.list_gateway_tokens("acme").await.unwrap(), [gw]);
    assert!(matches!(store.delete_gateway_token("globex", "gw1").await, Err(StoreError::NotFound { .. })));
    store.delete_gateway_token("acme", "gw1").await.unwrap();
    assert_eq!(store.gateway_tenant("gw-hash").await.unwrap(), None);

    let mut twice = Sighting::once("acme", "d0", t(95));
    (twice.last, twice.polls) = (t(100), 2);
    let seen = vec![twice, Sighting::once("acme", "d1", t(10))];
    store.record_presence(&seen, t(50)).await.unwrap();
    let d0 = store.get_device("acme", "d0").await.unwrap().unwrap();
    let d1 = store.get_device("acme", "d1").await.unwrap().unwrap();
    assert_eq!((d0.last_seen_at, d0.connection_status), (Some(t(100)), ConnectionStatus::Online));
    assert_eq!(
        (d1.last_seen_at, d1.connection_status),
        (Some(t(10)), ConnectionStatus::Offline),
        "seen before the cutoff: offline"
    );
    store.record_presence(&[Sighting::once("acme", "d0", t(90))], t(0)).await.unwrap();
    assert_eq!(
        store.get_device("acme", "d0").await.unwrap().unwrap().last_seen_at,
        Some(t(100)),
        "an older sighting never goes back in time"
    );
    let mut probe = device("probe", "thermo");
    probe.token_hash = "probe-hash".into();
    store.create_devices("acme", &[probe], t(5)).await.unwrap();
    let identity = store.device_identity_by_token_hash("probe-hash").await.unwrap().unwrap();
    assert_eq!(
        (identity.tenant.as_str(), identity.id.as_str(), identity.attributes_requested),
        ("acme", "probe", true)
    );
    assert_eq!(store.device_identity_by_token_hash("nope").await.unwrap(), None);
    let report = |d: &mut updraft_core::Device| {
        d.properties.insert("reported".into(), PropertyValue::String("yes".into()));
        Ok(())
    };
    let changed = store.modify_device("acme", "d0", &report, true, t(200)).await.unwrap().unwrap();
    assert_eq!((changed.updated_at, changed.last_seen_at), (t(200), Some(t(100))), "presence is kept");
    assert!(!store.device_identity("acme", "d0").await.unwrap().unwrap().attributes_requested);
    assert_eq!(
        store.get_device("acme", "d0").await.unwrap().unwrap().properties["reported"],
        PropertyValue::String("yes".into())
    );
    let refuse = |d: &mut updraft_core::Device| {
        d.properties.clear();
        Err(vec![updraft_core::FieldError::new("x", "no")])
    };
    assert!(store.modify_device("acme", "d0", &refuse, false, t(300)).await.unwrap().is_err());
    let kept = store.get_device("acme", "d0").await.unwrap().unwrap();
    assert!(kept.properties.contains_key("reported"), "a refused change writes nothing");
    let nothing = |_: &mut updraft_core::Device| Ok(());
    assert!(matches!(
        store.modify_device("acme", "ghost", &nothing, false, t(300)).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Ids of the devices `filter` matches, as the store lists them (sorted by id) and counts them.
async fn matching(store: &dyn Store, tenant: &str, filter: &Filter, now: Timestamp) -> Vec<String> {
    let page =
        store.list_devices_matching(tenant, &DeviceScope::default(), filter, now, &PageRequest::all()).await.unwrap();
    let count = store.count_devices_matching(tenant, filter, now).await.unwrap();
    assert_eq!(page.total, count, "list total and count agree for `{filter}`");
    assert_eq!(page.items.len() as u64, count, "`{filter}`");
    page.items.into_iter().map(|d| d.id).collect()
}

pub async fn filters_on_a_known_fleet(store: &dyn Store) {
    let day = 86_400;
    let now = t(100 * day);
    tenant(store, "acme").await;
    tenant(store, "other").await;
    for p in ["thermo-x", "lamp"] {
        store.create_product("acme", &product(p)).await.unwrap();
    }
    store.create_product("other", &product("thermo-x")).await.unwrap();
    // dsn-1: thermo-x, host 1.9.0, eu, 21.5 degrees, online, activated 40 days ago, in beta.
    // dsn-2: thermo-x, host 1.10.0, us, 18 degrees, offline, activated 10 days ago.
    // dsn-3: thermo-x, host build-7, region "EU" (string), temp "hot" (string), never activated.
    // dsn-4: lamp, host v2.0.0-rc.1 and module 1.2.0+b7, no properties, in beta and canary.
    // dsn-5: lamp, no firmware, note "update pending", hw 1.2.0, never seen.
    let mut fleet = Vec::new();
    for (id, prod) in
        [("dsn-1", "thermo-x"), ("dsn-2", "thermo-x"), ("dsn-3", "thermo-x"), ("dsn-4", "lamp"), ("dsn-5", "lamp")]
    {
        let mut d = device(id, prod);
        d.attributes = DeviceAttributes::default();
        fleet.push(d);
    }
    store.create_devices("acme", &fleet, t(0)).await.unwrap();
    store.create_devices("other", &[device("dsn-1", "thermo-x")], t(0)).await.unwrap();
    let set = |d: &mut updraft_core::Device, id: &str| {
        use PropertyValue as P;
        match id {
            "dsn-1" => {
                d.firmware.insert("host".into(), "1.9.0".into());
                d.hardware_version = Some("rev-b".into());
                d.properties.insert("region".into(), P::String("eu".into()));
                d.properties.insert("temp".into(), P::Number(21.5));
                d.properties.insert("room temp".into(), P::Number(19.0));
                d.properties.insert("beta".into(), P::Bool(true));
                d.metadata.insert("campaign".into(), "spring".into());
                d.connection_status = ConnectionStatus::Online;
                d.activated_at = Some(t(60 * day));
                d.last_seen_at = Some(t(100 * day - 60));
            }
            "dsn-2" => {
                d.firmware.insert("host".into(), "1.10.0".into());
                d.properties.insert("region".into(), P::String("us".into()));
                d.properties.insert("temp".into(), P::Number(18.0));
                d.properties.insert("beta".into(), P::Bool(false));
                d.metadata.insert("campaign".into(), "autumn".into());
                d.connection_status = ConnectionStatus::Offline;
                d.activated_at = Some(t(90 * day));
                d.last_seen_at = Some(t(95 * day));
            }
            "dsn-3" => {
                d.firmware.insert("host".into(), "build-7".into());
                d.properties.insert("region".into(), P::String("EU".into()));
                d.properties.insert("temp".into(), P::String("hot".into()));
                d.module_model = Some("esp32".into());
                d.template_id = Some("t-100".into());
                d.connection_status = ConnectionStatus::Initializing;
                d.last_seen_at = Some(t(99 * day));
            }
            "dsn-4" => {
                d.firmware.insert("host".into(), "v2.0.0-rc.1".into());
                d.firmware.insert("module".into(), "1.2.0+b7".into());
                d.module_version = Some("4.1.0".into());
                d.connection_status = ConnectionStatus::Online;
                d.activated_at = Some(t(99 * day));
                d.last_seen_at = Some(t(100 * day));
            }
            _ => {
                d.hardware_version = Some("1.2.0".into());
                d.properties.insert("note".into(), P::String("update pending".into()));
                d.connection_status = ConnectionStatus::Offline;
                d.activated_at = Some(t(20 * day));
            }
        }
    };
    for id in ["dsn-1", "dsn-2", "dsn-3", "dsn-4", "dsn-5"] {
        let mut d = store.get_device("acme", id).await.unwrap().unwrap();
        set(&mut d, id);
        put_device(store, "acme", &d, t(1)).await;
    }
    for g in ["beta", "canary"] {
        let group = Group {
            id: g.into(),
            name: g.into(),
            description: None,
            product: None,
            member_count: 0,
            created_at: t(0),
            updated_at: t(0),
        };
        store.create_group("acme", &group).await.unwrap();
    }
    store.change_members("acme", "beta", &["dsn-1".into(), "dsn-4".into()], &[], t(1)).await.unwrap();
    store.change_members("acme", "canary", &["dsn-4".into()], &[], t(1)).await.unwrap();
    assert_eq!(store.device_groups("acme", "dsn-4").await.unwrap(), ["beta", "canary"]);
    assert!(store.device_groups("acme", "dsn-2").await.unwrap().is_empty());

    let cases: &[(&str, &[&str])] = &[
        ("all", &["dsn-1", "dsn-2", "dsn-3", "dsn-4", "dsn-5"]),
        ("all exclude [\"dsn-2\"]", &["dsn-1", "dsn-3", "dsn-4", "dsn-5"]),
        ("product == \"lamp\" include [\"dsn-1\", \"dsn-2\"] exclude [\"dsn-2\", \"dsn-5\"]", &["dsn-1", "dsn-4"]),
        ("product == \"thermo-x\" and status == online", &["dsn-1"]),
        ("status in [offline, initializing]", &["dsn-2", "dsn-3", "dsn-5"]),
        ("status != online", &["dsn-2", "dsn-3", "dsn-5"]),
        ("id in [\"dsn-3\", \"dsn-9\"] or id == \"dsn-4\"", &["dsn-3", "dsn-4"]),
        // Versions: semver precedence, not string order; non-semver never ordered.
        ("fw.host < \"2.0.0\"", &["dsn-1", "dsn-2", "dsn-4"]),
        ("fw.host > \"1.9.0\"", &["dsn-2", "dsn-4"]),
        ("fw.host >= \"1.10.0\" and fw.host <= \"v1.10.0\"", &["dsn-2"]),
        ("fw.host == \"v1.9.0\"", &["dsn-1"]),
        ("fw.host == \"build-7\"", &["dsn-3"]),
        ("fw.host != \"1.9.0\"", &["dsn-2", "dsn-3", "dsn-4"]),
        ("not fw.host == \"1.9.0\"", &["dsn-2", "dsn-3", "dsn-4", "dsn-5"]),
        ("fw.host in [\"build-7\", \"1.10.0\"]", &["dsn-2", "dsn-3"]),
        ("fw.module == \"1.2.0\"", &["dsn-4"]),
        ("fw.module exists", &["dsn-4"]),
        ("hw == \"1.2.0+other\" or hw == \"rev-b\"", &["dsn-1", "dsn-5"]),
        ("hw > \"1.0.0\"", &["dsn-5"]),
        ("module.version >= \"4.0.0\" and not module.model exists", &["dsn-4"]),
        ("module.model == \"esp32\" and template == \"t-100\"", &["dsn-3"]),
        ("template != \"t-100\"", &[]),
        // Times, relative to `now`.
        ("activated > 30d ago", &["dsn-2", "dsn-4"]),
        ("activated <= 40d ago", &["dsn-1", "dsn-5"]),
        ("not activated exists", &["dsn-3"]),
        ("connected >= 1h ago", &["dsn-1", "dsn-4"]),
        ("connected < 1970-06-01", &[]),
        // Groups.
        ("group == \"beta\" and not group == \"canary\"", &["dsn-1"]),
        ("group != \"beta\"", &["dsn-2", "dsn-3", "dsn-5"]),
        ("group in [\"canary\", \"nope\"]", &["dsn-4"]),
        // Typed properties.
        ("prop.region == \"eu\"", &["dsn-1"]),
        ("prop.region != \"eu\"", &["dsn-2", "dsn-3"]),
        ("not prop.region == \"eu\"", &["dsn-2", "dsn-3", "dsn-4", "dsn-5"]),
        ("prop.region < \"a\"", &["dsn-3"]),
        ("prop.temp > 20", &["dsn-1"]),
        ("prop.temp != 18", &["dsn-1", "dsn-3"]),
        ("prop.temp < \"z\"", &["dsn-3"]),
        ("prop.temp in [18, \"hot\"]", &["dsn-2", "dsn-3"]),
        ("prop.\"room temp\" exists", &["dsn-1"]),
        ("prop.beta == true", &["dsn-1"]),
        ("prop.beta != true", &["dsn-2"]),
        ("prop.note contains \"pending\"", &["dsn-5"]),
        ("prop.note contains \"Pending\"", &[]),
        ("meta.campaign == \"spring\"", &["dsn-1"]),
        ("meta.campaign in [\"autumn\", \"winter\"]", &["dsn-2"]),
        ("meta.campaign != \"spring\"", &["dsn-2"]),
        ("not meta.campaign exists", &["dsn-3", "dsn-4", "dsn-5"]),
        ("(status == offline or group == \"canary\") and not product == \"thermo-x\"", &["dsn-4", "dsn-5"]),
    ];
    let groups_of = |id: &str| -> Vec<String> {
        match id {
            "dsn-1" => vec!["beta".into()],
            "dsn-4" => vec!["beta".into(), "canary".into()],
            _ => vec![],
        }
    };
    let devices = store.list_devices("acme", &DeviceScope::default(), &PageRequest::all()).await.unwrap().items;
    for (text, expected) in cases {
        let filter = Filter::parse(text).unwrap_or_else(|e| panic!("`{text}`: {e}"));
        let got = matching(store, "acme", &filter, now).await;
        assert_eq!(got, *expected, "`{text}`");
        let core: Vec<&str> =
            devices.iter().filter(|d| filter.matches(d, &groups_of(&d.id), now)).map(|d| d.id.as_str()).collect();
        assert_eq!(core, *expected, "the core agrees on `{text}`");
    }
    // A long list is bound as one value.
    let many: Vec<String> = (0..300).map(|i| format!("\"x{i}\"")).chain(["\"dsn-2\"".into()]).collect();
    let filter =
        Filter::parse(&format!("id in [{}] or prop.region in [\"us\", {}]", many.join(", "), many.join(", "))).unwrap();
    assert_eq!(matching(store, "acme", &filter, now).await, ["dsn-2"]);
    // Paging and search apply on top of the filter.
    let all = Filter::parse("product == \"thermo-x\"").unwrap();
    let page2 = store
        .list_devices_matching("acme", &DeviceScope::default(), &all, now, &page("id", SortOrder::Desc, 1, 1, None))
        .await
        .unwrap();
    assert_eq!((page2.total, page2.items[0].id.as_str()), (3, "dsn-2"));
    let any = DeviceScope::default();
    let searched =
        store.list_devices_matching("acme", &any, &all, now, &page("id", SortOrder::Asc, 10, 0, Some("esp"))).await;
    assert_eq!(searched.unwrap().items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["dsn-3"]);
    let scope = DeviceScope { product: Some("lamp".into()), group: Some("beta".into()) };
    let has_host = Filter::parse("fw.host exists").unwrap();
    let scoped = store.list_devices_matching("acme", &scope, &has_host, now, &PageRequest::all()).await.unwrap();
    assert_eq!(scoped.items.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["dsn-4"]);
    // Another tenant's devices are never counted.
    assert_eq!(store.count_devices_matching("other", &Filter::all(), now).await.unwrap(), 1);
    // A successful update's versions are filtered by, too.
    let mut d = store.get_device("acme", "dsn-3").await.unwrap().unwrap();
    d.firmware.insert("host".into(), "2.1.0".into());
    put_device(store, "acme", &d, t(2)).await;
    assert_eq!(matching(store, "acme", &Filter::parse("fw.host > \"2.0.0\"").unwrap(), now).await, ["dsn-3"]);
}

/// Random fleets and random filters: the store's answer is `Filter::matches`'s.
pub async fn filters_agree_with_the_core(store: &dyn Store) {
    #[cfg(feature = "proptest")]
    agree_with_the_core(store).await;
    #[cfg(not(feature = "proptest"))]
    let _ = store;
}

#[cfg(feature = "proptest")]
async fn agree_with_the_core(store: &dyn Store) {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use updraft_core::filter::arbitrary;

    const CASES: usize = 32;
    const FLEET: usize = 30;
    const FILTERS: usize = 12;
    let now = arbitrary::now();
    // The same cases every run; `UPDRAFT_FILTER_SEED=<n>` explores others.
    let mut runner = match std::env::var("UPDRAFT_FILTER_SEED").ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(seed) => {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
        }
        None => TestRunner::deterministic(),
    };
    let fleet = proptest::collection::vec((arbitrary::device(), arbitrary::groups()), FLEET);
    let filters = proptest::collection::vec(arbitrary::filter(), FILTERS);
    // Filters that match some devices but not all: the test is only as good as these.
    let mut discriminating = 0;
    for case in 0..CASES {
        let tenant_id = format!("p{case}");
        tenant(store, &tenant_id).await;
        for p in arbitrary::PRODUCTS {
            store.create_product(&tenant_id, &product(p)).await.unwrap();
        }
        for g in arbitrary::GROUPS {
            let group = Group {
                id: g.into(),
                name: g.into(),
                description: None,
                product: None,
                member_count: 0,
                created_at: t(0),
                updated_at: t(0),
            };
            store.create_group(&tenant_id, &group).await.unwrap();
        }
        let mut devices = fleet.new_tree(&mut runner).unwrap().current();
        // Unique ids: the pool's ids first (filters name them), then numbered ones.
        for (i, (d, _)) in devices.iter_mut().enumerate() {
            let pool = arbitrary::IDS[i % arbitrary::IDS.len()];
            d.id = if i < arbitrary::IDS.len() { pool.to_owned() } else { format!("{pool}-{i}") };
        }
        let new: Vec<NewDevice> = devices
            .iter()
            .map(|(d, _)| NewDevice {
                id: d.id.clone(),
                product: d.product.clone(),
                attributes: DeviceAttributes::default(),
                token_hash: format!("{tenant_id}-{}", d.id),
            })
            .collect();
        store.create_devices(&tenant_id, &new, now).await.unwrap();
        for (d, groups) in &devices {
            put_device(store, &tenant_id, d, now).await;
            for g in groups {
                store.change_members(&tenant_id, g, std::slice::from_ref(&d.id), &[], now).await.unwrap();
            }
        }
        let stored = store.list_devices(&tenant_id, &DeviceScope::default(), &PageRequest::all()).await.unwrap().items;
        assert_eq!(stored.len(), FLEET);
        let groups_of: std::collections::HashMap<&str, &Vec<String>> =
            devices.iter().map(|(d, g)| (d.id.as_str(), g)).collect();
        for filter in filters.new_tree(&mut runner).unwrap().current() {
            let expected: Vec<String> = stored
                .iter()
                .filter(|d| filter.matches(d, groups_of[d.id.as_str()], now))
                .map(|d| d.id.clone())
                .collect();
            let got = matching(store, &tenant_id, &filter, now).await;
            if !expected.is_empty() && expected.len() < FLEET {
                discriminating += 1;
            }
            if got != expected {
                let differ: Vec<&updraft_core::Device> =
                    stored.iter().filter(|d| got.contains(&d.id) != expected.contains(&d.id)).collect();
                panic!(
                    "store and core disagree on `{filter}` ({:?}):\nstore {got:?}\ncore  {expected:?}\ndevices that differ: {differ:#?}\ntheir groups: {:?}",
                    filter,
                    differ.iter().map(|d| groups_of[d.id.as_str()]).collect::<Vec<_>>()
                );
            }
        }
    }
    assert!(discriminating >= CASES * FILTERS / 2, "only {discriminating} filters told devices apart");
}

pub async fn saved_filters_crud(store: &dyn Store) {
    tenant(store, "acme").await;
    tenant(store, "other").await;
    let filter = Filter::parse("prop.region == \"eu\" and fw.host < \"2.0.0\" and activated > 30d ago").unwrap();
    let mut f = SavedFilter {
        id: "eu-old".into(),
        name: "EU, old host".into(),
        description: Some("before 2.0".into()),
        filter: filter.clone(),
        created_at: t(1),
        updated_at: t(1),
        updated_by: Some("k1".into()),
    };
    store.create_saved_filter("acme", &f).await.unwrap();
    assert!(matches!(store.create_saved_filter("acme", &f).await, Err(StoreError::Conflict { .. })));
    store.create_saved_filter("other", &f).await.unwrap();
    let got = store.get_saved_filter("acme", "eu-old").await.unwrap().unwrap();
    assert_eq!(got, f);
    assert_eq!(got.filter.to_string(), filter.to_string());

    let b = SavedFilter {
        id: "all".into(),
        name: "Everything".into(),
        description: None,
        filter: Filter::all(),
        created_at: t(2),
        updated_at: t(2),
        updated_by: None,
    };
    store.create_saved_filter("acme", &b).await.unwrap();
    let list = store.list_saved_filters("acme", &page("name", SortOrder::Asc, 10, 0, None)).await.unwrap();
    assert_eq!((list.total, list.items.iter().map(|f| f.id.as_str()).collect::<Vec<_>>()), (2, vec!["eu-old", "all"]));
    let list = store.list_saved_filters("acme", &page("name", SortOrder::Asc, 10, 0, Some("every"))).await.unwrap();
    assert_eq!(list.items, std::slice::from_ref(&b));

    f.name = "EU".into();
    f.description = None;
    f.filter = Filter::parse("prop.temp > 20.5 or group in [\"beta\"] exclude [\"dsn-1\"]").unwrap();
    f.updated_at = t(5);
    f.updated_by = Some("k2".into());
    store.update_saved_filter("acme", &f).await.unwrap();
    assert_eq!(store.get_saved_filter("acme", "eu-old").await.unwrap(), Some(f.clone()));
    assert_eq!(store.get_saved_filter("other", "eu-old").await.unwrap().unwrap().name, "EU, old host");

    store.delete_saved_filter("acme", "eu-old").await.unwrap();
    assert!(matches!(store.delete_saved_filter("acme", "eu-old").await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.update_saved_filter("acme", &f).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.get_saved_filter("acme", "eu-old").await.unwrap(), None);
}

/// The jobs engine's invariants under random interleavings of job creation,
/// scheduler releases (within each job's pace), device reports, timeouts,
/// retries, pauses and cancellations: no job ever has more executions in
/// progress than its `max_concurrency`, nor releases more than its
/// `max_per_minute` in any minute; no device ever works on two executions at
/// once; an excluded device never gets an execution.
pub async fn jobs_engine_invariants(store: &dyn Store) {
    #[cfg(feature = "proptest")]
    engine_invariants(store).await;
    #[cfg(not(feature = "proptest"))]
    let _ = store;
}

#[cfg(feature = "proptest")]
async fn engine_invariants(store: &dyn Store) {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use updraft_core::rollout::{Pace, PaceStats, Retry, release_budget, select};

    const DEVICES: usize = 8;
    const CASES: usize = 48;

    #[derive(Debug, Clone)]
    enum Op {
        Create { targets: Vec<bool>, exclude: Vec<bool>, concurrency: u32, rate: Option<u32> },
        Tick(usize),
        Report { device: usize, success: bool },
        Advance(i64),
        TimeOut(usize),
        Retry(usize),
        Cancel(usize),
    }
    let op = prop_oneof![
        1 => (
            proptest::collection::vec(any::<bool>(), DEVICES),
            proptest::collection::vec(proptest::bool::weighted(0.2), DEVICES),
            1u32..4,
            proptest::option::of(1u32..4),
        )
            .prop_map(|(targets, exclude, concurrency, rate)| Op::Create { targets, exclude, concurrency, rate }),
        6 => (0usize..4).prop_map(Op::Tick),
        5 => (0usize..DEVICES, proptest::bool::weighted(0.5)).prop_map(|(device, success)| Op::Report { device, success }),
        2 => (1i64..90).prop_map(Op::Advance),
        1 => (0usize..4).prop_map(Op::TimeOut),
        3 => (0usize..4).prop_map(Op::Retry),
        1 => (0usize..8).prop_map(Op::Cancel),
    ];
    let ops = proptest::collection::vec(op, 20..80);
    let mut runner = TestRunner::deterministic();
    let mut releases_checked = 0;
    let mut re_releases = 0;
    let to_install = [("host".to_owned(), "9.0.0".to_owned())];
    for case in 0..CASES {
        let tenant_id = format!("inv{case}");
        tenant(store, &tenant_id).await;
        store.create_product(&tenant_id, &product("thermo")).await.unwrap();
        let devices: Vec<NewDevice> = (0..DEVICES).map(|i| device(&format!("d{i}"), "thermo")).collect();
        store.create_devices(&tenant_id, &devices, t(1)).await.unwrap();
        store.create_firmware(&tenant_id, &firmware("fw", "thermo", "9.0.0")).await.unwrap();
        let stored = store.list_devices(&tenant_id, &DeviceScope::default(), &PageRequest::all()).await.unwrap().items;
        let mut now = 100i64;
        let mut jobs: Vec<(Job, Vec<i64>)> = Vec::new(); // each job with its release times
        for op in ops.new_tree(&mut runner).unwrap().current() {
            match op {
                Op::Create { targets, exclude, concurrency, rate } => {
                    let mut j = job(&format!("j{}", jobs.len()), "fw");
                    j.spec.pace = Pace { max_concurrency: concurrency, max_per_minute: rate, ..Pace::default() };
                    j.spec.retry = Retry { count: 1, interval_minutes: 0 };
                    j.spec.target.devices = (0..DEVICES).filter(|i| targets[*i]).map(|i| format!("d{i}")).collect();
                    j.spec.target.exclude = (0..DEVICES).filter(|i| exclude[*i]).map(|i| format!("d{i}")).collect();
                    let picked: Vec<(String, ExecutionState)> = stored
                        .iter()
                        .filter(|d| j.spec.target.devices.contains(&d.id))
                        .filter_map(|d| select(&j.spec, &j.id, false, d, true, &to_install).map(|s| (d.id.clone(), s)))
                        .collect();
                    store.create_job(&tenant_id, &j, &picked, t(now)).await.unwrap();
                    jobs.push((j, vec![]));
                }
                Op::Tick(i) => {
                    let Some((j, released)) = jobs.get_mut(i) else { continue };
                    let budget = |j: &Job, stats: &PaceStats| {
                        if j.state == JobState::Running { release_budget(&j.spec.pace, stats) } else { 0 }
                    };
                    let got =
                        store.release_executions(&tenant_id, &j.id, None, &budget, t(now)).await.unwrap().devices();
                    let again = store.release_executions(&tenant_id, &j.id, None, &budget, t(now)).await.unwrap();
                    assert_eq!(again.executions, [], "a tick repeated at the same instant releases nothing more");
                    for d in &got {
                        let e = store
                            .list_executions(
                                &tenant_id,
                                &ExecutionScope { job: Some(j.id.clone()), device: Some(d.clone()), state: None },
                                &PageRequest::all(),
                            )
                            .await
                            .unwrap()
                            .items;
                        if e.first().is_some_and(|e| e.attempt > 1) {
                            re_releases += 1;
                        }
                    }
                    released.extend(std::iter::repeat_n(now, got.len()));
                }
                Op::Report { device, success } => {
                    let d = format!("d{device}");
                    if let Some(e) = store.device_actions(&tenant_id, &d).await.unwrap().active {
                        let r = report(
                            ReportKind::Closed { success },
                            if success { "closed/success" } else { "closed/failure" },
                        );
                        let _ = store
                            .change_execution(
                                &tenant_id,
                                e.action_id,
                                &|x| on_device_report(x, &r, t(now)).map(Some),
                                t(now),
                            )
                            .await
                            .unwrap();
                    }
                }
                Op::Advance(secs) => now += secs,
                Op::TimeOut(i) => {
                    if let Some((j, _)) = jobs.get(i) {
                        store.time_out_executions(&tenant_id, &j.id, t(now - 60), t(now)).await.unwrap();
                    }
                }
                Op::Retry(i) => {
                    if let Some((j, _)) = jobs.get(i) {
                        store.retry_executions(&tenant_id, &j.id, &j.spec.retry, t(now)).await.unwrap();
                    }
                }
                Op::Cancel(i) => {
                    if let Some((j, _)) = jobs.get(i) {
                        cancel(store, &tenant_id, &j.id, t(now)).await;
                    }
                }
            }
            // The invariants, after every step.
            let all =
                store.list_executions(&tenant_id, &ExecutionScope::default(), &PageRequest::all()).await.unwrap().items;
            for d in &stored {
                let working = all.iter().filter(|e| e.device == d.id && e.state.is_in_progress()).count();
                assert!(working <= 1, "device {} works on {working} executions at once: {all:#?}", d.id);
            }
            for (j, released) in &jobs {
                let mine: Vec<&updraft_core::job::Execution> = all.iter().filter(|e| e.job == j.id).collect();
                let in_progress = mine.iter().filter(|e| e.state.is_in_progress()).count();
                assert!(
                    in_progress as u32 <= j.spec.pace.max_concurrency,
                    "job {} has {in_progress} in progress",
                    j.id
                );
                for e in &mine {
                    assert!(
                        !j.spec.target.exclude.contains(&e.device),
                        "excluded device {} got an execution",
                        e.device
                    );
                }
                if let Some(rate) = j.spec.pace.max_per_minute {
                    for start in released {
                        let window = released.iter().filter(|r| **r >= *start && **r < start + 60).count();
                        assert!(
                            window as u32 <= rate,
                            "job {} released {window} in a minute (max {rate}): {released:?} at {now}",
                            j.id
                        );
                        let second = released.iter().filter(|r| **r == *start).count();
                        assert!(second as u32 <= rate.div_ceil(60), "job {} released {second} at once", j.id);
                        releases_checked += 1;
                    }
                }
            }
        }
    }
    assert!(releases_checked > 20, "the sequences exercised rate limits only {releases_checked} times");
    assert!(re_releases >= 5, "the sequences released retried executions only {re_releases} times");
}

/// A device's first contact sets `activated_at` when it was not given and
/// makes it `initializing`; its next poll makes it `online`.
pub async fn first_contact_activates_and_initializes(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    let mut fresh = device("fresh", "thermo");
    fresh.attributes.activated_at = None;
    let given = device("given", "thermo");
    store.create_devices("acme", &[fresh, given], t(5)).await.unwrap();
    let seen = [Sighting::once("acme", "fresh", t(100)), Sighting::once("acme", "given", t(100))];
    store.record_presence(&seen, t(0)).await.unwrap();
    let get = |id: &'static str| async move { store.get_device("acme", id).await.unwrap().unwrap() };
    let (f, g) = (get("fresh").await, get("given").await);
    assert_eq!((f.activated_at, f.connection_status), (Some(t(100)), ConnectionStatus::Initializing));
    assert_eq!(g.activated_at, Some(t(10)), "a given activation is kept");
    store.record_presence(&[Sighting::once("acme", "fresh", t(160))], t(0)).await.unwrap();
    let f = get("fresh").await;
    assert_eq!((f.activated_at, f.connection_status), (Some(t(100)), ConnectionStatus::Online), "the cycle completed");
    store.record_presence(&[], t(200)).await.unwrap();
    assert_eq!(get("fresh").await.connection_status, ConnectionStatus::Offline);
    assert_eq!(get("given").await.connection_status, ConnectionStatus::Offline, "initializing devices go silent too");
}

/// A device marked online that never polls goes offline like any other,
/// counting from its record's last update.
pub async fn online_devices_never_seen_go_offline(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    let mut d = device("marked", "thermo");
    d.attributes.connection_status = Some(ConnectionStatus::Online);
    store.create_devices("acme", &[d], t(5)).await.unwrap();
    store.record_presence(&[], t(5)).await.unwrap();
    let status = || async { store.get_device("acme", "marked").await.unwrap().unwrap().connection_status };
    assert_eq!(status().await, ConnectionStatus::Online, "not yet silent for long enough");
    store.record_presence(&[], t(6)).await.unwrap();
    assert_eq!(status().await, ConnectionStatus::Offline);
}

/// A success whose transition installs nothing (a download-only job's
/// `downloaded`) leaves the device's versions as they were.
pub async fn a_success_that_installs_nothing_keeps_the_versions(store: &dyn Store) {
    use updraft_core::job::on_device_report_handled;
    use updraft_core::rollout::Handling;
    fleet(store, 1).await;
    store.create_job("acme", &job("dl", "fw2"), &[("d0".to_owned(), ExecutionState::Queued)], t(20)).await.unwrap();
    release(store, "dl", 1, t(21)).await;
    let e = store.device_actions("acme", "d0").await.unwrap().active.unwrap();
    let downloaded = report(ReportKind::Downloaded, "downloaded");
    let rule = |x: &updraft_core::job::Execution| {
        on_device_report_handled(x, &downloaded, Handling::DownloadOnly, t(22)).map(Some)
    };
    let done = store.change_execution("acme", e.action_id, &rule, t(22)).await.unwrap().unwrap();
    assert_eq!(done.state, ExecutionState::Succeeded);
    let d0 = store.get_device("acme", "d0").await.unwrap().unwrap();
    assert_eq!(d0.firmware.get("host").map(String::as_str), Some("1.0.0"), "nothing was installed");
    assert!(store.device_identity("acme", "d0").await.unwrap().unwrap().attributes_requested);
    assert_eq!(store.get_job("acme", "dl").await.unwrap().unwrap().state, JobState::Completed);
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

pub async fn device_tokens_are_replaced(store: &dyn Store) {
    tenant(store, "acme").await;
    tenant(store, "globex").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    store.create_devices("acme", &[device("d1", "thermo")], t(1)).await.unwrap();
    let old = store.get_device("acme", "d1").await.unwrap().unwrap();
    store.set_device_token("acme", "d1", "new-hash").await.unwrap();
    assert!(store.device_identity_by_token_hash("new-hash").await.unwrap().is_some());
    let old_hash = device("d1", "thermo").token_hash;
    assert!(store.device_identity_by_token_hash(&old_hash).await.unwrap().is_none(), "the old token is gone");
    assert_eq!(store.get_device("acme", "d1").await.unwrap().unwrap().id, old.id);
    let elsewhere = store.set_device_token("globex", "d1", "other").await;
    assert!(matches!(elsewhere, Err(StoreError::NotFound { .. })), "devices are per tenant");
}

pub async fn idempotent_imports_are_kept_with_their_devices(store: &dyn Store) {
    tenant(store, "acme").await;
    store.create_product("acme", &product("thermo")).await.unwrap();
    let request = |key: &str, expires: i64| IdempotentRequest {
        api_key: "k1".into(),
        key: key.into(),
        fingerprint: "f".into(),
        answer: "{}".into(),
        created_at: t(10),
        expires_at: t(expires),
    };
    // A batch that fails keeps no request, so a retry runs again.
    let bad = [device("d1", "thermo"), device("d1", "thermo")];
    assert!(store.create_devices_once("acme", &bad, t(10), &request("r1", 100)).await.is_err());
    assert_eq!(store.idempotent_request("acme", "k1", "r1", t(10)).await.unwrap(), None);
    store.create_devices_once("acme", &[device("d1", "thermo")], t(10), &request("r1", 100)).await.unwrap();
    assert_eq!(store.idempotent_request("acme", "k1", "r1", t(50)).await.unwrap(), Some(request("r1", 100)));
    assert_eq!(store.idempotent_request("acme", "k2", "r1", t(50)).await.unwrap(), None, "scoped per API key");
    assert_eq!(store.idempotent_request("globex", "k1", "r1", t(50)).await.unwrap(), None, "scoped per tenant");
    let again = store.create_devices_once("acme", &[device("d2", "thermo")], t(20), &request("r1", 100)).await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })), "{again:?}");
    assert_eq!(store.get_device("acme", "d2").await.unwrap(), None, "a kept key registers nothing more");
    // Expired requests are not answered, and are dropped when the next one is kept.
    assert_eq!(store.idempotent_request("acme", "k1", "r1", t(100)).await.unwrap(), None);
    store.create_devices_once("acme", &[device("d3", "thermo")], t(200), &request("r1", 300)).await.unwrap();
    assert_eq!(store.idempotent_request("acme", "k1", "r1", t(200)).await.unwrap(), Some(request("r1", 300)));
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

/// Action ids come from the tenant's counter: 1, 2, … for its executions
/// and for each new attempt of one; an earlier attempt's id still names the
/// execution, with the attempt it was given to; another device's id names nothing.
pub async fn action_ids_count_per_tenant_and_per_attempt(store: &dyn Store) {
    use updraft_core::rollout::Retry;
    fleet(store, 2).await;
    let both = [("d0".to_owned(), ExecutionState::Queued), ("d1".to_owned(), ExecutionState::Queued)];
    store.create_job("acme", &job("j1", "fw2"), &both, t(20)).await.unwrap();
    store.create_job("acme", &job("j2", "fw2"), &both[..1], t(20)).await.unwrap();
    let action =
        |device: &'static str, n: i64| async move { store.execution_by_action("acme", device, n).await.unwrap() };
    let (first, n) = match action("d0", 1).await {
        Some(found) => (found, 1),
        None => (action("d0", 2).await.expect("d0's first action is 1 or 2"), 2),
    };
    let (first, attempt) = first;
    assert_eq!((first.job.as_str(), first.action, first.public_id(), attempt), ("j1", n, n, 1));
    assert_eq!(action("d1", 3 - n).await.map(|(e, _)| e.job), Some("j1".to_owned()), "d1 has the other number");
    assert!(action("d1", n).await.is_none(), "another device's action names nothing");
    assert_eq!(action("d0", 3).await.map(|(e, _)| (e.job, e.action)), Some(("j2".to_owned(), 3)));
    assert!(action("d0", 4).await.is_none());
    release(store, "j1", 2, t(21)).await;
    let failed = report(ReportKind::Closed { success: false }, "closed/failure");
    let rule = |e: &updraft_core::job::Execution| on_device_report(e, &failed, t(22)).map(Some);
    store.change_execution("acme", first.action_id, &rule, t(22)).await.unwrap().unwrap();
    let retry = Retry { count: 1, interval_minutes: 0 };
    assert_eq!(store.retry_executions("acme", "j1", &retry, t(23)).await.unwrap(), ["d0"]);
    let (retried, attempt) = action("d0", 4).await.expect("the retry took the next number");
    assert_eq!((retried.action_id, retried.attempt, retried.action, attempt), (first.action_id, 2, 4, 2));
    let (old, attempt) = action("d0", n).await.expect("the first attempt's id still names it");
    assert_eq!((old.action_id, old.attempt, attempt), (first.action_id, 2, 1));
    tenant(store, "globex").await;
    assert!(store.execution_by_action("globex", "d0", 1).await.unwrap().is_none(), "tenants never see each other");
}
