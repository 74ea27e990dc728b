//! The outbox dispatcher: writes record files from the `records` table.
//!
//! A record row commits together with its application, and the delivery is
//! acked after that commit (transactional outbox). This task then writes each
//! pending record to `<outbox>/<antragId>.xml` atomically (fsynced temp
//! files, renames, one fsync of the directory per batch) and marks them
//! written. Writing is idempotent: the same antragId always yields the same
//! file with the same content.
//!
//! Where the records come from: the consumer hands each committed batch's
//! records over in memory ([`OutboxState::hand_over`]), so the dispatcher does
//! not read back from the database what this process has just written. The
//! hand-over is bounded ([`HANDOVER_MAX_BYTES`]): while the disk is slower than
//! intake, what does not fit stays pending in the table only. The table is
//! the source of truth; the dispatcher sweeps it for pending rows at start
//! (files missing after a crash), after a failed round, when the hand-over
//! overflowed, and every [`SWEEP_INTERVAL`] (rows another daemon left behind,
//! records of cases released in the workbench while records also go to the
//! AMQP sink). The interval's sweep comes before the hand-over, so a steady
//! intake cannot put it off; it leaves the rows the hand-over holds to it.
//! A sweep may still pick up a record that is also in the hand-over (handed
//! over after the sweep looked); it is then written twice with the same
//! content, which is harmless.
//!
//! While the directory is not writable (or the disk is full, or the database
//! is away) it retries with backoff and reports `healthy = false`, which
//! pauses consumption until it recovers.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::config::{DaemonConfig, SinkConfig};
use crate::retry::{backoff, Shutdown};
use allegro_store::{PendingRecord, Store};

/// Upper bound of record bytes waiting in the in-memory hand-over; beyond it
/// records wait in the database only, so memory stays flat under a backlog.
pub const HANDOVER_MAX_BYTES: usize = 16 << 20;

/// How often the table is swept for pending rows although nothing says so.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Shared state between the dispatcher and the consumer.
#[derive(Debug, Default)]
pub struct OutboxState {
    /// Wakes the dispatcher (after a commit).
    pub notify: Notify,
    /// False while writing fails; the consumer pauses meanwhile.
    pub healthy: AtomicBool,
    /// Files written since start.
    pub written: AtomicU64,
    /// Committed records handed over in memory, with their total bytes.
    handover: Mutex<(VecDeque<PendingRecord>, usize)>,
    /// Bumped whenever the table may hold pending rows that are not in the
    /// hand-over (overflow); the dispatcher sweeps until it has seen the
    /// latest value with nothing left behind.
    missed: AtomicU64,
}

impl OutboxState {
    /// Hands over records whose rows have just committed. What does not fit
    /// under [`HANDOVER_MAX_BYTES`] is left to a sweep of the table.
    pub fn hand_over(&self, records: impl IntoIterator<Item = PendingRecord>) {
        let mut overflow = false;
        {
            let mut guard = self.handover.lock().unwrap_or_else(|p| p.into_inner());
            let (queue, bytes) = &mut *guard;
            for r in records {
                if *bytes + r.xml.len() > HANDOVER_MAX_BYTES {
                    overflow = true;
                    continue;
                }
                *bytes += r.xml.len();
                queue.push_back(r);
            }
        }
        if overflow {
            self.missed.fetch_add(1, Ordering::SeqCst);
        }
        self.notify.notify_one();
    }

    /// `records` without those the hand-over holds.
    fn not_handed_over(&self, mut records: Vec<PendingRecord>) -> Vec<PendingRecord> {
        let guard = self.handover.lock().unwrap_or_else(|p| p.into_inner());
        let held: std::collections::HashSet<uuid::Uuid> =
            guard.0.iter().map(|r| r.antrag_id).collect();
        drop(guard);
        records.retain(|r| !held.contains(&r.antrag_id));
        records
    }

    /// Takes up to `limit` handed-over records, oldest first.
    fn take(&self, limit: usize) -> Vec<PendingRecord> {
        let mut guard = self.handover.lock().unwrap_or_else(|p| p.into_inner());
        let (queue, bytes) = &mut *guard;
        let n = limit.min(queue.len());
        let taken: Vec<PendingRecord> = queue.drain(..n).collect();
        *bytes -= taken.iter().map(|r| r.xml.len()).sum::<usize>();
        taken
    }
}

