//! Retention: the personal data the store holds is removed once it is no
//! longer needed (`[retention]` in the settings; `allegro-bridge purge` and
//! the daemon's periodic task run [`Store::purge`]).
//!
//! What is purged, the first four kinds after their own number of days
//! (0 = keep), the last two with every purge:
//! - `application_payloads`: accepted applications whose record file is
//!   written (no `outbox_pending` row) and that have no case: the body, the
//!   record XML, the `message_id`, the findings' messages, and the content
//!   and file name of attachments that came with it through FIT-Connect.
//! - `closed_cases`: cases `released` or `closed` (counted from `closed_at`,
//!   else `updated_at`) whose record, if any, is written: the same for their
//!   application, and the case's `applicant` (and its `applicant_key`), `corrected_body`,
//!   `corrections`, findings' messages, `defer_reason`, `close_reason`, and
//!   the `old_value`/`new_value` of the case's audit rows.
//! - `dead_letters`: dead-letter log rows (deleted) whose message has been
//!   replayed, so it has left the DLQ. A row whose message is still in the
//!   DLQ stays (the DLQ probe holds the queue to the log, and a replay needs
//!   the row); such rows past their time are counted in a warning, because
//!   the message's body in the DLQ is personal data only a replay removes.
//! - `audit_values`: `old_value`/`new_value` of audit rows that belong to
//!   no open or deferred case.
//! - `sessions`: workbench sessions older than the longest a session may live.
//! - `login_failures`: failed-login counts per client address
//!   (`login_failures`, an IP address is personal data) and per name without
//!   an account (`name_failures`, the name's SHA-256) whose last failure is
//!   older than `users::FAILURE_MEMORY` (a day); always, whatever the
//!   settings say, as such a count is no longer used.
//!
//! What stays for the audit trail: the antragId, outcome, mapping, jobcenter
//! number, body hash (a redelivery must still be recognised as one),
//! timestamps, case status, and per finding its rule id, severity, document
//! type owed and pointer, the pointer only where the mapping's JSON Schema
//! defines it (form field names and array indexes, see
//! `MappingSet::schema_defines`; a key the sender made up is dropped).
//!
//! Never touched: an application whose record is not yet written to the
//! outbox (`outbox_pending`), a case that is `open` or `deferred`.
//!
//! A purged application keeps its row with an empty body and `purged_at`
//! set. Work goes in chunks of [`RetentionConfig::chunk`] rows, each in its
//! own transaction, so the daemon's writers are never held up for long; a
//! dry run counts with the same conditions and changes nothing. SQLite runs
//! with `secure_delete` (freed content is overwritten), and after a purge
//! its WAL is checkpointed and truncated; PostgreSQL tables are vacuumed, so
//! the old row versions are gone too.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use allegro_core::finding::Finding;

use crate::{Store, StoreError, Tx};

/// How long personal data is kept (`[retention]`), in days; 0 = keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days after receipt an accepted application's body and record XML are
    /// kept once its record file is written.
    pub payload_days: u32,
    /// Days a released or closed case keeps its personal data.
    pub closed_case_days: u32,
    /// Days a dead-letter log row is kept.
    pub dead_letter_days: u32,
    /// Days the old and new values of an audit row are kept (rows of open
    /// or deferred cases keep them).
    pub audit_value_days: u32,
    /// Minutes between the daemon's purges; 0 = the daemon does not purge
    /// (run `allegro-bridge purge` from a timer instead).
    pub interval_minutes: u32,
    /// Rows per transaction.
    pub chunk: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            payload_days: 90,
            closed_case_days: 180,
            dead_letter_days: 90,
            audit_value_days: 365,
            interval_minutes: 60,
            chunk: 500,
        }
    }
}

impl RetentionConfig {
    /// Problems with the values (empty: fine).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.chunk == 0 || self.chunk > 5000 {
            problems.push("retention.chunk must be in 1..=5000".into());
        }
        for (name, days) in [
            ("payload_days", self.payload_days),
            ("closed_case_days", self.closed_case_days),
            ("dead_letter_days", self.dead_letter_days),
            ("audit_value_days", self.audit_value_days),
        ] {
            if days > 36_500 {
                problems.push(format!("retention.{name} must be at most 36500 (0 = keep)"));
            }
        }
        problems
    }
}

