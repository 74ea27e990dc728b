//! `allegro-bridge mappings check|test`: lint and fixture tests for mapping developers.

use std::path::{Path, PathBuf};

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Lint the mapping files; exit 1 with file:line messages on problems.
    Check,
    /// Run the fixture cases and print a coverage report.
    Test {
        /// Fixture folder.
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
    },
}

pub fn run(_config: Option<&Path>, _cmd: MappingsCommand) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
