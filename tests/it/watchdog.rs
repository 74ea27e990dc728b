//! The systemd watchdog against a real daemon, RabbitMQ and PostgreSQL:
//! `WATCHDOG=1` arrives on `NOTIFY_SOCKET` while the main loop lives (also
//! idle on an empty queue), stops while the loop hangs in a database call
//! that never returns (the connection stalled behind a proxy, no error
//! anywhere), and resumes once the call returns.

use allegro_testkit as support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::*;

/// Every notification received within `window`.
fn collect(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let until = Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn pings(msgs: &[String]) -> usize {
    msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_stop_while_the_store_hangs_and_resume_after() {
    let mut env = TestEnv::new(Db::Postgres, "watchdog").await;
    env.declare().await;
    let proxy = support::proxy::Proxy::start("127.0.0.1:5432").await;
    let mut daemon_env = env.envs_through(&proxy);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    daemon_env.push(("NOTIFY_SOCKET".into(), path.display().to_string()));
    // WatchdogSec=2: pinged every 0.5 s while the loop beat within 1 s.
    daemon_env.push(("WATCHDOG_USEC".into(), "2000000".into()));
    // Acquiring a pooled connection gives up after this (then the batch is
    // retried, which beats): long enough that the stall is a hang here.
    daemon_env.push((
        "ALLEGRO_BRIDGE__STORE__CONNECT_TIMEOUT_SECS".into(),
        "60".into(),
    ));
    env.extra_env = daemon_env;
    let mut daemon = env.spawn_daemon();

    let start = collect(&sock, Duration::from_secs(8));
    assert!(
        start.iter().any(|m| m.contains("READY=1")),
        "no READY=1: {start:?}"
    );
    let idle = collect(&sock, Duration::from_secs(3));
    assert!(pings(&idle) >= 4, "idle daemon: {idle:?}");

    proxy.stall();
    let publisher = Publisher::new(&env).await;
    publisher.publish_all(&env.intake, &[accepted()]).await;
    // The batch's transaction hangs; within WatchdogSec/2 plus a tick the
    // pings stop, and stay away while it hangs.
    let _ = collect(&sock, Duration::from_millis(2500));
    let hung = collect(&sock, Duration::from_secs(3));
    assert_eq!(pings(&hung), 0, "pinged while the store hung: {hung:?}");
    assert!(
        daemon.log_text().contains("watchdog pings withheld"),
        "{}",
        daemon.log_text()
    );

    proxy.unstall();
    env.settle_counts(1, 0, Duration::from_secs(30)).await;
    let back = collect(&sock, Duration::from_secs(3));
    assert!(pings(&back) >= 3, "after the store answered: {back:?}");

    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}
