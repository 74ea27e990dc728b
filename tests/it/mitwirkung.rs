//! Mitwirkung end to end: the documents an application owes are tracked in
//! both databases and change only as the state machine allows (a second
//! change on the same version is refused); a *Nachreichung* is matched,
//! idempotent, and dead-lettered with its reason when it matches nothing;
//! a document that arrives after the import record reaches ALLEGRO as a
//! Nachweiseingang record valid against its XSD (xmllint); the request
//! letter is a PDF that poppler's `pdftotext` reads.

use allegro_testkit as support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use allegro_core::mitwirkung::state::{Change, DocState, Eingangsweg, Refused, StateCode};
use allegro_core::pipeline::{Message, Pipeline, PipelineConfig, Processed};
use allegro_daemon::deadletter::header_str;
use allegro_store::cases::Scope;
use allegro_store::mitwirkung::{
    ChangeError, ListState, NewNachreichung, OwedChange, OwedQuery, Received,
};
use allegro_store::{NewApplication, Store, Verdict};
use allegro_web::letters::{write_letter, MitwirkungSettings};
use chrono::{Days, NaiveDate, Utc};
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

/// The valid Hauptantrag without its Mietvertrag: it owes the Mietvertrag
/// (household) and the Aufenthaltstitel of person `k2`, and is accepted.
fn owing_two() -> Msg {
    let mut m = accepted();
    let mut v: Value = serde_json::from_slice(&m.body).unwrap();
    v["nachweise"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["art"] != "MIETVERTRAG");
    m.body = serde_json::to_vec(&v).unwrap();
    m
}

/// A Nachreichung body and its id.
fn nachreichung(antrag: Uuid, kind: &str, person: Option<&str>) -> (Uuid, Vec<u8>) {
    let id = Uuid::new_v4();
    let mut nachweis = json!({ "art": kind });
    if let Some(p) = person {
        nachweis["personId"] = json!(p);
    }
    let body = json!({
        "typ": "NACHREICHUNG", "version": "1.0", "nachreichungId": id.to_string(),
        "antragId": antrag.to_string(), "nachweis": nachweis,
        "eingegangenAm": "2026-12-03T09:15:00+01:00",
        "datei": { "sha256": "ab".repeat(32), "referenz": "portal:4711" }
    });
    (id, serde_json::to_vec(&body).unwrap())
}

fn pipeline() -> Pipeline {
    let root = repo_root();
    Pipeline::load(&PipelineConfig {
        mappings_dir: root.join("mappings"),
        schemas_dir: root.join("schemas"),
        ..Default::default()
    })
    .unwrap()
}

/// The row the daemon stores for `msg`.
fn row(p: &Pipeline, msg: &Msg) -> NewApplication {
    let processed = p.process(&msg.body, None);
    let Processed::Accepted {
        application,
        record,
    } = processed
    else {
        panic!("expected accepted: {processed:?}");
    };
    NewApplication {
        antrag_id: application.antrag_id,
        body: msg.body.clone(),
        body_sha256: allegro_daemon::deadletter::sha256_hex(&msg.body),
        verdict: Verdict::Accepted(record),
        mapping: application.mapping.clone(),
        findings_json: serde_json::to_string(&application.findings).unwrap(),
        dienststellennummer: application.jobcenter.clone(),
        message_id: None,
        created_at: Utc::now(),
        applicant: None,
        error_rules: String::new(),
        owed: application.owed.clone(),
    }
}

