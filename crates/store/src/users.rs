//! Workbench accounts: who may log in, with which roles and for which
//! Dienststellen, and the counters behind the login slow-down and lockout
//! (per account in `users`, per client address in `login_failures`).
//!
//! Passwords arrive here already hashed (argon2id PHC strings); this module
//! never sees a password.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::{Store, StoreError};

/// What an account may do. Stored as its German name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Caseworker: sees and works the cases of its own Dienststellen.
    Sachbearbeitung,
    /// Sees every case, manages users, sees the dead letters.
    Administration,
    /// Management (and team leads): sees the Kennzahlen of its own
    /// Dienststellen, no application and no personal data.
    Leitung,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sachbearbeitung => "sachbearbeitung",
            Role::Administration => "administration",
            Role::Leitung => "leitung",
        }
    }

    /// Every role, for messages naming the allowed values.
    pub const ALL: [Role; 3] = [Role::Sachbearbeitung, Role::Administration, Role::Leitung];
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown role `{s}`; expected sachbearbeitung, administration or leitung")
            })
    }
}

/// How an account signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A local account: the argon2id PHC string of its password.
    Password(String),
    /// An account of the jobcenter's OpenID provider: `<issuer> <sub>`.
    /// It has no password; the provider's claims set its roles and
    /// Dienststellen at each login.
    Provider(String),
}

/// One account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub sign_in: SignIn,
    pub roles: Vec<Role>,
    /// The `dienststellennummer`s a caseworker works for.
    pub dienststellen: Vec<String>,
    pub disabled: bool,
    /// Failed logins since the last successful one (restarted at 1 when
    /// the last failure is older than [`FAILURE_MEMORY`]).
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

