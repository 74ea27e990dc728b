//! Fixture tests for mapping developers (`allegro-bridge mappings test`).
//!
//! A fixture is an input `NAME.json` with its expectation `NAME.expect.json`
//! beside it and, for an accepted application, the golden record
//! `NAME.record.xml`. Expectation format:
//!
//! ```json
//! { "outcome": "rejected",
//!   "findings": [ { "rule": "PLZ-FORMAT", "pointer": "/antragsteller/anschrift/plz",
//!                   "severity": "error" } ],
//!   "exact": true }
//! ```
//!
//! `exact` (default true) means no other findings may occur; `reason` names
//! the machine reason of an `invalid` outcome. The coverage report lists the
//! checks, rules and mapped fields that no fixture exercises.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use allegro_core::finding::Finding;
use allegro_core::mapping::Mapping;
use allegro_core::pipeline::{InvalidReason, Outcome, Pipeline, Processed};
use allegro_core::pointer::Pattern;
use allegro_core::walk::sorted_files;

/// One expected finding (fields left out are not compared).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFinding {
    pub rule: String,
    pub pointer: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub nachweis: Option<String>,
}

/// The content of `NAME.expect.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub outcome: Outcome2,
    #[serde(default)]
    pub findings: Vec<ExpectedFinding>,
    #[serde(default = "yes")]
    pub exact: bool,
    #[serde(default, deserialize_with = "reason")]
    pub reason: Option<InvalidReason>,
    /// Free text for the reader of the fixture; the runner ignores it.
    #[serde(default, rename = "note")]
    pub _note: Option<String>,
}

fn yes() -> bool {
    true
}

/// An expected reason must be one of the bridge's codes.
fn reason<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<InvalidReason>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|code| code.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// Outcome as written in expectation files.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome2 {
    Accepted,
    Rejected,
    Invalid,
}

impl From<Outcome> for Outcome2 {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Accepted => Outcome2::Accepted,
            Outcome::Rejected => Outcome2::Rejected,
            Outcome::Invalid => Outcome2::Invalid,
        }
    }
}

/// The result of one fixture.
#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub problems: Vec<String>,
}

/// What no fixture exercises, per mapping.
#[derive(Debug, Default)]
pub struct Coverage {
    pub unexercised_rules: BTreeMap<String, Vec<String>>,
    pub unexercised_fields: BTreeMap<String, Vec<String>>,
    pub rules_total: BTreeMap<String, usize>,
    pub fields_total: BTreeMap<String, usize>,
}

/// All fixture results plus coverage.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: Vec<CaseResult>,
    pub coverage: Coverage,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| !c.problems.is_empty()).count()
    }
}

fn sibling(input: &Path, suffix: &str) -> PathBuf {
    let stem = input
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .trim_end_matches(".json");
    input.with_file_name(format!("{stem}{suffix}"))
}

fn matches(e: &ExpectedFinding, f: &Finding) -> bool {
    e.rule == f.rule
        && e.pointer == f.pointer
        && e.severity
            .as_deref()
            .is_none_or(|s| s == f.severity.as_str())
        && e.nachweis
            .as_ref()
            .is_none_or(|n| f.nachweis.as_ref() == Some(n))
}

/// Runs every fixture under `dir`. With `bless`, golden records are
/// (re)written instead of compared.
pub fn run(pipeline: &Pipeline, dir: &Path, bless: bool) -> anyhow::Result<Report> {
    // `fixtures/contract/` keeps the contract's examples as handed over;
    // they run as fixtures as `*/beispiel-*.json`.
    let input = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        name.ends_with(".json") && !name.ends_with(".expect.json")
    };
    let inputs = sorted_files(dir, &|p| !p.ends_with("contract"), &input)
        .map_err(|e| anyhow::anyhow!("cannot read fixtures folder {}: {e}", dir.display()))?;
    let mut report = Report::default();
    let mut seen = Seen::default();
    for input in inputs {
        let name = input
            .strip_prefix(dir)
            .unwrap_or(&input)
            .display()
            .to_string();
        let body = std::fs::read(&input)?;
        let processed = pipeline.process(&body, None);
        seen.note(&processed, &body);
        let mut problems = match read_expectation(&input) {
            Ok(exp) => compare(&exp, &processed),
            Err(problem) => vec![problem],
        };
        problems.extend(unevaluable_rules(pipeline, &processed, &body));
        problems.extend(check_golden(&input, &processed, bless)?);
        report.cases.push(CaseResult { name, problems });
    }
    for m in pipeline.mappings().all() {
        seen.cover(m, &mut report.coverage);
    }
    Ok(report)
}

/// What the fixtures exercised, per mapping name: the check and rule ids
/// that produced a finding, and the readable input documents.
#[derive(Default)]
struct Seen {
    rules: BTreeMap<String, BTreeSet<String>>,
    docs: BTreeMap<String, Vec<Value>>,
}

