//! Dead letters: what the bridge cannot read goes to the DLQ with reasons.
//!
//! A dead letter carries the original body and properties unchanged, plus
//! headers that say why. Header values never contain personal data: the
//! reason code and detail come from the pipeline's `Invalid` (which promises
//! that) or from the daemon's own fixed texts; the application is named only
//! by its antragId.
//!
//! | header | value |
//! |---|---|
//! | `x-bridge-outcome` | `invalid` |
//! | `x-bridge-reason` | machine code: the pipeline's (`not_json`, `no_mapping`, ...), `conflict` or `internal_error` |
//! | `x-bridge-detail` | English detail for IT, at most 500 characters |
//! | `x-bridge-first-seen` | RFC 3339 time the bridge first dead-lettered this message |
//! | `x-bridge-dead-letter-id` | UUID of the dead-letter log row (for `dlq show` / `dlq replay`) |
//! | `x-bridge-antrag-id` | the antragId, when one could be read |
//! | `x-bridge-version` | the bridge version |

use allegro_store::NewDeadLetter;
use chrono::SecondsFormat;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Header names (also read by the `dlq` commands).
pub const H_OUTCOME: &str = "x-bridge-outcome";
pub const H_REASON: &str = "x-bridge-reason";
pub const H_DETAIL: &str = "x-bridge-detail";
pub const H_FIRST_SEEN: &str = "x-bridge-first-seen";
pub const H_ID: &str = "x-bridge-dead-letter-id";
pub const H_ANTRAG_ID: &str = "x-bridge-antrag-id";
pub const H_VERSION: &str = "x-bridge-version";

/// Reason code for a different body under a known antragId.
pub const REASON_CONFLICT: &str = "conflict";
/// Reason code for a panic inside the pipeline.
pub const REASON_INTERNAL: &str = "internal_error";

/// Hex SHA-256 of a body.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The key that identifies one message across redeliveries: body hash plus
/// the AMQP message_id (the same body under another message_id may be
/// invalid for another reason).
pub fn dedup_key(body_sha256: &str, message_id: Option<&str>) -> String {
    match message_id {
        Some(m) => format!("{body_sha256}:{}", sha256_hex(m.as_bytes())),
        None => body_sha256.to_string(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The original properties with the reason headers of dead letter `id`
/// added (existing headers are kept; ours replace any of the same name, e.g.
/// from an earlier round).
pub fn properties(original: &BasicProperties, dl: &NewDeadLetter, id: Uuid) -> BasicProperties {
    let mut headers: FieldTable = original.headers().clone().unwrap_or_default();
    let s = |v: &str| AMQPValue::LongString(v.into());
    headers.insert(H_OUTCOME.into(), s("invalid"));
    headers.insert(H_REASON.into(), s(dl.reason));
    headers.insert(H_DETAIL.into(), s(&truncate(&dl.detail, 500)));
    headers.insert(
        H_FIRST_SEEN.into(),
        s(&dl.first_seen.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    headers.insert(H_ID.into(), s(&id.to_string()));
    if let Some(a) = dl.antrag_id {
        headers.insert(H_ANTRAG_ID.into(), s(&a.to_string()));
    }
    headers.insert(H_VERSION.into(), s(env!("CARGO_PKG_VERSION")));
    let mut props = original.clone().with_headers(headers);
    if props.delivery_mode().is_none() {
        props = props.with_delivery_mode(2);
    }
    props
}

/// Reads a string header (long or short string).
pub fn header_str(props: &BasicProperties, name: &str) -> Option<String> {
    let headers = props.headers().as_ref()?;
    let key: ShortString = name.into();
    match headers.inner().get(&key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// The original properties without the bridge's headers (for replay).
pub fn strip_bridge_headers(props: &BasicProperties) -> BasicProperties {
    let mut p = props.clone();
    if let Some(h) = props.headers() {
        let mut kept = FieldTable::default();
        for (k, v) in h.inner() {
            if !k.as_str().starts_with("x-bridge-")
                && k.as_str() != "x-death"
                && !k.as_str().starts_with("x-first-death")
                && !k.as_str().starts_with("x-last-death")
                && k.as_str() != "x-delivery-count"
            {
                kept.insert(k.clone(), v.clone());
            }
        }
        p = p.with_headers(kept);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn headers_round_trip_and_strip() {
        let dl = NewDeadLetter {
            dedup_key: "k".into(),
            antrag_id: None,
            reason: "no_mapping",
            detail: "x".repeat(600),
            body_sha256: "k".into(),
            first_seen: Utc::now(),
        };
        let orig = BasicProperties::default().with_message_id("m1".into());
        let p = properties(&orig, &dl, Uuid::nil());
        assert_eq!(header_str(&p, H_REASON).as_deref(), Some("no_mapping"));
        assert_eq!(header_str(&p, H_DETAIL).unwrap().chars().count(), 501);
        assert_eq!(p.delivery_mode(), &Some(2));
        let back = strip_bridge_headers(&p);
        assert!(header_str(&back, H_REASON).is_none());
        assert_eq!(back.message_id().as_ref().map(|m| m.as_str()), Some("m1"));
    }

    #[test]
    fn dedup_key_depends_on_message_id() {
        assert_ne!(dedup_key("ab", Some("x")), dedup_key("ab", None));
        assert_eq!(dedup_key("ab", None), "ab");
    }
}
