//! Releasing cases: the pipeline in force over a case's corrected
//! application; only when no error is left is the record built (with the
//! corrections in its provenance), stored with the case's end in one
//! transaction ([`Store::end_case`]) and its file written through the outbox
//! ([`crate::outbox::dispatch`], as the daemon's dispatcher does), or, when
//! records also go to the AMQP sink exchange, left pending for the daemon's
//! dispatcher, which publishes it and writes the file ([`RecordDelivery`]).
//!
//! The workbench's "Freigeben", its re-check page and
//! `allegro-bridge recheck` all go through [`release`]; the re-check
//! ([`recheck`]) runs it over every case open for work as the actor
//! `system`, or only counts (dry run).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use allegro_core::finding::Finding;
use allegro_core::pipeline::{Pipeline, Processed};

use crate::audit::{Action, NewAudit};
use crate::cases::{CaseDetail, CaseEnd, CaseWriteError};
use crate::{record_file_name, PendingRecord, Store};

/// The actor of automatic releases.
pub const SYSTEM: &str = "system";

/// Where the record of a released case goes once it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordDelivery {
    /// Written to this outbox folder at once; on a failure the row stays
    /// pending and the daemon's dispatcher writes it later.
    Outbox(PathBuf),
    /// Left pending for the daemon's dispatcher (its sweep, every 30 s):
    /// records also go to the AMQP sink exchange (`sink.exchange`), which
    /// only the daemon publishes to, before it writes the file.
    Dispatcher,
}

impl RecordDelivery {
    /// The delivery for the settings: the dispatcher when `sink_exchange`
    /// is set, else the outbox folder.
    pub fn new(outbox_dir: &Path, sink_exchange: &str) -> RecordDelivery {
        if sink_exchange.is_empty() {
            RecordDelivery::Outbox(outbox_dir.to_path_buf())
        } else {
            RecordDelivery::Dispatcher
        }
    }
}

/// What became of a released case's record file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFile {
    /// Written to the outbox.
    Written,
    /// Not written: the outbox failed; the daemon's dispatcher writes it.
    Pending,
    /// Left to the daemon's dispatcher on purpose ([`RecordDelivery::Dispatcher`]).
    HandedOver,
}

/// What a release attempt came to.
#[derive(Debug, Clone)]
pub enum ReleaseOutcome {
    /// Released; the record is stored and its file is as `file` says.
    Released { file: RecordFile },
    /// Errors remain; nothing was changed. All findings of the check.
    Rejected(Vec<Finding>),
    /// The application is not readable under the mappings in force (e.g. no
    /// mapping for its form version); nothing was changed. A reason code.
    Invalid(String),
}

/// The check of one case under the pipeline in force (pure; no writes).
pub fn check(pipeline: &Pipeline, case: &CaseDetail) -> Processed {
    pipeline.process_with(
        case.current_body(),
        case.message_id.as_deref(),
        &case.corrections,
    )
}

/// Releases `case` (as loaded at its version) if the pipeline in force
/// accepts its corrected application; `action` is `release` for a
/// caseworker, `recheck_release` for the system.
pub async fn release(
    store: &Store,
    pipeline: &Pipeline,
    delivery: &RecordDelivery,
    case: &CaseDetail,
    actor: &str,
    action: Action,
    at: DateTime<Utc>,
) -> Result<ReleaseOutcome, CaseWriteError> {
    let processed = check(pipeline, case);
    release_checked(store, delivery, case, processed, actor, action, at).await
}

/// [`release`] with the check already done.
async fn release_checked(
    store: &Store,
    delivery: &RecordDelivery,
    case: &CaseDetail,
    processed: Processed,
    actor: &str,
    action: Action,
    at: DateTime<Utc>,
) -> Result<ReleaseOutcome, CaseWriteError> {
    let (application, record) = match processed {
        Processed::Accepted {
            application,
            record,
        } => (application, record),
        Processed::Rejected(a) => return Ok(ReleaseOutcome::Rejected(a.findings)),
        Processed::Invalid(i) => return Ok(ReleaseOutcome::Invalid(i.reason.to_string())),
    };
    let findings_json =
        serde_json::to_string(&application.findings).unwrap_or_else(|_| "[]".into());
    let detail = format!("{} Korrekturen", case.corrections.len());
    let mut audit = NewAudit::new(actor, action, Some(case.antrag_id));
    audit.detail = Some(&detail);
    store
        .end_case(
            case.antrag_id,
            case.version,
            &CaseEnd::Released {
                record: &record,
                findings_json: &findings_json,
            },
            &audit,
            at,
        )
        .await?;
    let RecordDelivery::Outbox(outbox_dir) = delivery else {
        return Ok(ReleaseOutcome::Released {
            file: RecordFile::HandedOver,
        });
    };
    let pending = PendingRecord {
        antrag_id: case.antrag_id,
        file_name: record_file_name(case.antrag_id),
        xml: record,
    };
    let mut files = vec![pending];
    files.extend(store.pending_follow_ups(case.antrag_id).await?);
    let file = match crate::outbox::dispatch(store, outbox_dir, files, 1).await {
        Ok(()) => RecordFile::Written,
        Err(e) => {
            tracing::warn!(antrag_id = %case.antrag_id, error = %e,
                "released case's record file not written yet; it stays pending");
            RecordFile::Pending
        }
    };
    Ok(ReleaseOutcome::Released { file })
}

