//! Reading `incidentd.yaml` and the rule files it names into a validated [`Config`].
//!
//! Every file goes through the same three steps, so that one mistake never hides another:
//!
//! 1. an *outline* parse: the top-level keys strictly (`deny_unknown_fields`), every list
//!    item and section as a loose [`serde_yaml::Value`]. A file whose outline fails (bad
//!    YAML, an unknown top-level key, `probes` not a list) gives that one diagnostic;
//! 2. each item converted to its strict raw type (`Raw*`, `deny_unknown_fields`). That is a
//!    cheap `from_value` for a valid item; only an item that fails is deserialized again from
//!    the file's text ([`Source::deserialize_at`]) so that its error has a position;
//! 3. the raw types checked and turned into the validated types of [`super`]; a semantic
//!    problem is located with [`Source::node_position`] at the offending value.
//!
//! Then names are checked across all rule files (unique probes and rules, rules naming
//! existing probes). Only problems cost a second parse (of the item's lines, mostly), so a
//! valid file loads in linear time and a broken one in about that.
//!
//! Invariant: an item or section that yields `None` has pushed a diagnostic, so when there
//! are no diagnostics, nothing was dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_yaml::Value;

use super::document::{Check, Document, Secrets, document, is_label_name, read, sorted};
use super::locate::{Segment, Segment::Index, Segment::Key, Split};
use super::{
    AuthConfig, Config, ConfigErrors, DEFAULT_RETRY_SCHEDULE, DEFAULT_WEBHOOK_MAX_AGE,
    DEFAULT_WEBHOOK_RETENTION, DNS_RECORD_TYPES, Diagnostic, DnsProbe, EVENT_TYPES, HttpConfig,
    HttpProbe, IcmpProbe, IcmpUnavailable, IncidentTemplate, MaintenanceWindow, ProbeConfig,
    ProbeTarget, PrometheusProbe, Role, RuleConfig, TcpProbe, TlsProbe, TokenConfig, WebhookConfig,
    split_host_port,
};
use std::str::FromStr;

use crate::domain::condition::Condition;
use crate::domain::detector::MAX_FLAPPING_WINDOW;
use crate::domain::duration::format_duration;
use crate::domain::incident::{Kind, Tier};
use crate::domain::observation::BODY_LIMIT;
use crate::domain::policy::{
    Category, EscalationConfig, EscalationPolicy, PriorityMatrix, WorkflowConfig,
};
use crate::domain::priority::{Level, Priority};
use crate::metrics::ProbeDurationHistogram;

const DEFAULT_LISTEN: &str = "127.0.0.1:9750";
use super::storage::{DEFAULT_STORAGE_PATH, Storage};
const DEFAULT_RULE_FILES: &str = "rules/*.yaml";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest probe interval (the integration tests probe loopback targets every 100ms).
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest default `confirm_interval` (probes with an interval of 4s or more).
const DEFAULT_CONFIRM_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CATEGORY: &str = "availability";
const DEFAULT_AFTER: u32 = 1;
const DEFAULT_RECOVER_AFTER: u32 = 2;
/// Standard Webhooks: a signing key is 24 to 64 bytes.
const WEBHOOK_KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// Every probe type of the contract.
const PROBE_TYPES: [&str; 6] = ["http", "tcp", "dns", "tls", "icmp", "prometheus"];
/// Probe runs in flight at once, over all probes, unless `probe_concurrency` says otherwise.
const DEFAULT_PROBE_CONCURRENCY: usize = 256;
const DEFAULT_DNS_PORT: u16 = 53;
const DEFAULT_DNS_RECORD: &str = "A";

/// Loads `path` and every rule file its `rule_files` globs match. `env` reads environment
/// variables (secrets live there, never in YAML). Either a fully valid configuration or
/// every problem found, sorted by file, line and column.
///
/// ICMP probes are checked against what this host allows
/// ([`crate::probe::icmp::check_access`]), so `incidentd check` says so before `serve` runs.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    load_with(path, env, &crate::probe::icmp::check_access)
}

/// [`load`] with the host's ICMP answer given: tests inject one, so that they neither depend
/// on the machine's sysctl nor open sockets. `icmp_access` is asked at most once, and only
/// when a probe uses ICMP.
pub fn load_with(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    icmp_access: &dyn Fn() -> Result<(), IcmpUnavailable>,
) -> Result<Config, ConfigErrors> {
    let mut diagnostics = Vec::new();
    let doc = read(path.to_path_buf(), &mut diagnostics);
    load_document(path, doc, env, icmp_access, diagnostics)
}

/// [`load_with`] with `text` as the content of the file at `path`, which is not read (its
/// rule files are, as `rule_files` says, relative to `path`'s directory): the same checks and
/// the same diagnostics, for callers that hold the text already.
pub fn load_text(
    path: &Path,
    text: String,
    env: &dyn Fn(&str) -> Option<String>,
    icmp_access: &dyn Fn() -> Result<(), IcmpUnavailable>,
) -> Result<Config, ConfigErrors> {
    let mut diagnostics = Vec::new();
    let doc = document(path.to_path_buf(), text, &mut diagnostics);
    load_document(path, doc, env, icmp_access, diagnostics)
}

/// [`load_with`] once the file at `path` is read (`None`: it could not be, as `diagnostics`
/// says).
fn load_document(
    path: &Path,
    doc: Option<Document>,
    env: &dyn Fn(&str) -> Option<String>,
    icmp_access: &dyn Fn() -> Result<(), IcmpUnavailable>,
    mut diagnostics: Vec<Diagnostic>,
) -> Result<Config, ConfigErrors> {
    let mut icmp = IcmpGate {
        access: icmp_access,
        answer: None,
    };
    let config_dir = path.parent().unwrap_or(Path::new(""));
    let settings = doc.map(|doc| settings(&doc, config_dir, Secrets::From(env), &mut diagnostics));
    let Some(settings) = settings else {
        return Err(ConfigErrors(diagnostics));
    };
    // The rules' categories need both files: checked here, against a valid taxonomy only.
    let categories = settings
        .categories_known
        .then_some(&settings.workflow.categories[..]);
    let RuleSet { probes, rules, .. } = rule_files_with(
        &settings.rule_files,
        &mut icmp,
        categories,
        &mut diagnostics,
    );
    if !diagnostics.is_empty() {
        return Err(sorted(diagnostics));
    }
    Ok(Config {
        path: path.to_path_buf(),
        listen: settings.listen,
        external_url: settings.external_url,
        storage_path: settings.storage_path,
        postgres: settings.postgres,
        rule_files: settings.rule_files,
        auth: settings.auth,
        webhooks: settings.webhooks,
        probe_concurrency: settings.probe_concurrency,
        probe_duration_histogram: settings.probe_duration_histogram,
        workflow: settings.workflow,
        probes,
        rules,
        http: settings.http,
        alerts: settings.alerts,
        status_page: settings.status_page,
        mail: settings.mail,
    })
}

/// The workflow the `incidentd.yaml` at `path` configures (`categories`, `priority_matrix`,
/// `escalation`, `closure`, `sla`): what `incidentd test` runs rule tests with, so that they
/// decide as the server would. Every problem in the file is reported, but the environment
/// variables it names are not read (a rule test needs no secret) and its rule files are not
/// loaded (a test file names its own).
pub fn load_workflow(path: &Path) -> Result<WorkflowConfig, ConfigErrors> {
    let mut diagnostics = Vec::new();
    let config_dir = path.parent().unwrap_or(Path::new(""));
    let settings = read(path.to_path_buf(), &mut diagnostics)
        .map(|doc| settings(&doc, config_dir, Secrets::Unread, &mut diagnostics));
    match settings {
        Some(settings) if diagnostics.is_empty() => Ok(settings.workflow),
        _ => Err(sorted(diagnostics)),
    }
}

/// The probes and rules of valid rule files.
pub type ProbesAndRules = (Vec<Arc<ProbeConfig>>, Vec<Arc<RuleConfig>>);

/// Loads the rule files at `paths` on their own, without an `incidentd.yaml` (so their
/// categories are not checked). Either every probe and rule, valid, or every problem found,
/// sorted by file, line and column.
pub fn load_rule_files(paths: &[PathBuf]) -> Result<ProbesAndRules, ConfigErrors> {
    let mut diagnostics = Vec::new();
    let loaded = rule_files(paths, None, &mut diagnostics);
    if diagnostics.is_empty() {
        Ok((loaded.probes, loaded.rules))
    } else {
        Err(sorted(diagnostics))
    }
}

/// [`load_rule_files`] of one rule file whose content is `text` (shown as `file`, which is
/// not read), with the host's ICMP answer given as in [`load_with`].
pub fn load_rule_text(
    file: &Path,
    text: String,
    icmp_access: &dyn Fn() -> Result<(), IcmpUnavailable>,
) -> Result<ProbesAndRules, ConfigErrors> {
    let mut icmp = IcmpGate {
        access: icmp_access,
        answer: None,
    };
    let mut diagnostics = Vec::new();
    let files = document(file.to_path_buf(), text, &mut diagnostics)
        .map(|doc| rule_file(doc, &mut icmp, &mut diagnostics))
        .into_iter()
        .collect();
    let loaded = rule_set(files, 0, None, &mut diagnostics);
    if diagnostics.is_empty() {
        Ok((loaded.probes, loaded.rules))
    } else {
        Err(sorted(diagnostics))
    }
}

/// The probes and rules of some rule files, as far as they are valid.
pub(super) struct RuleSet {
    pub(super) probes: Vec<Arc<ProbeConfig>>,
    pub(super) rules: Vec<Arc<RuleConfig>>,
    /// Every probe and rule was read: the only problems, if any, are categories missing from
    /// the taxonomy. The names the files define are then known for sure.
    pub(super) complete: bool,
}

/// Reads and checks rule files, names across all of them included, and every rule's category
/// against `categories` when given (the taxonomy of `incidentd.yaml`). What it returns is
/// complete only when it pushed no diagnostic.
pub(super) fn rule_files(
    paths: &[PathBuf],
    categories: Option<&[Category]>,
    diagnostics: &mut Vec<Diagnostic>,
) -> RuleSet {
    let mut icmp = IcmpGate {
        access: &crate::probe::icmp::check_access,
        answer: None,
    };
    rule_files_with(paths, &mut icmp, categories, diagnostics)
}

/// [`rule_files`], with the host's ICMP answer given.
fn rule_files_with(
    paths: &[PathBuf],
    icmp: &mut IcmpGate<'_>,
    categories: Option<&[Category]>,
    diagnostics: &mut Vec<Diagnostic>,
) -> RuleSet {
    let before = diagnostics.len();
    let mut files = Vec::new();
    for file in paths {
        if let Some(doc) = read(file.clone(), diagnostics) {
            files.push(rule_file(doc, icmp, diagnostics));
        }
    }
    rule_set(files, before, categories, diagnostics)
}

/// The names across `files`, and their categories against `categories` when given: what
/// [`rule_files_with`] checks once each file is read. `diagnostics` held `before` entries
/// before the files were read: the set is complete when no more were pushed but for
/// categories.
fn rule_set(
    files: Vec<RuleFile>,
    before: usize,
    categories: Option<&[Category]>,
    diagnostics: &mut Vec<Diagnostic>,
) -> RuleSet {
    check_names(&files, diagnostics);
    check_dependencies(&files, diagnostics);
    let complete = diagnostics.len() == before;
    if let Some(categories) = categories {
        check_categories(&files, categories, diagnostics);
    }
    let mut probes = Vec::with_capacity(files.iter().map(|file| file.probes.len()).sum());
    let mut rules = Vec::with_capacity(files.iter().map(|file| file.rules.len()).sum());
    for file in files {
        probes.extend(
            file.probes
                .into_iter()
                .filter_map(|e| e.config.map(Arc::new)),
        );
        rules.extend(
            file.rules
                .into_iter()
                .filter_map(|e| e.config.map(Arc::new)),
        );
    }
    RuleSet {
        probes,
        rules,
        complete,
    }
}

/// Whether this host lets incidentd send ICMP echo requests, asked once and only if needed.
struct IcmpGate<'a> {
    access: &'a dyn Fn() -> Result<(), IcmpUnavailable>,
    answer: Option<Result<(), IcmpUnavailable>>,
}

impl IcmpGate<'_> {
    fn allowed(&mut self) -> Result<(), IcmpUnavailable> {
        *self.answer.get_or_insert_with(|| (self.access)())
    }
}

// ---------------------------------------------------------------------------------------
// Raw serde types: the files' shapes, strict, before any semantic check.

/// `incidentd.yaml`, outline: sections stay loose until each is converted on its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of incidentd settings")]
struct ConfigOutline {
    listen: Option<Value>,
    external_url: Option<Value>,
    storage: Option<Value>,
    rule_files: Option<Vec<Value>>,
    auth: Option<AuthOutline>,
    webhooks: Option<Vec<Value>>,
    probe_concurrency: Option<Value>,
    probe_duration_histogram: Option<Value>,
    categories: Option<Vec<Value>>,
    priority_matrix: Option<Value>,
    escalation: Option<Value>,
    sla: Option<Value>,
    closure: Option<Value>,
    http: Option<Value>,
    alerts: Option<Value>,
    status_page: Option<Value>,
    mail: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `tokens`")]
struct AuthOutline {
    tokens: Option<Vec<Value>>,
}

// Items, and the mappings inside them, are outlines too: their keys are checked by serde
// (`deny_unknown_fields`) and each value is converted on its own (`Check::field`), so that a
// bad value does not hide the other fields' problems.

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a token (a mapping with `name`, `token_env` and `role`)"
)]
struct TokenOutline {
    name: Option<Value>,
    token_env: Option<Value>,
    role: Option<Value>,
    security: Option<Value>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawRole {
    Viewer,
    Ingest,
    Responder,
    Admin,
}

impl From<RawRole> for Role {
    fn from(role: RawRole) -> Role {
        match role {
            RawRole::Viewer => Role::Viewer,
            RawRole::Ingest => Role::Ingest,
            RawRole::Responder => Role::Responder,
            RawRole::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a webhook (a mapping with `name`, `url` and `secret_env`)"
)]
struct WebhookOutline {
    name: Option<Value>,
    url: Option<Value>,
    secret_env: Option<Value>,
    events: Option<Value>,
    timeout: Option<Value>,
    security: Option<Value>,
    min_priority: Option<Value>,
    kinds: Option<Value>,
    categories: Option<Value>,
    services: Option<Value>,
    max_age: Option<Value>,
    retry_schedule: Option<Value>,
    retention: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a category (a mapping with `name`, `kind` and `restricted`)"
)]
struct CategoryOutline {
    name: Option<Value>,
    kind: Option<Value>,
    restricted: Option<Value>,
}

/// `priority_matrix`: impact → row. A row is the same shape: urgency → priority.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a priority matrix (a mapping of impact to urgency to priority)"
)]
struct MatrixOutline {
    high: Option<Value>,
    medium: Option<Value>,
    low: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a row of the priority matrix (a mapping of urgency to priority)"
)]
struct MatrixRowOutline {
    high: Option<Value>,
    medium: Option<Value>,
    low: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "escalation policies (a mapping of P1 to P5 and `default` to a policy)"
)]
struct EscalationOutline {
    #[serde(rename = "P1")]
    p1: Option<Value>,
    #[serde(rename = "P2")]
    p2: Option<Value>,
    #[serde(rename = "P3")]
    p3: Option<Value>,
    #[serde(rename = "P4")]
    p4: Option<Value>,
    #[serde(rename = "P5")]
    p5: Option<Value>,
    default: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an escalation policy (a mapping with `start_tier`, `unacknowledged_after` and `unresolved_after`)"
)]
struct PolicyOutline {
    start_tier: Option<Value>,
    unacknowledged_after: Option<Value>,
    unresolved_after: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "closure settings (a mapping with `quiet_period`)"
)]
struct ClosureOutline {
    quiet_period: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "HTTP server settings (a mapping with `max_connections`, `header_read_timeout`, `idle_timeout`)"
)]
struct HttpServerOutline {
    max_connections: Option<Value>,
    header_read_timeout: Option<Value>,
    idle_timeout: Option<Value>,
}

/// A rule file, outline.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `probes` and `rules`")]
struct RuleFileOutline {
    probes: Option<Vec<Value>>,
    rules: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a probe (a mapping with `name` and one probe type)"
)]
struct ProbeOutline {
    name: Option<Value>,
    interval: Option<Value>,
    confirm_interval: Option<Value>,
    timeout: Option<Value>,
    labels: Option<Value>,
    http: Option<Value>,
    tcp: Option<Value>,
    dns: Option<Value>,
    tls: Option<Value>,
    icmp: Option<Value>,
    prometheus: Option<Value>,
}

impl ProbeOutline {
    /// The settings under a probe type's key (`None` also for `tcp: ~`).
    fn settings(self, kind: &str) -> Option<Value> {
        match kind {
            "http" => self.http,
            "tcp" => self.tcp,
            "dns" => self.dns,
            "tls" => self.tls,
            "icmp" => self.icmp,
            "prometheus" => self.prometheus,
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an http probe (a mapping with `url`)"
)]
struct HttpOutline {
    url: Option<Value>,
    method: Option<Value>,
    headers: Option<Value>,
    body: Option<Value>,
    tls_verify: Option<Value>,
    follow_redirects: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a tcp probe (a mapping with `address`)"
)]
struct TcpOutline {
    address: Option<Value>,
    send: Option<Value>,
    expect: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a tls probe (a mapping with `address`)"
)]
struct TlsOutline {
    address: Option<Value>,
    server_name: Option<Value>,
    verify: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a dns probe (a mapping with `name` and `server`)"
)]
struct DnsOutline {
    name: Option<Value>,
    server: Option<Value>,
    record: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an icmp probe (a mapping with `host`)"
)]
struct IcmpOutline {
    host: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a prometheus probe (a mapping with `url` and `query`)"
)]
struct PrometheusOutline {
    url: Option<Value>,
    query: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule (a mapping with `name`, `probe` and `when`)"
)]
struct RuleOutline {
    name: Option<Value>,
    probe: Option<Value>,
    when: Option<Value>,
    after: Option<Value>,
    recover_after: Option<Value>,
    #[serde(rename = "for")]
    for_: Option<Value>,
    auto_resolve: Option<Value>,
    depends_on: Option<Value>,
    flapping: Option<Value>,
    maintenance: Option<Value>,
    incident: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "flap detection (a mapping with `changes` and `window`)"
)]
struct RawFlapping {
    changes: Option<u32>,
    window: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a maintenance window (a mapping with `start`, `duration`, `weekdays`, `utc_offset`)"
)]
struct RawMaintenance {
    start: String,
    duration: String,
    #[serde(default)]
    weekdays: Vec<String>,
    utc_offset: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an incident template (a mapping)")]
struct IncidentOutline {
    title: Option<Value>,
    category: Option<Value>,
    impact: Option<Value>,
    urgency: Option<Value>,
}

// ---------------------------------------------------------------------------------------
// Checks only the loader of incidentd.yaml and rule files needs.

impl Check<'_> {
    /// An `http`/`https` URL.
    fn http_url(&mut self, path: &[Segment<'_>], text: &str) -> Option<reqwest::Url> {
        match reqwest::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
            Ok(_) => {
                self.at(path, format!("url `{text}` must use http or https"));
                None
            }
            Err(err) => {
                self.at(path, format!("invalid url `{text}`: {err}"));
                None
            }
        }
    }

