//! allegro-bridge: online Bürgergeld applications in, ALLEGRO import records out.
//!
//! The pure core (`intake`, `mapping`, `rules`, `record`, `pipeline`) does no
//! I/O and never reads the clock. The edges (`outbox`, the daemon, the store)
//! drive it. See ARCHITECTURE.md for the code map and the invariants.

pub mod checkdigit;
pub mod checks;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dates;
pub mod finding;
pub mod fixtures;
pub mod intake;
pub mod mapping;
pub mod money;
pub mod outbox;
pub mod pipeline;
pub mod pointer;
pub mod record;
pub mod rules;
pub mod store;
