//! The durable store: applications, cases, the record outbox and the
//! dead-letter log, in SQLite (embedded default) or PostgreSQL.
//!
//! Both dialects run the same SQL through sqlx's run-time query API (no
//! compile-time macros, which would bind the crate to one database kind).
//! Each public operation is written once inside [`dispatch!`], which expands
//! it for both pool types so each expansion is type-checked against its own
//! driver.
//!
//! Architecture invariant: an applications row, its case or record row and the
//! dead-letter log rows of one batch commit together or not at all; a row is
//! never updated to a different body (same antragId + different body is a
//! conflict the caller dead-letters).

mod error;
pub mod outbox;
pub mod release;

pub use error::StoreError;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgBindIterExt, PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, Postgres, QueryBuilder, SqlSafeStr, Sqlite, Transaction};
use uuid::Uuid;

use allegro_core::pipeline::Outcome;

use serde::{Deserialize, Serialize};

/// The database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/file.db` (embedded default) or `postgres://user:pw@host/db`.
    pub url: String,
    /// File holding the database URL (overrides `url` when set).
    pub url_file: Option<std::path::PathBuf>,
    /// Pool size.
    pub max_connections: u32,
    /// Seconds to wait for a connection from the pool or the server.
    pub connect_timeout_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://data/allegro-bridge.db".into(),
            url_file: None,
            max_connections: 4,
            connect_timeout_secs: 5,
        }
    }
}

/// Migrations embedded in the binary, one folder per dialect.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "outbox_pending",
        include_str!("../migrations/sqlite/0002_outbox_pending.sql"),
    ),
    (
        3,
        "dead_letter_meta",
        include_str!("../migrations/sqlite/0003_dead_letter_meta.sql"),
    ),
    (
        4,
        "workbench",
        include_str!("../migrations/sqlite/0004_workbench.sql"),
    ),
    (
        5,
        "retention",
        include_str!("../migrations/sqlite/0005_retention.sql"),
    ),
    (
        6,
        "name_failures",
        include_str!("../migrations/sqlite/0006_name_failures.sql"),
    ),
    (
        7,
        "failure_memory",
        include_str!("../migrations/sqlite/0007_failure_memory.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "lz4",
        include_str!("../migrations/postgres/0002_lz4.sql"),
    ),
    (
        3,
        "inline",
        include_str!("../migrations/postgres/0003_inline.sql"),
    ),
    (
        4,
        "outbox_pending",
        include_str!("../migrations/postgres/0004_outbox_pending.sql"),
    ),
    (
        5,
        "dead_letter_meta",
        include_str!("../migrations/postgres/0005_dead_letter_meta.sql"),
    ),
    (
        6,
        "workbench",
        include_str!("../migrations/postgres/0006_workbench.sql"),
    ),
    (
        7,
        "retention",
        include_str!("../migrations/postgres/0007_retention.sql"),
    ),
    (
        8,
        "name_failures",
        include_str!("../migrations/postgres/0008_name_failures.sql"),
    ),
    (
        9,
        "failure_memory",
        include_str!("../migrations/postgres/0009_failure_memory.sql"),
    ),
];

fn migrator(list: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    (*d).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// A pooled connection to one of the two supported databases.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open write transaction.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Expands `$body` once per database kind with `$c` bound to the pool or
/// transaction of that kind.
macro_rules! dispatch {
    ($e:expr, $ty:ident, $c:ident => $body:expr) => {
        match $e {
            $ty::Sqlite($c) => $body,
            $ty::Postgres($c) => $body,
        }
    };
}

pub mod retention;
pub use retention::{PurgeReport, PurgeRequest, RetentionConfig};
// The workbench's parts of the store (after the macro, which they use).
pub mod audit;
pub mod cases;
pub mod sessions;
pub mod users;

/// One readable application to store.
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub antrag_id: Uuid,
    pub body: Vec<u8>,
    pub body_sha256: String,
    /// Accepted with its record, or rejected (a case).
    pub verdict: Verdict,
    /// The mapping it was evaluated under, e.g. `bg-ha-1.0`.
    pub mapping: String,
    pub findings_json: String,
    pub dienststellennummer: Option<String>,
    pub message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// For a case: the applicant's name for the search
    /// ([`cases::applicant_of`]); ignored for an accepted application.
    pub applicant: Option<String>,
    /// For a case: `,rule,...,` of its errors ([`cases::error_rules_of`]).
    pub error_rules: String,
}

