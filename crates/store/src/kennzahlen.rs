//! The Kennzahlen (figures) of the online intake for a jobcenter's
//! management: per month (UTC, of receipt) and Dienststelle, how many
//! applications came in, how many were taken over straight through (no
//! case), released after correction, closed without import, still open,
//! dead-lettered; the time from receipt to release (median, 90th
//! percentile); the rules that cause most cases; the fields caseworkers
//! correct most; the documents owed that were requested, received in time
//! and are overdue.
//!
//! Everything is read from what retention keeps (antragId, outcome,
//! timestamps, Dienststelle, mapping, `cases.intake_rules`, audit pointers,
//! document states) plus `dead_letters_purged`, the count of dead-letter
//! rows a purge deleted; so a month's figures are the same before and after
//! its purge. Nothing here returns an antragId, a name or a value.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use sqlx::QueryBuilder;

use crate::cases::Scope;
use crate::{Store, StoreError, Tx};

/// A calendar month, e.g. `2026-11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Monat {
    pub jahr: i32,
    pub monat: u32,
}

impl Monat {
    /// From `YYYY-MM`; `Err` says what was expected.
    pub fn parse(s: &str) -> Result<Monat, String> {
        let bad = || format!("`{s}` ist kein Monat der Form JJJJ-MM (z. B. 2026-11)");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let jahr: i32 = y.parse().map_err(|_| bad())?;
        let monat: u32 = m.parse().map_err(|_| bad())?;
        if y.len() != 4 || m.len() != 2 || !(1..=12).contains(&monat) {
            return Err(bad());
        }
        Ok(Monat { jahr, monat })
    }

    /// The month `t` falls in (UTC).
    pub fn of(t: DateTime<Utc>) -> Monat {
        Monat {
            jahr: t.year(),
            monat: t.month(),
        }
    }

    /// The month after this one.
    pub fn next(self) -> Monat {
        if self.monat == 12 {
            Monat {
                jahr: self.jahr + 1,
                monat: 1,
            }
        } else {
            Monat {
                jahr: self.jahr,
                monat: self.monat + 1,
            }
        }
    }

    /// Its first instant (UTC).
    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.jahr, self.monat, 1, 0, 0, 0)
            .single()
            .expect("a valid month")
    }

    /// Whether the month is over for good on `heute`: it ended before
    /// yesterday (a day's margin for a batch stored across midnight).
    pub fn is_over(self, heute: NaiveDate) -> bool {
        let end = self.next().start().date_naive();
        end.succ_opt().is_some_and(|d| d < heute)
    }

    /// Every month from `self` to `bis`, both included.
    pub fn bis(self, bis: Monat) -> Vec<Monat> {
        let mut out = Vec::new();
        let mut m = self;
        while m <= bis && out.len() < 1200 {
            out.push(m);
            m = m.next();
        }
        out
    }
}

impl std::fmt::Display for Monat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.jahr, self.monat)
    }
}

/// Which applications the figures are about.
#[derive(Debug, Clone)]
pub struct Filter {
    /// First month (included).
    pub von: Monat,
    /// Last month (included).
    pub bis: Monat,
    /// The Dienststellen the reader may see.
    pub scope: Scope,
    /// Only this Dienststelle.
    pub dienststelle: Option<String>,
    /// Only this mapping (form and version, e.g. `bg-ha-1.0`).
    pub mapping: Option<String>,
    /// The day overdue is measured against.
    pub heute: NaiveDate,
}

impl Filter {
    /// Whether dead letters belong in these figures: they have no
    /// Dienststelle or form, so only an unfiltered view of all counts them.
    fn with_dead_letters(&self) -> bool {
        matches!(self.scope, Scope::All) && self.dienststelle.is_none() && self.mapping.is_none()
    }
}

/// Whose a row of figures is.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stelle {
    /// A Dienststelle.
    Dienststelle(String),
    /// Stored applications without a readable Dienststelle.
    Ohne,
    /// Dead letters: not readable, so no Dienststelle.
    Unlesbar,
    /// A sum over several (a month's, the period's).
    #[default]
    Alle,
}

impl Stelle {
    fn of(d: Option<String>) -> Stelle {
        d.map_or(Stelle::Ohne, Stelle::Dienststelle)
    }
}

