//! The store's own contract: what a commit writes is what the reads find, indexes included,
//! and stores of an older layout open with the same content.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::domain::incident::{Reporter, Ticket, Tier};
use crate::domain::priority::Level;
use crate::domain::signal::Signal;
use crate::domain::sla::SlaClock;
use crate::domain::suppression::{Matcher, Silence};

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + TimeDelta::minutes(minutes)
}

/// Incident `id`, opened `id` minutes after the start, standing in `state`.
fn incident(id: u64, state: State) -> Incident {
    let ticket = Ticket {
        title: format!("checkout slow ({id})"),
        description: "p99 above 2s".to_owned(),
        reporter: Reporter {
            name: "Ana".to_owned(),
            contact: "ana@example.com".to_owned(),
        },
        kind: Kind::Incident,
        category: "performance".to_owned(),
        impact: Level::Medium,
        urgency: Level::Medium,
        service: Some("checkout".to_owned()),
        labels: BTreeMap::new(),
    };
    let opened = at(i64::try_from(id).unwrap());
    let (mut incident, _) = Incident::open(
        IncidentId(id),
        &Signal::from_ticket(IncidentId(id), ticket, Priority::P3, Tier::L1, "desk"),
        opened,
    );
    incident.state = state;
    if state == State::Closed {
        incident.closed_at = Some(opened + TimeDelta::hours(2));
    }
    incident
}

fn put(store: &Store, incidents: &[Incident]) {
    let mut batch = Batch::default();
    for incident in incidents {
        batch.put_incident(incident);
    }
    store.commit(&batch).unwrap();
}

/// The typed tables of layouts 1 to 3, to write a store as those versions did.
mod legacy {
    use redb::TableDefinition;

    pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    pub const INCIDENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("incidents.v1");
    pub const TIMELINE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("timeline.v1");
    pub const DETECTORS: TableDefinition<&str, &[u8]> = TableDefinition::new("detectors.v1");
    pub const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbox.v1");
    pub const TIMERS: TableDefinition<(i64, u64, &str), ()> = TableDefinition::new("timers.v1");
    pub const SILENCES: TableDefinition<u64, &[u8]> = TableDefinition::new("silences.v1");
}

/// Changes the file at `path` behind the store's back, as an older version or a failure
/// would have left it.
fn edit_file(path: &Path, edit: impl FnOnce(&dyn RawWrite)) {
    let db = Database::open(path).unwrap();
    let txn = kv::redb::Write(db.begin_write().unwrap());
    edit(&txn);
    Box::new(txn).commit().unwrap();
}

/// Where a test's store is: the shared tests ([`on_both`]) run on a redb file and on a
/// PostgreSQL database of their own.
enum Place {
    File(tempfile::TempDir),
    Postgres(kv::postgres::testing::TestDatabase),
}

impl Place {
    /// The store there, opened again on each call (a restart).
    fn open(&self) -> Store {
        match self {
            Place::File(dir) => Store::open(&dir.path().join("incidentd.redb")).unwrap(),
            Place::Postgres(database) => Store::open_postgres_unfenced(&database.config()).unwrap(),
        }
    }
}

/// A test of the store's contract, run on both backends: `name::redb` and
/// `name::postgres` (skipped, with a line, without a PostgreSQL server; failed instead when
/// `INCIDENTD_REQUIRE_INTEROP=1`).
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn redb() {
                super::$name(&super::Place::File(tempfile::tempdir().unwrap()));
            }

            #[test]
            fn postgres() {
                if let Some(database) = crate::store::kv::postgres::testing::fresh_database() {
                    super::$name(&super::Place::Postgres(database));
                }
            }
        }
    )*};
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("incidentd.redb")).unwrap();
    (dir, store)
}

/// The ids in `incidents_active.v1`.
fn indexed_active(store: &Store) -> Vec<u64> {
    let txn = store.begin_read().unwrap();
    let active = txn.open(INCIDENTS_ACTIVE).unwrap();
    active.iter().unwrap().map(|r| r.unwrap().0).collect()
}

/// The ids of the incidents `load` returns.
fn loaded(store: &Store) -> Vec<u64> {
    let mut ids: Vec<u64> = (store.load().unwrap().incidents.iter())
        .map(|i| i.id.0)
        .collect();
    ids.sort_unstable();
    ids
}

fn schema_of(store: &Store) -> Option<u64> {
    let txn = store.begin_read().unwrap();
    let meta = txn.open(META).unwrap();
    meta.get(META_SCHEMA).unwrap()
}

fn the_active_index_follows_open_closed_reopened(place: &Place) {
    let store = place.open();
    put(
        &store,
        &[
            incident(1, State::Open),
            incident(2, State::Closed),
            incident(3, State::Resolved),
        ],
    );
    assert_eq!(indexed_active(&store), [1, 3]);
    assert_eq!(loaded(&store), [1, 3]);

    put(&store, &[incident(1, State::Closed)]);
    assert_eq!(indexed_active(&store), [3]);
    assert_eq!(loaded(&store), [3]);

    // Back from closed (the store follows whatever the domain stores).
    put(&store, &[incident(1, State::Acknowledged)]);
    assert_eq!(indexed_active(&store), [1, 3]);
    assert_eq!(loaded(&store), [1, 3]);

    // The last put of an id in a batch is the one indexed.
    let mut batch = Batch::default();
    batch.put_incident(&incident(3, State::Acknowledged));
    batch.put_incident(&incident(3, State::Closed));
    store.commit(&batch).unwrap();
    assert_eq!(indexed_active(&store), [1]);

    drop(store);
    let store = place.open();
    assert_eq!(loaded(&store), [1]);
    let got = store.load().unwrap();
    assert_eq!(got.incidents[0], incident(1, State::Acknowledged));
}

