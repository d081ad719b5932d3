//! A small DDI client for one controller: `{server}/{tenant}/controller/v1/{controllerId}` and
//! the links the server hands out under it.
//!
//! **Invariants:** every request carries the controller's `Authorization` header
//! (`TargetToken …` or `GatewayToken …`); API calls have a total timeout and downloads a
//! per-read timeout (set on the shared `reqwest::Client`), so nothing waits forever; JSON bodies
//! are read with a size cap; links must be `http`/`https` URLs; path segments built here are
//! percent-encoded. Feedback URLs are built from the action id (as rauc and SWUpdate do), while
//! GETs follow the hrefs the server gave, which carry its `?c=` etag.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_RANGE, HeaderValue, RANGE};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use updraft_ddi::{
    ActionFeedback, Cancel, ConfigData, ConfigMode, ConfirmationBaseAction, ConfirmationFeedback, ControllerBase,
    DeploymentBase, Execution, Finished, ResultStatus, Status,
};

use crate::Error;

/// The largest JSON answer read from a server.
const MAX_JSON_BYTES: usize = 4 << 20;
/// How much of an error answer is kept for the message.
const MAX_ERROR_BODY: usize = 300;
/// hawkBit's limit on messages per action status.
const MAX_DETAILS: usize = 50;
const MAX_DETAIL_CHARS: usize = 1000;

/// How a device authenticates on the DDI API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The device's own token: `Authorization: TargetToken <token>`.
    TargetToken(String),
    /// The tenant's gateway token, valid for any controller id: `Authorization: GatewayToken <token>`.
    GatewayToken(String),
    /// No `Authorization` header: the client certificate of [`HttpSettings::client_cert_file`]
    /// (its CN the controller id) authenticates the device.
    ClientCertificate,
}

impl Auth {
    fn header(&self) -> Result<Option<HeaderValue>, Error> {
        let text = match self {
            Auth::TargetToken(t) => format!("TargetToken {t}"),
            Auth::GatewayToken(t) => format!("GatewayToken {t}"),
            Auth::ClientCertificate => return Ok(None),
        };
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| Error::Config("the token holds characters a header cannot".into()))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }
}

/// Timeouts and pooling of the HTTP client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// The whole of one API call (poll, feedback, configData), body included.
    pub request_timeout: Duration,
    /// The longest wait for the next bytes of any answer; bounds stalled downloads.
    pub read_timeout: Duration,
    pub max_idle_per_host: usize,
    /// Trust only the CA certificates in this PEM file for `https` servers, instead of the
    /// system's (a fleet's own CA).
    pub ca_file: Option<PathBuf>,
    /// Present this PEM certificate (chain) to `https` servers, with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            max_idle_per_host: 32,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

/// A `reqwest::Client` with these settings, to be shared by every [`DdiClient`] of a process.
pub fn http_client(settings: &HttpSettings) -> Result<reqwest::Client, Error> {
    install_tls_provider();
    let read =
        |path: &PathBuf| std::fs::read(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())));
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("updraft-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .pool_max_idle_per_host(settings.max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(path) = &settings.ca_file {
        let cas = reqwest::Certificate::from_pem_bundle(&read(path)?)
            .map_err(|e| Error::Config(format!("{}: not PEM certificates: {e}", path.display())))?;
        if cas.is_empty() {
            return Err(Error::Config(format!("{}: no certificate in it", path.display())));
        }
        builder = builder.tls_certs_only(cas);
    }
    match (&settings.client_cert_file, &settings.client_key_file) {
        (Some(cert), Some(key)) => {
            let mut pem = read(key)?;
            pem.push(b'\n');
            pem.extend(read(cert)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                Error::Config(format!("{} and {}: not a certificate and key: {e}", cert.display(), key.display()))
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => return Err(Error::Config("a client certificate needs its key, and a key its certificate".into())),
    }
    builder.build().map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}

/// One controller's view of the DDI API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DdiClient {
    http: reqwest::Client,
    base: Url,
    auth: Option<HeaderValue>,
    request_timeout: Duration,
}

