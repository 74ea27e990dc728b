//! The texts of a mapping: `[labels]`, `[codelists]`, `[constants]` and
//! `[schema_messages]`, from every part in order (a later file overrides an
//! earlier one's entry of the same name).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::ids::Ids;
use crate::mapping::error::Errs;
use crate::mapping::labels::{Labels, Template};
use crate::mapping::load::Parsed;
use crate::mapping::raw::RawFile;
use crate::mapping::{SchemaMessage, SCHEMA_MESSAGE_KINDS};
use crate::pointer::Pattern;
use crate::rules;

/// The compiled texts.
pub(super) struct Texts {
    pub labels: Labels,
    pub codelists: HashMap<String, Arc<BTreeMap<String, String>>>,
    pub constants: BTreeMap<String, cel::Value>,
    pub schema_messages: HashMap<String, SchemaMessage>,
}

/// Label sources by key, before the patterns are compiled.
#[derive(Default)]
struct RawLabels {
    owners: BTreeMap<String, String>,
    fields: BTreeMap<String, String>,
}

pub(super) fn compile(main: &Parsed, parts: &[&Parsed], ids: &mut Ids, errs: &mut Errs) -> Texts {
    let mut raw = RawLabels::default();
    let mut texts = Texts {
        labels: Labels::default(),
        codelists: HashMap::new(),
        constants: BTreeMap::new(),
        schema_messages: HashMap::new(),
    };
    for part in parts {
        labels(part, &mut raw, errs);
        for (k, v) in &part.file.codelists {
            texts
                .codelists
                .insert(k.clone(), Arc::new(v.get_ref().clone()));
        }
        constants(part, &mut texts.constants, errs);
        schema_messages(part, &mut texts.schema_messages, ids, errs);
    }
    for kind in SCHEMA_MESSAGE_KINDS {
        if !texts.schema_messages.contains_key(*kind) {
            let span = main.file.mapping.as_ref().expect("a mapping").span();
            errs.at(main, span, format!("missing [schema_messages.{kind}] (rule id and German message for this kind of schema violation)"));
        }
    }
    texts.labels = build_labels(&raw);
    texts
}

fn labels(part: &Parsed, out: &mut RawLabels, errs: &mut Errs) {
    let f: &RawFile = &part.file;
    for (k, v) in &f.labels.owners {
        if let Err(e) = Pattern::parse(k) {
            errs.at(part, v.span(), format!("[labels.owners] {e}"));
        }
        out.owners.insert(k.clone(), v.get_ref().clone());
    }
    // A field label is a property name or, starting with '/', a pattern
    // (which then always parses).
    for (k, v) in &f.labels.fields {
        out.fields.insert(k.clone(), v.get_ref().clone());
    }
}

fn build_labels(raw: &RawLabels) -> Labels {
    let patterns = |m: &BTreeMap<String, String>, full: bool| -> Vec<(Pattern, String)> {
        m.iter()
            .filter(|(k, _)| !full || k.starts_with('/'))
            .filter_map(|(k, v)| Pattern::parse(k).ok().map(|p| (p, v.clone())))
            .collect()
    };
    Labels::new(
        patterns(&raw.owners, false),
        patterns(&raw.fields, true),
        raw.fields
            .iter()
            .filter(|(k, _)| !k.starts_with('/'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn constants(part: &Parsed, out: &mut BTreeMap<String, cel::Value>, errs: &mut Errs) {
    for (k, v) in &part.file.constants {
        if rules::BUILTIN_VARIABLES.contains(&k.as_str()) {
            let msg = format!("constant {k:?} shadows a built-in variable");
            errs.at(part, v.span(), msg);
        }
        match rules::toml_to_cel(v.get_ref()) {
            Ok(c) => {
                out.insert(k.clone(), c);
            }
            Err(e) => errs.at(part, v.span(), format!("constant {k:?}: {e}")),
        }
    }
}

fn schema_messages(
    part: &Parsed,
    out: &mut HashMap<String, SchemaMessage>,
    ids: &mut Ids,
    errs: &mut Errs,
) {
    for (k, v) in &part.file.schema_messages {
        if !SCHEMA_MESSAGE_KINDS.contains(&k.as_str()) {
            let known = SCHEMA_MESSAGE_KINDS.join(", ");
            let msg = format!("unknown schema message kind {k:?} (known: {known})");
            errs.at(part, v.span(), msg);
            continue;
        }
        let raw = v.get_ref();
        ids.claim(part, v.span(), &raw.rule, errs);
        match Template::parse(&raw.message) {
            Ok(t) => {
                let m = SchemaMessage {
                    rule: raw.rule.clone(),
                    message: t,
                };
                out.insert(k.clone(), m);
            }
            Err(e) => errs.at(part, v.span(), e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, compiled, main_with};
    use crate::pointer::Step;

    #[test]
    fn labels_name_fields() {
        let m = compiled(
            "[labels.owners]\n\"/personen/*\" = \"der {n}. Person\"\n[labels.fields]\nname = \"der Name\"\n",
        );
        let p = [Step::Key("personen"), Step::Index(1), Step::Key("name")];
        assert_eq!(m.labels.name(&p), "der Name der 2. Person");
    }

    #[test]
    fn owner_patterns_are_pointers() {
        check(
            "[labels.owners]\n\"personen/*\" = \"der Person\"\n",
            &["t.toml:2: [labels.owners] pointer \"personen/*\" must start with '/' (or be empty for the root)"],
        );
    }

    #[test]
    fn constants_are_cel_values_and_do_not_shadow() {
        check(
            "[constants]\ntoday = 1\ntag = 2026-11-20\n",
            &[
                "t.toml:3: constant \"tag\": dates are not allowed as constants",
                "t.toml:2: constant \"today\" shadows a built-in variable",
            ],
        );
    }

    #[test]
    fn schema_messages_have_known_kinds_and_valid_templates() {
        check(
            "[schema_messages]\nsonst = { rule = \"X\", message = \"m\" }\nother = { rule = \"Y\", message = \"{Wert}\" }\n",
            &[
                "t.toml:3: message \"{Wert}\": unknown placeholder {Wert} (known: {Feld}, {feld}, {detail}, {nachweis})",
                "t.toml:2: unknown schema message kind \"sonst\" (known: required, additional, type, enum, pattern, length, other, transform, limit)",
            ],
        );
    }

    #[test]
    fn every_schema_message_kind_is_needed() {
        let main = main_with("[\"texte.toml\", \"t.toml\"]", "[\"t.toml\"]");
        let snippet =
            "[schema_messages]\nrequired = { rule = \"S\", message = \"{Feld} fehlt.\" }\n";
        let expected: Vec<String> = crate::mapping::SCHEMA_MESSAGE_KINDS[1..]
            .iter()
            .map(|k| format!("m.toml:1: missing [schema_messages.{k}] (rule id and German message for this kind of schema violation)"))
            .collect();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        super::super::testing::check_in(&main, snippet, &[], &expected);
    }
}
