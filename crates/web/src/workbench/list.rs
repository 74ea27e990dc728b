//! `GET /faelle`: the cases open for work (open and deferred) within the
//! user's scope, oldest first, 50 a page; filters by Dienststelle, rule id
//! and age, search by antragId or the applicant's name; the count and the
//! age of the oldest.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;

use allegro_store::cases::{CaseListItem, CaseQuery, CaseState, Search};

use super::auth::Caller;
use super::error::WebError;
use super::layout::{FieldError, Layout};
use super::state::WorkbenchState;

/// Cases per page.
pub const PER_PAGE: u32 = 50;
/// Longest search text accepted.
const MAX_SEARCH: usize = 200;

/// The query string, as typed (every value is checked here).
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    dienststelle: String,
    #[serde(default)]
    regel: String,
    #[serde(default)]
    alter: String,
    #[serde(default)]
    suche: String,
    #[serde(default)]
    seite: String,
}

/// One row as shown.
pub struct Row {
    pub antrag_id: String,
    pub dienststelle: String,
    pub applicant: String,
    pub received: String,
    pub age_days: i64,
    pub rules: Vec<String>,
    pub deferred: bool,
    pub follow_up: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "list.html")]
pub struct ListPage {
    pub layout: Layout,
    pub errors: Vec<FieldError>,
    pub rows: Vec<Row>,
    pub count: i64,
    pub oldest_days: Option<i64>,
    pub dienststellen: Vec<String>,
    pub dienststelle: String,
    pub regel: String,
    pub alter: String,
    pub suche: String,
    /// 1-based.
    pub page: u32,
    pub pages: u32,
    pub prev_link: Option<String>,
    pub next_link: Option<String>,
}

impl ListPage {
    /// The table's caption.
    pub fn caption(&self) -> String {
        format!("Seite {} von {}, älteste zuerst", self.page, self.pages)
    }

    fn error_for(&self, field: &str) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.field == field)
    }
}

/// German date, e.g. `02.12.2026`.
pub fn german_date(d: NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

fn days_since(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - t).num_days().max(0)
}

fn row(c: CaseListItem, now: DateTime<Utc>) -> Row {
    Row {
        antrag_id: c.antrag_id.to_string(),
        dienststelle: c.dienststellennummer.clone().unwrap_or_default(),
        applicant: c.applicant.clone().unwrap_or_default(),
        received: german_date(c.created_at.date_naive()),
        age_days: days_since(c.created_at, now),
        rules: c.rules().into_iter().map(str::to_string).collect(),
        deferred: matches!(c.status, CaseState::Deferred { .. }),
        follow_up: match &c.status {
            CaseState::Deferred { until: Some(d), .. } => german_date(*d),
            _ => String::new(),
        },
    }
}

/// The checked filters, or the input errors.
fn parse(p: &ListParams, now: DateTime<Utc>) -> (CaseQuery, Vec<FieldError>) {
    let mut errors = vec![];
    let alter = p.alter.trim();
    let created_before = match alter.parse::<u32>() {
        _ if alter.is_empty() => None,
        Ok(days) if days <= 3650 => Some(now - Duration::days(i64::from(days))),
        _ => {
            errors.push(FieldError::new(
                "alter",
                "Bitte geben Sie das Mindestalter als ganze Zahl von Tagen (0 bis 3650) an.",
            ));
            None
        }
    };
    let suche = p.suche.trim();
    if suche.chars().count() > MAX_SEARCH {
        errors.push(FieldError::new(
            "suche",
            "Der Suchbegriff ist zu lang (höchstens 200 Zeichen).",
        ));
    }
    let page = p.seite.trim().parse::<u32>().unwrap_or(1).clamp(1, 100_000);
    let nonempty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let query = CaseQuery {
        scope: allegro_store::cases::Scope::All,
        dienststelle: nonempty(&p.dienststelle),
        rule: nonempty(&p.regel),
        created_before,
        search: if suche.chars().count() > MAX_SEARCH {
            None
        } else {
            Search::parse(suche)
        },
        page: page - 1,
        per_page: PER_PAGE,
    };
    (query, errors)
}

/// `/faelle?...` for `page` with the same filters.
fn link(p: &ListParams, page: u32) -> String {
    let pairs = [
        ("dienststelle", p.dienststelle.trim()),
        ("regel", p.regel.trim()),
        ("alter", p.alter.trim()),
        ("suche", p.suche.trim()),
    ];
    let mut q: Vec<(&str, String)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    q.push(("seite", page.to_string()));
    format!(
        "/faelle?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    )
}

/// GET /faelle.
pub async fn page(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Response, WebError> {
    let now = Utc::now();
    let (mut query, errors) = parse(&params, now);
    query.scope = caller.scope();
    let (found, dienststellen) = tokio::join!(
        state.store.list_cases(&query),
        state.store.case_dienststellen(&query.scope)
    );
    let (found, dienststellen) = (found?, dienststellen?);
    let pages = u32::try_from((found.totals.count + i64::from(PER_PAGE) - 1) / i64::from(PER_PAGE))
        .unwrap_or(u32::MAX)
        .max(1);
    let page = query.page + 1;
    let mut layout = caller.layout();
    layout.has_errors = !errors.is_empty();
    Ok(ListPage {
        layout,
        errors,
        rows: found.items.into_iter().map(|c| row(c, now)).collect(),
        count: found.totals.count,
        oldest_days: found.totals.oldest.map(|t| days_since(t, now)),
        dienststellen,
        dienststelle: params.dienststelle.trim().into(),
        regel: params.regel.trim().into(),
        alter: params.alter.trim().into(),
        suche: params.suche.trim().into(),
        page,
        pages,
        prev_link: (page > 1).then(|| link(&params, page - 1)),
        next_link: (page < pages).then(|| link(&params, page + 1)),
    }
    .into_response())
}
