//! `tend import contacts FILE.csv`: upsert contacts by email, reporting every bad row.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use tend_core::config::Config;
use tend_store::import_rows::RowReader;
use tend_store::{EnrollChoice, ImportOutcome, ImportRow, Store};

/// Rows written per transaction: large enough to amortise the commit, small enough to
/// keep the progress bar moving and memory flat.
const CHUNK_ROWS: usize = 2_000;
/// Imports the file; exits non-zero if any row was rejected (the good rows still land).
pub fn run(config_path: &Path, file: &Path, enroll: EnrollChoice) -> anyhow::Result<ExitCode> {
    let project = crate::project::load_valid_project(config_path)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::open_store(config_path, &project.config).await?;
        import(store.as_ref(), &project.config, file, enroll).await
    })
}

/// How many rows of the file are good: a spread needs the count to space them.
fn count_good_rows(config: &Config, file: &Path) -> anyhow::Result<usize> {
    let opened =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let Ok(mut rows) = RowReader::new(opened) else {
        // The import itself reports the bad header.
        return Ok(0);
    };
    let mut good = 0;
    while let Some((_, row)) = rows.next_row(config) {
        good += usize::from(row.is_ok());
    }
    Ok(good)
}

async fn import(
    store: &dyn Store,
    config: &Config,
    file: &Path,
    enroll: EnrollChoice,
) -> anyhow::Result<ExitCode> {
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
    let total_rows = match enroll {
        // Read twice: the first pass only counts, so memory stays flat.
        EnrollChoice::Spread(_) => count_good_rows(config, file)?,
        EnrollChoice::Now | EnrollChoice::None => 0,
    };
    let progress = Progress::new(size);
    let now = jiff::Timestamp::now();
    let plan = Plan {
        enroll,
        start: now,
        total_rows,
    };
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
            write_chunk(store, config, &mut chunk, &mut total, &plan).await?;
            progress.advance(
                rows.byte(),
                total.inserted + total.updated + total.unchanged,
            );
        }
    }
    write_chunk(store, config, &mut chunk, &mut total, &plan).await?;
    progress.finish();
    println!(
        "imported {} rows from {shown}: {} new, {} updated, {} unchanged; {rejected} rejected",
        total.inserted + total.updated + total.unchanged,
        total.inserted,
        total.updated,
        total.unchanged,
    );
    match enroll {
        EnrollChoice::Now => {}
        EnrollChoice::Spread(period) => println!(
            "their enrollments start spread over {period} from {}",
            now.round(jiff::Unit::Second).unwrap_or(now)
        ),
        EnrollChoice::None => {
            println!("nobody was enrolled: a later stage change or enrolling event enrolls them")
        }
    }
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What every chunk of one import shares.
struct Plan {
    enroll: EnrollChoice,
    start: jiff::Timestamp,
    /// Good rows in the file, for a spread.
    total_rows: usize,
}

async fn write_chunk(
    store: &dyn Store,
    config: &Config,
    chunk: &mut Vec<ImportRow>,
    total: &mut ImportOutcome,
    plan: &Plan,
) -> anyhow::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let written = total.inserted + total.updated + total.unchanged;
    let enrollment = plan.enroll.for_chunk(plan.start, plan.total_rows, written);
    let outcome = store
        .import_contacts(chunk, config.first_stage(), plan.start, enrollment)
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
