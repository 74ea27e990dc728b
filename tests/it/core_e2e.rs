//! The pure core end to end: contract examples, versions side by side,
//! determinism, the `process` and `mappings` commands, and bad input.
//!
//! Data-driven through one `check(body, expect)` helper; CLI tests run the
//! real binary from the repository root.

use std::path::{Path, PathBuf};
use std::process::Command;

use allegro_core::pipeline::{Outcome, Pipeline, PipelineConfig, Processed};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    root().join("fixtures/contract")
}

fn pipeline() -> Pipeline {
    Pipeline::load(&PipelineConfig {
        mappings_dir: root().join("mappings"),
        schemas_dir: root().join("schemas"),
        ..PipelineConfig::default()
    })
    .expect("the repository's mappings load")
}

fn example(name: &str) -> Value {
    let s = std::fs::read_to_string(examples().join(name)).expect("contract example");
    serde_json::from_str(&s).unwrap()
}

/// Processes `doc` and asserts the outcome and the exact set of (rule, pointer) findings.
fn check(p: &Pipeline, doc: &Value, outcome: Outcome, expect: &[(&str, &str)]) -> Processed {
    let body = serde_json::to_vec(doc).unwrap();
    let got = p.process(&body, None);
    let mut findings: Vec<(String, String)> = got
        .findings()
        .iter()
        .map(|f| (f.rule.clone(), f.pointer.clone()))
        .collect();
    findings.sort();
    let mut want: Vec<(String, String)> = expect
        .iter()
        .map(|(r, p)| (r.to_string(), p.to_string()))
        .collect();
    want.sort();
    assert_eq!(got.outcome(), outcome, "findings: {:#?}", got.findings());
    assert_eq!(findings, want, "all findings: {:#?}", got.findings());
    got
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_allegro-bridge"));
    c.current_dir(root());
    c.env_remove("ALLEGRO_BRIDGE_CONFIG");
    c
}

#[test]
fn contract_examples_give_the_contract_outcomes() {
    let p = pipeline();
    let ok = check(
        &p,
        &example("hauptantrag-gueltig.json"),
        Outcome::Accepted,
        &[(
            "NACHWEIS-AUFENTHALTSTITEL",
            "/weiterePersonen/1/staatsangehoerigkeit",
        )],
    );
    let xml = String::from_utf8(ok.record().unwrap().to_vec()).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(xml.contains("<Grundmiete>487.16</Grundmiete>"));
    assert!(xml.contains("<NettoMonatlich>259.00</NettoMonatlich>"));
    assert!(
        xml.contains("art=\"AUFENTHALTSTITEL\""),
        "documents owed travel in the record"
    );
    assert!(xml.contains("<Mapping>bg-ha-1.0</Mapping>"));

    check(
        &p,
        &example("weiterbewilligung-gueltig.json"),
        Outcome::Accepted,
        &[],
    );
    let bad = check(
        &p,
        &example("hauptantrag-mit-fehlern.json"),
        Outcome::Rejected,
        &[
            ("IBAN-UNGUELTIG", "/bankverbindung/iban"),
            ("PLZ-FORMAT", "/antragsteller/anschrift/plz"),
            ("HAUSHALT-PERSONENZAHL", "/unterkunft/personenImHaushalt"),
            ("NACHWEIS-MIETVERTRAG", "/nachweise"),
        ],
    );
    assert!(bad.record().is_none());
    let plz = bad
        .findings()
        .iter()
        .find(|f| f.rule == "PLZ-FORMAT")
        .unwrap();
    assert_eq!(
        plz.message,
        "Die Postleitzahl der Anschrift der antragstellenden Person ist ungültig: sie muss aus genau fünf Ziffern bestehen."
    );
    let owed = bad
        .findings()
        .iter()
        .find(|f| f.rule == "NACHWEIS-MIETVERTRAG")
        .unwrap();
    assert_eq!(owed.nachweis.as_deref(), Some("MIETVERTRAG"));
}

