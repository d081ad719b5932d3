//! Pushing work to devices the moment it changes: a front door that keeps a
//! connection to its devices (MQTT) registers a [`Push`], and the `push`
//! follower of the event stream tells it which devices' executions changed
//! (released, canceled, consented to, reported on). Being a durable follower,
//! each change is pushed once across replicas, and after a restart what was
//! committed meanwhile is pushed too.

use std::sync::{Arc, RwLock};

use crate::App;
use crate::store::{Change, Event, StoreResult};

/// A front door that tells devices of their work.
pub trait Push: Send + Sync + 'static {
    /// The executions of these devices of `tenant` changed: tell each what is
    /// next. Must not block: queue the work.
    fn changed(&self, tenant: &str, devices: &[String]);
}

/// The registered [`Push`]es.
#[derive(Default)]
pub struct Pushes {
    all: RwLock<Vec<Arc<dyn Push>>>,
}

impl Pushes {
    fn each(&self, f: impl Fn(&dyn Push)) {
        for p in self.all.read().expect("not poisoned").iter() {
            f(p.as_ref());
        }
    }
}

impl App {
    /// Registers a front door that pushes work to devices.
    pub fn add_push(&self, push: Arc<dyn Push>) {
        self.pushes.all.write().expect("not poisoned").push(push);
    }
}

/// The `push` follower: hands changed executions' devices to every [`Push`].
pub(crate) async fn executions_changed(state: &App, events: &[Event]) -> StoreResult<()> {
    if state.pushes.all.read().expect("not poisoned").is_empty() {
        return Ok(());
    }
    for e in events {
        if let Change::ExecutionsChanged { devices, .. } = &e.change
            && !devices.is_empty()
        {
            state.pushes.each(|p| p.changed(&e.tenant, devices));
        }
    }
    Ok(())
}
