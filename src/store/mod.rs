//! The embedded store (redb): incidents, their append-only timelines, rule detector state
//! and the webhook outbox, in versioned tables.
//!
//! Only the engine writes, through [`Store::commit`], one [`Batch`] per redb write
//! transaction (group commit: every command the engine took from its queue is durable when
//! the commit returns). Anyone may read: redb read transactions see the last commit and
//! never block the writer. redb has no async API, so async callers go through
//! `spawn_blocking`.
//!
//! What grows with history (incidents, their timelines, expired silences) is read by key
//! or through an index kept by the commit that writes the record, in the same transaction
//! (so no crash can leave an index behind its table):
//!
//! - start-up ([`Store::load`]) reads the incidents not closed from `incidents_active.v1`;
//!   [`Store::load_at`] also reads only the silences not ended, from `silences_by_end.v1`;
//! - a list by state without `closed` walks `incidents_active.v1`
//!   ([`Store::list_incidents_by_state`]);
//! - the SLA report over a window reads the incidents whose clocks count or stopped in it
//!   from `incidents_by_sla_stop.v1` ([`Store::incident_clocks_since`]);
//! - the status page's monthly history reads the incidents opened in a month from
//!   `incidents_by_month.v1` ([`Store::incidents_in_month`]).
//!
//! `uptime_daily.v1` (each probe's runs per UTC day) is read whole at start, and bounded
//! instead: at most [`KEPT_DAYS`] days of the probes configured. The engine deletes the older
//! days at most once a day and a probe's days when it leaves the configuration.
//!
//! The rest of start-up is bounded by what is pending, not by history: armed timers (each
//! deleted by the transaction that carries it out), undelivered outbox entries (deleted on
//! delivery; [`Store::outbox_counts`] walks their keys), the counters in `meta`. Detectors
//! are one per (rule, subject) seen: bounded by the rules and their subjects, not by the
//! incidents; a subject that is gone (a Prometheus series a complete run no longer returns)
//! loses its detectors once they have recovered. Lists with a state `closed` or without states, similar
//! incidents (the newest [`SIMILAR_SCAN`]) and [`Store::incident_clocks`] still walk the
//! table newest first.

pub mod copy;
mod health;
pub mod kv;
mod records;
mod reporter;
mod sessions;
mod subscriptions;
mod upgrade;
mod webhooks;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};
use redb::Database;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::detector::Detector;
use crate::domain::incident::{Incident, IncidentId, Kind, State, TimelineEntry};
use crate::domain::maintenance::{HISTORY_DAYS, Maintenance};
use crate::domain::priority::Priority;
use crate::domain::similar;
use crate::domain::sla::SlaClocks;
use crate::domain::suppression::Silence;
use crate::domain::timer::{Timer, TimerKind};
use crate::domain::uptime::{Day, DayCount};

use kv::{Backend, Bytes, Def, RawRead, RawWrite, Readable};

pub use health::{Health, RepairError, Repaired, check, repair};
pub use records::OutboxEntry;
use records::{
    DetectorV1, IncidentClocksV1, IncidentOpenedV1, IncidentTraitsV1, IncidentV1, MaintenanceV1,
    SilenceV1, TimelineEntryV1, UptimeDayV1,
};
pub use reporter::{LinkWrite, ReporterLinkV1};
pub use sessions::{Session, SessionKey};
pub use subscriptions::{
    CallMail, Channel, LoadedSubscriptions, Message, Notification, StatusUpdate, Subscriber,
    SubscriptionCounters,
};
pub use webhooks::{ConsumerOverview, ConsumerState, DeadLetter, DeliveryAttempt, ReplaySelection};

/// The layout this build reads and writes. A store written by a newer layout is refused
/// rather than misread; an older one is upgraded when opened (`upgrade.rs`).
///
/// 1. The tables below without the indexes.
/// 2. `incidents_active.v1`, `incidents_by_sla_stop.v1`, `incident_sla_stop.v1` and
///    `silences_by_end.v1`.
/// 3. `incidents_by_month.v1`.
/// 4. Every table a key-value table ([`kv`]), the same in a redb file and in PostgreSQL:
///    a file of an older layout has its typed tables moved over when opened.
///
/// A new table with its index written from its first record on (`maintenances.v1`) needs
/// no new version: opening the store creates it empty, and an older incidentd ignores it.
/// A new table that nothing already stored needs (`uptime_daily.v1`) is created when the
/// store is opened and changes no version: an older build ignores it.
pub const SCHEMA_VERSION: u64 = 4;

const META: Def<String, u64> = Def::new("meta");
const INCIDENTS: Def<u64, Bytes> = Def::new("incidents.v1");
/// Key: the id of every incident not closed (see [`indexed_as_active`]). Written in the
/// transaction that writes the incident, so the two never disagree, even after a crash.
const INCIDENTS_ACTIVE: Def<u64, ()> = Def::new("incidents_active.v1");
/// Key: (when the incident's last SLA clock stopped, in Unix milliseconds, or `i64::MAX`
/// while one still counts; incident id), for every incident with clocks (see
/// [`sla_last_stop`]). A report over a window reads the keys from the window's start on.
const INCIDENTS_BY_SLA_STOP: Def<(i64, u64), ()> = Def::new("incidents_by_sla_stop.v1");
/// Key: incident id; value: its key's time in `incidents_by_sla_stop.v1`, so a commit finds
/// the entry it replaces without decoding the incident it overwrites.
const INCIDENT_SLA_STOP: Def<u64, i64> = Def::new("incident_sla_stop.v1");
/// Key: (the UTC month the incident opened in, as [`month_of`]; incident id), for every
/// incident. An incident's opening never changes, so its entry never moves (each commit of
/// the incident writes the same key): the monthly history reads one month's keys, newest
/// first, whatever the history's length.
const INCIDENTS_BY_MONTH: Def<(i32, u64), ()> = Def::new("incidents_by_month.v1");
/// Key: (incident id, timeline sequence). The sequence is global and only grows, so an
/// incident's entries come back in the order they were written.
const TIMELINE: Def<(u64, u64), Bytes> = Def::new("timeline.v1");
/// Key: the detector's subject key (rule name, and later the subject's labels).
const DETECTORS: Def<String, Bytes> = Def::new("detectors.v1");
/// Key: (consumer, outbox sequence).
const OUTBOX: Def<(String, u64), Bytes> = Def::new("outbox.v1");
/// Key: (due time in Unix milliseconds, incident id, kind). An armed durable timer; it is
/// deleted in the transaction that carries out what it caused.
const TIMERS: Def<(i64, u64, String), ()> = Def::new("timers.v1");
/// Key: silence id. Expired silences are kept for the record.
const SILENCES: Def<u64, Bytes> = Def::new("silences.v1");
/// Key: (when the silence ends, in Unix milliseconds; silence id), so that
/// [`Store::load_at`] reads the silences not ended without the expired ones.
const SILENCES_BY_END: Def<(i64, u64), ()> = Def::new("silences_by_end.v1");
/// Key: maintenance id. Maintenances over (completed, cancelled) are kept for the record.
const MAINTENANCES: Def<u64, Bytes> = Def::new("maintenances.v1");
/// Key: (when the maintenance is over — cancelled, or else its end — in Unix milliseconds;
/// maintenance id), so that [`Store::load_at`] reads those not over or over for less than
/// [`HISTORY_DAYS`], whatever the history.
const MAINTENANCES_BY_OVER: Def<(i64, u64), ()> = Def::new("maintenances_by_over.v1");
/// Key: (probe name, UTC day as days since 1970-01-01); value: that day's runs and
/// successes ([`UptimeDayV1`]). A probe's days are one range of keys, oldest first.
const UPTIME_DAILY: Def<(String, i32), UptimeDayV1> = Def::new("uptime_daily.v1");

