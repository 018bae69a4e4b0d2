//! `incidentd test`: the shipped rules pass their shipped tests, every shipped rule has a
//! test, a wrong expectation fails with promtool-style output and exit 1, a malformed test
//! file is reported as `FILE:LINE:COL: message`, and the tests run with the workflow of the
//! deployment's configuration (`--config`, else `incidentd.yaml`, else the built-in one).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use incidentd::config::{self, ExpectedEvent};
use incidentd::domain::policy::WorkflowConfig;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn incidentd_test(dir: &Path, files: &[PathBuf]) -> Output {
    incidentd(dir, &["test"], files)
}

/// `incidentd ARGS FILES...` in `dir`.
fn incidentd(dir: &Path, args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .current_dir(dir)
        .args(args)
        .args(files)
        .env_remove("RUST_LOG")
        .output()
        .expect("running incidentd test")
}

/// What `incidentd test` says when it finds no configuration.
const BUILT_IN: &str = "no incidentd.yaml here: testing with the built-in categories, priority matrix, escalation and SLA policies (--config FILE for a deployment's)\n";

/// The workflow of the shipped configuration, which `incidentd test` uses at the root.
fn shipped_workflow() -> WorkflowConfig {
    config::load_workflow(&Path::new(MANIFEST_DIR).join("incidentd.yaml"))
        .unwrap_or_else(|errors| panic!("{errors}"))
}

/// `DIR/*.yaml`, relative to the repository, sorted.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST_DIR).join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            path.strip_prefix(MANIFEST_DIR)
                .expect("inside the repository")
                .to_path_buf()
        })
        .collect();
    files.sort();
    files
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

#[test]
fn the_shipped_rule_tests_pass() {
    let files = yaml_files("rules/tests");
    assert!(!files.is_empty(), "no rule tests in rules/tests");
    let tests: usize = files
        .iter()
        .map(|file| {
            config::load_rule_test(&Path::new(MANIFEST_DIR).join(file), &shipped_workflow())
                .unwrap_or_else(|errors| panic!("{errors}"))
                .tests
                .len()
        })
        .sum();
    let output = incidentd_test(Path::new(MANIFEST_DIR), &files);
    assert_eq!(
        (text(&output.stdout), text(&output.stderr)),
        (format!("{tests} tests passed\n").as_str(), ""),
    );
    assert!(output.status.success());
}

#[test]
fn every_shipped_rule_has_a_test_that_opens_its_incident() {
    let rule_files = yaml_files("rules");
    let paths: Vec<PathBuf> = rule_files
        .iter()
        .map(|file| Path::new(MANIFEST_DIR).join(file))
        .collect();
    let (_, rules) = config::load_rule_files(&paths).unwrap_or_else(|errors| panic!("{errors}"));
    let mut opened = std::collections::BTreeSet::new();
    for file in yaml_files("rules/tests") {
        let file =
            config::load_rule_test(&Path::new(MANIFEST_DIR).join(&file), &shipped_workflow())
                .unwrap_or_else(|errors| panic!("{errors}"));
        for test in &file.tests {
            for expectation in &test.expect {
                if matches!(expectation.event, ExpectedEvent::Opened { .. }) {
                    opened.insert(expectation.rule.clone());
                }
            }
        }
    }
    let untested: Vec<&str> = rules
        .iter()
        .map(|rule| rule.name.as_str())
        .filter(|name| !opened.contains(*name))
        .collect();
    assert!(rules.len() >= 2, "the shipped rules are found");
    assert_eq!(
        untested,
        Vec::<&str>::new(),
        "rules without a test in rules/tests that expects their incident to open"
    );
}

const RULES: &str = "\
probes:
  - name: checkout-api
    interval: 10s
    labels: {service: checkout}
    http: {url: 'http://127.0.0.1:8080/health'}
rules:
  - name: checkout-down
    probe: checkout-api
    when: '[STATUS] != 200 || ![CONNECTED]'
    after: 3
    recover_after: 2
    incident: {title: 'Checkout API down ({{ status }})', impact: high, urgency: medium}
  - name: checkout-slow
    probe: checkout-api
    when: '[RESPONSE_TIME] > 800ms'
    after: 2
    incident: {category: performance, impact: medium, urgency: low}
";