/// An artifact answer whose body is read chunk by chunk.
#[derive(Debug)]
pub struct ArtifactBody {
    response: Response,
    url: String,
    /// The offset of the body's first byte in the artifact: 0 for a full answer, the requested
    /// offset for a `206`.
    pub start: u64,
    /// The artifact's full length, when the server said.
    pub total: Option<u64>,
}

impl ArtifactBody {
    /// The next bytes of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.response.chunk().await.map_err(|e| Error::transport(&self.url, &e))
    }
}

impl DdiClient {
    /// A client for `{server}/{tenant}/controller/v1/{controller_id}`.
    pub fn new(
        http: reqwest::Client,
        server: &str,
        tenant: &str,
        controller_id: &str,
        auth: &Auth,
    ) -> Result<Self, Error> {
        let mut base = parse_http_url(server).map_err(|m| Error::Config(format!("server {server:?}: {m}")))?;
        if tenant.is_empty() || controller_id.is_empty() {
            return Err(Error::Config("the tenant and the controller id must not be empty".into()));
        }
        base.set_query(None);
        base.set_fragment(None);
        base.path_segments_mut()
            .map_err(|_| Error::Config(format!("server {server:?} cannot be a base URL")))?
            .pop_if_empty()
            .extend([tenant, "controller", "v1", controller_id]);
        Ok(DdiClient { http, base, auth: auth.header()?, request_timeout: HttpSettings::default().request_timeout })
    }

    /// The HTTP client it uses.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The `Authorization` value it sends (none with a client certificate).
    pub fn auth(&self) -> Option<&HeaderValue> {
        self.auth.as_ref()
    }

