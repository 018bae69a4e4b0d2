//! Several replicas on one PostgreSQL database: which one leads, and what the others do.
//!
//! Exactly one replica leads: it holds a session advisory lock on a connection of its own
//! and the lease row, whose epoch fences every write transaction (a replica whose epoch is
//! no longer the lease's cannot commit; see `store::kv::postgres`). The leader renews the
//! lease every third of `lease_ttl` (after a renewal that failed, every 200 ms until one
//! goes through, on a connection made again if it broke). A standby tries to take it at
//! the same pace and takes it once it has run out (the leader died, lost the database, or
//! stopped renewing), then its engine reads the store again and leads: probes, timers and
//! deliveries start.
//!
//! A database restart ends every session, the leader's too: the leader's renewal on its new
//! connection takes the advisory lock back and names its new session in the lease, and a
//! standby does not take the lease for its session being gone when the server started
//! after the lease's last renewal. A restart shorter than two thirds of `lease_ttl` keeps
//! the leader.
//!
//! A leader that cannot renew for two thirds of `lease_ttl` (measured from when it sent the
//! last renewal that succeeded, so before the lease's own expiry by the database's clock)
//! steps down: its writes are refused at once and its process stops, with probes and
//! deliveries cut off, before any standby may take over. The supervisor (systemd,
//! Kubernetes) starts it again, as a standby.
//!
//! Standbys keep their read model fresh: the leader's commits are announced (`NOTIFY`)
//! and every second the commit counter is read too (announcements are lost while the
//! listening connection reconnects). Writes that reach a standby are passed to the leader
//! ([`forward`]).

pub mod forward;

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use serde::Serialize;
use tokio::sync::{Mutex, watch};

use tokio_util::sync::CancellationToken;

use crate::config::PostgresConfig;
use crate::engine::EngineHandle;
use crate::metrics::Metrics;
use crate::store::kv::postgres::{Lease, PgConfig, listen_commits};
use crate::store::{Store, StoreError};

/// How often a standby reads the commit counter, besides the announcements.
const POLL: Duration = Duration::from_secs(1);
/// How long `GET /api/v1/cluster` waits for the database.
const STATUS_WAIT: Duration = Duration::from_secs(5);
/// After a renewal that failed, the leader tries again this soon (or a third of the lease,
/// if shorter), until it renews or must step down: a database that restarts, or a
/// connection that broke, costs the lease only when it lasts.
const RENEW_RETRY: Duration = Duration::from_millis(200);

/// Why the leader stopped leading: its process stops.
#[derive(Debug, thiserror::Error)]
#[error("lost the leader's lease ({0}); stopping so that a standby leads")]
pub struct LostLease(String);

/// The cluster's metrics (registered with the PostgreSQL backend only).
#[derive(Clone)]
struct ClusterMetrics {
    leader: IntGauge,
    changes: IntCounter,
    renew_failures: IntCounter,
}

impl ClusterMetrics {
    fn new(metrics: &Metrics) -> ClusterMetrics {
        let leader = IntGauge::new(
            "incidentd_leader",
            "1 while this replica leads (holds the lease), 0 while it is a standby.",
        )
        .expect("valid metric");
        let changes = IntCounter::new(
            "incidentd_leader_changes_total",
            "Times this replica became the leader or stopped leading.",
        )
        .expect("valid metric");
        let renew_failures = IntCounter::new(
            "incidentd_lease_renew_failures_total",
            "Renewals of the leader's lease that failed (the database did not answer in time or refused).",
        )
        .expect("valid metric");
        metrics.register(leader.clone());
        metrics.register(changes.clone());
        metrics.register(renew_failures.clone());
        ClusterMetrics {
            leader,
            changes,
            renew_failures,
        }
    }
}

/// This replica in the cluster: shared by the election task, `/api/v1/cluster`, `/-/ready`
/// and the forwarding of writes.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    replica_id: String,
    url: String,
    config: PostgresConfig,
    pg: PgConfig,
    /// The election's connection, made again when it breaks.
    lease: Mutex<Option<Lease>>,
    /// The leader's URL as last read (this replica's own while it leads).
    leader_url: watch::Sender<Option<String>>,
    metrics: ClusterMetrics,
}

