//! Tend's storage: the [`Store`] trait every caller uses, and its backends.
//!
//! Instants are stored as integer milliseconds since the Unix epoch and ids as 64-bit
//! integers, so the SQL text can be shared with the PostgreSQL backend that follows.

mod model;
mod sqlite;
pub mod tokens;

pub use model::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use jiff::Timestamp;
use std::path::Path;
use std::sync::Arc;
use tend_core::{ContactId, Email, StageName};

/// Everything that can go wrong talking to storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend Tend has.
    #[error("unsupported database url `{0}`: use sqlite://PATH")]
    UnsupportedUrl(String),
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not decode into what the schema promises; says which and why.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A list cursor that no previous page returned.
    #[error("`{0}` is not a cursor from a previous page")]
    InvalidCursor(String),
    /// The contact was erased, but its bytes could not yet be purged from every file.
    #[error("erasure incomplete: {0}")]
    EraseIncomplete(String),
}

/// The one storage interface; each backend implements all of it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness check for `/healthz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies a validated batch of Segment messages in one transaction: either all of
    /// it is written or none. Messages whose `message_id` was already seen are skipped.
    async fn ingest(
        &self,
        batch: &[IngestMessage],
        new_contact_stage: &StageName,
    ) -> Result<IngestOutcome, StoreError>;

    /// One page of contacts, filtered by stage and by a substring of email or name.
    async fn list_contacts(&self, query: &ContactQuery) -> Result<ContactPage, StoreError>;

    /// One contact by id.
    async fn contact(&self, id: ContactId) -> Result<Option<Contact>, StoreError>;

    /// A contact's events and stage changes, oldest first.
    async fn timeline(&self, id: ContactId) -> Result<Vec<TimelineEntry>, StoreError>;

    /// Erases a contact and every personal datum, keeps a suppression record of the
    /// hashed email, and makes sure the deleted bytes leave the database files.
    /// Returns `false` if there was no such contact.
    async fn erase_contact(&self, id: ContactId, at: Timestamp) -> Result<bool, StoreError>;

    /// Whether this email was erased or otherwise suppressed.
    async fn is_email_suppressed(&self, email: &Email) -> Result<bool, StoreError>;

    /// Upserts validated CSV rows by email in one transaction; rows that change nothing
    /// leave the contact untouched.
    async fn import_contacts(
        &self,
        rows: &[ImportRow],
        default_stage: &StageName,
        at: Timestamp,
    ) -> Result<ImportOutcome, StoreError>;

    /// Stores a new API token by its hash; the clear token is never stored.
    async fn create_token(
        &self,
        name: &str,
        scope: TokenScope,
        token_hash: &str,
        at: Timestamp,
    ) -> Result<ApiToken, StoreError>;

    /// Finds a token by the hash of what a client presented.
    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError>;
}

/// Opens the backend named by `database_url`, creating and migrating it if needed.
/// A relative SQLite path is resolved against `base_dir` (the folder of `tend.toml`).
pub async fn open(database_url: &str, base_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let path = base_dir.join(path);
        return Ok(Arc::new(SqliteStore::open(&path).await?));
    }
    Err(StoreError::UnsupportedUrl(database_url.to_owned()))
}
