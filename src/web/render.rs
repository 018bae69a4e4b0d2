//! The page model as HTML (askama templates in `templates/`), Atom and SVG. Every text is
//! escaped by the templates; the HTML inside feed entries is escaped here.

use std::sync::LazyLock;

use askama::Template;
use sha2::{Digest, Sha256};

use super::page::{IncidentModel, Model, ServiceStatus, Stamp};

/// The stylesheet, served with a long cache under a name that changes with its content.
pub const CSS: &str = include_str!("../../static/status.css");

/// `/static/status.<hash>.css`.
pub static CSS_PATH: LazyLock<String> = LazyLock::new(|| {
    let hash = Sha256::digest(CSS.as_bytes());
    format!("/static/status.{}.css", &hex(&hash)[..12])
});

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What every HTML page has around its content.
pub struct Chrome {
    pub lang: &'static str,
    pub title: String,
    pub description: Option<String>,
    pub css: String,
    pub updated: Stamp,
    pub refresh: bool,
}

impl Chrome {
    pub fn of(model: &Model, refresh: bool) -> Chrome {
        Chrome {
            lang: model.lang,
            title: model.page.title.clone(),
            description: model.page.description.clone(),
            css: CSS_PATH.clone(),
            updated: model.page.updated_at.clone(),
            refresh,
        }
    }
}

#[derive(Template)]
#[template(path = "index.html")]
struct Index<'a> {
    chrome: Chrome,
    model: &'a Model,
}

impl Index<'_> {
    fn active(&self) -> Vec<&IncidentModel> {
        self.model
            .incidents
            .iter()
            .filter(|i| i.is_active())
            .collect()
    }

    fn resolved(&self) -> Vec<&IncidentModel> {
        self.model
            .incidents
            .iter()
            .filter(|i| !i.is_active())
            .collect()
    }
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage<'a> {
    chrome: Chrome,
    incident: &'a IncidentModel,
}

#[derive(Template)]
#[template(path = "history.html")]
struct History<'a> {
    chrome: Chrome,
    month: &'a HistoryMonth<'a>,
}

/// One month of the history page.
pub struct HistoryMonth<'a> {
    /// "March 2026".
    pub month_name: String,
    /// The public incidents opened that month, newest first.
    pub incidents: &'a [IncidentModel],
    /// Public incidents of the month beyond those listed.
    pub more: usize,
    /// The month has more incidents than one request reads: the oldest were not searched.
    pub unread: bool,
    /// The generic notice, when a restricted incident opened that month.
    pub notice: Option<&'static str>,
    /// `YYYY-MM` of the month before, when an older incident is stored.
    pub previous: Option<String>,
    /// `YYYY-MM` of the month after, unless this is the current one.
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFound {
    chrome: Chrome,
}

/// Askama renders into a `String`; a failure can only come from a `Display` impl of ours.
fn rendered(result: askama::Result<String>) -> String {
    result.unwrap_or_else(|error| {
        tracing::error!(%error, "rendering a status page template failed");
        String::new()
    })
}

pub fn index(model: &Model) -> String {
    rendered(
        Index {
            chrome: Chrome::of(model, true),
            model,
        }
        .render(),
    )
}

pub fn incident(model: &Model, incident: &IncidentModel) -> String {
    rendered(
        IncidentPage {
            chrome: Chrome::of(model, true),
            incident,
        }
        .render(),
    )
}

pub fn history(model: &Model, month: &HistoryMonth<'_>) -> String {
    rendered(
        History {
            chrome: Chrome::of(model, false),
            month,
        }
        .render(),
    )
}

pub fn not_found(model: &Model) -> String {
    rendered(
        NotFound {
            chrome: Chrome::of(model, false),
        }
        .render(),
    )
}

/// Escapes text for HTML (the content of feed entries, escaped again by the feed).
pub fn escape(text: &str) -> String {
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

pub struct Entry {
    pub id: String,
    pub title: String,
    pub updated: String,
    pub link: String,
    pub html: String,
    /// For ordering, newest first.
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Template)]
#[template(path = "feed.xml")]
struct Feed<'a> {
    feed_id: String,
    title: String,
    updated: String,
    self_href: String,
    base: &'a str,
    author: &'a str,
    entries: &'a [Entry],
}

