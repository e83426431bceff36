//! SQL text builders, statement runners and row decoding shared by the SQLite
//! statements.
//!
//! Fixed statements number their parameters (`?1`, `?2`), so the order of binding never
//! depends on the order of first appearance; PostgreSQL's twin of this module spells the
//! same text `$1`, `$2`. Generated multi-row statements and `IN` lists use anonymous `?`.
//! Every statement goes through the connection's prepared-statement cache.

use jiff::Timestamp;
use rusqlite::types::FromSql;
use rusqlite::{Connection, Params, Row, ToSql, params, params_from_iter};
use serde_json::{Map, Value};
use tend_core::{ContactId, StageName};
use tend_store::{Contact, StageEnrollment, StoreError};

/// A driver error as the backend-free [`StoreError::Backend`].
pub(crate) fn db(error: rusqlite::Error) -> StoreError {
    StoreError::backend(error)
}

/// Largest key list sent in one `IN (…)`; bigger lists are split.
const MAX_IN_KEYS: usize = 512;

/// Column list of [`ContactRow`], in the order [`ContactRow::decode`] reads it.
macro_rules! contact_columns {
    () => {
        "id, email, user_id, name, timezone, stage, attributes, created_at, updated_at, \
         suppressed_at, last_touch_at"
    };
}
pub(crate) use contact_columns;

/// `?, ?, …` for `count` placeholders.
fn placeholder_list(count: usize) -> String {
    let mut sql = String::with_capacity(count * 3);
    for i in 0..count {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('?');
    }
    sql
}

/// Runs a statement that returns no rows; returns how many rows it changed.
pub(super) fn execute(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached(sql)
        .map_err(db)?
        .execute(params)
        .map_err(db)? as u64)
}

/// Runs a statement and decodes every row it returns.
pub(super) fn fetch_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut decode: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(db)?;
    let mut rows = statement.query(params).map_err(db)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Runs a statement and decodes its first row, if it returns one.
pub(super) fn fetch_optional<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(db)?;
    let mut rows = statement.query(params).map_err(db)?;
    match rows.next().map_err(db)? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// Runs a statement that always returns a row (an aggregate) and decodes it.
pub(super) fn fetch_one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    fetch_optional(conn, sql, params, decode)?
        .ok_or_else(|| db(rusqlite::Error::QueryReturnedNoRows))
}

/// Parameters bound in order, for generated statements.
pub(super) type Binds<'a> = Vec<&'a dyn ToSql>;

/// Runs a generated statement with parameters bound in order and decodes every row.
pub(super) fn fetch_binds<T>(
    conn: &Connection,
    sql: &str,
    binds: &Binds<'_>,
    decode: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    fetch_all(conn, sql, params_from_iter(binds.iter()), decode)
}

/// Runs `{head} ({keys}){tail}` for the keys, in chunks, and decodes every row.
///
/// Lists are padded to a power of two by repeating the last key, so a handful of
/// statement shapes stay in the prepared-statement cache whatever the batch size.
pub(super) fn fetch_in<K: ToSql, T>(
    conn: &Connection,
    head: &str,
    tail: &str,
    keys: &[K],
    mut decode: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(MAX_IN_KEYS) {
        let padded = chunk.len().next_power_of_two();
        let sql = format!("{head} ({}){tail}", placeholder_list(padded));
        let last = chunk.last().expect("chunks are never empty");
        let binds = chunk
            .iter()
            .chain(std::iter::repeat_n(last, padded - chunk.len()));
        out.extend(fetch_all(conn, &sql, params_from_iter(binds), &mut decode)?);
    }
    Ok(out)
}

/// Reads one column, naming it when the stored value is not what the schema promises.
pub(super) fn get<T: FromSql>(row: &Row<'_>, column: &str) -> Result<T, StoreError> {
    row.get(column)
        .map_err(|e| StoreError::Corrupt(format!("column `{column}`: {e}")))
}

/// Reads the column at `index` (named `column` in errors), for hot decoders that know
/// their column order.
pub(super) fn get_at<T: FromSql>(
    row: &Row<'_>,
    index: usize,
    column: &str,
) -> Result<T, StoreError> {
    row.get(index)
        .map_err(|e| StoreError::Corrupt(format!("column `{column}`: {e}")))
}

