//! The life of one document owed (Mitwirkung, §§ 60–67 SGB I) as a state
//! machine: `offen` → `angefordert` (a letter, a deadline) → `eingegangen`
//! (a date and the way it came) or `verzichtet` (a reason and who decided).
//! `überfällig` is no state of its own: a request whose deadline has passed
//! ([`DocState::is_overdue`]), so it cannot be forgotten to be set.
//!
//! Pure: the caller passes today's date; the store persists the result.

use chrono::NaiveDate;

/// How a document arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eingangsweg {
    /// A *Nachreichung* message on the intake queue (contract §8).
    Nachreichung,
    /// Marked received by a caseworker in the workbench.
    Sachbearbeitung,
    /// An attachment of a FIT-Connect submission.
    FitConnect,
}

impl Eingangsweg {
    pub const ALL: [Eingangsweg; 3] = [
        Eingangsweg::Nachreichung,
        Eingangsweg::Sachbearbeitung,
        Eingangsweg::FitConnect,
    ];

    /// The stored code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Eingangsweg::Nachreichung => "nachreichung",
            Eingangsweg::Sachbearbeitung => "sachbearbeitung",
            Eingangsweg::FitConnect => "fitconnect",
        }
    }

    /// What a caseworker reads.
    pub const fn label(self) -> &'static str {
        match self {
            Eingangsweg::Nachreichung => "Nachreichung (online)",
            Eingangsweg::Sachbearbeitung => "vermerkt durch Sachbearbeitung",
            Eingangsweg::FitConnect => "FIT-Connect",
        }
    }

    pub fn parse(code: &str) -> Option<Eingangsweg> {
        Eingangsweg::ALL.into_iter().find(|w| w.as_str() == code)
    }
}

/// Where one document owed stands, with exactly the data of that state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocState {
    /// Owed, not yet requested.
    Offen,
    /// Requested (by letter) with a deadline.
    Angefordert { deadline: NaiveDate },
    /// Arrived on `on`, by `via`.
    Eingegangen { on: NaiveDate, via: Eingangsweg },
    /// Not needed after all: why, and who decided.
    Verzichtet { reason: String, by: String },
}

/// The stored code of a state (`documents_owed.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateCode {
    Offen,
    Angefordert,
    Eingegangen,
    Verzichtet,
}

impl StateCode {
    pub const ALL: [StateCode; 4] = [
        StateCode::Offen,
        StateCode::Angefordert,
        StateCode::Eingegangen,
        StateCode::Verzichtet,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            StateCode::Offen => "offen",
            StateCode::Angefordert => "angefordert",
            StateCode::Eingegangen => "eingegangen",
            StateCode::Verzichtet => "verzichtet",
        }
    }

    /// The German word a caseworker reads.
    pub const fn label(self) -> &'static str {
        match self {
            StateCode::Offen => "offen",
            StateCode::Angefordert => "angefordert",
            StateCode::Eingegangen => "eingegangen",
            StateCode::Verzichtet => "verzichtet",
        }
    }

    pub fn parse(code: &str) -> Option<StateCode> {
        StateCode::ALL.into_iter().find(|s| s.as_str() == code)
    }
}

impl DocState {
    pub fn code(&self) -> StateCode {
        match self {
            DocState::Offen => StateCode::Offen,
            DocState::Angefordert { .. } => StateCode::Angefordert,
            DocState::Eingegangen { .. } => StateCode::Eingegangen,
            DocState::Verzichtet { .. } => StateCode::Verzichtet,
        }
    }

    /// Requested and the deadline has passed (the deadline day itself is
    /// still in time).
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        matches!(self, DocState::Angefordert { deadline } if *deadline < today)
    }

    /// Still waited for: open or requested.
    pub fn is_pending(&self) -> bool {
        matches!(self, DocState::Offen | DocState::Angefordert { .. })
    }

    /// The state after `change`, or why it is not allowed.
    pub fn apply(&self, change: &Change, today: NaiveDate) -> Result<DocState, Refused> {
        use DocState::*;
        match (self, change) {
            (Offen | Angefordert { .. }, Change::Anfordern { deadline }) => {
                not_past(*deadline, today)?;
                Ok(Angefordert {
                    deadline: *deadline,
                })
            }
            (Angefordert { deadline: old }, Change::FristVerlaengern { deadline }) => {
                if deadline <= old {
                    return Err(Refused::DeadlineNotLater);
                }
                Ok(Angefordert {
                    deadline: *deadline,
                })
            }
            (Offen | Angefordert { .. } | Verzichtet { .. }, Change::Eingang { on, via }) => {
                if *on > today {
                    return Err(Refused::ReceivedInFuture);
                }
                Ok(Eingegangen { on: *on, via: *via })
            }
            (Offen | Angefordert { .. }, Change::Verzichten { reason, by }) => {
                let reason = reason.trim();
                if reason.is_empty() {
                    return Err(Refused::ReasonMissing);
                }
                Ok(Verzichtet {
                    reason: reason.to_string(),
                    by: by.clone(),
                })
            }
            _ => Err(Refused::NotNow(self.code())),
        }
    }
}

fn not_past(deadline: NaiveDate, today: NaiveDate) -> Result<(), Refused> {
    if deadline < today {
        Err(Refused::DeadlineInPast)
    } else {
        Ok(())
    }
}

