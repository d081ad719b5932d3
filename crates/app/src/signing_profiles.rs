//! Signing profiles (seed 002's `startSigningJobParameter.signingProfileName`):
//! a private key and its certificate chain that updraft signs uploads with.
//! The key must match the chain's leaf and the chain must end in one of the
//! tenant's trust anchors; the key is sealed under the key-encryption key
//! (`TrustCrypto::seal`) before it reaches the store and is never answered.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PSS_SHA256};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use updraft_core::{Access, FieldError, SignatureAlgorithm, SigningProfile, validate};

use crate::code_signing::{self, Refusal};
use crate::error::{Error, Result};
use crate::text::non_empty;
use crate::{Actor, App};

/// A profile's private key, opened.
pub(crate) enum ProfileKey {
    Ecdsa(EcdsaKeyPair),
    /// The 32-byte seed (RFC 8032's private key).
    Ed25519([u8; 32]),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

impl ProfileKey {
    /// Reads a PKCS#8 private key of an algorithm updraft signs with.
    fn read(pkcs8: &[u8]) -> Option<ProfileKey> {
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8) {
            return Some(ProfileKey::Ecdsa(k));
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
            use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
            let seed: Curve25519SeedBin<'_> = k.seed().ok()?.as_be_bytes().ok()?;
            return Some(ProfileKey::Ed25519(seed.as_ref().try_into().ok()?));
        }
        aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).ok().map(ProfileKey::Rsa)
    }

    pub(crate) fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            ProfileKey::Ecdsa(_) => SignatureAlgorithm::EcdsaP256,
            ProfileKey::Ed25519(_) => SignatureAlgorithm::Ed25519,
            ProfileKey::Rsa(_) => SignatureAlgorithm::RsaPss,
        }
    }

    /// Signs a SHA-256 digest (ECDSA P-256, DER; RSA-PSS). `None` for Ed25519,
    /// which signs the message itself ([`ProfileKey::sign_ed25519`]).
    pub(crate) fn sign_digest(&self, digest: &Digest) -> Option<Vec<u8>> {
        match self {
            ProfileKey::Ecdsa(k) => k.sign_digest(digest).ok().map(|s| s.as_ref().to_vec()),
            ProfileKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign_digest(&RSA_PSS_SHA256, digest, &mut sig).ok().map(|()| sig)
            }
            ProfileKey::Ed25519(_) => None,
        }
    }

    /// Signs a message given as a function that feeds it to a hasher (called
    /// twice, the same bytes each time: Ed25519 hashes the message twice).
    pub(crate) fn sign_ed25519(
        seed: &[u8; 32],
        message: impl Fn(&mut ed25519_dalek::Sha512) -> std::result::Result<(), ed25519_dalek::SignatureError>,
    ) -> Option<Vec<u8>> {
        let signing = ed25519_dalek::SigningKey::from_bytes(seed);
        let expanded = ed25519_dalek::hazmat::ExpandedSecretKey::from(seed);
        ed25519_dalek::hazmat::raw_sign_byupdate::<ed25519_dalek::Sha512, _>(
            &expanded,
            message,
            &signing.verifying_key(),
        )
        .ok()
        .map(|s| s.to_bytes().to_vec())
    }
}

/// The bytes a profile's key signs when imported, to show it is the leaf's.
const POSSESSION: &[u8] = b"updraft signing profile: the key matches its certificate";

/// Whether `key` made a signature the leaf's key verifies.
fn matches_leaf(key: &ProfileKey, leaf_key: &[u8]) -> bool {
    let algorithm = key.algorithm();
    match key {
        ProfileKey::Ed25519(seed) => {
            let Some(sig) = ProfileKey::sign_ed25519(seed, |h| {
                ed25519_dalek::Digest::update(h, POSSESSION);
                Ok(())
            }) else {
                return false;
            };
            code_signing::ed25519_verifier(leaf_key, &sig).is_ok_and(|mut v| {
                v.update(POSSESSION);
                v.finalize_and_verify().is_ok()
            })
        }
        _ => {
            let d = digest::digest(&digest::SHA256, POSSESSION);
            key.sign_digest(&d).is_some_and(|sig| {
                code_signing::verify_digest(algorithm, leaf_key, &hex::encode(d.as_ref()), &sig).is_ok()
            })
        }
    }
}

