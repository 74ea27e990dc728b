//! Self-test of the local Zustelldienst (src/zustelldienst.rs): the token
//! flow, pickup of a submission whose JWEs jwcrypto made, the checks of the
//! accept and reject SETs a subscriber posts (signed here with
//! allegro-fitconnect's `sign_ps512`), the outage switch, a lost answer
//! (taken into the log, answered 500), the stand-in's own signed event log
//! (and a submission added without it), and that requests off the
//! published API are caught.
//! Every test ends with no violation of the vendored OpenAPI document.
//!
//! Needs python3 and the jwcrypto venv (scripts/setup-jose-tools.sh, run by
//! the tests themselves); fails, does not skip, without them.

use std::sync::OnceLock;

use allegro_fitconnect::jose::{decrypt, sign_ps512, verify_ps512, Jwks, RsaPrivateJwk};
use allegro_testkit::zustelldienst::{
    EventKind, JosePeer, NewSubmission, TestKeys, Zustelldienst, ACCEPT_SUBMISSION, ISSUER,
    REJECT_SUBMISSION, SET_PAYLOAD_SCHEMA, SUBMIT_SUBMISSION,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Map, Value};
use uuid::Uuid;

const CLIENT_ID: &str = "allegro-bridge-test";
const CLIENT_SECRET: &str = "geheim-und-lang-genug";
const LEIKA: &str = "urn:de:fim:leika:leistung:99123456760610";

/// The plaintexts, and their JWEs made once by jwcrypto for the
/// destination's encryption key: metadata, data, two attachments.
const PLAINTEXTS: [&str; 4] = [
    r#"{"$schema": "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json"}"#,
    r#"{"antrag": "Bürgergeld", "name": "Jörg Müller"}"#,
    "%PDF-1.7 Mietvertrag",
    "%PDF-1.7 Kontoauszug",
];

fn jwes() -> &'static [String] {
    static JWES: OnceLock<Vec<String>> = OnceLock::new();
    JWES.get_or_init(|| {
        let key = TestKeys::get().destination_enc_public();
        let peer = JosePeer::get();
        PLAINTEXTS
            .iter()
            .enumerate()
            .map(|(i, text)| peer.encrypt(&key, text.as_bytes(), i == 1))
            .collect()
    })
}

/// A fresh stand-in with one destination.
async fn start() -> (Zustelldienst, Uuid) {
    let destination = Uuid::new_v4();
    let config = TestKeys::get().config(CLIENT_ID, CLIENT_SECRET, destination);
    (Zustelldienst::start(config).await, destination)
}

/// A submission to `destination` in a new case, with two attachments.
fn submission(destination: Uuid) -> NewSubmission {
    let jwes = jwes();
    NewSubmission {
        destination_id: destination,
        submission_id: Uuid::new_v4(),
        case_id: Uuid::new_v4(),
        service_type: (LEIKA.into(), "Bürgergeld".into()),
        encrypted_metadata: jwes[0].clone(),
        encrypted_data: jwes[1].clone(),
        attachments: vec![
            (Uuid::new_v4(), jwes[2].clone()),
            (Uuid::new_v4(), jwes[3].clone()),
        ],
    }
}

fn tag(jwe: &str) -> &str {
    jwe.split('.').nth(4).unwrap()
}

/// The claims of a correct accept SET for `s`.
fn accept_claims(s: &NewSubmission) -> Value {
    let attachments: Map<String, Value> = s
        .attachments
        .iter()
        .map(|(id, jwe)| (id.to_string(), tag(jwe).into()))
        .collect();
    let tags = json!({
        "metadata": tag(&s.encrypted_metadata),
        "data": tag(&s.encrypted_data),
        "attachments": attachments,
    });
    claims(
        s,
        json!({ ACCEPT_SUBMISSION: { "authenticationTags": tags } }),
    )
}

