//! What a caseworker does with a case: edit one field (set, add, remove),
//! "Prüfen", "Freigeben", "Zurückstellen", "Abschließen ohne Import".
//!
//! Every form carries the case's `version`; every change is stored only if
//! the case is still at that version (optimistic locking in the store), so
//! the second of two caseworkers editing the same case is refused with
//! [`detail::CONFLICT`] and nothing is overwritten. A refused input (unknown
//! pointer, wrong type, oversized value, ...) is shown with the error
//! pattern (title "Fehler: …", summary, inline message, input kept) and
//! changes nothing. Every change is audited in the transaction that makes it.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use allegro_core::casework::edit::{self, EditError, EditOp, FieldInfo};
use allegro_core::casework::fields::{self, FieldKind};
use allegro_core::casework::layout::ApplicantName;
use allegro_core::casework::sections;
use allegro_core::finding::Finding;
use allegro_core::mapping::labels::ValueLabels;
use allegro_core::mapping::Mapping;
use allegro_core::pipeline::{Pipeline, Processed};
use allegro_store::audit::{Action, NewAudit};
use allegro_store::cases::{error_rules_of, CaseDetail, CaseDraft, CaseEnd, CaseWriteError};
use allegro_store::release::{self, RecordFile, ReleaseOutcome};

use super::auth::Caller;
use super::detail::{self, Notice, NoticeCode};
use super::error::WebError;
use super::layout::{self, FieldError, Layout};
use super::state::WorkbenchState;

/// Longest reason accepted for deferring or closing.
pub const MAX_REASON_CHARS: usize = 500;

/// `?zeiger=` of the field page.
#[derive(Debug, Default, Deserialize)]
pub struct FieldParams {
    #[serde(default)]
    zeiger: String,
}

/// The field form.
#[derive(Debug, Default, Deserialize)]
pub struct FieldForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    wert: String,
    #[serde(default)]
    aktion: FieldAction,
}

/// The field form's button (`aktion`); another value is refused (422).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldAction {
    /// Set the value typed (also when no button was named).
    #[default]
    Speichern,
    /// Remove the value.
    Entfernen,
}

/// Which reason page: defer or close. Shown as its path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonKind {
    /// `zurueckstellen`: reason and follow-up date.
    Defer,
    /// `abschliessen`: reason only; no record is written.
    Close,
}

impl ReasonKind {
    pub fn is_defer(self) -> bool {
        self == ReasonKind::Defer
    }

    /// The path segment of its page and form.
    pub fn path(self) -> &'static str {
        match self {
            ReasonKind::Defer => "zurueckstellen",
            ReasonKind::Close => "abschliessen",
        }
    }
}

impl std::fmt::Display for ReasonKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

/// A form with only the version (Prüfen, Freigeben).
#[derive(Debug, Default, Deserialize)]
pub struct VersionForm {
    #[serde(default)]
    version: String,
    /// Freigeben: the checkbox that the case's warnings were looked at.
    #[serde(default)]
    warnungen_geprueft: Option<String>,
}

/// The defer and close forms.
#[derive(Debug, Default, Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    grund: String,
    #[serde(default)]
    wiedervorlage: String,
}

/// One choice of a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "field.html")]
pub struct FieldPage {
    pub layout: Layout,
    pub antrag_id: String,
    pub version: String,
    pub pointer: String,
    pub action: String,
    pub label: String,
    pub current: Option<String>,
    pub hint: String,
    /// The text in the input (what was typed, on an error).
    pub value: String,
    /// A select instead of a text input.
    pub choices: Vec<Choice>,
    pub can_set: bool,
    pub can_remove: bool,
    pub findings: Vec<Finding>,
    pub errors: Vec<FieldError>,
    /// The version conflict: the form must be reloaded.
    pub conflict: bool,
}

impl FieldPage {
    fn error(&self) -> Option<&FieldError> {
        self.errors.first()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "reason.html")]
pub struct ReasonPage {
    pub layout: Layout,
    pub antrag_id: String,
    pub version: String,
    pub kind: ReasonKind,
    pub heading: &'static str,
    pub intro: &'static str,
    pub grund: String,
    pub wiedervorlage: String,
    pub errors: Vec<FieldError>,
    pub conflict: bool,
}

