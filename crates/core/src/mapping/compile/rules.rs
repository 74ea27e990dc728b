//! `[[rule]]`: cross-field rules in CEL. Every variable a rule reads is
//! declared in its `let` (pointers checked against the schema, relative ones
//! only with `for_each`), `when` guards are checked in Rust before CEL runs,
//! and the CEL expression is compiled and may use only declared names.

use std::collections::BTreeMap;

use super::checks::severity;
use super::ids::Ids;
use super::Schema;
use crate::finding::Severity;
use crate::mapping::error::{Errs, Item};
use crate::mapping::labels::Template;
use crate::mapping::load::Parsed;
use crate::mapping::raw::{RawBinding, RawGuard, RawRule};
use crate::pointer::{Anchor, Pattern, Ref};
use crate::rules::{self, Binding, BindingKind, PointerTemplate, Rule, RuleEnv};

/// What rules are compiled against.
pub(super) struct Env<'a> {
    pub schema: &'a Schema,
    pub constants: &'a BTreeMap<String, cel::Value>,
    pub rule_env: &'a RuleEnv,
}

/// The rules of all parts; a rule with any problem is left out.
pub(super) fn compile(
    parts: &[&Parsed],
    env: &Env<'_>,
    ids: &mut Ids,
    errs: &mut Errs,
) -> Vec<Rule> {
    let mut out = Vec::new();
    for part in parts {
        for r in &part.file.rule {
            let raw = r.get_ref();
            ids.claim(*part, r.span(), &raw.id, errs);
            let item = Item {
                src: *part,
                span: r.span(),
                what: format!("rule {}", raw.id),
            };
            let before = errs.count();
            let rule = rule(&item, raw, env, errs);
            if errs.count() == before {
                out.extend(rule);
            }
        }
    }
    out
}

fn rule(item: &Item<'_>, raw: &RawRule, env: &Env<'_>, errs: &mut Errs) -> Option<Rule> {
    let sev = severity(&raw.severity).map_err(|e| errs.item(item, e)).ok();
    let for_each = for_each(item, raw, env.schema, errs);
    let bindings = bindings(item, raw, &for_each, env, errs);
    let requires = requires(item, raw, &bindings, errs);
    let when = guards(item, raw, &for_each, env, errs);
    let program = env
        .rule_env
        .compile(&raw.assert)
        .map_err(|e| errs.item(item, e))
        .ok();
    let uses = program
        .as_ref()
        .map(|p| uses(item, raw, p, &bindings, &for_each, env, errs))
        .unwrap_or_default();
    let pointer = pointer(item, raw, &for_each, errs);
    let detail = raw
        .detail
        .as_deref()
        .and_then(|d| detail(item, d, &bindings, env, errs));
    let message = Template::parse(&raw.message)
        .map_err(|e| errs.item(item, e))
        .ok();
    if raw.nachweis.is_some() && sev != Some(Severity::Info) {
        errs.item(item, "nachweis is only for severity info (a document owed)");
    }
    Some(Rule {
        id: raw.id.clone(),
        severity: sev?,
        for_each,
        bindings,
        requires,
        when,
        program: program?,
        uses_today: uses.today,
        uses_it: uses.it,
        uses_index: uses.index,
        pointer: pointer?,
        message: message?,
        nachweis: raw.nachweis.clone(),
        detail,
    })
}

/// The `detail` expression: CEL over the rule's own variables and the
/// constants only (it runs in the scope the rule failed in).
fn detail(
    item: &Item<'_>,
    text: &str,
    bindings: &[Binding],
    env: &Env<'_>,
    errs: &mut Errs,
) -> Option<cel::Program> {
    let program = env
        .rule_env
        .compile(text)
        .map_err(|e| errs.item(item, format!("detail: {e}")))
        .ok()?;
    let refs = program.references();
    let unknown: Vec<&str> = refs
        .variables()
        .into_iter()
        .filter(|v| !bindings.iter().any(|b| b.name == *v) && !env.constants.contains_key(*v))
        .collect();
    if !unknown.is_empty() {
        let msg = format!(
            "detail uses {unknown:?}; it may use only the rule's let variables and constants"
        );
        errs.item(item, msg);
        return None;
    }
    Some(program)
}