/// The figures of one month and Dienststelle (or of a whole period).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Zeile {
    pub dienststelle: Stelle,
    /// Everything that arrived: stored applications and dead letters.
    pub eingegangen: i64,
    /// Accepted without a case: taken over without retyping.
    pub direkt: i64,
    /// Cases released after correction.
    pub nach_korrektur: i64,
    /// Cases closed without an import.
    pub ohne_import: i64,
    /// Cases open or deferred.
    pub offen: i64,
    /// Dead letters (not readable as an application).
    pub unlesbar: i64,
    /// Hours from receipt to release: median and 90th percentile (linear
    /// interpolation between the closest ranks, as SQL's `percentile_cont`).
    pub median_stunden: Option<f64>,
    pub p90_stunden: Option<f64>,
    /// Documents owed that were requested by letter.
    pub nachweise_angefordert: i64,
    /// Of those, received by their deadline.
    pub nachweise_fristgerecht: i64,
    /// Requested, not received, deadline passed.
    pub nachweise_ueberfaellig: i64,
}

impl Zeile {
    /// The share taken over straight through, if anything arrived.
    pub fn quote(&self) -> Option<f64> {
        (self.eingegangen > 0).then(|| self.direkt as f64 / self.eingegangen as f64)
    }

    fn add(&mut self, o: &Zeile) {
        self.eingegangen += o.eingegangen;
        self.direkt += o.direkt;
        self.nach_korrektur += o.nach_korrektur;
        self.ohne_import += o.ohne_import;
        self.offen += o.offen;
        self.unlesbar += o.unlesbar;
        self.nachweise_angefordert += o.nachweise_angefordert;
        self.nachweise_fristgerecht += o.nachweise_fristgerecht;
        self.nachweise_ueberfaellig += o.nachweise_ueberfaellig;
    }
}

/// The figures of a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kennzahlen {
    /// Per month and Dienststelle, months in order, Dienststellen by number
    /// (dead letters last in their month).
    pub zeilen: Vec<(Monat, Zeile)>,
    /// Per month, summed over the Dienststellen (every month of the period,
    /// also those without any application).
    pub monate: Vec<(Monat, Zeile)>,
    /// The whole period.
    pub summe: Zeile,
    /// Rules by the number of cases they were among the errors of, most
    /// first (at most ten), and how many cases there were in all.
    pub regeln: Vec<(String, i64)>,
    pub faelle: i64,
    /// Fields by their corrections (each field of a case counted once, a
    /// list entry's field once per entry), most first (at most ten); list
    /// indexes as `*` (`/weiterePersonen/*/geburtsdatum`).
    pub felder: Vec<(String, i64)>,
}

type Key = (String, Stelle);

/// The cases, the rules they were opened for and the fields corrected in
/// them, counted.
#[derive(Debug, Default)]
struct RegelnUndFelder {
    faelle: i64,
    regeln: BTreeMap<String, i64>,
    felder: BTreeMap<String, i64>,
}

impl Store {
    /// The figures of the applications `f` selects.
    pub async fn kennzahlen(&self, f: &Filter) -> Result<Kennzahlen, StoreError> {
        // The queries are independent: side by side, on as many connections.
        let dead = async {
            if f.with_dead_letters() {
                self.dead_letter_counts(f).await
            } else {
                Ok(Vec::new())
            }
        };
        let (outcomes, documents, dead, dauern, regeln) = tokio::try_join!(
            self.outcome_counts(f),
            self.document_counts(f),
            dead,
            self.release_hours(f),
            self.rules_and_fields(f),
        )?;
        let mut rows: BTreeMap<Key, Zeile> = BTreeMap::new();
        for (key, z) in outcomes {
            *rows.entry(key).or_default() = z;
        }
        for (m, d, req, in_time, overdue) in documents {
            let z = rows.entry((m, Stelle::of(d))).or_default();
            z.nachweise_angefordert = req;
            z.nachweise_fristgerecht = in_time;
            z.nachweise_ueberfaellig = overdue;
        }
        for (m, n) in dead {
            let z = rows.entry((m, Stelle::Unlesbar)).or_default();
            z.unlesbar += n;
            z.eingegangen += n;
        }
        Ok(assemble(f, rows, dauern, regeln))
    }

