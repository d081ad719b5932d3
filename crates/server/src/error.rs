//! The management API's errors: the application's table of stable codes
//! (`updraft_app::error`), each given its HTTP status by its kind, and a
//! default message. Every error response has the same shape:
//! `{"error": {"code": "...", "message": "...", "details": ...}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use updraft_api::{ErrorBody, ErrorOut};
use updraft_core::FieldError;

pub use updraft_app::error::{ErrorCode, Kind};

/// The HTTP status of an error code: its kind, on the management API's wire.
pub trait HttpStatus {
    fn status(self) -> StatusCode;
}

impl HttpStatus for Kind {
    fn status(self) -> StatusCode {
        match self {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::NotSupported => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl HttpStatus for ErrorCode {
    fn status(self) -> StatusCode {
        self.kind().status()
    }
}

/// An error answered to a management API client: the application's error
/// in the API's envelope.
#[derive(Debug)]
pub struct ApiError(pub updraft_app::Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(updraft_app::Error::new(code, message))
    }

    pub fn of(code: ErrorCode) -> Self {
        ApiError(updraft_app::Error::of(code))
    }

    pub fn with_details(self, details: impl Serialize) -> Self {
        ApiError(self.0.with_details(details))
    }

    pub fn with_retry_after(self, seconds: u64) -> Self {
        ApiError(self.0.with_retry_after(seconds))
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError(updraft_app::Error::not_found(what, id))
    }

    pub fn missing(references: Vec<FieldError>) -> Self {
        ApiError(updraft_app::Error::missing(references))
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        ApiError(updraft_app::Error::invalid(errors))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError(updraft_app::Error::field(field, message))
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        ApiError(updraft_app::Error::internal(context, e))
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }
}

impl From<updraft_app::Error> for ApiError {
    fn from(e: updraft_app::Error) -> Self {
        ApiError(e)
    }
}

impl From<updraft_core::Error> for ApiError {
    fn from(e: updraft_core::Error) -> Self {
        ApiError(e.into())
    }
}

impl From<updraft_core::KeyRefusal> for ApiError {
    fn from(e: updraft_core::KeyRefusal) -> Self {
        ApiError(e.into())
    }
}

impl From<updraft_blob::BlobError> for ApiError {
    fn from(e: updraft_blob::BlobError) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        metrics::counter!(crate::metrics::API_ERRORS, "code" => e.code.code()).increment(1);
        let body =
            ErrorOut { error: ErrorBody { code: e.code.code().to_owned(), message: e.message, details: e.details } };
        let mut response = (e.code.status(), Json(body)).into_response();
        if let Some(s) = e.retry_after {
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

    /// Uniqueness and spelling of the codes are checked where the table is (`updraft-app`).
    #[test]
    fn every_code_answers_an_error_status() {
        assert!(ErrorCode::ALL.iter().all(|c| c.status().is_client_error() || c.status().is_server_error()));
    }
}
