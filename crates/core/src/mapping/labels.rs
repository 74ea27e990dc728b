//! German field names for finding messages, and message templates.
//!
//! A field is named by a noun phrase (`die Steuer-Identifikationsnummer`) and
//! the genitive of its owner (`der 2. weiteren Person`), both declared in the
//! mapping files' `[labels]`; `{n}` in a label is the 1-based position of the
//! element matched by the last `*` of its pattern. A code is shown by its
//! German label from `[labels.values]` ([`Labels::code`]).

use std::collections::BTreeMap;

use crate::pointer::{Pattern, Seg, Step};

/// Compiled `[labels]`.
#[derive(Debug, Default, Clone)]
pub struct Labels {
    /// (pattern, genitive phrase)
    owners: Vec<(Pattern, String)>,
    /// (pattern, noun phrase) for full-pointer labels.
    full: Vec<(Pattern, String)>,
    /// property name → noun phrase
    by_name: BTreeMap<String, String>,
    /// The German labels of codes by full pointer pattern, and by property
    /// name (the pattern wins).
    values: CodeLabels,
}

/// Code → German label, for one field.
pub type ValueLabels = BTreeMap<String, String>;

/// `[labels.values]` compiled: by full pointer pattern and by property name.
#[derive(Debug, Default, Clone)]
pub struct CodeLabels {
    pub full: Vec<(Pattern, ValueLabels)>,
    pub by_name: BTreeMap<String, ValueLabels>,
}

impl Labels {
    pub fn new(
        owners: Vec<(Pattern, String)>,
        full: Vec<(Pattern, String)>,
        by_name: BTreeMap<String, String>,
    ) -> Labels {
        Labels {
            owners,
            full,
            by_name,
            values: CodeLabels::default(),
        }
    }

    /// These labels with the German labels of codes.
    pub fn with_values(self, values: CodeLabels) -> Labels {
        Labels { values, ..self }
    }

