//! Correlation: what a [`Signal`] does to the incidents that are not closed.
//!
//! - **Dedup**: one active incident per group; a symptom it already carries changes nothing.
//! - **Raise**: another symptom of the group joins the active incident, raising its priority
//!   when worse (an early symptom, then the outage).
//! - **Suppress**: no incident opens while the symptom is in a maintenance window, silenced,
//!   or its parent (`depends_on`) fires on an active incident. Suppression never hides an
//!   incident that is already open.
//! - **Reopen, not duplicate**: a symptom that returns to a group whose latest incident is
//!   resolved (not closed) reopens it.
//! - **Verified recovery**: a recovered symptom leaves the incident; the last one resolves it
//!   (`auto_resolve`) or verifies a resolution a person made while it still fired.
//!
//! Pure: the [`Correlator`] is the in-memory set of incidents that are not closed with their
//! group indexes; it mutates incidents through their state machine and returns what changed
//! as values ([`Outcome`]). It never sees the store, the batch or the metrics; the engine
//! persists what it returns.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::incident::{Effect, Incident, IncidentId, State};
use super::maintenance::{Maintenance, ServiceLabel, ServiceResolver, in_maintenance};
use super::signal::Signal;
use super::suppression::Silence;

/// Why a firing symptom opened no incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    Maintenance,
    Silenced,
    DependsOn,
}

impl Suppressed {
    pub fn as_str(self) -> &'static str {
        match self {
            Suppressed::Maintenance => "maintenance",
            Suppressed::Silenced => "silenced",
            Suppressed::DependsOn => "depends_on",
        }
    }
}

/// What may keep a firing symptom from opening an incident, besides the incidents.
#[derive(Debug, Clone, Copy)]
pub struct Suppressions<'a> {
    /// The symptom's source is in a maintenance window now.
    pub maintenance: bool,
    /// Maintenances scheduled through the API: one that is active suppresses the symptoms
    /// of its services.
    pub maintenances: &'a BTreeMap<u64, Maintenance>,
    /// Which services a symptom belongs to, from its labels.
    pub services: &'a dyn ServiceResolver,
    pub silences: &'a BTreeMap<u64, Silence>,
    /// Symptom keys (rule names) whose firing on an active incident suppresses this one.
    pub depends_on: &'a [String],
}

static NO_MAINTENANCES: BTreeMap<u64, Maintenance> = BTreeMap::new();
static NO_SILENCES: BTreeMap<u64, Silence> = BTreeMap::new();

impl Suppressions<'static> {
    /// Nothing holds the symptom back (a person's report).
    pub fn none() -> Suppressions<'static> {
        Suppressions {
            maintenance: false,
            maintenances: &NO_MAINTENANCES,
            services: &ServiceLabel::DEFAULT,
            silences: &NO_SILENCES,
            depends_on: &[],
        }
    }
}

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Opened,
    /// A new symptom joined the active incident.
    Raised,
    Reopened,
    /// A symptom recovered (the incident may have resolved or been verified).
    Recovered,
}

/// An incident changed: the engine stores it with its effects.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: IncidentId,
    pub kind: ChangeKind,
    pub effects: Vec<Effect>,
}

/// The correlator's answer to one signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The group's incident already carries this symptom.
    Duplicate(IncidentId),
    Suppressed(Suppressed),
    Changed(Change),
    /// A recovery no incident waited for (never opened, or closed meanwhile).
    Nothing,
}

/// Every incident that is not closed, with the group indexes correlation needs.
#[derive(Debug, Default)]
pub struct Correlator {
    incidents: HashMap<u64, Incident>,
    /// Group → the active incident about it.
    active_by_group: HashMap<String, IncidentId>,
    /// Group → its latest incident that is resolved but not closed.
    resolved_by_group: HashMap<String, IncidentId>,
}

impl Correlator {
    /// Builds the set from the incidents that are not closed (closed ones are ignored).
    pub fn new(incidents: impl IntoIterator<Item = Incident>) -> Correlator {
        let mut correlator = Correlator::default();
        for incident in incidents.into_iter().filter(|i| i.state != State::Closed) {
            correlator.insert(incident);
        }
        correlator
    }

    pub fn get(&self, id: IncidentId) -> Option<&Incident> {
        self.incidents.get(&id.0)
    }

