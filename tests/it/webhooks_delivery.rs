//! Webhook delivery to four real receivers on loopback: healthy, down for a while
//! (connections refused, then up), 400 forever, 500 then recovering. One slow consumer
//! delays neither the others nor other incidents; every event arrives in order per
//! incident with a stable `webhook-id`; what runs out of `max_age` is a dead letter,
//! replayable through the API with the same `webhook-id`. And on one consumer, an
//! incident answered 500 or held until the timeout delays no other incident.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(30);
const INCIDENTS: usize = 4;

/// Every request as received: (webhook-id, type, incident id, status answered).
type Log = Arc<Mutex<Vec<(String, String, String, u16)>>>;

#[derive(Clone)]
struct Hook {
    status: Arc<AtomicU16>,
    log: Log,
}

impl Hook {
    fn new(status: u16) -> Hook {
        Hook {
            status: Arc::new(AtomicU16::new(status)),
            log: Log::default(),
        }
    }

    async fn serve(&self, listener: TcpListener) {
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    async fn start(status: u16) -> (Hook, SocketAddr) {
        let hook = Hook::new(status);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        hook.serve(listener).await;
        (hook, addr)
    }

    /// (webhook-id, type, incident) of the requests answered 2xx, in arrival order.
    fn accepted(&self) -> Vec<(String, String, String)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, _, status)| *status < 300)
            .map(|(id, kind, incident, _)| (id.clone(), kind.clone(), incident.clone()))
            .collect()
    }

    fn all(&self) -> Vec<(String, String, String, u16)> {
        self.log.lock().unwrap().clone()
    }
}

async fn receive(State(hook): State<Hook>, headers: HeaderMap, body: String) -> StatusCode {
    let status = hook.status.load(Ordering::SeqCst);
    let event: Value = serde_json::from_str(&body).unwrap();
    hook.log.lock().unwrap().push((
        headers["webhook-id"].to_str().unwrap().to_owned(),
        event["type"].as_str().unwrap().to_owned(),
        event["incident"]["id"].as_str().unwrap().to_owned(),
        status,
    ));
    StatusCode::from_u16(status).unwrap()
}

fn consumer(name: &str, addr: SocketAddr) -> String {
    format!(
        "  - {{name: {name}, url: 'http://{addr}/hook', secret_env: {SECRET_ENV}, retry_schedule: [50ms, 100ms], max_age: 1h, timeout: 2s}}\n"
    )
}

/// Events each incident got, in arrival order, by incident.
fn by_incident(events: &[(String, String, String)]) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (_, kind, incident) in events {
        map.entry(incident.clone()).or_default().push(kind.clone());
    }
    map
}

