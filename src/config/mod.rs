//! Configuration: `incidentd.yaml` and the rule files it names, parsed strictly into
//! validated types. This is the only module that parses YAML (serde_yaml is archived;
//! keeping it here means a fork can replace it in one place).
//!
//! Loading never stops at the first mistake: every problem in every file is collected as a
//! [`Diagnostic`] with its `FILE:LINE:COL`, so `incidentd check` can print them all.

mod alerts;
mod document;
mod limits;
mod load;
mod locate;
mod mail;
mod rule_test_file;
mod sla;
mod status_page;
mod storage;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::condition::Condition;
use crate::domain::incident::Incident;
use crate::domain::incident::Kind;
use crate::domain::policy::WorkflowConfig;
use crate::domain::priority::{Level, Priority};

pub use load::{load, load_rule_files, load_rule_text, load_text, load_with, load_workflow};
pub use mail::{MailConfig, check_smtp_url};
pub use rule_test_file::{
    CertificateExpiry, DEFAULT_TEST_START, Expectation, ExpectedEvent, MAX_STEPS, ProbeResult,
    ProbeSeries, RuleTest, RuleTestFile, load_rule_test,
};
pub use status_page::{SignalServices, StatusPageConfig, StatusService};
pub use storage::{PostgresConfig, check_postgres_url};

/// One configuration problem, located in its file. Displays as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Every problem found while loading; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} configuration error(s):\n{}", .0.len(), render(.0))]
pub struct ConfigErrors(pub Vec<Diagnostic>);

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The validated configuration: `incidentd.yaml` plus every probe and rule from the rule files.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub external_url: Option<String>,
    /// The redb file, resolved against the config file's directory (unused with
    /// `postgres`).
    pub storage_path: PathBuf,
    /// `storage.postgres`: the store is in PostgreSQL, shared by replicas.
    pub postgres: Option<PostgresConfig>,
    /// The rule files the globs matched, in load order.
    pub rule_files: Vec<PathBuf>,
    pub auth: AuthConfig,
    pub webhooks: Vec<WebhookConfig>,
    /// How many probe runs may be in flight at once, over all probes (≥ 1).
    pub probe_concurrency: usize,
    /// How `incidentd_probe_duration_seconds` is labelled (fixed at start).
    pub probe_duration_histogram: crate::metrics::ProbeDurationHistogram,
    /// Shared, not copied, by the probes' tasks, the board and the engine's rules.
    pub probes: Vec<Arc<ProbeConfig>>,
    pub rules: Vec<Arc<RuleConfig>>,
    /// Categories, priority matrix, escalation, closure and SLA policies.
    pub workflow: WorkflowConfig,
    /// The HTTP server's connection limit and timeouts (fixed at start).
    pub http: HttpConfig,
    /// `alerts:`: how alerts from Alertmanager, pushes and events become incidents.
    pub alerts: crate::domain::alert::AlertMapping,
    /// `status_page:`: the public page's title, time zone and services.
    pub status_page: StatusPageConfig,
    /// `mail:`: the SMTP relay for subscriber mail; `None`: email subscriptions are off.
    pub mail: Option<MailConfig>,
}

/// `http`: what a connection may hold of the server (see `app::http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Connections served at once; more wait in the listen backlog (≥ 1). Lowered at start
    /// if the open-files limit cannot hold them.
    pub max_connections: usize,
    /// How long a client has to send a request's head, from the moment the server waits for
    /// it: a new connection, or a kept-alive one after its previous answer (> 0).
    pub header_read_timeout: std::time::Duration,
    /// A connection on which nothing is read or written for this long is closed, whatever
    /// it is doing (a stalled body, say) (> 0).
    pub idle_timeout: std::time::Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 1024,
            header_read_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
        }
    }
}

