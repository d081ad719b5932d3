//! A headless Chromium driven through WebDriver, for the dashboard's browser tests: each
//! [`Browser`] is a chromedriver of its own (on a port it picks), a Chromium with a fresh profile,
//! and a fantoccini client, so tests can run side by side; all of it ends when the `Browser` is
//! dropped. Pages are checked for accessibility with axe-core.
//!
//! Chromium, chromedriver and axe-core come from `UPDRAFT_CHROMIUM`, `UPDRAFT_CHROMEDRIVER` and
//! `UPDRAFT_AXE_JS`, which `scripts/test` sets (installing them when missing). A test that needs
//! one that is not there fails and says so: it never skips.

use std::fmt;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use fantoccini::elements::{Element, ElementRef};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long the `wait_for*`, label and button helpers wait before they fail.
pub const WAIT: Duration = Duration::from_secs(10);

/// How much of the page's HTML an error shows.
const HTML_SNIPPET: usize = 2000;

/// The key of an element in WebDriver's JSON (the W3C "web element identifier").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags: `--no-sandbox` because tests run as root on CI and Chromium refuses to
/// start as root with its sandbox; `--disable-dev-shm-usage` because containers' /dev/shm is small.
const CHROMIUM_ARGS: &[&str] =
    &["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"];

pub struct Browser {
    client: Client,
    wait: Duration,
    // Declared after the client: dropped after it.
    driver: Driver,
}

/// The chromedriver process, leader of a process group that holds the Chromium it starts.
struct Driver {
    child: Child,
    log: Arc<Mutex<String>>,
    // Removed once the browser is gone (fields drop after `Drop::drop`).
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: killing chromedriver alone would leave Chromium running.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// One rule that axe-core finds broken on a page.
#[derive(Debug, Clone)]
pub struct Violation {
    /// `critical`, `serious`, `moderate` or `minor`.
    pub impact: String,
    /// The rule, e.g. `image-alt`.
    pub id: String,
    pub help: String,
    pub help_url: String,
    /// A CSS selector of each element that breaks it (`a >> b` for one inside a frame or shadow root).
    pub targets: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {} (on {}; see {})",
            self.impact,
            self.id,
            self.help,
            self.targets.join(", "),
            self.help_url
        )
    }
}

/// The path an environment variable names, which must exist.
fn required_path(var: &str, what: &str) -> Result<PathBuf> {
    let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) else {
        bail!(
            "{var} is not set: the browser tests need {what}. Run them through scripts/test, which \
             installs it and sets {var}, or set {var} yourself"
        );
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        bail!("{var} names {}, which is not there: the browser tests need {what}", path.display());
    }
    Ok(path)
}

