//! Fan-out to status-page subscribers: the time from committing a public incident update
//! (an alert opening an incident) until the fan-out commit holding one queue entry per
//! confirmed subscriber is durable — what the subscription worker does after each such
//! commit. 10,000 confirmed email subscribers, all services; the target is under 1 s.
//!
//! Run: `cargo bench --bench fanout`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use incidentd::clock::SystemClock;
use incidentd::config::{AuthConfig, Config};
use incidentd::domain::alert::{Alert, AlertSource, AlertStatus};
use incidentd::engine::subscriptions::{Outcome, SubsAnswer, SubsOp};
use incidentd::engine::{Engine, EngineHandle};
use incidentd::metrics::Metrics;
use incidentd::store::{Batch, Channel, Store, Subscriber, SubscriptionCounters};
use tokio_util::sync::CancellationToken;

const SUBSCRIBERS: u64 = 10_000;

fn config(dir: &std::path::Path) -> Config {
    Config {
        path: dir.join("incidentd.yaml"),
        listen: "127.0.0.1:0".parse().unwrap(),
        external_url: None,
        storage_path: dir.join("bench.redb"),
        postgres: None,
        rule_files: Vec::new(),
        auth: AuthConfig::default(),
        webhooks: Vec::new(),
        probe_concurrency: 256,
        probe_duration_histogram: Default::default(),
        workflow: incidentd::domain::policy::WorkflowConfig::default(),
        probes: Vec::new(),
        rules: Vec::new(),
        http: Default::default(),
        alerts: Default::default(),
        status_page: Default::default(),
        mail: None,
    }
}

/// 10,000 confirmed email subscribers written straight into the store (one commit), as if
/// each had signed up and confirmed.
fn load_subscribers(store: &Store) {
    let now = Utc::now();
    let mut batch = Batch::default();
    for id in 1..=SUBSCRIBERS {
        batch.put_subscriber(&Subscriber {
            id,
            channel: Channel::Email,
            address: format!("subscriber-{id}@example.com"),
            services: Vec::new(),
            created_at: now,
            confirmed_at: Some(now),
            token: format!("{id:0>43}"),
            secret: None,
            confirmation_sent_at: Some(now),
        });
    }
    batch.set_subscription_counters(SubscriptionCounters {
        next_subscriber_id: SUBSCRIBERS + 1,
        next_update_seq: 0,
        next_notification_seq: 0,
    });
    store.commit(&batch).unwrap();
}

/// A firing alert on service `checkout`: a new public incident (a new `alertname` each
/// time), so an `incident.opened` update in the alert's commit.
fn alert(n: u64) -> Alert {
    Alert {
        source: AlertSource::ApiV2,
        status: AlertStatus::Firing,
        labels: BTreeMap::from([
            ("alertname".to_owned(), format!("Down{n}")),
            ("service".to_owned(), "checkout".to_owned()),
        ]),
        annotations: BTreeMap::new(),
        starts_at: None,
        ends_at: None,
        generator_url: None,
        group_key: None,
        dedup_key: None,
    }
}

/// The update committed, then fanned out: the time until both are durable.
async fn update_to_queue(engine: &EngineHandle, n: u64) -> Duration {
    let start = Instant::now();
    engine
        .alerts(vec![alert(n)], Duration::from_secs(10))
        .await
        .expect("committed");
    let queued = engine
        .subscriptions(SubsOp::FanOut)
        .await
        .expect("fanned out");
    let elapsed = start.elapsed();
    assert!(
        matches!(queued, SubsAnswer::Queued(n) if n as u64 == SUBSCRIBERS),
        "{queued:?}"
    );
    elapsed
}

/// Empties the queue (reported sent), so every round starts from the same store.
async fn drain(engine: &EngineHandle, store: &Store) {
    loop {
        let far = Utc::now() + chrono::Duration::days(1);
        let (due, _) = store.due_notifications(far, 4096).unwrap();
        if due.is_empty() {
            return;
        }
        let sent = due
            .into_iter()
            .map(|entry| Outcome::Sent {
                seq: entry.seq,
                channel: Channel::Email,
            })
            .collect();
        engine.subscriptions(SubsOp::Report(sent)).await.unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let store = Store::open(&config.storage_path).unwrap();
    load_subscribers(&store);
    let stop = CancellationToken::new();
    let (engine, _read, _task) = runtime.block_on(async {
        Engine::start(
            store.clone(),
            &config,
            Arc::new(SystemClock),
            Metrics::new(),
            Arc::new(HashMap::new()),
            stop.clone(),
            true,
        )
        .unwrap()
    });
    let mut group = c.benchmark_group("subscriber_fanout");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut n = 0;
    group.bench_function("10000_email_subscribers", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    total += update_to_queue(&engine, n).await;
                    drain(&engine, &store).await;
                }
                total
            })
        });
    });
    group.finish();
    stop.cancel();
}

criterion_group!(benches, bench);
criterion_main!(benches);
