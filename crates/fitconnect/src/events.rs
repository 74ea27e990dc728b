//! The subscriber's answers in a case's event log: `accept-submission`
//! (with the authentication tags of what was received) and
//! `reject-submission` (with the problem), as Security Event Tokens (RFC
//! 8417) signed PS512 with the destination's signing key.
//!
//! The claims are built here from what the caller gives, including `jti`
//! and `iat`: the event is made once and kept in the outbox, so a retry
//! sends the very same token.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::jose::{self, JoseError, Jwks, RsaPrivateJwk};
use crate::submission::{AuthenticationTags, Problem};

/// The event of an accepted submission.
pub const ACCEPT: &str = "https://schema.fitko.de/fit-connect/events/accept-submission";
/// The event of a rejected submission.
pub const REJECT: &str = "https://schema.fitko.de/fit-connect/events/reject-submission";
/// The Zustelldienst's event of a submission sent to the destination.
pub const SUBMIT: &str = "https://schema.fitko.de/fit-connect/events/submit-submission";
/// The SET payload schema the claims follow.
pub const SET_PAYLOAD_SCHEMA: &str =
    "https://schema.fitko.de/fit-connect/set-payload/1.2.0/set-payload.schema.json";

/// Which submission an event is about, and its identity.
#[derive(Debug, Clone, Copy)]
pub struct About {
    pub destination_id: Uuid,
    pub submission_id: Uuid,
    pub case_id: Uuid,
    /// The token's id (kept, so a retry is recognisable in the event log).
    pub jti: Uuid,
    /// Seconds since the epoch.
    pub iat: i64,
}

/// What the subscriber answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Accept(AuthenticationTags),
    Reject(Problem),
}

impl Answer {
    /// `accept` or `reject`.
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Accept(_) => "accept",
            Answer::Reject(_) => "reject",
        }
    }
}

/// The SET's claims.
pub fn claims(about: &About, answer: &Answer) -> Value {
    let (event, payload) = match answer {
        Answer::Accept(tags) => (
            ACCEPT,
            json!({ "authenticationTags": {
                "metadata": tags.metadata,
                "data": tags.data,
                "attachments": tags.attachments.iter()
                    .map(|(id, tag)| (id.to_string(), Value::from(tag.as_str())))
                    .collect::<serde_json::Map<_, _>>(),
            }}),
        ),
        Answer::Reject(p) => (
            REJECT,
            json!({ "problems": [{
                "type": p.kind.type_uri(),
                "title": p.kind.title(),
                "detail": p.detail,
                "instance": p.instance,
            }]}),
        ),
    };
    json!({
        "$schema": SET_PAYLOAD_SCHEMA,
        "iss": about.destination_id.to_string(),
        "sub": format!("submission:{}", about.submission_id),
        "txn": format!("case:{}", about.case_id),
        "iat": about.iat,
        "jti": about.jti.to_string(),
        "events": { event: payload },
    })
}

/// The signed token.
pub fn sign(about: &About, answer: &Answer, key: &RsaPrivateJwk) -> Result<String, JoseError> {
    jose::sign_ps512(None, &claims(about, answer), key)
}

/// Why the Zustelldienst's own record of a submission does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitEventError {
    /// No verified `submit-submission` event for the submission: a token
    /// that does not verify against the Zustelldienst's keys counts as none.
    #[error("no submit-submission event verified by the Zustelldienst's keys for submission {0}")]
    Missing(Uuid),
    /// The event names other authentication tags than the parts received.
    #[error("the submit-submission event names other authentication tags than were received")]
    TagsDiffer,
}

/// Checks the case's event log against what was received: the
/// Zustelldienst's `submit-submission` event for `submission`, verified
/// with its keys (`jwks`, from `/.well-known/jwks.json`), and, where it
/// names authentication tags, the same ones as `received`.
pub fn check_submit_event(
    log: &[String],
    jwks: &Jwks,
    submission: Uuid,
    received: &AuthenticationTags,
) -> Result<(), SubmitEventError> {
    let sub = format!("submission:{submission}");
    let event = log
        .iter()
        .filter_map(|t| jose::verify_ps512(t, jwks).ok())
        .find(|c| c["sub"] == sub.as_str() && c["events"].get(SUBMIT).is_some())
        .ok_or(SubmitEventError::Missing(submission))?;
    let tags = &event["events"][SUBMIT]["authenticationTags"];
    if tags.is_null() {
        return Ok(());
    }
    let same = tags["metadata"] == received.metadata.as_str()
        && tags["data"] == received.data.as_str()
        && received
            .attachments
            .iter()
            .all(|(id, t)| tags["attachments"][id.to_string()] == t.as_str())
        && tags["attachments"].as_object().map_or(0, |m| m.len()) == received.attachments.len();
    if same {
        Ok(())
    } else {
        Err(SubmitEventError::TagsDiffer)
    }
}

/// Whether `log` (the case's event log, as compact tokens) holds the token
/// with id `jti`. Read without verifying: it only tells whether our own
/// token, already kept, went through.
pub fn log_has(log: &[String], jti: Uuid) -> bool {
    let jti = jti.to_string();
    log.iter()
        .any(|t| claims_unverified(t).is_some_and(|c| c["jti"] == jti.as_str()))
}

fn claims_unverified(token: &str) -> Option<Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::ProblemKind;
    use std::collections::BTreeMap;

    fn about() -> About {
        About {
            destination_id: Uuid::from_u128(1),
            submission_id: Uuid::from_u128(2),
            case_id: Uuid::from_u128(3),
            jti: Uuid::from_u128(4),
            iat: 1_765_000_000,
        }
    }

    #[test]
    fn accept_claims_quote_every_tag() {
        let tags = AuthenticationTags {
            metadata: "m".into(),
            data: "d".into(),
            attachments: BTreeMap::from([(Uuid::from_u128(9), "a".into())]),
        };
        let c = claims(&about(), &Answer::Accept(tags));
        assert_eq!(c["sub"], "submission:00000000-0000-0000-0000-000000000002");
        assert_eq!(c["txn"], "case:00000000-0000-0000-0000-000000000003");
        assert_eq!(c["iss"], "00000000-0000-0000-0000-000000000001");
        let t = &c["events"][ACCEPT]["authenticationTags"];
        assert_eq!(t["metadata"], "m");
        assert_eq!(t["data"], "d");
        assert_eq!(
            t["attachments"]["00000000-0000-0000-0000-000000000009"],
            "a"
        );
    }

    #[test]
    fn reject_claims_carry_the_problem() {
        let p = Problem {
            kind: ProblemKind::HashMismatch,
            instance: "data".into(),
            detail: "x".into(),
        };
        let c = claims(&about(), &Answer::Reject(p));
        let problem = &c["events"][REJECT]["problems"][0];
        assert_eq!(
            problem["type"],
            "https://schema.fitko.de/fit-connect/events/problems/hash-mismatch"
        );
        assert_eq!(problem["instance"], "data");
        assert_eq!(problem["title"], "Prüfsummen-Fehler");
    }

    #[test]
    fn the_log_is_searched_by_jti() {
        use base64::Engine as _;
        let enc =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "h.{}.s",
            enc(&json!({"jti": Uuid::from_u128(4).to_string()}))
        );
        assert!(log_has(std::slice::from_ref(&token), Uuid::from_u128(4)));
        assert!(!log_has(&[token, "garbage".into()], Uuid::from_u128(5)));
    }
}
