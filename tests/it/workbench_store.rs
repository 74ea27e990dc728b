//! The workbench's part of the store against SQLite and PostgreSQL: the
//! migration's backfill, accounts and their failure counters, sessions,
//! the audit log, and the case list (scope, filters, search, paging).

use allegro_testkit as support;

use allegro_store::audit::{Action, NewAudit};
use allegro_store::cases::{CaseQuery, Scope, Search};
use allegro_store::retention::{PurgeRequest, RetentionConfig};
use allegro_store::sessions::SEARCHES_PER_SESSION;
use allegro_store::users::{is_unique_violation, NewUser, Role, FAILURE_MEMORY};
use allegro_store::{NewApplication, Store, Verdict};
use chrono::{DateTime, Duration, Utc};
use support::{Db, TestEnv};
use uuid::Uuid;

/// A case of Dienststelle `dst`, created `days` ago, with these error rules.
fn case(dst: &str, days: i64, applicant: &str, rules: &str, now: DateTime<Utc>) -> NewApplication {
    let id = Uuid::new_v4();
    NewApplication {
        antrag_id: id,
        body: id.as_bytes().to_vec(),
        body_sha256: id.to_string(),
        verdict: Verdict::Rejected,
        mapping: "bg-ha-1.0".into(),
        findings_json: "[]".into(),
        dienststellennummer: Some(dst.into()),
        message_id: None,
        created_at: now - Duration::days(days),
        applicant: Some(applicant.into()),
        error_rules: rules.into(),
        owed: Vec::new(),
    }
}

fn query(scope: Scope) -> CaseQuery {
    CaseQuery {
        scope,
        dienststelle: None,
        rule: None,
        created_before: None,
        search: None,
        page: 0,
        per_page: 50,
    }
}

async fn ids(store: &Store, q: &CaseQuery) -> Vec<Uuid> {
    let page = store.list_cases(q).await.unwrap();
    page.items.iter().map(|c| c.antrag_id).collect()
}

async fn set_status(env: &TestEnv, id: Uuid, status: &str) {
    macro_rules! run {
        ($pool:expr) => {{
            let pool = $pool;
            sqlx::query("UPDATE cases SET status = $1 WHERE antrag_id = $2")
                .bind(status)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }};
    }
    match env.db {
        Db::Sqlite => run!(sqlx::SqlitePool::connect(&env.db_url).await.unwrap()),
        Db::Postgres => run!(sqlx::PgPool::connect(&env.db_url).await.unwrap()),
    }
}

/// Runs one statement on the test's database.
async fn run_sql(env: &TestEnv, sql: &str) {
    macro_rules! run {
        ($pool:expr) => {{
            let pool = $pool;
            let sql = sqlx::AssertSqlSafe(sql.to_string());
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }};
    }
    match env.db {
        Db::Sqlite => run!(sqlx::SqlitePool::connect(&env.db_url).await.unwrap()),
        Db::Postgres => run!(sqlx::PgPool::connect(&env.db_url).await.unwrap()),
    }
}

