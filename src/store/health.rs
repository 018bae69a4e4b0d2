//! Whether a store file can be trusted, found without writing to it, and what to do when
//! it cannot.
//!
//! redb trusts a file that was shut down cleanly: an open of one damaged outside redb may
//! panic, and it marks the file open (page 0) before it reads anything else, so a damaged
//! store would be made worse by the start that finds it. [`check`] therefore verifies every
//! page's checksum through redb's own integrity check, run on a [`CopyOnWrite`] view of the
//! file: redb reads the file and whatever it writes (the header, a repair) stays in memory.
//! [`repair`] is the one path that lets redb write a repair to the file, and only after a
//! copy of it is made.
//!
//! [`guarded`] is the last line of defence around any call into redb that reads the file:
//! a panic inside redb becomes [`StoreError::Panicked`], without the panic message on
//! stderr (it is in the error).

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use redb::StorageBackend;

use super::{StoreError, db_err};

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Every page of the committed trees verifies.
    Sound,
    /// The file is damaged; why, in redb's words.
    Damaged(String),
}

/// Verifies the store at `path` without writing to it: every committed page's checksum,
/// and that redb can open it. A store that was not shut down cleanly (a crash) is sound if
/// redb's crash recovery succeeds, as it will at the next start.
pub fn check(path: &Path) -> Result<Health, StoreError> {
    let file = File::open(path).map_err(|e| db_err(redb::StorageError::Io(e)))?;
    let backend = CopyOnWrite::new(file).map_err(|e| db_err(redb::StorageError::Io(e)))?;
    let verdict = guarded(|| {
        let mut db = redb::Builder::new()
            .set_cache_size(CHECK_CACHE_BYTES)
            .create_with_backend(backend)
            .map_err(db_err)?;
        let clean = db.check_integrity().map_err(db_err)?;
        Ok(clean)
    });
    match verdict {
        Ok(true) => Ok(Health::Sound),
        Ok(false) => Ok(Health::Damaged(
            "some pages fail their checksums; redb can repair the file".to_owned(),
        )),
        Err(StoreError::Redb(error)) if is_damage(&error) => Ok(Health::Damaged(error.to_string())),
        Err(StoreError::Panicked { message, .. }) => Ok(Health::Damaged(format!(
            "reading it makes the storage engine fail: {message}"
        ))),
        Err(error) => Err(error),
    }
}

/// Verifies, without writing to it, what start-up reads of the store at `path`: opened
/// read-only, its counters, timers, silences, incidents not closed and detectors are read
/// and decoded as [`super::Store::load_at`] does. A damaged page there makes redb fail or
/// panic; here that is [`Health::Damaged`], before anything opened the file for writing
/// (which marks it open in its header at once). It costs one more start-up read (0.5 s at
/// 1,000,000 stored incidents), where [`check`] verifies every page (1.2 s more).
///
/// A store not shut down cleanly cannot be opened read-only: redb must repair it first, so
/// it gets the full [`check`], which runs that repair in memory.
pub fn readable(path: &Path) -> Result<Health, StoreError> {
    let opened = guarded(|| {
        redb::Builder::new()
            .set_cache_size(CHECK_CACHE_BYTES)
            .open_read_only(path)
            .map_err(db_err)
    });
    let db = match opened {
        Ok(db) => db,
        Err(StoreError::Redb(redb::Error::RepairAborted)) => return check(path),
        Err(error) => return damage_or(error),
    };
    let read = guarded(|| {
        use redb::ReadableDatabase;
        let txn = db.begin_read().map_err(db_err)?;
        super::read_loaded(&super::kv::redb::Read(txn), None).map(drop)
    });
    drop(db);
    match read {
        Ok(()) => Ok(Health::Sound),
        // An older layout (or a store that never got all its tables): opening it for
        // writing creates or upgrades them, or refuses a newer layout.
        Err(StoreError::Redb(redb::Error::TableDoesNotExist(_))) => Ok(Health::Sound),
        Err(error) => damage_or(error),
    }
}

