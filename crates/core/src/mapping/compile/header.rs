//! The `[mapping]` header: the JSON Schema it names, the pointer of "today",
//! and the CEL environment built from the constants.

use std::collections::BTreeMap;

use super::Schema;
use crate::mapping::error::Errs;
use crate::mapping::load::{Parsed, Schemas};
use crate::pointer::Ref;
use crate::rules::RuleEnv;

/// The schema document and its validator; `None` (reported) if either fails.
pub(super) fn schema(
    main: &Parsed,
    schemas: &mut Schemas<'_>,
    errs: &mut Errs,
) -> Option<(Schema, jsonschema::Validator)> {
    let header = main.file.mapping.as_ref().expect("a mapping").get_ref();
    let name = header.schema.get_ref().clone();
    let span = header.schema.span();
    let Some(json) = schemas.get(&name) else {
        let msg = format!(
            "schema {name:?} not found or not valid JSON in {}",
            schemas.dir.display()
        );
        errs.at(main, span, msg);
        return None;
    };
    match jsonschema::draft202012::new(&json) {
        Ok(v) => Some((Schema { name, json }, v)),
        Err(e) => {
            let msg = format!("schema {name:?} is not a valid JSON Schema: {e}");
            errs.at(main, span, msg);
            None
        }
    }
}

/// The pointer whose day is "today".
pub(super) fn today(main: &Parsed, errs: &mut Errs) -> Option<Ref> {
    let today = &main
        .file
        .mapping
        .as_ref()
        .expect("a mapping")
        .get_ref()
        .today;
    Ref::parse(today.get_ref())
        .map_err(|e| errs.at(main, today.span(), e))
        .ok()
}

/// The CEL environment with every constant declared. It fails only if
/// our own built-in functions do not register, which no mapping can cause.
pub(super) fn rule_env(constants: &BTreeMap<String, cel::Value>) -> RuleEnv {
    let list: Vec<(String, cel::Value)> = constants
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    RuleEnv::new(&list).expect("the built-in CEL functions register")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_files, main_with};

    #[test]
    fn a_missing_or_broken_schema_is_named() {
        let m = main_with("schema = \"s.json\"", "schema = \"fehlt.json\"");
        check_files(
            &m,
            &[],
            &["m.toml:5: schema \"fehlt.json\" not found or not valid JSON in schemas"],
        );
        check_files(
            &main_with("schema = \"s.json\"", "schema = \"kaputt.json\""),
            &[("kaputt.json", "{nicht json")],
            &["m.toml:5: schema \"kaputt.json\" not found or not valid JSON in schemas"],
        );
        check_files(
            &main_with("schema = \"s.json\"", "schema = \"falsch.json\""),
            &[("falsch.json", r#"{"type": 5}"#)],
            &["m.toml:5: schema \"falsch.json\" is not a valid JSON Schema: …"],
        );
    }

    #[test]
    fn today_must_be_a_pointer() {
        check_files(
            &main_with("record = \"1.0\"", "record = \"1.0\"\ntoday = \"eingereichtAm\""),
            &[],
            &["m.toml:7: pointer \"eingereichtAm\" must start with '/' (or be empty for the root)"],
        );
    }
}