    /// The value of the environment variable `var`, which the field at `path` names; `what`
    /// says which field of what, e.g. "token_env of token `admin`". Never echoes the value.
    /// Surrounding whitespace (the newline of a secret file) is not part of it. `None`
    /// without a problem when secrets are not read.
    pub(super) fn secret(
        &mut self,
        path: &[Segment<'_>],
        var: &str,
        what: &str,
        secrets: Secrets<'_>,
    ) -> Option<String> {
        let Secrets::From(env) = secrets else {
            return None;
        };
        match env(var) {
            None => {
                self.at(
                    path,
                    format!("environment variable {var} ({what}) is not set"),
                );
                None
            }
            Some(value) if value.trim().is_empty() => {
                self.at(
                    path,
                    format!("environment variable {var} ({what}) is empty"),
                );
                None
            }
            Some(value) => Some(value.trim().to_owned()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// incidentd.yaml

/// `incidentd.yaml`, validated (fallbacks in place of invalid parts: see the invariant).
struct Settings {
    listen: SocketAddr,
    external_url: Option<String>,
    storage_path: PathBuf,
    postgres: Option<super::PostgresConfig>,
    rule_files: Vec<PathBuf>,
    auth: AuthConfig,
    webhooks: Vec<WebhookConfig>,
    probe_concurrency: usize,
    probe_duration_histogram: ProbeDurationHistogram,
    workflow: WorkflowConfig,
    http: HttpConfig,
    alerts: crate::domain::alert::AlertMapping,
    status_page: super::StatusPageConfig,
    mail: Option<super::MailConfig>,
    /// Whether `workflow.categories` is the taxonomy as configured, so that the rules'
    /// categories can be checked against it (not when `categories` has a problem).
    categories_known: bool,
}

fn settings(
    doc: &Document,
    config_dir: &Path,
    env: Secrets<'_>,
    out: &mut Vec<Diagnostic>,
) -> Settings {
    let mut check = Check { doc, out };
    let Some(outline) = check.outline::<ConfigOutline>() else {
        // The rule files are still worth checking: take their globs from what can be read.
        let patterns = salvage_rule_patterns(doc.source.text());
        return Settings {
            listen: default_listen(),
            external_url: None,
            storage_path: config_dir.join(DEFAULT_STORAGE_PATH),
            postgres: None,
            rule_files: match_rule_files(&mut check, config_dir, &patterns),
            auth: AuthConfig::default(),
            webhooks: Vec::new(),
            probe_concurrency: DEFAULT_PROBE_CONCURRENCY,
            probe_duration_histogram: ProbeDurationHistogram::default(),
            workflow: WorkflowConfig::default(),
            http: HttpConfig::default(),
            alerts: Default::default(),
            status_page: Default::default(),
            mail: None,
            categories_known: false,
        };
    };
    let patterns = rule_patterns(&mut check, outline.rule_files);
    let categories = categories(&mut check, outline.categories);
    let categories_known = categories.is_some();
    let workflow = WorkflowConfig {
        categories: categories.unwrap_or_default(),
        priority_matrix: priority_matrix(&mut check, outline.priority_matrix),
        escalation: escalation(&mut check, outline.escalation),
        closure_quiet_period: closure_quiet_period(&mut check, outline.closure),
        sla: super::sla::sla(&mut check, outline.sla),
    };
    let alerts = super::alerts::alerts(
        &mut check,
        outline.alerts,
        categories_known.then_some(&workflow.categories[..]),
    );
    let (storage_path, postgres) =
        match super::storage::storage(&mut check, config_dir, outline.storage, env) {
            Storage::File(path) => (path, None),
            Storage::Postgres(postgres) => (config_dir.join(DEFAULT_STORAGE_PATH), Some(postgres)),
        };
    Settings {
        listen: listen(&mut check, outline.listen),
        external_url: outline
            .external_url
            .and_then(|value| check.strict(value, &[Key("external_url")])),
        storage_path,
        postgres,
        rule_files: match_rule_files(&mut check, config_dir, &patterns),
        auth: AuthConfig {
            tokens: tokens(
                &mut check,
                outline
                    .auth
                    .and_then(|auth| auth.tokens)
                    .unwrap_or_default(),
                env,
            ),
        },
        webhooks: webhooks(
            &mut check,
            outline.webhooks.unwrap_or_default(),
            categories_known.then_some(&workflow.categories[..]),
            env,
        ),
        probe_concurrency: probe_concurrency(&mut check, outline.probe_concurrency),
        probe_duration_histogram: probe_duration_histogram(
            &mut check,
            outline.probe_duration_histogram,
        ),
        workflow,
        http: http(&mut check, outline.http),
        alerts,
        status_page: super::status_page::status_page(&mut check, outline.status_page),
        mail: super::mail::mail(&mut check, outline.mail, env),
        categories_known,
    }
}

/// `categories`: the taxonomy, replacing the default one entirely. `None` when it has a
/// problem (which has its diagnostic).
fn categories(check: &mut Check<'_>, items: Option<Vec<Value>>) -> Option<Vec<Category>> {
    let Some(items) = items else {
        return Some(WorkflowConfig::default().categories);
    };
    let before = check.count();
    if items.is_empty() {
        check.at(
            &[Key("categories")],
            "categories must list at least one category".to_owned(),
        );
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut categories = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let at = [Key("categories"), Index(index)];
        let Some(outline) = check.strict::<CategoryOutline>(item, &at) else {
            continue;
        };
        let name: Option<String> = check.required(&at, "name", outline.name);
        let kind: Option<Kind> = check.field(&at, "kind", outline.kind);
        let restricted: Option<bool> = check.field(&at, "restricted", outline.restricted);
        let Some(name) = name else { continue };
        let path = [Key("categories"), Index(index), Key("name")];
        if !is_category(&name) {
            check.at(
                &path,
                format!("invalid category `{name}`; categories match [a-z][a-z0-9_]*"),
            );
        } else if let Some(&first) = names.get(&name) {
            let first = check
                .doc
                .place(&[Key("categories"), Index(first), Key("name")]);
            check.at(
                &path,
                format!("duplicate category name `{name}`; first defined at {first}"),
            );
        } else {
            names.insert(name.clone(), index);
        }
        categories.push(Category {
            name,
            kind: kind.unwrap_or(Kind::Incident),
            restricted: restricted.unwrap_or(false),
        });
    }
    (check.count() == before).then_some(categories)
}

/// `priority_matrix`: every impact, and in each every urgency, mapped to a priority.
fn priority_matrix(check: &mut Check<'_>, value: Option<Value>) -> PriorityMatrix {
    let mut matrix = PriorityMatrix::default();
    let at = [Key("priority_matrix")];
    let Some(outline) = value.and_then(|value| check.strict::<MatrixOutline>(value, &at)) else {
        return matrix;
    };
    let rows = [
        (Level::High, outline.high),
        (Level::Medium, outline.medium),
        (Level::Low, outline.low),
    ];
    for (i, (impact, row)) in rows.into_iter().enumerate() {
        let Some(row) = row else {
            check.at(
                &at,
                format!(
                    "priority_matrix has no row for impact `{impact}`; every impact (high, medium, low) needs one"
                ),
            );
            continue;
        };
        let row_at = [Key("priority_matrix"), Key(impact.as_str())];
        let Some(row) = check.strict::<MatrixRowOutline>(row, &row_at) else {
            continue;
        };
        let cells = [
            (Level::High, row.high),
            (Level::Medium, row.medium),
            (Level::Low, row.low),
        ];
        for (u, (urgency, cell)) in cells.into_iter().enumerate() {
            if cell.is_none() {
                check.at(
                    &row_at,
                    format!(
                        "priority_matrix impact `{impact}` has no priority for urgency `{urgency}`; every urgency (high, medium, low) needs one"
                    ),
                );
            }
            if let Some(priority) = check.field::<Priority>(&row_at, urgency.as_str(), cell) {
                matrix.0[i][u] = priority;
            }
        }
    }
    matrix
}

/// `escalation`: a policy per priority, `default` for the priorities not listed. The
/// section replaces the built-in policies entirely (a priority it does not list follows its
/// `default`). A field a priority's policy leaves out is its `default`'s; a field `default`
/// leaves out is the built-in default's (L1, 30m, 8h).
fn escalation(check: &mut Check<'_>, value: Option<Value>) -> EscalationConfig {
    let builtin = EscalationConfig::default();
    let at = [Key("escalation")];
    let Some(outline) = value.and_then(|value| check.strict::<EscalationOutline>(value, &at))
    else {
        return builtin;
    };
    let default = outline
        .default
        .and_then(|value| escalation_policy(check, "default", value, &builtin.default))
        .unwrap_or(builtin.default);
    let listed = [
        (Priority::P1, outline.p1),
        (Priority::P2, outline.p2),
        (Priority::P3, outline.p3),
        (Priority::P4, outline.p4),
        (Priority::P5, outline.p5),
    ];
    let per_priority = listed
        .into_iter()
        .filter_map(|(priority, value)| {
            let policy = escalation_policy(check, priority.as_str(), value?, &default)?;
            Some((priority, policy))
        })
        .collect();
    EscalationConfig {
        per_priority,
        default,
    }
}

/// One policy, `escalation.<key>`, its missing fields taken from `base`.
fn escalation_policy(
    check: &mut Check<'_>,
    key: &str,
    value: Value,
    base: &EscalationPolicy,
) -> Option<EscalationPolicy> {
    let at = [Key("escalation"), Key(key)];
    let outline = check.strict::<PolicyOutline>(value, &at)?;
    let start_tier: Option<Tier> = check.field(&at, "start_tier", outline.start_tier);
    let mut timer = |field: &str, value: Option<Value>| {
        let text: String = check.field(&at, field, value)?;
        let path = [Key("escalation"), Key(key), Key(field)];
        let duration = check.duration(&path, Some(&text), Duration::ZERO)?;
        if duration.is_zero() {
            check.at(&path, format!("{field} must be greater than 0"));
            return None;
        }
        Some(duration)
    };
    let unacknowledged_after = timer("unacknowledged_after", outline.unacknowledged_after);
    let unresolved_after = timer("unresolved_after", outline.unresolved_after);
    Some(EscalationPolicy {
        start_tier: start_tier.unwrap_or(base.start_tier),
        unacknowledged_after: unacknowledged_after.or(base.unacknowledged_after),
        unresolved_after: unresolved_after.or(base.unresolved_after),
    })
}

/// `closure.quiet_period` (≥ 0; 0 closes as soon as the resolution is verified).
fn closure_quiet_period(check: &mut Check<'_>, value: Option<Value>) -> Duration {
    let default = WorkflowConfig::default().closure_quiet_period;
    let at = [Key("closure")];
    let Some(outline) = value.and_then(|value| check.strict::<ClosureOutline>(value, &at)) else {
        return default;
    };
    let text: Option<String> = check.field(&at, "quiet_period", outline.quiet_period);
    check
        .duration(
            &[Key("closure"), Key("quiet_period")],
            text.as_deref(),
            default,
        )
        .unwrap_or(default)
}

fn probe_concurrency(check: &mut Check<'_>, value: Option<Value>) -> usize {
    let path = [Key("probe_concurrency")];
    match value.and_then(|value| check.strict::<u32>(value, &path)) {
        Some(0) => {
            check.at(&path, "probe_concurrency must be at least 1".to_owned());
            DEFAULT_PROBE_CONCURRENCY
        }
        Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        None => DEFAULT_PROBE_CONCURRENCY,
    }
}

/// `probe_duration_histogram`: `aggregate` (the default: one histogram over all probes) or
/// `per_probe`.
fn probe_duration_histogram(check: &mut Check<'_>, value: Option<Value>) -> ProbeDurationHistogram {
    let path = [Key("probe_duration_histogram")];
    match value
        .and_then(|value| check.strict::<String>(value, &path))
        .as_deref()
    {
        None | Some("aggregate") => ProbeDurationHistogram::Aggregate,
        Some("per_probe") => ProbeDurationHistogram::PerProbe,
        Some(other) => {
            check.at(
                &path,
                format!(
                    "probe_duration_histogram must be `aggregate` or `per_probe`, not `{other}`"
                ),
            );
            ProbeDurationHistogram::Aggregate
        }
    }
}

/// `http`: the server's connection limit and timeouts, each optional (defaults in
/// [`HttpConfig::default`]).
fn http(check: &mut Check<'_>, value: Option<Value>) -> HttpConfig {
    let default = HttpConfig::default();
    let at = [Key("http")];
    let Some(outline) = value.and_then(|value| check.strict::<HttpServerOutline>(value, &at))
    else {
        return default;
    };
    let max_connections = match check.field::<u32>(&at, "max_connections", outline.max_connections)
    {
        Some(0) => {
            check.at(
                &[Key("http"), Key("max_connections")],
                "max_connections must be at least 1".to_owned(),
            );
            default.max_connections
        }
        Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        None => default.max_connections,
    };
    let mut timeout = |field: &str, value: Option<Value>, default: Duration| {
        let Some(text) = check.field::<String>(&at, field, value) else {
            return default;
        };
        let path = [Key("http"), Key(field)];
        match check.duration(&path, Some(&text), default) {
            Some(duration) if duration.is_zero() => {
                check.at(&path, format!("{field} must be greater than 0"));
                default
            }
            Some(duration) => duration,
            None => default,
        }
    };
    HttpConfig {
        max_connections,
        header_read_timeout: timeout(
            "header_read_timeout",
            outline.header_read_timeout,
            default.header_read_timeout,
        ),
        idle_timeout: timeout("idle_timeout", outline.idle_timeout, default.idle_timeout),
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9750))
}

fn listen(check: &mut Check<'_>, value: Option<Value>) -> SocketAddr {
    let path = [Key("listen")];
    let Some(text) = value.and_then(|value| check.strict::<String>(value, &path)) else {
        return default_listen();
    };
    text.parse().unwrap_or_else(|_| {
        check.at(
            &path,
            format!("invalid listen address `{text}`; expected IP:PORT, e.g. {DEFAULT_LISTEN}"),
        );
        default_listen()
    })
}

/// A glob from `rule_files`, with its index there (`None`: the default).
pub(super) struct RulePattern {
    pub(super) index: Option<usize>,
    pub(super) glob: String,
}

fn rule_patterns(check: &mut Check<'_>, items: Option<Vec<Value>>) -> Vec<RulePattern> {
    let Some(items) = items else {
        return vec![RulePattern {
            index: None,
            glob: DEFAULT_RULE_FILES.to_owned(),
        }];
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let glob = check.strict::<String>(item, &[Key("rule_files"), Index(index)])?;
            Some(RulePattern {
                index: Some(index),
                glob,
            })
        })
        .collect()
}

/// `rule_files` from a file whose outline failed, if it can be read at all.
fn salvage_rule_patterns(text: &str) -> Vec<RulePattern> {
    let value = serde_yaml::from_str::<Value>(text).unwrap_or(Value::Null);
    match value.get("rule_files").and_then(Value::as_sequence) {
        Some(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|glob| RulePattern {
                index: None,
                glob: glob.to_owned(),
            })
            .collect(),
        None => vec![RulePattern {
            index: None,
            glob: DEFAULT_RULE_FILES.to_owned(),
        }],
    }
}

/// The files the globs match, resolved against `config_dir`, sorted, each once.
pub(super) fn match_rule_files(
    check: &mut Check<'_>,
    config_dir: &Path,
    patterns: &[RulePattern],
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for pattern in patterns {
        let path: Vec<Segment<'_>> = match pattern.index {
            Some(index) => vec![Key("rule_files"), Index(index)],
            None => vec![Key("rule_files")],
        };
        let paths = match glob::glob(&resolve_glob(config_dir, &pattern.glob)) {
            Ok(paths) => paths,
            Err(err) => {
                check.at(
                    &path,
                    format!("invalid glob `{}`: {}", pattern.glob, err.msg),
                );
                continue;
            }
        };
        for entry in paths {
            match entry {
                Ok(file) => files.push(file),
                Err(err) => check.at(&path, format!("cannot read rule files: {err}")),
            }
        }
    }
    files.sort();
    files.dedup();
    let mut seen = HashSet::new();
    files.retain(|file| seen.insert(std::fs::canonicalize(file).unwrap_or_else(|_| file.clone())));
    files
}

/// A relative glob is relative to the config file's directory, whose own name may hold glob
/// metacharacters: those are escaped.
fn resolve_glob(config_dir: &Path, glob: &str) -> String {
    if Path::new(glob).is_absolute() || config_dir.as_os_str().is_empty() {
        return glob.to_owned();
    }
    let dir = glob::Pattern::escape(&config_dir.to_string_lossy());
    Path::new(&dir).join(glob).to_string_lossy().into_owned()
}

fn tokens(check: &mut Check<'_>, items: Vec<Value>, env: Secrets<'_>) -> Vec<TokenConfig> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let mut tokens = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let at = [Key("auth"), Key("tokens"), Index(index)];
        let field = |key| [Key("auth"), Key("tokens"), Index(index), Key(key)];
        let Some(outline) = check.strict::<TokenOutline>(item, &at) else {
            continue;
        };
        let name: Option<String> = check.required(&at, "name", outline.name);
        let var: Option<String> = check.required(&at, "token_env", outline.token_env);
        let role: Option<RawRole> = check.required(&at, "role", outline.role);
        let security = check.field(&at, "security", outline.security);
        if let Some(name) = &name {
            match names.get(name) {
                Some(&first) => {
                    let first =
                        check
                            .doc
                            .place(&[Key("auth"), Key("tokens"), Index(first), Key("name")]);
                    check.at(
                        &field("name"),
                        format!("duplicate token name `{name}`; first defined at {first}"),
                    );
                }
                None => {
                    names.insert(name.clone(), index);
                }
            }
        }
        let subject = subject("token", name.as_deref());
        let what = format!("token_env of {subject}");
        let token = var.and_then(|var| check.secret(&field("token_env"), &var, &what, env));
        if let Some(token) = &token {
            match values.get(token) {
                Some(other) => check.at(
                    &field("token_env"),
                    format!(
                        "{subject} has the same value as token `{other}`; every token must be different"
                    ),
                ),
                None => {
                    values.insert(token.clone(), name.clone().unwrap_or_default());
                }
            }
        }
        if let (Some(name), Some(token), Some(role)) = (name, token, role) {
            tokens.push(TokenConfig {
                name,
                token,
                role: role.into(),
                security: security.unwrap_or(false),
            });
        }
    }
    tokens
}

fn webhooks(
    check: &mut Check<'_>,
    items: Vec<Value>,
    taxonomy: Option<&[Category]>,
    env: Secrets<'_>,
) -> Vec<WebhookConfig> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut webhooks = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let at = [Key("webhooks"), Index(index)];
        let Some(mut outline) = check.strict::<WebhookOutline>(item, &at) else {
            continue;
        };
        let name: Option<String> = check.required(&at, "name", outline.name.take());
        if let Some(name) = &name {
            match names.get(name) {
                Some(&first) => {
                    let first = check
                        .doc
                        .place(&[Key("webhooks"), Index(first), Key("name")]);
                    check.at(
                        &[Key("webhooks"), Index(index), Key("name")],
                        format!("duplicate webhook name `{name}`; first defined at {first}"),
                    );
                }
                None => {
                    names.insert(name.clone(), index);
                }
            }
        }
        if let Some(webhook) = webhook(check, index, name, outline, taxonomy, env) {
            webhooks.push(webhook);
        }
    }
    webhooks
}

