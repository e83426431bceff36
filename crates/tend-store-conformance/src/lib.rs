//! The Store behaviours every backend must show, as one suite: `tests/` runs them
//! against the backend that `TEND_TEST_DATABASE_URL` names (`sqlite://PATH`, or a fresh
//! SQLite file in a temporary folder when unset; `postgres://HOST:PORT/DB?…`, a fresh
//! database made on that server for each test and dropped after it), and each backend's
//! own tests reuse [`fixtures`]. CI runs the suite once per backend.

pub mod fixtures;
/// Scratch databases live in the test kit, beside Tend's other real peers.
pub use tend_testkit::postgres;

use std::ops::Deref;
use std::sync::Arc;
use tempfile::TempDir;
use tend_store::Store;
use tend_store_postgres::PostgresStore;
use tend_store_sqlite::SqliteStore;

/// The variable naming the backend under test.
pub const DATABASE_URL_VAR: &str = postgres::TEST_DATABASE_URL_VAR;

/// A fresh, empty store of the backend under test, gone when dropped.
pub struct TestStore {
    /// The store, as every caller sees it.
    pub store: Arc<dyn Store>,
    /// Keeps the temporary folder of a SQLite file until the test ends.
    _dir: Option<TempDir>,
    /// The PostgreSQL database made for the test, dropped after the store.
    _database: Option<postgres::ScratchDatabase>,
}

impl Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

/// Opens a fresh store of the backend `TEND_TEST_DATABASE_URL` names. Panics, naming
/// the URL, when that backend cannot be reached: a suite asked to run against a
/// backend never passes by skipping it.
pub async fn test_store() -> TestStore {
    let url = std::env::var(DATABASE_URL_VAR).unwrap_or_default();
    if url.is_empty() || url.starts_with("sqlite://") {
        // Every test gets a file of its own, so tests run in parallel; a given path
        // only names the kind of backend.
        let dir = TempDir::new().expect("a temporary folder");
        let store = SqliteStore::open(&dir.path().join("tend.db"))
            .await
            .expect("a fresh SQLite store");
        return TestStore {
            store: Arc::new(store),
            _dir: Some(dir),
            _database: None,
        };
    }
    if tend_store_postgres::is_postgres_url(&url) {
        let database = postgres::ScratchDatabase::create(&url).await;
        let store = PostgresStore::open(database.url())
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", database.url()));
        return TestStore {
            store: Arc::new(store),
            _dir: None,
            _database: Some(database),
        };
    }
    panic!("{DATABASE_URL_VAR}={url}: no Tend backend for this URL (sqlite://…, postgres://…)");
}
