//! Reading a rule unit-test file (`incidentd test FILE`) into a validated [`RuleTestFile`]:
//! the rule files it names, loaded by the same code as `incidentd check`, and its tests, with
//! every repeat expanded. The format is described in [`crate::rule_test_runner`].
//!
//! It is read like the other files of this module: the outline strictly, then each item and
//! field on its own, so every problem is reported with its `FILE:LINE:COL` and one mistake
//! does not hide another. A test that names a probe or rule the rule files do not define, or
//! expects something at a step its probe never reaches, is refused here, before anything runs.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use super::document::{Check, is_label_name, read, sorted};
use super::load::{RulePattern, RuleSet, closest, match_rule_files, rule_files};
use super::locate::Segment::{self, Index, Key};
use super::{ConfigErrors, ProbeConfig, ProbeTarget, RuleConfig};
use crate::domain::duration::parse_duration;
use crate::domain::incident::Tier;
use crate::domain::policy::WorkflowConfig;
use crate::domain::priority::Priority;

/// Where time starts in a test that does not say (`start:`).
pub const DEFAULT_TEST_START: &str = "2026-01-01T00:00:00Z";
/// At most this many results per probe in one test (after `repeat`s), so that a typo in a
/// `repeat` cannot exhaust memory.
pub const MAX_STEPS: usize = 100_000;

/// A rule unit-test file, valid: its rule files loaded and its tests checked against them.
#[derive(Debug, Clone)]
pub struct RuleTestFile {
    /// The test file, as given.
    pub path: PathBuf,
    /// The rule files it names, resolved against its directory, in load order.
    pub rule_files: Vec<PathBuf>,
    pub probes: Vec<Arc<ProbeConfig>>,
    pub rules: Vec<Arc<RuleConfig>>,
    /// The deployment's workflow (categories, priority matrix, escalation, closure, SLA) the
    /// rules' categories were checked against, and the tests run with.
    pub workflow: WorkflowConfig,
    pub tests: Vec<RuleTest>,
}

#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    /// The time of step 1.
    pub start: DateTime<Utc>,
    /// The results of each probe, in the order the test lists the probes.
    pub series: Vec<ProbeSeries>,
    pub expect: Vec<Expectation>,
    /// Every opened, resolved, reopened and priority change must be expected (default true).
    pub no_other_incidents: bool,
}

impl RuleTest {
    /// The results fed to `probe`, if the test feeds it any.
    pub fn series_of(&self, probe: &str) -> Option<&ProbeSeries> {
        self.series.iter().find(|series| series.probe == probe)
    }
}

/// What one probe returns, step by step: step `n` (from 1) happens at
/// `start + (n - 1) × interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSeries {
    pub probe: String,
    /// The test's `interval`, or the probe's own.
    pub interval: Duration,
    /// One per step, `repeat`s expanded.
    pub results: Vec<ProbeResult>,
}

/// One probe result as a test writes it; it becomes an
/// [`Observation`](crate::domain::observation::Observation) at its step's time.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub connected: bool,
    pub status: Option<u16>,
    pub response_time: Duration,
    pub error: Option<String>,
    pub body: Option<String>,
    /// Names lower-cased, as a probe reports them.
    pub headers: Vec<(String, String)>,
    pub certificate_expiry: Option<CertificateExpiry>,
    pub dns_rcode: Option<String>,
    pub value: Option<f64>,
    /// The series' labels (prometheus probes only).
    pub subject: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateExpiry {
    At(DateTime<Utc>),
    /// Relative to the step's time; negative for a certificate that has already expired.
    In(chrono::Duration),
}

impl CertificateExpiry {
    pub fn at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            CertificateExpiry::At(at) => at,
            CertificateExpiry::In(after) => now.checked_add_signed(after).unwrap_or(now),
        }
    }
}

/// "At step `step` of its probe, rule `rule` did `event`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// From 1, counted in the results of the rule's probe.
    pub step: u32,
    pub rule: String,
    pub event: ExpectedEvent,
}

/// What is expected to happen to the rule's incident; the fields left out are not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedEvent {
    Opened {
        title: Option<String>,
        category: Option<String>,
        priority: Option<Priority>,
        tier: Option<Tier>,
        /// Each must be among the incident's labels (others may be there too).
        labels: BTreeMap<String, String>,
    },
    Resolved,
    Reopened,
    PriorityChanged {
        from: Option<Priority>,
        to: Priority,
    },
}

