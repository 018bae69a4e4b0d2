//! Detection through the real engine and a real redb store, with a manual clock: early
//! symptoms raised into the same incident, `for:`, flapping, maintenance windows, silences
//! and `depends_on`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use incidentd::clock::{Clock, ManualClock};
use incidentd::domain::incident::{Incident, TimelineEntry};
use incidentd::domain::maintenance::MaintenanceState;
use incidentd::domain::observation::Observation;
use incidentd::domain::suppression::Matcher;
use incidentd::engine::{
    Engine, EngineHandle, NewMaintenance, NewSilence, NewTicket, ProbeRun, ReadModel, Verb,
};
use incidentd::metrics::Metrics;
use incidentd::store::Store;
use incidentd::view::Clearance;
use tokio_util::sync::CancellationToken;

use crate::support::{ConfigDir, start_time};

struct Harness {
    _dir: ConfigDir,
    clock: ManualClock,
    store: Store,
    engine: EngineHandle,
    read: ReadModel,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Harness {
    fn start(rules: &str) -> Harness {
        Harness::start_with("listen: 127.0.0.1:0\n", rules)
    }

    fn start_with(config: &str, rules: &str) -> Harness {
        let dir = ConfigDir::new(config, &[("rules.yaml", rules)]);
        Harness::start_in(dir, ManualClock::new(start_time()))
    }

    /// A new engine on the same store and clock (the old one stops first).
    async fn restart(mut self) -> Harness {
        self.stop.cancel();
        (&mut self.task).await.unwrap();
        let dir = ConfigDir::new("", &[]);
        let dir = std::mem::replace(&mut self._dir, dir);
        let clock = self.clock.clone();
        drop(self); // the last handle on the store: redb closes the file
        Harness::start_in(dir, clock)
    }

    fn start_in(dir: ConfigDir, clock: ManualClock) -> Harness {
        let config = incidentd::config::load(&dir.config_path(), &|_| None)
            .unwrap_or_else(|errors| panic!("{errors}"));
        let store = Store::open(&config.storage_path).unwrap();
        let stop = CancellationToken::new();
        let (engine, read, task) = Engine::start(
            store.clone(),
            &config,
            Arc::new(clock.clone()),
            Metrics::new(),
            Arc::new(HashMap::new()),
            stop.clone(),
            true,
        )
        .unwrap();
        Harness {
            _dir: dir,
            clock,
            store,
            engine,
            read,
            stop,
            task,
        }
    }

    /// One result for `probe` now, then the clock moves 10 s.
    async fn feed(&self, probe: &str, status: u16, millis: u64) {
        let observation = Observation {
            connected: true,
            status: Some(status),
            response_time: Duration::from_millis(millis),
            ..Observation::new(self.clock.now())
        };
        self.engine
            .run(ProbeRun {
                probe: probe.to_owned(),
                at: observation.at,
                results: vec![(BTreeMap::new(), observation)],
                complete: false,
            })
            .await
            .unwrap();
        self.clock.advance(Duration::from_secs(10));
    }

    async fn feed_many(&self, probe: &str, status: u16, millis: u64, times: usize) {
        for _ in 0..times {
            self.feed(probe, status, millis).await;
        }
    }

    fn incidents(&self) -> Vec<(Incident, Vec<TimelineEntry>)> {
        let (page, _) = self.store.list_incidents(None, 100, |_| true).unwrap();
        page.into_iter()
            .rev()
            .map(|i| {
                self.store
                    .get_incident_with_timeline(i.id)
                    .unwrap()
                    .unwrap()
            })
            .collect()
    }

    async fn rules(&self) -> serde_json::Value {
        let snapshot = self.read.borrow().clone();
        serde_json::json!({ "rules": snapshot.rules_at(self.clock.now()) })
    }
}

fn kinds(timeline: &[TimelineEntry]) -> Vec<&str> {
    timeline.iter().map(|e| e.kind.as_str()).collect()
}

const EARLY_AND_OUTAGE: &str = r#"probes:
  - name: web
    interval: 10s
    labels: {service: shop}
    http: {url: "http://127.0.0.1:9/"}
rules:
  - name: web-slow
    probe: web
    when: '[RESPONSE_TIME] > 800ms'
    after: 2
    incident: {title: 'Shop slow ({{ response_time }})', category: performance, impact: medium, urgency: low}
  - name: web-down
    probe: web
    when: '[STATUS] >= 500'
    after: 2
    incident: {title: 'Shop down ({{ status }})', category: availability, impact: high, urgency: high}
"#;

#[tokio::test]
async fn an_early_symptom_then_the_outage_is_one_incident_raised_in_priority() {
    let h = Harness::start(EARLY_AND_OUTAGE);
    h.feed_many("web", 200, 50, 2).await;
    assert!(h.incidents().is_empty());

    h.feed_many("web", 200, 1500, 2).await; // latency creeps up: early symptom
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].0.priority.as_str(), "P4");
    assert_eq!(incidents[0].0.title, "Shop slow (1500ms)");

    h.feed_many("web", 503, 1500, 2).await; // then the outage, same service
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 1, "raised, not a second incident");
    let (incident, timeline) = &incidents[0];
    assert_eq!(incident.priority.as_str(), "P1");
    assert_eq!(incident.tier.as_str(), "L3", "a raise to P1 moves to L3");
    assert_eq!(incident.title, "Shop down (503)");
    assert_eq!(kinds(timeline), ["opened", "priority_changed", "escalated"]);
    assert!(
        timeline[1]
            .message
            .starts_with("priority P4 → P1: rule `web-down` fired")
    );
    assert_eq!(incident.evidence.len(), 2);

    // Recovery of one rule is not enough; both must recover.
    h.feed_many("web", 200, 1500, 2).await;
    assert_eq!(h.incidents()[0].0.state.as_str(), "open");
    h.feed_many("web", 200, 50, 2).await;
    assert_eq!(h.incidents()[0].0.state.as_str(), "resolved");
}

