//! What can go wrong building, signing, verifying or unsealing.

/// Errors of this crate. Each names what was wrong, in words fit for an operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A private key that is not an Ed25519, ECDSA P-256 or RSA key in PKCS#8.
    #[error("not a usable private key: {0}")]
    Key(String),
    /// Metadata that does not parse as the TUF role it should be.
    #[error("not valid {role} metadata: {reason}")]
    Malformed { role: &'static str, reason: String },
    /// Metadata that does not follow the rules (versions, keys, thresholds, expiry).
    #[error("{0}")]
    Refused(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// A sealed secret that this key-encryption key cannot open (wrong key, or changed).
    #[error("a sealed secret could not be opened: {0}")]
    Unseal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
