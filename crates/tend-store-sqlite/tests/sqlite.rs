//! What only the SQLite backend shows, against a real database file: its files, WAL,
//! migrations from earlier releases, busy writers, erasure down to the bytes. The
//! behaviours every backend shares are in `tend-store-conformance`.

use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;
use tend_core::{ContactId, Email};
use tend_store::{
    ContactQuery, Identity, ImportRow, IngestMessage, Store, StoreError, TimelineEntry, TokenScope,
    tokens,
};
use tend_store_conformance::fixtures::*;
use tend_store_sqlite::SqliteStore;

struct Db {
    _dir: TempDir,
    path: PathBuf,
    store: SqliteStore,
}

async fn db() -> Db {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    let store = SqliteStore::open(&path).await.unwrap();
    Db {
        _dir: dir,
        path,
        store,
    }
}

/// A second, plain connection to the same file, for what the Store API does not show.
fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

async fn count(path: &Path, sql: &'static str) -> i64 {
    raw(path).query_row(sql, [], |row| row.get(0)).unwrap()
}

#[tokio::test]
async fn a_batch_that_fails_midway_writes_nothing() {
    let db = db().await;
    let s = &db.store;
    // A trigger stands in for any failure after the batch's contact was created.
    let conn = raw(&db.path);
    conn.execute_batch(
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON events WHEN NEW.name = 'Boom' \
         BEGIN SELECT RAISE(ABORT, 'boom refused'); END",
    )
    .unwrap();
    let batch = [
        identify(
            "ok-1",
            user("u1"),
            traits(Some("c@example.com"), Some("Cy"), json!({})),
        ),
        track("ok-2", user("u1"), "Fine", 6),
        track_to("ok-3", user("u1"), "Boom", "customer"),
    ];
    let err = s.ingest(&batch, &prospect()).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert!(err.to_string().contains("boom refused"), "{err}");
    assert!(s.list_contacts(&all(10)).await.unwrap().contacts.is_empty());
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM events").await, 0);
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM stage_history").await,
        0
    );

    // The same batch goes through whole once the cause is gone: nothing was half-written.
    conn.execute_batch("DROP TRIGGER refuse_boom").unwrap();
    drop(conn);
    let outcome = s.ingest(&batch, &prospect()).await.unwrap();
    assert_eq!((outcome.accepted, outcome.duplicates), (3, 0));
    assert_eq!(outcome.stage_changes.len(), 2);
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// The database, its write-ahead log and its shared-memory index, as bytes.
fn files(path: &Path) -> Vec<(String, Vec<u8>)> {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            std::fs::read(&file)
                .ok()
                .map(|bytes| (file.display().to_string(), bytes))
        })
        .collect()
}

