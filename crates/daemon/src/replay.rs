//! The broker side of `allegro-bridge dlq`: dead letters back to the intake
//! queue once their cause is fixed ([`replay`]), and how many messages the
//! DLQ holds ([`dlq_ready`], for `dlq list`). The command line parses the
//! arguments and prints; this module reads and writes the queues.
//!
//! `dlq list` and `dlq show` read only the store's dead-letter log (the
//! daemon logs every dead letter in the transaction whose DLQ publish the
//! broker confirmed), so they cannot hang on a message the AMQP client cannot
//! read and do not raise the messages' `x-delivery-count`; `list` only asks
//! the broker how many messages the DLQ holds (a passive declare). Replay is
//! the only reader of the queue: with a consumer, a prefetch and timeouts,
//! acknowledging only what it replayed; closing the channel returns the rest.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use chrono::{SubsecRound as _, Utc};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};
use tokio::time::{timeout_at, Instant};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::deadletter::{self, header_str};
use crate::topology::queue_counts;
use allegro_store::{DeadLetterRow, Store};

/// How long a broker answer is awaited besides the messages themselves: the
/// DLQ's count for `dlq list`, closing a channel or the connection.
pub const COUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long replay waits for the next message of the DLQ.
const NEXT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most messages replay holds unacknowledged at once (its prefetch): the
/// ones it does not replay stay with it until it closes the channel.
const MAX_PREFETCH: u32 = 5000;

/// Which dead letters to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    /// Every open row of the log, and every message of the DLQ without a
    /// dead-letter id (dead-lettered by the broker).
    All,
    /// The dead letters of this dead-letter id or antragId.
    Id(&'a str),
}

/// What one replay run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Messages looked at.
    pub seen: u32,
    pub replayed: u32,
    /// Replayed without an open log row.
    pub unlogged: u32,
    /// Extra copies of a replayed dead letter removed from the DLQ.
    pub copies: u32,
    /// Messages left in the DLQ (not asked for).
    pub left: u32,
    /// The run stopped because it held back as many messages as it may
    /// hold at once.
    pub held_back_limit: bool,
    /// Log rows asked for that were not found in the queue, sorted.
    pub not_found: Vec<Uuid>,
}

/// A connection for the `dlq` commands.
pub async fn connect(broker: &BrokerConfig) -> anyhow::Result<Connection> {
    Ok(crate::broker::connect(broker, "allegro-bridge-dlq").await?)
}

/// Ready messages in the DLQ, by a passive declare; `None` when it does not exist.
pub async fn dlq_ready(broker: &BrokerConfig) -> anyhow::Result<Option<u32>> {
    let conn = connect(broker).await?;
    let counts = queue_counts(&conn, &broker.dlq).await;
    let _ = conn.close(200, "OK".into()).await;
    Ok(counts.map(|(ready, _)| ready))
}

/// The open log rows an ID names (dead-letter id or antragId); none for an
/// ID that is not a UUID.
pub async fn open_rows(store: &Store, id: &str) -> anyhow::Result<Vec<DeadLetterRow>> {
    Ok(match Uuid::parse_str(id.trim()) {
        Ok(u) => store.dead_letters_for(u).await?,
        Err(_) => vec![],
    })
}

