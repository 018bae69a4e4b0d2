//! The reporter's private page, `/r/{token}`: what a ticket's reporter sees of it — state,
//! priority, expected first response and resolution, public notes, their own comments and
//! the calls scheduled — and a form to add a comment (no JavaScript; the guard lets this
//! form through like the sign-up form, after its cross-site check).
//!
//! A link is a random 256-bit token (base64url, 43 characters). Only its SHA-256 is stored
//! (`store::reporter`), issued in the ticket's own commit; the token is answered once, in
//! the ticket's `201` (or a rotation's), and appears in no event, log, metric or incident
//! JSON. A link that is unknown, replaced or revoked answers 404 and takes no comment.
//! What the page shows is decided by `Restrictions::reporter_view` (`view.rs`), the one
//! place that redacts: never internal notes, evidence or labels, and of a restricted
//! incident only its id, state, opening and when and where its calls are.
//!
//! Answers carry `Cache-Control: no-store` and `Referrer-Policy: same-origin`, so neither a
//! cache nor the meeting site a call links to learns the link. (Not `no-referrer`: with it
//! browsers send `Origin: null` with the page's own form, which the guard's cross-site
//! check rightly refuses.)

use std::time::{Duration, Instant};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use super::page::Stamp;
use super::render::CSS_PATH;
use super::subscribe::{form_pairs, valid_token};
use crate::api::secret::hash;
use crate::api::{ApiError, ApiState};
use crate::engine::EngineError;
use crate::view::{Expected, ReporterView};

/// A comment's length at most, in characters (a silence's comment's limit).
pub const MAX_COMMENT: usize = 4 * 1024;
/// Comments one link may add per [`COMMENT_WINDOW`].
pub const COMMENTS_PER_WINDOW: usize = 5;
pub const COMMENT_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Links whose comments are counted at once at most.
pub const MAX_COUNTED_LINKS: usize = 10_000;

pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new().route("/r/{token}", get(show).post(comment))
}

/// Every answer of these routes: never cached, never sent on as a referrer.
fn private(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    response
}

#[derive(Template)]
#[template(path = "reporter.html")]
struct Page<'a> {
    site: &'a str,
    css: &'a str,
    /// The form posts here.
    action: String,
    report: Report,
    /// Said above the form after a comment was added.
    added: bool,
    /// Why a comment was refused.
    problem: Option<String>,
}

#[derive(Template)]
#[template(path = "reporter_invalid.html")]
struct Invalid<'a> {
    site: &'a str,
    css: &'a str,
}

/// The reporter's view with its times in the status page's time zone.
struct Report {
    id: String,
    restricted: bool,
    title: Option<String>,
    state: &'static str,
    priority: Option<&'static str>,
    service: Option<String>,
    opened: Stamp,
    first_response: Option<String>,
    resolution: Option<String>,
    updates: Vec<Update>,
    calls: Vec<CallModel>,
    open_for_comments: bool,
}

struct Update {
    at: Stamp,
    from_reporter: bool,
    text: String,
}

struct CallModel {
    at: Stamp,
    url: String,
    participants: String,
    note: Option<String>,
}

/// What the reporter reads for a state.
fn state_words(state: &str) -> &'static str {
    match state {
        "open" => "Received, waiting for a responder",
        "acknowledged" => "Being worked on",
        "on_hold" => "On hold",
        "resolved" => "Resolved",
        _ => "Closed",
    }
}

/// "by 2 Mar 2026, 11:00 WIB", "met", …: when an answer is expected, or how it went.
fn expected(clock: &Expected, tz: chrono_tz::Tz) -> String {
    let at = |t| Stamp::new(t, tz).local;
    match (clock.state, clock.due_at, clock.stopped_at) {
        ("running", Some(due), _) => format!("by {}", at(due)),
        ("breached", Some(due), None) => format!("overdue since {}", at(due)),
        ("paused", ..) => "paused while the report is on hold".to_owned(),
        ("met", _, Some(stopped)) => format!("done {}", at(stopped)),
        ("breached", _, Some(stopped)) => format!("done {} (later than promised)", at(stopped)),
        _ => "—".to_owned(),
    }
}

impl Report {
    fn new(view: ReporterView, tz: chrono_tz::Tz) -> Report {
        Report {
            id: view.id,
            restricted: view.restricted,
            title: view.title,
            state: state_words(view.state),
            priority: view.priority,
            service: view.service,
            opened: Stamp::new(view.opened_at, tz),
            first_response: view.first_response.map(|c| expected(&c, tz)),
            resolution: view.resolution.map(|c| expected(&c, tz)),
            updates: view
                .updates
                .into_iter()
                .rev()
                .map(|u| Update {
                    at: Stamp::new(u.at, tz),
                    from_reporter: u.from_reporter,
                    text: u.text,
                })
                .collect(),
            calls: view
                .calls
                .into_iter()
                .map(|c| CallModel {
                    at: Stamp::new(c.at, tz),
                    url: c.url,
                    participants: c.participants.join(", "),
                    note: c.note,
                })
                .collect(),
            open_for_comments: view.open_for_comments,
        }
    }
}

