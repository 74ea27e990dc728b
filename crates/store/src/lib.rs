//! The durable store: applications, cases, the record outbox and the
//! dead-letter log, in SQLite (embedded default) or PostgreSQL.
//!
//! Both dialects run the same SQL through sqlx's run-time query API (no
//! compile-time macros, which would bind the crate to one database kind).
//! Each public operation is written once inside [`dispatch!`], which expands
//! it for both pool types so each expansion is type-checked against its own
//! driver.
//!
//! The parts, by concern: [`connect`](StoreConfig) and `migrate` (opening
//! the store), `applications` and `insert` (what the daemon stores, in one
//! transaction per batch), `records` (import records and their outbox rows),
//! `dead_letters` (the dead-letter log), `stats` (counts), `retention`, and
//! the workbench's `cases`, `audit`, `users` and `sessions`.
//!
//! Architecture invariant: an applications row, its case or record row and the
//! dead-letter log rows of one batch commit together or not at all; a row is
//! never updated to a different body (same antragId + different body is a
//! conflict the caller dead-letters).

pub use applications::{ApplicationRow, NewApplication, Stored, StoredApplication, Verdict};
pub use connect::{is_loopback, tls_file_problems, StoreConfig, StoreTransport};
pub use dead_letters::{dead_letter_id, DeadLetterRow, NewDeadLetter};
pub use error::StoreError;
pub use records::{record_file_name, NewRecord, PendingRecord};
pub use retention::{PurgeReport, PurgeRequest, RetentionConfig};
pub use stats::Counts;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Postgres, Sqlite, Transaction};

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

// The parts of the store, after the macro, which they use.
mod applications;
mod connect;
mod dead_letters;
mod error;
mod insert;
mod migrate;
pub mod outbox;
mod records;
pub mod release;
pub mod retention;
mod stats;
// The workbench's parts.
pub mod audit;
pub mod cases;
pub mod fitconnect;
pub mod kennzahlen;
pub mod mitwirkung;
pub mod oidc;
pub mod sessions;
pub mod users;

impl Store {
    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite, so a
    /// read-then-write never fails half-way with BUSY).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Store::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

impl Tx {
    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        dispatch!(self, Tx, tx => tx.commit().await.map_err(StoreError::from))
    }
}
