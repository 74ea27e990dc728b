//! Places the letter's parts on A4 pages: the letterhead, the address
//! field and the information block at their DIN 5008 (form B) places on
//! the first page (`areas`), then the body flowing over as many pages as it
//! needs (`flow`), and "Seite n von m" at the foot of each. Pure arithmetic
//! in PDF points (1/72 inch, origin top left); `pdf` draws the result.

mod areas;
mod flow;

use crate::content::{Area, Part, Style};
use crate::font::{Face, Fonts};
use crate::wording;
use crate::wrap::wrap;
use crate::LetterError;

/// Points per millimetre.
const MM: f32 = 72.0 / 25.4;
pub(crate) const PAGE_WIDTH: f32 = 210.0 * MM;
pub(crate) const PAGE_HEIGHT: f32 = 297.0 * MM;
const LEFT: f32 = 25.0 * MM;
const RIGHT: f32 = PAGE_WIDTH - 20.0 * MM;
/// Where the body ends on every page.
const BOTTOM: f32 = PAGE_HEIGHT - 25.0 * MM;
const FOOTER_BASELINE: f32 = PAGE_HEIGHT - 14.0 * MM;

/// How a style is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Metrics {
    pub bold: bool,
    pub size: f32,
    /// From one baseline to the next.
    pub leading: f32,
    /// Extra space above a part in this style, unless it opens its area or page.
    pub space_before: f32,
    /// Never the last thing on a page: headings, the closing formula.
    pub keep_with_next: bool,
}

pub(crate) fn metrics(style: Style) -> Metrics {
    let (bold, size, leading, space_before, keep_with_next) = match style {
        Style::Authority => (true, 14.0, 17.0, 0.0, false),
        Style::Letterhead => (false, 9.0, 11.5, 2.0, false),
        Style::ReturnAddress => (false, 7.0, 9.0, 0.0, false),
        Style::Address => (false, 11.0, 14.0, 0.0, false),
        Style::Info => (false, 9.0, 12.0, 6.0, false),
        Style::Body => (false, 11.0, 15.0, 7.0, false),
        Style::Salutation => (false, 11.0, 15.0, 14.0, false),
        Style::Closing => (false, 11.0, 15.0, 14.0, true),
        Style::H1 => (true, 13.0, 17.0, 0.0, true),
        Style::H2 => (true, 12.0, 16.0, 14.0, true),
        Style::H3 => (true, 11.0, 15.0, 8.0, true),
        Style::Footer => (false, 8.0, 10.0, 0.0, false),
    };
    Metrics {
        bold,
        size,
        leading,
        space_before,
        keep_with_next,
    }
}

/// What a drawn line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Mark {
    /// Part `part` of the content; for a list, its item `item` and whether
    /// the line is the item's bullet (`Lbl`) or its text (`LBody`).
    Content {
        part: usize,
        item: usize,
        label: bool,
    },
    /// Not content: the return address.
    Layout,
    /// Not content: "Seite n von m".
    PageNumber,
}

impl Mark {
    /// The text lines of part `part` (not a list's).
    fn text(part: usize) -> Self {
        Mark::Content {
            part,
            item: 0,
            label: false,
        }
    }
}

/// One line of text at its place.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Line {
    pub text: String,
    pub style: Style,
    pub x: f32,
    pub baseline: f32,
    pub mark: Mark,
}

/// Where a heading starts, for the document outline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Anchor {
    pub part: usize,
    pub page: usize,
    pub top: f32,
}

/// The laid-out letter: each page's lines, and where the headings are.
#[derive(Debug)]
pub(crate) struct Layout {
    pub pages: Vec<Vec<Line>>,
    pub anchors: Vec<Anchor>,
}

/// Lays out `parts` (in reading order, first-page areas before the body).
pub(crate) fn layout(parts: &[Part], fonts: &Fonts) -> Result<Layout, LetterError> {
    let mut sheet = Sheet::new(fonts);
    let (first_page, body) = parts.split_at(
        parts
            .iter()
            .position(|p| p.area == Area::Body)
            .unwrap_or(parts.len()),
    );
    let body_top = areas::place(&mut sheet, first_page)?;
    if body_top > BOTTOM {
        return Err(LetterError::HeaderTooLong);
    }
    flow::place(&mut sheet, body, first_page.len(), body_top)?;
    sheet.number_pages()?;
    Ok(sheet.layout)
}

