//! The ordered key-value tables the store is written in, over either backend: redb (one
//! file, the default) or PostgreSQL (several replicas). The store's logic — which tables a
//! commit writes, which indexes a read walks — is written once against this layer, so both
//! backends hold the same records under the same keys and answer the same reads.
//!
//! A table is a name with a key and a value type ([`Def`]). Keys are encoded so that their
//! bytes sort as the values do (big-endian integers with the sign bit flipped, strings with
//! their zero bytes escaped and a terminator, tuples as the concatenation of their parts):
//! a range of keys is a range of bytes in either backend, and `bytea` in PostgreSQL
//! compares as bytes whatever the database's collation.
//!
//! A backend offers read transactions ([`RawRead`], a consistent snapshot) and write
//! transactions ([`RawWrite`], one per engine batch, committed whole or not at all); both
//! hand out tables of bytes ([`RawTable`], [`RawTableMut`]). The typed handles here
//! ([`Table`], [`TableMut`]) encode and decode around them. Ranges are read in chunks
//! ([`Iter`]): a walk of a large table holds one chunk in memory, never the table.

pub mod key;
pub mod postgres;
pub mod redb;

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use super::StoreError;
pub use key::{Key, KeyArg, Value, ValueArg};

/// Raw bytes: the value type of tables that hold encoded records.
pub type Bytes = Vec<u8>;

/// A table: its name and the types of its keys and values.
pub struct Def<K, V> {
    pub name: &'static str,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Def<K, V> {
    pub const fn new(name: &'static str) -> Self {
        Def {
            name,
            types: PhantomData,
        }
    }
}

impl<K, V> Clone for Def<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Def<K, V> {}

/// Rows of one range, in key order or reversed.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Where the tables are kept: a redb file or a PostgreSQL database.
pub trait Backend: Send + Sync {
    fn read(&self) -> Result<Box<dyn RawRead + '_>, StoreError>;
    fn write(&self) -> Result<Box<dyn RawWrite + '_>, StoreError>;
}

/// A read transaction: every table read through it sees the same committed state.
pub trait RawRead {
    /// A table that was never written reads as empty.
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTable + 'a>, StoreError>;
    /// The names of the tables this backend holds, in name order: every table ever
    /// created in a redb file (also an empty one), every table with a row in PostgreSQL.
    /// What `store copy` copies, so that no table is left behind, also one this build
    /// does not know.
    fn tables(&self) -> Result<Vec<String>, StoreError>;
}

/// A write transaction: what its tables are told is durable once [`RawWrite::commit`]
/// returns, all of it, and none of it before.
pub trait RawWrite {
    /// Each table is open at most once at a time in a transaction.
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTableMut + 'a>, StoreError>;
    /// [`RawRead::tables`], as this transaction sees them (its own writes included).
    fn tables(&self) -> Result<Vec<String>, StoreError>;
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

pub trait RawTable {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// At most `limit` rows with keys within the bounds, from the low end or, `reverse`,
    /// from the high end.
    fn range(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Rows, StoreError>;
    fn len(&self) -> Result<u64, StoreError>;

    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self
            .range(Bound::Unbounded, Bound::Unbounded, false, 1)?
            .is_empty())
    }
}

pub trait RawTableMut: RawTable {
    /// Stores the value and answers the one it replaced.
    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores the value; what it replaced is not needed (a backend may defer the write to
    /// the transaction's next read or its commit).
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.insert(key, value).map(drop)
    }
    /// Deletes the key and answers the value it had.
    fn remove(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes the key, if it is there.
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.remove(key).map(drop)
    }
    /// Deletes every key within the bounds.
    fn delete_range(&mut self, low: Bound<&[u8]>, high: Bound<&[u8]>) -> Result<(), StoreError>;
}

/// Typed reads, shared by [`Table`] and [`TableMut`].
pub trait Readable<K: Key, V: Value> {
    fn raw(&self) -> &dyn RawTable;
    fn name(&self) -> &'static str;

    fn get(&self, key: impl KeyArg<K>) -> Result<Option<V>, StoreError> {
        let name = self.name();
        match self.raw().get(&key.to_bytes())? {
            Some(bytes) => V::decode(&bytes)
                .map(Some)
                .ok_or_else(|| bad_value(name, &bytes)),
            None => Ok(None),
        }
    }