    /// Sets the total timeout of each API call (not of downloads).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The controller's root URL, the one [`DdiClient::poll`] reads.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url
    }

    /// A link from the server, absolute or relative to the controller root.
    fn resolve(&self, href: &str) -> Result<Url, Error> {
        let url = self
            .base
            .join(href)
            .map_err(|e| Error::Protocol { url: href.to_owned(), message: format!("not a usable link: {e}") })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Protocol { url: href.to_owned(), message: "links must be http or https".into() });
        }
        Ok(url)
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url).timeout(self.request_timeout);
        match &self.auth {
            Some(auth) => request.header(AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, Error> {
        let shown = url.to_string();
        let r = self.request(Method::GET, url).header(ACCEPT, "application/json").send().await;
        let r = check(r, &shown).await?;
        let body = read_limited(r, &shown, MAX_JSON_BYTES).await?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol { url: shown, message: format!("unexpected JSON: {e}") })
    }

    async fn send_json<T: Serialize>(&self, method: Method, url: Url, body: &T) -> Result<(), Error> {
        let shown = url.to_string();
        let r = self.request(method, url).json(body).send().await;
        let r = check(r, &shown).await?;
        // Drain the (normally empty) body so the connection goes back to the pool.
        read_limited(r, &shown, MAX_JSON_BYTES).await?;
        Ok(())
    }

    /// `GET` the controller root: the polling interval and what the server wants done.
    pub async fn poll(&self) -> Result<ControllerBase, Error> {
        self.get_json(self.base.clone()).await
    }

    /// `GET deploymentBase/{id}` through the link the poll gave.
    pub async fn deployment(&self, href: &str) -> Result<DeploymentBase, Error> {
        self.get_json(self.resolve(href)?).await
    }

    /// `GET cancelAction/{id}` through the link the poll gave.
    pub async fn cancel(&self, href: &str) -> Result<Cancel, Error> {
        self.get_json(self.resolve(href)?).await
    }

    /// `GET confirmationBase/{id}` through the link the poll gave.
    pub async fn confirmation(&self, href: &str) -> Result<ConfirmationBaseAction, Error> {
        self.get_json(self.resolve(href)?).await
    }

    /// `POST deploymentBase/{action_id}/feedback`. A closed action answers 410
    /// ([`Error::is_gone`]).
    pub async fn deployment_feedback(&self, action_id: &str, feedback: &ActionFeedback) -> Result<(), Error> {
        self.send_json(Method::POST, self.endpoint(&["deploymentBase", action_id, "feedback"]), feedback).await
    }

    /// `POST cancelAction/{action_id}/feedback`; `closed` + `success` accepts the cancellation.
    pub async fn cancel_feedback(&self, action_id: &str, feedback: &ActionFeedback) -> Result<(), Error> {
        self.send_json(Method::POST, self.endpoint(&["cancelAction", action_id, "feedback"]), feedback).await
    }

    /// `POST confirmationBase/{action_id}/feedback`.
    pub async fn confirmation_feedback(&self, action_id: &str, feedback: &ConfirmationFeedback) -> Result<(), Error> {
        self.send_json(Method::POST, self.endpoint(&["confirmationBase", action_id, "feedback"]), feedback).await
    }

    /// `PUT configData` with `mode: merge`.
    pub async fn put_config_data(&self, data: std::collections::BTreeMap<String, String>) -> Result<(), Error> {
        let body = ConfigData { mode: Some(ConfigMode::Merge), data };
        self.send_json(Method::PUT, self.endpoint(&["configData"]), &body).await
    }

    /// Starts downloading an artifact from `from` (a `Range` request when `from > 0`). A `206`
    /// must start exactly at `from`; a `200` means the server sent the whole artifact
    /// ([`ArtifactBody::start`] is then 0). Anything else is an error; `416` keeps its status so
    /// the caller can start over.
    pub async fn artifact(&self, href: &str, from: u64) -> Result<ArtifactBody, Error> {
        let url = self.resolve(href)?;
        let shown = url.to_string();
        let mut req = self.http.get(url).header(ACCEPT, "application/octet-stream");
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if from > 0 {
            req = req.header(RANGE, format!("bytes={from}-"));
        }
        let response = req.send().await.map_err(|e| Error::transport(&shown, &e))?;
        match response.status().as_u16() {
            200 => {
                let total = response.content_length();
                Ok(ArtifactBody { response, url: shown, start: 0, total })
            }
            206 => {
                let range = response.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok());
                let Some((start, total)) = range.and_then(parse_content_range) else {
                    return Err(Error::Protocol { url: shown, message: "206 without a usable Content-Range".into() });
                };
                if start != from {
                    return Err(Error::Protocol {
                        url: shown,
                        message: format!("asked for bytes from {from}, got them from {start}"),
                    });
                }
                Ok(ArtifactBody { response, url: shown, start, total })
            }
            _ => Err(status_error(response, &shown).await),
        }
    }
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    Ok(url)
}

async fn check(r: reqwest::Result<Response>, url: &str) -> Result<Response, Error> {
    let r = r.map_err(|e| Error::transport(url, &e))?;
    if r.status().is_success() { Ok(r) } else { Err(status_error(r, url).await) }
}

/// The status with the start of the body (the server's error message), on one line.
pub(crate) async fn status_error(r: Response, url: &str) -> Error {
    let status = r.status().as_u16();
    let body = read_limited(r, url, 16 * 1024).await.unwrap_or_default();
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_BODY)
        .collect();
    Error::Status { url: url.to_owned(), status, body: text.trim().to_owned() }
}

/// Reads a whole body, refusing one over `limit` bytes.
pub(crate) async fn read_limited(mut r: Response, url: &str, limit: usize) -> Result<Vec<u8>, Error> {
    let too_large = || Error::Protocol { url: url.to_owned(), message: format!("the answer exceeds {limit} bytes") };
    if r.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| Error::transport(url, &e))? {
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// `bytes 100-199/1000` → `(100, Some(1000))`; `bytes 100-199/*` → `(100, None)`.
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end) = (start.trim().parse::<u64>().ok()?, end.trim().parse::<u64>().ok()?);
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    Some((start, total))
}

