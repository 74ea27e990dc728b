//! JOSE as FIT-Connect uses it, and nothing more.
//!
//! - [`decrypt`]: JWE compact serialization with `alg: RSA-OAEP-256` and
//!   `enc: A256GCM`, with or without `zip: DEF` (raw DEFLATE, RFC 1951,
//!   inflated under a size cap). Submissions, their metadata and attachments
//!   arrive this way, encrypted to the subscriber's public key.
//! - [`sign_ps512`] and [`verify_ps512`]: JWS compact serialization with
//!   `alg: PS512` (RSA-PSS, SHA-512, 64-byte salt; RFC 7518 §3.5), the
//!   security event tokens (SET) of the submission's event log.
//! - [`RsaPrivateJwk`], [`RsaPublicJwk`], [`Jwks`]: the RSA keys as JWK
//!   (RFC 7517/7518), from JSON or a file.
//!
//! Every other algorithm is refused by name, `alg: none` included; a header
//! with `crit` is refused too, since no extension is understood. The
//! cryptography is aws-lc's (aws-lc-rs). It needs private keys as DER, so
//! this module has a small DER writer for PKCS#1 `RSAPrivateKey` wrapped in
//! PKCS#8 `PrivateKeyInfo`; aws-lc checks the key's consistency when it
//! parses it.
//!
//! Key material appears in no `Debug` output and no error; decoded private
//! key parts, their DER and content keys are wiped after use. Errors and
//! `Debug` name no plaintext either ([`Decrypted`] shows its length only):
//! submissions carry personal data.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rand::{self, SystemRandom};
use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256};
use aws_lc_rs::signature::{
    RsaKeyPair, RsaPublicKeyComponents, RSA_PSS_2048_8192_SHA512, RSA_PSS_SHA512,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use flate2::read::DeflateDecoder;
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

/// The plaintext limit of [`decrypt`]: 64 MiB, after inflating.
pub const DEFAULT_MAX_PLAINTEXT: usize = 64 * 1024 * 1024;

/// The only key management algorithm [`decrypt`] accepts.
const JWE_ALG: &str = "RSA-OAEP-256";
/// The only content encryption [`decrypt`] accepts.
const JWE_ENC: &str = "A256GCM";
/// The only signature algorithm [`sign_ps512`] and [`verify_ps512`] use.
const JWS_ALG: &str = "PS512";
/// The `typ` of a security event token (RFC 8417).
const SET_TYP: &str = "secevent+jwt";
/// A256GCM: key, IV and tag lengths in bytes (RFC 7518 §5.3).
const CEK_LEN: usize = 32;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The private members of an RSA JWK (RFC 7518 §6.3.2), in PKCS#1 order.
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// What went wrong in JOSE. Names no key material and no plaintext; strings
/// taken from a token (an `alg`, a `kid`) are cut to 64 characters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// Not a compact serialization of the expected shape.
    #[error("malformed compact serialization: {0}")]
    Malformed(String),
    /// An `alg` other than the one accepted (for a JWE or a JWS).
    #[error("unsupported `alg` {alg:?}: only {expected} is accepted")]
    UnsupportedAlg { alg: String, expected: &'static str },
    /// A JWE `enc` other than A256GCM.
    #[error("unsupported `enc` {0:?}: only A256GCM is accepted")]
    UnsupportedEnc(String),
    /// A JWE `zip` other than DEF.
    #[error("unsupported `zip` {0:?}: only DEF is accepted")]
    UnsupportedZip(String),
    /// A header with `crit`: no extension is understood (RFC 7515 §4.1.11).
    #[error("unsupported critical header parameters (`crit`): {0}")]
    UnsupportedCrit(String),
    /// The JWE names a key (`kid`) other than the one given.
    #[error("the token is for key {token:?}, not for key {key:?}")]
    WrongKey { token: String, key: String },
    /// The key's `alg`, `use` or `key_ops` do not permit the operation.
    #[error("key {kid:?} may not {operation}: {reason}")]
    KeyNotPermitted {
        kid: String,
        operation: &'static str,
        reason: String,
    },
    /// Key unwrapping or authenticated decryption failed: a wrong key or a
    /// changed token. Deliberately says no more (RFC 7516 §11.5).
    #[error("decryption failed (a wrong key, or the token was changed)")]
    DecryptionFailed,
    /// The `zip: DEF` plaintext is no valid raw DEFLATE stream.
    #[error("inflating the `zip: DEF` plaintext failed: {0}")]
    InflateFailed(String),
    /// The plaintext (after inflating) is over the limit.
    #[error("the plaintext is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// The JWS signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// No `kid` where one is needed.
    #[error("no `kid`: {0}")]
    MissingKid(&'static str),
    /// The JWS header's `kid` is in no key of the set.
    #[error("no key with kid {0:?} in the key set")]
    UnknownKid(String),
    /// Not the JWK (or JWK set) expected; `origin` is the file or "JWK".
    #[error("{origin}: {reason}")]
    BadJwk { origin: String, reason: String },
    /// A key file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Arguments the caller got wrong (claims not an object, a fixed header
    /// member in `header_extra`).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// aws-lc failed where it should not (signing).
    #[error("cryptography failure: {0}")]
    Crypto(&'static str),
}

/// `s` for an error message: at most 64 characters of it.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// The public part of an RSA JWK, with the members that restrict its use.
#[derive(Clone)]
pub struct RsaPublicJwk {
    kid: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    /// The modulus, big-endian without leading zeros (as aws-lc wants it).
    n: Vec<u8>,
    /// The public exponent, likewise.
    e: Vec<u8>,
}

impl RsaPublicJwk {
    /// Parses a JWK from JSON; private members, if any, are ignored.
    pub fn from_json(json: &str) -> Result<Self, JoseError> {
        Self::parse(&parse_json(json, "JWK")?, "JWK")
    }

    /// Parses a JWK from a JSON value.
    pub fn from_value(value: &Value) -> Result<Self, JoseError> {
        Self::parse(value, "JWK")
    }

    /// Reads a JWK file; errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, JoseError> {
        let path = path.as_ref();
        let text = read_file(path)?;
        let origin = path.display().to_string();
        Self::parse(&parse_json(&text, &origin)?, &origin)
    }

    /// The key id, if the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The JWK's `alg`, if any.
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// The JWK's `use` (`enc` or `sig`), if any.
    pub fn key_use(&self) -> Option<&str> {
        self.key_use.as_deref()
    }

    /// The JWK's `key_ops`, if any.
    pub fn key_ops(&self) -> Option<&[String]> {
        self.key_ops.as_deref()
    }

    /// The modulus length in bits.
    pub fn modulus_bits(&self) -> usize {
        let leading = self.n.first().map_or(0, |b| b.leading_zeros() as usize);
        self.n.len() * 8 - leading
    }

    fn parse(value: &Value, origin: &str) -> Result<Self, JoseError> {
        Self::from_members(&Members::new(value, origin, "an RSA public key")?)
    }

    fn from_members(m: &Members<'_>) -> Result<Self, JoseError> {
        Ok(Self {
            kid: m.string("kid")?,
            alg: m.string("alg")?,
            key_use: m.string("use")?,
            key_ops: m.string_list("key_ops")?,
            n: strip_leading_zeros(&m.bytes("n")?).to_vec(),
            e: strip_leading_zeros(&m.bytes("e")?).to_vec(),
        })
    }

    /// Fails unless the key's `alg`, `use` and `key_ops` (where present)
    /// allow `operation` (a `key_ops` value) with `alg` for `key_use`.
    fn permit(&self, operation: &'static str, key_use: &str, alg: &str) -> Result<(), JoseError> {
        let refuse = |reason: String| JoseError::KeyNotPermitted {
            kid: self.kid.as_deref().map_or_else(|| "(no kid)".into(), shown),
            operation,
            reason,
        };
        if let Some(own) = self.alg.as_deref().filter(|own| *own != alg) {
            return Err(refuse(format!("its `alg` is {:?}, not {alg}", shown(own))));
        }
        if let Some(own) = self.key_use.as_deref().filter(|own| *own != key_use) {
            return Err(refuse(format!(
                "its `use` is {:?}, not {key_use}",
                shown(own)
            )));
        }
        if let Some(ops) = self
            .key_ops
            .as_ref()
            .filter(|ops| !ops.iter().any(|o| o == operation))
        {
            return Err(refuse(format!("its `key_ops` {ops:?} lack {operation}")));
        }
        Ok(())
    }
}

impl fmt::Debug for RsaPublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicJwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("use", &self.key_use)
            .field("key_ops", &self.key_ops)
            .field("bits", &self.modulus_bits())
            .finish_non_exhaustive()
    }
}

