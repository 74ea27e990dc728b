//! Typed settings: `config/allegro-bridge.toml` plus `ALLEGRO_BRIDGE__SECTION__KEY`
//! environment overrides.
//!
//! Every section has defaults, so a missing file means "embedded defaults".
//! Secrets (the broker and database URLs carry passwords) may instead come
//! from files named by the `*_file` keys (e.g. systemd credentials or a
//! Kubernetes secret mount); [`Settings::resolve_secrets`] reads them and
//! [`Settings::masked_toml`] prints the effective settings with every
//! password replaced by `***`. A `*_file` path may start with
//! `${CREDENTIALS_DIRECTORY}` (or `$CREDENTIALS_DIRECTORY`), the folder in
//! which systemd hands a unit its `LoadCredential=` files, so the config file
//! can name them without knowing the unit's name.
//!
//! A setting that may be off is parsed into an `Option` here, at the edge:
//! an empty string in the file or the environment (`listen = ""`) is `None`
//! and is printed back as `""`, so old files keep working; an address that
//! does not parse is an error naming its key when the settings are loaded.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use allegro_core::pipeline::PipelineConfig;
pub use allegro_store::{RetentionConfig, StoreConfig};
use allegro_web::settings::{none_as_empty, socket_addr_or_empty, string_or_empty};
pub use allegro_web::WebConfig;

/// All settings of the bridge.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub pipeline: PipelineConfig,
    pub outbox: OutboxConfig,
    pub broker: BrokerConfig,
    pub store: StoreConfig,
    pub daemon: DaemonConfig,
    pub sink: SinkConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub retention: RetentionConfig,
    /// The caseworker workbench (`[web]`).
    pub web: WebConfig,
    /// The request letters of Mitwirkung (`[mitwirkung]`).
    pub mitwirkung: allegro_web::letters::MitwirkungSettings,
    /// The check API for the online form (`[api]`).
    pub api: allegro_web::api::ApiConfig,
    /// Receiving from FIT-Connect (`[fitconnect]`, off by default).
    pub fitconnect: crate::fitconnect::FitConnectConfig,
    /// What links must be (`[security]`).
    pub security: SecurityConfig,
}

/// `[security]`: what the links to the broker and the database must be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Refuse to start when `broker.url` or `store.url` leads to another
    /// host (not loopback) without TLS: the broker needs `amqps://`, the
    /// database `sslmode=verify-full`.
    pub require_tls: bool,
}

/// Prometheus metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to serve metrics on (e.g. `127.0.0.1:9464`); empty = off.
    #[serde(
        deserialize_with = "socket_addr_or_empty",
        serialize_with = "none_as_empty"
    )]
    pub listen: Option<SocketAddr>,
    /// Seconds between reads of the gauges that come from the database
    /// (`open_cases`, `oldest_open_case_age_seconds`).
    pub store_refresh_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: None,
            store_refresh_secs: 30,
        }
    }
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

/// The RabbitMQ side: connection, queue names and consumer limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// AMQP URL, e.g. `amqp://user:password@host:5672/%2f`.
    pub url: String,
    /// File holding the AMQP URL (overrides `url` when set).
    pub url_file: Option<PathBuf>,
    /// Intake queue (contract §1).
    pub intake_queue: String,
    /// Dead-letter queue (contract §2).
    pub dlq: String,
    /// `x-delivery-limit` of the intake queue: the safety net for a message
    /// that keeps crashing the process.
    pub delivery_limit: u32,
    /// Declare the queues at start (idempotent). Off when IT manages topology.
    pub declare: bool,
    /// Unacknowledged deliveries the broker may push ahead (basic.qos).
    pub prefetch: u16,
    /// Name shown in the RabbitMQ management UI.
    pub connection_name: String,
    /// PEM file of the CA (or CAs) that signed the broker's certificate, for
    /// `amqps://`; trusted besides the system's store. Unset: the system's
    /// store alone.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain) shown to the broker;
    /// with `client_key_file`. Needed for `?auth_mechanism=external`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub client_key_file: Option<PathBuf>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            url_file: None,
            intake_queue: "antraege.eingang".into(),
            dlq: "antraege.dlq".into(),
            delivery_limit: 10,
            declare: true,
            prefetch: 1000,
            connection_name: "allegro-bridge".into(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

/// How the daemon batches, retries and shuts down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Deliveries per database transaction and multiple-ack (group commit).
    pub batch_size: usize,
    /// Milliseconds to wait for a batch to fill before committing what is there.
    pub batch_linger_ms: u64,
    /// Threads running the pipeline in parallel within a batch.
    pub concurrency: usize,
    /// Seconds SIGTERM/SIGINT may take to finish in-flight work before exit.
    pub shutdown_deadline_secs: u64,
    /// First retry delay (ms) after a transient failure; doubles with jitter.
    pub retry_min_delay_ms: u64,
    /// Longest retry delay (ms).
    pub retry_max_delay_ms: u64,
    /// Records written per outbox dispatcher round.
    pub dispatch_batch: usize,
    /// Batches stored at the same time, each in its own transaction (acked
    /// in delivery order). PostgreSQL only; SQLite has one writer, so 1.
    pub commit_parallel: usize,
    /// Seconds between probes of the DLQ's length (metrics
    /// `dlq_messages`, `dlq_without_log_row`).
    pub dlq_probe_secs: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            batch_size: 250,
            batch_linger_ms: 20,
            concurrency: 2,
            shutdown_deadline_secs: 20,
            retry_min_delay_ms: 200,
            retry_max_delay_ms: 10_000,
            dispatch_batch: 500,
            commit_parallel: 2,
            dlq_probe_secs: 30,
        }
    }
}