impl ExpectedEvent {
    /// Its key in the file.
    pub fn key(&self) -> &'static str {
        match self {
            ExpectedEvent::Opened { .. } => "opened",
            ExpectedEvent::Resolved => "resolved",
            ExpectedEvent::Reopened => "reopened",
            ExpectedEvent::PriorityChanged { .. } => "priority_changed",
        }
    }
}

/// Loads a rule unit-test file and the rule files it names, their categories checked against
/// `workflow`'s taxonomy as the server would: either everything valid, or every problem in the
/// test file and in the rule files, sorted by file, line and column.
pub fn load_rule_test(
    path: &Path,
    workflow: &WorkflowConfig,
) -> Result<RuleTestFile, ConfigErrors> {
    let mut diagnostics = Vec::new();
    let Some(doc) = read(path.to_path_buf(), &mut diagnostics) else {
        return Err(sorted(diagnostics));
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut check = Check {
        doc: &doc,
        out: &mut diagnostics,
    };
    let Some(outline) = check.outline::<TestFileOutline>() else {
        return Err(sorted(diagnostics));
    };
    let files = rule_file_paths(&mut check, dir, outline.rule_files);
    let RuleSet {
        probes,
        rules,
        complete,
    } = rule_files(&files, Some(&workflow.categories), check.out);
    // With broken rule files, what names they define is not known for sure: checking the
    // tests' names against them would only add noise.
    let known = complete.then_some(Known {
        probes: &probes,
        rules: &rules,
    });
    let mut names = HashSet::new();
    let tests: Vec<RuleTest> = outline
        .tests
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| test(&mut check, index, item, known.as_ref(), &mut names))
        .collect();
    if !diagnostics.is_empty() {
        return Err(sorted(diagnostics));
    }
    Ok(RuleTestFile {
        path: path.to_path_buf(),
        rule_files: files,
        probes,
        rules,
        workflow: workflow.clone(),
        tests,
    })
}

// ---------------------------------------------------------------------------------------
// The file's shapes, strict about keys; each value is converted on its own.

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `rule_files` and `tests`"
)]
struct TestFileOutline {
    rule_files: Option<Vec<Value>>,
    tests: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a test (a mapping with `name`, `probes` and `expect`)"
)]
struct TestOutline {
    name: Option<Value>,
    start: Option<Value>,
    interval: Option<Value>,
    probes: Option<Value>,
    expect: Option<Value>,
    no_other_incidents: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a probe result (a mapping)")]
struct ResultOutline {
    status: Option<Value>,
    response_time: Option<Value>,
    connected: Option<Value>,
    error: Option<Value>,
    body: Option<Value>,
    headers: Option<Value>,
    certificate_expiry: Option<Value>,
    dns_rcode: Option<Value>,
    value: Option<Value>,
    subject: Option<Value>,
    repeat: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an expectation (a mapping with `step` and one of `opened`, `resolved`, `reopened`, `priority_changed`)"
)]
struct ExpectOutline {
    step: Option<Value>,
    opened: Option<Value>,
    resolved: Option<Value>,
    reopened: Option<Value>,
    priority_changed: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an opened incident (a mapping with `rule`)"
)]
struct OpenedOutline {
    rule: Option<Value>,
    title: Option<Value>,
    category: Option<Value>,
    priority: Option<Value>,
    tier: Option<Value>,
    labels: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `rule`")]
struct RuleOnlyOutline {
    rule: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a priority change (a mapping with `rule` and `to`)"
)]
struct PriorityChangedOutline {
    rule: Option<Value>,
    from: Option<Value>,
    to: Option<Value>,
}

// ---------------------------------------------------------------------------------------
// Checks.

/// The probes and rules the tests may name (known only when the rule files are valid).
struct Known<'a> {
    probes: &'a [Arc<ProbeConfig>],
    rules: &'a [Arc<RuleConfig>],
}

impl Known<'_> {
    fn probe(&self, name: &str) -> Option<&ProbeConfig> {
        self.probes
            .iter()
            .map(Arc::as_ref)
            .find(|probe| probe.name == name)
    }

    fn rule(&self, name: &str) -> Option<&RuleConfig> {
        self.rules
            .iter()
            .map(Arc::as_ref)
            .find(|rule| rule.name == name)
    }
}