fn for_each(item: &Item<'_>, raw: &RawRule, schema: &Schema, errs: &mut Errs) -> Vec<Pattern> {
    let texts = raw
        .for_each
        .as_ref()
        .map(|o| o.to_vec())
        .unwrap_or_default();
    let mut out = Vec::new();
    for s in texts {
        match Pattern::parse(&s) {
            Ok(p) if schema.knows(&p) => out.push(p),
            Ok(_) => {
                let msg = format!(
                    "unknown source pointer {s:?} in for_each (not in schema {})",
                    schema.name
                );
                errs.item(item, msg);
            }
            Err(e) => errs.item(item, e),
        }
    }
    out
}

fn bindings(
    item: &Item<'_>,
    raw: &RawRule,
    for_each: &[Pattern],
    env: &Env<'_>,
    errs: &mut Errs,
) -> Vec<Binding> {
    let mut out = Vec::new();
    for (name, b) in &raw.bindings {
        let (kind, text) = binding_kind(b);
        if let BindingKind::Keys(fields) = &kind {
            if fields.is_empty() || fields.iter().any(|f| f.is_empty() || f.contains('/')) {
                errs.item(
                    item,
                    format!("variable {name:?}: fields must be property names"),
                );
            }
        }
        if rules::BUILTIN_VARIABLES.contains(&name.as_str()) || env.constants.contains_key(name) {
            errs.item(
                item,
                format!("variable {name:?} shadows a built-in variable or constant"),
            );
        }
        match Ref::parse(&text) {
            Ok(rf) => {
                for problem in check_ref(&rf, for_each, env.schema) {
                    let msg = format!("variable {name:?}: {problem} (schema {})", env.schema.name);
                    errs.item(item, msg);
                }
                out.push(Binding::new(name.clone(), kind, rf, &text));
            }
            Err(e) => errs.item(item, format!("variable {name:?}: {e}")),
        }
    }
    out
}

fn binding_kind(b: &RawBinding) -> (BindingKind, String) {
    match b {
        RawBinding::Pointer(p) => (BindingKind::Value, p.clone()),
        RawBinding::Count { count } => (BindingKind::Count, count.clone()),
        RawBinding::Cents { cents } => (BindingKind::Cents, cents.clone()),
        RawBinding::SumCents { sum_cents } => (BindingKind::SumCents, sum_cents.clone()),
        RawBinding::Keys { keys, fields } => (BindingKind::Keys(fields.clone()), keys.clone()),
    }
}

fn requires(item: &Item<'_>, raw: &RawRule, bindings: &[Binding], errs: &mut Errs) -> Vec<usize> {
    let mut out = Vec::new();
    for req in &raw.requires {
        match bindings.iter().position(|b| &b.name == req) {
            Some(i) => out.push(i),
            None => errs.item(
                item,
                format!("requires {req:?}, which is not a variable of its let"),
            ),
        }
    }
    out
}

fn guards(
    item: &Item<'_>,
    raw: &RawRule,
    for_each: &[Pattern],
    env: &Env<'_>,
    errs: &mut Errs,
) -> Vec<(Ref, Vec<String>)> {
    let mut out = Vec::new();
    for (ptr, guard) in &raw.when {
        let allowed = match guard {
            RawGuard::Values(v) => v.clone(),
            RawGuard::Constant(name) => match list_constant(env.constants.get(name)) {
                Some(v) => v,
                None => {
                    errs.item(
                        item,
                        format!("when {ptr:?}: {name:?} is not a list constant"),
                    );
                    continue;
                }
            },
        };
        match Ref::parse(ptr) {
            Ok(r) if !r.pattern.has_wildcard() => {
                for problem in check_ref(&r, for_each, env.schema) {
                    let msg = format!("when {ptr:?}: {problem} (schema {})", env.schema.name);
                    errs.item(item, msg);
                }
                out.push((r, allowed));
            }
            Ok(_) => errs.item(item, format!("when {ptr:?} must not contain '*'")),
            Err(e) => errs.item(item, format!("when: {e}")),
        }
    }
    out
}

/// The strings of a list constant (other items are left out).
fn list_constant(v: Option<&cel::Value>) -> Option<Vec<String>> {
    let Some(cel::Value::List(items)) = v else {
        return None;
    };
    let strings = items.iter().filter_map(|i| match i {
        cel::Value::String(s) => Some(s.to_string()),
        _ => None,
    });
    Some(strings.collect())
}

/// Which built-in variables a rule's CEL reads.
#[derive(Default)]
struct Uses {
    today: bool,
    it: bool,
    index: bool,
}

