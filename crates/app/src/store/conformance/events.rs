//! The event stream's conformance cases: events are written with their change
//! in one transaction, read back in order, and followers keep their place.

use jiff::{SignedDuration, Timestamp};
use updraft_core::Tenant;

use super::{device, product, t};
use crate::store::{Change, Event, EventCursor, Store, StoreError};

/// Every event after `after`, waiting (a few seconds at most) for those that
/// cannot be read yet: on PostgreSQL, transactions still running elsewhere
/// hold the stream back.
async fn read_after(store: &dyn Store, after: EventCursor) -> Vec<Event> {
    for _ in 0..250 {
        let events = store.events_after(after, 1000).await.unwrap();
        let last = events.last().map_or(after, |e| e.cursor);
        if !store.events_waiting(last).await.unwrap() {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("events stayed unreadable");
}

/// The tail, once nothing committed is waiting behind it.
async fn tail(store: &dyn Store) -> EventCursor {
    for _ in 0..250 {
        let tail = store.event_tail().await.unwrap();
        if !store.events_waiting(tail).await.unwrap() {
            return tail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("events stayed unreadable");
}

fn changes(events: &[Event]) -> Vec<(String, Change)> {
    events.iter().map(|e| (e.tenant.clone(), e.change.clone())).collect()
}

fn devices_created(ids: &[&str]) -> Change {
    Change::DevicesCreated { devices: ids.iter().map(|s| s.to_string()).collect() }
}

pub async fn events_are_written_with_their_change_and_rolled_back_with_it(store: &dyn Store) {
    let start = tail(store).await;
    let mut local = store.feed().subscribe();
    let hooked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hooked.clone();
    store.feed().on_commit(move |events| seen.lock().unwrap().extend(events.iter().map(|e| e.change.clone())));

    store.ensure_tenant(&Tenant { id: "acme".into(), name: "Acme".into(), created_at: t(0) }).await.unwrap();
    assert!(!store.ensure_tenant(&Tenant { id: "acme".into(), name: "Acme".into(), created_at: t(0) }).await.unwrap());
    store.create_product("acme", &product("thermo")).await.unwrap();
    let register = async {
        crate::store::set_actor("key:k1".into());
        store.create_devices("acme", &[device("d0", "thermo"), device("d1", "thermo")], t(5)).await.unwrap()
    };
    crate::store::acting(None, register).await;
    let written = read_after(store, start).await;
    let actors: Vec<Option<&str>> = written.iter().map(|e| e.actor.as_deref()).collect();
    assert_eq!(actors, [None, None, Some("key:k1")], "an event names who acted, as the writing task said");
    let acme = |c: Change| ("acme".to_string(), c);
    assert_eq!(
        changes(&written),
        [
            acme(Change::TenantCreated { tenant: "acme".into() }),
            acme(Change::ProductCreated { product: "thermo".into() }),
            acme(devices_created(&["d0", "d1"])),
        ],
        "one event per change, none for a change that changed nothing"
    );
    assert!(written.windows(2).all(|w| w[0].cursor < w[1].cursor), "in stream order");
    assert_eq!(written[2].change.kind(), "devices.created");
    assert_eq!(tail(store).await, written[2].cursor);

    // Refused or failed writes roll their events back with them.
    let tail = self::tail(store).await;
    let taken = store.create_devices("acme", &[device("d2", "thermo"), device("d0", "thermo")], t(6)).await;
    assert!(matches!(taken, Err(StoreError::Invalid(_))), "{taken:?}");
    let missing = store.delete_device("acme", "ghost", t(50)).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })), "{missing:?}");
    store.create_product("acme", &product("thermo")).await.unwrap_err();
    assert_eq!(read_after(store, tail).await, [], "no event without its change");
    assert_eq!(store.get_device("acme", "d2").await.unwrap(), None, "and no change without its event");

    // This process's followers got each committed batch at once, in order.
    let mut batches = Vec::new();
    while let Ok(batch) = local.try_recv() {
        batches.extend(batch.iter().cloned());
    }
    assert_eq!(batches, written, "the feed hands over exactly what was committed");
    assert_eq!(hooked.lock().unwrap().len(), 3);
    assert_eq!(store.feed().published(), written[2].cursor.seq);

    // Paging through the stream.
    store.delete_device("acme", "d1", t(50)).await.unwrap();
    read_after(store, start).await;
    let first = store.events_after(start, 2).await.unwrap();
    let rest = read_after(store, first[1].cursor).await;
    assert_eq!(first.len() + rest.len(), 4);
    assert_eq!(rest.last().unwrap().change, Change::DeviceDeleted { device: "d1".into() });
}

