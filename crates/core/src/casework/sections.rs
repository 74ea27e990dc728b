//! The application arranged for a caseworker: sections (Antragsteller,
//! weitere Personen, Bankverbindung, ...), in each the groups of fields as
//! description lists with the German labels of the mapping, every finding
//! beside the field it names, the error summary and the documents owed.
//!
//! Fields the schema defines but the application lacks are listed too
//! (value `None`), so that a caseworker can add them; fields the application
//! has but the schema does not know are listed so that they can be removed.
//! Sections, their titles and the order of the fields are the mapping's
//! `[casework]` ([`super::layout::Layout`]; serde_json's maps are sorted by
//! key, so the schema's own order is not available): names the order does
//! not list come after the listed ones.

use serde_json::Value;

use super::fields::{self, FieldKind};
use crate::finding::{Finding, Severity};
use crate::mapping::labels::capitalize;
use crate::mapping::Mapping;
use crate::pointer;

/// The id of the list of findings that name no field shown.
pub const GENERAL_FINDINGS_ID: &str = "weitere-befunde";

/// A finding as shown: with the element id of the field it stands beside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingView {
    pub severity: Severity,
    pub rule: String,
    pub message: String,
    pub pointer: String,
    /// Element id of the row or group that shows it.
    pub target: String,
}

impl FindingView {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `Fehler`, `Warnung` or `Hinweis`.
    pub fn severity_de(&self) -> &'static str {
        severity_de(self.severity)
    }
}

/// German name of a severity.
pub fn severity_de(s: Severity) -> &'static str {
    match s {
        Severity::Error => "Fehler",
        Severity::Warning => "Warnung",
        Severity::Info => "Hinweis",
    }
}

/// One field: a term and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `feld-` + the pointer with `/` as `-` (see [`element_id`]).
    pub id: String,
    pub pointer: String,
    /// German label, e.g. `Postleitzahl`.
    pub label: String,
    /// The value as shown, in the field's German [`fields::Format`]
    /// (`26.11.1990`, `1.234,56 €`, `weiblich`); `None` when the
    /// application lacks it.
    pub value: Option<String>,
    pub findings: Vec<FindingView>,
    /// A value may be typed (the schema defines a single value here).
    pub editable: bool,
    /// Present and not read-only: may be removed.
    pub removable: bool,
}

impl Row {
    /// No value and nothing to say about it: shown only on request.
    pub fn is_blank(&self) -> bool {
        self.value.is_none() && self.findings.is_empty()
    }

    pub fn has_error(&self) -> bool {
        self.findings.iter().any(FindingView::is_error)
    }

    /// Element id of this row's first error message (for aria-describedby).
    pub fn message_id(&self) -> String {
        format!("{}-befund", self.id)
    }
}

/// A group of fields (an object, a list entry or a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub id: String,
    pub pointer: String,
    /// `None` for the section's own fields.
    pub heading: Option<String>,
    /// Nesting below the section (0: the section's own fields).
    pub depth: usize,
    pub rows: Vec<Row>,
    /// Findings that name the group itself.
    pub findings: Vec<FindingView>,
    /// A list entry that may be removed as a whole.
    pub removable: bool,
    /// A list without entries (or absent).
    pub empty_list: bool,
}

impl Block {
    /// How many of its fields are [`Row::is_blank`].
    pub fn blank_count(&self) -> usize {
        self.rows.iter().filter(|r| r.is_blank()).count()
    }
}

/// One section of the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Anchor, e.g. `bankverbindung`.
    pub id: String,
    pub title: String,
    pub blocks: Vec<Block>,
    /// Whether the application has anything in this section.
    pub present: bool,
}

impl Section {
    /// Errors in this section.
    pub fn error_count(&self) -> usize {
        self.blocks
            .iter()
            .flat_map(|b| {
                b.findings
                    .iter()
                    .chain(b.rows.iter().flat_map(|r| &r.findings))
            })
            .filter(|f| f.is_error())
            .count()
    }
}

/// A document the applicant still owes (Mitwirkung).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    /// Document type code, e.g. `MIETVERTRAG`.
    pub nachweis: String,
    /// Its German label (`[casework] documents`), else the code.
    pub label: String,
    pub message: String,
}

/// The whole application as a caseworker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseView {
    pub sections: Vec<Section>,
    /// Findings that name no field shown (e.g. the application as a whole).
    pub general: Vec<FindingView>,
    /// Every error, in the pipeline's order, for the summary at the top.
    pub errors: Vec<FindingView>,
    /// Every warning and hint, in the pipeline's order.
    pub notes: Vec<FindingView>,
    pub owed: Vec<Owed>,
}

/// The element id of a field: `feld-` + the pointer with `/` as `-` and
/// whitespace as `_` (`/bankverbindung/iban` → `feld-bankverbindung-iban`).
pub fn element_id(pointer: &str) -> String {
    let body: String = pointer
        .trim_start_matches('/')
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect();
    if body.is_empty() {
        "feld-antrag".to_string()
    } else {
        format!("feld-{body}")
    }
}

