//! The shipped Grafana dashboards (`dashboards/`) and Prometheus files (`deploy/`): their
//! conventions checked statically, `promtool` on the alert rules, their unit tests and the
//! scrape config, and every panel query and alert expression run against a real Prometheus
//! scraping a real incidentd driven through met, breached, at-risk and held SLA clocks.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const DASHBOARDS: &[(&str, &str)] = &[
    ("dashboards/incidentd-tat.json", "incidentd-tat"),
    ("dashboards/incidentd-probes.json", "incidentd-probes"),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric incidentd exports (PRODUCT.md "Metrics" and the README's additions), and
/// Prometheus' own `up`.
const METRICS: &[(&str, Type)] = &[
    ("incidentd_incidents_open", Type::Gauge),
    ("incidentd_incidents_opened_total", Type::Counter),
    ("incidentd_incidents_resolved_total", Type::Counter),
    ("incidentd_incidents_reopened_total", Type::Counter),
    ("incidentd_escalations_total", Type::Counter),
    ("incidentd_first_response_seconds", Type::Histogram),
    ("incidentd_resolution_seconds", Type::Histogram),
    ("incidentd_sla_met_total", Type::Counter),
    ("incidentd_sla_breaches_total", Type::Counter),
    ("incidentd_sla_warnings_total", Type::Counter),
    ("incidentd_sla_open", Type::Gauge),
    ("incidentd_sla_target_seconds", Type::Gauge),
    (
        "incidentd_sla_mean_resolution_objective_seconds",
        Type::Gauge,
    ),
    ("incidentd_probe_success", Type::Gauge),
    ("incidentd_probe_duration_seconds", Type::Histogram),
    ("incidentd_probe_last_duration_seconds", Type::Gauge),
    ("incidentd_probe_schedule_lag_seconds", Type::Histogram),
    ("incidentd_probe_cert_expiry_timestamp_seconds", Type::Gauge),
    ("incidentd_probe_results_dropped_total", Type::Counter),
    ("incidentd_probe_runs_skipped_total", Type::Counter),
    ("incidentd_rule_firing", Type::Gauge),
    ("incidentd_webhook_deliveries_total", Type::Counter),
    ("incidentd_webhook_pending", Type::Gauge),
    ("incidentd_build_info", Type::Gauge),
    ("up", Type::Gauge),
];

/// Number literals a query may use: quantiles, 0/1 guards and seconds per day. Anything else
/// would be a hard-coded SLA target, which must come from `incidentd_sla_target_seconds`.
const NUMBERS: &[f64] = &[0.0, 1.0, 0.5, 0.9, 0.95, 86400.0];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn dashboard(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Every panel, the panels of collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// One query of a dashboard panel or an alert rule.
struct Query {
    /// Where it is, for messages: file, panel title and refId, or the alert's name.
    source: String,
    expr: String,
    /// An alert condition: data only while the alert's condition holds.
    alert: Option<String>,
}

fn dashboard_queries() -> Vec<Query> {
    let mut out = Vec::new();
    for (path, _) in DASHBOARDS {
        let dashboard = dashboard(path);
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(Query {
                    source: format!(
                        "{path}: panel {} {:?} target {}",
                        panel["id"],
                        panel["title"].as_str().unwrap_or_default(),
                        target["refId"].as_str().unwrap_or_default()
                    ),
                    expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                    alert: None,
                });
            }
        }
    }
    out
}

fn alert_rules() -> Vec<serde_yaml::Value> {
    let rules = yaml("deploy/alerts.yaml");
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("rules").clone())
        .collect()
}

fn alert_queries() -> Vec<Query> {
    alert_rules()
        .iter()
        .map(|rule| {
            let name = rule["alert"].as_str().expect("an alert name").to_owned();
            Query {
                source: format!("deploy/alerts.yaml: alert {name}"),
                expr: rule["expr"].as_str().expect("an expr").to_owned(),
                alert: Some(name),
            }
        })
        .collect()
}

// ----- a small PromQL scanner: enough to find the selectors and number literals --------------