/// `rule_files`: globs relative to the test file; each must match at least one file.
fn rule_file_paths(check: &mut Check<'_>, dir: &Path, items: Option<Vec<Value>>) -> Vec<PathBuf> {
    let Some(items) = items else {
        check.at(&[], "missing field `rule_files`".to_owned());
        return Vec::new();
    };
    let mut files = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let path = [Key("rule_files"), Index(index)];
        let Some(glob) = check.strict::<String>(item, &path) else {
            continue;
        };
        let before = check.count();
        let pattern = RulePattern {
            index: Some(index),
            glob,
        };
        let matched = match_rule_files(check, dir, std::slice::from_ref(&pattern));
        if matched.is_empty() && check.count() == before {
            check.at(&path, format!("`{}` matches no file", pattern.glob));
        }
        files.extend(matched);
    }
    let mut seen = HashSet::new();
    files.retain(|file| seen.insert(std::fs::canonicalize(file).unwrap_or_else(|_| file.clone())));
    files
}

fn test(
    check: &mut Check<'_>,
    index: usize,
    item: Value,
    known: Option<&Known<'_>>,
    names: &mut HashSet<String>,
) -> Option<RuleTest> {
    let at = [Key("tests"), Index(index)];
    let field = |key| [Key("tests"), Index(index), Key(key)];
    let outline = check.strict::<TestOutline>(item, &at)?;
    let before = check.count();
    let name: Option<String> = check.required(&at, "name", outline.name);
    if let Some(name) = &name
        && !names.insert(name.clone())
    {
        check.at(&field("name"), format!("duplicate test name `{name}`"));
    }
    let start = match check.field::<String>(&at, "start", outline.start) {
        Some(text) => rfc3339(&text).ok_or_else(|| {
            check.at(
                &field("start"),
                format!(
                    "invalid start `{text}`; expected an RFC 3339 time such as {DEFAULT_TEST_START}"
                ),
            );
        }),
        None => Ok(default_start()),
    };
    let interval = match check.field::<String>(&at, "interval", outline.interval) {
        Some(text) => match parse_duration(&text) {
            Ok(interval) if interval.is_zero() => {
                check.at(
                    &field("interval"),
                    "interval must be greater than 0".to_owned(),
                );
                None
            }
            Ok(interval) => Some(interval),
            Err(message) => {
                check.at(&field("interval"), message);
                None
            }
        },
        None => None,
    };
    let (series, incomplete) = match outline.probes {
        Some(probes) => all_series(check, index, probes, interval, known),
        None => {
            check.at(&at, "missing field `probes`".to_owned());
            Default::default()
        }
    };
    let series_checked = Checked {
        series: &series,
        incomplete: &incomplete,
    };
    let expect = match outline.expect {
        Some(items) => match check.strict::<Vec<Value>>(items, &field("expect")) {
            Some(items) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, item)| expectation(check, index, i, item, &series_checked, known))
                .collect(),
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let no_other_incidents = check
        .field(&at, "no_other_incidents", outline.no_other_incidents)
        .unwrap_or(true);
    if check.count() > before {
        return None;
    }
    Some(RuleTest {
        name: name?,
        start: start.ok()?,
        series,
        expect,
        no_other_incidents,
    })
}

/// [`DEFAULT_TEST_START`].
pub fn default_start() -> DateTime<Utc> {
    rfc3339(DEFAULT_TEST_START).unwrap_or_default()
}

fn rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// The results of a test as far as they are valid, and the probes some of whose results are
/// not (their number of steps is not known: steps are not checked against it).
struct Checked<'a> {
    series: &'a [ProbeSeries],
    incomplete: &'a HashSet<String>,
}

