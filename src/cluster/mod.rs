//! Several replicas on one PostgreSQL database: which one leads, and what the others do.
//!
//! Exactly one replica leads: it holds a session advisory lock on a connection of its own
//! and the lease row, whose epoch fences every write transaction (a replica whose epoch is
//! no longer the lease's cannot commit; see `store::kv::postgres`). The leader renews the
//! lease every third of `lease_ttl`. A standby tries to take it at the same pace and takes
//! it once it has run out (the leader died, lost the database, or stopped renewing), then
//! its engine reads the store again and leads: probes, timers and deliveries start.
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
use crate::store::Store;
use crate::store::kv::postgres::{Lease, PgConfig, listen_commits};

/// How often a standby reads the commit counter, besides the announcements.
const POLL: Duration = Duration::from_secs(1);

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
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    /// This replica.
    pub replica: String,
    pub role: &'static str,
    pub leader: Option<LeaderStatus>,
    pub replicas: Vec<ReplicaStatus>,
}

#[derive(Debug, Serialize)]
pub struct LeaderStatus {
    pub replica: String,
    pub url: Option<String>,
    pub epoch: u64,
    /// Its lease ran out: a standby takes over at its next try.
    pub expired: bool,
}

#[derive(Debug, Serialize)]
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
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => break,
            }
            match leading {
                None => {
                    if let Some(epoch) = self.try_lead(store, engine).await {
                        leading = Some((epoch, Instant::now()));
                    } else {
                        self.read_leader().await;
                    }
                }
                Some((epoch, renewed)) => {
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(period, self.renew(epoch, ttl)).await;
                    match answer {
                        Ok(Ok(true)) => leading = Some((epoch, sent)),
                        Ok(Ok(false)) => {
                            return Err(self.step_down(store, "another replica took it"));
                        }
                        Ok(Err(error)) => {
                            self.inner.metrics.renew_failures.inc();
                            tracing::warn!(%error, "renewing the leader's lease failed");
                        }
                        Err(_) => {
                            self.inner.metrics.renew_failures.inc();
                            tracing::warn!("renewing the leader's lease timed out");
                        }
                    }
                    // Two thirds of the lease after the last renewal was sent: well before
                    // the database lets a standby take it.
                    if renewed.elapsed() >= ttl * 2 / 3
                        && leading.is_some_and(|(_, at)| at == renewed)
                    {
                        return Err(self.step_down(store, "it could not be renewed in time"));
                    }
                }
            }
            self.heartbeat().await;
        }
        if let Some((epoch, _)) = leading {
            // A clean stop hands over at once: the lease expires now.
            store.set_epoch(None);
            let guard = self.inner.lease.lock().await;
            if let Some(lease) = guard.as_ref()
                && let Err(error) = lease.release(epoch).await
            {
                tracing::warn!(%error, "releasing the leader's lease failed; a standby takes over when it runs out");
            }
        }
        Ok(())
    }

    /// Takes the lease if it is free or ran out, then has the engine lead; the epoch.
    async fn try_lead(&self, store: &Store, engine: &EngineHandle) -> Option<u64> {
        let ttl = self.inner.config.lease_ttl;
        let epoch = {
            let mut guard = self.connection().await?;
            let lease = guard.as_ref()?;
            match lease.try_acquire(ttl).await {
                Ok(Some(epoch)) => epoch,
                Ok(None) => return None,
                Err(error) => {
                    tracing::warn!(%error, "trying the leader's lease failed");
                    *guard = None;
                    return None;
                }
            }
        };
        store.set_epoch(Some(epoch));
        if let Err(error) = engine.lead().await {
            tracing::error!(%error, epoch, "took the lease but could not read the store; handing it back");
            store.set_epoch(None);
            if let Some(lease) = self.inner.lease.lock().await.as_ref() {
                let _ = lease.release(epoch).await;
            }
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

    async fn renew(&self, epoch: u64, ttl: Duration) -> Result<bool, crate::store::StoreError> {
        let mut guard = self
            .connection()
            .await
            .ok_or_else(|| crate::store::StoreError::Postgres("no connection".to_owned()))?;
        let Some(lease) = guard.as_ref() else {
            return Err(crate::store::StoreError::Postgres(
                "no connection".to_owned(),
            ));
        };
        let renewed = lease.renew(epoch, ttl).await;
        if renewed.is_err() && lease.is_closed() {
            *guard = None;
        }
        renewed
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

    /// The election's connection, connected again if it broke; `None` while the database
    /// cannot be reached.
    async fn connection(&self) -> Option<tokio::sync::MutexGuard<'_, Option<Lease>>> {
        let mut guard = self.inner.lease.lock().await;
        if guard.as_ref().is_some_and(Lease::is_closed) {
            *guard = None;
        }
        if guard.is_none() {
            match Lease::connect(&self.inner.pg, &self.inner.replica_id).await {
                Ok(lease) => *guard = Some(lease),
                Err(error) => {
                    tracing::warn!(%error, "connecting to PostgreSQL for the election failed");
                    return None;
                }
            }
        }
        Some(guard)
    }

    /// Reads who leads, for the forwarding of writes.
    async fn read_leader(&self) {
        let Some(guard) = self.connection().await else {
            self.inner.leader_url.send_replace(None);
            return;
        };
        let Some(lease) = guard.as_ref() else { return };
        let url = match (lease.leader().await, lease.replicas().await) {
            (Ok(Some(leader)), Ok(replicas)) if !leader.expired => replicas
                .into_iter()
                .find(|replica| replica.id == leader.holder)
                .map(|replica| replica.url),
            (Ok(_), Ok(_)) => None,
            (Err(error), _) | (_, Err(error)) => {
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

    async fn heartbeat(&self) {
        let Some(guard) = self.connection().await else {
            return;
        };
        if let Some(lease) = guard.as_ref() {
            match lease.heartbeat(&self.inner.replica_id).await {
                Ok(true) => {}
                // Forgotten (a store copied over, say): register again.
                Ok(false) => {
                    let _ = lease
                        .register_replica(&self.inner.replica_id, &self.inner.url)
                        .await;
                }
                Err(error) => tracing::debug!(%error, "the replica's heartbeat failed"),
            }
        }
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
                commits = listen_commits(&self.inner.pg).await.ok();
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
                    let seq = match self.connection().await {
                        Some(guard) => match guard.as_ref() {
                            Some(lease) => lease.commit_seq().await.ok(),
                            None => None,
                        },
                        None => None,
                    };
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
    pub async fn status(&self, leading: bool) -> anyhow::Result<ClusterStatus> {
        let guard = self
            .connection()
            .await
            .ok_or_else(|| anyhow::anyhow!("PostgreSQL cannot be reached"))?;
        let lease = guard
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("PostgreSQL cannot be reached"))?;
        let leader = lease.leader().await?;
        let replicas = lease.replicas().await?;
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
