//! `incidentd test [--config incidentd.yaml] FILE...`: rule unit tests, like `promtool test
//! rules`. A test feeds made-up probe results, step by step, to the **real engine** (a fresh
//! temporary store, a [`ManualClock`], no webhooks) and compares the incidents it opened,
//! resolved, reopened or re-prioritized with what the test expects. The engine runs with the
//! deployment's workflow (categories, priority matrix, escalation, closure and SLA policies,
//! from [`config::load_workflow`]), so a test cannot pass while the server would decide
//! otherwise.
//!
//! # The file format
//!
//! ```yaml
//! rule_files: [../self.yaml]        # globs, relative to this file; each must match a file
//! tests:
//!   - name: health endpoint down opens and resolves   # unique in the file
//!     start: 2026-01-01T00:00:00Z   # the time of step 1 (this is the default)
//!     interval: 15s                 # time between steps (default: each probe's interval)
//!     probes:                       # per probe, its result at step 1, 2, 3, …
//!       incidentd-self:
//!         - {status: 200, response_time: 20ms}
//!         - {status: 503, response_time: 20ms, repeat: 3}   # steps 2, 3 and 4
//!         - {connected: false, error: connection refused}
//!         - {status: 200, repeat: 2}
//!     expect:
//!       - {step: 4, opened: {rule: incidentd-self-down, title: "incidentd health endpoint failing (503)", category: availability, priority: P2}}
//!       - {step: 7, resolved: {rule: incidentd-self-down}}
//!     no_other_incidents: true      # the default: anything not expected fails the test
//! ```
//!
//! **Steps are numbered from 1.** Step `n` of a probe is its `n`-th result and happens at
//! `start + (n - 1) × interval`. `repeat: N` stands for N steps with the same result (default
//! 1). When several probes have a result at the same instant they are fed in the order the
//! test lists them.
//!
//! A result may set `status`, `response_time` (a duration, default `0s`), `connected`
//! (default true; `false` cannot have a `status`), `error`, `body`, `headers` (a map; names
//! are lower-cased as a probe reports them), `certificate_expiry` (an RFC 3339 time, or a
//! duration from the step's time such as `10d`, or `-1d` for one that expired), `dns_rcode`,
//! `value` and `subject` (the series' labels, prometheus probes only).
//!
//! Each expectation has a `step` (of the rule's probe) and one of:
//! - `opened: {rule, title, category, priority, tier, labels}`: only `rule` is required; the
//!   other fields are compared when given (`labels` must be among the incident's labels);
//! - `resolved: {rule}` and `reopened: {rule}`;
//! - `priority_changed: {rule, from, to}` (`from` optional).
//!
//! An incident's title, category, priority, tier and labels are compared as they were at the
//! end of that step. With `no_other_incidents: true` every opening, resolution, reopening and
//! priority change must be expected. Every test starts from an empty store, so its incidents
//! are `INC-1`, `INC-2`, … in the order they opened.
//!
//! # How it finds what happened
//!
//! Each instant, the clock is set and each result is sent as a one-result probe run (`EngineHandle::run`), awaiting
//! its commit; then the incidents are read from the store (a snapshot per instant). At the
//! end, each incident's timeline entries `opened`, `resolved`, `reopened` and
//! `priority_changed` are placed at the instant of their timestamp, hence at a step of the
//! incident's probe, and the snapshot of that instant tells what the incident looked like.
//!
//! A failure reads like promtool's:
//!
//! ```text
//! rules/tests/self_test.yaml: test "health endpoint down opens and resolves": FAILED
//!   step 3: expected incident opened by rule incidentd-self-down with priority P2
//!           got: nothing opened at step 3 (opened at step 4: INC-1 "incidentd health endpoint failing (503)" P2)
//!   step 4: unexpected: incident opened by rule incidentd-self-slow: INC-2 "incidentd health endpoint slow (900ms)" P4
//! ```
//!
//! An expectation that is not met is explained by what its rule did of that kind instead (at
//! its step with other details, or at other steps); what explains a failure is not reported
//! again as unexpected.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::ManualClock;
use crate::config::{
    self, AuthConfig, Config, ConfigErrors, Expectation, ExpectedEvent, ProbeResult, ProbeSeries,
    RuleTest, RuleTestFile,
};
use crate::domain::duration::format_duration;
use crate::domain::incident::{Incident, IncidentId, Source, Tier, TimelineEntry};
use crate::domain::observation::{BODY_LIMIT, Observation};
use crate::domain::policy::WorkflowConfig;
use crate::domain::priority::Priority;
use crate::engine::{Engine, EngineError, ProbeRun};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Why a test could not run (as opposed to: it ran and failed).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create a temporary store: {0}")]
    TempDir(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("step {step} of probe `{probe}` is too far from the start to be a time")]
    TimeOutOfRange { probe: String, step: u32 },
    #[error("the engine stopped unexpectedly: {0}")]
    Crashed(String),
}

/// One test's result.
#[derive(Debug)]
pub struct TestReport {
    pub name: String,
    /// The failures (none: it passed), or why it could not run.
    pub outcome: Result<Vec<Failure>, RunError>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.outcome.as_ref().is_ok_and(Vec::is_empty)
    }
}

