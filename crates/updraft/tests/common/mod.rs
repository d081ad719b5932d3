//! Helpers for the HTTP integration tests: a real server and a client for it.
#![allow(dead_code)]

pub mod browser;
pub mod fleet;
pub mod s3;

use reqwest::{Method, StatusCode};
use serde_json::Value;
pub use updraft::testing::{ADMIN_TOKEN, Backend, TestServer};

/// Runs each listed test body (an `async fn(Backend)`) on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::common::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::common::Backend::Postgres).await })*
        }
    };
}

pub struct Api {
    pub server: TestServer,
    pub http: reqwest::Client,
    pub token: String,
}

/// An answer: status, headers and the body as JSON (`Null` when empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts the status and, for errors, the error code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        if let Some(code) = code {
            assert_eq!(self.body["error"]["code"], code, "unexpected error; body: {}", self.body);
            assert!(self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "errors carry a message");
        }
        &self.body
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(self.status.is_success(), "expected success, got {}: {}", self.status, self.body);
        &self.body
    }
}

impl Api {
    pub async fn start(backend: Backend) -> Self {
        Self::on(TestServer::start(backend).await)
    }

    pub fn on(server: TestServer) -> Self {
        Api { server, http: reqwest::Client::new(), token: ADMIN_TOKEN.into() }
    }

    /// The same server, as another key.
    pub fn as_key(&self, token: &str) -> ApiAs<'_> {
        ApiAs { api: self, token: token.to_owned() }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.as_key(&self.token.clone()).call(method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// Sends a raw body with a content type.
    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Answer {
        let r = self
            .http
            .request(method, self.server.url(path))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        answer(r).await
    }

    pub async fn multipart(&self, path: &str, form: reqwest::multipart::Form) -> Answer {
        let r = self
            .http
            .post(self.server.url(path))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .expect("request");
        answer(r).await
    }

    /// Creates a key of `role` in the caller's tenant and returns its token.
    pub async fn key(&self, role: &str) -> String {
        let b = self.post("/api/v1/keys", serde_json::json!({"role": role})).await;
        b.expect(201, None)["token"].as_str().unwrap().to_owned()
    }
}

pub struct ApiAs<'a> {
    api: &'a Api,
    token: String,
}

impl ApiAs<'_> {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut r = self.api.http.request(method, self.api.server.url(path));
        if !self.token.is_empty() {
            r = r.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        answer(r.send().await.expect("request")).await
    }
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }
}

pub async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, headers, body }
}

/// Files under the data directory's blob store (firmware bytes) and staging area.
pub fn stored_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    fn walk(p: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() { walk(&path, out) } else { out.push(path) }
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join("firmware"), &mut out);
    out
}

/// Something that changes whenever anything is written to the server's
/// database, read over a connection of the test's own: SQLite's `data_version`
/// (which moves when another connection commits), or on PostgreSQL every row's
/// version (`xmin`, `ctid`) in every table, so any insert, update or delete shows.
pub struct WriteProbe {
    sqlite: Option<sqlx::SqliteConnection>,
    postgres: Option<sqlx::PgConnection>,
}

impl WriteProbe {
    pub async fn open(server: &TestServer) -> Self {
        use sqlx::Connection;
        match server.settings.database_url.as_deref() {
            Some(url) => WriteProbe { sqlite: None, postgres: Some(sqlx::PgConnection::connect(url).await.unwrap()) },
            None => {
                let path = server.data_dir().join("updraft.db");
                let url = format!("sqlite://{}?mode=ro", path.display());
                WriteProbe { sqlite: Some(sqlx::SqliteConnection::connect(&url).await.unwrap()), postgres: None }
            }
        }
    }

    /// The current marker: equal markers mean nothing was written in between.
    pub async fn marker(&mut self) -> String {
        if let Some(c) = &mut self.sqlite {
            let v: i64 = sqlx::query_scalar("PRAGMA data_version").fetch_one(c).await.unwrap();
            return v.to_string();
        }
        let c = self.postgres.as_mut().expect("one connection");
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
                .fetch_all(&mut *c)
                .await
                .unwrap();
        let mut marker = String::new();
        for t in tables {
            // The table names come from the catalog, not from input.
            let rows: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT md5(string_agg(xmin::text || ctid::text, ',' ORDER BY ctid)) FROM \"{t}\""
            )))
            .fetch_one(&mut *c)
            .await
            .unwrap();
            marker.push_str(&format!("{t}:{};", rows.unwrap_or_default()));
        }
        marker
    }
}

/// A product `thermo`, a 1,000-byte firmware image for it, and device `dev-0`
/// with job `rollout` released to it: the firmware id and the device's token.
pub async fn device_with_work(api: &Api) -> (String, String) {
    api.post("/api/v1/products", serde_json::json!({"key": "thermo"})).await.expect(201, None);
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(vec![7u8; 1000]).file_name("app.bin"));
    let fw = api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    let device = api.post("/api/v1/devices", serde_json::json!({"id": "dev-0", "product": "thermo"})).await;
    let token = device.expect(201, None)["token"].as_str().unwrap().to_owned();
    api.post("/api/v1/jobs", serde_json::json!({"id": "rollout", "firmware": fw, "devices": ["dev-0"]}))
        .await
        .expect(201, None);
    api.server.tick_scheduler().await;
    (fw, token)
}
