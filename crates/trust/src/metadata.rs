//! TUF metadata as updraft publishes it (TUF specification 1.0, the schema
//! and key ids of `tough`): every role is serialized the way `tough` writes
//! it (pretty JSON and a newline) and signed over its canonical JSON (OLPC), so
//! `tough`, python-tuf, go-tuf and the other clients all read it.
//!
//! A repository always uses consistent snapshots: `N.root.json`,
//! `N.targets.json`, `N.snapshot.json` and `timestamp.json`; a target is
//! fetched as `<dir>/<sha256>.<file name>`.

use std::collections::HashMap;
use std::num::NonZeroU64;

use jiff::Timestamp;
use olpc_cjson::CanonicalFormatter;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::Key;
use tough::schema::{Hashes, Metafile, Role, RoleKeys, RoleType, Root, Signature, Signed, Snapshot, Target, Targets};

use crate::error::{Error, Result};
use crate::keys::{SigningKey, key_id};

/// The TUF specification version the metadata claims.
pub const SPEC_VERSION: &str = "1.0.31";

/// The public keys and thresholds of a root: what an operator decides.
#[derive(Debug, Clone)]
pub struct RootPlan {
    pub version: u64,
    pub expires: Timestamp,
    pub root: (Vec<Key>, u64),
    pub targets: (Vec<Key>, u64),
    pub snapshot: (Vec<Key>, u64),
    pub timestamp: (Vec<Key>, u64),
}

fn nonzero(n: u64, what: &str) -> Result<NonZeroU64> {
    NonZeroU64::new(n).ok_or_else(|| Error::Refused(format!("{what} must be at least 1")))
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    // Clients parse `expires` as `YYYY-MM-DDTHH:MM:SSZ`: no fractions.
    Timestamp::from_second(t.as_second()).expect("a timestamp's seconds are in range")
}

/// The root metadata (not yet signed) of a plan.
pub fn root(plan: &RootPlan) -> Result<Root> {
    let mut keys = HashMap::new();
    let mut roles = HashMap::new();
    for (role, (role_keys, threshold)) in [
        (RoleType::Root, &plan.root),
        (RoleType::Targets, &plan.targets),
        (RoleType::Snapshot, &plan.snapshot),
        (RoleType::Timestamp, &plan.timestamp),
    ] {
        if role_keys.is_empty() {
            return Err(Error::Refused(format!("the {role} role needs at least one key")));
        }
        if *threshold as usize > role_keys.len() {
            return Err(Error::Refused(format!(
                "the {role} role's threshold {threshold} is more than its {} keys",
                role_keys.len()
            )));
        }
        let mut keyids = Vec::new();
        for key in role_keys {
            let id = key.key_id().map_err(|e| Error::Key(e.to_string()))?;
            keys.insert(id.clone(), key.clone());
            if !keyids.contains(&id) {
                keyids.push(id);
            }
        }
        roles.insert(role, RoleKeys { keyids, threshold: nonzero(*threshold, "a threshold")?, _extra: HashMap::new() });
    }
    Ok(Root {
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version: nonzero(plan.version, "a version")?,
        expires: whole_seconds(plan.expires),
        keys,
        roles,
        _extra: HashMap::new(),
    })
}

/// The canonical JSON of a value: what signatures are over.
pub fn canonical<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut data, CanonicalFormatter::new());
    value.serialize(&mut ser).map_err(|e| Error::Sign(e.to_string()))?;
    Ok(data)
}

/// Adds each key's signature over `signed.signed` (a key that already signed signs again).
pub async fn add_signatures<T: Serialize>(signed: &mut Signed<T>, keys: &[&SigningKey]) -> Result<()> {
    let data = canonical(&signed.signed)?;
    for key in keys {
        let keyid: Decoded<Hex> = hex::decode(key.id()).map_err(|e| Error::Key(e.to_string()))?.into();
        signed.signatures.retain(|s| s.keyid != keyid);
        let sig = key.sign(&data).await?;
        signed.signatures.push(Signature { keyid, sig: sig.into() });
    }
    Ok(())
}

/// `role` signed by every key in `keys`.
pub async fn sign<T: Serialize>(role: T, keys: &[&SigningKey]) -> Result<Signed<T>> {
    let mut signed = Signed { signed: role, signatures: Vec::new() };
    add_signatures(&mut signed, keys).await?;
    Ok(signed)
}

/// Signed metadata as it is served: pretty JSON and a newline (as `tough` writes it).
pub fn to_bytes<T: Serialize>(signed: &Signed<T>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(signed).expect("metadata serializes");
    bytes.push(b'\n');
    bytes
}

/// Parses signed metadata of role `T`.
pub fn parse<T: Role + DeserializeOwned>(bytes: &[u8]) -> Result<Signed<T>> {
    let signed: Signed<T> = serde_json::from_slice(bytes)
        .map_err(|e| Error::Malformed { role: role_name(T::TYPE), reason: e.to_string() })?;
    let typed: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    if typed.pointer("/signed/_type").and_then(Value::as_str) != Some(role_name(T::TYPE)) {
        return Err(Error::Malformed { role: role_name(T::TYPE), reason: "`_type` names another role".into() });
    }
    Ok(signed)
}

fn role_name(role: RoleType) -> &'static str {
    match role {
        RoleType::Root => "root",
        RoleType::Targets => "targets",
        RoleType::Snapshot => "snapshot",
        RoleType::Timestamp => "timestamp",
        RoleType::DelegatedTargets => "delegated targets",
    }
}

