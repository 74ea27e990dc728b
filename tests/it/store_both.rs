//! The store against both databases: idempotent inserts, conflicts, the
//! dead-letter dedup key and the outbox table.

use allegro_testkit as support;

use allegro_store::{NewApplication, NewDeadLetter, Store, Stored, Verdict};
use chrono::Utc;
use support::{Db, TestEnv};
use uuid::Uuid;

fn app(id: Uuid, body: &[u8], accepted: bool) -> NewApplication {
    NewApplication {
        antrag_id: id,
        body: body.to_vec(),
        body_sha256: allegro_daemon::deadletter::sha256_hex(body),
        verdict: if accepted {
            Verdict::Accepted(b"<record/>".to_vec())
        } else {
            Verdict::Rejected
        },
        mapping: "bg-ha-1.0".into(),
        findings_json: "[]".into(),
        dienststellennummer: Some("13101".into()),
        message_id: Some(id.to_string()),
        created_at: Utc::now(),
        applicant: None,
        error_rules: String::new(),
        owed: Vec::new(),
    }
}

fn letter(key: &str) -> NewDeadLetter {
    NewDeadLetter {
        dedup_key: key.into(),
        antrag_id: None,
        reason: "not_json",
        detail: "d".into(),
        body_sha256: key.into(),
        body_bytes: 42,
        first_seen: Utc::now(),
    }
}

