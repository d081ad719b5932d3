//! The one table of error codes every front door answers with, and the
//! application's error. Codes are stable: clients match on them. Each code has
//! a [`Kind`], which each front door maps to its own wire (the management
//! API to an HTTP status, the device API to hawkBit's error bodies).

use crate::store::StoreError;
use serde::Serialize;
use serde_json::Value;
use updraft_core::FieldError;

/// What sort of failure a code is, for front doors to map onto their wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request cannot be read or breaks a rule (HTTP 400).
    BadRequest,
    /// No valid credentials (401).
    Unauthenticated,
    /// The caller may not do this (403).
    Forbidden,
    /// No such resource (404).
    NotFound,
    /// The protocol's operation does not exist for this resource (405).
    NotSupported,
    /// The current state does not allow it (409).
    Conflict,
    /// Larger than allowed (413).
    TooLarge,
    /// A representation not accepted (415).
    UnsupportedFormat,
    /// Well-formed but refused as a whole (422).
    Unprocessable,
    /// Too many calls (429).
    RateLimited,
    /// A fault of ours (500).
    Internal,
    /// A backing service is down; retry (503).
    Unavailable,
}

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $kind:ident, $message:literal),)*) => {
        /// Every error code updraft answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            pub fn kind(self) -> Kind {
                match self { $(ErrorCode::$variant => Kind::$kind,)* }
            }

            /// The message used when the error has no more specific one.
            pub fn message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $message,)* }
            }
        }
    };
}

error_codes! {
    BadRequest => ("bad_request", BadRequest, "the request is malformed"),
    InvalidJson => ("invalid_json", BadRequest, "the body is not valid JSON of the expected shape"),
    ValidationFailed => ("validation_failed", BadRequest, "one or more fields are invalid"),
    InvalidFilter => ("invalid_filter", BadRequest, "the device filter is invalid; `details` says where and why"),
    Unauthorized => ("unauthorized", Unauthenticated, "a valid API key is required: `Authorization: Bearer <key>`"),
    Forbidden => ("forbidden", Forbidden, "this key's role may not do this"),
    NotFound => ("not_found", NotFound, "no such resource"),
    RouteNotFound => ("route_not_found", NotFound, "no such route"),
    MethodNotAllowed => ("method_not_allowed", NotSupported, "this route does not take this method"),
    Conflict => ("conflict", Conflict, "a resource with this identity already exists"),
    InUse => ("in_use", Conflict, "the resource is in use and cannot be changed this way"),
    JobState => ("job_state", Conflict, "the job is not in a state that allows this"),
    NoNextPhase => ("no_next_phase", Conflict, "the job has no phase after the open one (or no phases at all)"),
    FirmwareNotVerified => ("firmware_not_verified", Conflict, "the firmware needs verification: a verify job must succeed on it first"),
    PayloadTooLarge => ("payload_too_large", TooLarge, "the request body is larger than allowed"),
    UnsupportedMediaType => ("unsupported_media_type", UnsupportedFormat, "this content type is not accepted here"),
    ImportRejected => ("import_rejected", Unprocessable, "the batch was rejected; nothing was imported"),
    RateLimited => ("rate_limited", RateLimited, "too many requests; retry later"),
    Internal => ("internal", Internal, "an internal error occurred; it was logged"),
    Unavailable => ("unavailable", Unavailable, "a backing service is unavailable; retry later"),
    BlobUnavailable => ("blob_unavailable", Unavailable, "the file's bytes cannot be read from blob storage now (missing, cut short or unreachable); it was logged; retry later"),
    ServerAdminKey => ("server_admin_key", Conflict, "the server administrator's key cannot be deleted, downgraded or given an expiry; `updraft admin reset-key` (or a bootstrap token) replaces it"),
    LastAdminKey => ("last_admin_key", Conflict, "this is the tenant's last admin key that never expires; issue another one first"),
    TrustRootRefused => ("trust_root_refused", Unprocessable, "the root metadata was refused: not signed as TUF requires, or naming online keys updraft does not hold; `details` says why"),
    TrustNotInitialized => ("trust_not_initialized", Conflict, "the product has no TUF repository yet: `updraft trust init` creates its root"),
    IdempotencyKeyReused => ("idempotency_key_reused", Unprocessable, "this Idempotency-Key was used for a different request"),
    CodeSigningUntrustedChain => ("code_signing_untrusted_chain", Unprocessable, "the code-signing certificate chain cannot be read or does not lead to one of the tenant's trust anchors; nothing was stored"),
    CodeSigningBadSignature => ("code_signing_bad_signature", Unprocessable, "the signature does not verify over the file with the leaf certificate's key; nothing was stored"),
    MqttDisabled => ("mqtt_disabled", Conflict, "this server has no MQTT door: set mqtt.url to use it"),
    CodeSigningUnsupportedAlgorithm => ("code_signing_unsupported_algorithm", Unprocessable, "the signature or hash algorithm is not supported (ECDSA-P256, Ed25519 or RSA-PSS over SHA-256), or the leaf's key is not of that algorithm; nothing was stored"),
}

