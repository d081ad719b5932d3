//! The crate's one error type. Each variant says whether retrying later can help
//! ([`Error::is_transient`]), which is what the agent uses to decide between keeping its work
//! for the next poll and reporting a failure to the server.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The agent or simulator was configured with something unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The request never got an HTTP answer (connection refused, reset, timed out).
    #[error("request to {url} failed: {message}")]
    Transport { url: String, message: String },
    /// The server answered with a status the call does not accept.
    #[error("{url} answered {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status { url: String, status: u16, body: String },
    /// The server answered, but not in a form this client can use.
    #[error("{url}: {message}")]
    Protocol { url: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The state file cannot be read or written.
    #[error("state file {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    /// An artifact failed verification or cannot be fetched at all (no link, wrong size, wrong
    /// hash): retrying will not help, the deployment fails.
    #[error("{0}")]
    Artifact(String),
    /// `run_once` kept finding work after this many cycles.
    #[error("the server still had work after {0} cycles")]
    Busy(u32),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub(crate) fn transport(url: &str, e: &reqwest::Error) -> Self {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Error::Transport { url: url.to_owned(), message }
    }

    /// The HTTP status, when the server answered with one this client did not accept.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The action is no longer active for this device (410 Gone, or 404 for an action that is
    /// not or no longer this device's): feedback about it is pointless.
    pub fn is_gone(&self) -> bool {
        matches!(self.status(), Some(404 | 410))
    }

    /// Whether the same call may succeed later: network trouble, server errors, throttling, a
    /// broken body, local I/O. Client errors (4xx but 408 and 429), configuration and artifact
    /// verification problems are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Protocol { .. } | Error::Io { .. } | Error::State { .. } => true,
            Error::Status { status, .. } => !(400..500).contains(status) || matches!(status, 408 | 429),
            Error::Config(_) | Error::Artifact(_) | Error::Busy(_) => false,
        }
    }
}
