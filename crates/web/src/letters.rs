//! The letter *Aufforderung zur Mitwirkung* for one application: gathers
//! what it says (the applicant's name and address by the mapping's
//! `[casework]`, the documents still owed by person with their German
//! labels, the deadline, the jobcenter's letterhead and the legal notice
//! from `[mitwirkung]`), renders it (`allegro-letter`), stores it with the
//! application and marks its documents requested. The workbench's
//! „Aufforderung erstellen“ and `allegro-bridge mitwirkung briefe` both
//! call [`write_letter`].

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use allegro_core::mitwirkung::document_label;
use allegro_core::pipeline::Pipeline;
use allegro_letter::{Letter, Letterhead, PersonDocuments, Recipient};
use allegro_store::mitwirkung::OwedRow;
use allegro_store::Store;

/// `[mitwirkung]`: the deadline and what every letter says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MitwirkungSettings {
    /// Days from the letter's date to the deadline.
    pub frist_tage: u32,
    /// The jobcenter, e.g. „Jobcenter Musterstadt“.
    pub behoerde: String,
    /// Its postal address, line by line.
    pub anschrift: Vec<String>,
    /// Phone, e-mail, opening hours: one line each.
    pub kontakt: Vec<String>,
    /// The closing line, e.g. „Ihr Jobcenter Musterstadt“.
    pub unterschrift: String,
    /// The legal notice (§§ 60, 66, 67 SGB I), one paragraph each; empty:
    /// the built-in text.
    pub rechtsfolgenbelehrung: Vec<String>,
}

impl Default for MitwirkungSettings {
    fn default() -> Self {
        MitwirkungSettings {
            frist_tage: 14,
            behoerde: "Jobcenter".into(),
            anschrift: Vec::new(),
            kontakt: Vec::new(),
            unterschrift: "Ihr Jobcenter".into(),
            rechtsfolgenbelehrung: Vec::new(),
        }
    }
}

impl MitwirkungSettings {
    /// Problems with the settings, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=365).contains(&self.frist_tage) {
            out.push(format!(
                "mitwirkung.frist_tage = {}: expected 1 to 365 days",
                self.frist_tage
            ));
        }
        if self.behoerde.trim().is_empty() {
            out.push(
                "mitwirkung.behoerde is empty: the letterhead needs the jobcenter's name".into(),
            );
        }
        out
    }

    /// The deadline of a letter written on `today`.
    pub fn deadline(&self, today: NaiveDate) -> NaiveDate {
        today
            .checked_add_days(Days::new(u64::from(self.frist_tage)))
            .unwrap_or(today)
    }

    fn legal_notice(&self) -> Vec<String> {
        if self.rechtsfolgenbelehrung.is_empty() {
            allegro_letter::DEFAULT_LEGAL_NOTICE
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.rechtsfolgenbelehrung.clone()
        }
    }
}

/// Why no letter was written.
#[derive(Debug, thiserror::Error)]
pub enum LetterError {
    #[error("no application {0} (or its data was removed by retention)")]
    Unknown(Uuid),
    #[error("application {0} owes no document that is open or requested")]
    NothingOwed(Uuid),
    #[error("application {0}: no mapping for its form version")]
    NoMapping(Uuid),
    #[error("application {0}: the letter could not be rendered: {1}")]
    Render(Uuid, allegro_letter::LetterError),
    #[error(transparent)]
    Store(#[from] allegro_store::StoreError),
}

/// A written letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub letter_id: i64,
    pub documents: usize,
    pub deadline: NaiveDate,
}

/// Writes, stores and records the letter for the documents `antrag_id`
/// still owes (open or requested): they become requested with the new
/// deadline.
pub async fn write_letter(
    store: &Store,
    pipeline: &Pipeline,
    settings: &MitwirkungSettings,
    antrag_id: Uuid,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Written, LetterError> {
    let today = now.date_naive();
    let (body, _) = store
        .current_application(antrag_id)
        .await?
        .ok_or(LetterError::Unknown(antrag_id))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| LetterError::Unknown(antrag_id))?;
    let owed: Vec<OwedRow> = store
        .owed_of(antrag_id)
        .await?
        .into_iter()
        .filter(|d| d.state.is_pending())
        .collect();
    if owed.is_empty() {
        return Err(LetterError::NothingOwed(antrag_id));
    }
    let deadline = settings.deadline(today);
    let letter = compose(pipeline, settings, antrag_id, &doc, &owed, today, deadline)?;
    let pdf = allegro_letter::render(&letter).map_err(|e| LetterError::Render(antrag_id, e))?;
    let ids: Vec<i64> = owed.iter().map(|d| d.id).collect();
    let letter_id = store
        .insert_letter(antrag_id, &ids, deadline, &pdf, actor, now)
        .await?;
    Ok(Written {
        letter_id,
        documents: ids.len(),
        deadline,
    })
}

/// What the letter says.
fn compose(
    pipeline: &Pipeline,
    settings: &MitwirkungSettings,
    antrag_id: Uuid,
    doc: &serde_json::Value,
    owed: &[OwedRow],
    today: NaiveDate,
    deadline: NaiveDate,
) -> Result<Letter, LetterError> {
    let form = |k: &str| {
        doc.pointer(&format!("/formular/{k}"))
            .and_then(|v| v.as_str())
    };
    let m = form("id")
        .zip(form("version"))
        .and_then(|(f, v)| pipeline.mappings().get(f, v))
        .ok_or(LetterError::NoMapping(antrag_id))?;
    let layout = &m.casework;
    let mut persons: Vec<PersonDocuments> = Vec::new();
    for d in owed {
        let person = match &d.person_id {
            Some(id) => layout
                .persons
                .name_of(doc, id)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("Person {id}")),
            None => "Bedarfsgemeinschaft".to_string(),
        };
        let label = document_label(m, &d.kind);
        match persons.iter_mut().find(|p| p.person == person) {
            Some(p) => p.documents.push(label),
            None => persons.push(PersonDocuments {
                person,
                documents: vec![label],
            }),
        }
    }
    Ok(Letter {
        letterhead: Letterhead {
            authority: settings.behoerde.clone(),
            address: settings.anschrift.clone(),
            contact: settings.kontakt.clone(),
            signature: settings.unterschrift.clone(),
        },
        recipient: Recipient {
            name: layout
                .applicant_of(doc)
                .map(|n| n.into_string())
                .unwrap_or_default(),
            address: layout.address_of(doc),
        },
        date: today,
        reference: antrag_id.to_string(),
        deadline,
        persons,
        legal_notice: settings.legal_notice(),
    })
}
