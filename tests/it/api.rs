//! The check API for the online form (`allegro-bridge api`, docs/api.md),
//! over real HTTP against the binary: the same answers as `process --json`
//! for every fixture and contract example (and, in process, for generated
//! applications), partial checks, the applicant's language, bearer tokens,
//! CORS, the rate limit, the body limit, content types, the timeout, the
//! clients file commands, the metrics, the daemon's `[api] listen`, and the
//! OpenAPI document checked by an independent validator
//! (`openapi-spec-validator`, scripts/setup-openapi-validator.sh).

use allegro_testkit as support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use support::{bridge_exe, free_port, http_get, repo_root};

use allegro_core::pipeline::{Outcome, Pipeline, PipelineConfig};

/// `allegro-bridge api` running on a free port with one client, `portal`.
pub(crate) struct Api {
    child: Child,
    pub(crate) port: u16,
    pub(crate) metrics_port: u16,
    /// The token of `portal`.
    token: String,
    /// Every client's token by name.
    tokens: HashMap<String, String>,
    dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Api {
    /// Starts the API with `extra` appended to the `[api]` section (it may
    /// open further sections).
    pub(crate) async fn start(extra: &str) -> Api {
        Api::start_with_clients(extra, &["portal"]).await
    }

    /// The same with these clients (`portal` may call from https://antrag.example).
    async fn start_with_clients(extra: &str, names: &[&str]) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let (port, metrics_port) = (free_port(), free_port());
        let root = repo_root();
        let config = dir.path().join("allegro-bridge.toml");
        std::fs::write(
            &config,
            format!(
                "[pipeline]\nmappings_dir = \"{r}/mappings\"\nschemas_dir = \"{r}/schemas\"\n\
                 [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
                 [api]\nlisten = \"127.0.0.1:{port}\"\nclients_file = \"{d}/clients.toml\"\n{extra}\n",
                r = root.display(),
                d = dir.path().display(),
            ),
        )
        .unwrap();
        let tokens: HashMap<String, String> = names
            .iter()
            .map(|n| {
                let origins: &[&str] = if *n == "portal" {
                    &["https://antrag.example"]
                } else {
                    &[]
                };
                (n.to_string(), add_client(&config, n, origins))
            })
            .collect();
        let token = tokens.get("portal").cloned().unwrap_or_default();
        let log = std::fs::File::create(dir.path().join("api.log")).unwrap();
        let child = Command::new(bridge_exe())
            .args(["--config", config.to_str().unwrap(), "api"])
            .env_remove("ALLEGRO_BRIDGE_CONFIG")
            // Every crate at its most verbose (no_personal_data.rs reads it).
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let api = Api {
            child,
            port,
            metrics_port,
            token,
            tokens,
            dir,
        };
        wait_ready(port).await;
        api
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("allegro-bridge.toml")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("api.log")).unwrap()
    }

    /// `POST /api/v1/pruefung[?query]` with the client's token and JSON.
    pub(crate) async fn check(&self, query: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
        self.check_as("portal", query, body, headers).await
    }

    /// The same as another client.
    async fn check_as(
        &self,
        client: &str,
        query: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Resp {
        let auth = format!("Bearer {}", self.tokens[client]);
        let mut h = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        h.extend_from_slice(headers);
        let path = format!("/api/v1/pruefung{query}");
        request(self.port, "POST", &path, &h, body).await
    }
}

/// Runs `api-client add` and returns the token it printed.
fn add_client(config: &Path, name: &str, origins: &[&str]) -> String {
    let mut cmd = Command::new(bridge_exe());
    cmd.args([
        "--config",
        config.to_str().unwrap(),
        "api-client",
        "add",
        name,
    ]);
    for o in origins {
        cmd.args(["--origin", o]);
    }
    let out = cmd.env_remove("ALLEGRO_BRIDGE_CONFIG").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("abr_") && token.len() == 68, "{token}");
    token
}

async fn wait_ready(port: u16) {
    for _ in 0..200 {
        if http_get(port, "/readyz").await.starts_with("HTTP/1.1 200") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the API did not answer /readyz on port {port}");
}

/// A response: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One raw HTTP/1.1 request (`Connection: close`).
pub(crate) async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("the API answers")
        .unwrap();
    parse_response(&out)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn contract(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("fixtures/contract").join(name)).unwrap()
}

