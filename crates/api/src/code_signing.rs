//! Code signing: the tenant's trust anchors (CA certificates code-signing
//! chains must end in), and seed 002's `codeSigning` of an uploaded file
//! (AWS IoT `CreateOTAUpdate`'s names, so its requests carry over).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use updraft_core::{CodeSigning, SigningProfile, TrustAnchor};

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrustAnchorIn {
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// One CA certificate, PEM.
    pub certificate: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustAnchorOut {
    pub id: String,
    pub name: Option<String>,
    /// The certificate, PEM.
    pub certificate: String,
    /// SHA-256 of the certificate's DER, hex.
    pub fingerprint: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl From<TrustAnchor> for TrustAnchorOut {
    fn from(a: TrustAnchor) -> Self {
        TrustAnchorOut {
            id: a.id,
            name: a.name,
            certificate: a.certificate,
            fingerprint: a.fingerprint,
            created_at: a.created_at,
        }
    }
}

/// Seed 002's `codeSigning` of one file (AWS IoT `CodeSigning`): the
/// signature made elsewhere (`customCodeSigning`), or one updraft makes with
/// a signing profile (`startSigningJobParameter`).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CodeSigningIn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_code_signing: Option<CustomCodeSigningIn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_signing_job_parameter: Option<StartSigningJobParameterIn>,
    /// AWS Signer's job id: not supported (answers `code_signing_unsupported_algorithm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_signer_job_id: Option<String>,
}

/// AWS IoT's `StartSigningJobParameter`: sign with one of the tenant's signing profiles.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StartSigningJobParameterIn {
    pub signing_profile_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_profile_parameter: Option<SigningProfileParameterIn>,
    /// AWS's S3 destination of the signed file: accepted and ignored (updraft keeps the signature with the file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<serde_json::Value>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SigningProfileParameterIn {
    /// Accepted and ignored: the profile holds its certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<String>,
    /// What the device calls the certificate (kept as the signature's `certificate_name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_path_on_device: Option<String>,
    /// Accepted and ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// AWS IoT's `CustomCodeSigning`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomCodeSigningIn {
    pub certificate_chain: CertificateChainIn,
    /// `SHA256` or `SHA-256` (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
    pub signature: SignatureIn,
    /// `ECDSA` (P-256), `Ed25519` or `RSA` (RSA-PSS); read leniently.
    pub signature_algorithm: String,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateChainIn {
    /// What the device calls the certificate (a path on the device, for FreeRTOS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_name: Option<String>,
    /// The chain, PEM, leaf first.
    pub inline_document: String,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignatureIn {
    /// The signature, base64.
    pub inline_document: String,
}

/// A signed file's signature, as checked and kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeSigningOut {
    /// `ECDSA-P256`, `Ed25519` or `RSA-PSS`.
    pub signature_algorithm: String,
    /// `SHA-256`.
    pub hash_algorithm: String,
    /// The certificate chain, PEM, leaf first.
    pub certificate_chain: String,
    pub certificate_name: Option<String>,
    /// The signature, base64.
    pub signature: String,
    /// The id of the trust anchor the chain was verified to.
    pub trust_anchor: String,
    /// The signing profile updraft signed with, when it signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_profile: Option<String>,
}

impl From<CodeSigning> for CodeSigningOut {
    fn from(c: CodeSigning) -> Self {
        CodeSigningOut {
            signature_algorithm: c.signature_algorithm.as_str().to_owned(),
            hash_algorithm: c.hash_algorithm,
            certificate_chain: c.certificate_chain,
            certificate_name: c.certificate_name,
            signature: c.signature,
            trust_anchor: c.trust_anchor,
            signing_profile: c.signing_profile,
        }
    }
}

/// A signing profile to import: a private key and its certificate chain.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SigningProfileIn {
    /// Unique in the tenant: what an upload's `signingProfileName` names.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,128}$"))]
    pub name: String,
    /// PKCS#8 private key, PEM (`-----BEGIN PRIVATE KEY-----`): ECDSA P-256, Ed25519 or RSA.
    /// Sealed at rest and never answered.
    pub private_key: String,
    /// PEM, leaf first; the leaf's key must be the private key's, the chain must end in a trust anchor.
    pub certificate_chain: String,
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// A signing profile as answered: never its private key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningProfileOut {
    pub name: String,
    pub platform: Option<String>,
    /// `ECDSA-P256`, `Ed25519` or `RSA-PSS`: the key's.
    pub signature_algorithm: String,
    pub certificate_chain: String,
    /// The trust anchor the chain was verified to when imported.
    pub trust_anchor: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl From<SigningProfile> for SigningProfileOut {
    fn from(p: SigningProfile) -> Self {
        SigningProfileOut {
            name: p.name,
            platform: p.platform,
            signature_algorithm: p.signature_algorithm.as_str().to_owned(),
            certificate_chain: p.certificate_chain,
            trust_anchor: p.trust_anchor,
            created_at: p.created_at,
        }
    }
}
