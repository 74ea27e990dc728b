//! `GET /mitwirkung`: the documents owed (Mitwirkung) in the caller's
//! Dienststellen, overdue first, then by deadline; filters by kind and
//! state as codes in the query string (`art`, `stand`; never a name),
//! 50 a page.
//!
//! Also what the application page shares with it: an application's
//! document and mapping ([`AppDoc`]), which names the person a document is
//! owed for and the document's German label, and how a document's state
//! reads ([`state_text`]).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use allegro_core::mapping::Mapping;
use allegro_core::mitwirkung::state::DocState;
use allegro_core::mitwirkung::{document_kinds, document_label};
use allegro_core::pipeline::Pipeline;
use allegro_store::mitwirkung::{ListState, OwedQuery, OwedRow};
use allegro_store::{Store, StoreError};

use super::actions::Choice;
use super::auth::Caller;
use super::error::WebError;
use super::layout::Layout;
use super::list::german_date;
use super::state::WorkbenchState;

/// Documents per page.
pub const PER_PAGE: usize = 50;

/// The query string (codes only).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct OwedParams {
    /// A document kind code, e.g. `MIETVERTRAG`; unknown codes filter nothing.
    #[serde(default)]
    art: String,
    /// A [`ListState`] code; empty or unknown: the documents still waited for.
    #[serde(default)]
    stand: String,
    #[serde(default)]
    seite: String,
}

/// An application's document (as it stands now) and its mapping in force.
pub struct AppDoc {
    pub doc: Value,
    pub mapping: Option<Arc<Mapping>>,
}

impl AppDoc {
    /// Loads the application `antrag_id` (`Value::Null` when purged).
    pub async fn load(
        store: &Store,
        pipeline: &Pipeline,
        antrag_id: Uuid,
    ) -> Result<AppDoc, StoreError> {
        let body = store.current_application(antrag_id).await?;
        let doc: Value = body
            .and_then(|(b, _)| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let form = |k: &str| {
            doc.pointer(&format!("/formular/{k}"))
                .and_then(Value::as_str)
        };
        let mapping = form("id")
            .zip(form("version"))
            .and_then(|(f, v)| pipeline.mappings().get(f, v))
            .cloned();
        Ok(AppDoc { doc, mapping })
    }

    /// The form and its version, e.g. `BG-HA 1.0` (empty when unknown).
    pub fn form(&self) -> String {
        let part = |k: &str| {
            self.doc
                .pointer(&format!("/formular/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        format!("{} {}", part("id"), part("version"))
            .trim()
            .to_string()
    }

    /// The name of the person a document is owed for, as written;
    /// „Bedarfsgemeinschaft“ for the household.
    pub fn person(&self, person_id: Option<&str>) -> String {
        let Some(id) = person_id else {
            return "Bedarfsgemeinschaft".into();
        };
        self.mapping
            .as_ref()
            .and_then(|m| m.casework.persons.name_of(&self.doc, id))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("Person {id}"))
    }

    /// The German label of a document kind.
    pub fn label(&self, kind: &str) -> String {
        match &self.mapping {
            Some(m) => document_label(m, kind),
            None => kind.to_string(),
        }
    }
}

/// How a state reads: „überfällig“ for a request past its deadline.
pub fn state_text(state: &DocState, today: NaiveDate) -> &'static str {
    if state.is_overdue(today) {
        "überfällig"
    } else {
        state.code().label()
    }
}

/// The deadline of a requested document (empty otherwise).
pub fn deadline_text(state: &DocState) -> String {
    match state {
        DocState::Angefordert { deadline } => german_date(*deadline),
        _ => String::new(),
    }
}

/// One row of the list.
pub struct OwedLine {
    pub antrag_id: String,
    pub person: String,
    pub label: String,
    pub state: &'static str,
    pub overdue: bool,
    pub deadline: String,
    pub requested: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "mitwirkung.html")]
pub struct OwedListPage {
    pub layout: Layout,
    pub rows: Vec<OwedLine>,
    pub kinds: Vec<Choice>,
    pub states: Vec<Choice>,
    /// 1-based.
    pub page: usize,
    pub prev_link: Option<String>,
    pub next_link: Option<String>,
}

impl OwedListPage {
    pub fn caption(&self) -> String {
        format!(
            "Nachweise, Seite {}: überfällige zuerst, dann nach Frist",
            self.page
        )
    }
}

/// The checked filters: a known kind, a state, the page (1-based).
fn parse(p: &OwedParams, kinds: &[(String, String)]) -> (Option<String>, Option<ListState>, usize) {
    let art = p.art.trim();
    let kind = kinds
        .iter()
        .find(|(code, _)| code == art)
        .map(|(code, _)| code.clone());
    let state = ListState::parse(p.stand.trim());
    let page = p
        .seite
        .trim()
        .parse::<usize>()
        .unwrap_or(1)
        .clamp(1, 100_000);
    (kind, state, page)
}

/// Every document kind of the mappings in force with its German label,
/// sorted by label.
fn kinds(pipeline: &Pipeline) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for m in pipeline.mappings().all() {
        for code in document_kinds(m) {
            if !out.iter().any(|(c, _)| *c == code) {
                let label = document_label(m, &code);
                out.push((code, label));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The kind select: „Alle“, then every kind.
fn kind_choices(kinds: &[(String, String)], chosen: Option<&str>) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: "Alle".into(),
        selected: chosen.is_none(),
    }];
    out.extend(kinds.iter().map(|(code, label)| Choice {
        value: code.clone(),
        label: label.clone(),
        selected: chosen == Some(code.as_str()),
    }));
    out
}

/// The state select: the default (still waited for), then every state.
fn state_choices(chosen: Option<ListState>) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: "noch erwartet (offen oder angefordert)".into(),
        selected: chosen.is_none(),
    }];
    out.extend(ListState::ALL.into_iter().map(|s| Choice {
        value: s.as_str().into(),
        label: s.label().into(),
        selected: chosen == Some(s),
    }));
    out
}