/// `probes:` of a test: probe name → its results, in the order written; and the probes with
/// an invalid result.
fn all_series(
    check: &mut Check<'_>,
    test: usize,
    value: Value,
    interval: Option<Duration>,
    known: Option<&Known<'_>>,
) -> (Vec<ProbeSeries>, HashSet<String>) {
    let at = [Key("tests"), Index(test), Key("probes")];
    let mut incomplete = HashSet::new();
    let Some(mapping) = check.strict::<Mapping>(value, &at) else {
        return (Vec::new(), incomplete);
    };
    let mut all = Vec::new();
    for (key, items) in mapping {
        let Some(probe) = key.as_str().map(str::to_owned) else {
            check.at(&at, "probe names are strings".to_owned());
            continue;
        };
        let path = [Key("tests"), Index(test), Key("probes"), Key(&probe)];
        let config = match known {
            Some(known) => match known.probe(&probe) {
                Some(config) => Some(config),
                None => {
                    let names: Vec<&str> = known.probes.iter().map(|p| p.name.as_str()).collect();
                    let hint = closest(&probe, &names)
                        .map(|close| format!("; did you mean `{close}`?"))
                        .unwrap_or_default();
                    check.at_key(
                        &path,
                        format!("unknown probe `{probe}`: the rule files do not define it{hint}"),
                    );
                    continue;
                }
            },
            None => None,
        };
        let Some(items) = check.strict::<Vec<Value>>(items, &path) else {
            continue;
        };
        let mut results = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let item_path = [
                Key("tests"),
                Index(test),
                Key("probes"),
                Key(&probe),
                Index(index),
            ];
            let Some((result, repeat)) = result(check, &item_path, item, config) else {
                incomplete.insert(probe.clone());
                continue;
            };
            if results.len() + repeat > MAX_STEPS {
                check.at(
                    &item_path,
                    format!("probe `{probe}` has more than {MAX_STEPS} results in this test"),
                );
                break;
            }
            results.extend(std::iter::repeat_n(result, repeat));
        }
        all.push(ProbeSeries {
            interval: interval
                .or(config.map(|probe| probe.interval))
                .unwrap_or(Duration::from_secs(1)),
            probe,
            results,
        });
    }
    (all, incomplete)
}

