//! Scale-out and the second sink: two daemons on one queue and one
//! PostgreSQL process every application exactly once; records are also
//! published to an AMQP exchange when configured, those of cases released
//! in the workbench too.

use allegro_testkit as support;

use std::time::Duration;

use allegro_store::audit::Action;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::ExchangeKind;
use support::*;

/// Two daemons, every message published twice: one record, case or dead
/// letter per antragId.
#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_one_queue_exactly_once() {
    let mut env = TestEnv::new(Db::Postgres, "scale").await;
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__BROKER__PREFETCH".to_string(),
            "100".to_string(),
        ),
        (
            "ALLEGRO_BRIDGE__DAEMON__BATCH_SIZE".to_string(),
            "50".to_string(),
        ),
    ]);
    env.declare().await;
    let msgs = mix(1000);
    let mut twice = msgs.clone();
    twice.extend(msgs.iter().cloned());
    let publisher = Publisher::new(&env).await;
    publisher.publish_all(&env.intake, &twice).await;
    let mut a = env.spawn_daemon();
    let mut b = env.spawn_daemon();
    let (apps, dead) = expected_counts(&msgs);
    env.settle_counts(apps, dead, Duration::from_secs(120))
        .await;
    a.sigterm();
    b.sigterm();
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0));
    assert_eq!(b.wait_exit(Duration::from_secs(30)), Some(0));
    for d in [&a, &b] {
        let log = d.log_text();
        let stopped = log.lines().find(|l| l.contains("stopped")).unwrap();
        assert!(
            !stopped.contains("accepted=0 rejected=0"),
            "both daemons took part: {stopped}"
        );
    }
    let t = env.tally().await;
    env.assert_exactly_once(&t, &msgs, true);
    env.cleanup().await;
}

/// With `sink.exchange` set, every record is also published there, also
/// that of a case released in the workbench (left pending for the daemon).
#[tokio::test(flavor = "multi_thread")]
async fn records_also_go_to_the_sink_exchange() {
    let mut env = TestEnv::new(Db::Sqlite, "sink").await;
    env.declare().await;
    let exchange = format!("{}.records", env.name);
    let queue = format!("{}.records-q", env.name);
    let conn = env.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        exchange.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            auto_delete: false,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        queue.as_str().into(),
        exchange.as_str().into(),
        "allegro.record".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__SINK__EXCHANGE".to_string(),
            exchange.clone(),
        ),
        (
            "ALLEGRO_BRIDGE__SINK__ROUTING_KEY".to_string(),
            "allegro.record".to_string(),
        ),
    ]);
    let released = release_a_case_for_the_sink(&env).await;
    let msgs = mix(40);
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &msgs)
        .await;
    let mut d = env.spawn_daemon();
    let (apps, dead) = expected_counts(&msgs);
    env.settle_counts(apps + 1, dead, Duration::from_secs(60))
        .await;
    d.sigterm();
    assert_eq!(d.wait_exit(Duration::from_secs(30)), Some(0));

    let accepted = msgs.iter().filter(|m| m.expect == Expect::Accepted).count() + 1;
    assert_eq!(env.queue_len(&queue).await as usize, accepted);
    assert!(env.outbox.join(format!("{released}.xml")).exists());
    let mut got = 0;
    while let Some(m) = ch
        .basic_get(
            queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        let id = m.delivery.properties.message_id().clone().unwrap();
        let file = std::fs::read(env.outbox.join(format!("{id}.xml"))).unwrap();
        assert_eq!(file, m.delivery.data);
        got += 1;
    }
    assert_eq!(got, accepted);
    let _ = ch
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
    let _ = conn.close(200, "OK".into()).await;
    env.cleanup().await;
}

/// A case released in the workbench while records also go to the sink:
/// stored, its record left pending for the daemon's dispatcher. Returns its
/// antragId.
async fn release_a_case_for_the_sink(env: &TestEnv) -> uuid::Uuid {
    use allegro_store::release::{self, RecordDelivery, RecordFile, ReleaseOutcome};
    let store = env.store().await;
    let pipeline = allegro_core::pipeline::Pipeline::load(&Default::default()).unwrap();
    let id = uuid::Uuid::new_v4();
    let mut doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data_dir().join("hauptantrag-gueltig.json")).unwrap(),
    )
    .unwrap();
    doc["antragId"] = serde_json::Value::String(id.to_string());
    support::workbench::store_rejected(&store, &pipeline, id, &doc, "81101", None).await;
    let case = store.load_case(id).await.unwrap().unwrap();
    let to_sink = RecordDelivery::new(&env.outbox, "the sink");
    let at = chrono::Utc::now();
    let out = release::release(
        &store,
        &pipeline,
        &to_sink,
        &case,
        "sb",
        Action::Release,
        at,
    );
    assert!(matches!(
        out.await,
        Ok(ReleaseOutcome::Released {
            file: RecordFile::HandedOver
        })
    ));
    store.close().await;
    id
}
