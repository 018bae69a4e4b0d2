//! incidentd: health probes and early-symptom rules that open incidents, a service-desk
//! workflow, TAT/SLA clocks exported to Prometheus, and signed webhook events.
//!
//! Code map (see ARCHITECTURE.md for the invariants):
//! - [`domain`]: the pure core — condition language, detector, incident state machine,
//!   SLA clocks and calendars, the workflow's policies (categories, priority matrix,
//!   escalation). No I/O; `now` is an argument.
//! - [`engine`]: the single owner of incident state; group-commits every change.
//! - [`store`]: redb tables and their stored record types.
//! - [`probe`]: probe scheduler and probes; results are values.
//! - [`ingest`]: alert payloads (Alertmanager webhook v4, v2 push, PagerDuty Events v2) →
//!   alerts, every problem naming its field.
//! - [`notify`]: webhook delivery from the outbox, Standard Webhooks signing.
//! - [`api`]: the HTTP API; [`view`]: the JSON shape of an incident; [`visibility`]: what
//!   the public may see of one (the status page, feeds, subscribers, the engine's announcements).
//! - [`config`]: strict YAML config, every error with `FILE:LINE:COL`.
//! - [`app`]: start-up and ordered shutdown; [`cli`]: the commands; [`ctl`]: `incidentd ctl`,
//!   the HTTP API's command-line client.
//! - [`rule_test_runner`]: `incidentd test`, rule unit tests run on the real engine.
//! - [`sla_report`]: `GET /api/v1/sla`, TAT compliance over a window; [`report`]: the
//!   post-incident review draft of one incident.
//! - [`web`]: pages for people — the public status page (`/status.json`, `/`), built from
//!   the engine's read model, restricted incidents hidden; the reporter's private page; the
//!   responder console (`/console`): sessions, the queue, incident forms, live updates over SSE.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod domain;
pub mod engine;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod report;
pub mod rule_test_runner;
pub mod sla_report;
pub mod store;
pub mod view;
pub mod visibility;
pub mod web;
