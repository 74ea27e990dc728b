//! Cross-field rules written in CEL (`[[rule]]` in the mapping files).
//!
//! A rule runs once per application, or once per element matched by its
//! `for_each` patterns. It sees only the variables it declares in `let`
//! (converted from the JSON on demand, cached per application), `it` and
//! `index` for the current element, and `today` (the submission day as
//! `YYYY-MM-DD`). `assert` must be true; false yields a finding. A rule whose
//! `requires` variables are null, whose `when` guards (checked in Rust, before
//! CEL) do not hold, or that needs `today` when it is unknown, is
//! skipped; so is one whose evaluation fails on malformed input (the field
//! checks and the JSON Schema report that input themselves).

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use chrono::NaiveDate;
use serde_json::Value;

use crate::dates;
use crate::finding::{Finding, Severity};
use crate::mapping::labels::{Fill, Labels, Template};
use crate::money;
use crate::pointer::{self, Pattern, Ref, Step};

/// How a `let` variable is computed from the document.
#[derive(Debug, Clone)]
pub enum BindingKind {
    /// The value (or, for a pattern with `*`, the list of values); null if absent.
    Value,
    /// Number of matches.
    Count,
    /// Amount(s) as exact integer cents (list for a wildcard pattern).
    Cents,
    /// Sum of all matched amounts in integer cents.
    SumCents,
    /// One string per match: the named properties joined with `|` (absent
    /// ones empty), e.g. `LOHNABRECHNUNG|p1`.
    Keys(Vec<String>),
}

/// A compiled `let` entry.
#[derive(Debug, Clone)]
pub struct Binding {
    pub name: String,
    pub kind: BindingKind,
    pub source: Ref,
    /// Cache key for absolute bindings.
    key: Option<String>,
}

impl Binding {
    pub fn new(name: String, kind: BindingKind, source: Ref, text: &str) -> Binding {
        let key =
            matches!(source.anchor, pointer::Anchor::Root).then(|| format!("{kind:?}:{text}"));
        Binding {
            name,
            kind,
            source,
            key,
        }
    }
}

/// Where the finding of a rule points: optionally the current element, then fixed keys.
#[derive(Debug, Clone)]
pub struct PointerTemplate {
    pub from_each: bool,
    pub suffix: Vec<String>,
}

impl PointerTemplate {
    /// Parses `{each}`, `{each}/a/b` or `/a/b`.
    pub fn parse(s: &str) -> Result<PointerTemplate, String> {
        let (from_each, rest) = match s.strip_prefix("{each}") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let pat = Pattern::parse(rest)?;
        let mut suffix = Vec::new();
        for seg in pat.segs {
            match seg {
                pointer::Seg::Key(k) => suffix.push(k),
                pointer::Seg::Any => return Err(format!("pointer {s:?} must not contain '*'")),
            }
        }
        Ok(PointerTemplate { from_each, suffix })
    }
}

/// A compiled `[[rule]]`.
pub struct Rule {
    pub id: String,
    pub severity: Severity,
    pub for_each: Vec<Pattern>,
    pub bindings: Vec<Binding>,
    /// Indices into `bindings` that must be non-null.
    pub requires: Vec<usize>,
    /// Cheap guards evaluated before CEL: (reference, allowed string values).
    pub when: Vec<(Ref, Vec<String>)>,
    pub program: Program,
    pub uses_today: bool,
    pub uses_it: bool,
    pub uses_index: bool,
    pub pointer: PointerTemplate,
    pub message: Template,
    pub nachweis: Option<String>,
    /// CEL over the rule's own variables whose value fills `{detail}` when
    /// the rule fails (what it compared, e.g. how many persons are named).
    pub detail: Option<Program>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("id", &self.id).finish()
    }
}

/// Names every rule may use besides its own `let` variables.
pub const BUILTIN_VARIABLES: &[&str] = &["today", "it", "index"];

/// The CEL environment shared by all rules of a mapping: the standard library,
/// the date functions and the mapping's constants. Built once at load.
pub struct RuleEnv {
    env: Arc<Env>,
    base: Context<'static, 'static>,
}

