//! What the binary puts together, as a library: the backends it opens for a
//! configuration ([`backends`]), and the same wiring as a real server on port
//! 0 for tests ([`testing`]). Only this crate chooses store backends: the
//! HTTP front door (`updraft-server`) and the use cases (`updraft-app`) see
//! only the store's traits.

pub mod backends;
pub mod crypto;
pub mod testing;
