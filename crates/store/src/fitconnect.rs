//! What the FIT-Connect subscriber keeps (migration `fitconnect`): one row
//! per submission taken from the Zustelldienst, which is also the outbox of
//! the answer owed to it, and the attachments it brought.
//!
//! A row's [`FcState`] goes `Published` (the data is in the intake queue;
//! the answer waits until the application is stored under the same body
//! hash, or dead-lettered) → `Answer` (the signed event is made and kept,
//! so every retry sends the same token) → `Done`, or `Refused` when the
//! Zustelldienst will not take the answer. Making the answer is one
//! conditional UPDATE, so two daemons cannot make two; both may send the
//! same kept token, the second gets 409. Attachments are kept per
//! submission and shown with the application only once it is accepted;
//! a reject deletes them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError, Tx};

/// Where a submission stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FcState {
    /// Handed to the intake queue, answer to be made with `tags` (JSON)
    /// once it is stored.
    Published { intake: Intake, tags: String },
    /// The event is made; `attempts` sends were tried.
    Answer {
        event: String,
        jti: Uuid,
        attempts: i32,
    },
    /// The Zustelldienst has the answer.
    Done,
    /// The Zustelldienst refused the answer (422): for the operator.
    Refused,
}

/// One submission's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcSubmission {
    pub submission_id: Uuid,
    pub case_id: Uuid,
    pub destination_id: Uuid,
    pub state: FcState,
}

/// A submission's ids.
#[derive(Debug, Clone, Copy)]
pub struct FcIds {
    pub submission_id: Uuid,
    pub case_id: Uuid,
    pub destination_id: Uuid,
}

/// An attachment to keep.
pub struct NewAttachment<'a> {
    pub attachment_id: Uuid,
    pub purpose: &'a str,
    pub mime_type: &'a str,
    pub filename: Option<&'a str>,
    pub description: Option<&'a str>,
    pub sha512: &'a str,
    pub content: &'a [u8],
}

/// A kept attachment, without its content.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttachmentInfo {
    pub attachment_id: Uuid,
    pub purpose: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub sha512: String,
    pub bytes: i64,
    /// Retention removed the content.
    pub purged: bool,
}

/// What a submission's data became in the intake: an application, or a
/// Nachreichung (a document handed in for one), with the `dedup_key` its
/// message would have as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub antrag_id: Uuid,
    pub nachreichung_id: Option<Uuid>,
    /// SHA-256 (hex) of the data as published: stored means stored with it.
    pub body_sha256: String,
    pub dead_letter_key: String,
}

/// What became of data handed to the intake queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeFate {
    /// Not yet seen.
    Pending,
    /// Stored (accepted or a case).
    Stored,
    /// Dead-lettered, with the reason code.
    DeadLettered(String),
}

type Row = (
    Uuid,
    Uuid,
    Uuid,
    Option<Uuid>,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<Uuid>,
    i32,
);

const COLUMNS: &str = "submission_id, case_id, destination_id, antrag_id, nachreichung_id, \
     body_sha256, dead_letter_key, state, tags, event, event_jti, attempts";

fn from_row(r: Row) -> Result<FcSubmission, StoreError> {
    let (
        submission_id,
        case_id,
        destination_id,
        antrag_id,
        nachreichung_id,
        sha,
        key,
        state,
        tags,
        event,
        jti,
        attempts,
    ) = r;
    let corrupt = || StoreError::Corrupt {
        table: "fitconnect_submissions",
        column: "state",
        key: format!("submissionId {submission_id}"),
        detail: format!("state {state:?} without its columns"),
    };
    let state = match state.as_str() {
        "published" => FcState::Published {
            intake: Intake {
                antrag_id: antrag_id.ok_or_else(corrupt)?,
                nachreichung_id,
                body_sha256: sha.ok_or_else(corrupt)?,
                dead_letter_key: key.ok_or_else(corrupt)?,
            },
            tags: tags.ok_or_else(corrupt)?,
        },
        "answer" => FcState::Answer {
            event: event.ok_or_else(corrupt)?,
            jti: jti.ok_or_else(corrupt)?,
            attempts,
        },
        "done" => FcState::Done,
        "refused" => FcState::Refused,
        _ => return Err(corrupt()),
    };
    Ok(FcSubmission {
        submission_id,
        case_id,
        destination_id,
        state,
    })
}