const WRONG: &str = "\
rule_files: [rules.yaml]
tests:
  - name: right
    probes:
      checkout-api: [{status: 503, repeat: 3}]
    expect:
      - {step: 3, opened: {rule: checkout-down, priority: P2}}
  - name: down opens and resolves
    probes:
      checkout-api:
        - {status: 200, response_time: 20ms}
        - {status: 503, response_time: 20ms, repeat: 3}
        - {connected: false, error: connection refused, response_time: 2s, repeat: 2}
        - {status: 200, response_time: 20ms, repeat: 2}
    expect:
      - {step: 3, opened: {rule: checkout-down, title: Checkout API down (503), priority: P2}}
      - {step: 8, resolved: {rule: checkout-down}}
  - name: slow is P4
    probes:
      checkout-api: [{status: 200, response_time: 1s, repeat: 2}]
    expect:
      - {step: 2, opened: {rule: checkout-slow, category: performance, priority: P3}}
";

#[test]
fn a_wrong_expectation_fails_and_says_what_happened_instead() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("write");
    std::fs::write(dir.path().join("wrong.yaml"), WRONG).expect("write");
    let output = incidentd_test(dir.path(), &["wrong.yaml".into()]);
    assert_eq!(text(&output.stderr), BUILT_IN);
    assert_eq!(
        text(&output.stdout),
        r#"wrong.yaml: test "down opens and resolves": FAILED
  step 3: expected incident opened by rule checkout-down with title "Checkout API down (503)", priority P2
          got: nothing opened at step 3 (opened at step 4: INC-1 "Checkout API down (503)" P2)
wrong.yaml: test "slow is P4": FAILED
  step 2: expected incident opened by rule checkout-slow with category performance, priority P3
          got: INC-1 opened with category performance, priority P4
2 of 3 tests failed
"#
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_malformed_test_file_is_reported_at_its_place_and_the_others_still_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("write");
    std::fs::write(
        dir.path().join("malformed.yaml"),
        "\
rule_files: [rules.yaml, missing/*.yaml]
tests:
  - name: typos
    probes:
      checkout-apii: [{status: 200}]
      checkout-api:
        - {status: 200, respons_time: 20ms}
    expect:
      - {step: 1, opened: {rule: checkout-down, priority: P9}}
",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("good.yaml"),
        "rule_files: [rules.yaml]\ntests: [{name: quiet, probes: {checkout-api: [{status: 200}]}}]\n",
    )
    .expect("write");
    let output = incidentd_test(dir.path(), &["malformed.yaml".into(), "good.yaml".into()]);
    let stderr: Vec<&str> = text(&output.stderr).lines().collect();
    assert_eq!(
        stderr,
        [
            BUILT_IN.trim_end(),
            "malformed.yaml:1:26: `missing/*.yaml` matches no file",
            "malformed.yaml:5:7: unknown probe `checkout-apii`: the rule files do not define it; did you mean `checkout-api`?",
            "malformed.yaml:7:25: unknown field `respons_time`, expected one of `status`, `response_time`, `connected`, `error`, `body`, `headers`, `certificate_expiry`, `dns_rcode`, `value`, `subject`, `repeat`",
            "malformed.yaml:9:59: unknown variant `P9`, expected one of `P1`, `P2`, `P3`, `P4`, `P5`",
        ]
    );
    assert_eq!(
        text(&output.stdout),
        "1 test passed; 1 test file is invalid\n"
    );
    assert_eq!(output.status.code(), Some(1));
}

/// A deployment whose priority matrix puts high impact first and whose P1 starts at L2.
const DEPLOYMENT: &str = "\
priority_matrix:
  high:   {high: P1, medium: P1, low: P2}
  medium: {high: P2, medium: P3, low: P3}
  low:    {high: P3, medium: P4, low: P5}
escalation:
  P1: {start_tier: L2}
";

/// Passes with [`DEPLOYMENT`]'s workflow only.
const DEPLOYMENT_TEST: &str = "\
rule_files: [rules.yaml]
tests:
  - name: down is P1 at L2
    probes:
      checkout-api: [{status: 503, repeat: 3}]
    expect:
      - {step: 3, opened: {rule: checkout-down, priority: P1, tier: L2}}
  - name: slow is P3
    probes:
      checkout-api: [{status: 200, response_time: 1s, repeat: 2}]
    expect:
      - {step: 2, opened: {rule: checkout-slow, category: performance, priority: P3}}
