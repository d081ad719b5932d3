//! The conformance suite: the behaviour every [`Store`] implementation must
//! have, one module per store trait. Each backend crate runs it, unchanged,
//! through [`store_conformance_suite!`](crate::store_conformance_suite).
//!
//! Every case gets a fresh, empty store and creates its own tenants. A case
//! sits with the trait it is about; cases that need a fleet and its jobs use
//! the other traits to set them up (and [`tenants::tenants_never_see_each_other`]
//! checks them all).

use std::collections::BTreeMap;

use jiff::Timestamp;
use updraft_core::job::{DeviceReport, ExecutionState, Job, JobKind, JobState, ReportKind, Target};
use updraft_core::{
    Device, DeviceAttributes, Firmware, FirmwareFile, NewDevice, PageRequest, Product, PropertyValue, SortOrder,
    Tenant, VersionScheme,
};

use crate::store::{Sighting, Store, StoreError};

pub mod catalog;
pub mod devices;
pub mod engine;
pub mod events;
pub mod jobs;
pub mod signing;
pub mod tenants;
pub mod trust;

/// Generates one `#[tokio::test]` per conformance case, in one module per
/// store trait (`tenants::tenants_and_keys`, …). `$make` is an async
/// expression that yields a fresh store (`impl Store`).
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@cases $make;
            tenants: tenants_and_keys, key_changes_keep_a_lasting_admin, tenants_never_see_each_other, users_and_sessions,
                access_keys_act_as_their_api_key;
            catalog: products_crud_and_conflicts, product_listing_pages_sorts_and_searches,
                firmware_crud_and_version_conflict, product_in_use_cannot_be_deleted;
            devices: devices_bulk_create_is_all_or_nothing, device_update_list_and_delete, groups_and_membership,
                gateway_tokens_and_presence, device_tokens_are_replaced, idempotent_imports_are_kept_with_their_devices,
                filters_on_a_known_fleet, filters_agree_with_the_core, saved_filters_crud, group_tokens_act_on_one_group;
            jobs: jobs_and_executions, execution_changes_are_atomic_and_complete_jobs, canceling_a_job, jobs_engine,
                concurrent_releases_keep_the_pace_and_one_execution_per_device, verify_jobs_mark_firmware,
                a_success_that_installs_nothing_keeps_the_versions, action_ids_count_per_tenant_and_per_attempt,
                jobs_engine_invariants, phases_force_cancel_and_retry_failed, step_timers_time_executions_out,
                deleting_a_device_deletes_its_executions;
            engine: leases_share_the_live_jobs_between_replicas, first_contact_activates_and_initializes,
                online_devices_never_seen_go_offline;
            events: events_are_written_with_their_change_and_rolled_back_with_it,
                followers_keep_their_place_under_a_lease, the_audit_log_keeps_events_once;
            trust: trust_keys_and_metadata_versions, publishing_is_compare_and_set;
            signing: trust_anchors_per_tenant, signing_profiles_keep_their_sealed_keys);
    };
    (@cases $make:expr; $($module:ident: $($case:ident),+);+) => {
        $(
            mod $module {
                use super::*;
                $(
                    #[tokio::test]
                    async fn $case() {
                        let store = $make.await;
                        $crate::store::conformance::$module::$case(&store).await;
                        $crate::store::Store::close(&store).await;
                    }
                )+
            }
        )+
    };
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

async fn tenant(store: &dyn Store, id: &str) {
    store.ensure_tenant(&Tenant { id: id.into(), name: id.into(), created_at: t(0) }).await.unwrap();
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
        security_version: 2,
        files: vec![FirmwareFile {
            name: "app.bin".into(),
            component: "host".into(),
            version: version.into(),
            size: 1 << 33,
            sha256: "a".repeat(64),
            sha512: "d".repeat(128),
            sha1: "b".repeat(40),
            md5: "c".repeat(32),
            blob: format!("acme/{id}/app.bin"),
            code_signing: None,
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
/// last contact through `record_sightings`, the rest of the record through
/// `modify_device` (which stamps `updated_at` with `now`). The device as written.
async fn put_device(store: &dyn Store, tenant: &str, d: &Device, now: Timestamp) -> Device {
    if let Some(seen) = d.last_seen_at {
        let sighting =
            Sighting { tenant: tenant.into(), device: d.id.clone(), first: seen, last: seen, polls: 2, left: false };
        store.record_sightings(&[sighting]).await.unwrap();
    }
    let wanted = d.clone();
    let change = move |stored: &mut Device| {
        *stored = wanted.clone();
        Ok(())
    };
    store.modify_device(tenant, &d.id, &change, false, now).await.unwrap().unwrap()
}

/// Executions in phase 0 for `(device, state)` pairs.
fn tg<S: AsRef<str>>(v: &[(S, ExecutionState)]) -> Vec<Target> {
    v.iter().map(|(d, s)| Target { device: d.as_ref().to_owned(), state: *s, phase: 0 }).collect()
}

/// The references to rows that do not exist, of a `Missing` error.
fn missing_fields(e: StoreError) -> Vec<String> {
    match e {
        StoreError::Missing(references) => references.into_iter().map(|e| e.field).collect(),
        other => panic!("expected Missing, got {other:?}"),
    }
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
        phase: Default::default(),
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

/// Releases up to `max` of job `job`'s queued executions (of tenant `acme`): the devices released.
async fn release(store: &dyn Store, job: &str, max: u64, now: Timestamp) -> Vec<String> {
    store.release_executions("acme", job, None, &|_, _| max, &|| now).await.unwrap().devices()
}