/// xmllint's verdict on `xml` against the Nachweiseingang XSD.
fn assert_valid_follow_up(xml: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.xml");
    std::fs::write(&file, xml).unwrap();
    let xsd = repo_root().join("schemas/allegro-nachweiseingang-1.0.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("xmllint (apt-get install libxml2-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ymd(d: NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

async fn documents_in_the_store(db: Db) {
    let env = TestEnv::new(db, "mitwirkung").await;
    let store: Store = env.store().await;
    let p = pipeline();
    let msg = owing_two();
    let id = msg.antrag_id.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&[row(&p, &msg)]).await.unwrap();
    tx.commit().await.unwrap();

    // Two documents: the household's Mietvertrag, k2's Aufenthaltstitel.
    let owed = store.owed_of(id).await.unwrap();
    let mut kinds: Vec<(String, Option<String>)> = owed
        .iter()
        .map(|d| (d.kind.clone(), d.person_id.clone()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("AUFENTHALTSTITEL".to_string(), Some("k2".to_string())),
            ("MIETVERTRAG".to_string(), None)
        ]
    );
    assert!(owed.iter().all(|d| d.state == DocState::Offen));
    assert_eq!(store.letters_due(&Scope::All).await.unwrap(), vec![id]);

    // The letter requests both, with the configured deadline.
    let settings = MitwirkungSettings::default();
    let now = Utc::now();
    let today = now.date_naive();
    let written = write_letter(&store, &p, &settings, id, "sb1", now)
        .await
        .unwrap();
    let deadline = today.checked_add_days(Days::new(14)).unwrap();
    assert_eq!((written.documents, written.deadline), (2, deadline));
    let owed = store.owed_of(id).await.unwrap();
    assert!(owed
        .iter()
        .all(|d| d.state == DocState::Angefordert { deadline } && d.requested_at.is_some()));
    assert!(store.letters_due(&Scope::All).await.unwrap().is_empty());
    let letters = store.letters_of(id).await.unwrap();
    assert_eq!(letters.len(), 1);
    let (of, pdf) = store.letter_pdf(letters[0].id).await.unwrap().unwrap();
    assert_eq!(of, id);
    assert!(pdf.starts_with(b"%PDF"));
    let audit = store.audit_of(id).await.unwrap();
    let requested = audit
        .iter()
        .filter(|a| a.action == "document_requested")
        .count();
    assert_eq!(requested, 2);
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "letter_created")
            .count(),
        1
    );

    // Overdue once the deadline has passed; first in the list.
    let later = deadline.checked_add_days(Days::new(1)).unwrap();
    let query = |state, today| OwedQuery {
        scope: Scope::Dienststellen(vec![owed[0].dienststelle.clone().unwrap()]),
        kind: None,
        state,
        today,
        offset: 0,
        limit: 10,
    };
    let (over, _) = store
        .owed_list(&query(Some(ListState::Ueberfaellig), later))
        .await
        .unwrap();
    assert_eq!(over.len(), 2);
    let (none, _) = store
        .owed_list(&query(Some(ListState::Ueberfaellig), today))
        .await
        .unwrap();
    assert!(none.is_empty());
    let other = OwedQuery {
        scope: Scope::Dienststellen(vec!["99999".into()]),
        ..query(None, today)
    };
    assert!(store.owed_list(&other).await.unwrap().0.is_empty());
    let stats = store.owed_stats(later).await.unwrap();
    assert!(stats.oldest_overdue_request.is_some());

    // The Mietvertrag: a later deadline, then two caseworkers at once on
    // the same version: the first wins, the second is refused.
    let miet = owed
        .iter()
        .find(|d| d.kind == "MIETVERTRAG")
        .unwrap()
        .clone();
    let scope = Scope::All;
    let extend = Change::FristVerlaengern {
        deadline: deadline.checked_add_days(Days::new(7)).unwrap(),
    };
    let r = store
        .change_owed(
            &OwedChange {
                id: miet.id,
                version: miet.version,
                change: &extend,
                actor: "sb1",
                scope: &scope,
            },
            today,
            now,
        )
        .await
        .unwrap();
    assert_eq!(r, None, "not received: no follow-up record");
    let v = miet.version + 1;
    let waive = Change::Verzichten {
        reason: "liegt der Akte bei".into(),
        by: "sb1".into(),
    };
    let got = Change::Eingang {
        on: today,
        via: Eingangsweg::Sachbearbeitung,
    };
    store
        .change_owed(
            &OwedChange {
                id: miet.id,
                version: v,
                change: &waive,
                actor: "sb1",
                scope: &scope,
            },
            today,
            now,
        )
        .await
        .unwrap();
    let second = store
        .change_owed(
            &OwedChange {
                id: miet.id,
                version: v,
                change: &got,
                actor: "sb2",
                scope: &scope,
            },
            today,
            now,
        )
        .await;
    assert!(matches!(second, Err(ChangeError::Stale)), "{second:?}");
    let again = store
        .change_owed(
            &OwedChange {
                id: miet.id,
                version: v + 1,
                change: &extend,
                actor: "sb2",
                scope: &scope,
            },
            today,
            now,
        )
        .await;
    assert!(
        matches!(
            again,
            Err(ChangeError::Refused(Refused::NotNow(StateCode::Verzichtet)))
        ),
        "{again:?}"
    );
    let foreign = Scope::Dienststellen(vec!["99999".into()]);
    let hidden = store
        .change_owed(
            &OwedChange {
                id: miet.id,
                version: v + 1,
                change: &got,
                actor: "sb2",
                scope: &foreign,
            },
            today,
            now,
        )
        .await;
    assert!(matches!(hidden, Err(ChangeError::NotFound)), "{hidden:?}");

    // A Nachreichung of k2's Aufenthaltstitel: matched, received, and —
    // the record being written — a follow-up record for the outbox.
    let (_, body) = nachreichung(id, "AUFENTHALTSTITEL", Some("k2"));
    let read = |body: &[u8]| match p.receive(body, None) {
        Message::Nachreichung(n) => n,
        other => panic!("not a Nachreichung: {other:?}"),
    };
    let n = read(&body);
    let sha = allegro_daemon::deadletter::sha256_hex(&body);
    let mut tx = store.begin().await.unwrap();
    let new = [NewNachreichung {
        nachreichung: &n,
        body_sha256: &sha,
    }];
    let r = tx.receive_nachreichungen(&new, now).await.unwrap();
    tx.commit().await.unwrap();
    let [Received::Matched {
        follow_up: Some(follow_up),
        ..
    }] = r.as_slice()
    else {
        panic!("{r:?}");
    };
    assert_valid_follow_up(&follow_up.xml);
    let xml = String::from_utf8(follow_up.xml.clone()).unwrap();
    assert!(
        xml.contains(r#"art="AUFENTHALTSTITEL" personId="k2""#),
        "{xml}"
    );
    assert!(
        xml.contains("<EingegangenAm>2026-12-03</EingegangenAm>"),
        "{xml}"
    );
    let pending = store.pending_records(100).await.unwrap();
    assert!(pending.iter().any(|r| r.antrag_id == follow_up.antrag_id
        && r.file_name.starts_with(&format!("{id}-nachweis-"))));
    let titel = store
        .owed_of(id)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.kind == "AUFENTHALTSTITEL")
        .unwrap();
    let received = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    assert_eq!(
        titel.state,
        DocState::Eingegangen {
            on: received,
            via: Eingangsweg::Nachreichung
        }
    );
    assert_eq!(titel.file_ref.as_deref(), Some("portal:4711"));

    // The same again changes nothing; the same id with another body is a
    // conflict; an unknown application and a kind not owed match nothing.
    let mut other_body: Value = serde_json::from_slice(&body).unwrap();
    other_body["eingegangenAm"] = json!("2026-12-04T09:00:00+01:00");
    let other_body = serde_json::to_vec(&other_body).unwrap();
    let other_n = read(&other_body);
    let other_sha = allegro_daemon::deadletter::sha256_hex(&other_body);
    let (_, unknown) = nachreichung(Uuid::new_v4(), "MIETVERTRAG", None);
    let unknown_n = read(&unknown);
    let (_, not_owed) = nachreichung(id, "LOHNABRECHNUNG", Some("p1"));
    let not_owed_n = read(&not_owed);
    let mut tx = store.begin().await.unwrap();
    let r = tx
        .receive_nachreichungen(
            &[
                NewNachreichung {
                    nachreichung: &n,
                    body_sha256: &sha,
                },
                NewNachreichung {
                    nachreichung: &other_n,
                    body_sha256: &other_sha,
                },
                NewNachreichung {
                    nachreichung: &unknown_n,
                    body_sha256: "x",
                },
                NewNachreichung {
                    nachreichung: &not_owed_n,
                    body_sha256: "y",
                },
            ],
            now,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        r,
        [
            Received::Duplicate,
            Received::Conflict,
            Received::UnknownApplication,
            Received::NotOwed
        ]
    );
    let after = store.owed_of(id).await.unwrap();
    assert_eq!(
        after.iter().find(|d| d.kind == "AUFENTHALTSTITEL").unwrap(),
        &titel
    );
    store.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn documents_owed_in_sqlite() {
    documents_in_the_store(Db::Sqlite).await;
}

#[tokio::test]
async fn documents_owed_in_postgres() {
    documents_in_the_store(Db::Postgres).await;
}

/// Through the real daemon and RabbitMQ.
#[tokio::test]
async fn a_nachreichung_through_the_daemon() {
    let env = TestEnv::new(Db::Postgres, "nachreichung").await;
    env.declare().await;
    let mut daemon = env.spawn_daemon();
    let publisher = Publisher::new(&env).await;
    let store = env.store().await;
    let msg = owing_two();
    let id = msg.antrag_id.unwrap();
    publisher
        .publish_all(&env.intake, std::slice::from_ref(&msg))
        .await;
    env.wait_for(
        "the application's documents",
        Duration::from_secs(30),
        || async { store.owed_of(id).await.unwrap().len() == 2 },
    )
    .await;

    let (nid, body) = nachreichung(id, "AUFENTHALTSTITEL", Some("k2"));
    let props = lapin::BasicProperties::default().with_message_id(nid.to_string().into());
    publisher
        .publish_with(&env.intake, &body, props.clone())
        .await;
    let received = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .owed_of(id)
                .await
                .unwrap()
                .iter()
                .any(|d| d.state.code() == StateCode::Eingegangen)
        }
    };
    env.wait_for("the document received", Duration::from_secs(30), || {
        received(&store)
    })
    .await;
    let follow_ups = |dir: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| Some(e.ok()?.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&format!("{id}-nachweis-")))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    env.wait_for(
        "the Nachweiseingang file",
        Duration::from_secs(30),
        || async { follow_ups(&env.outbox).len() == 1 },
    )
    .await;
    let file = &follow_ups(&env.outbox)[0];
    assert_valid_follow_up(&std::fs::read(file).unwrap());
    assert!(env.outbox.join(format!("{id}.xml")).exists());

    // The same Nachreichung again changes nothing; one for an unknown
    // application is dead-lettered with its reason.
    publisher.publish_with(&env.intake, &body, props).await;
    let stranger = Uuid::new_v4();
    let (_, unknown) = nachreichung(stranger, "MIETVERTRAG", None);
    publisher
        .publish_with(&env.intake, &unknown, lapin::BasicProperties::default())
        .await;
    env.wait_for("the DLQ", Duration::from_secs(30), || async {
        env.queue_len(&env.dlq).await == 1 && env.queue_len(&env.intake).await == 0
    })
    .await;
    let dead = env.take_dlq().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        header_str(&dead[0].0, "x-bridge-reason").as_deref(),
        Some("unknown_application")
    );
    assert_eq!(
        header_str(&dead[0].0, "x-bridge-antrag-id").as_deref(),
        Some(stranger.to_string().as_str())
    );
    assert_eq!(dead[0].1, unknown, "the body travels untouched");
    assert_eq!(follow_ups(&env.outbox).len(), 1, "no second follow-up");
    let audit = store.audit_of(id).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "document_received")
            .count(),
        1,
        "the duplicate was not logged as a new arrival"
    );
    daemon.sigterm();
    daemon.wait_exit(Duration::from_secs(30));
    store.close().await;
    env.cleanup().await;
}

