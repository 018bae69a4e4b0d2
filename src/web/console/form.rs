//! The console's forms: `application/x-www-form-urlencoded` fields, and each verb's form
//! turned into the JSON body the API's verb reads, so that both check the same fields the
//! same way (`api::workflow`).

use serde_json::{Map, Value};

/// A form's fields in order (at most 200: `form_pairs`).
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(crate::web::subscribe::form_pairs(body))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The verbs of the incident page, by the last segment of their form's action.
pub(super) const VERBS: [&str; 10] = [
    "acknowledge",
    "escalate",
    "notes",
    "hold",
    "resume",
    "resolve",
    "close",
    "reopen",
    "edit",
    "call",
];

/// The API body of `verb` from its form: required text fields are passed as they are
/// (empty included, so the API's check names them), optional ones only when filled in.
pub(super) fn verb_body(verb: &str, form: &Form) -> Option<Value> {
    let mut body = Map::new();
    let text = |body: &mut Map<String, Value>, name: &str| {
        body.insert(
            name.to_owned(),
            Value::String(form.get(name).unwrap_or("").to_owned()),
        );
    };
    let optional = |body: &mut Map<String, Value>, name: &str| {
        if let Some(value) = form.get(name).filter(|v| !v.trim().is_empty()) {
            body.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    };
    match verb {
        "acknowledge" | "resume" | "close" => {}
        "escalate" => {
            text(&mut body, "reason");
            optional(&mut body, "tier");
        }
        "notes" => {
            text(&mut body, "text");
            let public = form.get("public").is_some_and(|v| v == "on" || v == "true");
            body.insert("public".to_owned(), Value::Bool(public));
        }
        "hold" | "reopen" => text(&mut body, "reason"),
        "resolve" => text(&mut body, "resolution"),
        "edit" => {
            for name in [
                "title", "category", "service", "impact", "urgency", "priority",
            ] {
                optional(&mut body, name);
            }
            text(&mut body, "reason");
        }
        "call" => {
            text(&mut body, "url");
            // A `datetime-local` field has no zone: the form says the time is UTC.
            let at = form.get("at").unwrap_or("").trim();
            let at = match at.len() {
                16 => format!("{at}:00Z"), // 2026-03-02T10:00
                19 => format!("{at}Z"),    // 2026-03-02T10:00:00
                _ => at.to_owned(),
            };
            body.insert("at".to_owned(), Value::String(at));
            let participants = form
                .get("participants")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_owned()))
                .collect();
            body.insert("participants".to_owned(), Value::Array(participants));
            optional(&mut body, "note");
        }
        _ => return None,
    }
    Some(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_become_the_apis_bodies() {
        let form = Form::parse(b"csrf=x&reason=slow+db&tier=");
        assert_eq!(
            verb_body("escalate", &form).unwrap(),
            serde_json::json!({"reason": "slow db"})
        );
        let form = Form::parse(b"text=hello&public=on");
        assert_eq!(
            verb_body("notes", &form).unwrap(),
            serde_json::json!({"text": "hello", "public": true})
        );
        let form = Form::parse(b"title=&priority=P2&reason=triage");
        assert_eq!(
            verb_body("edit", &form).unwrap(),
            serde_json::json!({"priority": "P2", "reason": "triage"})
        );
        assert_eq!(
            verb_body("resolve", &Form::parse(b"")).unwrap(),
            serde_json::json!({"resolution": ""})
        );
        let form = Form::parse(
            b"url=https%3A%2F%2Fmeet.example%2Fx&at=2026-03-02T10%3A00&participants=Ana%2C+Budi+%2C&note=",
        );
        assert_eq!(
            verb_body("call", &form).unwrap(),
            serde_json::json!({
                "url": "https://meet.example/x",
                "at": "2026-03-02T10:00:00Z",
                "participants": ["Ana", "Budi"],
            })
        );
        let form = Form::parse(b"url=x&at=2026-03-02T10%3A00%3A00%2B07%3A00");
        assert_eq!(
            verb_body("call", &form).unwrap()["at"],
            "2026-03-02T10:00:00+07:00",
            "a time with its zone is passed on as it is"
        );
        assert!(verb_body("delete", &form).is_none());
    }
}