/// What the key is sealed for: its tenant and name, so a sealed key copied onto another row does not open.
fn context(tenant: &str, name: &str) -> String {
    format!("signing_profile:{tenant}:{name}")
}

impl App {
    /// Imports a signing profile: a PKCS#8 private key (PEM) and its
    /// certificate chain (PEM, leaf first), which must end in one of the
    /// tenant's trust anchors.
    pub async fn import_signing_profile(
        &self,
        actor: &Actor,
        name: &str,
        private_key: &str,
        certificate_chain: &str,
        platform: Option<String>,
    ) -> Result<SigningProfile> {
        actor.require(Access::ManageKeys)?;
        let tenant = actor.tenant();
        let platform = non_empty(platform);
        let mut errors = Vec::new();
        validate::key("name", name, &mut errors);
        if let Some(p) = &platform {
            validate::text("platform", p, 128, &mut errors);
        }
        let pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(private_key.as_bytes()).ok();
        let key = pkcs8.as_ref().and_then(|k| ProfileKey::read(k.secret_pkcs8_der()));
        if key.is_none() {
            errors.push(FieldError::new(
                "private_key",
                "must be a PKCS#8 private key (PEM `PRIVATE KEY`) of ECDSA P-256, Ed25519 or RSA (2048 to 8192 bits)",
            ));
        }
        let (Some(key), Some(pkcs8), true) = (key, pkcs8, errors.is_empty()) else {
            return Err(Error::invalid(errors));
        };
        let anchors = self.store.list_trust_anchors(tenant).await?;
        let chain = code_signing::verify_chain(certificate_chain, &anchors, self.now())
            .map_err(|r| r.at("certificate_chain"))?;
        if !matches_leaf(&key, &chain.leaf_key) {
            return Err(Error::field(
                "private_key",
                "does not match the certificate chain's leaf (its first certificate)",
            ));
        }
        let profile = SigningProfile {
            name: name.to_owned(),
            platform,
            signature_algorithm: key.algorithm(),
            certificate_chain: certificate_chain.trim().to_owned() + "\n",
            trust_anchor: chain.trust_anchor,
            created_at: self.now(),
        };
        let sealed = self.crypto.seal(&context(tenant, name), pkcs8.secret_pkcs8_der());
        self.store.create_signing_profile(tenant, &profile, &sealed).await?;
        tracing::info!(signing_profile = %profile.name, algorithm = profile.signature_algorithm.as_str(), "signing profile imported");
        Ok(profile)
    }

    pub async fn list_signing_profiles(&self, actor: &Actor) -> Result<Vec<SigningProfile>> {
        actor.require(Access::Read)?;
        Ok(self.store.list_signing_profiles(actor.tenant()).await?)
    }

    pub async fn get_signing_profile(&self, actor: &Actor, name: &str) -> Result<SigningProfile> {
        actor.require(Access::Read)?;
        let found = self.store.signing_profile(actor.tenant(), name).await?;
        found.map(|(p, _)| p).ok_or_else(|| Error::not_found("signing profile", name))
    }

    pub async fn delete_signing_profile(&self, actor: &Actor, name: &str) -> Result<()> {
        actor.require(Access::ManageKeys)?;
        self.store.delete_signing_profile(actor.tenant(), name).await?;
        tracing::info!(signing_profile = %name, "signing profile deleted");
        Ok(())
    }

    /// A profile and its key, opened, for an upload to be signed with;
    /// `None` when the tenant has no such profile.
    pub(crate) async fn signing_key(&self, tenant: &str, name: &str) -> Result<Option<(SigningProfile, ProfileKey)>> {
        let Some((profile, sealed)) = self.store.signing_profile(tenant, name).await? else {
            return Ok(None);
        };
        let pkcs8 = self.crypto.open(&context(tenant, name), &sealed).map_err(|e| {
            Error::internal(
                "opening a signing profile's key (is the key-encryption key the one it was sealed under?)",
                e,
            )
        })?;
        let key = ProfileKey::read(&pkcs8)
            .filter(|k| k.algorithm() == profile.signature_algorithm)
            .ok_or_else(|| Error::internal("reading a signing profile's key", name))?;
        Ok(Some((profile, key)))
    }
}

/// A profile's signature that did not verify with its own leaf: a fault of ours, not the uploader's.
pub(crate) fn unverified(r: Refusal) -> Error {
    Error::internal("a signing profile's signature does not verify", r.message)
}
