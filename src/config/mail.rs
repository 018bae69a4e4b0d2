//! The `mail` section: the SMTP relay subscriber mail goes out through, and its sender.
//! Without it, email subscriptions are refused (webhook subscriptions need no mail).
//!
//! ```yaml
//! mail:
//!   smtp_url_env: INCIDENTD_SMTP_URL   # smtps://user:pass@relay.example:465, smtp://host:25
//!   from: "Status <status@example.com>"
//! ```
//!
//! The URL holds the relay's credentials, so it is read from the environment variable named
//! here, at load; no message ever quotes its value.

use std::fmt;

use serde::Deserialize;
use serde_yaml::Value;

use super::document::Check;
use super::document::Secrets;
use super::locate::Segment::Key;

/// `mail`, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// `smtp[s]://[user:pass@]host[:port]` (credentials inside: never logged).
    pub smtp_url: String,
    /// The `From` of every mail, e.g. `Status <status@example.com>`.
    pub from: String,
}

impl fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp_url", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "mail settings (a mapping with `smtp_url_env`, `from`)"
)]
struct MailOutline {
    smtp_url_env: Option<Value>,
    from: Option<Value>,
}

/// Whether `url` is an SMTP URL lettre's transport takes: `smtp://` or `smtps://` with a
/// host. The reason when not, without quoting the value (it may hold a password).
pub fn check_smtp_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("smtps://")
        .or_else(|| url.strip_prefix("smtp://"))
        .ok_or("must start with smtp:// or smtps://")?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if host.trim_end_matches('/').is_empty() {
        return Err("names no host");
    }
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
        .map(|_| ())
        .map_err(|_| "is not a valid SMTP URL")
}

/// `mail`, validated; `None` when absent or wrong (wrong has a diagnostic).
pub(super) fn mail(
    check: &mut Check<'_>,
    value: Option<Value>,
    env: Secrets<'_>,
) -> Option<MailConfig> {
    let value = value?;
    let at = [Key("mail")];
    let outline = check.strict::<MailOutline>(value, &at)?;
    let var: Option<String> = check.required(&at, "smtp_url_env", outline.smtp_url_env);
    let from: Option<String> = check.required(&at, "from", outline.from);
    let from_at = [Key("mail"), Key("from")];
    let from = from.filter(|from| match from.parse::<lettre::message::Mailbox>() {
        Ok(_) => true,
        Err(_) => {
            check.at(
                &from_at,
                format!("mail.from `{from}` is not an email address (e.g. `Status <status@example.com>`)"),
            );
            false
        }
    });
    let url_at = [Key("mail"), Key("smtp_url_env")];
    let url = var.and_then(|var| {
        let url = check.secret(&url_at, &var, "mail.smtp_url_env", env)?;
        match check_smtp_url(&url) {
            Ok(()) => Some(url),
            Err(reason) => {
                check.at(
                    &url_at,
                    format!("environment variable {var} (mail.smtp_url_env) {reason}"),
                );
                None
            }
        }
    });
    Some(MailConfig {
        smtp_url: url?,
        from: from?,
    })
}

#[cfg(test)]
mod tests {
    use super::check_smtp_url;

    #[test]
    fn smtp_urls() {
        assert!(check_smtp_url("smtp://127.0.0.1:2525").is_ok());
        assert!(check_smtp_url("smtps://user:pa%20ss@relay.example:465").is_ok());
        assert!(check_smtp_url("http://relay.example").is_err());
        assert!(check_smtp_url("smtp://").is_err());
        assert!(check_smtp_url("smtp://user:pass@").is_err());
    }
}
