//! `GET /console`: the queue. The incidents that are not closed come from the read model
//! (never the store), so a page costs the same whatever the history: filtered (state,
//! tier, priority, kind, source, text, "mine"), sorted (priority, then tier from L3 down,
//! then the oldest first), [`PAGE`] rows a page. A restricted incident that the reader may
//! not see in full matches only what its restricted view shows (id and state) and sorts
//! after the others. `POST /console/bulk` acknowledges or escalates the selected rows.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;

use super::form::{Form, verb_body};
use super::incident::run_verb;
use super::model::Row;
use super::session::{action_viewer, page_viewer};
use super::{html, render, see_other};
use crate::api::{ApiState, Caller};
use crate::domain::incident::{Incident, State as IncidentState, Tier};
use crate::domain::priority::Priority;
use crate::view::Shown;

/// Rows on one page of the queue.
pub const PAGE: usize = 100;
/// The longest search text taken.
const MAX_SEARCH: usize = 200;

/// The queue's filters, as the filter form sends them (unknown values filter nothing out
/// and are shown as they are).
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct Filters {
    /// `active` (default: open, acknowledged, on hold), a state, or `all` (resolved too).
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub tier: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub kind: String,
    /// `rule`, `alert` or `ticket`.
    #[serde(default)]
    pub source: String,
    /// Words in the title, service, labels or id.
    #[serde(default)]
    pub q: String,
    /// `1`: only incidents I acknowledged.
    #[serde(default)]
    pub mine: String,
    #[serde(default)]
    pub page: usize,
}

impl Filters {
    fn states(&self) -> Vec<IncidentState> {
        match self.state.as_str() {
            "" | "active" => vec![
                IncidentState::Open,
                IncidentState::Acknowledged,
                IncidentState::OnHold,
            ],
            "all" => IncidentState::ALL.to_vec(),
            other => IncidentState::ALL
                .into_iter()
                .filter(|s| s.as_str() == other)
                .collect(),
        }
    }

    /// Whether any filter needs more than a restricted view shows.
    fn looks_inside(&self) -> bool {
        !(self.tier.is_empty()
            && self.priority.is_empty()
            && self.kind.is_empty()
            && self.source.is_empty()
            && self.mine.is_empty())
    }

    fn words(&self) -> Vec<String> {
        self.q
            .chars()
            .take(MAX_SEARCH)
            .collect::<String>()
            .to_lowercase()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Whether `incident`, shown in full, passes every filter.
    fn passes(&self, incident: &Incident, me: &str, words: &[String]) -> bool {
        (self.tier.is_empty() || incident.tier.as_str() == self.tier)
            && (self.priority.is_empty() || incident.priority.as_str() == self.priority)
            && (self.kind.is_empty() || incident.kind.as_str() == self.kind)
            && (self.source.is_empty() || incident.source.type_str() == self.source)
            && (self.mine.is_empty() || incident.acknowledged_by.as_deref() == Some(me))
            && words.iter().all(|word| matches_word(incident, word))
    }

    /// The query string of these filters (without the page), for links and redirects.
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("state", &self.state),
            ("tier", &self.tier),
            ("priority", &self.priority),
            ("kind", &self.kind),
            ("source", &self.source),
            ("q", &self.q),
            ("mine", &self.mine),
        ] {
            if !value.is_empty() {
                let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                parts.push(format!("{name}={value}"));
            }
        }
        parts.join("&")
    }
}

/// A search word in the title, service, id or a label (name, value or `name=value`).
fn matches_word(incident: &Incident, word: &str) -> bool {
    let has = |text: &str| text.to_lowercase().contains(word);
    has(&incident.title)
        || incident.service.as_deref().is_some_and(has)
        || has(&incident.id.to_string())
        || incident
            .labels
            .iter()
            .any(|(k, v)| has(k) || has(v) || has(&format!("{k}={v}")))
}

/// Sort key: priority (P1 first), tier (L3 first), the oldest first.
fn rank(incident: &Incident) -> (usize, usize, chrono::DateTime<chrono::Utc>, u64) {
    let priority = Priority::ALL
        .iter()
        .position(|p| *p == incident.priority)
        .unwrap_or(usize::MAX);
    let tier = Tier::ALL
        .iter()
        .rev()
        .position(|t| *t == incident.tier)
        .unwrap_or(usize::MAX);
    (priority, tier, incident.opened_at, incident.id.0)
}

/// The queue as a page model: the rows of the requested page, how many matched.
pub(super) struct Queue<'a> {
    pub rows: Vec<Row<'a>>,
    pub matched: usize,
    pub first: usize,
    pub previous: Option<usize>,
    pub next: Option<usize>,
}