#[tokio::test]
async fn for_waits_on_the_clock_not_on_the_count() {
    let h = Harness::start(
        r#"probes:
  - {name: web, interval: 10s, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: web-down, probe: web, when: '[STATUS] != 200', for: 1m}
"#,
    );
    h.feed_many("web", 500, 10, 6).await; // t = 0 … 50 s
    assert!(h.incidents().is_empty(), "50 s < 1 m");
    h.feed("web", 500, 10).await; // t = 60 s
    assert_eq!(h.incidents().len(), 1);
}

#[tokio::test]
async fn a_flapping_target_keeps_one_incident_open() {
    let h = Harness::start(
        r#"probes:
  - {name: web, interval: 10s, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: web-down, probe: web, when: '[STATUS] != 200', after: 1, recover_after: 1}
"#,
    );
    for _ in 0..10 {
        h.feed("web", 500, 10).await;
        h.feed("web", 200, 10).await;
    }
    let incidents = h.incidents();
    // x.x.x: opened, resolved, reopened, resolved, reopened — a symptom that returns
    // before closure reopens its incident; the 4th change makes it flapping, and from
    // then on the incident is held open.
    assert_eq!(incidents.len(), 1, "reopened, never duplicated");
    let (incident, timeline) = &incidents[0];
    assert_eq!(
        incident.state.as_str(),
        "acknowledged",
        "held open (reopened) while flapping"
    );
    assert_eq!(
        kinds(timeline),
        ["opened", "resolved", "reopened", "resolved", "reopened"]
    );
    let rules = h.rules().await;
    assert_eq!(rules["rules"][0]["subjects"][0]["flapping"], true);
}

#[tokio::test]
async fn depends_on_suppresses_the_child_while_the_parent_is_open() {
    let h = Harness::start(
        r#"probes:
  - {name: db, interval: 10s, labels: {service: db}, http: {url: "http://127.0.0.1:9/"}}
  - {name: api, interval: 10s, labels: {service: api}, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: db-down, probe: db, when: '[STATUS] != 200'}
  - {name: api-down, probe: api, when: '[STATUS] != 200', depends_on: [db-down]}
"#,
    );
    h.feed("db", 500, 10).await;
    h.feed("api", 500, 10).await;
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].0.labels["rule"], "db-down");
    let rules = h.rules().await;
    assert_eq!(rules["rules"][1]["subjects"][0]["suppressed"], "depends_on");

    // The parent recovers; the child is still down: now it is its own incident.
    h.feed_many("db", 200, 10, 2).await;
    h.feed("api", 500, 10).await;
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[1].0.labels["rule"], "api-down");
}

