//! allegro-daemon: the daemon (`allegro-bridge run`): RabbitMQ intake → pipeline → store →
//! outbox, with retries, dead letters and graceful shutdown.
//!
//! Code map:
//! - [`topology`]: declares the intake quorum queue and the DLQ.
//! - [`consumer`]: one broker session; batches deliveries, one transaction
//!   and one multiple-ack per batch (group commit).
//! - [`plan`]: the pure part of committing a batch: which rows, which dead
//!   letters, what is counted and handed to the dispatcher.
//! - [`deadletter`]: DLQ headers and dedup keys.
//! - [`dispatcher`]: writes record files from the outbox table.
//! - [`retry`]: backoff and the shutdown flag.
//! - [`metrics`]: Prometheus counters, the health check and their listener.
//! - [`reload`]: the mapping set in force, swapped atomically on SIGHUP.
//! - [`retention`]: the periodic purge of personal data and the open-case gauges.
//! - [`replay`], [`submit`]: the broker side of `allegro-bridge dlq` and
//!   `allegro-bridge submit` (the command line only parses and prints).
//!
//! This module wires them: the outer reconnect loop around [`consumer::session`],
//! the dispatcher task, signal handling (SIGTERM, SIGINT with a deadline;
//! SIGHUP reloads the mappings), and systemd notifications (READY, RELOADING,
//! STOPPING, WATCHDOG). With `web.listen` set it also serves the caseworker
//! workbench (`allegro_web::workbench`) with the mapping set in force, and
//! with `api.listen` the check API for the online form (`allegro_web::api`).

pub mod broker;
pub mod config;
pub mod consumer;
pub mod deadletter;
pub mod dispatcher;
pub mod fitconnect;
pub mod metrics;
pub mod plan;
pub mod reload;
pub mod replay;
pub mod retention;
pub mod retry;
pub mod submit;
pub mod topology;
pub mod watchdog;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tracing::{error, info, warn};

use crate::config::Settings;
use allegro_store::Store;
use consumer::{Careful, Ctx, SessionEnd, SessionError};
use dispatcher::{Dispatcher, OutboxState};
use retry::{backoff, shutdown_pair, Shutdown};

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub fn run(settings: Settings) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("allegro-bridge")
        .build()?;
    rt.block_on(run_async(settings))
}

