//! The Kennzahlen (figures for management) on SQLite and PostgreSQL: a
//! generated data set of applications over four months and three
//! Dienststellen, two forms, every fate (accepted, open, deferred, released
//! after hours, closed), rules, corrections, documents owed and dead letters,
//! stored through the store's own insert; the figures must equal a recount
//! done here from the generated inputs (with its own percentile), for all
//! and for a filter; a purge of everything past retention changes none of
//! them; the CSV reads as German Excel reads it. Over HTTP: `leitung` sees
//! its figures and nothing else (404 on every case URL, no antragId on any
//! page), and a bad month is shown again beside its field.

use allegro_testkit as support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use support::{Db, TestEnv};
use uuid::Uuid;

use allegro_core::finding::{Finding, Severity};
use allegro_core::mitwirkung::OwedDocument;
use allegro_store::audit::{Action, NewAudit};
use allegro_store::cases::{CaseDraft, Scope};
use allegro_store::kennzahlen::{Filter, Kennzahlen, Monat, Stelle};
use allegro_store::{NewApplication, NewDeadLetter, Store, Verdict};

const DST: [&str; 3] = ["D1", "D2", "D3"];
const MAPPINGS: [&str; 2] = ["bg-ha-1.0", "bg-wba-1.0"];
/// More rules than the top ten, so the cut and its order are checked.
const RULES: [&str; 12] = [
    "IBAN-UNGUELTIG",
    "PLZ-FORMAT",
    "HAUSHALT-PERSONENZAHL",
    "STEUERID-FORMAT",
    "ALTER-15",
    "RV-NUMMER",
    "MIETE-HOCH",
    "EINKOMMEN-FEHLT",
    "KV-NUMMER",
    "GEBURTSDATUM",
    "AUFENTHALT",
    "KONTO-INHABER",
];
const POINTERS: [&str; 4] = [
    "/bankverbindung/iban",
    "/antragsteller/anschrift/plz",
    "/weiterePersonen/0/geburtsdatum",
    "/weiterePersonen/2/geburtsdatum",
];

/// What happens to a generated application.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Accepted,
    Open,
    Deferred,
    Released(i64),
    Closed,
}

/// A document owed and what became of it.
#[derive(Debug, Clone, Copy)]
enum Doc {
    Offen,
    /// Requested with a deadline this many days after receipt; received
    /// that many days after receipt, or not.
    Requested {
        deadline: i64,
        received: Option<i64>,
    },
}

#[derive(Debug, Clone)]
struct Gen {
    id: Uuid,
    at: DateTime<Utc>,
    dst: &'static str,
    mapping: &'static str,
    fate: Fate,
    rules: Vec<&'static str>,
    edits: Vec<&'static str>,
    docs: Vec<Doc>,
}

/// A small deterministic generator (no seed from the clock: failures repeat).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn generate(n: usize) -> Vec<Gen> {
    let mut r = Lcg(7);
    (0..n)
        .map(|i| {
            let month = 8 + r.next(4) as u32;
            let at = Utc
                .with_ymd_and_hms(
                    2026,
                    month,
                    1 + r.next(28) as u32,
                    r.next(24) as u32,
                    r.next(60) as u32,
                    0,
                )
                .unwrap();
            let fate = match r.next(6) {
                0 | 1 => Fate::Accepted,
                2 => Fate::Open,
                3 => Fate::Deferred,
                4 => Fate::Released(1 + r.next(400) as i64),
                _ => Fate::Closed,
            };
            let case = fate != Fate::Accepted;
            let rules = if case {
                let mut v: Vec<&str> = (0..1 + r.next(3))
                    .map(|_| RULES[(r.next(12) * r.next(12) / 11) as usize])
                    .collect();
                v.sort();
                v.dedup();
                v
            } else {
                vec![]
            };
            let edits = if case {
                (0..r.next(3))
                    .map(|_| POINTERS[r.next(4) as usize])
                    .collect()
            } else {
                vec![]
            };
            let docs = (0..r.next(3))
                .map(|_| match r.next(3) {
                    0 => Doc::Offen,
                    _ => Doc::Requested {
                        deadline: 5 + r.next(20) as i64,
                        received: (r.next(2) == 0).then(|| r.next(30) as i64),
                    },
                })
                .collect();
            Gen {
                id: Uuid::from_u128(0x4000_0000_0000_0000_8000_0000_0000_0000 + i as u128),
                at,
                // Every 50th without a readable Dienststelle.
                dst: if i % 50 == 7 {
                    ""
                } else {
                    DST[r.next(3) as usize]
                },
                mapping: MAPPINGS[r.next(2) as usize],
                fate,
                rules,
                edits,
                docs,
            }
        })
        .collect()
}

