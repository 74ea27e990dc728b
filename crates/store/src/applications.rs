//! Applications as the daemon stores them: each readable one with its
//! verdict, and with it either its import record ([`crate::records`]) or
//! its case (Klärfall); a known antragId with the same body is a
//! duplicate, with another body a conflict.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, QueryBuilder};
use uuid::Uuid;

use allegro_core::pipeline::Outcome;

use crate::{Store, StoreError};

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
    /// For a case: the applicant's name as written, shown in the list and
    /// searched by its [`crate::cases::search_key`]; ignored for an
    /// accepted application.
    pub applicant: Option<String>,
    /// For a case: `,rule,...,` of its errors ([`crate::cases::error_rules_of`]).
    pub error_rules: String,
    /// The documents it owes (`documents_owed`, see [`crate::mitwirkung`]).
    pub owed: Vec<allegro_core::mitwirkung::OwedDocument>,
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

impl Store {
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
}
