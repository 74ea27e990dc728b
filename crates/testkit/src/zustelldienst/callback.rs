//! The stand-in's callbacks: announcing the submissions waiting for a
//! destination to a subscriber's callback URL, as the Zustelldienst does
//! once they are submitted. `callback-timestamp` is the time given,
//! `callback-authentication` the HMAC-SHA512 (base64) with the secret over
//! `timestamp.body`; a test gives another secret or an old time to see the
//! subscriber refuse it.

use allegro_fitconnect::callback::{CallbackKey, AUTHENTICATION_HEADER, TIMESTAMP_HEADER};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// The callback type announcing new submissions.
pub const NEW_SUBMISSIONS: &str =
    "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions";

/// How to sign one callback.
#[derive(Clone, Debug)]
pub struct Callback {
    /// The secret the MAC is made with.
    pub secret: String,
    /// `callback-timestamp`, Unix seconds.
    pub timestamp: i64,
}

/// The body announcing `ids`.
pub(super) fn body(ids: &[Uuid]) -> String {
    json!({ "type": NEW_SUBMISSIONS, "submissionIds": ids }).to_string()
}

/// POSTs a signed callback with `body` to `addr` (`host:port`) at `path`
/// over HTTP/1.1; returns the status code (0 if no answer was read).
pub(super) async fn post(addr: &str, path: &str, body: &str, how: &Callback) -> u16 {
    let timestamp = how.timestamp.to_string();
    let mac = CallbackKey::new(how.secret.as_bytes()).sign(&timestamp, body.as_bytes());
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         {TIMESTAMP_HEADER}: {timestamp}\r\n{AUTHENTICATION_HEADER}: {mac}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
