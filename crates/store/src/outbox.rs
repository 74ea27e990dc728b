//! The outbox directory: import records written atomically.
//!
//! A record is written to a temporary file in the same directory, flushed to
//! disk, renamed to `<antragId>.xml` and the directory is synced, so a reader
//! never sees half a file and a crash leaves either the old state or the new.
//! [`write_batch`] does the same for many records with one directory sync.
//! [`dispatch`] writes pending records and marks them written: the daemon's
//! dispatcher and a case released in the workbench both go through it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `dir/name` atomically (temp file, fsync, rename, fsync of
/// the directory). Creates `dir` if needed. Overwrites an existing file of the
/// same name with identical semantics, so a retry after a crash is harmless.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    check_name(name)?;
    fs::create_dir_all(dir)?;
    let tmp = stage(dir, bytes)?;
    let target = dir.join(name);
    tmp.persist(&target).map_err(|e| e.error)?;
    sync_dir(dir)?;
    Ok(target)
}

/// Writes many records atomically with one directory sync: each goes to its
/// own temporary file, flushed to disk, before any is renamed; then all are
/// renamed and the directory is synced once. When this returns `Ok`, every
/// file is durable under its name. On an error, files renamed so far are
/// complete (and will be rewritten identically on the retry); temporary
/// files not yet renamed are removed.
pub fn write_batch<'a>(
    dir: &Path,
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut staged = Vec::new();
    for (name, bytes) in files {
        check_name(name)?;
        staged.push((stage(dir, bytes)?, name));
    }
    if staged.is_empty() {
        return Ok(());
    }
    for (tmp, name) in staged {
        tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    }
    sync_dir(dir)
}

/// Writes `records` as files on blocking threads, `parallel` chunks at a
/// time (each chunk one [`write_batch`], one directory sync), then marks
/// them written in the store (their `outbox_pending` rows are deleted). On
/// an error the rows stay pending and a later sweep writes them again.
pub async fn dispatch(
    store: &crate::Store,
    dir: &Path,
    records: Vec<crate::PendingRecord>,
    parallel: usize,
) -> anyhow::Result<()> {
    let ids: Vec<_> = records.iter().map(|r| r.antrag_id).collect();
    write_records(dir.to_path_buf(), records, parallel).await?;
    store.mark_written(&ids).await?;
    Ok(())
}

async fn write_records(
    dir: PathBuf,
    records: Vec<crate::PendingRecord>,
    parallel: usize,
) -> anyhow::Result<()> {
    let per = records.len().div_ceil(parallel.max(1)).max(1);
    let mut tasks = Vec::new();
    let mut records = records;
    while !records.is_empty() {
        let rest = records.split_off(per.min(records.len()));
        let chunk = std::mem::replace(&mut records, rest);
        let dir = dir.clone();
        tasks.push(tokio::task::spawn_blocking(move || -> io::Result<()> {
            write_batch(
                &dir,
                chunk
                    .iter()
                    .map(|r| (r.file_name.as_str(), r.xml.as_slice())),
            )
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid record file name {name:?}"),
        ));
    }
    Ok(())
}

/// A temporary file in `dir` holding `bytes`, flushed to disk.
fn stage(dir: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".part")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    // On Linux a directory can be opened read-only and fsynced.
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_atomic(dir.path(), "a.xml", b"one").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(dir.path(), "a.xml", b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["a.xml".to_string()]);
    }

    #[test]
    fn batch_writes_every_file_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "b.xml", b"old").unwrap();
        let files = [("a.xml", &b"A"[..]), ("b.xml", b"B"), ("c.xml", b"C")];
        write_batch(dir.path(), files).unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.xml", "b.xml", "c.xml"]);
        assert_eq!(fs::read(dir.path().join("b.xml")).unwrap(), b"B");
    }

    #[test]
    fn batch_with_a_bad_name_renames_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = [("a.xml", &b"A"[..]), ("../x.xml", b"X")];
        assert!(write_batch(dir.path(), files).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_path_names() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(dir.path(), "../x.xml", b"x").is_err());
        assert!(write_atomic(dir.path(), ".hidden", b"x").is_err());
    }
}