/// How many of the newest incidents [`Store::similar_incidents`] looks through.
pub const SIMILAR_SCAN: usize = 5_000;

const META_SCHEMA: &str = "schema_version";
const META_NEXT_INCIDENT: &str = "next_incident_id";
const META_NEXT_TIMELINE: &str = "next_timeline_seq";
const META_NEXT_OUTBOX: &str = "next_outbox_seq";
const META_NEXT_SILENCE: &str = "next_silence_id";
const META_NEXT_MAINTENANCE: &str = "next_maintenance_id";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Redb(#[from] redb::Error),
    #[error("stored record {table}[{key}] is unreadable: {source}")]
    Corrupt {
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
    #[error(
        "the store has schema version {found}, newer than this incidentd supports ({SCHEMA_VERSION}); upgrade incidentd"
    )]
    NewerSchema { found: u64 },
    #[error("index {index} names {key}, which is not stored")]
    Inconsistent { index: &'static str, key: String },
    #[error(
        "the store {path} is damaged ({reason}); nothing was written to it. `incidentd store check` verifies it, `incidentd store repair` repairs it after making a backup"
    )]
    Damaged { path: PathBuf, reason: String },
    #[error("the storage engine failed: {message}")]
    Panicked { message: String },
    #[error("the store is closed after a failed write and being opened again")]
    Closed,
    #[error("stored table {table} is unreadable: {detail}")]
    BadKey { table: &'static str, detail: String },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error(
        "this replica does not hold the leader's lease (it lost it, or another replica took over): nothing was written"
    )]
    Fenced,
    #[error("this replica is a standby: writes go to the leader")]
    Standby,
}

fn db_err(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb(error.into())
}

/// Shared handle to the store; cheap to clone. Every clone sees the same database, also
/// after [`Store::reopen`] replaced it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Where the tables are.
enum Inner {
    File(File),
    Postgres(kv::postgres::Postgres),
}

/// A redb file.
struct File {
    path: PathBuf,
    /// `None` only while [`Store::reopen`] is between closing and opening the file.
    db: RwLock<Option<Database>>,
}

impl File {
    fn write_handle(&self) -> std::sync::RwLockWriteGuard<'_, Option<Database>> {
        self.db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The open database, or [`StoreError::Closed`] while [`Store::reopen`] replaces it.
    fn with_database<T>(
        &self,
        begin: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        begin(db.as_ref().ok_or(StoreError::Closed)?)
    }
}

impl Backend for File {
    fn read(&self) -> Result<Box<dyn RawRead + '_>, StoreError> {
        self.with_database(|db| {
            use redb::ReadableDatabase;
            let txn = db.begin_read().map_err(db_err)?;
            Ok(Box::new(kv::redb::Read(txn)) as Box<dyn RawRead>)
        })
    }

    fn write(&self) -> Result<Box<dyn RawWrite + '_>, StoreError> {
        self.with_database(|db| {
            let txn = db.begin_write().map_err(db_err)?;
            Ok(Box::new(kv::redb::Write(txn)) as Box<dyn RawWrite>)
        })
    }
}

/// Everything the engine needs at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Incidents that are not closed.
    pub incidents: Vec<Incident>,
    /// Key → (subject labels, detector).
    pub detectors: BTreeMap<String, (BTreeMap<String, String>, Detector)>,
    pub next_incident_id: u64,
    pub next_timeline_seq: u64,
    pub next_outbox_seq: u64,
    pub next_silence_id: u64,
    /// Every silence stored (the engine keeps those that have not ended); from
    /// [`Store::load_at`], only those not ended then.
    pub silences: Vec<Silence>,
    pub next_maintenance_id: u64,
    /// Every maintenance stored; from [`Store::load_at`], only those not over or over for
    /// less than [`HISTORY_DAYS`] then.
    pub maintenances: Vec<Maintenance>,
    /// Every armed timer.
    pub timers: Vec<Timer>,
    /// Each probe's stored days (probes in name order, days oldest first).
    pub uptime: Vec<(String, Vec<(Day, DayCount)>)>,
}

/// The writes of one group commit.
#[derive(Debug, Default)]
pub struct Batch {
    incidents: BTreeMap<u64, Incident>,
    timeline: Vec<(u64, u64, TimelineEntry)>,
    detectors: BTreeMap<String, DetectorV1>,
    detectors_deleted: Vec<String>,
    outbox_put: Vec<OutboxEntry>,
    outbox_delete: Vec<(String, u64)>,
    silences: BTreeMap<u64, Silence>,
    maintenances: BTreeMap<u64, Maintenance>,
    /// Timers to store (`true`) or delete (`false`), by their stored key. The last arm or
    /// disarm of a key in the batch wins: a timer fired or moved and armed again in one
    /// batch stays armed. (The key keeps milliseconds: two instants the engine tells apart
    /// may share one, as a timer loaded at start and the same one wanted again do.)
    timers: BTreeMap<(i64, u64, &'static str), bool>,
    meta: BTreeMap<&'static str, u64>,
    webhooks: webhooks::WebhookWrites,
    /// (probe, day) → the day's counts now.
    uptime: BTreeMap<(String, Day), DayCount>,
    /// (probe, day): delete the probe's days before that one (written before `uptime`).
    uptime_forget: Vec<(String, Day)>,
    subscriptions: subscriptions::SubscriptionWrites,
    /// Incident id → what happens to its reporter link.
    reporter_links: BTreeMap<u64, reporter::LinkWrite>,
    sessions: sessions::SessionWrites,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
            && self.timeline.is_empty()
            && self.detectors.is_empty()
            && self.detectors_deleted.is_empty()
            && self.outbox_put.is_empty()
            && self.outbox_delete.is_empty()
            && self.silences.is_empty()
            && self.maintenances.is_empty()
            && self.timers.is_empty()
            && self.meta.is_empty()
            && self.webhooks.is_empty()
            && self.uptime.is_empty()
            && self.uptime_forget.is_empty()
            && self.subscriptions.is_empty()
            && self.reporter_links.is_empty()
            && self.sessions.0.is_empty()
    }

