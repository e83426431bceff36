//! Backups of a live database and restores that check the snapshot first, on real
//! files.

use rusqlite::Connection;
use serde_json::Map;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tempfile::TempDir;
use tend_core::{Email, StageName};
use tend_store::{ImportRow, Store};
use tend_store_sqlite::{SnapshotError, SqliteStore, restore_snapshot};

const CHUNK: usize = 20;

fn email(chunk: usize, row: usize) -> String {
    format!("c{chunk}-{row}@example.com")
}

fn emails(path: &Path) -> HashSet<String> {
    let conn = Connection::open(path).unwrap();
    let mut statement = conn.prepare("SELECT email FROM contacts").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn secret(path: &Path) -> String {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT value FROM engine_state WHERE key = 'unsubscribe_key'",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A database with contacts imported while a snapshot of it is taken; returns the
/// folder, the snapshot and how many chunks had committed before the backup began.
async fn backed_up_during_writes() -> (TempDir, std::path::PathBuf, usize) {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("tend.db"))
            .await
            .unwrap(),
    );
    let committed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (started, mut begun) = tokio::sync::watch::channel(0usize);
    let writer = tokio::spawn({
        let (store, committed, stop) = (store.clone(), committed.clone(), stop.clone());
        async move {
            let mut chunk = 0;
            while !stop.load(Ordering::SeqCst) || chunk < 10 {
                let rows: Vec<ImportRow> = (0..CHUNK)
                    .map(|row| ImportRow {
                        email: Email::parse(&email(chunk, row)).unwrap(),
                        name: Some(format!("Person {chunk}-{row}")),
                        stage: None,
                        timezone: None,
                        attributes: Map::new(),
                    })
                    .collect();
                store
                    .import_contacts(
                        &rows,
                        &StageName::new("prospect"),
                        jiff::Timestamp::now(),
                        tend_store::ImportEnrollment::Now,
                    )
                    .await
                    .unwrap();
                chunk += 1;
                committed.store(chunk, Ordering::SeqCst);
                let _ = started.send(chunk);
            }
            chunk
        }
    });
    begun.wait_for(|chunks| *chunks >= 5).await.unwrap();
    let before = committed.load(Ordering::SeqCst);
    let snapshot = dir.path().join("nightly.tend");
    store.backup_to(&snapshot, false).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert!(written >= 10);
    (dir, snapshot, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_writes_restores_every_contact_written_before_it() {
    let (dir, snapshot, before) = backed_up_during_writes().await;
    #[cfg(unix)]
    assert_eq!(mode(&snapshot), 0o600);

    let elsewhere = TempDir::new().unwrap();
    let database = elsewhere.path().join("tend.db");
    let restored = restore_snapshot(&snapshot, &database).unwrap();
    assert_eq!(restored.previous, None);
    #[cfg(unix)]
    assert_eq!(mode(&database), 0o600);

    let found = emails(&database);
    for chunk in 0..before {
        for row in 0..CHUNK {
            assert!(
                found.contains(&email(chunk, row)),
                "{} lost",
                email(chunk, row)
            );
        }
    }
    // Whole chunks only: each import is one transaction, and the snapshot is one read.
    assert_eq!(found.len() % CHUNK, 0);
    assert_eq!(restored.snapshot.contacts as usize, found.len());
    assert_eq!(secret(&database), secret(&dir.path().join("tend.db")));
    let integrity: String = Connection::open(&database)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    // The restored file opens as a working store.
    let store = SqliteStore::open(&database).await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_never_replaces_an_existing_file_unless_asked() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(&dir.path().join("tend.db"))
        .await
        .unwrap();
    let target = dir.path().join("keep.me");
    std::fs::write(&target, "not mine to overwrite").unwrap();
    let refused = store.backup_to(&target, false).await.unwrap_err();
    assert!(matches!(refused, SnapshotError::Exists(_)), "{refused}");
    assert!(refused.to_string().contains("--force"), "{refused}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "not mine to overwrite"
    );

    store.backup_to(&target, true).await.unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&target), 0o600);
    assert!(tend_store_sqlite::verify_snapshot(&target).is_ok());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A live database with contacts, and a good snapshot of it.
async fn live_and_snapshot() -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = TempDir::new().unwrap();
    let database = dir.path().join("tend.db");
    let store = SqliteStore::open(&database).await.unwrap();
    let rows: Vec<ImportRow> = (0..200)
        .map(|row| ImportRow {
            email: Email::parse(&email(0, row)).unwrap(),
            name: Some("x".repeat(200)),
            stage: None,
            timezone: None,
            attributes: Map::new(),
        })
        .collect();
    store
        .import_contacts(
            &rows,
            &StageName::new("prospect"),
            jiff::Timestamp::now(),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap();
    let snapshot = dir.path().join("snapshot.tend");
    store.backup_to(&snapshot, false).await.unwrap();
    store.checkpoint().await.unwrap();
    drop(store);
    (dir, database, snapshot)
}

/// Restoring `bad` over `database` fails with a message containing `expect`, and
/// leaves every file as it was.
fn refused_and_unchanged(bad: &Path, database: &Path, expect: &str) {
    let folder = database.parent().unwrap();
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            // The closed store's connections may still be removing their own.
            .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
            .collect();
        names.sort();
        names
    };
    let (files, bytes) = (listing(), std::fs::read(database).unwrap());
    let error = restore_snapshot(bad, database).unwrap_err().to_string();
    assert!(error.contains(expect), "{error}");
    assert!(error.contains(&bad.display().to_string()), "{error}");
    assert_eq!(listing(), files);
    assert_eq!(std::fs::read(database).unwrap(), bytes);
}

