//! A silence's `matchers` on the wire. Three forms are read: the map of label name → value
//! (every one an equality, the form before operators), Alertmanager API v2's list of
//! `{name, value, isRegex, isEqual}` (`isEqual` defaults to true), and in that list amtool's
//! strings (`service=~"web|api"`). Answers always show the list of objects.

use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::limits::{self, LABEL_NAME, LABEL_VALUE, LABELS, Text};
use crate::domain::suppression::{MatchOp, Matcher};

/// One entry of the list form, as Alertmanager API v2 spells it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MatcherBody {
    name: String,
    value: String,
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

/// The matchers a request's `matchers` holds, each checked against the size limits and its
/// regular expression compiled; a refusal names the matcher.
pub fn read(matchers: Value) -> Result<Vec<Matcher>, ApiError> {
    match matchers {
        Value::Object(_) => {
            let map: std::collections::BTreeMap<String, String> = serde_json::from_value(matchers)
                .map_err(|_| {
                    ApiError::bad_request("`matchers` as a map holds label names and string values")
                })?;
            limits::check_labels("matchers", &map)?;
            Ok(map
                .into_iter()
                .map(|(name, value)| Matcher::equal(name, value))
                .collect())
        }
        Value::Array(list) => {
            if list.len() > LABELS {
                return Err(ApiError::bad_request(format!(
                    "`matchers` has {} entries; at most {LABELS}",
                    list.len()
                )));
            }
            list.into_iter()
                .enumerate()
                .map(|(i, entry)| read_one(i, entry))
                .collect()
        }
        _ => Err(ApiError::bad_request(
            "`matchers` is a map of label name to value or a list of matchers",
        )),
    }
}

fn read_one(i: usize, entry: Value) -> Result<Matcher, ApiError> {
    let field = format!("matchers[{i}]");
    let (name, value, op) = match entry {
        Value::String(text) => {
            // The longest a name, an operator, a quoted and escaped value can take.
            limits::check(&field, &text, LABEL_NAME + 2 * LABEL_VALUE + 8, Text::Line)?;
            let matcher = Matcher::parse(&text)
                .map_err(|problem| ApiError::bad_request(format!("`{field}`: {problem}")))?;
            let (name, value) = (matcher.name().to_owned(), matcher.value().to_owned());
            (name, value, matcher.op())
        }
        entry @ Value::Object(_) => {
            let body: MatcherBody = serde_json::from_value(entry).map_err(|error| {
                ApiError::bad_request(format!("`{field}` is not a matcher: {error}"))
            })?;
            let op = MatchOp::from_flags(body.is_regex, body.is_equal);
            (body.name, body.value, op)
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "`{field}` is an object {{name, value, isRegex, isEqual}} or a string like service=~\"web|api\""
            )));
        }
    };
    limits::check(&format!("{field}.name"), &name, LABEL_NAME, Text::Line)?;
    limits::check(&format!("{field}.value"), &value, LABEL_VALUE, Text::Line)?;
    if name.is_empty() {
        return Err(ApiError::bad_request(format!("`{field}.name` is empty")));
    }
    let shown = format!("{name}{}{value:?}", op.as_str());
    Matcher::new(name, value, op)
        .map_err(|problem| ApiError::bad_request(format!("`{field}` ({shown}) is {problem}")))
}

/// The list form every answer shows.
pub fn to_json(matchers: &[Matcher]) -> Value {
    matchers
        .iter()
        .map(|m| {
            json!({
                "name": m.name(),
                "value": m.value(),
                "isRegex": m.op().is_regex(),
                "isEqual": m.op().is_equal(),
            })
        })
        .collect()
}
