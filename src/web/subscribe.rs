//! Status-page subscriptions over HTTP. Public:
//!
//! - `POST /subscriptions` — form-urlencoded (the page's form) or JSON. Fields: `email` or
//!   `webhook_url`, and `services` (repeat the field, or a JSON list; none: every service).
//!   Email: stored unconfirmed, a confirmation mail queued (202); webhook: confirmed at once,
//!   201 with `{id, secret}` — the secret shown this once. The same address again creates no
//!   duplicate. At most [`PER_MINUTE`](crate::api::signups::PER_MINUTE) sign-ups a minute per client IP (429, `Retry-After`).
//! - `GET /subscriptions/confirm/{token}` — confirms (a small HTML page).
//! - `GET /subscriptions/unsubscribe/{token}` — a button; `POST` the same path unsubscribes
//!   (RFC 8058 one-click: mail clients POST `List-Unsubscribe=One-Click`).
//!
//! Admin: `GET /api/v1/subscribers` (export), `DELETE /api/v1/subscribers/{id}`.
//! Addresses never appear in a public answer, a log or a metric.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::api::{ApiError, ApiState};
use crate::engine::subscriptions::{NewSubscriber, SignUp, SubsAnswer, SubsOp};
use crate::store::Channel;

const MAX_URL: usize = 2048;
const MAX_EMAIL: usize = 254;

pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/subscriptions", post(subscribe))
        .route("/subscriptions/confirm/{token}", get(confirm))
        .route(
            "/subscriptions/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .route("/api/v1/subscribers", get(export))
        .route(
            "/api/v1/subscribers/{id}",
            axum::routing::delete(delete_subscriber),
        )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    (status, Html(html)).into_response()
}

/// `email`, `webhook_url`, `services`.
type Fields = (Option<String>, Option<String>, Vec<String>);

/// Whether the body is JSON (else it is the page's form).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

/// The sign-up's fields, from a form or JSON.
fn fields(headers: &HeaderMap, body: &[u8]) -> Result<Fields, ApiError> {
    if is_json(headers) {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
        let text = |key: &str| -> Result<Option<String>, ApiError> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
                Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
            }
        };
        let services = match value.get("services") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::bad_request("services must be a list of names"))?,
            Some(_) => return Err(ApiError::bad_request("services must be a list of names")),
        };
        return Ok((text("email")?, text("webhook_url")?, services));
    }
    let (mut email, mut url, mut services) = (None, None, Vec::new());
    for (key, value) in form_pairs(body) {
        match key.as_str() {
            "email" if !value.trim().is_empty() => email = Some(value.trim().to_owned()),
            "webhook_url" if !value.trim().is_empty() => url = Some(value.trim().to_owned()),
            "services" | "services[]" => services.push(value),
            _ => {}
        }
    }
    Ok((email, url, services))
}

/// `application/x-www-form-urlencoded` pairs, at most 200 (the rest are ignored).
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .take(200)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

fn valid_email(email: &str) -> bool {
    email.len() <= MAX_EMAIL
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
        && email.parse::<lettre::Address>().is_ok()
}

async fn subscribe(
    State(state): State<ApiState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let signups = &state.signups;
    let (email, url, mut services) = fields(&headers, &body)?;
    services.sort();
    services.dedup();
    if services.len() > 500 {
        return Err(ApiError::bad_request("services: at most 500"));
    }
    // The services listed now (a reload may have changed them).
    let listed = state.read.borrow().status_page.clone();
    if let Some(unknown) = listed.unknown_service(&services) {
        return Err(ApiError::bad_request(format!(
            "services: unknown service `{}`",
            escape(&unknown.chars().take(64).collect::<String>())
        )));
    }
    let new = match (email, url) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "email, webhook_url: give one of them, not both",
            ));
        }
        (None, None) => return Err(ApiError::bad_request("email: required (or webhook_url)")),
        (Some(email), None) => {
            if !signups.mail && !is_json(&headers) {
                // A person posted the page's form: a page to read, not JSON.
                return Ok(page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Email subscriptions unavailable",
                    "<p>This status page cannot send email, so it takes no email subscriptions.</p>",
                ));
            }
            if !signups.mail {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "mail_unavailable",
                    "email subscriptions are unavailable: no mail relay is configured",
                ));
            }
            if !valid_email(&email) {
                return Err(ApiError::bad_request("email: not a valid email address"));
            }
            NewSubscriber {
                channel: Channel::Email,
                address: email,
                services,
            }
        }
        (None, Some(url)) => {
            let lower = url.to_ascii_lowercase();
            if url.len() > MAX_URL
                || !(lower.starts_with("http://") || lower.starts_with("https://"))
                || url
                    .parse::<axum::http::Uri>()
                    .map_or(true, |u| u.host().is_none())
            {
                return Err(ApiError::bad_request(
                    "webhook_url: must be an http(s) URL of at most 2 KiB",
                ));
            }
            NewSubscriber {
                channel: Channel::Webhook,
                address: url,
                services,
            }
        }
    };
    let ip = peer.map_or(
        IpAddr::from([0, 0, 0, 0]),
        |axum::Extension(ConnectInfo(a))| a.ip(),
    );
    if let Err(wait) = signups.admit(ip, Instant::now()) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many sign-ups from this address; try again later",
        )
        .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            wait.to_string().parse().expect("digits"),
        );
        return Ok(response);
    }
    let answer = state
        .engine
        .subscriptions(SubsOp::SignUp(new))
        .await
        .map_err(ApiError::from)?;
    let SubsAnswer::SignUp(signup) = answer else {
        return Err(ApiError::internal("unexpected answer"));
    };
    Ok(match signup {
        SignUp::Created(s) if s.channel == Channel::Webhook => (
            StatusCode::CREATED,
            Json(json!({"id": s.id, "channel": "webhook", "secret": s.secret, "services": s.services})),
        )
            .into_response(),
        // The same answer whether the address was known or not: nobody learns who subscribed.
        _ if !is_json(&headers) => page(
            StatusCode::ACCEPTED,
            "Check your mailbox",
            "<p>Check your mailbox: we sent a link to confirm your subscription. Nothing is sent until you follow it.</p><p><a href=\"/\">Back to the status page</a></p>",
        ),
        _ => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "pending", "message": "check your mailbox for a confirmation link"})),
        )
            .into_response(),
    })
}

