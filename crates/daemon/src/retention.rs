//! Retention as the daemon and `allegro-bridge purge` run it: the store's
//! purge (`allegro_store::retention`) with the settings' periods, the
//! mapping set's schemas deciding which finding pointers stay, and one log
//! line of counts (nothing personal). The daemon purges once the database
//! is ready and then every `retention.interval_minutes`, and reads the
//! open-case gauges every `metrics.store_refresh_secs`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::reload::Mappings;
use allegro_core::pipeline::Pipeline;
use allegro_store::{PurgeReport, PurgeRequest, Store};

/// Purges what is due at `now` (or counts it, `dry_run`) and logs the counts.
pub async fn purge(
    store: &Store,
    settings: &Settings,
    pipeline: &Pipeline,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PurgeReport, allegro_store::StoreError> {
    let keep_pointer =
        |mapping: &str, pointer: &str| pipeline.mappings().schema_defines(mapping, pointer);
    let req = PurgeRequest {
        config: &settings.retention,
        now,
        dry_run,
        keep_pointer: &keep_pointer,
        session_max_age: session_max_age(settings),
    };
    let report = store.purge(&req).await?;
    let r = &report;
    if r.total() > 0 || dry_run {
        info!(
            dry_run,
            application_payloads = r.application_payloads,
            closed_cases = r.closed_cases,
            dead_letters = r.dead_letters,
            audit_values = r.audit_values,
            sessions = r.sessions,
            login_failures = r.login_failures,
            "retention purge"
        );
    } else {
        debug!("retention purge: nothing due");
    }
    Ok(report)
}

/// The longest a workbench session may live (`web.session_absolute_hours`);
/// older session rows are purged.
fn session_max_age(settings: &Settings) -> Option<chrono::Duration> {
    Some(chrono::Duration::hours(i64::from(
        settings.web.session_absolute_hours,
    )))
}

/// The daemon's purge: once now, then every `retention.interval_minutes`
/// (0 = never). A failure is logged and tried again next round.
pub fn spawn_purger(
    settings: &Settings,
    store: Store,
    mappings: Arc<Mappings>,
    metrics: Arc<Metrics>,
) {
    let minutes = settings.retention.interval_minutes;
    if minutes == 0 {
        info!("retention: the daemon does not purge (retention.interval_minutes = 0)");
        return;
    }
    let settings = settings.clone();
    let every = Duration::from_secs(u64::from(minutes) * 60);
    tokio::spawn(async move {
        loop {
            let pipeline = mappings.snapshot();
            match purge(&store, &settings, &pipeline, Utc::now(), false).await {
                Ok(report) => metrics.count_purge(&report),
                Err(e) => warn!(error = %e, "retention purge failed; trying again next round"),
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Reads the open-case gauges from the database every
/// `metrics.store_refresh_secs`; a failed read leaves the last values.
pub fn spawn_case_gauges(settings: &Settings, store: Store, metrics: Arc<Metrics>) {
    let every = Duration::from_secs(settings.metrics.store_refresh_secs.max(1));
    tokio::spawn(async move {
        loop {
            match store.open_case_stats().await {
                Ok((open, oldest)) => {
                    metrics.open_cases.set(open);
                    let age = oldest.map_or(0, |t| (Utc::now() - t).num_seconds().max(0));
                    metrics.oldest_open_case_age.set(age);
                }
                Err(e) => debug!(error = %e, "open-case gauges not read"),
            }
            match store.owed_stats(Utc::now().date_naive()).await {
                Ok(stats) => set_document_gauges(&metrics, &stats),
                Err(e) => debug!(error = %e, "document gauges not read"),
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Sets the Mitwirkung gauges from one read; a state and kind no longer
/// counted drops to 0.
fn set_document_gauges(metrics: &Metrics, stats: &allegro_store::mitwirkung::OwedStats) {
    use crate::metrics::DocumentLabel;
    use allegro_store::mitwirkung::ListState;
    metrics.documents_owed.clear();
    let mut overdue = 0;
    for (state, kind, n) in &stats.by_state_kind {
        let label = DocumentLabel {
            state: state.as_str(),
            kind: kind.clone(),
        };
        metrics.documents_owed.get_or_create(&label).set(*n);
        if *state == ListState::Ueberfaellig {
            overdue += n;
        }
    }
    metrics.documents_overdue.set(overdue);
    let age = stats
        .oldest_overdue_request
        .map_or(0, |t| (Utc::now() - t).num_seconds().max(0));
    metrics.oldest_overdue_request_age.set(age);
}