/// What `GET /api/v1/cluster` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    /// This replica.
    pub replica: String,
    pub role: &'static str,
    pub leader: Option<LeaderStatus>,
    pub replicas: Vec<ReplicaStatus>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LeaderStatus {
    pub replica: String,
    pub url: Option<String>,
    pub epoch: u64,
    /// Its lease ran out: a standby takes over at its next try.
    pub expired: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    pub id: String,
    pub url: String,
    pub role: &'static str,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub seen_at: chrono::DateTime<chrono::Utc>,
    /// Not heard of for longer than two leases: gone, or cut off from the database.
    pub stale: bool,
}

impl Cluster {
    /// Joins the cluster as a standby: a connection for the election, this replica
    /// registered with the URL the others forward writes to.
    pub async fn join(
        config: &PostgresConfig,
        url: String,
        metrics: &Metrics,
    ) -> anyhow::Result<Cluster> {
        let replica_id = replica_id();
        let pg = pg_config(config);
        let lease = Lease::connect(&pg, &replica_id).await?;
        lease.register_replica(&replica_id, &url).await?;
        tracing::info!(replica = %replica_id, %url, "joined the cluster as a standby");
        Ok(Cluster {
            inner: Arc::new(Inner {
                replica_id,
                url,
                config: config.clone(),
                pg,
                lease: Mutex::new(Some(lease)),
                leader_url: watch::Sender::new(None),
                metrics: ClusterMetrics::new(metrics),
            }),
        })
    }

    pub fn replica_id(&self) -> &str {
        &self.inner.replica_id
    }

    /// Where writes go: the leader's URL as last read, `None` while no replica leads.
    pub fn leader_url(&self) -> watch::Receiver<Option<String>> {
        self.inner.leader_url.subscribe()
    }

    /// How long a write waits for a leader.
    pub fn write_wait(&self) -> Duration {
        self.inner.config.write_wait
    }

    /// Runs the election until `stop`; returns [`LostLease`] when this replica led and
    /// could not go on (the caller stops the process). Meanwhile a standby's engine is told
    /// to read the store again after each of the leader's commits.
    pub async fn run(
        self,
        store: Store,
        engine: EngineHandle,
        stop: CancellationToken,
    ) -> Result<(), LostLease> {
        let following = tokio::spawn(self.clone().follow(engine.clone(), stop.child_token()));
        let result = self.elect(&store, &engine, &stop).await;
        following.abort();
        result
    }