#[test]
fn all_findings_are_collected_in_one_pass_including_schema_violations() {
    let p = pipeline();
    let mut doc = example("hauptantrag-gueltig.json");
    doc["antragsteller"]
        .as_object_mut()
        .unwrap()
        .remove("familienname");
    doc["antragsteller"]["lieblingsfarbe"] = json!("blau");
    doc["unterkunft"]["personenImHaushalt"] = json!("drei");
    doc["bankverbindung"]["iban"] = json!("DE00692859320639324688");
    check(
        &p,
        &doc,
        Outcome::Rejected,
        &[
            ("SCHEMA-PFLICHTANGABE", "/antragsteller/familienname"),
            ("SCHEMA-UNBEKANNTE-ANGABE", "/antragsteller/lieblingsfarbe"),
            ("SCHEMA-FALSCHE-ART", "/unterkunft/personenImHaushalt"),
            ("IBAN-UNGUELTIG", "/bankverbindung/iban"),
            (
                "NACHWEIS-AUFENTHALTSTITEL",
                "/weiterePersonen/1/staatsangehoerigkeit",
            ),
        ],
    );
}

#[test]
fn today_is_the_submission_day_and_missing_day_skips_day_rules() {
    let p = pipeline();
    // Born 2011-11-21: 14 on 2026-11-20, 15 on 2026-11-21.
    let mut doc = example("weiterbewilligung-gueltig.json");
    doc["antragsteller"]["geburtsdatum"] = json!("2011-11-21");
    // (Its RVNR encodes the old birth date; drop it so only the age rule speaks.)
    doc["antragsteller"]
        .as_object_mut()
        .unwrap()
        .remove("rentenversicherungsnummer");
    check(
        &p,
        &doc,
        Outcome::Rejected,
        &[("ANTRAGSTELLER-MINDESTALTER", "/antragsteller/geburtsdatum")],
    );
    doc["eingereichtAm"] = json!("2026-11-21T08:00:00+01:00");
    check(&p, &doc, Outcome::Accepted, &[]);
    // Unreadable day: its own error, and the day rules are skipped, not guessed.
    doc["eingereichtAm"] = json!("2026-11-31T08:00:00+01:00");
    doc["antragsteller"]["geburtsdatum"] = json!("2030-01-01");
    check(
        &p,
        &doc,
        Outcome::Rejected,
        &[("EINGANG-ZEITPUNKT", "/eingereichtAm")],
    );
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let p = pipeline();
    let body = std::fs::read(examples().join("hauptantrag-gueltig.json")).unwrap();
    let a = p.process(&body, None);
    let b = p.process(&body, None);
    assert_eq!(a.record(), b.record());
    assert_eq!(a.findings(), b.findings());
}

#[test]
fn versions_1_0_and_1_1_work_side_by_side() {
    let p = pipeline();
    let mut doc = example("hauptantrag-gueltig.json");
    doc["unterkunft"]["mietschulden"] = json!(1200.5);
    // Under 1.0 the field does not exist: a schema finding on its own pointer.
    check(
        &p,
        &doc,
        Outcome::Rejected,
        &[
            ("SCHEMA-UNBEKANNTE-ANGABE", "/unterkunft/mietschulden"),
            (
                "NACHWEIS-AUFENTHALTSTITEL",
                "/weiterePersonen/1/staatsangehoerigkeit",
            ),
        ],
    );
    doc["formular"]["version"] = json!("1.1");
    let got = check(
        &p,
        &doc,
        Outcome::Accepted,
        &[
            ("MIETSCHULDEN-HINWEIS", "/unterkunft/mietschulden"),
            (
                "NACHWEIS-AUFENTHALTSTITEL",
                "/weiterePersonen/1/staatsangehoerigkeit",
            ),
        ],
    );
    assert_eq!(
        got.application().map(|a| a.mapping.as_str()),
        Some("bg-ha-1.1")
    );
    let xml = String::from_utf8(got.record().unwrap().to_vec()).unwrap();
    assert!(xml.contains("xmlns=\"urn:allegro-bridge:import:1.1\""));
    assert!(
        xml.contains("<Mietschulden>1200.50</Mietschulden>\n  </Unterkunft>"),
        "{xml}"
    );
    // And 1.0 still maps a plain 1.0 application.
    let plain = check(
        &p,
        &example("weiterbewilligung-gueltig.json"),
        Outcome::Accepted,
        &[],
    );
    assert_eq!(
        plain.application().map(|a| a.mapping.as_str()),
        Some("bg-wba-1.0")
    );
}

