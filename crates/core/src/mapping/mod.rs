//! Mapping files: loading, compiling and selecting by form id + version.
//!
//! A mapping is a TOML file in `mappings/` with a `[mapping]` header; it may
//! include fragment files (shared groups, checks, rules, labels). Everything
//! is compiled once at load: JSON Schema, regexes, CEL programs, pointers
//! (checked against the schema), message templates. Any problem refuses the
//! whole set with file, line and what is wrong; a running set stays in force.

pub mod labels;
pub mod raw;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::checks::{Check, CheckKind, KindOptions};
use crate::finding::Severity;
use crate::pointer::{Pattern, Ref, Seg};
use crate::record::{Field, Group, Transform};
use crate::rules::{self, Binding, BindingKind, PointerTemplate, Rule, RuleEnv};
use labels::{Labels, Template};
use raw::{RawBinding, RawFile};

/// One problem in the mapping files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// All problems found while loading; the set is refused if there is any.
#[derive(Debug, Clone)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

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
}

impl Mapping {
    /// Properties the JSON Schema defines that no label names, as pointer
    /// patterns; findings about them would say "die Angabe „x“".
    pub fn unlabeled_fields(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![(Pattern { segs: vec![] }, &*self.schema_json)];
        let root = &*self.schema_json;
        while let Some((pat, node)) = stack.pop() {
            if pat.segs.len() > 8 {
                continue;
            }
            for n in resolve_schema(root, node) {
                if let Some(props) = n.get("properties").and_then(Value::as_object) {
                    for (k, child) in props {
                        let mut p = pat.clone();
                        p.segs.push(Seg::Key(k.clone()));
                        let concrete: Vec<crate::pointer::Step<'_>> = p
                            .segs
                            .iter()
                            .map(|s| match s {
                                Seg::Key(k) => crate::pointer::Step::Key(k.as_str()),
                                Seg::Any => crate::pointer::Step::Index(0),
                            })
                            .collect();
                        if self.labels.name(&concrete).contains('„') {
                            out.insert(p.render());
                        }
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
        out.into_iter().collect()
    }
}

fn resolve_schema<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    let mut out = vec![node];
    if let Some(name) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        if let Some(t) = root.get("$defs").and_then(|d| d.get(name)) {
            out.extend(resolve_schema(root, t));
        }
    }
    if let Some(all) = node.get("allOf").and_then(Value::as_array) {
        for s in all {
            out.extend(resolve_schema(root, s));
        }
    }
    out
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

    /// All mappings, sorted by name.
    pub fn all(&self) -> Vec<&Arc<Mapping>> {
        let mut v: Vec<_> = self.by_form.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

struct Parsed {
    path: PathBuf,
    source: String,
    file: RawFile,
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

struct Errs {
    list: Vec<LoadError>,
}

impl Errs {
    fn at(&mut self, p: &Parsed, span: std::ops::Range<usize>, message: impl Into<String>) {
        self.list.push(LoadError {
            file: p.path.clone(),
            line: (span.end > 0).then(|| line_of(&p.source, span.start)),
            message: message.into(),
        });
    }
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect_toml(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads and compiles every mapping under `mappings_dir`, with schemas from
/// `schemas_dir`.
pub fn load(mappings_dir: &Path, schemas_dir: &Path) -> Result<MappingSet, LoadErrors> {
    let mut errs = Errs { list: vec![] };
    let mut paths = Vec::new();
    if let Err(e) = collect_toml(mappings_dir, &mut paths) {
        return Err(LoadErrors(vec![LoadError {
            file: mappings_dir.to_path_buf(),
            line: None,
            message: format!("cannot read the mappings folder: {e}"),
        }]));
    }
    let mut parsed: Vec<Parsed> = Vec::new();
    for path in paths {
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                errs.list.push(LoadError {
                    file: path,
                    line: None,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        match toml::from_str::<RawFile>(&source) {
            Ok(file) => parsed.push(Parsed { path, source, file }),
            Err(e) => {
                let line = e.span().map(|s| line_of(&source, s.start));
                errs.list.push(LoadError {
                    file: path,
                    line,
                    message: e.message().trim().to_string(),
                });
            }
        }
    }
    let index: HashMap<PathBuf, usize> = parsed
        .iter()
        .enumerate()
        .map(|(i, p)| (p.path.clone(), i))
        .collect();
    let mut set = MappingSet::default();
    let mut included: BTreeSet<usize> = BTreeSet::new();
    let mut schema_cache: HashMap<String, Option<Arc<Value>>> = HashMap::new();
    for p in &parsed {
        let Some(header) = &p.file.mapping else {
            continue;
        };
        let mut parts = Vec::new();
        for inc in &header.get_ref().include {
            let path = mappings_dir.join(inc.get_ref());
            match index.get(&path) {
                Some(&j) if parsed[j].file.mapping.is_some() => errs.at(
                    p,
                    inc.span(),
                    format!("include {:?} is itself a mapping; only fragments (files without [mapping]) can be included", inc.get_ref()),
                ),
                Some(&j) => {
                    included.insert(j);
                    parts.push(&parsed[j]);
                }
                None => errs.at(
                    p,
                    inc.span(),
                    format!("include {:?} not found in {}", inc.get_ref(), mappings_dir.display()),
                ),
            }
        }
        parts.push(p);
        if let Some(m) = compile(p, &parts, schemas_dir, &mut schema_cache, &mut errs) {
            let key = (m.form.clone(), m.version.clone());
            if let Some(other) = set.by_form.get(&key) {
                errs.at(
                    p,
                    header.span(),
                    format!(
                        "a mapping for form {} version {} exists already ({})",
                        m.form,
                        m.version,
                        other.file.display()
                    ),
                );
            } else {
                set.by_form.insert(key, Arc::new(m));
            }
        }
    }
    for (i, p) in parsed.iter().enumerate() {
        if p.file.mapping.is_none() && !included.contains(&i) {
            set.unused_fragments.push(p.path.clone());
        }
    }
    if set.by_form.is_empty() && errs.list.is_empty() {
        errs.list.push(LoadError {
            file: mappings_dir.to_path_buf(),
            line: None,
            message: "no mapping found (a mapping is a .toml file with a [mapping] section)".into(),
        });
    }
    let mut seen = BTreeSet::new();
    errs.list
        .retain(|e| seen.insert((e.file.clone(), e.line, e.message.clone())));
    if errs.list.is_empty() {
        Ok(set)
    } else {
        Err(LoadErrors(errs.list))
    }
}

fn severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("severity {s:?} must be error, warning or info"))
}

/// Does the JSON Schema define a location matching this pattern?
pub fn schema_knows(root: &Value, pattern: &Pattern) -> bool {
    use resolve_schema as resolve;
    fn walk(root: &Value, node: &Value, segs: &[Seg]) -> bool {
        let Some((first, rest)) = segs.split_first() else {
            return true;
        };
        resolve(root, node).into_iter().any(|n| match first {
            Seg::Any => n.get("items").is_some_and(|i| walk(root, i, rest)),
            Seg::Key(k) => {
                n.get("properties")
                    .and_then(|p| p.get(k.as_str()))
                    .is_some_and(|c| walk(root, c, rest))
                    || (k.parse::<usize>().is_ok()
                        && n.get("items").is_some_and(|i| walk(root, i, rest)))
            }
        })
    }
    walk(root, root, &pattern.segs)
}

fn compile(
    main: &Parsed,
    parts: &[&Parsed],
    schemas_dir: &Path,
    schema_cache: &mut HashMap<String, Option<Arc<Value>>>,
    errs: &mut Errs,
) -> Option<Mapping> {
    let before = errs.list.len();
    let header_sp = main.file.mapping.as_ref().expect("mapping header");
    let header = header_sp.get_ref();
    let hspan = header_sp.span();

    // Schema
    let schema_name = header.schema.get_ref().clone();
    let schema_json = schema_cache
        .entry(schema_name.clone())
        .or_insert_with(|| {
            let path = schemas_dir.join(&schema_name);
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .map(Arc::new)
        })
        .clone();
    let Some(schema_json) = schema_json else {
        errs.at(
            main,
            header.schema.span(),
            format!(
                "schema {:?} not found or not valid JSON in {}",
                schema_name,
                schemas_dir.display()
            ),
        );
        return None;
    };
    let validator = match jsonschema::draft202012::new(&schema_json) {
        Ok(v) => v,
        Err(e) => {
            errs.at(
                main,
                header.schema.span(),
                format!("schema {schema_name:?} is not a valid JSON Schema: {e}"),
            );
            return None;
        }
    };
    let known = |p: &Pattern| schema_knows(&schema_json, p);

    // Labels, codelists, constants, schema messages (later files override earlier ones).
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut fields_l: BTreeMap<String, String> = BTreeMap::new();
    let mut codelists: HashMap<String, Arc<BTreeMap<String, String>>> = HashMap::new();
    let mut constants: BTreeMap<String, cel::Value> = BTreeMap::new();
    let mut schema_messages: HashMap<String, SchemaMessage> = HashMap::new();
    let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
    let mut claim_id = |p: &Parsed, span: std::ops::Range<usize>, id: &str, errs: &mut Errs| {
        let origin = Origin {
            file: p.path.clone(),
            line: line_of(&p.source, span.start),
        };
        if id.trim().is_empty() || id.contains(char::is_whitespace) {
            errs.at(
                p,
                span,
                format!("rule id {id:?} must be non-empty and without spaces"),
            );
            return;
        }
        if let Some(prev) = origins.get(id) {
            errs.at(
                p,
                span,
                format!(
                    "duplicate rule id {id:?} (first defined at {}:{})",
                    prev.file.display(),
                    prev.line
                ),
            );
        } else {
            origins.insert(id.to_string(), origin);
        }
    };
    for part in parts {
        let f = &part.file;
        for (k, v) in &f.labels.owners {
            if let Err(e) = Pattern::parse(k) {
                errs.at(part, v.span(), format!("[labels.owners] {e}"));
            }
            owners.insert(k.clone(), v.get_ref().clone());
        }
        for (k, v) in &f.labels.fields {
            if k.starts_with('/') {
                if let Err(e) = Pattern::parse(k) {
                    errs.at(part, v.span(), format!("[labels.fields] {e}"));
                }
            }
            fields_l.insert(k.clone(), v.get_ref().clone());
        }
        for (k, v) in &f.codelists {
            codelists.insert(k.clone(), Arc::new(v.get_ref().clone()));
        }
        for (k, v) in &f.constants {
            if rules::BUILTIN_VARIABLES.contains(&k.as_str()) {
                errs.at(
                    part,
                    v.span(),
                    format!("constant {k:?} shadows a built-in variable"),
                );
            }
            match rules::toml_to_cel(v.get_ref()) {
                Ok(c) => {
                    constants.insert(k.clone(), c);
                }
                Err(e) => errs.at(part, v.span(), format!("constant {k:?}: {e}")),
            }
        }
        for (k, v) in &f.schema_messages {
            if !SCHEMA_MESSAGE_KINDS.contains(&k.as_str()) {
                errs.at(
                    part,
                    v.span(),
                    format!(
                        "unknown schema message kind {k:?} (known: {})",
                        SCHEMA_MESSAGE_KINDS.join(", ")
                    ),
                );
                continue;
            }
            claim_id(part, v.span(), &v.get_ref().rule, errs);
            match Template::parse(&v.get_ref().message) {
                Ok(t) => {
                    schema_messages.insert(
                        k.clone(),
                        SchemaMessage {
                            rule: v.get_ref().rule.clone(),
                            message: t,
                        },
                    );
                }
                Err(e) => errs.at(part, v.span(), e),
            }
        }
    }
    for kind in SCHEMA_MESSAGE_KINDS {
        if !schema_messages.contains_key(*kind) {
            errs.at(main, hspan.clone(), format!("missing [schema_messages.{kind}] (rule id and German message for this kind of schema violation)"));
        }
    }
    let labels = Labels::new(
        owners
            .iter()
            .filter_map(|(k, v)| Pattern::parse(k).ok().map(|p| (p, v.clone())))
            .collect(),
        fields_l
            .iter()
            .filter(|(k, _)| k.starts_with('/'))
            .filter_map(|(k, v)| Pattern::parse(k).ok().map(|p| (p, v.clone())))
            .collect(),
        fields_l
            .iter()
            .filter(|(k, _)| !k.starts_with('/'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    let constant_list: Vec<(String, cel::Value)> = constants
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rule_env = match RuleEnv::new(&constant_list) {
        Ok(e) => e,
        Err(e) => {
            errs.at(main, hspan.clone(), format!("rule environment: {e}"));
            return None;
        }
    };

    let today = match Ref::parse(header.today.get_ref()) {
        Ok(r) => r,
        Err(e) => {
            errs.at(main, header.today.span(), e);
            return None;
        }
    };

    // Groups
    let mut groups = Vec::new();
    let mut mapped_fields = Vec::new();
    for part in parts {
        for g in &part.file.group {
            let span = g.span();
            let raw = g.get_ref();
            let mut sources = Vec::new();
            let appended_to = if raw.append {
                if raw.source.is_some() || raw.container.is_some() {
                    errs.at(part, span.clone(), format!("group {}: an append group takes its source and container from the group it extends", raw.element));
                }
                match groups.iter().position(|g: &Group| g.element == raw.element) {
                    Some(i) => {
                        sources = groups[i].sources.clone();
                        Some(i)
                    }
                    None => {
                        errs.at(
                            part,
                            span.clone(),
                            format!(
                                "group {}: append = true, but no earlier group has this element",
                                raw.element
                            ),
                        );
                        continue;
                    }
                }
            } else {
                if raw.source.is_none() {
                    errs.at(
                        part,
                        span.clone(),
                        format!("group {}: needs a source", raw.element),
                    );
                }
                None
            };
            for s in raw.source.as_ref().map(|s| s.to_vec()).unwrap_or_default() {
                match Pattern::parse(&s) {
                    Ok(p) if known(&p) => sources.push(p),
                    Ok(_) => errs.at(
                        part,
                        span.clone(),
                        format!(
                            "group {}: source {s:?} is not a field of schema {schema_name}",
                            raw.element
                        ),
                    ),
                    Err(e) => errs.at(part, span.clone(), format!("group {}: {e}", raw.element)),
                }
            }
            let mut fields = Vec::new();
            let mut closed_parents: BTreeSet<Vec<String>> = BTreeSet::new();
            let mut last_parents: Vec<String> = Vec::new();
            for f in &raw.fields {
                let fs = f.span();
                let rf = f.get_ref();
                let from_text = if rf.from.starts_with('/') || rf.from.starts_with('.') {
                    rf.from.clone()
                } else {
                    format!("./{}", rf.from)
                };
                let from = match Ref::parse(&from_text) {
                    Ok(r) => r,
                    Err(e) => {
                        errs.at(part, fs, format!("field {:?}: {e}", rf.from));
                        continue;
                    }
                };
                for s in &sources {
                    if let Some(abs) = from.absolute(Some(s)) {
                        if !known(&abs) {
                            errs.at(
                                part,
                                fs.clone(),
                                format!(
                                    "field {:?}: {} is not a field of schema {schema_name}",
                                    rf.from,
                                    abs.render()
                                ),
                            );
                        } else {
                            mapped_fields.push(abs);
                        }
                    }
                }
                let to: Vec<String> = rf.to.split('/').map(str::to_string).collect();
                if to.iter().any(|s| !valid_xml_name(s)) {
                    errs.at(
                        part,
                        fs.clone(),
                        format!(
                            "field {:?}: target {:?} is not a valid element path (Name/Name)",
                            rf.from, rf.to
                        ),
                    );
                    continue;
                }
                // Fields sharing a parent element must be contiguous.
                let parents = to[..to.len() - 1].to_vec();
                if parents != last_parents {
                    for depth in 1..=last_parents.len() {
                        let prefix = last_parents[..depth].to_vec();
                        if !parents.starts_with(&prefix) {
                            closed_parents.insert(prefix);
                        }
                    }
                    for depth in 1..=parents.len() {
                        if closed_parents.contains(&parents[..depth]) {
                            errs.at(
                                part,
                                fs.clone(),
                                format!(
                                    "field {:?}: fields under {} must stand together in the group",
                                    rf.from,
                                    parents[..depth].join("/")
                                ),
                            );
                            break;
                        }
                    }
                    last_parents = parents;
                }
                let transform = match rf.transform.as_deref().map(Transform::parse).transpose() {
                    Ok(t) => t.unwrap_or(Transform::Text),
                    Err(e) => {
                        errs.at(part, fs, format!("field {:?}: {e}", rf.from));
                        continue;
                    }
                };
                let codelist = match &rf.codelist {
                    Some(name) => match codelists.get(name) {
                        Some(c) => Some(c.clone()),
                        None => {
                            errs.at(
                                part,
                                fs,
                                format!("field {:?}: unknown codelist {name:?}", rf.from),
                            );
                            continue;
                        }
                    },
                    None => None,
                };
                fields.push(Field {
                    from,
                    to,
                    transform,
                    codelist,
                    default: rf.default.clone(),
                });
            }
            if !valid_xml_name(&raw.element)
                || raw.container.as_deref().is_some_and(|c| !valid_xml_name(c))
            {
                errs.at(
                    part,
                    span,
                    format!(
                        "group {:?}: element and container must be XML names",
                        raw.element
                    ),
                );
                continue;
            }
            if let Some(i) = appended_to {
                groups[i].fields.extend(fields);
                continue;
            }
            groups.push(Group {
                element: raw.element.clone(),
                container: raw.container.clone(),
                sources,
                fields,
            });
        }
    }

    // Checks
    let mut checks = Vec::new();
    for part in parts {
        for c in &part.file.check {
            let span = c.span();
            let raw = c.get_ref();
            claim_id(part, span.clone(), &raw.id, errs);
            let sev = match severity(&raw.severity) {
                Ok(s) => s,
                Err(e) => {
                    errs.at(part, span, format!("check {}: {e}", raw.id));
                    continue;
                }
            };
            let mut fields = Vec::new();
            for f in &raw.fields {
                match Pattern::parse(f) {
                    Ok(p) if known(&p) => fields.push(p),
                    Ok(_) => errs.at(
                        part,
                        span.clone(),
                        format!(
                            "check {}: unknown source pointer {f:?} (not in schema {schema_name})",
                            raw.id
                        ),
                    ),
                    Err(e) => errs.at(part, span.clone(), format!("check {}: {e}", raw.id)),
                }
            }
            if fields.is_empty() {
                errs.at(
                    part,
                    span.clone(),
                    format!("check {}: names no field", raw.id),
                );
            }
            let value = raw
                .value
                .as_ref()
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null));
            let kind = match CheckKind::compile(
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
            ) {
                Ok(k) => k,
                Err(e) => {
                    errs.at(part, span, format!("check {}: {e}", raw.id));
                    continue;
                }
            };
            for p in kind.reads() {
                if !known(&p) {
                    errs.at(
                        part,
                        span.clone(),
                        format!(
                            "check {}: unknown source pointer {:?} (not in schema {schema_name})",
                            raw.id,
                            p.render()
                        ),
                    );
                }
            }
            let message = match Template::parse(&raw.message) {
                Ok(t) => t,
                Err(e) => {
                    errs.at(part, span, format!("check {}: {e}", raw.id));
                    continue;
                }
            };
            checks.push(Check {
                id: raw.id.clone(),
                severity: sev,
                fields,
                kind,
                message,
                nachweis: raw.nachweis.clone(),
            });
        }
    }

    // Rules
    let mut compiled_rules = Vec::new();
    for part in parts {
        for r in &part.file.rule {
            let span = r.span();
            let raw = r.get_ref();
            claim_id(part, span.clone(), &raw.id, errs);
            let e_before = errs.list.len();
            let sev = severity(&raw.severity)
                .map_err(|e| errs.at(part, span.clone(), format!("rule {}: {e}", raw.id)))
                .ok();
            let for_each: Vec<Pattern> = raw
                .for_each
                .as_ref()
                .map(|o| o.to_vec())
                .unwrap_or_default()
                .iter()
                .filter_map(|s| match Pattern::parse(s) {
                    Ok(p) if known(&p) => Some(p),
                    Ok(_) => {
                        errs.at(part, span.clone(), format!("rule {}: unknown source pointer {s:?} in for_each (not in schema {schema_name})", raw.id));
                        None
                    }
                    Err(e) => {
                        errs.at(part, span.clone(), format!("rule {}: {e}", raw.id));
                        None
                    }
                })
                .collect();
            let mut bindings = Vec::new();
            for (name, b) in &raw.bindings {
                let (kind, text) = match b {
                    RawBinding::Pointer(p) => (BindingKind::Value, p.clone()),
                    RawBinding::Count { count } => (BindingKind::Count, count.clone()),
                    RawBinding::Cents { cents } => (BindingKind::Cents, cents.clone()),
                    RawBinding::SumCents { sum_cents } => {
                        (BindingKind::SumCents, sum_cents.clone())
                    }
                    RawBinding::Keys { keys, fields } => {
                        if fields.is_empty()
                            || fields.iter().any(|f| f.is_empty() || f.contains('/'))
                        {
                            errs.at(
                                part,
                                span.clone(),
                                format!(
                                    "rule {}: variable {name:?}: fields must be property names",
                                    raw.id
                                ),
                            );
                        }
                        (BindingKind::Keys(fields.clone()), keys.clone())
                    }
                };
                if rules::BUILTIN_VARIABLES.contains(&name.as_str()) || constants.contains_key(name)
                {
                    errs.at(
                        part,
                        span.clone(),
                        format!(
                            "rule {}: variable {name:?} shadows a built-in variable or constant",
                            raw.id
                        ),
                    );
                }
                match Ref::parse(&text) {
                    Ok(rf) => {
                        for problem in check_rule_ref(&rf, &for_each, &known) {
                            errs.at(
                                part,
                                span.clone(),
                                format!(
                                    "rule {}: variable {name:?}: {problem} (schema {schema_name})",
                                    raw.id
                                ),
                            );
                        }
                        bindings.push(Binding::new(name.clone(), kind, rf, &text));
                    }
                    Err(e) => errs.at(
                        part,
                        span.clone(),
                        format!("rule {}: variable {name:?}: {e}", raw.id),
                    ),
                }
            }
            let mut requires = Vec::new();
            for req in &raw.requires {
                match bindings.iter().position(|b| &b.name == req) {
                    Some(i) => requires.push(i),
                    None => errs.at(
                        part,
                        span.clone(),
                        format!(
                            "rule {}: requires {req:?}, which is not a variable of its let",
                            raw.id
                        ),
                    ),
                }
            }
            let mut when = Vec::new();
            for (ptr, guard) in &raw.when {
                let allowed: Vec<String> = match guard {
                    raw::RawGuard::Values(v) => v.clone(),
                    raw::RawGuard::Constant(name) => match constants.get(name) {
                        Some(cel::Value::List(items)) => items
                            .iter()
                            .filter_map(|i| match i {
                                cel::Value::String(s) => Some(s.to_string()),
                                _ => None,
                            })
                            .collect(),
                        _ => {
                            errs.at(
                                part,
                                span.clone(),
                                format!(
                                    "rule {}: when {ptr:?}: {name:?} is not a list constant",
                                    raw.id
                                ),
                            );
                            continue;
                        }
                    },
                };
                match Ref::parse(ptr) {
                    Ok(r) if !r.pattern.has_wildcard() => {
                        for problem in check_rule_ref(&r, &for_each, &known) {
                            errs.at(
                                part,
                                span.clone(),
                                format!(
                                    "rule {}: when {ptr:?}: {problem} (schema {schema_name})",
                                    raw.id
                                ),
                            );
                        }
                        when.push((r, allowed));
                    }
                    Ok(_) => errs.at(
                        part,
                        span.clone(),
                        format!("rule {}: when {ptr:?} must not contain '*'", raw.id),
                    ),
                    Err(e) => errs.at(part, span.clone(), format!("rule {}: when: {e}", raw.id)),
                }
            }
            let program = match rule_env.compile(&raw.assert) {
                Ok(p) => Some(p),
                Err(e) => {
                    errs.at(part, span.clone(), format!("rule {}: {e}", raw.id));
                    None
                }
            };
            let mut uses = (false, false, false);
            if let Some(program) = &program {
                let refs = program.references();
                let iter_vars = comprehension_variables(&raw.assert);
                for v in refs.variables() {
                    let ok = bindings.iter().any(|b| b.name == v)
                        || iter_vars.iter().any(|i| i == v)
                        || constants.contains_key(v)
                        || rules::BUILTIN_VARIABLES.contains(&v);
                    if !ok {
                        errs.at(part, span.clone(), format!("rule {}: CEL uses unknown variable {v:?} (declare it in let, or as a constant)", raw.id));
                    }
                    if (v == "it" || v == "index") && for_each.is_empty() {
                        errs.at(
                            part,
                            span.clone(),
                            format!(
                                "rule {}: CEL uses {v:?} but the rule has no for_each",
                                raw.id
                            ),
                        );
                    }
                }
                uses = (
                    refs.has_variable("today"),
                    refs.has_variable("it"),
                    refs.has_variable("index"),
                );
            }
            let pointer_text = match (&raw.pointer, for_each.is_empty()) {
                (Some(p), _) => p.clone(),
                (None, false) => "{each}".to_string(),
                (None, true) => {
                    errs.at(
                        part,
                        span.clone(),
                        format!(
                            "rule {}: needs a pointer (the field a caseworker should change first)",
                            raw.id
                        ),
                    );
                    String::new()
                }
            };
            let pointer = match PointerTemplate::parse(&pointer_text) {
                Ok(p) => {
                    if p.from_each && for_each.is_empty() {
                        errs.at(
                            part,
                            span.clone(),
                            format!(
                                "rule {}: pointer uses {{each}} but the rule has no for_each",
                                raw.id
                            ),
                        );
                    }
                    Some(p)
                }
                Err(e) => {
                    errs.at(part, span.clone(), format!("rule {}: {e}", raw.id));
                    None
                }
            };
            let message = Template::parse(&raw.message)
                .map_err(|e| errs.at(part, span.clone(), format!("rule {}: {e}", raw.id)))
                .ok();
            if raw.nachweis.is_some() && sev != Some(Severity::Info) {
                errs.at(
                    part,
                    span.clone(),
                    format!(
                        "rule {}: nachweis is only for severity info (a document owed)",
                        raw.id
                    ),
                );
            }
            if errs.list.len() > e_before {
                continue;
            }
            compiled_rules.push(Rule {
                id: raw.id.clone(),
                severity: sev.expect("checked"),
                for_each,
                bindings,
                requires,
                when,
                program: program.expect("checked"),
                uses_today: uses.0,
                uses_it: uses.1,
                uses_index: uses.2,
                pointer: pointer.expect("checked"),
                message: message.expect("checked"),
                nachweis: raw.nachweis.clone(),
            });
        }
    }

    if errs.list.len() > before {
        return None;
    }
    Some(Mapping {
        name: header.name.clone(),
        form: header.form.clone(),
        version: header.version.clone(),
        file: main.path.clone(),
        record_version: header.record.clone(),
        schema_file: schema_name,
        schema: validator,
        schema_json: schema_json.clone(),
        today,
        groups,
        checks,
        rules: compiled_rules,
        labels,
        schema_messages,
        rule_env,
        mapped_fields,
    })
}

/// Problems of a pointer a rule reads: relative without `for_each`, or not
/// a location of the JSON Schema (for any of the `for_each` elements).
fn check_rule_ref(r: &Ref, for_each: &[Pattern], known: &dyn Fn(&Pattern) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    let relative = matches!(r.anchor, crate::pointer::Anchor::Relative { .. });
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
        if !known(&a) {
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

fn valid_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}
