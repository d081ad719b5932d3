//! The MQTT door through a real Mosquitto, configured as docs/mqtt.md ships it
//! (client certificates from updraft's device CA, the ACL patterns): devices
//! here are plain AWS IoT Jobs clients (rumqttc and JSON as AWS documents it,
//! no updraft code), and every test starts its own broker on a free port.

#[path = "../common/mod.rs"]
mod common;

mod acl;
mod aws_device;
mod presence;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Api, Backend, TestServer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, Transport};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// How long a test waits for a message it expects.
const WAIT: Duration = Duration::from_secs(15);

/// Where Mosquitto is: `UPDRAFT_MOSQUITTO`, else the Debian package's path, else `PATH`.
fn mosquitto() -> PathBuf {
    if let Ok(p) = std::env::var("UPDRAFT_MOSQUITTO") {
        return p.into();
    }
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    let which = Command::new("sh").args(["-c", "command -v mosquitto"]).output().expect("sh runs");
    let found = String::from_utf8_lossy(&which.stdout).trim().to_owned();
    assert!(
        !found.is_empty(),
        "these tests need Mosquitto (Debian: apt-get install mosquitto; or set UPDRAFT_MOSQUITTO); scripts/test installs it"
    );
    found.into()
}

/// The certificates: updraft's device CA (made as the server makes it) and a
/// CA for the broker's own certificate.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub device_ca_cert: PathBuf,
    pub device_ca_key: PathBuf,
    pub broker_ca: PathBuf,
    pub broker_ca_pem: String,
    broker_cert: PathBuf,
    broker_key: PathBuf,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let device_ca_cert = dir.path().join("device-ca.pem");
        let device_ca_key = dir.path().join("device-ca.key");
        updraft_server::mqtt::certs::DeviceCa::load_or_create(&device_ca_cert, &device_ca_key).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "test broker CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let broker_ca_pem = params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(params, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        Pki {
            broker_ca: write("broker-ca.pem", &broker_ca_pem),
            broker_cert: write("broker.pem", &leaf.pem()),
            broker_key: write("broker.key", &key.serialize_pem()),
            broker_ca_pem,
            device_ca_cert,
            device_ca_key,
            dir,
        }
    }
}

/// A Mosquitto process with docs/mqtt.md's configuration on a free port.
pub struct Broker {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// docs/mqtt.md's broker: TLS, client certificates from updraft's device CA, the ACL.
    pub fn start(pki: &Pki) -> Broker {
        let acl = pki.dir.path().join("acl");
        // The ACL of docs/mqtt.md, as shipped.
        std::fs::write(&acl, include_str!("../../../../docs/mqtt/acl")).unwrap();
        let listener = format!(
            "allow_anonymous false\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
             use_identity_as_username true\nacl_file {}\nmessage_size_limit 262144\n",
            pki.device_ca_cert.display(),
            pki.broker_cert.display(),
            pki.broker_key.display(),
            acl.display(),
        );
        Self::with(pki, &listener)
    }

    /// A broker anyone may use, without TLS (the simulator's devices present no certificate).
    pub fn start_open(pki: &Pki) -> Broker {
        Self::with(pki, "allow_anonymous true\n")
    }

