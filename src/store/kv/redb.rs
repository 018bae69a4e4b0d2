//! The tables in one redb file: each is a redb table of bytes to bytes named `kv/<name>`
//! (the layout of schema version 4; `upgrade.rs` moves older, typed tables into it).

use std::ops::Bound;

use ::redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, TableError, TableHandle, UntypedTableHandle,
    WriteTransaction,
};

use super::{Backend, RawRead, RawTable, RawTableMut, RawWrite, Rows};
use crate::store::{StoreError, db_err};

/// The name of the redb table that holds the store's table `name`.
pub fn physical(name: &str) -> String {
    format!("kv/{name}")
}

/// The store's table names among a file's redb tables (those named `kv/<name>`), in order.
fn store_tables(handles: impl Iterator<Item = UntypedTableHandle>) -> Vec<String> {
    let mut names: Vec<String> = handles
        .filter_map(|handle| handle.name().strip_prefix("kv/").map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn definition(physical: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(physical)
}

impl Backend for Database {
    fn read(&self) -> Result<Box<dyn RawRead + '_>, StoreError> {
        Ok(Box::new(Read(self.begin_read().map_err(db_err)?)))
    }

    fn write(&self) -> Result<Box<dyn RawWrite + '_>, StoreError> {
        Ok(Box::new(Write(self.begin_write().map_err(db_err)?)))
    }
}

pub struct Read(pub ReadTransaction);

pub struct Write(pub WriteTransaction);

/// A table of a read transaction; `None` when the file has no such table yet.
struct ReadTable(Option<ReadOnlyTable<&'static [u8], &'static [u8]>>);

struct WriteTable<'t>(::redb::Table<'t, &'static [u8], &'static [u8]>);

impl RawRead for Read {
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTable + 'a>, StoreError> {
        let physical = physical(name);
        match self.0.open_table(definition(&physical)) {
            Ok(table) => Ok(Box::new(ReadTable(Some(table)))),
            Err(TableError::TableDoesNotExist(_)) => Ok(Box::new(ReadTable(None))),
            Err(error) => Err(db_err(error)),
        }
    }

    fn tables(&self) -> Result<Vec<String>, StoreError> {
        Ok(store_tables(self.0.list_tables().map_err(db_err)?))
    }
}

impl RawWrite for Write {
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTableMut + 'a>, StoreError> {
        let physical = physical(name);
        let table = self.0.open_table(definition(&physical)).map_err(db_err)?;
        Ok(Box::new(WriteTable(table)))
    }

    fn tables(&self) -> Result<Vec<String>, StoreError> {
        Ok(store_tables(self.0.list_tables().map_err(db_err)?))
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.0.commit().map_err(db_err)
    }
}

fn get(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(table.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
}

fn range(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    low: Bound<&[u8]>,
    high: Bound<&[u8]>,
    reverse: bool,
    limit: usize,
) -> Result<Rows, StoreError> {
    if is_empty_range(low, high) {
        return Ok(Vec::new());
    }
    let rows = table.range::<&[u8]>((low, high)).map_err(db_err)?;
    if reverse {
        rows.rev().take(limit).map(owned).collect()
    } else {
        rows.take(limit).map(owned).collect()
    }
}

type Row<'a> = (
    ::redb::AccessGuard<'a, &'static [u8]>,
    ::redb::AccessGuard<'a, &'static [u8]>,
);

fn owned(row: Result<Row<'_>, ::redb::StorageError>) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let (key, value) = row.map_err(db_err)?;
    Ok((key.value().to_vec(), value.value().to_vec()))
}

/// redb refuses a range whose start is after its end; such a range holds nothing.
fn is_empty_range(low: Bound<&[u8]>, high: Bound<&[u8]>) -> bool {
    match (low, high) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h)) => l >= h,
        _ => false,
    }
}

impl RawTable for ReadTable {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.0 {
            Some(table) => get(table, key),
            None => Ok(None),
        }
    }

    fn range(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        match &self.0 {
            Some(table) => range(table, low, high, reverse, limit),
            None => Ok(Vec::new()),
        }
    }

    fn len(&self) -> Result<u64, StoreError> {
        match &self.0 {
            Some(table) => table.len().map_err(db_err),
            None => Ok(0),
        }
    }
}

impl RawTable for WriteTable<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get(&self.0, key)
    }

    fn range(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        range(&self.0, low, high, reverse, limit)
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.0.len().map_err(db_err)
    }
}

impl RawTableMut for WriteTable<'_> {
    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .insert(key, value)
            .map_err(db_err)?
            .map(|old| old.value().to_vec()))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.0.insert(key, value).map_err(db_err).map(drop)
    }

    fn remove(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .remove(key)
            .map_err(db_err)?
            .map(|old| old.value().to_vec()))
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.0.remove(key).map_err(db_err).map(drop)
    }

    fn delete_range(&mut self, low: Bound<&[u8]>, high: Bound<&[u8]>) -> Result<(), StoreError> {
        if is_empty_range(low, high) {
            return Ok(());
        }
        self.0
            .retain_in::<&[u8], _>((low, high), |_, _| false)
            .map_err(db_err)
    }
}
