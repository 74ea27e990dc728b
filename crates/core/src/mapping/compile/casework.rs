//! `[casework]`: the case layout of a mapping (sections, field order,
//! read-only places, the Dienststelle and the applicant's name), merged over
//! the parts in order and checked against the JSON Schema, so that a typo
//! in a pointer or a section's property is a `file:line` problem at load,
//! not an empty section in the workbench.

use std::collections::BTreeSet;
use std::ops::Range;

use serde_json::Value;
use toml::Spanned;

use super::Schema;
use crate::casework::layout::{general_default, Layout, ReadOnly, SectionDef};
use crate::casework::persons::Persons;
use crate::mapping::error::Errs;
use crate::mapping::load::Parsed;
use crate::mapping::raw::{RawGeneral, RawPersons, RawSection};
use crate::pointer::{self, Pattern, Seg};

/// A value with the part and place it was written at.
struct At<'a, T> {
    part: &'a Parsed,
    span: Range<usize>,
    value: &'a T,
}

fn at<'a, T>(part: &'a Parsed, s: &'a Spanned<T>) -> At<'a, T> {
    At {
        part,
        span: s.span(),
        value: s.get_ref(),
    }
}

/// What the parts declare, the later part's key winning.
#[derive(Default)]
struct Merged<'a> {
    general: Option<At<'a, RawGeneral>>,
    sections: Option<(&'a Parsed, &'a [Spanned<RawSection>])>,
    order: Option<(&'a Parsed, &'a [Spanned<String>])>,
    order_after: Vec<(&'a Parsed, &'a String, &'a Spanned<Vec<String>>)>,
    read_only: Option<(&'a Parsed, &'a [Spanned<String>])>,
    dienststelle: Option<At<'a, String>>,
    applicant: Option<(&'a Parsed, &'a [Spanned<String>])>,
    documents: Option<At<'a, String>>,
    persons: Option<At<'a, RawPersons>>,
    address: Option<At<'a, Vec<Vec<String>>>>,
}

fn merge<'a>(parts: &[&'a Parsed]) -> Merged<'a> {
    let mut m = Merged::default();
    for part in parts {
        let Some(c) = &part.file.casework else {
            continue;
        };
        if let Some(g) = &c.general {
            m.general = Some(at(part, g));
        }
        if let Some(s) = &c.section {
            m.sections = Some((part, s.as_slice()));
        }
        if let Some(o) = &c.field_order {
            m.order = Some((part, o.as_slice()));
        }
        for (anchor, names) in &c.field_order_after {
            m.order_after.push((part, anchor, names));
        }
        if let Some(r) = &c.read_only {
            m.read_only = Some((part, r.as_slice()));
        }
        if let Some(d) = &c.dienststelle {
            m.dienststelle = Some(at(part, d));
        }
        if let Some(a) = &c.applicant_name {
            m.applicant = Some((part, a.as_slice()));
        }
        if let Some(d) = &c.documents {
            m.documents = Some(at(part, d));
        }
        if let Some(p) = &c.persons {
            m.persons = Some(at(part, p));
        }
        if let Some(a) = &c.address {
            m.address = Some(at(part, a));
        }
    }
    m
}

