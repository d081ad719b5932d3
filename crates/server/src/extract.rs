//! Extractors that answer bad input in the error format of the API they serve
//! (the management API's envelope, or hawkBit's error body on the device API),
//! naming the field that is wrong (`pace.max_per_minute`, `limit`), never a
//! Rust type. Every handler reads its body, query and path through these.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::{DeserializeOwned, Visitor};

use crate::ddi::DdiError;
use crate::error::{ApiError, ErrorCode, HttpStatus};

/// Which part of a request could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Body,
    Query,
    Path,
}

/// One unreadable value: where it is (a JSON path or a parameter name; empty
/// for the whole part) and what is wrong with it.
#[derive(Debug, Clone, Serialize)]
pub struct InputError {
    pub field: String,
    pub message: String,
}

impl InputError {
    /// `field: message`, or the message alone when the whole part is wrong.
    pub fn describe(&self, part: Part) -> String {
        if self.field.is_empty() {
            let what = match part {
                Part::Body => "the body",
                Part::Query => "the query string",
                Part::Path => "the path",
            };
            format!("{what}: {}", self.message)
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// How an API answers input it cannot read.
pub trait Rejection: IntoResponse + Sized {
    fn unreadable(part: Part, error: InputError) -> Self;
    fn too_large() -> Self;
    fn unsupported_media_type(expected: &str) -> Self;
    /// Text PostgreSQL cannot store (NUL) at `field` (`""`: the whole body).
    fn nul(field: &str) -> Self;
}

impl Rejection for ApiError {
    fn unreadable(part: Part, error: InputError) -> Self {
        let code = if part == Part::Body { ErrorCode::InvalidJson } else { ErrorCode::BadRequest };
        ApiError::new(code, error.describe(part)).with_details(vec![error])
    }
    fn too_large() -> Self {
        ApiError::of(ErrorCode::PayloadTooLarge)
    }
    fn unsupported_media_type(expected: &str) -> Self {
        ApiError::new(ErrorCode::UnsupportedMediaType, format!("expected `Content-Type: {expected}`"))
    }
    fn nul(field: &str) -> Self {
        nul_error(field)
    }
}

impl Rejection for DdiError {
    fn unreadable(part: Part, error: InputError) -> Self {
        DdiError::BadRequest(error.describe(part))
    }
    fn too_large() -> Self {
        DdiError::TooLarge
    }
    fn unsupported_media_type(_: &str) -> Self {
        DdiError::UnsupportedMediaType
    }
    fn nul(field: &str) -> Self {
        match field {
            "" => DdiError::BadRequest("the body must not contain NUL characters".into()),
            at => DdiError::BadRequest(format!("`{at}` must not contain NUL characters")),
        }
    }
}

/// Whether a content type is JSON (`application/json`, `application/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body's bytes; a body over the route's limit is `too_large`.
pub async fn body_bytes<E: Rejection, S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, E> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            E::too_large()
        } else {
            E::unreadable(Part::Body, InputError { field: String::new(), message: "the body could not be read".into() })
        }
    })
}

/// Reads JSON, naming the path of a value of the wrong shape. An object is
/// only ever read from a JSON object (serde would also take an array of its
/// fields in order, which no client means).
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InputError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| InputError { field: String::new(), message: format!("not valid JSON: {e}") })?;
    serde_path_to_error::deserialize(Strict(value))
        .map_err(|e| InputError { field: json_path(e.path()), message: plain(&e.inner().to_string()) })
}

/// A JSON value read strictly: structs only from objects.
struct Strict(serde_json::Value);

