//! The check API's clients (`[api] clients_file`): who may call it, with
//! which bearer token and from which browser origins, at what rate.
//!
//! The file is TOML, one `[[client]]` table per client:
//!
//! ```toml
//! [[client]]
//! name = "antragsportal"
//! token_sha256 = "9f86d0…"          # SHA-256 of the token, hex
//! origins = ["https://antrag.jobcenter.example"]
//! requests_per_minute = 1200        # optional; else [api] requests_per_minute
//! ```
//!
//! Only the token's hash is stored; `allegro-bridge api-client add` makes a
//! token, appends its hash and prints the token once. A presented token is
//! hashed and compared with every client's hash in constant time, so neither
//! the answer nor its timing tells how much of a token was right.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token starts with, so that a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "abr_";

/// One `[[client]]` table as written in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    pub name: String,
    pub token_sha256: String,
    #[serde(default)]
    pub origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    #[serde(default, rename = "client")]
    clients: Vec<ClientEntry>,
}

/// A client as the API knows it once the file is read.
pub struct Client {
    /// Its name (used in metrics and logs; not personal data).
    pub name: Arc<str>,
    hash: [u8; 32],
    /// Browser origins allowed to call with this client's token.
    pub origins: Vec<String>,
    /// Its own rate limit.
    pub limiter: DefaultDirectRateLimiter,
}

/// Every client of the file.
#[derive(Default)]
pub struct Clients {
    clients: Vec<Client>,
}

impl Clients {
    /// Reads the file; the error names the file and, for syntax errors, the
    /// line; for a bad value, the client and the key.
    pub fn load(path: &Path, default_per_minute: NonZeroU32) -> anyhow::Result<Clients> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot read the API clients file: {e} (create it with \
                 `allegro-bridge api-client add NAME --origin URL`)",
                path.display()
            )
        })?;
        Clients::parse(&text, default_per_minute)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Parses the file's text.
    pub fn parse(text: &str, default_per_minute: NonZeroU32) -> Result<Clients, String> {
        let file: ClientsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut clients = Vec::with_capacity(file.clients.len());
        for (i, e) in file.clients.into_iter().enumerate() {
            let at = format!("client {} ({:?})", i + 1, e.name);
            validate_name(&e.name).map_err(|m| format!("{at}: name: {m}"))?;
            if clients.iter().any(|c: &Client| *c.name == *e.name) {
                return Err(format!("{at}: name: used twice"));
            }
            let hash = parse_hash(&e.token_sha256)
                .ok_or_else(|| format!("{at}: token_sha256: expected 64 hex digits"))?;
            let origins = e
                .origins
                .iter()
                .map(|o| normalize_origin(o).map_err(|m| format!("{at}: origins: {m}")))
                .collect::<Result<Vec<_>, _>>()?;
            let per_minute = match e.requests_per_minute {
                Some(n) => NonZeroU32::new(n)
                    .ok_or_else(|| format!("{at}: requests_per_minute: must be at least 1"))?,
                None => default_per_minute,
            };
            clients.push(Client {
                name: e.name.as_str().into(),
                hash,
                origins,
                limiter: limiter(per_minute),
            });
        }
        Ok(Clients { clients })
    }

    /// The client whose token this is. Every client's hash is compared, in
    /// constant time, whatever matches.
    pub fn authenticate(&self, token: &str) -> Option<&Client> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for c in &self.clients {
            if bool::from(c.hash.ct_eq(&presented)) {
                found = Some(c);
            }
        }
        found
    }

    /// Whether any client may call from `origin` (the CORS preflight carries
    /// no token, so it is answered for the union of all clients' origins).
    pub fn any_allows(&self, origin: &str) -> bool {
        self.clients.iter().any(|c| c.allows(origin))
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there is none (then every call is refused).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

impl Client {
    /// Whether a browser at `origin` may use this client's token.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }
}

/// A limiter of `per_minute` requests, with a burst of a tenth of a
/// minute's worth (at least 1): a form's page check is a request or two.
fn limiter(per_minute: NonZeroU32) -> DefaultDirectRateLimiter {
    let burst = NonZeroU32::new((per_minute.get() / 10).max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_minute(per_minute).allow_burst(burst))
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Lower-case letters, digits, `-` and `_`, 1 to 64 of them.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("expected 1 to 64 of a-z, 0-9, - and _".into())
    }
}