/// Every page of a list, walked by its cursors: the ids of each page.
fn pages(
    store: &Store,
    states: Option<&[State]>,
    limit: usize,
    filter: impl Fn(&Incident) -> bool,
) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let (page, next) = store
            .list_incidents_by_state(states, before, limit, usize::MAX, &filter)
            .unwrap();
        let ids: Vec<u64> = page.iter().map(|i| i.id.0).collect();
        // The cursor is the page's last id, present exactly when more follow.
        if let Some(next) = next {
            assert_eq!(Some(&next), ids.last());
        }
        pages.push(ids);
        match next {
            Some(next) => before = Some(next),
            None => return pages,
        }
    }
}

#[test]
fn lists_by_state_page_like_a_filter_on_the_state() {
    const STATES: [State; 5] = [
        State::Open,
        State::Acknowledged,
        State::OnHold,
        State::Resolved,
        State::Closed,
    ];
    let (_dir, store) = temp_store();
    let all: Vec<Incident> = (1..=60)
        .map(|id| {
            // Mostly closed, as a long history is.
            let state = if id % 3 == 0 {
                STATES[(id / 3 % 4) as usize]
            } else {
                State::Closed
            };
            let mut incident = incident(id, state);
            incident.priority = Priority::ALL[(id % 5) as usize];
            incident
        })
        .collect();
    put(&store, &all);

    #[track_caller]
    fn check(store: &Store, states: &[State], limit: usize, priority: Option<Priority>) {
        let keep = |i: &Incident| priority.is_none_or(|p| i.priority == p);
        let got = pages(store, Some(states), limit, keep);
        let by_filter = pages(store, None, limit, |i| states.contains(&i.state) && keep(i));
        assert_eq!(got, by_filter);
        let newest_first: Vec<u64> = (1..=60)
            .rev()
            .filter(|&id| {
                let i = store.get_incident(IncidentId(id)).unwrap().unwrap();
                states.contains(&i.state) && keep(&i)
            })
            .collect();
        assert_eq!(got.concat(), newest_first);
        assert!(got.iter().rev().skip(1).all(|page| page.len() == limit));
    }

    check(&store, &[State::Open], 2, None);
    check(&store, &[State::Open], 50, None);
    check(&store, &[State::Acknowledged, State::OnHold], 3, None);
    check(&store, &[State::Resolved], 1, None);
    check(&store, &STATES[..4], 4, None);
    check(&store, &STATES[..4], 4, Some(Priority::P1));
    check(&store, &[State::Closed], 7, None);
    check(&store, &[State::Open, State::Closed], 5, Some(Priority::P3));
    check(&store, &[], 5, None);
}

/// A filter few incidents pass reads at most the budget per request: short (even empty)
/// pages with cursors, which together list exactly what one unbounded walk lists.
fn a_list_reads_at_most_its_budget_and_goes_on_from_its_cursor(place: &Place) {
    let store = place.open();
    let all: Vec<Incident> = (1..=100)
        .map(|id| {
            let mut incident = incident(id, State::Closed);
            // Rare: ids 7, 35, 63, 91 are P1.
            incident.priority = if id % 28 == 7 {
                Priority::P1
            } else {
                Priority::P4
            };
            incident
        })
        .collect();
    put(&store, &all);
    let rare = |i: &Incident| i.priority == Priority::P1;

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let (page, next) = store
            .list_incidents_by_state(None, before, 50, 30, rare)
            .unwrap();
        pages.push(page.iter().map(|i| i.id.0).collect::<Vec<_>>());
        match next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    // 100 incidents, 30 read per request: 100..71, 70..41, 40..11, 10..1.
    assert_eq!(pages, [vec![91], vec![63], vec![35], vec![7]]);

    // A budget the walk does not reach changes nothing.
    let (page, next) = store
        .list_incidents_by_state(None, None, 50, 100, rare)
        .unwrap();
    assert_eq!(
        page.iter().map(|i| i.id.0).collect::<Vec<_>>(),
        [91, 63, 35, 7]
    );
    assert_eq!(next, None, "nothing left unread");
    // A page that fills before the budget ends at its last incident, as without one.
    let (page, next) = store
        .list_incidents_by_state(None, None, 2, 1000, rare)
        .unwrap();
    assert_eq!(page.iter().map(|i| i.id.0).collect::<Vec<_>>(), [91, 63]);
    assert_eq!(next, Some(63));
}

/// A clock started at `started`, stopped at `stopped` or still running.
fn clock(started: DateTime<Utc>, stopped: Option<DateTime<Utc>>) -> SlaClock {
    let mut clock = SlaClock::start(Priority::P3, TimeDelta::hours(8), started);
    if let Some(stopped) = stopped {
        clock.running_since = None;
        clock.elapsed = stopped - started;
        clock.wall_elapsed = clock.elapsed;
        clock.stopped_at = Some(stopped);
        clock.breached = clock.elapsed > clock.target;
    }
    clock
}

/// Incident `id` with clocks of every kind: none, both stopped, one still running, one
/// paused; stopped at times spread over two days.
fn incident_with_clocks(id: u64) -> Incident {
    let mut incident = incident(id, State::Resolved);
    let opened = incident.opened_at;
    let responded = Some(opened + TimeDelta::minutes(30));
    let resolved = Some(opened + TimeDelta::hours(i64::try_from(id % 48).unwrap()));
    match id % 4 {
        0 => incident.sla = SlaClocks::default(),
        1 => {
            incident.sla.first_response = Some(clock(opened, responded));
            incident.sla.resolution = Some(clock(opened, resolved));
        }
        2 => {
            incident.sla.first_response = Some(clock(opened, responded));
            incident.sla.resolution = Some(clock(opened, None));
        }
        _ => {
            let mut paused = clock(opened, None);
            paused.running_since = None;
            incident.sla.resolution = Some(paused);
        }
    }
    incident
}

fn report(
    clocks: &[(Kind, Priority, SlaClocks)],
    window: TimeDelta,
    now: DateTime<Utc>,
) -> crate::sla_report::Report {
    crate::sla_report::report(
        clocks.iter().map(crate::sla_report::Clocks::from),
        &crate::domain::sla::SlaPolicies::default(),
        window,
        now,
    )
}

