//! The outbox dispatcher: writes record files from the `records` table.
//!
//! A record row commits together with its application, and the delivery is
//! acked after that commit (transactional outbox). This task then writes each
//! pending record to `<outbox>/<antragId>.xml` atomically (temp file, fsync,
//! rename, fsync of the directory) and marks it written. It runs after every
//! committed batch, once a second, and at start (so files missing after a
//! crash are written then). Writing is idempotent: the same antragId always
//! yields the same file with the same content.
//!
//! While the directory is not writable (or the disk is full, or the database
//! is away) it retries with backoff and reports `healthy = false`, which
//! pauses consumption until it recovers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::config::{DaemonConfig, SinkConfig};
use crate::daemon::retry::{backoff, Shutdown};
use crate::store::{PendingRecord, Store};

/// Shared state between the dispatcher and the consumer.
#[derive(Debug, Default)]
pub struct OutboxState {
    /// Wakes the dispatcher (after a commit).
    pub notify: Notify,
    /// False while writing fails; the consumer pauses meanwhile.
    pub healthy: AtomicBool,
    /// Files written since start.
    pub written: AtomicU64,
}

/// Everything the dispatcher needs.
pub struct Dispatcher {
    pub store: Store,
    pub dir: PathBuf,
    pub cfg: DaemonConfig,
    pub sink: SinkConfig,
    pub broker_url: String,
    pub state: Arc<OutboxState>,
    pub metrics: Arc<crate::daemon::metrics::Metrics>,
}

impl Dispatcher {
    /// Runs until `stop` is set and nothing is pending (or writing keeps
    /// failing after `stop`, then it returns at once: the rows stay pending
    /// and are written at the next start).
    pub async fn run(self, mut stop: Shutdown) {
        let mut delays = backoff(&self.cfg);
        let mut sink: Option<Sink> = None;
        remove_stale_temp_files(&self.dir);
        loop {
            match self.round(&mut sink).await {
                Ok(n) => {
                    self.metrics.outbox_healthy.set(1);
                    if !self.state.healthy.swap(true, Ordering::SeqCst) {
                        info!("outbox writable again");
                    }
                    delays = backoff(&self.cfg);
                    if n >= self.cfg.dispatch_batch {
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

    /// Writes one batch of pending records; returns how many.
    async fn round(&self, sink: &mut Option<Sink>) -> anyhow::Result<usize> {
        let pending = self.store.pending_records(self.cfg.dispatch_batch).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let n = pending.len();
        if !self.sink.exchange.is_empty() {
            if sink.is_none() {
                *sink = Some(Sink::connect(&self.broker_url).await?);
            }
            if let Some(s) = sink.as_ref() {
                s.publish(&self.sink, &pending).await?;
            }
        }
        let ids: Vec<_> = pending.iter().map(|r| r.antrag_id).collect();
        write_files(self.dir.clone(), pending, self.cfg.concurrency).await?;
        self.store.mark_written(&ids, Utc::now()).await?;
        self.state.written.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.records_written.inc_by(n as u64);
        debug!(records = n, "records written to outbox");
        Ok(n)
    }
}

/// Removes temporary files a killed process left behind (`.tmp-*.part`, the
/// names `outbox::write_atomic` uses; readers ignore them, but they would
/// pile up). Another daemon's write in progress may lose its temp file; its
/// rename then fails and it simply retries.
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

/// Writes the files on blocking threads, `parallel` chunks at a time.
async fn write_files(
    dir: PathBuf,
    records: Vec<PendingRecord>,
    parallel: usize,
) -> anyhow::Result<()> {
    let per = records.len().div_ceil(parallel.max(1)).max(1);
    let mut tasks = Vec::new();
    let mut records = records;
    while !records.is_empty() {
        let rest = records.split_off(per.min(records.len()));
        let chunk = std::mem::replace(&mut records, rest);
        let dir = dir.clone();
        tasks.push(tokio::task::spawn_blocking(
            move || -> std::io::Result<()> {
                for r in &chunk {
                    crate::outbox::write_atomic(&dir, &r.file_name, &r.xml)?;
                }
                Ok(())
            },
        ));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The optional second sink: an AMQP exchange receiving every record.
struct Sink {
    _conn: Connection,
    channel: lapin::Channel,
}

impl Sink {
    async fn connect(url: &str) -> anyhow::Result<Sink> {
        let conn = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("allegro-bridge-sink".into()),
        )
        .await?;
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
    async fn publish(&self, cfg: &SinkConfig, records: &[PendingRecord]) -> anyhow::Result<()> {
        let mut confirms = Vec::with_capacity(records.len());
        for r in records {
            let props = BasicProperties::default()
                .with_message_id(r.antrag_id.to_string().into())
                .with_content_type("application/xml".into())
                .with_delivery_mode(2);
            confirms.push(
                self.channel
                    .basic_publish(
                        cfg.exchange.as_str().into(),
                        cfg.routing_key.as_str().into(),
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