fn invalid(state: &ApiState) -> Response {
    let site = state.read.borrow().status_page.title.clone();
    let html = Invalid {
        site: &site,
        css: &CSS_PATH,
    }
    .render()
    .unwrap_or_default();
    private(StatusCode::NOT_FOUND, html)
}

/// The page of the link with this token, or the "not valid" page when no working link has
/// it.
async fn page(
    state: &ApiState,
    token: &str,
    status: StatusCode,
    added: bool,
    problem: Option<String>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let hash = hash(token);
    let found = tokio::task::spawn_blocking(move || {
        let Some(id) = store.reporter_link(&hash)? else {
            return Ok(None);
        };
        store.get_incident_with_timeline(id)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let Some((incident, timeline)) = found else {
        return Ok(invalid(state));
    };
    let (restrictions, page) = {
        let snapshot = state.read.borrow();
        (snapshot.restrictions.clone(), snapshot.status_page.clone())
    };
    let view = restrictions.reporter_view(&incident, &timeline);
    let html = Page {
        site: &page.title,
        css: &CSS_PATH,
        action: format!("/r/{token}"),
        report: Report::new(view, page.timezone),
        added,
        problem,
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(private(status, html))
}

/// `GET /r/{token}`.
async fn show(State(state): State<ApiState>, Path(token): Path<String>, uri: Uri) -> Response {
    if !valid_token(&token) {
        return invalid(&state);
    }
    let added = uri.query() == Some("added");
    page(&state, &token, StatusCode::OK, added, None)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /r/{token}` with the form's `comment`: on the timeline as from the reporter, then
/// back to the page (303). Refused: an unknown or revoked link (404), an empty or too long
/// comment (400), more than [`COMMENTS_PER_WINDOW`] per link in [`COMMENT_WINDOW`] (429), a
/// closed ticket (409).
async fn comment(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    if !valid_token(&token) {
        return invalid(&state);
    }
    // A browser sends line breaks as CRLF; the timeline keeps LF only.
    let text = form_pairs(&body)
        .into_iter()
        .find(|(key, _)| key == "comment")
        .map(|(_, value)| value.replace("\r\n", "\n").replace('\r', "\n"))
        .unwrap_or_default();
    let text = text.trim().to_owned();
    let refused = |status: StatusCode, problem: String| {
        let state = state.clone();
        let token = token.clone();
        async move {
            page(&state, &token, status, false, Some(problem))
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
    };
    if text.is_empty() {
        return refused(StatusCode::BAD_REQUEST, "Write a comment first.".to_owned()).await;
    }
    if let Err(error) = crate::api::check_text("comment", &text, MAX_COMMENT) {
        return refused(StatusCode::BAD_REQUEST, error.message).await;
    }
    let hash = hash(&token);
    // Only a working link is counted: made-up tokens never fill the limiter.
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.reporter_link(&hash)).await {
        Ok(Ok(Some(_))) => {}
        Ok(Ok(None)) => return invalid(&state),
        Ok(Err(error)) => return ApiError::internal(error).into_response(),
        Err(error) => return ApiError::internal(error).into_response(),
    }
    if let Err(wait) = state.reporter_comments.admit(hash, Instant::now()) {
        let mut response = refused(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "You added {COMMENTS_PER_WINDOW} comments in a short time; try again in {} minutes.",
                wait.div_ceil(60)
            ),
        )
        .await;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&wait.to_string()).expect("digits"),
        );
        return response;
    }
    match state.engine.reporter_comment(hash, text).await {
        Ok(_) => Redirect::to(&format!("/r/{token}?added")).into_response(),
        Err(EngineError::UnknownLink | EngineError::NotFound(_)) => invalid(&state),
        Err(EngineError::Transition(_)) => {
            refused(
                StatusCode::CONFLICT,
                "This report is closed: it takes no more comments.".to_owned(),
            )
            .await
        }
        Err(error) => {
            let error = ApiError::from(error);
            refused(error.status, error.message).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_links_are_valid_tokens() {
        let (token, _) = crate::api::secret::issue();
        assert!(valid_token(&token), "{token}");
    }

    #[test]
    fn expected_times_read_as_a_promise_or_how_it_went() {
        let at = chrono::DateTime::from_timestamp(1_772_445_600, 0).unwrap();
        let tz = chrono_tz::Asia::Jakarta;
        let clock = |state, due_at, stopped_at| Expected {
            state,
            due_at,
            stopped_at,
        };
        assert_eq!(
            expected(&clock("running", Some(at), None), tz),
            "by 2 Mar 2026, 17:00 WIB"
        );
        assert_eq!(
            expected(&clock("met", None, Some(at)), tz),
            "done 2 Mar 2026, 17:00 WIB"
        );
        assert_eq!(
            expected(&clock("paused", None, None), tz),
            "paused while the report is on hold"
        );
    }
}
