//! Administration pages (role `administration` only, checked by the route
//! layer [`require_admin`]; anyone else gets the 404 page): `/verwaltung/protokoll` (who looked at or changed what, newest
//! first, paged), `/verwaltung/nachpruefung` (re-check all cases open for
//! work under the mappings in force: a dry run counts per rule, a run
//! releases the passing ones as `system`) and `/verwaltung/dead-letters`
//! (the store's dead-letter log; never a body).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::Utc;
use serde::Deserialize;

use allegro_core::intake::InvalidReason;
use allegro_store::audit::{Action, NewAudit};
use allegro_store::release::{self, RecheckReport};

use super::auth::Caller;
use super::detail::{action_de, german_time};
use super::error::WebError;
use super::layout::{self, Layout};
use super::state::WorkbenchState;

/// Audit entries per page.
pub const AUDIT_PER_PAGE: usize = 50;
/// Dead letters shown at most (the CLI lists all).
pub const DEAD_LETTERS_SHOWN: usize = 500;

/// Route layer of the administration pages: anyone but administration gets
/// 404, as for a case out of scope, audited as `denied` with the page in the
/// detail. Being a layer of the pages' router, no page can forget it.
pub async fn require_admin(
    State(state): State<WorkbenchState>,
    caller: Caller,
    req: Request,
    next: Next,
) -> Response {
    if caller.is_admin() {
        return next.run(req).await;
    }
    let page = req.uri().path().trim_start_matches("/verwaltung/");
    let entry = NewAudit::new(&caller.user.name, Action::Denied, None).detail(page);
    match state.store.audit(&entry, Utc::now()).await {
        Ok(()) => layout::not_found(Some(&caller)),
        Err(e) => WebError::from(e).into_response(),
    }
}

/// `?vor=<id>`: entries older than this id.
#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    #[serde(default)]
    vor: String,
}

pub struct AuditEntry {
    pub at: String,
    pub actor: String,
    pub action: &'static str,
    pub antrag_id: String,
    pub pointer: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub entries: Vec<AuditEntry>,
    pub older: Option<String>,
    pub first_page: bool,
}

impl AuditPage {
    /// The table's caption.
    pub fn caption(&self) -> &'static str {
        if self.first_page {
            "Neueste Einträge"
        } else {
            "Ältere Einträge"
        }
    }
}

/// GET /verwaltung/protokoll.
pub async fn audit_page(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Query(p): Query<AuditParams>,
) -> Result<Response, WebError> {
    let before = p.vor.trim().parse::<i64>().ok();
    let rows = state.store.audit_recent(before, AUDIT_PER_PAGE).await?;
    let older = (rows.len() == AUDIT_PER_PAGE)
        .then(|| {
            rows.last()
                .map(|r| format!("/verwaltung/protokoll?vor={}", r.id))
        })
        .flatten();
    Ok(AuditPage {
        layout: caller.layout(),
        entries: rows
            .into_iter()
            .map(|r| AuditEntry {
                at: german_time(r.at),
                actor: r.actor,
                action: action_de(r.action),
                antrag_id: r.antrag_id.map(|u| u.to_string()).unwrap_or_default(),
                pointer: r.pointer.unwrap_or_default(),
            })
            .collect(),
        older,
        first_page: before.is_none(),
    }
    .into_response())
}

/// One rule's line of the re-check result.
pub struct RuleLine {
    pub rule: String,
    pub resolved: u64,
    pub added: u64,
}

#[derive(Template, WebTemplate)]
#[template(path = "recheck.html")]
pub struct RecheckPage {
    pub layout: Layout,
    pub report: Option<RecheckReport>,
    pub rules: Vec<RuleLine>,
}

/// The re-check form.
#[derive(Debug, Default, Deserialize)]
pub struct RecheckForm {
    #[serde(default)]
    aktion: RecheckAction,
}

/// The re-check form's button (`aktion`); another value is refused (422).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecheckAction {
    /// Count only, change nothing (also when no button was named).
    #[default]
    Probelauf,
    /// Release the cases that pass now.
    Freigeben,
}

/// GET /verwaltung/nachpruefung.
pub async fn recheck_get(caller: Caller) -> Response {
    RecheckPage {
        layout: caller.layout(),
        report: None,
        rules: vec![],
    }
    .into_response()
}

/// POST /verwaltung/nachpruefung: the dry run, or the run that releases.
pub async fn recheck_post(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Form(form): Form<RecheckForm>,
) -> Response {
    let delivery = (form.aktion == RecheckAction::Freigeben).then_some(&state.records);
    let pipeline = state.pipeline.current();
    let report = match release::recheck(&state.store, pipeline, delivery, Utc::now()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "re-check failed");
            return layout::message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&caller),
                "Nachprüfung nicht möglich",
                "Die Nachprüfung ist fehlgeschlagen (Datenbank nicht erreichbar?). Bereits freigegebene Fälle bleiben freigegeben.",
            );
        }
    };
    tracing::info!(
        dry_run = report.dry_run,
        cases = report.cases,
        passing = report.passing,
        released = report.released,
        "re-check from the workbench"
    );
    let rules = report
        .per_rule
        .iter()
        .map(|(rule, c)| RuleLine {
            rule: rule.clone(),
            resolved: c.resolved,
            added: c.added,
        })
        .collect();
    RecheckPage {
        layout: caller.layout(),
        report: Some(report),
        rules,
    }
    .into_response()
}

pub struct DeadLetterLine {
    pub id: String,
    pub antrag_id: String,
    /// The reason code (as in the DLQ headers and `dlq list`).
    pub reason: String,
    /// What it means, in German. The technical detail (English, for IT)
    /// is shown by `allegro-bridge dlq show ID`, not here.
    pub detail: String,
    pub first_seen: String,
    pub bytes: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dead_letters.html")]
pub struct DeadLettersPage {
    pub layout: Layout,
    pub total: usize,
    pub letters: Vec<DeadLetterLine>,
}

/// The German sentence for a dead letter's reason code.
fn german_reason(code: &str) -> &'static str {
    code.parse::<InvalidReason>()
        .map(InvalidReason::beschreibung)
        .unwrap_or("Unbekannter Grund; Einzelheiten zeigt allegro-bridge dlq show.")
}

/// GET /verwaltung/dead-letters.
pub async fn dead_letters(
    State(state): State<WorkbenchState>,
    caller: Caller,
) -> Result<Response, WebError> {
    let rows = state.store.dead_letters().await?;
    let total = rows.len();
    Ok(DeadLettersPage {
        layout: caller.layout(),
        total,
        letters: rows
            .into_iter()
            .rev()
            .take(DEAD_LETTERS_SHOWN)
            .map(|d| DeadLetterLine {
                id: d.id.to_string(),
                antrag_id: d.antrag_id.map(|u| u.to_string()).unwrap_or_default(),
                detail: german_reason(&d.reason).to_string(),
                reason: d.reason,
                first_seen: german_time(d.first_seen),
                bytes: d.body_bytes.map(|b| b.to_string()).unwrap_or_default(),
            })
            .collect(),
    }
    .into_response())
}
