//! Test helpers for the daemon and store tests: per-test queues and databases
//! on the real RabbitMQ and PostgreSQL, the daemon as a child process, a TCP
//! proxy to simulate outages, generated applications, headless Chromium with
//! axe-core for the browser tests ([`browser`]), and a local FIT-Connect
//! Zustelldienst that follows the published Submission API
//! ([`zustelldienst`]).
//!
//! Services (started by `scripts/start-services.sh`): RabbitMQ at
//! `ALLEGRO_TEST_AMQP` (default `amqp://guest:guest@127.0.0.1:5672/%2f`) and
//! PostgreSQL at `ALLEGRO_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`, a user that may create
//! databases). Every test gets its own queue names and database, so tests run
//! in parallel.

#![allow(dead_code)]

pub mod browser;
pub mod proxy;
pub mod tls;
pub mod workbench;
pub mod zustelldienst;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allegro_daemon::config::{BrokerConfig, StoreConfig};
use allegro_store::Store;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Channel, Connection};
use serde_json::Value;
use sqlx::Connection as _;
use uuid::Uuid;

/// The repository's root folder (mappings, schemas, fixtures).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The `allegro-bridge` binary that cargo built beside the running test or
/// benchmark (`target/<profile>/allegro-bridge`; the test itself runs from
/// `target/<profile>/deps/`). `ALLEGRO_BRIDGE_BIN` overrides it.
pub fn bridge_exe() -> PathBuf {
    if let Some(path) = std::env::var_os("ALLEGRO_BRIDGE_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("current test executable");
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join("allegro-bridge");
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent();
    }
    panic!("allegro-bridge binary not found above {}", exe.display());
}

/// A `RUST_LOG` filter that sets `level` for the bridge's own crates and
/// leaves the dependencies at their defaults (off).
pub fn log_filter(level: &str) -> String {
    [
        "allegro_bridge",
        "allegro_core",
        "allegro_store",
        "allegro_daemon",
        "allegro_web",
    ]
    .map(|c| format!("{c}={level}"))
    .join(",")
}

