//! The commit step of one batch as data: which application rows to insert,
//! which dead letters to log and publish, what to count and which records to
//! hand to the dispatcher. Pure (no broker, database or clock); the consumer
//! applies it inside one transaction and then acks the whole batch.
//!
//! Every delivery of a batch ends in exactly one of: a new application row,
//! a duplicate of a stored one, or a dead letter (invalid, conflict, internal
//! error). So once the transaction has committed and the dead letters are
//! confirmed, one multiple-ack up to the batch's last delivery tag is right.

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use uuid::Uuid;

use crate::deadletter;
use allegro_core::casework::layout::ApplicantName;
use allegro_core::pipeline::{Application, Invalid, InvalidReason, Message, Outcome, Processed};
use allegro_store::mitwirkung::{NewNachreichung, Received};
use allegro_store::{
    cases, record_file_name, NewApplication, NewDeadLetter, PendingRecord, Stored, Verdict,
};

/// One delivery after the pipeline.
pub struct Item {
    pub message: Message,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
    pub body_sha256: String,
}

impl Item {
    /// The pipeline's result for a delivery with this body and properties.
    pub fn new(message: Message, body: Vec<u8>, properties: BasicProperties) -> Item {
        let body_sha256 = deadletter::sha256_hex(&body);
        Item {
            message,
            body,
            properties,
            body_sha256,
        }
    }

    /// The AMQP `message_id`, if any.
    pub fn message_id(&self) -> Option<&str> {
        self.properties.message_id().as_ref().map(|m| m.as_str())
    }

    fn dead_letter(&self, invalid: &Invalid, now: DateTime<Utc>) -> NewDeadLetter {
        NewDeadLetter {
            dedup_key: deadletter::dedup_key(&self.body_sha256, self.message_id()),
            antrag_id: invalid.antrag_id,
            reason: invalid.reason.as_str(),
            detail: invalid.detail.clone(),
            body_sha256: self.body_sha256.clone(),
            body_bytes: self.body.len() as i64,
            first_seen: now,
        }
    }

    fn application(
        &self,
        app: &Application,
        verdict: Verdict,
        now: DateTime<Utc>,
    ) -> NewApplication {
        // The search and filter columns of a case (not needed for a record).
        let (applicant, error_rules) = match verdict {
            Verdict::Rejected => (
                app.applicant.clone().map(ApplicantName::into_string),
                cases::error_rules_of(&app.findings),
            ),
            Verdict::Accepted(_) => (None, String::new()),
        };
        NewApplication {
            antrag_id: app.antrag_id,
            body: self.body.clone(),
            body_sha256: self.body_sha256.clone(),
            verdict,
            mapping: clean(&app.mapping),
            findings_json: serde_json::to_string(&app.findings).unwrap_or_else(|_| "[]".into()),
            dienststellennummer: app.jobcenter.clone(),
            message_id: self.message_id().map(clean),
            created_at: now,
            applicant,
            error_rules,
            owed: app.owed.clone(),
        }
    }
}

/// Drops NUL characters, which PostgreSQL text columns refuse.
fn clean(s: &str) -> String {
    s.replace('\0', "")
}

/// The rows of one batch.
#[derive(Debug, Default)]
pub struct Plan {
    /// Application rows to insert, in delivery order.
    pub apps: Vec<NewApplication>,
    /// The item of each application row.
    app_items: Vec<usize>,
    /// Dead letters to log (and publish where new), in the order found.
    pub letters: Vec<NewDeadLetter>,
    /// The item of each dead letter.
    letter_items: Vec<usize>,
    /// The items that are Nachreichungen, in delivery order.
    nachreichung_items: Vec<usize>,
}

/// What a stored batch added, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
    /// Nachreichungen matched to a document owed.
    pub nachreichungen: u64,
}

/// A dead letter to publish: the item whose body and properties it carries,
/// the letter, and the id the store gave it.
pub struct Publish<'a> {
    pub item: usize,
    pub letter: &'a NewDeadLetter,
    pub id: Uuid,
}

