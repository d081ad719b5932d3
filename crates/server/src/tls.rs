//! TLS for the listener: the server's certificate from PEM files, reloaded when
//! they change, and optional client certificates of devices.
//!
//! - [`ReloadingCert`] answers every handshake with the certificate last loaded;
//!   [`watch`] looks at the files' modification times every `tls_reload_ms` and
//!   swaps in the new pair once it loads and its key matches. A file that does not
//!   load (half written, wrong key) is logged and the old certificate kept.
//! - Only TLS 1.2 and 1.3 with ring's safe defaults, ALPN `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::Settings;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and key in two PEM files, checked to belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{}: no certificate in it", cert.display());
    let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let key_der =
        PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| format!("{}: not a PEM private key", key.display()))?;
    CertifiedKey::from_der(chain, key_der, &provider())
        .with_context(|| format!("{} and {} do not make a certificate and its key", cert.display(), key.display()))
}

/// The server's certificate, swapped whole when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    pub fn new(key: CertifiedKey) -> Self {
        ReloadingCert { current: RwLock::new(Arc::new(key)) }
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The listener's TLS: the configuration every handshake uses, and the
/// certificate [`watch`] reloads.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<ServerConfig>,
    pub cert: Arc<ReloadingCert>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub reload_every: Duration,
}

/// The TLS configuration of `settings`, or `None` when the server speaks plain HTTP.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<Tls>> {
    let (Some(cert_file), Some(key_file)) = (&settings.tls_cert_file, &settings.tls_key_file) else {
        return Ok(None);
    };
    let cert = Arc::new(ReloadingCert::new(load_certified_key(cert_file, key_file)?));
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = builder.with_no_client_auth();
    let mut config = builder.with_cert_resolver(cert.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        config: Arc::new(config),
        cert,
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
        reload_every: Duration::from_millis(settings.tls_reload_ms.max(10)),
    }))
}

/// What identifies a version of a file: its modification time and length.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reloads the certificate whenever its files change, until `stop` turns true.
pub async fn watch(tls: Tls, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut seen = (stamp(&tls.cert_file), stamp(&tls.key_file));
    let mut every = tokio::time::interval(tls.reload_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let now = (stamp(&tls.cert_file), stamp(&tls.key_file));
        if now == seen {
            continue;
        }
        seen = now;
        let (cert_file, key_file) = (tls.cert_file.clone(), tls.key_file.clone());
        let loaded = match tokio::task::spawn_blocking(move || load_certified_key(&cert_file, &key_file)).await {
            Ok(loaded) => loaded,
            Err(e) => Err(anyhow::anyhow!("the reload task failed: {e}")),
        };
        match loaded {
            Ok(key) => {
                tls.cert.replace(key);
                metrics::counter!(crate::metrics::TLS_RELOADS, "result" => "loaded").increment(1);
                tracing::info!(cert = %tls.cert_file.display(), "tls certificate reloaded");
            }
            Err(e) => {
                metrics::counter!(crate::metrics::TLS_RELOADS, "result" => "kept_previous").increment(1);
                tracing::warn!(cert = %tls.cert_file.display(), error = format!("{e:#}"), "tls certificate not reloaded: keeping the previous one");
            }
        }
    }
}
