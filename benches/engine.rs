//! The engine's durable commit path: incident updates per second with 1, 8 and 64
//! concurrent callers. Every call is a probe result that flips its rule (fire → open an
//! incident, recover → resolve it) and waits until the change is committed to redb with
//! `Durability::Immediate`. Group commit is what lets many callers share one fsync.
//!
//! The same on PostgreSQL (one replica, unfenced, on the server `INCIDENTD_TEST_POSTGRES`
//! names, a fresh database per case), side by side in the same run: `redb/N` and
//! `postgres/N`; without a server the PostgreSQL cases are skipped with a line.
//!
//! Run: `cargo bench --bench engine`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use incidentd::clock::SystemClock;
use incidentd::config::{
    AuthConfig, Config, HttpProbe, IncidentTemplate, ProbeConfig, ProbeTarget, RuleConfig,
};
use incidentd::domain::condition::Condition;
use incidentd::domain::observation::Observation;
use incidentd::domain::priority::Level;
use incidentd::engine::{Engine, EngineHandle, ProbeRun};
use incidentd::metrics::Metrics;
use incidentd::store::Store;
use tokio_util::sync::CancellationToken;

const CALLERS: [usize; 3] = [1, 8, 64];

fn config(callers: usize, dir: &std::path::Path) -> Config {
    let probes = (0..callers)
        .map(|i| ProbeConfig {
            name: format!("p{i}"),
            interval: Duration::from_secs(10),
            confirm_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            labels: BTreeMap::new(),
            target: ProbeTarget::Http(HttpProbe {
                url: "http://127.0.0.1:1/".parse().unwrap(),
                method: reqwest::Method::GET,
                headers: BTreeMap::new(),
                body: None,
                tls_verify: true,
                follow_redirects: false,
            }),
        })
        .map(Arc::new)
        .collect();
    let rules = (0..callers)
        .map(|i| RuleConfig {
            name: format!("r{i}"),
            probe: format!("p{i}"),
            when: Condition::parse("[STATUS] != 200").unwrap(),
            after: 1,
            recover_after: 1,
            for_: None,
            auto_resolve: true,
            depends_on: Vec::new(),
            flapping_changes: 4,
            flapping_window: 20,
            maintenance: Vec::new(),
            incident: IncidentTemplate {
                title: None,
                category: "availability".to_owned(),
                impact: Level::High,
                urgency: Level::Medium,
            },
        })
        .map(Arc::new)
        .collect();
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
        probes,
        rules,
        http: Default::default(),
        alerts: Default::default(),
        status_page: Default::default(),
        mail: None,
    }
}

fn observation(status: u16) -> Observation {
    Observation {
        connected: true,
        status: Some(status),
        response_time: Duration::from_millis(3),
        ..Observation::new(Utc::now())
    }
}

/// One caller: `calls` probe results alternating failure and success.
async fn caller(engine: EngineHandle, probe: String, calls: u64) {
    for n in 0..calls {
        let status = if n % 2 == 0 { 503 } else { 200 };
        let observation = observation(status);
        engine
            .run(ProbeRun {
                probe: probe.clone(),
                at: observation.at,
                results: vec![(BTreeMap::new(), observation)],
                complete: false,
            })
            .await
            .expect("committed");
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("engine_durable_updates");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let cases = CALLERS
        .into_iter()
        .map(|callers| ("redb", callers))
        .chain(CALLERS.into_iter().map(|callers| ("postgres", callers)));
    for (backend, callers) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = config(callers, dir.path());
        // Kept until the case is over: the database is dropped with it.
        let mut database = None;
        let store = if backend == "redb" {
            Store::open(&config.storage_path).unwrap()
        } else {
            let Some(fresh) = incidentd::store::kv::postgres::testing::fresh_database() else {
                continue;
            };
            let store = Store::open_postgres_unfenced(&fresh.config()).unwrap();
            database = Some(fresh);
            store
        };
        let stop = CancellationToken::new();
        let (engine, _read, task) = runtime.block_on(async {
            Engine::start(
                store,
                &config,
                Arc::new(SystemClock),
                Metrics::new(),
                Arc::new(HashMap::new()),
                stop.clone(),
                true,
            )
            .unwrap()
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new(backend, callers), |b| {
            b.iter_custom(|iters| {
                // Round up to whole rounds of `callers` calls; report time per call.
                let per_caller = iters.div_ceil(callers as u64).max(1);
                let total = per_caller * callers as u64;
                let elapsed = runtime.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..callers)
                        .map(|i| tokio::spawn(caller(engine.clone(), format!("p{i}"), per_caller)))
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    start.elapsed()
                });
                elapsed.mul_f64(iters as f64 / total as f64)
            });
        });
        stop.cancel();
        runtime.block_on(task).unwrap();
        drop(database);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