/// Optional second sink: records also published to an AMQP exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// Exchange to publish each record to (with confirms); empty = off.
    #[serde(deserialize_with = "string_or_empty", serialize_with = "none_as_empty")]
    pub exchange: Option<String>,
    /// Routing key of the published records.
    pub routing_key: String,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter, e.g. `info` or `allegro_bridge=debug` (RUST_LOG wins).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// The config file used when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "config/allegro-bridge.toml";

impl Settings {
    /// Where released cases' records go under these settings: the outbox,
    /// or the daemon's dispatcher when records also go to the AMQP sink.
    pub fn record_delivery(&self) -> allegro_store::release::RecordDelivery {
        let exchange = self.sink.exchange.as_deref().unwrap_or_default();
        allegro_store::release::RecordDelivery::new(&self.outbox.dir, exchange)
    }

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

    /// Replaces `url` by the content of `url_file` where one is set, and
    /// expands `${CREDENTIALS_DIRECTORY}` in the TLS files' paths.
    pub fn resolve_secrets(&mut self) -> anyhow::Result<()> {
        if let Some(f) = &self.broker.url_file {
            self.broker.url = read_secret(f).context("broker.url_file")?;
        }
        if let Some(f) = &self.store.url_file {
            self.store.url = read_secret(f).context("store.url_file")?;
        }
        if let Some(f) = &self.web.oidc.client_secret_file {
            let secret = read_secret(f).context("web.oidc.client_secret_file")?;
            self.web.oidc.client_secret =
                Some(allegro_web::workbench::oidc::ClientSecretText(secret));
        }
        let b = &mut self.broker;
        let s = &mut self.store;
        for (key, path) in [
            ("broker.ca_file", &mut b.ca_file),
            ("broker.client_cert_file", &mut b.client_cert_file),
            ("broker.client_key_file", &mut b.client_key_file),
            ("store.ca_file", &mut s.ca_file),
            ("store.client_cert_file", &mut s.client_cert_file),
            ("store.client_key_file", &mut s.client_key_file),
        ] {
            if let Some(p) = path {
                *p = credential_path(p).context(key)?;
            }
        }
        Ok(())
    }

    /// The TLS problems alone (see [`Settings::validate`]): TLS keys that do
    /// not fit their URL, unreadable certificate files and, with
    /// `security.require_tls`, a plain link to another host. Every command
    /// that opens a link refuses to start on them.
    pub fn tls_problems(&self) -> Vec<String> {
        let mut problems = crate::broker::problems(&self.broker, self.security.require_tls);
        problems.extend(self.store.tls_problems(self.security.require_tls));
        problems
    }

    /// What the links are, one line each for the broker and the store
    /// (`config check`).
    pub fn links(&self) -> [String; 2] {
        let broker = match crate::broker::transport(&self.broker) {
            Ok(t) => t.describe(&self.broker),
            Err(e) => e,
        };
        [
            format!("broker: {broker}"),
            format!("store: {}", self.store.describe_transport()),
        ]
    }

