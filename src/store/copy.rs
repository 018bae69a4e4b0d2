//! `incidentd store copy`: a whole store from a redb file or a PostgreSQL database into
//! another (file to database, database to file, or the same kind), then verified.
//!
//! Every table is copied as it is stored: the raw bytes of its keys and values, whatever the
//! records hold, so the copy reads the same in any build that reads the original. The
//! tables are those the source holds ([`RawRead::tables`]: every `kv/` table of a file,
//! every table with a row in PostgreSQL), not a list in this build: a table this build does
//! not know (one a newer build of the same layout added) is copied too.
//!
//! The source is read in one snapshot (a redb read transaction, a `REPEATABLE READ`
//! transaction in PostgreSQL), a chunk of rows at a time: memory holds a chunk, never a
//! table. What the destination takes is committed only once verified, so a failure leaves
//! it as it was:
//!
//! - a redb file is written under `<path>.copying` (committed every [`Options::commit_rows`]
//!   rows or [`Options::commit_bytes`] bytes), verified there, then renamed into place; a
//!   failure removes the partial file and never touches `<path>`;
//! - PostgreSQL takes the whole copy in one transaction (the client sends it a bounded
//!   buffer at a time), verified inside it before `COMMIT`; a failure rolls it back.
//!
//! In both, `meta.schema_version` is written last.
//!
//! Verification: for every table of either side, the row count and the SHA-256 of its rows
//! in key order (each key and value with its length) read back from the destination equal
//! those of the rows read from the source. Both backends answer a range in the order of the
//! key bytes, so equal tables give equal sums.
//!
//! Refused, with nothing written: a destination that holds any row (other than the layout
//! version a new store is created with) unless `force` (then its tables are cleared in the
//! same transaction, or the file replaced); a PostgreSQL side a replica leads right now (an
//! unexpired lease; the destination's transaction also starts only while nobody holds one,
//! and keeps the lease row locked to its end, so none takes over meanwhile); a source
//! written by a newer layout; a redb file another process has open (a running incidentd).
//! The connection string is never printed: a database is named by its host, port and name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::kv::postgres::{Fencing, PgConfig, Postgres, redacted};
use super::kv::{Backend, KeyArg, RawRead, RawTable, RawWrite, Readable, Rows, as_ref};
use super::{Inner, META, META_SCHEMA, SCHEMA_VERSION, Store, StoreError};

/// Rows read from the source per range request.
const READ_CHUNK: usize = 1024;

/// Where a store is: a redb file or a PostgreSQL database.
#[derive(Clone, Debug)]
pub enum Location {
    File(PathBuf),
    Postgres(PgConfig),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is a database, `env:VAR` the database whose URL
    /// the environment variable `VAR` holds (the password stays off the command line),
    /// anything else the path of a redb file. `env` looks a variable up. The message of an
    /// error never quotes the URL.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Location, String> {
        if let Some(var) = text.strip_prefix("env:") {
            let Some(url) = env(var).map(|url| url.trim().to_owned()) else {
                return Err(format!("environment variable {var} is not set"));
            };
            if url.is_empty() {
                return Err(format!("environment variable {var} is empty"));
            }
            if !is_url(&url) {
                return Err(format!(
                    "environment variable {var} must hold a postgres:// or postgresql:// URL"
                ));
            }
            return postgres(&url).map_err(|error| format!("environment variable {var}: {error}"));
        }
        if is_url(text) {
            return postgres(text);
        }
        if text.trim().is_empty() {
            return Err("an empty path".to_owned());
        }
        Ok(Location::File(PathBuf::from(text)))
    }

    /// The file's path, or the database's host, port and name: never a user or password.
    pub fn describe(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::Postgres(config) => format!("PostgreSQL {}", redacted(&config.url)),
        }
    }
}

fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// A database's settings for the copy: two connections (a read and a write transaction at
/// most at once) and the server's own statement timeout (a large table's delete or the
/// commit of a large copy may take long).
fn postgres(url: &str) -> Result<Location, String> {
    if let Err(error) = url.parse::<tokio_postgres::Config>() {
        // The parser's messages name an option, never its value.
        return Err(format!("not a valid PostgreSQL URL: {error}"));
    }
    Ok(Location::Postgres(PgConfig {
        url: url.to_owned(),
        pool_size: 2,
        statement_timeout: Duration::ZERO,
    }))
}

/// How the copy writes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Clear a destination that holds data, rather than refuse it.
    pub force: bool,
    /// A redb destination commits after this many rows…
    pub commit_rows: usize,
    /// …or this many bytes of keys and values, whichever comes first.
    pub commit_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            force: false,
            commit_rows: 20_000,
            commit_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One table as copied and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCopy {
    pub name: String,
    pub rows: u64,
    /// SHA-256 over its rows in key order, each as the key's length (8 bytes, big-endian),
    /// the key, the value's length and the value.
    pub sha256: [u8; 32],
}

/// What a copy did: every table of either side, by name.
#[derive(Clone, Debug)]
pub struct Copied {
    pub from: String,
    pub to: String,
    pub tables: Vec<TableCopy>,
}

impl Copied {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|table| table.rows).sum()
    }

    /// What `store copy` prints: a line per table (`incidents.v1  1234 rows  ok`), then
    /// the total.
    pub fn render(&self) -> String {
        let name_width = self.tables.iter().map(|t| t.name.len()).max().unwrap_or(0);
        let rows_width = (self.tables.iter())
            .map(|t| t.rows.to_string().len())
            .max()
            .unwrap_or(1);
        let mut text = String::new();
        for table in &self.tables {
            let _ = writeln!(
                text,
                "{:<name_width$}  {:>rows_width$} rows  ok",
                table.name, table.rows
            );
        }
        let _ = writeln!(
            text,
            "total: {} tables, {} rows copied from {} to {} and verified (row counts and SHA-256 of every table)",
            self.tables.len(),
            self.rows(),
            self.from,
            self.to
        );
        text
    }
}

/// Why a copy did not happen or did not complete; one line each.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("--{flag}: {message}")]
    Argument { flag: &'static str, message: String },
    #[error("the source {0} does not exist")]
    NoSource(String),
    #[error("the source {0} holds no incidentd store (no incidentd_schema table)")]
    NoStore(String),
    #[error("the source and the destination are the same store ({0})")]
    Same(String),
    #[error(
        "the destination {at} already holds data ({tables}): nothing was copied; --force clears it and copies over it"
    )]
    NotEmpty { at: String, tables: String },
    #[error(
        "the {role} {at} is in use: replica {holder} leads it right now (its lease has not expired); stop the replicas first"
    )]
    Leading {
        role: &'static str,
        at: String,
        holder: String,
    },
    #[error("the {role} {at} is open in another process (a running incidentd?); stop it first")]
    InUse { role: &'static str, at: String },
    #[error("the {role} {at}: {source}")]
    Open {
        role: &'static str,
        at: String,
        source: Box<StoreError>,
    },
    #[error("copying to {at} failed: {source}; {left}")]
    Failed {
        at: String,
        source: Box<StoreError>,
        left: String,
    },
    #[error("the copy in {at} does not match the source: {detail}; {left}")]
    Mismatch {
        at: String,
        detail: String,
        left: String,
    },
}

/// Copies every table of the store at `from` into `to`, verifies it and answers what it
/// copied. See the module's documentation for what is refused and what a failure leaves.
pub fn copy(from: &Location, to: &Location, options: &Options) -> Result<Copied, CopyError> {
    if let Some(same) = same_store(from, to) {
        return Err(CopyError::Same(same));
    }
    let source = open_source(from)?;
    let at = to.describe();
    let tables = match to {
        Location::File(path) => into_file(&source, path, options)?,
        Location::Postgres(config) => into_postgres(&source, config, options)?,
    };
    Ok(Copied {
        from: from.describe(),
        to: at,
        tables,
    })
}