    async fn elect(
        &self,
        store: &Store,
        engine: &EngineHandle,
        stop: &CancellationToken,
    ) -> Result<(), LostLease> {
        let ttl = self.inner.config.lease_ttl;
        let period = ttl / 3;
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // While leading: the epoch, and when the last renewal that succeeded was sent.
        let mut leading: Option<(u64, Instant)> = None;
        // The last renewal failed: the next one is tried soon, not a third of the lease
        // later, which would leave it no time before the step-down point.
        let mut retry = false;
        loop {
            tokio::select! {
                _ = ticks.tick(), if !retry => {}
                () = tokio::time::sleep(RENEW_RETRY.min(period)), if retry => {}
                () = stop.cancelled() => break,
            }
            retry = false;
            match leading {
                None => match self.try_lead(store, engine).await {
                    Some(epoch) => leading = Some((epoch, Instant::now())),
                    None => self.read_leader().await,
                },
                Some((epoch, renewed)) => {
                    let sent = Instant::now();
                    // Never past the step-down point: an attempt that ran its whole period
                    // after a late tick would put the check below past it, up to the very
                    // moment the lease runs out for the standbys.
                    let limit = (renewed + ttl * 2 / 3)
                        .saturating_duration_since(sent)
                        .min(period);
                    match self
                        .with_lease(limit, async |lease| lease.renew(epoch, ttl).await)
                        .await
                    {
                        Ok(true) => leading = Some((epoch, sent)),
                        Ok(false) => {
                            return Err(self.step_down(store, "another replica took it"));
                        }
                        Err(error) => {
                            self.inner.metrics.renew_failures.inc();
                            tracing::warn!(%error, "renewing the leader's lease failed");
                            retry = true;
                        }
                    }
                }
            }
            // Two thirds of the lease after the last renewal that succeeded was sent: well
            // before the database lets a standby take it.
            if let Some((_, renewed)) = leading
                && renewed.elapsed() >= ttl * 2 / 3
            {
                return Err(self.step_down(store, "it could not be renewed in time"));
            }
            if retry {
                // The heartbeat waits for the next renewal that goes through.
                continue;
            }
            let id = &self.inner.replica_id;
            let heard = self
                .with_lease(period, async |lease| lease.heartbeat(id).await)
                .await;
            if matches!(heard, Ok(false)) {
                // Forgotten (a store copied over, say): register again.
                let url = &self.inner.url;
                let _ = self
                    .with_lease(period, async |lease| lease.register_replica(id, url).await)
                    .await;
            }
        }
        if let Some((epoch, _)) = leading {
            // A clean stop hands over at once: the lease expires now.
            store.set_epoch(None);
            let released = self
                .with_lease(period, async |lease| lease.release(epoch).await)
                .await;
            if let Err(error) = released {
                tracing::warn!(%error, "releasing the leader's lease failed; a standby takes over when it runs out");
            }
        }
        Ok(())
    }

