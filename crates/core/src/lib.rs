//! allegro-core: the pure pipeline of allegro-bridge.
//!
//! Raw bytes of one application in; an outcome with its findings and, for an
//! accepted application, the ALLEGRO import record out. Nothing here talks to
//! a network or a database, and nothing reads the clock (chrono's `clock`
//! feature is off for this crate): "today" is the day the application was
//! submitted. The only file access is loading the mapping set
//! ([`pipeline::Pipeline::load`]). See ARCHITECTURE.md.

pub mod casework;
pub mod checkdigit;
pub mod checks;
pub mod dates;
pub mod finding;
pub mod intake;
pub mod mapping;
pub mod mitwirkung;
pub mod money;
pub mod pipeline;
pub mod pointer;
pub mod pruefung;
pub mod record;
pub mod rules;
pub mod walk;