    /// The incidents this batch closes, as they are stored.
    pub fn closed_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents
            .values()
            .filter(|incident| incident.state == State::Closed)
    }

    /// Stores the incident as it is now (the last put of an id in a batch wins).
    pub fn put_incident(&mut self, incident: &Incident) {
        self.incidents.insert(incident.id.0, incident.clone());
    }

    pub fn append_timeline(&mut self, incident: IncidentId, seq: u64, entry: TimelineEntry) {
        self.timeline.push((incident.0, seq, entry));
    }

    pub fn put_detector(
        &mut self,
        key: &str,
        subject: &BTreeMap<String, String>,
        detector: Detector,
    ) {
        self.detectors_deleted.retain(|deleted| deleted != key);
        self.detectors
            .insert(key.to_owned(), DetectorV1::new(subject, detector));
    }

    /// Forgets a detector (its rule was removed or changed by a reload).
    pub fn delete_detector(&mut self, key: &str) {
        self.detectors.remove(key);
        self.detectors_deleted.push(key.to_owned());
    }

    pub fn enqueue(&mut self, entry: OutboxEntry) {
        self.outbox_put.push(entry);
    }

    pub fn delete_outbox(&mut self, consumer: &str, seq: u64) {
        self.outbox_delete.push((consumer.to_owned(), seq));
    }

    pub fn arm_timer(&mut self, timer: Timer) {
        self.timers.insert(timer_key(&timer), true);
    }

    /// The timer fired (or its reason is gone): delete it.
    pub fn disarm_timer(&mut self, timer: Timer) {
        self.timers.insert(timer_key(&timer), false);
    }

    pub fn put_silence(&mut self, silence: &Silence) {
        self.silences.insert(silence.id, silence.clone());
    }

    /// Stores the maintenance as it is now (created, cancelled or ended early).
    pub fn put_maintenance(&mut self, maintenance: &Maintenance) {
        self.maintenances
            .insert(maintenance.id, maintenance.clone());
    }

    /// Stores a probe's counts of one day as they are now (the last put wins): a batch
    /// writes each day it touched once, however many runs it counted.
    pub fn put_uptime(&mut self, probe: &str, day: Day, count: DayCount) {
        self.uptime.insert((probe.to_owned(), day), count);
    }

    /// Deletes the probe's stored days before `before` (all of them with `Day::MAX`),
    /// also those put earlier in this batch.
    pub fn forget_uptime(&mut self, probe: &str, before: Day) {
        let range = (probe.to_owned(), Day::MIN)..(probe.to_owned(), before);
        let put: Vec<(String, Day)> = self.uptime.range(range).map(|(k, _)| k.clone()).collect();
        for key in put {
            self.uptime.remove(&key);
        }
        self.uptime_forget.push((probe.to_owned(), before));
    }

    pub fn set_counters(&mut self, counters: Counters) {
        self.meta
            .insert(META_NEXT_INCIDENT, counters.next_incident_id);
        self.meta
            .insert(META_NEXT_TIMELINE, counters.next_timeline_seq);
        self.meta.insert(META_NEXT_OUTBOX, counters.next_outbox_seq);
        self.meta
            .insert(META_NEXT_SILENCE, counters.next_silence_id);
        self.meta
            .insert(META_NEXT_MAINTENANCE, counters.next_maintenance_id);
    }
}

/// The sequences the engine hands out, stored with every commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub next_incident_id: u64,
    pub next_timeline_seq: u64,
    pub next_outbox_seq: u64,
    pub next_silence_id: u64,
    pub next_maintenance_id: u64,
}

/// One month of the history ([`Store::incidents_in_month`]).
#[derive(Debug, Default)]
pub struct MonthPage {
    /// The incidents accepted, newest first.
    pub incidents: Vec<Incident>,
    /// How many more were accepted beyond the limit.
    pub more: usize,
    /// The read budget ran out: the month's oldest incidents were not read.
    pub unread: bool,
}

/// Stored incidents one list request reads at most ([`Store::list_incidents_by_state`]): a
/// filter few incidents pass answers a short page with a cursor rather than reading a long
/// history in one request.
pub const LIST_SCAN_BUDGET: usize = 10_000;

