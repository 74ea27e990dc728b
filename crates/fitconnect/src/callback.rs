//! FIT-Connect callbacks: the Zustelldienst announces new submissions by a
//! POST to the subscriber's callback URL, authenticated with the callback
//! secret set in the self-service portal. Header `callback-timestamp` is
//! the Unix time in seconds, `callback-authentication` the HMAC-SHA512 with
//! the secret over `timestamp + "." + body` (base64; hex is taken too).
//! A callback whose MAC does not verify, or whose timestamp is more than
//! five minutes off (a replay), is refused. The body only announces: the
//! subscriber still lists and fetches, so nothing in it is trusted beyond
//! "look now".
//!
//! Pure: the time is passed in; the MAC is compared in constant time
//! (aws-lc-rs's `hmac::verify`).

use aws_lc_rs::hmac;
use base64::Engine as _;

/// The header carrying the MAC.
pub const AUTHENTICATION_HEADER: &str = "callback-authentication";
/// The header carrying the Unix time of sending, in seconds.
pub const TIMESTAMP_HEADER: &str = "callback-timestamp";
/// How far the timestamp may be from now, either way, in seconds.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a callback is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A header is missing, or the timestamp is not a number of seconds.
    #[error("callback headers missing or malformed")]
    Malformed,
    /// The MAC is not the secret's over timestamp and body.
    #[error("callback authentication does not verify")]
    BadSignature,
    /// The timestamp is more than [`MAX_SKEW_SECS`] from now.
    #[error("callback timestamp too old or in the future")]
    Stale,
}

impl Refused {
    /// Every reason.
    pub const ALL: [Refused; 3] = [Refused::Malformed, Refused::BadSignature, Refused::Stale];

    /// A short name for a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::BadSignature => "signature",
            Refused::Stale => "stale",
        }
    }
}

/// The callback secret as an HMAC-SHA512 key.
pub struct CallbackKey(hmac::Key);

impl CallbackKey {
    pub fn new(secret: &[u8]) -> CallbackKey {
        CallbackKey(hmac::Key::new(hmac::HMAC_SHA512, secret))
    }

    /// Checks a callback's headers against its body at `now` (Unix
    /// seconds): first the MAC, then the age.
    pub fn check(
        &self,
        timestamp: Option<&str>,
        authentication: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), Refused> {
        let (Some(timestamp), Some(authentication)) = (timestamp, authentication) else {
            return Err(Refused::Malformed);
        };
        let timestamp = timestamp.trim();
        let sent: i64 = timestamp.parse().map_err(|_| Refused::Malformed)?;
        let tag = decode_tag(authentication.trim()).ok_or(Refused::BadSignature)?;
        hmac::verify(&self.0, &signed_input(timestamp, body), &tag)
            .map_err(|_| Refused::BadSignature)?;
        if now.abs_diff(sent) > MAX_SKEW_SECS.unsigned_abs() {
            return Err(Refused::Stale);
        }
        Ok(())
    }

    /// The `callback-authentication` value (base64) for `timestamp` and
    /// `body`: what the Zustelldienst sends (tests and the stand-in).
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0, &signed_input(timestamp, body));
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    }
}

fn signed_input(timestamp: &str, body: &[u8]) -> Vec<u8> {
    [timestamp.as_bytes(), b".", body].concat()
}

/// The MAC from its header: 128 hex digits, or base64 (with or without
/// padding, standard or URL alphabet).
fn decode_tag(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if text.len() == 128 {
        return hex::decode(text).ok();
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"callback-secret-from-the-portal";
    const BODY: &[u8] = br#"{"type":"https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions","submissionIds":["f39ab143-d91a-474a-b69f-b00f1a1873c2"]}"#;
    const NOW: i64 = 1_765_000_000;

    fn key() -> CallbackKey {
        CallbackKey::new(SECRET)
    }

    fn check(ts: i64, mac: &str, body: &[u8]) -> Result<(), Refused> {
        key().check(Some(&ts.to_string()), Some(mac), body, NOW)
    }

    #[test]
    fn a_fresh_callback_signed_with_the_secret_is_taken() {
        let mac = key().sign(&NOW.to_string(), BODY);
        assert_eq!(check(NOW, &mac, BODY), Ok(()));
        let at_the_edge = key().sign(&(NOW - 300).to_string(), BODY);
        assert_eq!(check(NOW - 300, &at_the_edge, BODY), Ok(()));
    }

    #[test]
    fn the_mac_is_hmac_sha512_over_timestamp_dot_body() {
        // Computed independently: RFC 2104 HMAC with SHA-512 by hand.
        use sha2::{Digest, Sha512};
        let input = [NOW.to_string().as_bytes(), b".", BODY].concat();
        let mut k = [0u8; 128];
        k[..SECRET.len()].copy_from_slice(SECRET);
        let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
        let inner = Sha512::digest([pad(0x36), input].concat());
        let outer = Sha512::digest([pad(0x5c), inner.to_vec()].concat());
        let expected = base64::engine::general_purpose::STANDARD.encode(outer);
        assert_eq!(key().sign(&NOW.to_string(), BODY), expected);
        // The same MAC as hex is taken too.
        assert_eq!(check(NOW, &hex::encode(outer), BODY), Ok(()));
    }

    #[test]
    fn another_secret_body_or_timestamp_does_not_verify() {
        let mac = key().sign(&NOW.to_string(), BODY);
        let other = CallbackKey::new(b"another secret").sign(&NOW.to_string(), BODY);
        assert_eq!(check(NOW, &other, BODY), Err(Refused::BadSignature));
        assert_eq!(check(NOW, &mac, b"{}"), Err(Refused::BadSignature));
        assert_eq!(check(NOW - 1, &mac, BODY), Err(Refused::BadSignature));
        assert_eq!(check(NOW, "not base64 !", BODY), Err(Refused::BadSignature));
        assert_eq!(check(NOW, "", BODY), Err(Refused::BadSignature));
    }

    #[test]
    fn older_or_later_than_five_minutes_is_stale() {
        for ts in [NOW - 301, NOW + 301, 0] {
            let mac = key().sign(&ts.to_string(), BODY);
            assert_eq!(check(ts, &mac, BODY), Err(Refused::Stale), "{ts}");
        }
        let future_edge = key().sign(&(NOW + 300).to_string(), BODY);
        assert_eq!(check(NOW + 300, &future_edge, BODY), Ok(()));
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let mac = key().sign(&NOW.to_string(), BODY);
        let k = key();
        assert_eq!(
            k.check(None, Some(&mac), BODY, NOW),
            Err(Refused::Malformed)
        );
        assert_eq!(
            k.check(Some(&NOW.to_string()), None, BODY, NOW),
            Err(Refused::Malformed)
        );
        assert_eq!(
            k.check(Some("gestern"), Some(&mac), BODY, NOW),
            Err(Refused::Malformed)
        );
    }
}
