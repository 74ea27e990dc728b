//! Prometheus metrics and the health check of the daemon, served on an
//! optional listener (`metrics.listen`, e.g. `127.0.0.1:9464`; off by
//! default): `GET /metrics` gives the text exposition, `GET /health` answers
//! 200 while the broker session, the database and the outbox all work and 503
//! (naming which one does not) otherwise.
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("allegro_bridge");
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

    /// The HTTP status, content type and body for a request path.
    pub fn respond(&self, path: &str) -> (&'static str, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        match path {
            "/metrics" => (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.render(),
            ),
            "/health" => {
                let down = self.unhealthy();
                if down.is_empty() {
                    ("200 OK", TEXT, "ok\n".into())
                } else {
                    (
                        "503 Service Unavailable",
                        TEXT,
                        format!("down: {}\n", down.join(", ")),
                    )
                }
            }
            _ => ("404 Not Found", TEXT, "try /metrics or /health\n".into()),
        }
    }
}

/// Serves `GET /metrics` and `GET /health` on `listen` from a plain thread.
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
                let n = s.read(&mut buf).unwrap_or(0);
                // "GET /path HTTP/1.1": the second word, without a query.
                let path = std::str::from_utf8(&buf[..n])
                    .ok()
                    .and_then(|r| r.split_whitespace().nth(1))
                    .map(|p| p.split('?').next().unwrap_or(p))
                    .unwrap_or("/");
                let (status, ctype, body) = metrics.respond(path);
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = s.write_all(resp.as_bytes()) {
                    warn!(error = %e, "metrics response failed");
                }
            }
        })?;
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
    fn health_names_what_is_down() {
        let m = healthy();
        assert_eq!(
            m.respond("/health"),
            ("200 OK", "text/plain; charset=utf-8", "ok\n".into())
        );
        m.store_healthy.set(0);
        m.outbox_healthy.set(0);
        let (status, _, body) = m.respond("/health");
        assert_eq!(status, "503 Service Unavailable");
        assert_eq!(body, "down: store, outbox\n");
        m.broker_connected.set(0);
        assert_eq!(m.respond("/health").2, "down: broker, store, outbox\n");
    }

    #[test]
    fn metrics_and_unknown_paths() {
        let m = healthy();
        m.deliveries_acked.inc_by(3);
        let (status, _, body) = m.respond("/metrics");
        assert_eq!(status, "200 OK");
        assert!(
            body.contains("allegro_bridge_deliveries_acked_total 3"),
            "{body}"
        );
        assert_eq!(m.respond("/").0, "404 Not Found");
    }
}