const KINDS: [&str; 3] = ["MIETVERTRAG", "LOHNABRECHNUNG", "KONTOAUSZUG"];

/// Stores the data set as the daemon and the workbench would leave it.
async fn store_all(store: &Store, gens: &[Gen], dead: &[DateTime<Utc>], edits: Edits) {
    let mut tx = store.begin().await.unwrap();
    let apps: Vec<NewApplication> = gens
        .iter()
        .map(|g| {
            let findings: Vec<Finding> = g
                .rules
                .iter()
                .map(|r| Finding {
                    pointer: "/bankverbindung/iban".into(),
                    severity: Severity::Error,
                    rule: r.to_string(),
                    message: "Fehler.".into(),
                    nachweis: None,
                })
                .collect();
            NewApplication {
                antrag_id: g.id,
                body: b"{}".to_vec(),
                body_sha256: format!("{:064x}", g.id.as_u128()),
                verdict: if g.fate == Fate::Accepted {
                    Verdict::Accepted(b"<x/>".to_vec())
                } else {
                    Verdict::Rejected
                },
                mapping: g.mapping.into(),
                findings_json: serde_json::to_string(&findings).unwrap(),
                dienststellennummer: (!g.dst.is_empty()).then(|| g.dst.into()),
                message_id: None,
                created_at: g.at,
                applicant: (g.fate != Fate::Accepted).then(|| "Erika Muster".to_string()),
                error_rules: allegro_store::cases::error_rules_of(&findings),
                owed: g
                    .docs
                    .iter()
                    .enumerate()
                    .map(|(k, _)| OwedDocument {
                        kind: KINDS[k].into(),
                        person_id: None,
                        pointer: "/nachweise".into(),
                        rule: "NACHWEIS".into(),
                    })
                    .collect(),
            }
        })
        .collect();
    tx.insert_applications(&apps).await.unwrap();
    let letters: Vec<NewDeadLetter> = dead
        .iter()
        .enumerate()
        .map(|(i, at)| NewDeadLetter {
            dedup_key: format!("dead-{i}"),
            antrag_id: None,
            reason: "not_json",
            detail: String::new(),
            body_sha256: format!("{i:064x}"),
            body_bytes: 3,
            first_seen: *at,
        })
        .collect();
    tx.insert_dead_letters(&letters).await.unwrap();
    tx.commit().await.unwrap();
    for g in gens {
        settle(store, g, edits).await;
    }
}

/// How corrections are written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Edits {
    /// As the workbench saves them: a draft with its audit entries.
    Drafts,
    /// Audit entries alone, as a release before `cases.corrected_fields`
    /// left them.
    AuditOnly,
}

/// Runs `$sql` with the binds on either database.
macro_rules! exec {
    ($store:expr, $sql:expr $(, $v:expr)*) => {
        match $store {
            Store::Sqlite(p) => { sqlx::query($sql)$(.bind($v))*.execute(p).await.unwrap(); }
            Store::Postgres(p) => { sqlx::query($sql)$(.bind($v))*.execute(p).await.unwrap(); }
        }
    };
}