impl<'de> serde::Deserializer<'de> for Strict {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        use serde_json::Value;
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (_, Some(i), _) => visitor.visit_i64(i),
                (_, _, Some(f)) => visitor.visit_f64(f),
                _ => Err(serde::de::Error::custom("a number out of range")),
            },
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                visitor.visit_seq(serde::de::value::SeqDeserializer::new(items.into_iter().map(Strict)))
            }
            Value::Object(map) => {
                visitor.visit_map(serde::de::value::MapDeserializer::new(map.into_iter().map(|(k, v)| (k, Strict(v)))))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0.is_null() { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        if self.0.is_object() {
            self.deserialize_any(visitor)
        } else {
            serde::Deserializer::deserialize_struct(self.0, name, fields, Refuse(visitor)).map(|never| match never {})
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq
        tuple tuple_struct map identifier ignored_any
    }
}

impl<'de> serde::de::IntoDeserializer<'de, serde_json::Error> for Strict {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// A visitor that takes nothing: serde's own "invalid type …, expected an object" for a non-object.
struct Refuse<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Refuse<V> {
    type Value = std::convert::Infallible;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }
}

/// Reads a query string, naming the parameter that is wrong.
pub fn from_query<T: DeserializeOwned>(query: &str) -> Result<T, InputError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = json_path(e.path());
        let message = match plain(&e.inner().to_string()) {
            m if m.starts_with("unknown field") => m.replacen("unknown field", "unknown parameter", 1),
            m if m.contains("invalid digit")
                || m.contains("number too large")
                || m == "cannot parse integer from empty string" =>
            {
                "expected an integer in range".to_owned()
            }
            m => m,
        };
        InputError { field, message }
    })
}

/// A path as `pace.max_per_minute` or `devices[2]`; empty for the root.
fn json_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

/// serde's message in the API's words: JSON kinds instead of Rust types,
/// without the line and column of a value already named by its path.
pub fn plain(message: &str) -> String {
    let mut m = message.to_owned();
    if let Some(i) = m.rfind(" at line ") {
        m.truncate(i);
    }
    if m.starts_with("data did not match any variant of untagged enum") {
        return "the value has none of the accepted shapes".into();
    }
    for (from, to) in [
        ("invalid type: map", "invalid type: object"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: unit value", "invalid type: null"),
        ("invalid type: floating point", "invalid type: number"),
        ("invalid value: floating point", "invalid value: number"),
        ("invalid length", "wrong number of elements"),
    ] {
        if let Some(rest) = m.strip_prefix(from) {
            m = format!("{to}{rest}");
        }
    }
    if let Some(i) = m.find("expected ") {
        let (head, tail) = m.split_at(i + "expected ".len());
        m = format!("{head}{}", expected(tail));
    }
    m
}

/// What serde says it expected, without Rust type names.
fn expected(what: &str) -> String {
    let mut words = what.splitn(3, ' ');
    let first = words.next().unwrap_or("");
    let text = match first {
        "struct" => "an object",
        "enum" | "variant" => "one of the documented values",
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "an integer from 0 to 4294967295",
        "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "unit" => "null",
        "char" => "a single character",
        "a" | "an" => match what {
            w if w.starts_with("a sequence") => "an array",
            w if w.starts_with("a map") => "an object",
            w if w.starts_with("a borrowed string") => "a string",
            w if w.starts_with("a boolean") => "a boolean",
            w => return w.to_owned(),
        },
        _ => return what.to_owned(),
    };
    text.to_owned()
}

macro_rules! extractors {
    ($error:ty => $json:ident, $query:ident, $path:ident) => {
        /// A JSON body; a wrong content type is 415, an oversized body 413, and
        /// a malformed or wrongly shaped one names the field.
        pub struct $json<T>(pub T);

        impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for $json<T> {
            type Rejection = $error;

            async fn from_request(req: Request, state: &S) -> Result<Self, $error> {
                if !is_json(req.headers()) {
                    return Err(<$error>::unsupported_media_type("application/json"));
                }
                let bytes = body_bytes::<$error, S>(req, state).await?;
                let value = from_json(&bytes).map_err(|e| <$error>::unreadable(Part::Body, e))?;
                match nul_in_json(&bytes) {
                    Some(at) => Err(<$error>::nul(&at)),
                    None => Ok($json(value)),
                }
            }
        }

        /// Query parameters; an unknown or malformed parameter is named.
        pub struct $query<T>(pub T);

        impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for $query<T> {
            type Rejection = $error;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, $error> {
                from_query(parts.uri.query().unwrap_or(""))
                    .map($query)
                    .map_err(|e| <$error>::unreadable(Part::Query, e))
            }
        }

        /// Path parameters (a path that is not valid percent-encoded UTF-8 is refused).
        pub struct $path<T>(pub T);

        impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for $path<T> {
            type Rejection = $error;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, $error> {
                match axum::extract::Path::<T>::from_request_parts(parts, state).await {
                    Ok(axum::extract::Path(v)) => Ok($path(v)),
                    Err(e) => Err(<$error>::unreadable(
                        Part::Path,
                        InputError { field: String::new(), message: path_message(&e) },
                    )),
                }
            }
        }
    };
}

extractors!(ApiError => ApiJson, ApiQuery, ApiPath);
extractors!(DdiError => DdiJson, DdiQuery, DdiPath);

/// A JSON body that may be left out (a command's options): an empty body
/// reads as `T::default()`; one that is there is read as [`ApiJson`] reads it.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = body_bytes::<ApiError, S>(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json {
            return Err(ApiError::unsupported_media_type("application/json"));
        }
        let value = from_json(&bytes).map_err(|e| ApiError::unreadable(Part::Body, e))?;
        match nul_in_json(&bytes) {
            Some(at) => Err(ApiError::nul(&at)),
            None => Ok(OptionalJson(value)),
        }
    }
}

