//! FIT-Connect (issue #23): the daemon as a subscriber of the local
//! Zustelldienst stand-in (`allegro_testkit::zustelldienst`, held to the
//! vendored Submission API document), with submissions encrypted by an
//! independent JOSE implementation (Python jwcrypto through
//! tools/jose-peer.py), against the real broker and database.
//!
//! - valid, faulty, broken JWE, wrong hash, metadata schema violation and
//!   unknown schema URI side by side: accept with the right tags for the
//!   first two (record; case), reject with the documented problem type and
//!   nothing stored for the rest; two attachments stored, hashes checked;
//!   our accept token verified by jwcrypto; data the intake dead-letters
//!   (no mapping) rejected as `unsupported-schema`;
//! - the Zustelldienst down for 60 s, then back: nothing lost, nothing
//!   answered twice;
//! - `kill -9` after the application is stored and the answer made but
//!   not delivered: after the restart it is sent once;
//! - the answer taken into the event log but its 204 lost: found there by
//!   its jti, marked done, never posted again;
//! - a different body under an antragId already stored: rejected (a
//!   conflict), the first application unchanged;
//! - a submission without its `submit-submission` event is never taken
//!   and shows in the gauge of the oldest unanswered;
//! - a signed callback makes a daemon polling once an hour take the
//!   submission at once; a wrongly signed, a stale and an unsigned one are
//!   refused and wake nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use allegro_store::fitconnect::{FcState, IntakeFate};
use allegro_store::record_file_name;
use allegro_testkit as support;
use allegro_testkit::zustelldienst::{
    Callback, EventKind, JosePeer, NewSubmission, PostedEvent, TestKeys, Zustelldienst,
    ACCEPT_SUBMISSION, REJECT_SUBMISSION,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};
use support::{Db, TestEnv};
use uuid::Uuid;

const CLIENT: &str = "allegro-bridge-test";
const SECRET: &str = "Zustell-Geheimnis-2026";
const SCHEMA: &str = "urn:jobcenter:antrag:buergergeld:1.0";

/// A test's world: the services, the stand-in, and a config that points
/// the daemon at it.
struct World {
    env: TestEnv,
    zd: Zustelldienst,
    destination: Uuid,
    /// The daemon's metrics port.
    metrics: u16,
}

async fn world(db: Db, name: &str) -> World {
    world_with(db, name, "poll_interval_secs = 1\n").await
}

/// A world whose `[fitconnect]` section has `settings` (at least
/// `poll_interval_secs`) besides the connection.
async fn world_with(db: Db, name: &str, settings: &str) -> World {
    let mut env = TestEnv::new(db, name).await;
    let keys = TestKeys::get();
    let destination = Uuid::new_v4();
    let zd = Zustelldienst::start(keys.config(CLIENT, SECRET, destination)).await;
    let dir = env.dir.path().to_path_buf();
    let metrics = support::free_port();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let secret = file("client-secret", SECRET);
    let decrypt = file("decrypt.jwk", &keys.destination_enc.to_string());
    let sign = file("sign.jwk", &keys.destination_sig.to_string());
    let config = file(
        "allegro-bridge.toml",
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n[fitconnect]\nenabled = true\napi_url = \"{}\"\ntoken_url = \"{}\"\n\
             client_id = \"{CLIENT}\"\nclient_secret_file = \"{}\"\n{settings}\
             timeout_secs = 5\n\n[[fitconnect.destination]]\nid = \"{destination}\"\n\
             dienststelle = \"13101\"\ndecryption_key_file = \"{}\"\nsigning_key_file = \"{}\"\n",
            zd.base_url(),
            zd.token_url(),
            secret.display(),
            decrypt.display(),
            sign.display()
        ),
    );
    env.extra_env
        .push(("ALLEGRO_BRIDGE_CONFIG".into(), config.display().to_string()));
    World {
        env,
        zd,
        destination,
        metrics,
    }
}

