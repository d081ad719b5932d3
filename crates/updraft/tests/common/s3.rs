//! moto's S3 server (a real S3-protocol server) for the tests that keep
//! firmware in a bucket: `scripts/test` installs it and names it in
//! `UPDRAFT_MOTO_SERVER`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BUCKET: &str = "firmware";

/// moto's S3 server on a free loopback port, with the bucket made; stopped on drop.
pub struct S3Server {
    child: Child,
    pub url: String,
}

impl S3Server {
    pub async fn start() -> Self {
        let exe = std::env::var("UPDRAFT_MOTO_SERVER").unwrap_or_else(|_| {
            panic!(
                "UPDRAFT_MOTO_SERVER is not set: these tests need moto's S3 server (`scripts/test` installs it; \
                 or pip install 'moto[server]' and set UPDRAFT_MOTO_SERVER to its moto_server)"
            )
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {exe}: {e}"));
        let server = S3Server { child, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http.get(format!("{}/", server.url)).send().await.is_ok() {
                let made = http.put(format!("{}/{BUCKET}", server.url)).send().await.unwrap();
                assert!(made.status().is_success(), "making the bucket: {}", made.status());
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto's S3 server did not start on {}", server.url);
    }

    /// The keys of the bucket's objects under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let url = format!("{}/{BUCKET}?list-type=2&prefix={prefix}", self.url);
        let xml = reqwest::get(url).await.unwrap().text().await.unwrap();
        xml.split("<Key>").skip(1).filter_map(|s| s.split_once("</Key>")).map(|(k, _)| k.to_owned()).collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// The `[blobs]` table of a server keeping firmware in this bucket, under `prefix`.
    pub fn blobs_toml(&self, prefix: &str) -> String {
        format!(
            "[blobs]\nurl = \"s3://{BUCKET}/{prefix}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            self.url
        )
    }
}
