//! `tend backup FILE` and `tend restore FILE`: a consistent, owner-only snapshot of the
//! live SQLite database, and putting one back while no server runs.

use crate::database::Database;
use crate::project::load_valid_project;
use crate::server_lock::ServerLock;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tend_store_sqlite::SqliteStore;

/// Writes a snapshot of the configured database to `file`; safe while `tend serve` runs
/// (it takes no server lock: SQLite readers never block the writer).
pub fn backup(config_path: &Path, file: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let database = sqlite_path(config_path)?;
    if !database.exists() {
        bail!(
            "there is no database at {} yet: `tend serve` or `tend import` creates it",
            database.display()
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = SqliteStore::open(&database)
            .await
            .with_context(|| format!("opening the database {}", database.display()))?;
        store
            .backup_to(file, force)
            .await
            .with_context(|| format!("backing up {} to {}", database.display(), file.display()))
    })?;
    eprintln!(
        "backed up {} to {} (owner-only; it holds the install's secrets)",
        database.display(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Replaces the configured database with the snapshot `file`, after checking it; refuses
/// while a server holds the database.
pub fn restore(config_path: &Path, file: &Path) -> anyhow::Result<ExitCode> {
    let database = sqlite_path(config_path)?;
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    // Held until the restore ends, so no server starts on a half-replaced database.
    let _lock = ServerLock::acquire_for(&database, "restoring a backup")
        .context("refusing to restore while a server holds the database; nothing was changed")?;
    let restored = tend_store_sqlite::restore_snapshot(file, &database).with_context(|| {
        format!(
            "restoring {} into {}; nothing was changed",
            file.display(),
            database.display()
        )
    })?;
    eprintln!(
        "restored {} into {} (schema version {}, {} contacts)",
        file.display(),
        database.display(),
        restored.snapshot.schema_version,
        restored.snapshot.contacts
    );
    if let Some(previous) = restored.previous {
        eprintln!("the database it replaced is kept as {}", previous.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The configured SQLite file; backup and restore are for the SQLite backend only.
fn sqlite_path(config_path: &Path) -> anyhow::Result<PathBuf> {
    let project = load_valid_project(config_path)?;
    let database = Database::of(config_path, &project.config.database_url)?;
    let file = database.sqlite_only(
        "`tend backup` and `tend restore`",
        "back it up with PostgreSQL's own tools (pg_dump -Fc, pg_restore, or the \
         server's continuous archiving)",
    )?;
    Ok(file.to_path_buf())
}
