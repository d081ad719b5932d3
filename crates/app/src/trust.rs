//! Signed delivery with The Update Framework (TUF): a repository per tenant
//! and product, whose targets are the product's firmware files.
//!
//! The root role's keys stay with the operator (`updraft trust init`,
//! `updraft trust sign-root`): updraft only checks and serves the roots it is
//! given. It holds the online roles' keys (targets, snapshot, timestamp),
//! sealed under the configured key-encryption key, and signs with them:
//!
//! - [`App::trust_publish`] brings a repository up to date with the product's
//!   firmware and the current root, re-signing only what changed or nears its
//!   expiry; the `trust` follower calls it on firmware changes, and the
//!   `trust` worker before metadata expires;
//! - [`App::trust_set_root`] takes a new root (checked as a TUF client checks
//!   it) and publishes with the keys it names, destroying the online keys it
//!   dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};
use updraft_core::{Access, Firmware, FirmwareFile, PageRequest};

use crate::error::{Error, ErrorCode, Result};
use crate::store::{StoreResult, TrustKey, TrustMetadata, TrustRole};
use crate::{Actor, App};

/// How many versions of targets, snapshot and timestamp metadata are kept
/// (a client that read a timestamp can still fetch the snapshot it names).
const KEEP_VERSIONS: u64 = 20;

/// One firmware file as a TUF target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFile {
    /// The target path (`<version>/<file name>`).
    pub name: String,
    pub length: u64,
    pub sha256: String,
    pub sha512: String,
    /// Product, version, component, security version…: what clients decide by.
    pub custom: serde_json::Map<String, Value>,
}

/// What a root says: its version, expiry, and each role's key ids and threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootInfo {
    pub version: u64,
    pub expires: Timestamp,
    pub roles: BTreeMap<TrustRole, (Vec<String>, u64)>,
}

impl RootInfo {
    /// The key ids the root lists for `role`.
    pub fn key_ids(&self, role: TrustRole) -> &[String] {
        self.roles.get(&role).map_or(&[], |(ids, _)| ids.as_slice())
    }
}

/// A new online key: its TUF id, public half (TUF JSON) and PKCS#8 private half.
pub struct NewKey {
    pub key_id: String,
    pub public_key: String,
    pub pkcs8: Vec<u8>,
}

/// The cryptography of TUF and of secrets at rest, which the application
/// layer asks for and `updraft-trust` provides (over `tough`), the way the
/// store is provided: this crate names no TUF implementation. Metadata
/// passes as the exact text served; keys as PKCS#8.
#[async_trait]
pub trait TrustCrypto: Send + Sync + 'static {
    /// `secret` sealed under the key-encryption key for `context`.
    fn seal(&self, context: &str, secret: &[u8]) -> String;
    /// What [`TrustCrypto::seal`] sealed for `context`.
    fn open(&self, context: &str, sealed: &str) -> std::result::Result<Vec<u8>, String>;
    /// HMAC-SHA256 of `message` for `context`, under a key every replica shares
    /// (derived from the key-encryption key): signed download links.
    fn mac(&self, context: &str, message: &[u8]) -> [u8; 32];
    /// A new Ed25519 key.
    fn generate_key(&self) -> NewKey;
    /// Reads `new` as root metadata and checks it may follow `trusted` (none:
    /// it is the first) as a TUF client checks it, at `now`.
    fn check_root(&self, trusted: Option<&str>, new: &[u8], now: Timestamp) -> std::result::Result<RootInfo, String>;
    /// What a root (already accepted) says.
    fn root_info(&self, root: &str) -> std::result::Result<RootInfo, String>;
    /// Whether `body` is `role` metadata signed as `root` requires.
    fn verifies(&self, root: &str, role: TrustRole, body: &str) -> bool;
    /// What targets metadata lists: name → `{length, sha256, custom}`.
    fn listed_targets(&self, targets: &str) -> std::result::Result<BTreeMap<String, Value>, String>;
    /// Targets metadata listing `files`, signed by `keys`.
    async fn targets(
        &self,
        files: &[TargetFile],
        version: u64,
        expires: Timestamp,
        keys: &[Vec<u8>],
    ) -> std::result::Result<String, String>;
    /// Snapshot metadata naming `targets` at `targets_version`.
    async fn snapshot(
        &self,
        targets: &str,
        targets_version: u64,
        version: u64,
        expires: Timestamp,
        keys: &[Vec<u8>],
    ) -> std::result::Result<String, String>;
    /// Timestamp metadata naming `snapshot` at `snapshot_version`.
    async fn timestamp(
        &self,
        snapshot: &str,
        snapshot_version: u64,
        version: u64,
        expires: Timestamp,
        keys: &[Vec<u8>],
    ) -> std::result::Result<String, String>;
}