/// Filters, sorts and cuts the incidents that are not closed for `caller`.
pub(super) fn build<'a>(
    incidents: &'a imbl::OrdMap<u64, Arc<Incident>>,
    filters: &Filters,
    caller: &Caller,
    restrictions: &'a crate::view::Restrictions,
    now: chrono::DateTime<chrono::Utc>,
) -> Queue<'a> {
    let states = filters.states();
    let words = filters.words();
    let clearance = caller.clearance();
    let mut full: Vec<&'a Incident> = Vec::new();
    let mut hidden: Vec<&'a Incident> = Vec::new();
    for incident in incidents.values() {
        if !states.contains(&incident.state) {
            continue;
        }
        match restrictions.shown(incident, clearance) {
            Shown::Full(incident) => {
                if filters.passes(incident, &caller.name, &words) {
                    full.push(incident);
                }
            }
            Shown::Restricted(view) => {
                let id = view.id.to_lowercase();
                if !filters.looks_inside() && words.iter().all(|w| id.contains(w.as_str())) {
                    hidden.push(incident);
                }
            }
        }
    }
    full.sort_unstable_by_key(|i| rank(i));
    let matched = full.len() + hidden.len();
    let first = filters.page.saturating_mul(PAGE).min(matched);
    let rows = full
        .into_iter()
        .chain(hidden)
        .skip(first)
        .take(PAGE)
        .map(|incident| {
            Row::new(
                restrictions.shown(incident, clearance),
                restrictions.sla(),
                now,
            )
        })
        .collect();
    Queue {
        rows,
        matched,
        first,
        previous: filters.page.checked_sub(1).filter(|_| first > 0),
        next: (first + PAGE < matched).then_some(filters.page + 1),
    }
}

pub(super) async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, &uri) {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let filters = query.map(|Query(f)| f).unwrap_or_default();
    render_queue(&state, &viewer, &filters, &[], StatusCode::OK)
}

fn render_queue(
    state: &ApiState,
    viewer: &super::session::Viewer,
    filters: &Filters,
    errors: &[(String, String)],
    status: StatusCode,
) -> Response {
    let snapshot = state.read.borrow().clone();
    let now = state.clock.now();
    let queue = build(
        &snapshot.incidents,
        filters,
        &viewer.caller,
        &snapshot.restrictions,
        now,
    );
    html(
        status,
        render::queue(viewer, filters, &queue, errors, snapshot.version),
    )
}

/// `POST /console/bulk`: `ack=<id>` (one row's button) or `action=acknowledge|escalate`
/// with the selected `ids` (at most a page), `reason` and `tier` for escalations. All go
/// to the engine at once (one commit); the queue comes back (POST-redirect-GET), or with
/// each refusal in place.
pub(super) async fn bulk(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = match action_viewer(&state, &headers) {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let form = Form::parse(&body);
    if let Err(response) = viewer.check_csrf(&form) {
        return response;
    }
    let filters: Filters = form
        .get("back")
        .and_then(serde_urlencoded_filters)
        .unwrap_or_default();
    let back = match filters.query() {
        query if query.is_empty() => "/console".to_owned(),
        query => format!("/console?{query}"),
    };
    let (verb, ids): (&str, Vec<String>) = match form.get("ack") {
        Some(id) => ("acknowledge", vec![id.to_owned()]),
        None => (
            match form.get("action") {
                Some("escalate") => "escalate",
                _ => "acknowledge",
            },
            form.all("ids").take(PAGE).map(str::to_owned).collect(),
        ),
    };
    if ids.is_empty() {
        return render_queue(
            &state,
            &viewer,
            &filters,
            &[(String::new(), "Select at least one incident.".to_owned())],
            StatusCode::BAD_REQUEST,
        );
    }
    let body = verb_body(verb, &form).expect("a known verb");
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let (state, caller, body) = (state.clone(), viewer.caller.clone(), body.clone());
        tasks.spawn(async move {
            let result = run_verb(&state, caller, &id, verb, &body).await;
            (id, result)
        });
    }
    let mut errors = Vec::new();
    let mut status = StatusCode::OK;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((_, Ok(_))) => {}
            Ok((id, Err(error))) => {
                if status == StatusCode::OK {
                    status = error.status;
                }
                errors.push((id, error.message));
            }
            Err(error) => errors.push((String::new(), error.to_string())),
        }
    }
    if errors.is_empty() {
        return see_other(&back);
    }
    errors.sort();
    render_queue(&state, &viewer, &filters, &errors, status)
}

/// The filters of a `back` query string (`state=…&q=…`).
fn serde_urlencoded_filters(query: &str) -> Option<Filters> {
    let form = Form::parse(query.as_bytes());
    let text = |name: &str| form.get(name).unwrap_or("").to_owned();
    Some(Filters {
        state: text("state"),
        tier: text("tier"),
        priority: text("priority"),
        kind: text("kind"),
        source: text("source"),
        q: text("q"),
        mine: text("mine"),
        page: 0,
    })
}

/// What the source filter offers.
pub(super) const SOURCES: [&str; 3] = ["rule", "alert", "ticket"];
