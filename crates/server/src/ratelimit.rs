//! Token buckets, refilled continuously: a per-key request budget for the
//! management API, a budget of failed authentications per source address
//! (management API, device API, dashboard sign-in), and the device API's
//! budgets per device and per source address (each limiter its own, so a busy
//! management client never spends a device's budget, nor the reverse). Over
//! budget, a call gets 429 with `Retry-After`. Limits are per server replica
//! (see README).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How many locks the buckets are spread over, by key: a device poll takes one
/// briefly, and thousands a second from many threads rarely wait for each other.
const SHARDS: usize = 32;
/// Buckets a shard keeps before it forgets the full ones.
const SHARD_SWEEP: usize = 100_000 / SHARDS;

/// One shard's buckets, and the size at which its full ones are next forgotten.
#[derive(Default)]
struct Buckets {
    map: HashMap<String, (f64, Instant)>,
    sweep_at: usize,
}

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    shards: Box<[Mutex<Buckets>]>,
    /// Whether any bucket was ever taken from: until then [`RateLimiter::peek`]
    /// answers without the lock (a device poll checks the failures of its address).
    used: AtomicBool,
}

impl RateLimiter {
    /// `per_sec` requests per second on average, up to `burst` at once; 0 disables the limit.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self::with_rate(f64::from(per_sec), burst)
    }

    /// `per_minute` on average, up to `burst` at once; 0 disables the limit.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::with_rate(f64::from(per_minute) / 60.0, burst)
    }

    fn with_rate(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec,
            burst: f64::from(burst.max(1)),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            used: AtomicBool::new(false),
        }
    }

    /// Whether there is a limit at all (0 disables it).
    pub fn enabled(&self) -> bool {
        self.per_sec > 0.0
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Buckets> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        self.shards[hash as usize % SHARDS].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `key` has budget left, without taking from it; `Err(seconds)` says when it will.
    pub fn peek(&self, key: &str) -> Result<(), u64> {
        if self.per_sec <= 0.0 || !self.used.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = Instant::now();
        match self.shard(key).map.get(key) {
            None => Ok(()),
            Some((tokens, at)) => {
                let tokens = (tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
                if tokens >= 1.0 { Ok(()) } else { Err(((1.0 - tokens) / self.per_sec).ceil().max(1.0) as u64) }
            }
        }
    }

    /// Takes one request from `key`'s budget; `Err(seconds)` says when to retry.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        let now = Instant::now();
        let mut buckets = self.shard(key);
        if buckets.map.len() > buckets.sweep_at.max(SHARD_SWEEP) {
            // A bucket untouched long enough to be full again is as good as none. Those
            // left set the next sweep, so a large fleet does not sweep on every call.
            let refill = self.burst / self.per_sec;
            buckets.map.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < refill);
            buckets.sweep_at = buckets.map.len() * 2;
        }
        let (tokens, at) = match buckets.map.get_mut(key) {
            Some(bucket) => bucket,
            None => buckets.map.entry(key.to_owned()).or_insert((self.burst, now)),
        };
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_then_refusal() {
        let l = RateLimiter::new(1, 3);
        assert!(l.check("a").is_ok() && l.check("a").is_ok() && l.check("a").is_ok());
        assert_eq!(l.check("a"), Err(1));
        assert!(l.check("b").is_ok(), "budgets are per key");
        assert!(RateLimiter::new(0, 0).check("a").is_ok(), "0 disables");
    }

    #[test]
    fn failures_per_minute_block_until_refilled() {
        let l = RateLimiter::per_minute(6, 2);
        assert!(l.peek("10.0.0.1").is_ok(), "nothing failed yet");
        let _ = l.check("10.0.0.1");
        assert!(l.peek("10.0.0.1").is_ok(), "one failure left");
        let _ = l.check("10.0.0.1");
        assert_eq!(l.peek("10.0.0.1"), Err(10), "blocked: one failure refills in 10 s");
        assert!(l.peek("10.0.0.2").is_ok(), "per address");
        assert!(RateLimiter::per_minute(0, 0).peek("a").is_ok(), "0 disables");
    }

    #[test]
    fn full_buckets_are_forgotten_and_the_rest_kept() {
        let l = RateLimiter::per_minute(60, 2);
        for i in 0..SHARD_SWEEP * SHARDS * 2 {
            let _ = l.check(&format!("device-{i}"));
        }
        let kept: usize = l.shards.iter().map(|s| s.lock().unwrap().map.len()).sum();
        assert!(kept >= SHARD_SWEEP * SHARDS, "recent buckets are kept: {kept}");
        assert!(l.check("device-0").is_ok() && l.check("device-0").is_err(), "a bucket still counts");
    }
}
