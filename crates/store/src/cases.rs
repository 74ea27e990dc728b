//! Cases (Klärfälle) as the workbench sees them: the list of open work with
//! its filters, scope and paging, and the derived columns the list searches
//! (`applicant_key`, `error_rules`), computed here so the daemon and the
//! workbench fill them the same way. The applicant's name itself comes from
//! the mapping's `[casework] applicant_name` (`allegro_core::casework`).

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

/// Where a case stands, with the data that belongs to that status only.
/// Read from `cases.status` and its columns ([`StatusColumns`]); an unknown
/// status is a corrupt row ([`StoreError::Corrupt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseState {
    /// Waiting for a caseworker.
    Open,
    /// Put back. The workbench always stores both; they are `None` only for
    /// a row changed outside it.
    Deferred {
        until: Option<NaiveDate>,
        reason: Option<String>,
    },
    /// Released: its record was written.
    Released,
    /// Closed without an import. Retention removes the reason (it may be
    /// personal) once the case is old enough.
    Closed {
        reason: Option<String>,
        at: Option<DateTime<Utc>>,
    },
}

impl CaseState {
    /// The status without its data.
    pub fn status(&self) -> CaseStatus {
        match self {
            CaseState::Open => CaseStatus::Open,
            CaseState::Deferred { .. } => CaseStatus::Deferred,
            CaseState::Released => CaseStatus::Released,
            CaseState::Closed { .. } => CaseStatus::Closed,
        }
    }

    /// The stored code (`open`, `deferred`, `released`, `closed`).
    pub fn as_str(&self) -> &'static str {
        self.status().as_str()
    }

    /// `open` or `deferred`: listed, may be changed.
    pub fn is_open_for_work(&self) -> bool {
        self.status().is_open_for_work()
    }
}

/// Compares with the stored code, e.g. `case.status == "open"` in a test.
impl PartialEq<&str> for CaseState {
    fn eq(&self, code: &&str) -> bool {
        self.as_str() == *code
    }
}

/// The status columns of a `cases` row as stored, before they are checked.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct StatusColumns {
    status: String,
    defer_reason: Option<String>,
    follow_up: Option<NaiveDate>,
    close_reason: Option<String>,
    closed_at: Option<DateTime<Utc>>,
}

impl StatusColumns {
    /// The state of case `antrag_id`, or a corrupt-row error.
    fn into_state(self, antrag_id: Uuid) -> Result<CaseState, StoreError> {
        let status = CaseStatus::parse(&self.status).ok_or_else(|| StoreError::Corrupt {
            table: "cases",
            column: "status",
            key: format!("antragId {antrag_id}"),
            detail: "not one of open, deferred, released, closed".into(),
        })?;
        Ok(match status {
            CaseStatus::Open => CaseState::Open,
            CaseStatus::Deferred => CaseState::Deferred {
                until: self.follow_up,
                reason: self.defer_reason,
            },
            CaseStatus::Released => CaseState::Released,
            CaseStatus::Closed => CaseState::Closed {
                reason: self.close_reason,
                at: self.closed_at,
            },
        })
    }
}

/// Decodes the JSON column `table.column` of case `antrag_id`; a value that
/// does not decode is a corrupt row, never an empty list.
fn decode_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    antrag_id: Uuid,
    json: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt_json(table, column, antrag_id, &e))
}

/// The form of a name the search matches: lower-cased (Unicode, in Rust,
/// so both databases compare the same way), kept in `cases.applicant_key`
/// beside the name as written.
pub fn search_key(name: &str) -> String {
    name.to_lowercase()
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
    /// Part of the applicant's name ([`search_key`], matched anywhere).
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
            Some(Search::Name(search_key(t)))
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
#[derive(Debug, Clone)]
pub struct CaseListItem {
    pub antrag_id: Uuid,
    pub dienststellennummer: Option<String>,
    pub status: CaseState,
    pub created_at: DateTime<Utc>,
    pub applicant: Option<String>,
    /// `,r1,r2,` (see [`error_rules_of`]).
    pub error_rules: String,
}

/// A list row as stored.
#[derive(FromRow)]
struct ListRow {
    antrag_id: Uuid,
    dienststellennummer: Option<String>,
    #[sqlx(flatten)]
    status: StatusColumns,
    created_at: DateTime<Utc>,
    applicant: Option<String>,
    error_rules: String,
}

impl TryFrom<ListRow> for CaseListItem {
    type Error = StoreError;
    fn try_from(r: ListRow) -> Result<CaseListItem, StoreError> {
        Ok(CaseListItem {
            status: r.status.into_state(r.antrag_id)?,
            antrag_id: r.antrag_id,
            dienststellennummer: r.dienststellennummer,
            created_at: r.created_at,
            applicant: r.applicant,
            error_rules: r.error_rules,
        })
    }
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
    push_scope(qb, "c.dienststellennummer", &q.scope);
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
            qb.push(" AND c.applicant_key LIKE ")
                .push_bind(like_anywhere(n))
                .push(" ESCAPE '\\'");
        }
    }
}

