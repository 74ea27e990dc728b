//! Mitwirkung in the store: the documents each application owes
//! (`documents_owed`, inserted with the application), their changes by a
//! caseworker (optimistic locking, audited, refused by the core's state
//! machine where not allowed), the Nachreichung messages that deliver them
//! (`nachreichungen`, idempotent by their id), the request letters
//! (`letters`) and the follow-up records (*Nachweiseingang*) that tell
//! ALLEGRO of a document arriving after the import record was written
//! (`follow_up_records`, through the same outbox).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{FromRow, QueryBuilder};
use uuid::Uuid;

use allegro_core::mitwirkung::eingang::{self, Nachweiseingang};
use allegro_core::mitwirkung::nachreichung::Nachreichung;
use allegro_core::mitwirkung::state::{Change, DocState, Eingangsweg, Refused, StateCode};
use allegro_core::mitwirkung::OwedDocument;

use crate::audit::{Action, NewAudit};
use crate::cases::Scope;
use crate::{NewApplication, PendingRecord, Store, StoreError, Tx};

/// One document owed, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedRow {
    pub id: i64,
    pub antrag_id: Uuid,
    pub dienststelle: Option<String>,
    pub kind: String,
    /// `None`: the household.
    pub person_id: Option<String>,
    pub pointer: String,
    pub rule: String,
    pub state: DocState,
    pub requested_at: Option<DateTime<Utc>>,
    pub file_sha256: Option<String>,
    pub file_ref: Option<String>,
    /// Optimistic locking: a change names the version it was made on.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of `documents_owed` as read.
#[derive(FromRow)]
struct Row {
    id: i64,
    antrag_id: Uuid,
    dienststellennummer: Option<String>,
    kind: String,
    person_id: String,
    pointer: String,
    rule: String,
    state: String,
    deadline: Option<NaiveDate>,
    requested_at: Option<DateTime<Utc>>,
    received_on: Option<NaiveDate>,
    received_via: Option<String>,
    file_sha256: Option<String>,
    file_ref: Option<String>,
    waiver_reason: Option<String>,
    waived_by: Option<String>,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `SELECT` of the columns of [`Row`] from `documents_owed d` (a macro, so
/// that queries can `concat!` it).
macro_rules! select {
    () => {
        "SELECT d.id, d.antrag_id, d.dienststellennummer, d.kind, d.person_id, d.pointer, \
         d.rule, d.state, d.deadline, d.requested_at, d.received_on, d.received_via, \
         d.file_sha256, d.file_ref, d.waiver_reason, d.waived_by, d.version, d.created_at, \
         d.updated_at FROM documents_owed d"
    };
}

impl Row {
    fn decode(self) -> Result<OwedRow, StoreError> {
        let corrupt = |column: &'static str| StoreError::Corrupt {
            table: "documents_owed",
            column,
            key: format!("id {}", self.id),
            detail: "not a value this version writes".into(),
        };
        let state = match StateCode::parse(&self.state).ok_or_else(|| corrupt("state"))? {
            StateCode::Offen => DocState::Offen,
            StateCode::Angefordert => DocState::Angefordert {
                deadline: self.deadline.ok_or_else(|| corrupt("deadline"))?,
            },
            StateCode::Eingegangen => DocState::Eingegangen {
                on: self.received_on.ok_or_else(|| corrupt("received_on"))?,
                via: self
                    .received_via
                    .as_deref()
                    .and_then(Eingangsweg::parse)
                    .ok_or_else(|| corrupt("received_via"))?,
            },
            StateCode::Verzichtet => DocState::Verzichtet {
                reason: self.waiver_reason.clone().unwrap_or_default(),
                by: self.waived_by.clone().unwrap_or_default(),
            },
        };
        Ok(OwedRow {
            id: self.id,
            antrag_id: self.antrag_id,
            dienststelle: self.dienststellennummer,
            kind: self.kind,
            person_id: (!self.person_id.is_empty()).then_some(self.person_id),
            pointer: self.pointer,
            rule: self.rule,
            state,
            requested_at: self.requested_at,
            file_sha256: self.file_sha256,
            file_ref: self.file_ref,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The state filter of the Mitwirkung list; `Ueberfaellig` is a requested
/// document past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListState {
    Offen,
    Angefordert,
    Ueberfaellig,
    Eingegangen,
    Verzichtet,
}

impl ListState {
    pub const ALL: [ListState; 5] = [
        ListState::Offen,
        ListState::Angefordert,
        ListState::Ueberfaellig,
        ListState::Eingegangen,
        ListState::Verzichtet,
    ];

    /// The query-string code.
    pub const fn as_str(self) -> &'static str {
        match self {
            ListState::Offen => "offen",
            ListState::Angefordert => "angefordert",
            ListState::Ueberfaellig => "ueberfaellig",
            ListState::Eingegangen => "eingegangen",
            ListState::Verzichtet => "verzichtet",
        }
    }

    /// What a caseworker reads.
    pub const fn label(self) -> &'static str {
        match self {
            ListState::Offen => "offen",
            ListState::Angefordert => "angefordert (Frist läuft)",
            ListState::Ueberfaellig => "überfällig",
            ListState::Eingegangen => "eingegangen",
            ListState::Verzichtet => "verzichtet",
        }
    }

    pub fn parse(code: &str) -> Option<ListState> {
        ListState::ALL.into_iter().find(|s| s.as_str() == code)
    }
}

/// What the Mitwirkung list shows.
#[derive(Debug, Clone)]
pub struct OwedQuery {
    pub scope: Scope,
    pub kind: Option<String>,
    /// `None`: the documents still waited for (open or requested).
    pub state: Option<ListState>,
    /// Decides what is overdue.
    pub today: NaiveDate,
    pub offset: usize,
    pub limit: usize,
}

/// A caseworker's change of one document ([`Store::change_owed`]).
#[derive(Debug, Clone, Copy)]
pub struct OwedChange<'a> {
    pub id: i64,
    /// The version the form was shown with.
    pub version: i32,
    pub change: &'a Change,
    /// Who (the audit's actor).
    pub actor: &'a str,
    /// What they may see.
    pub scope: &'a Scope,
}

/// Why a caseworker's change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such document (or not in the caller's scope).
    #[error("no such document")]
    NotFound,
    /// Someone else changed it since the form was shown.
    #[error("changed meanwhile")]
    Stale,
    /// The state machine refuses it.
    #[error("refused: {0:?}")]
    Refused(Refused),
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> ChangeError {
        ChangeError::Store(e.into())
    }
}

