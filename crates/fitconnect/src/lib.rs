//! The FIT-Connect subscriber side of allegro-bridge (issue #23): taking
//! submitted applications off FIT-Connect, the federal transport layer for
//! online applications, instead of (or next to) the RabbitMQ queue.
//!
//! A FIT-Connect subscriber receives every submission encrypted to its own
//! public key (JWE) and confirms or rejects it with signed security event
//! tokens (SET, a JWS). The parts:
//! - [`jose`]: decrypting JWE compact serializations (RSA-OAEP-256 with
//!   A256GCM, optionally DEFLATE-compressed), signing and verifying PS512
//!   SETs, and the RSA keys (JWK, JWK sets) they need;
//! - [`spec`]: the vendored metadata schema (and the API document's version);
//! - [`submission`]: the checks of a fetched submission (pure);
//! - [`events`]: the accept and reject events;
//! - [`api`]: the Submission API client (HTTPS by rustls);
//! - [`callback`]: the check of a callback announcing new submissions
//!   (HMAC-SHA512, its age).
//!
//! The workflow around them (poll, store, publish to the intake queue,
//! answer through an outbox) is the daemon's (`allegro_daemon::fitconnect`).

pub mod api;
pub mod callback;
pub mod events;
pub mod jose;
pub mod spec;
pub mod submission;