/// How the errors of one rule change under the mappings in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleChange {
    /// Cases that have this error now and would no longer.
    pub resolved: u64,
    /// Cases that would get this error and have not now.
    pub added: u64,
}

/// What a re-check found (and, unless a dry run, did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecheckReport {
    pub dry_run: bool,
    /// Cases open for work looked at.
    pub cases: u64,
    /// Would pass now (dry run) / passed.
    pub passing: u64,
    /// Released (0 in a dry run).
    pub released: u64,
    /// Passing, but changed by a caseworker meanwhile: left alone.
    pub conflicts: u64,
    pub still_rejected: u64,
    /// Not readable under the mappings in force.
    pub invalid: u64,
    /// Per rule id, how many cases would change.
    pub per_rule: BTreeMap<String, RuleChange>,
}

fn error_rules(findings: &[Finding]) -> BTreeSet<String> {
    findings
        .iter()
        .filter(|f| f.is_error())
        .map(|f| f.rule.clone())
        .collect()
}

/// Re-runs the pipeline in force over every case open for work. With a
/// `delivery` the passing ones are released as [`SYSTEM`]
/// (`recheck_release`); without, nothing is changed (dry run).
pub async fn recheck(
    store: &Store,
    pipeline: Arc<Pipeline>,
    delivery: Option<&RecordDelivery>,
    at: DateTime<Utc>,
) -> anyhow::Result<RecheckReport> {
    let mut report = RecheckReport {
        dry_run: delivery.is_none(),
        ..Default::default()
    };
    let mut after: Option<Uuid> = None;
    loop {
        let page = store.cases_open_for_work(after, 200).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.antrag_id);
        // The pipeline is CPU work: off the async threads.
        let p = pipeline.clone();
        let checked: Vec<(CaseDetail, Processed)> = tokio::task::spawn_blocking(move || {
            page.into_iter()
                .map(|c| {
                    let out = check(&p, &c);
                    (c, out)
                })
                .collect()
        })
        .await?;
        for (case, processed) in checked {
            report.cases += 1;
            count_rules(&mut report, &case.findings, processed.findings());
            match &processed {
                Processed::Accepted { .. } => report.passing += 1,
                Processed::Rejected(_) => {
                    report.still_rejected += 1;
                    continue;
                }
                Processed::Invalid(_) => {
                    report.invalid += 1;
                    continue;
                }
            }
            let Some(delivery) = delivery else { continue };
            match release_checked(
                store,
                delivery,
                &case,
                processed,
                SYSTEM,
                Action::RecheckRelease,
                at,
            )
            .await
            {
                Ok(ReleaseOutcome::Released { .. }) => report.released += 1,
                Ok(_) => {}
                Err(CaseWriteError::Conflict) => report.conflicts += 1,
                Err(CaseWriteError::Store(e)) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}

fn count_rules(report: &mut RecheckReport, before: &[Finding], now: &[Finding]) {
    let (before, now) = (error_rules(before), error_rules(now));
    for r in before.difference(&now) {
        report.per_rule.entry(r.clone()).or_default().resolved += 1;
    }
    for r in now.difference(&before) {
        report.per_rule.entry(r.clone()).or_default().added += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allegro_core::finding::Severity;

    fn f(rule: &str, severity: Severity) -> Finding {
        Finding {
            pointer: "/x".into(),
            severity,
            rule: rule.into(),
            message: "m".into(),
            nachweis: None,
        }
    }

    #[test]
    fn rule_changes_count_resolved_and_added_errors_only() {
        let mut r = RecheckReport::default();
        let before = [
            f("A", Severity::Error),
            f("B", Severity::Error),
            f("W", Severity::Warning),
        ];
        let now = [f("B", Severity::Error), f("C", Severity::Error)];
        count_rules(&mut r, &before, &now);
        count_rules(&mut r, &before, &[]);
        assert_eq!(
            r.per_rule["A"],
            RuleChange {
                resolved: 2,
                added: 0
            }
        );
        assert_eq!(
            r.per_rule["B"],
            RuleChange {
                resolved: 1,
                added: 0
            }
        );
        assert_eq!(
            r.per_rule["C"],
            RuleChange {
                resolved: 0,
                added: 1
            }
        );
        assert!(!r.per_rule.contains_key("W"));
    }
}