/// How long each online role's metadata is valid, and when it is re-signed
/// (half way through).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub targets: SignedDuration,
    pub snapshot: SignedDuration,
    pub timestamp: SignedDuration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            targets: SignedDuration::from_hours(24 * 90),
            snapshot: SignedDuration::from_hours(24 * 7),
            timestamp: SignedDuration::from_hours(24),
        }
    }
}

/// One online key as the management API shows it: never its private half.
#[derive(Debug, Clone, Serialize)]
pub struct OnlineKey {
    pub key_id: String,
    pub role: &'static str,
    /// The TUF key object, as a root lists it.
    pub public_key: Value,
    /// Whether the current root lists it (a key made by rotation is not
    /// used until a root signed offline lists it).
    pub in_root: bool,
    pub created_at: Timestamp,
}

/// One role's newest metadata.
#[derive(Debug, Clone, Serialize)]
pub struct RoleVersion {
    pub version: u64,
    pub expires: Timestamp,
}

/// A product's repository.
#[derive(Debug, Clone, Serialize)]
pub struct TrustStatus {
    pub product: String,
    /// The metadata's address, relative to the server (`/tuf/{tenant}/{product}/metadata/`).
    pub metadata_path: String,
    pub targets_path: String,
    pub keys: Vec<OnlineKey>,
    pub root: Option<RoleVersion>,
    pub targets: Option<RoleVersion>,
    pub snapshot: Option<RoleVersion>,
    pub timestamp: Option<RoleVersion>,
}

/// What a request for a repository's file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustFile {
    /// `N.root.json`, `root.json` (newest) and the same for the other roles;
    /// `timestamp.json` is always the newest.
    Metadata(TrustRole, Option<u64>),
    /// A target: its path, the SHA-256 the client put before its file name
    /// (python-tuf: `dir/<sha256>.file`) or the whole path (tough:
    /// `<sha256>.dir/file`), if any.
    Target { name: String, sha256: Option<String> },
}

impl TrustFile {
    /// Reads a metadata file name (`3.root.json`, `timestamp.json`).
    pub fn metadata(file: &str) -> Option<TrustFile> {
        let stem = file.strip_suffix(".json")?;
        let (version, role) = match stem.split_once('.') {
            Some((v, r)) => (Some(v.parse::<u64>().ok().filter(|v| *v > 0)?), r),
            None => (None, stem),
        };
        let role = TrustRole::parse(role)?;
        if role == TrustRole::Timestamp && version.is_some() {
            return None;
        }
        Some(TrustFile::Metadata(role, version))
    }

    /// Reads a target path as either client asks for it.
    pub fn target(path: &str) -> TrustFile {
        fn digest_prefix(s: &str) -> Option<(&str, &str)> {
            let (h, rest) = s.split_once('.')?;
            (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) && !rest.is_empty()).then_some((h, rest))
        }
        if let Some((h, rest)) = digest_prefix(path) {
            return TrustFile::Target { name: rest.to_owned(), sha256: Some(h.to_ascii_lowercase()) };
        }
        if let Some((dir, file)) = path.rsplit_once('/')
            && let Some((h, rest)) = digest_prefix(file)
        {
            return TrustFile::Target { name: format!("{dir}/{rest}"), sha256: Some(h.to_ascii_lowercase()) };
        }
        TrustFile::Target { name: path.to_owned(), sha256: None }
    }
}

/// A file's TUF target path within its product's repository.
pub fn target_name(firmware: &Firmware, file: &FirmwareFile) -> String {
    format!("{}/{}", firmware.version, file.name)
}

fn context(tenant: &str, product: &str, key_id: &str) -> String {
    format!("tuf:{tenant}:{product}:{key_id}")
}

fn refused(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::TrustRootRefused, message)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal("trust", e)
}

impl App {
    fn crypto(&self) -> &Arc<dyn TrustCrypto> {
        &self.crypto
    }

    /// A product's repository: its online keys (public halves) and the newest version of each role.
    pub async fn trust_status(&self, actor: &Actor, product: &str) -> Result<TrustStatus> {
        actor.require(Access::Read)?;
        let tenant = actor.tenant();
        self.require_product(tenant, product).await?;
        self.status(tenant, product).await
    }