    /// For workflow transitions; call [`Correlator::reindex`] after changing the state.
    pub fn get_mut(&mut self, id: IncidentId) -> Option<&mut Incident> {
        self.incidents.get_mut(&id.0)
    }

    pub fn contains(&self, id: IncidentId) -> bool {
        self.incidents.contains_key(&id.0)
    }

    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// The active incident of a group.
    pub fn active_in(&self, group: &str) -> Option<&Incident> {
        self.active_by_group
            .get(group)
            .and_then(|id| self.incidents.get(&id.0))
    }

    /// The incident a signal of the group would meet: the active one, or else the latest
    /// resolved one.
    pub fn of_group(&self, group: &str) -> Option<&Incident> {
        self.active_by_group
            .get(group)
            .or_else(|| self.resolved_by_group.get(group))
            .and_then(|id| self.incidents.get(&id.0))
    }

    /// Adds an incident (a new ticket, or a closed one loaded to be reopened) and indexes
    /// it. A closed one stays (unindexed) until the next [`Correlator::reindex`] drops it.
    pub fn insert(&mut self, incident: Incident) {
        let id = incident.id;
        let closed = incident.state == State::Closed;
        self.incidents.insert(id.0, incident);
        if !closed {
            self.reindex(id);
        }
    }

    /// Keeps the group indexes in step with the incident's state after a change, and drops
    /// a closed incident (it lives in the store only).
    pub fn reindex(&mut self, id: IncidentId) {
        let Some(incident) = self.incidents.get(&id.0) else {
            return;
        };
        let group = incident.group.clone();
        let drop_if_is = |map: &mut HashMap<String, IncidentId>| {
            if map.get(&group) == Some(&id) {
                map.remove(&group);
            }
        };
        match incident.state {
            State::Open | State::Acknowledged | State::OnHold => {
                drop_if_is(&mut self.resolved_by_group);
                // A reopened incident takes its group back unless another one is active.
                self.active_by_group.entry(group).or_insert(id);
            }
            State::Resolved => {
                drop_if_is(&mut self.active_by_group);
                let latest = self.resolved_by_group.entry(group).or_insert(id);
                *latest = (*latest).max(id);
            }
            State::Closed => {
                drop_if_is(&mut self.active_by_group);
                drop_if_is(&mut self.resolved_by_group);
                self.incidents.remove(&id.0);
            }
        }
    }

    /// Why a firing symptom with these labels must not open an incident now, if it must not.
    pub fn suppression(
        &self,
        labels: &BTreeMap<String, String>,
        suppressions: Suppressions<'_>,
        now: DateTime<Utc>,
    ) -> Option<Suppressed> {
        suppression(self.active_incidents(), labels, suppressions, now)
    }

