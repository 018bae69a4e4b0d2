//! Who is asking: console sessions. A person signs in once with an API token; the server
//! answers a fresh random session id in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure`
//! when `external_url` is https, 12 hours, absolute) and keeps only its SHA-256, with the
//! token's name, never the token (see `store::Session`). Each request finds the session in
//! the read model and resolves the name against the tokens in force, so a token removed
//! (or rotated) by a reload ends its sessions at once. Sign-in always issues a new id and
//! ends the session the browser held, so an id planted before sign-in is never adopted.
//! Every form carries the session's CSRF token, checked in constant time; sign-in attempts
//! are limited per client IP.
//!
//! Open mode (no tokens configured, loopback only): no sign-in, everything allowed, as the
//! API does; the forms carry a CSRF token random per process.

// The refusals are the responses a handler returns at once: boxing them buys nothing.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::form::Form;
use super::model::Viewer;
use super::{html, render, see_other};
use crate::api::{ApiState, Caller};
use crate::engine::sessions::SessionOp;
use crate::store::{Session, SessionKey};

/// The session cookie's name.
pub const COOKIE: &str = "incidentd_session";
/// How long a session lasts from sign-in, however active.
pub const SESSION_HOURS: i64 = 12;
/// The longest token a sign-in form may carry.
const MAX_TOKEN: usize = 4096;

impl Viewer {
    /// Refuses a form without this session's CSRF token (403, a page saying why).
    pub fn check_csrf(&self, form: &Form) -> Result<(), Response> {
        let presented = form.get("csrf").unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes())) && !presented.is_empty() {
            return Ok(());
        }
        Err(render::message(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form did not come from your console session (or the session changed since it was loaded). Reload the page and try again.",
        ))
    }
}

fn key_of(id: &[u8; 32]) -> SessionKey {
    Sha256::digest(id).into()
}

/// HMAC-SHA256 of the token keyed by the session id, hex.
fn token_mac(id: &[u8; 32], token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(id).expect("HMAC takes any key length");
    mac.update(token.as_bytes());
    crate::web::render::hex(&mac.finalize().into_bytes())
}

/// The session id the request's cookie carries, if it is one of the right shape.
fn cookie_id(headers: &HeaderMap) -> Option<[u8; 32]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| URL_SAFE_NO_PAD.decode(value.trim()).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
}

/// The signed-in viewer of a request, or `None` (no session, expired, ended, or its
/// token no longer in force).
pub(super) fn viewer(state: &ApiState, headers: &HeaderMap) -> Option<Viewer> {
    let tokens = state.tokens();
    if tokens.is_empty() {
        return Some(Viewer {
            caller: Caller::open(),
            csrf: state.console.open_csrf.clone(),
            key: None,
        });
    }
    let id = cookie_id(headers)?;
    let key = key_of(&id);
    let session = state.read.borrow().sessions.get(&key).cloned()?;
    if session.expires_at <= state.clock.now() {
        return None;
    }
    let token = tokens.named(&session.token_name)?;
    let mac = token_mac(&id, &token.token);
    if !bool::from(mac.as_bytes().ct_eq(session.token_mac.as_bytes())) {
        return None;
    }
    Some(Viewer {
        caller: Caller::of_token(token),
        csrf: session.csrf.clone(),
        key: Some(key),
    })
}

