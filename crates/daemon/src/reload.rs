//! The mapping set in force, and reloading it on SIGHUP.
//!
//! [`Mappings`] holds the compiled set as a `std::sync::RwLock<Arc<Pipeline>>`.
//! Each batch takes an `Arc<Pipeline>` snapshot when its pipeline stage
//! starts ([`Mappings::snapshot`]: a read lock held for one reference count
//! increment), so a batch finishes with the set it started with even if a
//! reload swaps in another meanwhile; the old set is freed when its last
//! batch drops it. A reload loads and compiles the whole set from disk on a
//! blocking thread ([`Pipeline::load`] with the same `PipelineConfig`) and
//! takes the write lock only to replace the pointer. (A `RwLock` rather than
//! the `arc-swap` crate: one uncontended read lock per batch of up to 250
//! deliveries costs nothing measurable, and the lock is never held across
//! anything that could panic, so it needs no extra dependency.)
//!
//! A set with any problem is refused whole: one error line names every
//! problem as `file:line: message` (the loader's text) and the set in force
//! stays. Either way the daemon keeps running. systemd hears `RELOADING=1`
//! (with `MONOTONIC_USEC=`, as `Type=notify-reload` expects) before and
//! `READY=1` after a reload; the metrics count reloads by result and show
//! when the set in force was loaded and its content hash ([`set_hash`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use tracing::{error, info};

use crate::metrics::Metrics;
use crate::retry::Shutdown;
use allegro_core::mapping::LoadErrors;
use allegro_core::pipeline::{Pipeline, PipelineConfig};

/// How many hex digits of the set's hash log lines show.
pub const HASH_PREFIX: usize = 12;

/// A compiled mapping set with what identifies it.
pub struct Loaded {
    pub pipeline: Pipeline,
    /// [`set_hash`] of the files it was compiled from.
    pub hash: String,
    /// Unix time (seconds) when it was loaded.
    pub loaded_at: f64,
}

impl Loaded {
    /// The number of mappings (form versions) in the set.
    pub fn mappings(&self) -> usize {
        self.pipeline.mappings().all().len()
    }

    /// The hash prefix for log lines.
    pub fn short_hash(&self) -> &str {
        &self.hash[..HASH_PREFIX.min(self.hash.len())]
    }
}

