//! Streaming a file to a device with HTTP range support (RFC 9110): `Range`
//! with single, multiple and suffix ranges (206, `multipart/byteranges` for
//! several), 416 for unsatisfiable ones, `If-Range` by ETag or date, and the
//! validators `ETag` and `Last-Modified`. Nothing here touches the database;
//! the bytes come from the blob store, read by range.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt, stream};
use jiff::Timestamp;
use tokio_util::io::ReaderStream;
use updraft_blob::{BlobError, BlobRead, BlobReader, BlobResult, BlobStore};

const BUFFER: usize = 256 * 1024;
const BOUNDARY: &str = "THIS_STRING_SEPARATES_MULTIPART";
/// More ranges than this in one request are refused (a cheap defence against range floods).
const MAX_RANGES: usize = 32;

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranges {
    /// No range, or one to ignore (a unit other than `bytes`): send it all.
    Full,
    /// The satisfiable byte ranges, inclusive, in request order (overlapping ones coalesced).
    Parts(Vec<(u64, u64)>),
    /// Malformed, too many ranges, or none satisfiable: 416.
    Unsatisfiable,
}

/// Reads a `Range` value against a file of `len` bytes, as RFC 9110 §14
/// says: a range unit other than `bytes` (compared case-insensitively) is
/// ignored; a malformed range set is refused (§14.2 lets a server ignore or
/// refuse it; hawkBit refuses); ranges that start past the end, and suffix
/// ranges of length 0, are unsatisfiable and left out; when none is left, 416.
pub fn parse_range(value: &str, len: u64) -> Ranges {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return Ranges::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Full;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = Vec::new();
    let mut specs = 0;
    // `1#range-spec`: a list of at least one, empty elements allowed and not counted (§5.6.1).
    for item in set.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        specs += 1;
        if specs > MAX_RANGES {
            return Ranges::Unsatisfiable;
        }
        let Some((a, b)) = item.split_once('-') else {
            return Ranges::Unsatisfiable;
        };
        match (a, b) {
            ("", n) if digits(n) => {
                // A suffix: the last n bytes; satisfiable when n > 0 and the file is not empty.
                let n = n.parse::<u64>().unwrap_or(u64::MAX);
                if n > 0 && len > 0 {
                    parts.push((len.saturating_sub(n), len - 1));
                }
            }
            (a, b) if digits(a) && (b.is_empty() || digits(b)) => {
                let Ok(start) = a.parse::<u64>() else {
                    continue; // beyond any length: unsatisfiable
                };
                let end = if b.is_empty() { u64::MAX } else { b.parse::<u64>().unwrap_or(u64::MAX) };
                if end < start {
                    return Ranges::Unsatisfiable; // invalid (§14.1.1)
                }
                if start < len {
                    parts.push((start, end.min(len - 1)));
                }
            }
            _ => return Ranges::Unsatisfiable,
        }
    }
    if specs == 0 {
        return Ranges::Unsatisfiable;
    }
    if parts.is_empty() {
        return Ranges::Unsatisfiable;
    }
    Ranges::Parts(coalesce(parts))
}

/// Overlapping ranges as one (§14.6 allows it): a merged part takes the
/// place of the earliest range it absorbed; the others stay as asked.
fn coalesce(parts: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(parts.len());
    for mut r in parts {
        let mut at: Option<usize> = None;
        while let Some(i) = out.iter().position(|&(x, y)| r.0 <= y && x <= r.1) {
            let (x, y) = out.remove(i);
            r = (r.0.min(x), r.1.max(y));
            at = Some(at.map_or(i, |a| a.min(i)));
        }
        match at {
            Some(i) => out.insert(i.min(out.len()), r),
            None => out.push(r),
        }
    }
    out
}

/// The file to send and its validators.
pub struct FileToSend {
    /// Its key in the blob store.
    pub blob: String,
    pub len: u64,
    pub name: String,
    /// The ETag, unquoted (a content hash).
    pub etag: String,
    pub modified: Timestamp,
}

fn http_date(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// `If-Range` holds when it is this file's ETag (a strong match: never a weak
/// `W/` tag) or exactly its `Last-Modified` date (RFC 9110 §13.1.5).
fn if_range_holds(value: &str, file: &FileToSend) -> bool {
    let v = value.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        return v == format!("\"{}\"", file.etag);
    }
    let date = jiff::fmt::strtime::parse("%a, %d %b %Y %H:%M:%S GMT", v)
        .and_then(|t| t.to_datetime())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC));
    date.is_ok_and(|d| d.timestamp().as_second() == file.modified.as_second())
}

fn stream_of(reader: BlobReader) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    ReaderStream::with_capacity(reader, BUFFER)
}

/// The inclusive range `(start, end)` of a blob, opened when the body gets to it.
fn segment(
    blobs: Arc<dyn BlobStore>,
    key: String,
    range: (u64, u64),
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    stream::once(async move {
        let read = blobs.read(&key, Some(range)).await.map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(stream_of(read.reader))
    })
    .try_flatten()
}

