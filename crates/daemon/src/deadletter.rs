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
//! | `x-bridge-reason` | machine code, `allegro_core::intake::InvalidReason::as_str`: the pipeline's (`not_json`, `no_mapping`, ...), `conflict` or `internal_error` |
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
/// Names of the original's headers left out so the dead letter fits a frame.
pub const H_DROPPED: &str = "x-bridge-dropped-headers";

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

/// At most `max` characters of `s`, `…` marking a cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The dead letter's properties: the original ones with the reason headers
/// of dead letter `id` added (existing headers are kept; ours replace any of
/// the same name, e.g. from an earlier round), made to fit a content header
/// frame of `frame_max` bytes (see [`fit_frame`]).
pub fn properties(
    original: &BasicProperties,
    dl: &NewDeadLetter,
    id: Uuid,
    frame_max: u32,
) -> BasicProperties {
    fit_frame(with_reason(original, dl, id), frame_max)
}

fn with_reason(original: &BasicProperties, dl: &NewDeadLetter, id: Uuid) -> BasicProperties {
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

/// Bytes of a content header frame besides the properties: frame type,
/// channel and size (7), class id and weight (4), body size (8), frame end (1).
const HEADER_FRAME_OVERHEAD: usize = 20;

/// Room left for what the broker adds when it dead-letters or redelivers a
/// message (`x-death`, `x-first-death-*`, `x-delivery-count`): RabbitMQ does
/// not check the size of the header frames it sends, but the client does.
pub const BROKER_HEADER_MARGIN: usize = 4096;

/// The size of the content header frame that carries `props`.
pub fn header_frame_len(props: &BasicProperties) -> usize {
    let encoded =
        cookie_factory::gen_simple(lapin::protocol::basic::gen_properties(props), Vec::new())
            .expect("serializing into a Vec cannot fail");
    HEADER_FRAME_OVERHEAD + encoded.len()
}

/// `props`, with the original's headers dropped, largest first, until its
/// header frame fits `frame_max` less [`BROKER_HEADER_MARGIN`]; the names of
/// the dropped headers go into `x-bridge-dropped-headers`. A header frame
/// must fit one frame (a body may span many), and a frame the broker refuses
/// closes the whole connection. The bridge's own headers and the body stay.
pub fn fit_frame(props: BasicProperties, frame_max: u32) -> BasicProperties {
    let budget = match frame_max {
        0 => usize::MAX, // no limit negotiated
        n => (n as usize).saturating_sub(BROKER_HEADER_MARGIN),
    };
    if header_frame_len(&props) <= budget {
        return props;
    }
    let mut headers = props.headers().clone().unwrap_or_default();
    let mut theirs: Vec<(String, usize)> = headers
        .inner()
        .iter()
        .filter(|(k, _)| !k.as_str().starts_with("x-bridge-"))
        .map(|(k, v)| (k.as_str().to_owned(), value_len(v)))
        .collect();
    theirs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut dropped: Vec<String> = Vec::new();
    let mut fitted = props;
    for (name, _) in theirs {
        headers = without(&headers, &name);
        dropped.push(name);
        let mut h = headers.clone();
        h.insert(
            H_DROPPED.into(),
            AMQPValue::LongString(dropped.join(",").into()),
        );
        fitted = fitted.with_headers(h);
        if header_frame_len(&fitted) <= budget {
            break;
        }
    }
    fitted
}

fn value_len(v: &AMQPValue) -> usize {
    cookie_factory::gen_simple(lapin::types::generation::gen_value(v), Vec::new())
        .map_or(usize::MAX, |b| b.len())
}

fn without(headers: &FieldTable, name: &str) -> FieldTable {
    let mut kept = FieldTable::default();
    for (k, v) in headers.inner() {
        if k.as_str() != name {
            kept.insert(k.clone(), v.clone());
        }
    }
    kept
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

    fn big_headers() -> BasicProperties {
        let mut h = FieldTable::default();
        h.insert(
            "x-big".into(),
            AMQPValue::LongString(vec![b'x'; 130_900].into()),
        );
        h.insert(
            "x-medium".into(),
            AMQPValue::LongString(vec![b'm'; 2_000].into()),
        );
        h.insert("x-small".into(), AMQPValue::LongString("kept".into()));
        BasicProperties::default().with_headers(h)
    }

    fn dead_letter() -> NewDeadLetter {
        NewDeadLetter {
            dedup_key: "k".into(),
            antrag_id: None,
            reason: "not_object",
            detail: "the body is a JSON array".into(),
            body_sha256: "k".into(),
            body_bytes: 3,
            first_seen: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_dead_letter_fits_the_frame_without_its_largest_headers() {
        let props = properties(&big_headers(), &dead_letter(), Uuid::nil(), 131_072);
        assert!(header_frame_len(&props) <= 131_072 - BROKER_HEADER_MARGIN);
        let h = props.headers().as_ref().unwrap().inner();
        assert!(!h.contains_key("x-big"));
        assert!(h.contains_key("x-medium") && h.contains_key("x-small"));
        assert_eq!(header_str(&props, H_DROPPED).as_deref(), Some("x-big"));
        assert_eq!(header_str(&props, H_REASON).as_deref(), Some("not_object"));
        // A smaller frame costs the next largest too, never the bridge's own.
        let props = properties(&big_headers(), &dead_letter(), Uuid::nil(), 4096 + 1200);
        assert_eq!(
            header_str(&props, H_DROPPED).as_deref(),
            Some("x-big,x-medium")
        );
        assert!(header_str(&props, H_ID).is_some());
    }

    #[test]
    fn a_dead_letter_that_fits_keeps_every_header() {
        let mut h = FieldTable::default();
        h.insert("x-small".into(), AMQPValue::LongString("kept".into()));
        let original = BasicProperties::default().with_headers(h);
        let props = properties(&original, &dead_letter(), Uuid::nil(), 131_072);
        assert_eq!(header_str(&props, "x-small").as_deref(), Some("kept"));
        assert_eq!(header_str(&props, H_DROPPED), None);
        assert_eq!(header_frame_len(&BasicProperties::default()), 22);
    }

    /// The patched amq-protocol-types (crates/vendor/README.md) is in use: a
    /// short string that is not UTF-8 parses instead of failing the frame
    /// (and with it the connection).
    #[test]
    fn amqp_short_strings_that_are_not_utf8_parse() {
        let (_, s) = lapin::types::parsing::parse_short_string(&b"\x06\xff\xfe\xfdbad"[..])
            .expect("the amq-protocol-types patch is not applied");
        assert_eq!(s.as_str(), "\u{fffd}\u{fffd}\u{fffd}bad");
    }

    #[test]
    fn headers_round_trip_and_strip() {
        let dl = NewDeadLetter {
            dedup_key: "k".into(),
            antrag_id: None,
            reason: "no_mapping",
            detail: "x".repeat(600),
            body_sha256: "k".into(),
            body_bytes: 3,
            first_seen: Utc::now(),
        };
        let orig = BasicProperties::default().with_message_id("m1".into());
        let p = properties(&orig, &dl, Uuid::nil(), 131_072);
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
