//! Signing keys: Ed25519 by default (what every TUF client verifies), or an
//! ECDSA P-256 or RSA key an operator brings, as PKCS#8.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use tough::schema::key::Key;
use tough::sign::{Sign, parse_keypair};

use crate::error::{Error, Result};

/// A private key that signs TUF metadata. Its bytes are never printed.
pub struct SigningKey {
    pkcs8: Vec<u8>,
    signer: Box<dyn Sign>,
    public: Key,
    id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random Ed25519 key.
    pub fn generate() -> SigningKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("the system's random source works");
        SigningKey::from_pkcs8(doc.as_ref()).expect("a generated key parses")
    }

    /// A key from its PKCS#8 form: DER (Ed25519, ECDSA P-256) or PEM (those and RSA).
    pub fn from_pkcs8(bytes: &[u8]) -> Result<SigningKey> {
        let der;
        let bytes = match std::str::from_utf8(bytes).ok().filter(|t| t.contains("-----BEGIN PRIVATE KEY-----")) {
            // tough reads Ed25519 and ECDSA keys as DER and RSA keys as PEM: give it DER where it can.
            Some(text) => {
                der = pem_body(text)?;
                if parse_keypair(&der).is_ok() { der.as_slice() } else { bytes }
            }
            None => bytes,
        };
        let signer = parse_keypair(bytes).map_err(|e| Error::Key(e.to_string()))?;
        let public = signer.tuf_key();
        let id = key_id(&public)?;
        Ok(SigningKey { pkcs8: bytes.to_vec(), signer: Box::new(signer), public, id })
    }

    /// The key in the form [`SigningKey::from_pkcs8`] reads back (to be sealed or written to a file).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The private key as a PEM `PRIVATE KEY` (PKCS#8) file, for an operator to keep offline.
    pub fn to_pem(&self) -> String {
        if std::str::from_utf8(&self.pkcs8).is_ok_and(|t| t.contains("-----BEGIN")) {
            return String::from_utf8_lossy(&self.pkcs8).into_owned();
        }
        pem::encode(&pem::Pem::new("PRIVATE KEY", self.pkcs8.clone()))
    }

    /// The public key as TUF metadata lists it.
    pub fn public(&self) -> &Key {
        &self.public
    }

    /// The TUF key id (hex SHA-256 of the public key's canonical JSON).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Signs `message`.
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.signer.sign(message, &SystemRandom::new()).await.map_err(|e| Error::Sign(e.to_string()))
    }
}

/// The TUF key id of a public key.
pub fn key_id(key: &Key) -> Result<String> {
    key.key_id().map(|id| hex::encode(id.as_ref() as &[u8])).map_err(|e| Error::Key(e.to_string()))
}

fn pem_body(text: &str) -> Result<Vec<u8>> {
    pem::parse(text).map(|p| p.into_contents()).map_err(|e| Error::Key(format!("bad PEM: {e}")))
}