/// The two locations name the same store: the same file, or the same database.
fn same_store(from: &Location, to: &Location) -> Option<String> {
    match (from, to) {
        (Location::File(a), Location::File(b)) => {
            let same = match (a.canonicalize(), b.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            };
            same.then(|| a.display().to_string())
        }
        (Location::Postgres(a), Location::Postgres(b)) => {
            let (a, b) = (redacted(&a.url), redacted(&b.url));
            (a == b).then(|| format!("PostgreSQL {a}"))
        }
        _ => None,
    }
}

/// The source, opened as `incidentd serve` would (a file of an older layout is upgraded, a
/// newer layout or a damaged file refused), never written by the copy: a database with no
/// fencing epoch refuses every write transaction.
fn open_source(at: &Location) -> Result<Store, CopyError> {
    const ROLE: &str = "source";
    let describe = at.describe();
    let open_err = |source: StoreError| opening_failed(ROLE, &describe, source);
    match at {
        Location::File(path) => {
            match std::fs::metadata(path) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    return Err(CopyError::NoSource(describe));
                }
                Err(error) => return Err(open_err(super::io_err(error))),
                Ok(meta) if !meta.is_file() => {
                    return Err(CopyError::Argument {
                        flag: "from",
                        message: format!("{describe} is not a file"),
                    });
                }
                Ok(_) => {}
            }
            Store::open(path).map_err(open_err)
        }
        Location::Postgres(config) => {
            let postgres = Postgres::connect_existing(config, Fencing::Lease)
                .map_err(open_err)?
                .ok_or_else(|| CopyError::NoStore(describe.clone()))?;
            refuse_leader(&postgres, ROLE, &describe)?;
            let found = (|| {
                let txn = postgres.read()?;
                txn.open(META)?.get(META_SCHEMA)
            })()
            .map_err(open_err)?;
            if let Some(found) = found.filter(|found| *found > SCHEMA_VERSION) {
                return Err(open_err(StoreError::NewerSchema { found }));
            }
            Ok(Store {
                inner: Arc::new(Inner::Postgres(postgres)),
            })
        }
    }
}

fn opening_failed(role: &'static str, at: &str, source: StoreError) -> CopyError {
    if matches!(source, StoreError::Redb(redb::Error::DatabaseAlreadyOpen)) {
        return CopyError::InUse {
            role,
            at: at.to_owned(),
        };
    }
    CopyError::Open {
        role,
        at: at.to_owned(),
        source: Box::new(source),
    }
}

/// Refuses a database a replica leads now (its lease not expired).
fn refuse_leader(postgres: &Postgres, role: &'static str, at: &str) -> Result<(), CopyError> {
    match postgres.leader() {
        Ok(Some(leader)) if !leader.expired => Err(CopyError::Leading {
            role,
            at: at.to_owned(),
            holder: leader.holder,
        }),
        Ok(_) => Ok(()),
        Err(error) => Err(opening_failed(role, at, error)),
    }
}

/// The destination's tables that hold rows, with their counts: a new store holds only its
/// layout version (`meta.schema_version`), which does not count.
fn held_data(txn: &dyn RawRead) -> Result<Vec<(String, u64)>, StoreError> {
    let schema_key = KeyArg::<String>::to_bytes(&META_SCHEMA);
    let mut held = Vec::new();
    for name in txn.tables()? {
        let name = intern(&name);
        let table = txn.table(name)?;
        let mut rows = table.len()?;
        if name == META.name && table.get(&schema_key)?.is_some() {
            rows -= 1;
        }
        if rows > 0 {
            held.push((name.to_owned(), rows));
        }
    }
    Ok(held)
}

