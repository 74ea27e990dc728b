//! JSON Pointers (RFC 6901) and the pointer patterns mappings use.
//!
//! A pattern is a pointer whose segments may be `*` (every element of an
//! array). Mappings also use relative patterns: `./x` (below the current
//! element) and `../x` (a sibling of the current element).

use std::fmt::Write;

use serde_json::Value;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Any,
}

/// A parsed absolute pattern such as `/weiterePersonen/*/steuerId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    pub segs: Vec<Seg>,
}

/// Whether a pattern is absolute or relative to the current element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// `/a/b`: from the document root.
    Root,
    /// `./a` (levels = 0) or `../a` (levels = 1): from the current element,
    /// going `levels` segments up first.
    Relative { levels: usize },
}

/// A pattern with its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub anchor: Anchor,
    pub pattern: Pattern,
}

/// One step of a concrete path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// A concrete location in a document, cheap to extend and render.
pub type Path<'a> = Vec<Step<'a>>;

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

impl Pattern {
    /// Parses `""` (the root) or `/a/*/b`.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        if s.is_empty() {
            return Ok(Pattern { segs: vec![] });
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(format!(
                "pointer {s:?} must start with '/' (or be empty for the root)"
            ));
        };
        Ok(Pattern {
            segs: rest
                .split('/')
                .map(|p| {
                    if p == "*" {
                        Seg::Any
                    } else {
                        Seg::Key(unescape(p))
                    }
                })
                .collect(),
        })
    }

    /// Whether the pattern contains a wildcard.
    pub fn has_wildcard(&self) -> bool {
        self.segs.contains(&Seg::Any)
    }

    /// Calls `f` for every value that matches, with its concrete path
    /// (`base` prepended). Missing keys and non-arrays under `*` match nothing.
    pub fn for_each<'v, F>(&self, doc: &'v Value, base: &Path<'v>, f: &mut F)
    where
        F: FnMut(&Path<'v>, &'v Value),
    {
        let mut path = base.clone();
        walk(&self.segs, doc, &mut path, f);
    }

    /// Collects all matches.
    #[cfg(test)]
    pub fn matches<'v>(&self, doc: &'v Value, base: &Path<'v>) -> Vec<(Path<'v>, &'v Value)> {
        let mut out = Vec::new();
        self.for_each(doc, base, &mut |p, v| out.push((p.clone(), v)));
        out
    }

    /// True if `path` is matched by this pattern (same length, keys equal, `*` any index).
    pub fn matches_path(&self, path: &[Step<'_>]) -> bool {
        self.segs.len() == path.len()
            && self.segs.iter().zip(path).all(|(s, p)| match (s, p) {
                (Seg::Any, Step::Index(_)) => true,
                (Seg::Key(k), Step::Key(q)) => k == q,
                (Seg::Key(k), Step::Index(i)) => k.parse::<usize>().ok() == Some(*i),
                _ => false,
            })
    }

    /// The single value at a wildcard-free pattern below `v`, without allocating.
    pub fn get<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        let mut cur = v;
        for seg in &self.segs {
            cur = match (seg, cur) {
                (Seg::Key(k), Value::Object(m)) => m.get(k.as_str())?,
                (Seg::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The pattern written back as text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for seg in &self.segs {
            s.push('/');
            match seg {
                Seg::Any => s.push('*'),
                Seg::Key(k) => escape_into(&mut s, k),
            }
        }
        s
    }
}

fn walk<'v, F>(segs: &[Seg], v: &'v Value, path: &mut Path<'v>, f: &mut F)
where
    F: FnMut(&Path<'v>, &'v Value),
{
    let Some((first, rest)) = segs.split_first() else {
        f(path, v);
        return;
    };
    match first {
        Seg::Any => {
            if let Value::Array(items) = v {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    walk(rest, item, path, f);
                    path.pop();
                }
            }
        }
        Seg::Key(k) => match v {
            Value::Object(map) => {
                if let Some((key, child)) = map.get_key_value(k.as_str()) {
                    path.push(Step::Key(key.as_str()));
                    walk(rest, child, path, f);
                    path.pop();
                }
            }
            Value::Array(items) => {
                if let Some((i, child)) = k
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i).map(|c| (i, c)))
                {
                    path.push(Step::Index(i));
                    walk(rest, child, path, f);
                    path.pop();
                }
            }
            _ => {}
        },
    }
}

impl Ref {
    /// Parses `/abs`, `./rel` or `../sibling` (also `../../x`).
    pub fn parse(s: &str) -> Result<Ref, String> {
        let mut levels = 0usize;
        let mut rest = s;
        let mut relative = false;
        if let Some(r) = rest.strip_prefix("./") {
            relative = true;
            rest = r;
        } else if rest == "." {
            return Ok(Ref {
                anchor: Anchor::Relative { levels: 0 },
                pattern: Pattern { segs: vec![] },
            });
        } else {
            while let Some(r) = rest.strip_prefix("../") {
                relative = true;
                levels += 1;
                rest = r;
            }
        }
        if relative {
            let pattern = if rest.is_empty() {
                Pattern { segs: vec![] }
            } else {
                Pattern::parse(&format!("/{rest}"))?
            };
            Ok(Ref {
                anchor: Anchor::Relative { levels },
                pattern,
            })
        } else {
            Ok(Ref {
                anchor: Anchor::Root,
                pattern: Pattern::parse(s)?,
            })
        }
    }

