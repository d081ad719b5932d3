//! The device CA: updraft issues each MQTT device a client certificate whose
//! subject CN is its thing name, and the broker (Mosquitto with
//! `require_certificate` and `use_identity_as_username`) takes the CN as the
//! username its ACL patterns substitute, so a device may use only its own
//! topics (ADR 0010). The CA's key and certificate are files (made on first
//! start under the data directory); replicas are given the same files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The CN of the CA's subject (issued certificates name it as their issuer).
const CA_NAME: &str = "updraft device CA";
/// The identity of updraft's own connection to the broker: no thing name can be it
/// (thing names have no `$`).
pub const SERVER_IDENTITY: &str = "$updraft-server";

/// The CA that issues devices' (and updraft's own) MQTT client certificates.
pub struct DeviceCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCa").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "updraft");
    dn.push(DnType::CommonName, CA_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

fn year_now() -> i32 {
    jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).year().into()
}

/// The default files of the device CA under `data_dir`.
pub fn default_files(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("mqtt-device-ca.pem"), data_dir.join("mqtt-device-ca.key"))
}

impl DeviceCa {
    /// The CA in `cert_file` and `key_file`, made there (key 0600) when neither exists.
    pub fn load_or_create(cert_file: &Path, key_file: &Path) -> anyhow::Result<DeviceCa> {
        match (std::fs::read_to_string(cert_file), std::fs::read_to_string(key_file)) {
            (Ok(cert_pem), Ok(key_pem)) => {
                let key = KeyPair::from_pem(&key_pem)
                    .with_context(|| format!("the device CA key in {}", key_file.display()))?;
                Ok(DeviceCa { cert_pem, issuer: Issuer::new(ca_params(), key) })
            }
            (Err(c), Err(k))
                if c.kind() == std::io::ErrorKind::NotFound && k.kind() == std::io::ErrorKind::NotFound =>
            {
                let key = KeyPair::generate().context("making the device CA key")?;
                let mut params = ca_params();
                params.not_before = rcgen::date_time_ymd(year_now() - 1, 1, 1);
                params.not_after = rcgen::date_time_ymd(year_now() + 30, 1, 1);
                let cert = params.self_signed(&key).context("signing the device CA")?;
                if let Some(dir) = key_file.parent() {
                    std::fs::create_dir_all(dir).ok();
                }
                write_private(key_file, &key.serialize_pem())
                    .with_context(|| format!("writing {}", key_file.display()))?;
                std::fs::write(cert_file, cert.pem()).with_context(|| format!("writing {}", cert_file.display()))?;
                tracing::info!(cert = %cert_file.display(), "made the MQTT device CA");
                Ok(DeviceCa { cert_pem: cert.pem(), issuer: Issuer::new(ca_params(), key) })
            }
            (Err(e), _) => Err(e).with_context(|| format!("reading {}", cert_file.display())),
            (_, Err(e)) => Err(e).with_context(|| format!("reading {}", key_file.display())),
        }
    }

    /// A client certificate for `identity` (a thing name), valid for ten years,
    /// with a new P-256 key: (certificate PEM, private key PEM).
    pub fn issue(&self, identity: &str) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate().context("making a key")?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity);
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = rcgen::date_time_ymd(year_now() - 1, 1, 1);
        p.not_after = rcgen::date_time_ymd(year_now() + 10, 1, 1);
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).context("random serial")?;
        serial[0] &= 0x7f;
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = p.signed_by(&key, &self.issuer).context("signing the certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
