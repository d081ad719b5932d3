//! Followers of the event stream: what happens because something changed,
//! instead of every writer remembering to do it.
//!
//! - Listeners ([`crate::App::on_events`]; the device API's poll cache is
//!   one) see every event: this replica's through the store's feed, before
//!   the writing call returns; other replicas' as soon as they announce them
//!   ([`follow_remote`]).
//! - Durable followers ([`Follower`]) act on events and keep their place in
//!   the store, under a lease, so that exactly one replica moves each one
//!   forward and none misses an event across restarts. Each handles this
//!   replica's events at once (so a change is acted on before its request
//!   is answered: [`Progress::settle`]), then reads the stream from its
//!   cursor for what other replicas, or an earlier run, committed, skipping
//!   what it already handled. Handling is idempotent: an event handled twice
//!   (say, by two replicas around a lease's hand-over) does nothing more.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Event, EventCursor, StoreResult};
use jiff::SignedDuration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::App;

/// How long a replica holds a durable follower without renewing it.
const LEASE: SignedDuration = SignedDuration::from_secs(30);
/// Events read at once.
const BATCH: u32 = 500;
/// How long a replica waits to move a follower's cursor past its own events.
const CURSOR_DELAY: Duration = Duration::from_secs(1);
/// How long an answer waits for this replica's followers to act on its change.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// The durable followers, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follower {
    /// Adds changed devices to the live continuous jobs they start to match.
    ContinuousJobs,
    /// Keeps management changes and security events in the audit log.
    Audit,
    /// Republishes TUF repositories when their product's firmware changes.
    Trust,
    /// Tells devices of changed executions through the front doors that push (MQTT).
    Push,
}

impl Follower {
    pub const ALL: &[Follower] = &[Follower::ContinuousJobs, Follower::Audit, Follower::Trust, Follower::Push];

    pub fn name(self) -> &'static str {
        match self {
            Follower::ContinuousJobs => "continuous_jobs",
            Follower::Audit => "audit",
            Follower::Trust => "trust",
            Follower::Push => "push",
        }
    }

    /// Acts on `events`.
    pub async fn handle(self, state: &App, events: &[Event]) -> StoreResult<()> {
        let work = async {
            match self {
                Follower::ContinuousJobs => crate::targeting::devices_changed(state, events).await,
                Follower::Audit => crate::audit::record(state, events).await,
                Follower::Trust => crate::trust::firmware_changed(state, events).await,
                Follower::Push => crate::push::executions_changed(state, events).await,
            }
        };
        crate::store::acting(Some(format!("system:{}", self.name())), work).await
    }
}

/// How far this replica's followers have acted on its own events.
#[derive(Default)]
pub struct Progress {
    handled: std::sync::Mutex<Vec<watch::Receiver<i64>>>,
}

impl Progress {
    /// Waits (a few seconds at most) until every running follower has acted on
    /// the events this replica has committed so far.
    pub async fn settle(&self, state: &App) {
        let target = state.store.feed().published();
        let receivers: Vec<watch::Receiver<i64>> = self.handled.lock().expect("not poisoned").clone();
        let all = async {
            for mut r in receivers {
                let _ = r.wait_for(|seq| *seq >= target).await;
            }
        };
        if tokio::time::timeout(SETTLE_WAIT, all).await.is_err() {
            tracing::warn!(seq = target, "followers did not catch up in time");
        }
    }

    fn register(&self, handled: watch::Receiver<i64>) {
        self.handled.lock().expect("not poisoned").push(handled);
    }
}

/// Starts every durable follower, and on a store shared with other replicas
/// the poll cache's reader; send `true` on `stop` to end them.
pub fn spawn(state: &App, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks: Vec<JoinHandle<()>> = Follower::ALL
        .iter()
        .map(|&f| {
            let (mark, handled) = watch::channel(state.store.feed().published());
            state.followers.register(handled);
            let local = state.store.feed().subscribe();
            tokio::spawn(run(state.clone(), f, local, mark, stop.clone()))
        })
        .collect();
    if state.store.backend() != "sqlite" {
        tasks.push(tokio::spawn(follow_remote(state.clone(), stop.clone())));
    }
    tasks
}

