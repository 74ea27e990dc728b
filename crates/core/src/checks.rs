//! Per-field checks: the check kinds that mappings name in `[[check]]`.
//!
//! The algorithms live here in Rust (fast, unit-tested); which field gets
//! which check, with which severity and German message, is data in
//! `mappings/`. A check that meets a value of the wrong JSON type skips it:
//! the JSON Schema stage already reports the type.

use std::collections::HashSet;

use chrono::NaiveDate;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::checkdigit;
use crate::dates::{self, RelDate};
use crate::finding::{Finding, Severity};
use crate::mapping::labels::{Fill, Labels, Template};
use crate::money;
use crate::pointer::{self, Pattern, Ref, Seg, Step};

/// The names of all check kinds, for the linter and the docs.
pub const KINDS: &[&str] = &[
    "required",
    "pattern",
    "iban",
    "steuer_id",
    "rvnr",
    "rvnr_geburtsdatum",
    "kvnr",
    "amount",
    "date",
    "datetime",
    "equals",
    "ref",
    "unique",
];

/// A compiled check kind with its options.
#[derive(Debug, Clone)]
pub enum CheckKind {
    Required,
    Pattern {
        re: Regex,
        hint: String,
    },
    Iban,
    SteuerId,
    Rvnr,
    RvnrGeburtsdatum {
        compare: Ref,
    },
    Kvnr,
    Amount,
    Date {
        min: Option<RelDate>,
        max: Option<RelDate>,
    },
    DateTime,
    Equals {
        value: Value,
    },
    Ref {
        within: Vec<Pattern>,
    },
    Unique,
}

/// A check kind with its options as written in `[[check]]` (`kind = "..."`
/// picks the variant). Each kind takes only its own options.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawKind {
    Required {},
    Pattern {
        pattern: String,
        hint: String,
    },
    Iban {},
    SteuerId {},
    Rvnr {},
    RvnrGeburtsdatum {
        compare: String,
    },
    Kvnr {},
    Amount {},
    Date {
        #[serde(default)]
        min: Option<String>,
        #[serde(default)]
        max: Option<String>,
    },
    #[serde(rename = "datetime")]
    DateTime {},
    Equals {
        value: toml::Value,
    },
    Ref {
        #[serde(rename = "in")]
        within: Vec<String>,
    },
    Unique {},
}

impl RawKind {
    /// The kind of a `[[check]]` table without its common keys; errors say
    /// which kind and option are wrong.
    pub fn from_table(table: toml::Table) -> Result<RawKind, String> {
        let name = table
            .get("kind")
            .and_then(toml::Value::as_str)
            .unwrap_or("");
        if !name.is_empty() && !KINDS.contains(&name) {
            let known = KINDS.join(", ");
            return Err(format!("unknown check kind '{name}' (known: {known})"));
        }
        let name = name.to_string();
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| option_error(&name, e.message().trim()))
    }
}

/// serde's message about a kind's options, in the words of mapping files.
fn option_error(kind: &str, serde: &str) -> String {
    let quoted = |rest: &str| rest.split('`').next().unwrap_or("").to_string();
    if let Some(rest) = serde.strip_prefix("missing field `") {
        let option = quoted(rest);
        if option == "kind" {
            return format!("needs a kind (known: {})", KINDS.join(", "));
        }
        return format!("check kind '{kind}' needs option '{option}'");
    }
    if let Some(rest) = serde.strip_prefix("unknown field `") {
        let options = match rest.split_once(", ") {
            Some((_, "there are no fields")) => "none".to_string(),
            Some((_, expected)) => expected
                .trim_start_matches("expected one of ")
                .trim_start_matches("expected ")
                .replace(" or ", ", ")
                .replace('`', "'"),
            None => String::new(),
        };
        let option = quoted(rest);
        return format!("check kind '{kind}' has no option '{option}' (its options: {options})");
    }
    format!("check kind '{kind}': {serde}")
}

