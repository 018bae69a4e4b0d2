//! The subscription worker: fans status updates out to the queue (through the engine, one
//! transaction per batch of updates), then sends what is due — email through the SMTP relay
//! (lettre), webhooks signed like every other event — at most [`CONCURRENCY`] at once, and
//! reports to the engine what was sent, given up or is to be tried again.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::MailConfig;
use crate::engine::EngineHandle;
use crate::engine::subscriptions::{Outcome, SubsOp};
use crate::store::{CallMail, Channel, Message, Notification, StatusUpdate, Store, Subscriber};

/// Sends in flight at once.
const CONCURRENCY: usize = 16;
/// Entries read per round.
const ROUND: usize = 256;
/// Looked at again at least this often (retries come due without a commit).
const POLL: Duration = Duration::from_secs(1);

/// What the worker needs; cheap to clone.
#[derive(Clone)]
pub struct SubscriptionWorker {
    pub store: Store,
    pub engine: EngineHandle,
    pub clock: Arc<dyn Clock>,
    pub client: reqwest::Client,
    pub mail: Option<Arc<Mailer>>,
    /// `external_url`: the base of every link.
    pub external_url: String,
    /// `status_page.title`: the subject's prefix.
    pub title: String,
}

/// The SMTP relay and the sender.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(config: &MailConfig) -> anyhow::Result<Mailer> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|_| anyhow::anyhow!("mail.smtp_url_env is not a valid SMTP URL"))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        Ok(Mailer {
            transport,
            from: config.from.parse()?,
        })
    }
}

/// When a subscriber's notification is tried again, or `None` to give up: the webhook
/// consumers' default schedule and maximum age (the same at-least-once promise).
pub fn retry_at(
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    failures: u32,
    jitter: f64,
) -> Option<DateTime<Utc>> {
    use super::retry::{Next, next};
    use crate::config::{DEFAULT_RETRY_SCHEDULE, DEFAULT_WEBHOOK_MAX_AGE};
    let next = next(
        &DEFAULT_RETRY_SCHEDULE,
        DEFAULT_WEBHOOK_MAX_AGE,
        created_at,
        now,
        failures,
        None,
        jitter,
    );
    match next {
        Next::After(wait) => Some(now + chrono::Duration::from_std(wait).ok()?),
        Next::DeadLetter => None,
    }
}

/// `a***@example.com`: enough to tell addresses apart in a log, not to read one.
pub fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
        }
        None => "***".to_owned(),
    }
}

/// A mail's subject and plain-text body.
pub fn render_mail(
    title: &str,
    external_url: &str,
    token: &str,
    message: &Message,
) -> (String, String) {
    let base = external_url.trim_end_matches('/');
    let unsubscribe = format!("{base}/subscriptions/unsubscribe/{token}");
    match message {
        Message::Confirm => (
            format!("[{title}] Confirm your subscription"),
            format!(
                "Someone (hopefully you) asked to be told of incidents on {title}.\n\nConfirm: {base}/subscriptions/confirm/{token}\n\nIf it was not you, ignore this mail: nothing will be sent.\n"
            ),
        ),
        Message::Update(update) => {
            let mut body = format!(
                "{}: {}\nStatus: {}\n",
                update.incident, update.title, update.status
            );
            if !update.services.is_empty() {
                body.push_str(&format!("Services: {}\n", update.services.join(", ")));
            }
            if let Some(note) = &update.note {
                body.push_str(&format!("\n{note}\n"));
            }
            body.push_str(&format!(
                "\nDetails: {base}/incidents/{}\n\nUnsubscribe: {unsubscribe}\n",
                update.incident
            ));
            (
                format!("[{title}] {}: {}", update.status, update.title),
                body,
            )
        }
        Message::Call(call) => render_call_mail(title, call),
    }
}

/// The mail to a ticket's reporter about a call scheduled on it: what `Restrictions::
/// reporter_call` lets them see, no link to their page (only its hash is stored), no
/// unsubscribe link (it is about their own report, not a subscription).
pub fn render_call_mail(title: &str, call: &CallMail) -> (String, String) {
    let about = match &call.title {
        Some(ticket) => format!("{} ({ticket})", call.incident),
        None => call.incident.clone(),
    };
    let mut body = format!(
        "A call about your report {about} is scheduled.\n\nWhen: {}\nJoin: {}\n",
        crate::view::timestamp(call.at),
        call.url
    );
    if !call.participants.is_empty() {
        body.push_str(&format!("Participants: {}\n", call.participants.join(", ")));
    }
    if let Some(note) = &call.note {
        body.push_str(&format!("\n{note}\n"));
    }
    body.push_str(
        "\nThe private link you were given when you reported it shows your report and its calls.\n",
    );
    (
        format!(
            "[{title}] Call scheduled about your report {}",
            call.incident
        ),
        body,
    )
}

