//! Row counts and the open-case gauges, for `config check`, the metrics,
//! tests and the benchmark.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::{Store, StoreError};

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
}