    /// The rows within `range`, in key order; `.rev()` before the first row reverses them.
    fn range<A: KeyArg<K>>(
        &self,
        range: impl RangeBounds<A>,
    ) -> Result<Iter<'_, K, V>, StoreError> {
        Ok(Iter::new(
            self.raw(),
            self.name(),
            encode_bound(range.start_bound()),
            encode_bound(range.end_bound()),
        ))
    }

    /// Every row, in key order; `.rev()` before the first row reverses them.
    fn iter(&self) -> Result<Iter<'_, K, V>, StoreError> {
        Ok(Iter::new(
            self.raw(),
            self.name(),
            Bound::Unbounded,
            Bound::Unbounded,
        ))
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.raw().len()
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.raw().is_empty()
    }

    /// The row with the lowest key.
    fn first(&self) -> Result<Option<(K, V)>, StoreError> {
        self.iter()?.next().transpose()
    }

    /// The row with the highest key.
    fn last(&self) -> Result<Option<(K, V)>, StoreError> {
        self.iter()?.rev().next().transpose()
    }
}

/// A table read in a read (or write) transaction.
pub struct Table<'t, K, V> {
    raw: Box<dyn RawTable + 't>,
    name: &'static str,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K: Key, V: Value> Readable<K, V> for Table<'_, K, V> {
    fn raw(&self) -> &dyn RawTable {
        &*self.raw
    }
    fn name(&self) -> &'static str {
        self.name
    }
}

/// A table written in a write transaction.
pub struct TableMut<'t, K, V> {
    raw: Box<dyn RawTableMut + 't>,
    name: &'static str,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K: Key, V: Value> Readable<K, V> for TableMut<'_, K, V> {
    fn raw(&self) -> &dyn RawTable {
        &*self.raw
    }
    fn name(&self) -> &'static str {
        self.name
    }
}

impl<K: Key, V: Value> TableMut<'_, K, V> {
    /// Stores the value and answers the one it replaced.
    pub fn insert(
        &mut self,
        key: impl KeyArg<K>,
        value: impl ValueArg<V>,
    ) -> Result<Option<V>, StoreError> {
        let old = self.raw.insert(&key.to_bytes(), &value.to_bytes())?;
        self.decode_old(old)
    }

    /// Stores the value (cheaper than [`TableMut::insert`] when the old one does not matter).
    pub fn put(&mut self, key: impl KeyArg<K>, value: impl ValueArg<V>) -> Result<(), StoreError> {
        self.raw.put(&key.to_bytes(), &value.to_bytes())
    }

    /// Deletes the key and answers the value it had.
    pub fn remove(&mut self, key: impl KeyArg<K>) -> Result<Option<V>, StoreError> {
        let old = self.raw.remove(&key.to_bytes())?;
        self.decode_old(old)
    }

    /// Deletes the key, if it is there.
    pub fn delete(&mut self, key: impl KeyArg<K>) -> Result<(), StoreError> {
        self.raw.delete(&key.to_bytes())
    }

    /// Deletes every row within `range`.
    pub fn delete_range<A: KeyArg<K>>(
        &mut self,
        range: impl RangeBounds<A>,
    ) -> Result<(), StoreError> {
        let low = encode_bound(range.start_bound());
        let high = encode_bound(range.end_bound());
        self.raw.delete_range(as_ref(&low), as_ref(&high))
    }

    /// Deletes every row.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.raw.delete_range(Bound::Unbounded, Bound::Unbounded)
    }

    fn decode_old(&self, old: Option<Vec<u8>>) -> Result<Option<V>, StoreError> {
        match old {
            Some(bytes) => V::decode(&bytes)
                .map(Some)
                .ok_or_else(|| bad_value(self.name, &bytes)),
            None => Ok(None),
        }
    }
}

/// Typed tables of a read transaction.
impl dyn RawRead + '_ {
    pub fn open<K: Key, V: Value>(&self, def: Def<K, V>) -> Result<Table<'_, K, V>, StoreError> {
        Ok(Table {
            raw: self.table(def.name)?,
            name: def.name,
            types: PhantomData,
        })
    }
}

