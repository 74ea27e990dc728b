//! Findings: what the checks say about one application (contract §3).
//!
//! A finding names the input field by JSON Pointer, carries a severity, the id
//! of the rule (defined in `mappings/`) and one German sentence for the
//! caseworker. Missing-document infos also name the document type owed.

use serde::{Deserialize, Serialize};

/// How much a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks the import; the application becomes a case (Klärfall).
    Error,
    /// Imported, flagged in the record.
    Warning,
    /// Imported; e.g. a document the applicant still owes.
    Info,
}

impl Severity {
    /// The lower-case name used in JSON, XML and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }
}

/// One problem or note about one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// RFC 6901 pointer of the input field (or where it would be).
    pub pointer: String,
    pub severity: Severity,
    /// Stable rule id from the mapping files.
    pub rule: String,
    /// One German sentence for the caseworker.
    pub message: String,
    /// Document type owed (only on missing-document infos).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nachweis: Option<String>,
}

impl Finding {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
