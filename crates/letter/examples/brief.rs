//! Writes an example "Aufforderung zur Mitwirkung" with fictitious data to
//! the path given as argument:
//!
//! ```text
//! cargo run -p allegro-letter --example brief -- /tmp/brief.pdf
//! pdftoppm -png -r 60 -singlefile /tmp/brief.pdf docs/mitwirkung-brief
//! ```
//!
//! The second line makes the picture of its first page in the docs.

use std::process::ExitCode;

use allegro_letter::{
    render, Letter, Letterhead, PersonDocuments, Recipient, DEFAULT_LEGAL_NOTICE,
};
use chrono::NaiveDate;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: brief OUTPUT.pdf");
        return ExitCode::from(2);
    };
    let pdf = match render(&example()) {
        Ok(pdf) => pdf,
        Err(error) => {
            eprintln!("brief: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = std::fs::write(&path, pdf) {
        eprintln!("brief: {}: {error}", path.to_string_lossy());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn lines(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|line| line.to_string()).collect()
}

/// Fictitious: Erika Mustermann and the Jobcenter Musterstadt.
fn example() -> Letter {
    Letter {
        letterhead: Letterhead {
            authority: "Jobcenter Musterstadt".into(),
            address: lines(&["Musterweg 5", "12345 Musterstadt"]),
            contact: lines(&[
                "Telefon: 01234 567-0",
                "E-Mail: jobcenter-musterstadt@example.org",
                "Öffnungszeiten: Mo–Fr 8–12 Uhr, Do 14–18 Uhr",
            ]),
            signature: "Ihr Jobcenter Musterstadt".into(),
        },
        recipient: Recipient {
            name: "Erika Mustermann".into(),
            address: lines(&["Musterstraße 1", "12345 Musterstadt"]),
        },
        date: NaiveDate::from_ymd_opt(2026, 12, 7).expect("a date"),
        reference: "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b".into(),
        deadline: NaiveDate::from_ymd_opt(2026, 12, 21).expect("a date"),
        persons: vec![
            PersonDocuments {
                person: "Erika Mustermann".into(),
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