pub fn amqp_url() -> String {
    std::env::var("ALLEGRO_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn pg_admin_url() -> String {
    std::env::var("ALLEGRO_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `prefix-` plus 8 random hex digits.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..8])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// One test's world: queues, database, outbox folder.
pub struct TestEnv {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub intake: String,
    pub dlq: String,
    pub db: Db,
    pub db_url: String,
    pub pg_db: Option<String>,
    pub amqp: String,
    pub outbox: PathBuf,
    pub extra_env: Vec<(String, String)>,
    /// `[broker]`'s TLS files (for an `amqps://` broker: [`tls::TlsRabbit`]).
    pub broker_tls: tls::TlsFiles,
    /// `[store]`'s TLS files (for [`tls::TlsPostgres`]).
    pub store_tls: tls::TlsFiles,
    /// Held while the test uses the shared broker (see [`BrokerLock`]).
    _broker: BrokerLock,
}

/// A file lock on the shared RabbitMQ: every test environment holds it
/// shared; a test that restarts the broker holds it exclusively, so it
/// waits for the others and they wait for it, whichever runner is used:
/// within one process (all of `tests/it` is one test binary; each lock
/// opens the file anew, and `flock` treats separate opens independently) and
/// across processes (nextest, or test binaries of other crates).
pub struct BrokerLock(std::fs::File);

impl BrokerLock {
    async fn take(exclusive: bool) -> BrokerLock {
        tokio::task::spawn_blocking(move || {
            let path = std::env::temp_dir().join("allegro-bridge-tests-broker.lock");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            use std::os::fd::AsRawFd;
            let op = if exclusive {
                libc::LOCK_EX
            } else {
                libc::LOCK_SH
            };
            // SAFETY: flock on a descriptor we own; released when it closes.
            let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
            assert_eq!(rc, 0, "flock {}", path.display());
            BrokerLock(f)
        })
        .await
        .unwrap()
    }
}

impl TestEnv {
    pub async fn new(db: Db, name: &str) -> TestEnv {
        TestEnv::with_broker_lock(db, name, false).await
    }

    /// A test environment that may restart the broker: no other test
    /// environment exists meanwhile.
    pub async fn exclusive(db: Db, name: &str) -> TestEnv {
        TestEnv::with_broker_lock(db, name, true).await
    }

    /// A test environment whose folder (outbox, SQLite file, daemon logs)
    /// is created under `base` instead of the system's temp folder (the
    /// daemon benchmark measures on the disk it is pointed at).
    pub async fn in_dir(db: Db, name: &str, base: &Path) -> TestEnv {
        let dir = tempfile::tempdir_in(base).unwrap();
        TestEnv::with(db, name, false, dir).await
    }

    async fn with_broker_lock(db: Db, name: &str, exclusive: bool) -> TestEnv {
        TestEnv::with(db, name, exclusive, tempfile::tempdir().unwrap()).await
    }

    async fn with(db: Db, name: &str, exclusive: bool, dir: tempfile::TempDir) -> TestEnv {
        let broker = BrokerLock::take(exclusive).await;
        let base = unique(&format!("t-{name}"));
        let (db_url, pg_db) = match db {
            Db::Sqlite => (
                format!("sqlite://{}", dir.path().join("bridge.db").display()),
                None,
            ),
            Db::Postgres => {
                let dbname = base.replace('-', "_");
                (create_pg_database(&dbname).await, Some(dbname))
            }
        };
        let outbox = dir.path().join("outbox");
        TestEnv {
            name: base.clone(),
            intake: format!("{base}.eingang"),
            dlq: format!("{base}.dlq"),
            db,
            db_url,
            pg_db,
            amqp: amqp_url(),
            outbox,
            dir,
            extra_env: vec![],
            broker_tls: tls::TlsFiles::default(),
            store_tls: tls::TlsFiles::default(),
            _broker: broker,
        }
    }

    pub fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            url: self.amqp.clone(),
            intake_queue: self.intake.clone(),
            dlq: self.dlq.clone(),
            ca_file: self.broker_tls.ca_file.clone(),
            client_cert_file: self.broker_tls.client_cert_file.clone(),
            client_key_file: self.broker_tls.client_key_file.clone(),
            ..BrokerConfig::default()
        }
    }

    /// `[store]` of this test's database.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            url: self.db_url.clone(),
            ca_file: self.store_tls.ca_file.clone(),
            client_cert_file: self.store_tls.client_cert_file.clone(),
            client_key_file: self.store_tls.client_key_file.clone(),
            ..StoreConfig::default()
        }
    }

    /// The environment that points the binary at this test's world.
    pub fn envs(&self) -> Vec<(String, String)> {
        self.envs_with_store(&self.db_url)
    }

    /// [`TestEnv::envs`], but the binary reaches this test's PostgreSQL
    /// database through `proxy` (started on `127.0.0.1:5432`), so the test
    /// can cut the binary's connection; the test's own `db_url` stays direct.
    pub fn envs_through(&self, proxy: &proxy::Proxy) -> Vec<(String, String)> {
        let url = self.db_url.replace(":5432/", &format!(":{}/", proxy.port));
        self.envs_with_store(&url)
    }

    fn envs_with_store(&self, store_url: &str) -> Vec<(String, String)> {
        let root = repo_root().display().to_string();
        let mut v: Vec<(String, String)> = vec![
            ("ALLEGRO_BRIDGE__BROKER__URL".into(), self.amqp.clone()),
            (
                "ALLEGRO_BRIDGE__BROKER__INTAKE_QUEUE".into(),
                self.intake.clone(),
            ),
            ("ALLEGRO_BRIDGE__BROKER__DLQ".into(), self.dlq.clone()),
            ("ALLEGRO_BRIDGE__STORE__URL".into(), store_url.to_string()),
            (
                "ALLEGRO_BRIDGE__OUTBOX__DIR".into(),
                self.outbox.display().to_string(),
            ),
            (
                "ALLEGRO_BRIDGE__PIPELINE__MAPPINGS_DIR".into(),
                format!("{root}/mappings"),
            ),
            (
                "ALLEGRO_BRIDGE__PIPELINE__SCHEMAS_DIR".into(),
                format!("{root}/schemas"),
            ),
            (
                "ALLEGRO_BRIDGE__DAEMON__RETRY_MIN_DELAY_MS".into(),
                "100".into(),
            ),
            (
                "ALLEGRO_BRIDGE__DAEMON__RETRY_MAX_DELAY_MS".into(),
                "1000".into(),
            ),
            (
                "ALLEGRO_BRIDGE__DAEMON__SHUTDOWN_DEADLINE_SECS".into(),
                "10".into(),
            ),
            ("RUST_LOG".into(), log_filter("info")),
        ];
        for (section, files) in [("BROKER", &self.broker_tls), ("STORE", &self.store_tls)] {
            for (key, value) in [
                ("CA_FILE", &files.ca_file),
                ("CLIENT_CERT_FILE", &files.client_cert_file),
                ("CLIENT_KEY_FILE", &files.client_key_file),
            ] {
                if let Some(path) = value {
                    v.push((
                        format!("ALLEGRO_BRIDGE__{section}__{key}"),
                        path.display().to_string(),
                    ));
                }
            }
        }
        v.extend(self.extra_env.iter().cloned());
        v
    }

    /// Runs `allegro-bridge ARGS` to completion in the test folder.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bridge_exe())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ALLEGRO_BRIDGE_CONFIG")
            .envs(self.envs())
            .output()
            .unwrap()
    }

    /// Runs `allegro-bridge ARGS` like [`TestEnv::cli`] with `input` on its
    /// stdin (a password for `user add`, which never takes one as argument).
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(bridge_exe())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ALLEGRO_BRIDGE_CONFIG")
            .envs(self.envs())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs `allegro-bridge ARGS` like [`TestEnv::cli`], but kills it and
    /// fails the test when it has not finished within `limit` (it hangs).
    pub fn cli_within(&self, args: &[&str], limit: Duration) -> std::process::Output {
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let out_path = self.dir.path().join(format!("cli-{n}.out"));
        let err_path = self.dir.path().join(format!("cli-{n}.err"));
        let mut child = Command::new(bridge_exe())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ALLEGRO_BRIDGE_CONFIG")
            .envs(self.envs())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`allegro-bridge {}` did not finish within {limit:?}; stderr:\n{}",
                    args.join(" "),
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::process::Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    }

    /// Starts `allegro-bridge run` as a child process (log in the test folder).
    pub fn spawn_daemon(&self) -> Daemon {
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.dir.path().join(format!("daemon-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bridge_exe())
            .arg("run")
            .current_dir(self.dir.path())
            .env_remove("ALLEGRO_BRIDGE_CONFIG")
            .envs(self.envs())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    /// A connection to this test's broker, the way the daemon opens one
    /// (`allegro_daemon::broker::connect`, TLS files and all).
    pub async fn connect(&self) -> Connection {
        allegro_daemon::broker::connect(&self.broker_config(), "allegro-bridge test")
            .await
            .unwrap()
    }

    /// Declares the topology as the daemon would.
    pub async fn declare(&self) {
        let conn = self.connect().await;
        allegro_daemon::topology::declare(&conn, &self.broker_config())
            .await
            .unwrap();
        let _ = conn.close(200, "OK".into()).await;
    }

    /// Declares the queues and publishes a backlog of `mix(n)`; returns the
    /// messages and the expected (applications, dead letters).
    pub async fn publish_backlog(&self, n: usize) -> (Vec<Msg>, i64, usize) {
        self.declare().await;
        let msgs = mix(n);
        Publisher::new(self)
            .await
            .publish_all(&self.intake, &msgs)
            .await;
        let (apps, dead) = expected_counts(&msgs);
        (msgs, apps, dead)
    }

    /// After a broker outage: waits until every message has its outcome,
    /// checks that the daemon survived, reconnected and stops cleanly on
    /// SIGTERM, and that each antragId ended exactly once with no dead letter
    /// for the outage (copies of one dead letter, same id, count once).
    pub async fn settle_after_broker_outage(
        &self,
        mut daemon: Daemon,
        msgs: &[Msg],
        (apps, dead): (i64, usize),
        timeout: Duration,
    ) {
        self.settle_counts(apps, dead, timeout).await;
        assert!(daemon.child.try_wait().unwrap().is_none(), "daemon exited");
        daemon.sigterm();
        assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
        let log = daemon.log_text();
        assert!(log.contains("reconnecting"), "{log}");
        let t = self.tally().await;
        self.assert_exactly_once(&t, msgs, true);
        // A dead letter published just before the connection dropped may be
        // published again with the same id (a copy); none is new.
        assert_eq!(
            t.dlq_messages - t.dlq_copies,
            dead,
            "no dead letter for the outage"
        );
    }

    /// The test's store, migrated. A daemon the test started may be
    /// migrating the same SQLite file at this moment (two migrators race on
    /// a deferred transaction: "duplicate column"), so a failed connect is
    /// tried again once the other has finished.
    pub async fn store(&self) -> Store {
        let config = self.store_config();
        for _ in 0..10 {
            if let Ok(store) = Store::connect(&config).await {
                return store;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Store::connect(&config).await.unwrap()
    }

    /// Messages ready in `queue` (0 if it does not exist).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        self.counts(queue).await.0
    }

    /// Consumers attached to `queue` (0 if it does not exist).
    pub async fn consumers(&self, queue: &str) -> u32 {
        self.counts(queue).await.1
    }

    async fn counts(&self, queue: &str) -> (u32, u32) {
        let conn = self.connect().await;
        let counts = allegro_daemon::topology::queue_counts(&conn, queue)
            .await
            .unwrap_or((0, 0));
        let _ = conn.close(200, "OK".into()).await;
        counts
    }

    /// Takes (and acks) every message of the DLQ.
    pub async fn take_dlq(&self) -> Vec<(BasicProperties, Vec<u8>)> {
        self.take(&self.dlq).await
    }

    /// Takes (and acks) every message of `queue`: (properties, body).
    pub async fn take(&self, queue: &str) -> Vec<(BasicProperties, Vec<u8>)> {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let mut out = vec![];
        while let Some(m) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
        {
            let d = m.delivery;
            ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
                .await
                .unwrap();
            out.push((d.properties, d.data));
        }
        let _ = conn.close(200, "OK".into()).await;
        out
    }

    /// Waits until the intake queue is empty and stays so, no delivery is
    /// unacked (checked by the daemon's store catching up) and `done` holds.
    pub async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !done().await {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deletes the queues, the database and the folder.
    pub async fn cleanup(self) {
        self.cleanup_keeping_files().await;
    }

    /// Deletes the queues and the database; the folder is handed back and
    /// lives as long as the caller keeps it.
    pub async fn cleanup_keeping_files(self) -> tempfile::TempDir {
        self.drop_services().await;
        self.dir
    }

    async fn drop_services(&self) {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.unwrap();
        for q in [&self.intake, &self.dlq] {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "OK".into()).await;
        if let Some(db) = &self.pg_db {
            drop_pg_database(db).await;
        }
    }
}

/// Creates the scratch database `name` (letters, digits, `_`) on the admin
/// URL's server and returns its URL (tests and benchmarks).
pub async fn create_pg_database(name: &str) -> String {
    let admin = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    pg_url_for(name)
}

/// Drops the scratch database `name`, sessions and all; errors are ignored
/// (it is cleanup).
pub async fn drop_pg_database(name: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(&pg_admin_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

/// The URL of database `db` on the admin URL's server.
pub fn pg_url_for(db: &str) -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{db}")
}

/// A running daemon child process.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// SIGTERM, then asserts a clean exit (0) within 30 s, showing the log
    /// if not.
    pub fn stop(&mut self) {
        self.sigterm();
        assert_eq!(
            self.wait_exit(Duration::from_secs(30)),
            Some(0),
            "{}",
            self.log_text()
        );
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for exit; returns the exit code (None if killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if start.elapsed() > timeout {
                self.kill9();
                panic!(
                    "daemon did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A publisher with confirms.
pub struct Publisher {
    _conn: Connection,
    pub ch: Channel,
}

impl Publisher {
    pub async fn new(env: &TestEnv) -> Publisher {
        Publisher::with(env.connect().await).await
    }

    /// A publisher on the (plain) broker at `url` (e.g. through a proxy).
    pub async fn at(url: &str) -> Publisher {
        let cfg = BrokerConfig {
            url: url.into(),
            ..BrokerConfig::default()
        };
        let conn = allegro_daemon::broker::connect(&cfg, "allegro-bridge test")
            .await
            .unwrap();
        Publisher::with(conn).await
    }

    async fn with(conn: Connection) -> Publisher {
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Publisher { _conn: conn, ch }
    }

    /// Publishes one message with exactly these properties and waits for
    /// the broker's confirm.
    pub async fn publish_with(&self, queue: &str, body: &[u8], props: BasicProperties) {
        let confirm = self
            .ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap();
        assert!(confirm.await.unwrap().is_ack(), "the broker took it");
    }

    /// Publishes persistent messages and waits for every confirm.
    pub async fn publish_all(&self, queue: &str, msgs: &[Msg]) {
        for m in msgs {
            let mut props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into());
            if let Some(id) = &m.message_id {
                props = props.with_message_id(id.as_str().into());
            }
            // The confirm is awaited below, all at once.
            let _confirm = self
                .ch
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &m.body,
                    props,
                )
                .await
                .unwrap();
        }
        let returned = self.ch.wait_for_confirms().await.unwrap();
        assert!(returned.is_empty());
    }
}

/// One message to publish, with what the contract says must become of it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub antrag_id: Option<Uuid>,
    pub expect: Expect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Accepted,
    Rejected,
    /// Dead letter with this reason code.
    Invalid(&'static str),
}

pub fn data_dir() -> PathBuf {
    repo_root().join("fixtures/contract")
}

pub fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(data_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The example `name` under a fresh antragId.
pub fn generated(name: &str, expect: Expect) -> Msg {
    let mut v = example(name);
    let id = Uuid::new_v4();
    v["antragId"] = Value::String(id.to_string());
    Msg {
        body: serde_json::to_vec(&v).unwrap(),
        message_id: Some(id.to_string()),
        antrag_id: Some(id),
        expect,
    }
}

pub fn accepted() -> Msg {
    generated("hauptantrag-gueltig.json", Expect::Accepted)
}
pub fn accepted_wba() -> Msg {
    generated("weiterbewilligung-gueltig.json", Expect::Accepted)
}
pub fn rejected() -> Msg {
    generated("hauptantrag-mit-fehlern.json", Expect::Rejected)
}
/// A valid application of a form version no mapping exists for.
pub fn no_mapping() -> Msg {
    let mut m = accepted();
    let mut v: Value = serde_json::from_slice(&m.body).unwrap();
    v["formular"]["version"] = Value::String("9.9".into());
    m.body = serde_json::to_vec(&v).unwrap();
    m.expect = Expect::Invalid("no_mapping");
    m
}
/// Not JSON at all, with an antragId only in the message_id.
pub fn not_json() -> Msg {
    let id = Uuid::new_v4();
    Msg {
        body: format!("not json {id}").into_bytes(),
        message_id: Some(id.to_string()),
        antrag_id: Some(id),
        expect: Expect::Invalid("*"),
    }
}

/// A realistic mix: 60 % accepted (HA and WBA), 30 % rejected, 10 % invalid.
pub fn mix(n: usize) -> Vec<Msg> {
    (0..n)
        .map(|i| match i % 10 {
            0..=3 => accepted(),
            4 | 5 => accepted_wba(),
            6..=8 => rejected(),
            _ => {
                if i % 20 == 9 {
                    no_mapping()
                } else {
                    not_json()
                }
            }
        })
        .collect()
}

/// What the system holds for each antragId after a run.
#[derive(Debug, Default)]
pub struct Tally {
    pub records: HashMap<Uuid, usize>,
    pub cases: HashMap<Uuid, usize>,
    pub dead: HashMap<Uuid, usize>,
    pub dlq_messages: usize,
    /// Second copies of a dead letter (same dead-letter id).
    pub dlq_copies: usize,
    pub files: HashMap<Uuid, Vec<u8>>,
}

impl TestEnv {
    /// Reads the database, the outbox folder and (consuming it) the DLQ.
    pub async fn tally(&self) -> Tally {
        let store = self.store().await;
        let mut t = Tally::default();
        for a in store.applications().await.unwrap() {
            if a.record.is_some() {
                assert!(
                    a.record_written,
                    "record {} not marked written",
                    a.antrag_id
                );
                *t.records.entry(a.antrag_id).or_default() += 1;
            }
            if a.case_status.is_some() {
                *t.cases.entry(a.antrag_id).or_default() += 1;
            }
        }
        store.close().await;
        if let Ok(dir) = std::fs::read_dir(&self.outbox) {
            for e in dir {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                assert!(!name.starts_with('.'), "leftover temp file {name}");
                let id: Uuid = name.trim_end_matches(".xml").parse().unwrap();
                t.files.insert(id, std::fs::read(e.path()).unwrap());
            }
        }
        let mut dl_ids = std::collections::HashSet::new();
        for (props, body) in self.take_dlq().await {
            t.dlq_messages += 1;
            let id = allegro_daemon::deadletter::header_str(
                &props,
                allegro_daemon::deadletter::H_ANTRAG_ID,
            )
            .or_else(|| props.message_id().as_ref().map(|m| m.to_string()))
            .and_then(|s| s.parse().ok())
            .or_else(|| {
                // not_json bodies carry the id in the text.
                String::from_utf8_lossy(&body)
                    .strip_prefix("not json ")
                    .and_then(|s| s.parse().ok())
            });
            // Copies with the same dead-letter id are one dead letter.
            let dl_id =
                allegro_daemon::deadletter::header_str(&props, allegro_daemon::deadletter::H_ID);
            if let Some(id) = id {
                if dl_id.is_none() || dl_ids.insert(dl_id.unwrap()) {
                    *t.dead.entry(id).or_default() += 1;
                } else {
                    t.dlq_copies += 1;
                }
            }
        }
        t
    }

    /// Asserts every message ended exactly once in its place.
    pub fn assert_exactly_once(&self, t: &Tally, msgs: &[Msg], strict_outcomes: bool) {
        let mut seen = std::collections::HashSet::new();
        for m in msgs {
            let id = m.antrag_id.unwrap();
            if !seen.insert(id) {
                continue;
            }
            let r = t.records.get(&id).copied().unwrap_or(0);
            let c = t.cases.get(&id).copied().unwrap_or(0);
            let d = t.dead.get(&id).copied().unwrap_or(0);
            assert_eq!(
                r + c + d.min(1),
                1,
                "antragId {id}: records {r}, cases {c}, dead letters {d} (expected {:?})",
                m.expect
            );
            assert!(d <= 1, "antragId {id} dead-lettered {d} times");
            if r == 1 {
                assert!(t.files.contains_key(&id), "no file for record {id}");
            }
            if strict_outcomes {
                match m.expect {
                    Expect::Accepted => assert_eq!(r, 1, "{id} should be a record"),
                    Expect::Rejected => assert_eq!(c, 1, "{id} should be a case"),
                    Expect::Invalid(_) => assert_eq!(d, 1, "{id} should be a dead letter"),
                }
            }
        }
        assert_eq!(t.files.len(), t.records.len(), "files vs record rows");
    }
}

/// How many applications and dead letters `msgs` must produce (distinct
/// antragIds; the first occurrence decides).
pub fn expected_counts(msgs: &[Msg]) -> (i64, usize) {
    let mut seen = std::collections::HashSet::new();
    let (mut apps, mut dead) = (0, 0);
    for m in msgs {
        if !seen.insert(m.antrag_id) {
            continue;
        }
        match m.expect {
            Expect::Invalid(_) => dead += 1,
            _ => apps += 1,
        }
    }
    (apps, dead)
}

impl TestEnv {
    /// Waits until the store holds `apps` applications and `dead` live
    /// dead-letter rows, no record is pending and the intake queue is empty.
    pub async fn settle_counts(&self, apps: i64, dead: usize, timeout: Duration) {
        let store = self.store().await;
        self.wait_for("the daemon to settle", timeout, || async {
            let c = store.counts().await.unwrap();
            c.applications == apps
                && c.dead_letters as usize == dead
                && c.records_pending == 0
                && self.queue_len(&self.intake).await == 0
        })
        .await;
        store.close().await;
    }

    /// Applications plus dead letters stored so far.
    pub async fn progress(&self) -> i64 {
        let store = self.store().await;
        let c = store.counts().await.unwrap_or_default();
        store.close().await;
        c.applications + c.dead_letters
    }

    /// Locks the daemon's `applications` and `dead_letters` tables against
    /// writes (PostgreSQL only) until [`TableHold::release`]: the daemon's
    /// next batch waits inside its transaction with its deliveries unacked.
    /// Readers, such as [`TestEnv::progress`], are not blocked.
    pub async fn hold_tables(&self) -> TableHold {
        assert_eq!(self.db, Db::Postgres, "hold_tables needs PostgreSQL");
        let mut conn = sqlx::PgConnection::connect(&self.db_url).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE applications, dead_letters IN EXCLUSIVE MODE")
            .execute(&mut conn)
            .await
            .unwrap();
        TableHold(Some(conn))
    }
}

/// A transaction holding write locks on the daemon's tables (see
/// [`TestEnv::hold_tables`]); dropping it without `release` closes the
/// connection, which also ends the transaction.
pub struct TableHold(Option<sqlx::PgConnection>);

impl TableHold {
    pub async fn release(&mut self) {
        if let Some(mut conn) = self.0.take() {
            sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// A free TCP port on loopback (for `metrics.listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the daemon's metrics listener; the whole response, or an
/// empty string while nothing listens yet.
pub async fn http_get(port: u16, path: &str) -> String {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return String::new();
        };
        let _ = s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap()
}

/// Marker strings for application `i`, one per personal free-text field
/// [`with_markers`] fills; a test searches logs, metrics and the database
/// for them.
pub fn personal_markers(i: usize) -> Vec<String> {
    PERSONAL_FIELDS
        .iter()
        .map(|(name, _)| format!("Q{name}{i}Z"))
        .collect()
}

/// The personal free-text fields of the contract's examples that accept
/// any text, by marker name and JSON pointer.
const PERSONAL_FIELDS: [(&str, &str); 7] = [
    ("vorname", "/antragsteller/vornamen"),
    ("nachname", "/antragsteller/familienname"),
    ("geburtsort", "/antragsteller/geburtsort"),
    ("strasse", "/antragsteller/anschrift/strasse"),
    ("ort", "/antragsteller/anschrift/ort"),
    ("email", "/antragsteller/email"),
    ("kontoinhaber", "/bankverbindung/kontoinhaber"),
];

/// Fixed personal values of the contract's examples that cannot carry a
/// marker (check digits, formats) but must not leak either.
pub const PERSONAL_VALUES: [&str; 3] = ["DE78595567370598319781", "97382215047", "O522766829"];

/// `msg` with [`personal_markers`]`(i)` in its personal fields (an e-mail
/// address stays one: `<marker>@example.org`).
pub fn with_markers(msg: Msg, i: usize) -> Msg {
    let mut v: Value = serde_json::from_slice(&msg.body).unwrap();
    for ((name, pointer), marker) in PERSONAL_FIELDS.iter().zip(personal_markers(i)) {
        let value = if *name == "email" {
            format!("{marker}@example.org")
        } else {
            marker
        };
        if let Some(slot) = v.pointer_mut(pointer) {
            *slot = Value::String(value);
        }
    }
    Msg {
        body: serde_json::to_vec(&v).unwrap(),
        ..msg
    }
}

/// The marker of application `i` used as a property name the sender made
/// up (the schema does not define it; purge drops its pointer).
pub fn key_marker(i: usize) -> String {
    format!("Qkey{i}Z")
}

/// A rejected application with [`with_markers`] and an unexpected property
/// named by [`key_marker`] under `/antragsteller`.
pub fn rejected_with_key(i: usize) -> Msg {
    let m = with_markers(rejected(), i);
    let mut v: Value = serde_json::from_slice(&m.body).unwrap();
    v["antragsteller"][key_marker(i)] = Value::String("x".into());
    Msg {
        body: serde_json::to_vec(&v).unwrap(),
        ..m
    }
}

/// Copies `from` into `to` recursively (a test's own mapping set).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Whether `text` holds `marker` (case-insensitively: the workbench's
/// search column is lower-cased) as is or hex-encoded (as PostgreSQL and
/// SQLite's `quote()` show a blob, as a dependency might dump bytes).
pub fn holds_marker(text: &str, marker: &str) -> bool {
    let text = text.to_lowercase();
    let hex = |m: &str| -> String { m.bytes().map(|b| format!("{b:02x}")).collect() };
    [marker.to_string(), marker.to_lowercase()]
        .iter()
        .any(|m| text.contains(&m.to_lowercase()) || text.contains(&hex(m)))
}

/// Every row of every table, as text (SQLite: `quote()` of each column,
/// blobs as hex; PostgreSQL: `row::text`, bytea as hex).
pub async fn database_rows(env: &TestEnv) -> String {
    let mut out = String::new();
    match env.db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&env.db_url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            for t in tables {
                let cols: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{t}') ORDER BY cid"
                )))
                .fetch_all(&pool)
                .await
                .unwrap();
                let expr = cols
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || ',' || ");
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT {expr} FROM \"{t}\" ORDER BY rowid"
                )))
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
                out.push_str(&format!("== {t}\n{}\n", rows.join("\n")));
            }
            pool.close().await;
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&env.db_url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY 1",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            for t in tables {
                let rows: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM \"{t}\" x"
                )))
                .fetch_one(&pool)
                .await
                .unwrap();
                out.push_str(&format!("== {t}\n{}\n", rows.unwrap_or_default()));
            }
            pool.close().await;
        }
    }
    out
}

/// Everything the database holds, as text: [`database_rows`], and for
/// SQLite also its files as bytes (database, WAL: freed pages and old page
/// images included). Close every other pool first.
pub async fn database_dump(env: &TestEnv) -> String {
    let mut out = database_rows(env).await;
    if env.db == Db::Sqlite {
        for suffix in ["", "-wal", "-journal"] {
            let path = env.dir.path().join(format!("bridge.db{suffix}"));
            if let Ok(bytes) = std::fs::read(&path) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    out
}

/// CPU time consumed by this thread (user + system), in seconds: what the
/// benchmarks count, so that other load on the machine does not.
pub fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
