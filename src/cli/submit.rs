//! `allegro-bridge submit FILE|DIR...`: publishes application files to the
//! intake queue, as the online portal would (contract §1).
//!
//! For smoke tests after an installation and for feeding test data: each file
//! (a directory stands for its `.json` files) is published to the configured
//! broker's intake queue through the default exchange, persistent, with
//! `content_type` `application/json` and the body's `antragId` as
//! `message_id`, and counts as submitted once the broker confirmed it. A file
//! that cannot be read, is not JSON or has no UUID `antragId` is reported by
//! name and skipped; the exit code is then 1. Only file names and antragIds
//! are printed, never content.
//!
//! With `broker.declare = true` (the default) the queues are declared first,
//! exactly as the daemon declares them, so `submit` works before the first
//! daemon start.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use uuid::Uuid;

use super::ops::load_settings;
use super::process::collect_files;

/// Arguments of `submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Application files, or directories of `.json` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// The `antragId` of an application body, or why the file cannot be sent.
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

/// `allegro-bridge submit`.
pub fn run(config: Option<&Path>, args: SubmitArgs) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let b = &settings.broker;
        let conn = Connection::connect(
            &b.url,
            ConnectionProperties::default().with_connection_name("allegro-bridge-submit".into()),
        )
        .await
        .context("connecting to the broker")?;
        if b.declare {
            allegro_daemon::topology::declare(&conn, b).await?;
        }
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;

        let mut failed = 0usize;
        let mut pending = Vec::new();
        for item in collect_files(&args.paths) {
            let path = match item {
                Ok(p) => p,
                Err((p, e)) => {
                    eprintln!("{}: {e}", p.display());
                    failed += 1;
                    continue;
                }
            };
            let body = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("{}: cannot read: {e}", path.display());
                    failed += 1;
                    continue;
                }
            };
            let id = match antrag_id(&body) {
                Ok(id) => id,
                Err(why) => {
                    eprintln!("{}: {why}; not submitted", path.display());
                    failed += 1;
                    continue;
                }
            };
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(id.to_string().into());
            // mandatory: a message no queue takes comes back instead of vanishing.
            let confirm = ch
                .basic_publish(
                    "".into(),
                    b.intake_queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &body,
                    props,
                )
                .await
                .with_context(|| format!("publishing {}", path.display()))?;
            pending.push((path, id, confirm));
        }

        let mut submitted = 0usize;
        for (path, id, confirm) in pending {
            let conf = confirm.await.with_context(|| {
                format!("waiting for the broker's confirm of {}", path.display())
            })?;
            if conf.is_ack() && conf.take_message().is_none() {
                println!("submitted {}  {id}", path.display());
                submitted += 1;
            } else {
                eprintln!(
                    "{}: the broker did not accept it (does queue `{}` exist?)",
                    path.display(),
                    b.intake_queue
                );
                failed += 1;
            }
        }
        let _ = ch.close(200, "OK".into()).await;
        let _ = conn.close(200, "OK".into()).await;
        eprintln!(
            "{submitted} file(s) submitted to `{}`, {failed} failed",
            b.intake_queue
        );
        Ok(if failed == 0 { 0 } else { 1 })
    })
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