fn webhook(
    check: &mut Check<'_>,
    index: usize,
    name: Option<String>,
    outline: WebhookOutline,
    taxonomy: Option<&[Category]>,
    env: Secrets<'_>,
) -> Option<WebhookConfig> {
    let at = [Key("webhooks"), Index(index)];
    let field = |key| [Key("webhooks"), Index(index), Key(key)];
    let before = check.count();
    let url = check
        .required::<String>(&at, "url", outline.url)
        .and_then(|url| check.http_url(&field("url"), &url));
    let subject = subject("webhook", name.as_deref());
    let secrets = check
        .required::<String>(&at, "secret_env", outline.secret_env)
        .and_then(|var| webhook_keys(check, &field("secret_env"), &var, &subject, env));
    let events: Option<Vec<String>> = check.field(&at, "events", outline.events);
    if let Some(events) = &events {
        check_events(check, index, events);
    }
    let timeout = check.field::<String>(&at, "timeout", outline.timeout);
    let timeout = check.duration(
        &field("timeout"),
        timeout.as_deref(),
        DEFAULT_WEBHOOK_TIMEOUT,
    );
    if timeout == Some(Duration::ZERO) {
        check.at(
            &field("timeout"),
            "timeout must be greater than 0".to_owned(),
        );
    }
    let security = check.field(&at, "security", outline.security);
    let min_priority = check.field(&at, "min_priority", outline.min_priority);
    let kinds: Option<Vec<Kind>> = check.field(&at, "kinds", outline.kinds);
    let categories: Option<Vec<String>> = check.field(&at, "categories", outline.categories);
    let services: Option<Vec<String>> = check.field(&at, "services", outline.services);
    for (key, empty) in [
        ("kinds", kinds.as_ref().is_some_and(Vec::is_empty)),
        ("categories", categories.as_ref().is_some_and(Vec::is_empty)),
        ("services", services.as_ref().is_some_and(Vec::is_empty)),
    ] {
        if empty {
            check.at(
                &field(key),
                format!("{key} must not be empty; leave it out to receive every incident"),
            );
        }
    }
    if let (Some(categories), Some(taxonomy)) = (&categories, taxonomy) {
        for (position, category) in categories.iter().enumerate() {
            if !taxonomy.iter().any(|known| &known.name == category) {
                check.at(
                    &[
                        Key("webhooks"),
                        Index(index),
                        Key("categories"),
                        Index(position),
                    ],
                    format!(
                        "unknown category `{category}`; expected one of {}",
                        taxonomy
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
    let positive = |check: &mut Check<'_>, key: &'static str, value, default| {
        let text = check.field::<String>(&at, key, value);
        let duration = check.duration(&field(key), text.as_deref(), default);
        if duration == Some(Duration::ZERO) {
            check.at(&field(key), format!("{key} must be greater than 0"));
        }
        duration
    };
    let max_age = positive(check, "max_age", outline.max_age, DEFAULT_WEBHOOK_MAX_AGE);
    let retention = positive(
        check,
        "retention",
        outline.retention,
        DEFAULT_WEBHOOK_RETENTION,
    );
    let retry_schedule = match outline.retry_schedule {
        None => Some(DEFAULT_RETRY_SCHEDULE.to_vec()),
        Some(value) => {
            let texts: Option<Vec<String>> = check.strict(value, &field("retry_schedule"));
            texts.and_then(|texts| {
                if texts.is_empty() {
                    check.at(
                        &field("retry_schedule"),
                        "retry_schedule must not be empty; leave it out for the default".to_owned(),
                    );
                    return None;
                }
                let mut waits = Vec::new();
                for (position, text) in texts.iter().enumerate() {
                    let path = [
                        Key("webhooks"),
                        Index(index),
                        Key("retry_schedule"),
                        Index(position),
                    ];
                    match check.duration(&path, Some(text), Duration::ZERO) {
                        Some(Duration::ZERO) => check.at(
                            &path,
                            "a wait in retry_schedule must be greater than 0".to_owned(),
                        ),
                        Some(wait) => waits.push(wait),
                        None => {}
                    }
                }
                (waits.len() == texts.len()).then_some(waits)
            })
        }
    };
    if check.count() > before {
        return None;
    }
    Some(WebhookConfig {
        name: name?,
        url: url?,
        secrets: secrets?,
        events,
        timeout: timeout?,
        security: security.unwrap_or(false),
        min_priority,
        kinds,
        categories,
        services,
        max_age: max_age?,
        retry_schedule: retry_schedule?,
        retention: retention?,
    })
}

/// The signing keys from the variable `var` that a webhook's `secret_env` (at `path`) names.
fn webhook_keys(
    check: &mut Check<'_>,
    path: &[Segment<'_>],
    var: &str,
    subject: &str,
    env: Secrets<'_>,
) -> Option<Vec<Vec<u8>>> {
    let what = format!("secret_env of {subject}");
    let value = check.secret(path, var, &what, env)?;
    match decode_secrets(&value) {
        Ok(keys) => Some(keys),
        Err(problems) => {
            for problem in problems {
                check.at(
                    path,
                    format!("environment variable {var} ({what}): {problem}"),
                );
            }
            None
        }
    }
}

fn check_events(check: &mut Check<'_>, index: usize, events: &[String]) {
    if events.is_empty() {
        check.at(
            &[Key("webhooks"), Index(index), Key("events")],
            "events must not be empty; leave it out to receive every event type".to_owned(),
        );
    }
    for (position, event) in events.iter().enumerate() {
        if !EVENT_TYPES.contains(&event.as_str()) {
            check.at(
                &[
                    Key("webhooks"),
                    Index(index),
                    Key("events"),
                    Index(position),
                ],
                format!(
                    "unknown event type `{event}`; expected one of {}",
                    EVENT_TYPES.join(", ")
                ),
            );
        }
    }
}

/// A `secret_env` value: one or more whitespace-separated `whsec_<base64>` secrets (several
/// while a secret rotates). The problems never quote the value.
fn decode_secrets(value: &str) -> Result<Vec<Vec<u8>>, Vec<String>> {
    // Standard alphabet; padding optional, as secrets are often copied without it.
    let base64 = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let secrets: Vec<&str> = value.split_whitespace().collect();
    let name = |n: usize| match secrets.len() {
        1 => "the secret".to_owned(),
        count => format!("secret {} of {count}", n + 1),
    };
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for (n, secret) in secrets.iter().enumerate() {
        let Some(encoded) = secret.strip_prefix("whsec_") else {
            problems.push(format!("{} does not start with `whsec_`", name(n)));
            continue;
        };
        match base64.decode(encoded) {
            Ok(key) if WEBHOOK_KEY_BYTES.contains(&key.len()) => keys.push(key),
            Ok(key) => problems.push(format!(
                "{} is {} bytes long; a key is {} to {} bytes",
                name(n),
                key.len(),
                WEBHOOK_KEY_BYTES.start(),
                WEBHOOK_KEY_BYTES.end()
            )),
            Err(_) => problems.push(format!("{} is not base64 after `whsec_`", name(n))),
        }
    }
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems)
    }
}

// ---------------------------------------------------------------------------------------
// Rule files

/// One rule file, checked on its own; names are checked across files afterwards.
struct RuleFile {
    doc: Document,
    probes: Vec<ProbeEntry>,
    rules: Vec<RuleEntry>,
}

/// A probe item: its name as far as it could be read (even from an invalid item, so that a
/// rule naming it is not reported as well), and the validated probe if it is valid.
struct ProbeEntry {
    index: usize,
    name: Option<String>,
    config: Option<ProbeConfig>,
}

struct RuleEntry {
    index: usize,
    name: Option<String>,
    probe: Option<String>,
    /// The category its incidents get, read even from an invalid rule; see [`rule_category`].
    category: Option<RuleCategory>,
    config: Option<RuleConfig>,
}

struct RuleCategory {
    name: String,
    /// False for the default, when `incident.category` is left out.
    written: bool,
}

fn rule_file(doc: Document, icmp: &mut IcmpGate<'_>, out: &mut Vec<Diagnostic>) -> RuleFile {
    let before = out.len();
    if let Some(split) = doc.source.split_lists(&["probes", "rules"]) {
        if let Some((probes, rules)) = split_rule_file(&doc, &split, icmp, out) {
            return RuleFile { doc, probes, rules };
        }
        // Some item's lines do not hold exactly one item: the file is read whole.
        out.truncate(before);
        doc.source.forget_split();
    }
    let mut check = Check { doc: &doc, out };
    let outline = check.outline::<RuleFileOutline>().unwrap_or_default();
    let probes = outline
        .probes
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, item)| probe_entry(&mut check, icmp, index, item))
        .collect();
    let rules = outline
        .rules
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, item)| rule_entry(&mut check, index, item))
        .collect();
    RuleFile { doc, probes, rules }
}

/// [`rule_file`] with the block lists cut into their items ([`Source::split_lists`]): each
/// item is parsed from its own lines and checked before the next is parsed, so that a large
/// file is never in memory as YAML nodes all at once. The same items, positions and problems
/// as reading the file whole; `None` as soon as an item's lines do not parse as one item.
fn split_rule_file(
    doc: &Document,
    split: &Split,
    icmp: &mut IcmpGate<'_>,
    out: &mut Vec<Diagnostic>,
) -> Option<(Vec<ProbeEntry>, Vec<RuleEntry>)> {
    let mut check = Check { doc, out };
    // The cut lists are null in the skeleton; a list it left (a flow list) is in its outline.
    let Some(outline) = check.outline_of::<RuleFileOutline>(&split.skeleton) else {
        return Some((Vec::new(), Vec::new()));
    };
    let mut probes = Vec::new();
    for (index, item) in outline.probes.unwrap_or_default().into_iter().enumerate() {
        probes.push(probe_entry(&mut check, icmp, index, item));
    }
    let mut rules = Vec::new();
    for (index, item) in outline.rules.unwrap_or_default().into_iter().enumerate() {
        rules.push(rule_entry(&mut check, index, item));
    }
    for (key, items) in &split.lists {
        match *key {
            "probes" => probes.reserve_exact(items.len()),
            _ => rules.reserve_exact(items.len()),
        }
        for (index, lines) in items.iter().enumerate() {
            let item = doc.source.split_item(lines)?;
            match *key {
                "probes" => probes.push(probe_entry(&mut check, icmp, index, item)),
                _ => rules.push(rule_entry(&mut check, index, item)),
            }
        }
    }
    Some((probes, rules))
}

/// A loose item's mapping, looking through a YAML tag (`!tag {..}`), which serde ignores.
fn mapping(item: &Value) -> Option<&serde_yaml::Mapping> {
    match item {
        Value::Tagged(tagged) => tagged.value.as_mapping(),
        other => other.as_mapping(),
    }
}

/// A string field of a loose item, for names.
fn string_field(item: &Value, key: &str) -> Option<String> {
    mapping(item)?.get(key)?.as_str().map(str::to_owned)
}

fn probe_entry(
    check: &mut Check<'_>,
    icmp: &mut IcmpGate<'_>,
    index: usize,
    item: Value,
) -> ProbeEntry {
    let hint = string_field(&item, "name");
    // The probe types present, in the file's order (`tcp: ~` counts as present).
    let types: Vec<String> = mapping(&item)
        .into_iter()
        .flat_map(|mapping| mapping.keys())
        .filter_map(Value::as_str)
        .filter(|key| PROBE_TYPES.contains(key))
        .map(str::to_owned)
        .collect();
    let at = [Key("probes"), Index(index)];
    let Some(mut outline) = check.strict::<ProbeOutline>(item, &at) else {
        return ProbeEntry {
            index,
            name: hint,
            config: None,
        };
    };
    let name: Option<String> = check.required(&at, "name", outline.name.take());
    ProbeEntry {
        index,
        name: name.clone().or(hint),
        config: probe(check, icmp, index, name, outline, &types),
    }
}

fn probe(
    check: &mut Check<'_>,
    icmp: &mut IcmpGate<'_>,
    index: usize,
    name: Option<String>,
    mut outline: ProbeOutline,
    types: &[String],
) -> Option<ProbeConfig> {
    let at = [Key("probes"), Index(index)];
    let field = |key| [Key("probes"), Index(index), Key(key)];
    let before = check.count();
    if let Some(name) = name.as_deref().filter(|name| !is_probe_name(name)) {
        check.at(
            &field("name"),
            format!("invalid probe name `{name}`; use letters, digits, `_`, `.` and `-`"),
        );
    }
    let interval = check.field::<String>(&at, "interval", outline.interval.take());
    let interval = check.duration(&field("interval"), interval.as_deref(), DEFAULT_INTERVAL);
    if let Some(interval) = interval.filter(|interval| *interval < MIN_INTERVAL) {
        check.at(
            &field("interval"),
            format!(
                "interval must be at least {}, got {}",
                format_duration(MIN_INTERVAL),
                format_duration(interval)
            ),
        );
    }
    let confirm = check.field::<String>(&at, "confirm_interval", outline.confirm_interval.take());
    let confirm_interval = confirm_interval(check, index, confirm.as_deref(), interval);
    let timeout = check.field::<String>(&at, "timeout", outline.timeout.take());
    let timeout = probe_timeout(check, index, timeout.as_deref(), interval);
    let labels: BTreeMap<String, String> = check
        .field(&at, "labels", outline.labels.take())
        .unwrap_or_default();
    check_labels(check, index, &labels);
    let target = probe_target(check, icmp, index, name.as_deref(), outline, types);
    if check.count() > before {
        return None;
    }
    Some(ProbeConfig {
        name: name?,
        interval: interval?,
        confirm_interval: confirm_interval?,
        timeout: timeout?,
        labels,
        target: target?,
    })
}

/// `confirm_interval`: how soon the probe runs again while one of its rules confirms a change.
/// More than 0, at least [`MIN_INTERVAL`] as any probe interval, and at most the interval.
/// Left out, it is a quarter of the interval, between [`MIN_INTERVAL`] and 1s (and never
/// longer than the interval): a 1s probe confirms after 250ms, a 10s or 1m one after 1s.
fn confirm_interval(
    check: &mut Check<'_>,
    index: usize,
    text: Option<&str>,
    interval: Option<Duration>,
) -> Option<Duration> {
    let path = [Key("probes"), Index(index), Key("confirm_interval")];
    let default = interval.map_or(DEFAULT_CONFIRM_INTERVAL, |i| {
        (i / 4).clamp(MIN_INTERVAL, DEFAULT_CONFIRM_INTERVAL).min(i)
    });
    let confirm = check.duration(&path, text, default)?;
    if text.is_none() {
        return Some(confirm);
    }
    if confirm.is_zero() {
        check.at(&path, "confirm_interval must be greater than 0".to_owned());
    } else if confirm < MIN_INTERVAL {
        check.at(
            &path,
            format!(
                "confirm_interval must be at least {}, got {}",
                format_duration(MIN_INTERVAL),
                format_duration(confirm)
            ),
        );
    } else if let Some(interval) = interval.filter(|interval| confirm > *interval) {
        check.at(
            &path,
            format!(
                "confirm_interval {} must not be longer than the interval {}",
                format_duration(confirm),
                format_duration(interval)
            ),
        );
    }
    Some(confirm)
}

/// `timeout`: more than 0 and at most the interval. Left out, it is 10s or the interval if
/// shorter (as Prometheus does with `scrape_timeout`).
fn probe_timeout(
    check: &mut Check<'_>,
    index: usize,
    text: Option<&str>,
    interval: Option<Duration>,
) -> Option<Duration> {
    let path = [Key("probes"), Index(index), Key("timeout")];
    let default = interval.map_or(DEFAULT_PROBE_TIMEOUT, |i| i.min(DEFAULT_PROBE_TIMEOUT));
    let timeout = check.duration(&path, text, default)?;
    if timeout.is_zero() {
        check.at(&path, "timeout must be greater than 0".to_owned());
    } else if let Some(interval) = interval.filter(|interval| timeout > *interval) {
        check.at(
            &path,
            format!(
                "timeout {} must not be longer than the interval {}",
                format_duration(timeout),
                format_duration(interval)
            ),
        );
    }
    Some(timeout)
}

fn check_labels(check: &mut Check<'_>, index: usize, labels: &BTreeMap<String, String>) {
    for name in labels.keys().filter(|name| !is_label_name(name)) {
        check.at_key(
            &[Key("probes"), Index(index), Key("labels"), Key(name)],
            format!(
                "invalid label name `{name}`; label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with `__`"
            ),
        );
    }
}

fn probe_target(
    check: &mut Check<'_>,
    icmp: &mut IcmpGate<'_>,
    index: usize,
    name: Option<&str>,
    outline: ProbeOutline,
    types: &[String],
) -> Option<ProbeTarget> {
    let at = [Key("probes"), Index(index)];
    let subject = subject("probe", name);
    let kind = match types {
        [] => {
            let expected = PROBE_TYPES.join(", ");
            check.at(&at, format!("{subject} needs one of {expected}"));
            return None;
        }
        [_, second, ..] => {
            let listed = types
                .iter()
                .map(|kind| format!("`{kind}`"))
                .collect::<Vec<_>>()
                .join(", ");
            check.at_key(
                &[Key("probes"), Index(index), Key(second)],
                format!("{subject} has more than one type ({listed}); choose one"),
            );
            return None;
        }
        [kind] => kind.as_str(),
    };
    let path = [Key("probes"), Index(index), Key(kind)];
    if kind == "icmp"
        && let Err(denied) = icmp.allowed()
    {
        check.at_key(
            &path,
            format!(
                "icmp probes need unprivileged ICMP sockets: set sysctl net.ipv4.ping_group_range to include group {gid} (e.g. `sysctl -w net.ipv4.ping_group_range='0 2147483647'`)",
                gid = denied.gid
            ),
        );
    }
    let Some(settings) = outline.settings(kind) else {
        let needs = match kind {
            "http" => "an http probe needs at least a `url`",
            "tcp" => "a tcp probe needs at least an `address`",
            "tls" => "a tls probe needs at least an `address`",
            "dns" => "a dns probe needs at least a `name` and a `server`",
            "icmp" => "an icmp probe needs at least a `host`",
            _ => "a prometheus probe needs at least a `url` and a `query`",
        };
        check.at(&path, needs.to_owned());
        return None;
    };
    let target = Target {
        index,
        kind,
        path: &path,
    };
    match kind {
        "http" => http_probe(check, &target, settings).map(ProbeTarget::Http),
        "tcp" => tcp_probe(check, &target, settings).map(ProbeTarget::Tcp),
        "tls" => tls_probe(check, &target, settings).map(ProbeTarget::Tls),
        "dns" => dns_probe(check, &target, settings).map(ProbeTarget::Dns),
        "icmp" => icmp_probe(check, &target, settings).map(ProbeTarget::Icmp),
        _ => prometheus_probe(check, &target, settings).map(ProbeTarget::Prometheus),
    }
}

/// Where a probe type's settings are: `probes[index].<kind>`.
struct Target<'p> {
    index: usize,
    kind: &'p str,
    path: &'p [Segment<'p>],
}

impl<'p> Target<'p> {
    /// The path of one of the settings.
    fn field(&self, key: &'p str) -> [Segment<'p>; 4] {
        [Key("probes"), Index(self.index), Key(self.kind), Key(key)]
    }
}

fn http_probe(check: &mut Check<'_>, target: &Target<'_>, value: Value) -> Option<HttpProbe> {
    let at = target.path;
    let outline = check.strict::<HttpOutline>(value, at)?;
    let before = check.count();
    let url = check
        .required::<String>(at, "url", outline.url)
        .and_then(|url| check.http_url(&target.field("url"), &url));
    let method = match check.field::<String>(at, "method", outline.method) {
        None => Some(reqwest::Method::GET),
        Some(text) => reqwest::Method::from_bytes(text.as_bytes())
            .map_err(|_| {
                check.at(
                    &target.field("method"),
                    format!("invalid HTTP method `{text}`"),
                )
            })
            .ok(),
    };
    let headers: BTreeMap<String, String> = check
        .field(at, "headers", outline.headers)
        .unwrap_or_default();
    for (name, value) in &headers {
        let path = [&target.field("headers")[..], &[Key(name)]].concat();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            check.at_key(&path, format!("invalid header name `{name}`"));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            check.at(&path, format!("invalid value for header `{name}`"));
        }
    }
    let body: Option<String> = check.field(at, "body", outline.body);
    let tls_verify = check.field(at, "tls_verify", outline.tls_verify);
    let follow_redirects = check.field(at, "follow_redirects", outline.follow_redirects);
    if check.count() > before {
        return None;
    }
    Some(HttpProbe {
        url: url?,
        method: method?,
        headers,
        body,
        tls_verify: tls_verify.unwrap_or(true),
        follow_redirects: follow_redirects.unwrap_or(false),
    })
}

/// `host:port`, as both the tcp and the tls probe take it.
fn address(check: &mut Check<'_>, target: &Target<'_>, value: Option<Value>) -> Option<String> {
    let text: String = check.required(target.path, "address", value)?;
    if split_host_port(&text).is_none() {
        check.at(
            &target.field("address"),
            format!(
                "invalid address `{text}`; expected HOST:PORT, e.g. db.example:5432 or [::1]:5432"
            ),
        );
        return None;
    }
    Some(text)
}

fn tcp_probe(check: &mut Check<'_>, target: &Target<'_>, value: Value) -> Option<TcpProbe> {
    let at = target.path;
    let outline = check.strict::<TcpOutline>(value, at)?;
    let before = check.count();
    let address = address(check, target, outline.address);
    let send: Option<String> = check.field(at, "send", outline.send);
    let expect: Option<String> = check.field(at, "expect", outline.expect);
    match expect.as_deref().map(str::len) {
        Some(0) => check.at(
            &target.field("expect"),
            "expect must not be empty; leave it out to only connect".to_owned(),
        ),
        // The probe reads at most BODY_LIMIT bytes: a longer answer could never be found.
        Some(len) if len > BODY_LIMIT => check.at(
            &target.field("expect"),
            format!("expect must be at most {BODY_LIMIT} bytes, got {len}"),
        ),
        _ => {}
    }
    if check.count() > before {
        return None;
    }
    Some(TcpProbe {
        address: address?,
        send,
        expect,
    })
}

fn tls_probe(check: &mut Check<'_>, target: &Target<'_>, value: Value) -> Option<TlsProbe> {
    let at = target.path;
    let outline = check.strict::<TlsOutline>(value, at)?;
    let before = check.count();
    let address = address(check, target, outline.address);
    let server_name: Option<String> = check.field(at, "server_name", outline.server_name);
    let verify = check.field(at, "verify", outline.verify);
    match (&server_name, &address) {
        (Some(name), _) => {
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                check.at(
                    &target.field("server_name"),
                    format!("invalid server name `{name}`; expected a DNS name or an IP address"),
                );
            }
        }
        (None, Some(address)) => {
            let host = split_host_port(address).map_or("", |(host, _)| host);
            if rustls::pki_types::ServerName::try_from(host).is_err() {
                check.at(
                    &target.field("address"),
                    format!("the host `{host}` is not a valid TLS server name; set `server_name`"),
                );
            }
        }
        (None, None) => {}
    }
    if check.count() > before {
        return None;
    }
    Some(TlsProbe {
        address: address?,
        server_name,
        verify: verify.unwrap_or(true),
    })
}

fn dns_probe(check: &mut Check<'_>, target: &Target<'_>, value: Value) -> Option<DnsProbe> {
    let at = target.path;
    let outline = check.strict::<DnsOutline>(value, at)?;
    let before = check.count();
    let name: Option<String> = check.required(at, "name", outline.name);
    if let Some(name) = &name
        && let Err(err) = dns_name(name)
    {
        check.at(
            &target.field("name"),
            format!("invalid DNS name `{name}`: {err}"),
        );
    }
    let server = check
        .required::<String>(at, "server", outline.server)
        .and_then(|text| {
            let server = dns_server(&text);
            if server.is_none() {
                check.at(
                    &target.field("server"),
                    format!("invalid DNS server `{text}`; expected IP or IP:PORT, e.g. 1.1.1.1 or 127.0.0.1:5353"),
                );
            }
            server
        });
    let record = check
        .field::<String>(at, "record", outline.record)
        .map_or_else(|| DEFAULT_DNS_RECORD.to_owned(), |r| r.to_ascii_uppercase());
    if !DNS_RECORD_TYPES.contains(&record.as_str()) {
        check.at(
            &target.field("record"),
            format!(
                "unknown DNS record type `{record}`; expected one of {}",
                DNS_RECORD_TYPES.join(", ")
            ),
        );
    }
    if check.count() > before {
        return None;
    }
    Some(DnsProbe {
        name: name?,
        server: server?,
        record,
    })
}