/// What becomes of a readable application: a record for the outbox, or a
/// case for a caseworker. (An invalid delivery is never an application row.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The XML import record.
    Accepted(Vec<u8>),
    /// A case (Klärfall).
    Rejected,
}

impl Verdict {
    /// The outcome, whose name is the `applications.outcome` column value.
    pub fn outcome(&self) -> Outcome {
        match self {
            Verdict::Accepted(_) => Outcome::Accepted,
            Verdict::Rejected => Outcome::Rejected,
        }
    }

    /// The record of an accepted application.
    pub fn record(&self) -> Option<&[u8]> {
        match self {
            Verdict::Accepted(xml) => Some(xml),
            Verdict::Rejected => None,
        }
    }
}

/// What storing an application did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// New: the application and its record or case were inserted.
    Inserted,
    /// Known with the same body: nothing was written.
    Duplicate,
    /// Known with a different body: nothing was written; dead-letter it.
    Conflict,
}

/// One dead letter: logged here, published to the DLQ by the daemon. Its id
/// is assigned when it is logged ([`Tx::insert_dead_letters`]).
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    /// Identifies the message across redeliveries: body hash + message_id.
    pub dedup_key: String,
    pub antrag_id: Option<Uuid>,
    /// Machine reason code (`not_json`, `conflict`, `internal_error`, ...).
    pub reason: &'static str,
    pub detail: String,
    pub body_sha256: String,
    /// The body's size in bytes (the body itself is only in the DLQ).
    pub body_bytes: i64,
    pub first_seen: DateTime<Utc>,
}

/// The id of the `generation`-th dead letter of a dedup key.
pub fn dead_letter_id(dedup_key: &str, generation: i64) -> Uuid {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{dedup_key}#{generation}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// The outbox file name of a record: `<antragId>.xml`.
pub fn record_file_name(antrag_id: Uuid) -> String {
    format!("{antrag_id}.xml")
}

/// One import record to store with its outbox row ([`Tx::insert_records`]).
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub antrag_id: Uuid,
    pub xml: &'a [u8],
    pub created_at: DateTime<Utc>,
}

/// A record waiting in the outbox table for its file.
#[derive(Debug, Clone, FromRow)]
pub struct PendingRecord {
    pub antrag_id: Uuid,
    pub file_name: String,
    pub xml: Vec<u8>,
}

/// A stored application, for the re-check.
#[derive(Debug, Clone, FromRow)]
pub struct StoredApplication {
    pub antrag_id: Uuid,
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub outcome: String,
}

/// One application with what became of it (for tests, IT and the workbench).
#[derive(Debug, Clone, FromRow)]
pub struct ApplicationRow {
    pub antrag_id: Uuid,
    pub outcome: String,
    pub body_sha256: String,
    #[sqlx(rename = "findings")]
    pub findings_json: String,
    pub dienststellennummer: Option<String>,
    /// `open`/`released` when there is a case.
    #[sqlx(rename = "status")]
    pub case_status: Option<String>,
    /// The XML when there is a record.
    #[sqlx(rename = "xml")]
    pub record: Option<Vec<u8>>,
    pub record_written: bool,
}

