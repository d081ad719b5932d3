//! Download throttling for devices on metered or shared links: a token bucket of bytes.
//!
//! The bucket refills at the rate, holds at most a quarter of a second's worth, and starts
//! empty, so a throttled download never runs ahead of its rate by more than that, even right
//! after a stall. Bytes taken beyond what the bucket holds are a debt that is slept off at once,
//! so the running average stays at the rate whatever sizes the reads come in.
//!
//! **Invariant:** the bucket's arithmetic ([`RateLimiter::debit`]) takes the time as an argument
//! and does no I/O; only [`RateLimiter::take`] reads the clock and sleeps.

use std::time::{Duration, Instant};

/// The largest piece taken from the bucket at once: big reads are written and paced in pieces
/// of this size, so progress on disk is smooth rather than a step per read.
pub(crate) const PIECE: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Bytes per second.
    rate: f64,
    /// The most bytes the bucket holds.
    burst: f64,
    /// Bytes that may pass now; negative while a debt is being slept off.
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Self::starting_at(bytes_per_sec, Instant::now())
    }

    fn starting_at(bytes_per_sec: u64, now: Instant) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimiter { rate, burst: rate / 4.0, tokens: 0.0, last: now }
    }

    /// Accounts for `n` bytes just received and waits until the rate allows them. Dropping the
    /// wait early leaves the bucket consistent: the debt is simply carried over.
    pub(crate) async fn take(&mut self, n: usize) {
        let wait = self.debit(Instant::now(), n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes `n` bytes from the bucket at `now` and returns how long to wait before going on.
    fn debit(&mut self, now: Instant, n: usize) -> Duration {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst) - n as f64;
        self.last = now;
        if self.tokens < 0.0 { Duration::from_secs_f64(-self.tokens / self.rate) } else { Duration::ZERO }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `n` bytes at `*now` and moves `*now` on by the wait, as the sleep would.
    fn take(limiter: &mut RateLimiter, now: &mut Instant, n: usize) -> Duration {
        let wait = limiter.debit(*now, n);
        *now += wait;
        wait
    }

    #[track_caller]
    fn assert_near(actual: Duration, expected: Duration) {
        assert!(actual.abs_diff(expected) < Duration::from_micros(10), "{actual:?}, expected {expected:?}");
    }

    #[test]
    fn bytes_pass_at_the_rate() {
        let start = Instant::now();
        let mut now = start;
        let mut limiter = RateLimiter::starting_at(256 * 1024, start);
        for _ in 0..64 {
            take(&mut limiter, &mut now, PIECE);
        }
        // 1 MiB at 256 KiB/s, starting from an empty bucket.
        assert_near(now - start, Duration::from_secs(4));

        // A stall refills the bucket by a quarter second's worth, no more.
        now += Duration::from_secs(10);
        assert_eq!(take(&mut limiter, &mut now, 64 * 1024), Duration::ZERO);
        assert_near(take(&mut limiter, &mut now, 256 * 1024), Duration::from_secs(1));

        // One read larger than the bucket is paced as a whole.
        assert_near(take(&mut limiter, &mut now, 512 * 1024), Duration::from_secs(2));

        // A wait cut short is carried over: the next bytes wait for it as well.
        let wait = limiter.debit(now, 256 * 1024);
        assert_near(wait, Duration::from_secs(1));
        now += Duration::from_millis(500);
        assert_near(take(&mut limiter, &mut now, 128 * 1024), Duration::from_secs(1));
    }
}
