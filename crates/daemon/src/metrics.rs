//! Prometheus metrics and the readiness of the daemon, served by
//! `allegro_web::ops` on an optional listener (`metrics.listen`, e.g.
//! `127.0.0.1:9464`; off by default): `/metrics` gives the text exposition,
//! `/readyz` answers 200 while the broker session, the database and the
//! outbox all work and 503 (naming which one does not) otherwise.
//!
//! Labels carry only outcome and reason codes, rule ids, severities, mapping
//! names, stage and retention kind names (all from the code or the mapping
//! files) and the mapping set's content hash, never anything from an
//! application: no personal data in metrics.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing::warn;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// An `InvalidReason` code.
    pub reason: &'static str,
}

/// Why a FIT-Connect callback was refused:
/// `allegro_fitconnect::callback::Refused::name`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabel {
    pub reason: &'static str,
}

/// The result of a mapping reload: `ok` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// A FIT-Connect answer: `accept` or `reject`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabel {
    pub answer: &'static str,
}

/// The content hash of a mapping set (hex SHA-256, see `reload::set_hash`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HashLabel {
    pub hash: String,
}

/// A finding's source (`daemon` here; the check API counts `api` into the
/// same family), rule id and severity.
pub use allegro_web::api::metrics::FindingLabel;

/// A processing stage: `pipeline`, `store` or `ack`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

/// The mapping an application was judged under (its name in the mapping
/// files, e.g. `bg-ha-1.0`) and the outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MappingLabel {
    pub mapping: String,
    pub outcome: &'static str,
}

/// A kind of data removed by retention (`allegro_store::retention::Kind`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// A document owed by its state (`offen`, `angefordert` within its
/// deadline, `ueberfaellig`, `eingegangen`, `verzichtet`) and kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DocumentLabel {
    pub state: &'static str,
    pub kind: String,
}

/// The stages timed in `stage_seconds`.
pub const STAGES: [&str; 3] = ["pipeline", "store", "ack"];

