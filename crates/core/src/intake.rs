//! Intake: raw delivery bytes → an envelope the pipeline can map, or the
//! reason the delivery is `invalid` (contract §2).
//!
//! Checks, in order: size limit, UTF-8, JSON (nesting bounded by serde_json's
//! recursion limit), a JSON object, `antragId` present and a UUID, the AMQP
//! `message_id` (if any) equal to it, and `formular.id` + `formular.version`
//! readable. Details never quote field values other than the antragId and the
//! form id/version.

use serde_json::Value;
use uuid::Uuid;

/// A readable application, not yet mapped.
#[derive(Debug)]
pub struct Envelope {
    pub antrag_id: Uuid,
    pub form: String,
    pub version: String,
    pub doc: Value,
}

/// Why a delivery is `invalid`: the reason codes of contract §2 and the
/// daemon's own two (`conflict`, `internal_error`). The code ([`as_str`])
/// is what the `x-bridge-reason` header, the dead-letter log and the metric
/// label carry; [`FromStr`] reads it back.
///
/// A message the broker dead-lettered at its delivery limit has no bridge
/// reason (its `x-death` says `delivery_limit`), so it is no variant here.
///
/// [`as_str`]: InvalidReason::as_str
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// The body is not UTF-8.
    NotUtf8,
    /// The body is not JSON.
    NotJson,
    /// The JSON nests deeper than the parser's limit.
    TooDeep,
    /// The body is JSON but not an object.
    NotObject,
    /// The body is larger than `pipeline.max_body_bytes`.
    TooLarge,
    /// The object has no `antragId`.
    MissingAntragId,
    /// `antragId` is not a UUID string.
    BadAntragId,
    /// The AMQP `message_id` differs from `antragId`.
    MessageIdMismatch,
    /// The AMQP `message_id` is not UTF-8.
    UnparseableProperties,
    /// No mapping for `formular.id` + `formular.version` (or they are unreadable).
    NoMapping,
    /// A different body under an antragId already stored (the daemon's).
    Conflict,
    /// The pipeline panicked on this message (the daemon's).
    InternalError,
    /// A Nachreichung that does not follow its JSON Schema (contract §8).
    BadNachreichung,
    /// A Nachreichung of a document kind no mapping knows.
    UnknownDocumentKind,
    /// A Nachreichung for an antragId the store does not hold (the daemon's).
    UnknownApplication,
    /// A Nachreichung of a kind the application does not owe (the daemon's).
    DocumentNotOwed,
}

impl InvalidReason {
    /// Every reason, in the order of contract §2 (the daemon's two), then those of
    /// the Nachreichung (contract §8).
    pub const ALL: [InvalidReason; 16] = [
        InvalidReason::NotUtf8,
        InvalidReason::NotJson,
        InvalidReason::TooDeep,
        InvalidReason::NotObject,
        InvalidReason::TooLarge,
        InvalidReason::MissingAntragId,
        InvalidReason::BadAntragId,
        InvalidReason::MessageIdMismatch,
        InvalidReason::UnparseableProperties,
        InvalidReason::NoMapping,
        InvalidReason::Conflict,
        InvalidReason::InternalError,
        InvalidReason::BadNachreichung,
        InvalidReason::UnknownDocumentKind,
        InvalidReason::UnknownApplication,
        InvalidReason::DocumentNotOwed,
    ];