/// The case's end and the documents' states, as the workbench would set
/// them, written straight into the tables.
async fn settle(store: &Store, g: &Gen, edits: Edits) {
    let (status, at) = match g.fate {
        Fate::Accepted | Fate::Open => (None, g.at),
        Fate::Deferred => (Some("deferred"), g.at + Duration::hours(1)),
        Fate::Released(h) => (Some("released"), g.at + Duration::hours(h)),
        Fate::Closed => (Some("closed"), g.at + Duration::hours(2)),
    };
    // Corrections, while the case is still open.
    let audit: Vec<NewAudit> = g
        .edits
        .iter()
        .map(|p| NewAudit {
            pointer: Some(p),
            old_value: Some("alt"),
            new_value: Some("neu"),
            ..NewAudit::new("sb", Action::Edit, Some(g.id))
        })
        .collect();
    let edited = g.at + Duration::minutes(5);
    if edits == Edits::AuditOnly {
        for a in &audit {
            store.audit(a, edited).await.unwrap();
        }
    } else if !audit.is_empty() {
        let draft = CaseDraft {
            corrected_body: None,
            corrections_json: "[]",
            findings_json: "[]",
            error_rules: "",
            applicant: None,
        };
        store
            .save_case_draft(g.id, 1, &draft, &audit, edited)
            .await
            .unwrap();
    }
    if let Some(status) = status {
        exec!(
            store,
            "UPDATE cases SET status = $1, updated_at = $2, closed_at = $3 WHERE antrag_id = $4",
            status,
            at,
            at,
            g.id
        );
    }
    for (k, d) in g.docs.iter().enumerate() {
        if let Doc::Requested { deadline, received } = d {
            let due = (g.at + Duration::days(*deadline)).date_naive();
            let (state, on) = match received {
                Some(r) => (
                    "eingegangen",
                    Some((g.at + Duration::days(*r)).date_naive()),
                ),
                None => ("angefordert", None),
            };
            exec!(store, "UPDATE documents_owed SET state = $1, deadline = $2, requested_at = $3, received_on = $4 WHERE antrag_id = $5 AND kind = $6",
                state, due, g.at, on, g.id, KINDS[k]);
        }
    }
}

/// The recount: what the figures must be, from the generated inputs.
#[derive(Debug, Default, PartialEq)]
struct Count {
    received: i64,
    direct: i64,
    released: i64,
    closed: i64,
    open: i64,
    dead: i64,
    requested: i64,
    in_time: i64,
    overdue: i64,
    hours: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    // Nearest ranks, interpolated: the definition of SQL's percentile_cont.
    if sorted.is_empty() {
        return None;
    }
    let rank = p * (sorted.len() as f64 - 1.0);
    let below = sorted[rank as usize];
    let above = sorted[(rank as usize + 1).min(sorted.len() - 1)];
    Some(below + (above - below) * rank.fract())
}

fn stelle(g: &Gen) -> Stelle {
    if g.dst.is_empty() {
        Stelle::Ohne
    } else {
        Stelle::Dienststelle(g.dst.into())
    }
}

fn recount(
    gens: &[Gen],
    dead: &[DateTime<Utc>],
    today: NaiveDate,
    keep: impl Fn(&Gen) -> bool,
    with_dead: bool,
) -> BTreeMap<(String, Stelle), Count> {
    let mut out: BTreeMap<(String, Stelle), Count> = BTreeMap::new();
    for g in gens.iter().filter(|g| keep(g)) {
        let c = out
            .entry((g.at.format("%Y-%m").to_string(), stelle(g)))
            .or_default();
        c.received += 1;
        match g.fate {
            Fate::Accepted => c.direct += 1,
            Fate::Open | Fate::Deferred => c.open += 1,
            Fate::Released(h) => {
                c.released += 1;
                c.hours.push(h as f64);
            }
            Fate::Closed => c.closed += 1,
        }
        for d in &g.docs {
            if let Doc::Requested { deadline, received } = d {
                c.requested += 1;
                let due = (g.at + Duration::days(*deadline)).date_naive();
                match received {
                    Some(r) if (g.at + Duration::days(*r)).date_naive() <= due => c.in_time += 1,
                    Some(_) => {}
                    None if due < today => c.overdue += 1,
                    None => {}
                }
            }
        }
    }
    if with_dead {
        for at in dead {
            let c = out
                .entry((at.format("%Y-%m").to_string(), Stelle::Unlesbar))
                .or_default();
            c.dead += 1;
            c.received += 1;
        }
    }
    out
}

