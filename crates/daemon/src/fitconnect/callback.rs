//! The FIT-Connect callback listener (`fitconnect.callback_listen`, off
//! when empty): `POST /fitconnect/callback` from the Zustelldienst
//! announces new submissions; one whose MAC verifies with the callback
//! secret and whose timestamp is within five minutes
//! (`allegro_fitconnect::callback`) wakes the subscriber for a round at
//! once instead of at the next poll. 204 when taken, 401 for a MAC that
//! does not verify or a stale timestamp, 400 for missing headers; refusals
//! are counted by reason. The body is never logged or parsed: the round
//! lists and fetches by itself.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use allegro_fitconnect::callback::{CallbackKey, Refused, AUTHENTICATION_HEADER, TIMESTAMP_HEADER};

use super::FitConnectConfig;
use crate::metrics::{Metrics, RefusalLabel};

/// The path the callback URL registered in the self-service portal ends in.
pub const PATH: &str = "/fitconnect/callback";

/// More than any announcement (a list of submission ids).
const BODY_LIMIT: usize = 256 * 1024;

#[derive(Clone)]
struct Listener {
    key: Arc<CallbackKey>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

/// Binds `listen` and serves the callback there for as long as the process
/// runs; `wake` is the subscriber's ([`super::Subscriber::waker`]).
pub async fn serve(
    listen: SocketAddr,
    cfg: &FitConnectConfig,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let file = cfg
        .callback_secret_file
        .as_ref()
        .context("fitconnect.callback_listen is set, but not fitconnect.callback_secret_file")?;
    let secret = crate::config::read_secret(file).context("fitconnect.callback_secret_file")?;
    anyhow::ensure!(
        !secret.is_empty(),
        "fitconnect.callback_secret_file is empty"
    );
    let listener = allegro_web::bind(&listen.to_string(), "fitconnect.callback_listen").await?;
    let app = router(CallbackKey::new(secret.as_bytes()), wake, metrics);
    tokio::spawn(async move {
        if let Err(e) = allegro_web::serve(listener, app, std::future::pending()).await {
            error!(error = %e, "FIT-Connect callback listener stopped");
        }
    });
    Ok(())
}

/// The callback route alone.
pub fn router(key: CallbackKey, wake: Arc<Notify>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(PATH, post(callback))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Listener {
            key: Arc::new(key),
            wake,
            metrics,
        })
}

async fn callback(State(l): State<Listener>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    match l.key.check(
        header(TIMESTAMP_HEADER),
        header(AUTHENTICATION_HEADER),
        &body,
        now,
    ) {
        Ok(()) => {
            info!("FIT-Connect callback: new submissions announced; a round now");
            l.wake.notify_one();
            StatusCode::NO_CONTENT
        }
        Err(why) => {
            let reason = why.name();
            l.metrics
                .fitconnect_callbacks_refused
                .get_or_create(&RefusalLabel { reason })
                .inc();
            warn!(reason, "FIT-Connect callback refused");
            status_of(why)
        }
    }
}

fn status_of(why: Refused) -> StatusCode {
    match why {
        Refused::Malformed => StatusCode::BAD_REQUEST,
        Refused::BadSignature | Refused::Stale => StatusCode::UNAUTHORIZED,
    }
}