/// redb's own page cache. Its default (1 GiB) fills with every page a start-up touches and
/// is not given back: with 1,000,000 stored incidents (50,000 not closed) the server held
/// 700 MB after start, 500 MB with this; 64 MiB made start-up re-read pages (2.9 s instead of
/// 1.5 s). Reads beyond it go to the operating system's page cache.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store, creating its directory and tables.
    ///
    /// A new store is created under a temporary name and renamed into place once complete,
    /// so a failed first start (a full disk) leaves no file that later starts refuse. A file
    /// of zeros only, which such a start left before, is replaced. What start-up reads of an
    /// existing store is verified first without writing to it ([`health::readable`]): a
    /// damaged one is refused with [`StoreError::Damaged`] and left as it is. Every page is
    /// verified only on request ([`check`], `incidentd store check`).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        match std::fs::metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(error) => return Err(io_err(error)),
            Ok(_) if health::all_zero(path).map_err(io_err)? => {
                tracing::warn!(path = %path.display(), "the store holds only zeros (left by a first start that failed, e.g. on a full disk): creating a new one in its place");
                create(path)?;
            }
            Ok(_) => {
                if let Health::Damaged(reason) = health::readable(path)? {
                    return Err(StoreError::Damaged {
                        path: path.to_owned(),
                        reason,
                    });
                }
            }
        }
        let db = health::guarded(|| open_database(path))?;
        Ok(Store {
            inner: Arc::new(Inner::File(File {
                path: path.to_owned(),
                db: RwLock::new(Some(db)),
            })),
        })
    }

    /// Closes the database and opens it again, then writes to it once to prove that writes
    /// go through. After a failed write (a full disk) redb refuses every later one until
    /// the file is opened again. Readers use the new database as soon as it is open, also
    /// when the proving write fails.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let file = match &*self.inner {
            Inner::File(file) => file,
            // Connections are made again by the pool: prove that a write goes through.
            Inner::Postgres(_) => {
                let txn = self.begin_write()?;
                txn.open(META)?.put(META_SCHEMA, SCHEMA_VERSION)?;
                return txn.commit();
            }
        };
        let old = file.write_handle().take();
        if let Some(old) = old
            && let Err(error) = old.close()
        {
            tracing::debug!(%error, "closing the store reported an error");
        }
        let db = health::guarded(|| open_database(&file.path))?;
        *file.write_handle() = Some(db);
        let txn = self.begin_write()?;
        txn.open(META)?.put(META_SCHEMA, SCHEMA_VERSION)?;
        txn.commit()
    }

    fn backend(&self) -> &dyn Backend {
        match &*self.inner {
            Inner::File(file) => file,
            Inner::Postgres(postgres) => postgres,
        }
    }

    /// Opens the store in PostgreSQL: its schema brought up to date (migrations, under a
    /// lock), the store's layout checked (a newer one is refused) and recorded when the
    /// database is new. Writes are fenced by the leader's lease: none goes through until
    /// [`Store::set_epoch`] names this replica's epoch.
    pub fn open_postgres(config: &kv::postgres::PgConfig) -> Result<Store, StoreError> {
        let postgres = kv::postgres::Postgres::connect(config)?;
        let found = {
            let txn = postgres.read()?;
            txn.open(META)?.get(META_SCHEMA)?
        };
        match found {
            Some(found) if found > SCHEMA_VERSION => return Err(StoreError::NewerSchema { found }),
            Some(_) => {}
            // A new database: the layout is recorded once (every replica would record the
            // same), outside the lease, which nobody may hold yet.
            None => {
                let stamp = kv::postgres::Postgres::unfenced(config)?;
                let txn = stamp.write()?;
                txn.open(META)?.put(META_SCHEMA, SCHEMA_VERSION)?;
                txn.commit()?;
            }
        }
        Ok(Store {
            inner: Arc::new(Inner::Postgres(postgres)),
        })
    }

    /// Opens a PostgreSQL store with no fencing: `store copy` and tests, never beside a
    /// running leader.
    pub fn open_postgres_unfenced(config: &kv::postgres::PgConfig) -> Result<Store, StoreError> {
        let postgres = kv::postgres::Postgres::unfenced(config)?;
        let txn = postgres.write()?;
        match txn.open(META)?.get(META_SCHEMA)? {
            Some(found) if found > SCHEMA_VERSION => return Err(StoreError::NewerSchema { found }),
            _ => txn.open(META)?.put(META_SCHEMA, SCHEMA_VERSION)?,
        }
        txn.commit()?;
        Ok(Store {
            inner: Arc::new(Inner::Postgres(postgres)),
        })
    }

    /// The epoch of the lease this replica leads with (`None`: it does not lead, and no
    /// write goes through). Only the PostgreSQL store is fenced; a file has one writer.
    pub fn set_epoch(&self, epoch: Option<u64>) {
        if let Inner::Postgres(postgres) = &*self.inner {
            postgres.set_epoch(epoch);
        }
    }

    fn begin_read(&self) -> Result<Box<dyn RawRead + '_>, StoreError> {
        self.backend().read()
    }

    fn begin_write(&self) -> Result<Box<dyn RawWrite + '_>, StoreError> {
        self.backend().write()
    }

    /// Reads what the engine keeps in memory. The incidents come from the index of those
    /// not closed: how long the history is does not matter.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        self.load_silences_ending_after(None)
    }

    /// [`Store::load`] with only the silences that end after `now`: start-up that does
    /// not grow with the silences that expired.
    pub fn load_at(&self, now: DateTime<Utc>) -> Result<Loaded, StoreError> {
        self.load_silences_ending_after(Some(now))
    }

    fn load_silences_ending_after(&self, now: Option<DateTime<Utc>>) -> Result<Loaded, StoreError> {
        // Start-up reads much of the file: a panic inside redb is an error, not a crash.
        health::guarded(|| read_loaded(&*self.begin_read()?, now))
    }

    /// Writes a batch in one durable transaction.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut incidents = txn.open(INCIDENTS)?;
            let mut active = txn.open(INCIDENTS_ACTIVE)?;
            let mut by_sla_stop = txn.open(INCIDENTS_BY_SLA_STOP)?;
            let mut sla_stop = txn.open(INCIDENT_SLA_STOP)?;
            let mut by_month = txn.open(INCIDENTS_BY_MONTH)?;
            for (id, incident) in &batch.incidents {
                let bytes = encode(&IncidentV1::from(incident));
                incidents.put(id, bytes.as_slice())?;
                // An incident's opening never changes: its entry is the same key each time
                // (written again rather than looked up, which costs PostgreSQL a round trip).
                by_month.put((month_of(incident.opened_at), *id), ())?;
                if indexed_as_active(incident.state, incident.closed_at) {
                    active.put(id, ())?;
                } else {
                    active.delete(id)?;
                }
                let stop = sla_last_stop(&incident.sla);
                let was = match stop {
                    Some(stop) => sla_stop.insert(id, stop),
                    None => sla_stop.remove(id),
                }?;
                if was != stop {
                    if let Some(was) = was {
                        by_sla_stop.delete((was, *id))?;
                    }
                    if let Some(stop) = stop {
                        by_sla_stop.put((stop, *id), ())?;
                    }
                }
            }
            let mut timeline = txn.open(TIMELINE)?;
            for (id, seq, entry) in &batch.timeline {
                let bytes = encode(&TimelineEntryV1::from(entry));
                timeline.put((*id, *seq), bytes.as_slice())?;
            }
            let mut detectors = txn.open(DETECTORS)?;
            for (key, detector) in &batch.detectors {
                let bytes = encode(detector);
                detectors.put(key.as_str(), bytes.as_slice())?;
            }
            for key in &batch.detectors_deleted {
                detectors.delete(key.as_str())?;
            }
            let mut outbox = txn.open(OUTBOX)?;
            for entry in &batch.outbox_put {
                let bytes = encode(entry);
                outbox.put((entry.consumer.as_str(), entry.seq), bytes.as_slice())?;
            }
            for (consumer, seq) in &batch.outbox_delete {
                outbox.delete((consumer.as_str(), *seq))?;
            }
            let mut timers = txn.open(TIMERS)?;
            for (&key, &armed) in &batch.timers {
                if armed {
                    timers.put(key, ())?;
                } else {
                    timers.delete(key)?;
                }
            }
            let mut silences = txn.open(SILENCES)?;
            let mut by_end = txn.open(SILENCES_BY_END)?;
            for (id, silence) in &batch.silences {
                let bytes = encode(&SilenceV1::from(silence));
                // A silence ended early is written again: its old entry goes.
                let ended = match silences.insert(id, bytes.as_slice())? {
                    Some(old) => {
                        let old: SilenceV1 = decode("silences.v1", id, &old)?;
                        Some(old.ends_at.timestamp_millis())
                    }
                    None => None,
                };
                if let Some(ended) = ended {
                    by_end.delete((ended, *id))?;
                }
                by_end.put((silence.ends_at.timestamp_millis(), *id), ())?;
            }
            let mut maintenances = txn.open(MAINTENANCES)?;
            let mut by_over = txn.open(MAINTENANCES_BY_OVER)?;
            for (id, maintenance) in &batch.maintenances {
                let bytes = encode(&MaintenanceV1::from(maintenance));
                // One cancelled or ended early is written again: its old entry goes.
                if let Some(old) = maintenances.insert(id, bytes.as_slice())? {
                    let old: Maintenance =
                        decode::<MaintenanceV1>("maintenances.v1", id, &old)?.into();
                    by_over.delete((old.over_at().timestamp_millis(), *id))?;
                }
                by_over.put((maintenance.over_at().timestamp_millis(), *id), ())?;
            }
            let mut meta = txn.open(META)?;
            for (key, value) in &batch.meta {
                meta.put(*key, value)?;
            }
            let mut uptime = txn.open(UPTIME_DAILY)?;
            for (probe, before) in &batch.uptime_forget {
                // A probe's days are one range of keys: a seek, not a scan of the table.
                uptime.delete_range((probe.as_str(), Day::MIN)..(probe.as_str(), *before))?;
            }
            for ((probe, day), count) in &batch.uptime {
                uptime.put((probe.as_str(), *day), UptimeDayV1::from(*count))?;
            }
        }
        webhooks::write(&*txn, &batch.webhooks)?;
        subscriptions::write(&*txn, &batch.subscriptions)?;
        reporter::write(&*txn, &batch.reporter_links)?;
        sessions::write(&*txn, &batch.sessions)?;
        txn.commit()
    }

    pub fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        let txn = self.begin_read()?;
        let incidents = txn.open(INCIDENTS)?;
        match incidents.get(id.0)? {
            Some(value) => {
                let record: IncidentV1 = decode("incidents.v1", id.0, &value)?;
                Ok(Some(record.into()))
            }
            None => Ok(None),
        }
    }

    /// One maintenance, over or not.
    pub fn get_maintenance(&self, id: u64) -> Result<Option<Maintenance>, StoreError> {
        let txn = self.begin_read()?;
        let maintenances = txn.open(MAINTENANCES)?;
        match maintenances.get(id)? {
            Some(value) => {
                let record: MaintenanceV1 = decode("maintenances.v1", id, &value)?;
                Ok(Some(record.into()))
            }
            None => Ok(None),
        }
    }

    /// One incident with its timeline, read in one snapshot.
    pub fn get_incident_with_timeline(
        &self,
        id: IncidentId,
    ) -> Result<Option<(Incident, Vec<TimelineEntry>)>, StoreError> {
        let txn = self.begin_read()?;
        let incidents = txn.open(INCIDENTS)?;
        let Some(value) = incidents.get(id.0)? else {
            return Ok(None);
        };
        let record: IncidentV1 = decode("incidents.v1", id.0, &value)?;
        let timeline = txn.open(TIMELINE)?;
        let mut entries = Vec::new();
        for row in timeline.range((id.0, 0)..=(id.0, u64::MAX))? {
            let (key, value) = row?;
            let (_, seq) = key;
            let entry: TimelineEntryV1 = decode("timeline.v1", seq, &value)?;
            entries.push(entry.into());
        }
        Ok(Some((record.into(), entries)))
    }

    /// The public timeline entries (public notes) of each of `ids` that has any, oldest
    /// first: the read model's status-page updates at start. Reads each incident's own
    /// timeline range, never the whole table.
    pub fn public_updates(
        &self,
        ids: &[IncidentId],
    ) -> Result<BTreeMap<u64, Vec<TimelineEntry>>, StoreError> {
        let txn = self.begin_read()?;
        let timeline = txn.open(TIMELINE)?;
        let mut updates = BTreeMap::new();
        for id in ids {
            let mut public = Vec::new();
            for row in timeline.range((id.0, 0)..=(id.0, u64::MAX))? {
                let (key, value) = row?;
                let (_, seq) = key;
                let entry: TimelineEntryV1 = decode("timeline.v1", seq, &value)?;
                let entry = TimelineEntry::from(entry);
                if entry.public {
                    public.push(entry);
                }
            }
            if !public.is_empty() {
                updates.insert(id.0, public);
            }
        }
        Ok(updates)
    }

    /// The past incidents most like `incident` ([`crate::domain::similar`]), best first.
    /// Only the newest [`SIMILAR_SCAN`] incidents are looked at, so the answer stays quick
    /// on a store of any size; older look-alikes are not found.
    pub fn similar_incidents(&self, incident: &Incident) -> Result<Vec<Incident>, StoreError> {
        let txn = self.begin_read()?;
        let incidents = txn.open(INCIDENTS)?;
        // Newest first, so the first `SHOWN` of each relevance are the ones to show: only
        // those are decoded in full, and a full set of same-fingerprint ones ends the scan.
        let mut candidates = Vec::new();
        let mut found: BTreeMap<similar::Relevance, usize> = BTreeMap::new();
        for row in incidents.iter()?.rev().take(SIMILAR_SCAN) {
            let (key, value) = row?;
            let id = key;
            let traits: IncidentTraitsV1 = decode("incidents.v1", id, &value)?;
            let past = similar::Traits {
                id,
                state: traits.state,
                fingerprint: &traits.fingerprint,
                category: &traits.category,
                service: traits.service.as_deref(),
            };
            let Some(relevance) = similar::relevance_of(incident, past) else {
                continue;
            };
            let count = found.entry(relevance).or_insert(0);
            if *count == similar::SHOWN {
                continue;
            }
            *count += 1;
            let record: IncidentV1 = decode("incidents.v1", id, &value)?;
            candidates.push(Incident::from(record));
            if relevance == similar::Relevance::Fingerprint && *count == similar::SHOWN {
                break;
            }
        }
        Ok(similar::rank(incident, candidates, similar::SHOWN))
    }

    /// The incidents opened in `month` (any span, usually a calendar month in the status
    /// page's time zone) that `filter` accepts, newest first: at most `limit` of them, and how
    /// many more were accepted. Read through `incidents_by_month.v1` (the UTC months the span
    /// touches: two at most for a month in another time zone), so the cost follows that
    /// month, not the history; at most `budget` of its incidents are read, the newest.
    pub fn incidents_in_month(
        &self,
        month: Range<DateTime<Utc>>,
        limit: usize,
        budget: usize,
        filter: impl Fn(&Incident) -> bool,
    ) -> Result<MonthPage, StoreError> {
        let mut page = MonthPage::default();
        if month.is_empty() {
            return Ok(page);
        }
        let txn = self.begin_read()?;
        let incidents = txn.open(INCIDENTS)?;
        let by_month = txn.open(INCIDENTS_BY_MONTH)?;
        let last = month.end - TimeDelta::nanoseconds(1);
        let keys = (month_of(month.start), 0)..=(month_of(last), u64::MAX);
        for (read, row) in by_month.range(keys)?.rev().enumerate() {
            if read == budget {
                page.unread = true;
                break;
            }
            let (key, _) = row?;
            let (_, id) = key;
            let record: IncidentV1 =
                get_indexed(&incidents, "incidents.v1", "incidents_by_month.v1", id)?;
            if !month.contains(&record.opened_at) {
                continue;
            }
            let incident = Incident::from(record);
            if !filter(&incident) {
                continue;
            }
            if page.incidents.len() < limit {
                page.incidents.push(incident);
            } else {
                page.more += 1;
            }
        }
        Ok(page)
    }

    /// Whether any incident stored opened before `at`: two key look-ups in
    /// `incidents_by_month.v1` (a month before `at`'s, then the oldest of its own month).
    pub fn opened_before(&self, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let txn = self.begin_read()?;
        let by_month = txn.open(INCIDENTS_BY_MONTH)?;
        let month = month_of(at);
        if by_month.range(..(month, 0))?.next().is_some() {
            return Ok(true);
        }
        // Ids grow with time: the lowest of the month opened first.
        let Some(row) = by_month.range((month, 0)..=(month, u64::MAX))?.next() else {
            return Ok(false);
        };
        let (key, _) = row?;
        let (_, id) = key;
        let incidents = txn.open(INCIDENTS)?;
        let record: IncidentOpenedV1 =
            get_indexed(&incidents, "incidents.v1", "incidents_by_month.v1", id)?;
        Ok(record.opened_at < at)
    }

    /// The kind, priority and SLA clocks of every incident with a clock that still counts
    /// (running or paused) or stopped after `from`: all that the SLA report over a window
    /// starting at `from` looks at. Read through `incidents_by_sla_stop.v1`, so the cost
    /// follows the window and the open clocks, not the history; only those fields are
    /// decoded.
    pub fn incident_clocks_since(
        &self,
        from: DateTime<Utc>,
    ) -> Result<Vec<(Kind, Priority, SlaClocks)>, StoreError> {
        let txn = self.begin_read()?;
        let incidents = txn.open(INCIDENTS)?;
        let by_sla_stop = txn.open(INCIDENTS_BY_SLA_STOP)?;
        let mut found = Vec::new();
        // Milliseconds round down, so this takes in every clock stopped after `from` (and
        // perhaps a few stopped in its last millisecond, which the report leaves out).
        for row in by_sla_stop.range((from.timestamp_millis(), 0)..)? {
            let (key, _) = row?;
            let (_, id) = key;
            let record: IncidentClocksV1 =
                get_indexed(&incidents, "incidents.v1", "incidents_by_sla_stop.v1", id)?;
            found.push((record.kind, record.priority, record.sla.into_clocks()));
        }
        Ok(found)
    }

    /// The kind, priority and SLA clocks of every incident, from a walk of the whole
    /// history; [`Store::incident_clocks_since`] reads only what a window needs.
    pub fn incident_clocks(&self) -> Result<Vec<(Kind, Priority, SlaClocks)>, StoreError> {
        let txn = self.begin_read()?;
        let incidents = txn.open(INCIDENTS)?;
        let mut all = Vec::new();
        for row in incidents.iter()? {
            let (key, value) = row?;
            let record: IncidentClocksV1 = decode("incidents.v1", key, &value)?;
            all.push((record.kind, record.priority, record.sla.into_clocks()));
        }
        Ok(all)
    }

    /// Incidents newest first, starting below `before` (a cursor: the last id of the
    /// previous page), keeping those `filter` accepts. Returns the page and the cursor for
    /// the next one, `None` when no further incident is accepted.
    ///
    /// This walks the whole history when few incidents are accepted; a list that wants
    /// only some states says so with [`Store::list_incidents_by_state`], and a list that
    /// answers requests bounds its work with a budget there.
    pub fn list_incidents(
        &self,
        before: Option<u64>,
        limit: usize,
        filter: impl Fn(&Incident) -> bool,
    ) -> Result<(Vec<Incident>, Option<u64>), StoreError> {
        self.list_incidents_by_state(None, before, limit, usize::MAX, filter)
    }

    /// [`Store::list_incidents`] of the incidents whose state is one of `states` (all
    /// states with `None`), reading at most `budget` stored incidents. When none of
    /// `states` is `closed`, only the index of the incidents not closed is walked: the page
    /// costs what the active incidents cost, however long the history.
    ///
    /// A filter that few incidents pass would otherwise read the whole history for one
    /// page: once `budget` incidents are read the page ends, possibly short or empty, with
    /// a cursor below the last one read, and the next request goes on from there (as a
    /// DynamoDB scan does with its `LastEvaluatedKey`).
    pub fn list_incidents_by_state(
        &self,
        states: Option<&[State]>,
        before: Option<u64>,
        limit: usize,
        budget: usize,
        filter: impl Fn(&Incident) -> bool,
    ) -> Result<(Vec<Incident>, Option<u64>), StoreError> {
        let txn = self.begin_read()?;
        let incidents = txn.open(INCIDENTS)?;
        let below = ..before.unwrap_or(u64::MAX);
        let wanted = |record: &IncidentV1| states.is_none_or(|s| s.contains(&record.state));
        let page = Page {
            limit,
            budget,
            wanted,
            filter,
        };
        match states {
            Some(states) if !states.contains(&State::Closed) => {
                let active = txn.open(INCIDENTS_ACTIVE)?;
                let rows = active.range(below)?.rev().map(|row| {
                    let (key, _) = row?;
                    get_indexed(&incidents, "incidents.v1", "incidents_active.v1", key)
                });
                page.of(rows)
            }
            _ => {
                let rows = incidents.range(below)?.rev().map(|row| {
                    let (key, value) = row?;
                    decode("incidents.v1", key, &value)
                });
                page.of(rows)
            }
        }
    }

    /// Up to `limit` undelivered entries of one consumer, oldest first.
    pub fn pending_outbox(
        &self,
        consumer: &str,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let txn = self.begin_read()?;
        let outbox = txn.open(OUTBOX)?;
        let mut entries = Vec::new();
        for row in outbox
            .range((consumer, 0)..=(consumer, u64::MAX))?
            .take(limit)
        {
            let (key, value) = row?;
            let (_, seq) = key;
            entries.push(decode("outbox.v1", seq, &value)?);
        }
        Ok(entries)
    }

    /// Undelivered entries per consumer.
    pub fn outbox_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let txn = self.begin_read()?;
        let outbox = txn.open(OUTBOX)?;
        let mut counts = BTreeMap::new();
        for row in outbox.iter()? {
            let (key, _) = row?;
            let (consumer, _) = key;
            *counts.entry(consumer.to_owned()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Number of incidents stored (all states).
    pub fn incident_count(&self) -> Result<u64, StoreError> {
        let txn = self.begin_read()?;
        let incidents = txn.open(INCIDENTS)?;
        incidents.len()
    }
}

fn io_err(error: std::io::Error) -> StoreError {
    db_err(redb::StorageError::Io(error))
}

/// Opens an existing store and brings its tables and layout up to date.
fn open_database(path: &Path) -> Result<Database, StoreError> {
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .open(path)
        .map_err(db_err)?;
    init_file(&db)?;
    Ok(db)
}

/// Creates a new store at `path` atomically: complete under `<path>.new` (synced), then
/// renamed into place and the directory synced. On failure the temporary file is removed
/// and nothing is at `path`.
fn create(path: &Path) -> Result<(), StoreError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let created = (|| {
        match std::fs::remove_file(&temporary) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err(error));
            }
            _ => {}
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&temporary)
            .map_err(db_err)?;
        init_file(&db)?;
        db.close().map_err(db_err)?;
        std::fs::File::open(&temporary)
            .and_then(|file| file.sync_all())
            .map_err(io_err)?;
        std::fs::rename(&temporary, path).map_err(io_err)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_err)
    })();
    if created.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    created
}

