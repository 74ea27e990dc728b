//! Rule ids: every check, rule and schema message of a mapping has its own,
//! and a duplicate names where the first one is.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::mapping::error::{line_of, Errs, Source};
use crate::mapping::Origin;

/// The ids claimed so far, with where.
#[derive(Default)]
pub(super) struct Ids {
    origins: BTreeMap<String, Origin>,
}

impl Ids {
    /// Claims `id` for the item at `span`; reports a bad or duplicate id.
    pub fn claim(&mut self, src: &dyn Source, span: Range<usize>, id: &str, errs: &mut Errs) {
        if id.trim().is_empty() || id.contains(char::is_whitespace) {
            let msg = format!("rule id {id:?} must be non-empty and without spaces");
            errs.at(src, span, msg);
            return;
        }
        if let Some(prev) = self.origins.get(id) {
            let msg = format!(
                "duplicate rule id {id:?} (first defined at {}:{})",
                prev.file.display(),
                prev.line
            );
            errs.at(src, span, msg);
            return;
        }
        let origin = Origin {
            file: src.path().to_path_buf(),
            line: line_of(src.text(), span.start),
        };
        self.origins.insert(id.to_string(), origin);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, CHECK_OK};

    #[test]
    fn ids_are_unique_and_without_spaces() {
        let dup = format!("{CHECK_OK}\n{CHECK_OK}");
        check(
            &dup,
            &["t.toml:8: duplicate rule id \"OK\" (first defined at t.toml:1)"],
        );
        let spaced = CHECK_OK.replace("id = \"OK\"", "id = \"O K\"");
        check(
            &spaced,
            &["t.toml:1: rule id \"O K\" must be non-empty and without spaces"],
        );
        // Schema messages claim their rule ids too, before checks and rules.
        let clash = CHECK_OK.replace("id = \"OK\"", "id = \"S-REQUIRED\"");
        check(
            &clash,
            &["t.toml:1: duplicate rule id \"S-REQUIRED\" (first defined at texte.toml:2)"],
        );
    }
}
