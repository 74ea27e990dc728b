//! IT's commands: `run` (the daemon), `config check`, `dlq list|show|replay`
//! and `recheck --dry-run`.
//!
//! The `dlq` commands work on the dead-letter queue itself (the queue is the
//! source of truth; the database's dead-letter log only records what was sent
//! there): they take the messages with `basic.get` without acknowledging
//! them, and closing the channel returns every message not replayed.

use std::path::Path;

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::{Args, Subcommand};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use uuid::Uuid;

use allegro_core::pipeline::{Outcome, Pipeline};
use allegro_daemon::config::Settings;
use allegro_daemon::deadletter::{self, header_str};
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
    /// One line per dead letter: id, antragId, reason, first seen, detail.
    List,
    /// Headers and properties of one dead letter (ID: dead-letter id or antragId).
    Show {
        id: String,
        /// Also print the body (it holds personal data: handle with care).
        #[arg(long)]
        body: bool,
    },
    /// Put dead letters back on the intake queue once their cause is fixed.
    Replay(ReplayArgs),
}

/// Arguments of `dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Dead-letter id or antragId.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Replay every dead letter.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `recheck`.
#[derive(Debug, Args)]
pub struct RecheckArgs {
    /// Only report; change nothing (required for now: releasing cases is the
    /// caseworkers' job in the workbench).
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
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter).with_filter(floor))
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

/// One message taken from the DLQ.
struct Taken {
    tag: u64,
    props: BasicProperties,
    body: Vec<u8>,
}

impl Taken {
    fn id(&self) -> Option<String> {
        header_str(&self.props, deadletter::H_ID)
    }
    fn antrag_id(&self) -> Option<String> {
        header_str(&self.props, deadletter::H_ANTRAG_ID)
            .or_else(|| self.props.message_id().as_ref().map(|m| m.to_string()))
    }
    fn matches(&self, id: &str) -> bool {
        self.id().as_deref() == Some(id) || self.antrag_id().as_deref() == Some(id)
    }
    fn reason(&self) -> String {
        header_str(&self.props, deadletter::H_REASON).unwrap_or_else(|| {
            // Dead-lettered by the broker (x-delivery-limit): no headers of ours.
            "delivery_limit".into()
        })
    }
}

/// Takes every message of the DLQ without acknowledging it.
async fn take_all(ch: &Channel, queue: &str) -> anyhow::Result<Vec<Taken>> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .with_context(|| format!("reading dead-letter queue `{queue}`"))?
    {
        let d = m.delivery;
        out.push(Taken {
            tag: d.delivery_tag,
            props: d.properties,
            body: d.data,
        });
    }
    Ok(out)
}

/// `allegro-bridge dlq ...`.
pub fn dlq(config: Option<&Path>, cmd: DlqCommand) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    runtime()?.block_on(dlq_async(settings, cmd))
}

