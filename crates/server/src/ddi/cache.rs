//! What makes a poll cheap: small in-memory caches in front of the store.
//!
//! - Tokens: a device token's hash → (tenant, device); a gateway token's
//!   hash → its tenant, and the devices known to exist behind gateways.
//! - Idle devices: (tenant, device) → what the poll answers when the device
//!   has nothing to do. Only idle answers are cached: an answer that offers
//!   work is always read fresh, so the cache can never offer work that is over.
//!
//! Entries live until something changes: the cache follows the event stream
//! ([`PollCache::apply`]), on this replica at once (the store's feed runs it
//! before the writing call returns) and from other replicas as soon as they
//! announce their events. An optional TTL bounds an entry's life besides.
//! Both maps are bounded: past `capacity` entries they are cleared.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use updraft_app::{Change, Event, PollSeed};

/// What an idle poll answer is made of, by tenant, then device (looked up with
/// borrowed ids, no allocation). The answer itself is rendered on each hit: a few
/// bytes per device rather than its JSON, so a million devices fit.
type IdleMap = HashMap<Arc<str>, HashMap<Box<str>, (Idle, Option<Instant>)>>;
/// Device tokens' SHA-256 → tenant, device, and when the entry expires (if ever).
type TokenMap = HashMap<[u8; 32], (Arc<str>, Box<str>, Option<Instant>)>;

/// More devices than this in one change forget the tenant's answers at once.
const FORGET_TENANT_ABOVE: usize = 1000;

pub struct PollCache {
    ttl: Option<Duration>,
    capacity: usize,
    /// Bumped by every forget: what was read before a forget is never cached after it.
    epoch: std::sync::atomic::AtomicU64,
    tokens: RwLock<TokenMap>,
    gateways: RwLock<HashMap<String, String>>,
    /// Devices known to exist, by tenant (what a gateway's call needs to know).
    known: RwLock<HashMap<String, HashSet<String>>>,
    idle: RwLock<IdleMap>,
}

/// What the poll of a device with nothing to do answers, besides its links'
/// base URL and the polling interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idle {
    /// The server wants the device's attributes (`configData`).
    pub attributes_requested: bool,
    /// The action id of the device's latest succeeded execution (`installedBase`).
    pub installed: Option<i64>,
}

fn live(until: &Option<Instant>) -> bool {
    until.is_none_or(|u| Instant::now() < u)
}

/// A token hash (64 hex digits) as the 32 bytes it spells.
fn token_key(hash: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(hash, &mut key).ok().map(|()| key)
}