async fn check(db: Db) {
    let env = TestEnv::new(db, "store").await;
    let store: Store = env.store().await;
    store.migrate().await.unwrap(); // idempotent
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());

    let mut tx = store.begin().await.unwrap();
    let r = tx
        .insert_applications(&[
            app(a, b"one", true),
            app(b, b"two", false),
            app(a, b"one", true),
            app(a, b"other", true),
        ])
        .await
        .unwrap();
    assert_eq!(
        r,
        vec![
            Stored::Inserted,
            Stored::Inserted,
            Stored::Duplicate,
            Stored::Conflict
        ]
    );
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let r = tx
        .insert_applications(&[app(a, b"one", true), app(b, b"changed", false)])
        .await
        .unwrap();
    assert_eq!(r, vec![Stored::Duplicate, Stored::Conflict]);
    let fresh = tx
        .insert_dead_letters(&[letter("k1"), letter("k1"), letter("k2")])
        .await
        .unwrap();
    let fresh: Vec<bool> = fresh.iter().map(Option::is_some).collect();
    assert_eq!(fresh, vec![true, false, true]);
    tx.commit().await.unwrap();

    // A rolled-back transaction leaves nothing.
    let mut tx = store.begin().await.unwrap();
    let c = Uuid::new_v4();
    tx.insert_applications(&[app(c, b"x", true)]).await.unwrap();
    drop(tx);

    let counts = store.counts().await.unwrap();
    assert_eq!(counts.applications, 2);
    assert_eq!(counts.cases, 1);
    assert_eq!(counts.records, 1);
    assert_eq!(counts.records_pending, 1);
    assert_eq!(counts.dead_letters, 2);

    let pending = store.pending_records(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].file_name, format!("{a}.xml"));
    store.mark_written(&[a]).await.unwrap();
    assert!(store.pending_records(10).await.unwrap().is_empty());

    let rows = store.applications().await.unwrap();
    let ra = rows.iter().find(|r| r.antrag_id == a).unwrap();
    assert!(ra.record_written && ra.case_status.is_none());
    let rb = rows.iter().find(|r| r.antrag_id == b).unwrap();
    assert_eq!(rb.case_status.as_deref(), Some("open"));
    assert_eq!(rb.dienststellennummer.as_deref(), Some("13101"));

    // The log answers `dlq list` / `dlq show` on its own.
    let dl = store.dead_letters().await.unwrap();
    assert_eq!(dl.len(), 2);
    assert_eq!(dl[0].body_bytes, Some(42));
    assert_eq!(dl[0].reason, "not_json");
    let found = store.dead_letters_for(dl[0].id).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].dedup_key, dl[0].dedup_key);
    assert!(store
        .dead_letters_for(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());

    // Replaying frees the dedup key.
    assert!(store.mark_replayed(dl[0].id, Utc::now()).await.unwrap());
    let mut tx = store.begin().await.unwrap();
    let again = tx
        .insert_dead_letters(&[letter("k1"), letter("k2")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again.iter().flatten().count(), 1);

    let open = store.open_cases(None, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].body, b"two");
    store.close().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_sqlite() {
    check(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_postgres() {
    check(Db::Postgres).await;
}

/// A typical application and its record are stored in the table's own pages,
/// not in the TOAST table (migration 0003): out-of-line storage costs a
/// second heap insert and a second index insert per value.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_typical_rows_inline() {
    let env = TestEnv::new(Db::Postgres, "inline").await;
    let store: Store = env.store().await;
    let root = env!("CARGO_MANIFEST_DIR");
    let body = std::fs::read(format!("{root}/fixtures/contract/hauptantrag-gueltig.json")).unwrap();
    let pipeline = allegro_core::pipeline::Pipeline::load(&Default::default()).unwrap();
    let processed = pipeline.process(&body, None);
    let xml = processed
        .record()
        .expect("the valid example is accepted")
        .to_vec();
    assert!(
        body.len() > 4000 && xml.len() > 4000,
        "large enough to be toasted by default"
    );
    let id = processed.antrag_id().unwrap();
    let mut row = app(id, &body, true);
    row.verdict = Verdict::Accepted(xml);
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&[row]).await.unwrap();
    tx.commit().await.unwrap();

    let pg = sqlx::PgPool::connect(&env.db_url).await.unwrap();
    for table in ["applications", "records"] {
        let toast: String = sqlx::query_scalar(
            "SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = $1",
        )
        .bind(table)
        .fetch_one(&pg)
        .await
        .unwrap();
        let chunks: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {toast}")))
                .fetch_one(&pg)
                .await
                .unwrap();
        assert_eq!(chunks, 0, "{table}: a typical row went to {toast}");
    }
    pg.close().await;
    store.close().await;
    env.cleanup().await;
}

/// Migration to the `outbox_pending` table (SQLite 2, PostgreSQL 4): a
/// record whose file was not yet written stays pending, a written one does not.
async fn outbox_migration(db: Db, before: i64) {
    let env = TestEnv::new(db, "outbox-mig").await;
    let store = Store::connect_lazy(&allegro_daemon::config::StoreConfig {
        url: env.db_url.clone(),
        ..Default::default()
    })
    .unwrap();
    store.migrate_until(before).await.unwrap();
    let (written, pending) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    macro_rules! old_rows {
        ($pool:expr) => {{
            let pool = $pool;
            for (id, written_at) in [(written, Some(now)), (pending, None)] {
                sqlx::query(
                    "INSERT INTO applications (antrag_id, body, body_sha256, outcome, findings, \
                     created_at) VALUES ($1, $2, 'h', 'accepted', '[]', $3)",
                )
                .bind(id)
                .bind(b"{}".to_vec())
                .bind(now)
                .execute(&pool)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO records (antrag_id, file_name, xml, created_at, written_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(format!("{id}.xml"))
                .bind(b"<r/>".to_vec())
                .bind(now)
                .bind(written_at)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }};
    }
    match db {
        Db::Sqlite => old_rows!(sqlx::SqlitePool::connect(&env.db_url).await.unwrap()),
        Db::Postgres => old_rows!(sqlx::PgPool::connect(&env.db_url).await.unwrap()),
    }
    store.migrate().await.unwrap();
    let left = store.pending_records(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].antrag_id, pending);
    assert_eq!(left[0].xml, b"<r/>");
    assert_eq!(store.counts().await.unwrap().records_pending, 1);
    let rows = store.applications().await.unwrap();
    let row = |id| rows.iter().find(|r| r.antrag_id == id).unwrap();
    assert!(row(written).record_written);
    assert!(!row(pending).record_written);
    store.close().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_migration_sqlite() {
    outbox_migration(Db::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_migration_postgres() {
    outbox_migration(Db::Postgres, 3).await;
}

/// Several processes opening a new SQLite file at once (the daemon and
/// `allegro-bridge web` started together) all get a migrated store: the
/// one that loses a migration's race tries again instead of failing.
#[tokio::test]
async fn a_new_sqlite_file_opened_by_many_at_once_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("race.db").display());
    let opens = (0..6).map(|_| {
        let config = allegro_store::StoreConfig {
            url: url.clone(),
            ..Default::default()
        };
        tokio::spawn(async move { Store::connect(&config).await.map(|_| ()) })
    });
    for r in futures_util::future::join_all(opens).await {
        r.unwrap().expect("every opener gets a migrated store");
    }
}
