//! The engine's side of webhook delivery: a worker's report (deliveries acknowledged in a
//! batch, dead letters, attempts, a consumer disabled, pruning) and replays, written into
//! the batch of the group commit like any other change.

use crate::store::{Counters, OutboxEntry};

use super::command::DeliveryReport;
use super::txn::Txn;

pub(super) fn report(report: DeliveryReport, txn: &mut Txn) {
    let consumer = report.consumer;
    let gone = report.delivered.len() + report.dead.len();
    for entry in report.delivered {
        txn.batch.delivered(entry);
    }
    for letter in report.dead {
        txn.batch.dead_letter(letter);
    }
    for attempt in report.attempts {
        txn.batch.log_attempt(attempt);
    }
    if let Some(state) = report.disable {
        txn.batch.set_consumer_state(&consumer, state);
    }
    if let Some(before) = report.prune_before {
        txn.batch.prune_webhooks(&consumer, before);
    }
    txn.pending.settled(&consumer, gone);
}

/// Queues each entry again under a new sequence (after everything pending, so in order per
/// incident), with its `webhook-id` and body unchanged.
pub(super) fn replay(
    consumer: &str,
    entries: Vec<(OutboxEntry, bool)>,
    counters: &mut Counters,
    txn: &mut Txn,
) -> Vec<String> {
    let mut queued = Vec::with_capacity(entries.len());
    for (entry, dead) in entries {
        if dead {
            txn.batch.forget_dead_letter(consumer, entry.seq);
        }
        queued.push(entry.event_id.clone());
        txn.batch.enqueue(OutboxEntry {
            consumer: consumer.to_owned(),
            seq: counters.next_outbox_seq,
            ..entry
        });
        counters.next_outbox_seq += 1;
    }
    txn.pending.queued(consumer, queued.len());
    queued
}
