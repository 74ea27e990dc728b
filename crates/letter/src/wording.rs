//! The letter's fixed German wording: subject, headings, the sentences
//! around the list of documents, and the default legal notice
//! (Rechtsfolgenbelehrung nach §§ 60, 66, 67 SGB I). Plain language, as
//! short sentences as the law allows. Only `DEFAULT_LEGAL_NOTICE` is public:
//! the notice is configurable, the rest belongs to this letter.

use chrono::NaiveDate;

/// The document's title (PDF metadata and window title).
pub(crate) const TITLE: &str = "Aufforderung zur Mitwirkung";

/// The subject line, the letter's first heading.
pub(crate) const SUBJECT: &str =
    "Aufforderung zur Mitwirkung – fehlende Unterlagen zu Ihrem Antrag auf Bürgergeld";

/// Label of the reference in the information block.
pub(crate) const REFERENCE_LABEL: &str = "Unser Zeichen:";

/// Label of the date in the information block.
pub(crate) const DATE_LABEL: &str = "Datum:";

/// The paragraph after the salutation that leads to the list.
pub(crate) const INTRODUCTION: &str = "wir bearbeiten Ihren Antrag auf Bürgergeld. \
     Um darüber entscheiden zu können, brauchen wir noch die folgenden Unterlagen.";

/// Heading of the list of documents.
pub(crate) const DOCUMENTS_HEADING: &str = "Fehlende Unterlagen";

/// Heading of the legal notice.
pub(crate) const LEGAL_NOTICE_HEADING: &str = "Rechtsfolgenbelehrung";

/// The closing formula before the signature.
pub(crate) const CLOSING: &str = "Mit freundlichen Grüßen";

/// A sensible default legal notice (Rechtsfolgenbelehrung nach §§ 60, 66,
/// 67 SGB I), one paragraph per entry, in plain German. § 66 Abs. 3 SGB I
/// allows benefits to be refused for lack of cooperation only after this
/// written notice, so a letter without a notice is refused by `render`.
pub const DEFAULT_LEGAL_NOTICE: &[&str] = &[
    "Wer Bürgergeld beantragt, muss nach § 60 Erstes Buch Sozialgesetzbuch \
     (SGB I) alle Tatsachen angeben, die für die Leistung wichtig sind. \
     Auf Verlangen müssen Sie auch Nachweise vorlegen. Das nennt man Mitwirkung.",
    "Wenn Sie die Unterlagen nicht bis zum genannten Datum einreichen, können \
     wir das Bürgergeld nach § 66 SGB I ganz oder teilweise versagen, bis Sie \
     die Unterlagen nachreichen. Das heißt: Sie erhalten dann so lange ganz \
     oder teilweise kein Bürgergeld. Das gilt, soweit wir ohne die Unterlagen \
     nicht feststellen können, ob Ihnen die Leistung zusteht.",
    "Reichen Sie die Unterlagen später nach und stehen Ihnen die Leistungen zu, \
     können wir das Bürgergeld nach § 67 SGB I nachträglich ganz oder \
     teilweise zahlen.",
    "Können Sie eine Unterlage nicht oder nicht rechtzeitig beschaffen, teilen \
     Sie uns das bitte vor Ablauf der Frist mit und nennen Sie den Grund. \
     Dann suchen wir gemeinsam mit Ihnen nach einer Lösung.",
];

/// "Guten Tag Erika Mustermann,"
pub(crate) fn salutation(name: &str) -> String {
    format!("Guten Tag {name},")
}

/// The request with its deadline, after the list.
pub(crate) fn request(deadline: NaiveDate) -> String {
    format!(
        "Bitte reichen Sie die Unterlagen bis zum {} ein. \
         Geben Sie dabei bitte unser Zeichen an.",
        german_date(deadline)
    )
}

/// The footer of every page: "Seite 1 von 2".
pub(crate) fn page_of(page: usize, pages: usize) -> String {
    format!("Seite {page} von {pages}")
}

/// A date as written in German letters: 07.12.2026.
pub(crate) fn german_date(date: NaiveDate) -> String {
    date.format("%d.%m.%Y").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_day_month_year_with_leading_zeros() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        assert_eq!(german_date(date), "07.12.2026");
    }

    #[test]
    fn the_request_names_the_deadline() {
        let deadline = NaiveDate::from_ymd_opt(2026, 12, 21).unwrap();
        assert!(request(deadline)
            .starts_with("Bitte reichen Sie die Unterlagen bis zum 21.12.2026 ein."));
    }

    #[test]
    fn the_default_notice_cites_the_three_sections() {
        let notice = DEFAULT_LEGAL_NOTICE.join(" ");
        for section in ["§ 60", "§ 66", "§ 67"] {
            assert!(notice.contains(section), "{section}");
        }
    }
}
