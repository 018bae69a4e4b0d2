//! The read model: what the engine's last commit left, published as an immutable
//! [`Snapshot`] on a `watch` channel. Readers — the API's rule, silence and status routes,
//! the status page — take the latest snapshot and never queue behind the writer.
//!
//! Publishing is cheap at any size: the maps are persistent (`imbl`), so a snapshot is a
//! clone of a few roots, and a commit updates only the entries it touched (the uptime
//! history included: a batch of runs copies the days of the probes that ran).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::config::{SignalServices, StatusPageConfig};
use crate::domain::correlate::{Suppressions, suppression};
use crate::domain::detector::Detector;
use crate::domain::duration::format_duration;
use crate::domain::incident::{Incident, TimelineEntry};
use crate::domain::maintenance::{Maintenance, MaintenanceState};
use crate::domain::suppression::Silence;
use crate::domain::uptime::UptimeHistory;
use crate::view::{Restrictions, timestamp};

use super::rules::{DetectorKey, RuleBook};

/// The state after one commit.
#[derive(Clone)]
pub struct Snapshot {
    /// Counts commits: equal versions are equal snapshots.
    pub version: u64,
    /// Every incident that is not closed, by id.
    pub incidents: imbl::OrdMap<u64, Arc<Incident>>,
    /// The public notes of those incidents, oldest first.
    pub public_updates: imbl::OrdMap<u64, Arc<Vec<TimelineEntry>>>,
    /// Incidents closed lately (see [`RECENT_DAYS`], at most [`RECENT_MAX`]), by id, with
    /// their public notes: the status page's recent history without a store read. Only
    /// those the page shows (public, or restricted as the generic notice: see
    /// [`crate::visibility::visibility`]), so private incidents never take the places of
    /// public ones; a reload that changes what the public sees reads them again.
    pub recent: imbl::OrdMap<u64, Recent>,
    /// Each rule's detector per subject, as far as it is shown (firing, streaks, flapping).
    /// Keys are shared: a commit after a publish copies the map's path to what it changes,
    /// and copying a key is then a reference count, not its strings.
    pub detectors: imbl::OrdMap<Arc<DetectorKey>, Detector>,
    /// Silences that had not ended at the commit.
    pub silences: Arc<BTreeMap<u64, Silence>>,
    /// Maintenances upcoming and active, and the latest that are over (completed or
    /// cancelled in the last 90 days, up to 1,000), by id: what the status page shows.
    pub maintenances: Arc<BTreeMap<u64, Maintenance>>,
    pub rules: Arc<RuleBook>,
    pub restrictions: Arc<Restrictions>,
    /// `status_page:`: its services decide which a signal belongs to (maintenances).
    pub status_page: Arc<StatusPageConfig>,
    /// Each configured probe's runs and successes per UTC day, as committed: the status
    /// page's uptime bar and figures, and `GET /api/v1/probes`' `uptime`. A persistent map,
    /// so publishing it copies a root, and a batch copies only the probes that ran.
    pub uptime: UptimeHistory,
    /// The console's sessions by the SHA-256 of their id, as committed: a request finds
    /// its session here, never in the store.
    pub sessions: imbl::HashMap<crate::store::SessionKey, Arc<crate::store::Session>>,
    /// The incidents the commit that published this snapshot changed (a timeline entry,
    /// which leaves the incident's fields as they were, included); `None` after a load,
    /// when any may have. Live views compare consecutive versions with it.
    pub touched: Option<Arc<Vec<u64>>>,
}

/// How long a closed incident stays in [`Snapshot::recent`].
pub const RECENT_DAYS: i64 = 14;
/// At most this many closed incidents in [`Snapshot::recent`]: the oldest go first.
pub const RECENT_MAX: usize = 1_000;

/// A closed incident as the read model keeps it.
#[derive(Clone)]
pub struct Recent {
    pub incident: Arc<Incident>,
    /// Its public notes, oldest first.
    pub updates: Arc<Vec<TimelineEntry>>,
}

/// Adds a closed incident to `recent` and drops what is past [`RECENT_DAYS`] or beyond
/// [`RECENT_MAX`]: the oldest ids first, so the cost follows what goes, not the length.
pub(super) fn remember_closed(
    recent: &mut imbl::OrdMap<u64, Recent>,
    closed: Recent,
    now: DateTime<Utc>,
) {
    recent.insert(closed.incident.id.0, closed);
    let since = now - chrono::TimeDelta::days(RECENT_DAYS);
    while let Some(&(id, ref oldest)) = recent.get_min() {
        let ended = oldest.incident.closed_at.unwrap_or(now);
        if recent.len() <= RECENT_MAX && ended >= since {
            break;
        }
        recent.remove(&id);
    }
}

