//! Firmware file storage behind one trait, [`BlobStore`], so the server does
//! not care where the bytes live: local disk ([`LocalBlobStore`], the
//! default) or an S3-compatible bucket ([`S3BlobStore`]).
//!
//! Writes are streamed: a [`BlobWriter`] hashes (SHA-256, SHA-1, MD5) and
//! counts bytes as they arrive and hands each chunk to the backend's
//! [`Staging`], never holding the whole file in memory. [`BlobStore::persist`]
//! puts the finished bytes under their key. A writer or staged blob that is
//! dropped before it is persisted leaves nothing behind, so an interrupted or
//! rejected upload costs no space. Reads are streamed too, whole or by range.

mod local;
mod s3;

use std::pin::Pin;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use tokio::io::AsyncRead;

pub use local::{LocalBlobStore, create_private_dir};
pub use s3::{S3BlobStore, S3Config};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob `{0}` not found")]
    NotFound(String),
    #[error("invalid blob key `{0}`")]
    InvalidKey(String),
    #[error("range {start}-{end} is not within blob `{key}` of {len} bytes")]
    Range { key: String, start: u64, end: u64, len: u64 },
    #[error("blob `{key}` holds {found} bytes, not the {expected} recorded")]
    Length { key: String, found: u64, expected: u64 },
    #[error("blob storage i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub type BlobResult<T> = Result<T, BlobError>;

/// The bytes of a blob (or of a range of it), read as they are sent.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// What [`BlobStore::read`] opened.
pub struct BlobRead {
    /// The bytes asked for: the whole blob, or just the range.
    pub reader: BlobReader,
    /// The whole blob's length, whatever range was asked for.
    pub len: u64,
}

/// What [`BlobStore::stat`] says about a stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobMeta {
    pub len: u64,
    pub modified: SystemTime,
}

/// Where firmware bytes live.
///
/// Keys are `/`-separated segments of `[A-Za-z0-9._+-]`, none empty or
/// starting with `.` (see [`check_key`]); every method refuses other keys
/// with [`BlobError::InvalidKey`]. A key that names no blob is
/// [`BlobError::NotFound`].
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a staged upload.
    async fn writer(&self) -> BlobResult<BlobWriter>;

    /// Puts a finished upload under `key`, replacing any blob there. A staged
    /// blob belongs to the store whose writer made it: it is persisted there.
    async fn persist(&self, staged: StagedBlob, key: &str) -> BlobResult<()> {
        check_key(key)?;
        staged.staging.persist(key).await
    }

    /// The length and modification time of a stored blob.
    async fn stat(&self, key: &str) -> BlobResult<BlobMeta>;

    /// Opens a stored blob: all of it, or the inclusive byte range
    /// `(start, end)`, which must lie within it (`start <= end < len`, else
    /// [`BlobError::Range`]).
    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> BlobResult<BlobRead>;

    /// Removes one blob; a missing one is fine.
    async fn delete(&self, key: &str) -> BlobResult<()>;

    /// Removes every blob whose key starts with `prefix/`; none is fine.
    async fn delete_prefix(&self, prefix: &str) -> BlobResult<()>;

    /// A URL from which the blob can be fetched directly, without credentials,
    /// until `expires` from now, when the backend can sign one. Local disk
    /// cannot, so the server streams the bytes itself.
    async fn presigned_url(&self, _key: &str, _expires: Duration) -> Option<String> {
        None
    }
}

/// A backend's side of one upload: where the bytes go until they are
/// persisted. Dropping it before [`Staging::persist`] succeeds must remove
/// whatever it wrote. `Sync` so that a handler may hold a staged blob by
/// reference across an await.
#[async_trait]
pub trait Staging: Send + Sync + 'static {
    /// Appends a chunk.
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()>;

    /// Makes everything written durable; nothing is written after it.
    async fn finish(&mut self) -> BlobResult<()>;

    /// Puts the bytes under `key` (already checked), replacing any blob there.
    async fn persist(self: Box<Self>, key: &str) -> BlobResult<()>;
}

