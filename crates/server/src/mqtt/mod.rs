//! The MQTT door: AWS IoT Jobs' device API through a broker (docs/mqtt.md,
//! ADR 0010). updraft connects to the broker as one client per replica and
//! - answers devices' jobs requests (`$aws/things/{thing}/jobs/get`,
//!   `start-next`, `{jobId}/get`, `{jobId}/update`), in order per thing
//!   (through a shared subscription, `mqtt.shared_group`, with several replicas);
//! - publishes `notify` and `notify-next` when a device's executions change
//!   (the application's `push` follower: once per change across replicas),
//!   queueing them while the broker is away and sending them when it is back;
//! - follows presence (`$aws/events/presence/{connected,disconnected}/{thing}`:
//!   a device's own announcement and its last will), which feeds the device's
//!   connection status and `last_seen_at`, and pushes a device its job the
//!   moment it connects.
//!
//! Thing names are device ids in `mqtt.default_tenant` and `{tenant}@{device}`
//! in other tenants.

pub mod certs;
pub mod document;
pub mod jobs;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use updraft_app::Actor;
use updraft_core::job::Execution;
use updraft_iot_jobs::topic::{self, Parsed, Request};
pub use updraft_iot_jobs::topic::{parse_thing, thing_name};
use updraft_iot_jobs::{JobExecution, Notify, NotifyNext, Status};

use crate::AppState;
pub(crate) use crate::metrics::MQTT_REQUESTS;
use crate::metrics::{MQTT_CONNECTIONS, MQTT_NOTIFICATIONS, MQTT_PRESENCE};

/// The largest request payload read.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Workers answering requests and following presence; a thing's always go to the same one, in order.
const SHARDS: usize = 8;
/// The most things whose last notification is remembered (then forgotten at once: at
/// worst a device is told again what it knows).
const MAX_TOLD: usize = 1_000_000;
/// How long a job and its firmware are kept for job documents.
const DOCUMENT_CACHE: Duration = Duration::from_secs(2);
/// Devices whose notifications are read and sent together.
const NOTIFY_CHUNK: usize = 500;
/// Chunks of devices notified at once.
const NOTIFY_CONCURRENCY: usize = 4;

/// What the door's tasks share.
pub struct Door {
    pub state: AppState,
    /// The public URL download links start with.
    base: String,
    default_tenant: String,
    link_ttl: i64,
    client: AsyncClient,
    connected: AtomicBool,
    /// Things connected now (their lifecycle events), noted seen periodically.
    online: std::sync::Mutex<HashSet<String>>,
    /// The next execution (job, attempt) each thing was last told of.
    told: std::sync::Mutex<HashMap<String, Option<(String, u32)>>>,
    /// Jobs and their firmware by (tenant, job), for a few seconds (see [`Door::job_and_firmware`]).
    #[allow(clippy::type_complexity)]
    documents: std::sync::Mutex<
        HashMap<(String, String), (std::time::Instant, Arc<updraft_core::job::Job>, Arc<updraft_core::Firmware>)>,
    >,
    notes: mpsc::UnboundedSender<Note>,
}

/// Work for the notifier.
enum Note {
    Changed {
        tenant: String,
        devices: Vec<String>,
        /// Publish even when what is next did not change (a device that just connected).
        force: bool,
    },
    /// The broker is back: send what waited.
    Flush,
}

/// The application's `push` follower hands changed devices to the door.
struct Pusher(mpsc::UnboundedSender<Note>);

impl updraft_app::push::Push for Pusher {
    fn changed(&self, tenant: &str, devices: &[String]) {
        let _ = self.0.send(Note::Changed { tenant: tenant.to_owned(), devices: devices.to_vec(), force: false });
    }
}

impl Door {
    /// The thing name of a device.
    pub fn thing(&self, tenant: &str, device: &str) -> String {
        thing_name(&self.default_tenant, tenant, device)
    }