/// The claims of a correct reject SET for `s`.
fn reject_claims(s: &NewSubmission) -> Value {
    let problem = json!({
        "type": "https://schema.fitko.de/fit-connect/events/problems/invalid-data",
        "title": "Fachdaten ungültig",
        "detail": "Die Fachdaten entsprechen nicht dem Schema.",
        "instance": "data",
    });
    claims(s, json!({ REJECT_SUBMISSION: { "problems": [problem] } }))
}

fn claims(s: &NewSubmission, events: Value) -> Value {
    json!({
        "$schema": SET_PAYLOAD_SCHEMA,
        "jti": Uuid::new_v4().to_string(),
        "iss": s.destination_id.to_string(),
        "iat": chrono::Utc::now().timestamp(),
        "sub": format!("submission:{}", s.submission_id),
        "txn": format!("case:{}", s.case_id),
        "events": events,
    })
}

fn key(jwk: &Value) -> RsaPrivateJwk {
    TestKeys::private(jwk)
}

/// `claims` signed with the destination's key.
fn signed(claims: &Value) -> String {
    sign_ps512(None, claims, &key(&TestKeys::get().destination_sig)).unwrap()
}

/// An OAuth client and its current token.
struct Subscriber {
    http: Client,
    token: String,
}

impl Subscriber {
    async fn new(zd: &Zustelldienst) -> Subscriber {
        let http = Client::new();
        let token = fetch_token(&http, zd).await;
        Subscriber { http, token }
    }

