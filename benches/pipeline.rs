//! Benchmark of the pure pipeline on realistic applications (issue: 20,000
//! applications per CPU-second on one core).
//!
//! Run: `cargo bench --bench pipeline`. Besides criterion's report it prints
//! applications per second for each case (single-threaded, so per CPU-second).
//! Cases: parse only (baseline); the whole pipeline (parse, schema, checks,
//! rules, record) on the family Hauptantrag and on the rejected example; and
//! the whole pipeline plus writing the record file atomically.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use allegro_core::pipeline::{Outcome, Pipeline, PipelineConfig};
use allegro_store::outbox;
use allegro_testkit::thread_cpu;
use criterion::{criterion_group, criterion_main, Criterion};

// The same allocator as the binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pipeline() -> Pipeline {
    Pipeline::load(&PipelineConfig {
        mappings_dir: root().join("mappings"),
        schemas_dir: root().join("schemas"),
        ..PipelineConfig::default()
    })
    .expect("mappings load")
}

fn example(name: &str) -> Vec<u8> {
    std::fs::read(root().join("fixtures/contract").join(name)).expect("example")
}

/// Applications per CPU-second of `f` (this thread's CPU time, so load from
/// other processes does not count), measured over about 1.5 s of CPU.
fn rate(mut f: impl FnMut()) -> f64 {
    for _ in 0..200 {
        f();
    }
    let start = thread_cpu();
    let mut n = 0u64;
    while thread_cpu() - start < 1.5 {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    n as f64 / (thread_cpu() - start)
}

fn bench(c: &mut Criterion) {
    let p = pipeline();
    let family = example("hauptantrag-gueltig.json");
    let faulty = example("hauptantrag-mit-fehlern.json");
    let five =
        std::fs::read(root().join("fixtures/bg-ha-1.0/gueltig-familie.json")).expect("fixture");
    assert_eq!(p.process(&five, None).outcome(), Outcome::Accepted);
    assert_eq!(p.process(&family, None).outcome(), Outcome::Accepted);
    assert_eq!(p.process(&faulty, None).outcome(), Outcome::Rejected);
    let dir = tempfile::tempdir().unwrap();

    let parse = rate(|| {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&family)).unwrap());
    });
    let accepted = rate(|| {
        black_box(p.process(black_box(&family), None));
    });
    let family_of_five = rate(|| {
        black_box(p.process(black_box(&five), None));
    });
    let rejected = rate(|| {
        black_box(p.process(black_box(&faulty), None));
    });
    let mut i = 0u64;
    let with_file = rate(|| {
        let r = p.process(black_box(&family), None);
        i += 1;
        outbox::write_atomic(dir.path(), &format!("{i}.xml"), r.record().unwrap()).unwrap();
    });
    println!();
    println!("applications per CPU-second (one core, thread CPU time):");
    println!("  baseline serde_json parse only        {parse:>10.0} /s");
    println!("  pipeline, family Hauptantrag accepted {accepted:>10.0} /s");
    println!("  pipeline, family of five (fixture)    {family_of_five:>10.0} /s");
    println!("  pipeline, example with errors         {rejected:>10.0} /s");
    println!("  pipeline + atomic record file (fsync) {with_file:>10.0} /s");
    println!();

    let mut g = c.benchmark_group("pipeline");
    g.bench_function("parse_only", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&family)).unwrap())
    });
    g.bench_function("process_accepted", |b| {
        b.iter(|| p.process(black_box(&family), None))
    });
    g.bench_function("process_family_of_five", |b| {
        b.iter(|| p.process(black_box(&five), None))
    });
    g.bench_function("process_rejected", |b| {
        b.iter(|| p.process(black_box(&faulty), None))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
