//! The fleet at a glance: devices by connection status and by firmware version
//! per product. Counting a large fleet takes a scan, so each tenant's figures
//! are kept and shared by every page that shows them, and counted again in the
//! background once they are a few seconds old.

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

/// The last figures of each tenant, and the tenants being counted again.
#[derive(Default)]
pub struct OverviewCache(Mutex<HashMap<String, Arc<FleetOverview>>>, Mutex<std::collections::HashSet<String>>);

impl App {
    /// The tenant's fleet at a glance. Figures older than [`OVERVIEW_TTL`] are
    /// shown while new ones are counted in the background, so that only the
    /// first view of a tenant waits for the count.
    pub async fn fleet_overview(&self, actor: &Actor) -> Result<Arc<FleetOverview>> {
        actor.require(Access::Read)?;
        let tenant = actor.tenant().to_owned();
        let now = self.now();
        let cached = self.overviews.0.lock().expect("not poisoned").get(&tenant).cloned();
        match cached {
            Some(o) if o.counted_at <= now && now.duration_since(o.counted_at) < OVERVIEW_TTL => Ok(o),
            Some(o) => {
                if self.overviews.1.lock().expect("not poisoned").insert(tenant.clone()) {
                    let app = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = app.count_fleet(&tenant).await {
                            tracing::warn!(tenant = %tenant, error = %e.message, "fleet overview not counted");
                        }
                        app.overviews.1.lock().expect("not poisoned").remove(&tenant);
                    });
                }
                Ok(o)
            }
            None => self.count_fleet(&tenant).await,
        }
    }

    async fn count_fleet(&self, tenant: &str) -> Result<Arc<FleetOverview>> {
        let now = self.now();
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
