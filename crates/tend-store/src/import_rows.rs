//! A contact list as a CSV file, read the one way `tend import contacts` and the
//! console's Import page both read it: the header, then one validated contact per row,
//! each good or rejected with its line. Pure (no store), so the fuzz targets run
//! exactly what the command and the page run.

use crate::ImportRow;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::rc::Rc;
use tend_core::config::Config;
use tend_core::{Email, TimeZoneName};

/// Columns with a meaning of their own; every other column is an attribute.
const KNOWN_COLUMNS: [&str; 4] = ["email", "name", "stage", "timezone"];
/// The most one field may hold: a whole Segment message (`/v1/identify`) is capped at
/// 32 KiB, so no single trait that ingest could take in is longer.
pub const MAX_FIELD_BYTES: usize = 32 * 1024;
/// The most one row may take before reading stops: csv holds a whole row in memory,
/// so without a cap one endless quoted field would take all of it. Room for 128
/// fields at the limit.
pub const MAX_ROW_BYTES: u64 = 128 * MAX_FIELD_BYTES as u64;

/// Where each known column is, and the attribute columns with their names.
struct Columns {
    email: usize,
    name: Option<usize>,
    stage: Option<usize>,
    timezone: Option<usize>,
    attributes: Vec<(usize, String)>,
}

/// Reads rows from a CSV source, validating each into an [`ImportRow`].
pub struct RowReader<R: Read> {
    reader: csv::Reader<RowCap<CrlfAsLf<BufReader<R>>>>,
    /// Where the row being read starts, for the cap.
    row_start: Rc<Cell<u64>>,
    headers: csv::StringRecord,
    columns: Columns,
    record: csv::StringRecord,
    /// The line each address was first seen on, so a repeat names it.
    first_line_of: HashMap<Email, u64>,
    /// Reading failed; the rest of the source is not read.
    failed: bool,
}

impl<R: Read> RowReader<R> {
    /// Reads the header row; the error says what is wrong with it (line 1).
    pub fn new(source: R) -> Result<Self, String> {
        let row_start = Rc::new(Cell::new(0));
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(RowCap {
                inner: CrlfAsLf::new(BufReader::new(source)),
                read: 0,
                row_start: Rc::clone(&row_start),
            });
        let headers = reader
            .headers()
            .map_err(|e| format!("cannot read the header row: {}", csv_reason(&e)))?
            .clone();
        let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let email = column("email").ok_or(
            "missing column `email` (columns: email, name, stage, timezone, then any attributes)",
        )?;
        let columns = Columns {
            email,
            name: column("name"),
            stage: column("stage"),
            timezone: column("timezone"),
            attributes: headers
                .iter()
                .enumerate()
                .filter(|(_, h)| !KNOWN_COLUMNS.iter().any(|k| k.eq_ignore_ascii_case(h)))
                .map(|(i, h)| (i, h.to_owned()))
                .collect(),
        };
        Ok(RowReader {
            reader,
            row_start,
            headers,
            columns,
            record: csv::StringRecord::new(),
            first_line_of: HashMap::new(),
            failed: false,
        })
    }

    /// The next row with the line it starts on, valid or with the reason it is not;
    /// `None` at the end of the file.
    pub fn next_row(&mut self, config: &Config) -> Option<(u64, Result<ImportRow, String>)> {
        if self.failed {
            return None;
        }
        let line = self.reader.position().line();
        self.row_start.set(self.reader.position().byte());
        match self.reader.read_record(&mut self.record) {
            Ok(false) => return None,
            Ok(true) => {}
            Err(err) => {
                let line = err.position().map_or(line, |p| p.line());
                // A malformed row is skipped; after an I/O error nothing more is read.
                self.failed = matches!(err.kind(), csv::ErrorKind::Io(_));
                return Some((line, Err(csv_reason(&err))));
            }
        }
        let line = self.record.position().map_or(line, |p| p.line());
        let row = self.validate(config);
        if let Ok(row) = &row {
            self.first_line_of.insert(row.email.clone(), line);
        }
        Some((line, row))
    }

    /// How far into the source the reader is, in bytes, for progress.
    pub fn byte(&self) -> u64 {
        self.reader.position().byte()
    }

