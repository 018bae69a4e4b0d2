//! An alert-push load generator for `tools/alert-load.sh`: `CONNECTIONS` workers, each on its
//! own keep-alive connection, post Alertmanager v2 bodies (a JSON array of alerts) to `URL`
//! back to back for `SECONDS`, each worker waiting for its answer before the next request
//! (a closed loop: the rate is what the server sustains). Speaks to incidentd's and to
//! Alertmanager's `POST /api/v2/alerts` alike.
//!
//! ```sh
//! cargo run --release --example alert_load -- URL [connections=8] [batch=1] [seconds=10] [keys=0] [run=r]
//! ```
//!
//! Every alert has its own label set (`alertname=AlertLoad`, `run`, `worker`, `seq`), so
//! each one is a new alert to the server; `keys` > 0 cycles each worker's `seq` over
//! `keys / connections` values instead, so that after the first round every alert refreshes
//! one the server already holds (as Prometheus re-sending firing alerts does). `run` is a
//! label too, so that two runs against the same server do not refresh each other's alerts.
//! A bearer token is sent when `ALERT_LOAD_TOKEN` is set.
//!
//! Prints one line: `connections=… batch=… seconds=… requests=… alerts=… errors=…
//! requests_per_s=… alerts_per_s=… p50_ms=… p99_ms=… max_ms=… cpu_ticks=…`, latencies being
//! those of the requests answered 2xx, `cpu_ticks` the generator's own CPU time (utime +
//! stime from `/proc/self/stat`, in clock ticks; absent elsewhere than on Linux). An error is a request not answered 2xx (the first few are
//! shown on stderr). It runs on one thread, so that it leaves the other cores to the server.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

mod support;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        anyhow::bail!(
            "usage: alert_load URL [connections=8] [batch=1] [seconds=10] [keys=0] [run=r]"
        );
    };
    let connections: usize = args.get(1).map_or(Ok(8), |s| s.parse())?;
    let batch: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let seconds: f64 = args.get(3).map_or(Ok(10.0), |s| s.parse())?;
    let keys: u64 = args.get(4).map_or(Ok(0), |s| s.parse())?;
    let run = args.get(5).cloned().unwrap_or_else(|| "r".to_owned());
    anyhow::ensure!(
        connections > 0 && batch > 0 && seconds > 0.0,
        "connections, batch and seconds must be positive"
    );
    anyhow::ensure!(
        run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "run must be letters, digits and dashes (it goes into JSON as is)"
    );
    let token = std::env::var("ALERT_LOAD_TOKEN").ok();
    let per_worker_keys = (keys / connections as u64).max(1);

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut workers = Vec::with_capacity(connections);
    for worker in 0..connections {
        // One client per worker: its own pool, so one connection each, kept alive.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build()?;
        let url = url.clone();
        let token = token.clone();
        let run = run.clone();
        workers.push(tokio::spawn(async move {
            let mut done = Worker::default();
            let mut seq: u64 = 0;
            while Instant::now() < deadline {
                let mut body = String::with_capacity(batch * 200);
                body.push('[');
                for i in 0..batch {
                    let key = if keys > 0 { seq % per_worker_keys } else { seq };
                    seq += 1;
                    if i > 0 {
                        body.push(',');
                    }
                    write!(
                        body,
                        r#"{{"labels":{{"alertname":"AlertLoad","severity":"warning","job":"alert-load","run":"{run}","worker":"{worker}","seq":"{key}"}},"annotations":{{"summary":"load alert {worker}/{key}"}},"generatorURL":"http://127.0.0.1/graph"}}"#
                    )
                    .expect("writing to a String cannot fail");
                }
                body.push(']');
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let sent = Instant::now();
                let outcome = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        // Read the answer to the end, so the connection can be reused.
                        let text = response.text().await.unwrap_or_default();
                        if status.is_success() {
                            Ok(())
                        } else {
                            Err(format!("{status}: {}", text.chars().take(200).collect::<String>()))
                        }
                    }
                    Err(error) => Err(error.to_string()),
                };
                match outcome {
                    Ok(()) => {
                        done.latencies_us.push(
                            u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX),
                        );
                        done.alerts += batch as u64;
                    }
                    Err(error) => {
                        done.errors += 1;
                        if done.errors <= 3 {
                            eprintln!("alert_load: worker {worker}: {error}");
                        }
                    }
                }
            }
            done
        }));
    }

    let mut total = Worker::default();
    for worker in workers {
        let done = worker.await?;
        total.alerts += done.alerts;
        total.errors += done.errors;
        total.latencies_us.extend(done.latencies_us);
    }
    let elapsed = start.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let requests = total.latencies_us.len();
    let quantile_ms =
        |q: f64| support::quantile(&total.latencies_us, q).map_or(0.0, |us| f64::from(us) / 1000.0);
    #[allow(clippy::cast_precision_loss)]
    let (requests_per_s, alerts_per_s) = (requests as f64 / elapsed, total.alerts as f64 / elapsed);
    println!(
        "connections={connections} batch={batch} seconds={elapsed:.3} requests={requests} alerts={} errors={} requests_per_s={requests_per_s:.1} alerts_per_s={alerts_per_s:.1} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} cpu_ticks={}",
        total.alerts,
        total.errors,
        quantile_ms(0.50),
        quantile_ms(0.99),
        quantile_ms(1.0),
        support::cpu_ticks("self").map_or_else(|| "-".to_owned(), |t| t.to_string()),
    );
    Ok(())
}

/// What one worker did: alerts accepted, requests refused or failed, and the latency of each
/// accepted request in microseconds.
#[derive(Default)]
struct Worker {
    alerts: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}