impl Plan {
    /// An application row per readable application, a dead letter per
    /// invalid delivery.
    pub fn new(items: &[Item], now: DateTime<Utc>) -> Plan {
        let mut plan = Plan::default();
        for (i, it) in items.iter().enumerate() {
            let processed = match &it.message {
                Message::Application(p) => p,
                Message::Nachreichung(_) => {
                    plan.nachreichung_items.push(i);
                    continue;
                }
            };
            match processed {
                Processed::Accepted {
                    application,
                    record,
                } => plan.app(
                    i,
                    it.application(application, Verdict::Accepted(record.clone()), now),
                ),
                Processed::Rejected(application) => {
                    plan.app(i, it.application(application, Verdict::Rejected, now))
                }
                Processed::Invalid(invalid) => plan.letter(i, it.dead_letter(invalid, now)),
            }
        }
        plan
    }

    fn app(&mut self, item: usize, row: NewApplication) {
        self.apps.push(row);
        self.app_items.push(item);
    }

    fn letter(&mut self, item: usize, letter: NewDeadLetter) {
        self.letters.push(letter);
        self.letter_items.push(item);
    }

    /// Takes what the store did with each application row (`stored`, in the
    /// order of [`Plan::apps`]): a conflict becomes a dead letter; the rest
    /// is counted.
    pub fn settle(&mut self, items: &[Item], stored: &[Stored], now: DateTime<Utc>) -> Tally {
        let mut tally = Tally::default();
        for (k, s) in stored.iter().enumerate() {
            let item = self.app_items[k];
            match s {
                Stored::Inserted => match self.apps[k].verdict {
                    Verdict::Accepted(_) => tally.accepted += 1,
                    Verdict::Rejected => tally.rejected += 1,
                },
                Stored::Duplicate => tally.duplicates += 1,
                Stored::Conflict => {
                    let why = Invalid::new(
                        InvalidReason::Conflict,
                        "a different body is already stored under this antragId",
                        Some(self.apps[k].antrag_id),
                    );
                    let letter = items[item].dead_letter(&why, now);
                    self.letter(item, letter);
                }
            }
        }
        tally
    }

