//! The store against both databases: idempotent inserts, conflicts, the
//! dead-letter dedup key and the outbox table.

mod support;

use allegro_bridge::store::{NewApplication, NewDeadLetter, Store, Stored};
use chrono::Utc;
use support::{Db, TestEnv};
use uuid::Uuid;

fn app(id: Uuid, body: &[u8], accepted: bool) -> NewApplication {
    NewApplication {
        antrag_id: id,
        body: body.to_vec(),
        body_sha256: allegro_bridge::daemon::deadletter::sha256_hex(body),
        outcome: if accepted { "accepted" } else { "rejected" },
        mapping: Some("bg-ha-1.0".into()),
        findings_json: "[]".into(),
        dienststellennummer: Some("13101".into()),
        message_id: Some(id.to_string()),
        record: accepted.then(|| b"<record/>".to_vec()),
        created_at: Utc::now(),
    }
}

fn letter(key: &str) -> NewDeadLetter {
    NewDeadLetter {
        id: Uuid::new_v4(),
        dedup_key: key.into(),
        antrag_id: None,
        reason: "not_json".into(),
        detail: "d".into(),
        body_sha256: key.into(),
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
        .insert_dead_letters(&mut [letter("k1"), letter("k1"), letter("k2")])
        .await
        .unwrap();
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
    store.mark_written(&[a], Utc::now()).await.unwrap();
    assert!(store.pending_records(10).await.unwrap().is_empty());

    let rows = store.applications().await.unwrap();
    let ra = rows.iter().find(|r| r.antrag_id == a).unwrap();
    assert!(ra.record_written && ra.case_status.is_none());
    let rb = rows.iter().find(|r| r.antrag_id == b).unwrap();
    assert_eq!(rb.case_status.as_deref(), Some("open"));
    assert_eq!(rb.dienststellennummer.as_deref(), Some("13101"));

    // Replaying frees the dedup key.
    let dl = store.dead_letters().await.unwrap();
    assert!(store.mark_replayed(dl[0].id, Utc::now()).await.unwrap());
    let mut tx = store.begin().await.unwrap();
    let again = tx
        .insert_dead_letters(&mut [letter("k1"), letter("k2")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again.iter().filter(|x| **x).count(), 1);

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
