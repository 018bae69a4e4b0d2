//! Events into the outbox: one entry per subscribed consumer, its body rendered once per
//! clearance (in full for `security` consumers, redacted through [`Restrictions::view`] for
//! the others when the incident is restricted).

use serde::Serialize;

use crate::config::WebhookConfig;
use crate::domain::incident::Incident;
use crate::store::{Counters, OutboxEntry};
use crate::view::{Clearance, Restrictions, timestamp};

use super::txn::Txn;

/// The webhook body: `{"id", "type", "occurred_at", "actor", "incident"}`, plus `sla`
/// (which clock) on SLA events.
#[derive(Serialize)]
struct EventBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    occurred_at: String,
    actor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sla: Option<&'static str>,
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
    restrictions: &Restrictions,
    counters: &mut Counters,
    txn: &mut Txn,
) {
    let mut subscribers = consumers.iter().filter(|c| c.wants(event.kind)).peekable();
    if subscribers.peek().is_none() {
        return;
    }
    let now = txn.now;
    let event_id = format!("evt_{:032x}", rand::random::<u128>());
    let occurred_at = timestamp(now);
    let body_for = |clearance| {
        serde_json::to_string(&EventBody {
            id: &event_id,
            kind: event.kind,
            occurred_at: occurred_at.clone(),
            actor: event.actor,
            sla: event.sla,
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
        *txn.pending.outbox.entry(consumer.name.clone()).or_insert(0) += 1;
    }
}