#[test]
fn records_normalize_values_and_strip_forbidden_characters() {
    let p = pipeline();
    let mut doc = example("weiterbewilligung-gueltig.json");
    doc["antragsteller"]["vornamen"] = json!("  Олена \t  Марія\u{0007} ");
    doc["antragsteller"]["familienname"] = json!("Müller & <Söhne>");
    doc["bankverbindung"]["iban"] = json!("de31 4033 9358 0701 5438 76");
    doc["unterkunft"]["grundmiete"] = json!(612.5);
    let got = check(&p, &doc, Outcome::Accepted, &[]);
    let xml = String::from_utf8(got.record().unwrap().to_vec()).unwrap();
    assert!(xml.contains("<Vornamen>Олена Марія</Vornamen>"), "{xml}");
    assert!(xml.contains("<Familienname>Müller &amp; &lt;Söhne&gt;</Familienname>"));
    assert!(xml.contains("<IBAN>DE31403393580701543876</IBAN>"));
    assert!(xml.contains("<Grundmiete>612.50</Grundmiete>"));
    assert!(!xml.contains('\u{0007}'));
}

#[test]
fn invalid_deliveries_are_classified_without_panicking() {
    let p = pipeline();
    let id = "ebb7344d-f3d2-473a-b740-3227210f4d0c";
    let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
        (vec![0xff, 0xfe, 0x00], None, "not_utf8"),
        (b"{\"antragId\": ".to_vec(), None, "not_json"),
        (b"[]".to_vec(), None, "not_object"),
        (b"{\"formular\":{}}".to_vec(), None, "missing_antrag_id"),
        (b"{\"antragId\":\"nope\"}".to_vec(), None, "bad_antrag_id"),
        ("[".repeat(100_000).into_bytes(), None, "too_large"),
        ("[".repeat(5_000).into_bytes(), None, "too_deep"),
        (
            format!(
                "{{\"antragId\":\"{id}\",\"formular\":{{\"id\":\"BG-HA\",\"version\":\"9.9\"}}}}"
            )
            .into_bytes(),
            None,
            "no_mapping",
        ),
        (
            std::fs::read(examples().join("hauptantrag-gueltig.json")).unwrap(),
            Some("00000000-0000-4000-8000-000000000000"),
            "message_id_mismatch",
        ),
    ];
    let small = Pipeline::load(&PipelineConfig {
        mappings_dir: root().join("mappings"),
        schemas_dir: root().join("schemas"),
        max_body_bytes: 64 * 1024,
    })
    .unwrap();
    for (body, mid, reason) in cases {
        let got = small.process(&body, mid);
        assert_eq!(got.outcome(), Outcome::Invalid);
        assert_eq!(got.invalid().unwrap().reason, reason, "{:?}", got.invalid());
        assert!(got.record().is_none());
    }
    // The same antragId with a matching message_id is fine.
    let body = std::fs::read(examples().join("weiterbewilligung-gueltig.json")).unwrap();
    let ok = p.process(&body, Some("71a8441c-c554-40dd-a609-54fedb6d9f3e"));
    assert_eq!(ok.outcome(), Outcome::Accepted);
}

