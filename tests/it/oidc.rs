//! Single sign-on (issue #24) against a real OpenID provider: npm
//! `oidc-provider` (OpenID Certified, tests/browser/oidc-provider.mjs),
//! driven through real Chromium. A caseworker signs in through the
//! provider and sees only the cases of the Dienststelle its group maps to;
//! a replayed answer, an ID token for another audience, an expired one and
//! an account without a mapped group are refused and audited; logout ends
//! the workbench's session and the provider's; local login can be off.

use allegro_testkit as support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allegro_core::pipeline::Pipeline;
use allegro_store::audit::AuditRow;
use allegro_store::Store;
use allegro_testkit::browser::{self, Chromedriver, Client};
use serde_json::Value;
use support::workbench::{add_user, Web};
use support::{free_port, http_get, repo_root, Db, TestEnv};
use uuid::Uuid;

const FAULTY: &str = include_str!("../../fixtures/contract/hauptantrag-mit-fehlern.json");
const CLIENT_ID: &str = "allegro-bridge-werkbank";
const CLIENT_SECRET: &str = "test-geheimnis-der-werkbank";
/// The provider's accounts and their groups.
const ACCOUNTS: &str = r#"{
    "sb-nord": ["jc-sachbearbeitung-81101", "jc-alle"],
    "fremd": ["jc-alle"],
    "admin": ["jc-sachbearbeitung-81101"]
}"#;

