//! The workbench's case list at scale (issue #12: "with 100,000 cases in
//! PostgreSQL the list and a search answer in under 100 ms at the server").
//!
//! Creates a scratch PostgreSQL database, stores N rejected applications
//! (default 100,000) spread over 40 Dienststellen and 200 days, with
//! generated applicant names and 1–3 error rules each, then sends requests
//! through the workbench's own router (session cookie, middleware, store
//! query, template; everything but the TCP socket) and reports the median
//! and the slowest of R rounds per request kind. The database is dropped at
//! the end.
//!
//! ```text
//! cargo bench --bench workbench -- [--cases 100000] [--rounds 30] [--keep]
//! ```
//!
//! Environment: `ALLEGRO_TEST_PG` (admin URL) as for the tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allegro_core::pipeline::{Pipeline, PipelineConfig};
use allegro_store::users::{NewUser, Role};
use allegro_store::{NewApplication, Store, StoreConfig, Verdict};
use allegro_testkit::{create_pg_database, drop_pg_database, repo_root, unique};
use allegro_web::workbench::{self, auth, FixedPipeline, WebConfig, WorkbenchState};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{Duration as Days, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;
use uuid::Uuid;

const FIRST: [&str; 12] = [
    "anna", "ahmad", "ioana", "ben", "fatima", "lukas", "maria", "noah", "olga", "peter", "sofia",
    "yusuf",
];
const LAST: [&str; 10] = [
    "müller", "ibrahim", "popescu", "schmidt", "nowak", "yilmaz", "weber", "kowalski", "hoffmann",
    "becker",
];
const RULES: [&str; 8] = [
    "iban_pruefziffer",
    "plz_format",
    "haushalt_groesse",
    "steuer_id",
    "geburtsdatum",
    "miete_plausibel",
    "einkommen_nachweis",
    "kv_nummer",
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Case `i`: deterministic Dienststelle, age, name and rules.
fn case(i: usize, now: chrono::DateTime<Utc>) -> NewApplication {
    let id = Uuid::new_v4();
    let mut rules: Vec<&str> = (0..1 + i % 3).map(|k| RULES[(i / 7 + k * 3) % 8]).collect();
    rules.sort_unstable();
    rules.dedup();
    // One case in a thousand has the rare surname the search looks for.
    let last = if i % 1000 == 0 {
        "zwiebelmann"
    } else {
        LAST[(i / 12) % 10]
    };
    NewApplication {
        antrag_id: id,
        body: format!("{{\"antragId\":\"{id}\"}}").into_bytes(),
        body_sha256: id.to_string(),
        verdict: Verdict::Rejected,
        mapping: "bg-ha-1.0".into(),
        findings_json: "[]".into(),
        dienststellennummer: Some(format!("{}", 81100 + i % 40)),
        message_id: None,
        created_at: now - Days::minutes((i as i64 * 2880) % (200 * 1440)),
        applicant: Some(format!("{} {last}", FIRST[i % 12])),
        error_rules: format!(",{},", rules.join(",")),
        owed: Vec::new(),
    }
}

async fn fill(store: &Store, n: usize) {
    let now = Utc::now();
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let rows: Vec<NewApplication> = chunk.iter().map(|&i| case(i, now)).collect();
        let mut tx = store.begin().await.unwrap();
        tx.insert_applications(&rows).await.unwrap();
        tx.commit().await.unwrap();
    }
    if let Store::Postgres(p) = store {
        // What autovacuum does after such a load (visibility map, statistics).
        sqlx::query("VACUUM ANALYZE").execute(p).await.unwrap();
    }
    println!("stored {n} cases in {:.1} s", t.elapsed().as_secs_f64());
}

/// A session for a new user with these roles; the cookie value.
async fn session(store: &Store, name: &str, roles: Vec<Role>, dst: Vec<String>) -> String {
    let now = Utc::now();
    let user = NewUser {
        name: name.into(),
        password_hash: "unused".into(),
        roles,
        dienststellen: dst,
    };
    let id = store.create_user(&user, now).await.unwrap();
    let token = auth::random_token();
    store
        .create_session(&auth::token_hash(&token), id, &auth::random_token(), now)
        .await
        .unwrap();
    token
}

/// `/faelle?suche=ID` for `text` saved as a search of the session `cookie`
/// (as `POST /faelle` saves it).
async fn saved_search(store: &Store, cookie: &str, text: &str) -> String {
    let id = auth::random_token()[..32].to_string();
    store
        .save_search(&auth::token_hash(cookie), &id, text, Utc::now())
        .await
        .unwrap();
    format!("/faelle?suche={id}")
}

#[tokio::main]
async fn main() {
    let n = arg("--cases", 100_000);
    let rounds = arg("--rounds", 30);
    let db = unique("bench-wb").replace('-', "_");
    let store = Store::connect(&StoreConfig {
        url: create_pg_database(&db).await,
        ..Default::default()
    })
    .await
    .unwrap();
    fill(&store, n).await;

    let root = repo_root();
    let pipeline = Pipeline::load(&PipelineConfig {
        mappings_dir: root.join("mappings"),
        schemas_dir: root.join("schemas"),
        ..Default::default()
    })
    .unwrap();
    let state = WorkbenchState {
        store: store.clone(),
        pipeline: Arc::new(FixedPipeline(Arc::new(pipeline))),
        records: allegro_store::release::RecordDelivery::Outbox(std::env::temp_dir()),
        config: WebConfig {
            assets_dir: root.join("crates/web/assets"),
            ..Default::default()
        },
        mitwirkung: Default::default(),
        clock: Default::default(),
        oidc: None,
    };
    let router = workbench::router(state);
    let admin_cookie = session(&store, "chef", vec![Role::Administration], vec![]).await;
    let worker_cookie = session(
        &store,
        "anna",
        vec![Role::Sachbearbeitung],
        vec!["81101".into(), "81102".into()],
    )
    .await;
    let some_id = store
        .list_cases(&allegro_store::cases::CaseQuery {
            scope: allegro_store::cases::Scope::All,
            dienststelle: None,
            rule: None,
            created_before: None,
            search: None,
            page: 1234,
            per_page: 1,
        })
        .await
        .unwrap()
        .items[0]
        .antrag_id;

    let last_page = n.div_ceil(50);
    let kinds: Vec<(&str, &str, String)> = vec![
        (
            "list, administration, page 1",
            &admin_cookie,
            "/faelle".into(),
        ),
        (
            "list, caseworker (2 of 40 Dienststellen)",
            &worker_cookie,
            "/faelle".into(),
        ),
        (
            "list, filter Dienststelle",
            &admin_cookie,
            "/faelle?dienststelle=81117".into(),
        ),
        (
            "list, filter rule id",
            &admin_cookie,
            "/faelle?regel=kv_nummer".into(),
        ),
        (
            "list, filter age >= 150 days",
            &admin_cookie,
            "/faelle?alter=150".into(),
        ),
        (
            "list, last page",
            &admin_cookie,
            format!("/faelle?seite={last_page}"),
        ),
        (
            "search, rare name (0.1 %)",
            &admin_cookie,
            saved_search(&store, &admin_cookie, "zwiebel").await,
        ),
        (
            "search, common name",
            &admin_cookie,
            saved_search(&store, &admin_cookie, "popescu").await,
        ),
        (
            "search, caseworker, name",
            &worker_cookie,
            saved_search(&store, &worker_cookie, "popescu").await,
        ),
        (
            "search, antragId",
            &admin_cookie,
            saved_search(&store, &admin_cookie, &some_id.to_string()).await,
        ),
    ];
    println!(
        "{:<44} {:>10} {:>10}   ({n} cases, {rounds} rounds, PostgreSQL)",
        "request", "median ms", "max ms"
    );
    for (what, cookie, path) in kinds {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds + 2 {
            let req = Request::get(path.as_str())
                .header(header::COOKIE, format!("{}={cookie}", auth::SESSION_COOKIE))
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let resp = router.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            times.push(t.elapsed());
            assert_eq!(
                status,
                StatusCode::OK,
                "{what}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        times.drain(..2); // warm-up
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{what:<44} {:>10.1} {:>10.1}",
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap())
        );
    }
    store.close().await;
    if std::env::args().any(|a| a == "--keep") {
        println!("database kept: {db}");
        return;
    }
    drop_pg_database(&db).await;
}