fn uses(
    item: &Item<'_>,
    raw: &RawRule,
    program: &cel::Program,
    bindings: &[Binding],
    for_each: &[Pattern],
    env: &Env<'_>,
    errs: &mut Errs,
) -> Uses {
    let refs = program.references();
    let iter_vars = comprehension_variables(&raw.assert);
    for v in refs.variables() {
        let ok = bindings.iter().any(|b| b.name == v)
            || iter_vars.iter().any(|i| i == v)
            || env.constants.contains_key(v)
            || rules::BUILTIN_VARIABLES.contains(&v);
        if !ok {
            errs.item(
                item,
                format!("CEL uses unknown variable {v:?} (declare it in let, or as a constant)"),
            );
        }
        if (v == "it" || v == "index") && for_each.is_empty() {
            errs.item(item, format!("CEL uses {v:?} but the rule has no for_each"));
        }
    }
    Uses {
        today: refs.has_variable("today"),
        it: refs.has_variable("it"),
        index: refs.has_variable("index"),
    }
}

fn pointer(
    item: &Item<'_>,
    raw: &RawRule,
    for_each: &[Pattern],
    errs: &mut Errs,
) -> Option<PointerTemplate> {
    let text = match (&raw.pointer, for_each.is_empty()) {
        (Some(p), _) => p.clone(),
        (None, false) => "{each}".to_string(),
        (None, true) => {
            errs.item(
                item,
                "needs a pointer (the field a caseworker should change first)",
            );
            String::new()
        }
    };
    let p = PointerTemplate::parse(&text)
        .map_err(|e| errs.item(item, e))
        .ok()?;
    if p.from_each && for_each.is_empty() {
        errs.item(item, "pointer uses {each} but the rule has no for_each");
    }
    Some(p)
}

/// Problems of a pointer a rule reads: relative without `for_each`, or not
/// a location of the JSON Schema (for any of the `for_each` elements).
fn check_ref(r: &Ref, for_each: &[Pattern], schema: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    let relative = matches!(r.anchor, Anchor::Relative { .. });
    if relative && for_each.is_empty() {
        problems.push("a relative pointer needs for_each".to_string());
    }
    let abs: Vec<Pattern> = if for_each.is_empty() {
        r.absolute(None).into_iter().collect()
    } else {
        for_each
            .iter()
            .filter_map(|e| r.absolute(Some(e)))
            .collect()
    };
    for a in abs {
        if !schema.knows(&a) {
            problems.push(format!("unknown source pointer {}", a.render()));
        }
    }
    problems
}