/// Everything the dispatcher needs.
pub struct Dispatcher {
    pub store: Store,
    pub dir: PathBuf,
    pub cfg: DaemonConfig,
    pub sink: SinkConfig,
    /// The broker of the sink (`[broker]`, its TLS settings too).
    pub broker: crate::config::BrokerConfig,
    pub state: Arc<OutboxState>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Dispatcher {
    /// Runs until `stop` is set and nothing is pending (or writing keeps
    /// failing after `stop`, then it returns at once: the rows stay pending
    /// and are written at the next start).
    pub async fn run(self, mut stop: Shutdown) {
        let mut delays = backoff(&self.cfg);
        let mut sink: Option<Sink> = None;
        // The value of `missed` the last complete sweep has seen; `None`:
        // sweep now (at start, and after a failed round).
        let mut swept: Option<u64> = None;
        let mut last_sweep = Instant::now();
        remove_stale_temp_files(&self.dir);
        loop {
            let interval_due = last_sweep.elapsed() >= SWEEP_INTERVAL;
            if interval_due {
                swept = None;
            }
            match self.round(&mut sink, &mut swept, interval_due).await {
                Ok((n, from_table)) => {
                    if from_table {
                        last_sweep = Instant::now();
                    }
                    self.metrics.outbox_healthy.set(1);
                    if !self.state.healthy.swap(true, Ordering::SeqCst) {
                        info!("outbox writable again");
                    }
                    delays = backoff(&self.cfg);
                    if n > 0 {
                        continue;
                    }
                }
                Err(e) => {
                    self.metrics.outbox_healthy.set(0);
                    if self.state.healthy.swap(false, Ordering::SeqCst) {
                        warn!(error = %e, "outbox dispatch failed; pausing intake and retrying");
                    } else {
                        debug!(error = %e, "outbox dispatch still failing");
                    }
                    // What was taken from the hand-over is still pending in
                    // the table: sweep for it.
                    swept = None;
                    sink = None;
                    if stop.is_set() {
                        return;
                    }
                    let d = delays.next().unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(d).await;
                    continue;
                }
            }
            if stop.is_set() {
                return;
            }
            tokio::select! {
                _ = self.state.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait() => {}
            }
        }
    }

    /// Writes one batch of pending records: from the hand-over, or else from
    /// the table when a sweep is due (the interval's sweep first). Returns
    /// how many, and whether the table was read.
    async fn round(
        &self,
        sink: &mut Option<Sink>,
        swept: &mut Option<u64>,
        interval_due: bool,
    ) -> anyhow::Result<(usize, bool)> {
        let limit = self.cfg.dispatch_batch;
        let mut pending = Vec::new();
        let mut from_table = false;
        if interval_due {
            // The table first, once per interval: rows from elsewhere (another
            // daemon, a case released in the workbench) must not wait behind
            // a hand-over that a steady intake never lets run empty. Rows the
            // hand-over holds are left to it.
            pending = self
                .state
                .not_handed_over(self.store.pending_records(limit).await?);
            from_table = true;
        }
        if pending.is_empty() {
            pending = self.state.take(limit);
            from_table = false;
        }
        if pending.is_empty() {
            let missed = self.state.missed.load(Ordering::SeqCst);
            if *swept == Some(missed) {
                return Ok((0, interval_due));
            }
            pending = self.store.pending_records(limit).await?;
            from_table = true;
            if pending.len() < limit {
                // Everything pending up to `missed` has been seen.
                *swept = Some(missed);
            }
            if pending.is_empty() {
                return Ok((0, true));
            }
        }
        let n = pending.len();
        if let Some(exchange) = &self.sink.exchange {
            if sink.is_none() {
                *sink = Some(Sink::connect(&self.broker).await?);
            }
            if let Some(s) = sink.as_ref() {
                s.publish(exchange, &self.sink.routing_key, &pending)
                    .await?;
            }
        }
        let ids: Vec<_> = pending.iter().map(|r| r.antrag_id).collect();
        allegro_store::outbox::dispatch(&self.store, &self.dir, pending, self.cfg.concurrency)
            .await?;
        self.state.written.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.records_written.inc_by(n as u64);
        for id in &ids {
            debug!(antrag_id = %id, "record file written");
        }
        debug!(records = n, from_table, "records written to outbox");
        Ok((n, from_table || interval_due))
    }
}

/// Removes temporary files a killed process left behind (`.tmp-*.part`, the
/// names `outbox::write_atomic` and `write_batch` use; readers ignore them,
/// but they would pile up). Another daemon's write in progress may lose its
/// temp file; its rename then fails and it simply retries.
fn remove_stale_temp_files(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".tmp-") && name.ends_with(".part") {
            if let Err(err) = std::fs::remove_file(e.path()) {
                warn!(error = %err, "cannot remove stale temp file in outbox");
            }
        }
    }
}