/// Brings a redb file's layout up to date: the typed tables of layouts 1 to 3 are moved into
/// the key-value tables first ([`upgrade::from_typed_tables`], in chunks), then the layout is
/// checked and upgraded in one transaction.
fn init_file(db: &Database) -> Result<(), StoreError> {
    upgrade::from_typed_tables(db)?;
    let txn = kv::redb::Write(db.begin_write().map_err(db_err)?);
    init_tables(&txn)?;
    Box::new(txn).commit()
}

/// Records or upgrades the store's layout, in the transaction that opens it: the upgrade
/// and the new version number commit together, or neither does and the next open upgrades
/// again.
fn init_tables(txn: &dyn RawWrite) -> Result<(), StoreError> {
    let found = txn.open(META)?.get(META_SCHEMA)?;
    match found {
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema { found });
        }
        Some(SCHEMA_VERSION) => {}
        Some(found) => upgrade::upgrade(txn, found)?,
        None => {}
    }
    txn.open(META)?.put(META_SCHEMA, SCHEMA_VERSION)?;
    subscriptions::init_tables(txn)
}

/// Up to `limit` incidents of `rows` (newest first) that `wanted` and then `filter`
/// accept, and the cursor for the next page: the page's last id, when another incident
/// is accepted after it.
/// How one page of a list is cut from the stored incidents, newest first.
struct Page<W, F> {
    limit: usize,
    /// Stored incidents read at most.
    budget: usize,
    /// A check on the stored record (its state), before it is decoded whole.
    wanted: W,
    filter: F,
}

