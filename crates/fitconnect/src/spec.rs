//! The vendored FIT-Connect specifications (`spec/README.md`) as the
//! subscriber uses them: the metadata schema every submission's metadata is
//! validated against. Compiled into the binary; nothing is fetched.

use std::sync::OnceLock;

use serde_json::Value;

/// The version of the metadata schema in force.
pub const METADATA_SCHEMA_VERSION: &str = "1.0.0";

/// The metadata schema, as published (`$id`
/// `https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json`).
pub const METADATA_SCHEMA: &str = include_str!("../spec/metadata.schema.v1.0.0.json");

/// The Submission API document the client and the test stand-in follow.
pub const SUBMISSION_API_VERSION: &str = "1.1.3";

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(METADATA_SCHEMA).expect("vendored schema is JSON");
        jsonschema::draft202012::new(&schema).expect("vendored schema compiles")
    })
}

/// Checks metadata against the schema; `Err` names the first violation's
/// place (a JSON Pointer) and what was expected, in German, without the
/// value itself (which may be personal).
pub fn check_metadata(metadata: &Value) -> Result<(), String> {
    match validator().iter_errors(metadata).next() {
        None => Ok(()),
        Some(e) => {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            Err(format!(
                "Die Metadaten entsprechen nicht dem Metadatenschema {METADATA_SCHEMA_VERSION} (bei {at}: {}).",
                e.kind_name()
            ))
        }
    }
}

/// What kind of violation a [`jsonschema::ValidationError`] is, in a word,
/// without the offending value.
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for jsonschema::ValidationError<'_> {
    fn kind_name(&self) -> String {
        let debug = format!("{:?}", self.kind());
        debug
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("Verletzung")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "contentStructure": {
                "data": {
                    "hash": {"type": "sha512", "content": "a".repeat(128)},
                    "submissionSchema": {"schemaUri": "urn:x:y", "mimeType": "application/json"}
                },
                "attachments": []
            }
        })
    }

    #[test]
    fn valid_metadata_passes_and_violations_name_the_place() {
        assert_eq!(check_metadata(&minimal()), Ok(()));
        let mut bad = minimal();
        bad["contentStructure"]["data"]["hash"]["content"] = json!("geheim-1234");
        let err = check_metadata(&bad).unwrap_err();
        assert!(err.contains("/contentStructure/data/hash/content"), "{err}");
        assert!(!err.contains("geheim"), "{err}");
        let err = check_metadata(&json!({"foo": 1})).unwrap_err();
        assert!(err.contains("bei /:"), "{err}");
    }
}