/// An origin as browsers send it: `https://host` or `http://host:port`,
/// no path, no trailing slash; the scheme and host lower-cased.
pub fn normalize_origin(text: &str) -> Result<String, String> {
    let t = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| format!("`{text}`: expected https://host[:port]"))?;
    let host_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if host_ok {
        Ok(t)
    } else {
        Err(format!(
            "`{text}`: expected https://host[:port], without path"
        ))
    }
}

/// The entries of the file at `path`, as written.
pub fn entries(path: &Path) -> anyhow::Result<Vec<ClientEntry>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let file: ClientsFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(file.clients)
}

/// A new token: the prefix and 32 random bytes as hex.
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// The hash stored for `token`.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Adds a client to the file at `path` (created if absent; kept as it is
/// otherwise, comments included) and returns its new token, which exists
/// nowhere else.
pub fn add(path: &Path, name: &str, origins: &[String]) -> anyhow::Result<String> {
    validate_name(name).map_err(|m| anyhow::anyhow!("name {name:?}: {m}"))?;
    let origins = origins
        .iter()
        .map(|o| normalize_origin(o).map_err(|m| anyhow::anyhow!("--origin {m}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    };
    let file: ClientsFile =
        toml::from_str(&existing).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if file.clients.iter().any(|c| c.name == name) {
        anyhow::bail!("{}: a client named {name:?} exists already", path.display());
    }
    let token = new_token()?;
    let entry = ClientsFile {
        clients: vec![ClientEntry {
            name: name.into(),
            token_sha256: token_hash(&token),
            origins,
            requests_per_minute: None,
        }],
    };
    let mut text = existing;
    if text.is_empty() {
        text.push_str("# Clients of the check API (allegro-bridge api-client add).\n");
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&toml::to_string(&entry)?);
    write_atomically(path, &text)?;
    Ok(token)
}

/// Writes through a temporary file in the same folder and renames it.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("clients")
    ));
    std::fs::write(&tmp, text).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    // The new file keeps the old one's mode and owner (the daemon's user
    // must still read it).
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
        let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
    }
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PER_MINUTE: NonZeroU32 = NonZeroU32::new(60).unwrap();

    #[test]
    fn a_token_finds_its_client_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.toml");
        let a = add(&path, "portal", &["https://Antrag.example/".into()]).unwrap();
        let b = add(&path, "backend", &[]).unwrap();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 4 + 64 && a != b);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&a[4..]), "the token itself is not stored");
        let clients = Clients::load(&path, PER_MINUTE).unwrap();
        assert_eq!(clients.len(), 2);
        let portal = clients.authenticate(&a).unwrap();
        assert_eq!(&*portal.name, "portal");
        assert!(portal.allows("https://antrag.example"));
        assert!(!portal.allows("https://evil.example"));
        assert_eq!(&*clients.authenticate(&b).unwrap().name, "backend");
        assert!(clients.authenticate(&a[..a.len() - 1]).is_none());
        assert!(clients.authenticate("").is_none());
        assert!(clients.any_allows("https://antrag.example"));
        assert!(add(&path, "portal", &[])
            .unwrap_err()
            .to_string()
            .contains("exists"));
        // Adding keeps the file's mode (the daemon's user must read it).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        add(&path, "third", &[]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let err = |t: &str| Clients::parse(t, PER_MINUTE).err().unwrap();
        assert!(
            err("[[client]]\nname = 3").contains("line 2"),
            "{}",
            err("[[client]]\nname = 3")
        );
        let bad_hash = "[[client]]\nname = \"a\"\ntoken_sha256 = \"xyz\"\n";
        assert_eq!(
            err(bad_hash),
            "client 1 (\"a\"): token_sha256: expected 64 hex digits"
        );
        let h = "0".repeat(64);
        let bad_origin = format!(
            "[[client]]\nname = \"a\"\ntoken_sha256 = \"{h}\"\norigins = [\"antrag.example\"]\n"
        );
        assert!(err(&bad_origin).contains("origins: `antrag.example`"));
        let twice = format!("[[client]]\nname = \"a\"\ntoken_sha256 = \"{h}\"\n[[client]]\nname = \"a\"\ntoken_sha256 = \"{h}\"\n");
        assert!(err(&twice).contains("used twice"));
        assert!(err("[[client]]\nname = \"A B\"\ntoken_sha256 = \"\"\n").contains("name:"));
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        assert_eq!(
            normalize_origin("HTTPS://Antrag.Example:8443/").unwrap(),
            "https://antrag.example:8443"
        );
        assert!(normalize_origin("https://a.example/path").is_err());
        assert!(normalize_origin("ftp://a.example").is_err());
        assert!(normalize_origin("https://").is_err());
    }
}