#[tokio::test]
async fn slow_consumers_delay_no_one_dead_letters_replay_with_the_same_id() {
    let (healthy, healthy_addr) = Hook::start(200).await;
    let (bad, bad_addr) = Hook::start(400).await;
    let (flaky, flaky_addr) = Hook::start(500).await;
    // Down: a port with nothing listening (refused) until the test starts it.
    let down_addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let down = Hook::new(200);
    let config = format!(
        "listen: 127.0.0.1:0\nstorage: {{path: data/incidentd.redb}}\nexternal_url: https://desk.example\nwebhooks:\n{}{}{}{}",
        consumer("healthy", healthy_addr),
        consumer("down", down_addr),
        consumer("bad", bad_addr),
        consumer("flaky", flaky_addr),
    );
    let dir = ConfigDir::new(&config, &[]);
    let app = TestApp::spawn(
        &dir,
        HashMap::from([(SECRET_ENV.to_owned(), secret_value())]),
    )
    .await;

    for n in 0..INCIDENTS {
        let (status, body) = app
            .post(
                "/api/v1/incidents",
                Some(json!({
                    "title": format!("Printer {n} on fire"),
                    "description": "smoke",
                    "reporter": {"name": "Ana", "contact": "ana@example.com"},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap();
        let (status, body) = app
            .post(&format!("/api/v1/incidents/{id}/acknowledge"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let expected = vec!["incident.opened", "incident.acknowledged"];

    // The healthy consumer gets everything promptly while the others fail.
    let got = eventually(
        "every event at the healthy consumer",
        DEADLINE,
        async || {
            let got = healthy.accepted();
            (got.len() == 2 * INCIDENTS).then_some(got)
        },
    )
    .await;
    for events in by_incident(&got).values() {
        assert_eq!(events, &expected);
    }
    assert!(flaky.all().iter().any(|(.., status)| *status == 500));
    assert!(bad.all().iter().any(|(.., status)| *status == 400));

    // The down one comes up, the flaky one recovers: all events, in order per incident,
    // each `webhook-id` the one the healthy consumer saw for that event.
    let ids: HashMap<(String, String), String> = got
        .iter()
        .map(|(id, kind, incident)| ((incident.clone(), kind.clone()), id.clone()))
        .collect();
    down.serve(TcpListener::bind(down_addr).await.unwrap())
        .await;
    flaky.status.store(200, Ordering::SeqCst);
    for (name, hook) in [("down", &down), ("flaky", &flaky)] {
        let got = eventually(name, DEADLINE, async || {
            let got = hook.accepted();
            (got.len() >= 2 * INCIDENTS).then_some(got)
        })
        .await;
        assert_eq!(got.len(), 2 * INCIDENTS, "{name}: {got:?}");
        for events in by_incident(&got).values() {
            assert_eq!(events, &expected, "{name}");
        }
        for (id, kind, incident) in &got {
            assert_eq!(&ids[&(incident.clone(), kind.clone())], id, "{name}");
        }
        // Retried events kept their id: every id the consumer saw is one of the events'.
        for (id, ..) in hook.all() {
            assert!(ids.values().any(|known| *known == id), "{name}: {id}");
        }
    }

    // The 400 one: past max_age, every event is a dead letter, listed and counted.
    app.clock.advance(Duration::from_secs(2 * 3600));
    let dead = eventually("dead letters", DEADLINE, async || {
        let (_, body) = app.get("/api/v1/webhooks/bad/deliveries").await;
        let dead = body["dead_letters"].as_array().cloned().unwrap_or_default();
        (dead.len() == 2 * INCIDENTS).then_some(body)
    })
    .await;
    assert!(
        dead["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["status"] == 400 && a["outcome"] == "retry"),
        "{dead}"
    );
    eventually("the dead-letter gauge", DEADLINE, async || {
        let metrics = app.metrics().await;
        metrics
            .contains(&format!(
                "incidentd_webhook_dead_letters{{consumer=\"bad\"}} {}",
                2 * INCIDENTS
            ))
            .then_some(())
    })
    .await;
    let (_, list) = app.get("/api/v1/webhooks").await;
    let bad_row = list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "bad")
        .unwrap()
        .clone();
    assert_eq!(bad_row["pending"], 0, "{list}");
    assert_eq!(bad_row["dead_letters"], 2 * INCIDENTS, "{list}");

    // Replayed once it answers: the same webhook-ids again, and no dead letters left.
    bad.status.store(200, Ordering::SeqCst);
    let (status, body) = app
        .post(
            "/api/v1/webhooks/bad/replay",
            Some(json!({"dead_letters": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queued"].as_array().unwrap().len(), 2 * INCIDENTS);
    let got = eventually("the replayed events", DEADLINE, async || {
        let got = bad.accepted();
        (got.len() == 2 * INCIDENTS).then_some(got)
    })
    .await;
    for (id, kind, incident) in &got {
        assert_eq!(&ids[&(incident.clone(), kind.clone())], id);
    }
    // One event by id, again with its id.
    let (one, ..) = got[0].clone();
    let (status, body) = app
        .post(
            "/api/v1/webhooks/bad/replay",
            Some(json!({"event_id": one})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("the event replayed by id", DEADLINE, async || {
        let got = bad.accepted();
        (got.len() == 2 * INCIDENTS + 1 && got.last().unwrap().0 == one).then_some(())
    })
    .await;
    app.stop().await;
}

/// How [`PerIncident`] answers the requests about one incident.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    Fail,
    /// Holds the request until the test releases it (the client times out first).
    Hang,
}

/// One consumer whose answer depends on the incident the event is about (by title).
#[derive(Clone)]
struct PerIncident {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    /// Every request: (title, type, answered 2xx), in arrival order (a hung one when it ends).
    log: Arc<Mutex<Vec<(String, String, bool)>>>,
    /// Requests hanging now.
    hanging: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests that began to hang, ever.
    hung: Arc<std::sync::atomic::AtomicUsize>,
    released: tokio::sync::watch::Sender<bool>,
}

struct Hanging(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Hanging {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PerIncident {
    async fn start(answers: &[(&str, Answer)]) -> (PerIncident, SocketAddr) {
        let hook = PerIncident {
            answers: Arc::new(Mutex::new(
                answers.iter().map(|(t, a)| ((*t).to_owned(), *a)).collect(),
            )),
            log: Arc::default(),
            hanging: Arc::default(),
            hung: Arc::default(),
            released: tokio::sync::watch::channel(false).0,
        };
        let app = Router::new()
            .route("/hook", post(answer_per_incident))
            .with_state(hook.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hook, addr)
    }

    /// Every incident is answered 200 from now on; hung requests end.
    fn recover(&self) {
        for answer in self.answers.lock().unwrap().values_mut() {
            *answer = Answer::Ok;
        }
        self.released.send_replace(true);
    }

    /// The types accepted for the incident, in arrival order.
    fn accepted(&self, title: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, ok)| t == title && *ok)
            .map(|(_, kind, _)| kind.clone())
            .collect()
    }

    /// The types requested for the incident, every attempt, in arrival order.
    fn attempted(&self, title: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, ..)| t == title)
            .map(|(_, kind, _)| kind.clone())
            .collect()
    }
}

async fn answer_per_incident(State(hook): State<PerIncident>, body: String) -> StatusCode {
    let event: Value = serde_json::from_str(&body).unwrap();
    let title = event["incident"]["title"].as_str().unwrap().to_owned();
    let kind = event["type"].as_str().unwrap().to_owned();
    let answer = hook
        .answers
        .lock()
        .unwrap()
        .get(&title)
        .copied()
        .unwrap_or(Answer::Ok);
    let answer = if answer == Answer::Hang {
        hook.hanging.fetch_add(1, Ordering::SeqCst);
        hook.hung.fetch_add(1, Ordering::SeqCst);
        let _hanging = Hanging(hook.hanging.clone());
        // Dropped (the guard with it) when the client gives up on the request.
        let _ = hook
            .released
            .subscribe()
            .wait_for(|released| *released)
            .await;
        Answer::Ok
    } else {
        answer
    };
    let ok = answer == Answer::Ok;
    hook.log.lock().unwrap().push((title, kind, ok));
    if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// The main guarantee on ONE consumer: an incident whose event is stuck (answered 500, or
/// held until the client's timeout) delays no other incident's events to that consumer;
/// they arrive while the stuck ones are still stuck, in order per incident. Once the stuck
/// ones recover, their events arrive too, in order, none sent before the one before it
/// was accepted.
#[tokio::test]
async fn a_stuck_incident_delays_no_other_incident_on_the_same_consumer() {
    let (hook, addr) =
        PerIncident::start(&[("failing", Answer::Fail), ("hanging", Answer::Hang)]).await;
    let config = format!(
        "listen: 127.0.0.1:0\nstorage: {{path: data/incidentd.redb}}\nwebhooks:\n  - {{name: one, url: 'http://{addr}/hook', secret_env: {SECRET_ENV}, retry_schedule: [50ms, 100ms], max_age: 1h, timeout: 3s}}\n",
    );
    let dir = ConfigDir::new(&config, &[]);
    let app = TestApp::spawn(
        &dir,
        HashMap::from([(SECRET_ENV.to_owned(), secret_value())]),
    )
    .await;
    let stuck = ["failing", "hanging"];
    let healthy = ["healthy 1", "healthy 2", "healthy 3"];
    // The stuck incidents first: their events are at the head of the consumer's outbox.
    for title in stuck.iter().chain(&healthy) {
        let (status, body) = app
            .post(
                "/api/v1/incidents",
                Some(json!({
                    "title": title,
                    "reporter": {"name": "Ana", "contact": "ana@example.com"},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap();
        for (action, body) in [
            ("acknowledge", None),
            ("resolve", Some(json!({"resolution": "restarted"}))),
        ] {
            let (status, body) = app
                .post(&format!("/api/v1/incidents/{id}/{action}"), body)
                .await;
            assert_eq!(status, StatusCode::OK, "{action}: {body}");
        }
    }
    let expected = [
        "incident.opened",
        "incident.acknowledged",
        "incident.resolved",
    ];

    eventually("the healthy incidents' events", DEADLINE, async || {
        healthy
            .iter()
            .all(|title| hook.accepted(title).len() == expected.len())
            .then_some(())
    })
    .await;
    // ...while the stuck ones are still stuck: nothing of theirs accepted, their first
    // event tried (the failing one more than once).
    for title in healthy {
        assert_eq!(hook.accepted(title), expected, "{title}");
    }
    for title in stuck {
        assert_eq!(hook.accepted(title), Vec::<String>::new(), "{title}");
    }
    assert!(
        hook.attempted("failing").len() >= 2,
        "retried while others went"
    );
    // All of it within the first hung request's timeout: not one healthy event waited
    // for it.
    assert_eq!(
        hook.hung.load(Ordering::SeqCst),
        1,
        "the hung request timed out first"
    );
    assert_eq!(hook.hanging.load(Ordering::SeqCst), 1);
    // The client gives up at its timeout and tries the same event again.
    eventually("the hung event tried again", DEADLINE, async || {
        (hook.hung.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert_eq!(hook.accepted("hanging"), Vec::<String>::new());

    hook.recover();
    eventually("the stuck incidents' events", DEADLINE, async || {
        stuck
            .iter()
            .all(|title| hook.accepted(title).len() == expected.len())
            .then_some(())
    })
    .await;
    for title in stuck {
        assert_eq!(hook.accepted(title), expected, "{title}");
        // Every attempt was at the oldest event not yet accepted: retries of the first,
        // then the next, never one overtaking another.
        let mut attempts = hook.attempted(title);
        attempts.dedup();
        assert_eq!(attempts, expected, "{title}");
    }
    app.stop().await;
}

/// The consumers' filters decide what is queued for each, end to end: three incidents
/// (P1 availability on `vpn`, P5 availability on `mail`, a P3 request without a service),
/// each opened and acknowledged, reach exactly the consumers whose filters they pass.
/// Every body carries `url` when `external_url` is set, and none does when it is not.
#[tokio::test]
async fn consumer_filters_decide_what_is_queued_and_bodies_carry_the_url() {
    let filters = [
        ("all", ""),
        ("urgent", "min_priority: P2"),
        ("requests", "kinds: [request]"),
        ("availability", "categories: [availability]"),
        ("vpn", "services: [vpn]"),
        ("opened", "events: [incident.opened]"),
    ];
    let mut receivers = HashMap::new();
    let mut config = "listen: 127.0.0.1:0\nstorage: {path: data/incidentd.redb}\nexternal_url: https://desk.example/\nwebhooks:\n".to_owned();
    for (name, filter) in filters {
        let receiver = Receiver::start(200).await;
        let filter = if filter.is_empty() {
            String::new()
        } else {
            format!(", {filter}")
        };
        config.push_str(&format!(
            "  - {{name: {name}, url: '{}', secret_env: {SECRET_ENV}{filter}}}\n",
            receiver.url()
        ));
        receivers.insert(name, receiver);
    }
    let dir = ConfigDir::new(&config, &[]);
    let env = HashMap::from([(SECRET_ENV.to_owned(), secret_value())]);
    let app = TestApp::spawn(&dir, env.clone()).await;
    let tickets = [
        json!({"category": "availability", "impact": "high", "urgency": "high", "service": "vpn"}),
        json!({"category": "availability", "impact": "low", "urgency": "low", "service": "mail"}),
        json!({"category": "request", "impact": "medium", "urgency": "medium"}),
    ];
    let mut ids = Vec::new();
    for (n, ticket) in tickets.into_iter().enumerate() {
        let mut ticket = ticket;
        ticket["title"] = json!(format!("Ticket {n}"));
        ticket["reporter"] = json!({"name": "Ana", "contact": "ana@example.com"});
        let (status, body) = app.post("/api/v1/incidents", Some(ticket)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let (status, body) = app
            .post(&format!("/api/v1/incidents/{id}/acknowledge"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(id);
    }
    assert_eq!(ids, ["INC-1", "INC-2", "INC-3"]);

    // Once nothing is pending anywhere, what each consumer got is all it will get.
    eventually("every consumer's outbox empty", DEADLINE, async || {
        let (_, list) = app.get("/api/v1/webhooks").await;
        let rows = list["webhooks"].as_array().cloned().unwrap_or_default();
        (rows.len() == filters.len() && rows.iter().all(|w| w["pending"] == 0)).then_some(())
    })
    .await;
    let got = |name: &str| {
        let mut got: Vec<(String, String)> = receivers[name]
            .accepted()
            .iter()
            .map(|d| {
                let body = d.json();
                (
                    body["incident"]["id"].as_str().unwrap().to_owned(),
                    d.event_type(),
                )
            })
            .collect();
        got.sort();
        got.dedup();
        got
    };
    let both = |ids: &[&str]| {
        let mut events: Vec<(String, String)> = ids
            .iter()
            .flat_map(|id| {
                ["incident.acknowledged", "incident.opened"]
                    .map(|kind| ((*id).to_owned(), kind.to_owned()))
            })
            .collect();
        events.sort();
        events
    };
    assert_eq!(got("all"), both(&["INC-1", "INC-2", "INC-3"]));
    assert_eq!(got("urgent"), both(&["INC-1"]), "P1 only (P2 and above)");
    assert_eq!(got("requests"), both(&["INC-3"]));
    assert_eq!(got("availability"), both(&["INC-1", "INC-2"]));
    assert_eq!(got("vpn"), both(&["INC-1"]));
    let opened: Vec<(String, String)> = ["INC-1", "INC-2", "INC-3"]
        .map(|id| (id.to_owned(), "incident.opened".to_owned()))
        .into();
    assert_eq!(got("opened"), opened);
    for delivery in receivers["all"].accepted() {
        let body = delivery.json();
        let id = body["incident"]["id"].as_str().unwrap();
        assert_eq!(body["url"], format!("https://desk.example/incidents/{id}"));
        assert!(delivery.verifies());
    }
    app.stop().await;

    // Without external_url, no `url`.
    let receiver = Receiver::start(200).await;
    let config = format!(
        "listen: 127.0.0.1:0\nstorage: {{path: data/incidentd.redb}}\nwebhooks:\n  - {{name: all, url: '{}', secret_env: {SECRET_ENV}}}\n",
        receiver.url()
    );
    let dir = ConfigDir::new(&config, &[]);
    let app = TestApp::spawn(&dir, env).await;
    let (status, body) = app
        .post(
            "/api/v1/incidents",
            Some(json!({"title": "VPN down", "reporter": {"name": "Ana", "contact": "ana@example.com"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let delivered = eventually("the event without external_url", DEADLINE, async || {
        receiver.accepted().into_iter().next()
    })
    .await;
    let body = delivered.json();
    assert_eq!(body["type"], "incident.opened");
    assert!(body.get("url").is_none(), "{body}");
    app.stop().await;
}
