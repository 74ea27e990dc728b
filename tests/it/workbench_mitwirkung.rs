//! The workbench's Mitwirkung pages over real HTTP against `allegro-bridge
//! web` and SQLite: the contract's valid Hauptantrag (accepted; it owes
//! the Aufenthaltstitel of the child Noah) stored as the daemon stores it.
//!
//! - scope: a caseworker of another Dienststelle gets 404 on the
//!   application page, on a document action and on the letter's PDF, and
//!   does not see the document on /mitwirkung;
//! - a document action without its CSRF token is refused (403), nothing
//!   changes;
//! - refused input: a stale version is 409 with its message; a waiver
//!   without reason and a date that is none are 400 with the error summary
//!   linking to the field, the message beside it and the input kept;
//! - Aufforderung erstellen: a letter row, the documents requested with
//!   the deadline today + 14, the PDF (`%PDF`, and `pdftotext` reads the
//!   applicant's name and „Aufenthaltstitel“);
//! - Eingang vermerken: the document received, an audit row, and the
//!   follow-up record (the import record exists) in the outbox.
//!
//! In Chromium (`mitwirkung_in_the_browser_request_overdue_received`, the
//! workbench served in this process so that the test can move its clock):
//! /mitwirkung from the navigation, the application page, „Aufforderung
//! erstellen“, a refused waiver, the request overdue 15 days later (first
//! in the list, marked), „Eingang vermerken“; axe-core (WCAG 2.1 A/AA, at
//! 1280 and 320 px) on each of those pages. `ALLEGRO_BRIDGE_SCREENSHOTS=1`
//! writes the list with the overdue document to
//! docs/workbench-mitwirkung.png.

use std::process::Command;
use std::sync::Arc;

use allegro_testkit as support;

use allegro_core::mitwirkung::state::{DocState, Eingangsweg};
use allegro_core::pipeline::Pipeline;
use allegro_store::audit::{Action, LoggedAction};
use allegro_store::mitwirkung::OwedRow;
use allegro_store::release::RecordDelivery;
use allegro_store::Store;
use allegro_testkit::browser::{self, Chromedriver};
use allegro_web::workbench::{Clock, FixedPipeline, WebConfig, WorkbenchState};
use chrono::{Days, Utc};
use serde_json::Value;
use support::workbench::{
    add_user, start_web, store_accepted, store_rejected, Answer, Client, Web,
};
use support::{Db, TestEnv};
use uuid::Uuid;

const VALID: &str = include_str!("../../fixtures/contract/hauptantrag-gueltig.json");
const FAULTY: &str = include_str!("../../fixtures/contract/hauptantrag-mit-fehlern.json");
const PASSWORD: &str = "Sehr-geheim-2026";
const DIENSTSTELLE: &str = "13101";
const CASEWORKER: &str = "sb.schwerin";
const OTHER: &str = "sb.halle";

/// The web, the store, the stored application and its one document.
struct World {
    env: TestEnv,
    store: Store,
    web: Web,
    antrag: Uuid,
}

impl World {
    async fn start(name: &str) -> World {
        let env = TestEnv::new(Db::Sqlite, name).await;
        let store = env.store().await;
        let pipeline = Pipeline::load(&Default::default()).unwrap();
        let antrag = Uuid::new_v4();
        let mut doc: Value = serde_json::from_str(VALID).unwrap();
        doc["antragId"] = Value::String(antrag.to_string());
        store_accepted(&store, &pipeline, antrag, &doc, DIENSTSTELLE).await;
        let own = ["--rolle", "sachbearbeitung", "--dienststelle", DIENSTSTELLE];
        add_user(&env, CASEWORKER, PASSWORD, &own);
        let other = ["--rolle", "sachbearbeitung", "--dienststelle", "81102"];
        add_user(&env, OTHER, PASSWORD, &other);
        let web = start_web(&env);
        World {
            env,
            store,
            web,
            antrag,
        }
    }

    /// Another application of the same Dienststelle.
    async fn another_application(&self) -> Uuid {
        let pipeline = Pipeline::load(&Default::default()).unwrap();
        let id = Uuid::new_v4();
        let mut doc: Value = serde_json::from_str(VALID).unwrap();
        doc["antragId"] = Value::String(id.to_string());
        store_accepted(&self.store, &pipeline, id, &doc, DIENSTSTELLE).await;
        id
    }

    fn client(&self, name: &str) -> Client {
        let mut c = Client::new(self.web.port);
        let r = c.login(name, PASSWORD);
        assert_eq!(r.status, 303, "login of {name}: {}", r.body);
        c
    }

