//! `allegro-bridge api`: the check API for the online form on its own
//! (mappings only: no database, no broker; many can run behind a load
//! balancer), and `allegro-bridge api-client add|list`, its clients file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use tracing::info;

use allegro_core::pipeline::Pipeline;
use allegro_web::api::clients;
use allegro_web::api::metrics::{ApiMetrics, Registry, StandaloneProbe};
use allegro_web::api::{self, ApiState};
use allegro_web::workbench::FixedPipeline;

use super::ops::{init_logging, load_settings};

/// Where `allegro-bridge api` listens when neither `--listen` nor
/// `api.listen` says.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8090);

/// Arguments of `api`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// host:port to listen on (default: api.listen, else 127.0.0.1:8090).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// `api-client`: the API's clients.
#[derive(Debug, Subcommand)]
pub enum ApiClientCommand {
    /// Add a client and print its new token (shown this once only).
    Add {
        /// Its name: a-z, 0-9, - and _ (in metrics and logs).
        name: String,
        /// A browser origin it may call from (repeatable), e.g. https://antrag.example.
        #[arg(long = "origin", value_name = "URL")]
        origins: Vec<String>,
        /// The clients file (default: api.clients_file).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// List the clients with their origins (never a token).
    List {
        /// The clients file (default: api.clients_file).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Serves the API until SIGTERM/SIGINT.
pub fn run(config: Option<&Path>, args: ApiArgs) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    init_logging(&settings);
    let problems = settings.api.validate();
    if !problems.is_empty() {
        bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    let listen = args
        .listen
        .or(settings.api.listen)
        .unwrap_or(DEFAULT_LISTEN);
    let clients = settings.api.load_clients().context("api.clients_file")?;
    let pipeline = Pipeline::load(&settings.pipeline).context("loading mappings")?;
    let metrics = ApiMetrics::new(Default::default());
    let mut registry = Registry::with_prefix("allegro_bridge");
    metrics.register(&mut registry, true);
    let state = ApiState {
        pipeline: Arc::new(FixedPipeline(Arc::new(pipeline))),
        clients: Arc::new(clients),
        metrics,
        config: settings.api.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("allegro-bridge-api")
        .build()?;
    rt.block_on(async move {
        if let Some(ops) = settings.metrics.listen {
            let listener = allegro_web::bind(&ops.to_string(), "metrics.listen").await?;
            let router = allegro_web::ops::router(Arc::new(StandaloneProbe(registry)));
            tokio::spawn(allegro_web::serve(listener, router, std::future::pending()));
        }
        let listener = allegro_web::bind(&listen.to_string(), "api.listen").await?;
        info!(clients = state.clients.len(), "check API ready");
        allegro_web::serve(listener, api::router(state), super::web::shutdown_signal()).await?;
        Ok(0)
    })
}

/// Runs an `api-client` command.
pub fn client(config: Option<&Path>, cmd: ApiClientCommand) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    match cmd {
        ApiClientCommand::Add {
            name,
            origins,
            file,
        } => {
            let path = file.unwrap_or(settings.api.clients_file);
            let token = clients::add(&path, &name, &origins)?;
            eprintln!(
                "client {name:?} added to {}; its token (shown only now, store it in the form's backend):",
                path.display()
            );
            println!("{token}");
        }
        ApiClientCommand::List { file } => {
            let path = file.unwrap_or(settings.api.clients_file);
            for c in clients::entries(&path)? {
                let origins = if c.origins.is_empty() {
                    "(no browser origin)".to_string()
                } else {
                    c.origins.join(" ")
                };
                println!("{}\t{origins}", c.name);
            }
        }
    }
    Ok(0)
}
