//! Uploaded contact lists between the console's preview and their import, kept in the
//! database so that the confirmation may reach any node of a PostgreSQL cluster (or a
//! restarted server) and still import the very bytes the preview read.

use crate::{EnrollChoice, StoreError};
use async_trait::async_trait;
use jiff::Timestamp;

/// How long an upload waits for its confirmation, and its result stays to be seen.
pub const DRAFT_LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_mins(30);

/// How long a confirmation may hold an upload before another may take it over: the
/// request that began it has died with its server.
pub const DRAFT_IMPORT_TIMEOUT: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// The most all kept uploads may weigh together; past it the oldest are forgotten.
pub const MAX_DRAFT_BYTES: u64 = 64 * 1024 * 1024;

/// One uploaded file and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportDraft {
    /// Random, unguessable: the draft's address in the console.
    pub id: String,
    /// Who uploaded it; nobody else may see or import it.
    pub user_id: i64,
    /// The name the browser gave, for the page.
    pub file_name: String,
    /// The file as uploaded; emptied once imported.
    pub bytes: Vec<u8>,
    /// When it was uploaded.
    pub uploaded_at: Timestamp,
    /// Set once the import is done.
    pub imported: Option<DraftImported>,
}

/// What confirming an upload wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftImported {
    /// Contacts created.
    pub inserted: u64,
    /// Contacts changed.
    pub updated: u64,
    /// Rows that changed nothing.
    pub unchanged: u64,
    /// Rows not imported, as the preview listed them.
    pub rejected: u64,
    /// How the imported contacts enroll.
    pub enroll: EnrollChoice,
    /// When it was written.
    pub at: Timestamp,
}

/// Where uploads wait for their confirmation (see the module doc). Every call forgets
/// the drafts uploaded before `now - DRAFT_LIFETIME` on its way.
#[async_trait]
pub trait ImportDraftStore {
    /// Keeps `draft` (its `imported` is ignored), forgetting the oldest uploads while
    /// all kept would weigh more than [`MAX_DRAFT_BYTES`].
    async fn put_import_draft(&self, draft: &ImportDraft, now: Timestamp)
    -> Result<(), StoreError>;

    /// The draft `id` of `user_id`, if it is still kept.
    async fn import_draft(
        &self,
        id: &str,
        user_id: i64,
        now: Timestamp,
    ) -> Result<Option<ImportDraft>, StoreError>;

    /// Takes draft `id` of `user_id` for importing: `None` if it is gone, imported, or
    /// being imported by another request begun less than [`DRAFT_IMPORT_TIMEOUT`] ago,
    /// so one upload is written at most once, whichever node the requests reach.
    async fn begin_draft_import(
        &self,
        id: &str,
        user_id: i64,
        now: Timestamp,
    ) -> Result<Option<ImportDraft>, StoreError>;

    /// Ends what [`ImportDraftStore::begin_draft_import`] began: with what was written
    /// (the bytes go), or with `None` when nothing was and it may be confirmed again.
    async fn finish_draft_import(
        &self,
        id: &str,
        imported: Option<&DraftImported>,
    ) -> Result<(), StoreError>;
}

/// `imported` as the columns both backends store it in: inserted, updated,
/// unchanged, rejected, enroll, at (milliseconds).
pub fn imported_columns(imported: &DraftImported) -> (i64, i64, i64, i64, String, i64) {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    (
        n(imported.inserted),
        n(imported.updated),
        n(imported.unchanged),
        n(imported.rejected),
        imported.enroll.to_string(),
        imported.at.as_millisecond(),
    )
}

/// [`DraftImported`] from the columns [`imported_columns`] wrote; `None` while the
/// draft is not imported (its `at` is NULL).
pub fn imported_from_columns(
    id: &str,
    counts: [i64; 4],
    enroll: Option<&str>,
    at: Option<i64>,
) -> Result<Option<DraftImported>, StoreError> {
    let Some(at) = at else {
        return Ok(None);
    };
    let corrupt = |what: &str| StoreError::Corrupt(format!("import draft {id}: {what}"));
    let count = |v: i64| u64::try_from(v).map_err(|_| corrupt("a negative count"));
    let enroll = enroll
        .ok_or_else(|| corrupt("no enroll choice"))?
        .parse()
        .map_err(|_| corrupt("an unknown enroll choice"))?;
    Ok(Some(DraftImported {
        inserted: count(counts[0])?,
        updated: count(counts[1])?,
        unchanged: count(counts[2])?,
        rejected: count(counts[3])?,
        enroll,
        at: Timestamp::from_millisecond(at).map_err(|_| corrupt("a bad time"))?,
    }))
}
