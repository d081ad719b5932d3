//! updraft's side of The Update Framework (TUF): the metadata of a
//! repository per tenant and product, built and signed with `tough`'s schema
//! (so that any TUF client verifies it), the keys that sign it, and the sealing
//! of those keys at rest.
//!
//! Everything here is plain data and pure functions of what it is given (the
//! time included): where metadata is stored, when it is refreshed and who may
//! ask for it is the application layer's business.
//!
//! - [`keys`]: Ed25519 signing keys (PKCS#8), their TUF public form and key ids.
//! - [`metadata`]: building, signing and verifying root, targets, snapshot and
//!   timestamp metadata; the checks a new root must pass (TUF §5.3).
//! - [`seal`]: authenticated encryption of secrets at rest under a key-encryption key.

pub mod error;
pub mod keys;
pub mod metadata;
pub mod seal;

pub use error::{Error, Result};
pub use keys::SigningKey;
pub use seal::Sealer;
/// The TUF implementation this crate builds on, for clients that verify (the agent).
pub use tough;
