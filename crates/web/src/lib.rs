//! allegro-web: the HTTP layer of allegro-bridge, on axum.
//!
//! It serves the operations endpoints ([`ops`]) on `metrics.listen` and the
//! caseworker workbench ([`workbench`]) on `web.listen` and the check API
//! for the online form ([`api`]) on `api.listen`. This crate knows
//! nothing of RabbitMQ: whoever runs it hands in what it needs through
//! small traits ([`ops::Probe`], [`workbench::PipelineSource`]), so the
//! workbench can run without a broker.

pub mod api;
pub mod letters;
pub mod ops;
pub mod settings;
pub mod workbench;

pub use workbench::WebConfig;

use std::future::Future;

use tokio::net::TcpListener;
use tracing::info;

/// Binds `listen` (for example `127.0.0.1:9464`); the error names the address.
pub async fn bind(listen: &str, what: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("{what} {listen}: {e}"))?;
    info!(listen = %listen, "{what} listening");
    Ok(listener)
}

/// Serves `router` on `listener` until `shutdown` completes; connections in
/// flight are finished first (axum's graceful shutdown).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address reaches handlers as `ConnectInfo` (the workbench
    // counts failed logins per address).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}
