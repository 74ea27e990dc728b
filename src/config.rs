//! Typed settings: `config/allegro-bridge.toml` plus `ALLEGRO_BRIDGE__SECTION__KEY`
//! environment overrides.
//!
//! Every section has defaults, so a missing file means "embedded defaults".

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::PipelineConfig;

/// All settings of the bridge.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub pipeline: PipelineConfig,
    pub outbox: OutboxConfig,
}

/// Where import records are written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Directory for `<antragId>.xml` import records.
    pub dir: PathBuf,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            dir: "data/outbox".into(),
        }
    }
}

/// The config file used when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "config/allegro-bridge.toml";

impl Settings {
    /// Loads the file (if `path` is given it must exist; the default path may
    /// be absent), then applies `ALLEGRO_BRIDGE__SECTION__KEY` overrides.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder();
        match path {
            Some(p) => {
                builder = builder.add_source(config::File::from(p).required(true));
            }
            None => {
                builder = builder.add_source(
                    config::File::with_name(DEFAULT_CONFIG_PATH)
                        .format(config::FileFormat::Toml)
                        .required(false),
                );
            }
        }
        builder = builder.add_source(
            config::Environment::with_prefix("ALLEGRO_BRIDGE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let cfg = builder.build()?;
        let settings: Settings = cfg.try_deserialize()?;
        Ok(settings)
    }
}
