//! The file edge of mapping loading: reading the mappings folder and the
//! JSON Schemas, parsing TOML, resolving includes, and putting the compiled
//! mappings into one set. Everything after reading is in memory, so the
//! tests below feed files as strings.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::compile;
use super::error::{line_of, Errs, LoadError, LoadErrors, Source};
use super::raw::RawFile;
use super::MappingSet;

/// One parsed TOML file.
pub(crate) struct Parsed {
    pub path: PathBuf,
    pub source: String,
    pub file: RawFile,
}

impl Source for Parsed {
    fn path(&self) -> &Path {
        &self.path
    }
    fn text(&self) -> &str {
        &self.source
    }
}

/// Reads a schema file's text by name.
type ReadSchema<'a> = Box<dyn FnMut(&str) -> Option<String> + 'a>;

/// JSON Schemas by file name, each read and parsed once.
pub(crate) struct Schemas<'a> {
    /// Where they are read from (named in "not found").
    pub dir: PathBuf,
    read: ReadSchema<'a>,
    cache: HashMap<String, Option<Arc<Value>>>,
}

impl<'a> Schemas<'a> {
    pub fn new(dir: &Path, read: impl FnMut(&str) -> Option<String> + 'a) -> Schemas<'a> {
        Schemas {
            dir: dir.to_path_buf(),
            read: Box::new(read),
            cache: HashMap::new(),
        }
    }

    /// The schema document, or `None` if it is missing or not JSON.
    pub fn get(&mut self, name: &str) -> Option<Arc<Value>> {
        if let Some(v) = self.cache.get(name) {
            return v.clone();
        }
        let v = (self.read)(name)
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .map(Arc::new);
        self.cache.insert(name.to_string(), v.clone());
        v
    }
}

/// Loads and compiles every mapping under `mappings_dir`, with schemas from
/// `schemas_dir`.
pub fn load(mappings_dir: &Path, schemas_dir: &Path) -> Result<MappingSet, LoadErrors> {
    let mut errs = Errs::default();
    let toml = |p: &Path| p.extension().is_some_and(|x| x == "toml");
    let paths = match crate::walk::sorted_files(mappings_dir, &|_| true, &toml) {
        Ok(paths) => paths,
        Err(e) => {
            errs.file(
                mappings_dir,
                format!("cannot read the mappings folder: {e}"),
            );
            return Err(LoadErrors(errs.list));
        }
    };
    let mut files = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(s) => files.push((path, s)),
            Err(e) => errs.file(&path, format!("cannot read: {e}")),
        }
    }
    let mut schemas = Schemas::new(schemas_dir, |name| {
        std::fs::read_to_string(schemas_dir.join(name)).ok()
    });
    let set = assemble(files, mappings_dir, &mut schemas, &mut errs);
    finish(set, errs)
}

/// Parses the files and compiles every mapping among them (pure).
pub(crate) fn assemble(
    files: Vec<(PathBuf, String)>,
    mappings_dir: &Path,
    schemas: &mut Schemas<'_>,
    errs: &mut Errs,
) -> MappingSet {
    let parsed: Vec<Parsed> = files
        .into_iter()
        .filter_map(|(path, source)| parse(path, source, errs))
        .collect();
    let mut set = MappingSet::default();
    let mut included = BTreeSet::new();
    for p in &parsed {
        if p.file.mapping.is_some() {
            let parts = includes(p, &parsed, mappings_dir, &mut included, errs);
            if let Some(m) = compile::compile(p, &parts, schemas, errs) {
                set.insert(p, m, errs);
            }
        }
    }
    for (i, p) in parsed.iter().enumerate() {
        if p.file.mapping.is_none() && !included.contains(&i) {
            set.unused_fragments.push(p.path.clone());
        }
    }
    if set.is_empty() && errs.list.is_empty() {
        errs.file(
            mappings_dir,
            "no mapping found (a mapping is a .toml file with a [mapping] section)",
        );
    }
    set
}

fn parse(path: PathBuf, source: String, errs: &mut Errs) -> Option<Parsed> {
    match toml::from_str::<RawFile>(&source) {
        Ok(file) => Some(Parsed { path, source, file }),
        Err(e) => {
            errs.list.push(LoadError {
                line: e.span().map(|s| line_of(&source, s.start)),
                file: path,
                message: e.message().trim().to_string(),
            });
            None
        }
    }
}