    fn active_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.active_by_group
            .values()
            .filter_map(|id| self.incidents.get(&id.0))
    }

    /// A symptom fires for `group` under `key`. `signal` builds the full signal; it is
    /// called only when the symptom is not a duplicate (the common case of a steady outage
    /// costs a map look-up). `next_id` hands out the id of a new incident.
    pub fn fire(
        &mut self,
        group: &str,
        key: &str,
        signal: impl FnOnce() -> Signal,
        suppressions: Suppressions<'_>,
        next_id: impl FnOnce() -> IncidentId,
        now: DateTime<Utc>,
    ) -> Outcome {
        if let Some(&id) = self.active_by_group.get(group) {
            let incident = self
                .incidents
                .get_mut(&id.0)
                .expect("indexed incidents exist");
            if incident.firing_rules.contains(key) {
                return Outcome::Duplicate(id);
            }
            let effects = incident.raise(&signal(), now);
            return Outcome::Changed(Change {
                id,
                kind: ChangeKind::Raised,
                effects,
            });
        }
        let signal = signal();
        if let Some(why) = self.suppression(&signal.labels, suppressions, now) {
            return Outcome::Suppressed(why);
        }
        if let Some(&id) = self.resolved_by_group.get(group) {
            let incident = self
                .incidents
                .get_mut(&id.0)
                .expect("indexed incidents exist");
            if incident.firing_rules.contains(key) {
                // Still the symptom its resolution waits on (verification pending).
                return Outcome::Duplicate(id);
            }
            if let Some(effects) = incident.symptom_returned(&signal, now) {
                self.reindex(id);
                return Outcome::Changed(Change {
                    id,
                    kind: ChangeKind::Reopened,
                    effects,
                });
            }
        }
        let id = next_id();
        let (incident, effects) = Incident::open(id, &signal, now);
        self.insert(incident);
        Outcome::Changed(Change {
            id,
            kind: ChangeKind::Opened,
            effects,
        })
    }

    /// A symptom recovered for `group`: it leaves the group's incident (active, or resolved
    /// and waiting for verification); the last one to leave resolves or verifies it.
    pub fn recover(
        &mut self,
        group: &str,
        key: &str,
        summary: &str,
        auto_resolve: bool,
        now: DateTime<Utc>,
    ) -> Outcome {
        let Some(&id) = self
            .active_by_group
            .get(group)
            .or_else(|| self.resolved_by_group.get(group))
        else {
            return Outcome::Nothing; // closed already, or never opened (suppressed)
        };
        let incident = self
            .incidents
            .get_mut(&id.0)
            .expect("indexed incidents exist");
        if !incident.firing_rules.contains(key) {
            return Outcome::Nothing;
        }
        let effects = incident.rule_recovered(key, summary, auto_resolve, now);
        self.reindex(id);
        // Empty effects still change the incident: it carries one firing symptom less.
        Outcome::Changed(Change {
            id,
            kind: ChangeKind::Recovered,
            effects,
        })
    }
}

