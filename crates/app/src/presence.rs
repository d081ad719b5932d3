//! Presence: devices are online while they poll, or while their MQTT
//! connection is open (a device that leaves is offline at once). A poll only notes the time
//! in memory; the `presence` worker writes the sightings in one batch and
//! marks devices that stopped polling offline. So a poll never writes to the
//! database, and at most one flush interval of sightings is lost in a crash
//! (a graceful stop flushes).
//!
//! A device's first contact sets its `activated_at` (when not given) and
//! makes it `initializing`; its next poll completes its first poll cycle and
//! makes it `online` (see `Store::record_presence`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{Sighting, Store, StoreResult};
use jiff::{SignedDuration, Timestamp};

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

    /// Writes the sightings noted since the last flush, and marks devices
    /// unseen for `offline_after` offline.
    pub async fn flush(&self, store: &dyn Store, now: Timestamp, offline_after: SignedDuration) -> StoreResult<usize> {
        let batch: Vec<Sighting> = {
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
        let cutoff = now.checked_sub(offline_after).unwrap_or(Timestamp::MIN);
        for chunk in batch.chunks(1000) {
            store.record_presence(chunk, cutoff).await?;
        }
        if batch.is_empty() {
            store.record_presence(&[], cutoff).await?;
        }
        metrics::counter!(crate::metrics::PRESENCE_FLUSHED).increment(batch.len() as u64);
        Ok(batch.len())
    }
}
