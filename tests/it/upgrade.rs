//! Upgrade: a database made by an earlier release is migrated by the new
//! binary, run the way an operator upgrades (`allegro-bridge run` migrates at
//! start, as `systemctl restart` after `dpkg -i` does), and keeps every row
//! with its values. Both dialects, against the real broker and databases.
//!
//! The old database is the store's first schema only (`migrate_until(1)`),
//! filled in that schema's columns with what the daemon of that era wrote
//! for a mix of applications run through the pipeline: accepted ones with
//! their records (some files already written, `records.written_at` set,
//! some still pending), rejected ones with their cases (open and released),
//! and dead letters (open and replayed). Every later migration runs over
//! it. Afterwards every old column of every row holds its old value, the
//! pending records and only they are written to the outbox, the open cases
//! are still open, `dlq list` still lists the open dead letters, a
//! redelivered old application is still a duplicate, and a new application
//! is accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use allegro_core::pipeline::{Pipeline, PipelineConfig, Processed};
use allegro_daemon::deadletter::{dedup_key, sha256_hex};
use allegro_store::{dead_letter_id, record_file_name, Store};
use allegro_testkit as support;
use chrono::{DateTime, Utc};
use support::{
    accepted, accepted_wba, free_port, http_get, no_mapping, not_json, rejected, repo_root, Db,
    Msg, Publisher, TestEnv,
};
use uuid::Uuid;

/// The schema version of the era: the first migration, in both dialects.
const ERA: i64 = 1;

/// An `applications` row in the first schema's columns.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct AppRow {
    antrag_id: Uuid,
    body: Vec<u8>,
    body_sha256: String,
    outcome: String,
    mapping: Option<String>,
    findings: String,
    dienststellennummer: Option<String>,
    message_id: Option<String>,
    created_at: DateTime<Utc>,
}

/// A `cases` row in the first schema's columns.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct CaseRow {
    antrag_id: Uuid,
    dienststellennummer: Option<String>,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A `records` row in the columns every schema has (`written_at` is gone
/// since SQLite 2 / PostgreSQL 4; the era's value is kept beside it).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct RecordRow {
    antrag_id: Uuid,
    file_name: String,
    xml: Vec<u8>,
    created_at: DateTime<Utc>,
}

/// A `dead_letters` row in the first schema's columns.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct LetterRow {
    id: Uuid,
    dedup_key: String,
    antrag_id: Option<Uuid>,
    reason: String,
    detail: String,
    body_sha256: String,
    first_seen: DateTime<Utc>,
    replayed_at: Option<DateTime<Utc>>,
}

/// Everything the era's daemon stored for its messages.
#[derive(Debug, Default)]
struct Era {
    msgs: BTreeMap<Uuid, Msg>,
    apps: Vec<AppRow>,
    cases: Vec<CaseRow>,
    /// Each record with the era's `written_at`.
    records: Vec<(RecordRow, Option<DateTime<Utc>>)>,
    letters: Vec<LetterRow>,
}

impl Era {
    /// Runs a mix of applications through the pipeline and keeps what the
    /// daemon of that era wrote for each, an hour ago, a minute apart.
    fn new() -> Era {
        let root = repo_root();
        let pipeline = Pipeline::load(&PipelineConfig {
            mappings_dir: root.join("mappings"),
            schemas_dir: root.join("schemas"),
            ..PipelineConfig::default()
        })
        .unwrap();
        let msgs = [
            accepted(),
            accepted(),
            accepted_wba(),
            accepted(),
            rejected(),
            rejected(),
            rejected(),
            no_mapping(),
            not_json(),
            not_json(),
        ];
        let t0 = Utc::now().timestamp() - 3600;
        let mut era = Era::default();
        for (i, msg) in msgs.into_iter().enumerate() {
            let at = DateTime::from_timestamp(t0 + 60 * i as i64, 0).unwrap();
            let later = |secs| DateTime::from_timestamp(at.timestamp() + secs, 0).unwrap();
            let processed = pipeline.process(&msg.body, msg.message_id.as_deref());
            let sha = sha256_hex(&msg.body);
            match &processed {
                Processed::Invalid(invalid) => {
                    let key = dedup_key(&sha, msg.message_id.as_deref());
                    let first = era.letters.is_empty();
                    era.letters.push(LetterRow {
                        id: dead_letter_id(&key, 0),
                        dedup_key: key,
                        antrag_id: invalid.antrag_id,
                        reason: invalid.reason.into(),
                        detail: invalid.detail.clone(),
                        body_sha256: sha,
                        first_seen: at,
                        // The first one was replayed (its key freed) already.
                        replayed_at: first.then(|| later(600)),
                    });
                }
                Processed::Accepted {
                    application,
                    record,
                } => {
                    era.apps
                        .push(app_row(&msg, application, "accepted", sha, at));
                    let written = era.records.len() % 2 == 0;
                    era.records.push((
                        RecordRow {
                            antrag_id: application.antrag_id,
                            file_name: record_file_name(application.antrag_id),
                            xml: record.clone(),
                            created_at: at,
                        },
                        written.then(|| later(1)),
                    ));
                }
                Processed::Rejected(application) => {
                    era.apps
                        .push(app_row(&msg, application, "rejected", sha, at));
                    // The first case was released already (the era's only
                    // other status).
                    let released = era.cases.is_empty();
                    era.cases.push(CaseRow {
                        antrag_id: application.antrag_id,
                        dienststellennummer: application.jobcenter.clone(),
                        status: if released { "released" } else { "open" }.into(),
                        created_at: at,
                        updated_at: if released { later(300) } else { at },
                    });
                }
            }
            era.msgs.insert(msg.antrag_id.unwrap(), msg);
        }
        era.check_mix();
        era
    }

