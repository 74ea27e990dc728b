//! The one pipeline every driver calls: intake → mapping → rules → record.
//!
//! `Pipeline::process` takes the raw bytes of one delivery (and the AMQP
//! `message_id`, if any) and returns the outcome with all findings and, for an
//! accepted application, the XML import record. It does no I/O and never reads
//! the clock; the daemon, `process`, `dlq replay` and the caseworker's re-check
//! all go through it.

use std::collections::BTreeSet;

use serde::Serialize;
use uuid::Uuid;

use crate::casework::layout::ApplicantName;
use crate::checks;
use crate::dates;
use crate::finding::{Finding, Severity};
use crate::intake;
use crate::mapping::labels::Fill;
use crate::mapping::{self, Mapping, MappingSet, SchemaMessage};
use crate::mitwirkung::{self, nachreichung, nachreichung::Nachreichung};
use crate::pointer::{self, Step};
use crate::record::{self, Correction, RecordMeta};
use crate::rules;

/// The three outcomes of contract §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Accepted,
    Rejected,
    Invalid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Invalid => "invalid",
        }
    }
}

pub use crate::intake::{Invalid, InvalidReason};

/// A readable application, evaluated under its mapping.
#[derive(Debug, Clone)]
pub struct Application {
    pub antrag_id: Uuid,
    /// The mapping used, e.g. `bg-ha-1.0`.
    pub mapping: String,
    /// The Dienststelle (`[casework] dienststelle`) when it is a short
    /// plain code (the workbench shows each jobcenter only its own cases).
    pub jobcenter: Option<String>,
    /// For a case: the applicant's name as written (`[casework]
    /// applicant_name`), for the case list; `None` for an accepted one.
    pub applicant: Option<ApplicantName>,
    /// Every finding; for an accepted application warnings and hints only.
    pub findings: Vec<Finding>,
    /// The documents it owes, per kind and person (from the `nachweis`
    /// findings; followed by the store, see `mitwirkung`).
    pub owed: Vec<mitwirkung::OwedDocument>,
}

/// The result of processing one delivery: one of the three outcomes of
/// contract §2, each with exactly the data it has.
#[derive(Debug, Clone)]
pub enum Processed {
    /// No error finding: the XML import record was built.
    Accepted {
        application: Application,
        record: Vec<u8>,
    },
    /// At least one error finding: a case (Klärfall) for a caseworker.
    Rejected(Application),
    /// Not readable as an application: a dead letter.
    Invalid(Invalid),
}

impl Processed {
    /// Which of the three outcomes.
    pub fn outcome(&self) -> Outcome {
        match self {
            Processed::Accepted { .. } => Outcome::Accepted,
            Processed::Rejected(_) => Outcome::Rejected,
            Processed::Invalid(_) => Outcome::Invalid,
        }
    }

    /// The evaluated application, unless the delivery was invalid.
    pub fn application(&self) -> Option<&Application> {
        match self {
            Processed::Accepted { application, .. } | Processed::Rejected(application) => {
                Some(application)
            }
            Processed::Invalid(_) => None,
        }
    }

    /// The antragId, where it could be read.
    pub fn antrag_id(&self) -> Option<Uuid> {
        match self {
            Processed::Invalid(i) => i.antrag_id,
            _ => self.application().map(|a| a.antrag_id),
        }
    }

    /// Every finding (none for an invalid delivery).
    pub fn findings(&self) -> &[Finding] {
        self.application().map_or(&[], |a| &a.findings)
    }

    /// Why the delivery is invalid, if it is.
    pub fn invalid(&self) -> Option<&Invalid> {
        match self {
            Processed::Invalid(i) => Some(i),
            _ => None,
        }
    }

    /// The import record of an accepted application.
    pub fn record(&self) -> Option<&[u8]> {
        match self {
            Processed::Accepted { record, .. } => Some(record),
            _ => None,
        }
    }
}

/// Where the pipeline finds its mapping files and schemas, and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Folder of mapping files (`*.toml`, searched recursively).
    pub mappings_dir: std::path::PathBuf,
    /// Folder of JSON Schemas and XSDs named by the mappings.
    pub schemas_dir: std::path::PathBuf,
    /// Bodies larger than this are `invalid` (contract default: 1 MiB).
    pub max_body_bytes: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            mappings_dir: "mappings".into(),
            schemas_dir: "schemas".into(),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What one delivery on the intake queue is: an application with its
/// outcome (an unreadable delivery of either kind is `Processed::Invalid`),
/// or a readable *Nachreichung* (contract §8).
#[derive(Debug, Clone)]
pub enum Message {
    Application(Processed),
    Nachreichung(Nachreichung),
}