fn the_sla_report_over_a_window_reads_only_what_it_counts(place: &Place) {
    let store = place.open();
    let all: Vec<Incident> = (1..=200).map(incident_with_clocks).collect();
    put(&store, &all);
    let now = at(200) + TimeDelta::days(2);
    let everything = store.incident_clocks().unwrap();
    for window in [
        TimeDelta::milliseconds(1),
        TimeDelta::hours(1),
        TimeDelta::hours(6),
        TimeDelta::hours(30),
        TimeDelta::days(30),
    ] {
        let since = store.incident_clocks_since(now - window).unwrap();
        assert_eq!(
            report(&since, window, now),
            report(&everything, window, now),
            "window {window}"
        );
    }
    // A short window reads the incidents with clocks still counting and a few more.
    let counting = all
        .iter()
        .filter(|i| i.sla.iter().any(|(_, c)| c.stopped_at.is_none()))
        .count();
    let short = store
        .incident_clocks_since(now - TimeDelta::hours(6))
        .unwrap();
    assert!(short.len() >= counting && short.len() < counting + 10);
}

fn the_sla_index_follows_clocks_that_stop_resume_and_go(place: &Place) {
    let store = place.open();
    let mut one = incident(1, State::Acknowledged);
    let opened = one.opened_at;
    one.sla.resolution = Some(clock(opened, None));
    put(&store, &[one.clone()]);
    let found = |from: DateTime<Utc>| store.incident_clocks_since(from).unwrap().len();
    assert_eq!(found(opened + TimeDelta::days(365)), 1);

    let stopped = opened + TimeDelta::hours(3);
    one.sla.resolution = Some(clock(opened, Some(stopped)));
    put(&store, &[one.clone()]);
    assert_eq!(found(stopped - TimeDelta::milliseconds(1)), 1);
    assert_eq!(found(stopped + TimeDelta::milliseconds(1)), 0);

    // Reopened: the clock counts again.
    one.sla.resolution = Some(clock(opened, None));
    put(&store, &[one.clone()]);
    assert_eq!(found(opened + TimeDelta::days(365)), 1);

    one.sla = SlaClocks::default();
    put(&store, &[one]);
    assert_eq!(found(DateTime::<Utc>::MIN_UTC), 0);
    let txn = store.begin_read().unwrap();
    assert_eq!(txn.open(INCIDENT_SLA_STOP).unwrap().len().unwrap(), 0);
    assert_eq!(txn.open(INCIDENTS_BY_SLA_STOP).unwrap().len().unwrap(), 0);
}

fn silence(id: u64, starts: i64, ends: i64) -> Silence {
    Silence {
        id,
        matchers: vec![Matcher::equal("service", "checkout")],
        starts_at: at(starts),
        ends_at: at(ends),
        created_by: "ana".to_owned(),
        comment: "deploy".to_owned(),
    }
}

fn silence_ids(loaded: &Loaded) -> Vec<u64> {
    let mut ids: Vec<u64> = loaded.silences.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    ids
}

fn start_up_at_a_time_reads_the_silences_not_ended(place: &Place) {
    let store = place.open();
    let mut batch = Batch::default();
    for (id, starts, ends) in [(1, 0, 60), (2, 0, 120), (3, 100, 200), (4, 300, 400)] {
        batch.put_silence(&silence(id, starts, ends));
    }
    store.commit(&batch).unwrap();

    #[track_caller]
    fn check(store: &Store, now: i64, want: &[u64]) {
        assert_eq!(silence_ids(&store.load_at(at(now)).unwrap()), want);
    }
    check(&store, 0, &[1, 2, 3, 4]);
    check(&store, 60, &[2, 3, 4]);
    check(&store, 150, &[3, 4]);
    check(&store, 400, &[]);
    assert_eq!(silence_ids(&store.load().unwrap()), [1, 2, 3, 4]);

    // Ended early (the engine writes it again with the new end), and one made longer.
    let mut batch = Batch::default();
    batch.put_silence(&silence(3, 100, 130));
    batch.put_silence(&silence(1, 0, 500));
    store.commit(&batch).unwrap();
    check(&store, 150, &[1, 4]);
    let loaded = store.load_at(at(140)).unwrap();
    assert_eq!(loaded.silences[0], silence(4, 300, 400));
    assert_eq!(loaded.silences[1], silence(1, 0, 500));
    let txn = store.begin_read().unwrap();
    assert_eq!(txn.open(SILENCES_BY_END).unwrap().len().unwrap(), 4);
}

fn maintenance(id: u64, starts: i64, ends: i64, cancelled: Option<i64>) -> Maintenance {
    Maintenance {
        id,
        title: format!("upgrade {id}"),
        message: "Checkout may be slow.".to_owned(),
        services: vec!["checkout".to_owned()],
        starts_at: at(starts),
        ends_at: at(ends),
        created_by: "alice".to_owned(),
        created_at: at(0),
        cancelled_at: cancelled.map(at),
    }
}