async fn dlq_async(settings: Settings, cmd: DlqCommand) -> anyhow::Result<i32> {
    let b = &settings.broker;
    let conn = Connection::connect(
        &b.url,
        ConnectionProperties::default().with_connection_name("allegro-bridge-dlq".into()),
    )
    .await
    .context("connecting to the broker")?;
    let ch = conn.create_channel().await?;
    let all = take_all(&ch, &b.dlq).await?;
    // A crash between publishing a dead letter and committing its log row can
    // leave two copies with the same dead-letter id: show and replay one.
    let mut seen = std::collections::HashSet::new();
    let (taken, copies): (Vec<Taken>, Vec<Taken>) = all
        .into_iter()
        .partition(|t| t.id().is_none_or(|id| seen.insert(id)));
    let code = match cmd {
        DlqCommand::List => {
            println!(
                "{:<36}  {:<36}  {:<16}  {:<24}  detail",
                "id", "antragId", "reason", "first seen"
            );
            for t in &taken {
                println!(
                    "{:<36}  {:<36}  {:<16}  {:<24}  {}",
                    t.id().unwrap_or_else(|| "-".into()),
                    t.antrag_id().unwrap_or_else(|| "-".into()),
                    t.reason(),
                    header_str(&t.props, deadletter::H_FIRST_SEEN).unwrap_or_else(|| "-".into()),
                    header_str(&t.props, deadletter::H_DETAIL).unwrap_or_default(),
                );
            }
            eprintln!("{} dead letter(s)", taken.len());
            0
        }
        DlqCommand::Show { id, body } => match taken.iter().find(|t| t.matches(&id)) {
            None => {
                eprintln!("no dead letter with id or antragId {id}");
                1
            }
            Some(t) => {
                println!("id:          {}", t.id().unwrap_or_else(|| "-".into()));
                println!(
                    "antragId:    {}",
                    t.antrag_id().unwrap_or_else(|| "-".into())
                );
                println!("reason:      {}", t.reason());
                for h in [
                    deadletter::H_DETAIL,
                    deadletter::H_FIRST_SEEN,
                    deadletter::H_OUTCOME,
                    deadletter::H_VERSION,
                ] {
                    println!(
                        "{h}: {}",
                        header_str(&t.props, h).unwrap_or_else(|| "-".into())
                    );
                }
                println!(
                    "content_type: {}",
                    t.props
                        .content_type()
                        .as_ref()
                        .map(|c| c.as_str())
                        .unwrap_or("-")
                );
                println!("body_sha256: {}", deadletter::sha256_hex(&t.body));
                println!("body_bytes:  {}", t.body.len());
                if body {
                    println!("{}", String::from_utf8_lossy(&t.body));
                }
                0
            }
        },
        DlqCommand::Replay(args) => {
            let store = Store::connect(&settings.store).await?;
            let pub_ch = conn.create_channel().await?;
            pub_ch
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            let mut n = 0;
            for t in taken
                .iter()
                .filter(|t| args.all || args.id.as_deref().is_some_and(|id| t.matches(id)))
            {
                replay_one(&store, &ch, &pub_ch, &b.intake_queue, t).await?;
                for c in copies.iter().filter(|c| c.id() == t.id()) {
                    ch.basic_ack(c.tag, BasicAckOptions::default()).await?;
                }
                n += 1;
            }
            store.close().await;
            eprintln!("{n} dead letter(s) replayed to `{}`", b.intake_queue);
            if n == 0 && !args.all {
                1
            } else {
                0
            }
        }
    };
    // Closing returns every message not acked (i.e. not replayed) to the DLQ.
    let _ = ch.close(200, "OK".into()).await;
    let _ = conn.close(200, "OK".into()).await;
    Ok(code)
}

/// Frees the dedup key, publishes to the intake with confirm, acks the DLQ
/// copy. A crash in between leaves the dead letter in the DLQ (at worst it is
/// replayed twice, which the daemon recognises as a duplicate).
async fn replay_one(
    store: &Store,
    dlq_ch: &Channel,
    pub_ch: &Channel,
    intake: &str,
    t: &Taken,
) -> anyhow::Result<()> {
    let now = Utc::now();
    match t.id().and_then(|i| Uuid::parse_str(&i).ok()) {
        Some(id) => {
            store.mark_replayed(id, now).await?;
        }
        None => {
            let key = deadletter::dedup_key(
                &deadletter::sha256_hex(&t.body),
                t.props.message_id().as_ref().map(|m| m.as_str()),
            );
            store.mark_replayed_by_key(&key, now).await?;
        }
    }
    let conf = pub_ch
        .basic_publish(
            "".into(),
            intake.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &t.body,
            deadletter::strip_bridge_headers(&t.props),
        )
        .await?
        .await?;
    if !conf.is_ack() || conf.take_message().is_some() {
        bail!("the broker did not accept the replayed message (does `{intake}` exist?)");
    }
    dlq_ch.basic_ack(t.tag, BasicAckOptions::default()).await?;
    Ok(())
}

/// `allegro-bridge recheck --dry-run`.
pub fn recheck(config: Option<&Path>, args: RecheckArgs) -> anyhow::Result<i32> {
    if !args.dry_run {
        bail!("only `recheck --dry-run` exists: releasing cases is done by caseworkers");
    }
    let settings = load_settings(config)?;
    let pipeline = Pipeline::load(&settings.pipeline).context("loading mappings")?;
    runtime()?.block_on(async {
        let store = Store::connect(&settings.store).await?;
        let (mut total, mut pass, mut still, mut invalid) = (0u64, 0u64, 0u64, 0u64);
        let mut after = None;
        loop {
            let page = store.open_cases(after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.antrag_id);
            for a in &page {
                total += 1;
                match pipeline.process(&a.body, a.message_id.as_deref()).outcome() {
                    Outcome::Accepted => pass += 1,
                    Outcome::Rejected => still += 1,
                    Outcome::Invalid => invalid += 1,
                }
            }
        }
        store.close().await;
        println!("open cases:             {total}");
        println!("would now be accepted:  {pass}");
        println!("still rejected:         {still}");
        println!("would now be invalid:   {invalid}");
        println!("(dry run: nothing was changed)");
        Ok(0)
    })
}
