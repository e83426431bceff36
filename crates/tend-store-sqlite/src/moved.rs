//! The mark `tend migrate` leaves in a SQLite file whose business moved to PostgreSQL.
//!
//! The file still holds every pending touch. Served again beside the PostgreSQL
//! database, both would send them: the mark lets every command refuse the file, naming
//! where the business went, until someone deliberately takes the file back.

use crate::sql::db as db_error;
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;
use tend_store::StoreError;

/// The `engine_state` key of the mark.
const MOVED_KEY: &str = "moved_to";

/// Where a file's business went, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedTo {
    /// The database it went to, without its password.
    pub target: String,
    /// When the move committed.
    pub at: Timestamp,
}

impl std::fmt::Display for MovedTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "moved to {} on {}",
            self.target,
            self.at.strftime("%Y-%m-%d %H:%M UTC")
        )
    }
}

/// Marks the file at `path` as moved to `target` (which must hold no password).
pub fn mark_moved(path: &Path, target: &str, at: Timestamp) -> Result<(), StoreError> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(db_error)?;
    let value = serde_json::json!({ "target": target, "at": at.as_millisecond() }).to_string();
    conn.execute(
        "INSERT INTO engine_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![MOVED_KEY, value],
    )
    .map_err(db_error)?;
    Ok(())
}

/// Where the file at `path` moved, if `tend migrate` marked it; `None` for a file
/// that never moved, or no Tend database at all.
pub fn moved_to(path: &Path) -> Result<Option<MovedTo>, StoreError> {
    if !path.is_file() {
        return Ok(None);
    }
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db_error)?;
    let has_state: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = 'engine_state')",
            [],
            |row| row.get(0),
        )
        .map_err(db_error)?;
    if !has_state {
        return Ok(None);
    }
    let Some(value) = conn
        .query_row(
            "SELECT value FROM engine_state WHERE key = ?1",
            params![MOVED_KEY],
            |row| row.get::<_, String>(0),
        )
        .optional()
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let corrupt = || StoreError::Corrupt(format!("engine_state `{MOVED_KEY}`: {value}"));
    let parsed: serde_json::Value = serde_json::from_str(&value).map_err(|_| corrupt())?;
    let target = parsed["target"].as_str().ok_or_else(corrupt)?.to_owned();
    let at = parsed["at"]
        .as_i64()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .ok_or_else(corrupt)?;
    Ok(Some(MovedTo { target, at }))
}

/// Takes the mark off: the file may be served again. Returns where it had moved.
pub fn clear_moved(path: &Path) -> Result<Option<MovedTo>, StoreError> {
    let Some(moved) = moved_to(path)? else {
        return Ok(None);
    };
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(db_error)?;
    conn.execute(
        "DELETE FROM engine_state WHERE key = ?1",
        params![MOVED_KEY],
    )
    .map_err(db_error)?;
    Ok(Some(moved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_moved_file_says_where_until_the_mark_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tend.db");
        assert_eq!(moved_to(&path).unwrap(), None, "no file");
        drop(crate::SqliteStore::open(&path).await.unwrap());
        assert_eq!(moved_to(&path).unwrap(), None, "never moved");
        let at = Timestamp::from_second(1_780_000_000).unwrap();
        mark_moved(&path, "postgres://tend@db/studio", at).unwrap();
        let moved = moved_to(&path).unwrap().expect("marked");
        assert_eq!(moved.target, "postgres://tend@db/studio");
        assert_eq!(moved.at, at);
        assert_eq!(
            moved.to_string(),
            "moved to postgres://tend@db/studio on 2026-05-28 20:26 UTC"
        );
        assert_eq!(clear_moved(&path).unwrap(), Some(moved));
        assert_eq!(moved_to(&path).unwrap(), None);
        assert_eq!(clear_moved(&path).unwrap(), None);
    }
}