/// A metric selector in a PromQL expression.
#[derive(Debug)]
struct Selector {
    metric: String,
    /// The text between the braces.
    matchers: String,
    /// The innermost named function or aggregation the selector is an argument of.
    function: Option<String>,
}

#[derive(Debug, Default)]
struct Scanned {
    selectors: Vec<Selector>,
    numbers: Vec<f64>,
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];

fn scan(expr: &str) -> Result<Scanned, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut scanned = Scanned::default();
    // The owner of each open parenthesis: a function, an aggregation, or none.
    let mut calls: Vec<Option<String>> = Vec::new();
    let mut aggregation: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i)?;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '[' {
            i = skip_to(&chars, i, ']')?;
        } else if c == '{' {
            return Err(format!("a selector without a metric name at {i}"));
        } else if c == '(' {
            calls.push(aggregation.take());
            i += 1;
        } else if c == ')' {
            calls.pop().ok_or("unbalanced `)`")?;
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            // A duration (`5m`, after `offset`) does not parse as a number.
            if let Ok(number) = text.parse::<f64>() {
                scanned.numbers.push(number);
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let next_char = chars.get(next).copied();
            if GROUPING.contains(&word.as_str()) {
                if next_char == Some('(') {
                    i = skip_to(&chars, next, ')')?;
                }
            } else if KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                // A binary operator or literal, also before a parenthesis.
            } else if AGGREGATIONS.contains(&word.as_str()) {
                aggregation = Some(word);
            } else if next_char == Some('(') {
                calls.push(Some(word));
                i = next + 1;
            } else {
                let mut matchers = String::new();
                if next_char == Some('{') {
                    let end = skip_to(&chars, next, '}')?;
                    matchers = chars[next + 1..end - 1].iter().collect();
                    i = end;
                }
                scanned.selectors.push(Selector {
                    metric: word,
                    matchers,
                    function: calls.iter().rev().flatten().next().cloned(),
                });
            }
        } else {
            i += 1;
        }
    }
    if !calls.is_empty() {
        return Err("unbalanced `(`".to_owned());
    }
    Ok(scanned)
}

/// The index after the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(format!("unterminated string at {start}"))
}

/// The index after the `close` matching the opening character at `start`, skipping strings.
fn skip_to(chars: &[char], start: usize, close: char) -> Result<usize, String> {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i)?,
            c if c == close => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(format!(
        "no `{close}` closes the `{}` at {start}",
        chars[start]
    ))
}

/// The metric type of a series name: a histogram's `_bucket`, `_sum` and `_count` series
/// are counters of the histogram.
fn series_type(name: &str) -> Option<(&'static str, Type)> {
    let find = |name: &str| METRICS.iter().find(|(known, _)| *known == name).copied();
    if let Some(found) = find(name) {
        return Some(found);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        let found = find(base)?;
        (found.1 == Type::Histogram).then_some((found.0, Type::Counter))
    })
}

