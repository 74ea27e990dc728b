//! Prometheus metrics of the daemon, served as text on an optional listener
//! (`metrics.listen`, e.g. `127.0.0.1:9464`; off by default).
//!
//! Labels carry only outcome and reason codes, never anything from an
//! application: no personal data in metrics.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing::{info, warn};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("allegro_bridge");
        let m = Metrics {
            applications: Family::default(),
            dead_letters: Family::default(),
            duplicates: Counter::default(),
            batches: Counter::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            store_retries: Counter::default(),
            broker_reconnects: Counter::default(),
            records_written: Counter::default(),
            outbox_healthy: Gauge::default(),
            registry: Registry::default(),
        };
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
}

/// Serves `GET /metrics` (any path, really) on `listen` from a plain thread.
pub fn serve(listen: &str, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("metrics.listen {listen}: {e}"))?;
    info!(listen = %listen, "metrics listener");
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let body = metrics.render();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = s.write_all(resp.as_bytes()) {
                    warn!(error = %e, "metrics response failed");
                }
            }
        })?;
    Ok(())
}
