//! One broker session: connect, declare, consume in batches, commit, ack.
//!
//! Deliveries are gathered into batches (up to `daemon.batch_size`, waiting at
//! most `daemon.batch_linger_ms`). For a batch the pipeline runs on blocking
//! threads (panics caught per message), then one database transaction stores
//! every readable application with its record (outbox row) or case and logs
//! the dead letters, the dead letters are published to the DLQ and confirmed,
//! the transaction commits, and one multiple-ack acknowledges the batch.
//!
//! Careful mode: when a session ends after consuming started, the messages
//! the broker had pushed to it go back to the queue with their delivery
//! count raised, and one of them may be what ended the session (a frame the
//! client cannot read). The next session then takes one delivery at a time
//! (prefetch 1, batch 1) until a whole prefetch window has been worked
//! through, so a message that breaks the session again costs only itself:
//! its delivery count alone climbs until the broker's delivery limit moves it
//! to the DLQ (`x-death` reason `delivery_limit`). Then the session ends
//! gracefully and the next one runs at full speed. See [`Careful`].
//!
//! Architecture invariant: a delivery is acked only after its outcome is
//! durable (committed rows, confirmed dead letter). A database failure holds
//! the batch unacked and retries it with backoff; no further deliveries are
//! taken meanwhile (consumption is paused). A broker failure ends the session;
//! the caller reconnects, and the unacked deliveries come back and are
//! recognised by antragId and body hash.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use crate::config::Settings;
use crate::deadletter;
use crate::dispatcher::OutboxState;
use crate::metrics::{FindingLabel, MappingLabel, Metrics, OutcomeLabel, ReasonLabel};
use crate::plan::{Item, Plan, Publish, Tally};
use crate::reload::Mappings;
use crate::retry::{backoff, Shutdown};
use crate::topology::{self, TopologyError};
use crate::watchdog::{Heartbeat, IDLE_BEAT};
use allegro_core::pipeline::{
    Application, Invalid, InvalidReason, Message, Outcome, Pipeline, Processed,
};
use allegro_store::Store;
use allegro_store::Stored;

/// What the session needs from the daemon.
pub struct Ctx {
    pub settings: Settings,
    /// The mapping set in force; each batch takes a snapshot of it.
    pub pipeline: Arc<Mappings>,
    pub store: Store,
    pub outbox: Arc<OutboxState>,
    pub metrics: Arc<Metrics>,
    /// Beaten by the main loop; the systemd watchdog pings only while it is fresh.
    pub heartbeat: Arc<Heartbeat>,
}

impl Ctx {
    /// Batches stored at once: `daemon.commit_parallel` with PostgreSQL;
    /// SQLite has one writer at a time, so one.
    fn commit_parallel(&self) -> usize {
        match self.store.kind() {
            "sqlite" => 1,
            _ => self.settings.daemon.commit_parallel.max(1),
        }
    }
}

/// How a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Not worth retrying (configuration): the daemon exits non-zero.
    #[error(transparent)]
    Fatal(anyhow::Error),
    /// Broker gone or similar: reconnect after a backoff.
    #[error(transparent)]
    Transient(anyhow::Error),
}

/// How a session that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Shutdown was requested and the in-flight work is done.
    Shutdown,
    /// Careful mode has worked through its window: reconnect at full speed.
    FullSpeed,
}

/// Careful mode (see the module documentation): how many deliveries are
/// still to be taken one at a time; 0 is full speed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Careful {
    remaining: u32,
}

impl Careful {
    /// A session ended after consuming started: every delivery of the window
    /// the broker may have pushed (`prefetch`) may have been returned, and one
    /// of them may be poison. A window already being worked through is not
    /// made longer by another break (the poison is within it).
    pub fn after_broken_session(&mut self, prefetch: u16) {
        if self.remaining == 0 {
            self.remaining = u32::from(prefetch);
        }
    }

    /// Whether deliveries are taken one at a time.
    pub fn is_on(&self) -> bool {
        self.remaining > 0
    }

