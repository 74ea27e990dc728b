//! `allegro-bridge process [--json] [--out DIR] PATH...` (contract §6): the
//! same pipeline as the daemon, on files, without a broker.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use allegro_core::finding::{Finding, Severity};
use allegro_core::pipeline::{Outcome, Pipeline, Processed};
use allegro_daemon::config::Settings;
use allegro_store::outbox;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Print one JSON object per application and line.
    #[arg(long)]
    pub json: bool,
    /// Where records are written (default: the configured outbox).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Files or directories of `.json` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// One line of `--json` output, keys in the contract's order.
#[derive(Serialize)]
struct JsonLine<'a> {
    file: String,
    #[serde(rename = "antragId")]
    antrag_id: Option<String>,
    outcome: Outcome,
    findings: &'a [Finding],
    record: Option<String>,
}

/// Expands the arguments into the list of files, in a stable order.
pub fn collect_files(paths: &[PathBuf]) -> Vec<Result<PathBuf, (PathBuf, String)>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut files: Vec<PathBuf> = rd
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "json"))
                        .collect();
                    files.sort();
                    out.extend(files.into_iter().map(Ok));
                }
                Err(e) => out.push(Err((p.clone(), format!("cannot read directory: {e}")))),
            }
        } else {
            out.push(Ok(p.clone()));
        }
    }
    out
}

fn count(p: &Processed, sev: Severity, nachweis: bool) -> usize {
    p.findings()
        .iter()
        .filter(|f| f.severity == sev && f.nachweis.is_some() == nachweis)
        .count()
}

pub fn run(config: Option<&Path>, args: ProcessArgs) -> anyhow::Result<i32> {
    let settings = Settings::load(config)?;
    let pipeline = Pipeline::load(&settings.pipeline)?;
    let out_dir = args.out.clone().unwrap_or(settings.outbox.dir.clone());
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let (mut accepted, mut rejected, mut invalid, mut failed) = (0, 0, 0, 0);
    for item in collect_files(&args.paths) {
        let path = match item {
            Ok(p) => p,
            Err((p, e)) => {
                eprintln!("{}: {e}", p.display());
                failed += 1;
                continue;
            }
        };
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let processed = pipeline.process(&body, None);
        let mut record_path = None;
        if let Processed::Accepted {
            application,
            record: xml,
        } = &processed
        {
            let id = application.antrag_id;
            match outbox::write_atomic(&out_dir, &format!("{id}.xml"), xml) {
                Ok(p) => record_path = Some(p),
                Err(e) => {
                    eprintln!(
                        "{}: cannot write the record to {}: {e}",
                        path.display(),
                        out_dir.display()
                    );
                    failed += 1;
                    continue;
                }
            }
        }
        match processed.outcome() {
            Outcome::Accepted => accepted += 1,
            Outcome::Rejected => rejected += 1,
            Outcome::Invalid => invalid += 1,
        }
        if args.json {
            let line = JsonLine {
                file: path.display().to_string(),
                antrag_id: processed.antrag_id().map(|u| u.to_string()),
                outcome: processed.outcome(),
                findings: processed.findings(),
                record: record_path.as_ref().map(|p| p.display().to_string()),
            };
            writeln!(stdout, "{}", serde_json::to_string(&line)?)?;
        } else {
            let id = processed
                .antrag_id()
                .map_or_else(|| "-".to_string(), |u| u.to_string());
            let what = match &processed {
                Processed::Accepted { .. } => format!(
                    "{} warning(s), {} document(s) owed -> {}",
                    count(&processed, Severity::Warning, false),
                    count(&processed, Severity::Info, true),
                    record_path
                        .as_ref()
                        .map_or(String::new(), |p| p.display().to_string())
                ),
                Processed::Rejected(application) => {
                    let errors: Vec<String> = application
                        .findings
                        .iter()
                        .filter(|f| f.is_error())
                        .map(|f| format!("{} at {}", f.rule, f.pointer))
                        .collect();
                    format!("{} error(s): {}", errors.len(), errors.join(", "))
                }
                Processed::Invalid(i) => format!("{}: {}", i.reason, i.detail),
            };
            writeln!(
                stdout,
                "{:<8} {}  {}  {}",
                processed.outcome().as_str(),
                path.display(),
                id,
                what
            )?;
        }
    }
    if !args.json {
        writeln!(
            stdout,
            "total: {} file(s): {accepted} accepted, {rejected} rejected, {invalid} invalid, {failed} not processed",
            accepted + rejected + invalid + failed
        )?;
    }
    Ok(if failed == 0 { 0 } else { 1 })
}
