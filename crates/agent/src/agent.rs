//! One real device: poll, download, verify, install, report.
//!
//! A cycle polls the controller root and does what it says: accept a cancellation
//! (`closed`+`success`, dropping the work), confirm an action awaiting confirmation (when
//! `auto_confirm`), or carry out the deployment: `proceeding` → artifacts downloaded into the
//! state directory (resuming partial files with `Range`, no faster than `download_rate_limit`
//! when set) → size and SHA-256 verified → `downloaded` → installer → `closed` with `success`
//! or `failure` → configData with the installed versions (`fw.<part>` = chunk `version`).
//!
//! **Invariants:**
//! - Nothing is installed unless its size and SHA-256 match what the server announced; a
//!   mismatching file is deleted and the action is reported failed with a detail saying why.
//! - The state file is saved at every phase change before the new phase starts, so after a
//!   crash the agent resumes downloads, re-runs an interrupted install (saying so in a
//!   `proceeding` detail) or re-sends an outcome; installed versions are saved together with
//!   the `reporting` phase, so they are never lost nor reported early.
//! - The server's poll is the truth about what to do: work for an action the server no longer
//!   lists (or that answers 410) is dropped, and its files with it.
//! - Transient trouble (network, 5xx, disk) keeps the work for the next cycle; permanent
//!   trouble (bad artifact, 4xx on a download) fails the action.
//!
//! Layout of the state directory: `agent-state.json` ([`AgentState`]) and
//! `downloads/<action>/<chunk>-<artifact>-<file name>` (`.part` while incomplete); file names
//! from the server are reduced to `[A-Za-z0-9._-]` before they touch the disk.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use updraft_ddi::{
    Artifact, Confirmation, ConfirmationFeedback, DeploymentBase, Execution, Finished, HandlingType, MaintenanceWindow,
};

use crate::client::{DdiClient, HttpSettings, action_id_from_href, feedback, http_client};
use crate::install::{Installer, Item};
use crate::state::{AgentState, Phase, STATE_FILE, Work};
use crate::throttle::{PIECE, RateLimiter};
use crate::{Auth, Error, firmware_key};

/// hawkBit's default polling interval, used when the server's cannot be read.
const DEFAULT_SLEEP: Duration = Duration::from_secs(300);
/// The longest pause between cycles after errors.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(300);

/// What one agent needs to know.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    pub tenant: String,
    pub controller_id: String,
    pub auth: Auth,
    /// Holds the state file and the downloads.
    pub state_dir: PathBuf,
    pub installer: Installer,
    /// Installed versions per component when the state file does not know them yet (first start).
    pub firmware: BTreeMap<String, String>,
    /// Other configData attributes sent with the versions (e.g. `hardware_version`).
    pub attributes: BTreeMap<String, String>,
    /// Poll this often instead of the server's `config.polling.sleep` (tests, demos).
    pub poll_interval: Option<Duration>,
    /// How many times a broken download is resumed within one cycle before the cycle gives up
    /// (the work is kept and resumed on the next cycle).
    pub download_retries: u32,
    /// The first pause between download retries; it doubles up to 30 s.
    pub retry_backoff: Duration,
    /// The most artifact bytes per second the agent downloads (for metered or shared links);
    /// `None` downloads as fast as the link allows.
    pub download_rate_limit: Option<u64>,
    pub install_timeout: Duration,
    /// Confirm actions that wait for the device's confirmation.
    pub auto_confirm: bool,
    pub http: HttpSettings,
    /// [`Agent::run_once`] gives up after this many busy cycles.
    pub max_once_cycles: u32,
    /// Verify every file through the product's TUF repository before installing it.
    pub trust: Option<crate::tuf::TrustConfig>,
}

