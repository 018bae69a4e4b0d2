//! `GET /api/v1/openapi.json`: the API's OpenAPI 3.1 description. It is derived, not
//! written: each handler carries its `#[utoipa::path]` (method, path, parameters, body,
//! answers) and the types it serializes derive their schemas, so a field renamed in a view
//! is renamed in the description too. What the annotations cannot say route by route —
//! who may call, and the errors every route shares — [`Shared`] adds, from one list of the
//! open routes. The JSON is built once; only `servers` follows `external_url` (a reload).
//!
//! The pages for people (HTML, Atom, SVG, forms) are left out: [`LEFT_OUT`] names them, and
//! `tests/it/openapi.rs` checks that the description and [`LEFT_OUT`] together are the
//! router, method by method.

use std::sync::{Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, OpenApi as Description, Ref, RefOr, ResponseBuilder,
    SecurityRequirement, ServerBuilder,
};
use utoipa::{Modify, OpenApi};

use super::auth::{Caller, Need};
use super::error::ErrorBody;
use super::limits::{self, Text};
use super::{ApiError, ApiState};

/// The routes of the router the description leaves out: pages for people (HTML, Atom,
/// SVG, CSS, form posts), not the JSON API.
pub const LEFT_OUT: &[&str] = &[
    "/",
    "/static/{file}",
    "/incidents/{id}",
    "/history",
    "/feed.atom",
    "/feed/{file}",
    "/badge/{service}/{file}",
    "/subscriptions",
    "/subscriptions/confirm/{token}",
    "/subscriptions/unsubscribe/{token}",
    "/r/{token}",
    "/console",
    "/console/bulk",
    "/console/sign-in",
    "/console/sign-out",
    "/console/events",
    "/console/static/{file}",
    "/console/incidents/{id}",
    "/console/incidents/{id}/report",
    "/console/incidents/{id}/{verb}",
];

/// The described routes anyone may call, without a token.
const OPEN: &[&str] = &["/metrics", "/-/healthy", "/-/ready", "/status.json"];

const DESCRIPTION: &str = "\
incidentd's HTTP API: incidents and their service-desk workflow, alert ingest \
(Alertmanager, Prometheus, PagerDuty Events v2), silences, maintenances, probes, rules, \
SLA reports, webhook deliveries, and the lifecycle endpoints.

Every error is `{\"error\": {\"code\": \"…\", \"message\": \"…\"}}` (the `Error` schema) with \
its status, except where PagerDuty's clients expect PagerDuty's own shape (`/api/v1/events`, \
`/v2/enqueue`: `EventAnswer`) and `/-/ready`, which answers plain text as Prometheus does.

Auth: `Authorization: Bearer <token>`, each token with a role (viewer, ingest, responder, \
admin). Without any token configured incidentd runs open on a loopback address only, and \
then needs none.

Not described here: the pages for people — the status page (`/`, `/incidents/{id}`, \
`/history`, `/feed.atom`, `/feed/{file}`, `/badge/{service}/{file}`, `/static/{file}`), \
the subscription forms (`/subscriptions…`), the reporter's page (`/r/{token}`) and the \
responder console (`/console…`). `/status.json` is.";

#[derive(OpenApi)]
#[openapi(
    info(title = "incidentd", description = DESCRIPTION, license(name = "Apache-2.0")),
    paths(
        super::metrics,
        super::healthy,
        super::ready,
        super::reload::reload,
        super::list_incidents,
        super::workflow::open_ticket,
        super::get_incident,
        super::workflow::update,
        super::workflow::acknowledge,
        super::workflow::resolve,
        super::workflow::note,
        super::workflow::hold,
        super::workflow::resume,
        super::workflow::escalate,
        super::workflow::close,
        super::workflow::reopen,
        super::workflow::schedule_call,
        super::workflow::rotate_reporter_link,
        super::workflow::revoke_reporter_link,
        super::review::report,
        super::rules,
        super::silences,
        super::create_silence,
        super::expire_silence,
        super::maintenances::list,
        super::maintenances::create,
        super::maintenances::get,
        super::maintenances::end,
        super::list_probes,
        super::cluster,
        super::sla_report,
        super::ingest::alertmanager,
        super::ingest::api_v2,
        super::ingest::events,
        super::ingest::enqueue,
        super::webhooks::list,
        super::webhooks::deliveries,
        super::webhooks::replay,
        super::webhooks::enable,
        crate::web::subscribe::export,
        crate::web::subscribe::delete_subscriber,
        crate::web::status::json,
        serve,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Shared),
)]
struct ApiDoc;