impl User {
    /// The password hash of a local account; `None` for a provider's.
    pub fn password_hash(&self) -> Option<&str> {
        match &self.sign_in {
            SignIn::Password(hash) => Some(hash),
            SignIn::Provider(_) => None,
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub dienststellen: Vec<String>,
}

#[derive(FromRow)]
pub(crate) struct UserRow {
    id: i64,
    name: String,
    password_hash: String,
    roles: String,
    dienststellen: String,
    disabled: bool,
    failed_logins: i32,
    locked_until: Option<DateTime<Utc>>,
    oidc_subject: Option<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User {
            id: r.id,
            name: r.name,
            sign_in: match r.oidc_subject {
                Some(subject) => SignIn::Provider(subject),
                None => SignIn::Password(r.password_hash),
            },
            // Unknown names (a later version's role) grant nothing.
            roles: split(&r.roles).filter_map(|s| s.parse().ok()).collect(),
            dienststellen: split(&r.dienststellen).map(str::to_string).collect(),
            disabled: r.disabled,
            failed_logins: r.failed_logins,
            locked_until: r.locked_until,
        }
    }
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn join_roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) const USER_COLUMNS: &str = "u.id, u.name, u.password_hash, u.roles, u.dienststellen, \
     u.disabled, u.failed_logins, u.locked_until, u.oidc_subject";

/// Whether an error is a unique-constraint violation (the name is taken).
pub fn is_unique_violation(e: &StoreError) -> bool {
    e.is_unique_violation()
}

impl Store {
    /// Creates an account; its id. A taken name is a unique violation
    /// ([`is_unique_violation`]).
    pub async fn create_user(&self, u: &NewUser, now: DateTime<Utc>) -> Result<i64, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "INSERT INTO users (name, password_hash, roles, dienststellen, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(u.name.as_str())
            .bind(u.password_hash.as_str())
            .bind(join_roles(&u.roles))
            .bind(u.dienststellen.join(","))
            .bind(now)
            .fetch_one(p)
            .await.map_err(StoreError::from)
        })
    }

    /// The account named `name`.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1");
        let row: Option<UserRow> = dispatch!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(p).await?
        });
        Ok(row.map(User::from))
    }

    /// Every account, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name");
        let rows: Vec<UserRow> = dispatch!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Disables or enables an account; a disabled one also loses its
    /// sessions. False when there is no such account.
    pub async fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = dispatch!(self, Store, p => {
            sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE name = $3")
                .bind(disabled)
                .bind(now)
                .bind(name)
                .execute(p)
                .await?
                .rows_affected()
        }) > 0;
        if changed && disabled {
            self.delete_sessions_of(name).await?;
        }
        Ok(changed)
    }

    /// Sets a new password hash, lifts a lockout and ends the account's
    /// sessions. False when there is no such local account (the provider's
    /// accounts have no password).
    pub async fn set_password_hash(
        &self,
        name: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = dispatch!(self, Store, p => {
            sqlx::query(
                "UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL, \
                 updated_at = $2 WHERE name = $3 AND oidc_subject IS NULL",
            )
            .bind(hash)
            .bind(now)
            .bind(name)
            .execute(p)
            .await?
            .rows_affected()
        }) > 0;
        if changed {
            self.delete_sessions_of(name).await?;
        }
        Ok(changed)
    }

    /// Replaces roles and Dienststellen. False when there is no such account.
    pub async fn set_user_roles(
        &self,
        name: &str,
        roles: &[Role],
        dienststellen: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, Store, p => {
            let r = sqlx::query(
                "UPDATE users SET roles = $1, dienststellen = $2, updated_at = $3 WHERE name = $4",
            )
            .bind(join_roles(roles))
            .bind(dienststellen.join(","))
            .bind(now)
            .bind(name)
            .execute(p)
            .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    /// Counts a failed login of an account; from `lock_after` failures on
    /// the account is locked until `now + lock_for`. A count whose last
    /// failure is older than [`FAILURE_MEMORY`] starts again at 1. Returns
    /// the count.
    pub async fn record_user_failure(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
        lock_after: i32,
        lock_for: chrono::Duration,
    ) -> Result<i32, StoreError> {
        let until = now + lock_for;
        let sql = format!(
            "UPDATE users SET failed_logins = {count}, \
             locked_until = CASE WHEN {count} >= $1 THEN $2 ELSE locked_until END, \
             last_failed_login_at = $3 WHERE id = $5 RETURNING failed_logins",
            count = counted("failed_logins", "last_failed_login_at"),
        );
        dispatch!(self, Store, p => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(lock_after)
                .bind(until)
                .bind(now)
                .bind(now - FAILURE_MEMORY)
                .bind(user_id)
                .fetch_one(p)
                .await.map_err(StoreError::from)
        })
    }

    /// Until when a name without an account is locked (see
    /// [`Store::record_name_failure`]); `name_sha256` is the name's SHA-256
    /// in hex.
    pub async fn name_locked_until(
        &self,
        name_sha256: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: Option<Option<DateTime<Utc>>> = dispatch!(self, Store, p => {
            sqlx::query_scalar("SELECT locked_until FROM name_failures WHERE name_sha256 = $1")
                .bind(name_sha256)
                .fetch_optional(p)
                .await
        })?;
        Ok(row.flatten())
    }

    /// A failed login under a name without an account, counted and locked
    /// exactly as [`Store::record_user_failure`] does for an account, so
    /// that a lock does not tell whether the name exists. Returns the
    /// name's failures so far.
    pub async fn record_name_failure(
        &self,
        name_sha256: &str,
        now: DateTime<Utc>,
        lock_after: i32,
        lock_for: chrono::Duration,
    ) -> Result<i32, StoreError> {
        let until = now + lock_for;
        let sql = format!(
            "INSERT INTO name_failures (name_sha256, failures, locked_until, last_failure_at) \
             VALUES ($5, 1, CASE WHEN 1 >= $1 THEN $2 END, $3) \
             ON CONFLICT (name_sha256) DO UPDATE SET failures = {count}, \
             locked_until = CASE WHEN {count} >= $1 THEN $2 \
                            ELSE name_failures.locked_until END, \
             last_failure_at = $3 RETURNING failures",
            count = counted("name_failures.failures", "name_failures.last_failure_at"),
        );
        dispatch!(self, Store, p => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(lock_after)
                .bind(until)
                .bind(now)
                .bind(now - FAILURE_MEMORY)
                .bind(name_sha256)
                .fetch_one(p)
                .await.map_err(StoreError::from)
        })
    }

    /// A successful login: the account's failure count and lock are cleared.
    pub async fn clear_user_failures(&self, user_id: i64) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(user_id)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Failed logins from `address` and when the last one was (none: 0).
    pub async fn address_failures(
        &self,
        address: &str,
    ) -> Result<(i32, Option<DateTime<Utc>>), StoreError> {
        let row: Option<(i32, DateTime<Utc>)> = dispatch!(self, Store, p => {
            sqlx::query_as("SELECT failures, last_failure_at FROM login_failures WHERE address = $1")
                .bind(address)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map_or((0, None), |(n, at)| (n, Some(at))))
    }

    /// Counts a failed login from `address`; a count older than `reset_after`
    /// starts again at 1. Returns the count.
    pub async fn record_address_failure(
        &self,
        address: &str,
        now: DateTime<Utc>,
        reset_after: chrono::Duration,
    ) -> Result<i32, StoreError> {
        let stale = now - reset_after;
        dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "INSERT INTO login_failures (address, failures, last_failure_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (address) DO UPDATE SET \
                 failures = CASE WHEN login_failures.last_failure_at < $3 THEN 1 \
                            ELSE login_failures.failures + 1 END, \
                 last_failure_at = $2 RETURNING failures",
            )
            .bind(address)
            .bind(now)
            .bind(stale)
            .fetch_one(p)
            .await.map_err(StoreError::from)
        })
    }

    /// A successful login from `address` clears its count.
    pub async fn clear_address_failures(&self, address: &str) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query("DELETE FROM login_failures WHERE address = $1")
                .bind(address)
                .execute(p)
                .await?;
            Ok(())
        })
    }
}

/// How long a failed login is remembered: an account's or unknown name's
/// count whose last failure is older starts again at 1 (so that a stray typo
/// now and then never adds up to a lock), and the retention purge deletes
/// the per-address and per-name rows after it.
pub const FAILURE_MEMORY: chrono::Duration = chrono::Duration::hours(24);

/// The new failure count in SQL: `count + 1`, or 1 when the last failure
/// (`last`) is unknown or before `$4`.
fn counted(count: &str, last: &str) -> String {
    format!("(CASE WHEN {last} IS NULL OR {last} < $4 THEN 1 ELSE {count} + 1 END)")
}