    /// The wire code (docs/contract.md §2), e.g. `not_json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            InvalidReason::NotUtf8 => "not_utf8",
            InvalidReason::NotJson => "not_json",
            InvalidReason::TooDeep => "too_deep",
            InvalidReason::NotObject => "not_object",
            InvalidReason::TooLarge => "too_large",
            InvalidReason::MissingAntragId => "missing_antrag_id",
            InvalidReason::BadAntragId => "bad_antrag_id",
            InvalidReason::MessageIdMismatch => "message_id_mismatch",
            InvalidReason::UnparseableProperties => "unparseable_properties",
            InvalidReason::NoMapping => "no_mapping",
            InvalidReason::Conflict => "conflict",
            InvalidReason::InternalError => "internal_error",
            InvalidReason::BadNachreichung => "bad_nachreichung",
            InvalidReason::UnknownDocumentKind => "unknown_document_kind",
            InvalidReason::UnknownApplication => "unknown_application",
            InvalidReason::DocumentNotOwed => "document_not_owed",
        }
    }

    /// What the reason means, in German, for the workbench's dead-letter page.
    pub const fn beschreibung(self) -> &'static str {
        match self {
            InvalidReason::NotUtf8 => "Der Inhalt ist kein gültiger UTF-8-Text.",
            InvalidReason::NotJson => "Der Inhalt ist kein gültiges JSON.",
            InvalidReason::TooDeep => "Das JSON ist zu tief verschachtelt.",
            InvalidReason::NotObject => "Der Inhalt ist kein JSON-Objekt.",
            InvalidReason::TooLarge => "Die Nachricht überschreitet die zulässige Größe.",
            InvalidReason::MissingAntragId => "Die Antrags-ID (antragId) fehlt.",
            InvalidReason::BadAntragId => "Die Antrags-ID (antragId) ist keine gültige UUID.",
            InvalidReason::MessageIdMismatch => {
                "Die Nachrichten-ID (message_id) stimmt nicht mit der Antrags-ID überein."
            }
            InvalidReason::UnparseableProperties => {
                "Die Nachrichten-ID (message_id) ist nicht lesbar."
            }
            InvalidReason::NoMapping => {
                "Für dieses Formular und diese Version gibt es keine Zuordnung."
            }
            InvalidReason::Conflict => {
                "Unter dieser Antrags-ID ist bereits ein anderer Antrag gespeichert."
            }
            InvalidReason::InternalError => {
                "Bei der Verarbeitung ist ein interner Fehler aufgetreten."
            }
            InvalidReason::BadNachreichung => {
                "Die Nachreichung entspricht nicht ihrem Schema (Schnittstellenvertrag § 8)."
            }
            InvalidReason::UnknownDocumentKind => {
                "Die Art des nachgereichten Nachweises ist unbekannt."
            }
            InvalidReason::UnknownApplication => {
                "Zu dieser Antrags-ID ist kein Antrag gespeichert."
            }
            InvalidReason::DocumentNotOwed => {
                "Dieser Nachweis wird für den Antrag nicht (mehr) erwartet."
            }
        }
    }
}

impl std::fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason code that is not one of [`InvalidReason`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownReason(pub String);

impl std::fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown dead-letter reason code `{}`", self.0)
    }
}

impl std::error::Error for UnknownReason {}

impl std::str::FromStr for InvalidReason {
    type Err = UnknownReason;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        InvalidReason::ALL
            .into_iter()
            .find(|r| r.as_str() == code)
            .ok_or_else(|| UnknownReason(code.to_string()))
    }
}

/// Compares with a wire code (headers and log rows read back, tests).
impl PartialEq<&str> for InvalidReason {
    fn eq(&self, code: &&str) -> bool {
        self.as_str() == *code
    }
}

impl From<InvalidReason> for String {
    fn from(r: InvalidReason) -> String {
        r.as_str().to_string()
    }
}

/// Why a delivery is `invalid` (contract §2): not readable as an
/// application at all, so it becomes a dead letter. (An application that is
/// readable but has errors is *rejected*: a case, `Processed::Rejected` of
/// the pipeline.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The antragId, where it could be read (from the body or the AMQP
    /// `message_id`).
    pub antrag_id: Option<Uuid>,
    /// Why; its code is stable (`not_utf8`, `too_large`, `no_mapping`, ...).
    pub reason: InvalidReason,
    /// Human-readable detail in English for IT; never contains field values
    /// other than the antragId, form id and version.
    pub detail: String,
}