/// The signed webhook body: the update (public fields only).
fn webhook_body(event_id: &str, update: &StatusUpdate, external_url: &str) -> String {
    serde_json::json!({
        "id": event_id,
        "type": format!("status.{}", update.event.trim_start_matches("incident.")),
        "occurred_at": crate::view::timestamp(update.at),
        "url": format!("{}/incidents/{}", external_url.trim_end_matches('/'), update.incident),
        "incident": {
            "id": update.incident,
            "title": update.title,
            "status": update.status,
            "services": update.services,
            "note": update.note,
        },
    })
    .to_string()
}

enum Sent {
    Ok,
    Failed(String),
}

impl SubscriptionWorker {
    pub async fn run(self, stop: CancellationToken) {
        let wake = self.engine.subscriptions_wake();
        // A standby sends nothing: the leader does.
        tokio::select! {
            () = self.engine.until_leading() => {}
            () = stop.cancelled() => return,
        }
        loop {
            if let Err(error) = self.round().await {
                tracing::warn!(%error, "subscription notifications: a round failed; trying again");
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Fans out, then sends what is due until nothing is.
    pub async fn round(&self) -> anyhow::Result<()> {
        self.engine.subscriptions(SubsOp::FanOut).await?;
        loop {
            let now = self.clock.now();
            let store = self.store.clone();
            let (due, _) =
                tokio::task::spawn_blocking(move || store.due_notifications(now, ROUND)).await??;
            if due.is_empty() {
                return Ok(());
            }
            let mut outcomes = Vec::with_capacity(due.len());
            let mut sends = JoinSet::new();
            for entry in due {
                while sends.len() >= CONCURRENCY {
                    if let Some(Ok(outcome)) = sends.join_next().await {
                        outcomes.push(outcome);
                    }
                }
                let worker = self.clone();
                sends.spawn(async move { worker.deliver(entry).await });
            }
            while let Some(outcome) = sends.join_next().await {
                if let Ok(outcome) = outcome {
                    outcomes.push(outcome);
                }
            }
            self.engine.subscriptions(SubsOp::Report(outcomes)).await?;
        }
    }

    async fn deliver(&self, entry: Notification) -> Outcome {
        if let Message::Call(call) = &entry.message {
            return match self.mail_reporter(call).await {
                Sent::Ok => Outcome::Sent {
                    seq: entry.seq,
                    channel: Channel::Email,
                },
                Sent::Failed(error) => {
                    tracing::warn!(incident = call.incident, to = mask(&call.to), %error, "a call's mail to the reporter failed");
                    match self.retry(entry, error) {
                        Outcome::Dropped { seq } => Outcome::Failed {
                            seq,
                            channel: Channel::Email,
                        },
                        other => other,
                    }
                }
            };
        }
        let store = self.store.clone();
        let id = entry.subscriber;
        let subscriber = match tokio::task::spawn_blocking(move || store.subscriber(id)).await {
            Ok(Ok(Some(subscriber))) => subscriber,
            Ok(Ok(None)) => return Outcome::Dropped { seq: entry.seq },
            _ => return self.retry(entry, "the store could not be read".to_owned()),
        };
        if subscriber.confirmed_at.is_none() && !matches!(entry.message, Message::Confirm) {
            return Outcome::Dropped { seq: entry.seq };
        }
        let sent = match subscriber.channel {
            Channel::Email => self.mail(&subscriber, &entry).await,
            Channel::Webhook => self.webhook(&subscriber, &entry).await,
        };
        match sent {
            Sent::Ok => Outcome::Sent {
                seq: entry.seq,
                channel: subscriber.channel,
            },
            Sent::Failed(error) => {
                let channel = subscriber.channel;
                tracing::warn!(subscriber = subscriber.id, channel = channel.as_str(), %error, "a subscriber notification failed");
                match self.retry(entry, error) {
                    Outcome::Dropped { seq } => Outcome::Failed { seq, channel },
                    other => other,
                }
            }
        }
    }

    /// The entry again later, or `Dropped` once 24 h old (counted as failed by the caller).
    fn retry(&self, mut entry: Notification, _error: String) -> Outcome {
        let now = self.clock.now();
        entry.attempts += 1;
        match retry_at(entry.created_at, now, entry.attempts, rand::random()) {
            Some(at) => {
                entry.next_at = at;
                Outcome::Retry(Box::new(entry))
            }
            None => Outcome::Dropped { seq: entry.seq },
        }
    }

    async fn mail(&self, subscriber: &Subscriber, entry: &Notification) -> Sent {
        let Some(mailer) = &self.mail else {
            return Sent::Failed("mail is not configured".to_owned());
        };
        let Ok(to) = subscriber.address.parse::<Mailbox>() else {
            return Sent::Failed(format!("invalid address {}", mask(&subscriber.address)));
        };
        let (subject, body) = render_mail(
            &self.title,
            &self.external_url,
            &subscriber.token,
            &entry.message,
        );
        let unsubscribe = format!(
            "<{}/subscriptions/unsubscribe/{}>",
            self.external_url.trim_end_matches('/'),
            subscriber.token
        );
        let mail = Mail::builder()
            .from(mailer.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .raw_header(lettre::message::header::HeaderValue::new(
                lettre::message::header::HeaderName::new_from_ascii_str("List-Unsubscribe"),
                unsubscribe,
            ))
            .raw_header(lettre::message::header::HeaderValue::new(
                lettre::message::header::HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ))
            .body(body);
        let mail = match mail {
            Ok(mail) => mail,
            Err(error) => return Sent::Failed(error.to_string()),
        };
        match mailer.transport.send(mail).await {
            Ok(_) => Sent::Ok,
            Err(error) => Sent::Failed(error.to_string()),
        }
    }

    /// A scheduled call to the reporter's contact (queued only when mail is configured;
    /// a reload that removed `mail:` leaves it failing until given up).
    async fn mail_reporter(&self, call: &CallMail) -> Sent {
        let Some(mailer) = &self.mail else {
            return Sent::Failed("mail is not configured".to_owned());
        };
        let Ok(to) = call.to.parse::<Mailbox>() else {
            return Sent::Failed(format!("invalid address {}", mask(&call.to)));
        };
        let (subject, body) = render_call_mail(&self.title, call);
        let mail = Mail::builder()
            .from(mailer.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        match mail {
            Ok(mail) => match mailer.transport.send(mail).await {
                Ok(_) => Sent::Ok,
                Err(error) => Sent::Failed(error.to_string()),
            },
            Err(error) => Sent::Failed(error.to_string()),
        }
    }

    async fn webhook(&self, subscriber: &Subscriber, entry: &Notification) -> Sent {
        let Message::Update(update) = &entry.message else {
            return Sent::Ok;
        };
        let key = subscriber
            .secret
            .as_deref()
            .and_then(|s| s.strip_prefix("whsec_"))
            .and_then(|s| STANDARD.decode(s).ok())
            .unwrap_or_default();
        let body = webhook_body(&entry.event_id, update, &self.external_url);
        let timestamp = self.clock.now().timestamp();
        let signature =
            super::signing::signature_header(&[key], &entry.event_id, timestamp, body.as_bytes());
        let sent = self
            .client
            .post(&subscriber.address)
            .timeout(Duration::from_secs(10))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &entry.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Sent::Ok,
            Ok(response) => Sent::Failed(format!("status {}", response.status().as_u16())),
            Err(_) => Sent::Failed("the request failed".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_retry_on_the_webhook_schedule_and_give_up_after_a_day() {
        let created = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let first = retry_at(created, created, 1, 0.5).unwrap();
        assert_eq!(first - created, chrono::Duration::seconds(5));
        let late = created + chrono::Duration::hours(23);
        let last = retry_at(created, late, 6, 0.5).unwrap();
        assert_eq!(
            last,
            created + chrono::Duration::hours(24),
            "never past a day"
        );
        assert_eq!(
            retry_at(created, created + chrono::Duration::hours(24), 7, 0.5),
            None
        );
    }

    #[test]
    fn a_call_mail_says_when_where_and_who_without_the_link() {
        let call = CallMail {
            to: "ana@example.com".to_owned(),
            incident: "INC-7".to_owned(),
            title: Some("VPN broken".to_owned()),
            at: DateTime::from_timestamp(1_772_445_600, 0).unwrap(),
            url: "https://meet.example/inc-7".to_owned(),
            participants: vec!["Ana".to_owned(), "Budi (network)".to_owned()],
            note: Some("Please have the VPN client log ready.".to_owned()),
        };
        let (subject, body) = render_call_mail("Acme", &call);
        assert_eq!(subject, "[Acme] Call scheduled about your report INC-7");
        assert_eq!(
            body,
            "A call about your report INC-7 (VPN broken) is scheduled.\n\nWhen: 2026-03-02T10:00:00Z\nJoin: https://meet.example/inc-7\nParticipants: Ana, Budi (network)\n\nPlease have the VPN client log ready.\n\nThe private link you were given when you reported it shows your report and its calls.\n"
        );
        // Restricted: no title, participants or note reached the mail.
        let restricted = CallMail {
            title: None,
            participants: Vec::new(),
            note: None,
            ..call
        };
        let (_, body) = render_call_mail("Acme", &restricted);
        assert!(
            body.starts_with("A call about your report INC-7 is scheduled."),
            "{body}"
        );
        assert!(!body.contains("VPN"), "{body}");
    }

    #[test]
    fn masks_addresses() {
        assert_eq!(mask("ana@example.com"), "a***@example.com");
        assert_eq!(mask("nope"), "***");
    }

    #[test]
    fn update_mail_has_subject_links_and_unsubscribe() {
        let update = StatusUpdate {
            event: "incident.opened".to_owned(),
            incident: "INC-7".to_owned(),
            title: "Checkout API down".to_owned(),
            status: "Investigating".to_owned(),
            services: vec!["checkout".to_owned()],
            note: None,
            at: Utc::now(),
        };
        let (subject, body) = render_mail(
            "Acme",
            "https://status.example/",
            "TOK",
            &Message::Update(update),
        );
        assert_eq!(subject, "[Acme] Investigating: Checkout API down");
        assert!(
            body.contains("https://status.example/incidents/INC-7"),
            "{body}"
        );
        assert!(
            body.contains("https://status.example/subscriptions/unsubscribe/TOK"),
            "{body}"
        );
    }
}
