//! End to end against the real RabbitMQ and both databases: the contract
//! examples and generated applications become records, cases and dead letters
//! as the contract says; duplicates and conflicts; topology checks; the IT
//! commands.

use allegro_testkit as support;

use std::time::Duration;

use allegro_daemon::deadletter::{self, header_str};
use support::*;
use uuid::Uuid;

/// Waits until the daemon has settled: intake empty, `apps` applications
/// stored, no record pending, `dead` messages in the DLQ.
async fn settle(env: &TestEnv, apps: i64, dead: u32, timeout: Duration) {
    let store = env.store().await;
    env.wait_for("the daemon to settle", timeout, || async {
        let c = store.counts().await.unwrap();
        c.applications == apps
            && c.records_pending == 0
            && env.queue_len(&env.intake).await == 0
            && env.queue_len(&env.dlq).await == dead
    })
    .await;
    store.close().await;
}

async fn end_to_end(db: Db) {
    let env = TestEnv::new(db, "e2e").await;
    env.declare().await;

    // The three contract examples with their own antragIds.
    let mut msgs = vec![];
    for (file, expect) in [
        ("hauptantrag-gueltig.json", Expect::Accepted),
        ("weiterbewilligung-gueltig.json", Expect::Accepted),
        ("hauptantrag-mit-fehlern.json", Expect::Rejected),
    ] {
        let v = example(file);
        let id: Uuid = v["antragId"].as_str().unwrap().parse().unwrap();
        msgs.push(Msg {
            body: std::fs::read(data_dir().join(file)).unwrap(),
            message_id: None,
            antrag_id: Some(id),
            expect,
        });
    }
    msgs.extend(mix(60));
    // message_id present but different from the body's antragId: invalid.
    let mut mismatch = accepted();
    mismatch.message_id = Some(Uuid::new_v4().to_string());
    mismatch.expect = Expect::Invalid("*");
    msgs.push(mismatch);

    // The same application three times → one record.
    let dup = accepted();
    let mut published = msgs.clone();
    for _ in 0..3 {
        published.push(dup.clone());
    }
    msgs.push(dup.clone());
    // A different body under a known antragId → conflict dead letter.
    let mut conflict = dup.clone();
    let mut v: serde_json::Value = serde_json::from_slice(&conflict.body).unwrap();
    v["leistungsbeginn"] = serde_json::Value::String("2031-01-01".into());
    conflict.body = serde_json::to_vec(&v).unwrap();

    let publisher = Publisher::new(&env).await;
    publisher.publish_all(&env.intake, &published).await;

    let mut daemon = env.spawn_daemon();
    let apps = msgs
        .iter()
        .filter(|m| m.expect != Expect::Invalid("*") && !matches!(m.expect, Expect::Invalid(_)))
        .count() as i64;
    let invalid = (msgs.len() as i64 - apps) as u32;
    settle(&env, apps, invalid, Duration::from_secs(60)).await;
    // The conflict goes last, after its original is stored.
    publisher
        .publish_all(&env.intake, &[conflict.clone()])
        .await;
    settle(&env, apps, invalid + 1, Duration::from_secs(30)).await;

    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let log = daemon.log_text();

    // Dead letters: headers, reasons, original body and properties.
    let dlq = env.take_dlq().await;
    assert_eq!(dlq.len() as u32, invalid + 1);
    let mut conflicts = 0;
    for (props, body) in &dlq {
        assert_eq!(
            header_str(props, deadletter::H_OUTCOME).as_deref(),
            Some("invalid")
        );
        let reason = header_str(props, deadletter::H_REASON).unwrap();
        assert!(header_str(props, deadletter::H_FIRST_SEEN).is_some());
        assert!(header_str(props, deadletter::H_ID).is_some());
        assert_eq!(
            props.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        if reason == "conflict" {
            conflicts += 1;
            assert_eq!(body, &conflict.body);
        } else {
            let original = published
                .iter()
                .find(|m| &m.body == body)
                .expect("dead letter body is an original body");
            assert!(matches!(original.expect, Expect::Invalid(_)), "{reason}");
            if original.expect == Expect::Invalid("no_mapping") {
                assert_eq!(reason, "no_mapping");
            }
        }
        // No personal data in the headers.
        let all = format!("{:?}", props.headers());
        for pii in ["DE02", "Schwerin", "Müller", "Mueller", "geburtsdatum"] {
            assert!(!all.contains(pii), "header leaks {pii}: {all}");
        }
    }
    assert_eq!(conflicts, 1);
    // Put them back for the tally.
    publisher.publish_all(&env.dlq, &[]).await;

    let store = env.store().await;
    let rows = store.applications().await.unwrap();
    let dead_rows = store.dead_letters().await.unwrap();
    store.close().await;
    assert_eq!(dead_rows.len() as u32, invalid + 1);
    for m in &msgs {
        let Some(id) = m.antrag_id else { continue };
        let row = rows.iter().find(|r| r.antrag_id == id);
        match m.expect {
            Expect::Accepted => {
                let row = row.unwrap_or_else(|| panic!("{id} not stored"));
                assert_eq!(row.outcome, "accepted");
                assert!(row.case_status.is_none());
                let file = std::fs::read(env.outbox.join(format!("{id}.xml"))).unwrap();
                assert_eq!(Some(&file), row.record.as_ref(), "file = stored record");
                assert!(String::from_utf8(file).unwrap().contains(&id.to_string()));
                assert!(row.record_written);
                assert_eq!(row.dienststellennummer.as_deref().map(|s| s.len()), Some(5));
            }
            Expect::Rejected => {
                let row = row.unwrap_or_else(|| panic!("{id} not stored"));
                assert_eq!(row.outcome, "rejected");
                assert_eq!(row.case_status.as_deref(), Some("open"));
                assert!(row.record.is_none());
                assert!(!env.outbox.join(format!("{id}.xml")).exists());
                assert!(row.findings_json.contains("\"error\""));
            }
            Expect::Invalid(_) => {
                if m.message_id == m.antrag_id.map(|a| a.to_string()) {
                    assert!(row.is_none(), "invalid {id} stored");
                }
            }
        }
    }
    let files = std::fs::read_dir(&env.outbox).unwrap().count();
    let accepted_n = msgs.iter().filter(|m| m.expect == Expect::Accepted).count();
    assert_eq!(files, accepted_n, "one file per accepted application");

    // Logs name applications by antragId only.
    for pii in ["DE02", "Müller"] {
        assert!(!log.contains(pii), "log leaks {pii}");
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_sqlite() {
    end_to_end(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_postgres() {
    end_to_end(Db::Postgres).await;
}

/// An existing queue with other arguments: the daemon refuses to start and
/// names the argument.
#[tokio::test(flavor = "multi_thread")]
async fn topology_mismatch_is_named() {
    let mut env = TestEnv::new(Db::Sqlite, "topo").await;
    env.declare().await;
    env.declare().await; // idempotent
    env.extra_env
        .push(("ALLEGRO_BRIDGE__BROKER__DELIVERY_LIMIT".into(), "3".into()));
    let mut d = env.spawn_daemon();
    let code = d.wait_exit(Duration::from_secs(20));
    assert_ne!(code, Some(0));
    let log = d.log_text();
    assert!(log.contains("x-delivery-limit"), "{log}");
    assert!(log.contains(&env.intake), "{log}");
    env.cleanup().await;
}

/// `config check` prints the effective config with secrets masked; a
/// secret file and environment overrides apply.
#[tokio::test(flavor = "multi_thread")]
async fn config_check_masks_secrets() {
    let mut env = TestEnv::new(Db::Sqlite, "cfg").await;
    let secret = env.dir.path().join("amqp-url");
    std::fs::write(&secret, "amqp://bridge:s3cr3t@127.0.0.1:5672/%2f\n").unwrap();
    env.extra_env.push((
        "ALLEGRO_BRIDGE__BROKER__URL_FILE".into(),
        secret.display().to_string(),
    ));
    let out = env.cli(&["config", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("bridge:***@127.0.0.1"), "{stdout}");
    assert!(!stdout.contains("s3cr3t"));
    assert!(stdout.contains(&env.intake));

    env.extra_env
        .push(("ALLEGRO_BRIDGE__DAEMON__BATCH_SIZE".into(), "0".into()));
    let out = env.cli(&["config", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch_size"));
    env.cleanup().await;
}

/// `dlq list|show|replay` and `recheck --dry-run`.
#[tokio::test(flavor = "multi_thread")]
async fn dlq_commands_and_recheck() {
    let env = TestEnv::new(Db::Sqlite, "dlq").await;
    env.declare().await;
    let publisher = Publisher::new(&env).await;
    let bad = no_mapping();
    let bad_id = bad.antrag_id.unwrap().to_string();
    let msgs = vec![bad.clone(), not_json(), rejected(), accepted()];
    publisher.publish_all(&env.intake, &msgs).await;
    let mut daemon = env.spawn_daemon();
    settle(&env, 2, 2, Duration::from_secs(60)).await;

    let out = env.cli(&["dlq", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        list.contains(&bad_id) && list.contains("no_mapping"),
        "{list}"
    );
    assert_eq!(env.queue_len(&env.dlq).await, 2, "list returns messages");

    let out = env.cli(&["dlq", "show", &bad_id]);
    let show = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{show}");
    assert!(show.contains("no_mapping"));
    assert!(!show.contains("antragsteller"), "body only with --body");

    // Replay while its cause persists: it comes back as a dead letter again
    // (the replay freed its dedup key), exactly once.
    let out = env.cli(&["dlq", "replay", &bad_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    settle(&env, 2, 2, Duration::from_secs(30)).await;
    let out = env.cli(&["dlq", "replay", "--all"]);
    assert!(out.status.success());
    settle(&env, 2, 2, Duration::from_secs(30)).await;
    let store = env.store().await;
    let dead = store.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    store.close().await;

    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));

    let out = env.cli(&["recheck", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("open cases:             1"), "{text}");
    assert!(text.contains("still rejected:         1"), "{text}");
    env.cleanup().await;
}

/// `metrics.listen` serves Prometheus text with outcome and reason labels,
/// and the health check.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served() {
    let mut env = TestEnv::new(Db::Sqlite, "metrics").await;
    let port = free_port();
    env.extra_env.push((
        "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    env.declare().await;
    // The dead letter twice: the second is a duplicate, so the outcomes
    // and the duplicates add up to the deliveries acked.
    let dead = no_mapping();
    let msgs = vec![accepted(), accepted(), rejected(), dead.clone(), dead];
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &msgs)
        .await;
    let mut daemon = env.spawn_daemon();
    settle(&env, 3, 1, Duration::from_secs(60)).await;
    let text = http_get(port, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("allegro_bridge_applications_total{outcome=\"accepted\"} 2"),
        "{text}"
    );
    assert!(text.contains("allegro_bridge_applications_total{outcome=\"rejected\"} 1"));
    assert!(text.contains("allegro_bridge_dead_letters_total{reason=\"no_mapping\"} 1"));
    assert!(text.contains("allegro_bridge_broker_connected 1"), "{text}");
    // The ack follows the commit the counts above waited for.
    env.wait_for("all five acked", Duration::from_secs(20), || async {
        http_get(port, "/metrics")
            .await
            .contains("allegro_bridge_deliveries_acked_total 5")
    })
    .await;
    let text = http_get(port, "/metrics").await;
    assert!(text.contains("allegro_bridge_dead_letters_total{reason=\"no_mapping\"} 1"));
    assert!(text.contains("allegro_bridge_duplicates_total 1"), "{text}");
    for path in ["/readyz", "/healthz", "/health"] {
        let health = http_get(port, path).await;
        assert!(health.starts_with("HTTP/1.1 200"), "{path}: {health}");
        assert!(health.ends_with("ok\n"), "{path}: {health}");
    }
    assert!(http_get(port, "/nothing").await.starts_with("HTTP/1.1 404"));
    // Transparent huge pages are off for the daemon (src/main.rs); the
    // kernel reports the flag since Linux 5.0.
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap();
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert!(line.ends_with('0'), "{line}");
    }
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    env.cleanup().await;
}