    /// `n` deliveries were acked.
    fn acked(&mut self, n: usize) {
        self.remaining = self
            .remaining
            .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// The prefetch and batch size for the next session.
    fn limits(&self, prefetch: u16, batch_size: usize) -> (u16, usize) {
        if self.is_on() {
            (1, 1)
        } else {
            (prefetch, batch_size.max(1))
        }
    }
}

fn transient<E: Into<anyhow::Error>>(e: E) -> SessionError {
    SessionError::Transient(e.into())
}

/// Connects and consumes until shutdown (then returns `Ok` after a graceful
/// drain), until careful mode is over, or until the broker fails. `careful`
/// is entered when the session fails after consuming started.
pub async fn session(
    ctx: &Ctx,
    shutdown: &mut Shutdown,
    on_ready: &mut (dyn FnMut() + Send),
    careful: &mut Careful,
) -> Result<SessionEnd, SessionError> {
    let consuming = AtomicBool::new(false);
    let result = consume(ctx, shutdown, on_ready, careful, &consuming).await;
    if result.is_err() && consuming.load(Ordering::SeqCst) {
        let was_on = careful.is_on();
        careful.after_broken_session(ctx.settings.broker.prefetch);
        if !was_on {
            warn!(
                window = ctx.settings.broker.prefetch,
                "session ended with deliveries in flight; taking them one at a time"
            );
        }
    }
    ctx.metrics.careful_mode.set(i64::from(careful.is_on()));
    result
}

/// One session's work: opens the [`Link`], runs the producer and the
/// committer stages until shutdown or the end of careful mode, closes.
/// `consuming` is set once deliveries may arrive.
async fn consume(
    ctx: &Ctx,
    shutdown: &mut Shutdown,
    on_ready: &mut (dyn FnMut() + Send),
    careful: &mut Careful,
    consuming: &AtomicBool,
) -> Result<SessionEnd, SessionError> {
    let b = &ctx.settings.broker;
    let link = Link::open(ctx).await?;
    let (prefetch, batch_size) = careful.limits(b.prefetch, ctx.settings.daemon.batch_size);
    ctx.metrics.careful_mode.set(i64::from(careful.is_on()));
    let mut consumer = link.consume(&b.intake_queue, prefetch).await?;
    consuming.store(true, Ordering::SeqCst);
    info!(queue = %b.intake_queue, prefetch, careful = careful.is_on(), "consuming");
    ctx.metrics.broker_connected.set(1);
    on_ready();

    let session = Session {
        ctx,
        frame_max: link.conn.configuration().frame_max(),
        consume_ch: &link.consume_ch,
        publish_ch: &link.publish_ch,
    };
    let limits = Limits {
        batch_size,
        linger: Duration::from_millis(ctx.settings.daemon.batch_linger_ms),
    };
    let flow = Flow::new(*careful);
    // Two stages, so the pipeline of batch N+1 runs while batch N commits:
    // the producer gathers deliveries and runs the pipeline; the committer
    // stores (up to `commit_parallel` batches at once, each in its own
    // transaction), publishes dead letters and acks strictly in delivery
    // order, which the multiple-ack relies on. The channel holds one batch,
    // so a stalled committer stalls the producer: consumption pauses.
    let (batches, ready) = tokio::sync::mpsc::channel::<Prepared>(1);
    let committer = session.commit(ready, shutdown.clone(), &flow);
    let producer = session.produce(&mut consumer, batches, shutdown, &flow, limits);
    let outcome = tokio::try_join!(producer, committer);
    let acked = careful.remaining - flow.careful_left.load(Ordering::SeqCst);
    careful.acked(acked as usize);
    outcome?;
    link.close().await;
    if shutdown.is_set() {
        Ok(SessionEnd::Shutdown)
    } else {
        Ok(SessionEnd::FullSpeed)
    }
}

/// The session's connection: one channel consuming the intake queue, one
/// publishing dead letters with confirms.
struct Link {
    conn: Connection,
    consume_ch: Channel,
    publish_ch: Channel,
}

impl Link {
    /// Connects, declares the queues when `broker.declare` says so (a
    /// mismatch is fatal, a broker error transient) and opens the channels.
    async fn open(ctx: &Ctx) -> Result<Link, SessionError> {
        let b = &ctx.settings.broker;
        let conn = crate::broker::connect(b, &b.connection_name)
            .await
            .map_err(transient)?;
        if b.declare {
            topology::declare(&conn, b).await.map_err(|e| match e {
                TopologyError::Mismatch { .. } => SessionError::Fatal(e.into()),
                TopologyError::Broker { .. } => transient(e),
            })?;
        }
        let consume_ch = conn.create_channel().await.map_err(transient)?;
        let publish_ch = conn.create_channel().await.map_err(transient)?;
        publish_ch
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(transient)?;
        Ok(Link {
            conn,
            consume_ch,
            publish_ch,
        })
    }

