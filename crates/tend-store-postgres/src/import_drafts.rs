//! Uploaded contact lists waiting for their confirmation, on PostgreSQL (see
//! [`tend_store::drafts`]): any node may take the confirmation of an upload another
//! node previewed, and the conditional update lets exactly one of them import it.

use crate::pool::{Access, in_tx};
use crate::sql::{self, Tx, get, millis, timestamp};
use jiff::Timestamp;
use tend_store::drafts::{
    DRAFT_IMPORT_TIMEOUT, DRAFT_LIFETIME, MAX_DRAFT_BYTES, imported_columns, imported_from_columns,
};
use tend_store::{DraftImported, ImportDraft, StoreError};
use tokio_postgres::Row;

const COLUMNS: &str = "id, user_id, file_name, bytes, uploaded_at, inserted, updated, \
     unchanged, rejected, enroll, imported_at";

/// Uploads older than this (milliseconds) have expired.
fn expired_before(now: Timestamp) -> i64 {
    millis(now) - DRAFT_LIFETIME.as_millis() as i64
}

fn decode(row: &Row) -> Result<ImportDraft, StoreError> {
    let id: String = get(row, "id")?;
    let imported = imported_from_columns(
        &id,
        [
            get(row, "inserted")?,
            get(row, "updated")?,
            get(row, "unchanged")?,
            get(row, "rejected")?,
        ],
        get::<Option<String>>(row, "enroll")?.as_deref(),
        get(row, "imported_at")?,
    )?;
    Ok(ImportDraft {
        user_id: get(row, "user_id")?,
        file_name: get(row, "file_name")?,
        bytes: get(row, "bytes")?,
        uploaded_at: timestamp(get(row, "uploaded_at")?, &format!("import draft {id}"))?,
        imported,
        id,
    })
}

async fn put(tx: &Tx<'_>, draft: &ImportDraft, now: Timestamp) -> Result<(), StoreError> {
    sql::execute(
        tx,
        "DELETE FROM import_drafts WHERE uploaded_at <= $1",
        &[&expired_before(now)],
    )
    .await?;
    sql::execute(
        tx,
        "INSERT INTO import_drafts (id, user_id, file_name, bytes, uploaded_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &draft.id,
            &draft.user_id,
            &draft.file_name,
            &draft.bytes,
            &millis(draft.uploaded_at),
        ],
    )
    .await?;
    // Newest first, the uploads that no longer fit in the bound go.
    sql::execute(
        tx,
        "DELETE FROM import_drafts WHERE id IN (SELECT id FROM (SELECT id, \
           SUM(octet_length(bytes)) OVER (ORDER BY uploaded_at DESC, id DESC) AS kept \
           FROM import_drafts) AS running WHERE kept > $1)",
        &[&(MAX_DRAFT_BYTES as i64)],
    )
    .await?;
    Ok(())
}

async fn find(
    tx: &Tx<'_>,
    id: &str,
    user_id: i64,
    now: Timestamp,
) -> Result<Option<ImportDraft>, StoreError> {
    sql::fetch_optional(
        tx,
        &format!(
            "SELECT {COLUMNS} FROM import_drafts WHERE id = $1 AND user_id = $2 \
             AND uploaded_at > $3"
        ),
        &[&id, &user_id, &expired_before(now)],
        decode,
    )
    .await
}

async fn begin(
    tx: &Tx<'_>,
    id: &str,
    user_id: i64,
    now: Timestamp,
) -> Result<Option<ImportDraft>, StoreError> {
    sql::fetch_optional(
        tx,
        &format!(
            "UPDATE import_drafts SET importing_since = $4 WHERE id = $1 AND user_id = $2 \
             AND uploaded_at > $3 AND imported_at IS NULL \
             AND (importing_since IS NULL OR importing_since <= $5) RETURNING {COLUMNS}"
        ),
        &[
            &id,
            &user_id,
            &expired_before(now),
            &millis(now),
            &(millis(now) - DRAFT_IMPORT_TIMEOUT.as_millis() as i64),
        ],
        decode,
    )
    .await
}

async fn finish(tx: &Tx<'_>, id: &str, imported: Option<&DraftImported>) -> Result<(), StoreError> {
    match imported {
        Some(imported) => {
            let (inserted, updated, unchanged, rejected, enroll, at) = imported_columns(imported);
            sql::execute(
                tx,
                "UPDATE import_drafts SET importing_since = NULL, bytes = ''::bytea, \
                 inserted = $2, updated = $3, unchanged = $4, rejected = $5, enroll = $6, \
                 imported_at = $7 WHERE id = $1",
                &[
                    &id, &inserted, &updated, &unchanged, &rejected, &enroll, &at,
                ],
            )
            .await?;
        }
        None => {
            sql::execute(
                tx,
                "UPDATE import_drafts SET importing_since = NULL WHERE id = $1",
                &[&id],
            )
            .await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl tend_store::ImportDraftStore for crate::PostgresStore {
    async fn put_import_draft(
        &self,
        draft: &ImportDraft,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        in_tx!(self, Access::Write, |tx| put(&tx, draft, now).await?)
    }

    async fn import_draft(
        &self,
        id: &str,
        user_id: i64,
        now: Timestamp,
    ) -> Result<Option<ImportDraft>, StoreError> {
        in_tx!(self, Access::Read, |tx| find(&tx, id, user_id, now).await?)
    }

    async fn begin_draft_import(
        &self,
        id: &str,
        user_id: i64,
        now: Timestamp,
    ) -> Result<Option<ImportDraft>, StoreError> {
        in_tx!(self, Access::Write, |tx| begin(&tx, id, user_id, now)
            .await?)
    }

    async fn finish_draft_import(
        &self,
        id: &str,
        imported: Option<&DraftImported>,
    ) -> Result<(), StoreError> {
        in_tx!(self, Access::Write, |tx| finish(&tx, id, imported).await?)
    }
}