/// Reads the DLQ with a consumer and replays the messages whose dead-letter
/// id is one of the log rows asked for (plus, with [`Which::All`] or by their
/// ID, those without an open row). Bounded in time: the next message is
/// awaited at most [`NEXT_TIMEOUT`], the whole run at most `timeout`; a
/// message the client cannot read ends the run with an error instead of a
/// hang. What was replayed before an error stays replayed.
pub async fn replay(
    broker: &BrokerConfig,
    store: &Store,
    which: Which<'_>,
    timeout: Duration,
) -> anyhow::Result<Report> {
    let rows = match which {
        Which::All => store.dead_letters().await?,
        Which::Id(id) => open_rows(store, id).await?,
    };
    let mut wanted = Wanted::new(rows.iter().map(|r| r.id), which);
    let deadline = Instant::now() + timeout;
    let conn = timeout_at(deadline, connect(broker))
        .await
        .map_err(|_| anyhow!("the broker did not answer within {}s", timeout.as_secs()))??;
    let result = replay_from_queue(&conn, store, broker, &mut wanted, deadline).await;
    // Closing returns every message not acked (i.e. not replayed) to the DLQ.
    let _ = tokio::time::timeout(COUNT_TIMEOUT, conn.close(200, "OK".into())).await;
    let mut report = result?;
    report.not_found = wanted.rows.into_iter().collect();
    report.not_found.sort();
    Ok(report)
}

/// What replay is asked to put back, and what it has put back so far.
struct Wanted<'a> {
    /// Log rows still to be found in the queue, by dead-letter id.
    rows: HashSet<Uuid>,
    which: Which<'a>,
    /// Dead-letter ids replayed in this run.
    replayed: HashSet<Uuid>,
}

/// What to do with one message of the DLQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Replay it: a log row asked for.
    Replay,
    /// Replay it although it has no open log row.
    ReplayUnlogged,
    /// A second copy of a dead letter replayed in this run: drop it.
    DropCopy,
    /// Not asked for: leave it in the queue.
    Leave,
}

impl<'a> Wanted<'a> {
    fn new(rows: impl IntoIterator<Item = Uuid>, which: Which<'a>) -> Self {
        Wanted {
            rows: rows.into_iter().collect(),
            which,
            replayed: HashSet::new(),
        }
    }

    /// Decides for a message with dead-letter id `id` (if it has one) and
    /// these properties; a log row is found only once.
    fn step(&mut self, id: Option<Uuid>, props: &BasicProperties) -> Step {
        match id {
            Some(id) if self.rows.remove(&id) => Step::Replay,
            // A crash between publishing a dead letter and committing its
            // log row can leave two copies with the same id: one is replayed.
            Some(id) if self.replayed.contains(&id) => Step::DropCopy,
            _ if self.wants_unlogged(props) => Step::ReplayUnlogged,
            _ => Step::Leave,
        }
    }

    /// A message without an open log row: dead-lettered by the broker (no
    /// dead-letter id), or left behind by a replay that broke off after
    /// freeing its row. Replayed with [`Which::All`], or when its dead-letter
    /// id or antragId (header or message_id) is the ID given.
    fn wants_unlogged(&self, props: &BasicProperties) -> bool {
        match self.which {
            Which::All => true,
            Which::Id(id) => {
                header_str(props, deadletter::H_ID).as_deref() == Some(id)
                    || header_str(props, deadletter::H_ANTRAG_ID).as_deref() == Some(id)
                    || props.message_id().as_ref().map(|m| m.as_str()) == Some(id)
            }
        }
    }
}

/// The DLQ as replay reads it: a consumer with a prefetch of what the queue
/// held, and a second channel that publishes to the intake with confirms.
struct DlqReader {
    ch: Channel,
    pub_ch: Channel,
    consumer: Consumer,
    prefetch: u16,
}

impl DlqReader {
    async fn open(conn: &Connection, dlq: &str, ready: u32) -> anyhow::Result<DlqReader> {
        let ch = conn.create_channel().await?;
        let pub_ch = conn.create_channel().await?;
        pub_ch
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        // The messages not replayed stay unacked until the channel closes:
        // with a prefetch of at least what the queue held, none of them
        // blocks the ones behind it.
        let prefetch = ready.clamp(1, MAX_PREFETCH) as u16;
        ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let consumer = ch
            .basic_consume(
                dlq.into(),
                "allegro-bridge-dlq-replay".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("consuming from the dead-letter queue `{dlq}`"))?;
        Ok(DlqReader {
            ch,
            pub_ch,
            consumer,
            prefetch,
        })
    }