/// Keys are `/`-separated segments of `[A-Za-z0-9._+-]`, none empty or starting with `.`.
pub fn check_key(key: &str) -> BlobResult<()> {
    let ok = !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        });
    if ok { Ok(()) } else { Err(BlobError::InvalidKey(key.to_owned())) }
}

/// An upload being written: counts and hashes every byte on its way to the backend.
pub struct BlobWriter {
    staging: Box<dyn Staging>,
    size: u64,
    sha256: Sha256,
    sha512: Sha512,
    sha1: Sha1,
    md5: Md5,
}

impl BlobWriter {
    /// A writer over a backend's staging (what [`BlobStore::writer`] returns).
    pub fn new(staging: Box<dyn Staging>) -> Self {
        Self { staging, size: 0, sha256: Sha256::new(), sha512: Sha512::new(), sha1: Sha1::new(), md5: Md5::new() }
    }

    pub async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.sha256.update(chunk);
        self.sha512.update(chunk);
        self.sha1.update(chunk);
        self.md5.update(chunk);
        self.size += chunk.len() as u64;
        self.staging.write(chunk).await
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the bytes durable and returns them staged, with their digests.
    pub async fn finish(mut self) -> BlobResult<StagedBlob> {
        self.staging.finish().await?;
        Ok(StagedBlob {
            staging: self.staging,
            size: self.size,
            sha256: hex::encode(self.sha256.finalize()),
            sha512: hex::encode(self.sha512.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            md5: hex::encode(self.md5.finalize()),
        })
    }
}

/// A complete upload, not yet under its key.
pub struct StagedBlob {
    staging: Box<dyn Staging>,
    pub size: u64,
    pub sha256: String,
    pub sha512: String,
    pub sha1: String,
    pub md5: String,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::AsyncReadExt;

    use super::*;

    async fn store() -> (tempfile::TempDir, Arc<dyn BlobStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        (dir, Arc::new(store))
    }

    fn staged_files(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count()
    }

    async fn put(store: &dyn BlobStore, bytes: &[u8]) -> StagedBlob {
        let mut w = store.writer().await.unwrap();
        for chunk in bytes.chunks(7) {
            w.write(chunk).await.unwrap();
        }
        w.finish().await.unwrap()
    }

    async fn read_all(store: &dyn BlobStore, key: &str, range: Option<(u64, u64)>) -> (Vec<u8>, u64) {
        let mut read = store.read(key, range).await.unwrap();
        let mut out = Vec::new();
        read.reader.read_to_end(&mut out).await.unwrap();
        (out, read.len)
    }

