//! Server-side workbench sessions. The browser holds a random token in the
//! `bridge_session` cookie; the database holds only its SHA-256, the
//! account, the session's CSRF token and its two clocks (created, last seen)
//! for the absolute and the idle timeout.
//!
//! A session also keeps the case list's searches (`searches`): the text
//! typed into the search box under an opaque id that only this session can
//! resolve, deleted with the session (foreign key, `ON DELETE CASCADE`).

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::users::{User, UserRow, USER_COLUMNS};
use crate::{Store, StoreError};

/// Searches a session keeps (the oldest beyond go).
pub const SEARCHES_PER_SESSION: i64 = 50;

/// A live session with its account.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub user: User,
}

#[derive(FromRow)]
struct SessionRow {
    token_hash: String,
    csrf_token: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    #[sqlx(flatten)]
    user: UserRow,
}

impl Store {
    /// Stores a new session.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf_token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(now)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    /// The session with this token hash and its account, if it exists.
    /// (Timeouts and disabled accounts are the caller's to judge.)
    pub async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT s.token_hash, s.csrf_token, s.created_at, s.last_seen_at, {USER_COLUMNS} \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1"
        );
        let row: Option<SessionRow> = dispatch!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(p).await?
        });
        Ok(row.map(|r| Session {
            token_hash: r.token_hash,
            csrf_token: r.csrf_token,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            user: r.user.into(),
        }))
    }

    /// Marks the session as used now (the idle timeout starts again).
    pub async fn touch_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Ends one session (logout, timeout).
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Ends every session of an account (disabled, new password).
    pub async fn delete_sessions_of(&self, user_name: &str) -> Result<u64, StoreError> {
        dispatch!(self, Store, p => {
            let r = sqlx::query(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
            )
            .bind(user_name)
            .execute(p)
            .await?;
            Ok(r.rows_affected())
        })
    }

    /// Deletes sessions idle since before `idle_before` or created before
    /// `created_before`; how many.
    pub async fn delete_expired_sessions(
        &self,
        idle_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        dispatch!(self, Store, p => {
            let r = sqlx::query(
                "DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2",
            )
            .bind(idle_before)
            .bind(created_before)
            .execute(p)
            .await?;
            Ok(r.rows_affected())
        })
    }

    /// Keeps `text` as search `id` of the session `session_hash`; of the
    /// session's searches only the newest [`SEARCHES_PER_SESSION`] stay.
    pub async fn save_search(
        &self,
        session_hash: &str,
        id: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO searches (id, session_hash, text, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(session_hash)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM searches WHERE session_hash = $1 AND id NOT IN \
                 (SELECT id FROM searches WHERE session_hash = $1 \
                  ORDER BY created_at DESC, id LIMIT $2)",
            )
            .bind(session_hash)
            .bind(SEARCHES_PER_SESSION)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The text of search `id`, if the session `session_hash` saved it
    /// (another session's id is as unknown as a made-up one).
    pub async fn saved_search(
        &self,
        session_hash: &str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        dispatch!(self, Store, p => {
            Ok(sqlx::query_scalar(
                "SELECT text FROM searches WHERE id = $1 AND session_hash = $2",
            )
            .bind(id)
            .bind(session_hash)
            .fetch_optional(p)
            .await?)
        })
    }
}