fn assert_equal(k: &Kennzahlen, want: &BTreeMap<(String, Stelle), Count>) {
    assert_eq!(
        k.zeilen.len(),
        want.len(),
        "{:?}",
        k.zeilen
            .iter()
            .map(|(m, z)| (m.to_string(), z.dienststelle.clone()))
            .collect::<Vec<_>>()
    );
    for (m, z) in &k.zeilen {
        let key = (m.to_string(), z.dienststelle.clone());
        let c = &want[&key];
        let got = (
            z.eingegangen,
            z.direkt,
            z.nach_korrektur,
            z.ohne_import,
            z.offen,
            z.unlesbar,
            z.nachweise_angefordert,
            z.nachweise_fristgerecht,
            z.nachweise_ueberfaellig,
        );
        let exp = (
            c.received,
            c.direct,
            c.released,
            c.closed,
            c.open,
            c.dead,
            c.requested,
            c.in_time,
            c.overdue,
        );
        assert_eq!(got, exp, "{key:?}");
        let mut h = c.hours.clone();
        h.sort_by(f64::total_cmp);
        for (g, e) in [
            (z.median_stunden, percentile(&h, 0.5)),
            (z.p90_stunden, percentile(&h, 0.9)),
        ] {
            assert!(
                g.zip(e).is_none_or(|(g, e)| (g - e).abs() < 1e-6) && g.is_some() == e.is_some(),
                "{key:?}: {g:?} != {e:?}"
            );
        }
    }
}

fn rules_and_fields(
    gens: &[Gen],
    keep: impl Fn(&Gen) -> bool,
) -> (i64, BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let (mut cases, mut rules, mut fields) = (0, BTreeMap::new(), BTreeMap::new());
    for g in gens.iter().filter(|g| keep(g) && g.fate != Fate::Accepted) {
        cases += 1;
        for r in &g.rules {
            *rules.entry(r.to_string()).or_insert(0) += 1;
        }
        let distinct: BTreeSet<&str> = g.edits.iter().copied().collect();
        for p in distinct {
            let generic = p.replace("/0/", "/*/").replace("/2/", "/*/");
            *fields.entry(generic).or_insert(0) += 1;
        }
    }
    (cases, rules, fields)
}

fn filter(scope: Scope, dst: Option<&str>, mapping: Option<&str>, today: NaiveDate) -> Filter {
    Filter {
        von: Monat::parse("2026-07").unwrap(),
        bis: Monat::parse("2026-12").unwrap(),
        scope,
        dienststelle: dst.map(String::from),
        mapping: mapping.map(String::from),
        heute: today,
    }
}

/// Logs one dead letter.
async fn insert_dead(store: &Store, key: &str, antrag_id: Option<Uuid>, at: DateTime<Utc>) {
    let mut tx = store.begin().await.unwrap();
    let d = NewDeadLetter {
        dedup_key: key.into(),
        antrag_id,
        reason: "not_json",
        detail: String::new(),
        body_sha256: "0".repeat(64),
        body_bytes: 3,
        first_seen: at,
    };
    tx.insert_dead_letters(&[d]).await.unwrap();
    tx.commit().await.unwrap();
}

async fn purge_all(store: &Store) -> allegro_store::PurgeReport {
    exec!(store, "UPDATE dead_letters SET replayed_at = first_seen");
    let config = allegro_store::RetentionConfig {
        payload_days: 1,
        closed_case_days: 1,
        dead_letter_days: 1,
        audit_value_days: 1,
        ..Default::default()
    };
    let keep_pointer = |_: &str, _: &str| true;
    store
        .purge(&allegro_store::retention::PurgeRequest {
            config: &config,
            now: Utc::now(),
            dry_run: false,
            keep_pointer: &keep_pointer,
            session_max_age: None,
        })
        .await
        .unwrap()
}

