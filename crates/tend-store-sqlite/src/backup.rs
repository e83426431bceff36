//! Snapshots of a live database and their verification before a restore.
//!
//! A snapshot is taken with SQLite's online backup API from one read transaction, so it
//! is consistent while the server keeps writing (WAL readers never block the writer),
//! and it includes the install's secrets, which live in `engine_state`.

use super::migrations::{MIGRATIONS, applied_by_earlier_releases, migrate};
use super::pool::{Durability, Pool};
use super::sql::db;
use super::{SqliteStore, suppress};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use tend_store::StoreError;

/// Everything that can go wrong taking or checking a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file could not be created, written, synced or renamed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The destination exists and overwriting was not asked for.
    #[error("{} already exists; choose another name or pass --force", .0.display())]
    Exists(PathBuf),
    /// SQLite failed while copying or reading the snapshot.
    #[error("{}: {source}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The snapshot was written by a newer Tend, whose schema this binary does not know.
    #[error(
        "{} was written by a newer Tend: its schema version {version} is newer than this \
         binary's {newest}; use it with the Tend release that wrote it, or a newer one",
        path.display()
    )]
    Newer {
        /// The snapshot file.
        path: PathBuf,
        /// Its schema version.
        version: i64,
        /// The newest schema this binary knows.
        newest: i64,
    },
    /// The snapshot is not one this binary can restore; says why.
    #[error("{} is not a usable Tend snapshot: {reason}", path.display())]
    Unusable {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a verified snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its schema version (the last migration applied).
    pub schema_version: i64,
    /// How many contacts it holds.
    pub contacts: i64,
    /// The install's id (`engine_state.instance_id`), from schema version 6 on.
    pub instance_id: Option<String>,
}

/// The schema version this binary's migrations bring a database to.
pub fn binary_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _, _)| *v)
}

impl SqliteStore {
    /// Writes a consistent snapshot of the whole database to `dest`, owner-only, through
    /// a temporary file renamed into place; an existing `dest` is replaced only if
    /// `overwrite`. Safe while other connections and processes write.
    pub async fn backup_to(&self, dest: &Path, overwrite: bool) -> Result<(), SnapshotError> {
        if !overwrite && dest.exists() {
            return Err(SnapshotError::Exists(dest.to_owned()));
        }
        let temp = sibling(dest, ".tmp");
        let _ = std::fs::remove_file(&temp);
        let copied = self
            .pool
            .read(|tx| Ok(copy_database(tx, &temp)))
            .await
            .map_err(|e| SnapshotError::Unusable {
                path: dest.to_owned(),
                reason: format!("reading the live database: {e}"),
            })
            .and_then(|r| r)
            .and_then(|()| sync_file(&temp))
            .and_then(|()| place(&temp, dest, overwrite));
        if copied.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        copied
    }
    /// A consistent copy of the whole database in memory, as scratch: never synced, no
    /// rollback journal, the budget usage held by the store, gone when dropped, and
    /// useless after a failed write (what [`SqliteStore::open_scratch`] makes, with this
    /// database's data). For work that
    /// must not touch the business's data and is thrown away at the end, such as a
    /// forecast; it holds the whole database in memory.
    pub async fn scratch_copy(&self) -> Result<SqliteStore, StoreError> {
        self.pool
            .read(|source| {
                let mut keys = None;
                let pool = Pool::open(Path::new(":memory:"), Durability::Scratch, 0, |copy| {
                    copy_into(source, copy)?;
                    migrate(copy)?;
                    keys = Some(suppress::load_keys(copy)?);
                    Ok(())
                })?;
                Ok(SqliteStore {
                    pool,
                    keys: keys.expect("set when the pool opened"),
                    budgets: self.budgets.for_scratch_copy(),
                })
            })
            .await
    }
}

/// Copies every page `source` reads into the empty in-memory database `copy`, then puts
/// the copy back in scratch mode (the pages carry the source's journal mode).
fn copy_into(source: &Connection, copy: &mut Connection) -> Result<(), StoreError> {
    // An in-memory destination must have the source's page size before the copy.
    let page_size: i64 = source
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .map_err(db)?;
    copy.pragma_update(None, "page_size", page_size)
        .map_err(db)?;
    {
        let backup = Backup::new(source, copy).map_err(db)?;
        // All pages in one step: one read snapshot, and nobody else writes to `copy`.
        if backup.step(-1).map_err(db)? != StepResult::Done {
            return Err(StoreError::Corrupt(
                "copying the database into memory stopped before the end".into(),
            ));
        }
    }
    copy.pragma_update_and_check(None, "journal_mode", "OFF", |row| row.get::<_, String>(0))
        .map_err(db)?;
    Ok(())
}