/// Every fixture and contract example (not the `.expect.json` files).
fn all_examples() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".expect.json")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_root().join("fixtures"), &mut out);
    out.sort();
    out
}

/// The outcome word of `process --json` for the API's.
fn as_process_outcome(ergebnis: &str) -> &'static str {
    match ergebnis {
        "annehmbar" => "accepted",
        "klaerfall" => "rejected",
        "unlesbar" => "invalid",
        other => panic!("unknown ergebnis {other}"),
    }
}

/// The API's findings in `process --json`'s shape.
fn as_process_findings(befunde: &Value) -> Value {
    Value::Array(
        befunde
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let mut f = json!({
                    "pointer": b["zeiger"], "severity": b["schwere"],
                    "rule": b["regel"], "message": b["meldung"],
                });
                if let Some(n) = b.get("nachweis") {
                    f["nachweis"] = n.clone();
                }
                f
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_as_process_does_for_every_fixture_and_contract_example() {
    let api = Api::start("").await;
    let files = all_examples();
    assert!(files.len() > 250, "{} examples", files.len());
    let out = Command::new(bridge_exe())
        .args([
            "--config",
            api.config().to_str().unwrap(),
            "process",
            "--json",
        ])
        .args(&files)
        .env_remove("ALLEGRO_BRIDGE_CONFIG")
        .current_dir(api.dir.path())
        .output()
        .unwrap();
    let lines: HashMap<String, Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["file"].as_str().unwrap().to_string(), v))
        .collect();
    let (mut seen, mut bad_requests) = (HashMap::<&str, usize>::new(), 0);
    for file in &files {
        let expected = &lines[&file.display().to_string()];
        let resp = api.check("", &std::fs::read(file).unwrap(), &[]).await;
        if resp.status == 400 {
            // Not a JSON object: what the daemon dead-letters as not_json & co.
            assert_eq!(expected["outcome"], "invalid", "{}", file.display());
            bad_requests += 1;
            continue;
        }
        assert_eq!(resp.status, 200, "{}: {:?}", file.display(), resp);
        let answer = resp.json();
        let outcome = as_process_outcome(answer["ergebnis"].as_str().unwrap());
        assert_eq!(outcome, expected["outcome"], "{}", file.display());
        assert_eq!(
            as_process_findings(&answer["befunde"]),
            expected["findings"],
            "{}",
            file.display()
        );
        *seen.entry(outcome).or_default() += 1;
    }
    // All three outcomes and the 400 are exercised.
    assert!(
        seen.len() == 3 && bad_requests > 0,
        "{seen:?} {bad_requests}"
    );
}

