//! Single sign-on through the jobcenter's OpenID provider (issue #24): the
//! logins under way (state, PKCE verifier and nonce of each authorization
//! request, used once) and the provider's accounts, whose roles and
//! Dienststellen come from its claims at each login.
//!
//! Nothing here talks to the provider; `allegro_web::workbench::oidc` does.

use chrono::{DateTime, Duration, Utc};
use sqlx::FromRow;

use crate::users::{join_roles, Role, User, UserRow, USER_COLUMNS};
use crate::{Store, StoreError};

/// How long a login may stay at the provider before its answer is refused.
pub const LOGIN_VALID_FOR: Duration = Duration::minutes(10);

/// A login sent to the provider, as stored until its answer comes.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PendingLogin {
    /// SHA-256 (hex) of the `bridge_oidc` cookie of the browser that started it.
    pub browser_hash: String,
    pub pkce_verifier: String,
    pub nonce: String,
    pub created_at: DateTime<Utc>,
}

/// The provider's account to sign in, from its verified claims.
#[derive(Debug, Clone)]
pub struct ProviderAccount<'a> {
    /// `<issuer> <sub>`: who the account is, whatever its name.
    pub subject: &'a str,
    /// The name shown and audited (the configured claim, e.g.
    /// `preferred_username`).
    pub name: &'a str,
    pub roles: &'a [Role],
    pub dienststellen: &'a [String],
}

/// Why a provider's account could not be signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRefused {
    /// Its name belongs to another account (a local one, or another subject).
    NameTaken,
}

impl Store {
    /// Takes every role and Dienststelle from the provider's account with
    /// this subject (its groups no longer map) and ends its sessions.
    pub async fn revoke_provider_account(
        &self,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let name: Option<String> = dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "UPDATE users SET roles = '', dienststellen = '', updated_at = $1 \
                 WHERE oidc_subject = $2 RETURNING name",
            )
            .bind(now)
            .bind(subject)
            .fetch_optional(p)
            .await?
        });
        if let Some(name) = name {
            self.delete_sessions_of(&name).await?;
        }
        Ok(())
    }

    /// Keeps the ID token a session's sign-on brought (the logout's
    /// `id_token_hint`; it goes with the session).
    pub async fn set_session_id_token(
        &self,
        token_hash: &str,
        id_token: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query("UPDATE sessions SET id_token = $1 WHERE token_hash = $2")
                .bind(id_token)
                .bind(token_hash)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// The ID token of the session with this hash, if it was a sign-on.
    pub async fn session_id_token(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        let token: Option<Option<String>> = dispatch!(self, Store, p => {
            sqlx::query_scalar("SELECT id_token FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(p)
                .await?
        });
        Ok(token.flatten())
    }

    /// Stores a login sent to the provider; logins older than
    /// [`LOGIN_VALID_FOR`] go at the same time.
    pub async fn start_oidc_login(
        &self,
        state_hash: &str,
        login: &PendingLogin,
    ) -> Result<(), StoreError> {
        let stale = login.created_at - LOGIN_VALID_FOR;
        dispatch!(self, Store, p => {
            sqlx::query("DELETE FROM oidc_logins WHERE created_at < $1")
                .bind(stale)
                .execute(p)
                .await?;
            sqlx::query(
                "INSERT INTO oidc_logins (state_hash, browser_hash, pkce_verifier, nonce, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(state_hash)
            .bind(&login.browser_hash)
            .bind(&login.pkce_verifier)
            .bind(&login.nonce)
            .bind(login.created_at)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    /// Takes the login with this state hash out of the store: a second
    /// answer with the same state finds nothing.
    pub async fn take_oidc_login(
        &self,
        state_hash: &str,
    ) -> Result<Option<PendingLogin>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "DELETE FROM oidc_logins WHERE state_hash = $1 \
                 RETURNING browser_hash, pkce_verifier, nonce, created_at",
            )
            .bind(state_hash)
            .fetch_optional(p)
            .await
            .map_err(StoreError::from)
        })
    }

    /// The provider's account with this subject, created on its first
    /// login (its name then stays: the audit log's entries keep meaning the
    /// same person, and a name given up at the provider cannot pass to
    /// someone else), with roles and Dienststellen as the claims say now.
    pub async fn sign_in_provider_account(
        &self,
        account: &ProviderAccount<'_>,
        now: DateTime<Utc>,
    ) -> Result<Result<User, AccountRefused>, StoreError> {
        let roles = join_roles(account.roles);
        let dienststellen = account.dienststellen.join(",");
        let written = dispatch!(self, Store, p => {
            sqlx::query(
                "INSERT INTO users (name, password_hash, roles, dienststellen, oidc_subject, \
                 created_at, updated_at) VALUES ($1, '', $2, $3, $4, $5, $5) \
                 ON CONFLICT (oidc_subject) DO UPDATE SET \
                 roles = excluded.roles, dienststellen = excluded.dienststellen, \
                 updated_at = excluded.updated_at",
            )
            .bind(account.name)
            .bind(&roles)
            .bind(&dienststellen)
            .bind(account.subject)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(StoreError::from)
        });
        match written {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => return Ok(Err(AccountRefused::NameTaken)),
            Err(e) => return Err(e),
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.oidc_subject = $1");
        let row: UserRow = dispatch!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(account.subject).fetch_one(p).await?
        });
        Ok(Ok(User::from(row)))
    }
}