impl std::fmt::Debug for RuleEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuleEnv")
    }
}

fn date_arg(s: &str) -> Result<NaiveDate, ExecutionError> {
    dates::parse_date(s)
        .ok_or_else(|| ExecutionError::function_error("date", "not a YYYY-MM-DD date"))
}

fn iso(d: NaiveDate) -> CelValue {
    CelValue::String(Arc::new(dates::iso(d)))
}

impl RuleEnv {
    pub fn new(constants: &[(String, CelValue)]) -> Result<RuleEnv, String> {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::lists)
            .map_err(|e| format!("{e:?}"))?;
        env.add_extension(cel::extensions::strings)
            .map_err(|e| format!("{e:?}"))?;
        let env = Arc::new(env);
        let mut base = Context::with_env(Arc::clone(&env));
        let reg = |r: Result<(), cel::DeclarationError>| r.map_err(|e| format!("{e:?}"));
        reg(base.add_function(
            "age",
            |birth: Arc<String>, day: Arc<String>| -> Result<i64, ExecutionError> {
                Ok(dates::age_on(date_arg(&birth)?, date_arg(&day)?))
            },
        ))?;
        reg(base.add_function(
            "date",
            |s: Arc<String>| -> Result<CelValue, ExecutionError> { Ok(iso(date_arg(&s)?)) },
        ))?;
        reg(base.add_function(
            "add_years",
            |day: Arc<String>, n: i64| -> Result<CelValue, ExecutionError> {
                let years = i32::try_from(n)
                    .map_err(|_| ExecutionError::function_error("add_years", "out of range"))?;
                dates::add_years(date_arg(&day)?, years)
                    .map(iso)
                    .ok_or_else(|| ExecutionError::function_error("add_years", "out of range"))
            },
        ))?;
        reg(base.add_function(
            "first_of_month",
            |day: Arc<String>| -> Result<CelValue, ExecutionError> {
                Ok(iso(dates::first_of_month(date_arg(&day)?)))
            },
        ))?;
        for (name, value) in constants {
            base.add_variable_from_value(name.clone(), value.clone());
        }
        Ok(RuleEnv { env, base })
    }

    /// Compiles a CEL expression for this environment; errors carry CEL's own message.
    pub fn compile(&self, source: &str) -> Result<Program, String> {
        self.env
            .compile(source)
            .map_err(|e| format!("CEL expression does not compile: {e}"))
    }
}

/// Converts JSON to CEL (numbers: integers stay integers, others become doubles;
/// rules that compare money use `cents` bindings instead).
pub fn to_cel(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => {
            let map: HashMap<Key, CelValue> = o
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}

/// Converts a TOML constant to CEL.
pub fn toml_to_cel(v: &toml::Value) -> Result<CelValue, String> {
    Ok(match v {
        toml::Value::String(s) => CelValue::String(Arc::new(s.clone())),
        toml::Value::Integer(i) => CelValue::Int(*i),
        toml::Value::Float(f) => CelValue::Float(*f),
        toml::Value::Boolean(b) => CelValue::Bool(*b),
        toml::Value::Array(a) => CelValue::List(Arc::new(
            a.iter().map(toml_to_cel).collect::<Result<_, _>>()?,
        )),
        toml::Value::Table(t) => {
            let map: HashMap<Key, CelValue> = t
                .iter()
                .map(|(k, v)| Ok((Key::String(Arc::new(k.clone())), toml_to_cel(v)?)))
                .collect::<Result<_, String>>()?;
            CelValue::Map(Map { map: Arc::new(map) })
        }
        toml::Value::Datetime(_) => return Err("dates are not allowed as constants".into()),
    })
}

fn cents_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => money::cents(money::decimal(n)?),
        _ => None,
    }
}