/// Appends ` AND <column> IN (...)` for the Dienststellen of `scope`
/// (nothing for all, a false condition for none).
pub(crate) fn push_scope<DB>(qb: &mut QueryBuilder<DB>, column: &str, scope: &Scope)
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    match scope {
        Scope::All => {}
        Scope::Dienststellen(list) if list.is_empty() => {
            qb.push(" AND 1 = 0");
        }
        Scope::Dienststellen(list) => {
            qb.push(format!(" AND {column} IN ("));
            let mut sep = qb.separated(", ");
            for d in list {
                sep.push_bind(d.clone());
            }
            qb.push(")");
        }
    }
}

/// Whether the filters may match few cases (a name, a rule), so that the
/// matches are better found first and sorted than looked for along the
/// date index.
fn needs_fence(q: &CaseQuery) -> bool {
    matches!(q.search, Some(Search::Name(_))) || q.rule.is_some()
}

const LIST_COLUMNS: &str = "SELECT c.antrag_id, c.dienststellennummer, c.status, c.created_at, \
     c.applicant, c.error_rules, c.follow_up, c.defer_reason, c.close_reason, c.closed_at \
     FROM cases c";

impl Store {
    /// One page of the cases open for work that `q` selects, oldest first,
    /// with the count and the oldest of all that match.
    ///
    /// Three things keep this fast with 100,000 cases (see the benchmark in
    /// docs/workbench.md): the count comes first, so a page in the back half
    /// is read from the newest end (`DESC`, a short offset) and reversed; a
    /// selective filter (name search, rule) reads its matches first and
    /// sorts them ([`needs_fence`]), because walking the date index until
    /// 50 matches are found reads every case when few match.
    pub async fn list_cases(&self, q: &CaseQuery) -> Result<CasePage, StoreError> {
        let per_page = i64::from(q.per_page.clamp(1, 500));
        let offset = i64::from(q.page) * per_page;
        // PostgreSQL: `OFFSET 0` keeps the subquery's plan on its own (a
        // fence). SQLite's planner has no such trap (and no bare OFFSET).
        let close = match self {
            Store::Postgres(_) if needs_fence(q) => " OFFSET 0) c",
            _ => ") c",
        };
        dispatch!(self, Store, p => {
            let mut qb = QueryBuilder::new("SELECT COUNT(*), MIN(c.created_at) FROM cases c");
            push_filters(&mut qb, q);
            let (count, oldest): (i64, Option<DateTime<Utc>>) =
                qb.build_query_as().fetch_one(p).await?;
            let totals = CaseTotals { count, oldest };
            if offset >= count {
                return Ok(CasePage { items: vec![], totals });
            }
            // From the newest end when that is the shorter way.
            let from_end = offset > count / 2;
            let (skip, take) = if from_end {
                let end = (offset + per_page).min(count);
                (count - end, end - offset)
            } else {
                (offset, per_page)
            };
            let mut qb = QueryBuilder::new("SELECT * FROM (");
            qb.push(LIST_COLUMNS);
            push_filters(&mut qb, q);
            qb.push(close);
            qb.push(if from_end {
                " ORDER BY c.created_at DESC, c.antrag_id DESC LIMIT "
            } else {
                " ORDER BY c.created_at, c.antrag_id LIMIT "
            });
            qb.push_bind(take).push(" OFFSET ").push_bind(skip);
            let rows: Vec<ListRow> = qb.build_query_as().fetch_all(p).await?;
            let mut items = rows
                .into_iter()
                .map(CaseListItem::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            if from_end {
                items.reverse();
            }
            Ok(CasePage { items, totals })
        })
    }

    /// The Dienststellen that have cases open for work within `scope`
    /// (for the filter's choices), sorted. A caseworker's are its own; for
    /// everything, one index probe per Dienststelle (a skip scan) instead of
    /// reading every case.
    pub async fn case_dienststellen(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        if let Scope::Dienststellen(own) = scope {
            let mut own = own.clone();
            own.sort();
            return Ok(own);
        }
        dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "WITH RECURSIVE d(v) AS ( \
                   SELECT MIN(dienststellennummer) FROM cases \
                   WHERE status IN ('open', 'deferred') \
                   UNION ALL \
                   SELECT (SELECT MIN(c.dienststellennummer) FROM cases c \
                           WHERE c.status IN ('open', 'deferred') AND c.dienststellennummer > d.v) \
                   FROM d WHERE d.v IS NOT NULL) \
                 SELECT v FROM d WHERE v IS NOT NULL ORDER BY v",
            )
            .fetch_all(p)
            .await.map_err(StoreError::from)
        })
    }

    /// The Dienststelle and status of one case (for the scope check).
    pub async fn case_scope(
        &self,
        antrag_id: Uuid,
    ) -> Result<Option<(Option<String>, CaseStatus)>, StoreError> {
        let row: Option<(Option<String>, String)> = dispatch!(self, Store, p => {
            sqlx::query_as("SELECT dienststellennummer, status FROM cases WHERE antrag_id = $1")
                .bind(antrag_id)
                .fetch_optional(p)
                .await?
        });
        row.map(|(dst, status)| match CaseStatus::parse(&status) {
            Some(s) => Ok((dst, s)),
            None => Err(StoreError::Corrupt {
                table: "cases",
                column: "status",
                key: format!("antragId {antrag_id}"),
                detail: "not one of open, deferred, released, closed".into(),
            }),
        })
        .transpose()
    }
}

