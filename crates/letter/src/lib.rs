//! Letters to applicants as accessible PDF. So far one letter: the request
//! for missing documents, "Aufforderung zur Mitwirkung" (§§ 60, 66, 67
//! SGB I), from a filled-in [`Letter`] by [`render`].
//!
//! The PDF is tagged and conforms to PDF/UA-1: headings, paragraphs and
//! lists are tagged as such in reading order, the return address and page
//! numbers are artifacts, the font (Fira Sans, compiled in) is embedded as
//! a subset, the document language is `de-DE` and the title is shown as the
//! window title. krilla writes it and checks PDF/UA-1's machine-checkable
//! rules itself: a letter that would break them is an error, not a file.
//!
//! Pure, like `allegro-core`: no clock (the caller gives the date), no file
//! system, no logging: a letter is full of personal data, and this crate
//! never writes any of it anywhere but into the returned bytes. Errors name
//! no personal data either.
//!
//! Modules: `content` (what the letter says, in reading order), `wording`
//! (the German text), `font` and `wrap` (glyphs, widths, line breaks),
//! `layout` (A4 pages, DIN 5008 places, page breaks), `pdf` (krilla:
//! drawing, tags, outline, metadata).

mod content;
mod font;
mod layout;
mod pdf;
mod wording;
mod wrap;

use chrono::NaiveDate;

pub use wording::DEFAULT_LEGAL_NOTICE;

/// Everything the letter says; the caller fills it (no clock, no I/O here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    pub letterhead: Letterhead,
    pub recipient: Recipient,
    /// The letter's date.
    pub date: NaiveDate,
    /// "Unser Zeichen": the application's antragId, say.
    pub reference: String,
    /// The deadline (Frist) for the documents; after `date`.
    pub deadline: NaiveDate,
    /// The documents owed, grouped by person; a person without documents
    /// is left out.
    pub persons: Vec<PersonDocuments>,
    /// The legal notice (Rechtsfolgenbelehrung), one entry per paragraph;
    /// [`DEFAULT_LEGAL_NOTICE`] unless configured otherwise. Required.
    pub legal_notice: Vec<String>,
}

/// The sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letterhead {
    /// "Jobcenter Musterstadt".
    pub authority: String,
    /// Address lines: "Musterweg 5", "12345 Musterstadt".
    pub address: Vec<String>,
    /// Phone, e-mail, opening hours: one line each.
    pub contact: Vec<String>,
    /// Below "Mit freundlichen Grüßen": "Ihr Jobcenter Musterstadt".
    pub signature: String,
}

/// The addressee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Also used in the salutation: "Guten Tag Erika Mustermann,".
    pub name: String,
    /// Address lines below the name.
    pub address: Vec<String>,
}

/// The documents one person owes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonDocuments {
    /// "Erika Mustermann", or "Bedarfsgemeinschaft" for the household.
    pub person: String,
    /// German labels: "Mietvertrag", "Lohnabrechnung".
    pub documents: Vec<String>,
}

/// Why a letter could not be written. No variant carries personal data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LetterError {
    /// No person owes a document: there is nothing to ask for.
    #[error("the letter asks for no document: every person's list is empty")]
    NothingRequested,
    /// Without the legal notice benefits may not be refused (§ 66 Abs. 3 SGB I).
    #[error("the letter has no legal notice (Rechtsfolgenbelehrung)")]
    MissingLegalNotice,
    /// The deadline must come after the letter's date.
    #[error("the deadline is not after the letter's date")]
    DeadlineNotAfterDate,
    /// A character the embedded font cannot show (a script Fira Sans does
    /// not cover); named by its code point only.
    #[error("the font has no glyph for U+{:04X}", u32::from(*character))]
    MissingGlyph { character: char },
    /// Letterhead, address field and information block leave no room for
    /// the body on the first page.
    #[error("the letterhead, address and information block do not fit on the first page")]
    HeaderTooLong,
    /// The embedded font could not be read (a broken build).
    #[error("the embedded font could not be read")]
    Font,
    /// krilla refused the document as not conforming to PDF/UA-1; the
    /// violated rules by name.
    #[error("the PDF would not conform to PDF/UA-1: {}", .0.join(", "))]
    NotConforming(Vec<String>),
    /// krilla could not write the document for another reason.
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

impl From<krilla::error::KrillaError> for LetterError {
    fn from(error: krilla::error::KrillaError) -> Self {
        match error {
            krilla::error::KrillaError::Validation(errors) => {
                // Only the rule's name: a violation may carry the text it
                // was found in, and that text may be someone's name.
                let rules = errors.iter().map(|(e, _)| rule_name(e)).collect();
                LetterError::NotConforming(rules)
            }
            other => LetterError::Pdf(other.to_string()),
        }
    }
}

