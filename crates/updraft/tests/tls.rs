//! TLS end to end, on SQLite and on PostgreSQL: the server serves HTTPS from PEM
//! files made at test time, third-party and own clients poll and download over
//! it, the certificate is reloaded without a restart, devices authenticate with
//! client certificates (natively or through a proxy's headers), and clients that
//! speak plain HTTP or nothing at all are closed cleanly.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Api, Backend, TestServer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_stores!(
    devices_poll_and_download_over_https,
    the_certificate_is_reloaded_without_a_restart,
    devices_authenticate_with_client_certificates,
    a_proxy_vouches_for_client_certificates_with_headers,
    plain_http_and_silent_clients_are_closed,
    the_agent_installs_over_tls,
);

/// A CA and the certificates it issues, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_pem = params.self_signed(&key).unwrap().pem();
        let pki = Pki { dir: tempfile::tempdir().unwrap(), ca: Issuer::new(params, key), ca_pem };
        std::fs::write(pki.path("ca.crt"), &pki.ca_pem).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificate for `cn` (a server's for 127.0.0.1, or a client's), written as
    /// `{file}.crt` and `{file}.key`; returns the certificate's PEM.
    fn issue(&self, file: &str, cn: &str, server: bool) -> String {
        let key = KeyPair::generate().unwrap();
        let names = if server { vec!["127.0.0.1".to_owned(), "localhost".to_owned()] } else { vec![] };
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages =
            vec![if server { ExtendedKeyUsagePurpose::ServerAuth } else { ExtendedKeyUsagePurpose::ClientAuth }];
        let cert = params.signed_by(&key, &self.ca).unwrap().pem();
        write_atomically(&self.path(&format!("{file}.crt")), cert.as_bytes());
        write_atomically(&self.path(&format!("{file}.key")), key.serialize_pem().as_bytes());
        cert
    }
}

/// Writes a file whole (a reload never sees half of it).
fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A client trusting only the test CA, optionally presenting `{identity}.crt`.
fn client(pki: &Pki, identity: Option<&str>) -> reqwest::Client {
    updraft_agent::http_client(&updraft_agent::HttpSettings {
        ca_file: Some(pki.path("ca.crt")),
        client_cert_file: identity.map(|i| pki.path(&format!("{i}.crt"))),
        client_key_file: identity.map(|i| pki.path(&format!("{i}.key"))),
        max_idle_per_host: 0,
        ..Default::default()
    })
    .unwrap()
}

/// A server speaking TLS with `server.crt`, devices' certificates chained to the same CA.
async fn tls_server(b: Backend, pki: &Pki, configure: impl FnOnce(&mut updraft_server::Settings)) -> Api {
    pki.issue("server", "updraft test server", true);
    let server = TestServer::start_with(b, |s| {
        s.tls_cert_file = Some(pki.path("server.crt"));
        s.tls_key_file = Some(pki.path("server.key"));
        s.tls_client_ca_file = Some(pki.path("ca.crt"));
        s.tls_reload_ms = 50;
        s.poll_interval_secs = 60;
        configure(s);
    })
    .await;
    Api { server, http: client(pki, None), token: ADMIN_TOKEN.into() }
}

const IMAGE_LEN: usize = 300_000;

/// A product, a firmware image, `devices` devices (`dev-0`, …) with a job for each; their tokens.
async fn fleet(api: &Api, devices: usize) -> Vec<String> {
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    let image: Vec<u8> = (0..IMAGE_LEN as u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("product", "thermo")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(image).file_name("app.bin"));
    let fw = api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for i in 0..devices {
        let d = api
            .post(
                "/api/v1/devices",
                json!({"id": format!("dev-{i}"), "product": "thermo", "firmware": {"host": "1.0.0"}}),
            )
            .await;
        tokens.push(d.expect(201, None)["token"].as_str().unwrap().to_owned());
    }
    let ids: Vec<String> = (0..devices).map(|i| format!("dev-{i}")).collect();
    api.post("/api/v1/jobs", json!({"id": "rollout", "firmware": fw, "devices": ids})).await.expect(201, None);
    api.server.tick_scheduler().await;
    tokens
}