impl<W: Fn(&IncidentV1) -> bool, F: Fn(&Incident) -> bool> Page<W, F> {
    /// The page, and the cursor below which the next one starts: after the page's last
    /// incident when the page is full and more is accepted, after the last incident read
    /// when the budget ran out first.
    fn of(
        self,
        rows: impl Iterator<Item = Result<IncidentV1, StoreError>>,
    ) -> Result<(Vec<Incident>, Option<u64>), StoreError> {
        let mut page: Vec<Incident> = Vec::new();
        for (read, record) in rows.enumerate() {
            let record = record?;
            if read == self.budget {
                // Unread from here on: the next request goes on below the last one read.
                return Ok((page, Some(record.id + 1)));
            }
            if !(self.wanted)(&record) {
                continue;
            }
            let incident = Incident::from(record);
            if !(self.filter)(&incident) {
                continue;
            }
            if page.len() == self.limit {
                let last = page.last().map(|i| i.id.0);
                return Ok((page, last));
            }
            page.push(incident);
        }
        Ok((page, None))
    }
}

/// What start-up reads of the store ([`Store::load_at`]), in one read transaction: also how a
/// store is verified before it is opened for writing ([`health::readable`]).
fn read_loaded(txn: &dyn RawRead, now: Option<DateTime<Utc>>) -> Result<Loaded, StoreError> {
    let meta = txn.open(META)?;
    let counter = |key: &str| -> Result<u64, StoreError> { Ok(meta.get(key)?.map_or(1, |v| v)) };
    let mut loaded = Loaded {
        next_incident_id: counter(META_NEXT_INCIDENT)?,
        next_timeline_seq: counter(META_NEXT_TIMELINE)?,
        next_outbox_seq: counter(META_NEXT_OUTBOX)?,
        next_silence_id: counter(META_NEXT_SILENCE)?,
        next_maintenance_id: counter(META_NEXT_MAINTENANCE)?,
        ..Loaded::default()
    };
    let timers = txn.open(TIMERS)?;
    for row in timers.iter()? {
        let (key, _) = row?;
        let (due, incident, kind) = key;
        if let Some(timer) = timer_from_key(due, incident, &kind) {
            loaded.timers.push(timer);
        } else {
            tracing::warn!(
                due,
                incident,
                kind,
                "ignoring a stored timer of an unknown kind"
            );
        }
    }
    let silences = txn.open(SILENCES)?;
    if let Some(now) = now {
        let by_end = txn.open(SILENCES_BY_END)?;
        for row in by_end.range((now.timestamp_millis(), 0)..)? {
            let (key, _) = row?;
            let (_, id) = key;
            let record: SilenceV1 =
                get_indexed(&silences, "silences.v1", "silences_by_end.v1", id)?;
            // Milliseconds round down: one that ended in `now`'s millisecond is out.
            if record.ends_at > now {
                loaded.silences.push(silence_of(id, record)?);
            }
        }
    } else {
        for row in silences.iter()? {
            let (key, value) = row?;
            let record: SilenceV1 = decode("silences.v1", key, &value)?;
            loaded.silences.push(silence_of(key, record)?);
        }
    }
    let incidents = txn.open(INCIDENTS)?;
    let active = txn.open(INCIDENTS_ACTIVE)?;
    for row in active.iter()? {
        let (key, _) = row?;
        let record: IncidentV1 =
            get_indexed(&incidents, "incidents.v1", "incidents_active.v1", key)?;
        if record.closed_at.is_none() {
            loaded.incidents.push(record.into());
        }
    }
    let detectors = txn.open(DETECTORS)?;
    for row in detectors.iter()? {
        let (key, value) = row?;
        let record: DetectorV1 = decode("detectors.v1", &key, &value)?;
        let subject = record.subject.clone();
        loaded.detectors.insert(key, (subject, record.into()));
    }
    // Last: a store from before maintenances has no such table (`health::readable` takes
    // that as sound), and everything before it has been read.
    let maintenances = txn.open(MAINTENANCES)?;
    if let Some(now) = now {
        let by_over = txn.open(MAINTENANCES_BY_OVER)?;
        let since = now - chrono::Duration::days(HISTORY_DAYS);
        for row in by_over.range((since.timestamp_millis(), 0)..)? {
            let (key, _) = row?;
            let (_, id) = key;
            let record: MaintenanceV1 = get_indexed(
                &maintenances,
                "maintenances.v1",
                "maintenances_by_over.v1",
                id,
            )?;
            let maintenance = Maintenance::from(record);
            if maintenance.is_recent(now) {
                loaded.maintenances.push(maintenance);
            }
        }
    } else {
        for row in maintenances.iter()? {
            let (key, value) = row?;
            let record: MaintenanceV1 = decode("maintenances.v1", key, &value)?;
            loaded.maintenances.push(record.into());
        }
    }
    // Last: a store written before this table existed has everything else (opening it for
    // writing creates it).
    let uptime = txn.open(UPTIME_DAILY)?;
    for row in uptime.iter()? {
        let (key, value) = row?;
        let (probe, day) = key;
        let count = DayCount::from(value);
        // Rows come by probe: one name allocated per probe, not per day.
        match loaded.uptime.last_mut() {
            Some((name, days)) if *name == probe => days.push((day, count)),
            _ => loaded.uptime.push((probe, vec![(day, count)])),
        }
    }
    Ok(loaded)
}

