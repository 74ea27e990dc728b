//! How a setting that may be off is read from the config file and the
//! environment: an empty string is off (`None`), anything else must parse,
//! and `None` is written back as `""`. Shared by `[web]` here and the
//! daemon's `[metrics]` and `[sink]`, so "empty means off" is decided once.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serializer};

/// An optional `host:port`: empty is `None`, anything else must parse.
pub fn socket_addr_or_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}` is not host:port with an IP address (e.g. 127.0.0.1:9464); \
             empty turns it off"
        ))
    })
}

/// An optional name: empty is `None`.
pub fn string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    Ok((!text.is_empty()).then_some(text))
}

/// Writes `None` as `""`, the way the file turns a setting off.
pub fn none_as_empty<T: std::fmt::Display, S: Serializer>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_str(""),
    }
}
