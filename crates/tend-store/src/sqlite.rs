//! The SQLite backend: one file in WAL mode, a single writer connection and a small pool
//! of readers.
//!
//! All writes go through one connection, so concurrent HTTP requests queue in the pool
//! instead of failing with `SQLITE_BUSY`; write transactions start with
//! `BEGIN IMMEDIATE` so that another process (the CLI importing while `tend serve` runs)
//! waits on the busy timeout instead of failing when a read upgrades to a write.

mod engine;
mod import;
mod ingest;
mod sql;

use crate::*;
use sql::{ContactRow, contact_columns, get, millis, timestamp};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, SqlSafeStr};
use std::collections::HashMap;
use std::time::Duration;

/// Migrations, embedded so the binary carries its schema. Every file of
/// `migrations/sqlite` must be listed here; a unit test checks it.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "contacts_events_tokens",
        include_str!("../migrations/sqlite/0001_contacts_events_tokens.sql"),
    ),
    (
        2,
        "engine",
        include_str!("../migrations/sqlite/0002_engine.sql"),
    ),
    (
        3,
        "capacity_held",
        include_str!("../migrations/sqlite/0003_capacity_held.sql"),
    ),
];

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reader connections; SQLite in WAL mode lets them run alongside the writer.
const READERS: u32 = 4;

/// Whether a database holds a business's data or a simulation's scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Durable,
    Scratch,
}