fn refuse_data(
    txn: &dyn RawRead,
    options: &Options,
    at: &str,
    role_err: impl Fn(StoreError) -> CopyError,
) -> Result<(), CopyError> {
    let held = held_data(txn).map_err(role_err)?;
    if held.is_empty() || options.force {
        return Ok(());
    }
    let mut tables = String::new();
    for (i, (name, rows)) in held.iter().enumerate() {
        if i == 3 {
            let _ = write!(tables, ", {} more tables", held.len() - 3);
            break;
        }
        let sep = if i == 0 { "" } else { ", " };
        let unit = if *rows == 1 { "row" } else { "rows" };
        let _ = write!(tables, "{sep}{name}: {rows} {unit}");
    }
    Err(CopyError::NotEmpty {
        at: at.to_owned(),
        tables,
    })
}

/// Into a redb file: written and verified under `<path>.copying`, renamed into place.
fn into_file(source: &Store, path: &Path, options: &Options) -> Result<Vec<TableCopy>, CopyError> {
    const ROLE: &str = "destination";
    let at = path.display().to_string();
    let open_err = |source: StoreError| opening_failed(ROLE, &at, source);
    if path.exists() {
        // Opened as `serve` would: not while another process has it open, not damaged.
        let existing = Store::open(path).map_err(open_err)?;
        let txn = existing.backend().read().map_err(open_err)?;
        refuse_data(&*txn, options, &at, open_err)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".copying");
    let temporary = PathBuf::from(temporary);
    let left = format!(
        "nothing was written to {at} (the partial copy {} was removed)",
        temporary.display()
    );
    let failed = |source: StoreError| CopyError::Failed {
        at: at.clone(),
        source: Box::new(source),
        left: left.clone(),
    };
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(failed(super::io_err(error)));
        }
        _ => {}
    }
    let result = (|| {
        let store = Store::open(&temporary).map_err(failed)?;
        let backend = store.backend();
        let mut writer = Writer {
            backend,
            txn: Some(backend.write().map_err(failed)?),
            limit: Some((options.commit_rows.max(1), options.commit_bytes.max(1))),
            rows: 0,
            bytes: 0,
        };
        let copied = copy_rows(source, &mut writer).map_err(failed)?;
        writer.commit().map_err(failed)?;
        let read = backend.read().map_err(failed)?;
        let tables = verify(&copied, &ReadView(&*read), &at, &left)?;
        drop(read);
        drop(writer);
        drop(store);
        // Durable before it takes the destination's name, and the name durable after.
        std::fs::File::open(&temporary)
            .and_then(|file| file.sync_all())
            .map_err(|error| failed(super::io_err(error)))?;
        std::fs::rename(&temporary, path).map_err(|error| failed(super::io_err(error)))?;
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Err(error) = std::fs::File::open(dir).and_then(|dir| dir.sync_all()) {
            tracing::warn!(%error, "syncing the destination's directory");
        }
        Ok(tables)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Into PostgreSQL: one transaction, verified before it commits.
fn into_postgres(
    source: &Store,
    config: &PgConfig,
    options: &Options,
) -> Result<Vec<TableCopy>, CopyError> {
    const ROLE: &str = "destination";
    let at = format!("PostgreSQL {}", redacted(&config.url));
    let open_err = |source: StoreError| opening_failed(ROLE, &at, source);
    // Its write transactions start only while no replica leads, and keep it so.
    let postgres = Postgres::connect_with(config, Fencing::NoLeader).map_err(open_err)?;
    refuse_leader(&postgres, ROLE, &at)?;
    {
        let txn = postgres.read().map_err(open_err)?;
        refuse_data(&*txn, options, &at, open_err)?;
    }
    let left = format!("the transaction was rolled back: {at} is as it was");
    let failed = |source: StoreError| CopyError::Failed {
        at: at.clone(),
        source: Box::new(source),
        left: left.clone(),
    };
    let mut writer = Writer {
        backend: &postgres,
        txn: Some(postgres.write().map_err(failed)?),
        limit: None,
        rows: 0,
        bytes: 0,
    };
    let copied = copy_rows(source, &mut writer).map_err(failed)?;
    let tables = {
        let txn = writer.txn.as_deref().expect("the open transaction");
        verify(&copied, &WriteView(txn), &at, &left)?
    };
    writer.commit().map_err(|source| CopyError::Failed {
        at: at.clone(),
        source: Box::new(source),
        left: format!(
            "{at} is as it was unless the server committed before the connection failed: \
             copy again with --force to be sure"
        ),
    })?;
    Ok(tables)
}

/// Writes into the destination: in one transaction (`limit` `None`), or committing each
/// time the rows or bytes since the last commit reach the limit.
struct Writer<'b> {
    backend: &'b dyn Backend,
    txn: Option<Box<dyn RawWrite + 'b>>,
    limit: Option<(usize, usize)>,
    rows: usize,
    bytes: usize,
}

impl Writer<'_> {
    fn txn(&self) -> &dyn RawWrite {
        self.txn.as_deref().expect("the open transaction")
    }

    fn put(&mut self, table: &'static str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut bytes = 0;
        {
            let mut raw = self.txn().table(table)?;
            for (key, value) in rows {
                raw.put(key, value)?;
                bytes += key.len() + value.len();
            }
        }
        self.rows += rows.len();
        self.bytes += bytes;
        if let Some((rows, bytes)) = self.limit
            && (self.rows >= rows || self.bytes >= bytes)
        {
            self.commit()?;
            self.txn = Some(self.backend.write()?);
        }
        Ok(())
    }

    /// Empties every table the destination holds.
    fn clear(&mut self) -> Result<(), StoreError> {
        let txn = self.txn();
        for name in txn.tables()? {
            txn.table(intern(&name))?
                .delete_range(Bound::Unbounded, Bound::Unbounded)?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.rows = 0;
        self.bytes = 0;
        match self.txn.take() {
            Some(txn) => txn.commit(),
            None => Ok(()),
        }
    }
}

/// A table's row count and sum, as it is read.
#[derive(Clone)]
struct Sum {
    rows: u64,
    hasher: Sha256,
}

impl Sum {
    fn new() -> Sum {
        Sum {
            rows: 0,
            hasher: Sha256::new(),
        }
    }

    fn add(&mut self, rows: &Rows) {
        for (key, value) in rows {
            self.rows += 1;
            self.hasher.update((key.len() as u64).to_be_bytes());
            self.hasher.update(key);
            self.hasher.update((value.len() as u64).to_be_bytes());
            self.hasher.update(value);
        }
    }

    fn finish(self) -> (u64, [u8; 32]) {
        (self.rows, self.hasher.finalize().into())
    }
}

/// Every row of a table, in key order, a chunk at a time.
fn each_chunk(
    table: &dyn RawTable,
    mut chunk: impl FnMut(&Rows) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut low: Bound<Vec<u8>> = Bound::Unbounded;
    loop {
        let rows = table.range(as_ref(&low), Bound::Unbounded, false, READ_CHUNK)?;
        chunk(&rows)?;
        match rows.last() {
            Some((last, _)) if rows.len() == READ_CHUNK => low = Bound::Excluded(last.clone()),
            _ => return Ok(()),
        }
    }
}

/// Clears the destination, then copies every table of the source's snapshot into it,
/// `meta.schema_version` last. Answers each source table's count and sum.
fn copy_rows(
    source: &Store,
    writer: &mut Writer<'_>,
) -> Result<BTreeMap<&'static str, (u64, [u8; 32])>, StoreError> {
    writer.clear()?;
    let schema_key = KeyArg::<String>::to_bytes(&META_SCHEMA);
    let mut schema_row = None;
    let read = source.backend().read()?;
    let mut copied = BTreeMap::new();
    for name in read.tables()? {
        let name = intern(&name);
        let table = read.table(name)?;
        let mut sum = Sum::new();
        each_chunk(&*table, |rows| {
            sum.add(rows);
            if name == META.name
                && let Some(at) = rows.iter().position(|(key, _)| *key == schema_key)
            {
                let mut rows = rows.clone();
                schema_row = Some(rows.remove(at));
                return writer.put(name, &rows);
            }
            writer.put(name, rows)
        })?;
        let (rows, sha256) = sum.finish();
        tracing::info!(table = name, rows, "copied");
        copied.insert(name, (rows, sha256));
    }
    if let Some(row) = schema_row {
        writer.put(META.name, &[row])?;
    }
    Ok(copied)
}

