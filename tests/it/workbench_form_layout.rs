//! A new form version needs no code change: `tests/data/kurzantrag/` holds a
//! form ("Kurzantrag" 2.0) with other top-level keys, another path to the
//! applicant's name and to the Dienststelle than the contract's forms, and
//! its case layout as data (`[casework]`). Stored as the daemon stores a
//! rejected application and opened in the real `allegro-bridge web`
//! pointed at that folder, its case shows the declared sections in order
//! with their titles and fields, the error beside its field, the
//! Dienststelle read-only and deciding who sees it, and the name as
//! written, found by a search in any case.

use allegro_testkit as support;

use allegro_core::pipeline::{Pipeline, PipelineConfig};
use serde_json::{json, Value};
use support::workbench::{add_user, start_web, Client};
use support::{Db, TestEnv};
use uuid::Uuid;

const PASSWORD: &str = "Sehr-geheim-2026";

fn form_dir() -> std::path::PathBuf {
    support::repo_root().join("tests/data/kurzantrag")
}

fn application(id: Uuid, dst: &str) -> Value {
    json!({
        "formular": {"id": "BG-KURZ", "version": "2.0"},
        "antragId": id.to_string(),
        "eingereichtAm": "2026-11-20T07:26:00Z",
        "stelle": {"nummer": dst, "bezeichnung": "Jobcenter Mitte"},
        "person": {
            "name": {"vorname": "Zoë", "nachname": "O'Brien-McDonald von der Heide"},
            "geburtsdatum": "1990-11-26"
        },
        "konto": {"iban": "DE78595567370598319781", "inhaber": "Zoë O'Brien"}
    })
}

/// The part of `html` from the element with `id` to the next `</h2>` or row end.
fn element<'a>(html: &'a str, id: &str) -> &'a str {
    html.split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no element {id}"))
        .split("</div>")
        .next()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_version_declared_as_data_shows_in_the_workbench() {
    let mut env = TestEnv::new(Db::Sqlite, "wb-layout").await;
    let dir = form_dir();
    env.extra_env.extend([
        (
            "ALLEGRO_BRIDGE__PIPELINE__MAPPINGS_DIR".to_string(),
            dir.join("mappings").display().to_string(),
        ),
        (
            "ALLEGRO_BRIDGE__PIPELINE__SCHEMAS_DIR".to_string(),
            dir.join("schemas").display().to_string(),
        ),
    ]);
    let pipeline = Pipeline::load(&PipelineConfig {
        mappings_dir: dir.join("mappings"),
        schemas_dir: dir.join("schemas"),
        ..Default::default()
    })
    .expect("the test form's mapping loads");
    let m = pipeline.mappings().get("BG-KURZ", "2.0").unwrap();
    assert_eq!(m.casework.dienststelle.as_deref(), Some("/stelle/nummer"));

    let store = env.store().await;
    let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
    for (i, dst) in [(id, "47110"), (other, "99999")] {
        let doc = application(i, dst);
        support::workbench::store_rejected(&store, &pipeline, i, &doc, dst, None).await;
    }
    add_user(
        &env,
        "sb.kurz",
        PASSWORD,
        &["--rolle", "sachbearbeitung", "--dienststelle", "47110"],
    );
    let web = start_web(&env);
    let mut sb = Client::new(web.port);
    assert_eq!(sb.login("sb.kurz", PASSWORD).status, 303);

    // The list: the name as written, found in any case; the Dienststelle
    // from /stelle/nummer decides that the other case is not listed.
    let list = sb.get("/faelle");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("Zoë O&#39;Brien-McDonald von der Heide")
            || list
                .body
                .contains("Zoë O&#x27;Brien-McDonald von der Heide"),
        "{}",
        list.body
    );
    assert!(list.body.contains(&id.to_string()));
    assert!(!list.body.contains(&other.to_string()));
    for query in ["ZOË O'BRIEN", "mcdonald von"] {
        let found = sb.search(&[("suche", query)]);
        assert!(found.body.contains(&id.to_string()), "search {query:?}");
    }
    assert!(!sb
        .search(&[("suche", "Müller")])
        .body
        .contains(&id.to_string()));

    // The case page: the declared sections in order, with their titles.
    let page = sb.get(&format!("/faelle/{id}"));
    assert_eq!(page.status, 200, "{}", page.body);
    let heads: Vec<&str> = page
        .body
        .split("id=\"abschnitt-")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(heads, ["kopf", "person", "konto"]);
    for (id, title) in [
        ("kopf", "Kopfdaten"),
        ("person", "Antragstellende Person"),
        ("konto", "Konto"),
    ] {
        let head = format!("id=\"abschnitt-{id}\">{title}");
        assert!(page.body.contains(&head), "{head}");
    }
    // The field order is the declared one (the schema's keys sort
    // nachname before vorname).
    let vorname = page.body.find("id=\"feld-person-name-vorname\"").unwrap();
    let nachname = page.body.find("id=\"feld-person-name-nachname\"").unwrap();
    assert!(vorname < nachname);
    // The error beside its field, and in the summary.
    let iban = element(&page.body, "feld-konto-iban");
    assert!(
        iban.contains("KURZ-IBAN") || iban.contains("befund"),
        "{iban}"
    );
    assert!(page.body.contains("href=\"#feld-konto-iban-neu\""));
    // The Dienststelle is read-only: no edit link, and an edit is refused.
    let stelle = element(&page.body, "feld-stelle-nummer");
    assert!(!stelle.contains("/feld?"), "{stelle}");
    assert!(element(&page.body, "feld-stelle-bezeichnung").contains("/feld?"));
    let q = serde_urlencoded::to_string([("zeiger", "/stelle/nummer")]).unwrap();
    let refused = sb.get(&format!("/faelle/{id}/feld?{q}"));
    assert!(
        refused
            .body
            .contains("kann in der Klärung nicht geändert werden"),
        "{}",
        refused.body
    );

    // Out of scope: the other Dienststelle's case is not there.
    assert_eq!(sb.get(&format!("/faelle/{other}")).status, 404);
    drop(web);
    env.cleanup().await;
}
