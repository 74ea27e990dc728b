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
//! The browser run (axe-core, overdue after the clock moved) is
//! `workbench_browser::mitwirkung_*`.

use std::process::Command;

use allegro_testkit as support;

use allegro_core::mitwirkung::state::{DocState, Eingangsweg};
use allegro_core::pipeline::Pipeline;
use allegro_store::audit::{Action, LoggedAction};
use allegro_store::mitwirkung::OwedRow;
use allegro_store::Store;
use chrono::{Days, Utc};
use serde_json::Value;
use support::workbench::{add_user, start_web, store_accepted, Answer, Client, Web};
use support::{Db, TestEnv};
use uuid::Uuid;

const VALID: &str = include_str!("../../fixtures/contract/hauptantrag-gueltig.json");
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
    // A letter id under another (unknown) application: 404 too.
    assert_eq!(
        sb.get(&format!("/antraege/{}/briefe/{letter}", Uuid::new_v4()))
            .status,
        404
    );
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
