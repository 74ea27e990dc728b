//! Opening the store: the `[store]` settings and the connection pool of
//! either database.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::Store;

/// The database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/file.db` (embedded default) or `postgres://user:pw@host/db`.
    pub url: String,
    /// File holding the database URL (overrides `url` when set).
    pub url_file: Option<std::path::PathBuf>,
    /// Pool size.
    pub max_connections: u32,
    /// Seconds to wait for a connection from the pool or the server.
    pub connect_timeout_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://data/allegro-bridge.db".into(),
            url_file: None,
            max_connections: 4,
            connect_timeout_secs: 5,
        }
    }
}

impl Store {
    /// Connects (creating the SQLite file and its folder if needed) and runs
    /// the migrations.
    pub async fn connect(cfg: &StoreConfig) -> anyhow::Result<Store> {
        let store = Store::connect_lazy(cfg)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Builds the pool without touching the database yet.
    pub fn connect_lazy(cfg: &StoreConfig) -> anyhow::Result<Store> {
        let timeout = Duration::from_secs(cfg.connect_timeout_secs.max(1));
        if cfg.url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(&cfg.url)
                .context("store.url is not a valid SQLite URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // Deleted and overwritten content is zeroed, not left in
                // free pages (retention removes personal data).
                .pragma("secure_delete", "ON");
            if let Some(parent) = opts.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).with_context(|| {
                        format!("cannot create database folder {}", parent.display())
                    })?;
                }
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(cfg.max_connections)
                .acquire_timeout(timeout)
                .connect_lazy_with(opts);
            Ok(Store::Sqlite(pool))
        } else {
            let opts = PgConnectOptions::from_str(&cfg.url)
                .context("store.url is not a valid PostgreSQL URL")?
                .application_name("allegro-bridge");
            let pool = PgPoolOptions::new()
                .max_connections(cfg.max_connections)
                .acquire_timeout(timeout)
                .connect_lazy_with(opts);
            Ok(Store::Postgres(pool))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        dispatch!(self, Store, p => p.close().await)
    }
}
