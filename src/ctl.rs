//! `incidentd ctl`: the command-line client of the HTTP API.
//!
//! Three layers, kept apart so the first and the last are pure and unit-tested:
//! - [`plan`]: a verb and its flags → the HTTP request ([`Call`]) and how to show the answer;
//! - [`Client`]: sends a `Call` (bearer token, timeouts) and turns every failure into a
//!   [`Failure`] that says what went wrong in the server's own words;
//! - rendering: `serde_json::Value` → text ([`render_list`], [`render_show`],
//!   [`render_change`]), and [`pretty`] which re-indents the server's JSON without reordering it.
//!
//! Exit codes: 0 done, 1 the server refused or could not be reached, 2 usage (clap).

use std::fmt::{self, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value};

pub const DEFAULT_URL: &str = "http://127.0.0.1:9750";
/// Longer titles are cut in the list table.
const TITLE_WIDTH: usize = 60;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Base URL of the incidentd server.
    #[arg(
        long,
        global = true,
        env = "INCIDENTD_URL",
        default_value = DEFAULT_URL,
        value_parser = parse_url,
    )]
    url: Url,
    /// API token, sent as `Authorization: Bearer <token>`.
    #[arg(long, global = true, env = "INCIDENTD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// `table` for people, `json` for the server's answer as is (pretty-printed).
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

const IMPACT: [&str; 3] = ["high", "medium", "low"];
const TIERS: [&str; 3] = ["L1", "L2", "L3"];
const PRIORITIES: [&str; 5] = ["P1", "P2", "P3", "P4", "P5"];
const KINDS: [&str; 2] = ["incident", "request"];

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// List incidents, newest first (filters take comma-separated values).
    List(ListArgs),
    /// One incident: its fields, evidence and timeline.
    Show { id: String },
    /// Acknowledge an incident (the first response).
    #[command(visible_alias = "acknowledge")]
    Ack { id: String },
    /// Escalate to the next tier, or to `--tier`.
    Escalate {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, value_parser = TIERS)]
        tier: Option<String>,
    },
    /// Add a note to the timeline (internal unless `--public`).
    Note {
        id: String,
        text: String,
        /// Show the note on the public status page too.
        #[arg(long)]
        public: bool,
    },
    /// Put an acknowledged incident on hold (pauses the resolution clock).
    Hold {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Take an incident off hold.
    Resume { id: String },
    /// Resolve an incident, saying what was done.
    Resolve {
        id: String,
        #[arg(long)]
        resolution: String,
    },
    /// Close a resolved incident now.
    Close { id: String },
    /// Reopen a resolved incident.
    Reopen {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Schedule a call from L2 or L3 (with the reporter of a ticket, who sees it on their
    /// page and gets it by mail when mail is configured).
    Call {
        id: String,
        /// The bridge or meeting URL (http or https). Not `--url`: that is the server's.
        #[arg(long, visible_alias = "meeting")]
        bridge: String,
        /// When, RFC 3339 (`2026-03-02T10:00:00Z`).
        #[arg(long)]
        at: String,
        /// Who takes part; repeatable.
        #[arg(long = "participant", value_name = "NAME")]
        participants: Vec<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Open a ticket (an incident or a request reported by a person).
    Open(OpenArgs),
    /// Change an incident's title, category, impact, urgency, priority or service (audited).
    Update(UpdateArgs),
    /// TAT compliance: met and breached SLA clocks per kind, clock and priority.
    Sla {
        /// e.g. `7d`, `30d` (the server's default is 30d).
        #[arg(long)]
        window: Option<String>,
        #[arg(long, value_parser = KINDS)]
        kind: Option<String>,
        /// e.g. `P1,P2`
        #[arg(long)]
        priority: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// e.g. `open,acknowledged`
    #[arg(long)]
    state: Option<String>,
    /// e.g. `P1,P2`
    #[arg(long)]
    priority: Option<String>,
    /// e.g. `L3`
    #[arg(long)]
    tier: Option<String>,
    #[arg(long)]
    category: Option<String>,
    /// `incident` or `request`
    #[arg(long)]
    kind: Option<String>,
    /// Page size (the server's default is 50).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: Option<u32>,
    /// Start after this cursor (`next_cursor` of the previous page).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow `next_cursor` to the last page.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    #[arg(long)]
    title: String,
    #[arg(long)]
    description: String,
    /// The reporter's name.
    #[arg(long)]
    reporter: String,
    /// How to reach the reporter (email, phone, chat handle).
    #[arg(long)]
    contact: Option<String>,
    #[arg(long)]
    category: Option<String>,
    #[arg(long, value_parser = KINDS)]
    kind: Option<String>,
    #[arg(long, value_parser = IMPACT)]
    impact: Option<String>,
    #[arg(long, value_parser = IMPACT)]
    urgency: Option<String>,
    #[arg(long)]
    service: Option<String>,
    /// A label, `name=value`; repeatable.
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["title", "category", "impact", "urgency", "priority", "service"]),
))]
pub struct UpdateArgs {
    id: String,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    category: Option<String>,
    #[arg(long, value_parser = IMPACT)]
    impact: Option<String>,
    #[arg(long, value_parser = IMPACT)]
    urgency: Option<String>,
    #[arg(long, value_parser = PRIORITIES)]
    priority: Option<String>,
    #[arg(long)]
    service: Option<String>,
    /// Why (recorded on the timeline).
    #[arg(long)]
    reason: String,
}

fn parse_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!(
            "`{raw}` is not an http(s) URL (e.g. {DEFAULT_URL})"
        ));
    }
    Ok(url)
}

