//! Drain-rate benchmark of the daemon (issue #3, "Speed").
//!
//! Pre-publishes N realistic applications (60 % accepted, 30 % rejected, 10 %
//! invalid, built from the contract examples with fresh antragIds) and
//! measures, in one run:
//! - the broker's raw drain rate: a plain consume + ack loop (one ack per
//!   message) with the same prefetch on a quorum queue of the same kind;
//! - the raw file rate of the outbox directory (`outbox::write_atomic`);
//! - the daemon's end-to-end drain rate with PostgreSQL and with SQLite: from
//!   the moment messages start leaving the queue until every application is
//!   stored, acked, and every record file written;
//! - the daemon's peak RSS (VmHWM) and its RSS at each quarter of the drain.
//!
//! Run (release build, services from `scripts/start-services.sh`):
//!
//! ```text
//! cargo bench --bench daemon -- [--messages 10000] [--prefetch 1000] [--rounds 1]
//!     [--only raw,postgres,sqlite,files] [--base DIR]
//! ```
//!
//! Environment: `ALLEGRO_TEST_AMQP`, `ALLEGRO_TEST_PG` as for the tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use allegro_testkit::{
    expected_counts, free_port, http_get, log_filter, mix, Db, Expect, Msg, Publisher, TestEnv,
};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;

struct Args {
    messages: usize,
    prefetch: u16,
    only: Option<String>,
    /// Parent folder of the outbox and SQLite file (default: the current
    /// folder; e.g. /dev/shm to take the disk out of the measurement).
    base: PathBuf,
    /// Repetitions of raw + daemon runs (a summary of the ratios follows).
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        messages: 10_000,
        prefetch: 1000,
        only: None,
        base: PathBuf::from("."),
        rounds: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--bench" {
            continue; // added by `cargo bench`
        }
        if k == "--help" || k == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it.next().unwrap_or_default();
        let bad = |what: &str| -> ! { usage_error(&format!("{k} expects {what}, got '{v}'")) };
        match k.as_str() {
            "--messages" => a.messages = v.parse().unwrap_or_else(|_| bad("a count")),
            "--prefetch" => a.prefetch = v.parse().unwrap_or_else(|_| bad("a count up to 65535")),
            "--only" => a.only = Some(v),
            "--rounds" => a.rounds = v.parse().unwrap_or_else(|_| bad("a count")),
            "--base" => a.base = PathBuf::from(v),
            _ => usage_error(&format!("unknown argument '{k}'")),
        }
    }
    a
}

const USAGE: &str = "usage: cargo bench --bench daemon -- [--messages 10000] [--prefetch 1000]
                    [--rounds 1] [--only raw,postgres,sqlite,files] [--base DIR]
Services as for the tests (scripts/start-services.sh).";

fn usage_error(msg: &str) -> ! {
    eprintln!("bench-daemon: {msg}\n{USAGE}");
    std::process::exit(2);
}