/// A label phrase as a heading: the article dropped before a noun,
/// capitalized (`die Postleitzahl` → `Postleitzahl`; `der gewünschte
/// Leistungsbeginn` keeps its article, as the adjective's ending needs it).
pub fn title(phrase: &str) -> String {
    let rest = ["der ", "die ", "das ", "den ", "dem ", "des "]
        .iter()
        .find_map(|a| phrase.strip_prefix(a))
        .filter(|rest| {
            rest.chars()
                .next()
                .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
        })
        .unwrap_or(phrase);
    capitalize(rest)
}

/// Arranges `doc` (the application, corrected so far) with its findings.
pub fn view(m: &Mapping, doc: &Value, findings: &[Finding]) -> CaseView {
    let b = Builder {
        m,
        schema: &m.schema_json,
    };
    let mut sections = vec![b.general_section(doc)];
    for def in &m.casework.sections {
        let Some(key) = def.property.as_deref() else {
            continue;
        };
        let mut blocks = Vec::new();
        let segs = vec![key.to_string()];
        b.node(&segs, doc.get(key), 0, None, false, &mut blocks);
        sections.push(Section {
            id: def.id.clone(),
            title: def.title.clone(),
            present: doc.get(key).is_some(),
            blocks,
        });
    }
    let mut general = Vec::new();
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    for f in findings {
        let fv = place(&mut sections, f).unwrap_or_else(|| {
            let fv = finding_view(f, GENERAL_FINDINGS_ID.to_string());
            general.push(fv.clone());
            fv
        });
        if fv.is_error() {
            errors.push(fv);
        } else {
            notes.push(fv);
        }
    }
    let owed = findings
        .iter()
        .filter_map(|f| {
            f.nachweis.as_ref().map(|n| Owed {
                label: crate::mitwirkung::document_label(m, n),
                nachweis: n.clone(),
                message: f.message.clone(),
            })
        })
        .collect();
    CaseView {
        sections,
        general,
        errors,
        notes,
        owed,
    }
}

fn finding_view(f: &Finding, target: String) -> FindingView {
    FindingView {
        severity: f.severity,
        rule: f.rule.clone(),
        message: f.message.clone(),
        pointer: f.pointer.clone(),
        target,
    }
}

/// Puts a finding beside its field: the row with its pointer, else the
/// group with its pointer or the deepest group containing it.
fn place(sections: &mut [Section], f: &Finding) -> Option<FindingView> {
    for s in sections.iter_mut() {
        for b in s.blocks.iter_mut() {
            if let Some(r) = b.rows.iter_mut().find(|r| r.pointer == f.pointer) {
                let fv = finding_view(f, r.id.clone());
                r.findings.push(fv.clone());
                return Some(fv);
            }
        }
    }
    let within = |b: &Block| {
        b.pointer == f.pointer
            || (!b.pointer.is_empty()
                && f.pointer
                    .strip_prefix(&b.pointer)
                    .is_some_and(|rest| rest.starts_with('/')))
    };
    let best = sections
        .iter_mut()
        .flat_map(|s| s.blocks.iter_mut())
        .filter(|b| within(b))
        .max_by_key(|b| b.pointer.len())?;
    let fv = finding_view(f, best.id.clone());
    best.findings.push(fv.clone());
    Some(fv)
}

struct Builder<'a> {
    m: &'a Mapping,
    schema: &'a Value,
}

