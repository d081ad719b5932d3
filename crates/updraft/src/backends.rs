//! The store and blob storage a configuration names, and the application
//! over them.

use std::sync::Arc;

use anyhow::Context;
use updraft_app::store::Store;
use updraft_app::{App, Clock};
use updraft_blob::{BlobStore, LocalBlobStore};
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
    let blobs: Arc<dyn BlobStore> =
        Arc::new(LocalBlobStore::open(&settings.data_dir.join("firmware")).await.context("opening firmware storage")?);
    Ok(App::new(store, blobs, settings.app_config(), clock))
}

/// The server's state over the backends the settings name.
pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let settings = updraft_server::checked(settings)?;
    let app = open(&settings, clock).await?;
    updraft_server::build(settings, app).await
}
