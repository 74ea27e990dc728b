//! One change a caseworker makes to an application: set a value (also one
//! that is missing, where the input schema allows it) or remove one, at a
//! JSON Pointer.
//!
//! Everything is checked before anything changes: the pointer must be well
//! formed and short, name a location the schema defines (or, for a removal,
//! one present in the application), not be one of the mapping's read-only
//! places (`[casework] read_only`, [`ReadOnly`]),
//! and the typed text must fit the schema's kind and length. A refused edit
//! leaves the document as it was and says why in one German sentence
//! ([`EditError::message`]). An applied edit is a [`Change`], which
//! [`record_correction`] turns into the record's provenance entry.

use serde_json::{Map, Value};

use super::fields::{self, FieldKind};
use super::layout::ReadOnly;
use crate::mapping::labels::ValueLabels;
use crate::mapping::Mapping;
use crate::pointer;
use crate::record::Correction;

/// At most this many characters may be typed for one value.
pub const MAX_INPUT_CHARS: usize = 1000;

/// Longest pointer accepted (the deepest in the schema is far shorter).
pub const MAX_POINTER_BYTES: usize = 200;

/// What to do at a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOp {
    /// Set the value typed by the caseworker (adds it when missing).
    Set(String),
    /// Remove the value (a field or a list entry).
    Remove,
}

/// An applied edit: the value before and after (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub pointer: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// Why an edit was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// Not a JSON Pointer, or too long.
    BadPointer,
    /// The input schema defines no such field (and it is not in the application).
    Unknown,
    /// One of the read-only places of the mapping ([`ReadOnly`]).
    ReadOnly,
    /// A group that holds a read-only place: only its fields can change.
    HoldsReadOnly,
    /// Control characters (NUL, ESC, line breaks, ...) in a typed value.
    ControlCharacters,
    /// A group or a list: no single value can be typed for it.
    NotAValue,
    /// The list entry (or the group) this field belongs to does not exist.
    NoSuchEntry,
    /// Removal of something that is not there.
    Absent,
    /// Nothing typed.
    Empty,
    /// More than [`MAX_INPUT_CHARS`] characters.
    Oversized,
    /// Longer than the schema allows.
    TooLong { max: usize },
    /// Not a value of the field's kind.
    WrongType(FieldKind),
    /// Not one of the codes offered.
    NotAChoice,
    /// The same value as before.
    Unchanged,
}

impl EditError {
    /// The German sentence shown to the caseworker.
    pub fn message(&self) -> String {
        match self {
            EditError::BadPointer => "Die Feldangabe ist ungültig.".into(),
            EditError::Unknown => "Dieses Feld gibt es im Antragsformular nicht.".into(),
            EditError::ReadOnly => "Dieses Feld kann in der Klärung nicht geändert werden.".into(),
            EditError::HoldsReadOnly => {
                "Diese Gruppe enthält Angaben, die in der Klärung nicht geändert werden können; bitte ändern Sie die einzelnen Felder.".into()
            }
            EditError::ControlCharacters => {
                "Der Wert enthält Steuerzeichen (etwa einen Zeilenumbruch); bitte geben Sie nur sichtbare Zeichen ein.".into()
            }
            EditError::NotAValue => {
                "Hier kann kein einzelner Wert eingetragen werden; bitte ändern Sie die einzelnen Felder.".into()
            }
            EditError::NoSuchEntry => {
                "Den Eintrag, zu dem dieses Feld gehört, gibt es in diesem Antrag nicht.".into()
            }
            EditError::Absent => {
                "Diese Angabe ist im Antrag nicht vorhanden und kann nicht entfernt werden.".into()
            }
            EditError::Empty => {
                "Bitte geben Sie einen Wert ein (oder entfernen Sie die Angabe).".into()
            }
            EditError::Oversized => format!(
                "Der Wert ist zu lang: höchstens {MAX_INPUT_CHARS} Zeichen sind möglich."
            ),
            EditError::TooLong { max } => {
                format!("Der Wert ist zu lang: höchstens {max} Zeichen sind erlaubt.")
            }
            EditError::WrongType(kind) => match kind {
                FieldKind::Number => {
                    "Bitte geben Sie eine Zahl ein, z. B. 845,26 oder 1.234,56.".into()
                }
                FieldKind::Integer => "Bitte geben Sie eine ganze Zahl ein, z. B. 3.".into(),
                FieldKind::Date => {
                    "Bitte geben Sie ein Datum im Format TT.MM.JJJJ ein, z. B. 01.11.2026.".into()
                }
                FieldKind::Boolean => "Bitte wählen Sie „ja“ oder „nein“.".into(),
                _ => "Der Wert hat nicht die erwartete Form.".into(),
            },
            EditError::NotAChoice => "Bitte wählen Sie einen der angebotenen Werte.".into(),
            EditError::Unchanged => "Der Wert ist unverändert; es wurde nichts geändert.".into(),
        }
    }
}

