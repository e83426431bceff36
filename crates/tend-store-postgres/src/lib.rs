//! The PostgreSQL backend: for a business that outgrows one machine's SQLite file.
//!
//! Driven by `tokio-postgres` through a `deadpool-postgres` pool: async, pooled, and far
//! lighter to compile than sqlx on a small machine (no macros, no compile-time query
//! checking, no second runtime layer). Connections are plain TCP: no TLS yet, so run the
//! server on the same host or a private network.
//!
//! Every `Store` call is one transaction on a pooled connection, with every statement
//! prepared once per connection. Where the SQLite backend relied on its single writer,
//! this one says so in SQL: ingest and import lock the contacts they rewrite
//! (`SELECT … FOR UPDATE`), open work and offer counts are updated atomically
//! (`x = x + $1`), the signal cursor is compared and set under a row lock, dispatch
//! claims with `FOR UPDATE SKIP LOCKED`, and transactions that append events or stage
//! changes hold an advisory lock to their commit, so the engine, which reads both behind
//! an id cursor, never sees an id after a later one.
//!
//! Several `tend serve` nodes may share one database (see `coordination`): each claim
//! carries a random lease token its finish must present, the once-only work runs on
//! the holder of an advisory lock and its writes are fenced by that lock, and
//! `LISTEN/NOTIFY` wakes the leader and the dispatchers of every node.

mod api_tokens;
mod console;
mod contact_list;
mod coordination;
mod engine;
mod feedback;
mod import;
mod import_drafts;
mod ingest;
mod inspect;
mod migrations;
mod pool;
mod sql;
mod suppress;
mod tls;
pub mod transfer;
mod users;

