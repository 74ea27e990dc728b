//! IT's commands: `run` (the daemon), `config check`, `dlq list|show|replay`
//! and `recheck` (with `--dry-run`: only count).
//!
//! `dlq list` and `dlq show` print the store's dead-letter log; `list` adds
//! the DLQ's message count and `replay` reads the queue, both through
//! `allegro_daemon::replay` (see there why only replay reads it). No command
//! prints a body (personal data).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use uuid::Uuid;

use allegro_core::pipeline::Pipeline;
use allegro_daemon::config::Settings;
use allegro_daemon::replay::{self, Which, COUNT_TIMEOUT};
use allegro_store::Store;

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config and print the effective settings, secrets masked.
    Check {
        /// Also connect to the broker and the database.
        #[arg(long)]
        connect: bool,
    },
}

/// `dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// One line per open dead letter of the store's log: id, antragId,
    /// reason, first seen, body size, detail (the queue is only counted).
    List,
    /// One dead letter from the store's log (ID: dead-letter id or antragId),
    /// with the body's SHA-256 and the dedup key; never the body.
    Show { id: String },
    /// Put dead letters back on the intake queue once their cause is fixed.
    Replay(ReplayArgs),
}

/// Arguments of `dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Dead-letter id or antragId.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Replay every dead letter of the log, and every message of the DLQ
    /// without a dead-letter id (dead-lettered by the broker).
    #[arg(long)]
    pub all: bool,
    /// Give up after this many seconds (what was replayed stays replayed).
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub timeout: u64,
}

/// Arguments of `recheck`.
#[derive(Debug, Args)]
pub struct RecheckArgs {
    /// Only report per rule how many cases would change; change nothing.
    /// Without it, the cases that pass now are released (audited as `system`).
    #[arg(long)]
    pub dry_run: bool,
}

/// Loads settings with secrets resolved; refuses settings whose links do
/// not fit `[security]` or their TLS keys (every command that uses this
/// opens a link to the broker or the database).
pub fn load_settings(config: Option<&Path>) -> anyhow::Result<Settings> {
    let s = load_unchecked(config)?;
    let problems = s.tls_problems();
    if !problems.is_empty() {
        bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    Ok(s)
}

/// Loads settings with secrets resolved, without any check.
fn load_unchecked(config: Option<&Path>) -> anyhow::Result<Settings> {
    let mut s = Settings::load(config)?;
    s.resolve_secrets()?;
    Ok(s)
}

/// Dependencies whose most verbose levels log what passes through them:
/// lapin and amq-protocol log every frame (message bodies) at trace, sqlx
/// logs statements, hyper/h2 log requests, the TLS layers (rustls and
/// the stream types around it) log records and handshakes at trace. They
/// are held at `info` whatever
/// `RUST_LOG` or `log.level` say, so no setting puts personal data in the
/// log (the bridge's own crates log antragIds, reason codes and counts).
const LOG_FLOOR: &[&str] = &[
    "lapin",
    "amq_protocol",
    "amq_protocol_types",
    "amq_protocol_tcp",
    "tcp_stream",
    "rustls",
    "rustls_connector",
    "rustls_platform_verifier",
    "sqlx",
    "sqlx_core",
    "sqlx_postgres",
    "sqlx_sqlite",
    "hyper",
    "hyper_util",
    "h2",
    "tower",
    "tower_http",
    "axum",
    "reqwest",
];

/// Installs the tracing subscriber (stderr; text or JSON): the level from
/// `RUST_LOG` or `log.level`, under the floor of [`LOG_FLOOR`].
pub fn init_logging(settings: &Settings) {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.log.level.clone()));
    let floor = LOG_FLOOR.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::INFO),
    );
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt = if settings.log.format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    // Both as global filters: an event must pass each. (Nested per-layer
    // filters, `fmt.with_filter(a).with_filter(b)`, lost the first event of
    // every call site: e.g. the first "application stored" line.)
    let _ = tracing_subscriber::registry()
        .with(floor)
        .with(filter)
        .with(fmt)
        .try_init();
}

/// `allegro-bridge run`.
pub fn run_daemon(config: Option<&Path>) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    init_logging(&settings);
    let problems = settings.validate();
    if !problems.is_empty() {
        bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    allegro_daemon::run(settings)
}

