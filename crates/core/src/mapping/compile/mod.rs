//! Compiling one mapping: its `[mapping]` header and the files it includes
//! (in order, then the mapping file itself) become a [`Mapping`]. Each part
//! has its own module: `header` (schema, today, rule environment), `texts`
//! (labels, code lists, constants, schema messages), `groups`, `checks`,
//! `rules`, `casework` (the case layout), `values` (the German labels of
//! codes), `applicant` (the messages for applicants of checks, rules and
//! schema messages); `ids` keeps rule ids unique across all of them. Every part
//! reports all its problems; the mapping is refused if there is any.

mod applicant;
mod casework;
mod checks;
mod groups;
mod header;
mod ids;
mod rules;
#[cfg(test)]
mod testing;
mod texts;
mod values;

use std::sync::Arc;

use serde_json::Value;

use super::error::Errs;
use super::load::{Parsed, Schemas};
use super::Mapping;
use crate::pointer::Pattern;

/// The JSON Schema a mapping is written against.
pub(crate) struct Schema {
    /// Its file name (named in "not a field of schema ...").
    pub name: String,
    pub json: Arc<Value>,
}

impl Schema {
    /// Does the schema define a location matching this pattern?
    pub fn knows(&self, p: &Pattern) -> bool {
        super::schema_knows(&self.json, p)
    }
}

/// Compiles `main` with its `parts` (includes first, `main` last).
pub(crate) fn compile(
    main: &Parsed,
    parts: &[&Parsed],
    schemas: &mut Schemas<'_>,
    errs: &mut Errs,
) -> Option<Mapping> {
    let before = errs.count();
    let header = main
        .file
        .mapping
        .as_ref()
        .expect("mapping header")
        .get_ref();
    let (schema, validator) = header::schema(main, schemas, errs)?;
    let mut ids = ids::Ids::default();
    let texts = texts::compile(main, parts, &mut ids, errs);
    let rule_env = header::rule_env(&texts.constants);
    let today = header::today(main, errs)?;
    let (groups, mapped_fields) = groups::compile(parts, &schema, &texts.codelists, errs);
    let checks = checks::compile(parts, &schema, &mut ids, errs);
    let env = rules::Env {
        schema: &schema,
        constants: &texts.constants,
        rule_env: &rule_env,
    };
    let rules = rules::compile(parts, &env, &mut ids, errs);
    let casework = casework::compile(parts, &schema, header.today.get_ref(), errs);
    let labels = texts
        .labels
        .with_values(values::compile(parts, &schema, errs));
    let applicant = applicant::compile(parts, errs);
    if errs.count() > before {
        return None;
    }
    Some(Mapping {
        name: header.name.clone(),
        form: header.form.clone(),
        version: header.version.clone(),
        file: main.path.clone(),
        record_version: header.record.clone(),
        schema_file: schema.name,
        schema: validator,
        schema_json: schema.json,
        today,
        groups,
        checks,
        rules,
        labels,
        schema_messages: texts.schema_messages,
        rule_env,
        mapped_fields,
        casework,
        input_hints: input_hints(parts),
        applicant,
    })
}

/// The `input_hint` of every check and rule, by rule id.
fn input_hints(parts: &[&Parsed]) -> std::collections::HashMap<String, String> {
    let checks = parts
        .iter()
        .flat_map(|p| &p.file.check)
        .map(|c| c.get_ref());
    let rules = parts.iter().flat_map(|p| &p.file.rule).map(|r| r.get_ref());
    checks
        .map(|c| (&c.id, &c.input_hint))
        .chain(rules.map(|r| (&r.id, &r.input_hint)))
        .filter_map(|(id, h)| Some((id.clone(), h.clone()?)))
        .collect()
}
