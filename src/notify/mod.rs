//! Webhook delivery from the durable outbox. One worker per consumer reads its entries in
//! outbox order (so events of an incident arrive in the order they happened), signs each
//! per Standard Webhooks, retries with exponential backoff and jitter (honouring `429
//! Retry-After`, giving up on an event on `410 Gone`), and removes the entry through the
//! engine once the consumer answered 2xx. An entry is removed only after delivery, so a
//! crash at any point means a redelivery (at least once), never a loss.

pub mod signing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::WebhookConfig;
use crate::engine::{EngineHandle, Wakers};
use crate::metrics::Metrics;
use crate::store::{OutboxEntry, Store};

const PAGE: usize = 64;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(600);

/// Shared by every worker.
#[derive(Clone)]
pub struct Notifier {
    pub store: Store,
    pub engine: EngineHandle,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub client: reqwest::Client,
}

/// How the workers stop: on `drain` they finish what is pending and exit when their queue
/// is empty; on `stop` they exit at once (the rest stays in the outbox for next time).
#[derive(Clone)]
pub struct Stopping {
    pub drain: CancellationToken,
    pub stop: CancellationToken,
}

enum Outcome {
    Delivered,
    Gone,
    Stopped,
}

/// The running webhook workers, one per consumer; [`Workers::apply`] changes them (a
/// reload): an unchanged consumer keeps its worker and its waker; a changed one gets a new
/// worker (what the old one was sending stays in the outbox and is sent again: at least
/// once); a removed one's worker stops, its undelivered entries kept.
pub struct Workers {
    notifier: Notifier,
    tracker: TaskTracker,
    stopping: Stopping,
    running: HashMap<String, Worker>,
}

struct Worker {
    consumer: WebhookConfig,
    waker: Arc<Notify>,
    /// Stops this worker only; a child of the set's `stop`.
    stop: CancellationToken,
}

impl Workers {
    /// Starts a worker per consumer, each woken through its entry of `wakers`.
    pub fn start(
        notifier: Notifier,
        consumers: &[WebhookConfig],
        wakers: &Wakers,
        tracker: &TaskTracker,
        stopping: &Stopping,
    ) -> Workers {
        let mut workers = Workers {
            notifier,
            tracker: tracker.clone(),
            stopping: stopping.clone(),
            running: HashMap::new(),
        };
        for consumer in consumers {
            let waker = wakers
                .get(&consumer.name)
                .cloned()
                .unwrap_or_else(|| Arc::new(Notify::new()));
            workers.spawn(consumer, waker);
        }
        workers
    }

    /// Delivers to exactly `consumers` from now on; returns their wakers, for the engine.
    pub fn apply(&mut self, consumers: &[WebhookConfig]) -> Wakers {
        let mut old = std::mem::take(&mut self.running);
        for consumer in consumers {
            match old.remove(&consumer.name) {
                Some(worker) if same(&worker.consumer, consumer) => {
                    self.running.insert(consumer.name.clone(), worker);
                }
                Some(worker) => {
                    worker.stop.cancel();
                    self.spawn(consumer, worker.waker);
                }
                None => self.spawn(consumer, Arc::new(Notify::new())),
            }
        }
        for worker in old.into_values() {
            worker.stop.cancel();
        }
        self.wakers()
    }

    pub fn wakers(&self) -> Wakers {
        Arc::new(
            self.running
                .iter()
                .map(|(name, worker)| (name.clone(), worker.waker.clone()))
                .collect(),
        )
    }

    fn spawn(&mut self, consumer: &WebhookConfig, waker: Arc<Notify>) {
        let stop = self.stopping.stop.child_token();
        let stopping = Stopping {
            drain: self.stopping.drain.clone(),
            stop: stop.clone(),
        };
        let worker = self.notifier.clone();
        let config = consumer.clone();
        let wake = waker.clone();
        self.tracker
            .spawn(async move { worker.run(config, wake, stopping).await });
        // A new worker looks at the outbox at once: entries may wait from before.
        waker.notify_one();
        self.running.insert(
            consumer.name.clone(),
            Worker {
                consumer: consumer.clone(),
                waker,
                stop,
            },
        );
    }
}

/// Whether two configurations of a consumer deliver the same way.
fn same(a: &WebhookConfig, b: &WebhookConfig) -> bool {
    a.name == b.name
        && a.url == b.url
        && a.secrets == b.secrets
        && a.events == b.events
        && a.timeout == b.timeout
        && a.security == b.security
}

