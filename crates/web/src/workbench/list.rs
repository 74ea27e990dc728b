//! `/faelle`: the cases open for work (open and deferred) within the
//! user's scope, oldest first, 50 a page; filters by Dienststelle, rule id
//! and age, search by antragId or the applicant's name; the count and the
//! age of the oldest.
//!
//! Nothing personal in a URL (issue #19): the filter form is a POST. Its
//! search text is kept in the database under a random, opaque id bound to
//! the session ([`allegro_store::Store::save_search`]) and the answer is
//! 303 to `/faelle?suche=<id>&...`; only the non-personal filters
//! (Dienststelle, rule id, age, page) travel in the query string. The GET
//! resolves the id for the same session only; any other id (another
//! session's, an expired one, a name typed into the address bar) is an
//! empty search with a German notice.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
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
/// Shown when the `suche` of the address is no search of this session.
const UNKNOWN_SEARCH: &str = "Diese Suche ist nicht mehr verfügbar: Eine Suche gilt nur in der \
     Sitzung, in der sie gestellt wurde. Bitte geben Sie den Suchbegriff erneut ein.";

/// The filters as typed (every value is checked here): the form of
/// `POST /faelle`, and the query string of `GET /faelle`, where `suche`
/// is the opaque id of a saved search instead of its text.
#[derive(Debug, Default, Clone, Deserialize)]
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
    /// Why the search of the address was not used (German), if it was not.
    pub notice: Option<&'static str>,
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

/// `/faelle?...` for `page` with the same filters; the search only as its
/// opaque id `search_id`.
fn link(p: &ListParams, search_id: Option<&str>, page: u32) -> String {
    let pairs = [
        ("dienststelle", p.dienststelle.trim()),
        ("regel", p.regel.trim()),
        ("alter", p.alter.trim()),
        ("suche", search_id.unwrap_or_default()),
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

/// A new search id: 128 random bits, hex.
fn new_search_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source");
    hex::encode(b)
}

/// Whether `s` looks like an id of [`new_search_id`] (anything else is not
/// looked up).
fn is_search_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The text of the caller's search `id`, or `None` when this session has
/// no such search.
async fn resolve(
    state: &WorkbenchState,
    caller: &Caller,
    id: &str,
) -> Result<Option<String>, WebError> {
    if !is_search_id(id) {
        return Ok(None);
    }
    Ok(state.store.saved_search(&caller.token_hash, id).await?)
}

/// GET /faelle: the list with the filters of the query string and the
/// saved search its `suche` names.
pub async fn page(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Query(mut params): Query<ListParams>,
) -> Result<Response, WebError> {
    let id = std::mem::take(&mut params.suche);
    let id = id.trim();
    let mut notice = None;
    let mut search_id = None;
    if !id.is_empty() {
        match resolve(&state, &caller, id).await? {
            Some(text) => {
                params.suche = text;
                search_id = Some(id);
            }
            None => notice = Some(UNKNOWN_SEARCH),
        }
    }
    render(&state, &caller, &params, search_id, notice).await
}

/// POST /faelle: keeps the search text under a new opaque id and answers
/// 303 to the list with that id; a text too long is shown with its error
/// at once (and kept nowhere).
pub async fn search(
    State(state): State<WorkbenchState>,
    caller: Caller,
    Form(mut form): Form<ListParams>,
) -> Result<Response, WebError> {
    form.seite.clear();
    let text = form.suche.trim();
    if text.chars().count() > MAX_SEARCH {
        return render(&state, &caller, &form, None, None).await;
    }
    let id = if text.is_empty() {
        None
    } else {
        let id = new_search_id();
        state
            .store
            .save_search(&caller.token_hash, &id, text, Utc::now())
            .await?;
        Some(id)
    };
    Ok(Redirect::to(&link(&form, id.as_deref(), 1)).into_response())
}

/// The list page for the filters `params` (with the search as text);
/// paging links carry `search_id`.
async fn render(
    state: &WorkbenchState,
    caller: &Caller,
    params: &ListParams,
    search_id: Option<&str>,
    notice: Option<&'static str>,
) -> Result<Response, WebError> {
    let now = Utc::now();
    let (mut query, errors) = parse(params, now);
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
        notice,
        page,
        pages,
        prev_link: (page > 1).then(|| link(params, search_id, page - 1)),
        next_link: (page < pages).then(|| link(params, search_id, page + 1)),
    }
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_carry_the_search_id_never_the_text() {
        let p = ListParams {
            regel: "iban".into(),
            suche: "Ioana Popescu".into(),
            ..ListParams::default()
        };
        let id = new_search_id();
        assert!(is_search_id(&id));
        let l = link(&p, Some(&id), 2);
        assert_eq!(l, format!("/faelle?regel=iban&suche={id}&seite=2"));
        assert_eq!(link(&p, None, 1), "/faelle?regel=iban&seite=1");
        assert!(!is_search_id("popescu") && !is_search_id(&"A".repeat(32)));
    }
}
