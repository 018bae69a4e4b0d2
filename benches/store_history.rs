//! The store's reads on a long history: 1,000,000 stored incidents, 5% of them not closed
//! (one in twenty ids, spread evenly, so the active ones are as far apart as they get:
//! the worst case for a newest-first scan). Every incident has first-response and
//! resolution clocks moved through its workflow and four timeline entries; incident `n`
//! opened `n` minutes after 2026-01-01 (about two years in all).
//!
//! - start-up: `Store::open` + `Store::load`. Target: < 2 s.
//! - the first page (50) of `GET /api/v1/incidents?state=open`, and of a list without a
//!   filter.
//! - every active incident in pages of 500, as the status page reads them.
//! - `GET /api/v1/sla?window=30d`'s read and report.
//! - a month of the status page's history (`GET /history?month=…`, about 43,000 incidents
//!   opened that month): the newest 500 through `incidents_by_month.v1` when every one is
//!   shown, and the month's read budget when none is.
//! - the one-off upgrade of such a store from schema 1 (a copy of it without the indexes
//!   that schemas 2 and 3 added) when it is first opened.
//!
//! Filling 1,000,000 incidents takes a while, so the store is kept under
//! `target/bench-fixtures/`, named by its size and schema version, and reused by later
//! runs (it is written under a temporary name and renamed when complete). Reads are
//! measured with the file in the page cache.
//!
//! Run: `cargo bench --bench store_history`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use redb::{ReadableDatabase, TableDefinition, TableHandle};

// Shared with the other store benches; this one has its own mix of states.
#[allow(dead_code)]
mod fixtures;
use incidentd::domain::incident::{Incident, IncidentId, Kind, State, Tier};
use incidentd::domain::priority::Priority;
use incidentd::domain::signal::Signal;
use incidentd::domain::sla::{self, SlaPolicies};
use incidentd::store::{LIST_SCAN_BUDGET, Store};

const INCIDENTS: u64 = 1_000_000;
/// One incident in this many is not closed.
const ACTIVE_EVERY: u64 = 20;
const ACTIVE_STATES: [State; 4] = [
    State::Open,
    State::Acknowledged,
    State::OnHold,
    State::Resolved,
];
const PAGE: usize = 50;
/// The status page reads active incidents in pages of this many.
const STATUS_PAGE: usize = 500;
/// At most this many incidents on a month of the status page's history.
const HISTORY_PAGE: usize = 500;
/// The states the status page shows.
const ACTIVE: [State; 3] = [State::Open, State::Acknowledged, State::OnHold];

fn opened_at(id: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + Duration::minutes(id as i64)
}

/// "Now" for the SLA report: a day after the last incident opened.
fn now() -> DateTime<Utc> {
    opened_at(INCIDENTS) + Duration::days(1)
}

fn state_of(id: u64) -> (State, Priority) {
    if !id.is_multiple_of(ACTIVE_EVERY) {
        return (State::Closed, Priority::ALL[(id % 5) as usize]);
    }
    let k = id / ACTIVE_EVERY;
    (
        ACTIVE_STATES[(k % 4) as usize],
        Priority::ALL[(k / 4 % 5) as usize],
    )
}

/// Incident `id` as it stands, its clocks moved through its workflow.
fn incident(id: u64, policies: &SlaPolicies) -> Incident {
    let opened = opened_at(id);
    let category = ["availability", "performance", "security"][(id % 3) as usize];
    let ticket = fixtures::ticket(id, Kind::Incident, category);
    let (state, priority) = state_of(id);
    let signal = Signal::from_ticket(IncidentId(id), ticket, priority, Tier::L1, "desk");
    let (mut incident, _) = Incident::open(IncidentId(id), &signal, opened);
    sla::start(&mut incident, policies);
    fixtures::walk(&mut incident, id, state, opened, policies, false);
    incident
}

/// The store of 1,000,000 incidents: reused when a complete one of this schema exists.
fn fixture(policies: &SlaPolicies) -> PathBuf {
    fixtures::cached_store(&format!("store-history-{INCIDENTS}"), |store| {
        fixtures::fill(store, INCIDENTS, |id| incident(id, policies));
    })
}

/// The filter `GET /api/v1/incidents?state=open` builds (the store gets the states too).
fn state_open(incident: &Incident) -> bool {
    incident.state == State::Open
}