impl Config {
    /// The keys whose change between this configuration and `new` takes effect only when
    /// incidentd restarts, in the file's order: `listen` (the socket is bound once) and
    /// `storage` (the store is opened once, and locked). A reload applies everything else
    /// and reports these. A `storage.path` written the same but relative to a config file
    /// in another directory is another store, hence a change.
    pub fn restart_required(&self, new: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.listen != new.listen {
            keys.push("listen");
        }
        if self.storage_path != new.storage_path || self.postgres != new.postgres {
            keys.push("storage");
        }
        if self.probe_duration_histogram != new.probe_duration_histogram {
            keys.push("probe_duration_histogram");
        }
        if self.http != new.http {
            keys.push("http");
        }
        keys
    }
}

/// Why this process cannot send ICMP echo requests: neither an unprivileged ICMP socket
/// (its groups are outside `net.ipv4.ping_group_range`) nor a raw one (no `CAP_NET_RAW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpUnavailable {
    /// The process's effective group id, the one the sysctl must include.
    pub gid: u32,
}

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
}

#[derive(Clone)]
pub struct TokenConfig {
    pub name: String,
    /// The secret itself, read from the environment variable `token_env` names.
    pub token: String,
    pub role: Role,
    pub security: bool,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .field("security", &self.security)
            .finish()
    }
}

/// What a token may do; each role includes the ones before it except `ingest`, which
/// may only push alerts (and read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Ingest,
    Responder,
    Admin,
}

#[derive(Clone, PartialEq)]
pub struct WebhookConfig {
    pub name: String,
    pub url: reqwest::Url,
    /// Decoded HMAC keys (the part after `whsec_`, base64-decoded). Several while a secret
    /// rotates: each request carries one signature per key.
    pub secrets: Vec<Vec<u8>>,
    /// The event types this consumer receives; `None` means all.
    pub events: Option<Vec<String>>,
    pub timeout: Duration,
    /// May receive the details of restricted incidents (a restricted category, such as
    /// `data_breach`); other consumers get them redacted. Default false.
    pub security: bool,
    /// Only incidents of this priority or more urgent (`P2`: P1 and P2); `None`: all.
    pub min_priority: Option<Priority>,
    /// Only incidents of these kinds; `None`: all.
    pub kinds: Option<Vec<Kind>>,
    /// Only incidents of these categories; `None`: all.
    pub categories: Option<Vec<String>>,
    /// Only incidents of these services; `None`: all (incidents without a service too).
    pub services: Option<Vec<String>>,
    /// How long after its event an undelivered entry is still retried; then it is a dead
    /// letter. Default 24h.
    pub max_age: Duration,
    /// The waits between attempts (the last repeats), before jitter. Default Svix's: 5s,
    /// 5m, 30m, 2h, 5h, 10h.
    pub retry_schedule: Vec<Duration>,
    /// How long the delivery log and delivered events (for replay) are kept. Default 7d.
    pub retention: Duration,
}

/// Svix's schedule after the first attempt; the last wait repeats until `max_age`.
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
];
pub const DEFAULT_WEBHOOK_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_WEBHOOK_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("events", &self.events)
            .field("timeout", &self.timeout)
            .field("security", &self.security)
            .field("min_priority", &self.min_priority)
            .field("kinds", &self.kinds)
            .field("categories", &self.categories)
            .field("services", &self.services)
            .field("max_age", &self.max_age)
            .field("retry_schedule", &self.retry_schedule)
            .field("retention", &self.retention)
            .finish()
    }
}