    async fn require_product(&self, tenant: &str, product: &str) -> Result<()> {
        match self.store.get_product(tenant, product).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found("product", product)),
        }
    }

    async fn status(&self, tenant: &str, product: &str) -> Result<TrustStatus> {
        let root = self.current_root(tenant, product).await?;
        let listed: BTreeSet<String> = root
            .as_ref()
            .map(|(r, _)| TrustRole::ONLINE.iter().flat_map(|role| r.key_ids(*role).to_vec()).collect())
            .unwrap_or_default();
        let keys = self
            .store
            .trust_keys(tenant, product)
            .await?
            .into_iter()
            .map(|k| OnlineKey {
                in_root: listed.contains(&k.key_id),
                public_key: serde_json::from_str(&k.public_key).unwrap_or(Value::Null),
                key_id: k.key_id,
                role: k.role.as_str(),
                created_at: k.created_at,
            })
            .collect();
        let mut versions = BTreeMap::new();
        for role in TrustRole::ALL {
            if let Some(m) = self.store.trust_metadata(tenant, product, role, None).await? {
                versions.insert(role, RoleVersion { version: m.version, expires: m.expires_at });
            }
        }
        Ok(TrustStatus {
            product: product.to_owned(),
            metadata_path: format!("/tuf/{tenant}/{product}/metadata/"),
            targets_path: format!("/tuf/{tenant}/{product}/targets/"),
            keys,
            root: versions.remove(&TrustRole::Root),
            targets: versions.remove(&TrustRole::Targets),
            snapshot: versions.remove(&TrustRole::Snapshot),
            timestamp: versions.remove(&TrustRole::Timestamp),
        })
    }

    /// Makes the online keys a first root needs (one per online role) when
    /// the product has none yet, and returns the repository: what `updraft
    /// trust init` puts into the root it signs.
    pub async fn trust_prepare_keys(&self, actor: &Actor, product: &str) -> Result<TrustStatus> {
        actor.require(Access::ManageKeys)?;
        let tenant = actor.tenant();
        self.require_product(tenant, product).await?;
        let held = self.store.trust_keys(tenant, product).await?;
        let missing: Vec<TrustRole> =
            TrustRole::ONLINE.into_iter().filter(|r| !held.iter().any(|k| k.role == *r)).collect();
        if !missing.is_empty() {
            let keys: Vec<TrustKey> = missing.into_iter().map(|r| self.new_key(tenant, product, r)).collect();
            self.store.add_trust_keys(tenant, product, &keys).await?;
        }
        self.status(tenant, product).await
    }

    /// Makes a new key for an online role: a root signed offline must list it
    /// (`updraft trust sign-root`) before it signs; the key it replaces is
    /// destroyed once a root no longer lists it.
    pub async fn trust_rotate_key(&self, actor: &Actor, product: &str, role: &str) -> Result<TrustStatus> {
        actor.require(Access::ManageKeys)?;
        let tenant = actor.tenant();
        self.require_product(tenant, product).await?;
        let role = TrustRole::parse(role)
            .filter(|r| *r != TrustRole::Root)
            .ok_or_else(|| Error::field("role", "one of targets, snapshot, timestamp (root keys are kept offline)"))?;
        let key = self.new_key(tenant, product, role);
        self.store.add_trust_keys(tenant, product, &[key]).await?;
        self.status(tenant, product).await
    }

    fn new_key(&self, tenant: &str, product: &str, role: TrustRole) -> TrustKey {
        let key = self.crypto().generate_key();
        TrustKey {
            sealed: self.crypto().seal(&context(tenant, product, &key.key_id), &key.pkcs8),
            key_id: key.key_id,
            role,
            public_key: key.public_key,
            created_at: self.now(),
        }
    }

    /// The newest root, as served.
    pub async fn trust_root(&self, actor: &Actor, product: &str) -> Result<String> {
        actor.require(Access::Read)?;
        let tenant = actor.tenant();
        self.require_product(tenant, product).await?;
        match self.store.trust_metadata(tenant, product, TrustRole::Root, None).await? {
            Some(m) => Ok(m.body),
            None => Err(Error::of(ErrorCode::TrustNotInitialized)),
        }
    }

    /// The newest root: what it says, and its text.
    async fn current_root(&self, tenant: &str, product: &str) -> Result<Option<(RootInfo, String)>> {
        let Some(m) = self.store.trust_metadata(tenant, product, TrustRole::Root, None).await? else {
            return Ok(None);
        };
        let info = self.crypto().root_info(&m.body).map_err(internal)?;
        Ok(Some((info, m.body)))
    }

    /// Takes a new root, signed offline: the first (version 1, signed by its
    /// own root keys) or the next (signed by a threshold of the current
    /// root's keys and of its own). Every online key it lists must be one
    /// updraft holds. The repository is then published under it, and the
    /// online keys the previous root listed and this one does not are destroyed.
    pub async fn trust_set_root(&self, actor: &Actor, product: &str, body: &[u8]) -> Result<TrustStatus> {
        actor.require(Access::ManageKeys)?;
        let tenant = actor.tenant();
        self.require_product(tenant, product).await?;
        let now = self.now();
        let current = self.current_root(tenant, product).await?;
        let new =
            self.crypto().check_root(current.as_ref().map(|(_, text)| text.as_str()), body, now).map_err(refused)?;
        let held = self.store.trust_keys(tenant, product).await?;
        for role in TrustRole::ONLINE {
            let listed = new.key_ids(role);
            let threshold = new.roles.get(&role).map_or(1, |(_, t)| *t);
            for id in listed {
                if !held.iter().any(|k| &k.key_id == id && k.role == role) {
                    return Err(refused(format!(
                        "the root lists {role} key {id}, which updraft does not hold: list the online keys \
                         (`updraft trust status`) and sign a root with those",
                        role = role.as_str()
                    )));
                }
            }
            if (listed.len() as u64) < threshold {
                return Err(refused(format!("the {} role's threshold is more than its keys", role.as_str())));
            }
        }
        let text = String::from_utf8(body.to_vec()).map_err(|_| refused("the root is not UTF-8"))?;
        self.publish(tenant, product, now, Some((new.clone(), text))).await?;
        if let Some((old, _)) = current {
            let still: BTreeSet<String> = TrustRole::ONLINE.iter().flat_map(|r| new.key_ids(*r).to_vec()).collect();
            let dropped: Vec<String> = TrustRole::ONLINE
                .iter()
                .flat_map(|r| old.key_ids(*r).to_vec())
                .filter(|id| !still.contains(id))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.store.retire_trust_keys(tenant, product, &dropped).await?;
        }
        tracing::info!(tenant, product, version = new.version, "trust root published");
        self.status(tenant, product).await
    }

    /// Brings a repository up to date (no-op without a root): re-signs the
    /// targets when the product's firmware changed, their keys changed or
    /// they near their expiry, and snapshot and timestamp with them or on
    /// their own schedule.
    pub async fn trust_publish(&self, tenant: &str, product: &str, now: Timestamp) -> Result<bool> {
        self.publish(tenant, product, now, None).await
    }

    async fn publish(
        &self,
        tenant: &str,
        product: &str,
        now: Timestamp,
        new_root: Option<(RootInfo, String)>,
    ) -> Result<bool> {
        for _ in 0..3 {
            if let Some(done) = self.try_publish(tenant, product, now, new_root.clone()).await? {
                return Ok(done);
            }
        }
        Err(Error::new(ErrorCode::Unavailable, "the repository kept changing while it was published; retry"))
    }

    /// One attempt: `None` when another writer published first.
    async fn try_publish(
        &self,
        tenant: &str,
        product: &str,
        now: Timestamp,
        new_root: Option<(RootInfo, String)>,
    ) -> Result<Option<bool>> {
        let (root, root_text, root_item) = match new_root {
            Some((root, text)) => {
                let item = TrustMetadata {
                    role: TrustRole::Root,
                    version: root.version,
                    body: text.clone(),
                    expires_at: root.expires,
                };
                (root, text, Some(item))
            }
            None => match self.current_root(tenant, product).await? {
                Some((root, text)) => (root, text, None),
                None => return Ok(Some(false)),
            },
        };
        let crypto = self.crypto().clone();
        let lifetimes = self.config.trust_lifetimes;
        let latest = |role| self.store.trust_metadata(tenant, product, role, None);
        let (targets, snapshot, timestamp) = (
            latest(TrustRole::Targets).await?,
            latest(TrustRole::Snapshot).await?,
            latest(TrustRole::Timestamp).await?,
        );
        let files = self.target_files(tenant, product).await?;
        let fresh =
            |m: &Option<TrustMetadata>, life: SignedDuration| m.as_ref().is_some_and(|m| m.expires_at > now + life / 2);
        let signed_by_root = |m: &Option<TrustMetadata>, role: TrustRole| {
            m.as_ref().is_some_and(|m| crypto.verifies(&root_text, role, &m.body))
        };
        let same_targets = targets
            .as_ref()
            .is_some_and(|m| crypto.listed_targets(&m.body).is_ok_and(|listed| listed == wanted(&files)));
        let new_targets =
            !(same_targets && fresh(&targets, lifetimes.targets) && signed_by_root(&targets, TrustRole::Targets));
        let new_snapshot =
            new_targets || !(fresh(&snapshot, lifetimes.snapshot) && signed_by_root(&snapshot, TrustRole::Snapshot));
        let new_timestamp = new_snapshot
            || !(fresh(&timestamp, lifetimes.timestamp) && signed_by_root(&timestamp, TrustRole::Timestamp));
        if !new_timestamp && root_item.is_none() {
            return Ok(Some(false));
        }
        let keys = self.signing_keys(tenant, product, &root).await?;
        let by_role = |role: TrustRole| -> Vec<Vec<u8>> {
            keys.iter().filter(|(r, _)| *r == role).map(|(_, k)| k.clone()).collect()
        };
        let mut items: Vec<TrustMetadata> = root_item.into_iter().collect();
        let next = |m: &Option<TrustMetadata>| m.as_ref().map_or(1, |m| m.version + 1);
        let (targets_body, targets_version) = if new_targets {
            let version = next(&targets);
            let expires = now + lifetimes.targets;
            let body =
                crypto.targets(&files, version, expires, &by_role(TrustRole::Targets)).await.map_err(internal)?;
            items.push(TrustMetadata {
                role: TrustRole::Targets,
                version,
                body: body.clone(),
                expires_at: whole(expires),
            });
            (body, version)
        } else {
            let t = targets.clone().expect("kept targets exist");
            (t.body, t.version)
        };
        let (snapshot_body, snapshot_version) = if new_snapshot {
            let version = next(&snapshot);
            let expires = now + lifetimes.snapshot;
            let body = crypto
                .snapshot(&targets_body, targets_version, version, expires, &by_role(TrustRole::Snapshot))
                .await
                .map_err(internal)?;
            items.push(TrustMetadata {
                role: TrustRole::Snapshot,
                version,
                body: body.clone(),
                expires_at: whole(expires),
            });
            (body, version)
        } else {
            let s = snapshot.clone().expect("kept snapshot exists");
            (s.body, s.version)
        };
        if new_timestamp {
            let version = next(&timestamp);
            let expires = now + lifetimes.timestamp;
            let body = crypto
                .timestamp(&snapshot_body, snapshot_version, version, expires, &by_role(TrustRole::Timestamp))
                .await
                .map_err(internal)?;
            items.push(TrustMetadata { role: TrustRole::Timestamp, version, body, expires_at: whole(expires) });
        }
        let expected = timestamp.as_ref().map_or(0, |m| m.version);
        if self.store.publish_trust(tenant, product, expected, &items, KEEP_VERSIONS).await? {
            tracing::info!(tenant, product, targets = new_targets, snapshot = new_snapshot, "trust metadata published");
            Ok(Some(true))
        } else {
            Ok(None)
        }
    }

    /// The held keys the root lists, unsealed, by role.
    async fn signing_keys(&self, tenant: &str, product: &str, root: &RootInfo) -> Result<Vec<(TrustRole, Vec<u8>)>> {
        let mut out = Vec::new();
        for k in self.store.trust_keys(tenant, product).await? {
            if !root.key_ids(k.role).contains(&k.key_id) {
                continue;
            }
            let pkcs8 = self.crypto().open(&context(tenant, product, &k.key_id), &k.sealed).map_err(|e| {
                Error::new(
                    ErrorCode::Unavailable,
                    format!("the {} key {} cannot be unsealed (is the key-encryption key the one it was sealed under?): {e}", k.role.as_str(), k.key_id),
                )
            })?;
            out.push((k.role, pkcs8));
        }
        Ok(out)
    }

    /// The product's firmware files as TUF targets.
    async fn target_files(&self, tenant: &str, product: &str) -> Result<Vec<TargetFile>> {
        let mut files = Vec::new();
        let mut page = PageRequest {
            limit: 500,
            offset: 0,
            sort: "created_at".into(),
            order: updraft_core::SortOrder::Asc,
            search: None,
            count_total: false,
        };
        loop {
            let batch = self.store.list_firmware(tenant, Some(product), &page).await?;
            let n = batch.items.len();
            for fw in batch.items {
                for file in &fw.files {
                    let sha512 =
                        if file.sha512.is_empty() { self.blob_sha512(&file.blob).await? } else { file.sha512.clone() };
                    let custom = json!({
                        "product": fw.product,
                        "firmware": fw.id,
                        "version": fw.version,
                        "component": file.component,
                        "component_version": file.version,
                        "security_version": fw.security_version,
                    });
                    files.push(TargetFile {
                        name: target_name(&fw, file),
                        length: file.size,
                        sha256: file.sha256.clone(),
                        sha512,
                        custom: custom.as_object().cloned().unwrap_or_default(),
                    });
                }
            }
            if n < page.limit as usize {
                break;
            }
            page.offset += n as u64;
        }
        Ok(files)
    }

    async fn blob_sha512(&self, key: &str) -> Result<String> {
        use sha2::Digest;
        use tokio::io::AsyncReadExt;
        let mut hasher = sha2::Sha512::new();
        let mut read = self.blobs.read(key, None).await?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = read.reader.read(&mut buf).await.map_err(|e| Error::internal("trust", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// A file of a repository as a device (or any TUF client) asks for it:
    /// metadata bytes, or the firmware file a target path names.
    pub async fn trust_file(&self, actor: &Actor, product: &str, file: &TrustFile) -> Result<TrustServed> {
        if matches!(actor, Actor::Key(_) | Actor::User(_)) {
            actor.require(Access::Read)?;
        }
        let tenant = actor.tenant().to_owned();
        match file {
            TrustFile::Metadata(role, version) => {
                let found = self.store.trust_metadata(&tenant, product, *role, *version).await?;
                match found {
                    Some(m) => Ok(TrustServed::Metadata(m.body)),
                    None => Err(Error::not_found("metadata", &format!("{product}/{}", role.as_str()))),
                }
            }
            TrustFile::Target { name, sha256 } => {
                let (version, file_name) = name.rsplit_once('/').ok_or_else(|| Error::not_found("target", name))?;
                let found = self.store.firmware_by_version(&tenant, product, version).await?;
                let hit = found.and_then(|fw| {
                    let f = fw.files.iter().find(|f| f.name == file_name)?.clone();
                    Some(f)
                });
                match hit {
                    Some(f) if sha256.as_ref().is_none_or(|h| *h == f.sha256) => Ok(TrustServed::Target(f)),
                    _ => Err(Error::not_found("target", name)),
                }
            }
        }
    }
}

/// What [`App::trust_file`] found.
#[derive(Debug, Clone)]
pub enum TrustServed {
    Metadata(String),
    Target(FirmwareFile),
}

fn whole(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).expect("in range")
}

/// What the targets metadata should list, comparable with [`TrustCrypto::listed_targets`].
fn wanted(files: &[TargetFile]) -> BTreeMap<String, Value> {
    files
        .iter()
        .map(|f| (f.name.clone(), json!({"length": f.length, "sha256": f.sha256, "custom": f.custom})))
        .collect()
}

/// The follower's work: republishes the repositories of tenants whose firmware changed.
pub(crate) async fn firmware_changed(app: &App, events: &[crate::store::Event]) -> StoreResult<()> {
    let tenants: BTreeSet<&str> = events
        .iter()
        .filter(|e| {
            matches!(
                e.change,
                crate::store::Change::FirmwareCreated { .. } | crate::store::Change::FirmwareDeleted { .. }
            )
        })
        .map(|e| e.tenant.as_str())
        .collect();
    for tenant in tenants {
        for (tenant, product) in app.store.trust_repositories(Some(tenant)).await? {
            if let Err(e) = app.trust_publish(&tenant, &product, app.now()).await {
                tracing::warn!(tenant, product, error = %e, "trust repository not republished");
            }
        }
    }
    Ok(())
}

/// The worker's work: re-signs what expires before its half-life.
pub(crate) async fn refresh(app: &App, now: Timestamp) -> StoreResult<()> {
    let l = app.config.trust_lifetimes;
    let mut due = BTreeSet::new();
    for (role, life) in
        [(TrustRole::Targets, l.targets), (TrustRole::Snapshot, l.snapshot), (TrustRole::Timestamp, l.timestamp)]
    {
        due.extend(app.store.trust_expiring(role, now + life / 2).await?);
    }
    for (tenant, product) in due {
        if let Err(e) = app.trust_publish(&tenant, &product, now).await {
            tracing::warn!(tenant, product, error = %e, "trust metadata not refreshed");
        }
    }
    Ok(())
}
