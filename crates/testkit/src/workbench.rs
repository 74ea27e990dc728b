//! Helpers for the workbench tests: an application stored as a case the
//! way the daemon stores a rejected one.

use allegro_core::finding::{Finding, Severity};
use allegro_core::pipeline::Pipeline;
use allegro_store::{cases, NewApplication, Store, Verdict};
use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

/// Stores `doc` (whose antragId is `id`) as the daemon stores a rejected
/// application of Dienststelle `dst`, with the pipeline's findings. A body
/// that passes gets one error as an older, stricter mapping set would have
/// found, so it is a case too.
pub async fn store_rejected(
    store: &Store,
    pipeline: &Pipeline,
    id: Uuid,
    doc: &Value,
    dst: &str,
    message_id: Option<String>,
) {
    let body = serde_json::to_vec(doc).unwrap();
    let mut findings = pipeline.process(&body, None).findings().to_vec();
    if !findings.iter().any(|f| f.is_error()) {
        findings.push(Finding {
            pointer: "/unterkunft/grundmiete".into(),
            severity: Severity::Error,
            rule: "ALTE-REGEL".into(),
            message: "Alte Regel.".into(),
            nachweis: None,
        });
    }
    let app = NewApplication {
        antrag_id: id,
        body_sha256: allegro_daemon::deadletter::sha256_hex(&body),
        body,
        verdict: Verdict::Rejected,
        mapping: "bg-ha-1.0".into(),
        findings_json: serde_json::to_string(&findings).unwrap(),
        dienststellennummer: Some(dst.into()),
        message_id,
        created_at: Utc::now(),
        applicant: cases::applicant_of(doc),
        error_rules: cases::error_rules_of(&findings),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_applications(&[app]).await.unwrap();
    tx.commit().await.unwrap();
}
