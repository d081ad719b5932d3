//! Secrets at rest (the online roles' private keys, signing profiles' keys):
//! AES-256-GCM under a key-encryption key (KEK) that comes from the
//! configuration, never from the database. A sealed value names the KEK by a
//! short id, and carries the context it was sealed for as associated data, so
//! that a sealed key copied onto another row does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// The length of a key-encryption key, in bytes.
pub const KEK_LEN: usize = 32;

/// Seals and opens secrets under one key-encryption key (and opens those of
/// earlier keys given as `previous`, for rotating the KEK).
pub struct Sealer {
    id: String,
    key: LessSafeKey,
    /// The key of [`Sealer::mac`], derived from the KEK.
    mac_key: aws_lc_rs::hmac::Key,
    previous: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("id", &self.id).finish_non_exhaustive()
    }
}

fn key_id(kek: &[u8]) -> String {
    hex::encode(&digest::digest(&digest::SHA256, kek).as_ref()[..4])
}

fn aead_key(kek: &[u8]) -> Result<LessSafeKey> {
    if kek.len() != KEK_LEN {
        return Err(Error::Unseal(format!("a key-encryption key has {KEK_LEN} bytes, this one {}", kek.len())));
    }
    let key = UnboundKey::new(&AES_256_GCM, kek).map_err(|_| Error::Unseal("unusable key-encryption key".into()))?;
    Ok(LessSafeKey::new(key))
}

/// Reads a key-encryption key written as 64 hex digits (what [`generate_kek`] gives).
pub fn parse_kek(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let bytes =
        hex::decode(text).map_err(|_| Error::Unseal(format!("a key-encryption key is {} hex digits", KEK_LEN * 2)))?;
    if bytes.len() != KEK_LEN {
        return Err(Error::Unseal(format!("a key-encryption key is {} hex digits", KEK_LEN * 2)));
    }
    Ok(bytes)
}

/// A new random key-encryption key, as 64 hex digits.
pub fn generate_kek() -> String {
    let mut kek = [0u8; KEK_LEN];
    SystemRandom::new().fill(&mut kek).expect("the system's random source works");
    hex::encode(kek)
}

impl Sealer {
    /// A sealer under `kek` (32 bytes) that also opens what `previous` keys sealed.
    pub fn new(kek: &[u8], previous: &[Vec<u8>]) -> Result<Sealer> {
        let previous = previous.iter().map(|k| Ok((key_id(k), aead_key(k)?))).collect::<Result<Vec<_>>>()?;
        let derive = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, kek);
        let mac_key = aws_lc_rs::hmac::sign(&derive, b"updraft message authentication v1");
        let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, mac_key.as_ref());
        Ok(Sealer { id: key_id(kek), key: aead_key(kek)?, mac_key, previous })
    }

    /// The short id of the key this sealer seals under.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of `message` for `context` under a key derived from the KEK:
    /// what every replica sharing the KEK computes alike (signed download links).
    pub fn mac(&self, context: &str, message: &[u8]) -> [u8; 32] {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.mac_key);
        ctx.update(context.as_bytes());
        ctx.update(&[0]);
        ctx.update(message);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// `secret` sealed for `context`: `v1:<kek id>:<nonce hex>:<ciphertext and tag hex>`.
    pub fn seal(&self, context: &str, secret: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).expect("the system's random source works");
        let mut data = secret.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut data)
            .expect("sealing a short secret cannot fail");
        format!("v1:{}:{}:{}", self.id, hex::encode(nonce), hex::encode(data))
    }

    /// Opens what [`Sealer::seal`] gave for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>> {
        let mut parts = sealed.split(':');
        let (Some("v1"), Some(id), Some(nonce), Some(data), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Unseal("not a sealed value".into()));
        };
        let key = if id == self.id {
            &self.key
        } else {
            self.previous.iter().find(|(i, _)| i == id).map(|(_, k)| k).ok_or_else(|| {
                Error::Unseal(format!("sealed under key-encryption key {id}, which is not configured"))
            })?
        };
        let nonce: [u8; NONCE_LEN] =
            hex::decode(nonce).ok().and_then(|n| n.try_into().ok()).ok_or_else(|| Error::Unseal("bad nonce".into()))?;
        let mut data = hex::decode(data).map_err(|_| Error::Unseal("bad ciphertext".into()))?;
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| Error::Unseal("the ciphertext or its context does not match".into()))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let kek = parse_kek(&generate_kek()).unwrap();
        let sealer = Sealer::new(&kek, &[]).unwrap();
        let sealed = sealer.seal("tuf:t1:cam:timestamp", b"secret");
        assert!(!sealed.contains("secret"));
        assert_eq!(sealer.open("tuf:t1:cam:timestamp", &sealed).unwrap(), b"secret");
        assert!(sealer.open("tuf:t1:cam:targets", &sealed).is_err());
        let other = Sealer::new(&parse_kek(&generate_kek()).unwrap(), &[]).unwrap();
        assert!(other.open("tuf:t1:cam:timestamp", &sealed).is_err());
        // Rotated: the new key opens what the old one sealed when told of it.
        let rotated = Sealer::new(&parse_kek(&generate_kek()).unwrap(), &[kek]).unwrap();
        assert_eq!(rotated.open("tuf:t1:cam:timestamp", &sealed).unwrap(), b"secret");
        let mut flipped = sealed.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert!(sealer.open("tuf:t1:cam:timestamp", &flipped).is_err());
    }
}