async fn figures_equal_the_recount(db: Db) {
    let env = TestEnv::new(db, "kennzahlen").await;
    let store = env.store().await;
    let gens = generate(400);
    let dead: Vec<DateTime<Utc>> = (0..7)
        .map(|i| {
            Utc.with_ymd_and_hms(2026, 8 + i % 4, 3 + i, 12, 0, 0)
                .unwrap()
        })
        .collect();
    store_all(&store, &gens, &dead, Edits::Drafts).await;
    // A message dead-lettered, replayed and then stored counts as an
    // application only; one dead-lettered twice (replayed, again) once.
    let sept = Utc.with_ymd_and_hms(2026, 9, 20, 9, 0, 0).unwrap();
    insert_dead(&store, "replayed-then-stored", Some(gens[0].id), sept).await;
    insert_dead(&store, "twice", None, sept).await;
    exec!(
        &store,
        "UPDATE dead_letters SET replayed_at = first_seen WHERE dedup_key = 'twice'"
    );
    insert_dead(&store, "twice", None, sept + Duration::hours(1)).await;
    let mut dead = dead;
    dead.push(sept);
    let today = NaiveDate::from_ymd_opt(2026, 10, 15).unwrap();

    let all = store
        .kennzahlen(&filter(Scope::All, None, None, today))
        .await
        .unwrap();
    assert_equal(&all, &recount(&gens, &dead, today, |_| true, true));
    assert_eq!(all.monate.len(), 6, "July to December, also the empty ones");
    assert_eq!(all.summe.eingegangen, 408);
    assert!(
        all.zeilen
            .iter()
            .any(|(_, z)| z.dienststelle == Stelle::Ohne),
        "applications without a Dienststelle have their own rows"
    );
    let (cases, rules, fields) = rules_and_fields(&gens, |_| true);
    assert_eq!(all.faelle, cases);
    let mut top: Vec<(String, i64)> = rules.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert!(top.len() > 10, "{top:?}");
    top.truncate(10);
    assert_eq!(all.regeln, top);
    assert_eq!(all.felder, {
        let mut v: Vec<(String, i64)> = fields.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    });

    // A Dienststelle and a form: no dead letters, only what matches.
    let some = store
        .kennzahlen(&filter(
            Scope::Dienststellen(vec!["D1".into(), "D2".into()]),
            Some("D2"),
            Some("bg-wba-1.0"),
            today,
        ))
        .await
        .unwrap();
    let keep = |g: &Gen| g.dst == "D2" && g.mapping == "bg-wba-1.0";
    assert_equal(&some, &recount(&gens, &dead, today, keep, false));
    assert_eq!(some.faelle, rules_and_fields(&gens, keep).0);
    // A scope without Dienststellen sees nothing.
    let none = store
        .kennzahlen(&filter(Scope::Dienststellen(vec![]), None, None, today))
        .await
        .unwrap();
    assert!(none.zeilen.is_empty() && none.faelle == 0);

    // The purge of everything past retention changes no figure; a second
    // purge adds to a month's tally.
    let report = purge_all(&store).await;
    assert_eq!(report.dead_letters, 10, "{report:?}");
    assert!(store.counts().await.unwrap().dead_letters == 0);
    let after = store
        .kennzahlen(&filter(Scope::All, None, None, today))
        .await
        .unwrap();
    assert_eq!(after, all, "the figures are the same after the purge");
    let aug = Utc.with_ymd_and_hms(2026, 8, 11, 7, 0, 0).unwrap();
    for key in ["late-1", "late-2"] {
        insert_dead(&store, key, None, aug).await;
    }
    assert_eq!(purge_all(&store).await.dead_letters, 2);
    dead.extend([aug, aug]);
    let again = store
        .kennzahlen(&filter(Scope::All, None, None, today))
        .await
        .unwrap();
    assert_equal(&again, &recount(&gens, &dead, today, |_| true, true));
    env.cleanup().await;
}