impl AgentConfig {
    /// A configuration with defaults for everything else: no initial versions, the server's
    /// polling interval, 5 download retries from 1 s, no download rate limit, a one-hour install
    /// timeout, auto-confirm.
    pub fn new(
        server: impl Into<String>,
        tenant: impl Into<String>,
        controller_id: impl Into<String>,
        auth: Auth,
        state_dir: impl Into<PathBuf>,
        installer: Installer,
    ) -> Self {
        AgentConfig {
            server: server.into(),
            tenant: tenant.into(),
            controller_id: controller_id.into(),
            auth,
            state_dir: state_dir.into(),
            installer,
            firmware: BTreeMap::new(),
            attributes: BTreeMap::new(),
            poll_interval: None,
            download_retries: 5,
            retry_backoff: Duration::from_secs(1),
            download_rate_limit: None,
            install_timeout: Duration::from_secs(3600),
            auto_confirm: true,
            http: HttpSettings::default(),
            max_once_cycles: 64,
            trust: None,
        }
    }
}

/// What a cycle found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// Nothing to do until the next poll (no action, or waiting for a maintenance window).
    Idle,
    /// Something was done; poll again soon, the server may have more.
    Busy,
}

/// One device. See the module documentation for what it does.
pub struct Agent {
    config: AgentConfig,
    client: DdiClient,
    state: AgentState,
    state_path: PathBuf,
    downloads: PathBuf,
    /// The work loaded from the state file at start, until the agent has acted on it again.
    recovered: bool,
    server_sleep: Option<Duration>,
}

impl Agent {
    /// Opens (or creates) the state directory and loads the state. Versions in the state file win
    /// over `config.firmware`, which only fills in components the state does not know.
    pub async fn new(config: AgentConfig) -> Result<Agent, Error> {
        config.installer.validate().map_err(Error::Config)?;
        if config.download_rate_limit == Some(0) {
            return Err(Error::Config("the download rate limit must be at least 1 byte per second".into()));
        }
        let http = http_client(&config.http)?;
        let client = DdiClient::new(http, &config.server, &config.tenant, &config.controller_id, &config.auth)?
            .with_request_timeout(config.http.request_timeout);
        let downloads = config.state_dir.join("downloads");
        tokio::fs::create_dir_all(&downloads)
            .await
            .map_err(|e| Error::io(format!("creating {}", downloads.display()), e))?;
        let state_path = config.state_dir.join(STATE_FILE);
        let path = state_path.clone();
        let loaded = tokio::task::spawn_blocking(move || AgentState::load(&path))
            .await
            .map_err(|e| Error::State { path: state_path.clone(), message: e.to_string() })??;
        let mut state = loaded.unwrap_or_default();
        for (component, version) in &config.firmware {
            state.installed.entry(component.clone()).or_insert_with(|| version.clone());
        }
        // Every start reports the installed versions: the server may have lost or never had them.
        state.config_pending = true;
        let recovered = state.work.is_some();
        let agent = Agent { config, client, state, state_path, downloads, recovered, server_sleep: None };
        agent.save().await?;
        agent.remove_orphan_downloads().await;
        match &agent.state.work {
            Some(w) => tracing::info!(
                controller = %agent.config.controller_id,
                action = %w.action_id,
                phase = w.phase.name(),
                "agent started with unfinished work"
            ),
            None => {
                tracing::info!(controller = %agent.config.controller_id, installed = ?agent.state.installed, "agent started")
            }
        }
        Ok(agent)
    }

    /// The state as last saved.
    pub fn state(&self) -> &AgentState {
        &self.state
    }

    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// Installed version per component.
    pub fn installed(&self) -> &BTreeMap<String, String> {
        &self.state.installed
    }

    /// How long to wait before the next poll: the override, else the server's interval.
    pub fn poll_delay(&self) -> Duration {
        self.config.poll_interval.or(self.server_sleep).unwrap_or(DEFAULT_SLEEP)
    }

    /// Polls and works until the server has nothing more for this device right now.
    pub async fn run_once(&mut self) -> Result<(), Error> {
        for _ in 0..self.config.max_once_cycles {
            if self.cycle().await? == Cycle::Idle {
                return Ok(());
            }
        }
        Err(Error::Busy(self.config.max_once_cycles))
    }