impl ReasonPage {
    fn error_for(&self, field: &str) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.field == field)
    }
}

pub(super) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The version sent with a form; `None` if missing or not a number.
fn sent_version(v: &str) -> Option<i32> {
    v.trim().parse().ok()
}

/// Refuses changes to done cases and stale versions before any work.
fn check_current(case: &CaseDetail, sent: &str) -> Result<(), Notice> {
    if !case.status.is_open_for_work() {
        return Err(Notice::danger("Nicht möglich", detail::DONE.into()));
    }
    match sent_version(sent) {
        Some(v) if v == case.version => Ok(()),
        _ => Err(Notice::conflict()),
    }
}

/// The choices for a select (code lists, shown by their German labels,
/// and yes/no).
fn choices(info: &FieldInfo, value: &str) -> Vec<Choice> {
    choices_for(&info.kind, &info.code_labels, value)
}

/// [`choices`] for a kind with its code labels.
pub(super) fn choices_for(
    kind: &Option<FieldKind>,
    labels: &ValueLabels,
    value: &str,
) -> Vec<Choice> {
    let label = |c: &String| labels.get(c).unwrap_or(c).clone();
    let codes: Vec<(String, String)> = match kind {
        Some(FieldKind::Choice(codes)) => codes.iter().map(|c| (c.clone(), label(c))).collect(),
        Some(FieldKind::Boolean) => vec![
            ("ja".to_string(), "ja".to_string()),
            ("nein".to_string(), "nein".to_string()),
        ],
        _ => return vec![],
    };
    let mut out = vec![Choice {
        value: String::new(),
        label: "Bitte wählen".into(),
        selected: value.is_empty(),
    }];
    out.extend(codes.into_iter().map(|(v, l)| Choice {
        selected: v.eq_ignore_ascii_case(value),
        value: v,
        label: l,
    }));
    out
}

fn field_page(
    caller: &Caller,
    case: &CaseDetail,
    info: &FieldInfo,
    typed: Option<&str>,
    errors: Vec<FieldError>,
    conflict: bool,
) -> FieldPage {
    let current = info.shown.clone();
    let value = typed
        .map(str::to_string)
        .unwrap_or_else(|| info.input.clone().unwrap_or_default());
    let mut layout = caller.layout();
    layout.has_errors = !errors.is_empty();
    FieldPage {
        layout,
        antrag_id: case.antrag_id.to_string(),
        version: case.version.to_string(),
        pointer: info.pointer.clone(),
        action: detail::edit_link(&case.antrag_id.to_string(), &info.pointer),
        label: info.label.clone(),
        current,
        hint: info.kind.as_ref().map(FieldKind::hint).unwrap_or_default(),
        choices: choices(info, &value),
        value,
        can_set: info.can_set,
        can_remove: info.can_remove,
        findings: case
            .findings
            .iter()
            .filter(|f| f.pointer == info.pointer)
            .cloned()
            .collect(),
        errors,
        conflict,
    }
}

/// A pointer the page cannot offer: 400 with the German reason.
fn bad_pointer(caller: &Caller, e: &EditError) -> Response {
    layout::message_page(
        StatusCode::BAD_REQUEST,
        Some(caller),
        "Feld nicht bearbeitbar",
        &format!("{} Es wurde nichts geändert.", e.message()),
    )
}

/// The document of the case, its mapping and the field `pointer` names,
/// or why the page cannot offer that pointer.
fn describe_field(
    pipeline: &Pipeline,
    case: &CaseDetail,
    pointer: &str,
) -> Result<(Value, Arc<Mapping>, FieldInfo), EditError> {
    let (doc, mapping) = detail::document(pipeline, case);
    let m = mapping.ok_or(EditError::Unknown)?;
    let info = edit::describe(&m, &doc, pointer)?;
    Ok((doc, m, info))
}

/// GET /faelle/{id}/feld?zeiger=...
pub async fn field_page_get(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<FieldParams>,
) -> Result<Response, WebError> {
    let case = detail::load_in_scope(&state, &caller, &id).await?;
    if let Err(n) = check_current(&case, &case.version.to_string()) {
        let page = layout::message_page(StatusCode::CONFLICT, Some(&caller), &n.title, &n.text);
        return Ok(page);
    }
    let pipeline = state.pipeline.current();
    Ok(match describe_field(&pipeline, &case, &q.zeiger) {
        Ok((_, _, info)) => field_page(&caller, &case, &info, None, vec![], false).into_response(),
        Err(e) => bad_pointer(&caller, &e),
    })
}

