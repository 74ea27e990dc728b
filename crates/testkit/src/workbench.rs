//! Helpers for the workbench tests: an application stored as a case the
//! way the daemon stores a rejected one, and a minimal HTTP client (cookies
//! and forms) for `allegro-bridge web`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allegro_core::finding::{Finding, Severity};
use allegro_core::pipeline::Pipeline;
use allegro_store::{cases, NewApplication, Store, Verdict};
use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::{bridge_exe, free_port, repo_root, TestEnv};

/// Stores `doc` (whose antragId is `id`) as the daemon stores a rejected
/// application of Dienststelle `dst`, with the pipeline's findings. A body
/// that passes gets one error as an older, stricter mapping set would have
/// found, so it is a case too.
pub async fn store_rejected(
    store: &Store,
    pipeline: &Pipeline,
    id: Uuid,
    doc: &Value,
    dst: &str,
    message_id: Option<String>,
) {
    let body = serde_json::to_vec(doc).unwrap();
    let processed = pipeline.process(&body, None);
    let mapping = processed
        .application()
        .map_or_else(|| "bg-ha-1.0".to_string(), |a| a.mapping.clone());
    let mut findings = processed.findings().to_vec();
    if !findings.iter().any(|f| f.is_error()) {
        findings.push(Finding {
            pointer: "/unterkunft/grundmiete".into(),
            severity: Severity::Error,
            rule: "ALTE-REGEL".into(),
            message: "Alte Regel.".into(),
            nachweis: None,
        });
    }
    let app = NewApplication {
        antrag_id: id,
        body_sha256: allegro_daemon::deadletter::sha256_hex(&body),
        body,
        verdict: Verdict::Rejected,
        mapping,
        findings_json: serde_json::to_string(&findings).unwrap(),
        dienststellennummer: Some(dst.into()),
        message_id,
        created_at: Utc::now(),
        applicant: applicant_of(pipeline, doc),
        error_rules: cases::error_rules_of(&findings),
        owed: processed
            .application()
            .map(|a| a.owed.clone())
            .unwrap_or_default(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&[app]).await.unwrap();
    tx.commit().await.unwrap();
}

/// Stores `doc` (whose antragId is `id`, valid under the mappings) as the
/// daemon stores an accepted application of Dienststelle `dst`: with its
/// record (pending for the outbox) and the documents it owes.
pub async fn store_accepted(store: &Store, pipeline: &Pipeline, id: Uuid, doc: &Value, dst: &str) {
    let body = serde_json::to_vec(doc).unwrap();
    let allegro_core::pipeline::Processed::Accepted {
        application,
        record,
    } = pipeline.process(&body, None)
    else {
        panic!("the application {id} is not accepted by the mappings");
    };
    let app = NewApplication {
        antrag_id: id,
        body_sha256: allegro_daemon::deadletter::sha256_hex(&body),
        body,
        verdict: Verdict::Accepted(record),
        mapping: application.mapping.clone(),
        findings_json: serde_json::to_string(&application.findings).unwrap(),
        dienststellennummer: Some(dst.into()),
        message_id: None,
        created_at: Utc::now(),
        applicant: None,
        error_rules: String::new(),
        owed: application.owed.clone(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&[app]).await.unwrap();
    tx.commit().await.unwrap();
}

/// The applicant's name as the mapping of `doc`'s form declares it.
pub fn applicant_of(pipeline: &Pipeline, doc: &serde_json::Value) -> Option<String> {
    let form = |k: &str| doc.pointer(&format!("/formular/{k}"))?.as_str();
    let m = pipeline.mappings().get(form("id")?, form("version")?)?;
    m.casework.applicant_of(doc).map(|n| n.into_string())
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body's bytes (a PDF is no text).
    pub raw: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The text of the page's `<title>`.
    pub fn title(&self) -> &str {
        let start = self.body.find("<title>").map_or(0, |i| i + 7);
        let end = self.body.find("</title>").unwrap_or(start);
        &self.body[start..end]
    }

    /// The value of the first `<input ... name="NAME" value="...">`.
    pub fn input(&self, name: &str) -> String {
        let at = self
            .body
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("no input {name} in:\n{}", self.body));
        let rest = &self.body[at + name.len() + 15..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// A browser, as far as the tests need one: cookies and forms.
pub struct Client {
    pub port: u16,
    pub cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client {
            port,
            cookies: BTreeMap::new(),
        }
    }

    /// One request on a fresh connection; `Set-Cookie` updates the jar.
    pub fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Answer {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("web listens");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(self.request(method, path, form).as_bytes())
            .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
        let (head, body) = match split {
            Some(at) => (&raw[..at], &raw[at + 4..]),
            None => (&raw[..], &[][..]),
        };
        let head = String::from_utf8_lossy(head).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.keep_cookies(&headers);
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        };
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            raw: body,
        }
    }

    fn request(&self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> String {
        let body = form
            .map(|f| serde_urlencoded::to_string(f).unwrap())
            .unwrap_or_default();
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if !cookie.is_empty() {
            req.push_str(&format!("Cookie: {}\r\n", cookie.join("; ")));
        }
        if form.is_some() {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        req
    }

    fn keep_cookies(&mut self, headers: &[(String, String)]) {
        for (k, v) in headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = v.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.into(), value.into());
                }
            }
        }
    }

    pub fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send("POST", path, Some(form))
    }

    /// Searches the case list as its form does: POST /faelle with the page's
    /// CSRF token and `fields` (`suche`, `alter`, ...); the answer, a 303
    /// to the list under an opaque search id when all is well.
    pub fn search_post(&mut self, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.get("/faelle").input("csrf");
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post("/faelle", &form)
    }

    /// [`Client::search_post`], then the list it redirects to.
    pub fn search(&mut self, fields: &[(&str, &str)]) -> Answer {
        let posted = self.search_post(fields);
        assert_eq!(posted.status, 303, "{}", posted.body);
        let to = posted.header("location").expect("a Location").to_string();
        self.get(&to)
    }

    /// GET /anmelden, then POST the form with its CSRF token.
    pub fn login(&mut self, name: &str, password: &str) -> Answer {
        let csrf = self.get("/anmelden").input("csrf");
        self.post(
            "/anmelden",
            &[
                ("csrf", &csrf),
                ("benutzername", name),
                ("passwort", password),
            ],
        )
    }
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]).trim().to_string();
        let n = usize::from_str_radix(&size, 16).unwrap_or(0);
        let data = &rest[eol + 2..];
        if n == 0 || data.len() < n {
            break;
        }
        out.extend_from_slice(&data[..n]);
        rest = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
}

