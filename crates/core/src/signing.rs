//! Code signing (seed 002's `codeSigning`): the certificate authorities a
//! tenant trusts, and the signature kept with a signed firmware file.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A CA certificate that code-signing chains of its tenant must end in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnchor {
    pub id: String,
    pub name: Option<String>,
    /// The certificate, PEM.
    pub certificate: String,
    /// SHA-256 of the certificate's DER, hex: how operators tell anchors apart.
    pub fingerprint: String,
    pub created_at: Timestamp,
}

/// The signature algorithms updraft verifies (and signs with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SignatureAlgorithm {
    /// ECDSA on P-256 over SHA-256: DER-encoded (what FreeRTOS OTA verifies), or the 64 bytes r || s.
    #[serde(rename = "ECDSA-P256")]
    EcdsaP256,
    /// Pure Ed25519 over the whole file.
    #[serde(rename = "Ed25519")]
    Ed25519,
    /// RSASSA-PSS over SHA-256 (MGF1 with SHA-256, 32-byte salt), keys of 2048 to 8192 bits.
    #[serde(rename = "RSA-PSS")]
    RsaPss,
}

impl SignatureAlgorithm {
    pub const ALL: [SignatureAlgorithm; 3] =
        [SignatureAlgorithm::EcdsaP256, SignatureAlgorithm::Ed25519, SignatureAlgorithm::RsaPss];

    /// The canonical name (what answers and DDI metadata carry).
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::EcdsaP256 => "ECDSA-P256",
            SignatureAlgorithm::Ed25519 => "Ed25519",
            SignatureAlgorithm::RsaPss => "RSA-PSS",
        }
    }

    /// Reads the names AWS IoT and its users write, leniently (case and
    /// separators ignored): `ECDSA`, `ECDSA-P256`, `Ed25519`, `RSA`, `RSA-PSS`…
    pub fn parse(s: &str) -> Option<SignatureAlgorithm> {
        let norm: String = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        match norm.as_str() {
            "ecdsa" | "ecdsap256" | "ecdsasha256" | "ecdsap256sha256" | "es256" | "p256" => {
                Some(SignatureAlgorithm::EcdsaP256)
            }
            "ed25519" | "eddsa" => Some(SignatureAlgorithm::Ed25519),
            "rsa" | "rsapss" | "rsapsssha256" | "ps256" => Some(SignatureAlgorithm::RsaPss),
            _ => None,
        }
    }
}

/// Reads a hash algorithm's name leniently; only SHA-256 is supported.
pub fn is_sha256(s: &str) -> bool {
    let norm: String = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    norm == "sha256"
}

/// How a firmware file is signed: checked when it was uploaded (or made by
/// updraft with a signing profile), kept with the file and delivered with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeSigning {
    pub signature_algorithm: SignatureAlgorithm,
    /// Always `SHA-256`.
    pub hash_algorithm: String,
    /// The certificate chain, PEM, leaf first (the anchor itself may be left out).
    pub certificate_chain: String,
    /// What the uploader called the certificate (AWS's `certificateName`, a path on the device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_name: Option<String>,
    /// The signature over the file, base64 (standard alphabet, padded).
    pub signature: String,
    /// The trust anchor the chain was verified to.
    pub trust_anchor: String,
    /// The signing profile updraft signed with, when it signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_profile: Option<String>,
}

/// A key updraft signs uploads with (seed 002's signing profile): its
/// certificate chain, verified to a trust anchor when imported. The private
/// key is kept sealed apart from this record and never leaves the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningProfile {
    /// Unique in its tenant; what `signingProfileName` names.
    pub name: String,
    /// What the profile is for (AWS's `platform`), free text.
    pub platform: Option<String>,
    pub signature_algorithm: SignatureAlgorithm,
    /// PEM, leaf first; the leaf's key is the profile's.
    pub certificate_chain: String,
    /// The trust anchor the chain was verified to when imported.
    pub trust_anchor: String,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_are_read_leniently() {
        for (s, a) in [
            ("ECDSA", SignatureAlgorithm::EcdsaP256),
            ("ecdsa-p256", SignatureAlgorithm::EcdsaP256),
            ("Ed25519", SignatureAlgorithm::Ed25519),
            ("RSA", SignatureAlgorithm::RsaPss),
            ("RSA-PSS", SignatureAlgorithm::RsaPss),
        ] {
            assert_eq!(SignatureAlgorithm::parse(s), Some(a), "{s}");
        }
        assert_eq!(SignatureAlgorithm::parse("DSA"), None);
        for a in SignatureAlgorithm::ALL {
            assert_eq!(SignatureAlgorithm::parse(a.as_str()), Some(a));
        }
        assert!(is_sha256("SHA256") && is_sha256("SHA-256") && is_sha256("sha-256") && !is_sha256("SHA1"));
    }
}
