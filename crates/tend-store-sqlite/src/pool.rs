//! SQLite connections for async callers: one writer behind an async lock and a few
//! readers, each unit of work run to its end, transaction and all, on the calling thread.
//!
//! SQLite is a library, not a server: a statement costs microseconds, so handing each
//! one to another thread (as an async driver must) costs more than running it. A unit of
//! work here is a whole `Store` call, and on a multi-threaded runtime it runs inside
//! `block_in_place`, so the worker's other tasks move to another thread meanwhile.

use crate::sql::db;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex as SyncMutex;
use std::time::Duration;
use tend_store::StoreError;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{Mutex, Semaphore};

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection: every fixed statement and the padded
/// shapes of the generated ones.
const STATEMENT_CACHE: usize = 256;

/// Page size of a scratch database, in bytes (a file keeps SQLite's 4 KiB).
const SCRATCH_PAGE_SIZE: i64 = 16_384;

/// Whether a database holds a business's data or a simulation's scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// A file in WAL mode with `synchronous = NORMAL` (a commit survives the process
    /// crashing; only a power cut can take the last ones), erased bytes zeroed.
    Durable,
    /// In memory, no rollback journal, nothing synced or zeroed: thrown away when the
    /// store is dropped, and useless after a failed write.
    Scratch,
}

/// The writer and the readers of one database.
pub(super) struct Pool {
    writer: Mutex<Connection>,
    /// `None` for a scratch database, which lives inside its one connection.
    readers: Option<Readers>,
}

struct Readers {
    idle: SyncMutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Pool {
    /// Opens the writer; `migrate` brings its schema up to date before any reader opens.
    pub(super) fn open(
        path: &Path,
        durability: Durability,
        readers: usize,
        migrate: impl FnOnce(&mut Connection) -> Result<(), StoreError>,
    ) -> Result<Pool, StoreError> {
        let mut writer = connect(path, durability, Role::Writer)?;
        migrate(&mut writer)?;
        if durability == Durability::Durable {
            checkpoint_in_background(&mut writer, connect(path, durability, Role::Checkpointer)?)?;
        }
        let readers = match durability {
            Durability::Scratch => None,
            Durability::Durable => {
                let idle = (0..readers)
                    .map(|_| connect(path, durability, Role::Reader))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(Readers {
                    permits: Semaphore::new(idle.len()),
                    idle: SyncMutex::new(idle),
                })
            }
        };
        Ok(Pool {
            writer: Mutex::new(writer),
            readers,
        })
    }

    /// Runs `work` in one write transaction (`BEGIN IMMEDIATE`, so a reader never has
    /// to upgrade and fail with `SQLITE_BUSY`); commits if it succeeds.
    pub(super) async fn write<R>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.writer.lock().await;
        blocking(|| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let out = work(&tx)?;
            tx.commit().map_err(db)?;
            Ok(out)
        })
    }

    /// Runs `work` as [`Pool::write`] does, then rolls it back: what a write would do,
    /// with nothing written.
    pub(super) async fn write_rolled_back<R>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.writer.lock().await;
        blocking(|| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let out = work(&tx)?;
            tx.rollback().map_err(db)?;
            Ok(out)
        })
    }

    /// Runs `work` on the writer outside any transaction: checkpoints.
    pub(super) async fn on_writer<R>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let conn = self.writer.lock().await;
        blocking(|| work(&conn))
    }

    /// Runs `work` in one read transaction, so everything it reads comes from one
    /// snapshot.
    pub(super) async fn read<R>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let Some(readers) = &self.readers else {
            let mut conn = self.writer.lock().await;
            return blocking(|| read_in(&mut conn, work));
        };
        let _permit = readers
            .permits
            .acquire()
            .await
            .expect("the reader semaphore is never closed");
        let mut lease = Lease {
            readers,
            conn: Some(
                readers
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop()
                    .expect("a permit guarantees an idle reader"),
            ),
        };
        let conn = lease.conn.as_mut().expect("leased until dropped");
        blocking(|| read_in(conn, work))
    }
}

fn read_in<R>(
    conn: &mut Connection,
    work: impl FnOnce(&Transaction<'_>) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let tx = conn.transaction().map_err(db)?;
    let out = work(&tx)?;
    tx.commit().map_err(db)?;
    Ok(out)
}

/// A reader taken from the idle list, given back when dropped (also on error or panic).
struct Lease<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }
}

/// Runs `work` where blocking is allowed: moved off the async worker on a multi-thread
/// runtime; inline on a current-thread runtime (tests, the simulator), where nothing
/// else could run meanwhile anyway.
fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
    Checkpointer,
}

/// Write-ahead log size, in pages, past which a checkpoint is due (SQLite's default).
const CHECKPOINT_PAGES: i32 = 1_000;

/// Log size past which the writer checkpoints itself, as SQLite would on its own.
const CHECKPOINT_PAGES_INLINE: i32 = 4 * CHECKPOINT_PAGES;

