//! The workbench over real HTTP: `allegro-bridge web` started as a process
//! on a SQLite store, accounts created with `allegro-bridge user add`
//! (password on stdin), requests sent over TCP.
//!
//! - every route except `/anmelden` and `/static/...` answers 303 to
//!   `/anmelden` without a session;
//! - a wrong password gets the German error (title "Fehler:"), empty fields
//!   the error summary; after `LOCK_AFTER` failures even the right password
//!   is refused (lockout), and every failure is audited;
//! - a POST without (or with a wrong) CSRF token is refused and changes nothing;
//! - a caseworker sees only the cases of its own Dienststellen: another
//!   Dienststelle's case is not listed, not found by its antragId, and its
//!   URL answers 404 and is audited `denied`;
//!   a bad filter value gets the error summary;
//! - a name search is a POST: the addresses it leads to, another session's
//!   view of them and the server's log hold no name;
//! - sessions end by idle and absolute timeout and with their account;
//!   an address with many failures is refused; the `user` command checks
//!   what it stores; the daemon with `[web] listen` serves the workbench.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use allegro_store::{NewApplication, Verdict};
use allegro_testkit as support;
use chrono::{DateTime, Utc};
use support::workbench::{add_user, bridge, bridge_with_stdin, start_web, Client};
use support::{free_port, repo_root, Db, TestEnv};
use uuid::Uuid;

/// Failed logins after which an account is locked (`auth::LOCK_AFTER`).
const LOCK_AFTER: usize = 5;

