//! The engine's commands, one typed reply each, and the handle callers send them through.
//! A command that answers is answered only after the transaction holding its effects is
//! durable; a probe result is offered without waiting (a probe never waits for the store).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::domain::alert::Alert;
use crate::domain::incident::{Call, Changes, Incident, IncidentId, Kind, Reporter, Tier};
use crate::domain::maintenance::Maintenance;
use crate::domain::observation::Observation;
use crate::domain::priority::Level;
use crate::domain::suppression::{Matcher, Silence};
use crate::store::{ConsumerState, DeadLetter, DeliveryAttempt, OutboxEntry, StoreError};
use crate::view::Clearance;

pub use super::reply::EngineError;
use super::reply::Reply;

/// A subject's labels: a Prometheus series' labels; empty for single-target probes.
pub type Subject = BTreeMap<String, String>;

/// One run of one probe: a result per subject.
#[derive(Debug)]
pub struct ProbeRun {
    pub probe: String,
    /// When the run started.
    pub at: DateTime<Utc>,
    pub results: Vec<(Subject, Observation)>,
    /// The run lists every subject there is (a successful Prometheus query): subjects it no
    /// longer returns are gone, which counts as a clean result for each.
    pub complete: bool,
}

/// What a webhook worker learned since its last report, carried out in one commit (with
/// whatever else is in the batch): acknowledging deliveries in batches is what keeps a
/// fast consumer from waiting for an fsync per event.
#[derive(Debug, Default, Clone)]
pub struct DeliveryReport {
    pub consumer: String,
    pub delivered: Vec<OutboxEntry>,
    pub dead: Vec<DeadLetter>,
    pub attempts: Vec<DeliveryAttempt>,
    /// The consumer answered 410 Gone: disabled until an admin enables it.
    pub disable: Option<ConsumerState>,
    /// Forget the consumer's delivery log, delivered events and dead letters older than this.
    pub prune_before: Option<DateTime<Utc>>,
}

/// What the engine made of a probe run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunVerdict {
    /// A rule of the probe is between its first symptomatic result and `after`, or between
    /// its first clean result and `recover_after`: run again after `confirm_interval`.
    pub confirm: bool,
}

/// A workflow verb on one incident.
#[derive(Debug, Clone)]
pub enum Verb {
    Acknowledge,
    Resolve {
        resolution: Option<String>,
    },
    Note {
        text: String,
        public: bool,
    },
    Hold {
        reason: String,
    },
    Resume,
    /// To `tier`, or the next one. `may_lower`: the caller is an admin.
    Escalate {
        reason: String,
        tier: Option<Tier>,
        may_lower: bool,
    },
    /// `PATCH`: audited field changes.
    Update {
        changes: Changes,
        reason: String,
    },
    Close,
    Reopen {
        reason: String,
    },
    /// A call from L2 or L3 (`POST /api/v1/incidents/{id}/calls`); mailed to a ticket's
    /// reporter when mail is configured.
    ScheduleCall {
        call: Call,
    },
    /// A new reporter link (the SHA-256 of its token; the old link stops working), or
    /// `None`: the link is revoked.
    ReporterLink {
        hash: Option<[u8; 32]>,
    },
}

/// A ticket as the API received it; the engine settles category, kind and priority.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub title: String,
    pub description: String,
    pub reporter: Reporter,
    pub kind: Option<Kind>,
    pub category: Option<String>,
    pub impact: Option<Level>,
    pub urgency: Option<Level>,
    pub service: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The SHA-256 of the reporter link's token, issued in the ticket's own commit (the
    /// token itself never reaches the engine).
    pub reporter_link: Option<[u8; 32]>,
}

/// A silence as the API received it.
#[derive(Debug, Clone)]
pub struct NewSilence {
    pub matchers: Vec<Matcher>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// A maintenance as the API received it (its fields checked there).
#[derive(Debug, Clone)]
pub struct NewMaintenance {
    pub title: String,
    pub message: String,
    pub services: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
}

/// What a reload changed in the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    pub rules_added: Vec<String>,
    pub rules_changed: Vec<String>,
    pub rules_removed: Vec<String>,
}

/// What one alert of a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOutcome {
    /// Opened, joined, reopened, refreshed, resolved or acknowledged an incident.
    Accepted(IncidentId),
    /// The incident already carries the alert as it is: nothing changed.
    Duplicate(IncidentId),
    /// Firing, but silenced: no incident.
    Suppressed,
    /// A resolve or acknowledge that no incident waited for (never fired, or closed).
    Ignored,
}

