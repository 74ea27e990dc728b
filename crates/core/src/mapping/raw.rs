//! The mapping files as written: serde structures for the TOML format
//! documented in `docs/mappings.md`. Spans are kept so that every error can
//! name its file and line.

use std::collections::BTreeMap;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

pub use crate::checks::RawKind;

/// One TOML file under `mappings/`: a mapping (with `[mapping]`) or a
/// fragment that mappings include.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub mapping: Option<Spanned<RawHeader>>,
    #[serde(default)]
    pub group: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    pub check: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub labels: RawLabels,
    #[serde(default)]
    pub codelists: BTreeMap<String, Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    pub constants: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub schema_messages: BTreeMap<String, Spanned<RawSchemaMessage>>,
    #[serde(default)]
    pub casework: Option<RawCasework>,
}

/// `[mapping]`: what the file maps and with which schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    /// Unique name, by convention `<form>-<version>` in lower case.
    pub name: String,
    /// `formular.id` this mapping handles.
    pub form: String,
    /// `formular.version` this mapping handles.
    pub version: String,
    /// JSON Schema file in the schemas folder.
    pub schema: Spanned<String>,
    /// Version of the record layout (`schemas/allegro-import-<record>.xsd`).
    pub record: String,
    /// Pointer of the submission time that defines "today".
    #[serde(default = "default_today")]
    pub today: Spanned<String>,
    /// Fragment files (relative to the mappings folder), in order.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_today() -> Spanned<String> {
    Spanned::new(0..0, "/eingereichtAm".to_string())
}

/// `[[group]]`: one record element per match of `source`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub element: String,
    #[serde(default)]
    pub container: Option<String>,
    /// Required unless `append` is set.
    #[serde(default)]
    pub source: Option<OneOrMany>,
    /// Add these fields to the end of the earlier group with the same
    /// element (how a later form version extends a shared layout).
    #[serde(default)]
    pub append: bool,
    #[serde(default)]
    pub fields: Vec<Spanned<RawField>>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// One field of a group: source (relative to the group's element) → record element.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub transform: Option<String>,
    #[serde(default)]
    pub codelist: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
}

/// `[[check]]`: a per-field check of a kind implemented in Rust. The
/// options of the kind are the `crate::checks::RawKind` variant named by
/// `kind`: an option of another kind is a problem of this check, reported
/// with the check's line while the rest of the file is still compiled.
#[derive(Debug)]
pub struct RawCheck {
    pub id: String,
    pub fields: Vec<String>,
    pub severity: String,
    pub message: String,
    pub nachweis: Option<String>,
    /// What to type, for the workbench's form „Fehler beheben“.
    pub input_hint: Option<String>,
    /// The message for the applicant, by language.
    pub applicant: Option<Spanned<RawApplicant>>,
    /// The kind with its options, or what is wrong with them.
    pub kind: Result<RawKind, String>,
}

/// `applicant`: the message for the applicant by language tag (`de`, `en`,
/// `uk`), written `applicant.de = "…"` or `applicant = { de = "…", … }`.
/// The tags are checked when compiled (an unknown one is a problem of its
/// line, not of the whole file).
pub type RawApplicant = BTreeMap<String, Spanned<String>>;

/// The keys every check has, whatever its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckCommon {
    id: String,
    fields: Vec<String>,
    severity: String,
    message: String,
    #[serde(default)]
    nachweis: Option<String>,
    #[serde(default)]
    input_hint: Option<String>,
}

const COMMON_KEYS: &[&str] = &[
    "id",
    "fields",
    "severity",
    "message",
    "nachweis",
    "input_hint",
];

impl<'de> Deserialize<'de> for RawCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawCheck, D::Error> {
        let (mut kind, applicant) = d.deserialize_map(CheckTable)?;
        let mut common = toml::Table::new();
        for key in COMMON_KEYS {
            if let Some(v) = kind.remove(*key) {
                common.insert(key.to_string(), v);
            }
        }
        let c: RawCheckCommon = toml::Value::Table(common)
            .try_into()
            .map_err(|e: toml::de::Error| D::Error::custom(e.message().trim()))?;
        Ok(RawCheck {
            id: c.id,
            fields: c.fields,
            severity: c.severity,
            message: c.message,
            nachweis: c.nachweis,
            input_hint: c.input_hint,
            applicant,
            kind: RawKind::from_table(kind),
        })
    }
}

/// Reads a check's table: `applicant` with its spans (the lines of its
/// languages), every other key as a plain value.
struct CheckTable;

impl<'de> Visitor<'de> for CheckTable {
    type Value = (toml::Table, Option<Spanned<RawApplicant>>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a check table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut table = toml::Table::new();
        let mut applicant = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "applicant" {
                applicant = Some(map.next_value()?);
            } else {
                let v: toml::Value = map.next_value()?;
                table.insert(key, v);
            }
        }
        Ok((table, applicant))
    }
}

