//! `[[group]]`: record elements, one per match of a source pattern, with
//! fields mapped from the input (pointers checked against the schema,
//! target element paths, transforms, code lists); `append` extends an
//! earlier group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::Schema;
use crate::mapping::error::{Errs, Item, Source};
use crate::mapping::load::Parsed;
use crate::mapping::raw::{RawField, RawGroup};
use crate::pointer::{Pattern, Ref};
use crate::record::{Field, Group, Transform};

type Codelists = HashMap<String, Arc<BTreeMap<String, String>>>;

/// What the fields of a group are compiled with.
struct Ctx<'a> {
    schema: &'a Schema,
    codelists: &'a Codelists,
    /// Absolute patterns of every mapped field (for coverage).
    mapped: Vec<Pattern>,
}

/// The groups of all parts, and the absolute patterns of their fields.
pub(super) fn compile(
    parts: &[&Parsed],
    schema: &Schema,
    codelists: &Codelists,
    errs: &mut Errs,
) -> (Vec<Group>, Vec<Pattern>) {
    let mut ctx = Ctx {
        schema,
        codelists,
        mapped: Vec::new(),
    };
    let mut groups: Vec<Group> = Vec::new();
    for part in parts {
        for g in &part.file.group {
            let raw = g.get_ref();
            let item = Item {
                src: *part,
                span: g.span(),
                what: format!("group {}", raw.element),
            };
            group(&item, raw, &mut groups, &mut ctx, errs);
        }
    }
    (groups, ctx.mapped)
}

fn group(
    item: &Item<'_>,
    raw: &RawGroup,
    groups: &mut Vec<Group>,
    ctx: &mut Ctx<'_>,
    errs: &mut Errs,
) {
    let (appended_to, mut sources) = if raw.append {
        if raw.source.is_some() || raw.container.is_some() {
            errs.item(
                item,
                "an append group takes its source and container from the group it extends",
            );
        }
        let Some(i) = groups.iter().position(|g| g.element == raw.element) else {
            errs.item(item, "append = true, but no earlier group has this element");
            return;
        };
        (Some(i), groups[i].sources.clone())
    } else {
        if raw.source.is_none() {
            errs.item(item, "needs a source");
        }
        (None, Vec::new())
    };
    sources.extend(source_patterns(item, raw, ctx.schema, errs));
    let fields = fields(item.src, raw, &sources, ctx, errs);
    if !valid_xml_name(&raw.element) || raw.container.as_deref().is_some_and(|c| !valid_xml_name(c))
    {
        let msg = format!(
            "group {:?}: element and container must be XML names",
            raw.element
        );
        errs.at(item.src, item.span.clone(), msg);
        return;
    }
    match appended_to {
        Some(i) => groups[i].fields.extend(fields),
        None => groups.push(Group {
            element: raw.element.clone(),
            container: raw.container.clone(),
            sources,
            fields,
        }),
    }
}

fn source_patterns(
    item: &Item<'_>,
    raw: &RawGroup,
    schema: &Schema,
    errs: &mut Errs,
) -> Vec<Pattern> {
    let mut out = Vec::new();
    for s in raw.source.as_ref().map(|s| s.to_vec()).unwrap_or_default() {
        match Pattern::parse(&s) {
            Ok(p) if schema.knows(&p) => out.push(p),
            Ok(_) => errs.item(
                item,
                format!("source {s:?} is not a field of schema {}", schema.name),
            ),
            Err(e) => errs.item(item, e),
        }
    }
    out
}

fn fields(
    part: &dyn Source,
    raw: &RawGroup,
    sources: &[Pattern],
    ctx: &mut Ctx<'_>,
    errs: &mut Errs,
) -> Vec<Field> {
    let mut out = Vec::new();
    let mut together = Together::default();
    for f in &raw.fields {
        let rf = f.get_ref();
        let item = Item {
            src: part,
            span: f.span(),
            what: format!("field {:?}", rf.from),
        };
        if let Some(field) = field(&item, rf, sources, &mut together, ctx, errs) {
            out.push(field);
        }
    }
    out
}

fn field(
    item: &Item<'_>,
    rf: &RawField,
    sources: &[Pattern],
    together: &mut Together,
    ctx: &mut Ctx<'_>,
    errs: &mut Errs,
) -> Option<Field> {
    let from = from(item, rf, sources, ctx, errs)?;
    let to = target(item, rf, together, errs)?;
    let transform = match rf.transform.as_deref().map(Transform::parse).transpose() {
        Ok(t) => t.unwrap_or(Transform::Text),
        Err(e) => {
            errs.item(item, e);
            return None;
        }
    };
    let codelist = match &rf.codelist {
        None => None,
        Some(name) => match ctx.codelists.get(name) {
            Some(c) => Some(c.clone()),
            None => {
                errs.item(item, format!("unknown codelist {name:?}"));
                return None;
            }
        },
    };
    Some(Field {
        from,
        to,
        transform,
        codelist,
        default: rf.default.clone(),
    })
}

/// The source of a field (a bare name is relative to the group's element),
/// checked against the schema for every source of the group.
fn from(
    item: &Item<'_>,
    rf: &RawField,
    sources: &[Pattern],
    ctx: &mut Ctx<'_>,
    errs: &mut Errs,
) -> Option<Ref> {
    let text = if rf.from.starts_with('/') || rf.from.starts_with('.') {
        rf.from.clone()
    } else {
        format!("./{}", rf.from)
    };
    let from = Ref::parse(&text).map_err(|e| errs.item(item, e)).ok()?;
    for abs in sources.iter().filter_map(|s| from.absolute(Some(s))) {
        if ctx.schema.knows(&abs) {
            ctx.mapped.push(abs);
        } else {
            let schema = &ctx.schema.name;
            errs.item(
                item,
                format!("{} is not a field of schema {schema}", abs.render()),
            );
        }
    }
    Some(from)
}

