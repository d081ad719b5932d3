//! Firmware in an S3-compatible bucket, served by replicas on one PostgreSQL
//! database: a real S3-protocol server (moto's server mode, started here on
//! loopback; `scripts/test` installs it and names it in
//! `UPDRAFT_MOTO_SERVER`), never an in-memory fake.

mod common;

use std::time::Duration;

use common::{Api, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

use common::s3::{BUCKET, S3Server};

fn in_bucket(s3: &S3Server) -> impl FnOnce(&mut updraft_server::Settings) + '_ {
    move |s| {
        s.blobs.url = Some(format!("s3://{BUCKET}/updraft"));
        s.blobs.endpoint = Some(s3.url.clone());
        s.blobs.region = Some("us-east-1".into());
        s.blobs.access_key_id = Some("test".into());
        s.blobs.secret_access_key = Some("test".into());
    }
}

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// The download link of the artifact `device` was given through `server`.
async fn artifact_url(http: &reqwest::Client, server: &TestServer, device: &str, token: &str) -> String {
    let auth = format!("TargetToken {token}");
    let poll: Value = http
        .get(server.url(&format!("/default/controller/v1/{device}")))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let href = poll["_links"]["deploymentBase"]["href"].as_str().unwrap_or_else(|| panic!("no deployment: {poll}"));
    let d: Value = http.get(href).header("authorization", &auth).send().await.unwrap().json().await.unwrap();
    d["deployment"]["chunks"][0]["artifacts"][0]["_links"]["download-http"]["href"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_uploaded_through_one_replica_downloads_through_another() {
    let s3 = S3Server::start().await;
    let replicas = TestServer::replicas(2, in_bucket(&s3)).await;
    let mut replicas = replicas.into_iter();
    let (a, b) = (Api::on(replicas.next().unwrap()), replicas.next().unwrap());

    // Uploaded through A, in several parts (8 MiB each).
    a.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let image: Vec<u8> = (0..9_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(image.clone()).file_name("app.bin"));
    let fw = a.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    let stored = s3.keys("updraft/blobs/").await;
    assert_eq!(stored.len(), 1, "the image is one object of the bucket: {stored:?}");
    assert!(s3.keys("updraft/staging/").await.is_empty(), "the staged upload is gone");
    assert!(!a.server.data_dir().join("firmware").exists(), "nothing is kept on the replica's disk");

    let token =
        a.post("/api/v1/devices", json!({"id": "d-1", "product": "thermo", "firmware": {"host": "1.0.0"}})).await;
    let token = token.expect(201, None)["token"].as_str().unwrap().to_owned();
    a.post("/api/v1/jobs", json!({"id": "spring", "firmware": fw, "devices": ["d-1"]})).await.expect(201, None);
    a.server.tick_scheduler().await;

    // Downloaded through B, which never saw the upload: whole, by range, by several ranges.
    let http = reqwest::Client::new();
    let url = artifact_url(&http, &b, "d-1", &token).await;
    assert!(url.starts_with(&b.url("/")), "{url}");
    let get = |range: Option<&'static str>| {
        let mut r = http.get(&url).header("authorization", format!("TargetToken {token}"));
        if let Some(range) = range {
            r = r.header("range", range);
        }
        r.send()
    };
    let full = get(None).await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-length"], image.len().to_string().as_str());
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(sha256(&full.bytes().await.unwrap()), sha256(&image));
    let part = get(Some("bytes=8388600-8388707")).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 8388600-8388707/{}", image.len()).as_str());
    assert_eq!(part.bytes().await.unwrap().as_ref(), &image[8_388_600..8_388_708], "a range across two parts");
    let resume = get(Some("bytes=8000000-")).await.unwrap();
    assert_eq!(resume.bytes().await.unwrap().as_ref(), &image[8_000_000..]);
    let multi = get(Some("bytes=0-9,100-109")).await.unwrap();
    assert_eq!(multi.status(), 206);
    let body = multi.bytes().await.unwrap();
    assert!(body.windows(10).any(|w| w == &image[100..110]));
    let r = http
        .get(&url)
        .header("authorization", format!("TargetToken {token}"))
        .header("range", "bytes=0-0")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = get(Some("bytes=9000000-")).await.unwrap();
    assert_eq!(r.status(), 416);

    // The object gone from the bucket: 503 in hawkBit's error shape, before any byte.
    let bucket = updraft_blob::S3BlobStore::open(&updraft_blob::S3Config {
        url: format!("s3://{BUCKET}/updraft"),
        endpoint: Some(s3.url.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
    })
    .unwrap();
    use updraft_blob::BlobStore;
    bucket.delete(stored[0].strip_prefix("updraft/blobs/").unwrap()).await.unwrap();
    assert!(s3.keys("updraft/blobs/").await.is_empty());
    let r = get(None).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "hawkbit.server.error.unavailable", "{body}");
    let b = Api::on(b);
    b.get(&format!("/api/v1/firmware/{fw}/files/app.bin")).await.expect(503, Some("blob_unavailable"));
    // The store unreachable: 503 too, within seconds.
    drop(s3);
    let started = std::time::Instant::now();
    let r = get(Some("bytes=0-9")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    b.get(&format!("/api/v1/firmware/{fw}/files/app.bin")).await.expect(503, Some("blob_unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_redirect_to_presigned_links_when_configured() {
    let s3 = S3Server::start().await;
    let a = TestServer::replicas(1, |s| {
        in_bucket(&s3)(s);
        s.blobs.presigned_downloads = true;
        s.blobs.presigned_ttl_secs = 600;
    })
    .await
    .remove(0);
    let b = a.replica().await;
    let a = Api::on(a);
    a.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let image: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(image.clone()).file_name("app.bin"));
    let fw = a.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    let token =
        a.post("/api/v1/devices", json!({"id": "d-1", "product": "thermo", "firmware": {"host": "1.0.0"}})).await;
    let token = token.expect(201, None)["token"].as_str().unwrap().to_owned();
    a.post("/api/v1/jobs", json!({"id": "spring", "firmware": fw, "devices": ["d-1"]})).await.expect(201, None);
    a.server.tick_scheduler().await;

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = artifact_url(&http, &b, "d-1", &token).await;
    let r = http.get(&url).header("authorization", format!("TargetToken {token}")).send().await.unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&s3.url) && location.contains("X-Amz-Signature="), "{location}");
    // The bucket carries the bytes, Range included; the link needs no credentials.
    let whole = http.get(&location).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(sha256(&whole.bytes().await.unwrap()), sha256(&image));
    let part = http.request(Method::GET, &location).header("range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &image[1000..2000]);
    // A client that follows redirects (as hawkBit's clients do) just gets the file.
    let following = reqwest::Client::new();
    let r = following.get(&url).header("authorization", format!("TargetToken {token}")).send().await.unwrap();
    assert_eq!(sha256(&r.bytes().await.unwrap()), sha256(&image));
    // Without the device's token there is no link.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