    /// The code labels of the field at `path`: of the first full pointer
    /// pattern matching it, else of its property name.
    pub fn values(&self, path: &[Step<'_>]) -> Option<&ValueLabels> {
        if let Some((_, v)) = self.values.full.iter().find(|(p, _)| p.matches_path(path)) {
            return Some(v);
        }
        match path.last() {
            Some(Step::Key(k)) => self.values.by_name.get(*k),
            _ => None,
        }
    }

    /// The German label of `code` at `path`, if declared.
    pub fn code(&self, path: &[Step<'_>], code: &str) -> Option<&str> {
        self.values(path)?.get(code).map(String::as_str)
    }

    /// The German phrase for a concrete location, e.g.
    /// `die Steuer-Identifikationsnummer der 2. weiteren Person`.
    pub fn name(&self, path: &[Step<'_>]) -> String {
        if let Some((pat, label)) = self.full.iter().find(|(p, _)| p.matches_path(path)) {
            return fill_n(label, pat, path);
        }
        let Some((last, parent)) = path.split_last() else {
            return "der Antrag".to_string();
        };
        let noun = match last {
            Step::Key(k) => match self.by_name.get(*k) {
                Some(n) => n.clone(),
                None => format!("die Angabe „{k}“"),
            },
            Step::Index(i) => format!("der {}. Eintrag", i + 1),
        };
        match self.owner(parent) {
            Some(owner) if !owner.is_empty() => format!("{noun} {owner}"),
            _ => noun,
        }
    }

    /// The noun phrase of the field at `path` without its owner, e.g.
    /// `die Postleitzahl` (for a row that sits under its owner's heading):
    /// a full-pointer label that does not name the owner, else the
    /// property's label, else any full-pointer label, else a neutral phrase.
    pub fn noun(&self, path: &[Step<'_>]) -> String {
        let full = self
            .full
            .iter()
            .find(|(p, _)| p.matches_path(path))
            .map(|(pat, label)| fill_n(label, pat, path));
        let owner = path.split_last().and_then(|(_, parent)| self.owner(parent));
        if let (Some(f), Some(o)) = (&full, &owner) {
            if !o.is_empty() && !f.contains(o.as_str()) {
                return f.clone();
            }
        }
        if let Some(Step::Key(k)) = path.last() {
            if let Some(n) = self.by_name.get(*k) {
                return n.clone();
            }
        }
        if let Some(f) = full {
            return f;
        }
        match path.last() {
            Some(Step::Key(k)) => format!("die Angabe „{k}“"),
            Some(Step::Index(i)) => format!("der {}. Eintrag", i + 1),
            None => "der Antrag".to_string(),
        }
    }

    /// The genitive phrase of the owner at `path`, if declared.
    pub fn owner(&self, path: &[Step<'_>]) -> Option<String> {
        self.owners
            .iter()
            .find(|(p, _)| p.matches_path(path))
            .map(|(p, l)| fill_n(l, p, path))
    }
}

fn fill_n(label: &str, pat: &Pattern, path: &[Step<'_>]) -> String {
    if !label.contains("{n}") {
        return label.to_string();
    }
    let n = pat
        .segs
        .iter()
        .zip(path)
        .filter_map(|(s, p)| match (s, p) {
            (Seg::Any, Step::Index(i)) => Some(i + 1),
            _ => None,
        })
        .next_back()
        .unwrap_or(1);
    label.replace("{n}", &n.to_string())
}

/// A message template with `{Feld}`, `{feld}`, `{detail}` and `{nachweis}`.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    FeldCap,
    Feld,
    Detail,
    Nachweis,
}

/// What a template may be filled with.
pub struct Fill<'a> {
    pub feld: &'a str,
    pub detail: &'a str,
    pub nachweis: &'a str,
}

impl Template {
    /// Parses a template; unknown placeholders are an error.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("message {s:?}: '{{' without '}}'"))?;
            let name = &after[..close];
            parts.push(match name {
                "Feld" => Part::FeldCap,
                "feld" => Part::Feld,
                "detail" => Part::Detail,
                "nachweis" => Part::Nachweis,
                other => {
                    return Err(format!(
                        "message {s:?}: unknown placeholder {{{other}}} (known: {{Feld}}, {{feld}}, {{detail}}, {{nachweis}})"
                    ))
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        if s.trim().is_empty() {
            return Err("message is empty".into());
        }
        Ok(Template { parts })
    }

    /// The placeholders the template uses, as written (`{Feld}`, ...), in
    /// order, each once.
    pub fn placeholders(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for p in &self.parts {
            let name = match p {
                Part::Lit(_) => continue,
                Part::FeldCap => "{Feld}",
                Part::Feld => "{feld}",
                Part::Detail => "{detail}",
                Part::Nachweis => "{nachweis}",
            };
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// Whether the template names the field (`{Feld}` or `{feld}`).
    pub fn names_field(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::FeldCap | Part::Feld))
    }

    pub fn render(&self, fill: &Fill<'_>) -> String {
        let mut out = String::with_capacity(96);
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::FeldCap => out.push_str(&capitalize(fill.feld)),
                Part::Feld => out.push_str(fill.feld),
                Part::Detail => out.push_str(fill.detail),
                Part::Nachweis => out.push_str(fill.nachweis),
            }
        }
        out
    }
}

/// Upper-cases the first character.
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        let mut by_name = BTreeMap::new();
        by_name.insert("steuerId".into(), "die Steuer-Identifikationsnummer".into());
        Labels::new(
            vec![
                (
                    Pattern::parse("/weiterePersonen/*").unwrap(),
                    "der {n}. weiteren Person".into(),
                ),
                (Pattern::parse("").unwrap(), "des Antrags".into()),
            ],
            vec![(
                Pattern::parse("/einkommen/*").unwrap(),
                "die {n}. Einkommensangabe".into(),
            )],
            by_name,
        )
    }

    #[test]
    fn names_fields_with_owner_and_position() {
        let l = labels();
        let p = [
            Step::Key("weiterePersonen"),
            Step::Index(1),
            Step::Key("steuerId"),
        ];
        assert_eq!(
            l.name(&p),
            "die Steuer-Identifikationsnummer der 2. weiteren Person"
        );
        assert_eq!(
            l.name(&[Step::Key("einkommen"), Step::Index(0)]),
            "die 1. Einkommensangabe"
        );
        assert_eq!(l.name(&[Step::Key("foo")]), "die Angabe „foo“ des Antrags");
        assert_eq!(l.noun(&p), "die Steuer-Identifikationsnummer");
        assert_eq!(
            l.noun(&[Step::Key("einkommen"), Step::Index(2)]),
            "die 3. Einkommensangabe"
        );
        assert_eq!(l.noun(&[Step::Key("foo")]), "die Angabe „foo“");
    }

    #[test]
    fn codes_by_pattern_before_name() {
        let one = |c: &str, l: &str| ValueLabels::from([(c.to_string(), l.to_string())]);
        let mut by_name = BTreeMap::new();
        by_name.insert("art".to_string(), one("MIETE", "Miete"));
        let l = labels().with_values(CodeLabels {
            full: vec![(
                Pattern::parse("/einkommen/*/art").unwrap(),
                one("RENTE", "Rente"),
            )],
            by_name,
        });
        let income = [Step::Key("einkommen"), Step::Index(3), Step::Key("art")];
        assert_eq!(l.code(&income, "RENTE"), Some("Rente"));
        assert_eq!(l.code(&income, "MIETE"), None);
        let home = [Step::Key("unterkunft"), Step::Key("art")];
        assert_eq!(l.code(&home, "MIETE"), Some("Miete"));
        assert_eq!(l.code(&[Step::Key("x")], "MIETE"), None);
    }

    #[test]
    fn templates_fill_and_reject_unknown_placeholders() {
        let t = Template::parse("{Feld} ist ungültig: {detail}.").unwrap();
        let s = t.render(&Fill {
            feld: "die IBAN",
            detail: "die Prüfsumme stimmt nicht",
            nachweis: "",
        });
        assert_eq!(s, "Die IBAN ist ungültig: die Prüfsumme stimmt nicht.");
        assert_eq!(t.placeholders(), ["{Feld}", "{detail}"]);
        assert!(t.names_field());
        let plain = Template::parse("Bitte {nachweis} nachreichen, {nachweis}.").unwrap();
        assert_eq!(plain.placeholders(), ["{nachweis}"]);
        assert!(!plain.names_field());
        assert!(Template::parse("{Wert} fehlt").is_err());
        assert!(Template::parse("{Feld fehlt").is_err());
    }
}