/// Tend's embedded default: one SQLite file in WAL mode.
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database file.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        SqliteStore::open_with(path, Durability::Durable).await
    }

    /// Opens a scratch database for the simulator: nothing is synced to disk, deleted
    /// rows are not zeroed and one reader is enough, since the file is thrown away and
    /// only one engine reads it. Never for a business's data.
    pub async fn open_scratch(path: &Path) -> Result<Self, StoreError> {
        SqliteStore::open_with(path, Durability::Scratch).await
    }

    async fn open_with(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let scratch = durability == Durability::Scratch;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if scratch {
                SqliteSynchronous::Off
            } else {
                SqliteSynchronous::Normal
            })
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Deleted rows are overwritten with zeros, so an erasure leaves no bytes behind.
            .pragma("secure_delete", if scratch { "OFF" } else { "ON" })
            // A multi-row insert into a table with a foreign key keeps a statement journal
            // of every page it changes; on disk that was a quarter of ingest's writer time.
            .pragma("temp_store", "MEMORY")
            .statement_cache_capacity(256);

        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Keeping the one connection keeps its prepared statements.
            .idle_timeout(None)
            .max_lifetime(None)
            // A ping per acquire would cost a round trip per batch.
            .test_before_acquire(false)
            // Each event touches a leaf of every events index; a larger cache for the
            // one writer keeps those pages in memory as the table grows.
            .connect_with(options.clone().pragma("cache_size", "-16384"))
            .await?;
        migrator().run(&write).await?;

        let read = SqlitePoolOptions::new()
            .max_connections(if scratch { 1 } else { READERS })
            .test_before_acquire(false)
            .connect_with(options.pragma("query_only", "ON"))
            .await?;
        Ok(SqliteStore { write, read })
    }

    /// Closes both pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Benchmark baseline only, not for application use: inserts track events
    /// `(message_id, contact_id, name, properties JSON, occurred_at ms)` in one
    /// transaction, in multi-row INSERTs shaped like ingest's, doing nothing else. The
    /// contacts must exist. Returns the number of rows inserted.
    pub async fn raw_insert_events_for_bench(
        &self,
        rows: &[(String, i64, String, String, i64)],
    ) -> Result<u64, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = ingest::raw_insert_events(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Truncates the write-ahead log, so that pages rewritten by an erasure are the only
    /// copies left. Readers that hold an old snapshot make it wait, up to the busy timeout.
    async fn truncate_wal(&self) -> Result<(), StoreError> {
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.write)
            .await?;
        let busy: i64 = get(&row, "busy")?;
        if busy != 0 {
            return Err(StoreError::EraseIncomplete(
                "the write-ahead log could not be truncated because readers were busy; \
                 erasing the same contact again completes it"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// `contacts` listing statement for the filters present, so each shape can use its index
/// (`stage, id` or the primary key) instead of a generic `$n IS NULL OR …`. Parameters:
/// the cursor, then the stage and the pattern when present, then the limit.
fn list_sql(by_stage: bool, by_text: bool) -> String {
    let mut sql = String::from(concat!(
        "SELECT ",
        contact_columns!(),
        " FROM contacts WHERE id > $1"
    ));
    let mut n = 1;
    if by_stage {
        n += 1;
        sql.push_str(&format!(" AND stage = ${n}"));
    }
    if by_text {
        n += 1;
        sql.push_str(&format!(
            " AND (email LIKE ${n} ESCAPE '\\' OR lower(name) LIKE ${n} ESCAPE '\\')"
        ));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", n + 1));
    sql
}

/// `%text%` for LIKE, with the text's own wildcards taken literally.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn ingest(
        &self,
        batch: &[IngestMessage],
        new_contact_stage: &StageName,
    ) -> Result<IngestOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(IngestOutcome::default());
        }
        let received_at = millis(Timestamp::now());
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = ingest::run(&mut tx, batch, new_contact_stage, received_at).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_contacts(&self, query: &ContactQuery) -> Result<ContactPage, StoreError> {
        let after = match query.cursor.as_deref() {
            None => 0,
            Some(cursor) => cursor
                .parse::<i64>()
                .map_err(|_| StoreError::InvalidCursor(cursor.to_owned()))?,
        };
        if query.limit == 0 {
            return Ok(ContactPage {
                contacts: Vec::new(),
                next_cursor: None,
            });
        }
        let text = query.q.as_deref().filter(|q| !q.is_empty());
        let sql = list_sql(query.stage.is_some(), text.is_some());
        // One row more than asked tells whether another page follows.
        let mut select = sqlx::query(AssertSqlSafe(sql)).bind(after);
        if let Some(stage) = &query.stage {
            select = select.bind(stage.as_str());
        }
        if let Some(text) = text {
            select = select.bind(like_pattern(text));
        }
        let rows = select
            .bind(i64::from(query.limit) + 1)
            .fetch_all(&self.read)
            .await?;
        let more = rows.len() > query.limit as usize;
        let contacts = rows
            .iter()
            .take(query.limit as usize)
            .map(|row| ContactRow::decode(row)?.into_contact())
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match contacts.last() {
            Some(last) if more => Some(last.id.0.to_string()),
            _ => None,
        };
        Ok(ContactPage {
            contacts,
            next_cursor,
        })
    }

    async fn contact(&self, id: ContactId) -> Result<Option<Contact>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            contact_columns!(),
            " FROM contacts WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| ContactRow::decode(&row)?.into_contact())
            .transpose()
    }

    async fn timeline(&self, id: ContactId) -> Result<Vec<TimelineEntry>, StoreError> {
        // One read transaction, so events and stage changes come from the same snapshot.
        let mut tx = self.read.begin().await?;
        let events = sqlx::query(
            "SELECT id, message_id, name, properties, occurred_at FROM events \
             WHERE contact_id = $1 AND kind = 'track' ORDER BY occurred_at, id",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await?;
        let changes = sqlx::query(
            "SELECT id, from_stage, to_stage, reason, message_id, at FROM stage_history \
             WHERE contact_id = $1 ORDER BY at, id",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        // Sort keys `(at, rank, id, after)`: at equal instants a contact's creation comes
        // first, then events, and a change right after the event that caused it.
        type Key = (i64, u8, i64, u8);
        let mut entries: Vec<(Key, TimelineEntry)> =
            Vec::with_capacity(events.len() + changes.len());
        let mut event_keys: HashMap<String, Key> = HashMap::with_capacity(events.len());
        for row in &events {
            let row_id: i64 = get(row, "id")?;
            let at: i64 = get(row, "occurred_at")?;
            let what = format!("event {row_id}");
            let properties: String = get(row, "properties")?;
            let name: Option<String> = get(row, "name")?;
            let message_id: String = get(row, "message_id")?;
            let key = (at, 1, row_id, 0);
            event_keys.insert(message_id.clone(), key);
            let entry = TimelineEntry::Event {
                name: name
                    .ok_or_else(|| StoreError::Corrupt(format!("{what}: track without name")))?,
                properties: sql::json_object(&properties, &format!("{what} properties"))?,
                message_id,
                at: timestamp(at, &what)?,
            };
            entries.push((key, entry));
        }
        for row in &changes {
            let row_id: i64 = get(row, "id")?;
            let at: i64 = get(row, "at")?;
            let from: Option<String> = get(row, "from_stage")?;
            let cause: Option<String> = get(row, "message_id")?;
            let key = match cause.and_then(|m| event_keys.get(&m).copied()) {
                Some((event_at, rank, event_id, _)) => (event_at, rank, event_id, 1),
                None if from.is_none() => (at, 0, row_id, 0),
                None => (at, 2, row_id, 0),
            };
            let entry = TimelineEntry::StageChange {
                from: from.map(StageName::new),
                to: StageName::new(get::<String>(row, "to_stage")?),
                reason: get(row, "reason")?,
                at: timestamp(at, &format!("stage change {row_id}"))?,
            };
            entries.push((key, entry));
        }
        entries.sort_by_key(|(key, _)| *key);
        Ok(entries.into_iter().map(|(_, entry)| entry).collect())
    }

    async fn erase_contact(&self, id: ContactId, at: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let Some(row) = sqlx::query("SELECT email FROM contacts WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            // A retry after `EraseIncomplete` finds no contact; it still finishes the job.
            self.truncate_wal().await?;
            return Ok(false);
        };
        let email: Option<String> = get(&row, "email")?;
        for sql in [
            "DELETE FROM touches WHERE contact_id = $1",
            "DELETE FROM enrollments WHERE contact_id = $1",
            "DELETE FROM events WHERE contact_id = $1",
            "DELETE FROM contact_aliases WHERE contact_id = $1",
            "DELETE FROM stage_history WHERE contact_id = $1",
            "DELETE FROM contacts WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id.0).execute(&mut *tx).await?;
        }
        if let Some(email) = email {
            // Stored addresses were normalized on the way in. One that no longer parses
            // must not block an erasure: it gets the same SHA-256 of its stored text.
            let hash = match Email::parse(&email) {
                Ok(parsed) => tokens::hash_email(&parsed),
                Err(_) => tokens::hash_token(&email),
            };
            sqlx::query(
                "INSERT INTO suppressions (email_hash, reason, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (email_hash) DO NOTHING",
            )
            .bind(hash)
            .bind("erased")
            .bind(millis(at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.truncate_wal().await?;
        Ok(true)
    }

    async fn is_email_suppressed(&self, email: &Email) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = $1) \
             OR EXISTS (SELECT 1 FROM contacts WHERE email = $2 AND suppressed_at IS NOT NULL) \
             AS suppressed",
        )
        .bind(tokens::hash_email(email))
        .bind(email.as_str())
        .fetch_one(&self.read)
        .await?;
        get(&row, "suppressed")
    }

    async fn import_contacts(
        &self,
        rows: &[ImportRow],
        default_stage: &StageName,
        at: Timestamp,
    ) -> Result<ImportOutcome, StoreError> {
        if rows.is_empty() {
            return Ok(ImportOutcome::default());
        }
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = import::run(&mut tx, rows, default_stage, millis(at)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn create_token(
        &self,
        name: &str,
        scope: TokenScope,
        token_hash: &str,
        at: Timestamp,
    ) -> Result<ApiToken, StoreError> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (name, scope, token_hash, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(scope.as_str())
        .bind(token_hash)
        .bind(millis(at))
        .fetch_one(&self.write)
        .await?;
        Ok(ApiToken {
            id: get(&row, "id")?,
            name: name.to_owned(),
            scope,
            // What a later read returns: the instant at millisecond precision.
            created_at: timestamp(millis(at), "token created_at")?,
        })
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT id, name, scope, created_at FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let id: i64 = get(&row, "id")?;
        let scope: String = get(&row, "scope")?;
        Ok(Some(ApiToken {
            id,
            name: get(&row, "name")?,
            scope: TokenScope::parse(&scope).ok_or_else(|| {
                StoreError::Corrupt(format!("token {id}: unknown scope `{scope}`"))
            })?,
            created_at: timestamp(get(&row, "created_at")?, &format!("token {id} created_at"))?,
        }))
    }

    async fn stored_processes(&self) -> Result<Vec<StoredProcess>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::stored_processes(&mut conn).await
    }

    async fn sync_process(&self, sync: &ProcessSync<'_>) -> Result<SyncOutcome, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = engine::sync_process(&mut tx, sync).await?;
        tx.commit().await?;
        if outcome.enrolled > 10_000 {
            // A large backfill grows the write-ahead log file by hundreds of megabytes, and
            // SQLite never shrinks it on its own; fold it back and truncate it now. Busy
            // readers only make this a partial checkpoint.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.write)
                .await?;
        }
        Ok(outcome)
    }

    async fn start_signal_cursor(&self) -> Result<SignalCursor, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let cursor = engine::start_cursor(&mut tx).await?;
        tx.commit().await?;
        Ok(cursor)
    }

    async fn signal_cursor(&self) -> Result<SignalCursor, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::cursor(&mut conn).await
    }

    async fn read_signals(
        &self,
        after: SignalCursor,
        event_names: &[String],
        limit: u32,
    ) -> Result<SignalBatch, StoreError> {
        let mut tx = self.read.begin().await?;
        let batch = engine::read_signals(&mut tx, after, event_names, limit).await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn apply_signals(
        &self,
        from: SignalCursor,
        to: SignalCursor,
        actions: &[EngineAction],
        at: Timestamp,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = engine::apply_signals(&mut tx, from, to, actions, at).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn due_touches(&self, now: Timestamp, limit: u32) -> Result<DueBatch, StoreError> {
        let mut tx = self.read.begin().await?;
        let batch = engine::due_touches(&mut tx, now, limit).await?;
        tx.commit().await?;
        Ok(batch)
    }

    async fn pacing_snapshot(
        &self,
        in_flight_since: Timestamp,
        now: Timestamp,
    ) -> Result<PacingSnapshot, StoreError> {
        let mut tx = self.read.begin().await?;
        let snapshot = engine::pacing_snapshot(&mut tx, in_flight_since, now).await?;
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn record_decisions(
        &self,
        at: Timestamp,
        decisions: &[DecisionRecord],
        budget: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        engine::record_decisions(&mut tx, at, decisions, budget).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_dispatch(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedTouch>, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let claimed = engine::claim_dispatch(&mut tx, now, lease_ms, limit).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn finish_dispatch(
        &self,
        touch: TouchId,
        at: Timestamp,
        result: &DispatchResult,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        engine::finish_dispatch(&mut tx, touch, at, result).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_and_claim(
        &self,
        finished: &[(TouchId, Timestamp, DispatchResult)],
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedTouch>, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        engine::finish_dispatches(&mut tx, finished).await?;
        let claimed = if limit > 0 {
            engine::claim_dispatch(&mut tx, now, lease_ms, limit).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        Ok(claimed)
    }

    async fn release_claims(&self, touches: &[TouchId], at: Timestamp) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        engine::release_claims(&mut tx, touches, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release_all_claims(&self, at: Timestamp) -> Result<u64, StoreError> {
        let mut conn = self.write.acquire().await?;
        engine::release_all_claims(&mut conn, at).await
    }

    async fn track_for_contact(
        &self,
        contact: ContactId,
        name: &str,
        message_id: &str,
        properties: serde_json::Value,
        stage: Option<&StageName>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let new = engine::track_for_contact(
            &mut tx,
            contact,
            name,
            message_id,
            &properties,
            stage,
            millis(at),
        )
        .await?;
        tx.commit().await?;
        Ok(new)
    }

    async fn next_dispatch_at(&self) -> Result<Option<Timestamp>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::next_at(
            &mut conn,
            "SELECT MIN(next_attempt_at) AS next FROM touches WHERE state = 'queued'",
        )
        .await
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::next_at(
            &mut conn,
            "SELECT MIN(due_at) AS next FROM touches WHERE state = 'pending'",
        )
        .await
    }

    async fn tasks(&self, from: Timestamp, to: Timestamp) -> Result<Vec<TaskView>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::tasks(&mut conn, from, to).await
    }

    async fn task(&self, id: TouchId) -> Result<Option<TaskView>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::task(&mut conn, id).await
    }

    async fn finish_task(
        &self,
        id: TouchId,
        at: Timestamp,
        end: &TaskEnd,
        next: Option<NextTouch>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let done = engine::finish_task(&mut tx, id, at, end, next).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn enrollments_of(&self, contact: ContactId) -> Result<Vec<EnrollmentView>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::enrollments_of(&mut conn, contact).await
    }

    async fn touches_of(
        &self,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<TouchView>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::touches_of(&mut conn, contact, limit).await
    }

    async fn suppress_contact(
        &self,
        id: ContactId,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let done = engine::suppress(&mut tx, id, reason, millis(at)).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn pace_counts(&self) -> Result<PaceCounts, StoreError> {
        let mut tx = self.read.begin().await?;
        let counts = engine::pace_counts(&mut tx).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn set_open_work(&self, open_work: f64, at: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        engine::set_value(&mut tx, engine::OPEN_WORK_KEY, &open_work.to_string()).await?;
        engine::wake_capacity_held(&mut tx, sql::millis(at)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn funnel(&self, from: Timestamp, to: Timestamp) -> Result<FunnelCounts, StoreError> {
        let mut tx = self.read.begin().await?;
        let counts = engine::funnel(&mut tx, from, to).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn conversions(&self, stage: &StageName) -> Result<Vec<Conversion>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::conversions(&mut conn, stage).await
    }

    async fn admitted_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, tend_core::pacer::Channel)>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::admitted_since(&mut conn, since).await
    }

    async fn work_log_since(&self, since: Timestamp) -> Result<Vec<(Timestamp, f64)>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::work_log_since(&mut conn, since).await
    }

    async fn neglect(
        &self,
        max_gaps: &[(i64, i64)],
        limit: u32,
    ) -> Result<Vec<NeglectRow>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::neglect(&mut conn, max_gaps, limit).await
    }

    async fn engine_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.read.acquire().await?;
        engine::value(&mut conn, key).await
    }

    async fn set_engine_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut conn = self.write.acquire().await?;
        engine::set_value(&mut conn, key, value).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
            .collect();
        assert_eq!(files, embedded);
    }

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_pattern("Ann_a%"), "%ann\\_a\\%%");
        assert_eq!(like_pattern("a\\b"), "%a\\\\b%");
    }
}