/// An RSA private JWK (two primes, all CRT members), ready for aws-lc:
/// decrypting JWEs (RSA-OAEP-256) and signing PS512.
pub struct RsaPrivateJwk {
    public: RsaPublicJwk,
    decrypting: PrivateDecryptingKey,
    signing: RsaKeyPair,
}

impl RsaPrivateJwk {
    /// Parses a private JWK from JSON.
    pub fn from_json(json: &str) -> Result<Self, JoseError> {
        let mut value = parse_json(json, "JWK")?;
        let key = Self::parse(&value, "JWK");
        wipe_private_members(&mut value);
        key
    }

    /// Parses a private JWK from a JSON value (which the caller should wipe).
    pub fn from_value(value: &Value) -> Result<Self, JoseError> {
        Self::parse(value, "JWK")
    }

    /// Reads a private JWK file; errors name the file and what was expected.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, JoseError> {
        let path = path.as_ref();
        let text = read_file(path)?;
        let origin = path.display().to_string();
        let mut value = parse_json(&text, &origin)?;
        let key = Self::parse(&value, &origin);
        wipe_private_members(&mut value);
        key
    }

    /// The public part (for a [`Jwks`], or to publish).
    pub fn public(&self) -> &RsaPublicJwk {
        &self.public
    }

    /// The key id, if the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.public.kid()
    }

    fn parse(value: &Value, origin: &str) -> Result<Self, JoseError> {
        let m = Members::new(value, origin, "an RSA private key")?;
        let public = RsaPublicJwk::from_members(&m)?;
        if m.object.contains_key("oth") {
            return Err(m.bad("multi-prime keys (`oth`) are not supported".into()));
        }
        let mut parts: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(Vec::new())]; // version 0
        parts.push(Zeroizing::new(public.n.clone()));
        parts.push(Zeroizing::new(public.e.clone()));
        for name in PRIVATE_MEMBERS {
            parts.push(m.bytes(name)?);
        }
        let integers: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let pkcs8 = pkcs8_der(&pkcs1_der(&integers));
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            m.bad(format!(
                "not a usable RSA private key: aws-lc rejects it ({e})"
            ))
        };
        Ok(Self {
            decrypting: PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(rejected)?,
            signing: RsaKeyPair::from_pkcs8(&pkcs8).map_err(rejected)?,
            public,
        })
    }
}

impl fmt::Debug for RsaPrivateJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPrivateJwk")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A JWK set (`{"keys": [...]}`) of RSA public keys, looked up by `kid`.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    keys: Vec<RsaPublicJwk>,
}

impl Jwks {
    /// A set of the given keys; two keys with the same `kid` are an error.
    pub fn new(keys: Vec<RsaPublicJwk>) -> Result<Self, JoseError> {
        Self::checked(keys, "JWKS")
    }

    /// Parses a JWK set. Keys of another `kty` are skipped (RFC 7517 §5);
    /// an RSA key that does not parse is an error.
    pub fn from_json(json: &str) -> Result<Self, JoseError> {
        Self::parse(&parse_json(json, "JWKS")?, "JWKS")
    }

    /// Parses a JWK set from a JSON value.
    pub fn from_value(value: &Value) -> Result<Self, JoseError> {
        Self::parse(value, "JWKS")
    }

    /// Reads a JWK set file; errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, JoseError> {
        let path = path.as_ref();
        let text = read_file(path)?;
        let origin = path.display().to_string();
        Self::parse(&parse_json(&text, &origin)?, &origin)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&RsaPublicJwk> {
        self.keys.iter().find(|k| k.kid() == Some(kid))
    }

    /// All keys, in the set's order.
    pub fn keys(&self) -> &[RsaPublicJwk] {
        &self.keys
    }

    fn parse(value: &Value, origin: &str) -> Result<Self, JoseError> {
        let bad = |reason: &str| JoseError::BadJwk {
            origin: origin.to_owned(),
            reason: format!("not a JWK set: {reason}"),
        };
        let list = match value.get("keys") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(bad("`keys` is not an array")),
            None => return Err(bad("field `keys` missing")),
        };
        let mut keys = Vec::new();
        for (i, key) in list.iter().enumerate() {
            if key.get("kty").and_then(Value::as_str) != Some("RSA") {
                continue;
            }
            keys.push(RsaPublicJwk::parse(key, &format!("{origin}: key {i}"))?);
        }
        Self::checked(keys, origin)
    }

    fn checked(keys: Vec<RsaPublicJwk>, origin: &str) -> Result<Self, JoseError> {
        for (i, key) in keys.iter().enumerate() {
            if let Some(kid) = key
                .kid()
                .filter(|kid| keys[..i].iter().any(|k| k.kid() == Some(kid)))
            {
                return Err(JoseError::BadJwk {
                    origin: origin.to_owned(),
                    reason: format!("two keys with kid {:?}", shown(kid)),
                });
            }
        }
        Ok(Self { keys })
    }
}

/// A JWK's members, with errors that say which key and what was expected.
struct Members<'a> {
    object: &'a Map<String, Value>,
    origin: &'a str,
    /// "an RSA private key", for "not an RSA private key: ...".
    expected: &'static str,
}

impl<'a> Members<'a> {
    /// Checks that `value` is an object with `kty: RSA`.
    fn new(value: &'a Value, origin: &'a str, expected: &'static str) -> Result<Self, JoseError> {
        let Some(object) = value.as_object() else {
            return Err(JoseError::BadJwk {
                origin: origin.to_owned(),
                reason: format!("not {expected}: not a JSON object"),
            });
        };
        let members = Self {
            object,
            origin,
            expected,
        };
        match members.string("kty")?.as_deref() {
            Some("RSA") => Ok(members),
            Some(other) => Err(members.bad(format!("`kty` is {:?}", shown(other)))),
            None => Err(members.bad("field `kty` missing".into())),
        }
    }

    fn bad(&self, reason: String) -> JoseError {
        JoseError::BadJwk {
            origin: self.origin.to_owned(),
            reason: format!("not {}: {reason}", self.expected),
        }
    }

    /// A string member, if present.
    fn string(&self, name: &str) -> Result<Option<String>, JoseError> {
        match self.object.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(format!("field `{name}` is not a string"))),
        }
    }

    /// A list-of-strings member, if present.
    fn string_list(&self, name: &str) -> Result<Option<Vec<String>>, JoseError> {
        let Some(value) = self.object.get(name) else {
            return Ok(None);
        };
        let strings = value.as_array().and_then(|list| {
            list.iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        });
        strings
            .map(Some)
            .ok_or_else(|| self.bad(format!("field `{name}` is not a list of strings")))
    }

    /// A required base64url member, decoded (wiped when dropped).
    fn bytes(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, JoseError> {
        let Some(value) = self.object.get(name) else {
            return Err(self.bad(format!("field `{name}` missing")));
        };
        let text = value
            .as_str()
            .ok_or_else(|| self.bad(format!("field `{name}` is not a string")))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| self.bad(format!("field `{name}` is not base64url")))?;
        if bytes.is_empty() {
            return Err(self.bad(format!("field `{name}` is empty")));
        }
        Ok(Zeroizing::new(bytes))
    }
}

