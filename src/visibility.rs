//! What the public may see of an incident: the one rule every public surface (the page,
//! `/status.json`, the feed, badges, subscribers' mail and webhooks) decides with.
//!
//! Private by default: a rule or alert incident shows only when it feeds a listed service
//! (or, with no services listed, when it names a service); a person's ticket only once a
//! responder publishes it; a restricted incident (a data breach) only as a generic notice,
//! never with its id, title, service or notes.

use crate::config::StatusPageConfig;
use crate::domain::incident::{Incident, Source};
use crate::view::Restrictions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Not on any public surface.
    Hidden,
    /// Counted in the generic notice only: no details at all.
    Notice,
    /// Shown with its title, state, services and public notes.
    Public,
}

/// How the public sees `incident`.
pub fn visibility(
    incident: &Incident,
    restrictions: &Restrictions,
    page: &StatusPageConfig,
) -> Visibility {
    if restrictions.is_restricted(incident) {
        return Visibility::Notice;
    }
    let shown = match incident.source {
        Source::Ticket => incident.published,
        Source::Rule { .. } | Source::Alert { .. } => {
            if page.services.is_empty() {
                incident.service.is_some()
            } else {
                !services_of(incident, page).is_empty()
            }
        }
    };
    if shown {
        Visibility::Public
    } else {
        Visibility::Hidden
    }
}

/// The listed services an incident feeds (names, in the page's order). With no services
/// listed, the incident's own `service`.
pub fn services_of<'a>(incident: &'a Incident, page: &'a StatusPageConfig) -> Vec<&'a str> {
    if page.services.is_empty() {
        return incident.service.as_deref().into_iter().collect();
    }
    page.services
        .iter()
        .filter(|s| s.matches_incident(incident.service.as_deref(), &incident.labels))
        .map(|s| s.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::config::StatusService;
    use crate::domain::incident::{IncidentId, Kind, Reporter, Ticket, Tier};
    use crate::domain::policy::WorkflowConfig;
    use crate::domain::priority::{Level, Priority};
    use crate::domain::signal::Signal;

    fn ticket(category: &str, service: Option<&str>) -> Incident {
        let ticket = Ticket {
            title: "Cannot log in".to_owned(),
            description: "since 9:00".to_owned(),
            reporter: Reporter {
                name: "Ana".to_owned(),
                contact: "ana@example.com".to_owned(),
            },
            kind: Kind::Incident,
            category: category.to_owned(),
            impact: Level::Medium,
            urgency: Level::Medium,
            service: service.map(str::to_owned),
            labels: BTreeMap::new(),
        };
        let now = Utc.timestamp_opt(0, 0).unwrap();
        let signal = Signal::from_ticket(IncidentId(1), ticket, Priority::P3, Tier::L1, "desk");
        Incident::open(IncidentId(1), &signal, now).0
    }

    /// An alert-like incident: anything not a ticket decides by its service.
    fn alerted(service: Option<&str>, labels: &[(&str, &str)]) -> Incident {
        let mut incident = ticket("availability", service);
        incident.source = Source::Alert {
            source: crate::domain::alert::AlertSource::ApiV2,
        };
        incident.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        incident
    }

    fn page(services: &[(&str, &[(&str, &str)])]) -> StatusPageConfig {
        StatusPageConfig {
            services: services
                .iter()
                .map(|(name, matchers)| StatusService {
                    name: (*name).to_owned(),
                    display: (*name).to_owned(),
                    description: None,
                    group: None,
                    matchers: matchers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                })
                .collect(),
            ..StatusPageConfig::default()
        }
    }

    #[test]
    fn private_by_default_public_when_listed_or_published_restricted_as_a_notice() {
        let mut workflow = WorkflowConfig::default();
        for category in &mut workflow.categories {
            category.restricted = category.name == "data_breach";
        }
        let restrictions = Restrictions::from_workflow(&workflow);
        let listed = page(&[("checkout", &[("service", "checkout")])]);
        let unlisted = StatusPageConfig::default();

        let mut filed = ticket("availability", Some("checkout"));
        assert_eq!(
            visibility(&filed, &restrictions, &listed),
            Visibility::Hidden
        );
        filed.published = true;
        assert_eq!(
            visibility(&filed, &restrictions, &listed),
            Visibility::Public
        );

        let breach = {
            let mut t = ticket("data_breach", Some("checkout"));
            t.published = true;
            t
        };
        assert_eq!(
            visibility(&breach, &restrictions, &listed),
            Visibility::Notice
        );

        let of_checkout = alerted(Some("checkout"), &[("service", "checkout")]);
        let of_other = alerted(Some("billing"), &[("service", "billing")]);
        let of_none = alerted(None, &[]);
        assert_eq!(
            visibility(&of_checkout, &restrictions, &listed),
            Visibility::Public
        );
        assert_eq!(
            visibility(&of_other, &restrictions, &listed),
            Visibility::Hidden
        );
        assert_eq!(
            visibility(&of_other, &restrictions, &unlisted),
            Visibility::Public
        );
        assert_eq!(
            visibility(&of_none, &restrictions, &unlisted),
            Visibility::Hidden
        );
        assert_eq!(services_of(&of_checkout, &listed), ["checkout"]);
        assert_eq!(services_of(&of_other, &unlisted), ["billing"]);

        let by_labels = page(&[("search", &[("team", "search")])]);
        let labelled = alerted(None, &[("team", "search"), ("env", "prod")]);
        assert_eq!(
            visibility(&labelled, &restrictions, &by_labels),
            Visibility::Public
        );
        assert_eq!(services_of(&labelled, &by_labels), ["search"]);
    }
}
