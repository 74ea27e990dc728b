//! Faults against the real services: kill -9 mid-run, the broker connection
//! dropped, PostgreSQL unreachable for 30 s, the outbox not writable, SIGTERM
//! with messages in flight. In every case each antragId ends exactly once as
//! a record, a case or a dead letter, and no outage produces a dead letter.
//!
//! Outages go through a TCP proxy inside the test (see `support::proxy`), so
//! the shared servers and parallel tests are not disturbed.

use allegro_testkit as support;

use std::time::{Duration, Instant};

use support::proxy::Proxy;
use support::*;

async fn wait_progress(env: &TestEnv, at_least: i64, timeout: Duration) {
    env.wait_for("progress", timeout, || async {
        env.progress().await >= at_least
    })
    .await;
}

/// kill -9 the daemon five times while 2,000 messages flow.
#[tokio::test(flavor = "multi_thread")]
async fn crash_kill9_five_times() {
    let env = TestEnv::new(Db::Postgres, "crash").await;
    env.declare().await;
    let msgs = mix(2000);
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &msgs)
        .await;
    let (apps, dead) = expected_counts(&msgs);
    let total = apps + dead as i64;

    let started = Instant::now();
    let mut daemon = env.spawn_daemon();
    let mut kills = 0;
    for k in 1..=5 {
        // Kill at roughly 1/10, 2/10, ... of the way: the last kill leaves
        // half the backlog, so it stays mid-flow on a fast machine too (the
        // progress is polled every 200 ms).
        wait_progress(&env, total * k / 10, Duration::from_secs(120)).await;
        daemon.kill9();
        kills += 1;
        assert!(env.progress().await < total, "kill {k} came after the end");
        daemon = env.spawn_daemon();
    }
    env.settle_counts(apps, dead, Duration::from_secs(180))
        .await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    eprintln!(
        "crash test: {total} messages, {kills} kills, {:?}",
        started.elapsed()
    );

    let t = env.tally().await;
    env.assert_exactly_once(&t, &msgs, true);
    eprintln!(
        "DLQ copies after kills (same dead-letter id): {}",
        t.dlq_copies
    );
    env.cleanup().await;
}

/// The broker connection drops mid-run: the daemon reconnects by itself.
#[tokio::test(flavor = "multi_thread")]
async fn broker_connection_dropped() {
    let mut env = TestEnv::new(Db::Sqlite, "brokerdrop").await;
    env.declare().await;
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let direct = env.amqp.clone();
    env.amqp = direct.replace("127.0.0.1:5672", &format!("127.0.0.1:{}", proxy.port));
    let daemon_env = env.envs();
    env.amqp = direct;

    let msgs = mix(800);
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &msgs)
        .await;
    let (apps, dead) = expected_counts(&msgs);

    env.extra_env = daemon_env;
    let daemon = env.spawn_daemon();
    for round in 1..=2 {
        wait_progress(&env, 250 * round, Duration::from_secs(60)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.restore();
    }
    env.settle_after_broker_outage(daemon, &msgs, (apps, dead), Duration::from_secs(120))
        .await;
    env.cleanup().await;
}