    /// The next message, within [`NEXT_TIMEOUT`] and the deadline;
    /// `progress` says in the error how far the run got.
    async fn next(
        &mut self,
        dlq: &str,
        deadline: Instant,
        progress: impl Fn() -> String,
    ) -> anyhow::Result<Delivery> {
        let wait = NEXT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) if Instant::now() >= deadline => {
                bail!("gave up at the --timeout deadline: {}", progress())
            }
            Err(_) => bail!(
                "no message from the dead-letter queue `{dlq}` for {}s although it held more: \
                 another client may hold them unacknowledged, or the broker cannot deliver \
                 them; {}",
                wait.as_secs(),
                progress()
            ),
            Ok(None) => bail!(
                "the broker cancelled the consumer on `{dlq}`; {}",
                progress()
            ),
            Ok(Some(Err(e))) => Err(unreadable(dlq, &e, &progress())),
            Ok(Some(Ok(d))) => Ok(d),
        }
    }

    /// The error for a failed replay: when the connection broke, the next
    /// message may be what broke it, and the consumer then holds the cause.
    async fn failed(
        &mut self,
        conn: &Connection,
        dlq: &str,
        e: anyhow::Error,
        progress: &str,
    ) -> anyhow::Error {
        if conn.status().connected() {
            return e.context(format!("replaying a dead letter; {progress}"));
        }
        let cause = match tokio::time::timeout(COUNT_TIMEOUT, self.consumer.next()).await {
            Ok(Some(Err(cause))) => cause.to_string(),
            _ => format!("{e:#}"),
        };
        unreadable(dlq, &cause, progress)
    }
}

/// How far a run got, for its error messages.
fn progress(r: &Report, ready: u32) -> String {
    format!(
        "{} of the {ready} message(s) looked at, {} replayed before this; the others stay \
         in the queue",
        r.seen, r.replayed
    )
}

/// The error for a broker connection that broke while the DLQ was read:
/// lapin closes the connection on a message it cannot parse (for example a
/// header frame larger than `frame_max`).
fn unreadable(dlq: &str, e: &dyn std::fmt::Display, progress: &str) -> anyhow::Error {
    anyhow!(
        "the dead-letter queue `{dlq}` holds a message this client cannot read ({e}); the \
         broker connection was closed because of it. Inspect and move that message with the \
         RabbitMQ management UI or `rabbitmqadmin get`; {progress}"
    )
}

/// Looks at every message that was in the DLQ at the start once, and
/// replays, drops or leaves it as [`Wanted::step`] says.
async fn replay_from_queue(
    conn: &Connection,
    store: &Store,
    b: &BrokerConfig,
    wanted: &mut Wanted<'_>,
    deadline: Instant,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let ready = match queue_counts(conn, &b.dlq).await {
        Some((ready, _)) => ready,
        None => bail!("the dead-letter queue `{}` does not exist", b.dlq),
    };
    if ready == 0 {
        return Ok(report);
    }
    let mut reader = DlqReader::open(conn, &b.dlq, ready).await?;
    while report.seen < ready {
        if report.left >= u32::from(reader.prefetch) {
            report.held_back_limit = true;
            break;
        }
        let delivery = reader
            .next(&b.dlq, deadline, || progress(&report, ready))
            .await?;
        report.seen += 1;
        let id = header_str(&delivery.properties, deadletter::H_ID)
            .and_then(|i| Uuid::parse_str(&i).ok());
        match wanted.step(id, &delivery.properties) {
            Step::Leave => report.left += 1,
            Step::DropCopy => {
                reader
                    .ch
                    .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                    .await?;
                report.copies += 1;
            }
            step @ (Step::Replay | Step::ReplayUnlogged) => {
                if step == Step::ReplayUnlogged {
                    report.unlogged += 1;
                }
                let r = replay_one(store, &reader, &b.intake_queue, &delivery, id).await;
                if let Err(e) = r {
                    let progress = progress(&report, ready);
                    return Err(reader.failed(conn, &b.dlq, e, &progress).await);
                }
                wanted.replayed.extend(id);
                report.replayed += 1;
            }
        }
    }
    let _ = tokio::time::timeout(COUNT_TIMEOUT, reader.ch.close(200, "OK".into())).await;
    Ok(report)
}

