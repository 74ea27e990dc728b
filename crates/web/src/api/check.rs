//! `POST /api/v1/pruefung`: one application in, what the bridge would do
//! with it out ([`Pipeline::pruefen`], the daemon's own code path), as JSON
//! with the applicant's messages in the language asked for. Nothing of the
//! body is stored, logged or counted beyond rule ids: a check logs (at
//! debug) its client, outcome, number of findings and duration.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tracing::debug;
use utoipa::{IntoParams, ToSchema};

use allegro_core::finding::Finding;
use allegro_core::intake::InvalidReason;
use allegro_core::mapping::Mapping;
use allegro_core::mitwirkung::{document_label, OwedDocument};
use allegro_core::pruefung::{Abschnitte, Ergebnis, Pruefung, Sprache};

use super::metrics::FindingLabel;
use super::{fehler, ApiState, Authenticated};

/// The answer to a check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PruefAntwort {
    /// What the application would become on submission.
    pub ergebnis: ErgebnisCode,
    /// Why it could not be read (only with `unlesbar`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grund: Option<Grund>,
    /// The mapping it was checked under, e.g. `bg-ha-1.0` (not with `unlesbar`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formular: Option<String>,
    /// The language of the `hinweis` texts (`de`, `en`, `uk`).
    pub sprache: String,
    /// Every finding, in the pipeline's order (under the sections asked for).
    pub befunde: Vec<Befund>,
    /// The documents that would be owed after submission (same filter).
    pub nachweise: Vec<Nachweis>,
}

/// The outcome code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErgebnisCode {
    /// Accepted: the ALLEGRO record would be written without retyping.
    Annehmbar,
    /// A case (Klärfall) for a caseworker.
    Klaerfall,
    /// Not readable as an application (a dead letter).
    Unlesbar,
}

/// Why an application is `unlesbar`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Grund {
    /// The reason code of docs/contract.md §2, e.g. `no_mapping`.
    pub code: String,
    /// The reason in one German sentence.
    pub text: String,
}

/// One finding.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Befund {
    /// RFC 6901 JSON Pointer of the field, e.g. `/bankverbindung/iban`.
    pub zeiger: String,
    /// The rule id from the mapping files.
    pub regel: String,
    /// `error` (makes a case), `warning` or `info`.
    pub schwere: String,
    /// The caseworker's German message.
    pub meldung: String,
    /// The applicant's message ("Sie"-form) in `sprache`, where the rule has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hinweis: Option<String>,
    /// The document kind owed (only on findings that ask for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nachweis: Option<String>,
}

/// A document that would be owed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Nachweis {
    /// Its kind, e.g. `LOHNABRECHNUNG`.
    pub art: String,
    /// Its German name, e.g. `Lohnabrechnung`.
    pub bezeichnung: String,
    /// The person it is owed for (`null`: the household).
    pub person: Option<String>,
    /// The field that asks for it.
    pub zeiger: String,
    /// The rule that asks for it.
    pub regel: String,
}

/// The query of a check.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PruefQuery {
    /// Only these sections, as a comma list of JSON Pointers, e.g.
    /// `/bankverbindung,/antragsteller`: findings elsewhere (such as
    /// "required" for pages not yet filled) are left out.
    pub abschnitte: Option<String>,
}

/// Checks one application.
#[utoipa::path(
    post,
    path = "/api/v1/pruefung",
    tag = "Prüfung",
    params(
        PruefQuery,
        ("Accept-Language" = Option<String>, Header,
            description = "Language of the `hinweis` texts: de, en or uk; German when none fits"),
    ),
    request_body(
        content = Object, content_type = "application/json",
        description = "An application as docs/contract.md §1 defines it (antragId, formular, …)"
    ),
    responses(
        (status = 200, description = "The outcome, for every JSON object", body = PruefAntwort),
        (status = 400, description = "The body is not a JSON object, or `abschnitte` is not a list of pointers", body = Fehler),
        (status = 401, description = "No or a wrong bearer token", body = Fehler),
        (status = 403, description = "The token's client may not call from this origin", body = Fehler),
        (status = 413, description = "The body is larger than `[api] max_body_bytes`", body = Fehler),
        (status = 415, description = "The content type is not application/json", body = Fehler),
        (status = 429, description = "The client's rate limit is used up; see Retry-After", body = Fehler),
        (status = 500, description = "The check failed inside the bridge (a bug)", body = Fehler),
        (status = 503, description = "The request took longer than `[api] timeout_ms`", body = Fehler),
    ),
    security(("bearer" = []))
)]
pub async fn pruefung(
    State(state): State<ApiState>,
    Extension(client): Extension<Authenticated>,
    query: Result<Query<PruefQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let refuse = |status, code, text: &str| {
        debug!(client = %client.0, outcome = code, "check refused");
        state.metrics.request(&client.0, code);
        fehler(status, code, text)
    };
    if !is_json(&headers) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Der Inhalt muss als application/json gesendet werden.",
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large", TOO_LARGE)
        }
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Der Inhalt konnte nicht gelesen werden.",
            )
        }
    };
    let abschnitte = match query.map(|q| q.0.abschnitte.unwrap_or_default()) {
        Ok(list) => Abschnitte::parse(&list),
        Err(_) => Err(String::new()),
    };
    let Ok(abschnitte) = abschnitte else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Der Parameter „abschnitte“ muss eine Liste von JSON-Pointern sein, z. B. /bankverbindung,/antragsteller.",
        );
    };
    let sprache = Sprache::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let started = Instant::now();
    let Ok(pruefung) = check(&state, body, abschnitte).await else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Bei der Prüfung ist ein interner Fehler aufgetreten.",
        );
    };
    if let Some((status, code, text)) = refusal_of(&pruefung.ergebnis) {
        return refuse(status, code, text);
    }
    let answer = antwort(&pruefung, sprache);
    count(&state, &client, &pruefung, started.elapsed());
    let mut resp = Json(answer).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(sprache.as_str()),
    );
    // The answer quotes the applicant's own mistakes: no cache keeps it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(header::VARY, HeaderValue::from_static("accept-language"));
    resp
}

