//! [`EngineStore`](crate::store::EngineStore): live jobs and their leases, presence.

use updraft_core::ConnectionStatus;
use updraft_core::job::{Job, JobState};

use super::{device, firmware, fleet, job, product, t, tenant};
use crate::store::{Sighting, Store};

/// The jobs the scheduler looks after are every tenant's scheduled, running
/// and paused ones; replicas share them through leases: a job's lease is one
/// replica's at a time, until it expires or the replica lets go of its leases.
pub async fn leases_share_the_live_jobs_between_replicas(store: &dyn Store) {
    fleet(store, 1).await;
    let states = [
        ("j1", JobState::Running),
        ("j2", JobState::Paused),
        ("j3", JobState::Scheduled),
        ("j4", JobState::Created),
        ("j5", JobState::Completed),
    ];
    for (id, state) in states {
        store.create_job("acme", &Job { state, ..job(id, "fw2") }, &[], t(20)).await.unwrap();
    }
    tenant(store, "globex").await;
    store.create_product("globex", &product("thermo")).await.unwrap();
    store.create_firmware("globex", &firmware("fw2", "thermo", "2.0.0")).await.unwrap();
    store.create_job("globex", &job("g1", "fw2"), &[], t(20)).await.unwrap();
    let live: Vec<(String, String)> =
        store.live_jobs().await.unwrap().into_iter().map(|(tenant, j)| (tenant, j.id)).collect();
    let expected = [("globex", "g1"), ("acme", "j1"), ("acme", "j2"), ("acme", "j3")];
    assert_eq!(live, expected.map(|(tenant, id)| (tenant.to_owned(), id.to_owned())), "oldest first, then by id");

    // One replica at a time, until the lease expires.
    assert!(store.lease_job("acme", "j1", "replica-a", t(433), t(403)).await.unwrap());
    assert!(!store.lease_job("acme", "j1", "replica-b", t(433), t(404)).await.unwrap(), "held by a");
    assert!(store.lease_job("globex", "g1", "replica-b", t(433), t(404)).await.unwrap(), "a lease is per job");
    assert!(store.lease_job("acme", "j1", "replica-a", t(440), t(405)).await.unwrap(), "a renews");
    assert!(store.lease_job("acme", "j1", "replica-b", t(470), t(441)).await.unwrap(), "expired: b takes it");
    assert!(!store.lease_job("acme", "j1", "replica-a", t(470), t(442)).await.unwrap());
    assert_eq!(store.release_leases("replica-b").await.unwrap(), 2, "b shuts down");
    assert!(store.lease_job("acme", "j1", "replica-a", t(470), t(443)).await.unwrap(), "a takes it at once");
    assert!(store.lease_job("globex", "g1", "replica-a", t(470), t(443)).await.unwrap());
    assert_eq!(store.release_leases("replica-b").await.unwrap(), 0);
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
    store.record_sightings(&seen).await.unwrap();
    let get = |id: &'static str| async move { store.get_device("acme", id).await.unwrap().unwrap() };
    let (f, g) = (get("fresh").await, get("given").await);
    assert_eq!((f.activated_at, f.connection_status), (Some(t(100)), ConnectionStatus::Initializing));
    assert_eq!(g.activated_at, Some(t(10)), "a given activation is kept");
    store.record_sightings(&[Sighting::once("acme", "fresh", t(160))]).await.unwrap();
    let f = get("fresh").await;
    assert_eq!((f.activated_at, f.connection_status), (Some(t(100)), ConnectionStatus::Online), "the cycle completed");
    assert_eq!(store.mark_silent_offline(t(200)).await.unwrap(), 2);
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
    assert_eq!(store.mark_silent_offline(t(5)).await.unwrap(), 0);
    let status = || async { store.get_device("acme", "marked").await.unwrap().unwrap().connection_status };
    assert_eq!(status().await, ConnectionStatus::Online, "not yet silent for long enough");
    assert_eq!(store.mark_silent_offline(t(6)).await.unwrap(), 1);
    assert_eq!(status().await, ConnectionStatus::Offline);
}
