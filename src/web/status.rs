//! The public status page: which services are operational, degraded or out, the active
//! incidents and their public notes, as JSON (`GET /status.json`) or as a small
//! self-contained HTML page (`GET /`), without auth. A restricted incident (a data breach)
//! shows only as one generic notice — no id, no title, and it does not colour any service.
//!
//! Built from the engine's read model, never from the store: a request costs the same
//! with a million stored incidents as with ten. The page of a snapshot is built once and
//! served from memory until the next commit changes it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::domain::incident::{Incident, TimelineEntry};
use crate::domain::priority::Priority;
use crate::engine::{ReadModel, Snapshot};
use crate::view::{Restrictions, timestamp};

/// What the generic notice of restricted incidents says.
pub const RESTRICTED_NOTICE: &str = "We are investigating a security matter";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Operational,
    Degraded,
    Outage,
}

impl ServiceStatus {
    fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Operational => "operational",
            ServiceStatus::Degraded => "degraded",
            ServiceStatus::Outage => "outage",
        }
    }

    /// P1/P2 take a service out; P3–P5 degrade it.
    fn of(priority: Priority) -> Self {
        match priority {
            Priority::P1 | Priority::P2 => ServiceStatus::Outage,
            _ => ServiceStatus::Degraded,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StatusPage {
    pub services: Vec<ServiceEntry>,
    pub incidents: Vec<StatusIncident>,
}

#[derive(Debug, Serialize)]
pub struct ServiceEntry {
    pub name: String,
    pub status: ServiceStatus,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum StatusIncident {
    Public {
        id: String,
        title: String,
        state: &'static str,
        priority: &'static str,
        opened_at: String,
        updates: Vec<Update>,
    },
    /// Every active restricted incident together, as one notice.
    Restricted {
        title: &'static str,
        restricted: bool,
    },
}

#[derive(Debug, Serialize)]
pub struct Update {
    pub at: String,
    pub message: String,
}

/// The status page's routes and what they read: the engine's read model and the services
/// listed even when all is well (replaced by a reload). Cheap to clone.
#[derive(Clone)]
pub struct StatusPages {
    read: ReadModel,
    services: Arc<RwLock<Arc<Vec<String>>>>,
    /// The last page built, and what it was built from.
    cache: Arc<Mutex<Option<Cached>>>,
}

struct Cached {
    version: u64,
    services: Arc<Vec<String>>,
    rendered: Rendered,
}

/// A page in both forms, ready to send (cloning shares the bytes).
#[derive(Clone)]
struct Rendered {
    json: Bytes,
    html: Bytes,
}

impl StatusPages {
    pub fn new(read: ReadModel, services: Vec<String>) -> StatusPages {
        StatusPages {
            read,
            services: Arc::new(RwLock::new(Arc::new(services))),
            cache: Arc::default(),
        }
    }

    /// The services listed from now on (a reload).
    pub fn set_services(&self, services: Vec<String>) {
        *self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(services);
    }

    /// `GET /` and `GET /status.json`, public (no token).
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/status.json", get(json))
            .with_state(self)
    }

    /// The page of the current snapshot and services, built once per snapshot.
    fn get(&self) -> Rendered {
        let snapshot = self.read.borrow().clone();
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut cached = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cached.as_ref()
            && c.version == snapshot.version
            && Arc::ptr_eq(&c.services, &services)
        {
            return c.rendered.clone();
        }
        let page = from_snapshot(&services, &snapshot);
        let rendered = Rendered {
            json: serde_json::to_vec(&page)
                .expect("the status page serializes to JSON")
                .into(),
            html: render_html(&page).into(),
        };
        *cached = Some(Cached {
            version: snapshot.version,
            services,
            rendered: rendered.clone(),
        });
        rendered
    }
}

async fn json(State(pages): State<StatusPages>) -> Response {
    ([(CONTENT_TYPE, "application/json")], pages.get().json).into_response()
}

async fn page(State(pages): State<StatusPages>) -> Html<Bytes> {
    Html(pages.get().html)
}

/// The page of a snapshot: its active incidents, newest first, with their public notes.
pub fn from_snapshot(services: &[String], snapshot: &Snapshot) -> StatusPage {
    let none = Vec::new();
    let active: Vec<(&Incident, &[TimelineEntry])> = snapshot
        .active()
        .rev()
        .map(|incident| {
            let updates = snapshot
                .public_updates
                .get(&incident.id.0)
                .map_or(none.as_slice(), |u| u.as_slice());
            (incident.as_ref(), updates)
        })
        .collect();
    build(services, &active, &snapshot.restrictions)
}

/// Builds the page from `services` (always listed) and the active incidents with their
/// public notes (newest incident first).
pub fn build(
    services: &[String],
    active: &[(&Incident, &[TimelineEntry])],
    restrictions: &Restrictions,
) -> StatusPage {
    let mut statuses: BTreeMap<String, ServiceStatus> = services
        .iter()
        .map(|s| (s.clone(), ServiceStatus::Operational))
        .collect();
    let mut incidents = Vec::new();
    let mut any_restricted = false;
    for &(incident, timeline) in active.iter().filter(|(i, _)| i.state.is_active()) {
        if restrictions.is_restricted(incident) {
            any_restricted = true;
            continue;
        }
        if let Some(service) = &incident.service {
            let status = statuses
                .entry(service.clone())
                .or_insert(ServiceStatus::Operational);
            *status = (*status).max(ServiceStatus::of(incident.priority));
        }
        incidents.push(StatusIncident::Public {
            id: incident.id.to_string(),
            title: incident.title.clone(),
            state: incident.state.as_str(),
            priority: incident.priority.as_str(),
            opened_at: timestamp(incident.opened_at),
            updates: timeline
                .iter()
                .filter(|e| e.public)
                .map(|e| Update {
                    at: timestamp(e.at),
                    message: e.message.clone(),
                })
                .collect(),
        });
    }
    if any_restricted {
        incidents.push(StatusIncident::Restricted {
            title: RESTRICTED_NOTICE,
            restricted: true,
        });
    }
    StatusPage {
        services: statuses
            .into_iter()
            .map(|(name, status)| ServiceEntry { name, status })
            .collect(),
        incidents,
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page as HTML: no scripts, no external resources, every text escaped.
pub fn render_html(page: &StatusPage) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Status</title><style>\
         body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}\
         .operational{color:#1a7f37}.degraded{color:#9a6700}.outage{color:#cf222e}\
         li{margin:.3rem 0}</style></head><body>\n<h1>Status</h1>\n<h2>Services</h2>\n<ul>\n",
    );
    for service in &page.services {
        let status = service.status.as_str();
        let _ = writeln!(
            html,
            "<li>{} — <span class=\"{status}\">{status}</span></li>",
            escape(&service.name)
        );
    }
    html.push_str("</ul>\n<h2>Incidents</h2>\n");
    if page.incidents.is_empty() {
        html.push_str("<p>No active incidents.</p>\n");
    }
    for incident in &page.incidents {
        match incident {
            StatusIncident::Public {
                id,
                title,
                state,
                priority,
                opened_at,
                updates,
            } => {
                let _ = writeln!(
                    html,
                    "<section><h3>{} — {}</h3><p>{} · {} · since {}</p><ul>",
                    escape(id),
                    escape(title),
                    escape(state),
                    escape(priority),
                    escape(opened_at)
                );
                for update in updates {
                    let _ = writeln!(
                        html,
                        "<li><time>{}</time> {}</li>",
                        escape(&update.at),
                        escape(&update.message)
                    );
                }
                html.push_str("</ul></section>\n");
            }
            StatusIncident::Restricted { title, .. } => {
                let _ = writeln!(html, "<section><h3>{}</h3></section>", escape(title));
            }
        }
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn worst_priority_wins() {
        assert!(ServiceStatus::of(Priority::P1) > ServiceStatus::of(Priority::P3));
        assert_eq!(ServiceStatus::of(Priority::P5), ServiceStatus::Degraded);
    }
}
