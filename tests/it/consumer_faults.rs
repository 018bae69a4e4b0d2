//! Seven webhook consumers side by side on one app, all subscribed to everything, while
//! events are made over many incidents: one healthy; one that times out (never answers,
//! or answers after its `timeout`); one answering 500 for a while; one answering 429 with
//! `Retry-After` in seconds and one with the HTTP-date form; one answering 410 (disabled
//! until an admin enables it, then it gets its backlog); one answering 400 forever (dead
//! letters after its short `max_age`, then replayed); one down (connection refused) for
//! more than 30 s. The healthy one gets every event promptly while the others fail; each
//! of the others finally gets every event, in order per incident, with the `webhook-id`
//! the healthy one saw; no retry comes before the `Retry-After` it was told; and the
//! metrics agree with what the consumers saw. Also: a `Retry-After` asking for no wait is
//! not a busy loop, and consumers misbehaving on the wire (a trickled head, 1 MiB of
//! headers, a reset, garbage, an endless body) fail clearly within their timeout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use incidentd::clock::{Clock, ManualClock};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::*;

/// Deadline of each "eventually".
const DEADLINE: Duration = Duration::from_secs(60);
/// The consumers' `timeout`.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long the `down` consumer refuses connections, at least.
const DOWN_FOR: Duration = Duration::from_secs(35);
/// Waves of events, a few seconds apart; each opens [`PER_WAVE`] incidents and moves the
/// earlier ones on (acknowledge, note, resolve).
const WAVES: usize = 8;
const PER_WAVE: usize = 3;
const INCIDENTS: usize = WAVES * PER_WAVE;
/// What each incident goes through, in order.
const LIFE: [&str; 4] = [
    "incident.opened",
    "incident.acknowledged",
    "incident.note_added",
    "incident.resolved",
];
const EVENTS: usize = INCIDENTS * LIFE.len();

/// How a consumer answers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Status(u16),
    /// Every other request is never answered (until the client leaves); the others are
    /// answered 200, but only after twice the consumer's timeout.
    TimeOut,
    /// 429 with `Retry-After: N` (seconds) on an event's first attempt, 200 after.
    RetryAfterSeconds(u64),
    /// 429 with `Retry-After: <HTTP-date N seconds after the app's clock>` on an event's
    /// first attempt, 200 after.
    RetryAfterDate(i64),
    /// 429 with this `Retry-After`, always.
    Always429(&'static str),
}

/// One request as the consumer saw it.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    event_id: String,
    kind: String,
    incident: String,
    /// What it was answered; `None`: never (the client gave up first).
    status: Option<u16>,
    arrived: Instant,
    /// A 429's `Retry-After` as a wait from `arrived`: no retry may come before it.
    retry_after: Option<Duration>,
}

