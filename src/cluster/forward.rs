//! Writes that reach a standby are carried out by the leader: the request is passed on as
//! it came (method, path, query, headers, body) and the leader's answer is answered, so a
//! `2xx` means what it means on the leader: durable. Reads are answered by every replica
//! from its own read model.
//!
//! With no leader known (a failover under way), a write waits for one up to `write_wait`,
//! then gets `503` with `Retry-After`. A request is passed on once only: one that reaches a
//! standby already forwarded (the leader changed meanwhile) is answered `503`, never sent
//! around. A request the leader did not answer (it died meanwhile) is answered `502`: it
//! may or may not have been carried out, and is not sent again on the caller's behalf.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Cluster;
use crate::engine::EngineHandle;

/// Marks a request one replica passed to another.
pub const FORWARDED: &str = "x-incidentd-forwarded";

/// What forwarding needs; the state of [`forward`].
#[derive(Clone)]
pub struct Forwarder {
    pub cluster: Cluster,
    pub engine: EngineHandle,
    pub client: reqwest::Client,
    /// The most a body may be (what the API takes).
    pub max_body: usize,
}

impl Forwarder {
    pub fn new(cluster: Cluster, engine: EngineHandle, max_body: usize) -> Forwarder {
        Forwarder {
            cluster,
            engine,
            client: crate::notify::outbound_client(),
            max_body,
        }
    }
}

/// Whether the request changes something, so that the leader must carry it out. A reload
/// (`/-/reload`) is this replica's own; a subscription's confirmation link is a `GET` that
/// writes.
pub fn needs_leader(method: &Method, path: &str) -> bool {
    if path == "/-/reload" {
        return false;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return path.starts_with("/subscriptions/confirm/");
    }
    true
}

/// The middleware: a write on a standby goes to the leader.
pub async fn forward(State(forwarder): State<Forwarder>, request: Request, next: Next) -> Response {
    if forwarder.engine.is_leading() || !needs_leader(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    if request.headers().contains_key(FORWARDED) {
        return unavailable("this replica no longer leads; retry", 1);
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, forwarder.max_body).await {
        Ok(body) => body,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over the limit of {} bytes", forwarder.max_body),
            );
        }
    };
    let wait = forwarder.cluster.write_wait();
    let deadline = tokio::time::Instant::now() + wait;
    let mut leader = forwarder.cluster.leader_url();
    loop {
        // Became the leader while waiting: carry it out here.
        if forwarder.engine.is_leading() {
            let request = Request::from_parts(parts, Body::from(body));
            return next.run(request).await;
        }
        let url = leader.borrow_and_update().clone();
        if let Some(url) = url {
            match send(&forwarder, &parts, body.clone(), &url).await {
                Sent::Answered(response) => return response,
                Sent::NotDelivered(why) => {
                    tracing::debug!(leader = %url, %why, "the leader could not be reached; waiting for one");
                }
                Sent::Lost(why) => {
                    tracing::warn!(leader = %url, %why, "the leader did not answer a forwarded write");
                    return error(
                        StatusCode::BAD_GATEWAY,
                        "the leader did not answer; the request may or may not have been carried out"
                            .to_owned(),
                    );
                }
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return unavailable(
                "no replica leads (a failover is under way); retry",
                wait.as_secs().max(1),
            );
        }
        // A new leader is announced, or look again shortly (the same one may be back).
        let _ = tokio::time::timeout(
            Duration::from_millis(250).min(deadline - now),
            leader.changed(),
        )
        .await;
    }
}

enum Sent {
    Answered(Response),
    /// The request never reached the leader: it may be sent again.
    NotDelivered(String),
    /// It was sent and no answer came.
    Lost(String),
}

async fn send(
    forwarder: &Forwarder,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
    leader: &str,
) -> Sent {
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let mut headers = end_to_end(&parts.headers);
    headers.insert(
        HeaderName::from_static(FORWARDED),
        HeaderValue::from_str(forwarder.cluster.replica_id())
            .unwrap_or(HeaderValue::from_static("standby")),
    );
    let request = forwarder
        .client
        .request(parts.method.clone(), format!("{leader}{path}"))
        .headers(headers)
        .body(body);
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if error.is_connect() => return Sent::NotDelivered(error.to_string()),
        Err(error) => return Sent::Lost(error.to_string()),
    };
    let status = response.status();
    let headers = end_to_end(response.headers());
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return Sent::Lost(error.to_string()),
    };
    let mut answer = Response::new(Body::from(bytes));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Sent::Answered(answer)
}

/// The headers without the hop-by-hop ones (and those the client sets again).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in [
        header::CONNECTION,
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        out.remove(name);
    }
    out.remove("keep-alive");
    out
}

fn unavailable(message: &str, retry_after: u64) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message.to_owned());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_need_the_leader_and_reads_do_not() {
        assert!(needs_leader(&Method::POST, "/api/v1/incidents"));
        assert!(needs_leader(&Method::PATCH, "/api/v1/incidents/INC-1"));
        assert!(needs_leader(&Method::DELETE, "/api/v1/maintenances/3"));
        assert!(needs_leader(&Method::POST, "/api/v2/alerts"));
        assert!(needs_leader(&Method::POST, "/console/sign-in"));
        assert!(needs_leader(&Method::GET, "/subscriptions/confirm/abc"));
        assert!(!needs_leader(&Method::GET, "/api/v1/incidents"));
        assert!(!needs_leader(&Method::GET, "/console"));
        assert!(!needs_leader(&Method::HEAD, "/"));
        assert!(!needs_leader(&Method::POST, "/-/reload"), "a replica's own");
    }

    #[test]
    fn hop_by_hop_headers_are_not_passed_on() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert(header::HOST, HeaderValue::from_static("standby:9750"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        let out = end_to_end(&headers);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key(header::AUTHORIZATION));
    }
}
