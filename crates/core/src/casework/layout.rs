//! The case layout a mapping declares in `[casework]`: which sections the
//! workbench shows and under which German titles, the order of the fields in
//! them, the places a caseworker may not change, where the Dienststelle
//! stands (it decides who sees a case) and where the applicant's name stands
//! (the case list shows and searches it).
//!
//! This is data of the form version, not of the workbench: a new form
//! version with other keys changes its mapping files, not Rust. The mapping
//! compiler (`mapping::compile::casework`) checks every pointer against the
//! form's JSON Schema when the set is loaded.

use std::collections::HashMap;

use serde_json::Value;

/// One section of the case page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionDef {
    /// Anchor and element-id stem, e.g. `bankverbindung`.
    pub id: String,
    /// German title, e.g. `Bankverbindung`.
    pub title: String,
    /// The top-level property the section shows (`None`: the general
    /// section, which shows every top-level field no other section takes).
    pub property: Option<String>,
}

/// Places a caseworker may not change; each covers everything below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOnly(Vec<String>);

impl ReadOnly {
    /// From concrete RFC 6901 pointers (duplicates dropped).
    pub fn new<S: Into<String>>(pointers: impl IntoIterator<Item = S>) -> ReadOnly {
        let mut v: Vec<String> = Vec::new();
        for p in pointers {
            let p = p.into();
            if !v.contains(&p) {
                v.push(p);
            }
        }
        ReadOnly(v)
    }

    /// The pointers, in the order declared.
    pub fn pointers(&self) -> &[String] {
        &self.0
    }

    /// Whether `p` is one of the places or lies below one.
    pub fn covers(&self, p: &str) -> bool {
        self.0.iter().any(|r| p == r || is_below(p, r))
    }

    /// Whether one of the places lies below `p`: removing `p` would remove
    /// that place too (`/jobcenter` holds the Dienststelle).
    pub fn holds(&self, p: &str) -> bool {
        self.0.iter().any(|r| is_below(r, p))
    }
}

/// `p` is strictly below `parent` (`/a/b` below `/a`, not `/ab`).
fn is_below(p: &str, parent: &str) -> bool {
    p.strip_prefix(parent)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The compiled `[casework]` of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The first section: top-level fields no other section shows.
    pub general: SectionDef,
    /// The sections after it, in order; each shows one top-level property.
    pub sections: Vec<SectionDef>,
    /// Property name → display position (names not listed come after, by name).
    order: HashMap<String, usize>,
    /// What a caseworker may not change (the declared places, the
    /// submission time and the Dienststelle).
    pub read_only: ReadOnly,
    /// Where the Dienststelle stands (`None`: cases belong to no
    /// Dienststelle, only administrators see them).
    pub dienststelle: Option<String>,
    /// Where the parts of the applicant's name stand, joined by a space.
    pub applicant_name: Vec<String>,
    /// The field whose code labels name the documents owed (`None`: they
    /// are shown by their codes).
    pub documents: Option<crate::pointer::Pattern>,
    /// Who in the application a document owed is for (`[casework.persons]`).
    pub persons: super::persons::Persons,
    /// The applicant's postal address for letters, line by line (each
    /// line's parts joined by a space).
    pub address: Vec<Vec<String>>,
}

impl Default for Layout {
    /// No sections, no order, nothing read-only: every field in one
    /// general section, sorted by name.
    fn default() -> Layout {
        Layout::new(
            general_default(),
            Vec::new(),
            Vec::new(),
            ReadOnly::default(),
            None,
            Vec::new(),
        )
    }
}

/// The general section when a mapping names none.
pub fn general_default() -> SectionDef {
    SectionDef {
        id: "allgemein".into(),
        title: "Allgemeine Angaben".into(),
        property: None,
    }
}

/// The applicant's name as written. Personal data: its `Debug` shows no
/// letter of it, so a `{:?}` of a larger value cannot put it into a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ApplicantName(String);

impl ApplicantName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for ApplicantName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApplicantName(<{} chars>)", self.0.chars().count())
    }
}

/// At most this many characters of the applicant's name are kept.
pub const MAX_NAME_CHARS: usize = 200;

impl Layout {
    pub fn new(
        general: SectionDef,
        sections: Vec<SectionDef>,
        field_order: Vec<String>,
        read_only: ReadOnly,
        dienststelle: Option<String>,
        applicant_name: Vec<String>,
    ) -> Layout {
        let order = field_order
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        Layout {
            general,
            sections,
            order,
            read_only,
            dienststelle,
            applicant_name,
            documents: None,
            persons: Default::default(),
            address: Vec::new(),
        }
    }

    /// This layout with the persons and the address a letter needs.
    pub fn with_persons(
        self,
        persons: super::persons::Persons,
        address: Vec<Vec<String>>,
    ) -> Layout {
        Layout {
            persons,
            address,
            ..self
        }
    }