/// Plain consume + ack loop: the broker's ceiling.
async fn raw_drain(a: &Args, msgs: &[Msg]) -> f64 {
    let env = TestEnv::in_dir(Db::Sqlite, "bench-raw", &a.base).await;
    env.declare().await;
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, msgs)
        .await;
    let conn = env.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(a.prefetch, BasicQosOptions::default())
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut consumer = ch
        .basic_consume(
            env.intake.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut n = 0;
    while let Some(d) = consumer.next().await {
        let d = d.unwrap();
        d.ack(BasicAckOptions::default()).await.unwrap();
        n += 1;
        if n == msgs.len() {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = ch.close(200, "OK".into()).await;
    let _ = conn.close(200, "OK".into()).await;
    keep(env.cleanup_keeping_files().await);
    msgs.len() as f64 / secs
}

/// The folders of finished runs, deleted only when the benchmark ends.
///
/// On an ext4 file system without a journal (as on the VM the figures in the
/// docs come from), the inode allocator skips inodes freed in the last
/// minute, one by one: a run that starts right after 10,000 files were
/// deleted pays for each of them on every file it creates, and later rounds
/// would measure the benchmark's own clean-up instead of the daemon.
static KEPT: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

fn keep(dir: tempfile::TempDir) {
    KEPT.lock().unwrap().push(dir);
}

/// Atomic record files per second in a fresh folder, written in batches of
/// 500 with one directory sync each (`outbox::write_batch`, as the daemon's
/// dispatcher does), on one thread.
fn raw_files_batched(base: &Path, n: usize, size: usize) -> f64 {
    let dir = tempfile::tempdir_in(base).unwrap();
    let body = vec![b'x'; size];
    let names: Vec<String> = (0..n).map(|i| format!("{i}.xml")).collect();
    let t0 = Instant::now();
    for chunk in names.chunks(500) {
        allegro_store::outbox::write_batch(
            dir.path(),
            chunk.iter().map(|n| (n.as_str(), body.as_slice())),
        )
        .unwrap();
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    keep(dir);
    rate
}

/// Atomic record files per second in a fresh folder, one directory sync per
/// file (`outbox::write_atomic`).
fn raw_files(base: &Path, n: usize, size: usize, parallel: usize) -> f64 {
    let dir = tempfile::tempdir_in(base).unwrap();
    let body = vec![b'x'; size];
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..parallel {
            let dir = dir.path();
            let body = &body;
            s.spawn(move || {
                for i in (t..n).step_by(parallel) {
                    allegro_store::outbox::write_atomic(dir, &format!("{i}.xml"), body).unwrap();
                }
            });
        }
    });
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    keep(dir);
    rate
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct BridgeRun {
    acked_rate: f64,
    e2e_rate: f64,
    /// Record files written per second over the end-to-end time.
    files_rate: f64,
    peak_rss_kib: u64,
    rss_quarters: Vec<u64>,
    record_bytes: usize,
    cpu_us_per_msg: f64,
    /// CPU µs per message over the acked drain, by process group.
    cpu_split: Vec<(String, f64)>,
}

async fn bridge_drain(a: &Args, msgs: &[Msg], db: Db) -> BridgeRun {
    let mut env = TestEnv::in_dir(db, "bench-bridge", &a.base).await;
    env.declare().await;
    Publisher::new(&env)
        .await
        .publish_all(&env.intake, msgs)
        .await;
    let store = env.store().await;
    // Progress comes from the daemon's own counters (`/metrics`), not from
    // the database: polling COUNT(*) every few milliseconds would load
    // PostgreSQL and SQLite with work that is not the daemon's. The database
    // is checked once at the end.
    let metrics_port = free_port();
    // BENCH_DAEMON_LOG=1: the daemon logs at trace level into its folder.
    let trace = std::env::var_os("BENCH_DAEMON_LOG").is_some();
    env.extra_env = vec![
        (
            "ALLEGRO_BRIDGE__BROKER__PREFETCH".into(),
            a.prefetch.to_string(),
        ),
        (
            "ALLEGRO_BRIDGE__METRICS__LISTEN".into(),
            format!("127.0.0.1:{metrics_port}"),
        ),
        (
            "RUST_LOG".into(),
            log_filter(if trace { "trace" } else { "warn" }),
        ),
    ];
    let mut daemon = env.spawn_daemon();
    if trace {
        println!("daemon log: {}", daemon.log.display());
    }
    let pid = daemon.child.id();
    let total = msgs.len() as u32;
    let (expected_apps, invalid) = expected_counts(msgs);
    let expected_records = msgs.iter().filter(|m| m.expect == Expect::Accepted).count();

    // Clock starts when messages start leaving the queue.
    let t0 = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("the daemon exited early: {status}");
        }
        if env.queue_len(&env.intake).await < total {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let cpu_at_start = CpuSnapshot::take();
    let mut cpu_split = Vec::new();
    let mut quarters = Vec::new();
    let mut acked_at = None;
    let e2e = loop {
        let m = scrape(metrics_port).await;
        let acked = m.get("allegro_bridge_deliveries_acked_total");
        while quarters.len() < 4 && acked as usize >= msgs.len() * (quarters.len() + 1) / 4 {
            quarters.push(rss_kib(pid, "VmRSS:"));
        }
        if acked_at.is_none() && acked as usize >= msgs.len() {
            acked_at = Some(t0.elapsed());
            cpu_split = CpuSnapshot::take().since(&cpu_at_start, msgs.len());
        }
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("the daemon exited early: {status}");
        }
        if acked_at.is_some()
            && m.get("allegro_bridge_records_written_total") as usize >= expected_records
        {
            break t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The database must agree with the counters.
    let c = store.counts().await.unwrap();
    assert_eq!(c.applications, expected_apps, "applications stored");
    assert_eq!(c.dead_letters as usize, invalid, "dead letters logged");
    assert_eq!(c.records as usize, expected_records, "records stored");
    assert_eq!(c.records_pending, 0, "record files written");
    assert_eq!(env.queue_len(&env.intake).await, 0, "intake drained");
    let acked = acked_at.unwrap();
    let peak = rss_kib(pid, "VmHWM:");
    let cpu = cpu_secs(pid);
    daemon.sigterm();
    daemon.wait_exit(Duration::from_secs(30));
    // The mean size of the record files (Hauptantrag and Weiterbewilligung
    // records differ), for the raw file benchmark.
    let sizes: Vec<u64> = std::fs::read_dir(&env.outbox)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    let record_bytes = (sizes.iter().sum::<u64>() / (sizes.len() as u64).max(1)) as usize;
    store.close().await;
    keep(env.cleanup_keeping_files().await);
    BridgeRun {
        acked_rate: msgs.len() as f64 / acked.as_secs_f64(),
        e2e_rate: msgs.len() as f64 / e2e.as_secs_f64(),
        files_rate: expected_records as f64 / e2e.as_secs_f64(),
        peak_rss_kib: peak,
        rss_quarters: quarters,
        record_bytes,
        cpu_us_per_msg: cpu * 1e6 / msgs.len() as f64,
        cpu_split,
    }
}

/// CPU ticks so far of the processes that share the machine, grouped as
/// daemon, broker, database and the rest, plus the machine's idle ticks.
struct CpuSnapshot {
    groups: std::collections::BTreeMap<&'static str, u64>,
    idle: u64,
}

impl CpuSnapshot {
    fn take() -> CpuSnapshot {
        let mut groups = std::collections::BTreeMap::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            // Threads count towards their process: /proc/PID/stat sums them.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((head, tail)) = stat.rsplit_once(')') else {
                continue;
            };
            let comm = head.split_once('(').map_or("", |x| x.1);
            let f: Vec<&str> = tail.split_whitespace().collect();
            let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let group = match comm {
                "allegro-bridge" => "daemon",
                "beam.smp" => "rabbitmq",
                "postgres" => "postgresql",
                "bench-daemon" => "bench (probe)",
                c if c.starts_with("kworker") || c.starts_with("jbd2") => "kernel workers",
                _ => "other",
            };
            *groups.entry(group).or_insert(0) += ticks;
        }
        let idle = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        CpuSnapshot { groups, idle }
    }

    /// µs per message by group (and "idle") between `start` and now.
    fn since(&self, start: &CpuSnapshot, messages: usize) -> Vec<(String, f64)> {
        let per = |t: u64| t as f64 * 1e4 / messages as f64; // ticks are 10 ms
        let mut v: Vec<(String, f64)> = self
            .groups
            .iter()
            .map(|(g, t)| {
                let before = start.groups.get(g).copied().unwrap_or(0);
                (g.to_string(), per(t.saturating_sub(before)))
            })
            .collect();
        v.push(("idle".into(), per(self.idle.saturating_sub(start.idle))));
        v
    }
}

/// The daemon's counters from `GET /metrics` (empty while it does not answer).
struct Scrape(String);

impl Scrape {
    /// The value of an unlabelled sample, 0 if absent.
    fn get(&self, name: &str) -> u64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

async fn scrape(port: u16) -> Scrape {
    Scrape(http_get(port, "/metrics").await)
}

/// Median, minimum and maximum.
fn spread(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => (0.0, 0.0, 0.0),
        n => (v[n / 2], v[0], v[n - 1]),
    }
}

/// User + system CPU seconds of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let msgs = mix(a.messages);
    let avg = msgs.iter().map(|m| m.body.len()).sum::<usize>() / msgs.len().max(1);
    println!(
        "bench-daemon: {} messages (avg body {avg} bytes), prefetch {}",
        msgs.len(),
        a.prefetch
    );
    let want = |k: &str| {
        a.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == k))
    };

    // Each round: the raw drain, then the daemon with each database, so
    // every ratio compares runs minutes apart, not sessions apart.
    let mut summary: std::collections::BTreeMap<&str, Vec<(f64, f64)>> = Default::default();
    let mut raws = vec![];
    let mut results = vec![];
    for round in 1..=a.rounds {
        if a.rounds > 1 {
            println!("-- round {round} of {}", a.rounds);
        }
        let raw = if want("raw") {
            let r = raw_drain(&a, &msgs).await;
            println!("broker raw drain (consume + ack):   {r:>8.0} msg/s");
            raws.push(r);
            Some(r)
        } else {
            None
        };
        for (label, db) in [("postgres", Db::Postgres), ("sqlite", Db::Sqlite)] {
            if !want(label) {
                continue;
            }
            let r = bridge_drain(&a, &msgs, db).await;
            println!(
                "bridge {label:<8} acked:               {:>8.0} msg/s",
                r.acked_rate
            );
            println!(
                "bridge {label:<8} end to end (files):  {:>8.0} msg/s ({:.0} record files/s)",
                r.e2e_rate, r.files_rate
            );
            if let Some(raw) = raw {
                println!(
                    "bridge {label:<8} ratio bridge/raw:    {:>8.2} (end to end), {:.2} (acked)",
                    r.e2e_rate / raw,
                    r.acked_rate / raw
                );
                summary
                    .entry(label)
                    .or_default()
                    .push((r.acked_rate / raw, r.e2e_rate / raw));
            }
            println!(
                "bridge {label:<8} daemon CPU:          {:>8.0} µs/msg",
                r.cpu_us_per_msg
            );
            println!(
                "bridge {label:<8} CPU µs/msg while draining: {}",
                r.cpu_split
                    .iter()
                    .map(|(g, us)| format!("{g} {us:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "bridge {label:<8} peak RSS: {} MiB; RSS at 25/50/75/100 %: {:?} MiB",
                r.peak_rss_kib / 1024,
                r.rss_quarters.iter().map(|k| k / 1024).collect::<Vec<_>>()
            );
            results.push(r);
        }
    }
    if a.rounds > 1 && !summary.is_empty() {
        println!("-- summary over {} rounds (median, min – max)", a.rounds);
        let (m, lo, hi) = spread(&mut raws);
        println!("broker raw drain: {m:.0} msg/s ({lo:.0} – {hi:.0})");
        for (label, ratios) in &summary {
            let mut acked: Vec<f64> = ratios.iter().map(|r| r.0).collect();
            let mut e2e: Vec<f64> = ratios.iter().map(|r| r.1).collect();
            let (m, lo, hi) = spread(&mut acked);
            let (me, loe, hie) = spread(&mut e2e);
            println!(
                "bridge {label:<8} ratio bridge/raw, acked: {m:.2} ({lo:.2} – {hi:.2}); end to end: {me:.2} ({loe:.2} – {hie:.2})"
            );
        }
    }
    if want("files") {
        let size = results
            .first()
            .map(|r| r.record_bytes)
            .unwrap_or(6000)
            .max(1);
        let f1 = raw_files(&a.base, a.messages.min(5000), size, 1);
        let f2 = raw_files(&a.base, a.messages.min(5000), size, 2);
        let fb = raw_files_batched(&a.base, a.messages.min(5000), size);
        println!(
            "raw outbox files ({size} B, write_atomic): {f1:>8.0} files/s (1 thread), {f2:.0} (2 threads)"
        );
        println!("raw outbox files ({size} B, write_batch of 500): {fb:>8.0} files/s");
        // End to end waits for the last record file: where the outbox disk
        // is slower than the broker, that is the bound, not the daemon.
        for r in &results {
            println!(
                "bridge record files/s against raw write_batch: {:.0} / {fb:.0} = {:.2}",
                r.files_rate,
                r.files_rate / fb
            );
        }
    }
    KEPT.lock().unwrap().clear();
}