/// One result item and how many steps it stands for.
fn result(
    check: &mut Check<'_>,
    at: &[Segment<'_>],
    item: Value,
    probe: Option<&ProbeConfig>,
) -> Option<(ProbeResult, usize)> {
    let outline = check.strict::<ResultOutline>(item, at)?;
    let field = |key| [at, &[Key(key)]].concat();
    let before = check.count();
    let connected = check
        .field(at, "connected", outline.connected)
        .unwrap_or(true);
    let status: Option<u16> = check.field(at, "status", outline.status);
    if !connected && status.is_some() {
        check.at(
            &field("status"),
            "a result with `connected: false` has no status".to_owned(),
        );
    }
    let response_time = check.field::<String>(at, "response_time", outline.response_time);
    let response_time = check.duration(
        &field("response_time"),
        response_time.as_deref(),
        Duration::ZERO,
    );
    let headers: BTreeMap<String, String> = check
        .field(at, "headers", outline.headers)
        .unwrap_or_default();
    let certificate_expiry = check
        .field::<String>(at, "certificate_expiry", outline.certificate_expiry)
        .and_then(|text| {
            certificate_expiry(&text).or_else(|| {
                check.at(
                    &field("certificate_expiry"),
                    format!(
                        "invalid certificate_expiry `{text}`; expected an RFC 3339 time or a duration from the step's time, e.g. 10d or -1h"
                    ),
                );
                None
            })
        });
    let subject: BTreeMap<String, String> = check
        .field(at, "subject", outline.subject)
        .unwrap_or_default();
    if !subject.is_empty() {
        match probe {
            Some(probe) if !matches!(probe.target, ProbeTarget::Prometheus(_)) => check.at(
                &field("subject"),
                format!(
                    "`subject` is for prometheus probes; probe `{}` is {}",
                    probe.name,
                    probe.target.kind()
                ),
            ),
            _ => {
                for name in subject.keys().filter(|name| !is_label_name(name)) {
                    let path = [at, &[Key("subject"), Key(name)]].concat();
                    check.at_key(&path, format!("invalid label name `{name}`"));
                }
            }
        }
    }
    let repeat: u32 = check.field(at, "repeat", outline.repeat).unwrap_or(1);
    if repeat == 0 {
        check.at(&field("repeat"), "repeat must be at least 1".to_owned());
    }
    let result = ProbeResult {
        connected,
        status,
        response_time: response_time.unwrap_or_default(),
        error: check.field(at, "error", outline.error),
        body: check.field(at, "body", outline.body),
        headers: headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect(),
        certificate_expiry,
        dns_rcode: check.field(at, "dns_rcode", outline.dns_rcode),
        value: check.field(at, "value", outline.value),
        subject,
    };
    if check.count() > before {
        return None;
    }
    Some((result, usize::try_from(repeat).unwrap_or(usize::MAX)))
}

/// An RFC 3339 time, or a duration from the step's time with an optional `-`.
fn certificate_expiry(text: &str) -> Option<CertificateExpiry> {
    if let Some(at) = rfc3339(text) {
        return Some(CertificateExpiry::At(at));
    }
    let (sign, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let after = chrono::Duration::from_std(parse_duration(magnitude).ok()?).ok()?;
    Some(CertificateExpiry::In(after * sign))
}

fn expectation(
    check: &mut Check<'_>,
    test: usize,
    index: usize,
    item: Value,
    series: &Checked<'_>,
    known: Option<&Known<'_>>,
) -> Option<Expectation> {
    let at = [Key("tests"), Index(test), Key("expect"), Index(index)];
    let outline = check.strict::<ExpectOutline>(item, &at)?;
    let before = check.count();
    let step: Option<u32> = check.required(&at, "step", outline.step);
    if step == Some(0) {
        check.at(
            &[at.as_slice(), &[Key("step")]].concat(),
            "steps are numbered from 1".to_owned(),
        );
    }
    let given: Vec<(&'static str, Value)> = [
        ("opened", outline.opened),
        ("resolved", outline.resolved),
        ("reopened", outline.reopened),
        ("priority_changed", outline.priority_changed),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key, value?)))
    .collect();
    let mut given = given.into_iter();
    let (key, value) = match (given.next(), given.next()) {
        (Some(one), None) => one,
        (None, _) => {
            check.at(
                &at,
                "an expectation needs one of `opened`, `resolved`, `reopened`, `priority_changed`"
                    .to_owned(),
            );
            return None;
        }
        (Some(_), Some((second, _))) => {
            check.at_key(
                &[at.as_slice(), &[Key(second)]].concat(),
                format!(
                    "an expectation has one of `opened`, `resolved`, `reopened`, `priority_changed`; `{second}` is a second one"
                ),
            );
            return None;
        }
    };
    let path = [at.as_slice(), &[Key(key)]].concat();
    let (rule, event) = expected_event(check, &path, key, value)?;
    if let (Some(known), Some(rule), Some(step)) = (known, &rule, step) {
        let rule_path = [path.as_slice(), &[Key("rule")]].concat();
        match known.rule(rule) {
            None => {
                let names: Vec<&str> = known.rules.iter().map(|r| r.name.as_str()).collect();
                let hint = closest(rule, &names)
                    .map(|close| format!("; did you mean `{close}`?"))
                    .unwrap_or_default();
                check.at(
                    &rule_path,
                    format!("unknown rule `{rule}`: the rule files do not define it{hint}"),
                );
            }
            Some(config) if series.incomplete.contains(&config.probe) => {}
            Some(config) => {
                let steps = series
                    .series
                    .iter()
                    .find(|s| s.probe == config.probe)
                    .map_or(0, |s| s.results.len());
                let step_path = [at.as_slice(), &[Key("step")]].concat();
                if steps == 0 {
                    check.at(
                        &rule_path,
                        format!(
                            "rule `{rule}` watches probe `{}`, which has no results in this test",
                            config.probe
                        ),
                    );
                } else if usize::try_from(step).is_ok_and(|step| step > steps) {
                    check.at(
                        &step_path,
                        format!(
                            "step {step} is after the last result of probe `{}` (step {steps})",
                            config.probe
                        ),
                    );
                }
            }
        }
    }
    if check.count() > before {
        return None;
    }
    Some(Expectation {
        step: step?,
        rule: rule?,
        event,
    })
}

