//! Opening the store: the `[store]` settings and the connection pool of
//! either database; TLS to PostgreSQL (rustls with aws-lc-rs): the URL's
//! `sslmode`, `ca_file` and the client certificate, and [`StoreConfig::transport`],
//! what a URL asks for (for `security.require_tls` and `config check`).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
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
    /// PostgreSQL: PEM file of the CA that signed the server's certificate
    /// (with `sslmode=verify-full` in `url`); trusted besides the roots
    /// compiled in (Mozilla's, via webpki-roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// PostgreSQL: PEM file of a client certificate; with `client_key_file`.
    pub client_cert_file: Option<std::path::PathBuf>,
    /// PostgreSQL: PEM file of the client certificate's private key.
    pub client_key_file: Option<std::path::PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://data/allegro-bridge.db".into(),
            url_file: None,
            max_connections: 4,
            connect_timeout_secs: 5,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
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
            let mut opts = PgConnectOptions::from_str(&cfg.url)
                .context("store.url is not a valid PostgreSQL URL")?
                .application_name("allegro-bridge");
            if let Some(ca) = &cfg.ca_file {
                opts = opts.ssl_root_cert(ca);
            }
            if let (Some(cert), Some(key)) = (&cfg.client_cert_file, &cfg.client_key_file) {
                opts = opts.ssl_client_cert(cert).ssl_client_key(key);
            }
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

/// Whether `host` is this machine: 127.0.0.0/8, `::1` (with or without
/// brackets), `localhost`, or a Unix socket folder (a path).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.starts_with('/') {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The TLS files of one section (`broker`, `store`), as `[(key, path);
/// 3]` in the order CA file, client certificate, client key: the
/// certificate and its key set together, and every file set readable.
/// Shared by the store's and the broker's checks.
pub fn tls_file_problems(
    section: &str,
    files: &[(&str, &Option<std::path::PathBuf>); 3],
) -> Vec<String> {
    let mut out = Vec::new();
    let [_, (_, cert), (_, key)] = files;
    if cert.is_some() != key.is_some() {
        out.push(format!(
            "{section}.client_cert_file and {section}.client_key_file must be set together"
        ));
    }
    for (key, value) in files {
        if let Some(path) = value {
            if let Err(e) = std::fs::File::open(path) {
                out.push(format!("{key}: cannot read {}: {e}", path.display()));
            }
        }
    }
    out
}

/// What `store.url` asks for, as far as the link is concerned.
#[derive(Debug, Clone)]
pub enum StoreTransport {
    /// The SQLite file: no link.
    Sqlite,
    /// PostgreSQL at `host` (a Unix socket folder or a host name) with the
    /// URL's (or `PGSSLMODE`'s) `sslmode`.
    Postgres {
        host: String,
        port: u16,
        loopback: bool,
        sslmode: PgSslMode,
    },
}

