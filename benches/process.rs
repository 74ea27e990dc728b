//! Benchmark of `allegro-bridge process` at the machine's limits (issue #10):
//! N generated valid Hauptanträge (default 10,000) run through the release
//! binary, in one run:
//!
//! - CPU per application of the whole command (user + sys of the child, from
//!   `getrusage`) with the records on tmpfs (`/dev/shm`), as applications
//!   per CPU-second; goal at least 20,000;
//! - wall time with the records on the real disk (`--base`, default the
//!   current folder), as record files per second, against the raw
//!   `outbox::write_batch` rate of the same number and size of files in the
//!   same folder, measured right after; goal at least 0.9 of it.
//!
//! Run: `cargo bench --bench process -- [--files 10000] [--base DIR] [--rounds 3]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use allegro_testkit::{bridge_exe, data_dir};
use serde_json::Value;

struct Args {
    files: usize,
    base: PathBuf,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        files: 10_000,
        base: PathBuf::from("."),
        rounds: 3,
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
            "--rounds" => a.rounds = v.parse().unwrap_or_else(|_| bad()),
            _ => bad(),
        }
    }
    a
}

/// `n` valid applications with their own antragIds in `dir`.
fn generate(dir: &Path, n: usize) {
    let text = std::fs::read_to_string(data_dir().join("hauptantrag-gueltig.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    for i in 0..n {
        v["antragId"] = Value::String(format!("00000000-0000-4000-8000-{i:012}"));
        std::fs::write(
            dir.join(format!("{i:06}.json")),
            serde_json::to_vec(&v).unwrap(),
        )
        .unwrap();
    }
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

/// Record files per second of `outbox::write_batch` in chunks of 512.
fn raw_write_batch(dir: &Path, n: usize, size: usize) -> f64 {
    let body = vec![b'x'; size];
    let names: Vec<String> = (0..n).map(|i| format!("{i}.xml")).collect();
    let t0 = Instant::now();
    for chunk in names.chunks(512) {
        allegro_store::outbox::write_batch(
            dir,
            chunk.iter().map(|n| (n.as_str(), body.as_slice())),
        )
        .unwrap();
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

fn main() {
    let a = args();
    let inputs = tempfile::tempdir_in(&a.base).unwrap();
    generate(inputs.path(), a.files);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("process bench: {} applications, {cores} cores", a.files);
    let mut kept = Vec::new();
    for round in 1..=a.rounds {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let (wall, cpu) = run_process(inputs.path(), shm.path());
        println!(
            "round {round}: records on tmpfs: {:>8.0} applications per CPU-second (user+sys {cpu:.2} s, wall {wall:.2} s)",
            a.files as f64 / cpu
        );
        let disk = tempfile::tempdir_in(&a.base).unwrap();
        let (wall, _) = run_process(inputs.path(), disk.path());
        let files_rate = a.files as f64 / wall;
        let raw_dir = tempfile::tempdir_in(&a.base).unwrap();
        let raw = raw_write_batch(raw_dir.path(), a.files, mean_size(disk.path()));
        println!(
            "round {round}: records on disk: {files_rate:>8.0} files/s; raw write_batch {raw:.0} files/s; ratio {:.2}",
            files_rate / raw
        );
        // Deleting 10,000 files right away would slow the next round's
        // file creation on ext4 (see docs/operations.md); keep them.
        kept.extend([shm, disk, raw_dir]);
    }
}
