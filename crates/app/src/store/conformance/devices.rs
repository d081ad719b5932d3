//! [`DeviceStore`](crate::store::DeviceStore): devices, groups, device filters, gateway tokens.

use jiff::Timestamp;
use updraft_core::filter::Filter;
use updraft_core::{ConnectionStatus, DeviceAttributes, Group, NewDevice, PageRequest, PropertyValue, SortOrder};

use super::{device, fleet, invalid_fields, missing_fields, page, product, put_device, t, tenant};
use crate::store::{DeviceScope, GatewayToken, IdempotentRequest, SavedFilter, Sighting, Store, StoreError, sortable};

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
    let thermo = DeviceScope { product: Some("thermo".into()), group: None };
    let scan = store.scan_devices("acme", &thermo, None, Some("dev-00005"), 3).await.unwrap();
    assert_eq!(scan.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["dev-00006", "dev-00007", "dev-00008"]);
    assert!(store.scan_devices("globex", &thermo, None, None, 3).await.unwrap().is_empty(), "per tenant");
    let after = store.devices_after("acme", Some("dev-00005"), 2).await.unwrap();
    assert_eq!(after.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["dev-00006", "dev-00007"]);
    assert_eq!(after[0], store.get_device("acme", "dev-00006").await.unwrap().unwrap(), "whole records");
    assert_eq!(store.devices_after("acme", None, 1).await.unwrap()[0].id, "d0", "from the first");
    assert!(store.devices_after("globex", None, 3).await.unwrap().is_empty(), "per tenant");
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

    // The fleet overview's figures: by product, installed firmware and connection status.
    let summary = store.device_summary("acme").await.unwrap();
    assert_eq!(summary.len(), 1, "{summary:?}");
    let row = &summary[0];
    assert_eq!((row.product.as_str(), row.connection_status.as_str(), row.count), ("thermo", "offline", 2501));
    let fw: std::collections::BTreeMap<String, String> = serde_json::from_str(&row.firmware).unwrap();
    assert_eq!(fw["host"], "1.0.0", "the firmware as stored, in JSON");
    assert!(store.device_summary("globex").await.unwrap().is_empty(), "per tenant");
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
    store.delete_device("acme", "b", t(50)).await.unwrap();
    assert!(matches!(store.delete_device("acme", "b", t(50)).await, Err(StoreError::NotFound { .. })));
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
    store.delete_device("acme", "t00", t(50)).await.unwrap();
    assert_eq!(store.get_group("acme", "any").await.unwrap().unwrap().member_count, 1, "deleted devices leave groups");
    store.delete_group("acme", "lab").await.unwrap();
    assert_eq!(store.get_group("acme", "lab").await.unwrap(), None);
    assert!(matches!(store.delete_group("acme", "lab").await, Err(StoreError::NotFound { .. })));
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
    store.record_sightings(&seen).await.unwrap();
    assert_eq!(store.mark_silent_offline(t(50)).await.unwrap(), 1);
    let d0 = store.get_device("acme", "d0").await.unwrap().unwrap();
    let d1 = store.get_device("acme", "d1").await.unwrap().unwrap();
    assert_eq!((d0.last_seen_at, d0.connection_status), (Some(t(100)), ConnectionStatus::Online));
    assert_eq!(
        (d1.last_seen_at, d1.connection_status),
        (Some(t(10)), ConnectionStatus::Offline),
        "seen before the cutoff: offline"
    );
    store.record_sightings(&[Sighting::once("acme", "d0", t(90))]).await.unwrap();
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

/// Ids of the devices `filter` matches, as the store lists them (sorted by id) and counts them.
async fn matching(store: &dyn Store, tenant: &str, filter: &Filter, now: Timestamp) -> Vec<String> {
    let page =
        store.list_devices_matching(tenant, &DeviceScope::default(), filter, now, &PageRequest::all()).await.unwrap();
    let count = store.count_devices_matching(tenant, filter, now).await.unwrap();
    assert_eq!(page.total, count, "list total and count agree for `{filter}`");
    assert_eq!(page.items.len() as u64, count, "`{filter}`");
    // The same, scanned two at a time in id order.
    let (mut scanned, mut after) = (Vec::new(), None::<String>);
    loop {
        let got = store
            .scan_devices(tenant, &DeviceScope::default(), Some((filter, now)), after.as_deref(), 2)
            .await
            .unwrap();
        after = got.last().map(|d| d.id.clone());
        let n = got.len();
        scanned.extend(got.into_iter().map(|d| d.id));
        if n < 2 {
            break;
        }
    }
    let mut listed: Vec<String> = page.items.into_iter().map(|d| d.id).collect();
    listed.sort();
    assert_eq!(scanned, listed, "a scan finds what the list does, in id order: `{filter}`");
    listed
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
    agree_with_the_core(store).await;
}

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

pub async fn group_tokens_act_on_one_group(store: &dyn Store) {
    use crate::store::GroupToken;
    use updraft_core::{ApiKey, Role};
    tenant(store, "acme").await;
    tenant(store, "globex").await;
    let key = ApiKey {
        id: "k-op".into(),
        tenant: "acme".into(),
        role: Role::Operator,
        name: None,
        server_admin: false,
        created_at: t(1),
        expires_at: None,
        token_prefix: None,
    };
    store.create_key(&key, "h-op").await.unwrap();
    let group = |id: &str| Group {
        id: id.into(),
        name: id.into(),
        description: None,
        product: None,
        member_count: 0,
        created_at: t(1),
        updated_at: t(1),
    };
    store.create_group("acme", &group("lab")).await.unwrap();
    store.create_group("globex", &group("far")).await.unwrap();
    let token = GroupToken {
        id: "gt1".into(),
        tenant: "acme".into(),
        group: "lab".into(),
        key: "k-op".into(),
        created_at: t(2),
    };
    store.create_group_token(&token, "hash-1").await.unwrap();
    assert_eq!(store.group_token("hash-1").await.unwrap(), Some((token.clone(), key.clone())));
    assert_eq!(store.group_token("nope").await.unwrap(), None);
    let again = store.create_group_token(&token, "hash-2").await;
    assert!(matches!(again, Err(StoreError::Conflict { .. })), "{again:?}");
    for (group, key) in [("far", "k-op"), ("lab", "k-none")] {
        let t2 = GroupToken { id: format!("gt-{group}-{key}"), group: group.into(), key: key.into(), ..token.clone() };
        let r = store.create_group_token(&t2, "hash-x").await;
        assert!(matches!(r, Err(StoreError::Missing(_))), "a group and a key of its own tenant only: {r:?}");
    }
    assert_eq!(store.group_token("hash-x").await.unwrap(), None, "nothing written");
    assert_eq!(store.list_group_tokens("acme").await.unwrap(), vec![token.clone()]);
    assert!(store.list_group_tokens("globex").await.unwrap().is_empty());
    let r = store.delete_group_token("globex", "gt1").await;
    assert!(matches!(r, Err(StoreError::NotFound { .. })), "{r:?}");
    store.delete_group_token("acme", "gt1").await.unwrap();
    assert_eq!(store.group_token("hash-1").await.unwrap(), None);

    let token = GroupToken { id: "gt2".into(), ..token };
    store.create_group_token(&token, "hash-2").await.unwrap();
    store.delete_group("acme", "lab").await.unwrap();
    assert_eq!(store.group_token("hash-2").await.unwrap(), None, "gone with its group");
}
