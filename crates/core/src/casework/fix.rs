//! The form „Fehler beheben“ at the top of a case: one input for every
//! field that has an error (a missing required field too), with its German
//! name, the current value, the messages and what to type; and the one
//! submission that saves every correction that now passes.
//!
//! A typed value that still fails its check is not kept in the application:
//! [`apply_all`] applies every typed value, runs the pipeline once, takes
//! back each change whose field still has an error, and runs it again over
//! what is left. So nothing is saved as „gespeichert“ that is still wrong,
//! and the caller learns which inputs to show again with their error.

use std::collections::BTreeMap;

use serde_json::Value;

use super::edit::{self, Change, EditError, EditOp};
use super::fields::{self, FieldKind};
use super::sections::{element_id, title};
use crate::finding::Finding;
use crate::mapping::labels::ValueLabels;
use crate::mapping::Mapping;

/// One input of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub pointer: String,
    /// The input's id (`feld-…-neu`), which the error summary links to.
    pub input_id: String,
    /// German name with its owner, capitalized (`Die IBAN der Bankverbindung`).
    pub label: String,
    /// The value now in the application, as shown (`None`: missing).
    pub current: Option<String>,
    /// The value now in the application as the input offers it (what can
    /// be typed back: `26.11.1990`, `1.234,56`, a code).
    pub input: Option<String>,
    /// The German labels of the field's codes (empty: none declared).
    pub code_labels: ValueLabels,
    pub kind: FieldKind,
    /// What to type, in German: the `input_hint` of the error's check or
    /// rule in the mapping, else what the field's kind takes.
    pub hint: String,
    /// The error messages at this field, in the pipeline's order.
    pub messages: Vec<String>,
}

/// The input id of the fix for `pointer`.
pub fn input_id(pointer: &str) -> String {
    format!("{}-neu", element_id(pointer))
}

/// One input per field with an error a caseworker can type a value for,
/// in the order of the errors.
pub fn fixes(m: &Mapping, doc: &Value, findings: &[Finding]) -> Vec<Fix> {
    let mut out: Vec<Fix> = Vec::new();
    for f in findings.iter().filter(|f| f.is_error()) {
        if let Some(fix) = out.iter_mut().find(|x| x.pointer == f.pointer) {
            fix.messages.push(f.message.clone());
            continue;
        }
        let Ok(info) = edit::describe(m, doc, &f.pointer) else {
            continue;
        };
        let Some(kind) = info.kind.filter(|_| info.can_set) else {
            continue;
        };
        let hint = m.input_hints.get(&f.rule).cloned();
        out.push(Fix {
            input_id: input_id(&f.pointer),
            pointer: f.pointer.clone(),
            label: title(&info.label),
            current: info.shown.clone(),
            input: info.input.clone(),
            code_labels: info.code_labels.clone(),
            hint: hint.unwrap_or_else(|| kind.hint()),
            kind,
            messages: vec![f.message.clone()],
        });
    }
    out
}

/// Why a typed value was not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotKept {
    /// It could not be taken at all (wrong type, too long, ...).
    Refused(EditError),
    /// It was taken, but its field still has these errors.
    StillWrong(Vec<String>),
}

impl NotKept {
    /// The German messages to show beside the input.
    pub fn messages(&self) -> Vec<String> {
        match self {
            NotKept::Refused(e) => vec![e.message()],
            NotKept::StillWrong(m) => m.clone(),
        }
    }
}

/// What one submission of the form did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The application with every kept change.
    pub doc: Value,
    /// The kept changes, in the order typed.
    pub kept: Vec<Change>,
    /// Pointer → why its typed value was not kept.
    pub not_kept: BTreeMap<String, NotKept>,
    /// The findings of `doc` (with the kept changes).
    pub findings: Vec<Finding>,
}

/// Applies the typed values (pointer, text) to `doc`; `check` runs the
/// pipeline over a document with the changes so far. A value equal to the
/// current one, or left empty, is no change.
pub fn apply_all(
    m: &Mapping,
    doc: &Value,
    typed: &[(String, String)],
    check: &dyn Fn(&Value, &[Change]) -> Vec<Finding>,
) -> Outcome {
    let mut not_kept = BTreeMap::new();
    let (mut work, mut changes) = (doc.clone(), Vec::new());
    for (p, text) in typed {
        match edit::apply(m, &mut work, p, &EditOp::Set(text.clone())) {
            Ok(c) => changes.push(c),
            Err(EditError::Unchanged | EditError::Empty) => {}
            Err(e) => {
                not_kept.insert(p.clone(), NotKept::Refused(e));
            }
        }
    }
    let first = check(&work, &changes);
    let still = |c: &Change| -> Vec<String> {
        first
            .iter()
            .filter(|f| f.is_error() && f.pointer == c.pointer)
            .map(|f| f.message.clone())
            .collect()
    };
    let (kept, dropped): (Vec<Change>, Vec<Change>) =
        changes.into_iter().partition(|c| still(c).is_empty());
    if dropped.is_empty() {
        return Outcome {
            doc: work,
            kept,
            not_kept,
            findings: first,
        };
    }
    for c in &dropped {
        not_kept.insert(c.pointer.clone(), NotKept::StillWrong(still(c)));
    }
    let mut doc = doc.clone();
    let kept: Vec<Change> = kept
        .into_iter()
        .filter_map(|c| {
            let text = c.new.as_ref().map(fields::plain)?;
            edit::apply(m, &mut doc, &c.pointer, &EditOp::Set(text)).ok()
        })
        .collect();
    let findings = check(&doc, &kept);
    Outcome {
        doc,
        kept,
        not_kept,
        findings,
    }
}