// ---- Working on one case (wb2): load, save corrections with optimistic
// locking, release, defer, close. Every change bumps `version` and is
// refused when the caller's version is not the stored one any more.

use crate::audit::{Action, NewAudit};
use crate::Tx;
use allegro_core::record::Correction;

/// One case with everything the detail page and its actions need, its JSON
/// columns decoded.
#[derive(Debug, Clone)]
pub struct CaseDetail {
    pub antrag_id: Uuid,
    pub dienststellennummer: Option<String>,
    pub status: CaseState,
    /// Optimistic lock: the version the page was rendered from.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The application as received.
    pub body: Vec<u8>,
    /// The application with the corrections applied (`None`: unchanged).
    pub corrected_body: Option<Vec<u8>>,
    /// The corrections made so far.
    pub corrections: Vec<Correction>,
    /// The findings of the last check.
    pub findings: Vec<Finding>,
    pub message_id: Option<String>,
    pub mapping: Option<String>,
}

impl CaseDetail {
    /// The application as it stands now (corrected, if it was).
    pub fn current_body(&self) -> &[u8] {
        self.corrected_body.as_deref().unwrap_or(&self.body)
    }
}

/// A case as stored ([`detail_select!`]), before it is checked.
#[derive(FromRow)]
struct DetailRow {
    antrag_id: Uuid,
    dienststellennummer: Option<String>,
    #[sqlx(flatten)]
    status: StatusColumns,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    body: Vec<u8>,
    corrected_body: Option<Vec<u8>>,
    corrections: String,
    findings: String,
    message_id: Option<String>,
    mapping: Option<String>,
}

impl TryFrom<DetailRow> for CaseDetail {
    type Error = StoreError;
    fn try_from(r: DetailRow) -> Result<CaseDetail, StoreError> {
        let id = r.antrag_id;
        Ok(CaseDetail {
            status: r.status.into_state(id)?,
            corrections: decode_json("cases", "corrections", id, &r.corrections)?,
            // The case's own findings, else the application's.
            findings: decode_json("cases", "findings", id, &r.findings)?,
            antrag_id: id,
            dienststellennummer: r.dienststellennummer,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            body: r.body,
            corrected_body: r.corrected_body,
            message_id: r.message_id,
            mapping: r.mapping,
        })
    }
}

/// Why a change of a case was not made. A conflict is an expected answer
/// (someone else changed the case first, or it is no longer open for work),
/// not a failure of the store, so it is not a [`StoreError`]. Nothing was
/// written in either case.
#[derive(Debug, thiserror::Error)]
pub enum CaseWriteError {
    /// The stored version is not the one the caller started from.
    #[error("the case was changed meanwhile")]
    Conflict,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CaseWriteError {
    fn from(e: sqlx::Error) -> Self {
        CaseWriteError::Store(e.into())
    }
}

/// The new draft of a case after an edit or a check.
#[derive(Debug, Clone)]
pub struct CaseDraft<'a> {
    /// The corrected application (`None`: leave it as it is).
    pub corrected_body: Option<&'a [u8]>,
    /// JSON array of every correction so far.
    pub corrections_json: &'a str,
    /// JSON array of the findings of the corrected application.
    pub findings_json: &'a str,
    /// [`error_rules_of`] those findings.
    pub error_rules: &'a str,
    /// The applicant's name in the corrected application, as written
    /// (`None`: leave it), so the list finds a case under its corrected name.
    pub applicant: Option<&'a str>,
}