/// Frees the dedup key (before publishing, or the daemon would take the
/// replayed message for the one already dead-lettered), publishes to the
/// intake with confirm, acks the DLQ copy. A failed publish restores the log
/// row; a crash in between leaves the dead letter in the DLQ (at worst it is
/// replayed twice, which the daemon recognises as a duplicate).
async fn replay_one(
    store: &Store,
    reader: &DlqReader,
    intake: &str,
    d: &Delivery,
    id: Option<Uuid>,
) -> anyhow::Result<()> {
    // Millisecond precision, so `unmark_replayed` finds the stored value.
    let now = Utc::now().trunc_subsecs(3);
    let key = deadletter::dedup_key(
        &deadletter::sha256_hex(&d.data),
        d.properties.message_id().as_ref().map(|m| m.as_str()),
    );
    match id {
        Some(id) => {
            store.mark_replayed(id, now).await?;
        }
        None => store.mark_replayed_by_key(&key, now).await?,
    }
    if let Err(e) = publish_to_intake(&reader.pub_ch, intake, d).await {
        let _ = store.unmark_replayed(&key, now).await;
        return Err(e);
    }
    reader
        .ch
        .basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await?;
    Ok(())
}

/// Publishes a dead letter's body and properties, without the bridge's
/// headers, to the intake queue and waits for the broker's confirm.
async fn publish_to_intake(pub_ch: &Channel, intake: &str, d: &Delivery) -> anyhow::Result<()> {
    let conf = pub_ch
        .basic_publish(
            "".into(),
            intake.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &d.data,
            deadletter::strip_bridge_headers(&d.properties),
        )
        .await?
        .await?;
    if !conf.is_ack() || conf.take_message().is_some() {
        bail!("the broker did not accept the replayed message (does `{intake}` exist?)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::AMQPValue;

    fn with_header(name: &str, value: &str) -> BasicProperties {
        let mut h = FieldTable::default();
        h.insert(name.into(), AMQPValue::LongString(value.into()));
        BasicProperties::default().with_headers(h)
    }

    #[test]
    fn a_logged_row_is_replayed_once_and_a_second_copy_dropped() {
        let id = Uuid::from_u128(1);
        let mut w = Wanted::new([id], Which::Id("x"));
        let props = with_header(deadletter::H_ID, &id.to_string());
        assert_eq!(w.step(Some(id), &props), Step::Replay);
        w.replayed.insert(id);
        assert_eq!(w.step(Some(id), &props), Step::DropCopy);
        assert!(w.rows.is_empty());
    }

    #[test]
    fn a_message_without_a_row_is_replayed_only_when_asked_for() {
        let antrag = "ebb7344d-2b83-4d6c-9a55-0b1e6e0a1f10";
        let by_header = with_header(deadletter::H_ANTRAG_ID, antrag);
        let by_message_id = BasicProperties::default().with_message_id(antrag.into());
        let other = BasicProperties::default();
        let mut one = Wanted::new([], Which::Id(antrag));
        assert_eq!(one.step(None, &by_header), Step::ReplayUnlogged);
        assert_eq!(one.step(None, &by_message_id), Step::ReplayUnlogged);
        assert_eq!(one.step(None, &other), Step::Leave);
        let unknown = Some(Uuid::from_u128(2));
        assert_eq!(one.step(unknown, &other), Step::Leave);
        let mut all = Wanted::new([], Which::All);
        assert_eq!(all.step(None, &other), Step::ReplayUnlogged);
    }
}
