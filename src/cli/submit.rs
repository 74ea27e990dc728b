//! `allegro-bridge submit FILE|DIR...`: publishes application files to the
//! intake queue, as the online portal would (contract §1), through
//! `allegro_daemon::submit`.
//!
//! For smoke tests after an installation and for feeding test data: each file
//! (a directory stands for its `.json` files) is published with its
//! `antragId` as `message_id` and counts as submitted once the broker
//! confirmed it. A file that cannot be read, is not JSON or has no UUID
//! `antragId` is reported by name and skipped; the exit code is then 1. Only
//! file names and antragIds are printed, never content.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use uuid::Uuid;

use allegro_daemon::submit::{antrag_id, Pending, Submitter};

use super::ops::load_settings;
use super::process::collect_files;

/// Arguments of `submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Application files, or directories of `.json` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// `allegro-bridge submit`.
pub fn run(config: Option<&Path>, args: SubmitArgs) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let queue = &settings.broker.intake_queue;
        let submitter = Submitter::connect(&settings.broker).await?;
        let mut failed = 0usize;
        let mut pending = Vec::new();
        for path in collect_files(&args.paths) {
            match readable(path) {
                Ok((path, id, body)) => {
                    let confirm = submitter
                        .publish(id, &body)
                        .await
                        .with_context(|| format!("publishing {}", path.display()))?;
                    pending.push((path, id, confirm));
                }
                Err(problem) => {
                    eprintln!("{problem}");
                    failed += 1;
                }
            }
        }
        let submitted = confirmed(pending, queue, &mut failed).await?;
        submitter.close().await;
        eprintln!("{submitted} file(s) submitted to `{queue}`, {failed} failed");
        Ok(if failed == 0 { 0 } else { 1 })
    })
}

/// A file's path, antragId and body, or the line that says why it is not
/// submitted.
fn readable(item: Result<PathBuf, (PathBuf, String)>) -> Result<(PathBuf, Uuid, Vec<u8>), String> {
    let path = item.map_err(|(p, e)| format!("{}: {e}", p.display()))?;
    let body = std::fs::read(&path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let id = antrag_id(&body).map_err(|why| format!("{}: {why}; not submitted", path.display()))?;
    Ok((path, id, body))
}

/// Awaits the broker's confirms in the order published, printing each file
/// submitted and counting the refused ones in `failed`.
async fn confirmed(
    pending: Vec<(PathBuf, Uuid, Pending)>,
    queue: &str,
    failed: &mut usize,
) -> anyhow::Result<usize> {
    let mut submitted = 0usize;
    for (path, id, confirm) in pending {
        let accepted = confirm
            .accepted()
            .await
            .with_context(|| format!("waiting for the broker's confirm of {}", path.display()))?;
        if accepted {
            println!("submitted {}  {id}", path.display());
            submitted += 1;
        } else {
            eprintln!(
                "{}: the broker did not accept it (does queue `{queue}` exist?)",
                path.display()
            );
            *failed += 1;
        }
    }
    Ok(submitted)
}
