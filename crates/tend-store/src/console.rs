//! The console's storage: the people who log in, their sessions, what they did to
//! contacts, and the reads its pages need beyond the engine's.
//!
//! [`ConsoleStore`] is a supertrait of [`crate::Store`], so every backend implements it
//! and callers holding a `dyn Store` call its methods directly.

use crate::StoreError;
use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use tend_core::pacer::TouchId;
use tend_core::{ContactId, StageName};

/// What a person may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: settings, tokens, people, erasure.
    Owner,
    /// Today and Contacts: completes tasks, works with contacts, never erases.
    Staff,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Staff => "staff",
        }
    }

    /// The role of that name, if there is one.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "owner" => Some(Role::Owner),
            "staff" => Some(Role::Staff),
            _ => None,
        }
    }
}

/// A person who logs in to the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: i64,
    /// The address they log in with, lower-cased.
    pub email: String,
    /// What they may do.
    pub role: Role,
    /// The argon2id PHC string of their password.
    pub password_hash: String,
    /// When they were added.
    pub created_at: Timestamp,
}

/// A logged-in browser's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose it is.
    pub user: User,
    /// The token every form of this session sends back.
    pub csrf: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// Something a person did to a contact from the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleAction {
    /// The contact.
    pub contact_id: ContactId,
    /// Who did it (their login address).
    pub by: String,
    /// `stage`, `pause`, `resume`, `unsubscribe`…
    pub action: String,
    /// What exactly, in words.
    pub detail: String,
    /// When.
    pub at: Timestamp,
}

/// A touch planned or waiting, as Today's lists show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedTouch {
    /// The touch.
    pub id: TouchId,
    /// For whom.
    pub contact_id: ContactId,
    /// The contact's name, if known.
    pub contact_name: Option<String>,
    /// The contact's address, if known.
    pub contact_email: Option<String>,
    /// The process id.
    pub process_id: i64,
    /// The process key.
    pub process: String,
    /// The step.
    pub step: u32,
    /// `email`, `webhook` or `task`.
    pub channel: String,
    /// `offer` or `nurture`.
    pub intent: String,
    /// `pending`, `queued` or `open`.
    pub state: String,
    /// When it is due.
    pub due_at: Timestamp,
    /// Why the pacer last held it back, if it did.
    pub reason: Option<String>,
    /// Until when, if deferred.
    pub until: Option<Timestamp>,
    /// A task's title once it is on the agenda.
    pub title: Option<String>,
}

/// A touch as Today's next 7 days counts it: when it falls due and what it spends,
/// without the contact (read from an index alone, for every touch of the week).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedLoad {
    /// The touch.
    pub id: TouchId,
    /// The process id.
    pub process_id: i64,
    /// The step.
    pub step: u32,
    /// `email`, `webhook` or `task`.
    pub channel: String,
    /// `pending` or `open`.
    pub state: String,
    /// When it is due.
    pub due_at: Timestamp,
    /// Until when, if deferred.
    pub until: Option<Timestamp>,
}

/// A send as the Deliveries list and a contact's timeline show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryView {
    /// The touch.
    pub id: TouchId,
    /// For whom.
    pub contact_id: ContactId,
    /// The contact's address, if known.
    pub contact_email: Option<String>,
    /// The process key.
    pub process: String,
    /// The step.
    pub step: u32,
    /// `email` or `webhook`.
    pub channel: String,
    /// `sent`, `retrying` (queued after a failed attempt), `failed` or `bounced`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The last error, for retries and failures.
    pub last_error: Option<String>,
    /// When it was sent, or last attempted.
    pub at: Timestamp,
}

/// One process step's touches and results, as the Processes page shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepCounts {
    /// The step's index in its process.
    pub step: u32,
    /// Pending touches the pacer has not held back (not yet due, or not yet decided).
    pub pending: u64,
    /// Pending touches the pacer last held back, by reason (`capacity`, `budget`…).
    pub held: BTreeMap<String, u64>,
    /// Admitted and being sent, or open on the agenda.
    pub in_progress: u64,
    /// Emails and webhooks sent, tasks done.
    pub sent: u64,
    /// Sends that failed for good.
    pub failed: u64,
    /// Skipped by the pacer or by a person, or cancelled as the enrollment ended.
    pub skipped: u64,
    /// Keep-warm touches sent in place of this step's offer.
    pub keep_warm_sent: u64,
    /// Offers of this step admitted (the learned response rate's trials).
    pub offers: u64,
    /// Of which answered with work or a stage change.
    pub responded: u64,
    /// Contacts whose last touch before they first reached the conversion stage was
    /// this step.
    pub conversions: u64,
}

