//! The workbench's case operations in the store, against SQLite and
//! PostgreSQL: optimistic locking (the second writer gets a conflict and
//! nothing is overwritten), defer, close, the release transaction (record
//! row + outbox row + status + version + audit together) and its outbox
//! file, and the re-check (dry run changes nothing; the run releases the
//! passing cases as `system`).

use std::sync::Arc;

use allegro_testkit as support;

use allegro_core::casework::{self, EditOp};
use allegro_core::pipeline::Pipeline;
use allegro_store::audit::{Action, NewAudit};
use allegro_store::cases::{CaseDraft, CaseEnd, CaseState, CaseWriteError};
use allegro_store::release::{self, RecordDelivery, RecordFile, ReleaseOutcome};
use allegro_store::Store;
use chrono::{NaiveDate, Utc};
use serde_json::Value;
use support::{Db, TestEnv};
use uuid::Uuid;

const FAULTY: &str = include_str!("../../fixtures/contract/hauptantrag-mit-fehlern.json");
const VALID: &str = include_str!("../../fixtures/contract/hauptantrag-gueltig.json");

/// `body` with a fresh antragId, stored as a case with the pipeline's
/// findings (also for a body that passes: a case from an older mapping set).
async fn store_case(store: &Store, pipeline: &Pipeline, body: &str) -> Uuid {
    let id = Uuid::new_v4();
    let mut doc: Value = serde_json::from_str(body).unwrap();
    doc["antragId"] = Value::String(id.to_string());
    support::workbench::store_rejected(store, pipeline, id, &doc, "81101", Some(id.to_string()))
        .await;
    id
}

fn draft_of<'a>(body: &'a [u8], corrections: &'a str, findings: &'a str) -> CaseDraft<'a> {
    CaseDraft {
        corrected_body: Some(body),
        corrections_json: corrections,
        findings_json: findings,
        error_rules: "",
        applicant: Some("erika korrigiert"),
    }
}

