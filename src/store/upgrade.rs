//! Bringing a store written by an older layout up to [`SCHEMA_VERSION`](super::SCHEMA_VERSION).
//! Each step runs in the transaction that opens the store and commits with the new version
//! number, so a crash mid-upgrade leaves the old layout, upgraded again at the next start.
//!
//! Layouts 1 to 3 kept each table as a typed redb table; layout 4 keeps them as the
//! key-value tables of [`super::kv`], the same in a redb file and in PostgreSQL. A file of an
//! older layout has its typed tables moved into the key-value ones first
//! ([`from_typed_tables`]), then the steps of the layouts it missed run on those.

use std::time::Instant;

use redb::{Key, ReadableTable, TableDefinition, TableHandle, Value, WriteTransaction};

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

/// Moves the typed tables of layouts 1 to 3, where the file has them, into the key-value
/// tables (same names, same records; the keys re-encoded) and deletes them. The store's
/// `meta` comes along with its schema version, so [`upgrade`] then runs the steps the file
/// missed. A file of layout 4 has no typed tables: nothing happens.
pub(super) fn from_typed_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    let typed: Vec<String> = txn
        .list_tables()
        .map_err(db_err)?
        .map(|table| table.name().to_owned())
        .filter(|name| !name.starts_with("kv/"))
        .collect();
    if typed.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut rows = 0u64;
    // One line per table: its typed definition then, its key-value definition now.
    rows += copy::<&str, u64, _, _>(txn, "meta", super::META)?;
    rows += copy::<u64, &[u8], _, _>(txn, "incidents.v1", INCIDENTS)?;
    rows += copy::<u64, (), _, _>(txn, "incidents_active.v1", INCIDENTS_ACTIVE)?;
    rows += copy::<(i64, u64), (), _, _>(txn, "incidents_by_sla_stop.v1", INCIDENTS_BY_SLA_STOP)?;
    rows += copy::<u64, i64, _, _>(txn, "incident_sla_stop.v1", INCIDENT_SLA_STOP)?;
    rows += copy::<(i32, u64), (), _, _>(txn, "incidents_by_month.v1", INCIDENTS_BY_MONTH)?;
    rows += copy::<(u64, u64), &[u8], _, _>(txn, "timeline.v1", super::TIMELINE)?;
    rows += copy::<&str, &[u8], _, _>(txn, "detectors.v1", super::DETECTORS)?;
    rows += copy::<(&str, u64), &[u8], _, _>(txn, "outbox.v1", super::OUTBOX)?;
    rows += copy::<(i64, u64, &str), (), _, _>(txn, "timers.v1", super::TIMERS)?;
    rows += copy::<u64, &[u8], _, _>(txn, "silences.v1", SILENCES)?;
    rows += copy::<(i64, u64), (), _, _>(txn, "silences_by_end.v1", SILENCES_BY_END)?;
    rows += copy::<u64, &[u8], _, _>(txn, "maintenances.v1", super::MAINTENANCES)?;
    rows +=
        copy::<(i64, u64), (), _, _>(txn, "maintenances_by_over.v1", super::MAINTENANCES_BY_OVER)?;
    rows += copy::<(&str, i32), (u32, u32), _, _>(txn, "uptime_daily.v1", super::UPTIME_DAILY)?;
    rows += copy::<(&str, u64), &[u8], _, _>(txn, "outbox_done.v1", super::webhooks::OUTBOX_DONE)?;
    rows +=
        copy::<(&str, u64), &[u8], _, _>(txn, "dead_letters.v1", super::webhooks::DEAD_LETTERS)?;
    rows +=
        copy::<(&str, i64, u64), &[u8], _, _>(txn, "deliveries.v1", super::webhooks::DELIVERIES)?;
    rows += copy::<&str, &[u8], _, _>(txn, "consumers.v1", super::webhooks::CONSUMERS)?;
    rows += copy::<u64, &[u8], _, _>(txn, "subscribers.v1", super::subscriptions::SUBSCRIBERS)?;
    rows += copy::<u64, &[u8], _, _>(
        txn,
        "status_updates.v1",
        super::subscriptions::STATUS_UPDATES,
    )?;
    rows += copy::<u64, &[u8], _, _>(txn, "notifications.v1", super::subscriptions::NOTIFICATIONS)?;
    rows += copy::<(u64, u64), (), _, _>(
        txn,
        "notifications_due.v1",
        super::subscriptions::NOTIFICATIONS_DUE,
    )?;
    rows += copy::<u64, &[u8], _, _>(txn, "reporter_links.v1", super::reporter::REPORTER_LINKS)?;
    rows += copy::<&[u8], u64, _, _>(
        txn,
        "reporter_link_hashes.v1",
        super::reporter::REPORTER_LINK_HASHES,
    )?;
    rows += copy::<&[u8], &[u8], _, _>(txn, "sessions.v1", super::sessions::SESSIONS)?;
    tracing::info!(
        tables = typed.len(),
        rows,
        elapsed_ms = started.elapsed().as_millis(),
        "store upgraded to schema 4: moved the typed tables into key-value tables"
    );
    Ok(())
}

/// Copies the typed table `name` into `into`, then deletes it. A table the file does not
/// have copies nothing.
fn copy<K, V, NK, NV>(
    txn: &WriteTransaction,
    name: &str,
    into: Def<NK, NV>,
) -> Result<u64, StoreError>
where
    K: Key + 'static,
    V: Value + 'static,
    for<'a> K::SelfType<'a>: KeyArg<NK>,
    for<'a> V::SelfType<'a>: ValueArg<NV>,
    NK: kv::Key,
    NV: kv::Value,
{
    let definition = TableDefinition::<K, V>::new(name);
    let typed = match txn.open_table(definition) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(error) => return Err(db_err(error)),
    };
    let physical = kv::redb::physical(into.name);
    let mut target = txn
        .open_table(TableDefinition::<&[u8], &[u8]>::new(&physical))
        .map_err(db_err)?;
    let mut copied = 0u64;
    for row in typed.iter().map_err(db_err)? {
        let (key, value) = row.map_err(db_err)?;
        let key = key.value().to_bytes();
        let value = value.value();
        target
            .insert(key.as_slice(), &*ValueArg::<NV>::to_bytes(&value))
            .map_err(db_err)?;
        copied += 1;
    }
    drop(target);
    drop(typed);
    txn.delete_table(definition).map_err(db_err)?;
    Ok(copied)
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
