//! The one pipeline every driver calls: intake → mapping → rules → record.
//!
//! `Pipeline::process` takes the raw bytes of one delivery (and the AMQP
//! `message_id`, if any) and returns the outcome with all findings and, for an
//! accepted application, the XML import record. It does no I/O and never reads
//! the clock; the daemon, `process`, `dlq replay` and the caseworker's re-check
//! all go through it.

use serde::Serialize;
use uuid::Uuid;

use crate::finding::Finding;

/// The three outcomes of contract §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Accepted,
    Rejected,
    Invalid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Invalid => "invalid",
        }
    }
}

/// Why a delivery is `invalid`: a machine code and a detail free of personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalid {
    /// Stable machine reason code, e.g. `not_utf8`, `too_large`, `no_mapping`.
    pub reason: &'static str,
    /// Human-readable detail in English for IT; never contains field values
    /// other than the antragId, form id and version.
    pub detail: String,
}

/// The result of processing one delivery.
#[derive(Debug, Clone)]
pub struct Processed {
    pub antrag_id: Option<Uuid>,
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    /// The XML import record, only for `Accepted`.
    pub record: Option<Vec<u8>>,
    /// Why, only for `Invalid`.
    pub invalid: Option<Invalid>,
    /// The mapping used, e.g. `bg-ha-1.0`, when one was selected.
    pub mapping: Option<String>,
}

/// Where the pipeline finds its mapping files and schemas, and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Folder of mapping files (`*.toml`, searched recursively).
    pub mappings_dir: std::path::PathBuf,
    /// Folder of JSON Schemas and XSDs named by the mappings.
    pub schemas_dir: std::path::PathBuf,
    /// Bodies larger than this are `invalid` (contract default: 1 MiB).
    pub max_body_bytes: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            mappings_dir: "mappings".into(),
            schemas_dir: "schemas".into(),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// The compiled mappings and schemas; cheap to share between threads.
pub struct Pipeline {
    #[allow(dead_code)]
    config: PipelineConfig,
}

impl Pipeline {
    /// Loads and compiles every mapping; refuses the whole set on any error.
    pub fn load(config: &PipelineConfig) -> anyhow::Result<Pipeline> {
        Ok(Pipeline {
            config: config.clone(),
        })
    }

    /// Runs one delivery through the whole pipeline.
    pub fn process(&self, _body: &[u8], _message_id: Option<&str>) -> Processed {
        Processed {
            antrag_id: None,
            outcome: Outcome::Invalid,
            findings: vec![],
            record: None,
            invalid: Some(Invalid {
                reason: "internal",
                detail: "pipeline not implemented yet".into(),
            }),
            mapping: None,
        }
    }
}
