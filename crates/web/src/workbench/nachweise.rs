//! What a caseworker does with the documents of an application:
//! `POST /antraege/{id}/nachweise/{docId}` (Eingang vermerken, Verzichten,
//! Frist verlängern; `aktion`, `version`, `datum`/`grund`),
//! `POST /antraege/{id}/briefe` (Aufforderung erstellen) and
//! `GET /antraege/{id}/briefe/{letterId}` (the letter's PDF).
//!
//! A change is made by [`allegro_store::Store::change_owed`] (optimistic
//! locking on the document's `version`, the core's state machine, audit).
//! A refused input is the application page again with the error beside the
//! field (400; 409 when the document changed meanwhile); out of scope or
//! unknown is 404. A follow-up record (*Nachweiseingang*, a document
//! received after the import record was written) goes where released
//! cases' records go: written to the outbox at once, or left pending for
//! the daemon's dispatcher when the AMQP sink is configured.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::NaiveDate;
use serde::Deserialize;

use allegro_core::mitwirkung::state::{Change, Eingangsweg, Refused};
use allegro_store::audit::{Action, NewAudit};
use allegro_store::mitwirkung::{ApplicationHead, ChangeError, OwedChange, OwedRow};
use allegro_store::release::{RecordDelivery, RecordFile};
use allegro_store::PendingRecord;

use super::actions::MAX_REASON_CHARS;
use super::antrag::{self, AntragNotice, Failed, NachweisAktion};
use super::auth::Caller;
use super::detail::Notice;
use super::error::WebError;
use super::state::WorkbenchState;
use crate::letters::{self, LetterError};

/// The text when the document changed since the form was shown.
pub const STALE: &str =
    "Der Nachweis wurde inzwischen geändert. Bitte prüfen Sie den aktuellen Stand.";

/// A document form as sent.
#[derive(Debug, Deserialize)]
pub struct DocForm {
    aktion: NachweisAktion,
    #[serde(default)]
    version: String,
    #[serde(default)]
    datum: String,
    #[serde(default)]
    grund: String,
}

impl DocForm {
    /// What was typed into the action's input.
    fn typed(&self) -> String {
        let t = match self.aktion {
            NachweisAktion::Verzichten => &self.grund,
            _ => &self.datum,
        };
        t.chars().take(MAX_REASON_CHARS + 1).collect()
    }
}

/// A date as `JJJJ-MM-TT` (the date input) or `TT.MM.JJJJ`.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(t, "%d.%m.%Y"))
        .ok()
}

/// The change the form asks for, or the German message for its field.
fn change_of(form: &DocForm, actor: &str) -> Result<Change, String> {
    let date = || {
        parse_date(&form.datum).ok_or_else(|| {
            "Bitte geben Sie ein Datum im Format TT.MM.JJJJ an, z. B. 15.01.2027.".to_string()
        })
    };
    match form.aktion {
        NachweisAktion::Eingang => Ok(Change::Eingang {
            on: date()?,
            via: Eingangsweg::Sachbearbeitung,
        }),
        NachweisAktion::Frist => Ok(Change::FristVerlaengern { deadline: date()? }),
        NachweisAktion::Verzichten => {
            let reason = form.grund.trim();
            if reason.is_empty() {
                return Err(Refused::ReasonMissing.meldung().into());
            }
            if reason.chars().count() > MAX_REASON_CHARS {
                return Err(format!(
                    "Der Grund ist zu lang: höchstens {MAX_REASON_CHARS} Zeichen sind erlaubt."
                ));
            }
            Ok(Change::Verzichten {
                reason: reason.into(),
                by: actor.into(),
            })
        }
    }
}

/// The document `doc_id` of the application `head` in the caller's scope.
async fn document(
    state: &WorkbenchState,
    caller: &Caller,
    head: &ApplicationHead,
    doc_id: &str,
) -> Result<OwedRow, WebError> {
    let Ok(id) = doc_id.parse::<i64>() else {
        return Err(WebError::not_found(caller));
    };
    state
        .store
        .owed_document(id, &caller.scope())
        .await?
        .filter(|d| d.antrag_id == head.antrag_id)
        .ok_or_else(|| WebError::not_found(caller))
}