/// The contract's faulty Hauptantrag without its pages after the bank
/// details (as a form half filled), with the wrong IBAN kept.
fn half_filled() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&contract("hauptantrag-mit-fehlern.json")).unwrap();
    let o = v.as_object_mut().unwrap();
    for page in [
        "unterkunft",
        "einkommen",
        "vermoegen",
        "krankenversicherung",
        "mehrbedarfe",
    ] {
        o.remove(page);
    }
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_filled_form_gets_its_findings_and_no_required_for_the_rest() {
    let api = Api::start("").await;
    let body = half_filled();
    let whole = api.check("", &body, &[]).await.json();
    let rules = |a: &Value| -> Vec<(String, String)> {
        a["befunde"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["zeiger"].as_str().unwrap().into(),
                    b["regel"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    // Unfiltered, the missing pages are findings (the daemon would say so).
    let all = rules(&whole);
    assert!(all.iter().any(|(p, _)| p == "/unterkunft"), "{all:?}");
    let part = api
        .check("?abschnitte=/bankverbindung,/antragsteller", &body, &[])
        .await;
    assert_eq!(part.status, 200);
    let part = part.json();
    let found = rules(&part);
    assert!(
        found.contains(&("/bankverbindung/iban".into(), "IBAN-UNGUELTIG".into())),
        "{found:?}"
    );
    assert!(found.contains(&("/antragsteller/anschrift/plz".into(), "PLZ-FORMAT".into())));
    assert!(
        found
            .iter()
            .all(|(p, _)| p.starts_with("/bankverbindung") || p.starts_with("/antragsteller")),
        "{found:?}"
    );
    assert_eq!(part["ergebnis"], "klaerfall");
    // Only the bank page: the IBAN alone.
    let bank = api
        .check("?abschnitte=/bankverbindung", &body, &[])
        .await
        .json();
    assert_eq!(
        rules(&bank),
        [(
            "/bankverbindung/iban".to_string(),
            "IBAN-UNGUELTIG".to_string()
        )]
    );
    // A page without findings is annehmbar on its own.
    let fine = api
        .check("?abschnitte=/erklaerungen", &body, &[])
        .await
        .json();
    assert_eq!(
        (fine["ergebnis"].as_str(), rules(&fine).len()),
        (Some("annehmbar"), 0)
    );
    // Not a list of pointers: 400 naming the parameter.
    let bad = api.check("?abschnitte=bankverbindung", &body, &[]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["meldung"]
        .as_str()
        .unwrap()
        .contains("abschnitte"));
}

#[tokio::test(flavor = "multi_thread")]
async fn applicants_read_the_hints_in_their_language_and_cases_owe_documents() {
    let api = Api::start("").await;
    let body = contract("hauptantrag-mit-fehlern.json");
    let hint = |a: &Value| {
        a["befunde"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["regel"] == "IBAN-UNGUELTIG")
            .and_then(|b| b["hinweis"].as_str())
            .unwrap()
            .to_string()
    };
    let de = api.check("", &body, &[]).await;
    assert_eq!(de.header("content-language"), Some("de"));
    let de = de.json();
    assert!(
        hint(&de).contains("Sie") || hint(&de).contains("Ihre"),
        "{}",
        hint(&de)
    );
    let uk = api
        .check("", &body, &[("Accept-Language", "uk-UA,uk;q=0.9,de;q=0.5")])
        .await;
    assert_eq!(uk.header("content-language"), Some("uk"));
    let uk = uk.json();
    assert_eq!(uk["sprache"], "uk");
    assert!(
        hint(&uk)
            .chars()
            .any(|c| ('\u{0400}'..='\u{04FF}').contains(&c)),
        "{}",
        hint(&uk)
    );
    let en = api
        .check("", &body, &[("Accept-Language", "fr, en;q=0.8")])
        .await
        .json();
    assert!(
        hint(&en).contains("IBAN") && hint(&en) != hint(&de),
        "{}",
        hint(&en)
    );
    // The caseworker's message stays German in every language.
    assert_eq!(de["befunde"][0]["meldung"], uk["befunde"][0]["meldung"]);
    // The documents the application would owe, named in German.
    let owed = de["nachweise"].as_array().unwrap();
    assert!(
        owed.iter()
            .any(|n| n["art"] == "MIETVERTRAG" && n["bezeichnung"] != "MIETVERTRAG"),
        "{owed:?}"
    );
    assert_eq!(de["formular"], "bg-ha-1.0");
    // An unknown form version is unlesbar with its reason, not an HTTP error.
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["formular"]["version"] = json!("9.9");
    let r = api.check("", &serde_json::to_vec(&v).unwrap(), &[]).await;
    assert_eq!(r.status, 200);
    let r = r.json();
    assert_eq!(
        (r["ergebnis"].as_str(), r["grund"]["code"].as_str()),
        (Some("unlesbar"), Some("no_mapping"))
    );
    assert!(r["grund"]["text"].as_str().unwrap().contains("Formular"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_origins_and_refusals() {
    let api = Api::start("max_body_bytes = 65536").await;
    let body = contract("hauptantrag-gueltig.json");
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let port = api.port;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request(port, "POST", "/api/v1/pruefung", &h, &body).await
        }
    };
    let json_ct = ("Content-Type", "application/json".to_string());
    let bearer = ("Authorization", format!("Bearer {}", api.token));
    // No token, a wrong one, another scheme: 401 with WWW-Authenticate.
    for auth in [
        None,
        Some(format!("Bearer abr_{}", "0".repeat(64))),
        Some(format!("Basic {}", api.token)),
    ] {
        let mut h = vec![json_ct.clone()];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        let r = post(h, body.clone()).await;
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        assert_eq!(r.json()["fehler"], "unauthorized");
    }
    // Another method: 405, as JSON. The scheme's case does not matter.
    let get = request(api.port, "GET", "/api/v1/pruefung", &[], b"").await;
    assert_eq!(
        (get.status, get.json()["fehler"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let lower = post(
        vec![
            json_ct.clone(),
            ("Authorization", format!("bearer {}", api.token)),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(lower.status, 200);
    // The right token works.
    let ok = post(vec![json_ct.clone(), bearer.clone()], body.clone()).await;
    assert_eq!(
        (ok.status, ok.json()["ergebnis"].as_str()),
        (200, Some("annehmbar"))
    );
    // 415 for another content type, 400 for what is not JSON, 413 above the limit.
    let text = post(
        vec![("Content-Type", "text/plain".into()), bearer.clone()],
        body.clone(),
    )
    .await;
    assert_eq!(text.status, 415);
    let not_json = post(
        vec![json_ct.clone(), bearer.clone()],
        b"{\"antragId\": ".to_vec(),
    )
    .await;
    assert_eq!(not_json.status, 400);
    assert_eq!(
        not_json.json()["meldung"],
        "Der Inhalt ist kein gültiges JSON."
    );
    let array = post(vec![json_ct.clone(), bearer.clone()], b"[1,2]".to_vec()).await;
    assert_eq!(array.status, 400);
    let mut big: Value = serde_json::from_slice(&body).unwrap();
    big["antragsteller"]["geburtsort"] = json!("x".repeat(70_000));
    let big = post(
        vec![json_ct.clone(), bearer.clone()],
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(big.status, 413);
    assert_eq!(big.json()["fehler"], "too_large");

    // CORS: the preflight from an allowed origin is answered with it …
    let preflight = |origin: &'static str| {
        let port = api.port;
        async move {
            request(
                port,
                "OPTIONS",
                "/api/v1/pruefung",
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                    (
                        "Access-Control-Request-Headers",
                        "authorization,content-type",
                    ),
                ],
                b"",
            )
            .await
        }
    };
    let allowed = preflight("https://antrag.example").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://antrag.example")
    );
    assert!(allowed
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    // … from a foreign one, without the allow header (the browser blocks).
    let foreign = preflight("https://evil.example").await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    // A valid token sent from a foreign origin is refused by the server too.
    let from_evil = post(
        vec![
            json_ct.clone(),
            bearer.clone(),
            ("Origin", "https://evil.example".into()),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(from_evil.status, 403);
    let from_form = post(
        vec![
            json_ct.clone(),
            bearer.clone(),
            ("Origin", "https://antrag.example".into()),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(from_form.status, 200);
    assert_eq!(
        from_form.header("access-control-allow-origin"),
        Some("https://antrag.example")
    );

    // Nothing of the body in any refusal.
    for r in [&text, &not_json, &array, &big, &from_evil] {
        let s = String::from_utf8_lossy(&r.body);
        assert!(!s.contains("Ibrahim") && !s.contains("antragId"), "{s}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    // 12 a minute: a burst of 1, then one every 5 s.
    let api = Api::start_with_clients("requests_per_minute = 12", &["portal", "backend"]).await;
    let body = contract("hauptantrag-gueltig.json");
    assert_eq!(api.check("", &body, &[]).await.status, 200);
    let limited = api.check("", &body, &[]).await;
    assert_eq!(limited.status, 429);
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
    assert_eq!(limited.json()["fehler"], "rate_limited");
    // Another client has its own budget.
    assert_eq!(api.check_as("backend", "", &body, &[]).await.status, 200);
    assert_eq!(api.check_as("backend", "", &body, &[]).await.status, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_stalls_gets_503_and_the_api_stays_up() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::start("timeout_ms = 500").await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", api.port))
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/pruefung HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"antragId\"",
        api.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answered after the timeout")
        .unwrap();
    let r = parse_response(&out);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["fehler"], "timeout");
    let ok = api
        .check("", &contract("hauptantrag-gueltig.json"), &[])
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_and_findings_by_rule_with_source_api() {
    let api = Api::start("").await;
    for _ in 0..3 {
        api.check("", &contract("hauptantrag-mit-fehlern.json"), &[])
            .await;
    }
    api.check("", &contract("hauptantrag-gueltig.json"), &[])
        .await;
    request(
        api.port,
        "POST",
        "/api/v1/pruefung",
        &[("Content-Type", "application/json")],
        b"{}",
    )
    .await;
    let text = http_get(api.metrics_port, "/metrics").await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    assert_eq!(value("allegro_bridge_findings_total{source=\"api\",rule=\"IBAN-UNGUELTIG\",severity=\"error\"}"), 3.0);
    assert_eq!(
        value("allegro_bridge_api_requests_total{client=\"portal\",outcome=\"klaerfall\"}"),
        3.0
    );
    assert_eq!(
        value("allegro_bridge_api_requests_total{client=\"portal\",outcome=\"annehmbar\"}"),
        1.0
    );
    assert_eq!(
        value("allegro_bridge_api_requests_total{client=\"-\",outcome=\"unauthorized\"}"),
        1.0
    );
    assert_eq!(value("allegro_bridge_api_check_seconds_count"), 4.0);
    // `api-client list` names the client and its origin, never the token.
    let out = Command::new(bridge_exe())
        .args([
            "--config",
            api.config().to_str().unwrap(),
            "api-client",
            "list",
        ])
        .env_remove("ALLEGRO_BRIDGE_CONFIG")
        .output()
        .unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listed, "portal\thttps://antrag.example\n");
    assert!(!api.log().contains(&api.token[4..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_valid_by_an_independent_validator() {
    let api = Api::start("").await;
    let resp = request(api.port, "GET", "/api/v1/openapi.json", &[], b"").await;
    assert_eq!(resp.status, 200);
    let doc = resp.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let op = &doc["paths"]["/api/v1/pruefung"]["post"];
    for status in ["200", "400", "401", "403", "413", "415", "429", "503"] {
        assert!(
            op["responses"][status].is_object(),
            "response {status} documented"
        );
    }
    assert!(doc["components"]["schemas"]["PruefAntwort"].is_object());
    let path = api.dir.path().join("openapi.json");
    std::fs::write(&path, &resp.body).unwrap();
    let validator = validator();
    let out = Command::new(&validator).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does fail a broken document (so its OK above means something).
    let mut broken = doc.clone();
    broken["paths"]["/api/v1/pruefung"]["post"]["responses"]["200"] = json!({"content": 3});
    std::fs::write(&path, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert!(!Command::new(&validator)
        .arg(&path)
        .output()
        .unwrap()
        .status
        .success());
}

/// The contract's copies (docs/contract.md §9) are what the server says:
/// the OpenAPI document and the example answer. After a deliberate change,
/// `ALLEGRO_BRIDGE_BLESS=1 cargo test --test it api::the_contract` rewrites
/// them (and the contract's version must change with them).
#[tokio::test(flavor = "multi_thread")]
async fn the_contract_copies_are_what_the_server_says() {
    let api = Api::start("").await;
    let dir = repo_root().join("fixtures/contract/1.2");
    let spec = request(api.port, "GET", "/api/v1/openapi.json", &[], b"")
        .await
        .json();
    let answer = api
        .check("", &contract("hauptantrag-mit-fehlern.json"), &[])
        .await
        .json();
    for (name, got) in [
        ("pruefung-openapi.json", spec),
        ("pruefung-antwort-hauptantrag-mit-fehlern.json", answer),
    ] {
        let path = dir.join(name);
        if std::env::var_os("ALLEGRO_BRIDGE_BLESS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                &path,
                format!("{}\n", serde_json::to_string_pretty(&got).unwrap()),
            )
            .unwrap();
        }
        let want: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            got,
            want,
            "{} differs from what the server says",
            path.display()
        );
    }
}

/// The validator scripts/setup-openapi-validator.sh installs.
fn validator() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let bin = target.join("tools/openapi-venv/bin/openapi-spec-validator");
    assert!(
        bin.exists(),
        "{} is missing: run `bash scripts/setup-openapi-validator.sh` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_serves_the_api_with_its_mappings_and_metrics() {
    let mut env = support::TestEnv::new(support::Db::Sqlite, "api-daemon").await;
    let (port, metrics_port) = (free_port(), free_port());
    let clients = env.dir.path().join("clients.toml");
    let config = env.dir.path().join("allegro-bridge.toml");
    std::fs::write(
        &config,
        format!("[api]\nclients_file = \"{}\"\n", clients.display()),
    )
    .unwrap();
    let token = add_client(&config, "portal", &[]);
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__API__LISTEN".into(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "ALLEGRO_BRIDGE__API__CLIENTS_FILE".into(),
            clients.display().to_string(),
        ),
        (
            "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
            format!("127.0.0.1:{metrics_port}"),
        ),
    ]);
    let mut daemon = env.spawn_daemon();
    wait_ready(port).await;
    let auth = format!("Bearer {token}");
    let r = request(
        port,
        "POST",
        "/api/v1/pruefung",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        &contract("hauptantrag-mit-fehlern.json"),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["ergebnis"].as_str()),
        (200, Some("klaerfall"))
    );
    let text = http_get(metrics_port, "/metrics").await;
    assert!(
        text.contains("allegro_bridge_findings_total{source=\"api\",rule=\"PLZ-FORMAT\",severity=\"error\"} 1"),
        "{text}"
    );
    // Nothing was stored: a check is not a submission.
    assert_eq!(env.store().await.counts().await.unwrap().applications, 0);
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    env.cleanup().await;
}

/// The in-process router over the pipeline the property test compares with.
fn pipeline() -> &'static Arc<Pipeline> {
    static P: OnceLock<Arc<Pipeline>> = OnceLock::new();
    P.get_or_init(|| {
        Arc::new(
            Pipeline::load(&PipelineConfig {
                mappings_dir: repo_root().join("mappings"),
                schemas_dir: repo_root().join("schemas"),
                ..PipelineConfig::default()
            })
            .unwrap(),
        )
    })
}

mod generated {
    use super::*;
    use allegro_web::api::{self, clients::Clients, metrics::ApiMetrics, ApiConfig, ApiState};
    use axum::body::Body;
    use http_body_util::BodyExt;
    use proptest::prelude::*;
    use tower::ServiceExt;

    fn router(token: &str) -> axum::Router {
        let text = format!(
            "[[client]]\nname = \"t\"\ntoken_sha256 = \"{}\"\n",
            api::clients::token_hash(token)
        );
        let per_minute = std::num::NonZeroU32::new(1_000_000).unwrap();
        api::router(ApiState {
            pipeline: Arc::new(allegro_web::workbench::FixedPipeline(
                Arc::clone(pipeline()),
            )),
            clients: Arc::new(Clients::parse(&text, per_minute).unwrap()),
            metrics: ApiMetrics::new(Default::default()),
            config: ApiConfig::default(),
        })
    }

    /// A leaf of the valid Hauptantrag replaced by another value.
    fn mutate(doc: &mut Value, pick: usize, with: &Value) {
        let mut leaves = Vec::new();
        collect("", doc, &mut leaves);
        let pointer = &leaves[pick % leaves.len()];
        if let Some(v) = doc.pointer_mut(pointer) {
            *v = with.clone();
        }
    }

    fn collect(at: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => o
                .iter()
                .for_each(|(k, c)| collect(&format!("{at}/{k}"), c, out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| collect(&format!("{at}/{i}"), c, out)),
            _ => out.push(at.to_string()),
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-100_000i64..100_000).prop_map(|n| json!(n)),
            "[0-9]{0,12}".prop_map(Value::String),
            "\\PC{0,20}".prop_map(Value::String),
            Just(json!("DE00123456781234567890")),
            Just(json!("1999-02-30")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn the_api_answers_what_the_pipeline_does(
            edits in proptest::collection::vec((any::<usize>(), value()), 0..4),
            base in 0usize..3,
        ) {
            let name = ["hauptantrag-gueltig.json", "hauptantrag-mit-fehlern.json", "weiterbewilligung-gueltig.json"][base];
            let mut doc: Value = serde_json::from_slice(&contract(name)).unwrap();
            for (pick, with) in &edits {
                mutate(&mut doc, *pick, with);
            }
            let body = serde_json::to_vec(&doc).unwrap();
            let expected = pipeline().process(&body, None);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let answer: Value = rt.block_on(async {
                let req = axum::http::Request::post("/api/v1/pruefung")
                    .header("authorization", "Bearer tok")
                    .header("content-type", "application/json")
                    .body(Body::from(body.clone()))
                    .unwrap();
                let resp = router("tok").oneshot(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
            });
            let outcome = match expected.outcome() {
                Outcome::Accepted => "annehmbar",
                Outcome::Rejected => "klaerfall",
                Outcome::Invalid => "unlesbar",
            };
            prop_assert_eq!(answer["ergebnis"].as_str(), Some(outcome));
            prop_assert_eq!(
                as_process_findings(&answer["befunde"]),
                serde_json::to_value(expected.findings()).unwrap()
            );
            let owed: Vec<&str> = expected.application().map_or_else(Vec::new, |a| a.owed.iter().map(|o| o.kind.as_str()).collect());
            let answered: Vec<&str> = answer["nachweise"].as_array().unwrap().iter().map(|n| n["art"].as_str().unwrap()).collect();
            prop_assert_eq!(answered, owed);
        }
    }
}
