//! Fuzz target: structure-aware. Starts from the contract's valid Hauptantrag
//! and lets the fuzzer overwrite one field (chosen by a pointer from the
//! input) with a JSON value parsed from the rest, so the mapping rules, CEL
//! evaluation and record writer see deep, almost-valid inputs.
#![no_main]

use std::sync::OnceLock;

use allegro_core::pipeline::{Outcome, Pipeline, PipelineConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Setup {
    pipeline: Pipeline,
    base: Value,
    pointers: Vec<String>,
}

fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| pointers(c, format!("{here}/{k}"), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| pointers(c, format!("{here}/{i}"), out)),
        _ => {}
    }
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let pipeline = Pipeline::load(&PipelineConfig {
            mappings_dir: root.join("mappings"),
            schemas_dir: root.join("schemas"),
            ..PipelineConfig::default()
        })
        .expect("mappings load");
        let text = std::fs::read_to_string(root.join("fixtures/contract/hauptantrag-gueltig.json"))
            .expect("contract example");
        let base: Value = serde_json::from_str(&text).unwrap();
        let mut ps = Vec::new();
        pointers(&base, String::new(), &mut ps);
        Setup { pipeline, base, pointers: ps }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(replacement) = serde_json::from_slice::<Value>(rest) else { return };
    let mut doc = s.base.clone();
    let ptr = &s.pointers[which as usize % s.pointers.len()];
    if ptr.is_empty() || ptr == "/antragId" || ptr.starts_with("/formular") {
        return;
    }
    if let Some(slot) = doc.pointer_mut(ptr) {
        *slot = replacement;
    }
    let body = serde_json::to_vec(&doc).unwrap();
    let p = s.pipeline.process(&body, None);
    assert_ne!(p.outcome(), Outcome::Invalid, "only form/antragId make a body invalid");
    if p.outcome() == Outcome::Accepted {
        let xml = String::from_utf8(p.record().unwrap().to_vec()).expect("records are UTF-8");
        assert!(!xml.chars().any(|c| (c < '\u{20}' && c != '\n' && c != '\t' && c != '\r') || c == '\u{FFFE}' || c == '\u{FFFF}'));
    }
});
