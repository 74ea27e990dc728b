//! Cases (Klärfälle) as the workbench sees them: the list of open work with
//! its filters, scope and paging, and the derived columns the list searches
//! (`applicant`, `error_rules`), computed here so the daemon and the
//! workbench fill them the same way.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{FromRow, QueryBuilder};
use uuid::Uuid;

use allegro_core::finding::Finding;

use crate::{Store, StoreError};

/// Where a case stands (`cases.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseStatus {
    /// Waiting for a caseworker.
    Open,
    /// Put back with a reason and a follow-up date (still open for work).
    Deferred,
    /// Released: its record was written.
    Released,
    /// Closed without an import.
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Deferred => "deferred",
            CaseStatus::Released => "released",
            CaseStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<CaseStatus> {
        [
            CaseStatus::Open,
            CaseStatus::Deferred,
            CaseStatus::Released,
            CaseStatus::Closed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// `open` or `deferred`: listed, never purged.
    pub fn is_open_for_work(self) -> bool {
        matches!(self, CaseStatus::Open | CaseStatus::Deferred)
    }
}

/// The lower-cased "vornamen familienname" of an application, for the
/// search (`None` when neither is there).
pub fn applicant_of(doc: &serde_json::Value) -> Option<String> {
    let part = |k: &str| doc.pointer(&format!("/antragsteller/{k}"))?.as_str();
    let name = [part("vornamen"), part("familienname")]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then(|| name.replace('\0', "").to_lowercase())
}

/// `,rule1,rule2,` of the error findings (sorted, each once; `''` for none),
/// so that `LIKE '%,rule,%'` finds a rule id exactly.
pub fn error_rules_of(findings: &[Finding]) -> String {
    let mut rules: Vec<&str> = findings
        .iter()
        .filter(|f| f.is_error())
        .map(|f| f.rule.as_str())
        .collect();
    rules.sort_unstable();
    rules.dedup();
    if rules.is_empty() {
        String::new()
    } else {
        format!(",{},", rules.join(",")).replace('\0', "")
    }
}

/// Which cases a user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every case (administration).
    All,
    /// The cases of these Dienststellen (sachbearbeitung); empty: none.
    Dienststellen(Vec<String>),
}

impl Scope {
    /// Whether a case of this Dienststelle is inside the scope.
    pub fn covers(&self, dienststelle: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Dienststellen(list) => dienststelle.is_some_and(|d| list.iter().any(|x| x == d)),
        }
    }
}

/// What the list's search box asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// One antragId, exactly.
    AntragId(Uuid),
    /// Part of the applicant's name (lower-cased, matched anywhere).
    Name(String),
}

impl Search {
    /// A UUID is an antragId, anything else a name; empty: no search.
    pub fn parse(text: &str) -> Option<Search> {
        let t = text.trim();
        if t.is_empty() {
            None
        } else if let Ok(id) = Uuid::parse_str(t) {
            Some(Search::AntragId(id))
        } else {
            Some(Search::Name(t.to_lowercase()))
        }
    }
}

/// The list's question: scope, filters and page.
#[derive(Debug, Clone)]
pub struct CaseQuery {
    pub scope: Scope,
    /// Only this Dienststelle.
    pub dienststelle: Option<String>,
    /// Only cases with an error of this rule id.
    pub rule: Option<String>,
    /// Only cases created before this instant (the age filter).
    pub created_before: Option<DateTime<Utc>>,
    pub search: Option<Search>,
    /// 0-based.
    pub page: u32,
    pub per_page: u32,
}

/// One row of the list.
#[derive(Debug, Clone, FromRow)]
pub struct CaseListItem {
    pub antrag_id: Uuid,
    pub dienststellennummer: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub applicant: Option<String>,
    /// `,r1,r2,` (see [`error_rules_of`]).
    pub error_rules: String,
    pub follow_up: Option<NaiveDate>,
    pub defer_reason: Option<String>,
}