fn path_message(e: &axum::extract::rejection::PathRejection) -> String {
    use axum::extract::path::ErrorKind;
    use axum::extract::rejection::PathRejection;
    match e {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => format!("`{key}` is not valid percent-encoded UTF-8"),
            ErrorKind::ParseErrorAtKey { key, value, .. } => format!("`{key}`: `{value}` is not of the expected form"),
            _ => "a path parameter is not of the expected form".into(),
        },
        _ => "the path could not be read".into(),
    }
}

/// The router's fallback: no route has this path.
pub async fn route_not_found(uri: Uri) -> Response {
    if crate::ddi::is_device_path(uri.path()) {
        DdiError::NoRoute.into_response()
    } else {
        ApiError::of(ErrorCode::RouteNotFound).into_response()
    }
}

/// The router's fallback for a path that exists, with a method it does not take.
pub async fn method_not_allowed(uri: Uri) -> Response {
    if crate::ddi::is_device_path(uri.path()) {
        DdiError::MethodNotAllowed.into_response()
    } else {
        ApiError::of(ErrorCode::MethodNotAllowed).into_response()
    }
}

/// The last line of defence: an error answered in plain text by something
/// other than these extractors (a rejection of axum's own, a layer) is
/// answered in the error format of its API instead, with the same status.
pub async fn errors_in_envelope(req: Request, next: Next) -> Response {
    let device_api = crate::ddi::is_device_path(req.uri().path());
    let response = next.run(req).await;
    let status = response.status();
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if status.as_u16() < 400 || !plain_text {
        return response;
    }
    tracing::debug!(status = status.as_u16(), "a plain-text error answered in the envelope");
    let mut answer = if device_api {
        match status {
            StatusCode::NOT_FOUND => DdiError::NoRoute,
            StatusCode::METHOD_NOT_ALLOWED => DdiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => DdiError::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => DdiError::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => DdiError::Unavailable,
            _ => DdiError::BadRequest("the request cannot be read".into()),
        }
        .into_response()
    } else {
        let code = ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.status() == status)
            .unwrap_or(if status.is_server_error() { ErrorCode::Internal } else { ErrorCode::BadRequest });
        ApiError::of(code).into_response()
    };
    *answer.status_mut() = status;
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    answer
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Pace {
        max_per_minute: Option<u32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct JobIn {
        pace: Option<Pace>,
        devices: Option<Vec<String>>,
    }

    #[test]
    fn json_errors_name_fields_not_rust_types() {
        let e = from_json::<JobIn>(br#"{"pace": {"max_per_minute": "fast"}}"#).unwrap_err();
        assert_eq!(e.field, "pace.max_per_minute");
        assert_eq!(e.message, "invalid type: string \"fast\", expected an integer from 0 to 4294967295");
        let e = from_json::<JobIn>(br#"[]"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("", "invalid type: array, expected an object"));
        let e = from_json::<JobIn>(br#"{"devices": [1]}"#).unwrap_err();
        assert_eq!(e.field, "devices[0]");
        assert!(!e.message.contains("JobIn") && !e.message.contains("u32"), "{}", e.message);
        let e = from_json::<JobIn>(br#"{"pace": {"max_per_minute": 1}"#).unwrap_err();
        assert!(e.message.starts_with("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let e = from_query::<Pace>("max_per_minute=abc").unwrap_err();
        assert_eq!(e.field, "max_per_minute");
        let e = from_query::<Pace>("colour=red").unwrap_err();
        assert!(e.message.starts_with("unknown parameter `colour`"), "{}", e.message);
    }
}