/// Moves most checkpoint work off the writer. Past [`CHECKPOINT_PAGES`] a thread of its
/// own copies the log back into the database on its own connection, while writes go on.
/// The log can only start over once a checkpoint has caught up with the last write,
/// which under a steady stream of writes the thread never does; so past
/// [`CHECKPOINT_PAGES_INLINE`] the writer checkpoints the remainder itself, as SQLite's
/// automatic checkpoint would, and the log stays bounded. The thread ends with the
/// writer.
fn checkpoint_in_background(writer: &mut Connection, own: Connection) -> Result<(), StoreError> {
    let (due, wait) = std::sync::mpsc::sync_channel::<()>(1);
    // Replaces SQLite's automatic checkpoint: it runs one or the other.
    writer
        .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
            if pages >= CHECKPOINT_PAGES_INLINE {
                // Busy only while the thread is mid-checkpoint; the next commit tries again.
                if let Err(error) = wal.checkpoint() {
                    tracing::debug!(%error, pages, "inline checkpoint deferred");
                }
            } else if pages >= CHECKPOINT_PAGES {
                // Full means a request is already waiting: one is enough.
                let _ = due.try_send(());
            }
            Ok(())
        }))
        .map_err(db)?;
    std::thread::Builder::new()
        .name("tend-checkpoint".into())
        .spawn(move || {
            while wait.recv().is_ok() {
                // Passive: it copies what no reader still needs and never blocks anyone.
                if let Err(error) = own.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(%error, "checkpointing the write-ahead log failed; retrying later");
                }
            }
        })
        .map_err(|e| StoreError::Threads(format!("starting the checkpoint thread: {e}")))?;
    Ok(())
}

fn connect(path: &Path, durability: Durability, role: Role) -> Result<Connection, StoreError> {
    let conn = match durability {
        Durability::Durable => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?,
        Durability::Scratch => Connection::open_in_memory().map_err(db)?,
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans must not depend on the values bound: a plan that did would be compiled
    // again at every reuse of its cached statement (SQLite marks such statements
    // expired whenever their parameters are cleared). Every partial index condition is
    // written out in the statements that use it, so nothing is lost.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(db)?;
    let durable = durability == Durability::Durable;
    if durable {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "{}: the database refused write-ahead logging (journal mode stays `{mode}`)",
                path.display()
            )));
        }
    }
    if !durable {
        // Nothing to roll back to: a failed simulation throws its database away.
        conn.pragma_update_and_check(None, "journal_mode", "OFF", |row| row.get::<_, String>(0))
            .map_err(db)?;
        // The CHECK lists of allowed states and channels guard a business's file against
        // other writers; in a scratch database only this code writes, the same code
        // the durable files check. SQLite tests a list of three or more values through
        // a temporary table built at every insert and change of state.
        conn.pragma_update(None, "ignore_check_constraints", "ON")
            .map_err(db)?;
        // An in-memory database keeps every page in one hash table, which SQLite scans
        // whole at the end of each transaction that split an index page (it parks a
        // page under a high number while it reorders the new ones). Larger pages: fewer
        // pages to scan, fewer splits. 16 KiB against 4 KiB cut a simulated year's CPU
        // time by a tenth, with the same results.
        conn.pragma_update(None, "page_size", SCRATCH_PAGE_SIZE)
            .map_err(db)?;
    }
    conn.pragma_update(None, "synchronous", if durable { "NORMAL" } else { "OFF" })
        .map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
    // Deleted rows are overwritten with zeros, so an erasure leaves no bytes behind.
    conn.pragma_update(None, "secure_delete", if durable { "ON" } else { "OFF" })
        .map_err(db)?;
    // A multi-row insert into a table with a foreign key keeps a statement journal of
    // every page it changes; on disk that was a quarter of ingest's writer time.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(db)?;
    match role {
        // Each event touches a leaf of every events index; a larger cache for the one
        // writer keeps those pages in memory as the table grows.
        Role::Writer => conn
            .pragma_update(None, "cache_size", -16_384)
            .map_err(db)?,
        Role::Reader => conn.pragma_update(None, "query_only", "ON").map_err(db)?,
        Role::Checkpointer => {}
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_scratch_database_takes_larger_pages_and_skips_check_lists() {
        let settings = |pool: Pool| async move {
            pool.read(|tx| {
                let page: i64 = tx
                    .pragma_query_value(None, "page_size", |row| row.get(0))
                    .map_err(db)?;
                let checks: bool = tx
                    .pragma_query_value(None, "ignore_check_constraints", |row| row.get(0))
                    .map_err(db)?;
                Ok((page, checks))
            })
            .await
            .unwrap()
        };
        let scratch =
            Pool::open(Path::new(":memory:"), Durability::Scratch, 0, |_| Ok(())).unwrap();
        assert_eq!(settings(scratch).await, (SCRATCH_PAGE_SIZE, true));
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("tend.db");
        let durable = Pool::open(&file, Durability::Durable, 1, |_| Ok(())).unwrap();
        assert_eq!(settings(durable).await, (4_096, false));
    }
}