/// Stores a case of Dienststelle `dst`; its antragId.
async fn add_case(env: &TestEnv, dst: &str) -> Uuid {
    let store = env.store().await;
    let id = Uuid::new_v4();
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&[NewApplication {
        antrag_id: id,
        body: b"{}".to_vec(),
        body_sha256: id.to_string(),
        verdict: Verdict::Rejected,
        mapping: "bg-ha-1.0".into(),
        findings_json: "[]".into(),
        dienststellennummer: Some(dst.into()),
        message_id: None,
        created_at: Utc::now(),
        applicant: Some("ioana popescu".into()),
        error_rules: ",iban_pruefziffer,".into(),
        owed: Vec::new(),
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store.close().await;
    id
}

async fn audit_actions(env: &TestEnv, actor: &str) -> Vec<(String, Option<Uuid>)> {
    let store = env.store().await;
    let rows = store.audit_recent(None, 1000).await.unwrap();
    store.close().await;
    let mut v: Vec<(String, Option<Uuid>)> = rows
        .into_iter()
        .filter(|r| r.actor == actor)
        .map(|r| (r.action.to_string(), r.antrag_id))
        .collect();
    v.reverse();
    v
}

const PW: &str = "richtig-langes-passwort";

#[tokio::test(flavor = "multi_thread")]
async fn every_page_needs_a_login_but_static_files() {
    let env = TestEnv::new(Db::Sqlite, "wb-http-anon").await;
    let id = add_case(&env, "81101").await;
    let web = start_web(&env);
    let mut c = Client::new(web.port);
    let case = format!("/faelle/{id}");
    let gets = [
        "/".to_string(),
        "/faelle".into(),
        "/faelle?suche=popescu".into(),
        case.clone(),
        format!("{case}/feld?zeiger=/antragsteller/familienname"),
        format!("{case}/zurueckstellen"),
        "/verwaltung/protokoll".into(),
        "/verwaltung/benutzer".into(),
        "/verwaltung/nachpruefung".into(),
        "/verwaltung/dead-letters".into(),
        "/gibt-es-nicht".into(),
    ];
    for path in &gets {
        let a = c.get(path);
        assert_eq!(
            (a.status, a.header("location")),
            (303, Some("/anmelden")),
            "GET {path}"
        );
        assert!(!a.body.contains("popescu") && !a.body.contains("Popescu"));
    }
    for path in [
        "/abmelden",
        "/faelle",
        &format!("{case}/freigeben"),
        &format!("{case}/pruefen"),
    ] {
        let a = c.post(path, &[("csrf", "x")]);
        assert_eq!(
            (a.status, a.header("location")),
            (303, Some("/anmelden")),
            "POST {path}"
        );
    }
    // A made-up session cookie is no session.
    c.cookies.insert("bridge_session".into(), "ab".repeat(32));
    assert_eq!(c.get("/faelle").status, 303);

    // The login page and the styles need none; headers on both.
    let login = c.get("/anmelden");
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("<html lang=\"de\">") && login.body.contains("Zum Inhalt springen")
    );
    let csp = login.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(login.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(login.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(login.header("cache-control"), Some("no-store"));
    assert_eq!(
        login.header("strict-transport-security"),
        None,
        "plain HTTP"
    );
    let login_cookie = login
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("bridge_login="))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));
    for path in [
        "/static/app.css",
        "/static/kern/kern.min.css",
        "/static/kern/fonts/fira-sans.css",
    ] {
        let a = c.get(path);
        assert_eq!(a.status, 200, "{path}");
        assert!(
            a.header("content-type").unwrap().starts_with("text/css"),
            "{path}"
        );
    }
    drop(web);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_get_a_german_error_and_then_a_lockout() {
    let env = TestEnv::new(Db::Sqlite, "wb-http-login").await;
    add_user(
        &env,
        "anna",
        PW,
        &["--rolle", "sachbearbeitung", "--dienststelle", "81101"],
    );
    let web = start_web(&env);
    let mut c = Client::new(web.port);

    // Empty fields: the error summary links to each field.
    let page = c.get("/anmelden");
    let csrf = page.input("csrf");
    let a = c.post(
        "/anmelden",
        &[("csrf", &csrf), ("benutzername", ""), ("passwort", "")],
    );
    assert_eq!(a.status, 422);
    assert!(a.title().starts_with("Fehler: "), "{}", a.title());
    assert!(a.body.contains("kern-alert--danger") && a.body.contains("role=\"alert\""));
    assert!(a.body.contains("href=\"#benutzername\"") && a.body.contains("href=\"#passwort\""));
    assert!(a.body.contains("aria-describedby=\"benutzername-fehler\""));

    // A wrong password: German, the name kept, no session; the message in
    // the error summary, linked to the password field and beside it.
    let a = c.login("anna", "falsch-falsch-falsch");
    assert_eq!(a.status, 401);
    assert!(a.title().starts_with("Fehler: "));
    assert!(
        a.body.contains("Benutzername oder Passwort ist falsch."),
        "{}",
        a.body
    );
    assert!(a.body.contains("id=\"fehlerliste\"") && a.body.contains("href=\"#passwort\""));
    assert!(a
        .body
        .contains("<p class=\"kern-error\" id=\"passwort-fehler\">"));
    assert!(a
        .body
        .contains("aria-describedby=\"passwort-fehler\" aria-invalid=\"true\""));
    assert!(a.body.contains("value=\"anna\""));
    assert!(!c.cookies.contains_key("bridge_session"));
    // An unknown name is told the same.
    let a = c.login("niemand", "falsch-falsch-falsch");
    assert!(a.body.contains("Benutzername oder Passwort ist falsch."));

    for _ in 1..LOCK_AFTER {
        assert_eq!(c.login("anna", "falsch-falsch-falsch").status, 401);
    }
    // Locked now: the right password is refused too.
    let a = c.login("anna", PW);
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.body.contains("vorübergehend gesperrt"), "{}", a.body);
    assert!(!c.cookies.contains_key("bridge_session"));
    assert_eq!(c.get("/faelle").status, 303);
    // A name without an account locks the same way, so a lock does not
    // tell which names exist ("niemand" failed once above).
    for _ in 1..LOCK_AFTER {
        assert_eq!(c.login("niemand", "falsch-falsch-falsch").status, 401);
    }
    let a = c.login("niemand", "falsch-falsch-falsch");
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.body.contains("vorübergehend gesperrt"), "{}", a.body);

    // Audited, without the password.
    let actions = audit_actions(&env, "anna").await;
    assert_eq!(actions.len(), LOCK_AFTER + 1, "{actions:?}");
    assert!(actions.iter().all(|(a, _)| a == "login_failed"));
    let log =
        std::fs::read_to_string(env.dir.path().join(format!("web-{}.log", web.port))).unwrap();
    assert!(
        !log.contains("falsch-falsch") && !log.contains(PW) && !log.contains("anna"),
        "{log}"
    );

    // `user passwd` lifts the lock; then the login works and is audited.
    let mut child = bridge(&env)
        .args(["user", "passwd", "anna"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PW}-neu").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let a = c.login("anna", &format!("{PW}-neu"));
    assert_eq!((a.status, a.header("location")), (303, Some("/faelle")));
    let cookie = a
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("bridge_session="))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/")
    );
    assert!(!cookie.contains("Secure"), "not configured");
    assert_eq!(c.get("/faelle").status, 200);
    assert_eq!(audit_actions(&env, "anna").await.last().unwrap().0, "login");
    drop(web);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_without_its_csrf_token_is_refused_and_changes_nothing() {
    let env = TestEnv::new(Db::Sqlite, "wb-http-csrf").await;
    add_user(&env, "anna", PW, &["--rolle", "administration"]);
    let web = start_web(&env);
    let mut c = Client::new(web.port);

    // The login form itself: no token, no session.
    c.get("/anmelden");
    let a = c.post("/anmelden", &[("benutzername", "anna"), ("passwort", PW)]);
    assert_eq!(a.status, 403);
    assert!(a.body.contains("Es wurde nichts gespeichert."));
    assert!(!c.cookies.contains_key("bridge_session"));

    assert_eq!(c.login("anna", PW).status, 303);
    let list = c.get("/faelle");
    assert_eq!(list.status, 200);
    let token = list.input("csrf");
    // Logging out without the token, or with another, does nothing.
    for form in [
        vec![],
        vec![("csrf", "0".repeat(64))],
        vec![("csrf", token[..63].to_string())],
    ] {
        let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = c.post("/abmelden", &f);
        assert_eq!(a.status, 403, "{form:?}");
        assert!(a.body.contains("Formular abgelaufen"));
        assert_eq!(
            c.get("/faelle").status,
            200,
            "still logged in after {form:?}"
        );
    }
    assert!(!audit_actions(&env, "anna")
        .await
        .iter()
        .any(|(a, _)| a == "logout"));
    // A malformed request gets a German page, not the framework's English:
    // a query with a field twice, a method the route does not take.
    let malformed = [
        (c.get("/faelle?seite=1&seite=2"), 400),
        (c.get("/abmelden"), 405),
        (c.post("/", &[("csrf", &token)]), 405),
    ];
    for (a, status) in malformed {
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.body.contains("Anfrage nicht verständlich"), "{}", a.body);
        assert!(a.body.contains("<html lang=\"de\">"), "{}", a.body);
        assert!(!a.body.contains("Failed to"), "{}", a.body);
    }
    // With it, the session ends.
    let a = c.post("/abmelden", &[("csrf", &token)]);
    assert_eq!((a.status, a.header("location")), (303, Some("/anmelden")));
    let kept = c.cookies.clone();
    assert!(!kept.contains_key("bridge_session"));
    assert_eq!(
        audit_actions(&env, "anna").await.last().unwrap().0,
        "logout"
    );
    drop(web);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caseworker_sees_only_its_own_dienststellen() {
    let env = TestEnv::new(Db::Sqlite, "wb-http-scope").await;
    let theirs = add_case(&env, "81101").await;
    let ours = add_case(&env, "13101").await;
    add_user(
        &env,
        "bernd",
        PW,
        &["--rolle", "sachbearbeitung", "--dienststelle", "13101"],
    );
    add_user(&env, "chef", PW, &["--rolle", "administration"]);
    let web = start_web(&env);

    let mut bernd = Client::new(web.port);
    assert_eq!(bernd.login("bernd", PW).status, 303);
    let list = bernd.get("/faelle");
    assert!(
        list.body.contains(&format!("href=\"/faelle/{ours}\"")),
        "{}",
        list.body
    );
    assert!(!list.body.contains(&theirs.to_string()));
    assert!(list.body.contains("1 offener Fall"));
    let found = bernd.search(&[("suche", &theirs.to_string())]);
    assert!(!found.body.contains(&theirs.to_string()) || !found.body.contains("fall-link"));
    assert!(found.body.contains("Keine offenen Fälle gefunden."));
    let other = bernd.get("/faelle?dienststelle=81101");
    assert!(other.body.contains("Keine offenen Fälle gefunden."));

    let a = bernd.get(&format!("/faelle/{theirs}"));
    assert_eq!(a.status, 404);
    assert!(a.body.contains("Seite nicht gefunden"));

    // Administration sees both.
    let mut chef = Client::new(web.port);
    assert_eq!(chef.login("chef", PW).status, 303);
    let list = chef.get("/faelle");
    assert!(list.body.contains(&theirs.to_string()) && list.body.contains(&ours.to_string()));
    assert!(list.body.contains("2 offene Fälle"));
    // The accounts page: administration only; a caseworker gets 404 (audited).
    let users = chef.get("/verwaltung/benutzer");
    assert_eq!(users.status, 200);
    assert!(users
        .body
        .contains("<td class=\"kern-table__cell\">bernd</td>"));
    assert!(users.body.contains("13101") && users.body.contains("Sachbearbeitung"));
    // So is every administration page, each refusal audited.
    let pages = [
        "/verwaltung/benutzer",
        "/verwaltung/protokoll",
        "/verwaltung/nachpruefung",
        "/verwaltung/dead-letters",
    ];
    for page in pages {
        assert_eq!(bernd.get(page).status, 404, "{page}");
    }
    let denied = audit_actions(&env, "bernd")
        .await
        .into_iter()
        .filter(|a| *a == ("denied".to_string(), None))
        .count();
    assert_eq!(denied, pages.len());
    let home = chef.get("/");
    assert_eq!(
        (home.status, home.header("location")),
        (303, Some("/faelle"))
    );
    // A bad filter value: German message, linked from the summary, nothing lost.
    let bad = chef.search(&[("alter", "zwei"), ("suche", "popescu")]);
    assert_eq!(bad.status, 200);
    assert!(bad.title().starts_with("Fehler: "), "{}", bad.title());
    assert!(bad.body.contains("href=\"#alter\"") && bad.body.contains("ganze Zahl von Tagen"));
    assert!(bad.body.contains("aria-describedby=\"alter-fehler\""));
    assert!(bad.body.contains("value=\"zwei\"") && bad.body.contains("value=\"popescu\""));
    let rule = chef.get("/faelle?regel=iban_pruefziffer&dienststelle=13101");
    assert!(rule.body.contains("1 offener Fall") && rule.body.contains(&ours.to_string()));

    // The case page: 404 for bernd with the other Dienststelle's case (and
    // audited `denied`), found for its own.
    assert_eq!(bernd.get(&format!("/faelle/{ours}")).status, 200);
    assert!(audit_actions(&env, "bernd")
        .await
        .contains(&("denied".to_string(), Some(theirs))));
    drop(web);
    env.cleanup().await;
}

