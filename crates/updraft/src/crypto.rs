//! The application's [`TrustCrypto`] port, provided by `updraft-trust` (TUF
//! metadata over `tough`, sealing with AES-256-GCM). It lives here, where the
//! backends are chosen, so that neither the use cases nor the HTTP front door
//! depend on a TUF implementation.

use std::collections::BTreeMap;

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::{Value, json};
use updraft_app::store::TrustRole;
use updraft_app::trust::{NewKey, RootInfo, TargetFile, TrustCrypto};
use updraft_trust::metadata;
use updraft_trust::tough::schema::{RoleType, Root, Signed, Snapshot, Targets, Timestamp as TimestampRole};
use updraft_trust::{Sealer, SigningKey};

/// TUF and sealing, under one key-encryption key.
pub struct Tuf {
    sealer: Sealer,
}

impl Tuf {
    pub fn new(sealer: Sealer) -> Tuf {
        Tuf { sealer }
    }
}

fn role_type(role: TrustRole) -> RoleType {
    match role {
        TrustRole::Root => RoleType::Root,
        TrustRole::Targets => RoleType::Targets,
        TrustRole::Snapshot => RoleType::Snapshot,
        TrustRole::Timestamp => RoleType::Timestamp,
    }
}

fn info(root: &Signed<Root>) -> RootInfo {
    let roles = TrustRole::ALL
        .into_iter()
        .map(|r| {
            let ids = metadata::role_key_ids(&root.signed, role_type(r));
            let threshold = root.signed.roles.get(&role_type(r)).map_or(1, |k| k.threshold.get());
            (r, (ids, threshold))
        })
        .collect();
    RootInfo { version: root.signed.version.get(), expires: root.signed.expires, roles }
}

fn keys(pkcs8: &[Vec<u8>]) -> Result<Vec<SigningKey>, String> {
    pkcs8.iter().map(|k| SigningKey::from_pkcs8(k).map_err(|e| e.to_string())).collect()
}

fn text(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

#[async_trait]
impl TrustCrypto for Tuf {
    fn seal(&self, context: &str, secret: &[u8]) -> String {
        self.sealer.seal(context, secret)
    }

    fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, String> {
        self.sealer.open(context, sealed).map_err(|e| e.to_string())
    }

    fn mac(&self, context: &str, message: &[u8]) -> [u8; 32] {
        self.sealer.mac(context, message)
    }

    fn generate_key(&self) -> NewKey {
        let key = SigningKey::generate();
        NewKey {
            key_id: key.id().to_owned(),
            public_key: serde_json::to_string(key.public()).expect("a key serializes"),
            pkcs8: key.pkcs8().to_vec(),
        }
    }

    fn check_root(&self, trusted: Option<&str>, new: &[u8], now: Timestamp) -> Result<RootInfo, String> {
        let trusted = trusted.map(|t| metadata::parse::<Root>(t.as_bytes())).transpose().map_err(|e| e.to_string())?;
        let new = metadata::parse::<Root>(new).map_err(|e| e.to_string())?;
        metadata::check_root(trusted.as_ref(), &new, now).map_err(|e| e.to_string())?;
        Ok(info(&new))
    }

    fn root_info(&self, root: &str) -> Result<RootInfo, String> {
        metadata::parse::<Root>(root.as_bytes()).map(|r| info(&r)).map_err(|e| e.to_string())
    }

    fn verifies(&self, root: &str, role: TrustRole, body: &str) -> bool {
        let Ok(root) = metadata::parse::<Root>(root.as_bytes()) else { return false };
        let body = body.as_bytes();
        match role {
            TrustRole::Root => metadata::verify::<Root>(&root.signed, body).is_ok(),
            TrustRole::Targets => metadata::verify::<Targets>(&root.signed, body).is_ok(),
            TrustRole::Snapshot => metadata::verify::<Snapshot>(&root.signed, body).is_ok(),
            TrustRole::Timestamp => metadata::verify::<TimestampRole>(&root.signed, body).is_ok(),
        }
    }

    fn listed_targets(&self, targets: &str) -> Result<BTreeMap<String, Value>, String> {
        let t = metadata::parse::<Targets>(targets.as_bytes()).map_err(|e| e.to_string())?;
        Ok(t.signed
            .targets
            .iter()
            .map(|(name, target)| {
                let custom: serde_json::Map<String, Value> = target.custom.clone().into_iter().collect();
                let sha256 = hex::encode(target.hashes.sha256.as_ref() as &[u8]);
                (name.raw().to_owned(), json!({"length": target.length, "sha256": sha256, "custom": custom}))
            })
            .collect())
    }

    async fn targets(
        &self,
        files: &[TargetFile],
        version: u64,
        expires: Timestamp,
        pkcs8: &[Vec<u8>],
    ) -> Result<String, String> {
        let keys = keys(pkcs8)?;
        let files: Vec<metadata::TargetFile> = files
            .iter()
            .map(|f| metadata::TargetFile {
                name: f.name.clone(),
                length: f.length,
                sha256: f.sha256.clone(),
                sha512: f.sha512.clone(),
                custom: f.custom.clone(),
            })
            .collect();
        let refs: Vec<&SigningKey> = keys.iter().collect();
        text(metadata::targets(&files, version, expires, &refs).await.map_err(|e| e.to_string())?)
    }

    async fn snapshot(
        &self,
        targets: &str,
        targets_version: u64,
        version: u64,
        expires: Timestamp,
        pkcs8: &[Vec<u8>],
    ) -> Result<String, String> {
        let keys = keys(pkcs8)?;
        let refs: Vec<&SigningKey> = keys.iter().collect();
        let body = metadata::snapshot(targets.as_bytes(), targets_version, version, expires, &refs).await;
        text(body.map_err(|e| e.to_string())?)
    }

    async fn timestamp(
        &self,
        snapshot: &str,
        snapshot_version: u64,
        version: u64,
        expires: Timestamp,
        pkcs8: &[Vec<u8>],
    ) -> Result<String, String> {
        let keys = keys(pkcs8)?;
        let refs: Vec<&SigningKey> = keys.iter().collect();
        let body = metadata::timestamp(snapshot.as_bytes(), snapshot_version, version, expires, &refs).await;
        text(body.map_err(|e| e.to_string())?)
    }
}