fn start_up_reads_the_maintenances_not_over_or_recently_over(place: &Place) {
    let store = place.open();
    let day = 24 * 60;
    let mut batch = Batch::default();
    batch.put_maintenance(&maintenance(1, 0, 60, None));
    batch.put_maintenance(&maintenance(2, 100, 200, None));
    batch.put_maintenance(&maintenance(3, 100, 200, Some(10)));
    batch.set_counters(Counters {
        next_maintenance_id: 4,
        ..Counters::default()
    });
    store.commit(&batch).unwrap();

    #[track_caller]
    fn check(store: &Store, now: i64, want: &[u64]) {
        let mut ids: Vec<u64> = store
            .load_at(at(now))
            .unwrap()
            .maintenances
            .iter()
            .map(|m| m.id)
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, want, "at {now}");
    }
    check(&store, 0, &[1, 2, 3]);
    // 90 days after each is over (cancelled at 10, ended at 60, at 200).
    check(&store, 10 + 90 * day, &[1, 2]);
    check(&store, 60 + 90 * day, &[2]);
    check(&store, 200 + 90 * day, &[]);
    let loaded = store.load().unwrap();
    assert_eq!(loaded.maintenances.len(), 3, "all, without a time");
    assert_eq!(loaded.next_maintenance_id, 4);
    assert_eq!(loaded.maintenances[2], maintenance(3, 100, 200, Some(10)));

    // Ended early: written again, its index entry moves.
    let mut batch = Batch::default();
    batch.put_maintenance(&maintenance(2, 100, 150, None));
    store.commit(&batch).unwrap();
    check(&store, 150 + 90 * day, &[]);
    check(&store, 149 + 90 * day, &[2]);
    assert_eq!(
        store.get_maintenance(2).unwrap(),
        Some(maintenance(2, 100, 150, None))
    );
    assert_eq!(store.get_maintenance(9).unwrap(), None);
    let txn = store.begin_read().unwrap();
    assert_eq!(txn.open(MAINTENANCES_BY_OVER).unwrap().len().unwrap(), 3);
}

/// What schema 1 wrote: its tables, without an index, and its version number.
fn write_schema_1_store(path: &std::path::Path, incidents: &[Incident], silences: &[Silence]) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(legacy::META).unwrap();
        meta.insert(META_SCHEMA, 1).unwrap();
        let next = incidents.iter().map(|i| i.id.0).max().unwrap_or(0) + 1;
        meta.insert(META_NEXT_INCIDENT, next).unwrap();
        let mut table = txn.open_table(legacy::INCIDENTS).unwrap();
        for incident in incidents {
            let bytes = encode(&IncidentV1::from(incident));
            table.insert(incident.id.0, bytes.as_slice()).unwrap();
        }
        txn.open_table(legacy::TIMELINE).unwrap();
        txn.open_table(legacy::DETECTORS).unwrap();
        txn.open_table(legacy::OUTBOX).unwrap();
        let mut table = txn.open_table(legacy::SILENCES).unwrap();
        for silence in silences {
            let bytes = encode(&SilenceV1::from(silence));
            table.insert(silence.id, bytes.as_slice()).unwrap();
        }
        txn.open_table(legacy::TIMERS).unwrap();
    }
    txn.commit().unwrap();
}

/// A silence as the previous version wrote it, byte for byte: equality matchers as a map.
const SILENCE_BEFORE_OPERATORS: &str = r#"{"id":7,"matchers":{"service":"checkout","team":"pay"},"starts_at":"2026-01-01T00:00:00Z","ends_at":"2026-01-01T02:00:00Z","created_by":"ana","comment":"deploy"}"#;

#[test]
fn a_silence_stored_before_operators_loads_and_still_matches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    write_schema_1_store(&path, &[], &[]);
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(legacy::SILENCES)
            .unwrap()
            .insert(7, SILENCE_BEFORE_OPERATORS.as_bytes())
            .unwrap();
        txn.commit().unwrap();
    }

    let store = Store::open(&path).unwrap();
    let loaded = store.load_at(at(60)).unwrap();
    assert_eq!(silence_ids(&loaded), [7]);
    let silence = &loaded.silences[0];
    assert_eq!(
        silence.matchers,
        [
            Matcher::equal("service", "checkout"),
            Matcher::equal("team", "pay")
        ]
    );
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let checkout = labels(&[("service", "checkout"), ("team", "pay"), ("rule", "down")]);
    assert!(silence.matches(&checkout, at(60)));
    assert!(!silence.matches(&labels(&[("service", "checkout")]), at(60)));
    // Written again unchanged (ended early), it keeps the form a previous version reads.
    let mut batch = Batch::default();
    batch.put_silence(&Silence {
        ends_at: at(90),
        ..silence.clone()
    });
    store.commit(&batch).unwrap();
    let txn = store.begin_read().unwrap();
    let stored = txn.open(SILENCES).unwrap().get(7_u64).unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&stored).unwrap(),
        SILENCE_BEFORE_OPERATORS.replace("02:00:00", "01:30:00")
    );
}

fn silences_with_operators_are_stored_as_alertmanager_matchers(place: &Place) {
    let store = place.open();
    let matchers = vec![
        Matcher::parse(r#"service=~"check.*|pay""#).unwrap(),
        Matcher::parse("env!=staging").unwrap(),
        Matcher::parse("team!~db").unwrap(),
        Matcher::equal("region", "eu"),
    ];
    let mut batch = Batch::default();
    batch.put_silence(&Silence {
        matchers: matchers.clone(),
        ..silence(1, 0, 60)
    });
    store.commit(&batch).unwrap();

    let loaded = store.load_at(at(30)).unwrap();
    assert_eq!(loaded.silences[0].matchers, matchers);
    let labels = BTreeMap::from([
        ("service".to_owned(), "checkout".to_owned()),
        ("region".to_owned(), "eu".to_owned()),
    ]);
    assert!(loaded.silences[0].matches(&labels, at(30)));
    let txn = store.begin_read().unwrap();
    let stored = txn.open(SILENCES).unwrap().get(1_u64).unwrap().unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(
        stored["matchers"][0],
        serde_json::json!({"name": "service", "value": "check.*|pay", "isRegex": true, "isEqual": true})
    );
    assert_eq!(stored["matchers"][2]["isEqual"], false);
}

#[test]
fn a_schema_1_store_is_indexed_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let closed_with_clocks = |id| {
        let mut incident = incident_with_clocks(id);
        incident.state = State::Closed;
        incident.closed_at = Some(incident.opened_at + TimeDelta::days(3));
        incident
    };
    write_schema_1_store(
        &path,
        &[
            incident(1, State::Closed),
            incident(2, State::Open),
            incident(3, State::Resolved),
            incident(4, State::Closed),
            incident(5, State::OnHold),
            // A resolution clock still running; clocks stopped 9 hours after opening.
            closed_with_clocks(6),
            closed_with_clocks(9),
        ],
        &[silence(1, 0, 60), silence(2, 0, 120)],
    );

    let store = Store::open(&path).unwrap();
    assert_eq!(schema_of(&store), Some(SCHEMA_VERSION));
    assert_eq!(indexed_active(&store), [2, 3, 5]);
    let month = at(0)..at(60);
    let by_month = store.incidents_in_month(month, 10, 100, |_| true).unwrap();
    assert_eq!(month_ids(&by_month), [9, 6, 5, 4, 3, 2, 1]);
    let got = store.load().unwrap();
    assert_eq!(got.next_incident_id, 10);
    assert_eq!(got.incidents.len(), 3);
    assert_eq!(got.incidents[1], incident(3, State::Resolved));
    assert_eq!(silence_ids(&got), [1, 2]);
    assert_eq!(silence_ids(&store.load_at(at(90)).unwrap()), [2]);
    let clocks_since = |from| -> Vec<SlaClocks> {
        let found = store.incident_clocks_since(from).unwrap();
        found.into_iter().map(|(_, _, clocks)| clocks).collect()
    };
    assert_eq!(
        clocks_since(at(9) + TimeDelta::hours(9) - TimeDelta::seconds(1)),
        [closed_with_clocks(9).sla, closed_with_clocks(6).sla]
    );
    assert_eq!(
        clocks_since(at(9) + TimeDelta::hours(9) + TimeDelta::seconds(1)),
        [closed_with_clocks(6).sla]
    );

    // From then on, commits keep the indexes.
    put(
        &store,
        &[incident(2, State::Closed), incident(10, State::Open)],
    );
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(loaded(&store), [3, 5, 10]);
}