#[tokio::test]
async fn silences_and_maintenance_suppress_opening_but_keep_measuring() {
    let h = Harness::start(
        r#"probes:
  - {name: web, interval: 10s, labels: {service: web}, http: {url: "http://127.0.0.1:9/"}}
  - {name: batch, interval: 10s, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: web-down, probe: web, when: '[STATUS] != 200'}
  - name: batch-down
    probe: batch
    when: '[STATUS] != 200'
    maintenance: [{start: "09:00", duration: 1h}]
"#,
    );
    let ends_at: DateTime<Utc> = h.clock.now() + chrono::Duration::minutes(30);
    let silence = h
        .engine
        .silence(NewSilence {
            matchers: vec![Matcher::equal("service", "web")],
            starts_at: None,
            ends_at,
            created_by: "alice".to_owned(),
            comment: "deploy".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(silence.ends_at, ends_at);

    h.feed("web", 500, 10).await; // 09:00:00, silenced
    h.feed("batch", 500, 10).await; // 09:00:10, in maintenance
    assert!(h.incidents().is_empty());
    let rules = h.rules().await;
    assert_eq!(
        rules["rules"][0]["subjects"][0]["firing"], true,
        "still measured"
    );
    assert_eq!(rules["rules"][0]["subjects"][0]["suppressed"], "silenced");
    assert_eq!(
        rules["rules"][1]["subjects"][0]["suppressed"],
        "maintenance"
    );

    // After the silence ends, the still-failing target opens its incident.
    h.clock.advance(Duration::from_secs(30 * 60));
    h.feed("web", 500, 10).await;
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].0.labels["rule"], "web-down");
}

