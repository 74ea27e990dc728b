//! Per-stage timing of the pipeline (profiling aid; not part of the product).
use std::hint::black_box;
use std::time::Instant;

use allegro_core::pipeline::{Pipeline, PipelineConfig};
use allegro_core::{checks, dates, record, rules};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn t(name: &str, n: u32, mut f: impl FnMut()) {
    if let Ok(only) = std::env::var("ONLY") {
        if only != name {
            return;
        }
    }
    for _ in 0..(n / 10) {
        f();
    }
    let s = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name:<12} {:>8.2} µs",
        s.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    // Run from anywhere in the repository: paths are relative to its root.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = Pipeline::load(&PipelineConfig {
        mappings_dir: root.join("mappings"),
        schemas_dir: root.join("schemas"),
        ..PipelineConfig::default()
    })
    .unwrap();
    let body = std::fs::read(root.join("fixtures/contract/hauptantrag-gueltig.json")).unwrap();
    let m = p.mappings().get("BG-HA", "1.0").unwrap().clone();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let today = dates::parse_date("2026-11-20");
    let n: u32 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20000);
    // As intake does it: UTF-8 checked once, then parsed from the str.
    t("parse", n, || {
        let text = std::str::from_utf8(&body).unwrap();
        black_box(serde_json::from_str::<serde_json::Value>(text).unwrap());
    });
    t("schema", n, || {
        black_box(m.schema.is_valid(&doc));
    });
    t("checks", n, || {
        let input = checks::Input {
            doc: &doc,
            today,
            labels: &m.labels,
        };
        let mut out = vec![];
        for c in &m.checks {
            c.run(&input, &mut out);
        }
        black_box(out);
    });
    for r in &m.rules {
        t(&r.id[..r.id.len().min(12)], n, || {
            let mut e = rules::Eval::new(&doc, today, &m.labels);
            let mut out = vec![];
            e.run(&m.rule_env, r, &mut out);
            black_box(out);
        });
    }
    t("rules", n, || {
        let mut e = rules::Eval::new(&doc, today, &m.labels);
        let mut out = vec![];
        for r in &m.rules {
            e.run(&m.rule_env, r, &mut out);
        }
        black_box(out);
    });
    let meta = record::RecordMeta {
        record_version: "1.0",
        mapping_name: "x",
        mapping_version: "1.0",
        findings: &[],
        corrections: &[],
    };
    t("record", n, || {
        black_box(record::build(&m.groups, &doc, &meta, &|_, _| unreachable!()).unwrap());
    });
    t("total", n, || {
        black_box(p.process(&body, None));
    });
}
