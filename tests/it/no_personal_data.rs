//! No personal data in the log or the metrics, at the most verbose level
//! the daemon allows: `RUST_LOG=trace` for every crate, applications whose
//! personal fields all carry marker strings (and, for the rejected ones, an
//! unexpected property whose key is a marker), accepted, rejected and
//! dead-lettered ones (no mapping, conflict), Nachreichungen for the
//! documents the accepted ones owe, a mapping reload that works and
//! one that is refused, the outbox failing and recovering, `purge --dry-run`
//! and the daemon's own purge, in text and in JSON format. The log is
//! searched as written and after decoding what a dependency may dump (byte
//! arrays such as `[77, 117, ...]`, hex, escapes); `/metrics` is scraped and
//! searched, and its new series are checked against what was sent.
//! In JSON, every line about one application carries its antragId.

use allegro_testkit as support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use support::*;
use uuid::Uuid;

use allegro_core::pipeline::{Pipeline, PipelineConfig};

/// The markers application `i` carries: its personal fields and its key.
fn markers(i: usize) -> Vec<String> {
    let mut m = personal_markers(i);
    m.push(key_marker(i));
    m
}

/// Application `i`: accepted, rejected (with a made-up property) or of a
/// form version no mapping knows (a dead letter), all marked.
fn marked(i: usize) -> Msg {
    match i % 3 {
        0 => with_markers(accepted(), i),
        1 => rejected_with_key(i),
        _ => with_markers(no_mapping(), i),
    }
}

/// What a dependency might have made of the log's bytes: `[n, n, ...]`
/// arrays decoded as bytes, and runs of hex digits decoded as bytes.
fn decoded(log: &str) -> String {
    let mut out = String::new();
    for part in log.split('[').skip(1) {
        let inner = part.split(']').next().unwrap_or("");
        let bytes: Option<Vec<u8>> = inner
            .split(',')
            .map(|n| n.trim().parse::<u8>().ok())
            .collect();
        if let Some(b) = bytes.filter(|b| b.len() > 3) {
            out.push_str(&String::from_utf8_lossy(&b));
            out.push('\n');
        }
    }
    for word in log.split(|c: char| !c.is_ascii_hexdigit()) {
        if word.len() >= 16 && word.len() % 2 == 0 {
            if let Ok(b) = hex_bytes(word) {
                out.push_str(&String::from_utf8_lossy(&b));
                out.push('\n');
            }
        }
    }
    out
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, std::num::ParseIntError> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect()
}

/// Asserts that `text` (named `what`) holds none of the markers of
/// applications `ids` nor the examples' fixed personal values.
fn assert_clean(what: &str, text: &str, ids: impl IntoIterator<Item = usize>) {
    let decoded = decoded(text);
    let mut all: Vec<String> = ids.into_iter().flat_map(markers).collect();
    all.extend(PERSONAL_VALUES.iter().map(|v| v.to_string()));
    for m in all {
        assert!(!text.contains(&m), "{what} holds {m}");
        assert!(!decoded.contains(&m), "{what} holds {m}, encoded");
    }
}

