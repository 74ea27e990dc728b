//! IT's commands: `run` (the daemon), `config check`, `dlq list|show|replay`
//! and `recheck` (with `--dry-run`: only count).
//!
//! `dlq list` and `dlq show` read only the store's dead-letter log (the
//! daemon logs every dead letter in the transaction whose DLQ publish the
//! broker confirmed), so they cannot hang on a message the AMQP client cannot
//! read and do not raise the messages' `x-delivery-count`; `list` only asks
//! the broker how many messages the DLQ holds (a passive declare) to warn
//! about messages without a log row. `dlq replay` is the only command that
//! reads the queue: with a consumer, a prefetch and timeouts, acknowledging
//! only what it replayed; closing the channel returns the rest.
//! No command prints a body (personal data).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::time::{timeout_at, Instant};
use uuid::Uuid;

use allegro_core::pipeline::Pipeline;
use allegro_daemon::config::{BrokerConfig, Settings};
use allegro_daemon::deadletter::{self, header_str};
use allegro_daemon::topology::queue_counts;
use allegro_store::{DeadLetterRow, Store};

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

/// Loads settings with secrets resolved.
pub fn load_settings(config: Option<&Path>) -> anyhow::Result<Settings> {
    let mut s = Settings::load(config)?;
    s.resolve_secrets()?;
    Ok(s)
}

