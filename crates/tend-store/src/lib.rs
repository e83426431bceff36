//! Tend's storage interface: the [`Store`] trait every caller uses, the records it
//! speaks in and a backend-free [`StoreError`]. Each backend lives in a crate of its
//! own (`tend-store-sqlite`, …) and implements the trait.
//!
//! Instants cross the trait as [`Timestamp`]s; backends store them as integer
//! milliseconds since the Unix epoch and ids as 64-bit integers.

pub mod console;
pub mod coordination;
pub mod drafts;
pub mod engine;
pub mod feedback;
pub mod import_rows;
mod model;
pub mod suppression;
pub mod tokens;
pub mod transfer;

pub use console::{
    ConsoleAction, ConsoleStore, DeliveryView, PlannedLoad, PlannedTouch, Role, Session,
    StepCounts, User,
};
pub use coordination::{Coordination, SoleEngine, Wake};
pub use drafts::{DraftImported, ImportDraft, ImportDraftStore};
pub use engine::*;
pub use model::*;

use async_trait::async_trait;
use jiff::Timestamp;
use tend_core::pacer::{BudgetState, TouchId};
use tend_core::{ContactId, Email, StageName};

/// Everything that can go wrong talking to storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend Tend has.
    #[error(
        "unsupported database url `{0}`: use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl(String),
    /// The database URL names a backend Tend has but cannot be read; says which part
    /// is wrong and never repeats a password.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// The database refused or failed a statement; the backend's own error is the source.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migrate(String),
    /// A stored row does not decode into what the schema promises; says which and why.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A list cursor that no previous page returned.
    #[error("`{0}` is not a cursor from a previous page")]
    InvalidCursor(String),
    /// The contact was erased, but its bytes could not yet be purged from every file.
    #[error("erasure incomplete: {0}")]
    EraseIncomplete(String),
    /// The store's own threads could not be started or stopped abnormally.
    #[error("database threads: {0}")]
    Threads(String),
    /// Another writer changed what the caller read before writing; nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The install's secret (which keys suppressions and signs unsubscribe links) is
    /// missing or unreadable; says what to do.
    #[error("the install's secret is unusable: {0}")]
    Secret(String),
}

impl StoreError {
    /// Wraps a backend's own error (a driver's, a pool's) as [`StoreError::Backend`].
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }
}