fn bind<'v>(
    b: &Binding,
    doc: &'v Value,
    current: &pointer::Path<'_>,
    it: Option<&'v Value>,
) -> CelValue {
    let wildcard = b.source.pattern.has_wildcard();
    match b.kind {
        BindingKind::Value | BindingKind::Cents => {
            let conv = |v: &Value| match b.kind {
                BindingKind::Cents => cents_of(v).map_or(CelValue::Null, CelValue::Int),
                _ => to_cel(v),
            };
            if wildcard {
                let mut items = Vec::new();
                b.source
                    .for_each(doc, current, &mut |_, v| items.push(conv(v)));
                CelValue::List(Arc::new(items))
            } else {
                b.source.get(doc, current, it).map_or(CelValue::Null, conv)
            }
        }
        BindingKind::Count => {
            let mut n = 0i64;
            b.source.for_each(doc, current, &mut |_, _| n += 1);
            CelValue::Int(n)
        }
        BindingKind::Keys(ref fields) => {
            let mut items = Vec::new();
            b.source.for_each(doc, current, &mut |_, v| {
                let mut key = String::new();
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        key.push('|');
                    }
                    if let Some(s) = v.get(f.as_str()).and_then(Value::as_str) {
                        key.push_str(s);
                    }
                }
                items.push(CelValue::String(Arc::new(key)));
            });
            CelValue::List(Arc::new(items))
        }
        BindingKind::SumCents => {
            let mut sum = 0i64;
            b.source.for_each(doc, current, &mut |_, v| {
                sum = sum.saturating_add(cents_of(v).unwrap_or(0));
            });
            CelValue::Int(sum)
        }
    }
}

/// A bound on the work one rule may do on one application: at most `max`
/// elements per `for_each` and per list variable. Beyond it the rule is not
/// evaluated and an error finding (`rule`, `message`) sends the application
/// to a caseworker instead: no silent acceptance, no quadratic blow-up on a
/// hostile 1 MiB body.
pub struct Limit<'a> {
    pub max: usize,
    pub rule: &'a str,
    pub message: &'a Template,
}

/// The location of the array a wildcard pattern runs over: its segments up to
/// the first `*`.
fn array_path(pat: &Pattern) -> Vec<Step<'_>> {
    pat.segs
        .iter()
        .map_while(|s| match s {
            pointer::Seg::Key(k) => Some(Step::Key(k.as_str())),
            pointer::Seg::Any => None,
        })
        .collect()
}

/// Per-application state: the document, the day, cached absolute bindings.
pub struct Eval<'a> {
    pub doc: &'a Value,
    pub today: Option<String>,
    pub labels: &'a Labels,
    cache: HashMap<&'a str, CelValue>,
    limit: Option<Limit<'a>>,
}

