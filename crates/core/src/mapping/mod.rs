//! Mapping files: loading, compiling and selecting by form id + version.
//!
//! A mapping is a TOML file in `mappings/` with a `[mapping]` header; it may
//! include fragment files (shared groups, checks, rules, labels). Everything
//! is compiled once at load: JSON Schema, regexes, CEL programs, pointers
//! (checked against the schema), message templates. Any problem refuses the
//! whole set with file, line and what is wrong; a running set stays in force.
//!
//! `load` reads the files (the only I/O), `raw` is the TOML format,
//! `compile` turns one mapping and its includes into a [`Mapping`], part by
//! part; `error` is the one error type, `schema` walks JSON Schemas;
//! `applicant` holds the messages for applicants and renders them.

pub mod applicant;
mod compile;
mod error;
pub mod labels;
mod load;
pub mod raw;
mod schema;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::checks::Check;
use crate::pointer::{Pattern, Ref, Seg};
use crate::record::Group;
use crate::rules::{Rule, RuleEnv};
use labels::{Labels, Template};

pub use error::{LoadError, LoadErrors};
pub use load::load;
pub(crate) use schema::resolve as resolve_schema;
pub use schema::schema_knows;

/// The kinds of JSON Schema violation that need a `[schema_messages.<kind>]`.
pub const SCHEMA_MESSAGE_KINDS: &[&str] = &[
    "required",
    "additional",
    "type",
    "enum",
    "pattern",
    "length",
    "other",
    "transform",
    "limit",
];

/// A rule id and message for one kind of schema violation.
#[derive(Debug, Clone)]
pub struct SchemaMessage {
    pub rule: String,
    pub message: Template,
}

/// Where a rule id was first defined (for duplicate-id errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

/// A compiled mapping.
pub struct Mapping {
    pub name: String,
    pub form: String,
    pub version: String,
    pub file: PathBuf,
    pub record_version: String,
    pub schema_file: String,
    pub schema: jsonschema::Validator,
    /// The JSON Schema document itself (for lint and coverage).
    pub schema_json: Arc<Value>,
    pub today: Ref,
    pub groups: Vec<Group>,
    pub checks: Vec<Check>,
    pub rules: Vec<Rule>,
    pub labels: Labels,
    pub schema_messages: HashMap<String, SchemaMessage>,
    pub rule_env: RuleEnv,
    /// Absolute patterns of every mapped record field (for coverage).
    pub mapped_fields: Vec<Pattern>,
    /// How the workbench lays out a case of this form (`[casework]`).
    pub casework: crate::casework::Layout,
    /// Rule id → what to type when its error is fixed (`input_hint` of a
    /// check or rule).
    pub input_hints: HashMap<String, String>,
    /// Rule id → the message for the applicant by language (`applicant`
    /// of a check, rule or schema message); see [`Mapping::applicant_message`].
    pub applicant: applicant::ApplicantMessages,
}

impl Mapping {
    /// Properties the JSON Schema defines that no label names, as pointer
    /// patterns; findings about them would say "die Angabe „x“".
    pub fn unlabeled_fields(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        for (p, _) in self.schema_fields() {
            if self.labels.name(&example_path(&p)).contains('„') {
                out.insert(p.render());
            }
        }
        out.into_iter().collect()
    }

