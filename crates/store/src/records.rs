//! Import records and their outbox rows: stored with the application (or
//! the released case) in one transaction, then written as files by the
//! dispatcher ([`crate::outbox`]), which deletes the pending rows.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgBindIterExt;
use sqlx::{FromRow, Postgres, QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use crate::{Store, StoreError, Tx};

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

/// A record waiting in the outbox table for its file: an import record
/// (keyed by its antragId) or a follow-up record (`follow_up_records`,
/// keyed by its own id; see [`crate::mitwirkung`]).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PendingRecord {
    /// The outbox key (`outbox_pending.antrag_id`): the antragId of an
    /// import record, the id of a follow-up record. The sink's `message_id`.
    pub antrag_id: Uuid,
    pub file_name: String,
    pub xml: Vec<u8>,
}

impl Store {
    /// Up to `limit` records whose file is not yet written, oldest first.
    pub async fn pending_records(&self, limit: usize) -> Result<Vec<PendingRecord>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT o.antrag_id, coalesce(r.file_name, f.file_name) AS file_name, \
                 coalesce(r.xml, f.xml) AS xml FROM outbox_pending o \
                 LEFT JOIN records r ON r.antrag_id = o.antrag_id \
                 LEFT JOIN follow_up_records f ON f.id = o.antrag_id \
                 WHERE r.antrag_id IS NOT NULL OR f.id IS NOT NULL \
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
}

impl Tx {
    /// Inserts import records with their `outbox_pending` rows (the
    /// dispatcher writes the files and deletes the pending rows). The
    /// daemon's accepted applications and the workbench's released cases
    /// both come through here.
    pub async fn insert_records(&mut self, records: &[NewRecord<'_>]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Tx::Sqlite(tx) => insert_records_sqlite(tx, records).await,
            Tx::Postgres(tx) => insert_records_postgres(tx, records).await,
        }
    }
}

/// SQLite: the records and their pending rows, each as one multi-row VALUES.
async fn insert_records_sqlite(
    tx: &mut Transaction<'static, Sqlite>,
    records: &[NewRecord<'_>],
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new("INSERT INTO records (antrag_id, file_name, xml, created_at) ");
    qb.push_values(records.iter(), |mut b, r| {
        b.push_bind(r.antrag_id)
            .push_bind(record_file_name(r.antrag_id))
            .push_bind(r.xml)
            .push_bind(r.created_at);
    });
    qb.build().execute(&mut **tx).await?;
    let mut qb = QueryBuilder::new("INSERT INTO outbox_pending (antrag_id, created_at) ");
    qb.push_values(records.iter(), |mut b, r| {
        b.push_bind(r.antrag_id).push_bind(r.created_at);
    });
    qb.build().execute(&mut **tx).await?;
    Ok(())
}

/// PostgreSQL: the records and their pending rows, each as one statement
/// over arrays.
async fn insert_records_postgres(
    tx: &mut Transaction<'static, Postgres>,
    records: &[NewRecord<'_>],
) -> Result<(), StoreError> {
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
    Ok(())
}
