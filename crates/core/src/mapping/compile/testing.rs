//! The test helper of the compiler parts: a TOML snippet becomes the
//! fragment `t.toml` of a mapping `m.toml` (which also includes
//! `texte.toml`, all schema messages and a few labels, constants and code
//! lists) over a tiny inline JSON Schema `s.json`; `check` compares the
//! rendered problems, `compiled` returns the compiled mapping.

use std::sync::Arc;

use crate::mapping::load::load_str;
use crate::mapping::Mapping;

/// The mapping file; the snippet is `t.toml`.
pub const MAIN: &str = r#"[mapping]
name = "t-1.0"
form = "T"
version = "1.0"
schema = "s.json"
record = "1.0"
include = ["texte.toml", "t.toml"]
"#;

/// A fragment with every schema message.
pub const TEXTE: &str = r#"[schema_messages]
required = { rule = "S-REQUIRED", message = "{Feld} fehlt." }
additional = { rule = "S-ADDITIONAL", message = "{Feld} ist unbekannt." }
type = { rule = "S-TYPE", message = "{Feld} hat den falschen Typ." }
enum = { rule = "S-ENUM", message = "{Feld} ist nicht vorgesehen." }
pattern = { rule = "S-PATTERN", message = "{Feld} hat das falsche Format." }
length = { rule = "S-LENGTH", message = "{Feld} ist zu lang." }
other = { rule = "S-OTHER", message = "{Feld} ist ungültig." }
transform = { rule = "S-TRANSFORM", message = "{Feld} ist nicht übertragbar." }
limit = { rule = "S-LIMIT", message = "{Feld} ist zu groß." }

[constants]
arten = ["MIETE", "EIGENTUM"]
grenze = 5

[codelists.art]
MIETE = "M"
"#;

/// The tiny JSON Schema: a submission time, an object with a postcode,
/// an amount, and a list of persons.
pub const SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "$defs": {"person": {"type": "object", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"},
    "geburtsdatum": {"type": "string"}, "rvnr": {"type": "string"}}}},
  "properties": {
    "eingereichtAm": {"type": "string"},
    "art": {"type": "string"},
    "anschrift": {"type": "object", "properties": {"plz": {"type": "string"}, "ort": {"type": "string"}}},
    "betrag": {"type": "number"},
    "personen": {"type": "array", "items": {"$ref": "#/$defs/person"}}
  }
}"##;

/// A check without problems, 7 lines long.
pub const CHECK_OK: &str = r#"[[check]]
id = "OK"
kind = "required"
fields = ["/art"]
severity = "error"
message = "{Feld} fehlt."
"#;

/// Loads `MAIN` with `snippet` as `t.toml`.
fn load(
    main: &str,
    snippet: &str,
    schemas: &[(&str, &str)],
) -> Result<Vec<Arc<Mapping>>, Vec<String>> {
    let mut all = vec![("s.json", SCHEMA)];
    all.extend_from_slice(schemas);
    let files = [("m.toml", main), ("texte.toml", TEXTE), ("t.toml", snippet)];
    load_str(&files, &all).map(|set| set.all().into_iter().cloned().collect())
}

/// Compares the rendered problems with `expected`; an expected line ending
/// in `…` only has to start the problem.
pub fn check(snippet: &str, expected: &[&str]) {
    check_in(MAIN, snippet, &[], expected);
}

/// Like [`check`] with another mapping file and more schemas, no snippet.
pub fn check_files(main: &str, schemas: &[(&str, &str)], expected: &[&str]) {
    check_in(main, "", schemas, expected);
}

pub fn check_in(main: &str, snippet: &str, schemas: &[(&str, &str)], expected: &[&str]) {
    let got = match load(main, snippet, schemas) {
        Ok(_) => vec![],
        Err(e) => e,
    };
    let ok = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(g, e)| match e.strip_suffix('…') {
                Some(prefix) => g.starts_with(prefix),
                None => g == e,
            });
    assert!(
        ok,
        "expected:\n{}\ngot:\n{}",
        expected.join("\n"),
        got.join("\n")
    );
}

/// The mapping compiled from `snippet`; panics with the problems.
pub fn compiled(snippet: &str) -> Arc<Mapping> {
    match load(MAIN, snippet, &[]) {
        Ok(mut v) => v.pop().expect("one mapping"),
        Err(e) => panic!("{}", e.join("\n")),
    }
}

/// `MAIN` with one piece of text replaced.
pub fn main_with(from: &str, to: &str) -> String {
    assert!(MAIN.contains(from), "{from}");
    MAIN.replace(from, to)
}

#[test]
fn the_base_compiles() {
    let m = compiled(CHECK_OK);
    assert_eq!(m.name, "t-1.0");
    assert_eq!(m.checks.len(), 1);
    check("", &[]);
}
