//! The ALLEGRO import record: built from the mapping's `[[group]]`s and
//! written as XML with quick-xml (layout: `schemas/allegro-import-<v>.xsd`).
//!
//! Values are normalized by their field's transform (names trimmed and
//! whitespace collapsed, IBAN upper case without spaces, amounts with exactly
//! two places); characters XML 1.0 forbids are removed before writing.

use std::collections::BTreeMap;
use std::sync::Arc;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde_json::Value;

use crate::dates;
use crate::finding::{Finding, Severity};
use crate::money;
use crate::pointer::{self, Anchor, Pattern, Ref};

/// Namespace of the record layout, followed by its version.
pub const NAMESPACE_PREFIX: &str = "urn:allegro-bridge:import:";

/// The names of all transforms, for the linter and the docs.
pub const TRANSFORMS: &[&str] = &[
    "text", "upper", "iban", "date", "datetime", "amount", "number", "integer", "bool", "code",
];

/// How a source value becomes record text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Trim, collapse inner whitespace, keep Unicode as written.
    Text,
    /// Like `Text`, then upper case.
    Upper,
    /// Spaces removed, upper case.
    Iban,
    /// Strict `YYYY-MM-DD`.
    Date,
    /// RFC 3339 date-time, kept as written.
    DateTime,
    /// Decimal with exactly two places.
    Amount,
    /// Decimal as written (e.g. square metres).
    Number,
    Integer,
    Bool,
    /// A code from a fixed list, copied as is or translated by a codelist.
    Code,
}

impl Transform {
    pub fn parse(s: &str) -> Result<Transform, String> {
        Ok(match s {
            "text" => Transform::Text,
            "upper" => Transform::Upper,
            "iban" => Transform::Iban,
            "date" => Transform::Date,
            "datetime" => Transform::DateTime,
            "amount" => Transform::Amount,
            "number" => Transform::Number,
            "integer" => Transform::Integer,
            "bool" => Transform::Bool,
            "code" => Transform::Code,
            other => {
                return Err(format!(
                    "unknown transform '{other}' (known: {})",
                    TRANSFORMS.join(", ")
                ))
            }
        })
    }
}

/// A compiled field of a group.
#[derive(Debug, Clone)]
pub struct Field {
    pub from: Ref,
    /// Record element path below the group element, e.g. `["Anschrift", "Strasse"]`.
    pub to: Vec<String>,
    pub transform: Transform,
    pub codelist: Option<Arc<BTreeMap<String, String>>>,
    pub default: Option<String>,
}

/// A compiled `[[group]]`.
#[derive(Debug, Clone)]
pub struct Group {
    pub element: String,
    pub container: Option<String>,
    pub sources: Vec<Pattern>,
    pub fields: Vec<Field>,
}

/// Who changed which field (for a released case's provenance).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Correction {
    pub pointer: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: String,
    pub at: String,
}

/// Everything besides the groups that goes into a record.
pub struct RecordMeta<'a> {
    pub record_version: &'a str,
    pub mapping_name: &'a str,
    pub mapping_version: &'a str,
    pub findings: &'a [Finding],
    pub corrections: &'a [Correction],
}

