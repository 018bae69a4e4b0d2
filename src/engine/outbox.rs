//! Events into the outbox: one entry per consumer that subscribes to the event type and
//! whose filters (priority, kind, category, service) let the incident through, its body
//! rendered once per clearance (in full for `security` consumers, redacted through
//! [`Restrictions::view`] for the others when the incident is restricted).

use serde::Serialize;

use crate::config::WebhookConfig;
use crate::domain::incident::Incident;
use crate::store::{Counters, OutboxEntry};
use crate::view::{Clearance, Restrictions, timestamp};

use super::txn::Txn;

/// The webhook body: `{"id", "type", "occurred_at", "actor", "url", "incident"}`, plus `sla`
/// (which clock) on SLA events. `url` is the incident's public page,
/// `{external_url}/incidents/{id}`, left out when `external_url` is not configured.
#[derive(Serialize)]
struct EventBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    occurred_at: String,
    actor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sla: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    incident: serde_json::Value,
}

/// One event of one incident, as it is after the change.
pub(super) struct Event<'a> {
    pub kind: &'static str,
    /// The clock of an SLA event.
    pub sla: Option<&'static str>,
    pub actor: &'a str,
    pub incident: &'a Incident,
}

/// Queues the event for every consumer that subscribes to it.
pub(super) fn enqueue(
    event: Event<'_>,
    consumers: &[WebhookConfig],
    external_url: Option<&str>,
    restrictions: &Restrictions,
    counters: &mut Counters,
    txn: &mut Txn,
) {
    let mut subscribers = consumers
        .iter()
        .filter(|c| c.wants(event.kind) && c.accepts(event.incident))
        .peekable();
    if subscribers.peek().is_none() {
        return;
    }
    let now = txn.now;
    let event_id = format!("evt_{:032x}", rand::random::<u128>());
    let occurred_at = timestamp(now);
    let url = external_url.map(|base| incident_url(base, &event.incident.id.to_string()));
    let body_for = |clearance| {
        serde_json::to_string(&EventBody {
            id: &event_id,
            kind: event.kind,
            occurred_at: occurred_at.clone(),
            actor: event.actor,
            sla: event.sla,
            url: url.clone(),
            incident: restrictions.view(event.incident, None, clearance, now),
        })
        .expect("events serialize to JSON")
    };
    let full = body_for(Clearance::Security);
    let redacted = restrictions
        .is_restricted(event.incident)
        .then(|| body_for(Clearance::None));
    for consumer in subscribers {
        let body = match &redacted {
            Some(redacted) if !consumer.security => redacted,
            _ => &full,
        };
        txn.batch.enqueue(OutboxEntry {
            consumer: consumer.name.clone(),
            seq: counters.next_outbox_seq,
            event_id: event_id.clone(),
            event_type: event.kind.to_owned(),
            incident: event.incident.id.0,
            created_at: now,
            body: body.clone(),
        });
        counters.next_outbox_seq += 1;
        txn.pending.queued(&consumer.name, 1);
    }
}

/// `{external_url}/incidents/{id}`: the incident's page (one slash between the two).
pub(super) fn incident_url(external_url: &str, id: &str) -> String {
    format!("{}/incidents/{id}", external_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::incident_url;

    #[test]
    fn url_joins_with_one_slash() {
        for base in ["https://incidents.example", "https://incidents.example/"] {
            assert_eq!(
                incident_url(base, "INC-7"),
                "https://incidents.example/incidents/INC-7"
            );
        }
        assert_eq!(
            incident_url("https://x.example/desk/", "INC-1"),
            "https://x.example/desk/incidents/INC-1"
        );
    }
}
