//! Draws the laid-out pages with krilla and describes them for assistive
//! technology: every content line is a marked span whose identifier goes
//! into the tag tree (H1–H3, P, L/LI/Lbl/LBody, in reading order), the
//! return address and the page numbers are artifacts, the headings make the
//! outline. krilla's PDF/UA-1 validator is on, so a document that would not
//! conform is an error, not a file; it also sets `DisplayDocTitle`.

use std::collections::HashMap;
use std::num::NonZeroU16;

use chrono::{Datelike, NaiveDate};
use krilla::configure::{Accessibility, ConfigurationBuilder};
use krilla::destination::XyzDestination;
use krilla::geom::Point;
use krilla::metadata::{DateTime, Metadata};
use krilla::outline::{Outline, OutlineNode};
use krilla::page::PageSettings;
use krilla::surface::Surface;
use krilla::tagging::{
    Artifact, ArtifactType, ContentTag, Identifier, ListNumbering, Node, SpanTag, Tag, TagGroup,
    TagTree,
};
use krilla::{Document, SerializeSettings};

use crate::content::{Block, Part};
use crate::font::Fonts;
use crate::layout::{metrics, Anchor, Layout, Line, Mark, PAGE_HEIGHT, PAGE_WIDTH};
use crate::wording;
use crate::LetterError;

/// The document's language (catalog and structure root).
pub(crate) const LANGUAGE: &str = "de-DE";

/// The marked-content identifiers of one part's lines, by (part, item, label).
type Marks = HashMap<(usize, usize, bool), Vec<Identifier>>;

/// The PDF of the laid-out letter.
pub(crate) fn write(
    parts: &[Part],
    layout: &Layout,
    fonts: &Fonts,
    date: NaiveDate,
) -> Result<Vec<u8>, LetterError> {
    let mut document = Document::new_with(settings()?);
    let mut marks = Marks::new();
    for lines in &layout.pages {
        draw_page(&mut document, lines, fonts, &mut marks)?;
    }
    document.set_tag_tree(tag_tree(parts, &mut marks));
    document.set_outline(outline(parts, &layout.anchors));
    document.set_metadata(metadata(date));
    document.finish().map_err(LetterError::from)
}

/// PDF/UA-1 (which means PDF 1.7, tagging on, XMP metadata).
fn settings() -> Result<SerializeSettings, LetterError> {
    let configuration = ConfigurationBuilder::new()
        .with_accessibility_validator(Accessibility::UA1)
        .finish()
        .map_err(|e| LetterError::Pdf(format!("{e:?}")))?;
    Ok(SerializeSettings {
        configuration,
        enable_tagging: true,
        ..SerializeSettings::default()
    })
}

/// Title, language and the letter's date; nothing personal.
fn metadata(date: NaiveDate) -> Metadata {
    let created = DateTime::new(date.year().clamp(0, 9999) as u16)
        .month(date.month() as u8)
        .day(date.day() as u8);
    Metadata::new()
        .title(wording::TITLE.to_owned())
        .language(LANGUAGE.to_owned())
        .creator("allegro-bridge".to_owned())
        .creation_date(created)
}

fn draw_page(
    document: &mut Document,
    lines: &[Line],
    fonts: &Fonts,
    marks: &mut Marks,
) -> Result<(), LetterError> {
    let settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT).expect("A4 is a valid page size");
    let mut page = document.start_page_with(settings);
    let mut surface = page.surface();
    for line in lines {
        draw_line(&mut surface, line, fonts, marks)?;
    }
    surface.finish();
    page.finish();
    Ok(())
}

/// One line in its own marked-content sequence: a span of its part, or an
/// artifact.
fn draw_line(
    surface: &mut Surface,
    line: &Line,
    fonts: &Fonts,
    marks: &mut Marks,
) -> Result<(), LetterError> {
    let m = metrics(line.style);
    let face = if m.bold { &fonts.bold } else { &fonts.regular };
    let glyphs = face.glyphs(&line.text)?;
    let tag = match line.mark {
        Mark::Content { .. } => ContentTag::Span(SpanTag::empty()),
        Mark::Layout => ContentTag::Artifact(Artifact::with_kind(ArtifactType::Layout)),
        Mark::PageNumber => ContentTag::Artifact(Artifact::with_kind(ArtifactType::PageNumber)),
    };
    let id = surface.start_tagged(tag);
    let start = Point::from_xy(line.x, line.baseline);
    surface.draw_glyphs(start, &glyphs, face.font(), &line.text, m.size, false);
    surface.end_tagged();
    if let Mark::Content { part, item, label } = line.mark {
        marks.entry((part, item, label)).or_default().push(id);
    }
    Ok(())
}

/// The structure tree: the parts in reading order, each with the
/// identifiers of its lines. A part without a drawn line (blank text) is
/// left out, as krilla would drop an empty group anyway.
fn tag_tree(parts: &[Part], marks: &mut Marks) -> TagTree {
    let mut tree = TagTree::new().with_lang(Some(LANGUAGE.to_owned()));
    for (index, part) in parts.iter().enumerate() {
        if let Some(group) = part_group(index, &part.block, marks) {
            tree.push(group);
        }
    }
    tree
}

