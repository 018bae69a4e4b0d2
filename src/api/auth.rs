//! Bearer tokens and roles. Tokens come from the environment (the config names the
//! variables); comparison is constant-time. With no tokens configured the API is open —
//! the app allows that only on a loopback address.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::ApiState;
use super::error::ApiError;
use crate::config::{Role, TokenConfig};
use crate::view::Clearance;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read incidents, probes, rules.
    Read,
    /// Send alerts (`ingest` role or higher).
    Ingest,
    /// Run the workflow.
    Respond,
    /// Reload the configuration.
    Admin,
}

/// Who is calling: the token's name (the actor on the timeline) and role.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    role: Option<Role>,
    /// The token has `security: true`.
    security: bool,
}

impl Caller {
    /// The open mode's caller (no tokens configured): everything is allowed.
    pub(crate) fn open() -> Caller {
        Caller {
            name: "anonymous".to_owned(),
            role: None,
            security: false,
        }
    }

    /// The holder of `token` (a console session names the token it was opened with).
    pub(crate) fn of_token(token: &TokenConfig) -> Caller {
        Caller {
            name: token.name.clone(),
            role: Some(token.role),
            security: token.security,
        }
    }

    /// The role's name (`open` without tokens), for people to read.
    pub fn role_name(&self) -> &'static str {
        match self.role {
            None => "open",
            Some(Role::Viewer) => "viewer",
            Some(Role::Ingest) => "ingest",
            Some(Role::Responder) => "responder",
            Some(Role::Admin) => "admin",
        }
    }

    /// Whether the caller may do `need` (what [`Caller::require`] refuses, without the error).
    pub fn may(&self, need: Need) -> bool {
        self.require(need).is_ok()
    }

    /// Whether the caller may do what only an admin may (move a tier down). Open mode
    /// (no tokens, loopback only) allows everything.
    pub fn is_admin(&self) -> bool {
        matches!(self.role, None | Some(Role::Admin))
    }

    /// Whether the caller may see restricted incidents (data breaches) in full and act on
    /// them: admins (and the open mode) and tokens with `security: true`.
    pub fn clearance(&self) -> Clearance {
        if self.is_admin() || self.security {
            Clearance::Security
        } else {
            Clearance::None
        }
    }

    /// Refuses with 403 when the caller's role may not do `need`.
    pub fn require(&self, need: Need) -> Result<(), ApiError> {
        let allowed = match self.role {
            None => true, // open mode
            Some(role) => match need {
                // Tools that push alerts may read what they caused.
                Need::Read => true,
                Need::Ingest => role != Role::Viewer,
                Need::Respond => matches!(role, Role::Responder | Role::Admin),
                Need::Admin => role == Role::Admin,
            },
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("token `{}` may not do this", self.name),
            ))
        }
    }
}

#[derive(Debug, Default)]
pub struct Tokens(pub Vec<TokenConfig>);

impl Tokens {
    /// Whether no token is configured (the open mode, loopback only).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token configured under `name`.
    pub(crate) fn named(&self, name: &str) -> Option<&TokenConfig> {
        self.0.iter().find(|token| token.name == name)
    }

    pub(crate) fn find(&self, presented: &str) -> Option<&TokenConfig> {
        // Check every token so the time taken does not tell which one nearly matched.
        let mut found = None;
        for token in &self.0 {
            if bool::from(token.token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(token);
            }
        }
        found
    }
}

/// The token of `Bearer <token>`. The scheme is case-insensitive (RFC 7235 §2.1:
/// `bearer`, `BEARER`), followed by one or more spaces.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

impl Caller {
    /// The caller of a request with these headers; without an `Authorization` header,
    /// `key` is tried as a token (PagerDuty's `routing_key`: tools that cannot set
    /// headers carry an ingest token there).
    pub(super) fn from_headers(
        headers: &axum::http::HeaderMap,
        state: &ApiState,
        key: Option<&str>,
    ) -> Result<Caller, ApiError> {
        let tokens = state.tokens();
        if tokens.0.is_empty() {
            return Ok(Caller {
                name: "anonymous".to_owned(),
                role: None,
                security: false,
            });
        }
        if headers.get(AUTHORIZATION).is_none()
            && let Some(key) = key
        {
            let token = tokens.find(key.trim()).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing `Authorization: Bearer <token>`, and `routing_key` is not a token",
                )
            })?;
            return Ok(Caller {
                name: token.name.clone(),
                role: Some(token.role),
                security: token.security,
            });
        }
        Self::from_bearer(headers, &tokens)
    }

    fn from_bearer(headers: &axum::http::HeaderMap, tokens: &Tokens) -> Result<Caller, ApiError> {
        let unauthorized = |message: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned())
        };
        let header = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>`"))?;
        let presented = header
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or_else(|| unauthorized("expected `Authorization: Bearer <token>`"))?;
        let token = tokens
            .find(presented.trim())
            .ok_or_else(|| unauthorized("invalid token"))?;
        Ok(Caller {
            name: token.name.clone(),
            role: Some(token.role),
            security: token.security,
        })
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        Caller::from_headers(&parts.headers, state, None)
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR abc"] {
            assert_eq!(bearer_token(value), Some("abc"), "{value}");
        }
        assert_eq!(bearer_token("Bearer  abc").map(str::trim), Some("abc"));
        for value in ["Basic abc", "Bearerabc", "Bearer", "Token abc"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}