/// `node oidc-provider.mjs` on a free port; killed on drop.
struct Provider {
    child: Child,
    port: u16,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    fn start(web_port: u16) -> Provider {
        let port = free_port();
        let web = format!("http://127.0.0.1:{web_port}");
        let mut child = Command::new("node")
            .arg("oidc-provider.mjs")
            .current_dir(repo_root().join("tests/browser"))
            .env("PORT", port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", format!("{web}/anmelden/oidc/rueckkehr"))
            .env("POST_LOGOUT_URI", format!("{web}/anmelden"))
            .env("ACCOUNTS", ACCOUNTS)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (installed by scripts/setup-browser.sh)");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "listening", "the provider did not start");
        // The provider keeps writing (its warnings); a closed pipe would end it.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Provider { child, port }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The body of a GET to the provider's test hooks.
    async fn hook(&self, path: &str) -> Value {
        let answer = http_get(self.port, path).await;
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {answer}"))
    }
}

/// The workbench's config: sign-on through `provider`, one group mapped.
fn write_config(env: &TestEnv, provider: &Provider, web_port: u16, local_login: bool) {
    let secret = env.dir.path().join("oidc-client-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let config = format!(
        r#"[web]
local_login = {local_login}

[web.oidc]
enabled = true
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret_file = "{secret}"
redirect_url = "http://127.0.0.1:{web_port}/anmelden/oidc/rueckkehr"
groups_claim = "groups"

[[web.oidc.group]]
value = "jc-sachbearbeitung-81101"
roles = ["sachbearbeitung"]
dienststellen = ["81101"]
"#,
        issuer = provider.issuer(),
        secret = secret.display(),
    );
    let dir = env.dir.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("allegro-bridge.toml"), config).unwrap();
}

async fn store_case(store: &Store, pipeline: &Pipeline, dst: &str) -> Uuid {
    let id = Uuid::new_v4();
    let mut doc: Value = serde_json::from_str(FAULTY).unwrap();
    doc["antragId"] = Value::String(id.to_string());
    doc["jobcenter"]["dienststellennummer"] = Value::String(dst.into());
    support::workbench::store_rejected(store, pipeline, id, &doc, dst, None).await;
    id
}

/// Clicks "Mit Dienstkonto anmelden" on the login page and, where the
/// provider asks, signs in as `login`; waits for the workbench's answer.
async fn sign_on(c: &Client, web: &Web, login: &str) {
    sign_on_at_provider(c, web, login).await;
    wait_for_path(c, web, &["/faelle", "/anmelden/oidc/rueckkehr"]).await;
}

/// The part of [`sign_on`] up to the provider's answer.
async fn sign_on_at_provider(c: &Client, web: &Web, login: &str) {
    c.goto(&format!("http://127.0.0.1:{}/anmelden", web.port))
        .await
        .unwrap();
    browser::click_and_load(c, "#dienstkonto").await;
    // The workbench's page moving on to the provider, then the provider's
    // login form (unless its session is still open).
    wait_while_on(c, web, &["/anmelden", "/anmelden/oidc"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if browser::exists(c, "input[name=login]").await {
        browser::fill(c, "input[name=login]", login).await;
        browser::fill(c, "input[name=password]", "beliebig").await;
        browser::click_and_load(c, "button[type=submit]").await;
    }
}

/// Waits until the browser has left `paths` of the workbench (a page that
/// moves on by itself).
async fn wait_while_on(c: &Client, web: &Web, paths: &[&str]) {
    let prefix = format!("http://127.0.0.1:{}", web.port);
    let start = Instant::now();
    loop {
        let url = browser::page_url(c).await;
        let path = url
            .strip_prefix(&prefix)
            .map(|p| p.split('?').next().unwrap_or(""));
        if !path.is_some_and(|p| paths.contains(&p)) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "still at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser is on one of `paths` of the workbench.
async fn wait_for_path(c: &Client, web: &Web, paths: &[&str]) -> String {
    let prefix = format!("http://127.0.0.1:{}", web.port);
    let start = Instant::now();
    loop {
        let url = browser::page_url(c).await;
        let path = url.strip_prefix(&prefix).unwrap_or("").split('?').next();
        if let Some(p) = path.filter(|p| paths.contains(p)) {
            return p.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not on {paths:?} but at {url}:\n{}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SHA-256 of the browser's session cookie, as the store keys it.
async fn session_hash(c: &Client) -> String {
    let cookie = c.get_named_cookie("bridge_session").await.unwrap();
    allegro_web::workbench::auth::token_hash(cookie.value())
}

/// The newest login refusal's detail in the audit log.
async fn last_refusal(store: &Store) -> String {
    let rows: Vec<AuditRow> = store.audit_recent(None, 20).await.unwrap();
    rows.iter()
        .find(|r| r.action.as_str() == "login_failed")
        .and_then(|r| r.detail.clone())
        .unwrap_or_default()
}

/// Asserts the browser shows the login page with the refusal's message.
async fn assert_refused(c: &Client, web: &Web, message: &str) {
    wait_for_path(c, web, &["/anmelden/oidc/rueckkehr"]).await;
    let text = browser::text(c, "#anmeldefehler").await;
    assert!(text.contains(message), "{text}");
    // No session came of it.
    c.goto(&format!("http://127.0.0.1:{}/faelle", web.port))
        .await
        .unwrap();
    wait_for_path(c, web, &["/anmelden"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn caseworkers_sign_on_through_the_provider_and_see_their_cases_only() {
    sign_on_flow(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn caseworkers_sign_on_with_postgres_too() {
    sign_on_flow(Db::Postgres).await;
}

async fn sign_on_flow(db: Db) {
    let env = TestEnv::new(db, "oidc").await;
    let store = env.store().await;
    let pipeline = Pipeline::load(&Default::default()).unwrap();
    let own = store_case(&store, &pipeline, "81101").await;
    let other = store_case(&store, &pipeline, "81102").await;
    let web_port = free_port();
    let provider = Provider::start(web_port);
    write_config(&env, &provider, web_port, true);
    let web = support::workbench::start_web_on(&env, web_port);
    let driver = Chromedriver::start().await;
    let base = format!("http://127.0.0.1:{web_port}");

    // Signed on: the cases of 81101, not those of 81102.
    let c = driver.session().await;
    c.goto(&format!("{base}/anmelden")).await.unwrap();
    browser::assert_accessible(&c, "login page with sign-on").await;
    sign_on(&c, &web, "sb-nord").await;
    let at = wait_for_path(&c, &web, &["/faelle", "/anmelden/oidc/rueckkehr"]).await;
    assert_eq!(at, "/faelle", "refused: {}", last_refusal(&store).await);
    let list = c.source().await.unwrap();
    assert!(list.contains(&own.to_string()), "own case missing:\n{list}");
    assert!(
        !list.contains(&other.to_string()),
        "other Dienststelle's case listed"
    );
    browser::assert_accessible(&c, "case list after sign-on").await;
    c.goto(&format!("{base}/faelle/{other}")).await.unwrap();
    assert!(c.source().await.unwrap().contains("nicht gefunden"));
    let rows = store.audit_recent(None, 20).await.unwrap();
    let login = rows
        .iter()
        .find(|r| r.action.as_str() == "login")
        .expect("the login is audited");
    assert_eq!(
        (login.actor.as_str(), login.detail.as_deref()),
        ("sb-nord", Some("OIDC"))
    );
    let user = store.user_by_name("sb-nord").await.unwrap().unwrap();
    assert_eq!(user.dienststellen, ["81101"]);
    assert!(
        user.password_hash().is_none(),
        "a provider's account has no password"
    );

    // The provider's answer replayed: its state was used.
    let replay = provider.hook("/__test/last-callback").await;
    let replay = replay["url"]
        .as_str()
        .expect("a callback was sent")
        .to_string();
    assert!(
        replay.contains("code=") && replay.contains("state="),
        "{replay}"
    );
    let fresh = driver.session().await;
    fresh.goto(&replay).await.unwrap();
    assert_refused(&fresh, &web, "fehlgeschlagen").await;
    assert_eq!(
        last_refusal(&store).await,
        "OIDC: state unbekannt oder bereits verwendet"
    );

    // Logout ends the session here and at the provider (which asks).
    c.goto(&format!("{base}/faelle")).await.unwrap();
    browser::click_and_load(&c, "form[action='/abmelden'] button").await;
    wait_while_on(&c, &web, &["/abmelden", "/faelle"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if browser::exists(&c, "button[value=yes]").await {
        browser::click_and_load(&c, "button[value=yes]").await;
    }
    wait_for_path(&c, &web, &["/anmelden"]).await;
    assert_eq!(
        provider.hook("/__test/last-callback").await["logout_hint"],
        true,
        "the logout names the ID token (id_token_hint)"
    );
    c.goto(&format!("{base}/faelle")).await.unwrap();
    wait_for_path(&c, &web, &["/anmelden"]).await;
    browser::click_and_load(&c, "#dienstkonto").await;
    assert!(
        browser::exists(&c, "input[name=login]").await,
        "the provider's session survived the logout: {}",
        browser::page_url(&c).await
    );

    // ID tokens for another audience, expired, with another nonce (each
    // signed with the provider's own key, refused by the claim checks),
    // signed by a foreign key under the provider's kid, and signed HS256
    // with the client secret (which the provider offers, and only the
    // allowed algorithms refuse).
    for (mode, detail) in [
        (
            "audience",
            "OIDC: ID-Token abgelehnt (falsche Zielgruppe (aud))",
        ),
        ("expired", "OIDC: ID-Token abgelehnt (abgelaufen (exp))"),
        ("nonce", "OIDC: ID-Token abgelehnt (falsche Nonce)"),
        (
            "foreign-key",
            "OIDC: ID-Token abgelehnt (Signatur ungültig)",
        ),
        ("hs256", "OIDC: ID-Token abgelehnt (Signatur ungültig)"),
    ] {
        assert_eq!(
            provider.hook(&format!("/__test/tamper?mode={mode}")).await["tamper"],
            mode
        );
        sign_on(&c, &web, "sb-nord").await;
        eprintln!("tampered ID token: {mode}");
        assert_refused(&c, &web, "fehlgeschlagen").await;
        assert_eq!(last_refusal(&store).await, detail, "{mode}");
    }
    browser::assert_accessible(&c, "login page after a refusal").await;

    // An answer delivered to another browser than the one that started
    // the login is refused there, and its state is then used up.
    provider.hook("/__test/tamper?mode=intercept").await;
    sign_on_at_provider(&c, &web, "sb-nord").await;
    let held = provider.hook("/__test/last-callback").await["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(held, replay, "a new answer was held back");
    let elsewhere = driver.session().await;
    elsewhere.goto(&held).await.unwrap();
    assert_refused(&elsewhere, &web, "fehlgeschlagen").await;
    assert_eq!(
        last_refusal(&store).await,
        "OIDC: Antwort gehört zu einer Anmeldung in einem anderen Browser"
    );
    c.goto(&held).await.unwrap();
    assert_refused(&c, &web, "fehlgeschlagen").await;

    // An account whose groups map to nothing gets no session.
    let stranger = driver.session().await;
    sign_on(&stranger, &web, "fremd").await;
    assert_refused(&stranger, &web, "nicht freigeschaltet").await;
    assert_eq!(
        last_refusal(&store).await,
        "OIDC: keine Gruppe für die Werkbank"
    );
    assert!(store.user_by_name("fremd").await.unwrap().is_none());

    // The provider's "admin" cannot become the local admin: refused,
    // audited without the name, the local account unchanged.
    support::workbench::add_user(
        &env,
        "admin",
        "Sehr-geheim-2026",
        &["--rolle", "administration"],
    );
    let impostor = driver.session().await;
    sign_on(&impostor, &web, "admin").await;
    assert_refused(&impostor, &web, "fehlgeschlagen").await;
    let rows = store.audit_recent(None, 5).await.unwrap();
    let refusal = rows
        .iter()
        .find(|r| r.action.as_str() == "login_failed")
        .unwrap();
    assert_eq!(
        (refusal.actor.as_str(), refusal.detail.as_deref()),
        ("-", Some("OIDC: Name gehört bereits einem anderen Konto"))
    );
    let admin = store.user_by_name("admin").await.unwrap().unwrap();
    assert!(admin.password_hash().is_some(), "still the local account");

    // Out of its group at the provider: the next sign-on is refused and the
    // session it still had ends with it.
    let working = driver.session().await;
    sign_on(&working, &web, "sb-nord").await;
    assert_eq!(wait_for_path(&working, &web, &["/faelle"]).await, "/faelle");
    // Signing on again ends the session the browser had: one login, one session.
    let first = session_hash(&working).await;
    sign_on(&working, &web, "sb-nord").await;
    assert_eq!(wait_for_path(&working, &web, &["/faelle"]).await, "/faelle");
    assert!(
        store.session(&first).await.unwrap().is_none(),
        "the old session ended"
    );
    assert_ne!(session_hash(&working).await, first);
    provider
        .hook("/__test/groups?login=sb-nord&groups=jc-alle")
        .await;
    let again = driver.session().await;
    sign_on(&again, &web, "sb-nord").await;
    assert_refused(&again, &web, "nicht freigeschaltet").await;
    let user = store.user_by_name("sb-nord").await.unwrap().unwrap();
    assert!(user.roles.is_empty() && user.dienststellen.is_empty());
    working.goto(&format!("{base}/faelle")).await.unwrap();
    wait_for_path(&working, &web, &["/anmelden"]).await;

    for client in [c, fresh, stranger, elsewhere, impostor, working, again] {
        client.close().await.unwrap();
    }
    drop(web);
    drop(provider);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_login_can_be_switched_off() {
    let env = TestEnv::new(Db::Sqlite, "oidc-local-off").await;
    let role = ["--rolle", "sachbearbeitung", "--dienststelle", "81101"];
    add_user(&env, "sb.lokal", "Sehr-geheim-2026", &role);
    let web_port = free_port();
    let provider = Provider::start(web_port);

    write_config(&env, &provider, web_port, true);
    let web = support::workbench::start_web_on(&env, web_port);
    let mut on = support::workbench::Client::new(web.port);
    let page = on.get("/anmelden");
    assert!(page.body.contains("id=\"dienstkonto\"") && page.body.contains("id=\"passwort\""));
    assert_eq!(on.login("sb.lokal", "Sehr-geheim-2026").status, 303);
    drop(web);

    write_config(&env, &provider, web_port, false);
    let web = support::workbench::start_web_on(&env, web_port);
    let mut off = support::workbench::Client::new(web.port);
    let page = off.get("/anmelden");
    assert!(page.body.contains("id=\"dienstkonto\""));
    assert!(
        !page.body.contains("id=\"passwort\""),
        "the local form is hidden"
    );
    let refused = off.login("sb.lokal", "Sehr-geheim-2026");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("lokalem Konto ist abgeschaltet"));
    assert_eq!(off.get("/faelle").status, 303, "no session");
    drop(web);
    env.cleanup().await;
}
