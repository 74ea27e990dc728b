//! The workbench's case actions at the HTTP level, against the real
//! `allegro-bridge web` and a real database (SQLite): the contract's faulty
//! example stored as a case (as the daemon stores it), its IBAN, PLZ and
//! household size corrected through the field form, "Prüfen", "Freigeben",
//! and the record file in the outbox: valid against the XSD, with the
//! caseworker and the three corrections in its provenance. Refused input
//! (unknown pointer, wrong type, oversized value, a pointer into another
//! case, a stale version) gets a German message and changes nothing; the
//! administration pages answer admins only; `recheck` releases as `system`.
//! (The browser run of the same story is tests/it/workbench_browser.rs.)

use std::path::Path;
use std::process::Command;

use allegro_testkit as support;

use allegro_core::pipeline::Pipeline;
use allegro_store::Store;
use serde_json::Value;
use support::workbench::{add_user, start_web, Client};
use support::{Db, TestEnv};
use uuid::Uuid;

const FAULTY: &str = include_str!("../../fixtures/contract/hauptantrag-mit-fehlern.json");
const VALID: &str = include_str!("../../fixtures/contract/hauptantrag-gueltig.json");
const PASSWORD: &str = "Sehr-geheim-2026";

/// Logs `name` in with the test password; the login must succeed.
fn login(c: &mut Client, name: &str) {
    let r = c.login(name, PASSWORD);
    assert_eq!(r.status, 303, "login of {name}: {}", r.body);
}

/// Stores `body` (with a fresh antragId and Dienststelle) as the daemon
/// stores a rejected application.
async fn store_case(store: &Store, pipeline: &Pipeline, body: &str, dst: &str) -> Uuid {
    let id = Uuid::new_v4();
    let mut doc: Value = serde_json::from_str(body).unwrap();
    doc["antragId"] = Value::String(id.to_string());
    doc["jobcenter"]["dienststellennummer"] = Value::String(dst.into());
    support::workbench::store_rejected(store, pipeline, id, &doc, dst, None).await;
    id
}