/// Typed tables of a write transaction.
impl dyn RawWrite + '_ {
    pub fn open<K: Key, V: Value>(&self, def: Def<K, V>) -> Result<TableMut<'_, K, V>, StoreError> {
        Ok(TableMut {
            raw: self.table(def.name)?,
            name: def.name,
            types: PhantomData,
        })
    }

    /// The table for reading only, within this transaction.
    pub fn read<K: Key, V: Value>(&self, def: Def<K, V>) -> Result<Table<'_, K, V>, StoreError> {
        let raw: Box<dyn RawTableMut + '_> = self.table(def.name)?;
        Ok(Table {
            raw,
            name: def.name,
            types: PhantomData,
        })
    }
}

/// How many rows the first chunk of a range holds; each later chunk is twice as big, up to
/// [`MAX_CHUNK`]. A walk that stops after a row or two reads little; a long one reads in
/// few round trips.
const FIRST_CHUNK: usize = 16;
const MAX_CHUNK: usize = 1024;

/// The rows of a range, read a chunk at a time.
pub struct Iter<'a, K, V> {
    raw: &'a dyn RawTable,
    name: &'static str,
    low: Bound<Vec<u8>>,
    high: Bound<Vec<u8>>,
    reverse: bool,
    started: bool,
    done: bool,
    chunk: usize,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    types: PhantomData<fn() -> (K, V)>,
}

impl<'a, K: Key, V: Value> Iter<'a, K, V> {
    fn new(
        raw: &'a dyn RawTable,
        name: &'static str,
        low: Bound<Vec<u8>>,
        high: Bound<Vec<u8>>,
    ) -> Self {
        Iter {
            raw,
            name,
            low,
            high,
            reverse: false,
            started: false,
            done: false,
            chunk: FIRST_CHUNK,
            buffer: VecDeque::new(),
            types: PhantomData,
        }
    }

    /// The same rows from the other end. Only before the first row is read.
    #[allow(clippy::should_implement_trait)]
    pub fn rev(mut self) -> Self {
        debug_assert!(!self.started, "reversed after reading");
        self.reverse = !self.reverse;
        self
    }

    fn fill(&mut self) -> Result<(), StoreError> {
        self.started = true;
        let rows = self.raw.range(
            as_ref(&self.low),
            as_ref(&self.high),
            self.reverse,
            self.chunk,
        )?;
        if rows.len() < self.chunk {
            self.done = true;
        }
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        if let Some((last, _)) = rows.last() {
            // The next chunk starts past the last key read.
            if self.reverse {
                self.high = Bound::Excluded(last.clone());
            } else {
                self.low = Bound::Excluded(last.clone());
            }
        }
        self.buffer.extend(rows);
        Ok(())
    }
}

impl<K: Key, V: Value> Iterator for Iter<'_, K, V> {
    type Item = Result<(K, V), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty()
            && !self.done
            && let Err(error) = self.fill()
        {
            self.done = true;
            return Some(Err(error));
        }
        let (key, value) = self.buffer.pop_front()?;
        let Some(decoded_key) = K::from_bytes(&key) else {
            return Some(Err(bad_key(self.name, &key)));
        };
        match V::decode(&value) {
            Some(value) => Some(Ok((decoded_key, value))),
            None => Some(Err(bad_value(self.name, &value))),
        }
    }
}

fn encode_bound<K, A: KeyArg<K>>(bound: Bound<&A>) -> Bound<Vec<u8>> {
    match bound {
        Bound::Included(key) => Bound::Included(key.to_bytes()),
        Bound::Excluded(key) => Bound::Excluded(key.to_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

pub fn as_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key),
        Bound::Excluded(key) => Bound::Excluded(key),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn bad_key(table: &'static str, bytes: &[u8]) -> StoreError {
    StoreError::BadKey {
        table,
        detail: format!("a key of {} bytes does not decode", bytes.len()),
    }
}

fn bad_value(table: &'static str, bytes: &[u8]) -> StoreError {
    StoreError::BadKey {
        table,
        detail: format!("a value of {} bytes does not decode", bytes.len()),
    }
}

#[cfg(test)]
mod tests;