async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("TargetToken {token}"));
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn devices_poll_and_download_over_https(b: Backend) {
    use hawkbit::ddi::{Client, ClientAuthorization, Execution, Finished};
    let pki = Pki::new("updraft test CA");
    let api = tls_server(b, &pki, |_| {}).await;
    let tokens = fleet(&api, 1).await;
    let root = api.server.url("/default/controller/v1/dev-0");
    assert!(root.starts_with("https://"));

    // The links the device gets are https, with hawkBit's `download` and `md5sum` beside the `-http` ones.
    let (status, poll) = get_json(&api.http, &root, Some(&tokens[0])).await;
    assert_eq!(status, 200);
    let deployment = poll["_links"]["deploymentBase"]["href"].as_str().unwrap().to_owned();
    assert!(deployment.starts_with(&format!("https://{}/", api.server.addr)), "{deployment}");
    let (_, base) = get_json(&api.http, &deployment, Some(&tokens[0])).await;
    let links = &base["deployment"]["chunks"][0]["artifacts"][0]["_links"];
    let download = links["download"]["href"].as_str().expect("a download link over TLS");
    assert!(download.starts_with("https://"), "{download}");
    assert_eq!(links["download-http"]["href"], download, "with TLS only, download-http is the https link too");
    assert_eq!(links["md5sum"]["href"].as_str(), Some(format!("{download}.MD5SUM").as_str()));
    assert_eq!(links["md5sum-http"]["href"], links["md5sum"]["href"]);

    // A third-party client (the `hawkbit` crate) trusting the test CA runs the flow.
    let ca = pki.path("ca.crt");
    let client = Client::new(
        &api.server.url("/"),
        "default",
        "dev-0",
        ClientAuthorization::TargetToken(tokens[0].clone()),
        Some(ca.to_str().unwrap()),
        None,
        None,
    )
    .unwrap();
    let update = client.poll().await.unwrap().update().expect("the job's deployment is offered");
    let update = update.fetch().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let downloaded = update.download(dir.path()).await.unwrap();
    downloaded[0].check_sha256().await.expect("the artifact's sha256 matches");
    assert_eq!(std::fs::metadata(downloaded[0].file()).unwrap().len() as usize, IMAGE_LEN);
    update.send_feedback(Execution::Closed, Finished::Success, vec!["installed"]).await.unwrap();
    let device = api.get("/api/v1/devices/dev-0").await;
    assert_eq!(device.ok()["firmware"]["host"], "2.0.0");

    // A client that does not trust the CA gets no connection at all.
    let untrusting = updraft_agent::http_client(&updraft_agent::HttpSettings {
        ca_file: Some(Pki::new("another CA").path("ca.crt")),
        ..Default::default()
    })
    .unwrap();
    assert!(untrusting.get(api.server.url("/healthz")).send().await.is_err());
}

/// The certificate the server presents to a new connection, DER.
async fn served_certificate(pki: &Pki, server: &TestServer) -> Vec<u8> {
    let http = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(pki.ca_pem.as_bytes()).unwrap())
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = http.get(server.url("/healthz")).send().await.unwrap();
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().expect("tls info").clone();
    info.peer_certificate().expect("a certificate").to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