    /// Per month and Dienststelle: received, accepted (from the applications
    /// alone, along their covering index), released, closed, open (from the
    /// cases alone: a case has its application's receipt time and
    /// Dienststelle).
    async fn outcome_counts(&self, f: &Filter) -> Result<BTreeMap<Key, Zeile>, StoreError> {
        let (month, by) = self.month_of("c.created_at");
        let cases_group = format!(" GROUP BY {by}, c.dienststellennummer");
        let cases = format!(
            "SELECT {month} AS m, c.dienststellennummer AS d, \
             CAST(SUM(CASE WHEN c.status = 'released' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN c.status = 'closed' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN c.status IN ('open', 'deferred') THEN 1 ELSE 0 END) AS BIGINT) \
             FROM {}",
            cases_source(f)
        );
        type Cases = (String, Option<String>, i64, i64, i64);
        let cases_query = async {
            let rows: Vec<Cases> = dispatch!(self, Store, p => {
                let mut qc = QueryBuilder::new(cases);
                push_where(&mut qc, f, "c");
                qc.push(cases_group);
                qc.build_query_as().fetch_all(p).await?
            });
            Ok::<_, StoreError>(rows)
        };
        let (apps, cases) = tokio::try_join!(self.received_counts(f), cases_query)?;
        let mut rows: BTreeMap<Key, Zeile> = BTreeMap::new();
        for (m, d, n, direkt) in apps {
            let z = rows.entry((m, Stelle::of(d))).or_default();
            z.eingegangen = n;
            z.direkt = direkt;
        }
        for (m, d, released, closed, open) in cases {
            let z = rows.entry((m, Stelle::of(d))).or_default();
            z.nach_korrektur = released;
            z.ohne_import = closed;
            z.offen = open;
        }
        Ok(rows)
    }

    /// Received and accepted per month and Dienststelle. A month that is
    /// over (ended before yesterday, by `f.heute`) is read from
    /// `kennzahlen_eingang`, filled once per month from the applications:
    /// an application is stored with the time it is stored, and its
    /// receipt time, outcome, Dienststelle and mapping never change nor is
    /// it deleted, so a month's counts are final once it is over. The
    /// months not yet over are counted from the applications.
    async fn received_counts(
        &self,
        f: &Filter,
    ) -> Result<Vec<(String, Option<String>, i64, i64)>, StoreError> {
        let over: Vec<Monat> = f
            .von
            .bis(f.bis)
            .into_iter()
            .filter(|m| m.is_over(f.heute))
            .collect();
        let mut rows = Vec::new();
        if let (Some(first), Some(last)) = (over.first(), over.last()) {
            self.freeze_months(&over).await?;
            let sql = "SELECT k.monat, NULLIF(k.dienststelle, ''), \
                       CAST(SUM(k.eingegangen) AS BIGINT), CAST(SUM(k.direkt) AS BIGINT) \
                       FROM kennzahlen_eingang k WHERE k.monat >= ";
            let frozen: Vec<(String, Option<String>, i64, i64)> = dispatch!(self, Store, p => {
                let mut qb = QueryBuilder::new(sql);
                qb.push_bind(first.to_string())
                    .push(" AND k.monat <= ")
                    .push_bind(last.to_string());
                crate::cases::push_scope(&mut qb, "k.dienststelle", &f.scope);
                if let Some(d) = &f.dienststelle {
                    qb.push(" AND k.dienststelle = ").push_bind(d.clone());
                }
                if let Some(m) = &f.mapping {
                    qb.push(" AND k.mapping = ").push_bind(m.clone());
                }
                qb.push(" GROUP BY k.monat, k.dienststelle");
                qb.build_query_as().fetch_all(p).await?
            });
            rows.extend(frozen);
        }
        let live_from = over.last().map_or(f.von, |m| m.next());
        if live_from <= f.bis {
            let live = Filter {
                von: live_from,
                ..f.clone()
            };
            let (month, by) = self.month_of("a.created_at");
            let sql = format!(
                "SELECT {month} AS m, a.dienststellennummer AS d, COUNT(*) AS n, \
                 CAST(SUM(CASE WHEN a.outcome = 'accepted' THEN 1 ELSE 0 END) AS BIGINT) \
                 FROM applications a"
            );
            let group = format!(" GROUP BY {by}, a.dienststellennummer");
            let counted: Vec<(String, Option<String>, i64, i64)> = dispatch!(self, Store, p => {
                let mut qb = QueryBuilder::new(sql);
                push_where(&mut qb, &live, "a");
                qb.push(group);
                qb.build_query_as().fetch_all(p).await?
            });
            rows.extend(counted);
        }
        Ok(rows)
    }

