//! The daemon as a FIT-Connect subscriber (`[fitconnect]`, off by default):
//! every `poll_interval_secs` it lists each destination's submissions,
//! fetches and checks each new one (`allegro_fitconnect::submission`, and the
//! Zustelldienst's own `submit-submission` event verified against its JWKS
//! naming the same parts), hands its data to the intake queue with a
//! publisher confirm, exactly as the online portal's messages arrive, and
//! keeps the submission and its attachments. Once
//! the application is stored (accepted or a case) it answers
//! `accept-submission`; a submission that fails the checks, or whose data
//! the intake dead-letters, gets `reject-submission` (the problem type by
//! the dead-letter reason: `problem`).
//!
//! "Stored before acknowledged" and "each event once": the answer is made
//! only after the store has the application, kept in
//! `fitconnect_submissions` before it is sent (the event outbox), and a
//! send that may have happened before a crash is looked up in the case's
//! event log before it is tried again. Logs name submission, case and
//! antragId, never content.

pub mod callback;
mod problem;
mod waiting;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use uuid::Uuid;

use allegro_fitconnect::api::{ApiConfig, Client, Posted};
use allegro_fitconnect::events::{self, About, Answer, SubmitEventError};
use allegro_fitconnect::jose::{Jwks, RsaPrivateJwk};
use allegro_fitconnect::submission::{self, AuthenticationTags, Problem, ProblemKind, Received};
use allegro_store::fitconnect::{FcIds, FcState, FcSubmission, Intake, IntakeFate, NewAttachment};
use allegro_store::Store;
use allegro_web::workbench::PipelineSource;

use crate::config::BrokerConfig;
use crate::deadletter::{dedup_key, sha256_hex, truncate};
use crate::metrics::{AnswerLabel, Metrics};
use crate::reload::Mappings;
use crate::retry::Shutdown;
use crate::submit::{antrag_id, Submitter};

/// `[fitconnect]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConnectConfig {
    pub enabled: bool,
    /// The Submission API's base URL (test:
    /// `https://submission-api-testing.fit-connect.fitko.dev`).
    pub api_url: String,
    /// The OAuth token endpoint (test:
    /// `https://auth-testing.fit-connect.fitko.dev/token`).
    pub token_url: String,
    pub client_id: String,
    /// A file holding the client secret (e.g. a systemd credential).
    pub client_secret_file: Option<PathBuf>,
    pub poll_interval_secs: u64,
    /// `host:port` of the callback listener (`callback::PATH`); empty = off.
    /// A callback announcing new submissions starts a round at once.
    #[serde(
        deserialize_with = "allegro_web::settings::socket_addr_or_empty",
        serialize_with = "allegro_web::settings::none_as_empty"
    )]
    pub callback_listen: Option<std::net::SocketAddr>,
    /// A file holding the callback secret set in the self-service portal.
    pub callback_secret_file: Option<PathBuf>,
    /// Per request to the API.
    pub timeout_secs: u64,
    /// The destinations this jobcenter receives at.
    #[serde(rename = "destination")]
    pub destinations: Vec<DestinationConfig>,
}

/// `[[fitconnect.destination]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub id: Uuid,
    /// The Dienststelle it serves (for the operator; the application names
    /// its own).
    pub dienststelle: String,
    /// The private decryption key (JWK, `key_ops: ["unwrapKey"]`).
    pub decryption_key_file: PathBuf,
    /// The private signing key of the events (JWK, PS512).
    pub signing_key_file: PathBuf,
}

impl Default for FitConnectConfig {
    fn default() -> Self {
        FitConnectConfig {
            enabled: false,
            api_url: "https://submission-api-testing.fit-connect.fitko.dev".into(),
            token_url: "https://auth-testing.fit-connect.fitko.dev/token".into(),
            client_id: String::new(),
            client_secret_file: None,
            poll_interval_secs: 30,
            callback_listen: None,
            callback_secret_file: None,
            timeout_secs: 30,
            destinations: Vec::new(),
        }
    }
}

impl FitConnectConfig {
    /// What `config check` finds wrong before the daemon starts.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.callback_listen.is_some() && self.callback_secret_file.is_none() {
            problems.push(
                "fitconnect.callback_secret_file must be set when fitconnect.callback_listen is"
                    .into(),
            );
        }
        problems
    }
}

/// A destination with its keys loaded.
struct Destination {
    id: Uuid,
    decryption: RsaPrivateJwk,
    signing: RsaPrivateJwk,
}