    /// The mix holds every kind of row the test claims to carry over.
    fn check_mix(&self) {
        let written = self.records.iter().filter(|r| r.1.is_some()).count();
        assert!(
            written >= 1 && self.pending().len() >= 2,
            "{:?}",
            self.records
        );
        assert!(self.open_cases().len() >= 2, "{:?}", self.cases);
        assert!(self.cases.iter().any(|c| c.status == "released"));
        let replayed = self.letters.iter().filter(|l| l.replayed_at.is_some());
        assert_eq!(replayed.count(), 1, "{:?}", self.letters);
        assert!(self.open_letters().len() >= 2, "{:?}", self.letters);
    }

    /// The records whose file the era had not written yet.
    fn pending(&self) -> Vec<&RecordRow> {
        let pending = self.records.iter().filter(|r| r.1.is_none());
        pending.map(|r| &r.0).collect()
    }

    fn written(&self) -> Vec<&RecordRow> {
        let written = self.records.iter().filter(|r| r.1.is_some());
        written.map(|r| &r.0).collect()
    }

    fn open_cases(&self) -> Vec<&CaseRow> {
        self.cases.iter().filter(|c| c.status == "open").collect()
    }

    fn open_letters(&self) -> Vec<&LetterRow> {
        let open = self.letters.iter().filter(|l| l.replayed_at.is_none());
        open.collect()
    }

    /// The message of an era application with this outcome.
    fn msg_of(&self, outcome: &str) -> Msg {
        let app = self.apps.iter().find(|a| a.outcome == outcome).unwrap();
        self.msgs[&app.antrag_id].clone()
    }
}

fn app_row(
    msg: &Msg,
    app: &allegro_core::pipeline::Application,
    outcome: &str,
    body_sha256: String,
    at: DateTime<Utc>,
) -> AppRow {
    AppRow {
        antrag_id: app.antrag_id,
        body: msg.body.clone(),
        body_sha256,
        outcome: outcome.into(),
        mapping: Some(app.mapping.clone()),
        findings: serde_json::to_string(&app.findings).unwrap(),
        dienststellennummer: app.jobcenter.clone(),
        message_id: msg.message_id.clone(),
        created_at: at,
    }
}