#[test]
fn a_store_of_a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(legacy::META)
            .unwrap()
            .insert(META_SCHEMA, SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    match Store::open(&path) {
        Err(StoreError::NewerSchema { found }) => assert_eq!(found, SCHEMA_VERSION + 1),
        Err(other) => panic!("expected NewerSchema, got {other}"),
        Ok(_) => panic!("a store of a newer schema was opened"),
    }
    use redb::{ReadableDatabase, TableHandle};
    let db = Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    assert_eq!(tables, ["meta"]);
}

#[test]
fn every_timer_kind_survives_its_key() {
    for kind in TimerKind::ALL {
        let timer = Timer {
            due: chrono::DateTime::from_timestamp_millis(1_767_225_600_123).unwrap(),
            incident: IncidentId(7),
            kind,
        };
        let (due, incident, kind) = timer_key(&timer);
        assert_eq!(timer_from_key(due, incident, kind), Some(timer));
    }
    assert_eq!(timer_from_key(0, 1, "someday"), None);
    // Timers stored before the other SLA clocks existed keep their meaning.
    assert_eq!(
        timer_from_key(0, 1, "breach_deadline").map(|t| t.kind),
        Some(TimerKind::SlaBreach(
            crate::domain::sla::SlaName::BreachNotification
        ))
    );
}

/// A batch's arms and disarms of one stored key apply in order: a timer disarmed and armed
/// again (moved within a millisecond, or loaded at start at the key's precision and wanted
/// again to the nanosecond) stays stored, one armed and then disarmed does not.
#[test]
fn the_last_arm_or_disarm_of_a_timer_in_a_batch_wins() {
    let (_dir, store) = temp_store();
    let at = |nanos: i64, incident: u64| Timer {
        due: DateTime::from_timestamp_nanos(1_767_225_600_000_000_000 + nanos),
        incident: IncidentId(incident),
        kind: TimerKind::AlertExpiry,
    };
    let mut batch = Batch::default();
    batch.arm_timer(at(123_000_000, 1));
    batch.arm_timer(at(5_000_000, 2));
    store.commit(&batch).unwrap();
    let loaded = store.load().unwrap().timers;
    assert_eq!(loaded, [at(5_000_000, 2), at(123_000_000, 1)]);

    let mut batch = Batch::default();
    // Incident 1: the timer as loaded goes, the same instant to the nanosecond comes.
    batch.disarm_timer(loaded[1]);
    batch.arm_timer(at(123_456_789, 1));
    // Incident 2: refreshed twice within a millisecond, then fired and gone.
    batch.arm_timer(at(7_000_100, 2));
    batch.disarm_timer(at(7_000_100, 2));
    batch.arm_timer(at(7_000_900, 2));
    batch.disarm_timer(at(5_000_000, 2));
    store.commit(&batch).unwrap();
    assert_eq!(
        store.load().unwrap().timers,
        [at(7_000_000, 2), at(123_000_000, 1)]
    );

    let mut batch = Batch::default();
    batch.arm_timer(at(9_000_000, 2));
    batch.disarm_timer(at(9_000_000, 2));
    batch.disarm_timer(at(7_000_900, 2));
    store.commit(&batch).unwrap();
    assert_eq!(store.load().unwrap().timers, [at(123_000_000, 1)]);
}

/// Overwrites `pages` 4 KiB pages from the middle of the file with pseudo-random bytes
/// (a fixed seed: the same damage every run).
fn damage_middle_pages(path: &Path, pages: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut bytes = vec![0u8; usize::try_from(pages * 4096).unwrap()];
    for byte in &mut bytes {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let start = (len / 2) / 4096 * 4096;
    file.write_all_at(&bytes, start).unwrap();
    file.sync_all().unwrap();
}

fn many_incidents(store: &Store, count: u64) {
    for chunk in (1..=count).collect::<Vec<_>>().chunks(100) {
        let incidents: Vec<Incident> = chunk.iter().map(|&id| incident(id, State::Open)).collect();
        put(store, &incidents);
    }
}

#[test]
fn a_zero_filled_store_left_by_a_failed_first_start_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    std::fs::write(&path, vec![0u8; 8 * 1024]).unwrap();
    let store = Store::open(&path).unwrap();
    put(&store, &[incident(1, State::Open)]);
    assert_eq!(store.incident_count().unwrap(), 1);
    drop(store);
    assert!(!dir.path().join("incidentd.redb.new").exists());
    let store = Store::open(&path).unwrap();
    assert_eq!(store.incident_count().unwrap(), 1);
}