/// POST /faelle/{id}/feld?zeiger=...: set or remove one value.
pub async fn field_page_post(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<FieldParams>,
    Form(form): Form<FieldForm>,
) -> Result<Response, WebError> {
    let case = detail::load_in_scope(&state, &caller, &id).await?;
    let pipeline = state.pipeline.current();
    let (mut doc, m, info) = match describe_field(&pipeline, &case, &q.zeiger) {
        Ok(found) => found,
        Err(e) => return Ok(bad_pointer(&caller, &e)),
    };
    let typed = form.wert.as_str();
    // Keep what was typed, but never echo more than the limit allows.
    let shown: String = typed.chars().take(edit::MAX_INPUT_CHARS + 1).collect();
    if let Err(n) = check_current(&case, &form.version) {
        let errors = vec![FieldError::new("wert", &n.text)];
        let page = field_page(&caller, &case, &info, Some(&shown), errors, true);
        return Ok((StatusCode::CONFLICT, page).into_response());
    }
    let op = match form.aktion {
        FieldAction::Entfernen => EditOp::Remove,
        FieldAction::Speichern => EditOp::Set(typed.to_string()),
    };
    let change = match edit::apply(&m, &mut doc, &q.zeiger, &op) {
        Ok(c) => c,
        Err(e) if e.is_about_the_place() => return Ok(bad_pointer(&caller, &e)),
        Err(e) => {
            let msg = format!("{}: {}", sections::title(&info.label), e.message());
            let page = field_page(
                &caller,
                &case,
                &info,
                Some(&shown),
                vec![FieldError::new("wert", &msg)],
                false,
            );
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let at = Utc::now();
    let mut corrections = case.corrections.clone();
    edit::record_correction(&mut corrections, &change, &caller.user.name, &now_rfc3339());
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    let findings = recheck_findings(&pipeline, &case, &body, &corrections);
    let old = change.old.as_ref().map(fields::plain);
    let new = change.new.as_ref().map(fields::plain);
    let audit = NewAudit {
        pointer: Some(&change.pointer),
        old_value: old.as_deref(),
        new_value: new.as_deref(),
        ..NewAudit::new(&caller.user.name, Action::Edit, Some(case.antrag_id))
    };
    let applicant = m.casework.applicant_of(&doc);
    let saved = save_draft(
        &state,
        &case,
        Some((&body, applicant.as_ref().map(ApplicantName::as_str))),
        &corrections,
        &findings,
        &[audit],
        at,
    )
    .await;
    match saved {
        Ok(()) => {
            let target = sections::element_id(&change.pointer);
            Ok(Redirect::to(&format!(
                "/faelle/{}?meldung={}#{target}",
                case.antrag_id,
                NoticeCode::Gespeichert.as_str()
            ))
            .into_response())
        }
        Err(CaseWriteError::Conflict) => {
            let errors = vec![FieldError::new("wert", detail::CONFLICT)];
            let page = field_page(&caller, &case, &info, Some(&shown), errors, true);
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(CaseWriteError::Store(e)) => Err(e.into()),
    }
}

/// The findings of the corrected application under the pipeline in force
/// (the stored ones if it is not readable any more).
pub(super) fn recheck_findings(
    pipeline: &Pipeline,
    case: &CaseDetail,
    body: &[u8],
    corrections: &[allegro_core::record::Correction],
) -> Vec<Finding> {
    match pipeline.process_with(body, case.message_id.as_deref(), corrections) {
        Processed::Invalid(_) => case.findings.clone(),
        p => p.findings().to_vec(),
    }
}

/// Stores the case's corrected state; `body` is the corrected application
/// with the applicant's name in it (`None`: both unchanged).
pub(super) async fn save_draft(
    state: &WorkbenchState,
    case: &CaseDetail,
    body: Option<(&[u8], Option<&str>)>,
    corrections: &[allegro_core::record::Correction],
    findings: &[Finding],
    audit: &[NewAudit<'_>],
    at: chrono::DateTime<Utc>,
) -> Result<(), CaseWriteError> {
    let corrections_json = serde_json::to_string(corrections).unwrap_or_else(|_| "[]".into());
    let findings_json = serde_json::to_string(findings).unwrap_or_else(|_| "[]".into());
    let rules = error_rules_of(findings);
    let draft = CaseDraft {
        corrected_body: body.map(|(b, _)| b),
        corrections_json: &corrections_json,
        findings_json: &findings_json,
        error_rules: &rules,
        applicant: body.and_then(|(_, name)| name),
    };
    state
        .store
        .save_case_draft(case.antrag_id, case.version, &draft, audit, at)
        .await
        .map(|_| ())
}

/// A refusal shown on the case page (409).
pub(super) async fn refuse(
    state: &WorkbenchState,
    caller: &Caller,
    case: &CaseDetail,
    n: Notice,
) -> Result<Response, WebError> {
    detail::render(state, caller, case, Some(n), None, StatusCode::CONFLICT).await
}

/// After a conflict: the case as it is now, with the conflict message.
pub(super) async fn conflict(
    state: &WorkbenchState,
    caller: &Caller,
    case: &CaseDetail,
) -> Result<Response, WebError> {
    match state.store.load_case(case.antrag_id).await? {
        Some(now) => refuse(state, caller, &now, Notice::conflict()).await,
        None => Err(WebError::not_found(caller)),
    }
}

/// The case in the caller's scope if it may still be worked on at the
/// `sent` version (`None`: at the version it has); otherwise the refusal
/// on the case page (409).
pub(super) async fn load_current(
    state: &WorkbenchState,
    caller: &Caller,
    id: &str,
    sent: Option<&str>,
) -> Result<CaseDetail, WebError> {
    let case = detail::load_in_scope(state, caller, id).await?;
    let own = case.version.to_string();
    match check_current(&case, sent.unwrap_or(&own)) {
        Ok(()) => Ok(case),
        Err(n) => Err(refuse(state, caller, &case, n).await?.into()),
    }
}

/// Back to the case page, showing the message `code`.
pub(super) fn to_case(case: &CaseDetail, code: NoticeCode) -> Response {
    Redirect::to(&format!(
        "/faelle/{}?meldung={}",
        case.antrag_id,
        code.as_str()
    ))
    .into_response()
}

/// POST /faelle/{id}/pruefen: the pipeline in force over the corrected
/// application; its findings are stored as the case's current ones (nothing
/// is decided).
pub async fn check(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<VersionForm>,
) -> Result<Response, WebError> {
    let case = load_current(&state, &caller, &id, Some(&form.version)).await?;
    let pipeline = state.pipeline.current();
    let findings = recheck_findings(&pipeline, &case, case.current_body(), &case.corrections);
    let errors = findings.iter().filter(|f| f.is_error()).count().to_string();
    let detail = format!("{errors} Fehler");
    let audit =
        NewAudit::new(&caller.user.name, Action::Check, Some(case.antrag_id)).detail(&detail);
    match save_draft(
        &state,
        &case,
        None,
        &case.corrections,
        &findings,
        &[audit],
        Utc::now(),
    )
    .await
    {
        Ok(()) => Ok(to_case(&case, NoticeCode::Geprueft)),
        Err(CaseWriteError::Conflict) => conflict(&state, &caller, &case).await,
        Err(CaseWriteError::Store(e)) => Err(e.into()),
    }
}

/// POST /faelle/{id}/freigeben: only when the pipeline in force finds no
/// error; the record is written through the same store transaction and
/// outbox as the daemon's.
pub async fn release(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<VersionForm>,
) -> Result<Response, WebError> {
    let case = load_current(&state, &caller, &id, Some(&form.version)).await?;
    let warned = case
        .findings
        .iter()
        .any(|f| f.severity == allegro_core::finding::Severity::Warning);
    if warned && form.warnungen_geprueft.is_none() {
        let notice = Notice::danger(
            "Bitte Warnungen bestätigen",
            "Der Fall hat Warnungen. Bitte sehen Sie sie sich an und bestätigen Sie das beim \
             Freigeben; es wurde nichts freigegeben."
                .into(),
        );
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return detail::render(&state, &caller, &case, Some(notice), None, status).await;
    }
    let pipeline = state.pipeline.current();
    let outcome = release::release(
        &state.store,
        &pipeline,
        &state.records,
        &case,
        &caller.user.name,
        Action::Release,
        Utc::now(),
    )
    .await;
    match outcome {
        Ok(ReleaseOutcome::Released { file }) => {
            let code = match file {
                RecordFile::Written => NoticeCode::Freigegeben,
                RecordFile::Pending => NoticeCode::FreigegebenAusstehend,
                RecordFile::HandedOver => NoticeCode::FreigegebenUebergabe,
            };
            Ok(to_case(&case, code))
        }
        Ok(ReleaseOutcome::Rejected(findings)) => {
            let n = findings.iter().filter(|f| f.is_error()).count();
            let notice = Notice::danger(
                "Freigabe nicht möglich",
                format!(
                    "Es {} noch {n} Fehler offen. Bitte korrigieren Sie die markierten Angaben; \
                     es wurde nichts freigegeben.",
                    if n == 1 { "ist" } else { "sind" }
                ),
            );
            detail::render(
                &state,
                &caller,
                &case,
                Some(notice),
                Some(findings),
                StatusCode::CONFLICT,
            )
            .await
        }
        Ok(ReleaseOutcome::Invalid(_)) => {
            let notice = Notice::danger(
                "Freigabe nicht möglich",
                "Für die Formularversion dieses Antrags ist keine Zuordnung in Kraft; es wurde nichts freigegeben."
                    .into(),
            );
            refuse(&state, &caller, &case, notice).await
        }
        Err(CaseWriteError::Conflict) => conflict(&state, &caller, &case).await,
        Err(CaseWriteError::Store(e)) => Err(e.into()),
    }
}

fn reason_page(
    caller: &Caller,
    case: &CaseDetail,
    kind: ReasonKind,
    form: &ReasonForm,
    errors: Vec<FieldError>,
    conflict: bool,
) -> ReasonPage {
    let (heading, intro) = if kind.is_defer() {
        (
            "Fall zurückstellen",
            "Zum Beispiel für eine Rückfrage an die antragstellende Person. Der Fall bleibt in der Liste, mit Grund und Wiedervorlage.",
        )
    } else {
        (
            "Fall ohne Import abschließen",
            "Zum Beispiel, wenn derselbe Antrag auf Papier gestellt und dort bearbeitet wird. Es wird kein Importdatensatz geschrieben.",
        )
    };
    let mut layout = caller.layout();
    layout.has_errors = !errors.is_empty();
    ReasonPage {
        layout,
        antrag_id: case.antrag_id.to_string(),
        version: if form.version.is_empty() {
            case.version.to_string()
        } else {
            form.version.clone()
        },
        kind,
        heading,
        intro,
        grund: form.grund.chars().take(MAX_REASON_CHARS + 1).collect(),
        wiedervorlage: form.wiedervorlage.chars().take(20).collect(),
        errors,
        conflict,
    }
}

/// The reason, or the error for the `grund` field.
fn parse_reason(text: &str) -> Result<String, FieldError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(FieldError::new("grund", "Bitte geben Sie einen Grund an."));
    }
    if t.chars().count() > MAX_REASON_CHARS {
        return Err(FieldError::new(
            "grund",
            &format!("Der Grund ist zu lang: höchstens {MAX_REASON_CHARS} Zeichen sind erlaubt."),
        ));
    }
    Ok(t.to_string())
}

/// The follow-up date (`JJJJ-MM-TT` or `TT.MM.JJJJ`), today or later.
fn parse_follow_up(text: &str, today: NaiveDate) -> Result<NaiveDate, FieldError> {
    let t = text.trim();
    let d = NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(t, "%d.%m.%Y"))
        .map_err(|_| {
            FieldError::new(
                "wiedervorlage",
                "Bitte geben Sie das Datum der Wiedervorlage im Format TT.MM.JJJJ an, z. B. 15.01.2027.",
            )
        })?;
    if d < today || d > today + chrono::Duration::days(366 * 2) {
        return Err(FieldError::new(
            "wiedervorlage",
            "Die Wiedervorlage muss heute oder später sein, höchstens zwei Jahre im Voraus.",
        ));
    }
    Ok(d)
}

async fn reason_get(
    state: WorkbenchState,
    caller: Caller,
    id: String,
    kind: ReasonKind,
) -> Result<Response, WebError> {
    let case = load_current(&state, &caller, &id, None).await?;
    Ok(reason_page(&caller, &case, kind, &ReasonForm::default(), vec![], false).into_response())
}

/// GET /faelle/{id}/zurueckstellen.
pub async fn defer_get(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    reason_get(state, caller, id, ReasonKind::Defer).await
}

/// GET /faelle/{id}/abschliessen.
pub async fn close_get(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    reason_get(state, caller, id, ReasonKind::Close).await
}

/// POST /faelle/{id}/zurueckstellen: reason + follow-up date.
pub async fn defer_post(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, WebError> {
    reason_post(state, caller, id, form, ReasonKind::Defer).await
}

/// POST /faelle/{id}/abschliessen: reason; no record is written.
pub async fn close_post(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, WebError> {
    reason_post(state, caller, id, form, ReasonKind::Close).await
}

async fn reason_post(
    state: WorkbenchState,
    caller: Caller,
    id: String,
    form: ReasonForm,
    kind: ReasonKind,
) -> Result<Response, WebError> {
    let case = detail::load_in_scope(&state, &caller, &id).await?;
    if let Err(n) = check_current(&case, &form.version) {
        let errors = vec![FieldError::new("grund", &n.text)];
        let page = reason_page(&caller, &case, kind, &form, errors, true);
        return Ok((StatusCode::CONFLICT, page).into_response());
    }
    let now = Utc::now();
    let reason = parse_reason(&form.grund);
    let follow_up = kind
        .is_defer()
        .then(|| parse_follow_up(&form.wiedervorlage, now.date_naive()));
    let mut errors: Vec<FieldError> = reason.as_ref().err().cloned().into_iter().collect();
    if let Some(Err(e)) = &follow_up {
        errors.push(e.clone());
    }
    if !errors.is_empty() {
        let page = reason_page(&caller, &case, kind, &form, errors, false);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let reason = reason.unwrap_or_default();
    let result = match follow_up {
        Some(Ok(date)) => {
            let when = date.format("%Y-%m-%d").to_string();
            let audit = NewAudit {
                new_value: Some(&reason),
                ..NewAudit::new(&caller.user.name, Action::Defer, Some(case.antrag_id))
            }
            .detail(&when);
            state
                .store
                .defer_case(case.antrag_id, case.version, &reason, date, &audit, now)
                .await
        }
        _ => {
            let audit = NewAudit {
                new_value: Some(&reason),
                ..NewAudit::new(&caller.user.name, Action::Close, Some(case.antrag_id))
            };
            state
                .store
                .end_case(
                    case.antrag_id,
                    case.version,
                    &CaseEnd::Closed { reason: &reason },
                    &audit,
                    now,
                )
                .await
        }
    };
    let code = match kind {
        ReasonKind::Defer => NoticeCode::Zurueckgestellt,
        ReasonKind::Close => NoticeCode::Abgeschlossen,
    };
    match result {
        Ok(_) => Ok(to_case(&case, code)),
        Err(CaseWriteError::Conflict) => {
            let errors = vec![FieldError::new("grund", detail::CONFLICT)];
            let page = reason_page(&caller, &case, kind, &form, errors, true);
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(CaseWriteError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_up_dates_are_checked() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        assert_eq!(
            parse_follow_up("15.01.2027", today).unwrap(),
            NaiveDate::from_ymd_opt(2027, 1, 15).unwrap()
        );
        assert!(parse_follow_up("2027-01-15", today).is_ok());
        assert!(parse_follow_up("01.12.2026", today).is_err());
        assert!(parse_follow_up("morgen", today).is_err());
        assert!(parse_follow_up("01.01.2030", today).is_err());
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(parse_reason("  ").is_err());
        assert!(parse_reason(&"x".repeat(MAX_REASON_CHARS + 1)).is_err());
        assert_eq!(parse_reason(" Doppelantrag ").unwrap(), "Doppelantrag");
    }
}
