//! The API's errors: one table of stable codes, each with its HTTP status and
//! a default message. Every error response has the same shape:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use updraft_core::FieldError;
use updraft_store::StoreError;

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:ident, $message:literal),)*) => {
        /// Every error code the API answers with. Codes are stable: clients may match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }

            /// The message used when the error has no more specific one.
            pub fn message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $message,)* }
            }
        }
    };
}

error_codes! {
    BadRequest => ("bad_request", BAD_REQUEST, "the request is malformed"),
    InvalidJson => ("invalid_json", BAD_REQUEST, "the body is not valid JSON of the expected shape"),
    ValidationFailed => ("validation_failed", BAD_REQUEST, "one or more fields are invalid"),
    InvalidFilter => ("invalid_filter", BAD_REQUEST, "the device filter is invalid; `details` says where and why"),
    Unauthorized => ("unauthorized", UNAUTHORIZED, "a valid API key is required: `Authorization: Bearer <key>`"),
    Forbidden => ("forbidden", FORBIDDEN, "this key's role may not do this"),
    NotFound => ("not_found", NOT_FOUND, "no such resource"),
    RouteNotFound => ("route_not_found", NOT_FOUND, "no such route"),
    MethodNotAllowed => ("method_not_allowed", METHOD_NOT_ALLOWED, "this route does not take this method"),
    Conflict => ("conflict", CONFLICT, "a resource with this identity already exists"),
    InUse => ("in_use", CONFLICT, "the resource is in use and cannot be changed this way"),
    JobState => ("job_state", CONFLICT, "the job is not in a state that allows this"),
    FirmwareNotVerified => ("firmware_not_verified", CONFLICT, "the firmware needs verification: a verify job must succeed on it first"),
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE, "the request body is larger than allowed"),
    UnsupportedMediaType => ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "this content type is not accepted here"),
    ImportRejected => ("import_rejected", UNPROCESSABLE_ENTITY, "the batch was rejected; nothing was imported"),
    RateLimited => ("rate_limited", TOO_MANY_REQUESTS, "too many requests; retry later"),
    Internal => ("internal", INTERNAL_SERVER_ERROR, "an internal error occurred; it was logged"),
    Unavailable => ("unavailable", SERVICE_UNAVAILABLE, "a backing service is unavailable; retry later"),
    ServerAdminKey => ("server_admin_key", CONFLICT, "the server administrator's key cannot be deleted, downgraded or given an expiry; set a bootstrap token to replace it"),
    LastAdminKey => ("last_admin_key", CONFLICT, "this is the tenant's last admin key that never expires; issue another one first"),
    IdempotencyKeyReused => ("idempotency_key_reused", UNPROCESSABLE_ENTITY, "this Idempotency-Key was used for a different request"),
}

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds after which to retry (`Retry-After`), for `rate_limited`.
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
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

    /// References to resources that do not exist: 404 `not_found`, each named in
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

impl From<updraft_core::Error> for ApiError {
    fn from(e: updraft_core::Error) -> Self {
        match e {
            updraft_core::Error::Invalid(errors) => ApiError::invalid(errors),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id } => ApiError::not_found(what, &id),
            StoreError::Conflict { what, id } => {
                ApiError::new(ErrorCode::Conflict, format!("{what} `{id}` already exists"))
            }
            StoreError::InUse { what, id, by } => {
                ApiError::new(ErrorCode::InUse, format!("{what} `{id}` is in use by {by}"))
            }
            StoreError::Invalid(e) => e.into(),
            StoreError::Missing(references) => ApiError::missing(references),
            StoreError::Backend(message) => {
                tracing::error!(error = %message, "store error");
                ApiError::of(ErrorCode::Unavailable)
            }
        }
    }
}

impl From<updraft_core::KeyRefusal> for ApiError {
    fn from(e: updraft_core::KeyRefusal) -> Self {
        match e {
            updraft_core::KeyRefusal::ServerAdmin => ApiError::of(ErrorCode::ServerAdminKey),
            updraft_core::KeyRefusal::LastAdmin => ApiError::of(ErrorCode::LastAdminKey),
        }
    }
}

impl From<updraft_blob::BlobError> for ApiError {
    fn from(e: updraft_blob::BlobError) -> Self {
        match e {
            updraft_blob::BlobError::NotFound(key) => ApiError::not_found("file", &key),
            other => ApiError::internal("blob storage", other),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(crate::metrics::API_ERRORS, "code" => self.code.code()).increment(1);
        let body =
            Body { error: Inner { code: self.code.code(), message: &self.message, details: self.details.as_ref() } };
        let mut response = (self.code.status(), Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        response
    }
}

/// The table of codes as JSON, for the OpenAPI document and the docs.
pub fn table() -> Value {
    Value::Array(
        ErrorCode::ALL
            .iter()
            .map(|c| serde_json::json!({"code": c.code(), "status": c.status().as_u16(), "message": c.message()}))
            .collect(),
    )
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
            assert!(c.status().is_client_error() || c.status().is_server_error());
        }
    }
}