/// What a sender puts into one submission.
struct Sending {
    data: Vec<u8>,
    antrag_id: Option<Uuid>,
    schema_uri: &'static str,
    attachments: Vec<(Uuid, Vec<u8>)>,
    fault: Fault,
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    BrokenDataJwe,
    WrongHash,
    MetadataSchema,
    /// No `submit-submission` event in the case's log: never to be taken.
    NoSubmitEvent,
}

/// A submission as sent, with what the answer must quote.
struct Sent {
    submission: Uuid,
    case: Uuid,
    antrag_id: Option<Uuid>,
    body_sha256: String,
    tags: Value,
}

/// Each of `lines` is a whole line of the daemon's `/metrics` text.
fn assert_metric_lines(metrics: &str, lines: &[&str]) {
    for line in lines {
        assert!(metrics.lines().any(|l| l == *line), "{line} in\n{metrics}");
    }
}

fn sha512(b: &[u8]) -> String {
    hex::encode(Sha512::digest(b))
}

fn tag(jwe: &str) -> String {
    jwe.split('.').nth(4).unwrap().to_string()
}

fn metadata(s: &Sending) -> Value {
    let data_hash = match s.fault {
        Fault::WrongHash => sha512(b"something else"),
        Fault::MetadataSchema => "kein-hexwert".into(),
        _ => sha512(&s.data),
    };
    json!({
        "publicServiceType": {"identifier": "urn:de:fim:leika:leistung:99123456760610"},
        "contentStructure": {
            "data": {
                "hash": {"type": "sha512", "content": data_hash},
                "submissionSchema": {"schemaUri": s.schema_uri, "mimeType": "application/json"}
            },
            "attachments": s.attachments.iter().map(|(id, bytes)| json!({
                "attachmentId": id.to_string(),
                "hash": {"type": "sha512", "content": sha512(bytes)},
                "purpose": "attachment",
                "mimeType": "application/pdf",
                "filename": "Nachweis.pdf"
            })).collect::<Vec<_>>()
        }
    })
}

/// Encrypts (jwcrypto) and submits to the stand-in.
fn send(w: &World, s: Sending) -> Sent {
    let peer = JosePeer::get();
    let key = TestKeys::get().destination_enc_public();
    let metadata_jwe = peer.encrypt(&key, metadata(&s).to_string().as_bytes(), false);
    let mut data_jwe = peer.encrypt(&key, &s.data, true);
    if s.fault == Fault::BrokenDataJwe {
        // One byte of the ciphertext changed: GCM must refuse it.
        let mut parts: Vec<String> = data_jwe.split('.').map(String::from).collect();
        let c = &mut parts[3];
        let first = if c.starts_with('A') { "B" } else { "A" };
        c.replace_range(0..1, first);
        data_jwe = parts.join(".");
    }
    let attachments: Vec<(Uuid, String)> = s
        .attachments
        .iter()
        .map(|(id, bytes)| (*id, peer.encrypt(&key, bytes, false)))
        .collect();
    let (submission, case) = (Uuid::new_v4(), Uuid::new_v4());
    let tags = json!({
        "metadata": tag(&metadata_jwe),
        "data": tag(&data_jwe),
        "attachments": attachments.iter().map(|(id, j)| (id.to_string(), Value::from(tag(j))))
            .collect::<serde_json::Map<_, _>>(),
    });
    let add = match s.fault {
        Fault::NoSubmitEvent => Zustelldienst::add_submission_without_event,
        _ => Zustelldienst::add_submission,
    };
    add(
        &w.zd,
        NewSubmission {
            destination_id: w.destination,
            submission_id: submission,
            case_id: case,
            service_type: (
                "urn:de:fim:leika:leistung:99123456760610".into(),
                "Bürgergeld".into(),
            ),
            encrypted_metadata: metadata_jwe,
            encrypted_data: data_jwe,
            attachments,
        },
    );
    Sent {
        submission,
        case,
        antrag_id: s.antrag_id,
        body_sha256: hex::encode(sha2::Sha256::digest(&s.data)),
        tags,
    }
}

fn sending(msg: support::Msg) -> Sending {
    Sending {
        data: msg.body,
        antrag_id: msg.antrag_id,
        schema_uri: SCHEMA,
        attachments: vec![],
        fault: Fault::None,
    }
}