#[test]
fn a_damaged_store_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let store = Store::open(&path).unwrap();
    many_incidents(&store, 2_000);
    drop(store);
    damage_middle_pages(&path, 4);
    let before = std::fs::read(&path).unwrap();

    assert!(matches!(check(&path).unwrap(), Health::Damaged(_)));
    let error = Store::open(&path)
        .err()
        .expect("a damaged store is refused");
    assert!(
        matches!(error, StoreError::Damaged { .. }),
        "{error}: expected StoreError::Damaged"
    );
    assert!(
        error.to_string().contains("incidentd store repair"),
        "{error}"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the refused store was written to"
    );
}

#[test]
fn a_store_left_by_a_crash_is_sound_and_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let crashed = dir.path().join("crashed.redb");
    let store = Store::open(&path).unwrap();
    many_incidents(&store, 300);
    // A copy taken while the database is open is what a crash leaves: not shut down.
    std::fs::copy(&path, &crashed).unwrap();
    drop(store);
    assert_eq!(check(&crashed).unwrap(), Health::Sound);
    let store = Store::open(&crashed).unwrap();
    assert_eq!(store.incident_count().unwrap(), 300);
}

fn reopen_is_seen_by_every_clone(place: &Place) {
    let store = place.open();
    let reader = store.clone();
    put(&store, &[incident(1, State::Open)]);
    store.reopen().unwrap();
    put(&store, &[incident(2, State::Open)]);
    assert_eq!(reader.incident_count().unwrap(), 2);
}

fn uptime_of(store: &Store) -> Vec<(String, Vec<(Day, DayCount)>)> {
    store.load().unwrap().uptime
}

fn count(runs: u32, ok: u32) -> DayCount {
    DayCount { runs, ok }
}

/// A probe's days come back as the last commit left them, across a reopen; a forget
/// deletes only its probe's days before the day it names, also days put in its own batch.
#[test]
fn uptime_days_round_trip_and_are_forgotten_by_probe_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let store = Store::open(&path).unwrap();
    assert!(uptime_of(&store).is_empty());

    let mut batch = Batch::default();
    batch.put_uptime("web", 20_000, count(1, 1));
    batch.put_uptime("web", 20_000, count(2, 1)); // the last put of a day wins
    batch.put_uptime("web", 19_999, count(5, 5));
    batch.put_uptime("api", 20_000, count(3, 0));
    batch.put_uptime("a-b", -3, count(1, 0)); // before 1970: negative days sort first
    batch.put_uptime("a-b", 4, count(1, 1));
    assert!(!batch.is_empty());
    store.commit(&batch).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        uptime_of(&store),
        [
            ("a-b".to_owned(), vec![(-3, count(1, 0)), (4, count(1, 1))]),
            ("api".to_owned(), vec![(20_000, count(3, 0))]),
            (
                "web".to_owned(),
                vec![(19_999, count(5, 5)), (20_000, count(2, 1))]
            ),
        ]
    );

    let mut batch = Batch::default();
    batch.put_uptime("web", 20_001, count(1, 1));
    batch.put_uptime("api", 19_000, count(9, 9));
    // Before 20,000: web's 19,999 goes, and so does api's day put above, not api's 20,000.
    batch.forget_uptime("web", 20_000);
    batch.forget_uptime("api", 20_000);
    batch.forget_uptime("a-b", Day::MAX);
    // A probe whose name is a prefix of another's forgets only its own days.
    batch.forget_uptime("we", Day::MAX);
    store.commit(&batch).unwrap();
    assert_eq!(
        uptime_of(&store),
        [
            ("api".to_owned(), vec![(20_000, count(3, 0))]),
            (
                "web".to_owned(),
                vec![(20_000, count(2, 1)), (20_001, count(1, 1))]
            ),
        ]
    );
}

/// A store written before `uptime_daily.v1` existed opens (the table is created) with no
/// days, and keeps them from then on.
#[test]
fn a_store_without_the_uptime_table_opens_and_keeps_days() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let store = Store::open(&path).unwrap();
    put(&store, &[incident(1, State::Open)]);
    drop(store);
    edit_file(&path, |txn| {
        txn.open(UPTIME_DAILY).unwrap().clear().unwrap()
    });
    assert!(matches!(health::readable(&path), Ok(Health::Sound)));
    let store = Store::open(&path).unwrap();
    assert_eq!(schema_of(&store), Some(SCHEMA_VERSION));
    assert_eq!(loaded(&store), [1]);
    assert!(uptime_of(&store).is_empty());
    let mut batch = Batch::default();
    batch.put_uptime("web", 1, count(1, 1));
    store.commit(&batch).unwrap();
    assert_eq!(
        uptime_of(&store),
        [("web".to_owned(), vec![(1, count(1, 1))])]
    );
}