/// Opens `file`'s blob (or a range of it), refusing one whose length is not
/// the recorded one: its body would be cut off (or run past) the length sent.
async fn open(blobs: &Arc<dyn BlobStore>, file: &FileToSend, range: Option<(u64, u64)>) -> BlobResult<BlobRead> {
    let read = blobs.read(&file.blob, range).await?;
    if read.len != file.len {
        return Err(BlobError::Length { key: file.blob.clone(), found: read.len, expected: file.len });
    }
    Ok(read)
}

/// Answers a GET (or HEAD) for `file`, honouring `Range` and `If-Range` on a
/// GET (range handling is defined for GET only: RFC 9110 §14.2). The blob is
/// opened (and its length checked) before the answer starts, so a missing or
/// cut-off one is an error rather than a cut-off body; a HEAD does not open it.
pub async fn respond(
    blobs: &Arc<dyn BlobStore>,
    file: FileToSend,
    method: &Method,
    request: &HeaderMap,
    counter: &'static str,
) -> BlobResult<Response> {
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

    let range = request.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| method == Method::GET);
    let if_range_ok =
        request.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| if_range_holds(v, &file));
    let ranges = match range {
        Some(r) if if_range_ok => parse_range(r, file.len),
        _ => Ranges::Full,
    };
    Ok(match ranges {
        Ranges::Full => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            set(&mut headers, header::CONTENT_LENGTH, file.len.to_string());
            if method == Method::HEAD {
                return Ok((StatusCode::OK, headers).into_response());
            }
            let read = open(blobs, &file, None).await?;
            metrics::counter!(counter).increment(file.len);
            (StatusCode::OK, headers, Body::from_stream(stream_of(read.reader))).into_response()
        }
        Ranges::Unsatisfiable => {
            set(&mut headers, header::CONTENT_RANGE, format!("bytes */{}", file.len));
            (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response()
        }
        Ranges::Parts(parts) if parts.len() == 1 => {
            let (a, b) = parts[0];
            let read = open(blobs, &file, Some((a, b))).await?;
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            set(&mut headers, header::CONTENT_RANGE, format!("bytes {a}-{b}/{}", file.len));
            set(&mut headers, header::CONTENT_LENGTH, (b - a + 1).to_string());
            metrics::counter!(counter).increment(b - a + 1);
            (StatusCode::PARTIAL_CONTENT, headers, Body::from_stream(stream_of(read.reader))).into_response()
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
            // The first part is opened now (see above); each later one when the body reaches it.
            let mut first = Some(open(blobs, &file, Some(parts[0])).await?.reader);
            metrics::counter!(counter).increment(parts.iter().map(|(a, b)| b - a + 1).sum::<u64>());
            let (blobs, key) = (Arc::clone(blobs), file.blob);
            let body = stream::iter(heads.into_iter().zip(parts))
                .flat_map(move |(head, range)| {
                    let bytes = match first.take() {
                        Some(reader) => stream_of(reader).boxed(),
                        None => segment(Arc::clone(&blobs), key.clone(), range).boxed(),
                    };
                    stream::once(async move { Ok(head) }).chain(bytes).boxed()
                })
                .chain(stream::once(async move { Ok(tail) }));
            set(&mut headers, header::CONTENT_TYPE, format!("multipart/byteranges; boundary={BOUNDARY}"));
            set(&mut headers, header::CONTENT_LENGTH, total.to_string());
            (StatusCode::PARTIAL_CONTENT, headers, Body::from_stream(body)).into_response()
        }
    })
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
        for bad in ["bytes=100-", "bytes=5-1", "bytes=", "bytes=-0", "bytes=a-b", "bytes=-", "bytes=1-2-3", "nonsense"]
        {
            assert_eq!(parse_range(bad, 100), Ranges::Unsatisfiable, "{bad}");
        }
        assert_eq!(parse_range("bytes=0-0", 0), Ranges::Unsatisfiable);
    }

    #[test]
    fn an_unknown_range_unit_is_ignored_and_unsatisfiable_ranges_are_left_out() {
        assert_eq!(parse_range("items=0-1", 100), Ranges::Full);
        assert_eq!(parse_range("BYTES=0-1", 100), Ranges::Parts(vec![(0, 1)]), "units are case-insensitive");
        assert_eq!(parse_range("bytes=0-9,200-300,-0", 100), Ranges::Parts(vec![(0, 9)]));
        assert_eq!(parse_range("bytes=200-300,50-", 100), Ranges::Parts(vec![(50, 99)]));
        assert_eq!(parse_range("bytes=200-300,-0", 100), Ranges::Unsatisfiable, "none satisfiable");
        assert_eq!(parse_range("bytes=0-5,3-8", 100), Ranges::Parts(vec![(0, 8)]), "overlaps coalesce");
        assert_eq!(parse_range("bytes=50-59,0-9,5-20", 100), Ranges::Parts(vec![(50, 59), (0, 20)]));
        assert_eq!(parse_range("bytes=0-1,,4-5", 100), Ranges::Parts(vec![(0, 1), (4, 5)]), "empty list elements");
        assert_eq!(parse_range("bytes=99999999999999999999999-", 100), Ranges::Unsatisfiable);
    }
}