impl CheckKind {
    /// Compiles a kind's options (regexes, pointers, relative dates).
    pub fn compile(raw: RawKind) -> Result<CheckKind, String> {
        Ok(match raw {
            RawKind::Required {} => CheckKind::Required,
            RawKind::Pattern { pattern, hint } => {
                let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                    format!("pattern {pattern:?} is not a valid regular expression: {e}")
                })?;
                CheckKind::Pattern { re, hint }
            }
            RawKind::Iban {} => CheckKind::Iban,
            RawKind::SteuerId {} => CheckKind::SteuerId,
            RawKind::Rvnr {} => CheckKind::Rvnr,
            RawKind::RvnrGeburtsdatum { compare } => CheckKind::RvnrGeburtsdatum {
                compare: Ref::parse(&compare)?,
            },
            RawKind::Kvnr {} => CheckKind::Kvnr,
            RawKind::Amount {} => CheckKind::Amount,
            RawKind::Date { min, max } => CheckKind::Date {
                min: min.as_deref().map(RelDate::parse).transpose()?,
                max: max.as_deref().map(RelDate::parse).transpose()?,
            },
            RawKind::DateTime {} => CheckKind::DateTime,
            RawKind::Equals { value } => CheckKind::Equals {
                value: serde_json::to_value(value).unwrap_or(Value::Null),
            },
            RawKind::Ref { within } => CheckKind::Ref {
                within: within
                    .iter()
                    .map(|s| Pattern::parse(s))
                    .collect::<Result<_, _>>()?,
            },
            RawKind::Unique {} => CheckKind::Unique,
        })
    }

    /// Whether the kind reads "today" (skipped when the submission day is unknown).
    pub fn needs_today(&self) -> bool {
        matches!(self, CheckKind::Date { min, max } if min.is_some() || max.is_some())
    }

    /// Further pointers the kind reads (for lint and coverage).
    pub fn reads(&self) -> Vec<Pattern> {
        match self {
            CheckKind::Ref { within } => within.clone(),
            _ => vec![],
        }
    }
}

/// A compiled `[[check]]`.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub severity: Severity,
    pub fields: Vec<Pattern>,
    pub kind: CheckKind,
    pub message: Template,
    pub nachweis: Option<String>,
}

/// What a check sees of the application.
pub struct Input<'a> {
    pub doc: &'a Value,
    pub today: Option<NaiveDate>,
    pub labels: &'a Labels,
}

impl Check {
    /// Runs the check over every field it names; appends findings.
    pub fn run(&self, input: &Input<'_>, out: &mut Vec<Finding>) {
        if self.kind.needs_today() && input.today.is_none() {
            return;
        }
        match &self.kind {
            CheckKind::Required => self.run_required(input, out),
            CheckKind::Unique => self.run_unique(input, out),
            CheckKind::Ref { within } => {
                let mut known: HashSet<&str> = HashSet::new();
                for p in within {
                    p.for_each(input.doc, &Vec::new(), &mut |_, v| {
                        if let Some(s) = v.as_str() {
                            known.insert(s);
                        }
                    });
                }
                self.each_value(
                    input,
                    |_, v| match v.as_str() {
                        Some(s) if !known.contains(s) => Some(String::new()),
                        _ => None,
                    },
                    out,
                );
            }
            kind => {
                // Date bounds are resolved once per application, not per value.
                let bounds = match kind {
                    CheckKind::Date { min, max } => (
                        min.and_then(|m| input.today.and_then(|t| m.resolve(t))),
                        max.and_then(|m| input.today.and_then(|t| m.resolve(t))),
                    ),
                    _ => (None, None),
                };
                self.each_value(
                    input,
                    |path, v| check_value(kind, input, bounds, path, v),
                    out,
                )
            }
        }
    }

