//! `updraft trust`: the key ceremonies of a product's TUF repository, on the
//! operator's machine. The root role's private keys are made, kept and used
//! here, in files of the operator's; only signed roots reach the server.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use updraft_cli::Client;
use updraft_cli::Conn;
use updraft_trust::SigningKey;
use updraft_trust::metadata::{self, RootPlan};
use updraft_trust::tough::schema::key::Key;
use updraft_trust::tough::schema::{RoleType, Root};

#[derive(Subcommand, Debug)]
pub enum TrustCmd {
    /// Show a product's repository: its online keys and the versions of its metadata.
    #[command(after_help = "Example:\n  updraft trust status --product cam-x1")]
    Status {
        /// The product (its key).
        #[arg(long)]
        product: String,
    },
    /// Create a product's repository: root keys made here (kept in --dir, never sent), the
    /// server's online keys, root version 1 signed here and uploaded. Give devices the
    /// `root.json` it writes (the pinned root).
    #[command(after_help = "Example:\n  updraft trust init --product cam-x1 --dir ./cam-x1-root\n  \
        # keep ./cam-x1-root/root-*.pem offline; provision devices with ./cam-x1-root/root.json")]
    Init {
        /// The product (its key).
        #[arg(long)]
        product: String,
        /// Where the root keys and the signed root are written (made if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// How many root keys to make.
        #[arg(long, default_value_t = 1)]
        root_keys: u32,
        /// How many of them must sign a root.
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        /// How long the root is valid, in days.
        #[arg(long, default_value_t = 365)]
        expires_days: u32,
    },
    /// Sign the next root version with root keys kept here, and upload it: after rotating an
    /// online key, to change root keys or the threshold, or before the root expires.
    #[command(after_help = "Example (the server rotated its timestamp key):\n  \
        updraft trust sign-root --product cam-x1 --key ./cam-x1-root/root-1a2b3c4d.pem\n\
        Example (replace the root key):\n  \
        updraft trust sign-root --product cam-x1 --key old.pem --new-root-key ./cam-x1-root --drop-root-key <old key id>")]
    SignRoot {
        /// The product (its key).
        #[arg(long)]
        product: String,
        /// A root private key file to sign with (repeat: the current root's threshold of keys,
        /// and the new root's).
        #[arg(long = "key", value_name = "FILE", required = true)]
        keys: Vec<PathBuf>,
        /// Make a new root key into this directory and add it to the root (it signs too).
        #[arg(long, value_name = "DIR")]
        new_root_key: Option<PathBuf>,
        /// Remove this key id from the root role.
        #[arg(long = "drop-root-key", value_name = "KEY_ID")]
        drop_root_keys: Vec<String>,
        /// The root role's new threshold [default: unchanged].
        #[arg(long)]
        threshold: Option<u64>,
        /// How long the new root is valid, in days.
        #[arg(long, default_value_t = 365)]
        expires_days: u32,
        /// Also write the signed root to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Make a new key for an online role (targets, snapshot, timestamp) on the server; it signs
    /// once a root lists it (`updraft trust sign-root`), which retires the old one.
    #[command(after_help = "Example:\n  updraft trust rotate --product cam-x1 --role timestamp")]
    Rotate {
        /// The product (its key).
        #[arg(long)]
        product: String,
        /// targets, snapshot or timestamp.
        #[arg(long)]
        role: String,
    },
}

pub async fn run(cmd: TrustCmd, conn: &Conn) -> anyhow::Result<()> {
    let client = Client::new(conn)?;
    match cmd {
        TrustCmd::Status { product } => {
            let status = client.get(&format!("/api/v1/products/{product}/trust"), &()).await?;
            print(conn, &status);
        }
        TrustCmd::Init { product, dir, root_keys, threshold, expires_days } => {
            if root_keys == 0 || threshold == 0 || threshold > u64::from(root_keys) {
                bail!("--threshold must be from 1 to --root-keys");
            }
            tokio::fs::create_dir_all(&dir).await.with_context(|| format!("creating {}", dir.display()))?;
            let status = client.send("POST", &format!("/api/v1/products/{product}/trust/keys"), &()).await?;
            let mut keys = Vec::new();
            for _ in 0..root_keys {
                let key = SigningKey::generate();
                let file = dir.join(format!("root-{}.pem", &key.id()[..8]));
                write_private(&file, &key.to_pem()).await?;
                eprintln!("root key {} written to {} (keep it offline)", key.id(), file.display());
                keys.push(key);
            }
            let plan = RootPlan {
                version: 1,
                expires: expiry(expires_days),
                root: (keys.iter().map(|k| k.public().clone()).collect(), threshold),
                targets: (online(&status, "targets", None)?, 1),
                snapshot: (online(&status, "snapshot", None)?, 1),
                timestamp: (online(&status, "timestamp", None)?, 1),
            };
            let signers: Vec<&SigningKey> = keys.iter().collect();
            let signed = metadata::sign(metadata::root(&plan)?, &signers).await?;
            let body = metadata::to_bytes(&signed);
            tokio::fs::write(dir.join("1.root.json"), &body).await?;
            tokio::fs::write(dir.join("root.json"), &body).await?;
            let status = upload(&client, &product, &body).await?;
            eprintln!("root version 1 uploaded; the pinned root for devices is {}", dir.join("root.json").display());
            print(conn, &status);
        }
        TrustCmd::SignRoot { product, keys, new_root_key, drop_root_keys, threshold, expires_days, out } => {
            let current = client.get(&format!("/api/v1/products/{product}/trust/root"), &()).await?;
            let current: updraft_trust::tough::schema::Signed<Root> =
                serde_json::from_value(current).context("reading the server's current root")?;
            let status = client.get(&format!("/api/v1/products/{product}/trust"), &()).await?;
            let mut signers = Vec::new();
            for file in &keys {
                let bytes = tokio::fs::read(file).await.with_context(|| format!("reading {}", file.display()))?;
                signers.push(SigningKey::from_pkcs8(&bytes).with_context(|| format!("the key in {}", file.display()))?);
            }
            let mut root_keys: Vec<Key> = metadata::role_keys(&current.signed, RoleType::Root)
                .into_iter()
                .filter(|(id, _)| !drop_root_keys.contains(id))
                .map(|(_, k)| k)
                .collect();
            if let Some(dir) = new_root_key {
                tokio::fs::create_dir_all(&dir).await?;
                let key = SigningKey::generate();
                let file = dir.join(format!("root-{}.pem", &key.id()[..8]));
                write_private(&file, &key.to_pem()).await?;
                eprintln!("new root key {} written to {} (keep it offline)", key.id(), file.display());
                root_keys.push(key.public().clone());
                signers.push(key);
            }
            let old_threshold = current.signed.roles.get(&RoleType::Root).map_or(1, |r| r.threshold.get());
            let plan = RootPlan {
                version: current.signed.version.get() + 1,
                expires: expiry(expires_days),
                root: (root_keys, threshold.unwrap_or(old_threshold)),
                targets: (
                    online(&status, "targets", Some(&current.signed))?,
                    threshold_of(&current.signed, RoleType::Targets),
                ),
                snapshot: (
                    online(&status, "snapshot", Some(&current.signed))?,
                    threshold_of(&current.signed, RoleType::Snapshot),
                ),
                timestamp: (
                    online(&status, "timestamp", Some(&current.signed))?,
                    threshold_of(&current.signed, RoleType::Timestamp),
                ),
            };
            let refs: Vec<&SigningKey> = signers.iter().collect();
            let signed = metadata::sign(metadata::root(&plan)?, &refs).await?;
            metadata::check_root(Some(&current), &signed, Timestamp::now())
                .context("the keys given do not make a root a TUF client would accept")?;
            let body = metadata::to_bytes(&signed);
            if let Some(out) = &out {
                tokio::fs::write(out, &body).await.with_context(|| format!("writing {}", out.display()))?;
            }
            let status = upload(&client, &product, &body).await?;
            eprintln!("root version {} uploaded", plan.version);
            print(conn, &status);
        }
        TrustCmd::Rotate { product, role } => {
            let status =
                client.send("POST", &format!("/api/v1/products/{product}/trust/keys/{role}/rotate"), &()).await?;
            eprintln!(
                "a new {role} key was made; sign a root that lists it: updraft trust sign-root --product {product} --key <root key file>"
            );
            print(conn, &status);
        }
    }
    Ok(())
}

fn expiry(days: u32) -> Timestamp {
    Timestamp::now() + SignedDuration::from_hours(24 * i64::from(days.max(1)))
}

fn threshold_of(root: &Root, role: RoleType) -> u64 {
    root.roles.get(&role).map_or(1, |r| r.threshold.get())
}

/// The online keys a root should list for `role`: those the server made
/// since the current root (a rotation) when there are any, else the ones the
/// current root lists (all of the server's for a first root).
fn online(status: &Value, role: &str, current: Option<&Root>) -> anyhow::Result<Vec<Key>> {
    let keys: Vec<&Value> = status["keys"].as_array().into_iter().flatten().filter(|k| k["role"] == role).collect();
    let parse = |k: &&Value| -> anyhow::Result<Key> {
        serde_json::from_value(k["public_key"].clone()).context("reading an online key")
    };
    let pending: Vec<&Value> = keys.iter().copied().filter(|k| k["in_root"] == false).collect();
    let chosen: Vec<&Value> = match current {
        None => keys,
        Some(_) if !pending.is_empty() => pending,
        Some(_) => keys.into_iter().filter(|k| k["in_root"] == true).collect(),
    };
    if chosen.is_empty() {
        bail!("the server holds no {role} key for this product");
    }
    chosen.iter().map(parse).collect()
}

async fn upload(client: &Client, product: &str, body: &[u8]) -> anyhow::Result<Value> {
    let root: Value = serde_json::from_slice(body)?;
    client.send("PUT", &format!("/api/v1/products/{product}/trust/root"), &root).await
}

fn print(conn: &Conn, status: &Value) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(status).unwrap_or_default());
        return;
    }
    let version = |r: &str| status[r]["version"].as_u64().map_or("-".to_owned(), |v| v.to_string());
    println!("product:   {}", status["product"].as_str().unwrap_or(""));
    println!("metadata:  {}", status["metadata_url"].as_str().unwrap_or(""));
    println!("targets:   {}", status["targets_url"].as_str().unwrap_or(""));
    println!(
        "versions:  root {}, targets {}, snapshot {}, timestamp {} (expires {})",
        version("root"),
        version("targets"),
        version("snapshot"),
        version("timestamp"),
        status["timestamp"]["expires"].as_str().unwrap_or("-")
    );
    for k in status["keys"].as_array().into_iter().flatten() {
        let state = if k["in_root"] == true { "in root" } else { "not yet in a root" };
        println!("key:       {:9} {} ({state})", k["role"].as_str().unwrap_or(""), k["key_id"].as_str().unwrap_or(""));
    }
}

async fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path).await.with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes()).await?;
    f.sync_all().await?;
    Ok(())
}
