//! Reloading the mapping set on SIGHUP, against the real RabbitMQ and
//! PostgreSQL: the daemon runs on a copy of the repository's mappings; a
//! tightened check becomes effective after SIGHUP without a restart, a broken
//! set is refused with its file and line in the log while the previous set
//! stays in force, and the daemon stays up throughout.

use allegro_testkit as support;

use std::path::Path;
use std::time::Duration;

use allegro_store::ApplicationRow;
use support::*;
use uuid::Uuid;

/// Replaces `old` (which must occur exactly once) by `new` in `file`.
fn edit(file: &Path, old: &str, new: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert_eq!(
        text.matches(old).count(),
        1,
        "{old:?} in {}",
        file.display()
    );
    std::fs::write(file, text.replace(old, new)).unwrap();
}

fn sighup(daemon: &Daemon) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Publishes `m` and waits for its applications row.
async fn judge(env: &TestEnv, publisher: &Publisher, m: &Msg) -> ApplicationRow {
    publisher
        .publish_all(&env.intake, std::slice::from_ref(m))
        .await;
    let id: Uuid = m.antrag_id.unwrap();
    let store = env.store().await;
    let start = std::time::Instant::now();
    loop {
        let rows = store.applications().await.unwrap();
        if let Some(row) = rows.into_iter().find(|r| r.antrag_id == id) {
            store.close().await;
            return row;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {id} to be stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metrics(port: u16) -> String {
    http_get(port, "/metrics").await
}

async fn wait_metric(env: &TestEnv, port: u16, line: &str) {
    env.wait_for(line, Duration::from_secs(30), || async {
        metrics(port).await.contains(line)
    })
    .await;
}

fn info_line(hash: &str) -> String {
    format!("allegro_bridge_mapping_set_info{{hash=\"{hash}\"}} 1")
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_mappings_and_keeps_the_old_set_on_errors() {
    let mut env = TestEnv::new(Db::Postgres, "reload").await;
    let mappings = env.dir.path().join("mappings");
    copy_dir(&repo_root().join("mappings"), &mappings);
    let port = free_port();
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__PIPELINE__MAPPINGS_DIR".into(),
            mappings.display().to_string(),
        ),
        (
            "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
            format!("127.0.0.1:{port}"),
        ),
    ]);
    env.declare().await;
    let publisher = Publisher::new(&env).await;
    let mut daemon = env.spawn_daemon();

    // The shipped set: a valid Hauptantrag is accepted.
    let original = allegro_daemon::reload::set_hash(&mappings).unwrap();
    let row = judge(&env, &publisher, &accepted()).await;
    assert_eq!(row.outcome, "accepted", "{}", row.findings_json);
    let text = metrics(port).await;
    assert!(text.contains(&info_line(&original)), "{text}");
    assert!(text.contains("allegro_bridge_mapping_reloads_total{result=\"ok\"} 0"));
    assert!(text.contains("allegro_bridge_mapping_set_loaded_timestamp_seconds "));

    // Tightened on disk: the applicant's PLZ (19053) no longer passes.
    let regeln = mappings.join("common/regeln-1.0.toml");
    edit(
        &regeln,
        "id = \"PLZ-FORMAT\"\nkind = \"pattern\"\npattern = \"[0-9]{5}\"",
        "id = \"PLZ-NUR-HAMBURG\"\nkind = \"pattern\"\npattern = \"2[0-9]{4}\"",
    );
    let tightened = allegro_daemon::reload::set_hash(&mappings).unwrap();
    let count = allegro_daemon::reload::load(&allegro_core::pipeline::PipelineConfig {
        mappings_dir: mappings.clone(),
        schemas_dir: repo_root().join("schemas"),
        ..Default::default()
    })
    .expect("the tightened set compiles")
    .mappings();
    assert_ne!(tightened, original);
    // Not in force before the signal.
    let row = judge(&env, &publisher, &accepted()).await;
    assert_eq!(row.outcome, "accepted", "{}", row.findings_json);

    sighup(&daemon);
    wait_metric(
        &env,
        port,
        "allegro_bridge_mapping_reloads_total{result=\"ok\"} 1",
    )
    .await;
    let text = metrics(port).await;
    assert!(text.contains(&info_line(&tightened)), "{text}");
    assert!(!text.contains(&original), "one info series: {text}");
    let log = daemon.log_text();
    assert!(
        log.contains("mapping set reloaded")
            && log.contains(&format!("hash={}", &tightened[..12]))
            && log.contains(&format!("mappings={count}")),
        "{log}"
    );

    // The same kind of application is now a case, with the new check's id.
    let row = judge(&env, &publisher, &accepted()).await;
    assert_eq!(row.outcome, "rejected", "{}", row.findings_json);
    assert_eq!(row.case_status.as_deref(), Some("open"));
    assert!(
        row.findings_json.contains("PLZ-NUR-HAMBURG"),
        "{}",
        row.findings_json
    );

    // A broken file: the set is refused, the tightened one stays in force.
    let ha = mappings.join("bg-ha-1.0.toml");
    let lines = std::fs::read_to_string(&ha).unwrap().lines().count();
    let mut text = std::fs::read_to_string(&ha).unwrap();
    text.push_str("this is = = not toml\n");
    std::fs::write(&ha, text).unwrap();
    sighup(&daemon);
    wait_metric(
        &env,
        port,
        "allegro_bridge_mapping_reloads_total{result=\"failed\"} 1",
    )
    .await;
    let text = metrics(port).await;
    assert!(
        text.contains("allegro_bridge_mapping_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(text.contains(&info_line(&tightened)), "{text}");
    let log = daemon.log_text();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mapping set refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    let at = format!("{}:{}:", ha.display(), lines + 1);
    assert!(refused[0].contains(&at), "expected {at} in: {}", refused[0]);
    assert!(refused[0].contains(&tightened[..12]), "{}", refused[0]);

    let row = judge(&env, &publisher, &accepted()).await;
    assert_eq!(row.outcome, "rejected", "{}", row.findings_json);
    assert!(
        row.findings_json.contains("PLZ-NUR-HAMBURG"),
        "{}",
        row.findings_json
    );

    // Still up and serving; a clean stop.
    assert!(daemon.child.try_wait().unwrap().is_none(), "daemon exited");
    assert!(http_get(port, "/readyz").await.starts_with("HTTP/1.1 200"));
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    env.cleanup().await;
}
