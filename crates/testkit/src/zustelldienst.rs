//! A local FIT-Connect Zustelldienst (delivery service) for the subscriber's
//! tests, since no FIT-Connect sandbox is reachable from the test machines.
//! It follows FITKO's Submission API 1.1.3 as vendored in
//! `crates/fitconnect/spec/`, and holds itself and its clients to it.
//!
//! Two axum servers on `127.0.0.1:0`, as the token URL and the API are two
//! hosts in reality:
//!
//! - [`Zustelldienst::token_url`]: `POST /token`, OAuth 2 client credentials
//!   with `client_secret_post` (HTTP Basic is refused with 401
//!   `invalid_client`); tokens live 1800 s or until
//!   [`Zustelldienst::expire_tokens`].
//! - [`Zustelldienst::base_url`]: the Submission API, `/v1/...` as the
//!   document writes it: the pickup list, a submission, an attachment
//!   (`application/jose`), a case's event log (read and post), and
//!   `/.well-known/jwks.json`. Every operation the document secures needs a
//!   bearer token the stand-in issued and that has not expired.
//!
//! Test-side: [`Zustelldienst::add_submission`] puts a submission up for
//! pickup and logs a `submit-submission` SET the stand-in signs with its own
//! key, as the real one does. A subscriber's `accept-submission` or
//! `reject-submission` SET is verified with the destination's key and
//! checked (claims, authentication tags, problems): 422 if anything is
//! wrong (the reason in [`Zustelldienst::refused_events`]), 409 if the
//! submission was already accepted or rejected, else 204 and the submission
//! leaves the pickup list ([`Zustelldienst::events_posted`]).
//!
//! The referee (`zustelldienst/openapi.rs`): every API request is matched
//! to an operation of the document (path, method, query and path
//! parameters, request body) and every response checked against it
//! (declared status, content type, body schema); what does not fit is in
//! [`Zustelldienst::spec_violations`], which tests assert empty.
//! [`Zustelldienst::set_down`] makes every route answer 503 (an outage;
//! those answers are not checked). [`Zustelldienst::lose_event_answers`]
//! takes the next event posts into the log and then answers 500, as if the
//! connection broke on the way back (not checked either).
//!
//! [`Zustelldienst::announce`] sends a subscriber the callback announcing
//! the submissions waiting for a destination (`zustelldienst/callback.rs`).

mod callback;
mod openapi;
mod peer;
mod routes;
mod sets;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use allegro_fitconnect::jose::{sign_ps512, verify_ps512, Jwks, RsaPrivateJwk, RsaPublicJwk};
use serde_json::{json, Value};
use tokio::task::AbortHandle;
use uuid::Uuid;

pub use callback::{Callback, NEW_SUBMISSIONS};
pub use peer::{public_jwk, JosePeer, KeySpec, TestKeys};
pub use sets::{ACCEPT_SUBMISSION, REJECT_SUBMISSION, SET_PAYLOAD_SCHEMA, SUBMIT_SUBMISSION};

/// The `iss` of the stand-in's own SETs: the testing Zustelldienst's.
pub const ISSUER: &str = "https://submission-api-testing.fit-connect.fitko.dev";
/// How long an access token lives, in seconds (`expires_in`).
pub const TOKEN_LIFETIME_SECS: u64 = 1800;

/// What the stand-in is started with.
pub struct ZustelldienstConfig {
    /// The OAuth client the subscriber authenticates as.
    pub client_id: String,
    pub client_secret: String,
    /// The destinations (Zustellpunkte) the client subscribes to, each with
    /// the public key its SETs are verified with (needs a `kid`).
    pub destinations: Vec<(Uuid, RsaPublicJwk)>,
    /// The stand-in's own signing key (PS512, with a `kid`).
    pub own_key: RsaPrivateJwk,
    /// `own_key`'s public JWK as `/.well-known/jwks.json` publishes it.
    /// allegro-fitconnect's keys do not export their parts, so it is given;
    /// [`Zustelldienst::start`] checks it is `own_key`'s. The document's JWK
    /// schema wants `kid` (8 to 64 characters), `key_ops: ["verify"]`,
    /// `alg: PS512`, `x5c` and a 4096-bit `n` ([`TestKeys`] makes such).
    pub own_jwk: Value,
}