#[test]
fn process_json_prints_one_object_per_file_and_writes_records() {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["process", "--json", "--out"])
        .arg(out.path())
        .arg(examples())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = String::from_utf8(o.stdout).unwrap();
    // Keys in the contract's order.
    for l in raw.lines() {
        let pos: Vec<usize> = [
            "\"file\"",
            "\"antragId\"",
            "\"outcome\"",
            "\"findings\"",
            "\"record\"",
        ]
        .iter()
        .map(|k| l.find(k).expect(k))
        .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{l}");
    }
    let lines: Vec<Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["accepted", "rejected", "accepted"]);
    for l in &lines {
        assert_eq!(l.as_object().unwrap().len(), 5, "{l}");
    }
    let rec = lines[0]["record"].as_str().unwrap();
    assert_eq!(
        Path::new(rec),
        out.path().join("ebb7344d-f3d2-473a-b740-3227210f4d0c.xml")
    );
    assert!(Path::new(rec).exists());
    assert!(lines[1]["record"].is_null());
    assert!(lines[1]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["pointer"] == "/antragsteller/anschrift/plz" && f["severity"] == "error"));
    // No temp files are left behind.
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// More files than one chunk, run on every core: the output keeps the
/// files' order, every accepted one has its record, a record that cannot
/// be written is reported against its file.
#[test]
fn process_keeps_the_order_of_the_files_across_chunks_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let base = example("hauptantrag-gueltig.json");
    let faulty = example("hauptantrag-mit-fehlern.json");
    let mut expected = Vec::new();
    for i in 0..1100 {
        let mut v = if i % 3 == 2 {
            faulty.clone()
        } else {
            base.clone()
        };
        let id = format!("00000000-0000-4000-8000-{i:012}");
        v["antragId"] = Value::String(id.clone());
        let name = format!("a{i:05}.json");
        std::fs::write(dir.path().join(&name), serde_json::to_vec(&v).unwrap()).unwrap();
        expected.push((name, id, if i % 3 == 2 { "rejected" } else { "accepted" }));
    }
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["process", "--json", "--out"])
        .arg(out.path())
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len());
    for (line, (name, id, outcome)) in lines.iter().zip(&expected) {
        assert!(
            line["file"].as_str().unwrap().ends_with(name.as_str()),
            "{line}"
        );
        assert_eq!(line["antragId"], id.as_str());
        assert_eq!(line["outcome"], *outcome);
        if *outcome == "accepted" {
            assert!(Path::new(line["record"].as_str().unwrap()).exists());
        }
    }
    let records = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(
        records,
        expected.iter().filter(|e| e.2 == "accepted").count()
    );
    // The outbox is a file, not a folder: every accepted file is reported
    // as not processed, the others still are.
    let blocked = out.path().join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    let o = bin()
        .args(["process", "--out"])
        .arg(&blocked)
        .arg(examples())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("total: 3 file(s): 0 accepted, 1 rejected, 0 invalid, 2 not processed"),
        "{text}"
    );
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("hauptantrag-gueltig.json: cannot write the record"),
        "{err}"
    );
    // Both streams into one file (as `2>&1` does): the files in their order.
    let both = out.path().join("both.log");
    let f = std::fs::File::create(&both).unwrap();
    let status = bin()
        .args(["process", "--out"])
        .arg(&blocked)
        .arg(examples())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let text = std::fs::read_to_string(&both).unwrap();
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
    assert!(
        at("hauptantrag-gueltig.json: cannot write") < at("hauptantrag-mit-fehlern.json")
            && at("hauptantrag-mit-fehlern.json") < at("weiterbewilligung-gueltig.json: cannot")
            && at("weiterbewilligung-gueltig.json: cannot") < at("total: 3 file(s)"),
        "{text}"
    );
}

/// `process --out <a new folder> inputs`: the folder and the output.
fn process_into_temp(inputs: &Path) -> (tempfile::TempDir, std::process::Output) {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["process", "--out"])
        .arg(out.path())
        .arg(inputs)
        .output()
        .unwrap();
    (out, o)
}