impl EditError {
    /// Whether the error is about the place (the pointer) rather than the
    /// value typed: the field cannot be edited at all (400, not 422).
    pub fn is_about_the_place(&self) -> bool {
        matches!(
            self,
            EditError::BadPointer
                | EditError::Unknown
                | EditError::ReadOnly
                | EditError::HoldsReadOnly
                | EditError::NotAValue
                | EditError::NoSuchEntry
                | EditError::Absent
        )
    }
}

/// Parses and bounds a pointer from a form (`/a/0/b`; not the root).
pub fn parse_pointer(p: &str) -> Result<Vec<String>, EditError> {
    if p.len() > MAX_POINTER_BYTES || !p.starts_with('/') {
        return Err(EditError::BadPointer);
    }
    let segs = pointer::parse_concrete(p).ok_or(EditError::BadPointer)?;
    if segs
        .iter()
        .any(|s| s.is_empty() || s.chars().any(char::is_control))
    {
        return Err(EditError::BadPointer);
    }
    Ok(segs)
}

/// What the edit page needs to know about one pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    /// The canonical pointer.
    pub pointer: String,
    /// German name with its owner, capitalized (`Die IBAN der Bankverbindung`).
    pub label: String,
    /// What the schema allows there (`None`: present, but not in the schema).
    pub kind: Option<FieldKind>,
    /// The current value, if present.
    pub value: Option<Value>,
    /// The current value as a caseworker reads it ([`fields::Format::show`]).
    pub shown: Option<String>,
    /// The current value as the input offers it ([`fields::Format::input`]).
    pub input: Option<String>,
    /// The German labels of the field's codes (empty: none declared).
    pub code_labels: ValueLabels,
    /// A value may be typed.
    pub can_set: bool,
    /// It may be removed.
    pub can_remove: bool,
}

/// Describes the field at `p` for the edit page, or says why it cannot be
/// edited at all.
pub fn describe(m: &Mapping, doc: &Value, p: &str) -> Result<FieldInfo, EditError> {
    let segs = parse_pointer(p)?;
    let kind = fields::field_kind(&m.schema_json, &segs);
    let value = doc.pointer(p).cloned();
    if kind.is_none() && value.is_none() {
        return Err(EditError::Unknown);
    }
    let read_only = &m.casework.read_only;
    if read_only.covers(p) {
        return Err(EditError::ReadOnly);
    }
    check_positions(&m.schema_json, doc, &segs)?;
    let label = crate::mapping::labels::capitalize(&m.labels.name(&fields::steps(&segs)));
    let can_set = kind.as_ref().is_some_and(FieldKind::is_value);
    let can_remove = value.is_some() && !read_only.holds(p);
    if !can_set && !can_remove {
        return Err(if read_only.holds(p) {
            EditError::HoldsReadOnly
        } else {
            EditError::NotAValue
        });
    }
    let format = fields::format(m, &segs);
    let code_labels = match format {
        fields::Format::Code(labels) => labels.clone(),
        _ => ValueLabels::new(),
    };
    Ok(FieldInfo {
        pointer: p.to_string(),
        label,
        kind,
        shown: value.as_ref().map(|v| format.show(v)),
        input: value.as_ref().map(|v| format.input(v)),
        code_labels,
        value,
        can_set,
        can_remove,
    })
}