/// One kind of purged data (the `kind` label of
/// `allegro_bridge_retention_deleted_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    ApplicationPayloads,
    ClosedCases,
    DeadLetters,
    AuditValues,
    Sessions,
    LoginFailures,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::ApplicationPayloads,
        Kind::ClosedCases,
        Kind::DeadLetters,
        Kind::AuditValues,
        Kind::Sessions,
        Kind::LoginFailures,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ApplicationPayloads => "application_payloads",
            Kind::ClosedCases => "closed_cases",
            Kind::DeadLetters => "dead_letters",
            Kind::AuditValues => "audit_values",
            Kind::Sessions => "sessions",
            Kind::LoginFailures => "login_failures",
        }
    }

    /// The tables a purge of this kind changes.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Kind::ApplicationPayloads => &["applications", "records", "attachments"],
            Kind::ClosedCases => &["applications", "records", "cases", "audit", "attachments"],
            Kind::DeadLetters => &["dead_letters"],
            Kind::AuditValues => &["audit"],
            Kind::Sessions => &["sessions"],
            Kind::LoginFailures => &["login_failures", "name_failures"],
        }
    }
}

/// What a purge did (or, dry, would do): rows per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub application_payloads: u64,
    pub closed_cases: u64,
    pub dead_letters: u64,
    pub audit_values: u64,
    pub sessions: u64,
    pub login_failures: u64,
}

impl PurgeReport {
    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::ApplicationPayloads => self.application_payloads,
            Kind::ClosedCases => self.closed_cases,
            Kind::DeadLetters => self.dead_letters,
            Kind::AuditValues => self.audit_values,
            Kind::Sessions => self.sessions,
            Kind::LoginFailures => self.login_failures,
        }
    }

    pub fn total(&self) -> u64 {
        Kind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// Whether the JSON Schema of a mapping (by name) defines a pointer; see
/// `allegro_core::mapping::MappingSet::schema_defines`.
pub type PointerCheck<'a> = &'a (dyn Fn(&str, &str) -> bool + Sync);

/// What to purge, as of when.
pub struct PurgeRequest<'a> {
    pub config: &'a RetentionConfig,
    pub now: DateTime<Utc>,
    /// Count only, change nothing.
    pub dry_run: bool,
    /// Keeps a finding's pointer only where the mapping's schema defines it.
    pub keep_pointer: PointerCheck<'a>,
    /// The longest a workbench session may live (older rows are deleted);
    /// `None`: sessions are left alone.
    pub session_max_age: Option<Duration>,
}

impl PurgeRequest<'_> {
    fn cutoff(&self, days: u32) -> Option<DateTime<Utc>> {
        (days > 0).then(|| self.now - Duration::days(i64::from(days)))
    }
}

/// The findings of a purged application: rule id, severity, document type
/// owed and the pointer where the schema defines it; no message (a message
/// may quote what was entered).
pub fn reduce_findings(json: &str, mapping: &str, keep_pointer: PointerCheck<'_>) -> String {
    let Ok(findings) = serde_json::from_str::<Vec<Finding>>(json) else {
        return "[]".into();
    };
    let reduced: Vec<Finding> = findings
        .into_iter()
        .map(|f| Finding {
            pointer: if keep_pointer(mapping, &f.pointer) {
                f.pointer
            } else {
                String::new()
            },
            message: String::new(),
            ..f
        })
        .collect();
    serde_json::to_string(&reduced).unwrap_or_else(|_| "[]".into())
}

/// Which dead-letter log rows a purge deletes: first seen before `$1`, and
/// replayed (the message has left the DLQ).
const DEAD_LETTER_DUE: &str = "first_seen < $1 AND replayed_at IS NOT NULL";

/// Dead-letter log rows past their time whose message is still in the DLQ.
const DEAD_LETTER_WAITING: &str = "first_seen < $1 AND replayed_at IS NULL";

/// Which applications a payload purge takes: accepted, no case, record
/// written, received before `$1`.
const PAYLOAD_WHERE: &str = "a.purged_at IS NULL AND a.outcome = 'accepted' AND a.created_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.antrag_id = a.antrag_id) \
     AND NOT EXISTS (SELECT 1 FROM outbox_pending o WHERE o.antrag_id = a.antrag_id)";

/// Which applications a closed-case purge takes: their case is done since
/// before `$1` and any record of it is written.
const CLOSED_WHERE: &str = "a.purged_at IS NULL AND EXISTS (SELECT 1 FROM cases c \
     WHERE c.antrag_id = a.antrag_id AND c.status IN ('released', 'closed') \
     AND coalesce(c.closed_at, c.updated_at) < $1) \
     AND NOT EXISTS (SELECT 1 FROM outbox_pending o WHERE o.antrag_id = a.antrag_id)";

