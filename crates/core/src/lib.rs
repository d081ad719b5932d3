//! updraft's domain, as plain data and pure functions.
//!
//! Nothing in this crate does I/O or reads a clock: functions that need the
//! time take `now` as an argument. Adapters (store, HTTP, CLI) convert their
//! own wire and row types into these types and back.

pub mod attributes;
pub mod error;
pub mod filter;
pub mod job;
pub mod model;
pub mod page;
pub mod phase;
pub mod rollout;
pub mod schedule;
pub mod signing;
pub mod validate;
pub mod version;
pub mod waiting;

pub use error::{Error, FieldError};
pub use model::*;
pub use page::{Page, PageRequest, SortOrder};
pub use signing::{CodeSigning, SignatureAlgorithm, SigningProfile, TrustAnchor};
pub use version::{Version, VersionScheme};
