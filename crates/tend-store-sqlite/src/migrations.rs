//! The schema's migrations, embedded so the binary carries its schema, and how a
//! database is brought up to date.

use crate::sql::{self, db, get};
use crate::suppress;
use rusqlite::{Connection, TransactionBehavior};
use tend_store::StoreError;

/// Migrations, embedded so the binary carries its schema, applied in order; the
/// database's `user_version` is the last one applied. Every file of
/// `migrations/` must be listed here; a unit test checks it.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "contacts_events_tokens",
        include_str!("../migrations/0001_contacts_events_tokens.sql"),
    ),
    (2, "engine", include_str!("../migrations/0002_engine.sql")),
    (
        3,
        "capacity_held",
        include_str!("../migrations/0003_capacity_held.sql"),
    ),
    (
        4,
        "offers_in_flight_covering",
        include_str!("../migrations/0004_offers_in_flight_covering.sql"),
    ),
    (
        5,
        "token_names_last_used",
        include_str!("../migrations/0005_token_names_last_used.sql"),
    ),
    (
        6,
        "address_suppression",
        include_str!("../migrations/0006_address_suppression.sql"),
    ),
    (
        7,
        "offer_response_delays",
        include_str!("../migrations/0007_offer_response_delays.sql"),
    ),
    (8, "console", include_str!("../migrations/0008_console.sql")),
    (
        9,
        "mail_feedback",
        include_str!("../migrations/0009_mail_feedback.sql"),
    ),
    (
        10,
        "process_step_counts",
        include_str!("../migrations/0010_process_step_counts.sql"),
    ),
    (
        11,
        "import_enrollment",
        include_str!("../migrations/0011_import_enrollment.sql"),
    ),
    (
        12,
        "enrollment_trigger",
        include_str!("../migrations/0012_enrollment_trigger.sql"),
    ),
    (
        13,
        "console_bounces_and_pauses",
        include_str!("../migrations/0013_console_bounces_and_pauses.sql"),
    ),
    (
        14,
        "contact_search",
        include_str!("../migrations/0014_contact_search.sql"),
    ),
    (
        15,
        "lease_token",
        include_str!("../migrations/0015_lease_token.sql"),
    ),
    (
        16,
        "webhook_tokens",
        include_str!("../migrations/0016_webhook_tokens.sql"),
    ),
    (
        17,
        "import_drafts",
        include_str!("../migrations/0017_import_drafts.sql"),
    ),
    (
        18,
        "console_at_scale",
        include_str!("../migrations/0018_console_at_scale.sql"),
    ),
    (
        19,
        "login_attempts",
        include_str!("../migrations/0019_login_attempts.sql"),
    ),
    (
        20,
        "report_counters",
        include_str!("../migrations/0020_report_counters.sql"),
    ),
    (
        21,
        "engine_hot_paths",
        include_str!("../migrations/0021_engine_hot_paths.sql"),
    ),
];

/// Brings the schema up to date, each migration in its own transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let mut applied: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(db)?;
    if applied == 0 {
        applied = applied_by_earlier_releases(conn)?;
    }
    let newest = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if applied > newest {
        return Err(StoreError::Migrate(format!(
            "the database is at schema version {applied}, newer than this binary's {newest}: \
             it was written by a newer Tend"
        )));
    }
    for (version, description, text) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute_batch(text)
            .map_err(|e| StoreError::Migrate(format!("{version:04}_{description}: {e}")))?;
        if *version == 6 {
            suppress::rekey_legacy(&tx).map_err(|e| {
                StoreError::Migrate(format!("{version:04}_{description}: re-keying: {e}"))
            })?;
        }
        tx.pragma_update(None, "user_version", version)
            .map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

/// The last migration that earlier releases, built on sqlx, recorded in
/// `_sqlx_migrations`; 0 for a new database.
pub(crate) fn applied_by_earlier_releases(conn: &Connection) -> Result<i64, StoreError> {
    let known: bool = sql::fetch_one(
        conn,
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' \
         AND name = '_sqlx_migrations') AS known",
        [],
        |row| get(row, "known"),
    )?;
    if !known {
        return Ok(0);
    }
    sql::fetch_one(
        conn,
        "SELECT COALESCE(MAX(version), 0) AS version FROM _sqlx_migrations WHERE success",
        [],
        |row| get(row, "version"),
    )
}
