//! The caseworker workbench in a real browser (headless Debian Chromium via
//! chromedriver, see `allegro_testkit::browser`), served by the daemon
//! (`[web] listen`) after it consumed the contract's faulty Hauptantrag from
//! the real RabbitMQ:
//!
//! - a caseworker logs in, searches by the applicant's name (neither the
//!   address nor the tab's history then holds the name), finds the case by
//!   its antragId, sees the IBAN error beside the field and in the error
//!   summary, corrects IBAN, PLZ and
//!   household size, "Prüfen" shows no error, "Freigeben" writes the record:
//!   it holds the corrected values, validates against the XSD, and its
//!   provenance names the caseworker and the three corrections;
//! - a caseworker of another Dienststelle gets 404 for the case URL;
//! - a form posted without its CSRF token is refused and changes nothing;
//! - of two sessions editing the same field, the second save is refused;
//! - axe-core (WCAG 2.1 A/AA) finds nothing on the login, list, detail (with
//!   errors shown), edit, audit and administration pages.
//!
//! `ALLEGRO_BRIDGE_SCREENSHOTS=1` makes the first test write the list and
//! detail screenshots shown in the README (docs/workbench-*.png).

use allegro_testkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use allegro_testkit::browser::{self, Chromedriver, Client, Locator};
use support::*;
use uuid::Uuid;

const PASSWORD: &str = "Sehr-geheim-2026";
/// The faulty example's Dienststelle.
const DIENSTSTELLE: &str = "81101";
const CASEWORKER: &str = "sb-magdeburg";
const OTHER_CASEWORKER: &str = "sb-halle";
const ADMIN: &str = "admin-leitung";

const IBAN: &str = "/bankverbindung/iban";
const PLZ: &str = "/antragsteller/anschrift/plz";
const HAUSHALT: &str = "/unterkunft/personenImHaushalt";
/// The faulty values in the example and what the caseworker corrects them to.
const CORRECTIONS: [(&str, &str, &str); 3] = [
    (IBAN, "DE78595567370598319781", "DE46692859320639324688"),
    (PLZ, "7545", "39104"),
    (HAUSHALT, "0", "5"),
];

/// Page loads and form submissions of a caseworker's path.
#[derive(Default)]
struct Flow {
    loads: usize,
    submissions: usize,
    documents: Vec<String>,
}

impl Flow {
    /// The browser shows a document: a load if it is a new one.
    async fn loaded(&mut self, c: &Client) {
        let origin = c
            .execute("return String(performance.timeOrigin);", vec![])
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !self.documents.contains(&origin) {
            self.documents.push(origin);
            self.loads += 1;
        }
    }

    /// A form was sent and its answer is shown.
    async fn submitted(&mut self, c: &Client) {
        self.submissions += 1;
        self.loaded(c).await;
    }
}