/// Writes the era's rows with the first schema's columns (SQL that only
/// that schema accepts: `records.written_at`, no `outbox_pending`, no
/// `dead_letters.body_bytes`).
macro_rules! insert_era {
    ($pool:expr, $era:expr) => {{
        let (pool, era) = ($pool, $era);
        for a in &era.apps {
            sqlx::query(
                "INSERT INTO applications (antrag_id, body, body_sha256, outcome, mapping, \
                 findings, dienststellennummer, message_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(a.antrag_id)
            .bind(&a.body)
            .bind(&a.body_sha256)
            .bind(&a.outcome)
            .bind(&a.mapping)
            .bind(&a.findings)
            .bind(&a.dienststellennummer)
            .bind(&a.message_id)
            .bind(a.created_at)
            .execute(&pool)
            .await
            .unwrap();
        }
        for c in &era.cases {
            sqlx::query(
                "INSERT INTO cases (antrag_id, dienststellennummer, status, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(c.antrag_id)
            .bind(&c.dienststellennummer)
            .bind(&c.status)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&pool)
            .await
            .unwrap();
        }
        for (r, written_at) in &era.records {
            sqlx::query(
                "INSERT INTO records (antrag_id, file_name, xml, created_at, written_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(r.antrag_id)
            .bind(&r.file_name)
            .bind(&r.xml)
            .bind(r.created_at)
            .bind(written_at)
            .execute(&pool)
            .await
            .unwrap();
        }
        for l in &era.letters {
            sqlx::query(
                "INSERT INTO dead_letters (id, dedup_key, antrag_id, reason, detail, \
                 body_sha256, first_seen, replayed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(l.id)
            .bind(&l.dedup_key)
            .bind(l.antrag_id)
            .bind(&l.reason)
            .bind(&l.detail)
            .bind(&l.body_sha256)
            .bind(l.first_seen)
            .bind(l.replayed_at)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }};
}

/// What the database holds after the upgrade, in the era's columns.
#[derive(Debug)]
struct Now {
    apps: Vec<AppRow>,
    cases: Vec<CaseRow>,
    records: Vec<RecordRow>,
    pending: Vec<Uuid>,
    letters: Vec<LetterRow>,
    /// `dead_letters.body_bytes` (added later) of every row.
    body_bytes: Vec<Option<i64>>,
}

macro_rules! read_now {
    ($pool:expr) => {{
        let pool = $pool;
        let now = Now {
            apps: sqlx::query_as(
                "SELECT antrag_id, body, body_sha256, outcome, mapping, findings, \
                 dienststellennummer, message_id, created_at FROM applications",
            )
            .fetch_all(&pool)
            .await
            .unwrap(),
            cases: sqlx::query_as(
                "SELECT antrag_id, dienststellennummer, status, created_at, updated_at FROM cases",
            )
            .fetch_all(&pool)
            .await
            .unwrap(),
            records: sqlx::query_as("SELECT antrag_id, file_name, xml, created_at FROM records")
                .fetch_all(&pool)
                .await
                .unwrap(),
            pending: sqlx::query_scalar("SELECT antrag_id FROM outbox_pending")
                .fetch_all(&pool)
                .await
                .unwrap(),
            letters: sqlx::query_as(
                "SELECT id, dedup_key, antrag_id, reason, detail, body_sha256, first_seen, \
                 replayed_at FROM dead_letters",
            )
            .fetch_all(&pool)
            .await
            .unwrap(),
            body_bytes: sqlx::query_scalar("SELECT body_bytes FROM dead_letters")
                .fetch_all(&pool)
                .await
                .unwrap(),
        };
        pool.close().await;
        now
    }};
}

/// Every row of `old` is in `new` unchanged (matched by `key`).
fn kept<T: std::fmt::Debug + PartialEq, K: Ord + std::fmt::Debug>(
    table: &str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> K,
) {
    let new: BTreeMap<K, &T> = new.iter().map(|r| (key(r), r)).collect();
    for row in old {
        match new.get(&key(row)) {
            Some(now) => assert_eq!(*now, row, "{table}: a row changed in the upgrade"),
            None => panic!("{table}: the upgrade lost {:?}", key(row)),
        }
    }
}

async fn metric(port: u16, line: &str) -> bool {
    http_get(port, "/metrics").await.contains(line)
}

fn outbox_files(env: &TestEnv) -> BTreeMap<String, Vec<u8>> {
    let Ok(dir) = std::fs::read_dir(&env.outbox) else {
        return BTreeMap::new();
    };
    dir.map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

async fn upgrade(db: Db) {
    let mut env = TestEnv::new(db, "upgrade").await;
    let port = free_port();
    env.extra_env.push((
        "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));

    // The old release's database.
    let old = Store::connect_lazy(&allegro_daemon::config::StoreConfig {
        url: env.db_url.clone(),
        ..Default::default()
    })
    .unwrap();
    old.migrate_until(ERA).await.unwrap();
    old.close().await;
    let era = Era::new();
    match db {
        Db::Sqlite => insert_era!(sqlx::SqlitePool::connect(&env.db_url).await.unwrap(), &era),
        Db::Postgres => insert_era!(sqlx::PgPool::connect(&env.db_url).await.unwrap(), &era),
    }

    // Waiting for the new daemon: two redeliveries of the era's
    // applications and one new application.
    env.declare().await;
    let fresh = accepted();
    let again = [
        era.msg_of("accepted"),
        era.msg_of("rejected"),
        fresh.clone(),
    ];
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &again)
        .await;

    // The new binary, as the operator runs it after installing it.
    let mut daemon = env.spawn_daemon();
    let expected_files: BTreeSet<String> = era
        .pending()
        .iter()
        .map(|r| r.file_name.clone())
        .chain([record_file_name(fresh.antrag_id.unwrap())])
        .collect();
    env.wait_for(
        "the upgraded daemon to settle",
        Duration::from_secs(90),
        || async {
            let files: BTreeSet<String> = outbox_files(&env).into_keys().collect();
            files == expected_files
                && metric(port, "allegro_bridge_duplicates_total 2").await
                && metric(port, "allegro_bridge_deliveries_acked_total 3").await
                && metric(
                    port,
                    "allegro_bridge_applications_total{outcome=\"accepted\"} 1",
                )
                .await
        },
    )
    .await;
    daemon.sigterm();
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        daemon.log_text()
    );

    let now = match db {
        Db::Sqlite => read_now!(sqlx::SqlitePool::connect(&env.db_url).await.unwrap()),
        Db::Postgres => read_now!(sqlx::PgPool::connect(&env.db_url).await.unwrap()),
    };
    // Every old row, every old column, unchanged; one new application.
    kept("applications", &era.apps, &now.apps, |r| r.antrag_id);
    kept("cases", &era.cases, &now.cases, |r| r.antrag_id);
    let old_records: Vec<RecordRow> = era.records.iter().map(|r| r.0.clone()).collect();
    kept("records", &old_records, &now.records, |r| r.antrag_id);
    kept("dead_letters", &era.letters, &now.letters, |r| r.id);
    assert_eq!(now.apps.len(), era.apps.len() + 1, "{:?}", now.apps);
    assert_eq!(now.cases.len(), era.cases.len());
    assert_eq!(now.records.len(), era.records.len() + 1);
    assert_eq!(now.letters.len(), era.letters.len());
    assert!(now.body_bytes.iter().all(Option::is_none));

    // The era's pending records are written (and only they), byte for byte,
    // and no longer pending; the written ones are not written again.
    assert!(now.pending.is_empty(), "{:?}", now.pending);
    let files = outbox_files(&env);
    for r in era.pending() {
        assert_eq!(files.get(&r.file_name), Some(&r.xml), "{}", r.file_name);
    }
    for r in era.written() {
        assert!(
            !files.contains_key(&r.file_name),
            "rewritten: {}",
            r.file_name
        );
    }

    // The open cases are still open, as the store reads them for the
    // re-check and the workbench.
    let store = env.store().await;
    let open: BTreeSet<Uuid> = store
        .open_cases(None, 1000)
        .await
        .unwrap()
        .iter()
        .map(|a| a.antrag_id)
        .collect();
    let era_open: BTreeSet<Uuid> = era.open_cases().iter().map(|c| c.antrag_id).collect();
    assert_eq!(open, era_open);
    // The Kennzahlen count the old cases' rules (`intake_rules` is filled
    // from their stored findings by the migration).
    let first = era.apps.iter().map(|a| a.created_at).min().unwrap();
    let k = store
        .kennzahlen(&allegro_store::kennzahlen::Filter {
            von: allegro_store::kennzahlen::Monat::of(first),
            bis: allegro_store::kennzahlen::Monat::of(Utc::now()),
            scope: allegro_store::cases::Scope::All,
            dienststelle: None,
            mapping: None,
            heute: Utc::now().date_naive(),
        })
        .await
        .unwrap();
    let cases = era.cases.len() as i64;
    assert_eq!(k.faelle, cases);
    assert!(
        k.regeln.contains(&("IBAN-UNGUELTIG".to_string(), cases)),
        "{:?}",
        k.regeln
    );
    store.close().await;

    // The dead-letter log still lists the open dead letters (size unknown).
    let out = env.cli(&["dlq", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for l in era.open_letters() {
        let line = text
            .lines()
            .find(|line| line.starts_with(&l.id.to_string()));
        let line = line.unwrap_or_else(|| panic!("{} not listed:\n{text}", l.id));
        assert!(line.contains(&l.reason), "{line}");
    }
    let replayed = era
        .letters
        .iter()
        .find(|l| l.replayed_at.is_some())
        .unwrap();
    assert!(!text.contains(&replayed.id.to_string()), "{text}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_sqlite_database_is_migrated_with_every_row_kept() {
    upgrade(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_postgres_database_is_migrated_with_every_row_kept() {
    upgrade(Db::Postgres).await;
}
