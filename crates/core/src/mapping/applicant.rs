//! Messages for applicants: beside each check's, rule's and schema
//! message's German sentence for the caseworker, plain words for the person
//! who fills in the form, in German, English and Ukrainian
//! ([`Sprache`]). The check API (`Pipeline::pruefen`) shows them before the
//! application is submitted.
//!
//! They are rendered from the finding alone, after the pipeline has run, so
//! `Pipeline::process` pays nothing for them: German messages may name the
//! field (`{Feld}`, `{feld}`, from the finding's pointer and `[labels]`) and
//! the document owed (`{nachweis}`, its German label); English and
//! Ukrainian ones use no placeholder at all, since every label is German.
//! `{detail}` (what a check kind or a rule's `detail` found, in German for
//! the caseworker) is not kept on the finding and is refused at load.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use super::labels::{Fill, Template};
use super::Mapping;
use crate::casework::fields::steps;
use crate::finding::Finding;
use crate::pointer::parse_concrete;
use crate::pruefung::Sprache;

/// The compiled applicant messages of one mapping.
#[derive(Debug, Default, Clone)]
pub struct ApplicantMessages {
    /// Rule id → message by language (indexed by `Sprache as usize`).
    by_rule: HashMap<String, [Option<Template>; Sprache::ALL.len()]>,
    /// Checks, rules and schema messages without a message in some language.
    gaps: Vec<ApplicantGap>,
}

/// A check, rule or schema message that lacks its applicant message in
/// some language (German is shown instead), or altogether.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicantGap {
    pub file: PathBuf,
    pub line: usize,
    /// `check X`, `rule Y`, `schema message required (Z)`.
    pub what: String,
    /// The languages without a message; all of them when there is none.
    pub missing: Vec<Sprache>,
}

impl fmt::Display for ApplicantGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: ", self.file.display(), self.line, self.what)?;
        if self.missing.len() == Sprache::ALL.len() {
            return f.write_str(
                "no applicant message (the check API would show the applicant nothing); add applicant.de, applicant.en and applicant.uk",
            );
        }
        let langs: Vec<&str> = self.missing.iter().map(|s| s.as_str()).collect();
        write!(
            f,
            "applicant message without {} (German would be shown instead)",
            langs.join(", ")
        )
    }
}

impl ApplicantMessages {
    pub(crate) fn new(
        by_rule: HashMap<String, [Option<Template>; Sprache::ALL.len()]>,
        gaps: Vec<ApplicantGap>,
    ) -> ApplicantMessages {
        ApplicantMessages { by_rule, gaps }
    }

    /// The template of `rule` in `lang`, else in German.
    pub fn get(&self, rule: &str, lang: Sprache) -> Option<&Template> {
        let by_lang = self.by_rule.get(rule)?;
        by_lang[lang as usize]
            .as_ref()
            .or(by_lang[Sprache::De as usize].as_ref())
    }

    /// The languages `rule` has its own message in (empty: none at all).
    pub fn languages(&self, rule: &str) -> Vec<Sprache> {
        let Some(by_lang) = self.by_rule.get(rule) else {
            return Vec::new();
        };
        Sprache::ALL
            .into_iter()
            .filter(|s| by_lang[*s as usize].is_some())
            .collect()
    }

    /// How many messages there are in `lang` (not counting the fallback).
    pub fn count(&self, lang: Sprache) -> usize {
        self.by_rule
            .values()
            .filter(|m| m[lang as usize].is_some())
            .count()
    }

    /// What the lint warns about, in file order.
    pub fn gaps(&self) -> &[ApplicantGap] {
        &self.gaps
    }
}

impl Mapping {
    /// The applicant's message for `f` in `lang` (German where `lang` has
    /// none), or `None` when the rule has no applicant message.
    pub fn applicant_message(&self, f: &Finding, lang: Sprache) -> Option<String> {
        let t = self.applicant.get(&f.rule, lang)?;
        let feld = if t.names_field() {
            let segs = parse_concrete(&f.pointer).unwrap_or_default();
            self.labels.name(&steps(&segs))
        } else {
            String::new()
        };
        let nachweis = match &f.nachweis {
            Some(code) if t.placeholders().contains(&"{nachweis}") => {
                crate::mitwirkung::document_label(self, code)
            }
            _ => String::new(),
        };
        Some(t.render(&Fill {
            feld: &feld,
            detail: "",
            nachweis: &nachweis,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::finding::Severity;
    use crate::pipeline::{Pipeline, PipelineConfig};
    use crate::pruefung::{Abschnitte, Sprache};

    fn shipped() -> Pipeline {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Pipeline::load(&PipelineConfig {
            mappings_dir: root.join("mappings"),
            schemas_dir: root.join("schemas"),
            ..Default::default()
        })
        .expect("the repository's mappings load")
    }

    /// The guarantee of issue #21: every check, rule and schema message of
    /// every shipped mapping speaks German, English and Ukrainian.
    #[test]
    fn every_shipped_rule_has_german_english_and_ukrainian() {
        let p = shipped();
        let all = p.mappings().all();
        assert_eq!(all.len(), 4);
        for m in all {
            let ids = m
                .checks
                .iter()
                .map(|c| c.id.as_str())
                .chain(m.rules.iter().map(|r| r.id.as_str()))
                .chain(m.schema_messages.values().map(|s| s.rule.as_str()));
            let mut n = 0;
            for id in ids {
                assert_eq!(m.applicant.languages(id), Sprache::ALL, "{}: {id}", m.name);
                n += 1;
            }
            assert!(m.applicant.gaps().is_empty(), "{:?}", m.applicant.gaps());
            for lang in Sprache::ALL {
                assert_eq!(m.applicant.count(lang), n, "{} {lang:?}", m.name);
            }
        }
    }

    /// Through the check API: each finding of the contract's faulty example
    /// has its own words in each language, none of them the caseworker's.
    #[test]
    fn the_faulty_example_speaks_to_the_applicant_in_three_languages() {
        let p = shipped();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let body = std::fs::read(root.join("fixtures/contract/hauptantrag-mit-fehlern.json"))
            .expect("contract example");
        let pr = p.pruefen(&body, &Abschnitte::default());
        let m = pr.mapping.expect("a mapping");
        assert!(pr.findings.iter().any(|f| f.severity == Severity::Error));
        let iban = pr
            .findings
            .iter()
            .find(|f| f.rule == "IBAN-UNGUELTIG")
            .expect("the example's IBAN is wrong");
        assert_eq!(
            m.applicant_message(iban, Sprache::Uk).as_deref(),
            Some("Перевірте, будь ласка, ваш IBAN. Німецький IBAN має 22 символи й починається з DE.")
        );
        for f in &pr.findings {
            let texts: Vec<String> = Sprache::ALL
                .into_iter()
                .map(|l| m.applicant_message(f, l).expect("a message"))
                .collect();
            assert!(
                texts.iter().all(|t| !t.is_empty() && *t != f.message),
                "{f:?}"
            );
            assert!(texts[0] != texts[1] && texts[1] != texts[2], "{texts:?}");
            assert!(!texts[0].contains('{'), "{texts:?}");
        }
    }
}
