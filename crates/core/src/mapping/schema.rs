//! Walking a JSON Schema: which locations it defines (every pointer of a
//! mapping must be one), following `$ref` into `$defs` and `allOf`.

use serde_json::Value;

use crate::pointer::{Pattern, Seg};

/// The node itself and every schema it refers to or combines with `allOf`.
pub(crate) fn resolve<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    let mut out = vec![node];
    if let Some(name) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        if let Some(t) = root.get("$defs").and_then(|d| d.get(name)) {
            out.extend(resolve(root, t));
        }
    }
    if let Some(all) = node.get("allOf").and_then(Value::as_array) {
        for s in all {
            out.extend(resolve(root, s));
        }
    }
    out
}

/// Does the JSON Schema define a location matching this pattern?
pub fn schema_knows(root: &Value, pattern: &Pattern) -> bool {
    fn walk(root: &Value, node: &Value, segs: &[Seg]) -> bool {
        let Some((first, rest)) = segs.split_first() else {
            return true;
        };
        resolve(root, node).into_iter().any(|n| match first {
            Seg::Any => n.get("items").is_some_and(|i| walk(root, i, rest)),
            Seg::Key(k) => {
                n.get("properties")
                    .and_then(|p| p.get(k.as_str()))
                    .is_some_and(|c| walk(root, c, rest))
                    || (k.parse::<usize>().is_ok()
                        && n.get("items").is_some_and(|i| walk(root, i, rest)))
            }
        })
    }
    walk(root, root, &pattern.segs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn knows_properties_items_refs_and_all_of() {
        let s = json!({
            "$defs": {"p": {"properties": {"name": {}}}},
            "properties": {
                "a": {"items": {"$ref": "#/$defs/p"}},
                "b": {"allOf": [{"properties": {"c": {}}}]}
            }
        });
        let knows = |p: &str| schema_knows(&s, &Pattern::parse(p).unwrap());
        assert!(knows("/a/*/name"));
        assert!(knows("/a/0/name"));
        assert!(knows("/b/c"));
        assert!(!knows("/a/*/vorname"));
        assert!(!knows("/b/*"));
    }
}