/// One live dead-letter log row: everything `dlq list` and `dlq show`
/// print (no body, so no personal data).
#[derive(Debug, Clone, FromRow)]
pub struct DeadLetterRow {
    pub id: Uuid,
    pub antrag_id: Option<Uuid>,
    pub reason: String,
    pub detail: String,
    /// Body hash + message_id hash (see `allegro_daemon::deadletter::dedup_key`).
    pub dedup_key: String,
    pub body_sha256: String,
    /// `None` for rows logged before the column existed.
    pub body_bytes: Option<i64>,
    pub first_seen: DateTime<Utc>,
}

/// Row counts, for `config check`, tests and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromRow)]
pub struct Counts {
    pub applications: i64,
    pub cases: i64,
    pub records: i64,
    pub records_pending: i64,
    pub dead_letters: i64,
}

impl Store {
    /// Connects (creating the SQLite file and its folder if needed) and runs
    /// the migrations.
    pub async fn connect(cfg: &StoreConfig) -> anyhow::Result<Store> {
        let store = Store::connect_lazy(cfg)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Builds the pool without touching the database yet.
    pub fn connect_lazy(cfg: &StoreConfig) -> anyhow::Result<Store> {
        let timeout = Duration::from_secs(cfg.connect_timeout_secs.max(1));
        if cfg.url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(&cfg.url)
                .context("store.url is not a valid SQLite URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // Deleted and overwritten content is zeroed, not left in
                // free pages (retention removes personal data).
                .pragma("secure_delete", "ON");
            if let Some(parent) = opts.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).with_context(|| {
                        format!("cannot create database folder {}", parent.display())
                    })?;
                }
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(cfg.max_connections)
                .acquire_timeout(timeout)
                .connect_lazy_with(opts);
            Ok(Store::Sqlite(pool))
        } else {
            let opts = PgConnectOptions::from_str(&cfg.url)
                .context("store.url is not a valid PostgreSQL URL")?
                .application_name("allegro-bridge");
            let pool = PgPoolOptions::new()
                .max_connections(cfg.max_connections)
                .acquire_timeout(timeout)
                .connect_lazy_with(opts);
            Ok(Store::Postgres(pool))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies the embedded migrations of this dialect (idempotent; safe to
    /// run from several daemons at once, sqlx takes a lock).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.migrate_until(i64::MAX).await
    }

    /// Applies the embedded migrations up to and including `version` only
    /// (for tests that check how a later migration treats existing rows).
    #[doc(hidden)]
    pub async fn migrate_until(&self, version: i64) -> anyhow::Result<()> {
        let upto = |list: &[(i64, &'static str, &'static str)]| {
            let keep: Vec<_> = list.iter().copied().filter(|m| m.0 <= version).collect();
            migrator(&keep)
        };
        match self {
            Store::Sqlite(p) => upto(SQLITE_MIGRATIONS).run(p).await,
            Store::Postgres(p) => upto(POSTGRES_MIGRATIONS).run(p).await,
        }
        .context("database migration failed")
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite, so a
    /// read-then-write never fails half-way with BUSY).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Store::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Up to `limit` records whose file is not yet written, oldest first.
    pub async fn pending_records(&self, limit: usize) -> Result<Vec<PendingRecord>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT r.antrag_id, r.file_name, r.xml FROM outbox_pending o \
                 JOIN records r ON r.antrag_id = o.antrag_id \
                 ORDER BY o.created_at LIMIT $1",
            )
            .bind(limit as i64)
            .fetch_all(p)
            .await.map_err(StoreError::from)
        })
    }

    /// Marks records as written to the outbox directory: their pending
    /// rows are deleted (the record rows themselves are never changed).
    pub async fn mark_written(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(p) => {
                let mut qb = QueryBuilder::new("DELETE FROM outbox_pending WHERE antrag_id IN (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(p).await?;
            }
            Store::Postgres(p) => {
                sqlx::query("DELETE FROM outbox_pending WHERE antrag_id = ANY($1)")
                    .bind(ids)
                    .execute(p)
                    .await?;
            }
        }
        Ok(())
    }

    /// Frees a dead letter's dedup key before it is replayed, so that the
    /// replayed message may be dead-lettered again if it is still unreadable.
    pub async fn mark_replayed(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        dispatch!(self, Store, p => {
            let r = sqlx::query(
                "UPDATE dead_letters SET replayed_at = $1 WHERE id = $2 AND replayed_at IS NULL",
            )
            .bind(at)
            .bind(id)
            .execute(p)
            .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    /// Frees the live dedup key of a message that is about to be replayed and
    /// has no dead-letter id (e.g. dead-lettered by the broker's delivery limit).
    pub async fn mark_replayed_by_key(
        &self,
        dedup_key: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query(
                "UPDATE dead_letters SET replayed_at = $1 WHERE dedup_key = $2 AND replayed_at IS NULL",
            )
            .bind(at)
            .bind(dedup_key)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    /// Undoes [`Store::mark_replayed`] / [`Store::mark_replayed_by_key`] of
    /// time `at` when the replay's publish failed, so the dead letter stays
    /// listed. Does nothing when a new live row holds the key meanwhile.
    pub async fn unmark_replayed(
        &self,
        dedup_key: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query(
                "UPDATE dead_letters SET replayed_at = NULL \
                 WHERE dedup_key = $1 AND replayed_at = $2 AND NOT EXISTS \
                 (SELECT 1 FROM dead_letters l WHERE l.dedup_key = $1 AND l.replayed_at IS NULL)",
            )
            .bind(dedup_key)
            .bind(at)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    /// Stored applications with an open case, `after` an antragId (paging).
    pub async fn open_cases(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<StoredApplication>, StoreError> {
        dispatch!(self, Store, p => {
            let mut qb = QueryBuilder::new(
                "SELECT a.antrag_id, a.body, a.message_id, a.outcome FROM applications a \
                 JOIN cases c ON c.antrag_id = a.antrag_id WHERE c.status = 'open'",
            );
            if let Some(after) = after {
                qb.push(" AND a.antrag_id > ");
                qb.push_bind(after);
            }
            qb.push(" ORDER BY a.antrag_id LIMIT ");
            qb.push_bind(limit as i64);
            qb.build_query_as().fetch_all(p).await.map_err(StoreError::from)
        })
    }

    /// Every application with its case and record, ordered by antragId.
    pub async fn applications(&self) -> Result<Vec<ApplicationRow>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT a.antrag_id, a.outcome, a.body_sha256, a.findings, a.dienststellennummer, \
                 c.status, r.xml, (r.antrag_id IS NOT NULL AND o.antrag_id IS NULL) AS record_written \
                 FROM applications a \
                 LEFT JOIN cases c ON c.antrag_id = a.antrag_id \
                 LEFT JOIN records r ON r.antrag_id = a.antrag_id \
                 LEFT JOIN outbox_pending o ON o.antrag_id = a.antrag_id ORDER BY a.antrag_id",
            )
            .fetch_all(p)
            .await.map_err(StoreError::from)
        })
    }

    /// Every live (not replayed) dead-letter log row, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterRow>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT id, antrag_id, reason, detail, dedup_key, body_sha256, body_bytes, \
                 first_seen FROM dead_letters \
                 WHERE replayed_at IS NULL ORDER BY first_seen, id",
            )
            .fetch_all(p)
            .await.map_err(StoreError::from)
        })
    }

    /// The live dead-letter log rows whose dead-letter id or antragId is
    /// `id` (one antragId may have several, e.g. a conflict), oldest first.
    pub async fn dead_letters_for(&self, id: Uuid) -> Result<Vec<DeadLetterRow>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT id, antrag_id, reason, detail, dedup_key, body_sha256, body_bytes, \
                 first_seen FROM dead_letters \
                 WHERE (id = $1 OR antrag_id = $1) AND replayed_at IS NULL \
                 ORDER BY first_seen, id",
            )
            .bind(id)
            .fetch_all(p)
            .await.map_err(StoreError::from)
        })
    }

    /// Dead letters in the log that were not replayed (what the DLQ should
    /// hold, as far as the bridge published it).
    pub async fn open_dead_letters(&self) -> Result<i64, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NULL")
                .fetch_one(p)
                .await.map_err(StoreError::from)
        })
    }

    /// Cases open for work (`open` or `deferred`) and when the oldest of
    /// them was created (for the metrics).
    pub async fn open_case_stats(&self) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        dispatch!(self, Store, p => {
            let (n, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(created_at) FROM cases WHERE status IN ('open', 'deferred')",
            )
            .fetch_one(p)
            .await?;
            Ok((n, oldest))
        })
    }

    /// Row counts of every table.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT \
                   (SELECT COUNT(*) FROM applications) AS applications, \
                   (SELECT COUNT(*) FROM cases) AS cases, \
                   (SELECT COUNT(*) FROM records) AS records, \
                   (SELECT COUNT(*) FROM outbox_pending) AS records_pending, \
                   (SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NULL) AS dead_letters",
            )
            .fetch_one(p)
            .await.map_err(StoreError::from)
        })
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        dispatch!(self, Store, p => p.close().await)
    }
}