/// What ends a case's work: released (its record written) or closed.
#[derive(Debug, Clone)]
pub enum CaseEnd<'a> {
    /// Released with this import record.
    Released {
        record: &'a [u8],
        /// The findings of the final check (warnings, hints).
        findings_json: &'a str,
    },
    /// Closed without import, with the reason.
    Closed { reason: &'a str },
}

/// The columns of [`CaseDetail`] (a macro, so that queries can `concat!` it:
/// sqlx takes only literal SQL).
macro_rules! detail_select {
    () => {
        "SELECT c.antrag_id, c.dienststellennummer, c.status, c.version, \
     c.created_at, c.updated_at, a.body, c.corrected_body, c.corrections, \
     COALESCE(c.findings, a.findings) AS findings, a.message_id, a.mapping, \
     c.defer_reason, c.follow_up, c.close_reason, c.closed_at \
     FROM cases c JOIN applications a ON a.antrag_id = c.antrag_id"
    };
}

/// Version check and open-for-work check of every case change.
macro_rules! is_current {
    () => {
        " WHERE antrag_id = $1 AND version = $2 AND status IN ('open', 'deferred')"
    };
}

impl Store {
    /// One case with its application, or `None`. A row whose status or
    /// JSON columns do not decode is [`StoreError::Corrupt`].
    pub async fn load_case(&self, antrag_id: Uuid) -> Result<Option<CaseDetail>, StoreError> {
        let row: Option<DetailRow> = dispatch!(self, Store, p => {
            sqlx::query_as(concat!(detail_select!(), " WHERE c.antrag_id = $1"))
                .bind(antrag_id)
                .fetch_optional(p)
                .await?
        });
        row.map(CaseDetail::try_from).transpose()
    }

