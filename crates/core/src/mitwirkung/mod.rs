//! Mitwirkung (§§ 60–67 SGB I): the documents an application owes, followed
//! until they arrive.
//!
//! The pipeline finds them (`info` findings with `nachweis`); this module
//! turns those findings into documents owed per person ([`owed`]), names
//! them in German ([`document_label`]), says which kinds exist
//! ([`document_kinds`]), and holds their life ([`state`]), the message by
//! which a document arrives later ([`nachreichung`]) and the follow-up
//! record that tells ALLEGRO ([`eingang`]). Pure, like the rest of the core.

pub mod eingang;
pub mod nachreichung;
pub mod state;

use std::collections::BTreeSet;

use serde_json::Value;

use crate::finding::Finding;
use crate::mapping::Mapping;
use crate::pointer::{Seg, Step};

/// One document an application owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedDocument {
    /// The kind, e.g. `LOHNABRECHNUNG`.
    pub kind: String,
    /// The person it is owed for (`[casework.persons]`); `None`: the household.
    pub person_id: Option<String>,
    /// The place of the finding that asked for it.
    pub pointer: String,
    /// The rule that asked for it.
    pub rule: String,
}

/// The documents `findings` ask for, one per kind and person (two incomes
/// of one person need one pay slip request), in finding order.
pub fn owed(m: &Mapping, doc: &Value, findings: &[Finding]) -> Vec<OwedDocument> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for f in findings {
        let Some(kind) = &f.nachweis else { continue };
        let person_id = m.casework.persons.person_of(doc, &f.pointer);
        if seen.insert((kind.clone(), person_id.clone())) {
            out.push(OwedDocument {
                kind: kind.clone(),
                person_id,
                pointer: f.pointer.clone(),
                rule: f.rule.clone(),
            });
        }
    }
    out
}

/// The German label of a document code, by the code labels of the field
/// `[casework] documents` names; the code itself without one.
pub fn document_label(m: &Mapping, code: &str) -> String {
    documents_path(m)
        .and_then(|path| m.labels.code(&path, code).map(str::to_string))
        .unwrap_or_else(|| code.to_string())
}

/// Every document kind the mapping labels (the codes of `[casework]
/// documents`), and every kind its rules ask for.
pub fn document_kinds(m: &Mapping) -> BTreeSet<String> {
    let mut kinds: BTreeSet<String> = documents_path(m)
        .and_then(|path| m.labels.values(&path).map(|v| v.keys().cloned().collect()))
        .unwrap_or_default();
    kinds.extend(m.rules.iter().filter_map(|r| r.nachweis.clone()));
    kinds.extend(m.checks.iter().filter_map(|c| c.nachweis.clone()));
    kinds
}

/// The documents field as a concrete example path (`*` → 0).
fn documents_path(m: &Mapping) -> Option<Vec<Step<'_>>> {
    let p = m.casework.documents.as_ref()?;
    Some(
        p.segs
            .iter()
            .map(|s| match s {
                Seg::Key(k) => Step::Key(k.as_str()),
                Seg::Any => Step::Index(0),
            })
            .collect(),
    )
}