fn parse_label(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{raw}` is not NAME=VALUE")),
    }
}

// ---------------------------------------------------------------------------------------
// Requests

/// One HTTP request to the API: path segments under the base URL (each one percent-encoded
/// as needed), query pairs and an optional JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl Call {
    fn new(method: Method, segments: &[&str]) -> Call {
        Call {
            method,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
        }
    }

    fn incident(method: Method, id: &str, verb: Option<&str>) -> Call {
        let mut segments = vec!["api", "v1", "incidents", id];
        segments.extend(verb);
        Call::new(method, &segments)
    }

    fn with_body(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }
}

/// How an answer is shown in the table format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Show,
    /// A change: one line saying what was done (`acknowledged INC-1 …`).
    Change(&'static str),
    /// The SLA report.
    Sla,
}

/// A JSON object of the fields that are set.
fn object(fields: impl IntoIterator<Item = (&'static str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect(),
    )
}

fn text(value: &Option<String>) -> Option<Value> {
    value.clone().map(Value::String)
}

/// The first page of a list (or the page after `cursor`).
pub fn list_call(args: &ListArgs, cursor: Option<&str>) -> Call {
    let mut call = Call::new(Method::GET, &["api", "v1", "incidents"]);
    let filters = [
        ("state", &args.state),
        ("priority", &args.priority),
        ("tier", &args.tier),
        ("category", &args.category),
        ("kind", &args.kind),
    ];
    for (name, value) in filters {
        if let Some(value) = value {
            call.query.push((name, value.clone()));
        }
    }
    if let Some(limit) = args.limit {
        call.query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = cursor.or(args.cursor.as_deref()) {
        call.query.push(("cursor", cursor.to_owned()));
    }
    call
}

/// The request for every verb but `list`, and how to show its answer.
pub fn plan(verb: &Verb) -> (Call, Shape) {
    use Method as M;
    let s = |v: &str| Value::String(v.to_owned());
    match verb {
        Verb::List(args) => (list_call(args, None), Shape::Show),
        Verb::Show { id } => (Call::incident(M::GET, id, None), Shape::Show),
        Verb::Sla {
            window,
            kind,
            priority,
        } => {
            let mut call = Call::new(M::GET, &["api", "v1", "sla"]);
            for (name, value) in [("window", window), ("kind", kind), ("priority", priority)] {
                if let Some(value) = value {
                    call.query.push((name, value.clone()));
                }
            }
            (call, Shape::Sla)
        }
        Verb::Ack { id } => (
            Call::incident(M::POST, id, Some("acknowledge")),
            Shape::Change("acknowledged"),
        ),
        Verb::Escalate { id, reason, tier } => (
            Call::incident(M::POST, id, Some("escalate"))
                .with_body(object([("reason", Some(s(reason))), ("tier", text(tier))])),
            Shape::Change("escalated"),
        ),
        Verb::Note { id, text, public } => (
            Call::incident(M::POST, id, Some("notes")).with_body(object([
                ("text", Some(s(text))),
                ("public", Some(Value::Bool(*public))),
            ])),
            Shape::Change(if *public {
                "public note added to"
            } else {
                "note added to"
            }),
        ),
        Verb::Hold { id, reason } => (
            Call::incident(M::POST, id, Some("hold"))
                .with_body(object([("reason", Some(s(reason)))])),
            Shape::Change("put on hold"),
        ),
        Verb::Resume { id } => (
            Call::incident(M::POST, id, Some("resume")),
            Shape::Change("resumed"),
        ),
        Verb::Resolve { id, resolution } => (
            Call::incident(M::POST, id, Some("resolve"))
                .with_body(object([("resolution", Some(s(resolution)))])),
            Shape::Change("resolved"),
        ),
        Verb::Close { id } => (
            Call::incident(M::POST, id, Some("close")),
            Shape::Change("closed"),
        ),
        Verb::Reopen { id, reason } => (
            Call::incident(M::POST, id, Some("reopen"))
                .with_body(object([("reason", Some(s(reason)))])),
            Shape::Change("reopened"),
        ),
        Verb::Call {
            id,
            bridge,
            at,
            participants,
            note,
        } => {
            let participants = (!participants.is_empty())
                .then(|| Value::Array(participants.iter().map(|p| s(p)).collect()));
            (
                Call::incident(M::POST, id, Some("calls")).with_body(object([
                    ("url", Some(s(bridge))),
                    ("at", Some(s(at))),
                    ("participants", participants),
                    ("note", text(note)),
                ])),
                Shape::Change("call scheduled for"),
            )
        }
        Verb::Open(open) => {
            let reporter = object([
                ("name", Some(s(&open.reporter))),
                ("contact", text(&open.contact)),
            ]);
            let labels = (!open.labels.is_empty()).then(|| {
                Value::Object(
                    open.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), s(v)))
                        .collect::<Map<_, _>>(),
                )
            });
            let body = object([
                ("title", Some(s(&open.title))),
                ("description", Some(s(&open.description))),
                ("reporter", Some(reporter)),
                ("kind", text(&open.kind)),
                ("category", text(&open.category)),
                ("impact", text(&open.impact)),
                ("urgency", text(&open.urgency)),
                ("service", text(&open.service)),
                ("labels", labels),
            ]);
            (
                Call::new(M::POST, &["api", "v1", "incidents"]).with_body(body),
                Shape::Change("opened"),
            )
        }
        Verb::Update(update) => {
            let body = object([
                ("title", text(&update.title)),
                ("category", text(&update.category)),
                ("impact", text(&update.impact)),
                ("urgency", text(&update.urgency)),
                ("priority", text(&update.priority)),
                ("service", text(&update.service)),
                ("reason", Some(s(&update.reason))),
            ]);
            (
                Call::incident(M::PATCH, &update.id, None).with_body(body),
                Shape::Change("updated"),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sending

/// Why a request did not give an answer to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server refused, in its own words (`{"error": {"code", "message"}}`).
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// Nothing usable came back from `url`: not incidentd's JSON.
    Unexpected {
        url: String,
        status: u16,
        excerpt: String,
    },
    /// The server could not be reached at all.
    Unreachable { url: String, cause: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Api {
                status,
                code,
                message,
            } => {
                write!(f, "{message} ({status} {code})")?;
                if *status == 401 {
                    write!(
                        f,
                        "\nhint: pass the API token with --token or the INCIDENTD_TOKEN environment variable"
                    )?;
                }
                Ok(())
            }
            Failure::Unexpected {
                url,
                status,
                excerpt,
            } => write!(
                f,
                "{url} answered HTTP {status} without incidentd's JSON (is --url right?): {excerpt}"
            ),
            Failure::Unreachable { url, cause } => {
                write!(f, "could not reach incidentd at {url}: {cause}")
            }
        }
    }
}

/// The answer of a successful request: the body as sent and parsed.
#[derive(Debug, Clone)]
pub struct Answer {
    pub raw: String,
    pub json: Value,
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    pub fn new(base: Url, token: Option<String>) -> Result<Client, Failure> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("incidentd-ctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Failure::Unreachable {
                url: display_base(&base),
                cause: cause(&e),
            })?;
        // An empty INCIDENTD_TOKEN means "no token".
        let token = token.filter(|t| !t.trim().is_empty());
        Ok(Client { http, base, token })
    }

    pub fn url(&self, call: &Call) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .expect("checked by parse_url: http(s) URLs have a path")
            .pop_if_empty()
            .extend(&call.segments);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        url
    }

    pub async fn send(&self, call: &Call) -> Result<Answer, Failure> {
        let url = self.url(call);
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.trim());
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| Failure::Unreachable {
            url: display_base(&self.base),
            cause: cause(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let raw = response.text().await.map_err(unreachable)?;
        interpret(url.as_str(), status, raw)
    }
}

/// A status and body → the answer, or the failure to report.
fn interpret(url: &str, status: StatusCode, raw: String) -> Result<Answer, Failure> {
    let json: Option<Value> = serde_json::from_str(&raw).ok();
    let unexpected = |raw: &str| Failure::Unexpected {
        url: url.to_owned(),
        status: status.as_u16(),
        excerpt: excerpt(raw.trim(), 200),
    };
    if status.is_success() {
        return match json {
            Some(json) => Ok(Answer { raw, json }),
            None => Err(unexpected(&raw)),
        };
    }
    let error = json.as_ref().map(|j| &j["error"]);
    match error.and_then(|e| e["message"].as_str()) {
        Some(message) => Err(Failure::Api {
            status: status.as_u16(),
            code: error
                .and_then(|e| e["code"].as_str())
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
                .to_owned(),
            message: message.to_owned(),
        }),
        None => Err(unexpected(&raw)),
    }
}

fn display_base(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// The innermost cause of a reqwest error ("Connection refused (os error 111)"), which says
/// more than "error sending request".
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

// ---------------------------------------------------------------------------------------
// Running

pub fn run(args: CtlArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(&args)) {
        Ok(text) => {
            print!("{}", terminal_safe(&text));
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: {}", terminal_safe(&failure.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Runs the verb; the text to print on stdout (notes for people go to stderr).
async fn execute(args: &CtlArgs) -> Result<String, Failure> {
    let client = Client::new(args.url.clone(), args.token.clone())?;
    if let Verb::List(list) = &args.verb {
        return execute_list(&client, list, args.output).await;
    }
    let (call, shape) = plan(&args.verb);
    let answer = client.send(&call).await?;
    Ok(match (args.output, shape) {
        (Output::Json, _) => pretty(&answer.raw),
        (Output::Table, Shape::Show) => render_show(&answer.json),
        (Output::Table, Shape::Change(action)) => render_change(action, &answer.json),
        (Output::Table, Shape::Sla) => render_sla(&answer.json),
    })
}

async fn execute_list(client: &Client, list: &ListArgs, output: Output) -> Result<String, Failure> {
    let first = client.send(&list_call(list, None)).await?;
    let mut next = next_cursor(&first.json);
    if !list.all {
        if let Some(cursor) = &next
            && output == Output::Table
        {
            eprintln!(
                "more incidents: add --all, or --cursor {}",
                one_line(cursor)
            );
        }
        return Ok(match output {
            Output::Json => pretty(&first.raw),
            Output::Table => render_list(incidents(&first.json)),
        });
    }
    let mut pages = vec![first];
    let mut seen = std::collections::HashSet::new();
    while let Some(cursor) = next {
        if !seen.insert(cursor.clone()) {
            return Err(Failure::Unexpected {
                url: client.url(&list_call(list, Some(&cursor))).to_string(),
                status: 200,
                excerpt: format!("the same next_cursor `{cursor}` came twice; stopped"),
            });
        }
        let page = client.send(&list_call(list, Some(&cursor))).await?;
        next = next_cursor(&page.json);
        pages.push(page);
    }
    Ok(match output {
        Output::Table => {
            let all: Vec<Value> = pages
                .iter()
                .flat_map(|p| incidents(&p.json).iter().cloned())
                .collect();
            render_list(&all)
        }
        Output::Json => {
            // The server's incidents as they came, in one document.
            let mut items = Vec::new();
            for page in &pages {
                items.extend(array_field(&page.raw, "incidents").unwrap_or_default());
            }
            pretty(&format!(
                "{{\"incidents\":[{}],\"next_cursor\":null}}",
                items.join(",")
            ))
        }
    })
}

fn next_cursor(page: &Value) -> Option<String> {
    match &page["next_cursor"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn incidents(page: &Value) -> &[Value] {
    page["incidents"].as_array().map_or(&[], Vec::as_slice)
}

// ---------------------------------------------------------------------------------------
// Rendering (pure)

/// Text from the server as a terminal may show it: every control character but the line
/// feed escaped (ESC as `\u{1b}`), so no title or note can move the cursor, clear the
/// screen, rename the window or hide what precedes it. Everything printed goes through it.
pub fn terminal_safe(text: &str) -> String {
    escape_controls(text, |c| c == '\n')
}

/// [`terminal_safe`] for a value shown on one line: line feeds escaped too.
fn one_line(text: &str) -> String {
    escape_controls(text, |_| false)
}

fn escape_controls(text: &str, keep: impl Fn(char) -> bool) -> String {
    if !text.chars().any(|c| c.is_control() && !keep(c)) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A field as text: strings on one line ([`one_line`]), `-` for missing or null, other
/// values as JSON.
fn field(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => one_line(s),
        other => other.to_string(),
    }
}

fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// `2026-03-02T09:00:00Z` → `Mon 2026-03-02 09:00 UTC` (with seconds when `seconds`); what
/// is not an RFC 3339 time is shown as it is.
fn when(value: &Value, seconds: bool) -> String {
    let Some(raw) = value.as_str() else {
        return field(value);
    };
    match chrono::DateTime::parse_from_rfc3339(raw) {
        Ok(at) => {
            let at = at.with_timezone(&chrono::Utc);
            let format = if seconds {
                "%a %Y-%m-%d %H:%M:%S UTC"
            } else {
                "%a %Y-%m-%d %H:%M UTC"
            };
            at.format(format).to_string()
        }
        Err(_) => one_line(raw),
    }
}

/// Columns padded to their widest cell (by characters), two spaces apart; the last column
/// is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The list table: ID, STATE, PRI, TIER, CATEGORY, OPENED, TITLE.
pub fn render_list(incidents: &[Value]) -> String {
    if incidents.is_empty() {
        return "no incidents\n".to_owned();
    }
    let mut rows = vec![
        ["ID", "STATE", "PRI", "TIER", "CATEGORY", "OPENED", "TITLE"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for incident in incidents {
        rows.push(vec![
            field(&incident["id"]),
            field(&incident["state"]),
            field(&incident["priority"]),
            field(&incident["tier"]),
            field(&incident["category"]),
            when(&incident["opened_at"], false),
            excerpt(&field(&incident["title"]), TITLE_WIDTH),
        ]);
    }
    table(&rows)
}

/// The SLA report as a table: a row per kind, clock and priority (and `all`) that has any
/// clock, then the mean resolution against its objective.
pub fn render_sla(report: &Value) -> String {
    let seconds = |value: &Value| {
        value.as_f64().map_or_else(
            || "-".to_owned(),
            |s| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let whole = s.max(0.0).round() as u64;
                crate::domain::duration::format_duration(std::time::Duration::from_secs(whole))
            },
        )
    };
    let mut rows = vec![
        [
            "KIND",
            "CLOCK",
            "PRI",
            "TARGET",
            "MET",
            "BREACHED",
            "COMPLIANCE",
            "MEAN",
            "P90",
            "OPEN",
            "AT RISK",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let empty = serde_json::Map::new();
    for (kind, clocks) in report["kinds"].as_object().unwrap_or(&empty) {
        for (clock, priorities) in clocks.as_object().unwrap_or(&empty) {
            for (priority, figures) in priorities.as_object().unwrap_or(&empty) {
                let open = &figures["open"];
                let count = |v: &Value| v.as_u64().unwrap_or(0);
                let open_total = count(&open["ok"])
                    + count(&open["at_risk"])
                    + count(&open["breached"])
                    + count(&open["paused"]);
                let decided = count(&figures["met"]) + count(&figures["breached"]);
                if decided == 0 && open_total == 0 {
                    continue;
                }
                rows.push(vec![
                    kind.clone(),
                    clock.clone(),
                    priority.clone(),
                    seconds(&figures["target_seconds"]),
                    count(&figures["met"]).to_string(),
                    count(&figures["breached"]).to_string(),
                    figures["compliance"]
                        .as_f64()
                        .map_or_else(|| "-".to_owned(), |c| format!("{:.1}%", c * 100.0)),
                    seconds(&figures["mean_seconds"]),
                    seconds(&figures["p90_seconds"]),
                    open_total.to_string(),
                    count(&open["at_risk"]).to_string(),
                ]);
            }
        }
    }
    let mut out = format!(
        "window {} → {}\n",
        when(&report["from"], false),
        when(&report["to"], false)
    );
    if rows.len() == 1 {
        out.push_str("no SLA clocks stopped in the window or running now\n");
    } else {
        out.push_str(&table(&rows));
    }
    let mean = &report["mean_resolution"];
    let verdict = match mean["holds"].as_bool() {
        Some(true) => "holds",
        Some(false) => "MISSED",
        None => "no resolutions",
    };
    out.push_str(&format!(
        "mean resolution of incidents: {} over {} (objective {}): {verdict}\n",
        seconds(&mean["mean_seconds"]),
        mean["resolved"].as_u64().unwrap_or(0),
        seconds(&mean["objective_seconds"]),
    ));
    out
}

/// One line after a change: `acknowledged INC-1 (acknowledged, P2, L1): Web down (503)`;
/// a new ticket's reporter link on a second line (the server answers it only this once).
pub fn render_change(action: &str, incident: &Value) -> String {
    let mut out = format!(
        "{action} {} ({}, {}, {}): {}\n",
        field(&incident["id"]),
        state(incident),
        field(&incident["priority"]),
        field(&incident["tier"]),
        field(&incident["title"]),
    );
    if let Some(link) = incident["reporter_link"].as_str() {
        let _ = writeln!(out, "reporter link (shown once): {}", one_line(link));
    }
    out
}

/// The state, with a resolution still waiting for the probe's confirmation said so.
fn state(incident: &Value) -> String {
    match incident["verification"].as_str() {
        Some(verification) if verification != "verified" => {
            format!(
                "{} (verification {verification})",
                field(&incident["state"])
            )
        }
        _ => field(&incident["state"]),
    }
}

/// `k=v, k=v` of an object's fields (in the server's order), strings unquoted.
fn pairs(object: &Map<String, Value>, skip: &[&str]) -> String {
    object
        .iter()
        .filter(|(k, v)| !skip.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| format!("{}={}", one_line(k), field(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seconds(value: &Value) -> Option<String> {
    let s = value.as_f64()?;
    Some(if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else {
        format!("{s:.2}s")
    })
}

/// One evidence item on one line.
fn evidence_line(evidence: &Value) -> String {
    let Some(object) = evidence.as_object() else {
        return field(evidence);
    };
    let at = object.get("at").map(field);
    let kind = field(&evidence["type"]);
    let mut line = String::new();
    if let Some(at) = &at {
        line.push_str(at);
        line.push(' ');
    }
    if kind == "probe_result" {
        let mut parts = Vec::new();
        if evidence["connected"] == Value::Bool(false) {
            parts.push("not connected".to_owned());
        }
        if let Some(status) = evidence["status"].as_u64() {
            parts.push(format!("status {status}"));
        }
        if let Some(took) = seconds(&evidence["response_time_seconds"]) {
            parts.push(took);
        }
        if let Some(error) = evidence["error"].as_str() {
            parts.push(format!("error: {}", one_line(error)));
        }
        if let Some(rcode) = evidence["dns_rcode"].as_str() {
            parts.push(format!("rcode {rcode}"));
        }
        if let Some(expiry) = evidence["certificate_expiry"].as_str() {
            parts.push(format!("certificate expires {expiry}"));
        }
        if let Some(value) = evidence["value"].as_f64() {
            parts.push(format!("value {value}"));
        }
        if let Some(body) = evidence["body_excerpt"].as_str().filter(|b| !b.is_empty()) {
            parts.push(format!("body {:?}", excerpt(body, 60)));
        }
        let _ = write!(line, "probe {}", field(&evidence["probe"]));
        if let Some(subject) = evidence["subject"].as_object().filter(|s| !s.is_empty()) {
            let _ = write!(line, " {{{}}}", pairs(subject, &[]));
        }
        let _ = write!(
            line,
            ": {} (rule {}: {})",
            parts.join(", "),
            field(&evidence["rule"]),
            field(&evidence["condition"])
        );
    } else {
        let _ = write!(line, "{kind}: {}", pairs(object, &["type", "at"]));
    }
    line
}

fn sla_summary(sla: &Value) -> Option<String> {
    let object = sla.as_object()?;
    let clocks: Vec<String> = object
        .iter()
        .filter(|(_, clock)| clock.is_object())
        .map(|(name, clock)| {
            let mut text = format!("{name} {}", field(&clock["state"]));
            if clock["due_at"].is_string() {
                let _ = write!(text, " (due {})", when(&clock["due_at"], false));
            }
            text
        })
        .collect();
    (!clocks.is_empty()).then(|| clocks.join("; "))
}

/// The `show` block: the fields, the evidence, the timeline (`at actor type: message`) and
/// similar past incidents.
pub fn render_show(incident: &Value) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("state", state(incident)),
        ("kind", field(&incident["kind"])),
        (
            "priority",
            format!(
                "{} (impact {}, urgency {})",
                field(&incident["priority"]),
                field(&incident["impact"]),
                field(&incident["urgency"])
            ),
        ),
        ("tier", field(&incident["tier"])),
        ("category", field(&incident["category"])),
        ("service", field(&incident["service"])),
    ];
    if let Some(labels) = incident["labels"].as_object().filter(|l| !l.is_empty()) {
        fields.push(("labels", pairs(labels, &[])));
    }
    if let Some(source) = incident["source"].as_object() {
        let text = match source.get("type").and_then(Value::as_str) {
            Some("rule") => format!(
                "rule {} (probe {})",
                field(&incident["source"]["rule"]),
                field(&incident["source"]["probe"])
            ),
            Some(kind) => {
                let rest = pairs(source, &["type"]);
                if rest.is_empty() {
                    kind.to_owned()
                } else {
                    format!("{kind} ({rest})")
                }
            }
            None => pairs(source, &[]),
        };
        fields.push(("source", text));
    }
    if let Some(name) = incident["reporter"]["name"].as_str() {
        let text = match incident["reporter"]["contact"].as_str() {
            Some(contact) if !contact.is_empty() => format!("{name} <{contact}>"),
            _ => name.to_owned(),
        };
        fields.push(("reporter", text));
    }
    for (label, key) in [
        ("opened", "opened_at"),
        ("acknowledged", "acknowledged_at"),
        ("resolved", "resolved_at"),
        ("closed", "closed_at"),
    ] {
        if !incident[key].is_null() {
            fields.push((label, when(&incident[key], true)));
        }
    }
    if let Some(resolution) = incident["resolution"].as_str() {
        fields.push(("resolution", resolution.to_owned()));
    }
    if let Some(sla) = sla_summary(&incident["sla"]) {
        fields.push(("sla", sla));
    }
    if let Some(description) = incident["description"].as_str().filter(|d| !d.is_empty()) {
        fields.push(("description", description.to_owned()));
    }

    let mut out = format!(
        "{}  {}\n",
        field(&incident["id"]),
        field(&incident["title"])
    );
    // `label:` and two spaces.
    let width = fields.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 3;
    for (label, value) in &fields {
        let label = format!("{label}:");
        // Multi-line values (descriptions) keep their lines, indented under the value.
        let value = value.replace('\n', &format!("\n{}", " ".repeat(width)));
        let _ = writeln!(out, "{label:width$}{value}");
    }
    let section = |out: &mut String, title: &str, lines: Vec<String>| {
        if !lines.is_empty() {
            let _ = writeln!(out, "\n{title}:");
            for line in lines {
                let _ = writeln!(out, "  {line}");
            }
        }
    };
    let list = |key: &str| incident[key].as_array().cloned().unwrap_or_default();
    section(
        &mut out,
        "evidence",
        list("evidence").iter().map(evidence_line).collect(),
    );
    section(
        &mut out,
        "timeline",
        list("timeline")
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}: {}",
                    field(&e["at"]),
                    field(&e["actor"]),
                    field(&e["type"]),
                    field(&e["message"])
                )
            })
            .collect(),
    );
    section(
        &mut out,
        "similar",
        list("similar")
            .iter()
            .map(|s| {
                format!(
                    "{}  {}: {}",
                    field(&s["id"]),
                    field(&s["title"]),
                    field(&s["resolution"])
                )
            })
            .collect(),
    );
    out
}

// ---------------------------------------------------------------------------------------
// JSON text as the server sent it

/// Re-indents valid JSON text like `serde_json::to_string_pretty`, without parsing it into a
/// map: keys keep the server's order and numbers their spelling. Ends with a newline.
pub fn pretty(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut chars = raw.chars().peekable();
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            if c.is_control() {
                // Valid JSON holds C1 controls and DEL raw: the same string, escaped.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
                continue;
            }
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                match chars.peek() {
                    Some(&close @ ('}' | ']')) => {
                        out.push(close);
                        chars.next();
                    }
                    _ => {
                        depth += 1;
                        newline(&mut out, depth);
                    }
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index just after the JSON value starting at `start` (valid JSON assumed).
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match *bytes.get(start)? {
        b'"' => {
            let mut i = start + 1;
            loop {
                match *bytes.get(i)? {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
        }
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                match *bytes.get(i)? {
                    b'"' => {
                        i = value_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = start;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            Some(i)
        }
    }
}

/// The raw text of each element of the array at top-level field `key` of a JSON object.
pub fn array_field<'a>(raw: &'a str, key: &str) -> Option<Vec<&'a str>> {
    let bytes = raw.as_bytes();
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let wanted = serde_json::to_string(key).ok()?;
    loop {
        i = skip_ws(bytes, i);
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = value_end(bytes, i)?;
        let name = &raw[i..key_end];
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(bytes, i + 1);
        let end = value_end(bytes, i)?;
        if name == wanted {
            return array_items(&raw[i..end]);
        }
        i = skip_ws(bytes, end);
        match bytes.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

fn array_items(raw: &str) -> Option<Vec<&str>> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'[') {
        return None;
    }
    let mut items = Vec::new();
    let mut i = skip_ws(bytes, 1);
    if bytes.get(i) == Some(&b']') {
        return Some(items);
    }
    loop {
        let end = value_end(bytes, i)?;
        items.push(&raw[i..end]);
        i = skip_ws(bytes, end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b']') => return Some(items),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(flatten)]
        ctl: CtlArgs,
    }

    fn parse(args: &[&str]) -> Result<CtlArgs, clap::Error> {
        Line::try_parse_from(std::iter::once("ctl").chain(args.iter().copied())).map(|l| l.ctl)
    }

    fn planned(args: &[&str]) -> (Call, Shape) {
        plan(&parse(args).unwrap().verb)
    }

    /// An incident as `GET /api/v1/incidents/INC-1` answers it today.
    fn web_down() -> Value {
        json!({
            "id": "INC-1",
            "kind": "incident",
            "title": "Web down (503)",
            "description": "",
            "state": "acknowledged",
            "tier": "L1",
            "priority": "P2",
            "impact": "high",
            "urgency": "medium",
            "category": "availability",
            "service": "web",
            "labels": {"service": "web", "team": "shop"},
            "source": {"type": "rule", "rule": "web-down", "probe": "web"},
            "fingerprint": "abc",
            "reporter": null,
            "evidence": [{
                "type": "probe_result",
                "probe": "web",
                "rule": "web-down",
                "condition": "[STATUS] != 200",
                "at": "2026-03-02T09:00:00Z",
                "connected": true,
                "status": 503,
                "response_time_seconds": 0.0123,
                "error": null,
                "body_excerpt": "Service Unavailable"
            }],
            "resolution": null,
            "opened_at": "2026-03-02T09:00:00Z",
            "acknowledged_at": "2026-03-02T09:10:00Z",
            "resolved_at": null,
            "closed_at": null,
            "timeline": [
                {"at": "2026-03-02T09:00:00Z", "actor": "system", "type": "opened",
                 "message": "rule web-down: [STATUS] != 200 (status 503)"},
                {"at": "2026-03-02T09:10:00Z", "actor": "oncall-bot", "type": "acknowledged",
                 "message": "state open → acknowledged"}
            ]
        })
    }

    #[test]
    fn list_is_an_aligned_table_with_long_titles_cut() {
        let mut second = web_down();
        second["id"] = json!("INC-12");
        second["state"] = json!("open");
        second["priority"] = json!("P1");
        second["tier"] = json!("L3");
        second["category"] = json!("security");
        second["opened_at"] = json!("2026-03-07T23:59:30Z");
        second["title"] = json!(
            "A very long title that goes on and on about everything that is broken today, really"
        );
        let text = render_list(&[second, web_down()]);
        assert_eq!(
            text,
            "\
ID      STATE         PRI  TIER  CATEGORY      OPENED                    TITLE
INC-12  open          P1   L3    security      Sat 2026-03-07 23:59 UTC  A very long title that goes on and on about everything that…
INC-1   acknowledged  P2   L1    availability  Mon 2026-03-02 09:00 UTC  Web down (503)
"
        );
        let long_line = text.lines().nth(1).unwrap();
        assert!(long_line.ends_with('…'), "{long_line}");
        let title = long_line.split("UTC  ").nth(1).unwrap();
        assert_eq!(title.chars().count(), TITLE_WIDTH);
    }

    #[test]
    fn an_empty_list_says_so() {
        assert_eq!(render_list(&[]), "no incidents\n");
    }

    #[test]
    fn missing_fields_show_as_a_dash() {
        let text = render_list(&[json!({"id": "INC-3", "title": "Ticket"})]);
        assert_eq!(
            text,
            "ID     STATE  PRI  TIER  CATEGORY  OPENED  TITLE\nINC-3  -      -    -     -         -       Ticket\n"
        );
    }

    #[test]
    fn show_is_a_readable_block_with_evidence_and_timeline() {
        assert_eq!(
            render_show(&web_down()),
            "\
INC-1  Web down (503)
state:         acknowledged
kind:          incident
priority:      P2 (impact high, urgency medium)
tier:          L1
category:      availability
service:       web
labels:        service=web, team=shop
source:        rule web-down (probe web)
opened:        Mon 2026-03-02 09:00:00 UTC
acknowledged:  Mon 2026-03-02 09:10:00 UTC

evidence:
  2026-03-02T09:00:00Z probe web: status 503, 12ms, body \"Service Unavailable\" (rule web-down: [STATUS] != 200)

timeline:
  2026-03-02T09:00:00Z system opened: rule web-down: [STATUS] != 200 (status 503)
  2026-03-02T09:10:00Z oncall-bot acknowledged: state open → acknowledged
"
        );
    }

    #[test]
    fn sla_plans_the_report_with_its_filters() {
        let (call, shape) = planned(&[
            "sla",
            "--window",
            "7d",
            "--kind",
            "incident",
            "--priority",
            "P1,P2",
        ]);
        assert_eq!(shape, Shape::Sla);
        assert_eq!(
            (call.method, call.segments.join("/")),
            (Method::GET, "api/v1/sla".to_owned())
        );
        assert_eq!(
            call.query,
            [
                ("window", "7d".to_owned()),
                ("kind", "incident".to_owned()),
                ("priority", "P1,P2".to_owned())
            ]
        );
        assert!(planned(&["sla"]).0.query.is_empty());
    }

    #[test]
    fn sla_report_renders_active_rows_totals_and_the_mean_objective() {
        let figures = |met: u64, breached: u64, compliance: Value, at_risk: u64| {
            json!({
                "target_seconds": 14400.0, "met": met, "breached": breached,
                "compliance": compliance, "completed": met + breached,
                "mean_seconds": 5400.0, "p50_seconds": 3600.0, "p90_seconds": 9000.0,
                "open": {"ok": 0, "at_risk": at_risk, "breached": 0, "paused": 0}
            })
        };
        let report = json!({
            "window_seconds": 604800,
            "from": "2026-02-23T09:00:00Z",
            "to": "2026-03-02T09:00:00Z",
            "kinds": {"incident": {"resolution": {
                "P1": figures(3, 1, json!(0.75), 1),
                "P2": figures(0, 0, Value::Null, 0),
                "all": figures(3, 1, json!(0.75), 1),
            }}},
            "mean_resolution": {"objective_seconds": 86400.0, "resolved": 4, "mean_seconds": 5400.0, "holds": true}
        });
        let text = render_sla(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "window Mon 2026-02-23 09:00 UTC → Mon 2026-03-02 09:00 UTC"
        );
        assert!(lines[1].starts_with("KIND"), "{text}");
        assert_eq!(lines.len(), 5, "P2 has nothing: no row\n{text}");
        let p1: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            p1,
            [
                "incident",
                "resolution",
                "P1",
                "4h",
                "3",
                "1",
                "75.0%",
                "1h30m",
                "2h30m",
                "1",
                "1"
            ]
        );
        assert!(lines[3].contains(" all "), "{text}");
        assert_eq!(
            lines[4],
            "mean resolution of incidents: 1h30m over 4 (objective 1d): holds"
        );
    }

    #[test]
    fn show_renders_tickets_sla_clocks_similar_incidents_and_other_evidence() {
        let ticket = json!({
            "id": "INC-7",
            "kind": "request",
            "title": "New VPN account",
            "description": "For the new hire.\nStarts Monday.",
            "state": "resolved",
            "verification": "pending",
            "tier": "L1",
            "priority": "P4",
            "impact": "low",
            "urgency": "medium",
            "category": "request",
            "service": null,
            "labels": {},
            "source": {"type": "ticket"},
            "reporter": {"name": "Ada", "contact": "ada@example.com"},
            "evidence": [
                {"type": "alert", "at": "2026-03-03T10:00:00Z", "alertname": "VPNDown", "severity": "page"},
                {"type": "probe_result", "probe": "vpn", "rule": "vpn-down", "condition": "![CONNECTED]",
                 "at": "2026-03-03T10:00:01Z", "connected": false, "status": null,
                 "response_time_seconds": 2.5, "error": "connection refused", "subject": {"host": "vpn-1"}}
            ],
            "resolution": "account created",
            "opened_at": "2026-03-03T10:00:00Z",
            "acknowledged_at": null,
            "resolved_at": "2026-03-03T11:30:00Z",
            "closed_at": null,
            "sla": {
                "first_response": {"target_seconds": 10800, "due_at": "2026-03-03T13:00:00Z", "state": "breached"},
                "resolution": {"target_seconds": 259200, "due_at": "2026-03-06T10:00:00Z", "state": "met"}
            },
            "timeline": [],
            "similar": [{"id": "INC-2", "title": "VPN account for contractor", "resolution": "created by IT"}]
        });
        assert_eq!(
            render_show(&ticket),
            "\
INC-7  New VPN account
state:        resolved (verification pending)
kind:         request
priority:     P4 (impact low, urgency medium)
tier:         L1
category:     request
service:      -
source:       ticket
reporter:     Ada <ada@example.com>
opened:       Tue 2026-03-03 10:00:00 UTC
resolved:     Tue 2026-03-03 11:30:00 UTC
resolution:   account created
sla:          first_response breached (due Tue 2026-03-03 13:00 UTC); resolution met (due Fri 2026-03-06 10:00 UTC)
description:  For the new hire.
              Starts Monday.

evidence:
  2026-03-03T10:00:00Z alert: alertname=VPNDown, severity=page
  2026-03-03T10:00:01Z probe vpn {host=vpn-1}: not connected, 2.50s, error: connection refused (rule vpn-down: ![CONNECTED])

similar:
  INC-2  VPN account for contractor: created by IT
"
        );
    }

    #[test]
    fn a_new_tickets_reporter_link_is_shown_once_below_the_change() {
        let incident = json!({"id": "INC-4", "state": "open", "priority": "P3", "tier": "L1",
                              "title": "VPN broken", "reporter_link": "https://desk.example/r/abc\u{1b}"});
        assert_eq!(
            render_change("opened", &incident),
            "opened INC-4 (open, P3, L1): VPN broken\nreporter link (shown once): https://desk.example/r/abc\\u{1b}\n"
        );
    }

    #[test]
    fn a_change_is_one_line() {
        assert_eq!(
            render_change("acknowledged", &web_down()),
            "acknowledged INC-1 (acknowledged, P2, L1): Web down (503)\n"
        );
    }

    #[test]
    fn pretty_reindents_like_serde_json_and_keeps_the_servers_order() {
        let sorted = r#"{"a":[1,2.50,{"b":"x, y: {z}","c":[]}],"d":{},"e":"q\"uote\\"}"#;
        let value: Value = serde_json::from_str(sorted).unwrap();
        let mut expected = serde_json::to_string_pretty(&value).unwrap();
        expected.push('\n');
        // serde_json would print 2.5; the server's spelling is kept.
        assert_eq!(pretty(sorted), expected.replace("2.5", "2.50"));
        assert_eq!(
            pretty("{ \"z\" : 1 ,\n \"a\" : [ ] }"),
            "{\n  \"z\": 1,\n  \"a\": []\n}\n"
        );
    }

    #[test]
    fn array_field_finds_the_raw_items() {
        let raw = r#"{"next_cursor":"3","skip":{"incidents":[9]},"incidents":[{"id":"INC-2","t":"a],\"b"}, {"id":"INC-1"} ],"x":null}"#;
        assert_eq!(
            array_field(raw, "incidents").unwrap(),
            [r#"{"id":"INC-2","t":"a],\"b"}"#, r#"{"id":"INC-1"}"#]
        );
        assert_eq!(
            array_field(r#"{"incidents": []}"#, "incidents").unwrap(),
            Vec::<&str>::new()
        );
        assert_eq!(array_field(r#"{"other": [1]}"#, "incidents"), None);
    }

    #[test]
    fn every_verb_plans_its_request() {
        type Case<'a> = (Vec<&'a str>, Method, &'a str, Option<Value>, Shape);
        let cases: Vec<Case> = vec![
            (
                vec!["show", "INC-1"],
                Method::GET,
                "api/v1/incidents/INC-1",
                None,
                Shape::Show,
            ),
            (
                vec!["ack", "INC-1"],
                Method::POST,
                "api/v1/incidents/INC-1/acknowledge",
                None,
                Shape::Change("acknowledged"),
            ),
            (
                vec!["escalate", "INC-1", "--reason", "db team", "--tier", "L2"],
                Method::POST,
                "api/v1/incidents/INC-1/escalate",
                Some(json!({"reason": "db team", "tier": "L2"})),
                Shape::Change("escalated"),
            ),
            (
                vec!["escalate", "INC-1", "--reason", "stuck"],
                Method::POST,
                "api/v1/incidents/INC-1/escalate",
                Some(json!({"reason": "stuck"})),
                Shape::Change("escalated"),
            ),
            (
                vec!["note", "INC-1", "restarted", "--public"],
                Method::POST,
                "api/v1/incidents/INC-1/notes",
                Some(json!({"text": "restarted", "public": true})),
                Shape::Change("public note added to"),
            ),
            (
                vec!["hold", "INC-1", "--reason", "vendor"],
                Method::POST,
                "api/v1/incidents/INC-1/hold",
                Some(json!({"reason": "vendor"})),
                Shape::Change("put on hold"),
            ),
            (
                vec!["resume", "INC-1"],
                Method::POST,
                "api/v1/incidents/INC-1/resume",
                None,
                Shape::Change("resumed"),
            ),
            (
                vec!["resolve", "INC-1", "--resolution", "rolled back"],
                Method::POST,
                "api/v1/incidents/INC-1/resolve",
                Some(json!({"resolution": "rolled back"})),
                Shape::Change("resolved"),
            ),
            (
                vec!["close", "INC-1"],
                Method::POST,
                "api/v1/incidents/INC-1/close",
                None,
                Shape::Change("closed"),
            ),
            (
                vec!["reopen", "INC-1", "--reason", "back"],
                Method::POST,
                "api/v1/incidents/INC-1/reopen",
                Some(json!({"reason": "back"})),
                Shape::Change("reopened"),
            ),
            (
                vec![
                    "open",
                    "--title",
                    "T",
                    "--description",
                    "D",
                    "--reporter",
                    "Ada",
                    "--label",
                    "team=shop",
                    "--label",
                    "env=prod",
                ],
                Method::POST,
                "api/v1/incidents",
                Some(
                    json!({"title": "T", "description": "D", "reporter": {"name": "Ada"},
                            "labels": {"team": "shop", "env": "prod"}}),
                ),
                Shape::Change("opened"),
            ),
            (
                vec![
                    "call",
                    "INC-1",
                    "--bridge",
                    "https://meet.example/7",
                    "--at",
                    "2026-03-02T10:00:00Z",
                    "--participant",
                    "Ana",
                    "--participant",
                    "Budi",
                    "--note",
                    "bring the log",
                ],
                Method::POST,
                "api/v1/incidents/INC-1/calls",
                Some(
                    json!({"url": "https://meet.example/7", "at": "2026-03-02T10:00:00Z",
                            "participants": ["Ana", "Budi"], "note": "bring the log"}),
                ),
                Shape::Change("call scheduled for"),
            ),
            (
                vec![
                    "call",
                    "INC-1",
                    "--meeting",
                    "https://meet.example/7",
                    "--at",
                    "2026-03-02T10:00:00Z",
                    "--url",
                    "http://127.0.0.1:9750",
                ],
                Method::POST,
                "api/v1/incidents/INC-1/calls",
                Some(json!({"url": "https://meet.example/7", "at": "2026-03-02T10:00:00Z"})),
                Shape::Change("call scheduled for"),
            ),
            (
                vec!["update", "INC-1", "--priority", "P1", "--reason", "VIP"],
                Method::PATCH,
                "api/v1/incidents/INC-1",
                Some(json!({"priority": "P1", "reason": "VIP"})),
                Shape::Change("updated"),
            ),
        ];
        for (args, method, path, body, shape) in cases {
            let (call, got_shape) = planned(&args);
            assert_eq!(call.method, method, "{args:?}");
            assert_eq!(call.segments.join("/"), path, "{args:?}");
            assert_eq!(call.body, body, "{args:?}");
            assert_eq!(got_shape, shape, "{args:?}");
        }
    }

    #[test]
    fn list_filters_become_query_pairs() {
        let args = parse(&[
            "list",
            "--state",
            "open,acknowledged",
            "--tier",
            "L3",
            "--limit",
            "10",
        ])
        .unwrap();
        let Verb::List(list) = &args.verb else {
            panic!("{args:?}")
        };
        let call = list_call(list, Some("42"));
        assert_eq!(
            call.query,
            [
                ("state", "open,acknowledged".to_owned()),
                ("tier", "L3".to_owned()),
                ("limit", "10".to_owned()),
                ("cursor", "42".to_owned())
            ]
        );
        let client = Client::new(args.url.clone(), None).unwrap();
        assert_eq!(
            client.url(&call).as_str(),
            "http://127.0.0.1:9750/api/v1/incidents?state=open%2Cacknowledged&tier=L3&limit=10&cursor=42"
        );
    }

    #[test]
    fn urls_keep_a_path_prefix_and_encode_ids() {
        let base = parse_url("https://ops.example/incidentd/").unwrap();
        let client = Client::new(base, None).unwrap();
        let (call, _) = planned(&["show", "INC-1/../x y"]);
        assert_eq!(
            client.url(&call).as_str(),
            "https://ops.example/incidentd/api/v1/incidents/INC-1%2F..%2Fx%20y"
        );
    }

    #[test]
    fn usage_mistakes_are_clap_errors() {
        for args in [
            vec!["update", "INC-1", "--reason", "nothing to change"],
            vec!["escalate", "INC-1", "--reason", "r", "--tier", "L9"],
            vec!["open", "--title", "T", "--description", "D"],
            vec![
                "open",
                "--title",
                "T",
                "--description",
                "D",
                "--reporter",
                "A",
                "--label",
                "x",
            ],
            vec!["list", "--limit", "0"],
            vec!["--url", "ftp://example", "list"],
            vec!["-o", "yaml", "list"],
            vec!["resolve", "INC-1"],
        ] {
            let error = parse(&args).expect_err(&format!("{args:?}"));
            assert_eq!(error.exit_code(), 2, "{args:?}: {error}");
        }
    }

    #[test]
    fn failures_say_what_the_server_said() {
        let conflict = interpret(
            "http://x/api/v1/incidents/INC-1/acknowledge",
            StatusCode::CONFLICT,
            r#"{"error":{"code":"conflict","message":"incident INC-1 is resolved; cannot acknowledge it"}}"#.to_owned(),
        )
        .unwrap_err();
        assert_eq!(
            conflict.to_string(),
            "incident INC-1 is resolved; cannot acknowledge it (409 conflict)"
        );
        let unauthorized = interpret(
            "http://x/api/v1/incidents",
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"code":"unauthorized","message":"invalid token"}}"#.to_owned(),
        )
        .unwrap_err();
        assert_eq!(
            unauthorized.to_string(),
            "invalid token (401 unauthorized)\nhint: pass the API token with --token or the INCIDENTD_TOKEN environment variable"
        );
        let proxy = interpret(
            "http://x/api/v1/incidents",
            StatusCode::BAD_GATEWAY,
            "<html>bad gateway</html>\n".to_owned(),
        )
        .unwrap_err();
        assert_eq!(
            proxy.to_string(),
            "http://x/api/v1/incidents answered HTTP 502 without incidentd's JSON (is --url right?): <html>bad gateway</html>"
        );
        let ok = interpret("http://x/", StatusCode::OK, "{\"a\": 1}".to_owned()).unwrap();
        assert_eq!(ok.json, json!({"a": 1}));
        assert_eq!(ok.raw, "{\"a\": 1}");
        assert!(interpret("http://x/", StatusCode::OK, "hello".to_owned()).is_err());
    }

    #[test]
    fn control_characters_from_the_server_never_reach_the_terminal() {
        let hostile = json!({
            "id": "INC-1",
            "state": "open",
            "title": "web\u{1b}]0;pwned\u{7}\n\u{1b}[2J down",
            "category": "avail\u{9b}31m",
            "opened_at": "2026-03-02T09:00:00Z",
            "labels": {"te\u{1b}am": "d\rb"},
            "description": "line one\nline \u{1b}[31mtwo",
            "timeline": [{"at": "x", "actor": "bot\u{0}", "type": "note", "message": "hi\u{1b}[1A"}],
        });
        let list = render_list(std::slice::from_ref(&hostile));
        let show = render_show(&hostile);
        let change = render_change("acknowledged", &hostile);
        let failure = Failure::Api {
            status: 400,
            code: "bad_request".to_owned(),
            message: "unknown category `\u{1b}[2J`".to_owned(),
        };
        for text in [&list, &show, &change, &terminal_safe(&failure.to_string())] {
            assert!(
                !terminal_safe(text)
                    .chars()
                    .any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
        for text in [&list, &show, &change] {
            let shown = terminal_safe(text);
            assert!(
                !shown.contains(['\u{1b}', '\u{9b}', '\u{0}', '\r', '\u{7}']),
                "{shown:?}"
            );
        }
        // Single-line fields stay on their line, escaped as Rust writes them.
        assert!(
            list.contains(r"web\u{1b}]0;pwned\u{7}\n\u{1b}[2J down"),
            "{list}"
        );
        assert!(
            change.ends_with("): web\\u{1b}]0;pwned\\u{7}\\n\\u{1b}[2J down\n"),
            "{change}"
        );
        assert!(show.contains(r"te\u{1b}am=d\rb"), "{show}");
        assert!(show.contains(r"bot\u{0} note: hi\u{1b}[1A"), "{show}");
        // A description keeps its lines.
        let shown = terminal_safe(&show);
        assert!(shown.contains("line one\n"), "{shown}");
        assert!(shown.contains(r"line \u{1b}[31mtwo"), "{shown}");
        assert_eq!(
            terminal_safe(&failure.to_string()),
            r"unknown category `\u{1b}[2J` (400 bad_request)"
        );
        // JSON output: a C1 control that JSON allows raw comes out as its JSON escape.
        assert_eq!(
            pretty("{\"a\":\"x\u{9b}y\\u001b\"}"),
            "{\n  \"a\": \"x\\u009by\\u001b\"\n}\n"
        );
    }
}