/// What became of one Nachreichung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Matched and marked received; with the follow-up record for the
    /// outbox when the import record was already written.
    Matched {
        document_id: i64,
        follow_up: Option<PendingRecord>,
    },
    /// The same nachreichungId again, same body: nothing changed.
    Duplicate,
    /// The same nachreichungId with another body.
    Conflict,
    /// No application under that antragId.
    UnknownApplication,
    /// The application owes no document of that kind (for that person).
    NotOwed,
}

/// A Nachreichung with what the store needs besides it.
#[derive(Debug, Clone)]
pub struct NewNachreichung<'a> {
    pub nachreichung: &'a Nachreichung,
    pub body_sha256: &'a str,
}

/// A stored letter, without its bytes.
#[derive(Debug, Clone, FromRow)]
pub struct LetterRow {
    pub id: i64,
    pub antrag_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub deadline: NaiveDate,
}

/// An application as its page's head shows it.
#[derive(Debug, Clone, FromRow)]
pub struct ApplicationHead {
    pub antrag_id: Uuid,
    /// `accepted` or `rejected` (a case).
    pub outcome: String,
    pub mapping: Option<String>,
    pub dienststellennummer: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The case's status when there is a case.
    pub case_status: Option<String>,
}

/// Counts for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwedStats {
    /// (state code, kind) → count; `ueberfaellig` counted apart from
    /// `angefordert`.
    pub by_state_kind: Vec<(ListState, String, i64)>,
    /// When the oldest overdue request was made.
    pub oldest_overdue_request: Option<DateTime<Utc>>,
}