    /// Polls and works until `shutdown` completes. Errors are logged and retried with backoff;
    /// stopping in the middle of anything is safe (the state file says where to resume).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        self.run_woken(shutdown, None).await
    }

    /// [`Agent::run`], also polling at once whenever `wake` says so (an MQTT
    /// `notify-next`: the server pushed work, see [`crate::mqtt`]).
    pub async fn run_woken(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut wake: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
    ) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_secs(1);
        loop {
            let delay = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = self.cycle() => match r {
                    Ok(Cycle::Idle) => {
                        backoff = Duration::from_secs(1);
                        self.poll_delay()
                    }
                    // Poll again soon, but never spin if the server keeps answering the same.
                    Ok(Cycle::Busy) => {
                        backoff = Duration::from_secs(1);
                        self.poll_delay().min(Duration::from_secs(1))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cycle failed");
                        let d = backoff.min(self.poll_delay());
                        backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                        d
                    }
                }
            };
            let woken = async {
                match wake.as_mut() {
                    Some(w) => {
                        if w.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
                _ = woken => tracing::debug!("woken by the server's push"),
            }
        }
    }

    /// One poll and the work it asks for.
    pub async fn cycle(&mut self) -> Result<Cycle, Error> {
        let root = self.client.poll().await?;
        let sleep = updraft_ddi::parse_sleep(&root.config.polling.sleep).map(Duration::from_secs);
        if sleep.is_none() {
            tracing::warn!(sleep = %root.config.polling.sleep, "unreadable polling interval; using 5 minutes");
        }
        self.server_sleep = sleep;
        let links = root.links;
        if links.config_data.is_some() {
            self.state.config_pending = true;
        }
        // With an outcome still to report, the new versions go out after it, not before.
        if !matches!(self.state.work, Some(Work { phase: Phase::Reporting { .. }, .. })) {
            self.send_config_if_pending().await;
        }
        if let Some(link) = links.cancel_action {
            self.handle_cancel(&link.href).await?;
            return Ok(Cycle::Busy);
        }
        if let Some(link) = links.confirmation_base {
            if !self.config.auto_confirm {
                tracing::info!("an action waits for confirmation; auto-confirm is off");
                return Ok(Cycle::Idle);
            }
            self.confirm(&link.href).await?;
            return Ok(Cycle::Busy);
        }
        if let Some(link) = links.deployment_base {
            return self.handle_deployment(&link.href).await;
        }
        if let Some(work) = &self.state.work {
            let action = work.action_id.clone();
            if let Phase::Reporting { success, details, code } = work.phase.clone() {
                // The outcome may have reached the server before the agent died; sending it again is harmless.
                let mut fb = feedback(Execution::Closed, finished(success), details);
                fb.status.code = code;
                if let Err(e) = self.client.deployment_feedback(&action, &fb).await {
                    tracing::info!(action = %action, error = %e, "late outcome not accepted");
                }
            } else {
                tracing::warn!(action = %action, phase = work.phase.name(), "the server no longer lists the action; dropping it");
            }
            self.drop_work().await?;
            return Ok(Cycle::Busy);
        }
        Ok(Cycle::Idle)
    }

    async fn handle_cancel(&mut self, href: &str) -> Result<(), Error> {
        let cancel = self.client.cancel(href).await?;
        let stop_id = cancel.cancel_action.stop_id;
        if let Some(work) = &self.state.work
            && (work.action_id == stop_id || work.action_id == cancel.id)
        {
            tracing::info!(action = %work.action_id, phase = work.phase.name(), "cancellation accepted; dropping the work");
            self.drop_work().await?;
        }
        let fb = feedback(Execution::Closed, Finished::Success, vec!["cancellation accepted by the device".into()]);
        match self.client.cancel_feedback(&stop_id, &fb).await {
            Ok(()) => tracing::info!(action = %stop_id, "cancellation acknowledged"),
            Err(e) if e.is_gone() || e.status() == Some(405) => {
                tracing::info!(action = %stop_id, error = %e, "the cancellation is no longer pending")
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn confirm(&mut self, href: &str) -> Result<(), Error> {
        let action = self.client.confirmation(href).await?;
        let fb = ConfirmationFeedback {
            confirmation: Confirmation::Confirmed,
            code: None,
            details: vec!["confirmed automatically by the agent".into()],
        };
        match self.client.confirmation_feedback(&action.id, &fb).await {
            Ok(()) => tracing::info!(action = %action.id, "action confirmed"),
            Err(e) if e.is_gone() => tracing::info!(action = %action.id, "the action no longer waits for confirmation"),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn handle_deployment(&mut self, href: &str) -> Result<Cycle, Error> {
        let href_id = action_id_from_href(href);
        let known = match (&self.state.work, &href_id) {
            (Some(w), Some(id)) if &w.action_id == id => Some(w.phase.clone()),
            _ => None,
        };
        // A known action's artifacts do not change; only a closed maintenance window needs a fresh look.
        if matches!(known, None | Some(Phase::AwaitingWindow)) {
            let deployment = self.client.deployment(href).await?;
            if deployment.id.is_empty() {
                return Err(Error::Protocol { url: href.to_owned(), message: "the deployment has no id".into() });
            }
            match &mut self.state.work {
                Some(w) if w.action_id == deployment.id => w.deployment = deployment,
                _ => self.start(deployment).await?,
            }
        }
        self.process().await
    }

    async fn start(&mut self, deployment: DeploymentBase) -> Result<(), Error> {
        if let Some(old) = &self.state.work {
            tracing::warn!(old = %old.action_id, new = %deployment.id, "the server moved on to another action; abandoning the old one");
            self.drop_work().await?;
        }
        let chunks: Vec<String> =
            deployment.deployment.chunks.iter().map(|c| format!("{} {}", c.part, c.version)).collect();
        tracing::info!(action = %deployment.id, chunks = ?chunks, "deployment received");
        self.state.work = Some(Work { action_id: deployment.id.clone(), deployment, phase: Phase::Downloading });
        self.recovered = false;
        self.save().await?;
        self.progress(Execution::Proceeding, vec![format!("deployment received: {}", chunks.join(", "))]).await?;
        Ok(())
    }

    /// Carries the current work forward as far as it can go in this cycle.
    async fn process(&mut self) -> Result<Cycle, Error> {
        let mut restarted = std::mem::take(&mut self.recovered);
        loop {
            let Some(work) = &self.state.work else { return Ok(Cycle::Busy) };
            let action = work.action_id.clone();
            let update = work.deployment.deployment.update;
            let window = work.deployment.deployment.maintenance_window;
            match work.phase.clone() {
                Phase::Downloading => {
                    if restarted
                        && !self
                            .progress(
                                Execution::Proceeding,
                                vec!["agent restarted during download; resuming it".into()],
                            )
                            .await?
                    {
                        return Ok(Cycle::Busy);
                    }
                    let count = match self.download_all().await {
                        Ok(n) => n,
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => {
                            tracing::warn!(action = %action, error = %e, "download failed");
                            self.remove_downloads(&action).await;
                            self.set_phase(Phase::Reporting {
                                success: false,
                                details: vec![e.to_string()],
                                code: None,
                            })
                            .await?;
                            restarted = false;
                            continue;
                        }
                    };
                    if update == HandlingType::Skip && window != Some(MaintenanceWindow::Unavailable) {
                        // A download-only action: `downloaded` closes it on the server; nothing is installed.
                        let fb = feedback(
                            Execution::Downloaded,
                            Finished::Success,
                            vec![format!("{count} artifacts downloaded and verified (download only)")],
                        );
                        match self.client.deployment_feedback(&action, &fb).await {
                            Ok(()) => tracing::info!(action = %action, "download-only action done"),
                            Err(e) if e.is_gone() => tracing::info!(action = %action, "the action was already closed"),
                            Err(e) => return Err(e),
                        }
                        self.drop_work().await?;
                        return Ok(Cycle::Busy);
                    }
                    let detail = format!("{count} artifacts downloaded and verified");
                    if !self.progress(Execution::Downloaded, vec![detail]).await? {
                        return Ok(Cycle::Busy);
                    }
                    if update == HandlingType::Skip {
                        tracing::info!(action = %action, "downloaded; waiting for the maintenance window");
                        self.set_phase(Phase::AwaitingWindow).await?;
                        return Ok(Cycle::Idle);
                    }
                    self.set_phase(Phase::Installing).await?;
                }
                Phase::AwaitingWindow => {
                    if update == HandlingType::Skip {
                        return Ok(Cycle::Idle);
                    }
                    tracing::info!(action = %action, "maintenance window open");
                    self.set_phase(Phase::Installing).await?;
                }
                Phase::Installing => {
                    if restarted
                        && !self
                            .progress(
                                Execution::Proceeding,
                                vec!["agent restarted during install; running the installer again".into()],
                            )
                            .await?
                    {
                        return Ok(Cycle::Busy);
                    }
                    if !self.verify_all().await? {
                        tracing::warn!(action = %action, "downloaded files missing or damaged; downloading again");
                        self.set_phase(Phase::Downloading).await?;
                        restarted = false;
                        continue;
                    }
                    let security = match self.verify_trust().await {
                        Ok(security) => security,
                        Err(refusal) => {
                            tracing::warn!(action = %action, code = refusal.code, reason = %refusal, "refused by tuf verification; the installed version is kept");
                            self.remove_downloads(&action).await;
                            let kept: Vec<String> =
                                self.state.installed.iter().map(|(c, v)| format!("{c} {v}")).collect();
                            let kept = if kept.is_empty() { "what was installed".to_owned() } else { kept.join(", ") };
                            let details = vec![
                                format!("{}: {}", refusal.name, refusal.message),
                                format!("not installed; kept {kept}"),
                            ];
                            self.set_phase(Phase::Reporting { success: false, details, code: Some(refusal.code) })
                                .await?;
                            restarted = false;
                            continue;
                        }
                    };
                    let (success, details) = self.install_all().await;
                    if success && let Some(work) = &self.state.work {
                        for chunk in &work.deployment.deployment.chunks {
                            self.state.installed.insert(chunk.part.clone(), chunk.version.clone());
                        }
                        if let Some(security) = security {
                            self.state.security_version = self.state.security_version.max(security);
                        }
                    }
                    self.state.config_pending = true;
                    self.set_phase(Phase::Reporting { success, details, code: None }).await?;
                }
                Phase::Reporting { success, details, code } => {
                    let mut fb = feedback(Execution::Closed, finished(success), details);
                    fb.status.code = code;
                    match self.client.deployment_feedback(&action, &fb).await {
                        Ok(()) => tracing::info!(action = %action, success, "outcome reported"),
                        Err(e) if e.is_gone() => tracing::info!(action = %action, "the action was already closed"),
                        Err(e) => return Err(e),
                    }
                    self.drop_work().await?;
                    self.send_config_if_pending().await;
                    return Ok(Cycle::Busy);
                }
            }
            restarted = false;
        }
    }

    /// Sends feedback that does not end the action. `Ok(false)` when the server says the action
    /// is gone (the work is then dropped); other failures are only logged.
    async fn progress(&mut self, execution: Execution, details: Vec<String>) -> Result<bool, Error> {
        let Some(work) = &self.state.work else { return Ok(false) };
        let action = work.action_id.clone();
        match self.client.deployment_feedback(&action, &feedback(execution, Finished::None, details)).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_gone() => {
                tracing::info!(action = %action, "the server closed the action; dropping it");
                self.drop_work().await?;
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(action = %action, error = %e, "feedback not delivered");
                Ok(true)
            }
        }
    }

    fn artifacts(&self) -> Vec<(PathBuf, Artifact, String, String)> {
        let Some(work) = &self.state.work else { return Vec::new() };
        let dir = self.downloads.join(safe_name(&work.action_id));
        let mut out = Vec::new();
        for (ci, chunk) in work.deployment.deployment.chunks.iter().enumerate() {
            for (ai, artifact) in chunk.artifacts.iter().enumerate() {
                let path = dir.join(format!("{ci}-{ai}-{}", safe_name(&artifact.filename)));
                out.push((path, artifact.clone(), chunk.part.clone(), chunk.version.clone()));
            }
        }
        out
    }

    async fn download_all(&mut self) -> Result<usize, Error> {
        let artifacts = self.artifacts();
        // One bucket for every artifact and retry of this cycle: the limit is the link's.
        let mut limiter = self.config.download_rate_limit.map(RateLimiter::new);
        for (path, artifact, _, _) in &artifacts {
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            }
            self.fetch_artifact(artifact, path, limiter.as_mut()).await.map_err(|e| match e {
                Error::Artifact(m) => Error::Artifact(format!("artifact {}: {m}", artifact.filename)),
                e => e,
            })?;
        }
        Ok(artifacts.len())
    }

    /// Downloads one artifact to `dest` through `dest.part`, resuming what is there, retrying
    /// broken transfers, and verifying size and SHA-256 before the file gets its final name.
    async fn fetch_artifact(
        &self,
        artifact: &Artifact,
        dest: &Path,
        mut limiter: Option<&mut RateLimiter>,
    ) -> Result<(), Error> {
        let expected = expected_sha256(artifact)?;
        if tokio::fs::try_exists(dest).await.unwrap_or(false) {
            if matches_file(dest, artifact.size, &expected).await? {
                return Ok(());
            }
            remove_file(dest).await;
        }
        // As rauc-hawkbit-updater and SWUpdate: the https link when there is one.
        let href = artifact
            .links
            .download
            .as_ref()
            .or(artifact.links.download_http.as_ref())
            .map(|l| l.href.clone())
            .ok_or_else(|| Error::Artifact("no download link".into()))?;
        let part = with_suffix(dest, ".part");
        let mut attempt = 0;
        loop {
            match self.fetch_once(&href, &part, artifact.size, limiter.as_deref_mut()).await {
                Ok(()) => break,
                Err(e) if e.is_transient() && attempt < self.config.download_retries => {
                    let pause = (self.config.retry_backoff * 2u32.saturating_pow(attempt)).min(Duration::from_secs(30));
                    attempt += 1;
                    tracing::warn!(file = %artifact.filename, attempt, error = %e, "download interrupted; resuming");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    if !e.is_transient() {
                        remove_file(&part).await;
                    }
                    return Err(e);
                }
            }
        }
        let (size, actual) = hash_file(&part).await?;
        if size != artifact.size {
            remove_file(&part).await;
            return Err(Error::Artifact(format!(
                "size mismatch: expected {} bytes, got {size}; the file was deleted",
                artifact.size
            )));
        }
        if actual != expected {
            remove_file(&part).await;
            return Err(Error::Artifact(format!(
                "sha256 mismatch: expected {expected}, got {actual}; the file was deleted and not installed"
            )));
        }
        tokio::fs::rename(&part, dest).await.map_err(|e| Error::io(format!("renaming {}", part.display()), e))?;
        if let Some(dir) = dest.parent() {
            let _ = crate::state::sync_dir(dir);
        }
        tracing::info!(file = %artifact.filename, size, "artifact downloaded and verified");
        Ok(())
    }

    /// One request: continues `part` from its current length up to `size` bytes, no faster than
    /// `limiter` allows.
    async fn fetch_once(
        &self,
        href: &str,
        part: &Path,
        size: u64,
        mut limiter: Option<&mut RateLimiter>,
    ) -> Result<(), Error> {
        let io = |what: &str, e| Error::io(format!("{what} {}", part.display()), e);
        let mut have = tokio::fs::metadata(part).await.map(|m| m.len()).unwrap_or(0);
        if have > size {
            have = 0;
        }
        if have == size {
            // Complete already (or empty): the hash check decides.
            if size == 0 {
                tokio::fs::write(part, b"").await.map_err(|e| io("writing", e))?;
            }
            return Ok(());
        }
        let mut body = match self.client.artifact(href, have).await {
            Ok(b) => b,
            Err(e) if have > 0 && (e.status() == Some(416) || matches!(e, Error::Protocol { .. })) => {
                tracing::warn!(error = %e, "the server cannot resume; downloading from the start");
                have = 0;
                self.client.artifact(href, 0).await?
            }
            Err(e) => return Err(e),
        };
        if have > 0 {
            tracing::info!(from = have, of = size, "resuming download");
        }
        if body.start == 0 {
            have = 0;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(part)
            .await
            .map_err(|e| io("opening", e))?;
        file.set_len(have).await.map_err(|e| io("truncating", e))?;
        file.seek(std::io::SeekFrom::Start(have)).await.map_err(|e| io("seeking in", e))?;
        let mut written = have;
        let result = loop {
            match body.chunk().await {
                Ok(Some(bytes)) => {
                    if written + bytes.len() as u64 > size {
                        break Err(Error::Artifact(format!(
                            "the server sent more than the announced {size} bytes; the file was deleted"
                        )));
                    }
                    // Throttled, a read is written and paced in pieces so the file grows smoothly.
                    let piece_len = if limiter.is_some() { PIECE } else { bytes.len().max(1) };
                    let mut wrote = Ok(());
                    for piece in bytes.chunks(piece_len) {
                        wrote = file.write_all(piece).await;
                        if wrote.is_err() {
                            break;
                        }
                        written += piece.len() as u64;
                        if let Some(l) = limiter.as_deref_mut() {
                            l.take(piece.len()).await;
                        }
                    }
                    if let Err(e) = wrote {
                        break Err(io("writing", e));
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        // Keep what arrived, even after an error: it is where the next attempt resumes.
        let synced = async {
            file.flush().await?;
            file.sync_data().await
        }
        .await;
        result?;
        synced.map_err(|e| io("syncing", e))?;
        if written < size {
            return Err(Error::Protocol {
                url: href.to_owned(),
                message: format!("the download ended after {written} of {size} bytes"),
            });
        }
        Ok(())
    }

    /// Whether every downloaded file is still there and intact.
    async fn verify_all(&self) -> Result<bool, Error> {
        for (path, artifact, _, _) in self.artifacts() {
            let Ok(expected) = expected_sha256(&artifact) else { return Ok(false) };
            if !tokio::fs::try_exists(&path).await.unwrap_or(false)
                || !matches_file(&path, artifact.size, &expected).await?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// With a pinned root: checks every downloaded file against the
    /// product's TUF repository; the highest security version among them.
    async fn verify_trust(&self) -> Result<Option<u64>, crate::tuf::Refusal> {
        let Some(trust) = &self.config.trust else { return Ok(None) };
        let artifacts = self.artifacts();
        let files: Vec<crate::tuf::Candidate<'_>> = artifacts
            .iter()
            .map(|(path, artifact, component, version)| crate::tuf::Candidate {
                file: path,
                filename: &artifact.filename,
                component,
                version,
            })
            .collect();
        let security = crate::tuf::verify(
            trust,
            self.client.http().clone(),
            self.client.auth().cloned(),
            self.config.state_dir.join("tuf"),
            &files,
            self.state.security_version,
        )
        .await?;
        Ok(Some(security))
    }

    async fn install_all(&self) -> (bool, Vec<String>) {
        let Some(work) = &self.state.work else { return (false, vec!["no work".into()]) };
        for (path, artifact, component, version) in self.artifacts() {
            let filename = safe_name(&artifact.filename);
            let item = Item {
                file: &path,
                filename: &filename,
                component: &component,
                version: &version,
                action_id: &work.action_id,
            };
            tracing::info!(action = %work.action_id, file = %filename, component = %component, version = %version, "installing");
            if let Err(reason) = self.config.installer.install(item, self.config.install_timeout).await {
                tracing::warn!(action = %work.action_id, file = %filename, reason = %reason, "install failed");
                return (false, vec![format!("installing {filename} ({component} {version}) failed: {reason}")]);
            }
        }
        let done: Vec<String> =
            work.deployment.deployment.chunks.iter().map(|c| format!("{} {}", c.part, c.version)).collect();
        (true, vec![format!("installed {}", done.join(", "))])
    }

    async fn send_config_if_pending(&mut self) {
        if !self.state.config_pending {
            return;
        }
        let mut data = self.config.attributes.clone();
        for (component, version) in &self.state.installed {
            data.insert(firmware_key(component), version.clone());
        }
        if !data.is_empty() {
            if let Err(e) = self.client.put_config_data(data).await {
                tracing::warn!(error = %e, "configData not delivered; will retry");
                return;
            }
            tracing::info!(installed = ?self.state.installed, "configData sent");
        }
        self.state.config_pending = false;
        if let Err(e) = self.save().await {
            tracing::warn!(error = %e, "state not saved");
        }
    }

    async fn set_phase(&mut self, phase: Phase) -> Result<(), Error> {
        if let Some(work) = &mut self.state.work {
            tracing::info!(action = %work.action_id, from = work.phase.name(), to = phase.name(), "phase changed");
            work.phase = phase;
        }
        self.save().await
    }

    /// Forgets the current work (state first, then its files: a crash in between leaves only
    /// orphan files, which the next start removes).
    async fn drop_work(&mut self) -> Result<(), Error> {
        self.recovered = false;
        if let Some(work) = self.state.work.take() {
            self.save().await?;
            self.remove_downloads(&work.action_id).await;
        }
        Ok(())
    }

    async fn remove_downloads(&self, action_id: &str) {
        let dir = self.downloads.join(safe_name(action_id));
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove downloads");
        }
    }

    async fn remove_orphan_downloads(&self) {
        let keep = self.state.work.as_ref().map(|w| safe_name(&w.action_id));
        let Ok(mut entries) = tokio::fs::read_dir(&self.downloads).await else { return };
        while let Ok(Some(entry)) = entries.next_entry().await {
            if keep.as_deref() != entry.file_name().to_str() {
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }

    async fn save(&self) -> Result<(), Error> {
        let state = self.state.clone();
        let path = self.state_path.clone();
        tokio::task::spawn_blocking(move || state.save(&path))
            .await
            .map_err(|e| Error::State { path: self.state_path.clone(), message: e.to_string() })?
    }
}

fn finished(success: bool) -> Finished {
    if success { Finished::Success } else { Finished::Failure }
}

fn expected_sha256(artifact: &Artifact) -> Result<String, Error> {
    let sha = artifact.hashes.sha256.trim().to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Artifact(format!("artifact {}: the server gave no valid sha256", artifact.filename)));
    }
    Ok(sha)
}

async fn matches_file(path: &Path, size: u64, sha256: &str) -> Result<bool, Error> {
    let (len, actual) = hash_file(path).await?;
    Ok(len == size && actual == sha256)
}

/// The length and SHA-256 (lowercase hex) of a file, read in blocks off the async threads.
async fn hash_file(path: &Path) -> Result<(u64, String), Error> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
        use std::io::Read;
        let mut file = std::fs::File::open(&owned)?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            len += n as u64;
        }
        Ok((len, hex::encode(hash.finalize())))
    })
    .await
    .map_err(|e| Error::io(format!("hashing {}", path.display()), std::io::Error::other(e)))?
    .map_err(|e| Error::io(format!("hashing {}", path.display()), e))
}

async fn remove_file(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "cannot remove file");
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// A file name made of `[A-Za-z0-9._-]` only, never `.` or `..`, at most 100 characters: server
/// input never reaches the file system unfiltered.
pub(crate) fn safe_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(100)
        .collect();
    match name.as_str() {
        "" | "." | ".." => format!("_{name}"),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe() {
        assert_eq!(safe_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_name(".."), "_..");
        assert_eq!(safe_name("fw-1.2.bin"), "fw-1.2.bin");
        assert_eq!(safe_name(""), "_");
    }
}
