//! The schema's migrations, embedded so the binary carries its schema, and how a
//! database is brought up to date: in one transaction, under an advisory lock so that
//! nodes starting together migrate once, with the versions applied recorded in
//! `tend_schema_migrations`.

use crate::sql::db;
use rand::RngCore;
use tend_store::StoreError;
use tend_store::suppression::{self, SECRET_KEY};

/// Migrations in order. One PostgreSQL schema equal to SQLite's after its 0009; later
/// changes add files here (0002 is SQLite's 0011, 0003 its 0010, 0004 its 0012, 0005 its 0013,
/// 0006 its 0014, 0007 its 0015, 0008 its 0016, 0009 its 0017, 0010 its 0018,
/// 0011 its 0019; 0012 has no SQLite twin: SQLite's search ignored accents from the start;
/// 0013 its 0020).
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "schema", include_str!("../migrations/0001_schema.sql")),
    (
        2,
        "import_enrollment",
        include_str!("../migrations/0002_import_enrollment.sql"),
    ),
    (
        3,
        "process_step_counts",
        include_str!("../migrations/0003_process_step_counts.sql"),
    ),
    (
        4,
        "enrollment_trigger",
        include_str!("../migrations/0004_enrollment_trigger.sql"),
    ),
    (
        5,
        "console_bounces_and_pauses",
        include_str!("../migrations/0005_console_bounces_and_pauses.sql"),
    ),
    (
        6,
        "contact_search",
        include_str!("../migrations/0006_contact_search.sql"),
    ),
    (
        7,
        "lease_token",
        include_str!("../migrations/0007_lease_token.sql"),
    ),
    (
        8,
        "webhook_tokens",
        include_str!("../migrations/0008_webhook_tokens.sql"),
    ),
    (
        9,
        "import_drafts",
        include_str!("../migrations/0009_import_drafts.sql"),
    ),
    (
        10,
        "console_at_scale",
        include_str!("../migrations/0010_console_at_scale.sql"),
    ),
    (
        11,
        "login_attempts",
        include_str!("../migrations/0011_login_attempts.sql"),
    ),
    (
        12,
        "search_ignores_accents",
        include_str!("../migrations/0012_search_ignores_accents.sql"),
    ),
    (
        13,
        "report_counters",
        include_str!("../migrations/0013_report_counters.sql"),
    ),
];

/// The oldest server Tend runs on (`server_version_num`): the report counters' triggers
/// (migration 0013) call `pg_current_xact_id()`, new in PostgreSQL 13.
const OLDEST_SERVER: i32 = 130_000;

/// The advisory lock migrations run under ("TENDMIGR" in ASCII).
const MIGRATION_LOCK: i64 = 0x5445_4E44_4D49_4752;

/// Brings the schema up to date; refuses a database written by a newer Tend.
pub(crate) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    let (server, version): (i32, String) = tx
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version')",
            &[],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .map_err(db)?;
    if server < OLDEST_SERVER {
        return Err(StoreError::Migrate(format!(
            "the server runs PostgreSQL {version}; Tend needs PostgreSQL 13 or later"
        )));
    }
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    // The server's notices ("relation … already exists, skipping" on every start) are
    // not news to the person reading the log; warnings still come through.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning; \
         CREATE TABLE IF NOT EXISTS tend_schema_migrations (\
           version     BIGINT PRIMARY KEY, \
           description TEXT NOT NULL, \
           applied_at  BIGINT NOT NULL)",
    )
    .await
    .map_err(db)?;
    let applied: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) AS version FROM tend_schema_migrations",
            &[],
        )
        .await
        .map_err(db)?
        .try_get("version")
        .map_err(db)?;
    let newest = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if applied > newest {
        return Err(StoreError::Migrate(format!(
            "the database is at schema version {applied}, newer than this binary's {newest}: \
             it was written by a newer Tend"
        )));
    }
    let now = jiff::Timestamp::now().as_millisecond();
    for (version, description, text) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        tx.batch_execute(text)
            .await
            .map_err(|e| StoreError::Migrate(format!("{version:04}_{description}: {e}")))?;
        if *version == 1 {
            make_secrets(&tx).await?;
        }
        tx.execute(
            "INSERT INTO tend_schema_migrations (version, description, applied_at) \
             VALUES ($1, $2, $3)",
            &[version, description, &now],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

/// The install's secrets, made with the schema so that a missing one later is an
/// error to report, never a reason to make a new one (which would break every
/// unsubscribe link already mailed).
async fn make_secrets(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
    let mut secret = [0u8; 32];
    let mut instance = [0u8; 6];
    {
        // The thread's generator stays on this thread: it is dropped before any await.
        let mut rng = rand::rng();
        rng.fill_bytes(&mut secret);
        rng.fill_bytes(&mut instance);
    }
    for (key, value) in [
        (SECRET_KEY, suppression::hex(&secret)),
        (
            suppression::Secret::Instance.key(),
            suppression::hex(&instance),
        ),
    ] {
        tx.execute(
            "INSERT INTO engine_state (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO NOTHING",
            &[&key, &value],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}
