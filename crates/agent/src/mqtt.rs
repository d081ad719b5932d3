//! A device's MQTT link to updraft's MQTT door, speaking AWS IoT Jobs' device
//! API (docs/mqtt.md): it announces the device on
//! `$aws/events/presence/connected/{thing}` when it connects, leaves its
//! `disconnected` event as its last will, and hands on every `notify-next`.
//! The agent uses it to be woken at once instead of at its next poll; the
//! simulator's devices do their whole job through it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, Transport};
use tokio::sync::mpsc;
use updraft_iot_jobs::topic;

use crate::Error;

/// Where and how a device connects.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// `mqtt://host:1883` or `mqtts://host:8883`.
    pub url: String,
    /// CA certificates, PEM, of the broker (`mqtts`).
    pub ca_file: Option<PathBuf>,
    /// The device's client certificate and key, PEM (what `POST /api/v1/devices/{id}/mqtt-certificate` issues).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub keep_alive: Duration,
}

impl MqttSettings {
    pub fn new(url: impl Into<String>) -> Self {
        MqttSettings {
            url: url.into(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive: Duration::from_secs(60),
        }
    }
}

pub use updraft_iot_jobs::topic::thing_name;

fn config_error(message: impl Into<String>) -> Error {
    Error::Config(message.into())
}

/// The connection options of `thing`, with its last will.
pub fn options(settings: &MqttSettings, thing: &str) -> Result<MqttOptions, Error> {
    let url: url::Url = settings.url.parse().map_err(|e| config_error(format!("mqtt url {}: {e}", settings.url)))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => return Err(config_error(format!("mqtt url scheme {other}: use mqtt:// or mqtts://"))),
    };
    let host = url.host_str().ok_or_else(|| config_error("the mqtt url has no host"))?;
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut o = MqttOptions::new(thing, host.trim_start_matches('[').trim_end_matches(']'), port);
    o.set_keep_alive(settings.keep_alive);
    o.set_clean_session(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let will =
        serde_json::json!({"clientId": thing, "eventType": "disconnected", "disconnectReason": "CONNECTION_LOST"});
    o.set_last_will(LastWill::new(topic::presence(thing, false), will.to_string(), QoS::AtLeastOnce, false));
    if tls {
        o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls_config(settings)?))));
    }
    Ok(o)
}

fn tls_config(settings: &MqttSettings) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca = settings.ca_file.as_ref().ok_or_else(|| config_error("mqtts needs the broker's CA file"))?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| config_error(format!("{}: {e}", ca.display())))?;
    for c in certs {
        let c = c.map_err(|e| config_error(format!("{}: {e}", ca.display())))?;
        roots.add(c).map_err(|e| config_error(format!("{}: {e}", ca.display())))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_root_certificates(roots);
    match (&settings.client_cert_file, &settings.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| config_error(format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| config_error(format!("{}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| config_error(e.to_string()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(config_error("the MQTT client certificate and key go together")),
    }
}

/// What a device's link hands on.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// Connected (again): the device announced itself.
    Connected,
    /// A message on one of the device's topics: topic and JSON body.
    Message(String, serde_json::Value),
}

/// A device's connection: subscribes to `filters` (relative to
/// `$aws/things/{thing}/jobs/`) and announces itself on every (re)connection;
/// reconnects with backoff. Drop the handle's task to vanish (the last will is published).
pub struct Link {
    pub thing: String,
    pub client: AsyncClient,
    pub task: tokio::task::JoinHandle<()>,
}

impl Link {
    pub fn open(
        settings: &MqttSettings,
        thing: &str,
        filters: &[&str],
    ) -> Result<(Link, mpsc::UnboundedReceiver<Incoming>), Error> {
        let (client, mut eventloop) = AsyncClient::new(options(settings, thing)?, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let subscriptions: Vec<String> = filters.iter().map(|f| format!("{}{thing}/jobs/{f}", topic::THINGS)).collect();
        let (me, announce) = (client.clone(), topic::presence(thing, true));
        let hello = serde_json::json!({"clientId": thing, "eventType": "connected"}).to_string();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(200);
                        for s in &subscriptions {
                            let _ = me.try_subscribe(s.clone(), QoS::AtLeastOnce);
                        }
                    }
                    // Announced once subscribed, so the job pushed in answer is not missed.
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if me.try_publish(announce.clone(), QoS::AtLeastOnce, false, hello.clone()).is_ok() {
                            let _ = tx.send(Incoming::Connected);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let body = serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null);
                        if tx.send(Incoming::Message(p.topic.clone(), body)).is_err() {
                            return;
                        }
                    }
                    // Left on purpose (`Link::leave`): no reconnection.
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "mqtt connection lost; reconnecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
        Ok((Link { thing: thing.to_owned(), client, task }, rx))
    }

    /// Says goodbye: the device announces that it leaves (a clean disconnect
    /// publishes no last will) and disconnects.
    pub async fn leave(self) {
        let bye = serde_json::json!({"clientId": self.thing, "eventType": "disconnected",
            "disconnectReason": "CLIENT_INITIATED_DISCONNECT"});
        let _ =
            self.client.publish(topic::presence(&self.thing, false), QoS::AtLeastOnce, false, bye.to_string()).await;
        let _ = self.client.disconnect().await;
        // Let the event loop send both before it stops.
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err() {
            task.abort();
        }
    }

    /// Publishes a jobs request (`op`: `get`, `start-next`, `{jobId}/update`, …).
    pub async fn request(&self, op: &str, body: &serde_json::Value) -> Result<(), Error> {
        let topic = format!("{}{}/jobs/{op}", topic::THINGS, self.thing);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body.to_string())
            .await
            .map_err(|e| Error::Config(format!("mqtt publish: {e}")))
    }
}

/// Wakes the agent on every `notify-next` that names an execution (and on each
/// (re)connection: what was pushed while away is asked for by the next poll).
pub fn wake_on_notify(settings: &MqttSettings, thing: &str) -> Result<(Link, mpsc::UnboundedReceiver<()>), Error> {
    let (link, mut incoming) = Link::open(settings, thing, &["notify-next"])?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = incoming.recv().await {
            let wake = match m {
                Incoming::Connected => true,
                Incoming::Message(_, body) => body.get("execution").is_some(),
            };
            if wake && tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok((link, rx))
}