/// Hands a follow-up record on as a released case's record is handed on.
async fn deliver(state: &WorkbenchState, record: PendingRecord) -> RecordFile {
    let RecordDelivery::Outbox(dir) = &state.records else {
        return RecordFile::HandedOver;
    };
    let id = record.antrag_id;
    match allegro_store::outbox::dispatch(&state.store, dir, vec![record], 1).await {
        Ok(()) => RecordFile::Written,
        Err(e) => {
            tracing::warn!(record = %id, error = %e,
                "follow-up record not written yet; it stays pending");
            RecordFile::Pending
        }
    }
}

/// The notice after a successful change.
fn notice_of(action: NachweisAktion, follow_up: Option<RecordFile>) -> AntragNotice {
    match (action, follow_up) {
        (NachweisAktion::Eingang, None) => AntragNotice::Eingang,
        (NachweisAktion::Eingang, Some(RecordFile::Written)) => AntragNotice::EingangGemeldet,
        (NachweisAktion::Eingang, Some(RecordFile::Pending)) => AntragNotice::EingangAusstehend,
        (NachweisAktion::Eingang, Some(RecordFile::HandedOver)) => AntragNotice::EingangUebergabe,
        (NachweisAktion::Verzichten, _) => AntragNotice::Verzichtet,
        (NachweisAktion::Frist, _) => AntragNotice::FristVerlaengert,
    }
}

/// 303 back to the application page with `notice`, at `anchor`.
fn back(head: &ApplicationHead, notice: AntragNotice, anchor: &str) -> Response {
    Redirect::to(&format!(
        "/antraege/{}?meldung={}#{anchor}",
        head.antrag_id,
        notice.as_str()
    ))
    .into_response()
}

/// The application page again with the refusal beside the field.
async fn refused(
    state: &WorkbenchState,
    caller: &Caller,
    head: &ApplicationHead,
    failed: Failed,
    status: StatusCode,
) -> Result<Response, WebError> {
    antrag::render(state, caller, head, None, Some(&failed), status).await
}

