//! A real broker restart (`rabbitmqctl stop_app` / `start_app`) while the
//! daemon drains a backlog: every connection drops, the broker is away for a
//! few seconds, the quorum queue comes back from disk. The daemon reconnects
//! by itself; each antragId ends exactly once as a record, a case or a dead
//! letter, and the outage produces no dead letter.
//!
//! This restarts the shared RabbitMQ, so the test holds the broker lock
//! exclusively (`TestEnv::exclusive`): no other test uses the broker
//! meanwhile, whichever test runner runs them.
//!
//! The daemon drains faster than `rabbitmqctl` can stop the broker, so once
//! some progress is seen the test locks the daemon's tables: its next batch
//! is held mid-transaction, with deliveries unacked, until the broker is
//! down. The drop therefore always hits work in flight, whatever the
//! machine's speed.

use allegro_testkit as support;

use std::process::Command;
use std::time::Duration;

use support::*;

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the broker application again even when the test fails halfway,
/// so later tests find it running.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").status();
        let _ = Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "60"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_mid_run() {
    let mut env = TestEnv::exclusive(Db::Postgres, "restart").await;
    env.extra_env.extend([
        ("ALLEGRO_BRIDGE__DAEMON__BATCH_SIZE".into(), "50".into()),
        ("ALLEGRO_BRIDGE__BROKER__PREFETCH".into(), "200".into()),
        (
            "ALLEGRO_BRIDGE__DAEMON__RETRY_MAX_DELAY_MS".into(),
            "2000".into(),
        ),
    ]);
    let (msgs, apps, dead) = env.publish_backlog(3000).await;
    let mut daemon = env.spawn_daemon();

    env.wait_for(
        "progress before the restart",
        Duration::from_secs(120),
        || async { env.progress().await >= 300 },
    )
    .await;
    let mut hold = env.hold_tables().await;
    {
        let _guard = RestartGuard;
        rabbitmqctl(&["stop_app"]);
        // The batch held by the lock now commits, and its acks go to a
        // closed channel: those deliveries come back after the restart and
        // must be recognised as duplicates.
        hold.release().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "the daemon exited while the broker was down"
        );
    }
    rabbitmqctl(&["await_startup", "--timeout", "60"]);
    let before = env.progress().await;
    assert!(
        (before as usize) < msgs.len(),
        "the backlog was drained before the restart; the test proves nothing"
    );

    env.settle_after_broker_outage(daemon, &msgs, (apps, dead), Duration::from_secs(300))
        .await;
    env.cleanup().await;
}