/// The ids of a month's page, newest first.
fn month_ids(page: &MonthPage) -> Vec<u64> {
    page.incidents.iter().map(|i| i.id.0).collect()
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Incident `id` opened at `opened`.
fn opened(id: u64, opened: &str) -> Incident {
    let mut incident = incident(id, State::Open);
    incident.opened_at = utc(opened);
    incident
}

fn the_month_index_is_written_once_by_the_first_commit_on_utc_month_boundaries(place: &Place) {
    let store = place.open();
    put(
        &store,
        &[
            opened(1, "2026-01-31T23:59:59.999Z"),
            opened(2, "2026-02-01T00:00:00Z"),
            opened(3, "2026-02-28T23:59:59Z"),
            opened(4, "2026-03-01T00:00:00Z"),
        ],
    );
    // Written again (closed): the entry neither moves nor doubles.
    let mut closed = opened(2, "2026-02-01T00:00:00Z");
    closed.state = State::Closed;
    closed.closed_at = Some(utc("2026-03-05T00:00:00Z"));
    put(&store, &[closed]);
    let february = utc("2026-02-01T00:00:00Z")..utc("2026-03-01T00:00:00Z");
    let all = |_: &Incident| true;
    let page = store
        .incidents_in_month(february.clone(), 10, 100, all)
        .unwrap();
    assert_eq!(month_ids(&page), [3, 2]);
    assert_eq!((page.more, page.unread), (0, false));
    assert_eq!(page.incidents[1].state, State::Closed, "as stored now");
    let january = utc("2026-01-01T00:00:00Z")..utc("2026-02-01T00:00:00Z");
    let page = store.incidents_in_month(january, 10, 100, all).unwrap();
    assert_eq!(month_ids(&page), [1]);
    let txn = store.begin_read().unwrap();
    let keys: Vec<(i32, u64)> = (txn.open(INCIDENTS_BY_MONTH).unwrap().iter())
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(keys, [(24_312, 1), (24_313, 2), (24_313, 3), (24_314, 4)]);
    drop(txn);

    // A month in another time zone spans two UTC months: February in UTC+7.
    let plus_7 = utc("2026-01-31T17:00:00Z")..utc("2026-02-28T17:00:00Z");
    let page = store.incidents_in_month(plus_7, 10, 100, all).unwrap();
    assert_eq!(month_ids(&page), [2, 1]);

    // The filter, the limit (with the count beyond it) and the read budget.
    let page = store
        .incidents_in_month(february.clone(), 10, 100, |i| i.id.0 != 3)
        .unwrap();
    assert_eq!(month_ids(&page), [2]);
    let page = store
        .incidents_in_month(february.clone(), 1, 100, all)
        .unwrap();
    assert_eq!((month_ids(&page), page.more), (vec![3], 1));
    let page = store.incidents_in_month(february, 10, 1, all).unwrap();
    assert_eq!((month_ids(&page), page.unread), (vec![3], true));

    assert!(
        !store
            .opened_before(utc("2026-01-31T23:59:59.999Z"))
            .unwrap()
    );
    assert!(store.opened_before(utc("2026-02-01T00:00:00Z")).unwrap());
    assert!(
        store
            .opened_before(utc("2026-01-31T23:59:59.9995Z"))
            .unwrap()
    );
    assert!(store.opened_before(utc("2027-01-01T00:00:00Z")).unwrap());
}

#[test]
fn a_schema_2_store_is_indexed_by_month_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    {
        let store = Store::open(&path).unwrap();
        put(
            &store,
            &[
                opened(1, "2025-12-31T23:00:00Z"),
                opened(2, "2026-01-01T00:00:00Z"),
            ],
        );
    }
    // As schema 2 left it: no month index, version 2.
    edit_file(&path, |txn| {
        txn.open(INCIDENTS_BY_MONTH).unwrap().clear().unwrap();
        txn.open(META).unwrap().put(META_SCHEMA, 2).unwrap();
    });
    let store = Store::open(&path).unwrap();
    assert_eq!(schema_of(&store), Some(SCHEMA_VERSION));
    let january = utc("2026-01-01T00:00:00Z")..utc("2026-02-01T00:00:00Z");
    let page = store
        .incidents_in_month(january, 10, 100, |_| true)
        .unwrap();
    assert_eq!(month_ids(&page), [2]);
    assert!(store.opened_before(utc("2026-01-01T00:00:00Z")).unwrap());
    // From then on, commits keep it.
    put(&store, &[opened(3, "2026-01-02T00:00:00Z")]);
    let january = utc("2026-01-01T00:00:00Z")..utc("2026-02-01T00:00:00Z");
    let page = store
        .incidents_in_month(january, 10, 100, |_| true)
        .unwrap();
    assert_eq!(month_ids(&page), [3, 2]);
}

fn notification(seq: u64, next_at: DateTime<Utc>) -> Notification {
    Notification {
        seq,
        subscriber: 1,
        message: Message::Confirm,
        created_at: at(0),
        attempts: 0,
        next_at,
        event_id: format!("evt_{seq}"),
    }
}

/// The queue's due index follows every put, retry and delete in the same commit: a round
/// gets what is due, earliest first, and when to look again.
fn due_notifications_read_the_due_index(place: &Place) {
    let store = place.open();
    let mut batch = Batch::default();
    batch.put_notification(notification(0, at(5)));
    batch.put_notification(notification(1, at(1)));
    batch.put_notification(notification(2, at(2)));
    batch.put_notification(notification(3, at(9)));
    store.commit(&batch).unwrap();
    let seqs = |due: &[Notification]| due.iter().map(|n| n.seq).collect::<Vec<_>>();
    let (due, later) = store.due_notifications(at(3), 10).unwrap();
    assert_eq!(seqs(&due), [1, 2]);
    assert_eq!(later, Some(at(5)));
    let (due, _) = store.due_notifications(at(3), 1).unwrap();
    assert_eq!(seqs(&due), [1], "at most the limit");

    // 1 retried later, 2 sent: the index forgets their old times.
    let mut batch = Batch::default();
    batch.put_notification(notification(1, at(7)));
    batch.delete_notification(2);
    store.commit(&batch).unwrap();
    let (due, later) = store.due_notifications(at(3), 10).unwrap();
    assert!(due.is_empty());
    assert_eq!(later, Some(at(5)));
    let (due, later) = store.due_notifications(at(8), 10).unwrap();
    assert_eq!(seqs(&due), [0, 1]);
    assert_eq!(later, Some(at(9)));
    let (due, later) = store.due_notifications(at(9), 10).unwrap();
    assert_eq!(seqs(&due), [0, 1, 3]);
    assert_eq!(later, None);
}

/// A store whose queue has no due index (written before it) gets one when opened.
#[test]
fn the_due_index_is_built_for_an_older_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::open(&path).unwrap();
    let mut batch = Batch::default();
    batch.put_notification(notification(0, at(1)));
    batch.put_notification(notification(1, at(2)));
    store.commit(&batch).unwrap();
    drop(store);
    edit_file(&path, |txn| {
        (txn.open(subscriptions::NOTIFICATIONS_DUE).unwrap().clear()).unwrap();
    });
    let store = Store::open(&path).unwrap();
    let (due, _) = store.due_notifications(at(3), 10).unwrap();
    assert_eq!(due.len(), 2);
}