fn stage_histogram() -> Histogram {
    // 0.5 ms .. about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of the daemon, in one explicit registry.
pub struct Metrics {
    registry: Registry,
    /// Applications newly stored, by outcome (`accepted`, `rejected`).
    pub applications: Family<OutcomeLabel, Counter>,
    /// Dead letters published, by reason code.
    pub dead_letters: Family<ReasonLabel, Counter>,
    /// Redeliveries recognised as already stored.
    pub duplicates: Counter,
    /// Batches committed and acked.
    pub batches: Counter,
    /// Deliveries acked (every outcome, duplicates included).
    pub deliveries_acked: Counter,
    /// Seconds from a batch's pipeline start to its ack.
    pub batch_seconds: Histogram,
    /// Failed attempts to store a batch (each is retried).
    pub store_retries: Counter,
    /// Broker sessions that ended with an error (each is reconnected).
    pub broker_reconnects: Counter,
    /// Record files written to the outbox.
    pub records_written: Counter,
    /// 1 while the outbox can be written, 0 while intake is paused for it.
    pub outbox_healthy: Gauge,
    /// 1 while a broker session is consuming, 0 while reconnecting.
    pub broker_connected: Gauge,
    /// 1 while the database takes batches, 0 while storing fails (retried).
    pub store_healthy: Gauge,
    /// 1 while deliveries are taken one at a time after a broken session
    /// (careful mode, see `consumer`), else 0.
    pub careful_mode: Gauge,
    /// Messages in the DLQ (probed every 30 s; -1 until the first probe).
    pub dlq_messages: Gauge,
    /// Messages in the DLQ beyond the dead-letter log's open rows: moved
    /// there by the broker (`delivery_limit`) or published by another tool.
    pub dlq_without_log_row: Gauge,
    /// Mapping reloads (SIGHUP), by result (`ok`, `failed`).
    pub mapping_reloads: Family<ResultLabel, Counter>,
    /// Unix time (seconds) when the mapping set in force was loaded.
    pub mapping_set_loaded: Gauge<f64, AtomicU64>,
    /// 1 for the content hash of the mapping set in force (info style: one
    /// series at a time).
    pub mapping_set_info: Family<HashLabel, Gauge>,
    /// The hash in `mapping_set_info`, to replace its series on a swap.
    mapping_hash: Mutex<String>,
    /// Findings of newly stored applications (`source="daemon"`) and of
    /// the check API's checks (`source="api"`), by rule id and severity.
    pub findings: Family<FindingLabel, Counter>,
    /// The check API's requests (`[api] listen`), sharing `findings`.
    pub api: allegro_web::api::metrics::ApiMetrics,
    /// Seconds per batch in each stage: the pipeline, storing (the
    /// transaction that succeeded, dead-letter confirms included), the ack.
    pub stage_seconds: Family<StageLabel, Histogram, fn() -> Histogram>,
    /// Cases open for work (`open` or `deferred`), read from the database.
    pub open_cases: Gauge,
    /// Age in seconds of the oldest case open for work (0: none).
    pub oldest_open_case_age: Gauge,
    /// Newly stored applications by mapping and outcome.
    pub applications_by_mapping: Family<MappingLabel, Counter>,
    /// Rows purged by retention, by kind.
    pub retention_deleted: Family<KindLabel, Counter>,
    /// Documents owed by state and kind, from the database.
    pub documents_owed: Family<DocumentLabel, Gauge>,
    /// Documents requested and past their deadline.
    pub documents_overdue: Gauge,
    /// Age in seconds of the oldest overdue request (0: none).
    pub oldest_overdue_request_age: Gauge,
    /// Nachreichungen matched to a document owed.
    pub nachreichungen: Counter,
    /// FIT-Connect submissions answered (the answer made and kept for
    /// sending), by answer.
    pub fitconnect_submissions: Family<AnswerLabel, Counter>,
    /// FIT-Connect rounds that failed (the Zustelldienst, the broker or
    /// the database away; the next round tries again).
    pub fitconnect_rounds_failed: Counter,
    /// FIT-Connect answers the Zustelldienst refused (422): not sent again.
    pub fitconnect_answers_refused: Counter,
    /// FIT-Connect callbacks refused, by reason (`signature`, `stale`,
    /// `malformed`).
    pub fitconnect_callbacks_refused: Family<RefusalLabel, Counter>,
    /// Age in seconds of the oldest FIT-Connect submission still waiting at
    /// the Zustelldienst (since this process first listed it; 0: none).
    pub fitconnect_oldest_unanswered_age: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("allegro_bridge");
        let findings = Family::default();
        let m = Metrics {
            applications: Family::default(),
            dead_letters: Family::default(),
            duplicates: Counter::default(),
            batches: Counter::default(),
            deliveries_acked: Counter::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            store_retries: Counter::default(),
            broker_reconnects: Counter::default(),
            records_written: Counter::default(),
            outbox_healthy: Gauge::default(),
            broker_connected: Gauge::default(),
            store_healthy: Gauge::default(),
            careful_mode: Gauge::default(),
            dlq_messages: Gauge::default(),
            dlq_without_log_row: Gauge::default(),
            mapping_reloads: Family::default(),
            mapping_set_loaded: Gauge::default(),
            mapping_set_info: Family::default(),
            mapping_hash: Mutex::new(String::new()),
            findings: findings.clone(),
            api: allegro_web::api::metrics::ApiMetrics::new(findings),
            stage_seconds: Family::new_with_constructor(stage_histogram),
            open_cases: Gauge::default(),
            oldest_open_case_age: Gauge::default(),
            applications_by_mapping: Family::default(),
            retention_deleted: Family::default(),
            documents_owed: Family::default(),
            documents_overdue: Gauge::default(),
            oldest_overdue_request_age: Gauge::default(),
            nachreichungen: Counter::default(),
            fitconnect_submissions: Family::default(),
            fitconnect_rounds_failed: Counter::default(),
            fitconnect_answers_refused: Counter::default(),
            fitconnect_callbacks_refused: Family::default(),
            fitconnect_oldest_unanswered_age: Gauge::default(),
            registry: Registry::default(),
        };
        // Every stage and retention kind from the start.
        for stage in STAGES {
            let _ = m.stage_seconds.get_or_create(&StageLabel { stage });
        }
        for kind in allegro_store::retention::Kind::ALL {
            let _ = m.retention_deleted.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
        }
        // Both results from the start, so a rate over them is defined.
        for result in ["ok", "failed"] {
            let _ = m.mapping_reloads.get_or_create(&ResultLabel { result });
        }
        for reason in allegro_fitconnect::callback::Refused::ALL {
            let _ = m.fitconnect_callbacks_refused.get_or_create(&RefusalLabel {
                reason: reason.name(),
            });
        }
        for answer in ["accept", "reject"] {
            let _ = m
                .fitconnect_submissions
                .get_or_create(&AnswerLabel { answer });
        }
        registry.register(
            "applications",
            "Applications stored, by outcome",
            m.applications.clone(),
        );
        registry.register(
            "dead_letters",
            "Dead letters published, by reason",
            m.dead_letters.clone(),
        );
        registry.register(
            "duplicates",
            "Redeliveries acked as already stored",
            m.duplicates.clone(),
        );
        registry.register("batches", "Batches committed and acked", m.batches.clone());
        registry.register(
            "deliveries_acked",
            "Deliveries acked, every outcome and duplicates included",
            m.deliveries_acked.clone(),
        );
        registry.register(
            "batch_seconds",
            "Seconds from pipeline start to ack, per batch",
            m.batch_seconds.clone(),
        );
        registry.register(
            "store_retries",
            "Failed attempts to store a batch (retried)",
            m.store_retries.clone(),
        );
        registry.register(
            "broker_reconnects",
            "Broker sessions ended by an error (reconnected)",
            m.broker_reconnects.clone(),
        );
        registry.register(
            "records_written",
            "Record files written to the outbox",
            m.records_written.clone(),
        );
        registry.register(
            "outbox_healthy",
            "1 while the outbox is writable, 0 while intake waits for it",
            m.outbox_healthy.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while a broker session consumes, 0 while reconnecting",
            m.broker_connected.clone(),
        );
        registry.register(
            "store_healthy",
            "1 while the database stores batches, 0 while it fails (retried)",
            m.store_healthy.clone(),
        );
        registry.register(
            "careful_mode",
            "1 while deliveries are taken one at a time after a broken broker session",
            m.careful_mode.clone(),
        );
        registry.register(
            "dlq_messages",
            "Messages in the dead-letter queue (probed every 30 s)",
            m.dlq_messages.clone(),
        );
        registry.register(
            "dlq_without_log_row",
            "Messages in the dead-letter queue beyond the open dead-letter log rows (dead-lettered by the broker, e.g. delivery_limit)",
            m.dlq_without_log_row.clone(),
        );
        registry.register(
            "fitconnect_submissions",
            "FIT-Connect submissions answered, by answer (accept, reject)",
            m.fitconnect_submissions.clone(),
        );
        registry.register(
            "fitconnect_rounds_failed",
            "FIT-Connect rounds that failed (tried again at the next interval)",
            m.fitconnect_rounds_failed.clone(),
        );
        registry.register(
            "fitconnect_answers_refused",
            "FIT-Connect answers the Zustelldienst refused (422); not sent again, see the log",
            m.fitconnect_answers_refused.clone(),
        );
        registry.register(
            "fitconnect_callbacks_refused",
            "FIT-Connect callbacks refused, by reason (signature, stale, malformed)",
            m.fitconnect_callbacks_refused.clone(),
        );
        registry.register(
            "fitconnect_oldest_unanswered_age_seconds",
            "Age of the oldest FIT-Connect submission waiting at the Zustelldienst for its answer, in seconds, since this daemon first listed it (0: none)",
            m.fitconnect_oldest_unanswered_age.clone(),
        );
        registry.register(
            "mapping_reloads",
            "Mapping set reloads (SIGHUP), by result",
            m.mapping_reloads.clone(),
        );
        registry.register(
            "mapping_set_loaded_timestamp_seconds",
            "Unix time when the mapping set in force was loaded",
            m.mapping_set_loaded.clone(),
        );
        registry.register(
            "mapping_set_info",
            "1 for the content hash (SHA-256 of the mapping files) of the set in force",
            m.mapping_set_info.clone(),
        );
        // `findings` with the API's: one family, `source` tells them apart.
        m.api.register(&mut registry, true);
        registry.register(
            "stage_seconds",
            "Seconds per batch in each stage (pipeline, store, ack)",
            m.stage_seconds.clone(),
        );
        registry.register(
            "open_cases",
            "Cases open for work (open or deferred), from the database",
            m.open_cases.clone(),
        );
        registry.register(
            "oldest_open_case_age_seconds",
            "Age of the oldest case open for work, in seconds (0: none)",
            m.oldest_open_case_age.clone(),
        );
        registry.register(
            "applications_by_mapping",
            "Applications stored, by mapping and outcome",
            m.applications_by_mapping.clone(),
        );
        registry.register(
            "retention_deleted",
            "Rows whose personal data retention removed, by kind",
            m.retention_deleted.clone(),
        );
        registry.register(
            "documents_owed",
            "Documents owed (Mitwirkung) by state and kind, from the database",
            m.documents_owed.clone(),
        );
        registry.register(
            "documents_overdue",
            "Documents requested whose deadline has passed, from the database",
            m.documents_overdue.clone(),
        );
        registry.register(
            "oldest_overdue_request_age_seconds",
            "Age of the oldest overdue document request, in seconds (0: none)",
            m.oldest_overdue_request_age.clone(),
        );
        registry.register(
            "nachreichungen",
            "Nachreichungen matched to a document owed",
            m.nachreichungen.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus/OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Shows the mapping set now in force: its content hash and when it was
    /// loaded (Unix seconds).
    pub fn set_mapping_set(&self, hash: &str, loaded_at: f64) {
        let mut in_force = self.mapping_hash.lock().unwrap_or_else(|p| p.into_inner());
        if !in_force.is_empty() && *in_force != hash {
            self.mapping_set_info.remove(&HashLabel {
                hash: in_force.clone(),
            });
        }
        self.mapping_set_info
            .get_or_create(&HashLabel {
                hash: hash.to_string(),
            })
            .set(1);
        self.mapping_set_loaded.set(loaded_at);
        *in_force = hash.to_string();
    }

    /// The content hash of the mapping set in force (empty before the first).
    pub fn mapping_set_hash(&self) -> String {
        self.mapping_hash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts a reload by its result.
    pub fn mapping_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.mapping_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Times one batch stage.
    pub fn observe_stage(&self, stage: &'static str, d: std::time::Duration) {
        self.stage_seconds
            .get_or_create(&StageLabel { stage })
            .observe(d.as_secs_f64());
    }

    /// Counts what a purge removed.
    pub fn count_purge(&self, report: &allegro_store::PurgeReport) {
        for kind in allegro_store::retention::Kind::ALL {
            self.retention_deleted
                .get_or_create(&KindLabel {
                    kind: kind.as_str(),
                })
                .inc_by(report.get(kind));
        }
    }

    /// The dependencies that do not work right now (empty: healthy).
    pub fn unhealthy(&self) -> Vec<&'static str> {
        let mut down = Vec::new();
        if self.broker_connected.get() == 0 {
            down.push("broker");
        }
        if self.store_healthy.get() == 0 {
            down.push("store");
        }
        if self.outbox_healthy.get() == 0 {
            down.push("outbox");
        }
        down
    }
}

impl allegro_web::ops::Probe for Metrics {
    fn metrics_text(&self) -> String {
        self.render()
    }

    fn unavailable(&self) -> Vec<&'static str> {
        self.unhealthy()
    }
}

/// Serves the operations endpoints (`allegro_web::ops`) on `listen` for as
/// long as the runtime runs.
pub async fn serve(listen: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let listener = allegro_web::bind(&listen.to_string(), "metrics.listen").await?;
    let router = allegro_web::ops::router(metrics);
    tokio::spawn(async move {
        if let Err(e) = allegro_web::serve(listener, router, std::future::pending()).await {
            warn!(error = %e, "operations endpoints stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Metrics {
        let m = Metrics::default();
        m.broker_connected.set(1);
        m.store_healthy.set(1);
        m.outbox_healthy.set(1);
        m
    }

    #[test]
    fn unhealthy_names_what_is_down() {
        let m = healthy();
        assert!(m.unhealthy().is_empty());
        m.store_healthy.set(0);
        m.outbox_healthy.set(0);
        assert_eq!(m.unhealthy(), ["store", "outbox"]);
        m.broker_connected.set(0);
        assert_eq!(m.unhealthy(), ["broker", "store", "outbox"]);
    }

    #[test]
    fn render_is_the_text_exposition() {
        let m = healthy();
        m.deliveries_acked.inc_by(3);
        let body = m.render();
        assert!(
            body.contains("allegro_bridge_deliveries_acked_total 3"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[test]
    fn stages_and_retention_kinds_are_there_from_the_start() {
        let m = healthy();
        let body = m.render();
        for stage in STAGES {
            assert!(
                body.contains(&format!(
                    "allegro_bridge_stage_seconds_count{{stage=\"{stage}\"}} 0"
                )),
                "{body}"
            );
        }
        m.count_purge(&allegro_store::PurgeReport {
            application_payloads: 3,
            dead_letters: 1,
            ..Default::default()
        });
        let body = m.render();
        for (kind, n) in [
            ("application_payloads", 3),
            ("closed_cases", 0),
            ("dead_letters", 1),
            ("audit_values", 0),
            ("sessions", 0),
            ("login_failures", 0),
        ] {
            assert!(
                body.contains(&format!(
                    "allegro_bridge_retention_deleted_total{{kind=\"{kind}\"}} {n}"
                )),
                "{body}"
            );
        }
        assert!(body.contains("allegro_bridge_open_cases 0"), "{body}");
        assert!(
            body.contains("allegro_bridge_oldest_open_case_age_seconds 0"),
            "{body}"
        );
    }

    #[test]
    fn the_mapping_set_in_force_is_one_series() {
        let m = healthy();
        let body = m.render();
        assert!(
            body.contains("allegro_bridge_mapping_reloads_total{result=\"ok\"} 0"),
            "{body}"
        );
        assert!(
            body.contains("allegro_bridge_mapping_reloads_total{result=\"failed\"} 0"),
            "{body}"
        );
        m.set_mapping_set("aaaa", 1_700_000_000.5);
        m.mapping_reloaded(true);
        m.set_mapping_set("bbbb", 1_700_000_100.0);
        let body = m.render();
        assert!(
            body.contains("allegro_bridge_mapping_set_info{hash=\"bbbb\"} 1"),
            "{body}"
        );
        assert!(!body.contains("aaaa"), "{body}");
        assert!(
            body.contains("allegro_bridge_mapping_set_loaded_timestamp_seconds 1700000100"),
            "{body}"
        );
        assert!(
            body.contains("allegro_bridge_mapping_reloads_total{result=\"ok\"} 1"),
            "{body}"
        );
        assert_eq!(m.mapping_set_hash(), "bbbb");
    }
}
