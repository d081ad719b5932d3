//! updraft's device side of hawkBit's Direct Device Integration (DDI) API.
//!
//! - [`DdiClient`] speaks DDI for one controller id over a shared `reqwest` client, with the
//!   `updraft-ddi` wire types: poll, deployment, feedback, cancel, confirmation, configData and
//!   artifact downloads that resume with `Range`.
//! - [`Agent`] is one real device: it polls, downloads (optionally rate-limited) and verifies
//!   (size and SHA-256) before it installs, reports every phase, and keeps its progress in a
//!   JSON file written atomically so that a restart after `kill -9` picks up where it stopped.
//! - [`sim::Fleet`] is thousands of simulated devices in one process, for integration and load
//!   tests; [`sim::register_devices`] registers them through the management API first.
//!
//! **Invariants:** nothing the server sends can panic this crate (every unexpected status or
//! body becomes an [`Error`]); every HTTP call has a timeout; memory stays bounded whatever
//! the artifact sizes (bytes stream to disk or to a hash, never into one buffer).

mod agent;
mod client;
mod error;
mod install;
pub mod mqtt;
pub mod sim;
mod state;
mod throttle;
pub mod tuf;

pub use agent::{Agent, AgentConfig, Cycle};
pub use client::{ArtifactBody, Auth, DdiClient, HttpSettings, action_id_from_href, feedback, http_client};
pub use error::Error;
pub use install::{Installer, split_words};
pub use state::{AgentState, Phase, STATE_FILE, Work, write_atomic};

/// The configData key under which the installed version of `component` is reported
/// (`fw.host`): the convention the updraft server reads.
pub fn firmware_key(component: &str) -> String {
    format!("fw.{component}")
}
