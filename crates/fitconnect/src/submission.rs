//! The checks of one fetched submission before anything of it is kept, in
//! the order FIT-Connect's receiving guide gives: decrypt the metadata,
//! validate it against the metadata schema, check that the data's schema is
//! one the mappings know, decrypt the data and the attachments and check
//! each one's SHA-512 against the metadata. The outcome is either what is
//! to be taken in ([`Received`], with the authentication tags the accept
//! event must quote) or the [`Problem`] a reject event reports.
//!
//! Pure: no network, no clock, no logging. The German details name what
//! failed, never a value of the submission.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha512};
use uuid::Uuid;

use crate::jose::{self, RsaPrivateJwk};
use crate::spec;

/// A submission as fetched: its ids and the encrypted parts.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub submission_id: Uuid,
    pub case_id: Uuid,
    pub destination_id: Uuid,
    pub encrypted_metadata: String,
    pub encrypted_data: String,
    /// Each attachment the Zustelldienst lists, with its JWE.
    pub attachments: Vec<(Uuid, String)>,
}

/// What a submission brings, checked. Its `Debug` shows sizes, not data.
#[derive(Clone)]
pub struct Received {
    /// The data (the application as docs/contract.md §1 defines it).
    pub data: Vec<u8>,
    /// The data's schema URI from the metadata.
    pub schema_uri: String,
    pub attachments: Vec<ReceivedAttachment>,
    pub tags: AuthenticationTags,
}

/// One attachment, decrypted and hash-checked.
#[derive(Clone)]
pub struct ReceivedAttachment {
    pub id: Uuid,
    /// `form`, `attachment` or `report`.
    pub purpose: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub description: Option<String>,
    pub content: Vec<u8>,
    /// SHA-512 of the content, hex.
    pub sha512: String,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("data_bytes", &self.data.len())
            .field("schema_uri", &self.schema_uri)
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReceivedAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedAttachment")
            .field("id", &self.id)
            .field("purpose", &self.purpose)
            .field("mime_type", &self.mime_type)
            .field("bytes", &self.content.len())
            .finish_non_exhaustive()
    }
}

/// The authentication tags (the fifth JWE segment) of the metadata, the
/// data and every attachment: the accept event quotes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthenticationTags {
    pub metadata: String,
    pub data: String,
    pub attachments: BTreeMap<Uuid, String>,
}

/// Why a submission is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A part could not be decrypted.
    EncryptionIssue,
    /// A part is not the JSON it should be.
    SyntaxViolation,
    /// The metadata do not follow the metadata schema.
    SchemaViolation,
    /// The data's schema is not one the bridge knows.
    UnsupportedSchema,
    /// A part's SHA-512 is not the one the metadata give.
    HashMismatch,
    /// The metadata announce no data.
    MissingData,
    /// The attachments listed differ from those the metadata announce.
    AttachmentsMismatch,
    /// The parts received are not those the Zustelldienst recorded as sent
    /// (the authentication tags of its `submit-submission` event differ).
    IncorrectAuthenticationTag,
}

impl ProblemKind {
    /// The problem type URI (FIT-Connect's documented problem types).
    pub fn type_uri(self) -> String {
        format!(
            "https://schema.fitko.de/fit-connect/events/problems/{}",
            self.name()
        )
    }

    /// The last segment of the type URI.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::EncryptionIssue => "encryption-issue",
            ProblemKind::SyntaxViolation => "syntax-violation",
            ProblemKind::SchemaViolation => "schema-violation",
            ProblemKind::UnsupportedSchema => "unsupported-schema",
            ProblemKind::HashMismatch => "hash-mismatch",
            ProblemKind::MissingData => "missing-data",
            ProblemKind::AttachmentsMismatch => "attachments-mismatch",
            ProblemKind::IncorrectAuthenticationTag => "incorrect-authentication-tag",
        }
    }

    /// The German title.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::EncryptionIssue => "Entschlüsselungs-Fehler",
            ProblemKind::SyntaxViolation => "Syntax-Fehler",
            ProblemKind::SchemaViolation => "Schema-Fehler",
            ProblemKind::UnsupportedSchema => "Fachdatenschema nicht unterstützt",
            ProblemKind::HashMismatch => "Prüfsummen-Fehler",
            ProblemKind::MissingData => "Fachdaten fehlen",
            ProblemKind::AttachmentsMismatch => "Anlagen stimmen nicht überein",
            ProblemKind::IncorrectAuthenticationTag => "Authentication-Tag ungültig",
        }
    }
}

/// A reason to reject, with the part it concerns (`metadata`, `data` or
/// `attachment:<id>`) and a German sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub instance: String,
    pub detail: String,
}

impl Problem {
    fn new(kind: ProblemKind, instance: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            instance: instance.into(),
            detail: detail.into(),
        }
    }
}

/// At most this many bytes of plaintext per part (a zip bomb is refused).
pub const MAX_PART_BYTES: usize = 64 * 1024 * 1024;