pub async fn followers_keep_their_place_under_a_lease(store: &dyn Store) {
    store.ensure_tenant(&Tenant { id: "acme".into(), name: "Acme".into(), created_at: t(0) }).await.unwrap();
    let tail = self::tail(store).await;
    assert_ne!(tail, EventCursor::default());
    let claimed = store.claim_follower("checks", "a", t(100), t(0)).await.unwrap();
    assert_eq!(claimed, Some(tail), "a new follower starts at the tail, not at the beginning");
    assert_eq!(store.claim_follower("checks", "b", t(150), t(50)).await.unwrap(), None, "a's lease runs");
    assert_eq!(store.claim_follower("checks", "a", t(200), t(50)).await.unwrap(), Some(tail), "renewed");

    store.create_product("acme", &product("thermo")).await.unwrap();
    let next = read_after(store, tail).await;
    assert_eq!(next.len(), 1);
    assert!(store.advance_follower("checks", "a", next[0].cursor).await.unwrap());
    assert!(!store.advance_follower("checks", "b", tail).await.unwrap(), "only the holder moves it");
    assert_eq!(store.claim_follower("checks", "b", t(300), t(201)).await.unwrap(), Some(next[0].cursor), "taken over");
    assert!(!store.advance_follower("checks", "a", tail).await.unwrap(), "a lost it");
    store.release_followers("b").await.unwrap();
    assert_eq!(store.claim_follower("checks", "a", t(400), t(202)).await.unwrap(), Some(next[0].cursor));
    assert_eq!(store.claim_follower("other", "a", t(400), t(202)).await.unwrap(), Some(next[0].cursor));

    // Retention: events older than the cut are pruned; cursors stay valid.
    let later = Timestamp::now() + SignedDuration::from_hours(1);
    assert_eq!(store.prune_events(later).await.unwrap(), 2);
    assert_eq!(read_after(store, EventCursor::default()).await, []);
    store.create_product("acme", &product("lamp")).await.unwrap();
    let after = read_after(store, next[0].cursor).await;
    assert_eq!(after.len(), 1, "the stream goes on after a prune");
    assert!(after[0].cursor > next[0].cursor);
}

/// The audit log keeps events once (by their place in the stream), reads a
/// tenant's newest first narrowed by actor, subject, kind (or a kind's prefix)
/// and time, and forgets what is older than its retention.
pub async fn the_audit_log_keeps_events_once(store: &dyn Store) {
    use crate::store::AuditQuery;
    let event = |seq: i64, tenant: &str, at: i64, actor: &str, change: Change| Event {
        cursor: EventCursor { tx: 0, seq },
        tenant: tenant.into(),
        at: t(at),
        actor: Some(actor.into()),
        change,
    };
    let batch = vec![
        event(1, "acme", 10, "key:k1", Change::KeyCreated { key: "k2".into() }),
        event(2, "acme", 20, "user:u1", Change::JobCreated { job: "j1".into() }),
        event(3, "acme", 30, "system:scheduler", Change::job_changed("j1")),
        event(4, "globex", 40, "key:g1", Change::JobCreated { job: "j9".into() }),
        event(
            5,
            "acme",
            50,
            "key:k1",
            Change::KeyChanged { key: "k2".into(), deleted: true, before: None, after: None },
        ),
        event(6, "acme", 60, "key:k1", Change::GatewayTokenCreated { token: "gt1".into() }),
    ];
    store.record_audit(&batch).await.unwrap();
    store.record_audit(&batch[..2]).await.unwrap();
    store.record_audit(&[]).await.unwrap();
    let all = |q: AuditQuery| async move {
        let q = AuditQuery { limit: 100, ..q };
        store.list_audit("acme", &q).await.unwrap().into_iter().map(|e| e.cursor.seq).collect::<Vec<_>>()
    };
    assert_eq!(all(AuditQuery::default()).await, [6, 5, 3, 2, 1], "once each, newest first, one tenant's");
    let read = store.list_audit("acme", &AuditQuery { limit: 1, offset: 2, ..Default::default() }).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].change, Change::job_changed("j1"), "the change as recorded");
    assert_eq!((read[0].at, read[0].actor.as_deref()), (t(30), Some("system:scheduler")));
    assert_eq!(all(AuditQuery { actor: Some("key:k1".into()), ..Default::default() }).await, [6, 5, 1]);
    assert_eq!(all(AuditQuery { subject: Some("j1".into()), ..Default::default() }).await, [3, 2]);
    assert_eq!(all(AuditQuery { kind: Some("key.".into()), ..Default::default() }).await, [5, 1], "a prefix");
    assert_eq!(all(AuditQuery { kind: Some("gateway_token.".into()), ..Default::default() }).await, [6]);
    assert_eq!(all(AuditQuery { kind: Some("gateway_token.created".into()), ..Default::default() }).await, [6]);
    assert_eq!(all(AuditQuery { kind: Some("key".into()), ..Default::default() }).await, Vec::<i64>::new());
    assert_eq!(
        all(AuditQuery { kind: Some("%.".into()), ..Default::default() }).await,
        Vec::<i64>::new(),
        "no wildcard"
    );
    let window = AuditQuery { since: Some(t(20)), until: Some(t(50)), ..Default::default() };
    assert_eq!(all(window).await, [3, 2], "since is inclusive, until exclusive");
    assert_eq!(store.prune_audit(t(25)).await.unwrap(), 2);
    assert_eq!(all(AuditQuery::default()).await, [6, 5, 3]);
    assert_eq!(store.list_audit("globex", &AuditQuery { limit: 10, ..Default::default() }).await.unwrap().len(), 1);
}