/// How a typed name could show in a URL or a log: as typed, lower-cased,
/// URL-encoded (either way of writing a space), or its family name alone.
fn name_forms(name: &str) -> Vec<String> {
    let lower = name.to_lowercase();
    let encoded = serde_urlencoded::to_string([("x", &lower)]).unwrap()[2..].to_string();
    let family = lower.rsplit(' ').next().unwrap().to_string();
    vec![
        lower.clone(),
        encoded.clone(),
        encoded.replace('+', "%20"),
        family,
    ]
}

/// Issue #19, nothing personal in a URL: the search is a POST answered
/// with 303 to an address holding only an opaque id; that address lists
/// the case for the same session only (another session, a name typed into
/// the address, a search after logout: an empty search with a notice);
/// the server's log, at trace level, holds no name.
#[tokio::test(flavor = "multi_thread")]
async fn a_name_search_puts_no_name_in_a_url_or_the_log() {
    let mut env = TestEnv::new(Db::Sqlite, "wb-http-search").await;
    env.extra_env.push(("RUST_LOG".into(), "trace".into()));
    let id = add_case(&env, "81101").await;
    add_user(&env, "chef", PW, &["--rolle", "administration"]);
    add_user(&env, "bea", PW, &["--rolle", "administration"]);
    let web = start_web(&env);
    let mut chef = Client::new(web.port);
    assert_eq!(chef.login("chef", PW).status, 303);

    let typed = "Ioana Popescu";
    let posted = chef.search_post(&[("suche", typed), ("regel", "iban_pruefziffer")]);
    assert_eq!(posted.status, 303, "{}", posted.body);
    let to = posted.header("location").unwrap().to_string();
    for form in name_forms(typed) {
        assert!(!to.to_lowercase().contains(&form), "{form:?} in {to}");
    }
    assert!(
        to.starts_with("/faelle?regel=iban_pruefziffer&suche="),
        "{to}"
    );
    let found = chef.get(&to);
    assert_eq!(found.status, 200);
    assert!(
        found.body.contains(&format!("href=\"/faelle/{id}\"")),
        "{}",
        found.body
    );
    assert!(found.body.contains("1 offener Fall"));
    assert_eq!(found.input("suche"), typed);
    assert!(!found.body.contains("Suche nicht verfügbar"));

    // Another session's id reveals nothing: no search text, a notice.
    let mut bea = Client::new(web.port);
    assert_eq!(bea.login("bea", PW).status, 303);
    let theirs = bea.get(&to);
    assert_eq!(theirs.status, 200);
    assert_eq!(theirs.input("suche"), "");
    assert!(theirs.body.contains("Suche nicht verfügbar"));
    // A name typed into the address is no search either.
    let typed_in = chef.get("/faelle?suche=popescu");
    assert_eq!(typed_in.input("suche"), "");
    assert!(typed_in.body.contains("Suche nicht verfügbar"));
    // An empty search: no id at all.
    let empty = chef.search_post(&[("suche", "  ")]);
    assert_eq!(empty.header("location"), Some("/faelle?seite=1"));

    // The searches end with the session.
    let pool = sqlx::SqlitePool::connect(&env.db_url).await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM searches")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);
    let csrf = chef.get("/faelle").input("csrf");
    assert_eq!(chef.post("/abmelden", &[("csrf", &csrf)]).status, 303);
    assert_eq!(count().await, 0);
    pool.close().await;

    let port = web.port;
    drop(web);
    let log = std::fs::read_to_string(env.dir.path().join(format!("web-{port}.log")))
        .unwrap()
        .to_lowercase();
    assert!(log.contains("listening"), "the log is written: {log}");
    for form in name_forms(typed) {
        assert!(!log.contains(&form), "{form:?} in the log:\n{log}");
    }
    env.cleanup().await;
}

