//! `[labels.values.<field>]`: the German label of each code of a field,
//! checked against the JSON Schema at load: the field (a property name, or a
//! pointer pattern starting with `/`) must be one the schema defines, and
//! where the schema lists the field's codes (`enum`) every labelled code
//! must be one of them. A later file's label of the same code wins.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Schema;
use crate::mapping::error::Errs;
use crate::mapping::labels::{CodeLabels, ValueLabels};
use crate::mapping::load::Parsed;
use crate::mapping::resolve_schema;
use crate::pointer::{Pattern, Seg};

pub(super) fn compile(parts: &[&Parsed], schema: &Schema, errs: &mut Errs) -> CodeLabels {
    let mut full: BTreeMap<String, (Pattern, ValueLabels)> = BTreeMap::new();
    let mut by_name: BTreeMap<String, ValueLabels> = BTreeMap::new();
    for part in parts {
        for (key, table) in &part.file.labels.values {
            let Some((pattern, nodes)) = field(part, key, table.span(), schema, errs) else {
                continue;
            };
            let codes = enum_codes(&schema.json, &nodes);
            let labels: &mut ValueLabels = match pattern {
                Some(p) => &mut full.entry(key.clone()).or_insert((p, ValueLabels::new())).1,
                None => by_name.entry(key.clone()).or_default(),
            };
            for (code, label) in table.get_ref() {
                if let Some(codes) = codes.as_ref().filter(|c| !c.contains(code)) {
                    let msg = format!(
                        "[labels.values.{key}] {code:?} is not a code of this field (codes: {})",
                        codes.join(", ")
                    );
                    errs.at(*part, label.span(), msg);
                    continue;
                }
                if label.get_ref().trim().is_empty() {
                    let msg = format!("[labels.values.{key}] the label of {code:?} is empty");
                    errs.at(*part, label.span(), msg);
                    continue;
                }
                labels.insert(code.clone(), label.get_ref().clone());
            }
        }
    }
    CodeLabels {
        full: full.into_values().collect(),
        by_name,
    }
}

/// The pattern (for a key starting with `/`) and the schema nodes the key
/// names, or `None` (a problem reported) when the schema does not define it.
fn field<'s>(
    part: &Parsed,
    key: &str,
    span: std::ops::Range<usize>,
    schema: &'s Schema,
    errs: &mut Errs,
) -> Option<(Option<Pattern>, Vec<&'s Value>)> {
    if key.starts_with('/') {
        let pattern = match Pattern::parse(key) {
            Ok(p) => p,
            Err(e) => {
                errs.at(part, span, format!("[labels.values] {e}"));
                return None;
            }
        };
        let nodes = at_pattern(&schema.json, &schema.json, &pattern.segs);
        if nodes.is_empty() {
            let msg = format!("[labels.values] {key:?} is not in schema {}", schema.name);
            errs.at(part, span, msg);
            return None;
        }
        return Some((Some(pattern), nodes));
    }
    let nodes = named(&schema.json, key);
    if nodes.is_empty() {
        let msg = format!(
            "[labels.values] {key:?} is no property of schema {}",
            schema.name
        );
        errs.at(part, span, msg);
        return None;
    }
    Some((None, nodes))
}

/// The nodes at the end of `segs` below `node`.
fn at_pattern<'a>(root: &'a Value, node: &'a Value, segs: &[Seg]) -> Vec<&'a Value> {
    let Some((first, rest)) = segs.split_first() else {
        return vec![node];
    };
    let mut out = Vec::new();
    for n in resolve_schema(root, node) {
        let next = match first {
            Seg::Any => n.get("items"),
            Seg::Key(k) => n.get("properties").and_then(|p| p.get(k.as_str())),
        };
        if let Some(next) = next {
            out.extend(at_pattern(root, next, rest));
        }
    }
    out
}

/// Every node defined as property `name` anywhere in the schema.
fn named<'a>(root: &'a Value, name: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(n) = map.get("properties").and_then(|p| p.get(name)) {
                    out.push(n);
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// The codes the schema lists for the nodes (`enum`, following `$ref` and
/// `allOf`); `None` when none of them lists codes.
fn enum_codes(root: &Value, nodes: &[&Value]) -> Option<Vec<String>> {
    let mut codes: Vec<String> = Vec::new();
    let mut any = false;
    for n in nodes.iter().flat_map(|n| resolve_schema(root, n)) {
        if let Some(values) = n.get("enum").and_then(Value::as_array) {
            any = true;
            for c in values.iter().filter_map(Value::as_str) {
                if !codes.iter().any(|k| k == c) {
                    codes.push(c.to_string());
                }
            }
        }
    }
    any.then_some(codes)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_in, compiled, SCHEMA};
    use crate::pointer::Step;

    /// The test schema with an enum for `art`.
    fn schema() -> String {
        SCHEMA.replace(
            r#""art": {"type": "string"}"#,
            r#""art": {"enum": ["MIETE", "EIGENTUM"]}"#,
        )
    }

    fn check(snippet: &str, expected: &[&str]) {
        let main = super::super::testing::main_with("schema = \"s.json\"", "schema = \"e.json\"");
        let s = schema();
        check_in(&main, snippet, &[("e.json", &s)], expected);
    }

    #[test]
    fn labels_of_codes_compile() {
        let m = compiled(
            "[labels.values.name]\nX = \"Iks\"\n[labels.values.\"/personen/*/rvnr\"]\nX = \"Rentennummer X\"\n",
        );
        let name = [Step::Key("personen"), Step::Index(0), Step::Key("name")];
        assert_eq!(m.labels.code(&name, "X"), Some("Iks"));
        let rvnr = [Step::Key("personen"), Step::Index(2), Step::Key("rvnr")];
        assert_eq!(m.labels.code(&rvnr, "X"), Some("Rentennummer X"));
        assert_eq!(m.labels.code(&rvnr, "Y"), None);
    }

    #[test]
    fn enum_codes_and_known_fields_only() {
        check(
            "[labels.values.art]\nMIETE = \"Miete\"\nKAUF = \"Kauf\"\n",
            &["t.toml:3: [labels.values.art] \"KAUF\" is not a code of this field (codes: MIETE, EIGENTUM)"],
        );
        check(
            "[labels.values.\"/art\"]\nMIETE = \"\"\n",
            &["t.toml:2: [labels.values./art] the label of \"MIETE\" is empty"],
        );
        check(
            "\n[labels.values.hobby]\nX = \"x\"\n",
            &["t.toml:2: [labels.values] \"hobby\" is no property of schema e.json"],
        );
        check(
            "[labels.values.\"/anschrift/hobby\"]\nX = \"x\"\n",
            &["t.toml:1: [labels.values] \"/anschrift/hobby\" is not in schema e.json"],
        );
        check("[labels.values.art]\nMIETE = \"Miete\"\n", &[]);
    }
}
