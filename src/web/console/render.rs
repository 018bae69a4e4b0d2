//! The console's pages (askama templates in `templates/console/`, escaped by default), its
//! stylesheet and script (`static/console.css`, `static/console.js`, served under names
//! that change with their content).

use std::sync::LazyLock;

use askama::Template;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::filters::{Filters, Queue, SOURCES};
use super::html;
use super::model::{Actions, Clock, Entry, EvidenceItem, Refused, Stamp, Viewer, state_label};
use crate::api::ApiError;
use crate::domain::incident::{Incident, Tier, TimelineEntry};
use crate::domain::priority::{Level, Priority};
use crate::view::RestrictedView;
use crate::web::render::hex;

const CSS: &str = include_str!("../../../static/console.css");
const JS: &str = include_str!("../../../static/console.js");

fn hashed(name: &str, ext: &str, content: &str) -> String {
    let hash = Sha256::digest(content.as_bytes());
    format!("{name}.{}.{ext}", &hex(&hash)[..12])
}

static CSS_FILE: LazyLock<String> = LazyLock::new(|| hashed("console", "css", CSS));
static JS_FILE: LazyLock<String> = LazyLock::new(|| hashed("console", "js", JS));

/// `GET /console/static/{file}`: the stylesheet and the script, cached for good (their
/// names change with their content).
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    let (content, kind) = if file == *CSS_FILE {
        (CSS, "text/css; charset=utf-8")
    } else if file == *JS_FILE {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such file.");
    };
    let mut response = content.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Who is signed in, for the header.
pub(super) struct Who {
    pub name: String,
    pub role: &'static str,
    /// A session to end (not the open mode).
    pub signed_in: bool,
}

/// What every console page has around its content.
pub(super) struct Chrome {
    pub title: String,
    pub css: String,
    pub js: String,
    pub who: Option<Who>,
    pub csrf: String,
    /// `queue`, `incident` or empty: what the script keeps up to date.
    pub live: &'static str,
}

impl Chrome {
    fn new(title: impl Into<String>, viewer: Option<&Viewer>, live: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            css: format!("/console/static/{}", *CSS_FILE),
            js: format!("/console/static/{}", *JS_FILE),
            who: viewer.map(|v| Who {
                name: v.caller.name.clone(),
                role: v.caller.role_name(),
                signed_in: v.key.is_some(),
            }),
            csrf: viewer.map(|v| v.csrf.clone()).unwrap_or_default(),
            live,
        }
    }
}

/// Askama renders into a `String`; a failure can only come from a `Display` impl of ours.
fn rendered(result: askama::Result<String>) -> String {
    result.unwrap_or_else(|error| {
        tracing::error!(%error, "rendering a console template failed");
        String::new()
    })
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct Message<'a> {
    chrome: Chrome,
    text: &'a str,
}

/// A page that says one thing (an error, a refusal).
pub(super) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html(
        status,
        rendered(
            Message {
                chrome: Chrome::new(title, None, ""),
                text,
            }
            .render(),
        ),
    )
}

/// The page of an error the API would have answered.
pub(super) fn failed(error: &ApiError) -> Response {
    message(error.status, "Not done", &error.message)
}

#[derive(Template)]
#[template(path = "console/reload.html")]
struct Reload<'a> {
    here: &'a str,
}

/// Loads `here` again from this page: a same-site navigation, which sends the cookie.
pub(super) fn reload(here: &str) -> String {
    rendered(Reload { here }.render())
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignIn<'a> {
    chrome: Chrome,
    next: &'a str,
    error: Option<&'a str>,
}

pub(super) fn sign_in(next: &str, error: Option<&str>) -> String {
    rendered(
        SignIn {
            chrome: Chrome::new("Sign in", None, ""),
            next,
            error,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage<'a> {
    chrome: Chrome,
    filters: &'a Filters,
    queue: &'a Queue<'a>,
    errors: &'a [(String, String)],
    can_respond: bool,
    is_admin: bool,
    /// The filters as a query string (the bulk form's way back).
    query: String,
    version: u64,
    previous_link: Option<String>,
    next_link: Option<String>,
}

impl QueuePage<'_> {
    fn states(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("active", "Open, acknowledged, on hold"),
            ("open", "Open"),
            ("acknowledged", "Acknowledged"),
            ("on_hold", "On hold"),
            ("resolved", "Resolved"),
            ("all", "All not closed"),
        ]
    }

    fn tiers(&self) -> Vec<&'static str> {
        Tier::ALL.iter().map(|t| t.as_str()).collect()
    }

    fn priorities(&self) -> Vec<&'static str> {
        Priority::ALL.iter().map(|p| p.as_str()).collect()
    }

    fn sources(&self) -> &'static [&'static str] {
        &SOURCES
    }

    fn kinds(&self) -> Vec<&'static str> {
        vec!["incident", "request"]
    }

    fn last(&self) -> usize {
        self.queue.first + self.queue.rows.len()
    }

    fn pick(&self, current: &str, value: &str) -> bool {
        current == value
    }

    fn selected(&self, value: &str, current: &str) -> bool {
        value == current || (value == "active" && current.is_empty())
    }
}