    fn page(&self) -> String {
        format!("/antraege/{}", self.antrag)
    }

    /// The one document the application owes.
    async fn doc(&self) -> OwedRow {
        let mut owed = self.store.owed_of(self.antrag).await.unwrap();
        assert_eq!(owed.len(), 1, "{owed:?}");
        owed.remove(0)
    }

    fn action(&self, doc: &OwedRow) -> String {
        format!("/antraege/{}/nachweise/{}", self.antrag, doc.id)
    }

    async fn stop(self) {
        drop(self.web);
        self.env.cleanup().await;
    }
}

/// The page's `<title>` starts with "Fehler: ", its summary links to
/// `#field`, the message stands beside the field, described by it.
fn assert_error_at(r: &Answer, field: &str, message: &str) {
    assert!(r.title().starts_with("Fehler: "), "{}", r.title());
    let summary = r.body.split("id=\"fehlerliste\"").nth(1).expect("summary");
    assert!(
        summary.contains(&format!("href=\"#{field}\">{message}")),
        "{summary}"
    );
    assert!(
        r.body.contains(&format!(
            "<p class=\"kern-error\" id=\"{field}-fehler\">{message}</p>"
        )),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains(&format!("aria-describedby=\"{field}-fehler\"")));
}

/// The text of a PDF, by poppler's `pdftotext`.
fn pdf_text(dir: &std::path::Path, pdf: &[u8]) -> String {
    let file = dir.join("brief.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext is missing: install poppler-utils (apt-get install poppler-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mitwirkung_is_scoped_and_csrf_checked() {
    let w = World::start("wb-mw-scope").await;
    let doc = w.doc().await;
    let mut sb = w.client(CASEWORKER);
    let mut other = w.client(OTHER);

    // The list: the caseworker sees the document, the other one nothing.
    let list = sb.get("/mitwirkung");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list
        .body
        .contains(&format!("href=\"/antraege/{}#nachweise\"", w.antrag)));
    assert!(list.body.contains("Noah Ibrahim"), "{}", list.body);
    assert!(list.body.contains("Aufenthaltstitel"));
    assert!(list.body.contains("<caption"));
    let theirs = other.get("/mitwirkung");
    assert_eq!(theirs.status, 200);
    assert!(!theirs.body.contains(&w.antrag.to_string()));
    assert!(theirs.body.contains("Keine Nachweise gefunden"));

    // The application page: accepted, the document, its forms.
    let page = sb.get(&w.page());
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("übernommen"));
    assert!(
        page.body.contains("Aufenthaltstitel – Noah Ibrahim"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("id=\"eingang-{}\"", doc.id)));
    assert!(page.body.contains(&format!("id=\"grund-{}\"", doc.id)));
    assert!(
        !page.body.contains(&format!("id=\"frist-{}\"", doc.id)),
        "not requested yet"
    );
    let csrf = page.input("csrf");
    let views = w.store.audit_of(w.antrag).await.unwrap();
    assert!(views
        .iter()
        .any(|a| a.actor == CASEWORKER && a.action == LoggedAction::Known(Action::View)));

    // Another Dienststelle: 404 for the page, the action and the letter.
    assert_eq!(other.get(&w.page()).status, 404);
    let other_csrf = other.get("/mitwirkung").input("csrf");
    let version = doc.version.to_string();
    let r = other.post(
        &w.action(&doc),
        &[
            ("csrf", &other_csrf),
            ("aktion", "eingang"),
            ("version", &version),
            ("datum", "2026-01-01"),
        ],
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = other.post(&format!("{}/briefe", w.page()), &[("csrf", &other_csrf)]);
    assert_eq!(r.status, 404);
    let r = sb.post(&format!("{}/briefe", w.page()), &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.body);
    let letter = w.store.letters_of(w.antrag).await.unwrap()[0].id;
    let pdf = format!("{}/briefe/{letter}", w.page());
    assert_eq!(other.get(&pdf).status, 404);
    assert_eq!(sb.get(&pdf).status, 200);
    // The letter under another application, unknown or in scope: 404.
    assert_eq!(
        sb.get(&format!("/antraege/{}/briefe/{letter}", Uuid::new_v4()))
            .status,
        404
    );
    let second = w.another_application().await;
    let r = sb.get(&format!("/antraege/{second}/briefe/{letter}"));
    assert_eq!(r.status, 404, "a letter of another application");
    let denied = w.store.audit_of(w.antrag).await.unwrap();
    assert!(denied
        .iter()
        .any(|a| a.actor == OTHER && a.action == LoggedAction::Known(Action::Denied)));

    // Without the CSRF token: refused, nothing changed.
    let before = w.doc().await;
    let version = before.version.to_string();
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let r = sb.post(
        &w.action(&before),
        &[
            ("aktion", "eingang"),
            ("version", &version),
            ("datum", &today),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("Formular abgelaufen"));
    assert_eq!(w.doc().await, before);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_document_input_keeps_the_page_with_the_error() {
    let w = World::start("wb-mw-refused").await;
    let doc = w.doc().await;
    let mut sb = w.client(CASEWORKER);
    let csrf = sb.get(&w.page()).input("csrf");
    let version = doc.version.to_string();
    let stale = (doc.version + 1).to_string();
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();

    // A stale version: 409 with the message beside the field.
    let r = sb.post(
        &w.action(&doc),
        &[
            ("csrf", &csrf),
            ("aktion", "eingang"),
            ("version", &stale),
            ("datum", &today),
        ],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_error_at(
        &r,
        &format!("eingang-{}", doc.id),
        "Der Nachweis wurde inzwischen geändert. Bitte prüfen Sie den aktuellen Stand.",
    );

    // A waiver without reason: 400, the summary links to the reason.
    let r = sb.post(
        &w.action(&doc),
        &[
            ("csrf", &csrf),
            ("aktion", "verzichten"),
            ("version", &version),
            ("grund", "   "),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let grund = format!("grund-{}", doc.id);
    assert_error_at(&r, &grund, "Geben Sie einen Grund für den Verzicht an.");

    // A date that is none: 400, what was typed stays in the input.
    let r = sb.post(
        &w.action(&doc),
        &[
            ("csrf", &csrf),
            ("aktion", "eingang"),
            ("version", &version),
            ("datum", "gestern"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let field = format!("eingang-{}", doc.id);
    assert_error_at(
        &r,
        &field,
        "Bitte geben Sie ein Datum im Format TT.MM.JJJJ an, z. B. 15.01.2027.",
    );
    assert!(
        r.body
            .contains(&format!("id=\"{field}\" name=\"datum\" value=\"gestern\"")),
        "{}",
        r.body
    );

    // A day in the future (refused by the state machine): 400.
    let r = sb.post(
        &w.action(&doc),
        &[
            ("csrf", &csrf),
            ("aktion", "eingang"),
            ("version", &version),
            ("datum", "01.01.2999"),
        ],
    );
    assert_eq!(r.status, 400);
    assert_error_at(
        &r,
        &field,
        "Das Eingangsdatum darf nicht in der Zukunft liegen.",
    );

    // An action the state does not allow (Frist of an open document): 400.
    let r = sb.post(
        &w.action(&doc),
        &[
            ("csrf", &csrf),
            ("aktion", "frist"),
            ("version", &version),
            ("datum", "01.01.2999"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.title().starts_with("Fehler: "));
    assert!(r.body.contains("noch nicht angefordert"), "{}", r.body);

    // An unknown document: 404.
    let r = sb.post(
        &format!("{}/nachweise/999999", w.page()),
        &[
            ("csrf", &csrf),
            ("aktion", "eingang"),
            ("version", "1"),
            ("datum", &today),
        ],
    );
    assert_eq!(r.status, 404);
    assert_eq!(w.doc().await, doc, "nothing changed");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aufforderung_and_eingang_vermerken() {
    let w = World::start("wb-mw-letter").await;
    let mut sb = w.client(CASEWORKER);
    let csrf = sb.get(&w.page()).input("csrf");

    // Aufforderung erstellen: the letter, the document requested.
    let r = sb.post(&format!("{}/briefe", w.page()), &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap().to_string();
    assert!(to.ends_with("?meldung=aufforderung#briefe"), "{to}");
    let letters = w.store.letters_of(w.antrag).await.unwrap();
    assert_eq!(letters.len(), 1);
    let deadline = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(14))
        .unwrap();
    assert_eq!(letters[0].deadline, deadline);
    let doc = w.doc().await;
    assert_eq!(doc.state, DocState::Angefordert { deadline });
    let audit = w.store.audit_of(w.antrag).await.unwrap();
    for action in [Action::LetterCreated, Action::DocumentRequested] {
        assert!(
            audit
                .iter()
                .any(|a| a.actor == CASEWORKER && a.action == LoggedAction::Known(action)),
            "{action:?} audited"
        );
    }
    let page = sb.get(&to);
    assert!(page.body.contains("Aufforderung erstellt"));
    assert!(
        page.body.contains(&format!("id=\"frist-{}\"", doc.id)),
        "Frist verlängern offered"
    );

    // The PDF.
    let pdf = sb.get(&format!("{}/briefe/{}", w.page(), letters[0].id));
    assert_eq!(pdf.status, 200);
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert_eq!(
        pdf.header("content-disposition"),
        Some(
            format!(
                "attachment; filename=\"aufforderung-{}.pdf\"",
                letters[0].id
            )
            .as_str()
        )
    );
    assert!(pdf.raw.starts_with(b"%PDF"), "not a PDF");
    let text = pdf_text(w.env.dir.path(), &pdf.raw);
    assert!(text.contains("Ahmad Ibrahim"), "{text}");
    assert!(text.contains("Aufenthaltstitel"), "{text}");

    // Eingang vermerken: received today; audited; the follow-up record.
    let today = Utc::now().date_naive();
    let version = doc.version.to_string();
    let r = sb.post(
        &w.action(&doc),
        &[
            ("csrf", &csrf),
            ("aktion", "eingang"),
            ("version", &version),
            ("datum", &today.format("%d.%m.%Y").to_string()),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap();
    assert!(to.contains("?meldung=eingang-gemeldet#nachweis-"), "{to}");
    assert_eq!(
        w.doc().await.state,
        DocState::Eingegangen {
            on: today,
            via: Eingangsweg::Sachbearbeitung
        }
    );
    let audit = w.store.audit_of(w.antrag).await.unwrap();
    assert!(audit.iter().any(
        |a| a.actor == CASEWORKER && a.action == LoggedAction::Known(Action::DocumentReceived)
    ));
    let files: Vec<String> = std::fs::read_dir(&w.env.outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "the follow-up record: {files:?}");
    let page = sb.get(&w.page());
    assert!(
        page.body.contains("vermerkt durch Sachbearbeitung"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&format!("id=\"eingang-{}\"", doc.id)),
        "no more forms"
    );
    w.stop().await;
}

/// The workbench served in this process (so the test can move its clock),
/// on the test's store, with the accepted application and a case.
struct InProcess {
    env: TestEnv,
    store: Store,
    clock: Clock,
    port: u16,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    antrag: Uuid,
    case: Uuid,
}

impl InProcess {
    async fn start(name: &str) -> InProcess {
        let env = TestEnv::new(Db::Sqlite, name).await;
        let store = env.store().await;
        let pipeline = Arc::new(Pipeline::load(&Default::default()).unwrap());
        let antrag = Uuid::new_v4();
        let mut doc: Value = serde_json::from_str(VALID).unwrap();
        doc["antragId"] = Value::String(antrag.to_string());
        store_accepted(&store, &pipeline, antrag, &doc, DIENSTSTELLE).await;
        let case = Uuid::new_v4();
        let mut doc: Value = serde_json::from_str(FAULTY).unwrap();
        doc["antragId"] = Value::String(case.to_string());
        doc["jobcenter"]["dienststellennummer"] = Value::String(DIENSTSTELLE.into());
        store_rejected(&store, &pipeline, case, &doc, DIENSTSTELLE, None).await;
        let own = ["--rolle", "sachbearbeitung", "--dienststelle", DIENSTSTELLE];
        add_user(&env, CASEWORKER, PASSWORD, &own);
        let clock = Clock::system();
        let state = WorkbenchState {
            store: store.clone(),
            pipeline: Arc::new(FixedPipeline(pipeline)),
            records: RecordDelivery::Outbox(env.outbox.clone()),
            config: WebConfig {
                assets_dir: support::repo_root().join("crates/web/assets"),
                ..WebConfig::default()
            },
            mitwirkung: Default::default(),
            clock: clock.clone(),
            oidc: None,
        };
        let listener = allegro_web::bind("127.0.0.1:0", "workbench").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = allegro_web::workbench::router(state);
        let server = tokio::spawn(allegro_web::serve(listener, router, std::future::pending()));
        InProcess {
            env,
            store,
            clock,
            port,
            server,
            antrag,
            case,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn doc(&self) -> OwedRow {
        self.store.owed_of(self.antrag).await.unwrap().remove(0)
    }

    async fn stop(self) {
        self.server.abort();
        self.env.cleanup().await;
    }
}

/// Where the screenshot goes: docs/ with `ALLEGRO_BRIDGE_SCREENSHOTS=1`.
fn screenshot_path(env: &TestEnv) -> std::path::PathBuf {
    let dir = if std::env::var_os("ALLEGRO_BRIDGE_SCREENSHOTS").is_some() {
        support::repo_root().join("docs")
    } else {
        env.dir.path().to_path_buf()
    };
    dir.join("workbench-mitwirkung.png")
}

#[tokio::test(flavor = "multi_thread")]
async fn mitwirkung_in_the_browser_request_overdue_received() {
    let w = InProcess::start("wb-mw-browser").await;
    let driver = Chromedriver::start().await;
    let c = driver.session().await;
    c.goto(&w.url("/anmelden")).await.unwrap();
    browser::fill(&c, "#benutzername", CASEWORKER).await;
    browser::fill(&c, "#passwort", PASSWORD).await;
    browser::click_and_load(&c, "#anmelden").await;

    // /mitwirkung from the main navigation: both documents, still open.
    browser::click_and_load(&c, "nav a[href='/mitwirkung']").await;
    let rows = browser::text(&c, "#nachweise tbody").await;
    assert!(
        rows.contains("Noah Ibrahim") && rows.contains("Bedarfsgemeinschaft"),
        "{rows}"
    );
    browser::assert_accessible(&c, "Mitwirkung").await;

    // The application page; Aufforderung erstellen requests the document.
    let link = format!("a.antrag-link[href^='/antraege/{}']", w.antrag);
    browser::click_and_load(&c, &link).await;
    browser::assert_accessible(&c, "Antrag").await;
    browser::click_and_load(&c, "#aufforderung").await;
    let doc = w.doc().await;
    let anchor = format!("#nachweis-{}", doc.id);
    let deadline = w.clock.today().checked_add_days(Days::new(14)).unwrap();
    assert_eq!(doc.state, DocState::Angefordert { deadline });
    assert_eq!(
        browser::text(&c, &format!("{anchor} .status")).await,
        "angefordert"
    );
    assert!(
        browser::exists(&c, "a.brief-link").await,
        "the letter is listed"
    );

    // A waiver without reason: the error pattern, checked by axe too.
    browser::click_and_load(&c, &format!("#grund-{}-senden", doc.id)).await;
    assert!(c.title().await.unwrap().starts_with("Fehler: "));
    browser::assert_accessible(&c, "Antrag mit Eingabefehler").await;

    // 15 days later the request is overdue: first in the list, marked.
    w.clock.advance(chrono::Duration::days(15));
    c.goto(&w.url("/mitwirkung")).await.unwrap();
    let first = browser::text(&c, "#nachweise tbody tr:first-child").await;
    assert!(first.contains(&w.antrag.to_string()), "{first}");
    assert!(first.contains("überfällig"), "{first}");
    assert!(browser::exists(&c, "tr.nachweis--ueberfaellig .kern-badge--danger").await);
    let second = browser::text(&c, "#nachweise tbody tr:nth-child(2)").await;
    assert!(
        second.contains(&w.case.to_string()) && second.contains("offen"),
        "{second}"
    );
    browser::screenshot_top(&c, &screenshot_path(&w.env), 900).await;
    browser::assert_accessible(&c, "Mitwirkung mit überfälligem Nachweis").await;

    // Filtered to the overdue ones (codes in the address, no name).
    c.goto(&w.url("/mitwirkung?stand=ueberfaellig"))
        .await
        .unwrap();
    let rows = browser::text(&c, "#nachweise tbody").await;
    assert!(rows.contains(&w.antrag.to_string()) && !rows.contains(&w.case.to_string()));

    // Eingang vermerken with today's (moved) date, the default.
    browser::click_and_load(&c, &link).await;
    assert_eq!(
        browser::text(&c, &format!("{anchor} .status")).await,
        "überfällig"
    );
    browser::click_and_load(&c, &format!("#eingang-{}-senden", doc.id)).await;
    assert_eq!(
        browser::text(&c, &format!("{anchor} .status")).await,
        "eingegangen"
    );
    assert_eq!(
        w.doc().await.state,
        DocState::Eingegangen {
            on: w.clock.today(),
            via: Eingangsweg::Sachbearbeitung
        }
    );
    browser::assert_accessible(&c, "Antrag nach Eingang").await;
    c.goto(&w.url("/mitwirkung")).await.unwrap();
    let rows = browser::text(&c, "#nachweise tbody").await;
    assert!(
        !rows.contains(&w.antrag.to_string()),
        "no longer waited for: {rows}"
    );
    w.stop().await;
}
