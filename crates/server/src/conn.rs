//! The HTTP listener: an accept loop over hyper's HTTP/1 connections that no
//! slow or idle client can exhaust.
//!
//! - At most `max_connections` connections are open at once (by default well
//!   below the process's file limit, see [`default_max_connections`]). When
//!   the cap is reached, the connection idle the longest (one with no request
//!   in progress and no byte of a new one received) is closed to make room, so
//!   idle sockets cannot lock devices out; if none is idle, new connections
//!   wait in the kernel's backlog until one closes.
//! - A connection must send a request's headers within `header_read_timeout`
//!   (counted from its accept for the first request, from the first byte for
//!   later ones); a connection that sent nothing is closed after that long.
//! - Between requests a connection may stay idle `keep_alive_timeout`.
//! - While a request is handled, the body timeout of [`crate::router`] bounds
//!   the wait for each piece of its body.
//! - With TLS ([`crate::tls`]), the handshake must end within
//!   `tls_handshake_timeout` (a client that sends nothing, or not TLS, is
//!   closed); a connection still in its handshake counts as idle for the cap.
//!   The certificate a client presented, verified, is each request's
//!   [`PeerCertificate`].
//!
//! Shutdown stops accepting, lets each connection finish the request it is
//! serving (hyper's graceful shutdown), and returns when every one is closed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

/// The address a connection reached this server at (a request extension):
/// download links are built from it when no public URL is configured.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub SocketAddr);

/// The address a request's connection came from.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The certificate the client presented in the TLS handshake, chained to the
/// configured client CA (a request extension; absent when it presented none).
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// The end-entity certificate, DER.
    pub der: CertificateDer<'static>,
    /// Its subject's common name, when it has exactly one.
    pub common_name: Option<Arc<str>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take, from the accept.
    pub tls_handshake_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
}

/// The process's soft limit on open files, when it can be read.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the soft limit on open files to the hard limit; returns the new soft limit.
pub fn raise_open_file_limit() -> Option<u64> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Nofile, raised) {
            tracing::warn!(error = %e, "raising the open file limit failed");
        }
    }
    open_file_limit()
}

/// Connections allowed under a file limit: the limit less what the database
/// pool, firmware files being served, logs and the listener need (an eighth
/// of the limit, at least 64), and at most 100,000.
pub fn default_max_connections(file_limit: Option<u64>) -> usize {
    let limit = file_limit.unwrap_or(1024).min(1 << 20);
    let reserve = (limit / 8).max(64);
    limit.saturating_sub(reserve).clamp(16, 100_000) as usize
}

