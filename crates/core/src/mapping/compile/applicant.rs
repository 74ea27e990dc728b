//! `applicant`: the messages for applicants on checks, rules and schema
//! messages (see `crate::mapping::applicant`). A language tag must be one
//! of ours, German must be there when any language is (it is the
//! fallback), and a message may use only what can be rendered from the
//! finding alone: no `{detail}` in any language, and no placeholder at all
//! in English and Ukrainian (field and document labels are German).
//! Missing messages and languages are no error; they are the lint's gaps.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use toml::Spanned;

use crate::mapping::applicant::{ApplicantGap, ApplicantMessages};
use crate::mapping::error::{line_of, Errs, Source};
use crate::mapping::labels::Template;
use crate::mapping::load::Parsed;
use crate::mapping::raw::RawApplicant;
use crate::pruefung::Sprache;

/// The applicant messages of all parts. Schema messages count as the
/// last file declares them (a later file's kind replaces an earlier one's).
pub(super) fn compile(parts: &[&Parsed], errs: &mut Errs) -> ApplicantMessages {
    let mut out = Out::default();
    for part in parts {
        for c in &part.file.check {
            let raw = c.get_ref();
            let what = format!("check {}", raw.id);
            out.add(part, c.span(), &raw.id, what, raw.applicant.as_ref(), errs);
        }
        for r in &part.file.rule {
            let raw = r.get_ref();
            let what = format!("rule {}", raw.id);
            out.add(part, r.span(), &raw.id, what, raw.applicant.as_ref(), errs);
        }
    }
    let mut schema: BTreeMap<&str, (&Parsed, &Spanned<_>)> = BTreeMap::new();
    for part in parts {
        for (kind, m) in &part.file.schema_messages {
            schema.insert(kind.as_str(), (*part, m));
        }
    }
    for (kind, (part, m)) in schema {
        let raw = m.get_ref();
        let what = format!("schema message {kind} ({})", raw.rule);
        out.add(
            part,
            m.span(),
            &raw.rule,
            what,
            raw.applicant.as_ref(),
            errs,
        );
    }
    out.gaps
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    ApplicantMessages::new(out.by_rule, out.gaps)
}

#[derive(Default)]
struct Out {
    by_rule: HashMap<String, [Option<Template>; Sprache::ALL.len()]>,
    gaps: Vec<ApplicantGap>,
}

impl Out {
    /// The messages of one check, rule or schema message.
    fn add(
        &mut self,
        src: &Parsed,
        span: Range<usize>,
        rule: &str,
        what: String,
        raw: Option<&Spanned<RawApplicant>>,
        errs: &mut Errs,
    ) {
        let gap = |missing: Vec<Sprache>| ApplicantGap {
            file: src.path().to_path_buf(),
            line: line_of(src.text(), span.start),
            what: what.clone(),
            missing,
        };
        let Some(raw) = raw else {
            self.gaps.push(gap(Sprache::ALL.to_vec()));
            return;
        };
        let mut by_lang: [Option<Template>; Sprache::ALL.len()] = Default::default();
        let mut bad = false;
        for (tag, text) in raw.get_ref() {
            let Some(lang) = Sprache::ALL.into_iter().find(|s| s.as_str() == tag) else {
                let known = Sprache::ALL.map(Sprache::as_str).join(", ");
                let msg = format!("{what}: unknown applicant language {tag:?} (known: {known})");
                errs.at(src, text.span(), msg);
                bad = true;
                continue;
            };
            match template(lang, text.get_ref()) {
                Ok(t) => by_lang[lang as usize] = Some(t),
                Err(e) => {
                    errs.at(src, text.span(), format!("{what}: applicant.{tag}: {e}"));
                    bad = true;
                }
            }
        }
        if bad {
            return;
        }
        if by_lang[Sprache::De as usize].is_none() {
            let msg = format!(
                "{what}: applicant message without de (German is the fallback for every language)"
            );
            errs.at(src, raw.span(), msg);
            return;
        }
        let missing: Vec<Sprache> = Sprache::ALL
            .into_iter()
            .filter(|s| by_lang[*s as usize].is_none())
            .collect();
        if !missing.is_empty() {
            self.gaps.push(gap(missing));
        }
        self.by_rule.insert(rule.to_string(), by_lang);
    }
}