impl Invalid {
    /// An invalid delivery with this reason and detail.
    pub fn new(reason: InvalidReason, detail: impl Into<String>, antrag_id: Option<Uuid>) -> Self {
        Invalid {
            antrag_id,
            reason,
            detail: detail.into(),
        }
    }
}

fn bad(reason: InvalidReason, detail: impl Into<String>, antrag_id: Option<Uuid>) -> Invalid {
    Invalid::new(reason, detail, antrag_id)
}

/// Parses a UUID in its canonical hyphenated form (any case).
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

/// What a readable delivery holds: an application, or a *Nachreichung*
/// (a document handed in later, contract §8), told apart by its `typ`.
#[derive(Debug)]
pub enum Body {
    Application(Envelope),
    /// The parsed object; `mitwirkung::nachreichung` reads it.
    Nachreichung(Value),
}

/// The `typ` a Nachreichung message carries (applications carry none).
pub const NACHREICHUNG_TYP: &str = "NACHREICHUNG";

/// Reads one delivery that must be an application.
pub fn read(body: &[u8], message_id: Option<&str>, max_bytes: usize) -> Result<Envelope, Invalid> {
    match read_any(body, message_id, max_bytes)? {
        Body::Application(env) => Ok(env),
        Body::Nachreichung(_) => Err(bad(
            InvalidReason::NoMapping,
            "a Nachreichung is not an application",
            None,
        )),
    }
}