pub(super) fn queue(
    viewer: &Viewer,
    filters: &Filters,
    queue: &Queue<'_>,
    errors: &[(String, String)],
    version: u64,
) -> String {
    let query = filters.query();
    let link = |page: usize| match (query.as_str(), page) {
        ("", 0) => "/console".to_owned(),
        ("", page) => format!("/console?page={page}"),
        (query, 0) => format!("/console?{query}"),
        (query, page) => format!("/console?{query}&page={page}"),
    };
    rendered(
        QueuePage {
            previous_link: queue.previous.map(link),
            next_link: queue.next.map(link),
            chrome: Chrome::new("Queue", Some(viewer), "queue"),
            filters,
            queue,
            errors,
            can_respond: viewer.may_respond(),
            is_admin: viewer.caller.is_admin(),
            query: query.clone(),
            version,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "console/restricted.html")]
struct Restricted<'a> {
    chrome: Chrome,
    view: &'a RestrictedView,
}

pub(super) fn restricted(viewer: &Viewer, view: &RestrictedView) -> String {
    rendered(
        Restricted {
            chrome: Chrome::new(view.id.clone(), Some(viewer), "incident"),
            view,
        }
        .render(),
    )
}

/// What the incident page is made of.
pub(super) struct IncidentInputs<'a> {
    pub viewer: &'a Viewer,
    pub incident: &'a Incident,
    pub timeline: &'a [TimelineEntry],
    pub similar: &'a [&'a Incident],
    pub clocks: Vec<Clock>,
    pub actions: Actions,
    pub refused: Option<&'a Refused>,
    pub now: chrono::DateTime<chrono::Utc>,
}

#[derive(Template)]
#[template(path = "console/incident.html")]
struct IncidentPage<'a> {
    chrome: Chrome,
    id: String,
    incident: &'a Incident,
    state: &'static str,
    opened: Stamp,
    evidence: Vec<EvidenceItem<'a>>,
    timeline: Vec<Entry<'a>>,
    similar: &'a [&'a Incident],
    clocks: &'a [Clock],
    actions: &'a Actions,
    refused: Option<&'a Refused>,
    calls: Vec<CallItem<'a>>,
}

/// A call scheduled with the reporter, as the page lists it.
struct CallItem<'a> {
    at: Stamp,
    url: &'a str,
    participants: String,
    note: Option<&'a str>,
    by: &'a str,
}

impl IncidentPage<'_> {
    /// The server's refusal of `verb`'s form, if that is what this page answers.
    fn error(&self, verb: &str) -> Option<&str> {
        self.refused
            .filter(|r| r.verb == verb)
            .map(|r| r.message.as_str())
    }

    /// What was typed in `verb`'s field `name` before the server refused it.
    fn typed(&self, verb: &str, name: &str) -> &str {
        self.refused
            .filter(|r| r.verb == verb)
            .and_then(|r| r.form.get(name))
            .unwrap_or("")
    }

    /// The server's refusal of a form this page does not show (the state or the role
    /// changed since): said at the top.
    fn orphan_error(&self) -> Option<&str> {
        let refused = self.refused?;
        let a = self.actions;
        let shown = match refused.verb.as_str() {
            "acknowledge" => a.acknowledge,
            "escalate" => a.escalate,
            "notes" => a.note,
            "hold" => a.hold,
            "resume" => a.resume,
            "resolve" => a.resolve,
            "close" => a.close,
            "reopen" => a.reopen,
            "edit" => a.edit,
            "call" => a.call,
            _ => false,
        };
        (!shown).then_some(refused.message.as_str())
    }

    fn levels(&self) -> Vec<&'static str> {
        Level::ALL.iter().map(|l| l.as_str()).collect()
    }

    fn priorities(&self) -> Vec<&'static str> {
        Priority::ALL.iter().map(|p| p.as_str()).collect()
    }

    fn any_action(&self) -> bool {
        let a = self.actions;
        a.acknowledge
            || a.escalate
            || a.note
            || a.hold
            || a.resume
            || a.resolve
            || a.close
            || a.reopen
            || a.edit
            || a.call
    }
}

pub(super) fn incident(inputs: &IncidentInputs<'_>) -> String {
    let incident = inputs.incident;
    let mut timeline: Vec<Entry<'_>> = inputs.timeline.iter().map(Entry::of).collect();
    timeline.reverse(); // the newest first
    let _ = inputs.now;
    rendered(
        IncidentPage {
            chrome: Chrome::new(
                format!("{} {}", incident.id, incident.title),
                Some(inputs.viewer),
                "incident",
            ),
            id: incident.id.to_string(),
            incident,
            state: state_label(incident.state),
            opened: Stamp::of(incident.opened_at),
            evidence: incident.evidence.iter().map(EvidenceItem::of).collect(),
            timeline,
            similar: inputs.similar,
            clocks: &inputs.clocks,
            actions: &inputs.actions,
            refused: inputs.refused,
            calls: incident
                .calls
                .iter()
                .map(|call| CallItem {
                    at: Stamp::of(call.at),
                    url: &call.url,
                    participants: call.participants.join(", "),
                    note: call.note.as_deref(),
                    by: &call.scheduled_by,
                })
                .collect(),
        }
        .render(),
    )
}