impl StoreConfig {
    /// Parses `url` (without connecting).
    pub fn transport(&self) -> anyhow::Result<StoreTransport> {
        if self.url.starts_with("sqlite:") {
            return Ok(StoreTransport::Sqlite);
        }
        let opts = PgConnectOptions::from_str(&self.url)
            .context("store.url is not a valid PostgreSQL URL")?;
        let host = match opts.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => opts.get_host().to_string(),
        };
        Ok(StoreTransport::Postgres {
            loopback: is_loopback(&host),
            host,
            port: opts.get_port(),
            sslmode: opts.get_ssl_mode(),
        })
    }

    /// The problems of the TLS keys, and with `require_tls` of a link to
    /// another host that is not `sslmode=verify-full`.
    pub fn tls_problems(&self, require_tls: bool) -> Vec<String> {
        let mut out = Vec::new();
        let t = match self.transport() {
            Ok(t) => t,
            Err(e) => return vec![format!("{e:#}")],
        };
        let files = [
            ("store.ca_file", &self.ca_file),
            ("store.client_cert_file", &self.client_cert_file),
            ("store.client_key_file", &self.client_key_file),
        ];
        match t {
            StoreTransport::Sqlite => {
                for (key, value) in &files {
                    if value.is_some() {
                        out.push(format!("{key} is set but store.url is SQLite (no link)"));
                    }
                }
            }
            StoreTransport::Postgres {
                host,
                loopback,
                sslmode,
                ..
            } => {
                if self.ca_file.is_some()
                    && !matches!(sslmode, PgSslMode::VerifyFull | PgSslMode::VerifyCa)
                {
                    out.push(format!(
                        "store.ca_file is set but store.url has sslmode={}: add sslmode=verify-full",
                        sslmode_name(sslmode)
                    ));
                }
                if require_tls && !loopback && !matches!(sslmode, PgSslMode::VerifyFull) {
                    out.push(format!(
                        "store.url connects to {host} (not loopback) with sslmode={} but security.require_tls is on: \
                         add sslmode=verify-full (require and verify-ca do not check the host name)",
                        sslmode_name(sslmode)
                    ));
                }
            }
        }
        out.extend(tls_file_problems("store", &files));
        out
    }

    /// One line for `config check`: what the link to the database is.
    pub fn describe_transport(&self) -> String {
        match self.transport() {
            Err(e) => format!("{e:#}"),
            Ok(StoreTransport::Sqlite) => "SQLite file (no link)".into(),
            Ok(StoreTransport::Postgres {
                host,
                port,
                loopback,
                sslmode,
            }) => {
                let place = if host.starts_with('/') {
                    format!("Unix socket in {host}")
                } else {
                    format!("{host}:{port}")
                };
                let ca = match &self.ca_file {
                    Some(p) => format!("CA file {} and the compiled-in roots", p.display()),
                    None => "the compiled-in roots (webpki-roots)".into(),
                };
                let client = if self.client_cert_file.is_some() {
                    "yes"
                } else {
                    "no"
                };
                match sslmode {
                    PgSslMode::VerifyFull => format!(
                        "encrypted (TLS to {place}, sslmode=verify-full, server certificate checked against {ca}, client certificate {client})"
                    ),
                    PgSslMode::VerifyCa | PgSslMode::Require => format!(
                        "encrypted (TLS to {place}, sslmode={}: the host name is not checked, client certificate {client})",
                        sslmode_name(sslmode)
                    ),
                    _ => format!(
                        "{} (to {place}, sslmode={}: TLS only if the server offers it, its certificate not checked{})",
                        if loopback { "plain or unverified TLS" } else { "NOT reliably encrypted" },
                        sslmode_name(sslmode),
                        if loopback { ", loopback" } else { "" }
                    ),
                }
            }
        }
    }

    /// `error` (from connecting or migrating) with what to check when it is
    /// a TLS failure: the key and the host the certificate must name.
    pub fn explain_error(&self, error: &anyhow::Error) -> String {
        let text = format!("{error:#}");
        let lower = text.to_lowercase();
        let tls = error
            .chain()
            .any(|e| matches!(e.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Tls(_))))
            || lower.contains("tls")
            || lower.contains("certificate");
        if !tls {
            return text;
        }
        let host = match self.transport() {
            Ok(StoreTransport::Postgres { host, .. }) => host,
            _ => String::new(),
        };
        if lower.contains("invalid peer certificate") {
            format!(
                "{text} (the database server's certificate failed verification: check store.ca_file, now {}, and that the certificate names {host})",
                self.ca_file
                    .as_ref()
                    .map_or("unset: the compiled-in roots only".into(), |p| p.display().to_string())
            )
        } else {
            format!("{text} (TLS to the database failed: check store.ca_file, store.client_cert_file and store.client_key_file)")
        }
    }
}

fn sslmode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> StoreConfig {
        StoreConfig {
            url: url.into(),
            ..StoreConfig::default()
        }
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "localhost",
            "LOCALHOST",
            "::1",
            "[::1]",
            "/var/run/postgresql",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "192.0.2.1",
            "db.example",
            "[2001:db8::1]",
            "10.0.0.1",
            "localhost.example",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn require_tls_asks_verify_full_of_other_hosts() {
        for url in [
            "sqlite://data/x.db",
            "postgres://u:p@127.0.0.1:5432/db",
            "postgres://u:p@localhost/db?sslmode=disable",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgres://u:p@db.example/db?sslmode=verify-full",
        ] {
            assert!(
                cfg(url).tls_problems(true).is_empty(),
                "{url}: {:?}",
                cfg(url).tls_problems(true)
            );
        }
        for (url, mode) in [
            ("postgres://u:p@192.0.2.1:5432/db", "prefer"),
            ("postgres://u:p@db.example/db?sslmode=require", "require"),
            (
                "postgres://u:p@db.example/db?sslmode=verify-ca",
                "verify-ca",
            ),
        ] {
            let p = cfg(url).tls_problems(true);
            assert_eq!(p.len(), 1, "{url}: {p:?}");
            assert!(
                p[0].starts_with("store.url connects to")
                    && p[0].contains(&format!("sslmode={mode}"))
                    && p[0].contains("security.require_tls")
                    && !p[0].contains(":p@"),
                "{p:?}"
            );
            assert!(cfg(url).tls_problems(false).is_empty());
        }
        let mut c = cfg("postgres://u@db.example/db");
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let p = c.tls_problems(false);
        assert!(
            p.iter().any(|p| p.contains("add sslmode=verify-full")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("store.ca_file: cannot read")),
            "{p:?}"
        );
        assert!(
            c.describe_transport().starts_with("NOT reliably encrypted"),
            "{}",
            c.describe_transport()
        );
    }
}
