//! Extractors that answer bad input in the API's error format.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON body; malformed JSON, wrong shapes, a wrong content type and an
/// oversized body each get their own error code.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = match Bytes::from_request(Request::from_parts(parts.clone(), body), state).await {
            Ok(bytes) => bytes,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::of(ErrorCode::PayloadTooLarge));
            }
            Err(e) => return Err(ApiError::new(ErrorCode::BadRequest, e.body_text())),
        };
        let nul = nul_in_json(&bytes);
        match axum::Json::<T>::from_request(Request::from_parts(parts, bytes.into()), state).await {
            Ok(_) if nul.is_some() => Err(nul_error(nul.as_deref().unwrap_or_default())),
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::new(ErrorCode::UnsupportedMediaType, "expected `Content-Type: application/json`"))
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::of(ErrorCode::PayloadTooLarge)),
            Err(e) => Err(ApiError::new(ErrorCode::InvalidJson, e.body_text())),
        }
    }
}

/// Query parameters; an unknown or malformed parameter is a `bad_request`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::new(ErrorCode::BadRequest, e.body_text()))
            }
            Err(e) => Err(ApiError::new(ErrorCode::BadRequest, e.body_text())),
        }
    }
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Where a JSON document holds text PostgreSQL cannot store (NUL, `\u0000`):
/// the path of the first such field (`properties.x`, `0.name`), `""` for the
/// top level. A quick scan first, so clean bodies are not parsed twice.
pub fn nul_in_json(bytes: &[u8]) -> Option<String> {
    if !may_hold_nul(bytes) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    nul_path(&value, String::new())
}

/// Whether `bytes` hold a NUL byte or an unescaped `\u0000` escape.
fn may_hold_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
        || bytes
            .windows(6)
            .enumerate()
            .any(|(i, w)| w == b"\\u0000" && bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0)
}

fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    let join = |k: &dyn std::fmt::Display| if at.is_empty() { k.to_string() } else { format!("{at}.{k}") };
    match value {
        serde_json::Value::String(s) => s.contains('\0').then_some(at),
        serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_path(v, join(&i))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') { Some(join(&k.replace('\0', "\\u0000"))) } else { nul_path(v, join(k)) }
        }),
        _ => None,
    }
}

/// The error for text PostgreSQL cannot store, naming where it was.
pub fn nul_error(field: &str) -> ApiError {
    if field.is_empty() {
        ApiError::new(ErrorCode::BadRequest, "the body must not contain NUL characters")
    } else {
        ApiError::field(field, "must not contain NUL characters")
    }
}

/// Where a request's path or query string holds a NUL (`%00`): `path`, or the
/// query parameter's name.
pub fn nul_in_uri(uri: &axum::http::Uri) -> Option<String> {
    let has_nul = |s: &str| s.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0');
    if has_nul(uri.path()) {
        return Some("path".into());
    }
    let query = uri.query().filter(|q| has_nul(q))?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k.replace('\0', "%00"))
        .or_else(|| Some("query".into()))
}

/// Refuses, before any handler runs, a path or query string holding text
/// PostgreSQL cannot store: 400 in the envelope of the API addressed.
pub async fn refuse_nul_in_uri(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    match nul_in_uri(req.uri()) {
        None => next.run(req).await,
        Some(at) if crate::ddi::is_device_path(req.uri().path()) => {
            crate::ddi::DdiError::BadRequest(format!("{at} must not contain NUL characters")).into_response()
        }
        Some(at) => ApiError::new(ErrorCode::BadRequest, format!("{at} must not contain NUL characters"))
            .with_details(vec![updraft_core::FieldError::new(at, "must not contain NUL characters")])
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_where_it_is_and_only_there() {
        assert_eq!(nul_in_json(br#"{"a": {"b": ["x", "y\u0000"]}}"#).as_deref(), Some("a.b.1"));
        assert_eq!(nul_in_json(br#"{"a": "\\u0000"}"#), None, "an escaped backslash is not a NUL");
        assert_eq!(nul_in_json(br#"{"a": "\\\u0000"}"#).as_deref(), Some("a"));
        assert_eq!(nul_in_json(br#""\u0000""#).as_deref(), Some(""));
        let uri: axum::http::Uri = "/api/v1/devices?limit=5&search=a%00b".parse().unwrap();
        assert_eq!(nul_in_uri(&uri).as_deref(), Some("search"));
        let uri: axum::http::Uri = "/api/v1/devices/a%00b".parse().unwrap();
        assert_eq!(nul_in_uri(&uri).as_deref(), Some("path"));
        let uri: axum::http::Uri = "/api/v1/devices?search=100%25".parse().unwrap();
        assert_eq!(nul_in_uri(&uri), None);
    }
}