#[tokio::test]
async fn erasing_leaves_no_bytes_behind_and_suppresses_the_address() {
    let db = db().await;
    let s = &db.store;
    let email = "zebulon.quartermaine@example.org";
    let name = "Zebulon Quartermaine";
    let user_id = "user-zq-4711";
    // Neighbours share the pages, so deleting leaves the pages in use, not free.
    let neighbours: Vec<ImportRow> = (0..200)
        .map(|i| {
            import_row(
                &format!("n{i}@example.com"),
                &format!("N {i}"),
                None,
                json!({}),
            )
        })
        .collect();
    s.import_contacts(
        &neighbours,
        &prospect(),
        at(0),
        tend_store::ImportEnrollment::Now,
    )
    .await
    .unwrap();
    // A property long enough to spill onto overflow pages.
    let long = format!("{name} <{email}> ").repeat(300);
    let mut batch = vec![identify(
        "e1",
        Identity {
            user_id: Some(user_id.into()),
            anonymous_id: Some("anon-zq".into()),
        },
        traits(Some(email), Some(name), json!({"bio": long})),
    )];
    for i in 0..50 {
        let mut message = track(&format!("e-t{i}"), user(user_id), "Page Viewed", 10 + i);
        if let IngestMessage::Track { properties, .. } = &mut message {
            properties.insert("by".into(), json!(format!("{name} {email}")));
        }
        batch.push(message);
    }
    batch.push(track_to(
        "e-last",
        user(user_id),
        "Order Completed",
        "customer",
    ));
    let outcome = s.ingest(&batch, &prospect()).await.unwrap();
    let id = outcome.stage_changes[0].contact_id;
    // Renaming leaves the old name in the page's free space unless it is zeroed too.
    s.ingest(
        &[identify(
            "e2",
            user(user_id),
            traits(None, Some("Zeb Q"), json!({})),
        )],
        &prospect(),
    )
    .await
    .unwrap();
    assert!(
        files(&db.path)
            .iter()
            .any(|(_, bytes)| contains(bytes, email)),
        "the test must see the address before erasing it"
    );

    assert!(s.erase_contact(id, at(100)).await.unwrap().is_some());
    for (file, bytes) in files(&db.path) {
        for secret in [email, name, user_id, "anon-zq", "Zeb Q"] {
            assert!(!contains(&bytes, secret), "`{secret}` is still in {file}");
        }
    }
    assert!(s.contact(id).await.unwrap().is_none());
    assert!(s.timeline(id).await.unwrap().is_empty());
    assert!(s.erase_contact(id, at(101)).await.unwrap().is_none());
    let parsed = Email::parse(email).unwrap();
    assert!(s.is_email_suppressed(&parsed).await.unwrap());
    assert!(
        !s.is_email_suppressed(&Email::parse("n1@example.com").unwrap())
            .await
            .unwrap()
    );
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM contacts").await, 200);

    // They come back through the API: a new record, suppressed from the start.
    let back = s
        .ingest(
            &[identify(
                "e3",
                anon("new-device"),
                traits(Some(email), None, json!({})),
            )],
            &prospect(),
        )
        .await
        .unwrap();
    let new_id = back.stage_changes[0].contact_id;
    assert_ne!(new_id, id, "an erased id is never reused");
    let again = s.contact(new_id).await.unwrap().unwrap();
    assert_eq!(again.suppressed_at, Some(at(5)));

    // And through an import, after a second erasure.
    assert!(s.erase_contact(new_id, at(200)).await.unwrap().is_some());
    let imported = s
        .import_contacts(
            &[import_row(email, "Zeb", None, json!({}))],
            &prospect(),
            at(300),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap();
    let contact = s
        .contact(imported.stage_changes[0].contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.suppressed_at, Some(at(300)));
}

#[tokio::test]
async fn reimporting_the_same_rows_changes_nothing() {
    let db = db().await;
    let s = &db.store;
    let rows: Vec<ImportRow> = (0..2500)
        .map(|i| {
            let stage = (i % 10 == 0).then_some("customer");
            import_row(
                &format!("p{i}@example.com"),
                &format!("P {i}"),
                stage,
                json!({"index": i, "city": "Rome"}),
            )
        })
        .collect();
    let mut first = (0, 0, 0, 0);
    for chunk in rows.chunks(1000) {
        let o = s
            .import_contacts(chunk, &prospect(), at(0), tend_store::ImportEnrollment::Now)
            .await
            .unwrap();
        first.0 += o.inserted;
        first.1 += o.updated;
        first.2 += o.unchanged;
        first.3 += o.stage_changes.len();
    }
    assert_eq!(first, (2500, 0, 0, 2500));
    let history = count(&db.path, "SELECT COUNT(*) FROM stage_history").await;
    assert_eq!(history, 2500);
    let one = s.list_contacts(&all(1)).await.unwrap().contacts.remove(0);
    assert_eq!(one.stage.as_str(), "customer");
    assert_eq!(one.attributes["city"], json!("Rome"));

    let mut second = (0, 0, 0, 0);
    for chunk in rows.chunks(1000) {
        let o = s
            .import_contacts(
                chunk,
                &prospect(),
                at(50),
                tend_store::ImportEnrollment::Now,
            )
            .await
            .unwrap();
        second.0 += o.inserted;
        second.1 += o.updated;
        second.2 += o.unchanged;
        second.3 += o.stage_changes.len();
    }
    assert_eq!(second, (0, 0, 2500, 0));
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM stage_history").await,
        history
    );
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM contacts WHERE updated_at <> created_at"
        )
        .await,
        0
    );

    // A row without a stage keeps the contact's; a changed row is an update.
    let changed = [
        import_row("p0@example.com", "P 0", None, json!({})),
        import_row(
            "p1@example.com",
            "P 1",
            Some("lead"),
            json!({"city": "Milan"}),
        ),
        import_row("new@example.com", "New", None, json!({})),
        import_row("new@example.com", "New", Some("lead"), json!({})),
    ];
    let o = s
        .import_contacts(
            &changed,
            &prospect(),
            at(60),
            tend_store::ImportEnrollment::Now,
        )
        .await
        .unwrap();
    assert_eq!((o.inserted, o.updated, o.unchanged), (1, 2, 1));
    let p1 = s
        .list_contacts(&ContactQuery {
            q: Some("p1@".into()),
            ..all(5)
        })
        .await
        .unwrap()
        .contacts
        .remove(0);
    assert_eq!(p1.stage.as_str(), "lead");
    assert_eq!(
        p1.attributes,
        json!({"index": 1, "city": "Milan"})
            .as_object()
            .cloned()
            .unwrap()
    );
    assert_eq!(p1.updated_at, at(60));
    let changes: Vec<_> = o
        .stage_changes
        .iter()
        .map(|c| (c.from.clone(), c.to.as_str().to_owned()))
        .collect();
    assert_eq!(
        changes,
        [
            (Some(prospect()), "lead".to_owned()),
            (None, "lead".to_owned())
        ]
    );
    let timeline = s.timeline(p1.id).await.unwrap();
    assert!(matches!(
        timeline.last(),
        Some(TimelineEntry::StageChange { reason, .. }) if reason == "import"
    ));
}

