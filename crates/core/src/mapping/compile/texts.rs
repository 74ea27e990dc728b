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
    for (k, v) in &f.labels.fields {
        if k.starts_with('/') {
            if let Err(e) = Pattern::parse(k) {
                errs.at(part, v.span(), format!("[labels.fields] {e}"));
            }
        }
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
