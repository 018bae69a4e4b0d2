//! `incidentd check`: every mistake in every file, as `FILE:LINE:COL: message`, exit 1;
//! a valid configuration gives exit 0 and a one-line summary.

use std::process::{Command, Output};

use crate::support::ConfigDir;

fn check(dir: &ConfigDir) -> Output {
    Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .current_dir(dir.path())
        .args(["check", "--config", "incidentd.yaml"])
        .output()
        .expect("running incidentd check")
}

const BROKEN_RULES: &str = r#"probes:
  - name: web
    interval: 10s
    timeout: 2s
    http: {url: "http://127.0.0.1:8080/health", methd: GET}
  - name: api
    interval: 5 min
    http: {url: "http://127.0.0.1:8081/health"}
rules:
  - name: web-down
    probe: web
    when: '[STAUS] != 200'
  - name: api-down
    probe: apii
    when: '[STATUS] != 200 &&'
    incident: {impact: huge}
"#;

#[test]
fn check_reports_every_mistake_with_its_place() {
    let dir = ConfigDir::new(
        "sla: {warn_at: 2}\nrule_files: [rules/*.yaml]\n",
        &[("web.yaml", BROKEN_RULES)],
    );
    let output = check(&dir);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "incidentd.yaml:1:16: warn_at must be a share of the target between 0 and 1 (exclusive), e.g. 0.75; got 2",
            "rules/web.yaml:5:49: unknown field `methd`, expected one of `url`, `method`, `headers`, `body`, `tls_verify`, `follow_redirects`",
            "rules/web.yaml:7:15: invalid duration `5 min`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
            "rules/web.yaml:12:12: unknown placeholder [STAUS]; did you mean [STATUS]?",
            "rules/web.yaml:14:12: rule `api-down` names unknown probe `apii`; did you mean `api`?",
            "rules/web.yaml:15:30: expected an operand after `&&`, found the end of the condition",
            "rules/web.yaml:16:24: unknown variant `huge`, expected one of `high`, `medium`, `low`",
        ],
        "{stderr}"
    );
}

#[test]
fn check_accepts_the_shipped_configuration() {
    let output = Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        "incidentd.yaml: valid (1 rule files, 1 probes, 2 rules, 0 webhooks)\n"
    );
}
