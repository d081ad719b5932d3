//! [`BlobStore`] on the local disk.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::fs::{self, File};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{BlobError, BlobMeta, BlobRead, BlobReader, BlobResult, BlobStore, BlobWriter, Staging, check_key};

/// Files under `root/blobs/<key>`, staged in `root/tmp`; directories are
/// private to this user (0700 on Unix), files too (0600).
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    blobs: Arc<Path>,
    tmp: PathBuf,
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

/// Where `key` lives under `blobs`, once the key is known not to escape it.
fn path_of(blobs: &Path, key: &str) -> BlobResult<PathBuf> {
    check_key(key)?;
    Ok(blobs.join(key))
}

fn not_found_as(key: &str) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |e| if e.kind() == ErrorKind::NotFound { BlobError::NotFound(key.to_owned()) } else { e.into() }
}

impl LocalBlobStore {
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
        Ok(Self { blobs: blobs.into(), tmp })
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn writer(&self) -> BlobResult<BlobWriter> {
        let path = self.tmp.join(random_name());
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let file = options.open(&path).await?;
        Ok(BlobWriter::new(Box::new(LocalStaging {
            file: Some(file),
            temp: TempFile(Some(path)),
            blobs: Arc::clone(&self.blobs),
        })))
    }

    async fn stat(&self, key: &str) -> BlobResult<BlobMeta> {
        let meta = fs::metadata(path_of(&self.blobs, key)?).await.map_err(not_found_as(key))?;
        if !meta.is_file() {
            return Err(BlobError::NotFound(key.to_owned()));
        }
        Ok(BlobMeta { len: meta.len(), modified: meta.modified()? })
    }

    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> BlobResult<BlobRead> {
        let mut file = File::open(path_of(&self.blobs, key)?).await.map_err(not_found_as(key))?;
        let meta = file.metadata().await?;
        if !meta.is_file() {
            return Err(BlobError::NotFound(key.to_owned()));
        }
        let len = meta.len();
        let reader: BlobReader = match range {
            None => Box::pin(file),
            Some((start, end)) if start <= end && end < len => {
                file.seek(SeekFrom::Start(start)).await?;
                Box::pin(file.take(end - start + 1))
            }
            Some((start, end)) => return Err(BlobError::Range { key: key.to_owned(), start, end, len }),
        };
        Ok(BlobRead { reader, len })
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        match fs::remove_file(path_of(&self.blobs, key)?).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> BlobResult<()> {
        match fs::remove_dir_all(path_of(&self.blobs, prefix)?).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
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

/// An upload in a file of its own under `tmp`, moved into `blobs` on persist.
struct LocalStaging {
    file: Option<File>,
    temp: TempFile,
    blobs: Arc<Path>,
}

#[async_trait]
impl Staging for LocalStaging {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.file.as_mut().expect("file is open until finish").write_all(chunk).await?;
        Ok(())
    }

    async fn finish(&mut self) -> BlobResult<()> {
        let mut file = self.file.take().expect("finish comes once");
        file.flush().await?;
        file.sync_all().await?;
        Ok(())
    }

    async fn persist(mut self: Box<Self>, key: &str) -> BlobResult<()> {
        let dest = path_of(&self.blobs, key)?;
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
    async fn opening_empties_staging_and_keeps_stored_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        let mut w = store.writer().await.unwrap();
        w.write(b"kept").await.unwrap();
        store.persist(w.finish().await.unwrap(), "t/fw/a.bin").await.unwrap();
        // A process that stopped mid-upload leaves its staged file behind.
        std::fs::write(dir.path().join("tmp").join("left-over"), b"partial").unwrap();
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(store.stat("t/fw/a.bin").await.unwrap().len, 4);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn directories_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        let w = store.writer().await.unwrap();
        store.persist(w.finish().await.unwrap(), "t/fw/a.bin").await.unwrap();
        let mode = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
        for d in ["blobs", "tmp", "blobs/t", "blobs/t/fw"] {
            assert_eq!(mode(d), 0o700, "{d}");
        }
        assert_eq!(mode("blobs/t/fw/a.bin"), 0o600);
    }

    #[tokio::test]
    async fn a_directory_is_not_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).await.unwrap();
        let w = store.writer().await.unwrap();
        store.persist(w.finish().await.unwrap(), "t/fw/a.bin").await.unwrap();
        assert!(matches!(store.stat("t/fw").await, Err(BlobError::NotFound(_))));
        assert!(matches!(store.read("t/fw", None).await, Err(BlobError::NotFound(_))));
    }
}
