//! Code signing (seed 002's `codeSigning`): the trust anchors of a tenant,
//! and the checks a signed upload passes before it is accepted — its
//! certificate chain up to one of the tenant's anchors (rustls-webpki, with
//! the code-signing extended key usage when the leaf names any), then its
//! signature with the leaf's key: ECDSA P-256 and RSA-PSS over the SHA-256
//! the blob writer computed while the file streamed in (aws-lc-rs), Ed25519
//! (pure EdDSA, over the whole file) by reading the stored file back through
//! a streaming verifier (ed25519-dalek).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::Timestamp;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use updraft_core::{Access, FieldError, SignatureAlgorithm, TrustAnchor, validate};

use crate::actor::new_id;
use crate::error::{Error, ErrorCode, Result};
use crate::text::non_empty;
use crate::{Actor, App};

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER contents.
const CODE_SIGNING_EKU: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// An Ed25519 SubjectPublicKeyInfo is this prefix and the 32-byte key (RFC 8410).
const ED25519_SPKI_PREFIX: &[u8] = &[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The most certificates a chain may hold, anchors at most.
const MAX_CHAIN: usize = 8;
const MAX_ANCHORS: usize = 100;

/// Why a signed file is refused: the code and what to tell the uploader.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub(crate) fn bad_signature(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::CodeSigningBadSignature, m)
    }

    /// The refusal as the use case's error, naming the field it is about.
    pub(crate) fn at(self, field: &str) -> Error {
        let message = format!("{field}: {}", self.message);
        Error::new(self.code, message).with_details(vec![FieldError::new(field, self.message)])
    }
}

/// The certificates of a PEM text, in order.
fn certificates(pem: &str) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// A chain that reached one of the tenant's anchors: which, and the leaf's key.
pub(crate) struct VerifiedChain {
    pub trust_anchor: String,
    /// The leaf's SubjectPublicKeyInfo, DER.
    pub leaf_key: Vec<u8>,
}

/// Checks a chain (PEM, leaf first) against the tenant's anchors at `now`.
pub(crate) fn verify_chain(
    chain_pem: &str,
    anchors: &[TrustAnchor],
    now: Timestamp,
) -> std::result::Result<VerifiedChain, Refusal> {
    let untrusted = |m: String| Refusal::new(ErrorCode::CodeSigningUntrustedChain, m);
    let certs = certificates(chain_pem).map_err(|m| untrusted(format!("the certificate chain {m}")))?;
    if certs.len() > MAX_CHAIN {
        return Err(untrusted(format!("the certificate chain holds more than {MAX_CHAIN} certificates")));
    }
    if anchors.is_empty() {
        return Err(untrusted(
            "the tenant has no trust anchors: add the CA certificate the chain ends in first".into(),
        ));
    }
    let anchor_ders: Vec<(String, CertificateDer<'static>)> = anchors
        .iter()
        .filter_map(|a| certificates(&a.certificate).ok()?.into_iter().next().map(|c| (a.id.clone(), c)))
        .collect();
    let trust: Vec<(String, rustls_pki_types::TrustAnchor<'_>)> = anchor_ders
        .iter()
        .filter_map(|(id, der)| webpki::anchor_from_trusted_cert(der).ok().map(|t| (id.clone(), t)))
        .collect();
    let roots: Vec<rustls_pki_types::TrustAnchor<'_>> = trust.iter().map(|(_, t)| t.clone()).collect();
    let leaf = webpki::EndEntityCert::try_from(&certs[0])
        .map_err(|e| untrusted(format!("the leaf certificate cannot be read: {e}")))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.as_second().max(0) as u64));
    let path = leaf
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &roots,
            &certs[1..],
            time,
            webpki::KeyUsage::required_if_present(CODE_SIGNING_EKU),
            None,
            None,
        )
        .map_err(|e| untrusted(format!("the certificate chain does not lead to a trust anchor of the tenant: {e}")))?;
    let reached = path.anchor();
    let trust_anchor = trust
        .iter()
        .find(|(_, t)| t.subject == reached.subject && t.subject_public_key_info == reached.subject_public_key_info)
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    Ok(VerifiedChain { trust_anchor, leaf_key: leaf.subject_public_key_info().as_ref().to_vec() })
}

fn bad_signature(m: impl Into<String>) -> Refusal {
    Refusal::bad_signature(m)
}

