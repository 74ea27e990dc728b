//! `GET /antraege/{antragId}`: one stored application in the caller's
//! scope, accepted ones included. A read-only head (antragId, form,
//! Dienststelle, receipt, „übernommen“ or „Klärfall“ with the link to the
//! case page), then „Nachweise (Mitwirkung)“: each document owed with its
//! person, label, state, deadline, receipt or waiver and the forms its
//! state allows (Eingang vermerken, Verzichten, Frist verlängern), the form
//! „Aufforderung erstellen“ and the letters written. Every view is audited;
//! out of scope or unknown is 404, audited `denied`.
//!
//! The actions themselves are in [`super::nachweise`]; a refused one
//! renders this page again with its error beside the field
//! ([`Failed`]).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use uuid::Uuid;

use allegro_core::mitwirkung::state::{Change, DocState, Eingangsweg};
use allegro_store::audit::{Action, NewAudit};
use allegro_store::mitwirkung::{ApplicationHead, LetterRow, OwedRow};

use super::auth::Caller;
use super::detail::{german_time, Notice};
use super::error::WebError;
use super::layout::{FieldError, Layout};
use super::list::german_date;
use super::mitwirkung::{deadline_text, state_text, AppDoc};
use super::state::WorkbenchState;

/// What a document form does (`aktion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NachweisAktion {
    /// „Eingang vermerken“ (`datum`: the day it arrived).
    Eingang,
    /// „Verzichten“ (`grund`).
    Verzichten,
    /// „Frist verlängern“ (`datum`: the new deadline).
    Frist,
}

impl NachweisAktion {
    pub const ALL: [NachweisAktion; 3] = [
        NachweisAktion::Eingang,
        NachweisAktion::Verzichten,
        NachweisAktion::Frist,
    ];

    /// The input's element id for document `doc`.
    pub fn field_id(self, doc: i64) -> String {
        match self {
            NachweisAktion::Eingang => format!("eingang-{doc}"),
            NachweisAktion::Verzichten => format!("grund-{doc}"),
            NachweisAktion::Frist => format!("frist-{doc}"),
        }
    }

    /// Whether the state machine allows this action in `state` (asked with
    /// a change that only the state can refuse).
    pub fn allowed(self, state: &DocState, today: NaiveDate) -> bool {
        let probe = match self {
            NachweisAktion::Eingang => Change::Eingang {
                on: today,
                via: Eingangsweg::Sachbearbeitung,
            },
            NachweisAktion::Verzichten => Change::Verzichten {
                reason: "-".into(),
                by: String::new(),
            },
            NachweisAktion::Frist => Change::FristVerlaengern {
                deadline: NaiveDate::MAX,
            },
        };
        state.apply(&probe, today).is_ok()
    }
}

/// `?meldung=` after an action on the application page (a fixed code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AntragNotice {
    /// Received; no follow-up record needed (no import record yet).
    Eingang,
    /// Received; the follow-up record was written to the outbox.
    EingangGemeldet,
    /// Received; the follow-up record waits for the outbox.
    EingangAusstehend,
    /// Received; the follow-up record is left to the daemon's dispatcher.
    EingangUebergabe,
    Verzichtet,
    FristVerlaengert,
    Aufforderung,
}

impl AntragNotice {
    pub const ALL: [AntragNotice; 7] = [
        AntragNotice::Eingang,
        AntragNotice::EingangGemeldet,
        AntragNotice::EingangAusstehend,
        AntragNotice::EingangUebergabe,
        AntragNotice::Verzichtet,
        AntragNotice::FristVerlaengert,
        AntragNotice::Aufforderung,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AntragNotice::Eingang => "eingang",
            AntragNotice::EingangGemeldet => "eingang-gemeldet",
            AntragNotice::EingangAusstehend => "eingang-ausstehend",
            AntragNotice::EingangUebergabe => "eingang-uebergabe",
            AntragNotice::Verzichtet => "verzichtet",
            AntragNotice::FristVerlaengert => "frist-verlaengert",
            AntragNotice::Aufforderung => "aufforderung",
        }
    }

    fn notice(self) -> Notice {
        let ok = |t: &str, x: &str| Notice::success(t, x.into());
        match self {
            AntragNotice::Eingang => ok("Eingang vermerkt", "Der Nachweis ist als eingegangen vermerkt."),
            AntragNotice::EingangGemeldet => ok(
                "Eingang vermerkt",
                "Der Nachweis ist als eingegangen vermerkt; die Eingangsmeldung an ALLEGRO wurde geschrieben.",
            ),
            AntragNotice::EingangAusstehend => ok(
                "Eingang vermerkt",
                "Der Nachweis ist als eingegangen vermerkt; die Eingangsmeldung an ALLEGRO wird nachgeliefert, sobald der Ausgangsordner beschreibbar ist.",
            ),
            AntragNotice::EingangUebergabe => ok(
                "Eingang vermerkt",
                "Der Nachweis ist als eingegangen vermerkt; der Hintergrunddienst gibt die Eingangsmeldung in Kürze weiter.",
            ),
            AntragNotice::Verzichtet => ok("Verzicht vermerkt", "Auf den Nachweis wird verzichtet."),
            AntragNotice::FristVerlaengert => ok("Frist verlängert", "Die Frist des Nachweises ist verlängert."),
            AntragNotice::Aufforderung => ok(
                "Aufforderung erstellt",
                "Das Schreiben „Aufforderung zur Mitwirkung“ ist gespeichert; die offenen Nachweise sind angefordert. Sie finden es unten unter „Schreiben“.",
            ),
        }
    }
}

