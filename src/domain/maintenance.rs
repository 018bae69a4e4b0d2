//! Scheduled maintenances: a window announced ahead through the API (`POST
//! /api/v1/maintenances`) for some services. While one is active, the signals of its
//! services open no incident (as in a rule's recurring `maintenance` window from the
//! config, which keeps working next to it), and the status page shows the services as in
//! maintenance.
//!
//! Which service a signal belongs to is decided in one place, a [`ServiceResolver`]: by
//! default the signal's `service` label ([`ServiceLabel`]); the status page's service
//! matching can take its place without touching the suppression.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

/// How long a maintenance stays in memory and in the read model once it is over (completed
/// or cancelled): the status page shows the recent history.
pub const HISTORY_DAYS: i64 = 90;

/// Where a maintenance is at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MaintenanceState {
    /// Announced, not started.
    Upcoming,
    /// Started, not ended: its services' signals are suppressed.
    Active,
    /// Ended (at its planned end, or early by a person).
    Completed,
    /// Called off before it started.
    Cancelled,
}

impl MaintenanceState {
    pub const ALL: [MaintenanceState; 4] = [
        MaintenanceState::Upcoming,
        MaintenanceState::Active,
        MaintenanceState::Completed,
        MaintenanceState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceState::Upcoming => "upcoming",
            MaintenanceState::Active => "active",
            MaintenanceState::Completed => "completed",
            MaintenanceState::Cancelled => "cancelled",
        }
    }

    /// Upcoming or active: what the bound on maintenances counts, and what may still end.
    pub fn is_pending(self) -> bool {
        matches!(self, MaintenanceState::Upcoming | MaintenanceState::Active)
    }
}

impl fmt::Display for MaintenanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A maintenance scheduled for some services, from `starts_at` (inclusive) to `ends_at`
/// (exclusive), as a silence is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub id: u64,
    pub title: String,
    /// What the status page tells the public.
    pub message: String,
    pub services: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Set when it was cancelled before it started.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Why a maintenance cannot be ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyOver(pub MaintenanceState);

impl Maintenance {
    pub fn state(&self, now: DateTime<Utc>) -> MaintenanceState {
        if self.cancelled_at.is_some() {
            MaintenanceState::Cancelled
        } else if now < self.starts_at {
            MaintenanceState::Upcoming
        } else if now < self.ends_at {
            MaintenanceState::Active
        } else {
            MaintenanceState::Completed
        }
    }

    /// Whether `service` is in maintenance now.
    pub fn covers(&self, service: &str, now: DateTime<Utc>) -> bool {
        self.state(now) == MaintenanceState::Active && self.services.iter().any(|s| s == service)
    }

    /// Whether a signal with these labels is in maintenance now: one of the services
    /// `resolver` says it belongs to is covered.
    pub fn covers_labels(
        &self,
        labels: &BTreeMap<String, String>,
        resolver: &dyn ServiceResolver,
        now: DateTime<Utc>,
    ) -> bool {
        self.state(now) == MaintenanceState::Active
            && resolver
                .services(labels)
                .into_iter()
                .any(|service| self.services.iter().any(|s| s == service))
    }

    /// When it stopped mattering: cancelled, or its end. History is kept
    /// [`HISTORY_DAYS`] from then.
    pub fn over_at(&self) -> DateTime<Utc> {
        self.cancelled_at.unwrap_or(self.ends_at)
    }

    /// What `DELETE` does at `now`: an upcoming maintenance is cancelled, an active one
    /// ends now; one that is over already stays as it was.
    pub fn end(&self, now: DateTime<Utc>) -> Result<Maintenance, AlreadyOver> {
        match self.state(now) {
            MaintenanceState::Upcoming => Ok(Maintenance {
                cancelled_at: Some(now),
                ..self.clone()
            }),
            MaintenanceState::Active => Ok(Maintenance {
                ends_at: now,
                ..self.clone()
            }),
            over => Err(AlreadyOver(over)),
        }
    }

    /// Whether it is still worth keeping at `now`: not over, or over for less than
    /// [`HISTORY_DAYS`].
    pub fn is_recent(&self, now: DateTime<Utc>) -> bool {
        self.over_at() > now - chrono::Duration::days(HISTORY_DAYS)
    }
}

/// Whether any active maintenance covers a signal with these labels.
pub fn in_maintenance<'a>(
    maintenances: impl IntoIterator<Item = &'a Maintenance>,
    labels: &BTreeMap<String, String>,
    resolver: &dyn ServiceResolver,
    now: DateTime<Utc>,
) -> bool {
    maintenances
        .into_iter()
        .any(|m| m.covers_labels(labels, resolver, now))
}

/// Which services a signal (a rule's symptom, an alert) belongs to, from its labels.
pub trait ServiceResolver: fmt::Debug + Send + Sync {
    fn services<'a>(&'a self, labels: &'a BTreeMap<String, String>) -> Vec<&'a str>;
}

