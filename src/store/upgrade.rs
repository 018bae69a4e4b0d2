//! Bringing a store written by an older layout up to [`SCHEMA_VERSION`](super::SCHEMA_VERSION).
//! Each step runs in the transaction that opens the store and commits with the new version
//! number, so a crash mid-upgrade leaves the old layout, upgraded again at the next start.

use std::time::Instant;

use redb::{ReadableTable, WriteTransaction};

use super::records::{IncidentIndexedV1, IncidentOpenedV1, SilenceV1};
use super::{
    INCIDENT_SLA_STOP, INCIDENTS, INCIDENTS_ACTIVE, INCIDENTS_BY_MONTH, INCIDENTS_BY_SLA_STOP,
    SILENCES, SILENCES_BY_END, StoreError, db_err, decode, indexed_as_active, month_of,
    sla_last_stop,
};

/// Upgrades a store of schema version `from`.
pub(super) fn upgrade(txn: &WriteTransaction, from: u64) -> Result<(), StoreError> {
    if from < 2 {
        index_incidents(txn)?;
        index_silences(txn)?;
    }
    if from < 3 {
        index_months(txn)?;
    }
    Ok(())
}

/// Schema 2: the index of the incidents not closed and the index by when their SLA clocks
/// stopped, built once from every stored incident (only its state, closure and clocks are
/// decoded).
fn index_incidents(txn: &WriteTransaction) -> Result<(), StoreError> {
    let started = Instant::now();
    let incidents = txn.open_table(INCIDENTS).map_err(db_err)?;
    let mut active = txn.open_table(INCIDENTS_ACTIVE).map_err(db_err)?;
    let mut by_sla_stop = txn.open_table(INCIDENTS_BY_SLA_STOP).map_err(db_err)?;
    let mut sla_stop = txn.open_table(INCIDENT_SLA_STOP).map_err(db_err)?;
    let (mut stored, mut not_closed) = (0u64, 0u64);
    for row in incidents.iter().map_err(db_err)? {
        let (key, value) = row.map_err(db_err)?;
        let id = key.value();
        let record: IncidentIndexedV1 = decode("incidents.v1", id, value.value())?;
        stored += 1;
        if indexed_as_active(record.state, record.closed_at) {
            active.insert(id, ()).map_err(db_err)?;
            not_closed += 1;
        }
        if let Some(stop) = sla_last_stop(&record.sla.into_clocks()) {
            sla_stop.insert(id, stop).map_err(db_err)?;
            by_sla_stop.insert((stop, id), ()).map_err(db_err)?;
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
fn index_silences(txn: &WriteTransaction) -> Result<(), StoreError> {
    let silences = txn.open_table(SILENCES).map_err(db_err)?;
    let mut by_end = txn.open_table(SILENCES_BY_END).map_err(db_err)?;
    for row in silences.iter().map_err(db_err)? {
        let (key, value) = row.map_err(db_err)?;
        let id = key.value();
        let record: SilenceV1 = decode("silences.v1", id, value.value())?;
        by_end
            .insert((record.ends_at.timestamp_millis(), id), ())
            .map_err(db_err)?;
    }
    Ok(())
}

/// Schema 3: the index of the incidents by the UTC month they opened in, built once from
/// every stored incident (only its opening is decoded).
fn index_months(txn: &WriteTransaction) -> Result<(), StoreError> {
    let started = Instant::now();
    let incidents = txn.open_table(INCIDENTS).map_err(db_err)?;
    let mut by_month = txn.open_table(INCIDENTS_BY_MONTH).map_err(db_err)?;
    let mut stored = 0u64;
    for row in incidents.iter().map_err(db_err)? {
        let (key, value) = row.map_err(db_err)?;
        let id = key.value();
        let record: IncidentOpenedV1 = decode("incidents.v1", id, value.value())?;
        by_month
            .insert((month_of(record.opened_at), id), ())
            .map_err(db_err)?;
        stored += 1;
    }
    tracing::info!(
        incidents = stored,
        elapsed_ms = started.elapsed().as_millis(),
        "store upgraded to schema 3: indexed the incidents by the month they opened in"
    );
    Ok(())
}
