//! Webhook delivery to four real receivers on loopback: healthy, down for a while
//! (connections refused, then up), 400 forever, 500 then recovering. One slow consumer
//! delays neither the others nor other incidents; every event arrives in order per
//! incident with a stable `webhook-id`; what runs out of `max_age` is a dead letter,
//! replayable through the API with the same `webhook-id`.

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
