//! The broker side of `allegro-bridge submit`: publishes application bodies
//! to the intake queue, as the online portal would (contract §1).
//!
//! Each body goes to the configured intake queue through the default
//! exchange, persistent, with `content_type` `application/json` and its
//! `antragId` as `message_id`, and counts as submitted once the broker
//! confirmed it. With `broker.declare = true` (the default) the queues are
//! declared first, exactly as the daemon declares them, so `submit` works
//! before the first daemon start. The command line reads the files and
//! prints; this module names no content either: [`antrag_id`]'s reasons give
//! line and column only.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, PublisherConfirm};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::topology;

/// The `antragId` of an application body, or why it cannot be sent.
///
/// The reasons name no content: serde_json's errors give line and column only.
pub fn antrag_id(body: &[u8]) -> Result<Uuid, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let id = value
        .as_object()
        .ok_or("not a JSON object")?
        .get("antragId")
        .ok_or("no antragId")?
        .as_str()
        .ok_or("antragId is not a string")?;
    Uuid::parse_str(id).map_err(|_| "antragId is not a UUID".to_string())
}

/// A connection to the intake queue with publisher confirms.
pub struct Submitter {
    conn: Connection,
    ch: Channel,
    queue: String,
}

/// A published body whose confirm is still to come.
pub struct Pending(PublisherConfirm);

impl Submitter {
    /// Connects, declares the queues when `broker.declare` says so, and
    /// opens a channel in confirm mode.
    pub async fn connect(broker: &BrokerConfig) -> anyhow::Result<Submitter> {
        let conn = crate::broker::connect(broker, "allegro-bridge-submit").await?;
        if broker.declare {
            topology::declare(&conn, broker).await?;
        }
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Submitter {
            conn,
            ch,
            queue: broker.intake_queue.clone(),
        })
    }

    /// Publishes one application (`id` is its antragId); its confirm is
    /// awaited later, so many can be in flight.
    pub async fn publish(&self, id: Uuid, body: &[u8]) -> anyhow::Result<Pending> {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(id.to_string().into());
        // mandatory: a message no queue takes comes back instead of vanishing.
        let confirm = self
            .ch
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                props,
            )
            .await?;
        Ok(Pending(confirm))
    }

    /// Closes the channel and the connection.
    pub async fn close(self) {
        let _ = self.ch.close(200, "OK".into()).await;
        let _ = self.conn.close(200, "OK".into()).await;
    }
}

impl Pending {
    /// Whether the broker took the message into a queue (acked and not
    /// returned as unroutable).
    pub async fn accepted(self) -> anyhow::Result<bool> {
        let conf = self.0.await?;
        Ok(conf.is_ack() && conf.take_message().is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antrag_id_is_read_or_the_reason_named() {
        let id = "ebb7344d-2b83-4d6c-9a55-0b1e6e0a1f10";
        assert_eq!(
            antrag_id(format!(r#"{{"antragId": "{id}", "x": 1}}"#).as_bytes()),
            Ok(id.parse().unwrap())
        );
        let reason = |b: &str| antrag_id(b.as_bytes()).unwrap_err();
        assert!(reason("not json").starts_with("not JSON"));
        assert_eq!(reason("[1]"), "not a JSON object");
        assert_eq!(reason(r#"{"id": 1}"#), "no antragId");
        assert_eq!(reason(r#"{"antragId": 7}"#), "antragId is not a string");
        assert_eq!(
            reason(r#"{"antragId": "Max Mustermann"}"#),
            "antragId is not a UUID"
        );
    }
}
