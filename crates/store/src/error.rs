//! The store's own error: a database failure, or a stored row that does not
//! decode into its type. Callers match on what went wrong instead of on
//! sqlx's error kinds, and no message carries personal data: a corrupt row
//! is named by table, column and key, never by its content.

use uuid::Uuid;

/// What a store operation reports when it fails.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (unreachable, a constraint, a timeout, ...).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value does not decode into its type (a corrupt or foreign
    /// row). `detail` says where parsing failed, never what it read.
    #[error("corrupt row: {table}.{column} of {key} does not decode ({detail})")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        /// The row's key, e.g. `antragId 0b6e…` or `id 42`.
        key: String,
        detail: String,
    },
}

impl StoreError {
    /// A JSON column of the row with antragId `antrag_id` does not decode.
    /// serde_json's message may quote the value, so only its category and
    /// position are kept.
    pub fn corrupt_json(
        table: &'static str,
        column: &'static str,
        antrag_id: Uuid,
        e: &serde_json::Error,
    ) -> StoreError {
        StoreError::Corrupt {
            table,
            column,
            key: format!("antragId {antrag_id}"),
            detail: format!(
                "JSON {:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ),
        }
    }

    /// Whether this is a unique-constraint violation (e.g. a taken name).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation())
    }

    /// Whether a stored row failed to decode (not the database itself).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_json_message_names_the_place_not_the_content() {
        let e = serde_json::from_str::<Vec<u32>>(r#"["Erika Mustermann"]"#).unwrap_err();
        let err = StoreError::corrupt_json("cases", "findings", Uuid::nil(), &e);
        let msg = err.to_string();
        assert!(msg.contains("cases.findings"), "{msg}");
        assert!(msg.contains(&Uuid::nil().to_string()), "{msg}");
        assert!(!msg.contains("Erika"), "{msg}");
        assert!(err.is_corrupt());
    }
}
