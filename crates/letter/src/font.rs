//! The embedded font (Fira Sans, SIL Open Font License, `fonts/OFL.txt`),
//! compiled into the binary: nothing is read from the file system. A `Face`
//! turns text into glyphs with their advance widths, one glyph per
//! character, so what the line breaker measures is exactly what is drawn
//! (no kerning or ligatures, which a letter does not need). krilla embeds
//! the font subset to the glyphs used.

use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::charmap::Charmap;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, MetadataProvider};

use crate::LetterError;

const REGULAR: &[u8] = include_bytes!("../fonts/FiraSans-Regular.ttf");
const BOLD: &[u8] = include_bytes!("../fonts/FiraSans-Bold.ttf");

/// The letter's two faces.
pub(crate) struct Fonts {
    pub regular: Face,
    pub bold: Face,
}

impl Fonts {
    pub(crate) fn load() -> Result<Self, LetterError> {
        Ok(Self {
            regular: Face::load(REGULAR)?,
            bold: Face::load(BOLD)?,
        })
    }
}

/// One face: krilla's handle to draw with and skrifa's tables to measure with.
pub(crate) struct Face {
    font: Font,
    charmap: Charmap<'static>,
    metrics: GlyphMetrics<'static>,
    units_per_em: f32,
    ascent: f32,
}

impl Face {
    fn load(data: &'static [u8]) -> Result<Self, LetterError> {
        let font = Font::new(data.into(), 0).ok_or(LetterError::Font)?;
        let reader = FontRef::new(data).map_err(|_| LetterError::Font)?;
        let metrics = reader.glyph_metrics(Size::unscaled(), LocationRef::default());
        let units_per_em = font.units_per_em();
        let ascent = reader
            .metrics(Size::unscaled(), LocationRef::default())
            .ascent
            / units_per_em;
        let charmap = reader.charmap();
        Ok(Self {
            font,
            charmap,
            metrics,
            units_per_em,
            ascent,
        })
    }

    /// krilla's handle, for drawing.
    pub(crate) fn font(&self) -> Font {
        self.font.clone()
    }

    /// The ascender in em: from the top of a line to its baseline.
    pub(crate) fn ascent(&self) -> f32 {
        self.ascent
    }

    /// The glyphs of `text`, advances in em, each with the byte range of
    /// its character (krilla writes the text behind each glyph into the
    /// PDF, so it can be copied and read aloud).
    pub(crate) fn glyphs(&self, text: &str) -> Result<Vec<KrillaGlyph>, LetterError> {
        text.char_indices()
            .map(|(at, c)| {
                let (id, advance) = self.glyph(c)?;
                Ok(KrillaGlyph::new(
                    id,
                    advance,
                    0.0,
                    0.0,
                    0.0,
                    at..at + c.len_utf8(),
                    None,
                ))
            })
            .collect()
    }

    /// The width of `text` in em.
    pub(crate) fn width(&self, text: &str) -> Result<f32, LetterError> {
        text.chars().map(|c| Ok(self.glyph(c)?.1)).sum()
    }

    /// The glyph of `c` and its advance in em; `.notdef` (glyph 0) is no
    /// glyph: PDF/UA forbids it, and it would show a box instead of a letter.
    fn glyph(&self, c: char) -> Result<(GlyphId, f32), LetterError> {
        let id = self
            .charmap
            .map(c)
            .filter(|id| id.to_u32() != 0)
            .ok_or(LetterError::MissingGlyph { character: c })?;
        let units = self.metrics.advance_width(id).unwrap_or(0.0);
        Ok((GlyphId::new(id.to_u32()), units / self.units_per_em))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_faces_load_and_cover_german() {
        let fonts = Fonts::load().unwrap();
        for face in [&fonts.regular, &fonts.bold] {
            let glyphs = face.glyphs("Grüße aus Köln – „Äpfel“ § 66 •").unwrap();
            assert_eq!(
                glyphs.len(),
                "Grüße aus Köln – „Äpfel“ § 66 •".chars().count()
            );
        }
    }

    #[test]
    fn bold_is_wider_than_regular() {
        let fonts = Fonts::load().unwrap();
        let text = "Mietvertrag";
        assert!(fonts.bold.width(text).unwrap() > fonts.regular.width(text).unwrap());
    }

    #[test]
    fn a_character_without_glyph_is_an_error_naming_it() {
        let fonts = Fonts::load().unwrap();
        let err = fonts.regular.glyphs("日").unwrap_err();
        assert_eq!(err, LetterError::MissingGlyph { character: '日' });
    }

    #[test]
    fn glyph_ranges_are_byte_ranges_of_their_characters() {
        let fonts = Fonts::load().unwrap();
        let ranges: Vec<_> = fonts
            .regular
            .glyphs("aß b")
            .unwrap()
            .into_iter()
            .map(|g| g.text_range)
            .collect();
        assert_eq!(ranges, [0..1, 1..3, 3..4, 4..5]);
    }
}