fn part_group(index: usize, block: &Block, marks: &mut Marks) -> Option<TagGroup> {
    let group = match block {
        Block::Heading { level, text } => {
            let level = NonZeroU16::new(*level).expect("heading levels start at 1");
            TagGroup::with_children(
                Tag::Hn(level, Some(text.clone())),
                take(marks, index, 0, false),
            )
        }
        Block::Paragraph { .. } => TagGroup::with_children(Tag::P, take(marks, index, 0, false)),
        Block::List { items } => list_group(index, items.len(), marks),
        Block::Artifact { .. } => return None,
    };
    (!group.children.is_empty()).then_some(group)
}

/// L with one LI per item, each a bullet (Lbl) and the item's text (LBody).
fn list_group(index: usize, items: usize, marks: &mut Marks) -> TagGroup {
    let mut list = TagGroup::new(Tag::L(ListNumbering::Disc));
    for item in 0..items {
        let label = take(marks, index, item, true);
        let text = take(marks, index, item, false);
        if text.is_empty() {
            continue;
        }
        let label = TagGroup::with_children(Tag::Lbl, label);
        let body = TagGroup::with_children(Tag::LBody, text);
        list.push(TagGroup::with_children(
            Tag::LI,
            vec![label.into(), body.into()],
        ));
    }
    list
}

/// The identifiers of one part's (or list item's) lines, as tree nodes.
fn take(marks: &mut Marks, part: usize, item: usize, label: bool) -> Vec<Node> {
    let ids = marks.remove(&(part, item, label)).unwrap_or_default();
    ids.into_iter().map(Node::from).collect()
}

/// The outline (bookmarks), which PDF/UA requires: every heading, nested
/// by level, pointing at where it starts.
fn outline(parts: &[Part], anchors: &[Anchor]) -> Outline {
    let mut entries: Vec<(u16, OutlineNode)> = Vec::new();
    for anchor in anchors {
        let Block::Heading { level, text } = &parts[anchor.part].block else {
            continue;
        };
        let target = XyzDestination::new(anchor.page, Point::from_xy(0.0, anchor.top));
        entries.push((*level, OutlineNode::new(text.clone(), target)));
    }
    let mut outline = Outline::new();
    for node in nest(entries, OutlineNode::push_child) {
        outline.push_child(node);
    }
    outline
}

/// Outline entries as a tree: each entry becomes a child of the nearest
/// entry before it with a lower level; `adopt` appends a child to a parent.
fn nest<T>(entries: Vec<(u16, T)>, adopt: impl Fn(&mut T, T)) -> Vec<T> {
    let mut roots = Vec::new();
    let mut open: Vec<(u16, T)> = Vec::new();
    // Closes the open entries at `level` or deeper, each into its parent.
    let close = |open: &mut Vec<(u16, T)>, roots: &mut Vec<T>, level: u16| {
        while open.last().is_some_and(|(l, _)| *l >= level) {
            let (_, node) = open.pop().expect("checked above");
            match open.last_mut() {
                Some((_, parent)) => adopt(parent, node),
                None => roots.push(node),
            }
        }
    };
    for (level, node) in entries {
        close(&mut open, &mut roots, level);
        open.push((level, node));
    }
    close(&mut open, &mut roots, 0);
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn krilla_validates_pdf_ua_1() {
        let validators = settings().unwrap().configuration.validators();
        assert_eq!(validators.accessibility(), Some(Accessibility::UA1));
    }

    #[test]
    fn a_document_krilla_finds_not_conforming_is_an_error() {
        // No title and no outline: two PDF/UA-1 rules broken.
        let mut document = Document::new_with(settings().unwrap());
        let settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT).unwrap();
        document.start_page_with(settings).finish();
        let err = LetterError::from(document.finish().unwrap_err());
        let LetterError::NotConforming(rules) = err else {
            panic!("{err:?}")
        };
        assert!(rules.contains(&"NoDocumentTitle".to_owned()), "{rules:?}");
    }

    #[test]
    fn outline_entries_nest_by_level() {
        #[derive(Debug, PartialEq)]
        struct Entry(&'static str, Vec<Entry>);
        let entries = [(1, "a"), (2, "b"), (3, "c"), (3, "d"), (2, "e"), (1, "f")];
        let entries = entries
            .into_iter()
            .map(|(l, t)| (l, Entry(t, vec![])))
            .collect();
        let tree = nest(entries, |parent: &mut Entry, child| parent.1.push(child));
        let leaf = |t| Entry(t, vec![]);
        let b = Entry("b", vec![leaf("c"), leaf("d")]);
        assert_eq!(tree, [Entry("a", vec![b, leaf("e")]), leaf("f")]);
    }
}
