//! API tokens on SQLite: created by name, found by hash, listed, revoked, and their last
//! use recorded.

use super::sql::{self, get, millis, timestamp};
use jiff::Timestamp;
use rusqlite::{Connection, Row, params};
use tend_store::{ApiToken, StoreError, TokenScope};

const COLUMNS: &str = "id, name, scope, created_at, last_used_at";

pub(super) fn create(
    conn: &Connection,
    name: &str,
    scope: TokenScope,
    token_hash: &str,
    at: Timestamp,
) -> Result<ApiToken, StoreError> {
    let taken: bool = sql::fetch_one(
        conn,
        "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE name = ?1) AS taken",
        params![name],
        |row| get(row, "taken"),
    )?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "a token named `{name}` exists; revoke it first or choose another name"
        )));
    }
    let id = sql::fetch_one(
        conn,
        "INSERT INTO api_tokens (name, scope, token_hash, created_at) \
         VALUES (?1, ?2, ?3, ?4) RETURNING id",
        params![name, scope.as_str(), token_hash, millis(at)],
        |row| get(row, "id"),
    )?;
    Ok(ApiToken {
        id,
        name: name.to_owned(),
        scope,
        // What a later read returns: the instant at millisecond precision.
        created_at: timestamp(millis(at), "token created_at")?,
        last_used_at: None,
    })
}

pub(super) fn find(conn: &Connection, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
    sql::fetch_optional(
        conn,
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = ?1"),
        params![token_hash],
        decode,
    )
}

pub(super) fn list(conn: &Connection) -> Result<Vec<ApiToken>, StoreError> {
    sql::fetch_all(
        conn,
        &format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name"),
        [],
        decode,
    )
}

pub(super) fn revoke(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(sql::execute(
        conn,
        "DELETE FROM api_tokens WHERE name = ?1",
        params![name],
    )? > 0)
}

pub(super) fn record_use(conn: &Connection, id: i64, at: Timestamp) -> Result<(), StoreError> {
    // Never moves backwards when two uses are written out of order.
    sql::execute(
        conn,
        "UPDATE api_tokens SET last_used_at = ?2 \
         WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        params![id, millis(at)],
    )?;
    Ok(())
}

fn decode(row: &Row<'_>) -> Result<ApiToken, StoreError> {
    let id: i64 = get(row, "id")?;
    let scope: String = get(row, "scope")?;
    Ok(ApiToken {
        id,
        name: get(row, "name")?,
        scope: TokenScope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("token {id}: unknown scope `{scope}`")))?,
        created_at: timestamp(get(row, "created_at")?, &format!("token {id} created_at"))?,
        last_used_at: get::<Option<i64>>(row, "last_used_at")?
            .map(|ms| timestamp(ms, &format!("token {id} last_used_at")))
            .transpose()?,
    })
}
