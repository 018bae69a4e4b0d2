//! The incident model and its state machine. Transitions are methods that take `now` and
//! the actor, change the incident, and return the [`Effect`]s the engine must persist
//! (timeline entries, events); an impossible transition is an error naming the state.
//!
//! The plain values an incident is made of (its id, state, tier, evidence, …) are in
//! [`model`], which every other part of the domain may use; they are re-exported here.

pub mod model;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::priority::{Level, Priority};
use super::signal::Signal;
use super::sla::clock::{SlaClocks, SlaSignal};

pub use model::{
    Call, DATA_BREACH, Evidence, IncidentId, Kind, MAX_CALLS, REPORTER_COMMENT, Reporter, SYSTEM,
    Source, State, Ticket, Tier, TimelineEntry, Verification, describe,
};

/// What a transition asks the engine to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Timeline(TimelineEntry),
    /// Emit this event type (`incident.opened`, …) with the incident as it is now.
    Event(&'static str),
    /// Emit an SLA event (`incident.sla_warning` / `incident.sla_breached`) for the named
    /// clock (`breach_notification`): the webhook body says which clock in `sla`.
    SlaEvent {
        event: &'static str,
        sla: &'static str,
    },
    /// An SLA clock warned, breached or stopped: counted in the `incidentd_sla_*` metrics.
    Sla(SlaSignal),
    /// The tier moved: counted in `incidentd_escalations_total{from,to,reason}`.
    Escalated {
        from: Tier,
        to: Tier,
        /// `manual`, `unacknowledged`, `unresolved` or `priority`.
        reason: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("incident {id} is {state}; cannot {action} it")]
    InvalidState {
        id: IncidentId,
        state: State,
        action: &'static str,
    },
    /// The state allows the action in general, but not this time.
    #[error("incident {id} is {state}; {reason}")]
    Conflict {
        id: IncidentId,
        state: State,
        reason: String,
    },
    /// Only an admin may do this (move a tier down or sideways).
    #[error("{0}")]
    NotPermitted(String),
    /// The request itself is wrong (an empty reason).
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: IncidentId,
    pub kind: Kind,
    pub title: String,
    pub description: String,
    pub state: State,
    pub tier: Tier,
    pub priority: Priority,
    pub impact: Level,
    pub urgency: Level,
    pub category: String,
    pub service: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub source: Source,
    pub fingerprint: String,
    /// For tickets: who reported it.
    pub reporter: Option<Reporter>,
    /// For resolved rule incidents: whether the probe confirmed recovery.
    pub verification: Option<Verification>,
    /// What rule symptoms of one service share: an early symptom and the outage that
    /// follows it are one incident, raised in priority, not two.
    pub group: String,
    /// Rules whose symptom is present now; a rule incident auto-resolves when the last one
    /// recovers.
    pub firing_rules: BTreeSet<String>,
    /// Alert incidents: firing alert (key) → when it resolves unless refreshed (`endsAt`).
    /// A durable timer fires at the earliest (`TimerKind::AlertExpiry`).
    pub alert_expiry: BTreeMap<String, DateTime<Utc>>,
    pub evidence: Vec<Evidence>,
    pub resolution: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Who acknowledged it (the console's "mine" view); `None` before, and in records
    /// written before this field existed.
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// When the symptom was first seen, if before opening (a rule's first symptomatic
    /// result): clocks may start then (`sla.start: detected`).
    pub detected_at: Option<DateTime<Utc>>,
    /// The SLA clocks; see [`super::sla`].
    pub sla: SlaClocks,
    /// A person's ticket shows on the public status page only once a responder publishes
    /// it (rule and alert incidents of a listed service show without this).
    pub published: bool,
    /// Calls scheduled from L2 or L3 (with the reporter, for tickets), oldest first; at
    /// most [`MAX_CALLS`].
    pub calls: Vec<Call>,
}

impl Incident {
    /// Opens an incident for a signal that just fired.
    pub fn open(id: IncidentId, signal: &Signal, now: DateTime<Utc>) -> (Incident, Vec<Effect>) {
        let incident = Incident {
            id,
            kind: signal.kind,
            title: signal.title.clone(),
            description: signal.description.clone(),
            state: State::Open,
            tier: signal.start_tier,
            priority: signal.priority,
            impact: signal.impact,
            urgency: signal.urgency,
            category: signal.category.clone(),
            service: signal.service.clone(),
            fingerprint: signal.fingerprint.clone(),
            group: signal.group.clone(),
            // A ticket has no symptom that could recover on its own.
            firing_rules: match signal.source {
                Source::Ticket => BTreeSet::new(),
                Source::Rule { .. } | Source::Alert { .. } => BTreeSet::from([signal.key.clone()]),
            },
            alert_expiry: BTreeMap::new(),
            labels: signal.labels.clone(),
            source: signal.source.clone(),
            reporter: signal.reporter.clone(),
            verification: None,
            evidence: vec![signal.evidence.clone()],
            resolution: None,
            opened_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            closed_at: None,
            detected_at: signal.detected_at.filter(|since| *since < now),
            sla: SlaClocks::default(),
            published: false,
            calls: Vec::new(),
        };
        let message = match &incident.reporter {
            Some(reporter) => format!(
                "opened as {} {} at {} ({}) from a ticket by {} <{}>",
                incident.kind.as_str(),
                incident.priority,
                incident.tier.as_str(),
                incident.category,
                reporter.name,
                reporter.contact
            ),
            None => format!(
                "opened as {} at {} by {}: {}",
                incident.priority,
                incident.tier.as_str(),
                signal.origin(),
                signal.summary
            ),
        };
        let effects = vec![
            timeline(now, &signal.raised_by, "opened", message),
            Effect::Event("incident.opened"),
        ];
        (incident, effects)
    }

    /// Another rule fired for the same group while this incident is active: keep its
    /// evidence, and raise the priority when the new symptom is worse (an early symptom
    /// followed by the outage). A raise to P1 moves the incident to L3.
    pub fn raise(&mut self, signal: &Signal, now: DateTime<Utc>) -> Vec<Effect> {
        self.firing_rules.insert(signal.key.clone());
        self.evidence.push(signal.evidence.clone());
        if signal.priority < self.priority {
            return self.raise_priority(signal, now);
        }
        vec![timeline(
            now,
            SYSTEM,
            "symptom",
            format!("{} fired too: {}", signal.origin(), signal.summary),
        )]
    }

    /// The signal's priority is higher: take it (and its title), and move up to its start
    /// tier if that is higher.
    fn raise_priority(&mut self, signal: &Signal, now: DateTime<Utc>) -> Vec<Effect> {
        let priority = signal.priority;
        let mut effects = Vec::new();
        let old = self.priority;
        self.priority = priority;
        self.impact = signal.impact;
        self.urgency = signal.urgency;
        let title = signal.title.clone();
        effects.push(timeline(
            now,
            SYSTEM,
            "priority_changed",
            format!(
                "priority {old} → {priority}: {} fired ({}); title \"{}\" → \"{title}\"",
                signal.origin(),
                signal.summary,
                self.title
            ),
        ));
        self.title = title;
        effects.push(Effect::Event("incident.priority_changed"));
        let tier = signal.start_tier;
        if tier > self.tier {
            effects.push(timeline(
                now,
                SYSTEM,
                "escalated",
                format!(
                    "tier {} → {} (reason: priority)",
                    self.tier.as_str(),
                    tier.as_str()
                ),
            ));
            effects.push(Effect::Escalated {
                from: self.tier,
                to: tier,
                reason: "priority",
            });
            self.tier = tier;
            effects.push(Effect::Event("incident.escalated"));
        }
        effects
    }

    /// An alert carried by this incident was received again (or first): it now resolves at
    /// `ends_at` unless refreshed (never, without one), and its evidence is the latest
    /// push's (annotations are overwritten). True when that changed anything.
    pub fn alert_seen(
        &mut self,
        key: &str,
        ends_at: Option<DateTime<Utc>>,
        evidence: &Evidence,
    ) -> bool {
        let mut changed = match ends_at {
            Some(at) => self.alert_expiry.insert(key.to_owned(), at) != Some(at),
            None => self.alert_expiry.remove(key).is_some(),
        };
        if let Evidence::Alert(new) = evidence
            && let Some(old) =
                self.evidence.iter_mut().rev().find(
                    |e| matches!(e, Evidence::Alert(old) if old.fingerprint == new.fingerprint),
                )
            && old != evidence
        {
            *old = evidence.clone();
            changed = true;
        }
        changed
    }

    /// A rule of this incident recovered. When it was the last one firing, the incident is
    /// resolved (`auto_resolve`) or, for an incident a person already resolved, nothing
    /// more happens.
    pub fn rule_recovered(
        &mut self,
        rule: &str,
        summary: &str,
        auto_resolve: bool,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        self.firing_rules.remove(rule);
        self.alert_expiry.remove(rule);
        if !self.firing_rules.is_empty() {
            return Vec::new();
        }
        if self.state == State::Resolved && self.verification == Some(Verification::Pending) {
            // The probe confirms what a person said: resolved for real. No second
            // `incident.resolved`: the resolution already was one.
            self.verification = Some(Verification::Verified);
            return vec![timeline(
                now,
                SYSTEM,
                "verified",
                format!(
                    "verification pending → verified: {} recovered ({summary})",
                    self.source.symptom(rule)
                ),
            )];
        }
        if !self.state.is_active() {
            return Vec::new();
        }
        if auto_resolve {
            self.recover(summary, now)
        } else {
            vec![timeline(
                now,
                SYSTEM,
                "recovered",
                format!(
                    "{} recovered ({summary}); resolve it when done",
                    self.source.symptom(rule)
                ),
            )]
        }
    }

    /// First response: a responder takes the incident.
    pub fn acknowledge(
        &mut self,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.state != State::Open {
            return Err(self.refuse("acknowledge"));
        }
        self.state = State::Acknowledged;
        self.acknowledged_at = Some(now);
        self.acknowledged_by = Some(actor.to_owned());
        Ok(vec![
            timeline(
                now,
                actor,
                "acknowledged",
                "state open → acknowledged".to_owned(),
            ),
            Effect::Event("incident.acknowledged"),
        ])
    }

    /// Resolves by hand, with what was done.
    pub fn resolve(
        &mut self,
        actor: &str,
        resolution: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if !self.state.is_active() {
            return Err(self.refuse("resolve"));
        }
        // A rule incident is verified by its probe: while a rule still fires, the
        // resolution waits for the recovery (`rule_recovered`).
        let verification = match self.source {
            _ if !self.source.recovers() => None,
            _ if !self.firing_rules.is_empty() => Some(Verification::Pending),
            _ => Some(Verification::Verified),
        };
        let pending = match verification {
            Some(Verification::Pending) => format!(
                " (verification pending: rule {} still firing)",
                self.firing_rules
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        };
        let message = match &resolution {
            Some(text) => format!("state {} → resolved: {text}{pending}", self.state),
            None => format!("state {} → resolved{pending}", self.state),
        };
        self.state = State::Resolved;
        self.resolved_at = Some(now);
        self.resolution = resolution;
        self.verification = verification;
        Ok(vec![
            timeline(now, actor, "resolved", message),
            Effect::Event("incident.resolved"),
        ])
    }

    /// The rule that opened the incident recovered on its own: auto-resolve. An incident
    /// already resolved by hand is left as it is.
    pub fn recover(&mut self, summary: &str, now: DateTime<Utc>) -> Vec<Effect> {
        if !self.state.is_active() {
            return Vec::new();
        }
        let (what, resolution) = self.source.recovery_words();
        let message = format!("state {} → resolved: {what} ({summary})", self.state);
        self.state = State::Resolved;
        self.resolved_at = Some(now);
        self.resolution = Some(resolution.to_owned());
        self.verification = self.source.recovers().then_some(Verification::Verified);
        vec![
            timeline(now, SYSTEM, "resolved", message),
            Effect::Event("incident.resolved"),
        ]
    }

    /// A note on the timeline: internal, or public (the status page shows it). Any state
    /// but closed.
    pub fn add_note(
        &mut self,
        actor: &str,
        text: &str,
        public: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.state == State::Closed {
            return Err(self.refuse("add a note to"));
        }
        require_text("text", text)?;
        Ok(vec![
            Effect::Timeline(TimelineEntry {
                at: now,
                actor: actor.to_owned(),
                kind: "note_added".to_owned(),
                message: text.to_owned(),
                public,
            }),
            Effect::Event("incident.note_added"),
        ])
    }

    /// Schedules a call (the service desk's L2 duty): only once the incident is at L2 or
    /// L3, in any state but closed, at most [`MAX_CALLS`] of them, not in the past (5
    /// minutes of leeway for clocks that differ). `scheduled_at` becomes `now`.
    pub fn schedule_call(
        &mut self,
        mut call: Call,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.state == State::Closed {
            return Err(self.refuse("schedule a call for"));
        }
        if self.tier == Tier::L1 {
            return Err(TransitionError::Conflict {
                id: self.id,
                state: self.state,
                reason: "it is at L1; calls are scheduled from L2 or L3: escalate it first"
                    .to_owned(),
            });
        }
        if self.calls.len() >= MAX_CALLS {
            return Err(TransitionError::Conflict {
                id: self.id,
                state: self.state,
                reason: format!("it has {MAX_CALLS} calls already, the most it may have"),
            });
        }
        if call.at < now - chrono::TimeDelta::minutes(5) {
            return Err(TransitionError::Invalid(format!(
                "`at` ({}) is in the past",
                call.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )));
        }
        let mut message = format!(
            "call at {} on {}",
            call.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            call.url
        );
        if !call.participants.is_empty() {
            message.push_str(&format!(" with {}", call.participants.join(", ")));
        }
        if let Some(note) = &call.note {
            message.push_str(&format!(": {note}"));
        }
        let actor = call.scheduled_by.clone();
        call.scheduled_at = now;
        self.calls.push(call);
        Ok(vec![
            timeline(now, &actor, "call_scheduled", message),
            Effect::Event("incident.call_scheduled"),
        ])
    }

    /// A comment the reporter wrote through their link: on the timeline as from the
    /// reporter (`reporter: Ana`), never public. Any state but closed.
    pub fn reporter_comment(
        &mut self,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.state == State::Closed {
            return Err(self.refuse("comment on"));
        }
        let Some(reporter) = &self.reporter else {
            return Err(TransitionError::Invalid(format!(
                "incident {} has no reporter",
                self.id
            )));
        };
        require_text("text", text)?;
        Ok(vec![
            timeline(
                now,
                &format!("reporter: {}", reporter.name),
                REPORTER_COMMENT,
                text.to_owned(),
            ),
            Effect::Event("incident.note_added"),
        ])
    }

    /// The reporter's link was replaced by a new one (`rotated`) or revoked: said on the
    /// timeline (never the link itself). Tickets only; any state, closed included (a
    /// stolen link must be revocable whenever it is found).
    pub fn reporter_link_changed(
        &self,
        actor: &str,
        rotated: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.reporter.is_none() {
            return Err(TransitionError::Conflict {
                id: self.id,
                state: self.state,
                reason: "it has no reporter (it is not a ticket), so no reporter link".to_owned(),
            });
        }
        let message = if rotated {
            "reporter link replaced by a new one; the old link no longer works"
        } else {
            "reporter link revoked; it no longer works"
        };
        Ok(vec![timeline(
            now,
            actor,
            "reporter_link",
            message.to_owned(),
        )])
    }

    /// Waiting on someone else: acknowledged → on_hold.
    pub fn hold(
        &mut self,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.state != State::Acknowledged {
            return Err(self.refuse("hold"));
        }
        require_text("reason", reason)?;
        self.state = State::OnHold;
        Ok(vec![
            timeline(
                now,
                actor,
                "on_hold",
                format!("state acknowledged → on_hold: {reason}"),
            ),
            Effect::Event("incident.on_hold"),
        ])
    }

    /// Back to work: on_hold → acknowledged.
    pub fn resume(
        &mut self,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.state != State::OnHold {
            return Err(self.refuse("resume"));
        }
        self.state = State::Acknowledged;
        Ok(vec![
            timeline(
                now,
                actor,
                "resumed",
                "state on_hold → acknowledged".to_owned(),
            ),
            Effect::Event("incident.resumed"),
        ])
    }

    /// Moves the incident to `to`, or to the next tier. Only upward, unless `may_lower`
    /// (an admin): then any tier, down and sideways included.
    pub fn escalate(
        &mut self,
        actor: &str,
        reason: &str,
        to: Option<Tier>,
        may_lower: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if !self.state.is_active() {
            return Err(self.refuse("escalate"));
        }
        require_text("reason", reason)?;
        let from = self.tier;
        let to = match to {
            Some(tier) => tier,
            None => from.next().ok_or_else(|| TransitionError::Conflict {
                id: self.id,
                state: self.state,
                reason: "it is already at L3, the last tier".to_owned(),
            })?,
        };
        if to <= from && !may_lower {
            return Err(TransitionError::NotPermitted(format!(
                "incident {} is at {}; only an admin may move it to {}",
                self.id,
                from.as_str(),
                to.as_str()
            )));
        }
        self.tier = to;
        Ok(vec![
            timeline(
                now,
                actor,
                "escalated",
                format!(
                    "tier {} → {} (reason: {reason})",
                    from.as_str(),
                    to.as_str()
                ),
            ),
            Effect::Escalated {
                from,
                to,
                reason: "manual",
            },
            Effect::Event("incident.escalated"),
        ])
    }

    /// The escalation policy's timer ran out (`reason`: `unacknowledged` or `unresolved`):
    /// one tier up, by `system`. Nothing when the incident is no longer active, the reason
    /// is gone (an unacknowledged timer on an acknowledged incident), or it is at L3.
    pub fn escalate_by_timer(&mut self, reason: &'static str, now: DateTime<Utc>) -> Vec<Effect> {
        let still = match reason {
            "unacknowledged" => self.state == State::Open,
            _ => self.state.is_active(),
        };
        let Some(to) = self.tier.next().filter(|_| still) else {
            return Vec::new();
        };
        let from = std::mem::replace(&mut self.tier, to);
        vec![
            timeline(
                now,
                SYSTEM,
                "escalated",
                format!(
                    "tier {} → {} (reason: {reason})",
                    from.as_str(),
                    to.as_str()
                ),
            ),
            Effect::Escalated { from, to, reason },
            Effect::Event("incident.escalated"),
        ]
    }

    /// Changes fields by hand, each audited on the timeline with the reason. A changed
    /// impact or urgency recomputes the priority by `matrix` unless `priority` is given.
    pub fn update(
        &mut self,
        actor: &str,
        changes: Changes,
        reason: &str,
        matrix: impl Fn(Level, Level) -> Priority,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.state == State::Closed {
            return Err(self.refuse("change"));
        }
        require_text("reason", reason)?;
        if changes
            .title
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(TransitionError::Invalid(
                "`title` must not be empty".to_owned(),
            ));
        }
        let mut effects = Vec::new();
        let mut audit = |field: &str, old: String, new: String| {
            effects.push(timeline(
                now,
                actor,
                "updated",
                format!("{field} {old} → {new} (reason: {reason})"),
            ));
        };
        if let Some(title) = changes.title.filter(|t| *t != self.title) {
            audit("title", format!("{:?}", self.title), format!("{title:?}"));
            self.title = title;
        }
        if let Some(category) = changes.category.filter(|c| *c != self.category) {
            audit("category", self.category.clone(), category.clone());
            self.category = category;
        }
        if let Some(service) = changes.service.filter(|s| Some(s) != self.service.as_ref()) {
            let old = self.service.clone().unwrap_or_else(|| "none".to_owned());
            audit("service", old, service.clone());
            self.service = Some(service);
        }
        if let Some(published) = changes.published.filter(|p| *p != self.published) {
            audit("public", self.published.to_string(), published.to_string());
            self.published = published;
        }
        let mut rated = false;
        if let Some(impact) = changes.impact.filter(|i| *i != self.impact) {
            audit("impact", self.impact.to_string(), impact.to_string());
            self.impact = impact;
            rated = true;
        }
        if let Some(urgency) = changes.urgency.filter(|u| *u != self.urgency) {
            audit("urgency", self.urgency.to_string(), urgency.to_string());
            self.urgency = urgency;
            rated = true;
        }
        let priority = match changes.priority {
            Some(priority) => priority,
            None if rated => matrix(self.impact, self.urgency),
            None => self.priority,
        };
        if priority != self.priority {
            effects.push(timeline(
                now,
                actor,
                "priority_changed",
                format!("priority {} → {priority} (reason: {reason})", self.priority),
            ));
            self.priority = priority;
            effects.push(Effect::Event("incident.priority_changed"));
        }
        Ok(effects)
    }

    /// Closes a resolved incident. One still waiting for its probe to confirm the
    /// recovery cannot close.
    pub fn close(
        &mut self,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if self.state != State::Resolved {
            return Err(self.refuse("close"));
        }
        if self.verification == Some(Verification::Pending) {
            return Err(TransitionError::Conflict {
                id: self.id,
                state: self.state,
                reason: "verification is pending: its rule still fires; it closes once the probe confirms the recovery".to_owned(),
            });
        }
        self.state = State::Closed;
        self.closed_at = Some(now);
        Ok(vec![
            timeline(now, actor, "closed", "state resolved → closed".to_owned()),
            Effect::Event("incident.closed"),
        ])
    }

    /// Rules of this incident were removed from the configuration: they no longer fire
    /// for it, and no probe will confirm their recovery. The incident stays as it is for a
    /// person to resolve (or, if resolved while waiting for verification, to close).
    pub fn rules_removed(&mut self, rules: &[String], now: DateTime<Utc>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for rule in rules {
            if self.firing_rules.remove(rule) {
                effects.push(timeline(
                    now,
                    SYSTEM,
                    "rule_removed",
                    format!("rule `{rule}` was removed from the configuration; it no longer watches this incident"),
                ));
            }
        }
        if !effects.is_empty()
            && self.firing_rules.is_empty()
            && self.verification == Some(Verification::Pending)
        {
            self.verification = None;
            effects.push(timeline(
                now,
                SYSTEM,
                "verification",
                "verification pending → none: no rule is left to confirm the recovery".to_owned(),
            ));
        }
        effects
    }

    /// Reopens a resolved or closed incident by hand: back to acknowledged.
    pub fn reopen(
        &mut self,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, TransitionError> {
        if !matches!(self.state, State::Resolved | State::Closed) {
            return Err(self.refuse("reopen"));
        }
        require_text("reason", reason)?;
        Ok(self.reopened(actor, reason, now))
    }

    /// The symptom came back before closure: the resolved incident is reopened (not
    /// duplicated) with the new evidence. `None` unless the incident is resolved.
    pub fn symptom_returned(&mut self, signal: &Signal, now: DateTime<Utc>) -> Option<Vec<Effect>> {
        if self.state != State::Resolved {
            return None;
        }
        self.firing_rules.insert(signal.key.clone());
        self.evidence.push(signal.evidence.clone());
        let reason = format!("{} fired again ({})", signal.origin(), signal.summary);
        let mut effects = self.reopened(SYSTEM, &reason, now);
        // What came back may be worse than what was resolved (the outage after the
        // early symptom): the reopened incident takes its priority.
        if signal.priority < self.priority {
            effects.extend(self.raise_priority(signal, now));
        }
        Some(effects)
    }

    fn reopened(&mut self, actor: &str, reason: &str, now: DateTime<Utc>) -> Vec<Effect> {
        let from = self.state;
        self.state = State::Acknowledged;
        // Reopened work is someone's: it counts as acknowledged from now if it never was.
        self.acknowledged_at.get_or_insert(now);
        self.resolved_at = None;
        self.closed_at = None;
        self.resolution = None;
        self.verification = None;
        vec![
            timeline(
                now,
                actor,
                "reopened",
                format!("state {from} → acknowledged: {reason}"),
            ),
            Effect::Event("incident.reopened"),
        ]
    }

    fn refuse(&self, action: &'static str) -> TransitionError {
        TransitionError::InvalidState {
            id: self.id,
            state: self.state,
            action,
        }
    }
}

/// The fields `PATCH` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub title: Option<String>,
    pub category: Option<String>,
    pub impact: Option<Level>,
    pub urgency: Option<Level>,
    pub priority: Option<Priority>,
    pub service: Option<String>,
    /// Shown on the public status page (a ticket is private until a responder publishes it).
    pub published: Option<bool>,
}

fn require_text(field: &str, text: &str) -> Result<(), TransitionError> {
    if text.trim().is_empty() {
        return Err(TransitionError::Invalid(format!(
            "`{field}` must not be empty"
        )));
    }
    Ok(())
}

/// P1 incidents start at L3 ("high-priority incidents requiring immediate attention").
pub fn starting_tier(priority: Priority) -> Tier {
    match priority {
        Priority::P1 => Tier::L3,
        _ => Tier::L1,
    }
}

fn timeline(at: DateTime<Utc>, actor: &str, kind: &str, message: String) -> Effect {
    Effect::Timeline(TimelineEntry {
        at,
        actor: actor.to_owned(),
        kind: kind.to_owned(),
        message,
        public: false,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::observation::Observation;
    use crate::domain::signal::{RuleSignal, Status};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
    }

    fn failing() -> Observation {
        Observation {
            connected: true,
            status: Some(503),
            response_time: Duration::from_millis(12),
            ..Observation::new(at(0))
        }
    }

    fn open(impact: Level, urgency: Level, title: Option<&str>) -> (Incident, Vec<Effect>) {
        let labels = BTreeMap::from([("service".to_owned(), "checkout".to_owned())]);
        let observation = failing();
        let signal = RuleSignal {
            group: "checkout",
            rule: "checkout-down",
            probe: "checkout-api",
            condition: "[STATUS] != 200",
            title_template: title,
            category: "availability",
            impact,
            urgency,
            priority: Priority::from_matrix(impact, urgency),
            start_tier: starting_tier(Priority::from_matrix(impact, urgency)),
            probe_labels: &labels,
            subject: &BTreeMap::new(),
            observation: &observation,
        };
        Incident::open(
            IncidentId(7),
            &Signal::from_rule(&signal, Status::Firing, None),
            at(0),
        )
    }

    fn events(effects: &[Effect]) -> Vec<&'static str> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Event(kind) => Some(*kind),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn opening_sets_priority_tier_service_and_evidence() {
        let (incident, effects) = open(
            Level::High,
            Level::High,
            Some("Checkout down ({{ status }})"),
        );
        assert_eq!(incident.title, "Checkout down (503)");
        assert_eq!(incident.priority, Priority::P1);
        assert_eq!(incident.tier, Tier::L3, "P1 starts at L3");
        assert_eq!(incident.service.as_deref(), Some("checkout"));
        assert_eq!(incident.labels["rule"], "checkout-down");
        assert_eq!(incident.evidence.len(), 1);
        assert_eq!(events(&effects), ["incident.opened"]);

        let (incident, _) = open(Level::Medium, Level::Low, None);
        assert_eq!(incident.priority, Priority::P4);
        assert_eq!(incident.tier, Tier::L1);
        assert_eq!(incident.title, "checkout-down on checkout-api");
    }

    #[test]
    fn state_transitions() {
        // (from-state setup, action, allowed)
        #[track_caller]
        fn check(setup: &[&str], action: &str, ok: bool) {
            let (mut incident, _) = open(Level::Low, Level::Low, None);
            for step in setup {
                apply(&mut incident, step).expect("setup step");
            }
            let before = incident.state;
            let result = apply(&mut incident, action);
            assert_eq!(result.is_ok(), ok, "{setup:?} then {action}");
            if let Err(TransitionError::InvalidState { state, .. }) = result {
                assert_eq!(state, before);
                assert_eq!(
                    incident.state, before,
                    "a refused transition changes nothing"
                );
            }
        }
        fn apply(incident: &mut Incident, action: &str) -> Result<Vec<Effect>, TransitionError> {
            match action {
                "ack" => incident.acknowledge("alice", at(60)),
                "resolve" => incident.resolve("alice", Some("restarted".into()), at(120)),
                "recover" => Ok(incident.recover(&describe(&failing()), at(180))),
                _ => unreachable!(),
            }
        }
        check(&[], "ack", true);
        check(&["ack"], "ack", false);
        check(&[], "resolve", true);
        check(&["ack"], "resolve", true);
        check(&["resolve"], "resolve", false);
        check(&["resolve"], "ack", false);
        check(&["ack"], "recover", true);
    }

    #[test]
    fn acknowledge_records_first_response() {
        let (mut incident, _) = open(Level::Low, Level::Low, None);
        let effects = incident.acknowledge("alice", at(60)).unwrap();
        assert_eq!(incident.acknowledged_at, Some(at(60)));
        assert_eq!(events(&effects), ["incident.acknowledged"]);
        let Effect::Timeline(entry) = &effects[0] else {
            panic!("timeline first")
        };
        assert_eq!(entry.actor, "alice");
        assert_eq!(entry.message, "state open → acknowledged");
    }

    #[test]
    fn recover_resolves_active_incidents_only() {
        let (mut incident, _) = open(Level::Low, Level::Low, None);
        incident.resolve("alice", None, at(10)).unwrap();
        assert!(incident.recover(&describe(&failing()), at(20)).is_empty());
        assert_eq!(
            incident.resolved_at,
            Some(at(10)),
            "the manual resolution stands"
        );
    }

    #[test]
    fn refused_transition_names_the_state() {
        let (mut incident, _) = open(Level::Low, Level::Low, None);
        incident.resolve("alice", None, at(10)).unwrap();
        let err = incident.acknowledge("bob", at(20)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "incident INC-7 is resolved; cannot acknowledge it"
        );
    }

    fn ticket(category: &str) -> Incident {
        let ticket = Ticket {
            title: "VPN broken".to_owned(),
            description: "cannot connect since 9:00".to_owned(),
            reporter: Reporter {
                name: "Ana".to_owned(),
                contact: "ana@example.com".to_owned(),
            },
            kind: Kind::Incident,
            category: category.to_owned(),
            impact: Level::Medium,
            urgency: Level::Medium,
            service: Some("vpn".to_owned()),
            labels: BTreeMap::new(),
        };
        Incident::open(
            IncidentId(3),
            &Signal::from_ticket(IncidentId(3), ticket, Priority::P3, Tier::L1, "desk"),
            at(0),
        )
        .0
    }

    /// One workflow step, by name, as the API would run it (`admin` may lower tiers).
    fn step(incident: &mut Incident, action: &str, t: i64) -> Result<Vec<Effect>, TransitionError> {
        let now = at(t);
        match action {
            "ack" => incident.acknowledge("alice", now),
            "note" => incident.add_note("alice", "looking", false, now),
            "hold" => incident.hold("alice", "waiting on vendor", now),
            "resume" => incident.resume("alice", now),
            "escalate" => incident.escalate("alice", "need db team", None, false, now),
            "escalate_l1" => incident.escalate("alice", "wrong team", Some(Tier::L1), false, now),
            "admin_l1" => incident.escalate("root", "wrong team", Some(Tier::L1), true, now),
            "patch" => incident.update(
                "alice",
                Changes {
                    impact: Some(Level::High),
                    ..Changes::default()
                },
                "more users",
                Priority::from_matrix,
                now,
            ),
            "resolve" => incident.resolve("alice", Some("fixed".into()), now),
            "close" => incident.close("alice", now),
            "reopen" => incident.reopen("alice", "back again", now),
            "call" => incident.schedule_call(call(now + chrono::TimeDelta::hours(1)), now),
            "comment" => incident.reporter_comment("still broken", now),
            _ => unreachable!("{action}"),
        }
    }

    #[test]
    fn workflow_transitions() {
        // (steps before, action, the state after or the refusal naming the state)
        #[track_caller]
        fn check(setup: &[&str], action: &str, expected: Result<State, &str>) {
            let mut incident = ticket("availability");
            for (t, s) in setup.iter().enumerate() {
                step(&mut incident, s, t as i64).expect("setup step");
            }
            let before = incident.clone();
            match (step(&mut incident, action, 100), expected) {
                (Ok(_), Ok(state)) => assert_eq!(incident.state, state, "{setup:?} {action}"),
                (Err(error), Err(message)) => {
                    assert_eq!(error.to_string(), message, "{setup:?} {action}");
                    assert_eq!(incident, before, "a refusal changes nothing");
                }
                (got, want) => panic!("{setup:?} {action}: got {got:?}, want {want:?}"),
            }
        }
        use State::*;
        check(&[], "ack", Ok(Acknowledged));
        check(&[], "note", Ok(Open));
        check(&[], "hold", Err("incident INC-3 is open; cannot hold it"));
        check(&["ack"], "hold", Ok(OnHold));
        check(
            &["ack", "hold"],
            "hold",
            Err("incident INC-3 is on_hold; cannot hold it"),
        );
        check(&["ack", "hold"], "resume", Ok(Acknowledged));
        check(
            &["ack"],
            "resume",
            Err("incident INC-3 is acknowledged; cannot resume it"),
        );
        check(&["ack", "hold"], "resolve", Ok(Resolved));
        check(&["ack", "hold"], "escalate", Ok(OnHold));
        check(
            &["escalate", "escalate"],
            "escalate",
            Err("incident INC-3 is open; it is already at L3, the last tier"),
        );
        check(
            &["escalate"],
            "escalate_l1",
            Err("incident INC-3 is at L2; only an admin may move it to L1"),
        );
        check(
            &[],
            "escalate_l1",
            Err("incident INC-3 is at L1; only an admin may move it to L1"),
        );
        check(&["escalate"], "admin_l1", Ok(Open));
        check(
            &["resolve"],
            "escalate",
            Err("incident INC-3 is resolved; cannot escalate it"),
        );
        check(&["resolve"], "close", Ok(Closed));
        check(
            &["ack"],
            "close",
            Err("incident INC-3 is acknowledged; cannot close it"),
        );
        check(&["resolve"], "reopen", Ok(Acknowledged));
        check(&["resolve", "close"], "reopen", Ok(Acknowledged));
        check(
            &["ack"],
            "reopen",
            Err("incident INC-3 is acknowledged; cannot reopen it"),
        );
        check(
            &["resolve", "close"],
            "note",
            Err("incident INC-3 is closed; cannot add a note to it"),
        );
        check(
            &["resolve", "close"],
            "patch",
            Err("incident INC-3 is closed; cannot change it"),
        );
        check(
            &["resolve", "close"],
            "ack",
            Err("incident INC-3 is closed; cannot acknowledge it"),
        );
        check(&["resolve"], "note", Ok(Resolved));
        check(&["resolve"], "patch", Ok(Resolved));
    }

    fn call(at: DateTime<Utc>) -> Call {
        Call {
            at,
            url: "https://meet.example/vpn".to_owned(),
            participants: vec!["Ana".to_owned()],
            note: None,
            scheduled_by: "alice".to_owned(),
            scheduled_at: at,
        }
    }

    #[test]
    fn calls_are_scheduled_from_l2_or_l3_and_never_on_a_closed_incident() {
        #[track_caller]
        fn check(setup: &[&str], expected: Result<usize, &str>) {
            let mut incident = ticket("availability");
            for (t, s) in setup.iter().enumerate() {
                step(&mut incident, s, t as i64).expect("setup step");
            }
            let before = incident.clone();
            match (step(&mut incident, "call", 100), expected) {
                (Ok(effects), Ok(calls)) => {
                    assert_eq!(incident.calls.len(), calls, "{setup:?}");
                    assert_eq!(events(&effects), ["incident.call_scheduled"]);
                    assert!(matches!(&effects[0], Effect::Timeline(e)
                        if e.kind == "call_scheduled" && e.actor == "alice" && !e.public
                        && e.message == "call at 2026-01-01T01:01:40Z on https://meet.example/vpn with Ana"));
                    assert_eq!(incident.calls[calls - 1].scheduled_at, at(100));
                }
                (Err(error), Err(message)) => {
                    assert_eq!(error.to_string(), message, "{setup:?}");
                    assert_eq!(incident, before, "a refusal changes nothing");
                }
                (got, want) => panic!("{setup:?}: got {got:?}, want {want:?}"),
            }
        }
        check(
            &[],
            Err(
                "incident INC-3 is open; it is at L1; calls are scheduled from L2 or L3: escalate it first",
            ),
        );
        check(&["escalate"], Ok(1));
        check(&["escalate", "escalate", "call"], Ok(2));
        check(&["escalate", "ack", "resolve"], Ok(1));
        check(
            &["escalate", "resolve", "close"],
            Err("incident INC-3 is closed; cannot schedule a call for it"),
        );

        let mut incident = ticket("availability");
        step(&mut incident, "escalate", 1).unwrap();
        let past = incident.schedule_call(call(at(0)), at(3600));
        assert_eq!(
            past.unwrap_err(),
            TransitionError::Invalid("`at` (2026-01-01T00:00:00Z) is in the past".to_owned())
        );
        for n in 0..MAX_CALLS {
            incident
                .schedule_call(call(at(7200)), at(n as i64))
                .unwrap();
        }
        let full = incident.schedule_call(call(at(7200)), at(100)).unwrap_err();
        assert_eq!(
            full.to_string(),
            "incident INC-3 is open; it has 20 calls already, the most it may have"
        );
    }

    #[test]
    fn a_reporter_comment_is_from_the_reporter_and_private() {
        let mut incident = ticket("availability");
        let effects = incident
            .reporter_comment("it fails on wifi too", at(5))
            .unwrap();
        assert_eq!(
            effects,
            [
                Effect::Timeline(TimelineEntry {
                    at: at(5),
                    actor: "reporter: Ana".to_owned(),
                    kind: REPORTER_COMMENT.to_owned(),
                    message: "it fails on wifi too".to_owned(),
                    public: false,
                }),
                Effect::Event("incident.note_added"),
            ]
        );
        assert!(matches!(
            incident.reporter_comment("  ", at(6)),
            Err(TransitionError::Invalid(_))
        ));
        incident.resolve("alice", None, at(7)).unwrap();
        incident.close("alice", at(8)).unwrap();
        assert_eq!(
            incident
                .reporter_comment("hello?", at(9))
                .unwrap_err()
                .to_string(),
            "incident INC-3 is closed; cannot comment on it"
        );
        // Revoking the link works whatever the state; an incident without a reporter has none.
        let revoked = incident
            .reporter_link_changed("alice", false, at(10))
            .unwrap();
        assert!(
            matches!(&revoked[..], [Effect::Timeline(e)] if e.kind == "reporter_link" && !e.message.contains("/r/"))
        );
        let (rule, _) = open(Level::Low, Level::Low, None);
        assert!(matches!(
            rule.reporter_link_changed("alice", true, at(1)),
            Err(TransitionError::Conflict { .. })
        ));
    }

    #[test]
    fn ticket_opens_with_reporter_evidence_and_data_breach_at_l3() {
        let incident = ticket("availability");
        assert_eq!(incident.source, Source::Ticket);
        assert_eq!(incident.tier, Tier::L1);
        assert_eq!(incident.reporter.as_ref().unwrap().name, "Ana");
        assert_eq!(
            incident.evidence,
            [Evidence::Ticket {
                text: "VPN broken\n\ncannot connect since 9:00".to_owned()
            }]
        );
        assert_eq!(
            ticket(DATA_BREACH).tier,
            Tier::L3,
            "whatever the policy says"
        );
    }

    #[test]
    fn update_audits_each_field_and_recomputes_priority() {
        let mut incident = ticket("availability");
        let effects = incident
            .update(
                "alice",
                Changes {
                    title: Some("VPN down".into()),
                    urgency: Some(Level::High),
                    ..Changes::default()
                },
                "whole office",
                Priority::from_matrix,
                at(5),
            )
            .unwrap();
        let messages: Vec<&str> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Timeline(entry) => Some(entry.message.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            messages,
            [
                "title \"VPN broken\" → \"VPN down\" (reason: whole office)",
                "urgency medium → high (reason: whole office)",
                "priority P3 → P2 (reason: whole office)",
            ]
        );
        assert_eq!(events(&effects), ["incident.priority_changed"]);
        // An explicit priority wins over the matrix.
        incident
            .update(
                "alice",
                Changes {
                    impact: Some(Level::Low),
                    priority: Some(Priority::P1),
                    ..Changes::default()
                },
                "VIP",
                Priority::from_matrix,
                at(6),
            )
            .unwrap();
        assert_eq!(incident.priority, Priority::P1);
        // Nothing different: nothing on the timeline.
        let none = incident
            .update(
                "alice",
                Changes::default(),
                "noop",
                Priority::from_matrix,
                at(7),
            )
            .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn resolving_a_firing_rule_incident_waits_for_the_probe() {
        let (mut incident, _) = open(Level::Low, Level::Low, None);
        incident
            .resolve("alice", Some("restarted".into()), at(10))
            .unwrap();
        assert_eq!(incident.verification, Some(Verification::Pending));
        let err = incident.close("alice", at(11)).unwrap_err();
        assert!(err.to_string().contains("verification is pending"), "{err}");

        let effects = incident.rule_recovered("checkout-down", &describe(&failing()), true, at(20));
        assert_eq!(incident.verification, Some(Verification::Verified));
        assert_eq!(incident.state, State::Resolved);
        assert_eq!(
            incident.resolved_at,
            Some(at(10)),
            "resolved when the person said"
        );
        assert!(events(&effects).is_empty(), "no second incident.resolved");
        assert!(matches!(&effects[..], [Effect::Timeline(e)] if e.kind == "verified"));
        incident.close("alice", at(30)).unwrap();

        // Resolved while no rule fires: verified at once. A ticket has no verification.
        let (mut quiet, _) = open(Level::Low, Level::Low, None);
        quiet.rule_recovered("checkout-down", &describe(&failing()), false, at(5));
        quiet.resolve("alice", None, at(6)).unwrap();
        assert_eq!(quiet.verification, Some(Verification::Verified));
        let mut t = ticket("availability");
        t.resolve("alice", None, at(6)).unwrap();
        assert_eq!(t.verification, None);
    }

    #[test]
    fn a_returning_symptom_reopens_a_resolved_incident_only() {
        let labels = BTreeMap::new();
        let observation = failing();
        let signal = RuleSignal {
            group: "checkout",
            rule: "checkout-down",
            probe: "checkout-api",
            condition: "[STATUS] != 200",
            title_template: None,
            category: "availability",
            impact: Level::Low,
            urgency: Level::Low,
            priority: Priority::P5,
            start_tier: Tier::L1,
            probe_labels: &labels,
            subject: &labels,
            observation: &observation,
        };
        let signal = Signal::from_rule(&signal, Status::Firing, None);
        let (mut incident, _) = open(Level::Low, Level::Low, None);
        assert!(
            incident.symptom_returned(&signal, at(1)).is_none(),
            "open: not reopened"
        );
        incident.rule_recovered("checkout-down", &describe(&failing()), true, at(2));
        assert_eq!(incident.state, State::Resolved);
        let effects = incident.symptom_returned(&signal, at(3)).unwrap();
        assert_eq!(events(&effects), ["incident.reopened"]);
        assert_eq!(incident.state, State::Acknowledged);
        assert_eq!(incident.resolved_at, None);
        assert_eq!(incident.verification, None);
        assert!(incident.firing_rules.contains("checkout-down"));
        assert_eq!(incident.evidence.len(), 2);
    }

    #[test]
    fn a_raise_to_p1_counts_as_a_priority_escalation() {
        let (mut incident, _) = open(Level::Low, Level::Low, None);
        let labels = BTreeMap::new();
        let observation = failing();
        let signal = RuleSignal {
            group: "checkout",
            rule: "checkout-worse",
            probe: "checkout-api",
            condition: "[STATUS] != 200",
            title_template: None,
            category: "availability",
            impact: Level::High,
            urgency: Level::High,
            priority: Priority::P1,
            start_tier: Tier::L3,
            probe_labels: &labels,
            subject: &labels,
            observation: &observation,
        };
        let effects = incident.raise(&Signal::from_rule(&signal, Status::Firing, None), at(1));
        assert!(effects.contains(&Effect::Escalated {
            from: Tier::L1,
            to: Tier::L3,
            reason: "priority"
        }));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const ACTIONS: [&str; 14] = [
            "call",
            "comment",
            "ack",
            "note",
            "hold",
            "resume",
            "escalate",
            "escalate_l1",
            "admin_l1",
            "patch",
            "resolve",
            "close",
            "reopen",
            "recover",
        ];

        fn apply(
            incident: &mut Incident,
            action: &str,
            t: i64,
        ) -> Result<Vec<Effect>, TransitionError> {
            match action {
                "recover" => Ok(incident.rule_recovered(
                    "checkout-down",
                    &describe(&failing()),
                    true,
                    at(t),
                )),
                other => step(incident, other, t),
            }
        }

        proptest! {
            #[test]
            fn random_commands_keep_the_incident_consistent(
                from_rule in any::<bool>(),
                actions in proptest::collection::vec(0..ACTIONS.len(), 0..40),
            ) {
                let mut incident = if from_rule {
                    open(Level::Low, Level::Low, None).0
                } else {
                    ticket("availability")
                };
                let mut timeline_len = 1usize;
                let mut ever_acknowledged = false;
                for (t, &index) in actions.iter().enumerate() {
                    let action = ACTIONS[index];
                    let before = incident.clone();
                    let result = apply(&mut incident, action, t as i64 + 1);
                    let effects = match result {
                        Ok(effects) => effects,
                        Err(_) => {
                            prop_assert_eq!(&incident, &before, "a refusal changes nothing");
                            continue;
                        }
                    };
                    // The timeline only grows: no effect ever removes an entry, and every
                    // change of state is written on it.
                    let added = effects.iter().filter(|e| matches!(e, Effect::Timeline(_))).count();
                    if incident.state != before.state || incident.tier != before.tier {
                        prop_assert!(added > 0, "{} changed state or tier silently", action);
                    }
                    timeline_len += added;
                    // A closed incident changes only by an explicit reopen.
                    if before.state == State::Closed && action != "reopen" {
                        prop_assert_eq!(&incident, &before, "{} changed a closed incident", action);
                    }
                    if incident.tier < before.tier {
                        prop_assert_eq!(action, "admin_l1", "only an admin lowers the tier");
                    }
                    ever_acknowledged |= incident.state == State::Acknowledged;
                    // Timestamps follow the state.
                    prop_assert_eq!(incident.acknowledged_at.is_some(), ever_acknowledged);
                    prop_assert_eq!(
                        incident.resolved_at.is_some(),
                        matches!(incident.state, State::Resolved | State::Closed)
                    );
                    prop_assert_eq!(incident.closed_at.is_some(), incident.state == State::Closed);
                    prop_assert_eq!(
                        incident.verification.is_some(),
                        from_rule && matches!(incident.state, State::Resolved | State::Closed)
                    );
                    if from_rule && incident.state == State::Closed {
                        prop_assert_eq!(incident.verification, Some(Verification::Verified));
                    }
                    if incident.state == State::OnHold {
                        prop_assert!(incident.acknowledged_at.is_some());
                    }
                }
                prop_assert!(timeline_len >= 1);
            }
        }
    }
}
