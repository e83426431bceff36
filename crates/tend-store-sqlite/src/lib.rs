//! The SQLite backend: one file in WAL mode, a single writer connection and a small pool
//! of readers, driven in-process through rusqlite.
//!
//! All writes go through one connection, so concurrent HTTP requests queue for it
//! instead of failing with `SQLITE_BUSY`; write transactions start with
//! `BEGIN IMMEDIATE` so that another process (the CLI importing while `tend serve` runs)
//! waits on the busy timeout instead of failing when a read upgrades to a write. Every
//! `Store` call is one transaction run to its end without awaiting in between, so no
//! transaction is ever held open across an await.

mod api_tokens;
mod backup;
mod budget_cache;
mod console;
mod contact_list;
mod engine;
mod export;
mod feedback;
mod import;
mod import_drafts;
mod ingest;
mod migrations;
mod moved;
mod pool;
mod sql;
mod suppress;
mod users;

use async_trait::async_trait;
use budget_cache::BudgetCache;
use contact_list::{fts_query, list_sql};
use jiff::Timestamp;
use migrations::migrate;
use pool::{Durability, Pool};
use rusqlite::params;
use sql::{ContactRow, contact_columns, get, millis, timestamp};
use std::collections::HashMap;
use std::path::Path;
use tend_core::pacer::{BudgetState, TouchId};
use tend_core::{ContactId, Email, StageName};
use tend_store::suppression::{self, AddressKeys};
use tend_store::*;

pub use backup::{
    Restored, SnapshotError, SnapshotInfo, binary_schema_version, restore_snapshot, verify_snapshot,
};
pub use export::Export;
pub use moved::{MovedTo, clear_moved, mark_moved, moved_to};

/// Reader connections; SQLite in WAL mode lets them run alongside the writer.
const READERS: usize = 4;