/// `[web] listen` in the daemon serves the workbench (and nothing of the
/// ops endpoints); a case the daemon stored from the real broker (the
/// contract's faulty example) is listed and found by the applicant's name,
/// with its error rules, in PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_serves_the_workbench_with_the_cases_it_stores() {
    let mut env = TestEnv::new(Db::Postgres, "wb-http-daemon").await;
    let port = free_port();
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__WEB__LISTEN".into(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "ALLEGRO_BRIDGE__WEB__ASSETS_DIR".into(),
            repo_root().join("crates/web/assets").display().to_string(),
        ),
    ]);
    add_user(
        &env,
        "anna",
        PW,
        &["--rolle", "sachbearbeitung", "--dienststelle", "81101"],
    );
    let msg = support::rejected();
    let id = msg.antrag_id.unwrap();
    env.declare().await;
    let daemon = env.spawn_daemon();
    support::Publisher::new(&env)
        .await
        .publish_all(&env.intake, &[msg])
        .await;
    env.wait_for("the case", Duration::from_secs(60), || async {
        let store = env.store().await;
        let n = store.counts().await.unwrap().cases;
        store.close().await;
        n == 1
    })
    .await;

    let mut c = Client::new(port);
    assert_eq!(c.get("/metrics").status, 303, "no ops endpoint here");
    assert_eq!(c.login("anna", PW).status, 303, "{}", daemon.log_text());
    let found = c.search(&[("suche", "popescu")]);
    assert!(
        found.body.contains(&format!("href=\"/faelle/{id}\"")),
        "{}",
        found.body
    );
    assert!(found.body.contains("Ioana Popescu"));
    assert!(
        found.body.contains("<code>IBAN-UNGUELTIG</code>"),
        "{}",
        found.body
    );
    let by_id = c.search(&[("suche", &id.to_string())]);
    assert!(by_id.body.contains("1 offener Fall"));
    drop(daemon);
    env.cleanup().await;
}

