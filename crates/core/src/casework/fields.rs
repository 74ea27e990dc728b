//! What the input schema says about one concrete location: which kind of
//! value belongs there, which properties an object may have. And how a value
//! is shown to a caseworker and written into a correction.
//!
//! How a value is shown is decided by data ([`Format`], [`format`]): dates
//! and date-times by the schema's `format`, amounts by the mapping's
//! `[[check]]` entries of kind `amount`, codes by the German labels of the
//! mapping's `[labels.values]`.

use chrono::DateTime;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::checks::CheckKind;
use crate::mapping::labels::ValueLabels;
use crate::mapping::{resolve_schema, Mapping};
use crate::pointer::Step;
use crate::{dates, money};

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
            FieldKind::Date => "Datum im Format TT.MM.JJJJ, z. B. 01.11.2026".into(),
            FieldKind::Number => "Zahl, z. B. 845,26 oder 1.234,56".into(),
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

/// How a value is shown to a caseworker, decided by the schema and the
/// mapping (never by a field's name in Rust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format<'a> {
    /// As [`display`]: text as is, numbers with a decimal comma, ja/nein.
    Plain,
    /// `1990-11-26` → `26.11.1990` (schema `"format": "date"`).
    Date,
    /// `2026-11-20T07:26:19+01:00` → `20.11.2026, 07:26 Uhr`, in the offset
    /// the value carries (schema `"format": "date-time"`).
    DateTime,
    /// `1234.5` → `1.234,50 €` (a field of a `[[check]]` of kind `amount`).
    Amount,
    /// A code by its German label (`[labels.values]`); a code without a
    /// label as itself.
    Code(&'a ValueLabels),
}

/// The format of the field at `segs` under mapping `m`.
pub fn format<'m>(m: &'m Mapping, segs: &[String]) -> Format<'m> {
    let path = steps(segs);
    let is_amount = m.checks.iter().any(|c| {
        matches!(c.kind, CheckKind::Amount) && c.fields.iter().any(|p| p.matches_path(&path))
    });
    if is_amount {
        return Format::Amount;
    }
    match schema_format(&m.schema_json, segs).as_deref() {
        Some("date") => return Format::Date,
        Some("date-time") => return Format::DateTime,
        _ => {}
    }
    match m.labels.values(&path) {
        Some(labels) => Format::Code(labels),
        None => Format::Plain,
    }
}

/// The schema's `format` of a string at `segs`, if any.
fn schema_format(root: &Value, segs: &[String]) -> Option<String> {
    nodes(root, segs)?
        .iter()
        .find_map(|n| n.get("format").and_then(Value::as_str))
        .map(str::to_string)
}

impl Format<'_> {
    /// The value as a caseworker reads it; a value that does not have the
    /// form its format expects is shown as [`display`] shows it.
    pub fn show(&self, v: &Value) -> String {
        let shown = match (self, v) {
            (Format::Date, Value::String(s)) => german_date(s),
            (Format::DateTime, Value::String(s)) => german_date_time(s),
            (Format::Amount, Value::Number(n)) => {
                money::decimal(n).map(|d| format!("{} €", german_decimal(d)))
            }
            (Format::Code(labels), Value::String(s)) => labels.get(s).cloned(),
            _ => None,
        };
        shown.unwrap_or_else(|| display(v))
    }

    /// The value as an edit form offers it for typing (and reads it back):
    /// dates and amounts in German form (without `€`), codes and
    /// date-times as the contract writes them.
    pub fn input(&self, v: &Value) -> String {
        let typed = match (self, v) {
            (Format::Date, Value::String(s)) => german_date(s),
            (Format::Amount, Value::Number(n)) => money::decimal(n).map(german_decimal),
            (Format::DateTime | Format::Code(_), Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        typed.unwrap_or_else(|| display(v))
    }
}

/// `YYYY-MM-DD` as `TT.MM.JJJJ`; `None` if not such a date.
pub fn german_date(s: &str) -> Option<String> {
    dates::parse_date(s).map(|d| d.format("%d.%m.%Y").to_string())
}

/// An RFC 3339 date-time as `TT.MM.JJJJ, HH:MM Uhr` in its own offset;
/// `None` if not such a date-time.
pub fn german_date_time(s: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.format("%d.%m.%Y, %H:%M Uhr").to_string())
}