    /// Fills `kennzahlen_eingang` for the months of `months` not yet in it
    /// (each once: the month's row in `kennzahlen_eingang_monate` is taken
    /// first, in the same transaction; whoever does not get it skips).
    async fn freeze_months(&self, months: &[Monat]) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (months.first(), months.last()) else {
            return Ok(());
        };
        let done: Vec<String> = dispatch!(self, Store, p => {
            sqlx::query_scalar(
                "SELECT monat FROM kennzahlen_eingang_monate WHERE monat >= $1 AND monat <= $2",
            )
            .bind(first.to_string())
            .bind(last.to_string())
            .fetch_all(p)
            .await?
        });
        for m in months.iter().filter(|m| !done.contains(&m.to_string())) {
            dispatch!(self.begin().await?, Tx, tx => {
                let mut tx = tx;
                let taken = sqlx::query(
                    "INSERT INTO kennzahlen_eingang_monate (monat) VALUES ($1) \
                     ON CONFLICT (monat) DO NOTHING",
                )
                .bind(m.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken == 1 {
                    sqlx::query(
                        "INSERT INTO kennzahlen_eingang \
                         (monat, dienststelle, mapping, eingegangen, direkt) \
                         SELECT $1, COALESCE(a.dienststellennummer, ''), COALESCE(a.mapping, ''), \
                         COUNT(*), CAST(SUM(CASE WHEN a.outcome = 'accepted' THEN 1 ELSE 0 END) AS BIGINT) \
                         FROM applications a WHERE a.created_at >= $2 AND a.created_at < $3 \
                         GROUP BY COALESCE(a.dienststellennummer, ''), COALESCE(a.mapping, '')",
                    )
                    .bind(m.to_string())
                    .bind(m.start())
                    .bind(m.next().start())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            });
        }
        Ok(())
    }

    /// Per month and Dienststelle: documents requested, received in time,
    /// overdue (from the documents alone: each has its application's
    /// receipt time and Dienststelle).
    async fn document_counts(
        &self,
        f: &Filter,
    ) -> Result<Vec<(String, Option<String>, i64, i64, i64)>, StoreError> {
        let (month, by) = self.month_of("o.created_at");
        let sql = format!(
            "SELECT {month} AS m, o.dienststellennummer AS d, \
             CAST(SUM(CASE WHEN o.requested_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN o.requested_at IS NOT NULL AND o.state = 'eingegangen' \
                      AND o.received_on <= o.deadline THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN o.state = 'angefordert' AND o.deadline < "
        );
        let from = format!(
            " THEN 1 ELSE 0 END) AS BIGINT) FROM documents_owed o{}",
            if f.mapping.is_some() {
                " JOIN applications a ON a.antrag_id = o.antrag_id"
            } else {
                ""
            }
        );
        let group = format!(" GROUP BY {by}, o.dienststellennummer");
        dispatch!(self, Store, p => {
            let mut qb = QueryBuilder::new(sql);
            qb.push_bind(f.heute);
            qb.push(from);
            push_where(&mut qb, f, "o");
            qb.push(group);
            Ok(qb.build_query_as().fetch_all(p).await?)
        })
    }

    /// Dead letters per month (one per message: a redelivery that was
    /// dead-lettered again counts once), leaving out those that were
    /// replayed and then stored (they are counted as applications); with
    /// those a purge deleted (`dead_letters_purged`, tallied the same way).
    async fn dead_letter_counts(&self, f: &Filter) -> Result<Vec<(String, i64)>, StoreError> {
        let (month, by) = self.month_of("d.first_seen");
        let sql = format!(
            "SELECT m, CAST(SUM(n) AS BIGINT) FROM ( \
               SELECT {month} AS m, COUNT(DISTINCT d.dedup_key) AS n FROM dead_letters d \
               WHERE d.first_seen >= $1 AND d.first_seen < $2 AND {DEAD_LETTER_NOT_STORED} \
               GROUP BY {by} \
               UNION ALL \
               SELECT month AS m, count AS n FROM dead_letters_purged \
               WHERE month >= $3 AND month <= $4) t GROUP BY m"
        );
        let (from, to) = (f.von.start(), f.bis.next().start());
        dispatch!(self, Store, p => {
            let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(from)
                .bind(to)
                .bind(f.von.to_string())
                .bind(f.bis.to_string())
                .fetch_all(p)
                .await?;
            Ok(rows)
        })
    }

    /// Hours from receipt to release of the released cases: median and 90th
    /// percentile per month and Dienststelle, per month and of the period.
    /// PostgreSQL computes them (`percentile_cont` over grouping sets, so
    /// only the figures cross the wire); SQLite has no percentile function,
    /// so its hours are fetched and [`quantile`] does the same there.
    async fn release_hours(&self, f: &Filter) -> Result<Dauern, StoreError> {
        let (month, by) = self.month_of("c.created_at");
        match self {
            Store::Sqlite(p) => {
                let sql = format!(
                    "SELECT {month}, c.dienststellennummer, \
                     (julianday(c.updated_at) - julianday(c.created_at)) * 24.0 FROM {}",
                    cases_source(f)
                );
                let mut qb = QueryBuilder::new(sql);
                push_where(&mut qb, f, "c");
                qb.push(" AND c.status = 'released'");
                let rows: Vec<(String, Option<String>, f64)> =
                    qb.build_query_as().fetch_all(p).await?;
                Ok(Dauern::of_hours(rows))
            }
            Store::Postgres(p) => {
                let sql = format!(
                    "SELECT to_char(t.m, 'YYYY-MM'), t.d, CAST(GROUPING(t.m, t.d) AS INTEGER), \
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY t.h), \
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY t.h) FROM ( \
                     SELECT {by} AS m, c.dienststellennummer AS d, \
                     CAST(EXTRACT(EPOCH FROM (c.updated_at - c.created_at)) / 3600.0 AS DOUBLE PRECISION) AS h \
                     FROM {}",
                    cases_source(f)
                );
                let mut qb = QueryBuilder::new(sql);
                push_where(&mut qb, f, "c");
                qb.push(
                    " AND c.status = 'released') t GROUP BY GROUPING SETS ((t.m, t.d), (t.m), ())",
                );
                let rows: Vec<GroupRow> = qb.build_query_as().fetch_all(p).await?;
                Ok(Dauern::of_groups(rows))
            }
        }
    }

    /// How many cases; per rule, how many of them it was an error of; per
    /// field (list indexes as `*`), in how many it was corrected
    /// (`cases.corrected_fields`, kept with each draft's audit entries).
    /// One scan of the cases for both.
    async fn rules_and_fields(&self, f: &Filter) -> Result<RegelnUndFelder, StoreError> {
        let rows: Vec<(String, String, i64)> = dispatch!(self, Store, p => {
            let mut qb = QueryBuilder::new(format!(
                "SELECT c.intake_rules, c.corrected_fields, COUNT(*) FROM {}",
                cases_source(f)
            ));
            push_where(&mut qb, f, "c");
            qb.push(" GROUP BY c.intake_rules, c.corrected_fields");
            qb.build_query_as().fetch_all(p).await?
        });
        let mut out = RegelnUndFelder::default();
        for (rules, fields, n) in rows {
            out.faelle += n;
            for r in items(&rules) {
                *out.regeln.entry(r.to_string()).or_insert(0) += n;
            }
            for p in items(&fields) {
                *out.felder.entry(generic_pointer(p)).or_insert(0) += n;
            }
        }
        Ok(out)
    }

    /// The SQL of the month (`YYYY-MM`, UTC) of a timestamp column, and
    /// what to group by for it (PostgreSQL groups by the truncated
    /// timestamp and formats only the groups).
    fn month_of(&self, column: &str) -> (String, String) {
        match self {
            // sqlx writes timestamps as RFC 3339 text in UTC.
            Store::Sqlite(_) => {
                let m = format!("substr({column}, 1, 7)");
                (m.clone(), m)
            }
            Store::Postgres(_) => {
                let by = format!("date_trunc('month', {column} AT TIME ZONE 'UTC')");
                (format!("to_char({by}, 'YYYY-MM')"), by)
            }
        }
    }
}

/// The dead letters `d` whose message did not become a stored application
/// after a replay (shared with the purge's tally).
pub const DEAD_LETTER_NOT_STORED: &str = "(d.antrag_id IS NULL OR NOT EXISTS \
     (SELECT 1 FROM applications x WHERE x.antrag_id = d.antrag_id))";

/// The cases, joined to their applications only when the filter needs the
/// mapping (which only the application has).
fn cases_source(f: &Filter) -> String {
    format!("cases c{}", mapping_join(f))
}

/// The join from the cases `c` to their applications `a`, when the filter
/// needs the mapping.
fn mapping_join(f: &Filter) -> &'static str {
    if f.mapping.is_some() {
        " JOIN applications a ON a.antrag_id = c.antrag_id"
    } else {
        ""
    }
}