/// Whether an incident belongs in `incidents_active.v1`: it is not closed. The domain sets
/// `closed_at` exactly in state `closed`; the index holds an incident while either says it
/// is not closed, so it serves both `load` (which asks `closed_at`) and lists by state.
fn indexed_as_active(state: State, closed_at: Option<DateTime<Utc>>) -> bool {
    state != State::Closed || closed_at.is_none()
}

/// The UTC month of `at` as one number, `year * 12 + month0` (January 2026 is 24,312): the
/// first part of an incident's key in `incidents_by_month.v1`, so consecutive months are
/// consecutive numbers.
pub fn month_of(at: DateTime<Utc>) -> i32 {
    use chrono::Datelike;
    at.year() * 12 + at.month0().cast_signed()
}

/// When the last of an incident's SLA clocks stopped (Unix milliseconds), `i64::MAX` while
/// one still counts (running or paused), `None` without clocks: the incident's key in
/// `incidents_by_sla_stop.v1`. A report over a window wants an incident exactly when this
/// is after the window's start (its other clocks stopped before).
fn sla_last_stop(clocks: &SlaClocks) -> Option<i64> {
    clocks
        .iter()
        .map(|(_, clock)| {
            clock
                .stopped_at
                .map_or(i64::MAX, |at| at.timestamp_millis())
        })
        .max()
}