/// The compiled mappings and schemas; cheap to share between threads.
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    mappings: MappingSet,
    /// Every document kind a mapping knows (a Nachreichung of another is
    /// refused).
    document_kinds: BTreeSet<String>,
}

impl Pipeline {
    /// Loads and compiles every mapping; refuses the whole set on any error
    /// (the error lists every problem as `file:line: what`).
    pub fn load(config: &PipelineConfig) -> anyhow::Result<Pipeline> {
        let mappings = mapping::load(&config.mappings_dir, &config.schemas_dir)?;
        let document_kinds = mappings
            .all()
            .into_iter()
            .flat_map(|m| mitwirkung::document_kinds(m))
            .collect();
        Ok(Pipeline {
            config: config.clone(),
            mappings,
            document_kinds,
        })
    }

    /// The mappings in force.
    pub fn mappings(&self) -> &MappingSet {
        &self.mappings
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Reads one delivery of the intake queue: a Nachreichung is read and
    /// checked against its schema and the known document kinds; anything
    /// else goes through [`Pipeline::process`].
    pub fn receive(&self, body: &[u8], message_id: Option<&str>) -> Message {
        match intake::read_any(body, message_id, self.config.max_body_bytes) {
            Ok(intake::Body::Nachreichung(doc)) => {
                let known = |k: &str| self.document_kinds.contains(k);
                match nachreichung::read(&doc, message_id, known) {
                    Ok(n) => Message::Nachreichung(n),
                    Err(invalid) => Message::Application(Processed::Invalid(invalid)),
                }
            }
            Ok(intake::Body::Application(env)) => {
                Message::Application(self.evaluate_envelope(env, &[]))
            }
            Err(invalid) => Message::Application(Processed::Invalid(invalid)),
        }
    }

    /// Every document kind the mappings know.
    pub fn document_kinds(&self) -> &BTreeSet<String> {
        &self.document_kinds
    }

    /// Runs one delivery through the whole pipeline.
    pub fn process(&self, body: &[u8], message_id: Option<&str>) -> Processed {
        self.process_with(body, message_id, &[])
    }

    /// Like [`Pipeline::process`], with the corrections of a released case
    /// recorded in the record's provenance.
    pub fn process_with(
        &self,
        body: &[u8],
        message_id: Option<&str>,
        corrections: &[Correction],
    ) -> Processed {
        match intake::read(body, message_id, self.config.max_body_bytes) {
            Ok(env) => self.evaluate_envelope(env, corrections),
            Err(invalid) => Processed::Invalid(invalid),
        }
    }

    /// A read application under its mapping.
    fn evaluate_envelope(&self, env: intake::Envelope, corrections: &[Correction]) -> Processed {
        let Some(m) = self.mappings.get(&env.form, &env.version) else {
            return Processed::Invalid(Invalid::new(
                InvalidReason::NoMapping,
                format!(
                    "no mapping for form {:?} version {:?}",
                    truncate(&env.form, 20),
                    truncate(&env.version, 20)
                ),
                Some(env.antrag_id),
            ));
        };
        let findings = evaluate(m, &env.doc);
        finish(m, env.antrag_id, &env.doc, findings, corrections)
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// At most this many elements per rule `for_each` and list variable are
/// evaluated (a household has at most 31 persons; real applications stay far
/// below). More makes the application a case, never a silent pass.
pub const RULE_ELEMENT_LIMIT: usize = 200;

/// All findings of one application under one mapping, in one pass: JSON
/// Schema, field checks, then rules. Identical findings are reported once.
pub fn evaluate(m: &Mapping, doc: &serde_json::Value) -> Vec<Finding> {
    evaluate_with_diagnostics(m, doc).0
}

/// Like [`evaluate`], also returning the ids of rules whose CEL evaluation
/// failed (skipped). On well-formed input that points at a mapping bug;
/// `mappings test` reports it.
pub fn evaluate_with_diagnostics(
    m: &Mapping,
    doc: &serde_json::Value,
) -> (Vec<Finding>, Vec<String>) {
    let mut out = Vec::new();
    schema_findings(m, doc, &mut out);
    let today = m
        .today
        .first(doc, &Vec::new())
        .and_then(|(_, v)| v.as_str())
        .and_then(dates::submission_day);
    let input = checks::Input {
        doc,
        today,
        labels: &m.labels,
    };
    for c in &m.checks {
        c.run(&input, &mut out);
    }
    let limit = &m.schema_messages["limit"];
    let mut eval = rules::Eval::new(doc, today, &m.labels).with_limit(rules::Limit {
        max: RULE_ELEMENT_LIMIT,
        rule: &limit.rule,
        message: &limit.message,
    });
    let mut failed = Vec::new();
    for r in &m.rules {
        if eval.run(&m.rule_env, r, &mut out) > 0 {
            failed.push(r.id.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert((f.pointer.clone(), f.rule.clone())));
    (out, failed)
}

fn finish(
    m: &Mapping,
    antrag_id: Uuid,
    doc: &serde_json::Value,
    mut findings: Vec<Finding>,
    corrections: &[Correction],
) -> Processed {
    let mut record = None;
    if !findings.iter().any(Finding::is_error) {
        match build_record(m, doc, &findings, corrections) {
            Ok(xml) => record = Some(xml),
            Err(errors) => findings.extend(errors),
        }
    }
    let application = Application {
        antrag_id,
        mapping: m.name.clone(),
        jobcenter: m.casework.dienststelle_of(doc),
        applicant: record
            .is_none()
            .then(|| m.casework.applicant_of(doc))
            .flatten(),
        owed: mitwirkung::owed(m, doc, &findings),
        findings,
    };
    match record {
        Some(record) => Processed::Accepted {
            application,
            record,
        },
        None => Processed::Rejected(application),
    }
}

/// The import record, or the transform errors that prevent it.
fn build_record(
    m: &Mapping,
    doc: &serde_json::Value,
    findings: &[Finding],
    corrections: &[Correction],
) -> Result<Vec<u8>, Vec<Finding>> {
    let meta = RecordMeta {
        record_version: &m.record_version,
        mapping_name: &m.name,
        mapping_version: &m.version,
        findings,
        corrections,
    };
    let transform_error = |path: &pointer::Path<'_>, detail: &str| -> Finding {
        schema_finding(m, &m.schema_messages["transform"], path, detail)
    };
    record::build(&m.groups, doc, &meta, &transform_error)
}

fn schema_finding(m: &Mapping, sm: &SchemaMessage, path: &[Step<'_>], detail: &str) -> Finding {
    let feld = m.labels.name(path);
    Finding {
        pointer: pointer::render(path),
        severity: Severity::Error,
        rule: sm.rule.clone(),
        message: sm.message.render(&Fill {
            feld: &feld,
            detail,
            nachweis: "",
        }),
        nachweis: None,
    }
}

fn type_name(t: &str) -> &'static str {
    match t {
        "string" => "ein Text",
        "number" => "eine Zahl",
        "integer" => "eine ganze Zahl",
        "boolean" => "ja oder nein",
        "object" => "eine Gruppe von Angaben",
        "array" => "eine Liste",
        "null" => "leer",
        _ => "ein anderer Wert",
    }
}

fn schema_findings(m: &Mapping, doc: &serde_json::Value, out: &mut Vec<Finding>) {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    if m.schema.is_valid(doc) {
        return;
    }
    for err in m.schema.iter_errors(doc) {
        let segs: Vec<String> =
            pointer::parse_concrete(err.instance_path().as_str()).unwrap_or_default();
        let mut path: Vec<Step<'_>> = segs
            .iter()
            .map(|s| match s.parse::<usize>() {
                Ok(i) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Step::Index(i),
                _ => Step::Key(s.as_str()),
            })
            .collect();
        let mut extra: Vec<String> = Vec::new();
        let (kind, detail) = match err.kind() {
            K::Required { property } => {
                extra.push(property.as_str().unwrap_or_default().to_string());
                ("required", String::new())
            }
            K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
                for u in unexpected {
                    let mut p = path.clone();
                    p.push(Step::Key(u.as_str()));
                    out.push(schema_finding(m, &m.schema_messages["additional"], &p, u));
                }
                continue;
            }
            K::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => type_name(&t.to_string()).to_string(),
                    TypeKind::Multiple(ts) => ts
                        .iter()
                        .map(|t| type_name(&t.to_string()))
                        .collect::<Vec<_>>()
                        .join(" oder "),
                };
                ("type", expected)
            }
            K::Enum { .. } | K::Constant { .. } => ("enum", String::new()),
            K::Pattern { .. } | K::Format { .. } => ("pattern", String::new()),
            K::MaxLength { limit } => ("length", format!("höchstens {limit} Zeichen")),
            K::MinLength { limit } => ("length", format!("mindestens {limit} Zeichen")),
            K::MaxItems { limit } => ("other", format!("höchstens {limit} Einträge sind erlaubt")),
            K::Minimum { .. } | K::ExclusiveMinimum { .. } => {
                ("other", "der Wert ist zu klein".to_string())
            }
            K::Maximum { .. } | K::ExclusiveMaximum { .. } => {
                ("other", "der Wert ist zu groß".to_string())
            }
            _ => (
                "other",
                "die Angabe entspricht nicht dem Antragsformular".to_string(),
            ),
        };
        for e in &extra {
            path.push(Step::Key(e.as_str()));
        }
        out.push(schema_finding(m, &m.schema_messages[kind], &path, &detail));
    }
}