/// Files with the same antragId: their records go out in the order given,
/// so the record is the last file's, every time (the records of a chunk are
/// written in concurrent parts).
#[test]
fn process_with_a_repeated_antrag_id_keeps_the_last_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = example("hauptantrag-gueltig.json");
    let ids: Vec<String> = (0..40)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    // Sorted by name: every `a` file before every `b` file.
    for (prefix, vornamen) in [("a", "Erstfassung"), ("b", "Zweitfassung")] {
        for id in &ids {
            v["antragId"] = Value::String(id.clone());
            v["antragsteller"]["vornamen"] = Value::String(vornamen.into());
            let name = dir.path().join(format!("{prefix}-{id}.json"));
            std::fs::write(name, serde_json::to_vec(&v).unwrap()).unwrap();
        }
    }
    let (out, o) = process_into_temp(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for id in &ids {
        let xml = std::fs::read_to_string(out.path().join(format!("{id}.xml"))).unwrap();
        assert!(
            xml.contains("Zweitfassung") && !xml.contains("Erstfassung"),
            "{id}"
        );
    }
}

#[test]
fn process_reports_invalid_files_and_still_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kaputt.json"), b"{nope").unwrap();
    std::fs::write(dir.path().join("ignored.txt"), b"x").unwrap();
    let (_out, o) = process_into_temp(dir.path());
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("invalid") && text.contains("not_json"),
        "{text}"
    );
    assert!(
        text.contains("total: 1 file(s): 0 accepted, 0 rejected, 1 invalid, 0 not processed"),
        "{text}"
    );
    // A missing file could not be processed: exit 1.
    let o = bin()
        .args(["process", "/nonexistent/x.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

/// Writes a config file in `dir` that points the pipeline at `mappings`.
fn config_for(dir: &Path, mappings: &Path) -> PathBuf {
    let cfg = dir.join("cfg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pipeline]\nmappings_dir = {:?}\nschemas_dir = {:?}\n",
            mappings,
            root().join("schemas")
        ),
    )
    .unwrap();
    cfg
}

fn copy_mappings(to: &Path) {
    for entry in walk(&root().join("mappings")) {
        let rel = entry.strip_prefix(root().join("mappings")).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, dest).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn mappings_check_names_file_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    copy_mappings(dir.path());
    let bad = r#"# broken on purpose
[mapping]
name = "bg-ha-2.0"
form = "BG-HA"
version = "2.0"
schema = "buergergeld-antrag-1.0.schema.json"
record = "1.0"
include = ["common/texte-1.0.toml"]

[[check]]
id = "X-UNBEKANNT"
kind = "isbn"
fields = ["/antragsteller/steuerId"]
severity = "error"
message = "{Feld} ist falsch."

[[check]]
id = "X-POINTER"
kind = "required"
fields = ["/antragsteller/lieblingsfarbe"]
severity = "error"
message = "{Feld} fehlt."

[[rule]]
id = "X-POINTER"
severity = "error"
let = { a = "/unterkunft/art" }
assert = "a == "
pointer = "/unterkunft/art"
message = "{Feld} passt nicht."
"#;
    std::fs::write(dir.path().join("bg-ha-2.0.toml"), bad).unwrap();
    let cfg = config_for(dir.path(), dir.path());
    let o = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["mappings", "check"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8(o.stdout).unwrap();
    let file = dir.path().join("bg-ha-2.0.toml").display().to_string();
    assert!(
        text.contains(&format!(
            "{file}:10: check X-UNBEKANNT: unknown check kind 'isbn'"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{file}:17: check X-POINTER: unknown source pointer \"/antragsteller/lieblingsfarbe\""
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{file}:24: duplicate rule id \"X-POINTER\"")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{file}:24: rule X-POINTER: CEL expression does not compile"
        )),
        "{text}"
    );
    // The daemon and `process` refuse the same set.
    let o = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["process", "--json"])
        .arg(examples())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // A TOML syntax error names its line too.
    std::fs::write(dir.path().join("bg-ha-2.0.toml"), "[mapping\nname = 1\n").unwrap();
    let o = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["mappings", "check"])
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains(&format!("{file}:1:")), "{text}");
}