/// Idle and absolute timeouts end a session (its row is gone too); with
/// `web.secure_cookies` the cookie is `Secure`; a disabled account's
/// session ends at once.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_time_out_and_end_with_the_account() {
    let mut env = TestEnv::new(Db::Sqlite, "wb-http-session").await;
    env.extra_env
        .push(("ALLEGRO_BRIDGE__WEB__SECURE_COOKIES".into(), "true".into()));
    add_user(&env, "anna", PW, &["--rolle", "administration"]);
    let web = start_web(&env);
    let pool = sqlx::SqlitePool::connect(&env.db_url).await.unwrap();
    let sessions = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    for (column, back) in [
        ("last_seen_at", Duration::from_secs(31 * 60)),
        ("created_at", Duration::from_secs(601 * 60)),
    ] {
        let mut c = Client::new(web.port);
        let a = c.login("anna", PW);
        let cookie = a.header("set-cookie").unwrap_or_default().to_string();
        assert!(
            a.headers.iter().any(|(k, v)| k == "set-cookie"
                && v.starts_with("bridge_session=")
                && v.contains("; Secure")),
            "{cookie}"
        );
        assert_eq!(
            a.header("strict-transport-security"),
            Some("max-age=31536000"),
            "behind HTTPS"
        );
        assert_eq!(c.get("/faelle").status, 200);
        assert_eq!(sessions().await, 1);
        // The clock moved on: the session is older than its timeout.
        let at = Utc::now() - chrono::Duration::from_std(back).unwrap();
        let sql = format!("UPDATE sessions SET {column} = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
        let a = c.get("/faelle");
        assert_eq!(
            (a.status, a.header("location")),
            (303, Some("/anmelden")),
            "{column}"
        );
        assert_eq!(
            sessions().await,
            0,
            "{column}: the expired session is deleted"
        );
    }
    let mut c = Client::new(web.port);
    assert_eq!(c.login("anna", PW).status, 303);
    let out = bridge(&env)
        .args(["user", "disable", "anna"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(c.get("/faelle").status, 303);
    let a = c.login("anna", PW);
    assert!(a.body.contains("Benutzername oder Passwort ist falsch."));
    pool.close().await;
    drop(web);
    env.cleanup().await;
}

/// An address with `ADDRESS_LIMIT` (20) recent failures is refused even
/// with a right password of another account, and retrying does not prolong
/// it; a success clears the count; an older count starts over.
#[tokio::test(flavor = "multi_thread")]
async fn an_address_with_many_failures_is_refused() {
    let env = TestEnv::new(Db::Sqlite, "wb-http-address").await;
    add_user(&env, "anna", PW, &["--rolle", "administration"]);
    let web = start_web(&env);
    let pool = sqlx::SqlitePool::connect(&env.db_url).await.unwrap();
    let set_failures = |n: i64, minutes_ago: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO login_failures (address, failures, last_failure_at) \
                 VALUES ('127.0.0.1', $1, $2) ON CONFLICT (address) DO UPDATE \
                 SET failures = $1, last_failure_at = $2",
            )
            .bind(n)
            .bind(Utc::now() - chrono::Duration::minutes(minutes_ago))
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    set_failures(20, 1).await;
    let count = || async {
        sqlx::query_as::<_, (i64, DateTime<Utc>)>(
            "SELECT failures, last_failure_at FROM login_failures",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
    };
    let locked = count().await;
    let mut c = Client::new(web.port);
    let a = c.login("anna", PW);
    assert_eq!(a.status, 429);
    assert!(a.body.contains("vorübergehend gesperrt"));
    // A refusal because of the lock counts nothing: the lock ends on time
    // however often it is retried.
    assert_eq!(c.login("anna", "falsch-falsch-falsch").status, 429);
    assert_eq!(count().await, locked);
    set_failures(19, 1).await;
    assert_eq!(c.login("anna", PW).status, 303, "below the limit");
    // A success clears the address's count.
    assert_eq!(count().await, None);
    set_failures(20, 16).await;
    let mut c = Client::new(web.port);
    assert_eq!(c.login("anna", PW).status, 303, "the window has passed");
    pool.close().await;
    drop(web);
    env.cleanup().await;
}

/// `user`: passwords only from stdin or a prompt and at least 10
/// characters, names unique, a caseworker needs a Dienststelle, roles change.
#[tokio::test(flavor = "multi_thread")]
async fn the_user_command_checks_what_it_stores() {
    let env = TestEnv::new(Db::Sqlite, "wb-user-cli").await;
    let run = |args: &[&str], stdin: &str| {
        let out = bridge_with_stdin(&env, args, stdin);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = run(
        &["user", "add", "anna", "--rolle", "sachbearbeitung"],
        "x\n",
    );
    assert!(
        !ok && text.contains("need at least one --dienststelle"),
        "{text}"
    );
    let (ok, text) = run(&["user", "add", "anna", "--rolle", "chef"], "x\n");
    assert!(
        !ok && text.contains("sachbearbeitung, administration or leitung"),
        "{text}"
    );
    let (ok, text) = run(
        &["user", "add", "anna", "--rolle", "administration"],
        "kurz\n",
    );
    assert!(!ok && text.contains("at least 10 characters"), "{text}");
    let (ok, text) = run(
        &[
            "user",
            "add",
            "anna",
            "--rolle",
            "administration",
            "--password",
            PW,
        ],
        "",
    );
    assert!(!ok, "no password argument: {text}");
    let (ok, _) = run(
        &[
            "user",
            "add",
            "anna",
            "--rolle",
            "sachbearbeitung",
            "--dienststelle",
            "81101",
        ],
        &format!("{PW}\n"),
    );
    assert!(ok);
    let (ok, text) = run(
        &["user", "add", "anna", "--rolle", "administration"],
        &format!("{PW}\n"),
    );
    assert!(!ok && text.contains("exists already"), "{text}");
    let (ok, text) = run(
        &[
            "user",
            "roles",
            "anna",
            "--rolle",
            "sachbearbeitung",
            "--dienststelle",
            "13101",
            "--dienststelle",
            "81101",
        ],
        "",
    );
    assert!(ok, "{text}");
    let (_, text) = run(&["user", "list"], "");
    assert_eq!(text.trim(), "anna\tsachbearbeitung\t13101,81101\tactive");
    let (ok, text) = run(&["user", "disable", "niemand"], "");
    assert!(!ok && text.contains("no user `niemand`"), "{text}");
    let (ok, _) = run(&["user", "disable", "anna"], "");
    assert!(ok);
    let (_, text) = run(&["user", "list"], "");
    assert!(text.trim().ends_with("disabled"), "{text}");
    // The stored hash is argon2id, never the password.
    let store = env.store().await;
    let u = store.user_by_name("anna").await.unwrap().unwrap();
    let hash = u.password_hash().expect("a local account");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PW));
    let actions: Vec<String> = store
        .audit_recent(None, 10)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|a| a.action.to_string())
        .collect();
    assert_eq!(actions, ["user_add", "user_roles", "user_disable"]);
    store.close().await;
    env.cleanup().await;
}
