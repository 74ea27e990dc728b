//! [`Tx::insert_applications`]: the daemon's batch insert, in parts that
//! each do one thing — pick the first of each antragId in the batch, insert
//! the applications rows (one function per dialect), tell duplicates from
//! conflicts among those already known, then insert the new ones' records
//! ([`Tx::insert_records`]) and cases (one function per dialect).
//!
//! PostgreSQL takes one statement over arrays (UNNEST), so the SQL text and
//! its prepared statement are the same for every batch size; SQLite runs
//! in-process, where a multi-row VALUES is as good.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgBindIterExt;
use sqlx::{Postgres, QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use crate::cases::search_key;
use crate::{NewApplication, NewRecord, StoreError, Stored, Tx};

impl Tx {
    /// Inserts the applications with their record or case rows. Returns, in
    /// input order, whether each was new, a duplicate or a conflict. Several
    /// items with the same antragId in one call are handled in order (the
    /// first wins; the others are duplicates or conflicts of it).
    pub async fn insert_applications(
        &mut self,
        apps: &[NewApplication],
    ) -> Result<Vec<Stored>, StoreError> {
        let (mut result, mut unique) = first_of_each(apps);
        if apps.is_empty() {
            return Ok(result);
        }
        // Sorted by key, so concurrent daemons lock rows in the same order.
        unique.sort_by_key(|&i| apps[i].antrag_id);
        let t0 = std::time::Instant::now();
        let rows: Vec<&NewApplication> = unique.iter().map(|&i| &apps[i]).collect();
        let inserted = self.insert_application_rows(&rows).await?;
        tracing::trace!(
            us = t0.elapsed().as_micros() as u64,
            "applications inserted"
        );
        let known: Vec<usize> = unique
            .iter()
            .copied()
            .filter(|&i| !inserted.contains(&apps[i].antrag_id))
            .collect();
        self.classify_known(apps, &known, &mut result).await?;
        let new: Vec<&NewApplication> = rows
            .into_iter()
            .filter(|a| inserted.contains(&a.antrag_id))
            .collect();
        for &i in &unique {
            if inserted.contains(&apps[i].antrag_id) {
                result[i] = Stored::Inserted;
            }
        }
        tracing::trace!(us = t0.elapsed().as_micros() as u64, "duplicates checked");
        self.insert_outcomes(&new).await?;
        tracing::trace!(
            us = t0.elapsed().as_micros() as u64,
            "records and cases inserted"
        );
        Ok(result)
    }

    /// Inserts applications rows (an antragId already stored is skipped);
    /// the antragIds inserted.
    async fn insert_application_rows(
        &mut self,
        rows: &[&NewApplication],
    ) -> Result<HashSet<Uuid>, StoreError> {
        let ids = match self {
            Tx::Sqlite(tx) => insert_applications_sqlite(tx, rows).await?,
            Tx::Postgres(tx) => insert_applications_postgres(tx, rows).await?,
        };
        Ok(ids.into_iter().collect())
    }

    /// Sets `result[i]` for each of `known` (stored before this batch): the
    /// same body is a duplicate, another a conflict.
    async fn classify_known(
        &mut self,
        apps: &[NewApplication],
        known: &[usize],
        result: &mut [Stored],
    ) -> Result<(), StoreError> {
        if known.is_empty() {
            return Ok(());
        }
        let hashes: HashMap<Uuid, String> = dispatch!(self, Tx, tx => {
            let mut qb = QueryBuilder::new(
                "SELECT antrag_id, body_sha256 FROM applications WHERE antrag_id IN (",
            );
            let mut sep = qb.separated(", ");
            for &i in known {
                sep.push_bind(apps[i].antrag_id);
            }
            qb.push(")");
            let rows: Vec<(Uuid, String)> = qb.build_query_as().fetch_all(&mut **tx).await?;
            rows.into_iter().collect()
        });
        for &i in known {
            result[i] = match hashes.get(&apps[i].antrag_id) {
                Some(h) if *h == apps[i].body_sha256 => Stored::Duplicate,
                _ => Stored::Conflict,
            };
        }
        Ok(())
    }

    /// The record of each new accepted application, the case of each new
    /// rejected one.
    async fn insert_outcomes(&mut self, new: &[&NewApplication]) -> Result<(), StoreError> {
        let owed: Vec<crate::mitwirkung::OwedOf<'_>> = new.iter().map(|a| (*a).into()).collect();
        self.insert_owed(&owed).await?;
        let records: Vec<NewRecord<'_>> = new
            .iter()
            .filter_map(|a| {
                Some(NewRecord {
                    antrag_id: a.antrag_id,
                    xml: a.verdict.record()?,
                    created_at: a.created_at,
                })
            })
            .collect();
        self.insert_records(&records).await?;
        let cases: Vec<&NewApplication> = new
            .iter()
            .copied()
            .filter(|a| a.verdict.record().is_none())
            .collect();
        if cases.is_empty() {
            return Ok(());
        }
        match self {
            Tx::Sqlite(tx) => insert_cases_sqlite(tx, &cases).await,
            Tx::Postgres(tx) => insert_cases_postgres(tx, &cases).await,
        }
    }
}

/// All `Duplicate` for now, with the later items of an antragId seen
/// earlier in the batch set to duplicate or conflict of the first; and the
/// indexes of the first of each antragId.
fn first_of_each(apps: &[NewApplication]) -> (Vec<Stored>, Vec<usize>) {
    let mut result = vec![Stored::Duplicate; apps.len()];
    let mut first: HashMap<Uuid, usize> = HashMap::new();
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
    (result, unique)
}

/// SQLite: the applications rows as one multi-row VALUES.
async fn insert_applications_sqlite(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[&NewApplication],
) -> Result<Vec<Uuid>, StoreError> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO applications (antrag_id, body, body_sha256, outcome, mapping, \
         findings, dienststellennummer, message_id, created_at) ",
    );
    qb.push_values(rows.iter(), |mut b, a| {
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
    Ok(qb.build_query_scalar().fetch_all(&mut **tx).await?)
}

/// PostgreSQL: the applications rows as one statement over arrays.
async fn insert_applications_postgres(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[&NewApplication],
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
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
    .bind(
        rows.iter()
            .map(|a| a.verdict.outcome().as_str())
            .bind_iter(),
    )
    .bind(rows.iter().map(|a| a.mapping.as_str()).bind_iter())
    .bind(rows.iter().map(|a| a.findings_json.as_str()).bind_iter())
    .bind(
        rows.iter()
            .map(|a| a.dienststellennummer.as_deref())
            .bind_iter(),
    )
    .bind(rows.iter().map(|a| a.message_id.as_deref()).bind_iter())
    .bind(rows.iter().map(|a| a.created_at).bind_iter())
    .fetch_all(&mut **tx)
    .await?)
}

