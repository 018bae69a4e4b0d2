//! Which incidents a request for the queue shows, pure: the filters of the filter form
//! (state, tier, priority, kind, source, text, "mine"), the sort (priority, then tier from
//! L3 down, then the oldest first) and the page, over the read model's incidents that are not
//! closed. A restricted incident that the reader may not see in full matches only what its
//! restricted view shows (id and state) and sorts after the others.

use std::sync::Arc;

use serde::Deserialize;

use super::model::Row;
use crate::api::Caller;
use crate::domain::incident::{Incident, State as IncidentState, Tier};
use crate::domain::priority::Priority;
use crate::view::Shown;

/// Rows on one page of the queue.
pub const PAGE: usize = 100;
/// The longest search text taken.
const MAX_SEARCH: usize = 200;

/// The queue's filters, as the filter form sends them (unknown values filter nothing out
/// and are shown as they are).
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct Filters {
    /// `active` (default: open, acknowledged, on hold), a state, or `all` (resolved too).
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub tier: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub kind: String,
    /// `rule`, `alert` or `ticket`.
    #[serde(default)]
    pub source: String,
    /// Words in the title, service, labels or id.
    #[serde(default)]
    pub q: String,
    /// `1`: only incidents I acknowledged.
    #[serde(default)]
    pub mine: String,
    #[serde(default)]
    pub page: usize,
}

impl Filters {
    fn states(&self) -> Vec<IncidentState> {
        match self.state.as_str() {
            "" | "active" => vec![
                IncidentState::Open,
                IncidentState::Acknowledged,
                IncidentState::OnHold,
            ],
            "all" => IncidentState::ALL.to_vec(),
            other => IncidentState::ALL
                .into_iter()
                .filter(|s| s.as_str() == other)
                .collect(),
        }
    }

    /// Whether any filter needs more than a restricted view shows.
    fn looks_inside(&self) -> bool {
        !(self.tier.is_empty()
            && self.priority.is_empty()
            && self.kind.is_empty()
            && self.source.is_empty()
            && self.mine.is_empty())
    }

    fn words(&self) -> Vec<String> {
        self.q
            .chars()
            .take(MAX_SEARCH)
            .collect::<String>()
            .to_lowercase()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Whether `incident`, shown in full, passes every filter.
    fn passes(&self, incident: &Incident, me: &str, words: &[String]) -> bool {
        (self.tier.is_empty() || incident.tier.as_str() == self.tier)
            && (self.priority.is_empty() || incident.priority.as_str() == self.priority)
            && (self.kind.is_empty() || incident.kind.as_str() == self.kind)
            && (self.source.is_empty() || incident.source.type_str() == self.source)
            && (self.mine.is_empty() || incident.acknowledged_by.as_deref() == Some(me))
            && words.iter().all(|word| matches_word(incident, word))
    }

    /// The query string of these filters (without the page), for links and redirects.
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("state", &self.state),
            ("tier", &self.tier),
            ("priority", &self.priority),
            ("kind", &self.kind),
            ("source", &self.source),
            ("q", &self.q),
            ("mine", &self.mine),
        ] {
            if !value.is_empty() {
                let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                parts.push(format!("{name}={value}"));
            }
        }
        parts.join("&")
    }
}

/// A search word in the title, service, id or a label (name, value or `name=value`).
fn matches_word(incident: &Incident, word: &str) -> bool {
    let has = |text: &str| text.to_lowercase().contains(word);
    has(&incident.title)
        || incident.service.as_deref().is_some_and(has)
        || has(&incident.id.to_string())
        || incident
            .labels
            .iter()
            .any(|(k, v)| has(k) || has(v) || has(&format!("{k}={v}")))
}

/// Sort key: priority (P1 first), tier (L3 first), the oldest first.
fn rank(incident: &Incident) -> (usize, usize, chrono::DateTime<chrono::Utc>, u64) {
    let priority = Priority::ALL
        .iter()
        .position(|p| *p == incident.priority)
        .unwrap_or(usize::MAX);
    let tier = Tier::ALL
        .iter()
        .rev()
        .position(|t| *t == incident.tier)
        .unwrap_or(usize::MAX);
    (priority, tier, incident.opened_at, incident.id.0)
}

/// The queue as a page model: the rows of the requested page, how many matched.
pub(super) struct Queue<'a> {
    pub rows: Vec<Row<'a>>,
    pub matched: usize,
    pub first: usize,
    pub previous: Option<usize>,
    pub next: Option<usize>,
}

/// Filters, sorts and cuts the incidents that are not closed for `caller`.
pub(super) fn build<'a>(
    incidents: &'a imbl::OrdMap<u64, Arc<Incident>>,
    filters: &Filters,
    caller: &Caller,
    restrictions: &'a crate::view::Restrictions,
    now: chrono::DateTime<chrono::Utc>,
) -> Queue<'a> {
    let states = filters.states();
    let words = filters.words();
    let clearance = caller.clearance();
    let mut full: Vec<&'a Incident> = Vec::new();
    let mut hidden: Vec<&'a Incident> = Vec::new();
    for incident in incidents.values() {
        if !states.contains(&incident.state) {
            continue;
        }
        match restrictions.shown(incident, clearance) {
            Shown::Full(incident) => {
                if filters.passes(incident, &caller.name, &words) {
                    full.push(incident);
                }
            }
            Shown::Restricted(view) => {
                let id = view.id.to_lowercase();
                if !filters.looks_inside() && words.iter().all(|w| id.contains(w.as_str())) {
                    hidden.push(incident);
                }
            }
        }
    }
    full.sort_unstable_by_key(|i| rank(i));
    let matched = full.len() + hidden.len();
    let first = filters.page.saturating_mul(PAGE).min(matched);
    let rows = full
        .into_iter()
        .chain(hidden)
        .skip(first)
        .take(PAGE)
        .map(|incident| {
            Row::new(
                restrictions.shown(incident, clearance),
                restrictions.sla(),
                now,
            )
        })
        .collect();
    Queue {
        rows,
        matched,
        first,
        previous: filters.page.checked_sub(1).filter(|_| first > 0),
        next: (first + PAGE < matched).then_some(filters.page + 1),
    }
}

/// What the source filter offers.
pub(super) const SOURCES: [&str; 3] = ["rule", "alert", "ticket"];