/// The receiving end: `borrow()` for the latest snapshot.
pub type ReadModel = watch::Receiver<Arc<Snapshot>>;

/// One rule as `GET /api/v1/rules` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Rule)]
pub struct RuleStatus {
    pub name: String,
    pub probe: String,
    pub when: String,
    pub after: u32,
    pub recover_after: u32,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    pub depends_on: Vec<String>,
    pub firing: bool,
    pub subjects: Vec<SubjectStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = RuleSubject)]
pub struct SubjectStatus {
    pub labels: BTreeMap<String, String>,
    pub firing: bool,
    pub flapping: bool,
    pub symptomatic_streak: u32,
    pub clean_streak: u32,
    pub symptom_since: Option<String>,
    /// Why a firing subject has no incident: `maintenance`, `silenced`, `depends_on`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

impl Snapshot {
    /// The incidents that are active (open, acknowledged, on hold), by id.
    pub fn active(&self) -> impl DoubleEndedIterator<Item = &Arc<Incident>> {
        self.incidents.values().filter(|i| i.state.is_active())
    }

    /// The silences that have not ended at `now`.
    pub fn silences_at(&self, now: DateTime<Utc>) -> Vec<Silence> {
        self.silences
            .values()
            .filter(|s| s.ends_at > now)
            .cloned()
            .collect()
    }

    /// The maintenances in one of `states` at `now` (all with `None`), the latest start
    /// first (then the highest id).
    pub fn maintenances_at(
        &self,
        states: Option<&[MaintenanceState]>,
        now: DateTime<Utc>,
    ) -> Vec<&Maintenance> {
        let mut found: Vec<&Maintenance> = self
            .maintenances
            .values()
            .filter(|m| states.is_none_or(|states| states.contains(&m.state(now))))
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse((m.starts_at, m.id)));
        found
    }

    /// Every rule's state per subject.
    pub fn rules_at(&self, now: DateTime<Utc>) -> Vec<RuleStatus> {
        let by_group: HashMap<&str, &Incident> = self
            .active()
            .map(|incident| (incident.group.as_str(), incident.as_ref()))
            .collect();
        self.rules
            .rules
            .iter()
            .map(|rule| {
                let from = DetectorKey {
                    rule: rule.config.name.clone(),
                    subject: BTreeMap::new(),
                };
                let subjects: Vec<SubjectStatus> = self
                    .detectors
                    .range(from..)
                    .take_while(|(key, _)| key.rule == rule.config.name)
                    .map(|(key, detector)| {
                        let incident = by_group
                            .get(rule.group(&key.subject).as_str())
                            .filter(|incident| incident.firing_rules.contains(&rule.config.name))
                            .map(|incident| incident.id.to_string());
                        let suppressed = (detector.firing && incident.is_none())
                            .then(|| {
                                suppression(
                                    self.active().map(AsRef::as_ref),
                                    &rule.labels(&key.subject),
                                    Suppressions {
                                        maintenance: rule.in_maintenance(now),
                                        maintenances: &self.maintenances,
                                        services: &SignalServices {
                                            page: &self.status_page,
                                            label: "service",
                                        },
                                        silences: &self.silences,
                                        depends_on: &rule.config.depends_on,
                                    },
                                    now,
                                )
                            })
                            .flatten()
                            .map(|why| why.as_str());
                        SubjectStatus {
                            labels: key.subject.clone(),
                            firing: detector.firing,
                            flapping: detector.flapping,
                            symptomatic_streak: detector.symptomatic_streak,
                            clean_streak: detector.clean_streak,
                            symptom_since: detector.symptom_since.map(timestamp),
                            suppressed,
                            incident,
                        }
                    })
                    .collect();
                RuleStatus {
                    name: rule.config.name.clone(),
                    probe: rule.config.probe.clone(),
                    when: rule.when().source().to_owned(),
                    after: rule.thresholds.after,
                    recover_after: rule.thresholds.recover_after,
                    for_: rule.thresholds.for_.map(format_duration),
                    depends_on: rule.config.depends_on.clone(),
                    firing: subjects.iter().any(|s| s.firing),
                    subjects,
                }
            })
            .collect()
    }
}