/// Reads a pipe of chromedriver's line by line into the log, and hands on the port it announces.
fn follow(pipe: impl Read + Send + 'static, log: Arc<Mutex<String>>, port: Option<mpsc::Sender<u16>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(tx) = &port {
                // "ChromeDriver was started successfully on port 38639."
                if let Some(rest) = line.split("started successfully on port ").nth(1)
                    && let Ok(p) = rest.trim_end_matches('.').trim().parse()
                {
                    let _ = tx.send(p);
                }
            }
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium through it.
    pub async fn start() -> Result<Browser> {
        let chromium = required_path("UPDRAFT_CHROMIUM", "Chromium (Debian: apt-get install chromium)")?;
        let chromedriver =
            required_path("UPDRAFT_CHROMEDRIVER", "chromedriver (Debian: apt-get install chromium-driver)")?;
        let profile = tempfile::Builder::new().prefix("updraft-chromium-").tempdir().context("a Chromium profile")?;

        // --port=0: chromedriver binds a free port itself and prints it, so no port can be taken
        // between choosing and binding it.
        let mut child = Command::new(&chromedriver)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        follow(child.stdout.take().expect("piped"), log.clone(), Some(tx));
        follow(child.stderr.take().expect("piped"), log.clone(), None);
        let mut driver = Driver { child, log, profile };

        let deadline = Instant::now() + WAIT;
        let port = loop {
            if let Ok(port) = rx.try_recv() {
                break port;
            }
            if let Some(status) = driver.child.try_wait()? {
                bail!("{} ended ({status}) before it listened; its output:\n{}", chromedriver.display(), driver.log());
            }
            if Instant::now() >= deadline {
                bail!("{} did not say its port within {WAIT:?}; its output:\n{}", chromedriver.display(), driver.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() >= deadline {
                bail!("chromedriver does not answer on port {port}; its output:\n{}", driver.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", driver.profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| {
                anyhow!(
                    "chromedriver could not start {} (headless): {e}; chromedriver's output:\n{}",
                    chromium.display(),
                    driver.log()
                )
            })?;
        Ok(Browser { client, wait: WAIT, driver })
    }

    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How long the waiting helpers wait (by default [`WAIT`]).
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Ends the WebDriver session, then chromedriver. Dropping the `Browser` ends both too,
    /// without asking.
    pub async fn close(self) -> Result<()> {
        let Browser { client, driver, .. } = self;
        client.close().await.context("ending the WebDriver session")?;
        drop(driver);
        Ok(())
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client.goto(url).await.with_context(|| format!("opening {url}"))
    }

    pub async fn current_url(&self) -> Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// The page's URL and the start of its HTML, for error messages.
    pub async fn page_context(&self) -> String {
        let url = match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("(no URL: {e})"),
        };
        match self.client.source().await {
            Ok(html) => {
                let total = html.chars().count();
                let snippet: String = html.chars().take(HTML_SNIPPET).collect();
                let cut = if total > HTML_SNIPPET {
                    format!(" (the first {HTML_SNIPPET} of {total} characters)")
                } else {
                    String::new()
                };
                format!("page {url}; its HTML{cut}:\n{snippet}")
            }
            Err(e) => format!("page {url}; its HTML could not be read: {e}"),
        }
    }

    /// The first element that matches a CSS selector, now.
    pub async fn find(&self, css: &str) -> Result<Element> {
        match self.find_all(css).await?.into_iter().next() {
            Some(e) => Ok(e),
            None => bail!("nothing matches `{css}` on the {}", self.page_context().await),
        }
    }

    /// Every element that matches a CSS selector, now.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        self.client.find_all(Locator::Css(css)).await.with_context(|| format!("finding `{css}`"))
    }

    /// Waits for an element that matches a CSS selector to be in the page.
    pub async fn wait_for(&self, css: &str) -> Result<Element> {
        self.poll(&format!("`{css}`"), || async { Ok(self.find_all(css).await?.into_iter().next()) }).await
    }

    /// Waits for the page's visible text to contain `text`.
    pub async fn wait_for_text(&self, text: &str) -> Result<()> {
        self.poll(&format!("the text {text:?}"), || async {
            let found = self
                .client
                .execute("return !!document.body && document.body.innerText.includes(arguments[0]);", vec![json!(text)])
                .await?;
            Ok((found == Value::Bool(true)).then_some(()))
        })
        .await
    }

    /// Waits for the form control whose `<label>` reads `label` (spaces collapsed), labelled with
    /// `for=` or by being inside the label.
    pub async fn find_by_label(&self, label: &str) -> Result<Element> {
        const JS: &str = r#"
            const want = arguments[0];
            const norm = s => s.replace(/\s+/g, ' ').trim();
            // The label's own text, without that of a control inside it (a select's options).
            const own = n => [...n.childNodes].map(c =>
                c.nodeType === Node.TEXT_NODE ? c.textContent :
                c.nodeType === Node.ELEMENT_NODE && !['SELECT', 'TEXTAREA', 'INPUT', 'BUTTON'].includes(c.tagName) ? own(c) : ''
            ).join('');
            const labels = [...document.querySelectorAll('label')];
            const hit = labels.find(l => norm(own(l)) === want && l.control);
            return hit ? {found: hit.control} : {seen: labels.map(l => norm(own(l)))};
        "#;
        self.find_by_script(JS, label, &format!("a control labelled {label:?}"), "labels").await
    }

    /// Types `value` into the control whose `<label>` reads `label`, after clearing it.
    pub async fn fill(&self, label: &str, value: &str) -> Result<()> {
        let input = self.find_by_label(label).await?;
        input.clear().await.with_context(|| format!("clearing the control labelled {label:?}"))?;
        input.send_keys(value).await.with_context(|| format!("typing into the control labelled {label:?}"))
    }

    /// Waits for the button whose visible text (or an input button's value) reads `text`.
    pub async fn find_button(&self, text: &str) -> Result<Element> {
        const JS: &str = r#"
            const want = arguments[0];
            const norm = s => (s || '').replace(/\s+/g, ' ').trim();
            const buttons = [...document.querySelectorAll(
                'button, input[type=submit], input[type=button], input[type=reset], [role=button]')];
            const text = b => norm(b.tagName === 'INPUT' ? b.value : b.innerText);
            const hit = buttons.find(b => text(b) === want);
            return hit ? {found: hit} : {seen: buttons.map(text)};
        "#;
        self.find_by_script(JS, text, &format!("a button reading {text:?}"), "buttons").await
    }

    /// Clicks the button whose visible text reads `text`.
    pub async fn click_button(&self, text: &str) -> Result<()> {
        let button = self.find_button(text).await?;
        button.click().await.with_context(|| format!("clicking the button {text:?}"))?;
        Ok(())
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self.client.screenshot().await.context("taking a screenshot")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Runs axe-core over the page (loading it into the page first) and returns what it finds broken.
    pub async fn axe(&self) -> Result<Vec<Violation>> {
        let loaded = self.client.execute("return typeof window.axe === 'object';", vec![]).await?;
        if loaded != Value::Bool(true) {
            let path = required_path("UPDRAFT_AXE_JS", "axe-core's axe.min.js (npm install axe-core)")?;
            let source = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            self.client.execute(&source, vec![]).await.context("loading axe-core into the page")?;
        }
        let out = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   axe.run(document, {resultTypes: ['violations']})
                     .then(r => done(JSON.stringify(r.violations)), e => done(JSON.stringify({error: String(e)})));"#,
                vec![],
            )
            .await
            .context("running axe-core")?;
        let out: Value = serde_json::from_str(out.as_str().unwrap_or("null")).context("axe-core's answer")?;
        if let Some(e) = out.get("error") {
            bail!("axe-core failed on the {}: {e}", self.page_context().await);
        }
        let Value::Array(raw) = out else { bail!("axe-core answered {out}, not a list of violations") };
        Ok(raw.iter().map(violation).collect())
    }

    /// Fails the test, listing them, when axe-core finds a critical violation on the page;
    /// prints the serious ones.
    pub async fn assert_no_critical_axe(&self, page_name: &str) {
        let violations = self.axe().await.unwrap_or_else(|e| panic!("axe-core could not check {page_name}: {e:#}"));
        for v in violations.iter().filter(|v| v.impact == "serious") {
            eprintln!("axe-core, {page_name}: {v}");
        }
        let critical: Vec<String> =
            violations.iter().filter(|v| v.impact == "critical").map(|v| format!("  {v}")).collect();
        assert!(
            critical.is_empty(),
            "axe-core finds {} critical accessibility violation(s) on {page_name}:\n{}",
            critical.len(),
            critical.join("\n")
        );
    }

    /// Finds an element through a script that returns `{found: element}` or `{seen: [texts]}`,
    /// waiting for it.
    async fn find_by_script(&self, js: &str, arg: &str, what: &str, seen_what: &str) -> Result<Element> {
        let seen = Mutex::new(Value::Null);
        self.poll_detail(
            what,
            || async {
                let mut out = self.client.execute(js, vec![json!(arg)]).await?;
                match out.get_mut("found").map(Value::take) {
                    Some(e) => Ok(Some(self.element(e)?)),
                    None => {
                        *seen.lock().unwrap() = out.get("seen").cloned().unwrap_or_default();
                        Ok(None)
                    }
                }
            },
            || format!("; the {seen_what} there: {}", seen.lock().unwrap()),
        )
        .await
    }

    fn element(&self, json: Value) -> Result<Element> {
        let id = json.get(ELEMENT_KEY).and_then(Value::as_str).ok_or_else(|| anyhow!("not an element: {json}"))?;
        Ok(Element::from_element_id(self.client.clone(), ElementRef::from(id.to_owned())))
    }

    /// Tries `attempt` until it finds something or the wait is over.
    async fn poll<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        self.poll_detail(what, attempt, String::new).await
    }

    /// [`poll`](Self::poll), and when it fails, `detail()` says more before the page's URL and HTML.
    async fn poll_detail<T, F, Fut>(&self, what: &str, mut attempt: F, detail: impl FnOnce() -> String) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + self.wait;
        loop {
            let error = match attempt().await {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => None,
                Err(e) => Some(e),
            };
            if Instant::now() >= deadline {
                let error = error.map(|e| format!(" (last error: {e:#})")).unwrap_or_default();
                bail!(
                    "waited {:?} for {what} in vain{error}{}, on the {}",
                    self.wait,
                    detail(),
                    self.page_context().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn violation(raw: &Value) -> Violation {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    // A node's target: one selector per frame down to it, each a list of selectors per shadow root.
    let part = |p: &Value| match p {
        Value::String(s) => s.clone(),
        Value::Array(inner) => inner.iter().map(|s| s.as_str().unwrap_or_default()).collect::<Vec<_>>().join(" >> "),
        other => other.to_string(),
    };
    let targets = raw
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|n| {
            let parts = n.get("target").and_then(Value::as_array).cloned().unwrap_or_default();
            parts.iter().map(part).collect::<Vec<_>>().join(" >> ")
        })
        .collect();
    Violation {
        impact: text(raw, "impact"),
        id: text(raw, "id"),
        help: text(raw, "help"),
        help_url: text(raw, "helpUrl"),
        targets,
    }
}
