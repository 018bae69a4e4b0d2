//! The pure core: the condition language, the detector, the incident model and the
//! service desk's policies (categories, priority matrix, escalation, SLA). Nothing in here does I/O or reads a clock; every function that
//! needs the time takes `now` as an argument. Decisions come back as values (effects)
//! for the engine to persist and act on.

pub mod alert;
pub mod calendar;
pub mod condition;
pub mod correlate;
pub mod detector;
pub mod duration;
pub mod fingerprint;
pub mod incident;
pub mod maintenance;
pub mod observation;
pub mod policy;
pub mod priority;
pub mod signal;
pub mod similar;
pub mod sla;
pub mod suppression;
pub mod timer;
pub mod uptime;

pub use observation::Observation;