/// A submission as a sender submitted it, for [`Zustelldienst::add_submission`].
#[derive(Clone, Debug)]
pub struct NewSubmission {
    pub destination_id: Uuid,
    pub submission_id: Uuid,
    pub case_id: Uuid,
    /// `serviceType`: identifier (a URN, e.g.
    /// `urn:de:fim:leika:leistung:99123456760610`) and name.
    pub service_type: (String, String),
    /// JWE compact serializations, encrypted to the destination's key.
    pub encrypted_metadata: String,
    pub encrypted_data: String,
    /// Attachment ids and their JWEs.
    pub attachments: Vec<(Uuid, String)>,
}

/// The event a subscriber posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Accept,
    Reject,
}

/// A SET the stand-in took (204).
#[derive(Clone, Debug)]
pub struct PostedEvent {
    pub case_id: Uuid,
    pub submission_id: Uuid,
    pub kind: EventKind,
    /// The verified claims.
    pub claims: Value,
    /// The SET as posted.
    pub compact: String,
}

/// A post to an event log the stand-in refused (anything but 204, 401 and
/// 503), and why.
#[derive(Clone, Debug)]
pub struct RefusedEvent {
    /// The case id as in the path.
    pub case_id: String,
    pub status: u16,
    pub reason: String,
    pub compact: String,
}

/// A request the stand-in answered: method, path without query, status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// The running stand-in; dropping it stops both servers.
pub struct Zustelldienst {
    shared: Arc<Shared>,
    token_addr: SocketAddr,
    api_addr: SocketAddr,
    tasks: Vec<AbortHandle>,
}

/// What the handlers share.
struct Shared {
    client_id: String,
    client_secret: String,
    destinations: HashMap<Uuid, Jwks>,
    own_key: RsaPrivateJwk,
    own_jwks: Value,
    down: AtomicBool,
    /// Event posts still to be taken and then answered 500.
    lose_answers: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Access tokens and when they expire.
    tokens: HashMap<String, Instant>,
    submissions: Vec<Stored>,
    /// Each case's SETs, oldest first.
    event_logs: HashMap<Uuid, Vec<String>>,
    posted: Vec<PostedEvent>,
    refused: Vec<RefusedEvent>,
    requests: Vec<LoggedRequest>,
    violations: Vec<String>,
}

struct Stored {
    submission: NewSubmission,
    /// `None` while it waits for pickup.
    outcome: Option<EventKind>,
}

impl Zustelldienst {
    /// Starts both servers (needs a tokio runtime). Panics on a
    /// configuration that cannot work: a destination key without `kid`,
    /// two equal destination ids, or an `own_jwk` that is not `own_key`'s.
    pub async fn start(config: ZustelldienstConfig) -> Zustelldienst {
        let shared = Arc::new(Shared::new(config));
        let token_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let token_addr = token_listener.local_addr().unwrap();
        let api_addr = api_listener.local_addr().unwrap();
        let token_app = routes::token_router(Arc::clone(&shared));
        let api_app = routes::api_router(Arc::clone(&shared));
        let tasks = [
            tokio::spawn(async move { axum::serve(token_listener, token_app).await }),
            tokio::spawn(async move { axum::serve(api_listener, api_app).await }),
        ];
        Zustelldienst {
            shared,
            token_addr,
            api_addr,
            tasks: tasks.iter().map(|t| t.abort_handle()).collect(),
        }
    }

