//! The one integration test binary: the real app, real redb files, real HTTP targets and
//! webhook receivers on loopback, and the real `incidentd` binary where a process must die.

mod support;

mod alerts;
mod auth;
mod breach;
mod browser;
mod check;
mod console;
mod console_browser;
mod consumer_faults;
mod ctl;
mod dashboards;
mod detection;
mod exporter;
mod faults;
mod ha;
mod ha_faults;
mod hardening_edge;
mod hardening_limits;
mod hostile_input;
mod interop_alerts;
mod maintenances;
mod openapi;
mod pg_server;
mod probe_faults;
mod probe_to_webhook;
mod probes;
mod reload;
mod reporter;
mod restart;
mod ruletest;
mod secrets;
mod silences;
mod sla;
mod status_page;
mod store;
mod store_copy;
mod subscriptions;
mod uptime;
mod webhooks_delivery;
mod workflow;