/// Copies the database `source` reads into a new owner-only file at `temp`, left in
/// rollback-journal mode so that it is one self-contained file.
fn copy_database(source: &Connection, temp: &Path) -> Result<(), SnapshotError> {
    create_owner_only(temp)?;
    let db_error = |source| SnapshotError::Database {
        path: temp.to_owned(),
        source,
    };
    let mut out = Connection::open(temp).map_err(db_error)?;
    {
        let backup = Backup::new(source, &mut out).map_err(db_error)?;
        // All pages in one step: one read snapshot, never restarted by a writer.
        loop {
            match backup.step(-1).map_err(db_error)? {
                StepResult::Done => break,
                _ => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
    out.pragma_update_and_check(None, "journal_mode", "DELETE", |row| {
        row.get::<_, String>(0)
    })
    .map_err(db_error)?;
    out.close().map_err(|(_, e)| db_error(e))
}

/// Checks a snapshot before it replaces anything: SQLite's `integrity_check` passes, its
/// schema version is one this binary knows and not newer, and the install's secrets are
/// there. Opens it for writing (SQLite may add `-wal`/`-shm` beside a WAL-mode file), so
/// call it on a copy.
pub fn verify_snapshot(path: &Path) -> Result<SnapshotInfo, SnapshotError> {
    let unusable = |reason: String| SnapshotError::Unusable {
        path: path.to_owned(),
        reason,
    };
    let db_error = |e: rusqlite::Error| unusable(e.to_string());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_error)?;
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .map_err(db_error)?;
    if problems != ["ok"] {
        return Err(unusable(format!(
            "integrity_check failed: {}",
            problems.join("; ")
        )));
    }
    let mut version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(db_error)?;
    if version == 0 {
        version = applied_by_earlier_releases(&conn).map_err(|e| unusable(e.to_string()))?;
    }
    let newest = binary_schema_version();
    if version == 0 {
        return Err(unusable("it holds no Tend schema".into()));
    }
    if version > newest {
        return Err(SnapshotError::Newer {
            path: path.to_owned(),
            version,
            newest,
        });
    }
    let mut instance_id = None;
    if version >= 6 {
        suppress::load_keys(&conn).map_err(|e| unusable(e.to_string()))?;
        let instance: Option<String> = conn
            .query_row(
                "SELECT value FROM engine_state WHERE key = 'instance_id'",
                [],
                |row| row.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(db_error)?;
        if instance.as_ref().is_none_or(|v| v.trim().is_empty()) {
            return Err(unusable(
                "`instance_id` is missing from the engine_state table".into(),
            ));
        }
        instance_id = instance;
    }
    let contacts = conn
        .query_row("SELECT COUNT(*) FROM contacts", [], |row| row.get(0))
        .map_err(db_error)?;
    Ok(SnapshotInfo {
        schema_version: version,
        contacts,
        instance_id,
    })
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// What the restored snapshot holds.
    pub snapshot: SnapshotInfo,
    /// Where the database it replaced was kept, if there was one.
    pub previous: Option<PathBuf>,
}

/// Replaces the SQLite database at `database` with `snapshot`: copies it to a temporary
/// file beside the database, verifies the copy ([`verify_snapshot`]) and syncs it, keeps
/// the old database (with its write-ahead log) as `{database}.before-restore`, then
/// renames the copy into place. Nothing is replaced if the snapshot fails verification.
/// The caller must make sure no server has the database open.
pub fn restore_snapshot(snapshot: &Path, database: &Path) -> Result<Restored, SnapshotError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| SnapshotError::Io { what, path, source }
    };
    let temp = sibling(database, ".restore-tmp");
    remove_with_sidecars(&temp)?;
    let staged = (|| {
        let mut input = File::open(snapshot).map_err(io("opening", snapshot))?;
        let mut output = create_owner_only(&temp)?;
        std::io::copy(&mut input, &mut output).map_err(io("copying into", &temp))?;
        output.sync_all().map_err(io("syncing", &temp))?;
        drop(output);
        let info = verify_snapshot(&temp).map_err(|e| match e {
            // Errors name the file the user gave, not the copy being checked.
            SnapshotError::Unusable { reason, .. } => SnapshotError::Unusable {
                path: snapshot.to_owned(),
                reason,
            },
            SnapshotError::Newer {
                version, newest, ..
            } => SnapshotError::Newer {
                path: snapshot.to_owned(),
                version,
                newest,
            },
            other => other,
        })?;
        // Verification may have opened a WAL-mode snapshot: SQLite folds its log back in
        // on close, and the copy must be one file.
        if sibling(&temp, "-wal").exists() {
            return Err(SnapshotError::Unusable {
                path: snapshot.to_owned(),
                reason: "its write-ahead log could not be folded in".into(),
            });
        }
        let _ = std::fs::remove_file(sibling(&temp, "-shm"));
        sync_file(&temp)?;
        Ok(info)
    })();
    let info = match staged {
        Ok(info) => info,
        Err(e) => {
            let _ = remove_with_sidecars(&temp);
            return Err(e);
        }
    };
    let previous = if database.exists() {
        let before = sibling(database, ".before-restore");
        remove_with_sidecars(&before)?;
        if std::fs::hard_link(database, &before).is_err() {
            let mut output = create_owner_only(&before)?;
            let mut input = File::open(database).map_err(io("opening", database))?;
            std::io::copy(&mut input, &mut output).map_err(io("copying into", &before))?;
            output.sync_all().map_err(io("syncing", &before))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&before, std::fs::Permissions::from_mode(0o600))
                .map_err(io("narrowing access to", &before))?;
        }
        // The old log belongs to the old file (a stale log beside the new file would be
        // replayed into it): under the kept file's name SQLite still finds it.
        let wal = sibling(database, "-wal");
        if wal.exists() {
            std::fs::rename(&wal, sibling(&before, "-wal")).map_err(io("moving", &wal))?;
        }
        let shm = sibling(database, "-shm");
        if shm.exists() {
            std::fs::remove_file(&shm).map_err(io("removing", &shm))?;
        }
        Some(before)
    } else {
        None
    };
    std::fs::rename(&temp, database).map_err(io("renaming into place", database))?;
    sync_folder(database)?;
    Ok(Restored {
        snapshot: info,
        previous,
    })
}

