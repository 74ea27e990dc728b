//! The rendered letter as independent tools see it: poppler's `pdftotext`,
//! `pdffonts` and `pdfinfo` (text, fonts, tags, structure tree) and `qpdf`
//! (syntax, catalog, outline). None of them shares code with krilla. A
//! missing tool fails the test with the command that installs it
//! (`scripts/test.sh` installs both packages).

use std::path::Path;
use std::process::Command;

use allegro_letter::{
    render, Letter, Letterhead, PersonDocuments, Recipient, DEFAULT_LEGAL_NOTICE,
};
use chrono::NaiveDate;

fn lines(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|line| line.to_string()).collect()
}

/// The example letter (as in `examples/brief.rs`).
fn example() -> Letter {
    Letter {
        letterhead: Letterhead {
            authority: "Jobcenter Musterstadt".into(),
            address: lines(&["Musterweg 5", "12345 Musterstadt"]),
            contact: lines(&["Telefon: 01234 567-0", "E-Mail: jobcenter@example.org"]),
            signature: "Ihr Jobcenter Musterstadt".into(),
        },
        recipient: Recipient {
            name: "Erika Mustermann".into(),
            address: lines(&["Musterstraße 1", "12345 Musterstadt"]),
        },
        date: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        reference: "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b".into(),
        deadline: NaiveDate::from_ymd_opt(2026, 12, 21).unwrap(),
        persons: vec![
            PersonDocuments {
                person: "Max Mustermann".into(),
                documents: lines(&["Lohnabrechnung", "Aufenthaltstitel"]),
            },
            PersonDocuments {
                person: "Bedarfsgemeinschaft".into(),
                documents: lines(&["Mietvertrag", "Kontoauszüge"]),
            },
        ],
        legal_notice: lines(DEFAULT_LEGAL_NOTICE),
    }
}

/// A letter owing 60 documents, 20 for each of three persons.
fn long_letter() -> Letter {
    let mut letter = example();
    letter.persons = ["Erika Mustermann", "Max Mustermann", "Bedarfsgemeinschaft"]
        .iter()
        .enumerate()
        .map(|(p, person)| PersonDocuments {
            person: person.to_string(),
            documents: (1..=20)
                .map(|n| format!("Nachweis {:02}", p * 20 + n))
                .collect(),
        })
        .collect();
    letter
}

/// Stands for the PDF file in a tool's arguments; without it, the file
/// goes last.
const PDF: &str = "{pdf}";

/// Renders `letter` into a temporary file and runs `program` on it.
fn run(letter: &Letter, program: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brief.pdf");
    std::fs::write(&path, render(letter).unwrap()).unwrap();
    run_on(&path, program, args)
}

fn run_on(path: &Path, program: &str, args: &[&str]) -> String {
    let mut args: Vec<&std::ffi::OsStr> = args
        .iter()
        .map(|a| {
            if *a == PDF {
                path.as_os_str()
            } else {
                a.as_ref()
            }
        })
        .collect();
    if !args.contains(&path.as_os_str()) {
        args.push(path.as_os_str());
    }
    let output = Command::new(program)
        .args(&args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): install it with `apt-get install -y {}`",
                package(program)
            )
        });
    // Lossy: pdfinfo -struct-text prints non-ASCII heading titles as raw UTF-16.
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn package(program: &str) -> &'static str {
    if program == "qpdf" {
        "qpdf"
    } else {
        "poppler-utils"
    }
}

/// The value of `Key:` in pdfinfo's output.
fn info<'a>(pdfinfo: &'a str, key: &str) -> &'a str {
    pdfinfo
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("pdfinfo shows no {key}:\n{pdfinfo}"))
        .trim()
}