/// `[[rule]]`: a cross-field rule written in CEL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    pub severity: String,
    #[serde(default)]
    pub for_each: Option<OneOrMany>,
    #[serde(default, rename = "let")]
    pub bindings: BTreeMap<String, RawBinding>,
    #[serde(default)]
    pub requires: Vec<String>,
    /// Guards checked in Rust before CEL runs: pointer → allowed values (a
    /// list, or the name of a list constant). The rule runs only where every
    /// guard's value is among the allowed ones.
    #[serde(default)]
    pub when: BTreeMap<String, RawGuard>,
    pub assert: String,
    #[serde(default)]
    pub pointer: Option<String>,
    pub message: String,
    #[serde(default)]
    pub nachweis: Option<String>,
    /// What to type, for the workbench's form „Fehler beheben“.
    #[serde(default)]
    pub input_hint: Option<String>,
    /// CEL over the rule's `let` variables and constants whose value fills
    /// `{detail}` in the message when the rule fails.
    #[serde(default)]
    pub detail: Option<String>,
    /// The message for the applicant, by language.
    #[serde(default)]
    pub applicant: Option<Spanned<RawApplicant>>,
}

/// A variable of a rule: a pointer (value, or list for a wildcard pattern),
/// `{ count = "pattern" }`, `{ cents = "pointer" }` (exact integer cents) or
/// `{ sum_cents = "pattern" }`, or `{ keys = "pattern", fields = [..] }` (one
/// string per match: the named fields joined with `|`, for cheap membership tests).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawBinding {
    Pointer(String),
    Count { count: String },
    Cents { cents: String },
    SumCents { sum_cents: String },
    Keys { keys: String, fields: Vec<String> },
}

/// The allowed values of a `when` guard.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawGuard {
    Values(Vec<String>),
    Constant(String),
}

/// `[labels]`: how fields are named in German sentences.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLabels {
    /// Genitive phrase for a containing object, by pointer pattern.
    #[serde(default)]
    pub owners: BTreeMap<String, Spanned<String>>,
    /// Noun phrase for a field: by property name, or by full pointer pattern
    /// (starting with `/`, used as is without an owner).
    #[serde(default)]
    pub fields: BTreeMap<String, Spanned<String>>,
    /// `[labels.values.<field>]`: the German label of each code of a field
    /// (`WEIBLICH = "weiblich"`), by property name or by full pointer
    /// pattern (starting with `/`, which wins over the name).
    #[serde(default)]
    pub values: BTreeMap<String, Spanned<BTreeMap<String, Spanned<String>>>>,
}

/// `[schema_messages.<kind>]`: rule id and message for a JSON Schema violation kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchemaMessage {
    pub rule: String,
    pub message: String,
    /// The message for the applicant, by language.
    #[serde(default)]
    pub applicant: Option<Spanned<RawApplicant>>,
}

/// `[casework]`: how the workbench lays out a case of this form (see
/// `crate::casework::layout`). Every key is optional; a later file's key
/// replaces an earlier one's, except `field_order_after`, which adds.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCasework {
    /// The first section, which shows the top-level fields no other takes.
    #[serde(default)]
    pub general: Option<Spanned<RawGeneral>>,
    /// `[[casework.section]]`: the sections after it, in order.
    #[serde(default)]
    pub section: Option<Vec<Spanned<RawSection>>>,
    /// Property names in display order (names not listed come after).
    #[serde(default)]
    pub field_order: Option<Vec<Spanned<String>>>,
    /// Names to insert into the order after a name already in it (how a
    /// later form version adds its fields to a shared order).
    #[serde(default)]
    pub field_order_after: BTreeMap<String, Spanned<Vec<String>>>,
    /// Places a caseworker may not change (concrete pointers, with all below).
    #[serde(default)]
    pub read_only: Option<Vec<Spanned<String>>>,
    /// Pointer of the Dienststelle, which decides who sees the case.
    #[serde(default)]
    pub dienststelle: Option<Spanned<String>>,
    /// Pointers of the parts of the applicant's name, in reading order.
    #[serde(default)]
    pub applicant_name: Option<Vec<Spanned<String>>>,
    /// Pattern of the field whose code labels name the documents owed
    /// (`[labels.values]`), e.g. `/nachweise/*/art`.
    #[serde(default)]
    pub documents: Option<Spanned<String>>,
    /// `[casework.persons]`: who a document owed is for.
    #[serde(default)]
    pub persons: Option<Spanned<RawPersons>>,
    /// The applicant's postal address, line by line, each a list of pointers.
    #[serde(default)]
    pub address: Option<Spanned<Vec<Vec<String>>>>,
}

/// `[casework.persons]`: where person objects stand and how they are named
/// and referred to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPersons {
    /// Patterns of the person objects, e.g. `/weiterePersonen/*`.
    pub at: Vec<String>,
    /// The id property of a person object.
    pub id: String,
    /// The name properties, in reading order.
    pub name: Vec<String>,
    /// The property by which other entries refer to a person.
    pub reference: String,
}

/// `[casework.general]`: anchor and title of the general section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeneral {
    pub id: String,
    pub title: String,
}

/// `[[casework.section]]`: one section showing one top-level property.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    /// Anchor (lower case letters, digits, `-`), e.g. `bankverbindung`.
    pub id: String,
    /// German title, e.g. `Bankverbindung`.
    pub title: String,
    /// The top-level property of the application it shows.
    pub property: String,
}