impl<'a> Eval<'a> {
    pub fn new(doc: &'a Value, today: Option<NaiveDate>, labels: &'a Labels) -> Eval<'a> {
        Eval {
            doc,
            today: today.map(dates::iso),
            labels,
            cache: HashMap::new(),
            limit: None,
        }
    }

    /// Sets the work bound (see [`Limit`]).
    pub fn with_limit(mut self, limit: Limit<'a>) -> Eval<'a> {
        self.limit = Some(limit);
        self
    }

    /// The finding for a list too long to check, at the array `path`.
    fn too_many(&self, path: &[Step<'_>]) -> Option<Finding> {
        let l = self.limit.as_ref()?;
        let feld = self.labels.name(path);
        Some(Finding {
            pointer: pointer::render(path),
            severity: Severity::Error,
            rule: l.rule.to_string(),
            message: l.message.render(&Fill {
                feld: &feld,
                detail: &l.max.to_string(),
                nachweis: "",
            }),
            nachweis: None,
        })
    }

    fn over_limit(&self, n: usize) -> bool {
        self.limit.as_ref().is_some_and(|l| n > l.max)
    }

    /// Runs one rule; appends its findings. Returns the number of evaluation
    /// errors (skipped evaluations), for the mapping tests' diagnostics.
    pub fn run(&mut self, env: &RuleEnv, rule: &'a Rule, out: &mut Vec<Finding>) -> usize {
        if rule.uses_today && self.today.is_none() {
            return 0;
        }
        let mut errors = 0;
        if rule.for_each.is_empty() {
            errors += self.run_at(env, rule, &Vec::new(), None, 0, out);
        } else {
            let doc = self.doc;
            let mut matches: Vec<(pointer::Path<'a>, &'a Value)> = Vec::new();
            let mut largest: (usize, Option<&Pattern>) = (0, None);
            for pat in &rule.for_each {
                let before = matches.len();
                pat.for_each(doc, &Vec::new(), &mut |p, v| matches.push((p.clone(), v)));
                if matches.len() - before > largest.0 {
                    largest = (matches.len() - before, Some(pat));
                }
            }
            if self.over_limit(matches.len()) {
                // Point at the array that makes the list long.
                if let Some(pat) = largest.1 {
                    out.extend(self.too_many(&array_path(pat)));
                }
                return 0;
            }
            for (i, (path, v)) in matches.iter().enumerate() {
                errors += self.run_at(env, rule, path, Some(v), i, out);
            }
        }
        errors
    }

    fn run_at(
        &mut self,
        env: &RuleEnv,
        rule: &'a Rule,
        path: &pointer::Path<'a>,
        it: Option<&Value>,
        index: usize,
        out: &mut Vec<Finding>,
    ) -> usize {
        for (r, allowed) in &rule.when {
            let ok = r
                .get(self.doc, path, it)
                .and_then(Value::as_str)
                .is_some_and(|v| allowed.iter().any(|a| a == v));
            if !ok {
                return 0;
            }
        }
        let mut values: Vec<CelValue> = Vec::with_capacity(rule.bindings.len());
        for b in &rule.bindings {
            let v = match &b.key {
                Some(key) => {
                    if let Some(v) = self.cache.get(key.as_str()) {
                        v.clone()
                    } else {
                        let v = bind(b, self.doc, path, it);
                        self.cache.insert(key.as_str(), v.clone());
                        v
                    }
                }
                None => bind(b, self.doc, path, it),
            };
            values.push(v);
        }
        if rule
            .requires
            .iter()
            .any(|&i| matches!(values[i], CelValue::Null))
        {
            return 0;
        }
        for (b, v) in rule.bindings.iter().zip(&values) {
            if let CelValue::List(items) = v {
                if self.over_limit(items.len()) {
                    out.extend(self.too_many(&array_path(&b.source.pattern)));
                    return 0;
                }
            }
        }
        let mut scope = env.base.new_inner_scope();
        for (b, v) in rule.bindings.iter().zip(values) {
            scope.add_variable_from_value(b.name.as_str(), v);
        }
        if rule.uses_today {
            if let Some(t) = &self.today {
                scope.add_variable_from_value("today", t.as_str());
            }
        }
        if rule.uses_it {
            scope.add_variable_from_value("it", it.map_or(CelValue::Null, to_cel));
        }
        if rule.uses_index {
            scope.add_variable_from_value("index", index as i64);
        }
        match rule.program.execute(&scope) {
            Ok(CelValue::Bool(true)) => 0,
            Ok(CelValue::Bool(false)) => {
                let detail = rule.detail.as_ref().map(|d| detail_text(d.execute(&scope)));
                out.push(self.finding(rule, path, detail.as_deref().unwrap_or("")));
                0
            }
            Ok(_) | Err(_) => 1,
        }
    }

    fn finding(&self, rule: &Rule, each: &pointer::Path<'_>, detail: &str) -> Finding {
        let mut path: Vec<Step<'_>> = if rule.pointer.from_each {
            each.clone()
        } else {
            Vec::new()
        };
        for k in &rule.pointer.suffix {
            path.push(match k.parse::<usize>() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(k.as_str()),
            });
        }
        let feld = self.labels.name(&path);
        Finding {
            pointer: pointer::render(&path),
            severity: rule.severity,
            rule: rule.id.clone(),
            message: rule.message.render(&Fill {
                feld: &feld,
                detail,
                nachweis: rule.nachweis.as_deref().unwrap_or(""),
            }),
            nachweis: rule.nachweis.clone(),
        }
    }
}