#[test]
fn text_names_recipient_persons_documents_deadline_and_legal_notice() {
    let letter = example();
    let text = run(&letter, "pdftotext", &["-enc", "UTF-8", PDF, "-"]);
    let mut expected = vec![
        letter.recipient.name.as_str(),
        "21.12.2026",
        "Rechtsfolgenbelehrung",
    ];
    for person in &letter.persons {
        expected.push(&person.person);
        expected.extend(person.documents.iter().map(String::as_str));
    }
    for needle in expected {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn umlauts_and_sharp_s_come_out_as_written() {
    let text = run(&example(), "pdftotext", &["-enc", "UTF-8", PDF, "-"]);
    for word in [
        "Mit freundlichen Grüßen",
        "Musterstraße 1",
        "Kontoauszüge",
        "Bürgergeld",
        "§ 66 SGB I",
        "–",
    ] {
        assert!(text.contains(word), "{word:?} not in:\n{text}");
    }
}

#[test]
fn every_font_is_embedded_and_subset() {
    let fonts = run(&example(), "pdffonts", &[]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "no fonts:\n{fonts}");
    for row in rows {
        // name type… encoding emb sub uni object generation
        let columns: Vec<&str> = row.split_whitespace().collect();
        let [emb, sub, uni] = columns[columns.len() - 5..columns.len() - 2] else {
            unreachable!()
        };
        assert_eq!((emb, sub, uni), ("yes", "yes", "yes"), "{row}");
        assert!(
            row.contains("+FiraSans-"),
            "not the subset Fira Sans: {row}"
        );
    }
}

#[test]
fn pdfinfo_reports_tagged_pdf_ua_with_title() {
    let letter = example();
    let pdfinfo = run(&letter, "pdfinfo", &[]);
    assert_eq!(info(&pdfinfo, "Tagged"), "yes");
    assert_eq!(info(&pdfinfo, "Title"), "Aufforderung zur Mitwirkung");
    assert_eq!(info(&pdfinfo, "Page size"), "595.276 x 841.89 pts (A4)");
    let xmp = run(&letter, "pdfinfo", &["-meta"]);
    assert!(
        xmp.contains("<pdfuaid:part>1</pdfuaid:part>"),
        "no PDF/UA-1 identification:\n{xmp}"
    );
}

#[test]
fn catalog_names_the_language_and_shows_the_title() {
    let letter = example();
    let trailer = run(&letter, "qpdf", &["--show-object=trailer"]);
    let root = trailer
        .split("/Root ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    let catalog = run(&letter, "qpdf", &[&format!("--show-object={root}")]);
    assert!(catalog.contains("/Lang (de-DE)"), "{catalog}");
    assert!(catalog.contains("/DisplayDocTitle true"), "{catalog}");
    assert!(catalog.contains("/Marked true"), "{catalog}");
}

#[test]
fn qpdf_check_passes() {
    let report = run(&example(), "qpdf", &["--check"]);
    assert!(
        report.contains("No syntax or stream encoding errors found"),
        "{report}"
    );
}

#[test]
fn structure_tree_tags_headings_paragraphs_and_lists_in_reading_order() {
    let tree = run(&example(), "pdfinfo", &["-struct-text"]);
    let tags: Vec<&str> = tree
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('"'))
        .collect();
    let order = [
        "Document",
        "P (block)",
        "H2 \"Fehlende Unterlagen\" (block)",
        "H3 \"Max Mustermann\" (block)",
        "L (block):",
        "LI (block)",
        "Lbl (block)",
        "LBody (block)",
        "H3 \"Bedarfsgemeinschaft\" (block)",
        "H2 \"Rechtsfolgenbelehrung\" (block)",
    ];
    let mut rest = tags.iter();
    for tag in order {
        assert!(
            rest.any(|t| *t == tag),
            "{tag} missing or out of order in:\n{tree}"
        );
    }
    assert_eq!(
        tags.iter().filter(|t| t.starts_with("H1 ")).count(),
        1,
        "{tree}"
    );
    assert_eq!(
        tags.iter().filter(|t| **t == "LI (block)").count(),
        4,
        "{tree}"
    );
    assert!(tree.contains("\"Mit freundlichen Grüßen\""), "{tree}");
    assert!(
        !tree.contains("Seite 1 von"),
        "page numbers must be artifacts:\n{tree}"
    );
}

#[test]
fn outline_lists_every_heading() {
    let outline = run(&example(), "qpdf", &["--json", "--json-key=outlines"]);
    for title in [
        "Fehlende Unterlagen",
        "Max Mustermann",
        "Bedarfsgemeinschaft",
        "Rechtsfolgenbelehrung",
    ] {
        assert!(
            outline.contains(&format!("\"title\": \"{title}\"")),
            "{title} not in:\n{outline}"
        );
    }
}

#[test]
fn sixty_documents_flow_onto_further_pages_and_all_are_there() {
    let letter = long_letter();
    let pages: usize = info(&run(&letter, "pdfinfo", &[]), "Pages")
        .parse()
        .unwrap();
    assert!(pages >= 2, "{pages} page(s)");
    let text = run(&letter, "pdftotext", &["-enc", "UTF-8", PDF, "-"]);
    for person in &letter.persons {
        for label in &person.documents {
            assert!(
                text.lines().any(|line| line.trim() == label),
                "{label:?} not in:\n{text}"
            );
        }
    }
    assert!(
        text.contains(&format!("Seite {pages} von {pages}")),
        "{text}"
    );
    let tree = run(&letter, "pdfinfo", &["-struct-text"]);
    assert_eq!(
        tree.lines().filter(|l| l.trim() == "LBody (block)").count(),
        60,
        "{tree}"
    );
}
