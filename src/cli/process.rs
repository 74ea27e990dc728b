//! `allegro-bridge process [--json] [--out DIR] PATH...` (contract §6).

use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Print one JSON object per application and line.
    #[arg(long)]
    pub json: bool,
    /// Where records are written (default: the configured outbox).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Files or directories of `.json` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(_config: Option<&Path>, _args: ProcessArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