#[tokio::test]
async fn tokens_round_trip_and_survive_reopening() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(&dir.path().join("nested.db"))
        .await
        .unwrap();
    let clear = tokens::generate_token();
    let hash = tokens::hash_token(&clear);
    let created = store
        .create_token("ci", TokenScope::Write, &hash, at(1))
        .await
        .unwrap();
    assert_eq!(created.scope, TokenScope::Write);
    assert_eq!(
        store.find_token(&hash).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.find_token(&tokens::hash_token("nope")).await.unwrap(),
        None
    );
    let admin = store
        .create_token("me", TokenScope::Admin, &tokens::hash_token("x"), at(2))
        .await
        .unwrap();
    assert_ne!(admin.id, created.id);
    // The same hash twice is refused by the unique index.
    assert!(
        store
            .create_token("again", TokenScope::Admin, &hash, at(3))
            .await
            .is_err()
    );
    store.ping().await.unwrap();
    drop(store);

    // Migrations already applied are recognised, and the data is still there.
    let again = SqliteStore::open(&dir.path().join("nested.db"))
        .await
        .unwrap();
    assert_eq!(again.find_token(&hash).await.unwrap(), Some(created));
}

#[tokio::test]
async fn tokens_of_one_name_from_an_earlier_release_keep_working_under_distinct_names() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    database_from_an_sqlx_release(&path);
    let conn = raw(&path);
    conn.execute_batch(
        "INSERT INTO api_tokens (name, scope, token_hash, created_at) \
         VALUES ('ci', 'write', 'h1', 1), ('ci', 'admin', 'h2', 2);",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).await.unwrap();
    let names: Vec<String> = store
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"ci".to_owned()), "{names:?}");
    assert_eq!(
        store.find_token("h2").await.unwrap().unwrap().scope,
        TokenScope::Admin
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_do_not_fail_with_busy() {
    let db = db().await;
    let store = Arc::new(db.store);
    // A second store on the same file plays another process, e.g. the CLI importing.
    let other = Arc::new(SqliteStore::open(&db.path).await.unwrap());
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = if task % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            for round in 0..10 {
                let batch: Vec<IngestMessage> = (0..50)
                    .map(|i| {
                        track(
                            &format!("c-{task}-{round}-{i}"),
                            user(&format!("u{}", i % 7)),
                            "Tick",
                            i,
                        )
                    })
                    .collect();
                store.ingest(&batch, &prospect()).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM events").await,
        8 * 10 * 50
    );
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM contacts").await, 7);
}

#[tokio::test]
async fn the_bench_baseline_inserts_the_rows_it_is_given() {
    let db = db().await;
    let s = &db.store;
    let outcome = s
        .ingest(&[track("b0", user("u1"), "Seed", 0)], &prospect())
        .await
        .unwrap();
    let ContactId(id) = outcome.stage_changes[0].contact_id;
    let rows: Vec<_> = (0..120)
        .map(|i| {
            (
                format!("raw-{i}"),
                id,
                "Tick".to_owned(),
                "{}".to_owned(),
                i,
            )
        })
        .collect();
    assert_eq!(s.raw_insert_events_for_bench(&rows).await.unwrap(), 120);
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM events").await, 121);
}

/// A database as the releases built on sqlx left it: migrations 1 to 3 applied and
/// recorded in `_sqlx_migrations`, `user_version` never set, and a contact in it.
fn database_from_an_sqlx_release(path: &Path) {
    let conn = raw(path);
    conn.execute_batch(include_str!(
        "../migrations/0001_contacts_events_tokens.sql"
    ))
    .unwrap();
    conn.execute_batch(include_str!("../migrations/0002_engine.sql"))
        .unwrap();
    conn.execute_batch(include_str!("../migrations/0003_capacity_held.sql"))
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
         checksum BLOB NOT NULL, execution_time BIGINT NOT NULL); \
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (1, 'contacts_events_tokens', 1, x'00', 1), (2, 'engine', 1, x'00', 1), \
         (3, 'capacity_held', 1, x'00', 1); \
         INSERT INTO contacts (email, stage, created_at, updated_at) \
         VALUES ('kept@example.com', 'customer', 1, 1);",
    )
    .unwrap();
}