impl StepCounts {
    /// Adds `n` touches of this step of one `kind` (`step`, `keep_warm`), `state` and held
    /// `reason`, as the store groups them, to the right count.
    pub fn add_touches(&mut self, kind: &str, state: &str, reason: Option<String>, n: u64) {
        if kind == "keep_warm" {
            if state == "sent" {
                self.keep_warm_sent += n;
            }
            return;
        }
        match (state, reason) {
            ("pending", Some(reason)) => *self.held.entry(reason).or_default() += n,
            ("pending", None) => self.pending += n,
            ("queued" | "open", _) => self.in_progress += n,
            ("sent" | "done", _) => self.sent += n,
            ("failed", _) => self.failed += n,
            _ => self.skipped += n,
        }
    }
}

/// The console's reads and writes, beside the engine's.
#[async_trait]
pub trait ConsoleStore {
    /// Adds a person, or sets the role and password of the one with that address.
    /// Returns the person and whether they are new.
    async fn upsert_user(
        &self,
        email: &str,
        role: Role,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<(User, bool), StoreError>;

    /// The person with this (lower-cased) address.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// Every person, by address.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// Stores a new session by its token's hash; expired sessions are deleted on the way.
    async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        csrf: &str,
        at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// The session with this token hash, if it has not expired at `now`.
    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    /// Ends a session (logout).
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Claims one login attempt at `at` for each of `keys` (an account, a client
    /// address), each with the most attempts it may have since `since`: `false`, with
    /// nothing recorded, when any key has reached its limit; otherwise the attempt is
    /// recorded as `attempt` and counts until [`ConsoleStore::forget_login_attempt`]
    /// withdraws it. Every node sharing the database counts the same attempts, and
    /// concurrent claims are counted one after another. Attempts older than `since` are
    /// pruned.
    async fn claim_login_attempt(
        &self,
        attempt: &str,
        keys: &[(&str, u32)],
        since: Timestamp,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Withdraws a login attempt whose password was right, so that only failures count
    /// against the limit.
    async fn forget_login_attempt(&self, attempt: &str) -> Result<(), StoreError>;

    /// Records an action on a contact for its timeline.
    async fn record_console_action(&self, action: &ConsoleAction) -> Result<(), StoreError>;

    /// A contact's console actions, oldest first.
    async fn console_actions(&self, contact: ContactId) -> Result<Vec<ConsoleAction>, StoreError>;

    /// Moves a contact to `stage` by hand (a stage change the engine reads like any
    /// other) and records who did it, in one transaction. Returns `false` if there is no
    /// such contact or it is already there.
    async fn set_contact_stage(
        &self,
        contact: ContactId,
        stage: &StageName,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Pauses (its pending touch waits, its place kept) or resumes (the pending touch is
    /// due at `at`) a contact's active enrollment, and records who did it. Returns
    /// `false` if the contact has no such active enrollment or it already is so.
    async fn set_enrollment_paused(
        &self,
        contact: ContactId,
        enrollment: i64,
        paused: bool,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The ids of a contact's paused enrollments.
    async fn paused_enrollments(&self, contact: ContactId) -> Result<Vec<i64>, StoreError>;

    /// Pending touches and open tasks due in `[from, to)`, by due time, at most `limit`.
    async fn planned_touches(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<PlannedTouch>, StoreError>;

    /// What [`ConsoleStore::planned_touches`] lists, as the next 7 days count it: the
    /// same touches in the same order, without their contacts.
    async fn planned_load(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<PlannedLoad>, StoreError>;

    /// Pending tasks (not yet on the agenda) due in `[from, to)`, by due time, at most
    /// `limit`.
    async fn planned_tasks(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<PlannedTouch>, StoreError>;

    /// Pending touches last held back for `reason`, longest waiting first, at most `limit`.
    async fn held_touches(&self, reason: &str, limit: u32)
    -> Result<Vec<PlannedTouch>, StoreError>;

    /// Recent sends, retries and failures (of `status` if given), newest first, at most
    /// `limit`; of one contact if given.
    async fn deliveries(
        &self,
        status: Option<&str>,
        contact: Option<ContactId>,
        limit: u32,
    ) -> Result<Vec<DeliveryView>, StoreError>;

    /// Every step of the process `process_key` that has touches, offers or conversions,
    /// by step: its touches counted by state and held reason, its offers and their
    /// answers, and the conversions (first entry into `conversion_stage`) it was the
    /// last touch before. Counts are aggregated in the store over indexes; nothing is
    /// listed. Empty for a process the store has never loaded.
    async fn process_step_counts(
        &self,
        process_key: &str,
        conversion_stage: &StageName,
    ) -> Result<Vec<StepCounts>, StoreError>;
}