/// Checks a fetched submission. `knows_schema` says whether a data schema
/// URI is one the mappings take.
pub fn check(
    f: &Fetched,
    key: &RsaPrivateJwk,
    knows_schema: impl Fn(&str) -> bool,
) -> Result<Received, Problem> {
    let (metadata, metadata_tag) = open_json(&f.encrypted_metadata, key, "metadata", "Metadaten")?;
    spec::check_metadata(&metadata)
        .map_err(|d| Problem::new(ProblemKind::SchemaViolation, "metadata", d))?;
    let structure = &metadata["contentStructure"];
    let data_meta = structure.get("data").ok_or_else(|| {
        Problem::new(
            ProblemKind::MissingData,
            "metadata",
            "Die Metadaten kündigen keine Fachdaten an.",
        )
    })?;
    let schema_uri = data_meta["submissionSchema"]["schemaUri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mime = data_meta["submissionSchema"]["mimeType"]
        .as_str()
        .unwrap_or_default();
    if mime != "application/json" || !knows_schema(&schema_uri) {
        return Err(Problem::new(
            ProblemKind::UnsupportedSchema,
            "data",
            "Das Fachdatenschema der Einreichung wird von diesem Jobcenter nicht angenommen.",
        ));
    }
    let data = open(&f.encrypted_data, key, "data", "Fachdaten")?;
    check_hash(&data.plaintext, &data_meta["hash"], "data", "Fachdaten")?;
    if serde_json::from_slice::<Value>(&data.plaintext).is_err() {
        return Err(Problem::new(
            ProblemKind::SyntaxViolation,
            "data",
            "Die Fachdaten sind kein gültiges JSON.",
        ));
    }
    let (attachments, attachment_tags) = check_attachments(f, key, &structure["attachments"])?;
    Ok(Received {
        data: data.plaintext,
        schema_uri,
        attachments,
        tags: AuthenticationTags {
            metadata: metadata_tag,
            data: data.authentication_tag,
            attachments: attachment_tags,
        },
    })
}

type Attachments = (Vec<ReceivedAttachment>, BTreeMap<Uuid, String>);

/// The attachments: the same set as the metadata announce, each decrypted
/// and hash-checked.
fn check_attachments(
    f: &Fetched,
    key: &RsaPrivateJwk,
    announced: &Value,
) -> Result<Attachments, Problem> {
    let announced: Vec<&Value> = announced
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let ids_announced: BTreeSet<String> = announced
        .iter()
        .filter_map(|a| a["attachmentId"].as_str())
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let ids_listed: BTreeSet<String> = f.attachments.iter().map(|(id, _)| id.to_string()).collect();
    if ids_announced != ids_listed {
        return Err(Problem::new(
            ProblemKind::AttachmentsMismatch,
            "metadata",
            format!(
                "Die Metadaten kündigen {} Anlagen an, übermittelt wurden {}.",
                ids_announced.len(),
                ids_listed.len()
            ),
        ));
    }
    let mut out = Vec::new();
    let mut tags = BTreeMap::new();
    for (id, jwe) in &f.attachments {
        let meta = announced
            .iter()
            .find(|a| {
                a["attachmentId"].as_str().map(str::to_ascii_lowercase) == Some(id.to_string())
            })
            .expect("the sets are equal");
        let instance = format!("attachment:{id}");
        let plain = open(jwe, key, &instance, "Anlage")?;
        let sha512 = check_hash(&plain.plaintext, &meta["hash"], &instance, "Anlage")?;
        let text = |k: &str| meta[k].as_str().map(String::from);
        out.push(ReceivedAttachment {
            id: *id,
            purpose: text("purpose").unwrap_or_default(),
            mime_type: text("mimeType").unwrap_or_default(),
            filename: text("filename"),
            description: text("description"),
            content: plain.plaintext,
            sha512,
        });
        tags.insert(*id, plain.authentication_tag);
    }
    Ok((out, tags))
}

/// Decrypts one part; an error is an encryption issue of `instance`.
fn open(
    jwe: &str,
    key: &RsaPrivateJwk,
    instance: &str,
    what: &str,
) -> Result<jose::Decrypted, Problem> {
    jose::decrypt_with_limit(jwe, key, MAX_PART_BYTES).map_err(|_| {
        Problem::new(
            ProblemKind::EncryptionIssue,
            instance,
            format!("Nicht zu entschlüsseln: {what}."),
        )
    })
}

/// Decrypts a part that must be JSON; returns it with its tag.
fn open_json(
    jwe: &str,
    key: &RsaPrivateJwk,
    instance: &str,
    what: &str,
) -> Result<(Value, String), Problem> {
    let plain = open(jwe, key, instance, what)?;
    let value = serde_json::from_slice(&plain.plaintext).map_err(|_| {
        Problem::new(
            ProblemKind::SyntaxViolation,
            instance,
            format!("Kein gültiges JSON: {what}."),
        )
    })?;
    Ok((value, plain.authentication_tag))
}

/// Compares the SHA-512 of `bytes` with the metadata's `hash` object;
/// returns the hex digest.
fn check_hash(bytes: &[u8], hash: &Value, instance: &str, what: &str) -> Result<String, Problem> {
    let digest = hex::encode(Sha512::digest(bytes));
    let expected = hash["content"].as_str().unwrap_or_default();
    if hash["type"].as_str() != Some("sha512") || !expected.eq_ignore_ascii_case(&digest) {
        return Err(Problem::new(
            ProblemKind::HashMismatch,
            instance,
            format!("Prüfsumme (SHA-512) anders als in den Metadaten: {what}."),
        ));
    }
    Ok(digest)
}