/// Every URL of the tab's session history, from the current entry back to
/// the first (walking back through it: where the tab ends up is the first).
async fn history_urls(c: &Client) -> Vec<String> {
    let length = c
        .execute("return history.length;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    let mut urls = vec![browser::page_url(c).await];
    for _ in 1..length {
        c.back().await.unwrap();
        urls.push(browser::page_url(c).await);
    }
    urls
}

/// The daemon with its workbench, three cases of the faulty example in the
/// store (consumed from RabbitMQ), the accounts, and a chromedriver.
struct Workbench {
    env: TestEnv,
    daemon: Daemon,
    port: u16,
    /// The case the tests work on (the others fill the list).
    antrag: Uuid,
    driver: Chromedriver,
}

impl Workbench {
    async fn start(name: &str) -> Workbench {
        let mut env = TestEnv::new(Db::Sqlite, name).await;
        let port = free_port();
        let root = repo_root();
        env.extra_env.extend([
            (
                "ALLEGRO_BRIDGE__WEB__LISTEN".to_string(),
                format!("127.0.0.1:{port}"),
            ),
            (
                "ALLEGRO_BRIDGE__WEB__ASSETS_DIR".to_string(),
                root.join("crates/web/assets").display().to_string(),
            ),
        ]);
        let driver = Chromedriver::start().await;
        let daemon = env.spawn_daemon();
        let msgs: Vec<Msg> = (0..3).map(|_| rejected()).collect();
        let wb = Workbench {
            antrag: msgs[1].antrag_id.unwrap(),
            env,
            daemon,
            port,
            driver,
        };
        // Serving means the store is migrated.
        wb.wait_until_serving().await;
        let env = &wb.env;
        env.declare().await;
        Publisher::new(env)
            .await
            .publish_all(&env.intake, &msgs)
            .await;
        env.settle_counts(3, 0, Duration::from_secs(60)).await;
        add_user(env, CASEWORKER, "sachbearbeitung", Some(DIENSTSTELLE));
        add_user(env, OTHER_CASEWORKER, "sachbearbeitung", Some("81102"));
        add_user(env, ADMIN, "administration", None);
        wb
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn case_path(&self) -> String {
        format!("/faelle/{}", self.antrag)
    }

    async fn wait_until_serving(&self) {
        for _ in 0..300 {
            if http_get(self.port, "/anmelden")
                .await
                .starts_with("HTTP/1.1 200")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the workbench does not answer on port {}; daemon log:\n{}",
            self.port,
            self.daemon.log_text()
        );
    }

    /// A new browser session logged in as `user`.
    async fn session(&self, user: &str) -> Client {
        let c = self.driver.session().await;
        self.login(&c, user).await;
        c
    }

    async fn login(&self, c: &Client, user: &str) {
        c.goto(&self.url("/anmelden")).await.unwrap();
        browser::fill(c, "#benutzername", user).await;
        browser::fill(c, "#passwort", PASSWORD).await;
        browser::click_and_load(c, "#anmelden").await;
        let url = browser::page_url(c).await;
        assert!(
            url.ends_with("/faelle"),
            "{user} is not logged in, at {url}:\n{}",
            c.source().await.unwrap_or_default()
        );
    }

    /// The detail page's row of the field at `pointer`.
    fn row(pointer: &str) -> String {
        format!(
            "#feld-{}",
            pointer.trim_start_matches('/').replace('/', "-")
        )
    }

    /// Opens the edit page of `pointer` from the detail page (its `a.aendern`).
    async fn open_edit(&self, c: &Client, pointer: &str) {
        c.goto(&self.url(&self.case_path())).await.unwrap();
        browser::click_and_load(c, &format!("{} a.aendern", Self::row(pointer))).await;
        browser::find(c, "#wert").await;
    }

    /// The session cookie of a browser session (HttpOnly: WebDriver sees it).
    async fn cookie(c: &Client) -> String {
        let cookie = c
            .get_named_cookie("bridge_session")
            .await
            .expect("the session cookie bridge_session");
        format!("bridge_session={}", cookie.value())
    }

    async fn stop(mut self) {
        self.daemon.sigterm();
        assert_eq!(self.daemon.wait_exit(Duration::from_secs(30)), Some(0));
        self.env.cleanup().await;
    }
}

/// `allegro-bridge user add` with the password on stdin.
fn add_user(env: &TestEnv, name: &str, role: &str, dienststelle: Option<&str>) {
    let mut args = vec!["user", "add", name, "--rolle", role];
    if let Some(d) = dienststelle {
        args.extend(["--dienststelle", d]);
    }
    let out = env.cli_with_stdin(&args, &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "user add {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One raw HTTP/1.1 request to the workbench; returns (status, whole response).
async fn http(port: u16, method: &str, path: &str, cookie: &str, form: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("the workbench answers")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The fields of the first form on the page with `#wert` (its action and its
/// fields url-encoded), leaving out the field named `drop`.
async fn edit_form(c: &Client, drop: &str) -> (String, String) {
    let v = c
        .execute(
            r#"const [drop] = arguments;
               const form = document.querySelector('#wert').form;
               const p = new URLSearchParams();
               for (const [k, v] of new FormData(form)) { if (k !== drop) p.append(k, v); }
               const a = new URL(form.action, location.href);
               return [a.pathname + a.search, p.toString()];"#,
            vec![serde_json::json!(drop)],
        )
        .await
        .unwrap();
    (
        v[0].as_str().unwrap().to_string(),
        v[1].as_str().unwrap().to_string(),
    )
}

fn screenshot_dir(wb: &Workbench) -> PathBuf {
    if std::env::var_os("ALLEGRO_BRIDGE_SCREENSHOTS").is_some() {
        repo_root().join("docs")
    } else {
        wb.env.dir.path().to_path_buf()
    }
}

/// xmllint against the XSD named by the record's version attribute.
fn validate_against_xsd(record: &Path, xml: &str) {
    let version = xml
        .split("<AllegroImport ")
        .nth(1)
        .and_then(|r| r.split("version=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .expect("the record's root has a version");
    let xsd = repo_root().join(format!("schemas/allegro-import-{version}.xsd"));
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(record)
        .output()
        .expect("xmllint (Debian package libxml2-utils, installed by scripts/test.sh)");
    assert!(
        out.status.success(),
        "the released record does not validate against {}:\n{}",
        xsd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<Korrektur .../>` elements of the record's provenance.
fn corrections_in(xml: &str) -> Vec<&str> {
    xml.split("<Korrektur ")
        .skip(1)
        .map(|s| s.split("/>").next().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn caseworker_corrects_checks_and_releases_a_case() {
    let wb = Workbench::start("wb-release").await;
    let shots = screenshot_dir(&wb);
    let c = wb.driver.session().await;

    // Login page, also with a failed login shown.
    c.goto(&wb.url("/anmelden")).await.unwrap();
    browser::assert_accessible(&c, "login").await;
    browser::fill(&c, "#benutzername", CASEWORKER).await;
    browser::fill(&c, "#passwort", "falsch-falsch-falsch").await;
    browser::click_and_load(&c, "#anmelden").await;
    assert!(browser::page_url(&c).await.ends_with("/anmelden"));
    browser::assert_accessible(&c, "login (failed)").await;
    wb.login(&c, CASEWORKER).await;

    // The list: all three cases; the search finds the one by its antragId.
    browser::assert_accessible(&c, "case list").await;
    let links = c.find_all(Locator::Css("a.fall-link")).await.unwrap();
    assert_eq!(links.len(), 3, "the list shows the three open cases");
    browser::screenshot(&c, &shots.join("workbench-list.png")).await;
    // A name search (issue #19): typed into the form, it lists the case, and
    // neither the address nor any entry of the tab's history holds the name.
    browser::fill(&c, "#suche", "Ioana Popescu").await;
    browser::click_and_load(&c, "#suchen").await;
    let links = c.find_all(Locator::Css("a.fall-link")).await.unwrap();
    assert!(!links.is_empty(), "the name search finds the cases");
    let found_at = browser::page_url(&c).await;
    assert!(found_at.contains("/faelle?suche="), "{found_at}");
    browser::assert_accessible(&c, "case list (name search)").await;
    let visited = history_urls(&c).await;
    assert!(visited.contains(&found_at), "{visited:?}");
    for url in &visited {
        let url = url.to_lowercase();
        assert!(!url.contains("popescu") && !url.contains("ioana"), "{url}");
    }
    c.goto(&found_at).await.unwrap();
    browser::fill(&c, "#suche", &wb.antrag.to_string()).await;
    browser::click_and_load(&c, "#suchen").await;
    let links = c.find_all(Locator::Css("a.fall-link")).await.unwrap();
    assert_eq!(links.len(), 1, "the search by antragId finds one case");
    let href = links[0].attr("href").await.unwrap().unwrap_or_default();
    assert!(href.ends_with(&wb.case_path()), "{href}");
    browser::assert_accessible(&c, "case list (search)").await;
    browser::click_and_load(&c, "a.fall-link").await;
    assert!(browser::page_url(&c).await.ends_with(&wb.case_path()));

    // The detail page: the IBAN error beside the field and in the summary.
    let iban_row = Workbench::row(IBAN);
    let beside = browser::text(&c, &format!("{iban_row} .befund")).await;
    assert!(
        beside.contains("IBAN") && beside.contains("ungültig"),
        "the IBAN row's finding: {beside}"
    );
    let summary = browser::find(&c, "#fehlerliste").await;
    assert!(
        summary.text().await.unwrap().contains("IBAN"),
        "the error summary names the IBAN"
    );
    let summary_links = c
        .execute(
            "return Array.from(document.querySelectorAll('#fehlerliste a')).map(a => a.getAttribute('href'));",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        summary_links.as_array().unwrap().iter().any(|h| h
            .as_str()
            .unwrap_or("")
            .ends_with("feld-bankverbindung-iban-neu")),
        "the summary links to the IBAN's input of the fix form: {summary_links}"
    );
    browser::assert_accessible(&c, "case detail (with errors)").await;
    // The top: error summary, the fix form, the actions.
    browser::screenshot_top(&c, &shots.join("workbench-detail.png"), 1900).await;

    // Any other field stays editable on its own page.
    wb.open_edit(&c, IBAN).await;
    browser::assert_accessible(&c, "field edit").await;

    // From opening the case to its release: the fix form takes all three
    // corrections in one submission, then Freigeben. Page loads are counted
    // by the documents the browser shows (performance.timeOrigin changes
    // with every new document), submissions by the forms sent.
    let mut flow = Flow::default();
    c.goto(&wb.url(&wb.case_path())).await.unwrap();
    flow.loaded(&c).await;
    for (pointer, _, to) in CORRECTIONS {
        browser::fill(&c, &format!("{}-neu", Workbench::row(pointer)), to).await;
    }
    browser::click_and_load(&c, "#beheben-speichern").await;
    flow.submitted(&c).await;
    assert!(
        !browser::exists(&c, "#fehlerliste").await,
        "after the fix form an error is left:\n{}",
        browser::text(&c, "#fehlerliste").await
    );
    assert!(!browser::exists(&c, &format!("{iban_row} .befund")).await);
    let notice = browser::text(&c, "#meldung").await;
    assert!(notice.contains("Alle Fehler behoben"), "{notice}");
    assert!(
        !browser::exists(&c, "#pruefen").await,
        "Prüfen adds nothing right after a check"
    );
    browser::assert_accessible(&c, "case detail (fixed)").await;
    if browser::exists(&c, "#warnungen-geprueft").await {
        browser::click(&c, "#warnungen-geprueft").await;
    }

    // "Freigeben": the record, with the corrections in its provenance.
    browser::click_and_load(&c, "#freigeben").await;
    flow.submitted(&c).await;
    assert!(
        flow.loads <= 3 && flow.submissions <= 2,
        "fixing and releasing the case took {} page loads and {} submissions (at most 3 and 2)",
        flow.loads,
        flow.submissions
    );
    let record = wb.env.outbox.join(format!("{}.xml", wb.antrag));
    wb.env
        .wait_for("the released record", Duration::from_secs(20), || async {
            record.is_file()
        })
        .await;
    let xml = std::fs::read_to_string(&record).unwrap();
    for (tag, value) in [
        ("IBAN", "DE46692859320639324688"),
        ("Postleitzahl", "39104"),
        ("PersonenImHaushalt", "5"),
    ] {
        let element = format!("<{tag}>{value}</{tag}>");
        assert!(xml.contains(&element), "the record lacks {element}:\n{xml}");
    }
    validate_against_xsd(&record, &xml);
    let found = corrections_in(&xml);
    assert_eq!(
        found.len(),
        3,
        "three corrections in the provenance:\n{xml}"
    );
    for (pointer, from, to) in CORRECTIONS {
        let c = found
            .iter()
            .find(|k| k.contains(&format!("feld=\"{pointer}\"")))
            .unwrap_or_else(|| panic!("no correction of {pointer}:\n{xml}"));
        for attr in [
            format!("durch=\"{CASEWORKER}\""),
            format!("von=\"{from}\""),
            format!("nach=\"{to}\""),
        ] {
            assert!(
                c.contains(&attr),
                "correction of {pointer} lacks {attr}: {c}"
            );
        }
    }
    let t = wb.env.tally().await;
    assert_eq!(t.records.get(&wb.antrag), Some(&1), "a record row, written");
    c.close().await.unwrap();
    wb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_dienststelle_gets_404_and_a_form_without_csrf_is_refused() {
    let wb = Workbench::start("wb-access").await;
    let own = wb.session(CASEWORKER).await;
    let other = wb.session(OTHER_CASEWORKER).await;

    // Another Dienststelle: 404, and the page does not show the case.
    let (status, _) = http(
        wb.port,
        "GET",
        &wb.case_path(),
        &Workbench::cookie(&other).await,
        "",
    )
    .await;
    assert_eq!(status, 404, "another Dienststelle's caseworker");
    let (status, _) = http(
        wb.port,
        "GET",
        &wb.case_path(),
        &Workbench::cookie(&own).await,
        "",
    )
    .await;
    assert_eq!(status, 200, "the own caseworker");
    other.goto(&wb.url(&wb.case_path())).await.unwrap();
    let page = other.source().await.unwrap();
    assert!(
        !page.contains("Popescu") && !page.contains("DE78595567370598319781"),
        "the 404 page discloses the case"
    );
    assert!(!browser::exists(&other, &Workbench::row(IBAN)).await);
    browser::assert_accessible(&other, "not found").await;
    // Nor does the list show it.
    other.goto(&wb.url("/faelle")).await.unwrap();
    assert!(!browser::exists(&other, "a.fall-link").await);

    // The edit form posted without its CSRF token: refused, nothing changed.
    wb.open_edit(&own, IBAN).await;
    browser::fill(&own, "#wert", "DE46692859320639324688").await;
    let cookie = Workbench::cookie(&own).await;
    let (action, without) = edit_form(&own, "csrf").await;
    let (_, with) = edit_form(&own, "").await;
    assert!(
        with.contains("csrf="),
        "the edit form carries a csrf field: {with}"
    );
    let (status, answer) = http(wb.port, "POST", &action, &cookie, &without).await;
    assert!(
        (400..500).contains(&status),
        "a POST without CSRF token answered {status}:\n{answer}"
    );
    // In the browser too: the form with its token field removed.
    own.execute(
        "document.querySelector('#wert').form.querySelector('[name=csrf]').remove(); return true;",
        vec![],
    )
    .await
    .unwrap();
    browser::click_and_load(&own, "#speichern").await;
    own.goto(&wb.url(&wb.case_path())).await.unwrap();
    let row = browser::text(&own, &Workbench::row(IBAN)).await;
    assert!(
        row.contains("DE78595567370598319781") && !row.contains("DE46692859320639324688"),
        "the IBAN changed without a CSRF token: {row}"
    );
    assert!(browser::exists(&own, "#fehlerliste").await);
    // The same form with its token is accepted (so the token made the difference).
    let (status, answer) = http(wb.port, "POST", &action, &cookie, &with).await;
    assert!(
        (200..400).contains(&status),
        "the POST with its CSRF token answered {status}:\n{answer}"
    );
    own.goto(&wb.url(&wb.case_path())).await.unwrap();
    let row = browser::text(&own, &Workbench::row(IBAN)).await;
    assert!(row.contains("DE46692859320639324688"), "{row}");
    own.close().await.unwrap();
    other.close().await.unwrap();
    wb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn second_of_two_concurrent_saves_is_refused() {
    let wb = Workbench::start("wb-lock").await;
    let first = wb.session(CASEWORKER).await;
    let second = wb.session(CASEWORKER).await;
    wb.open_edit(&first, PLZ).await;
    wb.open_edit(&second, PLZ).await;

    browser::fill(&first, "#wert", "39104").await;
    browser::click_and_load(&first, "#speichern").await;
    browser::fill(&second, "#wert", "39106").await;
    browser::click_and_load(&second, "#speichern").await;
    let page = second.source().await.unwrap();
    assert!(
        page.contains("zwischenzeitlich geändert"),
        "the second save is not refused:\n{page}"
    );
    browser::assert_accessible(&second, "version conflict").await;

    second.goto(&wb.url(&wb.case_path())).await.unwrap();
    let row = browser::text(&second, &Workbench::row(PLZ)).await;
    assert!(
        row.contains("39104") && !row.contains("39106"),
        "the first save was overwritten: {row}"
    );
    first.close().await.unwrap();
    second.close().await.unwrap();
    wb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_and_administration_pages_are_accessible() {
    let wb = Workbench::start("wb-admin").await;
    // Something to show in the audit: the caseworker viewed the case.
    let viewer = wb.session(CASEWORKER).await;
    viewer.goto(&wb.url(&wb.case_path())).await.unwrap();
    browser::find(&viewer, &Workbench::row(IBAN)).await;
    viewer.close().await.unwrap();

    let admin = wb.session(ADMIN).await;
    let cookie = Workbench::cookie(&admin).await;
    // Every page is checked before the test fails, so one missing page does
    // not hide the others' violations.
    let mut problems = Vec::new();
    for (path, name) in [
        ("/verwaltung/protokoll", "audit"),
        ("/verwaltung/nachpruefung", "recheck"),
        ("/verwaltung/dead-letters", "dead letters"),
        ("/verwaltung/benutzer", "users"),
    ] {
        let (status, _) = http(wb.port, "GET", path, &cookie, "").await;
        if status != 200 {
            problems.push(format!("{path}: HTTP {status}"));
            continue;
        }
        admin.goto(&wb.url(path)).await.unwrap();
        let found = browser::axe(&admin).await;
        if !found.is_empty() {
            problems.push(format!(
                "{path} ({name}): {} violation(s):\n{}",
                found.len(),
                browser::report(&found)
            ));
        }
    }
    admin.goto(&wb.url("/verwaltung/protokoll")).await.unwrap();
    let audit = browser::text(&admin, "main").await;
    assert!(
        audit.contains(CASEWORKER) && audit.contains(&wb.antrag.to_string()),
        "the audit shows who looked at which case:\n{audit}"
    );
    admin.goto(&wb.url("/verwaltung/benutzer")).await.unwrap();
    if browser::exists(&admin, "#benutzer").await {
        let users = browser::text(&admin, "#benutzer").await;
        for name in [CASEWORKER, OTHER_CASEWORKER, ADMIN] {
            assert!(users.contains(name), "{name} missing:\n{users}");
        }
    }
    // Administration pages are the administrators' only.
    let sb = wb.session(CASEWORKER).await;
    let sb_cookie = Workbench::cookie(&sb).await;
    for path in ["/verwaltung/protokoll", "/verwaltung/benutzer"] {
        let (status, _) = http(wb.port, "GET", path, &sb_cookie, "").await;
        assert_eq!(status, 404, "a caseworker asks for {path}");
    }
    sb.close().await.unwrap();
    admin.close().await.unwrap();
    wb.stop().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
