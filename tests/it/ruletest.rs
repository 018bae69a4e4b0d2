//! `incidentd test`: the shipped rules pass their shipped tests, every shipped rule has a
//! test, a wrong expectation fails with promtool-style output and exit 1, and a malformed
//! test file is reported as `FILE:LINE:COL: message`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use incidentd::config::{self, ExpectedEvent};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn incidentd_test(dir: &Path, files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .current_dir(dir)
        .arg("test")
        .args(files)
        .env_remove("RUST_LOG")
        .output()
        .expect("running incidentd test")
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
            config::load_rule_test(&Path::new(MANIFEST_DIR).join(file))
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
        let file = config::load_rule_test(&Path::new(MANIFEST_DIR).join(&file))
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
    assert_eq!(text(&output.stderr), "");
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