/// One message, with the placeholders its language may use.
fn template(lang: Sprache, text: &str) -> Result<Template, String> {
    let t = Template::parse(text)?;
    for p in t.placeholders() {
        if p == "{detail}" {
            return Err(format!(
                "{p} is not available to applicant messages (they are rendered from the finding, which does not keep it); say what to do instead"
            ));
        }
        if lang != Sprache::De {
            return Err(format!(
                "{p} is German ({} messages use no placeholders); the form shows the message beside its field, so name no field, and write the document's name into the text",
                lang.as_str()
            ));
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, compiled};
    use crate::finding::{Finding, Severity};
    use crate::pruefung::Sprache;

    /// A check of `/anschrift/plz` with the given applicant lines.
    fn c(applicant: &str) -> String {
        format!(
            "[[check]]\nid = \"C\"\nkind = \"required\"\nfields = [\"/anschrift/plz\"]\nseverity = \"error\"\nmessage = \"{{Feld}} fehlt.\"\n{applicant}"
        )
    }

    fn finding(rule: &str, pointer: &str) -> Finding {
        Finding {
            pointer: pointer.into(),
            severity: Severity::Error,
            rule: rule.into(),
            message: "m".into(),
            nachweis: None,
        }
    }

    #[test]
    fn messages_by_language_with_german_as_the_fallback() {
        let m = compiled(&c(
            "applicant.de = \"Bitte geben Sie {feld} an.\"\napplicant.en = \"Please enter your postcode.\"\n",
        ));
        let f = finding("C", "/anschrift/plz");
        let en = m.applicant_message(&f, Sprache::En);
        assert_eq!(en.as_deref(), Some("Please enter your postcode."));
        let de = m.applicant_message(&f, Sprache::De);
        assert_eq!(de.as_deref(), Some("Bitte geben Sie die Angabe „plz“ an."));
        // No Ukrainian: the German one.
        assert_eq!(m.applicant_message(&f, Sprache::Uk), de);
        assert_eq!(m.applicant.languages("C"), [Sprache::De, Sprache::En]);
        assert_eq!(m.applicant.count(Sprache::Uk), 0);
        let gaps: Vec<String> = m.applicant.gaps().iter().map(|g| g.to_string()).collect();
        assert!(
            gaps.contains(
                &"t.toml:1: check C: applicant message without uk (German would be shown instead)"
                    .to_string()
            ),
            "{gaps:?}"
        );
    }

    #[test]
    fn none_for_a_rule_without_an_applicant_message() {
        let m = compiled(&c(""));
        let f = finding("C", "/anschrift/plz");
        for lang in Sprache::ALL {
            assert_eq!(m.applicant_message(&f, lang), None);
        }
        assert_eq!(m.applicant_message(&finding("X", ""), Sprache::De), None);
        let gaps: Vec<String> = m.applicant.gaps().iter().map(|g| g.to_string()).collect();
        assert!(gaps.contains(&"t.toml:1: check C: no applicant message (the check API would show the applicant nothing); add applicant.de, applicant.en and applicant.uk".to_string()), "{gaps:?}");
    }

    #[test]
    fn rules_and_schema_messages_have_them_too() {
        let rule = "[[rule]]\nid = \"R\"\nseverity = \"info\"\nnachweis = \"MIETVERTRAG\"\nlet = { a = \"/art\" }\nassert = \"a == null\"\npointer = \"/art\"\nmessage = \"{nachweis} fehlt.\"\napplicant = { de = \"Bitte reichen Sie {nachweis} nach.\", en = \"Please send your tenancy agreement later.\", uk = \"Будь ласка, надішліть пізніше договір оренди.\" }\n";
        let m = compiled(rule);
        let mut f = finding("R", "");
        f.nachweis = Some("MIETVERTRAG".into());
        // Without [casework] documents the label is the code.
        let de = m.applicant_message(&f, Sprache::De);
        assert_eq!(de.as_deref(), Some("Bitte reichen Sie MIETVERTRAG nach."));
        let uk = m.applicant_message(&f, Sprache::Uk);
        assert_eq!(
            uk.as_deref(),
            Some("Будь ласка, надішліть пізніше договір оренди.")
        );
        assert!(!m.applicant.gaps().iter().any(|g| g.what == "rule R"));
        let m = compiled("[schema_messages.other]\nrule = \"S-SONST\"\nmessage = \"{Feld} ist ungültig.\"\napplicant.de = \"Bitte prüfen Sie {feld}.\"\napplicant.en = \"Please check this entry.\"\napplicant.uk = \"Перевірте, будь ласка, цей пункт.\"\n");
        let f = finding("S-SONST", "/anschrift/ort");
        assert_eq!(
            m.applicant_message(&f, Sprache::De).as_deref(),
            Some("Bitte prüfen Sie die Angabe „ort“.")
        );
        assert_eq!(
            m.applicant_message(&f, Sprache::En).as_deref(),
            Some("Please check this entry.")
        );
        // The replaced one counts no more; the other kinds of texte.toml have none.
        assert_eq!(
            m.applicant_message(&finding("S-OTHER", ""), Sprache::De),
            None
        );
        assert!(m
            .applicant
            .gaps()
            .iter()
            .any(|g| g.what == "schema message required (S-REQUIRED)"));
        assert!(!m
            .applicant
            .gaps()
            .iter()
            .any(|g| g.what.starts_with("schema message other")));
    }

    #[test]
    fn field_labels_are_refused_outside_german() {
        check(
            &c("applicant.de = \"Bitte geben Sie {feld} an.\"\napplicant.en = \"Please enter {feld}.\"\napplicant.uk = \"Вкажіть {Feld}.\"\n"),
            &[
                "t.toml:8: check C: applicant.en: {feld} is German (en messages use no placeholders); the form shows the message beside its field, so name no field, and write the document's name into the text",
                "t.toml:9: check C: applicant.uk: {Feld} is German (uk messages use no placeholders); the form shows the message beside its field, so name no field, and write the document's name into the text",
            ],
        );
        check(
            &c("applicant = { de = \"Bitte\", en = \"Send {nachweis}.\" }\n"),
            &["t.toml:7: check C: applicant.en: {nachweis} is German (en messages use no placeholders)…"],
        );
    }

    #[test]
    fn unknown_languages_detail_and_missing_german_are_refused() {
        check(
            &c("applicant.de = \"Bitte.\"\napplicant.fr = \"S'il vous plaît.\"\n"),
            &["t.toml:8: check C: unknown applicant language \"fr\" (known: de, en, uk)"],
        );
        check(
            &c("applicant.de = \"Es fehlt {detail}.\"\n"),
            &["t.toml:7: check C: applicant.de: {detail} is not available to applicant messages…"],
        );
        check(
            &c("applicant.en = \"Please.\"\napplicant.uk = \"Будь ласка.\"\n"),
            &["t.toml:7: check C: applicant message without de (German is the fallback for every language)"],
        );
        check(
            &c("applicant.de = \"{Wert}\"\n"),
            &["t.toml:7: check C: applicant.de: message \"{Wert}\": unknown placeholder {Wert}…"],
        );
    }
}