fn person_key(p: &Option<String>) -> &str {
    p.as_deref().unwrap_or("")
}

/// The documents one application owes, for [`Tx::insert_owed`].
#[derive(Debug, Clone, Copy)]
pub struct OwedOf<'a> {
    pub antrag_id: Uuid,
    pub dienststelle: Option<&'a str>,
    /// When the application was received.
    pub created_at: DateTime<Utc>,
    pub owed: &'a [OwedDocument],
}

impl<'a> From<&'a NewApplication> for OwedOf<'a> {
    fn from(a: &'a NewApplication) -> OwedOf<'a> {
        OwedOf {
            antrag_id: a.antrag_id,
            dienststelle: a.dienststellennummer.as_deref(),
            created_at: a.created_at,
            owed: &a.owed,
        }
    }
}

/// A stored application whose documents owed were never tracked (stored
/// before the bridge tracked them).
#[derive(Debug, Clone, FromRow)]
pub struct Untracked {
    pub antrag_id: Uuid,
    pub body: Vec<u8>,
    pub dienststellennummer: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Tx {
    /// Inserts documents owed (the daemon: with the new applications, in
    /// their transaction); one already there is skipped. Returns how many
    /// were inserted.
    pub async fn insert_owed(&mut self, apps: &[OwedOf<'_>]) -> Result<u64, StoreError> {
        let rows: Vec<(&OwedOf<'_>, &OwedDocument)> = apps
            .iter()
            .flat_map(|a| a.owed.iter().map(move |o| (a, o)))
            .collect();
        let mut inserted = 0;
        for chunk in rows.chunks(500) {
            inserted += dispatch!(self, Tx, tx => {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO documents_owed (antrag_id, dienststellennummer, kind, person_id, \
                     pointer, rule, created_at, updated_at) ",
                );
                qb.push_values(chunk.iter(), |mut b, (a, o)| {
                    b.push_bind(a.antrag_id)
                        .push_bind(a.dienststelle)
                        .push_bind(o.kind.as_str())
                        .push_bind(person_key(&o.person_id))
                        .push_bind(o.pointer.as_str())
                        .push_bind(o.rule.as_str())
                        .push_bind(a.created_at)
                        .push_bind(a.created_at);
                });
                qb.push(" ON CONFLICT (antrag_id, kind, person_id) DO NOTHING");
                qb.build().execute(&mut **tx).await?.rows_affected()
            });
        }
        Ok(inserted)
    }

    async fn owed_row(&mut self, id: i64) -> Result<Option<OwedRow>, StoreError> {
        let row: Option<Row> = dispatch!(self, Tx, tx => {
            sqlx::query_as(concat!(select!(), " WHERE d.id = $1"))
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?
        });
        row.map(Row::decode).transpose()
    }

    /// Writes `state` over the row if it still has `version`; false if not.
    async fn write_state(
        &mut self,
        id: i64,
        version: i32,
        state: &DocState,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (deadline, received_on, via, reason, by) = match state {
            DocState::Offen => (None, None, None, None, None),
            DocState::Angefordert { deadline } => (Some(*deadline), None, None, None, None),
            DocState::Eingegangen { on, via } => (None, Some(*on), Some(via.as_str()), None, None),
            DocState::Verzichtet { reason, by } => {
                (None, None, None, Some(reason.as_str()), Some(by.as_str()))
            }
        };
        // A request keeps when it was first made; a new deadline keeps it too.
        let n = dispatch!(self, Tx, tx => {
            sqlx::query(
                "UPDATE documents_owed SET state = $1, deadline = coalesce($2, deadline), \
                 received_on = $3, received_via = $4, waiver_reason = $5, waived_by = $6, \
                 requested_at = CASE WHEN $1 = 'angefordert' THEN coalesce(requested_at, $7) \
                 ELSE requested_at END, version = version + 1, updated_at = $7 \
                 WHERE id = $8 AND version = $9",
            )
            .bind(state.code().as_str())
            .bind(deadline)
            .bind(received_on)
            .bind(via)
            .bind(reason)
            .bind(by)
            .bind(now)
            .bind(id)
            .bind(version)
            .execute(&mut **tx)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Whether the import record of the application was written (a row in
    /// `records`): then a document arriving needs a follow-up record.
    async fn has_record(&mut self, antrag_id: Uuid) -> Result<bool, StoreError> {
        let n: i64 = dispatch!(self, Tx, tx => {
            sqlx::query_scalar("SELECT count(*) FROM records WHERE antrag_id = $1")
                .bind(antrag_id)
                .fetch_one(&mut **tx)
                .await?
        });
        Ok(n > 0)
    }

    /// The follow-up record of a received document, stored with its
    /// outbox row; `None` when no import record exists yet (the case is
    /// still open; its record will list the document as owed, and the
    /// release writes follow-ups for what arrived meanwhile).
    async fn follow_up(
        &mut self,
        row: &OwedRow,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let DocState::Eingegangen { on, via } = row.state else {
            return Ok(None);
        };
        if !self.has_record(row.antrag_id).await? {
            return Ok(None);
        }
        let id = follow_up_id(row.antrag_id, row.id);
        let xml = Nachweiseingang {
            id,
            antrag_id: row.antrag_id,
            kind: &row.kind,
            person_id: row.person_id.as_deref(),
            rule: &row.rule,
            pointer: &row.pointer,
            received_on: on,
            via,
            file_sha256: row.file_sha256.as_deref(),
            file_ref: row.file_ref.as_deref(),
        }
        .to_xml();
        let file_name = eingang::file_name(row.antrag_id, id);
        dispatch!(self, Tx, tx => {
            sqlx::query(
                "INSERT INTO follow_up_records (id, antrag_id, file_name, xml, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(row.antrag_id)
            .bind(&file_name)
            .bind(&xml)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO outbox_pending (antrag_id, created_at) VALUES ($1, $2) \
                 ON CONFLICT (antrag_id) DO NOTHING",
            )
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
        });
        Ok(Some(PendingRecord {
            antrag_id: id,
            file_name,
            xml,
        }))
    }

    /// Follow-up records for the documents of `antrag_id` that arrived
    /// before its import record was written (called when a case is
    /// released, after its record row is in).
    pub async fn follow_ups_for_received(
        &mut self,
        antrag_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let rows: Vec<Row> = dispatch!(self, Tx, tx => {
            sqlx::query_as(concat!(select!(), " WHERE d.antrag_id = $1 \
                 AND d.state = 'eingegangen' ORDER BY d.id"))
            .bind(antrag_id)
            .fetch_all(&mut **tx)
            .await?
        });
        let mut out = Vec::new();
        for r in rows {
            let row = r.decode()?;
            out.extend(self.follow_up(&row, now).await?);
        }
        Ok(out)
    }

    /// Matches each Nachreichung to a document owed and marks it received
    /// (in this transaction, audited as `system`), in order.
    pub async fn receive_nachreichungen(
        &mut self,
        list: &[NewNachreichung<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<Received>, StoreError> {
        let mut out = Vec::with_capacity(list.len());
        for n in list {
            out.push(self.receive_one(n, now).await?);
        }
        Ok(out)
    }

    async fn receive_one(
        &mut self,
        n: &NewNachreichung<'_>,
        now: DateTime<Utc>,
    ) -> Result<Received, StoreError> {
        let nr = n.nachreichung;
        let seen: Option<String> = dispatch!(self, Tx, tx => {
            sqlx::query_scalar("SELECT body_sha256 FROM nachreichungen WHERE id = $1")
                .bind(nr.id)
                .fetch_optional(&mut **tx)
                .await?
        });
        if let Some(h) = seen {
            return Ok(if h == n.body_sha256 {
                Received::Duplicate
            } else {
                Received::Conflict
            });
        }
        let known: i64 = dispatch!(self, Tx, tx => {
            sqlx::query_scalar("SELECT count(*) FROM applications WHERE antrag_id = $1")
                .bind(nr.antrag_id)
                .fetch_one(&mut **tx)
                .await?
        });
        if known == 0 {
            return Ok(Received::UnknownApplication);
        }
        // A caseworker may change the document between the read and the
        // write (PostgreSQL, read committed): then read it again.
        let mut tries = 0;
        let (doc, state, changed) = loop {
            let Some(doc) = self.match_owed(nr).await? else {
                return Ok(Received::NotOwed);
            };
            let state = received_state(&doc.state, nr.received_on());
            let changed = state != doc.state;
            if !changed || self.write_received(&doc, &state, nr, now).await? || tries == 3 {
                break (doc, state, changed);
            }
            tries += 1;
        };
        dispatch!(self, Tx, tx => {
            sqlx::query(
                "INSERT INTO nachreichungen (id, antrag_id, document_id, body_sha256, received_at, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(nr.id)
            .bind(nr.antrag_id)
            .bind(doc.id)
            .bind(n.body_sha256)
            .bind(nr.received_at.with_timezone(&Utc))
            .bind(now)
            .execute(&mut **tx)
            .await?;
        });
        let detail = format!(
            "{} ({})",
            doc.kind,
            if changed {
                "eingegangen"
            } else {
                "bereits eingegangen"
            }
        );
        let mut audit =
            NewAudit::new("system", Action::DocumentReceived, Some(doc.antrag_id)).detail(&detail);
        audit.pointer = Some(&doc.pointer);
        self.audit(&audit, now).await?;
        let follow_up = if changed {
            let row = OwedRow {
                state,
                file_sha256: nr.file_sha256.clone(),
                file_ref: nr.file_ref.clone(),
                ..doc.clone()
            };
            self.follow_up(&row, now).await?
        } else {
            None
        };
        Ok(Received::Matched {
            document_id: doc.id,
            follow_up,
        })
    }

    /// Marks a document received by a Nachreichung, with the file's hash
    /// and reference; false when it changed since it was read.
    async fn write_received(
        &mut self,
        doc: &OwedRow,
        state: &DocState,
        nr: &Nachreichung,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if !self.write_state(doc.id, doc.version, state, now).await? {
            return Ok(false);
        }
        dispatch!(self, Tx, tx => {
            sqlx::query("UPDATE documents_owed SET file_sha256 = $1, file_ref = $2 WHERE id = $3")
                .bind(nr.file_sha256.as_deref())
                .bind(nr.file_ref.as_deref())
                .bind(doc.id)
                .execute(&mut **tx)
                .await?;
        });
        Ok(true)
    }

    /// The document a Nachreichung delivers: of its kind for its person;
    /// else of its kind for the household; else, without a person, the
    /// only one of its kind.
    async fn match_owed(&mut self, nr: &Nachreichung) -> Result<Option<OwedRow>, StoreError> {
        let rows: Vec<Row> = dispatch!(self, Tx, tx => {
            sqlx::query_as(concat!(select!(), " WHERE d.antrag_id = $1 AND d.kind = $2 \
                 ORDER BY d.id"))
            .bind(nr.antrag_id)
            .bind(&nr.kind)
            .fetch_all(&mut **tx)
            .await?
        });
        let rows = rows
            .into_iter()
            .map(Row::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let pick = rows
            .iter()
            .find(|r| r.person_id == nr.person_id)
            .or_else(|| rows.iter().find(|r| r.person_id.is_none()))
            .or_else(|| (nr.person_id.is_none() && rows.len() == 1).then(|| &rows[0]));
        Ok(pick.cloned())
    }
}

impl Store {
    /// The documents an application owes, in the order found.
    pub async fn owed_of(&self, antrag_id: Uuid) -> Result<Vec<OwedRow>, StoreError> {
        let rows: Vec<Row> = dispatch!(self, Store, p => {
            sqlx::query_as(concat!(select!(), " WHERE d.antrag_id = $1 ORDER BY d.id"))
            .bind(antrag_id)
            .fetch_all(p)
            .await?
        });
        rows.into_iter().map(Row::decode).collect()
    }

    /// One document, if it is in `scope`.
    pub async fn owed_document(
        &self,
        id: i64,
        scope: &Scope,
    ) -> Result<Option<OwedRow>, StoreError> {
        let row: Option<Row> = dispatch!(self, Store, p => {
            sqlx::query_as(concat!(select!(), " WHERE d.id = $1"))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        let row = row.map(Row::decode).transpose()?;
        Ok(row.filter(|r| scope.covers(r.dienststelle.as_deref())))
    }

    /// A page of the Mitwirkung list (and whether there is more): overdue
    /// first, then by deadline, then the oldest.
    pub async fn owed_list(&self, q: &OwedQuery) -> Result<(Vec<OwedRow>, bool), StoreError> {
        let rows: Vec<Row> = dispatch!(self, Store, p => {
            let mut qb = QueryBuilder::new(concat!(select!(), " WHERE "));
            match &q.scope {
                Scope::All => { qb.push("1 = 1"); }
                Scope::Dienststellen(list) if list.is_empty() => { qb.push("1 = 0"); }
                Scope::Dienststellen(list) => {
                    qb.push("d.dienststellennummer IN (");
                    let mut sep = qb.separated(", ");
                    for d in list {
                        sep.push_bind(d.clone());
                    }
                    qb.push(")");
                }
            }
            if let Some(k) = &q.kind {
                qb.push(" AND d.kind = ").push_bind(k.clone());
            }
            match q.state {
                None => { qb.push(" AND d.state IN ('offen', 'angefordert')"); }
                Some(ListState::Ueberfaellig) => {
                    qb.push(" AND d.state = 'angefordert' AND d.deadline < ").push_bind(q.today);
                }
                Some(ListState::Angefordert) => {
                    qb.push(" AND d.state = 'angefordert' AND d.deadline >= ").push_bind(q.today);
                }
                Some(s) => { qb.push(" AND d.state = ").push_bind(s.as_str()); }
            }
            qb.push(" ORDER BY CASE WHEN d.state = 'angefordert' AND d.deadline < ")
                .push_bind(q.today)
                .push(" THEN 0 ELSE 1 END, CASE WHEN d.deadline IS NULL THEN 1 ELSE 0 END, \
                       d.deadline, d.created_at, d.id LIMIT ")
                .push_bind((q.limit + 1) as i64)
                .push(" OFFSET ")
                .push_bind(q.offset as i64);
            qb.build_query_as().fetch_all(p).await?
        });
        let mut rows = rows
            .into_iter()
            .map(Row::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let more = rows.len() > q.limit;
        rows.truncate(q.limit);
        Ok((rows, more))
    }

    /// A caseworker's change of one document: refused when out of scope,
    /// changed meanwhile or not allowed now; audited; a document received
    /// after the import record gets its follow-up record (returned for the
    /// outbox).
    pub async fn change_owed(
        &self,
        c: &OwedChange<'_>,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingRecord>, ChangeError> {
        let OwedChange {
            id,
            version,
            change,
            actor,
            scope,
        } = *c;
        let mut tx = self.begin().await?;
        let doc = tx.owed_row(id).await?;
        let doc = doc
            .filter(|d| scope.covers(d.dienststelle.as_deref()))
            .ok_or(ChangeError::NotFound)?;
        if doc.version != version {
            return Err(ChangeError::Stale);
        }
        let state = doc
            .state
            .apply(change, today)
            .map_err(ChangeError::Refused)?;
        if !tx.write_state(id, version, &state, now).await? {
            return Err(ChangeError::Stale);
        }
        let (action, detail) = audit_of_change(change, &doc.kind);
        let mut audit = NewAudit::new(actor, action, Some(doc.antrag_id)).detail(&detail);
        audit.pointer = Some(&doc.pointer);
        if let Change::Verzichten { reason, .. } = change {
            // Free text (may name a person): nulled by retention like every value.
            audit.new_value = Some(reason.trim());
        }
        tx.audit(&audit, now).await?;
        let follow_up = tx.follow_up(&OwedRow { state, ..doc }, now).await?;
        tx.commit().await?;
        Ok(follow_up)
    }

    /// Stores a request letter and marks the documents it asks for as
    /// requested with its deadline (open ones; requested ones get the new
    /// deadline if later), in one transaction, audited.
    pub async fn insert_letter(
        &self,
        antrag_id: Uuid,
        documents: &[i64],
        deadline: NaiveDate,
        pdf: &[u8],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let id: i64 = dispatch!(&mut tx, Tx, t => {
            sqlx::query_scalar(
                "INSERT INTO letters (antrag_id, created_at, created_by, deadline, pdf) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(antrag_id)
            .bind(now)
            .bind(actor)
            .bind(deadline)
            .bind(pdf)
            .fetch_one(&mut **t)
            .await?
        });
        for &doc in documents {
            let Some(row) = tx.owed_row(doc).await? else {
                continue;
            };
            let request = Change::Anfordern { deadline };
            let Ok(state) = row.state.apply(&request, now.date_naive()) else {
                continue;
            };
            // Changed meanwhile (in the same instant): the letter asks for
            // it, its state stays what the other change made it.
            if tx.write_state(doc, row.version, &state, now).await? {
                let detail = format!("{} (Frist {})", row.kind, deadline.format("%d.%m.%Y"));
                let mut audit = NewAudit::new(actor, Action::DocumentRequested, Some(antrag_id))
                    .detail(&detail);
                audit.pointer = Some(&row.pointer);
                tx.audit(&audit, now).await?;
            }
        }
        let detail = format!(
            "{} Nachweis(e), Frist {}",
            documents.len(),
            deadline.format("%d.%m.%Y")
        );
        let letter = NewAudit::new(actor, Action::LetterCreated, Some(antrag_id)).detail(&detail);
        tx.audit(&letter, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The application as it stands now (a case's corrected body, else the
    /// body received) with its Dienststelle; `None` when unknown or purged.
    pub async fn current_application(
        &self,
        antrag_id: Uuid,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT coalesce(c.corrected_body, a.body), a.dienststellennummer \
                 FROM applications a LEFT JOIN cases c ON c.antrag_id = a.antrag_id \
                 WHERE a.antrag_id = $1 AND a.purged_at IS NULL",
            )
            .bind(antrag_id)
            .fetch_optional(p)
            .await
            .map_err(StoreError::from)
        })
    }

    /// What the workbench's application page shows at its top; `None` when
    /// unknown or purged.
    pub async fn application_head(
        &self,
        antrag_id: Uuid,
    ) -> Result<Option<ApplicationHead>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT a.antrag_id, a.outcome, a.mapping, a.dienststellennummer, a.created_at, \
                 c.status AS case_status FROM applications a \
                 LEFT JOIN cases c ON c.antrag_id = a.antrag_id \
                 WHERE a.antrag_id = $1 AND a.purged_at IS NULL",
            )
            .bind(antrag_id)
            .fetch_optional(p)
            .await
            .map_err(StoreError::from)
        })
    }

    /// The follow-up records of an application still waiting for their file.
    pub async fn pending_follow_ups(
        &self,
        antrag_id: Uuid,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT f.id AS antrag_id, f.file_name, f.xml FROM follow_up_records f \
                 JOIN outbox_pending o ON o.antrag_id = f.id WHERE f.antrag_id = $1 \
                 ORDER BY f.created_at, f.id",
            )
            .bind(antrag_id)
            .fetch_all(p)
            .await
            .map_err(StoreError::from)
        })
    }

    /// Stored applications (not purged) that have no documents owed yet,
    /// `after` an antragId (paging): what `mitwirkung nachtragen` derives
    /// them for. An application that owes none is listed again each run.
    pub async fn untracked_applications(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Untracked>, StoreError> {
        dispatch!(self, Store, p => {
            let mut qb = QueryBuilder::new(
                "SELECT a.antrag_id, a.body, a.dienststellennummer, a.created_at FROM applications a \
                 WHERE a.purged_at IS NULL AND NOT EXISTS \
                 (SELECT 1 FROM documents_owed d WHERE d.antrag_id = a.antrag_id)",
            );
            if let Some(after) = after {
                qb.push(" AND a.antrag_id > ").push_bind(after);
            }
            qb.push(" ORDER BY a.antrag_id LIMIT ").push_bind(limit as i64);
            qb.build_query_as().fetch_all(p).await.map_err(StoreError::from)
        })
    }

    /// The letters of an application, newest first.
    pub async fn letters_of(&self, antrag_id: Uuid) -> Result<Vec<LetterRow>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT id, antrag_id, created_at, created_by, deadline FROM letters \
                 WHERE antrag_id = $1 ORDER BY created_at DESC, id DESC",
            )
            .bind(antrag_id)
            .fetch_all(p)
            .await
            .map_err(StoreError::from)
        })
    }

    /// One letter's PDF with the application it belongs to.
    pub async fn letter_pdf(&self, id: i64) -> Result<Option<(Uuid, Vec<u8>)>, StoreError> {
        dispatch!(self, Store, p => {
            sqlx::query_as("SELECT antrag_id, pdf FROM letters WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(StoreError::from)
        })
    }

    /// The applications in `scope` with open documents (not yet
    /// requested): the letters due today.
    pub async fn letters_due(&self, scope: &Scope) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<(Uuid, Option<String>)> = dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT DISTINCT d.antrag_id, d.dienststellennummer FROM documents_owed d \
                 JOIN applications a ON a.antrag_id = d.antrag_id \
                 WHERE d.state = 'offen' AND a.purged_at IS NULL ORDER BY d.antrag_id",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter(|(_, d)| scope.covers(d.as_deref()))
            .map(|(id, _)| id)
            .collect())
    }

    /// Documents by state and kind, and the oldest overdue request.
    pub async fn owed_stats(&self, today: NaiveDate) -> Result<OwedStats, StoreError> {
        let rows: Vec<(String, String, i64)> = dispatch!(self, Store, p => {
            sqlx::query_as(
                "SELECT CASE WHEN state = 'angefordert' AND deadline < $1 THEN 'ueberfaellig' \
                 ELSE state END AS s, kind, count(*) FROM documents_owed GROUP BY s, kind ORDER BY s, kind",
            )
            .bind(today)
            .fetch_all(p)
            .await?
        });
        let oldest: Option<DateTime<Utc>> = dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "SELECT min(requested_at) FROM documents_owed \
                 WHERE state = 'angefordert' AND deadline < $1",
            )
            .bind(today)
            .fetch_one(p)
            .await?
        });
        let by_state_kind = rows
            .into_iter()
            .filter_map(|(s, k, n)| Some((ListState::parse(&s)?, k, n)))
            .collect();
        Ok(OwedStats {
            by_state_kind,
            oldest_overdue_request: oldest,
        })
    }
}

