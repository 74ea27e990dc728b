//! The *Nachreichung* message (contract §8): one document an applicant
//! hands in after the application, read from the intake queue.
//!
//! Checked against its JSON Schema (`schemas/nachreichung-1.0.schema.json`,
//! compiled into the binary: it is part of the contract, not of a form
//! version), then against the document kinds the mappings know. Whether the
//! application exists and owes the document is the store's question.

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::Value;
use uuid::Uuid;

use crate::intake::{parse_uuid, Invalid, InvalidReason};

/// The JSON Schema, as published in `schemas/`.
pub const SCHEMA: &str = include_str!("../../../../schemas/nachreichung-1.0.schema.json");

/// A readable Nachreichung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nachreichung {
    /// Unique per document handed in (the idempotency key).
    pub id: Uuid,
    pub antrag_id: Uuid,
    /// The document kind, e.g. `LOHNABRECHNUNG`.
    pub kind: String,
    /// The person it is for; `None`: the household.
    pub person_id: Option<String>,
    /// When the portal received it.
    pub received_at: DateTime<FixedOffset>,
    /// The file's SHA-256 (hex), if the portal sent it.
    pub file_sha256: Option<String>,
    /// The portal's reference of the file, if sent.
    pub file_ref: Option<String>,
}

impl Nachreichung {
    /// The calendar day it was received, in the portal's offset.
    pub fn received_on(&self) -> NaiveDate {
        self.received_at.date_naive()
    }
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the Nachreichung schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the Nachreichung schema compiles")
    })
}

/// Reads a parsed Nachreichung object; `known_kind` says whether a mapping
/// knows the document kind. The detail of a refusal names the place, never
/// a value.
pub fn read(
    doc: &Value,
    message_id: Option<&str>,
    known_kind: impl Fn(&str) -> bool,
) -> Result<Nachreichung, Invalid> {
    let antrag_id = doc
        .get("antragId")
        .and_then(Value::as_str)
        .and_then(parse_uuid);
    if let Some(e) = validator().iter_errors(doc).next() {
        let at = e.instance_path().to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        return Err(Invalid::new(
            InvalidReason::BadNachreichung,
            format!(
                "Nachreichung does not follow its schema at {at} (schema {})",
                e.schema_path()
            ),
            antrag_id,
        ));
    }
    let s = |p: &str| doc.pointer(p).and_then(Value::as_str);
    let id = s("/nachreichungId").and_then(parse_uuid);
    let (Some(id), Some(antrag_id)) = (id, antrag_id) else {
        return Err(Invalid::new(
            InvalidReason::BadNachreichung,
            "ids are not UUIDs",
            antrag_id,
        ));
    };
    if message_id.is_some_and(|m| parse_uuid(m) != Some(id)) {
        return Err(Invalid::new(
            InvalidReason::MessageIdMismatch,
            "message_id differs from nachreichungId",
            Some(antrag_id),
        ));
    }
    let received_at = s("/eingegangenAm").and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let Some(received_at) = received_at else {
        return Err(Invalid::new(
            InvalidReason::BadNachreichung,
            "eingegangenAm is not a valid date-time",
            Some(antrag_id),
        ));
    };
    let kind = s("/nachweis/art").unwrap_or_default().to_string();
    if !known_kind(&kind) {
        return Err(Invalid::new(
            InvalidReason::UnknownDocumentKind,
            format!("no mapping knows the document kind {kind:?}"),
            Some(antrag_id),
        ));
    }
    Ok(Nachreichung {
        id,
        antrag_id,
        kind,
        person_id: s("/nachweis/personId").map(str::to_string),
        received_at,
        file_sha256: s("/datei/sha256").map(str::to_string),
        file_ref: s("/datei/referenz").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "0b9f3a53-5f3c-4a43-9c61-1a1d3c2b7e10";
    const N: &str = "6c0e6a8e-2f54-4c2b-8f59-58f0e1d2a3b4";

    fn body() -> Value {
        json!({
            "typ": "NACHREICHUNG", "version": "1.0", "nachreichungId": N, "antragId": A,
            "nachweis": {"art": "LOHNABRECHNUNG", "personId": "p1"},
            "eingegangenAm": "2026-12-03T23:30:00+01:00",
            "datei": {"sha256": "ab".repeat(32), "referenz": "portal:4711"}
        })
    }

    fn known(k: &str) -> bool {
        k == "LOHNABRECHNUNG"
    }

    #[test]
    fn reads_a_good_one() {
        let n = read(&body(), Some(N), known).unwrap();
        assert_eq!(
            (n.id.to_string(), n.antrag_id.to_string()),
            (N.into(), A.into())
        );
        assert_eq!(
            (n.kind.as_str(), n.person_id.as_deref()),
            ("LOHNABRECHNUNG", Some("p1"))
        );
        assert_eq!(n.received_on().to_string(), "2026-12-03");
        assert_eq!(n.file_ref.as_deref(), Some("portal:4711"));
    }

    #[test]
    fn refuses_what_breaks_the_schema_naming_the_place_not_the_value() {
        let mut b = body();
        b["nachweis"]["personId"] = json!("Erika Mustermann");
        let e = read(&b, None, known).unwrap_err();
        assert_eq!(e.reason, InvalidReason::BadNachreichung);
        assert!(e.detail.contains("/nachweis/personId"), "{}", e.detail);
        assert!(!e.detail.contains("Mustermann"));
        assert_eq!(e.antrag_id.map(|u| u.to_string()).as_deref(), Some(A));
        let mut b = body();
        b.as_object_mut().unwrap().remove("eingegangenAm");
        assert_eq!(
            read(&b, None, known).unwrap_err().reason,
            InvalidReason::BadNachreichung
        );
        let mut b = body();
        b["eingegangenAm"] = json!("2026-13-45T25:00:00Z");
        assert_eq!(
            read(&b, None, known).unwrap_err().reason,
            InvalidReason::BadNachreichung
        );
    }

    #[test]
    fn refuses_an_unknown_kind_and_a_foreign_message_id() {
        let mut b = body();
        b["nachweis"]["art"] = json!("ZEUGNIS");
        assert_eq!(
            read(&b, None, known).unwrap_err().reason,
            InvalidReason::UnknownDocumentKind
        );
        let e = read(&body(), Some(A), known).unwrap_err();
        assert_eq!(e.reason, InvalidReason::MessageIdMismatch);
    }
}