impl Tx {
    /// Inserts the applications with their record or case rows. Returns, in
    /// input order, whether each was new, a duplicate or a conflict. Several
    /// items with the same antragId in one call are handled in order (the
    /// first wins; the others are duplicates or conflicts of it).
    pub async fn insert_applications(
        &mut self,
        apps: &[NewApplication],
    ) -> Result<Vec<Stored>, StoreError> {
        let mut result = vec![Stored::Duplicate; apps.len()];
        if apps.is_empty() {
            return Ok(result);
        }
        // First occurrence of each antragId in this batch.
        let mut first: std::collections::HashMap<Uuid, usize> = Default::default();
        let mut unique = Vec::new();
        for (i, a) in apps.iter().enumerate() {
            if let Some(&j) = first.get(&a.antrag_id) {
                result[i] = if apps[j].body_sha256 == a.body_sha256 {
                    Stored::Duplicate
                } else {
                    Stored::Conflict
                };
            } else {
                first.insert(a.antrag_id, i);
                unique.push(i);
            }
        }
        // Sorted by key, so concurrent daemons lock rows in the same order.
        unique.sort_by_key(|&i| apps[i].antrag_id);

        let t0 = std::time::Instant::now();
        // PostgreSQL: one statement over arrays (UNNEST), so the SQL text and
        // its prepared statement are the same for every batch size. SQLite
        // runs in-process, where a multi-row VALUES is as good.
        let inserted: Vec<Uuid> =
            match self {
                Tx::Sqlite(tx) => {
                    let mut qb = QueryBuilder::new(
                "INSERT INTO applications (antrag_id, body, body_sha256, outcome, mapping, \
                 findings, dienststellennummer, message_id, created_at) ",
            );
                    qb.push_values(unique.iter().map(|&i| &apps[i]), |mut b, a| {
                        b.push_bind(a.antrag_id)
                            .push_bind(a.body.as_slice())
                            .push_bind(a.body_sha256.as_str())
                            .push_bind(a.verdict.outcome().as_str())
                            .push_bind(a.mapping.as_str())
                            .push_bind(a.findings_json.as_str())
                            .push_bind(a.dienststellennummer.as_deref())
                            .push_bind(a.message_id.as_deref())
                            .push_bind(a.created_at);
                    });
                    qb.push(" ON CONFLICT (antrag_id) DO NOTHING RETURNING antrag_id");
                    qb.build_query_scalar().fetch_all(&mut **tx).await?
                }
                Tx::Postgres(tx) => {
                    let rows: Vec<&NewApplication> = unique.iter().map(|&i| &apps[i]).collect();
                    sqlx::query_scalar(
                    "INSERT INTO applications (antrag_id, body, body_sha256, outcome, mapping, \
                     findings, dienststellennummer, message_id, created_at) \
                     SELECT * FROM UNNEST($1::uuid[], $2::bytea[], $3::text[], $4::text[], \
                     $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[]) \
                     ON CONFLICT (antrag_id) DO NOTHING RETURNING antrag_id",
                )
                // Borrowed, not cloned: bodies are encoded straight from the batch.
                .bind(rows.iter().map(|a| a.antrag_id).bind_iter())
                .bind(rows.iter().map(|a| a.body.as_slice()).bind_iter())
                .bind(rows.iter().map(|a| a.body_sha256.as_str()).bind_iter())
                .bind(rows.iter().map(|a| a.verdict.outcome().as_str()).bind_iter())
                .bind(rows.iter().map(|a| a.mapping.as_str()).bind_iter())
                .bind(rows.iter().map(|a| a.findings_json.as_str()).bind_iter())
                .bind(rows.iter().map(|a| a.dienststellennummer.as_deref()).bind_iter())
                .bind(rows.iter().map(|a| a.message_id.as_deref()).bind_iter())
                .bind(rows.iter().map(|a| a.created_at).bind_iter())
                .fetch_all(&mut **tx)
                .await?
                }
            };
        tracing::trace!(
            us = t0.elapsed().as_micros() as u64,
            "applications inserted"
        );
        let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();

        // Known before this batch: same body → duplicate, else conflict.
        let known: Vec<usize> = unique
            .iter()
            .copied()
            .filter(|&i| !inserted.contains(&apps[i].antrag_id))
            .collect();
        if !known.is_empty() {
            let hashes: std::collections::HashMap<Uuid, String> = dispatch!(self, Tx, tx => {
                let mut qb = QueryBuilder::new(
                    "SELECT antrag_id, body_sha256 FROM applications WHERE antrag_id IN (",
                );
                let mut sep = qb.separated(", ");
                for &i in &known {
                    sep.push_bind(apps[i].antrag_id);
                }
                qb.push(")");
                let rows: Vec<(Uuid, String)> = qb.build_query_as().fetch_all(&mut **tx).await?;
                rows.into_iter().collect()
            });
            for &i in &known {
                result[i] = match hashes.get(&apps[i].antrag_id) {
                    Some(h) if *h == apps[i].body_sha256 => Stored::Duplicate,
                    _ => Stored::Conflict,
                };
            }
        }

        let new: Vec<&NewApplication> = unique
            .iter()
            .filter(|&&i| inserted.contains(&apps[i].antrag_id))
            .map(|&i| &apps[i])
            .collect();
        for &i in &unique {
            if inserted.contains(&apps[i].antrag_id) {
                result[i] = Stored::Inserted;
            }
        }
        let records: Vec<&NewApplication> = new
            .iter()
            .copied()
            .filter(|a| a.verdict.record().is_some())
            .collect();
        let cases: Vec<&NewApplication> = new
            .iter()
            .copied()
            .filter(|a| a.verdict.record().is_none())
            .collect();
        tracing::trace!(us = t0.elapsed().as_micros() as u64, "duplicates checked");
        let new_records: Vec<NewRecord<'_>> = records
            .iter()
            .map(|a| NewRecord {
                antrag_id: a.antrag_id,
                xml: a.verdict.record().unwrap_or_default(),
                created_at: a.created_at,
            })
            .collect();
        self.insert_records(&new_records).await?;
        match self {
            Tx::Sqlite(tx) => {
                if !cases.is_empty() {
                    let mut qb = QueryBuilder::new(
                    "INSERT INTO cases (antrag_id, dienststellennummer, status, created_at, updated_at, \
                     applicant, error_rules) ",
                );
                    qb.push_values(cases.iter(), |mut b, a| {
                        b.push_bind(a.antrag_id)
                            .push_bind(a.dienststellennummer.as_deref())
                            .push_bind("open")
                            .push_bind(a.created_at)
                            .push_bind(a.created_at)
                            .push_bind(a.applicant.as_deref())
                            .push_bind(a.error_rules.as_str());
                    });
                    qb.build().execute(&mut **tx).await?;
                }
            }
            Tx::Postgres(tx) => {
                if !cases.is_empty() {
                    sqlx::query(
                        "INSERT INTO cases (antrag_id, dienststellennummer, status, created_at, updated_at, \
                         applicant, error_rules) \
                         SELECT u.id, u.dst, 'open', u.at, u.at, u.who, u.rules \
                         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[]) \
                         AS u(id, dst, at, who, rules)",
                    )
                    .bind(cases.iter().map(|a| a.antrag_id).bind_iter())
                    .bind(cases.iter().map(|a| a.dienststellennummer.as_deref()).bind_iter())
                    .bind(cases.iter().map(|a| a.created_at).bind_iter())
                    .bind(cases.iter().map(|a| a.applicant.as_deref()).bind_iter())
                    .bind(cases.iter().map(|a| a.error_rules.as_str()).bind_iter())
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        tracing::trace!(
            us = t0.elapsed().as_micros() as u64,
            "records and cases inserted"
        );
        Ok(result)
    }

    /// Inserts import records with their `outbox_pending` rows (the
    /// dispatcher writes the files and deletes the pending rows). The
    /// daemon's accepted applications and the workbench's released cases
    /// both come through here.
    pub async fn insert_records(&mut self, records: &[NewRecord<'_>]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Tx::Sqlite(tx) => {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO records (antrag_id, file_name, xml, created_at) ",
                );
                qb.push_values(records.iter(), |mut b, r| {
                    b.push_bind(r.antrag_id)
                        .push_bind(record_file_name(r.antrag_id))
                        .push_bind(r.xml)
                        .push_bind(r.created_at);
                });
                qb.build().execute(&mut **tx).await?;
                let mut qb =
                    QueryBuilder::new("INSERT INTO outbox_pending (antrag_id, created_at) ");
                qb.push_values(records.iter(), |mut b, r| {
                    b.push_bind(r.antrag_id).push_bind(r.created_at);
                });
                qb.build().execute(&mut **tx).await?;
            }
            Tx::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO records (antrag_id, file_name, xml, created_at) \
                     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::timestamptz[])",
                )
                .bind(records.iter().map(|r| r.antrag_id).bind_iter())
                .bind(
                    records
                        .iter()
                        .map(|r| record_file_name(r.antrag_id))
                        .bind_iter(),
                )
                .bind(records.iter().map(|r| r.xml).bind_iter())
                .bind(records.iter().map(|r| r.created_at).bind_iter())
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO outbox_pending (antrag_id, created_at) \
                     SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[])",
                )
                .bind(records.iter().map(|r| r.antrag_id).bind_iter())
                .bind(records.iter().map(|r| r.created_at).bind_iter())
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Logs dead letters. Each gets a deterministic id derived from its dedup
    /// key and how many dead letters that key had before (so a retry after a
    /// crash between publishing and committing reuses the same id, and a DLQ
    /// reader can drop the second copy). Returns, in input order, the id of
    /// each new one (to be published) and `None` where a live row with the
    /// same dedup key exists (already published: do not publish again).
    pub async fn insert_dead_letters(
        &mut self,
        letters: &[NewDeadLetter],
    ) -> Result<Vec<Option<Uuid>>, StoreError> {
        if letters.is_empty() {
            return Ok(vec![]);
        }
        match self {
            Tx::Sqlite(tx) => {
                let mut out = Vec::with_capacity(letters.len());
                for d in letters {
                    out.push(insert_dead_letter_sqlite(tx, d).await?);
                }
                Ok(out)
            }
            Tx::Postgres(tx) => insert_dead_letters_postgres(tx, letters).await,
        }
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        dispatch!(self, Tx, tx => tx.commit().await.map_err(StoreError::from))
    }
}

