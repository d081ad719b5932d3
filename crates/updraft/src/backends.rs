//! The store and blob storage a configuration names, and the application
//! over them.

use std::sync::Arc;

use anyhow::Context;
use updraft_app::store::Store;
use updraft_app::{App, Clock};
use updraft_blob::{BlobStore, LocalBlobStore, S3BlobStore, S3Config};
use updraft_server::{AppState, Settings};

/// Opens the store the settings name: PostgreSQL for a `postgres://` URL,
/// otherwise SQLite (by default `<data_dir>/updraft.db`).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    match settings.database_url.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(updraft_store_postgres::connect(url).await.context("connecting to PostgreSQL")?))
        }
        Some(url) if url.starts_with("sqlite:") => {
            Ok(Arc::new(updraft_store_sqlite::open_url(url).await.context("opening the SQLite database")?))
        }
        Some(other) => anyhow::bail!("unsupported database URL `{other}`: use postgres://… or sqlite:…"),
        None => {
            updraft_blob::create_private_dir(&settings.data_dir).await.context("creating the data directory")?;
            let path = settings.data_dir.join("updraft.db");
            Ok(Arc::new(updraft_store_sqlite::open(&path).await.context("opening the SQLite database")?))
        }
    }
}

/// The application over the backends the settings name.
pub async fn open(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
    let store = open_store(settings).await?;
    let blobs = open_blobs(settings).await?;
    let crypto = Arc::new(crate::crypto::Tuf::new(sealer(settings, store.backend()).await?));
    Ok(App::new(store, blobs, settings.app_config(), clock, crypto))
}

/// The blob storage the settings name: an S3-compatible bucket for an `s3://`
/// `blobs.url`, otherwise files under `<data_dir>/firmware`.
pub async fn open_blobs(settings: &Settings) -> anyhow::Result<Arc<dyn BlobStore>> {
    let b = &settings.blobs;
    match b.url.as_deref() {
        Some(url) if url.starts_with("s3://") => {
            let config = S3Config { url: url.to_owned(), ..b.s3_config() };
            Ok(Arc::new(S3BlobStore::open(&config).context("opening the firmware bucket")?))
        }
        Some(other) => anyhow::bail!(
            "unsupported blobs.url `{other}`: use s3://bucket[/prefix], or leave it unset for local files"
        ),
        None => Ok(Arc::new(
            LocalBlobStore::open(&settings.data_dir.join("firmware")).await.context("opening firmware storage")?,
        )),
    }
}

/// The sealer of secrets at rest, under the configured key-encryption key:
/// the setting, else the key file (made on first start when it is the default one).
async fn sealer(settings: &Settings, backend: &str) -> anyhow::Result<updraft_trust::Sealer> {
    use updraft_trust::seal::{generate_kek, parse_kek};
    let kek = match (&settings.key_encryption_key, &settings.key_encryption_key_file) {
        (Some(k), _) => parse_kek(k).context("key_encryption_key")?,
        (None, Some(file)) => {
            let text = tokio::fs::read_to_string(file)
                .await
                .with_context(|| format!("reading the key-encryption key from {}", file.display()))?;
            parse_kek(&text).with_context(|| format!("the key-encryption key in {}", file.display()))?
        }
        (None, None) => {
            let file = settings.data_dir.join("key-encryption.key");
            match tokio::fs::read_to_string(&file).await {
                Ok(text) => {
                    parse_kek(&text).with_context(|| format!("the key-encryption key in {}", file.display()))?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    updraft_blob::create_private_dir(&settings.data_dir)
                        .await
                        .context("creating the data directory")?;
                    let kek = generate_kek();
                    write_private(&file, &kek).await.with_context(|| format!("writing {}", file.display()))?;
                    if backend != "sqlite" {
                        tracing::warn!(file = %file.display(), "a key-encryption key was made for this replica only: \
                            give every replica the same one (key_encryption_key)");
                    }
                    parse_kek(&kek)?
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
            }
        }
    };
    let previous = settings
        .key_encryption_keys_previous
        .iter()
        .map(|k| parse_kek(k))
        .collect::<Result<Vec<_>, _>>()
        .context("key_encryption_keys_previous")?;
    Ok(updraft_trust::Sealer::new(&kek, &previous)?)
}

async fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path).await?;
    f.write_all(text.as_bytes()).await?;
    f.sync_all().await
}

/// The server's state over the backends the settings name.
pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let settings = updraft_server::checked(settings)?;
    let app = open(&settings, clock).await?;
    updraft_server::build(settings, app).await
}