/// A decimal with thousands points and a decimal comma, at least two
/// places and every place it has (`-1234.5` → `-1.234,50`; `0.125` stays
/// `0,125`, so that an invalid amount is not shown as a valid one).
pub fn german_decimal(d: Decimal) -> String {
    let mut d = d.normalize();
    if d.scale() < 2 {
        d.rescale(2);
    }
    let plain = d.abs().to_string();
    let (int, frac) = plain.split_once('.').unwrap_or((plain.as_str(), ""));
    let mut out = String::with_capacity(plain.len() + plain.len() / 3 + 2);
    if d.is_sign_negative() && !d.is_zero() {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push('.');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push(',');
        out.push_str(frac);
    }
    out
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
    fn dates_and_date_times_in_german() {
        assert_eq!(Format::Date.show(&json!("1990-11-26")), "26.11.1990");
        assert_eq!(Format::Date.input(&json!("1990-11-26")), "26.11.1990");
        // Not a date: shown as it is.
        assert_eq!(Format::Date.show(&json!("26.11.90")), "26.11.90");
        let t = json!("2026-11-20T07:26:19+01:00");
        assert_eq!(Format::DateTime.show(&t), "20.11.2026, 07:26 Uhr");
        assert_eq!(Format::DateTime.input(&t), "2026-11-20T07:26:19+01:00");
        // In the offset the value carries, not converted.
        let summer = json!("2026-06-30T23:59:00+02:00");
        assert_eq!(Format::DateTime.show(&summer), "30.06.2026, 23:59 Uhr");
        let utc = json!("2026-12-31T23:05:00Z");
        assert_eq!(Format::DateTime.show(&utc), "31.12.2026, 23:05 Uhr");
        assert_eq!(Format::DateTime.show(&json!("gestern")), "gestern");
    }

    #[test]
    fn amounts_in_german_with_two_places() {
        let show = |s: &str| Format::Amount.show(&serde_json::from_str(s).unwrap());
        assert_eq!(show("1234.56"), "1.234,56 €");
        assert_eq!(show("0"), "0,00 €");
        assert_eq!(show("0.5"), "0,50 €");
        assert_eq!(show("612.50"), "612,50 €");
        assert_eq!(show("-1234.5"), "-1.234,50 €");
        assert_eq!(show("-0.00"), "0,00 €");
        assert_eq!(show("999"), "999,00 €");
        assert_eq!(show("1000"), "1.000,00 €");
        assert_eq!(show("1234567890123.45"), "1.234.567.890.123,45 €");
        assert_eq!(show("1e3"), "1.000,00 €");
        // An invalid amount keeps its places (the check reports it).
        assert_eq!(show("10.005"), "10,005 €");
        // Not a number: as display shows it.
        assert_eq!(Format::Amount.show(&json!("viel")), "viel");
        let input = Format::Amount.input(&serde_json::from_str("1234.5").unwrap());
        assert_eq!(input, "1.234,50");
    }

    #[test]
    fn codes_by_label_else_as_themselves() {
        let labels = ValueLabels::from([("ROU".to_string(), "Rumänien".to_string())]);
        let f = Format::Code(&labels);
        assert_eq!(f.show(&json!("ROU")), "Rumänien");
        assert_eq!(f.input(&json!("ROU")), "ROU");
        assert_eq!(f.show(&json!("XYZ")), "XYZ");
        assert_eq!(Format::Plain.show(&json!(2.5)), "2,5");
        assert_eq!(Format::Plain.show(&json!(false)), "nein");
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