/// A name a DNS query can carry; the reason when it cannot.
fn dns_name(name: &str) -> Result<(), String> {
    if name == "." {
        return Ok(()); // the root, e.g. `.` NS: a resolver check
    }
    let labels = name.strip_suffix('.').unwrap_or(name);
    if labels.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if name.contains(char::is_whitespace) {
        return Err("it contains whitespace".to_owned());
    }
    if labels.split('.').any(str::is_empty) {
        return Err("it has an empty label".to_owned());
    }
    if let Some(long) = labels.split('.').find(|label| label.len() > 63) {
        return Err(format!("label `{long}` is longer than 63 bytes"));
    }
    if labels.len() > 253 {
        return Err("it is longer than 253 bytes".to_owned());
    }
    // Whatever else the encoder refuses (hickory's words).
    hickory_proto::rr::Name::from_ascii(name)
        .map(drop)
        .map_err(|err| err.to_string().trim_end_matches([':', ' ']).to_owned())
}

/// `ip` (port 53) or `ip:port` (`[v6]:port`).
fn dns_server(text: &str) -> Option<SocketAddr> {
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_DNS_PORT))
        .or_else(|_| text.parse::<SocketAddr>())
        .ok()
}

fn icmp_probe(check: &mut Check<'_>, target: &Target<'_>, value: Value) -> Option<IcmpProbe> {
    let at = target.path;
    let outline = check.strict::<IcmpOutline>(value, at)?;
    let host: String = check.required(at, "host", outline.host)?;
    let is_name = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if host.parse::<std::net::IpAddr>().is_err() && !is_name {
        check.at(
            &target.field("host"),
            format!("invalid host `{host}`; expected a host name or an IP address"),
        );
        return None;
    }
    Some(IcmpProbe { host })
}

fn prometheus_probe(
    check: &mut Check<'_>,
    target: &Target<'_>,
    value: Value,
) -> Option<PrometheusProbe> {
    let at = target.path;
    let outline = check.strict::<PrometheusOutline>(value, at)?;
    let before = check.count();
    let url = check
        .required::<String>(at, "url", outline.url)
        .and_then(|url| check.http_url(&target.field("url"), &url));
    let query: Option<String> = check.required(at, "query", outline.query);
    if query.as_deref().is_some_and(|q| q.trim().is_empty()) {
        check.at(&target.field("query"), "query must not be empty".to_owned());
    }
    if check.count() > before {
        return None;
    }
    Some(PrometheusProbe {
        url: url?,
        query: query?,
    })
}

fn rule_entry(check: &mut Check<'_>, index: usize, item: Value) -> RuleEntry {
    let name = string_field(&item, "name");
    let probe = string_field(&item, "probe");
    let category = rule_category(&item);
    let at = [Key("rules"), Index(index)];
    let Some(mut outline) = check.strict::<RuleOutline>(item, &at) else {
        return RuleEntry {
            index,
            name,
            probe,
            category,
            config: None,
        };
    };
    let name = check.required(&at, "name", outline.name.take()).or(name);
    let probe = check.required(&at, "probe", outline.probe.take()).or(probe);
    RuleEntry {
        index,
        config: rule(check, index, name.clone(), probe.clone(), outline),
        name,
        probe,
        category,
    }
}

/// A rule item's `incident.category`, or the default when it is left out. `None` when it is
/// not a valid category name (a problem reported by [`incident`]) or cannot be read.
fn rule_category(item: &Value) -> Option<RuleCategory> {
    let default = || RuleCategory {
        name: DEFAULT_CATEGORY.to_owned(),
        written: false,
    };
    let Some(incident) = mapping(item)?.get("incident") else {
        return Some(default());
    };
    let Some(category) = mapping(incident)?.get("category") else {
        return Some(default());
    };
    let name = category.as_str().filter(|name| is_category(name))?;
    Some(RuleCategory {
        name: name.to_owned(),
        written: true,
    })
}

fn rule(
    check: &mut Check<'_>,
    index: usize,
    name: Option<String>,
    probe: Option<String>,
    outline: RuleOutline,
) -> Option<RuleConfig> {
    let at = [Key("rules"), Index(index)];
    let field = |key| [Key("rules"), Index(index), Key(key)];
    let before = check.count();
    let when = check
        .required::<String>(&at, "when", outline.when)
        .and_then(|when| condition(check, index, &when));
    let after = check
        .field(&at, "after", outline.after)
        .unwrap_or(DEFAULT_AFTER);
    if after == 0 {
        check.at(&field("after"), "after must be at least 1".to_owned());
    }
    let recover_after = check
        .field(&at, "recover_after", outline.recover_after)
        .unwrap_or(DEFAULT_RECOVER_AFTER);
    if recover_after == 0 {
        check.at(
            &field("recover_after"),
            "recover_after must be at least 1".to_owned(),
        );
    }
    let for_text: Option<String> = check.field(&at, "for", outline.for_);
    let for_ = match for_text {
        Some(text) => check.duration(&field("for"), Some(&text), Duration::ZERO),
        None => Some(Duration::ZERO),
    };
    let auto_resolve = check
        .field(&at, "auto_resolve", outline.auto_resolve)
        .unwrap_or(true);
    let depends_on: Vec<String> = check
        .field(&at, "depends_on", outline.depends_on)
        .unwrap_or_default();
    if depends_on
        .iter()
        .any(|parent| Some(parent) == name.as_ref())
    {
        check.at(
            &field("depends_on"),
            "a rule cannot depend on itself".to_owned(),
        );
    }
    let flapping: Option<RawFlapping> = check.field(&at, "flapping", outline.flapping);
    let (flapping_changes, flapping_window) = flapping
        .map(|f| (f.changes.unwrap_or(4), f.window.unwrap_or(20)))
        .unwrap_or((4, 20));
    if !(2..=MAX_FLAPPING_WINDOW).contains(&flapping_window) {
        check.at(
            &[Key("rules"), Index(index), Key("flapping"), Key("window")],
            format!("flapping window must be between 2 and {MAX_FLAPPING_WINDOW} results"),
        );
    }
    let windows: Vec<RawMaintenance> = check
        .field(&at, "maintenance", outline.maintenance)
        .unwrap_or_default();
    let maintenance: Vec<MaintenanceWindow> = windows
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let path = [Key("rules"), Index(index), Key("maintenance"), Index(i)];
            maintenance_window(check, &path, raw)
        })
        .collect();
    let incident = incident(check, index, outline.incident);
    if check.count() > before {
        return None;
    }
    Some(RuleConfig {
        name: name?,
        probe: probe?,
        when: when?,
        after,
        recover_after,
        for_: for_.filter(|d| !d.is_zero()),
        auto_resolve,
        depends_on,
        flapping_changes,
        flapping_window,
        maintenance,
        incident: incident?,
    })
}

/// One `maintenance` item: `{start: "02:00", duration: 2h, weekdays: [sat, sun],
/// utc_offset: "+07:00"}`.
fn maintenance_window(
    check: &mut Check<'_>,
    path: &[Segment<'_>],
    raw: RawMaintenance,
) -> Option<MaintenanceWindow> {
    let key = |k| [path, &[Key(k)]].concat();
    let start = chrono::NaiveTime::parse_from_str(&raw.start, "%H:%M")
        .map_err(|_| {
            check.at(
                &key("start"),
                format!("invalid start `{}`; expected HH:MM, e.g. 02:00", raw.start),
            )
        })
        .ok();
    let duration = check.duration(&key("duration"), Some(&raw.duration), Duration::ZERO);
    let mut weekdays = Vec::new();
    for (i, day) in raw.weekdays.iter().enumerate() {
        match day.parse::<chrono::Weekday>() {
            Ok(weekday) => weekdays.push(weekday),
            Err(_) => check.at(
                &[path, &[Key("weekdays"), Index(i)]].concat(),
                format!("invalid weekday `{day}`; expected mon, tue, wed, thu, fri, sat or sun"),
            ),
        }
    }
    let offset = match raw.utc_offset.as_deref() {
        None | Some("Z" | "UTC") => Some(0),
        Some(text) => chrono::FixedOffset::from_str(text)
            .map(|offset| offset.local_minus_utc())
            .map_err(|_| {
                check.at(
                    &key("utc_offset"),
                    format!("invalid utc_offset `{text}`; expected e.g. +07:00 or -05:00"),
                )
            })
            .ok(),
    };
    Some(MaintenanceWindow {
        start: start?,
        duration: duration.filter(|d| !d.is_zero())?,
        weekdays,
        utc_offset_seconds: offset?,
    })
}

/// `when`; a problem is placed at its character inside the scalar.
fn condition(check: &mut Check<'_>, index: usize, text: &str) -> Option<Condition> {
    match Condition::parse(text) {
        Ok(condition) => Some(condition),
        Err(err) => {
            let start = check.doc.node(&[Key("rules"), Index(index), Key("when")]);
            let position = check.doc.source.position_in_scalar(start, text, err.offset);
            check.out.push(check.doc.diagnostic(position, err.message));
            None
        }
    }
}

/// `incident`, all of it optional.
fn incident(check: &mut Check<'_>, index: usize, value: Option<Value>) -> Option<IncidentTemplate> {
    let at = [Key("rules"), Index(index), Key("incident")];
    let outline = match value {
        Some(value) => check.strict::<IncidentOutline>(value, &at)?,
        None => IncidentOutline {
            title: None,
            category: None,
            impact: None,
            urgency: None,
        },
    };
    let title = check.field(&at, "title", outline.title);
    let category = check
        .field::<String>(&at, "category", outline.category)
        .unwrap_or_else(|| DEFAULT_CATEGORY.to_owned());
    if !is_category(&category) {
        check.at(
            &[Key("rules"), Index(index), Key("incident"), Key("category")],
            format!("invalid category `{category}`; categories match [a-z][a-z0-9_]*"),
        );
    }
    Some(IncidentTemplate {
        title,
        category,
        impact: check
            .field(&at, "impact", outline.impact)
            .unwrap_or(Level::Medium),
        urgency: check
            .field(&at, "urgency", outline.urgency)
            .unwrap_or(Level::Medium),
    })
}

/// Across all rule files: probe names and rule names unique, every rule's probe defined.
fn check_names(files: &[RuleFile], out: &mut Vec<Diagnostic>) {
    let probes = first_definitions(
        files,
        "probe",
        |file| {
            file.probes
                .iter()
                .map(|p| (p.index, p.name.as_deref()))
                .collect()
        },
        Key("probes"),
        out,
    );
    first_definitions(
        files,
        "rule",
        |file| {
            file.rules
                .iter()
                .map(|r| (r.index, r.name.as_deref()))
                .collect()
        },
        Key("rules"),
        out,
    );
    let mut known: Vec<&str> = probes.keys().copied().collect();
    known.sort_unstable();
    for file in files {
        for rule in &file.rules {
            let Some(probe) = &rule.probe else {
                continue;
            };
            if probes.contains_key(probe.as_str()) {
                continue;
            }
            let hint = closest(probe, &known)
                .map(|close| format!("; did you mean `{close}`?"))
                .unwrap_or_default();
            let mut check = Check {
                doc: &file.doc,
                out,
            };
            check.at(
                &[Key("rules"), Index(rule.index), Key("probe")],
                format!(
                    "{} names unknown probe `{probe}`{hint}",
                    subject("rule", rule.name.as_deref())
                ),
            );
        }
    }
}

/// Every `depends_on` names a rule defined in some file.
fn check_dependencies(files: &[RuleFile], out: &mut Vec<Diagnostic>) {
    let rules: HashSet<&str> = files
        .iter()
        .flat_map(|file| file.rules.iter().filter_map(|r| r.name.as_deref()))
        .collect();
    let mut known: Vec<&str> = rules.iter().copied().collect();
    known.sort_unstable();
    for file in files {
        for rule in &file.rules {
            let Some(config) = &rule.config else { continue };
            for (i, parent) in config.depends_on.iter().enumerate() {
                if rules.contains(parent.as_str()) {
                    continue;
                }
                let hint = closest(parent, &known)
                    .map(|close| format!("; did you mean `{close}`?"))
                    .unwrap_or_default();
                let mut check = Check {
                    doc: &file.doc,
                    out,
                };
                check.at(
                    &[Key("rules"), Index(rule.index), Key("depends_on"), Index(i)],
                    format!(
                        "rule `{}` depends on unknown rule `{parent}`{hint}",
                        config.name
                    ),
                );
            }
        }
    }
}

/// Every rule's category is one of `categories`; the problem is placed at the rule's
/// `incident.category` (at its `incident`, or the rule, when that takes the default).
fn check_categories(files: &[RuleFile], categories: &[Category], out: &mut Vec<Diagnostic>) {
    let valid = categories
        .iter()
        .map(|category| category.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    for file in files {
        for rule in &file.rules {
            let Some(category) = &rule.category else {
                continue;
            };
            if categories.iter().any(|c| c.name == category.name) {
                continue;
            }
            let name = &category.name;
            let message = if category.written {
                format!("unknown category `{name}`; valid: {valid}")
            } else {
                format!(
                    "unknown category `{name}` (the default when `incident.category` is left out); valid: {valid}"
                )
            };
            let mut check = Check {
                doc: &file.doc,
                out,
            };
            check.at(
                &[
                    Key("rules"),
                    Index(rule.index),
                    Key("incident"),
                    Key("category"),
                ],
                message,
            );
        }
    }
}

/// Where each name is first defined (file index, item index); later ones are duplicates.
fn first_definitions<'f>(
    files: &'f [RuleFile],
    kind: &str,
    names: impl Fn(&'f RuleFile) -> Vec<(usize, Option<&'f str>)>,
    list: Segment<'static>,
    out: &mut Vec<Diagnostic>,
) -> HashMap<&'f str, (usize, usize)> {
    let mut first: HashMap<&str, (usize, usize)> = HashMap::new();
    for (file_index, file) in files.iter().enumerate() {
        for (index, name) in names(file) {
            let Some(name) = name else { continue };
            let Some(&(first_file, first_index)) = first.get(name) else {
                first.insert(name, (file_index, index));
                continue;
            };
            let place = files[first_file]
                .doc
                .place(&[list, Index(first_index), Key("name")]);
            let mut check = Check {
                doc: &file.doc,
                out,
            };
            check.at(
                &[list, Index(index), Key("name")],
                format!("duplicate {kind} name `{name}`; first defined at {place}"),
            );
        }
    }
    first
}

// ---------------------------------------------------------------------------------------
// Small predicates.

/// How messages name a thing: "probe `api`", or "this probe" when it has no name.
fn subject(kind: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{kind} `{name}`"),
        None => format!("this {kind}"),
    }
}

