//! TLS for the listener: the server's certificate from PEM files, reloaded when
//! they change, and optional client certificates of devices.
//!
//! - [`ReloadingCert`] answers every handshake with the certificate last loaded;
//!   [`watch`] looks at the files' modification times every `tls_reload_ms` and
//!   swaps in the new pair once it loads and its key matches. A file that does not
//!   load (half written, wrong key) is logged and the old certificate kept.
//! - With `tls_client_ca_file`, a client may present a certificate chained to
//!   that CA (devices); clients without one are still accepted (token
//!   authentication), and the device API reads the certificate's subject CN
//!   ([`subject_common_name`]) from the connection's [`crate::conn::PeerCertificate`].
//! - Only TLS 1.2 and 1.3 with ring's safe defaults, ALPN `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

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
    let builder = match &settings.tls_client_ca_file {
        Some(ca_file) => {
            let pem = std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(&pem) {
                let ca = ca.with_context(|| format!("{}: not a PEM certificate bundle", ca_file.display()))?;
                roots.add(ca).with_context(|| format!("{}: a certificate is not a usable CA", ca_file.display()))?;
            }
            anyhow::ensure!(!roots.is_empty(), "{}: no certificate in it", ca_file.display());
            // Devices without a certificate still connect: they authenticate with tokens.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
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

/// One DER element of `input`: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |len, b| (len << 8) | usize::from(*b)), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subject's common name (CN) of a DER certificate; `None` when it has
/// none, more than one, or the certificate cannot be read.
pub fn subject_common_name(cert: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
    let (SEQUENCE, cert, _) = der(cert)? else { return None };
    let (SEQUENCE, tbs, _) = der(cert)? else { return None };
    let mut fields = tbs;
    // [0] version (optional), then serial number, signature algorithm, issuer and validity.
    if der(fields)?.0 == 0xa0 {
        fields = der(fields)?.2;
    }
    for _ in 0..4 {
        fields = der(fields)?.2;
    }
    let (SEQUENCE, mut name, _) = der(fields)? else { return None };
    let mut found = None;
    while !name.is_empty() {
        let (SET, mut set, rest) = der(name)? else { return None };
        name = rest;
        while !set.is_empty() {
            let (SEQUENCE, attribute, rest) = der(set)? else { return None };
            set = rest;
            let (0x06, oid, value) = der(attribute)? else { return None };
            if oid != COMMON_NAME {
                continue;
            }
            if found.is_some() {
                return None;
            }
            let (tag, text, _) = der(value)?;
            found = Some(match tag {
                // UTF8String, PrintableString, IA5String
                0x0c | 0x13 | 0x16 => std::str::from_utf8(text).ok()?.to_owned(),
                // BMPString: UTF-16, big-endian
                0x1e if text.len() % 2 == 0 => {
                    String::from_utf16(&text.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect::<Vec<_>>())
                        .ok()?
                }
                _ => return None,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_read_from_broken_certificates() {
        assert_eq!(subject_common_name(b""), None);
        assert_eq!(subject_common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subject_common_name(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let _ = subject_common_name(&bytes);
        }
    }

    #[test]
    fn common_name_of_a_minimal_subject() {
        // SEQUENCE { SEQUENCE { [0] { INTEGER 2 }, INTEGER 1, SEQUENCE {}, SEQUENCE {}, SEQUENCE {},
        //   SEQUENCE { SET { SEQUENCE { OID 2.5.4.3, UTF8String "dev-1" } } } } }
        let atv = [&[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05][..], b"dev-1"].concat();
        let set = [&[0x31, atv.len() as u8 + 2, 0x30, atv.len() as u8][..], &atv].concat();
        let subject = [&[0x30, set.len() as u8][..], &set].concat();
        let tbs_fields =
            [&[0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00][..], &subject]
                .concat();
        let tbs = [&[0x30, tbs_fields.len() as u8][..], &tbs_fields].concat();
        let cert = [&[0x30, tbs.len() as u8][..], &tbs].concat();
        assert_eq!(subject_common_name(&cert).as_deref(), Some("dev-1"));
    }
}
