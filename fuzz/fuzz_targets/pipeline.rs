//! Fuzz target: arbitrary bytes (and an arbitrary message_id) through intake
//! and the whole pipeline. Must never panic, hang or allocate without bound;
//! every input ends in exactly one outcome.
#![no_main]

use std::sync::OnceLock;

use allegro_core::pipeline::{Outcome, Pipeline, PipelineConfig};
use libfuzzer_sys::fuzz_target;

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Pipeline::load(&PipelineConfig {
            mappings_dir: root.join("mappings"),
            schemas_dir: root.join("schemas"),
            max_body_bytes: 64 * 1024,
        })
        .expect("mappings load")
    })
}

fuzz_target!(|data: &[u8]| {
    let (mid, body) = match data.split_first() {
        Some((&n, rest)) if (n as usize) < rest.len() && n < 40 => {
            let (m, b) = rest.split_at(n as usize);
            (std::str::from_utf8(m).ok(), b)
        }
        _ => (None, data),
    };
    let p = pipeline().process(body, mid);
    match p.outcome() {
        Outcome::Accepted => assert!(p.record().is_some() && p.antrag_id().is_some()),
        Outcome::Rejected => assert!(p.findings().iter().any(|f| f.is_error())),
        Outcome::Invalid => assert!(p.invalid().is_some() && p.record().is_none()),
    }
});