/// Loads a test file (and its rule files) and runs each of its tests on its own engine, with
/// the deployment's `workflow` (categories, priority matrix, escalation, closure, SLA), as
/// the server would decide.
pub async fn run_file(
    path: &Path,
    workflow: &WorkflowConfig,
) -> Result<Vec<TestReport>, ConfigErrors> {
    let file = config::load_rule_test(path, workflow)?;
    let mut reports = Vec::with_capacity(file.tests.len());
    for test in &file.tests {
        let outcome = run_test(&file, test)
            .await
            .map(|happened| compare(&test.expect, &happened, test.no_other_incidents));
        reports.push(TestReport {
            name: test.name.clone(),
            outcome,
        });
    }
    Ok(reports)
}

/// Everything a failed test prints; `None` when it passed.
pub fn render(file: &Path, report: &TestReport) -> Option<String> {
    let mut out = format!("{}: test \"{}\": FAILED\n", file.display(), report.name);
    match &report.outcome {
        Ok(failures) if failures.is_empty() => return None,
        Ok(failures) => {
            for failure in failures {
                let lead = format!("  {}: ", failure.moment);
                let _ = writeln!(out, "{lead}{}", failure.expected);
                if let Some(got) = &failure.got {
                    let _ = writeln!(out, "{:width$}got: {got}", "", width = lead.len());
                }
            }
        }
        Err(error) => {
            let _ = writeln!(out, "  could not run: {error}");
        }
    }
    Some(out)
}

/// The last line: `3 tests passed`, `1 of 3 tests failed`, and how many files were invalid.
pub fn summary(passed: usize, failed: usize, invalid_files: usize) -> String {
    let total = passed + failed;
    let tests = if total == 1 { "test" } else { "tests" };
    let mut line = if failed == 0 {
        format!("{total} {tests} passed")
    } else {
        format!("{failed} of {total} {tests} failed")
    };
    match invalid_files {
        0 => {}
        1 => line.push_str("; 1 test file is invalid"),
        n => line.push_str(&format!("; {n} test files are invalid")),
    }
    line
}

// ---------------------------------------------------------------------------------------
// Running a test on the real engine.

/// An instant of a test: how far from the start, and which (series, step) are fed then, in
/// the order the test lists the probes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tick {
    offset: Duration,
    feeds: Vec<(usize, u32)>,
}

/// Every instant at which some probe has a result, in time order.
fn schedule(series: &[ProbeSeries]) -> Vec<Tick> {
    let mut all: Vec<(Duration, usize, u32)> = Vec::new();
    for (index, series) in series.iter().enumerate() {
        let mut offset = Some(Duration::ZERO);
        for step in 1..=series.results.len() {
            let Ok(step) = u32::try_from(step) else { break };
            // An offset that does not fit is left as the largest one; turning it into a time
            // fails later with a message naming the step.
            all.push((offset.unwrap_or(Duration::MAX), index, step));
            offset = offset.and_then(|offset| offset.checked_add(series.interval));
        }
    }
    all.sort_by_key(|&(offset, index, step)| (offset, index, step));
    let mut ticks: Vec<Tick> = Vec::new();
    for (offset, index, step) in all {
        match ticks.last_mut() {
            Some(tick) if tick.offset == offset => tick.feeds.push((index, step)),
            _ => ticks.push(Tick {
                offset,
                feeds: vec![(index, step)],
            }),
        }
    }
    ticks
}

/// A result as the probe would have reported it at `at`.
fn observation(result: &ProbeResult, at: DateTime<Utc>) -> Observation {
    Observation {
        at,
        connected: result.connected,
        status: result.status,
        response_time: result.response_time,
        error: result.error.clone(),
        body: result.body.as_deref().map(|body| {
            let mut end = body.len().min(BODY_LIMIT);
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body[..end].to_owned()
        }),
        headers: result.headers.clone(),
        certificate_expiry: result.certificate_expiry.map(|expiry| expiry.at(at)),
        dns_rcode: result.dns_rcode.clone(),
        value: result.value,
    }
}

/// What the engine needs of a configuration: the rule files' probes and rules, the
/// deployment's workflow, nothing to listen on and no webhooks.
fn engine_config(file: &RuleTestFile, storage_path: &Path) -> Config {
    Config {
        path: file.path.clone(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        external_url: None,
        storage_path: storage_path.to_path_buf(),
        postgres: None,
        rule_files: file.rule_files.clone(),
        auth: AuthConfig::default(),
        webhooks: Vec::new(),
        probe_concurrency: 1,
        probe_duration_histogram: Default::default(),
        workflow: file.workflow.clone(),
        probes: file.probes.clone(),
        rules: file.rules.clone(),
        http: Default::default(),
        alerts: Default::default(),
        status_page: Default::default(),
        mail: None,
    }
}

/// Runs a redb read off the async threads, as the store asks.
async fn read<T: Send + 'static>(
    store: &Store,
    read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RunError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(|join| RunError::Crashed(join.to_string()))?
        .map_err(RunError::from)
}

