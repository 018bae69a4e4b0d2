//! The HTTP edge's guard, one middleware in front of every route: what keeps a web page in
//! someone's browser from driving incidentd — above all in open mode (no tokens, loopback
//! only), where the browser needs no credential at all.
//!
//! - **Host** (open mode only): the `Host` must name this server — `localhost` or a loopback
//!   address with the bound port, or `external_url`'s host and port — else 421. A page
//!   that rebinds its own DNS name to 127.0.0.1 (DNS rebinding) still sends its own name.
//!   With tokens the check is skipped: the tokens protect, and proxies may name the server
//!   anything.
//! - **Cross-site** (state-changing methods): refused with 403 when `Sec-Fetch-Site` is
//!   there and neither `same-origin` nor `none`, or when `Origin` is there and is not this
//!   server's own (the `Host` the request names, or `external_url`'s origin) — unless a
//!   valid bearer token comes with it: a browser never attaches one on its own.
//! - **Content type** (state-changing methods): a non-empty body must say it is JSON
//!   (`application/json`, with parameters or not, or `application/*+json`), else 415 — a
//!   form or `text/plain` body is what a page can send without asking the browser first.
//!   An empty body needs no content type (verbs whose body is optional). The pages that
//!   post forms by design, still behind the cross-site check: the status page's sign-ups
//!   and unsubscribes (`/subscriptions…`), the reporter's page (`/r/{token}`), and the
//!   console's forms under `/console/` (form-encoded only; each also carries the
//!   session's CSRF token, checked by its handler).

use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};

/// Where this server is: the bound address and the `external_url` in force.
#[derive(Debug)]
pub struct Site {
    listen: SocketAddr,
    external: RwLock<Option<External>>,
}

/// The parts of `external_url` the guard compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct External {
    /// `external_url` as configured, without a trailing `/`: the base of absolute links.
    url: String,
    /// `scheme://host[:port]`, lowercase, as a browser writes it in `Origin`.
    origin: String,
    host: String,
    port: u16,
    /// The port is the scheme's default: a `Host` without a port names it.
    default_port: bool,
}

impl Site {
    /// `listen` is the bound address (its real port when the configuration said 0).
    pub fn new(listen: SocketAddr, external_url: Option<&str>) -> Site {
        Site {
            listen,
            external: RwLock::new(external_url.and_then(External::parse)),
        }
    }

    /// The `external_url` in force from now on (a reload).
    pub fn set_external_url(&self, external_url: Option<&str>) {
        *self
            .external
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            external_url.and_then(External::parse);
    }

    /// `external_url` in force, without a trailing `/` (the base of absolute links).
    pub fn external_url(&self) -> Option<String> {
        self.external().map(|e| e.url)
    }

    /// Whether `external_url` is https: the console's cookie is then `Secure`.
    pub fn is_https(&self) -> bool {
        self.external()
            .is_some_and(|e| e.origin.starts_with("https://"))
    }

    fn external(&self) -> Option<External> {
        self.external
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl External {
    fn parse(url: &str) -> Option<External> {
        let uri: Uri = url.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        let default_port = match scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(default_port);
        let origin = if port == default_port {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{port}")
        };
        Some(External {
            url: url.trim_end_matches('/').to_owned(),
            origin,
            host,
            port,
            default_port: port == default_port,
        })
    }
}

/// The middleware: refuses what the module's doc says, passes everything else on.
pub(super) async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    match check(&state, request.method(), request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn check(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let tokens = state.tokens();
    let external = state.site.external();
    // HTTP/1.1 names the server in `Host`; an absolute request target names it too.
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()));
    if tokens.0.is_empty()
        && let Some(host) = &host
    {
        check_host(state.site.listen, external.as_ref(), host)?;
    }
    if !changes_state(method) {
        return Ok(());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|presented| tokens.find(presented.trim()).is_some());
    if !bearer {
        check_same_origin(headers, host.as_deref(), external.as_ref())?;
    }
    // The public sign-up form and one-click unsubscribe (RFC 8058) post forms by design,
    // and so does the reporter's page (`/r/{token}`): a page without JavaScript. The
    // cross-site check above applies to them as to everything else.
    if uri.path().starts_with("/subscriptions") || uri.path().starts_with("/r/") {
        return Ok(());
    }
    // The console's forms, same-origin as checked above; each handler also checks the
    // session's CSRF token (`web::console::session`).
    if uri.path().starts_with("/console/") && is_form(headers) {
        return Ok(());
    }
    check_content_type(headers)
}

fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Open mode: the `Host` must be this server's loopback address or `external_url`'s host.
fn check_host(listen: SocketAddr, external: Option<&External>, host: &str) -> Result<(), ApiError> {
    let ours = split_host(host).is_some_and(|(name, port)| {
        let loopback = name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        (loopback && port.unwrap_or(80) == listen.port())
            || external.is_some_and(|e| {
                e.host.eq_ignore_ascii_case(name)
                    && port.map_or(e.default_port, |port| port == e.port)
            })
    });
    if ours {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected_request",
        format!(
            "Host `{host}` is not this server: without auth tokens incidentd answers only to localhost:{port} or its loopback address{external}",
            port = listen.port(),
            external = if external.is_some() {
                " and to external_url's host"
            } else {
                ""
            },
        ),
    ))
}