/// Removes a database file and its `-wal`, `-shm` and `-journal` files, if present.
fn remove_with_sidecars(path: &Path) -> Result<(), SnapshotError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = sibling(path, suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SnapshotError::Io {
                    what: "removing",
                    path: file,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates an empty file readable and writable by its owner only; an existing one is
/// an error, so nobody else's file is written through.
pub fn create_owner_only(path: &Path) -> Result<File, SnapshotError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|source| SnapshotError::Io {
        what: "creating",
        path: path.to_owned(),
        source,
    })
}

/// Flushes a file's bytes to disk.
pub fn sync_file(path: &Path) -> Result<(), SnapshotError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| SnapshotError::Io {
            what: "syncing",
            path: path.to_owned(),
            source,
        })
}

/// Moves the finished `temp` to `dest` (a hard link when `dest` must not be replaced,
/// so that a file appearing meanwhile is never clobbered) and syncs the folder.
fn place(temp: &Path, dest: &Path, overwrite: bool) -> Result<(), SnapshotError> {
    if overwrite {
        std::fs::rename(temp, dest).map_err(|source| SnapshotError::Io {
            what: "renaming into place",
            path: dest.to_owned(),
            source,
        })?;
    } else {
        match std::fs::hard_link(temp, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SnapshotError::Exists(dest.to_owned()));
            }
            Err(source) => {
                return Err(SnapshotError::Io {
                    what: "linking into place",
                    path: dest.to_owned(),
                    source,
                });
            }
        }
        let _ = std::fs::remove_file(temp);
    }
    sync_folder(dest)
}

/// Syncs the folder holding `path`, so a rename in it survives a crash.
pub fn sync_folder(path: &Path) -> Result<(), SnapshotError> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(folder)
        .and_then(|f| f.sync_all())
        .map_err(|source| SnapshotError::Io {
            what: "syncing the folder",
            path: folder.to_owned(),
            source,
        })?;
    Ok(())
}
