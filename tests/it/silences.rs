//! Silences over HTTP: the three forms of `matchers` a caller may send (the map of
//! equalities, Alertmanager's list, amtool's strings), the list every answer shows, and the
//! refusals that name the matcher.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn create(app: &TestApp, matchers: Value) -> (StatusCode, Value) {
    app.post(
        "/api/v1/silences",
        Some(json!({
            "matchers": matchers,
            "ends_at": "2026-03-02T10:00:00Z",
            "comment": "deploy",
        })),
    )
    .await
}

#[tokio::test]
async fn silences_take_every_matcher_form_and_show_the_list() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;

    #[track_caller]
    fn created(got: (StatusCode, Value), want: Value) {
        assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
        assert_eq!(got.1["matchers"], want, "{}", got.1);
    }
    let web = json!([{"name": "service", "value": "web", "isRegex": false, "isEqual": true}]);
    created(create(&app, json!({"service": "web"})).await, web.clone());
    created(
        create(
            &app,
            json!([{"name": "service", "value": "web", "isRegex": false}]),
        )
        .await,
        web,
    );
    created(
        create(
            &app,
            json!([
                {"name": "service", "value": "web|api", "isRegex": true, "isEqual": true},
                {"name": "env", "value": "staging", "isRegex": false, "isEqual": false},
            ]),
        )
        .await,
        json!([
            {"name": "service", "value": "web|api", "isRegex": true, "isEqual": true},
            {"name": "env", "value": "staging", "isRegex": false, "isEqual": false},
        ]),
    );
    created(
        create(
            &app,
            json!([
                r#"service=~"web|api""#,
                "env!=staging",
                r#"team!~"db.*""#,
                "region=eu"
            ]),
        )
        .await,
        json!([
            {"name": "service", "value": "web|api", "isRegex": true, "isEqual": true},
            {"name": "env", "value": "staging", "isRegex": false, "isEqual": false},
            {"name": "team", "value": "db.*", "isRegex": true, "isEqual": false},
            {"name": "region", "value": "eu", "isRegex": false, "isEqual": true},
        ]),
    );

    let (status, list) = app.get("/api/v1/silences").await;
    assert_eq!(status, StatusCode::OK);
    let silences = list["silences"].as_array().unwrap();
    assert_eq!(silences.len(), 4);
    assert_eq!(silences[0]["matchers"][0]["name"], "service");
    assert_eq!(silences[3]["matchers"][2]["isRegex"], true);
    app.stop().await;
}

#[tokio::test]
async fn bad_matchers_are_refused_naming_the_matcher() {
    let dir = ConfigDir::new("listen: 127.0.0.1:0\n", &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;

    #[track_caller]
    fn refused(got: (StatusCode, Value), message: &str) {
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);
        assert_eq!(got.1["error"]["message"], message, "{}", got.1);
    }
    refused(
        create(
            &app,
            json!([
                "env=prod",
                {"name": "service", "value": "web(", "isRegex": true, "isEqual": true},
            ]),
        )
        .await,
        r#"`matchers[1]` (service=~"web(") is not a valid regular expression: unclosed group"#,
    );
    refused(
        create(&app, json!([r#"service!~"a[""#])).await,
        r#"`matchers[0]`: "service!~\"a[\"" is not a valid regular expression: unclosed character class"#,
    );
    refused(
        create(&app, json!(["service"])).await,
        r#"`matchers[0]`: "service" has no operator (=, !=, =~ or !~)"#,
    );
    refused(
        create(&app, json!([{"name": "service", "value": "web"}])).await,
        "`matchers[0]` is not a matcher: missing field `isRegex`",
    );
    refused(
        create(
            &app,
            json!([{"name": "", "value": "web", "isRegex": false}]),
        )
        .await,
        "`matchers[0].name` is empty",
    );
    refused(
        create(
            &app,
            json!([{"name": "service", "value": "v".repeat(1025), "isRegex": true}]),
        )
        .await,
        "`matchers[0].value` is 1025 characters long; at most 1024",
    );
    refused(
        create(&app, json!(vec!["a=b"; 65])).await,
        "`matchers` has 65 entries; at most 64",
    );
    refused(
        create(&app, json!("service=web")).await,
        "`matchers` is a map of label name to value or a list of matchers",
    );
    refused(
        create(&app, json!(["team!=db", r#"env=~".*""#])).await,
        "a silence needs at least one matcher that does not match the empty string (a missing label); these would silence nearly everything",
    );
    refused(
        create(&app, json!([])).await,
        "a silence needs at least one matcher",
    );
    let (_, list) = app.get("/api/v1/silences").await;
    assert_eq!(list["silences"], json!([]), "nothing refused was made");
    app.stop().await;
}
