//! Bringing a store written by an older layout up to [`SCHEMA_VERSION`](super::SCHEMA_VERSION).
//! Each step runs in the transaction that opens the store and commits with the new version
//! number, so a crash mid-upgrade leaves the old layout, upgraded again at the next start.
//!
//! Layouts 1 to 3 kept each table as a typed redb table; layout 4 keeps them as the
//! key-value tables of [`super::kv`], the same in a redb file and in PostgreSQL. A file of an
//! older layout has its typed tables moved into the key-value ones first
//! ([`from_typed_tables`]), then the steps of the layouts it missed run on those.

use std::time::Instant;

use redb::{Database, Key, ReadableDatabase, TableDefinition, TableHandle, Value};

use super::kv::{self, Def, KeyArg, RawWrite, Readable, ValueArg};
use super::records::{IncidentIndexedV1, IncidentOpenedV1, SilenceV1};
use super::{
    INCIDENT_SLA_STOP, INCIDENTS, INCIDENTS_ACTIVE, INCIDENTS_BY_MONTH, INCIDENTS_BY_SLA_STOP,
    SILENCES, SILENCES_BY_END, StoreError, db_err, decode, indexed_as_active, month_of,
    sla_last_stop,
};

/// Upgrades a store of schema version `from`.
pub(super) fn upgrade(txn: &dyn RawWrite, from: u64) -> Result<(), StoreError> {
    if from < 2 {
        index_incidents(txn)?;
        index_silences(txn)?;
    }
    if from < 3 {
        index_months(txn)?;
    }
    Ok(())
}

/// Rows moved per transaction: the move of a large store holds this many in memory, not the
/// store.
pub(super) const MOVE_CHUNK: usize = 10_000;

/// Moves the typed tables of layouts 1 to 3, where the file has them, into the key-value
/// tables (same names, same records; the keys re-encoded), [`MOVE_CHUNK`] rows per
/// transaction: each takes rows out of a typed table and puts them into its key-value table
/// in one commit, so a crash in the middle leaves every row in exactly one of the two, and
/// the next start goes on. `meta` moves last, with its schema version, so [`upgrade`] then
/// runs the steps the file missed; until then the file still reads as the older layout's.
/// A file of layout 4 has no typed tables: nothing happens.
pub(super) fn from_typed_tables(db: &Database) -> Result<(), StoreError> {
    let typed: Vec<String> = {
        let txn = db.begin_read().map_err(db_err)?;
        txn.list_tables()
            .map_err(db_err)?
            .map(|table| table.name().to_owned())
            .filter(|name| !name.starts_with("kv/"))
            .collect()
    };
    if typed.is_empty() {
        return Ok(());
    }
    // A file written by a newer incidentd is refused before anything moves.
    {
        let txn = db.begin_read().map_err(db_err)?;
        let meta = TableDefinition::<&str, u64>::new("meta");
        if let Ok(meta) = txn.open_table(meta)
            && let Some(found) = meta.get(super::META_SCHEMA).map_err(db_err)?
            && found.value() > super::SCHEMA_VERSION
        {
            return Err(StoreError::NewerSchema {
                found: found.value(),
            });
        }
    }
    let started = Instant::now();
    let mut rows = 0u64;
    // One line per table: its typed definition then, its key-value definition now.
    rows += move_table::<u64, &[u8], _, _>(db, "incidents.v1", INCIDENTS)?;
    rows += move_table::<u64, (), _, _>(db, "incidents_active.v1", INCIDENTS_ACTIVE)?;
    rows +=
        move_table::<(i64, u64), (), _, _>(db, "incidents_by_sla_stop.v1", INCIDENTS_BY_SLA_STOP)?;
    rows += move_table::<u64, i64, _, _>(db, "incident_sla_stop.v1", INCIDENT_SLA_STOP)?;
    rows += move_table::<(i32, u64), (), _, _>(db, "incidents_by_month.v1", INCIDENTS_BY_MONTH)?;
    rows += move_table::<(u64, u64), &[u8], _, _>(db, "timeline.v1", super::TIMELINE)?;
    rows += move_table::<&str, &[u8], _, _>(db, "detectors.v1", super::DETECTORS)?;
    rows += move_table::<(&str, u64), &[u8], _, _>(db, "outbox.v1", super::OUTBOX)?;
    rows += move_table::<(i64, u64, &str), (), _, _>(db, "timers.v1", super::TIMERS)?;
    rows += move_table::<u64, &[u8], _, _>(db, "silences.v1", SILENCES)?;
    rows += move_table::<(i64, u64), (), _, _>(db, "silences_by_end.v1", SILENCES_BY_END)?;
    rows += move_table::<u64, &[u8], _, _>(db, "maintenances.v1", super::MAINTENANCES)?;
    rows += move_table::<(i64, u64), (), _, _>(
        db,
        "maintenances_by_over.v1",
        super::MAINTENANCES_BY_OVER,
    )?;
    rows +=
        move_table::<(&str, i32), (u32, u32), _, _>(db, "uptime_daily.v1", super::UPTIME_DAILY)?;
    rows +=
        move_table::<(&str, u64), &[u8], _, _>(db, "outbox_done.v1", super::webhooks::OUTBOX_DONE)?;
    rows += move_table::<(&str, u64), &[u8], _, _>(
        db,
        "dead_letters.v1",
        super::webhooks::DEAD_LETTERS,
    )?;
    rows += move_table::<(&str, i64, u64), &[u8], _, _>(
        db,
        "deliveries.v1",
        super::webhooks::DELIVERIES,
    )?;
    rows += move_table::<&str, &[u8], _, _>(db, "consumers.v1", super::webhooks::CONSUMERS)?;
    rows +=
        move_table::<u64, &[u8], _, _>(db, "subscribers.v1", super::subscriptions::SUBSCRIBERS)?;
    rows += move_table::<u64, &[u8], _, _>(
        db,
        "status_updates.v1",
        super::subscriptions::STATUS_UPDATES,
    )?;
    rows += move_table::<u64, &[u8], _, _>(
        db,
        "notifications.v1",
        super::subscriptions::NOTIFICATIONS,
    )?;
    rows += move_table::<(u64, u64), (), _, _>(
        db,
        "notifications_due.v1",
        super::subscriptions::NOTIFICATIONS_DUE,
    )?;
    rows +=
        move_table::<u64, &[u8], _, _>(db, "reporter_links.v1", super::reporter::REPORTER_LINKS)?;
    rows += move_table::<&[u8], u64, _, _>(
        db,
        "reporter_link_hashes.v1",
        super::reporter::REPORTER_LINK_HASHES,
    )?;
    rows += move_table::<&[u8], &[u8], _, _>(db, "sessions.v1", super::sessions::SESSIONS)?;
    // Last: with it goes the schema version that says the file is of an older layout.
    rows += move_table::<&str, u64, _, _>(db, "meta", super::META)?;
    tracing::info!(
        tables = typed.len(),
        rows,
        elapsed_ms = started.elapsed().as_millis(),
        "store upgraded to schema 4: moved the typed tables into key-value tables"
    );
    Ok(())
}