/// PostgreSQL unreachable for 30 s: consumption pauses, nothing is
/// dead-lettered for it, everything is processed afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_unreachable_30s() {
    let mut env = TestEnv::new(Db::Postgres, "pgdown").await;
    env.declare().await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let db = env.pg_db.clone().unwrap();
    let direct = env.db_url.clone();
    env.db_url = pg_url_for(&db).replace(":5432/", &format!(":{}/", proxy.port));
    let daemon_env = env.envs();
    env.db_url = direct;
    let port = free_port();

    let first = mix(300);
    let second = mix(300);
    let publisher = Publisher::new(&env).await;
    publisher.publish_all(&env.intake, &first).await;
    env.extra_env = daemon_env;
    env.extra_env.push((
        "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    let mut daemon = env.spawn_daemon();
    let (apps1, dead1) = expected_counts(&first);
    env.settle_counts(apps1, dead1, Duration::from_secs(60))
        .await;

    proxy.cut();
    publisher.publish_all(&env.intake, &second).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(daemon.child.try_wait().unwrap().is_none(), "daemon exited");
    // Nothing was dead-lettered for the outage.
    assert_eq!(env.queue_len(&env.dlq).await as usize, dead1);
    let health = http_get(port, "/readyz").await;
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(health.contains("store"), "{health}");
    // Alive all the same: a supervisor must not restart it for the outage.
    assert!(http_get(port, "/healthz").await.starts_with("HTTP/1.1 200"));
    proxy.restore();

    let all: Vec<Msg> = first.iter().chain(&second).cloned().collect();
    let (apps, dead) = expected_counts(&all);
    env.settle_counts(apps, dead, Duration::from_secs(60)).await;
    env.wait_for("healthy again", Duration::from_secs(30), || async {
        http_get(port, "/readyz").await.starts_with("HTTP/1.1 200")
    })
    .await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let t = env.tally().await;
    env.assert_exactly_once(&t, &all, true);
    assert_eq!(t.dlq_messages, dead, "no dead letter for the outage");
    env.cleanup().await;
}

/// The outbox directory cannot be written: intake pauses, nothing is lost or
/// dead-lettered; once it is writable, every record file appears.
#[tokio::test(flavor = "multi_thread")]
async fn outbox_not_writable() {
    let mut env = TestEnv::new(Db::Sqlite, "outbox").await;
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__DAEMON__BATCH_SIZE".to_string(),
            "50".to_string(),
        ),
        (
            "ALLEGRO_BRIDGE__BROKER__PREFETCH".to_string(),
            "100".to_string(),
        ),
    ]);
    let port = free_port();
    env.extra_env.push((
        "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    env.declare().await;
    // A regular file where the folder should be: creating files in it fails
    // (tests run as root, so permissions would not stop the write).
    std::fs::write(&env.outbox, b"not a folder").unwrap();
    let msgs = mix(1000);
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &msgs)
        .await;
    let mut daemon = env.spawn_daemon();
    wait_progress(&env, 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let store = env.store().await;
    let c = store.counts().await.unwrap();
    assert!(c.records_pending > 0, "records wait in the outbox table");
    assert!(
        env.queue_len(&env.intake).await > 0,
        "intake paused while the outbox is down"
    );
    let health = http_get(port, "/readyz").await;
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(health.contains("outbox"), "{health}");
    store.close().await;
    std::fs::remove_file(&env.outbox).unwrap();

    let (apps, dead) = expected_counts(&msgs);
    env.settle_counts(apps, dead, Duration::from_secs(60)).await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let t = env.tally().await;
    env.assert_exactly_once(&t, &msgs, true);
    assert_eq!(t.dlq_messages, dead);
    env.cleanup().await;
}

/// SIGTERM with messages in flight: exit 0 within the deadline, nothing lost,
/// nothing duplicated.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_messages_in_flight() {
    let mut env = TestEnv::new(Db::Postgres, "sigterm").await;
    // A small prefetch, so that SIGTERM finds most messages still queued.
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__BROKER__PREFETCH".to_string(),
            "200".to_string(),
        ),
        (
            "ALLEGRO_BRIDGE__DAEMON__BATCH_SIZE".to_string(),
            "50".to_string(),
        ),
    ]);
    let (msgs, apps, dead) = env.publish_backlog(1500).await;
    let mut daemon = env.spawn_daemon();
    wait_progress(&env, 200, Duration::from_secs(60)).await;
    // Hold the next batch inside its transaction, so SIGTERM always finds
    // deliveries in flight, however fast the daemon drains.
    let mut hold = env.hold_tables().await;
    daemon.sigterm();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    hold.release().await;
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(12), "deadline respected");
    let done = env.progress().await;
    assert!(done < apps + dead as i64, "SIGTERM came mid-run");
    assert!(daemon.log_text().contains("stopped"));
    // What was in flight was finished and acked, not left for redelivery:
    // every message is either stored or back in the queue, never both.
    let total = (apps + dead as i64) as u32;
    let mut queued = 0;
    for _ in 0..50 {
        queued = env.queue_len(&env.intake).await;
        if done as u32 + queued == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        done as u32 + queued,
        total,
        "{done} stored + {queued} queued: a stored delivery was not acked before exit"
    );

    let mut daemon = env.spawn_daemon();
    env.settle_counts(apps, dead, Duration::from_secs(120))
        .await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let t = env.tally().await;
    env.assert_exactly_once(&t, &msgs, true);
    assert_eq!(
        t.dlq_copies, 0,
        "graceful stop leaves no duplicate dead letter"
    );
    assert_eq!(t.dlq_messages, dead);
    env.cleanup().await;
}