/// Tend's embedded default: one SQLite file in WAL mode.
pub struct SqliteStore {
    pool: Pool,
    /// Keys suppression records under the install's secret.
    keys: AddressKeys,
    /// The budget usage last stored or read, decoded.
    budgets: BudgetCache,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database file.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        // Opening and migrating can take a while on a big file; not on an async worker.
        tokio::task::spawn_blocking(move || {
            owner_only(&path)?;
            let mut keys = None;
            let pool = Pool::open(&path, Durability::Durable, READERS, |conn| {
                migrate(conn)?;
                keys = Some(suppress::load_keys(conn)?);
                Ok(())
            })?;
            owner_only(&path)?;
            Ok(SqliteStore {
                pool,
                keys: keys.expect("set when the pool opened"),
                budgets: BudgetCache::stored(),
            })
        })
        .await
        .map_err(|e| StoreError::Threads(format!("opening the database stopped: {e}")))?
    }

    /// Opens a scratch database for the simulator: in memory, never synced, gone when
    /// the store is dropped, the budget usage held by the store rather than stored.
    /// Never for a business's data.
    pub fn open_scratch() -> Result<Self, StoreError> {
        let mut keys = None;
        let pool = Pool::open(Path::new(":memory:"), Durability::Scratch, 0, |conn| {
            migrate(conn)?;
            keys = Some(suppress::load_keys(conn)?);
            Ok(())
        })?;
        Ok(SqliteStore {
            pool,
            keys: keys.expect("set when the pool opened"),
            budgets: BudgetCache::held(),
        })
    }

    /// Benchmark baseline only, not for application use: inserts track events
    /// `(message_id, contact_id, name, properties JSON, occurred_at ms)` in one
    /// transaction, in multi-row INSERTs shaped like ingest's, doing nothing else. The
    /// contacts must exist. Returns the number of rows inserted.
    pub async fn raw_insert_events_for_bench(
        &self,
        rows: &[(String, i64, String, String, i64)],
    ) -> Result<u64, StoreError> {
        self.pool
            .write(|tx| ingest::raw_insert_events(tx, rows))
            .await
    }

    /// Copies the whole write-ahead log into the database file and empties it. Returns
    /// `false` if readers holding an older snapshot kept part of it, after waiting for
    /// them up to the busy timeout.
    pub async fn checkpoint(&self) -> Result<bool, StoreError> {
        let busy: i64 = self
            .pool
            .on_writer(|conn| {
                sql::fetch_one(conn, "PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    get(row, "busy")
                })
            })
            .await?;
        Ok(busy == 0)
    }

    /// Truncates the write-ahead log, so that pages rewritten by an erasure are the only
    /// copies left.
    async fn truncate_wal(&self) -> Result<(), StoreError> {
        if !self.checkpoint().await? {
            return Err(StoreError::EraseIncomplete(
                "the write-ahead log could not be truncated because readers were busy; \
                 erasing the same contact again completes it"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Makes the database file and its write-ahead log and shared-memory files readable by
/// the owner only: a new file is created so before SQLite opens it (SQLite gives the
/// files it adds the database's mode), an existing one is narrowed.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |e: std::io::Error| {
            StoreError::Corrupt(format!(
                "{}: setting owner-only access: {e}",
                path.display()
            ))
        };
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            if let Ok(meta) = std::fs::metadata(file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.pool
            .read(|tx| sql::fetch_one(tx, "SELECT 1 AS one", [], |row| get::<i64>(row, "one")))
            .await?;
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
        self.pool
            .write(|tx| ingest::run(tx, &self.keys, batch, new_contact_stage, received_at))
            .await
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
        let words = query.q.as_deref().map(search_words).unwrap_or_default();
        let statement = list_sql(query.stage.is_some(), !words.is_empty());
        let pattern = (!words.is_empty()).then(|| fts_query(&words));
        // One row more than asked tells whether another page follows.
        let limit = i64::from(query.limit) + 1;
        let stage = query.stage.as_ref().map(StageName::as_str);
        let rows = self
            .pool
            .read(|tx| {
                let mut binds: sql::Binds<'_> = vec![&after];
                if let Some(stage) = &stage {
                    binds.push(stage);
                }
                if let Some(pattern) = &pattern {
                    binds.push(pattern);
                }
                binds.push(&limit);
                sql::fetch_binds(tx, &statement, &binds, ContactRow::decode)
            })
            .await?;
        let more = rows.len() > query.limit as usize;
        let contacts = rows
            .into_iter()
            .take(query.limit as usize)
            .map(ContactRow::into_contact)
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
        let row = self
            .pool
            .read(|tx| {
                sql::fetch_optional(
                    tx,
                    concat!(
                        "SELECT ",
                        contact_columns!(),
                        " FROM contacts WHERE id = ?1"
                    ),
                    params![id.0],
                    ContactRow::decode,
                )
            })
            .await?;
        row.map(ContactRow::into_contact).transpose()
    }

    async fn timeline(&self, id: ContactId) -> Result<Vec<TimelineEntry>, StoreError> {
        struct EventRow {
            id: i64,
            message_id: String,
            name: Option<String>,
            properties: String,
            at: i64,
        }
        struct ChangeRow {
            id: i64,
            from: Option<String>,
            to: String,
            reason: String,
            cause: Option<String>,
            at: i64,
        }
        // One read transaction, so events and stage changes come from the same snapshot.
        let (events, changes) = self
            .pool
            .read(|tx| {
                let events = sql::fetch_all(
                    tx,
                    "SELECT id, message_id, name, properties, occurred_at FROM events \
                     WHERE contact_id = ?1 AND kind = 'track' ORDER BY occurred_at, id",
                    params![id.0],
                    |row| {
                        Ok(EventRow {
                            id: get(row, "id")?,
                            message_id: get(row, "message_id")?,
                            name: get(row, "name")?,
                            properties: get(row, "properties")?,
                            at: get(row, "occurred_at")?,
                        })
                    },
                )?;
                let changes = sql::fetch_all(
                    tx,
                    "SELECT id, from_stage, to_stage, reason, message_id, at FROM stage_history \
                     WHERE contact_id = ?1 ORDER BY at, id",
                    params![id.0],
                    |row| {
                        Ok(ChangeRow {
                            id: get(row, "id")?,
                            from: get(row, "from_stage")?,
                            to: get(row, "to_stage")?,
                            reason: get(row, "reason")?,
                            cause: get(row, "message_id")?,
                            at: get(row, "at")?,
                        })
                    },
                )?;
                Ok((events, changes))
            })
            .await?;

        // Sort keys `(at, rank, id, after)`: at equal instants a contact's creation comes
        // first, then events, and a change right after the event that caused it.
        type Key = (i64, u8, i64, u8);
        let mut entries: Vec<(Key, TimelineEntry)> =
            Vec::with_capacity(events.len() + changes.len());
        let mut event_keys: HashMap<String, Key> = HashMap::with_capacity(events.len());
        for row in events {
            let what = format!("event {}", row.id);
            let key = (row.at, 1, row.id, 0);
            event_keys.insert(row.message_id.clone(), key);
            let entry = TimelineEntry::Event {
                name: row
                    .name
                    .ok_or_else(|| StoreError::Corrupt(format!("{what}: track without name")))?,
                properties: sql::json_object(&row.properties, &format!("{what} properties"))?,
                message_id: row.message_id,
                at: timestamp(row.at, &what)?,
            };
            entries.push((key, entry));
        }
        for row in changes {
            let key = match row.cause.and_then(|m| event_keys.get(&m).copied()) {
                Some((event_at, rank, event_id, _)) => (event_at, rank, event_id, 1),
                None if row.from.is_none() => (row.at, 0, row.id, 0),
                None => (row.at, 2, row.id, 0),
            };
            let entry = TimelineEntry::StageChange {
                from: row.from.map(StageName::new),
                to: StageName::new(row.to),
                reason: row.reason,
                at: timestamp(row.at, &format!("stage change {}", row.id))?,
            };
            entries.push((key, entry));
        }
        entries.sort_by_key(|(key, _)| *key);
        Ok(entries.into_iter().map(|(_, entry)| entry).collect())
    }

    async fn erase_contact(
        &self,
        id: ContactId,
        at: Timestamp,
    ) -> Result<Option<Erasure>, StoreError> {
        let keys = &self.keys;
        let erased = self
            .pool
            .write(|tx| {
                let Some(email) = sql::fetch_optional(
                    tx,
                    "SELECT email FROM contacts WHERE id = ?1",
                    params![id.0],
                    |row| get::<Option<String>>(row, "email"),
                )?
                else {
                    return Ok(None);
                };
                let touches: Vec<(TouchId, bool)> = sql::fetch_all(
                    tx,
                    "SELECT id, state = 'queued' AND leased = 1 AS held FROM touches \
                     WHERE contact_id = ?1 AND channel = 'email' ORDER BY id",
                    params![id.0],
                    |row| Ok((TouchId(get(row, "id")?), get(row, "held")?)),
                )?;
                let in_flight = touches
                    .iter()
                    .filter(|(_, held)| *held)
                    .map(|(t, _)| *t)
                    .collect();
                let email_touches = touches.into_iter().map(|(t, _)| t).collect();
                // Deleted below rather than marked, but cancelled all the same.
                let planned: i64 = sql::fetch_one(
                    tx,
                    "SELECT COUNT(*) AS n FROM touches \
                     WHERE contact_id = ?1 AND state IN ('pending', 'queued', 'open')",
                    params![id.0],
                    |row| get(row, "n"),
                )?;
                engine::count_cancelled(tx, "erased", planned.max(0) as u64)?;
                for statement in [
                    "DELETE FROM touches WHERE contact_id = ?1",
                    "DELETE FROM enrollments WHERE contact_id = ?1",
                    "DELETE FROM events WHERE contact_id = ?1",
                    "DELETE FROM contact_aliases WHERE contact_id = ?1",
                    "DELETE FROM stage_history WHERE contact_id = ?1",
                    "DELETE FROM console_actions WHERE contact_id = ?1",
                    "DELETE FROM contacts WHERE id = ?1",
                ] {
                    sql::execute(tx, statement, params![id.0])?;
                }
                // The search index drops its entry only when its segments merge: merge
                // them now, so no page of it keeps the erased address or name.
                sql::execute(
                    tx,
                    "INSERT INTO contacts_search (contacts_search) VALUES ('optimize')",
                    [],
                )?;
                if let Some(email) = email {
                    suppress::record(tx, &keys.key(&email), "erased", millis(at))?;
                    // A bare hash an earlier release kept for the same address goes: the
                    // keyed record replaces it.
                    sql::execute(
                        tx,
                        "DELETE FROM legacy_suppressions WHERE email_hash = ?1",
                        params![suppression::legacy_hash(&email)],
                    )?;
                }
                Ok(Some(Erasure {
                    email_touches,
                    in_flight,
                }))
            })
            .await?;
        // Also after finding no contact: a retry after `EraseIncomplete` finishes the job.
        self.truncate_wal().await?;
        Ok(erased)
    }

    async fn is_email_suppressed(&self, email: &Email) -> Result<bool, StoreError> {
        self.pool
            .read(|tx| {
                if suppress::address_suppressed(tx, &self.keys, email.as_str())? {
                    return Ok(true);
                }
                sql::fetch_one(
                    tx,
                    "SELECT EXISTS (SELECT 1 FROM contacts WHERE email = ?1 \
                     AND suppressed_at IS NOT NULL) AS suppressed",
                    params![email.as_str()],
                    |row| get(row, "suppressed"),
                )
            })
            .await
    }

    async fn unsubscribe_address(
        &self,
        address_key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.pool
            .write(|tx| suppress::unsubscribe_address(tx, &self.keys, address_key, millis(at)))
            .await
    }

    async fn touch_recipient(
        &self,
        touch: TouchId,
    ) -> Result<Option<tend_store::feedback::TouchRecipient>, StoreError> {
        self.pool
            .read(|tx| feedback::touch_recipient(tx, touch.0))
            .await
    }

    async fn record_mail_feedback(
        &self,
        report: &tend_store::feedback::MailFeedback<'_>,
        at: Timestamp,
    ) -> Result<tend_store::feedback::FeedbackOutcome, StoreError> {
        self.pool
            .write(|tx| feedback::record(tx, &self.keys, report, millis(at)))
            .await
    }

    async fn claim_webhook_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.pool
            .write(|tx| {
                feedback::claim_webhook_token(tx, token_hash, millis(expires_at), millis(now))
            })
            .await
    }

    async fn release_webhook_token(&self, token_hash: &str) -> Result<(), StoreError> {
        self.pool
            .write(|tx| feedback::release_webhook_token(tx, token_hash))
            .await
    }

    async fn mail_feedback_counts(
        &self,
    ) -> Result<tend_store::feedback::FeedbackCounts, StoreError> {
        self.pool.read(|tx| feedback::counts(tx)).await
    }

    async fn inbound_cursor(&self) -> Result<Option<(u32, u32)>, StoreError> {
        self.pool.read(|tx| feedback::inbound_cursor(tx)).await
    }

    async fn set_inbound_cursor(&self, uid_validity: u32, uid: u32) -> Result<(), StoreError> {
        self.pool
            .write(|tx| feedback::set_inbound_cursor(tx, uid_validity, uid))
            .await
    }

    async fn import_contacts(
        &self,
        rows: &[ImportRow],
        default_stage: &StageName,
        at: Timestamp,
        enrollment: ImportEnrollment,
    ) -> Result<ImportOutcome, StoreError> {
        if rows.is_empty() {
            return Ok(ImportOutcome::default());
        }
        self.pool
            .write(|tx| import::run(tx, &self.keys, rows, default_stage, millis(at), enrollment))
            .await
    }

    async fn preview_import(
        &self,
        rows: &[ImportRow],
        default_stage: &StageName,
        at: Timestamp,
    ) -> Result<ImportOutcome, StoreError> {
        if rows.is_empty() {
            return Ok(ImportOutcome::default());
        }
        let enrollment = ImportEnrollment::Now;
        self.pool
            .write_rolled_back(|tx| {
                import::run(tx, &self.keys, rows, default_stage, millis(at), enrollment)
            })
            .await
    }

    async fn create_token(
        &self,
        name: &str,
        scope: TokenScope,
        token_hash: &str,
        at: Timestamp,
    ) -> Result<ApiToken, StoreError> {
        self.pool
            .write(|tx| api_tokens::create(tx, name, scope, token_hash, at))
            .await
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        self.pool.read(|tx| api_tokens::find(tx, token_hash)).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.pool.read(|tx| api_tokens::list(tx)).await
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        self.pool.write(|tx| api_tokens::revoke(tx, name)).await
    }

    async fn record_token_use(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        self.pool
            .write(|tx| api_tokens::record_use(tx, id, at))
            .await
    }

    async fn stored_processes(&self) -> Result<Vec<StoredProcess>, StoreError> {
        self.pool.read(|tx| engine::stored_processes(tx)).await
    }

    async fn sync_process(&self, sync: &ProcessSync<'_>) -> Result<SyncOutcome, StoreError> {
        let outcome = self.pool.write(|tx| engine::sync_process(tx, sync)).await?;
        if outcome.enrolled > 10_000 {
            // A large backfill grows the write-ahead log file by hundreds of megabytes, and
            // SQLite never shrinks it on its own; fold it back and truncate it now. Busy
            // readers only make this a partial checkpoint.
            self.checkpoint().await?;
        }
        Ok(outcome)
    }

    async fn start_signal_cursor(&self) -> Result<SignalCursor, StoreError> {
        self.pool.write(|tx| engine::start_cursor(tx)).await
    }

    async fn signal_cursor(&self) -> Result<SignalCursor, StoreError> {
        self.pool.read(|tx| engine::cursor(tx)).await
    }

    async fn enrollment_trigger(
        &self,
        enrollment_id: i64,
    ) -> Result<Option<EnrollmentTrigger>, StoreError> {
        self.pool
            .read(|tx| engine::enrollment_trigger(tx, enrollment_id))
            .await
    }

    async fn read_signals(
        &self,
        after: SignalCursor,
        event_names: &[String],
        limit: u32,
    ) -> Result<SignalBatch, StoreError> {
        self.pool
            .read(|tx| engine::read_signals(tx, after, event_names, limit))
            .await
    }

    async fn apply_signals(
        &self,
        from: SignalCursor,
        to: SignalCursor,
        actions: &[EngineAction],
        at: Timestamp,
    ) -> Result<ApplyOutcome, StoreError> {
        self.pool
            .write(|tx| engine::apply_signals(tx, from, to, actions, at))
            .await
    }

    async fn due_touches(&self, now: Timestamp, limit: u32) -> Result<DueBatch, StoreError> {
        self.pool
            .read(|tx| engine::due_touches(tx, &self.keys, now, limit))
            .await
    }

    async fn pacing_snapshot(
        &self,
        in_flight_since: Timestamp,
        now: Timestamp,
        by_step: bool,
    ) -> Result<PacingSnapshot, StoreError> {
        self.pool
            .read(|tx| engine::pacing_snapshot(tx, &self.budgets, in_flight_since, now, by_step))
            .await
    }

    async fn record_decisions(
        &self,
        at: Timestamp,
        decisions: &[DecisionRecord],
        budget: &BudgetState,
    ) -> Result<(), StoreError> {
        let text = if self.budgets.holds() {
            None
        } else {
            Some(serde_json::to_string(budget).map_err(|e| {
                StoreError::Corrupt(format!("budget usage does not serialize: {e}"))
            })?)
        };
        self.pool
            .write(|tx| engine::record_decisions(tx, at, decisions, text.as_deref()))
            .await?;
        self.budgets.recorded(text, budget.clone());
        Ok(())
    }

    async fn claim_dispatch(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedTouch>, StoreError> {
        self.pool
            .write(|tx| engine::claim_dispatch(tx, &self.keys, now, lease_ms, limit))
            .await
    }

    async fn finish_dispatch(
        &self,
        lease: Lease,
        at: Timestamp,
        result: &DispatchResult,
    ) -> Result<bool, StoreError> {
        self.pool
            .write(|tx| engine::finish_dispatch(tx, &self.keys, lease, at, result))
            .await
    }

    async fn finish_and_claim(
        &self,
        finished: &[(Lease, Timestamp, DispatchResult)],
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedTouch>, StoreError> {
        self.pool
            .write(|tx| {
                engine::finish_dispatches(tx, &self.keys, finished)?;
                if limit > 0 {
                    engine::claim_dispatch(tx, &self.keys, now, lease_ms, limit)
                } else {
                    Ok(Vec::new())
                }
            })
            .await
    }

    async fn release_all_claims(&self, at: Timestamp) -> Result<u64, StoreError> {
        self.pool
            .write(|tx| engine::release_all_claims(tx, at))
            .await
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
        self.pool
            .write(|tx| {
                engine::track_for_contact(
                    tx,
                    contact,
                    name,
                    message_id,
                    &properties,
                    stage,
                    millis(at),
                )
            })
            .await
    }

    async fn next_dispatch_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.pool
            .read(|tx| {
                engine::next_at(
                    tx,
                    "SELECT MIN(next_attempt_at) AS next FROM touches WHERE state = 'queued'",
                )
            })
            .await
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.pool
            .read(|tx| {
                engine::next_at(
                    tx,
                    "SELECT MIN(due_at) AS next FROM touches WHERE state = 'pending'",
                )
            })
            .await
    }

    async fn tasks(&self, from: Timestamp, to: Timestamp) -> Result<Vec<TaskView>, StoreError> {
        self.pool.read(|tx| engine::tasks(tx, from, to)).await
    }

    async fn task(&self, id: TouchId) -> Result<Option<TaskView>, StoreError> {
        self.pool.read(|tx| engine::task(tx, id)).await
    }

    async fn finish_task(
        &self,
        id: TouchId,
        at: Timestamp,
        end: &TaskEnd,
        next: Option<NextTouch>,
        event: Option<&OutcomeEvent<'_>>,
    ) -> Result<bool, StoreError> {
        self.pool
            .write(|tx| engine::finish_task(tx, id, at, end, next, event))
            .await
    }

    async fn enrollments_of(&self, contact: ContactId) -> Result<Vec<EnrollmentView>, StoreError> {
        self.pool
            .read(|tx| engine::enrollments_of(tx, contact))
            .await
    }

    async fn touches_of(
        &self,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<TouchView>, StoreError> {
        self.pool
            .read(|tx| engine::touches_of(tx, contact, limit))
            .await
    }

    async fn suppress_contact(
        &self,
        id: ContactId,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.pool
            .write(|tx| suppress::suppress(tx, &self.keys, id, reason, millis(at)))
            .await
    }

    async fn pace_counts(&self) -> Result<PaceCounts, StoreError> {
        self.pool.read(|tx| engine::pace_counts(tx)).await
    }

    async fn touches_cancelled(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.pool.read(|tx| engine::touches_cancelled(tx)).await
    }

    async fn set_open_work(&self, open_work: f64, at: Timestamp) -> Result<(), StoreError> {
        self.pool
            .write(|tx| {
                engine::set_value(tx, engine::OPEN_WORK_KEY, &open_work.to_string())?;
                // Counted by hand: every held offer is looked at again.
                engine::wake_capacity_held(tx, millis(at), u32::MAX)?;
                Ok(())
            })
            .await
    }

    async fn wake_capacity_held(&self, at: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.pool
            .write(|tx| engine::wake_capacity_held(tx, millis(at), limit))
            .await
    }

    async fn funnel(&self, from: Timestamp, to: Timestamp) -> Result<FunnelCounts, StoreError> {
        self.pool.read(|tx| engine::funnel(tx, from, to)).await
    }

    async fn conversions(&self, stage: &StageName) -> Result<Vec<Conversion>, StoreError> {
        self.pool.read(|tx| engine::conversions(tx, stage)).await
    }

    async fn conversion_histogram(&self, stage: &StageName) -> Result<Vec<(u64, u64)>, StoreError> {
        self.pool
            .read(|tx| engine::conversion_histogram(tx, stage))
            .await
    }

    async fn admitted_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, tend_core::pacer::Channel)>, StoreError> {
        self.pool.read(|tx| engine::admitted_since(tx, since)).await
    }

    async fn work_log_since(&self, since: Timestamp) -> Result<Vec<(Timestamp, f64)>, StoreError> {
        self.pool.read(|tx| engine::work_log_since(tx, since)).await
    }

    async fn neglect(
        &self,
        max_gaps: &[(i64, i64)],
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<NeglectRow>, StoreError> {
        self.pool
            .read(|tx| engine::neglect(tx, max_gaps, before, limit))
            .await
    }

    async fn secret(&self, which: suppression::Secret) -> Result<Vec<u8>, StoreError> {
        let stored = self.pool.read(|tx| engine::value(tx, which.key())).await?;
        which.decode(stored.as_deref())
    }

    async fn coordination(&self) -> Result<std::sync::Arc<dyn Coordination>, StoreError> {
        // One engine per file: `tend serve` holds the file's server lock.
        Ok(std::sync::Arc::new(SoleEngine))
    }
}

#[cfg(test)]
mod tests;
