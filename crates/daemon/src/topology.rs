//! Broker topology: the intake quorum queue and the dead-letter queue.
//!
//! Declared at every start (idempotent). The intake queue is a durable quorum
//! queue whose `x-delivery-limit` dead-letters, through the default exchange,
//! into the DLQ: the safety net for a message that keeps crashing the process.
//! Everything the bridge itself rejects it publishes to the DLQ with reason
//! headers (see `deadletter`). When a queue already exists with other
//! arguments, RabbitMQ refuses the declaration with PRECONDITION_FAILED and
//! names the argument; that is a configuration error, not an outage.

use lapin::options::QueueDeclareOptions;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ErrorKind};

use crate::config::BrokerConfig;

/// Why declaring failed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The queue exists with different arguments: fix the config or the queue.
    #[error(
        "queue `{queue}` already exists with different arguments: {detail} \
         (set broker.* to match the existing queue, or move its messages and delete it)"
    )]
    Mismatch { queue: String, detail: String },
    /// The broker could not be reached or the channel broke: retry.
    #[error("broker error while declaring `{queue}`: {source}")]
    Broker {
        queue: String,
        #[source]
        source: lapin::Error,
    },
}

/// Connects to the broker and closes again: whether it is reachable with
/// these settings (`config check --connect`).
pub async fn check_connect(cfg: &BrokerConfig) -> Result<(), crate::broker::ConnectError> {
    let conn = crate::broker::connect(cfg, "allegro-bridge config check").await?;
    let _ = conn.close(200, "OK".into()).await;
    Ok(())
}

/// Arguments of the intake queue.
pub fn intake_arguments(cfg: &BrokerConfig) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(cfg.delivery_limit)),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(cfg.dlq.as_str().into()),
    );
    args
}

/// Arguments of the dead-letter queue.
pub fn dlq_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// Declares both queues, each on a fresh channel (a refused declaration
/// closes its channel).
pub async fn declare(conn: &Connection, cfg: &BrokerConfig) -> Result<(), TopologyError> {
    declare_one(conn, &cfg.dlq, dlq_arguments()).await?;
    declare_one(conn, &cfg.intake_queue, intake_arguments(cfg)).await
}

async fn declare_one(
    conn: &Connection,
    queue: &str,
    args: FieldTable,
) -> Result<(), TopologyError> {
    let broker = |source| TopologyError::Broker {
        queue: queue.to_string(),
        source,
    };
    let ch: Channel = conn.create_channel().await.map_err(broker)?;
    let result = ch
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), args)
        .await;
    match result {
        Ok(_) => {
            let _ = ch.close(200, "OK".into()).await;
            Ok(())
        }
        Err(e) => match e.kind() {
            ErrorKind::ProtocolError(amqp)
                if matches!(
                    amqp.kind(),
                    AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
                ) =>
            {
                Err(TopologyError::Mismatch {
                    queue: queue.to_string(),
                    detail: amqp.get_message().to_string(),
                })
            }
            _ => Err(broker(e)),
        },
    }
}

/// Ready messages and consumers of `queue`, by a passive declare on a
/// channel of its own; `None` when the queue does not exist.
pub async fn queue_counts(conn: &Connection, queue: &str) -> Option<(u32, u32)> {
    let ch = conn.create_channel().await.ok()?;
    let counts = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()
        .map(|q| (q.message_count(), q.consumer_count()));
    let _ = ch.close(200, "OK".into()).await;
    counts
}
