//! The reject problem of a submission whose data the intake dead-lettered:
//! each dead-letter reason code (`allegro_core::intake::InvalidReason`)
//! mapped to the FIT-Connect problem type that fits it best, with the
//! reason's German description as the detail. The match names every
//! reason, so a new one must be placed here before it compiles.

use std::str::FromStr as _;

use allegro_core::intake::InvalidReason;
use allegro_fitconnect::submission::{Problem, ProblemKind};

/// The problem a reject reports for data dead-lettered with `code` (a
/// reason code from the dead-letter log). A code this build does not know
/// is a schema violation with a general sentence.
pub(crate) fn dead_lettered(code: &str) -> Problem {
    let (kind, why) = match InvalidReason::from_str(code) {
        Ok(reason) => (kind_of(reason), reason.beschreibung()),
        Err(_) => (
            ProblemKind::SchemaViolation,
            "Die Fachdaten sind nicht verarbeitbar.",
        ),
    };
    Problem {
        kind,
        instance: "data".into(),
        detail: format!("Die Fachdaten wurden nicht angenommen: {why}"),
    }
}

/// The problem type of a dead-letter reason: the data not readable as JSON
/// is a syntax violation, a form (id and version) no mapping takes an
/// unsupported schema, everything else (structure, fields, a Nachreichung
/// that does not fit, a conflicting body, an internal error) a schema
/// violation, the nearest of FIT-Connect's types.
fn kind_of(reason: InvalidReason) -> ProblemKind {
    use InvalidReason as R;
    match reason {
        R::NotUtf8 | R::NotJson | R::TooDeep => ProblemKind::SyntaxViolation,
        R::NoMapping => ProblemKind::UnsupportedSchema,
        R::NotObject
        | R::TooLarge
        | R::MissingAntragId
        | R::BadAntragId
        | R::MessageIdMismatch
        | R::UnparseableProperties
        | R::Conflict
        | R::InternalError
        | R::BadNachreichung
        | R::UnknownDocumentKind
        | R::UnknownApplication
        | R::DocumentNotOwed => ProblemKind::SchemaViolation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_problem_type_and_german_detail() {
        let expect = |r: InvalidReason| match r {
            InvalidReason::NotUtf8 | InvalidReason::NotJson | InvalidReason::TooDeep => {
                "syntax-violation"
            }
            InvalidReason::NoMapping => "unsupported-schema",
            _ => "schema-violation",
        };
        for r in InvalidReason::ALL {
            let p = dead_lettered(r.as_str());
            assert_eq!(p.kind.name(), expect(r), "{r}");
            assert_eq!(p.instance, "data", "{r}");
            assert!(p.detail.ends_with(r.beschreibung()), "{r}: {}", p.detail);
            assert!(!p.detail.contains(r.as_str()), "no wire code: {}", p.detail);
        }
    }

    #[test]
    fn the_cases_named_in_the_contract() {
        assert_eq!(dead_lettered("not_json").kind, ProblemKind::SyntaxViolation);
        assert_eq!(
            dead_lettered("no_mapping").kind,
            ProblemKind::UnsupportedSchema
        );
        let conflict = dead_lettered("conflict");
        assert_eq!(conflict.kind, ProblemKind::SchemaViolation);
        assert!(
            conflict.detail.contains("bereits ein anderer Antrag"),
            "{}",
            conflict.detail
        );
    }

    #[test]
    fn an_unknown_code_is_a_schema_violation_without_the_code() {
        let p = dead_lettered("reason_of_a_later_version");
        assert_eq!(p.kind, ProblemKind::SchemaViolation);
        assert!(!p.detail.contains("reason_of_a_later_version"));
    }
}