/// The running subscriber.
pub struct Subscriber {
    api: Client,
    /// The Zustelldienst's signing keys, fetched when first needed and again
    /// when its event does not verify (a key rotation).
    zd_keys: tokio::sync::Mutex<Option<Jwks>>,
    destinations: BTreeMap<Uuid, Destination>,
    store: Store,
    broker: BrokerConfig,
    mappings: Arc<Mappings>,
    metrics: Arc<Metrics>,
    interval: Duration,
    /// Notified by an authenticated callback: a round at once.
    wake: Arc<tokio::sync::Notify>,
    /// The submissions waiting at the Zustelldienst, for the age gauge.
    waiting: std::sync::Mutex<waiting::Waiting>,
}

impl Subscriber {
    /// Loads the secret and the keys; every error names the key and file.
    pub fn new(
        cfg: &FitConnectConfig,
        store: Store,
        broker: BrokerConfig,
        mappings: Arc<Mappings>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Subscriber> {
        let secret_file = cfg
            .client_secret_file
            .as_ref()
            .context("fitconnect.client_secret_file is not set")?;
        let client_secret =
            crate::config::read_secret(secret_file).context("fitconnect.client_secret_file")?;
        let api = Client::new(ApiConfig {
            base_url: cfg.api_url.trim_end_matches('/').to_string(),
            token_url: cfg.token_url.clone(),
            client_id: cfg.client_id.clone(),
            client_secret,
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
        })?;
        let mut destinations = BTreeMap::new();
        for d in &cfg.destinations {
            let load = |p: &PathBuf, key: &str| {
                let path = crate::config::credential_path(p)?;
                RsaPrivateJwk::load(&path)
                    .with_context(|| format!("fitconnect.destination {}: {key}", d.id))
            };
            destinations.insert(
                d.id,
                Destination {
                    id: d.id,
                    decryption: load(&d.decryption_key_file, "decryption_key_file")?,
                    signing: load(&d.signing_key_file, "signing_key_file")?,
                },
            );
        }
        anyhow::ensure!(
            !destinations.is_empty(),
            "fitconnect is enabled but names no [[fitconnect.destination]]"
        );
        Ok(Subscriber {
            api,
            zd_keys: tokio::sync::Mutex::new(None),
            destinations,
            store,
            broker,
            mappings,
            metrics,
            interval: Duration::from_secs(cfg.poll_interval_secs.max(1)),
            wake: Arc::default(),
            waiting: std::sync::Mutex::default(),
        })
    }

    /// What starts a round before the interval is over (the callback
    /// listener's).
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.wake)
    }

    /// Polls until shutdown: a full round every interval, and at once when
    /// woken ([`Subscriber::waker`]); while data handed to the intake is not
    /// stored yet, its answer is looked for every 2 s in between (without
    /// listing the Zustelldienst again). A failed round (the Zustelldienst
    /// or the broker away) is logged and tried again at the next interval;
    /// nothing is answered before it is stored.
    pub async fn run(self, mut shutdown: Shutdown) {
        info!(
            destinations = self.destinations.len(),
            "FIT-Connect subscriber started"
        );
        let mut next_round = Instant::now();
        loop {
            let outcome = if Instant::now() >= next_round {
                next_round = Instant::now() + self.interval;
                self.round().await
            } else {
                self.answers().await
            };
            let awaiting = outcome.unwrap_or_else(|e| {
                self.metrics.fitconnect_rounds_failed.inc();
                warn!(error = %format!("{e:#}"), "FIT-Connect round failed; trying again");
                0
            });
            self.show_oldest_unanswered();
            let mut pause = next_round.saturating_duration_since(Instant::now());
            if awaiting > 0 {
                pause = pause.min(AWAITING_INTAKE);
            }
            tokio::select! {
                stop = shutdown.sleep(pause) => if stop { return },
                () = self.wake.notified() => next_round = Instant::now(),
            }
        }
    }

    /// Sets the gauge of the oldest submission still unanswered.
    fn show_oldest_unanswered(&self) {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let age = waiting.oldest(Instant::now()).as_secs();
        self.metrics
            .fitconnect_oldest_unanswered_age
            .set(i64::try_from(age).unwrap_or(i64::MAX));
    }

    /// One round: answer what is owed, take what is new, answer again.
    /// Returns how many submissions wait for the intake to store their
    /// data before they can be answered.
    pub async fn round(&self) -> anyhow::Result<usize> {
        let mut failed = self.answer_owed().await.failed;
        for d in self.destinations.values() {
            if let Err(e) = self.take_new(d).await {
                warn!(destination = %d.id, error = %format!("{e:#}"), "FIT-Connect pickup failed");
                failed += 1;
            }
        }
        let owed = self.answer_owed().await;
        failed += owed.failed;
        anyhow::ensure!(
            failed == 0,
            "{failed} FIT-Connect steps failed; the next round tries again"
        );
        Ok(owed.awaiting_intake)
    }

    /// Only the answers owed, between rounds; returns how many submissions
    /// still wait for the intake.
    async fn answers(&self) -> anyhow::Result<usize> {
        let owed = self.answer_owed().await;
        anyhow::ensure!(
            owed.failed == 0,
            "{} FIT-Connect answers failed; the next round tries again",
            owed.failed
        );
        Ok(owed.awaiting_intake)
    }

    /// Takes the destination's new submissions; one that fails is left for
    /// the next round without holding up the others.
    async fn take_new(&self, d: &Destination) -> anyhow::Result<()> {
        let waiting = self.api.pickup(d.id).await?;
        let ids: Vec<Uuid> = waiting.iter().map(|p| p.submission_id).collect();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .listed(d.id, &ids, Instant::now());
        let mut submitter = None;
        for p in waiting {
            if self.store.fc_submission(p.submission_id).await?.is_some() {
                continue;
            }
            if let Err(e) = self.take(d, p.submission_id, &mut submitter).await {
                warn!(submission = %p.submission_id, case = %p.case_id, error = %format!("{e:#}"),
                    "FIT-Connect submission not taken; trying again next round");
                // A broker connection that failed is not used again.
                submitter = None;
            }
        }
        if let Some(s) = submitter {
            s.close().await;
        }
        Ok(())
    }

    /// Fetches, checks and keeps one new submission; publishes its data or
    /// keeps its reject event.
    async fn take(
        &self,
        d: &Destination,
        id: Uuid,
        submitter: &mut Option<Submitter>,
    ) -> anyhow::Result<()> {
        let fetched = self.api.fetch(id).await?;
        anyhow::ensure!(
            fetched.submission_id == id && fetched.destination_id == d.id,
            "the Zustelldienst answered for submission {id} of destination {} with another one",
            d.id
        );
        let ids = FcIds {
            submission_id: fetched.submission_id,
            case_id: fetched.case_id,
            destination_id: d.id,
        };
        let pipeline = self.mappings.current();
        let knows = |uri: &str| {
            uri == nachreichung_schema_id()
                || pipeline
                    .mappings()
                    .all()
                    .iter()
                    .any(|m| m.schema_json["$id"].as_str() == Some(uri))
        };
        let checked =
            submission::check(&fetched, &d.decryption, knows).and_then(|r| Ok((intake_of(&r)?, r)));
        let checked = match checked {
            Ok((intake, received)) => self
                .check_submit_event(&ids, &received)
                .await?
                .map(|()| (intake, received)),
            Err(problem) => Err(problem),
        };
        match checked {
            Err(problem) => self.reject_early(d, ids, problem).await,
            Ok((intake, received)) => self.publish(ids, intake, &received, submitter).await,
        }
    }

    /// The Zustelldienst's `submit-submission` event, verified with its
    /// keys, must name the parts received. No verified event is an error
    /// (the submission is left for the next round, never answered); other
    /// tags are a reject.
    async fn check_submit_event(
        &self,
        ids: &FcIds,
        r: &Received,
    ) -> anyhow::Result<Result<(), Problem>> {
        let log = self.api.events(ids.case_id).await?;
        let check =
            |jwks: &Jwks| events::check_submit_event(&log, jwks, ids.submission_id, &r.tags);
        let mut checked = check(&self.zd_keys(false).await?);
        if let Err(SubmitEventError::Missing(_)) = checked {
            // Perhaps signed with a key published since: once more, fresh.
            checked = check(&self.zd_keys(true).await?);
        }
        match checked {
            Ok(()) => Ok(Ok(())),
            Err(SubmitEventError::TagsDiffer) => Ok(Err(Problem {
                kind: ProblemKind::IncorrectAuthenticationTag,
                instance: "submission".into(),
                detail: "Die empfangenen Teile sind nicht die vom Zustelldienst als gesendet vermerkten."
                    .into(),
            })),
            Err(e) => anyhow::bail!("submission {}: {e}", ids.submission_id),
        }
    }

    /// The Zustelldienst's signing keys: the kept ones, or (`fresh`, or none
    /// kept yet) fetched anew.
    async fn zd_keys(&self, fresh: bool) -> anyhow::Result<Jwks> {
        let mut kept = self.zd_keys.lock().await;
        match kept.as_ref() {
            Some(jwks) if !fresh => Ok(jwks.clone()),
            _ => {
                let jwks = self.api.jwks().await?;
                *kept = Some(jwks.clone());
                Ok(jwks)
            }
        }
    }

    async fn reject_early(
        &self,
        d: &Destination,
        ids: FcIds,
        problem: Problem,
    ) -> anyhow::Result<()> {
        info!(submission = %ids.submission_id, case = %ids.case_id, problem = problem.kind.name(),
            "FIT-Connect submission rejected");
        let (about, now) = about(&ids);
        let name = problem.kind.name();
        let event = events::sign(&about, &Answer::Reject(problem), &d.signing)?;
        if self
            .store
            .fc_rejected(ids, name, &event, about.jti, now)
            .await?
        {
            self.count("reject");
        }
        Ok(())
    }

    async fn publish(
        &self,
        ids: FcIds,
        (intake, message_id): (Intake, Uuid),
        r: &Received,
        submitter: &mut Option<Submitter>,
    ) -> anyhow::Result<()> {
        let tags = serde_json::to_string(&r.tags)?;
        let attachments: Vec<NewAttachment> = r
            .attachments
            .iter()
            .map(|a| NewAttachment {
                attachment_id: a.id,
                purpose: &a.purpose,
                mime_type: &a.mime_type,
                filename: a.filename.as_deref(),
                description: a.description.as_deref(),
                sha512: &a.sha512,
                content: &a.content,
            })
            .collect();
        // Published first, kept second: after a crash between the two the
        // submission is fetched and published again next round, which the
        // intake takes as the duplicate it is (same antragId and body); the
        // other order could keep a row whose data never reached the queue.
        if submitter.is_none() {
            *submitter = Some(Submitter::connect(&self.broker).await?);
        }
        let s = submitter.as_ref().expect("connected");
        let confirmed = s.publish(message_id, &r.data).await?.accepted().await?;
        anyhow::ensure!(
            confirmed,
            "the broker did not take message {message_id} into the intake queue"
        );
        if !self
            .store
            .fc_received(ids, &intake, &tags, &attachments, Utc::now())
            .await?
        {
            return Ok(());
        }
        info!(submission = %ids.submission_id, case = %ids.case_id, antrag_id = %intake.antrag_id,
            nachreichung = ?intake.nachreichung_id,
            attachments = attachments.len(), "FIT-Connect submission handed to the intake");
        Ok(())
    }

    /// Makes the answers of stored or dead-lettered applications and sends
    /// every answer not yet sent.
    async fn answer_owed(&self) -> Owed {
        let mut owed = Owed::default();
        let rows = match self.store.fc_open().await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "FIT-Connect answers not read");
                owed.failed = 1;
                return owed;
            }
        };
        for row in rows {
            let Some(d) = self.destinations.get(&row.destination_id) else {
                continue;
            };
            let done = match &row.state {
                FcState::Published { intake, tags } => {
                    match self.make_answer(d, &row, intake, tags).await {
                        Ok(false) => {
                            owed.awaiting_intake += 1;
                            Ok(())
                        }
                        other => other.map(drop),
                    }
                }
                FcState::Answer {
                    event,
                    jti,
                    attempts,
                } => self.send(&row, event, *jti, *attempts).await,
                FcState::Done | FcState::Refused => Ok(()),
            };
            if let Err(e) = done {
                warn!(submission = %row.submission_id, case = %row.case_id, error = %format!("{e:#}"),
                    "FIT-Connect answer not sent; trying again next round");
                owed.failed += 1;
            }
        }
        owed
    }

    /// The answer of a published submission, once its application's fate
    /// is known; sent at once. `false` while the intake has not decided.
    async fn make_answer(
        &self,
        d: &Destination,
        row: &FcSubmission,
        intake: &Intake,
        tags: &str,
    ) -> anyhow::Result<bool> {
        let answer = match self.store.intake_fate(intake).await? {
            IntakeFate::Pending => return Ok(false),
            IntakeFate::Stored => Answer::Accept(serde_json::from_str::<AuthenticationTags>(tags)?),
            IntakeFate::DeadLettered(reason) => Answer::Reject(problem::dead_lettered(&reason)),
        };
        let ids = FcIds {
            submission_id: row.submission_id,
            case_id: row.case_id,
            destination_id: row.destination_id,
        };
        let (about, now) = about(&ids);
        let problem = match &answer {
            Answer::Reject(p) => Some(p.kind.name()),
            Answer::Accept(_) => None,
        };
        let event = events::sign(&about, &answer, &d.signing)?;
        if self
            .store
            .fc_answer(
                row.submission_id,
                answer.kind(),
                problem,
                &event,
                about.jti,
                now,
            )
            .await?
        {
            self.count(answer.kind());
            self.send(row, &event, about.jti, 0).await?;
        }
        Ok(true)
    }

    fn count(&self, answer: &'static str) {
        self.metrics
            .fitconnect_submissions
            .get_or_create(&AnswerLabel { answer })
            .inc();
    }

    /// Sends a kept event; after an earlier attempt, only if the case's
    /// event log does not have it yet.
    async fn send(
        &self,
        row: &FcSubmission,
        event: &str,
        jti: Uuid,
        attempts: i32,
    ) -> anyhow::Result<()> {
        let id = row.submission_id;
        if attempts > 0 && events::log_has(&self.api.events(row.case_id).await?, jti) {
            self.store.fc_done(id, Utc::now()).await?;
            return Ok(());
        }
        self.store.fc_attempt(id).await?;
        match self.api.post_event(row.case_id, event).await? {
            Posted::Taken => {
                info!(submission = %id, case = %row.case_id, "FIT-Connect answer sent")
            }
            Posted::AlreadyAnswered => {
                warn!(submission = %id, case = %row.case_id, "FIT-Connect submission was answered already")
            }
            Posted::Refused(why) => {
                // Sending it again would be refused again: kept as refused
                // for the operator (the Zustelldienst rejects the
                // submission by itself after 14 days).
                self.store.fc_refused(id).await?;
                self.metrics.fitconnect_answers_refused.inc();
                tracing::error!(submission = %id, case = %row.case_id, why = %truncate(&why, 300),
                    "the Zustelldienst refused the FIT-Connect answer; not sent again");
                return Ok(());
            }
        }
        self.store.fc_done(id, Utc::now()).await?;
        Ok(())
    }
}

