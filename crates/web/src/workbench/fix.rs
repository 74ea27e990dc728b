//! `POST /faelle/{antragId}/beheben`: the form „Fehler beheben“ at the top
//! of the case page, every error's field at once. One submission saves
//! each typed value that now passes (audited one by one, with the case's
//! corrections and the new findings, in one version step) and shows the
//! case again: after a redirect when every typed value was kept, or at
//! once (422) with each value that still fails kept in its input and its
//! error beside it, under an error summary („Fehler: …“). Nothing that is
//! still wrong is reported as saved (`allegro_core::casework::fix`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use chrono::Utc;

use allegro_core::casework::edit::{self, Change};
use allegro_core::casework::fields::{self, FieldKind};
use allegro_core::casework::fix::{self, Fix};
use allegro_store::audit::{Action, NewAudit};
use allegro_store::cases::{CaseDetail, CaseWriteError};

use super::actions::{self, Choice};
use super::auth::Caller;
use super::detail::{self, Notice, NoticeCode};
use super::error::WebError;
use super::state::WorkbenchState;

/// Input names: `wert:` + the field's pointer.
const VALUE_PREFIX: &str = "wert:";

/// What the form showed and what the caseworker typed into it.
#[derive(Debug, Default)]
pub struct Typed {
    /// Pointer → the text typed (kept in the input when shown again).
    pub values: BTreeMap<String, String>,
    /// Pointer → why that value was not kept (shown beside the input).
    pub not_kept: BTreeMap<String, Vec<String>>,
}

/// One input of the form as the page shows it.
pub struct FixLine {
    pub fix: Fix,
    /// In the input: what was typed, else the current value.
    pub value: String,
    /// The messages beside the input: why the typed value was not kept,
    /// else the field's errors.
    pub messages: Vec<String>,
    /// The typed value was refused or still fails.
    pub refused: bool,
    pub choices: Vec<Choice>,
}

impl FixLine {
    pub fn new(fix: Fix, typed: &Typed) -> FixLine {
        let value = typed
            .values
            .get(&fix.pointer)
            .cloned()
            .unwrap_or_else(|| fix.input.clone().unwrap_or_default());
        let not_kept = typed.not_kept.get(&fix.pointer);
        let choices = actions::choices_for(&Some(fix.kind.clone()), &fix.code_labels, &value);
        FixLine {
            messages: not_kept.cloned().unwrap_or_else(|| fix.messages.clone()),
            refused: not_kept.is_some(),
            value,
            choices,
            fix,
        }
    }

    /// The id of the hint below the label.
    pub fn hint_id(&self) -> String {
        format!("{}-hinweis", self.fix.input_id)
    }

    /// The id of the messages.
    pub fn message_id(&self) -> String {
        format!("{}-fehler", self.fix.input_id)
    }

    /// A select (code list, yes/no) rather than a text input.
    pub fn is_choice(&self) -> bool {
        matches!(self.fix.kind, FieldKind::Choice(_) | FieldKind::Boolean)
    }
}

/// The form's fields: the version and the typed values by pointer.
fn read_form(pairs: Vec<(String, String)>) -> (String, Vec<(String, String)>) {
    let mut version = String::new();
    let mut typed = Vec::new();
    for (k, v) in pairs {
        if k == "version" {
            version = v;
        } else if let Some(p) = k.strip_prefix(VALUE_PREFIX) {
            let shown: String = v.chars().take(edit::MAX_INPUT_CHARS + 1).collect();
            typed.push((p.to_string(), shown));
        }
    }
    (version, typed)
}