fn a_reporter_link_is_found_by_its_hash_until_replaced_or_revoked(place: &Place) {
    let store = place.open();
    let (first, second, third) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let mut batch = Batch::default();
    batch.issue_reporter_link(IncidentId(1), first, at(0));
    batch.issue_reporter_link(IncidentId(2), third, at(0));
    store.commit(&batch).unwrap();
    assert_eq!(store.reporter_link(&first).unwrap(), Some(IncidentId(1)));
    assert_eq!(store.reporter_link(&third).unwrap(), Some(IncidentId(2)));
    assert_eq!(store.reporter_link(&second).unwrap(), None);

    // Rotated: the old hash is gone, the new one found; the record keeps the hash only.
    let mut batch = Batch::default();
    batch.issue_reporter_link(IncidentId(1), second, at(5));
    assert_eq!(
        batch.reporter_link_write(IncidentId(1)),
        Some(LinkWrite::Issue {
            hash: second,
            at: at(5)
        })
    );
    store.commit(&batch).unwrap();
    assert_eq!(store.reporter_link(&first).unwrap(), None);
    assert_eq!(store.reporter_link(&second).unwrap(), Some(IncidentId(1)));
    let record = store.reporter_link_of(IncidentId(1)).unwrap().unwrap();
    assert_eq!(record.hash, "02".repeat(32));
    assert_eq!((record.created_at, record.revoked_at), (at(5), None));

    // Revoked: not found, the record says when; another incident's link is untouched.
    let mut batch = Batch::default();
    batch.revoke_reporter_link(IncidentId(1), at(9));
    batch.revoke_reporter_link(IncidentId(7), at(9)); // never had one: nothing written
    store.commit(&batch).unwrap();
    assert_eq!(store.reporter_link(&second).unwrap(), None);
    assert_eq!(
        store
            .reporter_link_of(IncidentId(1))
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(9))
    );
    assert_eq!(store.reporter_link_of(IncidentId(7)).unwrap(), None);
    assert_eq!(store.reporter_link(&third).unwrap(), Some(IncidentId(2)));
}

on_both!(
    the_active_index_follows_open_closed_reopened,
    a_list_reads_at_most_its_budget_and_goes_on_from_its_cursor,
    the_sla_report_over_a_window_reads_only_what_it_counts,
    the_sla_index_follows_clocks_that_stop_resume_and_go,
    start_up_at_a_time_reads_the_silences_not_ended,
    start_up_reads_the_maintenances_not_over_or_recently_over,
    silences_with_operators_are_stored_as_alertmanager_matchers,
    reopen_is_seen_by_every_clone,
    the_month_index_is_written_once_by_the_first_commit_on_utc_month_boundaries,
    a_reporter_link_is_found_by_its_hash_until_replaced_or_revoked,
    due_notifications_read_the_due_index,
);

/// A measurement, not a check: how long moving a layout-3 file's typed tables into the
/// key-value tables takes, and the process's peak memory, for `INCIDENTD_UPGRADE_INCIDENTS`
/// incidents (default 200,000). Run:
/// `INCIDENTD_UPGRADE_INCIDENTS=1000000 cargo test --release --lib store::tests::time_the_move_to_key_value_tables -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn time_the_move_to_key_value_tables() {
    let count: u64 = std::env::var("INCIDENTD_UPGRADE_INCIDENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(legacy::META).unwrap();
            meta.insert(META_SCHEMA, 3).unwrap();
            meta.insert(META_NEXT_INCIDENT, count + 1).unwrap();
            let mut table = txn.open_table(legacy::INCIDENTS).unwrap();
            let mut timeline = txn.open_table(legacy::TIMELINE).unwrap();
            for id in 1..=count {
                let bytes = encode(&IncidentV1::from(&incident(id, State::Closed)));
                table.insert(id, bytes.as_slice()).unwrap();
                timeline.insert((id, id), bytes.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let started = std::time::Instant::now();
    let store = Store::open(&path).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(store.incident_count().unwrap(), count);
    let peak = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|line| line.starts_with("VmHWM"))
        .map(str::to_owned)
        .unwrap_or_default();
    eprintln!(
        "moved {count} incidents (file {} MB) in {:.1} s; {peak}",
        size / 1_000_000,
        elapsed.as_secs_f64()
    );
}

/// A typed table longer than one move's chunk moves whole, over several transactions, and
/// a start that stopped in the middle (rows left in the typed table, some already moved)
/// goes on where it stopped.
#[test]
fn typed_tables_move_in_chunks_and_a_stopped_move_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let count = upgrade::MOVE_CHUNK as u64 + 50;
    let incidents: Vec<Incident> = (1..=count).map(|id| incident(id, State::Open)).collect();
    write_schema_1_store(&path, &incidents, &[]);
    // As a start that stopped after its first chunk left it: the first rows moved already.
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut typed = txn.open_table(legacy::INCIDENTS).unwrap();
            let mut moved = txn
                .open_table(redb::TableDefinition::<&[u8], &[u8]>::new(
                    &kv::redb::physical("incidents.v1"),
                ))
                .unwrap();
            for _ in 0..10 {
                let (key, value) = typed.pop_first().unwrap().unwrap();
                let key = kv::KeyArg::<u64>::to_bytes(&key.value());
                moved.insert(key.as_slice(), value.value()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(schema_of(&store), Some(SCHEMA_VERSION));
    assert_eq!(store.incident_count().unwrap(), count);
    assert_eq!(
        loaded(&store).len() as u64,
        count,
        "every one indexed as active"
    );
    assert_eq!(
        store.get_incident(IncidentId(count)).unwrap().unwrap(),
        incidents[count as usize - 1]
    );
}