/// How soon the answers are looked at again, at most, while data handed to
/// the intake is not stored yet (its answer is owed as soon as it is).
const AWAITING_INTAKE: Duration = Duration::from_secs(2);

/// What a pass over the open rows came to.
#[derive(Debug, Default)]
struct Owed {
    /// Steps that failed (tried again next round).
    failed: usize,
    /// Published submissions whose data the intake has not decided on.
    awaiting_intake: usize,
}

/// The `$id` of the Nachreichung message's schema (contract §8).
fn nachreichung_schema_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        serde_json::from_str::<serde_json::Value>(allegro_core::mitwirkung::nachreichung::SCHEMA)
            .ok()
            .and_then(|v| v["$id"].as_str().map(String::from))
            .unwrap_or_default()
    })
}

/// What the data is for the intake, and the message id it is published
/// under: an application (its antragId, contract §1) or a Nachreichung
/// (`typ: NACHREICHUNG`: its nachreichungId, for its antragId, contract
/// §8); with the `dedup_key` its message would get as a dead letter.
fn intake_of(r: &Received) -> Result<(Intake, Uuid), Problem> {
    let not_ours = || Problem {
        kind: ProblemKind::SchemaViolation,
        instance: "data".into(),
        detail: "Die Fachdaten sind weder ein Antrag noch eine Nachreichung mit antragId \
                 (docs/contract.md §1, §8)."
            .into(),
    };
    let value: serde_json::Value = serde_json::from_slice(&r.data).map_err(|_| not_ours())?;
    let antrag_id = antrag_id(&r.data).map_err(|_| not_ours())?;
    let nachreichung_id = match value["typ"].as_str() {
        Some("NACHREICHUNG") => Some(
            value["nachreichungId"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(not_ours)?,
        ),
        _ => None,
    };
    let message_id = nachreichung_id.unwrap_or(antrag_id);
    let body_sha256 = sha256_hex(&r.data);
    let dead_letter_key = dedup_key(&body_sha256, Some(&message_id.to_string()));
    Ok((
        Intake {
            antrag_id,
            nachreichung_id,
            body_sha256,
            dead_letter_key,
        },
        message_id,
    ))
}

/// The identity of a new event about `ids`, and now.
fn about(ids: &FcIds) -> (About, chrono::DateTime<Utc>) {
    let now = Utc::now();
    (
        About {
            destination_id: ids.destination_id,
            submission_id: ids.submission_id,
            case_id: ids.case_id,
            jti: Uuid::new_v4(),
            iat: now.timestamp(),
        },
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_listener_needs_its_secret() {
        let off = FitConnectConfig::default();
        assert!(off.validate().is_empty());
        let mut on = FitConnectConfig {
            callback_listen: Some("127.0.0.1:9470".parse().unwrap()),
            ..FitConnectConfig::default()
        };
        assert_eq!(on.validate().len(), 1, "{:?}", on.validate());
        on.callback_secret_file = Some("/run/credentials/x/fitconnect-callback-secret".into());
        assert!(on.validate().is_empty());
    }
}