/// The query of the application page.
#[derive(Debug, Default, Deserialize)]
pub struct AntragParams {
    /// An unknown code is ignored.
    #[serde(default)]
    meldung: String,
}

fn known_notice(code: &str) -> Option<AntragNotice> {
    AntragNotice::ALL.into_iter().find(|n| n.as_str() == code)
}

/// A refused document action: which document and action, what was typed,
/// and why.
#[derive(Debug, Clone)]
pub struct Failed {
    pub doc: i64,
    pub action: NachweisAktion,
    pub typed: String,
    pub message: String,
}

/// One input of a document's form.
pub struct Input {
    /// Element id (and the error summary's target).
    pub id: String,
    pub value: String,
    pub error: Option<FieldError>,
}

/// One document owed, as shown.
pub struct DocView {
    pub id: i64,
    pub version: i32,
    pub person: String,
    pub label: String,
    pub state: &'static str,
    pub overdue: bool,
    pub deadline: String,
    pub requested: String,
    pub received: String,
    pub waiver: String,
    /// The forms shown (`None`: the state does not allow it).
    pub eingang: Option<Input>,
    pub grund: Option<Input>,
    pub frist: Option<Input>,
    /// A refusal whose form is not shown any more (changed meanwhile).
    pub problem: Option<FieldError>,
}

impl DocView {
    /// The element id of the document's block.
    pub fn anchor(&self) -> String {
        format!("nachweis-{}", self.id)
    }
}

/// One letter written.
pub struct LetterLine {
    pub id: i64,
    pub created: String,
    pub by: String,
    pub deadline: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "antrag.html")]
pub struct AntragPage {
    pub layout: Layout,
    pub antrag_id: String,
    pub form: String,
    pub mapping: String,
    pub dienststelle: String,
    pub received: String,
    /// „übernommen“ or „Klärfall“.
    pub outcome: &'static str,
    /// The case page, when there is a case.
    pub case_link: Option<String>,
    pub notice: Option<Notice>,
    /// The error summary (one entry at most: one form is sent at a time).
    pub errors: Vec<FieldError>,
    pub docs: Vec<DocView>,
    /// Some document is still waited for: „Aufforderung erstellen“ offered.
    pub can_request: bool,
    pub letters: Vec<LetterLine>,
}

/// The application `id` in the caller's scope; unknown, purged or out of
/// scope: 404 (out of scope and unknown audited `denied`, as for cases).
pub async fn in_scope(
    state: &WorkbenchState,
    caller: &Caller,
    id: &str,
) -> Result<ApplicationHead, WebError> {
    let Ok(antrag_id) = Uuid::parse_str(id) else {
        return Err(WebError::not_found(caller));
    };
    match state.store.application_head(antrag_id).await? {
        Some(h) if caller.scope().covers(h.dienststellennummer.as_deref()) => Ok(h),
        _ => {
            let entry = NewAudit::new(&caller.user.name, Action::Denied, Some(antrag_id));
            state.store.audit(&entry, state.clock.now()).await?;
            Err(WebError::not_found(caller))
        }
    }
}

/// The input of `action` for `row`, if its state allows it, with the
/// default value, or what was typed and its error after a refusal.
fn input(
    row: &OwedRow,
    action: NachweisAktion,
    default: String,
    failed: Option<&Failed>,
    today: NaiveDate,
) -> Option<Input> {
    if !action.allowed(&row.state, today) {
        return None;
    }
    let id = action.field_id(row.id);
    let mine = failed.filter(|f| f.doc == row.id && f.action == action);
    Some(Input {
        value: mine.map_or(default, |f| f.typed.clone()),
        error: mine.map(|f| FieldError::new(&id, &f.message)),
        id,
    })
}

fn received_text(state: &DocState) -> String {
    match state {
        DocState::Eingegangen { on, via } => format!("am {}, {}", german_date(*on), via.label()),
        _ => String::new(),
    }
}

fn waiver_text(state: &DocState) -> String {
    match state {
        DocState::Verzichtet { reason, by } if by.is_empty() => reason.clone(),
        DocState::Verzichtet { reason, by } => format!("{reason} (entschieden von {by})"),
        _ => String::new(),
    }
}