    /// The device a thing name names, if it exists.
    pub async fn device(&self, thing: &str) -> updraft_app::Result<Option<Actor>> {
        let Some((tenant, device)) = parse_thing(&self.default_tenant, thing) else { return Ok(None) };
        let cache = &self.state.poll_cache;
        if !cache.known(&tenant, &device) {
            let epoch = cache.epoch();
            let actor = Actor::Device { tenant: tenant.clone(), device: device.clone() };
            if self.state.app.device_identity(&actor).await?.is_none() {
                return Ok(None);
            }
            cache.remember_known(epoch, &tenant, &device);
        }
        Ok(Some(Actor::Device { tenant, device }))
    }

    /// The job and firmware of an execution, kept a few seconds: a release pushes the same
    /// job to thousands of devices at once.
    async fn job_and_firmware(
        &self,
        actor: &Actor,
        e: &Execution,
    ) -> updraft_app::Result<Option<(Arc<updraft_core::job::Job>, Arc<updraft_core::Firmware>)>> {
        let key = (actor.tenant().to_owned(), e.job.clone());
        if let Some((at, job, fw)) = self.documents.lock().expect("not poisoned").get(&key)
            && at.elapsed() < DOCUMENT_CACHE
            && job.firmware == e.firmware
        {
            return Ok(Some((job.clone(), fw.clone())));
        }
        let app = &self.state.app;
        let (Some(job), Some(fw)) = (app.device_job(actor, e).await?, app.device_firmware(actor, e).await?) else {
            return Ok(None);
        };
        let (job, fw) = (Arc::new(job), Arc::new(fw));
        let mut cache = self.documents.lock().expect("not poisoned");
        if cache.len() >= 1024 {
            cache.retain(|_, (at, _, _)| at.elapsed() < DOCUMENT_CACHE);
        }
        cache.insert(key, (std::time::Instant::now(), job.clone(), fw.clone()));
        Ok(Some((job, fw)))
    }

    /// The job document of one of the device's executions.
    pub async fn document(&self, actor: &Actor, e: &Execution) -> updraft_app::Result<Option<serde_json::Value>> {
        let app = &self.state.app;
        let Some((job, fw)) = self.job_and_firmware(actor, e).await? else {
            return Ok(None);
        };
        let Actor::Device { tenant, device } = actor else { return Ok(None) };
        let links = document::Links {
            base: &self.base,
            tenant,
            device,
            expires: self.state.now().as_second().saturating_add(self.link_ttl),
        };
        Ok(Some(document::job_document(app, &job, &fw, e, &links)))
    }

    /// An execution as AWS IoT Jobs shows it (none when the device may not see it).
    pub async fn execution(
        &self,
        actor: &Actor,
        thing: &str,
        e: &Execution,
        with_document: bool,
    ) -> updraft_app::Result<Option<JobExecution>> {
        let Some(status) = document::status(e) else { return Ok(None) };
        let facts = document::Facts::of(&self.state.app.device_history(actor, e).await?);
        let doc = if with_document { self.document(actor, e).await? } else { None };
        Ok(Some(document::execution(e, status, &facts, thing, doc)))
    }

