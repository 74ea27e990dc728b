//! `allegro-bridge process [--json] [--out DIR] PATH...` (contract §6): the
//! same pipeline as the daemon, on files, without a broker.

use std::io::{Read, Write};
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
/// their records written in a few concurrent parts, each with one
/// directory sync (`outbox::write_batch`), and reported in the order given,
/// on a thread of their own while the next chunk is processed.
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
    let files = collect_files(&args.paths);
    let failed = std::thread::scope(|s| {
        // One chunk waits while the next is processed: the writer's disk
        // time overlaps the pipeline's CPU time, and memory stays bounded.
        // `None` closes the run; without it (a panic here) no total is printed.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Vec<Done>>>(1);
        let writer = s.spawn(|| write_and_report(&out_dir, args.json, rx));
        for chunk in files.chunks(CHUNK) {
            if tx
                .send(Some(process_parallel(&pipeline, chunk, workers)))
                .is_err()
            {
                break; // the writer stopped on an error; it reports it
            }
        }
        let _ = tx.send(None);
        writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })?;
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Writes each chunk's records, then reports its files in order (flushed
/// per chunk, so progress shows), and the total once the run is closed;
/// returns how many files were not processed.
fn write_and_report(
    out_dir: &Path,
    json: bool,
    chunks: std::sync::mpsc::Receiver<Option<Vec<Done>>>,
) -> anyhow::Result<usize> {
    let mut report = Report::new(std::io::BufWriter::new(std::io::stdout().lock()), json);
    loop {
        match chunks.recv() {
            Ok(Some(mut done)) => {
                write_records(out_dir, &mut done);
                for d in done {
                    report.line(d)?;
                }
                report.out.flush()?;
            }
            Ok(None) => break,
            // Gone without closing the run: the processing panicked, and
            // that panic is what is reported; a total would mislead.
            Err(_) => return Ok(report.failed),
        }
    }
    report.total()?;
    report.out.flush()?;
    Ok(report.failed)
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
            s.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = files.get(i) else { break };
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(process_one(pipeline, item, &mut buf));
                }
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

/// Reads one file into `buf` (reused by the thread: no allocation and no
/// `stat` per file) and runs it through the pipeline.
fn process_one(
    pipeline: &Pipeline,
    item: &Result<PathBuf, (PathBuf, String)>,
    buf: &mut Vec<u8>,
) -> Done {
    let path = match item {
        Ok(p) => p.clone(),
        Err((p, e)) => return Done::Failed(p.clone(), e.clone()),
    };
    buf.clear();
    // Read through `take`: `File::read_to_end` would `stat` and `lseek`
    // for a size hint the reused buffer does not need.
    let read = std::fs::File::open(&path).and_then(|f| f.take(u64::MAX).read_to_end(buf));
    match read {
        Ok(_) => {
            let processed = pipeline.process(buf, None);
            Done::Processed(path, processed, None)
        }
        Err(e) => Done::Failed(path, format!("cannot read: {e}")),
    }
}

/// How many `write_batch` calls of a chunk run at once. Concurrent fsyncs
/// share the file system's journal commits: on ext4 the files of a chunk
/// reach the disk faster this way than one after another (measured in
/// `benches/process.rs`), while on tmpfs it costs a thread and a directory
/// sync per part.
const WRITERS: usize = 4;

/// Writes the chunk's records in up to [`WRITERS`] parts at once, each with
/// one directory sync; when a part fails, each accepted file of that part is
/// reported as not processed (the other parts are written). A record goes
/// to the part its antragId picks, so that files with the same antragId are
/// written by one part in the order given: the last one wins, every time.
fn write_records(out_dir: &Path, done: &mut [Done]) {
    let mut parts: Vec<Vec<(usize, String)>> = vec![Vec::new(); WRITERS];
    for (i, d) in done.iter().enumerate() {
        if let Done::Processed(_, Processed::Accepted { application, .. }, _) = d {
            let id = application.antrag_id;
            let part = (id.as_u128() % WRITERS as u128) as usize;
            parts[part].push((i, format!("{id}.xml")));
        }
    }
    parts.retain(|p| !p.is_empty());
    let results = write_parts(out_dir, done, &parts);
    for (part, result) in parts.iter().zip(results) {
        for (i, name) in part {
            let Done::Processed(path, _, record_path) = &mut done[*i] else {
                continue;
            };
            match &result {
                Ok(()) => *record_path = Some(out_dir.join(name)),
                Err(e) => {
                    let why = format!("cannot write the record to {}: {e}", out_dir.display());
                    done[*i] = Done::Failed(path.clone(), why);
                }
            }
        }
    }
}

/// One `write_batch` per part, on threads of their own; the results in the
/// parts' order.
fn write_parts(
    out_dir: &Path,
    done: &[Done],
    parts: &[Vec<(usize, String)>],
) -> Vec<std::io::Result<()>> {
    let record = |i: usize| match &done[i] {
        Done::Processed(_, Processed::Accepted { record, .. }, _) => record.as_slice(),
        _ => unreachable!("only accepted files are named"),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| {
                s.spawn(move || {
                    let files = part.iter().map(|(i, n)| (n.as_str(), record(*i)));
                    outbox::write_batch(out_dir, files)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
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
                // The lines before it first, so that a terminal shows both in order.
                self.out.flush()?;
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
