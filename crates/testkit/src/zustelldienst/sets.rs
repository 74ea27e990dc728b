//! The security event tokens (SET, RFC 8417) of the stand-in's event logs:
//! the `submit-submission` event it signs itself when a submission arrives,
//! and the check of an `accept-submission` or `reject-submission` event a
//! subscriber posts, as FIT-Connect describes them.

use std::collections::{BTreeMap, HashMap};

use allegro_fitconnect::jose::{sign_ps512, verify_ps512, Jwks, RsaPrivateJwk};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{EventKind, NewSubmission, ISSUER};

/// The `$schema` of a FIT-Connect SET payload.
pub const SET_PAYLOAD_SCHEMA: &str =
    "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json";
/// The event the Zustelldienst logs when a sender submits.
pub const SUBMIT_SUBMISSION: &str = "https://schema.fitko.de/fit-connect/events/submit-submission";
/// The subscriber's confirmation.
pub const ACCEPT_SUBMISSION: &str = "https://schema.fitko.de/fit-connect/events/accept-submission";
/// The subscriber's refusal.
pub const REJECT_SUBMISSION: &str = "https://schema.fitko.de/fit-connect/events/reject-submission";
/// The `typ` of every SET.
const SET_TYP: &str = "secevent+jwt";
/// The members each entry of a reject event's `problems` must have.
const PROBLEM_MEMBERS: [&str; 4] = ["type", "title", "detail", "instance"];

/// A posted SET that passed every check.
pub(super) struct Checked {
    pub submission_id: Uuid,
    pub kind: EventKind,
    pub claims: Value,
}

/// The authentication tag of a JWE compact serialization: its fifth segment.
pub(super) fn tag(jwe: &str) -> &str {
    jwe.split('.').nth(4).unwrap_or_default()
}

/// The authentication tags of a submission, as accept events and the
/// `submit-submission` event name them.
fn authentication_tags(submission: &NewSubmission) -> Value {
    let attachments: Map<String, Value> = submission
        .attachments
        .iter()
        .map(|(id, jwe)| (id.to_string(), tag(jwe).into()))
        .collect();
    json!({
        "metadata": tag(&submission.encrypted_metadata),
        "data": tag(&submission.encrypted_data),
        "attachments": attachments,
    })
}

/// The `submit-submission` SET for `submission`, signed with `key`.
pub(super) fn submit_event(submission: &NewSubmission, key: &RsaPrivateJwk) -> String {
    let claims = json!({
        "$schema": SET_PAYLOAD_SCHEMA,
        "iss": ISSUER,
        "iat": chrono::Utc::now().timestamp(),
        "jti": Uuid::new_v4().to_string(),
        "sub": format!("submission:{}", submission.submission_id),
        "txn": format!("case:{}", submission.case_id),
        "events": {
            SUBMIT_SUBMISSION: { "authenticationTags": authentication_tags(submission) }
        }
    });
    sign_ps512(None, &claims, key).expect("the Zustelldienst's key signs PS512")
}

/// Checks a SET posted to the event log of `case_id`, whose submissions
/// are `case`, against the destinations' keys: the signature, the header's
/// `typ`, the claims and the one event. `Err` says what is wrong.
pub(super) fn check(
    compact: &str,
    case_id: Uuid,
    case: &[&NewSubmission],
    keys: &HashMap<Uuid, Jwks>,
) -> Result<Checked, String> {
    check_typ(compact)?;
    let (destination_id, claims) = verify(compact, case, keys)?;
    let submission = check_claims(&claims, destination_id, case_id, case)?;
    let kind = check_event(&claims, submission)?;
    Ok(Checked {
        submission_id: submission.submission_id,
        kind,
        claims,
    })
}

fn check_typ(compact: &str) -> Result<(), String> {
    let header = compact.split('.').next().unwrap_or_default();
    let header: Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("the JWS header is not base64url-encoded JSON")?;
    match header.get("typ").and_then(Value::as_str) {
        Some(SET_TYP) => Ok(()),
        other => Err(format!("the header's typ is {other:?}, not {SET_TYP:?}")),
    }
}

/// The destination whose key verifies the SET, and the SET's claims.
fn verify(
    compact: &str,
    case: &[&NewSubmission],
    keys: &HashMap<Uuid, Jwks>,
) -> Result<(Uuid, Value), String> {
    let mut destinations: Vec<Uuid> = case.iter().map(|s| s.destination_id).collect();
    destinations.sort();
    destinations.dedup();
    let mut failures = Vec::new();
    for destination in destinations {
        let jwks = keys.get(&destination).expect("add_submission checks it");
        match verify_ps512(compact, jwks) {
            Ok(claims) => return Ok((destination, claims)),
            Err(e) => failures.push(format!("destination {destination}: {e}")),
        }
    }
    Err(format!(
        "the SET does not verify with the destination's key ({})",
        failures.join("; ")
    ))
}

