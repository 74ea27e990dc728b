//! No personal data in the log, at the most verbose level the daemon
//! allows: `RUST_LOG=trace` for every crate, applications whose personal
//! fields carry marker strings, accepted, rejected and dead-lettered ones.
//! The log is searched as written and after decoding what a dependency may
//! dump (byte arrays such as `[77, 117, ...]`, hex, escapes).

use allegro_testkit as support;

use std::time::Duration;

use serde_json::Value;
use support::*;

/// Markers in personal fields, one set per application.
fn markers(i: usize) -> [String; 4] {
    [
        format!("Qvorname{i}x"),
        format!("Qnachname{i}x"),
        format!("Qstrasse{i}x"),
        format!("Qort{i}x"),
    ]
}

fn marked(base: Msg, i: usize) -> Msg {
    let mut v: Value = serde_json::from_slice(&base.body).unwrap();
    let [vorname, nachname, strasse, ort] = markers(i);
    let a = &mut v["antragsteller"];
    a["vornamen"] = Value::String(vorname);
    a["familienname"] = Value::String(nachname);
    a["anschrift"]["strasse"] = Value::String(strasse);
    a["anschrift"]["ort"] = Value::String(ort);
    Msg {
        body: serde_json::to_vec(&v).unwrap(),
        ..base
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

#[tokio::test(flavor = "multi_thread")]
async fn no_personal_data_in_the_log_at_trace() {
    let mut env = TestEnv::new(Db::Sqlite, "nopii").await;
    env.extra_env = vec![
        ("RUST_LOG".into(), "trace".into()),
        ("ALLEGRO_BRIDGE__LOG__LEVEL".into(), "trace".into()),
    ];
    env.declare().await;
    let mut daemon = env.spawn_daemon();
    let mut msgs = Vec::new();
    for i in 0..30 {
        let base = match i % 3 {
            0 => accepted(),
            1 => rejected(),
            _ => no_mapping(),
        };
        msgs.push(marked(base, i));
    }
    // A conflict: a known antragId with another body.
    let mut conflict = msgs[0].clone();
    conflict.body = marked(accepted(), 99).body;
    let mut v: Value = serde_json::from_slice(&conflict.body).unwrap();
    v["antragId"] = Value::String(msgs[0].antrag_id.unwrap().to_string());
    conflict.body = serde_json::to_vec(&v).unwrap();
    let publisher = Publisher::new(&env).await;
    publisher.publish_all(&env.intake, &msgs).await;
    publisher.publish_all(&env.intake, &[conflict]).await;
    let store = env.store().await;
    env.wait_for("all stored", Duration::from_secs(60), || async {
        store.counts().await.unwrap().applications == 20 && env.queue_len(&env.dlq).await == 11
    })
    .await;
    store.close().await;
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));

    let log = daemon.log_text();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "verbose: {log}"
    );
    // The log does speak of the applications, by antragId.
    let logged = |m: &Msg| log.contains(&m.antrag_id.unwrap().to_string());
    assert!(msgs.iter().any(logged), "antragIds are logged:\n{log}");
    let decoded = decoded(&log);
    for i in (0..30).chain([99]) {
        for m in markers(i) {
            assert!(!log.contains(&m), "the log holds {m}");
            assert!(!decoded.contains(&m), "the log holds {m}, encoded");
        }
    }
    env.cleanup().await;
}