/// `allegro-bridge config check`.
pub fn config(config: Option<&Path>, cmd: ConfigCommand) -> anyhow::Result<i32> {
    let ConfigCommand::Check { connect } = cmd;
    let settings = load_unchecked(config)?;
    let mut problems = settings.validate();
    if let Err(e) = Pipeline::load(&settings.pipeline) {
        problems.push(format!("pipeline: {e:#}"));
    }
    print!("{}", settings.masked_toml());
    // As TOML comments, so that the output still reads as a config file.
    println!(
        "\n# Links (security.require_tls = {}):",
        settings.security.require_tls
    );
    for line in settings.links() {
        println!("#   {line}");
    }
    if connect && problems.is_empty() {
        let rt = runtime()?;
        rt.block_on(async {
            if let Err(e) = allegro_daemon::topology::check_connect(&settings.broker).await {
                problems.push(format!("broker: cannot connect: {e}"));
            }
            match Store::connect(&settings.store).await {
                Ok(s) => s.close().await,
                Err(e) => problems.push(format!("store: {}", settings.store.explain_error(&e))),
            }
        });
    }
    if problems.is_empty() {
        eprintln!("config ok");
        Ok(0)
    } else {
        for p in &problems {
            eprintln!("error: {p}");
        }
        Ok(1)
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `allegro-bridge dlq ...`.
pub fn dlq(config: Option<&Path>, cmd: DlqCommand) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    runtime()?.block_on(async {
        let store = Store::connect(&settings.store).await?;
        let code = match cmd {
            DlqCommand::List => dlq_list(&settings, &store).await,
            DlqCommand::Show { id } => dlq_show(&store, &id).await,
            DlqCommand::Replay(args) => dlq_replay(&settings, &store, &args).await,
        };
        store.close().await;
        code
    })
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// One line, whatever the detail holds.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

/// `dlq list`: the open rows of the dead-letter log, then the DLQ's message
/// count compared with them (a passive declare: no message is read).
async fn dlq_list(settings: &Settings, store: &Store) -> anyhow::Result<i32> {
    let rows = store.dead_letters().await?;
    println!(
        "{:<36}  {:<36}  {:<22}  {:<24}  {:>9}  detail",
        "id", "antragId", "reason", "first seen", "bytes"
    );
    for r in &rows {
        println!(
            "{:<36}  {:<36}  {:<22}  {:<24}  {:>9}  {}",
            r.id,
            or_dash(r.antrag_id),
            r.reason,
            time(&r.first_seen),
            or_dash(r.body_bytes),
            one_line(&r.detail),
        );
    }
    eprintln!("{} dead letter(s) in the log", rows.len());
    let dlq = &settings.broker.dlq;
    let open = rows.len() as u64;
    // The list comes from the store; the count is a note, given up on after
    // COUNT_TIMEOUT.
    match tokio::time::timeout(COUNT_TIMEOUT, replay::dlq_ready(&settings.broker)).await {
        Err(_) => eprintln!(
            "note: the broker did not answer within {}s; the queue `{dlq}` was not counted",
            COUNT_TIMEOUT.as_secs()
        ),
        Ok(Err(e)) => eprintln!("note: the queue `{dlq}` was not counted: {e:#}"),
        Ok(Ok(None)) => {
            eprintln!("warning: the queue `{dlq}` does not exist (or refused the passive declare)")
        }
        Ok(Ok(Some(n))) if u64::from(n) > open => eprintln!(
            "warning: the queue `{dlq}` holds {n} message(s) but the log only {open}: the \
             others have no log row (dead-lettered by the broker at the delivery limit, or \
             put there by hand). `dlq replay --all` replays those without a dead-letter id; \
             inspect them in the RabbitMQ management UI"
        ),
        Ok(Ok(Some(n))) if u64::from(n) < open => eprintln!(
            "note: the queue `{dlq}` has {n} message(s) ready, fewer than the log's {open}: \
             the others are being read right now (e.g. by `dlq replay`) or were removed from \
             the queue by hand"
        ),
        Ok(Ok(Some(_))) => {}
    }
    Ok(0)
}

/// `dlq show ID`: the log rows of one dead letter (several when an
/// antragId has more than one, e.g. a conflict).
async fn dlq_show(store: &Store, id: &str) -> anyhow::Result<i32> {
    let rows = replay::open_rows(store, id).await?;
    if rows.is_empty() {
        eprintln!(
            "no open dead letter with id or antragId {id} in the log (`dlq list` shows them)"
        );
        return Ok(1);
    }
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("id:          {}", r.id);
        println!("antragId:    {}", or_dash(r.antrag_id));
        println!("reason:      {}", r.reason);
        println!("detail:      {}", one_line(&r.detail));
        println!("first seen:  {}", time(&r.first_seen));
        println!("body bytes:  {}", or_dash(r.body_bytes));
        println!("body sha256: {}", r.body_sha256);
        println!("dedup key:   {}", r.dedup_key);
    }
    if rows.len() > 1 {
        eprintln!("{} open dead letters for {id}", rows.len());
    }
    Ok(0)
}

/// `dlq replay ID|--all` (see `allegro_daemon::replay::replay`): exit code
/// 1 when an ID was given and nothing replayed.
async fn dlq_replay(settings: &Settings, store: &Store, args: &ReplayArgs) -> anyhow::Result<i32> {
    let which = match args.id.as_deref() {
        Some(id) if !args.all => Which::Id(id),
        _ => Which::All,
    };
    let timeout = Duration::from_secs(args.timeout);
    let report = replay::replay(&settings.broker, store, which, timeout).await?;
    print_replay(&report, &settings.broker.intake_queue);
    Ok(if report.replayed == 0 && !args.all {
        1
    } else {
        0
    })
}

/// What a replay run did, on stderr.
fn print_replay(report: &replay::Report, intake: &str) {
    if report.held_back_limit {
        eprintln!(
            "note: stopped after {} messages held back (the most held at once); replay the \
             rest by ID or after moving messages away",
            report.left
        );
    }
    eprintln!("{} dead letter(s) replayed to `{intake}`", report.replayed);
    if report.unlogged > 0 {
        eprintln!(
            "{} of them without an open row in the dead-letter log (dead-lettered by the \
             broker, or left by an earlier replay)",
            report.unlogged
        );
    }
    if report.copies > 0 {
        eprintln!(
            "{} extra copy(ies) of them removed from the DLQ",
            report.copies
        );
    }
    if report.left > 0 {
        eprintln!("{} message(s) left in the DLQ (not asked for)", report.left);
    }
    if !report.not_found.is_empty() {
        eprintln!(
            "warning: {} dead letter(s) of the log were not found among the {} message(s) in \
             the queue (already gone, or held by another reader): {}",
            report.not_found.len(),
            report.seen,
            report
                .not_found
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// `allegro-bridge recheck [--dry-run]`: the mappings in force over every
/// case open for work (`open` or `deferred`); without `--dry-run` the ones
/// that pass now are released exactly as the workbench's re-check page does
/// (`allegro_store::release::recheck`, actor `system`), their records
/// written to the outbox (or left to the daemon's dispatcher when records
/// also go to the AMQP sink).
pub fn recheck(config: Option<&Path>, args: RecheckArgs) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    let pipeline = Pipeline::load(&settings.pipeline).context("loading mappings")?;
    runtime()?.block_on(async {
        let store = Store::connect(&settings.store).await?;
        let delivery = settings.record_delivery();
        let report = allegro_store::release::recheck(
            &store,
            std::sync::Arc::new(pipeline),
            (!args.dry_run).then_some(&delivery),
            Utc::now(),
        )
        .await;
        store.close().await;
        let r = report?;
        println!("open cases:             {}", r.cases);
        if r.dry_run {
            println!("would now be accepted:  {}", r.passing);
        } else {
            println!("now accepted:           {}", r.passing);
            println!("released:               {}", r.released);
            println!("changed meanwhile:      {} (left alone)", r.conflicts);
        }
        println!("still rejected:         {}", r.still_rejected);
        println!("would now be invalid:   {}", r.invalid);
        if !r.per_rule.is_empty() {
            println!("per rule (cases):       resolved  new");
            for (rule, c) in &r.per_rule {
                println!("  {rule:<28} {:>6} {:>4}", c.resolved, c.added);
            }
        }
        if r.dry_run {
            println!("(dry run: nothing was changed)");
        }
        Ok(0)
    })
}