/// The pages being filled, with the fonts to measure by.
struct Sheet<'a> {
    fonts: &'a Fonts,
    layout: Layout,
}

impl<'a> Sheet<'a> {
    fn new(fonts: &'a Fonts) -> Self {
        Self {
            fonts,
            layout: Layout {
                pages: vec![Vec::new()],
                anchors: Vec::new(),
            },
        }
    }

    fn face(&self, style: Style) -> &'a Face {
        if metrics(style).bold {
            &self.fonts.bold
        } else {
            &self.fonts.regular
        }
    }

    /// `text` wrapped to `width` points in `style`.
    fn wrap(&self, text: &str, style: Style, width: f32) -> Result<Vec<String>, LetterError> {
        let face = self.face(style);
        let size = metrics(style).size;
        wrap(text, width, |s| Ok(face.width(s)? * size))
    }

    /// A paragraph's hard lines, each wrapped; every line but the last ends
    /// in a space, so that text read out or copied keeps its word breaks.
    fn paragraph_lines(
        &self,
        lines: &[String],
        style: Style,
        width: f32,
    ) -> Result<Vec<String>, LetterError> {
        let mut wrapped = Vec::new();
        for line in lines {
            wrapped.extend(self.wrap(line, style, width)?);
        }
        let last = wrapped.len().saturating_sub(1);
        for line in &mut wrapped[..last] {
            line.push(' ');
        }
        Ok(wrapped)
    }

    /// Puts a line on page `page` with its top at `top`.
    fn put(&mut self, page: usize, text: String, style: Style, x: f32, top: f32, mark: Mark) {
        let baseline = top + self.face(style).ascent() * metrics(style).size;
        self.layout.pages[page].push(Line {
            text,
            style,
            x,
            baseline,
            mark,
        });
    }

    fn last_page(&self) -> usize {
        self.layout.pages.len() - 1
    }

    fn new_page(&mut self) {
        self.layout.pages.push(Vec::new());
    }

    /// "Seite n von m", right-aligned at the foot of every page.
    fn number_pages(&mut self) -> Result<(), LetterError> {
        let pages = self.layout.pages.len();
        for page in 0..pages {
            let text = wording::page_of(page + 1, pages);
            let x = RIGHT - self.face(Style::Footer).width(&text)? * metrics(Style::Footer).size;
            let top =
                FOOTER_BASELINE - self.face(Style::Footer).ascent() * metrics(Style::Footer).size;
            self.put(page, text, Style::Footer, x, top, Mark::PageNumber);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::content::parts;
    use crate::tests::example;
    use crate::{Letter, PersonDocuments};

    fn laid_out(letter: &Letter) -> Layout {
        layout(&parts(letter), &Fonts::load().unwrap()).unwrap()
    }

    /// Three persons owing 20 documents each.
    fn long_letter() -> Letter {
        let mut letter = example();
        letter.persons = (0..3)
            .map(|p| PersonDocuments {
                person: format!("Person {p}"),
                documents: (1..=20)
                    .map(|n| format!("Nachweis {}", p * 20 + n))
                    .collect(),
            })
            .collect();
        letter
    }

    fn width(line: &Line) -> f32 {
        let fonts = Fonts::load().unwrap();
        let face = if metrics(line.style).bold {
            &fonts.bold
        } else {
            &fonts.regular
        };
        face.width(&line.text).unwrap() * metrics(line.style).size
    }

    #[test]
    fn every_line_stays_inside_the_margins() {
        for letter in [example(), long_letter()] {
            for line in laid_out(&letter).pages.iter().flatten() {
                let right = line.x + width(line);
                // A wrapped line's trailing space may reach past the margin.
                let slack = if line.text.ends_with(' ') { 4.0 } else { 0.01 };
                assert!(
                    line.x >= LEFT && right <= RIGHT + slack,
                    "{line:?} ends at {right}"
                );
                if line.mark != Mark::PageNumber {
                    assert!(line.baseline < BOTTOM, "{line:?}");
                }
            }
        }
    }

    #[test]
    fn the_recipient_stands_in_the_envelope_window() {
        let layout = laid_out(&example());
        let name = layout.pages[0]
            .iter()
            .find(|l| l.text.starts_with("Erika"))
            .unwrap();
        assert_eq!(name.x, 25.0 * MM);
        let top = name.baseline - Fonts::load().unwrap().regular.ascent() * 11.0;
        assert!((top - 62.7 * MM).abs() < 0.01, "{top}");
    }

    #[test]
    fn a_long_list_flows_onto_further_pages_with_every_item() {
        let layout = laid_out(&long_letter());
        assert!(layout.pages.len() >= 2);
        let items = layout
            .pages
            .iter()
            .flatten()
            .filter(|l| l.text.starts_with("Nachweis "))
            .count();
        assert_eq!(items, 60);
        let bullets = layout
            .pages
            .iter()
            .flatten()
            .filter(|l| l.text == "•")
            .count();
        assert_eq!(bullets, 60);
    }

    #[test]
    fn no_page_ends_with_a_heading_or_the_closing() {
        for letter in [example(), long_letter()] {
            for page in laid_out(&letter).pages {
                let last = page.iter().rfind(|l| l.mark != Mark::PageNumber).unwrap();
                assert!(!metrics(last.style).keep_with_next, "{last:?}");
            }
        }
    }

    /// Pages a paragraph's (or list item's) lines are on, by part.
    fn pages_of_parts(layout: &Layout) -> HashMap<Mark, Vec<usize>> {
        let mut pages: HashMap<Mark, Vec<usize>> = HashMap::new();
        for (page, lines) in layout.pages.iter().enumerate() {
            for line in lines
                .iter()
                .filter(|l| matches!(l.mark, Mark::Content { .. }))
            {
                pages.entry(line.mark).or_default().push(page);
            }
        }
        pages
    }

    #[test]
    fn a_paragraph_split_by_a_page_leaves_no_line_alone() {
        let sentence = "Das ist ein Satz der Rechtsfolgenbelehrung mit einigen Wörtern. ";
        let mut split = 0;
        // One-line paragraphs before the long ones move the page breaks
        // through every line of them.
        for shift in 0..12 {
            let mut letter = example();
            letter.legal_notice = vec!["Kurz.".to_owned(); shift];
            letter
                .legal_notice
                .extend((0..20).map(|n| sentence.repeat(4 + n % 5)));
            for (mark, pages) in pages_of_parts(&laid_out(&letter)) {
                let (first, last) = (pages[0], pages[pages.len() - 1]);
                if first != last {
                    split += 1;
                    let on = |page| pages.iter().filter(|p| **p == page).count();
                    assert!(
                        on(first) >= 2 && on(last) >= 2,
                        "{mark:?} on pages {pages:?}"
                    );
                }
            }
        }
        assert!(split >= 12, "only {split} paragraphs cross a page");
    }

    #[test]
    fn every_page_is_numbered_of_the_total() {
        let layout = laid_out(&long_letter());
        let total = layout.pages.len();
        for (n, page) in layout.pages.iter().enumerate() {
            let numbers: Vec<_> = page.iter().filter(|l| l.mark == Mark::PageNumber).collect();
            assert_eq!(numbers.len(), 1);
            assert_eq!(numbers[0].text, format!("Seite {} von {total}", n + 1));
        }
    }

    #[test]
    fn headings_are_anchored_where_they_are_drawn() {
        let layout = laid_out(&long_letter());
        assert_eq!(layout.anchors.len(), 1 + 1 + 3 + 1);
        for anchor in &layout.anchors {
            let drawn = layout.pages[anchor.page]
                .iter()
                .any(|l| l.mark == Mark::text(anchor.part));
            assert!(drawn, "{anchor:?}");
        }
    }
}