/// Builds an action feedback stamped with the current time. Details are made safe for hawkBit
/// (no markup, at most 50 of at most 1000 characters each).
pub fn feedback(execution: Execution, finished: Finished, details: Vec<String>) -> ActionFeedback {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok());
    let details = details
        .into_iter()
        .take(MAX_DETAILS)
        .map(|d| {
            d.chars()
                .map(|c| match c {
                    '<' => '(',
                    '>' => ')',
                    c if c.is_control() => ' ',
                    c => c,
                })
                .take(MAX_DETAIL_CHARS)
                .collect()
        })
        .collect();
    ActionFeedback {
        timestamp,
        status: Status { execution, result: ResultStatus { finished, progress: None }, code: None, details },
    }
}

/// The action id at the end of a `deploymentBase/{id}?c=…`, `cancelAction/{id}` or
/// `confirmationBase/{id}` link.
pub fn action_id_from_href(href: &str) -> Option<String> {
    let last = match Url::parse(href) {
        Ok(url) => url.path_segments()?.rfind(|s| !s.is_empty())?.to_owned(),
        Err(_) => href.split(['?', '#']).next()?.rsplit('/').find(|s| !s.is_empty())?.to_owned(),
    };
    Some(last)
}

/// Makes ring the process's TLS crypto provider (the build has no other unless a test pulls
/// one in); a provider installed already stays.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_that_do_not_load_are_configuration_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let with = |settings: HttpSettings| match http_client(&settings) {
            Err(Error::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        };
        let missing = with(HttpSettings { ca_file: Some(dir.path().join("absent.pem")), ..Default::default() });
        assert!(missing.contains("absent.pem"), "{missing}");
        let empty = with(HttpSettings { ca_file: Some(junk.clone()), ..Default::default() });
        assert!(empty.contains("no certificate"), "{empty}");
        let half = with(HttpSettings { client_cert_file: Some(junk), ..Default::default() });
        assert!(half.contains("needs its key"), "{half}");
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, Some(1000))));
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("bytes 5-1/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn action_ids_come_from_links() {
        assert_eq!(action_id_from_href("http://h/t/controller/v1/d/deploymentBase/17?c=-5").as_deref(), Some("17"));
        assert_eq!(action_id_from_href("http://h/t/controller/v1/d/cancelAction/3").as_deref(), Some("3"));
        assert_eq!(action_id_from_href("http://h/"), None);
    }

    #[test]
    fn urls_are_built_per_controller() {
        let http = http_client(&HttpSettings::default()).unwrap();
        let c =
            DdiClient::new(http.clone(), "http://h:8080/", "default", "dev 1", &Auth::TargetToken("t".into())).unwrap();
        assert_eq!(c.base_url(), "http://h:8080/default/controller/v1/dev%201");
        assert_eq!(
            c.endpoint(&["deploymentBase", "5", "feedback"]).as_str(),
            "http://h:8080/default/controller/v1/dev%201/deploymentBase/5/feedback"
        );
        assert!(c.resolve("file:///etc/passwd").is_err());
        assert!(DdiClient::new(http.clone(), "ftp://h", "t", "d", &Auth::TargetToken("t".into())).is_err());
        assert!(DdiClient::new(http, "http://h", "t", "d", &Auth::GatewayToken("a\nb".into())).is_err());
    }

    #[test]
    fn details_are_made_safe() {
        let f = feedback(Execution::Closed, Finished::Failure, vec!["<b>bad</b>\nline".into()]);
        assert_eq!(f.status.details, vec!["(b)bad(/b) line".to_owned()]);
        assert!(f.timestamp.is_some());
    }
}