#[test]
fn mappings_check_passes_on_the_repository() {
    let o = bin().args(["mappings", "check"]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    for m in ["bg-ha-1.0", "bg-ha-1.1", "bg-wba-1.0", "bg-wba-1.1"] {
        assert!(text.contains(&format!("ok: {m} ")), "{text}");
    }
    // Every check, rule and schema message speaks to applicants in all three.
    assert!(!text.contains("no applicant message"), "{text}");
    assert!(!text.contains("applicant message without"), "{text}");
    assert!(
        text.contains("ok: bg-wba-1.1 ") && text.contains("applicant messages 46 de, 46 en, 46 uk"),
        "{text}"
    );
}

#[test]
fn mappings_check_names_rules_without_applicant_messages_and_language_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("mappings");
    copy_mappings(&maps);
    let small = r#"# a form with one check without applicant message, one without uk
[mapping]
name = "bg-ha-2.0"
form = "BG-HA"
version = "2.0"
schema = "buergergeld-antrag-1.0.schema.json"
record = "1.0"
include = ["common/texte-1.0.toml"]

[[check]]
id = "X-OHNE"
kind = "required"
fields = ["/antragsteller/steuerId"]
severity = "error"
message = "{Feld} fehlt."

[[check]]
id = "X-LUECKE"
kind = "required"
fields = ["/antragsteller/familienname"]
severity = "error"
message = "{Feld} fehlt."
applicant.de = "Bitte geben Sie Ihren Familiennamen an."
applicant.en = "Please enter your surname."
"#;
    let path = maps.join("bg-ha-2.0.toml");
    std::fs::write(&path, small).unwrap();
    // A gap in a fragment every 1.x mapping includes.
    let regeln = maps.join("common/regeln-1.0.toml");
    let text = std::fs::read_to_string(&regeln).unwrap();
    let plz_uk = "applicant.uk = \"Перевірте, будь ласка, поштовий індекс.";
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with(plz_uk))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(text, without);
    std::fs::write(&regeln, without).unwrap();
    // The check's `[[check]]` line, the one before its id (1-based: its index).
    let plz_line = text
        .lines()
        .position(|l| l == "id = \"PLZ-FORMAT\"")
        .unwrap();
    let file = path.display().to_string();
    let cfg = config_for(dir.path(), &maps);
    let lint = || {
        let o = bin()
            .arg("--config")
            .arg(&cfg)
            .args(["mappings", "check"])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, out) = lint();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("warning: {file}:10: check X-OHNE: no applicant message (the check API would show the applicant nothing); add applicant.de, applicant.en and applicant.uk")),
        "{out}"
    );
    assert!(
        out.contains(&format!("warning: {file}:17: check X-LUECKE: applicant message without uk (German would be shown instead)")),
        "{out}"
    );
    let plz = format!(
        "warning: {}:{plz_line}: check PLZ-FORMAT: applicant message without uk (German would be shown instead)",
        regeln.display()
    );
    assert!(out.contains(&plz), "{out}");
    // Only these three: the other shipped texts have no gap, and a gap is
    // named once however many mappings include its file (four include regeln).
    let gaps = out
        .lines()
        .filter(|l| l.contains("no applicant message") || l.contains("applicant message without"))
        .count();
    assert_eq!(gaps, 3, "{out}");
    assert!(
        out.contains("ok: bg-ha-2.0 ") && out.contains("applicant messages 10 de, 10 en, 9 uk"),
        "{out}"
    );
    // A German field label in an English message refuses the set, with its line.
    std::fs::write(
        &path,
        small.replace("your surname.", "{feld}.").replace(
            "applicant.en",
            "applicant.uk = \"Вкажіть, будь ласка, ваше прізвище.\"\napplicant.en",
        ),
    )
    .unwrap();
    let (code, out) = lint();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("error: {file}:25: check X-LUECKE: applicant.en: {{feld}} is German (en messages use no placeholders)")),
        "{out}"
    );
}

#[test]
fn fixture_suite_passes_with_every_check_and_rule_covered() {
    let o = bin()
        .args(["mappings", "test", "--strict"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    for m in ["bg-ha-1.0", "bg-ha-1.1", "bg-wba-1.0", "bg-wba-1.1"] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("{m}: checks and rules exercised"))),
            "{text}"
        );
    }
}

