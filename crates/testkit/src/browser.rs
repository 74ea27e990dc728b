//! Headless Chromium for the browser tests: Debian's `chromedriver` on a free
//! port, WebDriver sessions through fantoccini (plain HTTP to the local
//! driver, so no TLS library), and the checks the workbench tests share:
//! axe-core's WCAG 2.1 A/AA rules ([`axe`]), screenshots ([`screenshot`]) and
//! small element helpers.
//!
//! Chromium, chromedriver and axe-core are installed by
//! `scripts/setup-browser.sh` (run by `scripts/test.sh`); nothing is
//! downloaded here. Without them the tests fail with that hint rather than
//! skip.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::ClientBuilder;
/// The WebDriver client the tests use (re-exported so tests need no own dependency).
pub use fantoccini::{self, Client, Locator};
use serde::Deserialize;
use serde_json::{json, Value};

/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The window every session opens with (CSS pixels).
pub const WINDOW: (u32, u32) = (1280, 900);
/// The axe-core rule tags the workbench must pass (BITV 2.0 = WCAG 2.1 AA).
pub const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

const SETUP_HINT: &str = "run `bash scripts/setup-browser.sh` (installs chromium, \
     chromium-driver and axe-core; scripts/test.sh does it)";

/// A running chromedriver (its own process group, so Chromium goes with it
/// when it is dropped) and the folder holding the browsers' profiles.
pub struct Chromedriver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    sessions: AtomicUsize,
    /// Ids of the sessions opened, ended on drop so that chromedriver
    /// stops (and reaps) their browsers itself.
    session_ids: std::sync::Mutex<Vec<String>>,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port and waits until it
    /// answers. Panics with an install hint when it is missing.
    pub async fn start() -> Chromedriver {
        for p in [CHROMEDRIVER, CHROMIUM] {
            assert!(Path::new(p).is_file(), "{p} is missing: {SETUP_HINT}");
        }
        let mut last_log = String::new();
        // The free port may be taken between choosing and binding: retry.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = crate::free_port();
            let log = dir.path().join("chromedriver.log");
            let mut driver = Chromedriver {
                child: spawn_driver(port, &log),
                port,
                dir,
                sessions: AtomicUsize::new(0),
                session_ids: Default::default(),
            };
            if driver.wait_ready(Duration::from_secs(20)).await {
                return driver;
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("chromedriver did not come up; its log:\n{last_log}");
    }

    /// The WebDriver URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if driver_ready(self.port).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// A new browser session: its own Chromium with its own profile (so its
    /// own cookies), headless, German first.
    pub async fn session(&self) -> Client {
        let n = self.sessions.fetch_add(1, Ordering::SeqCst);
        let profile = self.dir.path().join(format!("profile-{n}"));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": chromium_args(&profile),
                "prefs": {"intl.accept_languages": "de-DE,de"},
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"));
        if let Ok(Some(id)) = client.session_id().await {
            self.session_ids.lock().unwrap().push(id);
        }
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(0)),
            ))
            .await
            .unwrap();
        client
    }

    /// The process group of chromedriver and its browsers.
    pub fn process_group(&self) -> i32 {
        self.child.id() as i32
    }

    fn kill(&mut self) {
        // SAFETY: signals the process group we created for this driver
        // (process_group(0) below): chromedriver and the browsers it started.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        for id in std::mem::take(&mut *self.session_ids.lock().unwrap()) {
            end_session(self.port, &id);
        }
        self.kill();
    }
}

/// Whether chromedriver answers `GET /status` with `ready: true` (it
/// rejects any Host but a local one, and keeps the connection open: the
/// answer is read up to its Content-Length).
async fn driver_ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let req =
            format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        loop {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if text.contains("\"ready\":true") || text.contains("\"ready\": true") {
                return Some(true);
            }
        }
        Some(false)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

/// `DELETE /session/ID` (blocking, at most a few seconds): chromedriver
/// quits that browser.
fn end_session(port: u16, id: &str) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_ok() {
        // The answer comes once the browser is gone.
        let _ = s.read(&mut [0u8; 1024]);
    }
}

