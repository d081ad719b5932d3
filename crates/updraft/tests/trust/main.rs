//! Signed delivery with TUF, one property per file, each on SQLite and on
//! PostgreSQL, against a real server on port 0: `updraft agent` (with a pinned
//! root, as provisioned) refreshes the product's repository with `tough` and
//! refuses, with its failure code, whatever the repository's signed metadata
//! does not vouch for, keeping the installed version.
//!
//! The root ceremony runs here as `updraft trust init` runs it on an
//! operator's machine: root keys made and kept by the test, the server's
//! online keys fetched, root version 1 signed and uploaded.

#[path = "../common/mod.rs"]
mod common;

mod another_product;
mod downgrade;
mod expired_timestamp;
mod key_rotation;
mod metadata_rollback;
mod root_rotation;
mod standard_client;
mod tampered_file;
mod tampered_metadata;

use std::path::PathBuf;

use common::{Api, Backend};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sha2::Digest;
use updraft_agent::tuf::TrustConfig;
use updraft_agent::{Agent, AgentConfig, Auth, Installer};
use updraft_trust::SigningKey;
use updraft_trust::metadata::{self, RootPlan};
use updraft_trust::tough::schema::key::Key;

/// The key-encryption key of every test server (so a test can play an
/// attacker who stole an online key).
pub const KEK: &str = "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b";

pub struct Repo {
    pub api: Api,
    pub root_keys: Vec<SigningKey>,
    /// The pinned root (version 1), as `updraft trust init` writes `root.json`.
    pub root: Vec<u8>,
    pub device_token: String,
    pub dir: tempfile::TempDir,
}

pub fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

impl Repo {
    /// A server, product `cam`, image 1.0.0 (security version 1), device
    /// `dev-0` running it, and the product's repository at root version 1.
    pub async fn new(b: Backend) -> Repo {
        let server = common::TestServer::start_with(b, |s| s.key_encryption_key = Some(KEK.into())).await;
        Repo::on(Api::on(server), Timestamp::now()).await
    }

    pub async fn on(api: Api, now: Timestamp) -> Repo {
        api.post("/api/v1/products", json!({"key": "cam"})).await.expect(201, None);
        let device = api
            .post("/api/v1/devices", json!({"id": "dev-0", "product": "cam", "firmware": {"host": "1.0.0"}}))
            .await
            .expect(201, None)
            .clone();
        let mut repo = Repo {
            api,
            root_keys: vec![SigningKey::generate()],
            root: Vec::new(),
            device_token: device["token"].as_str().unwrap().to_owned(),
            dir: tempfile::tempdir().unwrap(),
        };
        repo.upload("1.0.0", 1, b"version one").await;
        let status = repo.api.post("/api/v1/products/cam/trust/keys", json!({})).await.ok().clone();
        let plan = RootPlan {
            version: 1,
            expires: now + SignedDuration::from_hours(24 * 365),
            root: (repo.root_keys.iter().map(|k| k.public().clone()).collect(), 1),
            targets: (online(&status, "targets", true), 1),
            snapshot: (online(&status, "snapshot", true), 1),
            timestamp: (online(&status, "timestamp", true), 1),
        };
        let keys: Vec<&SigningKey> = repo.root_keys.iter().collect();
        repo.root = metadata::to_bytes(&metadata::sign(metadata::root(&plan).unwrap(), &keys).await.unwrap());
        repo.put_root(&repo.root.clone()).await.expect(200, None);
        repo
    }

    pub async fn put_root(&self, body: &[u8]) -> common::Answer {
        self.api.raw(reqwest::Method::PUT, "/api/v1/products/cam/trust/root", "application/json", body.to_vec()).await
    }

    /// Uploads an image of `cam` with one file `app.bin`; its id.
    pub async fn upload(&self, version: &str, security: u64, bytes: &[u8]) -> String {
        self.upload_to("cam", version, security, bytes).await
    }

    pub async fn upload_to(&self, product: &str, version: &str, security: u64, bytes: &[u8]) -> String {
        let form = reqwest::multipart::Form::new()
            .text("product", product.to_owned())
            .text("version", version.to_owned())
            .text("security_version", security.to_string())
            .part("file", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("app.bin"));
        let fw = self.api.multipart("/api/v1/firmware", form).await.expect(201, None).clone();
        assert_eq!(fw["security_version"], security);
        fw["id"].as_str().unwrap().to_owned()
    }