/// The layout of the mapping; `today` (the submission time) is read-only
/// whatever the files say, and so is the Dienststelle.
pub(super) fn compile(parts: &[&Parsed], schema: &Schema, today: &str, errs: &mut Errs) -> Layout {
    let m = merge(parts);
    let general = m
        .general
        .as_ref()
        .map_or_else(general_default, |g| SectionDef {
            id: g.value.id.clone(),
            title: g.value.title.clone(),
            property: None,
        });
    if let Some(g) = &m.general {
        check_section_text(g.part, g.span.clone(), &general, errs);
    }
    let sections = m
        .sections
        .map(|(part, s)| sections(part, s, &general, schema, errs))
        .unwrap_or_default();
    let order = field_order(&m, schema, errs);
    let pointers = |list: Option<(&Parsed, &[Spanned<String>])>, key: &str, errs: &mut Errs| {
        list.map(|(part, l)| {
            l.iter()
                .filter_map(|p| concrete(&at(part, p), key, schema, errs))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    let mut read_only = pointers(m.read_only, "read_only", errs);
    let applicant_name = pointers(m.applicant, "applicant_name", errs);
    let dienststelle = m
        .dienststelle
        .as_ref()
        .and_then(|d| concrete(d, "dienststelle", schema, errs));
    read_only.extend(pointer::parse_concrete(today).map(|_| today.to_string()));
    read_only.extend(dienststelle.clone());
    let documents = m
        .documents
        .as_ref()
        .and_then(|d| documents(d, schema, errs));
    Layout::new(
        general,
        sections,
        order,
        ReadOnly::new(read_only),
        dienststelle,
        applicant_name,
    )
    .with_documents(documents)
    .with_persons(
        m.persons
            .as_ref()
            .map(|p| persons(p, schema, errs))
            .unwrap_or_default(),
        m.address
            .as_ref()
            .map(|a| address(a, schema, errs))
            .unwrap_or_default(),
    )
}

/// `[casework.persons]`: every `at` pattern and its id and name properties
/// must be in the schema.
fn persons(p: &At<'_, RawPersons>, schema: &Schema, errs: &mut Errs) -> Persons {
    let mut out = Persons {
        at: Vec::new(),
        id: p.value.id.clone(),
        name: p.value.name.clone(),
        reference: p.value.reference.clone(),
    };
    for a in &p.value.at {
        let fail = |why: String, errs: &mut Errs| {
            errs.at(
                p.part,
                p.span.clone(),
                format!("[casework.persons] at {a:?}: {why}"),
            )
        };
        let Ok(pattern) = Pattern::parse(a) else {
            fail("not a pointer pattern".into(), errs);
            continue;
        };
        for key in std::iter::once(&out.id).chain(&out.name) {
            let mut below = pattern.clone();
            below.segs.push(Seg::Key(key.clone()));
            if !schema.knows(&below) {
                fail(format!("{key:?} is not in schema {}", schema.name), errs);
            }
        }
        out.at.push(pattern);
    }
    out
}

/// `[casework] address`: concrete pointers the schema knows, line by line.
fn address(a: &At<'_, Vec<Vec<String>>>, schema: &Schema, errs: &mut Errs) -> Vec<Vec<String>> {
    a.value
        .iter()
        .map(|line| {
            line.iter()
                .filter(|p| {
                    let known = pointer::parse_concrete(p).is_some()
                        && Pattern::parse(p).is_ok_and(|q| schema.knows(&q));
                    if !known {
                        let msg =
                            format!("[casework] address: {p:?} is not in schema {}", schema.name);
                        errs.at(a.part, a.span.clone(), msg);
                    }
                    known
                })
                .cloned()
                .collect()
        })
        .collect()
}

/// The pattern of the documents' kind field, which the schema must define.
fn documents(d: &At<'_, String>, schema: &Schema, errs: &mut Errs) -> Option<Pattern> {
    match Pattern::parse(d.value) {
        Ok(p) if schema.knows(&p) => Some(p),
        Ok(_) => {
            let msg = format!(
                "[casework] documents: {:?} is not in schema {}",
                d.value, schema.name
            );
            errs.at(d.part, d.span.clone(), msg);
            None
        }
        Err(e) => {
            errs.at(d.part, d.span.clone(), format!("[casework] documents: {e}"));
            None
        }
    }
}

/// An id is an anchor: lower-case ASCII letters, digits and `-`.
fn check_section_text(part: &Parsed, span: Range<usize>, s: &SectionDef, errs: &mut Errs) {
    let id_ok = !s.id.is_empty()
        && s.id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_ok {
        let msg = format!(
            "[casework] section id {:?} must be lower-case letters, digits and '-'",
            s.id
        );
        errs.at(part, span.clone(), msg);
    }
    if s.title.trim().is_empty() {
        errs.at(part, span, "[casework] a section needs a title");
    }
}

fn sections(
    part: &Parsed,
    raw: &[Spanned<RawSection>],
    general: &SectionDef,
    schema: &Schema,
    errs: &mut Errs,
) -> Vec<SectionDef> {
    let mut ids = BTreeSet::from([general.id.clone()]);
    let mut props = BTreeSet::new();
    let mut out = Vec::new();
    for s in raw {
        let (span, r) = (s.span(), s.get_ref());
        let def = SectionDef {
            id: r.id.clone(),
            title: r.title.clone(),
            property: Some(r.property.clone()),
        };
        check_section_text(part, span.clone(), &def, errs);
        if !ids.insert(r.id.clone()) {
            let msg = format!("[casework] section id {:?} is used twice", r.id);
            errs.at(part, span.clone(), msg);
        }
        if !props.insert(r.property.clone()) {
            let msg = format!("[casework] property {:?} has two sections", r.property);
            errs.at(part, span.clone(), msg);
        }
        let top = Pattern {
            segs: vec![Seg::Key(r.property.clone())],
        };
        if !schema.knows(&top) {
            let msg = format!(
                "[casework] section {:?}: property {:?} is not a top-level field of schema {}",
                r.id, r.property, schema.name
            );
            errs.at(part, span, msg);
        }
        out.push(def);
    }
    out
}

/// The declared order with the insertions, each name once and known to
/// the schema somewhere.
fn field_order(m: &Merged<'_>, schema: &Schema, errs: &mut Errs) -> Vec<String> {
    let known = property_names(&schema.json);
    let mut order: Vec<String> = Vec::new();
    let add = |order: &mut Vec<String>, name: &At<'_, String>, errs: &mut Errs| {
        if order.contains(name.value) {
            let msg = format!("[casework] field_order names {:?} twice", name.value);
            errs.at(name.part, name.span.clone(), msg);
            return false;
        }
        if !known.contains(name.value.as_str()) {
            let msg = format!(
                "[casework] field_order: {:?} is no property of schema {}",
                name.value, schema.name
            );
            errs.at(name.part, name.span.clone(), msg);
        }
        true
    };
    if let Some((part, names)) = m.order {
        for n in names {
            if add(&mut order, &at(part, n), errs) {
                order.push(n.get_ref().clone());
            }
        }
    }
    for &(part, anchor, names) in &m.order_after {
        let Some(pos) = order.iter().position(|k| k == anchor) else {
            let msg = format!("[casework] field_order_after: {anchor:?} is not in field_order");
            errs.at(part, names.span(), msg);
            continue;
        };
        for (i, n) in names.get_ref().iter().enumerate() {
            let name = At {
                part,
                span: names.span(),
                value: n,
            };
            if add(&mut order, &name, errs) {
                order.insert(pos + 1 + i, n.clone());
            }
        }
    }
    order
}

/// Every name under a `properties` anywhere in the schema.
fn property_names(schema: &Value) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    let mut stack = vec![schema];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    out.extend(props.keys().map(String::as_str));
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// A concrete pointer (no wildcard, not the root) the schema defines.
fn concrete(p: &At<'_, String>, key: &str, schema: &Schema, errs: &mut Errs) -> Option<String> {
    let segs = pointer::parse_concrete(p.value).filter(|s| !s.is_empty());
    let Some(segs) = segs.filter(|_| p.value.starts_with('/')) else {
        let msg = format!(
            "[casework] {key}: {:?} is not a JSON Pointer to a field (it must start with '/')",
            p.value
        );
        errs.at(p.part, p.span.clone(), msg);
        return None;
    };
    let pattern = Pattern {
        segs: segs.into_iter().map(Seg::Key).collect(),
    };
    if !schema.knows(&pattern) {
        let msg = format!(
            "[casework] {key}: {:?} is not in schema {}",
            p.value, schema.name
        );
        errs.at(p.part, p.span.clone(), msg);
        return None;
    }
    Some(p.value.clone())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, compiled};

    const LAYOUT: &str = r#"[casework]
dienststelle = "/anschrift/plz"
applicant_name = ["/personen/0/name"]
read_only = ["/art"]
field_order = ["ort", "plz"]
field_order_after = { ort = ["name"] }
general = { id = "kopf", title = "Kopfdaten" }

[[casework.section]]
id = "wohnort"
title = "Wohnort"
property = "anschrift"
"#;

    #[test]
    fn a_layout_compiles_with_today_and_dienststelle_read_only() {
        let m = compiled(LAYOUT);
        let l = &m.casework;
        assert_eq!(l.general.title, "Kopfdaten");
        assert_eq!(l.sections.len(), 1);
        assert_eq!(l.sections[0].property.as_deref(), Some("anschrift"));
        assert_eq!(
            l.read_only.pointers(),
            ["/art", "/eingereichtAm", "/anschrift/plz"]
        );
        assert_eq!(l.applicant_name, ["/personen/0/name"]);
        let mut keys = vec!["plz", "name", "ort", "art"];
        keys.sort_by_key(|k| l.order_key(k));
        assert_eq!(keys, ["ort", "name", "plz", "art"]);
    }

    #[test]
    fn the_documents_field_must_be_in_the_schema() {
        let m = compiled("[casework]\ndocuments = \"/personen/*/name\"\n");
        assert!(m.casework.documents.is_some());
        check(
            "[casework]\ndocuments = \"/unterlagen/*/art\"\n",
            &["t.toml:2: [casework] documents: \"/unterlagen/*/art\" is not in schema s.json"],
        );
    }

    #[test]
    fn no_layout_is_one_general_section() {
        let m = compiled("");
        assert!(m.casework.sections.is_empty());
        assert_eq!(m.casework.general.title, "Allgemeine Angaben");
        assert_eq!(m.casework.read_only.pointers(), ["/eingereichtAm"]);
        assert_eq!(m.casework.dienststelle, None);
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        check(
            r#"[casework]
dienststelle = "jobcenter"
applicant_name = ["/personen/*/name", "/gibtsnicht"]
read_only = [""]
field_order = ["ort", "ort", "xyz"]
field_order_after = { fehlt = ["plz"] }

[[casework.section]]
id = "Wohnort"
title = " "
property = "anschrift"

[[casework.section]]
id = "wohnort2"
title = "Noch einmal"
property = "anschrift"

[[casework.section]]
id = "x"
title = "X"
property = "unbekannt"
"#,
            &[
                "t.toml:8: [casework] section id \"Wohnort\" must be lower-case letters, digits and '-'",
                "t.toml:8: [casework] a section needs a title",
                "t.toml:13: [casework] property \"anschrift\" has two sections",
                "t.toml:18: [casework] section \"x\": property \"unbekannt\" is not a top-level field of schema s.json",
                "t.toml:5: [casework] field_order names \"ort\" twice",
                "t.toml:5: [casework] field_order: \"xyz\" is no property of schema s.json",
                "t.toml:6: [casework] field_order_after: \"fehlt\" is not in field_order",
                "t.toml:4: [casework] read_only: \"\" is not a JSON Pointer to a field (it must start with '/')",
                "t.toml:3: [casework] applicant_name: \"/personen/*/name\" is not in schema s.json",
                "t.toml:3: [casework] applicant_name: \"/gibtsnicht\" is not in schema s.json",
                "t.toml:2: [casework] dienststelle: \"jobcenter\" is not a JSON Pointer to a field (it must start with '/')",
            ],
        );
    }
}