async fn check(db: Db) {
    let env = TestEnv::new(db, "wb-store").await;
    let store: Store = env.store().await;
    let pipeline = Pipeline::load(&Default::default()).unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let to_outbox = RecordDelivery::Outbox(outbox.path().to_path_buf());
    let id = store_case(&store, &pipeline, FAULTY).await;
    let at = Utc::now();

    let case = store.load_case(id).await.unwrap().expect("stored");
    assert_eq!((case.version, case.status.as_str()), (1, "open"));
    assert_eq!(case.findings.iter().filter(|f| f.is_error()).count(), 3);

    // Releasing with errors left changes nothing.
    let out = release::release(
        &store,
        &pipeline,
        &to_outbox,
        &case,
        "sb",
        Action::Release,
        at,
    )
    .await
    .unwrap();
    assert!(matches!(out, ReleaseOutcome::Rejected(ref f) if f.iter().any(|f| f.is_error())));
    assert_eq!(store.load_case(id).await.unwrap().unwrap().version, 1);

    // Two writers from version 1: the first wins, the second is refused.
    let edit = |ptr: &'static str| NewAudit {
        pointer: Some("/x"),
        new_value: Some(ptr),
        ..NewAudit::new("sb", Action::Edit, Some(id))
    };
    let v = store
        .save_case_draft(
            id,
            1,
            &draft_of(b"{\"first\":1}", "[]", "[]"),
            &[edit("a")],
            at,
        )
        .await
        .unwrap();
    assert_eq!(v, 2);
    let second = store
        .save_case_draft(
            id,
            1,
            &draft_of(b"{\"second\":1}", "[]", "[]"),
            &[edit("b")],
            at,
        )
        .await;
    assert!(matches!(second, Err(CaseWriteError::Conflict)));
    let now = store.load_case(id).await.unwrap().unwrap();
    assert_eq!(now.version, 2);
    // The list finds the case under the corrected name.
    let found = store
        .list_cases(&allegro_store::cases::CaseQuery {
            scope: allegro_store::cases::Scope::All,
            dienststelle: None,
            rule: None,
            created_before: None,
            search: Some(allegro_store::cases::Search::Name("korrigiert".into())),
            page: 0,
            per_page: 50,
        })
        .await
        .unwrap();
    assert_eq!(
        found.items.iter().map(|c| c.antrag_id).collect::<Vec<_>>(),
        [id]
    );
    assert_eq!(now.current_body(), b"{\"first\":1}");
    let audit = store.audit_of(id).await.unwrap();
    assert_eq!(audit.len(), 1, "the refused write left no audit entry");

    // The real correction: the three fields of the contract example.
    let m = pipeline.mappings().get("BG-HA", "1.0").unwrap().clone();
    let mut doc: Value = serde_json::from_slice(&case.body).unwrap();
    let mut corrections = Vec::new();
    for (p, v) in [
        ("/bankverbindung/iban", "DE89370400440532013000"),
        ("/antragsteller/anschrift/plz", "39104"),
        ("/unterkunft/personenImHaushalt", "5"),
    ] {
        let c = casework::apply(&m, &mut doc, p, &EditOp::Set(v.into())).unwrap();
        casework::record_correction(&mut corrections, &c, "sb", "2026-12-02T10:00:00Z");
    }
    let body = serde_json::to_vec(&doc).unwrap();
    let cj = serde_json::to_string(&corrections).unwrap();
    store
        .save_case_draft(id, 2, &draft_of(&body, &cj, "[]"), &[], at)
        .await
        .unwrap();

    // Deferred with reason and date; still open for work.
    let day = NaiveDate::from_ymd_opt(2027, 1, 15).unwrap();
    let defer = NewAudit::new("sb", Action::Defer, Some(id));
    assert!(matches!(
        store.defer_case(id, 2, "Rückfrage", day, &defer, at).await,
        Err(CaseWriteError::Conflict)
    ));
    assert_eq!(
        store
            .defer_case(id, 3, "Rückfrage", day, &defer, at)
            .await
            .unwrap(),
        4
    );
    let case = store.load_case(id).await.unwrap().unwrap();
    assert_eq!(
        case.status,
        CaseState::Deferred {
            until: Some(day),
            reason: Some("Rückfrage".into())
        }
    );
    assert_eq!(store.cases_open_for_work(None, 10).await.unwrap().len(), 1);

    // The release transaction: record row and outbox row with the case's end.
    let before = store.counts().await.unwrap();
    let stale = CaseEnd::Released {
        record: b"<x/>",
        findings_json: "[]",
    };
    let rel = NewAudit::new("sb", Action::Release, Some(id));
    assert!(matches!(
        store.end_case(id, 3, &stale, &rel, at).await,
        Err(CaseWriteError::Conflict)
    ));
    assert_eq!(
        store.counts().await.unwrap(),
        before,
        "a refused release wrote nothing"
    );
    let out = release::release(
        &store,
        &pipeline,
        &to_outbox,
        &case,
        "sb",
        Action::Release,
        at,
    )
    .await
    .unwrap();
    assert!(
        matches!(
            out,
            ReleaseOutcome::Released {
                file: RecordFile::Written
            }
        ),
        "{out:?}"
    );
    let after = store.counts().await.unwrap();
    assert_eq!(after.records, before.records + 1);
    assert_eq!(after.records_pending, 0, "the file was written and marked");
    let xml = std::fs::read_to_string(outbox.path().join(format!("{id}.xml"))).unwrap();
    assert_eq!(xml.matches("<Korrektur ").count(), 3);
    let case = store.load_case(id).await.unwrap().unwrap();
    assert_eq!((case.status.as_str(), case.version), ("released", 5));
    let actions: Vec<String> = store
        .audit_of(id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action.to_string())
        .collect();
    assert_eq!(actions, ["edit", "defer", "release"]);
    // Done: no further change.
    assert!(matches!(
        release::release(
            &store,
            &pipeline,
            &to_outbox,
            &case,
            "sb",
            Action::Release,
            at
        )
        .await,
        Err(CaseWriteError::Conflict)
    ));

    // The release transaction itself leaves the record pending until written.
    let id2 = store_case(&store, &pipeline, VALID).await;
    let end = CaseEnd::Released {
        record: b"<r/>",
        findings_json: "[]",
    };
    store
        .end_case(
            id2,
            1,
            &end,
            &NewAudit::new("sb", Action::Release, Some(id2)),
            at,
        )
        .await
        .unwrap();
    let pending = store.pending_records(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].antrag_id, id2);
    allegro_store::outbox::dispatch(&store, outbox.path(), pending, 1)
        .await
        .unwrap();
    assert!(store.pending_records(10).await.unwrap().is_empty());
    assert_eq!(
        std::fs::read(outbox.path().join(format!("{id2}.xml"))).unwrap(),
        b"<r/>"
    );

    // Closed without import.
    let id3 = store_case(&store, &pipeline, FAULTY).await;
    let close = CaseEnd::Closed {
        reason: "Papierantrag",
    };
    store
        .end_case(
            id3,
            1,
            &close,
            &NewAudit::new("sb", Action::Close, Some(id3)),
            at,
        )
        .await
        .unwrap();
    let c3 = store.load_case(id3).await.unwrap().unwrap();
    assert!(matches!(
        &c3.status,
        CaseState::Closed { reason: Some(r), at: Some(_) } if r == "Papierantrag"
    ));
    assert!(!outbox.path().join(format!("{id3}.xml")).exists());

    // Re-check: one case that passes now, one that does not.
    let pass = store_case(&store, &pipeline, VALID).await;
    let fail = store_case(&store, &pipeline, FAULTY).await;
    let p = Arc::new(pipeline);
    let dry = release::recheck(&store, p.clone(), None, at).await.unwrap();
    assert_eq!(
        (dry.cases, dry.passing, dry.released, dry.still_rejected),
        (2, 1, 0, 1)
    );
    assert_eq!(dry.per_rule["ALTE-REGEL"].resolved, 1);
    assert_eq!(store.load_case(pass).await.unwrap().unwrap().status, "open");
    let run = release::recheck(&store, p.clone(), Some(&to_outbox), at)
        .await
        .unwrap();
    assert_eq!((run.passing, run.released), (1, 1));
    assert_eq!(
        store.load_case(pass).await.unwrap().unwrap().status,
        "released"
    );
    assert_eq!(store.load_case(fail).await.unwrap().unwrap().status, "open");
    let a = store.audit_of(pass).await.unwrap();
    assert_eq!(
        (a[0].actor.as_str(), a[0].action.as_str()),
        ("system", "recheck_release")
    );
    assert!(outbox.path().join(format!("{pass}.xml")).exists());

    // With records also going to the AMQP sink, a release leaves the record
    // pending for the daemon's dispatcher (tests/it/daemon_scale.rs) and
    // writes no file itself.
    let handed = store_case(&store, &p, VALID).await;
    let case = store.load_case(handed).await.unwrap().unwrap();
    let before = store.counts().await.unwrap();
    let to_sink = RecordDelivery::new(outbox.path(), "records");
    assert_eq!(to_sink, RecordDelivery::Dispatcher);
    let out = release::release(&store, &p, &to_sink, &case, "sb", Action::Release, at).await;
    assert!(
        matches!(
            out,
            Ok(ReleaseOutcome::Released {
                file: RecordFile::HandedOver
            })
        ),
        "{out:?}"
    );
    let after = store.counts().await.unwrap();
    assert_eq!(after.records_pending, before.records_pending + 1);
    assert!(!outbox.path().join(format!("{handed}.xml")).exists());
    let pending = store.pending_records(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].antrag_id, handed);

    store.close().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cases_sqlite() {
    check(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cases_postgres() {
    check(Db::Postgres).await;
}