/// `allegro-bridge web` on a free port, with the test's store.
pub struct Web {
    child: Child,
    pub port: u16,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `allegro-bridge` in the test's folder and world, with the web assets.
pub fn bridge(env: &TestEnv) -> Command {
    let mut c = Command::new(bridge_exe());
    c.current_dir(env.dir.path())
        .env_remove("ALLEGRO_BRIDGE_CONFIG")
        .envs(env.envs())
        .env(
            "ALLEGRO_BRIDGE__WEB__ASSETS_DIR",
            repo_root().join("crates/web/assets"),
        );
    c
}

/// Starts `allegro-bridge web` on a free port and waits until it listens;
/// its log goes to `web-PORT.log` in the test folder.
pub fn start_web(env: &TestEnv) -> Web {
    start_web_on(env, free_port())
}

/// [`start_web`] on `port` (a test that must name the workbench's address
/// before it starts, e.g. to a provider it redirects to).
pub fn start_web_on(env: &TestEnv, port: u16) -> Web {
    let log = std::fs::File::create(env.dir.path().join(format!("web-{port}.log"))).unwrap();
    let child = bridge(env)
        .args(["web", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let web = Web { child, port };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "web did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    web
}

/// `allegro-bridge user add NAME ARGS` with the password on stdin.
pub fn add_user(env: &TestEnv, name: &str, password: &str, args: &[&str]) {
    let out = bridge_with_stdin(
        env,
        &[&["user", "add", name], args].concat(),
        &format!("{password}\n"),
    );
    assert!(
        out.status.success(),
        "user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `allegro-bridge ARGS` (see [`bridge`]) to completion with `stdin`
/// as its standard input.
pub fn bridge_with_stdin(env: &TestEnv, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = bridge(env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    write!(child.stdin.take().unwrap(), "{stdin}").unwrap();
    child.wait_with_output().unwrap()
}
