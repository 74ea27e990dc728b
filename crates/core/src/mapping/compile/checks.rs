//! `[[check]]`: per-field checks of a kind implemented in Rust
//! (`crate::checks`), with the fields they apply to (checked against the
//! schema), severity, message template and the kind's own options.

use serde_json::Value;

use super::ids::Ids;
use super::Schema;
use crate::checks::{Check, CheckKind, KindOptions};
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
    let kind = kind(raw).map_err(|e| errs.item(item, e)).ok()?;
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

fn kind(raw: &RawCheck) -> Result<CheckKind, String> {
    let value = raw
        .value
        .as_ref()
        .map(|v| serde_json::to_value(v).unwrap_or(Value::Null));
    CheckKind::compile(
        &raw.kind,
        KindOptions {
            pattern: raw.pattern.as_deref(),
            hint: raw.hint.as_deref(),
            min: raw.min.as_deref(),
            max: raw.max.as_deref(),
            compare: raw.compare.as_deref(),
            within: raw.within.as_deref(),
            value,
        },
    )
}
