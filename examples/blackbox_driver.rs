//! Plays Prometheus' part for `tools/probe-load.sh`: blackbox_exporter only probes when it
//! is scraped, so this asks it for `/probe?module=http_2xx&target=http://127.0.0.1:TARGET/health?n=<i>`
//! at a fixed rate, `i` going round-robin over `targets` distinct URLs, for a fixed time,
//! with at most `concurrency` requests in flight.
//!
//! ```sh
//! cargo run --release --example blackbox_driver -- BLACKBOX_PORT TARGET_PORT [rate/s] [seconds] [targets] [concurrency]
//! ```
//!
//! Prints one line: `sent=… completed=… failed=… elapsed_s=… rate_per_s=…`. A probe is
//! `completed` when blackbox answered 200 with `probe_success 1`, `failed` otherwise (the
//! request failed, or blackbox said the target failed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

/// How often the pacer wakes up; each wake-up sends what the rate owes since the start.
const TICK: Duration = Duration::from_millis(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        anyhow::bail!(
            "usage: blackbox_driver BLACKBOX_PORT TARGET_PORT [rate/s=1000] [seconds=60] [targets=10000] [concurrency=256]"
        );
    }
    let blackbox_port: u16 = args[0].parse()?;
    let target_port: u16 = args[1].parse()?;
    let rate: f64 = args.get(2).map_or(Ok(1000.0), |s| s.parse())?;
    let seconds: f64 = args.get(3).map_or(Ok(60.0), |s| s.parse())?;
    let targets: u64 = args.get(4).map_or(Ok(10_000), |s| s.parse())?;
    let concurrency: usize = args.get(5).map_or(Ok(256), |s| s.parse())?;
    anyhow::ensure!(rate > 0.0 && seconds > 0.0 && targets > 0 && concurrency > 0);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let permits = Arc::new(Semaphore::new(concurrency));
    let completed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs_f64(seconds);

    let start = Instant::now();
    let deadline = start + duration;
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sent: u64 = 0;
    'pace: loop {
        let now = ticks.tick().await;
        if now >= deadline {
            break;
        }
        // Truncation is the point: the whole probes owed so far.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let owed = (now.duration_since(start).as_secs_f64() * rate) as u64;
        while sent < owed {
            // Bounded concurrency: when blackbox falls behind, the rate drops (and shows).
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit?,
                () = tokio::time::sleep_until(deadline) => break 'pace,
            };
            let url = format!(
                "http://127.0.0.1:{blackbox_port}/probe?module=http_2xx&target=http://127.0.0.1:{target_port}/health%3Fn%3D{}",
                sent % targets
            );
            sent += 1;
            let client = client.clone();
            let completed = completed.clone();
            let failed = failed.clone();
            tokio::spawn(async move {
                let ok = match client.get(&url).send().await {
                    Ok(response) if response.status().is_success() => response
                        .text()
                        .await
                        .is_ok_and(|body| body.lines().any(|l| l == "probe_success 1")),
                    _ => false,
                };
                if ok { &completed } else { &failed }.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }
    // Let what is in flight finish (bounded: the client times out after 5 s).
    let _ = tokio::time::timeout(
        Duration::from_secs(6),
        permits.acquire_many(u32::try_from(concurrency)?),
    )
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let completed = completed.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let achieved = completed as f64 / elapsed;
    println!(
        "sent={sent} completed={completed} failed={failed} elapsed_s={elapsed:.3} rate_per_s={achieved:.1}"
    );
    Ok(())
}
