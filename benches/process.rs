//! Benchmark of `allegro-bridge process` at the machine's limits (issue #10):
//! N generated valid Hauptanträge (default 10,000) run through the release
//! binary, each round measuring, in this order:
//!
//! - the baseline: the pure pipeline on the same N bodies, in this process
//!   on one thread (thread CPU time), as applications per CPU-second;
//! - CPU per application of the whole command (user + sys of the child, from
//!   `getrusage`) with the records on tmpfs (`/dev/shm`), as applications
//!   per CPU-second (goal of the issue: at least 20,000), and its ratio to
//!   the baseline of the same round;
//! - wall time with the records on the real disk (`--base`, default the
//!   current folder), as record files per second, against the raw
//!   `outbox::write_batch` rate of the same number and size of files in the
//!   same folder, measured right after; goal at least 0.9 of it.
//!
//! The medians of the rounds' ratios close the output: this machine's
//! speed changes from minute to minute, ratios within a round much less.
//!
//! Run: `cargo bench --bench process -- [--files 10000] [--base DIR] [--rounds 5]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use allegro_core::pipeline::{Pipeline, PipelineConfig};
use allegro_testkit::{bridge_exe, data_dir, repo_root, thread_cpu};
use serde_json::Value;

// The binary's allocator, so the baseline compares like with like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    files: usize,
    base: PathBuf,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        files: 10_000,
        base: PathBuf::from("."),
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--bench" {
            continue; // added by `cargo bench`
        }
        let v = it.next().unwrap_or_default();
        let bad = || -> ! {
            eprintln!("process bench: {k} {v}: usage: [--files N] [--base DIR] [--rounds N]");
            std::process::exit(2)
        };
        match k.as_str() {
            "--files" => a.files = v.parse().unwrap_or_else(|_| bad()),
            "--base" => a.base = PathBuf::from(v),
            "--rounds" => a.rounds = v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| bad()),
            _ => bad(),
        }
    }
    a
}

