//! Scale-out and the second sink: two daemons on one queue and one
//! PostgreSQL process every application exactly once; records are also
//! published to an AMQP exchange when configured.

use allegro_testkit as support;

use std::time::Duration;

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

/// With `sink.exchange` set, every record is also published there.
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
    let msgs = mix(40);
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &msgs)
        .await;
    let mut d = env.spawn_daemon();
    let (apps, dead) = expected_counts(&msgs);
    env.settle_counts(apps, dead, Duration::from_secs(60)).await;
    d.sigterm();
    assert_eq!(d.wait_exit(Duration::from_secs(30)), Some(0));

    let accepted = msgs.iter().filter(|m| m.expect == Expect::Accepted).count();
    assert_eq!(env.queue_len(&queue).await as usize, accepted);
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