async fn run_async(settings: Settings) -> anyhow::Result<i32> {
    // A panic message may quote input data; log only where it happened.
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        error!(location = %loc, "panic");
    }));

    let loaded = reload::load(&settings.pipeline).context("loading mappings")?;
    info!(
        hash = %loaded.short_hash(),
        mappings = loaded.mappings(),
        "mapping set loaded"
    );
    let metrics = Arc::new(metrics::Metrics::default());
    reload::record_in_force(&metrics, &loaded);
    let mappings = Arc::new(reload::Mappings::new(loaded.pipeline));
    let store = Store::connect_lazy(&settings.store)?;

    let (trigger, shutdown) = shutdown_pair();
    let trigger = Arc::new(trigger);
    spawn_signal_handler(Arc::clone(&trigger), settings.daemon.shutdown_deadline_secs);
    // Before the first wait: SIGHUP without a handler would end the process.
    let ready = Arc::new(AtomicBool::new(false));
    reload::spawn_hangup_handler(
        settings.pipeline.clone(),
        Arc::clone(&mappings),
        Arc::clone(&metrics),
        Arc::clone(&ready),
        shutdown.clone(),
    )?;

    // Migrations: the database may not be up yet; wait for it.
    {
        let mut delays = backoff(&settings.daemon);
        let mut sd = shutdown.clone();
        loop {
            match store.migrate().await {
                Ok(()) => break,
                Err(e) => {
                    let d = delays.next().unwrap_or(Duration::from_secs(1));
                    warn!(error = %settings.store.explain_error(&e), retry_in_ms = d.as_millis() as u64,
                        "database not ready");
                    if sd.sleep(d).await {
                        return Ok(0);
                    }
                }
            }
        }
    }
    info!(store = store.kind(), "database ready");

    if let Some(listen) = settings.metrics.listen {
        metrics::serve(listen, Arc::clone(&metrics)).await?;
    }
    if let Some(listen) = settings.web.listen {
        serve_workbench(listen, &settings, store.clone(), Arc::clone(&mappings)).await?;
    }
    if let Some(listen) = settings.api.listen {
        serve_api(listen, &settings, Arc::clone(&mappings), &metrics).await?;
    }
    if settings.fitconnect.enabled {
        let subscriber = fitconnect::Subscriber::new(
            &settings.fitconnect,
            store.clone(),
            settings.broker.clone(),
            Arc::clone(&mappings),
            Arc::clone(&metrics),
        )
        .context("fitconnect")?;
        if let Some(listen) = settings.fitconnect.callback_listen {
            fitconnect::callback::serve(
                listen,
                &settings.fitconnect,
                subscriber.waker(),
                Arc::clone(&metrics),
            )
            .await?;
        }
        tokio::spawn(subscriber.run(shutdown.clone()));
    }
    metrics.store_healthy.set(1);
    metrics.outbox_healthy.set(1);
    let outbox = Arc::new(OutboxState::default());
    outbox.healthy.store(true, Ordering::SeqCst);
    let (stop_dispatch, dispatch_stop) = shutdown_pair();
    let dispatcher = tokio::spawn(
        Dispatcher {
            store: store.clone(),
            dir: settings.outbox.dir.clone(),
            cfg: settings.daemon.clone(),
            sink: settings.sink.clone(),
            broker: settings.broker.clone(),
            state: Arc::clone(&outbox),
            metrics: Arc::clone(&metrics),
        }
        .run(dispatch_stop),
    );
    let heartbeat = Arc::new(watchdog::Heartbeat::default());
    watchdog::spawn(Arc::clone(&heartbeat));
    spawn_dlq_probe(&settings, store.clone(), Arc::clone(&metrics));
    retention::spawn_case_gauges(&settings, store.clone(), Arc::clone(&metrics));
    retention::spawn_purger(
        &settings,
        store.clone(),
        Arc::clone(&mappings),
        Arc::clone(&metrics),
    );

    let ctx = Ctx {
        settings: settings.clone(),
        pipeline: mappings,
        store: store.clone(),
        outbox: Arc::clone(&outbox),
        metrics: Arc::clone(&metrics),
        heartbeat,
    };
    let code = reconnect_loop(&ctx, shutdown.clone(), &ready).await;

    // Let the dispatcher write what is committed, then stop.
    stop_dispatch.trigger();
    let _ = tokio::time::timeout(
        Duration::from_secs(settings.daemon.shutdown_deadline_secs),
        dispatcher,
    )
    .await;
    store.close().await;
    let count = |outcome| {
        let label = metrics::OutcomeLabel { outcome };
        metrics.applications.get_or_create(&label).get()
    };
    info!(
        accepted = count("accepted"),
        rejected = count("rejected"),
        duplicates = metrics.duplicates.get(),
        deliveries_acked = metrics.deliveries_acked.get(),
        records_written = outbox.written.load(Ordering::Relaxed),
        "stopped"
    );
    code
}

/// Serves the caseworker workbench on `web.listen` (nothing else there:
/// the ops endpoints stay on `metrics.listen`) for as long as the process runs.
async fn serve_workbench(
    listen: std::net::SocketAddr,
    settings: &Settings,
    store: Store,
    mappings: Arc<reload::Mappings>,
) -> anyhow::Result<()> {
    let listener = allegro_web::bind(&listen.to_string(), "web.listen").await?;
    let state = allegro_web::workbench::WorkbenchState {
        store,
        pipeline: mappings,
        records: settings.record_delivery(),
        config: settings.web.clone(),
        mitwirkung: settings.mitwirkung.clone(),
        clock: allegro_web::workbench::state::Clock::system(),
        oidc: allegro_web::workbench::oidc::Provider::from_config(&settings.web.oidc)?,
    };
    let router = allegro_web::workbench::router(state);
    tokio::spawn(async move {
        if let Err(e) = allegro_web::serve(listener, router, std::future::pending()).await {
            error!(error = %e, "workbench server stopped");
        }
    });
    Ok(())
}

/// Serves the check API on `api.listen` with the mapping set in force (a
/// reload changes what it checks against at once).
async fn serve_api(
    listen: std::net::SocketAddr,
    settings: &Settings,
    mappings: Arc<reload::Mappings>,
    metrics: &metrics::Metrics,
) -> anyhow::Result<()> {
    let clients = settings.api.load_clients().context("api.clients_file")?;
    let listener = allegro_web::bind(&listen.to_string(), "api.listen").await?;
    info!(clients = clients.len(), "check API clients loaded");
    let state = allegro_web::api::ApiState {
        pipeline: mappings,
        clients: Arc::new(clients),
        metrics: metrics.api.clone(),
        config: settings.api.clone(),
    };
    let router = allegro_web::api::router(state);
    tokio::spawn(async move {
        if let Err(e) = allegro_web::serve(listener, router, std::future::pending()).await {
            error!(error = %e, "check API server stopped");
        }
    });
    Ok(())
}