async fn posted_for(w: &World, n: usize, timeout: Duration) -> Vec<PostedEvent> {
    w.env
        .wait_for("the answers", timeout, || async {
            w.zd.events_posted().len() >= n
        })
        .await;
    w.zd.events_posted()
}

fn event_of(posted: &[PostedEvent], s: &Sent) -> PostedEvent {
    let mine: Vec<&PostedEvent> = posted
        .iter()
        .filter(|e| e.submission_id == s.submission)
        .collect();
    assert_eq!(mine.len(), 1, "one answer for {}", s.submission);
    assert_eq!(mine[0].case_id, s.case);
    mine[0].clone()
}

fn assert_rejected(posted: &[PostedEvent], s: &Sent, problem: &str, instance: &str) {
    let e = event_of(posted, s);
    assert_eq!(e.kind, EventKind::Reject, "{}", e.claims);
    let p = &e.claims["events"][REJECT_SUBMISSION]["problems"][0];
    assert_eq!(
        p["type"],
        format!("https://schema.fitko.de/fit-connect/events/problems/{problem}"),
        "{p}"
    );
    assert_eq!(p["instance"], instance, "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(!detail.is_empty() && p["title"].as_str().is_some(), "{p}");
}

fn assert_accepted(posted: &[PostedEvent], s: &Sent) {
    let e = event_of(posted, s);
    assert_eq!(e.kind, EventKind::Accept, "{}", e.claims);
    assert_eq!(
        e.claims["events"][ACCEPT_SUBMISSION]["authenticationTags"], s.tags,
        "the tags quoted"
    );
}

/// Our accept token, verified by jwcrypto against the destination's public
/// signing key.
fn verify_independently(compact: &str) -> Value {
    let keys = TestKeys::get();
    let public = allegro_testkit::zustelldienst::public_jwk(&keys.destination_sig, "verify");
    JosePeer::get()
        .verify(&json!({ "keys": [public] }), compact)
        .expect("jwcrypto verifies our answer")
}

/// What became of the application a submission carried (the dead-letter
/// key is not asked for here).
async fn stored_as(store: &allegro_store::Store, s: &Sent) -> IntakeFate {
    let intake = allegro_store::fitconnect::Intake {
        antrag_id: s.antrag_id.unwrap(),
        nachreichung_id: None,
        body_sha256: s.body_sha256.clone(),
        dead_letter_key: String::new(),
    };
    store.intake_fate(&intake).await.unwrap()
}

fn event_posts(zd: &Zustelldienst) -> usize {
    zd.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/events") && r.status == 204)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn submissions_are_taken_checked_and_answered() {
    let w = world(Db::Sqlite, "fitconnect").await;
    let pdf = |n: u8| -> Vec<u8> { [b"%PDF-1.7\n".as_slice(), &vec![n; 5000]].concat() };
    let valid = send(
        &w,
        Sending {
            attachments: vec![(Uuid::new_v4(), pdf(1)), (Uuid::new_v4(), pdf(2))],
            ..sending(support::accepted())
        },
    );
    let scan = b"%PDF-1.7\nMietvertrag (Scan)".to_vec();
    let faulty = send(
        &w,
        Sending {
            attachments: vec![(Uuid::new_v4(), scan.clone())],
            ..sending(support::rejected())
        },
    );
    let broken = send(
        &w,
        Sending {
            fault: Fault::BrokenDataJwe,
            ..sending(support::accepted())
        },
    );
    let wrong_hash = send(
        &w,
        Sending {
            fault: Fault::WrongHash,
            ..sending(support::accepted())
        },
    );
    let bad_metadata = send(
        &w,
        Sending {
            fault: Fault::MetadataSchema,
            ..sending(support::accepted())
        },
    );
    let unknown = send(
        &w,
        Sending {
            schema_uri: "urn:example:kfz-zulassung:3.0",
            ..sending(support::accepted())
        },
    );
    // Fine for FIT-Connect, but the intake dead-letters it (no mapping for
    // its form version): rejected as an unsupported schema, its attachment
    // not kept.
    let no_mapping = send(
        &w,
        Sending {
            attachments: vec![(Uuid::new_v4(), pdf(3))],
            ..sending(support::no_mapping())
        },
    );
    let mut daemon = w.env.spawn_daemon();
    let posted = posted_for(&w, 7, Duration::from_secs(60)).await;
    let metrics = support::http_get(w.metrics, "/metrics").await;
    assert_metric_lines(
        &metrics,
        &[
            "allegro_bridge_fitconnect_submissions_total{answer=\"accept\"} 2",
            "allegro_bridge_fitconnect_submissions_total{answer=\"reject\"} 5",
        ],
    );
    daemon.stop();

    assert_accepted(&posted, &valid);
    assert_accepted(&posted, &faulty);
    assert_rejected(&posted, &broken, "encryption-issue", "data");
    assert_rejected(&posted, &wrong_hash, "hash-mismatch", "data");
    assert_rejected(&posted, &bad_metadata, "schema-violation", "metadata");
    assert_rejected(&posted, &unknown, "unsupported-schema", "data");
    // Dead-lettered as no_mapping: its form version is not supported.
    assert_rejected(&posted, &no_mapping, "unsupported-schema", "data");
    let claims = verify_independently(&event_of(&posted, &valid).compact);
    assert_eq!(claims["sub"], format!("submission:{}", valid.submission));
    assert_eq!(claims["txn"], format!("case:{}", valid.case));
    assert_eq!(claims["iss"], w.destination.to_string());

    // Stored: the valid one with its record, the faulty one as a case;
    // nothing of the rejected ones.
    let store = w.env.store().await;
    let fate = |s: &Sent| s.antrag_id.unwrap();
    assert_eq!(stored_as(&store, &valid).await, IntakeFate::Stored);
    assert_eq!(stored_as(&store, &faulty).await, IntakeFate::Stored);
    assert!(store.load_case(fate(&faulty)).await.unwrap().is_some());
    for s in [&broken, &wrong_hash, &bad_metadata, &unknown, &no_mapping] {
        assert_eq!(stored_as(&store, s).await, IntakeFate::Pending);
        assert!(store.attachments_of(fate(s)).await.unwrap().is_empty());
    }
    w.env
        .wait_for("the record file", Duration::from_secs(20), || async {
            w.env.outbox.join(record_file_name(fate(&valid))).exists()
        })
        .await;
    // Both attachments, with the hashes of what was sent.
    let kept = store.attachments_of(fate(&valid)).await.unwrap();
    let want: BTreeMap<String, String> = [(1u8, 0usize), (2, 1)]
        .iter()
        .map(|(n, _)| (sha512(&pdf(*n)), "application/pdf".to_string()))
        .collect();
    let got: BTreeMap<String, String> = kept
        .iter()
        .map(|a| (a.sha512.clone(), a.mime_type.clone()))
        .collect();
    assert_eq!(got, want);
    for a in &kept {
        let bytes = store
            .attachment_content(fate(&valid), a.attachment_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sha512(&bytes), a.sha512);
        assert_eq!(a.bytes as usize, bytes.len());
    }
    // Each answered once, held to the published API throughout.
    assert_eq!(event_posts(&w.zd), 7);
    assert!(
        w.zd.refused_events().is_empty(),
        "{:?}",
        w.zd.refused_events()
    );
    assert_eq!(w.zd.spec_violations(), Vec::<String>::new());
    for s in [
        &valid,
        &faulty,
        &broken,
        &wrong_hash,
        &bad_metadata,
        &unknown,
        &no_mapping,
    ] {
        let row = store.fc_submission(s.submission).await.unwrap().unwrap();
        assert_eq!(row.state, FcState::Done);
    }
    store.close().await;
    the_case_page_offers_the_attachment(&w, fate(&faulty), &scan);
}

/// The case page lists the case's attachment; a caseworker of its
/// Dienststelle downloads it as sent, one of another gets 404.
fn the_case_page_offers_the_attachment(w: &World, antrag_id: Uuid, bytes: &[u8]) {
    use support::workbench::{add_user, start_web, Client};
    const PASSWORD: &str = "Sehr-geheim-2026";
    add_user(
        &w.env,
        "sb",
        PASSWORD,
        &["--rolle", "sachbearbeitung", "--dienststelle", "81101"],
    );
    add_user(
        &w.env,
        "fremd",
        PASSWORD,
        &["--rolle", "sachbearbeitung", "--dienststelle", "81102"],
    );
    let web = start_web(&w.env);
    let client = |name: &str| {
        let mut c = Client::new(web.port);
        assert_eq!(c.login(name, PASSWORD).status, 303);
        c
    };
    let mut own = client("sb");
    let page = own.get(&format!("/faelle/{antrag_id}"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Hochgeladene Unterlagen (FIT-Connect)"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Nachweis.pdf herunterladen"),
        "{}",
        page.body
    );
    let at = page.body.find("/anlagen/").expect("a download link");
    let start = page.body[..at].rfind('"').unwrap() + 1;
    let link = &page.body[start..at + page.body[at..].find('"').unwrap()];
    let file = own.get(link);
    assert_eq!(file.status, 200);
    assert_eq!(file.raw, bytes);
    assert_eq!(file.header("content-type"), Some("application/pdf"));
    assert!(file
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
    let mut other = client("fremd");
    assert_eq!(other.get(link).status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_of_the_zustelldienst_loses_nothing_and_answers_once() {
    let w = world(Db::Postgres, "fitconnect-outage").await;
    w.zd.set_down(true);
    let first = send(&w, sending(support::accepted()));
    let mut daemon = w.env.spawn_daemon();
    // Down for 60 s: the daemon keeps trying, takes and answers nothing.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(w.zd.events_posted().is_empty());
    let second = send(&w, sending(support::rejected()));
    w.zd.set_down(false);
    let posted = posted_for(&w, 2, Duration::from_secs(60)).await;
    // A few more rounds: nothing is sent again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.stop();
    assert_accepted(&posted, &first);
    assert_accepted(&posted, &second);
    assert_eq!(w.zd.events_posted().len(), 2);
    assert_eq!(event_posts(&w.zd), 2);
    let refused_503 = w.zd.requests().iter().filter(|r| r.status == 503).count();
    assert!(refused_503 > 10, "the daemon kept polling: {refused_503}");
    assert_eq!(w.zd.spec_violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_made_before_a_kill_is_sent_once_after_the_restart() {
    let w = world(Db::Sqlite, "fitconnect-kill").await;
    let sent = send(&w, sending(support::accepted()));
    let mut daemon = w.env.spawn_daemon();
    let store = w.env.store().await;
    // As soon as the data is handed to the intake, the Zustelldienst goes
    // away: the answer is made once the application is stored, but cannot
    // be delivered.
    w.env
        .wait_for("the submission taken", Duration::from_secs(30), || async {
            store
                .fc_submission(sent.submission)
                .await
                .unwrap()
                .is_some()
        })
        .await;
    w.zd.set_down(true);
    w.env
        .wait_for(
            "the answer made and tried",
            Duration::from_secs(30),
            || async {
                matches!(
                    store.fc_submission(sent.submission).await.unwrap().map(|r| r.state),
                    Some(FcState::Answer { attempts, .. }) if attempts > 0
                )
            },
        )
        .await;
    daemon.kill9();
    assert!(w.zd.events_posted().is_empty());
    w.zd.set_down(false);
    let mut daemon = w.env.spawn_daemon();
    let posted = posted_for(&w, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.stop();
    assert_accepted(&posted, &sent);
    assert_eq!(event_posts(&w.zd), 1);
    assert_eq!(
        store
            .fc_submission(sent.submission)
            .await
            .unwrap()
            .unwrap()
            .state,
        FcState::Done
    );
    store.close().await;
}

/// A document owed handed in later through FIT-Connect: the submission's
/// data is a Nachreichung (contract §8) for a stored application, its
/// attachment the document. Accepted once the Nachreichung is stored; the
/// document is then received and the file kept with the application.
#[tokio::test(flavor = "multi_thread")]
async fn a_nachreichung_through_fit_connect_marks_the_document_received() {
    let w = world(Db::Sqlite, "fitconnect-nachreichung").await;
    let application = send(&w, sending(support::accepted()));
    let antrag_id = application.antrag_id.unwrap();
    let mut daemon = w.env.spawn_daemon();
    posted_for(&w, 1, Duration::from_secs(60)).await;
    let store = w.env.store().await;
    let owed = store.owed_of(antrag_id).await.unwrap();
    let doc = owed
        .first()
        .expect("the Hauptantrag owes documents")
        .clone();
    assert!(
        matches!(doc.state, allegro_core::mitwirkung::state::DocState::Offen),
        "{:?}",
        doc.state
    );

    let scan = b"%PDF-1.7\nLohnabrechnung Oktober".to_vec();
    let mut data: Value = serde_json::from_str(
        &std::fs::read_to_string(
            support::repo_root().join("fixtures/contract/1.1/nachreichung-aufenthaltstitel.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let nachreichung_id = Uuid::new_v4();
    data["nachreichungId"] = json!(nachreichung_id.to_string());
    data["antragId"] = json!(antrag_id.to_string());
    data["nachweis"] = match &doc.person_id {
        Some(p) => json!({"art": doc.kind, "personId": p}),
        None => json!({"art": doc.kind}),
    };
    data["datei"]["sha256"] = json!(hex::encode(sha2::Sha256::digest(&scan)));
    let handed_in = send(
        &w,
        Sending {
            data: data.to_string().into_bytes(),
            antrag_id: Some(antrag_id),
            schema_uri: "urn:jobcenter:nachreichung:1.0",
            attachments: vec![(Uuid::new_v4(), scan.clone())],
            fault: Fault::None,
        },
    );
    let posted = posted_for(&w, 2, Duration::from_secs(60)).await;
    daemon.stop();
    assert_accepted(&posted, &application);
    assert_accepted(&posted, &handed_in);

    let now = store.owed_of(antrag_id).await.unwrap();
    let same = now.iter().find(|d| d.id == doc.id).unwrap();
    assert!(
        matches!(
            same.state,
            allegro_core::mitwirkung::state::DocState::Eingegangen { .. }
        ),
        "{:?}",
        same.state
    );
    let kept = store.attachments_of(antrag_id).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].sha512, sha512(&scan));
    assert_eq!(w.zd.spec_violations(), Vec::<String>::new());
    store.close().await;
}

/// The answer reaches the event log, but its 204 is lost (the stand-in
/// answers 500 after taking it, as after a connection broken on the way
/// back or a crash right after the post): the next round finds the event
/// by its jti in the case's log and marks the row done without posting
/// again. The log holds the answer once; nothing is refused as a second
/// answer.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_whose_response_was_lost_is_found_in_the_event_log() {
    let w = world(Db::Sqlite, "fitconnect-lost-answer").await;
    w.zd.lose_event_answers(1);
    let sent = send(&w, sending(support::accepted()));
    let mut daemon = w.env.spawn_daemon();
    let store = w.env.store().await;
    w.env
        .wait_for(
            "the answer marked done",
            Duration::from_secs(60),
            || async {
                store
                    .fc_submission(sent.submission)
                    .await
                    .unwrap()
                    .map(|r| r.state)
                    == Some(FcState::Done)
            },
        )
        .await;
    // A few more rounds: nothing is sent again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.stop();
    let posted = w.zd.events_posted();
    assert_accepted(&posted, &sent);
    let answer = event_of(&posted, &sent).compact;
    let log = w.zd.event_log(sent.case);
    assert_eq!(
        log.iter().filter(|t| **t == answer).count(),
        1,
        "the answer once in the log"
    );
    assert_eq!(log.len(), 2, "submit-submission and our answer");
    let posts: Vec<u16> =
        w.zd.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
            .map(|r| r.status)
            .collect();
    assert_eq!(posts, [500], "posted once, its answer lost");
    assert!(
        w.zd.refused_events().is_empty(),
        "{:?}",
        w.zd.refused_events()
    );
    assert_eq!(
        store
            .fc_submission(sent.submission)
            .await
            .unwrap()
            .unwrap()
            .state,
        FcState::Done
    );
    assert_eq!(w.zd.spec_violations(), Vec::<String>::new());
    store.close().await;
}

/// A second submission under an antragId already stored, with another
/// body: the intake dead-letters it as a conflict, so the submission is
/// rejected (the German detail says why); the first application, its
/// record and its acceptance stay as they were.
#[tokio::test(flavor = "multi_thread")]
async fn a_conflicting_body_under_a_known_antrag_id_is_rejected() {
    let w = world(Db::Postgres, "fitconnect-conflict").await;
    let original = support::accepted();
    let antrag_id = original.antrag_id.unwrap();
    let first = send(&w, sending(original));
    let mut daemon = w.env.spawn_daemon();
    posted_for(&w, 1, Duration::from_secs(60)).await;
    let record = w.env.outbox.join(record_file_name(antrag_id));
    w.env
        .wait_for("the record file", Duration::from_secs(20), || async {
            record.exists()
        })
        .await;
    let record_before = std::fs::read(&record).unwrap();

    let mut other: Value = serde_json::from_slice(&support::rejected().body).unwrap();
    other["antragId"] = json!(antrag_id.to_string());
    let second = send(
        &w,
        Sending {
            data: serde_json::to_vec(&other).unwrap(),
            antrag_id: Some(antrag_id),
            ..sending(support::accepted())
        },
    );
    assert_ne!(second.body_sha256, first.body_sha256);
    let posted = posted_for(&w, 2, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.stop();
    assert_accepted(&posted, &first);
    assert_rejected(&posted, &second, "schema-violation", "data");
    let detail = event_of(&posted, &second).claims["events"][REJECT_SUBMISSION]["problems"][0]
        ["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("bereits ein anderer Antrag gespeichert"),
        "{detail}"
    );

    let store = w.env.store().await;
    assert_eq!(stored_as(&store, &first).await, IntakeFate::Stored);
    assert_eq!(stored_as(&store, &second).await, IntakeFate::Pending);
    let letters = store.dead_letters_for(antrag_id).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, "conflict");
    assert_eq!(letters[0].body_sha256, second.body_sha256);
    assert_eq!(std::fs::read(&record).unwrap(), record_before);
    for s in [&first, &second] {
        let row = store.fc_submission(s.submission).await.unwrap().unwrap();
        assert_eq!(row.state, FcState::Done);
    }
    assert_eq!(event_posts(&w.zd), 2);
    assert_eq!(w.zd.spec_violations(), Vec::<String>::new());
    store.close().await;
}

/// A submission the daemon can never take (no `submit-submission` event
/// in its case's log) stays waiting, unanswered, every round logging it
/// as not taken; the gauge of the oldest unanswered submission shows its
/// age while the one taken beside it is answered and off the list.
#[tokio::test(flavor = "multi_thread")]
async fn a_submission_never_taken_shows_in_the_oldest_unanswered_age() {
    let w = world(Db::Sqlite, "fitconnect-unanswered").await;
    let taken = send(&w, sending(support::accepted()));
    let stuck = send(
        &w,
        Sending {
            fault: Fault::NoSubmitEvent,
            ..sending(support::accepted())
        },
    );
    let mut daemon = w.env.spawn_daemon();
    let posted = posted_for(&w, 1, Duration::from_secs(60)).await;
    assert_accepted(&posted, &taken);
    let gauge = "allegro_bridge_fitconnect_oldest_unanswered_age_seconds ";
    let age = || async {
        let metrics = support::http_get(w.metrics, "/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(gauge))
            .and_then(|v| v.parse::<u64>().ok())
    };
    w.env
        .wait_for(
            "the age of the stuck one",
            Duration::from_secs(30),
            || async { age().await.is_some_and(|a| a >= 3) },
        )
        .await;
    daemon.stop();
    assert_eq!(w.zd.is_waiting(stuck.submission), Some(true));
    assert_eq!(w.zd.is_waiting(taken.submission), Some(false));
    assert_eq!(w.zd.events_posted().len(), 1);
    let store = w.env.store().await;
    assert!(store
        .fc_submission(stuck.submission)
        .await
        .unwrap()
        .is_none());
    store.close().await;
    let log = daemon.log_text();
    assert!(
        log.contains("FIT-Connect submission not taken")
            && log.contains(&stuck.submission.to_string()),
        "{log}"
    );
    assert_eq!(w.zd.spec_violations(), Vec::<String>::new());
}

/// With a poll interval of an hour, the Zustelldienst's callback makes the
/// daemon take a new submission at once. A callback signed with another
/// secret, one six minutes old and one without headers are refused (401,
/// 401, 400), counted by reason, and start no round.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_callback_starts_a_round_at_once() {
    const CALLBACK_SECRET: &str = "Rückruf-Geheimnis-2026";
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("callback-secret");
    std::fs::write(&secret_file, format!("{CALLBACK_SECRET}\n")).unwrap();
    let w = world_with(
        Db::Sqlite,
        "fitconnect-callback",
        &format!(
            "poll_interval_secs = 3600\ncallback_listen = \"127.0.0.1:{port}\"\n\
             callback_secret_file = \"{}\"\n",
            secret_file.display()
        ),
    )
    .await;
    let pickups = || {
        w.zd.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/v1/submissions")
            .count()
    };
    let mut daemon = w.env.spawn_daemon();
    // The first round, at start, finds nothing.
    w.env
        .wait_for("the first round", Duration::from_secs(30), || async {
            pickups() == 1
        })
        .await;
    let sent = send(&w, sending(support::accepted()));
    let addr = format!("127.0.0.1:{port}");
    let now = chrono::Utc::now().timestamp();
    let signed = |secret: &str, timestamp: i64| Callback {
        secret: secret.into(),
        timestamp,
    };
    let call = |how: Callback| {
        let addr = addr.clone();
        let zd = &w.zd;
        let destination = w.destination;
        async move {
            zd.announce(destination, &addr, "/fitconnect/callback", &how)
                .await
        }
    };
    assert_eq!(call(signed("ein anderes Geheimnis", now)).await, 401);
    assert_eq!(call(signed(CALLBACK_SECRET, now - 360)).await, 401);
    let unsigned = support::http_get(port, "/fitconnect/callback").await;
    assert!(unsigned.starts_with("HTTP/1.1 405"), "{unsigned}");
    let no_headers = raw_post(port, "/fitconnect/callback", "{}").await;
    assert!(no_headers.starts_with("HTTP/1.1 400"), "{no_headers}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pickups(), 1, "a refused callback starts no round");
    assert!(w.zd.events_posted().is_empty());

    let started = std::time::Instant::now();
    assert_eq!(call(signed(CALLBACK_SECRET, now)).await, 204);
    let posted = posted_for(&w, 1, Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_accepted(&posted, &sent);
    // One round for the callback; the answer, once the application was
    // stored, without listing the Zustelldienst again.
    assert_eq!(pickups(), 2);
    let metrics = support::http_get(w.metrics, "/metrics").await;
    assert_metric_lines(
        &metrics,
        &[
            "allegro_bridge_fitconnect_callbacks_refused_total{reason=\"signature\"} 1",
            "allegro_bridge_fitconnect_callbacks_refused_total{reason=\"stale\"} 1",
            "allegro_bridge_fitconnect_callbacks_refused_total{reason=\"malformed\"} 1",
        ],
    );
    daemon.stop();
    let log = daemon.log_text();
    assert!(
        !log.contains(NEW_SUBMISSIONS_TYPE),
        "the body is not logged"
    );
    assert_eq!(w.zd.spec_violations(), Vec::<String>::new());
}

const NEW_SUBMISSIONS_TYPE: &str = allegro_testkit::zustelldienst::NEW_SUBMISSIONS;

/// A POST of `body` without the callback headers; the raw answer.
async fn raw_post(port: u16, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}
