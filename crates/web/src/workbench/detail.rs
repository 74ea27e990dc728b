//! `GET /faelle/{antragId}`: one case. The application in its sections as
//! description lists (German labels from the mapping), each finding beside
//! its field, the error summary, the documents owed, the actions and the
//! case's audit trail. Every view is audited.
//!
//! Also the shared parts of the case pages: loading a case in scope,
//! rendering the detail page with a notice (after an action, or a refusal
//! with 409), the German names of audit actions.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use allegro_core::casework::fix;
use allegro_core::casework::sections::{self, CaseView, FindingView, Owed, Section};
use allegro_core::finding::Finding;
use allegro_core::mapping::Mapping;
use allegro_core::pipeline::Pipeline;
use allegro_store::audit::{Action, AuditRow, LoggedAction, NewAudit};
use allegro_store::cases::{CaseDetail, CaseState};

use super::auth::Caller;
use super::error::WebError;
use super::fix::{FixLine, Typed};
use super::layout::{self, Layout};
use super::state::WorkbenchState;

/// The text of a version conflict (the browser test looks for
/// "zwischenzeitlich geändert").
pub const CONFLICT: &str = "Der Fall wurde zwischenzeitlich geändert – von einer anderen Person \
     oder in einem anderen Fenster. Ihre Eingabe wurde nicht gespeichert. Bitte sehen Sie sich den \
     aktuellen Stand an und wiederholen Sie die Änderung, falls sie noch nötig ist.";

/// The text when a case is done and cannot be changed any more.
pub const DONE: &str =
    "Dieser Fall ist bereits erledigt (freigegeben oder abgeschlossen) und kann nicht mehr geändert werden.";

/// What the page says at the top after an action.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `kern-alert--success`, `--info`, `--warning` or `--danger`.
    pub kind: &'static str,
    pub title: String,
    pub text: String,
}

impl Notice {
    pub fn success(title: &str, text: String) -> Notice {
        Notice {
            kind: "success",
            title: title.into(),
            text,
        }
    }

    pub fn danger(title: &str, text: String) -> Notice {
        Notice {
            kind: "danger",
            title: title.into(),
            text,
        }
    }

    pub fn info(title: &str, text: String) -> Notice {
        Notice {
            kind: "info",
            title: title.into(),
            text,
        }
    }

    pub fn conflict() -> Notice {
        Notice::danger("Nicht gespeichert", CONFLICT.into())
    }
}

/// `?meldung=` after a redirect: which action just succeeded (a fixed
/// code, never data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeCode {
    Gespeichert,
    Behoben,
    Unveraendert,
    Geprueft,
    Freigegeben,
    FreigegebenAusstehend,
    FreigegebenUebergabe,
    Zurueckgestellt,
    Abgeschlossen,
}

impl NoticeCode {
    pub const ALL: [NoticeCode; 9] = [
        NoticeCode::Gespeichert,
        NoticeCode::Behoben,
        NoticeCode::Unveraendert,
        NoticeCode::Geprueft,
        NoticeCode::Freigegeben,
        NoticeCode::FreigegebenAusstehend,
        NoticeCode::FreigegebenUebergabe,
        NoticeCode::Zurueckgestellt,
        NoticeCode::Abgeschlossen,
    ];

    /// The code in the URL (what serde reads back).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeCode::Gespeichert => "gespeichert",
            NoticeCode::Behoben => "behoben",
            NoticeCode::Unveraendert => "unveraendert",
            NoticeCode::Geprueft => "geprueft",
            NoticeCode::Freigegeben => "freigegeben",
            NoticeCode::FreigegebenAusstehend => "freigegeben-ausstehend",
            NoticeCode::FreigegebenUebergabe => "freigegeben-uebergabe",
            NoticeCode::Zurueckgestellt => "zurueckgestellt",
            NoticeCode::Abgeschlossen => "abgeschlossen",
        }
    }
}

/// The query of the case page.
#[derive(Debug, Default, Deserialize)]
pub struct DetailParams {
    /// An unknown code is ignored (no notice), not refused.
    #[serde(default, deserialize_with = "known_notice")]
    meldung: Option<NoticeCode>,
}

/// A known notice code, else `None`.
fn known_notice<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NoticeCode>, D::Error> {
    let code = String::deserialize(d)?;
    let de = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(&code);
    Ok(NoticeCode::deserialize(de).ok())
}

/// One audit entry as shown on the case page.
pub struct AuditLine {
    pub at: String,
    pub actor: String,
    pub action: &'static str,
    pub pointer: String,
    pub old_value: String,
    pub new_value: String,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "detail.html")]
