//! Encrypted links (docs/operations.md, "Encrypted links (TLS)"): the
//! daemon against a private RabbitMQ with a TLS listener and a private
//! PostgreSQL with `ssl = on` (allegro_testkit::tls), certificates made by
//! the test. It consumes over `amqps://` (client certificate, EXTERNAL login)
//! and stores over `sslmode=verify-full` (client certificate: the server's
//! pg_hba.conf has nothing but `hostssl ... cert`); with a wrong CA it
//! consumes nothing and says which key to check; `security.require_tls`
//! refuses plain links to other hosts at start.

use allegro_testkit as support;

use std::time::{Duration, Instant};

use support::tls::{Pki, TlsFiles, TlsPostgres, TlsRabbit};
use support::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_consumes_and_stores_over_tls_and_refuses_a_wrong_ca() {
    let t0 = Instant::now();
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "right");
    let wrong = Pki::new(certs.path(), "wrong");
    let (broker_client, broker_key) = pki.client("guest");
    let (db_client, db_key) = pki.client("postgres");
    // Both servers at once: RabbitMQ takes the longer.
    let (rabbit, pg) = std::thread::scope(|s| {
        let r = s.spawn(|| {
            let t = Instant::now();
            let r = TlsRabbit::start(&pki);
            eprintln!("RabbitMQ with TLS up in {:?}", t.elapsed());
            r
        });
        let p = s.spawn(|| {
            let t = Instant::now();
            let p = TlsPostgres::start(&pki);
            eprintln!("PostgreSQL with TLS up in {:?}", t.elapsed());
            p
        });
        (r.join().unwrap(), p.join().unwrap())
    });

    let mut env = TestEnv::new(Db::Sqlite, "tls").await;
    env.amqp = rabbit.url(true);
    env.broker_tls = TlsFiles {
        ca_file: Some(pki.ca.clone()),
        client_cert_file: Some(broker_client),
        client_key_file: Some(broker_key),
    };
    env.db = Db::Postgres;
    env.db_url = pg.url();
    env.store_tls = TlsFiles {
        ca_file: Some(pki.ca.clone()),
        client_cert_file: Some(db_client),
        client_key_file: Some(db_key),
    };
    env.extra_env.push((
        "ALLEGRO_BRIDGE__SECURITY__REQUIRE_TLS".into(),
        "true".into(),
    ));

    env.declare().await;
    let msgs = vec![accepted(), rejected()];
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, &msgs)
        .await;

    // Wrong CA for both links: `config check --connect` names each key.
    let right = (env.broker_tls.clone(), env.store_tls.clone());
    env.broker_tls.ca_file = Some(wrong.ca.clone());
    env.store_tls.ca_file = Some(wrong.ca.clone());
    let out = env.cli_within(&["config", "check", "--connect"], Duration::from_secs(60));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for key in ["broker.ca_file", "store.ca_file"] {
        assert!(
            err.lines()
                .any(|l| l.contains("certificate failed verification") && l.contains(key)),
            "{key}: {err}"
        );
    }

    // The daemon with the wrong broker CA: it says why, and consumes nothing.
    env.store_tls = right.1.clone();
    let mut daemon = env.spawn_daemon();
    env.wait_for(
        "the daemon to report the broker's certificate",
        Duration::from_secs(60),
        || async { daemon.log_text().contains("broker.ca_file") },
    )
    .await;
    assert!(daemon.child.try_wait().unwrap().is_none(), "daemon exited");
    let log = daemon.log_text();
    assert!(
        log.contains("certificate failed verification")
            && log.contains(&format!("now {}", wrong.ca.display())),
        "{log}"
    );
    daemon.kill9();
    env.broker_tls = right.0.clone();
    assert_eq!(env.queue_len(&env.intake).await, 2, "nothing consumed");

    // The right CAs: `config check` says what is encrypted, and connects.
    let out = env.cli_within(&["config", "check", "--connect"], Duration::from_secs(60));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let broker_line = format!(
        "#   broker: encrypted (TLS to localhost:{}, server certificate checked against CA file {} and the system store, client certificate yes, login EXTERNAL)",
        rabbit.port,
        pki.ca.display()
    );
    let store_line = format!(
        "#   store: encrypted (TLS to localhost:{}, sslmode=verify-full, server certificate checked against CA file {} and the compiled-in roots, client certificate yes)",
        pg.port,
        pki.ca.display()
    );
    assert!(
        stdout.lines().any(|l| l == broker_line) && stdout.lines().any(|l| l == store_line),
        "{stdout}"
    );

    // The daemon consumes over amqps and stores over verify-full.
    let mut daemon = env.spawn_daemon();
    env.settle_counts(2, 0, Duration::from_secs(60)).await;
    daemon.stop();
    let tally = env.tally().await;
    env.assert_exactly_once(&tally, &msgs, true);
    let log = daemon.log_text();
    assert!(!log.contains("certificate"), "{log}");

    env.cleanup().await;
    drop((rabbit, pg));
    eprintln!("whole TLS test: {:?}", t0.elapsed());
}

#[tokio::test]
async fn require_tls_refuses_plain_links_to_other_hosts_at_start() {
    let env = TestEnv::new(Db::Sqlite, "tls-require").await;
    let run = |extra: &[(&str, &str)], args: &[&str]| {
        let mut e = TestEnv::envs(&env);
        e.push((
            "ALLEGRO_BRIDGE__SECURITY__REQUIRE_TLS".into(),
            "true".into(),
        ));
        e.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut child = std::process::Command::new(bridge_exe())
            .args(args)
            .current_dir(env.dir.path())
            .env_remove("ALLEGRO_BRIDGE_CONFIG")
            .envs(e)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Refused before any connection: no waiting for 192.0.2.1.
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("`allegro-bridge {}` did not stop", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    };

    // The loopback defaults stay allowed, and `config check` says they are plain.
    let out = run(&[], &["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("# Links (security.require_tls = true):")
            && stdout.contains("#   broker: plain (amqp:// to 127.0.0.1:5672, loopback)")
            && stdout.contains("#   store: SQLite file (no link)"),
        "{stdout}"
    );

    let broker = [(
        "ALLEGRO_BRIDGE__BROKER__URL",
        "amqp://guest:guest@192.0.2.1:5672/%2f",
    )];
    let broker_msg = "broker.url is plain amqp:// to 192.0.2.1 (not loopback) but security.require_tls is on: use amqps://";
    for args in [&["run"][..], &["dlq", "list"], &["config", "check"]] {
        let out = run(&broker, args);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.contains(broker_msg), "{args:?}: {err}");
        assert!(!err.contains("guest:guest"), "{err}");
    }

    for (url, mode) in [
        ("postgres://bridge:secret@192.0.2.1:5432/allegro", "prefer"),
        (
            "postgres://bridge:secret@192.0.2.1:5432/allegro?sslmode=require",
            "require",
        ),
        (
            "postgres://bridge:secret@192.0.2.1:5432/allegro?sslmode=verify-ca",
            "verify-ca",
        ),
    ] {
        let out = run(&[("ALLEGRO_BRIDGE__STORE__URL", url)], &["run"]);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains(&format!(
                "store.url connects to 192.0.2.1 (not loopback) with sslmode={mode} but security.require_tls is on: add sslmode=verify-full"
            )),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
    }
    env.cleanup().await;
}
