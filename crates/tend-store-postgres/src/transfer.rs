//! Receiving a business moved from another backend (`tend migrate`): every table in one
//! transaction on a database that must hold nothing yet, rows streamed in with `COPY`,
//! ids kept as they were and the id generators set past the highest ever handed out,
//! and every table's count checked before the commit. Until [`Import::commit`]
//! succeeds nothing is visible, and an error or a drop leaves the database as it was.

use crate::migrations;
use crate::pool;
use crate::sql::db;
use bytes::{BufMut, Bytes, BytesMut};
use deadpool_postgres::{Object, Pool};
use futures_util::SinkExt;
use std::pin::Pin;
use tend_store::StoreError;
use tend_store::suppression::{SECRET_KEY, Secret};
use tend_store::transfer::{COPIED_TABLES, Cell, TableShape, TransferError, skipped_because};
use tokio_postgres::CopyInSink;

/// How long taking the locks on Tend's tables may wait for a server using them.
const LOCK_TIMEOUT: &str = "10s";

/// A move into a PostgreSQL database, in one transaction held open until committed.
pub struct Import {
    client: Object,
    /// Owns the one connection; dropping it closes that, rolling the move back.
    _pool: Pool,
    target: String,
}

impl Import {
    /// Connects to `url`, brings its schema up to date, starts the transaction, locks
    /// Tend's tables so that no server works on them meanwhile, and refuses a database
    /// that holds anything but the secrets its schema was made with (which the source's
    /// replace: its unsubscribe links and suppression keys must keep working).
    pub async fn start(url: &str) -> Result<Import, TransferError> {
        let (pool, connect) = pool::build(url)?;
        let target = connect.target;
        let mut client = pool.get().await.map_err(|e| pool::pool_error(&target, e))?;
        migrations::migrate(&mut client).await?;
        client
            .batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            .await
            .map_err(db)?;
        let import = Import {
            client,
            _pool: pool,
            target,
        };
        import.check_tables().await?;
        let all: Vec<String> = COPIED_TABLES.iter().map(|t| quoted(t)).collect();
        import
            .client
            .batch_execute(&format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                all.join(", ")
            ))
            .await
            .map_err(|e| {
                StoreError::Backend(
                    format!(
                        "locking Tend's tables at {} (is a `tend serve` using it?): {e}",
                        import.target
                    )
                    .into(),
                )
            })?;
        import.refuse_contents().await?;
        import
            .client
            .execute(
                "DELETE FROM engine_state WHERE key = ANY($1)",
                &[&schema_secrets()],
            )
            .await
            .map_err(db)?;
        Ok(import)
    }

    /// Where the move goes, without the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Every table of the schema is either filled by the move or deliberately skipped.
    async fn check_tables(&self) -> Result<(), TransferError> {
        let rows = self
            .client
            .query(
                "SELECT table_name::text AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                &[],
            )
            .await
            .map_err(db)?;
        let present: Vec<String> = rows.iter().map(|row| row.get("name")).collect();
        if let Some(unknown) = present
            .iter()
            .find(|t| !COPIED_TABLES.contains(&t.as_str()) && skipped_because(t).is_none())
        {
            return Err(TransferError::Shape {
                table: unknown.clone(),
                problem: "PostgreSQL's schema has this table, which the move would leave \
                          empty"
                    .into(),
            });
        }
        if let Some(missing) = COPIED_TABLES
            .iter()
            .find(|t| !present.iter().any(|p| p == *t))
        {
            return Err(TransferError::Shape {
                table: (*missing).to_owned(),
                problem: "missing from PostgreSQL's schema".into(),
            });
        }
        Ok(())
    }

    /// Refuses a database holding any row but the secrets its schema was made with.
    async fn refuse_contents(&self) -> Result<(), TransferError> {
        for table in COPIED_TABLES {
            let rows: i64 = if *table == "engine_state" {
                self.client
                    .query_one(
                        "SELECT COUNT(*) FROM engine_state WHERE key <> ALL($1)",
                        &[&schema_secrets()],
                    )
                    .await
            } else {
                self.client
                    .query_one(&format!("SELECT COUNT(*) FROM {}", quoted(table)), &[])
                    .await
            }
            .map_err(db)?
            .get(0);
            if rows > 0 {
                return Err(TransferError::TargetNotEmpty {
                    table: (*table).to_owned(),
                    rows: rows.unsigned_abs(),
                });
            }
        }
        Ok(())
    }

    /// Starts copying the rows of `table`, after checking that every source column has
    /// a column here and that every column here the source lacks may be left to its
    /// default.
    pub async fn copy(&mut self, table: &TableShape) -> Result<TableCopy<'_>, TransferError> {
        let rows = self
            .client
            .query(
                "SELECT column_name::text AS name, \
                   (is_nullable = 'YES' OR column_default IS NOT NULL OR is_identity = 'YES') \
                     AS optional \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[&table.name],
            )
            .await
            .map_err(db)?;
        let here: Vec<(String, bool)> = rows
            .iter()
            .map(|row| (row.get("name"), row.get("optional")))
            .collect();
        for column in &table.columns {
            if !here.iter().any(|(name, _)| name == column) {
                return Err(TransferError::Shape {
                    table: table.name.clone(),
                    problem: format!(
                        "the source's column `{column}` has no column in PostgreSQL's schema"
                    ),
                });
            }
        }
        if let Some((column, _)) = here
            .iter()
            .find(|(name, optional)| !optional && !table.columns.contains(name))
        {
            return Err(TransferError::Shape {
                table: table.name.clone(),
                problem: format!(
                    "PostgreSQL's column `{column}` needs a value and the source has no such \
                     column"
                ),
            });
        }
        let columns: Vec<String> = table.columns.iter().map(|c| quoted(c)).collect();
        let statement = format!(
            "COPY {} ({}) FROM STDIN",
            quoted(&table.name),
            columns.join(", ")
        );
        let sink = self
            .client
            .copy_in::<_, Bytes>(statement.as_str())
            .await
            .map_err(|e| copy_error(&table.name, e))?;
        Ok(TableCopy {
            sink: Box::pin(sink),
            table: table.name.clone(),
            buffer: BytesMut::new(),
            _import: std::marker::PhantomData,
        })
    }

    /// Checks every table's count against the source's, sets each id generator past
    /// the highest id the source handed out, and commits. Returns the rows per table.
    pub async fn commit(self, tables: &[TableShape]) -> Result<Vec<(String, u64)>, TransferError> {
        let mut counts = Vec::with_capacity(tables.len());
        for table in tables {
            let copied: i64 = self
                .client
                .query_one(
                    &format!("SELECT COUNT(*) FROM {}", quoted(&table.name)),
                    &[],
                )
                .await
                .map_err(db)?
                .get(0);
            let copied = copied.unsigned_abs();
            if copied != table.rows {
                return Err(TransferError::CountMismatch {
                    table: table.name.clone(),
                    expected: table.rows,
                    copied,
                });
            }
            if let Some(highest) = table.highest_id.filter(|id| *id > 0) {
                self.client
                    .execute(
                        "SELECT setval(pg_get_serial_sequence($1, 'id'), $2, true)",
                        &[&table.name, &highest],
                    )
                    .await
                    .map_err(db)?;
            }
            counts.push((table.name.clone(), copied));
        }
        self.client.batch_execute("COMMIT").await.map_err(db)?;
        // Fresh statistics, so the first queries on the moved data plan well.
        self.client.batch_execute("ANALYZE").await.map_err(db)?;
        Ok(counts)
    }
}