/// `[A-Za-z0-9_.-]+`
fn is_probe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `[a-z][a-z0-9_]*`
fn is_category(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The known name closest to `wanted` by edit distance, if close enough to be a typo:
/// at most a third of its length (and at least one edit).
pub(super) fn closest<'a>(wanted: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(1);
    known
        .iter()
        .filter(|name| name.chars().count().abs_diff(wanted.chars().count()) <= limit)
        .map(|name| (strsim::levenshtein(wanted, name), *name))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;

    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// A config directory holding `files` (relative paths).
    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        dir
    }

    fn secret(bytes: usize) -> String {
        format!("whsec_{}", STANDARD.encode(vec![7u8; bytes]))
    }

    /// The environment of most tests, plus `extra` (which wins).
    fn env_with(extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let mut vars: HashMap<String, String> = [
            ("T_ADMIN", "admin-token".to_owned()),
            ("T_INGEST", "ingest-token".to_owned()),
            ("HOOK_SECRET", format!("{} {}", secret(24), secret(64))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        move |name: &str| vars.get(name).cloned()
    }

    fn load_dir(
        dir: &tempfile::TempDir,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<String>> {
        load_with(&dir.path().join("incidentd.yaml"), env, &|| Ok(())).map_err(|errors| {
            let prefix = format!("{}/", dir.path().display());
            errors
                .0
                .iter()
                .map(|d| d.to_string().replace(&prefix, ""))
                .collect()
        })
    }

    /// Loads `files` with the default environment and expects exactly `expected`.
    #[track_caller]
    fn check(files: &[(&str, &str)], expected: &[&str]) {
        check_env(files, &[], expected);
    }

    #[track_caller]
    fn check_env(files: &[(&str, &str)], env: &[(&str, &str)], expected: &[&str]) {
        let dir = dir_with(files);
        match load_dir(&dir, &env_with(env)) {
            Ok(_) => panic!("loaded, expected:\n{}", expected.join("\n")),
            Err(got) => assert_eq!(got, expected, "\ngot:\n{}\n", got.join("\n")),
        }
    }

    #[track_caller]
    fn load_ok(files: &[(&str, &str)]) -> (tempfile::TempDir, Config) {
        let dir = dir_with(files);
        match load_dir(&dir, &env_with(&[])) {
            Ok(config) => (dir, config),
            Err(errors) => panic!("errors:\n{}", errors.join("\n")),
        }
    }

    const FULL_CONFIG: &str = "\
listen: 0.0.0.0:9999
external_url: https://incidents.example
storage: {path: state/db.redb}
rule_files: [rules/*.yaml, extra/*.yaml, rules/web.yaml, nothing/*.yaml]
auth:
  tokens:
    - {name: alertmanager, token_env: T_INGEST, role: ingest}
    - {name: admin, token_env: T_ADMIN, role: admin, security: true}
webhooks:
  - name: chatops
    url: https://chat.example/hooks
    secret_env: HOOK_SECRET
    events: [incident.opened, incident.resolved]
    timeout: 5s
    security: true
  - name: audit
    url: http://audit.example/
    secret_env: HOOK_SECRET
categories:
  - {name: availability}
  - {name: availability_2, kind: incident, restricted: false}
  - {name: request, kind: request}
  - {name: data_breach, restricted: true}
priority_matrix:
  high:   {high: P1, medium: P1, low: P2}
  medium: {low: P4, medium: P3, high: P2}
  low:    {high: P3, medium: P5, low: P5}
escalation:
  P1: {start_tier: L3}
  P2: {unresolved_after: 4h}
  default: {start_tier: L2, unacknowledged_after: 15m}
closure: {quiet_period: 0}
";

    const WEB_RULES: &str = "\
probes:
  - name: checkout-api
    interval: 10s
    timeout: 2s
    labels: {service: checkout, team: payments}
    http:
      url: \"http://127.0.0.1:8080/health\"
      method: POST
      headers: {X-Probe: incidentd}
rules:
  - name: checkout-down
    probe: checkout-api
    when: '[STATUS] != 200'
    after: 3
    recover_after: 4
    incident:
      title: 'Checkout API down ({{ status }})'
      category: availability_2
      impact: high
      urgency: low
";

    const DB_RULES: &str = "\
probes:
  - {name: db.primary, http: {url: 'https://db.example/health'}}
rules:
  - {name: db-down, probe: checkout-api, when: '[CONNECTED] == false'}
";

    /// `load_text` and `load_rule_text` load a text as `load_with` and `load_rule_files`
    /// load the same text from its file: the same configuration, the same diagnostics.
    #[test]
    fn a_text_loads_as_its_file() {
        let broken_rules = "probes:\n  - {name: web, http: {url: nope}}\nrules: [{name: r}]\n";
        for (config, rules) in [
            (FULL_CONFIG, WEB_RULES),
            (
                "listen: nowhere\nrule_files: [extra/*.yaml]\n",
                broken_rules,
            ),
            ("{[", DB_RULES),
        ] {
            let dir = dir_with(&[
                ("incidentd.yaml", config),
                ("rules/web.yaml", rules),
                ("extra/db.yaml", DB_RULES),
            ]);
            let env = env_with(&[]);
            let path = dir.path().join("incidentd.yaml");
            let from_file = load_with(&path, &env, &|| Ok(()));
            let from_text = load_text(&path, config.to_owned(), &env, &|| Ok(()));
            assert_eq!(format!("{from_text:?}"), format!("{from_file:?}"));

            let rule_file = dir.path().join("rules/web.yaml");
            let from_file = load_rule_files(std::slice::from_ref(&rule_file));
            let from_text = load_rule_text(&rule_file, rules.to_owned(), &|| Ok(()));
            assert_eq!(format!("{from_text:?}"), format!("{from_file:?}"));
        }
        let refused = load_rule_text(Path::new("deep.yaml"), "[".repeat(100), &|| Ok(()));
        assert!(
            refused.is_err_and(|errors| errors.0.len() == 1),
            "too deep a text is refused before it is parsed"
        );
    }

    #[test]
    fn loads_a_full_valid_config() {
        let (dir, config) = load_ok(&[
            ("incidentd.yaml", FULL_CONFIG),
            ("rules/web.yaml", WEB_RULES),
            ("extra/db.yaml", DB_RULES),
        ]);
        let root = dir.path();
        assert_eq!(config.path, root.join("incidentd.yaml"));
        assert_eq!(config.listen, "0.0.0.0:9999".parse::<SocketAddr>().unwrap());
        assert_eq!(
            config.external_url.as_deref(),
            Some("https://incidents.example")
        );
        assert_eq!(config.storage_path, root.join("state/db.redb"));
        // Sorted, and rules/web.yaml once although two globs match it.
        assert_eq!(
            config.rule_files,
            [root.join("extra/db.yaml"), root.join("rules/web.yaml")]
        );

        let tokens: Vec<_> = config
            .auth
            .tokens
            .iter()
            .map(|t| (t.name.as_str(), t.token.as_str(), t.role, t.security))
            .collect();
        assert_eq!(
            tokens,
            [
                ("alertmanager", "ingest-token", Role::Ingest, false),
                ("admin", "admin-token", Role::Admin, true),
            ]
        );

        let [chatops, audit] = &config.webhooks[..] else {
            panic!("{:?}", config.webhooks)
        };
        assert_eq!(chatops.name, "chatops");
        assert_eq!(chatops.url.as_str(), "https://chat.example/hooks");
        assert_eq!(chatops.secrets, [vec![7u8; 24], vec![7u8; 64]]);
        assert_eq!(
            chatops.events,
            Some(vec![
                "incident.opened".to_owned(),
                "incident.resolved".to_owned()
            ])
        );
        assert_eq!(chatops.timeout, Duration::from_secs(5));
        assert!(chatops.security && !audit.security);
        assert!(chatops.wants("incident.opened") && !chatops.wants("incident.closed"));
        assert_eq!(audit.events, None);
        assert_eq!(audit.timeout, Duration::from_secs(10));

        // Files in sorted order: extra/db.yaml first.
        let [db, checkout] = &config.probes[..] else {
            panic!("{:?}", config.probes)
        };
        assert_eq!(db.name, "db.primary");
        assert_eq!(checkout.name, "checkout-api");
        assert_eq!(checkout.interval, Duration::from_secs(10));
        assert_eq!(checkout.timeout, Duration::from_secs(2));
        assert_eq!(
            checkout.labels,
            BTreeMap::from([
                ("service".to_owned(), "checkout".to_owned()),
                ("team".to_owned(), "payments".to_owned()),
            ])
        );
        let ProbeTarget::Http(http) = &checkout.target else {
            panic!("an http probe")
        };
        assert_eq!(http.url.as_str(), "http://127.0.0.1:8080/health");
        assert_eq!(http.method, reqwest::Method::POST);
        assert_eq!(
            http.headers,
            BTreeMap::from([("X-Probe".to_owned(), "incidentd".to_owned())])
        );

        let [db_down, checkout_down] = &config.rules[..] else {
            panic!("{:?}", config.rules)
        };
        // A rule may name a probe of another file.
        assert_eq!(
            (db_down.name.as_str(), db_down.probe.as_str()),
            ("db-down", "checkout-api")
        );
        assert_eq!(checkout_down.when.source(), "[STATUS] != 200");
        assert_eq!((checkout_down.after, checkout_down.recover_after), (3, 4));
        let incident = &checkout_down.incident;
        assert_eq!(
            incident.title.as_deref(),
            Some("Checkout API down ({{ status }})")
        );
        assert_eq!(incident.category, "availability_2");
        assert_eq!(
            (incident.impact, incident.urgency),
            (Level::High, Level::Low)
        );

        let workflow = &config.workflow;
        let categories: Vec<_> = workflow
            .categories
            .iter()
            .map(|c| (c.name.as_str(), c.kind, c.restricted))
            .collect();
        assert_eq!(
            categories,
            [
                ("availability", Kind::Incident, false),
                ("availability_2", Kind::Incident, false),
                ("request", Kind::Request, false),
                ("data_breach", Kind::Incident, true),
            ]
        );
        use Level::{High, Low, Medium};
        use Priority::*;
        assert_eq!(
            workflow.priority_matrix.0,
            [[P1, P1, P2], [P2, P3, P4], [P3, P5, P5]]
        );
        assert_eq!(workflow.priority_matrix.priority(Low, Medium), P5);
        assert_eq!(workflow.priority_matrix.priority(Medium, High), P2);
        let m = |n: u64| Duration::from_secs(n * 60);
        let h = |n: u64| Duration::from_secs(n * 3600);
        let escalation = &workflow.escalation;
        // `default` leaves out unresolved_after: the built-in 8h.
        let default = EscalationPolicy {
            start_tier: Tier::L2,
            unacknowledged_after: Some(m(15)),
            unresolved_after: Some(h(8)),
        };
        assert_eq!(escalation.default, default);
        // A priority's policy takes what it leaves out from `default`.
        assert_eq!(
            escalation.per_priority,
            BTreeMap::from([
                (
                    P1,
                    EscalationPolicy {
                        start_tier: Tier::L3,
                        ..default
                    }
                ),
                (
                    P2,
                    EscalationPolicy {
                        unresolved_after: Some(h(4)),
                        ..default
                    }
                ),
            ])
        );
        assert_eq!(escalation.policy(P4), &default);
        assert_eq!(workflow.closure_quiet_period, Duration::ZERO);
        assert_eq!(workflow.sla, WorkflowConfig::default().sla);
    }

    #[test]
    fn defaults() {
        let (dir, config) = load_ok(&[
            ("incidentd.yaml", "# nothing set\n"),
            (
                "rules/min.yaml",
                "probes:\n  - {name: a, http: {url: 'http://a/'}}\n  - {name: b, interval: 4s, http: {url: 'http://b/'}}\nrules:\n  - {name: r, probe: a, when: '[STATUS] != 200'}\n",
            ),
            ("rules/empty.yaml", ""),
            ("rules/comments.yaml", "# only a comment\n"),
            ("rules/null.yaml", "probes:\nrules: ~\n"),
            ("other/ignored.yaml", "not: [loaded"),
        ]);
        let root = dir.path();
        assert_eq!(
            config.listen,
            "127.0.0.1:9750".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.external_url, None);
        assert_eq!(config.storage_path, root.join("data/incidentd.redb"));
        assert_eq!(config.rule_files.len(), 4);
        assert!(config.auth.tokens.is_empty() && config.webhooks.is_empty());

        let [a, b] = &config.probes[..] else {
            panic!("{:?}", config.probes)
        };
        assert_eq!(
            (a.interval, a.timeout),
            (Duration::from_secs(30), Duration::from_secs(10))
        );
        // No timeout and an interval under 10s: the timeout is the interval.
        assert_eq!(
            (b.interval, b.timeout),
            (Duration::from_secs(4), Duration::from_secs(4))
        );
        assert!(a.labels.is_empty());
        let ProbeTarget::Http(http) = &a.target else {
            panic!("an http probe")
        };
        assert_eq!(http.method, reqwest::Method::GET);
        assert!(http.headers.is_empty());

        let [rule] = &config.rules[..] else {
            panic!("{:?}", config.rules)
        };
        assert_eq!((rule.after, rule.recover_after), (1, 2));
        let incident = &rule.incident;
        assert_eq!(incident.title, None);
        assert_eq!(incident.category, "availability");
        assert_eq!(
            (incident.impact, incident.urgency),
            (Level::Medium, Level::Medium)
        );
        assert_eq!(config.workflow, WorkflowConfig::default());
        assert!(config.webhooks.iter().all(|w| !w.security));
    }

    #[test]
    fn an_empty_config_file_without_rule_files_loads() {
        let (_dir, config) = load_ok(&[("incidentd.yaml", "")]);
        assert!(config.rule_files.is_empty() && config.probes.is_empty());
    }

    #[test]
    fn paths_are_shown_as_given() {
        let dir = dir_with(&[
            ("incidentd.yaml", "listen: nowhere\n"),
            ("rules/web.yaml", "probes: [{name: a}]\n"),
        ]);
        let given = dir.path().join(".").join("incidentd.yaml");
        let errors = load(&given, &env_with(&[])).unwrap_err().0;
        let files: Vec<_> = errors.iter().map(|d| d.file.clone()).collect();
        assert_eq!(files, [given.clone(), dir.path().join("./rules/web.yaml")]);
    }

    // ----- incidentd.yaml errors, one kind each -------------------------------------

    #[test]
    fn unknown_top_level_key_lists_the_valid_ones() {
        check(
            &[("incidentd.yaml", "listen: 127.0.0.1:1\nlisten_addr: x\n")],
            &[
                "incidentd.yaml:2:1: unknown field `listen_addr`, expected one of `listen`, `external_url`, `storage`, `rule_files`, `auth`, `webhooks`, `probe_concurrency`, `probe_duration_histogram`, `categories`, `priority_matrix`, `escalation`, `sla`, `closure`, `http`, `alerts`, `status_page`, `mail`",
            ],
        );
    }

    #[test]
    fn a_broken_config_file_still_has_its_rule_files_checked() {
        check(
            &[
                ("incidentd.yaml", "rule_files: [more/*.yaml]\nbogus: 1\n"),
                ("more/a.yaml", "probes: [{name: a}]\n"),
            ],
            &[
                "incidentd.yaml:2:1: unknown field `bogus`, expected one of `listen`, `external_url`, `storage`, `rule_files`, `auth`, `webhooks`, `probe_concurrency`, `probe_duration_histogram`, `categories`, `priority_matrix`, `escalation`, `sla`, `closure`, `http`, `alerts`, `status_page`, `mail`",
                "more/a.yaml:1:10: probe `a` needs one of http, tcp, dns, tls, icmp, prometheus",
            ],
        );
    }

    #[test]
    fn status_page_section_loads_services_with_default_matchers() {
        let (_dir, config) = load_ok(&[(
            "incidentd.yaml",
            "\
status_page:
  title: Example status
  timezone: Asia/Jakarta
  services:
    - {name: checkout, display: Checkout, group: Shop}
    - {name: search, match: {team: search, env: prod}}
",
        )]);
        let page = &config.status_page;
        assert_eq!(page.title, "Example status");
        assert_eq!(page.timezone, chrono_tz::Asia::Jakarta);
        assert_eq!(page.services.len(), 2);
        let checkout = &page.services[0];
        assert_eq!(checkout.display, "Checkout");
        assert_eq!(checkout.group.as_deref(), Some("Shop"));
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(checkout.matches(&labels(&[("service", "checkout"), ("x", "y")])));
        assert!(!checkout.matches(&labels(&[("service", "search")])));
        assert!(checkout.matches_incident(Some("checkout"), &BTreeMap::new()));
        let search = &page.services[1];
        assert_eq!(search.display, "search");
        assert!(search.matches(&labels(&[("team", "search"), ("env", "prod")])));
        assert!(!search.matches(&labels(&[("team", "search")])));
        assert!(!search.matches_incident(Some("search"), &BTreeMap::new()));
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(page.unknown_service(&names(&["search", "checkout"])), None);
        assert_eq!(
            page.unknown_service(&names(&["search", "cart"])),
            Some("cart")
        );
        let (_dir, config) = load_ok(&[("incidentd.yaml", "status_page:\n")]);
        assert_eq!(
            config.status_page,
            crate::config::StatusPageConfig::default()
        );
        // No service listed: any name is taken.
        assert_eq!(config.status_page.unknown_service(&names(&["cart"])), None);
    }

    #[test]
    fn status_page_errors_are_all_named_at_their_place() {
        check(
            &[(
                "incidentd.yaml",
                "\
status_page:
  title: ''
  timezone: Mars/Olympus
  services:
    - {name: 'bad name'}
    - {name: a}
    - {name: a}
    - {display: X}
    - {name: b, match: {}}
    - {name: c, match: {'bad-label': x}}
    - {name: d, colour: red}
",
            )],
            &[
                "incidentd.yaml:2:10: status_page.title must be 1 to 200 bytes",
                "incidentd.yaml:3:13: unknown time zone `Mars/Olympus`; use an IANA name such as Europe/Berlin",
                "incidentd.yaml:5:14: service name `bad name` must be 1 to 64 letters, digits, `-`, `_` or `.`",
                "incidentd.yaml:7:14: service `a` is listed twice",
                "incidentd.yaml:8:7: missing field `name`",
                "incidentd.yaml:9:24: match must name at least one label (leave it out for `{service: NAME}`)",
                "incidentd.yaml:10:24: `bad-label` is not a valid label name",
                "incidentd.yaml:11:17: unknown field `colour`, expected one of `name`, `display`, `description`, `group`, `match`",
            ],
        );
    }

    #[test]
    fn sla_section_merges_entries_default_and_builtin_targets() {
        use crate::domain::calendar::Calendar;
        use crate::domain::sla::ClockStart;
        let (_dir, config) = load_ok(&[(
            "incidentd.yaml",
            "\
sla:
  warn_at: 0.5
  start: detected
  calendar: {timezone: Asia/Jakarta, days: [mon-fri], hours: \"08:00-17:00\", holidays: [2026-12-25]}
  incident:
    P1: {first_response: 30m}
    P3: {first_response: 2h, resolution: 24h, calendar: 24x7}
    default: {resolution: 12h}
  request: {default: {first_response: 3h, resolution: 72h}}
  mean_resolution_objective: 20h
  breach_notification: 48h
",
        )]);
        let sla = &config.workflow.sla;
        assert_eq!(sla.warn_at, 0.5);
        assert_eq!(sla.start, ClockStart::Detected);
        let h = chrono::TimeDelta::hours;
        let p1 = sla.policy(Kind::Incident, Priority::P1);
        assert_eq!(
            (p1.first_response, p1.resolution),
            (chrono::TimeDelta::minutes(30), h(12))
        );
        let Calendar::Business(hours) = &p1.calendar else {
            panic!("the section's calendar applies: {:?}", p1.calendar);
        };
        assert_eq!(hours.timezone, chrono_tz::Asia::Jakarta);
        assert_eq!((hours.open, hours.close), (8 * 3600, 17 * 3600));
        assert_eq!(hours.holidays.len(), 1);
        let p2 = sla.policy(Kind::Incident, Priority::P2);
        assert_eq!(
            (p2.first_response, p2.resolution),
            (h(1), h(12)),
            "built-in first response, default resolution"
        );
        let p3 = sla.policy(Kind::Incident, Priority::P3);
        assert_eq!((p3.first_response, p3.resolution), (h(2), h(24)));
        assert_eq!(p3.calendar, Calendar::Always);
        let request = sla.policy(Kind::Request, Priority::P5);
        assert_eq!((request.first_response, request.resolution), (h(3), h(72)));
        assert_eq!(sla.mean_resolution_objective, h(20));
        assert_eq!(sla.breach_notification, h(48));
    }

    #[test]
    fn sla_errors_have_their_positions() {
        check(
            &[(
                "incidentd.yaml",
                "\
sla:
  warn_at: 1.5
  start: later
  calendar: 9to5
  incident:
    P1: {first_response: 0s, resolution: soon}
  request:
    default: {calendar: {timezone: Mars/Olympus, hours: \"17:00-08:00\", holidays: [someday]}}
",
            )],
            &[
                "incidentd.yaml:2:12: warn_at must be a share of the target between 0 and 1 (exclusive), e.g. 0.75; got 1.5",
                "incidentd.yaml:3:10: invalid start `later`; expected `opened` or `detected`",
                "incidentd.yaml:4:13: invalid calendar `9to5`; expected `24x7` or a mapping with `timezone`, `days`, `hours` and `holidays`",
                "incidentd.yaml:6:26: an SLA target must be greater than 0",
                "incidentd.yaml:6:42: invalid duration `soon`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "incidentd.yaml:8:36: unknown time zone `Mars/Olympus`; use an IANA name such as Europe/Berlin",
                "incidentd.yaml:8:57: invalid hours `17:00-08:00`: the opening must be before the closing (HH:MM-HH:MM, 00:00-24:00)",
                "incidentd.yaml:8:83: invalid holiday `someday`: expected a date as YYYY-MM-DD, e.g. 2026-12-25",
            ],
        );
    }

    #[test]
    fn category_errors() {
        let config = "\
categories:
  - {name: availability}
  - {name: Data Breach, restricted: true}
  - {name: request, kind: ticket}
  - {name: availability, kind: request}
  - {kind: request}
  - {name: perf, restricted: maybe, owner: x}
  - {name: 9lives}
";
        check(
            &[("incidentd.yaml", config)],
            &[
                "incidentd.yaml:3:12: invalid category `Data Breach`; categories match [a-z][a-z0-9_]*",
                "incidentd.yaml:4:27: unknown variant `ticket`, expected `incident` or `request`",
                "incidentd.yaml:5:12: duplicate category name `availability`; first defined at incidentd.yaml:2:12",
                "incidentd.yaml:6:5: missing field `name`",
                "incidentd.yaml:7:37: unknown field `owner`, expected one of `name`, `kind`, `restricted`",
                "incidentd.yaml:8:12: invalid category `9lives`; categories match [a-z][a-z0-9_]*",
            ],
        );
        check(
            &[("incidentd.yaml", "categories: []\n")],
            &["incidentd.yaml:1:13: categories must list at least one category"],
        );
        check(
            &[(
                "incidentd.yaml",
                "categories: [{name: a, restricted: maybe}]\n",
            )],
            &["incidentd.yaml:1:36: invalid type: string \"maybe\", expected a boolean"],
        );
    }

    #[test]
    fn priority_matrix_errors() {
        let config = "\
priority_matrix:
  high:   {high: P1, medium: P2, low: P0}
  medium: {high: P2, medium: P3, critical: P1}
";
        check(
            &[("incidentd.yaml", config)],
            &[
                "incidentd.yaml:2:3: priority_matrix has no row for impact `low`; every impact (high, medium, low) needs one",
                "incidentd.yaml:2:39: unknown variant `P0`, expected one of `P1`, `P2`, `P3`, `P4`, `P5`",
                "incidentd.yaml:3:34: unknown field `critical`, expected one of `high`, `medium`, `low`",
            ],
        );
        check(
            &[("incidentd.yaml", "priority_matrix:\n  lowest: {high: P3}\n")],
            &[
                "incidentd.yaml:2:3: unknown field `lowest`, expected one of `high`, `medium`, `low`",
            ],
        );
        let config = "\
priority_matrix:
  high:   {high: P1, medium: P2}
  medium: {high: P2, medium: P3, low: p4}
  low:    [P3, P4, P5]
";
        check(
            &[("incidentd.yaml", config)],
            &[
                "incidentd.yaml:2:11: priority_matrix impact `high` has no priority for urgency `low`; every urgency (high, medium, low) needs one",
                "incidentd.yaml:3:39: unknown variant `p4`, expected one of `P1`, `P2`, `P3`, `P4`, `P5`",
                "incidentd.yaml:4:11: invalid type: sequence, expected a row of the priority matrix (a mapping of urgency to priority)",
            ],
        );
        // Each impact and each urgency once: a repeated one is a duplicate YAML key, which
        // the whole file's parse refuses (at the mapping that repeats it).
        check(
            &[(
                "incidentd.yaml",
                "priority_matrix:\n  high: {high: P1, high: P2, medium: P2, low: P3}\n",
            )],
            &["incidentd.yaml:2:9: duplicate entry with key \"high\""],
        );
    }

    #[test]
    fn escalation_errors() {
        let config = "\
escalation:
  P1: {start_tier: L4}
  P2: {unacknowledged_after: 0, unresolved_after: 1 day}
";
        check(
            &[("incidentd.yaml", config)],
            &[
                "incidentd.yaml:2:20: unknown variant `L4`, expected one of `L1`, `L2`, `L3`",
                "incidentd.yaml:3:30: unacknowledged_after must be greater than 0",
                "incidentd.yaml:3:51: invalid duration `1 day`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
            ],
        );
        check(
            &[("incidentd.yaml", "escalation:\n  P6: {start_tier: L1}\n")],
            &[
                "incidentd.yaml:2:3: unknown field `P6`, expected one of `P1`, `P2`, `P3`, `P4`, `P5`, `default`",
            ],
        );
        check(
            &[(
                "incidentd.yaml",
                "escalation:\n  default: {start_tier: L1, unresolved_after: 0s, notify: oncall}\n  P3: L2\n",
            )],
            &[
                "incidentd.yaml:2:51: unknown field `notify`, expected one of `start_tier`, `unacknowledged_after`, `unresolved_after`",
                "incidentd.yaml:3:7: invalid type: string \"L2\", expected an escalation policy (a mapping with `start_tier`, `unacknowledged_after` and `unresolved_after`)",
            ],
        );
        check(
            &[(
                "incidentd.yaml",
                "escalation:\n  default: {unresolved_after: 0s}\n",
            )],
            &["incidentd.yaml:2:31: unresolved_after must be greater than 0"],
        );
    }

    #[test]
    fn alerts_section_loads_with_defaults_merged() {
        let (_dir, config) = load_ok(&[(
            "incidentd.yaml",
            "alerts:
  resolve_timeout: 10m
  group_by: group_key
  title: '{{ labels.alertname }}: {{ annotations.summary }}'
  service_label: app
  severity: {page: {impact: high, urgency: high}, warning: {impact: low, urgency: medium}}
  unknown_severity: {impact: low, urgency: low}
  category: performance
",
        )]);
        let alerts = &config.alerts;
        assert_eq!(alerts.resolve_timeout, Duration::from_secs(600));
        assert_eq!(alerts.group_by, crate::domain::alert::GroupBy::GroupKey);
        assert_eq!(alerts.service_label, "app");
        assert_eq!(alerts.category, "performance");
        assert_eq!(
            alerts.severity.len(),
            4,
            "merged over critical, warning, info"
        );
        assert_eq!(alerts.severity["warning"].impact, Level::Low);
        assert_eq!(alerts.unknown_severity.urgency, Level::Low);
        let (_dir, config) = load_ok(&[("incidentd.yaml", "alerts: {}\n")]);
        assert_eq!(config.alerts, crate::domain::alert::AlertMapping::default());
    }

    #[test]
    fn alerts_errors() {
        check(
            &[(
                "incidentd.yaml",
                "alerts:
  resolve_timeout: 0s
  group_by: label
  title: '{{ annotations.summary'
  service_label: 'not a label'
  severity: {critical: {impact: huge, urgency: high}}
  category: outage
  bogus: 1
",
            )],
            &[
                "incidentd.yaml:8:3: unknown field `bogus`, expected one of `resolve_timeout`, `group_by`, `title`, `description`, `service_label`, `severity`, `unknown_severity`, `category`",
            ],
        );
        check(
            &[(
                "incidentd.yaml",
                "alerts:
  resolve_timeout: 0s
  group_by: label
  title: '{{ annotations.summary'
  service_label: 'not a label'
  severity: {critical: {impact: huge, urgency: high}}
  category: outage
",
            )],
            &[
                "incidentd.yaml:2:20: alerts.resolve_timeout must be more than 0",
                "incidentd.yaml:3:13: alerts.group_by must be `fingerprint` or `group_key`, not `label`",
                "incidentd.yaml:4:10: invalid title template: syntax error: unexpected end of input, expected end of variable block (in title:1)",
                "incidentd.yaml:5:18: alerts.service_label `not a label` is not a valid label name",
                "incidentd.yaml:6:33: unknown variant `huge`, expected one of `high`, `medium`, `low`",
                "incidentd.yaml:7:13: unknown category `outage`; valid: availability, performance, capacity, security, data_breach, request",
            ],
        );
        // The default category must be in a taxonomy that replaces the built-in one.
        check(
            &[(
                "incidentd.yaml",
                "categories: [{name: outage}]\nalerts: {}\n",
            )],
            &[
                "incidentd.yaml:2:9: unknown category `availability` (the default when `alerts.category` is left out); valid: outage",
            ],
        );
    }

    #[test]
    fn closure_errors() {
        check(
            &[(
                "incidentd.yaml",
                "closure: {quiet_period: -1h, after: 1h}\n",
            )],
            &["incidentd.yaml:1:30: unknown field `after`, expected `quiet_period`"],
        );
        check(
            &[("incidentd.yaml", "closure: {quiet_period: -1h}\n")],
            &[
                "incidentd.yaml:1:25: invalid duration `-1h`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
            ],
        );
        check(
            &[("incidentd.yaml", "closure: 1h\n")],
            &[
                "incidentd.yaml:1:10: invalid type: string \"1h\", expected closure settings (a mapping with `quiet_period`)",
            ],
        );
    }

    #[test]
    fn workflow_sections_absent_or_partial_take_the_defaults() {
        let (_dir, config) = load_ok(&[(
            "incidentd.yaml",
            "categories:\nescalation: {}\nclosure: {}\n",
        )]);
        let workflow = config.workflow;
        let default = WorkflowConfig::default();
        assert_eq!(workflow.categories, default.categories);
        assert_eq!(workflow.priority_matrix, default.priority_matrix);
        assert_eq!(workflow.closure_quiet_period, Duration::from_secs(3600));
        // An escalation section replaces the built-in policies: P1 follows `default` too.
        assert_eq!(workflow.escalation.per_priority, BTreeMap::new());
        assert_eq!(workflow.escalation.default, default.escalation.default);
    }

    #[test]
    fn the_contracts_example_loads() {
        let config = "\
categories:
  - {name: availability}
  - {name: request, kind: request}
  - {name: data_breach, restricted: true}
priority_matrix:
  high:   {high: P1, medium: P2, low: P3}
  medium: {high: P2, medium: P3, low: P4}
  low:    {high: P3, medium: P4, low: P5}
escalation:
  P1: {start_tier: L3}
  default: {start_tier: L1, unacknowledged_after: 30m, unresolved_after: 8h}
closure: {quiet_period: 1h}
";
        let (_dir, config) = load_ok(&[("incidentd.yaml", config)]);
        let workflow = config.workflow;
        let default = WorkflowConfig::default();
        assert_eq!(workflow.priority_matrix, default.priority_matrix);
        assert_eq!(workflow.escalation.default, default.escalation.default);
        let p1 = workflow.escalation.policy(Priority::P1);
        assert_eq!(
            (p1.start_tier, p1.unacknowledged_after),
            (Tier::L3, Some(Duration::from_secs(30 * 60)))
        );
        assert_eq!(
            workflow.category("request").map(|c| c.kind),
            Some(Kind::Request)
        );
        assert!(
            workflow
                .category("data_breach")
                .is_some_and(|c| c.restricted)
        );
        assert!(
            !workflow
                .category("availability")
                .is_some_and(|c| c.restricted)
        );
        assert_eq!(workflow.category("performance"), None);
    }

    #[test]
    fn rule_categories_are_checked_against_the_taxonomy_across_files() {
        let config = "categories: [{name: availability}, {name: perf}, {name: data_breach, restricted: true}]\n";
        check(
            &[
                ("incidentd.yaml", config),
                (
                    "rules/a.yaml",
                    "probes: [{name: p, http: {url: 'http://x/'}}]\nrules:\n  - {name: a, probe: p, when: '[STATUS] != 200', incident: {category: performance}}\n  - {name: b, probe: p, when: '[STATUS] != 200', incident: {category: perf}}\n",
                ),
                // An otherwise invalid rule still has its category checked; a malformed
                // category is reported once, as malformed.
                (
                    "rules/b.yaml",
                    "rules:\n  - {name: c, probe: p, when: '[STATUS] != 200', after: 0, incident: {category: capacity}}\n  - {name: d, probe: p, when: '[STATUS] != 200', incident: {category: Cap}}\n",
                ),
            ],
            &[
                "rules/a.yaml:3:71: unknown category `performance`; valid: availability, perf, data_breach",
                "rules/b.yaml:2:57: after must be at least 1",
                "rules/b.yaml:2:81: unknown category `capacity`; valid: availability, perf, data_breach",
                "rules/b.yaml:3:71: invalid category `Cap`; categories match [a-z][a-z0-9_]*",
            ],
        );
        // Left out, a rule's category is `availability`: reported at its incident, or at the
        // rule when it has none.
        check(
            &[
                ("incidentd.yaml", "categories: [{name: perf}]\n"),
                (
                    "rules/a.yaml",
                    "probes: [{name: p, http: {url: 'http://x/'}}]\nrules:\n  - {name: a, probe: p, when: '[STATUS] != 200'}\n  - {name: b, probe: p, when: '[STATUS] != 200', incident: {impact: high}}\n",
                ),
            ],
            &[
                "rules/a.yaml:3:5: unknown category `availability` (the default when `incident.category` is left out); valid: perf",
                "rules/a.yaml:4:60: unknown category `availability` (the default when `incident.category` is left out); valid: perf",
            ],
        );
        // A taxonomy with a problem is not checked against: only its own problem is reported.
        check(
            &[
                ("incidentd.yaml", "categories: [{name: perf, kind: bug}]\n"),
                (
                    "rules/a.yaml",
                    "probes: [{name: p, http: {url: 'http://x/'}}]\nrules: [{name: a, probe: p, when: '[STATUS] != 200', incident: {category: perf}}]\n",
                ),
            ],
            &["incidentd.yaml:1:33: unknown variant `bug`, expected `incident` or `request`"],
        );
        // Without incidentd.yaml (`incidentd test`), categories are not checked.
        let dir = dir_with(&[(
            "a.yaml",
            "probes: [{name: p, http: {url: 'http://x/'}}]\nrules: [{name: a, probe: p, when: '[STATUS] != 200', incident: {category: anything}}]\n",
        )]);
        assert!(load_rule_files(&[dir.path().join("a.yaml")]).is_ok());
    }

    #[test]
    fn listen_storage_and_rule_files_errors() {
        check(
            &[(
                "incidentd.yaml",
                "listen: localhost:80\nexternal_url: [x]\nstorage: {path: '', size: 1}\nrule_files: ['rules/[.yaml', 7]\n",
            )],
            &[
                "incidentd.yaml:1:9: invalid listen address `localhost:80`; expected IP:PORT, e.g. 127.0.0.1:9750",
                "incidentd.yaml:2:15: invalid type: sequence, expected a string",
                "incidentd.yaml:3:21: unknown field `size`, expected `path` or `postgres`",
                "incidentd.yaml:4:14: invalid glob `rules/[.yaml`: invalid range pattern",
            ],
        );
        check(
            &[("incidentd.yaml", "listen: [1]\nstorage: {path: ''}\n")],
            &[
                "incidentd.yaml:1:9: invalid type: sequence, expected a string",
                "incidentd.yaml:2:17: storage path must not be empty",
            ],
        );
    }

    #[test]
    fn token_errors() {
        let config = "\
auth:
  tokens:
    - {name: a, token_env: T_MISSING, role: admin}
    - {name: b, token_env: T_EMPTY, role: viewer}
    - {name: c, token_env: T_C, role: boss}
    - {name: d, token_env: T_ADMIN, role: responder}
    - {name: d, token_env: T_INGEST, role: responder}
    - {name: g, token_env: T_SAME, role: viewer}
    - {name: e, role: ingest}
    - {name: f, token_env: T_OTHER, role: ingest, scope: all}
";
        check_env(
            &[("incidentd.yaml", config)],
            &[
                ("T_EMPTY", " "),
                ("T_SAME", "admin-token"),
                ("T_C", "c-token"),
            ],
            &[
                "incidentd.yaml:3:28: environment variable T_MISSING (token_env of token `a`) is not set",
                "incidentd.yaml:4:28: environment variable T_EMPTY (token_env of token `b`) is empty",
                "incidentd.yaml:5:39: unknown variant `boss`, expected one of `viewer`, `ingest`, `responder`, `admin`",
                "incidentd.yaml:7:14: duplicate token name `d`; first defined at incidentd.yaml:6:14",
                "incidentd.yaml:8:28: token `g` has the same value as token `d`; every token must be different",
                "incidentd.yaml:9:7: missing field `token_env`",
                "incidentd.yaml:10:51: unknown field `scope`, expected one of `name`, `token_env`, `role`, `security`",
            ],
        );
    }

    /// `mail:` problems, each located; the relay URL holds a password, so no message
    /// quotes it.
    #[test]
    fn storage_postgres_settings_and_their_defaults() {
        const URL: &str = "postgres://incidentd:hunter2@db.example:5432/incidentd";
        let dir = dir_with(&[(
            "incidentd.yaml",
            "storage:\n  postgres: {url_env: DB_URL, lease_ttl: 4s}\n",
        )]);
        let config = load_dir(&dir, &env_with(&[("DB_URL", URL)])).unwrap();
        let postgres = config.postgres.clone().expect("postgres");
        assert_eq!(postgres.url, URL);
        assert_eq!(postgres.pool_size, 8);
        assert_eq!(postgres.statement_timeout, Duration::from_secs(5));
        assert_eq!(postgres.lease_ttl, Duration::from_secs(4));
        assert_eq!(
            postgres.write_wait,
            Duration::from_secs(9),
            "lease_ttl + 5s"
        );
        assert_eq!(postgres.advertise_url, None);
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn storage_postgres_errors() {
        const URL: &str = "mysql://incidentd:hunter2@db.example/incidentd";
        let config = "\
storage:
  path: data/x.redb
  postgres: {url_env: DB_URL}
";
        check_env(
            &[("incidentd.yaml", config)],
            &[("DB_URL", URL)],
            &["incidentd.yaml:3:13: storage takes `path` (a redb file) or `postgres`, not both"],
        );
        let config = "\
storage:
  postgres:
    url_env: DB_URL
    pool_size: 0
    lease_ttl: 10m
    write_wait: soon
    advertise_url: ftp://x
    port: 5432
";
        check_env(
            &[("incidentd.yaml", config)],
            &[("DB_URL", URL)],
            &[
                "incidentd.yaml:8:5: unknown field `port`, expected one of `url_env`, `pool_size`, `statement_timeout`, `lease_ttl`, `write_wait`, `advertise_url`",
            ],
        );
        let config = config.replace("    port: 5432\n", "");
        check_env(
            &[("incidentd.yaml", config.as_str())],
            &[("DB_URL", URL)],
            &[
                "incidentd.yaml:3:14: environment variable DB_URL (storage.postgres.url_env) must start with postgres:// or postgresql://",
                "incidentd.yaml:4:16: pool_size 0 is out of range; expected 1 to 256",
                "incidentd.yaml:5:16: lease_ttl must be between 1s and 300s",
                "incidentd.yaml:6:17: invalid duration `soon`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "incidentd.yaml:7:20: advertise_url `ftp://x` must be an http or https URL",
            ],
        );
        check_env(
            &[("incidentd.yaml", "storage: {postgres: {url_env: NOPE}}\n")],
            &[],
            &[
                "incidentd.yaml:1:31: environment variable NOPE (storage.postgres.url_env) is not set",
            ],
        );
    }

    #[test]
    fn mail_errors() {
        const URL: &str = "http://user:hunter2@relay.example:25";
        for (mail, env, expected) in [
            (
                "mail:\n  smtp_url_env: M_MISSING\n  from: 'Status <status@example.com>'\n",
                &[][..],
                "incidentd.yaml:2:17: environment variable M_MISSING (mail.smtp_url_env) is not set",
            ),
            (
                "mail:\n  smtp_url_env: M_URL\n  from: 'Status <status@example.com>'\n",
                &[("M_URL", URL)][..],
                "incidentd.yaml:2:17: environment variable M_URL (mail.smtp_url_env) must start with smtp:// or smtps://",
            ),
            (
                "mail:\n  smtp_url_env: M_URL\n  from: 'Status <status@example.com>'\n",
                &[("M_URL", "smtp://user:hunter2@")][..],
                "incidentd.yaml:2:17: environment variable M_URL (mail.smtp_url_env) names no host",
            ),
            (
                "mail:\n  smtp_url_env: M_URL\n  from: not an address\n",
                &[("M_URL", "smtp://user:hunter2@relay.example:25")][..],
                "incidentd.yaml:3:9: mail.from `not an address` is not an email address (e.g. `Status <status@example.com>`)",
            ),
            (
                "mail:\n  smtp_url_env: M_URL\n  from: 'Status <status@example.com>'\n  port: 25\n",
                &[("M_URL", "smtp://user:hunter2@relay.example:25")][..],
                "incidentd.yaml:4:3: unknown field `port`, expected `smtp_url_env` or `from`",
            ),
        ] {
            let dir = dir_with(&[("incidentd.yaml", mail)]);
            let errors = load_dir(&dir, &env_with(env)).expect_err(mail);
            assert_eq!(errors, [expected], "{mail}");
            assert!(!errors[0].contains("hunter2"), "{}", errors[0]);
        }
    }

    #[test]
    fn webhook_errors() {
        let config = "\
webhooks:
  - {name: a, url: 'ftp://x/', secret_env: HOOK_SECRET}
  - {name: b, url: 'not a url', secret_env: NOPE}
  - {name: c, url: 'http://x/', secret_env: W_PLAIN, events: [incident.opened, incident.exploded]}
  - {name: d, url: 'http://x/', secret_env: W_MIXED, events: [], timeout: 0}
  - {name: d, url: 'http://x/', secret_env: HOOK_SECRET, timeout: 5 min}
  - {name: e, url: 'http://x/', secret_env: HOOK_SECRET, retries: 3}
  - {name: f, url: 'http://x/', secret_env: HOOK_SECRET, security: maybe}
";
        check_env(
            &[("incidentd.yaml", config)],
            &[
                ("W_PLAIN", "hunter2hunter2"),
                ("W_MIXED", "whsec_!!!notbase64 whsec_c2hvcnQ= whsec_c2hvcnQ"),
            ],
            &[
                "incidentd.yaml:2:20: url `ftp://x/` must use http or https",
                "incidentd.yaml:3:20: invalid url `not a url`: relative URL without a base",
                "incidentd.yaml:3:45: environment variable NOPE (secret_env of webhook `b`) is not set",
                "incidentd.yaml:4:45: environment variable W_PLAIN (secret_env of webhook `c`): the secret does not start with `whsec_`",
                "incidentd.yaml:4:80: unknown event type `incident.exploded`; expected one of incident.opened, incident.acknowledged, incident.escalated, incident.priority_changed, incident.note_added, incident.on_hold, incident.resumed, incident.resolved, incident.reopened, incident.closed, incident.sla_warning, incident.sla_breached, incident.call_scheduled",
                "incidentd.yaml:5:45: environment variable W_MIXED (secret_env of webhook `d`): secret 1 of 3 is not base64 after `whsec_`",
                "incidentd.yaml:5:45: environment variable W_MIXED (secret_env of webhook `d`): secret 2 of 3 is 5 bytes long; a key is 24 to 64 bytes",
                "incidentd.yaml:5:45: environment variable W_MIXED (secret_env of webhook `d`): secret 3 of 3 is 5 bytes long; a key is 24 to 64 bytes",
                "incidentd.yaml:5:62: events must not be empty; leave it out to receive every event type",
                "incidentd.yaml:5:75: timeout must be greater than 0",
                "incidentd.yaml:6:12: duplicate webhook name `d`; first defined at incidentd.yaml:5:12",
                "incidentd.yaml:6:67: invalid duration `5 min`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "incidentd.yaml:7:58: unknown field `retries`, expected one of `name`, `url`, `secret_env`, `events`, `timeout`, `security`, `min_priority`, `kinds`, `categories`, `services`, `max_age`, `retry_schedule`, `retention`",
                "incidentd.yaml:8:68: invalid type: string \"maybe\", expected a boolean",
            ],
        );
    }

    #[test]
    fn webhook_filter_errors() {
        let config = "\
webhooks:
  - {name: a, url: 'http://x/', secret_env: HOOK_SECRET, min_priority: P9, kinds: [ticket]}
  - {name: b, url: 'http://x/', secret_env: HOOK_SECRET, categories: [availability, nope], services: []}
  - {name: c, url: 'http://x/', secret_env: HOOK_SECRET, max_age: 0s, retention: forever}
  - {name: d, url: 'http://x/', secret_env: HOOK_SECRET, retry_schedule: [1s, 0s, soon]}
  - {name: e, url: 'http://x/', secret_env: HOOK_SECRET, min_priority: P2, kinds: [incident], categories: [security], services: [checkout], max_age: 1h, retry_schedule: [1s, 1m], retention: 1d}
";
        check_env(
            &[("incidentd.yaml", config)],
            &[],
            &[
                "incidentd.yaml:2:72: unknown variant `P9`, expected one of `P1`, `P2`, `P3`, `P4`, `P5`",
                "incidentd.yaml:2:84: unknown variant `ticket`, expected `incident` or `request`",
                "incidentd.yaml:3:85: unknown category `nope`; expected one of availability, performance, capacity, security, data_breach, request",
                "incidentd.yaml:3:102: services must not be empty; leave it out to receive every incident",
                "incidentd.yaml:4:67: max_age must be greater than 0",
                "incidentd.yaml:4:82: invalid duration `forever`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "incidentd.yaml:5:79: a wait in retry_schedule must be greater than 0",
                "incidentd.yaml:5:83: invalid duration `soon`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
            ],
        );
    }

    #[test]
    fn webhook_filters() {
        let dir = dir_with(&[(
            "incidentd.yaml",
            "webhooks:\n  - {name: e, url: 'http://x/', secret_env: W, min_priority: P2, kinds: [incident], categories: [security], services: [checkout], max_age: 1h, retry_schedule: [1s, 1m], retention: 1d}\n  - {name: f, url: 'http://x/', secret_env: W}\n",
        )]);
        let env = env_with(&[("W", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]);
        let config = load_dir(&dir, &env).unwrap();
        let [e, f] = &config.webhooks[..] else {
            panic!("{:?}", config.webhooks)
        };
        assert_eq!(e.min_priority, Some(Priority::P2));
        assert_eq!(e.kinds, Some(vec![Kind::Incident]));
        assert_eq!(e.categories, Some(vec!["security".to_owned()]));
        assert_eq!(e.services, Some(vec!["checkout".to_owned()]));
        assert_eq!(e.max_age, Duration::from_secs(3600));
        assert_eq!(
            e.retry_schedule,
            [Duration::from_secs(1), Duration::from_secs(60)]
        );
        assert_eq!(e.retention, Duration::from_secs(86_400));
        assert_eq!(f.min_priority, None);
        assert_eq!(f.max_age, DEFAULT_WEBHOOK_MAX_AGE);
        assert_eq!(f.retry_schedule, DEFAULT_RETRY_SCHEDULE);
        assert_eq!(f.retention, DEFAULT_WEBHOOK_RETENTION);
    }

    #[test]
    fn secret_values_never_appear_in_messages() {
        let dir = dir_with(&[(
            "incidentd.yaml",
            "auth: {tokens: [{name: a, token_env: T_A, role: admin}, {name: b, token_env: T_B, role: admin}]}\nwebhooks: [{name: w, url: 'http://x/', secret_env: W}]\n",
        )]);
        let env = env_with(&[
            ("T_A", "tok-SECRET-1"),
            ("T_B", "tok-SECRET-1"),
            ("W", "whsec_SECRET-2 SECRET-3"),
        ]);
        let errors = load_dir(&dir, &env).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors.iter().all(|e| !e.contains("SECRET")), "{errors:#?}");
    }

    // ----- rule file errors -----------------------------------------------------------

    fn rules(text: &str) -> [(&str, &str); 2] {
        [("incidentd.yaml", ""), ("rules/web.yaml", text)]
    }

    #[test]
    fn rule_file_outline_errors_stop_only_that_file() {
        check(
            &[
                ("incidentd.yaml", ""),
                ("rules/a.yaml", "probes: []\nalerts: []\n"),
                ("rules/b.yaml", "probes: {name: x}\n"),
                ("rules/c.yaml", "probes:\n  - name: 'unterminated\n"),
                ("rules/d.yaml", "- just a list\n"),
                ("rules/e.yaml", "probes: [{name: e}]\n"),
            ],
            &[
                "rules/a.yaml:2:1: unknown field `alerts`, expected `probes` or `rules`",
                "rules/b.yaml:1:9: invalid type: map, expected a sequence",
                "rules/c.yaml:3:1: found unexpected end of stream, while scanning a quoted scalar at line 2 column 11",
                "rules/d.yaml:1:1: invalid type: sequence, expected a mapping with `probes` and `rules`",
                "rules/e.yaml:1:10: probe `e` needs one of http, tcp, dns, tls, icmp, prometheus",
            ],
        );
    }

    #[test]
    fn unknown_key_in_a_nested_http_block_has_its_position() {
        check(
            &rules(
                "probes:\n  - name: api\n    http:\n      url: http://x/\n      headers: {A: b}\n      timeout: 2s\n",
            ),
            &[
                "rules/web.yaml:6:7: unknown field `timeout`, expected one of `url`, `method`, `headers`, `body`, `tls_verify`, `follow_redirects`",
            ],
        );
    }

    #[test]
    fn probe_errors() {
        let text = "\
probes:
  - {interval: 10s, http: {url: 'http://x/'}}
  - {name: 'a b', http: {url: 'http://x/'}}
  - {name: c, interval: 10, http: {url: 'http://x/'}}
  - {name: d, interval: 50ms, timeout: 0s, http: {url: 'http://x/'}}
  - {name: e, interval: 5s, timeout: 6s, http: {url: 'http://x/'}}
  - {name: f, labels: {ok: x, __meta: y, 2x: z}, http: {url: 'http://x/'}}
  - {name: g}
  - {name: h, http: {url: 'http://x/'}, tcp: {address: 'x:1'}, dns: {}}
  - {name: i, icmp: {host: 'x y'}}
  - {name: j, http: ~}
  - {name: k, http: {url: '/relative', method: 'GE T', headers: {'Bad Name': x, Ok: \"a\\nb\"}}}
  - {name: l, tls: 'x:443'}
  - {name: m, http: {url: 'http://x/'}, intervall: 5s}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:2:5: missing field `name`",
                "rules/web.yaml:3:12: invalid probe name `a b`; use letters, digits, `_`, `.` and `-`",
                "rules/web.yaml:4:25: invalid duration `10`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/web.yaml:5:25: interval must be at least 100ms, got 50ms",
                "rules/web.yaml:5:40: timeout must be greater than 0",
                "rules/web.yaml:6:38: timeout 6s must not be longer than the interval 5s",
                "rules/web.yaml:7:31: invalid label name `__meta`; label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with `__`",
                "rules/web.yaml:7:42: invalid label name `2x`; label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with `__`",
                "rules/web.yaml:8:5: probe `g` needs one of http, tcp, dns, tls, icmp, prometheus",
                "rules/web.yaml:9:41: probe `h` has more than one type (`http`, `tcp`, `dns`); choose one",
                "rules/web.yaml:10:28: invalid host `x y`; expected a host name or an IP address",
                "rules/web.yaml:11:21: an http probe needs at least a `url`",
                "rules/web.yaml:12:27: invalid url `/relative`: relative URL without a base",
                "rules/web.yaml:12:48: invalid HTTP method `GE T`",
                "rules/web.yaml:12:66: invalid header name `Bad Name`",
                "rules/web.yaml:12:85: invalid value for header `Ok`",
                "rules/web.yaml:13:20: invalid type: string \"x:443\", expected a tls probe (a mapping with `address`)",
                "rules/web.yaml:14:41: unknown field `intervall`, expected one of `name`, `interval`, `confirm_interval`, `timeout`, `labels`, `http`, `tcp`, `dns`, `tls`, `icmp`, `prometheus`",
            ],
        );
    }

    #[test]
    fn confirm_interval_defaults_to_a_quarter_of_the_interval_within_100ms_and_1s() {
        let text = "\
probes:
  - {name: a, interval: 10s, http: {url: 'http://x/'}}
  - {name: b, interval: 500ms, http: {url: 'http://x/'}}
  - {name: g, interval: 1s, http: {url: 'http://x/'}}
  - {name: h, interval: 100ms, http: {url: 'http://x/'}}
  - {name: c, http: {url: 'http://x/'}}
  - {name: d, interval: 10s, confirm_interval: 2s, http: {url: 'http://x/'}}
  - {name: e, interval: 10s, confirm_interval: 10s, http: {url: 'http://x/'}}
  - {name: f, confirm_interval: 100ms, http: {url: 'http://x/'}}
";
        let (_dir, config) = load_ok(&rules(text));
        let confirm: Vec<(&str, Duration)> = config
            .probes
            .iter()
            .map(|probe| (probe.name.as_str(), probe.confirm_interval))
            .collect();
        let ms = Duration::from_millis;
        assert_eq!(
            confirm,
            [
                ("a", ms(1000)),
                ("b", ms(125)),
                ("g", ms(250)),
                ("h", ms(100)),
                ("c", ms(1000)),
                ("d", ms(2000)),
                ("e", ms(10_000)),
                ("f", ms(100)),
            ]
        );
    }

    #[test]
    fn confirm_interval_errors() {
        let text = "\
probes:
  - {name: a, confirm_interval: 0s, http: {url: 'http://x/'}}
  - {name: b, confirm_interval: 50ms, http: {url: 'http://x/'}}
  - {name: c, interval: 10s, confirm_interval: 11s, http: {url: 'http://x/'}}
  - {name: d, confirm_interval: 1 s, http: {url: 'http://x/'}}
  - {name: e, confirm_interval: [1s], http: {url: 'http://x/'}}
  - {name: f, interval: 10, confirm_interval: 20s, http: {url: 'http://x/'}}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:2:33: confirm_interval must be greater than 0",
                "rules/web.yaml:3:33: confirm_interval must be at least 100ms, got 50ms",
                "rules/web.yaml:4:48: confirm_interval 11s must not be longer than the interval 10s",
                "rules/web.yaml:5:33: invalid duration `1 s`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/web.yaml:6:33: invalid type: sequence, expected a string",
                "rules/web.yaml:7:25: invalid duration `10`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
            ],
        );
    }

    #[test]
    fn rule_errors() {
        let text = "\
probes:
  - {name: checkout-api, http: {url: 'http://x/'}}
rules:
  - {name: a, probe: checkout-api}
  - {name: b, probe: checkout-ap, when: '[STATUS] != 200'}
  - {name: c, probe: database, when: '[STATUS] != 200'}
  - {name: d, probe: checkout-api, when: '[STATUS] != 200', after: 0, recover_after: 0}
  - {name: e, probe: checkout-api, when: '[STATUS] != 200', after: -1}
  - {name: f, probe: checkout-api, when: '[STATUS] != 200', incident: {category: Perf}}
  - {name: g, probe: checkout-api, when: '[STATUS] != 200', incident: {impact: critical}}
  - {name: h, probe: checkout-api, when: '[STATUS] != 200', incident: {owner: me}}
  - {name: a, probe: checkout-api, when: '[STATUS] != 200'}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:4:5: missing field `when`",
                "rules/web.yaml:5:22: rule `b` names unknown probe `checkout-ap`; did you mean `checkout-api`?",
                "rules/web.yaml:6:22: rule `c` names unknown probe `database`",
                "rules/web.yaml:7:68: after must be at least 1",
                "rules/web.yaml:7:86: recover_after must be at least 1",
                "rules/web.yaml:8:68: invalid type: integer `-1`, expected u32",
                "rules/web.yaml:9:82: invalid category `Perf`; categories match [a-z][a-z0-9_]*",
                "rules/web.yaml:10:80: unknown variant `critical`, expected one of `high`, `medium`, `low`",
                "rules/web.yaml:11:72: unknown field `owner`, expected one of `title`, `category`, `impact`, `urgency`",
                "rules/web.yaml:12:12: duplicate rule name `a`; first defined at rules/web.yaml:4:12",
            ],
        );
    }

    #[test]
    fn detection_keys_and_their_errors() {
        let text = "\
probes:
  - {name: api, http: {url: 'http://x/'}}
rules:
  - name: a
    probe: api
    when: '[STATUS] != 200'
    for: 1m30s
    auto_resolve: false
    depends_on: [b]
    flapping: {changes: 3, window: 10}
    maintenance:
      - {start: '02:00', duration: 2h, weekdays: [sat, sun], utc_offset: '+07:00'}
  - {name: b, probe: api, when: '[STATUS] != 200'}
";
        let dir = dir_with(&rules(text));
        let config = load_dir(&dir, &env_with(&[])).expect("valid");
        let a = &config.rules[0];
        assert_eq!(a.for_, Some(Duration::from_secs(90)));
        assert!(!a.auto_resolve);
        assert_eq!(a.depends_on, ["b"]);
        assert_eq!((a.flapping_changes, a.flapping_window), (3, 10));
        assert_eq!(a.maintenance.len(), 1);
        assert_eq!(a.maintenance[0].utc_offset_seconds, 7 * 3600);
        assert_eq!(
            a.maintenance[0].weekdays,
            [chrono::Weekday::Sat, chrono::Weekday::Sun]
        );
        let b = &config.rules[1];
        assert_eq!(
            (b.for_, b.auto_resolve, b.flapping_changes),
            (None, true, 4)
        );

        let text = "\
probes:
  - {name: api, http: {url: 'http://x/'}}
rules:
  - {name: a, probe: api, when: '[STATUS] != 200', for: soon, depends_on: [a]}
  - {name: api-down, probe: api, when: '[STATUS] != 200', flapping: {window: 100}}
  - {name: d, probe: api, when: '[STATUS] != 200', depends_on: [api-dwn]}
  - name: c
    probe: api
    when: '[STATUS] != 200'
    maintenance: [{start: '25:00', duration: 1h, weekdays: [someday], utc_offset: 'Mars'}]
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:4:57: invalid duration `soon`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/web.yaml:4:75: a rule cannot depend on itself",
                "rules/web.yaml:5:78: flapping window must be between 2 and 64 results",
                "rules/web.yaml:6:65: rule `d` depends on unknown rule `api-dwn`; did you mean `api-down`?",
                "rules/web.yaml:10:27: invalid start `25:00`; expected HH:MM, e.g. 02:00",
                "rules/web.yaml:10:61: invalid weekday `someday`; expected mon, tue, wed, thu, fri, sat or sun",
                "rules/web.yaml:10:83: invalid utc_offset `Mars`; expected e.g. +07:00 or -05:00",
            ],
        );
    }

    /// One wrong value hides nothing else of its item (nor of the items around it).
    #[test]
    fn a_bad_value_does_not_hide_the_other_fields() {
        let text = "\
probes:
  - name: api
    interval: 5 min
    labels: [not, a, map]
    http: {url: 'ftp://x/', method: 'G ET', headers: {'Bad Name': x}}
rules:
  - name: api-down
    probe: apii
    when: '[STAUS] != 200'
    after: many
    incident: {impact: huge, category: Bad, urgency: low}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:3:15: invalid duration `5 min`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/web.yaml:4:13: invalid type: sequence, expected a map",
                "rules/web.yaml:5:17: url `ftp://x/` must use http or https",
                "rules/web.yaml:5:37: invalid HTTP method `G ET`",
                "rules/web.yaml:5:55: invalid header name `Bad Name`",
                "rules/web.yaml:8:12: rule `api-down` names unknown probe `apii`; did you mean `api`?",
                "rules/web.yaml:9:12: unknown placeholder [STAUS]; did you mean [STATUS]?",
                "rules/web.yaml:10:12: invalid type: string \"many\", expected u32",
                "rules/web.yaml:11:24: unknown variant `huge`, expected one of `high`, `medium`, `low`",
                "rules/web.yaml:11:40: invalid category `Bad`; categories match [a-z][a-z0-9_]*",
            ],
        );
    }

    #[test]
    fn condition_errors_point_inside_the_when_scalar() {
        let text = "\
rules:
  - name: quoted
    probe: p
    when: '[STAUS] == 200'
  - name: plain
    probe: p
    when: 200 == [STAUS] && [CONNECTED]
  - name: double
    probe: p
    when: \"[CONNECTED]\\t&& [STAUS] == 1\"
  - name: folded
    probe: p
    when: >-
      [CONNECTED] &&
      [STAUS] == 200
probes:
  - {name: p, http: {url: 'http://x/'}}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:4:12: unknown placeholder [STAUS]; did you mean [STATUS]?",
                "rules/web.yaml:7:18: unknown placeholder [STAUS]; did you mean [STATUS]?",
                "rules/web.yaml:10:28: unknown placeholder [STAUS]; did you mean [STATUS]?",
                "rules/web.yaml:15:7: unknown placeholder [STAUS]; did you mean [STATUS]?",
            ],
        );
    }

    #[test]
    fn names_are_checked_across_files() {
        check(
            &[
                ("incidentd.yaml", ""),
                (
                    "rules/a.yaml",
                    "probes: [{name: p, http: {url: 'http://x/'}}]\nrules: [{name: r, probe: q, when: '[STATUS] != 200'}]\n",
                ),
                (
                    "rules/b.yaml",
                    "probes: [{name: p, http: {url: 'http://y/'}}]\nrules: [{name: r, probe: p, when: '[STATUS] != 200'}]\n",
                ),
                // An invalid probe still defines its name: no "unknown probe" on top.
                (
                    "rules/c.yaml",
                    "probes: [{name: q, http: {url: 'http://x/', bad: 1}}]\n",
                ),
            ],
            &[
                "rules/b.yaml:1:17: duplicate probe name `p`; first defined at rules/a.yaml:1:17",
                "rules/b.yaml:2:16: duplicate rule name `r`; first defined at rules/a.yaml:2:16",
                "rules/c.yaml:1:45: unknown field `bad`, expected one of `url`, `method`, `headers`, `body`, `tls_verify`, `follow_redirects`",
            ],
        );
    }

    #[test]
    fn rule_files_load_without_a_config_file() {
        let dir = dir_with(&[
            (
                "a.yaml",
                "probes: [{name: p, interval: 5s, http: {url: 'http://x/'}}]\n",
            ),
            (
                "b.yaml",
                "rules: [{name: r, probe: p, when: '[STATUS] != 200', after: 2}]\n",
            ),
        ]);
        let paths = [dir.path().join("a.yaml"), dir.path().join("b.yaml")];
        let (probes, rules) = load_rule_files(&paths).expect("valid rule files");
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].interval, Duration::from_secs(5));
        assert_eq!(rules.len(), 1);
        assert_eq!((rules[0].probe.as_str(), rules[0].after), ("p", 2));

        // Names are checked across the files given, and every problem comes back sorted.
        let errors =
            load_rule_files(&[dir.path().join("b.yaml"), dir.path().join("c.yaml")]).unwrap_err();
        let prefix = format!("{}/", dir.path().display());
        let got: Vec<String> = errors
            .0
            .iter()
            .map(|d| d.to_string().replace(&prefix, ""))
            .collect();
        assert_eq!(
            got,
            [
                "b.yaml:1:26: rule `r` names unknown probe `p`",
                "c.yaml:1:1: cannot read file: No such file or directory (os error 2)",
            ]
        );
    }

    #[test]
    fn unreadable_and_missing_files() {
        let dir = dir_with(&[("incidentd.yaml", ""), ("rules/web.yaml/keep", "")]);
        assert_eq!(
            load_dir(&dir, &env_with(&[])).unwrap_err(),
            ["rules/web.yaml:1:1: cannot read file: not a regular file (a directory)"]
        );
        let dir = dir_with(&[]);
        assert_eq!(
            load_dir(&dir, &env_with(&[])).unwrap_err(),
            ["incidentd.yaml:1:1: cannot read file: No such file or directory (os error 2)"]
        );
    }

    #[test]
    fn all_problems_of_all_files_come_back_sorted() {
        let config = "\
listen: localhost:80
auth:
  tokens:
    - {name: admin, token_env: NOPE, role: admin}
    - {name: root, token_env: T_ADMIN, role: boss}
sla: {warn_at: 1.5}
";
        let a = "\
probes:
  - name: api
    interval: 10
    http: {url: \"http://x/\"}
  - name: api
    tcp: {address: \"x:1\"}
  - name: db
    http: {url: \"http://x/\", metod: GET}
rules:
  - name: api-down
    probe: apii
    when: '[STAUS] != 200'
";
        let b = "\
rules:
  - name: api-down
    probe: web
    when: '[STATUS] != 200'
    after: 0
    incident: {category: Perf}
probes:
  - name: web
    interval: 50ms
    timeout: 1s
    labels: {__meta: x, ok: y}
";
        check(
            &[
                ("incidentd.yaml", config),
                ("rules/b.yaml", b),
                ("rules/a.yaml", a),
            ],
            &[
                "incidentd.yaml:1:9: invalid listen address `localhost:80`; expected IP:PORT, e.g. 127.0.0.1:9750",
                "incidentd.yaml:4:32: environment variable NOPE (token_env of token `admin`) is not set",
                "incidentd.yaml:5:46: unknown variant `boss`, expected one of `viewer`, `ingest`, `responder`, `admin`",
                "incidentd.yaml:6:16: warn_at must be a share of the target between 0 and 1 (exclusive), e.g. 0.75; got 1.5",
                "rules/a.yaml:3:15: invalid duration `10`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/a.yaml:5:11: duplicate probe name `api`; first defined at rules/a.yaml:2:11",
                "rules/a.yaml:8:30: unknown field `metod`, expected one of `url`, `method`, `headers`, `body`, `tls_verify`, `follow_redirects`",
                "rules/a.yaml:11:12: rule `api-down` names unknown probe `apii`; did you mean `api`?",
                "rules/a.yaml:12:12: unknown placeholder [STAUS]; did you mean [STATUS]?",
                "rules/b.yaml:2:11: duplicate rule name `api-down`; first defined at rules/a.yaml:10:11",
                "rules/b.yaml:5:12: after must be at least 1",
                "rules/b.yaml:6:26: invalid category `Perf`; categories match [a-z][a-z0-9_]*",
                "rules/b.yaml:8:5: probe `web` needs one of http, tcp, dns, tls, icmp, prometheus",
                "rules/b.yaml:9:15: interval must be at least 100ms, got 50ms",
                "rules/b.yaml:10:14: timeout 1s must not be longer than the interval 50ms",
                "rules/b.yaml:11:14: invalid label name `__meta`; label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with `__`",
            ],
        );
    }

    /// Not a timing assertion: the fast path is linear by construction (one parse per file,
    /// one `from_value` per item, hash lookups for names); this keeps it exercised at scale.
    #[test]
    fn ten_thousand_probes_and_rules_load() {
        const N: usize = 10_000;
        let mut text = String::from("probes:\n");
        for i in 0..N {
            text.push_str(&format!(
                "  - name: probe-{i}\n    interval: 30s\n    labels: {{team: t{i}}}\n    http: {{url: 'http://127.0.0.1:8080/{i}'}}\n"
            ));
        }
        text.push_str("rules:\n");
        for i in 0..N {
            text.push_str(&format!(
                "  - {{name: rule-{i}, probe: probe-{i}, when: '[STATUS] != 200', incident: {{impact: high}}}}\n"
            ));
        }
        let (_dir, config) = load_ok(&[("incidentd.yaml", ""), ("rules/big.yaml", &text)]);
        assert_eq!((config.probes.len(), config.rules.len()), (N, N));
        assert_eq!(config.rules[N - 1].probe, format!("probe-{}", N - 1));
    }

    #[test]
    fn the_workflow_for_rule_tests_is_the_one_the_server_loads_without_reading_secrets() {
        let (dir, config) = load_ok(&[
            ("incidentd.yaml", FULL_CONFIG),
            ("rules/web.yaml", WEB_RULES),
            ("extra/db.yaml", DB_RULES),
        ]);
        // FULL_CONFIG names T_ADMIN, T_INGEST and HOOK_SECRET: none is needed here.
        let workflow = load_workflow(&dir.path().join("incidentd.yaml")).expect("valid");
        assert_eq!(workflow, config.workflow);
        assert_ne!(workflow, WorkflowConfig::default());
    }

    // ----- reload ---------------------------------------------------------------------

    const RELOADED_RULES: &str = "\
probes:
  - name: api
    interval: 10s
    labels: {service: api}
    http: {url: 'http://127.0.0.1:8080/health', headers: {X-Probe: incidentd}}
  - {name: db, tcp: {address: 'db.example:5432'}}
rules:
  - name: api-down
    probe: api
    when: '[STATUS] != 200'
    after: 3
    maintenance: [{start: '02:00', duration: 1h}]
    incident: {title: 'api down', impact: high}
  - {name: db-down, probe: db, when: '![CONNECTED]', depends_on: [api-down]}
";

    #[test]
    fn a_reload_tells_unchanged_probes_and_rules_from_changed_ones() {
        let (_a, old) = load_ok(&rules(RELOADED_RULES));
        let (_b, same) = load_ok(&rules(RELOADED_RULES));
        assert_eq!(old.probes, same.probes);
        assert_eq!(old.rules, same.rules);
        let changed = |from: &str, to: &str| {
            assert!(RELOADED_RULES.contains(from), "{from}");
            let (_dir, new) = load_ok(&rules(&RELOADED_RULES.replacen(from, to, 1)));
            let probes: Vec<&str> = (old.probes.iter().zip(&new.probes))
                .filter(|(old, new)| old != new)
                .map(|(_, new)| new.name.as_str())
                .collect();
            let rules: Vec<&str> = (old.rules.iter().zip(&new.rules))
                .filter(|(old, new)| old != new)
                .map(|(_, new)| new.name.as_str())
                .collect();
            (probes.join(","), rules.join(","))
        };
        let none = (String::new(), String::new());
        let probe = |name: &str| (name.to_owned(), String::new());
        let rule = |name: &str| (String::new(), name.to_owned());
        assert_eq!(changed("interval: 10s", "interval: 10000ms"), none);
        assert_eq!(changed("interval: 10s", "interval: 20s"), probe("api"));
        assert_eq!(
            changed("X-Probe: incidentd", "X-Probe: other"),
            probe("api")
        );
        assert_eq!(changed("{service: api}", "{service: web}"), probe("api"));
        assert_eq!(changed("db.example:5432", "db.example:5433"), probe("db"));
        // The condition compares by its text, even when only its spacing changed.
        assert_eq!(
            changed("'[STATUS] != 200'", "'[STATUS]!=200'"),
            rule("api-down")
        );
        assert_eq!(changed("after: 3", "after: 4"), rule("api-down"));
        assert_eq!(changed("duration: 1h", "duration: 2h"), rule("api-down"));
        assert_eq!(changed("impact: high", "impact: low"), rule("api-down"));
        assert_eq!(
            changed("depends_on: [api-down]", "depends_on: []"),
            rule("db-down")
        );
    }

    #[test]
    fn a_storage_path_relative_to_another_config_directory_needs_a_restart() {
        let config = "listen: 127.0.0.1:9750\nstorage: {path: data/x.redb}\n";
        let (_a, old) = load_ok(&[("incidentd.yaml", config)]);
        let (_b, moved) = load_ok(&[("incidentd.yaml", config)]);
        assert_eq!(old.restart_required(&moved), ["storage"]);
        assert_eq!(old.restart_required(&old.clone()), Vec::<&str>::new());
    }

    #[test]
    fn an_error_deep_in_a_large_file_has_its_position() {
        const N: usize = 10_000;
        let mut text = String::from("probes:\n");
        for i in 0..N {
            let interval = if i == N - 2 { "5 min" } else { "30s" };
            text.push_str(&format!(
                "  - name: probe-{i}\n    interval: {interval}\n    http: {{url: 'http://127.0.0.1:8080/{i}'}}\n"
            ));
        }
        text.push_str("rules:\n");
        for i in 0..N {
            let probe = if i == N - 1 { "probe-x" } else { "probe-1" };
            text.push_str(&format!(
                "- {{name: rule-{i}, probe: {probe}, when: '[STATUS] != 200'}}\n"
            ));
        }
        check(
            &[("incidentd.yaml", ""), ("rules/big.yaml", &text)],
            &[
                "rules/big.yaml:29997:15: invalid duration `5 min`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/big.yaml:40002:28: rule `rule-9999` names unknown probe `probe-x`; did you mean `probe-0`?",
            ],
        );
    }

    #[test]
    fn lists_that_cannot_be_cut_into_items_load_as_a_whole_with_the_same_positions() {
        // An alias to another item's anchor: that item's lines alone do not parse. Read whole,
        // the alias is its anchor's node, and is found there.
        let aliased = "\
probes:
  - &web {name: web, interval: 5 min, http: {url: 'http://x/'}}
  - *web
rules:
  - {name: r, probe: web, when: '[STAUS] != 200'}
";
        check(
            &rules(aliased),
            &[
                "rules/web.yaml:2:17: duplicate probe name `web`; first defined at rules/web.yaml:2:17",
                "rules/web.yaml:2:32: invalid duration `5 min`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/web.yaml:2:32: invalid duration `5 min`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/web.yaml:5:34: unknown placeholder [STAUS]; did you mean [STATUS]?",
            ],
        );
        // A flow list is left in the skeleton, the block list beside it is cut.
        let flow = "\
probes: [{name: web, interval: 5 min, http: {url: 'http://x/'}}]
rules:
  - {name: r, probe: web, when: '[STAUS] != 200'}
";
        check(
            &rules(flow),
            &[
                "rules/web.yaml:1:32: invalid duration `5 min`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
                "rules/web.yaml:3:34: unknown placeholder [STAUS]; did you mean [STATUS]?",
            ],
        );
    }

    // ----- small pieces -----------------------------------------------------------------

    #[test]
    fn secrets_decode_with_or_without_padding() {
        assert_eq!(decode_secrets(&secret(32)), Ok(vec![vec![7u8; 32]]));
        let unpadded = secret(32).trim_end_matches('=').to_owned();
        assert_eq!(decode_secrets(&unpadded), Ok(vec![vec![7u8; 32]]));
        assert_eq!(
            decode_secrets(&secret(65)),
            Err(vec![
                "the secret is 65 bytes long; a key is 24 to 64 bytes".to_owned()
            ])
        );
        assert_eq!(decode_secrets(""), Ok(vec![]));
    }

    #[test]
    fn scalars_in_string_fields_read_as_written() {
        let (_dir, config) = load_ok(&rules(
            "probes:\n  - name: 123\n    labels: {port: 8080, tls: true}\n    http: {url: 'http://x/'}\nrules:\n  - {name: 7, probe: 123, when: true}\n",
        ));
        let labels: Vec<_> = config.probes[0].labels.values().cloned().collect();
        assert_eq!(
            (config.probes[0].name.as_str(), labels),
            ("123", vec!["8080".to_owned(), "true".to_owned()])
        );
        assert_eq!(
            (config.rules[0].name.as_str(), config.rules[0].when.source()),
            ("7", "true")
        );
    }

    #[test]
    fn tagged_items_and_byte_order_marks() {
        check(
            &[
                ("incidentd.yaml", "\u{feff}listen: bad\n"),
                ("rules/web.yaml", "probes:\n  - !probe {name: a, tcp: {}}\n"),
            ],
            &[
                "incidentd.yaml:1:9: invalid listen address `bad`; expected IP:PORT, e.g. 127.0.0.1:9750",
                "rules/web.yaml:2:27: missing field `address`",
            ],
        );
    }

    #[test]
    fn an_empty_secret_list_is_reported_as_empty() {
        check_env(
            &[(
                "incidentd.yaml",
                "webhooks: [{name: w, url: 'http://x/', secret_env: W}]\n",
            )],
            &[("W", "  \n")],
            &["incidentd.yaml:1:52: environment variable W (secret_env of webhook `w`) is empty"],
        );
    }

    #[test]
    fn names_and_suggestions() {
        assert!(is_probe_name("a-b_c.9") && !is_probe_name("") && !is_probe_name("a/b"));
        assert!(is_label_name("_x1") && !is_label_name("1x") && !is_label_name("__x"));
        assert!(!is_label_name("") && !is_label_name("a-b"));
        assert!(is_category("perf_2") && !is_category("Perf") && !is_category("2x"));
        let known = ["api", "checkout-api", "db"];
        assert_eq!(closest("checkout-apx", &known), Some("checkout-api"));
        assert_eq!(closest("dc", &known), Some("db"));
        assert_eq!(closest("web", &known), None);
        // Edits are counted in characters, not bytes: one edit here, two in UTF-8.
        assert_eq!(closest("ééé", &["éée"]), Some("éée"));
    }

    // ----- probe types --------------------------------------------------------------------

    const EVERY_PROBE_TYPE: &str = "\
probes:
  - name: web
    http:
      url: https://127.0.0.1:8443/login
      method: POST
      headers: {Content-Type: application/json}
      body: '{\"user\": \"probe\"}'
      tls_verify: false
      follow_redirects: true
  - {name: web-default, http: {url: 'http://x/'}}
  - {name: smtp, tcp: {address: 'mail.example:25', send: \"EHLO incidentd\\r\\n\", expect: '250'}}
  - {name: port, tcp: {address: '[::1]:5432'}}
  - {name: cert, tls: {address: '10.0.0.1:443', server_name: api.example, verify: false}}
  - {name: cert-default, tls: {address: 'api.example:443'}}
  - {name: resolver, dns: {name: example.com, server: 1.1.1.1, record: aaaa}}
  - {name: resolver-port, dns: {name: example.com., server: '127.0.0.1:5353'}}
  - {name: resolver-v6, dns: {name: example.com, server: '::1'}}
  - {name: ping, icmp: {host: 127.0.0.1}}
  - {name: ping-name, icmp: {host: gateway.local}}
  - {name: up, prometheus: {url: 'http://127.0.0.1:9090', query: 'up == 0'}}
";

    #[test]
    fn loads_every_probe_type() {
        let (_dir, config) = load_ok(&rules(EVERY_PROBE_TYPE));
        let targets: BTreeMap<&str, &ProbeTarget> = config
            .probes
            .iter()
            .map(|probe| (probe.name.as_str(), &probe.target))
            .collect();
        let ProbeTarget::Http(web) = targets["web"] else {
            panic!("{:?}", targets["web"])
        };
        assert_eq!(web.method, reqwest::Method::POST);
        assert_eq!(web.body.as_deref(), Some(r#"{"user": "probe"}"#));
        assert!(!web.tls_verify && web.follow_redirects);
        let ProbeTarget::Http(default) = targets["web-default"] else {
            panic!()
        };
        assert!(default.tls_verify && !default.follow_redirects && default.body.is_none());

        let ProbeTarget::Tcp(smtp) = targets["smtp"] else {
            panic!()
        };
        assert_eq!(smtp.address, "mail.example:25");
        assert_eq!(smtp.send.as_deref(), Some("EHLO incidentd\r\n"));
        assert_eq!(smtp.expect.as_deref(), Some("250"));
        let ProbeTarget::Tcp(port) = targets["port"] else {
            panic!()
        };
        assert_eq!(
            (port.address.as_str(), &port.send, &port.expect),
            ("[::1]:5432", &None, &None)
        );

        let ProbeTarget::Tls(cert) = targets["cert"] else {
            panic!()
        };
        assert_eq!(cert.server_name.as_deref(), Some("api.example"));
        assert!(!cert.verify);
        let ProbeTarget::Tls(default) = targets["cert-default"] else {
            panic!()
        };
        assert_eq!(
            (default.server_name.as_deref(), default.verify),
            (None, true)
        );

        let dns = |name: &str| match targets[name] {
            ProbeTarget::Dns(dns) => (dns.name.as_str(), dns.server, dns.record.as_str()),
            other => panic!("{other:?}"),
        };
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(dns("resolver"), ("example.com", addr("1.1.1.1:53"), "AAAA"));
        assert_eq!(
            dns("resolver-port"),
            ("example.com.", addr("127.0.0.1:5353"), "A")
        );
        assert_eq!(dns("resolver-v6").1, addr("[::1]:53"));

        let ProbeTarget::Icmp(ping) = targets["ping-name"] else {
            panic!()
        };
        assert_eq!(ping.host, "gateway.local");
        let ProbeTarget::Prometheus(up) = targets["up"] else {
            panic!()
        };
        assert_eq!(
            (up.url.as_str(), up.query.as_str()),
            ("http://127.0.0.1:9090/", "up == 0")
        );
        assert_eq!(config.probe_concurrency, 256);
    }

    #[test]
    fn http_probe_errors() {
        let text = "\
probes:
  - {name: a, http: {url: 'http://x/', body: [1], tls_verify: 'yes', follow_redirects: 3}}
  - {name: b, http: {method: GET}}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:2:46: invalid type: sequence, expected a string",
                "rules/web.yaml:2:63: invalid type: string \"yes\", expected a boolean",
                "rules/web.yaml:2:88: invalid type: integer `3`, expected a boolean",
                "rules/web.yaml:3:21: missing field `url`",
            ],
        );
    }

    #[test]
    fn tcp_and_tls_probe_errors() {
        let text = "\
probes:
  - {name: a, tcp: ~}
  - {name: b, tcp: {address: 'db.example'}}
  - {name: c, tcp: {address: 'db.example:0'}}
  - {name: d, tcp: {address: '::1:80', expect: ''}}
  - {name: e, tcp: {address: ':80', sent: x}}
  - {name: f, tcp: {address: 'a b:80'}}
  - {name: g, tls: ~}
  - {name: h, tls: {address: 'x:+443'}}
  - {name: i, tls: {address: 'x:443', server_name: 'not a name', verify: maybe}}
  - {name: j, tls: {address: '[::1]:443', server_name: '::1'}}
  - {name: k, tls: {address: 'x-:443'}}
  - {name: l, tls: {address: '1.2.3:443'}}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:2:20: a tcp probe needs at least an `address`",
                "rules/web.yaml:3:30: invalid address `db.example`; expected HOST:PORT, e.g. db.example:5432 or [::1]:5432",
                "rules/web.yaml:4:30: invalid address `db.example:0`; expected HOST:PORT, e.g. db.example:5432 or [::1]:5432",
                "rules/web.yaml:5:30: invalid address `::1:80`; expected HOST:PORT, e.g. db.example:5432 or [::1]:5432",
                "rules/web.yaml:5:48: expect must not be empty; leave it out to only connect",
                "rules/web.yaml:6:37: unknown field `sent`, expected one of `address`, `send`, `expect`",
                "rules/web.yaml:7:30: invalid address `a b:80`; expected HOST:PORT, e.g. db.example:5432 or [::1]:5432",
                "rules/web.yaml:8:20: a tls probe needs at least an `address`",
                "rules/web.yaml:9:30: invalid address `x:+443`; expected HOST:PORT, e.g. db.example:5432 or [::1]:5432",
                "rules/web.yaml:10:52: invalid server name `not a name`; expected a DNS name or an IP address",
                "rules/web.yaml:10:74: invalid type: string \"maybe\", expected a boolean",
                "rules/web.yaml:12:30: the host `x-` is not a valid TLS server name; set `server_name`",
                "rules/web.yaml:13:30: the host `1.2.3` is not a valid TLS server name; set `server_name`",
            ],
        );
    }

    #[test]
    fn a_tcp_expectation_longer_than_what_is_read_is_refused() {
        let text = format!(
            "probes:\n  - {{name: a, tcp: {{address: 'x:1', expect: '{}'}}}}\n",
            "x".repeat(BODY_LIMIT + 1)
        );
        check(
            &rules(&text),
            &["rules/web.yaml:2:45: expect must be at most 65536 bytes, got 65537"],
        );
    }

    #[test]
    fn dns_probe_errors() {
        let text = "\
probes:
  - {name: a, dns: {}}
  - {name: b, dns: {name: 'bad..name', server: 'dns.google', record: MXX}}
  - {name: c, dns: {name: '', server: '1.1.1.1:99999'}}
  - {name: d, dns: {name: example.com, server: 1.1.1.1, type: A}}
  - {name: e, dns: {name: 'a b', server: 1.1.1.1}}
  - {name: f, dns: {name: '.', server: 1.1.1.1, record: ns}}
  - {name: g, dns: {name: '..', server: 1.1.1.1}}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:2:20: missing field `name`",
                "rules/web.yaml:2:20: missing field `server`",
                "rules/web.yaml:3:27: invalid DNS name `bad..name`: it has an empty label",
                "rules/web.yaml:3:48: invalid DNS server `dns.google`; expected IP or IP:PORT, e.g. 1.1.1.1 or 127.0.0.1:5353",
                "rules/web.yaml:3:70: unknown DNS record type `MXX`; expected one of A, AAAA, CAA, CNAME, MX, NS, PTR, SOA, SRV, TXT",
                "rules/web.yaml:4:27: invalid DNS name ``: the name is empty",
                "rules/web.yaml:4:39: invalid DNS server `1.1.1.1:99999`; expected IP or IP:PORT, e.g. 1.1.1.1 or 127.0.0.1:5353",
                "rules/web.yaml:5:57: unknown field `type`, expected one of `name`, `server`, `record`",
                "rules/web.yaml:6:27: invalid DNS name `a b`: it contains whitespace",
                "rules/web.yaml:8:27: invalid DNS name `..`: it has an empty label",
            ],
        );
    }

    #[test]
    fn icmp_and_prometheus_probe_errors() {
        let text = "\
probes:
  - {name: a, icmp: ~}
  - {name: b, icmp: {host: ''}}
  - {name: c, icmp: {host: x, count: 3}}
  - {name: d, prometheus: {url: 'http://x:9090'}}
  - {name: e, prometheus: {url: 'ftp://x/', query: '  '}}
  - {name: f, prometheus: {query: up, step: 1m}}
";
        check(
            &rules(text),
            &[
                "rules/web.yaml:2:21: an icmp probe needs at least a `host`",
                "rules/web.yaml:3:28: invalid host ``; expected a host name or an IP address",
                "rules/web.yaml:4:31: unknown field `count`, expected `host`",
                "rules/web.yaml:5:27: missing field `query`",
                "rules/web.yaml:6:33: url `ftp://x/` must use http or https",
                "rules/web.yaml:6:52: query must not be empty",
                "rules/web.yaml:7:39: unknown field `step`, expected `url` or `query`",
            ],
        );
    }

    #[test]
    fn icmp_probes_need_the_host_to_allow_icmp() {
        let text = "\
probes:
  - {name: a, icmp: {host: 127.0.0.1}}
  - name: b
    icmp: {host: ''}
  - {name: c, tcp: {address: 'x:1'}}
";
        let dir = dir_with(&rules(text));
        let asked = std::cell::Cell::new(0);
        let denied = || {
            asked.set(asked.get() + 1);
            Err(IcmpUnavailable { gid: 1234 })
        };
        let errors = load_with(&dir.path().join("incidentd.yaml"), &env_with(&[]), &denied)
            .unwrap_err()
            .0
            .iter()
            .map(|d| {
                d.to_string()
                    .replace(&format!("{}/", dir.path().display()), "")
            })
            .collect::<Vec<_>>();
        let hint = "icmp probes need unprivileged ICMP sockets: set sysctl net.ipv4.ping_group_range to include group 1234 (e.g. `sysctl -w net.ipv4.ping_group_range='0 2147483647'`)";
        assert_eq!(
            errors,
            [
                format!("rules/web.yaml:2:15: {hint}"),
                format!("rules/web.yaml:4:5: {hint}"),
                "rules/web.yaml:4:18: invalid host ``; expected a host name or an IP address"
                    .to_owned(),
            ]
        );
        assert_eq!(asked.get(), 1, "the host is asked once");

        // Without icmp probes the host is never asked.
        let dir = dir_with(&rules("probes: [{name: c, tcp: {address: 'x:1'}}]\n"));
        let asked = std::cell::Cell::new(0);
        let counting = || {
            asked.set(asked.get() + 1);
            Err(IcmpUnavailable { gid: 0 })
        };
        assert!(
            load_with(
                &dir.path().join("incidentd.yaml"),
                &env_with(&[]),
                &counting
            )
            .is_ok()
        );
        assert_eq!(asked.get(), 0);
    }

    #[test]
    fn probe_duration_histogram() {
        let (_dir, config) = load_ok(&[("incidentd.yaml", "listen: 127.0.0.1:0\n")]);
        assert_eq!(
            config.probe_duration_histogram,
            ProbeDurationHistogram::Aggregate
        );
        let (_dir, config) =
            load_ok(&[("incidentd.yaml", "probe_duration_histogram: per_probe\n")]);
        assert_eq!(
            config.probe_duration_histogram,
            ProbeDurationHistogram::PerProbe
        );
        check(
            &[("incidentd.yaml", "probe_duration_histogram: both\n")],
            &[
                "incidentd.yaml:1:27: probe_duration_histogram must be `aggregate` or `per_probe`, not `both`",
            ],
        );
    }

    #[test]
    fn probe_concurrency() {
        let (_dir, config) = load_ok(&[("incidentd.yaml", "probe_concurrency: 8\n")]);
        assert_eq!(config.probe_concurrency, 8);
        check(
            &[("incidentd.yaml", "probe_concurrency: 0\n")],
            &["incidentd.yaml:1:20: probe_concurrency must be at least 1"],
        );
        check(
            &[("incidentd.yaml", "probe_concurrency: many\n")],
            &["incidentd.yaml:1:20: invalid type: string \"many\", expected u32"],
        );
    }

    #[test]
    fn http_server_settings() {
        let (_dir, config) = load_ok(&[("incidentd.yaml", "listen: 127.0.0.1:0\n")]);
        assert_eq!(config.http, HttpConfig::default());
        let (_dir, config) = load_ok(&[(
            "incidentd.yaml",
            "http: {max_connections: 8, header_read_timeout: 1s, idle_timeout: 2m}\n",
        )]);
        assert_eq!(
            config.http,
            HttpConfig {
                max_connections: 8,
                header_read_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(120),
            }
        );
        check(
            &[(
                "incidentd.yaml",
                "http:\n  max_connections: 0\n  header_read_timeout: 0s\n  idle_timeout: soon\n",
            )],
            &[
                "incidentd.yaml:2:20: max_connections must be at least 1",
                "incidentd.yaml:3:24: header_read_timeout must be greater than 0",
                "incidentd.yaml:4:17: invalid duration `soon`; expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
            ],
        );
        check(
            &[("incidentd.yaml", "http: {read_timeout: 1s}\n")],
            &[
                "incidentd.yaml:1:8: unknown field `read_timeout`, expected one of `max_connections`, `header_read_timeout`, `idle_timeout`",
            ],
        );
    }
}
