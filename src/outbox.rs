//! The outbox directory: import records written atomically.
//!
//! A record is written to a temporary file in the same directory, flushed to
//! disk, renamed to `<antragId>.xml` and the directory is synced, so a reader
//! never sees half a file and a crash leaves either the old state or the new.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `dir/name` atomically (temp file, fsync, rename, fsync of
/// the directory). Creates `dir` if needed. Overwrites an existing file of the
/// same name with identical semantics, so a retry after a crash is harmless.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    if name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid record file name {name:?}"),
        ));
    }
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".part")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let target = dir.join(name);
    tmp.persist(&target).map_err(|e| e.error)?;
    sync_dir(dir)?;
    Ok(target)
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
    fn refuses_path_names() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(dir.path(), "../x.xml", b"x").is_err());
        assert!(write_atomic(dir.path(), ".hidden", b"x").is_err());
    }
}
