//! Opening a connection to RabbitMQ from `[broker]`: the one place that
//! calls lapin's connect, for the consumer, the dispatcher's sink, the DLQ
//! probe, `dlq`, `submit`, the FIT-Connect subscriber, `config check` and the
//! tests.
//!
//! `amqp://` is plain AMQP; `amqps://` is TLS by rustls (aws-lc-rs), the
//! broker's certificate verified against the system's store plus
//! `broker.ca_file`, its host name against `broker.url`'s host. A client
//! certificate (`client_cert_file` + `client_key_file`) is shown when set;
//! `?auth_mechanism=external` in the URL logs in by it (RabbitMQ's
//! `rabbitmq_auth_mechanism_ssl`). [`transport`] says what a URL is, for
//! `security.require_tls` and `config check`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use lapin::{Connection, ConnectionProperties};

use crate::config::BrokerConfig;

/// What `broker.url` asks for, as far as the link is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerTransport {
    /// Host and port, for messages (never the user or password).
    pub host: String,
    pub port: u16,
    /// `amqps://`.
    pub tls: bool,
    /// The host is loopback (127.0.0.0/8, ::1, `localhost`).
    pub loopback: bool,
    /// `?auth_mechanism=external`: the client certificate is the login.
    pub external: bool,
}

impl BrokerTransport {
    /// One line for `config check`.
    pub fn describe(&self, cfg: &BrokerConfig) -> String {
        if self.tls {
            format!(
                "encrypted (TLS to {}:{}, server certificate checked against {}, client certificate {}{})",
                self.host,
                self.port,
                ca_text(cfg.ca_file.as_deref()),
                if cfg.client_cert_file.is_some() { "yes" } else { "no" },
                if self.external { ", login EXTERNAL" } else { "" }
            )
        } else if self.loopback {
            format!("plain (amqp:// to {}:{}, loopback)", self.host, self.port)
        } else {
            format!(
                "plain (amqp:// to {}:{}, NOT loopback: not encrypted)",
                self.host, self.port
            )
        }
    }
}

impl BrokerTransport {
    /// Why the host cannot be used: an IPv6 literal, which
    /// amq-protocol-uri turns into `localhost`.
    fn unsupported_host(&self) -> Option<String> {
        self.host.starts_with('[').then(|| {
            format!(
                "broker.url: an IPv6 address as host ({}) is not supported: the AMQP client \
                 would connect to localhost instead; use a host name",
                self.host
            )
        })
    }
}

fn ca_text(ca: Option<&Path>) -> String {
    match ca {
        Some(p) => format!("CA file {} and the system store", p.display()),
        None => "the system store".into(),
    }
}

/// Parses `broker.url` (without connecting).
pub fn transport(cfg: &BrokerConfig) -> Result<BrokerTransport, String> {
    let uri = AMQPUri::from_str(&cfg.url).map_err(|e| format!("broker.url: {e}"))?;
    // Not `uri.authority.host`: amq-protocol-uri takes it from
    // `Url::domain`, which is None for an IPv6 literal, and then says
    // `localhost`; whether a link is loopback is decided on what was written.
    let host = url_host(&cfg.url);
    Ok(BrokerTransport {
        loopback: allegro_store::is_loopback(&host),
        host,
        port: uri.authority.port,
        tls: uri.scheme == AMQPScheme::AMQPS,
        external: uri.query.auth_mechanism == Some(SASLMechanism::External),
    })
}

/// The host part of `scheme://user:password@host:port/...` as written
/// (an IPv6 literal with its brackets).
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port
            .find(']')
            .map_or(host_port, |end| &host_port[..=end])
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        "localhost".into()
    } else {
        host.to_string()
    }
}

