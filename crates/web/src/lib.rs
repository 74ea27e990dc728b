//! allegro-web: the HTTP layer of allegro-bridge, on axum.
//!
//! Today it serves the operations endpoints ([`ops`]) on `metrics.listen`;
//! the caseworker workbench will be served from the same stack. This crate
//! knows nothing of RabbitMQ: whoever runs it hands in what it needs through
//! small traits ([`ops::Probe`]), so the workbench can run without a broker.

pub mod ops;

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
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