    /// The OAuth token endpoint, `http://127.0.0.1:<port>/token`.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.token_addr)
    }

    /// The Submission API's base, `http://127.0.0.1:<port>` (the document's
    /// server URL; its paths start with `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// Puts a submission up for pickup and logs the stand-in's signed
    /// `submit-submission` SET in its case's event log. Panics on an
    /// unknown destination or a submission id already there.
    pub fn add_submission(&self, submission: NewSubmission) {
        let set = sets::submit_event(&submission, &self.shared.own_key);
        self.add(submission, Some(set));
    }

    /// Puts a submission up for pickup with an empty event log: without
    /// the `submit-submission` SET a subscriber must never take it (it
    /// stays waiting, as one the real Zustelldienst would reject by itself
    /// after 14 days).
    pub fn add_submission_without_event(&self, submission: NewSubmission) {
        self.add(submission, None);
    }

    fn add(&self, submission: NewSubmission, submit_event: Option<String>) {
        assert!(
            self.shared
                .destinations
                .contains_key(&submission.destination_id),
            "destination {} is not configured",
            submission.destination_id
        );
        let mut state = self.shared.state();
        assert!(
            !state
                .submissions
                .iter()
                .any(|s| s.submission.submission_id == submission.submission_id),
            "submission {} was added already",
            submission.submission_id
        );
        let log = state.event_logs.entry(submission.case_id).or_default();
        log.extend(submit_event);
        state.submissions.push(Stored {
            submission,
            outcome: None,
        });
    }

    /// Lets every access token issued so far expire now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in self.shared.state().tokens.values_mut() {
            *expiry = now;
        }
    }

    /// While down, every route of both servers answers 503.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// The next `n` event posts the stand-in takes (the SET checked, put in
    /// the case's event log, the submission off the pickup list) are
    /// answered 500 instead of 204: the subscriber cannot tell whether its
    /// answer arrived, as after a connection lost or a crash just after
    /// the post.
    pub fn lose_event_answers(&self, n: usize) {
        self.shared.lose_answers.store(n, Ordering::SeqCst);
    }

    /// Announces the submissions waiting for `destination` by a callback
    /// to `addr` (`host:port`) and `path`, signed as `how` says; returns
    /// the subscriber's HTTP status (0 if none).
    pub async fn announce(&self, destination: Uuid, addr: &str, path: &str, how: &Callback) -> u16 {
        let ids: Vec<Uuid> = self
            .shared
            .state()
            .submissions
            .iter()
            .filter(|s| s.outcome.is_none() && s.submission.destination_id == destination)
            .map(|s| s.submission.submission_id)
            .collect();
        callback::post(addr, path, &callback::body(&ids), how).await
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.state().requests.clone()
    }

    /// The SETs taken so far (204), in order.
    pub fn events_posted(&self) -> Vec<PostedEvent> {
        self.shared.state().posted.clone()
    }

    /// The posts to an event log refused so far, with the reasons.
    pub fn refused_events(&self) -> Vec<RefusedEvent> {
        self.shared.state().refused.clone()
    }

    /// Where a request or a response did not follow the document.
    pub fn spec_violations(&self) -> Vec<String> {
        self.shared.state().violations.clone()
    }

    /// The event log of a case (SETs, oldest first), empty if unknown.
    pub fn event_log(&self, case_id: Uuid) -> Vec<String> {
        self.shared
            .state()
            .event_logs
            .get(&case_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the submission still waits for pickup (neither accepted nor
    /// rejected); `None` if it is unknown.
    pub fn is_waiting(&self, submission_id: Uuid) -> Option<bool> {
        self.shared
            .state()
            .submissions
            .iter()
            .find(|s| s.submission.submission_id == submission_id)
            .map(|s| s.outcome.is_none())
    }
}

impl Drop for Zustelldienst {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    fn new(config: ZustelldienstConfig) -> Self {
        let mut destinations = HashMap::new();
        for (id, key) in config.destinations {
            assert!(
                key.kid().is_some(),
                "the key of destination {id} has no kid"
            );
            let jwks = Jwks::new(vec![key]).expect("one key");
            assert!(
                destinations.insert(id, jwks).is_none(),
                "destination {id} is configured twice"
            );
        }
        check_own_jwk(&config.own_key, &config.own_jwk);
        Self {
            client_id: config.client_id,
            client_secret: config.client_secret,
            destinations,
            own_key: config.own_key,
            own_jwks: json!({ "keys": [config.own_jwk] }),
            down: AtomicBool::new(false),
            lose_answers: AtomicUsize::new(0),
            state: Mutex::default(),
        }
    }

    /// Whether the answer to an event just taken is to be lost (counts it).
    fn lose_answer(&self) -> bool {
        self.lose_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Panics unless `published` is the public part of `key`: a token signed
/// with `key` must verify with it.
fn check_own_jwk(key: &RsaPrivateJwk, published: &Value) {
    let public = RsaPublicJwk::from_value(published)
        .unwrap_or_else(|e| panic!("own_jwk is no RSA public JWK: {e}"));
    let probe = sign_ps512(None, &json!({"probe": true}), key)
        .unwrap_or_else(|e| panic!("own_key cannot sign PS512: {e}"));
    let jwks = Jwks::new(vec![public]).expect("one key");
    if let Err(e) = verify_ps512(&probe, &jwks) {
        panic!("own_jwk is not own_key's public part: {e}");
    }
}