    fn publish(&self, topic: String, payload: Vec<u8>) -> bool {
        match self.client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "mqtt publish not queued");
                false
            }
        }
    }

    /// Tells devices of `tenant` what is pending (`notify`) and what is next
    /// (`notify-next`), as AWS IoT Jobs does: only when the next execution is
    /// another than the one last told (unless the device's `force`), not when
    /// it merely moved on. Their executions and histories are read at once. An
    /// operator's cancellation waiting for a device that talks MQTT is closed
    /// once it is told (its job is `CANCELED` for it). Returns the devices not
    /// published to (the broker is away).
    async fn notify(&self, tenant: &str, devices: Vec<(String, bool)>) -> Vec<(String, bool)> {
        let started = std::time::Instant::now();
        let app = &self.state.app;
        let system = Actor::System("mqtt");
        let ids: Vec<String> = devices.iter().map(|(d, _)| d.clone()).collect();
        let mut offered: HashMap<String, Execution> = match app.offered_executions(&system, tenant, &ids).await {
            Ok(all) => all.into_iter().map(|e| (e.device.clone(), e)).collect(),
            Err(e) => {
                tracing::warn!(%tenant, devices = ids.len(), error = %e, "mqtt notifications not computed");
                return Vec::new();
            }
        };
        // Who is told something new.
        let mut told_now = Vec::new();
        {
            let told = self.told.lock().expect("not poisoned");
            for (device, force) in devices {
                let active = offered.remove(&device);
                let thing = self.thing(tenant, &device);
                let shown = active.as_ref().filter(|e| !e.cancel_requested && document::status(e).is_some());
                let identity = shown.map(|e| (e.job.clone(), e.attempt));
                if force || told.get(&thing) != Some(&identity) {
                    told_now.push((device, force, thing, identity, active));
                }
            }
        }
        let shown: Vec<i64> = told_now
            .iter()
            .filter_map(|(.., e)| e.as_ref().filter(|e| !e.cancel_requested))
            .map(|e| e.action_id)
            .collect();
        let mut histories = if shown.is_empty() {
            HashMap::new()
        } else {
            match app.execution_histories(&system, tenant, &shown).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(%tenant, devices = shown.len(), error = %e, "mqtt notifications not computed");
                    return Vec::new();
                }
            }
        };
        let read = started.elapsed();
        let now = self.state.now().as_second();
        let mut failed = Vec::new();
        let mut canceled = Vec::new();
        let told_count = told_now.len();
        for (device, force, thing, identity, active) in told_now {
            let actor = Actor::Device { tenant: tenant.to_owned(), device: device.clone() };
            let mut pending = std::collections::BTreeMap::new();
            let mut next = None;
            match active {
                Some(e) if e.cancel_requested => canceled.push((actor.clone(), thing.clone(), e)),
                Some(e) => {
                    if let Some(status) = document::status(&e) {
                        let facts = document::Facts::of(&histories.remove(&e.action_id).unwrap_or_default());
                        let doc = match self.document(&actor, &e).await {
                            Ok(doc) => doc,
                            Err(err) => {
                                tracing::warn!(%tenant, %device, error = %err, "mqtt notification not computed");
                                continue;
                            }
                        };
                        if matches!(status, Status::Queued | Status::InProgress) {
                            pending.insert(status, vec![document::summary(&e, &facts)]);
                        }
                        next = Some(document::execution(&e, status, &facts, &thing, doc));
                    }
                }
                None => {}
            }
            let sent = self.publish(topic::notify(&thing), jobs::json(&Notify { jobs: pending, timestamp: now }))
                && self
                    .publish(topic::notify_next(&thing), jobs::json(&NotifyNext { execution: next, timestamp: now }));
            if !sent {
                failed.push((device, force));
                canceled.retain(|(_, t, _)| *t != thing);
                continue;
            }
            metrics::counter!(MQTT_NOTIFICATIONS).increment(2);
            let mut told = self.told.lock().expect("not poisoned");
            if told.len() >= MAX_TOLD && !told.contains_key(&thing) {
                told.clear();
            }
            told.insert(thing, identity);
        }
        tracing::debug!(
            %tenant,
            devices = ids.len(),
            told = told_count,
            read_ms = read.as_millis() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "mqtt notifications published"
        );
        for (actor, thing, e) in canceled {
            if self.online.lock().expect("not poisoned").contains(&thing)
                && let Err(jobs::Refusal(_, err, _)) = jobs::acknowledge_cancel(self, &actor, &e).await
            {
                tracing::warn!(%thing, error = %err, "closing a cancellation told over MQTT failed");
            }
        }
        failed
    }

    async fn presence(&self, thing: &str, connected: bool) {
        metrics::counter!(MQTT_PRESENCE, "event" => if connected { "connected" } else { "disconnected" }).increment(1);
        let actor = match self.device(thing).await {
            Ok(Some(actor)) => actor,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%thing, error = %e, "presence event not handled");
                return;
            }
        };
        if connected {
            self.online.lock().expect("not poisoned").insert(thing.to_owned());
            self.state.app.device_connected(&actor);
            if let Actor::Device { tenant, device } = &actor {
                let _ = self.notes.send(Note::Changed {
                    tenant: tenant.clone(),
                    devices: vec![device.clone()],
                    force: true,
                });
            }
            tracing::debug!(%thing, "device connected over mqtt");
        } else {
            self.online.lock().expect("not poisoned").remove(thing);
            self.state.app.device_left(&actor);
            tracing::debug!(%thing, "device disconnected from mqtt");
        }
    }
}

