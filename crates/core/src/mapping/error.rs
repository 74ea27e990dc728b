//! The one error type of mapping loading: a problem in a file, at a line,
//! rendered `file:line: message`, and the collector the compiler reports
//! into (it never stops at the first problem).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in the mapping files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// All problems found while loading; the set is refused if there is any.
#[derive(Debug, Clone)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// A file's name and text, for turning spans into lines.
pub(crate) trait Source {
    fn path(&self) -> &Path;
    fn text(&self) -> &str;
}

/// A TOML item that problems are reported against: its file, its span and
/// the prefix of every message about it (`check X`, `rule Y`, `group Z`).
pub(crate) struct Item<'a> {
    pub src: &'a dyn Source,
    pub span: Range<usize>,
    pub what: String,
}

/// The problems collected so far.
#[derive(Default)]
pub(crate) struct Errs {
    pub list: Vec<LoadError>,
}

impl Errs {
    /// A problem at a span of a file (an empty span at 0 means "no line":
    /// a default value that is not in the file).
    pub fn at(&mut self, src: &dyn Source, span: Range<usize>, message: impl Into<String>) {
        self.list.push(LoadError {
            file: src.path().to_path_buf(),
            line: (span.end > 0).then(|| line_of(src.text(), span.start)),
            message: message.into(),
        });
    }

    /// A problem of a whole file or folder, without a line.
    pub fn file(&mut self, file: &Path, message: impl Into<String>) {
        self.list.push(LoadError {
            file: file.to_path_buf(),
            line: None,
            message: message.into(),
        });
    }

    /// A problem of an item: `<what>: <message>` at the item's line.
    pub fn item(&mut self, item: &Item<'_>, message: impl fmt::Display) {
        self.at(
            item.src,
            item.span.clone(),
            format!("{}: {message}", item.what),
        );
    }

    /// How many problems there are (to tell whether a step added any).
    pub fn count(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_and_message() {
        let e = LoadError {
            file: "m/a.toml".into(),
            line: Some(3),
            message: "kaputt".into(),
        };
        assert_eq!(e.to_string(), "m/a.toml:3: kaputt");
        let f = LoadError { line: None, ..e };
        assert_eq!(f.to_string(), "m/a.toml: kaputt");
        assert_eq!(
            LoadErrors(vec![f.clone(), f]).to_string(),
            "m/a.toml: kaputt\nm/a.toml: kaputt"
        );
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