/// Why a firing symptom must not open an incident, judged against `active` incidents:
/// maintenance first (a rule's window, then a scheduled maintenance of its service), then
/// silences, then a parent symptom firing on an active incident.
pub fn suppression<'a>(
    mut active: impl Iterator<Item = &'a Incident>,
    labels: &BTreeMap<String, String>,
    suppressions: Suppressions<'_>,
    now: DateTime<Utc>,
) -> Option<Suppressed> {
    if suppressions.maintenance
        || in_maintenance(
            suppressions.maintenances.values(),
            labels,
            suppressions.services,
            now,
        )
    {
        return Some(Suppressed::Maintenance);
    }
    if suppressions
        .silences
        .values()
        .any(|s| s.matches(labels, now))
    {
        return Some(Suppressed::Silenced);
    }
    let parent_fires = !suppressions.depends_on.is_empty()
        && active.any(|incident| {
            suppressions
                .depends_on
                .iter()
                .any(|parent| incident.firing_rules.contains(parent))
        });
    parent_fires.then_some(Suppressed::DependsOn)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::time::Duration;

    use super::*;
    use crate::domain::incident::{Kind, Reporter, SYSTEM, Ticket, Tier};
    use crate::domain::observation::Observation;
    use crate::domain::priority::{Level, Priority};
    use crate::domain::signal::{RuleSignal, Status};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
    }

    /// `P1`…`P5` as impact × urgency by the default matrix.
    fn levels(priority: &str) -> (Level, Level) {
        match priority {
            "P1" => (Level::High, Level::High),
            "P2" => (Level::High, Level::Medium),
            "P3" => (Level::Medium, Level::Medium),
            "P4" => (Level::Medium, Level::Low),
            _ => (Level::Low, Level::Low),
        }
    }

    fn signal(group: &str, rule: &str, priority: &str, at: DateTime<Utc>) -> Signal {
        let (impact, urgency) = levels(priority);
        let priority = Priority::from_matrix(impact, urgency);
        let labels = BTreeMap::from([("service".to_owned(), group.to_owned())]);
        let observation = Observation {
            connected: true,
            status: Some(503),
            response_time: Duration::from_millis(12),
            ..Observation::new(at)
        };
        Signal::from_rule(
            &RuleSignal {
                group,
                rule,
                probe: "probe",
                condition: "[STATUS] != 200",
                title_template: None,
                category: "availability",
                impact,
                urgency,
                priority,
                start_tier: if priority == Priority::P1 {
                    Tier::L3
                } else {
                    Tier::L1
                },
                probe_labels: &labels,
                subject: &BTreeMap::new(),
                observation: &observation,
            },
            Status::Firing,
            None,
        )
    }

    /// Runs a script of signals and workflow steps, one per line, and returns what each
    /// did, one line each:
    ///
    /// - `fire GROUP RULE PRIORITY [maintenance] [depends_on=RULE]`
    /// - `ticket SERVICE PRIORITY` (a person's report; its group is `ticket/ID`)
    /// - `recover GROUP RULE [manual]` (manual: no auto-resolve)
    /// - `resolve ID` / `close ID` (a person)
    /// - `silence LABEL=VALUE` (active from then on)
    /// - `maintain SERVICE FROM UNTIL` (a scheduled maintenance of SERVICE, from step FROM
    ///   to step UNTIL, end exclusive)
    /// - `alert firing|resolved ALERTNAME [SEVERITY] [group=GROUPKEY]` (an Alertmanager
    ///   alert; with `group=`, grouped by that `groupKey`)
    #[track_caller]
    fn check(script: &str, want: &str) {
        let mut correlator = Correlator::default();
        let mut silences = BTreeMap::new();
        let mut maintenances = BTreeMap::new();
        let mut next = 1;
        let mut got = String::new();
        for (step, line) in script.trim().lines().enumerate() {
            let now = at(step as i64);
            let words: Vec<&str> = line.split_whitespace().collect();
            let outcome = match words.as_slice() {
                ["fire", group, rule, priority, rest @ ..] => {
                    let depends_on: Vec<String> = rest
                        .iter()
                        .filter_map(|w| w.strip_prefix("depends_on="))
                        .map(str::to_owned)
                        .collect();
                    let suppressions = Suppressions {
                        maintenance: rest.contains(&"maintenance"),
                        maintenances: &maintenances,
                        services: &ServiceLabel::DEFAULT,
                        silences: &silences,
                        depends_on: &depends_on,
                    };
                    correlator.fire(
                        group,
                        rule,
                        || signal(group, rule, priority, now),
                        suppressions,
                        || {
                            next += 1;
                            IncidentId(next - 1)
                        },
                        now,
                    )
                }
                ["ticket", service, priority] => {
                    // As the engine files a ticket: its id first (its group is its own),
                    // and nothing holds a person's report back.
                    let id = IncidentId(next);
                    next += 1;
                    let (impact, urgency) = levels(priority);
                    let ticket = Ticket {
                        title: format!("{service} is slow"),
                        description: String::new(),
                        reporter: Reporter {
                            name: "Dana".to_owned(),
                            contact: "dana@example.com".to_owned(),
                        },
                        kind: Kind::Incident,
                        category: "availability".to_owned(),
                        impact,
                        urgency,
                        service: Some((*service).to_owned()),
                        labels: BTreeMap::from([("service".to_owned(), (*service).to_owned())]),
                    };
                    let priority = Priority::from_matrix(impact, urgency);
                    let signal = Signal::from_ticket(id, ticket, priority, Tier::L1, "desk");
                    let (group, key) = (signal.group.clone(), signal.key.clone());
                    correlator.fire(&group, &key, || signal, Suppressions::none(), || id, now)
                }
                ["alert", status, name, rest @ ..] => {
                    use crate::domain::alert::{
                        Alert, AlertMapping, AlertSource, AlertStatus, DEFAULT_DESCRIPTION,
                        DEFAULT_TITLE, GroupBy, Templates,
                    };
                    let group_key = rest.iter().find_map(|w| w.strip_prefix("group="));
                    let mapping = AlertMapping {
                        group_by: if group_key.is_some() {
                            GroupBy::GroupKey
                        } else {
                            GroupBy::Fingerprint
                        },
                        ..AlertMapping::default()
                    };
                    let severity = rest.iter().find(|w| !w.contains('=')).unwrap_or(&"warning");
                    let alert = Alert {
                        source: AlertSource::Alertmanager,
                        status: if *status == "firing" {
                            AlertStatus::Firing
                        } else {
                            AlertStatus::Resolved
                        },
                        labels: BTreeMap::from([
                            ("alertname".to_owned(), (*name).to_owned()),
                            ("severity".to_owned(), (*severity).to_owned()),
                        ]),
                        annotations: BTreeMap::new(),
                        starts_at: None,
                        ends_at: None,
                        generator_url: None,
                        group_key: group_key.map(str::to_owned),
                        dedup_key: None,
                    };
                    let level = mapping.severity_of(&alert);
                    let priority = Priority::from_matrix(level.impact, level.urgency);
                    let templates = Templates::compile(DEFAULT_TITLE, DEFAULT_DESCRIPTION).unwrap();
                    let signal =
                        Signal::from_alert(&alert, &mapping, &templates, priority, Tier::L1);
                    let (group, key) = (signal.group.clone(), signal.key.clone());
                    if alert.status == AlertStatus::Firing {
                        correlator.fire(
                            &group,
                            &key,
                            || signal,
                            Suppressions {
                                silences: &silences,
                                maintenances: &maintenances,
                                ..Suppressions::none()
                            },
                            || {
                                next += 1;
                                IncidentId(next - 1)
                            },
                            now,
                        )
                    } else {
                        // An alert's resolution is verified recovery: always auto-resolve.
                        correlator.recover(&group, &key, &signal.summary, true, now)
                    }
                }
                ["recover", group, rule, rest @ ..] => correlator.recover(
                    group,
                    rule,
                    "status 200 in 1ms",
                    !rest.contains(&"manual"),
                    now,
                ),
                ["resolve", id] | ["close", id] => {
                    let id = IncidentId(id.parse().unwrap());
                    let incident = correlator.get_mut(id).unwrap();
                    let result = if words[0] == "resolve" {
                        incident.resolve(SYSTEM, Some("fixed".to_owned()), now)
                    } else {
                        incident.close(SYSTEM, now)
                    };
                    correlator.reindex(id);
                    writeln!(
                        got,
                        "{}",
                        result.map_or_else(|e| e.to_string(), |_| "ok".into())
                    )
                    .unwrap();
                    continue;
                }
                ["silence", matcher] => {
                    let id = silences.len() as u64 + 1;
                    silences.insert(
                        id,
                        Silence {
                            id,
                            matchers: vec![
                                crate::domain::suppression::Matcher::parse(matcher).unwrap(),
                            ],
                            starts_at: now,
                            ends_at: at(3600),
                            created_by: "alice".to_owned(),
                            comment: String::new(),
                        },
                    );
                    continue;
                }
                ["maintain", service, from, until] => {
                    let id = maintenances.len() as u64 + 1;
                    maintenances.insert(
                        id,
                        Maintenance {
                            id,
                            title: "upgrade".to_owned(),
                            message: String::new(),
                            services: vec![(*service).to_owned()],
                            starts_at: at(from.parse().unwrap()),
                            ends_at: at(until.parse().unwrap()),
                            created_by: "alice".to_owned(),
                            created_at: now,
                            cancelled_at: None,
                        },
                    );
                    continue;
                }
                _ => panic!("bad script line {line:?}"),
            };
            let line = match outcome {
                Outcome::Duplicate(id) => format!("duplicate {id}"),
                Outcome::Suppressed(why) => format!("suppressed {}", why.as_str()),
                Outcome::Nothing => "nothing".to_owned(),
                Outcome::Changed(change) => {
                    let incident = correlator
                        .get(change.id)
                        .map(|i| {
                            let verification = i
                                .verification
                                .map(|v| format!(" {}", v.as_str()))
                                .unwrap_or_default();
                            format!(" {} {}{verification}", i.state, i.priority)
                        })
                        .unwrap_or_default();
                    let events: Vec<&str> = change
                        .effects
                        .iter()
                        .filter_map(|e| match e {
                            Effect::Event(kind) => kind.strip_prefix("incident."),
                            _ => None,
                        })
                        .collect();
                    let kind = match change.kind {
                        ChangeKind::Opened => "opened",
                        ChangeKind::Raised => "raised",
                        ChangeKind::Reopened => "reopened",
                        ChangeKind::Recovered => "recovered",
                    };
                    format!("{kind} {}{incident} [{}]", change.id, events.join(" "))
                }
            };
            writeln!(got, "{line}").unwrap();
        }
        let want: String = want
            .trim()
            .lines()
            .map(|l| format!("{}\n", l.trim()))
            .collect();
        assert_eq!(got, want, "script:\n{script}");
    }

    #[test]
    fn a_ticket_is_never_deduplicated_nor_joined_by_a_symptom() {
        check(
            "fire web down P3
             ticket web P2
             ticket web P2
             silence service=web
             ticket web P3
             fire web slow P3
             recover ticket/2 ticket
             recover web down",
            "opened INC-1 open P3 [opened]
             opened INC-2 open P2 [opened]
             opened INC-3 open P2 [opened]
             opened INC-4 open P3 [opened]
             raised INC-1 open P3 []
             nothing
             recovered INC-1 open P3 []",
        );
    }

    #[test]
    fn a_steady_symptom_opens_one_incident() {
        check(
            "fire web down P3
             fire web down P3
             fire web down P3",
            "opened INC-1 open P3 [opened]
             duplicate INC-1
             duplicate INC-1",
        );
    }

    #[test]
    fn an_alert_opens_dedups_resolves_verified_and_reopens() {
        check(
            "alert firing Down critical
             alert firing Down critical
             alert firing Slow
             alert resolved Down critical
             alert resolved Down critical
             alert firing Down critical",
            "opened INC-1 open P1 [opened]
             duplicate INC-1
             opened INC-2 open P3 [opened]
             recovered INC-1 resolved P1 verified [resolved]
             nothing
             reopened INC-1 acknowledged P1 [reopened]",
        );
    }

    #[test]
    fn a_resolved_alert_that_never_fired_does_nothing() {
        // Alertmanager sends resolved alerts that fired before incidentd was wired (or
        // while silenced here): there is nothing to resolve, and nothing is opened.
        check(
            "alert resolved Down
             silence alertname=Slow
             alert firing Slow
             alert resolved Slow",
            "nothing
             suppressed silenced
             nothing",
        );
    }

    #[test]
    fn resolved_alerts_mixed_in_a_group_resolve_it_when_the_last_one_does() {
        check(
            "alert firing A warning group=g
             alert firing B critical group=g
             alert resolved A warning group=g
             alert resolved A warning group=g
             alert firing C warning group=other
             alert resolved B critical group=g",
            "opened INC-1 open P3 [opened]
             raised INC-1 open P1 [priority_changed]
             recovered INC-1 open P1 []
             nothing
             opened INC-2 open P3 [opened]
             recovered INC-1 resolved P1 verified [resolved]",
        );
    }

    #[test]
    fn groups_are_apart() {
        check(
            "fire web down P3
             fire db down P3
             recover web down
             fire db down P3",
            "opened INC-1 open P3 [opened]
             opened INC-2 open P3 [opened]
             recovered INC-1 resolved P3 verified [resolved]
             duplicate INC-2",
        );
    }

    #[test]
    fn a_worse_symptom_raises_the_active_incident() {
        check(
            "fire web slow P4
             fire web down P1
             fire web slow P4
             recover web down
             recover web slow",
            "opened INC-1 open P4 [opened]
             raised INC-1 open P1 [priority_changed escalated]
             duplicate INC-1
             recovered INC-1 open P1 []
             recovered INC-1 resolved P1 verified [resolved]",
        );
    }

    #[test]
    fn a_milder_symptom_joins_without_a_raise() {
        check(
            "fire web down P2
             fire web slow P4",
            "opened INC-1 open P2 [opened]
             raised INC-1 open P2 []",
        );
    }

    #[test]
    fn a_returning_symptom_reopens_instead_of_duplicating() {
        check(
            "fire web down P3
             recover web down
             fire web down P3
             recover web down
             close 1
             fire web down P3",
            "opened INC-1 open P3 [opened]
             recovered INC-1 resolved P3 verified [resolved]
             reopened INC-1 acknowledged P3 [reopened]
             recovered INC-1 resolved P3 verified [resolved]
             ok
             opened INC-2 open P3 [opened]",
        );
    }

    #[test]
    fn a_worse_symptom_reopens_at_its_priority() {
        check(
            "fire web slow P4
             recover web slow
             fire web down P1",
            "opened INC-1 open P4 [opened]
             recovered INC-1 resolved P4 verified [resolved]
             reopened INC-1 acknowledged P1 [reopened priority_changed escalated]",
        );
    }

    #[test]
    fn a_manual_resolution_waits_for_the_probe() {
        check(
            "fire web down P3
             resolve 1
             fire web down P3
             close 1
             recover web down
             close 1",
            "opened INC-1 open P3 [opened]
             ok
             duplicate INC-1
             incident INC-1 is resolved; verification is pending: its rule still fires; it closes once the probe confirms the recovery
             recovered INC-1 resolved P3 verified []
             ok",
        );
    }

    #[test]
    fn without_auto_resolve_a_recovery_is_only_noted() {
        check(
            "fire web down P3
             recover web down manual
             fire web down P3",
            "opened INC-1 open P3 [opened]
             recovered INC-1 open P3 []
             raised INC-1 open P3 []",
        );
    }

    #[test]
    fn recoveries_nobody_waits_for_do_nothing() {
        check(
            "recover web down
             fire web down P3
             recover web other",
            "nothing
             opened INC-1 open P3 [opened]
             nothing",
        );
    }

    #[test]
    fn suppression_keeps_new_incidents_from_opening_only() {
        check(
            "fire web down P3 maintenance
             silence service=web
             fire web down P3
             fire db down P3
             fire web slow P4",
            "suppressed maintenance
             suppressed silenced
             opened INC-1 open P3 [opened]
             suppressed silenced",
        );
        // An open incident keeps taking symptoms, silenced or not.
        check(
            "fire web down P3
             silence service=web
             fire web slow P4 maintenance",
            "opened INC-1 open P3 [opened]
             raised INC-1 open P3 []",
        );
    }

    #[test]
    fn a_scheduled_maintenance_suppresses_its_services_while_active() {
        // Steps are seconds: the maintenance of `web` runs from step 1 to step 5.
        check(
            "maintain web 1 5
             fire web down P3
             fire db down P3
             fire web slow P4
             fire web down P3
             fire web down P3
             fire web slow P4",
            "suppressed maintenance
             opened INC-1 open P3 [opened]
             suppressed maintenance
             suppressed maintenance
             opened INC-2 open P3 [opened]
             raised INC-2 open P3 []",
        );
        // Ahead of its start nothing is held back, and an open incident keeps its symptoms.
        check(
            "maintain web 2 9
             fire web down P3
             fire web slow P4",
            "opened INC-1 open P3 [opened]
             raised INC-1 open P3 []",
        );
    }

    #[test]
    fn a_child_waits_while_its_parent_fires() {
        check(
            "fire db down P2
             fire web down P3 depends_on=down
             fire web slow P3 depends_on=other
             recover db down
             fire api down P3 depends_on=down",
            "opened INC-1 open P2 [opened]
             suppressed depends_on
             opened INC-2 open P3 [opened]
             recovered INC-1 resolved P2 verified [resolved]
             opened INC-3 open P3 [opened]",
        );
    }

    #[test]
    fn a_suppressed_symptom_does_not_reopen() {
        check(
            "fire web down P3
             recover web down
             silence service=web
             fire web down P3",
            "opened INC-1 open P3 [opened]
             recovered INC-1 resolved P3 verified [resolved]
             suppressed silenced",
        );
    }

    #[test]
    fn the_index_follows_the_workflow() {
        let mut correlator = Correlator::default();
        let none = Suppressions::none();
        let fired = correlator.fire(
            "web",
            "down",
            || signal("web", "down", "P3", at(0)),
            none,
            || IncidentId(1),
            at(0),
        );
        assert!(matches!(
            fired,
            Outcome::Changed(Change {
                kind: ChangeKind::Opened,
                ..
            })
        ));
        assert_eq!(
            correlator.active_in("web").map(|i| i.id),
            Some(IncidentId(1))
        );
        let incident = correlator.get_mut(IncidentId(1)).unwrap();
        incident
            .resolve(SYSTEM, Some("fixed".to_owned()), at(1))
            .unwrap();
        correlator.reindex(IncidentId(1));
        assert!(correlator.active_in("web").is_none());
        assert!(
            correlator.contains(IncidentId(1)),
            "resolved stays until closed"
        );
        correlator.recover("web", "down", "ok", true, at(2));
        correlator
            .get_mut(IncidentId(1))
            .unwrap()
            .close(SYSTEM, at(3))
            .unwrap();
        correlator.reindex(IncidentId(1));
        assert!(correlator.is_empty(), "closed incidents leave memory");
    }
}
