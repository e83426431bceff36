//! `tend import contacts FILE.csv`: upsert contacts by email, reporting every bad row.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use tend_core::config::Config;
use tend_core::{Email, TimeZoneName};
use tend_store::{ImportOutcome, ImportRow, Store};

/// Rows written per transaction: large enough to amortise the commit, small enough to
/// keep the progress bar moving and memory flat.
const CHUNK_ROWS: usize = 2_000;
const KNOWN_COLUMNS: [&str; 4] = ["email", "name", "stage", "timezone"];
/// The most one field may hold: a whole Segment message (`/v1/identify`) is capped at
/// 32 KiB, so no single trait that ingest could take in is longer.
const MAX_FIELD_BYTES: usize = 32 * 1024;

/// Imports the file; exits non-zero if any row was rejected (the good rows still land).
pub fn run(config_path: &Path, file: &Path) -> anyhow::Result<ExitCode> {
    let project = crate::project::load_valid_project(config_path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::open_store(config_path, &project.config).await?;
        import(store.as_ref(), &project.config, file).await
    })
}

async fn import(store: &dyn Store, config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    let shown = file.display().to_string();
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {shown}"))?
        .len();
    let opened = std::fs::File::open(file).with_context(|| format!("opening {shown}"))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(CrlfAsLf::new(std::io::BufReader::new(opened)));
    let headers = reader
        .headers()
        .with_context(|| format!("{shown}:1: cannot read the header row"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(email_col) = column("email") else {
        eprintln!(
            "{shown}:1: missing column `email` (columns: email, name, stage, timezone, then any attributes)"
        );
        return Ok(ExitCode::FAILURE);
    };
    let (name_col, stage_col, tz_col) = (column("name"), column("stage"), column("timezone"));
    let attribute_cols: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| !KNOWN_COLUMNS.iter().any(|k| k.eq_ignore_ascii_case(h)))
        .map(|(i, h)| (i, h.to_owned()))
        .collect();

    let progress = Progress::new(size);
    let now = jiff::Timestamp::now();
    let mut first_line_of: HashMap<Email, u64> = HashMap::new();
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    let mut total = ImportOutcome::default();
    let mut rejected = 0usize;
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                let line = err.position().map_or(line, |p| p.line());
                progress.reject(format!("{shown}:{line}: {}", csv_reason(&err)));
                rejected += 1;
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let cell = |col: Option<usize>| col.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let row = (|| -> Result<ImportRow, String> {
            if let Some((i, field)) = record
                .iter()
                .enumerate()
                .find(|(_, f)| f.len() > MAX_FIELD_BYTES)
            {
                return Err(format!(
                    "`{}` is {} bytes long; a field may hold at most {MAX_FIELD_BYTES}",
                    headers.get(i).unwrap_or("?"),
                    field.len()
                ));
            }
            let email = Email::parse(record.get(email_col).unwrap_or_default())
                .map_err(|e| e.to_string())?;
            if let Some(first) = first_line_of.get(&email) {
                return Err(format!("{email} is already on line {first}"));
            }
            let stage = match cell(stage_col) {
                None => None,
                Some(name) => Some(config.stage(name).cloned().ok_or_else(|| {
                    let known: Vec<_> = config.stages.order.iter().map(|s| s.as_str()).collect();
                    format!("unknown stage `{name}` (known: {})", known.join(", "))
                })?),
            };
            let timezone = cell(tz_col).map(TimeZoneName::parse).transpose()?;
            let attributes: Map<String, Value> = attribute_cols
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
                name: cell(name_col).map(str::to_owned),
                stage,
                timezone,
                attributes,
            })
        })();
        match row {
            Ok(row) => {
                first_line_of.insert(row.email.clone(), line);
                chunk.push(row);
            }
            Err(reason) => {
                progress.reject(format!("{shown}:{line}: {reason}"));
                rejected += 1;
            }
        }
        if chunk.len() == CHUNK_ROWS {
            write_chunk(store, config, &mut chunk, &mut total, now).await?;
            progress.advance(
                reader.position().byte(),
                total.inserted + total.updated + total.unchanged,
            );
        }
    }
    write_chunk(store, config, &mut chunk, &mut total, now).await?;
    progress.finish();
    println!(
        "imported {} rows from {shown}: {} new, {} updated, {} unchanged; {rejected} rejected",
        total.inserted + total.updated + total.unchanged,
        total.inserted,
        total.updated,
        total.unchanged,
    );
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn write_chunk(
    store: &dyn Store,
    config: &Config,
    chunk: &mut Vec<ImportRow>,
    total: &mut ImportOutcome,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let outcome = store
        .import_contacts(chunk, config.first_stage(), now)
        .await
        .context("writing contacts")?;
    total.inserted += outcome.inserted;
    total.updated += outcome.updated;
    total.unchanged += outcome.unchanged;
    total.stage_changes.extend(outcome.stage_changes);
    chunk.clear();
    Ok(())
}

fn csv_reason(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields, found {len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        _ => err.to_string(),
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

/// A progress bar on a terminal; plain periodic lines otherwise (logs, CI, pipes).
struct Progress {
    bar: Option<ProgressBar>,
    last_reported: std::cell::Cell<usize>,
}

const PLAIN_EVERY_ROWS: usize = 20_000;

impl Progress {
    fn new(bytes: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(bytes);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} ({eta} left)")
                    .expect("static template"),
            );
            bar
        });
        Progress {
            bar,
            last_reported: std::cell::Cell::new(0),
        }
    }

    fn advance(&self, byte: u64, rows: usize) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(byte);
                bar.set_message(format!("{rows} rows"));
            }
            None if rows >= self.last_reported.get() + PLAIN_EVERY_ROWS => {
                self.last_reported.set(rows);
                eprintln!("imported {rows} rows so far");
            }
            None => {}
        }
    }

    fn reject(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CrlfAsLf;
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