    fn each_value<'v, F>(&self, input: &Input<'v>, mut f: F, out: &mut Vec<Finding>)
    where
        F: FnMut(&pointer::Path<'v>, &'v Value) -> Option<String>,
    {
        for pat in &self.fields {
            pat.for_each(input.doc, &Vec::new(), &mut |path, v| {
                if let Some(detail) = f(path, v) {
                    out.push(self.finding(input, path, &detail));
                }
            });
        }
    }

    fn run_required(&self, input: &Input<'_>, out: &mut Vec<Finding>) {
        for pat in &self.fields {
            let Some((Seg::Key(last), parent_segs)) = pat.segs.split_last() else {
                continue;
            };
            let parent = Pattern {
                segs: parent_segs.to_vec(),
            };
            parent.for_each(input.doc, &Vec::new(), &mut |path, v| {
                if let Value::Object(map) = v {
                    let missing = match map.get(last.as_str()) {
                        None | Some(Value::Null) => true,
                        Some(Value::String(s)) => s.trim().is_empty(),
                        _ => false,
                    };
                    if missing {
                        let mut p = path.clone();
                        p.push(Step::Key(last.as_str()));
                        out.push(self.finding(input, &p, ""));
                    }
                }
            });
        }
    }

    fn run_unique(&self, input: &Input<'_>, out: &mut Vec<Finding>) {
        let mut seen: HashSet<String> = HashSet::new();
        for pat in &self.fields {
            pat.for_each(input.doc, &Vec::new(), &mut |path, v| {
                let key = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return,
                };
                if !seen.insert(key) {
                    out.push(self.finding(input, path, ""));
                }
            });
        }
    }

    fn finding(&self, input: &Input<'_>, path: &[Step<'_>], detail: &str) -> Finding {
        let feld = input.labels.name(path);
        Finding {
            pointer: pointer::render(path),
            severity: self.severity,
            rule: self.id.clone(),
            message: self.message.render(&Fill {
                feld: &feld,
                detail,
                nachweis: self.nachweis.as_deref().unwrap_or(""),
            }),
            nachweis: self.nachweis.clone(),
        }
    }
}

