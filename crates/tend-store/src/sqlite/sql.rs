//! SQL text builders and row decoding shared by the SQLite statements.
//!
//! Fixed statements use `$N` placeholders, so their text also runs on PostgreSQL.
//! Generated multi-row statements and `IN` lists use anonymous `?` instead: SQLite looks
//! a named parameter up by walking a list, so binding n `$N` parameters costs O(n²) —
//! about a tenth of a second for a 1,000-row insert. PostgreSQL's twin of this module
//! generates `$N` for the same shapes.

use crate::{Contact, StoreError};
use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Decode, Encode, Row, Sqlite, Type};
use tend_core::{ContactId, StageName};

/// Upper bound on bound parameters per statement: under SQLite's 32,766 and PostgreSQL's
/// 65,535, so every generated statement runs on both.
pub(super) const MAX_PARAMS: usize = 30_000;

/// Largest key list sent in one `IN (…)`; bigger lists are split.
const MAX_IN_KEYS: usize = 512;

/// Column list of [`ContactRow`], in the order [`ContactRow::decode`] reads it.
macro_rules! contact_columns {
    () => {
        "id, email, user_id, name, timezone, stage, attributes, created_at, updated_at, \
         suppressed_at, last_touch_at"
    };
}
pub(super) use contact_columns;

/// `(?, ?), (?, ?)`: `rows` groups of `cols` placeholders, bound in order.
pub(super) fn values_list(rows: usize, cols: usize) -> String {
    let group = format!("({})", placeholder_list(cols));
    let mut sql = String::with_capacity(rows * (group.len() + 2));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&group);
    }
    sql
}

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

/// Rows per multi-row statement of `cols` columns.
pub(super) fn rows_per_statement(cols: usize) -> usize {
    MAX_PARAMS / cols
}

/// Runs `{head} ({keys}){tail}` for the keys, in chunks, and returns every row.
///
/// Lists are padded to a power of two by repeating the last key, so a handful of
/// statement shapes stay in the prepared-statement cache whatever the batch size.
pub(super) async fn fetch_in<K>(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    keys: &[K],
) -> Result<Vec<SqliteRow>, StoreError>
where
    K: for<'q> Encode<'q, Sqlite> + Type<Sqlite> + Clone + Send + Sync,
{
    let mut rows = Vec::new();
    for chunk in keys.chunks(MAX_IN_KEYS) {
        let padded = chunk.len().next_power_of_two();
        let sql = format!("{head} ({}){tail}", placeholder_list(padded));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for key in chunk {
            query = query.bind(key.clone());
        }
        let last = chunk.last().expect("chunks are never empty");
        for _ in chunk.len()..padded {
            query = query.bind(last.clone());
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Reads one column, naming it when the stored value is not what the schema promises.
pub(super) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column)
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
    /// Reads the columns selected by `contact_columns!()`.
    pub fn decode(row: &SqliteRow) -> Result<Self, StoreError> {
        Ok(ContactRow {
            id: get(row, "id")?,
            email: get(row, "email")?,
            user_id: get(row, "user_id")?,
            name: get(row, "name")?,
            timezone: get(row, "timezone")?,
            stage: get(row, "stage")?,
            attributes: get(row, "attributes")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
            suppressed_at: get(row, "suppressed_at")?,
            last_touch_at: get(row, "last_touch_at")?,
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

/// Writes back changed contacts in multi-row upserts by id.
///
/// `created_at` and `last_touch_at` are left alone: the first never changes and the
/// second belongs to the engine.
pub(super) async fn update_contacts(
    conn: &mut SqliteConnection,
    rows: &[&ContactRow],
) -> Result<(), StoreError> {
    const COLS: usize = 10;
    for chunk in rows.chunks(rows_per_statement(COLS)) {
        let sql = format!(
            "INSERT INTO contacts (id, email, user_id, name, timezone, stage, attributes, \
             created_at, updated_at, suppressed_at) VALUES {} \
             ON CONFLICT (id) DO UPDATE SET email = excluded.email, \
             user_id = excluded.user_id, name = excluded.name, timezone = excluded.timezone, \
             stage = excluded.stage, attributes = excluded.attributes, \
             updated_at = excluded.updated_at, suppressed_at = excluded.suppressed_at",
            values_list(chunk.len(), COLS)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for c in chunk {
            query = query
                .bind(c.id)
                .bind(c.email.clone())
                .bind(c.user_id.clone())
                .bind(c.name.clone())
                .bind(c.timezone.clone())
                .bind(c.stage.clone())
                .bind(c.attributes.clone())
                .bind(c.created_at)
                .bind(c.updated_at)
                .bind(c.suppressed_at);
        }
        query.execute(&mut *conn).await?;
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
}

/// Appends stage history in multi-row inserts.
pub(super) async fn insert_history(
    conn: &mut SqliteConnection,
    rows: &[HistoryRow],
) -> Result<(), StoreError> {
    const COLS: usize = 6;
    for chunk in rows.chunks(rows_per_statement(COLS)) {
        let sql = format!(
            "INSERT INTO stage_history (contact_id, from_stage, to_stage, reason, message_id, \
             at) VALUES {}",
            values_list(chunk.len(), COLS)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for h in chunk {
            query = query
                .bind(h.contact_id)
                .bind(h.from.clone())
                .bind(h.to.clone())
                .bind(h.reason.clone())
                .bind(h.message_id.clone())
                .bind(h.at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_list_numbers_placeholders_in_order() {
        assert_eq!(values_list(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(placeholder_list(2), "?, ?");
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        for cols in 1..=12 {
            assert!(rows_per_statement(cols) * cols <= MAX_PARAMS);
        }
    }
}