/// A key file's text, wiped when dropped.
fn read_file(path: &Path) -> Result<Zeroizing<String>, JoseError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| JoseError::Io {
            path: path.to_owned(),
            source,
        })
}

/// JSON text to a value; the error (position only) never quotes the text.
fn parse_json(text: &str, origin: &str) -> Result<Value, JoseError> {
    serde_json::from_str(text).map_err(|e| JoseError::BadJwk {
        origin: origin.to_owned(),
        reason: format!("not JSON (line {}, column {})", e.line(), e.column()),
    })
}

/// Overwrites the private members of a parsed JWK before it is dropped.
fn wipe_private_members(value: &mut Value) {
    if let Some(object) = value.as_object_mut() {
        for name in PRIVATE_MEMBERS {
            if let Some(Value::String(s)) = object.get_mut(name) {
                s.zeroize();
            }
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

// ---------------------------------------------------------------------------
// DER (X.690) for the private key
// ---------------------------------------------------------------------------

/// PKCS#1 `RSAPrivateKey` (RFC 8017 A.1.2): a SEQUENCE of INTEGERs, given
/// as unsigned big-endian bytes: version (0, i.e. empty), n, e, d, p, q,
/// dP, dQ, qInv. The result is wiped when dropped.
fn pkcs1_der(integers: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::new());
    for integer in integers {
        der_integer(&mut body, integer);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 4));
    der_tlv(&mut out, 0x30, &body);
    out
}

/// PKCS#8 `PrivateKeyInfo` (RFC 5208) around a PKCS#1 RSA private key:
/// version 0, algorithm rsaEncryption (1.2.840.113549.1.1.1) with NULL
/// parameters, the key as OCTET STRING. The result is wiped when dropped.
fn pkcs8_der(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    const VERSION_0: [u8; 3] = [0x02, 0x01, 0x00];
    const RSA_ENCRYPTION: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut body = Zeroizing::new(Vec::with_capacity(pkcs1.len() + 24));
    body.extend_from_slice(&VERSION_0);
    body.extend_from_slice(&RSA_ENCRYPTION);
    der_tlv(&mut body, 0x04, pkcs1);
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 4));
    der_tlv(&mut out, 0x30, &body);
    out
}

/// An INTEGER from unsigned big-endian bytes: minimal, non-negative.
fn der_integer(out: &mut Vec<u8>, unsigned: &[u8]) {
    let value = strip_leading_zeros(unsigned);
    let pad = value.first().is_none_or(|b| b & 0x80 != 0);
    der_header(out, 0x02, value.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(value);
}

fn der_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    der_header(out, tag, content.len());
    out.extend_from_slice(content);
}

/// Tag and length: short form below 128, else long form (minimal).
fn der_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let significant = strip_leading_zeros(&bytes);
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

// ---------------------------------------------------------------------------
// Compact serialization
// ---------------------------------------------------------------------------

/// The `N` dot-separated segments of a compact serialization.
fn segments<const N: usize>(compact: &str) -> Result<[&str; N], JoseError> {
    let parts: Vec<&str> = compact.split('.').collect();
    let found = parts.len();
    parts.try_into().map_err(|_| {
        JoseError::Malformed(format!(
            "expected {N} dot-separated segments, found {found}"
        ))
    })
}

/// A base64url segment, decoded; `what` names it in the error.
fn decode_segment(segment: &str, what: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JoseError::Malformed(format!("the {what} is not base64url")))
}

fn encode_segment(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The protected header: base64url of a JSON object. A `crit` member is
/// refused: this implementation understands no extension.
fn decode_header(segment: &str) -> Result<Map<String, Value>, JoseError> {
    let bytes = decode_segment(segment, "header")?;
    let header = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(header)) => header,
        _ => {
            return Err(JoseError::Malformed(
                "the header is not a JSON object".into(),
            ))
        }
    };
    if let Some(crit) = header.get("crit") {
        return Err(JoseError::UnsupportedCrit(shown(&crit.to_string())));
    }
    Ok(header)
}

/// A string member of a header, if present.
fn header_str<'h>(
    header: &'h Map<String, Value>,
    name: &str,
) -> Result<Option<&'h str>, JoseError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::Malformed(format!(
            "header member `{name}` is not a string"
        ))),
    }
}

/// The header's `alg`, which must be `expected`.
fn require_alg(header: &Map<String, Value>, expected: &'static str) -> Result<(), JoseError> {
    match header_str(header, "alg")? {
        Some(alg) if alg == expected => Ok(()),
        Some(alg) => Err(JoseError::UnsupportedAlg {
            alg: shown(alg),
            expected,
        }),
        None => Err(JoseError::Malformed("the header has no `alg`".into())),
    }
}

// ---------------------------------------------------------------------------
// JWE
// ---------------------------------------------------------------------------

/// A decrypted JWE.
#[derive(Clone)]
pub struct Decrypted {
    /// The protected header.
    pub header: Value,
    /// The plaintext, inflated if the header says `zip: DEF`.
    pub plaintext: Vec<u8>,
    /// The authentication tag as sent: the fifth segment, base64url.
    /// FIT-Connect names data and attachments by it in the event log.
    pub authentication_tag: String,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("header", &self.header)
            .field("plaintext_len", &self.plaintext.len())
            .field("authentication_tag", &self.authentication_tag)
            .finish()
    }
}

/// Decrypts a JWE compact serialization (`alg: RSA-OAEP-256`,
/// `enc: A256GCM`, optionally `zip: DEF`) with at most
/// [`DEFAULT_MAX_PLAINTEXT`] bytes of plaintext.
pub fn decrypt(compact: &str, key: &RsaPrivateJwk) -> Result<Decrypted, JoseError> {
    decrypt_with_limit(compact, key, DEFAULT_MAX_PLAINTEXT)
}

/// [`decrypt`] with a plaintext limit of `max_plaintext` bytes (after
/// inflating: a zip bomb stops there with [`JoseError::TooLarge`]).
///
/// The header's `kid`, if both it and the key have one, must be the key's.
/// The key's `alg`, `use` and `key_ops`, where present, must allow
/// RSA-OAEP-256, `enc` and `unwrapKey`. The additional authenticated data
/// is the first segment as sent (RFC 7516 §5.2, step 14).
pub fn decrypt_with_limit(
    compact: &str,
    key: &RsaPrivateJwk,
    max_plaintext: usize,
) -> Result<Decrypted, JoseError> {
    let [header_b64, encrypted_key, iv, ciphertext, tag_b64] = segments::<5>(compact)?;
    let header = decode_header(header_b64)?;
    let deflated = check_jwe_header(&header, key)?;
    key.public.permit("unwrapKey", "enc", JWE_ALG)?;

    let encrypted_key = decode_segment(encrypted_key, "encrypted key")?;
    let iv = decode_segment(iv, "initialization vector")?;
    let ciphertext = decode_segment(ciphertext, "ciphertext")?;
    let tag = decode_segment(tag_b64, "authentication tag")?;
    if iv.len() != IV_LEN || tag.len() != TAG_LEN {
        return Err(JoseError::Malformed(format!(
            "A256GCM needs a {IV_LEN}-byte IV and a {TAG_LEN}-byte tag, not {} and {}",
            iv.len(),
            tag.len()
        )));
    }
    if !deflated && ciphertext.len() > max_plaintext {
        return Err(JoseError::TooLarge {
            limit: max_plaintext,
        });
    }

    let cek = unwrap_cek(key, &encrypted_key)?;
    let plaintext = open_a256gcm(&cek, &iv, header_b64.as_bytes(), &ciphertext, &tag)?;
    let plaintext = if deflated {
        inflate(&plaintext, max_plaintext)?
    } else {
        plaintext
    };
    Ok(Decrypted {
        header: Value::Object(header),
        plaintext,
        authentication_tag: tag_b64.to_owned(),
    })
}