/// Moves the typed table `name` into `into`, [`MOVE_CHUNK`] rows a transaction, then
/// deletes it. A table the file does not have moves nothing.
fn move_table<K, V, NK, NV>(db: &Database, name: &str, into: Def<NK, NV>) -> Result<u64, StoreError>
where
    K: Key + 'static,
    V: Value + 'static,
    for<'a> K::SelfType<'a>: KeyArg<NK>,
    for<'a> V::SelfType<'a>: ValueArg<NV>,
    NK: kv::Key,
    NV: kv::Value,
{
    let definition = TableDefinition::<K, V>::new(name);
    let physical = kv::redb::physical(into.name);
    let mut moved = 0u64;
    loop {
        let txn = db.begin_write().map_err(db_err)?;
        let mut typed = match txn.open_table(definition) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(moved),
            Err(error) => return Err(db_err(error)),
        };
        let mut target = txn
            .open_table(TableDefinition::<&[u8], &[u8]>::new(&physical))
            .map_err(db_err)?;
        let mut chunk = 0;
        while chunk < MOVE_CHUNK {
            let Some((key, value)) = typed.pop_first().map_err(db_err)? else {
                break;
            };
            let key = key.value().to_bytes();
            let value = value.value();
            target
                .insert(key.as_slice(), &*ValueArg::<NV>::to_bytes(&value))
                .map_err(db_err)?;
            chunk += 1;
        }
        moved += chunk as u64;
        let done = chunk < MOVE_CHUNK;
        drop(target);
        drop(typed);
        if done {
            txn.delete_table(definition).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        if done {
            return Ok(moved);
        }
    }
}

/// Schema 2: the index of the incidents not closed and the index by when their SLA clocks
/// stopped, built once from every stored incident (only its state, closure and clocks are
/// decoded).
fn index_incidents(txn: &dyn RawWrite) -> Result<(), StoreError> {
    let started = Instant::now();
    let incidents = txn.read(INCIDENTS)?;
    let mut active = txn.open(INCIDENTS_ACTIVE)?;
    let mut by_sla_stop = txn.open(INCIDENTS_BY_SLA_STOP)?;
    let mut sla_stop = txn.open(INCIDENT_SLA_STOP)?;
    let (mut stored, mut not_closed) = (0u64, 0u64);
    for row in incidents.iter()? {
        let (key, value) = row?;
        let id = key;
        let record: IncidentIndexedV1 = decode("incidents.v1", id, &value)?;
        stored += 1;
        if indexed_as_active(record.state, record.closed_at) {
            active.put(id, ())?;
            not_closed += 1;
        }
        if let Some(stop) = sla_last_stop(&record.sla.into_clocks()) {
            sla_stop.put(id, stop)?;
            by_sla_stop.put((stop, id), ())?;
        }
    }
    tracing::info!(
        incidents = stored,
        active = not_closed,
        elapsed_ms = started.elapsed().as_millis(),
        "store upgraded to schema 2: indexed the incidents not closed and their SLA clocks"
    );
    Ok(())
}

/// Schema 2: the index of the silences by when they end.
fn index_silences(txn: &dyn RawWrite) -> Result<(), StoreError> {
    let silences = txn.read(SILENCES)?;
    let mut by_end = txn.open(SILENCES_BY_END)?;
    for row in silences.iter()? {
        let (key, value) = row?;
        let id = key;
        let record: SilenceV1 = decode("silences.v1", id, &value)?;
        by_end.put((record.ends_at.timestamp_millis(), id), ())?;
    }
    Ok(())
}

/// Schema 3: the index of the incidents by the UTC month they opened in, built once from
/// every stored incident (only its opening is decoded).
fn index_months(txn: &dyn RawWrite) -> Result<(), StoreError> {
    let started = Instant::now();
    let incidents = txn.read(INCIDENTS)?;
    let mut by_month = txn.open(INCIDENTS_BY_MONTH)?;
    let mut stored = 0u64;
    for row in incidents.iter()? {
        let (key, value) = row?;
        let id = key;
        let record: IncidentOpenedV1 = decode("incidents.v1", id, &value)?;
        by_month.put((month_of(record.opened_at), id), ())?;
        stored += 1;
    }
    tracing::info!(
        incidents = stored,
        elapsed_ms = started.elapsed().as_millis(),
        "store upgraded to schema 3: indexed the incidents by the month they opened in"
    );
    Ok(())
}