/// Rows going into one table; [`TableCopy::finish`] ends the copy.
pub struct TableCopy<'a> {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    table: String,
    buffer: BytesMut,
    /// The connection is busy with the copy until it finishes.
    _import: std::marker::PhantomData<&'a mut Import>,
}

impl TableCopy<'_> {
    /// Sends rows, each with its cells in the order of the table's columns.
    pub async fn send(&mut self, rows: &[Vec<Cell>]) -> Result<(), TransferError> {
        for row in rows {
            encode_row(&mut self.buffer, row);
        }
        let chunk = self.buffer.split().freeze();
        self.sink
            .send(chunk)
            .await
            .map_err(|e| copy_error(&self.table, e).into())
    }

    /// Ends the copy; returns how many rows the server took.
    pub async fn finish(mut self) -> Result<u64, TransferError> {
        self.sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| copy_error(&self.table, e).into())
    }
}

/// The secrets a new schema is made with; the source brings its own.
fn schema_secrets() -> Vec<&'static str> {
    vec![SECRET_KEY, Secret::Instance.key()]
}

/// A copy's error, naming the table (the server's message names the line and column).
fn copy_error(table: &str, error: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("copying `{table}`: {}", server_message(&error)).into())
}

/// The server's own message and where it points, else the driver's.
fn server_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.where_() {
            Some(place) => format!("{} ({place})", db.message()),
            None => db.message().to_owned(),
        },
        None => error.to_string(),
    }
}

/// An identifier in double quotes (Tend's names never hold one).
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// Appends one row in `COPY`'s text format: tab-separated, `\N` for NULL, and the four
/// characters that format treats specially escaped.
fn encode_row(buffer: &mut BytesMut, row: &[Cell]) {
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            buffer.put_u8(b'\t');
        }
        match cell {
            Cell::Null => buffer.put_slice(b"\\N"),
            Cell::Integer(n) => buffer.put_slice(n.to_string().as_bytes()),
            Cell::Real(x) if x.is_infinite() => {
                buffer.put_slice(if *x > 0.0 { b"Infinity" } else { b"-Infinity" });
            }
            Cell::Real(x) => buffer.put_slice(x.to_string().as_bytes()),
            Cell::Text(text) => {
                for byte in text.bytes() {
                    match byte {
                        b'\\' => buffer.put_slice(b"\\\\"),
                        b'\t' => buffer.put_slice(b"\\t"),
                        b'\n' => buffer.put_slice(b"\\n"),
                        b'\r' => buffer.put_slice(b"\\r"),
                        other => buffer.put_u8(other),
                    }
                }
            }
        }
    }
    buffer.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::{BytesMut, Cell, encode_row};

    #[test]
    fn rows_are_encoded_in_copy_text_format() {
        let mut buffer = BytesMut::new();
        encode_row(
            &mut buffer,
            &[
                Cell::Integer(-7),
                Cell::Null,
                Cell::Real(0.25),
                Cell::Text("a\tb\nc\\d\re \\N".into()),
                Cell::Real(f64::NEG_INFINITY),
            ],
        );
        assert_eq!(
            &buffer[..],
            b"-7\t\\N\t0.25\ta\\tb\\nc\\\\d\\re \\\\N\t-Infinity\n"
        );
    }
}