/// POST /faelle/{id}/beheben.
pub async fn post(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let (version, typed) = read_form(pairs);
    let case = actions::load_current(&state, &caller, &id, Some(&version)).await?;
    let pipeline = state.pipeline.current();
    let (doc, mapping) = detail::document(&pipeline, &case);
    let Some(m) = mapping else {
        return actions::refuse(&state, &caller, &case, detail::unmapped_notice()).await;
    };
    let check = |d: &serde_json::Value, changes: &[Change]| {
        let corrections = corrections_with(&case, changes, &caller.user.name);
        let body = serde_json::to_vec(d).unwrap_or_default();
        actions::recheck_findings(&pipeline, &case, &body, &corrections)
    };
    let out = fix::apply_all(&m, &doc, &typed, &check);
    if !out.kept.is_empty() {
        let name = m.casework.applicant_of(&out.doc);
        let name = name.as_ref().map(|n| n.as_str());
        match save(&state, &case, &caller, &out, name).await {
            Ok(()) => {}
            Err(CaseWriteError::Conflict) => {
                return actions::conflict(&state, &caller, &case).await;
            }
            Err(CaseWriteError::Store(e)) => return Err(e.into()),
        }
    }
    if out.not_kept.is_empty() {
        let code = if out.kept.is_empty() {
            NoticeCode::Unveraendert
        } else {
            NoticeCode::Behoben
        };
        return Ok(actions::to_case(&case, code));
    }
    show_again(&state, &caller, &case, typed, out).await
}

/// Stores the kept changes in one version step, one `edit` audit entry each.
async fn save(
    state: &WorkbenchState,
    case: &CaseDetail,
    caller: &Caller,
    out: &fix::Outcome,
    applicant: Option<&str>,
) -> Result<(), CaseWriteError> {
    let who = &caller.user.name;
    let corrections = corrections_with(case, &out.kept, who);
    let body = serde_json::to_vec(&out.doc).unwrap_or_default();
    let values: Vec<_> = out.kept.iter().map(audit_values).collect();
    let audit: Vec<NewAudit<'_>> = out
        .kept
        .iter()
        .zip(&values)
        .map(|(c, (old, new))| NewAudit {
            pointer: Some(&c.pointer),
            old_value: old.as_deref(),
            new_value: new.as_deref(),
            ..NewAudit::new(who, Action::Edit, Some(case.antrag_id))
        })
        .collect();
    let at = Utc::now();
    let findings = &out.findings;
    actions::save_draft(
        state,
        case,
        Some((&body, applicant)),
        &corrections,
        findings,
        &audit,
        at,
    )
    .await
}

/// The case page again (422): the values not kept in their inputs with
/// their errors; what was kept is saved and said so.
async fn show_again(
    state: &WorkbenchState,
    caller: &Caller,
    case: &CaseDetail,
    typed: Vec<(String, String)>,
    out: fix::Outcome,
) -> Result<Response, WebError> {
    let now = match state.store.load_case(case.antrag_id).await? {
        Some(now) => now,
        None => return Err(WebError::not_found(caller)),
    };
    let kept = out.kept.len();
    let refused = out.not_kept.len();
    let text = match kept {
        0 => format!("Nichts gespeichert: {refused} Angabe(n) sind noch nicht richtig; siehe die Hinweise am Feld."),
        _ => format!(
            "{kept} Angabe(n) gespeichert und geprüft. Nicht gespeichert: {refused} Angabe(n); siehe die Hinweise am Feld."
        ),
    };
    let notice = Notice::danger("Noch nicht alles richtig", text);
    let kept_pointers: Vec<&str> = out.kept.iter().map(|c| c.pointer.as_str()).collect();
    let typed = Typed {
        values: typed
            .into_iter()
            .filter(|(p, _)| !kept_pointers.contains(&p.as_str()))
            .collect(),
        not_kept: out
            .not_kept
            .iter()
            .map(|(p, n)| (p.clone(), n.messages()))
            .collect(),
    };
    detail::render_with(
        state,
        caller,
        &now,
        Some(notice),
        typed,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// The case's corrections with `changes` recorded (by `who`, now).
fn corrections_with(
    case: &CaseDetail,
    changes: &[Change],
    who: &str,
) -> Vec<allegro_core::record::Correction> {
    let mut corrections = case.corrections.clone();
    let at = actions::now_rfc3339();
    for c in changes {
        edit::record_correction(&mut corrections, c, who, &at);
    }
    corrections
}

/// The old and new value of a change as the audit keeps them.
fn audit_values(c: &Change) -> (Option<String>, Option<String>) {
    (
        c.old.as_ref().map(fields::plain),
        c.new.as_ref().map(fields::plain),
    )
}
