//! Firmware file storage on the local disk.
//!
//! Writes are streamed: a [`BlobWriter`] hashes (SHA-256, SHA-1, MD5) and
//! counts bytes as they arrive into a temporary file, never holding the whole
//! file in memory. [`StagedBlob::persist`] moves the finished file into place
//! under its key. A writer or staged blob that is dropped before it is
//! persisted removes its temporary file, so an interrupted or rejected upload
//! leaves nothing behind.

use std::path::{Path, PathBuf};

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::fs::{self, File};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob `{0}` not found")]
    NotFound(String),
    #[error("invalid blob key `{0}`")]
    InvalidKey(String),
    #[error("blob storage i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub type BlobResult<T> = Result<T, BlobError>;

/// Files under `root/blobs/<key>`, staged in `root/tmp`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

/// Keys are `/`-separated segments of `[A-Za-z0-9._+-]`, none empty or starting with `.`.
fn check_key(key: &str) -> BlobResult<()> {
    let ok = !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        });
    if ok { Ok(()) } else { Err(BlobError::InvalidKey(key.to_owned())) }
}

fn random_name() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    hex::encode(b)
}

/// Creates `dir` and its missing parents readable by this user only (0700 on Unix).
pub async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
}

impl BlobStore {
    /// Opens the store under `root`, creating it, and removes staged files
    /// left by an earlier process that stopped mid-upload.
    pub async fn open(root: &Path) -> BlobResult<Self> {
        let blobs = root.join("blobs");
        let tmp = root.join("tmp");
        create_private_dir(&blobs).await?;
        if fs::try_exists(&tmp).await? {
            fs::remove_dir_all(&tmp).await?;
        }
        create_private_dir(&tmp).await?;
        Ok(Self { blobs, tmp })
    }

    /// Starts a new staged file.
    pub async fn writer(&self) -> BlobResult<BlobWriter> {
        let path = self.tmp.join(random_name());
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let file = options.open(&path).await?;
        Ok(BlobWriter {
            file: Some(file),
            temp: TempFile(Some(path)),
            size: 0,
            sha256: Sha256::new(),
            sha1: Sha1::new(),
            md5: Md5::new(),
        })
    }

    /// The path of a stored blob, for streaming it out.
    pub fn path(&self, key: &str) -> BlobResult<PathBuf> {
        check_key(key)?;
        Ok(self.blobs.join(key))
    }

    /// Opens a stored blob and returns it with its length.
    pub async fn open_read(&self, key: &str) -> BlobResult<(File, u64)> {
        let path = self.path(key)?;
        match File::open(&path).await {
            Ok(f) => {
                let len = f.metadata().await?.len();
                Ok((f, len))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound(key.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes every blob under the key prefix (a directory); missing is fine.
    pub async fn delete_prefix(&self, prefix: &str) -> BlobResult<()> {
        let path = self.path(prefix)?;
        match fs::remove_dir_all(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// A temporary file removed on drop unless taken.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// A file being written: counts and hashes every byte.
pub struct BlobWriter {
    file: Option<File>,
    temp: TempFile,
    size: u64,
    sha256: Sha256,
    sha1: Sha1,
    md5: Md5,
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.sha256.update(chunk);
        self.sha1.update(chunk);
        self.md5.update(chunk);
        self.size += chunk.len() as u64;
        self.file.as_mut().expect("file is open until finish").write_all(chunk).await?;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes the file to disk and returns it staged, with its digests.
    pub async fn finish(mut self) -> BlobResult<StagedBlob> {
        let mut file = self.file.take().expect("file is open until finish");
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        Ok(StagedBlob {
            temp: TempFile(self.temp.0.take()),
            size: self.size,
            sha256: hex::encode(self.sha256.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            md5: hex::encode(self.md5.finalize()),
        })
    }
}

/// A complete file, not yet under its key.
pub struct StagedBlob {
    temp: TempFile,
    pub size: u64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

impl StagedBlob {
    /// Moves the file under `key` in `store`, replacing any file there.
    pub async fn persist(mut self, store: &BlobStore, key: &str) -> BlobResult<()> {
        let dest = store.path(key)?;
        if let Some(parent) = dest.parent() {
            create_private_dir(parent).await?;
        }
        let temp = self.temp.0.as_ref().expect("staged blob has its file");
        fs::rename(temp, &dest).await?;
        self.temp.0 = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_hash_persist_read_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).await.unwrap();
        let mut w = store.writer().await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        let staged = w.finish().await.unwrap();
        assert_eq!(staged.size, 11);
        assert_eq!(staged.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(staged.sha1, "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        assert_eq!(staged.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        staged.persist(&store, "t/fw1/app.bin").await.unwrap();
        let (_, len) = store.open_read("t/fw1/app.bin").await.unwrap();
        assert_eq!(len, 11);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        store.delete_prefix("t/fw1").await.unwrap();
        assert!(matches!(store.open_read("t/fw1/app.bin").await, Err(BlobError::NotFound(_))));
    }

    #[tokio::test]
    async fn dropped_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).await.unwrap();
        let mut w = store.writer().await.unwrap();
        w.write(b"partial").await.unwrap();
        drop(w);
        let mut w = store.writer().await.unwrap();
        w.write(b"staged").await.unwrap();
        drop(w.finish().await.unwrap());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "../x", "a//b", "a/.hidden", "a/b c", "/abs"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert!(check_key("default/fw_1/app-1.2+b.bin").is_ok());
    }
}