/// How many reloads kept the previous certificate (a file did not load), from `/metrics`.
async fn kept_previous(api: &Api) -> u64 {
    let metrics = api.http.get(api.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("updraft_tls_certificate_reloads_total{result=\"kept_previous\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

async fn the_certificate_is_reloaded_without_a_restart(b: Backend) {
    let pki = Pki::new("updraft test CA");
    let api = tls_server(b, &pki, |_| {}).await;
    let first = der_of(&std::fs::read_to_string(pki.path("server.crt")).unwrap());
    assert_eq!(served_certificate(&pki, &api.server).await, first);

    // A broken file is not taken: once the server looked at it, it goes on with the certificate it has.
    let kept_before = kept_previous(&api).await;
    write_atomically(&pki.path("server.crt"), b"-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while kept_previous(&api).await == kept_before {
        assert!(Instant::now() < deadline, "the broken file was not looked at within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served_certificate(&pki, &api.server).await, first, "the old certificate is kept");

    // A new pair is served to new connections, without a restart.
    let renewed = der_of(&pki.issue("server", "updraft test server, renewed", true));
    assert_ne!(renewed, first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(&pki, &api.server).await != renewed {
        assert!(Instant::now() < deadline, "the renewed certificate was not served within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(api.get("/api/v1/devices").await.status, 200, "the server serves on");
}

async fn devices_authenticate_with_client_certificates(b: Backend) {
    let pki = Pki::new("updraft test CA");
    let api = tls_server(b, &pki, |_| {}).await;
    let tokens = fleet(&api, 2).await;
    pki.issue("dev-0", "dev-0", false);
    pki.issue("ghost", "dev-9", false);
    let outsider = Pki::new("an unknown CA");
    outsider.issue("dev-0", "dev-0", false);
    std::fs::copy(pki.path("ca.crt"), outsider.path("ca.crt")).unwrap();
    let url = |device: &str| api.server.url(&format!("/default/controller/v1/{device}"));

    let dev0 = client(&pki, Some("dev-0"));
    let (status, poll) = get_json(&dev0, &url("dev-0"), None).await;
    assert_eq!(status, 200, "the certificate's CN is the controller id: no token needed");
    assert!(poll["_links"]["deploymentBase"]["href"].as_str().unwrap().starts_with("https://"));
    let (status, _) = get_json(&dev0, &url("dev-1"), None).await;
    assert_eq!(status, 401, "a certificate names one device");
    let (status, _) = get_json(&dev0, &url("dev-1"), Some(&tokens[1])).await;
    assert_eq!(status, 200, "a token still decides when one is sent");
    let (status, _) = get_json(&client(&pki, Some("ghost")), &url("dev-9"), None).await;
    assert_eq!(status, 401, "the device must exist in the tenant");
    let (status, _) = get_json(&api.http, &url("dev-0"), None).await;
    assert_eq!(status, 401, "no certificate and no token");
    let (status, _) = get_json(&api.http, &url("dev-0"), Some(&tokens[0])).await;
    assert_eq!(status, 200, "devices without certificates keep using tokens");
    assert!(
        client(&outsider, Some("dev-0")).get(url("dev-0")).send().await.is_err(),
        "a certificate from another CA fails the handshake"
    );
}

async fn a_proxy_vouches_for_client_certificates_with_headers(b: Backend) {
    let trusted = "ae:11:f5:6a:0a:e8:74:50:81:0e:0c:37:ec:c5:22:fc";
    let server = TestServer::start_with(b, |s| s.ddi_proxy_issuer_hashes = vec![trusted.to_uppercase()]).await;
    let api = Api::on(server);
    fleet(&api, 2).await;
    let poll = |device: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let mut request = api.http.get(api.server.url(&format!("/default/controller/v1/{device}")));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let cn = "x-ssl-client-cn";
    assert_eq!(poll("dev-0", vec![(cn, "dev-0"), ("x-ssl-issuer-hash-1", trusted)]).await, 200);
    assert_eq!(
        poll("dev-0", vec![(cn, "dev-0"), ("x-ssl-issuer-hash-1", "00:11"), ("x-ssl-issuer-hash-2", trusted)]).await,
        200,
        "any issuer of the chain may be the trusted one"
    );
    assert_eq!(poll("dev-0", vec![(cn, "dev-0"), ("x-ssl-issuer-hash-1", "00:11")]).await, 401, "untrusted issuer");
    assert_eq!(poll("dev-0", vec![(cn, "dev-0"), ("x-ssl-issuer-hash-2", trusted)]).await, 401, "read from -1 on");
    assert_eq!(poll("dev-0", vec![(cn, "dev-1"), ("x-ssl-issuer-hash-1", trusted)]).await, 401, "another device");
    assert_eq!(poll("dev-0", vec![(cn, "dev-0")]).await, 401, "no issuer");

    // Without trusted hashes configured, the headers mean nothing.
    let plain = Api::start(b).await;
    fleet(&plain, 1).await;
    let r = plain
        .http
        .get(plain.server.url("/default/controller/v1/dev-0"))
        .header(cn, "dev-0")
        .header("x-ssl-issuer-hash-1", trusted)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn plain_http_and_silent_clients_are_closed(b: Backend) {
    let pki = Pki::new("updraft test CA");
    let api = tls_server(b, &pki, |s| s.tls_handshake_timeout_secs = 1).await;

    // Plain HTTP on the TLS port: the connection is closed, nothing is served.
    let mut plain = tokio::net::TcpStream::connect(api.server.addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection is closed");
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "nothing is served in clear");

    // A client that sends nothing is closed after the handshake timeout.
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(api.server.addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut [0u8; 16])).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the timeout: {:?}", started.elapsed());

    // A client that stops in the middle of its handshake too.
    let mut halfway = tokio::net::TcpStream::connect(api.server.addr).await.unwrap();
    halfway.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), halfway.read(&mut [0u8; 16])).await;
    assert!(read.is_ok(), "closed after the handshake timeout");

    assert_eq!(api.get("/api/v1/devices").await.status, 200, "the server serves on");
}

async fn the_agent_installs_over_tls(b: Backend) {
    use updraft_agent::{Agent, AgentConfig, Auth, Installer};
    let pki = Pki::new("updraft test CA");
    let api = tls_server(b, &pki, |_| {}).await;
    let tokens = fleet(&api, 2).await;
    pki.issue("dev-1", "dev-1", false);
    let dir = tempfile::tempdir().unwrap();
    let agent = |i: usize, auth: Auth| {
        let state = dir.path().join(format!("dev-{i}"));
        let mut c = AgentConfig::new(
            api.server.url(""),
            "default",
            format!("dev-{i}"),
            auth,
            &state,
            Installer::CopyTo(state.join("installed.bin")),
        );
        c.firmware.insert("host".into(), "1.0.0".into());
        c.poll_interval = Some(Duration::from_millis(10));
        c.http.ca_file = Some(pki.path("ca.crt"));
        c
    };
    // With its token, trusting the fleet's CA.
    let mut with_token = Agent::new(agent(0, Auth::TargetToken(tokens[0].clone()))).await.unwrap();
    with_token.run_once().await.unwrap();
    // `updraft agent` with a client certificate and no token: the command line's flags.
    let state = dir.path().join("dev-1");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_updraft"));
    for (k, _) in std::env::vars() {
        if k.starts_with("UPDRAFT_") {
            command.env_remove(k);
        }
    }
    let state_arg = state.to_str().unwrap().to_owned();
    let install_to = state.join("installed.bin").to_str().unwrap().to_owned();
    let (ca, cert, key) = (pki.path("ca.crt"), pki.path("dev-1.crt"), pki.path("dev-1.key"));
    let run = command
        .args(["agent", "--server", &api.server.url(""), "--controller-id", "dev-1", "--once"])
        .args(["--state-dir", &state_arg, "--install-to", &install_to, "--firmware", "host=1.0.0"])
        .args(["--ca-file", ca.to_str().unwrap()])
        .args(["--client-cert-file", cert.to_str().unwrap(), "--client-key-file", key.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the agent ends").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for i in 0..2 {
        let device = api.get(&format!("/api/v1/devices/dev-{i}")).await;
        assert_eq!(device.ok()["firmware"]["host"], "2.0.0", "dev-{i} installed over TLS");
        let installed = dir.path().join(format!("dev-{i}")).join("installed.bin");
        assert_eq!(std::fs::metadata(installed).unwrap().len() as usize, IMAGE_LEN);
    }
}