/// Checks one value; `Some(detail)` on a problem.
fn check_value(
    kind: &CheckKind,
    input: &Input<'_>,
    bounds: (Option<NaiveDate>, Option<NaiveDate>),
    path: &pointer::Path<'_>,
    v: &Value,
) -> Option<String> {
    match kind {
        CheckKind::Pattern { re, hint } => {
            let s = v.as_str()?;
            (!re.is_match(s)).then(|| hint.clone())
        }
        CheckKind::Iban => checkdigit::iban(v.as_str()?).err(),
        CheckKind::SteuerId => checkdigit::steuer_id(v.as_str()?).err(),
        CheckKind::Rvnr => checkdigit::rvnr(v.as_str()?).err(),
        CheckKind::Kvnr => checkdigit::kvnr(v.as_str()?).err(),
        CheckKind::RvnrGeburtsdatum { compare } => {
            let s = v.as_str()?;
            checkdigit::rvnr(s).ok()?;
            let (day, month, yy) = checkdigit::rvnr_birth_part(s)?;
            let (_, gv) = compare.first(input.doc, path)?;
            let birth = dates::parse_date(gv.as_str()?)?;
            use chrono::Datelike;
            let same = birth.day() == day
                && birth.month() == month
                && (birth.year().rem_euclid(100)) as u32 == yy;
            (!same).then(String::new)
        }
        CheckKind::Amount => {
            let Value::Number(n) = v else { return None };
            let Some(d) = money::decimal(n) else {
                return Some("der Betrag ist keine gültige Zahl".into());
            };
            if d.is_sign_negative() && !d.is_zero() {
                Some("der Betrag darf nicht negativ sein".into())
            } else if d.normalize().scale() > 2 {
                Some("es sind höchstens zwei Nachkommastellen erlaubt".into())
            } else {
                None
            }
        }
        CheckKind::Date { min, max } => {
            let s = v.as_str()?;
            let Some(d) = dates::parse_date(s) else {
                // Range checks leave format problems to the plain date check.
                return (min.is_none() && max.is_none())
                    .then(|| "es ist kein gültiges Datum im Format JJJJ-MM-TT".to_string());
            };
            let (lo, hi) = bounds;
            let too_early = lo.is_some_and(|m| d < m);
            let too_late = hi.is_some_and(|m| d > m);
            (too_early || too_late).then(String::new)
        }
        CheckKind::DateTime => {
            let s = v.as_str()?;
            dates::submission_day(s)
                .is_none()
                .then(|| "es ist kein gültiger Zeitpunkt (Datum, Uhrzeit und Zeitzone)".to_string())
        }
        CheckKind::Equals { value } => (!json_equal(v, value)).then(String::new),
        CheckKind::Required | CheckKind::Ref { .. } | CheckKind::Unique => None,
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => money::decimal(x) == money::decimal(y),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(kind: CheckKind, fields: &[&str]) -> Check {
        Check {
            id: "T".into(),
            severity: Severity::Error,
            fields: fields.iter().map(|f| Pattern::parse(f).unwrap()).collect(),
            kind,
            message: Template::parse("{Feld}: {detail}").unwrap(),
            nachweis: None,
        }
    }

    fn run(c: &Check, doc: &Value, today: Option<&str>) -> Vec<String> {
        let labels = Labels::default();
        let mut out = vec![];
        c.run(
            &Input {
                doc,
                today: today.and_then(dates::parse_date),
                labels: &labels,
            },
            &mut out,
        );
        out.into_iter().map(|f| f.pointer).collect()
    }

    #[test]
    fn required_names_the_pointer_the_field_would_have() {
        let c = check(CheckKind::Required, &["/w/*/b"]);
        let doc = json!({"w": [{"b": "x"}, {}, {"b": "  "}]});
        assert_eq!(run(&c, &doc, None), vec!["/w/1/b", "/w/2/b"]);
    }

    #[test]
    fn amounts_reject_negative_and_three_decimals() {
        let c = check(CheckKind::Amount, &["/a/*"]);
        let doc: Value =
            serde_json::from_str(r#"{"a": [1.5, -0.01, 10.005, 3, 10.50, "x"]}"#).unwrap();
        assert_eq!(run(&c, &doc, None), vec!["/a/1", "/a/2"]);
    }

    #[test]
    fn date_ranges_use_the_submission_day_and_skip_without_it() {
        let c = check(
            CheckKind::Date {
                min: Some(RelDate::parse("today-120y").unwrap()),
                max: Some(RelDate::parse("today").unwrap()),
            },
            &["/d/*"],
        );
        let doc = json!({"d": ["2026-11-20", "2026-11-21", "1906-11-20", "1906-11-19", "kaputt"]});
        assert_eq!(run(&c, &doc, Some("2026-11-20")), vec!["/d/1", "/d/3"]);
        assert!(run(&c, &doc, None).is_empty());
        let fmt = check(
            CheckKind::Date {
                min: None,
                max: None,
            },
            &["/d/*"],
        );
        assert_eq!(run(&fmt, &doc, None), vec!["/d/4"]);
    }

    #[test]
    fn refs_and_uniqueness() {
        let doc = json!({"p": [{"id": "a"}, {"id": "b"}, {"id": "a"}], "e": [{"pid": "b"}, {"pid": "z"}]});
        let r = check(
            CheckKind::Ref {
                within: vec![Pattern::parse("/p/*/id").unwrap()],
            },
            &["/e/*/pid"],
        );
        assert_eq!(run(&r, &doc, None), vec!["/e/1/pid"]);
        let u = check(CheckKind::Unique, &["/p/*/id"]);
        assert_eq!(run(&u, &doc, None), vec!["/p/2/id"]);
    }

    #[test]
    fn pattern_is_anchored() {
        let c = check(
            CheckKind::compile(RawKind::Pattern {
                pattern: "[0-9]{5}".into(),
                hint: "fünf Ziffern".into(),
            })
            .unwrap(),
            &["/plz"],
        );
        assert_eq!(run(&c, &json!({"plz": "123456"}), None), vec!["/plz"]);
        assert!(run(&c, &json!({"plz": "12345"}), None).is_empty());
    }

    #[test]
    fn kinds_lists_every_raw_kind() {
        // serde's own list of the variants, from its error for an unknown one.
        let mut t = toml::Table::new();
        t.insert("kind".into(), "?".into());
        let e = toml::Value::Table(t).try_into::<RawKind>().unwrap_err();
        let listed: Vec<String> = e
            .message()
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|s| s.trim().trim_matches('`').to_string())
            .collect();
        assert_eq!(
            listed, KINDS,
            "KINDS must list every RawKind variant, in order"
        );
    }
}