pub struct DetailPage {
    pub layout: Layout,
    pub antrag_id: String,
    pub version: i32,
    pub status: String,
    pub open_for_work: bool,
    pub dienststelle: String,
    pub received: String,
    pub mapping: String,
    pub defer_note: String,
    pub close_note: String,
    pub notice: Option<Notice>,
    /// No mapping in force for this application's form version.
    pub unmapped: bool,
    pub sections: Vec<Section>,
    pub errors: Vec<FindingView>,
    pub notes: Vec<FindingView>,
    pub general: Vec<FindingView>,
    pub owed: Vec<Owed>,
    /// Attachments that came through FIT-Connect.
    pub anlagen: Vec<super::anlagen::AnlageView>,
    /// The form „Fehler beheben“: one input per error field.
    pub fixes: Vec<FixLine>,
    /// The mappings in force would find something else: „Prüfen“ shown.
    pub stale: bool,
    pub corrections: usize,
    pub audit: Vec<AuditLine>,
}

impl DetailPage {
    /// Warnings or hints the caseworker confirms before releasing.
    pub fn has_warnings(&self) -> bool {
        self.notes
            .iter()
            .any(|n| n.severity == allegro_core::finding::Severity::Warning)
    }

    /// `/faelle/{id}/feld?zeiger=...` for a pointer.
    pub fn edit_link(&self, pointer: &str) -> String {
        edit_link(&self.antrag_id, pointer)
    }
}

/// `/faelle/{id}/feld?zeiger=...` (the pointer percent-encoded).
pub fn edit_link(antrag_id: &str, pointer: &str) -> String {
    let q = serde_urlencoded::to_string([("zeiger", pointer)]).unwrap_or_default();
    format!("/faelle/{antrag_id}/feld?{q}")
}

/// German status of a case.
pub fn status_de(status: &CaseState) -> &'static str {
    match status {
        CaseState::Open => "Offen",
        CaseState::Deferred { .. } => "Zurückgestellt",
        CaseState::Released => "Freigegeben",
        CaseState::Closed { .. } => "Abgeschlossen ohne Import",
    }
}

/// "Wiedervorlage am 15.01.2027: reason" of a deferred case (empty when
/// it is not deferred, or a part is missing).
fn defer_note(status: &CaseState) -> String {
    match status {
        CaseState::Deferred {
            until: Some(d),
            reason: Some(r),
        } => format!("Wiedervorlage am {}: {r}", d.format("%d.%m.%Y")),
        _ => String::new(),
    }
}

/// The reason a closed case was closed (empty otherwise, or once retention
/// removed it).
fn close_note(status: &CaseState) -> String {
    match status {
        CaseState::Closed {
            reason: Some(r), ..
        } => r.clone(),
        _ => String::new(),
    }
}

/// German name of an audit action.
pub fn action_de(action: LoggedAction) -> &'static str {
    let LoggedAction::Known(a) = action else {
        return "sonstige Aktion";
    };
    match a {
        Action::View => "angesehen",
        Action::Denied => "Zugriff verweigert",
        Action::Edit => "Angabe geändert",
        Action::Check => "geprüft",
        Action::Release => "freigegeben",
        Action::Defer => "zurückgestellt",
        Action::Close => "abgeschlossen ohne Import",
        Action::RecheckRelease => "freigegeben nach Nachprüfung",
        Action::DocumentRequested => "Nachweis angefordert",
        Action::DeadlineExtended => "Frist verlängert",
        Action::DocumentReceived => "Nachweis eingegangen",
        Action::DocumentWaived => "auf Nachweis verzichtet",
        Action::LetterCreated => "Aufforderung zur Mitwirkung erstellt",
        Action::Login => "angemeldet",
        Action::LoginFailed => "Anmeldung fehlgeschlagen",
        Action::Logout => "abgemeldet",
        Action::UserAdd
        | Action::UserDisable
        | Action::UserEnable
        | Action::UserPasswd
        | Action::UserRoles => "Benutzerverwaltung",
    }
}

/// `02.12.2026, 10:15 UTC`.
pub fn german_time(t: DateTime<Utc>) -> String {
    t.format("%d.%m.%Y, %H:%M UTC").to_string()
}

/// Loads a case the caller may see; out of scope or unknown: 404 (audited
/// as `denied` by the scope check).
pub async fn load_in_scope(
    state: &WorkbenchState,
    caller: &Caller,
    id: &str,
) -> Result<CaseDetail, WebError> {
    let Ok(antrag_id) = Uuid::parse_str(id) else {
        return Err(WebError::not_found(caller));
    };
    layout::case_in_scope(state, caller, antrag_id).await?;
    state
        .store
        .load_case(antrag_id)
        .await?
        .ok_or_else(|| WebError::not_found(caller))
}