    /// What the store did with each readable application of the batch
    /// (`stored`, in the order of [`Plan::apps`]), with its outcome.
    pub fn stored<'a>(
        &self,
        items: &'a [Item],
        stored: &'a [Stored],
    ) -> impl Iterator<Item = (&'a Application, Outcome, Stored)> + 'a {
        let app_items = self.app_items.clone();
        app_items
            .into_iter()
            .zip(stored)
            .filter_map(move |(item, s)| {
                let Message::Application(p) = &items[item].message else {
                    return None;
                };
                p.application().map(|a| (a, p.outcome(), *s))
            })
    }

    /// The dead letters the store logged as new (`logged`, in the order of
    /// [`Plan::letters`]): only those are published.
    pub fn to_publish<'a>(&'a self, logged: &[Option<Uuid>]) -> Vec<Publish<'a>> {
        self.letters
            .iter()
            .zip(&self.letter_items)
            .zip(logged)
            .filter_map(|((letter, &item), id)| id.map(|id| Publish { item, letter, id }))
            .collect()
    }

    /// The Nachreichungen of the batch, for the store (after the
    /// applications, so one for an application of the same batch matches).
    pub fn nachreichungen<'a>(&self, items: &'a [Item]) -> Vec<NewNachreichung<'a>> {
        self.nachreichung_items
            .iter()
            .filter_map(|&i| match &items[i].message {
                Message::Nachreichung(n) => Some(NewNachreichung {
                    nachreichung: n,
                    body_sha256: &items[i].body_sha256,
                }),
                Message::Application(_) => None,
            })
            .collect()
    }

    /// Takes what the store did with each Nachreichung (`received`, in the
    /// order of [`Plan::nachreichungen`]): what it could not match becomes
    /// a dead letter with its reason; the follow-up records of the matched
    /// ones are returned for the dispatcher. Counts go into `tally`.
    pub fn settle_nachreichungen(
        &mut self,
        items: &[Item],
        received: Vec<Received>,
        now: DateTime<Utc>,
        tally: &mut Tally,
    ) -> Vec<PendingRecord> {
        let mut follow_ups = Vec::new();
        for (k, r) in received.into_iter().enumerate() {
            let item = self.nachreichung_items[k];
            let Message::Nachreichung(n) = &items[item].message else {
                continue;
            };
            let (reason, detail) = match r {
                Received::Matched { follow_up, .. } => {
                    tally.nachreichungen += 1;
                    follow_ups.extend(follow_up);
                    continue;
                }
                Received::Duplicate => {
                    tally.duplicates += 1;
                    continue;
                }
                Received::Conflict => (
                    InvalidReason::Conflict,
                    "a different body is already stored under this nachreichungId",
                ),
                Received::UnknownApplication => (
                    InvalidReason::UnknownApplication,
                    "no application is stored under this antragId",
                ),
                Received::NotOwed => (
                    InvalidReason::DocumentNotOwed,
                    "the application owes no document of this kind for this person",
                ),
            };
            let why = Invalid::new(reason, detail, Some(n.antrag_id));
            let letter = items[item].dead_letter(&why, now);
            self.letter(item, letter);
        }
        follow_ups
    }

    /// The records of newly inserted accepted applications, for the
    /// dispatcher once the transaction has committed.
    pub fn new_records(self, stored: &[Stored]) -> Vec<PendingRecord> {
        self.apps
            .into_iter()
            .zip(stored)
            .filter_map(|(a, s)| match (s, a.verdict) {
                (Stored::Inserted, Verdict::Accepted(xml)) => Some(PendingRecord {
                    antrag_id: a.antrag_id,
                    file_name: record_file_name(a.antrag_id),
                    xml,
                }),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allegro_core::finding::{Finding, Severity};

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn application(n: u128, errors: usize) -> Application {
        let error = Finding {
            pointer: "/x".into(),
            severity: Severity::Error,
            rule: "R".into(),
            message: "m".into(),
            nachweis: None,
        };
        Application {
            antrag_id: id(n),
            mapping: "bg-ha-1.0".into(),
            jobcenter: Some("13101".into()),
            applicant: None,
            findings: vec![error; errors],
            owed: vec![],
        }
    }

    fn item(processed: Processed, body: &str) -> Item {
        Item::new(
            Message::Application(processed),
            body.as_bytes().to_vec(),
            BasicProperties::default(),
        )
    }

    fn accepted(n: u128, body: &str) -> Item {
        let processed = Processed::Accepted {
            application: application(n, 0),
            record: format!("<r{n}/>").into_bytes(),
        };
        item(processed, body)
    }

    fn rejected(n: u128, body: &str) -> Item {
        item(Processed::Rejected(application(n, 1)), body)
    }

    fn invalid(reason: InvalidReason, body: &str) -> Item {
        item(Processed::Invalid(Invalid::new(reason, "d", None)), body)
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn a_case_carries_its_applicant_and_error_rules_for_the_workbench() {
        let layout = allegro_core::casework::Layout::new(
            allegro_core::casework::layout::general_default(),
            vec![],
            vec![],
            Default::default(),
            None,
            vec!["/name".into()],
        );
        let named = |item: Item| {
            let mut item = item;
            if let Message::Application(Processed::Rejected(app)) = &mut item.message {
                app.applicant = layout.applicant_of(&serde_json::json!({"name": "Ioana Popescu"}));
            }
            item
        };
        let items = [
            named(rejected(1, "{}")),
            accepted(2, "{}"),
            rejected(3, "{}"),
        ];
        let plan = Plan::new(&items, now());
        assert_eq!(plan.apps[0].applicant.as_deref(), Some("Ioana Popescu"));
        assert_eq!(plan.apps[0].error_rules, ",R,");
        // A record needs neither; a case without a name has none.
        assert_eq!(plan.apps[1].applicant, None);
        assert_eq!(plan.apps[1].error_rules, "");
        assert_eq!(plan.apps[2].applicant, None);
        assert_eq!(plan.apps[2].error_rules, ",R,");
    }

    #[test]
    fn readable_applications_become_rows_and_invalid_deliveries_dead_letters() {
        let items = [
            accepted(1, "a"),
            invalid(InvalidReason::NotJson, "{"),
            rejected(2, "b"),
        ];
        let plan = Plan::new(&items, now());
        let rows: Vec<_> = plan
            .apps
            .iter()
            .map(|a| {
                (
                    a.antrag_id,
                    a.verdict.outcome().as_str(),
                    a.verdict.record(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (id(1), "accepted", Some(&b"<r1/>"[..])),
                (id(2), "rejected", None)
            ]
        );
        assert_eq!(plan.app_items, [0, 2]);
        assert_eq!(plan.letters.len(), 1);
        assert_eq!(plan.letters[0].reason, "not_json");
        assert_eq!(plan.letters[0].dedup_key, items[1].body_sha256);
        assert_eq!(plan.letters[0].body_bytes, 1, "the body `{{` is one byte");
        assert_eq!(plan.letter_items, [1]);
    }

    #[test]
    fn the_message_id_is_part_of_the_dead_letter_key_and_the_row() {
        let mut it = accepted(1, "a");
        it.properties = BasicProperties::default().with_message_id("m\0id".into());
        let plan = Plan::new(std::slice::from_ref(&it), now());
        assert_eq!(plan.apps[0].message_id.as_deref(), Some("mid"));
        let bad = Item {
            properties: it.properties.clone(),
            ..invalid(InvalidReason::NotJson, "a")
        };
        let letters = Plan::new(&[bad], now()).letters;
        assert_eq!(
            letters[0].dedup_key,
            deadletter::dedup_key(&it.body_sha256, Some("m\0id"))
        );
    }

    #[test]
    fn settling_counts_new_rows_and_dead_letters_conflicts() {
        let items = [
            accepted(1, "a"),
            rejected(2, "b"),
            accepted(3, "c"),
            accepted(4, "d"),
            invalid(InvalidReason::TooLarge, "e"),
        ];
        let mut plan = Plan::new(&items, now());
        let stored = [
            Stored::Inserted,
            Stored::Inserted,
            Stored::Duplicate,
            Stored::Conflict,
        ];
        let tally = plan.settle(&items, &stored, now());
        assert_eq!(
            tally,
            Tally {
                accepted: 1,
                rejected: 1,
                duplicates: 1,
                nachreichungen: 0,
            }
        );
        let reasons: Vec<_> = plan.letters.iter().map(|l| l.reason).collect();
        assert_eq!(reasons, ["too_large", "conflict"]);
        assert_eq!(plan.letters[1].antrag_id, Some(id(4)));
        assert_eq!(plan.letter_items, [4, 3]);
        // Every delivery is accounted for once, so acking all of them is right.
        let letters = plan.letters.len() as u64;
        assert_eq!(
            tally.accepted + tally.rejected + tally.duplicates + letters,
            items.len() as u64
        );
    }

    #[test]
    fn only_newly_logged_dead_letters_are_published_with_their_ids() {
        let items = [
            invalid(InvalidReason::NotJson, "x"),
            invalid(InvalidReason::NotUtf8, "y"),
        ];
        let plan = Plan::new(&items, now());
        let publish = plan.to_publish(&[None, Some(id(9))]);
        assert_eq!(publish.len(), 1);
        assert_eq!((publish[0].item, publish[0].id), (1, id(9)));
        assert_eq!(publish[0].letter.reason, "not_utf8");
    }

    #[test]
    fn only_new_accepted_applications_go_to_the_dispatcher() {
        let items = [accepted(1, "a"), rejected(2, "b"), accepted(3, "c")];
        let mut plan = Plan::new(&items, now());
        let stored = [Stored::Inserted, Stored::Inserted, Stored::Duplicate];
        plan.settle(&items, &stored, now());
        let records = plan.new_records(&stored);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].antrag_id, id(1));
        assert_eq!(records[0].file_name, format!("{}.xml", id(1)));
        assert_eq!(records[0].xml, b"<r1/>");
    }
}
