//! Who in an application a place belongs to, and what a letter needs of
//! them: the persons a mapping declares in `[casework.persons]` (where each
//! person object stands, its id field, its name fields, and the field by
//! which other entries refer to a person) and the applicant's postal
//! address (`[casework] address`).
//!
//! A document owed is owed by a person: the one whose object holds the
//! finding's place (`/weiterePersonen/1/staatsangehoerigkeit`), or the one
//! an enclosing entry refers to (`/einkommen/0` with `personId`), else the
//! household.

use serde_json::Value;

use crate::pointer::{self, Pattern, Step};

/// `[casework.persons]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Persons {
    /// Where person objects stand, e.g. `/antragsteller`, `/weiterePersonen/*`.
    pub at: Vec<Pattern>,
    /// The id property of a person object, e.g. `id`.
    pub id: String,
    /// The name properties of a person object, in reading order.
    pub name: Vec<String>,
    /// The property by which other entries refer to a person, e.g. `personId`.
    pub reference: String,
}

impl Persons {
    /// The id of the person the concrete `place` belongs to; `None`: the
    /// household (or no persons declared).
    pub fn person_of(&self, doc: &Value, place: &str) -> Option<String> {
        if self.at.is_empty() {
            return None;
        }
        let segs = pointer::parse_concrete(place)?;
        let steps: Vec<Step<'_>> = segs
            .iter()
            .map(|s| s.parse().map_or(Step::Key(s), Step::Index))
            .collect();
        (0..=steps.len()).rev().find_map(|n| {
            let here = pointer::get_path(doc, &steps[..n])?;
            let key = if self.at.iter().any(|p| p.matches_path(&steps[..n])) {
                &self.id
            } else {
                &self.reference
            };
            text(here.get(key.as_str())?)
        })
    }

    /// Every declared person with its id and name as written, in document
    /// order.
    pub fn all(&self, doc: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in &self.at {
            p.for_each(doc, &Vec::new(), &mut |_, v| {
                if let Some(id) = v.get(self.id.as_str()).and_then(text) {
                    out.push((id, self.name_in(v)));
                }
            });
        }
        out
    }

    /// The name of the person with this id (empty when unnamed or unknown).
    pub fn name_of(&self, doc: &Value, id: &str) -> Option<String> {
        self.all(doc)
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, n)| n)
    }

    fn name_in(&self, person: &Value) -> String {
        join(self.name.iter().filter_map(|k| person.get(k.as_str())))
    }
}

/// A string or number as text; anything else is none.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The text parts joined by one space, whitespace collapsed, controls dropped.
pub fn join<'v>(parts: impl Iterator<Item = &'v Value>) -> String {
    parts
        .filter_map(text)
        .flat_map(|s| {
            s.split_whitespace()
                .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The postal address lines of `[casework] address` in `doc`: each line's
/// parts joined by a space; empty lines left out.
pub fn address_of(lines: &[Vec<String>], doc: &Value) -> Vec<String> {
    lines
        .iter()
        .map(|line| join(line.iter().filter_map(|p| doc.pointer(p))))
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn persons() -> Persons {
        Persons {
            at: vec![
                Pattern::parse("/antragsteller").unwrap(),
                Pattern::parse("/weiterePersonen/*").unwrap(),
            ],
            id: "id".into(),
            name: vec!["vornamen".into(), "familienname".into()],
            reference: "personId".into(),
        }
    }

    fn doc() -> Value {
        json!({
            "antragsteller": {"id": "p1", "vornamen": "Erika", "familienname": "Mustermann",
                "anschrift": {"strasse": "Musterstraße", "hausnummer": "1", "plz": "12345", "ort": "Musterstadt"}},
            "weiterePersonen": [{"id": "k1", "vornamen": "Max", "familienname": " Mustermann "}],
            "einkommen": [{"personId": "k1", "art": "MINIJOB"}],
            "unterkunft": {"art": "MIETE"}
        })
    }

    #[test]
    fn a_place_belongs_to_the_person_holding_it_or_referred_to() {
        let p = persons();
        let d = doc();
        let of = |s: &str| p.person_of(&d, s);
        assert_eq!(
            of("/antragsteller/staatsangehoerigkeit").as_deref(),
            Some("p1")
        );
        assert_eq!(
            of("/weiterePersonen/0/staatsangehoerigkeit").as_deref(),
            Some("k1")
        );
        assert_eq!(of("/einkommen/0").as_deref(), Some("k1"));
        assert_eq!(of("/einkommen/0/art").as_deref(), Some("k1"));
        assert_eq!(of("/unterkunft/art"), None);
        assert_eq!(of("/nachweise"), None);
        assert_eq!(Persons::default().person_of(&d, "/antragsteller"), None);
    }

    #[test]
    fn names_and_address_as_written() {
        let p = persons();
        let d = doc();
        assert_eq!(
            p.all(&d),
            vec![
                ("p1".into(), "Erika Mustermann".into()),
                ("k1".into(), "Max Mustermann".into())
            ]
        );
        assert_eq!(p.name_of(&d, "k1").as_deref(), Some("Max Mustermann"));
        let lines = vec![
            vec![
                "/antragsteller/anschrift/strasse".into(),
                "/antragsteller/anschrift/hausnummer".into(),
            ],
            vec!["/antragsteller/anschrift/adresszusatz".into()],
            vec![
                "/antragsteller/anschrift/plz".into(),
                "/antragsteller/anschrift/ort".into(),
            ],
        ];
        assert_eq!(
            address_of(&lines, &d),
            ["Musterstraße 1", "12345 Musterstadt"]
        );
    }
}
