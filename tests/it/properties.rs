//! Property tests of the pipeline: it never panics, every input gets exactly
//! one consistent outcome, amounts round-trip exactly (never through binary
//! floating point), and record text is always well-formed XML 1.0 content.

use std::path::PathBuf;
use std::sync::OnceLock;

use allegro_core::pipeline::{Outcome, Pipeline, PipelineConfig};
use proptest::prelude::*;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        Pipeline::load(&PipelineConfig {
            mappings_dir: root().join("mappings"),
            schemas_dir: root().join("schemas"),
            max_body_bytes: 64 * 1024,
        })
        .unwrap()
    })
}

fn valid_wba() -> String {
    std::fs::read_to_string(root().join("fixtures/contract/weiterbewilligung-gueltig.json"))
        .unwrap()
}

fn consistent(body: &[u8], mid: Option<&str>) {
    let p = pipeline().process(body, mid);
    match p.outcome() {
        Outcome::Accepted => {
            assert!(p.record().is_some() && p.antrag_id().is_some() && p.invalid().is_none());
            assert!(!p.findings().iter().any(|f| f.is_error()));
        }
        Outcome::Rejected => {
            assert!(p.record().is_none() && p.antrag_id().is_some());
            assert!(p.findings().iter().any(|f| f.is_error()));
        }
        Outcome::Invalid => assert!(p.record().is_none() && p.invalid().is_some()),
    }
}

/// The text of the first `<tag>` element.
fn element<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect("element present") + open.len();
    let end = start + xml[start..].find('<').unwrap();
    &xml[start..end]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048),
                                   mid in proptest::option::of("[0-9a-f-]{0,40}")) {
        consistent(&body, mid.as_deref());
    }

    #[test]
    fn truncated_and_spliced_applications_never_panic(cut in 0usize..6000, junk in "[\\x00-\\x7f]{0,20}") {
        let text = valid_wba();
        let cut = cut.min(text.len());
        let mut body = text.as_bytes()[..cut].to_vec();
        body.extend_from_slice(junk.as_bytes());
        body.extend_from_slice(&text.as_bytes()[cut..]);
        consistent(&body, None);
    }

    #[test]
    fn amounts_round_trip_exactly(cents in 0u64..100_000_000_000u64, style in 0u8..3) {
        let (euros, rest) = (cents / 100, cents % 100);
        // The same amount written three ways.
        let written = match style {
            0 => format!("{euros}.{rest:02}"),
            1 => if rest % 10 == 0 { format!("{euros}.{}", rest / 10) } else { format!("{euros}.{rest:02}") },
            _ => format!("{cents}e-2"),
        };
        let text = valid_wba().replace("\"grundmiete\": 359.74", &format!("\"grundmiete\": {written}"));
        let p = pipeline().process(text.as_bytes(), None);
        prop_assert_eq!(p.outcome(), Outcome::Accepted, "{:?}", p.findings());
        let xml = String::from_utf8(p.record().unwrap().to_vec()).unwrap();
        let expected = format!("{euros}.{rest:02}");
        prop_assert_eq!(element(&xml, "Grundmiete"), expected.as_str());
    }

    #[test]
    fn names_are_collapsed_and_xml_safe(name in "\\PC{0,3}[ \\t\\n\\u{1}\\u{FFFF}]{0,3}\\PC{1,20}[ \\t]{0,3}") {
        let mut doc: Value = serde_json::from_str(&valid_wba()).unwrap();
        doc["antragsteller"]["familienname"] = Value::String(name.clone());
        let body = serde_json::to_vec(&doc).unwrap();
        let p = pipeline().process(&body, None);
        if let Some(xml) = p.record() {
            let xml = String::from_utf8(xml.to_vec()).unwrap();
            let forbidden = |c: char| (c < ' ' && c != '\n') || c == '\u{FFFE}' || c == '\u{FFFF}';
            prop_assert!(!xml.chars().any(forbidden), "forbidden character in record");
            let written = element(&xml, "Familienname");
            prop_assert!(!written.starts_with(' ') && !written.ends_with(' ') && !written.contains("  "));
        }
    }
}

/// Regression (cargo-fuzz `json_mutations`, crash-728b0556): an amount of
/// 29 digits overflowed the cents conversion and panicked. Every amount
/// field, with values at and beyond the decimal limits, must give a
/// consistent outcome; amounts that cannot be written with two places, or
/// are not numbers at all, make the application a case.
#[test]
fn huge_amounts_never_panic() {
    let fields = [
        "/unterkunft/grundmiete",
        "/unterkunft/nebenkosten",
        "/unterkunft/heizkosten",
        "/vermoegen/positionen/0/wert",
    ];
    for value in [
        "16666666666666666666666666666",
        "79228162514264337593543950335",
        "1e400",
        "-1e30",
    ] {
        for f in fields {
            let mut doc: Value = serde_json::from_str(&valid_wba()).unwrap();
            *doc.pointer_mut(f).unwrap() = serde_json::from_str(value).unwrap();
            let body = serde_json::to_vec(&doc).unwrap();
            consistent(&body, None);
            let p = pipeline().process(&body, None);
            assert_eq!(
                p.outcome(),
                Outcome::Rejected,
                "{f} = {value}: {:?}",
                p.findings()
            );
        }
    }
    // Huge but writable: imported, and the plausibility rule still fires
    // (cents saturate instead of turning into "no value").
    let mut doc: Value = serde_json::from_str(&valid_wba()).unwrap();
    doc["unterkunft"]["grundmiete"] = serde_json::from_str("92233720368547758.07").unwrap();
    let p = pipeline().process(&serde_json::to_vec(&doc).unwrap(), None);
    assert_eq!(p.outcome(), Outcome::Accepted);
    assert!(
        p.findings().iter().any(|f| f.rule == "WOHNKOSTEN-HOCH"),
        "{:?}",
        p.findings()
    );
}