/// The case's application (as corrected so far) as JSON, and its mapping
/// in force (`None`: no mapping for its form version any more).
pub fn document(
    pipeline: &Pipeline,
    case: &CaseDetail,
) -> (Value, Option<std::sync::Arc<Mapping>>) {
    let doc: Value = serde_json::from_slice(case.current_body()).unwrap_or(Value::Null);
    let form = |k: &str| {
        doc.pointer(&format!("/formular/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let m = pipeline
        .mappings()
        .get(&form("id"), &form("version"))
        .cloned();
    (doc, m)
}

/// The refusal when no mapping is in force for the case's form version.
pub fn unmapped_notice() -> Notice {
    Notice::danger(
        "Nicht möglich",
        "Für die Formularversion dieses Antrags ist keine Zuordnung in Kraft; es wurde nichts geändert."
            .into(),
    )
}

/// Renders the case page: `findings` overrides the stored ones (after a
/// refused release, the findings of that check).
pub async fn render(
    state: &WorkbenchState,
    caller: &Caller,
    case: &CaseDetail,
    notice: Option<Notice>,
    findings: Option<Vec<Finding>>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let view = Shown {
        notice,
        findings,
        typed: Typed::default(),
    };
    render_page(state, caller, case, view, status).await
}

/// Renders the case page with the form „Fehler beheben“ as submitted:
/// the values not kept in their inputs, with their errors.
pub async fn render_with(
    state: &WorkbenchState,
    caller: &Caller,
    case: &CaseDetail,
    notice: Option<Notice>,
    typed: Typed,
    status: StatusCode,
) -> Result<Response, WebError> {
    let view = Shown {
        notice,
        findings: None,
        typed,
    };
    render_page(state, caller, case, view, status).await
}

/// What a rendering shows besides the case.
struct Shown {
    notice: Option<Notice>,
    findings: Option<Vec<Finding>>,
    typed: Typed,
}

async fn render_page(
    state: &WorkbenchState,
    caller: &Caller,
    case: &CaseDetail,
    shown: Shown,
    status: StatusCode,
) -> Result<Response, WebError> {
    let audit = state.store.audit_of(case.antrag_id).await?;
    let anlagen = state.store.attachments_of(case.antrag_id).await?;
    let pipeline = state.pipeline.current();
    let (doc, mapping) = document(&pipeline, case);
    let findings = shown.findings.unwrap_or_else(|| case.findings.clone());
    let (view, fixes) = match &mapping {
        Some(m) => (
            sections::view(m, &doc, &findings),
            fix::fixes(m, &doc, &findings),
        ),
        None => (unplaced(&findings), vec![]),
    };
    let fixes: Vec<FixLine> = fixes
        .into_iter()
        .map(|f| FixLine::new(f, &shown.typed))
        .collect();
    let mut errors = view.errors;
    for e in &mut errors {
        if let Some(f) = fixes.iter().find(|f| f.fix.pointer == e.pointer) {
            e.target = f.fix.input_id.clone();
        }
    }
    let stale = mapping.is_some() && is_stale(&pipeline, case, &findings);
    let mut layout = caller.layout();
    layout.has_errors = !shown.typed.not_kept.is_empty();
    let page = DetailPage {
        layout,
        antrag_id: case.antrag_id.to_string(),
        version: case.version,
        status: status_de(&case.status).into(),
        open_for_work: case.status.is_open_for_work(),
        dienststelle: case.dienststellennummer.clone().unwrap_or_default(),
        received: german_time(case.created_at),
        mapping: case.mapping.clone().unwrap_or_default(),
        defer_note: defer_note(&case.status),
        close_note: close_note(&case.status),
        notice: shown.notice,
        unmapped: mapping.is_none(),
        sections: view.sections,
        errors,
        notes: view.notes,
        general: view.general,
        owed: view.owed,
        anlagen: super::anlagen::views(case.antrag_id, &anlagen),
        fixes,
        stale,
        corrections: case.corrections.len(),
        audit: audit.into_iter().map(audit_line).collect(),
    };
    Ok((status, page).into_response())
}

/// Without a mapping nothing can be placed: every finding is general.
fn unplaced(findings: &[Finding]) -> CaseView {
    let mut view = CaseView {
        sections: vec![],
        general: vec![],
        errors: vec![],
        notes: vec![],
        owed: vec![],
    };
    for f in findings {
        let fv = FindingView {
            severity: f.severity,
            rule: f.rule.clone(),
            message: f.message.clone(),
            pointer: f.pointer.clone(),
            target: sections::GENERAL_FINDINGS_ID.into(),
        };
        if f.is_error() {
            view.errors.push(fv.clone());
        }
        view.general.push(fv);
    }
    view
}

/// Whether the mappings in force find something else than the stored
/// findings (after a mapping change): only then does „Prüfen“ add anything.
fn is_stale(pipeline: &Pipeline, case: &CaseDetail, findings: &[Finding]) -> bool {
    let corrections = &case.corrections;
    match pipeline.process_with(case.current_body(), case.message_id.as_deref(), corrections) {
        allegro_core::pipeline::Processed::Invalid(_) => false,
        p => p.findings() != findings,
    }
}

fn audit_line(a: AuditRow) -> AuditLine {
    AuditLine {
        at: german_time(a.at),
        actor: a.actor,
        action: action_de(a.action),
        pointer: a.pointer.unwrap_or_default(),
        old_value: a.old_value.unwrap_or_default(),
        new_value: a.new_value.unwrap_or_default(),
        detail: a.detail.unwrap_or_default(),
    }
}

/// The notice for `?meldung=`.
fn notice_for(code: NoticeCode, case: &CaseDetail) -> Notice {
    let errors = case.findings.iter().filter(|f| f.is_error()).count();
    match code {
        NoticeCode::Gespeichert => Notice::success(
            "Änderung gespeichert",
            "Die Angabe wurde geändert und der Antrag erneut geprüft.".into(),
        ),
        NoticeCode::Behoben if errors == 0 => Notice::success(
            "Alle Fehler behoben",
            "Die Angaben sind gespeichert und der Antrag ist erneut geprüft: Es ist kein Fehler mehr offen. Der Fall kann freigegeben werden.".into(),
        ),
        NoticeCode::Behoben => Notice::danger(
            "Angaben gespeichert",
            format!(
                "Die Angaben sind gespeichert und der Antrag ist erneut geprüft. Es {} noch {errors} Fehler offen; sie sind oben im Formular aufgeführt.",
                if errors == 1 { "ist" } else { "sind" },
            ),
        ),
        NoticeCode::Unveraendert => Notice::info(
            "Nichts geändert",
            "Sie haben keinen Wert geändert; es wurde nichts gespeichert.".into(),
        ),
        NoticeCode::Geprueft if errors == 0 => Notice::success(
            "Prüfung abgeschlossen",
            "Es ist kein Fehler mehr offen. Der Fall kann freigegeben werden.".into(),
        ),
        NoticeCode::Geprueft => Notice::danger(
            "Prüfung abgeschlossen",
            format!(
                "Es {} noch {errors} Fehler offen. Die Angaben sind unten markiert.",
                if errors == 1 { "ist" } else { "sind" },
            ),
        ),
        NoticeCode::Freigegeben => Notice::success(
            "Fall freigegeben",
            "Der Importdatensatz wurde geschrieben.".into(),
        ),
        NoticeCode::FreigegebenAusstehend => Notice::success(
            "Fall freigegeben",
            "Der Importdatensatz ist gespeichert; die Datei wird nachgeliefert, sobald der Ausgangsordner beschreibbar ist.".into(),
        ),
        NoticeCode::FreigegebenUebergabe => Notice::success(
            "Fall freigegeben",
            "Der Importdatensatz ist gespeichert. Der Hintergrunddienst gibt ihn in Kürze an die angeschlossenen Systeme weiter und schreibt die Datei.".into(),
        ),
        NoticeCode::Zurueckgestellt => Notice::success(
            "Fall zurückgestellt",
            "Der Fall ist mit Grund und Wiedervorlage zurückgestellt.".into(),
        ),
        NoticeCode::Abgeschlossen => Notice::success(
            "Fall abgeschlossen",
            "Der Fall ist ohne Import abgeschlossen.".into(),
        ),
    }
}

/// GET /faelle/{id}.
pub async fn page(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<DetailParams>,
) -> Result<Response, WebError> {
    let case = load_in_scope(&state, &caller, &id).await?;
    let entry = NewAudit::new(&caller.user.name, Action::View, Some(case.antrag_id));
    state.store.audit(&entry, Utc::now()).await?;
    let notice = params.meldung.map(|code| notice_for(code, &case));
    render(&state, &caller, &case, notice, None, StatusCode::OK).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> DetailParams {
        serde_urlencoded::from_str(query).unwrap()
    }

    #[test]
    fn notice_codes_read_back_as_written_and_unknown_ones_are_ignored() {
        for code in NoticeCode::ALL {
            let q = format!("meldung={}", code.as_str());
            assert_eq!(params(&q).meldung, Some(code));
        }
        assert_eq!(params("meldung=%3Cscript%3E").meldung, None);
        assert_eq!(params("").meldung, None);
    }
}