/// Dependencies whose most verbose levels log what passes through them:
/// lapin and amq-protocol log every frame (message bodies) at trace, sqlx
/// logs statements, hyper/h2 log requests. They are held at `info` whatever
/// `RUST_LOG` or `log.level` say, so no setting puts personal data in the
/// log (the bridge's own crates log antragIds, reason codes and counts).
const LOG_FLOOR: &[&str] = &[
    "lapin",
    "amq_protocol",
    "amq_protocol_types",
    "amq_protocol_tcp",
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
    let settings = load_settings(config)?;
    let mut problems = settings.validate();
    if let Err(e) = Pipeline::load(&settings.pipeline) {
        problems.push(format!("pipeline: {e:#}"));
    }
    print!("{}", settings.masked_toml());
    if connect && problems.is_empty() {
        let rt = runtime()?;
        rt.block_on(async {
            match Connection::connect(&settings.broker.url, ConnectionProperties::default()).await {
                Ok(c) => {
                    let _ = c.close(200, "OK".into()).await;
                }
                Err(e) => problems.push(format!("broker: cannot connect: {e}")),
            }
            match Store::connect(&settings.store).await {
                Ok(s) => s.close().await,
                Err(e) => problems.push(format!("store: {e:#}")),
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

/// How long `dlq list` waits for the broker's queue count before it gives up
/// on that note (the list itself comes from the store).
const COUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `dlq replay` waits for the next message of the DLQ.
const NEXT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most messages `dlq replay` holds unacknowledged at once (its prefetch):
/// the ones it does not replay stay with it until it closes the channel.
const MAX_PREFETCH: u32 = 5000;

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
    match tokio::time::timeout(COUNT_TIMEOUT, dlq_count(settings)).await {
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

/// Ready messages in the DLQ, by a passive declare; `None` when it does not exist.
async fn dlq_count(settings: &Settings) -> anyhow::Result<Option<u32>> {
    let conn = connect(settings).await?;
    let counts = queue_counts(&conn, &settings.broker.dlq).await;
    let _ = conn.close(200, "OK".into()).await;
    Ok(counts.map(|(ready, _)| ready))
}

async fn connect(settings: &Settings) -> anyhow::Result<Connection> {
    Connection::connect(
        &settings.broker.url,
        ConnectionProperties::default().with_connection_name("allegro-bridge-dlq".into()),
    )
    .await
    .context("connecting to the broker")
}

/// The open log rows an ID names (dead-letter id or antragId).
async fn rows_for(store: &Store, id: &str) -> anyhow::Result<Vec<DeadLetterRow>> {
    Ok(match Uuid::parse_str(id.trim()) {
        Ok(u) => store.dead_letters_for(u).await?,
        Err(_) => vec![],
    })
}

/// `dlq show ID`: the log rows of one dead letter (several when an
/// antragId has more than one, e.g. a conflict).
async fn dlq_show(store: &Store, id: &str) -> anyhow::Result<i32> {
    let rows = rows_for(store, id).await?;
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

/// What `dlq replay` is asked to put back.
struct Wanted<'a> {
    /// Log rows still to be found in the queue, by dead-letter id.
    rows: HashSet<Uuid>,
    /// `--all`, or the ID given.
    all: bool,
    id: Option<&'a str>,
}

impl Wanted<'_> {
    /// A message without an open log row: dead-lettered by the broker (no
    /// dead-letter id), or left behind by a replay that broke off after
    /// freeing its row. Replayed with `--all`, or when its dead-letter id or
    /// antragId (header or message_id) is the ID given.
    fn wants_unlogged(&self, props: &BasicProperties) -> bool {
        self.all
            || self.id.is_some_and(|id| {
                header_str(props, deadletter::H_ID).as_deref() == Some(id)
                    || header_str(props, deadletter::H_ANTRAG_ID).as_deref() == Some(id)
                    || props.message_id().as_ref().map(|m| m.as_str()) == Some(id)
            })
    }
}

/// The error for a broker connection that broke while the DLQ was read:
/// lapin closes the connection on a message it cannot parse (for example a
/// header frame larger than `frame_max`).
fn unreadable(dlq: &str, e: &dyn std::fmt::Display, progress: &str) -> anyhow::Error {
    anyhow!(
        "the dead-letter queue `{dlq}` holds a message this client cannot read ({e}); the \
         broker connection was closed because of it. Inspect and move that message with the \
         RabbitMQ management UI or `rabbitmqadmin get`; {progress}"
    )
}

/// `dlq replay ID|--all`: reads the DLQ with a consumer and replays the
/// messages whose dead-letter id is one of the log rows asked for (plus, with
/// `--all` or by their ID, those without an open row). Bounded in
/// time: the next message is awaited at most [`NEXT_TIMEOUT`], the whole run
/// at most `--timeout`; a message the client cannot read ends the run with
/// an error instead of a hang.
async fn dlq_replay(settings: &Settings, store: &Store, args: &ReplayArgs) -> anyhow::Result<i32> {
    let rows = if args.all {
        store.dead_letters().await?
    } else {
        rows_for(store, args.id.as_deref().unwrap_or_default()).await?
    };
    let mut wanted = Wanted {
        rows: rows.iter().map(|r| r.id).collect(),
        all: args.all,
        id: args.id.as_deref(),
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let conn = timeout_at(deadline, connect(settings))
        .await
        .map_err(|_| anyhow!("the broker did not answer within {}s", args.timeout))??;
    let result = replay_from_queue(&conn, store, &settings.broker, &mut wanted, deadline).await;
    // Closing returns every message not acked (i.e. not replayed) to the DLQ.
    let _ = tokio::time::timeout(COUNT_TIMEOUT, conn.close(200, "OK".into())).await;
    let tally = result?;
    let intake = &settings.broker.intake_queue;
    eprintln!("{} dead letter(s) replayed to `{intake}`", tally.replayed);
    if tally.unlogged > 0 {
        eprintln!(
            "{} of them without an open row in the dead-letter log (dead-lettered by the \
             broker, or left by an earlier replay)",
            tally.unlogged
        );
    }
    if tally.copies > 0 {
        eprintln!(
            "{} extra copy(ies) of them removed from the DLQ",
            tally.copies
        );
    }
    if tally.left > 0 {
        eprintln!("{} message(s) left in the DLQ (not asked for)", tally.left);
    }
    if !wanted.rows.is_empty() {
        eprintln!(
            "warning: {} dead letter(s) of the log were not found among the {} message(s) in \
             the queue (already gone, or held by another reader): {}",
            wanted.rows.len(),
            tally.seen,
            wanted
                .rows
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(if tally.replayed == 0 && !args.all {
        1
    } else {
        0
    })
}

/// What one replay run did.
#[derive(Default)]
struct Tally {
    seen: u32,
    replayed: u32,
    /// Replayed without an open log row.
    unlogged: u32,
    copies: u32,
    left: u32,
}

async fn replay_from_queue(
    conn: &Connection,
    store: &Store,
    b: &BrokerConfig,
    wanted: &mut Wanted<'_>,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let ready = match queue_counts(conn, &b.dlq).await {
        Some((ready, _)) => ready,
        None => bail!("the dead-letter queue `{}` does not exist", b.dlq),
    };
    if ready == 0 {
        return Ok(tally);
    }
    let ch = conn.create_channel().await?;
    let pub_ch = conn.create_channel().await?;
    pub_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    // The messages not replayed stay unacked until the channel closes: with
    // a prefetch of at least what the queue held, none of them blocks the
    // ones behind it.
    let prefetch = ready.clamp(1, MAX_PREFETCH) as u16;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            b.dlq.as_str().into(),
            "allegro-bridge-dlq-replay".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming from the dead-letter queue `{}`", b.dlq))?;
    let mut done: HashSet<Uuid> = HashSet::new();
    let progress = |t: &Tally| {
        format!(
            "{} of the {ready} message(s) looked at, {} replayed before this; the others stay \
             in the queue",
            t.seen, t.replayed
        )
    };
    // Every message that was in the queue at the start is looked at once.
    while tally.seen < ready {
        if tally.left >= u32::from(prefetch) {
            eprintln!(
                "note: stopped after {} messages held back (the most held at once); replay the \
                 rest by ID or after moving messages away",
                tally.left
            );
            break;
        }
        let wait = NEXT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let delivery = match tokio::time::timeout(wait, consumer.next()).await {
            Err(_) if Instant::now() >= deadline => {
                bail!("gave up at the --timeout deadline: {}", progress(&tally))
            }
            Err(_) => bail!(
                "no message from the dead-letter queue `{}` for {}s although it held more: \
                 another client may hold them unacknowledged, or the broker cannot deliver \
                 them; {}",
                b.dlq,
                wait.as_secs(),
                progress(&tally)
            ),
            Ok(None) => bail!(
                "the broker cancelled the consumer on `{}`; {}",
                b.dlq,
                progress(&tally)
            ),
            Ok(Some(Err(e))) => return Err(unreadable(&b.dlq, &e, &progress(&tally))),
            Ok(Some(Ok(d))) => d,
        };
        tally.seen += 1;
        let id = header_str(&delivery.properties, deadletter::H_ID)
            .and_then(|i| Uuid::parse_str(&i).ok());
        let replay = match id {
            Some(id) if wanted.rows.remove(&id) => true,
            // A crash between publishing a dead letter and committing its
            // log row can leave two copies with the same id: one is replayed.
            Some(id) if done.contains(&id) => {
                ch.basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                    .await?;
                tally.copies += 1;
                false
            }
            _ if wanted.wants_unlogged(&delivery.properties) => {
                tally.unlogged += 1;
                true
            }
            _ => {
                tally.left += 1;
                false
            }
        };
        if replay {
            let r = replay_one(store, &ch, &pub_ch, &b.intake_queue, &delivery, id).await;
            if let Err(e) = r {
                // The next message may be what broke the connection: the
                // consumer then holds the cause.
                if !conn.status().connected() {
                    let cause = match tokio::time::timeout(COUNT_TIMEOUT, consumer.next()).await {
                        Ok(Some(Err(cause))) => cause.to_string(),
                        _ => format!("{e:#}"),
                    };
                    return Err(unreadable(&b.dlq, &cause, &progress(&tally)));
                }
                return Err(e.context(format!("replaying a dead letter; {}", progress(&tally))));
            }
            if let Some(id) = id {
                done.insert(id);
            }
            tally.replayed += 1;
        }
    }
    let _ = tokio::time::timeout(COUNT_TIMEOUT, ch.close(200, "OK".into())).await;
    Ok(tally)
}

/// Frees the dedup key (before publishing, or the daemon would take the
/// replayed message for the one already dead-lettered), publishes to the
/// intake with confirm, acks the DLQ copy. A failed publish restores the log
/// row; a crash in between leaves the dead letter in the DLQ (at worst it is
/// replayed twice, which the daemon recognises as a duplicate).
async fn replay_one(
    store: &Store,
    dlq_ch: &Channel,
    pub_ch: &Channel,
    intake: &str,
    d: &Delivery,
    id: Option<Uuid>,
) -> anyhow::Result<()> {
    // Millisecond precision, so `unmark_replayed` finds the stored value.
    let now = Utc::now().trunc_subsecs(3);
    let key = deadletter::dedup_key(
        &deadletter::sha256_hex(&d.data),
        d.properties.message_id().as_ref().map(|m| m.as_str()),
    );
    match id {
        Some(id) => {
            store.mark_replayed(id, now).await?;
        }
        None => store.mark_replayed_by_key(&key, now).await?,
    }
    let published = async {
        let conf = pub_ch
            .basic_publish(
                "".into(),
                intake.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &d.data,
                deadletter::strip_bridge_headers(&d.properties),
            )
            .await?
            .await?;
        if !conf.is_ack() || conf.take_message().is_some() {
            bail!("the broker did not accept the replayed message (does `{intake}` exist?)");
        }
        Ok(())
    }
    .await;
    if let Err(e) = published {
        let _ = store.unmark_replayed(&key, now).await;
        return Err(e);
    }
    dlq_ch
        .basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await?;
    Ok(())
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