/// POST /antraege/{id}/nachweise/{docId}.
pub async fn change(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path((id, doc_id)): Path<(String, String)>,
    Form(form): Form<DocForm>,
) -> Result<Response, WebError> {
    let head = antrag::in_scope(&state, &caller, &id).await?;
    let doc = document(&state, &caller, &head, &doc_id).await?;
    let failed = |message: &str| Failed {
        doc: doc.id,
        action: form.aktion,
        typed: form.typed(),
        message: message.into(),
    };
    let change = match change_of(&form, &caller.user.name) {
        Ok(c) => c,
        Err(msg) => {
            return refused(
                &state,
                &caller,
                &head,
                failed(&msg),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    let Ok(version) = form.version.trim().parse::<i32>() else {
        return refused(&state, &caller, &head, failed(STALE), StatusCode::CONFLICT).await;
    };
    let now = state.clock.now();
    let scope = caller.scope();
    let owed = OwedChange {
        id: doc.id,
        version,
        change: &change,
        actor: &caller.user.name,
        scope: &scope,
    };
    let result = state.store.change_owed(&owed, now.date_naive(), now).await;
    match result {
        Ok(follow_up) => {
            let file = match follow_up {
                Some(record) => Some(deliver(&state, record).await),
                None => None,
            };
            let anchor = format!("nachweis-{}", doc.id);
            Ok(back(&head, notice_of(form.aktion, file), &anchor))
        }
        Err(ChangeError::NotFound) => Err(WebError::not_found(&caller)),
        Err(ChangeError::Stale) => {
            refused(&state, &caller, &head, failed(STALE), StatusCode::CONFLICT).await
        }
        Err(ChangeError::Refused(r)) => {
            refused(
                &state,
                &caller,
                &head,
                failed(r.meldung()),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(ChangeError::Store(e)) => Err(e.into()),
    }
}

/// Why no letter was written, for the page.
fn letter_refusal(e: &LetterError) -> (StatusCode, Notice) {
    let no = |text: &str| Notice::danger("Kein Schreiben erstellt", text.into());
    match e {
        LetterError::NothingOwed(_) => (
            StatusCode::CONFLICT,
            no("Es ist kein Nachweis mehr offen oder angefordert; es wurde kein Schreiben erstellt."),
        ),
        LetterError::NoMapping(_) | LetterError::Unknown(_) => (
            StatusCode::CONFLICT,
            no("Für diesen Antrag kann kein Schreiben erstellt werden: Seine Daten oder die Zuordnung seiner Formularversion fehlen."),
        ),
        LetterError::Render(..) | LetterError::Store(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            no("Das Schreiben konnte nicht erstellt werden. Bitte wenden Sie sich an den IT-Betrieb."),
        ),
    }
}

/// POST /antraege/{id}/briefe: „Aufforderung erstellen“.
pub async fn write_letter(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let head = antrag::in_scope(&state, &caller, &id).await?;
    let pipeline = state.pipeline.current();
    let written = letters::write_letter(
        &state.store,
        &pipeline,
        &state.mitwirkung,
        head.antrag_id,
        &caller.user.name,
        state.clock.now(),
    )
    .await;
    match written {
        Ok(_) => Ok(back(&head, AntragNotice::Aufforderung, "briefe")),
        Err(LetterError::Store(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(antrag_id = %head.antrag_id, error = %e, "no letter written");
            let (status, notice) = letter_refusal(&e);
            antrag::render(&state, &caller, &head, Some(notice), None, status).await
        }
    }
}

/// GET /antraege/{id}/briefe/{letterId}: the PDF, if the letter belongs to
/// that application (audited as a view).
pub async fn letter_pdf(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path((id, letter_id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let head = antrag::in_scope(&state, &caller, &id).await?;
    let Ok(letter_id) = letter_id.parse::<i64>() else {
        return Err(WebError::not_found(&caller));
    };
    let Some((owner, pdf)) = state.store.letter_pdf(letter_id).await? else {
        return Err(WebError::not_found(&caller));
    };
    if owner != head.antrag_id {
        return Err(WebError::not_found(&caller));
    }
    let detail = format!("Schreiben {letter_id}");
    let entry =
        NewAudit::new(&caller.user.name, Action::View, Some(head.antrag_id)).detail(&detail);
    state.store.audit(&entry, state.clock.now()).await?;
    let disposition = format!("attachment; filename=\"aufforderung-{letter_id}.pdf\"");
    let mut resp = pdf.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(aktion: NachweisAktion, datum: &str, grund: &str) -> DocForm {
        DocForm {
            aktion,
            version: "1".into(),
            datum: datum.into(),
            grund: grund.into(),
        }
    }

    #[test]
    fn forms_become_changes_or_messages() {
        let d = NaiveDate::from_ymd_opt(2027, 1, 15).unwrap();
        assert_eq!(
            change_of(&form(NachweisAktion::Eingang, "15.01.2027", ""), "sb"),
            Ok(Change::Eingang {
                on: d,
                via: Eingangsweg::Sachbearbeitung
            })
        );
        assert_eq!(
            change_of(&form(NachweisAktion::Frist, "2027-01-15", ""), "sb"),
            Ok(Change::FristVerlaengern { deadline: d })
        );
        assert!(change_of(&form(NachweisAktion::Frist, "morgen", ""), "sb").is_err());
        assert_eq!(
            change_of(&form(NachweisAktion::Verzichten, "", "  "), "sb"),
            Err(Refused::ReasonMissing.meldung().to_string())
        );
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert!(change_of(&form(NachweisAktion::Verzichten, "", &long), "sb").is_err());
        let ok = change_of(&form(NachweisAktion::Verzichten, "", " liegt vor "), "sb");
        assert_eq!(
            ok,
            Ok(Change::Verzichten {
                reason: "liegt vor".into(),
                by: "sb".into()
            })
        );
    }
}