/// The record validates against the XSD its root names (xmllint, as in
/// tests/it/record_xsd.rs).
fn assert_valid_record(file: &Path) {
    let xml = std::fs::read_to_string(file).unwrap();
    let v = xml
        .split("<AllegroImport ")
        .nth(1)
        .and_then(|r| r.split("version=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .expect("root with version");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(format!("schemas/allegro-import-{v}.xsd"))
        .arg(file)
        .current_dir(support::repo_root())
        .output()
        .expect("xmllint (Debian package libxml2-utils) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `id="…"` of a page occurs once (links and labels rely on it).
fn assert_unique_ids(html: &str) {
    let mut seen = std::collections::HashSet::new();
    for part in html.split(" id=\"").skip(1) {
        let id = &part[..part.find('"').unwrap()];
        assert!(seen.insert(id.to_string()), "id {id:?} occurs twice");
    }
    assert!(seen.contains("feld-bankverbindung-iban"));
}

fn path(id: Uuid, action: &str) -> String {
    format!("/faelle/{id}/{action}")
}

fn field(id: Uuid, pointer: &str) -> String {
    format!(
        "/faelle/{id}/feld?{}",
        serde_urlencoded::to_string([("zeiger", pointer)]).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn caseworker_corrects_checks_and_releases_a_case() {
    let env = TestEnv::new(Db::Sqlite, "wb-cases").await;
    let store = env.store().await;
    let pipeline = Pipeline::load(&Default::default()).unwrap();
    let id = store_case(&store, &pipeline, FAULTY, "81101").await;
    let other = store_case(&store, &pipeline, FAULTY, "99999").await;
    let caseworker = ["--rolle", "sachbearbeitung", "--dienststelle", "81101"];
    add_user(&env, "sb.meier", PASSWORD, &caseworker);
    add_user(&env, "admin", PASSWORD, &["--rolle", "administration"]);
    let web = start_web(&env);
    let port = web.port;
    let mut sb = Client::new(port);
    login(&mut sb, "sb.meier");

    // The detail page: the IBAN error beside the IBAN, in the summary.
    let page = sb.get(&format!("/faelle/{id}"));
    assert_eq!(page.status, 200, "{}", page.body);
    let row = page
        .body
        .split("id=\"feld-bankverbindung-iban\"")
        .nth(1)
        .expect("the IBAN row")
        .split("</div>")
        .next()
        .unwrap();
    assert!(row.contains("class=\"befund"), "{row}");
    assert!(row.contains("IBAN"), "{row}");
    assert!(page.body.contains("id=\"fehlerliste\""));
    assert!(page.body.contains("href=\"#feld-bankverbindung-iban-neu\""));
    assert!(
        page.body.contains("<strong>Mietvertrag</strong>"),
        "documents owed are listed"
    );
    assert_unique_ids(&page.body);
    let csrf = page.input("csrf");
    let version = || async {
        let c = store.load_case(id).await.unwrap().unwrap();
        (c.version, c.current_body().to_vec())
    };
    assert_eq!(version().await.0, 1);

    // Freigeben with errors left: refused, nothing changed.
    let r = sb.post(&path(id, "freigeben"), &[("csrf", &csrf), ("version", "1")]);
    assert_eq!(r.status, 409);
    assert!(r.body.contains("Freigabe nicht möglich"), "{}", r.body);
    assert_eq!(version().await.0, 1);

    // Refused edits: German message, nothing changed.
    let before = version().await;
    let r = sb.get(&field(id, "/bankverbindung/konto"));
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("gibt es im Antragsformular nicht"),
        "{}",
        r.body
    );
    let r = sb.post(
        &field(id, "/bankverbindung/konto"),
        &[("csrf", &csrf), ("version", "1"), ("wert", "x")],
    );
    assert_eq!(r.status, 400);
    let r = sb.post(
        &field(id, "/unterkunft/personenImHaushalt"),
        &[("csrf", &csrf), ("version", "1"), ("wert", "fünf")],
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("<title>Fehler: "), "error title");
    assert!(r.body.contains("ganze Zahl"), "{}", r.body);
    assert!(r.body.contains("value=\"fünf\""), "the input is kept");
    assert!(r
        .body
        .contains("aria-describedby=\"wert-hinweis wert-fehler\""));
    let huge = "9".repeat(5000);
    let r = sb.post(
        &field(id, "/bankverbindung/iban"),
        &[("csrf", &csrf), ("version", "1"), ("wert", &huge)],
    );
    assert_eq!(r.status, 422, "{:?} {}", r.headers, r.body);
    assert!(r.body.contains("zu lang"), "{}", r.body);
    // A pointer into another Dienststelle's case: 404, as if it did not exist.
    let r = sb.post(
        &field(other, "/bankverbindung/iban"),
        &[
            ("csrf", &csrf),
            ("version", "1"),
            ("wert", "DE89370400440532013000"),
        ],
    );
    assert_eq!(r.status, 404);
    assert_eq!(store.load_case(other).await.unwrap().unwrap().version, 1);
    let r = sb.post(
        &field(id, "/antragId"),
        &[
            ("csrf", &csrf),
            ("version", "1"),
            ("wert", &other.to_string()),
        ],
    );
    assert_eq!(r.status, 400);
    // No page and no save for a place the application cannot have: a list
    // position with a leading zero (not RFC 6901), one past the end, a
    // group that holds the read-only Dienststelle; a control character in
    // a name.
    for (p, says) in [
        ("/einkommen/01/art", "Die Feldangabe ist ungültig."),
        (
            "/einkommen/99/art",
            "Den Eintrag, zu dem dieses Feld gehört, gibt es",
        ),
        (
            "/jobcenter",
            "Diese Gruppe enthält Angaben, die in der Klärung nicht",
        ),
    ] {
        let r = sb.get(&field(id, p));
        assert_eq!(r.status, 400, "{p}");
        assert!(r.body.contains(says), "{p}: {}", r.body);
        let form = [
            ("csrf", &csrf[..]),
            ("version", "1"),
            ("wert", "KINDERGELD"),
        ];
        let r = sb.post(&field(id, p), &form);
        assert_eq!(r.status, 400, "{p}");
        assert!(r.body.contains(says), "{p}: {}", r.body);
    }
    let r = sb.post(
        &field(id, "/antragsteller/vornamen"),
        &[("csrf", &csrf), ("version", "1"), ("wert", "Anna\u{1b}[2J")],
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("Steuerzeichen"), "{}", r.body);
    assert_eq!(version().await, before, "no refused edit changed the case");

    // The three corrections.
    for (i, (p, v)) in [
        ("/bankverbindung/iban", "DE89 3704 0044 0532 0130 00"),
        ("/antragsteller/anschrift/plz", "39104"),
        ("/unterkunft/personenImHaushalt", "5"),
    ]
    .into_iter()
    .enumerate()
    {
        let edit = sb.get(&field(id, p));
        assert_eq!(edit.status, 200, "{}", edit.body);
        assert!(edit.body.contains("id=\"wert\"") && edit.body.contains("id=\"speichern\""));
        let ver = (i + 1).to_string();
        assert_eq!(edit.input("version"), ver);
        let r = sb.post(
            &field(id, p),
            &[
                ("csrf", &csrf),
                ("version", &ver),
                ("wert", v),
                ("aktion", "speichern"),
            ],
        );
        assert_eq!(r.status, 303, "{p}: {}", r.body);
    }
    assert_eq!(version().await.0, 4);

    // A second window still at version 3: refused, nothing overwritten.
    let before = version().await;
    let r = sb.post(
        &field(id, "/antragsteller/anschrift/plz"),
        &[("csrf", &csrf), ("version", "3"), ("wert", "12345")],
    );
    assert_eq!(r.status, 409);
    assert!(r.body.contains("zwischenzeitlich geändert"), "{}", r.body);
    assert_eq!(version().await, before);
    let r = sb.post(&path(id, "pruefen"), &[("csrf", &csrf), ("version", "3")]);
    assert_eq!(r.status, 409);
    assert!(r.body.contains("zwischenzeitlich geändert"));

    // Prüfen: no error left.
    let r = sb.post(&path(id, "pruefen"), &[("csrf", &csrf), ("version", "4")]);
    assert_eq!(r.status, 303);
    let page = sb.get(r.header("location").unwrap());
    assert!(!page.body.contains("id=\"fehlerliste\""), "{}", page.body);
    assert!(page.body.contains("kein Fehler mehr"));
    assert!(page.body.contains("id=\"freigeben\""));

    // Freigeben: the record file, valid, with the corrections.
    let r = sb.post(&path(id, "freigeben"), &[("csrf", &csrf), ("version", "5")]);
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap().to_string();
    assert!(to.ends_with("?meldung=freigegeben"), "{to}");
    assert!(sb
        .get(&to)
        .body
        .contains("Der Importdatensatz wurde geschrieben."));
    // (With the AMQP sink configured the release hands the record over.)
    let handed = sb.get(&format!("/faelle/{id}?meldung=freigegeben-uebergabe"));
    assert!(handed
        .body
        .contains("gibt ihn in Kürze an die angeschlossenen Systeme weiter"));
    let file = env.outbox.join(format!("{id}.xml"));
    assert_valid_record(&file);
    let xml = std::fs::read_to_string(&file).unwrap();
    assert_eq!(xml.matches("<Korrektur ").count(), 3, "{xml}");
    assert_eq!(xml.matches("durch=\"sb.meier\"").count(), 3);
    for p in [
        "/bankverbindung/iban",
        "/antragsteller/anschrift/plz",
        "/unterkunft/personenImHaushalt",
    ] {
        assert!(xml.contains(&format!("feld=\"{p}\"")), "{p}");
    }
    assert!(xml.contains("von=\"0\" nach=\"5\""));
    let case = store.load_case(id).await.unwrap().unwrap();
    assert_eq!(case.status, "released");
    assert!(store.pending_records(10).await.unwrap().is_empty());
    // Released: no more changes.
    let r = sb.post(&path(id, "freigeben"), &[("csrf", &csrf), ("version", "6")]);
    assert_eq!(r.status, 409);

    // The case's audit trail is on its page.
    let page = sb.get(&format!("/faelle/{id}"));
    assert!(page.body.contains("Angabe geändert") && page.body.contains("freigegeben"));
    let actions: Vec<String> = store
        .audit_of(id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action.to_string())
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "edit").count(), 3);
    assert!(actions.contains(&"view".to_string()) && actions.contains(&"release".to_string()));

    // Administration pages: admins only.
    assert_eq!(sb.get("/verwaltung/protokoll").status, 404);
    assert_eq!(sb.get("/verwaltung/dead-letters").status, 404);
    let mut admin = Client::new(port);
    login(&mut admin, "admin");
    let p = admin.get("/verwaltung/protokoll");
    assert_eq!(p.status, 200);
    assert!(p.body.contains("sb.meier") && p.body.contains(&id.to_string()));
    // The dead-letter page says what a reason means in German; the
    // English technical detail stays with `dlq show`.
    let mut tx = store.begin().await.unwrap();
    tx.insert_dead_letters(&[allegro_store::NewDeadLetter {
        dedup_key: "wb-dl-1".into(),
        antrag_id: None,
        reason: "bad_antrag_id",
        detail: "antragId is not a UUID (36 bytes)".into(),
        body_sha256: "00".into(),
        body_bytes: 120,
        first_seen: chrono::Utc::now(),
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let dl = admin.get("/verwaltung/dead-letters");
    assert_eq!(dl.status, 200);
    assert!(dl.body.contains("keine gültige UUID"), "{}", dl.body);
    assert!(!dl.body.contains("is not a UUID"), "{}", dl.body);

    // Re-check: the dry run counts, the run releases as `system`.
    let old = store_case(&store, &pipeline, VALID, "81101").await;
    let page = admin.get("/verwaltung/nachpruefung");
    let acsrf = page.input("csrf");
    let r = admin.post(
        "/verwaltung/nachpruefung",
        &[("csrf", &acsrf), ("aktion", "probelauf")],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("ALTE-REGEL"), "{}", r.body);
    assert_eq!(store.load_case(old).await.unwrap().unwrap().status, "open");
    let out = env.cli(&["recheck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("released:               1"), "{text}");
    assert_eq!(
        store.load_case(old).await.unwrap().unwrap().status,
        "released"
    );
    assert!(env.outbox.join(format!("{old}.xml")).exists());
    let a = store.audit_of(old).await.unwrap();
    assert!(a
        .iter()
        .any(|a| a.actor == "system" && a.action == "recheck_release"));

    store.close().await;
    env.cleanup().await;
}

/// The form „Fehler beheben“ over HTTP: a value that still fails its check
/// is handed back in its input with the error beside it and is not saved;
/// the values that pass are saved and the page says so; once all pass, one
/// redirect to the case with „Alle Fehler behoben“.
#[tokio::test(flavor = "multi_thread")]
async fn the_fix_form_saves_only_what_passes() {
    let env = TestEnv::new(Db::Sqlite, "wb-fix").await;
    let store = env.store().await;
    let pipeline = Pipeline::load(&Default::default()).unwrap();
    let id = store_case(&store, &pipeline, FAULTY, "81101").await;
    add_user(
        &env,
        "sb.fix",
        PASSWORD,
        &["--rolle", "sachbearbeitung", "--dienststelle", "81101"],
    );
    let web = start_web(&env);
    let mut sb = Client::new(web.port);
    login(&mut sb, "sb.fix");
    let page = sb.get(&format!("/faelle/{id}"));
    let csrf = page.input("csrf");
    for input in [
        "wert:/bankverbindung/iban",
        "wert:/antragsteller/anschrift/plz",
        "wert:/unterkunft/personenImHaushalt",
    ] {
        assert!(page.body.contains(&format!("name=\"{input}\"")), "{input}");
    }
    let fix = |plz: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("version", String::new()),
            (
                "wert:/bankverbindung/iban",
                "DE89 3704 0044 0532 0130 00".to_string(),
            ),
            ("wert:/antragsteller/anschrift/plz", plz.to_string()),
            ("wert:/unterkunft/personenImHaushalt", "5".to_string()),
        ]
    };
    let send = |sb: &mut Client, mut form: Vec<(&str, String)>, version: i32| {
        form[1].1 = version.to_string();
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sb.post(&format!("/faelle/{id}/beheben"), &pairs)
    };
    // The PLZ still has four digits: not saved, kept in its input with the
    // error; the IBAN and the household size are saved, and the page says so.
    let r = send(&mut sb, fix("3910"), 1);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.title().starts_with("Fehler: "), "{}", r.title());
    assert!(r.body.contains("2 Angabe(n) gespeichert"), "{}", r.body);
    assert!(!r.body.contains("Änderung gespeichert"));
    assert!(r.body.contains("value=\"3910\""));
    assert!(r
        .body
        .contains("href=\"#feld-antragsteller-anschrift-plz-neu\""));
    let case = store.load_case(id).await.unwrap().unwrap();
    assert_eq!(case.version, 2, "one version step for the two kept values");
    let doc: Value = serde_json::from_slice(case.current_body()).unwrap();
    assert_eq!(
        doc["antragsteller"]["anschrift"]["plz"], "7545",
        "the failing PLZ is not saved"
    );
    assert_eq!(doc["unterkunft"]["personenImHaushalt"], 5);
    let errors: Vec<&str> = case
        .findings
        .iter()
        .filter(|f| f.is_error())
        .map(|f| f.rule.as_str())
        .collect();
    assert_eq!(errors, ["PLZ-FORMAT"]);
    // A stale version changes nothing.
    let r = send(&mut sb, fix("39104"), 1);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(store.load_case(id).await.unwrap().unwrap().version, 2);
    // Now right: saved, one redirect, nothing left.
    let r = send(&mut sb, fix("39104"), 2);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("/faelle/{id}?meldung=behoben").as_str())
    );
    let page = sb.get(&format!("/faelle/{id}?meldung=behoben"));
    assert!(page.body.contains("Alle Fehler behoben"), "{}", page.body);
    assert!(
        !page.body.contains("id=\"beheben\""),
        "no form when nothing is wrong"
    );
    let case = store.load_case(id).await.unwrap().unwrap();
    assert!(!case.findings.iter().any(|f| f.is_error()));
    assert_eq!(case.corrections.len(), 3);
    drop(web);
    env.cleanup().await;
}
