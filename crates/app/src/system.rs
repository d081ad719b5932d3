//! The server's own state, as probes read it.

use crate::App;

/// Whether the store answers, and which one it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub ok: bool,
    /// The store's backend: `sqlite` or `postgres`.
    pub store: &'static str,
}

impl App {
    /// Readiness: whether the store answers a read. Anyone may ask (load
    /// balancers do, without credentials).
    pub async fn health(&self) -> Health {
        let ok = match self.store.get_tenant(updraft_core::DEFAULT_TENANT).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "health check failed");
                false
            }
        };
        Health { ok, store: self.store.backend() }
    }
}
