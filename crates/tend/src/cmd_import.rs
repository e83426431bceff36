//! `tend import contacts FILE.csv`: upsert contacts by email, reporting every bad row.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use tend::import_rows::RowReader;
use tend_core::config::Config;
use tend_store::{ImportOutcome, ImportRow, Store};

/// Rows written per transaction: large enough to amortise the commit, small enough to
/// keep the progress bar moving and memory flat.
const CHUNK_ROWS: usize = 2_000;
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
    let mut rows = match RowReader::new(opened) {
        Ok(rows) => rows,
        Err(reason) => {
            eprintln!("{shown}:1: {reason}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let progress = Progress::new(size);
    let now = jiff::Timestamp::now();
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    let mut total = ImportOutcome::default();
    let mut rejected = 0usize;
    while let Some((line, row)) = rows.next_row(config) {
        match row {
            Ok(row) => chunk.push(row),
            Err(reason) => {
                progress.reject(format!("{shown}:{line}: {reason}"));
                rejected += 1;
            }
        }
        if chunk.len() == CHUNK_ROWS {
            write_chunk(store, config, &mut chunk, &mut total, now).await?;
            progress.advance(
                rows.byte(),
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