impl AlertOutcome {
    /// The `outcome` of `incidentd_alerts_received_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::Accepted(_) => "accepted",
            AlertOutcome::Duplicate(_) => "duplicate",
            AlertOutcome::Suppressed => "suppressed",
            AlertOutcome::Ignored => "ignored",
        }
    }

    pub fn incident(self) -> Option<IncidentId> {
        match self {
            AlertOutcome::Accepted(id) | AlertOutcome::Duplicate(id) => Some(id),
            AlertOutcome::Suppressed | AlertOutcome::Ignored => None,
        }
    }
}

/// What a batch of alerts did, one outcome per alert in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsOutcome {
    pub alerts: Vec<AlertOutcome>,
}

/// Why an ingest command was not taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The queue stayed full for the whole wait: the caller answers 429.
    #[error("incidentd is busy; retry later")]
    Busy,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub(super) enum Command {
    /// A batch of alerts: all of it in one transaction, or none.
    Alerts {
        alerts: Vec<Alert>,
        reply: Reply<AlertsOutcome>,
    },
    Run {
        run: ProbeRun,
        reply: Option<Reply<RunVerdict>>,
    },
    Workflow {
        id: IncidentId,
        actor: String,
        /// What the caller may see: a restricted incident refuses callers without clearance.
        clearance: Clearance,
        verb: Verb,
        reply: Reply<Incident>,
    },
    OpenTicket {
        ticket: NewTicket,
        actor: String,
        reply: Reply<Incident>,
    },
    /// A comment from a ticket's reporter, through the link whose token has this SHA-256:
    /// refused when the link does not work (any more).
    ReporterComment {
        hash: [u8; 32],
        text: String,
        reply: Reply<IncidentId>,
    },
    /// What a webhook worker did since its last report: entries delivered or given up,
    /// attempts for the log, the consumer disabled (410), old history to prune.
    Deliveries {
        report: DeliveryReport,
        reply: Reply<()>,
    },
    /// Queue stored events again for a consumer (same `webhook-id`, a new sequence); dead
    /// letters among them leave the dead letters. Answers the event ids queued.
    Replay {
        consumer: String,
        entries: Vec<(OutboxEntry, bool)>,
        reply: Reply<Vec<String>>,
    },
    /// An admin enables (or the worker disables) a consumer.
    SetConsumer {
        consumer: String,
        state: ConsumerState,
        reply: Reply<()>,
    },
    Silence {
        silence: NewSilence,
        reply: Reply<Silence>,
    },
    Expire {
        id: u64,
        reply: Reply<Silence>,
    },
    Maintain {
        maintenance: NewMaintenance,
        reply: Reply<Maintenance>,
    },
    /// Cancels an upcoming maintenance, ends an active one now.
    EndMaintenance {
        id: u64,
        reply: Reply<Maintenance>,
    },
    /// A subscription change, a fan-out or the subscription worker's report.
    Subscriptions {
        op: super::subscriptions::SubsOp,
        reply: Reply<super::subscriptions::SubsAnswer>,
    },
    /// A console sign-in or sign-out.
    Sessions {
        op: super::sessions::SessionOp,
        reply: Reply<()>,
    },
    /// Fire the durable timers that are due.
    Tick {
        reply: Option<Reply<()>>,
    },
    /// A standby's: the leader committed; read the store again and publish what it holds.
    Refresh,
    /// This replica took the leader's lease: read the store again (nothing can be committed
    /// behind it any more) and carry out commands from now on.
    Lead {
        reply: Reply<()>,
    },
    /// A reloaded configuration: rules, workflow policies and webhook consumers (woken
    /// through `wakers`).
    Reconfigure {
        config: Box<Config>,
        wakers: super::Wakers,
        reply: Reply<Reconfigured>,
    },
}

impl Command {
    /// Answers the command with the store's error without carrying it out: the store does
    /// not take writes.
    pub(super) fn refuse(self, error: &Arc<StoreError>) {
        fn refused<T>(reply: Reply<T>, error: &Arc<StoreError>) {
            let _ = reply.send(Err(EngineError::Store(error.clone())));
        }
        match self {
            Command::Run { reply, .. } => {
                if let Some(reply) = reply {
                    refused(reply, error);
                }
            }
            Command::Workflow { reply, .. } | Command::OpenTicket { reply, .. } => {
                refused(reply, error);
            }
            Command::ReporterComment { reply, .. } => refused(reply, error),
            Command::Alerts { reply, .. } => refused(reply, error),
            Command::Deliveries { reply, .. } | Command::SetConsumer { reply, .. } => {
                refused(reply, error);
            }
            Command::Replay { reply, .. } => {
                refused(reply, error);
            }
            Command::Silence { reply, .. } | Command::Expire { reply, .. } => {
                refused(reply, error);
            }
            Command::Maintain { reply, .. } | Command::EndMaintenance { reply, .. } => {
                refused(reply, error);
            }
            Command::Tick { reply } => {
                if let Some(reply) = reply {
                    refused(reply, error);
                }
            }
            Command::Reconfigure { reply, .. } => {
                refused(reply, error);
            }
            Command::Refresh => {}
            Command::Lead { reply } => refused(reply, error),
            Command::Subscriptions { reply, .. } => refused(reply, error),
            Command::Sessions { reply, .. } => refused(reply, error),
        }
    }
}