/// Runs one test on a fresh engine and store; returns what happened, in time order.
async fn run_test(file: &RuleTestFile, test: &RuleTest) -> Result<Vec<Happened>, RunError> {
    let dir = tempfile::Builder::new()
        .prefix("incidentd-test-")
        .tempdir()
        .map_err(RunError::TempDir)?;
    let path = dir.path().join("incidentd.redb");
    let config = engine_config(file, &path);
    let store = tokio::task::spawn_blocking(move || Store::open(&path))
        .await
        .map_err(|join| RunError::Crashed(join.to_string()))??;
    let clock = ManualClock::new(test.start);
    let stop = CancellationToken::new();
    let (engine, _read, task) = Engine::start(
        store.clone(),
        &config,
        Arc::new(clock.clone()),
        Metrics::new(),
        Arc::new(HashMap::new()),
        stop.clone(),
        true,
    )?;
    let ticks = schedule(&test.series);
    let fed = async {
        let mut times = Vec::with_capacity(ticks.len());
        let mut snapshots: Vec<Arc<Snapshot>> = Vec::with_capacity(ticks.len());
        for tick in &ticks {
            let at = chrono::Duration::from_std(tick.offset)
                .ok()
                .and_then(|offset| test.start.checked_add_signed(offset))
                .ok_or_else(|| {
                    let (series, step) = tick.feeds[0];
                    RunError::TimeOutOfRange {
                        probe: test.series[series].probe.clone(),
                        step,
                    }
                })?;
            clock.set(at);
            // Timers due by now fire first, deterministically (the engine's own ticker
            // runs on real time and would fire them whenever it happens to look).
            engine.tick().await?;
            for &(series, step) in &tick.feeds {
                let series = &test.series[series];
                let result = &series.results[step as usize - 1];
                // The one place a result becomes a command.
                let run = ProbeRun {
                    probe: series.probe.clone(),
                    at,
                    results: vec![(result.subject.clone(), observation(result, at))],
                    complete: false,
                };
                engine.run(run).await?;
            }
            let (incidents, _) = read(&store, |store| {
                store.list_incidents(None, usize::MAX, |_| true)
            })
            .await?;
            let snapshot: Snapshot = incidents
                .iter()
                .map(|incident| (incident.id.0, Seen::of(incident)))
                .collect();
            match snapshots.last() {
                Some(last) if **last == snapshot => snapshots.push(last.clone()),
                _ => snapshots.push(Arc::new(snapshot)),
            }
            times.push(at);
        }
        let last = snapshots.last().cloned().unwrap_or_default();
        let mut timelines = Vec::with_capacity(last.len());
        for &id in last.keys() {
            if let Some((incident, entries)) = read(&store, move |store| {
                store.get_incident_with_timeline(IncidentId(id))
            })
            .await?
            {
                timelines.push((incident, entries));
            }
        }
        Ok::<_, RunError>(happenings(test, &ticks, &times, &snapshots, &timelines))
    }
    .await;
    stop.cancel();
    drop(engine);
    let stopped = task.await;
    let happened = fed?;
    stopped.map_err(|join| RunError::Crashed(join.to_string()))?;
    Ok(happened)
}

/// The incidents after an instant, by id.
type Snapshot = BTreeMap<u64, Seen>;

/// What a test can say about an incident at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: IncidentId,
    pub title: String,
    pub category: String,
    pub priority: Priority,
    pub tier: Tier,
    pub labels: BTreeMap<String, String>,
}

impl Seen {
    fn of(incident: &Incident) -> Seen {
        Seen {
            id: incident.id,
            title: incident.title.clone(),
            category: incident.category.clone(),
            priority: incident.priority,
            tier: incident.tier,
            labels: incident.labels.clone(),
        }
    }
}

/// `INC-1 "title" P2`.
impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.id, self.title, self.priority)
    }
}

/// The timeline entries a test can expect, placed at their step with the incident as it was
/// then. Entries at a time where the incident's probe had no result (none today: rules act
/// only on results) are placed at their offset from the start.
fn happenings(
    test: &RuleTest,
    ticks: &[Tick],
    times: &[DateTime<Utc>],
    snapshots: &[Arc<Snapshot>],
    timelines: &[(Incident, Vec<TimelineEntry>)],
) -> Vec<Happened> {
    let mut happened = Vec::new();
    for (incident, entries) in timelines {
        let Source::Rule { rule, probe } = &incident.source else {
            continue; // rule tests open no tickets
        };
        let series = test.series.iter().position(|s| &s.probe == probe);
        for entry in entries {
            let tick = times.binary_search(&entry.at).ok();
            let seen = |tick: Option<usize>| {
                tick.and_then(|t| snapshots.get(t))
                    .and_then(|snapshot| snapshot.get(&incident.id.0))
            };
            let change = match entry.kind.as_str() {
                "opened" => Change::Opened,
                "resolved" => Change::Resolved,
                "reopened" => Change::Reopened,
                "priority_changed" => Change::PriorityChanged {
                    from: tick
                        .and_then(|t| t.checked_sub(1))
                        .and_then(|t| seen(Some(t)))
                        .map(|before| before.priority),
                },
                _ => continue,
            };
            let step = tick.and_then(|t| {
                let series = series?;
                ticks[t]
                    .feeds
                    .iter()
                    .find(|(s, _)| *s == series)
                    .map(|&(_, step)| step)
            });
            let moment = match step {
                Some(step) => Moment::Step(step),
                None => Moment::Offset((entry.at - test.start).to_std().unwrap_or(Duration::ZERO)),
            };
            happened.push(Happened {
                moment,
                rule: rule.clone(),
                change,
                incident: seen(tick).cloned().unwrap_or_else(|| Seen::of(incident)),
            });
        }
    }
    happened.sort_by_key(|h| h.moment);
    happened
}

