//! The `dlq` commands against the real RabbitMQ (issue #9): `dlq list` reads
//! the store's dead-letter log, never the queue, so running it again and
//! again leaves the dead letters' `x-delivery-count` alone, and a message the
//! AMQP client cannot read (a header frame larger than `frame_max`) neither
//! hangs `list` nor `replay`.

use allegro_testkit as support;

use std::time::{Duration, Instant};

use allegro_daemon::deadletter::{header_frame_len, header_str, H_ID};
use allegro_store::DeadLetterRow;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use support::*;

/// `x-delivery-count` of a message (0 when absent).
fn delivery_count(props: &BasicProperties) -> i64 {
    let Some(headers) = props.headers() else {
        return 0;
    };
    let key: lapin::types::ShortString = "x-delivery-count".into();
    match headers.inner().get(&key) {
        None => 0,
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        Some(other) => panic!("x-delivery-count is {other:?}"),
    }
}

/// Puts `not_json()` through the daemon: one dead letter in the DLQ and its
/// log row. The daemon is stopped again, so nothing else reads the DLQ.
async fn one_dead_letter(env: &TestEnv) -> (Msg, DeadLetterRow) {
    env.declare().await;
    let bad = not_json();
    Publisher::new(env)
        .await
        .publish_all(&env.intake, std::slice::from_ref(&bad))
        .await;
    let mut daemon = env.spawn_daemon();
    let store = env.store().await;
    env.wait_for("one dead letter", Duration::from_secs(60), || async {
        env.queue_len(&env.dlq).await == 1 && store.dead_letters().await.unwrap().len() == 1
    })
    .await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let row = store.dead_letters().await.unwrap().remove(0);
    store.close().await;
    (bad, row)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_thirty_times_leaves_the_dead_letters_alone() {
    let env = TestEnv::new(Db::Sqlite, "dlqlist").await;
    let (bad, row) = one_dead_letter(&env).await;
    let antrag_id = bad.antrag_id.unwrap().to_string();
    assert_eq!(row.antrag_id, bad.antrag_id);
    assert_eq!(row.body_bytes, Some(bad.body.len() as i64));

    for run in 1..=30 {
        let out = env.cli_within(&["dlq", "list"], Duration::from_secs(30));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "run {run}: {stderr}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&row.id.to_string()))
            .unwrap_or_else(|| panic!("run {run}: no line for {}:\n{stdout}", row.id));
        assert!(line.contains(&antrag_id), "run {run}: {line}");
        assert!(line.contains(&row.reason), "run {run}: {line}");
        assert!(
            line.contains(&format!(" {} ", bad.body.len())),
            "run {run}: body size: {line}"
        );
        assert!(!stdout.contains("not json"), "no body in the output");
        assert!(!stderr.contains("warning"), "queue and log agree: {stderr}");
    }

    let out = env.cli_within(&["dlq", "show", &antrag_id], Duration::from_secs(30));
    let show = text(&out.stdout);
    assert!(out.status.success(), "{show}");
    for want in [
        row.id.to_string(),
        row.reason.clone(),
        row.body_sha256.clone(),
        row.dedup_key.clone(),
        format!("body bytes:  {}", bad.body.len()),
    ] {
        assert!(show.contains(&want), "`{want}` missing:\n{show}");
    }
    assert!(!show.contains("not json"), "no body in the output");
    let out = env.cli_within(
        &["dlq", "show", &row.id.to_string()],
        Duration::from_secs(30),
    );
    assert_eq!(text(&out.stdout), show, "by dead-letter id, the same");

    // The DLQ still holds the dead letter, never handed out and returned.
    let dlq = env.take_dlq().await;
    assert_eq!(dlq.len(), 1);
    let (props, body) = &dlq[0];
    assert_eq!(body, &bad.body);
    assert_eq!(header_str(props, H_ID), Some(row.id.to_string()));
    assert_eq!(delivery_count(props), 0, "x-delivery-count unchanged");
    env.cleanup().await;
}

/// Headers whose content header frame is `frame_max + 4` bytes: RabbitMQ
/// (3.10: up to 8 bytes over) accepts it, lapin refuses to receive it.
fn too_large_for_the_client(frame_max: u32) -> BasicProperties {
    let props = |len: usize| {
        let mut h = FieldTable::default();
        h.insert(
            "x-huge".into(),
            AMQPValue::LongString(vec![b'h'; len].into()),
        );
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(h)
    };
    let target = frame_max as usize + 4;
    let base = 131_000;
    let len = base + target - header_frame_len(&props(base));
    let p = props(len);
    assert_eq!(header_frame_len(&p), target);
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_message_in_the_dlq_hangs_no_command() {
    let env = TestEnv::new(Db::Sqlite, "dlqbig").await;
    let (_bad, row) = one_dead_letter(&env).await;

    let conn = env.connect().await;
    let frame_max = conn.configuration().frame_max();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            env.dlq.as_str().into(),
            Default::default(),
            b"[2]",
            too_large_for_the_client(frame_max),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "the broker took the oversized message");
    let _ = conn.close(200, "OK".into()).await;
    assert_eq!(env.queue_len(&env.dlq).await, 2);

    // list answers from the log and warns about the message without a row.
    let start = Instant::now();
    let out = env.cli_within(&["dlq", "list"], Duration::from_secs(20));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&row.id.to_string()), "{stdout}");
    assert!(stderr.contains("holds 2 message(s)"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(10), "promptly");

    // replay meets the message: a clear error, not a hang.
    let out = env.cli_within(
        &["dlq", "replay", "--all", "--timeout", "30"],
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("holds a message this client cannot read")
            && stderr.contains(&env.dlq)
            && stderr.contains("frame too large"),
        "{stderr}"
    );
    // The oversized message went back to the queue with the connection; a
    // dead letter the run did not replay is still in the log (a publish the
    // broken connection failed gives its row back).
    env.wait_for("the message back", Duration::from_secs(20), || async {
        env.queue_len(&env.dlq).await >= 1
    })
    .await;
    let store = env.store().await;
    let still_open = store
        .dead_letters()
        .await
        .unwrap()
        .iter()
        .any(|r| r.id == row.id);
    store.close().await;
    assert!(still_open || stderr.contains(" 1 replayed"), "{stderr}");
    let out = env.cli_within(&["dlq", "list"], Duration::from_secs(20));
    assert!(out.status.success());
    env.cleanup().await;
}
