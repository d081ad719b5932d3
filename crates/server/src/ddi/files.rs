//! Streaming a file to a device with HTTP range support (RFC 9110): `Range`
//! with single, multiple and suffix ranges (206, `multipart/byteranges` for
//! several), 416 for unsatisfiable ones, `If-Range` by ETag or date, and the
//! validators `ETag` and `Last-Modified`. Nothing here touches the database.

use std::io::SeekFrom;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt, stream};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

const BUFFER: usize = 256 * 1024;
const BOUNDARY: &str = "THIS_STRING_SEPARATES_MULTIPART";
/// More ranges than this in one request are refused (a cheap defence against range floods).
const MAX_RANGES: usize = 32;

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranges {
    /// No (usable) range: send it all.
    Full,
    /// Inclusive byte ranges, in request order.
    Parts(Vec<(u64, u64)>),
    /// Syntactically valid but unsatisfiable, or malformed: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b,c-,-n` against a file of `len` bytes.
pub fn parse_range(value: &str, len: u64) -> Ranges {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranges::Unsatisfiable;
    };
    let mut parts = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        let Some((a, b)) = item.split_once('-') else {
            return Ranges::Unsatisfiable;
        };
        let range = match (a.trim(), b.trim()) {
            ("", "") => return Ranges::Unsatisfiable,
            ("", n) => match n.parse::<u64>() {
                Ok(0) | Err(_) => return Ranges::Unsatisfiable,
                Ok(_) if len == 0 => return Ranges::Unsatisfiable,
                Ok(n) => (len.saturating_sub(n), len - 1),
            },
            (a, b) => {
                let Ok(start) = a.parse::<u64>() else {
                    return Ranges::Unsatisfiable;
                };
                let end = if b.is_empty() {
                    len.saturating_sub(1)
                } else {
                    match b.parse::<u64>() {
                        Ok(e) if e >= start => e.min(len.saturating_sub(1)),
                        _ => return Ranges::Unsatisfiable,
                    }
                };
                if start >= len {
                    return Ranges::Unsatisfiable;
                }
                (start, end)
            }
        };
        parts.push(range);
    }
    if parts.is_empty() || parts.len() > MAX_RANGES {
        return Ranges::Unsatisfiable;
    }
    let mut sorted = parts.clone();
    sorted.sort();
    if sorted.windows(2).any(|w| w[1].0 <= w[0].1) {
        return Ranges::Unsatisfiable;
    }
    Ranges::Parts(parts)
}

/// The file to send and its validators.
pub struct FileToSend {
    pub path: PathBuf,
    pub len: u64,
    pub name: String,
    /// The ETag, unquoted (a content hash).
    pub etag: String,
    pub modified: Timestamp,
}

fn http_date(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// `If-Range` holds when it names this file's ETag or its modification date.
fn if_range_holds(value: &str, file: &FileToSend) -> bool {
    let v = value.trim();
    v == format!("\"{}\"", file.etag) || v == http_date(file.modified)
}

fn segment(path: PathBuf, start: u64, len: u64) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    stream::once(async move {
        let mut f = tokio::fs::File::open(&path).await?;
        f.seek(SeekFrom::Start(start)).await?;
        Ok::<_, std::io::Error>(ReaderStream::with_capacity(f.take(len), BUFFER))
    })
    .try_flatten()
}

/// Answers a GET (or HEAD) for `file`, honouring `Range` and `If-Range`.
pub fn respond(file: FileToSend, request: &HeaderMap, counter: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    let set = |h: &mut HeaderMap, k, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(&mut headers, header::ETAG, format!("\"{}\"", file.etag));
    set(&mut headers, header::LAST_MODIFIED, http_date(file.modified));
    set(&mut headers, header::CONTENT_DISPOSITION, format!("attachment;filename=\"{}\"", file.name));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));

    let range = request.get(header::RANGE).and_then(|v| v.to_str().ok());
    let if_range_ok =
        request.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| if_range_holds(v, &file));
    let ranges = match range {
        Some(r) if if_range_ok => parse_range(r, file.len),
        _ => Ranges::Full,
    };
    match ranges {
        Ranges::Full => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            set(&mut headers, header::CONTENT_LENGTH, file.len.to_string());
            metrics::counter!(counter).increment(file.len);
            (StatusCode::OK, headers, Body::from_stream(segment(file.path, 0, file.len))).into_response()
        }
        Ranges::Unsatisfiable => {
            set(&mut headers, header::CONTENT_RANGE, format!("bytes */{}", file.len));
            (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response()
        }
        Ranges::Parts(parts) if parts.len() == 1 => {
            let (a, b) = parts[0];
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            set(&mut headers, header::CONTENT_RANGE, format!("bytes {a}-{b}/{}", file.len));
            set(&mut headers, header::CONTENT_LENGTH, (b - a + 1).to_string());
            metrics::counter!(counter).increment(b - a + 1);
            (StatusCode::PARTIAL_CONTENT, headers, Body::from_stream(segment(file.path, a, b - a + 1))).into_response()
        }
        Ranges::Parts(parts) => {
            let heads: Vec<Bytes> = parts
                .iter()
                .map(|(a, b)| {
                    Bytes::from(format!(
                        "\r\n--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                        file.len
                    ))
                })
                .collect();
            let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
            let total: u64 = heads.iter().map(|h| h.len() as u64).sum::<u64>()
                + parts.iter().map(|(a, b)| b - a + 1).sum::<u64>()
                + tail.len() as u64;
            metrics::counter!(counter).increment(parts.iter().map(|(a, b)| b - a + 1).sum::<u64>());
            let path = file.path.clone();
            let body = stream::iter(heads.into_iter().zip(parts))
                .flat_map(move |(head, (a, b))| {
                    stream::once(async move { Ok(head) }).chain(segment(path.clone(), a, b - a + 1)).boxed()
                })
                .chain(stream::once(async move { Ok(tail) }));
            set(&mut headers, header::CONTENT_TYPE, format!("multipart/byteranges; boundary={BOUNDARY}"));
            set(&mut headers, header::CONTENT_LENGTH, total.to_string());
            (StatusCode::PARTIAL_CONTENT, headers, Body::from_stream(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ranges::Parts(vec![(0, 9)]));
        assert_eq!(parse_range("bytes=90-", 100), Ranges::Parts(vec![(90, 99)]));
        assert_eq!(parse_range("bytes=-10", 100), Ranges::Parts(vec![(90, 99)]));
        assert_eq!(parse_range("bytes=-1000", 100), Ranges::Parts(vec![(0, 99)]));
        assert_eq!(parse_range("bytes=95-200", 100), Ranges::Parts(vec![(95, 99)]));
        assert_eq!(parse_range("bytes=0-1, 10-19", 100), Ranges::Parts(vec![(0, 1), (10, 19)]));
        for bad in
            ["bytes=100-", "bytes=5-1", "bytes=0-5,3-8", "items=0-1", "bytes=", "bytes=-0", "bytes=a-b", "bytes=-"]
        {
            assert_eq!(parse_range(bad, 100), Ranges::Unsatisfiable, "{bad}");
        }
        assert_eq!(parse_range("bytes=0-0", 0), Ranges::Unsatisfiable);
    }
}