/// Loads and compiles the whole mapping set from disk (blocking). The hash
/// is taken before and after compiling; if the files changed meanwhile (an
/// editor or a deployment still writing), it tries again, so the hash always
/// describes the files the set was compiled from.
pub fn load(config: &PipelineConfig) -> anyhow::Result<Loaded> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let before = set_hash(&config.mappings_dir);
        // The loader's own `file: problem` first (e.g. a missing folder).
        let pipeline = Pipeline::load(config)?;
        let before =
            before.with_context(|| format!("reading {}", config.mappings_dir.display()))?;
        let after = set_hash(&config.mappings_dir)
            .with_context(|| format!("reading {}", config.mappings_dir.display()))?;
        if before == after {
            return Ok(Loaded {
                pipeline,
                hash: after,
                loaded_at: unix_now(),
            });
        }
        if attempts == 3 {
            anyhow::bail!(
                "{}: the mapping files kept changing while they were loaded",
                config.mappings_dir.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The content hash of a mapping set: SHA-256 over every `*.toml` file under
/// `dir` (recursively, as the loader finds them), in sorted order of their
/// paths relative to `dir`, each as its path, a NUL byte, its length (8 bytes,
/// big-endian) and its content. The same files give the same hash wherever
/// the folder lives. Lower-case hex.
pub fn set_hash(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect_toml(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for rel in files {
        let content = std::fs::read(dir.join(&rel))?;
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        h.update(name.as_bytes());
        h.update([0]);
        h.update((content.len() as u64).to_be_bytes());
        h.update(&content);
    }
    Ok(hex::encode(h.finalize()))
}

fn collect_toml(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_toml(root, &p, out)?;
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
        }
    }
    Ok(())
}

fn unix_now() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

/// The mapping set in force (see the module documentation).
pub struct Mappings {
    current: RwLock<Arc<Pipeline>>,
}

impl Mappings {
    pub fn new(pipeline: Pipeline) -> Mappings {
        Mappings {
            current: RwLock::new(Arc::new(pipeline)),
        }
    }

    /// The set in force now; a batch keeps it until it is done.
    pub fn snapshot(&self) -> Arc<Pipeline> {
        // Nothing can panic while the lock is held, but a poisoned lock
        // still holds a valid pointer.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `pipeline` in force for every batch that starts from now on.
    pub fn swap(&self, pipeline: Pipeline) {
        let new = Arc::new(pipeline);
        let old = {
            let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *cur, new)
        };
        // The old set is freed here or by the last batch using it, outside
        // the lock.
        drop(old);
    }
}

impl allegro_web::workbench::PipelineSource for Mappings {
    fn current(&self) -> Arc<Pipeline> {
        self.snapshot()
    }
}

/// One problem per line from the loader becomes one log line: problems
/// joined by `; ` (at most `MAX_PROBLEMS`, then how many more).
pub fn one_line(e: &anyhow::Error) -> String {
    const MAX_PROBLEMS: usize = 10;
    let problems: Vec<String> = match e.downcast_ref::<LoadErrors>() {
        Some(errs) => errs.0.iter().map(|p| p.to_string()).collect(),
        None => format!("{e:#}").lines().map(str::to_string).collect(),
    };
    let mut line = problems
        .iter()
        .take(MAX_PROBLEMS)
        .map(|p| p.replace('\n', " "))
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > MAX_PROBLEMS {
        line.push_str(&format!("; and {} more", problems.len() - MAX_PROBLEMS));
    }
    line
}

/// Records the set now in force in the metrics.
pub fn record_in_force(metrics: &Metrics, loaded: &Loaded) {
    metrics.set_mapping_set(&loaded.hash, loaded.loaded_at);
}

/// Reloads the set (SIGHUP): loads on a blocking thread, swaps it in or keeps
/// the old one, counts and logs the result. `ready` says whether systemd has
/// been told `READY=1` already; only then is it told about the reload (and
/// not `READY=1` again once the daemon is stopping).
pub async fn reload(
    config: &PipelineConfig,
    mappings: &Mappings,
    metrics: &Metrics,
    ready: &AtomicBool,
    shutdown: &Shutdown,
) {
    let notify = ready.load(Ordering::SeqCst);
    if notify {
        let mut states = vec![sd_notify::NotifyState::Reloading];
        if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        let _ = sd_notify::notify(&states);
    }
    let cfg = config.clone();
    let result = tokio::task::spawn_blocking(move || load(&cfg))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the loading thread failed: {e}")));
    match result {
        Ok(loaded) => {
            let (short, count) = (loaded.short_hash().to_string(), loaded.mappings());
            let Loaded {
                pipeline,
                hash,
                loaded_at,
            } = loaded;
            mappings.swap(pipeline);
            // Logged before it is counted: whoever sees the count finds the line.
            info!(hash = %short, mappings = count, "SIGHUP: mapping set reloaded and in force");
            metrics.set_mapping_set(&hash, loaded_at);
            metrics.mapping_reloaded(true);
        }
        Err(e) => {
            let in_force = metrics.mapping_set_hash();
            let in_force = &in_force[..HASH_PREFIX.min(in_force.len())];
            error!(
                error = %one_line(&e),
                in_force = %in_force,
                "SIGHUP: mapping set refused; the previous set stays in force"
            );
            metrics.mapping_reloaded(false);
        }
    }
    if notify && !shutdown.is_set() {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    }
}

/// Reloads the mapping set on every SIGHUP, one reload at a time (signals
/// arriving during a reload are folded into one more reload). Must be called
/// before anything could send SIGHUP: without a handler it ends the process.
pub fn spawn_hangup_handler(
    config: PipelineConfig,
    mappings: Arc<Mappings>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP: reloading the mapping set");
            reload(&config, &mappings, &metrics, &ready, &shutdown).await;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn the_hash_follows_paths_and_contents_not_the_folder() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            write(d, "x.toml", "a = 1\n");
            write(d, "common/y.toml", "b = 2\n");
            write(d, "README.md", "not a mapping");
        }
        let ha = set_hash(a.path()).unwrap();
        assert_eq!(ha.len(), 64);
        assert_eq!(ha, set_hash(b.path()).unwrap());
        // Other files do not count.
        write(b.path(), "notes.txt", "x");
        assert_eq!(ha, set_hash(b.path()).unwrap());
        // A changed content, a renamed file: another hash.
        write(b.path(), "common/y.toml", "b = 3\n");
        assert_ne!(ha, set_hash(b.path()).unwrap());
        write(b.path(), "common/y.toml", "b = 2\n");
        assert_eq!(ha, set_hash(b.path()).unwrap());
        std::fs::rename(b.path().join("x.toml"), b.path().join("z.toml")).unwrap();
        assert_ne!(ha, set_hash(b.path()).unwrap());
    }

    #[test]
    fn the_repositorys_set_loads_and_swaps() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let config = PipelineConfig {
            mappings_dir: root.join("mappings"),
            schemas_dir: root.join("schemas"),
            ..PipelineConfig::default()
        };
        let loaded = load(&config).unwrap();
        assert!(loaded.mappings() > 0);
        let m = Mappings::new(loaded.pipeline);
        let before = m.snapshot();
        m.swap(load(&config).unwrap().pipeline);
        let after = m.snapshot();
        assert!(!Arc::ptr_eq(&before, &after), "a batch keeps its own set");
    }

    #[test]
    fn a_refused_set_is_one_line_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", "[mapping]\nname = 5\n");
        write(dir.path(), "b.toml", "= broken\n");
        let config = PipelineConfig {
            mappings_dir: dir.path().to_path_buf(),
            ..PipelineConfig::default()
        };
        let err = load(&config).err().expect("refused");
        let line = one_line(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("a.toml:"), "{line}");
        assert!(line.contains("b.toml:1:"), "{line}");
    }
}