/// `ContainsNotDefGlyph(…)` → `ContainsNotDefGlyph`.
fn rule_name(error: &krilla::configure::ValidationError) -> String {
    let debug = format!("{error:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The letter as a tagged PDF/UA-1 document.
pub fn render(letter: &Letter) -> Result<Vec<u8>, LetterError> {
    check(letter)?;
    let fonts = font::Fonts::load()?;
    let parts = content::parts(letter);
    let layout = layout::layout(&parts, &fonts)?;
    pdf::write(&parts, &layout, &fonts, letter.date)
}

/// What would make the letter wrong whatever it looks like.
fn check(letter: &Letter) -> Result<(), LetterError> {
    let blank = |s: &String| s.trim().is_empty();
    if letter.persons.iter().all(|p| p.documents.iter().all(blank)) {
        return Err(LetterError::NothingRequested);
    }
    if letter.legal_notice.iter().all(blank) {
        return Err(LetterError::MissingLegalNotice);
    }
    if letter.deadline <= letter.date {
        return Err(LetterError::DeadlineNotAfterDate);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The example letter of `examples/brief.rs`.
    pub(crate) fn example() -> Letter {
        let lines = |lines: &[&str]| lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Letter {
            letterhead: Letterhead {
                authority: "Jobcenter Musterstadt".into(),
                address: lines(&["Musterweg 5", "12345 Musterstadt"]),
                contact: lines(&["Telefon: 01234 567-0", "E-Mail: jobcenter@example.org"]),
                signature: "Ihr Jobcenter Musterstadt".into(),
            },
            recipient: Recipient {
                name: "Erika Mustermann".into(),
                address: lines(&["Musterstraße 1", "12345 Musterstadt"]),
            },
            date: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            reference: "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b".into(),
            deadline: NaiveDate::from_ymd_opt(2026, 12, 21).unwrap(),
            persons: vec![
                PersonDocuments {
                    person: "Erika Mustermann".into(),
                    documents: lines(&["Lohnabrechnung", "Aufenthaltstitel"]),
                },
                PersonDocuments {
                    person: "Bedarfsgemeinschaft".into(),
                    documents: lines(&["Mietvertrag", "Kontoauszüge"]),
                },
            ],
            legal_notice: lines(DEFAULT_LEGAL_NOTICE),
        }
    }

    #[test]
    fn the_example_renders_as_a_pdf() {
        let pdf = render(&example()).unwrap();
        assert!(pdf.starts_with(b"%PDF-1.7"));
    }

    #[test]
    fn the_same_letter_gives_the_same_bytes() {
        assert_eq!(render(&example()).unwrap(), render(&example()).unwrap());
    }

    #[test]
    fn a_letter_asking_for_nothing_is_refused() {
        let mut letter = example();
        for person in &mut letter.persons {
            person.documents = vec![" ".into()];
        }
        assert_eq!(render(&letter), Err(LetterError::NothingRequested));
    }

    #[test]
    fn a_letter_without_legal_notice_is_refused() {
        let mut letter = example();
        letter.legal_notice.clear();
        assert_eq!(render(&letter), Err(LetterError::MissingLegalNotice));
    }

    #[test]
    fn a_deadline_on_the_letters_date_is_refused() {
        let mut letter = example();
        letter.deadline = letter.date;
        assert_eq!(render(&letter), Err(LetterError::DeadlineNotAfterDate));
    }

    #[test]
    fn a_name_the_font_cannot_show_is_an_error_without_the_name() {
        let mut letter = example();
        letter.recipient.name = "山田太郎".into();
        let err = render(&letter).unwrap_err();
        assert_eq!(err, LetterError::MissingGlyph { character: '山' });
        assert_eq!(err.to_string(), "the font has no glyph for U+5C71");
    }

    #[test]
    fn a_letterhead_longer_than_the_page_is_an_error() {
        let mut letter = example();
        letter.letterhead.contact = (0..80).map(|n| format!("Zeile {n}")).collect();
        assert_eq!(render(&letter), Err(LetterError::HeaderTooLong));
    }

    #[test]
    fn blank_fields_leave_their_parts_out_but_the_letter_renders() {
        let mut letter = example();
        letter.letterhead = Letterhead {
            authority: " ".into(),
            address: vec![],
            contact: vec!["".into()],
            signature: "".into(),
        };
        letter.recipient = Recipient {
            name: "".into(),
            address: vec!["\t".into()],
        };
        letter.persons[0].person = " ".into();
        letter.persons[1].documents.push("".into());
        letter.reference = "".into();
        assert!(render(&letter).unwrap().starts_with(b"%PDF-"));
    }

    #[test]
    fn a_control_character_is_an_error_not_a_panic() {
        let mut letter = example();
        letter.persons[0].documents[0] = "Miet\u{7}vertrag".into();
        assert_eq!(
            render(&letter),
            Err(LetterError::MissingGlyph { character: '\u{7}' })
        );
    }

    #[test]
    fn rule_names_carry_no_text() {
        use krilla::configure::ValidationError;
        assert_eq!(
            rule_name(&ValidationError::NoDocumentTitle),
            "NoDocumentTitle"
        );
        assert_eq!(
            rule_name(&ValidationError::MissingAltText(None)),
            "MissingAltText"
        );
    }
}