/// Verifies an ECDSA P-256 or RSA-PSS signature over a file whose SHA-256 is
/// `sha256_hex`; Ed25519 is verified over the bytes ([`ed25519_verifier`]).
pub(crate) fn verify_digest(
    algorithm: SignatureAlgorithm,
    leaf_key: &[u8],
    sha256_hex: &str,
    signature: &[u8],
) -> std::result::Result<(), Refusal> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
    let verification: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match algorithm {
        SignatureAlgorithm::EcdsaP256 => &ECDSA_P256_SHA256_ASN1,
        SignatureAlgorithm::RsaPss => &RSA_PSS_2048_8192_SHA256,
        SignatureAlgorithm::Ed25519 => return Err(bad_signature("Ed25519 is verified over the file's bytes")),
    };
    let digest = hex::decode(sha256_hex)
        .ok()
        .and_then(|d| aws_lc_rs::digest::Digest::import_less_safe(&d, &aws_lc_rs::digest::SHA256).ok())
        .ok_or_else(|| bad_signature("the file's SHA-256 is unknown"))?;
    let key = UnparsedPublicKey::new(verification, leaf_key);
    if key.parse().is_err() {
        return Err(Refusal::new(
            ErrorCode::CodeSigningUnsupportedAlgorithm,
            format!("the leaf certificate's key is not a {} key", key_kind(algorithm)),
        ));
    }
    let verified = key.verify_digest(&digest, signature).or_else(|e| match algorithm {
        // AWS Signer and PKCS#11 tokens also write ECDSA signatures as r || s.
        SignatureAlgorithm::EcdsaP256 if signature.len() == 64 => {
            UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED, leaf_key)
                .verify_digest(&digest, signature)
        }
        _ => Err(e),
    });
    verified.map_err(|_| bad_signature(format!("the {} signature does not verify over the file", algorithm.as_str())))
}

fn key_kind(algorithm: SignatureAlgorithm) -> &'static str {
    match algorithm {
        SignatureAlgorithm::EcdsaP256 => "P-256 ECDSA",
        SignatureAlgorithm::Ed25519 => "Ed25519",
        SignatureAlgorithm::RsaPss => "RSA (2048 to 8192 bits)",
    }
}

/// A streaming Ed25519 verifier of a signature by the leaf's key: fed the
/// file's bytes in order, then finished.
pub(crate) fn ed25519_verifier(
    leaf_key: &[u8],
    signature: &[u8],
) -> std::result::Result<ed25519_dalek::StreamVerifier, Refusal> {
    let raw: [u8; 32] =
        leaf_key.strip_prefix(ED25519_SPKI_PREFIX).and_then(|k| k.try_into().ok()).ok_or_else(|| {
            Refusal::new(ErrorCode::CodeSigningUnsupportedAlgorithm, "the leaf certificate's key is not an Ed25519 key")
        })?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
        .map_err(|_| bad_signature("the leaf certificate's Ed25519 key is not a valid point"))?;
    let signature = ed25519_dalek::Signature::from_slice(signature)
        .map_err(|_| bad_signature("an Ed25519 signature is 64 bytes"))?;
    key.verify_stream(&signature).map_err(|_| bad_signature("the Ed25519 signature does not verify over the file"))
}

/// Reads a base64 signature (standard alphabet; padding and whitespace tolerated).
pub(crate) fn decode_signature(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let unpadded = compact.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded).ok().filter(|b| !b.is_empty())
}

/// The canonical base64 of signature bytes (what is stored and delivered).
pub(crate) fn encode_signature(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

impl App {
    /// Adds a CA certificate (PEM, one certificate) to the tenant's trust anchors.
    pub async fn add_trust_anchor(
        &self,
        actor: &Actor,
        name: Option<String>,
        certificate: &str,
    ) -> Result<TrustAnchor> {
        actor.require(Access::ManageKeys)?;
        let name = non_empty(name);
        let mut errors = Vec::new();
        if let Some(n) = &name {
            validate::text("name", n, 128, &mut errors);
        }
        let der = match certificates(certificate) {
            Ok(mut certs) if certs.len() == 1 => certs.pop(),
            Ok(certs) => {
                errors.push(FieldError::new("certificate", format!("must hold one certificate, not {}", certs.len())));
                None
            }
            Err(m) => {
                errors.push(FieldError::new("certificate", m));
                None
            }
        };
        if let Some(der) = &der
            && let Err(e) = webpki::anchor_from_trusted_cert(der)
        {
            errors.push(FieldError::new("certificate", format!("is not a certificate updraft can read: {e}")));
        }
        let Some(der) = der.filter(|_| errors.is_empty()) else {
            return Err(Error::invalid(errors));
        };
        let tenant = actor.tenant();
        if self.store.list_trust_anchors(tenant).await?.len() >= MAX_ANCHORS {
            return Err(Error::field("certificate", format!("a tenant has at most {MAX_ANCHORS} trust anchors")));
        }
        let anchor = TrustAnchor {
            id: new_id("ta_"),
            name,
            certificate: to_pem(&der),
            fingerprint: fingerprint(&der),
            created_at: self.now(),
        };
        self.store.create_trust_anchor(tenant, &anchor).await?;
        tracing::info!(trust_anchor = %anchor.id, fingerprint = %anchor.fingerprint, "trust anchor added");
        Ok(anchor)
    }

    /// The tenant's trust anchors, oldest first.
    pub async fn list_trust_anchors(&self, actor: &Actor) -> Result<Vec<TrustAnchor>> {
        actor.require(Access::Read)?;
        Ok(self.store.list_trust_anchors(actor.tenant()).await?)
    }

    pub async fn get_trust_anchor(&self, actor: &Actor, id: &str) -> Result<TrustAnchor> {
        actor.require(Access::Read)?;
        self.store
            .list_trust_anchors(actor.tenant())
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| Error::not_found("trust anchor", id))
    }

    /// Removes a trust anchor: uploads signed under it are refused from now
    /// on; images already accepted keep their signatures.
    pub async fn delete_trust_anchor(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Access::ManageKeys)?;
        self.store.delete_trust_anchor(actor.tenant(), id).await?;
        tracing::info!(trust_anchor = %id, "trust anchor deleted");
        Ok(())
    }
}

