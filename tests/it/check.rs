//! `incidentd check`: every mistake in every file, as `FILE:LINE:COL: message`, exit 1;
//! a valid configuration gives exit 0 and a one-line summary.

use std::fs::File;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Runs `incidentd ARGS` in `dir`, killed (and the test failed) if it has not finished within
/// `deadline`: a hostile file must give a quick answer, never a hang. Its output goes to
/// files, so that a flood of it cannot block it either.
fn run_within(dir: &ConfigDir, args: &[&str], deadline: Duration) -> (Option<i32>, String) {
    let stdout = dir.path().join("stdout.txt");
    let stderr = dir.path().join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .current_dir(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .expect("running incidentd");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "`incidentd {}` still running after {deadline:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let size = std::fs::metadata(&stderr).unwrap().len();
    assert!(size < 10_000, "{size} bytes of errors");
    (status.code(), std::fs::read_to_string(&stderr).unwrap())
}

fn check_within(dir: &ConfigDir) -> (Option<i32>, String) {
    run_within(
        dir,
        &["check", "--config", "incidentd.yaml"],
        Duration::from_secs(20),
    )
}

#[test]
fn check_and_serve_refuse_files_that_are_not_regular() {
    let dir = ConfigDir::new("rule_files: [/dev/zero, rules/*.yaml]\n", &[]);
    let fifo = dir.path().join("rules/pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let expected = "/dev/zero:1:1: cannot read file: not a regular file (a character device)\n\
         rules/pipe.yaml:1:1: cannot read file: not a regular file (a FIFO)\n"
        .to_owned();
    assert_eq!(check_within(&dir), (Some(1), expected.clone()));
    let serve = ["serve", "--config", "incidentd.yaml"];
    let (code, stderr) = run_within(&dir, &serve, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&expected), "{stderr}");
    // The configuration file itself.
    let (code, stderr) = run_within(
        &dir,
        &["check", "--config", "rules/pipe.yaml"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "rules/pipe.yaml:1:1: cannot read file: not a regular file (a FIFO)\n"
    );
}

/// One anchor, a probe with a 1 MiB body, aliased 1,000 times: a gigabyte once expanded.
fn amplified(key: &str) -> String {
    let mut text = format!(
        "{key}:\n  - &big {{name: p0, http: {{url: 'http://127.0.0.1:1/', body: '{}'}}}}\n",
        "x".repeat(1024 * 1024)
    );
    text.push_str(&"  - *big\n".repeat(1000));
    text
}

#[test]
fn check_refuses_documents_that_aliases_amplify() {
    let limit = "aliases expand this document past 10.1 MiB (10 times its size, at least 1 MiB), \
                 the limit";
    let dir = ConfigDir::new(
        "rule_files: [rules/*.yaml]\n",
        &[("big.yaml", &amplified("probes"))],
    );
    let expected = format!("rules/big.yaml:1:1: {limit}\n");
    assert_eq!(check_within(&dir), (Some(1), expected));
    // In incidentd.yaml, under a key that is not one: one short error, not 1,000 copies.
    let dir = ConfigDir::new(&amplified("webhooks"), &[]);
    let expected = format!("incidentd.yaml:1:1: {limit}\n");
    assert_eq!(check_within(&dir), (Some(1), expected));
}

#[test]
fn check_refuses_deep_nesting_before_parsing() {
    let deep = format!("probes: {}\n", "[".repeat(100_000));
    let dir = ConfigDir::new("rule_files: [rules/*.yaml]\n", &[("deep.yaml", &deep)]);
    assert_eq!(
        check_within(&dir),
        (
            Some(1),
            "rules/deep.yaml:1:72: nesting deeper than 64 levels\n".to_owned()
        )
    );
}

#[test]
fn errors_quote_only_an_excerpt_of_a_file_that_is_not_yaml() {
    let hash = "QWERTYUIOPASDFGHJKLZXCVBNMqwertyuiopasdfghjklzxcvbnm0123456789abcdef";
    let shadow =
        format!("root:$6$saltsalt${hash}:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n");
    let dir = ConfigDir::new("rule_files: [rules/*]\n", &[("shadow", &shadow)]);
    let (code, stderr) = check_within(&dir);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "rules/shadow:1:1: unknown field `root:$6$saltsalt$QWERTYUIOPASDFGHJKLZXCVBNMqwertyuiopasdfghjklzx…`, \
         expected `probes` or `rules`\n"
    );
    assert!(!stderr.contains("19700"), "{stderr}");
}