/// SQLite: one dead letter; its id when it is new.
async fn insert_dead_letter_sqlite(
    tx: &mut Transaction<'static, Sqlite>,
    d: &NewDeadLetter,
) -> Result<Option<Uuid>, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE dedup_key = $1")
        .bind(d.dedup_key.as_str())
        .fetch_one(&mut **tx)
        .await?;
    let id = dead_letter_id(&d.dedup_key, n);
    let inserted = sqlx::query(
        "INSERT INTO dead_letters (id, dedup_key, antrag_id, reason, detail, \
         body_sha256, body_bytes, first_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (dedup_key) WHERE replayed_at IS NULL DO NOTHING",
    )
    .bind(id)
    .bind(d.dedup_key.as_str())
    .bind(d.antrag_id)
    .bind(d.reason)
    .bind(d.detail.as_str())
    .bind(d.body_sha256.as_str())
    .bind(d.body_bytes)
    .bind(d.first_seen)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok((inserted > 0).then_some(id))
}

/// PostgreSQL: two statements for the whole batch. The same key twice in
/// one batch: only the first is inserted (and published).
async fn insert_dead_letters_postgres(
    tx: &mut Transaction<'static, Postgres>,
    letters: &[NewDeadLetter],
) -> Result<Vec<Option<Uuid>>, StoreError> {
    use std::collections::{HashMap, HashSet};
    let keys: Vec<&str> = letters.iter().map(|d| d.dedup_key.as_str()).collect();
    let counts: HashMap<String, i64> = sqlx::query_as(
        "SELECT dedup_key, COUNT(*) FROM dead_letters \
         WHERE dedup_key = ANY($1) GROUP BY dedup_key",
    )
    .bind(&keys)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let ids: Vec<Uuid> = letters
        .iter()
        .map(|d| dead_letter_id(&d.dedup_key, counts.get(&d.dedup_key).copied().unwrap_or(0)))
        .collect();
    let mut first = HashSet::new();
    let mut rows: Vec<usize> = (0..letters.len())
        .filter(|&i| first.insert(letters[i].dedup_key.as_str()))
        .collect();
    // Sorted by key, so concurrent transactions lock keys in one order.
    rows.sort_by(|&a, &b| letters[a].dedup_key.cmp(&letters[b].dedup_key));
    let inserted: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO dead_letters (id, dedup_key, antrag_id, reason, detail, body_sha256, \
         body_bytes, first_seen) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], \
         $4::text[], $5::text[], $6::text[], $7::int8[], $8::timestamptz[]) \
         ON CONFLICT (dedup_key) WHERE replayed_at IS NULL DO NOTHING RETURNING dedup_key",
    )
    .bind(rows.iter().map(|&i| ids[i]).bind_iter())
    .bind(
        rows.iter()
            .map(|&i| letters[i].dedup_key.as_str())
            .bind_iter(),
    )
    .bind(rows.iter().map(|&i| letters[i].antrag_id).bind_iter())
    .bind(rows.iter().map(|&i| letters[i].reason).bind_iter())
    .bind(rows.iter().map(|&i| letters[i].detail.as_str()).bind_iter())
    .bind(
        rows.iter()
            .map(|&i| letters[i].body_sha256.as_str())
            .bind_iter(),
    )
    .bind(rows.iter().map(|&i| letters[i].body_bytes).bind_iter())
    .bind(rows.iter().map(|&i| letters[i].first_seen).bind_iter())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let mut seen = HashSet::new();
    Ok(letters
        .iter()
        .zip(ids)
        .map(|(d, id)| {
            (inserted.contains(&d.dedup_key) && seen.insert(d.dedup_key.as_str())).then_some(id)
        })
        .collect())
}
