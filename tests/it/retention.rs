//! Retention (`allegro-bridge purge`), on SQLite and PostgreSQL: a purged
//! application's personal data is gone from every table (and, on SQLite,
//! from the database files), while records not yet written to the outbox
//! and open or deferred cases are untouched; `--dry-run` changes nothing and
//! reports the counts the purge then has; a second purge finds nothing.
//!
//! The applications carry marker strings in every personal free-text field
//! (and the rejected ones an unexpected property whose *key* is a marker, so
//! a finding's pointer holds it); the database is dumped whole and searched.

use allegro_testkit as support;

use chrono::{DateTime, Duration, Utc};
use support::*;
use uuid::Uuid;

use allegro_core::pipeline::{Pipeline, PipelineConfig, Processed};
use allegro_store::{NewApplication, NewDeadLetter, Store, Verdict};

/// The markers application `i` of the scenario carries (the accepted
/// ones, 0, 1 and 5, have no unexpected property).
fn markers(i: usize) -> Vec<String> {
    let mut m = personal_markers(i);
    if ![0, 1, 5].contains(&i) {
        m.push(key_marker(i));
    }
    m
}

fn pipeline() -> Pipeline {
    Pipeline::load(&PipelineConfig {
        mappings_dir: repo_root().join("mappings"),
        schemas_dir: repo_root().join("schemas"),
        ..PipelineConfig::default()
    })
    .unwrap()
}

/// The row the daemon would store for `msg`, received at `at`.
fn row(p: &Pipeline, msg: &Msg, at: DateTime<Utc>) -> NewApplication {
    let processed = p.process(&msg.body, msg.message_id.as_deref());
    let verdict = match &processed {
        Processed::Accepted { record, .. } => Verdict::Accepted(record.clone()),
        Processed::Rejected(_) => Verdict::Rejected,
        Processed::Invalid(i) => panic!("invalid: {i:?}"),
    };
    let app = processed.application().unwrap();
    NewApplication {
        antrag_id: app.antrag_id,
        body: msg.body.clone(),
        body_sha256: allegro_daemon::deadletter::sha256_hex(&msg.body),
        verdict,
        mapping: app.mapping.clone(),
        findings_json: serde_json::to_string(&app.findings).unwrap(),
        dienststellennummer: app.jobcenter.clone(),
        message_id: msg.message_id.clone(),
        created_at: at,
        applicant: app.applicant.clone().map(|n| n.into_string()),
        error_rules: allegro_store::cases::error_rules_of(&app.findings),
        owed: app.owed.clone(),
    }
}

/// Runs one statement on either database; `$1`.. bound in order.
macro_rules! exec {
    ($store:expr, $sql:expr $(, $bind:expr)*) => {
        match $store {
            Store::Sqlite(p) => {
                sqlx::query($sql)$(.bind($bind))*.execute(p).await.unwrap();
            }
            Store::Postgres(p) => {
                sqlx::query($sql)$(.bind($bind))*.execute(p).await.unwrap();
            }
        }
    };
}

/// A case's state as the workbench leaves it.
async fn set_case(
    store: &Store,
    id: Uuid,
    status: &str,
    at: DateTime<Utc>,
    i: usize,
    body: &[u8],
    findings: &str,
) {
    let [vorname, nachname, ..] = &personal_markers(i)[..] else {
        unreachable!()
    };
    exec!(
        store,
        "UPDATE cases SET status = $1, updated_at = $2, closed_at = $3, applicant = $4, \
         corrected_body = $5, corrections = $6, findings = $7, defer_reason = $8, \
         close_reason = $9 WHERE antrag_id = $10",
        status,
        at,
        (status == "closed" || status == "released").then_some(at),
        format!("{} {}", vorname.to_lowercase(), nachname.to_lowercase()),
        body.to_vec(),
        format!(r#"[{{"pointer":"/antragsteller/familienname","value":"{nachname}"}}]"#),
        findings.to_string(),
        format!("{nachname} ruft zurück"),
        format!("erledigt mit {vorname}"),
        id
    );
    exec!(
        store,
        "INSERT INTO audit (at, actor, antrag_id, action, pointer, old_value, new_value, detail) \
         VALUES ($1, 'sb1', $2, 'edit', '/antragsteller/familienname', $3, $4, NULL)",
        at,
        id,
        format!("alt {nachname}"),
        format!("neu {vorname}")
    );
}

fn dead_letter(key: &str, at: DateTime<Utc>) -> NewDeadLetter {
    NewDeadLetter {
        dedup_key: key.into(),
        antrag_id: None,
        reason: "not_json",
        detail: "expected value at line 1 column 1".into(),
        body_sha256: "00".into(),
        body_bytes: 3,
        first_seen: at,
    }
}

/// The per-kind counts `purge` printed.
fn counts(out: &std::process::Output) -> Vec<(String, u64)> {
    assert!(
        out.status.success(),
        "purge failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (k, n) = l.split_once(' ').unwrap();
            (k.to_string(), n.trim().parse().unwrap())
        })
        .collect()
}

