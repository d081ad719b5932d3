//! A small HTTP client for the management API: bearer auth, JSON in and out,
//! the server's error format turned into a readable error, and streamed
//! uploads and downloads with progress bars.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use updraft_api::{ErrorBody, ErrorOut};

use crate::Conn;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Say each request and its answer on stderr (`-v`).
    verbose: bool,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

impl Client {
    pub fn new(conn: &Conn) -> anyhow::Result<Self> {
        // ring is the TLS provider (see the workspace's Cargo.toml); one installed already stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().user_agent(concat!("updraft-cli/", env!("CARGO_PKG_VERSION"))).build()?;
        Ok(Self { http, base: conn.base_url(), token: conn.token.clone(), verbose: conn.verbose > 0 })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends a request, saying it and its answer on stderr with `-v` (never a header: they hold secrets).
    async fn send_request(&self, request: reqwest::RequestBuilder) -> reqwest::Result<Response> {
        if !self.verbose {
            return request.send().await;
        }
        let (client, built) = request.build_split();
        let built = built?;
        let line = format!("{} {}", built.method(), built.url());
        let started = std::time::Instant::now();
        let answer = client.execute(built).await;
        let took = started.elapsed().as_millis();
        match &answer {
            Ok(r) => eprintln!("{line} -> {} in {took} ms", r.status().as_u16()),
            Err(e) => eprintln!("{line} -> failed after {took} ms: {e}"),
        }
        answer
    }

    async fn check(&self, r: reqwest::Result<Response>) -> anyhow::Result<Response> {
        let r = r.with_context(|| {
            format!(
                "cannot reach the server at {}\n  hint: is `updraft serve` running there? --server or UPDRAFT_SERVER names it",
                self.base
            )
        })?;
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        let e = match serde_json::from_str::<ErrorOut>(&text) {
            Ok(envelope) => envelope.error,
            Err(_) => ErrorBody { code: "error".into(), message: text.chars().take(200).collect(), details: None },
        };
        let mut msg = format!("{} ({}): {}", e.code, status.as_u16(), e.message);
        if let Some(details) = e.details.as_ref().and_then(Value::as_array) {
            for d in details.iter().take(50) {
                let at = match (d.get("line"), d.get("field")) {
                    (Some(l), Some(f)) => format!("line {l} {}", f.as_str().unwrap_or("")),
                    (None, Some(f)) => f.as_str().unwrap_or("").to_owned(),
                    _ => String::new(),
                };
                msg.push_str(&format!("\n  {at}: {}", d["message"].as_str().unwrap_or("")));
            }
            if details.len() > 50 {
                msg.push_str(&format!("\n  … and {} more", details.len() - 50));
            }
        }
        if let Some(hint) = hint(status, &e.code, self.token.is_some()) {
            msg.push_str(&format!("\n  hint: {hint}"));
        }
        bail!(msg)
    }

    /// GETs `path` with `query` (one of `updraft_api`'s `*Params`, or `()`), the answer as JSON.
    pub async fn get(&self, path: &str, query: &impl Serialize) -> anyhow::Result<Value> {
        Ok(self.check(self.send_request(self.request(Method::GET, path).query(query)).await).await?.json().await?)
    }

    /// Sends `body` (one of `updraft_api`'s `*In` or `*Patch`), the answer as JSON.
    pub async fn send(&self, method: &str, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        let method = Method::from_bytes(method.as_bytes())?;
        let answer = self.check(self.send_request(self.request(method, path).json(body)).await).await?.bytes().await?;
        // 204 No Content (a password changed) reads as null.
        if answer.is_empty() { Ok(Value::Null) } else { Ok(serde_json::from_slice(&answer)?) }
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.check(self.send_request(self.request(Method::DELETE, path)).await).await?;
        Ok(())
    }

    /// POSTs `body` with an `Idempotency-Key`. A network failure (the answer
    /// lost, the connection cut) is retried once with the same key, so a
    /// request the server committed is answered as it was, not repeated.
    pub async fn post_bytes_once(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        key: &str,
    ) -> anyhow::Result<Value> {
        let body = bytes::Bytes::from(body);
        let send = || {
            self.send_request(
                self.request(Method::POST, path)
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .header("idempotency-key", key)
                    .body(body.clone()),
            )
        };
        let r = match send().await {
            Err(e) if !e.is_builder() => {
                eprintln!("the request failed ({e}); retrying once with the same Idempotency-Key");
                send().await
            }
            r => r,
        };
        Ok(self.check(r).await?.json().await?)
    }

    /// Uploads files as one firmware image, streaming each from disk with a progress bar.
    pub async fn upload_firmware(&self, fields: &[(&str, String)], files: &[PathBuf]) -> anyhow::Result<Value> {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.clone());
        }
        let mut total = 0;
        let mut opened = Vec::new();
        for path in files {
            let file = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
            let len = file.metadata().await?.len();
            total += len;
            opened.push((path, file, len));
        }
        let pb = bar(total, "uploading");
        for (path, file, len) in opened {
            let name = path.file_name().and_then(|n| n.to_str()).context("file names must be UTF-8")?.to_owned();
            let pb = pb.clone();
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect(move |chunk| {
                if let Ok(c) = chunk {
                    pb.inc(c.len() as u64);
                }
            });
            let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
                .file_name(name)
                .mime_str("application/octet-stream")?;
            form = form.part("file", part);
        }
        let r = self.send_request(self.request(Method::POST, "/api/v1/firmware").multipart(form)).await;
        let r = self.check(r).await;
        pb.finish_and_clear();
        Ok(r?.json().await?)
    }

    /// Streams a download to `dest` with a progress bar; returns its SHA-256.
    pub async fn download(&self, path: &str, dest: &Path) -> anyhow::Result<String> {
        let r = self.check(self.send_request(self.request(Method::GET, path)).await).await?;
        let pb = bar(r.content_length().unwrap_or(0), "downloading");
        let tmp = dest.with_extension("part");
        let mut out = tokio::fs::File::create(&tmp).await.with_context(|| format!("creating {}", tmp.display()))?;
        let mut hash = Sha256::new();
        let mut stream = r.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("the download was interrupted")?;
            hash.update(&chunk);
            out.write_all(&chunk).await?;
            pb.inc(chunk.len() as u64);
        }
        out.flush().await?;
        drop(out);
        tokio::fs::rename(&tmp, dest).await?;
        pb.finish_and_clear();
        Ok(hex::encode(hash.finalize()))
    }
}

/// An answer read into its wire type (`updraft_api`'s `*Out`).
pub fn read<T: DeserializeOwned>(answer: &Value) -> anyhow::Result<T> {
    T::deserialize(answer).context("the server's answer is not what this client expects (a different version?)")
}

/// What to do about an error, where the server's message alone does not say.
fn hint(status: reqwest::StatusCode, code: &str, has_token: bool) -> Option<&'static str> {
    match (status.as_u16(), code) {
        (401, _) if !has_token => Some("set --token or UPDRAFT_TOKEN to an API key"),
        (401, _) => {
            Some("the API key in --token or UPDRAFT_TOKEN is not valid here (expired, deleted, another server?)")
        }
        (403, _) => Some("this key's role may not do this: ask an admin of the tenant for an operator or admin key"),
        (429, _) => Some("too many requests with this key: wait a moment and retry"),
        (404, "route_not_found") => Some("this server does not know the call: is it an older updraft?"),
        _ => None,
    }
}