/// Removes characters XML 1.0 does not allow (C0 controls except TAB, LF,
/// CR; U+FFFE and U+FFFF).
pub fn xml_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c < '\u{20}' && c != '\t' && c != '\n' && c != '\r') || c == '\u{FFFE}' || c == '\u{FFFF}'
    };
    // Fast path on bytes: controls are single bytes, U+FFFE/U+FFFF start with 0xEF 0xBF.
    let suspicious = s
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r') || b == 0xEF);
    if suspicious && s.chars().any(bad) {
        std::borrow::Cow::Owned(s.chars().filter(|c| !bad(*c)).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Trims and collapses every run of whitespace (and control characters) to one space.
pub fn collapse(s: &str) -> String {
    // Fast path: plain ASCII text without leading, trailing or double spaces.
    let b = s.as_bytes();
    let plain = !b.is_empty()
        && b[0] != b' '
        && b[b.len() - 1] != b' '
        && b.iter().all(|&c| (0x21..0x7f).contains(&c) || c == b' ')
        && !s.contains("  ");
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Applies a transform; `Err` carries a German detail for the caseworker.
pub fn apply(
    t: Transform,
    v: &Value,
    codelist: Option<&BTreeMap<String, String>>,
) -> Result<String, String> {
    let s = match (t, v) {
        (Transform::Text, Value::String(s)) => collapse(s),
        (Transform::Upper, Value::String(s)) => collapse(s).to_uppercase(),
        (Transform::Iban, Value::String(s)) => s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_uppercase(),
        // parse_date accepts only the canonical YYYY-MM-DD form, so the
        // input can be copied once it parsed.
        (Transform::Date, Value::String(s)) => dates::parse_date(s)
            .map(|_| s.clone())
            .ok_or("es ist kein gültiges Datum im Format JJJJ-MM-TT")?,
        (Transform::DateTime, Value::String(s)) => {
            let d = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| "es ist kein gültiger Zeitpunkt")?;
            // Already canonical (upper-case T, seconds, ±hh:mm): keep as is.
            let b = s.as_bytes();
            let canonical = b.len() == 25 && b[10] == b'T' && (b[19] == b'+' || b[19] == b'-');
            if canonical {
                s.clone()
            } else {
                d.to_rfc3339()
            }
        }
        (Transform::Amount, Value::Number(n)) => money::decimal(n)
            .and_then(money::two_places)
            .ok_or("der Betrag ist zu groß oder hat mehr als zwei Nachkommastellen")?,
        (Transform::Number, Value::Number(n)) => money::decimal(n)
            .map(|d| d.normalize().to_string())
            .ok_or("es ist keine gültige Zahl")?,
        (Transform::Integer, Value::Number(n)) => n
            .as_i64()
            .map(|i| i.to_string())
            .ok_or("es ist keine ganze Zahl")?,
        (Transform::Bool, Value::Bool(b)) => b.to_string(),
        (Transform::Code, Value::String(s)) => match codelist {
            Some(list) => list
                .get(s.as_str())
                .cloned()
                .ok_or("der Wert ist in der Schlüsselliste nicht vorgesehen")?,
            None => s.clone(),
        },
        (Transform::Text | Transform::Upper, Value::Number(n)) => n.to_string(),
        _ => return Err("der Wert hat nicht die erwartete Art".to_string()),
    };
    // Characters XML 1.0 forbids are removed when the text is written.
    Ok(s)
}

type W = Writer<Vec<u8>>;

fn open(w: &mut W, name: &str) {
    w.write_event(Event::Start(BytesStart::new(name)))
        .expect("writing to a Vec cannot fail");
}

fn close(w: &mut W, name: &str) {
    w.write_event(Event::End(BytesEnd::new(name)))
        .expect("writing to a Vec cannot fail");
}

fn leaf(w: &mut W, name: &str, text: &str) {
    open(w, name);
    w.write_event(Event::Text(BytesText::new(&xml_safe(text))))
        .expect("writing to a Vec cannot fail");
    close(w, name);
}

fn empty_with_attrs(w: &mut W, name: &str, attrs: &[(&str, &str)], text: Option<&str>) {
    let mut start = BytesStart::new(name);
    for (k, v) in attrs {
        start.push_attribute((*k, xml_safe(v).as_ref()));
    }
    match text {
        Some(t) => {
            w.write_event(Event::Start(start)).expect("vec");
            w.write_event(Event::Text(BytesText::new(&xml_safe(t))))
                .expect("vec");
            close(w, name);
        }
        None => {
            w.write_event(Event::Empty(start)).expect("vec");
        }
    }
}

/// Writes the non-error findings selected by `pick` as `<container><element
/// attrs...>message</element>...</container>`; nothing when there are none.
fn write_findings<'f>(
    w: &mut W,
    findings: &'f [Finding],
    container: &str,
    element: &str,
    pick: impl Fn(&Finding) -> bool,
    attrs: impl Fn(&'f Finding) -> Vec<(&'static str, &'f str)>,
) {
    let mut selected = findings
        .iter()
        .filter(|f| f.severity != Severity::Error && pick(f))
        .peekable();
    if selected.peek().is_none() {
        return;
    }
    open(w, container);
    for f in selected {
        empty_with_attrs(w, element, &attrs(f), Some(&f.message));
    }
    close(w, container);
}

/// Builds the record XML. Transform failures become error findings (rule
/// `transform_rule`) and no XML is returned.
pub fn build(
    groups: &[Group],
    doc: &Value,
    meta: &RecordMeta<'_>,
    transform_error: &dyn Fn(&pointer::Path<'_>, &str) -> Finding,
) -> Result<Vec<u8>, Vec<Finding>> {
    let mut w = Writer::new_with_indent(Vec::with_capacity(8 * 1024), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect("vec");
    let ns = format!("{NAMESPACE_PREFIX}{}", meta.record_version);
    let mut root = BytesStart::new("AllegroImport");
    root.push_attribute(("xmlns", ns.as_str()));
    root.push_attribute(("version", meta.record_version));
    w.write_event(Event::Start(root)).expect("vec");

    let mut errors = Vec::new();
    for g in groups {
        let mut matches = Vec::new();
        for s in &g.sources {
            s.for_each(doc, &Vec::new(), &mut |p, v| matches.push((p.clone(), v)));
        }
        if matches.is_empty() {
            continue;
        }
        if let Some(c) = &g.container {
            open(&mut w, c);
        }
        for (path, element) in &matches {
            open(&mut w, &g.element);
            let mut stack: Vec<&str> = Vec::new();
            for f in &g.fields {
                // Fields below the element (the usual case) are read without
                // walking from the root or allocating a path.
                let found = match f.from.anchor {
                    Anchor::Relative { levels: 0 } if !f.from.pattern.has_wildcard() => {
                        f.from.pattern.get(element)
                    }
                    _ => f.from.first(doc, path).map(|(_, v)| v),
                };
                let value = match found {
                    Some(Value::Null) | None => match &f.default {
                        Some(d) => d.clone(),
                        None => continue,
                    },
                    Some(v) => match apply(f.transform, v, f.codelist.as_deref()) {
                        Ok(s) => s,
                        Err(detail) => {
                            let vpath = f.from.first(doc, path).map(|(p, _)| p).unwrap_or_default();
                            errors.push(transform_error(&vpath, &detail));
                            continue;
                        }
                    },
                };
                let (name, parents) = f.to.split_last().expect("non-empty target");
                let common = stack
                    .iter()
                    .zip(parents)
                    .take_while(|(a, b)| **a == b.as_str())
                    .count();
                while stack.len() > common {
                    close(&mut w, stack.pop().expect("non-empty"));
                }
                for p in &parents[common..] {
                    open(&mut w, p);
                    stack.push(p.as_str());
                }
                leaf(&mut w, name, &value);
            }
            while let Some(p) = stack.pop() {
                close(&mut w, p);
            }
            close(&mut w, &g.element);
        }
        if let Some(c) = &g.container {
            close(&mut w, c);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // Warnings and infos travel in the record; documents owed separately.
    let hinweis = |f: &Finding| f.nachweis.is_none();
    write_findings(&mut w, meta.findings, "Hinweise", "Hinweis", hinweis, |f| {
        vec![
            ("regel", f.rule.as_str()),
            ("schwere", f.severity.as_str()),
            ("feld", f.pointer.as_str()),
        ]
    });
    let owed = |f: &Finding| f.nachweis.is_some();
    write_findings(&mut w, meta.findings, "Mitwirkung", "Nachweis", owed, |f| {
        vec![
            ("art", f.nachweis.as_deref().unwrap_or("")),
            ("regel", f.rule.as_str()),
            ("feld", f.pointer.as_str()),
        ]
    });
    open(&mut w, "Herkunft");
    leaf(&mut w, "Mapping", meta.mapping_name);
    leaf(&mut w, "MappingVersion", meta.mapping_version);
    leaf(&mut w, "BridgeVersion", env!("CARGO_PKG_VERSION"));
    if !meta.corrections.is_empty() {
        open(&mut w, "Korrekturen");
        for c in meta.corrections {
            let mut attrs = vec![
                ("feld", c.pointer.as_str()),
                ("durch", c.by.as_str()),
                ("am", c.at.as_str()),
            ];
            if let Some(f) = &c.from {
                attrs.push(("von", f));
            }
            if let Some(t) = &c.to {
                attrs.push(("nach", t));
            }
            empty_with_attrs(&mut w, "Korrektur", &attrs, None);
        }
        close(&mut w, "Korrekturen");
    }
    close(&mut w, "Herkunft");
    close(&mut w, "AllegroImport");
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collapse_trims_and_keeps_unicode() {
        assert_eq!(collapse("  Олена \t  Анна\n"), "Олена Анна");
        assert_eq!(collapse("a\u{0}b"), "a b");
        assert_eq!(collapse("   "), "");
    }

    #[test]
    fn xml_safe_strips_forbidden() {
        assert_eq!(xml_safe("a\u{1}b\u{FFFF}c\td"), "abc\td");
    }

    #[test]
    fn transforms() {
        let n: Value = serde_json::from_str("487.1").unwrap();
        assert_eq!(apply(Transform::Amount, &n, None).unwrap(), "487.10");
        assert_eq!(
            apply(Transform::Iban, &json!("de46 6928 5932"), None).unwrap(),
            "DE4669285932"
        );
        assert!(apply(Transform::Date, &json!("2026-13-01"), None).is_err());
        let mut cl = BTreeMap::new();
        cl.insert("WEIBLICH".to_string(), "W".to_string());
        assert_eq!(
            apply(Transform::Code, &json!("WEIBLICH"), Some(&cl)).unwrap(),
            "W"
        );
        assert!(apply(Transform::Code, &json!("X"), Some(&cl)).is_err());
    }
}
