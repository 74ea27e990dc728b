//! Greedy line breaking at spaces. Widths add up (one glyph per character,
//! no kerning, see `font`), so a line's width is the sum of its words' and
//! spaces' widths. Any run of whitespace is one space; a word wider than
//! the line (a long reference, say) is broken between characters.

use crate::LetterError;

/// `text` broken into lines no wider than `width`, in the units `measure`
/// returns. Empty or blank text gives no lines.
pub(crate) fn wrap<M>(text: &str, width: f32, measure: M) -> Result<Vec<String>, LetterError>
where
    M: Fn(&str) -> Result<f32, LetterError>,
{
    let space = measure(" ")?;
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut used = 0.0;
    for word in text.split_whitespace() {
        let needed = measure(word)?;
        if !line.is_empty() && used + space + needed <= width {
            line.push(' ');
            line.push_str(word);
            used += space + needed;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let mut pieces = split_word(word, width, &measure)?;
        line = pieces.pop().unwrap_or_default();
        used = measure(&line)?;
        lines.extend(pieces);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    Ok(lines)
}

/// A word cut into pieces that fit `width`, at least one character each.
fn split_word<M>(word: &str, width: f32, measure: &M) -> Result<Vec<String>, LetterError>
where
    M: Fn(&str) -> Result<f32, LetterError>,
{
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut used = 0.0;
    for c in word.chars() {
        let needed = measure(c.encode_utf8(&mut [0; 4]))?;
        if !piece.is_empty() && used + needed > width {
            pieces.push(std::mem::take(&mut piece));
            used = 0.0;
        }
        piece.push(c);
        used += needed;
    }
    pieces.push(piece);
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character is one unit wide.
    fn chars(text: &str) -> Result<f32, LetterError> {
        Ok(text.chars().count() as f32)
    }

    fn lines(text: &str, width: f32) -> Vec<String> {
        wrap(text, width, chars).unwrap()
    }

    #[test]
    fn breaks_at_the_last_space_that_fits() {
        assert_eq!(
            lines("Bitte reichen Sie die Unterlagen ein", 13.0),
            ["Bitte reichen", "Sie die", "Unterlagen", "ein"]
        );
    }

    #[test]
    fn a_line_may_be_exactly_as_wide_as_the_width() {
        assert_eq!(lines("ab cd", 5.0), ["ab cd"]);
    }

    #[test]
    fn whitespace_runs_and_newlines_are_one_space() {
        assert_eq!(lines("  a \t b\n c  ", 80.0), ["a b c"]);
    }

    #[test]
    fn blank_text_has_no_lines() {
        assert!(lines(" \n ", 10.0).is_empty());
    }

    #[test]
    fn an_overlong_word_is_cut_between_characters() {
        assert_eq!(
            lines("Az 0123456789 x", 4.0),
            ["Az", "0123", "4567", "89 x"]
        );
    }

    #[test]
    fn no_line_is_wider_than_the_width() {
        let text = "Lohnabrechnungen der letzten drei Monate vor Antragstellung, Kontoauszüge";
        for width in 1..40 {
            for line in lines(text, width as f32) {
                assert!(line.chars().count() <= width, "{line:?} at {width}");
            }
        }
    }

    #[test]
    fn no_word_is_lost() {
        let text = "Mietvertrag Nebenkostenabrechnung Kontoauszüge Aufenthaltstitel";
        assert_eq!(lines(text, 25.0).join(" "), text);
    }
}
