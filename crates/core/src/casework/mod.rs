//! Casework: the caseworker's view of one application and the edits made to
//! it before it is released (issue #12, the workbench).
//!
//! Pure like the rest of the core: [`layout`] is the case layout a mapping
//! declares in `[casework]`, [`fix`] is the form that fixes every error of
//! a case in one submission, [`sections`] arranges an application into
//! the sections a caseworker reads (with the German labels of the mapping and
//! every finding beside its field), [`edit`] applies one change (set, add,
//! remove a value at a JSON Pointer) after checking it against the input
//! schema, and records it as a [`crate::record::Correction`]. The web layer
//! renders the one and calls the other; the store keeps the result; the
//! pipeline checks the corrected application again.

pub mod edit;
pub mod fields;
pub mod fix;
pub mod layout;
pub mod persons;
pub mod sections;

pub use edit::{apply, record_correction, Change, EditError, EditOp};
pub use fields::{field_kind, FieldKind};
pub use layout::{Layout, ReadOnly, SectionDef};
pub use sections::{view, CaseView, Section};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Finding;
    use crate::pipeline::{Pipeline, PipelineConfig, Processed};
    use serde_json::Value;

    fn pipeline() -> Pipeline {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Pipeline::load(&PipelineConfig {
            mappings_dir: root.join("mappings"),
            schemas_dir: root.join("schemas"),
            ..Default::default()
        })
        .expect("the repository's mappings load")
    }

    const FAULTY: &str = include_str!("../../../../fixtures/contract/hauptantrag-mit-fehlern.json");

    #[test]
    fn the_faulty_example_shows_each_error_beside_its_field() {
        let p = pipeline();
        let doc: Value = serde_json::from_str(FAULTY).unwrap();
        let m = p.mappings().get("BG-HA", "1.0").unwrap();
        let findings = p.process(FAULTY.as_bytes(), None).findings().to_vec();
        let v = view(m, &doc, &findings);
        let titles: Vec<&str> = v.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Allgemeine Angaben",
                "Antragsteller",
                "Weitere Personen",
                "Bankverbindung",
                "Unterkunft",
                "Einkommen",
                "Vermögen",
                "Krankenversicherung",
                "Mehrbedarfe",
                "Nachweise"
            ]
        );
        let row = |id: &str| {
            v.sections
                .iter()
                .flat_map(|s| &s.blocks)
                .flat_map(|b| &b.rows)
                .find(|r| r.id == id)
                .unwrap_or_else(|| panic!("no row {id}"))
                .clone()
        };
        let iban = row("feld-bankverbindung-iban");
        assert_eq!(iban.label, "IBAN");
        assert_eq!(iban.value.as_deref(), Some("DE78595567370598319781"));
        assert_eq!(iban.findings.len(), 1);
        assert_eq!(iban.findings[0].rule, "IBAN-UNGUELTIG");
        assert!(iban.editable && iban.removable);
        assert_eq!(
            row("feld-antragsteller-anschrift-plz").label,
            "Postleitzahl"
        );
        assert_eq!(row("feld-formular-id").label, "Formularkennung");
        // Values in German, by the field's format (schema and mapping data).
        for (id, shown) in [
            ("feld-eingereichtAm", "20.11.2026, 07:26 Uhr"),
            ("feld-antragsteller-geburtsdatum", "26.11.1990"),
            ("feld-antragsteller-geschlecht", "weiblich"),
            ("feld-antragsteller-staatsangehoerigkeit", "Rumänien"),
            ("feld-unterkunft-art", "Mietwohnung"),
            ("feld-unterkunft-grundmiete", "845,26 €"),
            ("feld-einkommen-0-art", "Kindergeld"),
            ("feld-formular-id", "Hauptantrag"),
        ] {
            assert_eq!(row(id).value.as_deref(), Some(shown), "{id}");
        }
        assert_eq!(row("feld-antragsteller-id").label, "Personenkennung");
        assert_eq!(
            row("feld-leistungsbeginn").label,
            "Der gewünschte Leistungsbeginn"
        );
        assert!(row("feld-antragsteller-anschrift-plz").has_error());
        assert!(row("feld-unterkunft-personenImHaushalt").has_error());
        // A field the schema allows but the application lacks: addable.
        let bic = row("feld-bankverbindung-bic");
        assert_eq!(bic.value, None);
        assert!(bic.editable && !bic.removable);
        // Read-only fields are shown, not editable.
        assert!(!row("feld-antragId").editable);
        let errors: Vec<&str> = v.errors.iter().map(|f| f.target.as_str()).collect();
        assert_eq!(
            errors,
            [
                "feld-bankverbindung-iban",
                "feld-antragsteller-anschrift-plz",
                "feld-unterkunft-personenImHaushalt"
            ]
        );
        // The household rule says what it compared (its `detail`).
        let named = 1 + doc["weiterePersonen"].as_array().map_or(0, Vec::len);
        let household = &v.errors[2].message;
        assert!(
            household.ends_with(&format!("(genannt: {named}).")),
            "{household}"
        );
        assert_eq!(v.owed.len(), 1);
        assert_eq!(v.owed[0].nachweis, "MIETVERTRAG");
        assert_eq!(v.owed[0].label, "Mietvertrag");
        assert!(v.general.is_empty());
        let persons = &v.sections[2];
        assert!(persons.blocks.iter().any(|b| b.heading.as_deref()
            == Some("Angaben zur 2. weiteren Person")
            && b.removable));
        assert_eq!(v.sections[3].error_count(), 1);
    }

    #[test]
    fn corrected_application_passes_and_records_its_corrections() {
        let p = pipeline();
        let m = p.mappings().get("BG-HA", "1.0").unwrap();
        let mut doc: Value = serde_json::from_str(FAULTY).unwrap();
        let mut corrections = Vec::new();
        for (ptr, val) in [
            ("/bankverbindung/iban", "DE89 3704 0044 0532 0130 00"),
            ("/antragsteller/anschrift/plz", "39104"),
            ("/unterkunft/personenImHaushalt", "5"),
        ] {
            let c = apply(m, &mut doc, ptr, &EditOp::Set(val.into())).unwrap();
            record_correction(&mut corrections, &c, "sb.meier", "2026-12-02T10:00:00Z");
        }
        let body = serde_json::to_vec(&doc).unwrap();
        let out = p.process_with(&body, None, &corrections);
        let Processed::Accepted { record, .. } = out else {
            panic!("still rejected: {:?}", out.findings());
        };
        let xml = String::from_utf8(record).unwrap();
        assert_eq!(xml.matches("<Korrektur ").count(), 3);
        assert!(xml.contains(r#"feld="/antragsteller/anschrift/plz" durch="sb.meier""#));
        assert!(xml.contains(r#"von="7545" nach="39104""#));
    }

    #[test]
    fn one_submission_keeps_what_passes_and_hands_back_what_does_not() {
        let p = pipeline();
        let m = p.mappings().get("BG-HA", "1.0").unwrap();
        let doc: Value = serde_json::from_str(FAULTY).unwrap();
        let findings = p.process(FAULTY.as_bytes(), None).findings().to_vec();
        let form = fix::fixes(m, &doc, &findings);
        let pointers: Vec<&str> = form.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/bankverbindung/iban",
                "/antragsteller/anschrift/plz",
                "/unterkunft/personenImHaushalt"
            ]
        );
        assert_eq!(form[0].label, "Die IBAN der Bankverbindung");
        assert_eq!(form[0].input_id, "feld-bankverbindung-iban-neu");
        assert_eq!(
            form[0].hint,
            "22 Zeichen, beginnt mit DE; Leerzeichen sind erlaubt"
        );
        assert_eq!(form[1].hint, "fünf Ziffern, z. B. 39104");
        assert_eq!(form[1].current.as_deref(), Some("7545"));
        assert_eq!(form[2].kind, FieldKind::Integer);
        let check = |d: &Value, changes: &[Change]| {
            let mut corrections = Vec::new();
            for c in changes {
                record_correction(&mut corrections, c, "sb", "2026-12-07T10:00:00Z");
            }
            let body = serde_json::to_vec(d).unwrap();
            p.process_with(&body, None, &corrections)
                .findings()
                .to_vec()
        };
        let typed = |v: [&str; 3]| -> Vec<(String, String)> {
            pointers
                .iter()
                .map(|p| p.to_string())
                .zip(v.map(String::from))
                .collect()
        };
        // The PLZ typed still has four digits: it is handed back with its
        // error; the IBAN and the household size are kept.
        let out = fix::apply_all(
            m,
            &doc,
            &typed(["DE89370400440532013000", "3910", "5"]),
            &check,
        );
        assert_eq!(out.kept.len(), 2);
        let plz = &out.not_kept["/antragsteller/anschrift/plz"];
        assert!(matches!(plz, fix::NotKept::StillWrong(m) if m.len() == 1));
        assert_eq!(out.doc["antragsteller"]["anschrift"]["plz"], "7545");
        assert_eq!(out.doc["unterkunft"]["personenImHaushalt"], 5);
        let errors: Vec<&str> = out
            .findings
            .iter()
            .filter(|f| f.is_error())
            .map(|f| f.rule.as_str())
            .collect();
        assert_eq!(errors, ["PLZ-FORMAT"]);
        // A value that is not a number is refused; an unchanged or empty one
        // is no change.
        let out = fix::apply_all(
            m,
            &doc,
            &typed(["DE78595567370598319781", "", "fünf"]),
            &check,
        );
        assert!(out.kept.is_empty());
        assert_eq!(out.not_kept.len(), 1);
        assert!(matches!(
            out.not_kept["/unterkunft/personenImHaushalt"],
            fix::NotKept::Refused(EditError::WrongType(_))
        ));
        // All three right: nothing left.
        let out = fix::apply_all(
            m,
            &doc,
            &typed(["DE89370400440532013000", "39104", "5"]),
            &check,
        );
        assert_eq!(out.kept.len(), 3);
        assert!(out.not_kept.is_empty());
        assert!(!out.findings.iter().any(Finding::is_error));
    }

    #[test]
    fn describe_names_the_field_and_what_may_be_done() {
        let p = pipeline();
        let m = p.mappings().get("BG-HA", "1.0").unwrap();
        let doc: Value = serde_json::from_str(FAULTY).unwrap();
        let info = edit::describe(m, &doc, "/bankverbindung/iban").unwrap();
        assert_eq!(info.label, "Die IBAN der Bankverbindung");
        // The page shows the German form and offers what may be typed back.
        let info = edit::describe(m, &doc, "/unterkunft/grundmiete").unwrap();
        assert_eq!(info.shown.as_deref(), Some("845,26 €"));
        assert_eq!(info.input.as_deref(), Some("845,26"));
        let info = edit::describe(m, &doc, "/antragsteller/staatsangehoerigkeit").unwrap();
        assert_eq!(info.shown.as_deref(), Some("Rumänien"));
        assert_eq!(info.input.as_deref(), Some("ROU"));
        let info = edit::describe(m, &doc, "/antragsteller/geschlecht").unwrap();
        assert_eq!(info.input.as_deref(), Some("WEIBLICH"));
        assert_eq!(
            info.code_labels.get("DIVERS").map(String::as_str),
            Some("divers")
        );
        let info = edit::describe(m, &doc, "/bankverbindung/iban").unwrap();
        assert!(info.can_set && info.can_remove);
        let info = edit::describe(m, &doc, "/einkommen/1").unwrap();
        assert!(!info.can_set && info.can_remove);
        assert_eq!(
            edit::describe(m, &doc, "/gibtsnicht"),
            Err(EditError::Unknown)
        );
        assert_eq!(
            edit::describe(m, &doc, "/formular/id"),
            Err(EditError::ReadOnly)
        );
        // No page for a place the application cannot have, or a group
        // with nothing a caseworker may do to it.
        for (p, e) in [
            ("/einkommen/01/art", EditError::BadPointer),
            ("/einkommen/99/art", EditError::NoSuchEntry),
            ("/jobcenter", EditError::HoldsReadOnly),
            ("/mehrbedarfe", EditError::NotAValue),
        ] {
            assert_eq!(edit::describe(m, &doc, p), Err(e), "{p}");
        }
    }
}