/// `host[:port]` (`[v6]:port` too) → (host, port).
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let authority: axum::http::uri::Authority = host.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let name = authority.host();
    // `Authority::host` keeps the brackets of an IPv6 address; find the slice in `host`.
    let start = host.find(name)?;
    Some((&host[start..start + name.len()], authority.port_u16()))
}

/// A browser's cross-site request: refused (the caller has no bearer token).
fn check_same_origin(
    headers: &HeaderMap,
    host: Option<&str>,
    external: Option<&External>,
) -> Result<(), ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "cross-site request refused: a browser may change incidentd only from its own pages; other clients send no Origin or a bearer token",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
            return Err(refused());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        let same_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .zip(host)
            .is_some_and(|(authority, host)| authority.eq_ignore_ascii_case(host));
        let external = external.is_some_and(|e| e.origin == origin);
        if !same_host && !external {
            return Err(refused());
        }
    }
    Ok(())
}

/// An HTML form's body (`application/x-www-form-urlencoded`).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// A non-empty body must be JSON.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let empty = !headers.contains_key(header::TRANSFER_ENCODING)
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0");
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || mime
                    .strip_prefix("application/")
                    .is_some_and(|sub| sub.ends_with("+json"))
        });
    if empty || json {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Expected request with `Content-Type: application/json`",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn host(listen: &str, external: Option<&str>, host: &str, ours: bool) {
        let listen: SocketAddr = listen.parse().unwrap();
        let external = external.and_then(External::parse);
        assert_eq!(
            check_host(listen, external.as_ref(), host).is_ok(),
            ours,
            "{host}"
        );
    }

    #[test]
    fn host_names_this_server() {
        host("127.0.0.1:9750", None, "127.0.0.1:9750", true);
        host("127.0.0.1:9750", None, "localhost:9750", true);
        host("127.0.0.1:9750", None, "LOCALHOST:9750", true);
        host("[::1]:9750", None, "[::1]:9750", true);
        host("127.0.0.1:9750", None, "127.0.0.1:9751", false);
        host("127.0.0.1:9750", None, "evil.example:9750", false);
        host("127.0.0.1:9750", None, "evil.example", false);
        host("127.0.0.1:9750", None, "localhost.evil.example:9750", false);
        host("127.0.0.1:9750", None, "user@localhost:9750", false);
        host("127.0.0.1:80", None, "localhost", true);
        let external = Some("https://incidents.example/");
        host("127.0.0.1:9750", external, "incidents.example:443", true);
        host("127.0.0.1:9750", external, "incidents.example", true);
        host("127.0.0.1:9750", external, "incidents.example:80", false);
        host("127.0.0.1:9750", external, "Incidents.Example:443", true);
        let external = Some("http://incidents.example");
        host("127.0.0.1:9750", external, "incidents.example", true);
    }

    #[test]
    fn external_url_origin_is_as_a_browser_writes_it() {
        let origin = |url: &str| External::parse(url).map(|e| e.origin);
        assert_eq!(
            origin("https://Incidents.example/path").as_deref(),
            Some("https://incidents.example")
        );
        assert_eq!(
            origin("https://incidents.example:443").as_deref(),
            Some("https://incidents.example")
        );
        assert_eq!(
            origin("http://incidents.example:8080/").as_deref(),
            Some("http://incidents.example:8080")
        );
        assert_eq!(origin("not a url"), None);
    }
}