/// A damaged file as [`Health::Damaged`]; any other error (the file is unreadable, say)
/// as itself.
fn damage_or(error: StoreError) -> Result<Health, StoreError> {
    match error {
        StoreError::Redb(error) if is_damage(&error) => Ok(Health::Damaged(error.to_string())),
        StoreError::Panicked { message } => Ok(Health::Damaged(format!(
            "reading it makes the storage engine fail: {message}"
        ))),
        StoreError::Corrupt { .. } | StoreError::Inconsistent { .. } => {
            Ok(Health::Damaged(error.to_string()))
        }
        error => Err(error),
    }
}

/// What [`repair`] did.
#[derive(Debug)]
pub struct Repaired {
    /// The copy of the file as it was before the repair.
    pub backup: PathBuf,
    /// The store after the repair: sound, or still damaged.
    pub health: Health,
}

/// Copies the store to `<path>.backup-<timestamp>`, then lets redb check and repair it in
/// place. The file is left as redb's repair leaves it; the backup is never touched again.
pub fn repair(path: &Path, now: chrono::DateTime<chrono::Utc>) -> Result<Repaired, RepairError> {
    let backup = PathBuf::from(format!(
        "{}.backup-{}",
        path.display(),
        now.format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::copy(path, &backup).map_err(|source| RepairError::Backup {
        backup: backup.clone(),
        source,
    })?;
    File::open(&backup)
        .and_then(|f| f.sync_all())
        .map_err(|source| RepairError::Backup {
            backup: backup.clone(),
            source,
        })?;
    let repaired = guarded(|| {
        let db = redb::Builder::new()
            .set_cache_size(CHECK_CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .set_repair_callback(|session| {
                tracing::info!(
                    progress = format!("{:.0}%", session.progress() * 100.0),
                    "repairing the store"
                );
            })
            .open(path)
            .map_err(db_err)?;
        db.close().map_err(db_err)
    });
    if let Err(error) = repaired {
        return Err(RepairError::Failed { backup, error });
    }
    let health = check(path).map_err(|error| RepairError::Failed {
        backup: backup.clone(),
        error,
    })?;
    Ok(Repaired { backup, health })
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("copying the store to {backup} failed (nothing was repaired): {source}")]
    Backup {
        backup: PathBuf,
        source: std::io::Error,
    },
    #[error("redb could not repair the store: {error}; the file as it was is in {backup}")]
    Failed { backup: PathBuf, error: StoreError },
}

/// redb's page cache for a check: it reads each page once.
const CHECK_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Whether redb's error says the file is damaged (rather than, say, unreadable).
fn is_damage(error: &redb::Error) -> bool {
    matches!(
        error,
        redb::Error::Corrupted(_) | redb::Error::RepairAborted | redb::Error::UpgradeRequired(_)
    )
}

thread_local! {
    /// How many [`guarded`] calls this thread is inside: their panics are not printed.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// Where the last guarded panic happened.
    static PANIC_AT: Cell<Option<String>> = const { Cell::new(None) };
}

/// Runs `work`, turning a panic inside it into [`StoreError::Panicked`]: redb may panic on a
/// file damaged outside it, and a damaged store must be refused with a message, never
/// crash the process.
pub(super) fn guarded<T>(work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.get() > 0 {
                PANIC_AT.set(info.location().map(|l| l.to_string()));
            } else {
                previous(info);
            }
        }));
    });
    GUARDED.set(GUARDED.get() + 1);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(work));
    GUARDED.set(GUARDED.get() - 1);
    outcome.unwrap_or_else(|payload| {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let message = match PANIC_AT.take() {
            Some(at) => format!("{text} (at {at})"),
            None => text,
        };
        Err(StoreError::Panicked { message })
    })
}

/// A view of a file that redb can open read-write: reads come from the file, writes stay
/// in memory (block by block), so the file itself is never changed. Locks are not
/// supported, which redb accepts for its default single-process mode.
#[derive(Debug)]
pub(super) struct CopyOnWrite {
    file: File,
    state: Mutex<Overlay>,
}

#[derive(Debug)]
struct Overlay {
    len: u64,
    /// Bytes of the file at or after this offset read as zeros (the file was shortened).
    file_valid: u64,
    blocks: HashMap<u64, Box<[u8]>>,
}

const BLOCK: u64 = 4096;

