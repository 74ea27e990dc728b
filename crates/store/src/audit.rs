//! The audit log of the workbench: every view and change of a case and
//! every login, logout and failed login (who, when, what, which field, old
//! and new value). `old_value`/`new_value` may hold personal data and are
//! nulled by retention once a case is done; nothing here is ever logged.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Store, StoreError, Tx};

/// What happened (the `audit.action` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    View,
    Denied,
    Edit,
    Check,
    Release,
    Defer,
    Close,
    Login,
    LoginFailed,
    Logout,
    UserAdd,
    UserDisable,
    UserEnable,
    UserPasswd,
    UserRoles,
    RecheckRelease,
    /// Mitwirkung: a document requested (by letter), with its deadline.
    DocumentRequested,
    DeadlineExtended,
    DocumentReceived,
    DocumentWaived,
    /// A request letter written (`detail`: how many documents, the deadline).
    LetterCreated,
}

impl Action {
    /// Every action, in the order above.
    pub const ALL: [Action; 21] = [
        Action::View,
        Action::Denied,
        Action::Edit,
        Action::Check,
        Action::Release,
        Action::Defer,
        Action::Close,
        Action::Login,
        Action::LoginFailed,
        Action::Logout,
        Action::UserAdd,
        Action::UserDisable,
        Action::UserEnable,
        Action::UserPasswd,
        Action::UserRoles,
        Action::RecheckRelease,
        Action::DocumentRequested,
        Action::DeadlineExtended,
        Action::DocumentReceived,
        Action::DocumentWaived,
        Action::LetterCreated,
    ];

    /// The action whose stored name is `s`.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The stored name (`audit.action`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Denied => "denied",
            Action::Edit => "edit",
            Action::Check => "check",
            Action::Release => "release",
            Action::Defer => "defer",
            Action::Close => "close",
            Action::Login => "login",
            Action::LoginFailed => "login_failed",
            Action::Logout => "logout",
            Action::UserAdd => "user_add",
            Action::UserDisable => "user_disable",
            Action::UserEnable => "user_enable",
            Action::UserPasswd => "user_passwd",
            Action::UserRoles => "user_roles",
            Action::RecheckRelease => "recheck_release",
            Action::DocumentRequested => "document_requested",
            Action::DeadlineExtended => "deadline_extended",
            Action::DocumentReceived => "document_received",
            Action::DocumentWaived => "document_waived",
            Action::LetterCreated => "letter_created",
        }
    }
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    /// User name, or `system`.
    pub actor: &'a str,
    pub antrag_id: Option<Uuid>,
    pub action: Action,
    pub pointer: Option<&'a str>,
    pub old_value: Option<&'a str>,
    pub new_value: Option<&'a str>,
    /// No personal data (a reason code, an address, a count).
    pub detail: Option<&'a str>,
}

impl<'a> NewAudit<'a> {
    /// An entry with only actor, action and (optionally) the case.
    pub fn new(actor: &'a str, action: Action, antrag_id: Option<Uuid>) -> NewAudit<'a> {
        NewAudit {
            actor,
            antrag_id,
            action,
            pointer: None,
            old_value: None,
            new_value: None,
            detail: None,
        }
    }

    pub fn detail(mut self, detail: &'a str) -> NewAudit<'a> {
        self.detail = Some(detail);
        self
    }
}

/// An action as read back from the log.
///
/// The log is kept for years and may hold entries of a newer version of the
/// bridge (after a downgrade). Such an entry reads as [`LoggedAction::Unknown`]
/// (shown as "sonstige Aktion") instead of failing: an error here would make
/// every page that shows a case's trail fail with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoggedAction {
    Known(Action),
    /// A name this version does not know.
    Unknown,
}

impl LoggedAction {
    fn parse(s: &str) -> LoggedAction {
        Action::parse(s).map_or(LoggedAction::Unknown, LoggedAction::Known)
    }

    /// The stored name, or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoggedAction::Known(a) => a.as_str(),
            LoggedAction::Unknown => "unknown",
        }
    }
}

/// Compares with the stored name, e.g. `row.action == Action::View`.
impl PartialEq<Action> for LoggedAction {
    fn eq(&self, a: &Action) -> bool {
        *self == LoggedAction::Known(*a)
    }
}

/// Compares with the stored name, e.g. `row.action == "view"` in a test.
impl PartialEq<&str> for LoggedAction {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl std::fmt::Display for LoggedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored entry.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub antrag_id: Option<Uuid>,
    pub action: LoggedAction,
    pub pointer: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub detail: Option<String>,
}

/// An entry as stored.
#[derive(FromRow)]
struct Row {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    antrag_id: Option<Uuid>,
    action: String,
    pointer: Option<String>,
    old_value: Option<String>,
    new_value: Option<String>,
    detail: Option<String>,
}

impl From<Row> for AuditRow {
    fn from(r: Row) -> AuditRow {
        AuditRow {
            id: r.id,
            at: r.at,
            actor: r.actor,
            antrag_id: r.antrag_id,
            action: LoggedAction::parse(&r.action),
            pointer: r.pointer,
            old_value: r.old_value,
            new_value: r.new_value,
            detail: r.detail,
        }
    }
}

/// The insert of `$e` (a [`NewAudit`]) at `$at`, bound and ready to
/// execute on either database (a macro: each dialect binds its own types).
macro_rules! insert {
    ($e:expr, $at:expr) => {
        sqlx::query(
            "INSERT INTO audit (at, actor, antrag_id, action, pointer, old_value, \
             new_value, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($at)
        .bind($e.actor)
        .bind($e.antrag_id)
        .bind($e.action.as_str())
        .bind($e.pointer)
        .bind($e.old_value)
        .bind($e.new_value)
        .bind($e.detail)
    };
}

/// The columns of [`AuditRow`] (a macro, so that queries can `concat!` it).
macro_rules! select {
    () => {
        "SELECT id, at, actor, antrag_id, action, pointer, old_value, new_value, detail \
         FROM audit"
    };
}

impl Store {
    /// Appends an entry outside any transaction.
    pub async fn audit(&self, e: &NewAudit<'_>, at: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, Store, p => {
            insert!(e, at)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// The entries of one case, oldest first.
    pub async fn audit_of(&self, antrag_id: Uuid) -> Result<Vec<AuditRow>, StoreError> {
        let rows: Vec<Row> = dispatch!(self, Store, p => {
            sqlx::query_as(concat!(select!(), " WHERE antrag_id = $1 ORDER BY at, id"))
            .bind(antrag_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(AuditRow::from).collect())
    }

    /// The newest entries, newest first (`before` an id, for paging).
    pub async fn audit_recent(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows: Vec<Row> = dispatch!(self, Store, p => {
            sqlx::query_as(concat!(
                select!(),
                " WHERE id < $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(AuditRow::from).collect())
    }
}

impl Tx {
    /// Appends an entry inside this transaction (commits with the change).
    pub async fn audit(&mut self, e: &NewAudit<'_>, at: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, Tx, tx => {
            insert!(e, at)
                .execute(&mut **tx)
                .await?;
            Ok(())
        })
    }
}