/// Checks `alg`, `enc`, `zip` and `kid`; returns whether `zip: DEF` is set.
fn check_jwe_header(header: &Map<String, Value>, key: &RsaPrivateJwk) -> Result<bool, JoseError> {
    require_alg(header, JWE_ALG)?;
    match header_str(header, "enc")? {
        Some(JWE_ENC) => {}
        Some(enc) => return Err(JoseError::UnsupportedEnc(shown(enc))),
        None => return Err(JoseError::Malformed("the header has no `enc`".into())),
    }
    if let (Some(token), Some(own)) = (header_str(header, "kid")?, key.kid()) {
        if token != own {
            return Err(JoseError::WrongKey {
                token: shown(token),
                key: shown(own),
            });
        }
    }
    match header_str(header, "zip")? {
        None => Ok(false),
        Some("DEF") => Ok(true),
        Some(zip) => Err(JoseError::UnsupportedZip(shown(zip))),
    }
}

/// The content encryption key, unwrapped with RSA-OAEP-256. If unwrapping
/// fails, a random key takes its place, so the failure shows only later, in
/// A256GCM, the same as a changed ciphertext (RFC 7516 §11.5: no oracle
/// telling the two apart).
fn unwrap_cek(key: &RsaPrivateJwk, encrypted_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let oaep = OaepPrivateDecryptingKey::new(key.decrypting.clone())
        .map_err(|_| JoseError::DecryptionFailed)?;
    let mut buffer = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
    let unwrapped = oaep
        .decrypt(&OAEP_SHA256_MGF1SHA256, encrypted_key, &mut buffer, None)
        .ok()
        .filter(|cek| cek.len() == CEK_LEN)
        .map(|cek| Zeroizing::new(cek.to_vec()));
    match unwrapped {
        Some(cek) => Ok(cek),
        None => {
            let mut random = Zeroizing::new(vec![0u8; CEK_LEN]);
            rand::fill(&mut random).map_err(|_| JoseError::DecryptionFailed)?;
            Ok(random)
        }
    }
}

/// A256GCM authenticated decryption.
fn open_a256gcm(
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>, JoseError> {
    let failed = |_| JoseError::DecryptionFailed;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, cek).map_err(failed)?);
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(failed)?;
    let mut plaintext = vec![0u8; ciphertext.len()];
    key.open_separate_gather(nonce, Aad::from(aad), ciphertext, tag, &mut plaintext)
        .map_err(failed)?;
    Ok(plaintext)
}