impl WebhookConfig {
    pub fn wants(&self, event_type: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.iter().any(|e| e == event_type))
    }

    /// Whether the consumer's filters let this incident's events through (as the incident
    /// is after the change: a priority raised to P1 passes `min_priority: P1` from then on).
    pub fn accepts(&self, incident: &Incident) -> bool {
        self.min_priority.is_none_or(|min| incident.priority <= min)
            && self
                .kinds
                .as_ref()
                .is_none_or(|kinds| kinds.contains(&incident.kind))
            && self
                .categories
                .as_ref()
                .is_none_or(|categories| categories.contains(&incident.category))
            && self.services.as_ref().is_none_or(|services| {
                incident
                    .service
                    .as_ref()
                    .is_some_and(|service| services.contains(service))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    pub name: String,
    /// Start-to-start.
    pub interval: Duration,
    /// Start-to-start while one of the probe's rules is confirming a change: between its
    /// first symptomatic result and `after`, or its first clean result and `recover_after`
    /// (Uptime Kuma's retry interval). More than 0 and at most `interval`; by default the
    /// smaller of `interval` and 1s.
    pub confirm_interval: Duration,
    pub timeout: Duration,
    pub labels: BTreeMap<String, String>,
    pub target: ProbeTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    Http(HttpProbe),
    Tcp(TcpProbe),
    Tls(TlsProbe),
    Dns(DnsProbe),
    Icmp(IcmpProbe),
    Prometheus(PrometheusProbe),
}

impl ProbeTarget {
    /// The probe type as written in the config (`http`, `tcp`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeTarget::Http(_) => "http",
            ProbeTarget::Tcp(_) => "tcp",
            ProbeTarget::Tls(_) => "tls",
            ProbeTarget::Dns(_) => "dns",
            ProbeTarget::Icmp(_) => "icmp",
            ProbeTarget::Prometheus(_) => "prometheus",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    pub url: reqwest::Url,
    pub method: reqwest::Method,
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as is.
    pub body: Option<String>,
    /// Verify the server's certificate (default true). Off for self-signed targets.
    pub tls_verify: bool,
    /// Follow redirects (default false: a 301 is a result, as in Gatus' `ignore-redirect`
    /// inverted; blackbox follows by default, we prefer to show what the server said).
    pub follow_redirects: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProbe {
    /// `host:port` (`[v6]:port`), checked by [`split_host_port`] at load.
    pub address: String,
    /// Bytes to send once connected.
    pub send: Option<String>,
    /// A substring the answer must contain; the probe reads until it appears, the
    /// connection closes, [`crate::domain::observation::BODY_LIMIT`] bytes, or the timeout.
    pub expect: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProbe {
    /// `host:port` (`[v6]:port`), checked by [`split_host_port`] at load.
    pub address: String,
    /// SNI and the name to verify; default: the host of `address`.
    pub server_name: Option<String>,
    /// Verify the chain against the system roots (default true).
    pub verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsProbe {
    /// The name to query.
    pub name: String,
    /// The server to ask, `ip` or `ip:port` (port 53 by default).
    pub server: std::net::SocketAddr,
    /// One of [`DNS_RECORD_TYPES`], upper case (default `A`).
    pub record: String,
}

/// The record types a dns probe may ask for.
pub const DNS_RECORD_TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT",
];

/// `host:port` → host (without the brackets of an IPv6 address) and port (≥ 1). `None` when
/// the port is missing or invalid, the host is empty, or a bare IPv6 address has no brackets
/// (`::1:80` is ambiguous).
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = match address.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest.split_once("]:")?;
            host.parse::<std::net::Ipv6Addr>().ok()?;
            (host, port)
        }
        None => {
            let (host, port) = address.rsplit_once(':')?;
            if host.contains(':') {
                return None;
            }
            (host, port)
        }
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|port| *port != 0)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    (!host.is_empty() && host.chars().all(plain)).then_some((host, port))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpProbe {
    /// A host name or an IP address.
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusProbe {
    /// The Prometheus server, e.g. `http://127.0.0.1:9090`.
    pub url: reqwest::Url,
    /// An instant PromQL query; each series it returns is its own subject.
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    pub name: String,
    pub probe: String,
    pub when: Condition,
    /// Consecutive symptomatic results before the rule fires (≥ 1).
    pub after: u32,
    /// Consecutive clean results before it recovers (≥ 1).
    pub recover_after: u32,
    /// The symptom must also have lasted this long before the rule fires (`for:`).
    pub for_: Option<Duration>,
    /// Resolve the incident when the rule recovers (default true); when false, a person
    /// resolves it and the recovery only verifies.
    pub auto_resolve: bool,
    /// Rules whose open incident suppresses this one's (`depends_on:`): the parent is the
    /// cause, the child a consequence.
    pub depends_on: Vec<String>,
    /// Flap detection: this many state changes within the last `flapping_window` results
    /// mark the subject flapping (defaults 4 in 20).
    pub flapping_changes: u32,
    pub flapping_window: u32,
    /// Recurring windows in which the rule still measures but opens nothing.
    pub maintenance: Vec<MaintenanceWindow>,
    pub incident: IncidentTemplate,
}

/// A recurring maintenance window: from `start` (local time in `timezone`) for `duration`,
/// on the given weekdays (every day when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub start: chrono::NaiveTime,
    pub duration: Duration,
    pub weekdays: Vec<chrono::Weekday>,
    /// A fixed UTC offset in seconds east (IANA zones come with the SLA calendars).
    pub utc_offset_seconds: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentTemplate {
    /// May hold `{{ status }}`, `{{ probe }}`, `{{ rule }}`, `{{ response_time }}`,
    /// `{{ error }}`; `None` gives "<rule> on <probe>".
    pub title: Option<String>,
    pub category: String,
    pub impact: Level,
    pub urgency: Level,
}

/// Every event type incidentd emits (the contract's list).
pub const EVENT_TYPES: &[&str] = &[
    "incident.opened",
    "incident.acknowledged",
    "incident.escalated",
    "incident.priority_changed",
    "incident.note_added",
    "incident.on_hold",
    "incident.resumed",
    "incident.resolved",
    "incident.reopened",
    "incident.closed",
    "incident.sla_warning",
    "incident.sla_breached",
    "incident.call_scheduled",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, storage: &str) -> Config {
        Config {
            path: PathBuf::from("incidentd.yaml"),
            listen: listen.parse().expect("an address"),
            external_url: None,
            storage_path: PathBuf::from(storage),
            postgres: None,
            rule_files: Vec::new(),
            auth: AuthConfig::default(),
            webhooks: Vec::new(),
            probe_concurrency: 256,
            probe_duration_histogram: Default::default(),
            probes: Vec::new(),
            rules: Vec::new(),
            workflow: WorkflowConfig::default(),
            http: HttpConfig::default(),
            alerts: Default::default(),
            status_page: Default::default(),
            mail: None,
        }
    }

    #[test]
    fn only_listen_and_storage_need_a_restart() {
        let old = config("127.0.0.1:9750", "data/incidentd.redb");
        let mut reloadable = old.clone();
        reloadable.external_url = Some("https://incidents.example".to_owned());
        reloadable.probe_concurrency = 8;
        reloadable.rule_files = vec![PathBuf::from("rules/new.yaml")];
        reloadable.workflow.closure_quiet_period = Duration::ZERO;
        assert_eq!(old.restart_required(&reloadable), Vec::<&str>::new());
        let check = |listen, storage, expected: &[&str]| {
            assert_eq!(old.restart_required(&config(listen, storage)), expected);
        };
        check("127.0.0.1:9750", "data/incidentd.redb", &[]);
        check("127.0.0.1:9751", "data/incidentd.redb", &["listen"]);
        check("0.0.0.0:9750", "data/incidentd.redb", &["listen"]);
        check("127.0.0.1:9750", "data/other.redb", &["storage"]);
        check(
            "[::1]:9750",
            "/var/lib/incidentd.redb",
            &["listen", "storage"],
        );
    }

    #[test]
    fn host_and_port() {
        assert_eq!(
            split_host_port("db.example:5432"),
            Some(("db.example", 5432))
        );
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", 80)));
        assert_eq!(split_host_port("[::1]:443"), Some(("::1", 443)));
        for bad in [
            "", "db", "db:", ":80", "db:0", "db:65536", "db:+1", "::1:80", "[::1]", "[x]:1",
            "a b:1", "db:80 ",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad:?}");
        }
    }
}