#[derive(Clone)]
struct Consumer {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The app's clock, for the HTTP-date form of `Retry-After`.
    clock: Arc<Mutex<Option<ManualClock>>>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl Consumer {
    fn new(mode: Mode) -> Consumer {
        Consumer {
            mode: Arc::new(Mutex::new(mode)),
            seen: Arc::default(),
            clock: Arc::default(),
            requests: Arc::default(),
        }
    }

    fn serve(&self, listener: TcpListener) {
        let app = Router::new()
            .route("/hook", post(answer))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    async fn start(mode: Mode) -> (Consumer, SocketAddr) {
        let consumer = Consumer::new(mode);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        consumer.serve(listener);
        (consumer, addr)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests answered 2xx, in arrival order.
    fn accepted(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.status.is_some_and(|status| status < 300))
            .collect()
    }

    /// Requests answered `status` (`None`: never answered).
    fn answered(&self, status: Option<u16>) -> usize {
        self.seen().iter().filter(|s| s.status == status).count()
    }
}

async fn answer(State(consumer): State<Consumer>, headers: HeaderMap, body: String) -> Response {
    let arrived = Instant::now();
    let event: Value = serde_json::from_str(&body).unwrap();
    let id = headers["webhook-id"].to_str().unwrap().to_owned();
    let mut seen = Seen {
        event_id: event["id"].as_str().unwrap().to_owned(),
        kind: event["type"].as_str().unwrap().to_owned(),
        incident: event["incident"]["id"].as_str().unwrap().to_owned(),
        id,
        status: None,
        arrived,
        retry_after: None,
    };
    let n = consumer
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mode = *consumer.mode.lock().unwrap();
    let first_attempt = !consumer.seen().iter().any(|s| s.id == seen.id);
    let response = match mode {
        Mode::Ok => StatusCode::OK.into_response(),
        Mode::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Mode::TimeOut => {
            consumer.seen.lock().unwrap().push(seen);
            if n % 2 == 0 {
                std::future::pending::<()>().await;
            }
            // Answered long after the client gave up: it never hears of it (and hyper
            // drops this handler when the client closes the connection).
            tokio::time::sleep(2 * TIMEOUT).await;
            return StatusCode::OK.into_response();
        }
        Mode::RetryAfterSeconds(seconds) if first_attempt => {
            seen.retry_after = Some(Duration::from_secs(seconds));
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds));
            response
        }
        Mode::RetryAfterDate(seconds) if first_attempt => {
            let clock = consumer.clock.lock().unwrap().clone().unwrap();
            let now = clock.now();
            let at = now + chrono::Duration::seconds(seconds);
            // An HTTP-date has whole seconds: the wait is from now to that second.
            let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            let whole = at.timestamp() - now.timestamp();
            seen.retry_after = Some(
                Duration::from_secs(u64::try_from(whole).unwrap()).saturating_sub(
                    Duration::from_nanos(u64::from(now.timestamp_subsec_nanos())),
                ),
            );
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_str(&date).unwrap());
            response
        }
        Mode::RetryAfterSeconds(_) | Mode::RetryAfterDate(_) => StatusCode::OK.into_response(),
        Mode::Always429(value) => {
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static(value));
            response
        }
    };
    seen.status = Some(response.status().as_u16());
    consumer.seen.lock().unwrap().push(seen);
    response
}

/// A consumer retried every 100 ms to 1 s; `timeout` in seconds.
fn consumer_yaml(name: &str, addr: SocketAddr, max_age: &str, timeout: u64) -> String {
    format!(
        "  - {{name: {name}, url: 'http://{addr}/hook', secret_env: {SECRET_ENV}, retry_schedule: [100ms, 200ms, 500ms, 1s], max_age: {max_age}, timeout: {timeout}s}}\n"
    )
}

/// `incidentd_webhook_deliveries_total` by (consumer, outcome), and `incidentd_webhook_pending`
/// by consumer.
fn delivery_metrics(text: &str) -> (BTreeMap<(String, String), u64>, BTreeMap<String, i64>) {
    let labels = |line: &str| -> Option<(HashMap<String, String>, String)> {
        let (head, value) = line.rsplit_once(' ')?;
        let inside = head.split_once('{')?.1.strip_suffix('}')?;
        let labels = inside
            .split(',')
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                Some((name.to_owned(), value.trim_matches('"').to_owned()))
            })
            .collect();
        Some((labels, value.to_owned()))
    };
    let mut deliveries = BTreeMap::new();
    let mut pending = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("incidentd_webhook_deliveries_total{") {
            let (labels, value) = labels(line).unwrap();
            deliveries.insert(
                (labels["consumer"].clone(), labels["outcome"].clone()),
                value.parse().unwrap(),
            );
        } else if line.starts_with("incidentd_webhook_pending{") {
            let (labels, value) = labels(line).unwrap();
            pending.insert(labels["consumer"].clone(), value.parse().unwrap());
        }
    }
    (deliveries, pending)
}