/// The problems of `[broker]`'s TLS keys, and with `require_tls` of a plain
/// link to another host (see `Settings::validate`).
pub fn problems(cfg: &BrokerConfig, require_tls: bool) -> Vec<String> {
    let mut out = Vec::new();
    let t = match transport(cfg) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    out.extend(t.unsupported_host());
    let files = [
        ("broker.ca_file", &cfg.ca_file),
        ("broker.client_cert_file", &cfg.client_cert_file),
        ("broker.client_key_file", &cfg.client_key_file),
    ];
    if !t.tls {
        for (key, value) in &files {
            if value.is_some() {
                out.push(format!(
                    "{key} is set but broker.url is plain amqp://: use amqps://"
                ));
            }
        }
        if require_tls && !t.loopback {
            out.push(format!(
                "broker.url is plain amqp:// to {} (not loopback) but security.require_tls is on: use amqps://",
                t.host
            ));
        }
    }
    if t.external && cfg.client_cert_file.is_none() {
        out.push(
            "broker.url asks for auth_mechanism=external, which needs broker.client_cert_file and broker.client_key_file"
                .into(),
        );
    }
    out.extend(allegro_store::tls_file_problems("broker", &files));
    out
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS file of `[broker]` cannot be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    File {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `broker.url` does not parse.
    #[error("{0}")]
    Url(String),
    /// The broker could not be reached, the TLS handshake or the login failed.
    #[error("{message}")]
    Broker {
        message: String,
        #[source]
        source: lapin::Error,
    },
}

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, ConnectError> {
    let err = |source| ConnectError::File {
        key,
        path: path.to_path_buf(),
        source,
    };
    // `${CREDENTIALS_DIRECTORY}` was expanded with the other secrets
    // (`Settings::resolve_secrets`).
    std::fs::read(path).map_err(err)
}

/// The TLS settings for lapin: the CA file's PEM as extra roots and the
/// client certificate and key.
fn tls_config(cfg: &BrokerConfig) -> Result<OwnedTLSConfig, ConnectError> {
    let cert_chain = match &cfg.ca_file {
        Some(p) => Some(
            String::from_utf8(read_file("broker.ca_file", p)?).map_err(|_| ConnectError::File {
                key: "broker.ca_file",
                path: p.clone(),
                source: std::io::Error::other("not a PEM text file"),
            })?,
        ),
        None => None,
    };
    let identity = match (&cfg.client_cert_file, &cfg.client_key_file) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read_file("broker.client_cert_file", cert)?,
            key: read_file("broker.client_key_file", key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// Opens a connection to the broker of `cfg`, named `name` in the
/// management UI. Errors say where to and, for a refused certificate,
/// which key to check; never the password.
pub async fn connect(cfg: &BrokerConfig, name: &str) -> Result<Connection, ConnectError> {
    let t = transport(cfg).map_err(ConnectError::Url)?;
    if let Some(refused) = t.unsupported_host() {
        return Err(ConnectError::Url(refused));
    }
    let tls = if t.tls {
        tls_config(cfg)?
    } else {
        OwnedTLSConfig::default()
    };
    let runtime = lapin::runtime::default_runtime().map_err(|source| ConnectError::Broker {
        message: format!("cannot start lapin's runtime: {source}"),
        source,
    })?;
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect_with_config(&cfg.url, props, tls, runtime)
        .await
        .map_err(|source| ConnectError::Broker {
            message: explain(cfg, &t, &source),
            source,
        })
}

/// The error of a failed connect, with what to check.
fn explain(cfg: &BrokerConfig, t: &BrokerTransport, e: &lapin::Error) -> String {
    let text = e.to_string();
    let mut msg = format!(
        "cannot connect to the broker at {}:{}{}: {text}",
        t.host,
        t.port,
        if t.tls { " over TLS" } else { "" }
    );
    let lower = text.to_lowercase();
    if t.tls && lower.contains("invalid peer certificate") {
        msg.push_str(&format!(
            " (the broker's certificate failed verification: check broker.ca_file, now {}, and that the certificate names {})",
            match &cfg.ca_file {
                Some(p) => p.display().to_string(),
                None => "unset: the system store only".into(),
            },
            t.host
        ));
    } else if t.tls && lower.contains("certificate") {
        msg.push_str(
            " (the broker did not accept the client certificate: check broker.client_cert_file and broker.client_key_file)",
        );
    } else if !t.tls && t.port == 5671 {
        msg.push_str(" (port 5671 is RabbitMQ's TLS port: use amqps://)");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> BrokerConfig {
        BrokerConfig {
            url: url.into(),
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn plain_links_to_other_hosts_are_refused_under_require_tls() {
        for url in [
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "amqp://guest:guest@127.8.9.10:5672/%2f",
            "amqp://guest:guest@localhost:5672/%2f",
            "amqps://u:p@mq.example:5671/%2f",
        ] {
            assert!(problems(&cfg(url), true).is_empty(), "{url}");
        }
        for url in [
            "amqp://guest:guest@192.0.2.1:5672/%2f",
            "amqp://u:p@mq.example/%2f",
        ] {
            let p = problems(&cfg(url), true);
            assert_eq!(p.len(), 1, "{url}: {p:?}");
            assert!(
                p[0].starts_with("broker.url is plain amqp://")
                    && p[0].contains("security.require_tls")
                    && !p[0].contains(":p@"),
                "{p:?}"
            );
            assert!(problems(&cfg(url), false).is_empty(), "{url}");
        }
    }

    /// amq-protocol-uri takes the host from `Url::domain`, which is None
    /// for an IPv6 literal, and then connects to `localhost`: refused.
    #[test]
    fn ipv6_literal_hosts_are_refused() {
        let upstream = AMQPUri::from_str("amqp://u:p@[2001:db8::1]:5672/%2f").unwrap();
        assert_eq!(upstream.authority.host, "localhost");
        for url in [
            "amqp://u:p@[2001:db8::1]:5672/%2f",
            "amqps://u:p@[::1]:5671/%2f",
        ] {
            let t = transport(&cfg(url)).unwrap();
            assert!(t.host.starts_with('['), "{t:?}");
            let p = problems(&cfg(url), false);
            assert!(
                p.len() == 1 && p[0].contains("IPv6 address as host") && !p[0].contains(":p@"),
                "{url}: {p:?}"
            );
        }
        assert!(
            !transport(&cfg("amqp://u:p@[2001:db8::1]:5672/%2f"))
                .unwrap()
                .loopback
        );
    }

    #[test]
    fn tls_keys_need_amqps_and_external_needs_a_client_certificate() {
        let mut c = cfg("amqp://guest:guest@127.0.0.1:5672/%2f");
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let p = problems(&c, false);
        assert!(
            p.iter()
                .any(|p| p.starts_with("broker.ca_file is set but broker.url is plain")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("broker.ca_file: cannot read /nonexistent/ca.pem")),
            "{p:?}"
        );
        let c = cfg("amqps://mq.example:5671/%2f?auth_mechanism=external");
        let t = transport(&c).unwrap();
        assert!(t.tls && t.external && !t.loopback);
        let p = problems(&c, true);
        assert!(
            p.len() == 1 && p[0].contains("auth_mechanism=external"),
            "{p:?}"
        );
        assert!(t
            .describe(&c)
            .starts_with("encrypted (TLS to mq.example:5671"));
        assert!(transport(&cfg("amqp://127.0.0.1/%2f"))
            .unwrap()
            .describe(&c)
            .starts_with("plain (amqp:// to 127.0.0.1:5672, loopback)"));
    }
}