";

/// A directory with [`RULES`], [`DEPLOYMENT_TEST`] as `t.yaml` and `files`.
fn deployment_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("write");
    std::fs::write(dir.path().join("t.yaml"), DEPLOYMENT_TEST).expect("write");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

#[test]
fn the_same_test_passes_with_the_deployments_workflow_and_fails_with_another() {
    let dir = deployment_dir(&[("deploy.yaml", DEPLOYMENT)]);
    let files = ["t.yaml".into()];

    let deployed = incidentd(dir.path(), &["test", "--config", "deploy.yaml"], &files);
    assert_eq!(
        (text(&deployed.stdout), text(&deployed.stderr)),
        ("2 tests passed\n", "")
    );
    assert!(deployed.status.success());

    let built_in = incidentd(dir.path(), &["test"], &files);
    assert_eq!(text(&built_in.stderr), BUILT_IN);
    assert_eq!(
        text(&built_in.stdout),
        r#"t.yaml: test "down is P1 at L2": FAILED
  step 3: expected incident opened by rule checkout-down with priority P1, tier L2
          got: INC-1 opened with priority P2, tier L1
t.yaml: test "slow is P3": FAILED
  step 2: expected incident opened by rule checkout-slow with category performance, priority P3
          got: INC-1 opened with category performance, priority P4
2 of 2 tests failed
"#
    );
    assert_eq!(built_in.status.code(), Some(1));
}

#[test]
fn without_config_the_incidentd_yaml_of_the_directory_is_the_deployment() {
    let dir = deployment_dir(&[("incidentd.yaml", DEPLOYMENT)]);
    let output = incidentd_test(dir.path(), &["t.yaml".into()]);
    assert_eq!(
        (text(&output.stdout), text(&output.stderr)),
        ("2 tests passed\n", "")
    );
    assert!(output.status.success());
}

#[test]
fn a_rule_category_outside_the_deployments_taxonomy_is_an_error_in_the_rule_file() {
    let dir = deployment_dir(&[(
        "deploy.yaml",
        "categories: [{name: availability}, {name: request, kind: request}]\n",
    )]);
    let output = incidentd(
        dir.path(),
        &["test", "--config", "deploy.yaml"],
        &["t.yaml".into()],
    );
    assert_eq!(
        text(&output.stderr),
        "rules.yaml:17:26: unknown category `performance`; valid: availability, request\n"
    );
    assert_eq!(
        text(&output.stdout),
        "0 tests passed; 1 test file is invalid\n"
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_missing_or_invalid_config_runs_no_test() {
    let dir = deployment_dir(&[(
        "broken.yaml",
        "\
priority_matrix:
  high: {high: P9, medium: P1, low: P2}
escalation:
  P1: {start_tier: L4}
auth:
  tokens: [{name: ci, token_env: INCIDENTD_TEST_UNSET_TOKEN, role: admin}]
",
    )]);
    let files = ["t.yaml".into()];
    let missing = incidentd(dir.path(), &["test", "--config", "nope.yaml"], &files);
    assert_eq!(
        text(&missing.stderr),
        "nope.yaml:1:1: cannot read file: No such file or directory (os error 2)\n"
    );
    assert_eq!(text(&missing.stdout), "");
    assert_eq!(missing.status.code(), Some(1));

    // Every problem of the file, but no secret is read: the unset variable is no problem.
    let broken = incidentd(dir.path(), &["test", "--config", "broken.yaml"], &files);
    let stderr: Vec<&str> = text(&broken.stderr).lines().collect();
    assert_eq!(
        stderr,
        [
            "broken.yaml:2:3: priority_matrix has no row for impact `medium`; every impact (high, medium, low) needs one",
            "broken.yaml:2:3: priority_matrix has no row for impact `low`; every impact (high, medium, low) needs one",
            "broken.yaml:2:16: unknown variant `P9`, expected one of `P1`, `P2`, `P3`, `P4`, `P5`",
            "broken.yaml:4:20: unknown variant `L4`, expected one of `L1`, `L2`, `L3`",
        ]
    );
    assert_eq!(text(&broken.stdout), "");
    assert_eq!(broken.status.code(), Some(1));
}