/// For a page: the viewer, or a redirect to the sign-in page that comes back here.
pub(super) fn page_viewer(
    state: &ApiState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Viewer, Response> {
    if let Some(viewer) = viewer(state, headers) {
        return Ok(viewer);
    }
    // A link followed from another site comes without the `SameSite=Strict` cookie: load
    // the page again from here (same-site), which sends it.
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    let here = uri
        .path_and_query()
        .map_or("/console", axum::http::uri::PathAndQuery::as_str);
    if cross_site && safe_next(here) {
        return Err(html(StatusCode::OK, render::reload(here)));
    }
    let next = if safe_next(here) && here != "/console" {
        let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
        format!("/console/sign-in?next={next}")
    } else {
        "/console/sign-in".to_owned()
    };
    Err(see_other(&next))
}

/// For a form or the event stream: the viewer, or 401 (a page to sign in again).
pub(super) fn action_viewer(state: &ApiState, headers: &HeaderMap) -> Result<Viewer, Response> {
    viewer(state, headers).ok_or_else(|| {
        render::message(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "Your console session has ended. Sign in again; nothing was changed.",
        )
    })
}

/// Where a sign-in may send the browser: a console path of ours, nothing else.
fn safe_next(next: &str) -> bool {
    next.len() <= 1024
        && (next == "/console" || next.starts_with("/console/") || next.starts_with("/console?"))
        && !next.contains("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic())
}

#[derive(Debug, Deserialize)]
pub(super) struct SignInQuery {
    next: Option<String>,
}

pub(super) async fn sign_in_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = query
        .ok()
        .and_then(|Query(q)| q.next)
        .filter(|next| safe_next(next))
        .unwrap_or_else(|| "/console".to_owned());
    if state.tokens().is_empty() || viewer(&state, &headers).is_some() {
        return see_other(&next);
    }
    html(StatusCode::OK, render::sign_in(&next, None))
}

pub(super) async fn sign_in(
    State(state): State<ApiState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let next = form
        .get("next")
        .filter(|next| safe_next(next))
        .unwrap_or("/console")
        .to_owned();
    let tokens = state.tokens();
    if tokens.is_empty() {
        return see_other(&next);
    }
    let ip = peer.map_or(
        IpAddr::from([0, 0, 0, 0]),
        |axum::Extension(ConnectInfo(a))| a.ip(),
    );
    if let Err(wait) = state.console.sign_ins.admit(ip, Instant::now()) {
        let mut response = html(
            StatusCode::TOO_MANY_REQUESTS,
            render::sign_in(
                &next,
                Some(&format!(
                    "Too many sign-in attempts from your address; try again in {wait} s."
                )),
            ),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&wait.to_string()).expect("digits"),
        );
        return response;
    }
    let presented = form.get("token").unwrap_or("").trim();
    let token = (presented.len() <= MAX_TOKEN)
        .then(|| tokens.find(presented))
        .flatten();
    let Some(token) = token else {
        tracing::info!(%ip, "console sign-in refused: not a token in force");
        return html(
            StatusCode::UNAUTHORIZED,
            render::sign_in(&next, Some("That is not a valid token.")),
        );
    };
    // A new id every time; the one the browser held (if it was a session) ends.
    let replaces = cookie_id(&headers)
        .map(|id| key_of(&id))
        .filter(|key| state.read.borrow().sessions.contains_key(key));
    let id = crate::api::secret::random_bytes();
    let now = state.clock.now();
    let session = Session {
        token_name: token.name.clone(),
        token_mac: token_mac(&id, &token.token),
        csrf: crate::api::secret::random(),
        created_at: now,
        expires_at: now + TimeDelta::hours(SESSION_HOURS),
    };
    let name = token.name.clone();
    drop(tokens);
    if let Err(error) = state
        .engine
        .sessions(SessionOp::Open {
            key: key_of(&id),
            session,
            replaces,
        })
        .await
    {
        tracing::warn!(%error, "a console session could not be stored");
        return render::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again later",
            "The session could not be stored. Please try again later.",
        );
    }
    tracing::info!(token = %name, "console sign-in");
    let mut response = see_other(&next);
    let cookie = format!(
        "{COOKIE}={}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        URL_SAFE_NO_PAD.encode(id),
        SESSION_HOURS * 3600,
        if state.site.is_https() {
            "; Secure"
        } else {
            ""
        },
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a cookie of base64 and ASCII"),
    );
    response
}

pub(super) async fn sign_out(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = match action_viewer(&state, &headers) {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    if let Err(response) = viewer.check_csrf(&Form::parse(&body)) {
        return response;
    }
    let Some(key) = viewer.key else {
        return see_other("/console"); // the open mode has nobody to sign out
    };
    if let Err(error) = state.engine.sessions(SessionOp::Close { key }).await {
        tracing::warn!(%error, "a console sign-out could not be stored");
        return render::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again later",
            "The sign-out could not be stored; your session is still open. Please try again.",
        );
    }
    let mut response = see_other("/console/sign-in");
    let cookie = format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if state.site.is_https() {
            "; Secure"
        } else {
            ""
        },
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ASCII"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        for ok in [
            "/console",
            "/console/incidents/INC-1",
            "/console?q=a&mine=1",
        ] {
            assert!(safe_next(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/console",
            "/console//evil.example",
            "/consoles",
            "/console/\\evil",
            "/api/v1/incidents",
            "/console/a b",
        ] {
            assert!(!safe_next(bad), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_read_among_others_and_only_with_32_bytes() {
        let id = [7u8; 32];
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={}; c=d", URL_SAFE_NO_PAD.encode(id))
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie_id(&headers), Some(id));
        headers.insert(header::COOKIE, format!("{COOKIE}=abc").parse().unwrap());
        assert_eq!(cookie_id(&headers), None);
    }

    #[test]
    fn the_token_mac_depends_on_the_id_and_the_token() {
        let a = token_mac(&[1; 32], "secret");
        assert_eq!(a.len(), 64);
        assert_ne!(a, token_mac(&[2; 32], "secret"));
        assert_ne!(a, token_mac(&[1; 32], "secret2"));
    }
}