#[tokio::test]
async fn a_database_from_an_earlier_release_opens_with_its_data_and_only_new_migrations() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    database_from_an_sqlx_release(&path);

    // Re-running migration 1 would fail on its existing tables: only 4 on may run.
    let store = SqliteStore::open(&path).await.unwrap();
    let page = store.list_contacts(&all(10)).await.unwrap();
    assert_eq!(page.contacts.len(), 1);
    assert_eq!(page.contacts[0].email.as_deref(), Some("kept@example.com"));
    drop(store);
    let conn = raw(&path);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    // Every later migration ran, up to the newest file's number (numbers are
    // reserved per change, so one may be missing while its change is in the works).
    let newest = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
        .unwrap()
        .filter_map(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_str()?
                .get(..4)?
                .parse::<i64>()
                .ok()
        })
        .max()
        .unwrap();
    assert_eq!(version, newest);
    let covering: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'touches_offers_in_flight'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(covering.contains("probability"), "{covering}");
    drop(conn);
    // And again: nothing left to apply.
    SqliteStore::open(&path).await.unwrap();
}

#[tokio::test]
async fn an_earlier_releases_bare_hashes_are_rekeyed_or_still_checked() {
    use tend_store::suppression::legacy_hash;
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    database_from_an_sqlx_release(&path);
    let conn = raw(&path);
    // An erased person (only the bare hash is left) and a suppressed contact.
    conn.execute(
        "INSERT INTO suppressions (email_hash, reason, created_at) VALUES (?1, 'erased', 1), \
         (?2, 'erased', 1)",
        rusqlite::params![
            legacy_hash("gone@example.com"),
            legacy_hash("back@example.com")
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO contacts (email, stage, created_at, updated_at, suppressed_at) \
         VALUES ('back@example.com', 'lead', 1, 1, 5)",
        [],
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).await.unwrap();
    for address in ["gone@example.com", "back@example.com"] {
        let email = Email::parse(address).unwrap();
        assert!(
            store.is_email_suppressed(&email).await.unwrap(),
            "{address}"
        );
    }
    assert!(
        !store
            .is_email_suppressed(&Email::parse("kept@example.com").unwrap())
            .await
            .unwrap()
    );
    // The erased person who comes back is recognised by the bare hash.
    let back = store
        .ingest(
            &[identify(
                "i1",
                user("u-gone"),
                traits(Some("gone@example.com"), None, json!({})),
            )],
            &prospect(),
        )
        .await
        .unwrap();
    let again = store
        .contact(back.stage_changes[0].contact_id)
        .await
        .unwrap()
        .unwrap();
    assert!(again.suppressed_at.is_some());
    drop(store);

    let conn = raw(&path);
    let legacy: Vec<String> = conn
        .prepare("SELECT email_hash FROM legacy_suppressions")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        legacy,
        [legacy_hash("gone@example.com")],
        "only what cannot be re-keyed"
    );
    let keyed: Vec<(String, String)> = conn
        .prepare("SELECT address_key, reason FROM suppressions")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keyed.len(), 1, "{keyed:?}");
    assert_eq!(keyed[0].1, "erased", "the re-keyed record keeps its reason");
    assert_ne!(keyed[0].0, legacy_hash("back@example.com"));
}