    /// Cases open for work (`open` or `deferred`) after `after` in antragId
    /// order, with everything a re-check needs.
    pub async fn cases_open_for_work(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<CaseDetail>, StoreError> {
        let rows: Vec<DetailRow> = dispatch!(self, Store, p => {
            sqlx::query_as(concat!(
                detail_select!(),
                " WHERE c.status IN ('open', 'deferred') AND c.antrag_id > $1 \
                 ORDER BY c.antrag_id LIMIT $2"
            ))
            .bind(after.unwrap_or(Uuid::nil()))
            .bind(limit as i64)
            .fetch_all(p)
            .await?
        });
        rows.into_iter().map(CaseDetail::try_from).collect()
    }

    /// Stores a new draft (corrected application, corrections, findings) if
    /// the case is still at `version`, with its audit entries, in one
    /// transaction. Returns the new version.
    pub async fn save_case_draft(
        &self,
        antrag_id: Uuid,
        version: i32,
        draft: &CaseDraft<'_>,
        audit: &[NewAudit<'_>],
        at: DateTime<Utc>,
    ) -> Result<i32, CaseWriteError> {
        let mut tx = self.begin().await?;
        let n = dispatch!(&mut tx, Tx, t => {
            sqlx::query(concat!(
                "UPDATE cases SET corrected_body = COALESCE($3, corrected_body), corrections = $4, findings = $5, \
                 error_rules = $6, version = version + 1, updated_at = $7, \
                 applicant = COALESCE($8, applicant), applicant_key = COALESCE($9, applicant_key)",
                is_current!()
            ))
            .bind(antrag_id)
            .bind(version)
            .bind(draft.corrected_body)
            .bind(draft.corrections_json)
            .bind(draft.findings_json)
            .bind(draft.error_rules)
            .bind(at)
            .bind(draft.applicant)
            .bind(draft.applicant.map(search_key))
            .execute(&mut **t)
            .await?
            .rows_affected()
        });
        finish_case_write(tx, n, audit, at).await?;
        Ok(version + 1)
    }

    /// Puts a case back (`deferred`) with a reason and a follow-up date.
    pub async fn defer_case(
        &self,
        antrag_id: Uuid,
        version: i32,
        reason: &str,
        follow_up: NaiveDate,
        audit: &NewAudit<'_>,
        at: DateTime<Utc>,
    ) -> Result<i32, CaseWriteError> {
        let mut tx = self.begin().await?;
        let n = dispatch!(&mut tx, Tx, t => {
            sqlx::query(concat!(
                "UPDATE cases SET status = 'deferred', defer_reason = $3, follow_up = $4, \
                 version = version + 1, updated_at = $5",
                is_current!()
            ))
            .bind(antrag_id)
            .bind(version)
            .bind(reason)
            .bind(follow_up)
            .bind(at)
            .execute(&mut **t)
            .await?
            .rows_affected()
        });
        finish_case_write(tx, n, std::slice::from_ref(audit), at).await?;
        Ok(version + 1)
    }

    /// Ends a case that is still at `version`, in one transaction: a release
    /// inserts its record and outbox row exactly as the daemon does for an
    /// accepted application ([`Tx::insert_records`]); a close stores the
    /// reason. The status changes, the version is bumped, `audit` is appended.
    /// The caller writes a released record's file afterwards
    /// ([`crate::outbox::dispatch`]); until then it is pending like any other.
    pub async fn end_case(
        &self,
        antrag_id: Uuid,
        version: i32,
        end: &CaseEnd<'_>,
        audit: &NewAudit<'_>,
        at: DateTime<Utc>,
    ) -> Result<i32, CaseWriteError> {
        let mut tx = self.begin().await?;
        let n = match end {
            CaseEnd::Released { findings_json, .. } => dispatch!(&mut tx, Tx, t => {
                sqlx::query(concat!(
                    "UPDATE cases SET status = 'released', findings = $3, error_rules = '', \
                     version = version + 1, updated_at = $4",
                    is_current!()
                ))
                .bind(antrag_id)
                .bind(version)
                .bind(*findings_json)
                .bind(at)
                .execute(&mut **t)
                .await?
                .rows_affected()
            }),
            CaseEnd::Closed { reason } => dispatch!(&mut tx, Tx, t => {
                sqlx::query(concat!(
                    "UPDATE cases SET status = 'closed', close_reason = $3, closed_at = $4, \
                     version = version + 1, updated_at = $4",
                    is_current!()
                ))
                .bind(antrag_id)
                .bind(version)
                .bind(*reason)
                .bind(at)
                .execute(&mut **t)
                .await?
                .rows_affected()
            }),
        };
        if n == 1 {
            if let CaseEnd::Released { record, .. } = end {
                tx.insert_records(&[crate::NewRecord {
                    antrag_id,
                    xml: record,
                    created_at: at,
                }])
                .await?;
                // Documents that arrived while the case was open: ALLEGRO
                // learns of them after the record.
                tx.follow_ups_for_received(antrag_id, at).await?;
            }
        }
        finish_case_write(tx, n, std::slice::from_ref(audit), at).await?;
        Ok(version + 1)
    }
}

/// Commits a case change that touched `n` rows with its audit entries, or
/// rolls it back as a conflict when it touched none.
async fn finish_case_write(
    mut tx: Tx,
    n: u64,
    audit: &[NewAudit<'_>],
    at: DateTime<Utc>,
) -> Result<(), CaseWriteError> {
    if n != 1 {
        drop(tx);
        return Err(CaseWriteError::Conflict);
    }
    for a in audit {
        tx.audit(a, at).await?;
    }
    if let Some(id) = audit
        .iter()
        .find(|a| a.action == Action::Edit && a.pointer.is_some())
        .and_then(|a| a.antrag_id)
    {
        tx.note_corrected_fields(id).await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Tx {
    /// Sets `cases.corrected_fields` (`,/p1,/p2,`) from the case's edits in
    /// the audit log, for the Kennzahlen (see migration
    /// `0014_corrected_fields`).
    async fn note_corrected_fields(&mut self, antrag_id: Uuid) -> Result<(), StoreError> {
        let sql = match self {
            Tx::Sqlite(_) => {
                "UPDATE cases SET corrected_fields = coalesce((SELECT ',' || group_concat(pointer, ',') || ',' \
                 FROM (SELECT DISTINCT pointer FROM audit WHERE antrag_id = $1 AND action = 'edit' \
                 AND pointer IS NOT NULL ORDER BY pointer)), '') WHERE antrag_id = $1"
            }
            Tx::Postgres(_) => {
                "UPDATE cases SET corrected_fields = coalesce((SELECT ',' || string_agg(DISTINCT pointer, ',' \
                 ORDER BY pointer) || ',' FROM audit WHERE antrag_id = $1 AND action = 'edit' \
                 AND pointer IS NOT NULL), '') WHERE antrag_id = $1"
            }
        };
        dispatch!(self, Tx, t => {
            sqlx::query(sql).bind(antrag_id).execute(&mut **t).await?;
        });
        Ok(())
    }
}