impl Builder<'_> {
    fn order(&self, key: &str) -> (usize, String) {
        self.m.casework.order_key(key)
    }

    fn read_only(&self, ptr: &str) -> bool {
        self.m.casework.read_only.covers(ptr)
    }

    fn label(&self, segs: &[String]) -> String {
        title(&self.m.labels.noun(&fields::steps(segs)))
    }

    /// The general section: top-level fields no other section shows.
    fn general_section(&self, doc: &Value) -> Section {
        let taken: Vec<&str> = self.m.casework.section_properties().collect();
        let mut keys = fields::properties(self.schema, &[]);
        if let Some(map) = doc.as_object() {
            keys.extend(
                map.keys()
                    .filter(|k| !keys.contains(k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        keys.retain(|k| !taken.contains(&k.as_str()));
        keys.sort_by_key(|k| self.order(k));
        let general = &self.m.casework.general;
        let mut own = Block {
            id: format!("{}-felder", general.id),
            pointer: String::new(),
            heading: None,
            depth: 0,
            rows: Vec::new(),
            findings: Vec::new(),
            removable: false,
            empty_list: false,
        };
        let mut nested = Vec::new();
        for k in keys {
            let segs = vec![k.clone()];
            let v = doc.get(&k);
            if self.is_container(&segs, v) {
                let heading = Some(self.label(&segs));
                self.node(&segs, v, 1, heading, false, &mut nested);
            } else {
                own.rows.push(self.row(&segs, v));
            }
        }
        let mut blocks = vec![own];
        blocks.extend(nested);
        Section {
            id: general.id.clone(),
            title: general.title.clone(),
            blocks,
            present: true,
        }
    }

    fn kind(&self, segs: &[String]) -> Option<FieldKind> {
        fields::field_kind(self.schema, segs)
    }

    fn is_container(&self, segs: &[String], v: Option<&Value>) -> bool {
        match v {
            Some(Value::Object(_)) | Some(Value::Array(_)) => true,
            Some(_) => false,
            None => matches!(self.kind(segs), Some(FieldKind::Group | FieldKind::List)),
        }
    }

    /// A group or list at `segs` as blocks (appended to `out`).
    fn node(
        &self,
        segs: &[String],
        v: Option<&Value>,
        depth: usize,
        heading: Option<String>,
        removable: bool,
        out: &mut Vec<Block>,
    ) {
        let is_list = match v {
            Some(Value::Array(_)) => true,
            Some(_) => false,
            None => self.kind(segs) == Some(FieldKind::List),
        };
        if is_list {
            self.list(segs, v.and_then(Value::as_array), depth, heading, out);
        } else {
            self.object(segs, v, depth, heading, removable, out);
        }
    }

    fn list(
        &self,
        segs: &[String],
        items: Option<&Vec<Value>>,
        depth: usize,
        heading: Option<String>,
        out: &mut Vec<Block>,
    ) {
        let items: &[Value] = items.map_or(&[], Vec::as_slice);
        let ptr = pointer::render(&fields::steps(segs));
        out.push(Block {
            id: element_id(&ptr),
            pointer: ptr,
            heading,
            depth,
            rows: Vec::new(),
            findings: Vec::new(),
            removable: false,
            empty_list: items.is_empty(),
        });
        for (i, item) in items.iter().enumerate() {
            let mut s = segs.to_vec();
            s.push(i.to_string());
            let heading = Some(self.label(&s));
            if item.is_object() {
                self.object(&s, Some(item), depth + 1, heading, true, out);
            } else {
                let ptr = pointer::render(&fields::steps(&s));
                let row = self.row(&s, Some(item));
                out.push(Block {
                    id: format!("{}-eintrag", element_id(&ptr)),
                    pointer: ptr,
                    heading,
                    depth: depth + 1,
                    rows: vec![row],
                    findings: Vec::new(),
                    removable: false,
                    empty_list: false,
                });
            }
        }
    }

    fn object(
        &self,
        segs: &[String],
        v: Option<&Value>,
        depth: usize,
        heading: Option<String>,
        removable: bool,
        out: &mut Vec<Block>,
    ) {
        let ptr = pointer::render(&fields::steps(segs));
        let mut keys = fields::properties(self.schema, segs);
        if let Some(map) = v.and_then(Value::as_object) {
            keys.extend(
                map.keys()
                    .filter(|k| !keys.contains(k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        keys.sort_by_key(|k| self.order(k));
        let removable = removable && !self.read_only(&ptr);
        let mut block = Block {
            id: element_id(&ptr),
            pointer: ptr,
            heading,
            depth,
            rows: Vec::new(),
            findings: Vec::new(),
            removable,
            empty_list: false,
        };
        let mut nested = Vec::new();
        for k in keys {
            let mut s = segs.to_vec();
            s.push(k.clone());
            let child = v.and_then(|v| v.get(&k));
            if self.is_container(&s, child) {
                let heading = Some(self.label(&s));
                self.node(&s, child, depth + 1, heading, false, &mut nested);
            } else {
                block.rows.push(self.row(&s, child));
            }
        }
        out.push(block);
        out.extend(nested);
    }

    fn row(&self, segs: &[String], v: Option<&Value>) -> Row {
        let ptr = pointer::render(&fields::steps(segs));
        let read_only = self.read_only(&ptr);
        let editable = !read_only && self.kind(segs).as_ref().is_some_and(FieldKind::is_value);
        Row {
            id: element_id(&ptr),
            label: self.label(segs),
            value: v.map(|v| fields::format(self.m, segs).show(v)),
            findings: Vec::new(),
            editable,
            removable: !read_only && v.is_some(),
            pointer: ptr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_ids_follow_the_shared_design() {
        assert_eq!(
            element_id("/bankverbindung/iban"),
            "feld-bankverbindung-iban"
        );
        assert_eq!(
            element_id("/weiterePersonen/0/steuerId"),
            "feld-weiterePersonen-0-steuerId"
        );
        assert_eq!(element_id("/a b"), "feld-a_b");
        assert_eq!(element_id(""), "feld-antrag");
    }

    #[test]
    fn titles_drop_the_article() {
        assert_eq!(title("die Postleitzahl"), "Postleitzahl");
        assert_eq!(title("der 2. Mehrbedarf"), "2. Mehrbedarf");
        assert_eq!(title("Wohnfläche"), "Wohnfläche");
        assert_eq!(
            title("der gewünschte Leistungsbeginn"),
            "Der gewünschte Leistungsbeginn"
        );
    }
}
