//! `allegro-bridge purge [--dry-run]`: removes the personal data whose
//! retention period (`[retention]`) is over, the same purge the daemon runs
//! every `retention.interval_minutes` (see `allegro_store::retention`).
//! Prints one line per kind with its count; nothing personal.

use std::path::Path;

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::Args;

use allegro_core::pipeline::Pipeline;
use allegro_store::retention::Kind;
use allegro_store::Store;

use super::ops::{init_logging, load_settings};

/// Arguments of `purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Count what is due, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `allegro-bridge purge`.
pub fn run(config: Option<&Path>, args: PurgeArgs) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    init_logging(&settings);
    let problems = settings.retention.validate();
    if !problems.is_empty() {
        bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    // The schemas decide which finding pointers are form fields (kept).
    let pipeline = Pipeline::load(&settings.pipeline).context("loading mappings")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let store = Store::connect(&settings.store).await?;
        let report = allegro_daemon::retention::purge(
            &store,
            &settings,
            &pipeline,
            Utc::now(),
            args.dry_run,
        )
        .await;
        store.close().await;
        anyhow::Ok(report?)
    })?;
    let verb = if args.dry_run {
        "would purge"
    } else {
        "purged"
    };
    for kind in Kind::ALL {
        println!("{:<22} {}", kind.as_str(), report.get(kind));
    }
    eprintln!("{verb} {} row(s)", report.total());
    if args.dry_run {
        eprintln!("(dry run: nothing was changed)");
    }
    Ok(0)
}