/// Each consumer's row of `GET /api/v1/webhooks`, by name.
async fn webhooks(app: &TestApp) -> HashMap<String, Value> {
    let (status, body) = app.get("/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["name"].as_str().unwrap().to_owned(), row.clone()))
        .collect()
}

/// The event ids of each incident in the order they were first accepted.
fn order(accepted: &[Seen]) -> BTreeMap<String, Vec<String>> {
    let mut seen = HashSet::new();
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in accepted {
        if seen.insert(s.id.clone()) {
            order
                .entry(s.incident.clone())
                .or_default()
                .push(s.id.clone());
        }
    }
    order
}

#[tokio::test]
async fn seven_consumers_failing_their_own_ways_lose_nothing_and_block_no_one() {
    let (healthy, healthy_addr) = Consumer::start(Mode::Ok).await;
    let (slow, slow_addr) = Consumer::start(Mode::TimeOut).await;
    let (flaky, flaky_addr) = Consumer::start(Mode::Status(500)).await;
    let (seconds, seconds_addr) = Consumer::start(Mode::RetryAfterSeconds(2)).await;
    let (date, date_addr) = Consumer::start(Mode::RetryAfterDate(2)).await;
    let (gone, gone_addr) = Consumer::start(Mode::Status(410)).await;
    let (bad, bad_addr) = Consumer::start(Mode::Status(400)).await;
    // Down: nothing listens there (connections refused) until the test starts it.
    let down_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = Consumer::new(Mode::Ok);
    let config = format!(
        "listen: 127.0.0.1:0\nwebhooks:\n{}{}{}{}{}{}{}{}",
        consumer_yaml("healthy", healthy_addr, "1h", 5),
        consumer_yaml("slow", slow_addr, "1h", TIMEOUT.as_secs()),
        consumer_yaml("flaky", flaky_addr, "1h", 5),
        consumer_yaml("seconds", seconds_addr, "1h", 5),
        consumer_yaml("date", date_addr, "1h", 5),
        consumer_yaml("gone", gone_addr, "1h", 5),
        consumer_yaml("bad", bad_addr, "2m", 5),
        consumer_yaml("down", down_addr, "1h", 5),
    );
    let dir = ConfigDir::new(&config, &[]);
    let app = TestApp::spawn(
        &dir,
        HashMap::from([(SECRET_ENV.to_owned(), secret_value())]),
    )
    .await;
    *date.clock.lock().unwrap() = Some(app.clock.clone());
    let started = Instant::now();

    // Waves of events while every consumer but `healthy` fails. Wave w opens incidents and
    // moves those of the waves before it on: acknowledged, a note, resolved.
    let mut ids: Vec<String> = Vec::new();
    let post = async |path: String, body: Option<Value>| {
        let (status, body) = app.post(&path, body).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    };
    for wave in 0..WAVES + LIFE.len() - 1 {
        for (step, verb) in [(3, "resolve"), (2, "notes"), (1, "acknowledge")] {
            let Some(earlier) = wave.checked_sub(step).filter(|w| *w < WAVES) else {
                continue;
            };
            for id in &ids[earlier * PER_WAVE..(earlier + 1) * PER_WAVE] {
                let body = match verb {
                    "resolve" => Some(json!({"resolution": "restarted"})),
                    "notes" => Some(json!({"text": "looking into it"})),
                    _ => None,
                };
                post(format!("/api/v1/incidents/{id}/{verb}"), body).await;
            }
        }
        if wave < WAVES {
            for n in 0..PER_WAVE {
                let body = post(
                    "/api/v1/incidents".to_owned(),
                    Some(json!({
                        "title": format!("Printer {wave}.{n} on fire"),
                        "reporter": {"name": "Ana", "contact": "ana@example.com"},
                    })),
                )
                .await;
                ids.push(body["id"].as_str().unwrap().to_owned());
            }
        }
        // Made so far: LIFE[..k] for each incident that went through k steps.
        let made: usize = (0..=wave.min(WAVES - 1))
            .map(|w| PER_WAVE * (wave - w + 1).min(LIFE.len()))
            .sum();
        // The healthy consumer has all of it promptly, while the others still fail.
        eventually_ok("the healthy consumer up to date", DEADLINE, async || {
            let got = healthy.accepted().len();
            if got == made {
                Ok(())
            } else {
                Err(format!("{got} of {made} events"))
            }
        })
        .await;
        for (name, consumer) in [
            ("slow", &slow),
            ("flaky", &flaky),
            ("gone", &gone),
            ("bad", &bad),
        ] {
            assert!(consumer.accepted().is_empty(), "{name} accepted something");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let events = healthy.accepted();
    assert_eq!(events.len(), EVENTS);
    eprintln!(
        "{EVENTS} events over {INCIDENTS} incidents, made in {:?}",
        started.elapsed()
    );
    // The healthy consumer: every incident's life, in order, each event once.
    let expected_order = order(&events);
    assert_eq!(expected_order.len(), INCIDENTS);
    let kinds: HashMap<String, (String, String)> = events
        .iter()
        .map(|s| (s.id.clone(), (s.incident.clone(), s.kind.clone())))
        .collect();
    assert_eq!(kinds.len(), EVENTS, "one webhook-id per event");
    for (incident, ids) in &expected_order {
        let life: Vec<&str> = ids.iter().map(|id| kinds[id].1.as_str()).collect();
        assert_eq!(life, LIFE, "{incident}");
    }
    for s in &events {
        assert_eq!(s.id, s.event_id, "the webhook-id is the event's id");
    }

    // Every failing consumer has failed by now, each its own way.
    assert!(slow.answered(None) > 0);
    assert!(flaky.answered(Some(500)) > 0);
    assert!(bad.answered(Some(400)) > 0);
    assert!(gone.answered(Some(410)) > 0);

    // 410: disabled, visible in the API and the metrics, its events pending.
    let rows = eventually_ok("`gone` disabled", DEADLINE, async || {
        let rows = webhooks(&app).await;
        let row = &rows["gone"];
        if row["enabled"] == false && row["pending"] == EVENTS {
            Ok(rows)
        } else {
            Err(row.to_string())
        }
    })
    .await;
    assert!(
        rows["gone"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{}",
        rows["gone"]
    );
    eventually("the enabled gauge at 0", DEADLINE, async || {
        app.metrics()
            .await
            .contains("incidentd_webhook_consumer_enabled{consumer=\"gone\"} 0")
            .then_some(())
    })
    .await;
    let gone_requests = gone.seen().len();

    // Recovery: the timing-out and the 500 ones answer now; `gone` is enabled again.
    slow.set(Mode::Ok);
    flaky.set(Mode::Ok);
    gone.set(Mode::Ok);
    assert_eq!(
        gone.seen().len(),
        gone_requests,
        "a disabled consumer gets no request"
    );
    let (status, body) = app.post("/api/v1/webhooks/gone/enable", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Down for DOWN_FOR at least, then up.
    tokio::time::sleep_until(started + DOWN_FOR).await;
    assert!(down.seen().is_empty());
    down.serve(TcpListener::bind(down_addr).await.unwrap());
    eprintln!("`down` up after {:?}", started.elapsed());

    let recovering = [
        ("slow", &slow),
        ("flaky", &flaky),
        ("seconds", &seconds),
        ("date", &date),
        ("gone", &gone),
        ("down", &down),
    ];
    for (name, consumer) in recovering {
        check_everything_arrived(name, consumer, &expected_order, &kinds).await;
    }

    // Retry-After: no retry of an event before the wait its 429 asked for.
    for (name, consumer) in [("seconds", &seconds), ("date", &date)] {
        let seen = consumer.seen();
        let mut told = 0;
        for (n, first) in seen.iter().enumerate() {
            let Some(wait) = first.retry_after else {
                continue;
            };
            told += 1;
            let next = seen[n + 1..]
                .iter()
                .find(|s| s.id == first.id)
                .unwrap_or_else(|| panic!("{name}: {} never retried", first.id));
            let waited = next.arrived - first.arrived;
            assert!(
                waited >= wait,
                "{name}: {} retried after {waited:?}, told to wait {wait:?}",
                first.id
            );
        }
        assert_eq!(told, EVENTS, "{name}: every event was told to wait once");
    }

    // 400 forever: once past its max_age (2m), every event is a dead letter.
    app.clock.advance(Duration::from_secs(3 * 60));
    let dead = eventually_ok("`bad`'s dead letters", DEADLINE, async || {
        let (_, body) = app.get("/api/v1/webhooks/bad/deliveries").await;
        let dead = body["dead_letters"].as_array().cloned().unwrap_or_default();
        if dead.len() == EVENTS {
            Ok(dead)
        } else {
            Err(format!("{} dead letters", dead.len()))
        }
    })
    .await;
    for letter in &dead {
        let id = letter["event_id"].as_str().unwrap();
        assert!(kinds.contains_key(id), "{letter}");
        assert!(
            letter["last_error"].as_str().unwrap().contains("400"),
            "{letter}"
        );
    }
    eventually("the dead-letter gauge", DEADLINE, async || {
        app.metrics()
            .await
            .contains(&format!(
                "incidentd_webhook_dead_letters{{consumer=\"bad\"}} {EVENTS}"
            ))
            .then_some(())
    })
    .await;
    let before_replay = bad.seen().len();
    assert!(bad.accepted().is_empty());
    bad.set(Mode::Ok);
    let (status, body) = app
        .post(
            "/api/v1/webhooks/bad/replay",
            Some(json!({"dead_letters": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queued"].as_array().unwrap().len(), EVENTS, "{body}");
    check_everything_arrived("bad (replayed)", &bad, &expected_order, &kinds).await;

    // Nothing pending anywhere, and the metrics agree with what the consumers saw.
    let rows = eventually_ok("nothing pending", DEADLINE, async || {
        let rows = webhooks(&app).await;
        let (_, pending) = delivery_metrics(&app.metrics().await);
        let busy: Vec<String> = rows
            .iter()
            .filter(|(name, row)| row["pending"] != 0 || pending.get(*name) != Some(&0))
            .map(|(name, row)| format!("{name}: {row} gauge {:?}", pending.get(name)))
            .collect();
        if busy.is_empty() {
            Ok(rows)
        } else {
            Err(busy.join("\n"))
        }
    })
    .await;
    assert!(rows.values().all(|row| row["enabled"] == true), "{rows:?}");
    let (deliveries, _) = delivery_metrics(&app.metrics().await);
    let metric = |consumer: &str, outcome: &str| {
        deliveries
            .get(&(consumer.to_owned(), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let all = [
        ("healthy", &healthy),
        ("slow", &slow),
        ("flaky", &flaky),
        ("seconds", &seconds),
        ("date", &date),
        ("gone", &gone),
        ("bad", &bad),
        ("down", &down),
    ];
    eprintln!("consumer: requests (by answer) | metrics success/retry/dead/gone");
    for (name, consumer) in all {
        let seen = consumer.seen();
        let mut by_answer: BTreeMap<String, usize> = BTreeMap::new();
        for s in &seen {
            let answer = s.status.map_or("none".to_owned(), |s| s.to_string());
            *by_answer.entry(answer).or_default() += 1;
        }
        eprintln!(
            "{name:>8}: {} requests {by_answer:?} | {}/{}/{}/{}",
            seen.len(),
            metric(name, "success"),
            metric(name, "retry"),
            metric(name, "dead"),
            metric(name, "gone"),
        );
        let answered = |status: Option<u16>| consumer.answered(status) as u64;
        // One outcome per attempt, and one success per event.
        let outcomes: u64 = ["success", "retry", "dead", "gone"]
            .iter()
            .map(|outcome| metric(name, outcome))
            .sum();
        if name != "down" {
            assert_eq!(
                outcomes,
                seen.len() as u64,
                "{name}: one outcome per request"
            );
        }
        assert_eq!(metric(name, "success"), EVENTS as u64, "{name}: successes");
        if name == "slow" {
            // An answer may come after its 1 s timeout on a loaded machine: a retry then,
            // which the sum above holds.
            continue;
        }
        assert_eq!(
            metric(name, "success"),
            answered(Some(200)),
            "{name}: successes"
        );
        assert_eq!(metric(name, "gone"), answered(Some(410)), "{name}: 410s");
        let failed = answered(None) + answered(Some(500)) + answered(Some(429));
        match name {
            // Refused connections never reach the consumer: the metric counts them.
            "down" => assert!(metric(name, "retry") > 0, "{name}: retries"),
            "bad" => assert_eq!(
                metric(name, "retry") + metric(name, "dead"),
                answered(Some(400)),
                "{name}: 400s"
            ),
            _ => assert_eq!(metric(name, "retry"), failed, "{name}: retries"),
        }
    }
    assert_eq!(metric("bad", "dead"), EVENTS as u64);
    assert!(bad.seen().len() >= before_replay + EVENTS);
    app.stop().await;
}

/// `consumer` accepted every event the healthy one did, each incident's in the same order,
/// and every request it got (whatever it answered) carried one of those events' ids with
/// that event's body.
async fn check_everything_arrived(
    name: &str,
    consumer: &Consumer,
    expected: &BTreeMap<String, Vec<String>>,
    kinds: &HashMap<String, (String, String)>,
) {
    let accepted = eventually_ok(&format!("every event at `{name}`"), DEADLINE, async || {
        let accepted = consumer.accepted();
        let distinct: HashSet<&str> = accepted.iter().map(|s| s.id.as_str()).collect();
        if distinct.len() == EVENTS {
            Ok(accepted)
        } else {
            Err(format!("{} of {EVENTS}", distinct.len()))
        }
    })
    .await;
    assert_eq!(&order(&accepted), expected, "{name}: order per incident");
    for s in consumer.seen() {
        let (incident, kind) = kinds
            .get(&s.id)
            .unwrap_or_else(|| panic!("{name}: unknown webhook-id {}", s.id));
        assert_eq!((&s.incident, &s.kind), (incident, kind), "{name}: {}", s.id);
        assert_eq!(s.id, s.event_id, "{name}");
    }
}

/// A consumer answering `429` with `Retry-After: 0`, or with a date already past, asks for
/// no wait at all; honouring that literally, forever, would be a busy loop against it (and
/// a delivery-log row per attempt). Each is retried at most about once a second until it
/// takes the event, which then arrives once.
#[tokio::test]
async fn a_consumer_asking_for_no_wait_is_not_retried_in_a_loop() {
    let (zero, zero_addr) = Consumer::start(Mode::Always429("0")).await;
    let (past, past_addr) = Consumer::start(Mode::Always429("Wed, 21 Oct 2015 07:28:00 GMT")).await;
    let config = format!(
        "listen: 127.0.0.1:0\nwebhooks:\n{}{}",
        consumer_yaml("zero", zero_addr, "1h", 1),
        consumer_yaml("past", past_addr, "1h", 1),
    );
    let dir = ConfigDir::new(&config, &[]);
    let app = TestApp::spawn(
        &dir,
        HashMap::from([(SECRET_ENV.to_owned(), secret_value())]),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/v1/incidents",
            Some(json!({"title": "Printer on fire", "reporter": {"name": "Ana", "contact": "ana@example.com"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (name, consumer) in [("zero", &zero), ("past", &past)] {
        eventually(&format!("`{name}` asked"), DEADLINE, async || {
            (!consumer.seen().is_empty()).then_some(())
        })
        .await;
    }
    // Three seconds: at about one attempt a second, a handful; a loop makes thousands.
    let watched = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let elapsed = watched.elapsed();
    for (name, consumer) in [("zero", &zero), ("past", &past)] {
        let attempts = consumer.seen().len();
        eprintln!("`{name}`: {attempts} attempts in {elapsed:?}");
        assert!(
            attempts <= 2 + elapsed.as_secs() as usize,
            "`{name}` was asked {attempts} times in {elapsed:?}"
        );
        assert!(attempts >= 2, "`{name}` was retried");
        consumer.set(Mode::Ok);
    }
    for (name, consumer) in [("zero", &zero), ("past", &past)] {
        let accepted = eventually(&format!("`{name}` took it"), DEADLINE, async || {
            let accepted = consumer.accepted();
            (!accepted.is_empty()).then_some(accepted)
        })
        .await;
        assert_eq!(accepted.len(), 1, "{name}");
        assert_eq!(accepted[0].kind, "incident.opened");
    }
    app.stop().await;
}

/// Consumers that misbehave at the HTTP level: a head trickled a byte at a time, 1 MiB of
/// headers, a connection reset at accept, bytes that are no HTTP, and a `200` whose body
/// never ends. Each attempt ends within the consumer's `timeout` (the body is never read:
/// the `200` is a delivery), the failures are retried with an error saying what happened,
/// and a healthy consumer beside them gets every event meanwhile.
#[tokio::test]
async fn consumers_misbehaving_on_the_wire_fail_clearly_and_block_no_one() {
    let (healthy, healthy_addr) = Consumer::start(Mode::Ok).await;
    let hostile = [
        ("trickle", Hostile::TrickleHead, "operation timed out"),
        ("huge", Hostile::HugeHeaders, "message head is too large"),
        // ECONNRESET, or EPIPE when the request's write comes after the reset.
        ("reset", Hostile::ResetAtAccept, "reset by peer|Broken pipe"),
        ("garbage", Hostile::Garbage, "invalid HTTP"),
    ];
    let mut config = format!(
        "listen: 127.0.0.1:0\nwebhooks:\n{}",
        consumer_yaml("healthy", healthy_addr, "1h", 1)
    );
    for (name, behaviour, _) in hostile {
        config += &consumer_yaml(name, hostile_server(behaviour).await, "1h", 1);
    }
    config += &consumer_yaml(
        "endless",
        hostile_server(Hostile::EndlessBody).await,
        "1h",
        1,
    );
    let dir = ConfigDir::new(&config, &[]);
    let app = TestApp::spawn(
        &dir,
        HashMap::from([(SECRET_ENV.to_owned(), secret_value())]),
    )
    .await;
    const TICKETS: usize = 3;
    for n in 0..TICKETS {
        let (status, body) = app
            .post(
                "/api/v1/incidents",
                Some(json!({"title": format!("Printer {n} on fire"), "reporter": {"name": "Ana", "contact": "ana@example.com"}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap();
        let (status, body) = app
            .post(&format!("/api/v1/incidents/{id}/acknowledge"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let events = 2 * TICKETS;
    eventually(
        "every event at the healthy consumer",
        DEADLINE,
        async || (healthy.accepted().len() == events).then_some(()),
    )
    .await;

    // The endless body's 200 is a delivery: every event, each once.
    let endless = eventually_ok("every event delivered to `endless`", DEADLINE, async || {
        let rows = webhooks(&app).await;
        let (_, body) = app
            .get("/api/v1/webhooks/endless/deliveries?outcome=success")
            .await;
        let delivered = body["deliveries"].as_array().cloned().unwrap_or_default();
        if rows["endless"]["pending"] == 0 && delivered.len() == events {
            Ok(delivered)
        } else {
            Err(format!(
                "{} delivered, {}",
                delivered.len(),
                rows["endless"]
            ))
        }
    })
    .await;
    let ids: HashSet<&str> = endless
        .iter()
        .map(|a| a["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events, "each event delivered once");

    // The others: retried, each attempt's error saying what happened, nothing delivered.
    for (name, _, says) in hostile {
        let attempts = eventually_ok(&format!("`{name}` retried"), DEADLINE, async || {
            let (_, body) = app
                .get(&format!("/api/v1/webhooks/{name}/deliveries"))
                .await;
            let attempts = body["deliveries"].as_array().cloned().unwrap_or_default();
            if attempts.len() >= 2 {
                Ok(attempts)
            } else {
                Err(format!("{} attempts", attempts.len()))
            }
        })
        .await;
        eprintln!("`{name}`: {}", attempts[0]["error"]);
        for attempt in &attempts {
            assert_eq!(attempt["outcome"], "retry", "{name}: {attempt}");
            let error = attempt["error"].as_str().unwrap();
            assert!(
                says.split('|').any(|phrase| error.contains(phrase)),
                "{name}: {error}"
            );
        }
        let rows = webhooks(&app).await;
        assert_eq!(rows[name]["pending"], events, "{name}: {}", rows[name]);
    }
    app.stop().await;
}
