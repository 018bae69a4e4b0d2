//! Types that exist only to describe answers and payloads the handlers build or read as
//! JSON (`serde_json::Value`), so the API's description (`openapi.rs`) can name them. A
//! leaf: handlers and the description both use it, it uses neither.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::report::Review;
use crate::view::{IncidentView, RestrictedView};

/// An incident as a caller may see it: in full, or, when it is restricted and the caller
/// has no clearance, only that it exists ([`crate::view::Restrictions::view`]).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // the schema of the `Value` the view gives
pub enum IncidentAnswer {
    Full(IncidentView<'static>),
    Restricted(RestrictedView),
}

/// A ticket just opened: the incident and its reporter's link, answered this once.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // the schema of the answer built in `workflow::open_ticket`
pub struct TicketAnswer {
    #[serde(flatten)]
    incident: IncidentAnswer,
    /// `/r/{token}`, absolute under `external_url` when it is set.
    reporter_link: String,
}

/// A review draft, or only that the incident exists (restricted, no clearance).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // the schema of `review::draft`'s JSON
pub enum ReviewAnswer {
    Review(Review),
    Restricted(RestrictedView),
}

/// Alertmanager's webhook payload (version 4); fields not listed are tolerated.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // read as JSON by `ingest::alertmanager`
pub struct AlertmanagerWebhook {
    /// `4` (absent: 4).
    version: Option<String>,
    group_key: Option<String>,
    status: Option<String>,
    receiver: Option<String>,
    alerts: Vec<AlertmanagerAlert>,
}

/// One alert of Alertmanager's webhook.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    #[schema(pattern = "^(firing|resolved)$")]
    status: String,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
    fingerprint: Option<String>,
}

/// An alert as Prometheus pushes it (Alertmanager's API v2); `labels.alertname` required.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // read as JSON by `ingest::api_v2`
pub struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// Not after now: the alert is resolved.
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

/// A PagerDuty Events API v2 event.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // read as JSON by `ingest::event`
pub struct PagerDutyEvent {
    /// An ingest token, when the request has no `Authorization` header.
    routing_key: String,
    /// `trigger`, `acknowledge` or `resolve`.
    #[schema(pattern = "^(trigger|acknowledge|resolve)$")]
    event_action: String,
    /// Required to acknowledge or resolve; made for a trigger without one.
    dedup_key: Option<String>,
    /// Required to trigger.
    payload: Option<PagerDutyPayload>,
    client_url: Option<String>,
}

/// What a PagerDuty trigger says.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct PagerDutyPayload {
    summary: String,
    source: String,
    /// `critical`, `error`, `warning` or `info`.
    #[schema(pattern = "^(critical|error|warning|info)$")]
    severity: String,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    custom_details: Option<serde_json::Value>,
}
