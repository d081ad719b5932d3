//! Verification through The Update Framework before installing: the agent
//! is provisioned with its product's root (`root.json`, pinned), refreshes
//! the repository's metadata from it with `tough` (signatures, thresholds,
//! expiry, versions never going back, root rotation), and installs a file only
//! if the signed targets list it for this product, with this length and these
//! hashes, and a security version not below the one the device runs.
//!
//! Each refusal has a code, reported in the DDI feedback's `code` and details.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::TryStreamExt;
use reqwest::header::HeaderValue;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};
use tokio::io::AsyncReadExt;
use updraft_trust::tough::{self, RepositoryLoader, Transport, TransportError, TransportErrorKind, TransportStream};

/// Why the agent refused to install: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The number reported as the DDI feedback's `code`.
    pub code: i32,
    /// The name reported in its details (`tuf.target_mismatch`, …).
    pub name: &'static str,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.code, self.message)
    }
}

/// The refusal codes.
pub mod codes {
    /// The metadata could not be fetched.
    pub const UNAVAILABLE: (i32, &str) = (4000, "tuf.unavailable");
    /// Metadata not signed by the keys the trusted root names (tampered, or a revoked key).
    pub const BAD_METADATA: (i32, &str) = (4001, "tuf.bad_metadata");
    /// The signed targets do not list the file.
    pub const UNKNOWN_TARGET: (i32, &str) = (4002, "tuf.unknown_target");
    /// The file's length or hashes differ from the signed ones (tampered file).
    pub const TARGET_MISMATCH: (i32, &str) = (4003, "tuf.target_mismatch");
    /// The target is another product's.
    pub const WRONG_PRODUCT: (i32, &str) = (4004, "tuf.wrong_product");
    /// The target's security version is lower than the installed one.
    pub const DOWNGRADE: (i32, &str) = (4005, "tuf.downgrade");
    /// Metadata past its expiry (a frozen repository).
    pub const EXPIRED: (i32, &str) = (4006, "tuf.expired");
    /// Metadata older than what the device already trusted (a rollback attack).
    pub const ROLLBACK: (i32, &str) = (4007, "tuf.rollback");
}

fn refusal((code, name): (i32, &'static str), message: impl Into<String>) -> Refusal {
    Refusal { code, name, message: message.into() }
}

/// Where and how the agent checks its product's repository.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The pinned root metadata given at provisioning.
    pub root: Vec<u8>,
    /// The product the device is (targets of other products are refused).
    pub product: String,
    /// `…/tuf/{tenant}/{product}/metadata/`.
    pub metadata_url: String,
    /// `…/tuf/{tenant}/{product}/targets/`.
    pub targets_url: String,
}

/// Fetches the repository's files over the agent's HTTP client, with the device's token
/// (none when a client certificate authenticates the device).
#[derive(Debug, Clone)]
struct Http {
    client: reqwest::Client,
    auth: Option<HeaderValue>,
}

#[async_trait::async_trait]
impl Transport for Http {
    async fn fetch(&self, url: url::Url) -> Result<TransportStream, TransportError> {
        let mut request = self.client.get(url.as_str());
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let answer = request
            .send()
            .await
            .map_err(|e| TransportError::new_with_cause(TransportErrorKind::Other, url.clone(), e))?;
        let status = answer.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
        }
        if !status.is_success() {
            return Err(TransportError::new_with_cause(
                TransportErrorKind::Other,
                url,
                std::io::Error::other(format!("HTTP {status}")),
            ));
        }
        let stream = answer
            .bytes_stream()
            .map_err(move |e| TransportError::new_with_cause(TransportErrorKind::Other, url.clone(), e));
        let stream: futures_util::stream::BoxStream<'static, Result<Bytes, TransportError>> = Box::pin(stream);
        Ok(Box::pin(SyncStream(std::sync::Mutex::new(stream))))
    }
}

/// tough wants a `Sync` stream; reqwest's is `Send` only.
struct SyncStream<S>(std::sync::Mutex<S>);

impl<S: futures_util::Stream + Unpin> futures_util::Stream for SyncStream<S> {
    type Item = S::Item;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let inner = self.get_mut().0.get_mut().unwrap_or_else(|p| p.into_inner());
        std::pin::Pin::new(inner).poll_next(cx)
    }
}

/// One file to install, as the deployment names it.
pub struct Candidate<'a> {
    pub file: &'a std::path::Path,
    pub filename: &'a str,
    pub component: &'a str,
    pub version: &'a str,
}