#[tokio::test]
async fn restore_refuses_a_corrupt_snapshot_and_changes_nothing() {
    let (dir, database, snapshot) = live_and_snapshot().await;
    let mut bytes = std::fs::read(&snapshot).unwrap();
    // Garbage over every page after the first: the b-trees no longer hold together.
    for (i, byte) in bytes.iter_mut().enumerate().skip(4096) {
        if i % 7 == 0 {
            *byte ^= 0xA5;
        }
    }
    let corrupt = dir.path().join("corrupt.tend");
    std::fs::write(&corrupt, bytes).unwrap();
    refused_and_unchanged(&corrupt, &database, "not a usable Tend snapshot");

    let junk = dir.path().join("junk.tend");
    std::fs::write(
        &junk,
        "this is not a database at all, not even close to one",
    )
    .unwrap();
    refused_and_unchanged(&junk, &database, "not a usable Tend snapshot");
}

#[tokio::test]
async fn restore_refuses_a_snapshot_from_a_newer_tend_and_changes_nothing() {
    let (dir, database, snapshot) = live_and_snapshot().await;
    let newer = dir.path().join("newer.tend");
    std::fs::copy(&snapshot, &newer).unwrap();
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    refused_and_unchanged(&newer, &database, "newer than this binary's");

    let secretless = dir.path().join("secretless.tend");
    std::fs::copy(&snapshot, &secretless).unwrap();
    Connection::open(&secretless)
        .unwrap()
        .execute("DELETE FROM engine_state WHERE key = 'unsubscribe_key'", [])
        .unwrap();
    refused_and_unchanged(&secretless, &database, "unsubscribe_key");
}

#[tokio::test]
async fn restore_keeps_the_replaced_database_owner_only() {
    let (_dir, database, snapshot) = live_and_snapshot().await;
    // A change after the snapshot, still in the write-ahead log.
    let store = SqliteStore::open(&database).await.unwrap();
    store
        .import_contacts(
            &[ImportRow {
                email: Email::parse("late@example.com").unwrap(),
                name: None,
                stage: None,
                timezone: None,
                attributes: Map::new(),
            }],
            &StageName::new("prospect"),
            jiff::Timestamp::now(),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap();
    drop(store);

    let restored = restore_snapshot(&snapshot, &database).unwrap();
    let previous = restored.previous.expect("the old database is kept");
    assert!(previous.ends_with("tend.db.before-restore"));
    #[cfg(unix)]
    assert_eq!(mode(&previous), 0o600);
    assert!(!emails(&database).contains("late@example.com"));
    assert!(emails(&previous).contains("late@example.com"));
    assert_eq!(emails(&database).len(), 200);
}
