//! Poison messages against the real RabbitMQ: a message whose properties a
//! client cannot parse, and one whose dead letter would not fit a frame,
//! each published before 40 valid applications. Each poison message ends in
//! the dead-letter queue with its reason; every valid neighbour is accepted
//! and none of them is dead-lettered; the daemon stays up.

use allegro_testkit as support;

use std::time::Duration;

use allegro_daemon::deadletter::{header_frame_len, header_str, H_DROPPED, H_REASON};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use support::proxy;
use support::*;

/// Stands for the message_id's bytes on the publisher's side; the rewriting
/// proxy puts `\xff\xfe\xfd` (not UTF-8) in its place on the wire.
const MARKER: &[u8] = b"~P0";
const NOT_UTF8: &[u8] = b"\xff\xfe\xfd";

/// The broker's URL through a proxy that turns the marker into bytes that
/// are not UTF-8.
async fn poisoning_url(env: &TestEnv) -> String {
    let port = proxy::rewriting("127.0.0.1:5672", MARKER, NOT_UTF8).await;
    env.amqp
        .replace("127.0.0.1:5672", &format!("127.0.0.1:{port}"))
}

async fn publish(url: &str, queue: &str, body: &[u8], props: BasicProperties) {
    Publisher::at(url)
        .await
        .publish_with(queue, body, props.with_delivery_mode(2))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_cost_only_themselves() {
    let env = TestEnv::new(Db::Sqlite, "poison").await;
    env.declare().await;
    let mut daemon = env.spawn_daemon();
    let publisher = Publisher::new(&env).await;

    // 1. A valid application whose message_id is `\xff\xfe\xfdbad`.
    let url = poisoning_url(&env).await;
    let mid = [MARKER, b"bad"].concat();
    let props =
        BasicProperties::default().with_message_id(std::str::from_utf8(&mid).unwrap().into());
    publish(&url, &env.intake, &accepted().body, props).await;
    let first: Vec<Msg> = (0..40).map(|_| accepted()).collect();
    publisher.publish_all(&env.intake, &first).await;

    // 2. An invalid body with a header that fits the frame on the way in,
    //    but not once the dead letter's own headers are added.
    let mut headers = FieldTable::default();
    headers.insert(
        "x-big".into(),
        AMQPValue::LongString(vec![b'x'; 130_900].into()),
    );
    let props = BasicProperties::default().with_headers(headers);
    publish(&env.amqp, &env.intake, b"[1]", props).await;
    let second: Vec<Msg> = (0..40).map(|_| accepted()).collect();
    publisher.publish_all(&env.intake, &second).await;

    let store = env.store().await;
    env.wait_for(
        "80 accepted, 2 dead letters",
        Duration::from_secs(60),
        || async {
            let c = store.counts().await.unwrap();
            c.applications == 80 && env.queue_len(&env.dlq).await == 2
        },
    )
    .await;
    assert!(daemon.child.try_wait().unwrap().is_none(), "daemon is up");

    let dead = env.take_dlq().await;
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|(p, _)| header_str(p, H_REASON).unwrap_or_default())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["not_object", "unparseable_properties"]);
    let big = dead
        .iter()
        .find(|(_, body)| body == b"[1]")
        .expect("the oversized one");
    assert_eq!(header_str(&big.0, H_DROPPED).as_deref(), Some("x-big"));

    // The DLQ held exactly the two poison messages (taken above).
    let t = env.tally().await;
    let valid: Vec<Msg> = first.into_iter().chain(second).collect();
    for m in &valid {
        let id = m.antrag_id.unwrap();
        assert_eq!(t.records.get(&id), Some(&1), "{id} accepted once");
    }
    let log = daemon.log_text();
    assert!(!log.contains("reconnecting"), "no session was lost:\n{log}");
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    store.close().await;
    env.cleanup().await;
}

/// Properties whose content header frame is `frame_len` bytes long.
fn props_with_frame_len(frame_len: usize) -> BasicProperties {
    let with = |n: usize| {
        let mut headers = FieldTable::default();
        headers.insert("x-big".into(), AMQPValue::LongString(vec![b'x'; n].into()));
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers)
    };
    let base = header_frame_len(&with(0));
    let props = with(frame_len - base);
    assert_eq!(header_frame_len(&props), frame_len);
    props
}

/// A message the broker takes but the client cannot read: its header frame
/// is a few bytes over the negotiated 131,072 (RabbitMQ accepts a payload up
/// to 131,072 bytes, the client refuses a frame over 131,072 and drops the
/// connection). Every session that receives it breaks. Careful mode takes
/// one delivery at a time after the first break, so only the poison's
/// delivery count climbs until the broker dead-letters it; its 40 valid
/// neighbours, in flight at the first break, are all accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_frame_the_client_cannot_read_costs_only_itself() {
    let mut env = TestEnv::new(Db::Sqlite, "unreadable").await;
    // A window of exactly the 40 valid applications: careful mode must end
    // when the last of them is acked, with the queue idle; the DLQ probed
    // every second.
    let port = free_port();
    env.extra_env = vec![
        ("ALLEGRO_BRIDGE__BROKER__PREFETCH".into(), "40".into()),
        ("ALLEGRO_BRIDGE__DAEMON__DLQ_PROBE_SECS".into(), "1".into()),
        (
            "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
            format!("127.0.0.1:{port}"),
        ),
    ];
    env.declare().await;
    // 131,078 bytes: a payload of 131,070.
    publish(&env.amqp, &env.intake, b"{}", props_with_frame_len(131_078)).await;
    let valid: Vec<Msg> = (0..40).map(|_| accepted()).collect();
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &valid)
        .await;
    let mut daemon = env.spawn_daemon();

    let store = env.store().await;
    env.wait_for(
        "40 accepted, the poison dead-lettered",
        Duration::from_secs(90),
        || async {
            store.counts().await.unwrap().applications == 40 && env.queue_len(&env.dlq).await == 1
        },
    )
    .await;
    assert!(daemon.child.try_wait().unwrap().is_none(), "daemon is up");
    // The one dead letter is the poison (the client cannot read it, so it
    // is counted, not fetched): every valid application was stored once.
    let stored = store.applications().await.unwrap();
    for m in &valid {
        let id = m.antrag_id.unwrap();
        let rows: Vec<_> = stored.iter().filter(|a| a.antrag_id == id).collect();
        assert_eq!(rows.len(), 1, "{id} stored once");
        assert!(rows[0].record.is_some(), "{id} accepted");
    }
    // The broker dead-lettered it, so the bridge's log has no row for it:
    // the metrics count it.
    env.wait_for("the DLQ probe", Duration::from_secs(10), || async {
        let m = http_get(port, "/metrics").await;
        m.contains("allegro_bridge_dlq_messages 1")
            && m.contains("allegro_bridge_dlq_without_log_row 1")
    })
    .await;
    let log = daemon.log_text();
    assert!(log.contains("taking them one at a time"), "{log}");
    assert!(log.contains("careful mode over"), "{log}");
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    store.close().await;
    env.cleanup().await;
}