/// What is wrong with the selectors and literals of `expr`; `job` is the matcher every
/// selector must carry.
fn check_expr(expr: &str, job: &str) -> Vec<String> {
    let scanned = match scan(expr) {
        Ok(scanned) => scanned,
        Err(error) => return vec![format!("cannot scan: {error}")],
    };
    let mut problems = Vec::new();
    if scanned.selectors.is_empty() {
        problems.push("selects no metric".to_owned());
    }
    for selector in &scanned.selectors {
        let metric = &selector.metric;
        let Some((_, kind)) = series_type(metric) else {
            problems.push(format!(
                "`{metric}` is not a metric incidentd exports (typo?)"
            ));
            continue;
        };
        if kind == Type::Histogram {
            problems.push(format!(
                "`{metric}` is a histogram: select its _bucket, _sum or _count"
            ));
        }
        if !selector.matchers.contains(job) {
            problems.push(format!("`{metric}{{{}}}` lacks `{job}`", selector.matchers));
        }
        if selector.matchers.contains("le=") {
            problems.push(format!(
                "`{metric}` selects a bucket by a literal `le`: read targets from incidentd_sla_target_seconds"
            ));
        }
        match selector.function.as_deref() {
            Some("rate" | "irate" | "increase" | "resets") if kind != Type::Counter => problems
                .push(format!(
                    "`{metric}` is a gauge: {}() needs a counter",
                    selector.function.as_deref().unwrap_or_default()
                )),
            Some("delta" | "idelta" | "deriv" | "predict_linear") if kind != Type::Gauge => {
                problems.push(format!(
                    "`{metric}` is a counter: use rate()/increase(), not {}()",
                    selector.function.as_deref().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
    for number in scanned.numbers {
        if !NUMBERS.contains(&number) {
            problems.push(format!(
                "the literal {number} looks like a hard-coded target: read it from a metric"
            ));
        }
    }
    problems
}

/// The template variables `expr` uses (`$name` and `${name}`).
fn variables_used(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

/// Grafana's variables replaced as a query would see them.
fn substitute(expr: &str) -> String {
    let expr = expr
        .replace("${job}", "incidentd")
        .replace("$job", "incidentd")
        .replace("${window}", "1h")
        .replace("$window", "1h")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "15s");
    assert!(!expr.contains('$'), "a variable left in {expr}");
    expr
}

#[test]
fn the_scanner_finds_selectors_functions_and_literals() {
    let scanned = scan(
        r#"histogram_quantile(0.9, sum by (le) (rate(a_bucket{job=~"$job", x="}"}[$__rate_interval])))
        / on (job) group_left max by (job) (b{job=~"$job"}) or (c - time()) / 86400 > bool 1"#,
    )
    .unwrap();
    let found: Vec<(&str, &str, Option<&str>)> = scanned
        .selectors
        .iter()
        .map(|s| {
            (
                s.metric.as_str(),
                s.matchers.as_str(),
                s.function.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("a_bucket", r#"job=~"$job", x="}""#, Some("rate")),
            ("b", r#"job=~"$job""#, Some("max")),
            ("c", "", None),
        ]
    );
    assert_eq!(scanned.numbers, [0.9, 86400.0, 1.0]);

    let problems = check_expr(
        r#"rate(incidentd_sla_open{job=~"$job"}[5m]) + incidentd_resolution_seconds{job=~"$job"}
        + incidentd_sla_breachs_total{job=~"$job"} + deriv(incidentd_sla_met_total{job=~"$job"}[1h])
        + incidentd_probe_success + incidentd_first_response_seconds_bucket{job=~"$job", le="3600"} > 14400"#,
        r#"job=~"$job""#,
    );
    assert_eq!(
        problems,
        [
            "`incidentd_sla_open` is a gauge: rate() needs a counter",
            "`incidentd_resolution_seconds` is a histogram: select its _bucket, _sum or _count",
            "`incidentd_sla_breachs_total` is not a metric incidentd exports (typo?)",
            "`incidentd_sla_met_total` is a counter: use rate()/increase(), not deriv()",
            "`incidentd_probe_success{}` lacks `job=~\"$job\"`",
            "`incidentd_first_response_seconds_bucket` selects a bucket by a literal `le`: read targets from incidentd_sla_target_seconds",
            "the literal 14400 looks like a hard-coded target: read it from a metric",
        ]
    );
}

// ----- static checks -------------------------------------------------------------------------

#[test]
fn the_dashboards_follow_the_grafana_conventions() {
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut problems = Vec::new();
    for (path, uid) in DASHBOARDS {
        let mut problem = |text: String| problems.push(format!("{path}: {text}"));
        let text = read(path);
        let dashboard = dashboard(path);
        if dashboard["id"] != Value::Null || dashboard.get("id").is_none() {
            problem("`id` must be null".to_owned());
        }
        if dashboard["uid"] != *uid {
            problem(format!("uid {} instead of {uid}", dashboard["uid"]));
        }
        if dashboard["schemaVersion"] != 41 {
            problem(format!("schemaVersion {}", dashboard["schemaVersion"]));
        }
        if !dashboard["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&json!("incidentd")))
        {
            problem("not tagged `incidentd`".to_owned());
        }
        if text.contains("${DS_") || dashboard.get("__inputs").is_some() {
            problem(
                "uses export-for-sharing `${DS_…}`/`__inputs`: use the datasource variable"
                    .to_owned(),
            );
        }

        // Variables.
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let variable = |name: &str| variables.iter().find(|v| v["name"] == name).cloned();
        match variable("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            other => problem(format!(
                "no datasource variable of type prometheus: {other:?}"
            )),
        }
        match variable("job") {
            Some(v)
                if v["type"] == "query"
                    && v["query"] == "label_values(incidentd_build_info, job)"
                    && v["datasource"] == datasource
                    && v["multi"] == true
                    && v["includeAll"] == true
                    && v["allValue"] == ".*" => {}
            other => problem(format!("the job variable is not as documented: {other:?}")),
        }
        let window = variable("window");
        if let Some(v) = &window
            && !(v["type"] == "custom"
                && v["query"] == "7d,30d,90d"
                && v["current"]["value"] == "30d")
        {
            problem(format!(
                "the window variable is not 7d,30d,90d with 30d: {v}"
            ));
        }
        if *uid == "incidentd-tat" && window.is_none() {
            problem("no window variable".to_owned());
        }
        let mut defined: BTreeSet<String> = variables
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .collect();
        defined.extend(["__rate_interval", "__range", "__interval"].map(str::to_owned));

        // Panels.
        let panels = panels(&dashboard);
        let mut ids = BTreeSet::new();
        let mut boxes: Vec<(String, i64, i64, i64, i64)> = Vec::new();
        for panel in &panels {
            let title = panel["title"].as_str().unwrap_or_default();
            let name = format!("panel {} {title:?}", panel["id"]);
            if title.is_empty() {
                problem(format!("{name} has no title"));
            }
            if !panel["id"].is_u64() || !ids.insert(panel["id"].as_u64()) {
                problem(format!("{name}: id missing or not unique"));
            }
            let kind = panel["type"].as_str().unwrap_or_default();
            if !["row", "timeseries", "stat", "bargauge", "table"].contains(&kind) {
                problem(format!("{name}: panel type {kind:?}"));
            }
            if panel["datasource"] != datasource {
                problem(format!(
                    "{name}: datasource {} is not ${{datasource}}",
                    panel["datasource"]
                ));
            }
            let grid = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_i64().unwrap_or(-1));
            if x < 0 || y < 0 || w < 1 || h < 1 || x + w > 24 {
                problem(format!(
                    "{name}: gridPos {grid} is not on the 24-column grid"
                ));
            }
            for (other, ox, oy, ow, oh) in &boxes {
                if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                    problem(format!("{name} overlaps {other}"));
                }
            }
            boxes.push((name.clone(), x, y, w, h));
            if kind == "row" {
                continue;
            }
            let defaults = &panel["fieldConfig"]["defaults"];
            if !defaults["unit"].is_string() {
                problem(format!("{name}: no unit"));
            }
            let steps = &defaults["thresholds"]["steps"];
            if steps.as_array().is_none_or(Vec::is_empty) {
                problem(format!("{name}: no thresholds"));
            }
            if title.to_lowercase().contains("compliance") && kind != "table" {
                let expected = json!([
                    {"color": "red", "value": null},
                    {"color": "yellow", "value": 0.9},
                    {"color": "green", "value": 0.95},
                ]);
                if defaults["unit"] != "percentunit"
                    || defaults["min"] != 0
                    || defaults["max"] != 1
                    || *steps != expected
                {
                    problem(format!(
                        "{name}: a compliance panel wants percentunit, 0..1 and red < 0.9 < yellow < 0.95 < green"
                    ));
                }
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problem(format!("{name}: no queries"));
            }
            let mut ref_ids = BTreeSet::new();
            for target in &targets {
                let ref_id = target["refId"].as_str().unwrap_or_default();
                let at = format!("{name} target {ref_id:?}");
                if ref_id.is_empty() || !ref_ids.insert(ref_id.to_owned()) {
                    problem(format!("{at}: refId missing or not unique in the panel"));
                }
                if target["datasource"] != datasource {
                    problem(format!(
                        "{at}: datasource {} is not ${{datasource}}",
                        target["datasource"]
                    ));
                }
                if !target["legendFormat"].is_string() {
                    problem(format!("{at}: no legendFormat"));
                }
                let expr = target["expr"].as_str().unwrap_or_default();
                if expr.trim().is_empty() {
                    problem(format!("{at}: empty expr"));
                    continue;
                }
                for error in check_expr(expr, r#"job=~"$job""#) {
                    problem(format!("{at}: {error}"));
                }
                for used in variables_used(expr) {
                    if !defined.contains(&used) {
                        problem(format!(
                            "{at}: uses ${used}, which the dashboard does not define"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_provisioning_files_load_the_dashboards_into_their_folder() {
    let providers = yaml("dashboards/provisioning/dashboards/incidentd.yaml");
    assert_eq!(providers["apiVersion"], serde_yaml::Value::from(1));
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert_eq!(provider["folder"].as_str(), Some("incidentd"));
    let path = provider["options"]["path"].as_str().expect("options.path");
    assert!(path.starts_with('/'), "an absolute path: {path}");
    // The README mounts (or copies) this repository's dashboards/ at that path.
    let readme = read("dashboards/README.md");
    assert!(
        readme.contains(&format!("dashboards:{path}")),
        "dashboards/README.md mounts dashboards/ at {path}"
    );

    let datasources = yaml("dashboards/provisioning/datasources/prometheus.yaml");
    assert_eq!(datasources["apiVersion"], serde_yaml::Value::from(1));
    let prometheus = &datasources["datasources"][0];
    assert_eq!(prometheus["type"].as_str(), Some("prometheus"));
    assert!(
        prometheus["uid"]
            .as_str()
            .is_some_and(|uid| !uid.is_empty())
    );
    assert!(
        prometheus["url"]
            .as_str()
            .is_some_and(|url| url.starts_with("http"))
    );
}

#[test]
fn the_alert_rules_follow_the_mixin_conventions_and_each_has_a_runbook_and_tests() {
    let runbook = read("deploy/RUNBOOK.md");
    let tests = yaml("deploy/alerts_test.yaml");
    let cases: Vec<&serde_yaml::Value> = tests["tests"]
        .as_sequence()
        .expect("tests")
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_sequence().into_iter().flatten())
        .collect();
    let mut problems = Vec::new();
    let rules = alert_rules();
    assert!(!rules.is_empty());
    for rule in &rules {
        let name = rule["alert"].as_str().unwrap_or_default();
        let mut problem = |text: &str| problems.push(format!("{name}: {text}"));
        if !name.starts_with("Incidentd") || name.contains(['_', '-', ' ']) {
            problem("not a CamelCase name starting with Incidentd");
        }
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        if !["critical", "warning", "info"].contains(&severity) {
            problem("severity is not critical, warning or info");
        }
        for annotation in ["summary", "description"] {
            if rule["annotations"][annotation]
                .as_str()
                .is_none_or(|text| text.trim().is_empty())
            {
                problem(&format!("no {annotation} annotation"));
            }
        }
        let runbook_url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        if runbook_url != format!("deploy/RUNBOOK.md#{}", name.to_lowercase()) {
            problem(&format!(
                "runbook_url {runbook_url:?} is not its RUNBOOK.md section"
            ));
        }
        if !runbook.contains(&format!("\n## {name}\n")) {
            problem("no `## <name>` section in deploy/RUNBOOK.md");
        }
        let expr = rule["expr"].as_str().unwrap_or_default();
        for error in check_expr(expr, r#"job="incidentd""#) {
            problem(&error);
        }
        let tested = |firing: bool| {
            cases.iter().any(|case| {
                case["alertname"].as_str() == Some(name)
                    && case["exp_alerts"]
                        .as_sequence()
                        .is_some_and(|alerts| alerts.is_empty() != firing)
            })
        };
        if !tested(true) || !tested(false) {
            problem("deploy/alerts_test.yaml does not test it both firing and not firing");
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ----- promtool ------------------------------------------------------------------------------

/// `promtool`, or `None` (with a message) when it is missing and interop is not required.
fn promtool() -> Option<PathBuf> {
    let found = find_binary("promtool");
    if found.is_none() {
        assert!(
            !interop_required(),
            "INCIDENTD_REQUIRE_INTEROP=1 but `promtool` is not on the PATH (apt-get install prometheus)"
        );
        eprintln!(
            "SKIPPED: `promtool` is not on the PATH; install it (apt-get install prometheus) to run this interop test"
        );
    }
    found
}

#[track_caller]
fn promtool_succeeds(args: &[&str]) {
    let Some(promtool) = promtool() else {
        return;
    };
    let output = std::process::Command::new(promtool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_the_alert_rules() {
    promtool_succeeds(&["check", "rules", "deploy/alerts.yaml"]);
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    promtool_succeeds(&["test", "rules", "deploy/alerts_test.yaml"]);
}

#[test]
fn promtool_checks_the_scrape_config_and_the_rules_it_loads() {
    promtool_succeeds(&["check", "config", "deploy/prometheus.yml"]);
}

// ----- every query against a real Prometheus scraping a real incidentd ------------------------

const DEADLINE: Duration = Duration::from_secs(90);

/// Short SLA targets are the defaults for incidents; a 1h mean objective that the scenario's
/// resolutions exceed. `chatops` is a consumer that refuses connections (its backlog grows),
/// `receiver` one that accepts.
fn config(receiver: &Receiver) -> String {
    format!(
        "listen: 127.0.0.1:0
sla:
  warn_at: 0.75
  calendar: 24x7
  incident: {{default: {{first_response: 1h, resolution: 4h}}}}
  request:  {{default: {{first_response: 3h, resolution: 72h}}}}
  mean_resolution_objective: 1h
webhooks:
  - {{name: chatops, url: \"http://{refused}/hook\", secret_env: {SECRET_ENV}}}
  - {{name: receiver, url: \"{receiver}\", secret_env: {SECRET_ENV}}}
",
        refused = refused_addr(),
        receiver = receiver.url(),
    )
}

fn rules(web: &Target, tls: &TlsFixture) -> String {
    format!(
        r#"probes:
  - {{name: web, interval: 200ms, timeout: 200ms, http: {{url: "{web}"}}}}
  - {{name: cert, interval: 200ms, timeout: 200ms, tls: {{address: "localhost:{tls_port}", verify: false}}}}
rules:
  - name: web-down
    probe: web
    when: '[STATUS] != 200'
    incident: {{category: availability, impact: high, urgency: high}}
"#,
        web = web.url(),
        tls_port = tls.addr.port(),
    )
}

/// The number of series (or 1 for a scalar) an instant query answers; `Err` with
/// Prometheus' error when it does not run.
async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> Result<usize, String> {
    let url =
        reqwest::Url::parse_with_params(&format!("{prometheus}/api/v1/query"), &[("query", expr)])
            .unwrap();
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    match body["data"]["resultType"].as_str() {
        Some("vector" | "matrix") => Ok(body["data"]["result"].as_array().map_or(0, Vec::len)),
        Some("scalar" | "string") => Ok(1),
        other => Err(format!("unexpected result type {other:?}")),
    }
}

/// The queries of `queries` that do not run, or run without data; one line each.
async fn without_data(
    client: &reqwest::Client,
    prometheus: &str,
    queries: &[Query],
) -> Vec<String> {
    let mut out = Vec::new();
    for q in queries {
        let expr = substitute(&q.expr);
        match query(client, prometheus, &expr).await {
            Ok(0) => out.push(format!("{} (no data): {expr}", q.source)),
            Ok(_) => {}
            Err(error) => out.push(format!("{} (error {error}): {expr}", q.source)),
        }
    }
    out
}

async fn open(app: &TestApp, ticket: Value) -> String {
    let (status, incident) = app.post("/api/v1/incidents", Some(ticket)).await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    incident["id"].as_str().unwrap().to_owned()
}

async fn act(app: &TestApp, id: &str, verb: &str, body: Option<Value>) {
    let (status, incident) = app
        .post(&format!("/api/v1/incidents/{id}/{verb}"), body)
        .await;
    assert_eq!(status, StatusCode::OK, "{verb} {id}: {incident}");
}

async fn resolve(app: &TestApp, id: &str, resolution: &str) {
    act(
        app,
        id,
        "resolve",
        Some(json!({ "resolution": resolution })),
    )
    .await;
}

fn ticket(title: &str, impact: &str, urgency: &str) -> Value {
    json!({
        "title": title,
        "description": "opened by the dashboards interop test",
        "reporter": {"name": "Ana", "contact": "ana@example.com"},
        "category": "availability",
        "impact": impact,
        "urgency": urgency,
    })
}

fn request(title: &str) -> Value {
    json!({
        "title": title,
        "description": "",
        "reporter": {"name": "Budi", "contact": "budi@example.com"},
        "category": "request",
    })
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

#[tokio::test]
async fn every_panel_query_and_alert_expression_answers_from_a_real_prometheus() {
    let receiver = Receiver::start(200).await;
    let web = Target::start(200).await;
    let tls = tls_fixture().await;
    let dir = ConfigDir::new(&config(&receiver), &[("probes.yaml", &rules(&web, &tls))]);
    let env = HashMap::from([(SECRET_ENV.to_owned(), secret_value())]);
    let app = TestApp::spawn(&dir, env).await;
    let alerts = repo("deploy/alerts.yaml");
    let Some(prometheus) =
        start_prometheus_scraping(&[("incidentd", app.addr)], &[alerts.as_path()]).await
    else {
        app.stop().await;
        return;
    };
    let url = prometheus.url.clone();
    let client = reqwest::Client::new();
    let has_data = async |expr: &str| query(&client, &url, expr).await.is_ok_and(|n| n > 0);

    let dashboard_queries = dashboard_queries();
    let alert_queries = alert_queries();
    let (down, alert_queries): (Vec<Query>, Vec<Query>) = alert_queries
        .into_iter()
        .partition(|q| q.alert.as_deref() == Some("IncidentdDown"));
    assert_eq!(down.len(), 1, "one IncidentdDown rule");

    // Prometheus has the pre-initialised series at 0 before anything happens, so the
    // scenario's changes are increases it sees.
    eventually("two scrapes of incidentd", DEADLINE, async || {
        has_data(r#"count_over_time(up{job="incidentd"}[1m]) >= 2 and up{job="incidentd"} == 1"#)
            .await
            .then_some(())
    })
    .await;

    // Every query parses.
    let mut errors = Vec::new();
    for q in dashboard_queries.iter().chain(&alert_queries).chain(&down) {
        let expr = substitute(&q.expr);
        if let Err(error) = query(&client, &url, &expr).await {
            errors.push(format!("{}: {error}\n    {expr}", q.source));
        }
    }
    assert!(
        errors.is_empty(),
        "queries Prometheus refuses:\n{}",
        errors.join("\n")
    );

    // Nothing is wrong yet: no alert condition holds.
    let mut firing = Vec::new();
    for q in alert_queries.iter().chain(&down) {
        if has_data(&substitute(&q.expr)).await {
            firing.push(q.source.clone());
        }
    }
    assert!(
        firing.is_empty(),
        "alert conditions hold before the scenario: {firing:?}"
    );

    // The scenario (manual clock from 09:00, default incident targets 1h / 4h, requests
    // 3h / 72h, warning at 75 %, mean objective 1h):
    //   W  P3 acknowledged at once, resolved after 5m               first response and resolution met
    //   A  P3 acknowledged after 10m, held 30m, escalated by hand,
    //      resolved at 4h: 3h30m of SLA time                       met, but above the 1h mean objective
    //   B  P1 never acknowledged, resolved at 5h                    both breached
    //   D  P4 never acknowledged, left open                         open clocks breached
    //   R  a request, never acknowledged, left open                 first response breached at 3h
    //   Q  a request acknowledged after 10m, resolved at 40m        both met
    //   C  P2 opened at 1h50m, acknowledged, left open              resolution at risk at 5h (3h10m of 4h)
    //   E  P5 opened at 4h, resolved, reopened                      reopened
    // W's resolution is scraped before A's, so the resolution histogram's increase over any
    // window includes A's 3h30m even if the series first appeared with W.
    let w = open(&app, ticket("Warm-up: printer queue", "medium", "medium")).await;
    act(&app, &w, "acknowledge", None).await;
    app.clock.advance(minutes(5));
    resolve(&app, &w, "cleared the queue").await;
    eventually(
        "Prometheus to see the first resolution",
        DEADLINE,
        async || {
            has_data(r#"sum(incidentd_resolution_seconds_count{job="incidentd"}) >= 1"#)
                .await
                .then_some(())
        },
    )
    .await;

    let a = open(&app, ticket("VPN drops", "medium", "medium")).await;
    let b = open(&app, ticket("Checkout down", "high", "high")).await;
    open(&app, ticket("Reports are slow", "medium", "low")).await; // D
    open(&app, request("New laptop for Budi")).await; // R
    let q = open(&app, request("Access to the billing dashboard")).await;
    app.clock.advance(minutes(10));
    act(&app, &a, "acknowledge", None).await;
    act(&app, &a, "hold", Some(json!({"reason": "the ISP"}))).await;
    act(&app, &q, "acknowledge", None).await;
    app.clock.advance(minutes(30));
    act(&app, &a, "resume", None).await;
    act(&app, &a, "escalate", Some(json!({"reason": "network"}))).await;
    resolve(&app, &q, "granted").await;
    app.clock.advance(minutes(70)); // 1h50m
    let c = open(&app, ticket("Disk filling on db-2", "high", "medium")).await;
    app.clock.advance(minutes(5));
    act(&app, &c, "acknowledge", None).await;
    app.clock.advance(minutes(125)); // 4h
    resolve(&app, &a, "ISP replaced the line").await;
    let e = open(&app, ticket("Typo on the status page", "low", "low")).await;
    act(&app, &e, "acknowledge", None).await;
    app.clock.advance(minutes(10));
    resolve(&app, &e, "fixed the typo").await;
    app.clock.advance(minutes(10));
    act(&app, &e, "reopen", Some(json!({"reason": "another typo"}))).await;
    app.clock.advance(minutes(40)); // 5h
    resolve(&app, &b, "rolled back the release").await;

    // Every panel and every alert condition has data now (the alert conditions hold).
    let queries: Vec<Query> = dashboard_queries.into_iter().chain(alert_queries).collect();
    eventually_ok(
        "every panel query and alert expression to answer with data",
        DEADLINE,
        async || {
            let missing = without_data(&client, &url, &queries).await;
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} queries without data:\n{}",
                    missing.len(),
                    queries.len(),
                    missing.join("\n")
                ))
            }
        },
    )
    .await;

    // Prometheus loaded the rules and evaluates them without errors.
    let rules: Value = client
        .get(format!("{url}/api/v1/rules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut loaded = Vec::new();
    for rule in rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
    {
        assert_eq!(rule["health"], "ok", "{rule}");
        loaded.push(rule["name"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        loaded.len(),
        alert_rules().len(),
        "{loaded:?}\n{}",
        prometheus.log()
    );

    // incidentd stops: its scrapes fail and IncidentdDown's condition holds.
    app.stop().await;
    eventually_ok(
        "IncidentdDown's condition after incidentd stopped",
        DEADLINE,
        async || match without_data(&client, &url, &down).await {
            missing if missing.is_empty() => Ok(()),
            missing => Err(missing.join("\n")),
        },
    )
    .await;
    drop(prometheus);
}