/// What every operation shares: the bearer scheme on all but [`OPEN`], and the errors
/// the layers in front of the handlers answer (auth, the guard, the body limit), each a
/// reference to one response component whose body is the `Error` schema.
struct Shared;

/// The shared error answers: (status, component name, when).
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "The request is malformed or does not fit; nothing changed",
    ),
    ("401", "Unauthorized", "No valid bearer token"),
    (
        "403",
        "Forbidden",
        "The token's role may not do this, or a cross-site browser request",
    ),
    ("404", "NotFound", "No such resource"),
    ("413", "PayloadTooLarge", "The body is over 1 MiB"),
    (
        "415",
        "UnsupportedMediaType",
        "A body that is not declared JSON",
    ),
    (
        "421",
        "MisdirectedRequest",
        "Open mode: the Host is not this server's loopback address",
    ),
    ("500", "Internal", "An internal error (see the server log)"),
    (
        "503",
        "Unavailable",
        "The change could not be stored, or incidentd is stopping; retry later",
    ),
];

impl Modify for Shared {
    fn modify(&self, openapi: &mut Description) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            "bearer".to_owned(),
            RefOr::T(SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build(),
            )),
        );
        text_limits(components);
        for (_, name, description) in ERRORS {
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Error")))
                                .build(),
                        )
                        .build(),
                ),
            );
        }
        for (path, item) in &mut openapi.paths.paths {
            let open = OPEN.contains(&path.as_str());
            let has_path_params = path.contains('{');
            for (method, operation) in operations(item) {
                let changes = !matches!(method, HttpMethod::Get);
                let has_query = operation.parameters.as_ref().is_some_and(|parameters| {
                    parameters.iter().any(|p| {
                        matches!(p, RefOr::T(p)
                            if matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
                    })
                });
                let wanted = |status: &str| match status {
                    "400" => changes || has_query,
                    "401" | "403" => !open,
                    "404" => has_path_params,
                    "413" | "415" | "503" => changes,
                    _ => true,
                };
                optional_body_not_null(operation);
                if !open {
                    operation.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                }
                for (status, name, _) in ERRORS {
                    if wanted(status) {
                        operation
                            .responses
                            .responses
                            .entry((*status).to_owned())
                            .or_insert_with(|| {
                                RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                            });
                    }
                }
            }
        }
    }
}

/// The text fields of the request bodies, with the limits [`limits::check`] holds them to:
/// (schema, property, at most so many characters, one line or several, must not be blank).
/// The description states them as `maxLength` and `pattern`.
const TEXT_FIELDS: &[(&str, &str, usize, Text, bool)] = &[
    ("NewTicket", "title", limits::TITLE, Text::Line, true),
    (
        "NewTicket",
        "description",
        limits::DESCRIPTION,
        Text::Lines,
        false,
    ),
    ("NewTicket", "category", limits::NAME, Text::Line, false),
    ("NewTicket", "service", limits::NAME, Text::Line, false),
    ("NewReporter", "name", limits::NAME, Text::Line, true),
    ("NewReporter", "contact", limits::CONTACT, Text::Line, false),
    ("ResolveBody", "resolution", limits::TEXT, Text::Lines, true),
    ("NoteBody", "text", limits::TEXT, Text::Lines, true),
    ("ReasonBody", "reason", limits::REASON, Text::Line, true),
    ("EscalateBody", "reason", limits::REASON, Text::Line, true),
    (
        "IncidentChanges",
        "reason",
        limits::REASON,
        Text::Line,
        true,
    ),
    ("IncidentChanges", "title", limits::TITLE, Text::Line, false),
    (
        "IncidentChanges",
        "category",
        limits::NAME,
        Text::Line,
        false,
    ),
    (
        "IncidentChanges",
        "service",
        limits::NAME,
        Text::Line,
        false,
    ),
    (
        "NewCall",
        "url",
        super::workflow::CALL_URL,
        Text::Line,
        false,
    ),
    ("NewCall", "note", limits::COMMENT, Text::Lines, false),
    ("NewSilence", "comment", limits::COMMENT, Text::Lines, false),
    (
        "NewMaintenance",
        "title",
        super::maintenances::TITLE,
        Text::Line,
        true,
    ),
];