impl CaseListItem {
    /// The rule ids of the current errors.
    pub fn rules(&self) -> Vec<&str> {
        self.error_rules
            .split(',')
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// How many cases match and the oldest one's creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaseTotals {
    pub count: i64,
    pub oldest: Option<DateTime<Utc>>,
}

/// A page of the list.
#[derive(Debug, Clone)]
pub struct CasePage {
    pub items: Vec<CaseListItem>,
    pub totals: CaseTotals,
}

/// `LIKE` pattern matching `text` literally anywhere (`\` escapes).
fn like_anywhere(text: &str) -> String {
    let mut s = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

/// Appends the WHERE clause of `q` (open for work, scope, filters).
fn push_filters<DB>(qb: &mut QueryBuilder<DB>, q: &CaseQuery)
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Uuid: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> DateTime<Utc>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push(" WHERE c.status IN ('open', 'deferred')");
    match &q.scope {
        Scope::All => {}
        Scope::Dienststellen(list) if list.is_empty() => {
            qb.push(" AND 1 = 0");
        }
        Scope::Dienststellen(list) => {
            qb.push(" AND c.dienststellennummer IN (");
            let mut sep = qb.separated(", ");
            for d in list {
                sep.push_bind(d.clone());
            }
            qb.push(")");
        }
    }
    if let Some(d) = &q.dienststelle {
        qb.push(" AND c.dienststellennummer = ")
            .push_bind(d.clone());
    }
    if let Some(r) = &q.rule {
        qb.push(" AND c.error_rules LIKE ")
            .push_bind(like_anywhere(&format!(",{r},")))
            .push(" ESCAPE '\\'");
    }
    if let Some(t) = q.created_before {
        qb.push(" AND c.created_at < ").push_bind(t);
    }
    match &q.search {
        None => {}
        Some(Search::AntragId(id)) => {
            qb.push(" AND c.antrag_id = ").push_bind(*id);
        }
        Some(Search::Name(n)) => {
            qb.push(" AND c.applicant LIKE ")
                .push_bind(like_anywhere(n))
                .push(" ESCAPE '\\'");
        }
    }
}

const LIST_COLUMNS: &str = "SELECT c.antrag_id, c.dienststellennummer, c.status, c.created_at, \
     c.applicant, c.error_rules, c.follow_up, c.defer_reason FROM cases c";

impl Store {
    /// One page of the cases open for work that `q` selects, oldest first,
    /// with the count and the oldest of all that match.
    pub async fn list_cases(&self, q: &CaseQuery) -> Result<CasePage, StoreError> {
        let per_page = q.per_page.clamp(1, 500);
        let offset = i64::from(q.page) * i64::from(per_page);
        dispatch!(self, Store, p => {
            let mut qb = QueryBuilder::new(LIST_COLUMNS);
            push_filters(&mut qb, q);
            qb.push(" ORDER BY c.created_at, c.antrag_id LIMIT ")
                .push_bind(i64::from(per_page))
                .push(" OFFSET ")
                .push_bind(offset);
            let items: Vec<CaseListItem> = qb.build_query_as().fetch_all(p).await?;
            let mut qb = QueryBuilder::new("SELECT COUNT(*), MIN(c.created_at) FROM cases c");
            push_filters(&mut qb, q);
            let (count, oldest): (i64, Option<DateTime<Utc>>) =
                qb.build_query_as().fetch_one(p).await?;
            Ok(CasePage { items, totals: CaseTotals { count, oldest } })
        })
    }

    /// The Dienststellen that have cases open for work within `scope`
    /// (for the filter's choices), sorted.
    pub async fn case_dienststellen(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        let all: Vec<String> = dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "SELECT DISTINCT dienststellennummer FROM cases \
                 WHERE status IN ('open', 'deferred') AND dienststellennummer IS NOT NULL \
                 ORDER BY dienststellennummer",
            )
            .fetch_all(p)
            .await?
        });
        Ok(all.into_iter().filter(|d| scope.covers(Some(d))).collect())
    }

    /// The Dienststelle and status of one case (for the scope check).
    pub async fn case_scope(
        &self,
        antrag_id: Uuid,
    ) -> Result<Option<(Option<String>, String)>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as("SELECT dienststellennummer, status FROM cases WHERE antrag_id = $1")
                .bind(antrag_id)
                .fetch_optional(p)
                .await
        })
    }
}