    /// Resolves against `doc`, relative ones from the element at `current`.
    pub fn for_each<'v, F>(&self, doc: &'v Value, current: &Path<'v>, f: &mut F)
    where
        F: FnMut(&Path<'v>, &'v Value),
    {
        match self.anchor {
            Anchor::Root => self.pattern.for_each(doc, &Vec::new(), f),
            Anchor::Relative { levels } => {
                if levels > current.len() {
                    return;
                }
                let base: Path<'v> = current[..current.len() - levels].to_vec();
                if let Some(start) = get_path(doc, &base) {
                    let mut path = base;
                    walk(&self.pattern.segs, start, &mut path, f);
                }
            }
        }
    }

    /// The value of a wildcard-free reference, without allocating: from the
    /// root, from `current_value` (the element at `current`) or from an
    /// ancestor of `current`.
    pub fn get<'v>(
        &self,
        doc: &'v Value,
        current: &[Step<'_>],
        current_value: Option<&'v Value>,
    ) -> Option<&'v Value> {
        match self.anchor {
            Anchor::Root => self.pattern.get(doc),
            Anchor::Relative { levels: 0 } => match current_value {
                Some(v) => self.pattern.get(v),
                None => self.pattern.get(get_path(doc, current)?),
            },
            Anchor::Relative { levels } => {
                let keep = current.len().checked_sub(levels)?;
                self.pattern.get(get_path(doc, &current[..keep])?)
            }
        }
    }

    /// The first match, if any.
    pub fn first<'v>(&self, doc: &'v Value, current: &Path<'v>) -> Option<(Path<'v>, &'v Value)> {
        let mut out = None;
        self.for_each(doc, current, &mut |p, v| {
            if out.is_none() {
                out = Some((p.clone(), v));
            }
        });
        out
    }

    /// The absolute pattern this reference denotes when the current element
    /// matches `each` (used by the linter and coverage).
    pub fn absolute(&self, each: Option<&Pattern>) -> Option<Pattern> {
        match self.anchor {
            Anchor::Root => Some(self.pattern.clone()),
            Anchor::Relative { levels } => {
                let each = each?;
                if levels > each.segs.len() {
                    return None;
                }
                let mut segs = each.segs[..each.segs.len() - levels].to_vec();
                segs.extend(self.pattern.segs.iter().cloned());
                Some(Pattern { segs })
            }
        }
    }
}

/// Follows a concrete path.
pub fn get_path<'v>(doc: &'v Value, path: &[Step<'_>]) -> Option<&'v Value> {
    let mut v = doc;
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Object(m)) => m.get(*k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Renders a concrete path as an RFC 6901 pointer.
pub fn render(path: &[Step<'_>]) -> String {
    let mut s = String::new();
    for step in path {
        s.push('/');
        match step {
            Step::Key(k) => escape_into(&mut s, k),
            Step::Index(i) => {
                let _ = write!(s, "{i}");
            }
        }
    }
    s
}

/// Resolves a concrete RFC 6901 pointer (owned segments, for callers outside the core).
pub fn parse_concrete(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(vec![]);
    }
    Some(
        pointer
            .strip_prefix('/')?
            .split('/')
            .map(unescape)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcard_matches_each_array_element() {
        let doc = json!({"p": [{"id": "a"}, {"x": 1}, {"id": "c"}]});
        let pat = Pattern::parse("/p/*/id").unwrap();
        let got: Vec<String> = pat
            .matches(&doc, &Vec::new())
            .iter()
            .map(|(p, _)| render(p))
            .collect();
        assert_eq!(got, vec!["/p/0/id", "/p/2/id"]);
    }

    #[test]
    fn escaping_round_trips() {
        let doc = json!({"a/b": {"m~n": 1}});
        let pat = Pattern::parse("/a~1b/m~0n").unwrap();
        let m = pat.matches(&doc, &Vec::new());
        assert_eq!(render(&m[0].0), "/a~1b/m~0n");
        assert_eq!(pat.render(), "/a~1b/m~0n");
    }

    #[test]
    fn relative_refs_resolve_from_current_element() {
        let doc = json!({"p": [{"id": "a", "g": "1990-01-01", "k": {"v": 2}}]});
        let current = vec![Step::Key("p"), Step::Index(0), Step::Key("k")];
        let sib = Ref::parse("../g").unwrap();
        let (path, v) = sib.first(&doc, &current).unwrap();
        assert_eq!(render(&path), "/p/0/g");
        assert_eq!(v, &json!("1990-01-01"));
        let below = Ref::parse("./v").unwrap();
        assert_eq!(below.first(&doc, &current).unwrap().1, &json!(2));
    }

    #[test]
    fn rejects_pointer_without_slash() {
        assert!(Pattern::parse("a/b").is_err());
    }

    #[test]
    fn matches_path_checks_shape() {
        let pat = Pattern::parse("/w/*/id").unwrap();
        assert!(pat.matches_path(&[Step::Key("w"), Step::Index(3), Step::Key("id")]));
        assert!(!pat.matches_path(&[Step::Key("w"), Step::Key("x"), Step::Key("id")]));
    }
}