impl CopyOnWrite {
    pub(super) fn new(file: File) -> std::io::Result<CopyOnWrite> {
        let len = file.metadata()?.len();
        Ok(CopyOnWrite {
            file,
            state: Mutex::new(Overlay {
                len,
                file_valid: len,
                blocks: HashMap::new(),
            }),
        })
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The block at `index` as the view sees it.
    fn read_block(&self, overlay: &Overlay, index: u64, out: &mut [u8]) -> std::io::Result<()> {
        if let Some(block) = overlay.blocks.get(&index) {
            out.copy_from_slice(block);
            return Ok(());
        }
        out.fill(0);
        let start = index * BLOCK;
        let end = (start + BLOCK).min(overlay.file_valid);
        if end > start {
            let len = usize::try_from(end - start).expect("a block fits in memory");
            self.file.read_exact_at(&mut out[..len], start)?;
        }
        Ok(())
    }
}

fn block_span(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    // (block index, offset in the block, offset in the buffer, length)
    let end = offset + len as u64;
    let first = offset / BLOCK;
    let last = if len == 0 {
        first
    } else {
        (end - 1) / BLOCK + 1
    };
    (first..last).map(move |index| {
        let block_start = index * BLOCK;
        let from = offset.max(block_start);
        let to = end.min(block_start + BLOCK);
        (
            index,
            (from - block_start) as usize,
            (from - offset) as usize,
            (to - from) as usize,
        )
    })
}

impl StorageBackend for CopyOnWrite {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.overlay().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let overlay = self.overlay();
        if offset + out.len() as u64 > overlay.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the store",
            ));
        }
        let mut block = vec![0u8; BLOCK as usize];
        for (index, in_block, in_out, len) in block_span(offset, out.len()) {
            self.read_block(&overlay, index, &mut block)?;
            out[in_out..in_out + len].copy_from_slice(&block[in_block..in_block + len]);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut overlay = self.overlay();
        if len < overlay.len {
            overlay.file_valid = overlay.file_valid.min(len);
            let keep = len.div_ceil(BLOCK);
            overlay.blocks.retain(|&index, _| index < keep);
            if !len.is_multiple_of(BLOCK)
                && let Some(block) = overlay.blocks.get_mut(&(len / BLOCK))
            {
                block[(len % BLOCK) as usize..].fill(0);
            }
        }
        overlay.len = len;
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut overlay = self.overlay();
        for (index, in_block, in_data, len) in block_span(offset, data.len()) {
            if !overlay.blocks.contains_key(&index) {
                let mut block = vec![0u8; BLOCK as usize].into_boxed_slice();
                self.read_block(&overlay, index, &mut block)?;
                overlay.blocks.insert(index, block);
            }
            let block = overlay.blocks.get_mut(&index).expect("inserted above");
            block[in_block..in_block + len].copy_from_slice(&data[in_data..in_data + len]);
        }
        overlay.len = overlay.len.max(offset + data.len() as u64);
        Ok(())
    }
}

/// Whether the file holds nothing but zeros (or nothing at all): what a first start on a
/// full disk left before stores were created atomically. Reads at most the whole file,
/// and stops at the first byte that is not zero.
pub(super) fn all_zero(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(true);
        }
        if buffer[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_on_write_view_reads_its_writes_and_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let original: Vec<u8> = (0..3 * BLOCK + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).unwrap();
        let view = CopyOnWrite::new(File::open(&path).unwrap()).unwrap();
        view.write(BLOCK - 2, &[9; 6]).unwrap();
        let mut out = vec![0u8; 10];
        view.read(BLOCK - 4, &mut out).unwrap();
        let mut expected = original[(BLOCK - 4) as usize..(BLOCK + 6) as usize].to_vec();
        expected[2..8].fill(9);
        assert_eq!(out, expected);
        view.set_len(BLOCK + 1).unwrap();
        view.set_len(2 * BLOCK).unwrap();
        let mut tail = vec![1u8; (BLOCK - 1) as usize];
        view.read(BLOCK + 1, &mut tail).unwrap();
        assert!(
            tail.iter().all(|&b| b == 0),
            "a shortened file grows back with zeros"
        );
        view.write(5 * BLOCK, &[7; 3]).unwrap();
        assert_eq!(view.len().unwrap(), 5 * BLOCK + 3);
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}