    async fn get(&self, zd: &Zustelldienst, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", zd.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, zd: &Zustelldienst, path: &str) -> Value {
        let response = self.get(zd, path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        assert_eq!(content_type(&response), "application/json");
        response.json().await.unwrap()
    }

    async fn post_event(&self, zd: &Zustelldienst, case_id: Uuid, set: &str) -> StatusCode {
        let response = self
            .http
            .post(format!("{}/v1/cases/{case_id}/events", zd.base_url()))
            .bearer_auth(&self.token)
            .header("content-type", "application/jose")
            .body(set.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status != StatusCode::NO_CONTENT {
            assert_eq!(content_type(&response), "application/problem+json");
        }
        status
    }
}

async fn fetch_token(http: &Client, zd: &Zustelldienst) -> String {
    let response = http
        .post(zd.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn content_type(response: &Response) -> String {
    response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// No violation of the document, and the refusals for the record.
fn assert_follows_the_document(zd: &Zustelldienst) {
    let violations = zd.spec_violations();
    assert!(
        violations.is_empty(),
        "violations of the Submission API document:\n{}",
        violations.join("\n")
    );
}

/// The reasons of the refused posts so far.
fn reasons(zd: &Zustelldienst) -> String {
    zd.refused_events()
        .iter()
        .map(|r| format!("{} {}", r.status, r.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `reject_claims(s)` with the `jti` and `iat` of `posted`.
fn reject_claims_like(posted: &Value, s: &NewSubmission) -> Value {
    let mut expected = reject_claims(s);
    expected["jti"] = posted["jti"].clone();
    expected["iat"] = posted["iat"].clone();
    expected
}

/// In a module of that name, so that `cargo test zustelldienst` runs them.
mod zustelldienst {
    use super::*;

    #[tokio::test]
    async fn the_token_flow_follows_client_credentials() {
        let (zd, destination) = start().await;
        let http = Client::new();
        let form = |secret: &'static str, scope: Option<String>| {
            let mut form = vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", CLIENT_ID.to_owned()),
                ("client_secret", secret.to_owned()),
            ];
            form.extend(scope.map(|s| ("scope", s)));
            form
        };

        let scope = format!("subscribe:destination:{destination}");
        let response = http
            .post(zd.token_url())
            .form(&form(CLIENT_SECRET, Some(scope.clone())))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 1800);
        assert_eq!(body["scope"], scope.as_str());
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert!(token.len() >= 32, "{token}");
        let subscriber = Subscriber {
            http: http.clone(),
            token,
        };
        subscriber.get_json(&zd, "/v1/submissions").await;

        let refused = [
            (
                form("falsch", None),
                StatusCode::UNAUTHORIZED,
                "invalid_client",
            ),
            (
                form(
                    CLIENT_SECRET,
                    Some(format!("subscribe:destination:{}", Uuid::new_v4())),
                ),
                StatusCode::BAD_REQUEST,
                "invalid_scope",
            ),
            (
                vec![("grant_type", "password".to_owned())],
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
            ),
        ];
        for (form, status, error) in refused {
            let response = http.post(zd.token_url()).form(&form).send().await.unwrap();
            assert_eq!(response.status(), status, "{form:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], error, "{form:?}");
        }

        // client_secret_basic is refused even with the right credentials.
        let response = http
            .post(zd.token_url())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");

        // No token, someone else's token, an expired token: 401 problems.
        let url = format!("{}/v1/submissions", zd.base_url());
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(content_type(&response), "application/problem+json");
        assert!(response.headers().contains_key("www-authenticate"));
        let response = http.get(&url).bearer_auth("erfunden").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        zd.expire_tokens();
        let response = subscriber.get(&zd, "/v1/submissions").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 401);
        assert!(
            problem["detail"].as_str().unwrap().contains("expired"),
            "{problem}"
        );
        let renewed = Subscriber::new(&zd).await;
        renewed.get_json(&zd, "/v1/submissions").await;

        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn a_submission_is_listed_fetched_and_its_attachments_served() {
        let (zd, destination) = start().await;
        let (first, second) = (submission(destination), submission(destination));
        zd.add_submission(first.clone());
        zd.add_submission(second.clone());
        let subscriber = Subscriber::new(&zd).await;

        let list = subscriber
            .get_json(&zd, &format!("/v1/submissions?destinationId={destination}"))
            .await;
        assert_eq!(list["totalCount"], 2);
        assert_eq!(
            list["submissions"][0]["submissionId"],
            first.submission_id.to_string()
        );
        assert_eq!(list["submissions"][0]["caseId"], first.case_id.to_string());
        assert_eq!(
            list["submissions"][0]["destinationId"],
            destination.to_string()
        );
        let page = subscriber
            .get_json(&zd, "/v1/submissions?limit=1&offset=1")
            .await;
        assert_eq!(
            (page["count"].clone(), page["offset"].clone()),
            (json!(1), json!(1))
        );
        assert_eq!(
            page["submissions"][0]["submissionId"],
            second.submission_id.to_string()
        );

        let fetched = subscriber
            .get_json(&zd, &format!("/v1/submissions/{}", first.submission_id))
            .await;
        let attachment_ids: Vec<String> = first
            .attachments
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(fetched["attachments"], json!(attachment_ids));
        assert_eq!(
            fetched["serviceType"],
            json!({"identifier": LEIKA, "name": "Bürgergeld"})
        );
        assert_eq!(
            fetched["encryptedMetadata"],
            first.encrypted_metadata.as_str()
        );
        assert_eq!(fetched["encryptedData"], first.encrypted_data.as_str());
        assert_eq!(fetched["caseId"], first.case_id.to_string());

        // The JWEs are jwcrypto's and the destination's key opens them.
        let enc = key(&TestKeys::get().destination_enc);
        let data = fetched["encryptedData"].as_str().unwrap();
        assert_eq!(
            decrypt(data, &enc).unwrap().plaintext,
            PLAINTEXTS[1].as_bytes()
        );
        for (i, (id, jwe)) in first.attachments.iter().enumerate() {
            let path = format!("/v1/submissions/{}/attachments/{id}", first.submission_id);
            let response = subscriber.get(&zd, &path).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(content_type(&response), "application/jose");
            let body = response.text().await.unwrap();
            assert_eq!(&body, jwe);
            assert_eq!(
                decrypt(&body, &enc).unwrap().plaintext,
                PLAINTEXTS[2 + i].as_bytes()
            );
        }

        for path in [
            format!("/v1/submissions/{}", Uuid::new_v4()),
            format!(
                "/v1/submissions/{}/attachments/{}",
                first.submission_id,
                Uuid::new_v4()
            ),
            format!("/v1/cases/{}/events", Uuid::new_v4()),
        ] {
            let response = subscriber.get(&zd, &path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(content_type(&response), "application/problem+json");
        }
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn an_accept_with_the_right_tags_ends_the_pickup_and_a_second_is_a_conflict() {
        let (zd, destination) = start().await;
        let (accepted, other) = (submission(destination), submission(destination));
        zd.add_submission(accepted.clone());
        zd.add_submission(other.clone());
        let subscriber = Subscriber::new(&zd).await;

        let set = signed(&accept_claims(&accepted));
        let status = subscriber.post_event(&zd, accepted.case_id, &set).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{}", reasons(&zd));
        let posted = zd.events_posted();
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].kind, EventKind::Accept);
        assert_eq!(
            (posted[0].case_id, posted[0].submission_id),
            (accepted.case_id, accepted.submission_id)
        );
        assert_eq!(posted[0].compact, set);
        assert_eq!(zd.is_waiting(accepted.submission_id), Some(false));

        let list = subscriber.get_json(&zd, "/v1/submissions").await;
        assert_eq!(list["totalCount"], 1);
        assert_eq!(
            list["submissions"][0]["submissionId"],
            other.submission_id.to_string()
        );
        let response = subscriber
            .get(&zd, &format!("/v1/submissions/{}", accepted.submission_id))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let log = subscriber
            .get_json(&zd, &format!("/v1/cases/{}/events", accepted.case_id))
            .await;
        assert_eq!(log["totalCount"], 2);
        assert_eq!(log["eventLog"][1], set.as_str());

        let again = signed(&accept_claims(&accepted));
        let status = subscriber.post_event(&zd, accepted.case_id, &again).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let status = subscriber
            .post_event(&zd, accepted.case_id, &signed(&reject_claims(&accepted)))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(zd.events_posted().len(), 1);
        let refused = zd.refused_events();
        assert_eq!(refused.len(), 2);
        assert!(refused
            .iter()
            .all(|r| r.status == 409 && r.reason.contains("already accepted")));

        let posts: Vec<u16> = zd
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
            .map(|r| r.status)
            .collect();
        assert_eq!(posts, [204, 409, 409]);
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn an_accept_with_wrong_tags_is_refused() {
        let (zd, destination) = start().await;
        let s = submission(destination);
        zd.add_submission(s.clone());
        let subscriber = Subscriber::new(&zd).await;
        let (a, b) = (
            s.attachments[0].0.to_string(),
            s.attachments[1].0.to_string(),
        );
        let tags = "/events/https:~1~1schema.fitko.de~1fit-connect~1events~1accept-submission/authenticationTags";

        let good = accept_claims(&s);
        let changed = |change: &dyn Fn(&mut Map<String, Value>)| {
            let mut claims = good.clone();
            change(claims.pointer_mut(tags).unwrap().as_object_mut().unwrap());
            claims
        };
        let data_tag = json!(tag(&s.encrypted_data));
        let wrong = [
            (
                "metadata tag is the data's",
                changed(&|t| {
                    t.insert("metadata".into(), data_tag.clone());
                }),
            ),
            (
                "data tag missing",
                changed(&|t| {
                    t.remove("data");
                }),
            ),
            (
                "attachment tags swapped",
                changed(&|t| {
                    let x = t["attachments"][&a].clone();
                    t["attachments"][&a] = t["attachments"][&b].clone();
                    t["attachments"][&b] = x;
                }),
            ),
            (
                "an attachment left out",
                changed(&|t| {
                    t["attachments"].as_object_mut().unwrap().remove(&b);
                }),
            ),
            (
                "an attachment too many",
                changed(&|t| {
                    t["attachments"][Uuid::new_v4().to_string()] = json!("AAAA");
                }),
            ),
            (
                "attachments missing",
                changed(&|t| {
                    t.remove("attachments");
                }),
            ),
        ];
        for (what, claims) in wrong {
            let status = subscriber
                .post_event(&zd, s.case_id, &signed(&claims))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}");
            let refused = zd.refused_events();
            let reason = &refused.last().unwrap().reason;
            assert!(reason.contains("authenticationTags"), "{what}: {reason}");
        }
        let mut claims = accept_claims(&s);
        claims["events"][ACCEPT_SUBMISSION] = json!({});
        let status = subscriber
            .post_event(&zd, s.case_id, &signed(&claims))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        assert!(zd.events_posted().is_empty());
        assert_eq!(zd.is_waiting(s.submission_id), Some(true));
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn a_set_not_signed_by_the_destination_is_refused() {
        let (zd, destination) = start().await;
        let s = submission(destination);
        zd.add_submission(s.clone());
        let subscriber = Subscriber::new(&zd).await;
        let keys = TestKeys::get();

        // The same kid as the destination's key, another key.
        let impostor = sign_ps512(None, &accept_claims(&s), &key(&keys.impostor_sig)).unwrap();
        let status = subscriber.post_event(&zd, s.case_id, &impostor).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(reasons(&zd).contains("bad signature"), "{}", reasons(&zd));

        // A key the destination does not have at all.
        let stranger = sign_ps512(None, &accept_claims(&s), &key(&keys.zustelldienst)).unwrap();
        let status = subscriber.post_event(&zd, s.case_id, &stranger).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // The destination's signature, the payload changed afterwards.
        let good = signed(&accept_claims(&s));
        let mut parts: Vec<&str> = good.split('.').collect();
        let changed = URL_SAFE_NO_PAD.encode(reject_claims(&s).to_string());
        parts[1] = &changed;
        let status = subscriber
            .post_event(&zd, s.case_id, &parts.join("."))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        assert!(zd.events_posted().is_empty());
        assert_eq!(zd.is_waiting(s.submission_id), Some(true));
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn claims_and_problems_that_do_not_fit_are_refused_and_a_reject_is_taken() {
        let (zd, destination) = start().await;
        let (s, elsewhere) = (submission(destination), submission(destination));
        zd.add_submission(s.clone());
        zd.add_submission(elsewhere.clone());
        let subscriber = Subscriber::new(&zd).await;

        let set = |path: &str, value: Value| {
            let mut claims = reject_claims(&s);
            match value {
                Value::Null => {
                    let (parent, member) = path.rsplit_once('/').unwrap();
                    let parent = if parent.is_empty() {
                        &mut claims
                    } else {
                        claims.pointer_mut(parent).unwrap()
                    };
                    parent.as_object_mut().unwrap().remove(member);
                }
                value => *claims.pointer_mut(path).unwrap() = value,
            }
            claims
        };
        let problems =
            "/events/https:~1~1schema.fitko.de~1fit-connect~1events~1reject-submission/problems";
        let wrong = [
            (
                "iss another destination",
                set("/iss", json!(Uuid::new_v4().to_string())),
            ),
            ("iss the issuer of the stand-in", set("/iss", json!(ISSUER))),
            (
                "sub another case's submission",
                set(
                    "/sub",
                    json!(format!("submission:{}", elsewhere.submission_id)),
                ),
            ),
            (
                "sub without prefix",
                set("/sub", json!(s.submission_id.to_string())),
            ),
            (
                "txn another case",
                set("/txn", json!(format!("case:{}", elsewhere.case_id))),
            ),
            ("jti missing", set("/jti", Value::Null)),
            ("jti no UUID", set("/jti", json!("eins"))),
            ("iat missing", set("/iat", Value::Null)),
            ("iat a string", set("/iat", json!("2026-01-01"))),
            ("no problems", set(problems, json!([]))),
            (
                "a problem without instance",
                set(&format!("{problems}/0/instance"), Value::Null),
            ),
            ("two events", {
                let mut claims = reject_claims(&s);
                claims["events"][ACCEPT_SUBMISSION] = json!({});
                claims
            }),
            ("another event", {
                let mut claims = reject_claims(&s);
                claims["events"] = json!({ SUBMIT_SUBMISSION: {} });
                claims
            }),
        ];
        for (what, claims) in wrong {
            let status = subscriber
                .post_event(&zd, s.case_id, &signed(&claims))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {claims}");
        }
        assert_eq!(zd.refused_events().len(), 13, "{}", reasons(&zd));
        let status = subscriber
            .post_event(&zd, Uuid::new_v4(), &signed(&reject_claims(&s)))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(zd.events_posted().is_empty());

        let status = subscriber
            .post_event(&zd, s.case_id, &signed(&reject_claims(&s)))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{}", reasons(&zd));
        let posted = zd.events_posted();
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].kind, EventKind::Reject);
        assert_eq!(posted[0].claims, reject_claims_like(&posted[0].claims, &s));
        assert_eq!(zd.is_waiting(s.submission_id), Some(false));
        assert_eq!(zd.is_waiting(elsewhere.submission_id), Some(true));
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn while_down_every_route_answers_503_and_nothing_is_lost() {
        let (zd, destination) = start().await;
        let s = submission(destination);
        zd.add_submission(s.clone());
        let subscriber = Subscriber::new(&zd).await;

        zd.set_down(true);
        let token = subscriber
            .http
            .post(zd.token_url())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), StatusCode::SERVICE_UNAVAILABLE);
        for path in ["/v1/submissions", "/.well-known/jwks.json", "/v1/nowhere"] {
            let response = subscriber.get(&zd, path).await;
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        }
        let set = signed(&accept_claims(&s));
        let status = subscriber.post_event(&zd, s.case_id, &set).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(zd.is_waiting(s.submission_id), Some(true));

        zd.set_down(false);
        let list = subscriber.get_json(&zd, "/v1/submissions").await;
        assert_eq!(list["totalCount"], 1);
        let status = subscriber.post_event(&zd, s.case_id, &set).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{}", reasons(&zd));
        let statuses: Vec<u16> = zd.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 503, 503, 503, 503, 503, 200, 204]);
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn a_lost_answer_is_in_the_log_and_a_second_post_is_a_conflict() {
        let (zd, destination) = start().await;
        let (s, other) = (submission(destination), submission(destination));
        zd.add_submission(s.clone());
        zd.add_submission(other.clone());
        let subscriber = Subscriber::new(&zd).await;

        zd.lose_event_answers(1);
        let set = signed(&accept_claims(&s));
        let status = subscriber.post_event(&zd, s.case_id, &set).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(zd.is_waiting(s.submission_id), Some(false));
        assert_eq!(zd.event_log(s.case_id).last(), Some(&set));
        assert_eq!(zd.events_posted().len(), 1);
        // Sent again: the submission is answered already.
        let status = subscriber.post_event(&zd, s.case_id, &set).await;
        assert_eq!(status, StatusCode::CONFLICT);
        // Only the one answer was lost.
        let status = subscriber
            .post_event(&zd, other.case_id, &signed(&accept_claims(&other)))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{}", reasons(&zd));
        assert_eq!(zd.event_log(s.case_id).len(), 2);
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn a_submission_added_without_event_has_an_empty_log() {
        let (zd, destination) = start().await;
        let s = submission(destination);
        zd.add_submission_without_event(s.clone());
        let subscriber = Subscriber::new(&zd).await;
        let list = subscriber.get_json(&zd, "/v1/submissions").await;
        assert_eq!(list["totalCount"], 1);
        let log = subscriber
            .get_json(&zd, &format!("/v1/cases/{}/events", s.case_id))
            .await;
        assert_eq!(log["totalCount"], 0);
        assert!(zd.event_log(s.case_id).is_empty());
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn the_event_log_starts_with_the_stand_ins_own_signed_submit_event() {
        let (zd, destination) = start().await;
        let s = submission(destination);
        zd.add_submission(s.clone());
        let subscriber = Subscriber::new(&zd).await;

        // The key set is public: no token.
        let response = subscriber
            .http
            .get(format!("{}/.well-known/jwks.json", zd.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let jwks: Value = response.json().await.unwrap();
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "a private member is published"
        );
        let jwks = Jwks::from_value(&jwks).unwrap();

        let log = subscriber
            .get_json(&zd, &format!("/v1/cases/{}/events", s.case_id))
            .await;
        assert_eq!(
            (log["count"].clone(), log["totalCount"].clone()),
            (json!(1), json!(1))
        );
        let set = log["eventLog"][0].as_str().unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(set.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            header,
            json!({"alg": "PS512", "typ": "secevent+jwt", "kid": "zustelldienst-sig"})
        );
        let claims = verify_ps512(set, &jwks).unwrap();
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], format!("submission:{}", s.submission_id));
        assert_eq!(claims["txn"], format!("case:{}", s.case_id));
        assert!(Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        assert!(claims["iat"].as_i64().unwrap() > 1_700_000_000);
        let event = &claims["events"][SUBMIT_SUBMISSION];
        assert_eq!(claims["events"].as_object().unwrap().len(), 1);
        assert_eq!(event["authenticationTags"]["data"], tag(&s.encrypted_data));
        assert_eq!(
            event["authenticationTags"]["metadata"],
            tag(&s.encrypted_metadata)
        );
        let (id, jwe) = &s.attachments[1];
        assert_eq!(
            event["authenticationTags"]["attachments"][id.to_string()],
            tag(jwe)
        );

        // Not with the destination's key: the stand-in signs its own events.
        let destination_only = Jwks::new(vec![TestKeys::get().destination_verify()]).unwrap();
        assert!(verify_ps512(set, &destination_only).is_err());
        assert_follows_the_document(&zd);
    }

    #[tokio::test]
    async fn requests_off_the_published_api_are_recorded_as_violations() {
        let (zd, _) = start().await;
        let subscriber = Subscriber::new(&zd).await;

        let cases = [
            ("GET", "/v1/submissions?limit=501", 400, "parameter `limit`"),
            (
                "GET",
                "/v1/submissions?page=2",
                200,
                "query parameter `page` is not declared",
            ),
            ("GET", "/v1/nowhere", 404, "the path is not in the document"),
            ("DELETE", "/v1/submissions", 405, "has no DELETE operation"),
            ("GET", "/v1/info", 501, "not implemented by the stand-in"),
            ("GET", "/v1/submissions/42", 400, "parameter `submissionId`"),
        ];
        for (method, path, status, violation) in cases {
            let before = zd.spec_violations().len();
            let response = subscriber
                .http
                .request(method.parse().unwrap(), format!("{}{path}", zd.base_url()))
                .bearer_auth(&subscriber.token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{method} {path}");
            let violations = zd.spec_violations();
            assert!(
                violations[before..].iter().any(|v| v.contains(violation)),
                "{method} {path}: {violations:?}"
            );
        }

        // A SET as JSON, not application/jose.
        let response = subscriber
            .http
            .post(format!(
                "{}/v1/cases/{}/events",
                zd.base_url(),
                Uuid::new_v4()
            ))
            .bearer_auth(&subscriber.token)
            .json(&json!("eyJhbGciOiJQUzUxMiJ9.e30.c2ln"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let violations = zd.spec_violations();
        assert!(
            violations
                .last()
                .unwrap()
                .contains("\"application/json\" is not declared"),
            "{violations:?}"
        );
    }
}