const TOO_LARGE: &str = "Der Antrag ist zu groß für die Prüfung.";

/// Bodies up to this size are checked on the runtime's own thread: a
/// 5 KB Hauptantrag takes about 40 µs, less than a hand-over to the
/// blocking pool costs (two thread wake-ups; measured in
/// docs/performance.md). Larger ones go to the blocking pool, so that they
/// do not hold up the runtime the daemon's consumer shares and the timeout
/// answers 503 even while such a check still runs.
const INLINE_BYTES: usize = 32 * 1024;

/// Runs the pipeline's check, inline or on the blocking pool by size;
/// `Err` if it panicked.
async fn check(state: &ApiState, body: Bytes, abschnitte: Abschnitte) -> Result<Pruefung, ()> {
    let pipeline = state.pipeline.current();
    if body.len() <= INLINE_BYTES {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pipeline.pruefen(&body, &abschnitte)
        }))
        .map_err(|_| ());
    }
    tokio::task::spawn_blocking(move || pipeline.pruefen(&body, &abschnitte))
        .await
        .map_err(|_| ())
}

/// An outcome that is an HTTP refusal rather than an answer: a body that
/// failed before it was a JSON object (400), or one too large (413).
fn refusal_of(ergebnis: &Ergebnis) -> Option<(StatusCode, &'static str, &'static str)> {
    let Ergebnis::Unlesbar { reason, .. } = ergebnis else {
        return None;
    };
    match reason {
        InvalidReason::NotUtf8
        | InvalidReason::NotJson
        | InvalidReason::TooDeep
        | InvalidReason::NotObject => Some((
            StatusCode::BAD_REQUEST,
            "bad_request",
            reason.beschreibung(),
        )),
        InvalidReason::TooLarge => Some((StatusCode::PAYLOAD_TOO_LARGE, "too_large", TOO_LARGE)),
        _ => None,
    }
}

/// The metrics and the debug line of one answered check.
fn count(state: &ApiState, client: &Authenticated, p: &Pruefung, elapsed: std::time::Duration) {
    state.metrics.check_seconds.observe(elapsed.as_secs_f64());
    debug!(client = %client.0, outcome = p.ergebnis.as_str(),
        findings = p.findings.len(), micros = elapsed.as_micros() as u64, "checked");
    state.metrics.request(&client.0, p.ergebnis.as_str());
    for f in &p.findings {
        state
            .metrics
            .findings
            .get_or_create(&FindingLabel::of("api", f))
            .inc();
    }
}

/// `application/json` or `application/…+json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The wire form of a check in `sprache`.
pub fn antwort(p: &Pruefung, sprache: Sprache) -> PruefAntwort {
    let mapping = p.mapping.as_deref();
    PruefAntwort {
        ergebnis: match p.ergebnis {
            Ergebnis::Annehmbar => ErgebnisCode::Annehmbar,
            Ergebnis::Klaerfall => ErgebnisCode::Klaerfall,
            Ergebnis::Unlesbar { .. } => ErgebnisCode::Unlesbar,
        },
        grund: match &p.ergebnis {
            Ergebnis::Unlesbar { reason, .. } => Some(Grund {
                code: reason.as_str().into(),
                text: reason.beschreibung().into(),
            }),
            _ => None,
        },
        formular: mapping.map(|m| m.name.clone()),
        sprache: sprache.as_str().into(),
        befunde: p
            .findings
            .iter()
            .map(|f| befund(f, mapping, sprache))
            .collect(),
        nachweise: mapping.map_or_else(Vec::new, |m| {
            p.owed.iter().map(|o| nachweis(o, m)).collect()
        }),
    }
}

fn befund(f: &Finding, mapping: Option<&Mapping>, sprache: Sprache) -> Befund {
    Befund {
        zeiger: f.pointer.clone(),
        regel: f.rule.clone(),
        schwere: f.severity.as_str().into(),
        meldung: f.message.clone(),
        hinweis: mapping.and_then(|m| m.applicant_message(f, sprache)),
        nachweis: f.nachweis.clone(),
    }
}

fn nachweis(o: &OwedDocument, m: &Mapping) -> Nachweis {
    Nachweis {
        art: o.kind.clone(),
        bezeichnung: document_label(m, &o.kind),
        person: o.person_id.clone(),
        zeiger: o.pointer.clone(),
        regel: o.rule.clone(),
    }
}

/// An error answer: a code and one German sentence, nothing from the request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Fehler {
    /// `bad_request`, `unauthorized`, `forbidden_origin`, `too_large`,
    /// `unsupported_media_type`, `rate_limited`, `timeout`, `internal_error`,
    /// `not_found` or `method_not_allowed`.
    pub fehler: String,
    /// What went wrong, in German.
    pub meldung: String,
}