/// Sessions until shutdown; reconnects with backoff after broker failures.
/// `ready` is set once systemd has been told `READY=1` (a reload tells it
/// `RELOADING=1` and `READY=1` only after that).
async fn reconnect_loop(
    ctx: &Ctx,
    mut shutdown: Shutdown,
    ready: &AtomicBool,
) -> anyhow::Result<i32> {
    let mut delays = backoff(&ctx.settings.daemon);
    let mut careful = Careful::default();
    loop {
        ctx.heartbeat.beat();
        let started = Instant::now();
        let mut on_ready = || {
            if !ready.load(Ordering::SeqCst) {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                ready.store(true, Ordering::SeqCst);
            }
        };
        match consumer::session(ctx, &mut shutdown, &mut on_ready, &mut careful).await {
            Ok(SessionEnd::Shutdown) => return Ok(0),
            Ok(SessionEnd::FullSpeed) => delays = backoff(&ctx.settings.daemon),
            Err(SessionError::Fatal(e)) => return Err(e),
            Err(SessionError::Transient(e)) => {
                ctx.metrics.broker_reconnects.inc();
                ctx.metrics.broker_connected.set(0);
                if shutdown.is_set() {
                    warn!(error = %format!("{e:#}"), "stopped with work left unacked; it will be redelivered");
                    return Ok(0);
                }
                if started.elapsed() > Duration::from_secs(60) {
                    delays = backoff(&ctx.settings.daemon);
                }
                let d = delays.next().unwrap_or(Duration::from_secs(1));
                warn!(error = %format!("{e:#}"), retry_in_ms = d.as_millis() as u64,
                    "broker session ended; reconnecting");
                ctx.heartbeat.alive_for(d);
                if shutdown.sleep(d).await {
                    return Ok(0);
                }
            }
        }
    }
}

/// SIGTERM/SIGINT trigger the graceful shutdown; after the deadline (or a
/// second signal) the process exits at once: whatever is unacked goes back
/// to the queue, nothing is lost.
fn spawn_signal_handler(trigger: Arc<retry::ShutdownTrigger>, deadline_secs: u64) {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        trigger.trigger();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(deadline_secs + 2)) => {
                warn!("shutdown deadline passed; exiting, unacked deliveries return to the queue");
            }
            _ = term.recv() => warn!("second signal; exiting now"),
            _ = int.recv() => warn!("second signal; exiting now"),
        }
        std::process::exit(0);
    });
}

/// Every `daemon.dlq_probe_secs` (30): how many messages the DLQ holds (a passive declare, no message
/// is read) and how many of them have no open row in the dead-letter log,
/// i.e. were moved there by the broker's delivery limit. Failures are
/// skipped until the next round; the daemon's work does not depend on it.
fn spawn_dlq_probe(settings: &Settings, store: Store, metrics: Arc<metrics::Metrics>) {
    metrics.dlq_messages.set(-1);
    let broker = settings.broker.clone();
    let every = Duration::from_secs(settings.daemon.dlq_probe_secs.max(1));
    tokio::spawn(async move {
        let limit = Duration::from_secs(10);
        let mut conn: Option<lapin::Connection> = None;
        loop {
            if conn.as_ref().is_none_or(|c| !c.status().connected()) {
                let connect = broker::connect(&broker, "allegro-bridge dlq probe");
                conn = tokio::time::timeout(limit, connect)
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            let probe = async {
                let c = conn.as_ref()?;
                let (messages, _) = topology::queue_counts(c, &broker.dlq).await?;
                let logged = store.open_dead_letters().await.ok()?;
                Some((i64::from(messages), logged))
            };
            match tokio::time::timeout(limit, probe).await.ok().flatten() {
                Some((messages, logged)) => {
                    metrics.dlq_messages.set(messages);
                    metrics.dlq_without_log_row.set((messages - logged).max(0));
                }
                // Unknown rather than stale.
                None => {
                    metrics.dlq_messages.set(-1);
                    metrics.dlq_without_log_row.set(-1);
                }
            }
            tokio::time::sleep(every).await;
        }
    });
}