impl Notifier {
    async fn run(
        self,
        consumer: WebhookConfig,
        waker: Arc<tokio::sync::Notify>,
        stopping: Stopping,
    ) {
        loop {
            let store = self.store.clone();
            let name = consumer.name.clone();
            let page = match tokio::task::spawn_blocking(move || store.pending_outbox(&name, PAGE))
                .await
            {
                Ok(Ok(page)) => page,
                Ok(Err(error)) => {
                    tracing::error!(consumer = %consumer.name, %error, "reading the outbox failed");
                    if sleep_or_stop(FIRST_RETRY * 5, &stopping.stop).await {
                        return;
                    }
                    continue;
                }
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            };
            if page.is_empty() {
                tokio::select! {
                    () = waker.notified() => continue,
                    () = stopping.drain.cancelled() => return,
                    () = stopping.stop.cancelled() => return,
                }
            }
            for entry in page {
                match self.deliver(&consumer, &entry, &stopping.stop).await {
                    Outcome::Delivered | Outcome::Gone => {
                        let done = self.engine.delivered(consumer.name.clone(), entry.seq);
                        if done.await.is_err() {
                            return; // the engine stopped; the entry will be sent again
                        }
                    }
                    Outcome::Stopped => return,
                }
            }
        }
    }

    /// Sends one entry until the consumer takes it (or says it never will).
    async fn deliver(
        &self,
        consumer: &WebhookConfig,
        entry: &OutboxEntry,
        stop: &CancellationToken,
    ) -> Outcome {
        let mut attempt: u32 = 0;
        loop {
            let timestamp = self.clock.now().timestamp();
            let signature = signing::signature_header(
                &consumer.secrets,
                &entry.event_id,
                timestamp,
                entry.body.as_bytes(),
            );
            let request = self
                .client
                .post(consumer.url.clone())
                .timeout(consumer.timeout)
                .header(CONTENT_TYPE, "application/json")
                .header("webhook-id", &entry.event_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(entry.body.clone());
            let result = tokio::select! {
                result = request.send() => result,
                () = stop.cancelled() => return Outcome::Stopped,
            };
            let retry_after = match result {
                Ok(response) if response.status().is_success() => {
                    self.count(consumer, "success");
                    return Outcome::Delivered;
                }
                Ok(response) if response.status() == StatusCode::GONE => {
                    self.count(consumer, "gone");
                    tracing::warn!(consumer = %consumer.name, event = %entry.event_id, "consumer answered 410 Gone; event dropped");
                    return Outcome::Gone;
                }
                Ok(response) => {
                    tracing::warn!(consumer = %consumer.name, event = %entry.event_id, status = %response.status(), attempt, "webhook delivery failed; will retry");
                    (response.status() == StatusCode::TOO_MANY_REQUESTS)
                        .then(|| retry_after(response.headers()))
                        .flatten()
                }
                Err(error) => {
                    tracing::warn!(consumer = %consumer.name, event = %entry.event_id, %error, attempt, "webhook delivery failed; will retry");
                    None
                }
            };
            self.count(consumer, "retry");
            let delay = retry_after.unwrap_or_else(|| backoff(attempt));
            attempt = attempt.saturating_add(1);
            if sleep_or_stop(delay, stop).await {
                return Outcome::Stopped;
            }
        }
    }

    fn count(&self, consumer: &WebhookConfig, outcome: &str) {
        self.metrics
            .webhook_deliveries_total
            .with_label_values(&[&consumer.name, outcome])
            .inc();
    }
}

/// Exponential backoff with jitter: the n-th retry waits between half and all of
/// `min(1s × 2ⁿ, 10 min)`.
fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(MAX_RETRY);
    ceiling.mul_f64(rand::random_range(0.5..=1.0))
}

/// `Retry-After` in seconds (the HTTP-date form is rare for webhooks and is ignored),
/// capped so a consumer cannot park us for days.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY))
}

/// Sleeps; true if `stop` came first.
async fn sleep_or_stop(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = stop.cancelled() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..30 {
            let ceiling = FIRST_RETRY
                .saturating_mul(2u32.saturating_pow(attempt.min(20)))
                .min(MAX_RETRY);
            let delay = backoff(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert!(backoff(30) <= MAX_RETRY);
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY));
    }
}