async fn case_list(db: Db) {
    let env = TestEnv::new(db, "wb-list").await;
    let store = env.store().await;
    let now = Utc::now();
    // Oldest first: c0 (30 days) ... c4 (1 day).
    let rows = vec![
        case("81101", 30, "ioana popescu", ",iban_pruefziffer,plz,", now),
        case("81101", 20, "ahmad ibrahim", ",plz,", now),
        case("13101", 10, "Anna Müller", ",iban_pruefziffer_x,", now),
        case("13101", 5, "ben popescu", "", now),
        case("99999", 1, "carla 100%_sicher", ",plz,", now),
    ];
    let id: Vec<Uuid> = rows.iter().map(|r| r.antrag_id).collect();
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&rows).await.unwrap();
    tx.commit().await.unwrap();
    // Done cases are not listed; deferred ones are.
    set_status(&env, id[3], "released").await;
    set_status(&env, id[1], "deferred").await;

    let all = query(Scope::All);
    assert_eq!(ids(&store, &all).await, vec![id[0], id[1], id[2], id[4]]);
    let page = store.list_cases(&all).await.unwrap();
    assert_eq!(page.totals.count, 4);
    let oldest = page.totals.oldest.unwrap();
    assert!(
        (oldest - rows[0].created_at).num_seconds().abs() < 1,
        "{oldest}"
    );
    assert_eq!(page.items[1].status, "deferred");

    // Scope: a caseworker sees its own Dienststellen only.
    let own = query(Scope::Dienststellen(vec!["81101".into()]));
    assert_eq!(ids(&store, &own).await, vec![id[0], id[1]]);
    let two = query(Scope::Dienststellen(vec!["81101".into(), "99999".into()]));
    assert_eq!(ids(&store, &two).await, vec![id[0], id[1], id[4]]);
    let none = query(Scope::Dienststellen(vec![]));
    assert!(ids(&store, &none).await.is_empty());
    assert_eq!(store.list_cases(&none).await.unwrap().totals.count, 0);
    // A Dienststelle filter never widens the scope.
    let mut outside = own.clone();
    outside.dienststelle = Some("13101".into());
    assert!(ids(&store, &outside).await.is_empty());
    let mut inside = all.clone();
    inside.dienststelle = Some("13101".into());
    assert_eq!(ids(&store, &inside).await, vec![id[2]]);
    assert_eq!(
        store.case_dienststellen(&own.scope).await.unwrap(),
        vec!["81101".to_string()]
    );
    // Every Dienststelle with open work, once (13101's other case is released).
    assert_eq!(
        store.case_dienststellen(&Scope::All).await.unwrap(),
        vec!["13101".to_string(), "81101".into(), "99999".into()]
    );

    // Rule filter: the whole rule id, not a prefix.
    let mut rule = all.clone();
    rule.rule = Some("iban_pruefziffer".into());
    assert_eq!(ids(&store, &rule).await, vec![id[0]]);
    rule.rule = Some("plz".into());
    assert_eq!(ids(&store, &rule).await, vec![id[0], id[1], id[4]]);
    rule.rule = Some("%".into());
    assert!(ids(&store, &rule).await.is_empty());

    // Age: at least 10 days old.
    let mut old = all.clone();
    old.created_before = Some(now - Duration::days(10) + Duration::minutes(1));
    assert_eq!(ids(&store, &old).await, vec![id[0], id[1], id[2]]);

    // Search by name part (case-insensitive, % and _ literal) or antragId.
    let mut s = all.clone();
    s.search = Search::parse("Popescu");
    assert_eq!(
        ids(&store, &s).await,
        vec![id[0]],
        "released ben popescu is not listed"
    );
    // Stored as written, found in any case (Unicode, not only ASCII).
    s.search = Search::parse("MÜLLER");
    assert_eq!(ids(&store, &s).await, vec![id[2]]);
    let page = store.list_cases(&s).await.unwrap();
    assert_eq!(page.items[0].applicant.as_deref(), Some("Anna Müller"));
    s.search = Search::parse("100%_s");
    assert_eq!(ids(&store, &s).await, vec![id[4]]);
    s.search = Search::parse("0%");
    assert_eq!(ids(&store, &s).await, vec![id[4]]);
    s.search = Search::parse("%%");
    assert!(ids(&store, &s).await.is_empty());
    s.search = Search::parse("a_n");
    assert!(ids(&store, &s).await.is_empty(), "_ is no wildcard");
    s.search = Search::parse(&id[2].to_string());
    assert_eq!(ids(&store, &s).await, vec![id[2]]);
    let mut s_own = own.clone();
    s_own.search = Search::parse(&id[2].to_string());
    assert!(
        ids(&store, &s_own).await.is_empty(),
        "search stays in scope"
    );

    // Paging: 2 per page, oldest first, count over all pages.
    let mut p = all.clone();
    p.per_page = 2;
    assert_eq!(ids(&store, &p).await, vec![id[0], id[1]]);
    p.page = 1;
    assert_eq!(ids(&store, &p).await, vec![id[2], id[4]]);
    // The back half is read from the newest end; same order.
    p.per_page = 3;
    p.page = 1;
    assert_eq!(ids(&store, &p).await, vec![id[4]]);
    p.per_page = 1;
    for (page, want) in [id[0], id[1], id[2], id[4]].iter().enumerate() {
        p.page = page as u32;
        assert_eq!(ids(&store, &p).await, vec![*want], "page {page}");
    }
    let mut pr = rule.clone();
    pr.rule = Some("plz".into());
    pr.per_page = 2;
    pr.page = 1;
    assert_eq!(ids(&store, &pr).await, vec![id[4]]);
    p.per_page = 2;
    p.page = 2;
    let last = store.list_cases(&p).await.unwrap();
    assert!(last.items.is_empty());
    assert_eq!(last.totals.count, 4);

    store.close().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn case_list_sqlite() {
    case_list(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn case_list_postgres() {
    case_list(Db::Postgres).await;
}

/// The retention purge deletes the per-address and per-name failure counts
/// a day after their last failure (or without a time, from before the
/// migration), and no others. `last`: the latest failure the store holds so
/// far (of 10.0.0.1 and one name).
async fn purges_old_failure_counts(env: &TestEnv, store: &Store, last: DateTime<Utc>) {
    let recent = last + FAILURE_MEMORY;
    let now = recent + Duration::minutes(1);
    let w = Duration::minutes(15);
    let almost_a_day = now - FAILURE_MEMORY + Duration::minutes(2);
    store
        .record_address_failure("10.0.0.3", recent, w)
        .await
        .unwrap();
    store
        .record_address_failure("10.0.0.4", almost_a_day, w)
        .await
        .unwrap();
    let fresh = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    store
        .record_name_failure(fresh, almost_a_day, 3, w)
        .await
        .unwrap();
    let untimed = "0000000000000000000000000000000000000000000000000000000000000000";
    let sql = format!("INSERT INTO name_failures (name_sha256, failures) VALUES ('{untimed}', 2)");
    run_sql(env, &sql).await;
    let config = RetentionConfig::default();
    let purge = |dry_run| PurgeRequest {
        config: &config,
        now,
        dry_run,
        keep_pointer: &|_, _| false,
        session_max_age: None,
    };
    let counted = store.purge(&purge(true)).await.unwrap();
    assert_eq!(
        counted.login_failures, 3,
        "10.0.0.1, the old and the untimed name"
    );
    assert_eq!(store.purge(&purge(false)).await.unwrap(), counted);
    let gone = store.address_failures("10.0.0.1").await.unwrap();
    assert_eq!(gone, (0, None));
    assert_eq!(store.address_failures("10.0.0.3").await.unwrap().0, 1);
    assert_eq!(store.address_failures("10.0.0.4").await.unwrap().0, 1);
    assert_eq!(store.purge(&purge(false)).await.unwrap().login_failures, 0);
    // The recent name is still counted: its next failure is its second.
    let second = store.record_name_failure(fresh, now, 3, w).await;
    assert_eq!(second.unwrap(), 2);
}

async fn users_and_sessions(db: Db) {
    let env = TestEnv::new(db, "wb-users").await;
    let store = env.store().await;
    let now = Utc::now();
    let anna = NewUser {
        name: "anna".into(),
        password_hash: "$argon2id$x".into(),
        roles: vec![Role::Sachbearbeitung],
        dienststellen: vec!["81101".into(), "81102".into()],
    };
    let id = store.create_user(&anna, now).await.unwrap();
    let e = store.create_user(&anna, now).await.unwrap_err();
    assert!(is_unique_violation(&e), "{e}");
    let u = store.user_by_name("anna").await.unwrap().unwrap();
    assert_eq!(u.id, id);
    assert_eq!(u.roles, vec![Role::Sachbearbeitung]);
    assert_eq!(u.dienststellen, vec!["81101", "81102"]);
    assert!(!u.disabled && u.locked_until.is_none());
    assert!(store.user_by_name("bernd").await.unwrap().is_none());

    // Failures per account: locked from the 3rd on (here), cleared on success.
    let lock = Duration::minutes(15);
    for n in 1..=3 {
        assert_eq!(
            store.record_user_failure(id, now, 3, lock).await.unwrap(),
            n
        );
        let locked = store
            .user_by_name("anna")
            .await
            .unwrap()
            .unwrap()
            .locked_until;
        assert_eq!(locked.is_some(), n >= 3, "after {n}");
    }
    // A name without an account: counted and locked the same way.
    let name = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    assert_eq!(store.name_locked_until(name).await.unwrap(), None);
    for n in 1..=4 {
        let failures = store.record_name_failure(name, now, 3, lock).await.unwrap();
        assert_eq!(failures, n);
        let locked = store.name_locked_until(name).await.unwrap();
        // (PostgreSQL keeps microseconds.)
        let off = locked.map(|t| (t - (now + lock)).num_milliseconds());
        assert_eq!(off, (n >= 3).then_some(0), "after {n}");
    }
    // Within a day of the last failure the count goes on; a day after it,
    // it starts again at 1.
    let within = now + FAILURE_MEMORY - Duration::minutes(1);
    let on = store.record_user_failure(id, within, 3, lock).await;
    assert_eq!(on.unwrap(), 4);
    let on = store.record_name_failure(name, within, 3, lock).await;
    assert_eq!(on.unwrap(), 5);
    let day_after = within + FAILURE_MEMORY + Duration::minutes(1);
    let again = store.record_user_failure(id, day_after, 3, lock).await;
    assert_eq!(again.unwrap(), 1);
    let again = store.record_name_failure(name, day_after, 3, lock).await;
    assert_eq!(again.unwrap(), 1);
    store.clear_user_failures(id).await.unwrap();
    let u = store.user_by_name("anna").await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until), (0, None));

    // Failures per address: counted, restarted after the window.
    let w = Duration::minutes(15);
    assert_eq!(
        store
            .record_address_failure("10.0.0.1", now, w)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_address_failure("10.0.0.1", now, w)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .record_address_failure("10.0.0.2", now, w)
            .await
            .unwrap(),
        1
    );
    let later = now + Duration::minutes(16);
    assert_eq!(
        store
            .record_address_failure("10.0.0.1", later, w)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.address_failures("10.0.0.1").await.unwrap().0, 1);
    store.clear_address_failures("10.0.0.2").await.unwrap();
    assert_eq!(store.address_failures("10.0.0.2").await.unwrap(), (0, None));
    purges_old_failure_counts(&env, &store, day_after).await;

    // Sessions: found with their account, touched, ended.
    store.create_session("h1", id, "csrf1", now).await.unwrap();
    store
        .create_session("h2", id, "csrf2", now - Duration::hours(11))
        .await
        .unwrap();
    let s = store.session("h1").await.unwrap().unwrap();
    assert_eq!(
        (s.csrf_token.as_str(), s.user.name.as_str()),
        ("csrf1", "anna")
    );
    store
        .touch_session("h1", now + Duration::minutes(5))
        .await
        .unwrap();
    let s = store.session("h1").await.unwrap().unwrap();
    assert!(s.last_seen_at > s.created_at);
    let gone = store
        .delete_expired_sessions(now - Duration::minutes(30), now - Duration::hours(10))
        .await
        .unwrap();
    assert_eq!(gone, 1);
    assert!(store.session("h2").await.unwrap().is_none());

    // Saved searches: found by their own session only, the newest
    // SEARCHES_PER_SESSION kept, gone with the session (below).
    store.create_session("h4", id, "csrf4", now).await.unwrap();
    store.save_search("h1", "s0", "Popescu", now).await.unwrap();
    assert_eq!(
        store.saved_search("h1", "s0").await.unwrap().as_deref(),
        Some("Popescu")
    );
    assert_eq!(store.saved_search("h4", "s0").await.unwrap(), None);
    assert_eq!(store.saved_search("h1", "s9").await.unwrap(), None);
    for i in 1..=SEARCHES_PER_SESSION {
        let at = now + Duration::seconds(i);
        store
            .save_search("h1", &format!("s{i}"), "x", at)
            .await
            .unwrap();
    }
    assert_eq!(store.saved_search("h1", "s0").await.unwrap(), None);
    assert!(store.saved_search("h1", "s1").await.unwrap().is_some());
    store.delete_session("h4").await.unwrap();

    // Roles, password and disabling; the last two end the sessions.
    assert!(store
        .set_user_roles("anna", &[Role::Administration], &[], now)
        .await
        .unwrap());
    assert!(store
        .user_by_name("anna")
        .await
        .unwrap()
        .unwrap()
        .has(Role::Administration));
    assert!(store
        .set_password_hash("anna", "$argon2id$y", now)
        .await
        .unwrap());
    assert!(store.session("h1").await.unwrap().is_none());
    assert_eq!(store.saved_search("h1", "s1").await.unwrap(), None);
    store.create_session("h3", id, "c", now).await.unwrap();
    assert!(store.set_user_disabled("anna", true, now).await.unwrap());
    assert!(store.session("h3").await.unwrap().is_none());
    assert!(store.user_by_name("anna").await.unwrap().unwrap().disabled);
    assert!(!store.set_user_disabled("nobody", true, now).await.unwrap());
    assert_eq!(store.users().await.unwrap().len(), 1);

    // Audit: appended in order, per case and overall.
    let case_id = Uuid::new_v4();
    store
        .audit(&NewAudit::new("anna", Action::View, Some(case_id)), now)
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.audit(
        &NewAudit::new("anna", Action::Denied, Some(case_id)).detail("scope"),
        now + Duration::seconds(1),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store
        .audit(&NewAudit::new("anna", Action::Login, None), now)
        .await
        .unwrap();
    let of = store.audit_of(case_id).await.unwrap();
    let actions: Vec<&str> = of.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, vec!["view", "denied"]);
    assert_eq!(of[1].detail.as_deref(), Some("scope"));
    let recent = store.audit_recent(None, 2).await.unwrap();
    assert_eq!(recent[0].action, "login");
    assert_eq!(recent.len(), 2);

    store.close().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_and_sessions_sqlite() {
    users_and_sessions(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_and_sessions_postgres() {
    users_and_sessions(Db::Postgres).await;
}

/// Cases stored before the workbench migration get their search and
/// filter columns from the stored application; the new statuses are allowed.
async fn backfill(db: Db, before: i64) {
    let env = TestEnv::new(db, "wb-backfill").await;
    let store = Store::connect_lazy(&allegro_store::StoreConfig {
        url: env.db_url.clone(),
        ..Default::default()
    })
    .unwrap();
    store.migrate_until(before).await.unwrap();
    let body = br#"{"antragsteller":{"vornamen":"Ioana Maria","familienname":"Popescu"}}"#;
    let findings = r#"[{"pointer":"/a","severity":"error","rule":"r2","message":"m"},
        {"pointer":"/b","severity":"warning","rule":"w1","message":"m"},
        {"pointer":"/c","severity":"error","rule":"r1","message":"m"}]"#;
    let (good, bad) = (Uuid::new_v4(), Uuid::new_v4());
    macro_rules! old_rows {
        ($pool:expr) => {{
            let pool = $pool;
            for (id, body, findings) in [(good, &body[..], findings), (bad, &b"\xff{"[..], "nope")]
            {
                sqlx::query(
                    "INSERT INTO applications (antrag_id, body, body_sha256, outcome, findings, \
                     created_at) VALUES ($1, $2, 'h', 'rejected', $3, $4)",
                )
                .bind(id)
                .bind(body)
                .bind(findings)
                .bind(Utc::now())
                .execute(&pool)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO cases (antrag_id, dienststellennummer, status, created_at, \
                     updated_at) VALUES ($1, '81101', 'open', $2, $2)",
                )
                .bind(id)
                .bind(Utc::now())
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }};
    }
    match db {
        Db::Sqlite => old_rows!(sqlx::SqlitePool::connect(&env.db_url).await.unwrap()),
        Db::Postgres => old_rows!(sqlx::PgPool::connect(&env.db_url).await.unwrap()),
    }
    store.migrate().await.unwrap();
    let page = store.list_cases(&query(Scope::All)).await.unwrap();
    let row = |id| page.items.iter().find(|c| c.antrag_id == id).unwrap();
    // The workbench migration stored the name lower-cased; the later one
    // reads it again as written and keeps the search key lower-cased.
    assert_eq!(row(good).applicant.as_deref(), Some("Ioana Maria Popescu"));
    let search = CaseQuery {
        search: Search::parse("MARIA pope"),
        ..query(Scope::All)
    };
    assert_eq!(ids(&store, &search).await, [good]);
    assert_eq!(row(good).error_rules, ",r1,r2,");
    assert_eq!(row(bad).applicant, None);
    assert_eq!(row(bad).error_rules, "");
    set_status(&env, good, "deferred").await;
    set_status(&env, bad, "closed").await;
    store.close().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_sqlite() {
    backfill(Db::Sqlite, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_postgres() {
    backfill(Db::Postgres, 5).await;
}

/// A case whose findings column does not decode is an error naming the
/// table, the column and the antragId (never its content), not a case
/// without findings; the list, which does not read findings, still shows it.
async fn corrupt_findings(db: Db) {
    let env = TestEnv::new(db, "wb-corrupt").await;
    let store = env.store().await;
    let row = case("81101", 1, "erika mustermann", ",plz,", Utc::now());
    let id = row.antrag_id;
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&[row]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.load_case(id).await.unwrap().is_some());

    // The only case of this database.
    run_sql(
        &env,
        r#"UPDATE cases SET findings = '[{"rule": "Erika Mustermann"'"#,
    )
    .await;
    let err = store.load_case(id).await.unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("cases.findings") && msg.contains(&id.to_string()),
        "{msg}"
    );
    assert!(!msg.contains("Erika"), "{msg}");
    assert!(store
        .cases_open_for_work(None, 10)
        .await
        .unwrap_err()
        .is_corrupt());
    assert_eq!(ids(&store, &query(Scope::All)).await, vec![id]);
    store.close().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_findings_sqlite() {
    corrupt_findings(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_findings_postgres() {
    corrupt_findings(Db::Postgres).await;
}