/// `/mitwirkung?...` for `page` with the same filters.
fn link(kind: Option<&str>, state: Option<ListState>, page: usize) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(k) = kind {
        q.push(("art", k.to_string()));
    }
    if let Some(s) = state {
        q.push(("stand", s.as_str().to_string()));
    }
    q.push(("seite", page.to_string()));
    format!(
        "/mitwirkung?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    )
}

/// The rows as shown; each application is read once.
async fn lines(
    state: &WorkbenchState,
    rows: Vec<OwedRow>,
    today: NaiveDate,
) -> Result<Vec<OwedLine>, StoreError> {
    let pipeline = state.pipeline.current();
    let mut docs: HashMap<Uuid, AppDoc> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let d = match docs.entry(r.antrag_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(AppDoc::load(&state.store, &pipeline, r.antrag_id).await?),
        };
        out.push(OwedLine {
            antrag_id: r.antrag_id.to_string(),
            person: d.person(r.person_id.as_deref()),
            label: d.label(&r.kind),
            state: state_text(&r.state, today),
            overdue: r.state.is_overdue(today),
            deadline: deadline_text(&r.state),
            requested: r
                .requested_at
                .map(|t| german_date(t.date_naive()))
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// GET /mitwirkung.
pub async fn page(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Query(params): Query<OwedParams>,
) -> Result<Response, WebError> {
    let today = state.clock.today();
    let known = kinds(&state.pipeline.current());
    let (kind, list_state, page) = parse(&params, &known);
    let query = OwedQuery {
        scope: caller.scope(),
        kind: kind.clone(),
        state: list_state,
        today,
        offset: (page - 1) * PER_PAGE,
        limit: PER_PAGE,
    };
    let (rows, more) = state.store.owed_list(&query).await?;
    Ok(OwedListPage {
        layout: caller.layout(),
        rows: lines(&state, rows, today).await?,
        kinds: kind_choices(&known, kind.as_deref()),
        states: state_choices(list_state),
        page,
        prev_link: (page > 1).then(|| link(kind.as_deref(), list_state, page - 1)),
        next_link: more.then(|| link(kind.as_deref(), list_state, page + 1)),
    }
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_codes_and_unknown_ones_filter_nothing() {
        let kinds = vec![("MIETVERTRAG".to_string(), "Mietvertrag".to_string())];
        let p = |q: &str| parse(&serde_urlencoded::from_str(q).unwrap(), &kinds);
        assert_eq!(
            p("art=MIETVERTRAG&stand=ueberfaellig&seite=2"),
            (Some("MIETVERTRAG".into()), Some(ListState::Ueberfaellig), 2)
        );
        assert_eq!(p("art=Popescu&stand=x&seite=-1"), (None, None, 1));
        assert_eq!(
            link(Some("MIETVERTRAG"), Some(ListState::Offen), 3),
            "/mitwirkung?art=MIETVERTRAG&stand=offen&seite=3"
        );
    }
}
