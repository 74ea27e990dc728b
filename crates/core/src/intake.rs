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

/// Why a delivery is `invalid` (contract §2): not readable as an
/// application at all, so it becomes a dead letter. (An application that is
/// readable but has errors is *rejected*: a case, `Processed::Rejected` of
/// the pipeline.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The antragId, where it could be read (from the body or the AMQP
    /// `message_id`).
    pub antrag_id: Option<Uuid>,
    /// Stable machine reason code, e.g. `not_utf8`, `too_large`, `no_mapping`.
    pub reason: &'static str,
    /// Human-readable detail in English for IT; never contains field values
    /// other than the antragId, form id and version.
    pub detail: String,
}

impl Invalid {
    /// An invalid delivery with this reason and detail.
    pub fn new(reason: &'static str, detail: impl Into<String>, antrag_id: Option<Uuid>) -> Self {
        Invalid {
            antrag_id,
            reason,
            detail: detail.into(),
        }
    }
}

fn bad(reason: &'static str, detail: impl Into<String>, antrag_id: Option<Uuid>) -> Invalid {
    Invalid::new(reason, detail, antrag_id)
}

/// Parses a UUID in its canonical hyphenated form (any case).
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

/// Reads one delivery.
pub fn read(body: &[u8], message_id: Option<&str>, max_bytes: usize) -> Result<Envelope, Invalid> {
    // The AMQP client (patched, see crates/vendor/README.md) hands over a
    // property that is not UTF-8 with U+FFFD in place of each bad sequence.
    if message_id.is_some_and(|m| m.contains(char::REPLACEMENT_CHARACTER)) {
        return Err(bad(
            "unparseable_properties",
            "message_id is not UTF-8 (a UUID was expected)",
            None,
        ));
    }
    let from_header = message_id.and_then(parse_uuid);
    if body.len() > max_bytes {
        return Err(bad(
            "too_large",
            format!("body has {} bytes, the limit is {max_bytes}", body.len()),
            from_header,
        ));
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            return Err(bad(
                "not_utf8",
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
                ("too_deep", "JSON nesting is too deep")
            } else {
                ("not_json", "body is not valid JSON")
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
            "not_object",
            format!("body is {kind}, expected a JSON object"),
            from_header,
        ));
    };
    let antrag_id = match obj.get("antragId") {
        None => return Err(bad("missing_antrag_id", "antragId is missing", from_header)),
        Some(Value::String(s)) => match parse_uuid(s) {
            Some(u) => u,
            None => {
                return Err(bad(
                    "bad_antrag_id",
                    "antragId is not a UUID (expected 8-4-4-4-12 hex digits)",
                    from_header,
                ))
            }
        },
        Some(_) => {
            return Err(bad(
                "bad_antrag_id",
                "antragId is not a string",
                from_header,
            ))
        }
    };
    if let Some(mid) = message_id {
        if parse_uuid(mid) != Some(antrag_id) {
            return Err(bad(
                "message_id_mismatch",
                format!("message_id differs from antragId {antrag_id}"),
                Some(antrag_id),
            ));
        }
    }
    let form = obj.get("formular");
    let field = |k: &str| form.and_then(|f| f.get(k)).and_then(Value::as_str);
    let (Some(form_id), Some(version)) = (field("id"), field("version")) else {
        return Err(bad(
            "no_mapping",
            "formular.id and formular.version must be strings",
            Some(antrag_id),
        ));
    };
    let (form_id, version) = (form_id.to_string(), version.to_string());
    Ok(Envelope {
        antrag_id,
        form: form_id,
        version,
        doc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ebb7344d-f3d2-473a-b740-3227210f4d0c";

    fn reason(body: &[u8], mid: Option<&str>) -> &'static str {
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
    fn details_carry_no_field_values() {
        let body = br#"{"antragId":"Max Mustermann"}"#;
        let r = read(body, None, 1024).unwrap_err();
        assert!(!r.detail.contains("Mustermann"));
    }
}