    fn with(pki: &Pki, listener: &str) -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = pki.dir.path().join(format!("mosquitto-{port}.conf"));
        let text = format!(
            "user root\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n\
             listener {port} 127.0.0.1\n{listener}"
        );
        std::fs::write(&conf, text).unwrap();
        let mut b = Broker { port, conf, child: None };
        b.run();
        b
    }

    fn run(&mut self) {
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker (as a crash would: no last wills are published).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server with the MQTT door on `broker` (the broker of [`Broker::start`]).
pub async fn server(backend: Backend, pki: &Pki, broker: &Broker) -> Api {
    server_on(backend, pki, broker, true).await
}

/// The MQTT door's settings for `broker` (`tls`: through TLS, with updraft's certificate).
pub fn door(pki: &Pki, broker: &Broker, tls: bool) -> impl FnOnce(&mut updraft_server::Settings) + use<> {
    let (port, ca, cert, key) =
        (broker.port, pki.broker_ca.clone(), pki.device_ca_cert.clone(), pki.device_ca_key.clone());
    move |s| {
        s.mqtt.url = Some(format!("{}://127.0.0.1:{port}", if tls { "mqtts" } else { "mqtt" }));
        s.mqtt.ca_file = Some(ca);
        s.mqtt.device_ca_cert_file = Some(cert);
        s.mqtt.device_ca_key_file = Some(key);
    }
}

/// [`server`] on a clock the test moves (the scheduler ticks when the test says).
pub async fn server_clocked(backend: Backend, pki: &Pki, broker: &Broker) -> (Api, Arc<updraft::testing::ManualClock>) {
    let (server, clock) = TestServer::start_clocked(backend, door(pki, broker, true)).await;
    (Api::on(server), clock)
}

pub async fn server_on(backend: Backend, pki: &Pki, broker: &Broker, tls: bool) -> Api {
    let configure = door(pki, broker, tls);
    let server = TestServer::start_with(backend, move |s| {
        configure(s);
        s.presence_flush_ms = 100;
        s.scheduler_tick_ms = 200;
    })
    .await;
    Api::on(server)
}

/// A product `cam` with a 3,000-byte image: the firmware id.
pub async fn firmware(api: &Api) -> String {
    api.post("/api/v1/products", json!({"key": "cam"})).await.expect(201, None);
    let form = reqwest::multipart::Form::new()
        .text("product", "cam")
        .text("version", "2.0.0")
        .part("file", reqwest::multipart::Part::bytes(image()).file_name("cam.bin"));
    api.multipart("/api/v1/firmware", form).await.expect(201, None)["id"].as_str().unwrap().to_owned()
}

pub fn image() -> Vec<u8> {
    (0..3000u32).map(|i| (i % 251) as u8).collect()
}

/// A registered device of `cam` and its MQTT certificate (as the API issues it).
pub async fn device(api: &Api, id: &str) -> Value {
    api.post("/api/v1/devices", json!({"id": id, "product": "cam"})).await.expect(201, None);
    api.post(&format!("/api/v1/devices/{id}/mqtt-certificate"), json!({})).await.expect(200, None).clone()
}

/// An AWS IoT Jobs device: an MQTT client with its certificate, subscribed to
/// `$aws/things/{thing}/jobs/#`, announcing itself with a last will.
pub struct Device {
    pub thing: String,
    pub client: AsyncClient,
    inbox: mpsc::UnboundedReceiver<(String, Value)>,
    task: tokio::task::JoinHandle<()>,
}

impl Device {
    /// Connects with `credentials` (what `POST …/mqtt-certificate` answered).
    pub async fn connect(pki: &Pki, broker: &Broker, credentials: &Value) -> Device {
        let thing = credentials["thing_name"].as_str().unwrap().to_owned();
        Self::connect_as(pki, broker, credentials, &thing, &[format!("$aws/things/{thing}/jobs/#")]).await
    }

    /// Connects with `credentials` as client `thing`, subscribed to `filters`.
    pub async fn connect_as(
        pki: &Pki,
        broker: &Broker,
        credentials: &Value,
        thing: &str,
        filters: &[String],
    ) -> Device {
        let mut o = MqttOptions::new(thing, "127.0.0.1", broker.port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_last_will(LastWill::new(
            format!("$aws/events/presence/disconnected/{thing}"),
            json!({"clientId": thing, "eventType": "disconnected"}).to_string(),
            QoS::AtLeastOnce,
            false,
        ));
        o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls(
            &pki.broker_ca_pem,
            credentials["certificate_pem"].as_str().unwrap(),
            credentials["private_key_pem"].as_str().unwrap(),
        )))));
        let (client, mut eventloop) = AsyncClient::new(o, 100);
        let (tx, inbox) = mpsc::unbounded_channel();
        for f in filters {
            client.subscribe(f.clone(), QoS::AtLeastOnce).await.unwrap();
        }
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let _ = tx.send((p.topic.clone(), v));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = tx.send(("$suback".to_owned(), Value::Null));
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = tx.send(("$connack".to_owned(), Value::Null));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(("$error".to_owned(), Value::String(e.to_string())));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let mut d = Device { thing: thing.to_owned(), client, inbox, task };
        d.next("$connack").await;
        for _ in filters {
            d.next("$suback").await;
        }
        d
    }

    /// Announces itself (`$aws/events/presence/connected/{thing}`).
    pub async fn announce(&self) {
        let topic = format!("$aws/events/presence/connected/{}", self.thing);
        let body = json!({"clientId": self.thing, "eventType": "connected"});
        self.client.publish(topic, QoS::AtLeastOnce, false, body.to_string()).await.unwrap();
    }

    /// The next message on a topic ending with `suffix` (others are skipped).
    pub async fn next(&mut self, suffix: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = tokio::time::timeout_at(deadline, self.inbox.recv()).await;
            let (topic, body) = got.unwrap_or_else(|_| panic!("{}: nothing on …{suffix} in time", self.thing)).unwrap();
            if topic.ends_with(suffix) {
                return body;
            }
            assert!(topic != "$error" || suffix == "$error", "{}: connection error {body}", self.thing);
        }
    }

    /// Whatever arrived so far, without waiting.
    pub fn drain(&mut self) -> Vec<(String, Value)> {
        std::iter::from_fn(|| self.inbox.try_recv().ok()).collect()
    }

    /// Publishes a jobs request (`op`: `get`, `start-next`, `{jobId}/get`,
    /// `{jobId}/update`) and waits for its answer, publishing again while none
    /// comes (updraft may still be connecting): `("accepted" | "rejected", body)`.
    pub async fn request(&mut self, op: &str, body: Value) -> (String, Value) {
        let topic = format!("$aws/things/{}/jobs/{op}", self.thing);
        for _ in 0..30 {
            self.client.publish(topic.clone(), QoS::AtLeastOnce, false, body.to_string()).await.unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Ok(Some((t, v))) = tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                if let Some(outcome) = t.strip_prefix(&format!("{topic}/")) {
                    return (outcome.to_owned(), v);
                }
            }
        }
        panic!("{}: no answer to {op}", self.thing);
    }

    /// Drops the connection without a DISCONNECT (the broker publishes the last will).
    pub fn vanish(self) {
        self.task.abort();
    }
}

fn tls(ca_pem: &str, cert_pem: &str, key_pem: &str) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap()
}

/// Waits until the device's record says `status` (the presence worker writes every 100 ms here).
pub async fn wait_status(api: &Api, device: &str, status: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let d = api.get(&format!("/api/v1/devices/{device}")).await.ok().clone();
        if d["connection_status"] == status {
            return d;
        }
        assert!(Instant::now() < deadline, "{device} is not {status}: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The state of `device`'s execution of `job`, as the management API shows it.
pub async fn execution_state(api: &Api, job: &str, device: &str) -> String {
    let page = api.get(&format!("/api/v1/jobs/{job}/executions?search={device}")).await.ok().clone();
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let e = items.iter().find(|e| e["device"] == device);
    e.and_then(|e| e["state"].as_str()).unwrap_or_default().to_owned()
}

/// Waits until the device's execution of `job` is in `state`.
pub async fn wait_execution(api: &Api, job: &str, device: &str, state: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = execution_state(api, job, device).await;
        if now == state {
            return;
        }
        assert!(Instant::now() < deadline, "{device}'s execution of {job} is {now}, not {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
