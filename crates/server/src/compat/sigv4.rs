//! AWS Signature Version 4, as AWS's SDKs and CLI sign requests: the canonical
//! request (method, URI, query, headers, signed headers, payload hash), the
//! string to sign over its hash and the credential scope, the key derived from
//! the secret by date, region and service, and the signature; in the
//! `Authorization` header or in a presigned URL's query (`X-Amz-*`).

use axum::http::HeaderMap;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::percent_encode;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash of a presigned URL (and of a request that does not sign its body).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// What a request says about its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    /// `yyyymmdd`, the scope's date.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case names, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `yyyymmddThhmmssZ`: `X-Amz-Date`.
    pub amz_date: String,
    /// A presigned URL's lifetime in seconds (`X-Amz-Expires`); `None` for the header form.
    pub expires: Option<u64>,
}

impl Credential {
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// Reads the signature from the `Authorization` header, or else a presigned
/// query; `Ok(None)` when the request carries neither, `Err` with what is malformed.
pub fn credential(headers: &HeaderMap, query: &[(String, String)]) -> Result<Option<Credential>, String> {
    let q = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (algorithm, credential, signed, signature, amz_date, expires) =
        if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
            let Some((algorithm, rest)) = auth.split_once(' ') else {
                return Err("the Authorization header is not `AWS4-HMAC-SHA256 Credential=…`".into());
            };
            let mut parts = std::collections::BTreeMap::new();
            for part in rest.split(',') {
                if let Some((k, v)) = part.trim().split_once('=') {
                    parts.insert(k.to_owned(), v.to_owned());
                }
            }
            let amz_date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).map(str::to_owned);
            (
                algorithm.to_owned(),
                parts.remove("Credential"),
                parts.remove("SignedHeaders"),
                parts.remove("Signature"),
                amz_date,
                None,
            )
        } else if let Some(algorithm) = q("X-Amz-Algorithm") {
            let expires = match q("X-Amz-Expires").map(str::parse::<u64>) {
                Some(Ok(e)) if (1..=604_800).contains(&e) => Some(e),
                _ => return Err("X-Amz-Expires must be from 1 to 604800 seconds".into()),
            };
            (
                algorithm.to_owned(),
                q("X-Amz-Credential").map(str::to_owned),
                q("X-Amz-SignedHeaders").map(str::to_owned),
                q("X-Amz-Signature").map(str::to_owned),
                q("X-Amz-Date").map(str::to_owned),
                expires,
            )
        } else {
            return Ok(None);
        };
    if algorithm != ALGORITHM {
        return Err(format!("the signature's algorithm must be {ALGORITHM}"));
    }
    let credential = credential.ok_or("the signature names no Credential")?;
    let fields: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = fields.as_slice() else {
        return Err("Credential must be <access key>/<date>/<region>/<service>/aws4_request".into());
    };
    let signed_headers: Vec<String> =
        signed.ok_or("the signature names no SignedHeaders")?.split(';').map(str::to_ascii_lowercase).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err("SignedHeaders must include host".into());
    }
    let amz_date = amz_date.ok_or("the request has no X-Amz-Date")?;
    if !amz_date.starts_with(date) {
        return Err("the Credential's date is not X-Amz-Date's".into());
    }
    Ok(Some(Credential {
        access_key: (*access_key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers,
        signature: signature.ok_or("the signature names no Signature")?,
        amz_date,
        expires,
    }))
}

/// The canonical request. `path` is the path as it was sent (percent-encoded
/// once: AWS's SDKs encode it once more, as here); `query` the decoded pairs,
/// without a presigned URL's `X-Amz-Signature`.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let uri = if path.is_empty() {
        "/".to_owned()
    } else {
        path.split('/').map(percent_encode).collect::<Vec<_>>().join("/")
    };
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    let query = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!("{method}\n{uri}\n{query}\n{canonical_headers}\n{}\n{payload_hash}", signed_headers.join(";"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The signature of a canonical request under `secret`, for the credential's scope.
pub fn signature(secret: &str, credential: &Credential, canonical_request: &str) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        credential.amz_date,
        credential.scope(),
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), &credential.date);
    for part in [credential.region.as_str(), credential.service.as_str(), "aws4_request"] {
        key = hmac(&key, part);
    }
    hex::encode(hmac(&key, &string_to_sign))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    /// AWS's Signature Version 4 test suite: `get-vanilla`, `post-vanilla`,
    /// `get-vanilla-query-order-key-case` (key `AKIDEXAMPLE`, 2015-08-30T12:36:00Z,
    /// us-east-1, service `service`).
    #[test]
    fn signs_as_the_published_test_suite() {
        let auth = |sig: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={sig}"
            )
        };
        for (method, query, expected) in [
            ("GET", "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            ("POST", "", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
            ("GET", "Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ] {
            let h = headers(&[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
                ("authorization", &auth(expected)),
            ]);
            let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            let c = credential(&h, &q).unwrap().unwrap();
            assert_eq!(c.scope(), "20150830/us-east-1/service/aws4_request");
            let canonical = canonical_request(method, "/", &q, &h, &c.signed_headers, &sha256_hex(b""));
            assert_eq!(signature(SECRET, &c, &canonical), expected, "{method} /?{query}");
        }
    }

    #[test]
    fn reads_a_presigned_query_and_refuses_malformed_ones() {
        let q: Vec<(String, String)> = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "AKID/20150830/eu-west-1/iot/aws4_request"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("X-Amz-Expires", "300"),
            ("X-Amz-SignedHeaders", "host"),
            ("X-Amz-Signature", "abc"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let c = credential(&HeaderMap::new(), &q).unwrap().unwrap();
        assert_eq!((c.access_key.as_str(), c.region.as_str(), c.expires), ("AKID", "eu-west-1", Some(300)));
        assert_eq!(credential(&HeaderMap::new(), &[]).unwrap(), None, "unsigned");
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/x/iot, SignedHeaders=host, Signature=a",
        )]);
        assert!(credential(&h, &[]).is_err());
        let h = headers(&[("authorization", "Bearer upd_k_x")]);
        assert!(credential(&h, &[]).is_err());
    }
}
