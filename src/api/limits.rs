//! What a request may carry: the body cap, and a size and character limit on every field a
//! caller writes (tickets, workflow verbs, silences). The API checks them before a command
//! reaches the engine, so a refused request changes nothing; they keep one ticket from
//! inflating every list, the status page and every webhook body.
//!
//! A single-line field (titles, names, reasons, label names and values) holds no control
//! character at all; a multi-line one (descriptions, notes, resolutions, comments) only `\n`
//! and `\t`. Lengths are in characters (Unicode scalar values).

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Bodies larger than this get 413, at once when `Content-Length` says so.
pub const MAX_BODY: usize = 1024 * 1024;

/// `title` of a ticket or a `PATCH`.
pub const TITLE: usize = 256;
/// `reporter.name`, `service`, `category`.
pub const NAME: usize = 200;
/// `reporter.contact` (an address, a phone number, a chat handle).
pub const CONTACT: usize = 256;
/// The `reason` of escalate, hold, reopen and `PATCH`.
pub const REASON: usize = 1024;
/// A ticket's `description`.
pub const DESCRIPTION: usize = 64 * 1024;
/// A note's `text`, a resolution.
pub const TEXT: usize = 16 * 1024;
/// A silence's `comment`.
pub const COMMENT: usize = 4 * 1024;
/// Entries in a ticket's `labels`, or a silence's `matchers`.
pub const LABELS: usize = 64;
/// A label (or matcher) name.
pub const LABEL_NAME: usize = 128;
/// A label (or matcher) value.
pub const LABEL_VALUE: usize = 1024;

/// Whether a field may hold line breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// No control character at all.
    Line,
    /// `\n` and `\t` allowed, no other control character.
    Lines,
}

/// Refuses `text` when it is longer than `max` characters or holds a control character its
/// kind does not allow; the message names `field` and the limit.
pub fn check(field: &str, text: &str, max: usize, kind: Text) -> Result<(), ApiError> {
    check_named(&format!("`{field}`"), text, max, kind)
}

/// [`check`], with the field as the message says it (`` `title` ``, ``a name in `labels` ``).
fn check_named(subject: &str, text: &str, max: usize, kind: Text) -> Result<(), ApiError> {
    let length = text.chars().count();
    if length > max {
        return Err(ApiError::bad_request(format!(
            "{subject} is {length} characters long; at most {max}"
        )));
    }
    if let Some(control) = text
        .chars()
        .find(|&c| c.is_control() && !(kind == Text::Lines && matches!(c, '\n' | '\t')))
    {
        let allowed = match kind {
            Text::Line => "it must be one line of text",
            Text::Lines => "only line feeds and tabs are allowed",
        };
        return Err(ApiError::bad_request(format!(
            "{subject} contains the control character U+{:04X}; {allowed}",
            u32::from(control)
        )));
    }
    Ok(())
}

/// [`check`] for an optional field.
pub fn check_some(field: &str, text: Option<&str>, max: usize, kind: Text) -> Result<(), ApiError> {
    text.map_or(Ok(()), |text| check(field, text, max, kind))
}

/// A ticket's `labels` or a silence's `matchers`: at most [`LABELS`] entries, names and
/// values single lines of at most [`LABEL_NAME`] and [`LABEL_VALUE`] characters.
pub fn check_labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > LABELS {
        return Err(ApiError::bad_request(format!(
            "`{field}` has {} entries; at most {LABELS}",
            labels.len()
        )));
    }
    for (name, value) in labels {
        if name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "a name in `{field}` is empty"
            )));
        }
        // The name is not echoed until it is known to be short and printable.
        check_named(
            &format!("a name in `{field}`"),
            name,
            LABEL_NAME,
            Text::Line,
        )?;
        check(&format!("{field}.{name}"), value, LABEL_VALUE, Text::Line)?;
    }
    Ok(())
}

/// Answers 413 before the body is read when its declared `Content-Length` is over
/// [`MAX_BODY`]: waiting for gigabytes that will be refused anyway would hold the
/// connection open for as long as the client likes.
pub async fn refuse_oversized(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        let mut response = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over the limit of {MAX_BODY} bytes"),
        )
        .into_response();
        // The body was not read: the connection cannot carry another request.
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return response;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn refused(field: &str, text: &str, max: usize, kind: Text, expected: &str) {
        let error = check(field, text, max, kind).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "bad_request");
        assert_eq!(error.message, expected);
    }

    #[test]
    fn lengths_are_characters() {
        assert!(check("title", &"é".repeat(TITLE), TITLE, Text::Line).is_ok());
        refused(
            "title",
            &"é".repeat(TITLE + 1),
            TITLE,
            Text::Line,
            "`title` is 257 characters long; at most 256",
        );
    }

    #[test]
    fn control_characters_by_kind() {
        assert!(check("text", "a\n\tb", TEXT, Text::Lines).is_ok());
        refused(
            "title",
            "a\nb",
            TITLE,
            Text::Line,
            "`title` contains the control character U+000A; it must be one line of text",
        );
        refused(
            "title",
            "a\tb",
            TITLE,
            Text::Line,
            "`title` contains the control character U+0009; it must be one line of text",
        );
        for (bad, code) in [
            ("\u{1b}[2J", "001B"),
            ("\0", "0000"),
            ("\r", "000D"),
            ("\u{9b}", "009B"),
        ] {
            refused(
                "text",
                bad,
                TEXT,
                Text::Lines,
                &format!(
                    "`text` contains the control character U+{code}; only line feeds and tabs are allowed"
                ),
            );
        }
    }

    #[test]
    fn an_empty_label_name_is_refused() {
        let labels = BTreeMap::from([(String::new(), "v".to_owned())]);
        assert_eq!(
            check_labels("labels", &labels).unwrap_err().message,
            "a name in `labels` is empty"
        );
    }

    #[test]
    fn labels_count_names_and_values() {
        let many: BTreeMap<String, String> = (0..=LABELS)
            .map(|i| (format!("l{i}"), String::new()))
            .collect();
        assert_eq!(
            check_labels("labels", &many).unwrap_err().message,
            "`labels` has 65 entries; at most 64"
        );
        let long_name = BTreeMap::from([("n".repeat(LABEL_NAME + 1), String::new())]);
        assert_eq!(
            check_labels("labels", &long_name).unwrap_err().message,
            "a name in `labels` is 129 characters long; at most 128"
        );
        let escape_name = BTreeMap::from([("a\u{1b}".to_owned(), String::new())]);
        assert_eq!(
            check_labels("labels", &escape_name).unwrap_err().message,
            "a name in `labels` contains the control character U+001B; it must be one line of text"
        );
        let long_value = BTreeMap::from([("team".to_owned(), "v".repeat(LABEL_VALUE + 1))]);
        assert_eq!(
            check_labels("labels", &long_value).unwrap_err().message,
            "`labels.team` is 1025 characters long; at most 1024"
        );
        assert!(check_labels("labels", &BTreeMap::from([("team".into(), "db".into())])).is_ok());
    }
}
