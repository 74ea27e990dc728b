//! What the input schema says about one concrete location: which kind of
//! value belongs there, which properties an object may have. And how a value
//! is shown to a caseworker and written into a correction.

use serde_json::Value;

use crate::mapping::resolve_schema;
use crate::pointer::Step;

/// The kind of value the input schema allows at a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// A string, at most `max_chars` characters when the schema says so.
    Text { max_chars: Option<usize> },
    /// A calendar date `YYYY-MM-DD`.
    Date,
    /// A decimal number (amounts, areas).
    Number,
    /// A whole number.
    Integer,
    /// Yes or no.
    Boolean,
    /// One of a fixed list of codes.
    Choice(Vec<String>),
    /// An object with properties of its own.
    Group,
    /// A list of entries.
    List,
}

impl FieldKind {
    /// Whether a caseworker can type a value for it (not a group or list).
    pub fn is_value(&self) -> bool {
        !matches!(self, FieldKind::Group | FieldKind::List)
    }

    /// What a caseworker should type, in German (for the edit form).
    pub fn hint(&self) -> String {
        match self {
            FieldKind::Text { max_chars: Some(n) } => format!("Text, höchstens {n} Zeichen"),
            FieldKind::Text { max_chars: None } => "Text".into(),
            FieldKind::Date => "Datum im Format JJJJ-MM-TT, z. B. 2026-11-01".into(),
            FieldKind::Number => "Zahl, z. B. 845,26".into(),
            FieldKind::Integer => "ganze Zahl, z. B. 3".into(),
            FieldKind::Boolean => "ja oder nein".into(),
            FieldKind::Choice(_) => "einer der angebotenen Werte".into(),
            FieldKind::Group | FieldKind::List => "mehrere Angaben".into(),
        }
    }
}

/// Turns owned pointer segments into path steps (digit-only segments are
/// array positions).
pub fn steps(segs: &[String]) -> Vec<Step<'_>> {
    segs.iter()
        .map(|s| match s.parse::<usize>() {
            Ok(i) if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => Step::Index(i),
            _ => Step::Key(s.as_str()),
        })
        .collect()
}

/// The schema node(s) at a concrete location, following `$ref` and `allOf`;
/// `None` when the schema does not define the location.
fn nodes<'a>(root: &'a Value, segs: &[String]) -> Option<Vec<&'a Value>> {
    let mut node = root;
    for seg in segs {
        let candidates = resolve_schema(root, node);
        let is_index = !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit());
        node = candidates.iter().find_map(|n| {
            if is_index {
                n.get("items")
            } else {
                n.get("properties").and_then(|p| p.get(seg.as_str()))
            }
        })?;
    }
    Some(resolve_schema(root, node))
}

/// The kind of value the schema allows at `segs`, or `None` when the schema
/// does not define that location.
pub fn field_kind(root: &Value, segs: &[String]) -> Option<FieldKind> {
    let nodes = nodes(root, segs)?;
    for n in &nodes {
        if let Some(values) = n.get("enum").and_then(Value::as_array) {
            let codes: Vec<String> = values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            return Some(FieldKind::Choice(codes));
        }
        let kind = match n.get("type").and_then(Value::as_str) {
            Some("string") if n.get("format").and_then(Value::as_str) == Some("date") => {
                FieldKind::Date
            }
            Some("string") => FieldKind::Text {
                max_chars: n
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .map(|m| m as usize),
            },
            Some("number") => FieldKind::Number,
            Some("integer") => FieldKind::Integer,
            Some("boolean") => FieldKind::Boolean,
            Some("object") => FieldKind::Group,
            Some("array") => FieldKind::List,
            _ if n.get("properties").is_some() => FieldKind::Group,
            _ if n.get("items").is_some() => FieldKind::List,
            _ => continue,
        };
        return Some(kind);
    }
    None
}

/// The properties the schema defines for the object at `segs`.
pub fn properties(root: &Value, segs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in nodes(root, segs).unwrap_or_default() {
        if let Some(p) = n.get("properties").and_then(Value::as_object) {
            for k in p.keys() {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
    }
    out
}

/// A value as a caseworker reads it (and may type it back): text as is,
/// numbers with a decimal comma, yes/no in German.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string().replace('.', ","),
        Value::Bool(true) => "ja".into(),
        Value::Bool(false) => "nein".into(),
        Value::Null => "leer".into(),
        other => other.to_string(),
    }
}

/// A value as a correction records it: text as is, anything else as JSON.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn segs(p: &str) -> Vec<String> {
        crate::pointer::parse_concrete(p).unwrap()
    }

    fn schema() -> Value {
        json!({
            "$defs": {
                "betrag": {"type": "number"},
                "person": {"type": "object", "properties": {
                    "name": {"type": "string", "maxLength": 5},
                    "geboren": {"type": "string", "format": "date"}
                }}
            },
            "type": "object",
            "properties": {
                "personen": {"type": "array", "items": {"allOf": [{"$ref": "#/$defs/person"}]}},
                "miete": {"$ref": "#/$defs/betrag"},
                "anzahl": {"type": "integer"},
                "art": {"enum": ["A", "B"]},
                "ok": {"type": "boolean"}
            }
        })
    }

    #[test]
    fn kinds_follow_refs_all_of_and_items() {
        let s = schema();
        let k = |p: &str| field_kind(&s, &segs(p));
        assert_eq!(
            k("/personen/3/name"),
            Some(FieldKind::Text { max_chars: Some(5) })
        );
        assert_eq!(k("/personen/0/geboren"), Some(FieldKind::Date));
        assert_eq!(k("/miete"), Some(FieldKind::Number));
        assert_eq!(k("/anzahl"), Some(FieldKind::Integer));
        assert_eq!(k("/ok"), Some(FieldKind::Boolean));
        assert_eq!(
            k("/art"),
            Some(FieldKind::Choice(vec!["A".into(), "B".into()]))
        );
        assert_eq!(k("/personen"), Some(FieldKind::List));
        assert_eq!(k("/personen/0"), Some(FieldKind::Group));
        assert_eq!(k("/personen/x/name"), None);
        assert_eq!(k("/unbekannt"), None);
        assert_eq!(k("/miete/x"), None);
    }

    #[test]
    fn properties_of_an_element() {
        let s = schema();
        let mut p = properties(&s, &segs("/personen/0"));
        p.sort();
        assert_eq!(p, ["geboren", "name"]);
        assert!(properties(&s, &segs("/miete")).is_empty());
    }

    #[test]
    fn display_and_plain_text() {
        let v: Value = serde_json::from_str("845.26").unwrap();
        assert_eq!(display(&v), "845,26");
        assert_eq!(plain(&v), "845.26");
        assert_eq!(display(&json!(true)), "ja");
        assert_eq!(plain(&json!("a b")), "a b");
        assert_eq!(plain(&json!({"a": 1})), r#"{"a":1}"#);
    }
}
