//! The check API's metrics: requests by client and outcome, their duration,
//! and the findings by rule with `source="api"`, in the same family the
//! daemon counts its stored applications' findings in (`source="daemon"`),
//! so one query compares what the form catches with what still ends as a
//! case. Labels carry client names (from the clients file), outcome codes,
//! rule ids and severities: nothing from a request body.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
pub use prometheus_client::registry::Registry;

use allegro_core::finding::Finding;

/// A finding's source (`daemon` or `api`), rule id and severity.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabel {
    pub source: &'static str,
    pub rule: String,
    pub severity: &'static str,
}

impl FindingLabel {
    /// The label of `f` counted by `source`.
    pub fn of(source: &'static str, f: &Finding) -> FindingLabel {
        FindingLabel {
            source,
            rule: f.rule.clone(),
            severity: f.severity.as_str(),
        }
    }
}

/// The findings family shared by the daemon and the API.
pub type Findings = Family<FindingLabel, Counter>;

/// A request's client (`-` before authentication) and outcome: `annehmbar`,
/// `klaerfall`, `unlesbar`, or the refusal (`unauthorized`, `forbidden_origin`,
/// `rate_limited`, `too_large`, `unsupported_media_type`, `bad_request`,
/// `timeout`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    pub client: String,
    pub outcome: &'static str,
}

/// The API's counters.
#[derive(Clone)]
pub struct ApiMetrics {
    pub requests: Family<RequestLabel, Counter>,
    pub findings: Findings,
    /// Seconds per check, from the body read to the answer.
    pub check_seconds: Histogram,
}

impl ApiMetrics {
    /// Counting findings into `findings` (the daemon's family, or a new one).
    pub fn new(findings: Findings) -> ApiMetrics {
        ApiMetrics {
            requests: Family::default(),
            findings,
            check_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 14)),
        }
    }

    /// Registers the API's own metrics; with `with_findings` the findings
    /// family too (when no daemon registers it).
    pub fn register(&self, registry: &mut Registry, with_findings: bool) {
        registry.register(
            "api_requests",
            "Requests to the check API, by client and outcome",
            self.requests.clone(),
        );
        registry.register(
            "api_check_seconds",
            "Time to check one application in the API",
            self.check_seconds.clone(),
        );
        if with_findings {
            registry.register(
                "findings",
                "Findings by source (daemon: stored applications; api: checks before submission), rule id and severity",
                self.findings.clone(),
            );
        }
    }

    /// Counts one request.
    pub fn request(&self, client: &str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabel {
                client: client.to_string(),
                outcome,
            })
            .inc();
    }
}

/// The operations endpoints of `allegro-bridge api` on its own: its metrics,
/// and ready as long as it runs (the mappings are loaded before it listens).
pub struct StandaloneProbe(pub Registry);

impl crate::ops::Probe for StandaloneProbe {
    fn metrics_text(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.0).is_err() {
            text = "# cannot encode the metrics\n# EOF\n".into();
        }
        text
    }

    fn unavailable(&self) -> Vec<&'static str> {
        Vec::new()
    }
}