impl Store {
    /// The row of a submission, if it was taken before.
    pub async fn fc_submission(&self, id: Uuid) -> Result<Option<FcSubmission>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM fitconnect_submissions WHERE submission_id = $1");
        let row: Option<Row> = dispatch!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?
        });
        row.map(from_row).transpose()
    }

    /// The rows not done, oldest first.
    pub async fn fc_open(&self) -> Result<Vec<FcSubmission>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM fitconnect_submissions WHERE state IN ('published', 'answer') \
             ORDER BY received_at"
        );
        let rows: Vec<Row> = dispatch!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await?
        });
        rows.into_iter().map(from_row).collect()
    }

    /// Keeps a checked submission, whose data the broker has confirmed in
    /// the intake queue, and its attachments, in one transaction. `false` if it was taken
    /// already (by another daemon, or before a restart).
    pub async fn fc_received(
        &self,
        ids: FcIds,
        intake: &Intake,
        tags: &str,
        attachments: &[NewAttachment<'_>],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let new = dispatch!(&mut tx, Tx, t => {
            let n = sqlx::query(
                "INSERT INTO fitconnect_submissions (submission_id, case_id, destination_id, antrag_id, \
                 nachreichung_id, body_sha256, dead_letter_key, state, tags, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'published', $8, $9) \
                 ON CONFLICT (submission_id) DO NOTHING",
            )
            .bind(ids.submission_id)
            .bind(ids.case_id)
            .bind(ids.destination_id)
            .bind(intake.antrag_id)
            .bind(intake.nachreichung_id)
            .bind(&intake.body_sha256)
            .bind(&intake.dead_letter_key)
            .bind(tags)
            .bind(at)
            .execute(&mut **t)
            .await?
            .rows_affected();
            if n == 1 {
                for a in attachments {
                    sqlx::query(
                        "INSERT INTO attachments (antrag_id, attachment_id, submission_id, purpose, \
                         mime_type, filename, description, sha512, bytes, content, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT (submission_id, attachment_id) DO NOTHING",
                    )
                    .bind(intake.antrag_id)
                    .bind(a.attachment_id)
                    .bind(ids.submission_id)
                    .bind(a.purpose)
                    .bind(a.mime_type)
                    .bind(a.filename)
                    .bind(a.description)
                    .bind(a.sha512)
                    .bind(a.content.len() as i64)
                    .bind(a.content)
                    .bind(at)
                    .execute(&mut **t)
                    .await?;
                }
            }
            n == 1
        });
        tx.commit().await?;
        Ok(new)
    }

    /// Keeps a submission rejected before intake, with its event. `false`
    /// if it was taken already.
    pub async fn fc_rejected(
        &self,
        ids: FcIds,
        problem: &str,
        event: &str,
        jti: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = dispatch!(self, Store, p => {
            sqlx::query(
                "INSERT INTO fitconnect_submissions (submission_id, case_id, destination_id, state, \
                 answer, problem, event, event_jti, received_at, answered_at) \
                 VALUES ($1, $2, $3, 'answer', 'reject', $4, $5, $6, $7, $7) \
                 ON CONFLICT (submission_id) DO NOTHING",
            )
            .bind(ids.submission_id)
            .bind(ids.case_id)
            .bind(ids.destination_id)
            .bind(problem)
            .bind(event)
            .bind(jti)
            .bind(at)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// `Published` → `Answer` with the made event. `false` if another
    /// daemon took that step first.
    pub async fn fc_answer(
        &self,
        id: Uuid,
        answer: &str,
        problem: Option<&str>,
        event: &str,
        jti: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = dispatch!(&mut tx, Tx, t => {
            let n = sqlx::query(
                "UPDATE fitconnect_submissions SET state = 'answer', answer = $2, problem = $3, \
                 event = $4, event_jti = $5, answered_at = $6 \
                 WHERE submission_id = $1 AND state = 'published'",
            )
            .bind(id)
            .bind(answer)
            .bind(problem)
            .bind(event)
            .bind(jti)
            .bind(at)
            .execute(&mut **t)
            .await?
            .rows_affected();
            if n == 1 && answer == "reject" {
                // Not the jobcenter's: its files go with the refusal.
                sqlx::query("DELETE FROM attachments WHERE submission_id = $1")
                    .bind(id)
                    .execute(&mut **t)
                    .await?;
            }
            n
        });
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Counts a send about to be tried (before it is, so that after a crash
    /// the next try looks in the event log first).
    pub async fn fc_attempt(&self, id: Uuid) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query(
                "UPDATE fitconnect_submissions SET attempts = attempts + 1 WHERE submission_id = $1",
            )
            .bind(id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// `Answer` → `Refused`: the Zustelldienst will not take the answer.
    pub async fn fc_refused(&self, id: Uuid) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query(
                "UPDATE fitconnect_submissions SET state = 'refused' \
                 WHERE submission_id = $1 AND state = 'answer'",
            )
            .bind(id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// `Answer` → `Done`.
    pub async fn fc_done(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query(
                "UPDATE fitconnect_submissions SET state = 'done', sent_at = $2 \
                 WHERE submission_id = $1 AND state = 'answer'",
            )
            .bind(id)
            .bind(at)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// What became of data handed to the intake queue: stored (the
    /// application, or the Nachreichung under its id), dead-lettered (its
    /// message's `dedup_key` in the log, not replayed), or not yet seen.
    pub async fn intake_fate(&self, intake: &Intake) -> Result<IntakeFate, StoreError> {
        let stored: Option<i32> = dispatch!(self, Store, p => {
            match intake.nachreichung_id {
                Some(n) => sqlx::query_scalar(
                    "SELECT 1 FROM nachreichungen WHERE id = $1 AND body_sha256 = $2",
                )
                .bind(n),
                None => sqlx::query_scalar(
                    "SELECT 1 FROM applications WHERE antrag_id = $1 AND body_sha256 = $2",
                )
                .bind(intake.antrag_id),
            }
            .bind(&intake.body_sha256)
            .fetch_optional(p)
            .await?
        });
        if stored.is_some() {
            return Ok(IntakeFate::Stored);
        }
        let reason: Option<String> = dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "SELECT reason FROM dead_letters WHERE dedup_key = $1 AND replayed_at IS NULL \
                 ORDER BY first_seen LIMIT 1",
            )
            .bind(&intake.dead_letter_key)
            .fetch_optional(p)
            .await?
        });
        Ok(reason.map_or(IntakeFate::Pending, IntakeFate::DeadLettered))
    }

    /// The attachments of an application's accepted submissions, without
    /// their content.
    pub async fn attachments_of(&self, antrag_id: Uuid) -> Result<Vec<AttachmentInfo>, StoreError> {
        dispatch!(self, Store, p => {
            Ok(sqlx::query_as(
                "SELECT a.attachment_id, a.purpose, a.mime_type, a.filename, a.sha512, a.bytes, \
                 (a.content IS NULL) AS purged FROM attachments a \
                 JOIN fitconnect_submissions f ON f.submission_id = a.submission_id \
                 WHERE a.antrag_id = $1 AND f.answer = 'accept' \
                 ORDER BY a.created_at, a.attachment_id",
            )
            .bind(antrag_id)
            .fetch_all(p)
            .await?)
        })
    }

    /// An attachment's content, if it belongs to an accepted submission of
    /// the application and is not purged.
    pub async fn attachment_content(
        &self,
        antrag_id: Uuid,
        attachment_id: Uuid,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let c: Option<Option<Vec<u8>>> = dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "SELECT a.content FROM attachments a \
                 JOIN fitconnect_submissions f ON f.submission_id = a.submission_id \
                 WHERE a.antrag_id = $1 AND a.attachment_id = $2 AND f.answer = 'accept'",
            )
            .bind(antrag_id)
            .bind(attachment_id)
            .fetch_optional(p)
            .await?
        });
        Ok(c.flatten())
    }
}