// ---------------------------------------------------------------------------------------
// Comparing what happened with what was expected.

/// When something happened: at a step of the incident's probe, or at a time from the start
/// that is no step of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Moment {
    Step(u32),
    Offset(Duration),
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Step(step) => write!(f, "step {step}"),
            Moment::Offset(offset) => write!(f, "+{}", format_duration(*offset)),
        }
    }
}

/// One thing that happened to an incident of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Happened {
    pub moment: Moment,
    pub rule: String,
    pub change: Change,
    /// The incident at the end of that moment.
    pub incident: Seen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    Resolved,
    Reopened,
    /// To the incident's priority; from the one it had the moment before (if it existed).
    PriorityChanged {
        from: Option<Priority>,
    },
}

impl Change {
    /// What `got:` says happened: "opened", "changed priority".
    fn verb(self) -> &'static str {
        match self {
            Change::Opened => "opened",
            Change::Resolved => "resolved",
            Change::Reopened => "reopened",
            Change::PriorityChanged { .. } => "changed priority",
        }
    }

    fn is(self, expected: &ExpectedEvent) -> bool {
        matches!(
            (self, expected),
            (Change::Opened, ExpectedEvent::Opened { .. })
                | (Change::Resolved, ExpectedEvent::Resolved)
                | (Change::Reopened, ExpectedEvent::Reopened)
                | (
                    Change::PriorityChanged { .. },
                    ExpectedEvent::PriorityChanged { .. }
                )
        )
    }
}

impl Happened {
    /// `INC-1 "title" P2`, or `INC-1 "title" P3 → P2` for a priority change.
    fn summary(&self) -> String {
        match self.change {
            Change::PriorityChanged { from } => format!(
                "{} {:?} {} → {}",
                self.incident.id,
                self.incident.title,
                from.map_or("?", Priority::as_str),
                self.incident.priority
            ),
            _ => self.incident.to_string(),
        }
    }

    fn satisfies(&self, expected: &Expectation) -> bool {
        if self.rule != expected.rule
            || self.moment != Moment::Step(expected.step)
            || !self.change.is(&expected.event)
        {
            return false;
        }
        let seen = &self.incident;
        match &expected.event {
            ExpectedEvent::Opened {
                title,
                category,
                priority,
                tier,
                labels,
            } => {
                title.as_ref().is_none_or(|title| *title == seen.title)
                    && category.as_ref().is_none_or(|c| *c == seen.category)
                    && priority.is_none_or(|priority| priority == seen.priority)
                    && tier.is_none_or(|tier| tier == seen.tier)
                    && labels
                        .iter()
                        .all(|(name, value)| seen.labels.get(name) == Some(value))
            }
            ExpectedEvent::PriorityChanged { from, to } => {
                *to == seen.priority
                    && (from.is_none()
                        || matches!(self.change, Change::PriorityChanged { from: f } if f == *from))
            }
            ExpectedEvent::Resolved | ExpectedEvent::Reopened => true,
        }
    }
}

/// One line of a failed test, and what happened instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub moment: Moment,
    /// `expected …` or `unexpected: …`.
    pub expected: String,
    pub got: Option<String>,
}

/// Matches what happened against what was expected. Each happening satisfies at most one
/// expectation; an expectation that is not satisfied is explained by the happenings of the
/// same rule and kind (at its step with other details, or at other steps); with
/// `no_other_incidents`, a happening neither expected nor used to explain is a failure too.
/// Failures come in step order, expectations before the unexpected at the same step.
pub fn compare(
    expected: &[Expectation],
    happened: &[Happened],
    no_other_incidents: bool,
) -> Vec<Failure> {
    let mut used = vec![false; happened.len()];
    let mut explained = vec![false; happened.len()];
    let mut unmet = Vec::new();
    for expectation in expected {
        let found = (0..happened.len()).find(|&i| !used[i] && happened[i].satisfies(expectation));
        match found {
            Some(i) => used[i] = true,
            None => unmet.push(expectation),
        }
    }
    let mut failures = Vec::new();
    for expectation in unmet {
        let related: Vec<usize> = (0..happened.len())
            .filter(|&i| {
                !used[i]
                    && happened[i].rule == expectation.rule
                    && happened[i].change.is(&expectation.event)
            })
            .collect();
        let verb = verb(&expectation.event);
        let same_step = related
            .iter()
            .copied()
            .find(|&i| happened[i].moment == Moment::Step(expectation.step));
        let got = match same_step {
            Some(i) => {
                used[i] = true;
                details(&happened[i], &expectation.event)
            }
            None => {
                let elsewhere: Vec<String> = related
                    .iter()
                    .map(|&i| {
                        explained[i] = true;
                        format!("at {}: {}", happened[i].moment, happened[i].summary())
                    })
                    .collect();
                if elsewhere.is_empty() {
                    format!(
                        "nothing {verb} at step {}, nor at any other step",
                        expectation.step
                    )
                } else {
                    format!(
                        "nothing {verb} at step {} ({verb} {})",
                        expectation.step,
                        elsewhere.join("; ")
                    )
                }
            }
        };
        failures.push(Failure {
            moment: Moment::Step(expectation.step),
            expected: describe(expectation),
            got: Some(got),
        });
    }
    if no_other_incidents {
        for (i, happening) in happened.iter().enumerate() {
            if used[i] || explained[i] {
                continue;
            }
            let what = match happening.change {
                Change::Opened => "incident opened",
                Change::Resolved => "incident resolved",
                Change::Reopened => "incident reopened",
                Change::PriorityChanged { .. } => "priority changed",
            };
            failures.push(Failure {
                moment: happening.moment,
                expected: format!(
                    "unexpected: {what} by rule {}: {}",
                    happening.rule,
                    happening.summary()
                ),
                got: None,
            });
        }
    }
    failures.sort_by_key(|failure| failure.moment);
    failures
}

