//! Reading a whole business out of its SQLite file, for `tend migrate`: every table of
//! [`COPIED_TABLES`] from one read transaction, so all of them come from the same
//! instant even if something writes to the file meanwhile.

use crate::migrations::MIGRATIONS;
use crate::sql::{self, db, get};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;
use tend_store::StoreError;
use tend_store::transfer::{COPIED_TABLES, Cell, TableShape, TransferError, skipped_because};

/// How long opening the snapshot waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A read-only snapshot of a SQLite database, held until this is dropped.
pub struct Export {
    conn: Connection,
}

impl Export {
    /// Opens `path` and starts the snapshot. The file must be at this binary's schema
    /// version: open it with [`crate::SqliteStore::open`] first, which brings it there.
    pub fn open(path: &Path) -> Result<Export, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        conn.pragma_update(None, "query_only", "ON").map_err(db)?;
        // The snapshot starts at the first read after BEGIN: the version check.
        conn.execute_batch("BEGIN").map_err(db)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(db)?;
        let newest = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
        if version != newest {
            return Err(StoreError::Migrate(format!(
                "{}: schema version {version}, but this binary exports version {newest}",
                path.display()
            )));
        }
        Ok(Export { conn })
    }

    /// Every table to copy, with its columns, rows and highest id. Refuses a file
    /// holding a table Tend does not know, rather than leave its rows behind.
    pub fn tables(&self) -> Result<Vec<TableShape>, TransferError> {
        let present: Vec<String> = sql::fetch_all(
            &self.conn,
            "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
            [],
            |row| get(row, "name"),
        )?;
        if let Some(unknown) = present
            .iter()
            .find(|t| !COPIED_TABLES.contains(&t.as_str()) && skipped_because(t).is_none())
        {
            return Err(TransferError::Shape {
                table: unknown.clone(),
                problem: "the SQLite file holds this table, which is not Tend's: \
                          nothing would copy its rows"
                    .into(),
            });
        }
        COPIED_TABLES
            .iter()
            .map(|table| {
                if !present.iter().any(|t| t == table) {
                    return Err(TransferError::Shape {
                        table: (*table).to_owned(),
                        problem: "missing from the SQLite file".into(),
                    });
                }
                Ok(self.shape(table, present.iter().any(|t| t == "sqlite_sequence"))?)
            })
            .collect()
    }

    fn shape(&self, table: &str, has_sequence: bool) -> Result<TableShape, StoreError> {
        let columns: Vec<String> = sql::fetch_all(
            &self.conn,
            &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
            [],
            |row| get(row, "name"),
        )?;
        let rows: i64 = sql::fetch_one(
            &self.conn,
            &format!("SELECT COUNT(*) AS n FROM \"{table}\""),
            [],
            |row| get(row, "n"),
        )?;
        let highest_id = if columns.iter().any(|c| c == "id") {
            let in_table: Option<i64> = sql::fetch_one(
                &self.conn,
                &format!("SELECT MAX(id) AS id FROM \"{table}\""),
                [],
                |row| get(row, "id"),
            )?;
            // AUTOINCREMENT tables remember ids of rows since deleted (erasures).
            let handed_out: Option<i64> = if has_sequence {
                sql::fetch_optional(
                    &self.conn,
                    "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                    [table],
                    |row| get(row, "seq"),
                )?
            } else {
                None
            };
            in_table.max(handed_out)
        } else {
            None
        };
        Ok(TableShape {
            name: table.to_owned(),
            columns,
            rows: u64::try_from(rows).unwrap_or_default(),
            highest_id,
        })
    }

    /// Hands `each` the rows of `table` in id order, `batch` at a time, every row's
    /// cells in the order of `table.columns`.
    pub fn rows<E: From<StoreError>>(
        &self,
        table: &TableShape,
        batch: usize,
        mut each: impl FnMut(Vec<Vec<Cell>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let quoted: Vec<String> = table.columns.iter().map(|c| format!("\"{c}\"")).collect();
        let order = if table.highest_id.is_some() {
            " ORDER BY id"
        } else {
            ""
        };
        let text = format!(
            "SELECT {} FROM \"{}\"{order}",
            quoted.join(", "),
            table.name
        );
        let mut statement = self.conn.prepare(&text).map_err(db)?;
        let mut rows = statement.query([]).map_err(db)?;
        let mut pending = Vec::with_capacity(batch);
        while let Some(row) = rows.next().map_err(db)? {
            let mut cells = Vec::with_capacity(table.columns.len());
            for (i, column) in table.columns.iter().enumerate() {
                cells.push(match row.get_ref(i).map_err(db)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(n) => Cell::Integer(n),
                    ValueRef::Real(x) => Cell::Real(x),
                    ValueRef::Text(bytes) => {
                        Cell::Text(String::from_utf8(bytes.to_vec()).map_err(|_| {
                            StoreError::Corrupt(format!(
                                "{}.{column}: text that is not UTF-8",
                                table.name
                            ))
                        })?)
                    }
                    ValueRef::Blob(_) => {
                        return Err(StoreError::Corrupt(format!(
                            "{}.{column}: a blob, which no column of Tend's holds",
                            table.name
                        ))
                        .into());
                    }
                });
            }
            pending.push(cells);
            if pending.len() == batch {
                each(std::mem::replace(&mut pending, Vec::with_capacity(batch)))?;
            }
        }
        if !pending.is_empty() {
            each(pending)?;
        }
        Ok(())
    }
}