/// What a connection is doing, shared by its socket, its requests and its watchdog.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` when the current wait began.
    since_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// A byte of a request not yet being handled has arrived.
    head_started: AtomicBool,
    served_any: AtomicBool,
    evict: AtomicBool,
    wake: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_started: AtomicBool::new(false),
            served_any: AtomicBool::new(false),
            evict: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && !self.head_started.load(Ordering::SeqCst)
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0 && !self.head_started.swap(true, Ordering::SeqCst) {
            // The first request's headers are timed from the accept, later ones from their first byte.
            if self.served_any.load(Ordering::SeqCst) {
                self.since_ms.store(self.now_ms(), Ordering::SeqCst);
            }
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.head_started.store(false, Ordering::SeqCst);
    }

    fn request_finished(&self) {
        self.since_ms.store(self.now_ms(), Ordering::SeqCst);
        self.served_any.store(true, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether the connection has waited longer than its limits allow.
    fn expired(&self, limits: &Limits) -> bool {
        if self.evict.load(Ordering::SeqCst) {
            return true;
        }
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let waited = Duration::from_millis(self.now_ms().saturating_sub(self.since_ms.load(Ordering::SeqCst)));
        let reading_head = self.head_started.load(Ordering::SeqCst) || !self.served_any.load(Ordering::SeqCst);
        waited > if reading_head { limits.header_read_timeout } else { limits.keep_alive_timeout }
    }
}

/// The open connections, to find one to close when the cap is reached.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    fn add(&self, activity: Arc<Activity>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().expect("registry lock").insert(id, activity);
        id
    }

    fn remove(&self, id: u64) {
        self.open.lock().expect("registry lock").remove(&id);
    }

    /// Asks the connection idle the longest to close; false when none is idle.
    fn evict_idlest(&self) -> bool {
        let open = self.open.lock().expect("registry lock");
        let idlest = open
            .values()
            .filter(|a| a.is_idle() && !a.evict.load(Ordering::SeqCst))
            .min_by_key(|a| a.opened + Duration::from_millis(a.since_ms.load(Ordering::SeqCst)));
        match idlest {
            Some(a) => {
                a.evict.store(true, Ordering::SeqCst);
                a.wake.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A socket that tells its connection's [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A connection's byte stream: plain, or TLS over it.
enum Stream {
    Plain(Watched),
    Tls(Box<TlsStream<Watched>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The TLS handshake of a new connection, within the handshake timeout; `None`
/// when it failed, timed out, or the connection was asked to close meanwhile.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    socket: Watched,
    activity: &Activity,
    timeout: Duration,
    stopped: &mut watch::Receiver<bool>,
) -> Option<(TlsStream<Watched>, Option<PeerCertificate>)> {
    let peer = socket.stream.peer_addr().ok();
    let accepting = tokio::time::timeout(timeout, acceptor.accept(socket));
    let mut accepting = std::pin::pin!(accepting);
    let stream = loop {
        tokio::select! {
            done = accepting.as_mut() => match done {
                Ok(Ok(stream)) => break stream,
                Ok(Err(e)) => {
                    tracing::debug!(peer = ?peer, error = %e, "tls handshake failed");
                    return None;
                }
                Err(_) => {
                    tracing::debug!(peer = ?peer, "tls handshake timed out");
                    return None;
                }
            },
            () = activity.wake.notified() => if activity.evict.load(Ordering::SeqCst) { return None },
            changed = stopped.changed() => if changed.is_err() || *stopped.borrow() { return None },
        }
    };
    // The handshake's bytes were not a request: the connection is idle until one starts.
    activity.head_started.store(false, Ordering::SeqCst);
    let certificate =
        stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(|der| PeerCertificate {
            common_name: crate::tls::subject_common_name(der).map(Arc::from),
            der: der.clone().into_owned(),
        });
    Some((stream, certificate))
}

/// A response body that marks its request finished when it is dropped (sent or abandoned).
struct Finishing {
    inner: Body,
    activity: Arc<Activity>,
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.activity.request_finished();
    }
}

impl HttpBody for Finishing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then
/// waits for the open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.header_read_timeout(None);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of files or memory: wait for connections to close rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let evicted = registry.evict_idlest();
                tracing::debug!(evicted, "connection cap reached");
                tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.expect("the semaphore stays open"),
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let peer = stream.peer_addr().ok();
        let activity = Arc::new(Activity::new());
        let id = registry.add(activity.clone());
        let socket = Watched { stream, activity: activity.clone() };
        let registry = registry.clone();
        let mut stopped = stopped.clone();
        let acceptor = acceptor.clone();
        let app = app.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (io, certificate) = match &acceptor {
                None => (Stream::Plain(socket), None),
                Some(acceptor) => {
                    match handshake(acceptor, socket, &activity, limits.tls_handshake_timeout, &mut stopped).await {
                        Some((tls, certificate)) => (Stream::Tls(Box::new(tls)), certificate),
                        None => {
                            registry.remove(id);
                            return;
                        }
                    }
                }
            };
            let service = {
                let activity = activity.clone();
                hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    activity.request_started();
                    let mut req: Request = req.map(Body::new);
                    if let Some(local) = local {
                        req.extensions_mut().insert(LocalAddr(local));
                    }
                    if let Some(peer) = peer {
                        req.extensions_mut().insert(PeerAddr(peer));
                    }
                    if let Some(certificate) = &certificate {
                        req.extensions_mut().insert(certificate.clone());
                    }
                    let activity = activity.clone();
                    let answer = app.clone().oneshot(req);
                    async move {
                        let response = answer.await?;
                        Ok::<_, Infallible>(response.map(|inner| Body::new(Finishing { inner, activity })))
                    }
                })
            };
            let connection = http.serve_connection(TokioIo::new(io), service);
            let mut connection = std::pin::pin!(connection);
            let tick = (limits.header_read_timeout.min(limits.keep_alive_timeout) / 4)
                .clamp(Duration::from_millis(10), Duration::from_secs(1));
            let mut watchdog = tokio::time::interval(tick);
            let mut stopping = *stopped.borrow();
            if stopping {
                connection.as_mut().graceful_shutdown();
            }
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    changed = stopped.changed(), if !stopping => {
                        stopping = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                    _ = watchdog.tick() => if activity.expired(&limits) { break },
                    () = activity.wake.notified() => if activity.expired(&limits) { break },
                }
            }
            registry.remove(id);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it closes.
    let _ = permits.acquire_many(limits.max_connections as u32).await;
}