/// Applies one edit to `doc` under the mapping's input schema. On an error
/// `doc` is unchanged.
pub fn apply(m: &Mapping, doc: &mut Value, p: &str, op: &EditOp) -> Result<Change, EditError> {
    apply_schema(&m.schema_json, &m.casework.read_only, doc, p, op)
}

/// [`apply`] with the schema and the read-only places given directly.
pub fn apply_schema(
    schema: &Value,
    read_only: &ReadOnly,
    doc: &mut Value,
    p: &str,
    op: &EditOp,
) -> Result<Change, EditError> {
    let segs = parse_pointer(p)?;
    if let EditOp::Set(text) = op {
        // Length first: nothing else is looked at in an oversized value.
        if text.chars().count() > MAX_INPUT_CHARS {
            return Err(EditError::Oversized);
        }
    }
    let kind = fields::field_kind(schema, &segs);
    if kind.is_none() && doc.pointer(p).is_none() {
        return Err(EditError::Unknown);
    }
    if read_only.covers(p) {
        return Err(EditError::ReadOnly);
    }
    check_positions(schema, doc, &segs)?;
    match op {
        EditOp::Set(text) => {
            let kind = kind.ok_or(EditError::Unknown)?;
            let new = parse_value(&kind, text)?;
            let mut work = doc.clone();
            let old = set_at(schema, &mut work, &segs, new.clone())?;
            if old.as_ref() == Some(&new) {
                return Err(EditError::Unchanged);
            }
            *doc = work;
            Ok(Change {
                pointer: p.to_string(),
                old,
                new: Some(new),
            })
        }
        EditOp::Remove => {
            if read_only.holds(p) {
                return Err(EditError::HoldsReadOnly);
            }
            let old = remove_at(doc, &segs)?;
            Ok(Change {
                pointer: p.to_string(),
                old: Some(old),
                new: None,
            })
        }
    }
}

/// Every list position in the pointer is written as RFC 6901 writes an
/// array index (`0`, or digits without a leading zero: `/einkommen/01` is
/// no place in an application) and, but for the last step, exists in
/// `doc` (a field of the 100th income of an application with three has no
/// place to go).
fn check_positions(schema: &Value, doc: &Value, segs: &[String]) -> Result<(), EditError> {
    for (i, seg) in segs.iter().enumerate() {
        let parent = &segs[..i];
        let here = doc.pointer(&pointer::render(&fields::steps(parent)));
        let is_list = here.is_some_and(Value::is_array)
            || fields::field_kind(schema, parent) == Some(FieldKind::List);
        if !is_list {
            continue;
        }
        let canonical = seg == "0"
            || (!seg.starts_with('0')
                && !seg.is_empty()
                && seg.bytes().all(|b| b.is_ascii_digit()));
        if !canonical {
            return Err(EditError::BadPointer);
        }
        let len = here.and_then(Value::as_array).map_or(0, Vec::len);
        let index: usize = seg.parse().map_err(|_| EditError::BadPointer)?;
        if i + 1 < segs.len() && index >= len {
            return Err(EditError::NoSuchEntry);
        }
    }
    Ok(())
}

/// The typed text as a JSON value of the field's kind.
pub fn parse_value(kind: &FieldKind, text: &str) -> Result<Value, EditError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(EditError::Empty);
    }
    if t.chars().any(char::is_control) {
        return Err(EditError::ControlCharacters);
    }
    let wrong = || EditError::WrongType(kind.clone());
    match kind {
        FieldKind::Text { max_chars } => {
            if max_chars.is_some_and(|max| t.chars().count() > max) {
                return Err(EditError::TooLong {
                    max: max_chars.unwrap_or_default(),
                });
            }
            Ok(Value::String(t.to_string()))
        }
        FieldKind::Date => parse_date(t).map(Value::String).ok_or_else(wrong),
        FieldKind::Number => parse_number(t).ok_or_else(wrong),
        FieldKind::Integer => {
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(wrong());
            }
            t.parse::<i64>().map(Value::from).map_err(|_| wrong())
        }
        FieldKind::Boolean => match t.to_lowercase().as_str() {
            "ja" | "true" => Ok(Value::Bool(true)),
            "nein" | "false" => Ok(Value::Bool(false)),
            _ => Err(wrong()),
        },
        FieldKind::Choice(codes) => codes
            .iter()
            .find(|c| c.eq_ignore_ascii_case(t))
            .map(|c| Value::String(c.clone()))
            .ok_or(EditError::NotAChoice),
        FieldKind::Group | FieldKind::List => Err(EditError::NotAValue),
    }
}

