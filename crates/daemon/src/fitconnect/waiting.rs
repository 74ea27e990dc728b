//! How long the submissions at the Zustelldienst have been waiting for an
//! answer: for each destination, the submissions its last pickup list
//! named and when this process first saw each of them. What the list no
//! longer names (accepted or rejected) is forgotten. The age of the
//! oldest is the gauge `fitconnect_oldest_unanswered_age_seconds`, so that
//! a submission the subscriber can never take (no verified
//! `submit-submission` event, a part it cannot fetch) shows long before
//! the Zustelldienst rejects it by itself after 14 days.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Submission ids by destination, with when each was first listed.
#[derive(Debug, Default)]
pub(crate) struct Waiting(BTreeMap<Uuid, BTreeMap<Uuid, Instant>>);

impl Waiting {
    /// Takes the destination's pickup list as read at `now`.
    pub(crate) fn listed(&mut self, destination: Uuid, ids: &[Uuid], now: Instant) {
        let before = self.0.remove(&destination).unwrap_or_default();
        let listed = ids
            .iter()
            .map(|id| (*id, before.get(id).copied().unwrap_or(now)))
            .collect();
        self.0.insert(destination, listed);
    }

    /// How long the oldest listed submission has been waiting at `now`
    /// (zero: none).
    pub(crate) fn oldest(&self, now: Instant) -> Duration {
        self.0
            .values()
            .flat_map(|ids| ids.values())
            .map(|since| now.saturating_duration_since(*since))
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_counts_from_its_first_listing_until_it_leaves_the_list() {
        let (d1, d2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (a, b, c) = (
            Uuid::from_u128(10),
            Uuid::from_u128(11),
            Uuid::from_u128(12),
        );
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut w = Waiting::default();
        assert_eq!(w.oldest(t0), Duration::ZERO);
        w.listed(d1, &[a], t0);
        w.listed(d2, &[c], at(50));
        w.listed(d1, &[a, b], at(100));
        assert_eq!(w.oldest(at(160)), Duration::from_secs(160), "a since t0");
        // a answered: off the list; b counts from its own first listing.
        w.listed(d1, &[b], at(200));
        assert_eq!(w.oldest(at(200)), Duration::from_secs(150), "c since 50");
        w.listed(d2, &[], at(210));
        assert_eq!(w.oldest(at(210)), Duration::from_secs(110), "b since 100");
        w.listed(d1, &[], at(220));
        assert_eq!(w.oldest(at(220)), Duration::ZERO);
    }

    #[test]
    fn one_destination_listed_again_leaves_the_others() {
        let (d1, d2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t0 = Instant::now();
        let mut w = Waiting::default();
        w.listed(d1, &[Uuid::from_u128(10)], t0);
        w.listed(d2, &[Uuid::from_u128(10)], t0 + Duration::from_secs(5));
        w.listed(d2, &[], t0 + Duration::from_secs(6));
        assert_eq!(
            w.oldest(t0 + Duration::from_secs(9)),
            Duration::from_secs(9)
        );
    }
}
