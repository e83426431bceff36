//! Moving a business from one backend to another (`tend migrate`): which tables carry
//! it, and their rows as plain values that either backend reads and writes.
//!
//! The source exports each table of [`COPIED_TABLES`] with its columns, row count and
//! the highest id it ever handed out; the target takes the rows in that order (parents
//! before the rows that reference them), sets its id generators past those ids, and
//! checks every count before it commits.

use crate::StoreError;

/// The tables that hold a business, in an order where every table comes after the
/// tables it references: the contacts and everything about them, the engine's state
/// (processes, enrollments, touches with their decisions and outbox state, offer
/// statistics, budget usage, open work, the signal cursors and the install's secrets in
/// `engine_state`), the work log, API tokens, the console's people, sessions and
/// actions, suppressions (keyed and legacy) and mail feedback.
pub const COPIED_TABLES: &[&str] = &[
    "contacts",
    "contact_aliases",
    "events",
    "stage_history",
    "api_tokens",
    "legacy_suppressions",
    "suppressions",
    "processes",
    "enrollments",
    "touches",
    "offer_stats",
    "engine_state",
    "work_log",
    "users",
    "sessions",
    "console_actions",
    "mail_feedback",
];

/// Tables either backend has that are deliberately not copied, and why.
pub const SKIPPED_TABLES: &[(&str, &str)] = &[
    (
        "stage_counts",
        "contacts per stage, kept by triggers: the target's own count the contacts as \
         they are copied",
    ),
    (
        "stage_moves_hourly",
        "stage changes per hour, kept by triggers: the target's own count the stage \
         history as it is copied",
    ),
    (
        "stage_firsts",
        "each contact's first entry into each stage with the touches before it, kept \
         by triggers: the target's own fill in as the history and touches are copied",
    ),
    (
        "stage_count_changes",
        "PostgreSQL's changes to the contacts per stage not folded yet: only ever a \
         running transaction's own",
    ),
    (
        "stage_move_changes",
        "PostgreSQL's changes to the stage changes per hour not folded yet: only ever a \
         running transaction's own",
    ),
    (
        "funnel_fold_marker",
        "PostgreSQL's mark of a transaction whose funnel changes are folded at its \
         commit: only ever a running transaction's own",
    ),
    (
        "import_drafts",
        "contact lists uploaded to the console and waiting at most 30 minutes for their \
         confirmation: upload again after the move",
    ),
    (
        "login_attempts",
        "failed console logins of the last 15 minutes, counted for the login rate \
         limit: the count starts again after the move",
    ),
    (
        "sqlite_sequence",
        "SQLite's record of the highest id each table handed out: it becomes the next \
         value of the target's id generators, not rows",
    ),
    (
        "contacts_search",
        "SQLite's full-text index of contacts' addresses and names (its migration \
         0012); PostgreSQL keeps its own index of the same words",
    ),
    (
        "contacts_search_config",
        "part of SQLite's full-text index of contacts",
    ),
    (
        "contacts_search_data",
        "part of SQLite's full-text index of contacts",
    ),
    (
        "contacts_search_docsize",
        "part of SQLite's full-text index of contacts",
    ),
    (
        "contacts_search_idx",
        "part of SQLite's full-text index of contacts",
    ),
    (
        "sqlite_stat1",
        "SQLite's query planner statistics, rebuilt by the target's own ANALYZE",
    ),
    (
        "_sqlx_migrations",
        "the schema versions earlier releases (built on sqlx) recorded in a SQLite \
         file; the target records its own",
    ),
    (
        "webhook_tokens",
        "single-use tokens of signed provider webhooks, each kept only until its \
         signature's timestamp is too old to be accepted anyway (15 minutes after it): \
         none is worth moving",
    ),
    (
        "tend_schema_migrations",
        "PostgreSQL's own record of the schema versions it applied",
    ),
];

/// Why a table is skipped, if it is one of [`SKIPPED_TABLES`].
pub fn skipped_because(table: &str) -> Option<&'static str> {
    SKIPPED_TABLES
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, why)| *why)
}

/// One stored value, as both backends can hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer: ids, instants in milliseconds, counts, flags as 0 or 1.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text, JSON documents included.
    Text(String),
}

/// A table as the source holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    /// The table's name, the same in both backends.
    pub name: String,
    /// Its columns, in the order every exported row lists them.
    pub columns: Vec<String>,
    /// How many rows it holds.
    pub rows: u64,
    /// For a table with an integer `id`: the highest id it ever handed out, erased rows'
    /// included, so that the target never hands one out again (a touch's id is in its
    /// email's Message-ID, and the engine reads events behind an id cursor).
    pub highest_id: Option<i64>,
}

/// Why a move could not be made. Nothing is written to the target when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The target already holds a business (or part of one).
    #[error(
        "the target database is not empty: `{table}` has {rows} row(s). Migrate into a new, \
         empty database (createdb), or drop this one first"
    )]
    TargetNotEmpty {
        /// The first table found holding rows.
        table: String,
        /// How many.
        rows: u64,
    },
    /// The two schemas disagree about a table: this binary's backends are out of step.
    #[error("table `{table}`: {problem}")]
    Shape {
        /// The table.
        table: String,
        /// What differs.
        problem: String,
    },
    /// A table's rows did not all arrive.
    #[error("table `{table}`: the source has {expected} row(s) but the target received {copied}")]
    CountMismatch {
        /// The table.
        table: String,
        /// Rows in the source.
        expected: u64,
        /// Rows in the target.
        copied: u64,
    },
    /// A backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::{COPIED_TABLES, SKIPPED_TABLES};

    #[test]
    fn no_table_is_both_copied_and_skipped() {
        for (skipped, _) in SKIPPED_TABLES {
            assert!(!COPIED_TABLES.contains(skipped), "{skipped}");
        }
    }
}
