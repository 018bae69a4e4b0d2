//! The store's read paths on a store of 100,000 incidents (about 400,000 timeline
//! entries): (a) the first page of open P1–P2 incidents as `GET /api/v1/incidents`
//! reads it (the states through the store's index of active incidents), (b) one incident
//! with its timeline, (c) start-up: `Store::open` + `Store::load`, and (d) what one
//! incident's similar past incidents add. Targets: (a) < 5 ms, (b) < 2 ms, (c) < 2 s.
//! `benches/store_history.rs` measures the same reads on 1,000,000 incidents.
//!
//! The incidents are written through `Store::commit` in batches of 1,000. One in twenty
//! is active and P1 or P2, spread evenly over the ids (the worst case for a newest-first
//! scan); three in twenty are active P3–P5; the rest are resolved or closed.
//!
//! Run: `cargo bench --bench store`.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

mod fixtures;
use incidentd::domain::incident::{Incident, IncidentId, Kind, State, Tier};
use incidentd::domain::priority::Priority;
use incidentd::domain::signal::Signal;
use incidentd::store::{LIST_SCAN_BUDGET, Store};

const INCIDENTS: u64 = 100_000;
const PAGE: usize = 50;

fn incident(id: u64, now: DateTime<Utc>) -> Incident {
    let category = ["availability", "performance", "security"][(id % 3) as usize];
    let ticket = fixtures::ticket(id, Kind::Incident, category);
    let signal = Signal::from_ticket(IncidentId(id), ticket, Priority::P3, Tier::L1, "desk");
    let (mut incident, _) = Incident::open(IncidentId(id), &signal, now);
    let (state, priority) = fixtures::state_and_priority(id);
    incident.state = state;
    incident.priority = priority;
    if matches!(state, State::Resolved | State::Closed) {
        incident.resolution = Some("rolled back the deploy".to_owned());
        incident.resolved_at = Some(now + Duration::minutes(30));
    }
    if state == State::Closed {
        incident.closed_at = Some(now + Duration::minutes(90));
    }
    incident
}

/// Writes the incidents, four timeline entries each.
fn fill(store: &Store) {
    let start = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    fixtures::fill(store, INCIDENTS, |id| {
        incident(id, start + Duration::minutes(id as i64))
    });
}

/// The states of `GET /api/v1/incidents?state=open,acknowledged,on_hold&priority=P1,P2`,
/// which it gives the store besides its filter.
const ACTIVE: [State; 3] = [State::Open, State::Acknowledged, State::OnHold];

/// The filter `GET /api/v1/incidents?state=open,acknowledged,on_hold&priority=P1,P2`
/// builds.
fn open_p1_p2(incident: &Incident) -> bool {
    let states = Some([State::Open, State::Acknowledged, State::OnHold]);
    let priorities = Some([Priority::P1, Priority::P2]);
    let tiers: Option<Vec<Tier>> = None;
    let kinds: Option<Vec<Kind>> = None;
    let categories: Option<Vec<String>> = None;
    states.as_ref().is_none_or(|s| s.contains(&incident.state))
        && priorities
            .as_ref()
            .is_none_or(|p| p.contains(&incident.priority))
        && tiers.as_ref().is_none_or(|t| t.contains(&incident.tier))
        && kinds.as_ref().is_none_or(|k| k.contains(&incident.kind))
        && categories
            .as_ref()
            .is_none_or(|c| c.contains(&incident.category))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let store = Store::open(&path).unwrap();
    let started = std::time::Instant::now();
    fill(&store);
    eprintln!("wrote {INCIDENTS} incidents in {:.1?}", started.elapsed());

    c.bench_function("list first page of open P1-P2 (100k incidents)", |b| {
        b.iter(|| {
            let (page, next) = store
                .list_incidents_by_state(Some(&ACTIVE), None, PAGE, LIST_SCAN_BUDGET, open_p1_p2)
                .unwrap();
            assert_eq!(page.len(), PAGE);
            assert!(next.is_some());
        });
    });
    c.bench_function("get incident with timeline (100k incidents)", |b| {
        b.iter(|| {
            let (incident, timeline) = store
                .get_incident_with_timeline(IncidentId(54_321))
                .unwrap()
                .unwrap();
            assert_eq!(incident.id.0, 54_321);
            assert_eq!(timeline.len(), 4);
        });
    });
    // What `GET /api/v1/incidents/{id}` adds: the similar past incidents, from a scan of
    // the newest 5,000 incidents.
    let newest = store.get_incident(IncidentId(INCIDENTS)).unwrap().unwrap();
    c.bench_function("similar incidents (scan of the newest 5,000)", |b| {
        b.iter(|| {
            let similar = store.similar_incidents(&newest).unwrap();
            assert_eq!(similar.len(), 5);
        });
    });
    drop(store);

    let mut group = c.benchmark_group("start-up");
    group.sample_size(10);
    group.bench_function("open + load (100k incidents)", |b| {
        b.iter(|| start_up(&path));
    });
    group.finish();
}

fn start_up(path: &Path) {
    let store = Store::open(path).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.next_incident_id, INCIDENTS + 1);
}

criterion_group!(benches, bench);
criterion_main!(benches);
