//! `tend migrate --to postgres://…`: moves the business from its SQLite file into an
//! empty PostgreSQL database in one transaction, checks every table's row count, and
//! says what to change in `tend.toml`. The SQLite file keeps its data but is marked
//! as moved, so that no command serves or writes it by mistake (`--reclaim` undoes it).

use crate::database::{Database, without_password};
use crate::project::load_valid_project;
use crate::server_lock::ServerLock;
use anyhow::{Context, bail};
use std::path::Path;
use std::process::ExitCode;
use tend_store::Store;
use tend_store::suppression::Secret;
use tend_store::transfer::{Cell, TableShape, TransferError};
use tend_store_postgres::PostgresStore;
use tend_store_postgres::transfer::Import;
use tend_store_sqlite::{Export, SqliteStore};
use tokio::sync::mpsc;

/// Rows read from SQLite and sent to PostgreSQL at a time.
const BATCH: usize = 2_000;

/// What the SQLite reader hands the PostgreSQL writer, in this order: the tables, then
/// each table's rows followed by its end.
enum Piece {
    Tables(Vec<TableShape>),
    Rows(Vec<Vec<Cell>>),
    TableEnd,
}

/// Moves the business whose config is `config_path` into the database `to` names.
pub fn run(config_path: &Path, to: &str) -> anyhow::Result<ExitCode> {
    let project = load_valid_project(config_path)?;
    let source = Database::of(config_path, &project.config.database_url)?;
    let database = source
        .sqlite_only(
            "`tend migrate`",
            "it moves a business from its SQLite file, and this one has moved already",
        )?
        .to_owned();
    if !database.is_file() {
        bail!(
            "there is no database at {}: nothing to move",
            database.display()
        );
    }
    if let Some(moved) = tend_store_sqlite::moved_to(&database)? {
        bail!(
            "{} was {moved} already; run `tend migrate --reclaim` first if you mean to \
             move this file again (and only once nothing serves {} any more)",
            database.display(),
            moved.target
        );
    }
    let shown = without_password(to);
    // Held to the end: no server may start on the file and send what is being moved.
    let _lock = ServerLock::acquire_for(&database, "migrating to PostgreSQL").context(
        "refusing to migrate while a server runs on the SQLite file; nothing was written",
    )?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let counts = runtime
        .block_on(move_business(&database, to))
        .with_context(|| {
            format!(
                "moving {} to {shown}; nothing was written to PostgreSQL",
                database.display()
            )
        })?;
    runtime
        .block_on(prove_secrets_moved(&database, to))
        .with_context(|| format!("opening the moved business at {shown}"))?;

    // From here on every command refuses the file, so nothing serves it by mistake.
    let marked = tend_store_sqlite::mark_moved(&database, &shown, jiff::Timestamp::now());
    println!("moved {} to {shown}:", database.display());
    for (table, rows) in &counts {
        println!("  {table:<20} {rows:>12}");
    }
    println!(
        "every table's row count matches the SQLite file's, and the install's secrets came \
         along (unsubscribe links already mailed keep working)."
    );
    println!();
    println!("Now, in {}, set:", config_path.display());
    println!();
    println!("  database_url = \"{shown}\"");
    println!();
    if shown != to {
        println!("(with the password where *** stands)");
    }
    match marked {
        Ok(()) => println!(
            "and start `tend serve`. {} keeps its data as a backup and is marked as moved: \
             every tend command refuses it from now on, so the touches pending in both \
             cannot go out twice (`tend migrate --reclaim` takes the mark off).",
            database.display()
        ),
        Err(error) => eprintln!(
            "warning: {} could not be marked as moved ({error}); never serve it again \
             beside {shown}, or the touches pending in both go out twice.",
            database.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `tend migrate --reclaim`: takes the "moved" mark off the SQLite file, so that it may
/// be served again.
pub fn reclaim(config_path: &Path) -> anyhow::Result<ExitCode> {
    let project = load_valid_project(config_path)?;
    let source = Database::of(config_path, &project.config.database_url)?;
    let database = source
        .sqlite_only(
            "`tend migrate --reclaim`",
            "point database_url at the SQLite file to take back",
        )?
        .to_owned();
    let _lock = ServerLock::acquire_for(&database, "taking the file back")
        .context("refusing while a server runs on the SQLite file")?;
    match tend_store_sqlite::clear_moved(&database)? {
        Some(moved) => {
            println!(
                "{} is no longer marked as {moved}. It holds the business as it was then: \
                 make sure nothing serves {} any more, or the touches pending in both go \
                 out twice.",
                database.display(),
                moved.target
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!(
                "{} was not marked as moved: nothing to do",
                database.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Copies every table, checks the counts and commits; returns the rows per table.
async fn move_business(database: &Path, to: &str) -> anyhow::Result<Vec<(String, u64)>> {
    // Brings the file to this binary's schema and proves its secrets readable.
    drop(
        SqliteStore::open(database)
            .await
            .with_context(|| format!("opening {}", database.display()))?,
    );
    // Refuses a non-empty target before reading anything.
    let mut import = Import::start(to).await?;
    let (sender, mut pieces) = mpsc::channel::<Piece>(4);
    let reader = {
        let database = database.to_owned();
        tokio::task::spawn_blocking(move || read_sqlite(&database, &sender))
    };
    let written = write_postgres(&mut import, &mut pieces).await;
    drop(pieces);
    let read = reader.await.context("the SQLite reader stopped")?;
    // A reader's error explains a writer that ran out of rows; report it first.
    read?;
    let tables = written?;
    Ok(import.commit(&tables).await?)
}

/// Sends every table's shape, then its rows, from one SQLite snapshot.
fn read_sqlite(database: &Path, sender: &mpsc::Sender<Piece>) -> Result<(), TransferError> {
    let export = Export::open(database)?;
    let tables = export.tables()?;
    // A closed channel means the writer failed; its error is the one to report.
    let send = |piece| sender.blocking_send(piece).map_err(|_| WriterGone);
    if send(Piece::Tables(tables.clone())).is_err() {
        return Ok(());
    }
    for table in &tables {
        let sent = export.rows(table, BATCH, |rows| {
            send(Piece::Rows(rows)).map_err(ReadStop::Gone)
        });
        match sent {
            Ok(()) => {}
            Err(ReadStop::Gone(WriterGone)) => return Ok(()),
            Err(ReadStop::Failed(error)) => return Err(error.into()),
        }
        if send(Piece::TableEnd).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The writer stopped taking rows.
struct WriterGone;

/// Why reading a table stopped early.
enum ReadStop {
    Gone(WriterGone),
    Failed(tend_store::StoreError),
}

impl From<tend_store::StoreError> for ReadStop {
    fn from(error: tend_store::StoreError) -> Self {
        ReadStop::Failed(error)
    }
}

/// Copies what the reader sends into the open import; returns the tables it copied.
async fn write_postgres(
    import: &mut Import,
    pieces: &mut mpsc::Receiver<Piece>,
) -> anyhow::Result<Vec<TableShape>> {
    let Some(Piece::Tables(tables)) = pieces.recv().await else {
        bail!("the SQLite reader sent no tables");
    };
    for table in &tables {
        let mut copy = import.copy(table).await?;
        loop {
            match pieces.recv().await {
                Some(Piece::Rows(rows)) => copy.send(&rows).await?,
                Some(Piece::TableEnd) => break,
                Some(Piece::Tables(_)) | None => bail!("the SQLite reader stopped mid-table"),
            }
        }
        copy.finish().await?;
    }
    Ok(tables)
}

/// Opens the moved business as `tend serve` will, and checks that its signing secret is
/// the SQLite file's: links already mailed and suppression keys depend on it.
async fn prove_secrets_moved(database: &Path, to: &str) -> anyhow::Result<()> {
    let moved = PostgresStore::open(to).await?;
    let original = SqliteStore::open(database).await?;
    if moved.secret(Secret::Signing).await? != original.secret(Secret::Signing).await? {
        bail!("its signing secret differs from the SQLite file's");
    }
    Ok(())
}