impl Seen {
    /// Notes the findings and the document of one processed fixture.
    fn note(&mut self, processed: &Processed, body: &[u8]) {
        let Some(app) = processed.application() else {
            return;
        };
        let rules = self.rules.entry(app.mapping.clone()).or_default();
        rules.extend(app.findings.iter().map(|f| f.rule.clone()));
        if let Ok(doc) = serde_json::from_slice::<Value>(body) {
            self.docs.entry(app.mapping.clone()).or_default().push(doc);
        }
    }

    /// Adds mapping `m`'s totals and what no fixture exercised to `coverage`.
    fn cover(&self, m: &Mapping, coverage: &mut Coverage) {
        let seen = self.rules.get(&m.name);
        let ids: Vec<String> = m
            .checks
            .iter()
            .map(|c| c.id.clone())
            .chain(m.rules.iter().map(|r| r.id.clone()))
            .collect();
        coverage.rules_total.insert(m.name.clone(), ids.len());
        let missing = ids
            .into_iter()
            .filter(|id| !seen.is_some_and(|s| s.contains(id)))
            .collect();
        coverage.unexercised_rules.insert(m.name.clone(), missing);
        let mut fields: Vec<String> = m.mapped_fields.iter().map(|p| p.render()).collect();
        fields.sort();
        fields.dedup();
        coverage.fields_total.insert(m.name.clone(), fields.len());
        let docs = self.docs.get(&m.name).map_or(&[][..], Vec::as_slice);
        let unexercised = m
            .mapped_fields
            .iter()
            .filter(|p| !docs.iter().any(|d| present(p, d)))
            .map(|p| p.render())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        coverage
            .unexercised_fields
            .insert(m.name.clone(), unexercised);
    }
}

/// Whether `doc` has a value other than null where `pattern` points.
fn present(pattern: &Pattern, doc: &Value) -> bool {
    let mut hit = false;
    pattern.for_each(doc, &Vec::new(), &mut |_, v| hit |= !v.is_null());
    hit
}

/// The expectation beside `input`, or the problem that it is missing or
/// unreadable.
fn read_expectation(input: &Path) -> Result<Expectation, String> {
    let path = sibling(input, ".expect.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| format!("missing expectation {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What differs between the expectation and the result: outcome, reason,
/// findings missing and (when `exact`) findings not expected.
fn compare(exp: &Expectation, processed: &Processed) -> Vec<String> {
    let mut problems = Vec::new();
    let invalid = processed.invalid();
    let got: Outcome2 = processed.outcome().into();
    if got != exp.outcome {
        let why = invalid
            .map(|i| format!(" ({}: {})", i.reason, i.detail))
            .unwrap_or_default();
        problems.push(format!("outcome {got:?}{why}, expected {:?}", exp.outcome));
    }
    if let (Some(r), Some(inv)) = (exp.reason, invalid) {
        if r != inv.reason {
            problems.push(format!("invalid reason {}, expected {r}", inv.reason));
        }
    }
    for e in &exp.findings {
        if !processed.findings().iter().any(|f| matches(e, f)) {
            problems.push(format!("missing finding {} at {}", e.rule, e.pointer));
        }
    }
    if exp.exact {
        for f in processed.findings() {
            if !exp.findings.iter().any(|e| matches(e, f)) {
                problems.push(format!(
                    "unexpected finding {} ({}) at {}: {}",
                    f.rule,
                    f.severity.as_str(),
                    f.pointer,
                    f.message
                ));
            }
        }
    }
    problems
}

/// A rule that cannot be evaluated on an application that is otherwise
/// fine is a mapping bug (a typo in CEL, a wrong type), not bad input.
fn unevaluable_rules(pipeline: &Pipeline, processed: &Processed, body: &[u8]) -> Vec<String> {
    let Processed::Accepted { application, .. } = processed else {
        return vec![];
    };
    let mappings = pipeline.mappings().all();
    let Some(m) = mappings.into_iter().find(|m| m.name == application.mapping) else {
        return vec![];
    };
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return vec![];
    };
    allegro_core::pipeline::evaluate_with_diagnostics(m, &doc)
        .1
        .into_iter()
        .map(|id| {
            format!(
                "rule {id} could not be evaluated on this accepted application (check its CEL and variable types)"
            )
        })
        .collect()
}

/// Compares the record with the golden one beside `input` (with `bless`,
/// writes it); a golden record without a record is a problem too.
fn check_golden(input: &Path, processed: &Processed, bless: bool) -> std::io::Result<Vec<String>> {
    let golden = sibling(input, ".record.xml");
    let problem = match processed.record() {
        Some(xml) if bless => {
            std::fs::write(&golden, xml)?;
            None
        }
        Some(xml) => match std::fs::read(&golden) {
            Ok(g) if g == xml => None,
            Ok(_) => Some(format!(
                "record differs from {} (run with --bless to accept the new record)",
                golden.display()
            )),
            Err(_) => Some(format!(
                "missing golden record {} (run with --bless to write it)",
                golden.display()
            )),
        },
        None if golden.exists() => Some(format!(
            "no record produced, but {} exists",
            golden.display()
        )),
        None => None,
    };
    Ok(problem.into_iter().collect())
}