/// The key ids `root` lists for `role`.
pub fn role_key_ids(root: &Root, role: RoleType) -> Vec<String> {
    root.roles
        .get(&role)
        .map(|r| r.keyids.iter().map(|id| hex::encode(id.as_ref() as &[u8])).collect())
        .unwrap_or_default()
}

/// Whether `new` may follow `trusted` (none: `new` is the first root), as a
/// TUF client checks it (§5.3.4–5.3.5): signed by a threshold of the trusted
/// root's root keys and of its own, its version one more, every top-level role
/// listed with a threshold its keys can meet, consistent snapshots, and not
/// expired at `now`.
pub fn check_root(trusted: Option<&Signed<Root>>, new: &Signed<Root>, now: Timestamp) -> Result<()> {
    let expected = trusted.map_or(1, |t| t.signed.version.get() + 1);
    if new.signed.version.get() != expected {
        return Err(Error::Refused(format!("the new root's version is {}, it must be {expected}", new.signed.version)));
    }
    if let Some(trusted) = trusted {
        trusted
            .signed
            .verify_role(new)
            .map_err(|e| Error::Refused(format!("the new root is not signed by the current root's keys: {e}")))?;
    }
    new.signed
        .verify_role(new)
        .map_err(|e| Error::Refused(format!("the new root is not signed by its own root keys: {e}")))?;
    for role in [RoleType::Root, RoleType::Targets, RoleType::Snapshot, RoleType::Timestamp] {
        let keys =
            new.signed.roles.get(&role).ok_or_else(|| Error::Refused(format!("the root lists no {role} role")))?;
        if keys.threshold.get() as usize > keys.keyids.iter().filter(|id| new.signed.keys.contains_key(*id)).count() {
            return Err(Error::Refused(format!("the {role} role's threshold is more than its keys")));
        }
    }
    if !new.signed.consistent_snapshot {
        return Err(Error::Refused("updraft serves consistent snapshots: set `consistent_snapshot` to true".into()));
    }
    if new.signed.expires <= now {
        return Err(Error::Refused(format!("the new root expired at {}", new.signed.expires)));
    }
    Ok(())
}

/// Verifies metadata of role `T` against `root`'s keys and threshold for it.
pub fn verify<T: Role + Serialize + DeserializeOwned>(root: &Root, bytes: &[u8]) -> Result<Signed<T>> {
    let signed = parse::<T>(bytes)?;
    root.verify_role(&signed).map_err(|e| Error::Refused(e.to_string()))?;
    Ok(signed)
}

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

fn hashes(sha256: &str, extra: &[(&str, &str)]) -> Result<Hashes> {
    let sha256: Decoded<Hex> = hex::decode(sha256).map_err(|_| Error::Refused("a sha256 is hex".into()))?.into();
    Ok(Hashes { sha256, _extra: extra.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect() })
}

/// Targets metadata listing `files`, signed by `keys`.
pub async fn targets(files: &[TargetFile], version: u64, expires: Timestamp, keys: &[&SigningKey]) -> Result<Vec<u8>> {
    let mut role = Targets::new(SPEC_VERSION.into(), nonzero(version, "a version")?, whole_seconds(expires));
    for f in files {
        let name = tough::TargetName::new(f.name.clone()).map_err(|e| Error::Refused(e.to_string()))?;
        let target = Target {
            length: f.length,
            hashes: hashes(&f.sha256, &[("sha512", &f.sha512)])?,
            custom: f.custom.clone().into_iter().collect(),
            _extra: HashMap::new(),
        };
        role.targets.insert(name, target);
    }
    Ok(to_bytes(&sign(role, keys).await?))
}

fn metafile(bytes: &[u8], version: u64) -> Result<Metafile> {
    let sha256 = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes));
    Ok(Metafile {
        length: Some(bytes.len() as u64),
        hashes: Some(hashes(&sha256, &[])?),
        version: nonzero(version, "a version")?,
        _extra: HashMap::new(),
    })
}

/// Snapshot metadata naming `targets` (the bytes served as `N.targets.json`), signed by `keys`.
pub async fn snapshot(
    targets: &[u8],
    targets_version: u64,
    version: u64,
    expires: Timestamp,
    keys: &[&SigningKey],
) -> Result<Vec<u8>> {
    let mut role = Snapshot::new(SPEC_VERSION.into(), nonzero(version, "a version")?, whole_seconds(expires));
    role.meta.insert("targets.json".into(), metafile(targets, targets_version)?);
    Ok(to_bytes(&sign(role, keys).await?))
}

/// Timestamp metadata naming `snapshot` (the bytes served as `N.snapshot.json`), signed by `keys`.
pub async fn timestamp(
    snapshot: &[u8],
    snapshot_version: u64,
    version: u64,
    expires: Timestamp,
    keys: &[&SigningKey],
) -> Result<Vec<u8>> {
    let mut role =
        tough::schema::Timestamp::new(SPEC_VERSION.into(), nonzero(version, "a version")?, whole_seconds(expires));
    role.meta.insert("snapshot.json".into(), metafile(snapshot, snapshot_version)?);
    Ok(to_bytes(&sign(role, keys).await?))
}

/// The public keys of a root's role, with their ids.
pub fn role_keys(root: &Root, role: RoleType) -> Vec<(String, Key)> {
    role_key_ids(root, role)
        .into_iter()
        .filter_map(|id| {
            let bytes: Decoded<Hex> = hex::decode(&id).ok()?.into();
            root.keys.get(&bytes).map(|k| (id, k.clone()))
        })
        .collect()
}

/// The key id of a public key (re-exported for callers holding only a [`Key`]).
pub fn public_key_id(key: &Key) -> Result<String> {
    key_id(key)
}