/// The `pattern` of a field of `kind`: no control character (Unicode's Cc) but, in several
/// lines, line feeds and tabs; unless `blank` is allowed, one character that is not white
/// space at least.
fn text_pattern(kind: Text, blank: bool) -> String {
    let allowed = match kind {
        Text::Line => r"[^\u0000-\u001f\u007f-\u009f]",
        Text::Lines => r"[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]",
    };
    if blank {
        format!("^{allowed}*$")
    } else {
        let visible = allowed.replacen("[^", r"[^\s", 1);
        format!("^{allowed}*{visible}{allowed}*$")
    }
}

/// Sets [`TEXT_FIELDS`]' limits in the components' schemas.
fn text_limits(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::schema::Schema;
    for &(schema, property, max, kind, not_blank) in TEXT_FIELDS {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
            panic!("TEXT_FIELDS: no schema {schema}");
        };
        let Some(RefOr::T(Schema::Object(field))) = object.properties.get_mut(property) else {
            panic!("TEXT_FIELDS: no property {property} in {schema}");
        };
        field.max_length = Some(max);
        field.pattern = Some(text_pattern(kind, !not_blank));
    }
}

/// A verb's optional body (`request_body(content = Option<…>)`) may be left out, but it is
/// not `null`: the schema loses utoipa's `oneOf [T, null]` and keeps `T` (the body stays
/// not required).
fn optional_body_not_null(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    let is_null = |schema: &RefOr<Schema>| matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
        return;
    };
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
            && one_of.items.len() == 2
            && one_of.items.iter().any(is_null)
        {
            content.schema = one_of.items.iter().find(|s| !is_null(s)).cloned();
        }
    }
}

/// The operations of a path, with their methods.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> Vec<(HttpMethod, &mut utoipa::openapi::path::Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|o| (method, o)))
    .collect()
}

/// The description, built once.
pub fn description() -> &'static Description {
    static DESCRIPTION: OnceLock<Description> = OnceLock::new();
    DESCRIPTION.get_or_init(|| {
        let mut description = ApiDoc::openapi();
        description.info.version = env!("CARGO_PKG_VERSION").to_owned();
        description
    })
}

/// The description as served with `external_url` (or none: then relative to this server).
pub fn json(external_url: Option<&str>) -> Vec<u8> {
    let mut description = description().clone();
    description.servers = external_url.map(|url| vec![ServerBuilder::new().url(url).build()]);
    serde_json::to_vec(&description).expect("the description serializes to JSON")
}

/// The description's route, which `app` merges with the pages: the API's router does not
/// name this module, which names every handler (no circle between the two).
pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new().route("/api/v1/openapi.json", axum::routing::get(serve))
}

/// `GET /api/v1/openapi.json`: this description.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The API's OpenAPI 3.1 description", content_type = "application/json",
        body = Object)))]
pub(super) async fn serve(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Response, ApiError> {
    caller.require(Need::Read)?;
    // Serialized again only when `external_url` changed (a reload).
    static SERVED: Mutex<Option<(Option<String>, Bytes)>> = Mutex::new(None);
    let external_url = state.site.external_url();
    let body = {
        let mut served = SERVED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match served.as_ref() {
            Some((url, body)) if *url == external_url => body.clone(),
            _ => {
                let body = Bytes::from(json(external_url.as_deref()));
                *served = Some((external_url, body.clone()));
                body
            }
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