fn spawn_driver(port: u16, log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}; {SETUP_HINT}"))
}

fn chromium_args(profile: &Path) -> Vec<String> {
    let (w, h) = WINDOW;
    let mut args: Vec<String> = [
        "--headless=new",
        // Tests run as root in CI, where Chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--lang=de-DE",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-crash-reporter",
        "--disable-breakpad",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--window-size={w},{h}"));
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// One axe-core rule a page breaks, with the elements that break it.
#[derive(Debug, Clone, Deserialize)]
pub struct Violation {
    pub id: String,
    pub impact: Option<String>,
    pub help: String,
    #[serde(rename = "helpUrl")]
    pub help_url: String,
    pub nodes: Vec<ViolationNode>,
}

/// An element breaking a rule: its CSS path, its HTML and why.
#[derive(Debug, Clone, Deserialize)]
pub struct ViolationNode {
    pub target: Vec<Value>,
    pub html: String,
    #[serde(rename = "failureSummary", default)]
    pub failure_summary: Option<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "[{}] {} ({}; {})",
            self.impact.as_deref().unwrap_or("?"),
            self.id,
            self.help,
            self.help_url
        )?;
        for n in &self.nodes {
            let target: Vec<String> = n
                .target
                .iter()
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_string))
                .collect();
            writeln!(
                f,
                "    at {}: {}",
                target.join(" > "),
                shorten(&n.html, 300)
            )?;
            if let Some(s) = &n.failure_summary {
                for line in s.lines() {
                    writeln!(f, "      {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// `s` cut to at most `max` characters (an ellipsis marks the cut).
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// All violations as one readable block (empty when there are none).
pub fn report(violations: &[Violation]) -> String {
    violations.iter().map(|v| v.to_string()).collect()
}

/// The installed axe-core (tests/browser/node_modules, from `npm ci`).
pub fn axe_source_path() -> PathBuf {
    crate::repo_root().join("tests/browser/node_modules/axe-core/axe.min.js")
}

/// Runs axe-core's WCAG 2.1 A/AA rules ([`AXE_TAGS`]) on the page the
/// client shows; returns the violations and prints them (to stderr) when
/// there are any. axe is injected through WebDriver, which a page's
/// Content-Security-Policy does not restrict.
pub async fn axe(client: &Client) -> Vec<Violation> {
    let path = axe_source_path();
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; {SETUP_HINT}", path.display()));
    let loaded = client
        .execute(
            &format!("{source}\n;return typeof window.axe === 'object';"),
            vec![],
        )
        .await
        .expect("inject axe-core");
    assert_eq!(loaded, Value::Bool(true), "axe-core did not load");
    let script = r#"
        const [tags, done] = arguments;
        axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
            .then(r => done(JSON.stringify({ok: r.violations, rules: r.passes.length + r.violations.length + r.incomplete.length})))
            .catch(e => done(JSON.stringify({err: String(e)})));
    "#;
    let out = client
        .execute_async(script, vec![json!(AXE_TAGS)])
        .await
        .expect("run axe-core");
    let out: Value = serde_json::from_str(out.as_str().expect("axe result is a string")).unwrap();
    if let Some(e) = out.get("err") {
        panic!("axe-core failed: {e}");
    }
    assert!(
        out["rules"].as_u64().unwrap_or(0) > 0,
        "axe-core applied no rule at all: {out}"
    );
    let violations: Vec<Violation> = serde_json::from_value(out["ok"].clone()).unwrap();
    if !violations.is_empty() {
        let url = client.current_url().await.map(|u| u.to_string());
        eprintln!(
            "axe-core: {} violation(s) on {}:\n{}",
            violations.len(),
            url.unwrap_or_default(),
            report(&violations)
        );
    }
    violations
}

/// The narrow width every page is also checked at (WCAG 1.4.10 Reflow:
/// 320 CSS pixels).
pub const NARROW: u32 = 320;

/// Fails the test with the readable report when axe finds anything on the
/// page the client shows, at the normal width and at [`NARROW`]; `page`
/// names it in the message.
pub async fn assert_accessible(client: &Client, page: &str) {
    let (w, h) = WINDOW;
    for width in [w, NARROW] {
        client.set_window_size(width, h).await.unwrap();
        let inner = client
            .execute("return window.innerWidth;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64());
        assert!(
            inner.is_some_and(|i| i <= u64::from(width)),
            "the window did not narrow to {width} px (inner width {inner:?})"
        );
        let v = axe(client).await;
        assert!(
            v.is_empty(),
            "axe-core: {} WCAG 2.1 A/AA violation(s) on the {page} page at {width} px \
             (inner width {inner:?}):\n{}",
            v.len(),
            report(&v)
        );
    }
    client.set_window_size(w, h).await.unwrap();
}

/// Writes a PNG of the whole page (at most 4000 pixels high).
pub async fn screenshot(client: &Client, path: &Path) {
    screenshot_top(client, path, 4000).await;
}

/// Writes a PNG of the top of the page, at most `max_height` pixels high:
/// the window is stretched to the page's height for the shot, then restored.
pub async fn screenshot_top(client: &Client, path: &Path, max_height: u32) {
    let height = client
        .execute(
            "return Math.ceil(document.documentElement.scrollHeight);",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(WINDOW.1 as u64) as u32;
    let (w, h) = WINDOW;
    client
        .set_window_size(w, height.clamp(h, max_height.max(h)))
        .await
        .unwrap();
    client
        .execute(
            "window.scrollTo({top: 0, behavior: 'instant'}); return true;",
            vec![],
        )
        .await
        .unwrap();
    let png = client.screenshot().await.expect("take a screenshot");
    client.set_window_size(w, h).await.unwrap();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The first element matching `css`, waiting up to 20 s for it (tests run
/// in parallel on small machines).
pub async fn find(client: &Client, css: &str) -> fantoccini::elements::Element {
    match client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!("no element `{css}` on {}: {e}", page_url(client).await),
    }
}

/// Replaces the value of the input matching `css` with `value`.
pub async fn fill(client: &Client, css: &str, value: &str) {
    let e = find(client, css).await;
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Clicks the element matching `css`.
pub async fn click(client: &Client, css: &str) {
    let e = find(client, css).await;
    press(client, &e, css).await;
}

/// Scrolls `e` to the middle of the window at once, then clicks it as a
/// user would. (KERN sets `scroll-behavior: smooth`, under which the
/// driver's own scrolling is still under way when it clicks, and the click
/// lands elsewhere: "element click intercepted".)
async fn press(client: &Client, e: &fantoccini::elements::Element, css: &str) {
    let arg = serde_json::to_value(e).unwrap();
    client
        .execute(
            "arguments[0].scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'}); return true;",
            vec![arg],
        )
        .await
        .unwrap();
    if let Err(err) = e.click().await {
        panic!("cannot click `{css}` on {}: {err}", page_url(client).await);
    }
}

/// The visible text of the element matching `css`.
pub async fn text(client: &Client, css: &str) -> String {
    find(client, css).await.text().await.unwrap()
}

/// Clicks the element matching `css` and waits until the page it leads to
/// has loaded (a new document, fully loaded), up to 30 s.
pub async fn click_and_load(client: &Client, css: &str) {
    let e = find(client, css).await;
    client
        .execute("window.__allegroOldPage = true; return true;", vec![])
        .await
        .unwrap();
    press(client, &e, css).await;
    wait_for_new_page(client, css).await;
}

/// Waits until the document marked before a navigation was replaced.
async fn wait_for_new_page(client: &Client, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let fresh = client
            .execute(
                "return window.__allegroOldPage === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await;
        if matches!(fresh, Ok(Value::Bool(true))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no new page after clicking `{what}` on {}",
        page_url(client).await
    );
}

/// Whether an element matches `css` now (no waiting).
pub async fn exists(client: &Client, css: &str) -> bool {
    !client
        .find_all(Locator::Css(css))
        .await
        .unwrap_or_default()
        .is_empty()
}

/// The current URL, for messages.
pub async fn page_url(client: &Client) -> String {
    client
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default()
}