/// The fragments a mapping includes, in order, then the mapping itself.
fn includes<'p>(
    main: &'p Parsed,
    parsed: &'p [Parsed],
    mappings_dir: &Path,
    included: &mut BTreeSet<usize>,
    errs: &mut Errs,
) -> Vec<&'p Parsed> {
    let header = main.file.mapping.as_ref().expect("a mapping");
    let mut parts = Vec::new();
    for inc in &header.get_ref().include {
        let path = mappings_dir.join(inc.get_ref());
        match parsed.iter().position(|p| p.path == path) {
            Some(j) if parsed[j].file.mapping.is_some() => errs.at(
                main,
                inc.span(),
                format!("include {:?} is itself a mapping; only fragments (files without [mapping]) can be included", inc.get_ref()),
            ),
            Some(j) => {
                included.insert(j);
                parts.push(&parsed[j]);
            }
            None => errs.at(
                main,
                inc.span(),
                format!("include {:?} not found in {}", inc.get_ref(), mappings_dir.display()),
            ),
        }
    }
    parts.push(main);
    parts
}

/// The set, unless there is any problem (each reported once).
fn finish(set: MappingSet, mut errs: Errs) -> Result<MappingSet, LoadErrors> {
    let mut seen = BTreeSet::new();
    errs.list
        .retain(|e| seen.insert((e.file.clone(), e.line, e.message.clone())));
    if errs.list.is_empty() {
        Ok(set)
    } else {
        Err(LoadErrors(errs.list))
    }
}

/// Compiles files given as `(name, TOML)` against schemas given as
/// `(name, JSON)`; the rendered problems, or the set. For the tests of
/// every compiler part.
#[cfg(test)]
pub(crate) fn load_str(
    files: &[(&str, &str)],
    schemas: &[(&str, &str)],
) -> Result<MappingSet, Vec<String>> {
    let files = files
        .iter()
        .map(|(n, s)| (PathBuf::from(n), s.to_string()))
        .collect();
    let mut lookup = Schemas::new(Path::new("schemas"), |name| {
        schemas
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.to_string())
    });
    let mut errs = Errs::default();
    let set = assemble(files, Path::new(""), &mut lookup, &mut errs);
    finish(set, errs).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type": "object", "properties": {"a": {"type": "string"}}}"#;

    /// A mapping for form F `version`, including `include`.
    fn mapping(version: &str, include: &str) -> String {
        let texts: String = super::super::SCHEMA_MESSAGE_KINDS
            .iter()
            .map(|k| format!("{k} = {{ rule = \"S-{k}\", message = \"{{Feld}}.\" }}\n"))
            .collect();
        format!("[mapping]\nname = \"f-{version}\"\nform = \"F\"\nversion = \"{version}\"\nschema = \"s.json\"\nrecord = \"1.0\"\ninclude = [{include}]\n[schema_messages]\n{texts}")
    }

    fn check(files: &[(&str, &str)], expected: &[&str]) {
        let got = match load_str(files, &[("s.json", SCHEMA)]) {
            Ok(_) => vec![],
            Err(e) => e,
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn mappings_include_fragments_and_unused_ones_are_listed() {
        let set = load_str(
            &[
                ("a.toml", &mapping("1.0", "\"frag.toml\"")),
                ("frag.toml", ""),
                ("lose.toml", ""),
            ],
            &[("s.json", SCHEMA)],
        )
        .unwrap();
        assert_eq!(set.get("F", "1.0").unwrap().name, "f-1.0");
        assert_eq!(set.unused_fragments, [PathBuf::from("lose.toml")]);
    }

    #[test]
    fn toml_errors_name_their_line() {
        check(
            &[
                ("a.toml", &mapping("1.0", "")),
                ("b.toml", "[labels]\nfields = 5\n"),
            ],
            &["b.toml:2: invalid type: integer `5`, expected a map"],
        );
    }

    #[test]
    fn includes_are_existing_fragments() {
        check(
            &[("a.toml", &mapping("1.0", "\"b.toml\", \"fehlt.toml\"")), ("b.toml", &mapping("2.0", ""))],
            &[
                "a.toml:7: include \"b.toml\" is itself a mapping; only fragments (files without [mapping]) can be included",
                "a.toml:7: include \"fehlt.toml\" not found in ",
            ],
        );
    }

    #[test]
    fn one_mapping_per_form_and_version() {
        check(
            &[
                ("a.toml", &mapping("1.0", "")),
                ("b.toml", &mapping("1.0", "")),
            ],
            &["b.toml:1: a mapping for form F version 1.0 exists already (a.toml)"],
        );
        check(
            &[("frag.toml", "")],
            &[": no mapping found (a mapping is a .toml file with a [mapping] section)"],
        );
    }

    #[test]
    fn unreadable_folders_and_files_are_named() {
        let missing = Path::new("/nonexistent/allegro-mappings");
        let e = load(missing, missing).unwrap_err().to_string();
        assert!(
            e.starts_with("/nonexistent/allegro-mappings: cannot read the mappings folder: "),
            "{e}"
        );

        let dir = std::env::temp_dir().join(format!("allegro-core-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kaputt.toml"), b"name = \"\xff\"\n").unwrap();
        let e = load(&dir, &dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        let file = dir.join("kaputt.toml").display().to_string();
        assert_eq!(
            e,
            format!("{file}: cannot read: stream did not contain valid UTF-8")
        );
    }
}