/// The record (of `table`, named `name`) that an index names; its absence is an
/// inconsistency, not a miss.
fn get_indexed<T: DeserializeOwned>(
    table: &impl Readable<u64, Bytes>,
    name: &'static str,
    index: &'static str,
    id: u64,
) -> Result<T, StoreError> {
    let value = table.get(id)?.ok_or_else(|| StoreError::Inconsistent {
        index,
        key: id.to_string(),
    })?;
    decode(name, id, &value)
}

fn timer_key(timer: &Timer) -> (i64, u64, &'static str) {
    (
        timer.due.timestamp_millis(),
        timer.incident.0,
        timer.kind.as_str(),
    )
}

fn timer_from_key(due: i64, incident: u64, kind: &str) -> Option<Timer> {
    let kind = TimerKind::parse(kind)?;
    Some(Timer {
        due: chrono::DateTime::from_timestamp_millis(due)?,
        incident: IncidentId(incident),
        kind,
    })
}

fn encode(record: &impl Serialize) -> Vec<u8> {
    // Serializing plain data structs with string keys to JSON cannot fail.
    serde_json::to_vec(record).expect("records serialize to JSON")
}

/// The silence a record stores; a regular expression that does not compile is as corrupt
/// as bytes that do not decode.
fn silence_of(id: u64, record: SilenceV1) -> Result<Silence, StoreError> {
    Silence::try_from(record).map_err(|error| StoreError::Corrupt {
        table: "silences.v1",
        key: id.to_string(),
        source: serde::de::Error::custom(error),
    })
}

fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: impl ToString,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        table,
        key: key.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests;
