//! The body: headings, paragraphs and lists one below the other, on as
//! many pages as they need. A page breaks between lines; a heading or the
//! closing formula is never the last line on a page, and a paragraph leaves
//! neither its first nor its last line alone on a page when it has more.

use super::{metrics, Anchor, Mark, Sheet, BOTTOM, LEFT, MM, RIGHT};
use crate::content::{Block, Part, Style};
use crate::LetterError;

/// Where the body continues on pages after the first.
const TOP: f32 = 25.0 * MM;
/// List items: the bullet's and the text's indent.
const BULLET_INDENT: f32 = 3.0 * MM;
const ITEM_INDENT: f32 = 8.0 * MM;
const BULLET: &str = "•";

/// Places the body's parts (numbered from `first_index`) from `top` on the
/// first page on.
pub(super) fn place(
    sheet: &mut Sheet,
    parts: &[Part],
    first_index: usize,
    top: f32,
) -> Result<(), LetterError> {
    // Not fresh: the first page has the areas above, so a page may break
    // before the first line already.
    let mut flow = Flow {
        sheet,
        y: top,
        fresh: false,
    };
    for (n, part) in parts.iter().enumerate() {
        flow.part(first_index + n, part)?;
    }
    Ok(())
}

struct Flow<'s, 'f> {
    sheet: &'s mut Sheet<'f>,
    /// The top of the next line on the last page.
    y: f32,
    /// Nothing of the body is on the last page yet.
    fresh: bool,
}

impl Flow<'_, '_> {
    fn part(&mut self, index: usize, part: &Part) -> Result<(), LetterError> {
        match &part.block {
            Block::Heading { text, .. } => self.heading(index, text, part.style),
            Block::Paragraph { lines } => self.paragraph(index, lines, part.style),
            Block::List { items } => self.list(index, items),
            Block::Artifact { .. } => unreachable!("no artifact in the body"),
        }
    }

    /// A heading, remembered for the outline.
    fn heading(&mut self, index: usize, text: &str, style: Style) -> Result<(), LetterError> {
        let lines = self
            .sheet
            .paragraph_lines(&[text.to_owned()], style, RIGHT - LEFT)?;
        if lines.is_empty() {
            return Ok(());
        }
        self.space(metrics(style).space_before);
        self.keep(lines.len(), style);
        let page = self.sheet.last_page();
        self.sheet.layout.anchors.push(Anchor {
            part: index,
            page,
            top: self.y,
        });
        self.lines(lines, style, LEFT, Mark::text(index));
        Ok(())
    }

    fn paragraph(
        &mut self,
        index: usize,
        lines: &[String],
        style: Style,
    ) -> Result<(), LetterError> {
        let lines = self.sheet.paragraph_lines(lines, style, RIGHT - LEFT)?;
        self.space(metrics(style).space_before);
        self.keep(lines.len(), style);
        self.lines(lines, style, LEFT, Mark::text(index));
        Ok(())
    }

    /// A bulleted list; each bullet stands on its item's first line.
    fn list(&mut self, index: usize, items: &[String]) -> Result<(), LetterError> {
        self.space(metrics(Style::Body).space_before / 2.0);
        for (item, text) in items.iter().enumerate() {
            let lines = self.sheet.paragraph_lines(
                std::slice::from_ref(text),
                Style::Body,
                RIGHT - LEFT - ITEM_INDENT,
            )?;
            let Some((page, top)) = self.lines(
                lines,
                Style::Body,
                LEFT + ITEM_INDENT,
                Mark::Content {
                    part: index,
                    item,
                    label: false,
                },
            ) else {
                continue;
            };
            let label = Mark::Content {
                part: index,
                item,
                label: true,
            };
            self.sheet.put(
                page,
                BULLET.to_owned(),
                Style::Body,
                LEFT + BULLET_INDENT,
                top,
                label,
            );
        }
        Ok(())
    }

    /// `lines` one below the other at `x`, breaking the page where needed
    /// but not after a first or before a last line; returns the page and
    /// top of the first line.
    fn lines(
        &mut self,
        lines: Vec<String>,
        style: Style,
        x: f32,
        mark: Mark,
    ) -> Option<(usize, f32)> {
        let leading = metrics(style).leading;
        let count = lines.len();
        let mut first = None;
        for (n, text) in lines.into_iter().enumerate() {
            let together = lines_together(n, count);
            self.room_for(leading * together as f32);
            first.get_or_insert((self.sheet.last_page(), self.y));
            self.sheet
                .put(self.sheet.last_page(), text, style, x, self.y, mark);
            self.y += leading;
            self.fresh = false;
        }
        first
    }

    /// Adds `space` above the next line unless it opens a page.
    fn space(&mut self, space: f32) {
        if !self.fresh {
            self.y += space;
        }
    }

    /// For a style kept with the next part: room for its `count` lines and
    /// one body line after them.
    fn keep(&mut self, count: usize, style: Style) {
        let m = metrics(style);
        if m.keep_with_next {
            self.room_for(m.leading * count as f32 + metrics(Style::Body).leading);
        }
    }

    /// Starts a new page unless `height` more fits on this one (a fresh
    /// page takes what comes, or a too-long part would never be placed).
    fn room_for(&mut self, height: f32) {
        if self.fresh || self.y + height <= BOTTOM {
            return;
        }
        self.sheet.new_page();
        self.y = TOP;
        self.fresh = true;
    }
}

/// How many lines from line `n` of `count` on must fit on the page for
/// line `n` to go there: the first two together (all three of a
/// three-line paragraph, which cannot be split without leaving one
/// alone), the last two together, any other line alone.
fn lines_together(n: usize, count: usize) -> usize {
    match n {
        0 if count <= 3 => count,
        0 => 2,
        _ if n + 2 == count => 2,
        _ => 1,
    }
}