impl PollCache {
    /// A cache whose entries live until a change forgets them, or at most `ttl`;
    /// each map holds at most `capacity` entries.
    pub fn new(ttl: Option<Duration>, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            epoch: Default::default(),
            tokens: Default::default(),
            gateways: Default::default(),
            known: Default::default(),
            idle: Default::default(),
        }
    }

    /// When an entry made now expires, if ever: between half the TTL and the
    /// TTL, spread by `seed` so that entries made together do not all expire together.
    fn expiry(&self, seed: &str) -> Option<Instant> {
        let ttl = self.ttl?;
        let spread = seed.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let fraction = 0.5 + ((spread ^ u64::from(nanos)) % 1000) as f64 / 2000.0;
        Some(Instant::now() + ttl.mul_f64(fraction))
    }

    /// The tenant's shared name: one allocation per tenant, whatever its fleet.
    fn tenant_name(map: &IdleMap, tenant: &str) -> Arc<str> {
        map.get_key_value(tenant).map(|(t, _)| t.clone()).unwrap_or_else(|| Arc::from(tenant))
    }

    pub fn device_for_token(&self, token_hash: &str) -> Option<(String, String)> {
        let key = token_key(token_hash)?;
        let map = self.tokens.read().expect("cache lock");
        map.get(&key).filter(|(_, _, until)| live(until)).map(|(t, d, _)| (t.to_string(), d.to_string()))
    }

    /// Remembers whose a token is, unless something was forgotten since `epoch`
    /// (the token may have been replaced since it was read).
    pub fn remember_token(&self, epoch: u64, token_hash: &str, tenant: &str, device: &str) {
        let Some(key) = token_key(token_hash) else { return };
        let tenant = Self::tenant_name(&self.idle.read().expect("cache lock"), tenant);
        let mut map = self.tokens.write().expect("cache lock");
        if self.epoch() != epoch {
            return;
        }
        if map.len() >= self.capacity {
            map.clear();
        }
        let until = self.expiry(token_hash);
        map.insert(key, (tenant, device.into(), until));
    }

    /// The tenant of a gateway token, when known.
    pub fn gateway_tenant(&self, token_hash: &str) -> Option<String> {
        self.gateways.read().expect("cache lock").get(token_hash).cloned()
    }

    pub fn remember_gateway(&self, token_hash: &str, tenant: &str) {
        let mut map = self.gateways.write().expect("cache lock");
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(token_hash.to_owned(), tenant.to_owned());
    }

    /// Whether `device` is known to exist (take the epoch before looking it up).
    pub fn known(&self, tenant: &str, device: &str) -> bool {
        self.known.read().expect("cache lock").get(tenant).is_some_and(|d| d.contains(device))
    }

    /// Remembers that a device exists, unless something was forgotten since `epoch`.
    pub fn remember_known(&self, epoch: u64, tenant: &str, device: &str) {
        let mut map = self.known.write().expect("cache lock");
        if self.epoch() != epoch {
            return;
        }
        if map.values().map(HashSet::len).sum::<usize>() >= self.capacity {
            map.clear();
        }
        map.entry(tenant.to_owned()).or_default().insert(device.to_owned());
    }

    pub fn idle(&self, tenant: &str, device: &str) -> Option<Idle> {
        let map = self.idle.read().expect("cache lock");
        map.get(tenant)?.get(device).filter(|(_, until)| live(until)).map(|(idle, _)| *idle)
    }

    /// The current epoch: take it before reading what an answer is built from.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caches what the poll of a device with nothing to do answers, unless
    /// something was forgotten since `epoch` (the answer may predate that
    /// change). The caller's duty: never a device that is offered work.
    pub fn remember_idle(&self, epoch: u64, tenant: &str, device: &str, idle: Idle) {
        let mut map = self.idle.write().expect("cache lock");
        if self.epoch() != epoch {
            return;
        }
        if map.values().map(HashMap::len).sum::<usize>() >= self.capacity {
            map.clear();
        }
        let until = self.expiry(device);
        let tenant = Self::tenant_name(&map, tenant);
        map.entry(tenant).or_default().insert(device.into(), (idle, until));
    }

    /// Fills the cache with what the store says of many devices at once (a
    /// replica starting), unless something was forgotten since `epoch`: their
    /// tokens, and the idle answers of those offered nothing. Stops at capacity
    /// rather than forgetting. Answers how many devices were taken in, or
    /// `None` when the seeds are stale (read them again).
    pub fn warm(&self, epoch: u64, seeds: &[PollSeed]) -> Option<usize> {
        let mut idle = self.idle.write().expect("cache lock");
        let mut tokens = self.tokens.write().expect("cache lock");
        if self.epoch() != epoch {
            return None;
        }
        let mut idle_len: usize = idle.values().map(HashMap::len).sum();
        let mut taken = 0;
        for seed in seeds {
            if tokens.len() >= self.capacity || idle_len >= self.capacity {
                break;
            }
            let tenant = Self::tenant_name(&idle, &seed.tenant);
            if let Some(key) = token_key(&seed.token_hash) {
                tokens.insert(key, (tenant.clone(), seed.id.as_str().into(), self.expiry(&seed.token_hash)));
            }
            if !seed.offered {
                let answer = Idle { attributes_requested: seed.attributes_requested, installed: seed.installed };
                let until = self.expiry(&seed.id);
                if idle.entry(tenant).or_default().insert(seed.id.as_str().into(), (answer, until)).is_none() {
                    idle_len += 1;
                }
            }
            taken += 1;
        }
        Some(taken)
    }

    /// Forgets what events say has changed.
    pub fn apply(&self, events: &[Event]) {
        for e in events {
            let tenant = e.tenant.as_str();
            match &e.change {
                Change::DevicesCreated { devices } | Change::ExecutionsChanged { devices, .. }
                    if devices.len() > FORGET_TENANT_ABOVE =>
                {
                    self.forget_tenant(tenant)
                }
                Change::DevicesCreated { devices } | Change::ExecutionsChanged { devices, .. } => {
                    devices.iter().for_each(|d| self.forget_device(tenant, d))
                }
                Change::DeviceUpdated { device } => self.forget_device(tenant, device),
                Change::DeviceDeleted { device } | Change::DeviceTokenChanged { device } => {
                    self.forget_deleted(tenant, device)
                }
                Change::JobCreated { .. } | Change::JobChanged { .. } => self.forget_tenant(tenant),
                Change::GatewayTokenDeleted { .. } => self.forget_gateways(tenant),
                _ => {}
            }
        }
    }

    /// Forgets everything: events may have been missed.
    pub fn clear(&self) {
        let mut idle = self.idle.write().expect("cache lock");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        idle.clear();
        self.tokens.write().expect("cache lock").clear();
        self.gateways.write().expect("cache lock").clear();
        self.known.write().expect("cache lock").clear();
    }

    /// Forgets what is known of a device's work and attributes.
    fn forget_device(&self, tenant: &str, device: &str) {
        let mut map = self.idle.write().expect("cache lock");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(devices) = map.get_mut(tenant) {
            devices.remove(device);
        }
    }

    /// Forgets everything about a device, its token included (it was deleted,
    /// or its token replaced).
    fn forget_deleted(&self, tenant: &str, device: &str) {
        self.forget_device(tenant, device);
        self.tokens.write().expect("cache lock").retain(|_, (t, d, _)| !(&**t == tenant && &**d == device));
        if let Some(known) = self.known.write().expect("cache lock").get_mut(tenant) {
            known.remove(device);
        }
    }

    /// Forgets every idle answer of a tenant (a job was created or changed).
    fn forget_tenant(&self, tenant: &str) {
        let mut map = self.idle.write().expect("cache lock");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        map.remove(tenant);
    }

    /// Forgets a tenant's gateway tokens (one was deleted).
    fn forget_gateways(&self, tenant: &str) {
        self.gateways.write().expect("cache lock").retain(|_, t| t != tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Idle {
        Idle { attributes_requested: false, installed: Some(7) }
    }

    /// A token hash as the device API computes it.
    fn h(name: &str) -> String {
        updraft_app::actor::token_hash(name)
    }

    fn event(change: Change) -> Event {
        Event { cursor: Default::default(), tenant: "t".into(), at: jiff::Timestamp::UNIX_EPOCH, actor: None, change }
    }

    #[test]
    fn idle_answers_are_cached_until_an_event_forgets_them() {
        let c = PollCache::new(None, 10);
        assert!(c.idle("t", "d").is_none());
        c.remember_idle(c.epoch(), "t", "d", answer());
        assert!(c.idle("t", "d").is_some());
        c.apply(&[event(Change::GroupCreated { group: "g".into() })]);
        assert!(c.idle("t", "d").is_some(), "what does not change a poll's answer forgets nothing");
        c.apply(&[event(Change::ExecutionsChanged { job: "j".into(), devices: vec!["d".into()] })]);
        assert!(c.idle("t", "d").is_none());
        c.remember_idle(c.epoch(), "t", "d", answer());
        c.apply(&[event(Change::JobCreated { job: "j".into() })]);
        assert!(c.idle("t", "d").is_none(), "a new job forgets the tenant's answers");
        c.remember_token(c.epoch(), &h("h"), "t", "d");
        let epoch = c.epoch();
        c.remember_known(epoch, "t", "d");
        assert_eq!(c.device_for_token(&h("h")), Some(("t".into(), "d".into())));
        assert_eq!(c.device_for_token("not hex"), None);
        c.apply(&[event(Change::DeviceTokenChanged { device: "d".into() })]);
        assert_eq!(c.device_for_token(&h("h")), None, "the old token no longer authenticates");
        c.remember_token(epoch, &h("h"), "t", "d");
        assert_eq!(c.device_for_token(&h("h")), None, "a token read before it was replaced is not cached");
        assert!(!c.known("t", "d"));
        c.remember_gateway("g", "t");
        c.apply(&[event(Change::GatewayTokenDeleted { token: "x".into() })]);
        assert_eq!(c.gateway_tenant("g"), None);
        let before = c.epoch();
        c.apply(&[event(Change::DeviceUpdated { device: "other".into() })]);
        c.remember_idle(before, "t", "d", answer());
        assert!(c.idle("t", "d").is_none(), "an answer read before a change is not cached after it");
    }

    #[test]
    fn entries_expire_and_the_maps_stay_bounded() {
        let c = PollCache::new(Some(Duration::ZERO), 2);
        c.remember_token(c.epoch(), &h("h"), "t", "d");
        assert_eq!(c.device_for_token(&h("h")), None, "expired");
        c.remember_idle(c.epoch(), "t", "d", answer());
        assert!(c.idle("t", "d").is_none(), "expired");
        let c = PollCache::new(None, 2);
        for i in 0..5 {
            c.remember_token(c.epoch(), &h(&format!("h{i}")), "t", "d");
            c.remember_idle(c.epoch(), "t", &format!("d{i}"), answer());
        }
        assert!(c.tokens.read().unwrap().len() <= 2);
        assert!(c.idle.read().unwrap().values().map(HashMap::len).sum::<usize>() <= 2);
    }

    fn seed(id: &str, offered: bool) -> PollSeed {
        PollSeed {
            tenant: "t".into(),
            id: id.into(),
            token_hash: h(id),
            attributes_requested: id == "a",
            installed: None,
            offered,
        }
    }

    #[test]
    fn warming_takes_tokens_and_idle_answers_up_to_capacity() {
        let c = PollCache::new(None, 3);
        let seeds = [seed("a", false), seed("b", true), seed("c", false), seed("d", false), seed("e", false)];
        let stale = c.epoch();
        c.apply(&[event(Change::DeviceUpdated { device: "x".into() })]);
        assert_eq!(c.warm(stale, &seeds), None, "read before a change: nothing is taken");
        assert_eq!(c.warm(c.epoch(), &seeds), Some(3), "stops at capacity, forgetting nothing");
        assert_eq!(c.device_for_token(&h("b")), Some(("t".into(), "b".into())));
        assert_eq!(c.idle("t", "a"), Some(Idle { attributes_requested: true, installed: None }));
        assert_eq!(c.idle("t", "b"), None, "a device offered work is never idle");
        assert_eq!(c.tokens.read().unwrap().len(), 3);
        assert_eq!(c.idle.read().unwrap().values().map(HashMap::len).sum::<usize>(), 2);
    }
}
