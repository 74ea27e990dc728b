//! `allegro-bridge process [--json] [--out DIR] PATH...` (contract §6): the
//! same pipeline as the daemon, on files, without a broker.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use allegro_core::finding::{Finding, Severity};
use allegro_core::pipeline::{Outcome, Pipeline, Processed};
use allegro_core::walk::sorted_files;
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

/// Expands the arguments into the list of files: a folder gives its `.json`
/// files (not its sub-folders), sorted by name.
pub fn collect_files(paths: &[PathBuf]) -> Vec<Result<PathBuf, (PathBuf, String)>> {
    let json = |f: &Path| f.extension().is_some_and(|x| x == "json");
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(Ok(p.clone()));
            continue;
        }
        match sorted_files(p, &|_| false, &json) {
            Ok(files) => out.extend(files.into_iter().map(Ok)),
            Err(e) => out.push(Err((p.clone(), format!("cannot read directory: {e}")))),
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

/// Files per chunk: read and run through the pipeline on every core, then
/// their records written with one directory sync (`outbox::write_batch`),
/// then reported in the order given.
const CHUNK: usize = 512;

/// What became of one file.
enum Done {
    /// Could not be read (or listed).
    Failed(PathBuf, String),
    /// Went through the pipeline; the record path is set once written.
    Processed(PathBuf, Processed, Option<PathBuf>),
}

pub fn run(config: Option<&Path>, args: ProcessArgs) -> anyhow::Result<i32> {
    let settings = Settings::load(config)?;
    let pipeline = Pipeline::load(&settings.pipeline)?;
    let out_dir = args.out.clone().unwrap_or(settings.outbox.dir.clone());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stdout = std::io::stdout();
    let mut report = Report::new(stdout.lock(), args.json);
    let files = collect_files(&args.paths);
    for chunk in files.chunks(CHUNK) {
        let mut done = process_parallel(&pipeline, chunk, workers);
        write_records(&out_dir, &mut done);
        for d in done {
            report.line(d)?;
        }
    }
    report.total()?;
    Ok(if report.failed == 0 { 0 } else { 1 })
}

/// Reads and processes `files` on `workers` threads, results in input order.
fn process_parallel(
    pipeline: &Pipeline,
    files: &[Result<PathBuf, (PathBuf, String)>],
    workers: usize,
) -> Vec<Done> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Done>>> =
        files.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.min(files.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = files.get(i) else { break };
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(process_one(pipeline, item));
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every file was processed")
        })
        .collect()
}

fn process_one(pipeline: &Pipeline, item: &Result<PathBuf, (PathBuf, String)>) -> Done {
    let path = match item {
        Ok(p) => p.clone(),
        Err((p, e)) => return Done::Failed(p.clone(), e.clone()),
    };
    match std::fs::read(&path) {
        Ok(body) => Done::Processed(path, pipeline.process(&body, None), None),
        Err(e) => Done::Failed(path, format!("cannot read: {e}")),
    }
}

/// Writes the chunk's records with one directory sync; on failure, each
/// accepted file of the chunk is reported as not processed.
fn write_records(out_dir: &Path, done: &mut [Done]) {
    let names: Vec<(usize, String)> = done
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Done::Processed(_, Processed::Accepted { application, .. }, _) => {
                Some((i, format!("{}.xml", application.antrag_id)))
            }
            _ => None,
        })
        .collect();
    let files = names.iter().map(|(i, name)| match &done[*i] {
        Done::Processed(_, Processed::Accepted { record, .. }, _) => {
            (name.as_str(), record.as_slice())
        }
        _ => unreachable!("only accepted files are named"),
    });
    let result = outbox::write_batch(out_dir, files);
    for (i, name) in names {
        let Done::Processed(path, _, record_path) = &mut done[i] else {
            continue;
        };
        match &result {
            Ok(()) => *record_path = Some(out_dir.join(&name)),
            Err(e) => {
                let why = format!("cannot write the record to {}: {e}", out_dir.display());
                done[i] = Done::Failed(path.clone(), why);
            }
        }
    }
}

/// The report on stdout: one line per file (text or JSON) and the total.
struct Report<W: Write> {
    out: W,
    json: bool,
    accepted: usize,
    rejected: usize,
    invalid: usize,
    failed: usize,
}

impl<W: Write> Report<W> {
    fn new(out: W, json: bool) -> Self {
        Report {
            out,
            json,
            accepted: 0,
            rejected: 0,
            invalid: 0,
            failed: 0,
        }
    }

    fn line(&mut self, done: Done) -> anyhow::Result<()> {
        let (path, processed, record_path) = match done {
            Done::Failed(path, e) => {
                eprintln!("{}: {e}", path.display());
                self.failed += 1;
                return Ok(());
            }
            Done::Processed(path, processed, record_path) => (path, processed, record_path),
        };
        match processed.outcome() {
            Outcome::Accepted => self.accepted += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Invalid => self.invalid += 1,
        }
        if self.json {
            let line = JsonLine {
                file: path.display().to_string(),
                antrag_id: processed.antrag_id().map(|u| u.to_string()),
                outcome: processed.outcome(),
                findings: processed.findings(),
                record: record_path.as_ref().map(|p| p.display().to_string()),
            };
            writeln!(self.out, "{}", serde_json::to_string(&line)?)?;
        } else {
            let id = processed
                .antrag_id()
                .map_or_else(|| "-".to_string(), |u| u.to_string());
            writeln!(
                self.out,
                "{:<8} {}  {}  {}",
                processed.outcome().as_str(),
                path.display(),
                id,
                summary(&processed, record_path.as_deref())
            )?;
        }
        Ok(())
    }

    fn total(&mut self) -> anyhow::Result<()> {
        if !self.json {
            let (a, r, i, f) = (self.accepted, self.rejected, self.invalid, self.failed);
            writeln!(
                self.out,
                "total: {} file(s): {a} accepted, {r} rejected, {i} invalid, {f} not processed",
                a + r + i + f
            )?;
        }
        Ok(())
    }
}

/// The text line's last part: warnings and documents, errors, or the reason.
fn summary(processed: &Processed, record_path: Option<&Path>) -> String {
    match processed {
        Processed::Accepted { .. } => format!(
            "{} warning(s), {} document(s) owed -> {}",
            count(processed, Severity::Warning, false),
            count(processed, Severity::Info, true),
            record_path.map_or(String::new(), |p| p.display().to_string())
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
    }
}