/// A rule's `detail` value as text (a string as is, a number in digits;
/// anything else, or an error, says nothing).
fn detail_text(v: Result<CelValue, ExecutionError>) -> String {
    match v {
        Ok(CelValue::String(s)) => s.to_string(),
        Ok(CelValue::Int(i)) => i.to_string(),
        Ok(CelValue::UInt(u)) => u.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(
        assert: &str,
        bindings: Vec<(&str, BindingKind, &str)>,
        for_each: &[&str],
        pointer: &str,
    ) -> Rule {
        let program = RuleEnv::new(&[]).unwrap().compile(assert).unwrap();
        let refs = program.references();
        Rule {
            id: "R".into(),
            severity: Severity::Error,
            for_each: for_each
                .iter()
                .map(|p| Pattern::parse(p).unwrap())
                .collect(),
            bindings: bindings
                .into_iter()
                .map(|(n, k, s)| Binding::new(n.into(), k, Ref::parse(s).unwrap(), s))
                .collect(),
            requires: vec![],
            when: vec![],
            uses_today: refs.has_variable("today"),
            uses_it: refs.has_variable("it"),
            uses_index: refs.has_variable("index"),
            program,
            pointer: PointerTemplate::parse(pointer).unwrap(),
            message: Template::parse("{Feld} passt nicht.").unwrap(),
            nachweis: None,
            detail: None,
        }
    }

    fn run(r: &Rule, doc: &Value, today: Option<&str>) -> Vec<String> {
        let env = RuleEnv::new(&[]).unwrap();
        let labels = Labels::default();
        let mut e = Eval::new(doc, today.and_then(dates::parse_date), &labels);
        let mut out = vec![];
        e.run(&env, r, &mut out);
        out.into_iter().map(|f| f.pointer).collect()
    }

    #[test]
    fn per_element_rule_points_at_the_element() {
        let r = rule(
            "brutto == null || netto <= brutto",
            vec![
                ("netto", BindingKind::Cents, "./netto"),
                ("brutto", BindingKind::Cents, "./brutto"),
            ],
            &["/e/*"],
            "{each}/netto",
        );
        let doc: Value =
            serde_json::from_str(r#"{"e":[{"netto":100.10,"brutto":100.1},{"netto":100.11,"brutto":100.10},{"netto":5}]}"#)
                .unwrap();
        assert_eq!(run(&r, &doc, None), vec!["/e/1/netto"]);
    }

    #[test]
    fn sums_in_cents_are_exact() {
        let r = rule(
            "summe <= 250000",
            vec![("summe", BindingKind::SumCents, "/k/*")],
            &[],
            "/k",
        );
        let ok: Value = serde_json::from_str(r#"{"k":[1000.10, 1000.20, 499.70]}"#).unwrap();
        assert!(run(&r, &ok, None).is_empty());
        let over: Value = serde_json::from_str(r#"{"k":[1000.10, 1000.20, 499.71]}"#).unwrap();
        assert_eq!(run(&r, &over, None), vec!["/k"]);
    }

    #[test]
    fn today_rules_are_skipped_without_a_day_and_use_it_otherwise() {
        let r = rule("age(it, today) >= 15", vec![], &["/geb"], "{each}");
        let doc = json!({"geb": "2011-11-21"});
        assert_eq!(run(&r, &doc, Some("2026-11-20")), vec!["/geb"]);
        assert!(run(&r, &doc, Some("2026-11-21")).is_empty());
        assert!(run(&r, &doc, None).is_empty());
    }

    #[test]
    fn malformed_input_skips_instead_of_guessing() {
        let r = rule("date(it) <= today", vec![], &["/d"], "{each}");
        assert!(run(&r, &json!({"d": "kaputt"}), Some("2026-11-20")).is_empty());
        assert_eq!(
            run(&r, &json!({"d": "2027-01-01"}), Some("2026-11-20")),
            vec!["/d"]
        );
    }

    #[test]
    fn bad_cel_is_refused() {
        assert!(RuleEnv::new(&[]).unwrap().compile("a &&").is_err());
    }
}