/// The letter from the command line: stored, written out, and read back by
/// an independent tool (poppler's pdftotext).
#[tokio::test]
async fn letters_due_from_the_command_line() {
    let env = TestEnv::new(Db::Sqlite, "briefe").await;
    let store = env.store().await;
    let p = pipeline();
    let msg = owing_two();
    let id = msg.antrag_id.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&[row(&p, &msg)]).await.unwrap();
    tx.commit().await.unwrap();
    let out_dir = env.dir.path().join("briefe");
    let out = env.cli(&[
        "mitwirkung",
        "briefe",
        "--faellig",
        "--ausgabe",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(14))
        .unwrap();
    assert!(
        stdout.contains(&format!("{id}\t2 Nachweis(e)\tFrist {}", ymd(deadline))),
        "{stdout}"
    );
    let pdf = std::fs::read_dir(&out_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext (apt-get install poppler-utils)");
    let text = String::from_utf8(text.stdout).unwrap();
    let doc: Value = serde_json::from_slice(&msg.body).unwrap();
    let applicant = format!(
        "{} {}",
        doc["antragsteller"]["vornamen"].as_str().unwrap(),
        doc["antragsteller"]["familienname"].as_str().unwrap()
    );
    let k2 = &doc["weiterePersonen"][1];
    let child = format!(
        "{} {}",
        k2["vornamen"].as_str().unwrap(),
        k2["familienname"].as_str().unwrap()
    );
    for needle in [
        applicant.as_str(),
        child.as_str(),
        "Mietvertrag",
        "Aufenthaltstitel",
        "Bedarfsgemeinschaft",
        &ymd(deadline),
        "Rechtsfolgenbelehrung",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} not in the letter:\n{text}"
        );
    }
    // Nothing due any more.
    let out = env.cli(&["mitwirkung", "briefe", "--faellig"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    store.close().await;
    env.cleanup().await;
}

/// The contract's example Nachreichung (§8) is read as one, for the
/// contract's example application, and its follow-up follows the XSD.
#[test]
fn the_contract_example_is_a_nachreichung() {
    let path = repo_root().join("fixtures/contract/1.1/nachreichung-aufenthaltstitel.json");
    let body = std::fs::read(path).unwrap();
    let Message::Nachreichung(n) = pipeline().receive(&body, None) else {
        panic!("not read as a Nachreichung");
    };
    let app = example("hauptantrag-gueltig.json");
    assert_eq!(n.antrag_id.to_string(), app["antragId"].as_str().unwrap());
    assert_eq!(
        (n.kind.as_str(), n.person_id.as_deref()),
        ("AUFENTHALTSTITEL", Some("k2"))
    );
    // An application with a `typ` of its own is still an application.
    let mut other = app.clone();
    other["typ"] = json!("ANTRAG");
    let Message::Application(p) = pipeline().receive(&serde_json::to_vec(&other).unwrap(), None)
    else {
        panic!("an application");
    };
    assert!(p.application().is_some());
}