/// Reads one delivery: an application or a Nachreichung. The checks up to
/// "a JSON object" are common; the application's own follow.
pub fn read_any(body: &[u8], message_id: Option<&str>, max_bytes: usize) -> Result<Body, Invalid> {
    // The AMQP client (patched, see crates/vendor/README.md) hands over a
    // property that is not UTF-8 with U+FFFD in place of each bad sequence.
    if message_id.is_some_and(|m| m.contains(char::REPLACEMENT_CHARACTER)) {
        return Err(bad(
            InvalidReason::UnparseableProperties,
            "message_id is not UTF-8 (a UUID was expected)",
            None,
        ));
    }
    let from_header = message_id.and_then(parse_uuid);
    if body.len() > max_bytes {
        return Err(bad(
            InvalidReason::TooLarge,
            format!("body has {} bytes, the limit is {max_bytes}", body.len()),
            from_header,
        ));
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            return Err(bad(
                InvalidReason::NotUtf8,
                format!(
                    "body is not UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                ),
                from_header,
            ))
        }
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            let (reason, what) = if msg.contains("recursion limit") {
                (InvalidReason::TooDeep, "JSON nesting is too deep")
            } else {
                (InvalidReason::NotJson, "body is not valid JSON")
            };
            return Err(bad(
                reason,
                format!("{what} (line {}, column {})", e.line(), e.column()),
                from_header,
            ));
        }
    };
    let Value::Object(obj) = &doc else {
        let kind = match doc {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(bad(
            InvalidReason::NotObject,
            format!("body is {kind}, expected a JSON object"),
            from_header,
        ));
    };
    if obj.get("typ").and_then(Value::as_str) == Some(NACHREICHUNG_TYP) {
        return Ok(Body::Nachreichung(doc));
    }
    let antrag_id = match obj.get("antragId") {
        None => {
            return Err(bad(
                InvalidReason::MissingAntragId,
                "antragId is missing",
                from_header,
            ))
        }
        Some(Value::String(s)) => match parse_uuid(s) {
            Some(u) => u,
            None => {
                return Err(bad(
                    InvalidReason::BadAntragId,
                    "antragId is not a UUID (expected 8-4-4-4-12 hex digits)",
                    from_header,
                ))
            }
        },
        Some(_) => {
            return Err(bad(
                InvalidReason::BadAntragId,
                "antragId is not a string",
                from_header,
            ))
        }
    };
    if let Some(mid) = message_id {
        if parse_uuid(mid) != Some(antrag_id) {
            return Err(bad(
                InvalidReason::MessageIdMismatch,
                format!("message_id differs from antragId {antrag_id}"),
                Some(antrag_id),
            ));
        }
    }
    let form = obj.get("formular");
    let field = |k: &str| form.and_then(|f| f.get(k)).and_then(Value::as_str);
    let (Some(form_id), Some(version)) = (field("id"), field("version")) else {
        return Err(bad(
            InvalidReason::NoMapping,
            "formular.id and formular.version must be strings",
            Some(antrag_id),
        ));
    };
    let (form_id, version) = (form_id.to_string(), version.to_string());
    Ok(Body::Application(Envelope {
        antrag_id,
        form: form_id,
        version,
        doc,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ebb7344d-f3d2-473a-b740-3227210f4d0c";

    fn reason(body: &[u8], mid: Option<&str>) -> InvalidReason {
        read(body, mid, 1024).unwrap_err().reason
    }

    #[test]
    fn classifies_every_kind_of_unreadable_body() {
        assert_eq!(reason(&[b'{', 0xff, b'}'], None), "not_utf8");
        assert_eq!(reason(b"{\"a\":", None), "not_json");
        assert_eq!(reason(b"[1,2]", None), "not_object");
        assert_eq!(reason(b"{}", None), "missing_antrag_id");
        assert_eq!(reason(br#"{"antragId":"123"}"#, None), "bad_antrag_id");
        assert_eq!(reason(br#"{"antragId":42}"#, None), "bad_antrag_id");
        assert_eq!(reason(&vec![b' '; 2000], None), "too_large");
        let deep = "[".repeat(500) + &"]".repeat(500);
        assert_eq!(reason(deep.as_bytes(), None), "too_deep");
        let body = format!(r#"{{"antragId":"{ID}"}}"#);
        assert_eq!(reason(body.as_bytes(), None), "no_mapping");
        let other = "00000000-0000-4000-8000-000000000000";
        assert_eq!(reason(body.as_bytes(), Some(other)), "message_id_mismatch");
        assert_eq!(
            reason(body.as_bytes(), Some("\u{fffd}\u{fffd}bad")),
            "unparseable_properties"
        );
    }

    #[test]
    fn reads_a_good_envelope_and_accepts_a_matching_message_id() {
        let body = format!(
            r#"{{"antragId":"{}","formular":{{"id":"BG-HA","version":"1.0"}}}}"#,
            ID.to_uppercase()
        );
        let env = read(body.as_bytes(), Some(ID), 1024).unwrap();
        assert_eq!(env.antrag_id.to_string(), ID);
        assert_eq!((env.form.as_str(), env.version.as_str()), ("BG-HA", "1.0"));
    }

    #[test]
    fn reason_codes_are_the_contracts_and_read_back() {
        let codes: Vec<&str> = InvalidReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            codes,
            [
                "not_utf8",
                "not_json",
                "too_deep",
                "not_object",
                "too_large",
                "missing_antrag_id",
                "bad_antrag_id",
                "message_id_mismatch",
                "unparseable_properties",
                "no_mapping",
                "conflict",
                "internal_error",
                "bad_nachreichung",
                "unknown_document_kind",
                "unknown_application",
                "document_not_owed",
            ]
        );
        for r in InvalidReason::ALL {
            assert_eq!(r.as_str().parse::<InvalidReason>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
            assert!(r.beschreibung().ends_with('.'), "{r}");
        }
        assert_eq!(
            InvalidReason::NotJson.beschreibung(),
            "Der Inhalt ist kein gültiges JSON."
        );
        assert_eq!(
            "delivery_limit".parse::<InvalidReason>(),
            Err(UnknownReason("delivery_limit".into()))
        );
    }

    #[test]
    fn details_carry_no_field_values() {
        let body = br#"{"antragId":"Max Mustermann"}"#;
        let r = read(body, None, 1024).unwrap_err();
        assert!(!r.detail.contains("Mustermann"));
    }
}