/// A refusal or failure of a use case, with its stable code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.code())]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// What exactly was wrong (field errors, filter problems, per-line import errors).
    pub details: Option<Value>,
    /// Seconds after which to retry, for `rate_limited`.
    pub retry_after: Option<u64>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, retry_after: None }
    }

    pub fn of(code: ErrorCode) -> Self {
        Self::new(code, code.message())
    }

    pub fn with_details(mut self, details: impl Serialize) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} `{id}` not found"))
    }

    /// References to resources that do not exist: `not_found`, each named in
    /// `details` as a field error is.
    pub fn missing(references: Vec<FieldError>) -> Self {
        let message = match references.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} references not found", references.len()),
        };
        Self::new(ErrorCode::NotFound, message).with_details(references)
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Self::new(ErrorCode::ValidationFailed, message).with_details(errors)
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(context, error = %e, "internal error");
        Self::of(ErrorCode::Internal)
    }
}

impl From<updraft_core::Error> for Error {
    fn from(e: updraft_core::Error) -> Self {
        match e {
            updraft_core::Error::Invalid(errors) => Error::invalid(errors),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id } => Error::not_found(what, &id),
            StoreError::Conflict { what, id } => {
                Error::new(ErrorCode::Conflict, format!("{what} `{id}` already exists"))
            }
            StoreError::InUse { what, id, by } => {
                Error::new(ErrorCode::InUse, format!("{what} `{id}` is in use by {by}"))
            }
            StoreError::Invalid(e) => e.into(),
            StoreError::Missing(references) => Error::missing(references),
            StoreError::Backend(message) => {
                tracing::error!(error = %message, "store error");
                Error::of(ErrorCode::Unavailable)
            }
        }
    }
}

impl From<updraft_core::KeyRefusal> for Error {
    fn from(e: updraft_core::KeyRefusal) -> Self {
        match e {
            updraft_core::KeyRefusal::ServerAdmin => Error::of(ErrorCode::ServerAdminKey),
            updraft_core::KeyRefusal::LastAdmin => Error::of(ErrorCode::LastAdminKey),
        }
    }
}

impl From<updraft_blob::BlobError> for Error {
    fn from(e: updraft_blob::BlobError) -> Self {
        match e {
            updraft_blob::BlobError::NotFound(key) => Error::not_found("file", &key),
            other => Error::internal("blob storage", other),
        }
    }
}

impl Error {
    /// Reading the bytes of a recorded file failed (the blob store lacks
    /// them, holds them cut short, or cannot be reached): 503
    /// `blob_unavailable`, logged and counted. A key refused is ours to fix (500).
    pub fn blob_unreadable(e: updraft_blob::BlobError) -> Self {
        if matches!(e, updraft_blob::BlobError::InvalidKey(_)) {
            return Error::internal("blob storage", e);
        }
        tracing::error!(error = %e, "firmware bytes unreadable");
        metrics::counter!(crate::metrics::BLOB_FAILURES).increment(1);
        Error::of(ErrorCode::BlobUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            assert!(c.code().chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
        }
    }
}