use async_trait::async_trait;
use contact_list::{list_sql, ts_query};
use deadpool_postgres::Pool;
use jiff::Timestamp;
use pool::{Access, in_tx};
use sql::{ContactRow, contact_columns, get, millis, timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use tend_core::pacer::{BudgetState, TouchId};
use tend_core::{ContactId, Email, StageName};
use tend_store::suppression::{self, AddressKeys};
use tend_store::*;

pub use coordination::ELECTION_APPLICATION;
pub use inspect::{Inspection, inspect};

/// Tables an erasure deletes rows from, vacuumed afterwards so the deleted tuples'
/// space is reclaimed and reused (see the README on what that does and does not
/// guarantee).
const ERASED_TABLES: &str = "touches, enrollments, events, contact_aliases, stage_history, \
     console_actions, contacts";

/// Tend's store on a PostgreSQL database.
pub struct PostgresStore {
    pool: Pool,
    /// How the pool connects (settings and TLS), for the election's connection of its
    /// own.
    connect: pool::Connect,
    /// Where the pool connects, without the password, for errors.
    target: String,
    /// Keys suppression records under the install's secret.
    keys: AddressKeys,
    /// This node's part in the election, once an engine asked for it; from then on the
    /// leader's writes are fenced by its lock.
    coordination: tokio::sync::OnceCell<Arc<coordination::PgCoordination>>,
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user@host:port/db`), brings its
    /// schema up to date and loads the install's secret. The database must exist.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (pool, connect) = pool::build(url)?;
        let target = connect.target.clone();
        let mut client = pool.get().await.map_err(|e| pool::pool_error(&target, e))?;
        migrations::migrate(&mut client).await?;
        let tx = client.transaction().await.map_err(sql::db)?;
        let keys = suppress::load_keys(&tx).await?;
        tx.commit().await.map_err(sql::db)?;
        drop(client);
        Ok(PostgresStore {
            pool,
            connect,
            target,
            keys,
            coordination: tokio::sync::OnceCell::new(),
        })
    }

    /// Where this store connects, without the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// This node's leader term when an engine runs here: `None` when no engine asked
    /// for coordination (a CLI command, a test driving the engine by hand), so there is
    /// nothing to fence; `Some(None)` when one did and this node does not lead.
    fn fenced_leader(&self) -> Option<Option<i64>> {
        self.coordination.get().map(|c| c.term())
    }
}

/// Whether a database URL names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        in_tx!(self, Access::Read, |tx| {
            sql::fetch_one(&tx, "SELECT 1::bigint AS one", &[], |row| {
                get::<i64>(row, "one")
            })
            .await?
        })?;
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
        in_tx!(self, Access::Write, |tx| {
            ingest::run(&tx, &self.keys, batch, new_contact_stage, received_at).await?
        })
    }

    async fn list_contacts(&self, query: &ContactQuery) -> Result<ContactPage, StoreError> {
        let after = match query.cursor.as_deref() {
            None => 0_i64,
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
        let pattern = (!words.is_empty()).then(|| ts_query(&words));
        // One row more than asked tells whether another page follows.
        let limit = i64::from(query.limit) + 1;
        let stage = query.stage.as_ref().map(StageName::as_str);
        let mut binds: Vec<sql::Param<'_>> = vec![&after];
        if let Some(stage) = &stage {
            binds.push(stage);
        }
        if let Some(pattern) = &pattern {
            binds.push(pattern);
        }
        binds.push(&limit);
        let rows = in_tx!(self, Access::Read, |tx| {
            sql::fetch_all(&tx, &statement, &binds, ContactRow::decode).await?
        })?;
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
        let row = in_tx!(self, Access::Read, |tx| {
            sql::fetch_optional(
                &tx,
                concat!(
                    "SELECT ",
                    contact_columns!(),
                    " FROM contacts WHERE id = $1"
                ),
                &[&id.0],
                ContactRow::decode,
            )
            .await?
        })?;
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
        // One read-only snapshot, so events and stage changes agree.
        let (events, changes) = in_tx!(self, Access::Read, |tx| {
            let events = sql::fetch_all(
                &tx,
                "SELECT id, message_id, name, properties::text AS properties, occurred_at \
                 FROM events WHERE contact_id = $1 AND kind = 'track' ORDER BY occurred_at, id",
                &[&id.0],
                |row| {
                    Ok(EventRow {
                        id: get(row, "id")?,
                        message_id: get(row, "message_id")?,
                        name: get(row, "name")?,
                        properties: get(row, "properties")?,
                        at: get(row, "occurred_at")?,
                    })
                },
            )
            .await?;
            let changes = sql::fetch_all(
                &tx,
                "SELECT id, from_stage, to_stage, reason, message_id, at FROM stage_history \
                 WHERE contact_id = $1 ORDER BY at, id",
                &[&id.0],
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
            )
            .await?;
            (events, changes)
        })?;

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
        let erased = in_tx!(self, Access::Write, |tx| {
            erase(&tx, keys, id, millis(at)).await?
        })?;
        if erased.is_some() {
            // The rows are gone at the commit; VACUUM marks their space for reuse so new
            // rows overwrite the dead tuples' bytes (it cannot run in a transaction).
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| pool::pool_error(&self.target, e))?;
            client
                .batch_execute(&format!("VACUUM {ERASED_TABLES}"))
                .await
                .map_err(|e| {
                    StoreError::EraseIncomplete(format!(
                        "the contact's rows are deleted, but VACUUM failed ({e}); their bytes \
                         stay in dead tuples until autovacuum runs"
                    ))
                })?;
        }
        Ok(erased)
    }

    async fn is_email_suppressed(&self, email: &Email) -> Result<bool, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            suppress::address_suppressed(&tx, &self.keys, email.as_str()).await?
                || sql::fetch_one(
                    &tx,
                    "SELECT EXISTS (SELECT 1 FROM contacts WHERE email = $1 \
                     AND suppressed_at IS NOT NULL) AS suppressed",
                    &[&email.as_str()],
                    |row| get(row, "suppressed"),
                )
                .await?
        })
    }

    async fn unsubscribe_address(
        &self,
        address_key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            suppress::suppress_address(&tx, &self.keys, address_key, "unsubscribed", millis(at))
                .await?
        })
    }

    async fn touch_recipient(
        &self,
        touch: TouchId,
    ) -> Result<Option<tend_store::feedback::TouchRecipient>, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            crate::feedback::touch_recipient(&tx, touch.0).await?
        })
    }

    async fn record_mail_feedback(
        &self,
        report: &tend_store::feedback::MailFeedback<'_>,
        at: Timestamp,
    ) -> Result<tend_store::feedback::FeedbackOutcome, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            crate::feedback::record(&tx, &self.keys, report, millis(at)).await?
        })
    }

    async fn claim_webhook_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            crate::feedback::claim_webhook_token(&tx, token_hash, millis(expires_at), millis(now))
                .await?
        })
    }

    async fn release_webhook_token(&self, token_hash: &str) -> Result<(), StoreError> {
        in_tx!(self, Access::Write, |tx| {
            crate::feedback::release_webhook_token(&tx, token_hash).await?
        })
    }

    async fn mail_feedback_counts(
        &self,
    ) -> Result<tend_store::feedback::FeedbackCounts, StoreError> {
        in_tx!(self, Access::Read, |tx| crate::feedback::counts(&tx)
            .await?)
    }

    async fn inbound_cursor(&self) -> Result<Option<(u32, u32)>, StoreError> {
        in_tx!(self, Access::Read, |tx| crate::feedback::inbound_cursor(
            &tx
        )
        .await?)
    }

    async fn set_inbound_cursor(&self, uid_validity: u32, uid: u32) -> Result<(), StoreError> {
        in_tx!(self, Access::Write, |tx| {
            crate::feedback::set_inbound_cursor(&tx, uid_validity, uid).await?
        })
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
        in_tx!(self, Access::Write, |tx| {
            import::run(&tx, &self.keys, rows, default_stage, millis(at), enrollment).await?
        })
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
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| pool::pool_error(&self.target, e))?;
        let tx = pool::begin(&mut client, Access::Write).await?;
        let enrollment = ImportEnrollment::Now;
        let outcome =
            import::run(&tx, &self.keys, rows, default_stage, millis(at), enrollment).await?;
        // Dropping the transaction would roll it back too; saying so keeps the
        // connection clean before it returns to the pool.
        tx.rollback().await.map_err(sql::db)?;
        Ok(outcome)
    }

    async fn create_token(
        &self,
        name: &str,
        scope: TokenScope,
        token_hash: &str,
        at: Timestamp,
    ) -> Result<ApiToken, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            api_tokens::create(&tx, name, scope, token_hash, at).await?
        })
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        in_tx!(self, Access::Read, |tx| api_tokens::find(&tx, token_hash)
            .await?)
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        in_tx!(self, Access::Read, |tx| api_tokens::list(&tx).await?)
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        in_tx!(self, Access::Write, |tx| api_tokens::revoke(&tx, name)
            .await?)
    }

    async fn record_token_use(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        in_tx!(self, Access::Write, |tx| api_tokens::record_use(
            &tx, id, at
        )
        .await?)
    }

    async fn stored_processes(&self) -> Result<Vec<StoredProcess>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::stored_processes(&tx)
            .await?)
    }

    async fn sync_process(&self, sync: &ProcessSync<'_>) -> Result<SyncOutcome, StoreError> {
        in_tx!(self, Access::Write, |tx| engine::sync_process(&tx, sync)
            .await?)
    }

    async fn start_signal_cursor(&self) -> Result<SignalCursor, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            // The lock makes "newest stage change and event" a point no later commit
            // can fall behind.
            sql::lock_signal_writers(&tx).await?;
            engine::start_cursor(&tx).await?
        })
    }

    async fn signal_cursor(&self) -> Result<SignalCursor, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::cursor(&tx).await?)
    }

    async fn enrollment_trigger(
        &self,
        enrollment_id: i64,
    ) -> Result<Option<EnrollmentTrigger>, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            engine::enrollment_trigger(&tx, enrollment_id).await?
        })
    }

    async fn read_signals(
        &self,
        after: SignalCursor,
        event_names: &[String],
        limit: u32,
    ) -> Result<SignalBatch, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            engine::read_signals(&tx, after, event_names, limit).await?
        })
    }

    async fn apply_signals(
        &self,
        from: SignalCursor,
        to: SignalCursor,
        actions: &[EngineAction],
        at: Timestamp,
    ) -> Result<ApplyOutcome, StoreError> {
        let fenced = self.fenced_leader();
        in_tx!(self, Access::Write, |tx| {
            if let Some(leader) = fenced {
                coordination::fence(&tx, leader).await?;
            }
            engine::apply_signals(&tx, from, to, actions, at).await?
        })
    }

    async fn due_touches(&self, now: Timestamp, limit: u32) -> Result<DueBatch, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            engine::due_touches(&tx, &self.keys, now, limit).await?
        })
    }

    async fn pacing_snapshot(
        &self,
        in_flight_since: Timestamp,
        now: Timestamp,
        by_step: bool,
    ) -> Result<PacingSnapshot, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            engine::pacing_snapshot(&tx, in_flight_since, now, by_step).await?
        })
    }

    async fn record_decisions(
        &self,
        at: Timestamp,
        decisions: &[DecisionRecord],
        budget: &BudgetState,
    ) -> Result<(), StoreError> {
        let budget = serde_json::to_string(budget)
            .map_err(|e| StoreError::Corrupt(format!("budget usage does not serialize: {e}")))?;
        let fenced = self.fenced_leader();
        in_tx!(self, Access::Write, |tx| {
            // Budget usage is written whole by the leader alone: a node that lost the
            // lock cannot write over what its successor spent.
            if let Some(leader) = fenced {
                coordination::fence(&tx, leader).await?;
            }
            engine::record_decisions(&tx, at, decisions, &budget).await?
        })
    }

    async fn claim_dispatch(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedTouch>, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            engine::claim_dispatch(&tx, &self.keys, now, lease_ms, limit).await?
        })
    }

    async fn finish_dispatch(
        &self,
        lease: Lease,
        at: Timestamp,
        result: &DispatchResult,
    ) -> Result<bool, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            engine::finish_dispatch(&tx, &self.keys, lease, at, result).await?
        })
    }

    async fn finish_and_claim(
        &self,
        finished: &[(Lease, Timestamp, DispatchResult)],
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedTouch>, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            engine::finish_dispatches(&tx, &self.keys, finished).await?;
            if limit > 0 {
                engine::claim_dispatch(&tx, &self.keys, now, lease_ms, limit).await?
            } else {
                Vec::new()
            }
        })
    }

    async fn release_all_claims(&self, at: Timestamp) -> Result<u64, StoreError> {
        in_tx!(self, Access::Write, |tx| engine::release_all_claims(
            &tx, at
        )
        .await?)
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
        in_tx!(self, Access::Write, |tx| {
            engine::track_for_contact(
                &tx,
                contact,
                name,
                message_id,
                &properties,
                stage,
                millis(at),
            )
            .await?
        })
    }

    async fn next_dispatch_at(&self) -> Result<Option<Timestamp>, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            engine::next_at(
                &tx,
                "SELECT MIN(next_attempt_at) AS next FROM touches WHERE state = 'queued'",
            )
            .await?
        })
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            engine::next_at(
                &tx,
                "SELECT MIN(due_at) AS next FROM touches WHERE state = 'pending'",
            )
            .await?
        })
    }

    async fn tasks(&self, from: Timestamp, to: Timestamp) -> Result<Vec<TaskView>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::tasks(&tx, from, to)
            .await?)
    }

    async fn task(&self, id: TouchId) -> Result<Option<TaskView>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::task(&tx, id).await?)
    }

    async fn finish_task(
        &self,
        id: TouchId,
        at: Timestamp,
        end: &TaskEnd,
        next: Option<NextTouch>,
        event: Option<&OutcomeEvent<'_>>,
    ) -> Result<bool, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            engine::finish_task(&tx, id, at, end, next, event).await?
        })
    }

    async fn enrollments_of(&self, contact: ContactId) -> Result<Vec<EnrollmentView>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::enrollments_of(
            &tx, contact
        )
        .await?)
    }

    async fn touches_of(
        &self,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<TouchView>, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            engine::touches_of(&tx, contact, limit).await?
        })
    }

    async fn suppress_contact(
        &self,
        id: ContactId,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            suppress::suppress(&tx, &self.keys, id, reason, millis(at)).await?
        })
    }

    async fn pace_counts(&self) -> Result<PaceCounts, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::pace_counts(&tx).await?)
    }

    async fn touches_cancelled(&self) -> Result<Vec<(String, u64)>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::touches_cancelled(&tx)
            .await?)
    }

    async fn set_open_work(&self, open_work: f64, at: Timestamp) -> Result<(), StoreError> {
        in_tx!(self, Access::Write, |tx| {
            engine::set_value(&tx, engine::OPEN_WORK_KEY, &open_work.to_string()).await?;
            // Counted by hand: every held offer is looked at again.
            engine::wake_capacity_held(&tx, millis(at), u32::MAX).await?
        })?;
        Ok(())
    }

    async fn wake_capacity_held(&self, at: Timestamp, limit: u32) -> Result<u64, StoreError> {
        in_tx!(self, Access::Write, |tx| {
            engine::wake_capacity_held(&tx, millis(at), limit).await?
        })
    }

    async fn funnel(&self, from: Timestamp, to: Timestamp) -> Result<FunnelCounts, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::funnel(&tx, from, to)
            .await?)
    }

    async fn conversions(&self, stage: &StageName) -> Result<Vec<Conversion>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::conversions(&tx, stage)
            .await?)
    }

    async fn conversion_histogram(&self, stage: &StageName) -> Result<Vec<(u64, u64)>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::conversion_histogram(
            &tx, stage
        )
        .await?)
    }

    async fn admitted_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, tend_core::pacer::Channel)>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::admitted_since(&tx, since)
            .await?)
    }

    async fn work_log_since(&self, since: Timestamp) -> Result<Vec<(Timestamp, f64)>, StoreError> {
        in_tx!(self, Access::Read, |tx| engine::work_log_since(&tx, since)
            .await?)
    }

    async fn neglect(
        &self,
        max_gaps: &[(i64, i64)],
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<NeglectRow>, StoreError> {
        in_tx!(self, Access::Read, |tx| {
            engine::neglect(&tx, max_gaps, before, limit).await?
        })
    }

    async fn secret(&self, which: suppression::Secret) -> Result<Vec<u8>, StoreError> {
        let stored = in_tx!(self, Access::Read, |tx| engine::value(&tx, which.key())
            .await?)?;
        which.decode(stored.as_deref())
    }

    async fn coordination(&self) -> Result<Arc<dyn Coordination>, StoreError> {
        let joined = self
            .coordination
            .get_or_init(|| async {
                Arc::new(coordination::PgCoordination::start(self.connect.clone()))
            })
            .await;
        Ok(Arc::clone(joined) as Arc<dyn Coordination>)
    }
}

/// Deletes a contact and every personal datum in the caller's transaction, keeping a
/// suppression record of the keyed address. `None` if there is no such contact.
async fn erase(
    tx: &sql::Tx<'_>,
    keys: &AddressKeys,
    id: ContactId,
    at: i64,
) -> Result<Option<Erasure>, StoreError> {
    let Some(email) = sql::fetch_optional(
        tx,
        "SELECT email FROM contacts WHERE id = $1 FOR UPDATE",
        &[&id.0],
        |row| get::<Option<String>>(row, "email"),
    )
    .await?
    else {
        return Ok(None);
    };
    let touches: Vec<(TouchId, bool)> = sql::fetch_all(
        tx,
        "SELECT id, state = 'queued' AND leased AS held FROM touches \
         WHERE contact_id = $1 AND channel = 'email' ORDER BY id",
        &[&id.0],
        |row| Ok((TouchId(get(row, "id")?), get(row, "held")?)),
    )
    .await?;
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
         WHERE contact_id = $1 AND state IN ('pending', 'queued', 'open')",
        &[&id.0],
        |row| get(row, "n"),
    )
    .await?;
    engine::count_cancelled(tx, "erased", planned.max(0) as u64).await?;
    for statement in [
        "DELETE FROM touches WHERE contact_id = $1",
        "DELETE FROM enrollments WHERE contact_id = $1",
        "DELETE FROM events WHERE contact_id = $1",
        "DELETE FROM contact_aliases WHERE contact_id = $1",
        "DELETE FROM stage_history WHERE contact_id = $1",
        "DELETE FROM console_actions WHERE contact_id = $1",
        "DELETE FROM contacts WHERE id = $1",
    ] {
        sql::execute(tx, statement, &[&id.0]).await?;
    }
    if let Some(email) = email {
        suppress::record(tx, &keys.key(&email), "erased", at).await?;
        // A bare hash an earlier release kept for the same address goes: the keyed
        // record replaces it.
        sql::execute(
            tx,
            "DELETE FROM legacy_suppressions WHERE email_hash = $1",
            &[&suppression::legacy_hash(&email)],
        )
        .await?;
    }
    Ok(Some(Erasure {
        email_touches,
        in_flight,
    }))
}
