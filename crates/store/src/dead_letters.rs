//! The dead-letter log: what the daemon published to the DLQ (never a
//! body), with the dedup key that keeps a redelivered message from being
//! published twice, and its replay marks.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgBindIterExt;
use sqlx::{FromRow, Postgres, Sqlite, Transaction};
use uuid::Uuid;

use crate::{Store, StoreError, Tx};

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

impl Store {
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
}

impl Tx {
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