    /// Starts consuming `queue` with this prefetch.
    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, SessionError> {
        self.consume_ch
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(transient)?;
        self.consume_ch
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(transient)
    }

    async fn close(&self) {
        let _ = self.consume_ch.close(200, "shutdown".into()).await;
        let _ = self.publish_ch.close(200, "shutdown".into()).await;
        let _ = self.conn.close(200, "shutdown".into()).await;
    }
}

/// How the producer cuts batches.
#[derive(Debug, Clone, Copy)]
struct Limits {
    batch_size: usize,
    /// How long a batch may wait to fill after its first delivery.
    linger: Duration,
}

/// What the producer and the committer of one session share.
struct Flow {
    /// Careful mode's window still to be acked; counts down with every ack.
    careful_left: AtomicU32,
    /// Whether the session started in careful mode: then the producer stops
    /// taking deliveries once the window is through.
    careful_at_start: bool,
    /// Wakes the producer when the window is through, even while no further
    /// delivery arrives.
    window_through: Notify,
    /// Batches handed to the committer and not yet acked (for the heartbeat).
    unacked: AtomicUsize,
}

impl Flow {
    fn new(careful: Careful) -> Flow {
        Flow {
            careful_left: AtomicU32::new(careful.remaining),
            careful_at_start: careful.is_on(),
            window_through: Notify::new(),
            unacked: AtomicUsize::new(0),
        }
    }

    /// `n` deliveries were acked: counts the window down and wakes the
    /// producer when it is through.
    fn acked(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let _ = self
            .careful_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                Some(left.saturating_sub(n))
            });
        if self.careful_left.load(Ordering::SeqCst) == 0 {
            self.window_through.notify_one();
        }
    }

    /// Careful mode's window is through: time to end the session.
    fn window_is_through(&self) -> bool {
        self.careful_at_start && self.careful_left.load(Ordering::SeqCst) == 0
    }
}

fn next_delivery(d: Option<lapin::Result<Delivery>>) -> Result<Delivery, SessionError> {
    match d {
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(transient(e)),
        None => Err(SessionError::Transient(anyhow::anyhow!(
            "the broker ended the consumer"
        ))),
    }
}

struct Session<'a> {
    ctx: &'a Ctx,
    /// The negotiated frame size: a dead letter's header must fit one frame.
    frame_max: u32,
    consume_ch: &'a Channel,
    publish_ch: &'a Channel,
}

/// Why one attempt at storing a batch failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("database: {0}")]
    Store(#[from] allegro_store::StoreError),
    #[error("dead-letter publish not confirmed")]
    NotConfirmed,
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
}

/// A batch after the pipeline, waiting to be stored.
struct Prepared {
    items: Vec<Item>,
    last_tag: u64,
    t0: Instant,
    pipeline: Duration,
}