/// The WHERE clause of the filter on the table `t` (`a`: applications,
/// `c`: cases; both carry the receipt time and the Dienststelle); the
/// mapping is always `a.mapping`.
fn push_where<DB>(qb: &mut QueryBuilder<DB>, f: &Filter, t: &str)
where
    DB: sqlx::Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> DateTime<Utc>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push(format!(" WHERE {t}.created_at >= "))
        .push_bind(f.von.start())
        .push(format!(" AND {t}.created_at < "))
        .push_bind(f.bis.next().start());
    crate::cases::push_scope(qb, &format!("{t}.dienststellennummer"), &f.scope);
    if let Some(d) = &f.dienststelle {
        qb.push(format!(" AND {t}.dienststellennummer = "))
            .push_bind(d.clone());
    }
    if let Some(m) = &f.mapping {
        qb.push(" AND a.mapping = ").push_bind(m.clone());
    }
}

/// The items of a `,a,b,` list column (`intake_rules`, `corrected_fields`).
fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|r| !r.is_empty())
}

/// `/weiterePersonen/1/geburtsdatum` → `/weiterePersonen/*/geburtsdatum`.
pub fn generic_pointer(p: &str) -> String {
    p.split('/')
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The `q`-quantile of sorted `xs` by linear interpolation between the
/// closest ranks (SQL's `percentile_cont`).
pub fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let pos = q * (xs.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64))
}

