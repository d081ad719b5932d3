//! What makes a poll cheap: two small in-memory caches in front of the store.
//!
//! - Tokens: a device token's hash → (tenant, device). A token never changes
//!   for a device, so entries only go stale when the device is deleted: this
//!   replica forgets them at once, others within `ttl`.
//! - Idle devices: (tenant, device) → what the poll answers when the device
//!   has nothing to do. Only idle answers are cached: an answer that offers
//!   work is always read fresh, so a cache can delay a new job by at most
//!   `ttl` (on another replica) but can never offer work that is over. Every
//!   change to a device's executions or attributes on this replica forgets
//!   its entry.
//!
//! Both maps are bounded: past `capacity` entries they are cleared. Each
//! entry lives between half the TTL and the TTL, so that a fleet cached at
//! once does not expire at once.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderValue;

/// Idle answers by tenant, then device: looked up with borrowed ids, no allocation.
type IdleMap = HashMap<String, HashMap<String, (Arc<IdleAnswer>, Instant)>>;

pub struct PollCache {
    ttl: Duration,
    capacity: usize,
    /// Bumped by every forget: an answer read before a forget is never cached after it.
    epoch: std::sync::atomic::AtomicU64,
    tokens: RwLock<HashMap<String, (String, String, Instant)>>,
    idle: RwLock<IdleMap>,
}

/// A rendered poll answer for a device with nothing to do.
#[derive(Debug)]
pub struct IdleAnswer {
    /// The device API base URL the answer's links were built for.
    pub base_url: String,
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl PollCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, epoch: Default::default(), tokens: Default::default(), idle: Default::default() }
    }

    /// When an entry made now expires: between half the TTL and the TTL, spread by
    /// `seed` so that entries made together do not all expire together.
    fn expiry(&self, seed: &str) -> Instant {
        let spread = seed.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let fraction = 0.5 + ((spread ^ u64::from(nanos)) % 1000) as f64 / 2000.0;
        Instant::now() + self.ttl.mul_f64(fraction)
    }

    pub fn device_for_token(&self, token_hash: &str) -> Option<(String, String)> {
        let map = self.tokens.read().expect("cache lock");
        map.get(token_hash).filter(|(_, _, until)| Instant::now() < *until).map(|(t, d, _)| (t.clone(), d.clone()))
    }

    pub fn remember_token(&self, token_hash: &str, tenant: &str, device: &str) {
        let mut map = self.tokens.write().expect("cache lock");
        if map.len() >= self.capacity {
            map.clear();
        }
        let until = self.expiry(token_hash);
        map.insert(token_hash.to_owned(), (tenant.to_owned(), device.to_owned(), until));
    }

    pub fn idle(&self, tenant: &str, device: &str) -> Option<Arc<IdleAnswer>> {
        let map = self.idle.read().expect("cache lock");
        map.get(tenant)?.get(device).filter(|(_, until)| Instant::now() < *until).map(|(a, _)| a.clone())
    }

    /// The current epoch: take it before reading what an answer is built from.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caches the answer of a device that has nothing to do, unless something
    /// was forgotten since `epoch` (the answer may predate that change). The
    /// caller's duty: never an answer that offers work.
    pub fn remember_idle(&self, epoch: u64, tenant: &str, device: &str, answer: IdleAnswer) {
        let mut map = self.idle.write().expect("cache lock");
        if self.epoch() != epoch {
            return;
        }
        if map.values().map(HashMap::len).sum::<usize>() >= self.capacity {
            map.clear();
        }
        let until = self.expiry(device);
        map.entry(tenant.to_owned()).or_default().insert(device.to_owned(), (Arc::new(answer), until));
    }

    /// Forgets what is known of a device's work and attributes.
    pub fn forget_device(&self, tenant: &str, device: &str) {
        let mut map = self.idle.write().expect("cache lock");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(devices) = map.get_mut(tenant) {
            devices.remove(device);
        }
    }

    /// Forgets everything about a device, its token included (it was deleted).
    pub fn forget_deleted(&self, tenant: &str, device: &str) {
        self.forget_device(tenant, device);
        self.tokens.write().expect("cache lock").retain(|_, (t, d, _)| !(t == tenant && d == device));
    }

    /// Forgets every idle answer of a tenant (a job was created or changed).
    pub fn forget_tenant(&self, tenant: &str) {
        let mut map = self.idle.write().expect("cache lock");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        map.remove(tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> IdleAnswer {
        IdleAnswer {
            base_url: "http://h/t/controller/v1/d".into(),
            body: Bytes::from_static(b"{}"),
            etag: HeaderValue::from_static("\"1\""),
        }
    }

    #[test]
    fn idle_answers_are_cached_and_forgotten() {
        let c = PollCache::new(Duration::from_secs(60), 10);
        assert!(c.idle("t", "d").is_none());
        c.remember_idle(c.epoch(), "t", "d", answer());
        assert!(c.idle("t", "d").is_some());
        c.forget_device("t", "d");
        assert!(c.idle("t", "d").is_none());
        c.remember_idle(c.epoch(), "t", "d", answer());
        c.forget_tenant("t");
        assert!(c.idle("t", "d").is_none());
        c.remember_token("h", "t", "d");
        assert_eq!(c.device_for_token("h"), Some(("t".into(), "d".into())));
        c.forget_deleted("t", "d");
        assert_eq!(c.device_for_token("h"), None);
        let before = c.epoch();
        c.forget_device("t", "other");
        c.remember_idle(before, "t", "d", answer());
        assert!(c.idle("t", "d").is_none(), "an answer read before a change is not cached after it");
    }

    #[test]
    fn entries_expire_and_the_maps_stay_bounded() {
        let c = PollCache::new(Duration::ZERO, 2);
        c.remember_token("h", "t", "d");
        assert_eq!(c.device_for_token("h"), None, "expired");
        c.remember_idle(c.epoch(), "t", "d", answer());
        assert!(c.idle("t", "d").is_none(), "expired");
        let c = PollCache::new(Duration::from_secs(60), 2);
        for i in 0..5 {
            c.remember_token(&format!("h{i}"), "t", "d");
            c.remember_idle(c.epoch(), "t", &format!("d{i}"), answer());
        }
        assert!(c.tokens.read().unwrap().len() <= 2);
        assert!(c.idle.read().unwrap().values().map(HashMap::len).sum::<usize>() <= 2);
    }
}