/// `YYYY-MM-DD` or `TT.MM.JJJJ`, as ISO `YYYY-MM-DD`.
fn parse_date(t: &str) -> Option<String> {
    use chrono::NaiveDate;
    let d = NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .filter(|_| t.len() == 10)
        .or_else(|| NaiveDate::parse_from_str(t, "%d.%m.%Y").ok())?;
    Some(d.format("%Y-%m-%d").to_string())
}

/// A decimal as a caseworker types it, kept digit for digit: `1234.56`,
/// `1234,56`, `1.234,56` and `1.234,56 €` are all 1234.56.
///
/// A `.` is a thousands point only where that is unambiguous: before a
/// decimal comma (`1.234,56`) or when there are several (`1.234.567`), and
/// then every group after the first has exactly three digits. A single `.`
/// without a comma is the decimal point (`1.234` is 1.234, which an amount
/// check then refuses for its third place, rather than silently 1234).
/// A trailing `€` is ignored.
fn parse_number(t: &str) -> Option<Value> {
    let t = t.strip_suffix('€').map_or(t, str::trim_end);
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = match body.split_once(',') {
        Some((i, f)) => (ungroup(i)?, Some(f)),
        None if body.matches('.').count() > 1 => (ungroup(body)?, None),
        None => match body.split_once('.') {
            Some((i, f)) => (i.to_string(), Some(f)),
            None => (body.to_string(), None),
        },
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(&int) || frac.is_some_and(|f| !digits(f)) || int.len() > 15 {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push_str(int);
    if let Some(f) = frac {
        s.push('.');
        s.push_str(f);
    }
    serde_json::from_str(&s).ok()
}

/// The integer part without its thousands points: `1.234` → `1234`; with
/// points, the first group has one to three digits and every other three.
fn ungroup(int: &str) -> Option<String> {
    let mut groups = int.split('.');
    let first = groups.next()?;
    if int.contains('.') && !(1..=3).contains(&first.len()) {
        return None;
    }
    let mut out = first.to_string();
    for g in groups {
        if g.len() != 3 {
            return None;
        }
        out.push_str(g);
    }
    Some(out)
}

/// Sets `new` at `segs`, creating missing groups the schema defines on the
/// way; returns the old value. List entries must exist.
fn set_at(
    schema: &Value,
    doc: &mut Value,
    segs: &[String],
    new: Value,
) -> Result<Option<Value>, EditError> {
    let (last, parents) = segs.split_last().ok_or(EditError::BadPointer)?;
    let mut cur = doc;
    for (depth, seg) in parents.iter().enumerate() {
        cur = match cur {
            Value::Object(map) => {
                if !map.contains_key(seg) {
                    let kind = fields::field_kind(schema, &segs[..=depth]);
                    if kind != Some(FieldKind::Group) {
                        return Err(EditError::NoSuchEntry);
                    }
                    map.insert(seg.clone(), Value::Object(Map::new()));
                }
                map.get_mut(seg).ok_or(EditError::NoSuchEntry)?
            }
            Value::Array(items) => {
                let i: usize = seg.parse().map_err(|_| EditError::NoSuchEntry)?;
                items.get_mut(i).ok_or(EditError::NoSuchEntry)?
            }
            _ => return Err(EditError::NoSuchEntry),
        };
    }
    match cur {
        Value::Object(map) => Ok(map.insert(last.clone(), new)),
        Value::Array(items) => {
            let i: usize = last.parse().map_err(|_| EditError::NoSuchEntry)?;
            let slot = items.get_mut(i).ok_or(EditError::NoSuchEntry)?;
            Ok(Some(std::mem::replace(slot, new)))
        }
        _ => Err(EditError::NoSuchEntry),
    }
}

/// Removes the value at `segs`; returns it.
fn remove_at(doc: &mut Value, segs: &[String]) -> Result<Value, EditError> {
    let (last, parents) = segs.split_last().ok_or(EditError::BadPointer)?;
    let parent_ptr = pointer::render(&fields::steps(parents));
    let parent = doc.pointer_mut(&parent_ptr).ok_or(EditError::Absent)?;
    match parent {
        Value::Object(map) => map.remove(last).ok_or(EditError::Absent),
        Value::Array(items) => {
            let i: usize = last.parse().map_err(|_| EditError::Absent)?;
            if i < items.len() {
                Ok(items.remove(i))
            } else {
                Err(EditError::Absent)
            }
        }
        _ => Err(EditError::Absent),
    }
}

/// Appends the correction for an applied change, in the order made (later
/// corrections' pointers refer to the document after the earlier ones).
pub fn record_correction(list: &mut Vec<Correction>, change: &Change, by: &str, at: &str) {
    list.push(Correction {
        pointer: change.pointer.clone(),
        from: change.old.as_ref().map(fields::plain),
        to: change.new.as_ref().map(fields::plain),
        by: by.to_string(),
        at: at.to_string(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        serde_json::from_str(include_str!(
            "../../../../schemas/buergergeld-antrag-1.0.schema.json"
        ))
        .unwrap()
    }

    fn doc() -> Value {
        serde_json::from_str(include_str!(
            "../../../../fixtures/contract/hauptantrag-mit-fehlern.json"
        ))
        .unwrap()
    }

    /// The read-only places of the repository's `[casework]`.
    fn ro() -> ReadOnly {
        ReadOnly::new([
            "/antragId",
            "/formular",
            "/eingereichtAm",
            "/jobcenter/dienststellennummer",
        ])
    }

    fn set(d: &mut Value, p: &str, v: &str) -> Result<Change, EditError> {
        apply_schema(&schema(), &ro(), d, p, &EditOp::Set(v.into()))
    }

    #[test]
    fn sets_values_of_each_kind() {
        let mut d = doc();
        let c = set(&mut d, "/bankverbindung/iban", " DE89370400440532013000 ").unwrap();
        assert_eq!(c.old, Some(json!("DE78595567370598319781")));
        assert_eq!(d["bankverbindung"]["iban"], "DE89370400440532013000");
        set(&mut d, "/unterkunft/personenImHaushalt", "5").unwrap();
        assert_eq!(d["unterkunft"]["personenImHaushalt"], 5);
        set(&mut d, "/unterkunft/grundmiete", "900,5").unwrap();
        assert_eq!(d["unterkunft"]["grundmiete"].to_string(), "900.5");
        set(&mut d, "/unterkunft/art", "eigentum").unwrap();
        assert_eq!(d["unterkunft"]["art"], "EIGENTUM");
        set(&mut d, "/unterkunft/anschriftGleichMeldeanschrift", "nein").unwrap();
        assert_eq!(d["unterkunft"]["anschriftGleichMeldeanschrift"], false);
        set(&mut d, "/unterkunft/einzugsdatum", "01.02.2020").unwrap();
        assert_eq!(d["unterkunft"]["einzugsdatum"], "2020-02-01");
    }

    #[test]
    fn amounts_are_typed_in_german_and_stored_as_the_contract_writes_them() {
        let n = |t: &str| {
            parse_value(&FieldKind::Number, t)
                .ok()
                .map(|v| v.to_string())
        };
        for typed in ["1.234,56", "1234,56", "1.234,56 €", "1.234,56€", "1234.56"] {
            assert_eq!(n(typed).as_deref(), Some("1234.56"), "{typed}");
        }
        assert_eq!(n("-1.234,5").as_deref(), Some("-1234.5"));
        assert_eq!(n("0").as_deref(), Some("0"));
        assert_eq!(n("0,00 €").as_deref(), Some("0.00"));
        assert_eq!(n("1.234.567").as_deref(), Some("1234567"));
        assert_eq!(n("1.234.567,89").as_deref(), Some("1234567.89"));
        // A single point without a comma is the decimal point.
        assert_eq!(n("1.234").as_deref(), Some("1.234"));
        assert_eq!(n("612.5").as_deref(), Some("612.5"));
        // Thousands points only between groups of three digits.
        for bad in [
            "1.23,4",
            "12.34.567",
            "1234.567,8",
            "1.2345,6",
            ".234,5",
            "1,2,3",
            "1,234.56",
            "€",
            "1 €5",
            "--1",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }

    #[test]
    fn adds_missing_fields_and_groups_the_schema_defines() {
        let mut d = doc();
        let c = set(&mut d, "/bankverbindung/bic", "COBADEFFXXX").unwrap();
        assert_eq!(c.old, None);
        assert_eq!(d["bankverbindung"]["bic"], "COBADEFFXXX");
        // A group missing on the way is created.
        set(
            &mut d,
            "/antragsteller/aufenthaltstitel/art",
            "Niederlassung",
        )
        .unwrap();
        assert_eq!(
            d["antragsteller"]["aufenthaltstitel"]["art"],
            "Niederlassung"
        );
        // A list entry is never created by a field edit.
        let before = d.clone();
        assert_eq!(
            set(&mut d, "/einkommen/7/art", "RENTE"),
            Err(EditError::NoSuchEntry)
        );
        assert_eq!(
            set(&mut d, "/mehrbedarfe/0/art", "BEHINDERUNG"),
            Err(EditError::NoSuchEntry)
        );
        assert_eq!(d, before);
    }

    #[test]
    fn refuses_bad_edits_and_changes_nothing() {
        let mut d = doc();
        let before = d.clone();
        let cases = [
            ("/bankverbindung/konto", "x", EditError::Unknown),
            (
                "/unterkunft/personenImHaushalt",
                "fünf",
                EditError::WrongType(FieldKind::Integer),
            ),
            (
                "/unterkunft/personenImHaushalt",
                "5.5",
                EditError::WrongType(FieldKind::Integer),
            ),
            (
                "/unterkunft/grundmiete",
                "12a",
                EditError::WrongType(FieldKind::Number),
            ),
            (
                "/unterkunft/einzugsdatum",
                "2020-13-01",
                EditError::WrongType(FieldKind::Date),
            ),
            ("/unterkunft/art", "SCHLOSS", EditError::NotAChoice),
            (
                "/bankverbindung/kontoinhaber",
                &"x".repeat(141),
                EditError::TooLong { max: 140 },
            ),
            (
                "/bankverbindung/iban",
                &"D".repeat(1001),
                EditError::Oversized,
            ),
            ("/bankverbindung/iban", "   ", EditError::Empty),
            (
                "/antragId",
                "00000000-0000-0000-0000-000000000000",
                EditError::ReadOnly,
            ),
            ("/formular/version", "1.1", EditError::ReadOnly),
            (
                "/jobcenter/dienststellennummer",
                "99999",
                EditError::ReadOnly,
            ),
            ("/unterkunft", "x", EditError::NotAValue),
            ("bankverbindung/iban", "x", EditError::BadPointer),
            ("", "x", EditError::BadPointer),
            ("/bankverbindung//iban", "x", EditError::BadPointer),
            (
                "/bankverbindung/iban",
                "DE78595567370598319781",
                EditError::Unchanged,
            ),
        ];
        for (p, v, want) in cases {
            assert_eq!(set(&mut d, p, v), Err(want.clone()), "{p} = {v:?}");
            assert!(!want.message().is_empty());
        }
        let long = format!("/{}", "a".repeat(MAX_POINTER_BYTES));
        assert_eq!(set(&mut d, &long, "x"), Err(EditError::BadPointer));
        assert_eq!(d, before);
    }

    #[test]
    fn removes_fields_list_entries_and_unknown_properties() {
        let mut d = doc();
        d["antragsteller"]["hobby"] = json!("Schach");
        let s = schema();
        let c = apply_schema(&s, &ro(), &mut d, "/antragsteller/hobby", &EditOp::Remove).unwrap();
        assert_eq!(c.old, Some(json!("Schach")));
        assert!(d["antragsteller"].get("hobby").is_none());
        apply_schema(&s, &ro(), &mut d, "/einkommen/0", &EditOp::Remove).unwrap();
        assert_eq!(d["einkommen"].as_array().unwrap().len(), 2);
        assert_eq!(d["einkommen"][0]["personId"], "k2");
        let before = d.clone();
        assert_eq!(
            apply_schema(&s, &ro(), &mut d, "/bankverbindung/bic", &EditOp::Remove),
            Err(EditError::Absent)
        );
        assert_eq!(
            apply_schema(&s, &ro(), &mut d, "/einkommen/9", &EditOp::Remove),
            Err(EditError::Absent)
        );
        assert_eq!(
            apply_schema(&s, &ro(), &mut d, "/antragId", &EditOp::Remove),
            Err(EditError::ReadOnly)
        );
        // A group holding a read-only place goes only with that place.
        assert_eq!(
            apply_schema(&s, &ro(), &mut d, "/jobcenter", &EditOp::Remove),
            Err(EditError::HoldsReadOnly)
        );
        assert_eq!(d, before);
    }

    #[test]
    fn list_positions_follow_rfc_6901_and_exist() {
        let s = schema();
        let mut d = doc();
        let before = d.clone();
        let mut edit = |p: &str, op: EditOp| apply_schema(&s, &ro(), &mut d, p, &op);
        // A leading zero is no array index in RFC 6901.
        let set = || EditOp::Set("ERWERBSTAETIGKEIT".into());
        assert_eq!(edit("/einkommen/01/art", set()), Err(EditError::BadPointer));
        assert_eq!(
            edit("/einkommen/01", EditOp::Remove),
            Err(EditError::BadPointer)
        );
        assert_eq!(edit("/einkommen/-1/art", set()), Err(EditError::Unknown));
        // A field of an entry the application does not have.
        assert_eq!(
            edit("/einkommen/99/art", set()),
            Err(EditError::NoSuchEntry)
        );
        assert_eq!(
            edit("/mehrbedarfe/0/art", set()),
            Err(EditError::NoSuchEntry)
        );
        assert_eq!(d, before);
        assert!(EditError::NoSuchEntry.is_about_the_place());
        assert!(!EditError::ControlCharacters.is_about_the_place());
    }

    #[test]
    fn control_characters_are_refused() {
        let mut d = doc();
        let before = d.clone();
        for typed in ["Anna\u{0}", "Anna\u{1b}[31m", "An\nna"] {
            assert_eq!(
                set(&mut d, "/antragsteller/vornamen", typed),
                Err(EditError::ControlCharacters),
                "{typed:?}"
            );
        }
        assert_eq!(d, before);
        set(&mut d, "/antragsteller/vornamen", " Anna-Lena ").unwrap();
        assert_eq!(d["antragsteller"]["vornamen"], "Anna-Lena");
    }

    #[test]
    fn corrections_keep_old_and_new_as_text() {
        let mut d = doc();
        let mut list = Vec::new();
        let c = set(&mut d, "/unterkunft/personenImHaushalt", "5").unwrap();
        record_correction(&mut list, &c, "sb.meier", "2026-12-02T10:00:00Z");
        let c = apply_schema(
            &schema(),
            &ro(),
            &mut d,
            "/antragsteller/email",
            &EditOp::Remove,
        )
        .unwrap();
        record_correction(&mut list, &c, "sb.meier", "2026-12-02T10:01:00Z");
        assert_eq!(list[0].from.as_deref(), Some("0"));
        assert_eq!(list[0].to.as_deref(), Some("5"));
        assert_eq!(list[1].to, None);
        assert_eq!(list[1].by, "sb.meier");
    }
}
