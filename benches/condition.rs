//! Condition evaluation: how many times per second one core can decide whether a rule's
//! `when` holds for a probe's newest result. It runs once per rule per probe result.
//!
//! - `typical`: `[STATUS] != 200 || [RESPONSE_TIME] > 800ms` (target: ≥ 2 million/s).
//! - `p95`: `p95([RESPONSE_TIME], 5m) > 800ms` over 30 results 10s apart.
//! - `json`: `[BODY].json.status == "ok"` on a small JSON body (parsed once per evaluation).
//! - `regex`: `matches([BODY], "err(or)?")` on the same body.
//!
//! Before measuring, each condition is checked to allocate nothing per evaluation (after a
//! first, warming one), except `json`, which parses the body.
//!
//! Run: `cargo bench --bench condition`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use incidentd::domain::condition::Condition;
use incidentd::domain::observation::{History, Observation};

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per evaluation, over many.
fn allocations(condition: &Condition, history: &History) -> f64 {
    const RUNS: usize = 1000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..RUNS {
        black_box(condition.eval(black_box(history)));
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / RUNS as f64
}

const BODY: &str = r#"{"status": "ok", "version": "1.4.2", "checks": {"db": "ok", "cache": "ok"}, "uptime_seconds": 86400}"#;

/// 30 results 10s apart, the newest one healthy, with a small JSON body.
fn history() -> History {
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    (0..30_u32)
        .map(|i| Observation {
            connected: true,
            status: Some(200),
            response_time: Duration::from_millis(100 + u64::from(i * 37 % 500)),
            body: Some(BODY.to_owned()),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            ..Observation::new(start + chrono::TimeDelta::seconds(10 * i64::from(i)))
        })
        .collect::<VecDeque<_>>()
}

fn bench(c: &mut Criterion) {
    let history = history();
    let mut group = c.benchmark_group("condition");
    group.throughput(Throughput::Elements(1));
    // (name, condition, its value on the history, whether evaluating it may allocate)
    for (name, source, expected, allocates) in [
        (
            "typical",
            "[STATUS] != 200 || [RESPONSE_TIME] > 800ms",
            false,
            false,
        ),
        ("p95", "p95([RESPONSE_TIME], 5m) > 800ms", false, false),
        ("json", r#"[BODY].json.status == "ok""#, true, true),
        ("regex", r#"matches([BODY], "err(or)?")"#, false, false),
    ] {
        let condition = Condition::parse(source).unwrap();
        assert_eq!(condition.eval(&history), expected, "{source}");
        let per_eval = allocations(&condition, &history);
        println!("condition/{name}: {per_eval} allocations per evaluation");
        assert!(allocates || per_eval == 0.0, "`{source}` allocates");
        group.bench_function(name, |b| b.iter(|| condition.eval(black_box(&history))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