    /// The applicant's postal address lines in `doc`.
    pub fn address_of(&self, doc: &Value) -> Vec<String> {
        super::persons::address_of(&self.address, doc)
    }

    /// This layout with the field that names the documents owed.
    pub fn with_documents(self, documents: Option<crate::pointer::Pattern>) -> Layout {
        Layout { documents, ..self }
    }

    /// What the lint warns about: parts a form usually declares and this
    /// layout lacks (each a sentence for `mappings check`).
    pub fn gaps(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.dienststelle.is_none() {
            out.push("[casework] names no dienststelle: its cases are seen by administrators only");
        }
        if self.applicant_name.is_empty() {
            out.push("[casework] names no applicant_name: the case list shows no name and its search finds none");
        }
        out
    }

    /// Sort key of a property name: its declared position, then the name.
    pub fn order_key(&self, key: &str) -> (usize, String) {
        let i = self.order.get(key).copied().unwrap_or(self.order.len());
        (i, key.to_string())
    }

    /// The top-level properties the sections after the general one show.
    pub fn section_properties(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().filter_map(|s| s.property.as_deref())
    }

    /// The Dienststelle of `doc`, when it is a short alphanumeric code (a
    /// number is taken by its digits); anything else belongs to no one.
    pub fn dienststelle_of(&self, doc: &Value) -> Option<String> {
        let s = match doc.pointer(self.dienststelle.as_deref()?)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let plain = s.chars().all(|c| c.is_ascii_alphanumeric());
        (!s.is_empty() && s.len() <= 32 && plain).then_some(s)
    }

    /// The applicant's name as written: the text parts joined by one
    /// space, whitespace runs collapsed, control characters dropped, at
    /// most [`MAX_NAME_CHARS`] characters; `None` when there is none.
    pub fn applicant_of(&self, doc: &Value) -> Option<ApplicantName> {
        let name = self
            .applicant_name
            .iter()
            .filter_map(|p| doc.pointer(p)?.as_str())
            .flat_map(str::split_whitespace)
            .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let name: String = name.chars().take(MAX_NAME_CHARS).collect();
        (!name.is_empty()).then_some(ApplicantName(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layout() -> Layout {
        Layout::new(
            general_default(),
            vec![],
            vec!["b".into(), "a".into()],
            ReadOnly::new(["/antragId", "/jobcenter/nr"]),
            Some("/jobcenter/nr".into()),
            vec!["/person/vorname".into(), "/person/name".into()],
        )
    }

    #[test]
    fn read_only_covers_below_and_holds_above() {
        let r = layout().read_only;
        assert!(r.covers("/antragId") && r.covers("/jobcenter/nr/x"));
        assert!(!r.covers("/antragIdx") && !r.covers("/jobcenter"));
        assert!(r.holds("/jobcenter") && !r.holds("/jobcenter/nr"));
        assert!(!r.holds("/job"));
    }

    #[test]
    fn order_puts_declared_names_first() {
        let l = layout();
        let mut keys = vec!["z", "a", "c", "b"];
        keys.sort_by_key(|k| l.order_key(k));
        assert_eq!(keys, ["b", "a", "c", "z"]);
    }

    #[test]
    fn the_name_is_kept_as_written_without_controls() {
        let l = layout();
        let name = |doc: Value| l.applicant_of(&doc).map(ApplicantName::into_string);
        let doc = json!({"person": {"vorname": " Anna-Lena\u{1b} ", "name": "McDonald-von  der\nHeide\u{0}"}});
        assert_eq!(
            name(doc).as_deref(),
            Some("Anna-Lena McDonald-von der Heide")
        );
        let n = l
            .applicant_of(&json!({"person": {"name": "O'Brien"}}))
            .unwrap();
        assert_eq!(n.as_str(), "O'Brien");
        assert_eq!(format!("{n:?}"), "ApplicantName(<7 chars>)");
        assert_eq!(l.applicant_of(&json!({"person": {"name": " "}})), None);
        let long = "x".repeat(500);
        let n = name(json!({"person": {"name": long}})).unwrap();
        assert_eq!(n.chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn the_dienststelle_is_a_short_plain_code() {
        let l = layout();
        let at = |v: Value| l.dienststelle_of(&json!({"jobcenter": {"nr": v}}));
        assert_eq!(at(json!("81101")).as_deref(), Some("81101"));
        assert_eq!(at(json!(81101)).as_deref(), Some("81101"));
        assert_eq!(at(json!("811 01")), None);
        assert_eq!(at(json!("")), None);
        assert_eq!(at(json!("9".repeat(33))), None);
        assert_eq!(
            Layout::default().dienststelle_of(&json!({"jobcenter": {"nr": "1"}})),
            None
        );
        assert!(l.gaps().is_empty());
        assert_eq!(Layout::default().gaps().len(), 2);
    }
}
