//! Similar past incidents (PRODUCT.md "Categorization"): what was done last time the same
//! thing happened. Pure ranking; the store supplies the candidates.

use super::incident::{Incident, State};

/// How many similar incidents an incident shows.
pub const SHOWN: usize = 5;

/// How closely a past incident resembles this one; a greater value ranks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Relevance {
    /// Same category.
    Category,
    /// Same service and same category.
    ServiceCategory,
    /// Same fingerprint: the same symptom of the same subject.
    Fingerprint,
}

/// What similarity looks at in a past incident (the store reads just these first).
#[derive(Debug, Clone, Copy)]
pub struct Traits<'a> {
    pub id: u64,
    pub state: State,
    pub fingerprint: &'a str,
    pub category: &'a str,
    pub service: Option<&'a str>,
}

impl<'a> Traits<'a> {
    pub fn of(incident: &'a Incident) -> Self {
        Traits {
            id: incident.id.0,
            state: incident.state,
            fingerprint: &incident.fingerprint,
            category: &incident.category,
            service: incident.service.as_deref(),
        }
    }
}

/// How `past` resembles `this`, or `None` when it is not a similar *past* incident: only
/// resolved or closed incidents other than `this` one count, since only they carry what
/// was done.
pub fn relevance(this: &Incident, past: &Incident) -> Option<Relevance> {
    relevance_of(this, Traits::of(past))
}

/// [`relevance`] from a past incident's [`Traits`].
pub fn relevance_of(this: &Incident, past: Traits<'_>) -> Option<Relevance> {
    if past.id == this.id.0 || !matches!(past.state, State::Resolved | State::Closed) {
        return None;
    }
    if past.fingerprint == this.fingerprint {
        Some(Relevance::Fingerprint)
    } else if past.category == this.category {
        if this.service.is_some() && past.service == this.service.as_deref() {
            Some(Relevance::ServiceCategory)
        } else {
            Some(Relevance::Category)
        }
    } else {
        None
    }
}

/// The at most `limit` candidates most like `this`, most relevant first; among equally
/// relevant ones the newest (highest id) first. Candidates that are not similar are left
/// out; their order does not matter.
pub fn rank(this: &Incident, candidates: Vec<Incident>, limit: usize) -> Vec<Incident> {
    let mut scored: Vec<(Relevance, Incident)> = candidates
        .into_iter()
        .filter_map(|past| relevance(this, &past).map(|r| (r, past)))
        .collect();
    scored.sort_by(|(ra, a), (rb, b)| rb.cmp(ra).then(b.id.0.cmp(&a.id.0)));
    scored.truncate(limit);
    scored.into_iter().map(|(_, incident)| incident).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::DateTime;

    use super::*;
    use crate::domain::incident::{IncidentId, Kind, Reporter, Ticket, Tier};
    use crate::domain::priority::{Level, Priority};
    use crate::domain::signal::Signal;

    /// An incident with the fields similarity looks at.
    fn incident(
        id: u64,
        state: State,
        fingerprint: &str,
        service: &str,
        category: &str,
    ) -> Incident {
        let ticket = Ticket {
            title: format!("incident {id}"),
            description: String::new(),
            reporter: Reporter {
                name: "Ana".to_owned(),
                contact: String::new(),
            },
            kind: Kind::Incident,
            category: category.to_owned(),
            impact: Level::Medium,
            urgency: Level::Medium,
            service: (!service.is_empty()).then(|| service.to_owned()),
            labels: BTreeMap::new(),
        };
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let (mut incident, _) = Incident::open(
            IncidentId(id),
            &Signal::from_ticket(IncidentId(id), ticket, Priority::P3, Tier::L1, "desk"),
            now,
        );
        incident.state = state;
        incident.fingerprint = fingerprint.to_owned();
        incident
    }

    #[test]
    fn relevance_of_each_kind_of_past_incident() {
        use State::*;
        let this = incident(100, Open, "fp-a", "vpn", "availability");
        // (past incident, expected relevance)
        let cases = [
            (
                incident(1, Resolved, "fp-a", "web", "security"),
                Some(Relevance::Fingerprint),
            ),
            (
                incident(2, Closed, "fp-a", "vpn", "availability"),
                Some(Relevance::Fingerprint),
            ),
            (
                incident(3, Resolved, "fp-b", "vpn", "availability"),
                Some(Relevance::ServiceCategory),
            ),
            (
                incident(4, Closed, "fp-b", "web", "availability"),
                Some(Relevance::Category),
            ),
            (
                incident(5, Resolved, "fp-b", "", "availability"),
                Some(Relevance::Category),
            ),
            (incident(6, Resolved, "fp-b", "vpn", "performance"), None),
            (incident(7, Open, "fp-a", "vpn", "availability"), None),
            (
                incident(8, Acknowledged, "fp-a", "vpn", "availability"),
                None,
            ),
            (incident(9, OnHold, "fp-a", "vpn", "availability"), None),
            (incident(100, Resolved, "fp-a", "vpn", "availability"), None),
        ];
        for (past, want) in cases {
            assert_eq!(relevance(&this, &past), want, "past incident {}", past.id);
        }
        // Two incidents without a service are not alike by service.
        let no_service = incident(101, Open, "fp-c", "", "availability");
        assert_eq!(
            relevance(
                &no_service,
                &incident(5, Resolved, "fp-b", "", "availability")
            ),
            Some(Relevance::Category)
        );
    }

    #[test]
    fn rank_orders_by_relevance_then_newest_and_keeps_the_limit() {
        use State::*;
        let this = incident(100, Open, "fp-a", "vpn", "availability");
        let candidates = vec![
            incident(10, Resolved, "fp-b", "web", "availability"), // category
            incident(11, Closed, "fp-a", "web", "other"),          // fingerprint
            incident(12, Resolved, "fp-b", "vpn", "availability"), // service+category
            incident(13, Open, "fp-a", "vpn", "availability"),     // not past
            incident(14, Resolved, "fp-a", "vpn", "availability"), // fingerprint
            incident(15, Resolved, "fp-b", "vpn", "other"),        // unrelated
            incident(16, Closed, "fp-b", "web", "availability"),   // category
            incident(17, Closed, "fp-b", "vpn", "availability"),   // service+category
        ];
        let cases: [(usize, &[u64]); 4] = [
            (SHOWN, &[14, 11, 17, 12, 16]),
            (10, &[14, 11, 17, 12, 16, 10]),
            (2, &[14, 11]),
            (0, &[]),
        ];
        for (limit, want) in cases {
            let got: Vec<u64> = rank(&this, candidates.clone(), limit)
                .iter()
                .map(|i| i.id.0)
                .collect();
            assert_eq!(got, want, "limit {limit}");
        }
        assert!(rank(&this, Vec::new(), SHOWN).is_empty());
    }
}