/// Milliseconds since the epoch as stored, back to an instant.
pub(super) fn timestamp(ms: i64, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::Corrupt(format!("{what}: {ms} is not a valid instant: {e}")))
}

/// An instant as stored.
pub(super) fn millis(at: Timestamp) -> i64 {
    at.as_millisecond()
}

/// A JSON object column, which must hold an object.
pub(super) fn json_object(text: &str, what: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(StoreError::Corrupt(format!(
            "{what}: expected a JSON object, found `{other}`"
        ))),
        Err(e) => Err(StoreError::Corrupt(format!("{what}: invalid JSON: {e}"))),
    }
}

/// A JSON object as stored.
pub(super) fn json_text(map: &Map<String, Value>) -> String {
    // Serializing a map of JSON values cannot fail: keys are strings, values are JSON.
    serde_json::to_string(map).expect("a JSON map always serializes")
}

/// A `contacts` row as stored, before its JSON and instants are checked.
#[derive(Debug, Clone)]
pub(super) struct ContactRow {
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
    /// Reads the columns selected by `contact_columns!()`, by position: rows are decoded
    /// by the thousand, and finding a column by name compares every name before it.
    pub fn decode(row: &Row<'_>) -> Result<Self, StoreError> {
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
            suppressed_at: self
                .suppressed_at
                .map(|ms| timestamp(ms, &what("suppressed_at")))
                .transpose()?,
            last_touch_at: self
                .last_touch_at
                .map(|ms| timestamp(ms, &what("last_touch_at")))
                .transpose()?,
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
pub(super) fn update_contacts(conn: &Connection, rows: &[&ContactRow]) -> Result<(), StoreError> {
    let mut update = conn
        .prepare_cached(
            "UPDATE contacts SET email = ?2, user_id = ?3, name = ?4, timezone = ?5, stage = ?6, \
         attributes = ?7, updated_at = ?8, suppressed_at = ?9 WHERE id = ?1",
        )
        .map_err(db)?;
    for c in rows {
        update
            .execute(params![
                c.id,
                c.email,
                c.user_id,
                c.name,
                c.timezone,
                c.stage,
                c.attributes,
                c.updated_at,
                c.suppressed_at
            ])
            .map_err(db)?;
    }
    Ok(())
}

/// A `stage_history` row waiting to be written.
#[derive(Debug, Clone)]
pub(super) struct HistoryRow {
    pub contact_id: i64,
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    /// The event that caused the change, so the timeline can show it right after it.
    pub message_id: Option<String>,
    pub at: i64,
    /// Whether and from when the change enrolls (see migration 0011).
    pub enrollment: StageEnrollment,
}

/// Appends stage history.
pub(super) fn insert_history(conn: &Connection, rows: &[HistoryRow]) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO stage_history (contact_id, from_stage, to_stage, reason, message_id, at, \
             enrolls, enroll_not_before) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(db)?;
    for h in rows {
        let (enrolls, not_before) = match h.enrollment {
            StageEnrollment::Now => (true, None),
            StageEnrollment::NotBefore(instant) => (true, Some(instant.as_millisecond())),
            StageEnrollment::No => (false, None),
        };
        insert
            .execute(params![
                h.contact_id,
                h.from,
                h.to,
                h.reason,
                h.message_id,
                h.at,
                enrolls,
                not_before
            ])
            .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists_are_comma_separated() {
        assert_eq!(placeholder_list(1), "?");
        assert_eq!(placeholder_list(3), "?, ?, ?");
    }

    #[test]
    fn padded_key_lists_return_each_row_once() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3), (4);",
        )
        .unwrap();
        // Three keys run as a list of four, the last repeated.
        let mut found = fetch_in(
            &conn,
            "SELECT id FROM t WHERE id IN",
            "",
            &[3_i64, 1, 2],
            |row| get::<i64>(row, "id"),
        )
        .unwrap();
        found.sort_unstable();
        assert_eq!(found, [1, 2, 3]);
    }
}