/// `iss`, `sub`, `txn`, `jti`, `iat`; the submission `sub` names.
fn check_claims<'a>(
    claims: &Value,
    destination_id: Uuid,
    case_id: Uuid,
    case: &[&'a NewSubmission],
) -> Result<&'a NewSubmission, String> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("claim `{name}` missing or not a string"))
    };
    let iss = text("iss")?;
    if Uuid::parse_str(iss).ok() != Some(destination_id) {
        return Err(format!(
            "iss is {iss:?}, not the destination id {destination_id}"
        ));
    }
    let txn = text("txn")?;
    if prefixed_uuid(txn, "case:") != Some(case_id) {
        return Err(format!("txn is {txn:?}, not \"case:{case_id}\""));
    }
    let sub = text("sub")?;
    let submission = prefixed_uuid(sub, "submission:")
        .and_then(|id| case.iter().find(|s| s.submission_id == id))
        .filter(|s| s.destination_id == destination_id)
        .ok_or_else(|| {
            format!("sub is {sub:?}, not \"submission:<id>\" of a submission of case {case_id} to destination {destination_id}")
        })?;
    let jti = text("jti")?;
    if Uuid::parse_str(jti).is_err() {
        return Err(format!("jti {jti:?} is not a UUID"));
    }
    if claims.get("iat").and_then(Value::as_i64).is_none() {
        return Err("claim `iat` missing or not an integer (seconds since 1970)".into());
    }
    Ok(submission)
}

/// `s` as `<prefix><uuid>`, the uuid.
fn prefixed_uuid(s: &str, prefix: &str) -> Option<Uuid> {
    s.strip_prefix(prefix)
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// Exactly one event, an accept with the submission's tags or a reject
/// with problems.
fn check_event(claims: &Value, submission: &NewSubmission) -> Result<EventKind, String> {
    let events = claims
        .get("events")
        .and_then(Value::as_object)
        .ok_or("claim `events` missing or not an object")?;
    let mut names = events.keys();
    let (Some(name), None) = (names.next(), names.next()) else {
        return Err(format!(
            "`events` has {} members, not exactly one",
            events.len()
        ));
    };
    let payload = &events[name];
    match name.as_str() {
        ACCEPT_SUBMISSION => check_accept(payload, submission).map(|()| EventKind::Accept),
        REJECT_SUBMISSION => check_reject(payload).map(|()| EventKind::Reject),
        other => Err(format!(
            "event {other:?} is neither accept-submission nor reject-submission"
        )),
    }
}

fn check_accept(payload: &Value, submission: &NewSubmission) -> Result<(), String> {
    let tags = payload
        .get("authenticationTags")
        .and_then(Value::as_object)
        .ok_or("accept-submission without `authenticationTags`")?;
    for (member, jwe) in [
        ("metadata", &submission.encrypted_metadata),
        ("data", &submission.encrypted_data),
    ] {
        let sent = tags.get(member).and_then(Value::as_str);
        if sent != Some(tag(jwe)) {
            return Err(format!(
                "authenticationTags.{member} is {sent:?}, not the tag {:?} of the submission's encrypted {member}",
                tag(jwe)
            ));
        }
    }
    check_attachment_tags(tags.get("attachments"), submission)
}

/// `attachments` must name every attachment by its id with its tag, and no
/// other; it may be left out when there are none.
fn check_attachment_tags(sent: Option<&Value>, submission: &NewSubmission) -> Result<(), String> {
    let expected: BTreeMap<String, &str> = submission
        .attachments
        .iter()
        .map(|(id, jwe)| (id.to_string(), tag(jwe)))
        .collect();
    let sent: BTreeMap<String, &str> = match sent {
        None if expected.is_empty() => return Ok(()),
        None => return Err("authenticationTags.attachments missing".into()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(id, tag)| {
                let id = Uuid::parse_str(id).map_or_else(|_| id.clone(), |u| u.to_string());
                (id, tag.as_str().unwrap_or("(not a string)"))
            })
            .collect(),
        Some(_) => return Err("authenticationTags.attachments is not an object".into()),
    };
    if sent != expected {
        return Err(format!(
            "authenticationTags.attachments is {sent:?}, not the attachments' tags {expected:?}"
        ));
    }
    Ok(())
}

fn check_reject(payload: &Value) -> Result<(), String> {
    let problems = payload
        .get("problems")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or("reject-submission without a non-empty `problems` array")?;
    for (i, problem) in problems.iter().enumerate() {
        for member in PROBLEM_MEMBERS {
            if problem.get(member).and_then(Value::as_str).is_none() {
                return Err(format!(
                    "problems[{i}] has no string `{member}` (each needs {PROBLEM_MEMBERS:?})"
                ));
            }
        }
    }
    Ok(())
}