/// What updraft's connection to the broker is made of.
fn options(state: &AppState, ca: Option<&certs::DeviceCa>) -> anyhow::Result<MqttOptions> {
    let s = &state.settings.mqtt;
    let url = s.url.as_deref().context("mqtt.url is not set")?;
    let uri: axum::http::Uri = url.parse().with_context(|| format!("mqtt.url `{url}`"))?;
    let tls = match uri.scheme_str() {
        Some("mqtt" | "tcp") => false,
        Some("mqtts" | "ssl") => true,
        _ => anyhow::bail!("mqtt.url `{url}` must start with mqtt:// or mqtts://"),
    };
    let host = uri.host().filter(|h| !h.is_empty()).with_context(|| format!("mqtt.url `{url}` has no host"))?;
    let port = uri.port_u16().unwrap_or(if tls { 8883 } else { 1883 });
    let id = format!("{}-{}", s.client_id, state.app.replica.trim_start_matches("replica_"));
    let mut o = MqttOptions::new(id, host.trim_start_matches('[').trim_end_matches(']'), port);
    o.set_keep_alive(Duration::from_secs(s.keep_alive_secs.clamp(5, 3600)));
    o.set_clean_session(true);
    // Larger than any request is read (MAX_PAYLOAD): a device's oversized message is refused
    // as `InvalidRequest` rather than breaking updraft's connection (which a packet over this
    // size would; the broker's `message_size_limit` bounds them first, docs/mqtt.md).
    o.set_max_packet_size(16 << 20, 1 << 20);
    if let Some(user) = &s.username {
        o.set_credentials(user.clone(), s.password.clone().unwrap_or_default());
    }
    if tls {
        o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(client_tls(
            state, ca,
        )?))));
    }
    Ok(o)
}