#[test]
fn mappings_test_fails_on_a_wrong_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let body = std::fs::read(examples().join("hauptantrag-mit-fehlern.json")).unwrap();
    std::fs::write(dir.path().join("fall.json"), body).unwrap();
    std::fs::write(
        dir.path().join("fall.expect.json"),
        r#"{"outcome": "rejected", "findings": [{"rule": "IBAN-UNGUELTIG", "pointer": "/bankverbindung/iban"}]}"#,
    )
    .unwrap();
    let o = bin()
        .args(["mappings", "test", "--fixtures"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("FAIL fall.json"), "{text}");
    assert!(
        text.contains("unexpected finding PLZ-FORMAT (error) at /antragsteller/anschrift/plz"),
        "{text}"
    );
    assert!(text.contains("0 passed, 1 failed"), "{text}");
}

#[test]
fn mappings_test_reports_a_rule_that_cannot_be_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("mappings");
    copy_mappings(&maps);
    let rules = maps.join("common/regeln-1.0.toml");
    let mut text = std::fs::read_to_string(&rules).unwrap();
    text.push_str(
        r#"
[[rule]]
id = "X-KAPUTT"
severity = "error"
let = { name = "/antragsteller/familienname" }
assert = "name > 5"
pointer = "/antragsteller/familienname"
message = "{Feld} ist zu groß."
"#,
    );
    std::fs::write(&rules, text).unwrap();
    let fx = dir.path().join("fixtures");
    std::fs::create_dir_all(&fx).unwrap();
    std::fs::copy(
        examples().join("weiterbewilligung-gueltig.json"),
        fx.join("wba.json"),
    )
    .unwrap();
    std::fs::write(fx.join("wba.expect.json"), r#"{"outcome": "accepted"}"#).unwrap();
    let cfg = config_for(dir.path(), &maps);
    let o = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["mappings", "test", "--bless", "--fixtures"])
        .arg(&fx)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("rule X-KAPUTT could not be evaluated"),
        "{text}"
    );
}

#[test]
fn mappings_check_warns_about_fields_without_a_german_label() {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("mappings");
    copy_mappings(&maps);
    let texte = maps.join("common/texte-1.0.toml");
    let text = std::fs::read_to_string(&texte).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("telefon = "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(text, without);
    std::fs::write(&texte, without).unwrap();
    let cfg = config_for(dir.path(), &maps);
    let o = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["mappings", "check"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("warning: bg-ha-1.0: no German label for /antragsteller/telefon"),
        "{out}"
    );
}

#[test]
fn oversized_lists_become_a_case_instead_of_unbounded_work() {
    let p = pipeline();
    let mut doc = example("weiterbewilligung-gueltig.json");
    let persons: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"id": format!("x{i}"), "familienname": "A", "vornamen": "B",
                   "geburtsdatum": "1990-01-01", "beziehung": "EHEPARTNER"})
        })
        .collect();
    doc["weiterePersonen"] = Value::Array(persons);
    doc["unterkunft"]["personenImHaushalt"] = json!(1001);
    let got = check(
        &p,
        &doc,
        Outcome::Rejected,
        &[
            ("SCHEMA-SONSTIGES", "/weiterePersonen"),
            ("UMFANG-ZU-GROSS", "/weiterePersonen"),
        ],
    );
    let f = got
        .findings()
        .iter()
        .find(|f| f.rule == "UMFANG-ZU-GROSS")
        .unwrap();
    assert_eq!(
        f.message,
        "Die Angaben zu weiteren Personen: mehr als 200 Einträge übersteigen die automatische Prüfung; bitte von Hand prüfen."
    );
}

#[test]
fn the_jobcenter_is_reported_for_the_store() {
    let p = pipeline();
    let got = check(
        &p,
        &example("weiterbewilligung-gueltig.json"),
        Outcome::Accepted,
        &[],
    );
    assert_eq!(
        got.application().and_then(|a| a.jobcenter.as_deref()),
        Some("76001")
    );
    let mut doc = example("weiterbewilligung-gueltig.json");
    doc["jobcenter"]["dienststellennummer"] = json!("76 001; DROP");
    let body = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        p.process(&body, None)
            .application()
            .and_then(|a| a.jobcenter.clone()),
        None
    );
}