fn verb(event: &ExpectedEvent) -> &'static str {
    match event {
        ExpectedEvent::Opened { .. } => Change::Opened.verb(),
        ExpectedEvent::Resolved => Change::Resolved.verb(),
        ExpectedEvent::Reopened => Change::Reopened.verb(),
        ExpectedEvent::PriorityChanged { .. } => Change::PriorityChanged { from: None }.verb(),
    }
}

/// `expected incident opened by rule R with title "…", priority P2`.
fn describe(expectation: &Expectation) -> String {
    let rule = &expectation.rule;
    match &expectation.event {
        ExpectedEvent::Opened { .. } => {
            let fields = opened_fields(&expectation.event, None);
            if fields.is_empty() {
                format!("expected incident opened by rule {rule}")
            } else {
                format!("expected incident opened by rule {rule} with {fields}")
            }
        }
        ExpectedEvent::Resolved => format!("expected incident of rule {rule} resolved"),
        ExpectedEvent::Reopened => format!("expected incident of rule {rule} reopened"),
        ExpectedEvent::PriorityChanged { from, to } => match from {
            Some(from) => {
                format!("expected incident of rule {rule} changed priority from {from} to {to}")
            }
            None => format!("expected incident of rule {rule} changed priority to {to}"),
        },
    }
}

/// What happened at the expected step when it differs in its details: the same fields the
/// expectation names, with their actual values.
fn details(happened: &Happened, expected: &ExpectedEvent) -> String {
    let id = happened.incident.id;
    match (expected, happened.change) {
        (ExpectedEvent::PriorityChanged { .. }, Change::PriorityChanged { from }) => format!(
            "{id} changed priority from {} to {}",
            from.map_or("?", Priority::as_str),
            happened.incident.priority
        ),
        (ExpectedEvent::Opened { .. }, _) => {
            format!(
                "{id} opened with {}",
                opened_fields(expected, Some(&happened.incident))
            )
        }
        _ => format!("{id} {}", happened.change.verb()),
    }
}