/// The one storage interface; each backend implements all of it.
#[async_trait]
pub trait Store: ConsoleStore + ImportDraftStore + Send + Sync + 'static {
    /// Cheap liveness check for `/healthz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies a validated batch of Segment messages in one transaction: either all of
    /// it is written or none. Messages whose `message_id` was already seen are skipped.
    async fn ingest(
        &self,
        batch: &[IngestMessage],
        new_contact_stage: &StageName,
    ) -> Result<IngestOutcome, StoreError>;

    /// One page of contacts, filtered by stage and by the starts of words of their email
    /// or name ([`search_words`]), through an index rather than reading every contact.
    async fn list_contacts(&self, query: &ContactQuery) -> Result<ContactPage, StoreError>;

    /// One contact by id.
    async fn contact(&self, id: ContactId) -> Result<Option<Contact>, StoreError>;

    /// A contact's events and stage changes, oldest first.
    async fn timeline(&self, id: ContactId) -> Result<Vec<TimelineEntry>, StoreError>;

    /// Erases a contact and every personal datum, keeps a suppression record of the
    /// keyed address, and makes sure the deleted bytes leave the database files.
    /// Returns what is left to clean outside the database, or `None` if there was no
    /// such contact.
    async fn erase_contact(
        &self,
        id: ContactId,
        at: Timestamp,
    ) -> Result<Option<Erasure>, StoreError>;

    /// Whether this email was erased or otherwise suppressed.
    async fn is_email_suppressed(&self, email: &Email) -> Result<bool, StoreError>;

    /// Records the address with this key (see [`suppression::AddressKeys`]) as
    /// unsubscribed and suppresses the contacts it was mailed to that still hold it.
    /// Returns whether anything changed.
    async fn unsubscribe_address(
        &self,
        address_key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Where an email touch went: its contact and the key of the address it was mailed
    /// to; `None` if there is no such touch.
    async fn touch_recipient(
        &self,
        touch: TouchId,
    ) -> Result<Option<feedback::TouchRecipient>, StoreError>;

    /// Records a report about sent mail (bounce, complaint, unsubscribe request) once
    /// per source and, when it says so, suppresses the address as an unsubscribe
    /// would, in one transaction.
    async fn record_mail_feedback(
        &self,
        feedback: &feedback::MailFeedback<'_>,
        at: Timestamp,
    ) -> Result<feedback::FeedbackOutcome, StoreError>;

    /// Claims a mail provider's single-use webhook token, by its hash, until
    /// `expires_at`: true for the first claim, false while an earlier claim of it
    /// stands, on this node or any other sharing the database (two racing claims: one
    /// wins). Claims expired by `now` are pruned first.
    async fn claim_webhook_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Withdraws a claim of [`Store::claim_webhook_token`], so the provider's retry of a
    /// request Tend failed to record is accepted.
    async fn release_webhook_token(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Reports about sent mail recorded so far, by kind.
    async fn mail_feedback_counts(&self) -> Result<feedback::FeedbackCounts, StoreError>;

    /// The last message read from the inbound mailbox: its mailbox's UIDVALIDITY and
    /// its UID; `None` before the first.
    async fn inbound_cursor(&self) -> Result<Option<(u32, u32)>, StoreError>;

    /// Records the last message read from the inbound mailbox.
    async fn set_inbound_cursor(&self, uid_validity: u32, uid: u32) -> Result<(), StoreError>;

    /// Upserts validated CSV rows by email in one transaction; rows that change nothing
    /// leave the contact untouched. The stage changes it records carry `enrollment`
    /// (row by row), which the engine follows when it reads them.
    async fn import_contacts(
        &self,
        rows: &[ImportRow],
        default_stage: &StageName,
        at: Timestamp,
        enrollment: ImportEnrollment,
    ) -> Result<ImportOutcome, StoreError>;

    /// What [`Store::import_contacts`] would do with `rows` now, writing nothing: the
    /// same statements in a transaction that is rolled back, so a preview counts
    /// exactly what importing the rows writes while the contacts stay as they are.
    async fn preview_import(
        &self,
        rows: &[ImportRow],
        default_stage: &StageName,
        at: Timestamp,
    ) -> Result<ImportOutcome, StoreError>;

    /// Stores a new API token by its hash; the clear token is never stored.
    /// [`StoreError::Conflict`] if a token of that name exists.
    async fn create_token(
        &self,
        name: &str,
        scope: TokenScope,
        token_hash: &str,
        at: Timestamp,
    ) -> Result<ApiToken, StoreError>;

    /// Finds a token by the hash of what a client presented.
    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError>;

    /// Every token, by name.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// Deletes the token of that name; it stops working at once. Returns `false` if
    /// there is no such token.
    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError>;

    /// Records that a token was used at `at` (never moving its last use backwards).
    async fn record_token_use(&self, id: i64, at: Timestamp) -> Result<(), StoreError>;

    // --- The engine's state (see `engine` for the records) ---

    /// Every process the engine has loaded before.
    async fn stored_processes(&self) -> Result<Vec<StoredProcess>, StoreError>;

    /// Records a process's current steps, moves contacts off changed steps and, for a new
    /// process, enrolls the stage's current members: one transaction. Fails with
    /// [`StoreError::Conflict`] if the stored steps are no longer `sync.previous`.
    async fn sync_process(&self, sync: &ProcessSync<'_>) -> Result<SyncOutcome, StoreError>;

    /// Where the engine's reading starts: on the very first start, after the newest
    /// stage change and event, so history from before the engine ran is not replayed
    /// (a new process enrolls a stage's current members through
    /// [`ProcessSync::backfill`] instead); afterwards, where it stopped.
    async fn start_signal_cursor(&self) -> Result<SignalCursor, StoreError>;

    /// Where the engine's reading of events and stage history stands.
    async fn signal_cursor(&self) -> Result<SignalCursor, StoreError>;

    /// Up to `limit` stage changes and up to `limit` events named in `event_names`
    /// after `after`, merged in the order they happened.
    async fn read_signals(
        &self,
        after: SignalCursor,
        event_names: &[String],
        limit: u32,
    ) -> Result<SignalBatch, StoreError>;

    /// Applies actions and moves the cursor from `from` to `to`, in one transaction;
    /// [`StoreError::Conflict`] if the cursor is no longer at `from`.
    async fn apply_signals(
        &self,
        from: SignalCursor,
        to: SignalCursor,
        actions: &[EngineAction],
        at: Timestamp,
    ) -> Result<ApplyOutcome, StoreError>;

    /// What started enrollment `enrollment_id` (the event or stage change recorded with
    /// it); `None` when nothing did (a process added later, a contact moved by the
    /// console) or its record was erased.
    async fn enrollment_trigger(
        &self,
        enrollment_id: i64,
    ) -> Result<Option<EnrollmentTrigger>, StoreError>;

    /// Up to `limit` pending touches due at `now`, oldest first, with their contacts'
    /// pacing state.
    async fn due_touches(&self, now: Timestamp, limit: u32) -> Result<DueBatch, StoreError>;

    /// Budget usage, open work, the expected work of unanswered offers admitted since
    /// `in_flight_since`, and offer stats. An offer's expectation fades linearly over
    /// the window, from whole when admitted to nothing `now - in_flight_since` later:
    /// an offer nobody answered for most of the window is unlikely to bring work now.
    /// With `by_step`, also the unanswered offers per step and age (a grouped read, so
    /// only when the caller fades offers by their step's response delays or shows them).
    async fn pacing_snapshot(
        &self,
        in_flight_since: Timestamp,
        now: Timestamp,
        by_step: bool,
    ) -> Result<PacingSnapshot, StoreError>;

    /// Stores a batch's decisions and the budget usage after it, in one transaction.
    async fn record_decisions(
        &self,
        at: Timestamp,
        decisions: &[DecisionRecord],
        budget: &BudgetState,
    ) -> Result<(), StoreError>;

    /// Leases up to `limit` queued touches whose time has come until `now + lease_ms`,
    /// counting an attempt on each, under a new random token. A touch whose lease ran
    /// out is queued again and may be claimed by anyone.
    async fn claim_dispatch(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedTouch>, StoreError>;

    /// Records how a claimed touch's dispatch ended. Ignored, returning `false`, if the
    /// touch is no longer queued (cancelled meanwhile) or no longer held by `lease`
    /// (its lease ran out and another claim took it).
    async fn finish_dispatch(
        &self,
        lease: Lease,
        at: Timestamp,
        result: &DispatchResult,
    ) -> Result<bool, StoreError>;

    /// Records how claimed touches' dispatches ended (each ignored as
    /// [`Store::finish_dispatch`] would) and leases up to `limit` more, in one
    /// transaction: a busy dispatcher's one write per round.
    async fn finish_and_claim(
        &self,
        finished: &[(Lease, Timestamp, DispatchResult)],
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedTouch>, StoreError>;

    /// Gives back every leased touch at once, due at `at`: for an engine alone on its
    /// database ([`Coordination::sole_engine`]), the leases still held at its start
    /// belong to a run that stopped. Beside other nodes, leases expire instead.
    async fn release_all_claims(&self, at: Timestamp) -> Result<u64, StoreError>;

    /// Records an event for a known contact (a task's outcome) and moves it to `stage`
    /// if given, as ingest would. A repeated `message_id` changes nothing; returns
    /// whether the event was new.
    async fn track_for_contact(
        &self,
        contact: ContactId,
        name: &str,
        message_id: &str,
        properties: serde_json::Value,
        stage: Option<&StageName>,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// When the next queued touch may be claimed, if any is queued.
    async fn next_dispatch_at(&self) -> Result<Option<Timestamp>, StoreError>;

    /// When the next pending touch falls due, if any is pending.
    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Open tasks due before `to` (overdue ones included) and tasks finished in
    /// `[from, to)`, by due time.
    async fn tasks(&self, from: Timestamp, to: Timestamp) -> Result<Vec<TaskView>, StoreError>;

    /// One task.
    async fn task(&self, id: TouchId) -> Result<Option<TaskView>, StoreError>;

    /// Completes or skips an open task, moves its enrollment to `next` (completes it
    /// when `None`) and records `event` for its contact, in one transaction. Returns
    /// `false` if the task is not open; then nothing is written.
    async fn finish_task(
        &self,
        id: TouchId,
        at: Timestamp,
        end: &TaskEnd,
        next: Option<NextTouch>,
        event: Option<&OutcomeEvent<'_>>,
    ) -> Result<bool, StoreError>;

    /// A contact's enrollments, newest first.
    async fn enrollments_of(&self, contact: ContactId) -> Result<Vec<EnrollmentView>, StoreError>;

    /// A contact's latest `limit` touches, newest first.
    async fn touches_of(
        &self,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<TouchView>, StoreError>;

    /// Suppresses a contact (unsubscribed, bounced) and its address: nothing is sent to
    /// it again, its enrollments end and its planned touches are cancelled. Returns
    /// `false` if there is no such contact.
    async fn suppress_contact(
        &self,
        id: ContactId,
        reason: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Held-back touches by reason and active enrollments per process.
    async fn pace_counts(&self) -> Result<PaceCounts, StoreError>;

    /// Touches cancelled since the database was made, by cause, sorted by cause:
    /// `exited` (a process's exit condition), the suppression's reason (`unsubscribed`,
    /// `bounced`, `complained`, `suppressed`), `merged`, `steps_removed` (a process
    /// lost the step) and `erased` (see [`TOUCHES_CANCELLED_KEY_PREFIX`]).
    async fn touches_cancelled(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Sets the number of work items open now, as counted by hand at `at`; offers held
    /// back by capacity are looked at again at once.
    async fn set_open_work(&self, open_work: f64, at: Timestamp) -> Result<(), StoreError>;

    /// Makes up to `limit` offers held back by capacity due at `at`, those whose
    /// contacts have waited longest for a touch first: work closed and left room for
    /// about that many. Returns how many.
    async fn wake_capacity_held(&self, at: Timestamp, limit: u32) -> Result<u64, StoreError>;

    /// Contacts per stage now and stage changes in `[from, to)`.
    async fn funnel(&self, from: Timestamp, to: Timestamp) -> Result<FunnelCounts, StoreError>;

    /// Every contact's first entry into `stage`, with the touches admitted before it.
    async fn conversions(&self, stage: &StageName) -> Result<Vec<Conversion>, StoreError>;

    /// Of the contacts who ever entered `stage`, how many had how many touches admitted
    /// up to their first entry: `(touches, contacts)` by touches, from counters kept on
    /// write; the same figures as grouping [`Store::conversions`].
    async fn conversion_histogram(&self, stage: &StageName) -> Result<Vec<(u64, u64)>, StoreError>;

    /// When each touch admitted since `since` was admitted, and on which channel.
    async fn admitted_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, tend_core::pacer::Channel)>, StoreError>;

    /// Work items opened (+1) and closed (-1) since `since`, as the engine read them.
    async fn work_log_since(&self, since: Timestamp) -> Result<Vec<(Timestamp, f64)>, StoreError>;

    /// The `limit` active enrollments whose `max_gap` deadline comes first, only those
    /// with a deadline before `before` if given; `max_gaps` gives each process id's gap
    /// in milliseconds (others are left out).
    async fn neglect(
        &self,
        max_gaps: &[(i64, i64)],
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<NeglectRow>, StoreError>;

    /// One of the install's secrets; [`StoreError::Secret`] naming it when it is missing
    /// or unreadable (a new one is never made in its place).
    async fn secret(&self, which: suppression::Secret) -> Result<Vec<u8>, StoreError>;

    /// How an engine on this store shares the database with other nodes: for a backend
    /// one engine owns, [`SoleEngine`]; for a shared one, the node joins the election
    /// of a leader and starts hearing other nodes' wake-ups (once; later calls return
    /// the same).
    async fn coordination(&self) -> Result<std::sync::Arc<dyn Coordination>, StoreError>;
}
