//! The responder console (`/console`): server-rendered pages for people who run the
//! workflow — the queue of open incidents with their SLA countdowns, one incident with a
//! form per verb, live updates over Server-Sent Events — behind a session opened with an
//! API token. Every verb goes through the API's own path (`api::workflow::perform`), every
//! incident through `view.rs`'s one redaction ([`crate::view::Restrictions::shown`]).
//!
//! - `session.rs`: sign-in, sessions (cookie, CSRF token), sign-out, who is asking.
//! - `filters.rs`: which incidents the queue shows (filters, search, "mine", sort, pages).
//! - `queue.rs`: `GET /console` and bulk verbs.
//! - `incident.rs`: `GET /console/incidents/{id}` and its forms.
//! - `live.rs`: `GET /console/events`, which incidents changed, per commit.
//! - `model.rs`: what the templates show, built from the incidents and their clocks.
//! - `render.rs`: the templates (`templates/console/`), script and stylesheet.

mod filters;
mod form;
mod incident;
mod live;
mod model;
mod queue;
mod render;
mod session;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::ApiState;

pub use crate::api::console::{MAX_STREAMS, SIGN_INS_PER_MINUTE};
pub use session::{COOKIE, SESSION_HOURS};

/// The console's routes, on the API's state (behind its guard and body limit).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/console", get(queue::page))
        .route("/console/bulk", post(queue::bulk))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/events", get(live::events))
        .route("/console/static/{file}", get(render::asset))
        .route("/console/incidents/{id}", get(incident::page))
        .route("/console/incidents/{id}/report", get(incident::report))
        .route("/console/incidents/{id}/{verb}", post(incident::act))
}

/// An HTML answer of the console: never cached, never framed, scripts and styles only from
/// this server.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A redirect after a form (POST-redirect-GET) or to the sign-in page.
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
