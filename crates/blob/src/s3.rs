//! [`BlobStore`] on an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, …),
//! through the `object_store` crate.
//!
//! Uploads stream into a multipart upload under `{prefix}/staging/{random}`
//! (8 MiB parts, a few in flight), so no replica holds a whole image in memory
//! or on disk; persisting copies the staged object to its key inside the
//! bucket and deletes the staged one. An upload dropped before it is persisted
//! is aborted (or its staged object deleted) in the background. Reads stream
//! the object, whole or by range. Presigned GET links let the bucket (or a CDN
//! in front of it) carry device downloads.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use tokio_util::io::StreamReader;

use crate::{BlobError, BlobMeta, BlobRead, BlobReader, BlobResult, BlobStore, BlobWriter, Staging, check_key};

/// Bytes of a part of a multipart upload (S3's minimum is 5 MiB).
const PART: usize = 8 << 20;
/// Parts uploaded at once per upload.
const PARTS_IN_FLIGHT: usize = 4;

/// Where the bucket is and how to reach it. Credentials and region left
/// `None` come from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, …) as AWS's own tools read them.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// `s3://{bucket}` or `s3://{bucket}/{prefix}`.
    pub url: String,
    /// The service's URL, for S3-compatible stores (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl S3Config {
    /// `bucket` on this configuration's service, with its credentials.
    fn bucket(&self, bucket: &str) -> Result<AmazonS3, object_store::Error> {
        // A device waits on these: a store that is away is answered within seconds (503), not minutes.
        let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(10), ..Default::default() };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry);
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &self.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        builder.build()
    }

    /// The bytes of object `key` (at `version`, when given) of another bucket on this
    /// service, read with the same credentials: for a request that names its image by
    /// S3 location (AWS's CreateOTAUpdate). A missing object is [`BlobError::NotFound`].
    pub async fn read_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> BlobResult<futures_util::stream::BoxStream<'static, BlobResult<Vec<u8>>>> {
        use futures_util::StreamExt;
        let store = self.bucket(bucket).map_err(io)?;
        let options = GetOptions { version: version.map(str::to_owned), ..Default::default() };
        let got = store.get_opts(&Path::from(key), options).await.map_err(not_found_as(key))?;
        Ok(got.into_stream().map(|chunk| chunk.map(|b| b.to_vec()).map_err(io)).boxed())
    }
}

/// Blobs as objects `{prefix}/blobs/{key}` of one bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    prefix: String,
}

fn io(e: object_store::Error) -> BlobError {
    BlobError::Io(std::io::Error::other(e))
}

fn not_found_as(key: &str) -> impl FnOnce(object_store::Error) -> BlobError + '_ {
    move |e| match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound(key.to_owned()),
        other => io(other),
    }
}

fn random_name() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    hex::encode(b)
}