/// The event under `opened`, `resolved`, `reopened` or `priority_changed` at `path`, and
/// the rule it names.
fn expected_event(
    check: &mut Check<'_>,
    path: &[Segment<'_>],
    key: &str,
    value: Value,
) -> Option<(Option<String>, ExpectedEvent)> {
    match key {
        "opened" => {
            let outline = check.strict::<OpenedOutline>(value, path)?;
            let rule = check.required(path, "rule", outline.rule);
            let event = ExpectedEvent::Opened {
                title: check.field(path, "title", outline.title),
                category: check.field(path, "category", outline.category),
                priority: check.field(path, "priority", outline.priority),
                tier: check.field(path, "tier", outline.tier),
                labels: check
                    .field(path, "labels", outline.labels)
                    .unwrap_or_default(),
            };
            Some((rule, event))
        }
        "resolved" | "reopened" => {
            let outline = check.strict::<RuleOnlyOutline>(value, path)?;
            let rule = check.required(path, "rule", outline.rule);
            let event = if key == "resolved" {
                ExpectedEvent::Resolved
            } else {
                ExpectedEvent::Reopened
            };
            Some((rule, event))
        }
        _ => {
            let outline = check.strict::<PriorityChangedOutline>(value, path)?;
            let rule = check.required(path, "rule", outline.rule);
            let from = check.field(path, "from", outline.from);
            let to = check.required(path, "to", outline.to)?;
            Some((rule, ExpectedEvent::PriorityChanged { from, to }))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const RULES: &str = "\
probes:
  - name: web
    interval: 10s
    http: {url: 'http://127.0.0.1:8080/health'}
  - name: api
    interval: 5s
    http: {url: 'http://127.0.0.1:8081/health'}
rules:
  - name: web-down
    probe: web
    when: '[STATUS] != 200'
    after: 2
  - name: api-down
    probe: api
    when: '[STATUS] != 200'
";

    /// Writes `rules/web.yaml` and `rules/tests/t.yaml` and loads the test file; errors come
    /// back as `FILE:LINE:COL: message` relative to the directory.
    fn load(test: &str) -> Result<RuleTestFile, Vec<String>> {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("rules/tests")).expect("mkdir");
        fs::write(dir.path().join("rules/web.yaml"), RULES).expect("write");
        let path = dir.path().join("rules/tests/t.yaml");
        fs::write(&path, test).expect("write");
        let prefix = format!("{}/", dir.path().display());
        load_rule_test(&path, &WorkflowConfig::default()).map_err(|errors| {
            errors
                .0
                .iter()
                .map(|d| d.to_string().replace(&prefix, ""))
                .collect()
        })
    }

    #[track_caller]
    fn check_errors(test: &str, expected: &[&str]) {
        match load(test) {
            Ok(_) => panic!("loaded, expected:\n{}", expected.join("\n")),
            Err(got) => assert_eq!(got, expected, "\ngot:\n{}\n", got.join("\n")),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        rfc3339(text).expect("a valid time")
    }

    #[test]
    fn a_valid_file_loads_with_its_rule_files_and_expanded_results() {
        let file = load(
            "\
rule_files: [../*.yaml]
tests:
  - name: web goes down
    probes:
      web:
        - {status: 200, response_time: 20ms, headers: {Content-Type: text/plain}}
        - {status: 503, repeat: 3}
        - {connected: false, error: connection refused, certificate_expiry: -1d}
      api:
        - {status: 200, certificate_expiry: '2026-06-01T00:00:00Z', body: ok, dns_rcode: NOERROR, value: 1.5}
    expect:
      - {step: 3, opened: {rule: web-down, title: web-down on web, priority: P3, tier: L1, labels: {probe: web}}}
      - {step: 5, resolved: {rule: web-down}}
      - {step: 1, priority_changed: {rule: api-down, to: P2}}
  - name: later and faster
    start: 2026-03-01T12:00:00+07:00
    interval: 1s
    no_other_incidents: false
    probes:
      api: [{status: 200}]
    expect: []
",
        )
        .expect("valid");
        assert_eq!(file.rule_files.len(), 1);
        assert!(file.rule_files[0].ends_with("rules/tests/../web.yaml"));
        assert_eq!((file.probes.len(), file.rules.len()), (2, 2));
        let [first, second] = file.tests.as_slice() else {
            panic!("two tests")
        };

        assert_eq!(first.name, "web goes down");
        assert_eq!(first.start, at(DEFAULT_TEST_START));
        assert!(first.no_other_incidents);
        let web = first.series_of("web").expect("web results");
        assert_eq!(web.interval, Duration::from_secs(10), "the probe's own");
        let statuses: Vec<Option<u16>> = web.results.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [Some(200), Some(503), Some(503), Some(503), None]);
        assert_eq!(web.results[0].response_time, Duration::from_millis(20));
        assert_eq!(
            web.results[0].headers,
            [("content-type".to_owned(), "text/plain".to_owned())]
        );
        assert!(web.results[1].connected, "connected by default");
        assert!(!web.results[4].connected);
        assert_eq!(web.results[4].error.as_deref(), Some("connection refused"));
        assert_eq!(
            web.results[4].certificate_expiry,
            Some(CertificateExpiry::In(chrono::Duration::days(-1)))
        );
        let api = first.series_of("api").expect("api results");
        assert_eq!(api.interval, Duration::from_secs(5));
        let result = &api.results[0];
        assert_eq!(
            result
                .certificate_expiry
                .map(|e| e.at(at(DEFAULT_TEST_START))),
            Some(at("2026-06-01T00:00:00Z"))
        );
        assert_eq!(result.body.as_deref(), Some("ok"));
        assert_eq!(result.dns_rcode.as_deref(), Some("NOERROR"));
        assert_eq!(result.value, Some(1.5));
        assert_eq!(
            first.expect,
            [
                Expectation {
                    step: 3,
                    rule: "web-down".into(),
                    event: ExpectedEvent::Opened {
                        title: Some("web-down on web".into()),
                        category: None,
                        priority: Some(Priority::P3),
                        tier: Some(Tier::L1),
                        labels: BTreeMap::from([("probe".into(), "web".into())]),
                    },
                },
                Expectation {
                    step: 5,
                    rule: "web-down".into(),
                    event: ExpectedEvent::Resolved,
                },
                Expectation {
                    step: 1,
                    rule: "api-down".into(),
                    event: ExpectedEvent::PriorityChanged {
                        from: None,
                        to: Priority::P2
                    },
                },
            ]
        );

        assert_eq!(second.start, at("2026-03-01T05:00:00Z"));
        assert!(!second.no_other_incidents);
        assert_eq!(
            second.series[0].interval,
            Duration::from_secs(1),
            "the test's"
        );
        assert!(second.expect.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        check_errors(
            "\
rule_files: [../web.yaml, ../nope.yaml]
tests:
  - name: one
    start: yesterday
    interval: 0s
    probes:
      webb: [{status: 200}]
      web:
        - {status: 200, colour: red}
        - {connected: false, status: 503}
        - {status: 200, repeat: 0}
        - {status: 200, response_time: fast, subject: {job: x}}
    expect:
      - {step: 0, opened: {rule: web-down}}
      - {step: 9, resolved: {rule: web-down}}
      - {step: 1, opened: {rule: web-dwn}}
      - {step: 1, opened: {rule: web-down}, resolved: {rule: web-down}}
      - {step: 1}
      - {step: 1, priority_changed: {rule: web-down, to: P7}}
      - {step: 1, resolved: {rule: api-down}}
  - name: one
    probes: {}
    extra: 1
",
            &[
                "rules/tests/t.yaml:1:27: `../nope.yaml` matches no file",
                "rules/tests/t.yaml:4:12: invalid start `yesterday`; expected an RFC 3339 time such as 2026-01-01T00:00:00Z",
                "rules/tests/t.yaml:5:15: interval must be greater than 0",
                "rules/tests/t.yaml:7:7: unknown probe `webb`: the rule files do not define it; did you mean `web`?",
                "rules/tests/t.yaml:9:25: unknown field `colour`, expected one of `status`, `response_time`, `connected`, `error`, `body`, `headers`, `certificate_expiry`, `dns_rcode`, `value`, `subject`, `repeat`",
                "rules/tests/t.yaml:10:38: a result with `connected: false` has no status",
                "rules/tests/t.yaml:11:33: repeat must be at least 1",
                "rules/tests/t.yaml:12:40: invalid duration `fast`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/tests/t.yaml:12:55: `subject` is for prometheus probes; probe `web` is http",
                "rules/tests/t.yaml:14:16: steps are numbered from 1",
                "rules/tests/t.yaml:16:34: unknown rule `web-dwn`: the rule files do not define it; did you mean `web-down`?",
                "rules/tests/t.yaml:17:45: an expectation has one of `opened`, `resolved`, `reopened`, `priority_changed`; `resolved` is a second one",
                "rules/tests/t.yaml:18:9: an expectation needs one of `opened`, `resolved`, `reopened`, `priority_changed`",
                "rules/tests/t.yaml:19:58: unknown variant `P7`, expected one of `P1`, `P2`, `P3`, `P4`, `P5`",
                "rules/tests/t.yaml:20:36: rule `api-down` watches probe `api`, which has no results in this test",
                "rules/tests/t.yaml:23:5: unknown field `extra`, expected one of `name`, `start`, `interval`, `probes`, `expect`, `no_other_incidents`",
            ],
        );
    }

    #[test]
    fn file_level_problems() {
        check_errors(
            "tests: []\n",
            &["rules/tests/t.yaml:1:1: missing field `rule_files`"],
        );
        check_errors(
            "rule_files: [../web.yaml]\nrules: []\n",
            &["rules/tests/t.yaml:2:1: unknown field `rules`, expected `rule_files` or `tests`"],
        );
        check_errors(
            "rule_files: [../web.yaml]\ntests:\n  - name: x\n    probes: {web: [{status: 200}]}\n  - name: x\n    probes: {web: [{status: 200}]}\n",
            &["rules/tests/t.yaml:5:11: duplicate test name `x`"],
        );
        check_errors(
            "rule_files: [../web.yaml]\ntests:\n  - name: x\n",
            &["rules/tests/t.yaml:3:5: missing field `probes`"],
        );
        check_errors(
            "rule_files: [../web.yaml]\ntests:\n  - name: x\n    probes: {web: [{status: 200, repeat: 60000}, {status: 503, repeat: 60000}]}\n",
            &["rules/tests/t.yaml:4:50: probe `web` has more than 100000 results in this test"],
        );
        check_errors(
            "rule_files: [../web.yaml]\ntests:\n  - name: x\n    probes: {web: [{status: 200, repeat: 2}]}\n    expect: [{step: 3, opened: {rule: web-down}}]\n",
            &["rules/tests/t.yaml:5:21: step 3 is after the last result of probe `web` (step 2)"],
        );
    }

    #[test]
    fn problems_in_the_rule_files_are_reported_in_them_and_names_are_not_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(
            dir.path().join("bad.yaml"),
            "probes: [{name: web, http: {url: 'http://x/'}}]\nrules: [{name: r, probe: web, when: '[STAUS] != 200'}]\n",
        )
        .expect("write");
        let path = dir.path().join("t.yaml");
        fs::write(
            &path,
            "rule_files: [bad.yaml]\ntests: [{name: x, probes: {other: [{}]}, expect: [{step: 1, opened: {rule: r}}]}]\n",
        )
        .expect("write");
        let errors = load_rule_test(&path, &WorkflowConfig::default()).unwrap_err();
        let prefix = format!("{}/", dir.path().display());
        let got: Vec<String> = errors
            .0
            .iter()
            .map(|d| d.to_string().replace(&prefix, ""))
            .collect();
        assert_eq!(
            got,
            ["bad.yaml:2:38: unknown placeholder [STAUS]; did you mean [STATUS]?"]
        );
    }

    #[test]
    fn categories_are_checked_against_the_deployments_taxonomy_and_names_still_are() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(
            dir.path().join("rules.yaml"),
            "probes: [{name: web, http: {url: 'http://x/'}}]\nrules:\n  - {name: r, probe: web, when: '[STATUS] != 200', incident: {category: performance}}\n  - {name: s, probe: web, when: '[STATUS] != 200'}\n",
        )
        .expect("write");
        let path = dir.path().join("t.yaml");
        fs::write(
            &path,
            "rule_files: [rules.yaml]\ntests: [{name: x, probes: {other: [{}]}}]\n",
        )
        .expect("write");
        let prefix = format!("{}/", dir.path().display());
        let load = |workflow: &WorkflowConfig| {
            load_rule_test(&path, workflow).map_err(|errors| {
                errors
                    .0
                    .iter()
                    .map(|d| d.to_string().replace(&prefix, ""))
                    .collect::<Vec<_>>()
            })
        };
        let unknown_probe = "t.yaml:2:28: unknown probe `other`: the rule files do not define it";
        assert_eq!(
            load(&WorkflowConfig::default()).unwrap_err(),
            [unknown_probe]
        );
        let mut workflow = WorkflowConfig::default();
        workflow
            .categories
            .retain(|c| c.name == "availability" || c.name == "request");
        assert_eq!(
            load(&workflow).unwrap_err(),
            [
                "rules.yaml:3:73: unknown category `performance`; valid: availability, request",
                unknown_probe,
            ]
        );
    }

    #[test]
    fn certificate_expiry_is_a_time_or_a_signed_duration() {
        assert_eq!(
            certificate_expiry("10d"),
            Some(CertificateExpiry::In(chrono::Duration::days(10)))
        );
        assert_eq!(
            certificate_expiry("-1h30m"),
            Some(CertificateExpiry::In(chrono::Duration::minutes(-90)))
        );
        assert_eq!(
            certificate_expiry("2026-01-02T00:00:00Z"),
            Some(CertificateExpiry::At(at("2026-01-02T00:00:00Z")))
        );
        for bad in ["", "-", "soon", "10 d", "--1d"] {
            assert_eq!(certificate_expiry(bad), None, "{bad}");
        }
    }
}
