//! A silence's `matchers` on the wire. Three forms are read: the map of label name → value
//! (every one an equality, the form before operators), Alertmanager API v2's list of
//! `{name, value, isRegex, isEqual}` (`isEqual` defaults to true), and in that list amtool's
//! strings (`service=~"web|api"`). Answers always show the list of objects.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};

use super::ApiError;
use super::limits::{self, LABEL_NAME, LABEL_VALUE, LABELS, Text};
use crate::domain::suppression::{MatchOp, Matcher};

/// One entry of the list form, as Alertmanager API v2 spells it.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = Matcher)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatcherView {
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
            let body: MatcherView = serde_json::from_value(entry).map_err(|error| {
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
pub fn view(matchers: &[Matcher]) -> Vec<MatcherView> {
    matchers
        .iter()
        .map(|m| MatcherView {
            name: m.name().to_owned(),
            value: m.value().to_owned(),
            is_regex: m.op().is_regex(),
            is_equal: m.op().is_equal(),
        })
        .collect()
}

/// The schema of a request's `matchers`: the three forms [`read`] reads.
pub fn body_schema() -> Schema {
    let map = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("label name → value, every one an equality"))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
            ObjectBuilder::new().schema_type(Type::String).build(),
        )))));
    let entry = OneOfBuilder::new()
        .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "Matcher",
        )))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("amtool's form, such as service=~\"web|api\"")),
        );
    let list = ArrayBuilder::new().items(entry).max_items(Some(LABELS));
    Schema::OneOf(OneOfBuilder::new().item(map).item(list).build())
}