/// Cases corrected before the release that keeps the corrected fields on
/// the case: the migration fills them from the audit log, so the figures
/// count them as the recount does.
async fn corrections_from_before_the_upgrade_count(db: Db) {
    let env = TestEnv::new(db, "kennzahlen-upgrade").await;
    let old = Store::connect_lazy(&allegro_store::StoreConfig {
        url: env.db_url.clone(),
        ..Default::default()
    })
    .unwrap();
    // The schema before migration `corrected_fields`.
    old.migrate_until(if db == Db::Sqlite { 11 } else { 13 })
        .await
        .unwrap();
    let gens = generate(120);
    store_all(&old, &gens, &[], Edits::AuditOnly).await;
    old.close().await;
    let store = env.store().await;
    let today = NaiveDate::from_ymd_opt(2026, 12, 20).unwrap();
    let k = store
        .kennzahlen(&filter(Scope::All, None, None, today))
        .await
        .unwrap();
    let (cases, _, fields) = rules_and_fields(&gens, |_| true);
    assert!(fields.values().sum::<i64>() > 20, "{fields:?}");
    assert_eq!(k.faelle, cases);
    let mut want: Vec<(String, i64)> = fields.into_iter().collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    want.truncate(10);
    assert_eq!(k.felder, want);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrections_from_before_the_upgrade_count_on_sqlite() {
    corrections_from_before_the_upgrade_count(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrections_from_before_the_upgrade_count_on_postgres() {
    corrections_from_before_the_upgrade_count(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn figures_equal_the_recount_on_sqlite() {
    figures_equal_the_recount(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn figures_equal_the_recount_on_postgres() {
    figures_equal_the_recount(Db::Postgres).await;
}

mod web {
    use super::*;
    use allegro_testkit::browser::{self, Chromedriver};
    use support::workbench::{add_user, bridge, start_web, Client};

    const PASSWORD: &str = "Sehr-geheim-2026";

    /// The generated data set in SQLite, a `leitung` account of D1, a
    /// caseworker of D1, and `allegro-bridge web`.
    async fn world(name: &str) -> (TestEnv, Vec<Gen>, support::workbench::Web) {
        let env = TestEnv::new(Db::Sqlite, name).await;
        let store = env.store().await;
        let gens = generate(200);
        let dead = vec![Utc.with_ymd_and_hms(2026, 9, 2, 8, 0, 0).unwrap()];
        store_all(&store, &gens, &dead, Edits::Drafts).await;
        add_user(
            &env,
            "leitung.d1",
            PASSWORD,
            &["--rolle", "leitung", "--dienststelle", "D1"],
        );
        add_user(
            &env,
            "sb.d1",
            PASSWORD,
            &["--rolle", "sachbearbeitung", "--dienststelle", "D1"],
        );
        let web = start_web(&env);
        (env, gens, web)
    }

    fn login(port: u16, name: &str) -> Client {
        let mut c = Client::new(port);
        let r = c.login(name, PASSWORD);
        assert_eq!(r.status, 303, "{}", r.body);
        c
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn leitung_sees_its_figures_and_no_application() {
        let (env, gens, web) = world("kz-leitung").await;
        let mut c = login(web.port, "leitung.d1");
        let home = c.get("/");
        assert_eq!(home.header("location"), Some("/kennzahlen"));
        let page = c.get("/kennzahlen?von=2026-08&bis=2026-11");
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Kennzahlen der Online-Anträge"));
        assert!(
            page.body.contains("<svg") && page.body.matches("<svg").count() == 2,
            "two charts"
        );
        assert!(
            !page.body.contains("href=\"/faelle\""),
            "no link to the cases"
        );
        let rows = page
            .body
            .split("id=\"zeilen\"")
            .nth(1)
            .expect("the table per month");
        assert!(rows.contains(">D1<") && !rows.contains(">D2<") && !rows.contains("unlesbar"));
        // D1's counts, as recounted here.
        let d1 = gens.iter().filter(|g| g.dst == "D1").count();
        let summe = page.body.split("id=\"summe\"").nth(1).unwrap();
        assert!(summe.contains(&format!(">{d1}<")), "{d1} received in D1");
        // No application, no name anywhere; every case URL is 404.
        for g in &gens {
            assert!(!page.body.contains(&g.id.to_string()));
        }
        assert!(!page.body.contains("Erika"));
        let id = gens
            .iter()
            .find(|g| g.dst == "D1" && g.fate == Fate::Open)
            .unwrap()
            .id;
        for path in [
            "/faelle".to_string(),
            format!("/faelle/{id}"),
            format!("/faelle/{id}/feld?zeiger=/x"),
            format!("/antraege/{id}"),
            "/mitwirkung".into(),
            "/verwaltung/protokoll".into(),
        ] {
            let r = c.get(&path);
            assert_eq!(r.status, 404, "{path}");
            assert!(
                !r.body.contains(&id.to_string())
                    || path.contains(&id.to_string()) && !r.body.contains("Erika")
            );
        }
        // Another Dienststelle, a bad month: the page again, errors beside the fields.
        let bad = c.get("/kennzahlen?von=2026-13&bis=2026-11&dienststelle=D2");
        assert_eq!(bad.status, 400);
        assert!(bad.title().starts_with("Fehler: "), "{}", bad.title());
        assert!(bad.body.contains("href=\"#von\"") && bad.body.contains("href=\"#dienststelle\""));
        assert!(bad.body.contains("id=\"von-fehler\"") && bad.body.contains("value=\"2026-13\""));
        // The CSV: BOM, `;`, German headers, one row per month with D1 applications.
        let csv = c.get("/kennzahlen.csv?von=2026-08&bis=2026-11");
        assert_eq!(csv.status, 200);
        assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
        assert!(csv.raw.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM");
        let text = String::from_utf8(csv.raw[3..].to_vec()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert!(
            lines[0].starts_with("Monat;Dienststelle;Eingegangen;Direkt übernommen;Anteil direkt;"),
            "{}",
            lines[0]
        );
        let months: BTreeSet<String> = gens
            .iter()
            .filter(|g| g.dst == "D1")
            .map(|g| g.at.format("%Y-%m").to_string())
            .collect();
        assert_eq!(lines.len() - 1, months.len(), "{text}");
        for (line, month) in lines[1..].iter().zip(&months) {
            let cols: Vec<&str> = line.split(';').collect();
            assert_eq!(
                (cols[0], cols[1], cols.len()),
                (month.as_str(), "D1", 14),
                "{line}"
            );
            let n = gens
                .iter()
                .filter(|g| g.dst == "D1" && g.at.format("%Y-%m").to_string() == *month)
                .count();
            assert_eq!(cols[2], n.to_string());
        }
        // A caseworker does not see the figures.
        let mut sb = login(web.port, "sb.d1");
        assert_eq!(sb.get("/kennzahlen").status, 404);
        assert_eq!(sb.get("/kennzahlen.csv").status, 404);
        // The command line: every Dienststelle and the dead letter, as JSON.
        let out = bridge(&env)
            .args([
                "kennzahlen",
                "--von",
                "2026-08",
                "--bis",
                "2026-11",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["summe"]["eingegangen"], gens.len() as i64 + 1);
        assert_eq!(v["summe"]["unlesbar"], 1);
        let bad = bridge(&env)
            .args(["kennzahlen", "--von", "2026-8"])
            .output()
            .unwrap();
        assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("JJJJ-MM"));
        drop(web);
        env.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn kennzahlen_in_the_browser() {
        let (env, _gens, web) = world("kz-browser").await;
        let driver = Chromedriver::start().await;
        let c = driver.session().await;
        c.goto(&format!("http://127.0.0.1:{}/anmelden", web.port))
            .await
            .unwrap();
        browser::fill(&c, "#benutzername", "leitung.d1").await;
        browser::fill(&c, "#passwort", PASSWORD).await;
        browser::click_and_load(&c, "#anmelden").await;
        browser::fill(&c, "#von", "2026-08").await;
        browser::fill(&c, "#bis", "2026-11").await;
        browser::click_and_load(&c, "#anzeigen").await;
        assert!(browser::exists(&c, "figure svg").await);
        let quote = browser::text(&c, "#quote tbody").await;
        assert!(quote.contains("2026-08") && quote.contains('%'), "{quote}");
        browser::assert_accessible(&c, "Kennzahlen").await;
        let dir = if std::env::var_os("ALLEGRO_BRIDGE_SCREENSHOTS").is_some() {
            support::repo_root().join("docs")
        } else {
            env.dir.path().to_path_buf()
        };
        browser::screenshot_top(&c, &dir.join("workbench-kennzahlen.png"), 1400).await;
        // With an error: the summary and the field, still accessible.
        browser::fill(&c, "#von", "August").await;
        browser::click_and_load(&c, "#anzeigen").await;
        assert!(browser::exists(&c, "#fehlerliste").await);
        browser::assert_accessible(&c, "Kennzahlen mit Eingabefehler").await;
        drop(web);
        env.cleanup().await;
    }
}