/// The fields an `opened` expectation names, `title "…", category c, priority P2, tier L1,
/// labels {k="v"}`: its values, or (with `actual`) the incident's.
fn opened_fields(expected: &ExpectedEvent, actual: Option<&Seen>) -> String {
    let ExpectedEvent::Opened {
        title,
        category,
        priority,
        tier,
        labels,
    } = expected
    else {
        return String::new();
    };
    let mut fields = Vec::new();
    if let Some(title) = title {
        fields.push(format!("title {:?}", actual.map_or(title, |a| &a.title)));
    }
    if let Some(category) = category {
        fields.push(format!(
            "category {}",
            actual.map_or(category, |a| &a.category)
        ));
    }
    if let Some(priority) = priority {
        fields.push(format!(
            "priority {}",
            actual.map_or(*priority, |a| a.priority)
        ));
    }
    if let Some(tier) = tier {
        fields.push(format!(
            "tier {}",
            actual.map_or(*tier, |a| a.tier).as_str()
        ));
    }
    if !labels.is_empty() {
        let shown: Vec<String> = labels
            .iter()
            .map(|(name, value)| {
                let value = match actual {
                    Some(actual) => actual
                        .labels
                        .get(name)
                        .map_or("<absent>".to_owned(), |v| format!("{v:?}")),
                    None => format!("{value:?}"),
                };
                format!("{name}={value}")
            })
            .collect();
        fields.push(format!("labels {{{}}}", shown.join(", ")));
    }
    fields.join(", ")
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use super::*;
    use crate::config::CertificateExpiry;

    fn seen(id: u64, title: &str, priority: Priority) -> Seen {
        Seen {
            id: IncidentId(id),
            title: title.to_owned(),
            category: "availability".to_owned(),
            priority,
            tier: Tier::L1,
            labels: BTreeMap::from([("team".to_owned(), "sre".to_owned())]),
        }
    }

    fn happened(step: u32, rule: &str, change: Change, incident: Seen) -> Happened {
        Happened {
            moment: Moment::Step(step),
            rule: rule.to_owned(),
            change,
            incident,
        }
    }

    fn expect(step: u32, rule: &str, event: ExpectedEvent) -> Expectation {
        Expectation {
            step,
            rule: rule.to_owned(),
            event,
        }
    }

    fn opened(priority: Option<Priority>) -> ExpectedEvent {
        ExpectedEvent::Opened {
            title: None,
            category: None,
            priority,
            tier: None,
            labels: BTreeMap::new(),
        }
    }

    /// Compares and renders the failures as `step N: expected …` / `  got: …` lines.
    #[track_caller]
    fn check(expected: &[Expectation], happened: &[Happened], strict: bool, want: &[&str]) {
        let got: Vec<String> = compare(expected, happened, strict)
            .into_iter()
            .flat_map(|f| {
                let first = format!("{}: {}", f.moment, f.expected);
                std::iter::once(first).chain(f.got.map(|got| format!("  got: {got}")))
            })
            .collect();
        assert_eq!(got, want, "\ngot:\n{}\n", got.join("\n"));
    }

    #[test]
    fn what_was_expected_at_its_step_passes() {
        let down = seen(1, "down (503)", Priority::P2);
        let happened = [
            happened(4, "down", Change::Opened, down.clone()),
            happened(7, "down", Change::Resolved, down),
        ];
        check(
            &[
                expect(7, "down", ExpectedEvent::Resolved),
                expect(
                    4,
                    "down",
                    ExpectedEvent::Opened {
                        title: Some("down (503)".into()),
                        category: Some("availability".into()),
                        priority: Some(Priority::P2),
                        tier: Some(Tier::L1),
                        labels: BTreeMap::from([("team".into(), "sre".into())]),
                    },
                ),
            ],
            &happened,
            true,
            &[],
        );
    }

    #[test]
    fn a_step_off_names_where_it_happened_instead() {
        let happened = [happened(
            4,
            "down",
            Change::Opened,
            seen(1, "down (503)", Priority::P2),
        )];
        check(
            &[expect(3, "down", opened(Some(Priority::P2)))],
            &happened,
            true,
            &[
                "step 3: expected incident opened by rule down with priority P2",
                "  got: nothing opened at step 3 (opened at step 4: INC-1 \"down (503)\" P2)",
            ],
        );
    }

    #[test]
    fn nothing_at_all() {
        check(
            &[
                expect(2, "down", ExpectedEvent::Resolved),
                expect(1, "down", opened(None)),
                expect(
                    3,
                    "down",
                    ExpectedEvent::PriorityChanged {
                        from: None,
                        to: Priority::P1,
                    },
                ),
                expect(4, "down", ExpectedEvent::Reopened),
            ],
            &[],
            true,
            &[
                "step 1: expected incident opened by rule down",
                "  got: nothing opened at step 1, nor at any other step",
                "step 2: expected incident of rule down resolved",
                "  got: nothing resolved at step 2, nor at any other step",
                "step 3: expected incident of rule down changed priority to P1",
                "  got: nothing changed priority at step 3, nor at any other step",
                "step 4: expected incident of rule down reopened",
                "  got: nothing reopened at step 4, nor at any other step",
            ],
        );
    }

    #[test]
    fn different_details_at_the_right_step_show_the_actual_values() {
        let happened = [happened(
            3,
            "down",
            Change::Opened,
            seen(1, "down (503)", Priority::P2),
        )];
        check(
            &[expect(
                3,
                "down",
                ExpectedEvent::Opened {
                    title: Some("down".into()),
                    category: Some("performance".into()),
                    priority: Some(Priority::P1),
                    tier: Some(Tier::L3),
                    labels: BTreeMap::from([
                        ("team".into(), "web".into()),
                        ("zone".into(), "a".into()),
                    ]),
                },
            )],
            &happened,
            true,
            &[
                "step 3: expected incident opened by rule down with title \"down\", category performance, priority P1, tier L3, labels {team=\"web\", zone=\"a\"}",
                "  got: INC-1 opened with title \"down (503)\", category availability, priority P2, tier L1, labels {team=\"sre\", zone=<absent>}",
            ],
        );
        // Labels are a subset match: naming one of them is enough.
        check(
            &[expect(
                3,
                "down",
                ExpectedEvent::Opened {
                    title: None,
                    category: None,
                    priority: None,
                    tier: None,
                    labels: BTreeMap::from([("team".into(), "sre".into())]),
                },
            )],
            &happened,
            true,
            &[],
        );
    }

    #[test]
    fn priority_changes_compare_to_and_from_when_given() {
        let change = |from| {
            happened(
                5,
                "slow",
                Change::PriorityChanged { from },
                seen(2, "slow", Priority::P2),
            )
        };
        let to_p2 = |from| {
            expect(
                5,
                "slow",
                ExpectedEvent::PriorityChanged {
                    from,
                    to: Priority::P2,
                },
            )
        };
        check(&[to_p2(None)], &[change(Some(Priority::P4))], true, &[]);
        check(
            &[to_p2(Some(Priority::P4))],
            &[change(Some(Priority::P4))],
            true,
            &[],
        );
        check(
            &[to_p2(Some(Priority::P3))],
            &[change(Some(Priority::P4))],
            true,
            &[
                "step 5: expected incident of rule slow changed priority from P3 to P2",
                "  got: INC-2 changed priority from P4 to P2",
            ],
        );
        check(
            &[],
            &[change(None)],
            true,
            &["step 5: unexpected: priority changed by rule slow: INC-2 \"slow\" ? → P2"],
        );
    }

    #[test]
    fn anything_not_expected_fails_unless_other_incidents_are_allowed() {
        let slow = seen(2, "slow (900ms)", Priority::P4);
        let happened = [
            happened(5, "slow", Change::Opened, slow.clone()),
            happened(7, "slow", Change::Resolved, slow.clone()),
            happened(9, "slow", Change::Reopened, slow),
        ];
        check(
            &[],
            &happened,
            true,
            &[
                "step 5: unexpected: incident opened by rule slow: INC-2 \"slow (900ms)\" P4",
                "step 7: unexpected: incident resolved by rule slow: INC-2 \"slow (900ms)\" P4",
                "step 9: unexpected: incident reopened by rule slow: INC-2 \"slow (900ms)\" P4",
            ],
        );
        check(&[], &happened, false, &[]);
        // What explains a failed expectation is not reported a second time.
        check(
            &[expect(6, "slow", opened(None))],
            &happened[..1],
            true,
            &[
                "step 6: expected incident opened by rule slow",
                "  got: nothing opened at step 6 (opened at step 5: INC-2 \"slow (900ms)\" P4)",
            ],
        );
    }

    #[test]
    fn a_happening_satisfies_one_expectation_and_only_of_its_rule() {
        let happened = [happened(
            3,
            "down",
            Change::Opened,
            seen(1, "down", Priority::P2),
        )];
        check(
            &[
                expect(3, "down", opened(None)),
                expect(3, "down", opened(None)),
            ],
            &happened,
            true,
            &[
                "step 3: expected incident opened by rule down",
                "  got: nothing opened at step 3, nor at any other step",
            ],
        );
        check(
            &[expect(3, "slow", opened(None))],
            &happened,
            true,
            &[
                "step 3: expected incident opened by rule slow",
                "  got: nothing opened at step 3, nor at any other step",
                "step 3: unexpected: incident opened by rule down: INC-1 \"down\" P2",
            ],
        );
        // A resolution is not an opening.
        check(
            &[expect(3, "down", ExpectedEvent::Resolved)],
            &happened,
            false,
            &[
                "step 3: expected incident of rule down resolved",
                "  got: nothing resolved at step 3, nor at any other step",
            ],
        );
    }

    #[test]
    fn the_exact_match_wins_over_an_earlier_near_miss() {
        // Two incidents of the same rule (e.g. two subjects) open at the same step; the
        // expectation naming the second one's title must not be spoiled by the first.
        let happened = [
            happened(2, "down", Change::Opened, seen(1, "a down", Priority::P2)),
            happened(2, "down", Change::Opened, seen(2, "b down", Priority::P2)),
        ];
        let titled = |title: &str| ExpectedEvent::Opened {
            title: Some(title.into()),
            category: None,
            priority: None,
            tier: None,
            labels: BTreeMap::new(),
        };
        check(
            &[
                expect(2, "down", titled("b down")),
                expect(2, "down", titled("a down")),
            ],
            &happened,
            true,
            &[],
        );
    }

    #[test]
    fn failures_are_rendered_under_their_test_with_got_aligned() {
        let report = TestReport {
            name: "down opens".into(),
            outcome: Ok(vec![
                Failure {
                    moment: Moment::Step(3),
                    expected: "expected incident opened by rule down".into(),
                    got: Some("nothing opened at step 3, nor at any other step".into()),
                },
                Failure {
                    moment: Moment::Step(12),
                    expected: "unexpected: incident resolved by rule down: INC-1 \"down\" P2"
                        .into(),
                    got: None,
                },
                Failure {
                    moment: Moment::Offset(Duration::from_secs(95)),
                    expected: "unexpected: incident reopened by rule down: INC-1 \"down\" P2"
                        .into(),
                    got: None,
                },
            ]),
        };
        assert_eq!(
            render(Path::new("rules/tests/t.yaml"), &report).as_deref(),
            Some(
                "\
rules/tests/t.yaml: test \"down opens\": FAILED
  step 3: expected incident opened by rule down
          got: nothing opened at step 3, nor at any other step
  step 12: unexpected: incident resolved by rule down: INC-1 \"down\" P2
  +1m35s: unexpected: incident reopened by rule down: INC-1 \"down\" P2
"
            )
        );
        let crashed = TestReport {
            name: "x".into(),
            outcome: Err(RunError::Crashed("boom".into())),
        };
        assert_eq!(
            render(Path::new("t.yaml"), &crashed).as_deref(),
            Some(
                "t.yaml: test \"x\": FAILED\n  could not run: the engine stopped unexpectedly: boom\n"
            )
        );
        let passed = TestReport {
            name: "x".into(),
            outcome: Ok(Vec::new()),
        };
        assert!(passed.passed());
        assert_eq!(render(Path::new("t.yaml"), &passed), None);
    }

    #[test]
    fn summaries() {
        assert_eq!(summary(1, 0, 0), "1 test passed");
        assert_eq!(summary(7, 0, 0), "7 tests passed");
        assert_eq!(summary(5, 2, 0), "2 of 7 tests failed");
        assert_eq!(
            summary(0, 1, 1),
            "1 of 1 test failed; 1 test file is invalid"
        );
        assert_eq!(summary(3, 0, 2), "3 tests passed; 2 test files are invalid");
    }

    fn series(probe: &str, interval_secs: u64, steps: usize) -> ProbeSeries {
        ProbeSeries {
            probe: probe.to_owned(),
            interval: Duration::from_secs(interval_secs),
            results: vec![result(); steps],
        }
    }

    fn result() -> ProbeResult {
        ProbeResult {
            connected: true,
            status: Some(200),
            response_time: Duration::from_millis(5),
            error: None,
            body: None,
            headers: Vec::new(),
            certificate_expiry: None,
            dns_rcode: None,
            value: None,
            subject: BTreeMap::new(),
        }
    }

    #[test]
    fn the_schedule_merges_probes_by_time_in_listing_order() {
        let tick = |secs, feeds: &[(usize, u32)]| Tick {
            offset: Duration::from_secs(secs),
            feeds: feeds.to_vec(),
        };
        assert_eq!(
            schedule(&[series("b", 15, 3), series("a", 10, 4)]),
            [
                tick(0, &[(0, 1), (1, 1)]),
                tick(10, &[(1, 2)]),
                tick(15, &[(0, 2)]),
                tick(20, &[(1, 3)]),
                tick(30, &[(0, 3), (1, 4)]),
            ]
        );
        assert_eq!(schedule(&[]), []);
        assert_eq!(schedule(&[series("a", 10, 0)]), []);
    }

    #[test]
    fn a_result_becomes_what_the_probe_would_report() {
        let at = DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01");
        let long = "é".repeat(BODY_LIMIT); // two bytes each: cut at a character boundary
        let result = ProbeResult {
            body: Some(long),
            certificate_expiry: Some(CertificateExpiry::In(chrono::Duration::days(10))),
            headers: vec![("content-type".into(), "text/plain".into())],
            ..result()
        };
        let observation = observation(&result, at);
        assert_eq!(observation.at, at);
        assert_eq!(observation.status, Some(200));
        assert_eq!(observation.body.as_ref().map(String::len), Some(BODY_LIMIT));
        assert_eq!(
            observation.certificate_expiry,
            Some(at + chrono::Duration::days(10))
        );
        assert_eq!(observation.headers, result.headers);
    }

    /// Writes `files` into a temporary directory and runs `t.yaml` there.
    async fn run(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<TestReport>) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            fs::write(dir.path().join(name), text).expect("write");
        }
        let path: PathBuf = dir.path().join("t.yaml");
        let reports = run_file(&path, &WorkflowConfig::default())
            .await
            .unwrap_or_else(|errors| panic!("{errors}"));
        (dir, reports)
    }

    const TWO_PROBES: &str = "\
probes:
  - name: fast
    interval: 10s
    labels: {service: shop}
    http: {url: 'http://127.0.0.1:1/'}
  - name: slow
    interval: 15s
    http: {url: 'http://127.0.0.1:2/'}