#[tokio::test]
async fn a_missing_or_unreadable_secret_stops_the_store_instead_of_being_replaced() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let secret: String = raw(&path)
        .query_row(
            "SELECT value FROM engine_state WHERE key = 'unsubscribe_key'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(secret.len(), 64, "a new database gets a 32-byte secret");
    for broken in [
        "UPDATE engine_state SET value = 'not hex' WHERE key = 'unsubscribe_key'",
        "DELETE FROM engine_state WHERE key = 'unsubscribe_key'",
    ] {
        raw(&path).execute(broken, []).unwrap();
        let err = SqliteStore::open(&path).await.err().expect("refused");
        assert!(matches!(err, StoreError::Secret(_)), "{err}");
        assert!(err.to_string().contains("unsubscribe_key"), "{err}");
        assert!(err.to_string().contains("backup"), "{err}");
    }
    // Nothing was made in its place.
    let left: i64 = raw(&path)
        .query_row(
            "SELECT COUNT(*) FROM engine_state WHERE key = 'unsubscribe_key'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_log_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .ingest(
            &[identify(
                "p1",
                user("u1"),
                traits(Some("p@example.com"), None, json!({})),
            )],
            &prospect(),
        )
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    drop(store);
    // A file an earlier release left readable by everyone is narrowed at open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(SqliteStore::open(&path).await.unwrap());
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn a_database_from_a_newer_release_is_refused_untouched() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tend.db");
    drop(SqliteStore::open(&path).await.unwrap());
    raw(&path).pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteStore::open(&path).await.err().expect("refused");
    assert!(matches!(err, StoreError::Migrate(_)), "{err}");
    assert!(err.to_string().contains("99"), "{err}");
    assert!(err.to_string().contains("newer Tend"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_of_writes_keeps_the_write_ahead_log_bounded() {
    let db = db().await;
    let wal = db.path.with_extension("db-wal");
    let mut largest = 0;
    // Scattered message ids, as Segment's libraries send them, touch pages all over
    // the `message_id` index: far more log than the bound below, if nothing bounds it.
    for round in 0..80u64 {
        let batch: Vec<IngestMessage> = (0..500u64)
            .map(|i| {
                let scattered = (round * 500 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                track(
                    &format!("{scattered:016x}-{round}-{i}"),
                    user(&format!("u{}", i % 97)),
                    "Tick",
                    i as i64,
                )
            })
            .collect();
        db.store.ingest(&batch, &prospect()).await.unwrap();
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM events").await, 40_000);
    let database = std::fs::metadata(&db.path).unwrap().len();
    // The writer checkpoints itself past 16 MB of log, but defers while the checkpoint
    // thread is mid-way, so on a busy machine more batches can land first (39 MB was
    // seen at a load of nine times the cores); left unbounded, this stream grows the log
    // to about 88 MB, which the bound still tells apart.
    assert!(
        largest < 56 << 20,
        "the log reached {largest} bytes beside a {database}-byte database"
    );
}