/// The destination's tables for reading: a read transaction's, or those of the write
/// transaction about to commit (with its own writes).
trait View {
    fn tables(&self) -> Result<Vec<String>, StoreError>;
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTable + 'a>, StoreError>;
}

struct ReadView<'t>(&'t dyn RawRead);

impl View for ReadView<'_> {
    fn tables(&self) -> Result<Vec<String>, StoreError> {
        self.0.tables()
    }
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTable + 'a>, StoreError> {
        self.0.table(name)
    }
}

struct WriteView<'t>(&'t dyn RawWrite);

impl View for WriteView<'_> {
    fn tables(&self) -> Result<Vec<String>, StoreError> {
        self.0.tables()
    }
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTable + 'a>, StoreError> {
        Ok(self.0.table(name)?)
    }
}

/// Reads every table of either side back from the destination: same rows, same sums.
fn verify(
    copied: &BTreeMap<&'static str, (u64, [u8; 32])>,
    destination: &dyn View,
    at: &str,
    left: &str,
) -> Result<Vec<TableCopy>, CopyError> {
    let failed = |source: StoreError| CopyError::Failed {
        at: at.to_owned(),
        source: Box::new(source),
        left: left.to_owned(),
    };
    let mut names: BTreeSet<&'static str> = copied.keys().copied().collect();
    for name in destination.tables().map_err(failed)? {
        names.insert(intern(&name));
    }
    let empty = Sum::new().finish();
    let mut tables = Vec::new();
    for name in names {
        let table = destination.table(name).map_err(failed)?;
        let mut sum = Sum::new();
        each_chunk(&*table, |rows| {
            sum.add(rows);
            Ok(())
        })
        .map_err(failed)?;
        let found = sum.finish();
        let want = copied.get(name).copied().unwrap_or(empty);
        if found != want {
            let detail = if found.0 == want.0 {
                format!(
                    "{name}: {} rows as in the source, but not the same (SHA-256 differs)",
                    want.0
                )
            } else {
                format!(
                    "{name}: {} rows in the source, {} in the copy",
                    want.0, found.0
                )
            };
            return Err(CopyError::Mismatch {
                at: at.to_owned(),
                detail,
                left: left.to_owned(),
            });
        }
        tables.push(TableCopy {
            name: name.to_owned(),
            rows: want.0,
            sha256: want.1,
        });
    }
    Ok(tables)
}

