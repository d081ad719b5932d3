//! A real server for integration tests: the binary's wiring
//! ([`crate::backends`], `updraft_server::serve`) on port 0, in a temporary
//! data directory, on SQLite or on a fresh PostgreSQL database, with a known
//! administrator token.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use updraft_server::Settings;

/// The administrator token every test server starts with.
pub const ADMIN_TOKEN: &str = "upd_k_test_admin_token_0123456789";

/// A clock that stands still until the test moves it.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: Timestamp) {
        *self.0.lock().expect("not poisoned") = at;
    }

    pub fn advance(&self, by: SignedDuration) -> Timestamp {
        let mut t = self.0.lock().expect("not poisoned");
        *t += by;
        *t
    }
}

impl updraft_app::Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("not poisoned")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub settings: Settings,
    /// The server's shared state: tests step workers with it (`Worker::tick`).
    pub state: updraft_server::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh store.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server on a fresh store, after `configure` adjusts its settings.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        Self::start_on(backend, configure, Arc::new(updraft_app::SystemClock)).await
    }

    /// Starts a server on a fresh store with a clock the test moves
    /// ([`ManualClock`], at 2026-06-01 12:00 UTC); background ticks are
    /// hourly, so the test steps the scheduler itself.
    pub async fn start_clocked(backend: Backend, configure: impl FnOnce(&mut Settings)) -> (Self, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new("2026-06-01T12:00:00Z".parse().expect("a timestamp")));
        let server = Self::start_on(
            backend,
            |s| {
                s.scheduler_tick_ms = 3_600_000;
                s.presence_flush_ms = 3_600_000;
                s.follower_poll_secs = 3_600;
                configure(s);
            },
            clock.clone(),
        )
        .await;
        (server, clock)
    }

    async fn start_on(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
        clock: Arc<dyn updraft_app::Clock>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut settings = Settings {
            data_dir: dir.path().to_path_buf(),
            bootstrap_token: Some(ADMIN_TOKEN.into()),
            ..Settings::default()
        };
        if backend == Backend::Postgres {
            settings.database_url = Some(updraft_store_postgres::testing::create_database().await);
        }
        configure(&mut settings);
        let mut server = Self::start_settings_clocked(settings, clock).await;
        server._dir = Some(dir);
        server
    }

    /// Another replica of this server: on the same database (and blob
    /// storage, when it is a bucket) with the same key-encryption key, but its
    /// own data directory, as replicas on separate machines.
    pub async fn replica(&self) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut settings = self.settings.clone();
        if settings.key_encryption_key.is_none() && settings.key_encryption_key_file.is_none() {
            let kek = std::fs::read_to_string(self.settings.data_dir.join("key-encryption.key")).expect("the key file");
            settings.key_encryption_key = Some(kek.trim().to_owned());
        }
        settings.data_dir = dir.path().to_path_buf();
        let mut server = Self::start_settings(settings).await;
        server._dir = Some(dir);
        server
    }

    /// `n` replicas on one fresh PostgreSQL database (see [`TestServer::replica`]).
    pub async fn replicas(n: usize, configure: impl FnOnce(&mut Settings)) -> Vec<Self> {
        let first = Self::start_with(Backend::Postgres, configure).await;
        let mut all = Vec::with_capacity(n);
        for _ in 1..n {
            all.push(first.replica().await);
        }
        all.insert(0, first);
        all
    }

    /// Starts a server with exactly these settings (to restart on the same data).
    pub async fn start_settings(settings: Settings) -> Self {
        Self::start_settings_clocked(settings, Arc::new(updraft_app::SystemClock)).await
    }

    /// [`TestServer::start_settings`] with the given clock.
    pub async fn start_settings_clocked(settings: Settings, clock: Arc<dyn updraft_app::Clock>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        let state = crate::backends::build(settings.clone(), clock).await.expect("server state");
        let serving = state.clone();
        let task = tokio::spawn(async move {
            updraft_server::serve(serving, listener, async move {
                let _ = rx.await;
            })
            .await
        });
        let server = TestServer { addr, settings, state, shutdown: Some(tx), task: Some(task), _dir: None };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && self.task.as_ref().is_some_and(|t| !t.is_finished())
            {
                // The listener accepts before the app is built; the health check proves the app is up.
                let mut stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
                let mut buf = Vec::new();
                let _ = stream.read_to_end(&mut buf).await;
                if buf.starts_with(b"HTTP/1.1 200") {
                    return;
                }
                // Over TLS the request is refused, but being closed at all means the accept
                // loop runs (the app was built before it started).
                if self.settings.tls() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the test server did not become ready");
    }

    /// Runs one scheduler tick now (releases, timeouts, retries, schedules).
    pub async fn tick_scheduler(&self) -> updraft_app::scheduler::TickReport {
        self.state.app.tick_scheduler().await.expect("scheduler tick")
    }

    /// `http://` or, when the server speaks TLS, `https://` this server's address and `path`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.settings.tls() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }

    /// Stops the server gracefully and waits until it has closed its store.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran cleanly");
        }
        self._dir.take()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