/// Refreshes the metadata (kept in `datastore`, so versions never go back
/// across restarts) and checks each file. Returns the highest security
/// version among them.
pub async fn verify(
    config: &TrustConfig,
    client: reqwest::Client,
    auth: Option<HeaderValue>,
    datastore: PathBuf,
    files: &[Candidate<'_>],
    installed_security_version: u64,
) -> Result<u64, Refusal> {
    let parse =
        |u: &str| url::Url::parse(u).map_err(|e| refusal(codes::UNAVAILABLE, format!("repository URL {u}: {e}")));
    let (metadata_url, targets_url) = (parse(&config.metadata_url)?, parse(&config.targets_url)?);
    tokio::fs::create_dir_all(&datastore)
        .await
        .map_err(|e| refusal(codes::UNAVAILABLE, format!("metadata cache {}: {e}", datastore.display())))?;
    let repo = RepositoryLoader::new(&config.root, metadata_url, targets_url)
        .transport(Http { client, auth })
        .datastore(datastore)
        .load()
        .await
        .map_err(|e| classify(&e))?;
    let mut highest = 0;
    for f in files {
        let listed: Vec<(&tough::TargetName, &tough::schema::Target)> = repo
            .all_targets()
            .filter(|(name, t)| {
                name.raw().rsplit('/').next() == Some(f.filename)
                    && t.custom.get("component").and_then(Value::as_str) == Some(f.component)
                    && t.custom.get("component_version").and_then(Value::as_str) == Some(f.version)
            })
            .collect();
        if listed.is_empty() {
            return Err(refusal(
                codes::UNKNOWN_TARGET,
                format!("the signed targets list no {} for {} {}", f.filename, f.component, f.version),
            ));
        }
        let (length, sha256, sha512) = digest(f.file).await?;
        let Some((name, target)) = listed.into_iter().find(|(_, t)| {
            t.length == length
                && hex::encode(t.hashes.sha256.as_ref() as &[u8]) == sha256
                && t.hashes._extra.get("sha512").and_then(Value::as_str).is_none_or(|h| h.eq_ignore_ascii_case(&sha512))
        }) else {
            return Err(refusal(
                codes::TARGET_MISMATCH,
                format!("{} ({length} bytes, sha256 {sha256}) is not the signed file", f.filename),
            ));
        };
        let product = target.custom.get("product").and_then(Value::as_str).unwrap_or("");
        if product != config.product {
            return Err(refusal(
                codes::WRONG_PRODUCT,
                format!("{} is an image of product `{product}`, this device is `{}`", name.raw(), config.product),
            ));
        }
        let security = target.custom.get("security_version").and_then(Value::as_u64).unwrap_or(0);
        if security < installed_security_version {
            return Err(refusal(
                codes::DOWNGRADE,
                format!(
                    "{} has security version {security}, lower than the installed {installed_security_version}",
                    name.raw()
                ),
            ));
        }
        highest = highest.max(security);
    }
    Ok(highest)
}

fn classify(e: &tough::error::Error) -> Refusal {
    use tough::error::Error as E;
    match e {
        E::ExpiredMetadata { .. } => refusal(codes::EXPIRED, e.to_string()),
        E::OlderMetadata { .. } => refusal(codes::ROLLBACK, e.to_string()),
        // tough checks a metadata file's length and hash while it streams, so a file that is not
        // the one the signed snapshot or timestamp names fails as a transport error caused by that.
        E::Transport { .. } if caused_by_content(e) => refusal(codes::BAD_METADATA, e.to_string()),
        E::Transport { .. } => refusal(codes::UNAVAILABLE, e.to_string()),
        _ => refusal(codes::BAD_METADATA, e.to_string()),
    }
}

/// Whether one of tough's hash or size checks is among `e`'s causes.
fn caused_by_content(e: &tough::error::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<tough::error::Error>()
            && matches!(t, tough::error::Error::HashMismatch { .. } | tough::error::Error::MaxSizeExceeded { .. })
        {
            return true;
        }
        cause = c.source();
    }
    false
}

async fn digest(path: &std::path::Path) -> Result<(u64, String, String), Refusal> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| refusal(codes::TARGET_MISMATCH, format!("{}: {e}", path.display())))?;
    let (mut a, mut b, mut n) = (Sha256::new(), Sha512::new(), 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = f.read(&mut buf).await.map_err(|e| refusal(codes::TARGET_MISMATCH, e.to_string()))?;
        if read == 0 {
            break;
        }
        a.update(&buf[..read]);
        b.update(&buf[..read]);
        n += read as u64;
    }
    Ok((n, hex::encode(a.finalize()), hex::encode(b.finalize())))
}