/// A certificate's DER as PEM, 64 characters a line.
fn to_pem(der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// How the upload asks for a file to be signed (seed 002's `codeSigning`).
#[derive(Debug, Clone)]
pub enum FileSigning {
    /// `customCodeSigning`: signed elsewhere; updraft checks it.
    Custom(SignatureClaim),
    /// `startSigningJobParameter`: updraft signs with the tenant's profile of this name.
    Profile { name: String, certificate_name: Option<String> },
    /// A way of signing updraft does not offer (named, e.g. `awsSignerJobId`;
    /// empty when none is given).
    Unsupported(String),
}

/// A file's signature as the upload claims it (`customCodeSigning`).
#[derive(Debug, Clone, Default)]
pub struct SignatureClaim {
    pub signature_algorithm: String,
    pub hash_algorithm: Option<String>,
    pub certificate_chain: String,
    pub certificate_name: Option<String>,
    /// base64.
    pub signature: String,
}

/// A claim read: what is left to check once the file's bytes are known.
pub(crate) struct ReadClaim {
    pub algorithm: SignatureAlgorithm,
    pub signature: Vec<u8>,
}

/// Reads a claim's fields (`field` is its place in the upload); shape errors are
/// validation errors, an algorithm updraft does not verify is a refusal.
pub(crate) fn read_claim(
    field: &str,
    signing: &FileSigning,
    errors: &mut Vec<FieldError>,
) -> std::result::Result<Option<ReadClaim>, Error> {
    let unsupported = |f: &str, m: String| Refusal::new(ErrorCode::CodeSigningUnsupportedAlgorithm, m).at(f);
    let claim = match signing {
        FileSigning::Custom(c) => c,
        FileSigning::Profile { .. } => return Ok(None),
        FileSigning::Unsupported(what) if what.is_empty() => {
            errors.push(FieldError::new(field, "give `customCodeSigning`"));
            return Ok(None);
        }
        FileSigning::Unsupported(what) => {
            return Err(unsupported(
                &format!("{field}.{what}"),
                format!("`{what}` is not supported: give `customCodeSigning`"),
            ));
        }
    };
    let custom = format!("{field}.customCodeSigning");
    let algorithm = SignatureAlgorithm::parse(&claim.signature_algorithm).ok_or_else(|| {
        unsupported(
            &format!("{custom}.signatureAlgorithm"),
            format!("`{}` is not supported: ECDSA (P-256), Ed25519 or RSA (RSA-PSS)", claim.signature_algorithm),
        )
    })?;
    if let Some(h) = &claim.hash_algorithm
        && !updraft_core::signing::is_sha256(h)
    {
        return Err(unsupported(&format!("{custom}.hashAlgorithm"), format!("`{h}` is not supported: SHA256")));
    }
    if let Some(n) = &claim.certificate_name {
        validate::text(&format!("{custom}.certificateChain.certificateName"), n, 1024, errors);
    }
    if claim.certificate_chain.trim().is_empty() {
        errors.push(FieldError::new(
            format!("{custom}.certificateChain.inlineDocument"),
            "required: the PEM chain, leaf first",
        ));
    }
    let signature = decode_signature(&claim.signature);
    if signature.is_none() {
        errors.push(FieldError::new(format!("{custom}.signature.inlineDocument"), "must be the signature in base64"));
    }
    Ok(signature.map(|signature| ReadClaim { algorithm, signature }))
}