/// `n` valid applications with their own antragIds in `dir`; returns the
/// bodies too, for the in-process baseline.
fn generate(dir: &Path, n: usize) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(data_dir().join("hauptantrag-gueltig.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    (0..n)
        .map(|i| {
            v["antragId"] = Value::String(format!("00000000-0000-4000-8000-{i:012}"));
            let body = serde_json::to_vec(&v).unwrap();
            std::fs::write(dir.join(format!("{i:06}.json")), &body).unwrap();
            body
        })
        .collect()
}

/// Applications per CPU-second of the pure pipeline over `bodies`, on this
/// thread, with the same allocator as the binary.
fn baseline(pipeline: &Pipeline, bodies: &[Vec<u8>]) -> f64 {
    let start = thread_cpu();
    for b in bodies {
        std::hint::black_box(pipeline.process(b, None));
    }
    bodies.len() as f64 / (thread_cpu() - start)
}

/// User + system CPU seconds of all waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// Runs `process --out out inputs`; returns (wall seconds, CPU seconds).
fn run_process(inputs: &Path, out: &Path) -> (f64, f64) {
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let o = Command::new(bridge_exe())
        .current_dir(allegro_testkit::repo_root())
        .args(["process", "--out"])
        .arg(out)
        .arg(inputs)
        .output()
        .unwrap();
    let wall = t0.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (wall, children_cpu() - cpu0)
}

/// How many `write_batch` calls `process` runs at once per chunk
/// (`WRITERS` in src/cli/process.rs).
const PROCESS_WRITERS: usize = 4;

/// Record files per second of `outbox::write_batch` in chunks of 512, each
/// chunk in `parts` concurrent calls (1: one after another, the issue's
/// baseline; [`PROCESS_WRITERS`]: as `process` writes).
fn raw_write_batch(dir: &Path, n: usize, size: usize, parts: usize) -> f64 {
    let body = vec![b'x'; size];
    let names: Vec<String> = (0..n).map(|i| format!("{i}.xml")).collect();
    let t0 = Instant::now();
    for chunk in names.chunks(512) {
        std::thread::scope(|s| {
            for part in chunk.chunks(chunk.len().div_ceil(parts)) {
                let body = body.as_slice();
                s.spawn(move || {
                    allegro_store::outbox::write_batch(dir, part.iter().map(|n| (n.as_str(), body)))
                        .unwrap()
                });
            }
        });
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn mean_size(dir: &Path) -> usize {
    let sizes: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    (sizes.iter().sum::<u64>() / (sizes.len() as u64).max(1)) as usize
}

/// CPU seconds per file (this thread, user + sys) of the file work alone:
/// reading every input file, then writing as many records of `size` bytes
/// to tmpfs with `write_batch` in chunks of 512, as `process` does.
fn io_floor(inputs: &Path, n: usize, size: usize) -> f64 {
    use std::io::Read;
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    let body = vec![b'x'; size];
    let names: Vec<String> = (0..n).map(|i| format!("{i}.xml")).collect();
    let mut buf = Vec::new();
    let start = thread_cpu();
    for i in 0..n {
        buf.clear();
        let f = std::fs::File::open(inputs.join(format!("{i:06}.json"))).unwrap();
        f.take(u64::MAX).read_to_end(&mut buf).unwrap();
    }
    for chunk in names.chunks(512) {
        allegro_store::outbox::write_batch(
            out.path(),
            chunk.iter().map(|n| (n.as_str(), body.as_slice())),
        )
        .unwrap();
    }
    (thread_cpu() - start) / n as f64
}

/// The disk half of a round: (`process` files/s, raw `write_batch` files/s
/// one after another, the same in [`PROCESS_WRITERS`] parts at once). The
/// order alternates between rounds, because the disk's flush latency drifts
/// within a round. The folders are kept: deleting 10,000 files right away
/// would slow the next round's file creation on ext4 (see
/// docs/operations.md); they go into `kept`, removed when the bench ends.
fn disk_round(
    base: &Path,
    (inputs, n): (&Path, usize),
    size: usize,
    round: usize,
    kept: &mut Vec<tempfile::TempDir>,
) -> (f64, f64, f64) {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir_in(base).unwrap())
        .collect();
    let process = || n as f64 / run_process(inputs, dirs[0].path()).0;
    let raw = |i: usize, parts| raw_write_batch(dirs[i].path(), n, size, parts);
    let result = if round % 2 == 1 {
        let p = process();
        (p, raw(1, 1), raw(2, PROCESS_WRITERS))
    } else {
        let (r, rp) = (raw(1, 1), raw(2, PROCESS_WRITERS));
        (process(), r, rp)
    };
    kept.extend(dirs);
    result
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    let inputs = tempfile::tempdir_in(&a.base).unwrap();
    let bodies = generate(inputs.path(), a.files);
    let pipeline = Pipeline::load(&PipelineConfig {
        mappings_dir: repo_root().join("mappings"),
        schemas_dir: repo_root().join("schemas"),
        ..PipelineConfig::default()
    })
    .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("process bench: {} applications, {cores} cores", a.files);
    let (mut cpu_ratios, mut disk_ratios, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floors, mut parts_ratios) = (Vec::new(), Vec::new());
    let mut kept = Vec::new();
    for round in 1..=a.rounds {
        let base = baseline(&pipeline, &bodies);
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let (wall, cpu) = run_process(inputs.path(), shm.path());
        let io = io_floor(inputs.path(), a.files, mean_size(shm.path()));
        let rate = a.files as f64 / cpu;
        let floor = 1.0 / (1.0 / base + io);
        println!(
            "round {round}: pipeline alone {base:>6.0}/CPU-s; file reads + writes alone {:.1} µs/file; both {floor:>6.0}/CPU-s; process, records on tmpfs: {rate:>6.0} applications per CPU-second (user+sys {cpu:.2} s, wall {wall:.2} s); {:.2} of pipeline alone, {:.2} of pipeline + files",
            io * 1e6,
            rate / base,
            rate / floor
        );
        floors.push(rate / floor);
        let size = mean_size(shm.path());
        let (files_rate, raw, raw_parts) =
            disk_round(&a.base, (inputs.path(), a.files), size, round, &mut kept);
        println!(
            "round {round}: records on disk: {files_rate:>6.0} files/s; raw write_batch {raw:.0} files/s (ratio {:.2}), in {PROCESS_WRITERS} parts at once {raw_parts:.0} files/s (ratio {:.2})",
            files_rate / raw,
            files_rate / raw_parts
        );
        rates.push(rate);
        cpu_ratios.push(rate / base);
        disk_ratios.push(files_rate / raw);
        parts_ratios.push(files_rate / raw_parts);
        kept.push(shm);
    }
    println!(
        "median of {} rounds: process {:.0} applications per CPU-second, {:.2} of the pipeline alone, {:.2} of pipeline + file work; disk {:.2} of raw write_batch, {:.2} of it in {PROCESS_WRITERS} parts at once",
        a.rounds,
        median(rates),
        median(cpu_ratios),
        median(floors),
        median(disk_ratios),
        median(parts_ratios)
    );
}