pub(crate) fn valid_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn token_op(state: &ApiState, op: SubsOp) -> Result<bool, Response> {
    match state.engine.subscriptions(op).await {
        Ok(SubsAnswer::Found(found)) => Ok(found),
        _ => Err(page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again later",
            "<p>The change could not be stored. Please try again later.</p>",
        )),
    }
}

/// A token that is not one of ours, whatever it is.
fn unknown_link() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Unknown link",
        "<p>This link is not valid.</p>",
    )
}

async fn confirm(
    State(state): State<ApiState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    if !valid_token(&token) {
        return unknown_link();
    }
    match token_op(&state, SubsOp::Confirm(token)).await {
        Ok(true) => page(
            StatusCode::OK,
            "Subscription confirmed",
            "<p>You will be told of incidents by email. Every mail has a link to unsubscribe.</p>",
        ),
        Ok(false) => page(
            StatusCode::NOT_FOUND,
            "Unknown link",
            "<p>This link is not valid (or you unsubscribed).</p>",
        ),
        Err(response) => response,
    }
}

async fn unsubscribe_page(axum::extract::Path(token): axum::extract::Path<String>) -> Response {
    if !valid_token(&token) {
        return unknown_link();
    }
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<form method=\"post\" action=\"/subscriptions/unsubscribe/{}\"><button type=\"submit\">Unsubscribe</button></form>",
            escape(&token)
        ),
    )
}

async fn unsubscribe(
    State(state): State<ApiState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    if !valid_token(&token) {
        return unknown_link();
    }
    match token_op(&state, SubsOp::Unsubscribe(token)).await {
        Ok(_) => page(
            StatusCode::OK,
            "Unsubscribed",
            "<p>You will get no more mail from this status page.</p>",
        ),
        Err(response) => response,
    }
}

/// `GET /api/v1/subscribers`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Subscribers {
    subscribers: Vec<SubscriberView>,
}

/// A status-page subscriber, as only an admin sees it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Subscriber)]
struct SubscriberView {
    id: u64,
    /// `email` or `webhook`.
    #[schema(value_type = String)]
    channel: &'static str,
    address: String,
    /// Empty: every service.
    services: Vec<String>,
    created_at: String,
    /// Null until the address is confirmed (mail's double opt-in).
    confirmed_at: Option<String>,
}

/// `GET /api/v1/subscribers` (admin): the status page's subscribers.
#[utoipa::path(get, path = "/api/v1/subscribers", tag = "subscribers",
    responses((status = 200, description = "Every subscriber", body = Subscribers)))]
pub(crate) async fn export(
    caller: crate::api::Caller,
    State(state): State<ApiState>,
) -> Result<Json<Subscribers>, ApiError> {
    caller.require(crate::api::Need::Admin)?;
    let store = state.store.clone();
    let loaded = tokio::task::spawn_blocking(move || store.load_subscriptions())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let subscribers = loaded
        .subscribers
        .iter()
        .map(|s| SubscriberView {
            id: s.id,
            channel: s.channel.as_str(),
            address: s.address.clone(),
            services: s.services.clone(),
            created_at: crate::view::timestamp(s.created_at),
            confirmed_at: s.confirmed_at.map(crate::view::timestamp),
        })
        .collect();
    Ok(Json(Subscribers { subscribers }))
}

/// `DELETE /api/v1/subscribers/{id}` (admin): the subscriber is forgotten.
#[utoipa::path(delete, path = "/api/v1/subscribers/{id}", tag = "subscribers",
    params(("id" = String, Path, description = "The subscriber's id (a number)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such subscriber", body = crate::api::ErrorBody),
    ))]
pub(crate) async fn delete_subscriber(
    caller: crate::api::Caller,
    State(state): State<ApiState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(crate::api::Need::Admin)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("id: must be a subscriber id (a number)"))?;
    match state.engine.subscriptions(SubsOp::Delete(id)).await? {
        SubsAnswer::Found(true) => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::not_found(format!("subscriber {id} not found"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_decode() {
        let pairs = form_pairs(b"email=ana%40example.com&services=api&services=web+ui");
        assert_eq!(pairs[0], ("email".to_owned(), "ana@example.com".to_owned()));
        assert_eq!(pairs[2].1, "web ui");
    }
}
