//! `[[check]]`: per-field checks of a kind implemented in Rust
//! (`crate::checks`), with the fields they apply to (checked against the
//! schema), severity, message template and the kind's own options.

use super::ids::Ids;
use super::Schema;
use crate::checks::{Check, CheckKind};
use crate::finding::Severity;
use crate::mapping::error::{Errs, Item};
use crate::mapping::labels::Template;
use crate::mapping::load::Parsed;
use crate::mapping::raw::RawCheck;
use crate::pointer::Pattern;

/// The checks of all parts.
pub(super) fn compile(
    parts: &[&Parsed],
    schema: &Schema,
    ids: &mut Ids,
    errs: &mut Errs,
) -> Vec<Check> {
    let mut out = Vec::new();
    for part in parts {
        for c in &part.file.check {
            let raw = c.get_ref();
            ids.claim(*part, c.span(), &raw.id, errs);
            let item = Item {
                src: *part,
                span: c.span(),
                what: format!("check {}", raw.id),
            };
            if let Some(check) = check(&item, raw, schema, errs) {
                out.push(check);
            }
        }
    }
    out
}

fn check(item: &Item<'_>, raw: &RawCheck, schema: &Schema, errs: &mut Errs) -> Option<Check> {
    let severity = severity(&raw.severity)
        .map_err(|e| errs.item(item, e))
        .ok()?;
    let fields = fields(item, &raw.fields, schema, errs);
    let kind = raw.kind.clone().and_then(CheckKind::compile);
    let kind = kind.map_err(|e| errs.item(item, e)).ok()?;
    for p in kind.reads() {
        if !schema.knows(&p) {
            let msg = format!(
                "unknown source pointer {:?} (not in schema {})",
                p.render(),
                schema.name
            );
            errs.item(item, msg);
        }
    }
    let message = Template::parse(&raw.message)
        .map_err(|e| errs.item(item, e))
        .ok()?;
    Some(Check {
        id: raw.id.clone(),
        severity,
        fields,
        kind,
        message,
        nachweis: raw.nachweis.clone(),
    })
}

/// `error`, `warning` or `info`.
pub(super) fn severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("severity {s:?} must be error, warning or info"))
}

fn fields(item: &Item<'_>, raw: &[String], schema: &Schema, errs: &mut Errs) -> Vec<Pattern> {
    let mut out = Vec::new();
    for f in raw {
        match Pattern::parse(f) {
            Ok(p) if schema.knows(&p) => out.push(p),
            Ok(_) => errs.item(
                item,
                format!(
                    "unknown source pointer {f:?} (not in schema {})",
                    schema.name
                ),
            ),
            Err(e) => errs.item(item, e),
        }
    }
    if out.is_empty() {
        errs.item(item, "names no field");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, compiled};
    use crate::checks::CheckKind;

    /// A `[[check]]` of `kind` with extra lines; problems are at line 1.
    fn c(kind: &str, extra: &str) -> String {
        format!(
            "[[check]]\nid = \"C\"\nkind = \"{kind}\"\nfields = [\"/art\"]\nseverity = \"error\"\nmessage = \"{{Feld}}.\"\n{extra}"
        )
    }

    #[test]
    fn kinds_compile_with_their_options() {
        let m = compiled(&c(
            "pattern",
            "pattern = \"[0-9]{5}\"\nhint = \"fünf Ziffern\"",
        ));
        assert!(matches!(m.checks[0].kind, CheckKind::Pattern { .. }));
        let m = compiled(&c("ref", "in = [\"/personen/*/id\"]"));
        assert!(matches!(&m.checks[0].kind, CheckKind::Ref { within } if within.len() == 1));
        let m = compiled(&c("date", "min = \"today-120y\""));
        assert!(m.checks[0].kind.needs_today());
        let m = compiled(&c("equals", "value = true"));
        assert!(
            matches!(&m.checks[0].kind, CheckKind::Equals { value } if value == &serde_json::json!(true))
        );
    }

    #[test]
    fn unknown_kinds_and_wrong_options_are_named() {
        check(&c("isbn", ""), &["t.toml:1: check C: unknown check kind 'isbn' (known: required, pattern, iban, steuer_id, rvnr, rvnr_geburtsdatum, kvnr, amount, date, datetime, equals, ref, unique)"]);
        check(
            &c("iban", "pattern = \"x\""),
            &["t.toml:1: check C: check kind 'iban' has no option 'pattern' (its options: none)"],
        );
        check(&c("date", "hint = \"x\""), &["t.toml:1: check C: check kind 'date' has no option 'hint' (its options: 'min', 'max')"]);
        check(
            &c("pattern", "pattern = \"x\""),
            &["t.toml:1: check C: check kind 'pattern' needs option 'hint'"],
        );
        check(&c("rvnr_geburtsdatum", "compare = 5"), &["t.toml:1: check C: check kind 'rvnr_geburtsdatum': invalid type: integer `5`, expected a string"]);
        let no_kind = c("iban", "").replace("kind = \"iban\"\n", "");
        check(&no_kind, &["t.toml:1: check C: needs a kind (known: required, pattern, iban, steuer_id, rvnr, rvnr_geburtsdatum, kvnr, amount, date, datetime, equals, ref, unique)"]);
    }

    #[test]
    fn a_missing_common_key_refuses_the_file() {
        let no_message = c("iban", "").replace("message = \"{Feld}.\"\n", "");
        check(
            &no_message,
            &[
                "t.toml:1: missing field `message`",
                "m.toml:7: include \"t.toml\" not found in ",
            ],
        );
    }

    #[test]
    fn options_are_compiled() {
        check(
            &c("pattern", "pattern = \"[0-9\"\nhint = \"x\""),
            &["t.toml:1: check C: pattern \"[0-9\" is not a valid regular expression: …"],
        );
        check(&c("rvnr_geburtsdatum", "compare = \"geburtsdatum\""), &["t.toml:1: check C: pointer \"geburtsdatum\" must start with '/' (or be empty for the root)"]);
        check(&c("date", "max = \"gestern\""), &["t.toml:1: check C: relative date \"gestern\" must start with 'today' or 'first_of_month'"]);
        check(&c("ref", "in = [\"personen\"]"), &["t.toml:1: check C: pointer \"personen\" must start with '/' (or be empty for the root)"]);
        check(
            &c("ref", "in = [\"/leute/*/id\"]"),
            &["t.toml:1: check C: unknown source pointer \"/leute/*/id\" (not in schema s.json)"],
        );
    }

    #[test]
    fn severity_fields_and_message_are_checked() {
        check(
            &c("iban", "").replace("\"error\"", "\"fatal\""),
            &["t.toml:1: check C: severity \"fatal\" must be error, warning or info"],
        );
        check(
            &c("iban", "").replace("[\"/art\"]", "[\"/farbe\", \"art\"]"),
            &[
                "t.toml:1: check C: unknown source pointer \"/farbe\" (not in schema s.json)",
                "t.toml:1: check C: pointer \"art\" must start with '/' (or be empty for the root)",
                "t.toml:1: check C: names no field",
            ],
        );
        check(&c("iban", "").replace("{Feld}.", "{Wert}."), &["t.toml:1: check C: message \"{Wert}.\": unknown placeholder {Wert} (known: {Feld}, {feld}, {detail}, {nachweis})"]);
    }
}
