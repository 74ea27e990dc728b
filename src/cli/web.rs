//! `allegro-bridge web`: the caseworker workbench on its own, without a
//! broker: the same database as the daemon, its own copy of the mapping set
//! (loaded once at start; restart it after a mapping change).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use tracing::info;

use allegro_core::pipeline::Pipeline;
use allegro_store::Store;
use allegro_web::workbench::{self, FixedPipeline, WorkbenchState};

use super::ops::{init_logging, load_settings};

/// Where `allegro-bridge web` listens when neither `--listen` nor
/// `web.listen` says.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// Arguments of `web`.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// host:port to listen on (default: web.listen, else 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// Runs the workbench until SIGTERM/SIGINT.
pub fn run(config: Option<&Path>, args: WebArgs) -> anyhow::Result<i32> {
    let mut settings = load_settings(config)?;
    init_logging(&settings);
    let listen = args
        .listen
        .or(settings.web.listen)
        .unwrap_or(DEFAULT_LISTEN);
    settings.web.listen = Some(listen);
    let problems = settings.web.validate();
    if !problems.is_empty() {
        bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    let pipeline = Pipeline::load(&settings.pipeline).context("loading mappings")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("allegro-bridge-web")
        .build()?;
    rt.block_on(async move {
        let store = Store::connect(&settings.store).await?;
        let listener = allegro_web::bind(&listen.to_string(), "web.listen").await?;
        let state = WorkbenchState {
            store: store.clone(),
            pipeline: Arc::new(FixedPipeline(Arc::new(pipeline))),
            records: settings.record_delivery(),
            config: settings.web.clone(),
            mitwirkung: settings.mitwirkung.clone(),
            clock: workbench::state::Clock::system(),
            oidc: allegro_web::workbench::oidc::Provider::from_config(&settings.web.oidc)?,
        };
        info!(store = store.kind(), "workbench ready");
        allegro_web::serve(listener, workbench::router(state), shutdown_signal()).await?;
        store.close().await;
        Ok(0)
    })
}

/// SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    info!("shutting down");
}
