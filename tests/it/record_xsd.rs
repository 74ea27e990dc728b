//! The import records the bridge writes conform to the documented layout
//! `schemas/allegro-import-<version>.xsd` (the version named by the record's
//! root attribute), and that XSD is strict.
//!
//! Records are produced by the real binary (`allegro-bridge process --out DIR`)
//! from the accepted contract examples and every `*.json` input under
//! `fixtures/` (if present; expectation files `*.expect.json` are skipped,
//! rejected inputs simply produce no record), then checked with
//! `xmllint --noout --schema`. xmllint comes from the Debian package
//! libxml2-utils; without it these tests fail rather than skip.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const XSD: &str = "schemas/allegro-import-1.0.xsd";

/// The XSD for a record: by the `version` attribute of its root element.
fn xsd_for(file: &Path) -> String {
    let xml = std::fs::read_to_string(file).expect("record is UTF-8");
    let root = xml
        .find("<AllegroImport ")
        .map(|i| &xml[i..])
        .expect("record has an AllegroImport root");
    let v = root
        .split("version=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("root has a version attribute");
    format!("schemas/allegro-import-{v}.xsd")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs xmllint; fails the test with an install hint when it is missing.
fn xmllint(args: &[&std::ffi::OsStr]) -> Output {
    match Command::new("xmllint")
        .args(args)
        .current_dir(repo())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "xmllint is not installed: install the Debian package libxml2-utils \
             (apt-get install -y libxml2-utils) to run the record XSD tests"
        ),
        Err(e) => panic!("cannot run xmllint: {e}"),
    }
}

/// Validates one file against the XSD.
fn validate(file: &Path) -> Output {
    let xsd = xsd_for(file);
    xmllint(&[
        "--noout".as_ref(),
        "--schema".as_ref(),
        xsd.as_ref(),
        file.as_os_str(),
    ])
}

/// Every `*.json` input below `dir` (recursively), sorted.
fn json_inputs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_inputs(&p, out);
        } else if p.extension().is_some_and(|x| x == "json")
            && !p.to_string_lossy().ends_with(".expect.json")
        {
            out.push(p);
        }
    }
}

/// Runs `allegro-bridge process` over the inputs; returns the temporary
/// output directory (kept alive by the caller) and the records written.
fn produce_records() -> (tempfile::TempDir, Vec<PathBuf>) {
    let examples = repo().join("fixtures/contract");
    let mut inputs = vec![
        examples.join("hauptantrag-gueltig.json"),
        examples.join("weiterbewilligung-gueltig.json"),
    ];
    json_inputs(&repo().join("fixtures"), &mut inputs);

    let out_dir = tempfile::tempdir().expect("temporary directory");
    let run = Command::new(env!("CARGO_BIN_EXE_allegro-bridge"))
        .current_dir(repo())
        .arg("process")
        .arg("--out")
        .arg(out_dir.path())
        .args(&inputs)
        .output()
        .expect("run allegro-bridge process");
    let log = format!(
        "allegro-bridge process exited with {}\nstdout:\n{}\nstderr:\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{log}");

    let mut records: Vec<PathBuf> = std::fs::read_dir(out_dir.path())
        .expect("read the output directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    records.sort();
    assert!(
        records.len() >= 2,
        "expected at least 2 records from {} input(s), got {}\n{log}",
        inputs.len(),
        records.len()
    );
    (out_dir, records)
}

/// `xml` with the text of the first `<tag>` element replaced by `f(text)`.
fn with_first_value(xml: &str, tag: &str, f: impl Fn(&str) -> String) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect("element present") + open.len();
    let end = start
        + xml[start..]
            .find(&format!("</{tag}>"))
            .expect("element closed");
    format!("{}{}{}", &xml[..start], f(&xml[start..end]), &xml[end..])
}

#[test]
fn every_produced_record_validates_against_the_xsd() {
    let (_dir, records) = produce_records();
    let mut failures = Vec::new();
    for r in &records {
        let out = validate(r);
        if !out.status.success() {
            failures.push(format!(
                "{} (exit {}):\n{}",
                r.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} record(s) do not validate against their XSD:\n{}",
        failures.len(),
        records.len(),
        failures.join("\n")
    );
    let v11 = records
        .iter()
        .filter(|r| xsd_for(r).ends_with("1.1.xsd"))
        .count();
    assert!(
        v11 > 0,
        "fixtures of form version 1.1 produce records of layout 1.1"
    );
    eprintln!("{} record(s) validate ({v11} of layout 1.1)", records.len());
}

#[test]
fn xsd_rejects_broken_records() {
    let (dir, records) = produce_records();
    // A record with all the parts the mutations touch (the Hauptantrag example has them).
    let (source, xml) = records
        .iter()
        .map(|r| (r, std::fs::read_to_string(r).expect("read record")))
        .find(|(_, x)| x.contains("<Grundmiete>") && x.contains("<Geschlecht>"))
        .expect("a record with Grundmiete and Geschlecht");
    let ok = validate(source);
    assert!(
        ok.status.success(),
        "the unmodified record must validate:\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let mutations = [
        // e.g. <Grundmiete>487.16</Grundmiete> becomes <Grundmiete>487.1</Grundmiete>
        (
            "amount with one decimal place",
            with_first_value(&xml, "Grundmiete", |v| v[..v.len() - 1].to_string()),
        ),
        (
            "unknown element",
            xml.replacen(
                "</Unterkunft>",
                "  <Unbekannt>x</Unbekannt>\n  </Unterkunft>",
                1,
            ),
        ),
        (
            "code outside its list",
            with_first_value(&xml, "Geschlecht", |_| "Q".to_string()),
        ),
    ];
    for (what, broken) in mutations {
        assert_ne!(broken, xml, "mutation '{what}' changed nothing");
        let path = dir.path().join("broken.xml.txt");
        std::fs::write(&path, &broken).expect("write the broken record");
        let out = validate(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{XSD} accepted a record with an {what}:\n{broken}"
        );
        assert!(
            stderr.contains("fails to validate"),
            "xmllint did not report a validity error for the {what}:\n{stderr}"
        );
    }
}