impl S3BlobStore {
    /// Connects to the bucket `config.url` names (nothing is sent until the first call).
    pub fn open(config: &S3Config) -> BlobResult<Self> {
        let invalid = |why: String| BlobError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
        let rest = config.url.strip_prefix("s3://").ok_or_else(|| {
            invalid(format!("blobs.url `{}`: an S3 bucket is named s3://bucket[/prefix]", config.url))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(format!("blobs.url `{}` names no bucket", config.url)));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix).map_err(|_| invalid(format!("blobs.url `{}`: the prefix `{prefix}`", config.url)))?;
        }
        let store = config.bucket(bucket).map_err(|e| invalid(format!("blobs.url `{}`: {e}", config.url)))?;
        Ok(Self { store: Arc::new(store), prefix: prefix.to_owned() })
    }

    fn path(&self, area: &str, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(format!("{area}/{key}"))
        } else {
            Path::from(format!("{}/{area}/{key}", self.prefix))
        }
    }

    fn blob(&self, key: &str) -> BlobResult<Path> {
        check_key(key)?;
        Ok(self.path("blobs", key))
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn writer(&self) -> BlobResult<BlobWriter> {
        let staged = self.path("staging", &random_name());
        let upload = self.store.put_multipart(&staged).await.map_err(io)?;
        Ok(BlobWriter::new(Box::new(S3Staging {
            store: Arc::clone(&self.store),
            staged,
            upload: std::sync::Mutex::new(Some(WriteMultipart::new_with_chunk_size(upload, PART))),
            blobs: self.clone(),
            settled: false,
        })))
    }

    async fn stat(&self, key: &str) -> BlobResult<BlobMeta> {
        let meta = self.store.head(&self.blob(key)?).await.map_err(not_found_as(key))?;
        let secs = meta.last_modified.timestamp().max(0) as u64;
        Ok(BlobMeta { len: meta.size, modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs) })
    }

    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> BlobResult<BlobRead> {
        let path = self.blob(key)?;
        if let Some((start, end)) = range
            && start > end
        {
            let len = self.stat(key).await?.len;
            return Err(BlobError::Range { key: key.to_owned(), start, end, len });
        }
        let options =
            GetOptions { range: range.map(|(start, end)| GetRange::Bounded(start..end + 1)), ..Default::default() };
        let got = match self.store.get_opts(&path, options).await {
            Ok(got) => got,
            // A range past the end (416).
            Err(object_store::Error::Generic { .. } | object_store::Error::NotModified { .. }) if range.is_some() => {
                let (start, end) = range.unwrap_or_default();
                let len = self.stat(key).await?.len;
                return Err(BlobError::Range { key: key.to_owned(), start, end, len });
            }
            Err(e) => return Err(not_found_as(key)(e)),
        };
        let len = got.meta.size;
        if let Some((start, end)) = range
            && got.range != (start..end + 1)
        {
            return Err(BlobError::Range { key: key.to_owned(), start, end, len });
        }
        let stream = got.into_stream().map_err(std::io::Error::other);
        let reader: BlobReader = Box::pin(StreamReader::new(stream));
        Ok(BlobRead { reader, len })
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        match self.store.delete(&self.blob(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> BlobResult<()> {
        let dir = self.blob(prefix)?;
        let objects: Vec<Path> = self.store.list(Some(&dir)).map_ok(|m| m.location).try_collect().await.map_err(io)?;
        for path in objects {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    async fn presigned_url(&self, key: &str, expires: Duration) -> Option<String> {
        let path = self.blob(key).ok()?;
        match self.store.signed_url(Method::GET, &path, expires).await {
            Ok(url) => Some(url.to_string()),
            Err(e) => {
                tracing::warn!(%key, error = %e, "presigning a blob download failed");
                None
            }
        }
    }
}

/// One upload: a multipart upload of a staged object.
struct S3Staging {
    store: Arc<AmazonS3>,
    staged: Path,
    /// In a mutex only to be `Sync` (`Staging` is); reached through `&mut self`, never locked.
    upload: std::sync::Mutex<Option<WriteMultipart>>,
    blobs: S3BlobStore,
    /// Persisted, or cleaned up already.
    settled: bool,
}

#[async_trait]
impl Staging for S3Staging {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        let upload = self.upload.get_mut().expect("never locked").as_mut().expect("writes come before finish");
        upload.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(io)?;
        upload.write(chunk);
        Ok(())
    }

    async fn finish(&mut self) -> BlobResult<()> {
        let upload = self.upload.get_mut().expect("never locked").take().expect("finish comes once");
        upload.finish().await.map_err(io)?;
        Ok(())
    }

    async fn persist(mut self: Box<Self>, key: &str) -> BlobResult<()> {
        let dest = self.blobs.blob(key)?;
        self.store.copy(&self.staged, &dest).await.map_err(io)?;
        self.settled = true;
        if let Err(e) = self.store.delete(&self.staged).await {
            tracing::warn!(staged = %self.staged, error = %e, "deleting a staged upload failed");
        }
        Ok(())
    }
}

impl Drop for S3Staging {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let upload = self.upload.get_mut().ok().and_then(Option::take);
        let (store, staged) = (Arc::clone(&self.store), self.staged.clone());
        runtime.spawn(async move {
            let outcome = match upload {
                Some(upload) => upload.abort().await,
                None => store.delete(&staged).await,
            };
            if let Err(e) = outcome {
                tracing::warn!(%staged, error = %e, "cleaning up an abandoned upload failed");
            }
        });
    }
}