/// A table's name as the key-value layer takes it (`&'static`): the name of a table found
/// in a store, kept once for the life of the process (a store has a few dozen).
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = names.get(name) {
        return found;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Every row of every table of a file, as stored (a table without rows is left out:
    /// it reads as one never created).
    fn dump(path: &Path) -> BTreeMap<String, Rows> {
        let store = Store::open(path).unwrap();
        let txn = store.backend().read().unwrap();
        let mut tables = BTreeMap::new();
        for name in txn.tables().unwrap() {
            let table = txn.table(intern(&name)).unwrap();
            let mut rows = Vec::new();
            each_chunk(&*table, |chunk| {
                rows.extend(chunk.iter().cloned());
                Ok(())
            })
            .unwrap();
            if !rows.is_empty() {
                tables.insert(name, rows);
            }
        }
        tables
    }

    /// Writes raw rows into the store's tables, one transaction.
    fn put_raw(store: &Store, rows: &[(&str, Vec<u8>, Vec<u8>)]) {
        let txn = store.backend().write().unwrap();
        for (table, key, value) in rows {
            txn.table(intern(table)).unwrap().put(key, value).unwrap();
        }
        txn.commit().unwrap();
    }

    /// A store with rows in known tables and in one this build does not know, enough of
    /// them for several read chunks.
    fn filled(path: &Path) {
        let store = Store::open(path).unwrap();
        let mut rows = vec![
            ("dead_letters.v1", b"hook\0".to_vec(), b"{}".to_vec()),
            ("future.v9", vec![0, 0, 0], vec![]),
            ("future.v9", vec![0xff; 40], vec![7; 100_000]),
        ];
        for n in 0u64..3000 {
            rows.push((
                "timeline.v1",
                n.to_be_bytes().to_vec(),
                format!("entry {n}").into_bytes(),
            ));
        }
        put_raw(&store, &rows);
        let txn = store.backend().write().unwrap();
        txn.open(META)
            .unwrap()
            .put("next_incident_id", 42u64)
            .unwrap();
        txn.commit().unwrap();
    }

    fn options() -> Options {
        Options {
            force: false,
            commit_rows: 500,
            commit_bytes: 1 << 20,
        }
    }

    fn file(path: &Path) -> Location {
        Location::File(path.to_owned())
    }

    #[test]
    fn locations_are_files_urls_or_urls_from_the_environment() {
        let env = HashMap::from([
            (
                "DB_URL",
                "postgresql://incidentd:hunter2@db.example:6432/desk",
            ),
            ("A_PATH", "data/incidentd.redb"),
            ("SPACES", "  "),
            ("FROM_A_FILE", "postgres://incidentd@db.example/desk\n"),
        ]);
        let env = |name: &str| env.get(name).map(|v| (*v).to_owned());
        let parse = |text: &str| Location::parse(text, &env);

        let url = parse("postgres://incidentd:hunter2@db.example/desk").unwrap();
        assert!(matches!(&url, Location::Postgres(c) if c.url.contains("hunter2")));
        assert_eq!(url.describe(), "PostgreSQL db.example:5432/desk");
        assert!(!format!("{url:?}").contains("hunter2"));
        let from_env = parse("env:DB_URL").unwrap();
        assert_eq!(from_env.describe(), "PostgreSQL db.example:6432/desk");
        let trimmed = parse("env:FROM_A_FILE").unwrap();
        assert_eq!(trimmed.describe(), "PostgreSQL db.example:5432/desk");
        assert!(matches!(
            parse("data/incidentd.redb").unwrap(),
            Location::File(path) if path == Path::new("data/incidentd.redb")
        ));

        assert_eq!(
            parse("env:NOPE").unwrap_err(),
            "environment variable NOPE is not set"
        );
        assert_eq!(
            parse("env:SPACES").unwrap_err(),
            "environment variable SPACES is empty"
        );
        assert_eq!(
            parse("env:A_PATH").unwrap_err(),
            "environment variable A_PATH must hold a postgres:// or postgresql:// URL"
        );
        let bad = parse("postgres://incidentd:hunter2@db.example:port/desk").unwrap_err();
        assert!(bad.starts_with("not a valid PostgreSQL URL"), "{bad}");
        assert!(!bad.contains("hunter2"), "{bad}");
        assert_eq!(parse("").unwrap_err(), "an empty path");
    }

    #[test]
    fn a_file_is_copied_whole_in_chunks_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.redb"), dir.path().join("b/c.redb"));
        filled(&from);

        let copied = copy(&file(&from), &file(&to), &options()).unwrap();
        assert_eq!(dump(&to), dump(&from));
        assert!(!dir.path().join("b/c.redb.copying").exists());
        let rows = |name: &str| {
            let table = copied.tables.iter().find(|t| t.name == name);
            table.unwrap_or_else(|| panic!("{name} in {copied:?}")).rows
        };
        assert_eq!(rows("timeline.v1"), 3000);
        assert_eq!(rows("future.v9"), 2, "a table this build does not know");
        assert_eq!(rows("meta"), 2);
        assert_eq!(copied.rows(), 3000 + 2 + 1 + 2);
        // The copy opens as a store of this layout.
        let store = Store::open(&to).unwrap();
        let txn = store.backend().read().unwrap();
        let meta = txn.open(META).unwrap();
        assert_eq!(meta.get(META_SCHEMA).unwrap(), Some(SCHEMA_VERSION));

        assert_eq!(
            copied.render(),
            format!(
                "\
dead_letters.v1          1 rows  ok
future.v9                2 rows  ok
meta                     2 rows  ok
notifications.v1         0 rows  ok
notifications_due.v1     0 rows  ok
timeline.v1           3000 rows  ok
total: 6 tables, 3005 rows copied from {} to {} and verified (row counts and SHA-256 of every table)
",
                from.display(),
                to.display()
            )
        );
    }

    #[test]
    fn a_destination_with_data_is_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
        filled(&from);
        // A new store (only its layout version) is empty.
        drop(Store::open(&to).unwrap());
        copy(&file(&from), &file(&to), &options()).unwrap();

        put_raw(
            &Store::open(&to).unwrap(),
            &[("sessions.v1", vec![1], vec![2])],
        );
        let before = dump(&to);
        let error = copy(&file(&from), &file(&to), &options()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the destination {} already holds data (dead_letters.v1: 1 row, future.v9: 2 rows, meta: 1 row, 2 more tables): nothing was copied; --force clears it and copies over it",
                to.display()
            )
        );
        assert_eq!(dump(&to), before, "untouched");

        let forced = Options {
            force: true,
            ..options()
        };
        copy(&file(&from), &file(&to), &forced).unwrap();
        assert_eq!(dump(&to), dump(&from), "sessions.v1 is gone");
    }

    #[test]
    fn refusals_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
        let missing = copy(&file(&from), &file(&to), &options()).unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!("the source {} does not exist", from.display())
        );
        assert!(!from.exists() && !to.exists());

        filled(&from);
        let same = copy(&file(&from), &file(&from), &options()).unwrap_err();
        assert!(matches!(same, CopyError::Same(_)), "{same}");
        let pg = |url: &str| Location::parse(url, &|_| None).unwrap();
        let same = copy(
            &pg("postgres://a:one@db.example/desk"),
            &pg("postgresql://b:two@db.example:5432/desk"),
            &options(),
        )
        .unwrap_err();
        assert_eq!(
            same.to_string(),
            "the source and the destination are the same store (PostgreSQL db.example:5432/desk)"
        );

        // Open in another process (here, this one): redb's lock.
        let open = Store::open(&from).unwrap();
        let in_use = copy(&file(&from), &file(&to), &options()).unwrap_err();
        assert_eq!(
            in_use.to_string(),
            format!(
                "the source {} is open in another process (a running incidentd?); stop it first",
                from.display()
            )
        );
        drop(open);

        // A newer layout.
        {
            let store = Store::open(&from).unwrap();
            let txn = store.backend().write().unwrap();
            txn.open(META)
                .unwrap()
                .put(META_SCHEMA, SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let newer = copy(&file(&from), &file(&to), &options()).unwrap_err();
        assert!(
            newer
                .to_string()
                .contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{newer}"
        );
        assert!(!to.exists());
        assert!(!dir.path().join("b.redb.copying").exists());
    }

    #[test]
    fn a_failed_copy_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a.redb");
        filled(&from);
        // The destination's directory cannot be made: a file is in the way.
        std::fs::write(dir.path().join("blocker"), b"").unwrap();
        let to = dir.path().join("blocker/b.redb");
        let error = copy(&file(&from), &file(&to), &options()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("copying to {} failed: ", to.display())),
            "{text}"
        );
        assert!(text.ends_with("was removed)"), "{text}");
    }
}
