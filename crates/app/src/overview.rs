//! The fleet at a glance: devices by connection status and by firmware version
//! per product. Counting a large fleet takes a scan, so each tenant's figures
//! are kept for a few seconds and shared by every page that shows them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use updraft_core::Access;

use crate::error::Result;
use crate::{Actor, App};

/// How long a tenant's figures are shown before they are counted again.
pub const OVERVIEW_TTL: SignedDuration = SignedDuration::from_secs(10);

/// A tenant's fleet, counted at `counted_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetOverview {
    pub total: u64,
    /// Connection status → devices.
    pub by_status: BTreeMap<String, u64>,
    /// Product → (component `=` version → devices), most devices first.
    pub by_version: BTreeMap<String, Vec<(String, u64)>>,
    pub counted_at: Timestamp,
}

/// The last figures of each tenant.
#[derive(Default)]
pub struct OverviewCache(Mutex<HashMap<String, Arc<FleetOverview>>>);

impl App {
    /// The tenant's fleet at a glance (at most [`OVERVIEW_TTL`] old).
    pub async fn fleet_overview(&self, actor: &Actor) -> Result<Arc<FleetOverview>> {
        actor.require(Access::Read)?;
        let tenant = actor.tenant();
        let now = self.now();
        if let Some(o) = self.overviews.0.lock().expect("not poisoned").get(tenant)
            && now.duration_since(o.counted_at) < OVERVIEW_TTL
            && o.counted_at <= now
        {
            return Ok(o.clone());
        }
        let rows = self.store.device_summary(tenant).await?;
        let mut o =
            FleetOverview { total: 0, by_status: BTreeMap::new(), by_version: BTreeMap::new(), counted_at: now };
        let mut versions: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for r in rows {
            o.total += r.count;
            *o.by_status.entry(r.connection_status).or_default() += r.count;
            let firmware: BTreeMap<String, String> = serde_json::from_str(&r.firmware).unwrap_or_default();
            let per_product = versions.entry(r.product).or_default();
            if firmware.is_empty() {
                *per_product.entry("(none reported)".into()).or_default() += r.count;
            }
            for (component, version) in firmware {
                *per_product.entry(format!("{component} {version}")).or_default() += r.count;
            }
        }
        for (product, counts) in versions {
            let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            o.by_version.insert(product, counts);
        }
        let o = Arc::new(o);
        self.overviews.0.lock().expect("not poisoned").insert(tenant.to_owned(), o.clone());
        Ok(o)
    }
}