/// SQLite: the new cases (`open`) as one multi-row VALUES.
async fn insert_cases_sqlite(
    tx: &mut Transaction<'static, Sqlite>,
    cases: &[&NewApplication],
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO cases (antrag_id, dienststellennummer, status, created_at, updated_at, \
         applicant, applicant_key, error_rules, intake_rules) ",
    );
    qb.push_values(cases.iter(), |mut b, a| {
        b.push_bind(a.antrag_id)
            .push_bind(a.dienststellennummer.as_deref())
            .push_bind("open")
            .push_bind(a.created_at)
            .push_bind(a.created_at)
            .push_bind(a.applicant.as_deref())
            .push_bind(a.applicant.as_deref().map(search_key))
            .push_bind(a.error_rules.as_str())
            .push_bind(a.error_rules.as_str());
    });
    qb.build().execute(&mut **tx).await?;
    Ok(())
}

/// PostgreSQL: the new cases (`open`) as one statement over arrays.
async fn insert_cases_postgres(
    tx: &mut Transaction<'static, Postgres>,
    cases: &[&NewApplication],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cases (antrag_id, dienststellennummer, status, created_at, updated_at, \
         applicant, applicant_key, error_rules, intake_rules) \
         SELECT u.id, u.dst, 'open', u.at, u.at, u.who, u.key, u.rules, u.rules \
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], \
         $6::text[]) AS u(id, dst, at, who, key, rules)",
    )
    .bind(cases.iter().map(|a| a.antrag_id).bind_iter())
    .bind(
        cases
            .iter()
            .map(|a| a.dienststellennummer.as_deref())
            .bind_iter(),
    )
    .bind(cases.iter().map(|a| a.created_at).bind_iter())
    .bind(cases.iter().map(|a| a.applicant.as_deref()).bind_iter())
    .bind(
        cases
            .iter()
            .map(|a| a.applicant.as_deref().map(search_key))
            .bind_iter(),
    )
    .bind(cases.iter().map(|a| a.error_rules.as_str()).bind_iter())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
