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
//! Both maps are bounded: past `capacity` entries they are cleared.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use updraft_store::DeviceActions;

pub struct PollCache {
    ttl: Duration,
    capacity: usize,
    tokens: RwLock<HashMap<String, (String, String, Instant)>>,
    idle: RwLock<HashMap<(String, String), (IdleView, Instant)>>,
}

/// A cached poll answer for a device with nothing to do.
#[derive(Debug, Clone)]
pub struct IdleView {
    pub actions: DeviceActions,
    pub attributes_requested: bool,
}

impl PollCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, tokens: Default::default(), idle: Default::default() }
    }

    pub fn device_for_token(&self, token_hash: &str) -> Option<(String, String)> {
        let map = self.tokens.read().expect("cache lock");
        map.get(token_hash).filter(|(_, _, at)| at.elapsed() < self.ttl).map(|(t, d, _)| (t.clone(), d.clone()))
    }

    pub fn remember_token(&self, token_hash: &str, tenant: &str, device: &str) {
        let mut map = self.tokens.write().expect("cache lock");
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(token_hash.to_owned(), (tenant.to_owned(), device.to_owned(), Instant::now()));
    }

    pub fn idle(&self, tenant: &str, device: &str) -> Option<IdleView> {
        let map = self.idle.read().expect("cache lock");
        map.get(&(tenant.to_owned(), device.to_owned()))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    /// Caches the answer if it offers no work.
    pub fn remember_idle(&self, tenant: &str, device: &str, view: &IdleView) {
        if view.actions.active.is_some() {
            return;
        }
        let mut map = self.idle.write().expect("cache lock");
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert((tenant.to_owned(), device.to_owned()), (view.clone(), Instant::now()));
    }

    /// Forgets what is known of a device's work and attributes.
    pub fn forget_device(&self, tenant: &str, device: &str) {
        self.idle.write().expect("cache lock").remove(&(tenant.to_owned(), device.to_owned()));
    }

    /// Forgets everything about a device, its token included (it was deleted).
    pub fn forget_deleted(&self, tenant: &str, device: &str) {
        self.forget_device(tenant, device);
        self.tokens.write().expect("cache lock").retain(|_, (t, d, _)| !(t == tenant && d == device));
    }

    /// Forgets every idle answer of a tenant (a job was created or changed).
    pub fn forget_tenant(&self, tenant: &str) {
        self.idle.write().expect("cache lock").retain(|(t, _), _| t != tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::job::{Execution, ExecutionState};

    fn busy() -> IdleView {
        let t = jiff::Timestamp::UNIX_EPOCH;
        let e = Execution {
            action_id: 1,
            job: "j".into(),
            device: "d".into(),
            firmware: "f".into(),
            state: ExecutionState::Queued,
            attempt: 1,
            cancel_requested: false,
            progress: None,
            created_at: t,
            updated_at: t,
            finished_at: None,
        };
        IdleView { actions: DeviceActions { active: Some(e), installed: None }, attributes_requested: false }
    }

    #[test]
    fn only_idle_answers_are_cached_and_forgotten() {
        let c = PollCache::new(Duration::from_secs(60), 10);
        c.remember_idle("t", "d", &busy());
        assert!(c.idle("t", "d").is_none(), "work is never cached");
        let idle = IdleView { actions: DeviceActions::default(), attributes_requested: true };
        c.remember_idle("t", "d", &idle);
        assert!(c.idle("t", "d").is_some());
        c.forget_device("t", "d");
        assert!(c.idle("t", "d").is_none());
        c.remember_idle("t", "d", &idle);
        c.forget_tenant("t");
        assert!(c.idle("t", "d").is_none());
        c.remember_token("h", "t", "d");
        assert_eq!(c.device_for_token("h"), Some(("t".into(), "d".into())));
        c.forget_deleted("t", "d");
        assert_eq!(c.device_for_token("h"), None);
    }

    #[test]
    fn entries_expire_and_the_maps_stay_bounded() {
        let c = PollCache::new(Duration::ZERO, 2);
        c.remember_token("h", "t", "d");
        assert_eq!(c.device_for_token("h"), None, "expired");
        let c = PollCache::new(Duration::from_secs(60), 2);
        for i in 0..5 {
            c.remember_token(&format!("h{i}"), "t", "d");
        }
        assert!(c.tokens.read().unwrap().len() <= 2);
    }
}
