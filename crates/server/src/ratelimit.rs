//! Token buckets, refilled continuously: a per-key request budget for the
//! management API, and a budget of failed authentications per source address
//! (management API, device API, dashboard sign-in). Over budget, a call gets
//! 429 with `Retry-After`. Limits are per server replica (see README).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Whether any bucket was ever taken from: until then [`RateLimiter::peek`]
    /// answers without the lock (a device poll checks the failures of its address).
    used: AtomicBool,
}

impl RateLimiter {
    /// `per_sec` requests per second on average, up to `burst` at once; 0 disables the limit.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            buckets: Default::default(),
            used: AtomicBool::new(false),
        }
    }

    /// `per_minute` on average, up to `burst` at once; 0 disables the limit.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self {
            per_sec: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Default::default(),
            used: AtomicBool::new(false),
        }
    }

    /// Whether `key` has budget left, without taking from it; `Err(seconds)` says when it will.
    pub fn peek(&self, key: &str) -> Result<(), u64> {
        if self.per_sec <= 0.0 || !self.used.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = Instant::now();
        let buckets = self.buckets.lock().expect("rate limiter lock");
        match buckets.get(key) {
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
        self.used.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
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
}
