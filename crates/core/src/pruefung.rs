//! The check before submission (*Prüfung*): what the bridge would do with an
//! application the online form has not sent yet, for the check API
//! (`POST /api/v1/pruefung`). It runs [`Pipeline::process`] itself — the
//! same code path as the daemon, so the answer cannot differ from what
//! happens after submission — and then, for a form checked page by page,
//! keeps only the findings under the sections asked for.
//!
//! Also here: the languages applicant messages come in ([`Sprache`]) and
//! the choice among them by `Accept-Language`; the messages themselves are
//! the mapping's ([`Mapping::applicant_message`],
//! `crate::mapping::applicant`).

use std::sync::Arc;

use crate::finding::{Finding, Severity};
use crate::intake::InvalidReason;
use crate::mapping::Mapping;
use crate::mitwirkung::OwedDocument;
use crate::pipeline::{Pipeline, Processed};

/// What the application would become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ergebnis {
    /// Accepted: the import record would be written.
    Annehmbar,
    /// Rejected: a case for a caseworker.
    Klaerfall,
    /// Not readable as an application: a dead letter, with the reason.
    Unlesbar {
        reason: InvalidReason,
        detail: String,
    },
}

impl Ergebnis {
    /// The wire code.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ergebnis::Annehmbar => "annehmbar",
            Ergebnis::Klaerfall => "klaerfall",
            Ergebnis::Unlesbar { .. } => "unlesbar",
        }
    }
}

/// The answer of one check.
#[derive(Debug, Clone)]
pub struct Pruefung {
    pub ergebnis: Ergebnis,
    /// The findings (only those under the sections asked for, if any).
    pub findings: Vec<Finding>,
    /// The documents that would be owed (same filter).
    pub owed: Vec<OwedDocument>,
    /// The mapping it was checked under (`None` when unreadable).
    pub mapping: Option<Arc<Mapping>>,
}

/// Sections of the form, as JSON Pointers (`/bankverbindung`): a finding
/// belongs to one when its pointer is the section or lies below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Abschnitte(Vec<String>);

impl Abschnitte {
    /// From a comma list (`/bankverbindung,/antragsteller`); each must be a
    /// pointer (`/` first); empty entries are skipped. `Err` names the bad one.
    pub fn parse(list: &str) -> Result<Abschnitte, String> {
        let mut out = Vec::new();
        for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !s.starts_with('/') || s.len() > 200 {
                return Err(s.chars().take(40).collect());
            }
            out.push(s.trim_end_matches('/').to_string());
        }
        Ok(Abschnitte(out))
    }

    /// No sections: the whole application.
    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a finding at `pointer` is in one of the sections.
    pub fn covers(&self, pointer: &str) -> bool {
        self.is_all()
            || self.0.iter().any(|s| {
                pointer == s
                    || pointer
                        .strip_prefix(s.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

impl Pipeline {
    /// Checks an application as the daemon would process it, storing
    /// nothing; with `abschnitte`, only the findings and documents under
    /// those sections count (a section not yet filled adds no "required"
    /// finding, since its pointer lies outside them).
    pub fn pruefen(&self, body: &[u8], abschnitte: &Abschnitte) -> Pruefung {
        match self.process(body, None) {
            Processed::Invalid(i) => Pruefung {
                ergebnis: Ergebnis::Unlesbar {
                    reason: i.reason,
                    detail: i.detail,
                },
                findings: Vec::new(),
                owed: Vec::new(),
                mapping: None,
            },
            p => {
                let app = p.application().expect("readable");
                let mapping = self.mappings().by_name(&app.mapping);
                let findings: Vec<Finding> = app
                    .findings
                    .iter()
                    .filter(|f| abschnitte.covers(&f.pointer))
                    .cloned()
                    .collect();
                let owed = app
                    .owed
                    .iter()
                    .filter(|o| abschnitte.covers(&o.pointer))
                    .cloned()
                    .collect();
                let ergebnis = if findings.iter().any(|f| f.severity == Severity::Error) {
                    Ergebnis::Klaerfall
                } else {
                    Ergebnis::Annehmbar
                };
                Pruefung {
                    ergebnis,
                    findings,
                    owed,
                    mapping,
                }
            }
        }
    }
}

/// A language applicant messages come in. German is the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sprache {
    De,
    En,
    Uk,
}

impl Sprache {
    pub const ALL: [Sprache; 3] = [Sprache::De, Sprache::En, Sprache::Uk];

    /// The language tag, e.g. `uk`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Sprache::De => "de",
            Sprache::En => "en",
            Sprache::Uk => "uk",
        }
    }

    /// The language of a tag (`en`, `en-GB`, `UK`), if it is one of ours.
    pub fn parse(tag: &str) -> Option<Sprache> {
        let primary = tag.split(['-', '_']).next()?.trim().to_ascii_lowercase();
        Sprache::ALL.into_iter().find(|s| s.as_str() == primary)
    }

    /// The best of ours by an `Accept-Language` header (RFC 9110 §12.5.4:
    /// highest `q` first, then order); German when none fits.
    pub fn from_accept_language(header: Option<&str>) -> Sprache {
        let Some(h) = header else {
            return Sprache::De;
        };
        let mut best: Option<(u16, Sprache)> = None;
        for part in h.split(',').take(32) {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, parse_q);
            if q == 0 {
                continue;
            }
            if let Some(s) = Sprache::parse(tag) {
                if best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, s));
                }
            }
        }
        best.map_or(Sprache::De, |(_, s)| s)
    }
}

/// A quality value as thousandths (`0.8` → 800); unreadable is 0.
fn parse_q(s: &str) -> u16 {
    match s.trim().parse::<f32>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_cover_their_pointers_and_nothing_beside() {
        let a = Abschnitte::parse("/bankverbindung, /antragsteller/,").unwrap();
        assert!(a.covers("/bankverbindung") && a.covers("/bankverbindung/iban"));
        assert!(a.covers("/antragsteller/anschrift/plz"));
        assert!(!a.covers("/bankverbindungen") && !a.covers("/unterkunft") && !a.covers(""));
        assert!(Abschnitte::parse("").unwrap().covers("/x"));
        assert_eq!(Abschnitte::parse("/a,iban").unwrap_err(), "iban");
    }

    #[test]
    fn accept_language_picks_the_best_of_ours() {
        let pick = |h| Sprache::from_accept_language(Some(h));
        assert_eq!(pick("uk-UA,uk;q=0.9,en;q=0.8"), Sprache::Uk);
        assert_eq!(pick("fr, en;q=0.5, de;q=0.7"), Sprache::De);
        assert_eq!(pick("fr, en-GB;q=0.5"), Sprache::En);
        assert_eq!(pick("uk;q=0, en;q=0.1"), Sprache::En);
        assert_eq!(pick("*"), Sprache::De);
        assert_eq!(pick(""), Sprache::De);
        assert_eq!(Sprache::from_accept_language(None), Sprache::De);
    }
}