fn bench(c: &mut Criterion) {
    let policies = SlaPolicies::default();
    let path = fixture(&policies);

    let mut group = c.benchmark_group("start-up");
    group.sample_size(10);
    group.bench_function("open + load (1M incidents, 5% active)", |b| {
        b.iter(|| start_up(&path));
    });
    group.finish();

    let store = Store::open(&path).unwrap();
    let mut group = c.benchmark_group("list (1M incidents)");
    group.bench_function("first page, state=open", |b| {
        b.iter(|| {
            let (page, next) = store
                .list_incidents_by_state(
                    Some(&[State::Open]),
                    None,
                    PAGE,
                    LIST_SCAN_BUDGET,
                    state_open,
                )
                .unwrap();
            assert_eq!(page.len(), PAGE);
            assert!(next.is_some());
        });
    });
    group.bench_function("first page, no filter", |b| {
        b.iter(|| {
            let (page, next) = store.list_incidents(None, PAGE, |_| true).unwrap();
            assert_eq!(page.len(), PAGE);
            assert!(next.is_some());
        });
    });
    group.sample_size(10);
    group.bench_function("every active incident, pages of 500 (status page)", |b| {
        b.iter(|| {
            let mut before = None;
            let mut count = 0;
            loop {
                let (page, next) = store
                    .list_incidents_by_state(
                        Some(&ACTIVE),
                        before,
                        STATUS_PAGE,
                        LIST_SCAN_BUDGET,
                        |_| true,
                    )
                    .unwrap();
                count += page.len();
                match next {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
            assert_eq!(count as u64, INCIDENTS / ACTIVE_EVERY / 4 * 3);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("sla report (1M incidents)");
    group.sample_size(10);
    group.bench_function("window=30d: read + report", |b| {
        b.iter(|| {
            let clocks = store
                .incident_clocks_since(now() - TimeDelta::days(30))
                .unwrap();
            let report = incidentd::sla_report::report(
                clocks.iter().map(incidentd::sla_report::Clocks::from),
                &policies,
                TimeDelta::days(30),
                now(),
            );
            assert!(report.mean_resolution.resolved > 0);
        });
    });
    group.finish();
    let mut group = c.benchmark_group("history month page (1M incidents)");
    group.sample_size(10);
    let month = opened_at(INCIDENTS / 2);
    let month = {
        use chrono::Datelike;
        let start = month
            .with_day(1)
            .unwrap()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        start..start.checked_add_months(chrono::Months::new(1)).unwrap()
    };
    group.bench_function("newest 500 of a month, all shown", |b| {
        b.iter(|| {
            let page = store
                .incidents_in_month(month.clone(), HISTORY_PAGE, LIST_SCAN_BUDGET, |_| true)
                .unwrap();
            assert_eq!(page.incidents.len(), HISTORY_PAGE);
        });
    });
    group.bench_function("a month none of which is shown (read budget)", |b| {
        b.iter(|| {
            let page = store
                .incidents_in_month(month.clone(), HISTORY_PAGE, LIST_SCAN_BUDGET, |_| false)
                .unwrap();
            assert!(page.incidents.is_empty() && page.unread);
        });
    });
    group.bench_function("is anything older (previous-month link)", |b| {
        b.iter(|| assert!(store.opened_before(month.start).unwrap()));
    });
    group.finish();
    // Closed, so that its copies are clean.
    drop(store);

    let mut group = c.benchmark_group("upgrade");
    group.sample_size(10);
    let copy = path.with_extension("redb.schema-1");
    group.bench_function(
        "open a schema-1 store (1M incidents): build the indexes",
        |b| {
            b.iter_batched(
                || schema_1_copy(&path, &copy),
                |()| Store::open(&copy).unwrap(),
                BatchSize::PerIteration,
            );
        },
    );
    group.finish();
    // Absent when the upgrade was filtered out.
    let _ = std::fs::remove_file(&copy);
}

/// A copy of the store as schema 1 left it: the indexes schemas 2 and 3 added are dropped
/// and the version set back.
fn schema_1_copy(path: &Path, copy: &Path) {
    std::fs::copy(path, copy).unwrap();
    let db = redb::Database::open(copy).unwrap();
    let txn = db.begin_write().unwrap();
    for table in [
        "incidents_active.v1",
        "incidents_by_sla_stop.v1",
        "incident_sla_stop.v1",
        "silences_by_end.v1",
    ] {
        let definition: TableDefinition<u64, ()> = TableDefinition::new(table);
        assert!(txn.delete_table(definition).unwrap(), "{table} exists");
    }
    let by_month: TableDefinition<(i32, u64), ()> = TableDefinition::new("incidents_by_month.v1");
    assert!(
        txn.delete_table(by_month).unwrap(),
        "incidents_by_month.v1 exists"
    );
    let meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
    txn.open_table(meta)
        .unwrap()
        .insert("schema_version", 1)
        .unwrap();
    txn.commit().unwrap();
    drop(db);
    // Nothing of schemas 2 and 3 is left.
    let db = redb::Database::open(copy).unwrap();
    let txn = db.begin_read().unwrap();
    let left: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    for gone in [
        "incidents_active.v1",
        "incidents_by_month.v1",
        "silences_by_end.v1",
    ] {
        assert!(!left.iter().any(|t| t == gone), "{gone} is left");
    }
}

fn start_up(path: &Path) {
    let store = Store::open(path).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.incidents.len() as u64, INCIDENTS / ACTIVE_EVERY);
}

criterion_group!(benches, bench);
criterion_main!(benches);