    fn validate(&self, config: &Config) -> Result<ImportRow, String> {
        let record = &self.record;
        let columns = &self.columns;
        if let Some((i, field)) = record
            .iter()
            .enumerate()
            .find(|(_, f)| f.len() > MAX_FIELD_BYTES)
        {
            return Err(format!(
                "`{}` is {} bytes long; a field may hold at most {MAX_FIELD_BYTES}",
                self.headers.get(i).unwrap_or("?"),
                field.len()
            ));
        }
        let cell = |col: Option<usize>| col.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let email = Email::parse(record.get(columns.email).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        if let Some(first) = self.first_line_of.get(&email) {
            return Err(format!("{email} is already on line {first}"));
        }
        let stage = match cell(columns.stage) {
            None => None,
            Some(name) => Some(config.stage(name).cloned().ok_or_else(|| {
                let known: Vec<_> = config.stages.order.iter().map(|s| s.as_str()).collect();
                format!("unknown stage `{name}` (known: {})", known.join(", "))
            })?),
        };
        let timezone = cell(columns.timezone)
            .map(TimeZoneName::parse)
            .transpose()?;
        let attributes: Map<String, Value> = columns
            .attributes
            .iter()
            .filter_map(|(i, h)| {
                record
                    .get(*i)
                    .filter(|v| !v.is_empty())
                    .map(|v| (h.clone(), Value::from(v)))
            })
            .collect();
        Ok(ImportRow {
            email,
            name: cell(columns.name).map(str::to_owned),
            stage,
            timezone,
            attributes,
        })
    }
}

/// A csv error in words.
fn csv_reason(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields, found {len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => err.to_string(),
    }
}

/// Fails a read once the row being read is past [`MAX_ROW_BYTES`] (plus what csv
/// reads ahead), so a row is never held in memory whole when it is that long.
struct RowCap<R> {
    inner: R,
    /// Bytes handed to csv so far.
    read: u64,
    row_start: Rc<Cell<u64>>,
}

/// csv reads ahead by at most its buffer, 8 KiB.
const READ_AHEAD: u64 = 8 * 1024;

impl<R: Read> Read for RowCap<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.read.saturating_sub(self.row_start.get()) > MAX_ROW_BYTES + READ_AHEAD {
            return Err(std::io::Error::other(format!(
                "this row is longer than {MAX_ROW_BYTES} bytes; it and the rest of the file were not read"
            )));
        }
        let n = self.inner.read(out)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads a file with its CRLF line ends as LF. csv ends a record at the `\r` of a
/// CRLF and counts the line at the `\n`, which it reads with the next record, so the
/// next record's position is one line early; with plain `\n` ends every position is
/// the line the record starts on, quoted multi-line fields included.
struct CrlfAsLf<R> {
    inner: R,
    /// A `\r` ended the last buffer: whether it starts a CRLF is not known yet.
    pending_cr: bool,
}

impl<R: std::io::BufRead> CrlfAsLf<R> {
    fn new(inner: R) -> Self {
        CrlfAsLf {
            inner,
            pending_cr: false,
        }
    }
}

impl<R: std::io::BufRead> std::io::Read for CrlfAsLf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let buf = self.inner.fill_buf()?;
        if self.pending_cr {
            self.pending_cr = false;
            if buf.first() != Some(&b'\n') {
                out[0] = b'\r';
                return Ok(1);
            }
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let (mut read, mut written) = (0, 0);
        while read < buf.len() && written < out.len() {
            let byte = buf[read];
            read += 1;
            if byte == b'\r' {
                match buf.get(read) {
                    Some(b'\n') => continue,
                    Some(_) => {}
                    None => {
                        self.pending_cr = true;
                        break;
                    }
                }
            }
            out[written] = byte;
            written += 1;
        }
        self.inner.consume(read);
        if written == 0 {
            // Only a `\r` at the end of the buffer was taken: look past it.
            return self.read(out);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// Reads through buffers of `capacity` bytes, so a `\r` can end one.
    fn normalized(input: &[u8], capacity: usize) -> Vec<u8> {
        let mut out = Vec::new();
        CrlfAsLf::new(BufReader::with_capacity(capacity, input))
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn crlf_becomes_lf_and_a_lone_cr_stays() {
        let input = b"a,b\r\nc,\"d\r\ne\"\r\nf\rg\r";
        for capacity in [1, 2, 3, 4, 1024] {
            assert_eq!(
                normalized(input, capacity),
                b"a,b\nc,\"d\ne\"\nf\rg\r",
                "buffers of {capacity}"
            );
        }
    }
}