/// The TLS client configuration of updraft's connection: the broker checked
/// against `mqtt.ca_file`, updraft's own certificate from the settings or the device CA.
fn client_tls(state: &AppState, ca: Option<&certs::DeviceCa>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let s = &state.settings.mqtt;
    let ca_file = s.ca_file.as_ref().context("mqtts needs mqtt.ca_file: the CA the broker's certificate chains to")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).with_context(|| format!("reading {}", ca_file.display()))? {
        roots.add(cert.with_context(|| format!("a certificate in {}", ca_file.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) =
        match (&s.client_cert_file, &s.client_key_file, ca) {
            (Some(cert), Some(key), _) => (
                CertificateDer::pem_file_iter(cert)
                    .with_context(|| format!("reading {}", cert.display()))?
                    .collect::<Result<_, _>>()?,
                PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?,
            ),
            (None, None, Some(ca)) => {
                let (cert, key) = ca.issue(certs::SERVER_IDENTITY)?;
                (
                    CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<_, _>>()?,
                    PrivateKeyDer::from_pem_slice(key.as_bytes())?,
                )
            }
            _ => anyhow::bail!("mqtt.client_cert_file and mqtt.client_key_file go together"),
        };
    Ok(builder.with_client_auth_cert(chain, key)?)
}

/// Starts the MQTT door when `mqtt.url` is set: its connection, request
/// workers, notifier and presence refresh, until `stop`. `local` is the HTTP
/// listener's address (download links use it without `public_url`).
pub fn spawn(
    state: AppState,
    local: std::net::SocketAddr,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if state.settings.mqtt.url.is_none() {
        return Ok(None);
    }
    let opts = options(&state, state.device_ca.as_deref())?;
    let (client, eventloop) = AsyncClient::new(opts, 100_000);
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let base = match &state.settings.public_url {
        Some(url) => url.clone(),
        None => format!("{}://{local}", if state.settings.tls() { "https" } else { "http" }),
    };
    let s = &state.settings.mqtt;
    let door = Arc::new(Door {
        base,
        default_tenant: s.default_tenant.to_ascii_lowercase(),
        link_ttl: s.link_ttl_secs.clamp(60, 365 * 86_400) as i64,
        client,
        connected: AtomicBool::new(false),
        online: Default::default(),
        documents: Default::default(),
        told: Default::default(),
        notes: notes_tx.clone(),
        state: state.clone(),
    });
    state.app.add_push(Arc::new(Pusher(notes_tx)));
    Ok(Some(tokio::spawn(run(door, eventloop, notes_rx, stop))))
}

async fn run(
    door: Arc<Door>,
    mut eventloop: rumqttc::EventLoop,
    notes: mpsc::UnboundedReceiver<Note>,
    mut stop: watch::Receiver<bool>,
) {
    let mut shards = Vec::with_capacity(SHARDS);
    let mut tasks = Vec::new();
    for _ in 0..SHARDS {
        let (tx, rx) = mpsc::channel::<(String, Work)>(10_000);
        shards.push(tx);
        tasks.push(tokio::spawn(answer(door.clone(), rx)));
    }
    tasks.push(tokio::spawn(notifier(door.clone(), notes)));
    tasks.push(tokio::spawn(refresh_presence(door.clone(), stop.clone())));
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            _ = stop.changed() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                metrics::counter!(MQTT_CONNECTIONS, "outcome" => "connected").increment(1);
                tracing::info!("connected to the mqtt broker");
                subscribe(&door);
                door.connected.store(true, Ordering::SeqCst);
                let _ = door.notes.send(Note::Flush);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => dispatch(&shards, &p.topic, p.payload).await,
            Ok(_) => {}
            Err(e) => {
                if door.connected.swap(false, Ordering::SeqCst) {
                    tracing::warn!(error = %e, "lost the mqtt broker; reconnecting");
                } else {
                    tracing::debug!(error = %e, "mqtt broker unreachable");
                }
                metrics::counter!(MQTT_CONNECTIONS, "outcome" => "failed").increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    let _ = door.client.try_disconnect();
    drop(shards);
    for t in tasks {
        t.abort();
    }
}

/// The topics updraft listens on: requests shared among replicas, presence seen by all.
fn subscribe(door: &Door) {
    let group = match &door.state.settings.mqtt.shared_group {
        Some(g) => format!("$share/{g}/"),
        None => String::new(),
    };
    let requests = ["get", "start-next", "+/get", "+/update"];
    for r in requests {
        let filter = format!("{group}{}+/jobs/{r}", topic::THINGS);
        if let Err(e) = door.client.try_subscribe(filter, QoS::AtLeastOnce) {
            tracing::warn!(error = %e, "mqtt subscription not sent");
        }
    }
    let presence = format!("{}+/+", topic::PRESENCE);
    if let Err(e) = door.client.try_subscribe(presence, QoS::AtLeastOnce) {
        tracing::warn!(error = %e, "mqtt subscription not sent");
    }
}

fn shard_of(thing: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    thing.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// What a thing sent, for its worker.
enum Work {
    Request(Request, bytes::Bytes),
    /// A lifecycle event: connected or not.
    Presence(bool),
}

/// Hands what a thing sent to its worker (never waiting on the store here: the
/// connection's event loop must keep turning).
async fn dispatch(shards: &[mpsc::Sender<(String, Work)>], topic_name: &str, payload: bytes::Bytes) {
    let (thing, work) = match topic::parse(topic_name) {
        Some(Parsed::Jobs { thing, request }) => (thing, Work::Request(request, payload)),
        Some(Parsed::Presence { thing, connected }) => (thing, Work::Presence(connected)),
        Some(Parsed::InvalidTopic { .. }) | None => return,
    };
    let _ = shards[shard_of(thing)].send((thing.to_owned(), work)).await;
}

/// One worker: answers its things' requests and follows their presence, in the order they came.
async fn answer(door: Arc<Door>, mut rx: mpsc::Receiver<(String, Work)>) {
    while let Some((thing, work)) = rx.recv().await {
        match work {
            Work::Request(request, payload) => {
                let out = jobs::handle(&door, &thing, &request, &payload).await;
                if let Err(e) = door.client.publish(out.topic, QoS::AtLeastOnce, false, out.payload).await {
                    tracing::debug!(error = %e, "mqtt answer not sent");
                }
            }
            Work::Presence(connected) => door.presence(&thing, connected).await,
        }
    }
}

/// Publishes notifications; keeps them while the broker is away.
async fn notifier(door: Arc<Door>, mut notes: mpsc::UnboundedReceiver<Note>) {
    let mut waiting: HashMap<(String, String), bool> = HashMap::new();
    while let Some(note) = notes.recv().await {
        let mut batch: Vec<(String, String, bool)> = Vec::new();
        let mut collect = |note: Note, batch: &mut Vec<(String, String, bool)>| match note {
            Note::Changed { tenant, devices, force } => {
                batch.extend(devices.into_iter().map(|d| (tenant.clone(), d, force)));
            }
            Note::Flush => {
                batch.extend(waiting.drain().map(|((t, d), c)| (t, d, c)));
            }
        };
        collect(note, &mut batch);
        while let Ok(more) = notes.try_recv() {
            collect(more, &mut batch);
        }
        if !door.connected.load(Ordering::SeqCst) {
            for (t, d, c) in batch {
                *waiting.entry((t, d)).or_default() |= c;
            }
            continue;
        }
        // Each device once (forced if any of its notes was), in chunks per tenant.
        let mut devices: HashMap<String, HashMap<String, bool>> = HashMap::new();
        for (t, d, c) in batch {
            *devices.entry(t).or_default().entry(d).or_default() |= c;
        }
        let chunks = devices.into_iter().flat_map(|(tenant, devices)| {
            let devices: Vec<(String, bool)> = devices.into_iter().collect();
            devices.chunks(NOTIFY_CHUNK).map(|c| (tenant.clone(), c.to_vec())).collect::<Vec<_>>()
        });
        let failed: Vec<Vec<(String, (String, bool))>> = futures_util::stream::iter(chunks)
            .map(|(tenant, chunk)| {
                let door = door.clone();
                async move {
                    let failed = door.notify(&tenant, chunk).await;
                    failed.into_iter().map(|f| (tenant.clone(), f)).collect()
                }
            })
            .buffer_unordered(NOTIFY_CONCURRENCY)
            .collect()
            .await;
        for (t, (d, c)) in failed.into_iter().flatten() {
            *waiting.entry((t, d)).or_default() |= c;
        }
    }
}

/// Connected devices are sighted periodically, so they stay online without polling.
async fn refresh_presence(door: Arc<Door>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(door.state.settings.mqtt.presence_refresh_secs.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let things: Vec<String> = door.online.lock().expect("not poisoned").iter().cloned().collect();
        for thing in things {
            if let Some((tenant, device)) = parse_thing(&door.default_tenant, &thing) {
                door.state.app.device_seen(&Actor::Device { tenant, device });
            }
        }
    }
}