fn count(c: &[(String, u64)], kind: &str) -> u64 {
    c.iter().find(|(k, _)| k == kind).unwrap().1
}

async fn purge_removes_personal_data(db: Db) {
    let mut env = TestEnv::new(db, "retention").await;
    env.extra_env = vec![
        (
            "ALLEGRO_BRIDGE__RETENTION__AUDIT_VALUE_DAYS".into(),
            "30".into(),
        ),
        // One row per transaction: the chunk loops run more than once.
        ("ALLEGRO_BRIDGE__RETENTION__CHUNK".into(), "1".into()),
    ];
    let p = pipeline();
    let now = Utc::now();
    let old = now - Duration::days(200);
    // 0: accepted, written, old: purged.     1: accepted, not yet written: kept.
    // 2: case open: kept.                     3: case closed long ago: purged.
    // 4: case deferred: kept.                 5: accepted, written, recent: kept.
    // 6: case released long ago, its record not yet written: kept.
    let msgs = [
        with_markers(accepted(), 0),
        with_markers(accepted(), 1),
        rejected_with_key(2),
        rejected_with_key(3),
        rejected_with_key(4),
        with_markers(accepted(), 5),
        rejected_with_key(6),
    ];
    let at = |i: usize| if i == 5 { now } else { old };
    let rows: Vec<NewApplication> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| row(&p, m, at(i)))
        .collect();
    assert!(rows[0].verdict.record().is_some() && rows[3].verdict.record().is_none());
    let id = |i: usize| rows[i].antrag_id;
    let store = env.store().await;
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&rows).await.unwrap();
    // Old and replayed (its message has left the DLQ), old and still in the
    // DLQ, recent.
    tx.insert_dead_letters(&[
        dead_letter("dl-old-replayed", old),
        dead_letter("dl-old-waiting", old),
        dead_letter("dl-new", now),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store
        .mark_replayed_by_key("dl-old-replayed", old)
        .await
        .unwrap();
    store.mark_written(&[id(0), id(5)]).await.unwrap();
    for (i, status) in [(2, "open"), (3, "closed"), (4, "deferred"), (6, "released")] {
        set_case(
            &store,
            id(i),
            status,
            old,
            i,
            &msgs[i].body,
            &rows[i].findings_json,
        )
        .await;
    }
    exec!(
        &store,
        "INSERT INTO outbox_pending (antrag_id, created_at) VALUES ($1, $2)",
        id(6),
        old
    );
    exec!(
        &store,
        "INSERT INTO audit (at, actor, antrag_id, action, old_value, new_value) \
         VALUES ($1, 'admin', NULL, 'user_roles', 'sachbearbeitung', 'administration')",
        old
    );
    // A workbench session past its lifetime (web.session_absolute_hours)
    // and a current one.
    exec!(
        &store,
        "INSERT INTO users (name, password_hash, roles, dienststellen, created_at, updated_at) \
         VALUES ('sb1', 'x', 'sachbearbeitung', '81101', $1, $1)",
        old
    );
    for (token, at) in [("old", old), ("new", now)] {
        exec!(
            &store,
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at) \
             SELECT $1, id, 'c', $2, $2 FROM users WHERE name = 'sb1'",
            token,
            at
        );
    }
    let before = store.applications().await.unwrap();
    store.close().await;

    // Everything is in the database before the purge (the search works).
    let dump = database_dump(&env).await;
    for i in 0..7 {
        for m in personal_markers(i) {
            assert!(holds_marker(&dump, &m), "{m} is stored before the purge");
        }
    }

    // The dry run changes nothing and says what the purge will do.
    let rows_before = database_rows(&env).await;
    let dry = counts(&env.cli(&["purge", "--dry-run"]));
    assert_eq!(
        database_rows(&env).await,
        rows_before,
        "--dry-run changed the database"
    );
    let expected = [
        ("application_payloads", 1),
        ("closed_cases", 1),
        ("dead_letters", 1),
        ("audit_values", 2),
        ("sessions", 1),
        ("login_failures", 0),
    ];
    for (kind, n) in expected {
        assert_eq!(count(&dry, kind), n, "dry run, {kind}: {dry:?}");
    }

    let out = env.cli(&["purge"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(counts(&out), dry, "the purge did what the dry run said");
    assert!(
        stderr.contains("dead_letters=1") && stderr.contains("still in the DLQ"),
        "the old dead letter still in the DLQ is named: {stderr}"
    );
    for i in 0..7 {
        for m in markers(i) {
            assert!(!holds_marker(&stderr, &m), "purge's output holds {m}");
        }
    }

    let dump = database_dump(&env).await;
    for i in [0, 3] {
        for m in markers(i) {
            assert!(
                !holds_marker(&dump, &m),
                "{m} of purged application {i} is still stored"
            );
        }
    }
    for i in [1, 2, 4, 5, 6] {
        for m in markers(i) {
            assert!(
                holds_marker(&dump, &m),
                "{m} of application {i} was removed"
            );
        }
    }

    let store = env.store().await;
    let after = store.applications().await.unwrap();
    assert_eq!(after.len(), 7, "rows stay for the audit trail");
    for (b, a) in before.iter().zip(&after) {
        let i = rows
            .iter()
            .position(|r| r.antrag_id == a.antrag_id)
            .unwrap();
        assert_eq!((&b.antrag_id, &b.outcome), (&a.antrag_id, &a.outcome));
        if i == 0 || i == 3 {
            assert_eq!(
                a.record.as_deref().unwrap_or_default(),
                b"",
                "record XML of {i}"
            );
            let kept: Vec<allegro_core::finding::Finding> =
                serde_json::from_str(&a.findings_json).unwrap();
            let was: Vec<allegro_core::finding::Finding> =
                serde_json::from_str(&b.findings_json).unwrap();
            assert_eq!(kept.len(), was.len(), "every finding keeps its rule id");
            for (k, w) in kept.iter().zip(&was) {
                assert_eq!((&k.rule, k.severity), (&w.rule, w.severity));
                assert!(k.message.is_empty(), "message of {}", k.rule);
            }
            if i == 3 {
                // Form fields stay; the made-up key is dropped.
                assert!(kept
                    .iter()
                    .any(|f| f.pointer.starts_with("/antragsteller/")));
                assert!(kept.iter().any(|f| f.pointer.is_empty()));
            }
        } else {
            assert_eq!(
                (&a.findings_json, &a.record, &a.case_status),
                (&b.findings_json, &b.record, &b.case_status),
                "application {i} untouched"
            );
        }
    }
    assert_eq!(
        store.dead_letters().await.unwrap().len(),
        2,
        "the recent one and the old one still in the DLQ stay"
    );
    assert!(
        !dump.contains("dl-old-replayed"),
        "the replayed one is gone"
    );
    assert!(dump.contains("dl-old-waiting") && dump.contains("dl-new"));
    store.close().await;

    let again = counts(&env.cli(&["purge"]));
    assert!(
        again.iter().all(|(_, n)| *n == 0),
        "nothing left: {again:?}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_removes_personal_data_sqlite() {
    purge_removes_personal_data(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_removes_personal_data_postgres() {
    purge_removes_personal_data(Db::Postgres).await;
}