/// Median and 90th percentile of some hours.
#[derive(Debug, Clone, Copy)]
struct Quantile {
    median: f64,
    p90: f64,
}

impl Quantile {
    fn of(hours: &mut [f64]) -> Option<Quantile> {
        hours.sort_by(f64::total_cmp);
        Some(Quantile {
            median: quantile(hours, 0.5)?,
            p90: quantile(hours, 0.9)?,
        })
    }

    fn set(self, z: &mut Zeile) {
        z.median_stunden = Some(self.median);
        z.p90_stunden = Some(self.p90);
    }
}

/// A grouping-set row: month, Dienststelle, `GROUPING(m, d)`, median, p90.
type GroupRow = (
    Option<String>,
    Option<String>,
    i32,
    Option<f64>,
    Option<f64>,
);

/// The quantiles of each group's hours.
fn quantiles<K: Ord>(groups: BTreeMap<K, Vec<f64>>) -> BTreeMap<K, Quantile> {
    groups
        .into_iter()
        .filter_map(|(k, mut h)| Some((k, Quantile::of(&mut h)?)))
        .collect()
}

/// The hours from receipt to release, as quantiles per row (month and
/// Dienststelle), per month and of the period.
#[derive(Debug, Default)]
struct Dauern {
    zeilen: BTreeMap<Key, Quantile>,
    monate: BTreeMap<String, Quantile>,
    summe: Option<Quantile>,
}

