//! Statement runners and row decoding shared by the PostgreSQL statements.
//!
//! Every statement goes through the connection's prepared-statement cache, so a
//! statement is parsed and planned once per connection, not once per call. Parameters
//! are typed by the server from the statement: integers are `i64` (BIGINT), reals `f64`,
//! JSON is bound as text and cast (`$1::text::jsonb`) and read back as text, so rows
//! decode into the same shapes as SQLite's. Key lists are one array parameter
//! (`= ANY($1)`), so no statement text depends on a list's length.

use deadpool_postgres::Transaction;
use jiff::Timestamp;
use serde_json::{Map, Value};
use tend_core::{ContactId, StageName};
use tend_store::{Contact, StageEnrollment, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

/// A transaction on a pooled connection.
pub(crate) type Tx<'a> = Transaction<'a>;

/// One bound parameter.
pub(crate) type Param<'a> = &'a (dyn ToSql + Sync);

/// A driver error as the backend-free [`StoreError::Backend`].
pub(crate) fn db(error: tokio_postgres::Error) -> StoreError {
    StoreError::backend(error)
}

/// Column list of [`ContactRow`], in the order [`ContactRow::decode`] reads it.
macro_rules! contact_columns {
    () => {
        "id, email, user_id, name, timezone, stage, attributes::text AS attributes, \
         created_at, updated_at, suppressed_at, last_touch_at"
    };
}
pub(crate) use contact_columns;

/// The advisory lock every transaction that appends events or stage changes holds
/// until it commits: the engine reads both tables behind an id cursor, so ids must
/// become visible in the order they were handed out, as they do with SQLite's single
/// writer. ("TENDSIGN" in ASCII.)
const SIGNAL_WRITERS_LOCK: i64 = 0x5445_4E44_5349_474E;

/// Waits for the other writers of events and stage changes to commit; held to the end
/// of the transaction. Also tells the leader, whichever node it is, that there are
/// signals to read: the notification goes out when the transaction commits, never for
/// one rolled back.
pub(crate) async fn lock_signal_writers(tx: &Tx<'_>) -> Result<(), StoreError> {
    execute(
        tx,
        "SELECT pg_advisory_xact_lock($1), pg_notify($2, 'signals')",
        &[&SIGNAL_WRITERS_LOCK, &crate::coordination::WAKE_CHANNEL],
    )
    .await?;
    Ok(())
}

/// Tells every node's dispatcher, when the transaction commits, that touches were
/// admitted.
pub(crate) async fn announce_dispatch(tx: &Tx<'_>) -> Result<(), StoreError> {
    execute(
        tx,
        "SELECT pg_notify($1, 'dispatch')",
        &[&crate::coordination::WAKE_CHANNEL],
    )
    .await?;
    Ok(())
}

/// Runs a statement that returns no rows; returns how many rows it changed.
pub(crate) async fn execute(
    tx: &Tx<'_>,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    tx.execute(&statement, params).await.map_err(db)
}

/// Runs a statement and decodes every row it returns.
pub(crate) async fn fetch_all<T>(
    tx: &Tx<'_>,
    sql: &str,
    params: &[Param<'_>],
    decode: impl FnMut(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    let rows = tx.query(&statement, params).await.map_err(db)?;
    rows.iter().map(decode).collect()
}

/// Runs a statement and decodes its first row, if it returns one.
pub(crate) async fn fetch_optional<T>(
    tx: &Tx<'_>,
    sql: &str,
    params: &[Param<'_>],
    decode: impl FnOnce(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    let row = tx.query_opt(&statement, params).await.map_err(db)?;
    row.as_ref().map(decode).transpose()
}

/// Runs a statement that always returns a row (an aggregate) and decodes it.
pub(crate) async fn fetch_one<T>(
    tx: &Tx<'_>,
    sql: &str,
    params: &[Param<'_>],
    decode: impl FnOnce(&Row) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(db)?;
    let row = tx.query_one(&statement, params).await.map_err(db)?;
    decode(&row)
}

/// Reads one column, naming it when the stored value is not what the schema promises.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, column: &str) -> Result<T, StoreError> {
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column `{column}`: {e}")))
}

/// Reads the column at `index` (named `column` in errors), for hot decoders.
pub(crate) fn get_at<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::Corrupt(format!("column `{column}`: {e}")))
}

/// Milliseconds since the epoch as stored, back to an instant.
pub(crate) fn timestamp(ms: i64, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::Corrupt(format!("{what}: {ms} is not a valid instant: {e}")))
}

/// An optional stored instant.
pub(crate) fn opt_timestamp(ms: Option<i64>, what: &str) -> Result<Option<Timestamp>, StoreError> {
    ms.map(|ms| timestamp(ms, what)).transpose()
}

/// An instant as stored.
pub(crate) fn millis(at: Timestamp) -> i64 {
    at.as_millisecond()
}

/// A JSON object column, which must hold an object.
pub(crate) fn json_object(text: &str, what: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(StoreError::Corrupt(format!(
            "{what}: expected a JSON object, found `{other}`"
        ))),
        Err(e) => Err(StoreError::Corrupt(format!("{what}: invalid JSON: {e}"))),
    }
}

/// A JSON object as bound.
pub(crate) fn json_text(map: &Map<String, Value>) -> String {
    // Serializing a map of JSON values cannot fail: keys are strings, values are JSON.
    serde_json::to_string(map).expect("a JSON map always serializes")
}

/// A `contacts` row as stored, before its JSON and instants are checked.
#[derive(Debug, Clone)]
pub(crate) struct ContactRow {
    pub id: i64,
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub stage: String,
    pub attributes: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub suppressed_at: Option<i64>,
    pub last_touch_at: Option<i64>,
}

impl ContactRow {
    /// Reads the columns selected by `contact_columns!()`, by position.
    pub fn decode(row: &Row) -> Result<Self, StoreError> {
        Ok(ContactRow {
            id: get_at(row, 0, "id")?,
            email: get_at(row, 1, "email")?,
            user_id: get_at(row, 2, "user_id")?,
            name: get_at(row, 3, "name")?,
            timezone: get_at(row, 4, "timezone")?,
            stage: get_at(row, 5, "stage")?,
            attributes: get_at(row, 6, "attributes")?,
            created_at: get_at(row, 7, "created_at")?,
            updated_at: get_at(row, 8, "updated_at")?,
            suppressed_at: get_at(row, 9, "suppressed_at")?,
            last_touch_at: get_at(row, 10, "last_touch_at")?,
        })
    }

    /// The API's view, checking the JSON and instants on the way.
    pub fn into_contact(self) -> Result<Contact, StoreError> {
        let what = |field: &str| format!("contact {} {field}", self.id);
        Ok(Contact {
            id: ContactId(self.id),
            attributes: json_object(&self.attributes, &what("attributes"))?,
            created_at: timestamp(self.created_at, &what("created_at"))?,
            updated_at: timestamp(self.updated_at, &what("updated_at"))?,
            suppressed_at: opt_timestamp(self.suppressed_at, &what("suppressed_at"))?,
            last_touch_at: opt_timestamp(self.last_touch_at, &what("last_touch_at"))?,
            email: self.email,
            name: self.name,
            timezone: self.timezone,
            stage: StageName::new(self.stage),
            user_id: self.user_id,
        })
    }
}

/// Writes back changed contacts by id.
///
/// `created_at` and `last_touch_at` are left alone: the first never changes and the
/// second belongs to the engine.
pub(crate) async fn update_contacts(tx: &Tx<'_>, rows: &[&ContactRow]) -> Result<(), StoreError> {
    let update = tx
        .prepare_cached(
            "UPDATE contacts SET email = $2, user_id = $3, name = $4, timezone = $5, \
             stage = $6, attributes = $7::text::jsonb, updated_at = $8, suppressed_at = $9 \
             WHERE id = $1",
        )
        .await
        .map_err(db)?;
    for c in rows {
        tx.execute(
            &update,
            &[
                &c.id,
                &c.email,
                &c.user_id,
                &c.name,
                &c.timezone,
                &c.stage,
                &c.attributes,
                &c.updated_at,
                &c.suppressed_at,
            ],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// A `stage_history` row waiting to be written.
#[derive(Debug, Clone)]
pub(crate) struct HistoryRow {
    pub contact_id: i64,
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    /// The event that caused the change, so the timeline can show it right after it.
    pub message_id: Option<String>,
    pub at: i64,
    /// Whether and from when the change enrolls (see migration 0002).
    pub enrollment: StageEnrollment,
}

/// Appends stage history (the caller holds [`lock_signal_writers`]).
pub(crate) async fn insert_history(tx: &Tx<'_>, rows: &[HistoryRow]) -> Result<(), StoreError> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO stage_history (contact_id, from_stage, to_stage, reason, message_id, at, \
             enrolls, enroll_not_before) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(db)?;
    for h in rows {
        let (enrolls, not_before) = match h.enrollment {
            StageEnrollment::Now => (true, None),
            StageEnrollment::NotBefore(instant) => (true, Some(instant.as_millisecond())),
            StageEnrollment::No => (false, None),
        };
        tx.execute(
            &insert,
            &[
                &h.contact_id,
                &h.from,
                &h.to,
                &h.reason,
                &h.message_id,
                &h.at,
                &enrolls,
                &not_before,
            ],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}