/// The iteration variables of CEL macros (`list.exists(n, ...)`), which
/// `references()` reports like free variables.
fn comprehension_variables(source: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,",
        )
        .expect("static regex")
    });
    re.captures_iter(source).map(|c| c[1].to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, compiled};

    /// A rule with its lines replaced by `(from, to)` pairs; problems are at line 1.
    fn r(changes: &[(&str, &str)]) -> String {
        let mut s = "[[rule]]\nid = \"R\"\nseverity = \"error\"\nlet = { a = \"/art\" }\nassert = \"a != 'X'\"\npointer = \"/art\"\nmessage = \"{Feld}.\"\n".to_string();
        for (from, to) in changes {
            assert!(s.contains(from), "{from}");
            s = s.replace(from, to);
        }
        s
    }

    fn one(changes: &[(&str, &str)], problem: &str) {
        check(&r(changes), &[&format!("t.toml:1: rule R: {problem}")]);
    }

    #[test]
    fn rules_compile_with_bindings_guards_and_builtins() {
        let m = compiled(&r(&[
            ("let = { a = \"/art\" }", "for_each = \"/personen/*\"\nlet = { g = \"./geburtsdatum\", n = { count = \"/personen/*\" }, k = { keys = \"/personen/*\", fields = [\"id\", \"name\"] } }\nrequires = [\"g\"]\nwhen = { \"/art\" = \"arten\", \"./id\" = [\"p1\"] }"),
            ("a != 'X'", "g < today && index < n && k.exists(x, x != '') && it != null && grenze > 1"),
            ("pointer = \"/art\"\n", ""),
        ]));
        let rule = &m.rules[0];
        assert_eq!(rule.bindings.len(), 3);
        assert_eq!(rule.requires.len(), 1);
        assert_eq!(rule.when[1].1, ["MIETE", "EIGENTUM"]);
        assert!(rule.uses_today && rule.uses_it && rule.uses_index);
        assert!(rule.pointer.from_each);
    }

    #[test]
    fn severity_and_for_each() {
        one(
            &[("\"error\"", "\"fatal\"")],
            "severity \"fatal\" must be error, warning or info",
        );
        one(
            &[("let", "for_each = \"/leute/*\"\nlet")],
            "unknown source pointer \"/leute/*\" in for_each (not in schema s.json)",
        );
        one(
            &[("let", "for_each = \"leute\"\nlet")],
            "pointer \"leute\" must start with '/' (or be empty for the root)",
        );
    }

    #[test]
    fn variables_are_declared_pointers() {
        one(
            &[(
                "a = \"/art\"",
                "a = \"/art\", k = { keys = \"/personen/*\", fields = [\"a/b\"] }",
            )],
            "variable \"k\": fields must be property names",
        );
        one(
            &[("a = \"/art\"", "a = \"/art\", grenze = \"/art\"")],
            "variable \"grenze\" shadows a built-in variable or constant",
        );
        one(
            &[("\"/art\" }", "\"./art\" }")],
            "variable \"a\": a relative pointer needs for_each (schema s.json)",
        );
        one(
            &[("\"/art\" }", "\"/farbe\" }")],
            "variable \"a\": unknown source pointer /farbe (schema s.json)",
        );
        check(
            &r(&[("\"/art\" }", "\"farbe\" }")]),
            &[
                "t.toml:1: rule R: variable \"a\": pointer \"farbe\" must start with '/' (or be empty for the root)",
                "t.toml:1: rule R: CEL uses unknown variable \"a\" (declare it in let, or as a constant)",
            ],
        );
        one(
            &[("let", "requires = [\"b\"]\nlet")],
            "requires \"b\", which is not a variable of its let",
        );
    }

    #[test]
    fn guards_are_plain_pointers_with_lists() {
        one(
            &[("let", "when = { \"/art\" = \"grenze\" }\nlet")],
            "when \"/art\": \"grenze\" is not a list constant",
        );
        one(
            &[("let", "when = { \"/farbe\" = [\"X\"] }\nlet")],
            "when \"/farbe\": unknown source pointer /farbe (schema s.json)",
        );
        one(
            &[("let", "when = { \"/personen/*/id\" = [\"X\"] }\nlet")],
            "when \"/personen/*/id\" must not contain '*'",
        );
        one(
            &[("let", "when = { \"art\" = [\"X\"] }\nlet")],
            "when: pointer \"art\" must start with '/' (or be empty for the root)",
        );
    }

    #[test]
    fn cel_compiles_and_uses_only_declared_names() {
        check(
            &r(&[("a != 'X'", "a ==")]),
            &["t.toml:1: rule R: CEL expression does not compile: …"],
        );
        one(
            &[("a != 'X'", "b == 1")],
            "CEL uses unknown variable \"b\" (declare it in let, or as a constant)",
        );
        one(
            &[("a != 'X'", "it == 1")],
            "CEL uses \"it\" but the rule has no for_each",
        );
    }

    #[test]
    fn pointer_message_and_nachweis() {
        one(
            &[("pointer = \"/art\"\n", "")],
            "needs a pointer (the field a caseworker should change first)",
        );
        one(
            &[("\"/art\"\nmessage", "\"{each}/art\"\nmessage")],
            "pointer uses {each} but the rule has no for_each",
        );
        one(
            &[("\"/art\"\nmessage", "\"/personen/*\"\nmessage")],
            "pointer \"/personen/*\" must not contain '*'",
        );
        one(&[("{Feld}.", "{Wert}.")], "message \"{Wert}.\": unknown placeholder {Wert} (known: {Feld}, {feld}, {detail}, {nachweis})");
        one(
            &[("message", "nachweis = \"MIETVERTRAG\"\nmessage")],
            "nachweis is only for severity info (a document owed)",
        );
    }

    #[test]
    fn detail_uses_only_the_rules_variables() {
        let m = compiled(&r(&[("message", "detail = \"'Art ' + a\"\nmessage")]));
        assert!(m.rules[0].detail.is_some());
        one(
            &[("message", "detail = \"'Art ' + b\"\nmessage")],
            "detail uses [\"b\"]; it may use only the rule's let variables and constants",
        );
        one(&[("message", "detail = \"a +\"\nmessage")], "detail: …");
    }
}