/// Why a probe run was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: the run is dropped (and counted by the caller).
    Full,
    /// The engine has stopped.
    Stopped,
}

/// The way in: cheap to clone, one per caller.
#[derive(Clone)]
pub struct EngineHandle {
    pub(super) tx: mpsc::Sender<Command>,
    /// False from a failed commit until the store is open again and takes writes.
    pub(super) writable: Arc<AtomicBool>,
    /// Notified after a commit that gave the subscription worker something to do.
    pub(super) subscriptions_wake: Arc<tokio::sync::Notify>,
    /// Whether this replica leads: always with a redb file; with PostgreSQL while it holds
    /// the lease. A standby's engine carries out no command (writes go to the leader).
    pub(super) leading: watch::Receiver<bool>,
}

impl EngineHandle {
    /// Whether the store takes writes: false after a failed commit (a full disk) until the
    /// engine has opened it again and a write went through. `/-/ready` answers 503 meanwhile.
    pub fn store_writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// Whether this replica leads: it runs probes, timers and deliveries.
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Returns once this replica leads (at once where it always does).
    pub async fn until_leading(&self) {
        let mut leading = self.leading.clone();
        // An error: the engine stopped, and so will the caller.
        let _ = leading.wait_for(|leading| *leading).await;
    }

    /// A standby reads the store again: the leader committed. Never waits; a refresh
    /// already queued covers this one.
    pub fn refresh(&self) {
        let _ = self.tx.try_send(Command::Refresh);
    }

    /// This replica took the lease: the engine reads the store again and leads.
    pub async fn lead(&self) -> Result<(), EngineError> {
        self.ask(|reply| Command::Lead { reply }).await
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(command(reply))
            .await
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// A workflow verb; answers the incident as it is once the change is durable.
    pub async fn workflow(
        &self,
        id: IncidentId,
        actor: String,
        clearance: Clearance,
        verb: Verb,
    ) -> Result<Incident, EngineError> {
        self.ask(|reply| Command::Workflow {
            id,
            actor,
            clearance,
            verb,
            reply,
        })
        .await
    }

    pub async fn open_ticket(
        &self,
        ticket: NewTicket,
        actor: String,
    ) -> Result<Incident, EngineError> {
        self.ask(|reply| Command::OpenTicket {
            ticket,
            actor,
            reply,
        })
        .await
    }

    /// A comment through a reporter link; answers its incident once durable.
    pub async fn reporter_comment(
        &self,
        hash: [u8; 32],
        text: String,
    ) -> Result<IncidentId, EngineError> {
        self.ask(|reply| Command::ReporterComment { hash, text, reply })
            .await
    }

    pub async fn silence(&self, silence: NewSilence) -> Result<Silence, EngineError> {
        self.ask(|reply| Command::Silence { silence, reply }).await
    }

    /// Ends a silence now.
    pub async fn expire(&self, id: u64) -> Result<Silence, EngineError> {
        self.ask(|reply| Command::Expire { id, reply }).await
    }

    pub async fn maintain(&self, maintenance: NewMaintenance) -> Result<Maintenance, EngineError> {
        self.ask(|reply| Command::Maintain { maintenance, reply })
            .await
    }

    /// Cancels an upcoming maintenance, or ends an active one now.
    pub async fn end_maintenance(&self, id: u64) -> Result<Maintenance, EngineError> {
        self.ask(|reply| Command::EndMaintenance { id, reply })
            .await
    }

    /// A subscription change, answered once durable.
    pub async fn subscriptions(
        &self,
        op: super::subscriptions::SubsOp,
    ) -> Result<super::subscriptions::SubsAnswer, EngineError> {
        self.ask(|reply| Command::Subscriptions { op, reply }).await
    }

    /// A console session opened or ended, answered once durable.
    pub async fn sessions(&self, op: super::sessions::SessionOp) -> Result<(), EngineError> {
        self.ask(|reply| Command::Sessions { op, reply }).await
    }

    /// What the subscription worker waits on.
    pub fn subscriptions_wake(&self) -> Arc<tokio::sync::Notify> {
        self.subscriptions_wake.clone()
    }

    /// Fires the timers due by the clock's now, and waits until that is durable.
    pub async fn tick(&self) -> Result<(), EngineError> {
        self.ask(|reply| Command::Tick { reply: Some(reply) }).await
    }

    /// Applies a reloaded configuration to rules, policies and consumers; `wakers` wake
    /// the consumers' workers.
    pub async fn reconfigure(
        &self,
        config: Config,
        wakers: super::Wakers,
    ) -> Result<Reconfigured, EngineError> {
        self.ask(|reply| Command::Reconfigure {
            config: Box::new(config),
            wakers,
            reply,
        })
        .await
    }

    /// A probe run, waiting until what it caused is durable (rule tests, benchmarks).
    pub async fn run(&self, run: ProbeRun) -> Result<RunVerdict, EngineError> {
        self.ask(|reply| Command::Run {
            run,
            reply: Some(reply),
        })
        .await
    }

    /// Offers a probe run without ever waiting: the receiver learns the engine's verdict
    /// once the run is durable (dropped unanswered if the engine stops first).
    pub fn offer(
        &self,
        run: ProbeRun,
    ) -> Result<oneshot::Receiver<Result<RunVerdict, EngineError>>, Refused> {
        use mpsc::error::TrySendError;
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Command::Run {
                run,
                reply: Some(reply),
            })
            .map_err(|error| match error {
                TrySendError::Full(_) => Refused::Full,
                TrySendError::Closed(_) => Refused::Stopped,
            })?;
        Ok(answer)
    }