/// One change a caseworker (or a message) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Request the document by letter, due on `deadline`.
    Anfordern { deadline: NaiveDate },
    /// Move the deadline of a request later.
    FristVerlaengern { deadline: NaiveDate },
    /// The document arrived on `on`.
    Eingang { on: NaiveDate, via: Eingangsweg },
    /// The document is not needed.
    Verzichten { reason: String, by: String },
}

/// Why a change is refused; each has a German sentence for the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The change does not apply to the current state.
    NotNow(StateCode),
    DeadlineInPast,
    DeadlineNotLater,
    ReceivedInFuture,
    ReasonMissing,
}

impl Refused {
    pub fn meldung(self) -> &'static str {
        match self {
            Refused::NotNow(StateCode::Eingegangen) => {
                "Der Nachweis ist bereits eingegangen; er kann nicht mehr geändert werden."
            }
            Refused::NotNow(StateCode::Verzichtet) => {
                "Auf den Nachweis wurde verzichtet; er kann nur noch als eingegangen vermerkt werden."
            }
            Refused::NotNow(StateCode::Offen) => {
                "Der Nachweis ist noch nicht angefordert; eine Frist kann erst nach der Anforderung verlängert werden."
            }
            Refused::NotNow(StateCode::Angefordert) => {
                "Diese Änderung ist für einen angeforderten Nachweis nicht möglich."
            }
            Refused::DeadlineInPast => "Die Frist darf nicht in der Vergangenheit liegen.",
            Refused::DeadlineNotLater => {
                "Die neue Frist muss nach der bisherigen Frist liegen."
            }
            Refused::ReceivedInFuture => "Das Eingangsdatum darf nicht in der Zukunft liegen.",
            Refused::ReasonMissing => "Geben Sie einen Grund für den Verzicht an.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_document_goes_from_open_to_requested_to_received() {
        let today = d("2026-12-07");
        let s = DocState::Offen
            .apply(
                &Change::Anfordern {
                    deadline: d("2026-12-21"),
                },
                today,
            )
            .unwrap();
        assert_eq!(
            s,
            DocState::Angefordert {
                deadline: d("2026-12-21")
            }
        );
        assert!(!s.is_overdue(d("2026-12-21")) && s.is_overdue(d("2026-12-22")));
        let s = s
            .apply(
                &Change::FristVerlaengern {
                    deadline: d("2027-01-04"),
                },
                today,
            )
            .unwrap();
        let got = Change::Eingang {
            on: d("2026-12-07"),
            via: Eingangsweg::Nachreichung,
        };
        let s = s.apply(&got, today).unwrap();
        assert_eq!(s.code(), StateCode::Eingegangen);
        assert!(!s.is_pending() && !s.is_overdue(d("2030-01-01")));
        assert_eq!(
            s.apply(&got, today),
            Err(Refused::NotNow(StateCode::Eingegangen))
        );
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let today = d("2026-12-07");
        let req = DocState::Angefordert {
            deadline: d("2026-12-21"),
        };
        let earlier = Change::FristVerlaengern {
            deadline: d("2026-12-20"),
        };
        assert_eq!(req.apply(&earlier, today), Err(Refused::DeadlineNotLater));
        let past = Change::Anfordern {
            deadline: d("2026-12-06"),
        };
        assert_eq!(
            DocState::Offen.apply(&past, today),
            Err(Refused::DeadlineInPast)
        );
        let extend = Change::FristVerlaengern {
            deadline: d("2027-01-01"),
        };
        assert_eq!(
            DocState::Offen.apply(&extend, today),
            Err(Refused::NotNow(StateCode::Offen))
        );
        let blank = Change::Verzichten {
            reason: "  ".into(),
            by: "sb".into(),
        };
        assert_eq!(
            DocState::Offen.apply(&blank, today),
            Err(Refused::ReasonMissing)
        );
        let future = Change::Eingang {
            on: d("2026-12-08"),
            via: Eingangsweg::Sachbearbeitung,
        };
        assert_eq!(
            DocState::Offen.apply(&future, today),
            Err(Refused::ReceivedInFuture)
        );
        let waived = DocState::Offen
            .apply(
                &Change::Verzichten {
                    reason: " liegt vor ".into(),
                    by: "sb".into(),
                },
                today,
            )
            .unwrap();
        assert_eq!(
            waived,
            DocState::Verzichtet {
                reason: "liegt vor".into(),
                by: "sb".into()
            }
        );
        // A waived document that arrives anyway is received.
        let late = Change::Eingang {
            on: today,
            via: Eingangsweg::Nachreichung,
        };
        assert_eq!(
            waived.apply(&late, today).unwrap().code(),
            StateCode::Eingegangen
        );
        for r in [
            Refused::DeadlineInPast,
            Refused::NotNow(StateCode::Verzichtet),
        ] {
            assert!(r.meldung().ends_with('.'));
        }
    }

    #[test]
    fn codes_read_back() {
        for s in StateCode::ALL {
            assert_eq!(StateCode::parse(s.as_str()), Some(s));
        }
        for w in Eingangsweg::ALL {
            assert_eq!(Eingangsweg::parse(w.as_str()), Some(w));
        }
        assert_eq!(StateCode::parse("ueberfaellig"), None);
    }
}