rules:
  - name: fast-down
    probe: fast
    when: '[STATUS] != 200'
    after: 2
    incident: {title: 'fast down ({{ status }})', impact: high, urgency: high}
  - name: slow-down
    probe: slow
    when: '![CONNECTED]'
    recover_after: 1
";

    #[tokio::test]
    async fn steps_count_each_probes_own_results_on_the_real_engine() {
        // fast: 0s 10s 20s 30s 40s; slow: 0s 15s 30s 45s.
        let (_dir, reports) = run(&[
            ("rules.yaml", TWO_PROBES),
            (
                "t.yaml",
                "\
rule_files: [rules.yaml]
tests:
  - name: both
    probes:
      fast:
        - {status: 200}
        - {status: 500, repeat: 3}
        - {status: 200}
      slow:
        - {status: 200}
        - {connected: false, error: refused}
        - {status: 200, repeat: 2}
    expect:
      - {step: 3, opened: {rule: fast-down, title: fast down (500), priority: P1, tier: L3, labels: {service: shop, rule: fast-down}}}
      - {step: 2, opened: {rule: slow-down, title: slow-down on slow, category: availability, priority: P3}}
      - {step: 3, resolved: {rule: slow-down}}
  - name: the same, expected at the wrong steps
    probes:
      fast: [{status: 500, repeat: 2}]
      slow: [{connected: false}, {status: 200}]
    expect:
      - {step: 1, opened: {rule: fast-down}}
",
            ),
        ])
        .await;
        assert_eq!(reports.len(), 2);
        assert!(reports[0].passed(), "{:?}", reports[0].outcome);
        let failures = reports[1].outcome.as_ref().expect("it ran");
        let lines: Vec<String> = failures
            .iter()
            .map(|f| format!("{}: {} / {:?}", f.moment, f.expected, f.got))
            .collect();
        assert_eq!(
            lines,
            [
                "step 1: expected incident opened by rule fast-down / Some(\"nothing opened at step 1 (opened at step 2: INC-2 \\\"fast down (500)\\\" P1)\")",
                "step 1: unexpected: incident opened by rule slow-down: INC-1 \"slow-down on slow\" P3 / None",
                "step 2: unexpected: incident resolved by rule slow-down: INC-1 \"slow-down on slow\" P3 / None",
            ]
        );
    }

    #[tokio::test]
    async fn each_test_starts_from_an_empty_store() {
        let test = concat!(
            "  - name: NAME\n",
            "    probes: {slow: [{connected: false}]}\n",
            "    expect: [{step: 1, opened: {rule: slow-down}}]\n",
        );
        let (_dir, reports) = run(&[
            ("rules.yaml", TWO_PROBES),
            (
                "t.yaml",
                &format!(
                    "rule_files: [rules.yaml]\ntests:\n{}{}",
                    test.replace("NAME", "first"),
                    test.replace("NAME", "second")
                ),
            ),
        ])
        .await;
        assert!(reports.iter().all(TestReport::passed), "{reports:?}");
    }
}
