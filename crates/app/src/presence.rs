//! Presence: devices are online while they poll, or while their MQTT
//! connection is open (a device that leaves is offline at once). A poll only notes the time
//! in memory; the `presence` worker writes the sightings in one batch and
//! marks devices that stopped polling offline. So a poll never writes to the
//! database, and at most one flush interval of sightings is lost in a crash
//! (a graceful stop flushes).
//!
//! A device's first contact sets its `activated_at` (when not given) and
//! makes it `initializing`; its next poll completes its first poll cycle and
//! makes it `online` (see `Store::record_sightings`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{Sighting, Store, StoreResult};
use jiff::{SignedDuration, Timestamp};

/// Sightings written per transaction: small enough that a flush of a whole
/// fleet's polls never holds many row locks for long.
const SIGHTINGS_PER_WRITE: usize = 5_000;

/// The polls of one device since the last flush.
#[derive(Debug, Clone, Copy)]
struct Polls {
    first: Timestamp,
    last: Timestamp,
    count: u32,
    /// The last thing noted was the device leaving (its MQTT connection closed).
    left: bool,
}

impl Polls {
    fn at(now: Timestamp, left: bool) -> Self {
        Polls { first: now, last: now, count: u32::from(!left), left }
    }
}

/// Sightings by tenant, then device: noted with borrowed ids, no allocation once known.
#[derive(Default)]
pub struct Presence {
    pending: Mutex<HashMap<String, HashMap<String, Polls>>>,
}

impl Presence {
    /// Notes that a device was seen now.
    pub fn seen(&self, tenant: &str, device: &str, now: Timestamp) {
        self.note(tenant, device, now, false);
    }

    /// Notes that a device left now (its connection closed): offline at the next flush,
    /// unless it is seen again after.
    pub fn left(&self, tenant: &str, device: &str, now: Timestamp) {
        self.note(tenant, device, now, true);
    }

    fn note(&self, tenant: &str, device: &str, now: Timestamp, left: bool) {
        let mut pending = self.pending.lock().expect("presence lock");
        match pending.get_mut(tenant) {
            Some(devices) => match devices.get_mut(device) {
                Some(p) => {
                    p.first = p.first.min(now);
                    if now >= p.last {
                        p.left = left;
                    }
                    p.last = p.last.max(now);
                    if !left {
                        p.count = p.count.saturating_add(1);
                    }
                }
                None => {
                    devices.insert(device.to_owned(), Polls::at(now, left));
                }
            },
            None => {
                pending.insert(tenant.to_owned(), HashMap::from([(device.to_owned(), Polls::at(now, left))]));
            }
        }
    }

    /// Notes sightings again that could not be written, merged with any noted since.
    fn requeue(&self, rest: &[Sighting]) {
        let mut pending = self.pending.lock().expect("presence lock");
        for s in rest {
            let noted = Polls { first: s.first, last: s.last, count: s.polls, left: s.left };
            let devices = pending.entry(s.tenant.clone()).or_default();
            devices
                .entry(s.device.clone())
                .and_modify(|p| {
                    p.first = p.first.min(noted.first);
                    p.count = p.count.saturating_add(noted.count);
                    if noted.last > p.last {
                        (p.last, p.left) = (noted.last, noted.left);
                    }
                })
                .or_insert(noted);
        }
    }

    /// Writes the sightings noted since the last flush, and marks devices
    /// unseen for `offline_after` offline.
    pub async fn flush(&self, store: &dyn Store, now: Timestamp, offline_after: SignedDuration) -> StoreResult<usize> {
        let mut batch: Vec<Sighting> = {
            let mut pending = self.pending.lock().expect("presence lock");
            let mut batch = Vec::new();
            for (tenant, devices) in pending.drain() {
                batch.extend(devices.into_iter().map(|(device, p)| Sighting {
                    tenant: tenant.clone(),
                    device,
                    first: p.first,
                    last: p.last,
                    polls: p.count,
                    left: p.left,
                }));
            }
            batch
        };
        // In key order: each write touches neighbouring rows and index pages
        // rather than the whole table, and replicas flushing the same devices
        // lock them in the same order.
        batch.sort_unstable_by(|a, b| (&a.tenant, &a.device).cmp(&(&b.tenant, &b.device)));
        let started = std::time::Instant::now();
        for (i, chunk) in batch.chunks(SIGHTINGS_PER_WRITE).enumerate() {
            if let Err(e) = store.record_sightings(chunk).await {
                // Kept for the next flush rather than lost with a failed write.
                self.requeue(&batch[i * SIGHTINGS_PER_WRITE..]);
                return Err(e);
            }
        }
        metrics::counter!(crate::metrics::PRESENCE_FLUSHED).increment(batch.len() as u64);
        if !batch.is_empty() {
            tracing::debug!(sightings = batch.len(), ms = started.elapsed().as_millis() as u64, "sightings written");
        }
        // After the sightings: a device seen in this batch is not silent.
        let cutoff = now.checked_sub(offline_after).unwrap_or(Timestamp::MIN);
        let silent = store.mark_silent_offline(cutoff).await?;
        if silent > 0 {
            metrics::counter!(crate::metrics::PRESENCE_WENT_OFFLINE).increment(silent);
            tracing::info!(devices = silent, "silent devices marked offline");
        }
        Ok(batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn noted(p: &Presence, tenant: &str, device: &str) -> Option<(Timestamp, Timestamp, u32, bool)> {
        let pending = p.pending.lock().unwrap();
        pending.get(tenant)?.get(device).map(|p| (p.first, p.last, p.count, p.left))
    }

    #[test]
    fn sightings_that_could_not_be_written_merge_with_later_ones() {
        let p = Presence::default();
        p.seen("acme", "d0", t(20));
        let batch = [
            Sighting { tenant: "acme".into(), device: "d0".into(), first: t(10), last: t(12), polls: 2, left: false },
            Sighting { tenant: "acme".into(), device: "d1".into(), first: t(11), last: t(11), polls: 0, left: true },
        ];
        p.requeue(&batch);
        assert_eq!(noted(&p, "acme", "d0"), Some((t(10), t(20), 3, false)), "the later poll stays the last");
        assert_eq!(noted(&p, "acme", "d1"), Some((t(11), t(11), 0, true)), "a departure is kept as it was");
        p.requeue(&[Sighting {
            tenant: "acme".into(),
            device: "d1".into(),
            first: t(30),
            last: t(30),
            polls: 1,
            left: false,
        }]);
        assert_eq!(noted(&p, "acme", "d1"), Some((t(11), t(30), 1, false)), "a later requeued poll wins");
    }
}