/// The record element path of a field, `Name/Name`.
fn target(
    item: &Item<'_>,
    rf: &RawField,
    together: &mut Together,
    errs: &mut Errs,
) -> Option<Vec<String>> {
    let to: Vec<String> = rf.to.split('/').map(str::to_string).collect();
    if to.iter().any(|s| !valid_xml_name(s)) {
        let msg = format!("target {:?} is not a valid element path (Name/Name)", rf.to);
        errs.item(item, msg);
        return None;
    }
    if let Some(parent) = together.split_off(&to[..to.len() - 1]) {
        let msg = format!("fields under {parent} must stand together in the group");
        errs.item(item, msg);
    }
    Some(to)
}

/// Fields sharing a parent element must be contiguous: tracks the parents
/// already closed.
#[derive(Default)]
struct Together {
    closed: BTreeSet<Vec<String>>,
    last: Vec<String>,
}

impl Together {
    /// Moves to the next field's parents; the first parent path that was
    /// closed before (rendered `A/B`), if any.
    fn split_off(&mut self, parents: &[String]) -> Option<String> {
        if parents == self.last.as_slice() {
            return None;
        }
        for depth in 1..=self.last.len() {
            let prefix = self.last[..depth].to_vec();
            if !parents.starts_with(&prefix) {
                self.closed.insert(prefix);
            }
        }
        self.last = parents.to_vec();
        (1..=parents.len())
            .find(|d| self.closed.contains(&parents[..*d]))
            .map(|d| parents[..d].join("/"))
    }
}

fn valid_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, compiled};

    /// A group of persons with the given field lines.
    fn g(fields: &str) -> String {
        format!(
            "[[group]]\nelement = \"Person\"\nsource = \"/personen/*\"\nfields = [\n{fields}]\n"
        )
    }

    #[test]
    fn groups_map_fields_and_append_extends() {
        let m = compiled(&format!(
            "{}[[group]]\nelement = \"Person\"\nappend = true\nfields = [{{ from = \"id\", to = \"Id\" }}]\n",
            g("{ from = \"name\", to = \"Name/Familienname\", transform = \"upper\" },\n{ from = \"/art\", to = \"Art\", transform = \"code\", codelist = \"art\" },\n")
        ));
        assert_eq!(m.groups.len(), 1);
        assert_eq!(m.groups[0].fields.len(), 3);
        let mapped: Vec<String> = m.mapped_fields.iter().map(|p| p.render()).collect();
        assert_eq!(mapped, ["/personen/*/name", "/art", "/personen/*/id"]);
    }

    #[test]
    fn sources_are_fields_of_the_schema() {
        check(
            "[[group]]\nelement = \"P\"\nfields = []\n",
            &["t.toml:1: group P: needs a source"],
        );
        check(
            "[[group]]\nelement = \"P\"\nsource = [\"/leute/*\", \"leute\"]\nfields = []\n",
            &[
                "t.toml:1: group P: source \"/leute/*\" is not a field of schema s.json",
                "t.toml:1: group P: pointer \"leute\" must start with '/' (or be empty for the root)",
            ],
        );
        check(
            "[[group]]\nelement = \"1P\"\ncontainer = \"Ps\"\nsource = \"/art\"\nfields = []\n",
            &["t.toml:1: group \"1P\": element and container must be XML names"],
        );
    }

    #[test]
    fn append_needs_an_earlier_group_and_nothing_else() {
        check(
            "[[group]]\nelement = \"P\"\nappend = true\nfields = []\n",
            &["t.toml:1: group P: append = true, but no earlier group has this element"],
        );
        check(
            &format!("{}[[group]]\nelement = \"Person\"\nappend = true\ncontainer = \"X\"\nfields = []\n", g("")),
            &["t.toml:6: group Person: an append group takes its source and container from the group it extends"],
        );
    }

    #[test]
    fn fields_are_checked_one_by_one() {
        check(
            &g(concat!(
                "{ from = \".x\", to = \"X\" },\n",
                "{ from = \"farbe\", to = \"Farbe\" },\n",
                "{ from = \"name\", to = \"1Name\" },\n",
                "{ from = \"name\", to = \"Name\", transform = \"rot\" },\n",
                "{ from = \"name\", to = \"Name\", codelist = \"farben\" },\n",
            )),
            &[
                "t.toml:5: field \".x\": pointer \".x\" must start with '/' (or be empty for the root)",
                "t.toml:6: field \"farbe\": /personen/*/farbe is not a field of schema s.json",
                "t.toml:7: field \"name\": target \"1Name\" is not a valid element path (Name/Name)",
                "t.toml:8: field \"name\": unknown transform 'rot' (known: text, upper, iban, date, datetime, amount, number, integer, bool, code)",
                "t.toml:9: field \"name\": unknown codelist \"farben\"",
            ],
        );
    }

    #[test]
    fn fields_under_one_element_stand_together() {
        check(
            &g(concat!(
                "{ from = \"name\", to = \"A/Name\" },\n",
                "{ from = \"id\", to = \"Id\" },\n",
                "{ from = \"rvnr\", to = \"A/Rvnr\" },\n",
            )),
            &["t.toml:7: field \"rvnr\": fields under A must stand together in the group"],
        );
    }
}