#[tokio::test]
async fn a_scheduled_maintenance_holds_its_services_rules_back_across_a_restart() {
    let h = Harness::start(
        r#"probes:
  - {name: checkout, interval: 10s, labels: {service: checkout}, http: {url: "http://127.0.0.1:9/"}}
  - {name: web, interval: 10s, labels: {service: web}, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: checkout-down, probe: checkout, when: '[STATUS] != 200'}
  - {name: web-down, probe: web, when: '[STATUS] != 200'}
"#,
    );
    let now = h.clock.now();
    let maintenance = h
        .engine
        .maintain(NewMaintenance {
            title: "Database upgrade".to_owned(),
            message: "Checkout may be slow.".to_owned(),
            services: vec!["checkout".to_owned()],
            starts_at: now + chrono::Duration::minutes(1),
            ends_at: now + chrono::Duration::minutes(30),
            created_by: "alice".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(maintenance.id, 1);
    assert_eq!(maintenance.state(now), MaintenanceState::Upcoming);

    // Stored and loaded again: still there, still upcoming, then active.
    let h = h.restart().await;
    {
        let snapshot = h.read.borrow().clone();
        assert_eq!(snapshot.maintenances.get(&1), Some(&maintenance));
    }
    h.clock.advance(Duration::from_secs(60));
    h.feed("checkout", 500, 10).await; // 09:01:00, in maintenance
    h.feed("web", 500, 10).await; // another service: opens
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].0.labels["rule"], "web-down");
    let rules = h.rules().await;
    assert_eq!(
        rules["rules"][0]["subjects"][0]["firing"], true,
        "still measured"
    );
    assert_eq!(
        rules["rules"][0]["subjects"][0]["suppressed"],
        "maintenance"
    );

    // A restart while it runs keeps holding the symptom back.
    let h = h.restart().await;
    h.feed("checkout", 500, 10).await;
    assert_eq!(h.incidents().len(), 1);

    // At its end the still-failing target opens its incident.
    h.clock.advance(Duration::from_secs(29 * 60));
    let snapshot = h.read.borrow().clone();
    let state = snapshot.maintenances[&1].state(h.clock.now());
    assert_eq!(state, MaintenanceState::Completed);
    h.feed("checkout", 500, 10).await;
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[1].0.labels["rule"], "checkout-down");
    // A second maintenance gets the next id: the counter was stored too.
    let next = h
        .engine
        .maintain(NewMaintenance {
            title: "Again".to_owned(),
            message: String::new(),
            services: vec!["web".to_owned()],
            starts_at: h.clock.now(),
            ends_at: h.clock.now() + chrono::Duration::minutes(5),
            created_by: "alice".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(next.id, 2);
}

#[tokio::test]
async fn a_silence_with_operators_suppresses_the_rules_it_matches() {
    let h = Harness::start(
        r#"probes:
  - {name: web, interval: 10s, labels: {service: web, env: prod}, http: {url: "http://127.0.0.1:9/"}}
  - {name: api, interval: 10s, labels: {service: api, env: staging}, http: {url: "http://127.0.0.1:9/"}}
  - {name: db, interval: 10s, labels: {service: db, env: prod}, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: web-down, probe: web, when: '[STATUS] != 200'}
  - {name: api-down, probe: api, when: '[STATUS] != 200'}
  - {name: db-down, probe: db, when: '[STATUS] != 200'}
"#,
    );
    // web and api by a regex, but not staging: only web is silenced.
    h.engine
        .silence(NewSilence {
            matchers: vec![
                Matcher::parse(r#"service=~"web|api""#).unwrap(),
                Matcher::parse(r#"env!~"stag.*""#).unwrap(),
            ],
            starts_at: None,
            ends_at: h.clock.now() + chrono::Duration::minutes(30),
            created_by: "alice".to_owned(),
            comment: "deploy".to_owned(),
        })
        .await
        .unwrap();

    for probe in ["web", "api", "db"] {
        h.feed(probe, 500, 10).await;
    }
    let mut opened: Vec<String> = h
        .incidents()
        .iter()
        .map(|(incident, _)| incident.labels["rule"].clone())
        .collect();
    opened.sort();
    assert_eq!(opened, ["api-down", "db-down"]);
    let rules = h.rules().await;
    let suppressed = |rule: usize| rules["rules"][rule]["subjects"][0]["suppressed"].clone();
    assert_eq!(rules["rules"][0]["name"], "web-down");
    assert_eq!(suppressed(0), "silenced");
    assert_eq!(suppressed(1), serde_json::Value::Null);

    // A matcher matching everything, alone, is refused: it would silence nearly all.
    let refused = h
        .engine
        .silence(NewSilence {
            matchers: vec![Matcher::parse("team!=db").unwrap()],
            starts_at: None,
            ends_at: h.clock.now() + chrono::Duration::minutes(30),
            created_by: "alice".to_owned(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("does not match the empty string"),
        "{refused}"
    );
}

#[tokio::test]
async fn detector_counts_survive_a_restart() {
    let rules = r#"probes:
  - {name: web, interval: 10s, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: web-down, probe: web, when: '[STATUS] != 200', after: 3}
"#;
    let h = Harness::start(rules);
    h.feed_many("web", 500, 10, 2).await;
    assert!(h.incidents().is_empty());
    let h = h.restart().await;
    h.feed("web", 500, 10).await; // the third in a row, across the restart
    assert_eq!(h.incidents().len(), 1);
    let h = h.restart().await;
    h.feed_many("web", 500, 10, 3).await; // still firing: no second incident
    assert_eq!(h.incidents().len(), 1);
}

#[tokio::test]
async fn window_functions_read_the_engines_history() {
    let h = Harness::start(
        r#"probes:
  - {name: web, interval: 10s, http: {url: "http://127.0.0.1:9/"}}
rules:
  - name: web-slow
    probe: web
    when: 'p95([RESPONSE_TIME], 1m) > 800ms'
  - name: web-trend
    probe: web
    when: 'forecast([RESPONSE_TIME], 1m, 10m) > 5s'
    incident: {category: capacity}
"#,
    );
    // Latency climbs 100 ms per result (every 10 s): the trend crosses 5 s within 10 min
    // long before any single result, or the p95 of the last minute, is slow.
    for i in 0..4 {
        h.feed("web", 200, 100 + 100 * i).await;
    }
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 1, "the forecast fires first");
    assert_eq!(incidents[0].0.labels["rule"], "web-trend");
    for i in 4..9 {
        h.feed("web", 200, 100 + 100 * i).await; // up to 900 ms
    }
    let rules = h.rules().await;
    assert_eq!(
        rules["rules"][0]["firing"], true,
        "p95 of the last minute > 800 ms"
    );
    assert_eq!(h.incidents().len(), 1, "same service: one incident");
}

/// A complete run of the Prometheus probe `prom` returning `present` series, each with a
/// value of 1; the clock then moves 10 s.
async fn prom_run(h: &Harness, present: &[&str]) {
    let results = present
        .iter()
        .map(|instance| {
            let observation = Observation {
                connected: true,
                value: Some(1.0),
                ..Observation::new(h.clock.now())
            };
            let series = BTreeMap::from([("instance".to_owned(), (*instance).to_owned())]);
            (series, observation)
        })
        .collect();
    h.engine
        .run(ProbeRun {
            probe: "prom".to_owned(),
            at: h.clock.now(),
            results,
            complete: true,
        })
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(10));
}

#[tokio::test]
async fn a_series_that_disappears_recovers_its_incident() {
    let h = Harness::start(
        r#"probes:
  - {name: prom, interval: 10s, prometheus: {url: "http://127.0.0.1:9/", query: "errors > 0"}}
rules:
  - {name: errors, probe: prom, when: '[VALUE] > 0.5', recover_after: 2}
"#,
    );
    prom_run(&h, &["a", "b"]).await;
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 2, "one incident per series");
    assert_eq!(incidents[1].0.labels["instance"], "b");

    prom_run(&h, &["a"]).await;
    prom_run(&h, &["a"]).await; // b has been gone for two runs (recover_after: 2)
    let incidents = h.incidents();
    assert_eq!(incidents[0].0.state.as_str(), "open", "a is still there");
    assert_eq!(incidents[1].0.state.as_str(), "resolved", "b disappeared");

    // Recovered and gone, b's detector is forgotten (series come and go: their detectors
    // must not pile up), in the read model and in the store; a's stays.
    let subjects = |h: &Harness| -> Vec<String> {
        h.read
            .borrow()
            .detectors
            .keys()
            .map(|key| key.stored())
            .collect()
    };
    assert_eq!(subjects(&h), [r#"errors{instance="a"}"#]);
    let h = h.restart().await;
    assert_eq!(subjects(&h), [r#"errors{instance="a"}"#], "after a restart");
    // b comes back: a new series, counted from nothing.
    prom_run(&h, &["a", "b"]).await;
    let incidents = h.incidents();
    assert_eq!(
        incidents.len(),
        2,
        "b reopened its incident, not a third: {incidents:?}"
    );
    assert_eq!(
        incidents[1].0.state.as_str(),
        "acknowledged",
        "b is back: its incident reopened"
    );
    assert_eq!(
        subjects(&h),
        [r#"errors{instance="a"}"#, r#"errors{instance="b"}"#]
    );
}

impl Harness {
    async fn ticket(&self, title: &str) {
        self.engine
            .open_ticket(ticket(title), "oncall".to_owned())
            .await
            .unwrap();
    }

    async fn verb(&self, id: incidentd::domain::incident::IncidentId, verb: Verb) {
        self.engine
            .workflow(id, "oncall".to_owned(), Clearance::Security, verb)
            .await
            .unwrap();
    }
}

fn ticket(title: &str) -> NewTicket {
    NewTicket {
        title: title.to_owned(),
        description: "the printer is on fire".to_owned(),
        reporter: incidentd::domain::incident::Reporter {
            name: "Dana".to_owned(),
            contact: "dana@example.com".to_owned(),
        },
        kind: None,
        category: None,
        impact: None,
        urgency: None,
        service: None,
        labels: BTreeMap::new(),
        reporter_link: None,
    }
}

impl Harness {
    /// Moves the clock and fires what is due, as the engine's ticker does.
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.engine.tick().await.unwrap();
    }

    fn timeline_kinds(&self) -> Vec<String> {
        let (_, timeline) = &self.incidents()[0];
        timeline.iter().map(|e| e.kind.clone()).collect()
    }
}

#[tokio::test]
async fn escalation_timers_fire_once_each_across_restarts() {
    let h = Harness::start("probes: []\n");
    h.ticket("Printer on fire").await; // P3, L1
    h.advance(Duration::from_secs(29 * 60)).await;
    assert_eq!(
        h.incidents()[0].0.tier.as_str(),
        "L1",
        "30 min not yet over"
    );

    // A restart before the timer is due: it is still armed afterwards.
    let h = h.restart().await;
    h.advance(Duration::from_secs(2 * 60)).await; // 31 min: not acknowledged in time
    assert_eq!(h.incidents()[0].0.tier.as_str(), "L2");
    let h = h.restart().await;
    h.advance(Duration::from_secs(1)).await;
    assert_eq!(
        h.timeline_kinds(),
        ["opened", "escalated"],
        "fired once, not again after the restart"
    );
    // Acknowledged: the unacknowledged timer has no reason any more.
    let id = h.incidents()[0].0.id;
    h.verb(id, Verb::Acknowledge).await;
    h.advance(Duration::from_secs(3600)).await;
    assert_eq!(h.incidents()[0].0.tier.as_str(), "L2");
    // Not resolved within 8 h: one more tier.
    h.advance(Duration::from_secs(7 * 3600)).await;
    assert_eq!(h.incidents()[0].0.tier.as_str(), "L3");
    assert!(h.timeline_kinds().ends_with(&["escalated".to_owned()]));
}

#[tokio::test]
async fn a_resolved_incident_closes_after_the_quiet_period() {
    let h = Harness::start("probes: []\n");
    h.ticket("Printer on fire").await;
    let id = h.incidents()[0].0.id;
    h.verb(
        id,
        Verb::Resolve {
            resolution: Some("extinguished".to_owned()),
        },
    )
    .await;
    h.advance(Duration::from_secs(59 * 60)).await;
    assert_eq!(h.incidents()[0].0.state.as_str(), "resolved");
    let h = h.restart().await;
    h.advance(Duration::from_secs(60)).await;
    let (incident, timeline) = &h.incidents()[0];
    assert_eq!(incident.state.as_str(), "closed");
    assert_eq!(timeline.last().unwrap().actor, "system");
    // Resolved before the escalation timers ran out: when they fired they did nothing.
    assert!(!timeline.iter().any(|e| e.kind == "escalated"));
}

#[tokio::test]
async fn rule_incidents_follow_the_configured_matrix_and_escalation() {
    let config = "listen: 127.0.0.1:0
priority_matrix:
  high:   {high: P1, medium: P1, low: P2}
  medium: {high: P2, medium: P3, low: P4}
  low:    {high: P3, medium: P4, low: P5}
escalation:
  P1: {start_tier: L2}
  default: {start_tier: L1}
";
    let rules = r#"probes:
  - {name: web, interval: 10s, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: web-down, probe: web, when: '[STATUS] != 200', incident: {impact: high, urgency: medium}}
"#;
    let dir = ConfigDir::new(config, &[("rules.yaml", rules)]);
    let h = Harness::start_in(dir, ManualClock::new(start_time()));
    h.feed("web", 500, 10).await;
    let (incident, _) = &h.incidents()[0];
    assert_eq!(
        incident.priority.as_str(),
        "P1",
        "high × medium is P1 in this matrix"
    );
    assert_eq!(incident.tier.as_str(), "L2", "this policy starts P1 at L2");
}

/// `sla.start: detected`: a rule incident's clocks start at the first symptomatic result,
/// not when `after` is reached; a worse symptom's priority retargets them.
#[tokio::test]
async fn sla_clocks_start_at_detection_and_follow_a_priority_raise() {
    use incidentd::domain::sla::SlaName;
    let h = Harness::start_with(
        "listen: 127.0.0.1:0\nsla: {start: detected}\n",
        EARLY_AND_OUTAGE,
    );
    h.feed_many("web", 200, 900, 2).await; // slow twice: the P4 early symptom opens
    let (incident, _) = h.incidents().remove(0);
    assert_eq!(
        incident.opened_at,
        start_time() + chrono::TimeDelta::seconds(10)
    );
    assert_eq!(incident.detected_at, Some(start_time()));
    let resolution = incident.sla.get(SlaName::Resolution).unwrap();
    assert_eq!(
        resolution.started_at,
        start_time(),
        "retroactive to detection"
    );
    assert_eq!(resolution.target, chrono::TimeDelta::hours(48), "P4");
    h.feed_many("web", 503, 10, 2).await; // down: raised to P2 (impact high, urgency medium)
    let (incident, _) = h.incidents().remove(0);
    let resolution = incident.sla.get(SlaName::Resolution).unwrap();
    assert_eq!(resolution.priority, incident.priority);
    assert_eq!(
        resolution.target,
        incidentd::domain::sla::SlaPolicies::default().target(
            SlaName::Resolution,
            incident.kind,
            incident.priority
        )
    );
    assert!(
        resolution.target < chrono::TimeDelta::hours(48),
        "{incident:?}"
    );
    assert_eq!(resolution.started_at, start_time(), "no fresh start");
}

impl Harness {
    /// Reloads the harness's configuration into the engine (after rewriting its files).
    async fn reload(&self) -> incidentd::engine::Reconfigured {
        let config = incidentd::config::load(&self._dir.config_path(), &|_| None)
            .unwrap_or_else(|errors| panic!("{errors}"));
        self.engine
            .reconfigure(config, Arc::new(HashMap::new()))
            .await
            .unwrap()
    }
}

const AFTER_THREE: &str = r#"probes:
  - {name: web, interval: 10s, labels: {service: web}, http: {url: "http://127.0.0.1:9/"}}
rules:
  - {name: web-down, probe: web, when: '[STATUS] != 200', after: 3}
"#;

#[tokio::test]
async fn an_unchanged_rule_keeps_its_detector_across_a_reload() {
    let h = Harness::start(AFTER_THREE);
    h.feed("web", 500, 10).await; // 1 of 3
    let report = h.reload().await;
    assert_eq!(
        report,
        incidentd::engine::Reconfigured::default(),
        "nothing changed"
    );
    let rules = h.rules().await;
    assert_eq!(rules["rules"][0]["subjects"][0]["symptomatic_streak"], 1);
    h.feed("web", 500, 10).await;
    assert!(h.incidents().is_empty(), "2 of 3");
    h.feed("web", 500, 10).await;
    assert_eq!(
        h.incidents().len(),
        1,
        "the third failure counts the first one too"
    );

    // A changed rule starts over.
    std::fs::write(
        h._dir.path().join("rules/rules.yaml"),
        AFTER_THREE.replace("after: 3", "after: 4"),
    )
    .unwrap();
    let report = h.reload().await;
    assert_eq!(report.rules_changed, ["web-down"]);
    let rules = h.rules().await;
    assert_eq!(rules["rules"][0]["after"], 4);
    assert_eq!(rules["rules"][0]["subjects"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_during_a_burst_of_results_lose_none() {
    // 40 failures in a row open the incident: if a reload lost one, nothing would open.
    let rules = AFTER_THREE.replace("after: 3", "after: 40");
    let h = Harness::start(&rules);
    let mut results = tokio::task::JoinSet::new();
    for n in 0..40 {
        let engine = h.engine.clone();
        let at = h.clock.now() + chrono::Duration::seconds(n);
        results.spawn(async move {
            let observation = Observation {
                connected: true,
                status: Some(503),
                ..Observation::new(at)
            };
            engine
                .run(ProbeRun {
                    probe: "web".to_owned(),
                    at,
                    results: vec![(BTreeMap::new(), observation)],
                    complete: false,
                })
                .await
        });
    }
    // Reloads while the results are queued and applied.
    for _ in 0..5 {
        let report = h.reload().await;
        assert!(report.rules_changed.is_empty());
        tokio::task::yield_now().await;
    }
    let verdicts = results.join_all().await;
    assert_eq!(verdicts.len(), 40);
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let incidents = h.incidents();
    assert_eq!(incidents.len(), 1, "all 40 results counted");
}

#[tokio::test]
async fn the_engine_asks_for_confirmation_between_a_first_verdict_and_its_threshold() {
    let rules = AFTER_THREE.replace("after: 3}", "after: 3, recover_after: 2}");
    let h = Harness::start(&rules);
    let run = async |status: u16| {
        let observation = Observation {
            connected: true,
            status: Some(status),
            ..Observation::new(h.clock.now())
        };
        h.clock.advance(Duration::from_secs(1));
        h.engine
            .run(ProbeRun {
                probe: "web".to_owned(),
                at: observation.at,
                results: vec![(BTreeMap::new(), observation)],
                complete: false,
            })
            .await
            .unwrap()
            .confirm
    };
    let verdicts = [
        run(200).await, // clean, nothing pending
        run(500).await, // 1 of 3
        run(500).await, // 2 of 3
        run(500).await, // fired
        run(500).await, // firing, steady
        run(200).await, // 1 of 2 clean
        run(200).await, // recovered
        run(200).await, // clean, steady
    ];
    assert_eq!(
        verdicts,
        [false, true, true, false, false, true, false, false]
    );
}