fn sighup(daemon: &Daemon) {
    let pid = daemon.child.id().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn wait_log(env: &TestEnv, daemon: &Daemon, what: &str) {
    env.wait_for(what, Duration::from_secs(30), || async {
        daemon.log_text().contains(what)
    })
    .await;
}

/// The value of the series `name{labels}` (exactly that label text) in a
/// scrape.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes `/metrics` until `done` holds for it (at most 60 s).
async fn scrape_until(port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = http_get(port, "/metrics").await;
        if done(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Findings by (rule, severity) the pipeline gives `msgs`.
fn expected_findings(msgs: &[Msg], root: &Path) -> HashMap<(String, String), u64> {
    let p = Pipeline::load(&PipelineConfig {
        mappings_dir: root.join("mappings"),
        schemas_dir: root.join("schemas"),
        ..PipelineConfig::default()
    })
    .unwrap();
    let mut out = HashMap::new();
    for m in msgs {
        for f in p.process(&m.body, m.message_id.as_deref()).findings() {
            *out.entry((f.rule.clone(), f.severity.as_str().to_string()))
                .or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_personal_data_in_logs_metrics_or_purge() {
    let mut env = TestEnv::new(Db::Sqlite, "nopii").await;
    let mappings = env.dir.path().join("mappings");
    copy_dir(&repo_root().join("mappings"), &mappings);
    let port = free_port();
    env.extra_env = vec![
        ("RUST_LOG".into(), "trace".into()),
        ("ALLEGRO_BRIDGE__LOG__LEVEL".into(), "trace".into()),
        (
            "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "ALLEGRO_BRIDGE__METRICS__STORE_REFRESH_SECS".into(),
            "1".into(),
        ),
        (
            "ALLEGRO_BRIDGE__PIPELINE__MAPPINGS_DIR".into(),
            mappings.display().to_string(),
        ),
    ];
    env.declare().await;
    let mut daemon = env.spawn_daemon();
    // Its migrations done before this test opens the database.
    wait_log(&env, &daemon, "consuming").await;
    let msgs: Vec<Msg> = (0..30).map(marked).collect();
    // A conflict: a known antragId with another body.
    let mut conflict = marked(99);
    let mut v: Value = serde_json::from_slice(&conflict.body).unwrap();
    v["antragId"] = Value::String(msgs[0].antrag_id.unwrap().to_string());
    conflict.body = serde_json::to_vec(&v).unwrap();
    conflict.message_id = msgs[0].message_id.clone();
    let publisher = Publisher::new(&env).await;
    publisher.publish_all(&env.intake, &msgs[..15]).await;
    publisher.publish_all(&env.intake, &[conflict]).await;
    let store = env.store().await;
    env.wait_for("the first half stored", Duration::from_secs(60), || async {
        store.counts().await.unwrap().applications == 10 && env.queue_len(&env.dlq).await == 6
    })
    .await;

    // A reload that works, then one that is refused.
    sighup(&daemon);
    wait_log(&env, &daemon, "mapping set reloaded and in force").await;
    let file = std::fs::read_dir(&mappings)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "toml"))
        .expect("a mapping file");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n[[[ broken\n")).unwrap();
    sighup(&daemon);
    wait_log(&env, &daemon, "mapping set refused").await;

    // The outbox fails (a file where its folder should be) and recovers.
    let away = env.dir.path().join("outbox.away");
    std::fs::rename(&env.outbox, &away).unwrap();
    std::fs::write(&env.outbox, b"not a folder").unwrap();
    publisher.publish_all(&env.intake, &msgs[15..]).await;
    wait_log(&env, &daemon, "outbox dispatch failed").await;
    std::fs::remove_file(&env.outbox).unwrap();
    std::fs::rename(&away, &env.outbox).unwrap();
    env.wait_for(
        "all stored and written",
        Duration::from_secs(60),
        || async {
            let c = store.counts().await.unwrap();
            c.applications == 20 && c.records_pending == 0 && env.queue_len(&env.dlq).await == 11
        },
    )
    .await;

    // Documents handed in later (contract §8) for every accepted one that
    // owes one: matched at trace level too.
    let mut sent = 0.0;
    for m in &msgs {
        let Some(id) = m.antrag_id else { continue };
        let owed = store.owed_of(id).await.unwrap();
        let Some(doc) = owed.first() else { continue };
        let mut nachweis = serde_json::json!({ "art": doc.kind });
        if let Some(p) = &doc.person_id {
            nachweis["personId"] = Value::String(p.clone());
        }
        let body = serde_json::json!({
            "typ": "NACHREICHUNG", "version": "1.0",
            "nachreichungId": Uuid::new_v4().to_string(), "antragId": id.to_string(),
            "nachweis": nachweis, "eingegangenAm": "2026-12-03T09:15:00+01:00"
        });
        let body = serde_json::to_vec(&body).unwrap();
        publisher
            .publish_with(&env.intake, &body, lapin::BasicProperties::default())
            .await;
        sent += 1.0;
    }
    assert!(sent > 0.0, "some accepted application owes a document");

    // The metrics: the new series, plausible, and nothing personal.
    let want = expected_findings(&msgs, &repo_root());
    assert!(!want.is_empty());
    let text = scrape_until(port, "open cases and Nachreichungen counted", |text| {
        metric(text, "allegro_bridge_open_cases") == Some(10.0)
            && metric(text, "allegro_bridge_nachreichungen_total") == Some(sent)
    })
    .await;
    assert_clean("/metrics", &text, 0..30);
    for ((rule, severity), n) in &want {
        let series =
            format!("allegro_bridge_findings_total{{source=\"daemon\",rule=\"{rule}\",severity=\"{severity}\"}}");
        assert_eq!(metric(&text, &series), Some(*n as f64), "{series}\n{text}");
    }
    for stage in ["pipeline", "store", "ack"] {
        let series = format!("allegro_bridge_stage_seconds_count{{stage=\"{stage}\"}}");
        assert!(
            metric(&text, &series).is_some_and(|n| n >= 1.0),
            "{series}\n{text}"
        );
    }
    let by_mapping = |outcome: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("allegro_bridge_applications_by_mapping_total{"))
            .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(
        (by_mapping("accepted"), by_mapping("rejected")),
        (10.0, 10.0),
        "{text}"
    );
    let age = metric(&text, "allegro_bridge_oldest_open_case_age_seconds").unwrap();
    assert!((0.0..600.0).contains(&age), "{text}");
    for kind in [
        "application_payloads",
        "closed_cases",
        "dead_letters",
        "audit_values",
        "sessions",
        "login_failures",
    ] {
        let series = format!("allegro_bridge_retention_deleted_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&text, &series), Some(0.0), "{series}");
    }
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let log1 = daemon.log_text();
    assert!(log1.contains("TRACE"), "verbose: {log1}");
    // Each application has its own line, with its antragId.
    let logged = |m: &Msg| {
        let id = m.antrag_id.unwrap().to_string();
        log1.lines().any(|l| {
            l.contains(&id) && (l.contains("application stored") || l.contains("dead-lettered"))
        })
    };
    assert!(msgs.iter().all(logged), "every application's line:\n{log1}");
    assert_clean("the text log", &log1, (0..30).chain([99]));

    // Half a year later: everything is due, half of the cases closed, half
    // of the dead letters replayed (only those are deleted; the others are
    // still in the DLQ and named in a warning).
    let old = Utc::now() - chrono::Duration::days(200);
    let pool = sqlx::SqlitePool::connect(&env.db_url).await.unwrap();
    for sql in [
        "UPDATE applications SET created_at = $1",
        "UPDATE dead_letters SET first_seen = $1",
        "UPDATE cases SET status = 'closed', closed_at = $1, updated_at = $1 \
         WHERE rowid % 2 = 0",
        "UPDATE dead_letters SET replayed_at = $1 WHERE rowid % 2 = 1",
    ] {
        sqlx::query(sql).bind(old).execute(&pool).await.unwrap();
    }
    let closed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE status = 'closed'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let replayed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(replayed > 0);
    pool.close().await;
    store.close().await;
    std::fs::write(&file, text_of(&repo_root(), &file, &mappings)).unwrap();
    let dry = env.cli(&["purge", "--dry-run"]);
    let dry_out = format!(
        "{}{}",
        String::from_utf8_lossy(&dry.stdout),
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(dry.status.success(), "{dry_out}");
    assert!(dry_out.contains("application_payloads   10"), "{dry_out}");
    assert_clean("purge --dry-run", &dry_out, 0..30);

    // The daemon purges at start (JSON log) and takes new applications.
    env.extra_env
        .push(("ALLEGRO_BRIDGE__LOG__FORMAT".into(), "json".into()));
    let mut daemon = env.spawn_daemon();
    let more: Vec<Msg> = (30..36).map(marked).collect();
    publisher.publish_all(&env.intake, &more).await;
    let text = scrape_until(port, "purged and the new ones stored", |text| {
        metric(
            text,
            "allegro_bridge_applications_total{outcome=\"accepted\"}",
        ) == Some(2.0)
            && metric(
                text,
                "allegro_bridge_applications_total{outcome=\"rejected\"}",
            ) == Some(2.0)
            && metric(
                text,
                "allegro_bridge_dead_letters_total{reason=\"no_mapping\"}",
            ) == Some(2.0)
            && metric(
                text,
                "allegro_bridge_retention_deleted_total{kind=\"application_payloads\"}",
            )
            .is_some_and(|n| n > 0.0)
    })
    .await;
    let deleted = |kind: &str| {
        metric(
            &text,
            &format!("allegro_bridge_retention_deleted_total{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(deleted("application_payloads"), Some(10.0), "{text}");
    assert_eq!(deleted("closed_cases"), Some(closed as f64), "{text}");
    assert_eq!(deleted("dead_letters"), Some(replayed as f64), "{text}");
    assert_clean("/metrics after the purge", &text, 0..36);
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let log2 = daemon.log_text();
    assert!(log2.contains("retention purge"), "{log2}");
    assert!(log2.contains("still in the DLQ"), "{log2}");
    assert_clean("the JSON log", &log2, 0..36);
    assert_json_lines_name_the_application(&log2, &more);
    env.cleanup().await;
}

/// The mapping file as it was before the test broke it.
fn text_of(root: &Path, file: &Path, copy: &Path) -> String {
    let rel = file.strip_prefix(copy).unwrap();
    std::fs::read_to_string(root.join("mappings").join(rel)).unwrap()
}

/// Every line is a JSON object; every line about one application (stored,
/// written, dead-lettered, a duplicate) has its antragId in `antrag_id`,
/// and each new application has its "application stored" or
/// "dead-lettered" line.
fn assert_json_lines_name_the_application(log: &str, msgs: &[Msg]) {
    const ABOUT_ONE: [&str; 4] = [
        "application stored",
        "record file written",
        "dead-lettered",
        "duplicate delivery: already stored, acked",
    ];
    let mut named: Vec<Uuid> = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let fields = &v["fields"];
        let message = fields["message"].as_str().unwrap_or_default();
        if ABOUT_ONE.contains(&message) {
            let id = fields["antrag_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .unwrap_or_else(|| panic!("no antrag_id: {line}"));
            named.push(id);
        }
    }
    for m in msgs {
        let id = m.antrag_id.unwrap();
        assert!(named.contains(&id), "no line names {id}:\n{log}");
    }
}

/// The database failing under load: the daemon's retries, at trace, with
/// PostgreSQL behind a proxy that is cut while marked applications arrive,
/// and the purge against PostgreSQL, log nothing personal either.
#[tokio::test(flavor = "multi_thread")]
async fn no_personal_data_in_the_log_through_a_database_outage() {
    let mut env = TestEnv::new(Db::Postgres, "nopii-pg").await;
    env.declare().await;
    let proxy = support::proxy::Proxy::start("127.0.0.1:5432").await;
    let mut daemon_env = env.envs_through(&proxy);
    daemon_env.push(("RUST_LOG".into(), "trace".into()));
    daemon_env.push(("ALLEGRO_BRIDGE__LOG__FORMAT".into(), "json".into()));
    env.extra_env = daemon_env;
    let mut daemon = env.spawn_daemon();
    wait_log(&env, &daemon, "consuming").await;
    proxy.cut();
    let msgs: Vec<Msg> = (0..12).map(marked).collect();
    let publisher = Publisher::new(&env).await;
    publisher.publish_all(&env.intake, &msgs).await;
    wait_log(&env, &daemon, "batch not stored").await;
    proxy.restore();
    env.settle_counts(8, 4, Duration::from_secs(60)).await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
    let log = daemon.log_text();
    assert_clean("the log through the outage", &log, 0..12);
    assert_json_lines_name_the_application(&log, &msgs);

    // The purge on PostgreSQL, everything aged, at trace.
    let pool = sqlx::PgPool::connect(&env.db_url).await.unwrap();
    let old = Utc::now() - chrono::Duration::days(200);
    for sql in [
        "UPDATE applications SET created_at = $1",
        "UPDATE cases SET status = 'closed', closed_at = $1",
    ] {
        sqlx::query(sql).bind(old).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let out = env.cli(&["purge"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("application_payloads   4") && text.contains("closed_cases           4"),
        "{text}"
    );
    assert_clean("purge on PostgreSQL", &text, 0..12);
    let dump = database_dump(&env).await;
    for i in (0..12).filter(|i| i % 3 != 2) {
        for m in markers(i).into_iter().take(if i % 3 == 0 { 7 } else { 8 }) {
            assert!(!holds_marker(&dump, &m), "{m} is still stored");
        }
    }
    env.cleanup().await;
}

/// The check API (`allegro-bridge api`) at trace level, in text and JSON:
/// marked applications that are annehmbar, klaerfall (with a marked
/// property key) and unlesbar, a marked body that is not JSON, one too
/// large, one without a token: neither the log nor `/metrics` nor an error
/// answer holds a marker.
#[tokio::test(flavor = "multi_thread")]
async fn no_personal_data_from_the_check_api() {
    use crate::api::{request, Api};
    for format in ["text", "json"] {
        let api = Api::start(&format!(
            "max_body_bytes = 65536\n[log]\nformat = \"{format}\""
        ))
        .await;
        let mut answers = String::new();
        for i in 0..9 {
            let r = api.check("", &marked(i).body, &[]).await;
            assert_eq!(r.status, 200);
            if i % 3 == 1 {
                assert_eq!(r.json()["ergebnis"], "klaerfall");
            }
        }
        let body = String::from_utf8(with_markers(accepted(), 9).body).unwrap();
        let cut = format!("{}\u{0}", &body[..body.len() / 2]);
        let mut big: Value = serde_json::from_str(&body).unwrap();
        big["antragsteller"]["geburtsort"] =
            Value::String(format!("{}{}", markers(9)[0], "x".repeat(70_000)));
        let big = serde_json::to_vec(&big).unwrap();
        for (bytes, status) in [(cut.as_bytes(), 400), (big.as_slice(), 413)] {
            let r = api.check("", bytes, &[]).await;
            assert_eq!(r.status, status);
            answers.push_str(&String::from_utf8_lossy(&r.body));
        }
        let anon = request(
            api.port,
            "POST",
            "/api/v1/pruefung",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(anon.status, 401);
        answers.push_str(&String::from_utf8_lossy(&anon.body));
        let metrics = http_get(api.metrics_port, "/metrics").await;
        assert!(metrics.contains("source=\"api\""), "{metrics}");
        let log = api.log();
        // Every check was logged (at debug), so there was something to search.
        let logged = log.lines().filter(|l| l.contains("klaerfall")).count();
        assert_eq!(logged, 3, "{log}");
        assert_clean(&format!("API log ({format})"), &log, 0..10);
        assert_clean("API /metrics", &metrics, 0..10);
        assert_clean("API error answers", &answers, 0..10);
    }
}