    /// A job installing `firmware` on dev-0, released.
    pub async fn job(&self, id: &str, firmware: &str, extra: Value) {
        let mut body = json!({"id": id, "firmware": firmware, "devices": ["dev-0"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.api.post("/api/v1/jobs", body).await.expect(201, None);
        self.api.server.tick_scheduler().await;
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("dev-0")
    }

    /// The agent of dev-0, pinned to `root`, installing into `installed.bin`.
    pub fn agent_config(&self, root: &[u8]) -> AgentConfig {
        let server = format!("http://{}", self.api.server.addr);
        let state = self.state_dir();
        let mut c = AgentConfig::new(
            &server,
            "default",
            "dev-0",
            Auth::TargetToken(self.device_token.clone()),
            &state,
            Installer::CopyTo(state.join("installed.bin")),
        );
        c.firmware.insert("host".into(), "1.0.0".into());
        c.poll_interval = Some(std::time::Duration::from_millis(10));
        c.trust = Some(TrustConfig {
            root: root.to_vec(),
            product: "cam".into(),
            metadata_url: format!("{server}/tuf/default/cam/metadata/"),
            targets_url: format!("{server}/tuf/default/cam/targets/"),
        });
        c
    }

    /// Runs dev-0's agent until it has nothing more to do.
    pub async fn run_agent(&self) -> Agent {
        let mut agent = Agent::new(self.agent_config(&self.root)).await.unwrap();
        agent.run_once().await.unwrap();
        agent
    }

    /// dev-0's executions of `job`: (state, the closing report's code and details).
    pub async fn outcome(&self, job: &str) -> (String, Option<i64>, Vec<String>) {
        let execs = self.api.get("/api/v1/devices/dev-0/executions").await.ok().clone();
        let e = execs["items"].as_array().unwrap().iter().find(|e| e["job"] == job).expect("an execution").clone();
        let last = e["history"].as_array().unwrap().last().unwrap().clone();
        let details = last["details"].as_array().map(|d| d.iter().map(|s| s.as_str().unwrap().to_owned()).collect());
        (e["state"].as_str().unwrap().to_owned(), last["code"].as_i64(), details.unwrap_or_default())
    }

    pub async fn installed(&self) -> Option<Vec<u8>> {
        std::fs::read(self.state_dir().join("installed.bin")).ok()
    }

    pub async fn device_version(&self) -> String {
        self.api.get("/api/v1/devices/dev-0").await.ok()["firmware"]["host"].as_str().unwrap().to_owned()
    }

    /// Signs the next root with the keys given (as `updraft trust sign-root` does).
    pub async fn next_root(&self, current: &[u8], root_keys: (Vec<Key>, u64), signers: &[&SigningKey]) -> Vec<u8> {
        let current = metadata::parse::<updraft_trust::tough::schema::Root>(current).unwrap();
        let status = self.api.get("/api/v1/products/cam/trust").await.ok().clone();
        let pending = |role: &str| {
            let p = online(&status, role, true);
            if p.is_empty() { online(&status, role, false) } else { p }
        };
        let plan = RootPlan {
            version: current.signed.version.get() + 1,
            expires: Timestamp::now() + SignedDuration::from_hours(24 * 365),
            root: root_keys,
            targets: (pending("targets"), 1),
            snapshot: (pending("snapshot"), 1),
            timestamp: (pending("timestamp"), 1),
        };
        metadata::to_bytes(&metadata::sign(metadata::root(&plan).unwrap(), signers).await.unwrap())
    }

    /// Runs SQL on the server's database with text arguments (a test playing
    /// an attacker who reached the database). `{json}` in `sql` is the cast
    /// a JSON column needs.
    pub async fn sql(&self, sql: &str, args: &[&str]) {
        use sqlx::Connection;
        match self.api.server.settings.database_url.as_deref() {
            Some(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let sql = sql.replace("{json}", "CAST($1 AS JSONB)");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for a in args {
                    q = q.bind(a.to_string());
                }
                q.execute(&mut c).await.unwrap();
            }
            None => {
                let path = self.api.server.data_dir().join("updraft.db");
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                let sql = sql.replace("{json}", "$1");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for a in args {
                    q = q.bind(a.to_string());
                }
                q.execute(&mut c).await.unwrap();
            }
        }
    }

    /// A text value read from the server's database.
    pub async fn sql_text(&self, sql: &str, args: &[&str]) -> String {
        use sqlx::Connection;
        match self.api.server.settings.database_url.as_deref() {
            Some(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_owned()));
                for a in args {
                    q = q.bind(a.to_string());
                }
                q.fetch_one(&mut c).await.unwrap()
            }
            None => {
                let path = self.api.server.data_dir().join("updraft.db");
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_owned()));
                for a in args {
                    q = q.bind(a.to_string());
                }
                q.fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

/// The server's online keys of `role`: those a root lists, or (`pending`) those it does not yet.
pub fn online(status: &Value, role: &str, pending: bool) -> Vec<Key> {
    status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["role"] == role && k["in_root"] == !pending)
        .map(|k| serde_json::from_value(k["public_key"].clone()).unwrap())
        .collect()
}