impl Dauern {
    /// From each released case's month, Dienststelle and hours.
    fn of_hours(rows: Vec<(String, Option<String>, f64)>) -> Dauern {
        let mut by_row: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
        let mut by_month: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut all = Vec::with_capacity(rows.len());
        for (m, d, h) in rows {
            by_month.entry(m.clone()).or_default().push(h);
            by_row.entry((m, Stelle::of(d))).or_default().push(h);
            all.push(h);
        }
        Dauern {
            zeilen: quantiles(by_row),
            monate: quantiles(by_month),
            summe: Quantile::of(&mut all),
        }
    }

    /// From grouping-set rows: `GROUPING(m, d)` 0 is a row, 1 a month, 3
    /// the period (whose quantiles are NULL when nothing was released).
    fn of_groups(rows: Vec<GroupRow>) -> Dauern {
        let mut out = Dauern::default();
        for (m, d, grouping, median, p90) in rows {
            let (Some(median), Some(p90)) = (median, p90) else {
                continue;
            };
            let q = Quantile { median, p90 };
            match (grouping, m) {
                (0, Some(m)) => {
                    out.zeilen.insert((m, Stelle::of(d)), q);
                }
                (1, Some(m)) => {
                    out.monate.insert(m, q);
                }
                _ => out.summe = Some(q),
            }
        }
        out
    }
}

/// Rows, month sums and the period's sum, with their percentiles; the top ten
/// rules and fields.
fn assemble(
    f: &Filter,
    mut rows: BTreeMap<Key, Zeile>,
    dauern: Dauern,
    regeln: RegelnUndFelder,
) -> Kennzahlen {
    let mut monate: Vec<(Monat, Zeile)> = f
        .von
        .bis(f.bis)
        .into_iter()
        .map(|m| (m, Zeile::default()))
        .collect();
    let mut summe = Zeile::default();
    let mut zeilen = Vec::with_capacity(rows.len());
    // In month order, the Dienststellen by number, then those without,
    // then the dead letters (the order of `Stelle`).
    for (key, mut z) in std::mem::take(&mut rows) {
        z.dienststelle = key.1.clone();
        if let Some(&q) = dauern.zeilen.get(&key) {
            q.set(&mut z);
        }
        let Ok(m) = Monat::parse(&key.0) else {
            continue;
        };
        if let Some((_, sum)) = monate.iter_mut().find(|(mm, _)| *mm == m) {
            sum.add(&z);
        }
        summe.add(&z);
        zeilen.push((m, z));
    }
    for (m, z) in &mut monate {
        if let Some(&q) = dauern.monate.get(&m.to_string()) {
            q.set(z);
        }
    }
    if let Some(q) = dauern.summe {
        q.set(&mut summe);
    }
    Kennzahlen {
        zeilen,
        monate,
        summe,
        regeln: top_ten(regeln.regeln),
        faelle: regeln.faelle,
        felder: top_ten(regeln.felder),
    }
}

/// The ten largest, ties by name.
fn top_ten(counts: BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(10);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_step() {
        let m = Monat::parse("2026-11").unwrap();
        assert_eq!(m.next().to_string(), "2026-12");
        assert_eq!(m.next().next().to_string(), "2027-01");
        assert_eq!(
            Monat::parse("2026-01")
                .unwrap()
                .bis(Monat::parse("2026-03").unwrap())
                .len(),
            3
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-00"] {
            assert!(Monat::parse(bad).unwrap_err().contains("JJJJ-MM"), "{bad}");
        }
    }

    #[test]
    fn a_month_is_over_a_day_after_its_end() {
        let nov = Monat::parse("2026-11").unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        assert!(!nov.is_over(day(1)) && !nov.is_over(day(2)));
        assert!(nov.is_over(day(3)));
        assert!(!Monat::parse("2026-12").unwrap().is_over(day(31)));
    }

    #[test]
    fn quantiles_interpolate_like_percentile_cont() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[4.0], 0.9), Some(4.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        let q = quantile(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9).unwrap();
        assert!((q - 9.1).abs() < 1e-9, "{q}");
    }

    #[test]
    fn list_indexes_become_stars() {
        assert_eq!(
            generic_pointer("/weiterePersonen/12/geburtsdatum"),
            "/weiterePersonen/*/geburtsdatum"
        );
        assert_eq!(
            generic_pointer("/bankverbindung/iban"),
            "/bankverbindung/iban"
        );
    }
}
