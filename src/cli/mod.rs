//! The command line: a thin layer over the library.
//!
//! Each subcommand lives in its own module; `main.rs` only parses and
//! dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod api;
pub mod fixtures;
pub mod kennzahlen;
pub mod mappings;
pub mod mitwirkung;
pub mod ops;
pub mod process;
pub mod purge;
pub mod submit;
pub mod user;
pub mod web;

/// allegro-bridge: online Bürgergeld applications in, ALLEGRO import records out.
#[derive(Debug, Parser)]
#[command(name = "allegro-bridge", version, about)]
pub struct Cli {
    /// Config file (default: config/allegro-bridge.toml if present).
    #[arg(long, global = true, env = "ALLEGRO_BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline on files: each `.json` file is one application.
    Process(process::ProcessArgs),
    /// Mapping developer tools: lint and fixture tests.
    #[command(subcommand)]
    Mappings(mappings::MappingsCommand),
    /// Run the daemon: consume applications from RabbitMQ until SIGTERM.
    Run,
    /// Check the configuration.
    #[command(subcommand)]
    Config(ops::ConfigCommand),
    /// Inspect and replay the dead-letter queue.
    #[command(subcommand)]
    Dlq(ops::DlqCommand),
    /// Re-run stored open cases against the current mappings.
    Recheck(ops::RecheckArgs),
    /// Publish application files to the intake queue (with confirms).
    Submit(submit::SubmitArgs),
    /// Remove personal data whose retention period is over (`[retention]`).
    Purge(purge::PurgeArgs),
    /// Serve the caseworker workbench (same database, no broker needed).
    Web(web::WebArgs),
    /// Manage the workbench's accounts.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Serve the check API for the online form (mappings only: no database, no broker).
    Api(api::ApiArgs),
    /// Manage the check API's clients (tokens and origins).
    #[command(subcommand)]
    ApiClient(api::ApiClientCommand),
    /// The Kennzahlen (figures per month and Dienststelle) as CSV or JSON.
    Kennzahlen(kennzahlen::KennzahlenArgs),
    /// Mitwirkung: write the letters that request documents owed.
    #[command(subcommand)]
    Mitwirkung(mitwirkung::MitwirkungCommand),
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Process(args) => process::run(cli.config.as_deref(), args),
        Command::Mappings(cmd) => mappings::run(cli.config.as_deref(), cmd),
        Command::Run => ops::run_daemon(cli.config.as_deref()),
        Command::Config(cmd) => ops::config(cli.config.as_deref(), cmd),
        Command::Dlq(cmd) => ops::dlq(cli.config.as_deref(), cmd),
        Command::Recheck(args) => ops::recheck(cli.config.as_deref(), args),
        Command::Submit(args) => submit::run(cli.config.as_deref(), args),
        Command::Purge(args) => purge::run(cli.config.as_deref(), args),
        Command::Web(args) => web::run(cli.config.as_deref(), args),
        Command::User(cmd) => user::run(cli.config.as_deref(), cmd),
        Command::Kennzahlen(args) => kennzahlen::run(cli.config.as_deref(), args),
        Command::Api(args) => api::run(cli.config.as_deref(), args),
        Command::ApiClient(cmd) => api::client(cli.config.as_deref(), cmd),
        Command::Mitwirkung(cmd) => mitwirkung::run(cli.config.as_deref(), cmd),
    }
}