    /// A batch of alerts, applied in one transaction (or not at all, when the commit
    /// fails), answered once durable. A full queue is waited on for at most `wait`, then
    /// refused with [`IngestError::Busy`]: the senders retry (Alertmanager and Prometheus
    /// do), and memory stays bounded by the queue.
    pub async fn alerts(
        &self,
        alerts: Vec<Alert>,
        wait: std::time::Duration,
    ) -> Result<AlertsOutcome, IngestError> {
        use mpsc::error::SendTimeoutError;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send_timeout(Command::Alerts { alerts, reply }, wait)
            .await
            .map_err(|error| match error {
                SendTimeoutError::Timeout(_) => IngestError::Busy,
                SendTimeoutError::Closed(_) => IngestError::Engine(EngineError::Stopped),
            })?;
        Ok(answer.await.map_err(|_| EngineError::Stopped)??)
    }

    /// A webhook worker's report (many deliveries acknowledged at once), waiting until it
    /// is durable.
    pub async fn report_deliveries(&self, report: DeliveryReport) -> Result<(), EngineError> {
        self.ask(|reply| Command::Deliveries { report, reply })
            .await
    }

    /// Queues stored events again for `consumer`; answers the event ids queued.
    pub async fn replay(
        &self,
        consumer: String,
        entries: Vec<(OutboxEntry, bool)>,
    ) -> Result<Vec<String>, EngineError> {
        self.ask(|reply| Command::Replay {
            consumer,
            entries,
            reply,
        })
        .await
    }

    /// Enables or disables a consumer (persisted).
    pub async fn set_consumer(
        &self,
        consumer: String,
        state: ConsumerState,
    ) -> Result<(), EngineError> {
        self.ask(|reply| Command::SetConsumer {
            consumer,
            state,
            reply,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn alerts_are_refused_as_busy_when_the_queue_stays_full() {
        // A queue of one, already holding a command nobody takes: the batch waits at most
        // `wait` and is refused (the route answers 429 with Retry-After), never queued
        // without bound.
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(Command::Tick { reply: None }).unwrap();
        let handle = EngineHandle {
            tx,
            writable: Arc::new(AtomicBool::new(true)),
            subscriptions_wake: Arc::default(),
            leading: watch::channel(true).1,
        };
        let refused = handle
            .alerts(Vec::new(), std::time::Duration::from_millis(20))
            .await;
        assert!(matches!(refused, Err(IngestError::Busy)), "{refused:?}");
        // Room again: the command is queued (and answered by whoever runs the engine).
        rx.recv().await.unwrap();
        drop(rx);
        let stopped = handle
            .alerts(Vec::new(), std::time::Duration::from_millis(20))
            .await;
        assert!(
            matches!(stopped, Err(IngestError::Engine(EngineError::Stopped))),
            "{stopped:?}"
        );
    }
}
