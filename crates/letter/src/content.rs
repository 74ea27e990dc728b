//! What the letter says, in reading order, before anything is measured:
//! each part names the area of the page it goes to, its text style and its
//! logical role (heading, paragraph, list). The tag tree follows this order,
//! so a screen reader reads sender, recipient, reference and date, subject,
//! body, legal notice and signature, whatever their places on the page.

use crate::wording;
use crate::Letter;

/// Where on the page a part goes. The first three are on the first page
/// only, each with a fixed place (DIN 5008 form B); the body flows on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Area {
    /// Top left: the authority and its address.
    Letterhead,
    /// The address field of a window envelope.
    Window,
    /// The information block on the right: reference, contact, date.
    Info,
    /// Everything from the subject on, across as many pages as it needs.
    Body,
}

/// A text style: font, size and line height (see `layout::metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Authority,
    Letterhead,
    ReturnAddress,
    Address,
    Info,
    Body,
    /// "Guten Tag …,": a little further from the subject.
    Salutation,
    /// "Mit freundlichen Grüßen": kept on one page with the signature.
    Closing,
    H1,
    H2,
    H3,
    Footer,
}

/// A part's logical role, which becomes its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Block {
    /// A heading (H1–H3) with its text, which is also its outline entry.
    Heading { level: u16, text: String },
    /// A paragraph of hard lines, each wrapped on its own.
    Paragraph { lines: Vec<String> },
    /// A bulleted list, one entry per item.
    List { items: Vec<String> },
    /// Text that is not part of the logical structure: the return address
    /// above the recipient repeats the letterhead for the envelope's window.
    Artifact { text: String },
}

/// One part of the letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Part {
    pub area: Area,
    pub style: Style,
    pub block: Block,
}

/// The letter's parts in reading order.
pub(crate) fn parts(letter: &Letter) -> Vec<Part> {
    let mut parts = first_page(letter);
    parts.extend(body(letter));
    parts
}

fn first_page(letter: &Letter) -> Vec<Part> {
    let head = &letter.letterhead;
    let mut return_address = vec![head.authority.clone()];
    return_address.extend(head.address.iter().cloned());
    let mut recipient = vec![letter.recipient.name.clone()];
    recipient.extend(letter.recipient.address.iter().cloned());
    let reference = format!("{} {}", wording::REFERENCE_LABEL, letter.reference);
    let date = format!(
        "{} {}",
        wording::DATE_LABEL,
        wording::german_date(letter.date)
    );
    vec![
        paragraph(
            Area::Letterhead,
            Style::Authority,
            vec![head.authority.clone()],
        ),
        paragraph(Area::Letterhead, Style::Letterhead, head.address.clone()),
        Part {
            area: Area::Window,
            style: Style::ReturnAddress,
            block: Block::Artifact {
                text: return_address.join(" · "),
            },
        },
        paragraph(Area::Window, Style::Address, recipient),
        paragraph(Area::Info, Style::Info, vec![reference]),
        paragraph(Area::Info, Style::Info, head.contact.clone()),
        paragraph(Area::Info, Style::Info, vec![date]),
    ]
}

fn body(letter: &Letter) -> Vec<Part> {
    let mut parts = vec![
        heading(1, wording::SUBJECT),
        paragraph(
            Area::Body,
            Style::Salutation,
            vec![wording::salutation(&letter.recipient.name)],
        ),
        text(wording::INTRODUCTION.to_owned()),
        heading(2, wording::DOCUMENTS_HEADING),
    ];
    for person in letter.persons.iter().filter(|p| !p.documents.is_empty()) {
        parts.push(heading(3, &person.person));
        parts.push(Part {
            area: Area::Body,
            style: Style::Body,
            block: Block::List {
                items: person.documents.clone(),
            },
        });
    }
    parts.push(text(wording::request(letter.deadline)));
    parts.push(heading(2, wording::LEGAL_NOTICE_HEADING));
    parts.extend(letter.legal_notice.iter().cloned().map(text));
    parts.push(paragraph(
        Area::Body,
        Style::Closing,
        vec![wording::CLOSING.to_owned()],
    ));
    parts.push(text(letter.letterhead.signature.clone()));
    parts
}

fn paragraph(area: Area, style: Style, lines: Vec<String>) -> Part {
    Part {
        area,
        style,
        block: Block::Paragraph { lines },
    }
}

fn text(line: String) -> Part {
    paragraph(Area::Body, Style::Body, vec![line])
}

fn heading(level: u16, text: &str) -> Part {
    let style = match level {
        1 => Style::H1,
        2 => Style::H2,
        _ => Style::H3,
    };
    Part {
        area: Area::Body,
        style,
        block: Block::Heading {
            level,
            text: text.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::example;

    fn headings(parts: &[Part]) -> Vec<(u16, &str)> {
        parts
            .iter()
            .filter_map(|p| match &p.block {
                Block::Heading { level, text } => Some((*level, text.as_str())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn headings_nest_without_skipping_a_level() {
        let parts = parts(&example());
        assert_eq!(
            headings(&parts),
            [
                (1, wording::SUBJECT),
                (2, "Fehlende Unterlagen"),
                (3, "Erika Mustermann"),
                (3, "Bedarfsgemeinschaft"),
                (2, "Rechtsfolgenbelehrung"),
            ]
        );
    }

    #[test]
    fn a_person_who_owes_nothing_gets_no_heading() {
        let mut letter = example();
        letter.persons[1].documents.clear();
        let parts = parts(&letter);
        assert!(!headings(&parts).contains(&(3, "Bedarfsgemeinschaft")));
    }

    #[test]
    fn the_body_ends_with_closing_and_signature() {
        let parts = parts(&example());
        let last: Vec<_> = parts[parts.len() - 2..]
            .iter()
            .map(|p| p.block.clone())
            .collect();
        assert_eq!(
            last,
            [
                Block::Paragraph {
                    lines: vec!["Mit freundlichen Grüßen".into()]
                },
                Block::Paragraph {
                    lines: vec!["Ihr Jobcenter Musterstadt".into()]
                },
            ]
        );
    }
}