/// Audit rows whose values may go: older than `$1`, not of an open or
/// deferred case, nor of one whose record is not yet written.
const AUDIT_WHERE: &str = "at < $1 AND (old_value IS NOT NULL OR new_value IS NOT NULL) \
     AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.antrag_id = audit.antrag_id \
     AND c.status IN ('open', 'deferred')) \
     AND NOT EXISTS (SELECT 1 FROM outbox_pending o WHERE o.antrag_id = audit.antrag_id)";

/// One application to purge, with its case's findings if it has a case.
#[derive(sqlx::FromRow)]
struct Victim {
    antrag_id: Uuid,
    mapping: Option<String>,
    findings: String,
    case_findings: Option<String>,
}

/// Mitwirkung of a purged application, in its transaction `$tx` (a macro:
/// each dialect's transaction is its own type): its letters (name,
/// address) are deleted, its FIT-Connect attachments lose their content and
/// file name; of its documents owed only what the figures need
/// stays (kind, state, dates, rule, place), the waiver's free text and the
/// file's hash and reference go; written follow-up records keep their row,
/// not their XML.
macro_rules! purge_mitwirkung {
    ($tx:expr, $antrag_id:expr) => {{
        let empty: &[u8] = &[];
        sqlx::query("DELETE FROM letters WHERE antrag_id = $1")
            .bind($antrag_id)
            .execute(&mut *$tx)
            .await?;
        // FIT-Connect attachments: the content goes, the row (kind, size,
        // hash) stays.
        sqlx::query("UPDATE attachments SET content = NULL, filename = NULL, description = NULL WHERE antrag_id = $1")
            .bind($antrag_id)
            .execute(&mut *$tx)
            .await?;
        sqlx::query(
            "UPDATE documents_owed SET waiver_reason = NULL, file_sha256 = NULL, \
             file_ref = NULL WHERE antrag_id = $1",
        )
        .bind($antrag_id)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(
            "UPDATE follow_up_records SET xml = $1 WHERE antrag_id = $2 AND NOT EXISTS \
             (SELECT 1 FROM outbox_pending o WHERE o.antrag_id = follow_up_records.id)",
        )
        .bind(empty)
        .bind($antrag_id)
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Store {
    /// Purges (or with `dry_run` counts) what the retention settings say is
    /// due at `now`. See the module documentation.
    pub async fn purge(&self, req: &PurgeRequest<'_>) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        if let Some(cutoff) = req.cutoff(req.config.payload_days) {
            let (apps, _) = self
                .purge_applications(req, PAYLOAD_WHERE, cutoff, false)
                .await?;
            report.application_payloads = apps;
        }
        if let Some(cutoff) = req.cutoff(req.config.closed_case_days) {
            let (cases, audit) = self.purge_closed_cases(req, cutoff).await?;
            report.closed_cases = cases;
            report.audit_values += audit;
        }
        if let Some(cutoff) = req.cutoff(req.config.dead_letter_days) {
            report.dead_letters = self.purge_dead_letters(req, cutoff).await?;
        }
        if let Some(cutoff) = req.cutoff(req.config.audit_value_days) {
            let closed = req.cutoff(req.config.closed_case_days);
            report.audit_values += self.purge_audit_values(req, cutoff, closed).await?;
        }
        if let Some(age) = req.session_max_age {
            report.sessions = self.purge_sessions(req, req.now - age).await?;
        }
        report.login_failures = self.purge_login_failures(req).await?;
        if !req.dry_run && report.total() > 0 {
            self.compact(&report).await?;
        }
        Ok(report)
    }

    async fn count_where(
        &self,
        table: &str,
        cond: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.count_where2(table, cond, cutoff, None).await
    }

    /// `COUNT(*)` of `table` where `cond`, with `$1` = `cutoff` and, if
    /// given, `$2` = `second`.
    async fn count_where2(
        &self,
        table: &str,
        cond: &str,
        cutoff: DateTime<Utc>,
        second: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {cond}");
        dispatch!(self, Store, p => {
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(cutoff);
            if let Some(second) = second {
                q = q.bind(second);
            }
            let n: i64 = q.fetch_one(p).await?;
            Ok(n as u64)
        })
    }

    async fn purge_closed_cases(
        &self,
        req: &PurgeRequest<'_>,
        cutoff: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        let audit_cond = format!(
            "(old_value IS NOT NULL OR new_value IS NOT NULL) AND antrag_id IN \
             (SELECT a.antrag_id FROM applications a WHERE {CLOSED_WHERE})"
        );
        // Counted before the cases are purged (which changes what matches).
        let audit = if req.dry_run {
            self.count_where("audit", &audit_cond, cutoff).await?
        } else {
            0
        };
        let (cases, nulled) = self
            .purge_applications(req, CLOSED_WHERE, cutoff, true)
            .await?;
        Ok((cases, audit + nulled))
    }

    /// Purges, chunk by chunk, the applications matching `cond` (with `$1`
    /// = `cutoff`); `with_case`: also their case and its audit values.
    /// Returns the applications and the audit rows purged.
    async fn purge_applications(
        &self,
        req: &PurgeRequest<'_>,
        cond: &str,
        cutoff: DateTime<Utc>,
        with_case: bool,
    ) -> Result<(u64, u64), StoreError> {
        if req.dry_run {
            let n = self.count_where("applications a", cond, cutoff).await?;
            return Ok((n, 0));
        }
        let select = format!(
            "SELECT a.antrag_id, a.mapping, a.findings, c.findings AS case_findings \
             FROM applications a LEFT JOIN cases c ON c.antrag_id = a.antrag_id \
             WHERE {cond} ORDER BY a.antrag_id LIMIT {}",
            req.config.chunk
        );
        let (mut total, mut audit) = (0, 0);
        loop {
            let (selected, n, a) = self
                .purge_chunk(req, (&select, cond), cutoff, with_case)
                .await?;
            total += n;
            audit += a;
            // A row that no longer matched is not selected again either.
            if selected < u64::from(req.config.chunk) || n == 0 {
                return Ok((total, audit));
            }
        }
    }

    /// One chunk in one transaction; returns how many applications were
    /// selected and purged, and how many audit rows.
    async fn purge_chunk(
        &self,
        req: &PurgeRequest<'_>,
        (select, cond): (&str, &str),
        cutoff: DateTime<Utc>,
        with_case: bool,
    ) -> Result<(u64, u64, u64), StoreError> {
        let empty: &[u8] = &[];
        let now = req.now;
        dispatch!(self.begin().await?, Tx, tx => {
            let mut tx = tx;
            let victims: Vec<Victim> = sqlx::query_as(sqlx::AssertSqlSafe(select.to_string()))
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
            // Each row is purged only if it still matches (the workbench may
            // have released a case since the select).
            let update = format!(
                "UPDATE applications AS a SET body = $1, findings = $2, message_id = NULL, \
                 purged_at = $3 WHERE a.antrag_id = $4 AND {}",
                cond.replace("$1", "$5")
            );
            let (mut purged, mut audit) = (0u64, 0u64);
            for v in &victims {
                let mapping = v.mapping.as_deref().unwrap_or_default();
                let findings = reduce_findings(&v.findings, mapping, req.keep_pointer);
                let n = sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(empty)
                    .bind(findings)
                    .bind(now)
                    .bind(v.antrag_id)
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    continue;
                }
                purged += 1;
                sqlx::query(
                    "UPDATE records SET xml = $1 WHERE antrag_id = $2 AND NOT EXISTS \
                     (SELECT 1 FROM outbox_pending o WHERE o.antrag_id = $3)",
                )
                .bind(empty)
                .bind(v.antrag_id)
                .bind(v.antrag_id)
                .execute(&mut *tx)
                .await?;
                purge_mitwirkung!(tx, v.antrag_id);
                if with_case {
                    let case_findings = v
                        .case_findings
                        .as_deref()
                        .map(|f| reduce_findings(f, mapping, req.keep_pointer));
                    sqlx::query(
                        "UPDATE cases SET applicant = NULL, applicant_key = NULL, corrected_body = NULL, \
                         corrections = '[]', findings = $1, defer_reason = NULL, \
                         close_reason = NULL WHERE antrag_id = $2 \
                         AND status IN ('released', 'closed')",
                    )
                    .bind(case_findings)
                    .bind(v.antrag_id)
                    .execute(&mut *tx)
                    .await?;
                    audit += sqlx::query(
                        "UPDATE audit SET old_value = NULL, new_value = NULL WHERE antrag_id = $1 \
                         AND (old_value IS NOT NULL OR new_value IS NOT NULL)",
                    )
                    .bind(v.antrag_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
            }
            tx.commit().await?;
            Ok((victims.len() as u64, purged, audit))
        })
    }

    async fn purge_dead_letters(
        &self,
        req: &PurgeRequest<'_>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let waiting = self
            .count_where("dead_letters", DEAD_LETTER_WAITING, cutoff)
            .await?;
        if waiting > 0 {
            tracing::warn!(
                dead_letters = waiting,
                "dead letters past their retention are still in the DLQ; their bodies are \
                 personal data: replay them once their cause is fixed (allegro-bridge dlq replay)"
            );
        }
        if req.dry_run {
            return self
                .count_where("dead_letters", DEAD_LETTER_DUE, cutoff)
                .await;
        }
        // The Kennzahlen count dead letters per month (one per message, not
        // those stored after a replay): what is deleted is tallied first.
        use crate::kennzahlen::DEAD_LETTER_NOT_STORED as NOT_STORED;
        match self {
            // One writer at a time: the tally and the delete see the same rows.
            Store::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let tally = format!(
                    "INSERT INTO dead_letters_purged (month, count) \
                     SELECT substr(d.first_seen, 1, 7), COUNT(DISTINCT d.dedup_key) \
                     FROM dead_letters d WHERE {DEAD_LETTER_DUE} AND {NOT_STORED} GROUP BY 1 \
                     ON CONFLICT (month) DO UPDATE SET count = dead_letters_purged.count + excluded.count"
                );
                sqlx::query(sqlx::AssertSqlSafe(tally))
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?;
                let delete = format!("DELETE FROM dead_letters WHERE {DEAD_LETTER_DUE}");
                let n = sqlx::query(sqlx::AssertSqlSafe(delete))
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(n)
            }
            // The rows the DELETE removed are the rows tallied, whatever
            // changes beside it (one statement).
            Store::Postgres(p) => {
                let sql = format!(
                    "WITH gone AS (DELETE FROM dead_letters d WHERE {DEAD_LETTER_DUE} \
                       RETURNING d.first_seen, d.dedup_key, d.antrag_id), \
                     tally AS (INSERT INTO dead_letters_purged (month, count) \
                       SELECT to_char(d.first_seen AT TIME ZONE 'UTC', 'YYYY-MM'), \
                              COUNT(DISTINCT d.dedup_key) \
                       FROM gone d WHERE {NOT_STORED} GROUP BY 1 \
                       ON CONFLICT (month) DO UPDATE \
                       SET count = dead_letters_purged.count + excluded.count) \
                     SELECT COUNT(*) FROM gone"
                );
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(cutoff)
                    .fetch_one(p)
                    .await?;
                Ok(n as u64)
            }
        }
    }

    async fn purge_sessions(
        &self,
        req: &PurgeRequest<'_>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.delete_chunked(req, "sessions", "token_hash", "created_at < $1", cutoff)
            .await
    }

    async fn purge_login_failures(&self, req: &PurgeRequest<'_>) -> Result<u64, StoreError> {
        let cutoff = req.now - crate::users::FAILURE_MEMORY;
        let addresses = self
            .delete_chunked(
                req,
                "login_failures",
                "address",
                "last_failure_at < $1",
                cutoff,
            )
            .await?;
        let names = self
            .delete_chunked(
                req,
                "name_failures",
                "name_sha256",
                "last_failure_at IS NULL OR last_failure_at < $1",
                cutoff,
            )
            .await?;
        Ok(addresses + names)
    }

    /// Deletes the rows of `table` matching `cond`, a chunk per statement.
    async fn delete_chunked(
        &self,
        req: &PurgeRequest<'_>,
        table: &str,
        key: &str,
        cond: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if req.dry_run {
            return self.count_where(table, cond, cutoff).await;
        }
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {cond} LIMIT {})",
            req.config.chunk
        );
        self.chunked(&sql, cutoff, req.config.chunk).await
    }

    /// `closed`: the cutoff of the closed-case purge, whose audit rows a
    /// dry run must not count twice (the real purge has nulled them by now).
    async fn purge_audit_values(
        &self,
        req: &PurgeRequest<'_>,
        cutoff: DateTime<Utc>,
        closed: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        if req.dry_run {
            let Some(closed) = closed else {
                return self.count_where("audit", AUDIT_WHERE, cutoff).await;
            };
            let cond = format!(
                "{AUDIT_WHERE} AND NOT (antrag_id IS NOT NULL AND antrag_id IN \
                 (SELECT a.antrag_id FROM applications a WHERE {}))",
                CLOSED_WHERE.replace("$1", "$2")
            );
            return self
                .count_where2("audit", &cond, cutoff, Some(closed))
                .await;
        }
        let sql = format!(
            "UPDATE audit SET old_value = NULL, new_value = NULL WHERE id IN \
             (SELECT id FROM audit WHERE {AUDIT_WHERE} LIMIT {})",
            req.config.chunk
        );
        self.chunked(&sql, cutoff, req.config.chunk).await
    }

    /// Runs `sql` (one chunk, `$1` = `cutoff`) until a run affects fewer
    /// than `chunk` rows; returns the rows affected.
    async fn chunked(
        &self,
        sql: &str,
        cutoff: DateTime<Utc>,
        chunk: u32,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = dispatch!(self, Store, p => {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .bind(cutoff)
                    .execute(p)
                    .await?
                    .rows_affected()
            });
            total += n;
            if n < u64::from(chunk) {
                return Ok(total);
            }
        }
    }

    /// After a purge: old row versions and freed pages hold what was purged.
    /// SQLite: checkpoint the WAL and truncate it (freed pages were zeroed
    /// by `secure_delete`); PostgreSQL: vacuum the tables the purge changed
    /// (a few aged-out login counts do not vacuum `records`).
    async fn compact(&self, report: &PurgeReport) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(p) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(p)
                    .await?;
            }
            Store::Postgres(p) => {
                let mut tables: Vec<&str> = Kind::ALL
                    .iter()
                    .filter(|k| report.get(**k) > 0)
                    .flat_map(|k| k.tables().iter().copied())
                    .collect();
                tables.sort_unstable();
                tables.dedup();
                for table in tables {
                    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM {table}")))
                        .execute(p)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduced_findings_keep_rule_severity_and_known_pointers_only() {
        let json = r#"[
            {"pointer":"/antragsteller/steuerId","severity":"error","rule":"R1",
             "message":"Die Steuer-ID 123 von Erika Muster ist falsch."},
            {"pointer":"/antragsteller/Erika","severity":"error","rule":"SCHEMA",
             "message":"Die Angabe „Erika“ ist nicht vorgesehen."},
            {"pointer":"/nachweise","severity":"info","rule":"N1","message":"m",
             "nachweis":"KONTOAUSZUEGE"}
        ]"#;
        let known = |mapping: &str, p: &str| mapping == "bg-ha-1.0" && !p.contains("Erika");
        let out = reduce_findings(json, "bg-ha-1.0", &known);
        assert!(!out.contains("Erika") && !out.contains("123"), "{out}");
        let f: Vec<Finding> = serde_json::from_str(&out).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[0].pointer.as_str(), f[0].rule.as_str()),
            ("/antragsteller/steuerId", "R1")
        );
        assert_eq!((f[1].pointer.as_str(), f[1].rule.as_str()), ("", "SCHEMA"));
        assert_eq!(f[2].nachweis.as_deref(), Some("KONTOAUSZUEGE"));
        assert!(f.iter().all(|f| f.message.is_empty()));
        // Another mapping's schema is not asked about this one's pointers.
        let other = reduce_findings(json, "bg-wba-1.0", &known);
        assert!(!other.contains("steuerId"), "{other}");
        // What cannot be read is not kept.
        assert_eq!(reduce_findings("not json Erika", "bg-ha-1.0", &known), "[]");
    }

    #[test]
    fn zero_days_keep_and_the_cutoff_is_counted_back_from_now() {
        let cfg = RetentionConfig {
            payload_days: 0,
            ..RetentionConfig::default()
        };
        let keep = |_: &str, _: &str| true;
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let req = PurgeRequest {
            config: &cfg,
            now,
            dry_run: true,
            keep_pointer: &keep,
            session_max_age: None,
        };
        assert_eq!(req.cutoff(cfg.payload_days), None);
        assert_eq!(req.cutoff(2), Some(now - Duration::days(2)));
        assert!(cfg.validate().is_empty());
        let bad = RetentionConfig {
            chunk: 0,
            dead_letter_days: 40_000,
            ..cfg
        };
        assert_eq!(bad.validate().len(), 2);
    }
}
