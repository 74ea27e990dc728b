//! The first page's fixed places (DIN 5008 form B): the letterhead top
//! left, the address field for a window envelope (the return address as a
//! small line at its top, the recipient below), the information block on
//! the right. Each area grows downwards from its place; one that grows long
//! pushes the areas below it down, and the body starts below them all.

use super::{metrics, Mark, Sheet, LEFT, MM, RIGHT};
use crate::content::{Area, Block, Part, Style};
use crate::LetterError;

const LETTERHEAD_TOP: f32 = 15.0 * MM;
const LETTERHEAD_WIDTH: f32 = 95.0 * MM;
/// The return address sits just above the recipient in the envelope window.
const WINDOW_TOP: f32 = 55.0 * MM;
const WINDOW_WIDTH: f32 = 80.0 * MM;
const ADDRESS_TOP: f32 = 62.7 * MM;
const INFO_LEFT: f32 = 125.0 * MM;
const INFO_TOP: f32 = 50.0 * MM;
/// Where the subject starts, unless the areas above reach further down.
const BODY_TOP: f32 = 98.46 * MM;
/// The gap below each area.
const GAP: f32 = 8.0 * MM;

/// Places the first page's parts (indexes from 0); returns where the body starts.
pub(super) fn place(sheet: &mut Sheet, parts: &[Part]) -> Result<f32, LetterError> {
    let mut bottoms = Bottoms::default();
    for (index, part) in parts.iter().enumerate() {
        let (x, top, width) = bottoms.start(part.area, part.style);
        let lines = lines(sheet, index, part, width)?;
        let mut y = top;
        for (text, mark) in lines {
            sheet.put(0, text, part.style, x, y, mark);
            y += metrics(part.style).leading;
        }
        if y > top {
            *bottoms.of(part.area) = Some(y);
        }
    }
    Ok(bottoms.body_top())
}

/// A part's lines wrapped to `width`, each with what it belongs to.
fn lines(
    sheet: &Sheet,
    index: usize,
    part: &Part,
    width: f32,
) -> Result<Vec<(String, Mark)>, LetterError> {
    let (lines, mark) = match &part.block {
        Block::Artifact { text } => (sheet.wrap(text, part.style, width)?, Mark::Layout),
        Block::Paragraph { lines } => (
            sheet.paragraph_lines(lines, part.style, width)?,
            Mark::text(index),
        ),
        other => unreachable!("no {other:?} above the body"),
    };
    Ok(lines.into_iter().map(|line| (line, mark)).collect())
}

/// How far down each area reaches so far; `None` while it is empty.
#[derive(Default)]
struct Bottoms {
    letterhead: Option<f32>,
    window: Option<f32>,
    info: Option<f32>,
}

impl Bottoms {
    fn of(&mut self, area: Area) -> &mut Option<f32> {
        match area {
            Area::Letterhead => &mut self.letterhead,
            Area::Window => &mut self.window,
            Area::Info | Area::Body => &mut self.info,
        }
    }

    /// Where the next part of `area` in `style` starts (left, top) and how
    /// wide it may be: at the area's place, or below what is in it already
    /// with the style's space before.
    fn start(&self, area: Area, style: Style) -> (f32, f32, f32) {
        let after = |bottom: Option<f32>, empty: f32| {
            bottom.map_or(empty, |b| b + metrics(style).space_before)
        };
        match area {
            Area::Letterhead => (
                LEFT,
                after(self.letterhead, LETTERHEAD_TOP),
                LETTERHEAD_WIDTH,
            ),
            Area::Window => {
                let below_letterhead = self.letterhead.map_or(0.0, |b| b + GAP);
                let top = after(self.window, WINDOW_TOP).max(below_letterhead);
                let top = if style == Style::Address {
                    top.max(ADDRESS_TOP)
                } else {
                    top
                };
                (LEFT, top, WINDOW_WIDTH)
            }
            Area::Info | Area::Body => (INFO_LEFT, after(self.info, INFO_TOP), RIGHT - INFO_LEFT),
        }
    }

    /// The body starts below every area.
    fn body_top(&self) -> f32 {
        [self.letterhead, self.window, self.info]
            .into_iter()
            .flatten()
            .map(|b| b + GAP)
            .fold(BODY_TOP, f32::max)
    }
}