/// One durable follower's loop; see the module documentation.
async fn run(
    state: App,
    f: Follower,
    mut local: broadcast::Receiver<Arc<[Event]>>,
    mark: watch::Sender<i64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut remote = state.store.feed().remote();
    let every = Duration::from_secs(state.config.follower_poll_secs.max(1));
    let mut handled_here = BTreeSet::new();
    // At start: catch up on what was committed while no replica followed.
    let mut due = Some(tokio::time::Instant::now());
    let mut next_look = tokio::time::Instant::now() + every;
    loop {
        let wake = due.map_or(next_look, |d| d.min(next_look));
        tokio::select! {
            batch = local.recv() => match batch {
                Ok(batch) => {
                    match f.handle(&state, &batch).await {
                        Ok(()) => handled_here.extend(batch.iter().map(|e| e.cursor.seq)),
                        Err(e) => tracing::warn!(follower = f.name(), error = %e, "follower failed; it reads the stream again"),
                    }
                    let seq = batch.iter().map(|e| e.cursor.seq).max().unwrap_or(0);
                    mark.send_modify(|m| *m = (*m).max(seq));
                    due.get_or_insert(tokio::time::Instant::now() + CURSOR_DELAY);
                    continue;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(follower = f.name(), missed, "follower fell behind; it reads the stream");
                    let seq = state.store.feed().published();
                    mark.send_modify(|m| *m = (*m).max(seq));
                    due = Some(tokio::time::Instant::now());
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            changed = remote.changed() => {
                if changed.is_err() {
                    break;
                }
                due = Some(tokio::time::Instant::now());
                continue;
            }
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.changed() => break,
        }
        if tokio::time::Instant::now() >= next_look {
            next_look = tokio::time::Instant::now() + every;
        }
        due = None;
        match catch_up(&state, f, &mut handled_here).await {
            Ok(true) => due = Some(tokio::time::Instant::now() + Duration::from_millis(100)),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(follower = f.name(), error = %e, "follower could not read the event stream");
                due = Some(tokio::time::Instant::now() + CURSOR_DELAY);
            }
        }
    }
    // Hand over at once (after a crash the lease runs out).
    if let Err(e) = state.store.release_followers(&state.replica).await {
        tracing::warn!(error = %e, "releasing follower leases failed");
    }
}

/// Reads the stream from `f`'s cursor, if this replica holds it, handles what
/// was not handled here already, and moves the cursor. Returns whether events
/// are waiting that cannot be read yet (read again shortly).
async fn catch_up(state: &App, f: Follower, handled_here: &mut BTreeSet<i64>) -> StoreResult<bool> {
    let store = state.store.as_ref();
    let now = state.now();
    let Some(mut cursor) = store.claim_follower(f.name(), &state.replica, now + LEASE, now).await? else {
        // Another replica follows the stream, this replica's events included.
        handled_here.clear();
        return Ok(false);
    };
    loop {
        let events = store.events_after(cursor, BATCH).await?;
        let Some(last) = events.last() else { break };
        let fresh: Vec<Event> = events.iter().filter(|e| !handled_here.remove(&e.cursor.seq)).cloned().collect();
        if !fresh.is_empty() {
            f.handle(state, &fresh).await?;
        }
        cursor = last.cursor;
        if !store.advance_follower(f.name(), &state.replica, cursor).await? {
            return Ok(false);
        }
        if events.len() < BATCH as usize {
            break;
        }
    }
    // What was handled here but is no longer in the stream (pruned) is forgotten.
    if handled_here.len() > 100_000 {
        handled_here.clear();
    }
    store.events_waiting(cursor).await
}

/// The listeners' reader of other replicas' events: from the tail at start
/// (listeners keep nothing from before), woken by their announcements. A
/// failed read is tried again from the same place: nothing is lost.
async fn follow_remote(state: App, mut stop: watch::Receiver<bool>) {
    let mut remote = state.store.feed().remote();
    let mut cursor: Option<EventCursor> = None;
    let mut retry = false;
    loop {
        if cursor.is_none() || retry {
            // Wait a little for what is not yet readable, or after an error.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(if cursor.is_none() { 0 } else { 50 })) => {}
                _ = stop.changed() => break,
            }
        } else {
            tokio::select! {
                changed = remote.changed() => if changed.is_err() { break },
                _ = stop.changed() => break,
            }
        }
        retry = match read_remote(&state, &mut cursor).await {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!(error = %e, "reading other replicas' events failed; retrying");
                tokio::time::sleep(CURSOR_DELAY).await;
                true
            }
        };
    }
}

async fn read_remote(state: &App, cursor: &mut Option<EventCursor>) -> StoreResult<bool> {
    let store = state.store.as_ref();
    let mut at = match *cursor {
        Some(c) => c,
        None => {
            let tail = store.event_tail().await?;
            *cursor = Some(tail);
            return Ok(false);
        }
    };
    loop {
        let events = store.events_after(at, 1000).await?;
        let Some(last) = events.last() else { break };
        state.listeners.deliver(&events);
        at = last.cursor;
        *cursor = Some(at);
        if events.len() < 1000 {
            break;
        }
    }
    store.events_waiting(at).await
}

/// A callback that sees every event.
pub type Listener = Arc<dyn Fn(&[Event]) + Send + Sync>;

/// Who sees every event, this replica's and the others'.
#[derive(Default)]
pub struct Listeners {
    all: std::sync::RwLock<Vec<Listener>>,
}

impl Listeners {
    pub(crate) fn add(&self, listener: Listener) {
        self.all.write().expect("not poisoned").push(listener);
    }

    fn deliver(&self, events: &[Event]) {
        for l in self.all.read().expect("not poisoned").iter() {
            l(events);
        }
    }
}