    /// Checks the values that serde cannot; returns every problem found.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let b = &self.broker;
        if !(b.url.starts_with("amqp://") || b.url.starts_with("amqps://")) {
            problems.push("broker.url: must start with amqp:// or amqps://".into());
            problems.extend(self.store.tls_problems(self.security.require_tls));
        } else {
            problems.extend(self.tls_problems());
        }
        if b.intake_queue.is_empty() || b.dlq.is_empty() {
            problems.push("broker.intake_queue and broker.dlq must not be empty".into());
        }
        if b.intake_queue == b.dlq {
            problems.push("broker.dlq must differ from broker.intake_queue".into());
        }
        if b.prefetch == 0 {
            problems.push("broker.prefetch must be at least 1".into());
        }
        if b.delivery_limit == 0 {
            problems.push("broker.delivery_limit must be at least 1".into());
        }
        let s = &self.store;
        if !(s.url.starts_with("sqlite:")
            || s.url.starts_with("postgres://")
            || s.url.starts_with("postgresql://"))
        {
            problems
                .push("store.url: must start with sqlite:, postgres:// or postgresql://".into());
        }
        if s.max_connections == 0 {
            problems.push("store.max_connections must be at least 1".into());
        }
        let d = &self.daemon;
        if d.batch_size == 0
            || d.concurrency == 0
            || d.dispatch_batch == 0
            || d.commit_parallel == 0
        {
            problems.push(
                "daemon.batch_size, daemon.concurrency, daemon.dispatch_batch and daemon.commit_parallel must be at least 1"
                    .into(),
            );
        }
        if d.batch_size > 3000 {
            // SQLite binds at most 32,766 parameters per statement (9 per row).
            problems.push("daemon.batch_size must be at most 3000".into());
        }
        if d.retry_min_delay_ms == 0 || d.retry_min_delay_ms > d.retry_max_delay_ms {
            problems.push("daemon.retry_min_delay_ms must be in 1..=retry_max_delay_ms".into());
        }
        if self.sink.exchange.is_some() && self.sink.routing_key.is_empty() {
            // An empty routing key is legal AMQP, but almost always a mistake.
            problems.push("sink.routing_key must be set when sink.exchange is".into());
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            problems.push("log.format must be `text` or `json`".into());
        }
        if self.metrics.store_refresh_secs == 0 {
            problems.push("metrics.store_refresh_secs must be at least 1".into());
        }
        problems.extend(self.retention.validate());
        problems.extend(self.web.validate());
        problems.extend(self.mitwirkung.validate());
        problems.extend(self.api.validate());
        problems.extend(self.fitconnect.validate());
        if self.pipeline.max_body_bytes == 0 {
            problems.push("pipeline.max_body_bytes must be at least 1".into());
        }
        problems
    }

    /// The effective settings as TOML with passwords in URLs replaced by `***`.
    pub fn masked_toml(&self) -> String {
        let mut s = self.clone();
        s.broker.url = mask_url(&s.broker.url);
        s.store.url = mask_url(&s.store.url);
        toml::to_string_pretty(&s).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

/// Reads a secret file; surrounding whitespace (a trailing newline) is dropped.
/// A leading `${CREDENTIALS_DIRECTORY}` is expanded first.
pub(crate) fn read_secret(path: &Path) -> anyhow::Result<String> {
    let path = credential_path(path)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read secret file {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// `path` with a leading `${CREDENTIALS_DIRECTORY}` expanded from the
/// environment (see [`expand_credentials_dir`]).
pub(crate) fn credential_path(path: &Path) -> anyhow::Result<PathBuf> {
    expand_credentials_dir(path, std::env::var_os(CREDENTIALS_DIRECTORY).as_deref())
}

/// The environment variable systemd sets for a unit with `LoadCredential=`.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Replaces a leading `${CREDENTIALS_DIRECTORY}` or `$CREDENTIALS_DIRECTORY`
/// component of `path` by `creds` (the variable's value); other paths are
/// returned unchanged. Naming the variable while it is unset (or empty) is an
/// error, not a silent relative path.
pub fn expand_credentials_dir(path: &Path, creds: Option<&OsStr>) -> anyhow::Result<PathBuf> {
    let mut parts = path.components();
    let first = parts.next().map(|c| c.as_os_str());
    let named = first.is_some_and(|f| {
        f == OsStr::new("${CREDENTIALS_DIRECTORY}") || f == OsStr::new("$CREDENTIALS_DIRECTORY")
    });
    if !named {
        return Ok(path.to_path_buf());
    }
    match creds.filter(|c| !c.is_empty()) {
        Some(dir) => Ok(Path::new(dir).join(parts.as_path())),
        None => anyhow::bail!(
            "{} names $CREDENTIALS_DIRECTORY, which is not set (it is set by systemd for a \
             unit with LoadCredential=; outside the unit, set it to the folder holding the file)",
            path.display()
        ),
    }
}

/// Replaces the password of `scheme://user:password@host...` by `***`.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let masked = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => userinfo.to_string(),
    };
    format!("{}{}{}", &url[..scheme_end + 3], masked, &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_only() {
        assert_eq!(
            mask_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(
            mask_url("postgres://u:p%40ss@db/x?sslmode=require"),
            "postgres://u:***@db/x?sslmode=require"
        );
        assert_eq!(mask_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(mask_url("sqlite://data/a.db"), "sqlite://data/a.db");
    }

    #[test]
    fn defaults_are_valid_and_masked() {
        let s = Settings::default();
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        let printed = s.masked_toml();
        assert!(printed.contains("guest:***@"));
        assert!(!printed.contains("guest:guest"));
    }

    #[test]
    fn shipped_config_documents_every_key_with_its_default() {
        // The shipped file is at the workspace root, two levels above this crate.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let path = root.join(DEFAULT_CONFIG_PATH);
        let text = std::fs::read_to_string(&path).unwrap();
        let file: Settings = toml::from_str(&text).unwrap();
        assert_eq!(file.masked_toml(), Settings::default().masked_toml());
        assert_documents_every_key(&text, DEFAULT_CONFIG_PATH);
    }

    /// Every section and key appears in `text`, set or commented out.
    fn assert_documents_every_key(text: &str, name: &str) {
        let mut all = Settings::default();
        all.broker.url_file = Some("x".into());
        all.store.url_file = Some("x".into());
        for f in [
            &mut all.broker.ca_file,
            &mut all.broker.client_cert_file,
            &mut all.broker.client_key_file,
            &mut all.store.ca_file,
            &mut all.store.client_cert_file,
            &mut all.store.client_key_file,
        ] {
            *f = Some("x".into());
        }
        all.web.oidc.client_secret_file = Some("x".into());
        let defaults: toml::Table = toml::from_str(&toml::to_string(&all).unwrap()).unwrap();
        for (section, keys) in defaults {
            assert_section_documented(text, name, &section, keys.as_table().unwrap());
        }
    }

    /// One section's keys, and those of the tables nested in it
    /// (`[web.oidc]`), appear in `text` within that section (from its
    /// header to the next one).
    fn assert_section_documented(text: &str, name: &str, section: &str, keys: &toml::Table) {
        let header = format!("\n[{section}]\n");
        let start = text
            .find(&header)
            .unwrap_or_else(|| panic!("section [{section}] missing in {name}"));
        let body = &text[start + header.len() - 1..];
        let body = &body[..body.find("\n[").unwrap_or(body.len())];
        for (key, value) in keys {
            if let Some(table) = value.as_table() {
                assert_section_documented(text, name, &format!("{section}.{key}"), table);
                continue;
            }
            assert!(
                body.contains(&format!("\n{key} = "))
                    || body.contains(&format!("# {key} = "))
                    || body.contains(&format!("[[{section}.{key}]]")),
                "{section}.{key} is not documented in section [{section}] of {name}"
            );
        }
    }

    #[test]
    fn credentials_directory_is_expanded_in_secret_paths() {
        let creds = Some(OsStr::new("/run/credentials/allegro-bridge.service"));
        for p in [
            "${CREDENTIALS_DIRECTORY}/amqp-url",
            "$CREDENTIALS_DIRECTORY/amqp-url",
        ] {
            assert_eq!(
                expand_credentials_dir(Path::new(p), creds).unwrap(),
                Path::new("/run/credentials/allegro-bridge.service/amqp-url")
            );
        }
        // Anything else is left alone, the variable set or not.
        for p in [
            "/etc/x/amqp-url",
            "rel/${CREDENTIALS_DIRECTORY}/x",
            "${OTHER}/x",
        ] {
            assert_eq!(
                expand_credentials_dir(Path::new(p), creds).unwrap(),
                Path::new(p)
            );
            assert_eq!(
                expand_credentials_dir(Path::new(p), None).unwrap(),
                Path::new(p)
            );
        }
        for unset in [None, Some(OsStr::new(""))] {
            let e = expand_credentials_dir(Path::new("${CREDENTIALS_DIRECTORY}/db-url"), unset)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("CREDENTIALS_DIRECTORY") && e.contains("not set"),
                "{e}"
            );
        }
    }

    /// `packaging/allegro-bridge.toml` (the Debian package's
    /// /etc/allegro-bridge/allegro-bridge.toml) is the shipped file with the
    /// package's paths and credential files: every other key at its default.
    #[test]
    fn packaged_config_differs_from_the_defaults_in_paths_and_secrets_only() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("packaging/allegro-bridge.toml")).unwrap();
        let packaged: Settings = toml::from_str(&text).unwrap();
        let mut expected = Settings::default();
        expected.pipeline.mappings_dir = "/usr/share/allegro-bridge/mappings".into();
        expected.pipeline.schemas_dir = "/usr/share/allegro-bridge/schemas".into();
        expected.outbox.dir = "/var/lib/allegro-bridge/outbox".into();
        expected.broker.url_file = Some("${CREDENTIALS_DIRECTORY}/amqp-url".into());
        expected.store.url = "sqlite:///var/lib/allegro-bridge/allegro-bridge.db".into();
        expected.store.url_file = Some("${CREDENTIALS_DIRECTORY}/db-url".into());
        expected.web.assets_dir = "/usr/share/allegro-bridge/web".into();
        expected.api.clients_file = "/etc/allegro-bridge/api-clients.toml".into();
        expected.security.require_tls = true;
        assert_eq!(packaged.masked_toml(), expected.masked_toml());
        assert!(packaged.validate().is_empty(), "{:?}", packaged.validate());
        assert_documents_every_key(&text, "packaging/allegro-bridge.toml");
    }

    #[test]
    fn empty_means_off_and_an_address_must_parse() {
        let off: Settings =
            toml::from_str("[metrics]\nlisten = \"\"\n[sink]\nexchange = \"\"").unwrap();
        assert_eq!(off.metrics.listen, None);
        assert_eq!(off.sink.exchange, None);
        let on: Settings = toml::from_str(
            "[metrics]\nlisten = \"127.0.0.1:9464\"\n[sink]\nexchange = \"records\"\nrouting_key = \"r\"",
        )
        .unwrap();
        assert_eq!(on.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(on.sink.exchange.as_deref(), Some("records"));
        assert!(on.validate().is_empty(), "{:?}", on.validate());
        // Printed back as the file writes them.
        let printed = on.masked_toml();
        assert!(printed.contains("listen = \"127.0.0.1:9464\""), "{printed}");
        assert!(off.masked_toml().contains("exchange = \"\""));
        let bad = toml::from_str::<Settings>("[metrics]\nlisten = \"localhost\"")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("listen") && bad.contains("host:port"), "{bad}");
        // [web] listen the same way.
        let web: Settings = toml::from_str("[web]\nlisten = \"127.0.0.1:8080\"").unwrap();
        assert_eq!(web.web.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(off.web.listen, None);
        assert!(
            off.masked_toml().contains("[web]\nlisten = \"\""),
            "{}",
            off.masked_toml()
        );
        let bad = toml::from_str::<Settings>("[web]\nlisten = \"8080\"")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("listen") && bad.contains("host:port"), "{bad}");
    }

    /// The environment, as systemd or a test sets it: the error names the key.
    #[test]
    fn a_bad_listen_address_from_the_environment_names_its_key() {
        let parse = |listen: &str| {
            config::Config::builder()
                .add_source(
                    config::Environment::with_prefix("ALLEGRO_BRIDGE")
                        .prefix_separator("__")
                        .separator("__")
                        .try_parsing(true)
                        .source(Some(
                            [(
                                "ALLEGRO_BRIDGE__METRICS__LISTEN".to_string(),
                                listen.to_string(),
                            )]
                            .into(),
                        )),
                )
                .build()
                .unwrap()
                .try_deserialize::<Settings>()
        };
        let e = parse("127.0.0.1:99999").unwrap_err().to_string();
        assert!(e.contains("metrics.listen"), "{e}");
        assert_eq!(
            parse("127.0.0.1:9464").unwrap().metrics.listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(parse("").unwrap().metrics.listen, None);
    }

    #[test]
    fn secret_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("url");
        std::fs::write(&f, "postgres://a:b@h/db\n").unwrap();
        let mut s = Settings::default();
        s.store.url_file = Some(f);
        s.resolve_secrets().unwrap();
        assert_eq!(s.store.url, "postgres://a:b@h/db");
    }
}