    #[tokio::test]
    async fn a_staged_write_is_hashed_on_the_way_in_and_persisted_under_its_key() {
        let (dir, store) = store().await;
        let mut w = store.writer().await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        assert_eq!(w.size(), 11);
        assert_eq!(staged_files(&dir), 1, "chunks go to staging as they arrive");
        let staged = w.finish().await.unwrap();
        assert_eq!(staged.size, 11);
        assert_eq!(staged.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(staged.sha1, "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        assert_eq!(staged.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert!(matches!(store.stat("t/fw1/app.bin").await, Err(BlobError::NotFound(_))));
        store.persist(staged, "t/fw1/app.bin").await.unwrap();
        assert_eq!(staged_files(&dir), 0);
        assert_eq!(store.stat("t/fw1/app.bin").await.unwrap().len, 11);
        assert_eq!(read_all(store.as_ref(), "t/fw1/app.bin", None).await, (b"hello world".to_vec(), 11));

        let again = put(store.as_ref(), b"replaced").await;
        store.persist(again, "t/fw1/app.bin").await.unwrap();
        assert_eq!(read_all(store.as_ref(), "t/fw1/app.bin", None).await, (b"replaced".to_vec(), 8));
        assert_eq!(
            store.presigned_url("t/fw1/app.bin", Duration::from_secs(60)).await,
            None,
            "local disk signs nothing"
        );
    }

    #[tokio::test]
    async fn ranged_reads_return_the_range_and_the_whole_length() {
        let (_dir, store) = store().await;
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let staged = put(store.as_ref(), &bytes).await;
        store.persist(staged, "t/fw/a.bin").await.unwrap();
        assert_eq!(read_all(store.as_ref(), "t/fw/a.bin", Some((100, 199))).await, (bytes[100..200].to_vec(), 1000));
        assert_eq!(read_all(store.as_ref(), "t/fw/a.bin", Some((990, 999))).await, (bytes[990..].to_vec(), 1000));
        assert_eq!(read_all(store.as_ref(), "t/fw/a.bin", Some((5, 5))).await, (vec![5], 1000));
        for (start, end) in [(0, 1000), (1000, 1000), (9, 1)] {
            assert!(
                matches!(store.read("t/fw/a.bin", Some((start, end))).await, Err(BlobError::Range { .. })),
                "{start}-{end}"
            );
        }
        assert!(matches!(store.read("t/fw/nope.bin", None).await, Err(BlobError::NotFound(_))));
        assert!(matches!(store.read("../a.bin", None).await, Err(BlobError::InvalidKey(_))));
    }

    #[tokio::test]
    async fn delete_and_delete_prefix_remove_what_is_under_them() {
        let (_dir, store) = store().await;
        for key in ["t/fw1-x/a.bin", "t/fw1-x/b.bin", "t/fw1-y/a.bin", "t/fw10/a.bin"] {
            let staged = put(store.as_ref(), key.as_bytes()).await;
            store.persist(staged, key).await.unwrap();
        }
        store.delete("t/fw1-x/b.bin").await.unwrap();
        store.delete("t/fw1-x/b.bin").await.unwrap();
        assert!(matches!(store.stat("t/fw1-x/b.bin").await, Err(BlobError::NotFound(_))));
        assert!(store.stat("t/fw1-x/a.bin").await.is_ok());
        store.delete_prefix("t/fw1-x").await.unwrap();
        store.delete_prefix("t/fw1-x").await.unwrap();
        store.delete_prefix("t/never").await.unwrap();
        assert!(matches!(store.stat("t/fw1-x/a.bin").await, Err(BlobError::NotFound(_))));
        for kept in ["t/fw1-y/a.bin", "t/fw10/a.bin"] {
            assert_eq!(read_all(store.as_ref(), kept, None).await.0, kept.as_bytes());
        }
        assert!(matches!(store.delete_prefix("t/../..").await, Err(BlobError::InvalidKey(_))));
    }

    #[tokio::test]
    async fn an_upload_dropped_before_persist_leaves_nothing() {
        let (dir, store) = store().await;
        let mut w = store.writer().await.unwrap();
        w.write(b"partial").await.unwrap();
        drop(w);
        let staged = put(store.as_ref(), b"staged").await;
        assert_eq!(staged_files(&dir), 1);
        drop(staged);
        assert_eq!(staged_files(&dir), 0);
        assert!(matches!(store.stat("t/fw/a.bin").await, Err(BlobError::NotFound(_))));
        let staged = put(store.as_ref(), b"refused").await;
        assert!(matches!(store.persist(staged, "t/../a.bin").await, Err(BlobError::InvalidKey(_))));
        assert_eq!(staged_files(&dir), 0, "a refused persist drops the staged file");
        assert_eq!(std::fs::read_dir(dir.path().join("blobs")).unwrap().count(), 0);
    }

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "../x", "a//b", "a/.hidden", "a/b c", "/abs", "a/"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert!(check_key("default/fw_1/app-1.2+b.bin").is_ok());
    }
}
