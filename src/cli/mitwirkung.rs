//! `allegro-bridge mitwirkung briefe`: writes the letters *Aufforderung zur
//! Mitwirkung* (`allegro_web::letters::write_letter`, the same code as the
//! workbench's „Aufforderung erstellen“) — for the applications given, or
//! with `--faellig` for every application that owes a document not yet
//! requested. Each letter is stored with its application (the workbench
//! offers it for download; `--ausgabe DIR` also writes the PDFs there).
//! Prints one line per application: antragId, documents, deadline; nothing
//! personal.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::{Args, Subcommand};
use uuid::Uuid;

use allegro_core::pipeline::Pipeline;
use allegro_store::cases::Scope;
use allegro_store::Store;
use allegro_web::letters::{write_letter, LetterError};

use super::ops::{init_logging, load_settings};

/// `mitwirkung` subcommands.
#[derive(Debug, Subcommand)]
pub enum MitwirkungCommand {
    /// Write request letters for documents owed.
    Briefe(BriefeArgs),
}

/// Arguments of `mitwirkung briefe`.
#[derive(Debug, Args)]
pub struct BriefeArgs {
    /// Every application with a document owed and not yet requested.
    #[arg(long, conflicts_with = "antrag")]
    pub faellig: bool,
    /// Only applications of this Dienststelle (with --faellig).
    #[arg(long, requires = "faellig")]
    pub dienststelle: Option<String>,
    /// These applications (antragIds).
    #[arg(long = "antrag", value_name = "ANTRAG_ID")]
    pub antrag: Vec<Uuid>,
    /// Also write each PDF into this folder as `<antragId>-<letter id>.pdf`.
    #[arg(long, value_name = "DIR")]
    pub ausgabe: Option<PathBuf>,
}

/// `allegro-bridge mitwirkung ...`.
pub fn run(config: Option<&Path>, cmd: MitwirkungCommand) -> anyhow::Result<i32> {
    let MitwirkungCommand::Briefe(args) = cmd;
    if !args.faellig && args.antrag.is_empty() {
        bail!("name applications with --antrag ID, or write all due letters with --faellig");
    }
    let settings = load_settings(config)?;
    init_logging(&settings);
    let problems = settings.mitwirkung.validate();
    if !problems.is_empty() {
        bail!("invalid configuration:\n  {}", problems.join("\n  "));
    }
    let pipeline = Pipeline::load(&settings.pipeline).context("loading mappings")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Store::connect(&settings.store).await?;
        let result = letters(&store, &pipeline, &settings.mitwirkung, &args).await;
        store.close().await;
        result
    })
}

async fn letters(
    store: &Store,
    pipeline: &Pipeline,
    settings: &allegro_web::letters::MitwirkungSettings,
    args: &BriefeArgs,
) -> anyhow::Result<i32> {
    let ids = if args.faellig {
        let scope = match &args.dienststelle {
            Some(d) => Scope::Dienststellen(vec![d.clone()]),
            None => Scope::All,
        };
        store.letters_due(&scope).await?
    } else {
        args.antrag.clone()
    };
    let (mut written, mut failed) = (0, 0);
    for id in ids {
        match write_letter(store, pipeline, settings, id, "system", Utc::now()).await {
            Ok(w) => {
                written += 1;
                println!(
                    "{id}\t{} Nachweis(e)\tFrist {}",
                    w.documents,
                    w.deadline.format("%d.%m.%Y")
                );
                if let Some(dir) = &args.ausgabe {
                    save(store, dir, id, w.letter_id).await?;
                }
            }
            Err(LetterError::Store(e)) => return Err(e.into()),
            Err(e) => {
                failed += 1;
                eprintln!("{id}: {e}");
            }
        }
    }
    eprintln!("{written} letter(s) written, {failed} not");
    Ok(if failed > 0 { 1 } else { 0 })
}

async fn save(store: &Store, dir: &Path, id: Uuid, letter: i64) -> anyhow::Result<()> {
    let (_, pdf) = store
        .letter_pdf(letter)
        .await?
        .context("the letter just stored is gone")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{id}-{letter}.pdf"));
    std::fs::write(&path, pdf).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