fn doc_view(row: &OwedRow, app: &AppDoc, failed: Option<&Failed>, today: NaiveDate) -> DocView {
    let iso = today.format("%Y-%m-%d").to_string();
    let eingang = input(row, NachweisAktion::Eingang, iso, failed, today);
    let grund = input(
        row,
        NachweisAktion::Verzichten,
        String::new(),
        failed,
        today,
    );
    let frist = input(row, NachweisAktion::Frist, String::new(), failed, today);
    let shown = [&eingang, &grund, &frist]
        .iter()
        .any(|i| i.as_ref().is_some_and(|i| i.error.is_some()));
    let problem = failed
        .filter(|f| f.doc == row.id && !shown)
        .map(|f| FieldError::new(&format!("nachweis-{}", row.id), &f.message));
    DocView {
        id: row.id,
        version: row.version,
        person: app.person(row.person_id.as_deref()),
        label: app.label(&row.kind),
        state: state_text(&row.state, today),
        overdue: row.state.is_overdue(today),
        deadline: deadline_text(&row.state),
        requested: row
            .requested_at
            .map(|t| german_date(t.date_naive()))
            .unwrap_or_default(),
        received: received_text(&row.state),
        waiver: waiver_text(&row.state),
        eingang,
        grund,
        frist,
        problem,
    }
}

fn letter_line(l: LetterRow) -> LetterLine {
    LetterLine {
        id: l.id,
        created: german_time(l.created_at),
        by: l.created_by,
        deadline: german_date(l.deadline),
    }
}

/// Renders the application page with `status`: after a refused action
/// `failed` (its error beside its field) or a `notice`.
pub async fn render(
    state: &WorkbenchState,
    caller: &Caller,
    head: &ApplicationHead,
    notice: Option<Notice>,
    failed: Option<&Failed>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let today = state.clock.today();
    let pipeline = state.pipeline.current();
    let app = AppDoc::load(&state.store, &pipeline, head.antrag_id).await?;
    let rows = state.store.owed_of(head.antrag_id).await?;
    let letters = state.store.letters_of(head.antrag_id).await?;
    let docs: Vec<DocView> = rows
        .iter()
        .map(|r| doc_view(r, &app, failed, today))
        .collect();
    let errors: Vec<FieldError> = docs
        .iter()
        .flat_map(|d| {
            let inputs = [&d.eingang, &d.grund, &d.frist];
            let mut e: Vec<FieldError> = inputs
                .into_iter()
                .filter_map(|i| i.as_ref().and_then(|i| i.error.clone()))
                .collect();
            e.extend(d.problem.clone());
            e
        })
        .collect();
    let mut layout = caller.layout();
    layout.has_errors = !errors.is_empty();
    let id = head.antrag_id.to_string();
    let page = AntragPage {
        layout,
        form: app.form(),
        mapping: head.mapping.clone().unwrap_or_default(),
        dienststelle: head.dienststellennummer.clone().unwrap_or_default(),
        received: german_time(head.created_at),
        outcome: if head.case_status.is_some() {
            "Klärfall"
        } else {
            "übernommen"
        },
        case_link: head.case_status.as_ref().map(|_| format!("/faelle/{id}")),
        antrag_id: id,
        notice,
        errors,
        can_request: rows.iter().any(|r| r.state.is_pending()),
        docs,
        letters: letters.into_iter().map(letter_line).collect(),
    };
    Ok((status, page).into_response())
}

/// GET /antraege/{id}.
pub async fn page(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<AntragParams>,
) -> Result<Response, WebError> {
    let head = in_scope(&state, &caller, &id).await?;
    let entry = NewAudit::new(&caller.user.name, Action::View, Some(head.antrag_id))
        .detail("Antrag und Nachweise");
    state.store.audit(&entry, state.clock.now()).await?;
    let notice = known_notice(params.meldung.trim()).map(AntragNotice::notice);
    render(&state, &caller, &head, notice, None, StatusCode::OK).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn notice_codes_read_back_and_unknown_ones_are_ignored() {
        for n in AntragNotice::ALL {
            assert_eq!(known_notice(n.as_str()), Some(n));
        }
        assert_eq!(known_notice("<script>"), None);
    }

    #[test]
    fn the_forms_follow_the_state_machine() {
        let today = d("2026-12-07");
        let allowed = |s: &DocState| {
            NachweisAktion::ALL
                .into_iter()
                .filter(|a| a.allowed(s, today))
                .collect::<Vec<_>>()
        };
        use NachweisAktion::*;
        assert_eq!(allowed(&DocState::Offen), vec![Eingang, Verzichten]);
        let requested = DocState::Angefordert {
            deadline: d("2026-12-01"),
        };
        assert_eq!(allowed(&requested), vec![Eingang, Verzichten, Frist]);
        let waived = DocState::Verzichtet {
            reason: "x".into(),
            by: "y".into(),
        };
        assert_eq!(allowed(&waived), vec![Eingang]);
        let received = DocState::Eingegangen {
            on: today,
            via: Eingangsweg::Sachbearbeitung,
        };
        assert!(allowed(&received).is_empty());
    }
}