/// The optional second sink: an AMQP exchange receiving every record.
struct Sink {
    _conn: Connection,
    channel: lapin::Channel,
}

impl Sink {
    async fn connect(broker: &crate::config::BrokerConfig) -> anyhow::Result<Sink> {
        let conn = crate::broker::connect(broker, "allegro-bridge-sink").await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Sink {
            _conn: conn,
            channel,
        })
    }

    /// Publishes every record and waits for all confirms.
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        records: &[PendingRecord],
    ) -> anyhow::Result<()> {
        let mut confirms = Vec::with_capacity(records.len());
        for r in records {
            let props = BasicProperties::default()
                .with_message_id(r.antrag_id.to_string().into())
                .with_content_type("application/xml".into())
                .with_delivery_mode(2);
            confirms.push(
                self.channel
                    .basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &r.xml,
                        props,
                    )
                    .await?,
            );
        }
        for c in confirms {
            let conf = c.await?;
            if !conf.is_ack() {
                anyhow::bail!("sink exchange did not confirm a record");
            }
            if conf.take_message().is_some() {
                anyhow::bail!("sink exchange has no queue bound for the routing key");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allegro_store::{NewApplication, StoreConfig, Verdict};
    use uuid::Uuid;

    /// An accepted application committed by someone else: its record is
    /// pending in the table and not in this process's hand-over.
    async fn committed_elsewhere(store: &Store, n: u128) -> Uuid {
        let id = Uuid::from_u128(n);
        let mut tx = store.begin().await.unwrap();
        tx.insert_applications(&[NewApplication {
            antrag_id: id,
            body: b"{}".to_vec(),
            body_sha256: id.to_string(),
            verdict: Verdict::Accepted(b"<a/>".to_vec()),
            mapping: "bg-ha-1.0".into(),
            findings_json: "[]".into(),
            dienststellennummer: None,
            message_id: None,
            created_at: chrono::Utc::now(),
            applicant: None,
            error_rules: String::new(),
            owed: Vec::new(),
        }])
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// The interval's sweep comes before a hand-over that is never empty
    /// (a steady intake), and leaves the hand-over's own records to it.
    #[tokio::test]
    async fn the_interval_sweep_comes_before_a_busy_hand_over() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::connect(&StoreConfig {
            url,
            ..StoreConfig::default()
        })
        .await
        .unwrap();
        let elsewhere = committed_elsewhere(&store, 1).await;
        let state = Arc::new(OutboxState::default());
        let record = |id: Uuid| PendingRecord {
            antrag_id: id,
            file_name: allegro_store::record_file_name(id),
            xml: b"<b/>".to_vec(),
        };
        let busy = Uuid::from_u128(2);
        state.hand_over([record(busy)]);
        let out = dir.path().join("out");
        let d = Dispatcher {
            store,
            dir: out.clone(),
            cfg: DaemonConfig::default(),
            sink: SinkConfig::default(),
            broker: Default::default(),
            state: Arc::clone(&state),
            metrics: Arc::new(crate::metrics::Metrics::default()),
        };
        let file = |id: Uuid| out.join(allegro_store::record_file_name(id));
        // A complete sweep was seen, and the interval is due.
        let mut swept = Some(0);
        let (n, table_read) = d.round(&mut None, &mut swept, true).await.unwrap();
        assert_eq!((n, table_read), (1, true));
        assert!(file(elsewhere).exists());
        assert!(
            !file(busy).exists(),
            "the hand-over waits for the next round"
        );
        // A record both pending and handed over is left to the hand-over.
        let both = committed_elsewhere(&d.store, 3).await;
        state.hand_over([record(both)]);
        let (n, _) = d.round(&mut None, &mut swept, true).await.unwrap();
        assert_eq!(n, 2, "the hand-over's two records, the table's none");
        assert!(file(busy).exists() && file(both).exists());
        assert_eq!(std::fs::read(file(both)).unwrap(), b"<b/>");
    }
}