/// At most this many entries in a feed, newest first.
pub const FEED_ENTRIES: usize = 50;

/// The Atom feed of the public incidents' updates and the maintenances, of all services
/// (`service` None) or of one.
pub fn feed(model: &Model, base: &str, service: Option<&str>) -> String {
    let mut entries = Vec::new();
    let concerns = |services: &[String]| service.is_none_or(|s| services.iter().any(|x| x == s));
    for incident in model.incidents.iter().filter(|i| concerns(&i.services)) {
        let number = incident.id.trim_start_matches("INC-");
        let link = format!("{base}/incidents/{}", incident.id);
        for update in &incident.updates {
            entries.push(Entry {
                id: format!(
                    "tag:incidentd,2024:incident-{number}/{}/{}",
                    update.status,
                    update.at.utc.timestamp_millis()
                ),
                title: format!("{}: {}", incident.title, update.status),
                updated: update.at.iso.clone(),
                link: link.clone(),
                html: format!(
                    "<p><strong>{}</strong> · {}</p><p>{}</p>",
                    escape(update.status),
                    escape(&update.at.local),
                    escape(&update.body)
                ),
                at: update.at.utc,
            });
        }
    }
    for m in model.maintenances.iter().filter(|m| concerns(&m.services)) {
        entries.push(Entry {
            id: format!("tag:incidentd,2024:maintenance-{}", m.id),
            title: format!("Maintenance: {}", m.title),
            updated: m.starts_at.iso.clone(),
            link: format!("{base}/"),
            html: format!(
                "<p>{} – {}</p><p>{}</p>",
                escape(&m.starts_at.local),
                escape(&m.ends_at.local),
                escape(&m.message)
            ),
            at: m.starts_at.utc,
        });
    }
    entries.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
    entries.truncate(FEED_ENTRIES);
    let (feed_id, title, self_href) = match service {
        None => (
            "tag:incidentd,2024:status".to_owned(),
            model.page.title.clone(),
            format!("{base}/feed.atom"),
        ),
        Some(s) => (
            format!("tag:incidentd,2024:status/{s}"),
            format!("{}: {s}", model.page.title),
            format!("{base}/feed/{s}.atom"),
        ),
    };
    let updated = entries
        .first()
        .map_or_else(|| model.page.updated_at.iso.clone(), |e| e.updated.clone());
    rendered(
        Feed {
            feed_id,
            title,
            updated,
            self_href,
            base,
            author: &model.page.title,
            entries: &entries,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "badge.svg")]
struct Badge<'a> {
    label: &'a str,
    value: &'a str,
    colour: &'a str,
    width: usize,
    label_width: usize,
    value_width: usize,
    label_x: usize,
    value_x: usize,
}

/// A flat badge: `label` on grey, `value` on `colour` (white text, ≥ 4.5:1).
pub fn badge(label: &str, value: &str, colour: &str) -> String {
    let width_of = |text: &str| text.chars().count() * 7 + 12;
    let label_width = width_of(label);
    let value_width = width_of(value);
    rendered(
        Badge {
            label,
            value,
            colour,
            width: label_width + value_width,
            label_width,
            value_width,
            label_x: label_width / 2,
            value_x: label_width + value_width / 2,
        }
        .render(),
    )
}

pub fn status_colour(status: ServiceStatus) -> &'static str {
    match status {
        ServiceStatus::Operational => "#1a7f37",
        ServiceStatus::Maintenance => "#0550ae",
        ServiceStatus::Degraded => "#9a6700",
        ServiceStatus::PartialOutage => "#bc4c00",
        ServiceStatus::MajorOutage => "#cf222e",
    }
}

/// The colour of an uptime percentage.
pub fn uptime_colour(percent: Option<f64>) -> &'static str {
    match percent {
        None => "#6e7781",
        Some(p) if p >= 99.9 => "#1a7f37",
        Some(p) if p >= 99.0 => "#9a6700",
        Some(_) => "#cf222e",
    }
}