/// The state a Nachreichung received on `on` leaves a document in: one
/// received already stays as it is (its arrival is only logged).
fn received_state(state: &DocState, on: NaiveDate) -> DocState {
    let via = Eingangsweg::Nachreichung;
    match state {
        DocState::Eingegangen { .. } => state.clone(),
        _ => state
            .apply(&Change::Eingang { on, via }, on)
            .unwrap_or(DocState::Eingegangen { on, via }),
    }
}

/// The id of a document's follow-up record: the same document always has
/// the same one (a UUID v8 from SHA-256 of the antragId and the row id), so
/// writing it twice is writing it once.
fn follow_up_id(antrag_id: Uuid, document: i64) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"nachweiseingang");
    h.update(antrag_id.as_bytes());
    h.update(document.to_be_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Uuid::new_v8(b)
}

/// The audit action and detail (kind and what changed; never free text).
fn audit_of_change(change: &Change, kind: &str) -> (Action, String) {
    let date = |d: &NaiveDate| d.format("%d.%m.%Y").to_string();
    match change {
        Change::Anfordern { deadline } => (
            Action::DocumentRequested,
            format!("{kind} (Frist {})", date(deadline)),
        ),
        Change::FristVerlaengern { deadline } => (
            Action::DeadlineExtended,
            format!("{kind} (Frist {})", date(deadline)),
        ),
        Change::Eingang { on, via } => (
            Action::DocumentReceived,
            format!("{kind} (eingegangen {}, {})", date(on), via.as_str()),
        ),
        Change::Verzichten { .. } => (Action::DocumentWaived, kind.to_string()),
    }
}