    /// Codes the JSON Schema lists (`enum`) that `[labels.values]` gives no
    /// German label, as (pointer pattern, code); the workbench would show
    /// the bare code.
    pub fn unlabeled_codes(&self) -> Vec<(String, String)> {
        let root = &*self.schema_json;
        let mut out = BTreeSet::new();
        for (p, node) in self.schema_fields() {
            let path = example_path(&p);
            let labels = self.labels.values(&path);
            for n in schema::resolve(root, node) {
                let codes = n.get("enum").and_then(Value::as_array);
                for code in codes.into_iter().flatten().filter_map(Value::as_str) {
                    if !labels.is_some_and(|l| l.contains_key(code)) {
                        out.insert((p.render(), code.to_string()));
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// Every property the JSON Schema defines (to a depth of 8), as a
    /// pattern with its schema node.
    fn schema_fields(&self) -> Vec<(Pattern, &Value)> {
        let mut out = Vec::new();
        let mut stack = vec![(Pattern { segs: vec![] }, &*self.schema_json)];
        let root = &*self.schema_json;
        while let Some((pat, node)) = stack.pop() {
            if pat.segs.len() > 8 {
                continue;
            }
            for n in schema::resolve(root, node) {
                if let Some(props) = n.get("properties").and_then(Value::as_object) {
                    for (k, child) in props {
                        let mut p = pat.clone();
                        p.segs.push(Seg::Key(k.clone()));
                        out.push((p.clone(), child));
                        stack.push((p, child));
                    }
                }
                if let Some(items) = n.get("items") {
                    let mut p = pat.clone();
                    p.segs.push(Seg::Any);
                    stack.push((p, items));
                }
            }
        }
        out
    }
}

/// A concrete path matching `p` (every `*` the first entry).
fn example_path(p: &Pattern) -> Vec<crate::pointer::Step<'_>> {
    p.segs
        .iter()
        .map(|s| match s {
            Seg::Key(k) => crate::pointer::Step::Key(k.as_str()),
            Seg::Any => crate::pointer::Step::Index(0),
        })
        .collect()
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("name", &self.name)
            .field("form", &self.form)
            .field("version", &self.version)
            .finish()
    }
}

/// Every mapping in force, selected by (form id, version).
#[derive(Debug, Default)]
pub struct MappingSet {
    by_form: HashMap<(String, String), Arc<Mapping>>,
    /// Fragment files that no mapping includes (lint warns about them).
    pub unused_fragments: Vec<PathBuf>,
}

impl MappingSet {
    pub fn get(&self, form: &str, version: &str) -> Option<&Arc<Mapping>> {
        self.by_form.get(&(form.to_string(), version.to_string()))
    }

    /// Whether `pointer` (a concrete RFC 6901 pointer of a finding) names a
    /// location the JSON Schema of the mapping called `mapping` (e.g.
    /// `bg-ha-1.0`) defines: every key segment a schema property, every
    /// other segment an array index. Such a pointer is made of the form's
    /// field names only, so it holds no personal data; a pointer to a key the
    /// schema does not know (an unexpected property, named by the sender) may.
    /// `false` when no mapping of that name is in the set.
    pub fn schema_defines(&self, mapping: &str, pointer: &str) -> bool {
        let Some(m) = self.by_form.values().find(|m| m.name == mapping) else {
            return false;
        };
        let Some(segs) = crate::pointer::parse_concrete(pointer) else {
            return false;
        };
        let pattern = Pattern {
            segs: segs.into_iter().map(Seg::Key).collect(),
        };
        schema::schema_knows(&m.schema_json, &pattern)
    }

    /// The mapping called `name` (e.g. `bg-ha-1.0`).
    pub fn by_name(&self, name: &str) -> Option<Arc<Mapping>> {
        self.by_form.values().find(|m| m.name == name).cloned()
    }

    /// All mappings, sorted by name.
    pub fn all(&self) -> Vec<&Arc<Mapping>> {
        let mut v: Vec<_> = self.by_form.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

impl MappingSet {
    fn is_empty(&self) -> bool {
        self.by_form.is_empty()
    }

    /// Adds a compiled mapping; a second one for the same form and version
    /// is a problem of the file that comes later.
    fn insert(&mut self, file: &load::Parsed, m: Mapping, errs: &mut error::Errs) {
        let key = (m.form.clone(), m.version.clone());
        if let Some(other) = self.by_form.get(&key) {
            let header = file.file.mapping.as_ref().expect("a mapping");
            errs.at(
                file,
                header.span(),
                format!(
                    "a mapping for form {} version {} exists already ({})",
                    m.form,
                    m.version,
                    other.file.display()
                ),
            );
        } else {
            self.by_form.insert(key, Arc::new(m));
        }
    }
}