impl Session<'_> {
    /// The committer stage: stores the batches the producer sends (up to
    /// `commit_parallel` at once) and acks them in the order sent.
    async fn commit(
        &self,
        mut ready: tokio::sync::mpsc::Receiver<Prepared>,
        shutdown: Shutdown,
        flow: &Flow,
    ) -> Result<(), SessionError> {
        let parallel = self.ctx.commit_parallel();
        let mut in_flight = FuturesOrdered::new();
        let mut open = true;
        loop {
            tokio::select! {
                p = ready.recv(), if open && in_flight.len() < parallel => match p {
                    Some(p) => in_flight.push_back(self.store(p, &shutdown)),
                    None => open = false,
                },
                // In submission order: batch N is acked before batch N+1.
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    let n = self.ack(done?).await?;
                    flow.unacked.fetch_sub(1, Ordering::SeqCst);
                    self.ctx.heartbeat.beat();
                    flow.acked(n);
                }
                else => break,
            }
        }
        Ok(())
    }

    /// The producer stage: gathers batches, runs the pipeline over each and
    /// sends it to the committer until shutdown or the end of careful mode,
    /// then drains what the broker had already delivered.
    async fn produce(
        &self,
        consumer: &mut Consumer,
        batches: tokio::sync::mpsc::Sender<Prepared>,
        shutdown: &mut Shutdown,
        flow: &Flow,
        limits: Limits,
    ) -> Result<(), SessionError> {
        while let Some(batch) = self.next_batch(consumer, shutdown, flow, limits).await? {
            let prepared = self.prepare(batch).await?;
            flow.unacked.fetch_add(1, Ordering::SeqCst);
            if batches.send(prepared).await.is_err() {
                return Ok(());
            }
        }
        self.drain(consumer, &batches, shutdown.is_set(), limits.batch_size)
            .await
    }

    /// The next batch: a first delivery, then whatever arrives within the
    /// linger up to the batch size. `None` when the producer is to stop.
    async fn next_batch(
        &self,
        consumer: &mut Consumer,
        shutdown: &mut Shutdown,
        flow: &Flow,
        limits: Limits,
    ) -> Result<Option<Vec<Delivery>>, SessionError> {
        if flow.window_is_through() {
            return Ok(None);
        }
        self.pause_while_outbox_down(shutdown).await;
        if shutdown.is_set() {
            return Ok(None);
        }
        let Some(first) = self.first_delivery(consumer, shutdown, flow).await? else {
            return Ok(None);
        };
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + limits.linger;
        while batch.len() < limits.batch_size {
            match tokio::time::timeout_at(until, consumer.next()).await {
                Ok(d) => batch.push(next_delivery(d)?),
                Err(_) => break,
            }
        }
        Ok(Some(batch))
    }

    /// Takes no deliveries while the outbox cannot be written.
    async fn pause_while_outbox_down(&self, shutdown: &mut Shutdown) {
        while !self.ctx.outbox.healthy.load(Ordering::SeqCst) {
            self.ctx.heartbeat.beat();
            if shutdown.sleep(Duration::from_millis(200)).await {
                break;
            }
        }
    }

    /// Waits for a batch's first delivery; `None` on shutdown or when careful
    /// mode's window is through. Idle on the queue is alive, unless a batch
    /// handed to the committer has not come back: then the committer's acks
    /// and retries are what beat.
    async fn first_delivery(
        &self,
        consumer: &mut Consumer,
        shutdown: &mut Shutdown,
        flow: &Flow,
    ) -> Result<Option<Delivery>, SessionError> {
        loop {
            if flow.unacked.load(Ordering::SeqCst) == 0 {
                self.ctx.heartbeat.beat();
            }
            tokio::select! {
                biased;
                _ = shutdown.wait() => return Ok(None),
                _ = flow.window_through.notified(), if flow.careful_at_start => return Ok(None),
                d = consumer.next() => return next_delivery(d).map(Some),
                _ = tokio::time::sleep(IDLE_BEAT) => {}
            }
        }
    }

    /// Graceful end: stops the broker from sending more and hands what was
    /// already delivered to the committer in batches, so it is acked before
    /// the channels close.
    async fn drain(
        &self,
        consumer: &mut Consumer,
        batches: &tokio::sync::mpsc::Sender<Prepared>,
        shutting_down: bool,
        batch_size: usize,
    ) -> Result<(), SessionError> {
        if shutting_down {
            info!("shutdown: cancelling consumer, finishing in-flight deliveries");
        } else {
            info!("careful mode over: the window is through; back to full speed");
        }
        self.consume_ch
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await
            .map_err(transient)?;
        let mut rest = Vec::new();
        while let Ok(Some(d)) =
            tokio::time::timeout(Duration::from_millis(100), consumer.next()).await
        {
            rest.push(d.map_err(transient)?);
        }
        while !rest.is_empty() {
            // After shutdown, a batch that cannot be stored is left unacked;
            // it goes back to the queue when the channel closes.
            let tail = rest.split_off(batch_size.min(rest.len()));
            let chunk = std::mem::replace(&mut rest, tail);
            let prepared = self.prepare(chunk).await?;
            if batches.send(prepared).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Runs the pipeline over a batch.
    async fn prepare(&self, batch: Vec<Delivery>) -> Result<Prepared, SessionError> {
        let last_tag = batch.iter().map(|d| d.delivery_tag).max().unwrap_or(0);
        let t0 = Instant::now();
        // The batch runs with the set in force now, whatever a reload swaps
        // in meanwhile.
        let pipeline = self.ctx.pipeline.snapshot();
        let items = run_pipeline(&pipeline, batch, self.ctx.settings.daemon.concurrency)
            .await
            .map_err(SessionError::Fatal)?;
        self.ctx.metrics.observe_stage("pipeline", t0.elapsed());
        Ok(Prepared {
            items,
            last_tag,
            t0,
            pipeline: t0.elapsed(),
        })
    }

    /// Stores a prepared batch, retrying while the database is away.
    async fn store(&self, p: Prepared, shutdown: &Shutdown) -> Result<Prepared, SessionError> {
        let items = &p.items;
        let mut delays = backoff(&self.ctx.settings.daemon);
        let mut failing_since: Option<Instant> = None;
        let deadline = Duration::from_secs(self.ctx.settings.daemon.shutdown_deadline_secs);
        loop {
            match self.attempt(items).await {
                Ok(()) => {
                    self.ctx.metrics.store_healthy.set(1);
                    break;
                }
                Err(AttemptError::Broker(e)) => return Err(transient(e)),
                Err(e) => {
                    self.ctx.metrics.store_retries.inc();
                    self.ctx.metrics.store_healthy.set(0);
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if shutdown.is_set() && since.elapsed() > deadline {
                        return Err(SessionError::Transient(anyhow::anyhow!(
                            "shutdown while the batch could not be stored: {e}"
                        )));
                    }
                    let d = delays.next().unwrap_or(Duration::from_secs(1));
                    warn!(error = %e, retry_in_ms = d.as_millis() as u64, held = items.len(),
                        "batch not stored; consumption paused, retrying");
                    self.ctx.heartbeat.alive_for(d);
                    tokio::time::sleep(d).await;
                }
            }
        }
        if let Some(since) = failing_since {
            info!(
                after_ms = since.elapsed().as_millis() as u64,
                "store reachable again; resuming"
            );
        }
        Ok(p)
    }

    /// Acks a stored batch with one multiple-ack.
    /// Returns how many deliveries it acked.
    async fn ack(&self, p: Prepared) -> Result<usize, SessionError> {
        let Prepared {
            items,
            last_tag,
            t0,
            pipeline: t_pipeline,
        } = p;
        let t_ack = Instant::now();
        self.consume_ch
            .basic_ack(last_tag, BasicAckOptions { multiple: true })
            .await
            .map_err(transient)?;
        self.ctx.metrics.observe_stage("ack", t_ack.elapsed());
        self.ctx.metrics.batches.inc();
        self.ctx.metrics.deliveries_acked.inc_by(items.len() as u64);
        self.ctx
            .metrics
            .batch_seconds
            .observe(t0.elapsed().as_secs_f64());
        debug!(
            items = items.len(),
            pipeline_us = t_pipeline.as_micros() as u64,
            total_us = t0.elapsed().as_micros() as u64,
            "batch acked"
        );
        Ok(items.len())
    }

    /// One transaction for the whole batch; dead letters are published and
    /// confirmed before the commit. The rows come from the batch's [`Plan`].
    async fn attempt(&self, items: &[Item]) -> Result<(), AttemptError> {
        let t0 = Instant::now();
        let now = Utc::now();
        let mut plan = Plan::new(items, now);
        let mut tx = self.ctx.store.begin().await?;
        let stored = tx.insert_applications(&plan.apps).await?;
        let mut tally = plan.settle(items, &stored, now);
        let received = tx
            .receive_nachreichungen(&plan.nachreichungen(items), now)
            .await?;
        let follow_ups = plan.settle_nachreichungen(items, received, now, &mut tally);
        let logged = tx.insert_dead_letters(&plan.letters).await?;
        let publish = plan.to_publish(&logged);
        self.publish(items, &publish).await?;
        tx.commit().await?;
        self.ctx.metrics.observe_stage("store", t0.elapsed());
        let already = plan.letters.len() - publish.len();
        count(&self.ctx.metrics, &tally, &publish, already);
        count_applications(&self.ctx.metrics, plan.stored(items, &stored));
        debug!(
            items = items.len(),
            accepted = tally.accepted,
            rejected = tally.rejected,
            duplicates = tally.duplicates,
            dead_lettered = publish.len(),
            already_dead_lettered = already,
            commit_us = t0.elapsed().as_micros() as u64,
            "batch committed"
        );
        // The new records are durable: hand them to the dispatcher in memory.
        self.ctx.outbox.hand_over(plan.new_records(&stored));
        self.ctx.outbox.hand_over(follow_ups);
        Ok(())
    }

    /// Publishes the new dead letters to the DLQ and waits for the broker's
    /// confirms.
    async fn publish(&self, items: &[Item], publish: &[Publish<'_>]) -> Result<(), AttemptError> {
        let dlq = self.ctx.settings.broker.dlq.as_str();
        let mut confirms = Vec::with_capacity(publish.len());
        for p in publish {
            let it = &items[p.item];
            warn!(antrag_id = p.letter.antrag_id.map(tracing::field::display), reason = %p.letter.reason,
                dead_letter_id = %p.id, "dead-lettered");
            let props = deadletter::properties(&it.properties, p.letter, p.id, self.frame_max);
            let options = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            confirms.push(
                self.publish_ch
                    .basic_publish("".into(), dlq.into(), options, &it.body, props)
                    .await?,
            );
        }
        for c in confirms {
            let conf = c.await?;
            if !conf.is_ack() || conf.take_message().is_some() {
                return Err(AttemptError::NotConfirmed);
            }
        }
        Ok(())
    }
}

/// Counts a committed batch in the metrics. A dead letter already in the
/// log (the same message again) is a duplicate, so that the outcomes and
/// the duplicates add up to the deliveries acked.
fn count(m: &Metrics, tally: &Tally, published: &[Publish<'_>], already_dead: usize) {
    let outcome = |outcome| OutcomeLabel { outcome };
    m.applications
        .get_or_create(&outcome("accepted"))
        .inc_by(tally.accepted);
    m.applications
        .get_or_create(&outcome("rejected"))
        .inc_by(tally.rejected);
    m.duplicates.inc_by(tally.duplicates + already_dead as u64);
    m.nachreichungen.inc_by(tally.nachreichungen);
    for p in published {
        let reason = ReasonLabel {
            reason: p.letter.reason,
        };
        m.dead_letters.get_or_create(&reason).inc();
    }
}

/// Counts the newly stored applications by mapping and outcome and their
/// findings by rule and severity, and logs each by antragId (a duplicate
/// too; a conflict is logged as a dead letter).
fn count_applications<'a>(
    m: &Metrics,
    stored: impl Iterator<Item = (&'a Application, Outcome, Stored)>,
) {
    for (app, outcome, s) in stored {
        match s {
            Stored::Inserted => {}
            Stored::Duplicate => {
                debug!(antrag_id = %app.antrag_id, "duplicate delivery: already stored, acked");
                continue;
            }
            Stored::Conflict => continue,
        }
        debug!(antrag_id = %app.antrag_id, outcome = outcome.as_str(), mapping = %app.mapping,
            findings = app.findings.len(), "application stored");
        m.applications_by_mapping
            .get_or_create(&MappingLabel {
                mapping: app.mapping.clone(),
                outcome: outcome.as_str(),
            })
            .inc();
        for f in &app.findings {
            m.findings
                .get_or_create(&FindingLabel::of("daemon", f))
                .inc();
        }
    }
}

/// Runs the pipeline over a batch on `parallel` blocking threads, catching a
/// panic per message (it becomes an `internal_error` dead letter).
async fn run_pipeline(
    pipeline: &Arc<Pipeline>,
    batch: Vec<Delivery>,
    parallel: usize,
) -> anyhow::Result<Vec<Item>> {
    let per = batch.len().div_ceil(parallel.max(1)).max(1);
    let mut tasks = Vec::new();
    let mut batch = batch;
    while !batch.is_empty() {
        let rest = batch.split_off(per.min(batch.len()));
        let chunk = std::mem::replace(&mut batch, rest);
        let p = Arc::clone(pipeline);
        tasks.push(tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|d| process_one(&p, d))
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await?);
    }
    Ok(out)
}

fn process_one(p: &Pipeline, delivery: Delivery) -> Item {
    let mid = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str());
    let message = guarded(delivery.delivery_tag, || p.receive(&delivery.data, mid));
    Item::new(message, delivery.data, delivery.properties)
}

/// Runs `pipeline`, turning a panic into an `internal_error` dead letter: a
/// bug costs one message, not the daemon.
fn guarded(delivery_tag: u64, pipeline: impl FnOnce() -> Message) -> Message {
    catch_unwind(AssertUnwindSafe(pipeline)).unwrap_or_else(|_| {
        error!(delivery_tag, "pipeline panicked; dead-lettering");
        Message::Application(Processed::Invalid(Invalid::new(
            InvalidReason::InternalError,
            "the pipeline panicked on this message",
            None,
        )))
    })
}

#[cfg(test)]
mod careful_tests {
    use super::*;

    #[test]
    fn full_speed_until_a_session_breaks() {
        let mut c = Careful::default();
        assert!(!c.is_on());
        assert_eq!(c.limits(1000, 250), (1000, 250));
        c.after_broken_session(1000);
        assert!(c.is_on());
        assert_eq!(c.limits(1000, 250), (1, 1));
    }

    #[test]
    fn the_window_counts_down_and_a_second_break_does_not_extend_it() {
        let mut c = Careful::default();
        c.after_broken_session(20);
        c.acked(5);
        c.after_broken_session(20); // the poison breaks it again
        c.acked(14);
        assert!(c.is_on());
        c.acked(1);
        assert!(!c.is_on());
        assert_eq!(c.limits(20, 250), (20, 250));
        c.acked(3); // never below zero
        assert!(!c.is_on());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_pipeline_is_an_internal_error() {
        let Message::Application(got) = guarded(7, || panic!("bug")) else {
            panic!("a panic makes the delivery invalid");
        };
        let invalid = got.invalid().expect("a panic makes the delivery invalid");
        assert_eq!(invalid.reason, InvalidReason::InternalError);
        assert_eq!(invalid.antrag_id, None);
    }

    #[test]
    fn without_a_panic_the_result_passes_through() {
        let ok = Invalid::new(InvalidReason::NotJson, "d", None);
        let got = guarded(7, || Message::Application(Processed::Invalid(ok.clone())));
        let Message::Application(got) = got else {
            panic!("passes through");
        };
        assert_eq!(got.invalid(), Some(&ok));
    }
}