/// Inflates raw DEFLATE (RFC 1951), refusing more than `max` bytes.
fn inflate(compressed: &[u8], max: usize) -> Result<Vec<u8>, JoseError> {
    let mut out = Vec::new();
    DeflateDecoder::new(compressed)
        .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| JoseError::InflateFailed(e.to_string()))?;
    if out.len() > max {
        return Err(JoseError::TooLarge { limit: max });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// JWS (PS512)
// ---------------------------------------------------------------------------

/// Signs `claims` (a JSON object) as a JWS compact serialization with the
/// header `{"alg":"PS512","typ":"secevent+jwt","kid":<the key's kid>}` plus
/// `header_extra` (which must not set `alg`, `typ` or `kid`). RSA-PSS with
/// SHA-512, MGF1-SHA-512 and a 64-byte salt (RFC 7518 §3.5).
///
/// The key needs a `kid`; its `alg`, `use` and `key_ops`, where present,
/// must allow PS512, `sig` and `sign`.
pub fn sign_ps512(
    header_extra: Option<&Map<String, Value>>,
    claims: &Value,
    key: &RsaPrivateJwk,
) -> Result<String, JoseError> {
    key.public.permit("sign", "sig", JWS_ALG)?;
    let kid = key
        .kid()
        .ok_or(JoseError::MissingKid("the signing key has none"))?;
    if !claims.is_object() {
        return Err(JoseError::InvalidInput(
            "the claims must be a JSON object".into(),
        ));
    }
    let mut header = Map::new();
    header.insert("alg".into(), JWS_ALG.into());
    header.insert("typ".into(), SET_TYP.into());
    header.insert("kid".into(), kid.into());
    for (name, value) in header_extra.into_iter().flatten() {
        if header.contains_key(name) {
            return Err(JoseError::InvalidInput(format!(
                "header_extra must not set `{name}`"
            )));
        }
        header.insert(name.clone(), value.clone());
    }
    let signing_input = format!(
        "{}.{}",
        encode_segment(&serde_json::to_vec(&header).expect("a JSON map serializes")),
        encode_segment(&serde_json::to_vec(claims).expect("a JSON value serializes"))
    );
    let mut signature = vec![0u8; key.signing.public_modulus_len()];
    key.signing
        .sign(
            &RSA_PSS_SHA512,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| JoseError::Crypto("RSA-PSS signing failed"))?;
    Ok(format!("{signing_input}.{}", encode_segment(&signature)))
}

/// Verifies a PS512 JWS compact serialization with the key of `jwks` its
/// header's `kid` names, and returns its claims (a JSON object). Any `alg`
/// but PS512 is refused (`none` included). The key's `alg`, `use` and
/// `key_ops`, where present, must allow PS512, `sig` and `verify`. The
/// header's `typ` is not checked here.
pub fn verify_ps512(compact: &str, jwks: &Jwks) -> Result<Value, JoseError> {
    let [header_b64, payload_b64, signature_b64] = segments::<3>(compact)?;
    let header = decode_header(header_b64)?;
    require_alg(&header, JWS_ALG)?;
    let kid =
        header_str(&header, "kid")?.ok_or(JoseError::MissingKid("the token's header has none"))?;
    let key = jwks
        .get(kid)
        .ok_or_else(|| JoseError::UnknownKid(shown(kid)))?;
    key.permit("verify", "sig", JWS_ALG)?;

    let signature = decode_segment(signature_b64, "signature")?;
    let signing_input = &compact[..header_b64.len() + 1 + payload_b64.len()];
    RsaPublicKeyComponents {
        n: &key.n,
        e: &key.e,
    }
    .verify(
        &RSA_PSS_2048_8192_SHA512,
        signing_input.as_bytes(),
        &signature,
    )
    .map_err(|_| JoseError::BadSignature)?;

    match serde_json::from_slice(&decode_segment(payload_b64, "payload")?) {
        Ok(claims @ Value::Object(_)) => Ok(claims),
        _ => Err(JoseError::Malformed(
            "the payload is not a JSON object".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::OaepPublicEncryptingKey;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;
    use std::io::Write;

    // -- helpers ------------------------------------------------------------

    fn key1() -> RsaPrivateJwk {
        RsaPrivateJwk::from_value(&key1_json()).unwrap()
    }

    fn key2() -> RsaPrivateJwk {
        RsaPrivateJwk::from_value(&key2_json()).unwrap()
    }

    /// `json` with `changes` merged in (`null` removes a member).
    fn with(mut json: Value, changes: Value) -> Value {
        for (name, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => json.as_object_mut().unwrap().remove(name),
                _ => json
                    .as_object_mut()
                    .unwrap()
                    .insert(name.clone(), value.clone()),
            };
        }
        json
    }

    /// A JWE for `key`, written here independently of `decrypt` (the interop
    /// test checks both against jwcrypto).
    fn encrypt(header: &Value, plaintext: &[u8], key: &RsaPrivateJwk) -> String {
        let header_b64 = encode_segment(&serde_json::to_vec(header).unwrap());
        let mut data = plaintext.to_vec();
        if header.get("zip") == Some(&json!("DEF")) {
            let mut deflater =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            deflater.write_all(plaintext).unwrap();
            data = deflater.finish().unwrap();
        }
        let (mut cek, mut iv) = ([0u8; CEK_LEN], [0u8; IV_LEN]);
        rand::fill(&mut cek).unwrap();
        rand::fill(&mut iv).unwrap();
        let public = OaepPublicEncryptingKey::new(key.decrypting.public_key()).unwrap();
        let mut wrapped = vec![0u8; public.ciphertext_size()];
        let wrapped = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut wrapped, None)
            .unwrap();
        let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap());
        let tag = sealing
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(header_b64.as_bytes()),
                &mut data,
            )
            .unwrap();
        [
            header_b64,
            encode_segment(wrapped),
            encode_segment(&iv),
            encode_segment(&data),
            encode_segment(tag.as_ref()),
        ]
        .join(".")
    }

    fn jwe_header() -> Value {
        json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "test-key-1"})
    }

    /// `compact` with the low bit of byte `at` of segment `index` flipped.
    fn flip(compact: &str, index: usize, at: usize) -> String {
        let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
        let mut bytes = URL_SAFE_NO_PAD.decode(&parts[index]).unwrap();
        bytes[at] ^= 1;
        parts[index] = encode_segment(&bytes);
        parts.join(".")
    }

    /// `compact` with segment `index` replaced by `segment`'s base64url.
    fn replace(compact: &str, index: usize, segment: &[u8]) -> String {
        let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
        parts[index] = encode_segment(segment);
        parts.join(".")
    }

    fn jwks_of(keys: &[&RsaPrivateJwk]) -> Jwks {
        Jwks::new(keys.iter().map(|k| k.public().clone()).collect()).unwrap()
    }

    fn claims() -> Value {
        json!({
            "$schema": "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json",
            "jti": "0b7b0e5c-3a51-4ac8-9a8b-6bd1e3c2a7f0",
            "iss": "allegro-bridge",
            "iat": 1_767_000_000,
            "sub": "submission:f65feab2-4883-4dff-85fb-169448545d9f",
            "txn": "case:f73d30c6-8894-4444-8687-00ae756fea90",
            "events": {"https://schema.fitko.de/fit-connect/events/accept-submission": {}}
        })
    }

    // -- DER ----------------------------------------------------------------

    #[test]
    fn der_integers_and_lengths_are_minimal() {
        let integer = |bytes: &[u8]| {
            let mut out = Vec::new();
            der_integer(&mut out, bytes);
            out
        };
        assert_eq!(integer(&[]), [0x02, 0x01, 0x00]);
        assert_eq!(integer(&[0, 0]), [0x02, 0x01, 0x00]);
        assert_eq!(integer(&[0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0, 0, 0x01, 0x00]), [0x02, 0x02, 0x01, 0x00]);
        let header = |len: usize| {
            let mut out = Vec::new();
            der_header(&mut out, 0x30, len);
            out
        };
        assert_eq!(header(0x7f), [0x30, 0x7f]);
        assert_eq!(header(0x80), [0x30, 0x81, 0x80]);
        assert_eq!(header(0xff), [0x30, 0x81, 0xff]);
        assert_eq!(header(0x100), [0x30, 0x82, 0x01, 0x00]);
        assert_eq!(header(70_000), [0x30, 0x83, 0x01, 0x11, 0x70]);
    }

    #[test]
    fn pkcs1_and_pkcs8_der_match_openssl() {
        let jwk = key1_json();
        let part = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        let parts: Vec<Vec<u8>> = ["n", "e", "d", "p", "q", "dp", "dq", "qi"].map(part).into();
        let mut integers: Vec<&[u8]> = vec![&[]];
        integers.extend(parts.iter().map(Vec::as_slice));

        let pkcs1 = pkcs1_der(&integers);
        let openssl = STANDARD.decode(KEY1_PKCS1_DER).unwrap();
        assert_eq!(pkcs1.as_slice(), openssl.as_slice());

        let mut expected = Vec::new();
        for i in (0..KEY1_PKCS8_PREFIX_HEX.len()).step_by(2) {
            expected.push(u8::from_str_radix(&KEY1_PKCS8_PREFIX_HEX[i..i + 2], 16).unwrap());
        }
        expected.extend_from_slice(&openssl);
        assert_eq!(pkcs8_der(&pkcs1).as_slice(), expected.as_slice());
    }

    // -- keys ---------------------------------------------------------------

    #[test]
    fn a_private_jwk_parses_and_shows_no_key_material() {
        let key = key1();
        assert_eq!(key.kid(), Some("test-key-1"));
        assert_eq!(key.public().modulus_bits(), 2048);
        let shown = format!("{key:?} {:?}", key.public());
        assert!(shown.contains("test-key-1"), "{shown}");
        let jwk = key1_json();
        for member in ["n", "d", "p", "q", "dp", "dq", "qi"] {
            let value = &jwk[member].as_str().unwrap()[..16];
            assert!(!shown.contains(value), "Debug shows `{member}`: {shown}");
        }
    }

    #[test]
    fn bad_jwks_are_errors_naming_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.jwk");
        let load = |json: &Value| {
            std::fs::write(&path, json.to_string()).unwrap();
            RsaPrivateJwk::load(&path).unwrap_err().to_string()
        };
        let file = path.display().to_string();
        assert_eq!(
            load(&with(key1_json(), json!({"d": null}))),
            format!("{file}: not an RSA private key: field `d` missing")
        );
        assert_eq!(
            load(&json!({"kty": "EC", "crv": "P-256"})),
            format!("{file}: not an RSA private key: `kty` is \"EC\"")
        );
        assert_eq!(
            load(&with(key1_json(), json!({"p": "not base64!"}))),
            format!("{file}: not an RSA private key: field `p` is not base64url")
        );
        // Consistent members, but of two keys: aws-lc's check refuses it.
        let mixed = with(key1_json(), json!({"qi": key2_json()["qi"]}));
        let message = load(&mixed);
        assert!(message.contains("aws-lc rejects it"), "{message}");
        for member in PRIVATE_MEMBERS {
            let value = &mixed[member].as_str().unwrap()[..16];
            assert!(
                !message.contains(value),
                "error shows `{member}`: {message}"
            );
        }
        std::fs::write(&path, "{\"kty\": ").unwrap();
        let message = RsaPrivateJwk::load(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{file}: not JSON")),
            "{message}"
        );
        let missing = dir.path().join("missing.jwk");
        let error = RsaPrivateJwk::load(&missing).unwrap_err();
        assert!(matches!(error, JoseError::Io { .. }), "{error:?}");
        assert!(error
            .to_string()
            .starts_with(&missing.display().to_string()));
    }

    #[test]
    fn a_jwk_set_finds_keys_by_kid_and_skips_other_key_types() {
        let public = |json: Value| with(json, json!({"d": null, "p": null, "q": null}));
        let set = json!({"keys": [
            public(key1_json()),
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA"},
            public(key2_json()),
        ]});
        let jwks = Jwks::from_value(&set).unwrap();
        assert_eq!(jwks.keys().len(), 2);
        assert_eq!(jwks.get("test-key-2").unwrap().kid(), Some("test-key-2"));
        assert!(jwks.get("ec").is_none());
        assert!(jwks.get("unknown").is_none());

        let twice = json!({"keys": [public(key1_json()), public(key1_json())]});
        let error = Jwks::from_value(&twice).unwrap_err().to_string();
        assert_eq!(error, "JWKS: two keys with kid \"test-key-1\"");
        let error = Jwks::from_json("{\"keys\": [{\"kty\": \"RSA\", \"e\": \"AQAB\"}]}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "JWKS: key 0: not an RSA public key: field `n` missing"
        );
    }

    // -- JWE ----------------------------------------------------------------

    #[test]
    fn decrypt_returns_plaintext_header_and_tag_with_and_without_zip() {
        let key = key1();
        let plaintext = "{\"antrag\": \"Bürgergeld\"}".repeat(100).into_bytes();
        for zip in [false, true] {
            let header = if zip {
                with(jwe_header(), json!({"zip": "DEF"}))
            } else {
                jwe_header()
            };
            let compact = encrypt(&header, &plaintext, &key);
            let decrypted = decrypt(&compact, &key).unwrap();
            assert_eq!(decrypted.plaintext, plaintext, "zip: {zip}");
            assert_eq!(decrypted.header, header);
            assert_eq!(
                decrypted.authentication_tag,
                compact.rsplit('.').next().unwrap()
            );
            let shown = format!("{decrypted:?}");
            assert!(
                !shown.contains("Bürgergeld"),
                "Debug shows the plaintext: {shown}"
            );
        }
    }

    #[test]
    fn decrypt_fails_on_a_flipped_tag_byte() {
        let key = key1();
        let compact = encrypt(&jwe_header(), b"payload", &key);
        for at in [0, 15] {
            let error = decrypt(&flip(&compact, 4, at), &key).unwrap_err();
            assert!(matches!(error, JoseError::DecryptionFailed), "{error:?}");
        }
    }

    #[test]
    fn decrypt_fails_on_a_flipped_ciphertext_byte() {
        let key = key1();
        let compact = encrypt(&jwe_header(), b"payload", &key);
        let error = decrypt(&flip(&compact, 3, 3), &key).unwrap_err();
        assert!(matches!(error, JoseError::DecryptionFailed), "{error:?}");
        // A changed encrypted key: a random CEK, the same failure.
        let error = decrypt(&flip(&compact, 1, 100), &key).unwrap_err();
        assert!(matches!(error, JoseError::DecryptionFailed), "{error:?}");
    }

    #[test]
    fn decrypt_fails_on_a_changed_protected_header() {
        // The header is the AAD: another (still acceptable) header fails.
        let key = key1();
        let compact = encrypt(&jwe_header(), b"payload", &key);
        let header = with(jwe_header(), json!({"cty": "json"}));
        let changed = replace(&compact, 0, &serde_json::to_vec(&header).unwrap());
        let error = decrypt(&changed, &key).unwrap_err();
        assert!(matches!(error, JoseError::DecryptionFailed), "{error:?}");
    }

    #[test]
    fn decrypt_fails_with_the_wrong_key() {
        let unnamed = with(jwe_header(), json!({"kid": null}));
        let compact = encrypt(&unnamed, b"payload", &key1());
        let error = decrypt(&compact, &key2()).unwrap_err();
        assert!(matches!(error, JoseError::DecryptionFailed), "{error:?}");

        let compact = encrypt(&jwe_header(), b"payload", &key1());
        let error = decrypt(&compact, &key2()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the token is for key \"test-key-1\", not for key \"test-key-2\""
        );
    }

    #[test]
    fn decrypt_refuses_other_algorithms_by_name() {
        let key = key1();
        let compact = encrypt(&jwe_header(), b"payload", &key);
        let with_header = |changes: Value| {
            replace(
                &compact,
                0,
                &serde_json::to_vec(&with(jwe_header(), changes)).unwrap(),
            )
        };
        let error = decrypt(&with_header(json!({"alg": "RSA1_5"})), &key).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unsupported `alg` \"RSA1_5\": only RSA-OAEP-256 is accepted"
        );
        let error = decrypt(&with_header(json!({"alg": "RSA-OAEP"})), &key).unwrap_err();
        assert!(matches!(&error, JoseError::UnsupportedAlg { alg, .. } if alg == "RSA-OAEP"));
        let error = decrypt(&with_header(json!({"enc": "A128CBC-HS256"})), &key).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unsupported `enc` \"A128CBC-HS256\": only A256GCM is accepted"
        );
        let error = decrypt(&with_header(json!({"zip": "GZIP"})), &key).unwrap_err();
        assert!(matches!(&error, JoseError::UnsupportedZip(zip) if zip == "GZIP"));
        let error = decrypt(&with_header(json!({"crit": ["exp"], "exp": 1})), &key).unwrap_err();
        assert!(matches!(error, JoseError::UnsupportedCrit(_)), "{error:?}");
    }

    #[test]
    fn decrypt_refuses_a_zip_bomb_and_oversized_plaintext() {
        let key = key1();
        let zeros = vec![0u8; 8 << 20];
        let bomb = encrypt(&with(jwe_header(), json!({"zip": "DEF"})), &zeros, &key);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let error = decrypt_with_limit(&bomb, &key, 1 << 20).unwrap_err();
        assert!(matches!(error, JoseError::TooLarge { limit } if limit == 1 << 20));
        assert_eq!(
            decrypt_with_limit(&bomb, &key, 8 << 20).unwrap().plaintext,
            zeros
        );

        let plain = encrypt(&jwe_header(), &[7u8; 1001], &key);
        let error = decrypt_with_limit(&plain, &key, 1000).unwrap_err();
        assert!(
            matches!(error, JoseError::TooLarge { limit: 1000 }),
            "{error:?}"
        );
    }

    #[test]
    fn decrypt_refuses_a_key_not_meant_for_it() {
        let signing =
            RsaPrivateJwk::from_value(&with(key1_json(), json!({"key_ops": ["sign"]}))).unwrap();
        let compact = encrypt(&jwe_header(), b"payload", &key1());
        let error = decrypt(&compact, &signing).unwrap_err();
        assert_eq!(
            error.to_string(),
            "key \"test-key-1\" may not unwrapKey: its `key_ops` [\"sign\"] lack unwrapKey"
        );
    }

    #[test]
    fn decrypt_refuses_malformed_compact_serializations() {
        let key = key1();
        let compact = encrypt(&jwe_header(), b"payload", &key);
        let four = compact.rsplit_once('.').unwrap().0;
        let error = decrypt(four, &key).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed compact serialization: expected 5 dot-separated segments, found 4"
        );
        let error = decrypt(&format!("{compact}\n"), &key).unwrap_err();
        assert!(matches!(error, JoseError::Malformed(_)), "{error:?}");
        let error = decrypt(&replace(&compact, 0, b"[1]"), &key).unwrap_err();
        assert!(matches!(error, JoseError::Malformed(_)), "{error:?}");
    }

    // -- JWS ----------------------------------------------------------------

    #[test]
    fn sign_then_verify_returns_the_claims() {
        let key = key1();
        let extra = json!({"x-test": true});
        let token = sign_ps512(extra.as_object(), &claims(), &key).unwrap();
        let header_b64 = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "PS512", "typ": "secevent+jwt", "kid": "test-key-1", "x-test": true})
        );
        assert_eq!(
            verify_ps512(&token, &jwks_of(&[&key2(), &key])).unwrap(),
            claims()
        );
    }

    #[test]
    fn verify_refuses_a_changed_payload_or_signature() {
        let key = key1();
        let token = sign_ps512(None, &claims(), &key).unwrap();
        let jwks = jwks_of(&[&key]);
        let changed = with(
            claims(),
            json!({"events": {"https://schema.fitko.de/fit-connect/events/reject-submission": {}}}),
        );
        let forged = replace(&token, 1, &serde_json::to_vec(&changed).unwrap());
        let error = verify_ps512(&forged, &jwks).unwrap_err();
        assert!(matches!(error, JoseError::BadSignature), "{error:?}");
        let error = verify_ps512(&flip(&token, 2, 10), &jwks).unwrap_err();
        assert!(matches!(error, JoseError::BadSignature), "{error:?}");
    }

    #[test]
    fn verify_refuses_alg_none_and_other_algorithms() {
        let jwks = jwks_of(&[&key1()]);
        let payload = encode_segment(&serde_json::to_vec(&claims()).unwrap());
        for alg in ["none", "HS512", "RS512", "PS256"] {
            let header = json!({"alg": alg, "typ": "secevent+jwt", "kid": "test-key-1"});
            let token = format!(
                "{}.{payload}.",
                encode_segment(&serde_json::to_vec(&header).unwrap())
            );
            let error = verify_ps512(&token, &jwks).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("unsupported `alg` \"{alg}\": only PS512 is accepted")
            );
        }
    }

    #[test]
    fn verify_needs_the_right_key_by_kid() {
        let token = sign_ps512(None, &claims(), &key1()).unwrap();
        let error = verify_ps512(&token, &jwks_of(&[&key2()])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no key with kid \"test-key-1\" in the key set"
        );
        // key 2 under key 1's kid: the signature does not verify.
        let impostor = with(key2_json(), json!({"kid": "test-key-1"}));
        let jwks = Jwks::new(vec![RsaPublicJwk::from_value(&impostor).unwrap()]).unwrap();
        let error = verify_ps512(&token, &jwks).unwrap_err();
        assert!(matches!(error, JoseError::BadSignature), "{error:?}");
        // A key set entry not for verifying.
        let encryption = with(key1_json(), json!({"use": "enc"}));
        let jwks = Jwks::new(vec![RsaPublicJwk::from_value(&encryption).unwrap()]).unwrap();
        let error = verify_ps512(&token, &jwks).unwrap_err();
        assert!(
            matches!(error, JoseError::KeyNotPermitted { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn sign_refuses_fixed_header_members_a_key_without_kid_and_non_object_claims() {
        let key = key1();
        let extra = json!({"alg": "none"});
        let error = sign_ps512(extra.as_object(), &claims(), &key).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid input: header_extra must not set `alg`"
        );
        let error = sign_ps512(None, &json!([1]), &key).unwrap_err();
        assert!(matches!(error, JoseError::InvalidInput(_)), "{error:?}");
        let unnamed = RsaPrivateJwk::from_value(&with(key1_json(), json!({"kid": null}))).unwrap();
        let error = sign_ps512(None, &claims(), &unnamed).unwrap_err();
        assert!(matches!(error, JoseError::MissingKid(_)), "{error:?}");
    }

    // -- fixtures -----------------------------------------------------------

    /// An RSA-2048 test key (openssl genrsa; JWK by jwcrypto). Test only.
    fn key1_json() -> Value {
        json!({
            "kty": "RSA",
            "kid": "test-key-1",
            "n": "\
                saVl-TklBBa6TZR_T4jS0nmML7vx3i6aNMHDLylAqa89W-95lQ1oF14atbvUNXyU6sPS9zEt\
                L1YnT9G78bPjXkQrkWTL2HULMC9IszBA9sDX96d0OVjEpmD_COTTRmr2VGn4kZnoGz8VtNnw\
                FcqdwGmgUvu6cd-MCeOg1Poc-zG7LzlLNA9VprkAKbcdA230a4dHrYhg8BtuwTp40Lykx6sS\
                etF3kYp8xcO0m7ioKBLVVprvZbOiTHsuPggHJ23WW_uEC0hjsqw_6LvRaTpHi9MGRjehLMJw\
                JGBGOeTMPukSQ91oNEmu9rTZNPu7miQFTprEuuuLwg7lak1AmUckkQ",
            "e": "AQAB",
            "d": "\
                CaN9pE96T43boyq12ycDeFXNukfObGWXKppiSKBqgKJwV_kG_eQ9s_ngRWDI93N4YYIJQ-4E\
                Q3ufU6x_r_I4mZRlkESZrleQaTeBkG5jcff959MrQlLLjbL4137R61HRpnwe92h0QGk0eGz0\
                QrxtAYQBpcsAf133m1BBWVjuQl9F3NeLbfzITrqGr59afM2g6ZD2tsg1G8Hlq9cnZZs_IEsi\
                jRKXmpAitcNV3FrFAEJ3EbjxWgxXgz-HzYVdh2Rm_xpkOTh2FPvf8fe7Oh5tAwjRGzfAxpDQ\
                83wH7NhUf4jtT7cIXFsgzd7FSs3F9Sfpt8Pw9YfZKAS5XaoEmMcWwQ",
            "p": "\
                3qghHK4Z4ON98sRJJRF1bT1RHQgnVn_W1FxQYT-UPMasUUqpeWZXSi9NDpytrFAPitwLTmUo\
                4Vqcr3yyd1mRFQBrXahyr48l0wKzSM-elFBWZX6xJxWbqbvgCiWFwfNcNaZpe9f_Q4oYIWXY\
                2eOa9zPMmYzlSxQ60YvwFHwVFeE",
            "q": "\
                zD-4NCwmTOwijb2w17UzLaIvIIWwh46Mw4V6Ik-yRm8bwt-_Q_t4E2UU5jgEMyRIj5_A-_CJ\
                WG5DB8qL2atBoqACj2YIwJaujtGg4ofeaSUXV0xq4HpxIlcdoxWRWRVxiIZ_hI3JfFV4SV2d\
                oT0p4TaAnY_AYzEG-fMySlbLhLE",
            "dp": "\
                VCoPoiy5gYXcxRinYYiw76Me9y9u10apqUpf4_LJkRO0bWIgn9AsrNEmeqCFEb6NsXquF2sr\
                wcujsL4dI_pKWjr3Wsbi2zPsI1BA_wPkOMIJdoImatTDK6zl6k_2uLLKJ0mJVBP43MnlhzJd\
                fzeHC2ycKWrV_cRe23jfPo8M1WE",
            "dq": "\
                Yl4RzfaxX3yeS5te7xRSmJiyj7wzP6X0vzmqj5nIZ0mdmiX-TLRwqQ6WmSXDSAoidCFhZTT8\
                QL2hxL_UyLlE_BiKAxwF_RLU8O2eyVrcT9FQQ3gHRSNTF1HTcTay8K92JWV5RpKuxhW3v8W5\
                Y-08HT4NhVS1OFBlZr2sq8bPb5E",
            "qi": "\
                Gjw4hr5Miw9KMfL2FxNrajMZNz78BxX6lCdW41sm3P2fFhl3JoJK6KjeM_z8OHZp8HOPn9Ad\
                ZeMpRSCllAtaoLXUiUgf8P5XMnS5UaOY2LlNI0ZuhdS8wXPAjyoQSfqX-07zYnY2eA7kxX3U\
                HDvlaXqArn2MF6qMuoPlNHn_84Q",
        })
    }

    /// An RSA-2048 test key (openssl genrsa; JWK by jwcrypto). Test only.
    fn key2_json() -> Value {
        json!({
            "kty": "RSA",
            "kid": "test-key-2",
            "n": "\
                lukn4dPRhWkcF-QC6JW2xqEVr8noflkxmXzRBpaCPAzP968csmV5ddXS_tjUfvcYhtcvnaMW\
                -Ec7GhAs5nMYgGxV89IQHygHQKsPdE-GMEiSLw-VOd-gpeKjrY_j6DQ0G09j2sKnouMiiOxT\
                XALmJDthpJ0StOhNkyj-wt5zVKQ6PcIgynvYBcJSRIMSm0Sz8HO3Phtf8UckgLmIhZD1o_Mk\
                _M9R5yWy07gFRvKPNaBhdiUwEqxFqR6iOETwKFW8VQT2RLSHiGEeeYRSQtL7f6i-cr-QVdMD\
                4H7STDyycWC8WsTDr9FNFmgXCG2xI-0eCwNXxuJu0acu4ywEbaJ5QQ",
            "e": "AQAB",
            "d": "\
                FYf9kzhcB_tXsUbsbU_TDKL2C6c0nzZNn9cRoa1-tl-jmnSnFQLqYfgYixjXtKe_nZl9JzIa\
                OGE9Wvoc1eJtCAGs_8UkXLWi10Swx0kDXcc06DcCdQfljVV5Qe2qODqehpj8p70nGtPqXPvO\
                5u1Y9altRIXOofYU_16VfqsrbFNsBdRaFXW3HRkSTZhwQu5-8KXRlqvpHlbsNyryZ29HQwLv\
                TbaOmQeRaCTp-3kNEiibYwth7I2MblCaUxi5yDVyn9RJcpP-F18W0eYy5p7yPbM0rAGRL98B\
                lm8RLdS3uf8d3LnibFGkJoaXjL0k-nMUOZ-t5RBLL811hY5fRPFb4w",
            "p": "\
                y-ZjcCgeecqMbxcDutU24HkjDSuSDBboVLwK9G82_4ia702UYJotLIK4Tkl-RovW4fChizkB\
                INLukQtMFqvjrjErPDB0kWwnAKPoagneqLoSLFZNIY9RnkeERXJYkPKYkK05hOVDRgnSnuTi\
                CpsL6ZdqrrvO-RJ6PRbEY_ElRIs",
            "q": "\
                vXicR5bUjqCdRS_p7h_qe_mdWCEyjtwil3noWDNhiiyIX4ArwLq2OuW1ZKc2Qd4hHvDUV5O3\
                ywazdwtnrg1oKZ7Edcmv2fudV_jtKE5eS2OvZIHEaVev1NnAV01ZD8aSZ1bfFkQSPN7CgR-g\
                BxTV6BaRWY7Ck-26bR-KqX-wVuM",
            "dp": "\
                iuG3M2qwL2auNvCnIrgds9Hu9QaLaN6liym2EH48KNuEJKFkAlShlmLHZNOcRjLzv1umvOyr\
                _w6NXpAiWILmBv0IpOugSnkvK7l5Edj9J1HuFPMHgGddQYEW8DKNbtU-47SJrCJ4qxj_tCjU\
                akLnX0k6aiAUPwS97CQ4ypYzOzc",
            "dq": "\
                WMaRWw217FofNlK75gH4STxs1-U-HifQ4W6SSflRI3-4Kh8Q4Q3a4n_M3StnxbcBh9DJfXtO\
                K4epQQcL_kZz3sRwQsxMY_N8BsMww6jsj6BWht4ynDUkwrOAZqdsKnMdF-RhRLqCXRj2w6-A\
                uLCvhT5FvlOgodVKe2TDAKY-hoc",
            "qi": "\
                XD7AVlxJdt4FVPQbO8N8CDo_co1u1hT6_cRAUOX7GM28JibKQFGBIyaSOthNEzvjAIiPNzDF\
                nQcVKFONZyEfwuqCdITAJHng683Y7WKxjXbgH7IXgO4wM36WzWbDBqg047SxOz5jcrVC8laC\
                uad0_DqCTWBK5Eb1d8NBq1azy7k",
        })
    }

    /// `openssl rsa -traditional -outform DER` of key 1: its PKCS#1 RSAPrivateKey.
    const KEY1_PKCS1_DER: &str = "\
        MIIEogIBAAKCAQEAsaVl+TklBBa6TZR/T4jS0nmML7vx3i6aNMHDLylAqa89W+95lQ1oF14atbvU\
        NXyU6sPS9zEtL1YnT9G78bPjXkQrkWTL2HULMC9IszBA9sDX96d0OVjEpmD/COTTRmr2VGn4kZno\
        Gz8VtNnwFcqdwGmgUvu6cd+MCeOg1Poc+zG7LzlLNA9VprkAKbcdA230a4dHrYhg8BtuwTp40Lyk\
        x6sSetF3kYp8xcO0m7ioKBLVVprvZbOiTHsuPggHJ23WW/uEC0hjsqw/6LvRaTpHi9MGRjehLMJw\
        JGBGOeTMPukSQ91oNEmu9rTZNPu7miQFTprEuuuLwg7lak1AmUckkQIDAQABAoIBAAmjfaRPek+N\
        26MqtdsnA3hVzbpHzmxllyqaYkigaoCicFf5Bv3kPbP54EVgyPdzeGGCCUPuBEN7n1Osf6/yOJmU\
        ZZBEma5XkGk3gZBuY3H3/efTK0JSy42y+Nd+0etR0aZ8HvdodEBpNHhs9EK8bQGEAaXLAH9d95tQ\
        QVlY7kJfRdzXi238yE66hq+fWnzNoOmQ9rbINRvB5avXJ2WbPyBLIo0Sl5qQIrXDVdxaxQBCdxG4\
        8VoMV4M/h82FXYdkZv8aZDk4dhT73/H3uzoebQMI0Rs3wMaQ0PN8B+zYVH+I7U+3CFxbIM3exUrN\
        xfUn6bfD8PWH2SgEuV2qBJjHFsECgYEA3qghHK4Z4ON98sRJJRF1bT1RHQgnVn/W1FxQYT+UPMas\
        UUqpeWZXSi9NDpytrFAPitwLTmUo4Vqcr3yyd1mRFQBrXahyr48l0wKzSM+elFBWZX6xJxWbqbvg\
        CiWFwfNcNaZpe9f/Q4oYIWXY2eOa9zPMmYzlSxQ60YvwFHwVFeECgYEAzD+4NCwmTOwijb2w17Uz\
        LaIvIIWwh46Mw4V6Ik+yRm8bwt+/Q/t4E2UU5jgEMyRIj5/A+/CJWG5DB8qL2atBoqACj2YIwJau\
        jtGg4ofeaSUXV0xq4HpxIlcdoxWRWRVxiIZ/hI3JfFV4SV2doT0p4TaAnY/AYzEG+fMySlbLhLEC\
        gYBUKg+iLLmBhdzFGKdhiLDvox73L27XRqmpSl/j8smRE7RtYiCf0Cys0SZ6oIURvo2xeq4XayvB\
        y6Owvh0j+kpaOvdaxuLbM+wjUED/A+Q4wgl2giZq1MMrrOXqT/a4ssonSYlUE/jcyeWHMl1/N4cL\
        bJwpatX9xF7beN8+jwzVYQKBgGJeEc32sV98nkubXu8UUpiYso+8Mz+l9L85qo+ZyGdJnZol/ky0\
        cKkOlpklw0gKInQhYWU0/EC9ocS/1Mi5RPwYigMcBf0S1PDtnsla3E/RUEN4B0UjUxdR03E2svCv\
        diVleUaSrsYVt7/FuWPtPB0+DYVUtThQZWa9rKvGz2+RAoGAGjw4hr5Miw9KMfL2FxNrajMZNz78\
        BxX6lCdW41sm3P2fFhl3JoJK6KjeM/z8OHZp8HOPn9AdZeMpRSCllAtaoLXUiUgf8P5XMnS5UaOY\
        2LlNI0ZuhdS8wXPAjyoQSfqX+07zYnY2eA7kxX3UHDvlaXqArn2MF6qMuoPlNHn/84Q=";

    /// What `openssl pkcs8 -topk8 -nocrypt -outform DER` puts before key 1's PKCS#1
    /// encoding: the PrivateKeyInfo header, rsaEncryption, the OCTET STRING header.
    const KEY1_PKCS8_PREFIX_HEX: &str = "308204bc020100300d06092a864886f70d0101010500048204a6";
}