    /// Takes the lease if it is free or ran out, then has the engine lead; the epoch.
    async fn try_lead(&self, store: &Store, engine: &EngineHandle) -> Option<u64> {
        let ttl = self.inner.config.lease_ttl;
        let epoch = match self
            .with_lease(ttl / 3, async |lease| lease.try_acquire(ttl).await)
            .await
        {
            Ok(Some(epoch)) => epoch,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%error, "trying the leader's lease failed");
                return None;
            }
        };
        store.set_epoch(Some(epoch));
        if let Err(error) = engine.lead().await {
            tracing::error!(%error, epoch, "took the lease but could not read the store; handing it back");
            store.set_epoch(None);
            let _ = self
                .with_lease(ttl / 3, async |lease| lease.release(epoch).await)
                .await;
            return None;
        }
        self.inner.metrics.leader.set(1);
        self.inner.metrics.changes.inc();
        self.inner
            .leader_url
            .send_replace(Some(self.inner.url.clone()));
        tracing::info!(epoch, replica = %self.inner.replica_id, "leading");
        Some(epoch)
    }

    /// Stops leading: no write is taken from now on.
    fn step_down(&self, store: &Store, why: &str) -> LostLease {
        store.set_epoch(None);
        self.inner.metrics.leader.set(0);
        self.inner.metrics.changes.inc();
        self.inner.leader_url.send_replace(None);
        tracing::error!(reason = why, "lost the leader's lease: stopping");
        LostLease(why.to_owned())
    }

    /// Runs `work` on the election's connection (made again if it broke), all of it within
    /// `limit`: a database that stops answering (cut off, not refusing) fails the call in
    /// time instead of holding the election. A connection that timed out or broke is
    /// dropped, and the next call makes a new one.
    async fn with_lease<T>(
        &self,
        limit: Duration,
        work: impl AsyncFnOnce(&Lease) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let deadline = tokio::time::Instant::now() + limit;
        let timed_out = || StoreError::Postgres("PostgreSQL did not answer in time".to_owned());
        let mut guard = tokio::time::timeout_at(deadline, self.inner.lease.lock())
            .await
            .map_err(|_| timed_out())?;
        if guard.as_ref().is_some_and(Lease::is_closed) {
            *guard = None;
        }
        if guard.is_none() {
            let connected = tokio::time::timeout_at(
                deadline,
                Lease::connect(&self.inner.pg, &self.inner.replica_id),
            )
            .await
            .map_err(|_| timed_out())??;
            *guard = Some(connected);
        }
        let lease = guard.as_ref().expect("connected above");
        match tokio::time::timeout_at(deadline, work(lease)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                if lease.is_closed() {
                    *guard = None;
                }
                Err(error)
            }
            Err(_) => {
                // A query may still be in flight on it: start over on a new one.
                *guard = None;
                Err(timed_out())
            }
        }
    }

    /// Reads who leads, for the forwarding of writes.
    async fn read_leader(&self) {
        let limit = self.inner.config.lease_ttl / 3;
        let read = self
            .with_lease(limit, async |lease| {
                Ok((lease.leader().await?, lease.replicas().await?))
            })
            .await;
        let url = match read {
            Ok((Some(leader), replicas)) if !leader.expired => replicas
                .into_iter()
                .find(|replica| replica.id == leader.holder)
                .map(|replica| replica.url),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%error, "reading the leader failed");
                None
            }
        };
        self.inner.leader_url.send_if_modified(|known| {
            let changed = *known != url;
            *known = url;
            changed
        });
    }

    /// A standby's engine reads the store again after each commit of the leader's: on
    /// each announcement, and when the commit counter moved (announcements are lost while
    /// the listening connection reconnects).
    async fn follow(self, engine: EngineHandle, stop: CancellationToken) {
        let mut seen = None;
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commits: Option<tokio::sync::mpsc::Receiver<u64>> = None;
        loop {
            if commits.is_none() {
                commits = tokio::time::timeout(POLL, listen_commits(&self.inner.pg))
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            tokio::select! {
                () = stop.cancelled() => return,
                announced = async { commits.as_mut().expect("guarded").recv().await }, if commits.is_some() => {
                    match announced {
                        Some(seq) => {
                            seen = Some(seq);
                            if !engine.is_leading() {
                                engine.refresh();
                            }
                        }
                        None => commits = None,
                    }
                }
                _ = poll.tick() => {
                    let seq = self.with_lease(POLL, async |lease| lease.commit_seq().await).await.ok();
                    if seq.is_some() && seq != seen {
                        seen = seq;
                        if !engine.is_leading() {
                            engine.refresh();
                        }
                    }
                }
            }
        }
    }

    /// `GET /api/v1/cluster`.
    pub async fn status(&self, leading: bool) -> Result<ClusterStatus, StoreError> {
        let (leader, replicas) = self
            .with_lease(STATUS_WAIT, async |lease| {
                Ok((lease.leader().await?, lease.replicas().await?))
            })
            .await?;
        let stale_after = self.inner.config.lease_ttl * 2;
        let leader_status = leader.as_ref().map(|leader| LeaderStatus {
            replica: leader.holder.clone(),
            url: replicas
                .iter()
                .find(|r| r.id == leader.holder)
                .map(|r| r.url.clone()),
            epoch: leader.epoch,
            expired: leader.expired,
        });
        let leads = |id: &str| {
            leader
                .as_ref()
                .is_some_and(|leader| !leader.expired && leader.holder == id)
        };
        Ok(ClusterStatus {
            replica: self.inner.replica_id.clone(),
            role: role(leading),
            leader: leader_status,
            replicas: replicas
                .into_iter()
                .map(|replica| ReplicaStatus {
                    role: role(leads(&replica.id)),
                    stale: replica.seen_ago > stale_after,
                    id: replica.id,
                    url: replica.url,
                    started_at: replica.started_at,
                    seen_at: replica.seen_at,
                })
                .collect(),
        })
    }
}

pub fn role(leading: bool) -> &'static str {
    if leading { "leader" } else { "standby" }
}

/// The backend's connection settings from the configuration.
pub fn pg_config(config: &PostgresConfig) -> PgConfig {
    PgConfig {
        url: config.url.clone(),
        pool_size: config.pool_size,
        statement_timeout: config.statement_timeout,
    }
}

/// A name for this process in the cluster: the host's name and a random suffix (a replica
/// started again is a new one).
fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "incidentd".to_owned());
    let suffix: u32 = rand::random();
    format!("{host}-{suffix:08x}")
}