/// The default: the value of one label, `service` unless the `alerts:` configuration
/// names another (`service_label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLabel<'l>(pub &'l str);

impl ServiceLabel<'static> {
    pub const DEFAULT: ServiceLabel<'static> = ServiceLabel("service");
}

impl ServiceResolver for ServiceLabel<'_> {
    fn services<'a>(&'a self, labels: &'a BTreeMap<String, String>) -> Vec<&'a str> {
        labels.get(self.0).map(String::as_str).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + minutes * 60, 0).unwrap()
    }

    fn maintenance() -> Maintenance {
        Maintenance {
            id: 1,
            title: "Database upgrade".to_owned(),
            message: "Checkout may be slow.".to_owned(),
            services: vec!["checkout".to_owned(), "db".to_owned()],
            starts_at: at(60),
            ends_at: at(120),
            created_by: "alice".to_owned(),
            created_at: at(0),
            cancelled_at: None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn states_follow_the_clock_start_inclusive_end_exclusive() {
        use MaintenanceState::*;
        let m = maintenance();
        assert_eq!(m.state(at(0)), Upcoming);
        assert_eq!(m.state(at(60) - chrono::Duration::seconds(1)), Upcoming);
        assert_eq!(m.state(at(60)), Active);
        assert_eq!(m.state(at(120) - chrono::Duration::seconds(1)), Active);
        assert_eq!(m.state(at(120)), Completed);
        let cancelled = Maintenance {
            cancelled_at: Some(at(10)),
            ..m
        };
        assert_eq!(cancelled.state(at(0)), Cancelled);
        assert_eq!(cancelled.state(at(90)), Cancelled, "never becomes active");
    }

    #[test]
    fn coverage_is_its_services_while_active() {
        let m = maintenance();
        assert!(!m.covers("checkout", at(59)));
        assert!(m.covers("checkout", at(60)));
        assert!(m.covers("db", at(119)));
        assert!(!m.covers("web", at(90)));
        assert!(!m.covers("checkout", at(120)));
        assert!(!m.covers("check", at(90)), "whole names only");
    }

    #[test]
    fn a_signal_is_covered_through_its_resolved_service() {
        let m = maintenance();
        let checkout = labels(&[("service", "checkout"), ("rule", "down")]);
        let web = labels(&[("service", "web")]);
        let unlabelled = labels(&[("rule", "down")]);
        let by_app = labels(&[("app", "db")]);
        let now = at(90);
        assert!(m.covers_labels(&checkout, &ServiceLabel::DEFAULT, now));
        assert!(!m.covers_labels(&web, &ServiceLabel::DEFAULT, now));
        assert!(!m.covers_labels(&unlabelled, &ServiceLabel::DEFAULT, now));
        assert!(!m.covers_labels(&by_app, &ServiceLabel::DEFAULT, now));
        assert!(m.covers_labels(&by_app, &ServiceLabel("app"), now));
        assert!(!m.covers_labels(&checkout, &ServiceLabel::DEFAULT, at(120)));
        assert!(in_maintenance([&m], &checkout, &ServiceLabel::DEFAULT, now));
        assert!(!in_maintenance([&m], &web, &ServiceLabel::DEFAULT, now));

        /// A resolver that puts every signal in two services, as a status page's
        /// matching may.
        #[derive(Debug)]
        struct Both;
        impl ServiceResolver for Both {
            fn services<'a>(&'a self, _: &'a BTreeMap<String, String>) -> Vec<&'a str> {
                vec!["web", "db"]
            }
        }
        assert!(m.covers_labels(&unlabelled, &Both, now));
    }

    #[test]
    fn ending_cancels_ahead_ends_now_while_active_and_refuses_after() {
        let m = maintenance();
        let cancelled = m.end(at(30)).unwrap();
        assert_eq!(cancelled.cancelled_at, Some(at(30)));
        assert_eq!(cancelled.ends_at, at(120), "the plan stays as it was");
        assert_eq!(cancelled.state(at(30)), MaintenanceState::Cancelled);
        assert_eq!(cancelled.over_at(), at(30));

        let ended = m.end(at(90)).unwrap();
        assert_eq!((ended.ends_at, ended.cancelled_at), (at(90), None));
        assert_eq!(ended.state(at(90)), MaintenanceState::Completed);
        assert!(!ended.covers("checkout", at(90)));

        assert_eq!(
            m.end(at(120)),
            Err(AlreadyOver(MaintenanceState::Completed))
        );
        assert_eq!(
            cancelled.end(at(40)),
            Err(AlreadyOver(MaintenanceState::Cancelled))
        );
    }

    #[test]
    fn history_is_kept_ninety_days_after_it_is_over() {
        let m = maintenance();
        let day = 24 * 60;
        assert!(m.is_recent(at(0)));
        assert!(m.is_recent(at(120 + 90 * day - 1)));
        assert!(!m.is_recent(at(120 + 90 * day)));
    }
}
