//! The one sorted file walk: mapping files, fixtures and `process` inputs
//! are all found by it, so every tool sees files in the same order (by name,
//! folder by folder), on every file system.

use std::path::{Path, PathBuf};

/// The files under `dir` for which `keep` holds, sorted by name within each
/// folder; sub-folders are entered where `descend` holds for them.
pub fn sorted_files(
    dir: &Path,
    descend: &dyn Fn(&Path) -> bool,
    keep: &dyn Fn(&Path) -> bool,
) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, descend, keep, &mut out)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    descend: &dyn Fn(&Path) -> bool,
    keep: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        // The entry's type comes with the listing (no `stat` per file);
        // only a symbolic link is followed to see what it points to.
        let is_dir = match e.file_type() {
            Ok(t) if !t.is_symlink() => t.is_dir(),
            _ => p.is_dir(), // a link, or a file system without types in its listing
        };
        if is_dir {
            if descend(&p) {
                walk(&p, descend, keep, out)?;
            }
        } else if keep(&p) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_folder_by_folder_with_filters() {
        let d = std::env::temp_dir().join(format!("walk-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for f in [
            "b.toml",
            "a.toml",
            "c.txt",
            "sub/z.toml",
            "skip/y.toml",
            "sub/a.toml",
        ] {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let files = sorted_files(&d, &|p| !p.ends_with("skip"), &|p| {
            p.extension().is_some_and(|x| x == "toml")
        })
        .unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(&d).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.toml", "b.toml", "sub/a.toml", "sub/z.toml"]);
        std::fs::remove_dir_all(&d).unwrap();
        assert!(sorted_files(&d, &|_| true, &|_| true).is_err());
    }
}
