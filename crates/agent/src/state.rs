//! The agent's memory across restarts: installed versions per component, whether configData
//! still has to be sent, and the action in progress with its phase.
//!
//! **Invariants:** the file is only ever replaced whole (write a temporary file beside it, fsync,
//! rename over, fsync the directory), so after a crash it holds either the previous or the new
//! state, never a torn one. The agent saves it at every phase change, before acting on the new
//! phase, so the phase on disk is never behind what the device may have done: a restart in
//! `downloading` resumes the download, in `installing` installs again (installers must be
//! idempotent), in `reporting` sends the outcome again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use updraft_ddi::DeploymentBase;

use crate::Error;

/// The state file's name inside the agent's state directory.
pub const STATE_FILE: &str = "agent-state.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    pub format: u32,
    /// Installed version per component (a chunk's `part`).
    #[serde(default)]
    pub installed: BTreeMap<String, String>,
    /// configData must be sent (after an install, or when the server asked).
    #[serde(default)]
    pub config_pending: bool,
    /// The action being worked on, if any.
    #[serde(default)]
    pub work: Option<Work>,
    /// The security version of the installed firmware (anti-rollback, with TUF).
    #[serde(default)]
    pub security_version: u64,
}

impl Default for AgentState {
    fn default() -> Self {
        AgentState { format: FORMAT, installed: BTreeMap::new(), config_pending: true, work: None, security_version: 0 }
    }
}

/// One deployment action being carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Work {
    pub action_id: String,
    /// The deployment as the server last described it.
    pub deployment: DeploymentBase,
    #[serde(flatten)]
    pub phase: Phase,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Fetching the artifacts into the state directory (partial files are resumed).
    Downloading,
    /// Everything downloaded and verified; the server says `update: skip` because the
    /// maintenance window is closed, so the agent waits for it to open.
    AwaitingWindow,
    /// The installer is (or was, when the agent died) running.
    Installing,
    /// The outcome is known and must be reported (`closed` with success or failure).
    Reporting {
        success: bool,
        details: Vec<String>,
        /// The failure's code (TUF verification refusals), reported as the feedback's `code`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
    },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Downloading => "downloading",
            Phase::AwaitingWindow => "awaiting_window",
            Phase::Installing => "installing",
            Phase::Reporting { .. } => "reporting",
        }
    }
}

impl AgentState {
    /// Reads the state file; `None` if there is none yet. A file that cannot be parsed (written
    /// by something else, or by a future format) is moved aside to `<file>.corrupt` and `None` is
    /// returned, so the device keeps working instead of stopping forever.
    pub fn load(path: &Path) -> Result<Option<AgentState>, Error> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::State { path: path.to_owned(), message: e.to_string() }),
        };
        match serde_json::from_slice::<AgentState>(&text) {
            Ok(state) if state.format == FORMAT => Ok(Some(state)),
            parsed => {
                let why = match parsed {
                    Ok(s) => format!("unknown format {}", s.format),
                    Err(e) => e.to_string(),
                };
                let aside = sibling(path, ".corrupt");
                std::fs::rename(path, &aside)
                    .map_err(|e| Error::State { path: path.to_owned(), message: e.to_string() })?;
                tracing::error!(path = %path.display(), moved_to = %aside.display(), error = %why, "unreadable state file moved aside; starting afresh");
                Ok(None)
            }
        }
    }

    /// Replaces the state file atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::State { path: path.to_owned(), message: e.to_string() })?;
        write_atomic(path, &bytes).map_err(|e| Error::State { path: path.to_owned(), message: e.to_string() })
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content:
/// write `.<name>.tmp` beside it, fsync it, rename it over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename in `dir` durable. Directories cannot be opened for fsync on every platform;
/// where they cannot, the rename is as durable as the platform makes it.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_bad_files_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        assert_eq!(AgentState::load(&path).unwrap(), None);
        let mut s = AgentState::default();
        s.installed.insert("host".into(), "1.0.0".into());
        s.save(&path).unwrap();
        assert_eq!(AgentState::load(&path).unwrap(), Some(s));
        assert!(!dir.path().join(".agent-state.json.tmp").exists());

        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(AgentState::load(&path).unwrap(), None);
        assert!(dir.path().join("agent-state.json.corrupt").exists());
        assert!(!path.exists());
    }

    #[test]
    fn phases_are_tagged() {
        let json =
            serde_json::to_value(Phase::Reporting { success: false, details: vec!["x".into()], code: None }).unwrap();
        assert_eq!(json, serde_json::json!({"phase": "reporting", "success": false, "details": ["x"]}));
    }
}
